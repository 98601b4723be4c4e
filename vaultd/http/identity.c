/* vaultd/identity.c: who is calling (bearer token or service binding) and
 * the roles that decide what they may do. See api_internal.h.
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <time.h>
#include "common/json.h"
#include "common/log.h"
#include "vaultd/http/api_internal.h"
#include "vaultd/core/vault.h"
#include "vaultd/access/authz.h"
#include "vaultd/keys/keyring.h"
#include "vaultd/store/store.h"

#define BEARER "Bearer "

void token_hash_hex(const uint8_t epoch[16], const char *token, size_t n, char ret[65])
{
	uint8_t h[32];

	crypto_generichash(h, sizeof(h), (const uint8_t *)token, n, epoch, 16);
	sodium_bin2hex(ret, 65, h, sizeof(h));
	sodium_memzero(h, sizeof(h));
}

const char *identity_unknown_role(struct store_tx *tx, const json_t *arr)
{
	json_t *v;
	size_t i;

	json_array_foreach(arr, i, v) {
		struct store_role row = {0};
		const char *name = json_string_value(v);

		if (rbac_builtin_find(name))
			continue;
		if (store_role_get(tx, name, &row) < 0)
			return name;
		store_role_clear(&row);
	}
	return NULL;
}

static int resolve_token(struct api *a, struct call *c, const char *token, size_t n, struct store_tx *tx,
			 const struct secret *key, json_t **ret_body)
{
	struct store_token t = {0};
	struct store_user u = {0};
	uint8_t epoch[16];
	int r;

	/* A token of an earlier epoch (before a lock, an unlock or a restart)
	 * hashes to a row that does not exist. */
	vault_epoch_get(a->v, epoch);
	token_hash_hex(epoch, token, n, c->who.token_hash);
	sodium_memzero(epoch, sizeof(epoch));
	r = store_token_get(tx, c->who.token_hash, &t);
	if (r == -ENOENT || (r == 0 && t.expires_at <= time(NULL)))
		return reply_error(ret_body, 401, "unauthorized", "the token is invalid, expired or revoked; log in again");
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, c->req, r, "read token");
	if (t.uid != (uint32_t)c->req->uid) {
		/* A token is bound to the uid that logged in: a copied token is
		 * useless to anyone else on the host. */
		log_warning("token of '%s' (uid %u) presented by uid %u", t.user, t.uid, (unsigned)c->req->uid);
		return reply_error(ret_body, 401, "unauthorized", "the token belongs to another uid");
	}
	r = store_user_get(tx, t.user, &u);
	if (r == -ENOENT)
		return reply_error(ret_body, 401, "unauthorized", "the token is invalid, expired or revoked; log in again");
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, c->req, r, "read user");
	if (key && !authz_user_ok(key, &u)) {
		char what[96];
		snprintf(what, sizeof(what), "user '%s'", u.name);
		store_user_clear(&u);
		authz_note_tamper(a->store, what);
		return reply_error(ret_body, 401, "unauthorized", "the token's user fails the authorization seal; see the "
				   "daemon log");
	}
	c->who.kind = PRINCIPAL_USER;
	snprintf(c->who.name, sizeof(c->who.name), "%s", u.name);
	r = principal_load_roles(a->store, tx, key, u.roles, &c->who);
	store_user_clear(&u);
	if (r < 0)
		return reply_internal(ret_body, c->req, r, "load roles");
	return 0;
}

int identity_resolve(struct api *a, struct call *c, json_t **ret_body)
{
	_cleanup_secret_ struct secret *key = NULL;
	const char *auth = c->req->authorization;
	struct store_service svc = {0};
	struct store_tx *tx = NULL;
	int r, status = 0;

	/* The seal is checked whenever it can be: while unlocked (authz.h). */
	(void)keyring_authz_key(a->keyring, &key);

	r = store_read_begin(a->store, &tx);
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, c->req, r, "begin read");
	if (auth) {
		size_t n = strlen(auth);
		if (n <= strlen(BEARER) || strncmp(auth, BEARER, strlen(BEARER)) != 0) {
			status = reply_error(ret_body, 401, "unauthorized", "Authorization must be 'Bearer <token>'");
			goto out;
		}
		status = resolve_token(a, c, auth + strlen(BEARER), n - strlen(BEARER), tx, key, ret_body);
		goto out;
	}
	r = store_service_get_by_uid(tx, (uint32_t)c->req->uid, &svc);
	if (r == -ENOENT)
		goto out;               /* unbound: kind NONE */
	if (r < 0) {
		status = reply_store_busy_or_internal(ret_body, c->req, r, "read service");
		goto out;
	}
	if (key && !authz_service_ok(key, &svc)) {
		char what[112];
		snprintf(what, sizeof(what), "service '%s' (uid %u)", svc.name, svc.uid);
		store_service_clear(&svc);
		authz_note_tamper(a->store, what);
		status = reply_error(ret_body, 403, "forbidden", "the binding of uid %u fails the authorization seal; "
				     "see the daemon log", (unsigned)c->req->uid);
		goto out;
	}
	c->who.kind = PRINCIPAL_SERVICE;
	snprintf(c->who.name, sizeof(c->who.name), "%s", svc.name);
	r = principal_load_roles(a->store, tx, key, svc.roles, &c->who);
	store_service_clear(&svc);
	if (r < 0)
		status = reply_internal(ret_body, c->req, r, "load roles");
out:
	store_tx_end(tx);
	return status;
}
