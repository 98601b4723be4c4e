/* vaultd/access/accounts.c: see accounts.h. */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/err.h"
#include "vaultd/access/authz.h"
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

void account_user_written_clear(struct account_user_written *w)
{
	if (!w)
		return;
	json_decref(w->enrolment);
	free(w->roles);
	*w = (struct account_user_written){0};
}

/* A JSON array as the store keeps it: compact text in ordinary heap. */
static char *roles_text(const json_t *roles)
{
	char *t = json_dumps(roles, JSON_COMPACT), *copy;

	if (!t)
		return NULL;
	/* json_dumps() used the wiping allocator: hand the store a libc copy. */
	copy = strdup(t);
	json_secure_free(t);
	return copy;
}

int accounts_user_write(const struct accounts_env *env, const struct account_user_write *w,
			accounts_commit_fn commit, void *userdata, struct account_user_written *ret)
{
	_cleanup_secret_ struct secret *key = NULL;
	char hashes[TOTP_RECOVERY_CODES][65];
	struct account_user_written out = {0};
	struct store_user u = {0};
	struct store_tx *tx = NULL;
	const char *why;
	int r;

	if (w->passphrase && (why = auth_passphrase_check(w->passphrase))) {
		ret->field = "passphrase";
		ret->why = why;
		return -EINVAL;
	}
	r = keyring_authz_key(env->keyring, &key);
	if (r < 0)
		return r;
	r = store_write_begin(env->store, &tx);
	if (r < 0)
		return r;
	r = store_user_get(tx, w->name, &u);
	if (r < 0 && r != -ENOENT)
		goto out;
	if (w->reset_mfa) {
		if (r == -ENOENT)
			goto out;
	} else if (r == -ENOENT) {
		/* Create: both fields required. */
		if (!w->passphrase || !w->roles) {
			out.field = !w->passphrase ? "passphrase" : "roles";
			out.why = "required";
			r = -EINVAL;
			goto out;
		}
		snprintf(u.name, sizeof(u.name), "%s", w->name);
		u.created_at = time(NULL);
		out.created = true;
	} else if (!w->passphrase && !w->roles) {
		out.field = "body";
		out.why = "give roles and/or passphrase";
		r = -EINVAL;
		goto out;
	}
	if (w->roles) {
		if ((r = accounts_roles_check(tx, w->roles, &out.why)) < 0) {
			out.field = "roles";
			goto out;
		}
		if (!out.created && accounts_last_admin_lost(tx, w->name, w->roles)) {
			r = -VLT_E_LAST_ADMIN;
			goto out;
		}
		free(u.roles);
		u.roles = roles_text(w->roles);
	}
	if (w->passphrase) {
		char *phc = NULL;
		if ((r = auth_hash(&env->argon2, w->passphrase, &phc)) < 0)
			goto out;
		free(u.phc);
		u.phc = phc;
	}
	if (w->reset_mfa || !u.mfa_key) {
		r = accounts_enrol(env->keyring, &u, hashes, &out.enrolment);
		if (r < 0)
			goto out;
	}
	u.updated_at = time(NULL);
	if (!u.roles || !u.phc) {
		r = -ENOMEM;
		goto out;
	}
	authz_mac_user(key, &u, u.mac);
	r = store_user_put(tx, &u);
	/* A new second factor replaces the recovery codes; the user row must
	 * exist first (they reference it). */
	if (r >= 0 && out.enrolment)
		r = store_recovery_set(tx, w->name, (const char(*)[65])hashes, TOTP_RECOVERY_CODES);
	/* A new second factor or passphrase ends every session of the user. */
	if (r >= 0 && (out.enrolment || w->passphrase) && (r = store_token_delete_user(tx, w->name)) > 0)
		r = 0;
	if (r >= 0)
		r = commit(userdata, &tx);
	if (r >= 0 && !(out.roles = strdup(u.roles)))
		r = -ENOMEM;
out:
	store_tx_end(tx);
	store_user_clear(&u);
	sodium_memzero(hashes, sizeof(hashes));
	if (r < 0) {
		ret->field = out.field;
		ret->why = out.why;
		account_user_written_clear(&out);
		return r;
	}
	*ret = out;
	return 0;
}

