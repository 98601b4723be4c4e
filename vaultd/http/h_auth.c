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
#include "vaultd/audit/audit.h"
#include "vaultd/rotate/rotate.h"
#include "vaultd/keys/envelope.h"
#include "vaultd/keys/keyring.h"
#include "vaultd/store/store.h"
#include "vaultd/access/totp.h"

#define TOKEN_BYTES 32
#define AUTH_FAILED "wrong user, passphrase or code"

/* c: the request, whose audit record commits with the new vault; NULL for
 * vaultd --dev, which records a record of the daemon's own instead. */
static int init_vault(struct api *a, const char *admin, const struct secret *pass, json_t **ret_enrolment,
		      struct call *c)
{
	_cleanup_secret_ struct secret *audit_key = NULL, *authz_key = NULL;
	char hashes[TOTP_RECOVERY_CODES][65];
	struct store_user u = {0};
	struct store_tx *tx = NULL;
	json_t *enrolment = NULL;
	char now[32];
	int r;

	if (!name_valid(admin) || auth_passphrase_check(pass))
		return -EINVAL;
	snprintf(u.name, sizeof(u.name), "%s", admin);
	/* Hash before taking the state lock: Argon2 is the slow part. */
	r = auth_hash(&a->cfg.argon2, pass, &u.phc);
	if (r < 0)
		return r;
	u.roles = strdup("[\"admin\"]");
	if (!u.roles) {
		store_user_clear(&u);
		return -ENOMEM;
	}

	pthread_mutex_lock(&a->v->state_mu);
	if (a->v->initialized) {
		r = -EEXIST;
		goto out;
	}
	r = store_write_begin(a->store, &tx);
	if (r < 0)
		goto out;
	r = keyring_init_keys(a->keyring, tx, &audit_key, &authz_key);
	if (r < 0)
		goto out;
	r = account_enrol(a, &u, hashes, &enrolment);
	if (r < 0)
		goto out;
	u.created_at = u.updated_at = time(NULL);
	/* A new vault is sealed from its first row; the genesis anchor
	 * below binds the flag. */
	authz_mac_user(authz_key, &u, u.mac);
	if ((r = store_meta_set(tx, AUDIT_AUTHZ_SEALED_KEY, "1")) < 0 || (r = store_user_put(tx, &u)) < 0 ||
	    (r = store_recovery_set(tx, u.name, (const char(*)[65])hashes, TOTP_RECOVERY_CODES)) < 0)
		goto out;
	snprintf(now, sizeof(now), "%" PRId64, (int64_t)u.created_at);
	r = store_meta_set(tx, "initialized_at", now);
	if (r < 0)
		goto out;
	/* The record commits with the vault, or neither does. */
	r = audit_init_record(a, c, tx, audit_key);
	if (r < 0)
		goto out;
	r = store_write_commit(TAKE_PTR(tx));
	if (r < 0)
		goto out;
	if (c)
		c->audited = true;
	vault_set_initialized(a->v);
	log_info("vault initialised; admin user '%s' (MFA enrolment pending)", admin);
	if (ret_enrolment)
		*ret_enrolment = TAKE_PTR(enrolment);
out:
	store_tx_end(tx);
	pthread_mutex_unlock(&a->v->state_mu);
	json_decref(enrolment);
	sodium_memzero(hashes, sizeof(hashes));
	store_user_clear(&u);
	return r;
}

int api_init_vault(struct api *a, const char *admin, const struct secret *pass)
{
	return init_vault(a, admin, pass, NULL, NULL);
}

