/* common/secret.h: owned buffers for keys, PINs, passphrases and plaintext.
 * Memory comes from sodium_malloc(): guard pages, a canary, mlock()ed and
 * excluded from core dumps (MADV_DONTDUMP). secret_free() wipes the whole
 * capacity before releasing it. A struct secret is never passed to a logger:
 * log.h refuses it at compile time. Not thread-safe per object.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/util.h"

#define SECRET_MAX (1u << 20)   /* 1 MiB: larger is a bug, not a secret */

struct secret {
	uint8_t *p;             /* sodium_malloc()ed, cap bytes */
	size_t len;             /* bytes in use, <= cap */
	size_t cap;
};

/* Must be called once before any other function (calls sodium_init()). 0 or -EIO. */
int secret_library_init(void);

/* Zeroed buffer of cap bytes, len 0. 0; -EINVAL if cap is 0 or > SECRET_MAX; -ENOMEM. */
int secret_new(size_t cap, struct secret **ret);
/* Copy of n bytes (len = cap = n). Same errors as secret_new(). */
int secret_from_bytes(const void *p, size_t n, struct secret **ret);
/* n random bytes from randombytes_buf(). Same errors as secret_new(). */
int secret_random(size_t n, struct secret **ret);
/* Copy of s. */
int secret_dup(const struct secret *s, struct secret **ret);
/* Appends n bytes; -ENOBUFS if it would exceed cap (nothing appended). */
int secret_append(struct secret *s, const void *p, size_t n);
/* NULL-safe. Wipes all cap bytes, then releases them. */
void secret_free(struct secret *s);
/* Constant-time in the length; false if the lengths differ. */
bool secret_equal(const struct secret *a, const struct secret *b);
/* Makes the pages inaccessible (PROT_NONE) while idle, and back. 0 or -EIO. */
int secret_seal(struct secret *s);
int secret_unseal(struct secret *s);

DEFINE_CLEANUP(struct secret *, secret_free)
#define _cleanup_secret_ _cleanup_(secret_freep)

/* Constant-time comparison of equal-length byte strings (sodium_memcmp). */
bool ct_equal(const void *a, const void *b, size_t n);

/* Test hook: when set, called with the buffer after it was wiped and before
 * it is released, so tests can check the wipe without reading freed memory. */
extern void (*secret_free_hook)(const uint8_t *p, size_t cap);
