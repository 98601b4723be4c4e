/* vaultd/rotate/rotate.c: see rotate.h. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "common/err.h"
#include "common/log.h"
#include "vaultd/audit/audit.h"
#include "vaultd/access/authz.h"
#include "vaultd/keys/keyring.h"
#include "vaultd/rotate/rotate.h"

#define IDLE_WAKE_S 5

#define STEP_PAUSE_NS (2 * 1000 * 1000)

struct rotator {
	struct rotator_deps d;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool stop, kicked, unlocked;
	bool running;
	bool root_activated;            /* this step switched the keyring to a new RK */
	/* Fault injection (see rotate.h). */
	char crash_kind[16], crash_point[16];
	unsigned crash_n, batches;
	int64_t done;                   /* rows done by the running job (pause file) */
};

/* ---- fault injection ---- */

static void crash_init(struct rotator *rt)
{
#ifdef VAULTD_FAULT_INJECTION
	const char *e = getenv("VAULTD_TEST_CRASH_ROTATION");

	if (!e || !*e)
		return;
	rt->crash_n = 1;
	if (sscanf(e, "%15[a-z]:%15[a-z]:%u", rt->crash_kind, rt->crash_point, &rt->crash_n) < 2) {
		log_error("VAULTD_TEST_CRASH_ROTATION='%s' is malformed; ignored", e);
		rt->crash_kind[0] = '\0';
		return;
	}
	log_warning("test build: will kill itself at rotation %s:%s:%u", rt->crash_kind, rt->crash_point,
		    rt->crash_n);
#else
	(void)rt;
#endif
}

static void crash_point(struct rotator *rt, const char *kind, const char *point)
{
#ifdef VAULTD_FAULT_INJECTION
	if (!rt->crash_kind[0] || !streq(rt->crash_kind, kind) || !streq(rt->crash_point, point))
		return;
	if (streq(point, "batch") && ++rt->batches < rt->crash_n)
		return;
	log_warning("test build: killing myself at rotation %s:%s", kind, point);
	raise(SIGKILL);
#else
	(void)rt;
	(void)kind;
	(void)point;
#endif
}

/* ---- job records ---- */

static int record(const struct rotator_deps *a, struct store_tx *tx, const struct store_rotation *j, const char *result,
		  const char *fmt, ...) _printf_(5, 6);

/* One audit record for a job event, as the daemon itself. */
static int record(const struct rotator_deps *a, struct store_tx *tx, const struct store_rotation *j, const char *result,
		  const char *fmt, ...)
{
	char action[48], detail[160];
	va_list ap;

	snprintf(action, sizeof(action), "rotate.%s", j->kind);
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	return a->record(a->userdata, tx, action, j->target[0] ? j->target : NULL, result, detail);
}

static void job_set_state(struct store_rotation *j, const char *state)
{
	snprintf(j->state, sizeof(j->state), "%s", state);
	j->updated_at = time(NULL);
	if (!STORE_ROTATION_ACTIVE(j))
		j->finished_at = j->updated_at;
}

/* ---- steps: each one write transaction ---- */


static int reseal_authz(const struct rotator_deps *a, struct store_tx *tx)
{
	_cleanup_secret_ struct secret *old_key = NULL, *new_key = NULL;
	int r;

	r = keyring_authz_key(a->keyring, &old_key);
	if (r >= 0)
		r = keyring_authz_key_staged(a->keyring, &new_key);
	if (r >= 0)
		r = authz_seal_all(tx, old_key, new_key, NULL);
	return r;
}