int api_init_vault_mfa(struct api *a, const char *admin, const struct secret *pass, json_t **ret_enrolment)
{
	return init_vault(a, admin, pass, ret_enrolment, NULL);
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

/* ---- authentication: passphrase + TOTP or recovery code ---- */

/* Brute-force accounting has three counters per attempt:
 *   "user:<name>@uid:<uid>"  the pair: max_failures in a window locks it out;
 *   "uid:<uid>"              the caller: max_failures in a window, over any
 *                            names, locks that uid out;
 *   "user:<name>"            the name alone: never a lockout (anyone on the
 *                            socket could otherwise lock every admin out),
 *                            only a delay that grows past max_failures and
 *                            that a correct attempt waits out and passes.
 * A caller locked out gets 429 before anything is counted or delayed. */
#define DELAY_FIRST_MS 250
#define DELAY_MAX_MS 2000

static void failure_keys(char keys[3][96], const char *user, uid_t uid)
{
	snprintf(keys[0], 96, "user:%s@uid:%u", user, (unsigned)uid);
	snprintf(keys[1], 96, "uid:%u", (unsigned)uid);
	snprintf(keys[2], 96, "user:%s", user);
}

/* The delay for a name with 'count' failures in its window. */
static unsigned failure_delay_ms(uint32_t count, uint32_t max)
{
	unsigned d = DELAY_FIRST_MS;

	if (count <= max)
		return 0;
	for (uint32_t i = max + 1; i < count && d < DELAY_MAX_MS; i++)
		d *= 2;
	return MIN(d, DELAY_MAX_MS);
}

/* 429 if the pair or the uid is locked out; 0 otherwise, after the name's
 * delay if it has one. */
static int check_lockout(struct api *a, struct call *c, const char *user, json_t **ret_body)
{
	char keys[3][96];
	struct store_failure f;
	struct store_tx *tx = NULL;
	int64_t now = time(NULL), until = 0;
	unsigned delay = 0;
	int r;

	failure_keys(keys, user, c->req->uid);
	r = store_read_begin(a->store, &tx);
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, c->req, r, "begin read");
	for (int i = 0; i < 2; i++)
		if (store_failure_get(tx, keys[i], &f) == 0 && f.locked_until > now && f.locked_until > until)
			until = f.locked_until;
	if (store_failure_get(tx, keys[2], &f) == 0 && now - f.window_start < (int64_t)a->cfg.lockout_seconds)
		delay = failure_delay_ms(f.count, a->cfg.max_failures);
	store_tx_end(tx);
	if (until > now) {
		snprintf(c->detail, sizeof(c->detail), "locked out after repeated failures");
		log_warning("authentication for '%s' from uid %u refused: locked out for %" PRId64 " s", user,
			    (unsigned)c->req->uid, until - now);
		return reply_error(ret_body, 429, "rate_limited",
				   "too many failed attempts; try again in %" PRId64 " seconds", until - now);
	}
	if (delay) {
		struct timespec ts = { .tv_sec = delay / 1000, .tv_nsec = (long)(delay % 1000) * 1000000L };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	return 0;
}

static void record_failure(struct api *a, struct call *c, const char *user, const char *why)
{
	char keys[3][96];
	struct store_failure f = {0};
	struct store_tx *tx = NULL;
	int64_t now = time(NULL);

	snprintf(c->detail, sizeof(c->detail), "%s", why);
	log_warning("authentication failed for user '%s' from uid %u pid %d: %s (request %s)", user,
		    (unsigned)c->req->uid, (int)c->req->pid, why, c->req->request_id);
	if (store_write_begin(a->store, &tx) < 0)
		return;
	/* Unknown names are counted too: otherwise the 429 would tell which
	 * users exist. */
	failure_keys(keys, user, c->req->uid);
	for (int i = 0; i < 3; i++)
		if (store_failure_record(tx, keys[i], now, a->cfg.lockout_seconds,
					 i < 2 ? a->cfg.max_failures : UINT32_MAX, a->cfg.lockout_seconds, &f) < 0)
			goto out;
	(void)store_write_commit(TAKE_PTR(tx));
out:
	store_tx_end(tx);
}

static void clear_failures(struct api *a, struct call *c, const char *user)
{
	char keys[3][96];
	struct store_tx *tx = NULL;

	failure_keys(keys, user, c->req->uid);
	if (store_write_begin(a->store, &tx) < 0)
		return;
	for (int i = 0; i < 3; i++)
		(void)store_failure_clear(tx, keys[i]);
	(void)store_write_commit(TAKE_PTR(tx));
	store_tx_end(tx);
}

/* The second factor. 0, -EACCES (wrong or replayed), or another error. */
/* Checks the second factor and, only if spend, uses it up (the TOTP step,
 * the recovery code). It costs the same whatever the outcome and whether it
 * spends: the HSM unwrap and TOTP check, then a write transaction that
 * commits only when spending, so an answer's timing tells neither whether
 * the passphrase was right nor whether the code was. */
static int check_second_factor(struct api *a, const struct store_user *u, const json_t *totp, const json_t *rc,
			       bool spend)
{
	_cleanup_secret_ struct secret *mfa_key = NULL, *secret = NULL;
	struct store_tx *tx = NULL;
	uint64_t step;
	char hash[65];
	int r, w;

	if (rc) {
		if (totp_recovery_hash(json_string_value(rc), hash) < 0)
			return -EACCES;
		r = store_write_begin(a->store, &tx);
		if (r < 0)
			return r;
		r = store_recovery_consume(tx, u->name, hash);
		if (r >= 0 && spend)
			r = store_write_commit(TAKE_PTR(tx));
		store_tx_end(tx);               /* rolls back when not spending */
		return r == -ENOENT ? -EACCES : r;
	}
	if (!u->mfa_key || !u->totp_blob)
		return -EACCES;
	r = keyring_hsm_unwrap_key(a->keyring, u->mfa_key, u->mfa_key_len, &mfa_key);
	if (r < 0)
		return r;
	r = envelope_open_totp(mfa_key, u->name, u->totp_blob, u->totp_len, &secret);
	if (r < 0)
		return r;
	step = u->totp_last_step;
	r = totp_verify(secret, json_string_value(totp), time(NULL), &step);
	if (r == -EINVAL)
		r = -EACCES;
	/* Record the step atomically: two requests racing with one code get
	 * one success. This also completes a pending enrolment. */
	w = store_write_begin(a->store, &tx);
	if (w < 0)
		return r < 0 ? r : w;
	if (r >= 0)
		r = store_user_use_totp_step(tx, u->name, step);
	if (r >= 0 && spend)
		r = store_write_commit(TAKE_PTR(tx));
	store_tx_end(tx);
	return r;       /* -EALREADY: used before, or by another request first */
}

static int first_user(const struct store_user *u, void *userdata)
{
	char *name = userdata;

	if (!name[0])
		snprintf(name, sizeof(u->name), "%s", u->name);
	return 0;
}

/* A login for a user that does not exist does the second-factor work of one
 * that does (another user's, spending nothing), so that timing tells no
 * more than "wrong". */
static void second_factor_decoy(struct api *a, const json_t *totp, const json_t *rc)
{
	struct store_user u = {0};
	struct store_tx *tx = NULL;
	char name[sizeof(u.name)] = "";
	int r;

	if (store_read_begin(a->store, &tx) < 0)
		return;
	r = store_user_list(tx, first_user, name);
	if (r >= 0 && name[0])
		r = store_user_get(tx, name, &u);
	store_tx_end(tx);
	if (r >= 0 && name[0])
		(void)check_second_factor(a, &u, totp, rc, /* spend= */ false);
	store_user_clear(&u);
}

/* The Argon2 costs in the config changed since this hash was made: redo it
 * now that we hold the passphrase. Best effort: the login succeeds anyway. */
static void upgrade_hash(struct api *a, const char *name, const struct secret *pass)
{
	struct store_user u = {0};
	struct store_tx *tx = NULL;
	char *phc = NULL;
	int r;

	r = auth_hash(&a->cfg.argon2, pass, &phc);
	if (r >= 0)
		r = store_write_begin(a->store, &tx);
	if (r >= 0)
		r = store_user_get(tx, name, &u);
	if (r >= 0) {
		free(u.phc);
		u.phc = TAKE_PTR(phc);
		u.updated_at = time(NULL);
		/* Locked (an unlock in progress): no key to seal it with; the
		 * next login upgrades it. */
		r = account_seal_user(a, &u);
	}
	if (r >= 0)
		r = store_user_put(tx, &u);
	if (r >= 0)
		r = store_write_commit(TAKE_PTR(tx));
	store_tx_end(tx);
	store_user_clear(&u);
	free(phc);
	if (r < 0)
		log_warning_errno(r, "could not upgrade the passphrase hash of '%s'", name);
	else
		log_info("upgraded the passphrase hash of '%s' to the configured Argon2id costs", name);
}

/* Parses {"user", "passphrase", "totp" | "recovery_code"} and checks all
 * three. 0 with *ret_user filled, or writes the reply and returns it. */
static int authenticate(struct api *a, struct call *c, struct store_user *ret_user, json_t **ret_body)
{
	static const char *const fields[] = { "user", "passphrase", "totp", "recovery_code", NULL };
	static const char *const q[] = { NULL };
	_cleanup_json_ json_t *body = NULL;
	_cleanup_secret_ struct secret *pass = NULL;
	struct store_user u = {0};
	struct store_tx *tx = NULL;
	json_t *user, *pp, *totp, *rc;
	char name[PATH_SEGMENT_MAX + 1];
	int r, pr, status;

	if ((r = check_query(c->req, q, ret_body)) || (r = parse_body(c->req, fields, &body, ret_body)))
		return r;
	user = json_object_get(body, "user");
	pp = json_object_get(body, "passphrase");
	totp = json_object_get(body, "totp");
	rc = json_object_get(body, "recovery_code");
	if (!json_is_string(user) || !json_is_string(pp) || (!totp == !rc) || (totp && !json_is_string(totp)) ||
	    (rc && !json_is_string(rc)))
		return reply_invalid(ret_body,
				     json_pack("{s:s, s:s, s:s}", "user", "required", "passphrase", "required", "totp",
					       "required: a 6-digit code, or recovery_code instead"),
				     "invalid credentials request");
	if (!name_valid(json_string_value(user))) {
		snprintf(c->detail, sizeof(c->detail), "invalid user name");
		return reply_error(ret_body, 401, "unauthorized", AUTH_FAILED);
	}
	snprintf(name, sizeof(name), "%s", json_string_value(user));
	/* The claimed name: the record says who was tried, and the result
	 * whether it was proven. */
	snprintf(c->principal, sizeof(c->principal), "user:%s", name);
	if ((status = check_lockout(a, c, name, ret_body)))
		return status;
	if (json_to_secret(pp, &pass) < 0 || pass->len > AUTH_PASSPHRASE_MAX) {
		record_failure(a, c, name, "bad passphrase");
		return reply_error(ret_body, 401, "unauthorized", AUTH_FAILED);
	}

	r = store_read_begin(a->store, &tx);
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, c->req, r, "begin read");
	r = store_user_get(tx, name, &u);
	store_tx_end(tx);
	if (r == -ENOENT) {
		/* The same Argon2 work as a real check: timing does not tell. */
		auth_burn(&a->cfg.argon2, pass);
		second_factor_decoy(a, totp, rc);
		record_failure(a, c, name, "no such user");
		return reply_error(ret_body, 401, "unauthorized", AUTH_FAILED);
	}
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, c->req, r, "read user");
	/* The second factor is checked even after a wrong passphrase (and
	 * then not spent): answering sooner would tell the passphrase was
	 * wrong, a guessing oracle independent of the code. */
	pr = auth_verify(u.phc, pass);
	r = pr;
	if (pr == 0 || pr == -EACCES || pr == -EINVAL)
		r = check_second_factor(a, &u, totp, rc, /* spend= */ pr == 0);
	if (pr == -EACCES || pr == -EINVAL) {
		record_failure(a, c, name, "wrong passphrase");
		store_user_clear(&u);
		return reply_error(ret_body, 401, "unauthorized", AUTH_FAILED);
	}
	if (pr < 0)
		r = pr;
	if (r == -EACCES || r == -EINVAL || r == -EALREADY) {
		record_failure(a, c, name,
			       r == -EALREADY ? "TOTP code reused (each code works once)"
			       : rc	      ? "wrong or used recovery code"
					      : "wrong TOTP code");
		store_user_clear(&u);
		return reply_error(ret_body, 401, "unauthorized", AUTH_FAILED);
	}
	if (r < 0) {
		store_user_clear(&u);
		return reply_hsm_error(ret_body, c->req, r, "authenticate");
	}
	{
		/* Unlocked (a login): the row must carry its seal. A locked
		 * unlock checks it once the keys are there. */
		_cleanup_secret_ struct secret *key = NULL;
		if (keyring_authz_key(a->keyring, &key) >= 0 && !authz_user_ok(key, &u)) {
			char what[96];
			snprintf(what, sizeof(what), "user '%s'", u.name);
			authz_note_tamper(a->store, what);
			snprintf(c->detail, sizeof(c->detail), "the user's row fails its authorization seal");
			store_user_clear(&u);
			return reply_error(ret_body, 401, "unauthorized", AUTH_FAILED);
		}
	}
	clear_failures(a, c, name);
	if (auth_needs_rehash(u.phc, &a->cfg.argon2))
		upgrade_hash(a, name, pass);
	if (rc)
		log_notice("user '%s' used a recovery code (uid %u)", name, (unsigned)c->req->uid);
	*ret_user = u;
	return 0;
}

