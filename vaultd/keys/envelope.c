/* vaultd/keys/envelope.c: the KEK, DEK and data layers; see envelope.h.
 *
 * The three layers share one blob format and one pair of helpers (seal(),
 * open_blob()); the public functions only choose the kind, the key version
 * written in the header and the context string of the AAD.
 *
 * Choices the header leaves open:
 *  - The caller always knows which key version it expects (for data it is
 *    the constant 1). A header naming another key version means the caller
 *    holds the wrong key for this blob: -EBADMSG, exactly as if the tag had
 *    been tried and failed, and checked before any decryption.
 *  - The format version is checked before anything else, so a blob from a
 *    future format is reported as -VLT_E_BLOB_VERSION rather than as a
 *    length error; then the kind (-VLT_E_BLOB_FORMAT), then the lengths.
 *  - Tenants and paths are 1..ENVELOPE_NAME_MAX bytes without '|', the AAD
 *    field separator: with it, "a|1" + "2" and "a" + "1|2" could build the
 *    same AAD for two different places.
 */
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include "common/cursor.h"
#include "common/err.h"
#include "vaultd/keys/aead.h"
#include "vaultd/keys/envelope.h"

#define ENVELOPE_NAME_MAX 600
#define ENVELOPE_WRAPPED_KEY_LEN 32
/* Header, the longest prefix ("vaultd/v1/data|"), a name, and three
 * decimal u32 with separators, with room to spare. */
#define ENVELOPE_AAD_MAX (ENVELOPE_HEADER_LEN + 16 + ENVELOPE_NAME_MAX + 3 * 11 + 16)

_Static_assert(AEAD_KEY_LEN == ENVELOPE_KEY_LEN, "envelope keys are AES-256 keys");
_Static_assert(ENVELOPE_OVERHEAD == ENVELOPE_HEADER_LEN + AEAD_NONCE_LEN + AEAD_TAG_LEN,
	       "blob layout");

struct blob_view {
	const uint8_t *header;  /* ENVELOPE_HEADER_LEN bytes */
	uint8_t kind;
	uint32_t key_version;
	const uint8_t *nonce;
	const uint8_t *tag;
	const uint8_t *ct;
	size_t ct_len;
};

static int name_valid(const char *s)
{
	size_t n;

	if (!s)
		return 0;
	n = strnlen(s, ENVELOPE_NAME_MAX + 1);
	return n > 0 && n <= ENVELOPE_NAME_MAX && !memchr(s, '|', n);
}

static int key_valid(const struct secret *k)
{
	return k && k->p && k->len == ENVELOPE_KEY_LEN;
}

static void header_put(uint8_t h[ENVELOPE_HEADER_LEN], enum envelope_kind kind,
		       uint32_t key_version)
{
	h[0] = ENVELOPE_FORMAT;
	h[1] = (uint8_t)kind;
	put_be32(h + 2, key_version);
}

/* aad = header || context. 0, or -EINVAL if the context does not fit
 * (cannot happen with valid names, but the bound is checked, not assumed). */
static _printf_(4, 5) int aad_build(uint8_t aad[ENVELOPE_AAD_MAX], size_t *ret_len,
				     const uint8_t header[ENVELOPE_HEADER_LEN],
				     const char *fmt, ...)
{
	size_t room = ENVELOPE_AAD_MAX - ENVELOPE_HEADER_LEN;
	va_list ap;
	int n;

	memcpy(aad, header, ENVELOPE_HEADER_LEN);
	va_start(ap, fmt);
	n = vsnprintf((char *)aad + ENVELOPE_HEADER_LEN, room, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= room)
		return -EINVAL;
	/* The NUL vsnprintf wrote is not part of the AAD. */
	*ret_len = ENVELOPE_HEADER_LEN + (size_t)n;
	return 0;
}

