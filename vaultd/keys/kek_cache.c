/* vaultd/keys/kek_cache.c: the cache of unwrapped tenant KEKs (see keyring.h).
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
 * k->state shared (in another reader's kr_cache_put()), so "valid until lock"
 * no longer holds: without more, a slot could be wiped and refilled with
 * another tenant's KEK under a reader that is still sealing with it. So a
 * lookup pins its slot (refs, under cache_mu) and kr_kek_unpin() releases it,
 * before the reader releases k->state; eviction takes only unpinned slots.
 * Wiping everything (lock, free) and dropping a tenant's old versions
 * (keyring_kek_forget()) take k->state exclusively, when no pin can exist.
 * Copying each key out into a guarded buffer of the caller's would be as
 * safe, but costs a sodium_malloc() (mmap, mprotect, mlock, munmap) per seal
 * and open: the kind of allocation this cache must spare. If every slot is
 * pinned, or a slab cannot be allocated, the unwrapped key is handed to the
 * caller uncached, owned by its reference and freed by kr_kek_unpin().
 *
 * Deleted versions. keyring_kek_forget() records per tenant the lowest live
 * version (its floor). A reader whose snapshot predates the finishing commit
 * of a KEK rotation still sees the deleted row and may unwrap it for its own
 * use (its snapshot's data is sealed under it), but kr_cache_put() does not
 * cache a version below the floor, so a deleted KEK never returns to the
 * cache. Floors are not secret and outlive lock (a read snapshot can outlive
 * a lock and unlock); keyring_free() drops them.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/log.h"
#include "common/path.h"
#include "common/util.h"
#include "vaultd/keys/envelope.h"
#include "vaultd/keys/keyring.h"
#include "vaultd/keys/keyring_internal.h"


#define KEK_SLAB_FIRST 128u
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

void kr_cache_init(struct kek_cache *c)
{
	c->max = KEK_CACHE_DEFAULT;
	c->lru_head = c->lru_tail = c->free_head = KEK_NIL;
	crypto_shorthash_keygen(c->hash_key);
}

void kr_cache_clear(struct keyring *k)
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

#ifdef VAULTD_FAULT_INJECTION
void kr_cache_test_dump(struct keyring *k, FILE *f)
{
	struct kek_cache *c = &k->cache;
	char hex[2 * ENVELOPE_KEY_LEN + 1];

	pthread_mutex_lock(&k->cache_mu);
	for (uint32_t i = 0; i < c->n_slots; i++)
		if (c->slots[i].used) {
			sodium_bin2hex(hex, sizeof(hex), c->slots[i].key, ENVELOPE_KEY_LEN);
			fprintf(f, "kek %s %" PRIu32 " %s\n", c->slots[i].tenant, c->slots[i].version, hex);
			sodium_memzero(hex, sizeof(hex));
		}
	pthread_mutex_unlock(&k->cache_mu);
}
#endif

void kr_cache_fini(struct kek_cache *c)
{
	free(c->floors);
	c->floors = NULL;
	c->n_floors = c->cap_floors = 0;
}

/* The static functions below other than cache_get() expect cache_mu held. */

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

void kr_kek_unpin(struct keyring *k, struct kek_ref *ref)
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

int kr_cache_put(struct keyring *k, const char *tenant, uint32_t version, struct secret *key, struct kek_ref *ret)
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

int kr_kek_load(struct keyring *k, struct store_tx *tx, const char *tenant, uint32_t version, struct kek_ref *ret)
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
	rk = kr_rk_find(k, row.rk_version);
	if (!rk) {
		store_kek_clear(&row);
		/* XXX: also reachable by a reader whose snapshot spans a whole
		 * root rotation after its KEK was evicted: that request fails,
		 * a retry succeeds. Left: the same KEK is in its row under the
		 * new RK, but this snapshot holds only the old row, and keeping
		 * old RKs until such snapshots end needs the store to say when
		 * a snapshot began, which store.h does not. */
		return log_error_errno(-EBADMSG, "KEK '%s' v%u is wrapped under root key v%u, which is not live",
				       tenant, version, row.rk_version);
	}
	r = envelope_unwrap_kek(rk, row.rk_version, tenant, version, row.blob, row.blob_len, &key);
	store_kek_clear(&row);
	if (r < 0)
		return r;
	return kr_cache_put(k, tenant, version, key, ret);
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
