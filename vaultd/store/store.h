/* vaultd/store/store.h: SQLite storage for wrapped keys, secrets and users.
 *
 * Nothing here is plaintext secret material: data and DEKs arrive sealed
 * (see envelope.h); only names, types, metadata (non-secret by contract),
 * timestamps and Argon2id PHC strings are stored as text.
 *
 * The database runs in WAL mode with synchronous=FULL (an acknowledged commit
 * survives kill -9 and power loss; store_write_begin_relaxed() is the one
 * exception, for audit records of reads under [audit] sync = normal), secure_delete=ON, foreign_keys=ON, and a
 * busy timeout. The schema is created and upgraded by numbered migrations
 * (PRAGMA user_version). Every statement is prepared with bound parameters.
 *
 * Concurrency: one writer connection (a mutex serialises write transactions)
 * and a small pool of reader connections; readers see a consistent snapshot
 * and never block the writer. Every access happens inside a transaction
 * handle: store_write_begin() / store_read_begin(), then _commit/_end. A
 * struct store_tx belongs to the thread that began it.
 *
 * Errors: 0 or a count on success; -ENOENT not found; -EEXIST constraint
 * (unique) violation; -EBUSY database locked past the busy timeout; -EIO any
 * other SQLite failure (logged at debug level with sqlite3_errmsg); -ENOMEM;
 * -EINVAL bad argument. Out-structures are filled only on success; their
 * heap members (blobs, strings) are owned by the caller and released with the
 * matching *_clear() function.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "common/path.h"
#include "common/util.h"

/* A secret path or prefix with its NUL. */
#define PATH_MAX_TEXT (PATH_MAX_LEN + 1)

struct store;
struct store_tx;

/* Opens (creating if needed, mode 0600) and migrates. readers: pool size (1..16).
 * -EIO also for a database from a newer vaultd (user_version too high) or one
 * that is not a vaultd database. */
int store_open(const char *path, unsigned readers, struct store **ret);
void store_close(struct store *s);              /* NULL-safe; checkpoints the WAL */
DEFINE_CLEANUP(struct store *, store_close)
int store_schema_version(struct store *s);      /* >= 1 */

/* BEGIN IMMEDIATE on the writer, holding the writer mutex until commit/abort.
 * -EDEADLK if the calling thread already holds the write transaction. */
int store_write_begin(struct store *s, struct store_tx **ret);
/* COMMIT and release. On failure the transaction is rolled back and released. */
int store_write_commit(struct store_tx *tx);
/* The same, committed at PRAGMA synchronous = NORMAL: the commit is in the
 * WAL when it returns, so it survives the process being killed, but not a
 * power loss until a synced commit (any store_write_begin() transaction that
 * changes a row) or store_sync() follows. Only for what may be lost that
 * way: the audit records of reads under [audit] sync = normal. */
int store_write_begin_relaxed(struct store *s, struct store_tx **ret);
/* CLOCK_MONOTONIC ms (now_ms()) of the oldest relaxed commit that no synced
 * commit has covered yet; 0 if every commit is durable. Any thread. */
int64_t store_unsynced_since(struct store *s);
/* Makes every relaxed commit durable: a synced commit of meta
 * "wal_synced_at". 0 or -errno. */
int store_sync(struct store *s);
/* BEGIN (deferred) on a pooled reader: a consistent snapshot. */
int store_read_begin(struct store *s, struct store_tx **ret);
/* Ends either kind: ROLLBACK if still open, release. NULL-safe. */
void store_tx_end(struct store_tx *tx);
DEFINE_CLEANUP(struct store_tx *, store_tx_end)
/* PRAGMA wal_checkpoint(TRUNCATE): after destroy, so wiped blobs leave the WAL. */
int store_checkpoint(struct store *s);
/* PRAGMA integrity_check == "ok" -> 0, else -EIO. */
int store_integrity_check(struct store *s);

/* --- key-value metadata (e.g. "initialized_at") --- */
int store_meta_get(struct store_tx *tx, const char *key, char **ret_value);     /* -ENOENT */
int store_meta_set(struct store_tx *tx, const char *key, const char *value);    /* upsert */