/* key: the authorization seal's, to check custom roles with; NULL while
 * locked. */
static bool roles_allow_admin(struct api *a, struct store_tx *tx, const struct secret *key, const char *roles_json)
{
	struct principal p = {0};
	bool ok = false;

	if (identity_load_roles(a, tx, key, roles_json, &p) >= 0)
		ok = rbac_allowed(p.roles, p.n_roles, NULL, RBAC_ADMIN);
	principal_clear(&p);
	return ok;
}

/* Right after the keyring unlocked (state_mu held): an older vault's rows
 * are sealed now (once: the flag goes into the audit anchor), then the
 * user who unlocked must hold a sealed row with admin. 0; -EBADMSG if the
 * seal says the rows were changed outside vaultd (reported); -EACCES if
 * the user is no admin after all; storage errors. */
static int unlock_check_seal(struct api *a, const char *user)
{
	_cleanup_secret_ struct secret *key = NULL, *audit_key = NULL;
	struct store_user u = {0};
	struct store_tx *tx = NULL;
	int64_t rows = 0;
	char detail[96], what[96] = "";
	int r, sealed;

	if ((r = keyring_authz_key(a->keyring, &key)) < 0 || (r = keyring_audit_key(a->keyring, &audit_key)) < 0)
		return r;
	r = store_write_begin(a->store, &tx);
	if (r < 0)
		return r;
	sealed = audit_authz_sealed(tx);
	if (sealed == 0) {
		/* Only a vault whose anchor says it was never sealed is sealed
		 * now: the anchor binds the flag, so a seal stripped behind
		 * vaultd's back shows as tampering here, and a log found
		 * tampered with proves nothing about these rows. They stay
		 * unsealed (and refused) until someone restores. */
		r = audit_check_anchor(tx, audit_key);
		if (r > 0) {
			log_error("not sealing the authorization rows of this vault: its audit log shows tampering");
			r = -EBADMSG;
		} else if (r == 0)
			r = authz_seal_all(tx, NULL, key, &rows);
		if (r >= 0)
			r = audit_seal_authz(tx, audit_key);
		snprintf(detail, sizeof(detail), "sealed the %" PRId64 " authorization rows of a vault made before the seal",
			 rows);
		if (r >= 0)
			r = audit_system(a, tx, "authz.seal", NULL, "allowed", detail);
		if (r >= 0) {
			r = store_write_commit(TAKE_PTR(tx));
			if (r >= 0)
				log_notice("%s", detail);
		}
	} else
		r = sealed;
	store_tx_end(tx);
	if (r < 0)
		return r;

	r = store_read_begin(a->store, &tx);
	if (r < 0)
		return r;
	r = store_user_get(tx, user, &u);
	if (r >= 0 && !authz_user_ok(key, &u)) {
		snprintf(what, sizeof(what), "user '%s'", u.name);
		r = -EBADMSG;
	} else if (r >= 0 && !roles_allow_admin(a, tx, key, u.roles))
		r = -EACCES;
	store_tx_end(tx);
	store_user_clear(&u);
	if (r == -EBADMSG && what[0])
		authz_note_tamper(a->store, what);
	return r;
}

