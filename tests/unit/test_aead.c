/* tests/unit/test_aead.c: AES-256-GCM against published known answers.
 *
 * Vectors (all AES-256, 96-bit IV, 128-bit tag):
 *  - McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", test
 *    cases 13-16 (17 and 18 use 64- and 480-bit IVs, which aead.h does not
 *    take);
 *  - NIST CAVP gcmEncryptExtIV256.rsp, Count = 0 of the groups
 *    [PTlen = 0, AADlen = 0], [PTlen = 0, AADlen = 128],
 *    [PTlen = 128, AADlen = 0] and [PTlen = 128, AADlen = 128].
 * Each was cross-checked against Python's cryptography AESGCM before it was
 * written here. Failure cases are made from these by changing one bit.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "common/secret.h"
#include "vaultd/keys/aead.h"

struct kat {
	const char *name, *key, *iv, *pt, *aad, *ct, *tag;
};

static const struct kat kats[] = {
	{ "GCM spec TC13: empty plaintext, no AAD",
	  "0000000000000000000000000000000000000000000000000000000000000000",
	  "000000000000000000000000", "", "", "", "530f8afbc74536b9a963b4f1c4cb738b" },
	{ "GCM spec TC14: one zero block, no AAD",
	  "0000000000000000000000000000000000000000000000000000000000000000",
	  "000000000000000000000000", "00000000000000000000000000000000", "",
	  "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919" },
	{ "GCM spec TC15: 64 bytes, no AAD",
	  "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
	  "cafebabefacedbaddecaf888",
	  "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
	  "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
	  "",
	  "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
	  "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
	  "b094dac5d93471bdec1a502270e3cc6c" },
	{ "GCM spec TC16: 60 bytes, 20 bytes of AAD",
	  "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
	  "cafebabefacedbaddecaf888",
	  "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
	  "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
	  "feedfacedeadbeeffeedfacedeadbeefabaddad2",
	  "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
	  "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
	  "76fc6ece0f4e1768cddf8853bb2d551b" },
	{ "CAVP gcmEncryptExtIV256 PTlen 0 AADlen 0 Count 0",
	  "b52c505a37d78eda5dd34f20c22540ea1b58963cf8e5bf8ffa85f9f2492505b4",
	  "516c33929df5a3284ff463d7", "", "", "", "bdc1ac884d332457a1d2664f168c76f0" },
	{ "CAVP gcmEncryptExtIV256 PTlen 0 AADlen 128 Count 0",
	  "78dc4e0aaf52d935c3c01eea57428f00ca1fd475f5da86a49c8dd73d68c8e223",
	  "d79cf22d504cc793c3fb6c8a", "", "b96baa8c1c75a671bfb2d08d06be5f36", "",
	  "3e5d486aa2e30b22e040b85723a06e76" },
	{ "CAVP gcmEncryptExtIV256 PTlen 128 AADlen 0 Count 0",
	  "31bdadd96698c204aa9ce1448ea94ae1fb4a9a0b3c9d773b51bb1822666b8f22",
	  "0d18e06c7c725ac9e362e1ce", "2db5168e932556f8089a0622981d017d", "",
	  "fa4362189661d163fcd6a56d8bf0405a", "d636ac1bbedd5cc3ee727dc2ab4a9489" },
	{ "CAVP gcmEncryptExtIV256 PTlen 128 AADlen 128 Count 0",
	  "92e11dcdaa866f5ce790fd24501f92509aacf4cb8b1339d50c9c1240935dd08b",
	  "ac93a1a6145299bde902f21a", "2d71bcfa914e4ac045b2aa60955fad24",
	  "1e0889016f67601c8ebea4943bc23ad6", "8995ae2e6df3dbf96fac7b7137bae67f",
	  "eca5aa77d51d4a0a14d9c51e1da474ab" },
};

#define BUF_MAX 64

struct vec {
	uint8_t key[AEAD_KEY_LEN], iv[AEAD_NONCE_LEN], tag[AEAD_TAG_LEN];
	uint8_t pt[BUF_MAX], aad[BUF_MAX], ct[BUF_MAX];
	size_t pt_len, aad_len, ct_len;
};

static size_t unhex(const char *s, uint8_t *out, size_t max)
{
	size_t n = strlen(s);

	assert_int_equal(n % 2, 0);
	assert_true(n / 2 <= max);
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;

		assert_int_equal(sscanf(s + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
	return n / 2;
}

static void load(const struct kat *k, struct vec *v)
{
	memset(v, 0, sizeof(*v));
	assert_int_equal(unhex(k->key, v->key, sizeof(v->key)), AEAD_KEY_LEN);
	assert_int_equal(unhex(k->iv, v->iv, sizeof(v->iv)), AEAD_NONCE_LEN);
	assert_int_equal(unhex(k->tag, v->tag, sizeof(v->tag)), AEAD_TAG_LEN);
	v->pt_len = unhex(k->pt, v->pt, sizeof(v->pt));
	v->aad_len = unhex(k->aad, v->aad, sizeof(v->aad));
	v->ct_len = unhex(k->ct, v->ct, sizeof(v->ct));
	assert_int_equal(v->pt_len, v->ct_len);
}

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static void test_kat_encrypt(void **state)
{
	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(kats); i++) {
		struct vec v;
		uint8_t ct[BUF_MAX], tag[AEAD_TAG_LEN];

		load(&kats[i], &v);
		print_message("%s\n", kats[i].name);
		memset(ct, 0xa5, sizeof(ct));
		assert_int_equal(aead_encrypt(v.key, v.iv, v.aad, v.aad_len, v.pt, v.pt_len, ct, tag),
				 0);
		if (v.ct_len)
			assert_memory_equal(ct, v.ct, v.ct_len);
		assert_memory_equal(tag, v.tag, AEAD_TAG_LEN);
		/* Nothing past n bytes is written. */
		for (size_t j = v.ct_len; j < sizeof(ct); j++)
			assert_int_equal(ct[j], 0xa5);
	}
}

