/* common/json.c: see json.h. */
#include <sodium.h>
#include <stdint.h>
#include "common/json.h"
#include "common/secret.h"

/* A size header in front of each block, padded to keep malloc's alignment. */
#define HDR sizeof(max_align_t)

static void *wiping_malloc(size_t n)
{
	uint8_t *p;

	/* With the arena up, every JSON value lives there: a credential parsed
	 * from a request or serialised into a reply never touches the heap. */
	if (secret_arena_active())
		return secret_arena_alloc(n ? n : 1);

	if (n > SIZE_MAX - HDR)
		return NULL;
	p = malloc(HDR + n);
	if (!p)
		return NULL;
	memcpy(p, &n, sizeof(n));
	return p + HDR;
}

static void wiping_free(void *ptr)
{
	uint8_t *p;
	size_t n;

	if (!ptr)
		return;
	if (secret_arena_owns(ptr)) {
		secret_arena_free(ptr);         /* wiped whole */
		return;
	}
	p = (uint8_t *)ptr - HDR;
	memcpy(&n, p, sizeof(n));
	sodium_memzero(p, HDR + n);
	free(p);
}

void json_secure_init(void)
{
	json_set_alloc_funcs(wiping_malloc, wiping_free);
}

void json_secure_free(void *p)
{
	wiping_free(p);
}