int api_unlock_vault(struct api *a, const char *user, const struct secret *pass)
{
	struct store_user u = {0};
	struct store_tx *tx = NULL;
	bool is_admin;
	int r;

	/* vaultd --dev only: the dev process holds the passphrase and the TOTP
	 * secret anyway, so it unlocks with the passphrase alone. */
	if (!api_is_initialized(a))
		return -ENOENT;
	r = store_read_begin(a->store, &tx);
	if (r < 0)
		return r;
	r = store_user_get(tx, user, &u);
	is_admin = r == 0 && roles_allow_admin(a, tx, NULL, u.roles);
	store_tx_end(tx);
	if (r < 0)
		return r == -ENOENT ? -EACCES : r;
	r = auth_verify(u.phc, pass);
	store_user_clear(&u);
	if (r < 0 || !is_admin)
		return -EACCES;
	pthread_mutex_lock(&a->v->state_mu);
	r = keyring_unlock(a->keyring, a->store);
	if (r >= 0 && (r = unlock_check_seal(a, user)) < 0)
		keyring_lock(a->keyring);
	if (r >= 0)
		vault_epoch_renew(a->v);
	pthread_mutex_unlock(&a->v->state_mu);
	if (r >= 0)
		rotator_kick(a->rot, true);
	return r;
}

