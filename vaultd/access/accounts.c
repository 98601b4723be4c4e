/* vaultd/access/accounts.c: see accounts.h. */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include "common/encoding.h"
#include "common/path.h"
#include "vaultd/access/principal.h"
#include "vaultd/access/rbac.h"
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


int accounts_roles_check(struct store_tx *tx, const json_t *roles, const char **ret_why)
{
	json_t *v;
	size_t i;

	if (!json_is_array(roles) || json_array_size(roles) == 0 || json_array_size(roles) > PRINCIPAL_ROLES_MAX) {
		*ret_why = "an array of 1-16 role names";
		return -EINVAL;
	}
	json_array_foreach(roles, i, v)
		if (!json_is_string(v) || !name_valid(json_string_value(v))) {
			*ret_why = "role names are strings of [A-Za-z0-9._-]";
			return -EINVAL;
		}
	json_array_foreach(roles, i, v) {
		struct store_role row = {0};
		int r;

		if (rbac_builtin_find(json_string_value(v)))
			continue;
		r = store_role_get(tx, json_string_value(v), &row);
		store_role_clear(&row);
		if (r == -ENOENT) {
			*ret_why = "names a role that does not exist";
			return -EINVAL;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

static bool roles_name_admin(const char *roles_json)
{
	_cleanup_json_ json_t *arr = json_loads(roles_json, 0, NULL);
	json_t *v;
	size_t i;

	json_array_foreach(arr, i, v)
		if (json_is_string(v) && streq(json_string_value(v), "admin"))
			return true;
	return false;
}

bool accounts_last_admin_lost(struct store_tx *tx, const char *user, const json_t *new_roles)
{
	struct store_user u = {0};
	bool was = false;
	json_t *v;
	size_t i;

	if (new_roles)
		json_array_foreach(new_roles, i, v)
			if (json_is_string(v) && streq(json_string_value(v), "admin"))
				return false;           /* keeps it */
	if (store_user_get(tx, user, &u) == 0) {
		was = roles_name_admin(u.roles);
		store_user_clear(&u);
	}
	/* Only users holding "admin" count: whether custom roles would still
	 * let someone unlock is not judged here. */
	return was && store_user_count_with_role(tx, "admin") <= 1;
}