/* --- root keys: the HSM-wrapped RK, one row per RK version --- */
struct store_rootkey {
	uint32_t version;
	char hsm_label[65];
	uint32_t hsm_version;
	uint8_t *blob;          /* keyprov blob */
	size_t blob_len;
	int64_t created_at;     /* unix seconds */
};
void store_rootkey_clear(struct store_rootkey *rk);
int store_rootkey_put(struct store_tx *tx, const struct store_rootkey *rk);     /* -EEXIST */
/* The highest version. -ENOENT when the vault is not initialised. */
int store_rootkey_get_current(struct store_tx *tx, struct store_rootkey *ret);
/* Every RK row, ascending by version, blobs loaded (borrowed by cb). */
int store_rootkey_list(struct store_tx *tx, int (*cb)(const struct store_rootkey *rk, void *userdata),
		       void *userdata);
/* Replaces one row's HSM label, HSM version and blob. -ENOENT if absent. */
int store_rootkey_rewrap(struct store_tx *tx, uint32_t version, const char *hsm_label, uint32_t hsm_version,
			 const uint8_t *blob, size_t len);
/* Deletes RK rows below 'below'. -EEXIST (and nothing deleted) if a KEK
 * still references one. Returns the count deleted. */
int store_rootkey_delete_below(struct store_tx *tx, uint32_t below);

/* --- tenant KEKs: one row per (tenant, version), wrapped by an RK version --- */
struct store_kek {
	char tenant[65];
	uint32_t version;
	uint32_t rk_version;
	uint8_t *blob;          /* envelope KEK blob */
	size_t blob_len;
	uint64_t wrap_count;    /* DEKs wrapped so far under this KEK */
	int64_t created_at;
};
void store_kek_clear(struct store_kek *k);
int store_kek_put(struct store_tx *tx, const struct store_kek *k);              /* -EEXIST */
int store_kek_get(struct store_tx *tx, const char *tenant, uint32_t version, struct store_kek *ret);
/* The highest version for the tenant; -ENOENT if the tenant has none. */
int store_kek_get_current(struct store_tx *tx, const char *tenant, struct store_kek *ret);
/* wrap_count += n. -ENOENT if absent. */
int store_kek_add_wraps(struct store_tx *tx, const char *tenant, uint32_t version, uint64_t n);
/* KEK rows (any tenant, any version) wrapped under an RK version below
 * below_rk, ascending by (tenant, version), at most limit; blobs loaded. cb's
 * struct is borrowed; cb returning < 0 stops with that value. Returns count. */
int store_kek_list_old_rk(struct store_tx *tx, uint32_t below_rk, unsigned limit,
			  int (*cb)(const struct store_kek *k, void *userdata), void *userdata);
int64_t store_kek_count_old_rk(struct store_tx *tx, uint32_t below_rk);
/* Replaces one KEK row's rk_version and blob. -ENOENT if absent. */
int store_kek_rewrap(struct store_tx *tx, const char *tenant, uint32_t version, uint32_t rk_version,
		     const uint8_t *blob, size_t len);
/* Deletes the tenant's KEK versions below 'below' that no not-destroyed
 * secret version references. Returns the count deleted. */
int store_kek_delete_unused(struct store_tx *tx, const char *tenant, uint32_t below);
/* Each tenant's current (highest) KEK, ascending by tenant; blobs not
 * loaded. Returns count. */
int store_kek_list_current(struct store_tx *tx, int (*cb)(const struct store_kek *k, void *userdata),
			   void *userdata);
/* Every KEK row of the tenant, ascending by version, blobs not loaded. */
int store_kek_list_tenant(struct store_tx *tx, const char *tenant,
			  int (*cb)(const struct store_kek *k, void *userdata), void *userdata);

/* --- secrets: a head row per path and one row per version --- */
struct store_secret {
	char *path;             /* "<tenant>/<rest>" */
	char tenant[65];
	char type[33];
	char *metadata;         /* JSON object text, never NULL ("{}") */
	uint32_t current_version;
	uint32_t latest_version;/* highest version ever written (versions are never reused) */
	uint32_t pending_version;       /* migration 4: staged, not yet served as current; 0 = none */
	uint32_t previous_version;      /* migration 4: the current one before the last change; 0 = none */
	int64_t created_at, updated_at;
	int64_t deleted_at;     /* 0 when live; soft-deleted otherwise */
};
void store_secret_clear(struct store_secret *s);
struct store_version {
	uint32_t version;
	uint32_t kek_version;
	uint8_t *dek_blob;      /* NULL once destroyed */
	size_t dek_len;
	uint8_t *data_blob;     /* NULL once destroyed */
	size_t data_len;
	int64_t created_at;
};
void store_version_clear(struct store_version *v);