int h_unlock(struct api *a, struct call *c, json_t **ret_body)
{
	struct store_user u = {0};
	struct store_tx *tx = NULL;
	bool is_admin = false;
	int r, status = 0, seal = 0;

	if (!api_is_initialized(a))
		return reply_error(ret_body, 503, "uninitialized", "the vault is not initialized; run 'vaultctl init'");
	if ((r = authenticate(a, c, &u, ret_body)))
		return r;
	if (store_read_begin(a->store, &tx) >= 0) {
		is_admin = roles_allow_admin(a, tx, NULL, u.roles);
		store_tx_end(tx);
	}
	if (!is_admin) {
		log_warning("unlock refused: user '%s' lacks the admin capability", u.name);
		store_user_clear(&u);
		return reply_error(ret_body, 403, "forbidden", "unlocking needs the admin capability");
	}
	pthread_mutex_lock(&a->v->state_mu);
	r = keyring_unlock(a->keyring, a->store);
	/* The rows that let this user unlock could not be checked while
	 * locked: now they are, or the unlock is undone. */
	if (r >= 0 && (seal = unlock_check_seal(a, u.name)) < 0)
		keyring_lock(a->keyring);
	else if (r >= 0) {
		/* Recorded before anyone can use it, or undone. */
		vault_epoch_renew(a->v);
		if ((status = audit_effect(a, c, ret_body))) {
			keyring_lock(a->keyring);
			vault_epoch_renew(a->v);
		}
	}
	pthread_mutex_unlock(&a->v->state_mu);
	if (r < 0) {
		store_user_clear(&u);
		return reply_hsm_error(ret_body, c->req, r, "unlock");
	}
	if (seal < 0) {
		store_user_clear(&u);
		if (seal == -EBADMSG) {
			snprintf(c->detail, sizeof(c->detail), "authorization rows fail their seal");
			return reply_error(ret_body, 401, "unauthorized", "the user's authorization rows fail their seal "
					   "(changed outside vaultd); the vault stays locked; see the daemon log");
		}
		if (seal == -EACCES) {
			snprintf(c->detail, sizeof(c->detail), "no sealed admin role");
			return reply_error(ret_body, 403, "forbidden", "unlocking needs the admin capability");
		}
		return reply_store_busy_or_internal(ret_body, c->req, seal, "check the authorization seal");
	}
	if (status) {
		log_warning("unlock by '%s' undone: its audit record could not be written", u.name);
		store_user_clear(&u);
		return status;
	}
	log_info("vault unlocked by '%s' (uid %u)", u.name, (unsigned)c->req->uid);
	/* Resumes interrupted rotations and retires proven-obsolete HSM keys. */
	rotator_kick(a->rot, true);
	store_user_clear(&u);
	return reply(ret_body, 200, json_pack("{s:b}", "locked", 0));
}

