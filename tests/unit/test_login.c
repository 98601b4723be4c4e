/* tests/unit/test_login.c: proving who someone is (vaultd/access/login.h)
 * on a real store and keyring over a SoftHSM2 token: passphrase and TOTP,
 * single-use codes, recovery codes, the timing decoy spending nothing, the
 * lockouts per (user, uid) and per uid with the name alone only delayed,
 * rehashing to the configured costs, and the authorization seal. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "softhsm_token.h"
#include "common/keyprov.h"
#include "common/secret.h"
#include "vaultd/access/authz.h"
#include "vaultd/access/login.h"
#include "vaultd/access/totp.h"
#include "vaultd/keys/envelope.h"
#include "vaultd/keys/keyring.h"
#include "vaultd/store/store.h"

#define PIN "4711-login"
#define TOKEN "vt-login"
#define PASS "correct horse battery staple"

static char pin_file[300];
static const char *module_path;
static unsigned db_counter;

struct fixture {
	char path[320];
	struct keyring_hsm hsm;
	struct store *s;
	struct keyring *k;
	struct login_env env;
	struct secret *totp;            /* alice's TOTP secret */
	char codes[3][TOTP_RECOVERY_CHARS + 8];
};

static int group_setup(void **state)
{
	(void)state;
	assert_int_equal(secret_library_init(), 0);
	assert_int_equal(totp_library_init(), 0);
	module_path = softhsm_token_make(TOKEN, PIN);
	snprintf(pin_file, sizeof(pin_file), "%s", softhsm_token_pin_file());
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	softhsm_token_remove();
	return 0;
}

static const struct auth_params COSTS = { .iterations = 1, .memory_kib = 8192, .parallelism = 1 };

/* A user as vaultd enrols one: passphrase hash at 'costs', an MFA key
 * wrapped by the HSM, the TOTP secret under it, three recovery codes, and
 * the row sealed. */
static void make_user(struct fixture *f, const char *name, const char *roles, const struct auth_params *costs)
{
	_cleanup_secret_ struct secret *mfa = NULL, *pass = NULL, *codes = NULL, *authz = NULL;
	char hashes[3][TOTP_HASH_HEX];
	struct store_user u = {0};
	struct store_tx *tx;

	snprintf(u.name, sizeof(u.name), "%s", name);
	u.roles = strdup(roles);
	assert_int_equal(secret_from_bytes(PASS, strlen(PASS), &pass), 0);
	assert_int_equal(auth_hash(costs, pass, &u.phc), 0);
	assert_int_equal(secret_random(32, &mfa), 0);
	if (!f->totp)
		assert_int_equal(totp_secret_new(&f->totp), 0);
	assert_int_equal(keyring_hsm_wrap_key(f->k, mfa, &u.mfa_key, &u.mfa_key_len), 0);
	assert_int_equal(envelope_seal_totp(mfa, u.name, f->totp, &u.totp_blob, &u.totp_len), 0);
	u.mfa_state = STORE_MFA_PENDING;
	assert_int_equal(keyring_authz_key(f->k, &authz), 0);
	authz_mac_user(authz, &u, u.mac);
	assert_int_equal(totp_recovery_generate(3, &codes, hashes), 0);
	{
		const char *p = (const char *)codes->p;
		for (int i = 0; i < 3; i++) {
			size_t n = strcspn(p, "\n");
			snprintf(f->codes[i], sizeof(f->codes[i]), "%.*s", (int)n, p);
			p += n + (p[n] ? 1 : 0);
		}
	}
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_user_put(tx, &u), 0);
	assert_int_equal(store_recovery_set(tx, u.name, (const char(*)[65])hashes, 3), 0);
	assert_int_equal(store_write_commit(tx), 0);
	store_user_clear(&u);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct store_tx *tx;

	assert_non_null(f);
	snprintf(f->path, sizeof(f->path), "%s/vault-%u.db", softhsm_token_dir(), db_counter++);
	f->hsm = (struct keyring_hsm){
		.prov = { .module_path = module_path, .token_label = TOKEN, .pin_file = pin_file, .timeout_ms = 60000 },
		.key_label = "login-key", .mech = KEYPROV_MECH_OAEP_HOST, .hash = KEYPROV_HASH_SHA256,
	};
	assert_int_equal(store_open(f->path, 2, &f->s), 0);
	assert_int_equal(keyring_new(&f->hsm, &f->k), 0);
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(keyring_init(f->k, tx), 0);
	assert_int_equal(store_write_commit(tx), 0);
	assert_int_equal(keyring_unlock(f->k, f->s), 0);
	f->env = (struct login_env){ .store = f->s, .keyring = f->k, .argon2 = COSTS, .max_failures = 5,
				     .lockout_seconds = 300 };
	make_user(f, "alice", "[\"admin\"]", &COSTS);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	keyring_free(f->k);
	store_close(f->s);
	secret_free(f->totp);
	free(f);
	return 0;
}

