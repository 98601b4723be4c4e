/* vaultd/audit.h: the tamper-evident audit chain (ARCHITECTURE.md section 7).
 *
 * Each record's hash is SHA-256(previous hash || canonical encoding), the
 * encoding length-prefixing every field (id included), so an edited,
 * deleted, inserted or reordered record breaks the chain at that record.
 * The head (newest id and hash) is anchored with HMAC-SHA-256 under a key
 * derived from the root key, kept in meta "audit_head" as "<id>:<hex mac>";
 * only someone who can unlock the vault can forge it, so rewriting the whole
 * chain from the database alone is detected. Records appended while locked
 * are chained but anchored only at the next append or verify while unlocked.
 * Retention deletes the oldest records and leaves a checkpoint record that
 * carries the hash of the last one deleted; verification starts from it.
 * Callers hold a write transaction for appends (which serialises them).
 */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "common/secret.h"
#include "vaultd/store.h"

struct audit_entry {
	const char *principal;          /* "user:alice", "service:x", "uid:1000" */
	uid_t uid;
	pid_t pid;
	const char *action;
	const char *path;               /* NULL if none */
	const char *capability;         /* "" or NULL if none */
	const char *result;             /* "allowed", "denied", "failed" */
	int status;
	const char *detail;             /* NULL if none; never secret */
	const char *request_id;
};

/* Appends e in tx and, when mac_key is non-NULL, re-anchors the head. When
 * ret is non-NULL it receives the stored record (its path and detail borrow
 * from e). */
int audit_append(struct store_tx *tx, const struct audit_entry *e, const struct secret *mac_key,
		 struct store_audit *ret);
/* Anchors the current head (no-op on an empty log). */
int audit_anchor(struct store_tx *tx, const struct secret *mac_key);
/* Root-key rotation: checks the anchor under old_key (recording tampering as
 * any anchor move does), then anchors the head under new_key. */
int audit_reanchor(struct store_tx *tx, const struct secret *old_key, const struct secret *new_key);

struct audit_verify {
	bool ok;
	int64_t records;
	int64_t anchored_through;       /* id the anchor covers; 0 if none */
	int64_t first_broken;           /* 0 if ok */
	char reason[192];
};
/* Recomputes the chain and checks the anchor (mac_key may be NULL: then the
 * anchor is not checked and anchored_through is 0). 0 with *ret filled, or a
 * storage error. */
int audit_verify(struct store_tx *tx, const struct secret *mac_key, struct audit_verify *ret);

/* Retention. Deletes the records older than 'before', never the newest one
 * (the chain and its anchor continue from it), and writes into detail the
 * text of the checkpoint record the caller must append in the same
 * transaction (action AUDIT_PRUNE_ACTION): the range pruned and the hash of
 * the last record pruned, from which audit_verify() continues the chain.
 * Returns the count pruned (0: nothing to prune, detail untouched). */
#define AUDIT_PRUNE_ACTION "audit.prune"
int64_t audit_prune(struct store_tx *tx, int64_t before, char *detail, size_t detail_size);

/* Exposed for tests: the record hash. */
void audit_record_hash(const uint8_t prev[32], const struct store_audit *a, uint8_t out[32]);
