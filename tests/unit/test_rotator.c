/* tests/unit/test_rotator.c: the rotation worker on its seam (struct
 * rotator_deps, vaultd/rotate/rotate.h) with a real store and keyring over
 * a SoftHSM2 token and a record function of the test's own: the job queue
 * (one active job per kind and target), the states queued -> running ->
 * done and -> failed, each transition recorded, nothing run while locked. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
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
#include "vaultd/keys/keyring.h"
#include "vaultd/rotate/rotate.h"
#include "vaultd/store/store.h"

#define PIN "4711-rot"
#define TOKEN "vt-rotator"

static char pin_file[300];
static const char *module_path;
static unsigned db_counter;

struct event {
	char action[48], result[16], detail[200];
};

struct fixture {
	char path[320];
	struct keyring_hsm hsm;
	struct store *s;
	struct keyring *k;
	struct rotator *rt;
	pthread_mutex_t mu;
	struct event ev[64];
	size_t n_ev;
};

static int group_setup(void **state)
{
	(void)state;
	assert_int_equal(secret_library_init(), 0);
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

/* The worker's audit records, kept for the test to read. */
static int record(void *userdata, struct store_tx *tx, const char *action, const char *path, const char *result,
		  const char *detail)
{
	struct fixture *f = userdata;
	(void)tx, (void)path;

	pthread_mutex_lock(&f->mu);
	if (f->n_ev < sizeof(f->ev) / sizeof(f->ev[0])) {
		struct event *e = &f->ev[f->n_ev++];
		snprintf(e->action, sizeof(e->action), "%s", action);
		snprintf(e->result, sizeof(e->result), "%s", result);
		snprintf(e->detail, sizeof(e->detail), "%s", detail ? detail : "");
	}
	pthread_mutex_unlock(&f->mu);
	return 0;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct store_tx *tx;
	struct rotator_deps d;

	assert_non_null(f);
	pthread_mutex_init(&f->mu, NULL);
	snprintf(f->path, sizeof(f->path), "%s/vault-%u.db", softhsm_token_dir(), db_counter++);
	f->hsm = (struct keyring_hsm){
		.prov = { .module_path = module_path, .token_label = TOKEN, .pin_file = pin_file, .timeout_ms = 60000 },
		.key_label = "rot-key", .mech = KEYPROV_MECH_OAEP_HOST, .hash = KEYPROV_HASH_SHA256,
	};
	assert_int_equal(store_open(f->path, 2, &f->s), 0);
	assert_int_equal(keyring_new(&f->hsm, &f->k), 0);
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(keyring_init(f->k, tx), 0);
	assert_int_equal(store_write_commit(tx), 0);
	assert_int_equal(keyring_unlock(f->k, f->s), 0);
	d = (struct rotator_deps){ .store = f->s, .keyring = f->k, .batch_size = 2, .kek_max_wraps = UINT64_MAX,
				   .record = record, .userdata = f };
	assert_int_equal(rotator_start(&d, &f->rt), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	rotator_stop(f->rt);
	keyring_free(f->k);
	store_close(f->s);
	pthread_mutex_destroy(&f->mu);
	free(f);
	return 0;
}

static void put_secrets(struct fixture *f, const char *tenant, int n)
{
	_cleanup_secret_ struct secret *plain = NULL;
	struct store_tx *tx;
	char path[64];

	assert_int_equal(secret_from_bytes("{\"k\":\"v\"}", 9, &plain), 0);
	assert_int_equal(keyring_ensure_kek(f->k, f->s, tenant), 0);
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	for (int i = 0; i < n; i++) {
		struct store_version v = {0};
		snprintf(path, sizeof(path), "%s/app/s%d", tenant, i);
		assert_int_equal(keyring_seal(f->k, tx, path, 1, plain, &v, NULL), 0);
		assert_int_equal(store_secret_put_version(tx, path, tenant, "generic", NULL, &v), 0);
		store_version_clear(&v);
	}
	assert_int_equal(store_write_commit(tx), 0);
}

static int64_t queue(struct fixture *f, const char *kind, const char *target, bool want_existing)
{
	struct store_rotation j = {0};
	struct store_tx *tx;
	bool existing = !want_existing;

	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(rotate_queue(tx, kind, target, "user:test", "00112233445566778899aabbccddeeff", &j,
				      &existing), 0);
	assert_int_equal(store_write_commit(tx), 0);
	assert_true(existing == want_existing);
	return j.id;
}

static struct store_rotation job(struct fixture *f, int64_t id)
{
	struct store_rotation j = {0};
	struct store_tx *tx;

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_rotation_get(tx, id, &j), 0);
	store_tx_end(tx);
	return j;
}

