/* vaultd/keys/keyring.c: see keyring.h. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "common/err.h"
#include "common/log.h"
#include "common/path.h"
#include "vaultd/keys/envelope.h"
#include "vaultd/keys/keyring.h"

/* ---- the KEK cache: layout (the functions follow keyring_hsm_unwrap_key()) ----
 *
 * Unwrapped tenant KEKs live in a few guarded slabs: sodium_malloc()ed
 * regions of ENVELOPE_KEY_LEN-byte slots, the first of KEK_SLAB_FIRST slots
 * (one page), each later one as large as all before it, up to the cache's
 * maximum. A KEK in a sodium_malloc() of its own cost about four mappings
 * (guard pages and mlock split the region), so some 16,000 tenants reached
 * vm.max_map_count (65,530), after which every guarded allocation, Argon2's
 * memory and new thread stacks failed. Slabs cost a handful of mappings for
 * any number of tenants, and the maximum bounds the locked memory too.
 *
 * Beside the slabs, in ordinary heap memory, the index is not secret: per
 * slot its (tenant, version), a pin count, a hash chain (SipHash under a
 * per-keyring random key: tenant names come from API callers) and an LRU or
 * free-list link. cache_mu guards the index and a slot's bytes while they are
 * written or wiped; slabs never move (only the index is reallocated).
 *
 * A full cache evicts the least recently used unpinned slot: unwrapping the
 * KEK again from its row costs a SELECT and an AES-GCM open.
 *
 * Borrowed keys. seal, open and the rotation batches use a cached key after
 * cache_mu is released, holding k->state shared. Eviction also runs under
 * k->state shared (in another reader's cache_put()), so "valid until lock"
 * no longer holds: without more, a slot could be wiped and refilled with
 * another tenant's KEK under a reader that is still sealing with it. So a
 * lookup pins its slot (refs, under cache_mu) and kek_unpin() releases it,
 * before the reader releases k->state; eviction takes only unpinned slots.
 * Wiping everything (lock, free) and dropping a tenant's old versions
 * (keyring_kek_forget()) take k->state exclusively, when no pin can exist.
 * Copying each key out into a guarded buffer of the caller's would be as
 * safe, but costs a sodium_malloc() (mmap, mprotect, mlock, munmap) per seal
 * and open: the kind of allocation this cache must spare. If every slot is
 * pinned, or a slab cannot be allocated, the unwrapped key is handed to the
 * caller uncached, owned by its reference and freed by kek_unpin().
 *
 * Deleted versions. keyring_kek_forget() records per tenant the lowest live
 * version (its floor). A reader whose snapshot predates the finishing commit
 * of a KEK rotation still sees the deleted row and may unwrap it for its own
 * use (its snapshot's data is sealed under it), but cache_put() does not
 * cache a version below the floor, so a deleted KEK never returns to the
 * cache. Floors are not secret and outlive lock (a read snapshot can outlive
 * a lock and unlock); keyring_free() drops them.
 */
#define KEK_NIL UINT32_MAX
#define KEK_SLAB_FIRST 128u
#define KEK_SLABS_MAX 16
#define KEK_CACHE_DEFAULT 8192u
#define KEK_CACHE_LIMIT (1u << 20)      /* 32 MiB of keys: 14 slabs */

struct kek_slot {
	char tenant[PATH_SEGMENT_MAX + 1];
	uint32_t version;
	uint32_t hash;
	uint32_t refs;                  /* readers using the key now */
	uint32_t hnext;                 /* hash chain */
	uint32_t prev, next;            /* LRU list, most recent first (used); free list, next only */
	uint8_t *key;                   /* ENVELOPE_KEY_LEN bytes in a slab; fixed for the slot's life */
	bool used;
};

struct kek_floor {
	char tenant[PATH_SEGMENT_MAX + 1];
	uint32_t below;                 /* versions below this one are deleted */
};

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
	pthread_mutex_t cache_mu;       /* guards cache (see the top of this file) */
	struct kek_cache cache;
	/* Tests only (keyring_set_retire_hook()). */
	void (*retire_hook)(void *userdata);
	void *retire_hook_userdata;
};

int keyring_new(const struct keyring_hsm *hsm, struct keyring **ret)
{
	struct keyring *k = calloc(1, sizeof(*k));

	if (!k)
		return -ENOMEM;
	k->hsm = *hsm;
	pthread_mutex_init(&k->hsm_mu, NULL);
	pthread_rwlock_init(&k->state, NULL);
	pthread_mutex_init(&k->cache_mu, NULL);
	k->cache.max = KEK_CACHE_DEFAULT;
	k->cache.lru_head = k->cache.lru_tail = k->cache.free_head = KEK_NIL;
	crypto_shorthash_keygen(k->cache.hash_key);
	*ret = k;
	return 0;
}

/* Wipes and frees every slab and the index (not the floors). Caller holds
 * k->state exclusively, so no key is pinned. */
static void cache_clear(struct keyring *k)
{
	struct kek_cache *c = &k->cache;

	pthread_mutex_lock(&k->cache_mu);
	for (size_t i = 0; i < c->n_slabs; i++)
		sodium_free(c->slabs[i]);       /* wipes */
	memset(c->slabs, 0, sizeof(c->slabs));
	c->n_slabs = 0;
	free(c->slots);
	c->slots = NULL;
	free(c->buckets);
	c->buckets = NULL;
	c->n_slots = c->n_used = c->n_buckets = 0;
	c->lru_head = c->lru_tail = c->free_head = KEK_NIL;
	pthread_mutex_unlock(&k->cache_mu);
}

/* Caller holds k->state exclusively. */
static void rks_clear(struct keyring *k)
{
	for (size_t i = 0; i < k->n_rks; i++)
		secret_free(k->rks[i].key);
	memset(k->rks, 0, sizeof(k->rks));
	k->n_rks = 0;
	secret_free(k->staged.key);
	k->staged = (struct rk_entry){0};
	k->rk = NULL;
	k->rk_version = 0;
}

/* Caller holds k->state (either way). */
static const struct secret *rk_find(struct keyring *k, uint32_t version)
{
	for (size_t i = 0; i < k->n_rks; i++)
		if (k->rks[i].version == version)
			return k->rks[i].key;
	return NULL;
}

void keyring_lock(struct keyring *k)
{
	pthread_rwlock_wrlock(&k->state);
	rks_clear(k);
	cache_clear(k);
	pthread_rwlock_unlock(&k->state);
}

void keyring_free(struct keyring *k)
{
	if (!k)
		return;
	keyring_lock(k);
	free(k->cache.floors);
	pthread_rwlock_destroy(&k->state);
	pthread_mutex_destroy(&k->cache_mu);
	pthread_mutex_destroy(&k->hsm_mu);
	free(k);
}

bool keyring_is_unlocked(struct keyring *k)
{
	bool u;

	pthread_rwlock_rdlock(&k->state);
	u = k->rk != NULL;
	pthread_rwlock_unlock(&k->state);
	return u;
}

static int derive_audit_key(const struct secret *rk, struct secret **ret);
static int derive_authz_key(const struct secret *rk, struct secret **ret);

static int init_locked(struct keyring *k, struct store_tx *tx, struct secret **ret_audit_key,
		       struct secret **ret_authz_key)
{
	_cleanup_(keyprov_closep) struct keyprov *kp = NULL;
	_cleanup_secret_ struct secret *rk = NULL;
	struct store_rootkey row = { .version = 1, .hsm_version = 1 };
	int r;

	r = keyprov_open(&k->hsm.prov, &kp);
	if (r < 0)
		return r;
	r = keyprov_find(kp, k->hsm.key_label, 1);
	if (r == -VLT_E_HSM_KEY_NOT_FOUND)
		r = keyprov_generate(kp, k->hsm.key_label, 1);
	else if (r == 0)
		/* Left by an init that crashed before its commit, or shared with
		 * another vault on this token. Reusing it is safe: this vault's RK
		 * is fresh either way. */
		log_notice("reusing existing HSM key '%s' version 1", k->hsm.key_label);
	if (r < 0)
		return r;

	r = secret_random(KEYPROV_RK_LEN, &rk);
	if (r < 0)
		return r;
	r = keyprov_wrap(kp, k->hsm.key_label, 1, k->hsm.mech, k->hsm.hash, rk, &row.blob, &row.blob_len);
	if (r < 0)
		return r;
	/* Wrapping is plain OpenSSL and succeeds even when the token cannot
	 * unwrap by the chosen mechanism: prove the round trip before the
	 * vault depends on it. */
	{
		_cleanup_secret_ struct secret *check = NULL;
		r = keyprov_unwrap(kp, row.blob, row.blob_len, &check);
		if (r >= 0 && !secret_equal(rk, check))
			r = -VLT_E_HSM_UNWRAP;
		if (r < 0) {
			free(row.blob);
			return r;
		}
	}
	snprintf(row.hsm_label, sizeof(row.hsm_label), "%s", k->hsm.key_label);
	row.created_at = time(NULL);
	r = store_rootkey_put(tx, &row);
	free(row.blob);
	if (r >= 0 && ret_audit_key)
		r = derive_audit_key(rk, ret_audit_key);
	if (r >= 0 && ret_authz_key && (r = derive_authz_key(rk, ret_authz_key)) < 0 && ret_audit_key)
		secret_free(TAKE_PTR(*ret_audit_key));
	if (r >= 0) {
		snprintf(k->hsm_label, sizeof(k->hsm_label), "%s", k->hsm.key_label);
		k->hsm_version = 1;
	}
	return r;
}

