/* common/secret.c: see secret.h. */
#include <errno.h>
#include <openssl/crypto.h>
#include <sodium.h>
#include <stdatomic.h>
#include "common/secret.h"

void (*secret_free_hook)(const uint8_t *p, size_t cap);

/* ---- the secure arena ----
 *
 * OpenSSL's secure heap: one mapping, guard pages at both ends, mlock()ed
 * (on fault) and MADV_DONTDUMP, carved by a buddy allocator under one lock;
 * CRYPTO_secure_free() cleanses the whole block. Once it is up, every
 * secret_new() comes from it, with no system call, and an exhausted arena
 * is an error: never a fallback to any other memory. */

#define ARENA_MIN_BLOCK 64      /* the smallest block: bounds the allocator's bitmaps */

static atomic_bool arena_on;
static size_t arena_size;
static _Thread_local bool arena_ran_out;

int secret_arena_init(size_t size)
{
	size_t n = ARENA_MIN_BLOCK * 1024;
	int r;

	if (atomic_load(&arena_on))
		return -EALREADY;
	if (size == 0 || size > ((size_t)1 << 40))
		return -EINVAL;
	while (n < size)
		n <<= 1;
	r = CRYPTO_secure_malloc_init(n, ARENA_MIN_BLOCK);
	if (r == 0)
		return -ENOMEM;
	arena_size = n;
	atomic_store(&arena_on, true);
	return r == 1 ? 0 : 1;  /* 2: mapped, but mlock() or MADV_DONTDUMP failed */
}

bool secret_arena_active(void)
{
	return atomic_load(&arena_on);
}

size_t secret_arena_size(void)
{
	return atomic_load(&arena_on) ? arena_size : 0;
}

size_t secret_arena_used(void)
{
	return atomic_load(&arena_on) ? CRYPTO_secure_used() : 0;
}

void *secret_arena_alloc(size_t n)
{
	void *p;

	if (!atomic_load(&arena_on) || n == 0)
		return NULL;
	p = CRYPTO_secure_zalloc(n, NULL, 0);
	/* Before init OpenSSL would hand out ordinary heap; after it, a block
	 * from anywhere else is a bug, and refused. */
	if (p && !CRYPTO_secure_allocated(p)) {
		OPENSSL_clear_free(p, n);
		p = NULL;
	}
	if (!p)
		arena_ran_out = true;
	return p;
}

bool secret_arena_owns(const void *p)
{
	return p && atomic_load(&arena_on) && CRYPTO_secure_allocated(p);
}

void secret_arena_free(void *p)
{
	if (p)
		CRYPTO_secure_free(p, NULL, 0);         /* cleanses the block */
}

void secret_arena_exhausted_reset(void)
{
	arena_ran_out = false;
}

bool secret_arena_exhausted(void)
{
	return arena_ran_out;
}

int secret_library_init(void)
{
	/* sodium_init() is idempotent and thread-safe; < 0 means no usable RNG. */
	return sodium_init() < 0 ? -EIO : 0;
}

static int secret_alloc(size_t cap, bool guarded, struct secret **ret)
{
	struct secret *s;

	if (cap == 0 || cap > SECRET_MAX)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	if (!guarded && secret_arena_active()) {
		s->p = secret_arena_alloc(cap);         /* zeroed */
		if (!s->p) {
			free(s);
			return -ENOMEM;                 /* secret_arena_exhausted() says why */
		}
	} else {
		s->p = sodium_malloc(cap);
		if (!s->p) {
			free(s);
			return -ENOMEM;
		}
		/* sodium_malloc() fills with 0xdb to catch uninitialised use; we
		 * want a defined, zeroed buffer. */
		sodium_memzero(s->p, cap);
		s->guarded = true;
	}
	s->cap = cap;
	*ret = s;
	return 0;
}

int secret_new(size_t cap, struct secret **ret)
{
	return secret_alloc(cap, false, ret);
}

int secret_new_guarded(size_t cap, struct secret **ret)
{
	return secret_alloc(cap, true, ret);
}

static int from_bytes(const void *p, size_t n, bool guarded, struct secret **ret)
{
	struct secret *s;
	int r;

	r = secret_alloc(n, guarded, &s);
	if (r < 0)
		return r;
	memcpy(s->p, p, n);
	s->len = n;
	*ret = s;
	return 0;
}

int secret_from_bytes_guarded(const void *p, size_t n, struct secret **ret)
{
	return from_bytes(p, n, true, ret);
}

static int random_bytes(size_t n, bool guarded, struct secret **ret)
{
	struct secret *s;
	int r;

	r = secret_alloc(n, guarded, &s);
	if (r < 0)
		return r;
	randombytes_buf(s->p, n);
	s->len = n;
	*ret = s;
	return 0;
}

int secret_random_guarded(size_t n, struct secret **ret)
{
	return random_bytes(n, true, ret);
}

int secret_from_bytes(const void *p, size_t n, struct secret **ret)
{
	return from_bytes(p, n, false, ret);
}

int secret_random(size_t n, struct secret **ret)
{
	return random_bytes(n, false, ret);
}

int secret_dup(const struct secret *s, struct secret **ret)
{
	struct secret *d;
	int r;

	r = secret_alloc(s->cap, s->guarded, &d);
	if (r < 0)
		return r;
	memcpy(d->p, s->p, s->len);
	d->len = s->len;
	*ret = d;
	return 0;
}

int secret_append(struct secret *s, const void *p, size_t n)
{
	if (n > s->cap - s->len)
		return -ENOBUFS;
	memcpy(s->p + s->len, p, n);
	s->len += n;
	return 0;
}

void secret_free(struct secret *s)
{
	if (!s)
		return;
	if (s->p) {
		sodium_memzero(s->p, s->cap);
		if (secret_free_hook)
			secret_free_hook(s->p, s->cap);
		if (s->guarded)
			sodium_free(s->p);      /* wipes again, munlocks, checks the canary */
		else
			secret_arena_free(s->p);        /* wipes again */
	}
	free(s);
}

bool secret_equal(const struct secret *a, const struct secret *b)
{
	/* The length is not secret; the contents are. */
	if (a->len != b->len)
		return false;
	return sodium_memcmp(a->p, b->p, a->len) == 0;
}

int secret_seal(struct secret *s)
{
	if (!s->guarded)
		return -EINVAL;
	return sodium_mprotect_noaccess(s->p) < 0 ? -EIO : 0;
}

int secret_unseal(struct secret *s)
{
	if (!s->guarded)
		return -EINVAL;
	return sodium_mprotect_readwrite(s->p) < 0 ? -EIO : 0;
}

bool ct_equal(const void *a, const void *b, size_t n)
{
	return sodium_memcmp(a, b, n) == 0;
}