static void test_kat_decrypt(void **state)
{
	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(kats); i++) {
		struct vec v;
		uint8_t pt[BUF_MAX];

		load(&kats[i], &v);
		memset(pt, 0xa5, sizeof(pt));
		assert_int_equal(aead_decrypt(v.key, v.iv, v.aad, v.aad_len, v.ct, v.ct_len, v.tag, pt),
				 0);
		if (v.pt_len)
			assert_memory_equal(pt, v.pt, v.pt_len);
	}
}

/* Decrypts v with one bit of one input changed: must be -EBADMSG with the
 * output wiped. */
static void expect_badmsg(const struct vec *v)
{
	uint8_t pt[BUF_MAX];

	memset(pt, 0xa5, sizeof(pt));
	assert_int_equal(aead_decrypt(v->key, v->iv, v->aad, v->aad_len, v->ct, v->ct_len, v->tag, pt),
			 -EBADMSG);
	assert_true(all_zero(pt, v->ct_len));
}

static void test_kat_tag_modified(void **state)
{
	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(kats); i++) {
		struct vec v;

		load(&kats[i], &v);
		/* The last byte's low bits, and its top bit, as in CAVP's FAIL
		 * cases which differ from a valid tag in one place. */
		v.tag[AEAD_TAG_LEN - 1] ^= 0x01;
		expect_badmsg(&v);
		v.tag[AEAD_TAG_LEN - 1] ^= 0x01;
		v.tag[0] ^= 0x80;
		expect_badmsg(&v);
	}
}

