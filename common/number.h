/* common/number.h: the one parser of decimal integers in the tree (config
 * values, query parameters, headers, stored formats, CLI arguments).
 *
 * Strict: ASCII digits only (no blank, sign, "0x", or trailing byte), at
 * least one, at most 20; the value must lie in [min, max]. strtoull() alone
 * takes blanks and a sign ("-1" wraps to 2^64 - 1), which is how parsers
 * drift apart. Leading zeros are accepted ("007" is 7): formats that forbid
 * them say so themselves. Thread-safe, no allocation.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

/* The n bytes at s (not NUL-terminated necessarily). 0; -EINVAL not a
 * decimal number; -ERANGE a number outside [min, max]. *ret only on 0. */
int number_parse_u64n(const char *s, size_t n, uint64_t min, uint64_t max, uint64_t *ret);
/* The whole NUL-terminated string s (NULL: -EINVAL). */
int number_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret);
int number_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *ret);