/* Structure only: nothing is decrypted. 'want' 0 accepts any known kind. */
static int blob_parse(const uint8_t *blob, size_t len, enum envelope_kind want,
		      struct blob_view *ret)
{
	struct cursor c = CURSOR(blob, len);
	struct blob_view v = { .header = blob };
	uint8_t format;
	size_t ct_len;

	if (!blob)
		return -EINVAL;
	if (cur_get_u8(&c, &format) < 0)
		return -VLT_E_BLOB_FORMAT;
	if (format != ENVELOPE_FORMAT)
		return -VLT_E_BLOB_VERSION;
	if (cur_get_u8(&c, &v.kind) < 0 || cur_get_u32(&c, &v.key_version) < 0 ||
	    cur_take(&c, AEAD_NONCE_LEN, &v.nonce) < 0 || cur_take(&c, AEAD_TAG_LEN, &v.tag) < 0)
		return -VLT_E_BLOB_FORMAT;

	switch (v.kind) {
	case ENVELOPE_KIND_KEK:
	case ENVELOPE_KIND_DEK:
		ct_len = ENVELOPE_WRAPPED_KEY_LEN;
		break;
	case ENVELOPE_KIND_DATA:
		/* Data has no length field: the ciphertext is the rest, bounded by us. */
		ct_len = c.len;
		if (ct_len == 0 || ct_len > ENVELOPE_DATA_MAX)
			return -VLT_E_BLOB_FORMAT;
		break;
	case ENVELOPE_KIND_TOTP:
		ct_len = c.len;
		if (ct_len < ENVELOPE_TOTP_MIN || ct_len > ENVELOPE_TOTP_MAX)
			return -VLT_E_BLOB_FORMAT;
		break;
	default:
		return -VLT_E_BLOB_FORMAT;
	}
	if (want != 0 && v.kind != want)
		return -VLT_E_BLOB_FORMAT;
	if (cur_take(&c, ct_len, &v.ct) < 0 || c.len != 0)
		return -VLT_E_BLOB_FORMAT;
	v.ct_len = ct_len;
	*ret = v;
	return 0;
}

/* Seals pt under key as header || nonce || tag || ct; *ret is malloc()ed.
 * The caller built the AAD from the same header. */
static int seal(const struct secret *key, const uint8_t header[ENVELOPE_HEADER_LEN],
		const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t n, uint8_t **ret,
		size_t *ret_len)
{
	_cleanup_free_ uint8_t *blob = NULL;
	size_t len = ENVELOPE_OVERHEAD + n;
	uint8_t *nonce, *tag;
	int r;

	blob = malloc(len);
	if (!blob)
		return -ENOMEM;
	memcpy(blob, header, ENVELOPE_HEADER_LEN);
	nonce = blob + ENVELOPE_HEADER_LEN;
	tag = nonce + AEAD_NONCE_LEN;
	/* A fresh random nonce per seal: GCM keys are rotated long before the
	 * 2^32 random-nonce bound (ARCHITECTURE.md section 2). */
	randombytes_buf(nonce, AEAD_NONCE_LEN);
	r = aead_encrypt(key->p, nonce, aad, aad_len, pt, n, tag + AEAD_TAG_LEN, tag);
	if (r < 0)
		return r;
	*ret_len = len;
	*ret = TAKE_PTR(blob);
	return 0;
}

/* Opens a parsed blob into a new secret of exactly ct_len bytes. */
static int open_blob(const struct secret *key, const struct blob_view *v, const uint8_t *aad,
		     size_t aad_len, struct secret **ret)
{
	_cleanup_secret_ struct secret *pt = NULL;
	int r;

	r = secret_new(v->ct_len, &pt);
	if (r < 0)
		return r;
	/* Decrypt straight into locked memory: the plaintext never sits in
	 * an ordinary buffer. On failure aead_decrypt() wiped it, and the
	 * cleanup frees it. */
	r = aead_decrypt(key->p, v->nonce, aad, aad_len, v->ct, v->ct_len, v->tag, pt->p);
	if (r < 0)
		return r;
	pt->len = v->ct_len;
	*ret = TAKE_PTR(pt);
	return 0;
}