struct rk_rows {
	struct store_rootkey rows[RK_LIVE_MAX];
	size_t n;
};

static int rk_rows_one(const struct store_rootkey *rk, void *userdata)
{
	struct rk_rows *l = userdata;
	struct store_rootkey *d;

	if (l->n == RK_LIVE_MAX)
		return log_error_errno(-E2BIG, "more than %d root key versions are live", RK_LIVE_MAX);
	d = &l->rows[l->n];
	*d = *rk;
	d->blob = malloc(rk->blob_len);
	if (!d->blob)
		return -ENOMEM;
	memcpy(d->blob, rk->blob, rk->blob_len);
	l->n++;
	return 0;
}

static void rk_rows_clear(struct rk_rows *l)
{
	for (size_t i = 0; i < l->n; i++)
		store_rootkey_clear(&l->rows[i]);
	l->n = 0;
}

static int rk_rows_load(struct store *s, struct rk_rows *l)
{
	struct store_tx *tx = NULL;
	int r;

	r = store_read_begin(s, &tx);
	if (r < 0)
		return r;
	r = store_rootkey_list(tx, rk_rows_one, l);
	store_tx_end(tx);
	if (r >= 0 && l->n == 0)
		r = -ENOENT;
	if (r < 0)
		rk_rows_clear(l);
	return r;
}

/* Remembers which HSM key wraps the current RK. Caller holds hsm_mu. */
static void note_hsm_key(struct keyring *k, const struct store_rootkey *current)
{
	snprintf(k->hsm_label, sizeof(k->hsm_label), "%s", current->hsm_label);
	k->hsm_version = current->hsm_version;
}

int keyring_unlock(struct keyring *k, struct store *s)
{
	_cleanup_(keyprov_closep) struct keyprov *kp = NULL;
	struct rk_entry got[RK_LIVE_MAX] = {0};
	struct rk_rows rows = {0};
	size_t i;
	int r;

	if (keyring_is_unlocked(k))
		return 0;
	r = rk_rows_load(s, &rows);
	if (r < 0)
		return r;

	pthread_mutex_lock(&k->hsm_mu);
	r = keyprov_open(&k->hsm.prov, &kp);
	for (i = 0; r >= 0 && i < rows.n; i++) {
		got[i].version = rows.rows[i].version;
		r = keyprov_unwrap(kp, rows.rows[i].blob, rows.rows[i].blob_len, &got[i].key);
		if (r >= 0 && got[i].key->len != KEYPROV_RK_LEN)
			r = -VLT_E_HSM_UNWRAP;
	}
	keyprov_close(TAKE_PTR(kp));
	if (r >= 0) {
		note_hsm_key(k, &rows.rows[rows.n - 1]);
		k->unlocked_hsm_version = rows.rows[rows.n - 1].hsm_version;
	}
	pthread_mutex_unlock(&k->hsm_mu);

	if (r >= 0) {
		pthread_rwlock_wrlock(&k->state);
		if (!k->rk) {
			for (i = 0; i < rows.n; i++) {
				k->rks[i] = got[i];
				got[i] = (struct rk_entry){0};
			}
			k->n_rks = rows.n;
			/* rows ascend by version: the last is current. */
			k->rk = k->rks[rows.n - 1].key;
			k->rk_version = k->rks[rows.n - 1].version;
		}
		pthread_rwlock_unlock(&k->state);
	}
	for (i = 0; i < RK_LIVE_MAX; i++)
		secret_free(got[i].key);
	rk_rows_clear(&rows);
	return r;
}

int keyring_check_hsm(struct keyring *k, struct store *s)
{
	_cleanup_(keyprov_closep) struct keyprov *kp = NULL;
	struct store_rootkey row = {0};
	struct keyprov_blob b;
	struct store_tx *tx = NULL;
	int r;

	r = store_read_begin(s, &tx);
	if (r < 0)
		return r;
	r = store_rootkey_get_current(tx, &row);
	store_tx_end(tx);
	if (r < 0)
		return r;
	r = keyprov_blob_parse(row.blob, row.blob_len, &b);
	pthread_mutex_lock(&k->hsm_mu);
	if (r >= 0)
		r = keyprov_open(&k->hsm.prov, &kp);
	if (r >= 0)
		r = keyprov_find(kp, b.label, b.key_version);
	keyprov_close(TAKE_PTR(kp));
	if (r >= 0)
		note_hsm_key(k, &row);
	pthread_mutex_unlock(&k->hsm_mu);
	store_rootkey_clear(&row);
	return r;
}

int keyring_init_keys(struct keyring *k, struct store_tx *tx, struct secret **ret_audit_key,
		      struct secret **ret_authz_key)
{
	int r;

	pthread_mutex_lock(&k->hsm_mu);
	r = init_locked(k, tx, ret_audit_key, ret_authz_key);
	pthread_mutex_unlock(&k->hsm_mu);
	return r;
}

int keyring_init(struct keyring *k, struct store_tx *tx)
{
	return keyring_init_keys(k, tx, NULL, NULL);
}

int keyring_hsm_wrap_key(struct keyring *k, const struct secret *key, uint8_t **ret_blob, size_t *ret_len)
{
	_cleanup_(keyprov_closep) struct keyprov *kp = NULL;
	int r;

	pthread_mutex_lock(&k->hsm_mu);
	if (!k->hsm_version)
		r = log_error_errno(-VLT_E_HSM_KEY_NOT_FOUND, "the current HSM key is not known yet");
	else
		r = keyprov_open(&k->hsm.prov, &kp);
	/* A blob that misses an HSM-key rotation running meanwhile is caught by
	 * keyring_hsm_retire(), which rewraps stragglers before deleting. */
	if (r >= 0)
		r = keyprov_wrap(kp, k->hsm_label, k->hsm_version, k->hsm.mech, k->hsm.hash, key, ret_blob,
				 ret_len);
	keyprov_close(TAKE_PTR(kp));
	pthread_mutex_unlock(&k->hsm_mu);
	return r;
}

int keyring_hsm_unwrap_key(struct keyring *k, const uint8_t *blob, size_t len, struct secret **ret_key)
{
	_cleanup_(keyprov_closep) struct keyprov *kp = NULL;
	int r;

	pthread_mutex_lock(&k->hsm_mu);
	r = keyprov_open(&k->hsm.prov, &kp);
	if (r >= 0)
		r = keyprov_unwrap(kp, blob, len, ret_key);
	keyprov_close(TAKE_PTR(kp));
	pthread_mutex_unlock(&k->hsm_mu);
	return r;
}

/* ---- the KEK cache (layout and reasoning at the top of this file) ----
 * Functions named slot_* and cache_* other than cache_get/cache_put expect
 * cache_mu held. */

static uint32_t kek_hash(const struct kek_cache *c, const char *tenant, uint32_t version)
{
	uint8_t in[PATH_SEGMENT_MAX + 1 + 4], out[crypto_shorthash_BYTES];
	size_t n = strnlen(tenant, PATH_SEGMENT_MAX);
	uint32_t h;

	memcpy(in, tenant, n);
	in[n++] = '\0';
	memcpy(in + n, &version, 4);
	crypto_shorthash(out, in, n + 4, c->hash_key);
	memcpy(&h, out, sizeof(h));
	return h;
}

static uint32_t slot_find(const struct kek_cache *c, uint32_t hash, const char *tenant, uint32_t version)
{
	if (!c->n_buckets)
		return KEK_NIL;
	for (uint32_t i = c->buckets[hash & (c->n_buckets - 1)]; i != KEK_NIL; i = c->slots[i].hnext)
		if (c->slots[i].hash == hash && c->slots[i].version == version && streq(c->slots[i].tenant, tenant))
			return i;
	return KEK_NIL;
}

static void lru_unlink(struct kek_cache *c, uint32_t i)
{
	struct kek_slot *e = &c->slots[i];

	if (e->prev != KEK_NIL)
		c->slots[e->prev].next = e->next;
	else
		c->lru_head = e->next;
	if (e->next != KEK_NIL)
		c->slots[e->next].prev = e->prev;
	else
		c->lru_tail = e->prev;
	e->prev = e->next = KEK_NIL;
}

static void lru_push_front(struct kek_cache *c, uint32_t i)
{
	struct kek_slot *e = &c->slots[i];

	e->prev = KEK_NIL;
	e->next = c->lru_head;
	if (c->lru_head != KEK_NIL)
		c->slots[c->lru_head].prev = i;
	c->lru_head = i;
	if (c->lru_tail == KEK_NIL)
		c->lru_tail = i;
}

