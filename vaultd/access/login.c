/* vaultd/access/login.c: see login.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/log.h"
#include "vaultd/access/authz.h"
#include "vaultd/access/login.h"
#include "vaultd/access/totp.h"
#include "vaultd/keys/envelope.h"

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

int login_locked_out(const struct login_env *env, const char *user, uid_t uid, int64_t *ret_retry_after)
{
	char keys[3][96];
	struct store_failure f;
	struct store_tx *tx = NULL;
	int64_t now = time(NULL), until = 0;
	unsigned delay = 0;
	int r;

	failure_keys(keys, user, uid);
	r = store_read_begin(env->store, &tx);
	if (r < 0)
		return r;
	for (int i = 0; i < 2; i++)
		if (store_failure_get(tx, keys[i], &f) == 0 && f.locked_until > now && f.locked_until > until)
			until = f.locked_until;
	if (store_failure_get(tx, keys[2], &f) == 0 && now - f.window_start < (int64_t)env->lockout_seconds)
		delay = failure_delay_ms(f.count, env->max_failures);
	store_tx_end(tx);
	if (until > now) {
		log_warning("authentication for '%s' from uid %u refused: locked out for %" PRId64 " s", user,
			    (unsigned)uid, until - now);
		*ret_retry_after = until - now;
		return -EUSERS;
	}
	if (delay) {
		struct timespec ts = { .tv_sec = delay / 1000, .tv_nsec = (long)(delay % 1000) * 1000000L };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	return 0;
}

void login_failed(const struct login_env *env, const char *user, uid_t uid, pid_t pid, const char *request_id,
		  const char *why)
{
	char keys[3][96];
	struct store_failure f = {0};
	struct store_tx *tx = NULL;
	int64_t now = time(NULL);

	log_warning("authentication failed for user '%s' from uid %u pid %d: %s (request %s)", user, (unsigned)uid,
		    (int)pid, why, request_id ? request_id : "-");
	if (store_write_begin(env->store, &tx) < 0)
		return;
	/* Unknown names are counted too: otherwise the 429 would tell which
	 * users exist. */
	failure_keys(keys, user, uid);
	for (int i = 0; i < 3; i++)
		if (store_failure_record(tx, keys[i], now, env->lockout_seconds, i < 2 ? env->max_failures : UINT32_MAX,
					 env->lockout_seconds, &f) < 0)
			goto out;
	(void)store_write_commit(TAKE_PTR(tx));
out:
	store_tx_end(tx);
}

static void cleared(const struct login_env *env, const char *user, uid_t uid)
{
	char keys[3][96];
	struct store_tx *tx = NULL;

	failure_keys(keys, user, uid);
	if (store_write_begin(env->store, &tx) < 0)
		return;
	for (int i = 0; i < 3; i++)
		(void)store_failure_clear(tx, keys[i]);
	(void)store_write_commit(TAKE_PTR(tx));
	store_tx_end(tx);
}

/* Checks the second factor and, only if spend, uses it up (the TOTP step,
 * the recovery code). It costs the same whatever the outcome and whether it
 * spends: the HSM unwrap and TOTP check, then a write transaction that
 * commits only when spending. 0, -EACCES (wrong), -EALREADY (replayed), or
 * another error. */
