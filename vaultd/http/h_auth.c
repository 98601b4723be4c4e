/* vaultd/http/h_auth.c: init, unlock, lock-out accounting, login, logout,
 * self and passphrase changes (ARCHITECTURE.md sections 3 and 4); the
 * accounts themselves are h_accounts.c's.
 *
 * MFA scheme: each user has a random 32-byte MFA key, wrapped by the HSM key
 * (like the root key), and a TOTP secret sealed under it (envelope kind
 * TOTP). Unlock needs the TOTP secret while the vault is locked, and the HSM
 * is usable then; a stolen database without the token yields neither. An
 * admin's MFA reset draws a new key and secret for the user, shown once to
 * the admin, and leaves the user pending until a first valid code.
 */
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "common/encoding.h"
#include "common/json.h"
#include "common/log.h"
#include "vaultd/http/api_internal.h"
#include "vaultd/core/vault.h"
#include "vaultd/access/authz.h"
#include "vaultd/access/login.h"
#include "vaultd/audit/audit.h"
#include "vaultd/rotate/rotate.h"
#include "vaultd/keys/envelope.h"
#include "vaultd/keys/keyring.h"
#include "vaultd/store/store.h"
#include "vaultd/access/totp.h"

#define TOKEN_BYTES 32
#define AUTH_FAILED "wrong user, passphrase or code"

/* init's record is the request's: it commits with the new vault. */
static int record_init(void *userdata, struct store_tx *tx, const struct secret *audit_key)
{
	struct api_call *ac = userdata;

	return audit_init_record(ac->a, ac->c, tx, audit_key);
}

static int init_vault(struct api *a, const char *admin, const struct secret *pass, json_t **ret_enrolment,
		      struct call *c)
{
	struct api_call ac = { .a = a, .c = c };
	int r;

	r = vault_init(a->v, &a->cfg.argon2, admin, pass, c ? record_init : NULL, &ac, ret_enrolment);
	if (r >= 0 && c)
		c->audited = true;
	return r;
}

int h_init(struct api *a, struct call *c, json_t **ret_body)
{
	static const char *const fields[] = { "admin", "passphrase", NULL };
	static const char *const q[] = { NULL };
	_cleanup_json_ json_t *body = NULL;
	_cleanup_secret_ struct secret *pass = NULL;
	json_t *admin, *pp, *enrolment = NULL;
	const char *why;
	int r;

	/* Init is for whoever runs the daemon: nobody else may claim the vault. */
	if (c->req->uid != 0 && c->req->uid != a->cfg.daemon_uid)
		return reply_error(ret_body, 403, "forbidden", "only root or the daemon's uid may initialise the vault");
	if ((r = check_query(c->req, q, ret_body)) || (r = parse_body(c->req, fields, &body, ret_body)))
		return r;
	admin = json_object_get(body, "admin");
	pp = json_object_get(body, "passphrase");
	if (!json_is_string(admin) || !name_valid(json_string_value(admin)))
		return reply_invalid(ret_body,
				     json_pack("{s:s}", "admin",
					       "required: 1-64 characters of [A-Za-z0-9._-], starting with a letter or digit"),
				     "invalid init request");
	if (!json_is_string(pp) || json_to_secret(pp, &pass) < 0)
		return reply_invalid(ret_body, json_pack("{s:s}", "passphrase", "required"), "invalid init request");
	why = auth_passphrase_check(pass);
	if (why)
		return reply_invalid(ret_body, json_pack("{s:s}", "passphrase", why), "invalid init request");

	snprintf(c->detail, sizeof(c->detail), "admin '%s'", json_string_value(admin));
	r = init_vault(a, json_string_value(admin), pass, &enrolment, c);
	if (r == -EEXIST)
		return reply_error(ret_body, 409, "conflict", "the vault is already initialized");
	if (r < 0)
		return reply_hsm_error(ret_body, c->req, r, "init");
	json_object_set_new(enrolment, "initialized", json_true());
	json_object_set_new(enrolment, "admin", json_string(json_string_value(admin)));
	json_object_set_new(enrolment, "locked", json_true());
	return reply(ret_body, 200, enrolment);
}

/* ---- authentication: the HTTP side of access/login.h ---- */

