/* tests/unit/test_keyprov_blob.c: the wrapped-RK blob codec (common/keyprov_blob.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "common/err.h"
#include "common/keyprov.h"

#define CT_LEN 384              /* RSA-3072 */
/* Offsets in a blob built by make_blob() with the label "vaultd-root". */
#define OFF_VERSION 0
#define OFF_MECH 1
#define OFF_HASH 2
#define OFF_KEYVER 3
#define OFF_LABEL_LEN 7
#define OFF_LABEL 8
#define LABEL "vaultd-root"
#define OFF_CT_LEN (OFF_LABEL + sizeof(LABEL) - 1)

static uint8_t ct_bytes[CT_LEN];

static struct keyprov_blob sample(void)
{
	struct keyprov_blob b = {
		.mech = KEYPROV_MECH_OAEP_HOST,
		.hash = KEYPROV_HASH_SHA256,
		.key_version = 0x01020304,
		.ct = ct_bytes,
		.ct_len = CT_LEN,
	};

	strcpy(b.label, LABEL);
	for (size_t i = 0; i < CT_LEN; i++)
		ct_bytes[i] = (uint8_t)(i * 7 + 3);
	return b;
}

static uint8_t *make_blob(size_t *ret_len)
{
	struct keyprov_blob b = sample();
	uint8_t *buf = NULL;

	assert_int_equal(keyprov_blob_build(&b, &buf, ret_len), 0);
	return buf;
}

static void test_round_trip(void **state)
{
	static const struct {
		uint8_t mech, hash;
	} combos[] = {
		{ KEYPROV_MECH_OAEP_HOST, KEYPROV_HASH_SHA256 },
		{ KEYPROV_MECH_OAEP_TOKEN, KEYPROV_HASH_SHA1 },
		{ KEYPROV_MECH_OAEP_TOKEN, KEYPROV_HASH_SHA256 },
	};
	(void)state;

	for (size_t i = 0; i < ELEMENTSOF(combos); i++) {
		struct keyprov_blob b = sample(), out;
		uint8_t *buf = NULL;
		size_t n = 0;

		b.mech = combos[i].mech;
		b.hash = combos[i].hash;
		assert_int_equal(keyprov_blob_build(&b, &buf, &n), 0);
		assert_int_equal(n, 1 + 1 + 1 + 4 + 1 + strlen(LABEL) + 2 + CT_LEN);
		assert_int_equal(buf[OFF_VERSION], KEYPROV_BLOB_VERSION);
		assert_int_equal(buf[OFF_KEYVER], 0x01);       /* big-endian */
		assert_int_equal(buf[OFF_KEYVER + 3], 0x04);

		assert_int_equal(keyprov_blob_parse(buf, n, &out), 0);
		assert_int_equal(out.mech, b.mech);
		assert_int_equal(out.hash, b.hash);
		assert_int_equal(out.key_version, 0x01020304);
		assert_string_equal(out.label, LABEL);
		assert_int_equal(out.ct_len, CT_LEN);
		assert_ptr_equal(out.ct, buf + OFF_CT_LEN + 2);        /* borrowed */
		assert_memory_equal(out.ct, ct_bytes, CT_LEN);
		free(buf);
	}
}

static void test_label_and_ct_limits(void **state)
{
	struct keyprov_blob b = sample(), out;
	uint8_t *buf = NULL;
	size_t n;
	(void)state;

	/* 64-character label and the ct length bounds are accepted. */
	memset(b.label, 'x', KEYPROV_LABEL_MAX);
	b.label[KEYPROV_LABEL_MAX] = '\0';
	b.ct_len = 256;
	assert_int_equal(keyprov_blob_build(&b, &buf, &n), 0);
	assert_int_equal(keyprov_blob_parse(buf, n, &out), 0);
	assert_int_equal(strlen(out.label), KEYPROV_LABEL_MAX);
	free(buf);

	static uint8_t big[512];
	b = sample();
	b.ct = big;
	b.ct_len = 512;
	assert_int_equal(keyprov_blob_build(&b, &buf, &n), 0);
	assert_int_equal(keyprov_blob_parse(buf, n, &out), 0);
	assert_int_equal(out.ct_len, 512);
	free(buf);

	/* A label with a space is printable ASCII. */
	b = sample();
	strcpy(b.label, "a b");
	assert_int_equal(keyprov_blob_build(&b, &buf, &n), 0);
	assert_int_equal(keyprov_blob_parse(buf, n, &out), 0);
	assert_string_equal(out.label, "a b");
	free(buf);
}

static void test_every_prefix_rejected(void **state)
{
	struct keyprov_blob out;
	size_t n;
	uint8_t *buf = make_blob(&n);
	(void)state;

	for (size_t i = 0; i < n; i++)
		assert_int_equal(keyprov_blob_parse(buf, i, &out), -VLT_E_BLOB_FORMAT);
	assert_int_equal(keyprov_blob_parse(NULL, 0, &out), -VLT_E_BLOB_FORMAT);
	free(buf);
}

