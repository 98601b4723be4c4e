/* tests/unit/test_totp.c: TOTP against RFC 6238 Appendix B, the +-1 step
 * window and single use, the otpauth:// URI, and recovery codes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>
#include "common/secret.h"
#include "vaultd/access/totp.h"

/* RFC 6238 Appendix B: the SHA-1 seed is the 20 ASCII bytes below. */
static const char RFC_KEY[] = "12345678901234567890";
static const int64_t NOW = 1111111111;  /* step 37037037 */

static struct secret *rfc_key(void)
{
	struct secret *k = NULL;

	assert_int_equal(secret_from_bytes(RFC_KEY, 20, &k), 0);
	return k;
}

static void code_at(const struct secret *k, uint64_t step, char code[TOTP_DIGITS + 1])
{
	assert_int_equal(totp_generate(k, step, code), 0);
	assert_int_equal(strlen(code), TOTP_DIGITS);
}

static void test_rfc6238_vectors(void **state)
{
	static const struct {
		int64_t t;
		const char *code8;
	} v[] = {
		{ 59, "94287082" },         { 1111111109, "07081804" }, { 1111111111, "14050471" },
		{ 1234567890, "89005924" }, { 2000000000, "69279037" }, { 20000000000, "65353130" },
	};
	_cleanup_secret_ struct secret *k = rfc_key();
	char code[TOTP_DIGITS + 1];
	(void)state;

	for (size_t i = 0; i < ELEMENTSOF(v); i++) {
		/* A 6-digit HOTP is the 31-bit value mod 10^6: the last 6 of the 8 digits. */
		code_at(k, totp_step(v[i].t), code);
		assert_string_equal(code, v[i].code8 + 2);
	}
}

static void test_step(void **state)
{
	(void)state;
	assert_int_equal(totp_step(0), 0);
	assert_int_equal(totp_step(29), 0);
	assert_int_equal(totp_step(30), 1);
	assert_int_equal(totp_step(59), 1);
	assert_int_equal(totp_step(NOW), 37037037);
	assert_int_equal(totp_step(-1), 0);
}

static void test_generate_bad_args(void **state)
{
	_cleanup_secret_ struct secret *k = rfc_key(), *short_key = NULL;
	char code[TOTP_DIGITS + 1] = "xxxxxx";
	(void)state;

	assert_int_equal(secret_from_bytes(RFC_KEY, 10, &short_key), 0);       /* 80 bits < RFC 4226 minimum */
	assert_int_equal(totp_generate(short_key, 1, code), -EINVAL);
	assert_int_equal(totp_generate(NULL, 1, code), -EINVAL);
	assert_int_equal(totp_generate(k, UINT64_MAX, code), -EINVAL);          /* past time_t */
	assert_string_equal(code, "xxxxxx");                                   /* untouched on failure */
}

static void test_secret_new(void **state)
{
	_cleanup_secret_ struct secret *a = NULL, *b = NULL;
	char code[TOTP_DIGITS + 1];
	(void)state;

	assert_int_equal(totp_secret_new(&a), 0);
	assert_int_equal(totp_secret_new(&b), 0);
	assert_int_equal(a->len, TOTP_SECRET_LEN);
	assert_int_equal(b->len, TOTP_SECRET_LEN);
	assert_false(secret_equal(a, b));
	code_at(a, totp_step(NOW), code);
}

static void test_verify_window(void **state)
{
	_cleanup_secret_ struct secret *k = rfc_key();
	uint64_t cur = totp_step(NOW), last;
	char code[TOTP_DIGITS + 1];
	(void)state;

	/* now-1, now, now+1 accepted; the matched step is recorded. */
	for (int d = -1; d <= 1; d++) {
		code_at(k, cur + (uint64_t)d, code);
		last = 0;
		assert_int_equal(totp_verify(k, code, NOW, &last), 0);
		assert_int_equal(last, cur + (uint64_t)d);
	}
	/* The window is the step, not +-30 s around now: last and first second of the step. */
	code_at(k, cur + 1, code);
	last = 0;
	assert_int_equal(totp_verify(k, code, (int64_t)cur * TOTP_STEP, &last), 0);
	last = 0;
	assert_int_equal(totp_verify(k, code, (int64_t)cur * TOTP_STEP + TOTP_STEP - 1, &last), 0);

	/* now-2 and now+2 refused, last untouched. */
	for (int d = -2; d <= 2; d += 4) {
		code_at(k, cur + (uint64_t)d, code);
		last = 5;
		assert_int_equal(totp_verify(k, code, NOW, &last), -EACCES);
		assert_int_equal(last, 5);
	}
}

