/* vaultd/audit/recorder.c: see recorder.h. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "common/log.h"
#include "vaultd/audit/mirror.h"
#include "vaultd/audit/recorder.h"

/* Mirror failures are logged once per cause and MIRROR_LOG_EVERY_S, with
 * the count left out since: a stuck mirror under "continue" must not write
 * a log line per request. */
#define MIRROR_LOG_EVERY_S 10
#define PRUNE_EVERY_S (24 * 3600)

struct auditor {
	struct auditor_config cfg;
	char *jsonl_path;
	struct store *store;
	struct keyring *keyring;
	struct mirror *mirror;
	pthread_mutex_t mu;             /* the counters below */
	uint64_t mirror_failures;
	int64_t mirror_last_failure;
	int mirror_logged_err;          /* 0: the mirror is fine */
	int64_t mirror_logged_at;
	uint64_t mirror_unlogged;       /* failures since that line */
	int64_t pruned_at;              /* the worker's thread only */

	/* Group commit: records of requests without a transaction of their
	 * own queue here; one waiter at a time commits the whole queue. */
	pthread_mutex_t gc_mu;
	pthread_cond_t gc_cond;         /* a batch is done, or stop */
	struct waiter *queue, **queue_tail;
	bool committing;
	bool stop;
	uint64_t batches, batched;      /* for the metrics */
	pthread_t syncer;               /* [audit] sync = normal only */
	bool syncer_started;
};

/* One request waiting for its record, on that request's stack. */
struct waiter {
	const struct audit_entry *e;
	bool *ret_mirror_refused;
	int r;
	bool done;
	struct waiter *next;
};

static void *syncer_main(void *userdata);

int auditor_new(const struct auditor_config *cfg, struct store *s, struct keyring *k, struct auditor **ret)
{
	struct auditor *au;
	int r;

	au = calloc(1, sizeof(*au));
	if (!au)
		return -ENOMEM;
	au->cfg = *cfg;
	au->store = s;
	au->keyring = k;
	pthread_mutex_init(&au->mu, NULL);
	pthread_mutex_init(&au->gc_mu, NULL);
	au->queue_tail = &au->queue;
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&au->gc_cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	if (!au->cfg.jsonl_timeout_ms)
		au->cfg.jsonl_timeout_ms = 1000;
	if (!au->cfg.sync_interval_ms)
		au->cfg.sync_interval_ms = 1000;
	if (cfg->jsonl_path) {
		au->jsonl_path = strdup(cfg->jsonl_path);
		au->cfg.jsonl_path = au->jsonl_path;
		r = au->jsonl_path ? mirror_new(au->jsonl_path, au->cfg.jsonl_timeout_ms, &au->mirror) : -ENOMEM;
		if (r < 0) {
			auditor_free(au);
			return r;
		}
	}
	if (au->cfg.sync_normal) {
		if ((r = pthread_create(&au->syncer, NULL, syncer_main, au)) != 0) {
			auditor_free(au);
			return -r;
		}
		au->syncer_started = true;
	}
	*ret = au;
	return 0;
}

void auditor_free(struct auditor *au)
{
	if (!au)
		return;
	if (au->syncer_started) {
		pthread_mutex_lock(&au->gc_mu);
		au->stop = true;
		pthread_cond_broadcast(&au->gc_cond);
		pthread_mutex_unlock(&au->gc_mu);
		pthread_join(au->syncer, NULL);
	}
	mirror_free(au->mirror);
	pthread_cond_destroy(&au->gc_cond);
	pthread_mutex_destroy(&au->gc_mu);
	pthread_mutex_destroy(&au->mu);
	free(au->jsonl_path);
	free(au);
}

json_t *audit_record_json(const struct store_audit *r)
{
	_cleanup_free_ char *path = audit_text_printable_dup(r->path), *detail = audit_text_printable_dup(r->detail);
	char hex[65], principal[3 * sizeof(r->principal)], action[3 * sizeof(r->action)],
		capability[3 * sizeof(r->capability)], result[3 * sizeof(r->result)], rid[3 * sizeof(r->request_id)],
		when[32];
	struct tm tm;
	time_t t = (time_t)r->time;

	if ((r->path && !path) || (r->detail && !detail))
		return NULL;
	audit_text_printable(principal, sizeof(principal), r->principal);
	audit_text_printable(action, sizeof(action), r->action);
	audit_text_printable(capability, sizeof(capability), r->capability);
	audit_text_printable(result, sizeof(result), r->result);
	audit_text_printable(rid, sizeof(rid), r->request_id);
	sodium_bin2hex(hex, sizeof(hex), r->hash, sizeof(r->hash));
	if (!gmtime_r(&t, &tm))
		return NULL;
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_pack("{s:I, s:s, s:s, s:I, s:I, s:s, s:s?, s:s, s:s, s:i, s:s?, s:s, s:s}", "id", (json_int_t)r->id,
			 "time", when, "principal", principal, "uid", (json_int_t)r->uid, "pid", (json_int_t)r->pid,
			 "action", action, "path", path, "capability", capability, "result", result, "status",
			 r->status, "detail", detail, "request_id", rid, "hash", hex);
}

