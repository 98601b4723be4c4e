/* vaultd/http/h_accounts.c: users, roles and services (admin), their MFA
 * enrolment, and the authorization seal on every row written (authz.h). */
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "common/encoding.h"
#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "vaultd/access/accounts.h"
#include "vaultd/access/authz.h"
#include "vaultd/access/totp.h"
#include "vaultd/core/vault.h"
#include "vaultd/http/api_internal.h"
#include "vaultd/keys/envelope.h"
#include "vaultd/keys/keyring.h"
#include "vaultd/store/store.h"

/* ---- the seal on a user row (h_auth.c's passphrase change) ---- */

/* Rows that grant access are written sealed (authz.h): with the MAC under
 * the current root key's authorization key. -EACCES while locked. */
int account_seal_user(struct api *a, struct store_user *u)
{
	_cleanup_secret_ struct secret *key = NULL;
	int r = keyring_authz_key(a->keyring, &key);

	if (r >= 0)
		authz_mac_user(key, u, u->mac);
	return r;
}

/* ---- management (admin) ---- */

/* The name after "/v1/<kind>/", validated; writes 400 on failure. */
static int one_name(struct call *c, char *out, size_t n, json_t **ret_body)
{
	const char *name = c->rest;

	if (*name == '/')
		name++;
	if (!name_valid(name))
		return reply_error(ret_body, 400, "bad_name",
				   "names are 1-64 characters of [A-Za-z0-9._-], starting with a letter or digit");
	snprintf(out, n, "%s", name);
	return 0;
}

/* roles must be a non-empty array of distinct, existing role names. */
/* The end of every management DELETE: r is the delete's result in tx.
 * Records and commits, then answers. */
/* The reply to a deletion that has run (r: its outcome). */
static int reply_deleted(struct api *a, struct call *c, int r, const char *kind, const char *name, json_t **ret_body)
{
	char what[32];

	(void)a;
	if (r == -ENOENT)
		return reply_error(ret_body, 404, "not_found", "no %s '%s'", kind, name);
	if (r < 0) {
		snprintf(what, sizeof(what), "delete %s", kind);
		return reply_store_busy_or_internal(ret_body, c->req, r, what);
	}
	log_info("%s '%s' deleted by '%s'", kind, name, c->who.name);
	return reply(ret_body, 200, json_pack("{s:s, s:b}", "name", name, "deleted", 1));
}

static json_t *user_json(const struct store_user *u)
{
	json_t *roles = json_loads(u->roles, 0, NULL);

	return json_pack("{s:s, s:o, s:s, s:o, s:o}", "name", u->name, "roles", roles ? roles : json_array(),
			 "mfa", u->mfa_state == STORE_MFA_ACTIVE ? "active" : "pending", "created_at",
			 json_time(u->created_at), "updated_at", json_time(u->updated_at));
}

static int user_json_one(const struct store_user *u, void *userdata)
{
	return json_array_append_new(userdata, user_json(u)) < 0 ? -ENOMEM : 0;
}

/* Would the change leave no user with the admin capability? */