int accounts_user_delete(const struct accounts_env *env, const char *name, accounts_commit_fn commit,
			 void *userdata)
{
	struct store_tx *tx = NULL;
	int r;

	r = store_write_begin(env->store, &tx);
	if (r < 0)
		return r;
	if (accounts_last_admin_lost(tx, name, NULL))
		r = -VLT_E_LAST_ADMIN;
	else
		/* Cascades the user's tokens and recovery codes. */
		r = store_user_delete(tx, name);
	if (r >= 0)
		r = commit(userdata, &tx);
	store_tx_end(tx);
	return r;
}

/* One write transaction: fn's change, then the hook's record, committed. */
static int write_with(const struct accounts_env *env, int (*fn)(struct store_tx *tx, void *u), void *u,
		      accounts_commit_fn commit, void *userdata)
{
	struct store_tx *tx = NULL;
	int r;

	r = store_write_begin(env->store, &tx);
	if (r < 0)
		return r;
	r = fn(tx, u);
	if (r >= 0)
		r = commit(userdata, &tx);
	store_tx_end(tx);
	return r;
}

static int put_role(struct store_tx *tx, void *u)
{
	return store_role_put(tx, u);
}

int accounts_role_write(const struct accounts_env *env, const char *name, const json_t *body,
			accounts_commit_fn commit, void *userdata, struct rbac_role *ret_parsed, json_t **ret_errors)
{
	_cleanup_secret_ struct secret *key = NULL;
	struct rbac_role parsed = {0};
	struct store_role row = {0};
	int r;

	if (rbac_builtin_find(name))
		return -VLT_E_BUILTIN;
	r = rbac_role_from_json(name, body, &parsed, ret_errors);
	if (r < 0)
		return r;
	r = keyring_authz_key(env->keyring, &key);
	snprintf(row.name, sizeof(row.name), "%s", name);
	row.rules = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
	row.created_at = row.updated_at = time(NULL);
	if (r >= 0 && !row.rules)
		r = -ENOMEM;
	if (r >= 0) {
		authz_mac_role(key, &row, row.mac);
		r = write_with(env, put_role, &row, commit, userdata);
	}
	json_secure_free(row.rules);
	if (r < 0) {
		rbac_role_clear(&parsed);
		return r;
	}
	*ret_parsed = parsed;
	return 0;
}

int accounts_role_delete(const struct accounts_env *env, const char *name, accounts_commit_fn commit,
			 void *userdata, int *ret_refs)
{
	struct store_tx *tx = NULL;
	int r;

	if (rbac_builtin_find(name))
		return -VLT_E_BUILTIN;
	r = store_write_begin(env->store, &tx);
	if (r < 0)
		return r;
	r = store_role_refs(tx, name);
	if (r > 0) {
		*ret_refs = r;
		r = -VLT_E_IN_USE;
	} else if (r >= 0)
		r = store_role_delete(tx, name);
	if (r >= 0)
		r = commit(userdata, &tx);
	store_tx_end(tx);
	return r;
}

int accounts_service_write(const struct accounts_env *env, const char *name, uint32_t uid, const json_t *roles,
			   accounts_commit_fn commit, void *userdata, const char **ret_why)
{
	_cleanup_secret_ struct secret *key = NULL;
	struct store_service svc = {0};
	struct store_tx *tx = NULL;
	int r;

	r = keyring_authz_key(env->keyring, &key);
	if (r < 0)
		return r;
	r = store_write_begin(env->store, &tx);
	if (r < 0)
		return r;
	r = accounts_roles_check(tx, roles, ret_why);
	snprintf(svc.name, sizeof(svc.name), "%s", name);
	svc.uid = uid;
	svc.created_at = svc.updated_at = time(NULL);
	if (r >= 0 && !(svc.roles = roles_text(roles)))
		r = -ENOMEM;
	if (r >= 0) {
		authz_mac_service(key, &svc, svc.mac);
		r = store_service_put(tx, &svc);        /* uid taken: -EEXIST */
	}
	if (r >= 0)
		r = commit(userdata, &tx);
	store_tx_end(tx);
	free(svc.roles);
	return r;
}

static int delete_service(struct store_tx *tx, void *u)
{
	return store_service_delete(tx, u);
}

int accounts_service_delete(const struct accounts_env *env, const char *name, accounts_commit_fn commit,
			    void *userdata)
{
	return write_with(env, delete_service, (void *)name, commit, userdata);
}
