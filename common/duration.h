/* common/duration.h: the one parser of durations such as "90d" (metadata
 * max_age, GET /v1/rotate/status?within=, vaultctl rotate status --within).
 *
 * Grammar (strict, decided without the locale):
 *     duration = 1*6DIGIT unit
 *     unit     = "h" / "d" / "w"          ; hour, day (86400 s), week (7 days)
 * The whole string is the duration: no sign, no blanks, no fraction, nothing
 * after the unit. Leading zeros are allowed ("030d" is 30 days). The value is
 * at least one unit and at most DURATION_MAX_SECONDS (3660 days, about ten
 * years). Pure function, thread-safe.
 */
#pragma once
#include <stdint.h>
#include "common/util.h"

#define DURATION_MAX_SECONDS (3660LL * 86400)

/* Parses s into seconds. 0 and *ret_seconds set; -EINVAL if s is NULL or
 * does not match the grammar; -ERANGE if it does but is 0 or larger than
 * DURATION_MAX_SECONDS. *ret_seconds is written only on success. */
_warn_unused_ int duration_parse(const char *s, int64_t *ret_seconds);