int envelope_wrap_kek(const struct secret *rk, uint32_t rk_version, const char *tenant,
		      uint32_t kek_version, const struct secret *kek, uint8_t **ret, size_t *ret_len)
{
	uint8_t header[ENVELOPE_HEADER_LEN], aad[ENVELOPE_AAD_MAX];
	size_t aad_len;
	int r;

	if (!key_valid(rk) || !key_valid(kek) || !name_valid(tenant) || !ret || !ret_len)
		return -EINVAL;
	header_put(header, ENVELOPE_KIND_KEK, rk_version);
	r = aad_build(aad, &aad_len, header, "vaultd/v1/kek|%s|%" PRIu32 "|%" PRIu32, tenant,
		      kek_version, rk_version);
	if (r < 0)
		return r;
	return seal(rk, header, aad, aad_len, kek->p, kek->len, ret, ret_len);
}

int envelope_unwrap_kek(const struct secret *rk, uint32_t rk_version, const char *tenant,
			uint32_t kek_version, const uint8_t *blob, size_t len, struct secret **ret_kek)
{
	uint8_t aad[ENVELOPE_AAD_MAX];
	struct blob_view v;
	size_t aad_len;
	int r;

	if (!key_valid(rk) || !name_valid(tenant) || !ret_kek)
		return -EINVAL;
	r = blob_parse(blob, len, ENVELOPE_KIND_KEK, &v);
	if (r < 0)
		return r;
	if (v.key_version != rk_version)
		return -EBADMSG;
	r = aad_build(aad, &aad_len, v.header, "vaultd/v1/kek|%s|%" PRIu32 "|%" PRIu32, tenant,
		      kek_version, rk_version);
	if (r < 0)
		return r;
	return open_blob(rk, &v, aad, aad_len, ret_kek);
}

int envelope_wrap_dek(const struct secret *kek, uint32_t kek_version, const char *path,
		      uint32_t version, const struct secret *dek, uint8_t **ret, size_t *ret_len)
{
	uint8_t header[ENVELOPE_HEADER_LEN], aad[ENVELOPE_AAD_MAX];
	size_t aad_len;
	int r;

	if (!key_valid(kek) || !key_valid(dek) || !name_valid(path) || !ret || !ret_len)
		return -EINVAL;
	header_put(header, ENVELOPE_KIND_DEK, kek_version);
	r = aad_build(aad, &aad_len, header, "vaultd/v1/dek|%s|%" PRIu32 "|%" PRIu32, path, version,
		      kek_version);
	if (r < 0)
		return r;
	return seal(kek, header, aad, aad_len, dek->p, dek->len, ret, ret_len);
}

int envelope_unwrap_dek(const struct secret *kek, uint32_t kek_version, const char *path,
			uint32_t version, const uint8_t *blob, size_t len, struct secret **ret_dek)
{
	uint8_t aad[ENVELOPE_AAD_MAX];
	struct blob_view v;
	size_t aad_len;
	int r;

	if (!key_valid(kek) || !name_valid(path) || !ret_dek)
		return -EINVAL;
	r = blob_parse(blob, len, ENVELOPE_KIND_DEK, &v);
	if (r < 0)
		return r;
	if (v.key_version != kek_version)
		return -EBADMSG;
	r = aad_build(aad, &aad_len, v.header, "vaultd/v1/dek|%s|%" PRIu32 "|%" PRIu32, path,
		      version, kek_version);
	if (r < 0)
		return r;
	return open_blob(kek, &v, aad, aad_len, ret_dek);
}

/* Data is sealed directly under its own DEK, which has no versions of its
 * own: the header's key version is the constant 1. */
#define DATA_KEY_VERSION UINT32_C(1)