static struct login_env login_env_of(struct api *a)
{
	return (struct login_env){ .store = a->store, .keyring = a->keyring, .argon2 = a->cfg.argon2,
				   .max_failures = a->cfg.max_failures, .lockout_seconds = a->cfg.lockout_seconds };
}

/* Parses {"user", "passphrase", "totp" | "recovery_code"} and checks all
 * three (login_check()). 0 with *ret_user filled, or writes the reply and
 * returns it. */
static int authenticate(struct api *a, struct call *c, struct store_user *ret_user, bool *ret_session,
			json_t **ret_body)
{
	static const char *const fields[] = { "user", "passphrase", "totp", "recovery_code", "session", NULL };
	static const char *const q[] = { NULL };
	_cleanup_json_ json_t *body = NULL;
	_cleanup_secret_ struct secret *pass = NULL;
	const struct login_env env = login_env_of(a);
	struct login_refusal why = {0};
	struct login_attempt at = { .uid = c->req->uid, .pid = c->req->pid, .request_id = c->req->request_id };
	json_t *user, *pp, *totp, *rc;
	char name[PATH_SEGMENT_MAX + 1];
	int r;

	if ((r = check_query(c->req, q, ret_body)) || (r = parse_body(c->req, fields, &body, ret_body)))
		return r;
	user = json_object_get(body, "user");
	pp = json_object_get(body, "passphrase");
	totp = json_object_get(body, "totp");
	rc = json_object_get(body, "recovery_code");
	/* unlock only: also log in, with the same code (a TOTP step is spent
	 * once, so a login right after would need the next one). */
	if (json_object_get(body, "session") && (!ret_session || !json_is_boolean(json_object_get(body, "session"))))
		return reply_invalid(ret_body,
				     json_pack("{s:s}", "session",
					       ret_session ? "must be true or false" : "only unlock takes it"),
				     "invalid credentials request");
	if (ret_session)
		*ret_session = json_is_true(json_object_get(body, "session"));
	if (!json_is_string(user) || !json_is_string(pp) || (!totp == !rc) || (totp && !json_is_string(totp)) ||
	    (rc && !json_is_string(rc)))
		return reply_invalid(ret_body,
				     json_pack("{s:s, s:s, s:s}", "user", "required", "passphrase", "required", "totp",
					       "required: a 6-digit code, or recovery_code instead"),
				     "invalid credentials request");
	if (!name_valid(json_string_value(user))) {
		snprintf(c->detail, sizeof(c->detail), "invalid user name");
		c->auth_failed = true;
		return reply_error(ret_body, 401, "unauthorized", AUTH_FAILED);
	}
	snprintf(name, sizeof(name), "%s", json_string_value(user));
	/* The claimed name: the record says who was tried, and the result
	 * whether it was proven. */
	snprintf(c->principal, sizeof(c->principal), "user:%s", name);
	(void)json_to_secret(pp, &pass);        /* NULL (empty): login_check() refuses it */
	at.user = name;
	at.passphrase = pass;
	at.totp = totp ? json_string_value(totp) : NULL;
	at.recovery_code = rc ? json_string_value(rc) : NULL;
	r = login_check(&env, &at, ret_user, &why);
	if (r < 0 && why.reason[0])
		snprintf(c->detail, sizeof(c->detail), "%s", why.reason);
	if (r == -EUSERS)
		return reply_error(ret_body, 429, "rate_limited", "too many failed attempts; try again in %" PRId64
				   " seconds", why.retry_after);
	if (r == -EACCES || r == -EBADMSG) {
		c->auth_failed = true;
		return reply_error(ret_body, 401, "unauthorized", AUTH_FAILED);
	}
	if (r == -EALREADY) {
		c->auth_failed = true;
		return reply_error(ret_body, 401, "code_reused",
				   "this TOTP code was already used (each code works once); wait for the next one");
	}
	if (r == -EBUSY)
		return reply_store_busy_or_internal(ret_body, c->req, r, "authenticate");
	if (r < 0)
		return reply_hsm_error(ret_body, c->req, r, "authenticate");
	return 0;
}

struct unlock_record {
	struct api *a;
	struct call *c;
	json_t **ret_body;
	int status;
};

/* The unlock's record, before anyone can use the keys (vault_unlock()). */
static int record_unlock(void *userdata)
{
	struct unlock_record *u = userdata;

	u->status = audit_effect(u->a, u->c, u->ret_body);
	return u->status ? -EIO : 0;
}