static int step_start(struct rotator *rt, struct store_tx *tx, struct store_rotation *j)
{
	const struct rotator_deps *a = &rt->d;
	int64_t total = 0, count = 0;
	int r;

	if (streq(j->kind, "secret")) {
		total = store_version_count_prefix(tx, j->target);
		j->cursor_path[0] = '\0';
		j->cursor_version = 0;
	} else if (streq(j->kind, "kek")) {
		r = keyring_kek_begin(a->keyring, tx, j->target, &j->from_version, &j->to_version);
		if (r < 0)
			return r;
		total = store_version_count_old_kek(tx, j->target, j->to_version);
	} else if (streq(j->kind, "root")) {
		_cleanup_secret_ struct secret *old_key = NULL, *new_key = NULL;

		r = keyring_root_stage(a->keyring, tx, &j->from_version, &j->to_version);
		if (r < 0)
			return r;
		/* The audit anchor moves to the new RK in this transaction. */
		r = keyring_audit_key(a->keyring, &old_key);
		if (r >= 0)
			r = keyring_audit_key_staged(a->keyring, &new_key);
		if (r >= 0)
			r = audit_reanchor(tx, old_key, new_key);
		/* So does the authorization seal: every row is checked under
		 * the old key and resealed under the new one. */
		if (r >= 0)
			r = reseal_authz(a, tx);
		if (r < 0) {
			keyring_root_unstage(a->keyring);
			return r;
		}
		total = store_kek_count_old_rk(tx, j->to_version);
		/* From here the new RK is current; every later anchor, this
		 * job's own record included, uses it. */
		keyring_root_activate(a->keyring);
		rt->root_activated = true;
	} else if (streq(j->kind, "hsm")) {
		r = keyring_hsm_rotate(a->keyring, tx, &j->from_version, &j->to_version, &count);
		if (r < 0)
			return r;
		j->done = j->total = count;
		job_set_state(j, "done");
		r = store_rotation_update(tx, j);
		if (r >= 0)
			r = record(a, tx, j, "allowed",
				   "job %" PRId64 " done: HSM key v%u -> v%u, %" PRId64 " keys rewrapped; v%u is "
				   "deleted after the next unlock",
				   j->id, j->from_version, j->to_version, count, j->from_version);
		return r;
	} else
		return -EINVAL;
	if (total < 0)
		return (int)total;
	j->total = total;
	j->done = 0;
	job_set_state(j, "running");
	r = store_rotation_update(tx, j);
	if (r >= 0)
		r = record(a, tx, j, "allowed", "job %" PRId64 " started (asked by %s): %" PRId64 " rows", j->id,
			   j->principal, total);
	return r;
}

/* One batch; *ret_finished when there was nothing left and the job is done. */
static int step_batch(struct rotator *rt, struct store_tx *tx, struct store_rotation *j, bool *ret_finished)
{
	const struct rotator_deps *a = &rt->d;
	unsigned limit = a->batch_size;
	int n, r;

	if (streq(j->kind, "secret"))
		n = keyring_reseal_batch(a->keyring, tx, j->target, j->cursor_path, &j->cursor_version, limit);
	else if (streq(j->kind, "kek"))
		n = keyring_kek_rewrap_batch(a->keyring, tx, j->target, limit);
	else if (streq(j->kind, "root"))
		n = keyring_root_rewrap_batch(a->keyring, tx, limit);
	else
		return -EINVAL;
	if (n < 0)
		return n;
	j->done += n;
	j->total = MAX(j->total, j->done);
	j->updated_at = time(NULL);
	*ret_finished = n == 0;
	if (n > 0)
		return store_rotation_update(tx, j);

	/* Nothing left: retire the old key version in this same transaction. */
	if (streq(j->kind, "kek")) {
		r = keyring_kek_finish(a->keyring, tx, j->target);
		if (r < 0)
			return r;
	} else if (streq(j->kind, "root")) {
		r = keyring_root_finish(a->keyring, tx);
		if (r < 0)
			return r;
	}
	job_set_state(j, "done");
	r = store_rotation_update(tx, j);
	if (r >= 0 && j->to_version)
		r = record(a, tx, j, "allowed", "job %" PRId64 " done: v%u -> v%u, %" PRId64 " rows; v%u destroyed",
			   j->id, j->from_version, j->to_version, j->done, j->from_version);
	else if (r >= 0)
		r = record(a, tx, j, "allowed", "job %" PRId64 " done: %" PRId64 " versions re-encrypted", j->id,
			   j->done);
	if (r >= 0)
		crash_point(rt, j->kind, "finish");
	return r;
}

/* Marks the job failed, in a transaction of its own. Nothing is lost: the
 * old key versions stay until a later job finishes. */
