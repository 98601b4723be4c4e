/* tests/unit/test_envelope.c: the KEK, DEK and data layers.
 * Round trips, then every way a blob can be wrong: each bit flipped, each
 * AAD component changed, each truncation, a trailing byte, the wrong kind,
 * the wrong key; sizes at their limits; envelope_peek(). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "common/err.h"
#include "common/secret.h"
#include "vaultd/keys/aead.h"
#include "vaultd/keys/envelope.h"

#define TENANT "acme"
#define PATH "acme/rmm/tactical"
#define RK_V 3u
#define KEK_V 7u
#define VER 5u

static const char json[] = "{\"url\":\"https://rmm.example.com\",\"api_key\":\"k3y\"}";

static struct secret *key_new(void)
{
	struct secret *k = NULL;

	assert_int_equal(secret_random(ENVELOPE_KEY_LEN, &k), 0);
	return k;
}

static struct secret *text_new(const char *s)
{
	struct secret *t = NULL;

	assert_int_equal(secret_from_bytes(s, strlen(s), &t), 0);
	return t;
}

/* One sealed blob per layer, with the keys and plaintexts behind them. */
struct fixture {
	struct secret *rk, *kek, *dek, *data;
	uint8_t *kek_blob, *dek_blob, *data_blob;
	size_t kek_len, dek_len, data_len;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->rk = key_new();
	f->kek = key_new();
	f->dek = key_new();
	f->data = text_new(json);
	assert_int_equal(envelope_wrap_kek(f->rk, RK_V, TENANT, KEK_V, f->kek, &f->kek_blob,
					   &f->kek_len), 0);
	assert_int_equal(envelope_wrap_dek(f->kek, KEK_V, PATH, VER, f->dek, &f->dek_blob,
					   &f->dek_len), 0);
	assert_int_equal(envelope_seal_data(f->dek, PATH, VER, f->data, &f->data_blob,
					    &f->data_len), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	secret_free(f->rk);
	secret_free(f->kek);
	secret_free(f->dek);
	secret_free(f->data);
	free(f->kek_blob);
	free(f->dek_blob);
	free(f->data_blob);
	free(f);
	return 0;
}

/* Each opener with the fixture's correct arguments except the blob. */
static int open_kek(const struct fixture *f, const uint8_t *b, size_t n, struct secret **ret)
{
	return envelope_unwrap_kek(f->rk, RK_V, TENANT, KEK_V, b, n, ret);
}

static int open_dek(const struct fixture *f, const uint8_t *b, size_t n, struct secret **ret)
{
	return envelope_unwrap_dek(f->kek, KEK_V, PATH, VER, b, n, ret);
}

static int open_data(const struct fixture *f, const uint8_t *b, size_t n, struct secret **ret)
{
	return envelope_open_data(f->dek, PATH, VER, b, n, ret);
}

typedef int (*opener_t)(const struct fixture *, const uint8_t *, size_t, struct secret **);

/* The call must fail with 'want' and return nothing. A macro, so that
 * 'out' is read after the call (function arguments are unsequenced). */
#define expect_fail(call, want, out)                                    \
	do {                                                            \
		int r_ = (call);                                        \
		assert_int_equal(r_, (want));                           \
		assert_null(out);                                       \
	} while (0)

static void test_kek_round_trip(void **state)
{
	struct fixture *f = *state;
	_cleanup_secret_ struct secret *out = NULL;
	enum envelope_kind kind;
	uint32_t kv;

	assert_int_equal(f->kek_len, ENVELOPE_OVERHEAD + ENVELOPE_KEY_LEN);
	assert_int_equal(f->kek_blob[0], ENVELOPE_FORMAT);
	assert_int_equal(f->kek_blob[1], ENVELOPE_KIND_KEK);
	assert_int_equal(envelope_peek(f->kek_blob, f->kek_len, &kind, &kv), 0);
	assert_int_equal(kind, ENVELOPE_KIND_KEK);
	assert_int_equal(kv, RK_V);
	assert_int_equal(open_kek(f, f->kek_blob, f->kek_len, &out), 0);
	assert_int_equal(out->len, ENVELOPE_KEY_LEN);
	assert_true(secret_equal(out, f->kek));
	/* The plaintext key is not in the blob. */
	assert_null(memmem(f->kek_blob, f->kek_len, f->kek->p, 8));
}

static void test_dek_round_trip(void **state)
{
	struct fixture *f = *state;
	_cleanup_secret_ struct secret *out = NULL;
	enum envelope_kind kind;
	uint32_t kv;

	assert_int_equal(f->dek_len, ENVELOPE_OVERHEAD + ENVELOPE_KEY_LEN);
	assert_int_equal(envelope_peek(f->dek_blob, f->dek_len, &kind, &kv), 0);
	assert_int_equal(kind, ENVELOPE_KIND_DEK);
	assert_int_equal(kv, KEK_V);
	assert_int_equal(open_dek(f, f->dek_blob, f->dek_len, &out), 0);
	assert_true(secret_equal(out, f->dek));
}

static void test_data_round_trip(void **state)
{
	struct fixture *f = *state;
	_cleanup_secret_ struct secret *out = NULL;
	enum envelope_kind kind;
	uint32_t kv;

	assert_int_equal(f->data_len, ENVELOPE_OVERHEAD + strlen(json));
	assert_int_equal(envelope_peek(f->data_blob, f->data_len, &kind, &kv), 0);
	assert_int_equal(kind, ENVELOPE_KIND_DATA);
	assert_int_equal(kv, 1);
	assert_int_equal(open_data(f, f->data_blob, f->data_len, &out), 0);
	assert_int_equal(out->len, strlen(json));
	assert_memory_equal(out->p, json, out->len);
	assert_null(memmem(f->data_blob, f->data_len, "api_key", 7));
}

/* Opens blob with aead_decrypt() and an AAD spelled out here from
 * envelope.h's documentation, independently of envelope.c: the layout on
 * disk is the documented one. */
static void expect_layout(const uint8_t *blob, size_t len, const struct secret *key, const char *ctx,
			  const struct secret *want)
{
	uint8_t aad[128], pt[128];
	size_t ctx_len = strlen(ctx), n = len - ENVELOPE_OVERHEAD;

	assert_true(ENVELOPE_HEADER_LEN + ctx_len <= sizeof(aad));
	assert_true(n <= sizeof(pt));
	memcpy(aad, blob, ENVELOPE_HEADER_LEN);
	memcpy(aad + ENVELOPE_HEADER_LEN, ctx, ctx_len);
	assert_int_equal(aead_decrypt(key->p, blob + 6, aad, ENVELOPE_HEADER_LEN + ctx_len,
				      blob + ENVELOPE_OVERHEAD, n, blob + 18, pt), 0);
	assert_int_equal(n, want->len);
	assert_memory_equal(pt, want->p, n);
}

static void test_documented_layout(void **state)
{
	struct fixture *f = *state;
	static const uint8_t kek_hdr[6] = { 1, 1, 0, 0, 0, RK_V };
	static const uint8_t dek_hdr[6] = { 1, 2, 0, 0, 0, KEK_V };
	static const uint8_t data_hdr[6] = { 1, 3, 0, 0, 0, 1 };

	assert_memory_equal(f->kek_blob, kek_hdr, 6);
	assert_memory_equal(f->dek_blob, dek_hdr, 6);
	assert_memory_equal(f->data_blob, data_hdr, 6);
	expect_layout(f->kek_blob, f->kek_len, f->rk, "vaultd/v1/kek|acme|7|3", f->kek);
	expect_layout(f->dek_blob, f->dek_len, f->kek, "vaultd/v1/dek|acme/rmm/tactical|5|7", f->dek);
	expect_layout(f->data_blob, f->data_len, f->dek, "vaultd/v1/data|acme/rmm/tactical|5", f->data);
}

/* RK -> KEK -> DEK -> data, each layer opened with the key the previous
 * one produced, as the daemon's read path does. */
static void test_full_chain(void **state)
{
	_cleanup_secret_ struct secret *rk = key_new(), *kek = key_new(), *dek = key_new(),
				       *data = text_new(json);
	_cleanup_secret_ struct secret *kek2 = NULL, *dek2 = NULL, *data2 = NULL;
	_cleanup_free_ uint8_t *kb = NULL, *db = NULL, *xb = NULL;
	size_t kn, dn, xn;
	enum envelope_kind kind;
	uint32_t kv;
	(void)state;

	assert_int_equal(envelope_wrap_kek(rk, 1, "globex", 2, kek, &kb, &kn), 0);
	assert_int_equal(envelope_wrap_dek(kek, 2, "globex/slack/bot", 1, dek, &db, &dn), 0);
	assert_int_equal(envelope_seal_data(dek, "globex/slack/bot", 1, data, &xb, &xn), 0);
	/* Reader: peek picks the key versions, then unwrap top-down. */
	assert_int_equal(envelope_peek(kb, kn, &kind, &kv), 0);
	assert_int_equal(kv, 1);
	assert_int_equal(envelope_unwrap_kek(rk, kv, "globex", 2, kb, kn, &kek2), 0);
	assert_int_equal(envelope_peek(db, dn, &kind, &kv), 0);
	assert_int_equal(kv, 2);
	assert_int_equal(envelope_unwrap_dek(kek2, kv, "globex/slack/bot", 1, db, dn, &dek2), 0);
	assert_int_equal(envelope_open_data(dek2, "globex/slack/bot", 1, xb, xn, &data2), 0);
	assert_true(secret_equal(data2, data));
}

static void test_nonces_differ(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ uint8_t *a = NULL, *b = NULL, *c = NULL, *d = NULL;
	size_t an, bn, cn, dn;
	const size_t nonce_at = ENVELOPE_HEADER_LEN;

	assert_int_equal(envelope_seal_data(f->dek, PATH, VER, f->data, &a, &an), 0);
	assert_int_equal(envelope_seal_data(f->dek, PATH, VER, f->data, &b, &bn), 0);
	assert_int_equal(an, bn);
	assert_memory_equal(a, b, ENVELOPE_HEADER_LEN);
	assert_memory_not_equal(a + nonce_at, b + nonce_at, 12);
	assert_memory_not_equal(a + ENVELOPE_OVERHEAD, b + ENVELOPE_OVERHEAD, an - ENVELOPE_OVERHEAD);
	assert_memory_not_equal(a + nonce_at, f->data_blob + nonce_at, 12);

	assert_int_equal(envelope_wrap_kek(f->rk, RK_V, TENANT, KEK_V, f->kek, &c, &cn), 0);
	assert_memory_not_equal(c + nonce_at, f->kek_blob + nonce_at, 12);
	assert_int_equal(envelope_wrap_dek(f->kek, KEK_V, PATH, VER, f->dek, &d, &dn), 0);
	assert_memory_not_equal(d + nonce_at, f->dek_blob + nonce_at, 12);
}

/* The error each flipped byte must give: the format byte names another
 * format, the kind byte another (or no) kind, the key version another key,
 * and everything else is caught by the tag. */
static int flip_error(size_t byte)
{
	if (byte == 0)
		return -VLT_E_BLOB_VERSION;
	if (byte == 1)
		return -VLT_E_BLOB_FORMAT;
	return -EBADMSG;
}

static void flip_every_bit(const struct fixture *f, const uint8_t *blob, size_t len, opener_t op)
{
	_cleanup_free_ uint8_t *b = malloc(len);

	assert_non_null(b);
	memcpy(b, blob, len);
	for (size_t i = 0; i < len; i++)
		for (unsigned bit = 0; bit < 8; bit++) {
			struct secret *out = NULL;

			b[i] ^= (uint8_t)(1u << bit);
			expect_fail(op(f, b, len, &out), flip_error(i), out);
			b[i] ^= (uint8_t)(1u << bit);
		}
	/* Restored: opens again, so the failures above were the flips. */
	{
		_cleanup_secret_ struct secret *out = NULL;
		assert_int_equal(op(f, b, len, &out), 0);
	}
}

static void test_bit_flips(void **state)
{
	struct fixture *f = *state;

	flip_every_bit(f, f->kek_blob, f->kek_len, open_kek);
	flip_every_bit(f, f->dek_blob, f->dek_len, open_dek);
	flip_every_bit(f, f->data_blob, f->data_len, open_data);
}

static void test_kek_aad_binding(void **state)
{
	struct fixture *f = *state;
	_cleanup_secret_ struct secret *other = key_new();
	struct secret *out = NULL;
	const uint8_t *b = f->kek_blob;
	size_t n = f->kek_len;

	expect_fail(envelope_unwrap_kek(f->rk, RK_V, "acme2", KEK_V, b, n, &out), -EBADMSG, out);
	expect_fail(envelope_unwrap_kek(f->rk, RK_V, "acm", KEK_V, b, n, &out), -EBADMSG, out);
	expect_fail(envelope_unwrap_kek(f->rk, RK_V, "ACME", KEK_V, b, n, &out), -EBADMSG, out);
	expect_fail(envelope_unwrap_kek(f->rk, RK_V, TENANT, KEK_V + 1, b, n, &out), -EBADMSG, out);
	expect_fail(envelope_unwrap_kek(f->rk, RK_V, TENANT, KEK_V - 1, b, n, &out), -EBADMSG, out);
	expect_fail(envelope_unwrap_kek(f->rk, RK_V + 1, TENANT, KEK_V, b, n, &out), -EBADMSG, out);
	expect_fail(envelope_unwrap_kek(f->rk, 0, TENANT, KEK_V, b, n, &out), -EBADMSG, out);
	expect_fail(envelope_unwrap_kek(other, RK_V, TENANT, KEK_V, b, n, &out), -EBADMSG, out);
	/* The right RK under the wrong number is still the wrong key. */
	expect_fail(envelope_unwrap_kek(f->kek, RK_V, TENANT, KEK_V, b, n, &out), -EBADMSG, out);
}

static void test_dek_aad_binding(void **state)
{
	struct fixture *f = *state;
	_cleanup_secret_ struct secret *other = key_new();
	struct secret *out = NULL;
	const uint8_t *b = f->dek_blob;
	size_t n = f->dek_len;

	/* Another tenant, another path under the same tenant, a prefix. */
	expect_fail(envelope_unwrap_dek(f->kek, KEK_V, "globex/rmm/tactical", VER, b, n, &out),
		    -EBADMSG, out);
	expect_fail(envelope_unwrap_dek(f->kek, KEK_V, "acme/rmm/tactical2", VER, b, n, &out),
		    -EBADMSG, out);
	expect_fail(envelope_unwrap_dek(f->kek, KEK_V, "acme/rmm", VER, b, n, &out), -EBADMSG, out);
	expect_fail(envelope_unwrap_dek(f->kek, KEK_V, PATH, VER + 1, b, n, &out), -EBADMSG, out);
	expect_fail(envelope_unwrap_dek(f->kek, KEK_V, PATH, VER - 1, b, n, &out), -EBADMSG, out);
	expect_fail(envelope_unwrap_dek(f->kek, KEK_V + 1, PATH, VER, b, n, &out), -EBADMSG, out);
	expect_fail(envelope_unwrap_dek(other, KEK_V, PATH, VER, b, n, &out), -EBADMSG, out);
	expect_fail(envelope_unwrap_dek(f->rk, KEK_V, PATH, VER, b, n, &out), -EBADMSG, out);
}

static void test_data_aad_binding(void **state)
{
	struct fixture *f = *state;
	_cleanup_secret_ struct secret *other = key_new();
	struct secret *out = NULL;
	const uint8_t *b = f->data_blob;
	size_t n = f->data_len;

	expect_fail(envelope_open_data(f->dek, "globex/rmm/tactical", VER, b, n, &out), -EBADMSG, out);
	expect_fail(envelope_open_data(f->dek, "acme/rmm/tactica", VER, b, n, &out), -EBADMSG, out);
	expect_fail(envelope_open_data(f->dek, PATH, VER + 1, b, n, &out), -EBADMSG, out);
	expect_fail(envelope_open_data(f->dek, PATH, 0, b, n, &out), -EBADMSG, out);
	expect_fail(envelope_open_data(other, PATH, VER, b, n, &out), -EBADMSG, out);
	expect_fail(envelope_open_data(f->kek, PATH, VER, b, n, &out), -EBADMSG, out);
}

/* Neighbouring values of one field do not open another's blob, and a name
 * with '|', which could move a field boundary, is refused outright. */
static void test_aad_fields_unambiguous(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ uint8_t *b = NULL;
	struct secret *out = NULL;
	size_t n;

	assert_int_equal(envelope_wrap_dek(f->kek, KEK_V, "a/b", 1, f->dek, &b, &n), 0);
	expect_fail(envelope_unwrap_dek(f->kek, KEK_V, "a/b", 11, b, n, &out), -EBADMSG, out);
	expect_fail(envelope_unwrap_dek(f->kek, KEK_V, "a/b1", 1, b, n, &out), -EBADMSG, out);
	expect_fail(envelope_unwrap_dek(f->kek, KEK_V, "a/b|1", 1, b, n, &out), -EINVAL, out);
}

static void prefixes_and_trailer(const struct fixture *f, const uint8_t *blob, size_t len, opener_t op,
				 int is_data)
{
	_cleanup_free_ uint8_t *b = malloc(len + 1);
	struct secret *out = NULL;

	assert_non_null(b);
	memcpy(b, blob, len);
	for (size_t i = 0; i < len; i++) {
		int r = op(f, b, i, &out);

		assert_null(out);
		/* A data prefix that still holds a byte of ciphertext is
		 * well-formed; only the tag can reject it. */
		if (is_data && i > ENVELOPE_OVERHEAD)
			assert_int_equal(r, -EBADMSG);
		else
			assert_int_equal(r, -VLT_E_BLOB_FORMAT);
	}
	b[len] = 0;
	if (is_data)
		expect_fail(op(f, b, len + 1, &out), -EBADMSG, out);
	else
		expect_fail(op(f, b, len + 1, &out), -VLT_E_BLOB_FORMAT, out);
}

static void test_prefixes_and_trailing_byte(void **state)
{
	struct fixture *f = *state;

	prefixes_and_trailer(f, f->kek_blob, f->kek_len, open_kek, 0);
	prefixes_and_trailer(f, f->dek_blob, f->dek_len, open_dek, 0);
	prefixes_and_trailer(f, f->data_blob, f->data_len, open_data, 1);
}

static void test_wrong_kind(void **state)
{
	struct fixture *f = *state;
	_cleanup_secret_ struct secret *key_sized = key_new();
	_cleanup_free_ uint8_t *d32 = NULL, *b = NULL;
	struct secret *out = NULL;
	size_t n32;

	/* Same size, other kind: KEK <-> DEK, and data that happens to be 32 bytes. */
	expect_fail(open_dek(f, f->kek_blob, f->kek_len, &out), -VLT_E_BLOB_FORMAT, out);
	expect_fail(open_kek(f, f->dek_blob, f->dek_len, &out), -VLT_E_BLOB_FORMAT, out);
	expect_fail(open_data(f, f->kek_blob, f->kek_len, &out), -VLT_E_BLOB_FORMAT, out);
	expect_fail(open_data(f, f->dek_blob, f->dek_len, &out), -VLT_E_BLOB_FORMAT, out);
	expect_fail(open_kek(f, f->data_blob, f->data_len, &out), -VLT_E_BLOB_FORMAT, out);
	assert_int_equal(envelope_seal_data(f->dek, PATH, VER, key_sized, &d32, &n32), 0);
	assert_int_equal(n32, f->dek_len);
	expect_fail(open_dek(f, d32, n32, &out), -VLT_E_BLOB_FORMAT, out);
	expect_fail(envelope_unwrap_dek(f->dek, 1, PATH, VER, d32, n32, &out), -VLT_E_BLOB_FORMAT, out);

	/* Kinds that do not exist, and formats that do not exist. */
	b = malloc(f->kek_len);
	assert_non_null(b);
	for (unsigned k = 0; k < 256; k++) {
		enum envelope_kind kind;
		uint32_t kv;

		if (k == ENVELOPE_KIND_KEK || k == ENVELOPE_KIND_DEK || k == ENVELOPE_KIND_DATA)
			continue;
		memcpy(b, f->kek_blob, f->kek_len);
		b[1] = (uint8_t)k;
		expect_fail(open_kek(f, b, f->kek_len, &out), -VLT_E_BLOB_FORMAT, out);
		if (k == ENVELOPE_KIND_TOTP)    /* a well-formed TOTP blob, just not a KEK */
			assert_int_equal(envelope_peek(b, f->kek_len, &kind, &kv), 0);
		else
			assert_int_equal(envelope_peek(b, f->kek_len, &kind, &kv), -VLT_E_BLOB_FORMAT);
	}
	for (unsigned v = 0; v < 256; v++) {
		if (v == ENVELOPE_FORMAT)
			continue;
		memcpy(b, f->kek_blob, f->kek_len);
		b[0] = (uint8_t)v;
		expect_fail(open_kek(f, b, f->kek_len, &out), -VLT_E_BLOB_VERSION, out);
		/* The version is judged first, even on a one-byte blob. */
		expect_fail(open_kek(f, b, 1, &out), -VLT_E_BLOB_VERSION, out);
	}
}

static void test_data_size_limits(void **state)
{
	struct fixture *f = *state;
	_cleanup_secret_ struct secret *empty = NULL, *max = NULL, *big = NULL, *out = NULL;
	_cleanup_free_ uint8_t *b = NULL, *fake = NULL;
	struct secret *none = NULL;
	size_t n = 1;

	/* A secret cannot have capacity 0, but it can hold 0 bytes. */
	assert_int_equal(secret_new(1, &empty), 0);
	assert_int_equal(envelope_seal_data(f->dek, PATH, VER, empty, &b, &n), -EINVAL);
	assert_null(b);
	assert_int_equal(n, 1);

	assert_int_equal(secret_random(ENVELOPE_DATA_MAX, &max), 0);
	assert_int_equal(envelope_seal_data(f->dek, PATH, VER, max, &b, &n), 0);
	assert_int_equal(n, ENVELOPE_OVERHEAD + ENVELOPE_DATA_MAX);
	assert_int_equal(open_data(f, b, n, &out), 0);
	assert_true(secret_equal(out, max));

	assert_int_equal(secret_random(ENVELOPE_DATA_MAX + 1, &big), 0);
	{
		uint8_t *b2 = NULL;
		assert_int_equal(envelope_seal_data(f->dek, PATH, VER, big, &b2, &n), -EINVAL);
		assert_null(b2);
	}

	/* The opener enforces the same bounds before it decrypts anything:
	 * a data blob with no ciphertext, or one byte more than the maximum. */
	fake = calloc(1, ENVELOPE_OVERHEAD + ENVELOPE_DATA_MAX + 1);
	assert_non_null(fake);
	memcpy(fake, b, ENVELOPE_OVERHEAD);
	expect_fail(open_data(f, fake, ENVELOPE_OVERHEAD, &none), -VLT_E_BLOB_FORMAT, none);
	expect_fail(open_data(f, fake, ENVELOPE_OVERHEAD + ENVELOPE_DATA_MAX + 1, &none),
		    -VLT_E_BLOB_FORMAT, none);
	{
		enum envelope_kind kind;
		uint32_t kv;
		size_t big_len = ENVELOPE_OVERHEAD + ENVELOPE_DATA_MAX + 1;
		assert_int_equal(envelope_peek(fake, big_len, &kind, &kv), -VLT_E_BLOB_FORMAT);
	}
}

static void test_bad_arguments(void **state)
{
	struct fixture *f = *state;
	_cleanup_secret_ struct secret *k31 = NULL, *k33 = NULL, *k32cap33 = NULL;
	char name600[601], name601[602];
	struct secret *out = NULL;
	uint8_t *b = NULL;
	size_t n = 0;

	assert_int_equal(secret_random(31, &k31), 0);
	assert_int_equal(secret_random(33, &k33), 0);
	/* Length, not capacity, is what counts. */
	assert_int_equal(secret_new(33, &k32cap33), 0);
	memcpy(k32cap33->p, f->rk->p, 32);
	k32cap33->len = 32;

	/* Keys must be exactly 32 bytes, whether they wrap or are wrapped. */
	assert_int_equal(envelope_wrap_kek(k31, RK_V, TENANT, KEK_V, f->kek, &b, &n), -EINVAL);
	assert_int_equal(envelope_wrap_kek(k33, RK_V, TENANT, KEK_V, f->kek, &b, &n), -EINVAL);
	assert_int_equal(envelope_wrap_kek(f->rk, RK_V, TENANT, KEK_V, k31, &b, &n), -EINVAL);
	assert_int_equal(envelope_wrap_dek(f->kek, KEK_V, PATH, VER, k33, &b, &n), -EINVAL);
	assert_int_equal(envelope_wrap_dek(NULL, KEK_V, PATH, VER, f->dek, &b, &n), -EINVAL);
	assert_int_equal(envelope_seal_data(k31, PATH, VER, f->data, &b, &n), -EINVAL);
	assert_int_equal(envelope_seal_data(f->dek, PATH, VER, NULL, &b, &n), -EINVAL);
	assert_null(b);
	expect_fail(envelope_unwrap_kek(k33, RK_V, TENANT, KEK_V, f->kek_blob, f->kek_len, &out),
		    -EINVAL, out);
	expect_fail(envelope_unwrap_dek(k31, KEK_V, PATH, VER, f->dek_blob, f->dek_len, &out),
		    -EINVAL, out);
	expect_fail(envelope_open_data(NULL, PATH, VER, f->data_blob, f->data_len, &out), -EINVAL, out);
	{
		_cleanup_secret_ struct secret *ok = NULL;
		assert_int_equal(envelope_unwrap_kek(k32cap33, RK_V, TENANT, KEK_V, f->kek_blob,
						     f->kek_len, &ok), 0);
	}

	/* Names: non-NULL, 1..600 bytes, no '|'. */
	assert_int_equal(envelope_wrap_kek(f->rk, RK_V, NULL, KEK_V, f->kek, &b, &n), -EINVAL);
	assert_int_equal(envelope_wrap_kek(f->rk, RK_V, "", KEK_V, f->kek, &b, &n), -EINVAL);
	assert_int_equal(envelope_wrap_kek(f->rk, RK_V, "ac|me", KEK_V, f->kek, &b, &n), -EINVAL);
	assert_int_equal(envelope_wrap_dek(f->kek, KEK_V, "acme/a|b", VER, f->dek, &b, &n), -EINVAL);
	assert_int_equal(envelope_seal_data(f->dek, "|", VER, f->data, &b, &n), -EINVAL);
	expect_fail(envelope_unwrap_kek(f->rk, RK_V, "acme|", KEK_V, f->kek_blob, f->kek_len, &out),
		    -EINVAL, out);
	expect_fail(envelope_open_data(f->dek, NULL, VER, f->data_blob, f->data_len, &out), -EINVAL,
		    out);
	memset(name600, 'x', 600);
	name600[600] = '\0';
	memset(name601, 'x', 601);
	name601[601] = '\0';
	assert_int_equal(envelope_seal_data(f->dek, name601, VER, f->data, &b, &n), -EINVAL);
	assert_null(b);
	assert_int_equal(envelope_seal_data(f->dek, name600, VER, f->data, &b, &n), 0);
	{
		_cleanup_secret_ struct secret *ok = NULL;
		assert_int_equal(envelope_open_data(f->dek, name600, VER, b, n, &ok), 0);
		assert_true(secret_equal(ok, f->data));
		expect_fail(envelope_open_data(f->dek, name601, VER, b, n, &out), -EINVAL, out);
	}
	free(b);
	b = NULL;

	/* Missing blob or outputs. */
	expect_fail(open_kek(f, NULL, f->kek_len, &out), -EINVAL, out);
	assert_int_equal(open_kek(f, f->kek_blob, f->kek_len, NULL), -EINVAL);
	assert_int_equal(envelope_wrap_kek(f->rk, RK_V, TENANT, KEK_V, f->kek, NULL, &n), -EINVAL);
	assert_int_equal(envelope_wrap_kek(f->rk, RK_V, TENANT, KEK_V, f->kek, &b, NULL), -EINVAL);
}

static void test_peek(void **state)
{
	struct fixture *f = *state;
	enum envelope_kind kind = 0;
	uint32_t kv = 0;
	_cleanup_free_ uint8_t *b = malloc(f->dek_len);

	assert_non_null(b);
	/* Peek reads what the header says, whatever key it names. */
	memcpy(b, f->dek_blob, f->dek_len);
	put_be32(b + 2, 0xfffffffeu);
	assert_int_equal(envelope_peek(b, f->dek_len, &kind, &kv), 0);
	assert_int_equal(kind, ENVELOPE_KIND_DEK);
	assert_int_equal(kv, 0xfffffffeu);

	/* Structure is checked: truncated, trailing, unknown format. */
	for (size_t i = 0; i < f->dek_len; i++) {
		kind = 0;
		kv = 0;
		assert_int_equal(envelope_peek(f->dek_blob, i, &kind, &kv), -VLT_E_BLOB_FORMAT);
		assert_int_equal(kind, 0);
		assert_int_equal(kv, 0);
	}
	b = realloc(b, f->dek_len + 1);
	assert_non_null(b);
	memcpy(b, f->dek_blob, f->dek_len);
	b[f->dek_len] = 0;
	assert_int_equal(envelope_peek(b, f->dek_len + 1, &kind, &kv), -VLT_E_BLOB_FORMAT);
	b[0] = 2;
	assert_int_equal(envelope_peek(b, f->dek_len, &kind, &kv), -VLT_E_BLOB_VERSION);
	assert_int_equal(envelope_peek(NULL, 0, &kind, &kv), -EINVAL);
	assert_int_equal(envelope_peek(f->dek_blob, f->dek_len, NULL, &kv), -EINVAL);
}

/* A user's TOTP secret under their MFA key: round trip, bound to the user,
 * every bit flip refused, lengths enforced. */
static void test_totp_layer(void **state)
{
	_cleanup_secret_ struct secret *key = NULL, *other = NULL, *totp = NULL, *out = NULL;
	uint8_t *blob = NULL;
	size_t len = 0;
	(void)state;

	assert_int_equal(secret_random(32, &key), 0);
	assert_int_equal(secret_random(32, &other), 0);
	assert_int_equal(secret_random(20, &totp), 0);
	assert_int_equal(envelope_seal_totp(key, "alice", totp, &blob, &len), 0);
	assert_int_equal(len, ENVELOPE_OVERHEAD + 20);
	assert_int_equal(envelope_open_totp(key, "alice", blob, len, &out), 0);
	assert_true(secret_equal(totp, out));
	secret_free(out);
	out = NULL;
	assert_int_equal(envelope_open_totp(key, "bob", blob, len, &out), -EBADMSG);
	assert_int_equal(envelope_open_totp(other, "alice", blob, len, &out), -EBADMSG);
	for (size_t i = 0; i < len; i++)
		for (int bit = 0; bit < 8; bit++) {
			blob[i] ^= (uint8_t)(1u << bit);
			assert_true(envelope_open_totp(key, "alice", blob, len, &out) < 0);
			assert_null(out);
			blob[i] ^= (uint8_t)(1u << bit);
		}
	free(blob);
	totp->len = 15;
	assert_int_equal(envelope_seal_totp(key, "alice", totp, &blob, &len), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kek_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dek_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_data_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_documented_layout, setup, teardown),
		cmocka_unit_test(test_full_chain),
		cmocka_unit_test(test_totp_layer),
		cmocka_unit_test_setup_teardown(test_nonces_differ, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bit_flips, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kek_aad_binding, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dek_aad_binding, setup, teardown),
		cmocka_unit_test_setup_teardown(test_data_aad_binding, setup, teardown),
		cmocka_unit_test_setup_teardown(test_aad_fields_unambiguous, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prefixes_and_trailing_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_kind, setup, teardown),
		cmocka_unit_test_setup_teardown(test_data_size_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peek, setup, teardown),
	};

	if (secret_library_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