int envelope_seal_data(const struct secret *dek, const char *path, uint32_t version,
		       const struct secret *plaintext, uint8_t **ret, size_t *ret_len)
{
	uint8_t header[ENVELOPE_HEADER_LEN], aad[ENVELOPE_AAD_MAX];
	size_t aad_len;
	int r;

	if (!key_valid(dek) || !name_valid(path) || !plaintext || !plaintext->p || !ret || !ret_len)
		return -EINVAL;
	if (plaintext->len == 0 || plaintext->len > ENVELOPE_DATA_MAX)
		return -EINVAL;
	header_put(header, ENVELOPE_KIND_DATA, DATA_KEY_VERSION);
	r = aad_build(aad, &aad_len, header, "vaultd/v1/data|%s|%" PRIu32, path, version);
	if (r < 0)
		return r;
	return seal(dek, header, aad, aad_len, plaintext->p, plaintext->len, ret, ret_len);
}

int envelope_open_data(const struct secret *dek, const char *path, uint32_t version,
		       const uint8_t *blob, size_t len, struct secret **ret_plaintext)
{
	uint8_t aad[ENVELOPE_AAD_MAX];
	struct blob_view v;
	size_t aad_len;
	int r;

	if (!key_valid(dek) || !name_valid(path) || !ret_plaintext)
		return -EINVAL;
	r = blob_parse(blob, len, ENVELOPE_KIND_DATA, &v);
	if (r < 0)
		return r;
	if (v.key_version != DATA_KEY_VERSION)
		return -EBADMSG;
	r = aad_build(aad, &aad_len, v.header, "vaultd/v1/data|%s|%" PRIu32, path, version);
	if (r < 0)
		return r;
	return open_blob(dek, &v, aad, aad_len, ret_plaintext);
}

int envelope_peek(const uint8_t *blob, size_t len, enum envelope_kind *ret_kind,
		  uint32_t *ret_key_version)
{
	struct blob_view v;
	int r;

	if (!ret_kind || !ret_key_version)
		return -EINVAL;
	/* The whole structure is checked, not just the 6 header bytes, so a
	 * truncated blob is reported here rather than after a key lookup. */
	r = blob_parse(blob, len, 0, &v);
	if (r < 0)
		return r;
	*ret_kind = (enum envelope_kind)v.kind;
	*ret_key_version = v.key_version;
	return 0;
}

int envelope_seal_totp(const struct secret *mfa_key, const char *user, const struct secret *totp_secret,
		       uint8_t **ret, size_t *ret_len)
{
	uint8_t header[ENVELOPE_HEADER_LEN], aad[ENVELOPE_AAD_MAX];
	size_t aad_len;
	int r;

	if (!key_valid(mfa_key) || !name_valid(user) || !totp_secret || !ret || !ret_len ||
	    totp_secret->len < ENVELOPE_TOTP_MIN || totp_secret->len > ENVELOPE_TOTP_MAX)
		return -EINVAL;
	header_put(header, ENVELOPE_KIND_TOTP, 1);
	r = aad_build(aad, &aad_len, header, "vaultd/v1/totp|%s", user);
	if (r < 0)
		return r;
	return seal(mfa_key, header, aad, aad_len, totp_secret->p, totp_secret->len, ret, ret_len);
}

int envelope_open_totp(const struct secret *mfa_key, const char *user, const uint8_t *blob, size_t len,
		       struct secret **ret_totp_secret)
{
	uint8_t aad[ENVELOPE_AAD_MAX];
	struct blob_view v;
	size_t aad_len;
	int r;

	if (!key_valid(mfa_key) || !name_valid(user) || !ret_totp_secret)
		return -EINVAL;
	r = blob_parse(blob, len, ENVELOPE_KIND_TOTP, &v);
	if (r < 0)
		return r;
	if (v.key_version != 1)
		return -EBADMSG;
	r = aad_build(aad, &aad_len, v.header, "vaultd/v1/totp|%s", user);
	if (r < 0)
		return r;
	return open_blob(mfa_key, &v, aad, aad_len, ret_totp_secret);
}