/* Head row, including soft-deleted ones. -ENOENT if the path was never
 * written or was destroyed. */
int store_secret_get(struct store_tx *tx, const char *path, struct store_secret *ret);
int store_version_get(struct store_tx *tx, const char *path, uint32_t version, struct store_version *ret);
/* Writes version v->version of path (must be latest_version + 1, or 1 for a
 * new path: else -EEXIST) and makes it current: upserts the head with type,
 * metadata (NULL keeps the previous metadata, or "{}"), updated_at = v->created_at,
 * deleted_at = 0; created_at set on first write only. previous_version becomes
 * the old current_version (0 for a new path); pending_version is kept. */
int store_secret_put_version(struct store_tx *tx, const char *path, const char *tenant,
			     const char *type, const char *metadata, const struct store_version *v);
/* Staging (migration 4). Writes version v->version (latest_version + 1, else
 * -EEXIST) of an existing live path (-ENOENT if absent or soft-deleted) as
 * pending: current_version and previous_version unchanged, pending_version =
 * v->version (a pending version it replaces stays as an ordinary old
 * version), metadata as in store_secret_put_version, updated_at = v->created_at. */
int store_secret_put_pending(struct store_tx *tx, const char *path, const char *metadata,
			     const struct store_version *v);
/* Makes the pending version current: previous_version = old current,
 * current_version = pending_version, pending_version = 0, updated_at = now.
 * -ENOENT if the path is absent or deleted; -ESRCH if it has no pending
 * version or version != 0 and differs from it. Returns the promoted version. */
int store_secret_promote(struct store_tx *tx, const char *path, uint32_t version, int64_t now);
/* Destroys (dek_blob, data_blob = NULL) every version of path that is not
 * among the newest 'keep' versions (by number) and is not the current,
 * previous or pending version. keep >= 1. Returns the count destroyed. */
int store_secret_prune_versions(struct store_tx *tx, const char *path, unsigned keep);
/* Live secrets whose metadata object has a string "max_age" key, ordered by
 * path: cb gets the head, that string, and the created_at of the current
 * version. cb returning < 0 stops with that value. */
int store_secret_list_max_age(struct store_tx *tx,
			      int (*cb)(const struct store_secret *s, const char *max_age, int64_t current_created_at,
					void *userdata),
			      void *userdata);
/* Sets deleted_at. -ENOENT if absent or already deleted. */
int store_secret_soft_delete(struct store_tx *tx, const char *path, int64_t now);
/* Deletes the head and every version row (secure_delete zeroes the pages).
 * -ENOENT if absent. */
int store_secret_destroy(struct store_tx *tx, const char *path);
/* Live (not soft-deleted) heads whose path equals prefix or starts with
 * prefix + "/", ordered by path; at most limit rows (0 = no limit). cb's
 * struct is borrowed for the call. cb returning < 0 stops with that value. */
int store_secret_list(struct store_tx *tx, const char *prefix, unsigned limit,
		      int (*cb)(const struct store_secret *s, void *userdata), void *userdata);
/* Version rows of one path, ascending; blobs are not loaded (NULL) but
 * dek_len/data_len are set (0 = destroyed). */
int store_version_list(struct store_tx *tx, const char *path,
		       int (*cb)(const struct store_version *v, void *userdata), void *userdata);

/* --- rotation support (migration 4) ---
 * The batch readers load blobs; their cb gets the path and the row, both
 * borrowed for the call; cb returning < 0 stops with that value. Each returns
 * the number of rows passed to cb. "Under prefix" means path == prefix or
 * path starts with prefix + "/"; the prefix "" means every path. */
typedef int (*store_version_cb)(const char *path, const struct store_version *v, void *userdata);
/* Not-destroyed versions of the tenant's secrets whose kek_version is below
 * below_version, ascending by (path, version), at most limit (>= 1). */
int store_version_list_old_kek(struct store_tx *tx, const char *tenant, uint32_t below_version,
			       unsigned limit, store_version_cb cb, void *userdata);
/* How many such rows there are (no limit). */
int64_t store_version_count_old_kek(struct store_tx *tx, const char *tenant, uint32_t below_version);
/* Not-destroyed versions under prefix with (path, version) strictly after
 * (after_path, after_version) in ascending order ("" and 0 = from the start),
 * at most limit (>= 1). Soft-deleted secrets are included (their versions
 * still hold data). */
