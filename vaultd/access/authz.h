/* vaultd/access/authz.h: the authorization seal (security review finding 12).
 *
 * Who may do what is data in the database: users (passphrase hash, roles),
 * custom roles (rules) and service bindings (uid, roles). Anyone who can
 * write the file, or who hands vaultd an untrusted backup, could insert
 * services(uid=<theirs>, roles=["admin"]). So each such row carries an
 * HMAC-SHA-256 over the fields that grant access, under a key derived from
 * the root key (keyring_authz_key()), written by vaultd with every change
 * and checked on every use while unlocked: a row changed outside vaultd
 * fails it, is refused, and the finding is kept in meta "authz_tamper",
 * which GET /v1/audit/verify reports like a broken audit chain.
 *
 * Not covered, by design: the MFA blobs (each is bound to its user by its
 * own AEAD and useless elsewhere), the used TOTP step and the enrolment
 * state (replay protection and bookkeeping that change while locked, when
 * there is no key), timestamps. While locked there is no key either: the
 * rows are then used unchecked, for the little a locked vault serves
 * (health, unlock, metrics and rotation status to a service with audit).
 * Deleting a row, or rolling the whole file back, is not detected here
 * (the audit chain and an off-host mirror are what show those).
 *
 * Vaults made before the seal carry no MACs: the first unlock seals them
 * (authz_seal_all() with check_key NULL), and meta "authz_sealed", bound
 * into the audit anchor, says it happened. Threads: any.
 */
#pragma once
#include <stdbool.h>
#include "common/secret.h"
#include "vaultd/audit/audit.h"
#include "vaultd/store/store.h"


void authz_mac_user(const struct secret *key, const struct store_user *u, char out[65]);
void authz_mac_role(const struct secret *key, const struct store_role *r, char out[65]);
void authz_mac_service(const struct secret *key, const struct store_service *s, char out[65]);

/* Constant-time checks of a row's stored mac. false for a row without one. */
bool authz_user_ok(const struct secret *key, const struct store_user *u);
bool authz_role_ok(const struct secret *key, const struct store_role *r);
bool authz_service_ok(const struct secret *key, const struct store_service *s);

/* Writes the MAC of every user, role and service row under key, in tx.
 * check_key non-NULL (root-key rotation): each row must first verify under
 * it, else -EBADMSG and nothing is written (the caller's tx rolls back).
 * check_key NULL (sealing an older vault): only rows without a MAC are
 * sealed; a row that has one must verify under key. *ret_rows (may be
 * NULL): rows written. */
int authz_seal_all(struct store_tx *tx, const struct secret *check_key, const struct secret *key,
		   int64_t *ret_rows);

/* Keeps the first finding in meta "authz_tamper" (a write transaction of
 * its own) and logs it. what: e.g. "service 'x' (uid 1000)". */
void authz_note_tamper(struct store *s, const char *what);