static int check_second_factor(const struct login_env *env, const struct store_user *u, const char *totp,
			       const char *rc, bool spend)
{
	_cleanup_secret_ struct secret *mfa_key = NULL, *secret = NULL;
	struct store_tx *tx = NULL;
	uint64_t step;
	char hash[65];
	int r, w;

	if (rc) {
		if (totp_recovery_hash(rc, hash) < 0)
			return -EACCES;
		r = store_write_begin(env->store, &tx);
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
	r = keyring_hsm_unwrap_key(env->keyring, u->mfa_key, u->mfa_key_len, &mfa_key);
	if (r < 0)
		return r;
	r = envelope_open_totp(mfa_key, u->name, u->totp_blob, u->totp_len, &secret);
	if (r < 0)
		return r;
	step = u->totp_last_step;
	r = totp_verify(secret, totp, time(NULL), &step);
	if (r == -EINVAL)
		r = -EACCES;
	/* Record the step atomically: two requests racing with one code get
	 * one success. This also completes a pending enrolment. */
	w = store_write_begin(env->store, &tx);
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
 * that does (another user's, spending nothing). */
static void second_factor_decoy(const struct login_env *env, const char *totp, const char *rc)
{
	struct store_user u = {0};
	struct store_tx *tx = NULL;
	char name[sizeof(u.name)] = "";
	int r;

	if (store_read_begin(env->store, &tx) < 0)
		return;
	r = store_user_list(tx, first_user, name);
	if (r >= 0 && name[0])
		r = store_user_get(tx, name, &u);
	store_tx_end(tx);
	if (r >= 0 && name[0])
		(void)check_second_factor(env, &u, totp, rc, /* spend= */ false);
	store_user_clear(&u);
}

/* The Argon2 costs in the config changed since this hash was made: redo it
 * now that we hold the passphrase, sealed (authz.h). Best effort: the login
 * succeeds anyway; while locked (an unlock) there is no key to seal it with,
 * and the next login upgrades it. */
static void upgrade_hash(const struct login_env *env, const char *name, const struct secret *pass)
{
	_cleanup_secret_ struct secret *key = NULL;
	struct store_user u = {0};
	struct store_tx *tx = NULL;
	char *phc = NULL;
	int r;

	if (keyring_authz_key(env->keyring, &key) < 0)
		return;
	r = auth_hash(&env->argon2, pass, &phc);
	if (r >= 0)
		r = store_write_begin(env->store, &tx);
	if (r >= 0)
		r = store_user_get(tx, name, &u);
	if (r >= 0) {
		free(u.phc);
		u.phc = TAKE_PTR(phc);
		u.updated_at = time(NULL);
		authz_mac_user(key, &u, u.mac);
		r = store_user_put(tx, &u);
	}
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

static int refuse(const struct login_env *env, const struct login_attempt *a, struct login_refusal *out,
		  const char *why)
{
	snprintf(out->reason, sizeof(out->reason), "%s", why);
	login_failed(env, a->user, a->uid, a->pid, a->request_id, why);
	return -EACCES;
}

int login_check(const struct login_env *env, const struct login_attempt *a, struct store_user *ret_user,
		struct login_refusal *ret_refusal)
{
	struct login_refusal out = {0};
	struct store_user u = {0};
	struct store_tx *tx = NULL;
	int r, pr;

	r = login_locked_out(env, a->user, a->uid, &out.retry_after);
	if (r == -EUSERS)
		snprintf(out.reason, sizeof(out.reason), "locked out after repeated failures");
	if (r < 0)
		goto out;
	if (!a->passphrase || a->passphrase->len > AUTH_PASSPHRASE_MAX || !a->totp == !a->recovery_code) {
		r = refuse(env, a, &out, "bad passphrase");
		goto out;
	}
	r = store_read_begin(env->store, &tx);
	if (r < 0)
		goto out;
	r = store_user_get(tx, a->user, &u);
	store_tx_end(tx);
	if (r == -ENOENT) {
		/* The same Argon2 work as a real check: timing does not tell. */
		auth_burn(&env->argon2, a->passphrase);
		second_factor_decoy(env, a->totp, a->recovery_code);
		r = refuse(env, a, &out, "no such user");
		goto out;
	}
	if (r < 0)
		goto out;
	/* The second factor is checked even after a wrong passphrase (and
	 * then not spent): answering sooner would tell the passphrase was
	 * wrong, a guessing oracle independent of the code. */
	pr = auth_verify(u.phc, a->passphrase);
	r = pr;
	if (pr == 0 || pr == -EACCES || pr == -EINVAL)
		r = check_second_factor(env, &u, a->totp, a->recovery_code, /* spend= */ pr == 0);
	/* A replayed TOTP code is told apart, and before the passphrase's
	 * verdict: the answer is then the same whether the passphrase was
	 * right or wrong, so it is no passphrase oracle. It tells only that
	 * this code was this user's and is spent, which whoever holds a code
	 * seen in use already knows. It still counts as a failure. */
	if (r == -EALREADY && (pr == 0 || pr == -EACCES || pr == -EINVAL)) {
		(void)refuse(env, a, &out, "TOTP code reused (each code works once)");
		r = -EALREADY;
		goto out;
	}
	if (pr == -EACCES || pr == -EINVAL) {
		r = refuse(env, a, &out, "wrong passphrase");
		goto out;
	}
	if (pr < 0)
		r = pr;
	if (r == -EACCES || r == -EINVAL) {
		r = refuse(env, a, &out, a->recovery_code ? "wrong or used recovery code" : "wrong TOTP code");
		goto out;
	}
	if (r < 0)
		goto out;
	{
		/* Unlocked (a login): the row must carry its seal. A locked
		 * unlock checks it once the keys are there. */
		_cleanup_secret_ struct secret *key = NULL;
		if (keyring_authz_key(env->keyring, &key) >= 0 && !authz_user_ok(key, &u)) {
			char what[96];
			snprintf(what, sizeof(what), "user '%s'", u.name);
			authz_note_tamper(env->store, what);
			(void)refuse(env, a, &out, "the user's row fails its authorization seal");
			r = -EBADMSG;
			goto out;
		}
	}
	cleared(env, a->user, a->uid);
	if (auth_needs_rehash(u.phc, &env->argon2))
		upgrade_hash(env, a->user, a->passphrase);
	if (a->recovery_code)
		log_notice("user '%s' used a recovery code (uid %u)", a->user, (unsigned)a->uid);
	*ret_user = u;
	u = (struct store_user){0};
	r = 0;
out:
	store_user_clear(&u);
	if (ret_refusal)
		*ret_refusal = out;
	return r;
}
