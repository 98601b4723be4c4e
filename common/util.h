/* common/util.h: cleanup helpers and small macros shared by every module. */
#pragma once
#include <stdlib.h>
#include <string.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _public_ __attribute__((visibility("default")))
#define _warn_unused_ __attribute__((warn_unused_result))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

/* Defines fnp(type *p) calling fn(*p) when non-NULL, for _cleanup_(fnp). */
#define DEFINE_CLEANUP(type, fn)                                        \
	static inline void fn##p(type *p)                               \
	{                                                               \
		if (*p)                                                 \
			fn(*p);                                         \
	}

static inline void freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

/* Moves ownership out of a _cleanup_ variable: the cleanup then sees NULL. */
#define TAKE_PTR(ptr)                                                   \
	({                                                              \
		__typeof__(ptr) _t = (ptr);                             \
		(ptr) = NULL;                                           \
		_t;                                                     \
	})

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#ifndef MAX
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#endif
#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif

static inline int streq(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

/* Big-endian integer codecs for the binary blob formats. */
#include <stdint.h>
static inline void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static inline void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}
static inline uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint32_t get_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

#include <time.h>
/* CLOCK_MONOTONIC in milliseconds. */
static inline int64_t now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
