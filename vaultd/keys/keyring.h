/* vaultd/keys/keyring.h: the unlocked key state and the secret seal/open path.
 *
 * Holds the root key (RK) and a cache of unwrapped tenant KEKs, all in
 * guarded memory, from unlock until lock (which wipes them). The HSM is used
 * only by keyring_init() and keyring_unlock(), each opening the key provider
 * for that one operation and closing it after.
 *
 * The KEK cache keeps its keys in a few guarded slabs (a handful of mappings
 * whatever the number of tenants) and holds at most keyring_set_kek_cache_max()
 * keys, evicting the least recently used; an evicted KEK is unwrapped again
 * from its row when next needed.
 *
 * KEKs enter the cache only from committed rows (keyring_ensure_kek() commits
 * a new KEK in a transaction of its own before anything is sealed under it),
 * so a rolled-back write can never leave a cached key that the database does
 * not hold; and a KEK version that keyring_kek_forget() dropped never enters
 * it again, even from a reader whose snapshot still holds its row.
 *
 * Threads: any. A read-write lock lets seal/open run concurrently while
 * unlock/lock and root activation are exclusive. Lock order: the store's
 * write transaction before the keyring's lock, never the other way round.
 */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "common/keyprov.h"
#include "common/json.h"
#include "common/secret.h"
#include "vaultd/store/store.h"

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
/* The most KEKs the cache holds (default 8192: 256 KiB of locked memory),
 * clamped to 1..1048576. Call before unlock. */
void keyring_set_kek_cache_max(struct keyring *k, size_t max);

bool keyring_is_unlocked(struct keyring *k);

/* First start: finds or generates HSM key (key_label, 1), draws RK version 1,
 * wraps it, and writes the root_keys row in tx. Leaves the keyring locked.
 * keyring_init_keys() also hands out the new RK's audit and authorization
 * MAC keys (each may be NULL), for the records init writes in tx. */
int keyring_init(struct keyring *k, struct store_tx *tx);
int keyring_init_keys(struct keyring *k, struct store_tx *tx, struct secret **ret_audit_key,
		      struct secret **ret_authz_key);
/* Unwraps every RK row through the HSM (more than one only while a root
 * rotation runs). -ENOENT if not initialised; HSM errors as in keyprov.h.
 * Unlocking an unlocked keyring is a no-op. */
int keyring_unlock(struct keyring *k, struct store *s);
/* Wipes RK and every cached KEK. */
void keyring_lock(struct keyring *k);
/* Checks the HSM is reachable and holds the current RK's wrapping key
 * (start-up diagnostics); before init, that the module loads, the token is
 * there and takes the PIN. Warns when [hsm] key_label is not the label of
 * the key in use. Does not unwrap. keyprov_error_detail() says more. */
int keyring_check_hsm(struct keyring *k, struct store *s);

/* Wraps/unwraps a 32-byte key (a user's MFA key) with the HSM key, like the
 * root key: usable while locked, useless without the token. Wrapping uses the
 * HSM key that wraps the current root key (known after init, unlock or
 * keyring_check_hsm()). Serialised with every other HSM use. */
int keyring_hsm_wrap_key(struct keyring *k, const struct secret *key, uint8_t **ret_blob, size_t *ret_len);
int keyring_hsm_unwrap_key(struct keyring *k, const uint8_t *blob, size_t len, struct secret **ret_key);

/* The audit anchor's MAC key, derived from the current RK (libsodium KDF,
 * context "vltaudit"). -EACCES while locked. Caller frees. Root-key rotation
 * re-anchors the chain under the new RK in the transaction that switches. */
int keyring_audit_key(struct keyring *k, struct secret **ret);
/* The MAC key of the authorization rows (users, roles, services), derived
 * from the current RK (context "vltauthz"). -EACCES while locked. */
int keyring_authz_key(struct keyring *k, struct secret **ret);

/* ---- rotation primitives (rotate.c drives them; see docs/architecture.md) ----
 * Each works inside the caller's write transaction and changes nothing in
 * memory that the database does not hold once that transaction commits,
 * except where noted (root activation). Batches return the number of rows
 * done (0: nothing left). -EACCES while locked. */

/* KEK: creates the tenant's version current+1, wrapped under the current RK;
 * writes seal under it from this commit on. -ENOENT if the tenant has no KEK. */
int keyring_kek_begin(struct keyring *k, struct store_tx *tx, const char *tenant, uint32_t *ret_from,
		      uint32_t *ret_to);
/* Rewraps up to limit DEKs of the tenant from older KEK versions to the
 * current one (data untouched). */
int keyring_kek_rewrap_batch(struct keyring *k, struct store_tx *tx, const char *tenant, unsigned limit);
/* Retags destroyed rows and deletes the KEK versions below the current one
 * that nothing references. Returns the count deleted. After commit, call
 * keyring_kek_forget(). */
int keyring_kek_finish(struct keyring *k, struct store_tx *tx, const char *tenant);
/* Drops the tenant's cached KEKs below version 'below', and keeps them out
 * of the cache from now on (a reader on an older snapshot still unwraps
 * them for its own use). */
void keyring_kek_forget(struct keyring *k, const char *tenant, uint32_t below);