/* 0, or -errno when the line was not written whole in time. */
static int mirror_one(struct auditor *au, const struct store_audit *rec)
{
	_cleanup_json_ json_t *j = audit_record_json(rec);
	char *line;
	int r;

	line = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if (!line)
		return -ENOMEM;
	r = mirror_write(au->mirror, line, strlen(line));
	json_secure_free(line);
	return r;
}

/* Counts a mirror write's outcome and logs it: the first failure of each
 * cause at once, then one line per MIRROR_LOG_EVERY_S with the count since,
 * and the recovery. */
static void mirror_note(struct auditor *au, int m)
{
	const char *refusing = au->cfg.jsonl_refuse ? "; refusing requests until it can be written" : "";
	int64_t now = time(NULL);
	uint64_t skipped = 0;
	bool say = false, recovered = false;
	char more[80] = "";

	pthread_mutex_lock(&au->mu);
	if (m < 0) {
		au->mirror_failures++;
		au->mirror_last_failure = now;
		if (m != au->mirror_logged_err || now - au->mirror_logged_at >= MIRROR_LOG_EVERY_S) {
			say = true;
			skipped = au->mirror_unlogged;
			au->mirror_logged_err = m;
			au->mirror_logged_at = now;
			au->mirror_unlogged = 0;
		} else
			au->mirror_unlogged++;
	} else if (au->mirror_logged_err) {
		recovered = true;
		skipped = au->mirror_unlogged;
		au->mirror_logged_err = 0;
		au->mirror_unlogged = 0;
	}
	pthread_mutex_unlock(&au->mu);

	if (skipped)
		snprintf(more, sizeof(more), " (and %" PRIu64 " failures not logged since the last line)", skipped);
	if (recovered)
		log_notice("the audit mirror '%s' is written again%s", au->cfg.jsonl_path, more);
	if (!say)
		return;
	if (m == -ETIMEDOUT)
		log_error("cannot write the audit mirror '%s': it did not answer within %u ms%s%s", au->cfg.jsonl_path,
			  au->cfg.jsonl_timeout_ms, refusing, more);
	else if (m == -EBUSY)
		log_error("cannot write the audit mirror '%s': still stuck on an earlier record%s%s",
			  au->cfg.jsonl_path, refusing, more);
	else
		log_error_errno(m, "cannot write the audit mirror '%s'%s%s", au->cfg.jsonl_path, refusing, more);
}

/* Appends e in tx, anchored under mac_key (NULL while locked) or as the
 * genesis under genesis_key, and mirrors it before the caller commits: with
 * the refuse policy a record the mirror did not get is not committed. */
static int append_mirrored(struct auditor *au, struct store_tx *tx, const struct audit_entry *e,
			   const struct secret *mac_key, const struct secret *genesis_key, bool *ret_mirror_refused)
{
	struct store_audit rec = {0};
	int r;

	r = genesis_key ? audit_append_genesis(tx, e, genesis_key, &rec) : audit_append(tx, e, mac_key, &rec);
	if (r >= 0 && au->mirror) {
		int m = mirror_one(au, &rec);

		mirror_note(au, m);
		if (m < 0 && au->cfg.jsonl_refuse) {
			r = m;
			if (ret_mirror_refused)
				*ret_mirror_refused = true;
		}
	}
	store_audit_clear(&rec);
	return r;
}

/* A record in a transaction of its own, committed durably. */
static int record_alone(struct auditor *au, const struct audit_entry *e, bool *ret_mirror_refused)
{
	_cleanup_secret_ struct secret *mac_key = NULL;
	struct store_tx *tx = NULL;
	int r;

	if ((r = store_write_begin(au->store, &tx)) < 0)
		return r;
	(void)keyring_audit_key(au->keyring, &mac_key);
	r = append_mirrored(au, tx, e, mac_key, NULL, ret_mirror_refused);
	if (r >= 0)
		return store_write_commit(tx);
	store_tx_end(tx);
	return r;
}

/* Whether this batch may commit without an fsync: [audit] sync = normal,
 * and the oldest unsynced commit is younger than sync_interval_ms. */
static bool batch_relaxed(struct auditor *au)
{
	int64_t since;

	if (!au->cfg.sync_normal)
		return false;
	since = store_unsynced_since(au->store);
	return !since || now_ms() - since < (int64_t)au->cfg.sync_interval_ms;
}