int h_users(struct api *a, struct call *c, json_t **ret_body)
{
	static const char *const fields[] = { "passphrase", "roles", NULL };
	const char *m = c->req->method;
	const struct accounts_env env = { .store = a->store, .keyring = a->keyring, .argon2 = a->cfg.argon2 };
	struct api_call ac = { .a = a, .c = c };
	struct account_user_write w = {0};
	struct account_user_written done = {0};
	char name[PATH_SEGMENT_MAX + 1];
	_cleanup_json_ json_t *body = NULL;
	_cleanup_secret_ struct secret *pass = NULL;
	struct store_user u = {0};
	struct store_tx *tx = NULL;
	json_t *out = NULL;
	bool reset = false;
	int r, status;

	if (streq(c->rest, "") && streq(m, "GET")) {
		json_t *arr = json_array();
		r = store_read_begin(a->store, &tx);
		if (r >= 0)
			r = store_user_list(tx, user_json_one, arr);
		store_tx_end(tx);
		if (r < 0) {
			json_decref(arr);
			return reply_store_busy_or_internal(ret_body, c->req, r, "list users");
		}
		return reply(ret_body, 200, json_pack("{s:o}", "users", arr));
	}
	if (streq(m, "POST")) {
		size_t n = strlen(c->rest);
		static const char sfx[] = "/reset-mfa";
		if (n <= sizeof(sfx) - 1 || !streq(c->rest + n - (sizeof(sfx) - 1), sfx))
			return reply_error(ret_body, 405, "method_not_allowed", "POST is only for .../reset-mfa");
		snprintf(name, sizeof(name), "%.*s", (int)(n - (sizeof(sfx) - 1) - 1), c->rest + 1);
		if (!name_valid(name))
			return reply_error(ret_body, 400, "bad_name", "invalid user name");
		reset = true;
	} else if ((status = one_name(c, name, sizeof(name), ret_body)))
		return status;

	if (streq(m, "GET")) {
		r = store_read_begin(a->store, &tx);
		if (r >= 0)
			r = store_user_get(tx, name, &u);
		if (r == 0) {
			out = user_json(&u);
			json_object_set_new(out, "recovery_codes_left", json_integer(store_recovery_count(tx, name)));
		}
		store_tx_end(tx);
		store_user_clear(&u);
		if (r == -ENOENT)
			return reply_error(ret_body, 404, "not_found", "no user '%s'", name);
		if (r < 0)
			return reply_store_busy_or_internal(ret_body, c->req, r, "read user");
		return reply(ret_body, 200, out);
	}
	if (streq(m, "DELETE")) {
		r = accounts_user_delete(&env, name, api_call_commit, &ac);
		if (r == -VLT_E_LAST_ADMIN)
			return reply_error(ret_body, 409, "conflict", "'%s' is the last admin and cannot be deleted", name);
		return reply_deleted(a, c, r, "user", name, ret_body);
	}
	if (!reset && !streq(m, "PUT"))
		return reply_error(ret_body, 405, "method_not_allowed", "%s is not allowed on users", m);

	if (!reset) {
		if ((status = parse_body(c->req, fields, &body, ret_body)))
			return status;
		w.roles = json_object_get(body, "roles");
		if (json_object_get(body, "passphrase")) {
			if (!json_is_string(json_object_get(body, "passphrase")) ||
			    json_to_secret(json_object_get(body, "passphrase"), &pass) < 0)
				return reply_invalid(ret_body, json_pack("{s:s}", "passphrase", "must be a string"),
						     "invalid user");
			w.passphrase = pass;
		}
	}
	w.name = name;
	w.reset_mfa = reset;
	r = accounts_user_write(&env, &w, api_call_commit, &ac, &done);
	if (r == -ENOENT)
		return reply_error(ret_body, 404, "not_found", "no user '%s'", name);
	if (r == -EINVAL && done.field && done.why)
		return reply_invalid(ret_body, json_pack("{s:s}", done.field, done.why),
				     streq(done.field, "roles") ? "invalid roles" : "invalid user");
	if (r == -VLT_E_LAST_ADMIN)
		return reply_error(ret_body, 409, "conflict", "'%s' is the last admin and cannot be demoted", name);
	if (r == -EBUSY || r == -EIO || r == -ENOMEM || r == -EEXIST)
		return reply_store_busy_or_internal(ret_body, c->req, r, "write user");
	if (r < 0)
		return reply_hsm_error(ret_body, c->req, r, "write user");
	log_info("user '%s' %s by '%s'", name, reset ? "MFA reset" : "written", c->who.name);
	out = done.enrolment ? TAKE_PTR(done.enrolment) : json_object();
	json_object_set_new(out, "name", json_string(name));
	json_object_set_new(out, "roles", json_loads(done.roles, 0, NULL));
	account_user_written_clear(&done);
	return reply(ret_body, 200, out);
}

static json_t *role_json(const struct store_role *r)
{
	json_t *rules = json_loads(r->rules, 0, NULL);
	json_t *o = json_pack("{s:s, s:b, s:o}", "name", r->name, "builtin", 0, "rules",
			      json_incref(json_object_get(rules, "rules")));

	json_decref(rules);
	return o;
}

static int role_json_one(const struct store_role *r, void *userdata)
{
	return json_array_append_new(userdata, role_json(r)) < 0 ? -ENOMEM : 0;
}

int h_roles(struct api *a, struct call *c, json_t **ret_body)
{
	static const char *const fields[] = { "rules", NULL };
	const char *m = c->req->method;
	const struct accounts_env env = { .store = a->store, .keyring = a->keyring, .argon2 = a->cfg.argon2 };
	struct api_call ac = { .a = a, .c = c };
	char name[PATH_SEGMENT_MAX + 1];
	_cleanup_json_ json_t *body = NULL, *errors = NULL;
	struct store_role row = {0};
	struct rbac_role parsed = {0};
	struct store_tx *tx = NULL;
	int r, status;

	if (streq(c->rest, "") && streq(m, "GET")) {
		json_t *arr = json_array();
		for (size_t i = 0; i < rbac_builtin_count(); i++)
			json_array_append_new(arr, rbac_role_to_json(rbac_builtin_at(i)));
		r = store_read_begin(a->store, &tx);
		if (r >= 0)
			r = store_role_list(tx, role_json_one, arr);
		store_tx_end(tx);
		if (r < 0) {
			json_decref(arr);
			return reply_store_busy_or_internal(ret_body, c->req, r, "list roles");
		}
		return reply(ret_body, 200, json_pack("{s:o}", "roles", arr));
	}
	if ((status = one_name(c, name, sizeof(name), ret_body)))
		return status;
	if (streq(m, "GET")) {
		const struct rbac_role *b = rbac_builtin_find(name);
		if (b)
			return reply(ret_body, 200, rbac_role_to_json(b));
		r = store_read_begin(a->store, &tx);
		if (r >= 0)
			r = store_role_get(tx, name, &row);
		store_tx_end(tx);
		if (r == -ENOENT)
			return reply_error(ret_body, 404, "not_found", "no role '%s'", name);
		if (r < 0)
			return reply_store_busy_or_internal(ret_body, c->req, r, "read role");
		status = reply(ret_body, 200, role_json(&row));
		store_role_clear(&row);
		return status;
	}
	if (streq(m, "DELETE")) {
		int refs = 0;
		r = accounts_role_delete(&env, name, api_call_commit, &ac, &refs);
		if (r == -VLT_E_BUILTIN)
			return reply_error(ret_body, 409, "conflict", "'%s' is a built-in role and cannot be changed", name);
		if (r == -VLT_E_IN_USE)
			return reply_error(ret_body, 409, "conflict", "role '%s' is used by %d users or services", name, refs);
		return reply_deleted(a, c, r, "role", name, ret_body);
	}
	if (!streq(m, "PUT"))
		return reply_error(ret_body, 405, "method_not_allowed", "%s is not allowed on roles", m);
	if (rbac_builtin_find(name))
		return reply_error(ret_body, 409, "conflict", "'%s' is a built-in role and cannot be changed", name);
	if ((status = parse_body(c->req, fields, &body, ret_body)))
		return status;
	r = accounts_role_write(&env, name, body, api_call_commit, &ac, &parsed, &errors);
	if (r == -EINVAL)
		return reply_invalid(ret_body, errors ? TAKE_PTR(errors) : json_object(), "invalid role");
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, c->req, r, "write role");
	status = reply(ret_body, 200, rbac_role_to_json(&parsed));
	rbac_role_clear(&parsed);
	log_info("role '%s' written by '%s'", name, c->who.name);
	return status;
}