static int issue_session(struct api *a, struct call *c, const struct store_user *u, const uint8_t epoch[16],
			 bool audited, char *token, size_t size, int64_t *ret_expires);

/* The unlock succeeded and its record is written: the session that comes
 * with it (the unlock's record says "with a session"). If it cannot be
 * stored the vault stays unlocked and the reply says how to log in. */
static int unlocked_with_session(struct api *a, struct call *c, struct store_user *u, json_t **ret_body)
{
	char token[2 * TOKEN_BYTES + 8];
	uint8_t epoch[16];
	int64_t expires = 0;
	json_t *roles;
	int r;

	log_info("vault unlocked by '%s' (uid %u), with a session", u->name, (unsigned)c->req->uid);
	vault_epoch_get(a->v, epoch);
	r = issue_session(a, c, u, epoch, false, token, sizeof(token), &expires);
	sodium_memzero(epoch, sizeof(epoch));
	if (r < 0) {
		log_error_errno(r, "vault unlocked by '%s', but its session could not be stored (request %s)", u->name,
				c->req->request_id);
		store_user_clear(u);
		return reply(ret_body, 200, json_pack("{s:b, s:n, s:s}", "locked", r == -EACCES, "token", "message",
						      "unlocked, but no session could be stored; run 'vaultctl login'"));
	}
	roles = json_loads(u->roles, 0, NULL);
	r = reply(ret_body, 200, json_pack("{s:b, s:s, s:o, s:s, s:o}", "locked", 0, "token", token, "expires_at",
					   json_time(expires), "user", u->name, "roles", roles ? roles : json_array()));
	sodium_memzero(token, sizeof(token));
	store_user_clear(u);
	return r;
}

int h_unlock(struct api *a, struct call *c, json_t **ret_body)
{
	struct unlock_record rec = { .a = a, .c = c, .ret_body = ret_body };
	struct store_user u = {0};
	bool session = false;
	int r;

	if (!api_is_initialized(a))
		return reply_error(ret_body, 503, "uninitialized", "the vault is not initialized; run 'vaultctl init'");
	if ((r = authenticate(a, c, &u, &session, ret_body)))
		return r;
	if (session)
		snprintf(c->detail, sizeof(c->detail), "with a session");
	if (!vault_user_may_unlock(a->v, &u)) {
		log_warning("unlock refused: user '%s' lacks the admin capability", u.name);
		store_user_clear(&u);
		return reply_error(ret_body, 403, "forbidden", "unlocking needs the admin capability");
	}
	r = vault_unlock(a->v, u.name, record_unlock, &rec);
	if (r == -ECANCELED) {
		log_warning("unlock by '%s' undone: its audit record could not be written", u.name);
		store_user_clear(&u);
		return rec.status;
	}
	if (r >= 0 && session)
		return unlocked_with_session(a, c, &u, ret_body);
	store_user_clear(&u);
	if (r == -EBADMSG) {
		snprintf(c->detail, sizeof(c->detail), "authorization rows fail their seal");
		return reply_error(ret_body, 401, "unauthorized", "the user's authorization rows fail their seal "
				   "(changed outside vaultd); the vault stays locked; see the daemon log");
	}
	if (r == -EACCES) {
		snprintf(c->detail, sizeof(c->detail), "no sealed admin role");
		return reply_error(ret_body, 403, "forbidden", "unlocking needs the admin capability");
	}
	if (r == -EBUSY)
		return reply_store_busy_or_internal(ret_body, c->req, r, "check the authorization seal");
	if (r < 0)
		return reply_hsm_error(ret_body, c->req, r, "unlock");
	log_info("vault unlocked by '%s' (uid %u)", u.name, (unsigned)c->req->uid);
	return reply(ret_body, 200, json_pack("{s:b}", "locked", 0));
}

/* Stores a new session token for u, made under epoch (the unlock it
 * belongs to), into token (NUL-terminated) and *ret_expires. The login's
 * record commits with it when audited; unlock has written its own. 0,
 * -EACCES if the vault was locked (or unlocked again) meanwhile, or a
 * storage error; the token is wiped on failure. */