int store_version_list_range(struct store_tx *tx, const char *prefix, const char *after_path,
			     uint32_t after_version, unsigned limit, store_version_cb cb, void *userdata);
int64_t store_version_count_prefix(struct store_tx *tx, const char *prefix);
/* Replaces one version's kek_version and DEK blob, and its data blob when
 * data_blob is non-NULL. -ENOENT if absent or destroyed. */
int store_version_rewrap(struct store_tx *tx, const char *path, uint32_t version, uint32_t kek_version,
			 const uint8_t *dek_blob, size_t dek_len, const uint8_t *data_blob, size_t data_len);
/* Sets kek_version on the tenant's destroyed versions (no blobs) whose
 * kek_version is below kek_version, so no row names a retired key. Count. */
int store_version_retag_destroyed(struct store_tx *tx, const char *tenant, uint32_t kek_version);

/* --- users (migration 2 adds the MFA columns) --- */
enum store_mfa_state {
	STORE_MFA_NONE = 0,     /* no second factor (never for a usable account) */
	STORE_MFA_PENDING = 1,  /* enrolled, waiting for the first valid code */
	STORE_MFA_ACTIVE = 2,
};
struct store_user {
	char name[65];
	char *phc;              /* Argon2id encoded hash */
	char *roles;            /* JSON array text, e.g. ["admin"] */
	int mfa_state;          /* enum store_mfa_state */
	uint8_t *mfa_key;       /* keyprov blob: the user's 32-byte MFA key wrapped by the HSM; NULL if none */
	size_t mfa_key_len;
	uint8_t *totp_blob;     /* envelope TOTP blob: the TOTP secret under the MFA key; NULL if none */
	size_t totp_len;
	uint64_t totp_last_step;/* highest TOTP step accepted (single use) */
	int64_t created_at, updated_at;
	char mac[65];           /* migration 6: the authorization seal (authz.h); "" = none */
};
void store_user_clear(struct store_user *u);
int store_user_put(struct store_tx *tx, const struct store_user *u);    /* upsert (created_at kept) */
int store_user_get(struct store_tx *tx, const char *name, struct store_user *ret);
int store_user_delete(struct store_tx *tx, const char *name);          /* -ENOENT; cascades tokens and recovery codes */
int store_user_count(struct store_tx *tx);                               /* >= 0 */
/* Users ordered by name; blobs not loaded (NULL, lengths 0). */
int store_user_list(struct store_tx *tx, int (*cb)(const struct store_user *u, void *userdata), void *userdata);
/* Users whose roles array contains role (SQLite json_each). */
int store_user_count_with_role(struct store_tx *tx, const char *role);
/* Users that hold an MFA key blob, ascending by name: cb gets the name and
 * the blob (borrowed). Returns count. */
int store_user_list_mfa_keys(struct store_tx *tx,
			     int (*cb)(const char *name, const uint8_t *blob, size_t len, void *userdata),
			     void *userdata);
/* Replaces a user's MFA key blob (HSM-key rotation). -ENOENT if no such user. */
int store_user_set_mfa_key(struct store_tx *tx, const char *name, const uint8_t *blob, size_t len);
/* Records a used TOTP step atomically: succeeds only if step > totp_last_step
 * (else -EALREADY, nothing changed); -ENOENT if no such user. Sets mfa_state
 * to ACTIVE (completing a pending enrolment). */
int store_user_use_totp_step(struct store_tx *tx, const char *name, uint64_t step);

/* --- recovery codes: hex SHA-256 of each one-time code --- */
/* Replaces the user's codes with these n. */
int store_recovery_set(struct store_tx *tx, const char *user, const char (*hashes)[65], unsigned n);
/* Deletes one matching code: 0, or -ENOENT if the user has no such code. */
int store_recovery_consume(struct store_tx *tx, const char *user, const char *hash);
int store_recovery_count(struct store_tx *tx, const char *user);        /* >= 0 */

/* --- session tokens: stored as hex SHA-256 of the bearer token --- */
struct store_token {
	char hash[65];
	char user[65];
	uint32_t uid;           /* the uid that logged in; the token works only from it */
	int64_t created_at, expires_at;
};
int store_token_put(struct store_tx *tx, const struct store_token *t);  /* -EEXIST */
int store_token_get(struct store_tx *tx, const char *hash, struct store_token *ret);   /* -ENOENT */
int store_token_delete(struct store_tx *tx, const char *hash);          /* -ENOENT */
int store_token_delete_user(struct store_tx *tx, const char *user);     /* count deleted */
/* Every token of user but the one whose hash is keep_hash. Count deleted. */
int store_token_delete_user_except(struct store_tx *tx, const char *user, const char *keep_hash);
int store_token_delete_all(struct store_tx *tx);                         /* count deleted */
int store_token_purge_expired(struct store_tx *tx, int64_t now);         /* count deleted */