static void test_verify_single_use(void **state)
{
	_cleanup_secret_ struct secret *k = rfc_key();
	uint64_t cur = totp_step(NOW), last = 0;
	char now_code[TOTP_DIGITS + 1], next_code[TOTP_DIGITS + 1], prev_code[TOTP_DIGITS + 1];
	(void)state;

	code_at(k, cur - 1, prev_code);
	code_at(k, cur, now_code);
	code_at(k, cur + 1, next_code);

	/* Same code twice: the second is a replay. */
	assert_int_equal(totp_verify(k, now_code, NOW, &last), 0);
	assert_int_equal(last, cur);
	assert_int_equal(totp_verify(k, now_code, NOW, &last), -EALREADY);
	assert_int_equal(last, cur);
	/* Still a replay 30 s later, when the step is now-1 of the window. */
	assert_int_equal(totp_verify(k, now_code, NOW + TOTP_STEP, &last), -EALREADY);

	/* After now+1 was used, older steps of the window are refused. */
	assert_int_equal(totp_verify(k, next_code, NOW, &last), 0);
	assert_int_equal(last, cur + 1);
	assert_int_equal(totp_verify(k, now_code, NOW, &last), -EALREADY);
	assert_int_equal(totp_verify(k, prev_code, NOW, &last), -EALREADY);
	assert_int_equal(totp_verify(k, next_code, NOW, &last), -EALREADY);
	assert_int_equal(last, cur + 1);

	/* A previous step used first still leaves now and now+1 open. */
	last = 0;
	assert_int_equal(totp_verify(k, prev_code, NOW, &last), 0);
	assert_int_equal(last, cur - 1);
	assert_int_equal(totp_verify(k, now_code, NOW, &last), 0);
	assert_int_equal(last, cur);
}

static void test_verify_wrong_code(void **state)
{
	_cleanup_secret_ struct secret *k = rfc_key();
	uint64_t cur = totp_step(NOW), last = 7;
	char cand[3][TOTP_DIGITS + 1], wrong[TOTP_DIGITS + 1];
	(void)state;

	for (unsigned i = 0; i < 3; i++)
		code_at(k, cur - 1 + i, cand[i]);
	/* Each digit of the current code changed in turn; skip accidental window hits. */
	for (size_t pos = 0; pos < TOTP_DIGITS; pos++) {
		memcpy(wrong, cand[1], sizeof(wrong));
		wrong[pos] = (char)('0' + (wrong[pos] - '0' + 1) % 10);
		if (streq(wrong, cand[0]) || streq(wrong, cand[2]))
			continue;
		assert_int_equal(totp_verify(k, wrong, NOW, &last), -EACCES);
	}
	assert_int_equal(totp_verify(k, "000000", NOW, &last), -EACCES);
	assert_int_equal(last, 7);
}

static void test_verify_format(void **state)
{
	static const char *const bad[] = { "12345", "1234567", "12a456", "", " 12345", "12345 ",
					   "-12345", "+12345", "12 456", "123456\n" };
	_cleanup_secret_ struct secret *k = rfc_key();
	uint64_t last = 3;
	char code[TOTP_DIGITS + 1];
	(void)state;

	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		assert_int_equal(totp_verify(k, bad[i], NOW, &last), -EINVAL);
	/* Every non-digit byte in every position of a valid code. */
	code_at(k, totp_step(NOW), code);
	for (size_t pos = 0; pos < TOTP_DIGITS; pos++)
		for (unsigned c = 1; c < 256; c++) {
			char mut[TOTP_DIGITS + 1];

			if (c >= '0' && c <= '9')
				continue;
			memcpy(mut, code, sizeof(mut));
			mut[pos] = (char)c;
			assert_int_equal(totp_verify(k, mut, NOW, &last), -EINVAL);
		}
	assert_int_equal(last, 3);

	assert_int_equal(totp_verify(k, code, -1, &last), -EINVAL);
	assert_int_equal(totp_verify(k, NULL, NOW, &last), -EINVAL);
	assert_int_equal(totp_verify(NULL, code, NOW, &last), -EINVAL);
	assert_int_equal(totp_verify(k, code, NOW, NULL), -EINVAL);
	assert_int_equal(totp_verify(k, code, INT64_MAX, &last), -EINVAL);
	assert_int_equal(last, 3);
	/* The input was valid all along. */
	assert_int_equal(totp_verify(k, code, NOW, &last), 0);
}