static void fail_job(struct rotator *rt, const struct store_rotation *job, int err)
{
	const struct rotator_deps *a = &rt->d;
	struct store_rotation j = *job;
	struct store_tx *tx = NULL;
	int r;

	snprintf(j.error, sizeof(j.error), "%s", vlt_strerror(err));
	job_set_state(&j, "failed");
	log_error_errno(err, "rotation job %" PRId64 " (%s%s%s) failed", j.id, j.kind, j.target[0] ? " " : "",
			j.target);
	r = store_write_begin(a->store, &tx);
	if (r >= 0)
		r = store_rotation_update(tx, &j);
	if (r >= 0)
		r = record(a, tx, &j, "failed", "job %" PRId64 " failed: %s", j.id, j.error);
	if (r >= 0)
		r = store_write_commit(TAKE_PTR(tx));
	store_tx_end(tx);
	if (r < 0)
		log_error_errno(r, "cannot record the failure of rotation job %" PRId64, j.id);
}

/* When the next job is a queued HSM rotation, generates its key pair before
 * the write transaction: that can take seconds on a hardware HSM, and every
 * audited request waits for the writer meanwhile. A failure here is left to
 * the job's own step, which tries again and records it. */
static void prepare_hsm(struct rotator *rt)
{
	struct store_rotation j = {0};
	struct store_tx *tx = NULL;
	int r;

	if (store_read_begin(rt->d.store, &tx) < 0)
		return;
	r = store_rotation_next(tx, &j);
	store_tx_end(tx);
	if (r < 0 || !streq(j.kind, "hsm") || !streq(j.state, "queued"))
		return;
	r = keyring_hsm_prepare(rt->d.keyring, rt->d.store);
	if (r < 0 && r != -EACCES)
		log_warning_errno(r, "cannot prepare the HSM key of rotation job %" PRId64 " yet", j.id);
}

/* Runs one step of the oldest active job. 1: more to do; 0: idle or
 * waiting (locked, busy); never fails (failures are recorded on the job). */
static int step(struct rotator *rt)
{
	const struct rotator_deps *a = &rt->d;
	struct store_rotation j = {0};
	struct store_tx *tx = NULL;
	bool was_queued, finished = false;
	int r;

	prepare_hsm(rt);
	r = store_write_begin(a->store, &tx);
	if (r < 0)
		return 0;
	r = store_rotation_next(tx, &j);
	if (r < 0) {
		store_tx_end(tx);
		return 0;
	}
	was_queued = streq(j.state, "queued");
	rt->root_activated = false;
	if (was_queued)
		r = step_start(rt, tx, &j);
	else
		r = step_batch(rt, tx, &j, &finished);
	if (r >= 0)
		r = store_write_commit(TAKE_PTR(tx));
	store_tx_end(tx);
	if (r < 0 && rt->root_activated) {
		/* The keyring already uses the new RK, which did not commit:
		 * forget every key; unlocking reloads what the database holds. */
		log_error_errno(r, "root rotation could not commit; locking the vault");
		keyring_lock(a->keyring);
	} else if (r < 0 && was_queued && streq(j.kind, "root"))
		keyring_root_unstage(a->keyring);
	if (r == -EACCES || r == -EBUSY)
		return 0;       /* locked meanwhile, or contention: try again later */
	if (r < 0) {
		fail_job(rt, &j, r);
		return 1;
	}

	if (was_queued)
		crash_point(rt, j.kind, "start");
	else if (!finished)
		crash_point(rt, j.kind, "batch");
	rt->done = finished ? 0 : j.done;
	if (finished) {
		log_info("rotation job %" PRId64 " (%s%s%s) done: %" PRId64 " rows", j.id, j.kind,
			 j.target[0] ? " " : "", j.target, j.done);
		if (streq(j.kind, "kek"))
			keyring_kek_forget(a->keyring, j.target, j.to_version);
		else if (streq(j.kind, "root"))
			keyring_root_forget_old(a->keyring);
	}
	return 1;
}

/* Queues a KEK rotation for every tenant whose current KEK reached the
 * configured wrap limit. */
struct auto_ctx {
	uint64_t limit;
	char tenants[16][PATH_SEGMENT_MAX + 1];
	size_t n;
};