static void hash_insert(struct kek_cache *c, uint32_t i)
{
	uint32_t *head = &c->buckets[c->slots[i].hash & (c->n_buckets - 1)];

	c->slots[i].hnext = *head;
	*head = i;
}

static void hash_unlink(struct kek_cache *c, uint32_t i)
{
	uint32_t *pp = &c->buckets[c->slots[i].hash & (c->n_buckets - 1)];

	while (*pp != i)
		pp = &c->slots[*pp].hnext;
	*pp = c->slots[i].hnext;
	c->slots[i].hnext = KEK_NIL;
}

/* Takes a used, unpinned slot out of the index and wipes its key; the slot
 * is then neither used nor on the free list. */
static void slot_drop(struct kek_cache *c, uint32_t i)
{
	struct kek_slot *e = &c->slots[i];

	hash_unlink(c, i);
	lru_unlink(c, i);
	sodium_memzero(e->key, ENVELOPE_KEY_LEN);
	e->tenant[0] = '\0';
	e->version = 0;
	e->used = false;
	c->n_used--;
}

static void slot_free(struct kek_cache *c, uint32_t i)
{
	c->slots[i].next = c->free_head;
	c->free_head = i;
}

/* Adds a slab: as many slots as there are (KEK_SLAB_FIRST for the first),
 * up to max. -ENOBUFS at the maximum, -ENOMEM. */