static void test_trailing_byte_rejected(void **state)
{
	struct keyprov_blob out;
	size_t n;
	uint8_t *buf = make_blob(&n);
	uint8_t *longer = malloc(n + 1);
	(void)state;

	assert_non_null(longer);
	memcpy(longer, buf, n);
	longer[n] = 0;
	assert_int_equal(keyprov_blob_parse(longer, n, &out), 0);
	assert_int_equal(keyprov_blob_parse(longer, n + 1, &out), -VLT_E_BLOB_FORMAT);
	free(longer);
	free(buf);
}

static void test_unknown_version(void **state)
{
	struct keyprov_blob out;
	size_t n;
	uint8_t *buf = make_blob(&n);
	uint8_t one = 2;
	(void)state;

	buf[OFF_VERSION] = 0;
	assert_int_equal(keyprov_blob_parse(buf, n, &out), -VLT_E_BLOB_VERSION);
	buf[OFF_VERSION] = 2;
	assert_int_equal(keyprov_blob_parse(buf, n, &out), -VLT_E_BLOB_VERSION);
	buf[OFF_VERSION] = 0xff;
	assert_int_equal(keyprov_blob_parse(buf, n, &out), -VLT_E_BLOB_VERSION);
	/* Just the version byte of an unknown version: still "unsupported". */
	assert_int_equal(keyprov_blob_parse(&one, 1, &out), -VLT_E_BLOB_VERSION);
	free(buf);
}

/* Parses a copy of a valid blob with one byte changed. */
static int parse_patched(size_t off, uint8_t val)
{
	struct keyprov_blob out;
	size_t n;
	uint8_t *buf = make_blob(&n);
	int r;

	buf[off] = val;
	r = keyprov_blob_parse(buf, n, &out);
	free(buf);
	return r;
}

static void test_bad_fields_rejected(void **state)
{
	(void)state;

	/* mechanism / hash values and combinations */
	assert_int_equal(parse_patched(OFF_MECH, 0), -VLT_E_BLOB_FORMAT);
	assert_int_equal(parse_patched(OFF_MECH, 3), -VLT_E_BLOB_FORMAT);
	assert_int_equal(parse_patched(OFF_HASH, 0), -VLT_E_BLOB_FORMAT);
	assert_int_equal(parse_patched(OFF_HASH, 3), -VLT_E_BLOB_FORMAT);
	assert_int_equal(parse_patched(OFF_HASH, KEYPROV_HASH_SHA1), -VLT_E_BLOB_FORMAT); /* HOST+SHA1 */

	/* label: length 0, length that no longer matches the data, bad bytes */
	assert_int_equal(parse_patched(OFF_LABEL_LEN, 0), -VLT_E_BLOB_FORMAT);
	assert_int_equal(parse_patched(OFF_LABEL_LEN, (uint8_t)(strlen(LABEL) + 1)), -VLT_E_BLOB_FORMAT);
	assert_int_equal(parse_patched(OFF_LABEL_LEN, (uint8_t)(strlen(LABEL) - 1)), -VLT_E_BLOB_FORMAT);
	assert_int_equal(parse_patched(OFF_LABEL, 0x00), -VLT_E_BLOB_FORMAT);
	assert_int_equal(parse_patched(OFF_LABEL, '\n'), -VLT_E_BLOB_FORMAT);
	assert_int_equal(parse_patched(OFF_LABEL, 0x7f), -VLT_E_BLOB_FORMAT);
	assert_int_equal(parse_patched(OFF_LABEL + 2, 0xc3), -VLT_E_BLOB_FORMAT);

	/* ciphertext length field: high byte changed (length out of range and
	 * not matching the data) */
	assert_int_equal(parse_patched(OFF_CT_LEN, 0x00), -VLT_E_BLOB_FORMAT);
	assert_int_equal(parse_patched(OFF_CT_LEN, 0xff), -VLT_E_BLOB_FORMAT);
}

static void test_label_over_64_rejected(void **state)
{
	/* Hand-built: a 65-byte label with a consistent length byte. */
	uint8_t buf[1 + 1 + 1 + 4 + 1 + 65 + 2 + CT_LEN] = { 0 };
	struct keyprov_blob out;
	size_t off = 0;
	(void)state;

	buf[off++] = KEYPROV_BLOB_VERSION;
	buf[off++] = KEYPROV_MECH_OAEP_HOST;
	buf[off++] = KEYPROV_HASH_SHA256;
	off += 4;
	buf[off++] = 65;
	memset(buf + off, 'a', 65);
	off += 65;
	put_be16(buf + off, CT_LEN);
	assert_int_equal(keyprov_blob_parse(buf, sizeof(buf), &out), -VLT_E_BLOB_FORMAT);

	/* Same with 64: accepted (so the rejection above was the label). */
	uint8_t ok[sizeof(buf) - 1];
	memcpy(ok, buf, 7);
	ok[7] = 64;
	memset(ok + 8, 'a', 64);
	put_be16(ok + 8 + 64, CT_LEN);
	memset(ok + 8 + 64 + 2, 0, CT_LEN);
	assert_int_equal(keyprov_blob_parse(ok, sizeof(ok), &out), 0);
}