static int auto_one(const struct store_kek *k, void *userdata)
{
	struct auto_ctx *c = userdata;

	if (k->wrap_count >= c->limit && c->n < ELEMENTSOF(c->tenants))
		snprintf(c->tenants[c->n++], sizeof(c->tenants[0]), "%s", k->tenant);
	return 0;
}

static void auto_kek(struct rotator *rt)
{
	const struct rotator_deps *a = &rt->d;
	struct auto_ctx c = { .limit = a->kek_max_wraps };
	struct store_tx *tx = NULL;
	int r;

	r = store_read_begin(a->store, &tx);
	if (r < 0)
		return;
	r = store_kek_list_current(tx, auto_one, &c);
	store_tx_end(TAKE_PTR(tx));
	for (size_t i = 0; r >= 0 && i < c.n; i++) {
		struct store_rotation j = {0};
		bool existing = false;

		r = store_write_begin(a->store, &tx);
		if (r >= 0)
			r = rotate_queue(tx, "kek", c.tenants[i], "system:vaultd", "", &j, &existing);
		if (r >= 0 && !existing)
			r = record(a, tx, &j, "allowed", "job %" PRId64 " queued: the KEK reached %" PRIu64 " wraps",
				   j.id, c.limit);
		if (r >= 0)
			r = store_write_commit(TAKE_PTR(tx));
		store_tx_end(TAKE_PTR(tx));
		if (r >= 0 && !existing)
			log_notice("tenant '%s': KEK reached its wrap limit; rotation job %" PRId64 " queued",
				   c.tenants[i], j.id);
	}
	if (r < 0)
		log_warning_errno(r, "cannot queue the automatic KEK rotations");
}

/* keyring_hsm_retire_audited()'s records, as the daemon itself: the
 * attempt (result "attempt") before the keys leave the token, then the
 * outcome. */
static int record_hsm_retire(void *userdata, struct store_tx *tx, const char *result, const char *detail)
{
	const struct rotator_deps *a = userdata;
	char text[1600];

	snprintf(text, sizeof(text), "%s, after an unlock with their successor", detail);
	return a->record(a->userdata, tx, "rotate.hsm_retire", NULL, result, text);
}

static void retire_hsm_keys(struct rotator *rt)
{
	const struct rotator_deps *a = &rt->d;
	_cleanup_json_ json_t *deleted = NULL;
	int r;

	r = keyring_hsm_retire_audited(a->keyring, a->store, record_hsm_retire, (void *)a, &deleted);
	if (r < 0)
		log_error_errno(r, "cannot retire the old HSM keys; the next unlock or "
				"'vaultctl rotate hsm --retire' retries");
}

/* Test builds: while the file named by VAULTD_TEST_ROTATION_PAUSE_FILE
 * exists, no step runs (tests of "already active" need a job that stays
 * queued). If the file holds a number N, the pause starts only once the
 * running job has done N rows, so a test can kill -9 a job that is surely
 * half done, however fast the machine. */
static bool paused(const struct rotator *rt)
{
#ifdef VAULTD_FAULT_INJECTION
	const char *f = getenv("VAULTD_TEST_ROTATION_PAUSE_FILE");
	long long after = 0;
	FILE *fp;

	if (!f || !(fp = fopen(f, "re")))
		return false;
	if (fscanf(fp, "%lld", &after) != 1)
		after = 0;
	fclose(fp);
	return rt->done >= after;
#else
	(void) rt;
	return false;
#endif
}

static bool should_stop(struct rotator *rt)
{
	bool s;

	pthread_mutex_lock(&rt->mu);
	s = rt->stop;
	pthread_mutex_unlock(&rt->mu);
	return s;
}