/* DEK: re-encrypts up to limit versions under prefix after the cursor with
 * fresh DEKs wrapped by each tenant's current KEK; advances the cursor
 * (cursor_path holds PATH_MAX_TEXT bytes). */
int keyring_reseal_batch(struct keyring *k, struct store_tx *tx, const char *prefix, char *cursor_path,
			 uint32_t *cursor_version, unsigned limit);

/* Root: draws RK current+1, wraps it with the current HSM key and inserts
 * its row (HSM round trip). The new RK is staged, not used, until
 * keyring_root_activate() (call it in the same transaction, just before the
 * commit; if that commit fails, keyring_lock() the keyring: unlocking reloads
 * what the database holds). keyring_root_unstage() drops a staged RK. */
int keyring_root_stage(struct keyring *k, struct store_tx *tx, uint32_t *ret_from, uint32_t *ret_to);
void keyring_root_activate(struct keyring *k);
void keyring_root_unstage(struct keyring *k);
/* The audit MAC key of the staged RK (to re-anchor before activation). */
int keyring_audit_key_staged(struct keyring *k, struct secret **ret);
int keyring_authz_key_staged(struct keyring *k, struct secret **ret);
/* Rewraps up to limit KEKs from older RK versions under the current RK. */
int keyring_root_rewrap_batch(struct keyring *k, struct store_tx *tx, unsigned limit);
/* Deletes the RK rows below the current one. After commit, call
 * keyring_root_forget_old(). */
int keyring_root_finish(struct keyring *k, struct store_tx *tx);
void keyring_root_forget_old(struct keyring *k);

/* HSM key: keyring_hsm_prepare() generates the next version of the
 * configured label in the token (if it is not there yet) outside any write
 * transaction, because key generation on a hardware HSM can take seconds and
 * every audited request waits for the writer. keyring_hsm_rotate() then finds
 * it (or generates it, if prepare was skipped), rewraps every RK row and every
 * user's MFA key under it, and adds the old version to meta "hsm_retire".
 * *ret_count: rows rewrapped. A key prepared but never committed is found and
 * used by the next rotation. */
int keyring_hsm_prepare(struct keyring *k, struct store *s);
int keyring_hsm_rotate(struct keyring *k, struct store_tx *tx, uint32_t *ret_from, uint32_t *ret_to,
		       int64_t *ret_count);
/* The caller's audit record of a side effect, written in tx. result:
 * "attempt" (before it happens), "allowed" or "failed" (after). detail names
 * keys as "label:version" and is never secret. < 0 refuses: the transaction
 * does not commit. */
typedef int (*keyring_record_fn)(void *userdata, struct store_tx *tx, const char *result, const char *detail);
/* Retires the HSM key versions listed in meta "hsm_retire" (except the one
 * wrapping the current RK): rewraps any blob still under one, proves the
 * current HSM key unwraps the current RK, and has record() write the
 * "attempt" record naming the keys, all in one write transaction; only once
 * that commits deletes them from the token. Then, in a second transaction,
 * takes the deleted ones (only those: a rotation may have listed another
 * meanwhile) off the list with record()'s outcome record ("allowed", or
 * "failed" naming the key that could not be deleted). If the attempt record
 * fails, nothing is deleted and its error returns. *ret_deleted (may be
 * NULL): a JSON array of {"label", "version"}. -EACCES while locked. */
int keyring_hsm_retire_audited(struct keyring *k, struct store *s, keyring_record_fn record, void *userdata,
			       json_t **ret_deleted);
/* keyring_hsm_retire_audited() with no records (unit tests of the list
 * handling only; the daemon always records). */
int keyring_hsm_retire(struct keyring *k, struct store *s, json_t **ret_deleted);
/* The HSM key version the last unlock used (0 if none yet). */
uint32_t keyring_unlocked_hsm_version(struct keyring *k);

/* Makes sure tenant has a KEK, creating version 1 in its own committed
 * transaction when it has none. -EACCES when locked. */
int keyring_ensure_kek(struct keyring *k, struct store *s, const char *tenant);
/* Seals plaintext as version 'version' of path under a fresh DEK wrapped by
 * the tenant's current KEK (which keyring_ensure_kek() created), counts the
 * wrap in tx, and fills *ret (caller clears it). *ret_wraps (may be NULL):
 * the KEK's wrap count after this one. -EACCES when locked. */
int keyring_seal(struct keyring *k, struct store_tx *tx, const char *path, uint32_t version,
		 const struct secret *plaintext, struct store_version *ret, uint64_t *ret_wraps);
/* Opens one stored version. -EACCES when locked, -ENOENT when destroyed,
 * -EBADMSG when a blob fails authentication. */
int keyring_open(struct keyring *k, struct store_tx *tx, const char *path,
		 const struct store_version *v, struct secret **ret_plaintext);

/* ---- for tests ---- */
/* Whether KEK (tenant, version) is in the cache. */
bool keyring_kek_cached(struct keyring *k, const char *tenant, uint32_t version);
/* fn(userdata) runs inside keyring_hsm_retire() after the deletions from the
 * token and before its last transaction, with no lock held (a test runs an
 * HSM-key rotation there). Set it before any other thread uses k. */
void keyring_set_retire_hook(struct keyring *k, void (*fn)(void *userdata), void *userdata);
