/* common/number.c: see number.h. */
#include <errno.h>
#include <string.h>
#include "common/number.h"

int number_parse_u64n(const char *s, size_t n, uint64_t min, uint64_t max, uint64_t *ret)
{
	uint64_t v = 0;

	if (!s || n == 0 || n > 20)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned char)s[i] - '0';
		if (d > 9)
			return -EINVAL;
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	if (v < min || v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

int number_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	if (!s)
		return -EINVAL;
	return number_parse_u64n(s, strlen(s), min, max, ret);
}

int number_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *ret)
{
	uint64_t v;
	int r = number_parse_u64(s, min, max, &v);

	if (r == 0)
		*ret = (uint32_t)v;
	return r;
}