static void *worker(void *userdata)
{
	struct rotator *rt = userdata;

	for (;;) {
		bool unlocked, pause = paused(rt);

		pthread_mutex_lock(&rt->mu);
		if (!rt->stop && (!rt->kicked || pause)) {
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			if (pause) {
				until.tv_nsec += 100 * 1000 * 1000;
				if (until.tv_nsec >= 1000000000L) {
					until.tv_sec++;
					until.tv_nsec -= 1000000000L;
				}
			} else
				until.tv_sec += IDLE_WAKE_S;
			pthread_cond_timedwait(&rt->cond, &rt->mu, &until);
		}
		if (rt->stop) {
			pthread_mutex_unlock(&rt->mu);
			break;
		}
		if (pause) {
			pthread_mutex_unlock(&rt->mu);
			continue;       /* kicks stay pending until the pause ends */
		}
		unlocked = rt->unlocked;
		rt->unlocked = rt->kicked = false;
		pthread_mutex_unlock(&rt->mu);

		if (!keyring_is_unlocked(rt->d.keyring))
			continue;
		if (unlocked)
			retire_hsm_keys(rt);
		if (rt->d.on_idle_unlocked)
			rt->d.on_idle_unlocked(rt->d.userdata);
		auto_kek(rt);
		while (!should_stop(rt) && keyring_is_unlocked(rt->d.keyring) && !paused(rt) && step(rt) > 0)
			/* The writer lock is not fair: without a pause the worker
			 * takes it straight back, and requests (every one writes
			 * its audit record) wait several batches. */
			nanosleep(&(struct timespec){ .tv_nsec = STEP_PAUSE_NS }, NULL);
	}
	return NULL;
}

int rotate_queue(struct store_tx *tx, const char *kind, const char *target, const char *principal,
		 const char *request_id, struct store_rotation *ret, bool *ret_existing)
{
	struct store_rotation j = {0};
	int r;

	r = store_rotation_find_active(tx, kind, target, ret);
	if (r == 0) {
		*ret_existing = true;
		return 0;
	}
	if (r != -ENOENT)
		return r;
	snprintf(j.kind, sizeof(j.kind), "%s", kind);
	snprintf(j.target, sizeof(j.target), "%s", target);
	snprintf(j.state, sizeof(j.state), "queued");
	snprintf(j.principal, sizeof(j.principal), "%s", principal);
	snprintf(j.request_id, sizeof(j.request_id), "%s", request_id);
	j.created_at = j.updated_at = time(NULL);
	r = store_rotation_add(tx, &j);
	if (r < 0)
		return r;
	*ret = j;
	*ret_existing = false;
	return 0;
}

int rotator_start(const struct rotator_deps *d, struct rotator **ret)
{
	struct rotator *rt = calloc(1, sizeof(*rt));
	pthread_condattr_t ca;
	int r;

	if (!rt)
		return -ENOMEM;
	if (!d->store || !d->keyring || !d->record || d->batch_size < 1) {
		free(rt);
		return -EINVAL;
	}
	rt->d = *d;
	crash_init(rt);
	pthread_mutex_init(&rt->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_cond_init(&rt->cond, &ca);
	pthread_condattr_destroy(&ca);
	r = -pthread_create(&rt->thread, NULL, worker, rt);
	if (r < 0) {
		pthread_cond_destroy(&rt->cond);
		pthread_mutex_destroy(&rt->mu);
		free(rt);
		return r;
	}
	rt->running = true;
	*ret = rt;
	return 0;
}

void rotator_stop(struct rotator *rt)
{
	if (!rt)
		return;
#ifdef VAULTD_FAULT_INJECTION
	{
		/* Test builds: the worker goes on running jobs for a while
		 * after shutdown began, so a test can tell whether something
		 * it uses was torn down before it was joined. */
		const char *d = getenv("VAULTD_TEST_STOP_DELAY_MS");
		long ms = d ? strtol(d, NULL, 10) : 0;
		if (ms > 0 && ms <= 10000)
			nanosleep(&(struct timespec){ .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L }, NULL);
	}
#endif
	pthread_mutex_lock(&rt->mu);
	rt->stop = true;
	pthread_cond_signal(&rt->cond);
	pthread_mutex_unlock(&rt->mu);
	if (rt->running)
		pthread_join(rt->thread, NULL);
	pthread_cond_destroy(&rt->cond);
	pthread_mutex_destroy(&rt->mu);
	free(rt);
}

void rotator_kick(struct rotator *rt, bool unlocked)
{
	if (!rt)
		return;
	pthread_mutex_lock(&rt->mu);
	rt->kicked = true;
	rt->unlocked |= unlocked;
	pthread_cond_signal(&rt->cond);
	pthread_mutex_unlock(&rt->mu);
}
