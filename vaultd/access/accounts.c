/* vaultd/access/accounts.c: see accounts.h. */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include "common/encoding.h"
#include "vaultd/access/accounts.h"
#include "vaultd/access/totp.h"
#include "vaultd/keys/envelope.h"

#define ISSUER "vaultd"

/* Draws a new MFA key and TOTP secret for u (state pending) and recovery
 * codes; fills *ret_reply with what the user must see once. */
int accounts_enrol(struct keyring *k, struct store_user *u, char (*hashes)[65], json_t **ret_reply)
{
	_cleanup_secret_ struct secret *mfa_key = NULL, *totp = NULL, *uri = NULL, *codes = NULL;
	uint8_t *key_blob = NULL, *totp_blob = NULL;
	size_t key_len = 0, totp_len = 0;
	char b32[128];
	json_t *reply, *arr;
	int r;

	if ((r = secret_random(32, &mfa_key)) < 0 || (r = totp_secret_new(&totp)) < 0 ||
	    (r = totp_uri(totp, ISSUER, u->name, &uri)) < 0 ||
	    (r = totp_recovery_generate(TOTP_RECOVERY_CODES, &codes, hashes)) < 0)
		return r;
	r = keyring_hsm_wrap_key(k, mfa_key, &key_blob, &key_len);
	if (r < 0)
		return r;
	r = envelope_seal_totp(mfa_key, u->name, totp, &totp_blob, &totp_len);
	if (r < 0) {
		free(key_blob);
		return r;
	}
	r = base32_encode(totp->p, totp->len, 0, b32, sizeof(b32));
	if (r < 0) {
		free(key_blob);
		free(totp_blob);
		return r;
	}
	arr = json_array();
	for (const char *p = (const char *)codes->p; *p;) {
		const char *e = strchrnul(p, '\n');
		json_array_append_new(arr, json_stringn(p, (size_t)(e - p)));
		p = *e ? e + 1 : e;
	}
	reply = json_pack("{s:s%, s:s, s:o}", "totp_uri", (const char *)uri->p, uri->len, "totp_secret", b32,
			  "recovery_codes", arr);
	sodium_memzero(b32, sizeof(b32));
	free(u->mfa_key);
	free(u->totp_blob);
	u->mfa_key = key_blob;
	u->mfa_key_len = key_len;
	u->totp_blob = totp_blob;
	u->totp_len = totp_len;
	u->mfa_state = STORE_MFA_PENDING;
	u->totp_last_step = 0;
	*ret_reply = reply;
	return reply ? 0 : -ENOMEM;
}

