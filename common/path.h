/* common/path.h: secret paths and principal names.
 * A path is 1 to PATH_SEGMENTS_MAX segments joined by single '/'; each segment
 * is 1 to PATH_SEGMENT_MAX bytes of [A-Za-z0-9._-] and is neither "." nor "..".
 * The first segment is the tenant. No leading or trailing '/', no empty
 * segments, no percent-decoding: "%2e" is simply a bad character. Only ASCII
 * is accepted, decided without the locale. Pure functions, thread-safe.
 *
 * Strings are NUL-terminated: a caller holding length-delimited input (a
 * decoded URL, a JSON string made with json_stringn()) must first reject
 * embedded NUL bytes, or "acme/x\0/../y" is checked as "acme/x".
 */
#pragma once
#include <stdbool.h>
#include "common/util.h"

#define PATH_SEGMENT_MAX 64
#define PATH_SEGMENTS_MAX 8
/* Bound on strlen(path): 8 segments of 64 plus 7 separators is 519. */
#define PATH_MAX_LEN (8 * 65)

/* NULL if 'path' is valid with at least 'min_segments' segments (secrets use
 * 2, list prefixes 1; 0 counts as 1), else a static one-sentence reason fit
 * for an API error message. The reason names the first problem found, scanning
 * left to right, and never quotes the path. A NULL path is "path is empty". */
_warn_unused_ const char *path_check(const char *path, unsigned min_segments);

/* Copies the tenant (first segment) of a valid path into ret, NUL-terminated.
 * 0, or -EINVAL if path_check(path, 1) fails (ret untouched). */
_warn_unused_ int path_tenant(const char *path, char ret[PATH_SEGMENT_MAX + 1]);

/* User, role and service names: 1 to 64 bytes of [A-Za-z0-9._-], starting
 * with a letter or digit (so never "." or ".."). False for NULL. */
_warn_unused_ bool name_valid(const char *name);
