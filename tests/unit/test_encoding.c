/* tests/unit/test_encoding.c: base32 and base64 against RFC 4648 section 10,
 * against a table-driven reference (fine in a test, not in the library,
 * which must not index tables by data), and against malformed input. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>
#include "common/encoding.h"
#include "common/secret.h"

static const char *const rfc_in[7] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
static const char *const rfc_b64[7] = { "",         "Zg==",     "Zm8=",    "Zm9v",
					"Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
static const char *const rfc_b32[7] = { "",         "MY======", "MZXQ====", "MZXW6===",
					"MZXW6YQ=", "MZXW6YTB", "MZXW6YTBOI======" };

static const char B32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Straightforward reference encoders: 5 and 3 bytes at a time. */
static void ref_b32(const uint8_t *in, size_t n, int pad, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i += 5) {
		uint8_t g[5] = { 0 };
		size_t k = n - i < 5 ? n - i : 5;
		static const size_t chars[6] = { 0, 2, 4, 5, 7, 8 };

		memcpy(g, in + i, k);
		uint64_t v = ((uint64_t)g[0] << 32) | ((uint64_t)g[1] << 24) | ((uint64_t)g[2] << 16) |
			     ((uint64_t)g[3] << 8) | g[4];
		for (size_t c = 0; c < 8; c++) {
			if (c < chars[k])
				out[o++] = B32[(v >> (35 - 5 * c)) & 31];
			else if (pad)
				out[o++] = '=';
		}
	}
	out[o] = '\0';
}

static void ref_b64(const uint8_t *in, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint8_t g[3] = { 0 };
		size_t k = n - i < 3 ? n - i : 3;

		memcpy(g, in + i, k);
		uint32_t v = ((uint32_t)g[0] << 16) | ((uint32_t)g[1] << 8) | g[2];
		for (size_t c = 0; c < 4; c++)
			out[o++] = c <= k ? B64[(v >> (18 - 6 * c)) & 63] : '=';
	}
	out[o] = '\0';
}

static void test_rfc4648_base64(void **state)
{
	(void)state;
	for (size_t i = 0; i < 7; i++) {
		char out[32];
		uint8_t bin[16];
		size_t len, n = strlen(rfc_in[i]);

		assert_int_equal(base64_encoded_size(n), strlen(rfc_b64[i]) + 1);
		assert_int_equal(base64_encode((const uint8_t *)rfc_in[i], n, out, sizeof(out)), 0);
		assert_string_equal(out, rfc_b64[i]);
		assert_int_equal(base64_decode(rfc_b64[i], strlen(rfc_b64[i]), bin, sizeof(bin), &len),
				 0);
		assert_int_equal(len, n);
		if (n)
			assert_memory_equal(bin, rfc_in[i], n);
	}
}

static void test_rfc4648_base32(void **state)
{
	(void)state;
	for (size_t i = 0; i < 7; i++) {
		char out[32], lower[32];
		uint8_t bin[16];
		size_t len, n = strlen(rfc_in[i]), el = strlen(rfc_b32[i]);
		size_t unpadded = strcspn(rfc_b32[i], "=");

		assert_int_equal(base32_encoded_size(n), el + 1);
		assert_int_equal(base32_encode((const uint8_t *)rfc_in[i], n, 1, out, sizeof(out)), 0);
		assert_string_equal(out, rfc_b32[i]);
		assert_int_equal(base32_encode((const uint8_t *)rfc_in[i], n, 0, out, sizeof(out)), 0);
		assert_int_equal(strlen(out), unpadded);
		assert_memory_equal(out, rfc_b32[i], unpadded);

		/* Padded, unpadded, lower case: all decode to the same bytes. */
		assert_int_equal(base32_decode(rfc_b32[i], el, bin, sizeof(bin), &len), 0);
		assert_int_equal(len, n);
		if (n)
			assert_memory_equal(bin, rfc_in[i], n);
		assert_int_equal(base32_decode(rfc_b32[i], unpadded, bin, sizeof(bin), &len), 0);
		assert_int_equal(len, n);
		if (n)
			assert_memory_equal(bin, rfc_in[i], n);
		for (size_t j = 0; j <= el; j++) {
			char c = rfc_b32[i][j];
			lower[j] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
		}
		assert_int_equal(base32_decode(lower, el, bin, sizeof(bin), &len), 0);
		assert_int_equal(len, n);
		if (n)
			assert_memory_equal(bin, rfc_in[i], n);
	}
}