/* A code for 'steps' steps from now (each accepted step is single use). */
static void code_at(struct fixture *f, int steps, char out[TOTP_DIGITS + 1])
{
	assert_int_equal(totp_generate(f->totp, totp_step(time(NULL)) + steps, out), 0);
}

static int attempt(struct fixture *f, const char *user, const char *pass, const char *totp, const char *rc,
		   uid_t uid, struct login_refusal *why)
{
	_cleanup_secret_ struct secret *p = NULL;
	struct login_attempt a = { .user = user, .totp = totp, .recovery_code = rc, .uid = uid, .pid = 1,
				   .request_id = "r" };
	struct store_user u = {0};
	int r;

	assert_int_equal(secret_from_bytes(pass, strlen(pass), &p), 0);
	a.passphrase = p;
	r = login_check(&f->env, &a, &u, why);
	if (r == 0)
		assert_string_equal(u.name, user);
	store_user_clear(&u);
	return r;
}

static void test_passphrase_and_a_single_use_code(void **state)
{
	struct fixture *f = *state;
	struct login_refusal why;
	char code[8];

	code_at(f, -1, code);
	assert_int_equal(attempt(f, "alice", PASS, code, NULL, 1000, &why), 0);
	assert_int_equal(attempt(f, "alice", PASS, code, NULL, 1000, &why), -EALREADY);
	assert_string_equal(why.reason, "TOTP code reused (each code works once)");
	/* The same answer with a wrong passphrase: a spent code is no oracle. */
	assert_int_equal(attempt(f, "alice", "not alice's passphrase", code, NULL, 1000, &why), -EALREADY);
	assert_string_equal(why.reason, "TOTP code reused (each code works once)");
	code_at(f, 0, code);
	assert_int_equal(attempt(f, "alice", PASS, code, NULL, 1000, &why), 0);
	/* A code from an hour ago is no code. */
	assert_int_equal(totp_generate(f->totp, totp_step(time(NULL)) - 120, code), 0);
	assert_int_equal(attempt(f, "alice", PASS, code, NULL, 1000, &why), -EACCES);
	assert_string_equal(why.reason, "wrong TOTP code");
}

static void test_a_wrong_passphrase_spends_nothing(void **state)
{
	struct fixture *f = *state;
	struct login_refusal why;
	char code[8];

	code_at(f, 0, code);
	assert_int_equal(attempt(f, "alice", "not the passphrase", code, NULL, 1000, &why), -EACCES);
	assert_string_equal(why.reason, "wrong passphrase");
	assert_int_equal(attempt(f, "alice", "not the passphrase", NULL, f->codes[0], 1000, &why), -EACCES);
	/* Both the code and the recovery code still work. */
	assert_int_equal(attempt(f, "alice", PASS, code, NULL, 1000, &why), 0);
	assert_int_equal(attempt(f, "alice", PASS, NULL, f->codes[0], 1000, &why), 0);
	/* ... once. */
	assert_int_equal(attempt(f, "alice", PASS, NULL, f->codes[0], 1000, &why), -EACCES);
	assert_string_equal(why.reason, "wrong or used recovery code");
}

static void test_an_unknown_user_does_the_same_work_and_spends_nothing(void **state)
{
	struct fixture *f = *state;
	struct login_refusal why;
	char code[8];

	code_at(f, 0, code);
	/* The decoy runs alice's second factor with this code and this
	 * recovery code, spending neither. */
	assert_int_equal(attempt(f, "mallory", PASS, code, NULL, 1000, &why), -EACCES);
	assert_string_equal(why.reason, "no such user");
	assert_int_equal(attempt(f, "mallory", PASS, NULL, f->codes[1], 1000, &why), -EACCES);
	assert_int_equal(attempt(f, "alice", PASS, code, NULL, 1000, &why), 0);
	assert_int_equal(attempt(f, "alice", PASS, NULL, f->codes[1], 1000, &why), 0);
}

