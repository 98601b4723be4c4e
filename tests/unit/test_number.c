/* tests/unit/test_number.c: the one decimal parser (common/number.h). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "common/number.h"

static void test_accepts_plain_decimals(void **state)
{
	uint64_t v;
	uint32_t w;
	(void)state;

	assert_int_equal(number_parse_u64("0", 0, 10, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(number_parse_u64("18446744073709551615", 0, UINT64_MAX, &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(number_parse_u64("007", 0, 10, &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(number_parse_u32("4294967295", 0, UINT32_MAX, &w), 0);
	assert_true(w == UINT32_MAX);
	assert_int_equal(number_parse_u64n("12:34", 2, 1, 99, &v), 0);
	assert_int_equal(v, 12);
}

static void test_refuses_everything_else(void **state)
{
	static const char *const bad[] = { "", " 1", "1 ", "+1", "-1", "0x10", "1e3", "1.0", "١", "12a", NULL };
	uint64_t v = 42;
	(void)state;

	for (size_t i = 0; bad[i]; i++)
		assert_int_equal(number_parse_u64(bad[i], 0, UINT64_MAX, &v), -EINVAL);
	assert_int_equal(number_parse_u64(NULL, 0, 1, &v), -EINVAL);
	assert_int_equal(number_parse_u64("18446744073709551616", 0, UINT64_MAX, &v), -ERANGE);
	assert_int_equal(number_parse_u64("99999999999999999999", 0, UINT64_MAX, &v), -ERANGE);
	assert_int_equal(number_parse_u64("000000000000000000001", 0, UINT64_MAX, &v), -EINVAL);  /* 21 digits */
	assert_int_equal(number_parse_u64("11", 0, 10, &v), -ERANGE);
	assert_int_equal(number_parse_u64("0", 1, 10, &v), -ERANGE);
	assert_int_equal(v, 42);        /* untouched on failure */
	assert_int_equal(number_parse_u64n("12", 0, 0, 99, &v), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepts_plain_decimals),
		cmocka_unit_test(test_refuses_everything_else),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