static void test_kat_every_input_bound(void **state)
{
	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(kats); i++) {
		struct vec v;

		load(&kats[i], &v);
		for (size_t b = 0; b < v.ct_len * 8; b++) {
			v.ct[b / 8] ^= (uint8_t)(1u << (b % 8));
			expect_badmsg(&v);
			v.ct[b / 8] ^= (uint8_t)(1u << (b % 8));
		}
		for (size_t b = 0; b < v.aad_len * 8; b++) {
			v.aad[b / 8] ^= (uint8_t)(1u << (b % 8));
			expect_badmsg(&v);
			v.aad[b / 8] ^= (uint8_t)(1u << (b % 8));
		}
		for (size_t b = 0; b < AEAD_NONCE_LEN * 8; b++) {
			v.iv[b / 8] ^= (uint8_t)(1u << (b % 8));
			expect_badmsg(&v);
			v.iv[b / 8] ^= (uint8_t)(1u << (b % 8));
		}
		v.key[31] ^= 1;
		expect_badmsg(&v);
		v.key[31] ^= 1;
		/* AAD that was absent made present, or one byte shorter. */
		if (v.aad_len == 0) {
			v.aad_len = 1;
			expect_badmsg(&v);
		} else {
			v.aad_len--;
			expect_badmsg(&v);
		}
	}
}

static void test_round_trip_sizes(void **state)
{
	uint8_t key[AEAD_KEY_LEN], nonce[AEAD_NONCE_LEN], pt[300], ct[300], out[300],
		tag[AEAD_TAG_LEN];
	(void)state;

	memset(key, 0x42, sizeof(key));
	memset(nonce, 0x24, sizeof(nonce));
	for (size_t i = 0; i < sizeof(pt); i++)
		pt[i] = (uint8_t)(i * 7 + 3);
	for (size_t n = 0; n <= sizeof(pt); n += 13) {
		assert_int_equal(aead_encrypt(key, nonce, pt, n / 2, pt, n, ct, tag), 0);
		assert_int_equal(aead_decrypt(key, nonce, pt, n / 2, ct, n, tag, out), 0);
		if (n)
			assert_memory_equal(out, pt, n);
	}
}

static void test_bad_arguments(void **state)
{
	uint8_t key[AEAD_KEY_LEN] = { 0 }, nonce[AEAD_NONCE_LEN] = { 0 }, buf[16] = { 0 },
		tag[AEAD_TAG_LEN] = { 0 };
	(void)state;

	/* EVP lengths are int: larger must be refused, not truncated. The
	 * buffers are never touched on this path. */
	const size_t huge = (size_t)INT_MAX + 1;

	assert_int_equal(aead_encrypt(key, nonce, NULL, 0, buf, huge, buf, tag), -EINVAL);
	assert_int_equal(aead_decrypt(key, nonce, NULL, 0, buf, huge, tag, buf), -EINVAL);
	assert_int_equal(aead_encrypt(key, nonce, buf, huge, buf, 1, buf, tag), -EINVAL);
	assert_int_equal(aead_encrypt(NULL, nonce, NULL, 0, buf, 1, buf, tag), -EINVAL);
	assert_int_equal(aead_encrypt(key, NULL, NULL, 0, buf, 1, buf, tag), -EINVAL);
	assert_int_equal(aead_encrypt(key, nonce, NULL, 0, buf, 1, buf, NULL), -EINVAL);
	assert_int_equal(aead_encrypt(key, nonce, NULL, 1, buf, 1, buf, tag), -EINVAL);
	assert_int_equal(aead_encrypt(key, nonce, NULL, 0, NULL, 1, buf, tag), -EINVAL);
	assert_int_equal(aead_decrypt(key, nonce, NULL, 0, buf, 1, tag, NULL), -EINVAL);
	/* n == 0 needs no buffers at all. */
	assert_int_equal(aead_encrypt(key, nonce, NULL, 0, NULL, 0, NULL, tag), 0);
	assert_int_equal(aead_decrypt(key, nonce, NULL, 0, NULL, 0, tag, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kat_encrypt),
		cmocka_unit_test(test_kat_decrypt),
		cmocka_unit_test(test_kat_tag_modified),
		cmocka_unit_test(test_kat_every_input_bound),
		cmocka_unit_test(test_round_trip_sizes),
		cmocka_unit_test(test_bad_arguments),
	};

	if (secret_library_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