static void test_lockouts_are_per_pair_and_per_uid(void **state)
{
	struct fixture *f = *state;
	struct login_refusal why;
	char code[8];
	time_t t0;

	make_user(f, "bob", "[]", &COSTS);
	for (int i = 0; i < 5; i++)
		assert_int_equal(attempt(f, "alice", "guess", "123456", NULL, 66, &why), -EACCES);
	/* The attacker's uid is locked out, for alice and for anyone. */
	assert_int_equal(attempt(f, "alice", PASS, NULL, f->codes[2], 66, &why), -EUSERS);
	assert_true(why.retry_after > 0 && why.retry_after <= 300);
	assert_int_equal(attempt(f, "bob", PASS, NULL, f->codes[2], 66, &why), -EUSERS);
	/* alice from her own uid is not, and passes without a delay (the
	 * name has max_failures failures, not more). */
	code_at(f, 1, code);
	t0 = time(NULL);
	assert_int_equal(attempt(f, "alice", PASS, code, NULL, 1000, &why), 0);
	assert_true(time(NULL) - t0 <= 1);
}

static void test_the_name_alone_only_delays(void **state)
{
	struct fixture *f = *state;
	struct login_refusal why;
	struct timespec a, b;
	char code[8];

	/* Six uids, one failure each past max_failures: no pair and no uid
	 * is locked out, the name has 6 failures. */
	for (uid_t uid = 100; uid < 106; uid++)
		assert_int_equal(attempt(f, "alice", "guess", "123456", NULL, uid, &why), -EACCES);
	code_at(f, 0, code);
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(attempt(f, "alice", PASS, code, NULL, 1000, &why), 0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	/* At least the first step of the delay (250 ms), and it passed. */
	assert_true((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 >= 240);
}

static void test_an_old_hash_is_upgraded_and_stays_sealed(void **state)
{
	struct fixture *f = *state;
	const struct auth_params old = { .iterations = 2, .memory_kib = 8192, .parallelism = 1 };
	_cleanup_secret_ struct secret *key = NULL;
	struct login_refusal why;
	struct store_user u = {0};
	struct store_tx *tx;

	make_user(f, "carol", "[]", &old);
	assert_int_equal(attempt(f, "carol", PASS, NULL, f->codes[0], 1000, &why), 0);
	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_user_get(tx, "carol", &u), 0);
	store_tx_end(tx);
	assert_false(auth_needs_rehash(u.phc, &COSTS));
	assert_int_equal(keyring_authz_key(f->k, &key), 0);
	assert_true(authz_user_ok(key, &u));
	store_user_clear(&u);
	assert_int_equal(attempt(f, "carol", PASS, NULL, f->codes[1], 1000, &why), 0);
}

static void test_a_row_changed_behind_vaultds_back_is_refused(void **state)
{
	struct fixture *f = *state;
	struct login_refusal why;
	struct store_user u = {0};
	struct store_tx *tx;
	char *tamper = NULL;

	/* Promote: the roles change, the MAC stays. */
	make_user(f, "dave", "[\"operator\"]", &COSTS);
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_user_get(tx, "dave", &u), 0);
	free(u.roles);
	u.roles = strdup("[\"admin\"]");
	assert_int_equal(store_user_put(tx, &u), 0);
	assert_int_equal(store_write_commit(tx), 0);
	store_user_clear(&u);
	assert_int_equal(attempt(f, "dave", PASS, NULL, f->codes[0], 1000, &why), -EBADMSG);
	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_meta_get(tx, AUDIT_AUTHZ_TAMPER_KEY, &tamper), 0);
	store_tx_end(tx);
	assert_non_null(strstr(tamper, "user 'dave'"));
	free(tamper);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_passphrase_and_a_single_use_code, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_wrong_passphrase_spends_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_an_unknown_user_does_the_same_work_and_spends_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_lockouts_are_per_pair_and_per_uid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_the_name_alone_only_delays, setup, teardown),
		cmocka_unit_test_setup_teardown(test_an_old_hash_is_upgraded_and_stays_sealed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_row_changed_behind_vaultds_back_is_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
