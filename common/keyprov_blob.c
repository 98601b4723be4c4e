/* common/keyprov_blob.c: the wrapped-RK blob codec and the mechanism/hash
 * names (see keyprov.h). Pure byte handling: no OpenSSL, no PKCS#11, so the
 * daemon can validate a stored blob without touching the token, and the
 * parser can be fuzzed on its own.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "common/cursor.h"
#include "common/err.h"
#include "common/keyprov.h"

#define BLOB_CT_MIN 256         /* RSA-2048 */
#define BLOB_CT_MAX 512         /* RSA-4096 */

static bool mech_hash_valid(uint8_t mech, uint8_t hash)
{
	/* OAEP in OpenSSL is always SHA-256 (there is no reason to pick SHA-1
	 * on the host); the token variant allows SHA-1 because that is all
	 * some tokens (SoftHSM2 2.6.1) implement. */
	switch (mech) {
	case KEYPROV_MECH_OAEP_HOST:
		return hash == KEYPROV_HASH_SHA256;
	case KEYPROV_MECH_OAEP_TOKEN:
		return hash == KEYPROV_HASH_SHA1 || hash == KEYPROV_HASH_SHA256;
	default:
		return false;
	}
}

static bool label_bytes_valid(const uint8_t *p, size_t n)
{
	if (n < 1 || n > KEYPROV_LABEL_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] > 0x7e)        /* printable ASCII only: no NUL, no controls */
			return false;
	return true;
}

int keyprov_blob_parse(const uint8_t *buf, size_t len, struct keyprov_blob *ret)
{
	struct cursor c = CURSOR(buf, len);
	struct keyprov_blob b = { 0 };
	const uint8_t *label;
	uint8_t version, label_len;
	uint16_t ct_len;

	if (!buf && len > 0)
		return -VLT_E_BLOB_FORMAT;
	if (cur_get_u8(&c, &version) < 0)
		return -VLT_E_BLOB_FORMAT;
	/* The version decides the layout of everything after it, so check it
	 * before reading on: a newer blob is "unsupported", not "malformed". */
	if (version != KEYPROV_BLOB_VERSION)
		return -VLT_E_BLOB_VERSION;

	if (cur_get_u8(&c, &b.mech) < 0 ||
	    cur_get_u8(&c, &b.hash) < 0 ||
	    cur_get_u32(&c, &b.key_version) < 0 ||
	    cur_get_u8(&c, &label_len) < 0 ||
	    cur_take(&c, label_len, &label) < 0 ||
	    cur_get_u16(&c, &ct_len) < 0 ||
	    cur_take(&c, ct_len, &b.ct) < 0)
		return -VLT_E_BLOB_FORMAT;
	if (c.len != 0)
		return -VLT_E_BLOB_FORMAT;     /* nothing may follow */
	if (!mech_hash_valid(b.mech, b.hash) || !label_bytes_valid(label, label_len) ||
	    ct_len < BLOB_CT_MIN || ct_len > BLOB_CT_MAX)
		return -VLT_E_BLOB_FORMAT;

	memcpy(b.label, label, label_len);
	b.label[label_len] = '\0';
	b.ct_len = ct_len;
	*ret = b;                       /* b.ct borrows from buf */
	return 0;
}

int keyprov_blob_build(const struct keyprov_blob *b, uint8_t **ret, size_t *ret_len)
{
	uint8_t *out, *p;
	size_t label_len, n;

	if (!b || !ret || !ret_len)
		return -EINVAL;
	label_len = strnlen(b->label, sizeof(b->label));
	if (label_len == sizeof(b->label) || !label_bytes_valid((const uint8_t *)b->label, label_len))
		return -EINVAL;
	if (!mech_hash_valid(b->mech, b->hash))
		return -EINVAL;
	if (!b->ct || b->ct_len < BLOB_CT_MIN || b->ct_len > BLOB_CT_MAX)
		return -EINVAL;

	n = 1 + 1 + 1 + 4 + 1 + label_len + 2 + b->ct_len;
	out = malloc(n);
	if (!out)
		return -ENOMEM;
	p = out;
	*p++ = KEYPROV_BLOB_VERSION;
	*p++ = b->mech;
	*p++ = b->hash;
	put_be32(p, b->key_version);
	p += 4;
	*p++ = (uint8_t)label_len;
	memcpy(p, b->label, label_len);
	p += label_len;
	put_be16(p, (uint16_t)b->ct_len);
	p += 2;
	memcpy(p, b->ct, b->ct_len);

	*ret = out;
	*ret_len = n;
	return 0;
}

const char *keyprov_mech_name(enum keyprov_mech m)
{
	switch (m) {
	case KEYPROV_MECH_OAEP_HOST:
		return "oaep-sha256-host";
	case KEYPROV_MECH_OAEP_TOKEN:
		return "oaep-token";
	}
	return NULL;
}

const char *keyprov_hash_name(enum keyprov_hash h)
{
	switch (h) {
	case KEYPROV_HASH_SHA1:
		return "sha1";
	case KEYPROV_HASH_SHA256:
		return "sha256";
	}
	return NULL;
}

int keyprov_mech_from_name(const char *s, enum keyprov_mech *ret)
{
	if (!s || !ret)
		return -EINVAL;
	if (streq(s, "oaep-sha256-host"))
		*ret = KEYPROV_MECH_OAEP_HOST;
	else if (streq(s, "oaep-token"))
		*ret = KEYPROV_MECH_OAEP_TOKEN;
	else
		return -EINVAL;
	return 0;
}

int keyprov_hash_from_name(const char *s, enum keyprov_hash *ret)
{
	if (!s || !ret)
		return -EINVAL;
	if (streq(s, "sha1"))
		*ret = KEYPROV_HASH_SHA1;
	else if (streq(s, "sha256"))
		*ret = KEYPROV_HASH_SHA256;
	else
		return -EINVAL;
	return 0;
}
