/* vaultd/keys/envelope.h: the three AES-256-GCM layers under the HSM-wrapped root key.
 *
 *   RK  --wraps-->  tenant KEK (per tenant, per KEK version)
 *   KEK --wraps-->  DEK (per secret version)
 *   DEK --seals-->  the credential's data (a JSON object)
 *
 * Every blob has one format (integers big-endian, nothing may follow):
 *   u8  format version (ENVELOPE_FORMAT = 1)
 *   u8  kind (enum envelope_kind)
 *   u32 key version: the version of the key that sealed it
 *       (RK version for a KEK, KEK version for a DEK, 1 for data and TOTP)
 *   12  nonce, fresh from the CSPRNG for every seal
 *   16  GCM tag
 *   n   ciphertext (32 bytes for KEK and DEK, 1..ENVELOPE_DATA_MAX for data)
 * The AAD is the 6 header bytes followed by a context string that binds the
 * blob to its place, so a row copied to another tenant, path, version or key
 * version fails to open:
 *   KEK:  "vaultd/v1/kek|<tenant>|<kek_version>|<rk_version>"
 *   DEK:  "vaultd/v1/dek|<tenant>/<path>|<version>|<kek_version>"
 *   data: "vaultd/v1/data|<tenant>/<path>|<version>"
 *   TOTP: "vaultd/v1/totp|<user>"   (key version 1: a user's MFA key is never rotated in place)
 * <tenant>/<path> is the full secret path (its first segment is the tenant).
 * Keys and plaintext are struct secret; blobs are malloc()ed (not secret).
 * Errors: -EINVAL (bad argument), -ENOMEM, -EIO (OpenSSL), -VLT_E_BLOB_FORMAT
 * (malformed, wrong kind or length), -VLT_E_BLOB_VERSION, -EBADMSG (the tag
 * did not verify: wrong key, wrong place, or tampering). Thread-safe.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "common/secret.h"

#define ENVELOPE_FORMAT 1
#define ENVELOPE_KEY_LEN 32
#define ENVELOPE_HEADER_LEN 6
#define ENVELOPE_OVERHEAD (ENVELOPE_HEADER_LEN + 12 + 16)
#define ENVELOPE_DATA_MAX (256u * 1024u)

enum envelope_kind {
	ENVELOPE_KIND_KEK = 1,
	ENVELOPE_KIND_DEK = 2,
	ENVELOPE_KIND_DATA = 3,
	ENVELOPE_KIND_TOTP = 4,
};
#define ENVELOPE_TOTP_MIN 16
#define ENVELOPE_TOTP_MAX 64

int envelope_wrap_kek(const struct secret *rk, uint32_t rk_version, const char *tenant,
		      uint32_t kek_version, const struct secret *kek, uint8_t **ret, size_t *ret_len);
int envelope_unwrap_kek(const struct secret *rk, uint32_t rk_version, const char *tenant,
			uint32_t kek_version, const uint8_t *blob, size_t len, struct secret **ret_kek);

int envelope_wrap_dek(const struct secret *kek, uint32_t kek_version, const char *path,
		      uint32_t version, const struct secret *dek, uint8_t **ret, size_t *ret_len);
int envelope_unwrap_dek(const struct secret *kek, uint32_t kek_version, const char *path,
			uint32_t version, const uint8_t *blob, size_t len, struct secret **ret_dek);

int envelope_seal_data(const struct secret *dek, const char *path, uint32_t version,
		       const struct secret *plaintext, uint8_t **ret, size_t *ret_len);
int envelope_open_data(const struct secret *dek, const char *path, uint32_t version,
		       const uint8_t *blob, size_t len, struct secret **ret_plaintext);

/* A user's TOTP secret (16..64 bytes) under that user's MFA key, a 32-byte
 * key that only the HSM can unwrap (so it is usable while the vault is locked). */
int envelope_seal_totp(const struct secret *mfa_key, const char *user, const struct secret *totp_secret,
		       uint8_t **ret, size_t *ret_len);
int envelope_open_totp(const struct secret *mfa_key, const char *user, const uint8_t *blob, size_t len,
		       struct secret **ret_totp_secret);

/* Reads kind and key version from a blob's header without opening it (to pick
 * the right KEK or RK version). -VLT_E_BLOB_FORMAT, -VLT_E_BLOB_VERSION. */
int envelope_peek(const uint8_t *blob, size_t len, enum envelope_kind *ret_kind,
		  uint32_t *ret_key_version);