static void test_ct_length_out_of_range(void **state)
{
	/* Consistent blobs whose ciphertext is 255 or 513 bytes. */
	static const size_t lens[] = { 0, 1, 255, 513 };
	(void)state;

	for (size_t i = 0; i < ELEMENTSOF(lens); i++) {
		size_t n = 1 + 1 + 1 + 4 + 1 + 1 + 2 + lens[i];
		uint8_t *buf = calloc(1, n);
		struct keyprov_blob out;

		assert_non_null(buf);
		buf[0] = KEYPROV_BLOB_VERSION;
		buf[1] = KEYPROV_MECH_OAEP_TOKEN;
		buf[2] = KEYPROV_HASH_SHA1;
		buf[7] = 1;
		buf[8] = 'k';
		put_be16(buf + 9, (uint16_t)lens[i]);
		assert_int_equal(keyprov_blob_parse(buf, n, &out), -VLT_E_BLOB_FORMAT);
		free(buf);
	}
}

static void test_build_rejects_bad_fields(void **state)
{
	struct keyprov_blob b;
	uint8_t *buf = NULL;
	size_t n = 0;
	(void)state;

	b = sample();
	b.mech = 0;
	assert_int_equal(keyprov_blob_build(&b, &buf, &n), -EINVAL);
	b = sample();
	b.hash = KEYPROV_HASH_SHA1;    /* HOST+SHA1 */
	assert_int_equal(keyprov_blob_build(&b, &buf, &n), -EINVAL);
	b = sample();
	b.label[0] = '\0';
	assert_int_equal(keyprov_blob_build(&b, &buf, &n), -EINVAL);
	b = sample();
	b.label[3] = '\t';
	assert_int_equal(keyprov_blob_build(&b, &buf, &n), -EINVAL);
	b = sample();
	memset(b.label, 'x', sizeof(b.label));  /* no terminator within 65 bytes */
	assert_int_equal(keyprov_blob_build(&b, &buf, &n), -EINVAL);
	b = sample();
	b.ct_len = 255;
	assert_int_equal(keyprov_blob_build(&b, &buf, &n), -EINVAL);
	b.ct_len = 513;
	assert_int_equal(keyprov_blob_build(&b, &buf, &n), -EINVAL);
	b = sample();
	b.ct = NULL;
	assert_int_equal(keyprov_blob_build(&b, &buf, &n), -EINVAL);
	assert_null(buf);
}

static void test_names(void **state)
{
	enum keyprov_mech m;
	enum keyprov_hash h;
	(void)state;

	assert_string_equal(keyprov_mech_name(KEYPROV_MECH_OAEP_HOST), "oaep-sha256-host");
	assert_string_equal(keyprov_mech_name(KEYPROV_MECH_OAEP_TOKEN), "oaep-token");
	assert_null(keyprov_mech_name((enum keyprov_mech)0));
	assert_string_equal(keyprov_hash_name(KEYPROV_HASH_SHA1), "sha1");
	assert_string_equal(keyprov_hash_name(KEYPROV_HASH_SHA256), "sha256");
	assert_null(keyprov_hash_name((enum keyprov_hash)9));

	assert_int_equal(keyprov_mech_from_name("oaep-sha256-host", &m), 0);
	assert_int_equal(m, KEYPROV_MECH_OAEP_HOST);
	assert_int_equal(keyprov_mech_from_name("oaep-token", &m), 0);
	assert_int_equal(m, KEYPROV_MECH_OAEP_TOKEN);
	assert_int_equal(keyprov_mech_from_name("OAEP-TOKEN", &m), -EINVAL);
	assert_int_equal(keyprov_mech_from_name("", &m), -EINVAL);
	assert_int_equal(keyprov_hash_from_name("sha1", &h), 0);
	assert_int_equal(h, KEYPROV_HASH_SHA1);
	assert_int_equal(keyprov_hash_from_name("sha256", &h), 0);
	assert_int_equal(h, KEYPROV_HASH_SHA256);
	assert_int_equal(keyprov_hash_from_name("sha512", &h), -EINVAL);
	assert_int_equal(keyprov_hash_from_name(NULL, &h), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_label_and_ct_limits),
		cmocka_unit_test(test_every_prefix_rejected),
		cmocka_unit_test(test_trailing_byte_rejected),
		cmocka_unit_test(test_unknown_version),
		cmocka_unit_test(test_bad_fields_rejected),
		cmocka_unit_test(test_label_over_64_rejected),
		cmocka_unit_test(test_ct_length_out_of_range),
		cmocka_unit_test(test_build_rejects_bad_fields),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