/* The job's state once it stops being active (or after 'seconds'). */
static struct store_rotation wait_job(struct fixture *f, int64_t id, int seconds)
{
	struct store_rotation j;

	for (int i = 0; i < seconds * 20; i++) {
		j = job(f, id);
		if (streq(j.state, "done") || streq(j.state, "failed"))
			return j;
		nanosleep(&(struct timespec){ .tv_nsec = 50 * 1000 * 1000 }, NULL);
	}
	return job(f, id);
}

static bool recorded(struct fixture *f, const char *action, const char *result, const char *detail_part)
{
	bool found = false;

	pthread_mutex_lock(&f->mu);
	for (size_t i = 0; i < f->n_ev; i++)
		if (streq(f->ev[i].action, action) && streq(f->ev[i].result, result) &&
		    strstr(f->ev[i].detail, detail_part))
			found = true;
	pthread_mutex_unlock(&f->mu);
	return found;
}

static void test_a_job_runs_to_done_and_is_recorded(void **state)
{
	struct fixture *f = *state;
	struct store_rotation j;
	int64_t id;

	put_secrets(f, "acme", 5);
	id = queue(f, "kek", "acme", false);
	assert_int_equal(queue(f, "kek", "acme", true), id);         /* one active job per kind and target */
	assert_string_equal(job(f, id).state, "queued");
	rotator_kick(f->rt, false);
	j = wait_job(f, id, 30);
	assert_string_equal(j.state, "done");
	assert_int_equal(j.from_version, 1);
	assert_int_equal(j.to_version, 2);
	assert_int_equal(j.done, 5);
	assert_string_equal(j.error, "");
	assert_true(j.finished_at > 0);
	assert_true(recorded(f, "rotate.kek", "allowed", "started"));
	assert_true(recorded(f, "rotate.kek", "allowed", "done"));
	/* Done, it is no longer the active one: a new job may be queued. */
	assert_true(queue(f, "kek", "acme", false) != id);
}

static void test_a_job_that_cannot_run_fails_with_its_reason(void **state)
{
	struct fixture *f = *state;
	struct store_rotation j;
	int64_t id;

	id = queue(f, "kek", "nosuch", false);           /* a tenant without a KEK */
	rotator_kick(f->rt, false);
	j = wait_job(f, id, 30);
	assert_string_equal(j.state, "failed");
	assert_true(j.error[0] != '\0');
	assert_true(j.finished_at > 0);
	assert_true(recorded(f, "rotate.kek", "failed", "failed"));
}

static void test_nothing_runs_while_locked(void **state)
{
	struct fixture *f = *state;
	struct store_rotation j;
	int64_t id;

	put_secrets(f, "globex", 3);
	keyring_lock(f->k);
	id = queue(f, "secret", "globex", false);
	rotator_kick(f->rt, false);
	nanosleep(&(struct timespec){ .tv_nsec = 400 * 1000 * 1000 }, NULL);
	assert_string_equal(job(f, id).state, "queued");
	assert_int_equal(keyring_unlock(f->k, f->s), 0);
	rotator_kick(f->rt, true);
	j = wait_job(f, id, 30);
	assert_string_equal(j.state, "done");
	assert_int_equal(j.done, 3);
}

static void test_the_worker_needs_its_dependencies(void **state)
{
	struct rotator *rt = NULL;
	struct rotator_deps d = { .batch_size = 1 };
	(void)state;

	assert_int_equal(rotator_start(&d, &rt), -EINVAL);
	assert_null(rt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_a_job_runs_to_done_and_is_recorded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_job_that_cannot_run_fails_with_its_reason, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nothing_runs_while_locked, setup, teardown),
		cmocka_unit_test(test_the_worker_needs_its_dependencies),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
