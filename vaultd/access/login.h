/* vaultd/access/login.h: proving who someone is, the rules and nothing of
 * HTTP: passphrase (Argon2id) plus a TOTP code or a recovery code, the
 * brute-force accounting, the timing decoy, the authorization seal of the
 * user's row (while unlocked), and upgrading a hash to the configured costs.
 *
 * Brute-force accounting has three counters per attempt:
 *   "user:<name>@uid:<uid>"  the pair: max_failures in a window locks it out;
 *   "uid:<uid>"              the caller: max_failures in a window, over any
 *                            names, locks that uid out;
 *   "user:<name>"            the name alone: never a lockout (anyone on the
 *                            socket could otherwise lock every admin out),
 *                            only a delay that grows past max_failures and
 *                            that a correct attempt waits out and passes.
 * A caller locked out is refused before anything is counted or delayed.
 *
 * Timing: every attempt does the same work whatever was wrong: the Argon2id
 * check, then the second-factor check (HSM unwrap of the MFA key, the TOTP
 * check, a write transaction) even after a wrong passphrase, spending the
 * code only when the passphrase was right; an unknown user burns Argon2id and
 * runs the second-factor check against another user's enrolment, spending
 * nothing. Threads: any.
 */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "common/secret.h"
#include "vaultd/access/auth.h"
#include "vaultd/keys/keyring.h"
#include "vaultd/store/store.h"

struct login_env {
	struct store *store;
	struct keyring *keyring;
	struct auth_params argon2;      /* the configured costs */
	unsigned max_failures;          /* [auth] max_failures */
	unsigned lockout_seconds;       /* [auth] lockout_seconds: the window and the lockout */
};

struct login_attempt {
	const char *user;               /* a valid name (path.h name_valid()) */
	const struct secret *passphrase;
	const char *totp;               /* exactly one of totp and recovery_code */
	const char *recovery_code;
	uid_t uid;                      /* the caller */
	pid_t pid;
	const char *request_id;         /* for the log line */
};

/* Why an attempt failed (for the audit record and the log; never secret),
 * and for how long a lockout lasts. */
struct login_refusal {
	char reason[96];
	int64_t retry_after;
};

/* 0 with *ret_user filled (caller clears it); -EACCES wrong user,
 * passphrase or code (counted); -EALREADY the TOTP code was this user's
 * and is spent, whether the passphrase was right or not (counted; the
 * caller may say so: it is no passphrase oracle); -EUSERS the pair or the uid is locked out
 * (ret_refusal->retry_after); -EBADMSG the user's row fails its
 * authorization seal (reported, counted); HSM and storage errors otherwise.
 * ret_refusal is filled on every failure. */
int login_check(const struct login_env *env, const struct login_attempt *a, struct store_user *ret_user,
		struct login_refusal *ret_refusal);

/* The accounting alone, for other checks of a passphrase (changing it):
 * login_locked_out(): 0, or -EUSERS with *ret_retry_after; after the name's
 * delay, if it has one. login_failed() counts a failure and logs it. */
int login_locked_out(const struct login_env *env, const char *user, uid_t uid, int64_t *ret_retry_after);
void login_failed(const struct login_env *env, const char *user, uid_t uid, pid_t pid, const char *request_id,
		  const char *why);