static void test_round_trip_random(void **state)
{
	uint8_t in[100], bin[100];
	char enc[200], ref[200];
	size_t len;
	(void)state;

	for (int round = 0; round < 20; round++) {
		randombytes_buf(in, sizeof(in));
		for (size_t n = 0; n <= sizeof(in); n++) {
			/* base64 */
			assert_int_equal(base64_encode(in, n, enc, sizeof(enc)), 0);
			ref_b64(in, n, ref);
			assert_string_equal(enc, ref);
			assert_int_equal(strlen(enc) + 1, base64_encoded_size(n));
			memset(bin, 0, sizeof(bin));
			assert_int_equal(base64_decode(enc, strlen(enc), bin, n, &len), 0);
			assert_int_equal(len, n);
			if (n)
				assert_memory_equal(bin, in, n);

			/* base32, both paddings */
			for (int pad = 0; pad <= 1; pad++) {
				assert_int_equal(base32_encode(in, n, pad, enc, sizeof(enc)), 0);
				ref_b32(in, n, pad, ref);
				assert_string_equal(enc, ref);
				memset(bin, 0, sizeof(bin));
				assert_int_equal(base32_decode(enc, strlen(enc), bin, n, &len), 0);
				assert_int_equal(len, n);
				if (n)
					assert_memory_equal(bin, in, n);
			}
		}
	}
}

/* Every byte value in a position that must hold an alphabet character. */
static void test_alphabet_exhaustive(void **state)
{
	uint8_t bin[8];
	size_t len;
	(void)state;

	for (unsigned c = 0; c < 256; c++) {
		char b64[4] = { 'A', 'A', 'A', (char)c };
		char b32[8] = { 'A', 'A', 'A', 'A', 'A', 'A', 'A', 'A' };
		int in64 = c != 0 && strchr(B64, (int)c) != NULL;
		int in32 = c != 0 && c != '=' &&
			   (strchr(B32, (int)c) != NULL || (c >= 'a' && c <= 'z'));
		int r;

		/* "AAAx": x is the 4th of a full group; '=' would be valid padding. */
		if (c != '=') {
			r = base64_decode(b64, 4, bin, sizeof(bin), &len);
			assert_int_equal(r, in64 ? 0 : -EINVAL);
		}
		/* Same byte first in the group, where '=' is never valid. */
		b64[0] = (char)c;
		b64[3] = 'A';
		r = base64_decode(b64, 4, bin, sizeof(bin), &len);
		assert_int_equal(r, in64 ? 0 : -EINVAL);

		b32[0] = (char)c;
		r = base32_decode(b32, 8, bin, sizeof(bin), &len);
		assert_int_equal(r, in32 ? 0 : -EINVAL);
		if (in32) {
			/* Its value: the top 5 bits of the first byte. */
			unsigned v = c >= 'a' ? c - 'a' : c >= 'A' ? c - 'A' : c - '2' + 26;
			assert_int_equal(bin[0] >> 3, v);
		}
	}
}

static void expect_b64_invalid(const char *s)
{
	uint8_t bin[64];
	size_t len = 12345;

	memset(bin, 0x5a, sizeof(bin));
	assert_int_equal(base64_decode(s, strlen(s), bin, sizeof(bin), &len), -EINVAL);
	assert_int_equal(len, 12345);
}

static void expect_b32_invalid(const char *s)
{
	uint8_t bin[64];
	size_t len = 12345;

	assert_int_equal(base32_decode(s, strlen(s), bin, sizeof(bin), &len), -EINVAL);
	assert_int_equal(len, 12345);
}

static void test_base64_rejects(void **state)
{
	static const char *const bad[] = {
		"Zg",           /* unpadded: strict decoding wants padding */
		"Zm8",
		"Z",
		"Zg=",          /* short padding */
		"Zg===",        /* long padding */
		"Z===",
		"====",
		"Zm9v====",
		"=Zm9",         /* padding elsewhere */
		"Zm=v",
		"Zg==Zm9v",     /* data after padding */
		"Zh==",         /* non-zero trailing bits (4 left over) */
		"Zm9=",         /* ... (2 left over) */
		"Zm8/Zn==",
		"Zm9v\n",       /* whitespace */
		"Zm 9v",
		"Zm9-",         /* URL-safe alphabet is not ours */
		"Zm9_",
		"Zm9\x80",
		"Zm9\xff",
	};

	uint8_t bin[8];
	size_t len;
	(void)state;

	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		expect_b64_invalid(bad[i]);
	/* An embedded NUL is just a bad character. */
	assert_int_equal(base64_decode("Zm\0v", 4, bin, sizeof(bin), &len), -EINVAL);

	/* The error is found after the bytes were written (no early exit on
	 * data): they are wiped, and nothing past them is touched. */
	memset(bin, 0x5a, sizeof(bin));
	assert_int_equal(base64_decode("Zm9vYmE!", 8, bin, sizeof(bin), &len), -EINVAL);
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(bin[i], 0);
	assert_int_equal(bin[6], 0x5a);
	memset(bin, 0x5a, sizeof(bin));
	assert_int_equal(base32_decode("MZXW6YTBO1", 10, bin, sizeof(bin), &len), -EINVAL);
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(bin[i], 0);
	assert_int_equal(bin[6], 0x5a);
}