#ifdef VAULTD_FAULT_INJECTION
/* Test builds: while the file named by VAULTD_TEST_AUDIT_COMMIT_FAIL_FILE
 * exists, every batch fails at its commit, as a full disk would. */
static bool batch_fault(void)
{
	const char *f = getenv("VAULTD_TEST_AUDIT_COMMIT_FAIL_FILE");

	return f && access(f, F_OK) == 0;
}
#else
static bool batch_fault(void)
{
	return false;
}
#endif

/* Commits the records of a batch, in queue order, in one transaction and
 * one sync, and stores each waiter's result. If any record fails (the
 * mirror refused it, or the database did), the whole transaction is rolled
 * back and every record is tried again alone, so one failure is only that
 * request's. Then the mirror may hold a line twice; the chain never does. */
static void commit_batch(struct auditor *au, struct waiter *batch)
{
	_cleanup_secret_ struct secret *mac_key = NULL;
	struct store_tx *tx = NULL;
	bool relaxed = batch_relaxed(au);
	uint64_t n = 0;
	int r;

	r = relaxed ? store_write_begin_relaxed(au->store, &tx) : store_write_begin(au->store, &tx);
	if (r >= 0) {
		(void)keyring_audit_key(au->keyring, &mac_key);
		/* A batch of one reports a refusal at once: it is not tried again.
		 * The anchor moves once, with the last record: the first check of
		 * the old anchor happens there too, and the old head it names is
		 * still in place (appends never change a record). */
		for (struct waiter *w = batch; w && r >= 0; w = w->next, n++)
			r = append_mirrored(au, tx, w->e, w->next ? NULL : mac_key, NULL,
					    batch->next ? NULL : w->ret_mirror_refused);
		if (r >= 0 && batch_fault()) {
			store_tx_end(TAKE_PTR(tx));
			r = -EIO;
		}
		if (r >= 0)
			r = store_write_commit(TAKE_PTR(tx));
		store_tx_end(tx);
	}
	if (r >= 0) {
		for (struct waiter *w = batch; w; w = w->next)
			w->r = 0;
		pthread_mutex_lock(&au->gc_mu);
		au->batches++;
		au->batched += n;
		pthread_mutex_unlock(&au->gc_mu);
		return;
	}
	if (!batch->next) {
		batch->r = r;           /* the caller logs it and refuses its request */
		return;
	}
	log_warning_errno(r, "a batch of audit records failed; committing them one by one");
	for (struct waiter *w = batch; w; w = w->next)
		w->r = batch_fault() ? -EIO : record_alone(au, w->e, w->ret_mirror_refused);
}

/* Queues e and returns once a batch holding it has committed, or failed:
 * the first waiter to find no batch in progress commits everything queued,
 * the others sleep meanwhile. Order in the chain is queue order. */
static int record_batched(struct auditor *au, const struct audit_entry *e, bool *ret_mirror_refused)
{
	struct waiter w = { .e = e, .ret_mirror_refused = ret_mirror_refused };

	pthread_mutex_lock(&au->gc_mu);
	*au->queue_tail = &w;
	au->queue_tail = &w.next;
	while (!w.done) {
		struct waiter *batch;

		if (au->committing) {
			pthread_cond_wait(&au->gc_cond, &au->gc_mu);
			continue;
		}
		batch = au->queue;
		au->queue = NULL;
		au->queue_tail = &au->queue;
		au->committing = true;
		pthread_mutex_unlock(&au->gc_mu);

		commit_batch(au, batch);

		pthread_mutex_lock(&au->gc_mu);
		/* Under the lock: a waiter cannot leave (and take its stack
		 * with it) before it reacquires it. */
		for (struct waiter *b = batch, *next; b; b = next) {
			next = b->next;
			b->done = true;
		}
		au->committing = false;
		pthread_cond_broadcast(&au->gc_cond);
	}
	pthread_mutex_unlock(&au->gc_mu);
	return w.r;
}

/* [audit] sync = normal: makes relaxed commits durable within
 * sync_interval_ms when no batch comes along to do it. */
