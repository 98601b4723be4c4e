/* vaultd/keyring.h: the unlocked key state and the secret seal/open path.
 *
 * Holds the root key (RK) and a cache of unwrapped tenant KEKs, all in
 * guarded memory, from unlock until lock (which wipes them). The HSM is used
 * only by keyring_init() and keyring_unlock(), each opening the key provider
 * for that one operation and closing it after.
 *
 * KEKs enter the cache only from committed rows (keyring_ensure_kek() commits
 * a new KEK in a transaction of its own before anything is sealed under it),
 * so a rolled-back write can never leave a cached key that the database does
 * not hold.
 *
 * Threads: any. A read-write lock lets seal/open run concurrently while
 * unlock/lock are exclusive.
 */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "common/keyprov.h"
#include "common/secret.h"
#include "vaultd/store.h"

struct keyring;

struct keyring_hsm {
	struct keyprov_config prov;     /* borrowed strings */
	const char *key_label;
	enum keyprov_mech mech;
	enum keyprov_hash hash;
};

int keyring_new(const struct keyring_hsm *hsm, struct keyring **ret);
void keyring_free(struct keyring *k);           /* NULL-safe; wipes */
DEFINE_CLEANUP(struct keyring *, keyring_free)

bool keyring_is_unlocked(struct keyring *k);

/* First start: finds or generates HSM key (key_label, 1), draws RK version 1,
 * wraps it, and writes the root_keys row in tx. Leaves the keyring locked. */
int keyring_init(struct keyring *k, struct store_tx *tx);
/* Unwraps the current RK through the HSM. -ENOENT if not initialised; HSM
 * errors as in keyprov.h. Unlocking an unlocked keyring is a no-op. */
int keyring_unlock(struct keyring *k, struct store *s);
/* Wipes RK and every cached KEK. */
void keyring_lock(struct keyring *k);
/* Checks the HSM is reachable and holds the current RK's wrapping key
 * (start-up diagnostics). Does not unwrap. */
int keyring_check_hsm(struct keyring *k, struct store *s);

/* Wraps/unwraps a 32-byte key (a user's MFA key) with the HSM key, like the
 * root key: usable while locked, useless without the token. Serialised with
 * every other HSM use. */
int keyring_hsm_wrap_key(struct keyring *k, const struct secret *key, uint8_t **ret_blob, size_t *ret_len);
int keyring_hsm_unwrap_key(struct keyring *k, const uint8_t *blob, size_t len, struct secret **ret_key);

/* The audit anchor's MAC key, derived from the RK (libsodium KDF, context
 * "vltaudit"). -EACCES while locked. Caller frees. XXX: root-key rotation
 * (issue 6) must re-anchor the audit chain under the new RK. */
int keyring_audit_key(struct keyring *k, struct secret **ret);

/* Makes sure tenant has a KEK, creating version 1 in its own committed
 * transaction when it has none. -EACCES when locked. */
int keyring_ensure_kek(struct keyring *k, struct store *s, const char *tenant);
/* Seals plaintext as version 'version' of path under a fresh DEK wrapped by
 * the tenant's current KEK (which keyring_ensure_kek() created), counts the
 * wrap in tx, and fills *ret (caller clears it). -EACCES when locked. */
int keyring_seal(struct keyring *k, struct store_tx *tx, const char *path, uint32_t version,
		 const struct secret *plaintext, struct store_version *ret);
/* Opens one stored version. -EACCES when locked, -ENOENT when destroyed,
 * -EBADMSG when a blob fails authentication. */
int keyring_open(struct keyring *k, struct store_tx *tx, const char *path,
		 const struct store_version *v, struct secret **ret_plaintext);
