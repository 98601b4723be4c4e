/* common/keyprov.h: the key-provider interface (the HSM boundary).
 *
 * A key provider holds an RSA-3072 "HSM wrapping key" inside a PKCS#11 token
 * and wraps/unwraps the 32-byte root key (RK) with RSA-OAEP. The private half
 * never leaves the token. The only implementation is pkcs11/ (the PKCS#11
 * wrapper library and OpenSSL 3); nothing outside pkcs11/ includes their
 * headers or pkcs11.h. The interface is small and message-shaped so it can
 * move into a helper process over a socketpair later without changing callers.
 *
 * HSM keys are named by (label, version): CKA_LABEL = label, CKA_ID = the
 * version as 4 big-endian bytes. Several versions may coexist (rotation).
 *
 * Every call into the token is serialised on one worker thread and bounded by
 * cfg->timeout_ms; a call that times out returns -VLT_E_HSM_TIMEOUT and leaves
 * the provider unusable (later calls fail fast with the same code) until it is
 * closed and reopened. The PIN is read from pin_file or pin_env at open, used
 * for login, and wiped; the provider keeps no copy of its own. An environment
 * variable is read only while it is set: the open that finds it set moves its
 * value into guarded memory of the PKCS#11 module (sodium_malloc(), sealed
 * between opens, kept until exit), wipes the value's bytes in place and
 * unsets it, so that children and /proc/PID/environ never see the PIN; later
 * opens naming the same variable use that copy. Setting the variable again
 * replaces the copy; setting it empty is an error.
 *
 * All functions: 0 on success, negative common/err.h code on failure. A
 * struct keyprov may be used from any thread (calls are serialised).
 */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "common/secret.h"

#define KEYPROV_LABEL_MAX 64
#define KEYPROV_RK_LEN 32

/* How the token unwraps; recorded in the wrapped blob. */
enum keyprov_mech {
	KEYPROV_MECH_OAEP_HOST = 1,     /* "oaep-sha256-host": raw RSA in the token, OAEP in OpenSSL */
	KEYPROV_MECH_OAEP_TOKEN = 2,    /* "oaep-token": CKM_RSA_PKCS_OAEP in the token */
};
enum keyprov_hash {
	KEYPROV_HASH_SHA1 = 1,          /* oaep-token only (SoftHSM2 2.6.1 supports only this) */
	KEYPROV_HASH_SHA256 = 2,
};

struct keyprov_config {
	const char *module_path;        /* absolute path of the PKCS#11 module */
	const char *token_label;
	const char *pin_file;           /* exactly one of pin_file and pin_env */
	const char *pin_env;            /* name of the environment variable (taken, see above) */
	unsigned timeout_ms;            /* per HSM call; 0 means 10000 */
};

struct keyprov;

/* After a call that failed, on the same thread: one line naming what was
 * wrong (the PIN file's path and why, the module's path and dlerror(), the
 * token label, the key's label and version), or "" if there is nothing to
 * add to the error code. Never a PIN. */
const char *keyprov_error_detail(void);

/* Loads the module, finds the token, logs in as user.
 * -VLT_E_HSM_MODULE, -VLT_E_HSM_TOKEN, -VLT_E_HSM_PIN_SOURCE, -VLT_E_HSM_PIN,
 * -VLT_E_HSM_PIN_LOCKED, -VLT_E_HSM_TIMEOUT, -ENOMEM, -EINVAL. */
int keyprov_open(const struct keyprov_config *cfg, struct keyprov **ret);
/* NULL-safe. Logs out and unloads the module (unless a call is stuck). */
void keyprov_close(struct keyprov *kp);
DEFINE_CLEANUP(struct keyprov *, keyprov_close)

/* Generates an RSA-3072 pair in the token: private half CKA_SENSITIVE,
 * CKA_EXTRACTABLE false, decrypt only. -VLT_E_HSM_KEY_EXISTS if (label, version)
 * is taken. */
int keyprov_generate(struct keyprov *kp, const char *label, uint32_t version);
/* 0 if both halves of (label, version) are present, else -VLT_E_HSM_KEY_NOT_FOUND. */
int keyprov_find(struct keyprov *kp, const char *label, uint32_t version);
/* Deletes both halves. -VLT_E_HSM_KEY_NOT_FOUND if absent. */
int keyprov_destroy(struct keyprov *kp, const char *label, uint32_t version);

/* Wraps rk (exactly KEYPROV_RK_LEN bytes) with the public half of (label,
 * version) in OpenSSL; the blob (format in keyprov_blob_parse) records label,
 * version, mechanism and hash. Combinations: HOST+SHA256, TOKEN+SHA1,
 * TOKEN+SHA256. *ret_blob is malloc()ed (it is not secret). */
int keyprov_wrap(struct keyprov *kp, const char *label, uint32_t version, enum keyprov_mech mech,
		 enum keyprov_hash hash, const struct secret *rk, uint8_t **ret_blob, size_t *ret_len);
/* Unwraps in the token by the blob's mechanism. -VLT_E_BLOB_FORMAT,
 * -VLT_E_BLOB_VERSION, -VLT_E_HSM_KEY_NOT_FOUND, -VLT_E_HSM_UNWRAP (wrong
 * key or tampered blob), -VLT_E_HSM_MECH, -VLT_E_HSM_TIMEOUT. */
int keyprov_unwrap(struct keyprov *kp, const uint8_t *blob, size_t len, struct secret **ret_rk);

/* Wrapped-RK blob, all integers big-endian; nothing may follow:
 *   u8  format version (1)
 *   u8  mechanism (enum keyprov_mech)
 *   u8  hash (enum keyprov_hash)
 *   u32 HSM key version (= CKA_ID)
 *   u8  label length L (1..64), then L bytes of label (no NUL)
 *   u16 ciphertext length C (256..512), then C bytes of RSA-OAEP ciphertext
 */
#define KEYPROV_BLOB_VERSION 1
struct keyprov_blob {
	uint8_t mech, hash;
	uint32_t key_version;
	char label[KEYPROV_LABEL_MAX + 1];
	const uint8_t *ct;              /* borrowed from the parsed buffer */
	size_t ct_len;
};
/* -VLT_E_BLOB_FORMAT (truncated, trailing bytes, bad lengths, unknown
 * mechanism/hash or combination, label not printable ASCII), -VLT_E_BLOB_VERSION. */
int keyprov_blob_parse(const uint8_t *buf, size_t len, struct keyprov_blob *ret);
/* Serialises b; *ret is malloc()ed. -EINVAL on a bad field, -ENOMEM. */
int keyprov_blob_build(const struct keyprov_blob *b, uint8_t **ret, size_t *ret_len);

/* "oaep-sha256-host" / "oaep-token"; "sha1" / "sha256". NULL if unknown. */
const char *keyprov_mech_name(enum keyprov_mech m);
const char *keyprov_hash_name(enum keyprov_hash h);
/* 0 and *ret set, or -EINVAL. */
int keyprov_mech_from_name(const char *s, enum keyprov_mech *ret);
int keyprov_hash_from_name(const char *s, enum keyprov_hash *ret);