static void *syncer_main(void *userdata)
{
	struct auditor *au = userdata;
	int64_t interval = au->cfg.sync_interval_ms;
	bool failing = false;

	pthread_mutex_lock(&au->gc_mu);
	while (!au->stop) {
		struct timespec ts;
		int64_t since, wait = interval;

		since = store_unsynced_since(au->store);
		if (since) {
			wait = since + interval - now_ms();
			if (wait <= 0) {
				int r;

				pthread_mutex_unlock(&au->gc_mu);
				r = store_sync(au->store);
				if (r < 0 && !failing)
					log_error_errno(r, "cannot sync the audit records of reads to disk; retrying");
				else if (r >= 0 && failing)
					log_notice("the audit records of reads are synced to disk again");
				failing = r < 0;
				pthread_mutex_lock(&au->gc_mu);
				continue;
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += wait / 1000;
		ts.tv_nsec += (wait % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		(void)pthread_cond_timedwait(&au->gc_cond, &au->gc_mu, &ts);
	}
	pthread_mutex_unlock(&au->gc_mu);
	return NULL;
}

static int record(struct auditor *au, struct store_tx *tx, const struct audit_entry *e,
		  const struct secret *genesis_key, bool *ret_mirror_refused)
{
	_cleanup_secret_ struct secret *mac_key = NULL;

	/* Anchored while unlocked; records made while locked are chained and
	 * anchored by the next one made unlocked. */
	if (!tx && !genesis_key)
		return record_batched(au, e, ret_mirror_refused);
	if (!tx) {
		struct store_tx *own = NULL;
		int r;

		if ((r = store_write_begin(au->store, &own)) < 0)
			return r;
		r = append_mirrored(au, own, e, NULL, genesis_key, ret_mirror_refused);
		if (r >= 0)
			return store_write_commit(own);
		store_tx_end(own);
		return r;
	}
	if (!genesis_key)
		(void)keyring_audit_key(au->keyring, &mac_key);
	return append_mirrored(au, tx, e, mac_key, genesis_key, ret_mirror_refused);
}

void auditor_batch_stats(struct auditor *au, uint64_t *ret_batches, uint64_t *ret_records)
{
	pthread_mutex_lock(&au->gc_mu);
	*ret_batches = au->batches;
	*ret_records = au->batched;
	pthread_mutex_unlock(&au->gc_mu);
}

int auditor_record(struct auditor *au, struct store_tx *tx, const struct audit_entry *e, bool *ret_mirror_refused)
{
	return record(au, tx, e, NULL, ret_mirror_refused);
}

int auditor_record_genesis(struct auditor *au, struct store_tx *tx, const struct audit_entry *e,
			   const struct secret *audit_key, bool *ret_mirror_refused)
{
	return record(au, tx, e, audit_key, ret_mirror_refused);
}

int auditor_record_system(struct auditor *au, struct store_tx *tx, const char *action, const char *path,
			  const char *result, const char *detail)
{
	uint8_t id[16];
	char rid[33];
	struct audit_entry e = {
		.principal = AUDIT_SYSTEM_PRINCIPAL,
		.uid = getuid(),
		.pid = getpid(),
		.action = action,
		.path = path,
		.capability = "",
		.result = result,
		.status = streq(result, "allowed") ? 200 : streq(result, "attempt") ? 202 : 500,
		.detail = detail,
		.request_id = rid,
	};

	randombytes_buf(id, sizeof(id));
	sodium_bin2hex(rid, sizeof(rid), id, sizeof(id));
	return record(au, tx, &e, NULL, /* ret_mirror_refused= */ NULL);
}

void auditor_prune_if_due(struct auditor *au)
{
	_cleanup_secret_ struct secret *mac_key = NULL;
	struct store_tx *tx = NULL;
	char detail[256];
	int64_t now = time(NULL), n;
	int r;

	if (!au->cfg.retain_days || now - au->pruned_at < PRUNE_EVERY_S)
		return;
	au->pruned_at = now;
#ifdef VAULTD_FAULT_INJECTION
	{
		/* Test builds: records cannot be aged in the database (their time
		 * is hashed), so the retention clock moves instead. */
		const char *off = getenv("VAULTD_TEST_AUDIT_CLOCK_OFFSET");
		if (off)
			now += strtoll(off, NULL, 10);
	}
#endif
	if (keyring_audit_key(au->keyring, &mac_key) < 0)
		return;                 /* locked: the checkpoint needs the key */
	r = store_write_begin(au->store, &tx);
	if (r < 0)
		return;
	n = audit_prune(tx, now - (int64_t)au->cfg.retain_days * 86400, mac_key, detail, sizeof(detail));
	/* The checkpoint commits with the deletion, or neither does. */
	r = n > 0 ? auditor_record_system(au, tx, AUDIT_PRUNE_ACTION, NULL, "allowed", detail) : (int)MIN(n, 0);
	if (r >= 0 && n > 0)
		r = store_write_commit(TAKE_PTR(tx));
	store_tx_end(tx);
	if (r < 0)
		log_error_errno(r, "audit retention failed; the records stay and it is retried in a day");
	else if (n > 0)
		log_info("audit retention: pruned %" PRId64 " records older than %u days", n, au->cfg.retain_days);
}

void auditor_mirror_failures(struct auditor *au, uint64_t *ret_count, int64_t *ret_last)
{
	pthread_mutex_lock(&au->mu);
	*ret_count = au->mirror_failures;
	*ret_last = au->mirror_last_failure;
	pthread_mutex_unlock(&au->mu);
}
