/* common/secret.h: owned buffers for keys, PINs, passphrases and plaintext.
 *
 * Two kinds of memory, both locked and excluded from core dumps, both wiped
 * whole by secret_free():
 * - the secure arena, once secret_arena_init() has run (the daemon): one
 *   mapping made at start, so a per-request buffer costs no system call.
 *   secret_new() and the functions built on it take from it, and only from
 *   it: when it is full they fail with -ENOMEM and secret_arena_exhausted()
 *   is true on that thread (the daemon answers 503).
 * - guarded allocations (sodium_malloc(): guard pages, a canary, a mapping
 *   each), for long-lived keys: the *_guarded() functions, and every
 *   allocation before the arena exists (vaultctl, the unit tests).
 * A struct secret is never passed to a logger: log.h refuses it at compile
 * time. Not thread-safe per object; the arena itself is.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/util.h"

#define SECRET_MAX (1u << 20)   /* 1 MiB: larger is a bug, not a secret */

struct secret {
	uint8_t *p;             /* cap bytes */
	size_t len;             /* bytes in use, <= cap */
	size_t cap;
	bool guarded;           /* sodium_malloc(); else the arena */
};

/* Must be called once before any other function (calls sodium_init()). 0 or -EIO. */
int secret_library_init(void);

/* Maps the secure arena: at least size bytes, rounded up to a power of two
 * (OpenSSL's secure heap). Once, before the threads start. 0; 1 if it is
 * mapped but could not be locked or kept out of core dumps (warn);
 * -EALREADY, -EINVAL (0 or absurd), -ENOMEM. */
int secret_arena_init(size_t size);
bool secret_arena_active(void);
size_t secret_arena_size(void);                 /* bytes; 0 before init */
size_t secret_arena_used(void);                 /* bytes handed out now */
/* A zeroed block of n bytes from the arena; NULL (and the thread's
 * exhausted flag set) if it is full, or before init. */
void *secret_arena_alloc(size_t n);
bool secret_arena_owns(const void *p);
/* Wipes and releases a block of the arena. NULL-safe. */
void secret_arena_free(void *p);
/* The calling thread's flag: set by any allocation the arena refused since
 * the last reset. The daemon resets it per request. */
void secret_arena_exhausted_reset(void);
bool secret_arena_exhausted(void);

/* Zeroed buffer of cap bytes, len 0, from the arena (or guarded before it). 0; -EINVAL if cap is 0 or > SECRET_MAX; -ENOMEM. */
int secret_new(size_t cap, struct secret **ret);
/* Copy of n bytes (len = cap = n). Same errors as secret_new(). */
int secret_from_bytes(const void *p, size_t n, struct secret **ret);
/* n random bytes from randombytes_buf(). Same errors as secret_new(). */
int secret_random(size_t n, struct secret **ret);
/* The same in guarded memory, for keys that live as long as the process
 * (the root key, staged keys): guard pages and a canary each. */
int secret_new_guarded(size_t cap, struct secret **ret);
int secret_from_bytes_guarded(const void *p, size_t n, struct secret **ret);
int secret_random_guarded(size_t n, struct secret **ret);
/* Copy of s, in the same kind of memory. */
int secret_dup(const struct secret *s, struct secret **ret);
/* Appends n bytes; -ENOBUFS if it would exceed cap (nothing appended). */
int secret_append(struct secret *s, const void *p, size_t n);
/* NULL-safe. Wipes all cap bytes, then releases them. */
void secret_free(struct secret *s);
/* Constant-time in the length; false if the lengths differ. */
bool secret_equal(const struct secret *a, const struct secret *b);
/* Makes the pages inaccessible (PROT_NONE) while idle, and back. 0, -EIO;
 * -EINVAL for a secret in the arena. */
int secret_seal(struct secret *s);
int secret_unseal(struct secret *s);

DEFINE_CLEANUP(struct secret *, secret_free)
#define _cleanup_secret_ _cleanup_(secret_freep)

/* Constant-time comparison of equal-length byte strings (sodium_memcmp). */
bool ct_equal(const void *a, const void *b, size_t n);

/* Test hook: when set, called with the buffer after it was wiped and before
 * it is released, so tests can check the wipe without reading freed memory. */
extern void (*secret_free_hook)(const uint8_t *p, size_t cap);