static int issue_session(struct api *a, struct call *c, const struct store_user *u, const uint8_t epoch[16],
			 bool audited, char *token, size_t size, int64_t *ret_expires)
{
	uint8_t raw[TOKEN_BYTES], now_epoch[16];
	struct store_token t = {0};
	struct store_tx *tx = NULL;
	int r;

	if (size < 2 * TOKEN_BYTES + 4)
		return -EINVAL;
	randombytes_buf(raw, sizeof(raw));
	memcpy(token, "vt.", 3);
	sodium_bin2hex(token + 3, size - 3, raw, sizeof(raw));
	sodium_memzero(raw, sizeof(raw));
	token_hash_hex(epoch, token, strlen(token), t.hash);
	snprintf(t.user, sizeof(t.user), "%s", u->name);
	t.uid = (uint32_t)c->req->uid;
	t.created_at = time(NULL);
	t.expires_at = t.created_at + a->cfg.session_ttl;
	r = store_write_begin(a->store, &tx);
	if (r >= 0) {
		/* Re-checked inside the transaction: a lock that ran since
		 * purged the tokens before this one would be stored. */
		vault_epoch_get(a->v, now_epoch);
		if (!keyring_is_unlocked(a->keyring) || sodium_memcmp(epoch, now_epoch, 16) != 0)
			r = -EACCES;
		sodium_memzero(now_epoch, sizeof(now_epoch));
	}
	if (r >= 0) {
		(void)store_token_purge_expired(tx, t.created_at);
		r = store_token_put(tx, &t);
	}
	if (r >= 0)
		r = audited ? commit_audited(a, c, &tx) : store_write_commit(TAKE_PTR(tx));
	store_tx_end(tx);
	if (r < 0)
		sodium_memzero(token, size);
	else
		*ret_expires = t.expires_at;
	return r;
}

int h_login(struct api *a, struct call *c, json_t **ret_body)
{
	uint8_t epoch[16];
	char token[2 * TOKEN_BYTES + 8];
	struct store_user u = {0};
	int64_t expires = 0;
	json_t *roles;
	int r;

	/* The epoch of the unlock this login happens under: a lock (or a
	 * new unlock) while it runs makes the token worthless. */
	vault_epoch_get(a->v, epoch);
	if ((r = authenticate(a, c, &u, NULL, ret_body)))
		return r;
#ifdef VAULTD_FAULT_INJECTION
	{
		/* Test builds: a login that takes its time between checking the
		 * credentials and storing its token, so a test can lock the
		 * vault in between. */
		const char *d = getenv("VAULTD_TEST_LOGIN_DELAY_MS");
		long ms = d ? strtol(d, NULL, 10) : 0;
		if (ms > 0 && ms <= 10000)
			nanosleep(&(struct timespec){ .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L }, NULL);
	}
#endif
	r = issue_session(a, c, &u, epoch, true, token, sizeof(token), &expires);
	sodium_memzero(epoch, sizeof(epoch));
	if (r < 0) {
		store_user_clear(&u);
		if (r == -EACCES) {
			snprintf(c->detail, sizeof(c->detail), "the vault was locked while logging in");
			return reply_error(ret_body, 503, "locked", "the vault was locked; run 'vaultctl unlock'");
		}
		return reply_store_busy_or_internal(ret_body, c->req, r, "store token");
	}
	roles = json_loads(u.roles, 0, NULL);
	log_info("user '%s' logged in from uid %u", u.name, (unsigned)c->req->uid);
	r = reply(ret_body, 200, json_pack("{s:s, s:o, s:s, s:o}", "token", token, "expires_at",
					   json_time(expires), "user", u.name, "roles",
					   roles ? roles : json_array()));
	sodium_memzero(token, sizeof(token));
	store_user_clear(&u);
	return r;
}

int h_logout(struct api *a, struct call *c, json_t **ret_body)
{
	struct store_tx *tx = NULL;
	int r;

	if (c->who.kind != PRINCIPAL_USER)
		return reply_error(ret_body, 401, "unauthorized", "logout needs the bearer token to revoke");
	r = store_write_begin(a->store, &tx);
	if (r >= 0)
		r = store_token_delete(tx, c->who.token_hash);
	if (r >= 0)
		r = commit_audited(a, c, &tx);
	store_tx_end(tx);
	if (r < 0 && r != -ENOENT)
		return reply_store_busy_or_internal(ret_body, c->req, r, "revoke token");
	log_info("user '%s' logged out", c->who.name);
	return reply(ret_body, 200, json_pack("{s:b}", "logged_out", 1));
}