static void test_verify_epoch(void **state)
{
	_cleanup_secret_ struct secret *k = rfc_key();
	uint64_t last = 0;
	char code[TOTP_DIGITS + 1];
	(void)state;

	/* Step 0 has no step -1; step 0 is accepted when nothing was used yet... */
	code_at(k, 1, code);
	assert_int_equal(totp_verify(k, code, 0, &last), 0);
	assert_int_equal(last, 1);
	/* ...but last_used_step = 0 counts step 0 as used. */
	code_at(k, 0, code);
	last = 0;
	assert_int_equal(totp_verify(k, code, 0, &last), -EALREADY);
}

static void test_uri(void **state)
{
	_cleanup_secret_ struct secret *k = rfc_key(), *u = NULL, *u2 = NULL, *k16 = NULL, *u3 = NULL;
	struct secret *none = NULL;
	(void)state;

	assert_int_equal(totp_uri(k, "vaultd", "alice@acme", &u), 0);
	assert_string_equal((const char *)u->p,
			    "otpauth://totp/vaultd:alice%40acme?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
			    "&issuer=vaultd&algorithm=SHA1&digits=6&period=30");
	assert_int_equal(u->len, strlen((const char *)u->p));

	/* Reserved and non-ASCII bytes escaped, unreserved kept, in label and query. */
	assert_int_equal(totp_uri(k, "Acme Corp:1", "a.b_c~d-e/f?g&h=\xc3\xa9", &u2), 0);
	assert_string_equal((const char *)u2->p,
			    "otpauth://totp/Acme%20Corp%3A1:a.b_c~d-e%2Ff%3Fg%26h%3D%C3%A9"
			    "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
			    "&issuer=Acme%20Corp%3A1&algorithm=SHA1&digits=6&period=30");

	/* 16-byte key: 26 base32 characters, no '=' padding. */
	assert_int_equal(secret_from_bytes("\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16, &k16), 0);
	assert_int_equal(totp_uri(k16, "i", "a", &u3), 0);
	assert_string_equal((const char *)u3->p, "otpauth://totp/i:a?secret=AAAAAAAAAAAAAAAAAAAAAAAAAA"
						 "&issuer=i&algorithm=SHA1&digits=6&period=30");

	assert_int_equal(totp_uri(k, "", "alice", &none), -EINVAL);
	assert_int_equal(totp_uri(k, "vaultd", "", &none), -EINVAL);
	assert_int_equal(totp_uri(k, NULL, "alice", &none), -EINVAL);
	assert_null(none);
}

static void test_uri_long_parts(void **state)
{
	_cleanup_secret_ struct secret *k = rfc_key(), *u = NULL;
	struct secret *none = NULL;
	char part[300];
	(void)state;

	memset(part, '@', 255);         /* worst case: every byte escaped */
	part[255] = '\0';
	assert_int_equal(totp_uri(k, part, part, &u), 0);
	assert_int_equal(u->len, strlen((const char *)u->p));
	part[255] = '@';
	part[256] = '\0';
	assert_int_equal(totp_uri(k, part, "alice", &none), -EINVAL);
	assert_null(none);
}

static bool is_b32_lower(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '2' && c <= '7');
}

static void test_recovery(void **state)
{
	_cleanup_secret_ struct secret *codes = NULL;
	char hashes[TOTP_RECOVERY_CODES][65], h[65], line[TOTP_RECOVERY_CODES][20];
	const char *p;
	(void)state;

	assert_int_equal(totp_recovery_generate(TOTP_RECOVERY_CODES, &codes, hashes), 0);
	p = (const char *)codes->p;
	assert_int_equal(codes->len, strlen(p));
	assert_int_equal(codes->len, TOTP_RECOVERY_CODES * 20 - 1);    /* no trailing newline */

	for (unsigned i = 0; i < TOTP_RECOVERY_CODES; i++) {
		char *l = line[i], up[20], bare[17];
		size_t b = 0;

		memcpy(l, p + i * 20, 19);
		l[19] = '\0';
		assert_true(p[i * 20 + 19] == (i + 1 < TOTP_RECOVERY_CODES ? '\n' : '\0'));
		for (size_t j = 0; j < 19; j++) {
			if (j % 5 == 4)
				assert_int_equal(l[j], '-');
			else
				assert_true(is_b32_lower(l[j]));
		}
		assert_int_equal(strlen(hashes[i]), 64);
		for (size_t j = 0; j < 64; j++)
			assert_true((hashes[i][j] >= '0' && hashes[i][j] <= '9') ||
				    (hashes[i][j] >= 'a' && hashes[i][j] <= 'f'));

		/* As shown, upper-cased, without dashes, with spaces: all the same hash. */
		assert_int_equal(totp_recovery_hash(l, h), 0);
		assert_string_equal(h, hashes[i]);
		for (size_t j = 0; j < 19; j++) {
			up[j] = (l[j] >= 'a' && l[j] <= 'z') ? (char)(l[j] - 32) : l[j];
			if (l[j] != '-')
				bare[b++] = up[j];
		}
		up[19] = '\0';
		bare[b] = '\0';
		assert_int_equal(totp_recovery_hash(up, h), 0);
		assert_string_equal(h, hashes[i]);
		assert_int_equal(totp_recovery_hash(bare, h), 0);
		assert_string_equal(h, hashes[i]);
		for (size_t j = 0; j < 19; j++)
			up[j] = up[j] == '-' ? ' ' : up[j];
		assert_int_equal(totp_recovery_hash(up, h), 0);
		assert_string_equal(h, hashes[i]);

		for (unsigned k = 0; k < i; k++) {
			assert_string_not_equal(line[k], l);
			assert_string_not_equal(hashes[k], hashes[i]);
		}
	}
}

static void test_recovery_hash_known(void **state)
{
	char h[65];
	(void)state;

	/* sha256("abcdefghijklmnop"), computed independently (Python hashlib). */
	assert_int_equal(totp_recovery_hash("ABCD-efgh-IJKL-mnop", h), 0);
	assert_string_equal(h, "f39dac6cbaba535e2c207cd0cd8f154974223c848f727f98b3564cea569b41cf");
	assert_int_equal(totp_recovery_hash(" abcd efgh-ijkl--mnop ", h), 0);
	assert_string_equal(h, "f39dac6cbaba535e2c207cd0cd8f154974223c848f727f98b3564cea569b41cf");
}

static void test_recovery_bad(void **state)
{
	static const char *const bad[] = {
		"",                             /* empty */
		"abcd-efgh-ijkl-mno",           /* 15 characters */
		"abcd-efgh-ijkl-mnopq",         /* 17 */
		"abcd-efgh-ijkl-mno1",          /* '1' is not base32 */
		"abcd-efgh-ijkl-mno0",
		"abcd-efgh-ijkl-mno8",
		"abcd-efgh-ijkl-mno=",
		"abcd_efgh_ijkl_mnop",          /* only '-' and ' ' are separators */
		"abcd\tefgh-ijkl-mnop",
		"abcd-efgh-ijkl-mn\xc3\xa9",
		"----------------",
	};
	char h[65] = "untouched", longin[80];
	_cleanup_secret_ struct secret *none = NULL;
	char hashes[1][65];
	(void)state;

	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		assert_int_equal(totp_recovery_hash(bad[i], h), -EINVAL);
	/* Valid characters but more than 64 input bytes: refused before parsing. */
	memset(longin, ' ', sizeof(longin));
	memcpy(longin + 60, "abcdefghijklmnop", 16);
	longin[76] = '\0';
	assert_int_equal(totp_recovery_hash(longin, h), -EINVAL);
	assert_int_equal(totp_recovery_hash(NULL, h), -EINVAL);
	assert_string_equal(h, "untouched");

	assert_int_equal(totp_recovery_generate(0, &none, hashes), -EINVAL);
	assert_int_equal(totp_recovery_generate(TOTP_RECOVERY_MAX + 1, &none, hashes), -EINVAL);
	assert_null(none);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc6238_vectors),
		cmocka_unit_test(test_step),
		cmocka_unit_test(test_generate_bad_args),
		cmocka_unit_test(test_secret_new),
		cmocka_unit_test(test_verify_window),
		cmocka_unit_test(test_verify_single_use),
		cmocka_unit_test(test_verify_wrong_code),
		cmocka_unit_test(test_verify_format),
		cmocka_unit_test(test_verify_epoch),
		cmocka_unit_test(test_uri),
		cmocka_unit_test(test_uri_long_parts),
		cmocka_unit_test(test_recovery),
		cmocka_unit_test(test_recovery_hash_known),
		cmocka_unit_test(test_recovery_bad),
	};

	if (secret_library_init() < 0 || totp_library_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
