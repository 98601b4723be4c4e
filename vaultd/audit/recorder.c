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
};

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
	if (!au->cfg.jsonl_timeout_ms)
		au->cfg.jsonl_timeout_ms = 1000;
	if (cfg->jsonl_path) {
		au->jsonl_path = strdup(cfg->jsonl_path);
		au->cfg.jsonl_path = au->jsonl_path;
		r = au->jsonl_path ? mirror_new(au->jsonl_path, au->cfg.jsonl_timeout_ms, &au->mirror) : -ENOMEM;
		if (r < 0) {
			auditor_free(au);
			return r;
		}
	}
	*ret = au;
	return 0;
}

void auditor_free(struct auditor *au)
{
	if (!au)
		return;
	mirror_free(au->mirror);
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

static int record(struct auditor *au, struct store_tx *tx, const struct audit_entry *e,
		  const struct secret *genesis_key, bool *ret_mirror_refused)
{
	_cleanup_secret_ struct secret *mac_key = NULL;
	struct store_audit rec = {0};
	struct store_tx *own = NULL;
	int r;

	if (!tx) {
		r = store_write_begin(au->store, &own);
		if (r < 0)
			return r;
		tx = own;
	}
	/* Anchored while unlocked; records made while locked are chained and
	 * anchored by the next one made unlocked. */
	if (genesis_key)
		r = audit_append_genesis(tx, e, genesis_key, &rec);
	else {
		(void)keyring_audit_key(au->keyring, &mac_key);
		r = audit_append(tx, e, mac_key, &rec);
	}
	/* Mirror before the commit: with the refuse policy a record the
	 * mirror did not get is not committed either. */
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
	if (own) {
		if (r >= 0)
			r = store_write_commit(TAKE_PTR(own));
		store_tx_end(own);
	}
	return r;
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