/* --- custom roles: rules as JSON text {"rules":[{"path","capabilities"}]} --- */
struct store_role {
	char name[65];
	char *rules;
	int64_t created_at, updated_at;
	char mac[65];           /* migration 6: the authorization seal; "" = none */
};
void store_role_clear(struct store_role *r);
int store_role_put(struct store_tx *tx, const struct store_role *r);    /* upsert (created_at kept) */
int store_role_get(struct store_tx *tx, const char *name, struct store_role *ret);     /* -ENOENT */
int store_role_delete(struct store_tx *tx, const char *name);          /* -ENOENT */
int store_role_list(struct store_tx *tx, int (*cb)(const struct store_role *r, void *userdata), void *userdata);
/* Users and services whose roles array names role. */
int store_role_refs(struct store_tx *tx, const char *role);              /* >= 0 */

/* --- service bindings: a Unix uid acting as a named service --- */
struct store_service {
	char name[65];
	uint32_t uid;           /* unique across services */
	char *roles;            /* JSON array text */
	int64_t created_at, updated_at;
	char mac[65];           /* migration 6: the authorization seal; "" = none */
};
void store_service_clear(struct store_service *s);
/* Upsert by name; -EEXIST if uid is bound to another service. */
int store_service_put(struct store_tx *tx, const struct store_service *s);
int store_service_get(struct store_tx *tx, const char *name, struct store_service *ret);       /* -ENOENT */
int store_service_get_by_uid(struct store_tx *tx, uint32_t uid, struct store_service *ret);    /* -ENOENT */
int store_service_delete(struct store_tx *tx, const char *name);       /* -ENOENT */
int store_service_list(struct store_tx *tx, int (*cb)(const struct store_service *s, void *userdata), void *userdata);

/* --- brute-force accounting, keyed "user:<name>" or "uid:<n>" --- */
struct store_failure {
	uint32_t count;         /* failures in the current window */
	int64_t window_start;
	int64_t locked_until;   /* 0 when not locked */
};
/* -ENOENT when the key has no record. */
int store_failure_get(struct store_tx *tx, const char *key, struct store_failure *ret);
/* One more failure at now: a window older than 'window' seconds restarts at
 * count 1; reaching max sets locked_until = now + lockout. Returns the record. */
int store_failure_record(struct store_tx *tx, const char *key, int64_t now, int64_t window, uint32_t max,
			 int64_t lockout, struct store_failure *ret);
int store_failure_clear(struct store_tx *tx, const char *key);          /* 0 even if absent */

/* --- rotation jobs (migration 4): one row per requested rotation --- */
struct store_rotation {
	int64_t id;                     /* assigned by store_rotation_add */
	char kind[16];                  /* "secret", "kek", "root", "hsm" */
	char target[PATH_MAX_TEXT];     /* prefix (secret), tenant (kek), "" (root, hsm) */
	char state[16];                 /* "queued", "running", "done", "failed" */
	char principal[80];             /* who asked: "user:alice", "system:vaultd" */
	char request_id[33];
	uint32_t from_version;          /* key version being retired (kek, root, hsm); 0 if n/a */
	uint32_t to_version;            /* key version rotated to; 0 until known */
	int64_t done, total;            /* progress in rows (total may grow) */
	char cursor_path[PATH_MAX_TEXT];/* secret: resume after (cursor_path, cursor_version) */
	uint32_t cursor_version;
	char error[256];                /* "" unless failed: a reason, never secret */
	int64_t created_at, updated_at, finished_at;   /* finished_at 0 while active */
};
#define STORE_ROTATION_ACTIVE(r) (strcmp((r)->state, "queued") == 0 || strcmp((r)->state, "running") == 0)
/* Inserts r (id ignored) and sets r->id. -EINVAL on a bad kind or state;
 * -EEXIST if r is active and another active job has its kind and target
 * (migration 5: one active job per kind and target). */
