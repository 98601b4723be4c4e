/* common/json.h: jansson, configured for secrets.
 * json_secure_init() installs allocation functions that take every block from
 * the secure arena once it is up (secret_arena_init(); locked, not dumped,
 * wiped on free, and an error when full) and, before it, from the heap with
 * each block's size remembered and wiped (sodium_memzero) before freeing, so
 * credential values that pass through parsed JSON or serialised replies do
 * not linger in ordinary memory.
 * Call once at start, before any other jansson call. Thread-safe after that.
 */
#pragma once
#include <jansson.h>
#include <stddef.h>
#include "common/util.h"

void json_secure_init(void);
/* Frees memory returned by json_dumps() (allocated by the secure allocator). */
void json_secure_free(void *p);

/* jansson >= 2.9 defines json_decrefp() for json_auto_t; reuse it. */
#define _cleanup_json_ _cleanup_(json_decrefp)
