/* vaultd/keys/keyring_internal.h: the keyring's state, shared by the files
 * that implement keyring.h. Included only inside vaultd/keys/.
 *
 *   keyring.c         lifetime, lock state, init, unlock/lock, HSM
 *                     wrap/unwrap of MFA keys, derived keys, seal/open
 *   kek_cache.c       the KEK cache: guarded slabs, index, LRU, pins, floors
 *   keyring_rotate.c  KEK, DEK and root-key rotation primitives
 *   keyring_hsm.c     HSM-key rotation, the retire list, retirement
 *
 * Include it after vaultd/keys/keyring.h: struct keyring embeds struct
 * keyring_hsm. It does not include keyring.h itself because the include
 * checks (tests/layering, modgraph) count keyring.c and keyring.h as one
 * module, and keyring.c includes this header: that would be a cycle.
 *
 * Locks, outermost first: the store's write transaction, k->state, hsm_mu,
 * cache_mu.
 */
#pragma once
#include <stdio.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/keyprov.h"
#include "common/secret.h"
#include "vaultd/store/store.h"

/* ---- the KEK cache (kek_cache.c, whose top comment gives the design) ---- */

#define KEK_NIL UINT32_MAX
#define KEK_SLABS_MAX 16

struct kek_slot;                        /* kek_cache.c */
struct kek_floor;

struct kek_cache {
	uint8_t *slabs[KEK_SLABS_MAX];
	size_t n_slabs;
	struct kek_slot *slots;
	uint32_t n_slots, n_used, max;
	uint32_t *buckets;              /* n_buckets chain heads, a power of two >= n_slots */
	uint32_t n_buckets;
	uint32_t lru_head, lru_tail, free_head;
	uint8_t hash_key[crypto_shorthash_KEYBYTES];
	struct kek_floor *floors;       /* ascending by tenant */
	size_t n_floors, cap_floors;
};

/* A KEK in use: a view of a pinned slot, or of a key not cached (owned).
 * key.p is borrowed: never secret_free() it. */
struct kek_ref {
	struct secret key;
	uint32_t slot;                  /* pinned slot, or KEK_NIL */
	struct secret *owned;
};
#define KEK_REF_INIT { .slot = KEK_NIL }

/* ---- the keyring ---- */

/* Live root keys: one, or a few while a root rotation runs. */
#define RK_LIVE_MAX 8

struct rk_entry {
	uint32_t version;
	struct secret *key;
};

struct keyring {
	struct keyring_hsm hsm;
	/* Every use of the key provider, open to close. Closing a provider
	 * finalises the PKCS#11 module for the whole process, so two must
	 * never overlap. */
	pthread_mutex_t hsm_mu;
	pthread_rwlock_t state;         /* shared: seal/open; exclusive: unlock/lock/activate */
	struct secret *rk;              /* the current RK (also in rks[]); NULL while locked */
	uint32_t rk_version;
	struct rk_entry rks[RK_LIVE_MAX];
	size_t n_rks;
	struct rk_entry staged;         /* root rotation: inserted, not yet in use */
	/* The HSM key that wraps the current RK (for new MFA keys) and the one
	 * the last unlock proved; guarded by hsm_mu. */
	char hsm_label[KEYPROV_LABEL_MAX + 1];
	uint32_t hsm_version;
	uint32_t unlocked_hsm_version;
	pthread_mutex_t cache_mu;       /* guards cache (see kek_cache.c) */
	struct kek_cache cache;
	/* Tests only (keyring_set_retire_hook()). */
	void (*retire_hook)(void *userdata);
	void *retire_hook_userdata;
};

#ifdef VAULTD_FAULT_INJECTION
/* Test builds: writes "kek TENANT VERSION HEX" for each cached KEK to f. */
void kr_cache_test_dump(struct keyring *k, FILE *f);
#endif

/* ---- keyring.c ---- */

/* The live RK of that version, or NULL. Caller holds k->state (either way). */
const struct secret *kr_rk_find(struct keyring *k, uint32_t version);

/* Wraps rk with HSM key (label, version) and proves the token unwraps it
 * back: wrapping is plain OpenSSL and succeeds even when the token cannot
 * unwrap by the configured mechanism. On failure *ret_blob is NULL. Caller
 * holds hsm_mu and an open provider. 0, -VLT_E_HSM_UNWRAP, keyprov errors. */
int kr_hsm_wrap_checked(struct keyring *k, struct keyprov *kp, const char *label, uint32_t version,
			const struct secret *rk, uint8_t **ret_blob, size_t *ret_len);

/* Copies of the root_keys rows (store_rootkey_list()), at most RK_LIVE_MAX. */
struct rk_rows {
	struct store_rootkey rows[RK_LIVE_MAX];
	size_t n;
};
/* store_rootkey_list() callback; userdata is a struct rk_rows. -E2BIG past
 * RK_LIVE_MAX, -ENOMEM. */
int kr_rk_rows_one(const struct store_rootkey *rk, void *userdata);
void kr_rk_rows_clear(struct rk_rows *l);

/* ---- kek_cache.c ----
 * None may be called with cache_mu held. */

void kr_cache_init(struct kek_cache *c);
/* Wipes and frees every slab and the index (not the floors). Caller holds
 * k->state exclusively, so no key is pinned. */
void kr_cache_clear(struct keyring *k);
/* Frees the floors (keyring_free(), after kr_cache_clear()). */
void kr_cache_fini(struct kek_cache *c);
/* Takes ownership of key, a committed (or, below the tenant's floor, a
 * snapshot's) KEK, and caches it unless its version is below the tenant's
 * floor. If another thread cached the same KEK meanwhile, keeps theirs.
 * ret (may be NULL): a reference to the key, pinned if cached, else owning
 * key. Caller holds k->state (shared). 0 or -EINVAL (not a KEK). */
int kr_cache_put(struct keyring *k, const char *tenant, uint32_t version, struct secret *key, struct kek_ref *ret);
/* KEK (tenant, version), from the cache or unwrapped from its row in tx and
 * cached. Caller holds k->state (shared) with k->rk set. *ret stays valid
 * until kr_kek_unpin(), which the caller calls before releasing k->state.
 * 0, store errors (-ENOENT), -EBADMSG (its RK is not live, or the blob fails
 * authentication). */
int kr_kek_load(struct keyring *k, struct store_tx *tx, const char *tenant, uint32_t version, struct kek_ref *ret);
/* Releases a reference (NULL-safe, idempotent). Before releasing k->state. */
void kr_kek_unpin(struct keyring *k, struct kek_ref *ref);
