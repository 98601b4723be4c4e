/* common/secret.c: see secret.h. */
#include <errno.h>
#include <sodium.h>
#include "common/secret.h"

void (*secret_free_hook)(const uint8_t *p, size_t cap);

int secret_library_init(void)
{
	/* sodium_init() is idempotent and thread-safe; < 0 means no usable RNG. */
	return sodium_init() < 0 ? -EIO : 0;
}

int secret_new(size_t cap, struct secret **ret)
{
	struct secret *s;

	if (cap == 0 || cap > SECRET_MAX)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->p = sodium_malloc(cap);
	if (!s->p) {
		free(s);
		return -ENOMEM;
	}
	/* sodium_malloc() fills with 0xdb to catch uninitialised use; we want
	 * a defined, zeroed buffer. */
	sodium_memzero(s->p, cap);
	s->cap = cap;
	*ret = s;
	return 0;
}

int secret_from_bytes(const void *p, size_t n, struct secret **ret)
{
	struct secret *s;
	int r;

	r = secret_new(n, &s);
	if (r < 0)
		return r;
	memcpy(s->p, p, n);
	s->len = n;
	*ret = s;
	return 0;
}

int secret_random(size_t n, struct secret **ret)
{
	struct secret *s;
	int r;

	r = secret_new(n, &s);
	if (r < 0)
		return r;
	randombytes_buf(s->p, n);
	s->len = n;
	*ret = s;
	return 0;
}

int secret_dup(const struct secret *s, struct secret **ret)
{
	struct secret *d;
	int r;

	r = secret_new(s->cap, &d);
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
		sodium_free(s->p);     /* wipes again, munlocks, checks the canary */
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
	return sodium_mprotect_noaccess(s->p) < 0 ? -EIO : 0;
}

int secret_unseal(struct secret *s)
{
	return sodium_mprotect_readwrite(s->p) < 0 ? -EIO : 0;
}

bool ct_equal(const void *a, const void *b, size_t n)
{
	return sodium_memcmp(a, b, n) == 0;
}
