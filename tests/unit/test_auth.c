/* tests/unit/test_auth.c: Argon2id passphrase hashing (vaultd/auth.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "vaultd/access/auth.h"

static const struct auth_params P = { .iterations = 1, .memory_kib = 8192, .parallelism = 1 };

static struct secret *S(const char *s)
{
	struct secret *x = NULL;

	assert_int_equal(secret_from_bytes(s, strlen(s), &x), 0);
	return x;
}

static void test_hash_and_verify(void **state)
{
	_cleanup_secret_ struct secret *good = S("correct horse battery staple"), *bad = S("correct horse battery stapler");
	char *phc = NULL, *phc2 = NULL;
	(void)state;

	assert_int_equal(auth_hash(&P, good, &phc), 0);
	assert_true(strncmp(phc, "$argon2id$v=19$m=8192,t=1,p=1$", 30) == 0);
	assert_int_equal(auth_verify(phc, good), 0);
	assert_int_equal(auth_verify(phc, bad), -EACCES);
	/* A fresh salt every time: equal passphrases, different hashes. */
	assert_int_equal(auth_hash(&P, good, &phc2), 0);
	assert_string_not_equal(phc, phc2);
	assert_int_equal(auth_verify(phc2, good), 0);
	free(phc);
	free(phc2);
}

static void test_rejects_non_argon2id(void **state)
{
	_cleanup_secret_ struct secret *p = S("correct horse battery staple");
	(void)state;

	assert_int_equal(auth_verify("$argon2i$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaA", p), -EINVAL);
	assert_int_equal(auth_verify("plain", p), -EINVAL);
	assert_int_equal(auth_verify("$argon2id$garbage", p), -EINVAL);
}

static void test_rehash_when_parameters_change(void **state)
{
	_cleanup_secret_ struct secret *p = S("correct horse battery staple");
	struct auth_params q = P;
	char *phc = NULL;
	(void)state;

	assert_int_equal(auth_hash(&P, p, &phc), 0);
	assert_false(auth_needs_rehash(phc, &P));
	q.iterations = 2;
	assert_true(auth_needs_rehash(phc, &q));
	q = P;
	q.memory_kib = 16384;
	assert_true(auth_needs_rehash(phc, &q));
	free(phc);
}

static void test_passphrase_policy(void **state)
{
	_cleanup_secret_ struct secret *shrt = S("eleven char"), *ok = S("twelve chars"), *nul = NULL;
	char big[AUTH_PASSPHRASE_MAX + 1];
	struct secret *long_one = NULL;
	(void)state;

	assert_non_null(auth_passphrase_check(shrt));
	assert_null(auth_passphrase_check(ok));
	assert_non_null(auth_passphrase_check(NULL));
	assert_int_equal(secret_from_bytes("twelve\0chars", 12, &nul), 0);
	assert_non_null(auth_passphrase_check(nul));
	memset(big, 'x', sizeof(big));
	assert_int_equal(secret_from_bytes(big, sizeof(big), &long_one), 0);
	assert_non_null(auth_passphrase_check(long_one));
	long_one->len = AUTH_PASSPHRASE_MAX;
	assert_null(auth_passphrase_check(long_one));
	secret_free(long_one);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_and_verify),
		cmocka_unit_test(test_rejects_non_argon2id),
		cmocka_unit_test(test_rehash_when_parameters_change),
		cmocka_unit_test(test_passphrase_policy),
	};

	if (secret_library_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
