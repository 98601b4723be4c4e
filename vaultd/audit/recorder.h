/* vaultd/audit/recorder.h: the audit recorder, shared by requests and the
 * rotation worker.
 *
 * Owns the JSON-lines mirror ([audit] jsonl_path) and its failure counters,
 * and the retention clock. Appends records to the chain (audit.h), anchored
 * while the vault is unlocked, and mirrors each one before its transaction
 * commits: under jsonl_on_failure = refuse a record the mirror did not get
 * is not committed either. Borrows the store and the keyring, which must
 * outlive it. Threads: any.
 */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "common/json.h"
#include "vaultd/audit/audit.h"
#include "vaultd/keys/keyring.h"
#include "vaultd/store/store.h"

struct auditor;

struct auditor_config {
	const char *jsonl_path;         /* NULL: no mirror (copied) */
	unsigned jsonl_timeout_ms;      /* a record waits this long for the mirror; 0: 1000 */
	bool jsonl_refuse;              /* a failed mirror write refuses the record */
	unsigned retain_days;           /* 0: keep every record */
	bool sync_normal;               /* [audit] sync = normal (see auditor_record()) */
	unsigned sync_interval_ms;      /* normal: the longest a record stays unsynced; 0: 1000 */
};

int auditor_new(const struct auditor_config *cfg, struct store *s, struct keyring *k, struct auditor **ret);
/* After the last record (join every writer first). NULL-safe. */
void auditor_free(struct auditor *au);

/* Appends e in tx and mirrors it; the caller commits.
 *
 * With tx NULL the record is queued and committed with the records of
 * other requests that arrive meanwhile, in one transaction and one sync
 * (group commit), and this returns when that transaction has committed (or
 * failed: then the record is not in the chain). The chain's order is the
 * queue's. Under sync_normal the batch is committed without an fsync
 * (store_write_begin_relaxed()): in the WAL when this returns, on disk
 * within sync_interval_ms, by the next batch or a thread of the auditor's.
 * Every record made in a caller's transaction is as durable as that
 * transaction.
 *
 * The anchor key is taken inside the transaction, so
 * a root-key switch (which holds the writer) never interleaves with it. The anchor key is taken inside the transaction, so
 * a root-key switch (which holds the writer) never interleaves with it.
 * -errno; *ret_mirror_refused (may be NULL) is set when the refuse policy
 * failed it for the mirror. */
int auditor_record(struct auditor *au, struct store_tx *tx, const struct audit_entry *e, bool *ret_mirror_refused);
/* init's record, the chain's first anchor, under the new root key's audit
 * key (audit_append_genesis()). */
int auditor_record_genesis(struct auditor *au, struct store_tx *tx, const struct audit_entry *e,
			   const struct secret *audit_key, bool *ret_mirror_refused);
/* A record of the daemon's own doing: principal "system:vaultd", status 200
 * ("allowed"), 202 ("attempt") or 500, a random request id. */
int auditor_record_system(struct auditor *au, struct store_tx *tx, const char *action, const char *path,
			  const char *result, const char *detail);

/* Retention ([audit] retain_days): at most once a day, deletes the records
 * older than that and appends the authentic checkpoint. Needs the vault
 * unlocked; the rotation worker's thread calls it. */
void auditor_prune_if_due(struct auditor *au);

/* For GET /v1/sys/metrics: group commits since start, and the records they held. */
void auditor_batch_stats(struct auditor *au, uint64_t *ret_batches, uint64_t *ret_records);
/* For GET /v1/sys/metrics: mirror writes that failed since start, and when
 * the last one did (0: never). */
void auditor_mirror_failures(struct auditor *au, uint64_t *ret_count, int64_t *ret_last);

/* A record as the API and the mirror show it. Its strings are made
 * printable again (rows written before escaping existed, or behind
 * vaultd's back, never make a page fail). NULL on ENOMEM. */
json_t *audit_record_json(const struct store_audit *r);