int h_self(struct api *a, struct call *c, json_t **ret_body)
{
	static const char *const q[] = { NULL };
	int r;

	if ((r = check_query(c->req, q, ret_body)))
		return r;
	return reply(ret_body, 200,
		     json_pack("{s:s, s:s, s:O, s:i}", "kind", c->who.kind == PRINCIPAL_USER ? "user" : "service",
			       "name", c->who.name, "roles", c->who.role_names ? c->who.role_names : json_array(),
			       "uid", (json_int_t)c->req->uid));
}

int h_passphrase(struct api *a, struct call *c, json_t **ret_body)
{
	static const char *const fields[] = { "current", "new", NULL };
	_cleanup_json_ json_t *body = NULL;
	_cleanup_secret_ struct secret *cur = NULL, *new_pass = NULL;
	struct store_user u = {0};
	struct store_tx *tx = NULL;
	const char *why;
	char *phc = NULL;
	int r;

	if (c->who.kind != PRINCIPAL_USER)
		return reply_error(ret_body, 403, "forbidden", "only a logged-in user can change their passphrase");
	if ((r = parse_body(c->req, fields, &body, ret_body)))
		return r;
	if (!json_is_string(json_object_get(body, "current")) || !json_is_string(json_object_get(body, "new")) ||
	    json_to_secret(json_object_get(body, "current"), &cur) < 0 ||
	    json_to_secret(json_object_get(body, "new"), &new_pass) < 0)
		return reply_invalid(ret_body, json_pack("{s:s, s:s}", "current", "required", "new", "required"),
				     "invalid passphrase change");
	if ((why = auth_passphrase_check(new_pass)))
		return reply_invalid(ret_body, json_pack("{s:s}", "new", why), "invalid passphrase change");
	{
		const struct login_env env = login_env_of(a);
		int64_t retry = 0;
		r = login_locked_out(&env, c->who.name, c->req->uid, &retry);
		if (r == -EUSERS) {
			snprintf(c->detail, sizeof(c->detail), "locked out after repeated failures");
			return reply_error(ret_body, 429, "rate_limited",
					   "too many failed attempts; try again in %" PRId64 " seconds", retry);
		}
		if (r < 0)
			return reply_store_busy_or_internal(ret_body, c->req, r, "check lockout");
	}
	r = store_read_begin(a->store, &tx);
	if (r >= 0) {
		r = store_user_get(tx, c->who.name, &u);
		store_tx_end(tx);
		tx = NULL;
	}
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, c->req, r, "read user");
	if (auth_verify(u.phc, cur) < 0) {
		store_user_clear(&u);
		const struct login_env env = login_env_of(a);
		snprintf(c->detail, sizeof(c->detail), "wrong current passphrase");
		login_failed(&env, c->who.name, c->req->uid, c->req->pid, c->req->request_id, c->detail);
		c->auth_failed = true;
		return reply_error(ret_body, 401, "unauthorized", "the current passphrase is wrong");
	}
	r = auth_hash(&a->cfg.argon2, new_pass, &phc);
	store_user_clear(&u);
	/* Re-read inside the write: a login since the check may have moved
	 * totp_last_step, which must not go back. */
	if (r >= 0)
		r = store_write_begin(a->store, &tx);
	if (r >= 0)
		r = store_user_get(tx, c->who.name, &u);
	if (r >= 0) {
		free(u.phc);
		u.phc = TAKE_PTR(phc);
		u.updated_at = time(NULL);
		r = account_seal_user(a, &u);
	}
	if (r >= 0)
		r = store_user_put(tx, &u);
	free(phc);
	/* Every other session of the user ends with the old passphrase. */
	if (r >= 0 && (r = store_token_delete_user_except(tx, c->who.name, c->who.token_hash)) > 0)
		r = 0;
	if (r >= 0)
		r = commit_audited(a, c, &tx);
	store_tx_end(tx);
	store_user_clear(&u);
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, c->req, r, "change passphrase");
	log_info("user '%s' changed their passphrase", c->who.name);
	return reply(ret_body, 200, json_pack("{s:b}", "changed", 1));
}