int store_rotation_add(struct store_tx *tx, struct store_rotation *r);
/* Rewrites every mutable field of row r->id. -ENOENT if absent. */
int store_rotation_update(struct store_tx *tx, const struct store_rotation *r);
int store_rotation_get(struct store_tx *tx, int64_t id, struct store_rotation *ret);   /* -ENOENT */
/* The oldest (lowest id) job in state "queued" or "running". -ENOENT if none. */
int store_rotation_next(struct store_tx *tx, struct store_rotation *ret);
/* The active job of this kind and target, if any. -ENOENT if none. */
int store_rotation_find_active(struct store_tx *tx, const char *kind, const char *target,
			       struct store_rotation *ret);
/* Every active job plus the newest finished ones, at most limit rows in
 * all, newest first. cb's struct is borrowed. Returns count. */
int store_rotation_list(struct store_tx *tx, unsigned limit,
			int (*cb)(const struct store_rotation *r, void *userdata), void *userdata);

/* --- backup --- */
struct store_backup_info {
	int64_t bytes;                  /* size of the copy */
	uint8_t sha256[32];             /* of the copy's bytes */
	int schema_version;
};
/* A consistent online copy of the database (VACUUM INTO from a reader
 * snapshot) at path, which must not exist (-EEXIST); created 0600 with
 * O_EXCL|O_NOFOLLOW, removed again on any failure. Writers are not blocked.
 * -ENOENT/-EACCES/... for the directory. */
int store_backup(struct store *s, const char *path, struct store_backup_info *ret);

/* --- audit: append-only, hash-chained (migration 3) --- */
struct store_audit {
	int64_t id;                     /* 1, 2, 3, ... assigned by append */
	int64_t time;                   /* unix seconds */
	char principal[80];             /* "user:alice", "service:sync", "uid:1000" */
	uint32_t uid;
	int32_t pid;
	char action[48];                /* e.g. "secret.read", "sys.unlock" */
	char *path;                     /* NULL if the request names none */
	char capability[16];            /* "" if none asked */
	char result[16];                /* "allowed", "denied", "failed", "attempt" (migration 7) */
	int status;                     /* the HTTP status answered */
	char *detail;                   /* short reason, never secret; NULL if none */
	char request_id[33];
	uint8_t hash[32];               /* SHA-256(previous hash || canonical record) */
};
void store_audit_clear(struct store_audit *a);  /* frees path and detail; NULL-safe */
/* The record with the highest id. -ENOENT when the log is empty. */
int store_audit_last(struct store_tx *tx, struct store_audit *ret);
/* Inserts with id = last id + 1 (the caller computed rec->hash for that id);
 * any other id: -EEXIST, nothing written. -EINVAL on a read transaction or a
 * bad field (principal and action non-empty; every char[] field NUL-terminated
 * within its size; result one of "allowed", "denied", "failed", "attempt"). */
int store_audit_append(struct store_tx *tx, const struct store_audit *rec);
struct store_audit_filter {
	int64_t since, until;           /* time bounds, inclusive; 0 = open */
	const char *principal;          /* exact, or NULL */
	const char *path_prefix;        /* path equals it or is below it (segment boundary), or NULL */
	const char *action;             /* exact, or NULL */
	const char *result;             /* exact, or NULL */
	int64_t after_id;               /* cursor: only ids > after_id (ascending) or < (descending, 0 = open) */
	unsigned limit;                 /* 1..10000 */
	bool descending;                /* newest first (tail) */
};
/* Records matching f, in id order; returns the count. -EINVAL for a limit
 * outside 1..10000, after_id < 0, an empty path_prefix or an unknown result.
 * cb's struct is borrowed for the call; cb returning < 0 stops with that value. */
int store_audit_query(struct store_tx *tx, const struct store_audit_filter *f,
		      int (*cb)(const struct store_audit *a, void *userdata), void *userdata);
/* Retention: the record with the highest id whose time is before 'before'.
 * -ENOENT if none. */
int store_audit_last_before(struct store_tx *tx, int64_t before, struct store_audit *ret);
/* The record with the lowest id. -ENOENT when the log is empty. */
int store_audit_first(struct store_tx *tx, struct store_audit *ret);
/* The record with this id; -ENOENT if there is none. */
int store_audit_get(struct store_tx *tx, int64_t id, struct store_audit *ret);
/* Deletes every record with id <= through (retention only). Returns count. */
int64_t store_audit_delete_through(struct store_tx *tx, int64_t through);
/* Every record, ascending by id (for verification). */
int store_audit_iterate(struct store_tx *tx, int (*cb)(const struct store_audit *a, void *userdata),
			void *userdata);
