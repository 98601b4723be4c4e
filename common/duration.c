/* common/duration.c: see duration.h. */
#include <errno.h>
#include <stddef.h>
#include "common/duration.h"

#define DIGITS_MAX 6

int duration_parse(const char *s, int64_t *ret_seconds)
{
	int64_t n = 0, unit;
	size_t i;

	if (!s)
		return -EINVAL;
	/* Compare bytes, not isdigit(): the locale must not widen the grammar. */
	for (i = 0; s[i] >= '0' && s[i] <= '9'; i++) {
		if (i == DIGITS_MAX)
			return -EINVAL;
		n = n * 10 + (s[i] - '0');      /* at most 999999: cannot overflow */
	}
	if (i == 0)
		return -EINVAL;
	/* s[i] is the first non-digit, possibly the NUL: look at the byte
	 * after it only once it is known not to be the end. */
	switch (s[i]) {
	case 'h':
		unit = 3600;
		break;
	case 'd':
		unit = 86400;
		break;
	case 'w':
		unit = 7 * 86400;
		break;
	default:
		return -EINVAL;         /* no unit, or not one of ours */
	}
	if (s[i + 1] != '\0')
		return -EINVAL;
	if (n == 0 || n > DURATION_MAX_SECONDS / unit)
		return -ERANGE;
	*ret_seconds = n * unit;
	return 0;
}
