/* vaultd/keys/aead.h: AES-256-GCM through OpenSSL EVP, the only primitive the
 * envelope uses. Fixed sizes: 32-byte key, 12-byte nonce, 16-byte tag.
 * The caller supplies the nonce (envelope.c draws it at random); this layer
 * exists so it can be checked against NIST known-answer vectors.
 * Thread-safe (no shared state).
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

#define AEAD_KEY_LEN 32
#define AEAD_NONCE_LEN 12
#define AEAD_TAG_LEN 16

/* ct has room for n bytes. 0, -EINVAL (n > INT_MAX), -EIO (OpenSSL failure). */
int aead_encrypt(const uint8_t key[AEAD_KEY_LEN], const uint8_t nonce[AEAD_NONCE_LEN],
		 const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t n, uint8_t *ct,
		 uint8_t tag[AEAD_TAG_LEN]);
/* pt has room for n bytes. 0, -EBADMSG if authentication fails (pt is then
 * wiped), -EINVAL, -EIO. */
int aead_decrypt(const uint8_t key[AEAD_KEY_LEN], const uint8_t nonce[AEAD_NONCE_LEN],
		 const uint8_t *aad, size_t aad_len, const uint8_t *ct, size_t n,
		 const uint8_t tag[AEAD_TAG_LEN], uint8_t *pt);
