/* vaultd/access/identity.h: who is calling. A person by bearer token (a
 * login's, stored as a hash keyed by the session epoch, bound to the uid
 * that logged in, expiring), else a service by the caller's SO_PEERCRED uid
 * as an admin bound it, else nobody. With the authorization seal's key (while
 * unlocked) every row that grants access must carry its seal (authz.h).
 * Threads: any.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "common/secret.h"
#include "vaultd/access/principal.h"
#include "vaultd/store/store.h"

/* Hex BLAKE2b-256 of a bearer token keyed by a session epoch. */
void token_hash_hex(const uint8_t epoch[16], const char *token, size_t n, char ret[65]);

/* The user a token proves, with the user's roles, into *ret (kind USER,
 * token_hash set). 0; -EACCES the token is unknown, expired, revoked (an
 * earlier epoch) or its user gone; -EPERM it belongs to another uid;
 * -EBADMSG the user's row fails its seal (reported); storage errors. key
 * NULL: rows unchecked (locked). */
int identity_of_token(struct store *s, struct store_tx *tx, const struct secret *key, const uint8_t epoch[16],
		      const char *token, size_t n, uid_t uid, struct principal *ret);

/* The service bound to uid, with its roles (kind SERVICE), or kind NONE
 * when the uid is not bound. 0; -EBADMSG the binding fails its seal
 * (reported); storage errors. */
int identity_of_uid(struct store *s, struct store_tx *tx, const struct secret *key, uid_t uid,
		    struct principal *ret);