static json_t *service_json(const struct store_service *s)
{
	json_t *roles = json_loads(s->roles, 0, NULL);

	return json_pack("{s:s, s:i, s:o, s:o, s:o}", "name", s->name, "uid", (json_int_t)s->uid, "roles",
			 roles ? roles : json_array(), "created_at", json_time(s->created_at), "updated_at",
			 json_time(s->updated_at));
}

static int service_json_one(const struct store_service *s, void *userdata)
{
	return json_array_append_new(userdata, service_json(s)) < 0 ? -ENOMEM : 0;
}

int h_services(struct api *a, struct call *c, json_t **ret_body)
{
	static const char *const fields[] = { "uid", "roles", NULL };
	const char *m = c->req->method;
	const struct accounts_env env = { .store = a->store, .keyring = a->keyring, .argon2 = a->cfg.argon2 };
	struct api_call ac = { .a = a, .c = c };
	char name[PATH_SEGMENT_MAX + 1];
	_cleanup_json_ json_t *body = NULL;
	struct store_service svc = {0};
	struct store_tx *tx = NULL;
	json_t *uid, *roles, *arr;
	const char *why = NULL;
	int r, status;

	if (streq(c->rest, "") && streq(m, "GET")) {
		arr = json_array();
		r = store_read_begin(a->store, &tx);
		if (r >= 0)
			r = store_service_list(tx, service_json_one, arr);
		store_tx_end(tx);
		if (r < 0) {
			json_decref(arr);
			return reply_store_busy_or_internal(ret_body, c->req, r, "list services");
		}
		return reply(ret_body, 200, json_pack("{s:o}", "services", arr));
	}
	if ((status = one_name(c, name, sizeof(name), ret_body)))
		return status;
	if (streq(m, "GET")) {
		r = store_read_begin(a->store, &tx);
		if (r >= 0)
			r = store_service_get(tx, name, &svc);
		store_tx_end(tx);
		if (r == -ENOENT)
			return reply_error(ret_body, 404, "not_found", "no service '%s'", name);
		if (r < 0)
			return reply_store_busy_or_internal(ret_body, c->req, r, "read service");
		status = reply(ret_body, 200, service_json(&svc));
		store_service_clear(&svc);
		return status;
	}
	if (streq(m, "DELETE"))
		return reply_deleted(a, c, accounts_service_delete(&env, name, api_call_commit, &ac), "service", name,
				     ret_body);
	if (!streq(m, "PUT"))
		return reply_error(ret_body, 405, "method_not_allowed", "%s is not allowed on services", m);
	if ((status = parse_body(c->req, fields, &body, ret_body)))
		return status;
	uid = json_object_get(body, "uid");
	roles = json_object_get(body, "roles");
	if (!json_is_integer(uid) || json_integer_value(uid) < 0 || json_integer_value(uid) >= UINT32_MAX)
		return reply_invalid(ret_body, json_pack("{s:s}", "uid", "required: a Unix uid"), "invalid service");
	r = accounts_service_write(&env, name, (uint32_t)json_integer_value(uid), roles, api_call_commit, &ac, &why);
	if (r == -EINVAL && why)
		return reply_invalid(ret_body, json_pack("{s:s}", "roles", why), "invalid roles");
	if (r == -EEXIST)
		return reply_error(ret_body, 409, "conflict", "uid %u is bound to another service",
				   (unsigned)json_integer_value(uid));
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, c->req, r, "write service");
	log_info("service '%s' bound to uid %u by '%s'", name, (unsigned)json_integer_value(uid), c->who.name);
	return reply(ret_body, 200, json_pack("{s:s, s:I, s:O}", "name", name, "uid", json_integer_value(uid), "roles",
					      roles));
}
