/* vaultd/audit/audit.h: the tamper-evident audit chain (ARCHITECTURE.md section 7).
 *
 * Each record's hash is SHA-256(previous hash || canonical encoding), the
 * encoding length-prefixing every field (id included), so an edited,
 * deleted, inserted or reordered record breaks the chain at that record.
 * The head is anchored with HMAC-SHA-256 under a key derived from the root
 * key, kept in meta "audit_head" as "v2:<first id>:<head id>:<hex mac>"; the
 * MAC binds the first retained id, the head's id and hash, and whether the
 * authorization rows are sealed (meta "authz_sealed"). Only someone who can
 * unlock the vault can forge it, so rewriting the whole chain from the
 * database alone is detected. init writes the first anchor: an initialised
 * vault without one has had its log wiped. Records appended while locked are
 * chained but anchored only at the next append while unlocked. Retention
 * deletes the oldest records and leaves a checkpoint record carrying the
 * hash of the last one deleted and a MAC over (first, through, hash) under
 * the audit key; verification continues from an authentic checkpoint only.
 * Every string a record stores is printable ASCII (audit_text_escape()).
 * Callers hold a write transaction for appends (which serialises them).
 */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "common/secret.h"
#include "vaultd/store/store.h"

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

/* Appends e in tx (its strings escaped as audit_text_escape() does) and,
 * when mac_key is non-NULL, checks the old anchor and re-anchors the head.
 * When ret is non-NULL it receives the stored record; the caller clears it
 * with store_audit_clear(). */
int audit_append(struct store_tx *tx, const struct audit_entry *e, const struct secret *mac_key,
		 struct store_audit *ret);
/* init only: init's record, anchored under mac_key as the chain's first
 * anchor (records of requests made before init, if any, are covered by it;
 * there is no old anchor to check). -EEXIST if an anchor exists. */
int audit_append_genesis(struct store_tx *tx, const struct audit_entry *e, const struct secret *mac_key,
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
 * anchor is not checked, anchored_through is 0, and no checkpoint is
 * trusted). 0 with *ret filled, or a storage error. */
int audit_verify(struct store_tx *tx, const struct secret *mac_key, struct audit_verify *ret);

/* Retention (unlocked only: mac_key is required, else -EACCES). Checks the
 * anchor first, deletes the records older than 'before', never the newest
 * one (the chain and its anchor continue from it), and writes into detail
 * the text of the checkpoint record the caller must append in the same
 * transaction (action AUDIT_PRUNE_ACTION, principal AUDIT_SYSTEM_PRINCIPAL):
 * the range pruned, the hash of the last record pruned and the MAC over
 * both. Returns the count pruned (0: nothing to prune, detail untouched). */
#define AUDIT_PRUNE_ACTION "audit.prune"
#define AUDIT_SYSTEM_PRINCIPAL "system:vaultd"
int64_t audit_prune(struct store_tx *tx, int64_t before, const struct secret *mac_key, char *detail,
		    size_t detail_size);

/* The authorization seal (see access rows' MACs): meta "authz_sealed" is
 * "1" once every user, role and service row carries a MAC. The anchor MAC
 * binds the flag, so clearing it breaks the anchor. audit_authz_sealed():
 * 1, 0, or a storage error. audit_seal_authz() checks the anchor, sets the
 * flag and re-anchors, in tx. */
#define AUDIT_AUTHZ_SEALED_KEY "authz_sealed"
/* The first authorization row found changed outside vaultd (authz.h);
 * audit_verify() reports it. */
#define AUDIT_AUTHZ_TAMPER_KEY "authz_tamper"
int audit_authz_sealed(struct store_tx *tx);
int audit_seal_authz(struct store_tx *tx, const struct secret *mac_key);
/* Checks the anchor as the next append would (recording a finding): 0 if
 * the log shows no tampering, 1 if it does (now or before), or an error. */
int audit_check_anchor(struct store_tx *tx, const struct secret *mac_key);

/* The two stored formats, each parsed here only. */
struct audit_anchor {
	unsigned version;               /* 1: legacy "<id>:<mac>", read only; 2 */
	int64_t first, id;              /* first is 0 in version 1 */
	uint8_t mac[32];
};
/* 0, or -EINVAL/-ERANGE for anything but the exact format (strict
 * decimals, 64 hex digits, nothing after). */
int audit_anchor_parse(const char *text, struct audit_anchor *ret);
struct audit_checkpoint {
	int64_t first, through;
	uint8_t hash[32];               /* of record 'through' */
	uint8_t mac[32];
};
int audit_checkpoint_parse(const char *detail, struct audit_checkpoint *ret);
bool audit_checkpoint_authentic(const struct secret *key, const struct audit_checkpoint *c);

/* Printable ASCII only: bytes outside 0x20..0x7e and '%' become %HH.
 * Truncates to n - 1 bytes, never inside an escape. The _dup form
 * allocates (NULL in, NULL out; NULL on ENOMEM otherwise). */
void audit_text_escape(char *dst, size_t n, const char *src);
char *audit_text_escape_dup(const char *src);
/* The same without escaping '%': for text on its way out, which is then
 * unchanged if it was written by audit_append(). */
void audit_text_printable(char *dst, size_t n, const char *src);
char *audit_text_printable_dup(const char *src);

/* Exposed for tests: the record hash. */
void audit_record_hash(const uint8_t prev[32], const struct store_audit *a, uint8_t out[32]);