int h_login(struct api *a, struct call *c, json_t **ret_body)
{
	uint8_t raw[TOKEN_BYTES], epoch[16], now_epoch[16];
	char token[2 * TOKEN_BYTES + 8];
	struct store_token t = {0};
	struct store_user u = {0};
	struct store_tx *tx = NULL;
	json_t *roles;
	int r;

	/* The epoch of the unlock this login happens under: a lock (or a
	 * new unlock) while it runs makes the token worthless. */
	vault_epoch_get(a->v, epoch);
	if ((r = authenticate(a, c, &u, ret_body)))
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
	randombytes_buf(raw, sizeof(raw));
	memcpy(token, "vt.", 3);
	sodium_bin2hex(token + 3, sizeof(token) - 3, raw, sizeof(raw));
	sodium_memzero(raw, sizeof(raw));
	token_hash_hex(epoch, token, strlen(token), t.hash);
	snprintf(t.user, sizeof(t.user), "%s", u.name);
	t.uid = (uint32_t)c->req->uid;
	t.created_at = time(NULL);
	t.expires_at = t.created_at + a->cfg.session_ttl;
	r = store_write_begin(a->store, &tx);
	if (r >= 0) {
		/* Re-checked inside the transaction: a lock that ran since
		 * purged the tokens before this one would be stored. */
		vault_epoch_get(a->v, now_epoch);
		if (!keyring_is_unlocked(a->keyring) || sodium_memcmp(epoch, now_epoch, sizeof(epoch)) != 0)
			r = -EACCES;
	}
	if (r >= 0) {
		(void)store_token_purge_expired(tx, t.created_at);
		r = store_token_put(tx, &t);
	}
	if (r >= 0)
		r = commit_audited(a, c, &tx);
	store_tx_end(tx);
	sodium_memzero(epoch, sizeof(epoch));
	if (r < 0) {
		sodium_memzero(token, sizeof(token));
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
					   json_time(t.expires_at), "user", u.name, "roles",
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
	if ((r = check_lockout(a, c, c->who.name, ret_body)))
		return r;
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
		record_failure(a, c, c->who.name, "wrong current passphrase");
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

