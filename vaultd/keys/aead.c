/* vaultd/keys/aead.c: AES-256-GCM through OpenSSL 3 EVP; see aead.h.
 * One EVP_CIPHER_CTX per call: no shared state, so any thread may call. */
#include <errno.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "vaultd/keys/aead.h"
#include "common/util.h"

DEFINE_CLEANUP(EVP_CIPHER_CTX *, EVP_CIPHER_CTX_free)

static int args_valid(const uint8_t *key, const uint8_t *nonce, const uint8_t *aad,
		      size_t aad_len, const uint8_t *in, size_t n, const uint8_t *out,
		      const uint8_t *tag)
{
	/* EVP takes int lengths; larger inputs would be silently truncated. */
	if (n > INT_MAX || aad_len > INT_MAX)
		return 0;
	if (!key || !nonce || !tag)
		return 0;
	if ((aad_len > 0 && !aad) || (n > 0 && (!in || !out)))
		return 0;
	return 1;
}

/* Cipher, IV length (explicit even though 12 is GCM's default, so the
 * contract does not rest on a default), then key and nonce. */
static int gcm_init(EVP_CIPHER_CTX *ctx, int enc, const uint8_t *key, const uint8_t *nonce)
{
	if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, AEAD_NONCE_LEN, NULL) != 1 ||
	    EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) != 1)
		return -EIO;
	return 0;
}

int aead_encrypt(const uint8_t key[AEAD_KEY_LEN], const uint8_t nonce[AEAD_NONCE_LEN],
		 const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t n, uint8_t *ct,
		 uint8_t tag[AEAD_TAG_LEN])
{
	_cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *ctx = NULL;
	uint8_t fin[16];        /* Final writes nothing for GCM; ct may be NULL when n is 0 */
	int outl;

	if (!args_valid(key, nonce, aad, aad_len, pt, n, ct, tag))
		return -EINVAL;
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return -ENOMEM;
	if (gcm_init(ctx, 1, key, nonce) < 0)
		return -EIO;
	/* GCM is a stream mode: Update writes exactly its input length and
	 * Final writes nothing, so ct needs no slack. */
	if (aad_len > 0 && EVP_EncryptUpdate(ctx, NULL, &outl, aad, (int)aad_len) != 1)
		return -EIO;
	if (n > 0 && (EVP_EncryptUpdate(ctx, ct, &outl, pt, (int)n) != 1 || (size_t)outl != n))
		return -EIO;
	if (EVP_EncryptFinal_ex(ctx, fin, &outl) != 1 || outl != 0 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, AEAD_TAG_LEN, tag) != 1)
		return -EIO;
	return 0;
}

int aead_decrypt(const uint8_t key[AEAD_KEY_LEN], const uint8_t nonce[AEAD_NONCE_LEN],
		 const uint8_t *aad, size_t aad_len, const uint8_t *ct, size_t n,
		 const uint8_t tag[AEAD_TAG_LEN], uint8_t *pt)
{
	_cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *ctx = NULL;
	uint8_t tagbuf[AEAD_TAG_LEN], fin[16];
	int outl, r = -EIO;

	if (!args_valid(key, nonce, aad, aad_len, ct, n, pt, tag))
		return -EINVAL;
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return -ENOMEM;
	/* SET_TAG takes a non-const pointer; copy rather than cast const away. */
	memcpy(tagbuf, tag, AEAD_TAG_LEN);
	if (gcm_init(ctx, 0, key, nonce) < 0)
		goto fail;
	if (aad_len > 0 && EVP_DecryptUpdate(ctx, NULL, &outl, aad, (int)aad_len) != 1)
		goto fail;
	if (n > 0 && (EVP_DecryptUpdate(ctx, pt, &outl, ct, (int)n) != 1 || (size_t)outl != n))
		goto fail;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, AEAD_TAG_LEN, tagbuf) != 1)
		goto fail;
	/* Final compares the tag (in constant time); <= 0 means it did not verify. */
	if (EVP_DecryptFinal_ex(ctx, fin, &outl) <= 0) {
		r = -EBADMSG;
		goto fail;
	}
	return 0;
fail:
	/* pt already holds plaintext that was never authenticated: it must not
	 * reach the caller, whichever step failed. */
	if (n > 0)
		OPENSSL_cleanse(pt, n);
	return r;
}
