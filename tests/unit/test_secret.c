/* tests/unit/test_secret.c: secure buffers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "common/secret.h"

static size_t hook_calls;
static size_t hook_nonzero;
static size_t hook_cap;

static void check_wiped(const uint8_t *p, size_t cap)
{
	hook_calls++;
	hook_cap = cap;
	for (size_t i = 0; i < cap; i++)
		if (p[i] != 0)
			hook_nonzero++;
}

static int setup(void **state)
{
	(void)state;
	hook_calls = hook_nonzero = hook_cap = 0;
	secret_free_hook = check_wiped;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	secret_free_hook = NULL;
	return 0;
}

static void test_wiped_on_free(void **state)
{
	struct secret *s;
	(void)state;

	assert_int_equal(secret_new(100, &s), 0);
	memset(s->p, 0xa5, 100);
	s->len = 100;
	secret_free(s);
	assert_int_equal(hook_calls, 1);
	assert_int_equal(hook_cap, 100);
	assert_int_equal(hook_nonzero, 0);
}

static void test_wiped_whole_capacity(void **state)
{
	struct secret *s;
	(void)state;

	/* Bytes past len (left over from a shrink) are wiped too. */
	assert_int_equal(secret_new(64, &s), 0);
	memset(s->p, 0x5a, 64);
	s->len = 10;
	secret_free(s);
	assert_int_equal(hook_cap, 64);
	assert_int_equal(hook_nonzero, 0);
}

static void test_cleanup_attribute_wipes(void **state)
{
	(void)state;
	{
		_cleanup_secret_ struct secret *s = NULL;
		assert_int_equal(secret_random(32, &s), 0);
	}
	assert_int_equal(hook_calls, 1);
	assert_int_equal(hook_nonzero, 0);
}

static void test_free_null(void **state)
{
	(void)state;
	secret_free(NULL);
	assert_int_equal(hook_calls, 0);
}

static void test_bounds(void **state)
{
	struct secret *s = NULL;
	(void)state;

	assert_int_equal(secret_new(0, &s), -EINVAL);
	assert_int_equal(secret_new(SECRET_MAX + 1, &s), -EINVAL);
	assert_null(s);
	assert_int_equal(secret_new(SECRET_MAX, &s), 0);
	secret_free(s);
}

static void test_new_is_zeroed(void **state)
{
	struct secret *s;
	(void)state;

	assert_int_equal(secret_new(48, &s), 0);
	assert_int_equal(s->len, 0);
	for (size_t i = 0; i < 48; i++)
		assert_int_equal(s->p[i], 0);
	secret_free(s);
}

static void test_append(void **state)
{
	_cleanup_secret_ struct secret *s = NULL;
	(void)state;

	assert_int_equal(secret_new(8, &s), 0);
	assert_int_equal(secret_append(s, "abcde", 5), 0);
	assert_int_equal(secret_append(s, "fgh", 3), 0);
	assert_int_equal(secret_append(s, "i", 1), -ENOBUFS);
	assert_int_equal(s->len, 8);
	assert_memory_equal(s->p, "abcdefgh", 8);
}

static void test_equal_and_dup(void **state)
{
	_cleanup_secret_ struct secret *a = NULL, *b = NULL, *c = NULL, *d = NULL;
	(void)state;

	assert_int_equal(secret_random(32, &a), 0);
	assert_int_equal(secret_dup(a, &b), 0);
	assert_true(secret_equal(a, b));
	assert_int_equal(secret_random(32, &c), 0);
	assert_false(secret_equal(a, c));   /* 2^-256 chance of a false failure */
	assert_int_equal(secret_from_bytes(a->p, 31, &d), 0);
	assert_false(secret_equal(a, d));   /* length differs */
	assert_true(ct_equal(a->p, b->p, 32));
	b->p[31] ^= 1;
	assert_false(ct_equal(a->p, b->p, 32));
}

static void test_random_differs(void **state)
{
	_cleanup_secret_ struct secret *a = NULL, *b = NULL;
	(void)state;

	assert_int_equal(secret_random(32, &a), 0);
	assert_int_equal(secret_random(32, &b), 0);
	assert_int_equal(a->len, 32);
	assert_false(secret_equal(a, b));
}

static void test_seal_unseal(void **state)
{
	_cleanup_secret_ struct secret *s = NULL;
	(void)state;

	assert_int_equal(secret_from_bytes("key material", 12, &s), 0);
	assert_int_equal(secret_seal(s), 0);
	assert_int_equal(secret_unseal(s), 0);
	assert_memory_equal(s->p, "key material", 12);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_wiped_on_free, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wiped_whole_capacity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cleanup_attribute_wipes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_null, setup, teardown),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_new_is_zeroed),
		cmocka_unit_test(test_append),
		cmocka_unit_test(test_equal_and_dup),
		cmocka_unit_test(test_random_differs),
		cmocka_unit_test(test_seal_unseal),
	};

	if (secret_library_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
