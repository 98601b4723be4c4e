/* common/err.c: see err.h. */
#include <string.h>
#include "common/err.h"

static const char *const vlt_messages[] = {
	[VLT_E_HSM_MODULE - VLT_E_FIRST] = "PKCS#11 module not found or failed to load",
	[VLT_E_HSM_TOKEN - VLT_E_FIRST] = "no PKCS#11 token with that label",
	[VLT_E_HSM_PIN - VLT_E_FIRST] = "the HSM token refused the PIN",
	[VLT_E_HSM_PIN_LOCKED - VLT_E_FIRST] = "the HSM token's user PIN is locked",
	[VLT_E_HSM_PIN_SOURCE - VLT_E_FIRST] = "HSM PIN file or environment variable missing, empty or unsafe",
	[VLT_E_HSM_KEY_NOT_FOUND - VLT_E_FIRST] = "HSM wrapping key not found in the token",
	[VLT_E_HSM_KEY_EXISTS - VLT_E_FIRST] = "an HSM key with that label and version already exists",
	[VLT_E_HSM_UNWRAP - VLT_E_FIRST] = "the HSM could not unwrap the root key (wrong key or damaged blob)",
	[VLT_E_HSM_TIMEOUT - VLT_E_FIRST] = "HSM call timed out",
	[VLT_E_HSM_MECH - VLT_E_FIRST] = "the HSM does not support the requested mechanism",
	[VLT_E_HSM - VLT_E_FIRST] = "HSM operation failed",
	[VLT_E_BLOB_FORMAT - VLT_E_FIRST] = "malformed wrapped-key blob",
	[VLT_E_BLOB_VERSION - VLT_E_FIRST] = "wrapped-key blob has an unsupported format version",
};

static const char *const vlt_domain_messages[] = {
	[VLT_E_CAS - VLT_E_DOMAIN_FIRST] = "check-and-set failed: the credential changed",
	[VLT_E_TYPE - VLT_E_DOMAIN_FIRST] = "a credential's type cannot change",
	[VLT_E_DELETED - VLT_E_DOMAIN_FIRST] = "the secret is deleted",
	[VLT_E_VERSIONS - VLT_E_DOMAIN_FIRST] = "the secret has run out of version numbers",
	[VLT_E_LAST_ADMIN - VLT_E_DOMAIN_FIRST] = "the last user holding admin can be neither deleted nor demoted",
	[VLT_E_BUILTIN - VLT_E_DOMAIN_FIRST] = "a built-in role cannot be changed",
	[VLT_E_IN_USE - VLT_E_DOMAIN_FIRST] = "the role is held by users or services",
};

const char *vlt_strerror(int r)
{
	int e = r < 0 ? -r : r;

	if (e > VLT_E_FIRST && e < VLT_E_LAST && vlt_messages[e - VLT_E_FIRST])
		return vlt_messages[e - VLT_E_FIRST];
	if (e > VLT_E_DOMAIN_FIRST && e < VLT_E_DOMAIN_LAST && vlt_domain_messages[e - VLT_E_DOMAIN_FIRST])
		return vlt_domain_messages[e - VLT_E_DOMAIN_FIRST];
	if (e == 0)
		return "success";
	if (e < VLT_E_FIRST) {
		/* strerrordesc_np() is thread-safe and returns static text (glibc >= 2.32). */
		const char *m = strerrordesc_np(e);
		if (m)
			return m;
	}
	return "unknown error";
}