static void test_base32_rejects(void **state)
{
	static const char *const bad[] = {
		"M",            /* lengths no encoder makes: 1, 3, 6 characters */
		"MZX",
		"MZXW6Y",
		"M=======",
		"MZX=====",
		"MZXW6Y==",
		"MY=",          /* partial padding */
		"MY=====",
		"MY=======",    /* too much */
		"MZXW6====",    /* 9 characters */
		"========",
		"=MY=====",     /* padding elsewhere */
		"M=XW6YQ=",
		"MY==MY==",
		"MY======MY======",
		"MY======MZXW6YQ=",
		"MZ======",     /* non-zero trailing bits: 2 left over */
		"MZXR====",     /* 4 left over */
		"MZXW7===",     /* 1 left over */
		"MZXW6YR=",     /* 3 left over */
		"MZXW6YT1",     /* outside the alphabet: 0, 1, 8, 9 */
		"MZXW60TB",
		"MZXW68TB",
		"MZXW69TB",
		"MZXW6YT-",
		"MZXW6 TB",
		"MZXW6YTB\n",
		"MZXW6YT\xc2",
	};
	(void)state;

	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		expect_b32_invalid(bad[i]);
}

static void test_enobufs(void **state)
{
	char out[32];
	uint8_t bin[8];
	size_t len;
	(void)state;

	/* Encoders need room for the NUL too. */
	assert_int_equal(base64_encode((const uint8_t *)"foobar", 6, out, 8), -ENOBUFS);
	assert_int_equal(base64_encode((const uint8_t *)"foobar", 6, out, 9), 0);
	assert_string_equal(out, "Zm9vYmFy");
	assert_int_equal(base64_encode((const uint8_t *)"", 0, out, 0), -ENOBUFS);
	assert_int_equal(base64_encode((const uint8_t *)"", 0, out, 1), 0);
	assert_string_equal(out, "");
	assert_int_equal(base32_encode((const uint8_t *)"f", 1, 1, out, 8), -ENOBUFS);
	assert_int_equal(base32_encode((const uint8_t *)"f", 1, 1, out, 9), 0);
	assert_string_equal(out, "MY======");
	assert_int_equal(base32_encode((const uint8_t *)"f", 1, 0, out, 2), -ENOBUFS);
	assert_int_equal(base32_encode((const uint8_t *)"f", 1, 0, out, 3), 0);
	assert_string_equal(out, "MY");

	/* Decoders need exactly the decoded length. */
	assert_int_equal(base64_decode("Zm9vYmFy", 8, bin, 5, &len), -ENOBUFS);
	assert_int_equal(base64_decode("Zm9vYmFy", 8, bin, 6, &len), 0);
	assert_int_equal(len, 6);
	assert_int_equal(base32_decode("MZXW6YTBOI======", 16, bin, 5, &len), -ENOBUFS);
	assert_int_equal(base32_decode("MZXW6YTBOI", 10, bin, 6, &len), 0);
	assert_int_equal(len, 6);
	assert_memory_equal(bin, "foobar", 6);
	/* Empty input decodes to nothing, without a buffer. */
	assert_int_equal(base64_decode("", 0, NULL, 0, &len), 0);
	assert_int_equal(len, 0);
	assert_int_equal(base32_decode("", 0, NULL, 0, &len), 0);
	assert_int_equal(len, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc4648_base64),
		cmocka_unit_test(test_rfc4648_base32),
		cmocka_unit_test(test_round_trip_random),
		cmocka_unit_test(test_alphabet_exhaustive),
		cmocka_unit_test(test_base64_rejects),
		cmocka_unit_test(test_base32_rejects),
		cmocka_unit_test(test_enobufs),
	};

	if (secret_library_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
