/* tests/unit/test_duration.c: common/duration.c, the one duration parser.
 * Inputs are copied into heap blocks of exactly strlen() + 1 bytes, so under
 * ASan a read past the terminating NUL is a heap-buffer-overflow. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "common/duration.h"

#define H 3600LL
#define D 86400LL
#define W (7 * 86400LL)
#define SENTINEL INT64_C(-4242)

/* duration_parse() on an exact-size heap copy of s. */
static int parse_exact(const char *s, int64_t *ret)
{
	size_t n = strlen(s) + 1;
	char *copy = malloc(n);
	int r;

	assert_non_null(copy);
	memcpy(copy, s, n);
	r = duration_parse(copy, ret);
	free(copy);
	return r;
}

static void expect_ok(const char *s, int64_t seconds)
{
	int64_t v = SENTINEL;
	int r = parse_exact(s, &v);

	if (r != 0)
		fail_msg("'%s': got %d, expected %lld seconds", s, r, (long long)seconds);
	if (v != seconds)
		fail_msg("'%s': got %lld seconds, expected %lld", s, (long long)v, (long long)seconds);
}

static void expect_err(const char *s, int err)
{
	int64_t v = SENTINEL;
	int r = parse_exact(s, &v);

	if (r != err)
		fail_msg("'%s': got %d, expected %d", s, r, err);
	if (v != SENTINEL)
		fail_msg("'%s': output written on failure", s);
}

/* Finding 8: "90" made the old parser read s[3], one byte past the NUL. */
static void test_digits_without_unit(void **state)
{
	(void)state;
	expect_err("90", -EINVAL);
	expect_err("9", -EINVAL);
	expect_err("123456", -EINVAL);
	expect_err("1234567", -EINVAL);
}

static void test_every_unit(void **state)
{
	(void)state;
	expect_ok("1h", H);
	expect_ok("1d", D);
	expect_ok("1w", W);
	expect_ok("12h", 12 * H);
	expect_ok("90d", 90 * D);
	expect_ok("14d", 14 * D);
	expect_ok("52w", 52 * W);
	expect_ok("030d", 30 * D);      /* leading zeros: accepted as before */
	expect_ok("000001h", H);        /* six digits, the most there may be */
}

static void test_range(void **state)
{
	(void)state;
	/* At most 3660 days, whatever the unit. */
	expect_ok("3660d", DURATION_MAX_SECONDS);
	expect_ok("87840h", DURATION_MAX_SECONDS);
	expect_ok("522w", 522 * W);
	expect_err("3661d", -ERANGE);
	expect_err("87841h", -ERANGE);
	expect_err("523w", -ERANGE);
	expect_err("999999w", -ERANGE);
	expect_err("999999d", -ERANGE);
	expect_err("999999h", -ERANGE);
	/* Zero is no duration. */
	expect_err("0h", -ERANGE);
	expect_err("0d", -ERANGE);
	expect_err("000000w", -ERANGE);
}

static void test_overflow(void **state)
{
	(void)state;
	/* More than six digits is refused before any arithmetic could wrap. */
	expect_err("1000000h", -EINVAL);
	expect_err("0000001d", -EINVAL);
	expect_err("9223372036854775807d", -EINVAL);
	expect_err("18446744073709551617w", -EINVAL);
	expect_err("99999999999999999999999999999999999999h", -EINVAL);
}

static void test_empty_and_null(void **state)
{
	int64_t v = SENTINEL;
	(void)state;

	expect_err("", -EINVAL);
	assert_int_equal(duration_parse(NULL, &v), -EINVAL);
	assert_int_equal(v, SENTINEL);
}

static void test_trailing_garbage(void **state)
{
	(void)state;
	expect_err("90dx", -EINVAL);
	expect_err("90dd", -EINVAL);
	expect_err("90d ", -EINVAL);
	expect_err("90d\n", -EINVAL);
	expect_err("90 d", -EINVAL);
	expect_err("90x", -EINVAL);
	expect_err("90s", -EINVAL);
	expect_err("90m", -EINVAL);
	expect_err("90D", -EINVAL);
	expect_err("9.5d", -EINVAL);
	expect_err("0x10d", -EINVAL);
	expect_err("1d2h", -EINVAL);
}

static void test_no_digits(void **state)
{
	(void)state;
	expect_err("d", -EINVAL);
	expect_err("h", -EINVAL);
	expect_err(" 90d", -EINVAL);
	expect_err("\t1d", -EINVAL);
	expect_err("abc", -EINVAL);
}

static void test_signs(void **state)
{
	(void)state;
	expect_err("-1d", -EINVAL);
	expect_err("-0d", -EINVAL);
	expect_err("+1d", -EINVAL);
	expect_err("--1d", -EINVAL);
	expect_err("1-d", -EINVAL);
}

/* Every strict prefix of a valid duration fails cleanly (and, in exact heap
 * blocks, without reading past its end). */
static void test_prefixes(void **state)
{
	static const char *const valid[] = { "90d", "123456h", "3660d", "1w" };
	(void)state;

	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		char buf[16];
		size_t n = strlen(valid[i]);

		for (size_t k = 0; k < n; k++) {
			memcpy(buf, valid[i], k);
			buf[k] = '\0';
			expect_err(buf, -EINVAL);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_digits_without_unit),
		cmocka_unit_test(test_every_unit),
		cmocka_unit_test(test_range),
		cmocka_unit_test(test_overflow),
		cmocka_unit_test(test_empty_and_null),
		cmocka_unit_test(test_trailing_garbage),
		cmocka_unit_test(test_no_digits),
		cmocka_unit_test(test_signs),
		cmocka_unit_test(test_prefixes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
