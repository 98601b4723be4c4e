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
};

int auditor_new(const struct auditor_config *cfg, struct store *s, struct keyring *k, struct auditor **ret);
/* After the last record (join every writer first). NULL-safe. */
void auditor_free(struct auditor *au);

/* Appends e in tx (or a write transaction of its own, committed, when tx is
 * NULL) and mirrors it. The anchor key is taken inside the transaction, so
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

/* For GET /v1/sys/metrics: mirror writes that failed since start, and when
 * the last one did (0: never). */
void auditor_mirror_failures(struct auditor *au, uint64_t *ret_count, int64_t *ret_last);

/* A record as the API and the mirror show it. Its strings are made
 * printable again (rows written before escaping existed, or behind
 * vaultd's back, never make a page fail). NULL on ENOMEM. */
json_t *audit_record_json(const struct store_audit *r);