static int cache_grow(struct kek_cache *c)
{
	uint32_t add = c->n_slabs ? c->n_slots : KEK_SLAB_FIRST, n, nb;
	struct kek_slot *slots;
	uint32_t *buckets = NULL;
	uint8_t *slab;

	if (c->n_slots >= c->max || c->n_slabs == KEK_SLABS_MAX)
		return -ENOBUFS;
	add = MIN(add, c->max - c->n_slots);
	n = c->n_slots + add;
	for (nb = c->n_buckets ? c->n_buckets : 64; nb < n; nb *= 2)
		;
	slots = reallocarray(c->slots, n, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	c->slots = slots;               /* larger, still n_slots in use */
	if (nb != c->n_buckets) {
		buckets = malloc(nb * sizeof(*buckets));
		if (!buckets)
			return -ENOMEM;
	}
	slab = sodium_malloc((size_t)add * ENVELOPE_KEY_LEN);
	if (!slab) {
		free(buckets);
		return -ENOMEM;
	}
	sodium_memzero(slab, (size_t)add * ENVELOPE_KEY_LEN);   /* sodium_malloc() fills with 0xdb */
	c->slabs[c->n_slabs++] = slab;
	for (uint32_t j = 0; j < add; j++) {
		uint32_t i = c->n_slots + j;

		slots[i] = (struct kek_slot){ .hnext = KEK_NIL, .prev = KEK_NIL, .next = KEK_NIL,
					      .key = slab + (size_t)j * ENVELOPE_KEY_LEN };
	}
	/* Free list in ascending order: the lowest slots fill first. */
	for (uint32_t j = add; j-- > 0;)
		slot_free(c, c->n_slots + j);
	c->n_slots = n;
	if (buckets) {
		free(c->buckets);
		c->buckets = buckets;
		c->n_buckets = nb;
		for (uint32_t i = 0; i < nb; i++)
			buckets[i] = KEK_NIL;
		for (uint32_t i = 0; i < c->n_slots; i++)
			if (slots[i].used)
				hash_insert(c, i);
	}
	return 0;
}

/* A slot to fill: a free one (growing while below max), else the least
 * recently used unpinned one, evicted. KEK_NIL if every slot is pinned or
 * no slab can be allocated. */
static uint32_t cache_take_slot(struct kek_cache *c)
{
	uint32_t i;

	if (c->n_used < c->max && c->free_head == KEK_NIL)
		(void)cache_grow(c);    /* on failure, evict instead */
	if (c->n_used < c->max && c->free_head != KEK_NIL) {
		i = c->free_head;
		c->free_head = c->slots[i].next;
		c->slots[i].next = KEK_NIL;
		return i;
	}
	for (i = c->lru_tail; i != KEK_NIL; i = c->slots[i].prev)
		if (c->slots[i].refs == 0) {
			slot_drop(c, i);
			return i;
		}
	return KEK_NIL;
}

static bool below_floor(const struct kek_cache *c, const char *tenant, uint32_t version)
{
	size_t lo = 0, hi = c->n_floors;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int d = strcmp(c->floors[mid].tenant, tenant);

		if (d == 0)
			return version < c->floors[mid].below;
		if (d < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* Versions of tenant below 'below' may never be cached again. */
static int cache_raise_floor(struct kek_cache *c, const char *tenant, uint32_t below)
{
	size_t lo = 0, hi = c->n_floors;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int d = strcmp(c->floors[mid].tenant, tenant);

		if (d == 0) {
			c->floors[mid].below = MAX(c->floors[mid].below, below);
			return 0;
		}
		if (d < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (c->n_floors == c->cap_floors) {
		size_t cap = c->cap_floors ? c->cap_floors * 2 : 16;
		struct kek_floor *p = reallocarray(c->floors, cap, sizeof(*p));

		if (!p)
			return -ENOMEM;
		c->floors = p;
		c->cap_floors = cap;
	}
	memmove(&c->floors[lo + 1], &c->floors[lo], (c->n_floors - lo) * sizeof(*c->floors));
	snprintf(c->floors[lo].tenant, sizeof(c->floors[lo].tenant), "%s", tenant);
	c->floors[lo].below = below;
	c->n_floors++;
	return 0;
}

static void kek_ref_pin(struct kek_cache *c, uint32_t i, struct kek_ref *ret)
{
	c->slots[i].refs++;
	lru_unlink(c, i);
	lru_push_front(c, i);
	*ret = (struct kek_ref){
		.key = { .p = c->slots[i].key, .len = ENVELOPE_KEY_LEN, .cap = ENVELOPE_KEY_LEN },
		.slot = i,
	};
}

/* Releases a reference (NULL-safe, idempotent). Before releasing k->state. */
static void kek_unpin(struct keyring *k, struct kek_ref *ref)
{
	if (ref->slot != KEK_NIL) {
		pthread_mutex_lock(&k->cache_mu);
		k->cache.slots[ref->slot].refs--;
		pthread_mutex_unlock(&k->cache_mu);
	}
	secret_free(ref->owned);
	*ref = (struct kek_ref)KEK_REF_INIT;
}

/* Caller holds k->state (shared). On a hit, pins the slot into *ret. */
static bool cache_get(struct keyring *k, const char *tenant, uint32_t version, struct kek_ref *ret)
{
	struct kek_cache *c = &k->cache;
	uint32_t i;

	pthread_mutex_lock(&k->cache_mu);
	i = slot_find(c, kek_hash(c, tenant, version), tenant, version);
	if (i != KEK_NIL)
		kek_ref_pin(c, i, ret);
	pthread_mutex_unlock(&k->cache_mu);
	return i != KEK_NIL;
}

/* Takes ownership of key, a committed (or, below the tenant's floor, a
 * snapshot's) KEK, and caches it unless its version is below the tenant's
 * floor. If another thread cached the same KEK meanwhile, keeps theirs.
 * ret (may be NULL): a reference to the key, pinned if cached, else owning
 * key. Caller holds k->state (shared). 0 or -EINVAL (not a KEK). */
static int cache_put(struct keyring *k, const char *tenant, uint32_t version, struct secret *key,
		     struct kek_ref *ret)
{
	struct kek_cache *c = &k->cache;
	uint32_t hash = kek_hash(c, tenant, version), i = KEK_NIL;
	bool cached = false;

	if (key->len != ENVELOPE_KEY_LEN) {
		secret_free(key);
		return -EINVAL;
	}
	pthread_mutex_lock(&k->cache_mu);
	if (!below_floor(c, tenant, version)) {
		i = slot_find(c, hash, tenant, version);
		if (i == KEK_NIL && (i = cache_take_slot(c)) != KEK_NIL) {
			struct kek_slot *e = &c->slots[i];

			memcpy(e->key, key->p, ENVELOPE_KEY_LEN);
			snprintf(e->tenant, sizeof(e->tenant), "%s", tenant);
			e->version = version;
			e->hash = hash;
			e->refs = 0;
			e->used = true;
			c->n_used++;
			hash_insert(c, i);
			lru_push_front(c, i);
		}
		cached = i != KEK_NIL;
		if (cached && ret)
			kek_ref_pin(c, i, ret);
	}
	pthread_mutex_unlock(&k->cache_mu);
	if (cached || !ret) {
		secret_free(key);
		return 0;
	}
	*ret = (struct kek_ref){ .key = { .p = key->p, .len = key->len, .cap = key->cap }, .slot = KEK_NIL,
				 .owned = key };
	return 0;
}

/* Caller holds k->state (shared) with k->rk set. *ret stays valid until
 * kek_unpin(), which the caller calls before releasing k->state. */
static int kek_load(struct keyring *k, struct store_tx *tx, const char *tenant, uint32_t version,
		    struct kek_ref *ret)
{
	struct store_kek row = {0};
	const struct secret *rk;
	struct secret *key;
	int r;

	if (cache_get(k, tenant, version, ret))
		return 0;
	r = store_kek_get(tx, tenant, version, &row);
	if (r < 0)
		return r;
	rk = rk_find(k, row.rk_version);
	if (!rk) {
		store_kek_clear(&row);
		/* XXX: also reachable by a reader whose snapshot spans a whole
		 * root rotation after its KEK was evicted: that request fails,
		 * a retry succeeds. */
		return log_error_errno(-EBADMSG, "KEK '%s' v%u is wrapped under root key v%u, which is not live",
				       tenant, version, row.rk_version);
	}
	r = envelope_unwrap_kek(rk, row.rk_version, tenant, version, row.blob, row.blob_len, &key);
	store_kek_clear(&row);
	if (r < 0)
		return r;
	return cache_put(k, tenant, version, key, ret);
}

int keyring_ensure_kek(struct keyring *k, struct store *s, const char *tenant)
{
	_cleanup_secret_ struct secret *kek = NULL;
	struct store_kek row = {0};
	struct store_tx *tx = NULL;
	int r;

	/* Lock order: the write transaction first (see keyring.h). */
	r = store_write_begin(s, &tx);
	if (r < 0)
		return r;
	pthread_rwlock_rdlock(&k->state);
	if (!k->rk) {
		r = -EACCES;
		goto out;
	}
	r = store_kek_get_current(tx, tenant, &row);
	if (r == 0) {
		store_kek_clear(&row);
		goto out;       /* exists */
	}
	if (r != -ENOENT)
		goto out;

	r = secret_random(ENVELOPE_KEY_LEN, &kek);
	if (r < 0)
		goto out;
	snprintf(row.tenant, sizeof(row.tenant), "%s", tenant);
	row.version = 1;
	row.rk_version = k->rk_version;
	row.created_at = time(NULL);
	r = envelope_wrap_kek(k->rk, k->rk_version, tenant, 1, kek, &row.blob, &row.blob_len);
	if (r < 0)
		goto out;
	r = store_kek_put(tx, &row);
	free(row.blob);
	if (r < 0)
		goto out;
	r = store_write_commit(TAKE_PTR(tx));
	if (r < 0)
		goto out;
	r = cache_put(k, tenant, 1, TAKE_PTR(kek), /* ret= */ NULL);
out:
	store_tx_end(tx);
	pthread_rwlock_unlock(&k->state);
	return r;
}

int keyring_seal(struct keyring *k, struct store_tx *tx, const char *path, uint32_t version,
		 const struct secret *plaintext, struct store_version *ret, uint64_t *ret_wraps)
{
	_cleanup_secret_ struct secret *dek = NULL;
	char tenant[PATH_SEGMENT_MAX + 1];
	struct store_version v = { .version = version };
	struct store_kek row = {0};
	struct kek_ref kek = KEK_REF_INIT;
	int r;

	r = path_tenant(path, tenant);
	if (r < 0)
		return r;
	pthread_rwlock_rdlock(&k->state);
	if (!k->rk) {
		r = -EACCES;
		goto out;
	}
	r = store_kek_get_current(tx, tenant, &row);
	if (r < 0)
		goto out;
	v.kek_version = row.version;
	if (ret_wraps)
		*ret_wraps = row.wrap_count + 1;
	store_kek_clear(&row);
	r = kek_load(k, tx, tenant, v.kek_version, &kek);
	if (r < 0)
		goto out;

	r = secret_random(ENVELOPE_KEY_LEN, &dek);
	if (r < 0)
		goto out;
	r = envelope_seal_data(dek, path, version, plaintext, &v.data_blob, &v.data_len);
	if (r < 0)
		goto out;
	r = envelope_wrap_dek(&kek.key, v.kek_version, path, version, dek, &v.dek_blob, &v.dek_len);
	if (r < 0)
		goto out;
	r = store_kek_add_wraps(tx, tenant, v.kek_version, 1);
	if (r < 0)
		goto out;
	v.created_at = time(NULL);
	*ret = v;
	v = (struct store_version){0};
out:
	kek_unpin(k, &kek);
	pthread_rwlock_unlock(&k->state);
	store_version_clear(&v);
	return r;
}

int keyring_open(struct keyring *k, struct store_tx *tx, const char *path,
		 const struct store_version *v, struct secret **ret_plaintext)
{
	_cleanup_secret_ struct secret *dek = NULL;
	char tenant[PATH_SEGMENT_MAX + 1];
	struct kek_ref kek = KEK_REF_INIT;
	int r;

	if (!v->dek_blob || !v->data_blob)
		return -ENOENT;
	r = path_tenant(path, tenant);
	if (r < 0)
		return r;
	pthread_rwlock_rdlock(&k->state);
	if (!k->rk) {
		r = -EACCES;
		goto out;
	}
	r = kek_load(k, tx, tenant, v->kek_version, &kek);
	if (r < 0)
		goto out;
	r = envelope_unwrap_dek(&kek.key, v->kek_version, path, v->version, v->dek_blob, v->dek_len, &dek);
	if (r < 0)
		goto out;
	r = envelope_open_data(dek, path, v->version, v->data_blob, v->data_len, ret_plaintext);
out:
	kek_unpin(k, &kek);
	pthread_rwlock_unlock(&k->state);
	return r;
}

int keyring_audit_key(struct keyring *k, struct secret **ret)
{
	int r;

	pthread_rwlock_rdlock(&k->state);
	r = k->rk ? derive_audit_key(k->rk, ret) : -EACCES;
	pthread_rwlock_unlock(&k->state);
	return r;
}

int keyring_authz_key(struct keyring *k, struct secret **ret)
{
	int r;

	pthread_rwlock_rdlock(&k->state);
	r = k->rk ? derive_authz_key(k->rk, ret) : -EACCES;
	pthread_rwlock_unlock(&k->state);
	return r;
}

/* ---- rotation ---- */

/* Rows copied out of a batch query before they are rewritten: SQLite leaves
 * undefined what a running SELECT sees of rows changed under it. */
struct row_copy {
	char path[PATH_MAX_TEXT];
	struct store_version v;
};

struct row_batch {
	struct row_copy *rows;
	size_t n, cap;
	size_t bytes;
	bool with_data;
};

/* Keeps a batch's memory bounded whatever the rows hold. */
#define BATCH_BYTES_MAX (8u << 20)

static int batch_one(const char *path, const struct store_version *v, void *userdata)
{
	struct row_batch *b = userdata;
	struct row_copy *c;

	if (b->n > 0 && b->bytes >= BATCH_BYTES_MAX)
		return -ENOBUFS;        /* enough for this batch; not an error */
	if (b->n == b->cap)
		return -ENOBUFS;
	c = &b->rows[b->n];
	snprintf(c->path, sizeof(c->path), "%s", path);
	c->v = (struct store_version){ .version = v->version, .kek_version = v->kek_version,
				       .created_at = v->created_at };
	c->v.dek_blob = malloc(v->dek_len);
	if (!c->v.dek_blob)
		return -ENOMEM;
	memcpy(c->v.dek_blob, v->dek_blob, v->dek_len);
	c->v.dek_len = v->dek_len;
	if (b->with_data) {
		c->v.data_blob = malloc(v->data_len);
		if (!c->v.data_blob) {
			store_version_clear(&c->v);
			return -ENOMEM;
		}
		memcpy(c->v.data_blob, v->data_blob, v->data_len);
		c->v.data_len = v->data_len;
	}
	b->bytes += v->dek_len + (b->with_data ? v->data_len : 0);
	b->n++;
	return 0;
}

static int batch_init(struct row_batch *b, unsigned limit, bool with_data)
{
	*b = (struct row_batch){ .cap = limit, .with_data = with_data };
	b->rows = calloc(limit, sizeof(*b->rows));
	return b->rows ? 0 : -ENOMEM;
}

static void batch_free(struct row_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		store_version_clear(&b->rows[i].v);
	free(b->rows);
	*b = (struct row_batch){0};
}

int keyring_kek_begin(struct keyring *k, struct store_tx *tx, const char *tenant, uint32_t *ret_from,
		      uint32_t *ret_to)
{
	_cleanup_secret_ struct secret *kek = NULL;
	struct store_kek row = {0};
	uint32_t from;
	int r;

	pthread_rwlock_rdlock(&k->state);
	if (!k->rk) {
		r = -EACCES;
		goto out;
	}
	r = store_kek_get_current(tx, tenant, &row);
	if (r < 0)
		goto out;
	from = row.version;
	store_kek_clear(&row);
	if (from == UINT32_MAX) {
		r = -EOVERFLOW;
		goto out;
	}
	r = secret_random(ENVELOPE_KEY_LEN, &kek);
	if (r < 0)
		goto out;
	snprintf(row.tenant, sizeof(row.tenant), "%s", tenant);
	row.version = from + 1;
	row.rk_version = k->rk_version;
	row.created_at = time(NULL);
	r = envelope_wrap_kek(k->rk, k->rk_version, tenant, row.version, kek, &row.blob, &row.blob_len);
	if (r < 0)
		goto out;
	r = store_kek_put(tx, &row);
	free(row.blob);
	if (r < 0)
		goto out;
	/* Not cached here: the cache holds committed keys only, and this row
	 * commits with the caller's transaction. */
	*ret_from = from;
	*ret_to = from + 1;
out:
	pthread_rwlock_unlock(&k->state);
	return r;
}

int keyring_kek_rewrap_batch(struct keyring *k, struct store_tx *tx, const char *tenant, unsigned limit)
{
	struct row_batch b = {0};
	struct store_kek cur = {0};
	struct kek_ref new_kek = KEK_REF_INIT, old_kek = KEK_REF_INIT;
	int r;

	pthread_rwlock_rdlock(&k->state);
	if (!k->rk) {
		r = -EACCES;
		goto out;
	}
	r = store_kek_get_current(tx, tenant, &cur);
	if (r < 0)
		goto out;
	r = kek_load(k, tx, tenant, cur.version, &new_kek);
	if (r < 0)
		goto out;
	r = batch_init(&b, limit, false);
	if (r < 0)
		goto out;
	r = store_version_list_old_kek(tx, tenant, cur.version, limit, batch_one, &b);
	if (r < 0 && r != -ENOBUFS)
		goto out;
	for (size_t i = 0; i < b.n; i++) {
		struct row_copy *c = &b.rows[i];
		_cleanup_secret_ struct secret *dek = NULL;
		_cleanup_free_ uint8_t *blob = NULL;
		size_t len;

		r = kek_load(k, tx, tenant, c->v.kek_version, &old_kek);
		if (r < 0)
			goto out;
		/* The DEK passes through guarded memory; the data stays sealed. */
		r = envelope_unwrap_dek(&old_kek.key, c->v.kek_version, c->path, c->v.version, c->v.dek_blob,
					c->v.dek_len, &dek);
		kek_unpin(k, &old_kek);
		if (r < 0) {
			log_error_errno(r, "cannot unwrap the DEK of '%s' version %u", c->path, c->v.version);
			goto out;
		}
		r = envelope_wrap_dek(&new_kek.key, cur.version, c->path, c->v.version, dek, &blob, &len);
		if (r < 0)
			goto out;
		r = store_version_rewrap(tx, c->path, c->v.version, cur.version, blob, len, NULL, 0);
		if (r < 0)
			goto out;
	}
	if (b.n > 0)
		r = store_kek_add_wraps(tx, tenant, cur.version, b.n);
	if (r >= 0)
		r = (int)b.n;
out:
	kek_unpin(k, &new_kek);
	pthread_rwlock_unlock(&k->state);
	batch_free(&b);
	store_kek_clear(&cur);
	return r;
}

int keyring_kek_finish(struct keyring *k, struct store_tx *tx, const char *tenant)
{
	struct store_kek cur = {0};
	int64_t left;
	int r;

	if (!keyring_is_unlocked(k))
		return -EACCES;
	r = store_kek_get_current(tx, tenant, &cur);
	if (r < 0)
		return r;
	left = store_version_count_old_kek(tx, tenant, cur.version);
	if (left != 0) {
		store_kek_clear(&cur);
		return left < 0 ? (int)left : -EAGAIN;
	}
	r = store_version_retag_destroyed(tx, tenant, cur.version);
	if (r >= 0)
		r = store_kek_delete_unused(tx, tenant, cur.version);
	store_kek_clear(&cur);
	return r;
}

void keyring_kek_forget(struct keyring *k, const char *tenant, uint32_t below)
{
	struct kek_cache *c = &k->cache;
	int r;

	/* Exclusive: no reader holds a pin. Rare (once per KEK rotation), so
	 * a walk over every slot is fine. */
	pthread_rwlock_wrlock(&k->state);
	pthread_mutex_lock(&k->cache_mu);
	for (uint32_t i = 0; i < c->n_slots; i++)
		if (c->slots[i].used && c->slots[i].version < below && streq(c->slots[i].tenant, tenant)) {
			slot_drop(c, i);
			slot_free(c, i);
		}
	/* Readers on snapshots older than the rotation's finish still see the
	 * deleted rows: the floor keeps what they unwrap out of the cache. */
	r = cache_raise_floor(c, tenant, below);
	pthread_mutex_unlock(&k->cache_mu);
	pthread_rwlock_unlock(&k->state);
	if (r < 0)
		log_error_errno(r, "tenant '%s': cannot record that KEK versions below %u are deleted; "
				"readers of older snapshots may cache them again until lock", tenant, below);
}

int keyring_reseal_batch(struct keyring *k, struct store_tx *tx, const char *prefix, char *cursor_path,
			 uint32_t *cursor_version, unsigned limit)
{
	char tenant[PATH_SEGMENT_MAX + 1] = "";
	struct row_batch b = {0};
	struct store_kek cur = {0};
	struct kek_ref kek = KEK_REF_INIT, old_kek = KEK_REF_INIT;
	int r;

	pthread_rwlock_rdlock(&k->state);
	if (!k->rk) {
		r = -EACCES;
		goto out;
	}
	r = batch_init(&b, limit, true);
	if (r < 0)
		goto out;
	r = store_version_list_range(tx, prefix, cursor_path, *cursor_version, limit, batch_one, &b);
	if (r < 0 && r != -ENOBUFS)
		goto out;
	r = 0;
	for (size_t i = 0; i < b.n; i++) {
		struct row_copy *c = &b.rows[i];
		_cleanup_secret_ struct secret *dek = NULL, *plain = NULL, *new_dek = NULL;
		_cleanup_free_ uint8_t *dek_blob = NULL, *data_blob = NULL;
		char t[PATH_SEGMENT_MAX + 1];
		size_t dek_len, data_len;

		r = path_tenant(c->path, t);
		if (r < 0)
			goto out;
		if (!streq(t, tenant)) {
			/* Rows come ordered by path, so one tenant at a time. */
			store_kek_clear(&cur);
			kek_unpin(k, &kek);
			r = store_kek_get_current(tx, t, &cur);
			if (r < 0)
				goto out;
			r = kek_load(k, tx, t, cur.version, &kek);
			if (r < 0)
				goto out;
			snprintf(tenant, sizeof(tenant), "%s", t);
		}
		r = kek_load(k, tx, t, c->v.kek_version, &old_kek);
		if (r >= 0)
			r = envelope_unwrap_dek(&old_kek.key, c->v.kek_version, c->path, c->v.version, c->v.dek_blob,
						c->v.dek_len, &dek);
		kek_unpin(k, &old_kek);
		if (r >= 0)
			r = envelope_open_data(dek, c->path, c->v.version, c->v.data_blob, c->v.data_len, &plain);
		if (r < 0) {
			log_error_errno(r, "cannot open '%s' version %u", c->path, c->v.version);
			goto out;
		}
		r = secret_random(ENVELOPE_KEY_LEN, &new_dek);
		if (r >= 0)
			r = envelope_seal_data(new_dek, c->path, c->v.version, plain, &data_blob, &data_len);
		if (r >= 0)
			r = envelope_wrap_dek(&kek.key, cur.version, c->path, c->v.version, new_dek, &dek_blob, &dek_len);
		if (r >= 0)
			r = store_version_rewrap(tx, c->path, c->v.version, cur.version, dek_blob, dek_len, data_blob,
						 data_len);
		if (r >= 0)
			r = store_kek_add_wraps(tx, t, cur.version, 1);
		if (r < 0)
			goto out;
		snprintf(cursor_path, PATH_MAX_TEXT, "%s", c->path);
		*cursor_version = c->v.version;
	}
	r = (int)b.n;
out:
	kek_unpin(k, &kek);
	pthread_rwlock_unlock(&k->state);
	batch_free(&b);
	store_kek_clear(&cur);
	return r;
}

/* Wraps rk with (label, version) and proves the token unwraps it back.
 * Caller holds hsm_mu and an open provider. */
static int hsm_wrap_checked(struct keyring *k, struct keyprov *kp, const char *label, uint32_t version,
			    const struct secret *rk, uint8_t **ret_blob, size_t *ret_len)
{
	_cleanup_secret_ struct secret *check = NULL;
	int r;

	r = keyprov_wrap(kp, label, version, k->hsm.mech, k->hsm.hash, rk, ret_blob, ret_len);
	if (r < 0)
		return r;
	r = keyprov_unwrap(kp, *ret_blob, *ret_len, &check);
	if (r >= 0 && !secret_equal(rk, check))
		r = -VLT_E_HSM_UNWRAP;
	if (r < 0) {
		free(*ret_blob);
		*ret_blob = NULL;
	}
	return r;
}

int keyring_root_stage(struct keyring *k, struct store_tx *tx, uint32_t *ret_from, uint32_t *ret_to)
{
	_cleanup_(keyprov_closep) struct keyprov *kp = NULL;
	_cleanup_secret_ struct secret *rk = NULL;
	struct store_rootkey cur = {0}, row = {0};
	int r;

	if (!keyring_is_unlocked(k))
		return -EACCES;
	r = store_rootkey_get_current(tx, &cur);
	if (r < 0)
		return r;
	if (cur.version == UINT32_MAX) {
		store_rootkey_clear(&cur);
		return -EOVERFLOW;
	}
	row = (struct store_rootkey){ .version = cur.version + 1, .hsm_version = cur.hsm_version,
				      .created_at = time(NULL) };
	snprintf(row.hsm_label, sizeof(row.hsm_label), "%s", cur.hsm_label);
	store_rootkey_clear(&cur);

	r = secret_random(KEYPROV_RK_LEN, &rk);
	if (r < 0)
		return r;
	pthread_mutex_lock(&k->hsm_mu);
	r = keyprov_open(&k->hsm.prov, &kp);
	if (r >= 0)
		r = hsm_wrap_checked(k, kp, row.hsm_label, row.hsm_version, rk, &row.blob, &row.blob_len);
	keyprov_close(TAKE_PTR(kp));
	pthread_mutex_unlock(&k->hsm_mu);
	if (r < 0)
		return r;
	r = store_rootkey_put(tx, &row);
	free(row.blob);
	if (r < 0)
		return r;

	pthread_rwlock_wrlock(&k->state);
	if (!k->rk)
		r = -EACCES;
	else if (k->n_rks == RK_LIVE_MAX)
		r = log_error_errno(-E2BIG, "%d root key versions are live; finish the running root rotation first",
				    RK_LIVE_MAX);
	else {
		secret_free(k->staged.key);
		k->staged = (struct rk_entry){ .version = row.version, .key = TAKE_PTR(rk) };
		*ret_from = row.version - 1;
		*ret_to = row.version;
	}
	pthread_rwlock_unlock(&k->state);
	return r;
}

void keyring_root_activate(struct keyring *k)
{
	pthread_rwlock_wrlock(&k->state);
	if (k->rk && k->staged.key && k->n_rks < RK_LIVE_MAX) {
		k->rks[k->n_rks++] = k->staged;
		k->rk = k->staged.key;
		k->rk_version = k->staged.version;
		k->staged = (struct rk_entry){0};
	}
	pthread_rwlock_unlock(&k->state);
}

void keyring_root_unstage(struct keyring *k)
{
	pthread_rwlock_wrlock(&k->state);
	secret_free(k->staged.key);
	k->staged = (struct rk_entry){0};
	pthread_rwlock_unlock(&k->state);
}

/* Keys of their own for the audit anchor and the authorization rows' MACs,
 * so the RK itself never keys anything but the KEK layer. */
static int derive_key(const struct secret *rk, uint64_t id, const char ctx[crypto_kdf_CONTEXTBYTES],
		      struct secret **ret)
{
	struct secret *key;
	int r;

	r = secret_new(crypto_kdf_KEYBYTES, &key);
	if (r < 0)
		return r;
	crypto_kdf_derive_from_key(key->p, crypto_kdf_KEYBYTES, id, ctx, rk->p);
	key->len = crypto_kdf_KEYBYTES;
	*ret = key;
	return 0;
}

static int derive_audit_key(const struct secret *rk, struct secret **ret)
{
	return derive_key(rk, 1, "vltaudit", ret);
}

static int derive_authz_key(const struct secret *rk, struct secret **ret)
{
	return derive_key(rk, 1, "vltauthz", ret);
}

int keyring_authz_key_staged(struct keyring *k, struct secret **ret)
{
	int r;

	pthread_rwlock_rdlock(&k->state);
	r = k->rk && k->staged.key ? derive_authz_key(k->staged.key, ret) : -EACCES;
	pthread_rwlock_unlock(&k->state);
	return r;
}

int keyring_audit_key_staged(struct keyring *k, struct secret **ret)
{
	int r;

	pthread_rwlock_rdlock(&k->state);
	r = k->rk && k->staged.key ? derive_audit_key(k->staged.key, ret) : -EACCES;
	pthread_rwlock_unlock(&k->state);
	return r;
}

struct kek_rows {
	struct store_kek *rows;
	size_t n, cap;
};

static int kek_rows_one(const struct store_kek *kek, void *userdata)
{
	struct kek_rows *l = userdata;
	struct store_kek *d;

	if (l->n == l->cap)
		return -ENOBUFS;
	d = &l->rows[l->n];
	*d = *kek;
	d->blob = malloc(kek->blob_len);
	if (!d->blob)
		return -ENOMEM;
	memcpy(d->blob, kek->blob, kek->blob_len);
	l->n++;
	return 0;
}

int keyring_root_rewrap_batch(struct keyring *k, struct store_tx *tx, unsigned limit)
{
	struct kek_rows l = { .cap = limit };
	int r;

	l.rows = calloc(limit, sizeof(*l.rows));
	if (!l.rows)
		return -ENOMEM;
	pthread_rwlock_rdlock(&k->state);
	if (!k->rk) {
		r = -EACCES;
		goto out;
	}
	r = store_kek_list_old_rk(tx, k->rk_version, limit, kek_rows_one, &l);
	if (r < 0 && r != -ENOBUFS)
		goto out;
	r = 0;
	for (size_t i = 0; i < l.n; i++) {
		struct store_kek *row = &l.rows[i];
		_cleanup_free_ uint8_t *blob = NULL;
		struct secret *kek = NULL;
		const struct secret *old_rk = rk_find(k, row->rk_version);
		size_t len;

		if (!old_rk) {
			r = log_error_errno(-EBADMSG, "KEK '%s' v%u is wrapped under root key v%u, which is not live",
					    row->tenant, row->version, row->rk_version);
			goto out;
		}
		r = envelope_unwrap_kek(old_rk, row->rk_version, row->tenant, row->version, row->blob,
					row->blob_len, &kek);
		if (r < 0)
			goto out;
		r = envelope_wrap_kek(k->rk, k->rk_version, row->tenant, row->version, kek, &blob, &len);
		/* The KEK itself is committed and unchanged: cache it, so a reader
		 * whose snapshot predates this batch seldom needs the old RK (only
		 * if the KEK is evicted before that reader comes; see kek_load()). */
		{
			int q = cache_put(k, row->tenant, row->version, kek, /* ret= */ NULL);
			if (q < 0 && r >= 0)
				r = q;
		}
		if (r >= 0)
			r = store_kek_rewrap(tx, row->tenant, row->version, k->rk_version, blob, len);
		if (r < 0)
			goto out;
	}
	r = (int)l.n;
out:
	pthread_rwlock_unlock(&k->state);
	for (size_t i = 0; i < l.n; i++)
		store_kek_clear(&l.rows[i]);
	free(l.rows);
	return r;
}

int keyring_root_finish(struct keyring *k, struct store_tx *tx)
{
	uint32_t current;
	int64_t left;

	pthread_rwlock_rdlock(&k->state);
	current = k->rk_version;
	pthread_rwlock_unlock(&k->state);
	if (!current)
		return -EACCES;
	left = store_kek_count_old_rk(tx, current);
	if (left != 0)
		return left < 0 ? (int)left : -EAGAIN;
	return store_rootkey_delete_below(tx, current);
}

void keyring_root_forget_old(struct keyring *k)
{
	size_t j = 0;

	pthread_rwlock_wrlock(&k->state);
	for (size_t i = 0; i < k->n_rks; i++) {
		if (k->rks[i].version == k->rk_version)
			k->rks[j++] = k->rks[i];
		else
			secret_free(k->rks[i].key);
	}
	for (size_t i = j; i < k->n_rks; i++)
		k->rks[i] = (struct rk_entry){0};
	k->n_rks = j;
	pthread_rwlock_unlock(&k->state);
}

/* ---- HSM key rotation ---- */

#define HSM_RETIRE_KEY "hsm_retire"
#define RETIRE_MAX 16
#define RETIRE_TEXT_MAX (RETIRE_MAX * (KEYPROV_LABEL_MAX + 12))

struct hsm_ref {
	char label[KEYPROV_LABEL_MAX + 1];
	uint32_t version;
};

/* meta "hsm_retire": "label:version" entries separated by spaces. */
static int retire_parse(const char *text, struct hsm_ref *refs, size_t *n)
{
	*n = 0;
	for (const char *p = text; *p;) {
		const char *e = strchrnul(p, ' '), *colon = memchr(p, ':', (size_t)(e - p));
		unsigned long v;
		char *end;

		if (e == p) {
			p++;
			continue;
		}
		if (!colon || colon == p || (size_t)(colon - p) > KEYPROV_LABEL_MAX || *n == RETIRE_MAX)
			return -EINVAL;
		errno = 0;
		v = strtoul(colon + 1, &end, 10);
		if (errno || end != e || v == 0 || v > UINT32_MAX)
			return -EINVAL;
		snprintf(refs[*n].label, sizeof(refs[*n].label), "%.*s", (int)(colon - p), p);
		refs[*n].version = (uint32_t)v;
		(*n)++;
		p = *e ? e + 1 : e;
	}
	return 0;
}

static bool refs_has(const struct hsm_ref *refs, size_t n, const char *label, uint32_t version)
{
	for (size_t i = 0; i < n; i++)
		if (refs[i].version == version && streq(refs[i].label, label))
			return true;
	return false;
}

static int retire_add(struct hsm_ref *refs, size_t *n, const char *label, uint32_t version)
{
	if (refs_has(refs, *n, label, version))
		return 0;
	if (*n == RETIRE_MAX)
		return -E2BIG;
	snprintf(refs[*n].label, sizeof(refs[*n].label), "%s", label);
	refs[(*n)++].version = version;
	return 0;
}

/* The writer of retire_parse()'s format (also used in audit details). */
static void refs_format(const struct hsm_ref *refs, size_t n, char *text, size_t size)
{
	size_t used = 0;

	text[0] = '\0';
	for (size_t i = 0; i < n && used < size; i++)
		used += (size_t)snprintf(text + used, size - used, "%s%s:%" PRIu32, i ? " " : "", refs[i].label,
					 refs[i].version);
}

static int retire_store(struct store_tx *tx, const struct hsm_ref *refs, size_t n)
{
	char text[RETIRE_TEXT_MAX];

	refs_format(refs, n, text, sizeof(text));
	return store_meta_set(tx, HSM_RETIRE_KEY, text);
}

static int retire_load(struct store_tx *tx, struct hsm_ref *refs, size_t *n)
{
	_cleanup_free_ char *text = NULL;
	int r;

	*n = 0;
	r = store_meta_get(tx, HSM_RETIRE_KEY, &text);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	r = retire_parse(text, refs, n);
	if (r < 0)
		log_error("meta %s is malformed; ignoring it", HSM_RETIRE_KEY);
	return r;
}

struct mfa_rows {
	struct {
		char name[PATH_SEGMENT_MAX + 1];
		uint8_t *blob;
		size_t len;
	} *rows;
	size_t n, cap;
};

static int mfa_one(const char *name, const uint8_t *blob, size_t len, void *userdata)
{
	struct mfa_rows *l = userdata;
	void *p;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		p = reallocarray(l->rows, cap, sizeof(*l->rows));
		if (!p)
			return -ENOMEM;
		l->rows = p;
		l->cap = cap;
	}
	snprintf(l->rows[l->n].name, sizeof(l->rows[l->n].name), "%s", name);
	l->rows[l->n].blob = malloc(len);
	if (!l->rows[l->n].blob)
		return -ENOMEM;
	memcpy(l->rows[l->n].blob, blob, len);
	l->rows[l->n].len = len;
	l->n++;
	return 0;
}

static void mfa_rows_free(struct mfa_rows *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->rows[i].blob);
	free(l->rows);
	*l = (struct mfa_rows){0};
}

/* Rewraps, under (label, version), every RK row and MFA key blob that is
 * wrapped by another HSM key -- all of them (rotation), or only those under
 * a key in only[] (retirement sweep). Records each old key in retired[].
 * Caller holds the write tx, k->state shared, hsm_mu, and an open kp. */
static int rewrap_hsm_blobs(struct keyring *k, struct store_tx *tx, struct keyprov *kp, const char *label,
			    uint32_t version, const struct hsm_ref *only, size_t n_only, struct hsm_ref *retired,
			    size_t *n_retired, int64_t *ret_count)
{
	struct rk_rows rks = {0};
	struct mfa_rows users = {0};
	struct keyprov_blob b;
	int64_t count = 0;
	int r;

	r = store_rootkey_list(tx, rk_rows_one, &rks);
	if (r >= 0)
		r = store_user_list_mfa_keys(tx, mfa_one, &users);
	for (size_t i = 0; r >= 0 && i < rks.n; i++) {
		struct store_rootkey *row = &rks.rows[i];
		const struct secret *rk = rk_find(k, row->version);
		_cleanup_free_ uint8_t *blob = NULL;
		size_t len;

		if (row->hsm_version == version && streq(row->hsm_label, label))
			continue;
		if (only && !refs_has(only, n_only, row->hsm_label, row->hsm_version))
			continue;
		if (!rk && k->staged.key && k->staged.version == row->version)
			rk = k->staged.key;
		if (!rk) {
			r = log_error_errno(-EACCES, "root key v%u is not in memory", row->version);
			break;
		}
		r = hsm_wrap_checked(k, kp, label, version, rk, &blob, &len);
		if (r >= 0)
			r = store_rootkey_rewrap(tx, row->version, label, version, blob, len);
		if (r >= 0)
			r = retire_add(retired, n_retired, row->hsm_label, row->hsm_version);
		count++;
	}
	for (size_t i = 0; r >= 0 && i < users.n; i++) {
		_cleanup_secret_ struct secret *key = NULL;
		_cleanup_free_ uint8_t *blob = NULL;
		size_t len;

		r = keyprov_blob_parse(users.rows[i].blob, users.rows[i].len, &b);
		if (r < 0)
			break;
		if (b.key_version == version && streq(b.label, label))
			continue;
		if (only && !refs_has(only, n_only, b.label, b.key_version))
			continue;
		r = keyprov_unwrap(kp, users.rows[i].blob, users.rows[i].len, &key);
		if (r < 0) {
			log_error_errno(r, "cannot unwrap the MFA key of user '%s'", users.rows[i].name);
			break;
		}
		r = keyprov_wrap(kp, label, version, k->hsm.mech, k->hsm.hash, key, &blob, &len);
		if (r >= 0)
			r = store_user_set_mfa_key(tx, users.rows[i].name, blob, len);
		if (r >= 0)
			r = retire_add(retired, n_retired, b.label, b.key_version);
		count++;
	}
	rk_rows_clear(&rks);
	mfa_rows_free(&users);
	if (r >= 0 && ret_count)
		*ret_count = count;
	return r;
}

/* The HSM key version a rotation moves from (the current RK's) and to: past
 * every version in use or awaiting retirement, so a new key never takes the
 * CKA_ID of one that is about to be deleted. retired/n_retired: meta
 * "hsm_retire", for the caller to extend. */
static int hsm_next_version(struct store_tx *tx, struct hsm_ref *retired, size_t *n_retired,
			    uint32_t *ret_from, uint32_t *ret_to)
{
	struct rk_rows rks = {0};
	uint32_t to = 0;
	int r;

	r = retire_load(tx, retired, n_retired);
	if (r < 0)
		return r;
	r = store_rootkey_list(tx, rk_rows_one, &rks);
	if (r < 0)
		return r;
	if (rks.n == 0) {
		rk_rows_clear(&rks);
		return -ENOENT;
	}
	*ret_from = rks.rows[rks.n - 1].hsm_version;
	for (size_t i = 0; i < rks.n; i++)
		to = MAX(to, rks.rows[i].hsm_version);
	for (size_t i = 0; i < *n_retired; i++)
		to = MAX(to, retired[i].version);
	rk_rows_clear(&rks);
	if (to == UINT32_MAX)
		return -EOVERFLOW;
	*ret_to = to + 1;
	return 0;
}

/* Opens the provider and finds key version `to` of the configured label,
 * generating it if the token does not hold it. Called with hsm_mu held. */
static int hsm_find_or_generate(struct keyring *k, uint32_t to, struct keyprov **ret)
{
	_cleanup_(keyprov_closep) struct keyprov *kp = NULL;
	int r;

	r = keyprov_open(&k->hsm.prov, &kp);
	if (r < 0)
		return r;
	r = keyprov_find(kp, k->hsm.key_label, to);
	if (r == -VLT_E_HSM_KEY_NOT_FOUND) {
		log_info("generating HSM key '%s' version %u", k->hsm.key_label, to);
		r = keyprov_generate(kp, k->hsm.key_label, to);
	}
	if (r < 0)
		return r;
	*ret = TAKE_PTR(kp);
	return 0;
}

/* HSM key rotation runs unlocked (the RK stays in memory, held shared)
 * and alone with the token (hsm_mu). -EACCES while locked. */
static int hsm_session_begin(struct keyring *k)
{
	pthread_rwlock_rdlock(&k->state);
	if (!k->rk) {
		pthread_rwlock_unlock(&k->state);
		return -EACCES;
	}
	pthread_mutex_lock(&k->hsm_mu);
	return 0;
}

static void hsm_session_end(struct keyring *k)
{
	pthread_mutex_unlock(&k->hsm_mu);
	pthread_rwlock_unlock(&k->state);
}

int keyring_hsm_prepare(struct keyring *k, struct store *s)
{
	_cleanup_(keyprov_closep) struct keyprov *kp = NULL;
	struct hsm_ref retired[RETIRE_MAX];
	struct store_tx *tx = NULL;
	size_t n_retired = 0;
	uint32_t from, to;
	int r;

	r = store_read_begin(s, &tx);
	if (r < 0)
		return r;
	r = hsm_next_version(tx, retired, &n_retired, &from, &to);
	store_tx_end(tx);
	if (r < 0)
		return r;
	r = hsm_session_begin(k);
	if (r < 0)
		return r;
	r = hsm_find_or_generate(k, to, &kp);
	keyprov_close(TAKE_PTR(kp));
	hsm_session_end(k);
	return r;
}

int keyring_hsm_rotate(struct keyring *k, struct store_tx *tx, uint32_t *ret_from, uint32_t *ret_to,
		       int64_t *ret_count)
{
	_cleanup_(keyprov_closep) struct keyprov *kp = NULL;
	struct hsm_ref retired[RETIRE_MAX];
	uint32_t from, to;
	size_t n_retired = 0;
	int r;

	r = hsm_next_version(tx, retired, &n_retired, &from, &to);
	if (r < 0)
		return r;

	r = hsm_session_begin(k);
	if (r < 0)
		return r;
	/* Normally keyring_hsm_prepare() made the key outside the transaction
	 * (or a rotation that crashed before its commit left it): found. */
	r = hsm_find_or_generate(k, to, &kp);
	if (r >= 0)
		r = rewrap_hsm_blobs(k, tx, kp, k->hsm.key_label, to, NULL, 0, retired, &n_retired, ret_count);
	if (r >= 0)
		r = retire_store(tx, retired, n_retired);
	keyprov_close(TAKE_PTR(kp));
	if (r >= 0) {
		/* New MFA keys go under the new HSM key from now on; if the
		 * commit fails they still unwrap, the key being in the token. */
		snprintf(k->hsm_label, sizeof(k->hsm_label), "%s", k->hsm.key_label);
		k->hsm_version = to;
		*ret_from = from;
		*ret_to = to;
	}
	hsm_session_end(k);
	return r;
}

uint32_t keyring_unlocked_hsm_version(struct keyring *k)
{
	uint32_t v;

	pthread_mutex_lock(&k->hsm_mu);
	v = k->unlocked_hsm_version;
	pthread_mutex_unlock(&k->hsm_mu);
	return v;
}

/* Retirement: the record of the keys about to leave the token commits with
 * the straggler rewrap, before any keyprov_destroy(), so a deletion never
 * happens without its record (the audit mirror included: with [audit]
 * jsonl_on_failure = refuse, a record the mirror did not take fails and
 * nothing is deleted). A side effect outside the database transaction gets
 * its "attempt" record first; the outcome follows in the transaction that
 * takes the deleted keys off the list. Only the keys deleted leave the list:
 * an HSM-key rotation may have committed a new entry in between (hsm_mu is
 * released before the last transaction, which needs the writer). */
int keyring_hsm_retire_audited(struct keyring *k, struct store *s, keyring_record_fn record, void *userdata,
			       json_t **ret_deleted)
{
	_cleanup_(keyprov_closep) struct keyprov *kp = NULL;
	_cleanup_json_ json_t *deleted = json_array();
	struct hsm_ref refs[RETIRE_MAX], swept[RETIRE_MAX], doomed[RETIRE_MAX], done[RETIRE_MAX];
	char text[RETIRE_TEXT_MAX] = "", detail[RETIRE_TEXT_MAX + 256];
	struct store_rootkey cur = {0};
	size_t n = 0, n_swept = 0, n_doomed = 0, n_done = 0;
	struct store_tx *tx = NULL;
	const struct hsm_ref *failed = NULL;
	int r, err = 0;

	if (!deleted)
		return -ENOMEM;
	r = store_write_begin(s, &tx);
	if (r < 0)
		return r;
	r = retire_load(tx, refs, &n);
	if (r < 0 || n == 0)
		goto out;
	pthread_rwlock_rdlock(&k->state);
	if (!k->rk) {
		pthread_rwlock_unlock(&k->state);
		r = -EACCES;
		goto out;
	}
	pthread_mutex_lock(&k->hsm_mu);
	r = store_rootkey_get_current(tx, &cur);
	if (r >= 0)
		r = keyprov_open(&k->hsm.prov, &kp);
	/* Stragglers first: a blob wrapped under an old key while the rotation
	 * ran (a user added meanwhile) must not be stranded. */
	if (r >= 0)
		r = rewrap_hsm_blobs(k, tx, kp, cur.hsm_label, cur.hsm_version, refs, n, swept, &n_swept, NULL);
	if (r >= 0) {
		/* The proof that the current HSM key works: it unwraps the
		 * current RK to the key in memory. */
		_cleanup_secret_ struct secret *check = NULL;
		r = keyprov_unwrap(kp, cur.blob, cur.blob_len, &check);
		if (r >= 0 && !secret_equal(check, k->rk))
			r = -VLT_E_HSM_UNWRAP;
		if (r < 0)
			log_error_errno(r, "the current HSM key does not unwrap the root key; keeping the old ones");
	}
	pthread_rwlock_unlock(&k->state);
	for (size_t i = 0; i < n; i++)
		if (refs[i].version != cur.hsm_version || !streq(refs[i].label, cur.hsm_label))
			doomed[n_doomed++] = refs[i];   /* never the key in use */
	if (r >= 0 && n_doomed > 0 && record) {
		refs_format(doomed, n_doomed, text, sizeof(text));
		snprintf(detail, sizeof(detail), "deleting HSM keys %s from the token", text);
		r = record(userdata, tx, "attempt", detail);
		if (r < 0)
			log_error_errno(r, "cannot record the retirement of HSM keys %s; deleting none", text);
	}
	if (r >= 0)
		r = store_write_commit(TAKE_PTR(tx));
	for (size_t i = 0; r >= 0 && i < n_doomed; i++) {
		err = keyprov_destroy(kp, doomed[i].label, doomed[i].version);
		if (err == -VLT_E_HSM_KEY_NOT_FOUND)
			err = 0;        /* deleted by an earlier, interrupted retirement */
		if (err < 0) {
			failed = &doomed[i];
			log_error_errno(err, "cannot delete retired HSM key '%s' version %u from the token",
					failed->label, failed->version);
			break;
		}
		log_notice("deleted retired HSM key '%s' version %u from the token", doomed[i].label,
			   doomed[i].version);
		json_array_append_new(deleted, json_pack("{s:s, s:i}", "label", doomed[i].label, "version",
							 (json_int_t)doomed[i].version));
		done[n_done++] = doomed[i];
	}
	keyprov_close(TAKE_PTR(kp));
	pthread_mutex_unlock(&k->hsm_mu);
	if (k->retire_hook)
		k->retire_hook(k->retire_hook_userdata);
	if (r < 0 || (n_done == 0 && !failed))
		goto out;

	refs_format(done, n_done, text, sizeof(text));
	r = store_write_begin(s, &tx);
	if (r >= 0) {
		struct hsm_ref now[RETIRE_MAX], keep[RETIRE_MAX];
		size_t n_now = 0, n_keep = 0;

		r = retire_load(tx, now, &n_now);
		for (size_t i = 0; r >= 0 && i < n_now; i++)
			if (!refs_has(done, n_done, now[i].label, now[i].version))
				keep[n_keep++] = now[i];
		if (r >= 0)
			r = retire_store(tx, keep, n_keep);
	}
	if (r >= 0 && record) {
		if (failed)
			snprintf(detail, sizeof(detail), "deleted HSM keys %s from the token; could not delete %s:%" PRIu32
				 ": %s", n_done ? text : "(none)", failed->label, failed->version, vlt_strerror(err));
		else
			snprintf(detail, sizeof(detail), "deleted HSM keys %s from the token", text);
		r = record(userdata, tx, failed ? "failed" : "allowed", detail);
	}
	if (r >= 0)
		r = store_write_commit(TAKE_PTR(tx));
	if (r < 0 && n_done > 0)
		/* Still listed: the next retirement finds them gone and records it. */
		log_error_errno(r, "cannot record the deletion of HSM keys %s", text);
	if (r >= 0 && failed)
		r = err;
out:
	store_tx_end(tx);
	store_rootkey_clear(&cur);
	if (r >= 0 && ret_deleted)
		*ret_deleted = TAKE_PTR(deleted);
	return r;
}

int keyring_hsm_retire(struct keyring *k, struct store *s, json_t **ret_deleted)
{
	return keyring_hsm_retire_audited(k, s, /* record= */ NULL, NULL, ret_deleted);
}

/* ---- for tests ---- */

bool keyring_kek_cached(struct keyring *k, const char *tenant, uint32_t version)
{
	bool cached;

	pthread_mutex_lock(&k->cache_mu);
	cached = slot_find(&k->cache, kek_hash(&k->cache, tenant, version), tenant, version) != KEK_NIL;
	pthread_mutex_unlock(&k->cache_mu);
	return cached;
}

void keyring_set_kek_cache_max(struct keyring *k, size_t max)
{
	pthread_mutex_lock(&k->cache_mu);
	k->cache.max = (uint32_t)MIN(MAX(max, (size_t)1), (size_t)KEK_CACHE_LIMIT);
	pthread_mutex_unlock(&k->cache_mu);
}

void keyring_set_retire_hook(struct keyring *k, void (*fn)(void *userdata), void *userdata)
{
	k->retire_hook = fn;
	k->retire_hook_userdata = userdata;
}
