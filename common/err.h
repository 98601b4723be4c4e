/* common/err.h: error codes.
 * Functions return 0 (or a count) on success and a negative code on failure:
 * either -errno (EINVAL, ENOMEM, EIO, ENOENT, EBADMSG = authentication failed,
 * ETIMEDOUT, ...) or -VLT_E_* below for failures errno cannot name precisely.
 * vlt_strerror() turns either into one human sentence that never contains
 * secret material. Thread-safe.
 */
#pragma once

enum {
	VLT_E_FIRST = 10000,
	VLT_E_HSM_MODULE,       /* PKCS#11 module missing or failed to load */
	VLT_E_HSM_TOKEN,        /* no token with that label */
	VLT_E_HSM_PIN,          /* token refused the PIN */
	VLT_E_HSM_PIN_LOCKED,   /* token's user PIN is locked */
	VLT_E_HSM_PIN_SOURCE,   /* PIN file/env unreadable, empty or unsafe */
	VLT_E_HSM_KEY_NOT_FOUND,/* no HSM key with that label/version */
	VLT_E_HSM_KEY_EXISTS,   /* generate: the label/version is taken */
	VLT_E_HSM_UNWRAP,       /* the token could not unwrap the blob */
	VLT_E_HSM_TIMEOUT,      /* an HSM call did not finish in time */
	VLT_E_HSM_MECH,         /* the token lacks the mechanism asked */
	VLT_E_HSM,              /* any other PKCS#11 failure */
	VLT_E_BLOB_FORMAT,      /* a wrapped blob is malformed or truncated */
	VLT_E_BLOB_VERSION,     /* a wrapped blob has an unknown format version */
	VLT_E_LAST,
};

/* The domain's own conditions (vaultd/secrets/, ...), where errno has no
 * fitting name. A range apart from the HSM's, which callers test as one. */
enum {
	VLT_E_DOMAIN_FIRST = 10100,
	VLT_E_CAS,              /* check-and-set: the current version is not the one given */
	VLT_E_TYPE,             /* a credential's type cannot change */
	VLT_E_DELETED,          /* the secret is soft-deleted */
	VLT_E_VERSIONS,         /* the secret has run out of version numbers */
	VLT_E_LAST_ADMIN,       /* the change would leave no user holding admin */
	VLT_E_BUILTIN,          /* a built-in role cannot be changed */
	VLT_E_IN_USE,           /* a role that users or services still hold */
	VLT_E_DOMAIN_LAST,
};

/* r < 0; returns a static string. Unknown codes give a generic sentence. */
const char *vlt_strerror(int r);
