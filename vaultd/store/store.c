/* vaultd/store/store.c: SQLite storage; see store.h.
 *
 * One writer connection behind an error-checking mutex, and a pool of
 * read-only connections handed out whole. Each connection keeps its own cache
 * of prepared statements (SQLITE_PREPARE_PERSISTENT), so a statement is only
 * ever used by the thread that holds the connection. A struct store_tx lives
 * inside its connection: beginning a transaction allocates nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/log.h"
#include "common/util.h"
#include "vaultd/store/store.h"

#define STORE_READERS_MAX 16
#define STORE_BUSY_TIMEOUT_MS 5000
/* PRAGMA application_id, "VLTD" (0x564c5444) in decimal so that the
 * migration can spell it: tells a vaultd database from any other. */
#define STORE_APPLICATION_ID 1447842884
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

/* Migration N (index N-1) moves user_version N-1 -> N in one transaction.
 * Append only: a shipped migration is never edited.
 *
 * STRICT tables (SQLite >= 3.37) make a wrongly typed bind an error instead
 * of a silently stored value. Version columns are checked to fit uint32_t, so
 * what we read back always fits the structs in store.h. Blob tables with rows
 * that can grow (secret data) stay rowid tables; small fixed rows use
 * WITHOUT ROWID. */
static const char *const migrations[] = {
	/* 1: initial schema */
	"PRAGMA application_id = " STRINGIFY(STORE_APPLICATION_ID) ";\n"
	"CREATE TABLE meta (\n"
	"	key TEXT NOT NULL PRIMARY KEY,\n"
	"	value TEXT NOT NULL\n"
	") STRICT, WITHOUT ROWID;\n"
	"CREATE TABLE root_keys (\n"
	"	version INTEGER PRIMARY KEY CHECK (version BETWEEN 0 AND 4294967295),\n"
	"	hsm_label TEXT NOT NULL,\n"
	"	hsm_version INTEGER NOT NULL CHECK (hsm_version BETWEEN 0 AND 4294967295),\n"
	"	blob BLOB NOT NULL,\n"
	"	created_at INTEGER NOT NULL\n"
	") STRICT;\n"
	"CREATE TABLE keks (\n"
	"	tenant TEXT NOT NULL,\n"
	"	version INTEGER NOT NULL CHECK (version BETWEEN 0 AND 4294967295),\n"
	"	rk_version INTEGER NOT NULL REFERENCES root_keys(version),\n"
	"	blob BLOB NOT NULL,\n"
	"	wrap_count INTEGER NOT NULL DEFAULT 0 CHECK (wrap_count >= 0),\n"
	"	created_at INTEGER NOT NULL,\n"
	"	PRIMARY KEY (tenant, version)\n"
	") STRICT, WITHOUT ROWID;\n"
	/* Root-key rotation finds the KEKs wrapped by an old RK; also the
	 * child index SQLite wants for the foreign key check. */
	"CREATE INDEX keks_by_rk_version ON keks(rk_version);\n"
	"CREATE TABLE secrets (\n"
	"	path TEXT NOT NULL PRIMARY KEY,\n"
	"	tenant TEXT NOT NULL,\n"
	"	type TEXT NOT NULL,\n"
	"	metadata TEXT NOT NULL DEFAULT '{}',\n"
	"	current_version INTEGER NOT NULL,\n"
	"	latest_version INTEGER NOT NULL CHECK (latest_version <= 4294967295),\n"
	"	created_at INTEGER NOT NULL,\n"
	"	updated_at INTEGER NOT NULL,\n"
	"	deleted_at INTEGER NOT NULL DEFAULT 0,\n"
	"	CHECK (current_version BETWEEN 1 AND latest_version)\n"
	") STRICT;\n"
	"CREATE TABLE secret_versions (\n"
	"	path TEXT NOT NULL REFERENCES secrets(path) ON DELETE CASCADE,\n"
	"	version INTEGER NOT NULL CHECK (version BETWEEN 1 AND 4294967295),\n"
	"	kek_version INTEGER NOT NULL CHECK (kek_version BETWEEN 0 AND 4294967295),\n"
	"	dek_blob BLOB,\n"
	"	data_blob BLOB,\n"
	"	created_at INTEGER NOT NULL,\n"
	"	PRIMARY KEY (path, version)\n"
	") STRICT;\n"
	/* KEK rotation: the DEKs still wrapped by an old KEK version, narrowed
	 * to one tenant by a path range (the tenant is the first segment). */
	"CREATE INDEX secret_versions_by_kek ON secret_versions(kek_version, path);\n"
	"CREATE TABLE users (\n"
	"	name TEXT NOT NULL PRIMARY KEY,\n"
	"	phc TEXT NOT NULL,\n"
	"	roles TEXT NOT NULL,\n"
	"	created_at INTEGER NOT NULL,\n"
	"	updated_at INTEGER NOT NULL\n"
	") STRICT;\n",
	/* 2: MFA, recovery codes, session tokens, custom roles, service
	 * bindings, brute-force accounting. ADD COLUMN checks the new CHECKs
	 * against existing rows; the defaults make v1 users MFA_NONE. */
	"ALTER TABLE users ADD COLUMN mfa_state INTEGER NOT NULL DEFAULT 0\n"
	"	CHECK (mfa_state IN (0, 1, 2));\n"
	"ALTER TABLE users ADD COLUMN mfa_key BLOB;\n"
	"ALTER TABLE users ADD COLUMN totp_blob BLOB;\n"
	"ALTER TABLE users ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0\n"
	"	CHECK (totp_last_step >= 0);\n"
	"CREATE TABLE recovery_codes (\n"
	"	user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,\n"
	"	hash TEXT NOT NULL,\n"
	"	PRIMARY KEY (user, hash)\n"
	") STRICT, WITHOUT ROWID;\n"
	"CREATE TABLE tokens (\n"
	"	hash TEXT NOT NULL PRIMARY KEY,\n"
	"	user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,\n"
	"	uid INTEGER NOT NULL CHECK (uid BETWEEN 0 AND 4294967295),\n"
	"	created_at INTEGER NOT NULL,\n"
	"	expires_at INTEGER NOT NULL\n"
	") STRICT, WITHOUT ROWID;\n"
	/* The cascade from users and logout-everywhere; the purge. */
	"CREATE INDEX tokens_by_user ON tokens(user);\n"
	"CREATE INDEX tokens_by_expiry ON tokens(expires_at);\n"
	"CREATE TABLE roles (\n"
	"	name TEXT NOT NULL PRIMARY KEY,\n"
	"	rules TEXT NOT NULL,\n"
	"	created_at INTEGER NOT NULL,\n"
	"	updated_at INTEGER NOT NULL\n"
	") STRICT, WITHOUT ROWID;\n"
	"CREATE TABLE services (\n"
	"	name TEXT NOT NULL PRIMARY KEY,\n"
	"	uid INTEGER NOT NULL UNIQUE CHECK (uid BETWEEN 0 AND 4294967295),\n"
	"	roles TEXT NOT NULL,\n"
	"	created_at INTEGER NOT NULL,\n"
	"	updated_at INTEGER NOT NULL\n"
	") STRICT, WITHOUT ROWID;\n"
	"CREATE TABLE auth_failures (\n"
	"	key TEXT NOT NULL PRIMARY KEY,\n"
	"	count INTEGER NOT NULL CHECK (count BETWEEN 0 AND 4294967295),\n"
	"	window_start INTEGER NOT NULL,\n"
	"	locked_until INTEGER NOT NULL DEFAULT 0\n"
	") STRICT, WITHOUT ROWID;\n",
	/* 3: the audit log. Append-only from vaultd's side: nothing here
	 * UPDATEs or DELETEs it (retention will be its own operation). The id
	 * is the rowid and each record's hash chains to the previous one, so
	 * ids are dense from 1. The CHECKs keep every column inside the
	 * fields of struct store_audit. */
	"CREATE TABLE audit (\n"
	"	id INTEGER PRIMARY KEY CHECK (id >= 1),\n"
	"	time INTEGER NOT NULL,\n"
	"	principal TEXT NOT NULL,\n"
	"	uid INTEGER NOT NULL CHECK (uid BETWEEN 0 AND 4294967295),\n"
	"	pid INTEGER NOT NULL CHECK (pid BETWEEN -2147483648 AND 2147483647),\n"
	"	action TEXT NOT NULL,\n"
	"	path TEXT,\n"
	"	capability TEXT NOT NULL,\n"
	"	result TEXT NOT NULL CHECK (result IN ('allowed', 'denied', 'failed')),\n"
	"	status INTEGER NOT NULL CHECK (status BETWEEN -2147483648 AND 2147483647),\n"
	"	detail TEXT,\n"
	"	request_id TEXT NOT NULL,\n"
	"	hash BLOB NOT NULL CHECK (length(hash) = 32)\n"
	") STRICT;\n"
	/* The query filters: time ranges, one principal, a path subtree. */
	"CREATE INDEX audit_by_time ON audit(time);\n"
	"CREATE INDEX audit_by_principal ON audit(principal);\n"
	"CREATE INDEX audit_by_path ON audit(path);\n",
	/* 4: rotation support. A secret's head tracks a staged (pending)
	 * version and the one that was current before the last change; the
	 * defaults make every existing head "none" for both. */
	"ALTER TABLE secrets ADD COLUMN pending_version INTEGER NOT NULL DEFAULT 0\n"
	"	CHECK (pending_version BETWEEN 0 AND 4294967295);\n"
	"ALTER TABLE secrets ADD COLUMN previous_version INTEGER NOT NULL DEFAULT 0\n"
	"	CHECK (previous_version BETWEEN 0 AND 4294967295);\n"
	/* KEK rotation rewraps a tenant's live versions still under an older
	 * KEK, in (path, version) order. One (kek_version, path range) probe
	 * per old KEK version returns exactly the rows left to do, already in
	 * order, however many tenants share the file and however far the
	 * rotation has got; destroyed versions are not in it at all. */
	"CREATE INDEX secret_versions_live_by_kek ON secret_versions(kek_version, path, version)\n"
	"	WHERE dek_blob IS NOT NULL;\n"
	/* One row per requested rotation. Text columns are bounded by the
	 * writer (the fields of struct store_rotation) and checked on read. */
	"CREATE TABLE rotations (\n"
	"	id INTEGER PRIMARY KEY CHECK (id >= 1),\n"
	"	kind TEXT NOT NULL CHECK (kind IN ('secret', 'kek', 'root', 'hsm')),\n"
	"	target TEXT NOT NULL,\n"
	"	state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),\n"
	"	principal TEXT NOT NULL,\n"
	"	request_id TEXT NOT NULL,\n"
	"	from_version INTEGER NOT NULL DEFAULT 0 CHECK (from_version BETWEEN 0 AND 4294967295),\n"
	"	to_version INTEGER NOT NULL DEFAULT 0 CHECK (to_version BETWEEN 0 AND 4294967295),\n"
	"	done INTEGER NOT NULL DEFAULT 0 CHECK (done >= 0),\n"
	"	total INTEGER NOT NULL DEFAULT 0 CHECK (total >= 0),\n"
	"	cursor_path TEXT NOT NULL DEFAULT '',\n"
	"	cursor_version INTEGER NOT NULL DEFAULT 0\n"
	"		CHECK (cursor_version BETWEEN 0 AND 4294967295),\n"
	"	error TEXT NOT NULL DEFAULT '',\n"
	"	created_at INTEGER NOT NULL,\n"
	"	updated_at INTEGER NOT NULL,\n"
	"	finished_at INTEGER NOT NULL DEFAULT 0\n"
	") STRICT;\n"
	/* The worker's "oldest active job" and the API's "active job of this
	 * kind and target" read only the few active rows, in id order. */
	"CREATE INDEX rotations_active ON rotations(id) WHERE state IN ('queued', 'running');\n",

	/* 5: at most one active job per kind and target. The API already
	 * looks for one in the same write transaction before queueing; the
	 * index makes it a property of the file. */
	"CREATE UNIQUE INDEX rotations_one_active ON rotations(kind, target)\n"
	"	WHERE state IN ('queued', 'running');\n",

	/* 6: the authorization seal. Each user, role and service row carries
	 * a MAC under a key derived from the root key (vaultd/authz.h); NULL
	 * until the first unlock seals the rows of an older vault. */
	"ALTER TABLE users ADD COLUMN mac TEXT CHECK (mac IS NULL OR length(mac) = 64);\n"
	"ALTER TABLE roles ADD COLUMN mac TEXT CHECK (mac IS NULL OR length(mac) = 64);\n"
	"ALTER TABLE services ADD COLUMN mac TEXT CHECK (mac IS NULL OR length(mac) = 64);\n",

	/* 7: the result "attempt": a side effect outside the database (an
	 * HSM key deleted from the token) is recorded before it happens. A
	 * CHECK cannot be altered in place: the table is rebuilt, every row
	 * (and so every hash) copied as it is. */
	"CREATE TABLE audit_v7 (\n"
	"	id INTEGER PRIMARY KEY CHECK (id >= 1),\n"
	"	time INTEGER NOT NULL,\n"
	"	principal TEXT NOT NULL,\n"
	"	uid INTEGER NOT NULL CHECK (uid BETWEEN 0 AND 4294967295),\n"
	"	pid INTEGER NOT NULL CHECK (pid BETWEEN -2147483648 AND 2147483647),\n"
	"	action TEXT NOT NULL,\n"
	"	path TEXT,\n"
	"	capability TEXT NOT NULL,\n"
	"	result TEXT NOT NULL CHECK (result IN ('allowed', 'denied', 'failed', 'attempt')),\n"
	"	status INTEGER NOT NULL CHECK (status BETWEEN -2147483648 AND 2147483647),\n"
	"	detail TEXT,\n"
	"	request_id TEXT NOT NULL,\n"
	"	hash BLOB NOT NULL CHECK (length(hash) = 32)\n"
	") STRICT;\n"
	"INSERT INTO audit_v7 SELECT id, time, principal, uid, pid, action, path, capability, result, status, "
	"detail, request_id, hash FROM audit;\n"
	"DROP TABLE audit;\n"
	"ALTER TABLE audit_v7 RENAME TO audit;\n"
	"CREATE INDEX audit_by_time ON audit(time);\n"
	"CREATE INDEX audit_by_principal ON audit(principal);\n"
	"CREATE INDEX audit_by_path ON audit(path);\n",
};

/* Every statement the module runs after open, prepared once per connection. */
enum query {
	Q_BEGIN,
	Q_BEGIN_IMMEDIATE,
	Q_COMMIT,
	Q_ROLLBACK,
	Q_SNAPSHOT,
	Q_SAVEPOINT,
	Q_RELEASE,
	Q_ROLLBACK_TO,
	Q_META_GET,
	Q_META_SET,
	Q_RK_PUT,
	Q_RK_CURRENT,
	Q_RK_LIST,
	Q_RK_REWRAP,
	Q_RK_REFERENCED_BELOW,
	Q_RK_DELETE_BELOW,
	Q_KEK_PUT,
	Q_KEK_GET,
	Q_KEK_CURRENT,
	Q_KEK_ADD_WRAPS,
	Q_KEK_LIST_OLD_RK,
	Q_KEK_COUNT_OLD_RK,
	Q_KEK_REWRAP,
	Q_KEK_DELETE_UNUSED,
	Q_KEK_LIST_CURRENT,
	Q_KEK_LIST_TENANT,
	Q_SECRET_GET,
	Q_SECRET_LATEST,
	Q_SECRET_UPSERT,
	Q_SECRET_STATE,
	Q_SECRET_STAGE,
	Q_SECRET_PROMOTE,
	Q_SECRET_PRUNE,
	Q_SECRET_LIST_MAX_AGE,
	Q_VERSION_PUT,
	Q_VERSION_GET,
	Q_SECRET_SOFT_DELETE,
	Q_SECRET_DESTROY,
	Q_SECRET_LIST,
	Q_SECRET_LIST_ALL,
	Q_VERSION_LIST,
	Q_VERSION_OLD_KEK,
	Q_VERSION_COUNT_OLD_KEK,
	Q_VERSION_RANGE,
	Q_VERSION_RANGE_ALL,
	Q_VERSION_COUNT_PREFIX,
	Q_VERSION_COUNT_ALL,
	Q_VERSION_REWRAP,
	Q_VERSION_RETAG,
	Q_USER_PUT,
	Q_USER_GET,
	Q_USER_DELETE,
	Q_USER_COUNT,
	Q_USER_EXISTS,
	Q_USER_LIST,
	Q_USER_COUNT_ROLE,
	Q_USER_USE_STEP,
	Q_USER_LIST_MFA_KEYS,
	Q_USER_SET_MFA_KEY,
	Q_ROLES_VALID,
	Q_JSON_VALID,
	Q_RECOVERY_CLEAR,
	Q_RECOVERY_ADD,
	Q_RECOVERY_CONSUME,
	Q_RECOVERY_COUNT,
	Q_TOKEN_PUT,
	Q_TOKEN_GET,
	Q_TOKEN_DELETE,
	Q_TOKEN_DELETE_USER,
	Q_TOKEN_DELETE_USER_EXCEPT,
	Q_TOKEN_DELETE_ALL,
	Q_TOKEN_PURGE,
	Q_ROLE_PUT,
	Q_ROLE_GET,
	Q_ROLE_DELETE,
	Q_ROLE_LIST,
	Q_ROLE_REFS,
	Q_SERVICE_PUT,
	Q_SERVICE_GET,
	Q_SERVICE_GET_UID,
	Q_SERVICE_DELETE,
	Q_SERVICE_LIST,
	Q_FAILURE_GET,
	Q_FAILURE_PUT,
	Q_FAILURE_CLEAR,
	Q_ROTATION_ADD,
	Q_ROTATION_UPDATE,
	Q_ROTATION_GET,
	Q_ROTATION_NEXT,
	Q_ROTATION_FIND_ACTIVE,
	Q_ROTATION_LIST,
	Q_BACKUP,
	Q_AUDIT_LAST,
	Q_AUDIT_APPEND,
	Q_AUDIT_ITERATE,
	Q_AUDIT_FIRST,
	Q_AUDIT_LAST_BEFORE,
	Q_AUDIT_DELETE_THROUGH,
	_Q_MAX,
};

#define AUDIT_COLUMNS                                                                   \
	"id, time, principal, uid, pid, action, path, capability, result, status, "    \
	"detail, request_id, hash"

#define SECRET_COLUMNS                                                                  \
	"path, tenant, type, metadata, current_version, latest_version, created_at, "  \
	"updated_at, deleted_at, pending_version, previous_version"

/* The batch readers' rows: the path, then a struct store_version. */
#define VERSION_ROW_COLUMNS "path, version, kek_version, dek_blob, data_blob, created_at"

#define ROTATION_COLUMNS                                                                \
	"id, kind, target, state, principal, request_id, from_version, to_version, "   \
	"done, total, cursor_path, cursor_version, error, created_at, updated_at, "     \
	"finished_at"

/* The distinct KEK versions below ?2 that any live version row still uses
 * (all tenants: a handful of values), one index seek each. Joined with a
 * tenant's path range they give one exact index range per old version. */
#define OLD_KEK_VERSIONS                                                                \
	"WITH RECURSIVE kv(v) AS ("                                                     \
	"SELECT (SELECT kek_version FROM secret_versions "                             \
	"WHERE kek_version < ?2 AND dek_blob IS NOT NULL ORDER BY kek_version LIMIT 1) " \
	"UNION ALL "                                                                    \
	"SELECT (SELECT kek_version FROM secret_versions "                             \
	"WHERE kek_version > kv.v AND kek_version < ?2 AND dek_blob IS NOT NULL "      \
	"ORDER BY kek_version LIMIT 1) FROM kv WHERE kv.v IS NOT NULL) "

/* A tenant's paths: every path starting with ?1 + "/" is in the range
 * [?1 || '/', ?1 || '0') and nothing else is ('0' follows '/'). */
#define TENANT_RANGE(p) p "path >= ?1 || '/' AND " p "path < ?1 || '0'"

static const char *const query_sql[_Q_MAX] = {
	[Q_BEGIN] = "BEGIN DEFERRED",
	[Q_BEGIN_IMMEDIATE] = "BEGIN IMMEDIATE",
	[Q_COMMIT] = "COMMIT",
	[Q_ROLLBACK] = "ROLLBACK",
	/* A deferred BEGIN takes its snapshot at the first read; this read
	 * pins it at store_read_begin() time. */
	[Q_SNAPSHOT] = "PRAGMA user_version",
	[Q_SAVEPOINT] = "SAVEPOINT store_op",
	[Q_RELEASE] = "RELEASE store_op",
	[Q_ROLLBACK_TO] = "ROLLBACK TO store_op",
	[Q_META_GET] = "SELECT value FROM meta WHERE key = ?1",
	[Q_META_SET] = "INSERT INTO meta(key, value) VALUES (?1, ?2) "
		       "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
	[Q_RK_PUT] = "INSERT INTO root_keys(version, hsm_label, hsm_version, blob, created_at) "
		     "VALUES (?1, ?2, ?3, ?4, ?5)",
	[Q_RK_CURRENT] = "SELECT version, hsm_label, hsm_version, blob, created_at "
			 "FROM root_keys ORDER BY version DESC LIMIT 1",
	[Q_RK_LIST] = "SELECT version, hsm_label, hsm_version, blob, created_at "
		      "FROM root_keys ORDER BY version",
	[Q_RK_REWRAP] = "UPDATE root_keys SET hsm_label = ?2, hsm_version = ?3, blob = ?4 "
			"WHERE version = ?1",
	[Q_RK_REFERENCED_BELOW] = "SELECT 1 FROM keks WHERE rk_version < ?1 LIMIT 1",
	[Q_RK_DELETE_BELOW] = "DELETE FROM root_keys WHERE version < ?1",
	[Q_KEK_PUT] = "INSERT INTO keks(tenant, version, rk_version, blob, wrap_count, created_at) "
		      "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[Q_KEK_GET] = "SELECT tenant, version, rk_version, blob, wrap_count, created_at "
		      "FROM keks WHERE tenant = ?1 AND version = ?2",
	[Q_KEK_CURRENT] = "SELECT tenant, version, rk_version, blob, wrap_count, created_at "
			  "FROM keks WHERE tenant = ?1 ORDER BY version DESC LIMIT 1",
	[Q_KEK_ADD_WRAPS] = "UPDATE keks SET wrap_count = wrap_count + ?3 "
			    "WHERE tenant = ?1 AND version = ?2",
	[Q_KEK_LIST_OLD_RK] = "SELECT tenant, version, rk_version, blob, wrap_count, created_at "
			      "FROM keks WHERE rk_version < ?1 ORDER BY tenant, version LIMIT ?2",
	[Q_KEK_COUNT_OLD_RK] = "SELECT count(*) FROM keks WHERE rk_version < ?1",
	[Q_KEK_REWRAP] = "UPDATE keks SET rk_version = ?3, blob = ?4 WHERE tenant = ?1 AND version = ?2",
	/* Destroyed versions do not count: they hold no DEK to unwrap. */
	[Q_KEK_DELETE_UNUSED] = "DELETE FROM keks WHERE tenant = ?1 AND version < ?2 "
				"AND NOT EXISTS (SELECT 1 FROM secret_versions x "
				"WHERE x.kek_version = keks.version AND " TENANT_RANGE("x.") " "
				"AND x.dek_blob IS NOT NULL)",
	/* The listings leave the blob out: NULL in its place decodes as none. */
	[Q_KEK_LIST_CURRENT] = "SELECT tenant, version, rk_version, NULL, wrap_count, created_at "
			       "FROM keks k WHERE version = "
			       "(SELECT max(version) FROM keks WHERE tenant = k.tenant) ORDER BY tenant",
	[Q_KEK_LIST_TENANT] = "SELECT tenant, version, rk_version, NULL, wrap_count, created_at "
			      "FROM keks WHERE tenant = ?1 ORDER BY version",
	[Q_SECRET_GET] = "SELECT " SECRET_COLUMNS " FROM secrets WHERE path = ?1",
	[Q_SECRET_LATEST] = "SELECT latest_version FROM secrets WHERE path = ?1",
	/* The SET expressions all see the old row: previous_version takes the
	 * current_version being replaced. pending_version is left alone. */
	[Q_SECRET_UPSERT] =
		"INSERT INTO secrets(" SECRET_COLUMNS ") "
		"VALUES (?1, ?2, ?3, coalesce(?4, '{}'), ?5, ?5, ?6, ?6, 0, 0, 0) "
		"ON CONFLICT(path) DO UPDATE SET type = excluded.type, "
		"metadata = coalesce(?4, secrets.metadata), "
		"previous_version = secrets.current_version, "
		"current_version = excluded.current_version, "
		"latest_version = excluded.latest_version, "
		"updated_at = excluded.updated_at, deleted_at = 0",
	[Q_SECRET_STATE] = "SELECT latest_version, deleted_at, pending_version FROM secrets "
			   "WHERE path = ?1",
	[Q_SECRET_STAGE] = "UPDATE secrets SET latest_version = ?2, pending_version = ?2, "
			   "metadata = coalesce(?3, metadata), updated_at = ?4 WHERE path = ?1",
	/* Check-and-set on the pending version read just before. */
	[Q_SECRET_PROMOTE] = "UPDATE secrets SET previous_version = current_version, "
			     "current_version = pending_version, pending_version = 0, updated_at = ?2 "
			     "WHERE path = ?1 AND pending_version = ?3 AND pending_version <> 0 "
			     "AND deleted_at = 0",
	/* The newest ?2 version numbers are counted among all the path's rows,
	 * destroyed ones included; already destroyed rows are not counted again. */
	[Q_SECRET_PRUNE] = "UPDATE secret_versions SET dek_blob = NULL, data_blob = NULL "
			   "WHERE path = ?1 AND (dek_blob IS NOT NULL OR data_blob IS NOT NULL) "
			   "AND version NOT IN (SELECT version FROM secret_versions WHERE path = ?1 "
			   "ORDER BY version DESC LIMIT ?2) "
			   "AND EXISTS (SELECT 1 FROM secrets h WHERE h.path = ?1 AND "
			   "secret_versions.version NOT IN "
			   "(h.current_version, h.previous_version, h.pending_version))",
	/* Malformed metadata (never written by vaultd) names no max_age rather
	 * than failing the whole listing, as in Q_USER_COUNT_ROLE. */
	[Q_SECRET_LIST_MAX_AGE] =
		"SELECT s.path, s.tenant, s.type, s.metadata, s.current_version, s.latest_version, "
		"s.created_at, s.updated_at, s.deleted_at, s.pending_version, s.previous_version, "
		"json_extract(s.metadata, '$.max_age'), v.created_at "
		"FROM secrets s JOIN secret_versions v ON v.path = s.path AND v.version = s.current_version "
		"WHERE s.deleted_at = 0 AND json_type(CASE WHEN json_valid(s.metadata) "
		"THEN s.metadata ELSE '{}' END, '$.max_age') = 'text' ORDER BY s.path",
	[Q_VERSION_PUT] = "INSERT INTO secret_versions(path, version, kek_version, dek_blob, "
			  "data_blob, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[Q_VERSION_GET] = "SELECT version, kek_version, dek_blob, data_blob, created_at "
			  "FROM secret_versions WHERE path = ?1 AND version = ?2",
	[Q_SECRET_SOFT_DELETE] = "UPDATE secrets SET deleted_at = ?2 "
				 "WHERE path = ?1 AND deleted_at = 0",
	[Q_SECRET_DESTROY] = "DELETE FROM secrets WHERE path = ?1",
	/* Prefix match without LIKE (whose % and _ would come from the user):
	 * one index range [prefix, prefix || '0') holds every path equal to the
	 * prefix or starting with prefix + "/" ('0' follows '/' in ASCII), plus
	 * siblings such as "prefix-x", which the second test drops. */
	[Q_SECRET_LIST] = "SELECT " SECRET_COLUMNS " FROM secrets "
			  "WHERE path >= ?1 AND path < ?1 || '0' "
			  "AND (path = ?1 OR substr(path, length(?1) + 1, 1) = '/') "
			  "AND deleted_at = 0 ORDER BY path LIMIT ?2",
	[Q_SECRET_LIST_ALL] = "SELECT " SECRET_COLUMNS " FROM secrets "
			      "WHERE deleted_at = 0 ORDER BY path LIMIT ?2",
	[Q_VERSION_LIST] = "SELECT version, kek_version, coalesce(length(dek_blob), 0), "
			   "coalesce(length(data_blob), 0), created_at "
			   "FROM secret_versions WHERE path = ?1 ORDER BY version",
	/* Per old KEK version, the first ?3 rows of the tenant in (path,
	 * version) order straight off secret_versions_live_by_kek; then the
	 * first ?3 of those. Nothing reads rows already rewrapped or other
	 * tenants' rows, so each batch costs the same until the last. */
	[Q_VERSION_OLD_KEK] =
		OLD_KEK_VERSIONS
		"SELECT s.path, s.version, s.kek_version, s.dek_blob, s.data_blob, s.created_at "
		"FROM kv JOIN secret_versions s ON s.rowid IN (SELECT x.rowid FROM secret_versions x "
		"WHERE x.kek_version = kv.v AND " TENANT_RANGE("x.") " AND x.dek_blob IS NOT NULL "
		"ORDER BY x.path, x.version LIMIT ?3) "
		"ORDER BY s.path, s.version LIMIT ?3",
	[Q_VERSION_COUNT_OLD_KEK] =
		OLD_KEK_VERSIONS
		"SELECT count(*) FROM kv JOIN secret_versions x ON x.kek_version = kv.v "
		"AND " TENANT_RANGE("x.") " AND x.dek_blob IS NOT NULL",
	/* Keyset paging: the row value (path, version) > (?2, ?3) is the
	 * lower bound of the primary key range (the caller moves it up to the
	 * prefix itself), path < ?1 || '0' the upper one; the segment test
	 * drops siblings such as "prefix-x", as in Q_SECRET_LIST. */
	[Q_VERSION_RANGE] = "SELECT " VERSION_ROW_COLUMNS " FROM secret_versions "
			    "WHERE (path, version) > (?2, ?3) AND path < ?1 || '0' "
			    "AND (path = ?1 OR substr(path, length(?1) + 1, 1) = '/') "
			    "AND dek_blob IS NOT NULL ORDER BY path, version LIMIT ?4",
	[Q_VERSION_RANGE_ALL] = "SELECT " VERSION_ROW_COLUMNS " FROM secret_versions "
				"WHERE (path, version) > (?2, ?3) AND dek_blob IS NOT NULL "
				"ORDER BY path, version LIMIT ?4",
	[Q_VERSION_COUNT_PREFIX] = "SELECT count(*) FROM secret_versions "
				   "WHERE path >= ?1 AND path < ?1 || '0' "
				   "AND (path = ?1 OR substr(path, length(?1) + 1, 1) = '/') "
				   "AND dek_blob IS NOT NULL",
	[Q_VERSION_COUNT_ALL] = "SELECT count(*) FROM secret_versions WHERE dek_blob IS NOT NULL",
	[Q_VERSION_REWRAP] = "UPDATE secret_versions SET kek_version = ?3, dek_blob = ?4, "
			     "data_blob = coalesce(?5, data_blob) "
			     "WHERE path = ?1 AND version = ?2 AND dek_blob IS NOT NULL",
	[Q_VERSION_RETAG] = "UPDATE secret_versions SET kek_version = ?2 "
			    "WHERE " TENANT_RANGE("") " AND kek_version < ?2 AND dek_blob IS NULL",
	[Q_USER_PUT] = "INSERT INTO users(name, phc, roles, mfa_state, mfa_key, totp_blob, "
		       "totp_last_step, created_at, updated_at, mac) "
		       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) "
		       "ON CONFLICT(name) DO UPDATE SET phc = excluded.phc, "
		       "roles = excluded.roles, mfa_state = excluded.mfa_state, "
		       "mfa_key = excluded.mfa_key, totp_blob = excluded.totp_blob, "
		       "totp_last_step = excluded.totp_last_step, updated_at = excluded.updated_at, "
		       "mac = excluded.mac",
	[Q_USER_GET] = "SELECT name, phc, roles, mfa_state, totp_last_step, created_at, updated_at, mac, "
		       "mfa_key, totp_blob FROM users WHERE name = ?1",
	[Q_USER_DELETE] = "DELETE FROM users WHERE name = ?1",
	[Q_USER_COUNT] = "SELECT count(*) FROM users",
	[Q_USER_EXISTS] = "SELECT 1 FROM users WHERE name = ?1",
	/* Same first eight columns as Q_USER_GET, without the blobs. */
	[Q_USER_LIST] = "SELECT name, phc, roles, mfa_state, totp_last_step, created_at, updated_at, mac "
			"FROM users ORDER BY name",
	/* Exact match of a string element. The CASE (which SQLite evaluates
	 * lazily) keeps one malformed or non-array row from failing the whole
	 * count: such a row names no role. */
	[Q_USER_COUNT_ROLE] =
		"SELECT count(*) FROM users WHERE EXISTS (SELECT 1 FROM json_each("
		"CASE WHEN NOT json_valid(users.roles) THEN '[]' "
		"WHEN json_type(users.roles) = 'array' THEN users.roles ELSE '[]' END) "
		"WHERE type = 'text' AND value = ?1)",
	/* Check-and-set in one statement: of two requests racing with the
	 * same code, one sees changes() == 1. updated_at moves only when the
	 * enrolment completes; the API passes no clock here, so it is
	 * SQLite's. */
	[Q_USER_USE_STEP] = "UPDATE users SET totp_last_step = ?2, mfa_state = 2, "
			    "updated_at = CASE WHEN mfa_state = 2 THEN updated_at ELSE unixepoch() END "
			    "WHERE name = ?1 AND totp_last_step < ?2",
	[Q_USER_LIST_MFA_KEYS] = "SELECT name, mfa_key FROM users WHERE mfa_key IS NOT NULL "
				 "ORDER BY name",
	[Q_USER_SET_MFA_KEY] = "UPDATE users SET mfa_key = ?2 WHERE name = ?1",
	[Q_ROLES_VALID] = "SELECT CASE WHEN NOT json_valid(?1) THEN 0 "
			  "WHEN json_type(?1) = 'array' THEN 1 ELSE 0 END",
	[Q_JSON_VALID] = "SELECT json_valid(?1)",
	[Q_RECOVERY_CLEAR] = "DELETE FROM recovery_codes WHERE user = ?1",
	[Q_RECOVERY_ADD] = "INSERT INTO recovery_codes(user, hash) VALUES (?1, ?2)",
	[Q_RECOVERY_CONSUME] = "DELETE FROM recovery_codes WHERE user = ?1 AND hash = ?2",
	[Q_RECOVERY_COUNT] = "SELECT count(*) FROM recovery_codes WHERE user = ?1",
	[Q_TOKEN_PUT] = "INSERT INTO tokens(hash, user, uid, created_at, expires_at) "
			"VALUES (?1, ?2, ?3, ?4, ?5)",
	[Q_TOKEN_GET] = "SELECT hash, user, uid, created_at, expires_at FROM tokens WHERE hash = ?1",
	[Q_TOKEN_DELETE] = "DELETE FROM tokens WHERE hash = ?1",
	[Q_TOKEN_DELETE_USER] = "DELETE FROM tokens WHERE user = ?1",
	[Q_TOKEN_DELETE_USER_EXCEPT] = "DELETE FROM tokens WHERE user = ?1 AND hash <> ?2",
	[Q_TOKEN_DELETE_ALL] = "DELETE FROM tokens",
	[Q_TOKEN_PURGE] = "DELETE FROM tokens WHERE expires_at <= ?1",
	[Q_ROLE_PUT] = "INSERT INTO roles(name, rules, created_at, updated_at, mac) "
		       "VALUES (?1, ?2, ?3, ?4, ?5) "
		       "ON CONFLICT(name) DO UPDATE SET rules = excluded.rules, "
		       "updated_at = excluded.updated_at, mac = excluded.mac",
	[Q_ROLE_GET] = "SELECT name, rules, created_at, updated_at, mac FROM roles WHERE name = ?1",
	[Q_ROLE_DELETE] = "DELETE FROM roles WHERE name = ?1",
	[Q_ROLE_LIST] = "SELECT name, rules, created_at, updated_at, mac FROM roles ORDER BY name",
	[Q_ROLE_REFS] =
		"SELECT (SELECT count(*) FROM users WHERE EXISTS (SELECT 1 FROM json_each("
		"CASE WHEN NOT json_valid(users.roles) THEN '[]' "
		"WHEN json_type(users.roles) = 'array' THEN users.roles ELSE '[]' END) "
		"WHERE type = 'text' AND value = ?1)) + "
		"(SELECT count(*) FROM services WHERE EXISTS (SELECT 1 FROM json_each("
		"CASE WHEN NOT json_valid(services.roles) THEN '[]' "
		"WHEN json_type(services.roles) = 'array' THEN services.roles ELSE '[]' END) "
		"WHERE type = 'text' AND value = ?1))",
	/* The upsert handles a name conflict only: a uid held by another name
	 * fails the UNIQUE constraint and the statement changes nothing. */
	[Q_SERVICE_PUT] = "INSERT INTO services(name, uid, roles, created_at, updated_at, mac) "
			  "VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
			  "ON CONFLICT(name) DO UPDATE SET uid = excluded.uid, "
			  "roles = excluded.roles, updated_at = excluded.updated_at, mac = excluded.mac",
	[Q_SERVICE_GET] = "SELECT name, uid, roles, created_at, updated_at, mac FROM services WHERE name = ?1",
	[Q_SERVICE_GET_UID] = "SELECT name, uid, roles, created_at, updated_at, mac FROM services "
			      "WHERE uid = ?1",
	[Q_SERVICE_DELETE] = "DELETE FROM services WHERE name = ?1",
	[Q_SERVICE_LIST] = "SELECT name, uid, roles, created_at, updated_at, mac FROM services ORDER BY name",
	[Q_FAILURE_GET] = "SELECT count, window_start, locked_until FROM auth_failures WHERE key = ?1",
	[Q_FAILURE_PUT] = "INSERT INTO auth_failures(key, count, window_start, locked_until) "
			  "VALUES (?1, ?2, ?3, ?4) "
			  "ON CONFLICT(key) DO UPDATE SET count = excluded.count, "
			  "window_start = excluded.window_start, locked_until = excluded.locked_until",
	[Q_FAILURE_CLEAR] = "DELETE FROM auth_failures WHERE key = ?1",
	[Q_ROTATION_ADD] = "INSERT INTO rotations(kind, target, state, principal, request_id, "
			   "from_version, to_version, done, total, cursor_path, cursor_version, error, "
			   "created_at, updated_at, finished_at) "
			   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
	/* What a job changes as it runs; what was asked, by whom and when stays. */
	[Q_ROTATION_UPDATE] = "UPDATE rotations SET state = ?2, from_version = ?3, to_version = ?4, "
			      "done = ?5, total = ?6, cursor_path = ?7, cursor_version = ?8, "
			      "error = ?9, updated_at = ?10, finished_at = ?11 WHERE id = ?1",
	[Q_ROTATION_GET] = "SELECT " ROTATION_COLUMNS " FROM rotations WHERE id = ?1",
	/* Both through rotations_active: the query repeats its WHERE. */
	[Q_ROTATION_NEXT] = "SELECT " ROTATION_COLUMNS " FROM rotations "
			    "WHERE state IN ('queued', 'running') ORDER BY id LIMIT 1",
	[Q_ROTATION_FIND_ACTIVE] = "SELECT " ROTATION_COLUMNS " FROM rotations "
				   "WHERE state IN ('queued', 'running') AND kind = ?1 AND target = ?2 "
				   "ORDER BY id LIMIT 1",
	/* Active jobs first, then the newest finished ones, up to ?1; shown
	 * newest first. The table holds one row per rotation ever asked. */
	[Q_ROTATION_LIST] = "SELECT * FROM (SELECT " ROTATION_COLUMNS " FROM rotations "
			    "ORDER BY state IN ('queued', 'running') DESC, id DESC LIMIT ?1) "
			    "ORDER BY id DESC",
	/* Only ever prepared on store_backup()'s own connection. */
	[Q_BACKUP] = "VACUUM INTO ?1",
	[Q_AUDIT_LAST] = "SELECT " AUDIT_COLUMNS " FROM audit ORDER BY id DESC LIMIT 1",
	/* Check-and-insert in one statement: the row goes in only if its id
	 * extends the chain (max(id) is one index lookup), so a record hashed
	 * against a stale tail changes nothing. */
	[Q_AUDIT_APPEND] = "INSERT INTO audit(" AUDIT_COLUMNS ") "
			   "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13 "
			   "WHERE ?1 = (SELECT coalesce(max(id), 0) + 1 FROM audit)",
	[Q_AUDIT_ITERATE] = "SELECT " AUDIT_COLUMNS " FROM audit ORDER BY id",
	[Q_AUDIT_FIRST] = "SELECT " AUDIT_COLUMNS " FROM audit ORDER BY id LIMIT 1",
	/* Time is not strictly monotonic in id (the clock can step back): the
	 * highest id among the older records. The unary + turns off the
	 * max(rowid) shortcut, which would walk back from the newest record
	 * through all the ones being kept; audit_by_time covers just the old
	 * ones (an index holds the rowid). */
	[Q_AUDIT_LAST_BEFORE] = "SELECT " AUDIT_COLUMNS " FROM audit "
				"WHERE id = (SELECT max(+id) FROM audit WHERE time < ?1)",
	[Q_AUDIT_DELETE_THROUGH] = "DELETE FROM audit WHERE id <= ?1",
};

struct conn;

struct store_tx {
	struct store *store;
	struct conn *conn;
	bool write;
	bool active;
};

struct conn {
	sqlite3 *db;
	sqlite3_stmt *stmt[_Q_MAX];
	struct store_tx tx;     /* the one transaction this connection can carry */
};

struct store {
	struct conn writer;
	pthread_mutex_t writer_lock;    /* held from write_begin to commit/end */

	struct conn readers[STORE_READERS_MAX];
	unsigned n_readers;
	unsigned free_readers[STORE_READERS_MAX];       /* stack of indexes */
	unsigned n_free;
	pthread_mutex_t pool_lock;
	pthread_cond_t pool_cond;
	bool locks_ready;

	char *path;                     /* absolute, for store_backup()'s own connection */
	int schema_version;
};

/* Resets a cached statement and drops its bindings (which may point at the
 * caller's buffers, bound SQLITE_STATIC) when it leaves scope. */
static void stmt_resetp(sqlite3_stmt **p)
{
	if (*p) {
		(void)sqlite3_reset(*p);
		(void)sqlite3_clear_bindings(*p);
	}
}
#define _cleanup_reset_ _cleanup_(stmt_resetp)
/* For the one-off statements of open, migration and integrity check. */
DEFINE_CLEANUP(sqlite3_stmt *, sqlite3_finalize)

#define TAKE_STRUCT(s)                                                  \
	({                                                              \
		__typeof__(s) _s = (s);                                 \
		memset(&(s), 0, sizeof(s));                             \
		_s;                                                     \
	})

/* One table for SQLite result codes. The message names the operation and
 * carries SQLite's text, which names tables and columns, never bound values. */
static int sql_error(sqlite3 *db, int rc, const char *op)
{
	int ext = db ? sqlite3_extended_errcode(db) : rc;
	int r;

	switch (rc & 0xff) {
	case SQLITE_CONSTRAINT:
		/* Only a duplicate key is a conflict; a broken foreign key,
		 * CHECK or NOT NULL means the caller passed something wrong. */
		r = (ext == SQLITE_CONSTRAINT_PRIMARYKEY || ext == SQLITE_CONSTRAINT_UNIQUE ||
		     ext == SQLITE_CONSTRAINT_ROWID) ? -EEXIST : -EINVAL;
		break;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		r = -EBUSY;
		break;
	case SQLITE_NOMEM:
		r = -ENOMEM;
		break;
	default:
		r = -EIO;
		break;
	}
	return log_debug_errno(r, "%s: %s (%d)", op, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc),
			       ext);
}

static int stmt_get(struct conn *c, enum query q, sqlite3_stmt **ret)
{
	int rc;

	if (!c->stmt[q]) {
		rc = sqlite3_prepare_v3(c->db, query_sql[q], -1, SQLITE_PREPARE_PERSISTENT,
					&c->stmt[q], NULL);
		if (rc != SQLITE_OK)
			return sql_error(c->db, rc, "prepare");
	}
	*ret = c->stmt[q];
	return 0;
}

/* Runs a statement that returns no rows we need. */
static int stmt_run(struct conn *c, enum query q, const char *op)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = stmt_get(c, q, &st)) < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc, op);
	return 0;
}

/* The bind helpers fold SQLite's code into -errno; text and blobs always go
 * with explicit lengths. Binds are SQLITE_STATIC: the cleanup clears them
 * before the caller's buffers go away. */
static int bind_text(struct conn *c, sqlite3_stmt *st, int i, const char *s)
{
	int rc;

	if (!s)
		rc = sqlite3_bind_null(st, i);
	else
		rc = sqlite3_bind_text64(st, i, s, strlen(s), SQLITE_STATIC, SQLITE_UTF8);
	return rc == SQLITE_OK ? 0 : sql_error(c->db, rc, "bind");
}

static int bind_blob(struct conn *c, sqlite3_stmt *st, int i, const uint8_t *p, size_t n)
{
	/* A NULL pointer would bind SQL NULL; callers reject empty blobs. */
	int rc = sqlite3_bind_blob64(st, i, p, n, SQLITE_STATIC);

	return rc == SQLITE_OK ? 0 : sql_error(c->db, rc, "bind");
}

static int bind_int(struct conn *c, sqlite3_stmt *st, int i, int64_t v)
{
	int rc = sqlite3_bind_int64(st, i, v);

	return rc == SQLITE_OK ? 0 : sql_error(c->db, rc, "bind");
}

/* Column readers: what the database holds is checked against the structs'
 * limits rather than trusted, so a corrupt row is -EIO, never an overflow. */
static int col_u32(sqlite3_stmt *st, int i, uint32_t *ret)
{
	sqlite3_int64 v = sqlite3_column_int64(st, i);

	if (sqlite3_column_type(st, i) != SQLITE_INTEGER || v < 0 || v > UINT32_MAX)
		return log_debug_errno(-EIO, "column %d: not a 32-bit version", i);
	*ret = (uint32_t)v;
	return 0;
}

static int col_text_copy(sqlite3_stmt *st, int i, char *buf, size_t size)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	int n = sqlite3_column_bytes(st, i);

	if (!t || n < 0 || (size_t)n >= size || memchr(t, 0, (size_t)n))
		return log_debug_errno(-EIO, "column %d: text missing or too long", i);
	memcpy(buf, t, (size_t)n);
	buf[n] = 0;
	return 0;
}

/* The optional 64-hex MAC column: "" when NULL. */
static int col_mac(sqlite3_stmt *st, int i, char buf[65])
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL) {
		buf[0] = '\0';
		return 0;
	}
	return col_text_copy(st, i, buf, 65);
}

static int bind_mac(struct conn *c, sqlite3_stmt *st, int i, const char *mac)
{
	if (!mac[0]) {
		int rc = sqlite3_bind_null(st, i);
		return rc == SQLITE_OK ? 0 : sql_error(c->db, rc, "bind");
	}
	return bind_text(c, st, i, mac);
}

static int col_text_dup(sqlite3_stmt *st, int i, char **ret)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	int n = sqlite3_column_bytes(st, i);
	char *p;

	if (!t)
		return sqlite3_errcode(sqlite3_db_handle(st)) == SQLITE_NOMEM ? -ENOMEM : -EIO;
	if (n < 0 || memchr(t, 0, (size_t)n))
		return log_debug_errno(-EIO, "column %d: embedded NUL", i);
	p = malloc((size_t)n + 1);
	if (!p)
		return -ENOMEM;
	memcpy(p, t, (size_t)n);
	p[n] = 0;
	*ret = p;
	return 0;
}

/* NULL stays NULL (a destroyed blob); anything else is copied out. */
static int col_blob_dup(sqlite3_stmt *st, int i, uint8_t **ret, size_t *ret_len)
{
	const void *b;
	uint8_t *p;
	int n;

	if (sqlite3_column_type(st, i) == SQLITE_NULL) {
		*ret = NULL;
		*ret_len = 0;
		return 0;
	}
	b = sqlite3_column_blob(st, i);         /* blob before bytes, as SQLite documents */
	n = sqlite3_column_bytes(st, i);
	if (n <= 0 || !b)
		return log_debug_errno(-EIO, "column %d: empty blob", i);
	p = malloc((size_t)n);
	if (!p)
		return -ENOMEM;
	memcpy(p, b, (size_t)n);
	*ret = p;
	*ret_len = (size_t)n;
	return 0;
}

static bool name_fits(const char *s, size_t size)
{
	size_t n;

	if (!s)
		return false;
	n = strnlen(s, size);
	return n > 0 && n < size;
}

/* s fits a char[size] field; empty allowed. */
static bool text_fits(const char *s, size_t size)
{
	return s && strnlen(s, size) < size;
}

/* A blob field is either absent (NULL, 0) or a non-empty buffer. */
static bool blob_arg_valid(const uint8_t *p, size_t n)
{
	return p ? n > 0 : n == 0;
}

static int bind_blob_opt(struct conn *c, sqlite3_stmt *st, int i, const uint8_t *p, size_t n)
{
	int rc;

	if (!p) {
		rc = sqlite3_bind_null(st, i);
		return rc == SQLITE_OK ? 0 : sql_error(c->db, rc, "bind");
	}
	return bind_blob(c, st, i, p, n);
}

/* Steps a write statement to the end; returns the rows it changed. */
static int step_changes(struct conn *c, sqlite3_stmt *st, const char *op)
{
	int rc = sqlite3_step(st);
	int n;

	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc, op);
	n = sqlite3_changes(c->db);
	return n < 0 ? 0 : n;
}

/* Steps a "SELECT count(*) ..." and clamps it into an int. */
static int step_count(struct conn *c, sqlite3_stmt *st, const char *op)
{
	sqlite3_int64 n;
	int rc = sqlite3_step(st);

	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? -EIO : sql_error(c->db, rc, op);
	n = sqlite3_column_int64(st, 0);
	if (n < 0)
		return -EIO;
	return n > INT32_MAX ? INT32_MAX : (int)n;
}

static int savepoint_begin(struct conn *c)
{
	return stmt_run(c, Q_SAVEPOINT, "savepoint");
}

/* Releases the savepoint on success; rolls back to it on failure (r < 0).
 * Returns r, or the release's error. */
static int savepoint_end(struct conn *c, int r)
{
	if (r >= 0) {
		int q = stmt_run(c, Q_RELEASE, "release");

		if (q >= 0)
			return r;
		r = q;
	}
	if (!sqlite3_get_autocommit(c->db)) {
		(void)stmt_run(c, Q_ROLLBACK_TO, "rollback to");
		(void)stmt_run(c, Q_RELEASE, "release");
	}
	return r;
}

/* The connection behind a live transaction. SQLite rolls a transaction back
 * by itself on some errors (I/O, full disk, out of memory); carrying on would
 * then run each later statement in autocommit mode, so that is -EIO. */
static int tx_conn(struct store_tx *tx, bool write, struct conn **ret)
{
	if (!tx || !tx->active)
		return -EINVAL;
	if (write && !tx->write)
		return -EINVAL;
	if (sqlite3_get_autocommit(tx->conn->db))
		return log_debug_errno(-EIO, "transaction was rolled back by SQLite");
	*ret = tx->conn;
	return 0;
}

/* --- opening --- */

/* Creates the file 0600 ourselves so it never exists with the umask's mode;
 * SQLite gives -wal and -shm the main file's mode. The fd is closed before
 * SQLite opens the file: closing any fd of a file drops every POSIX lock this
 * process holds on it, SQLite's included. */
/* What may be opened as the database or one of its side files: a regular
 * file (not a symbolic link) owned by our effective uid that neither group
 * nor others may write (docs/operations.md: owner vaultd, mode 0600). Read
 * bits for group and others are file_prepare()'s to take away. The refusal is
 * logged here, naming the file: main() only knows that the open failed. */
static int file_trusted(const char *path, const struct stat *st)
{
	if (S_ISLNK(st->st_mode)) {
		log_error("refusing the database file '%s': it is a symbolic link", path);
		return -ELOOP;
	}
	if (!S_ISREG(st->st_mode)) {
		log_error("refusing the database file '%s': it is not a regular file", path);
		return -EINVAL;
	}
	if (st->st_uid != geteuid()) {
		log_error("refusing the database file '%s': it is owned by uid %u, not by the daemon's uid %u",
			  path, (unsigned)st->st_uid, (unsigned)geteuid());
		return -EPERM;
	}
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		log_error("refusing the database file '%s': mode %04o makes it writable by group or others "
			  "(it must be 0600)", path, (unsigned)st->st_mode & 07777);
		return -EPERM;
	}
	return 0;
}

/* PATH-wal and PATH-shm, if they exist: SQLite opens them by name, follows
 * links and replays a -wal, so they get the database file's rules. */
static int side_files_check(const char *path)
{
	static const char *const suffixes[] = { "-wal", "-shm" };

	for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
		_cleanup_free_ char *side = NULL;
		struct stat st;
		int r;

		if (asprintf(&side, "%s%s", path, suffixes[i]) < 0) {
			side = NULL;
			return -ENOMEM;
		}
		if (lstat(side, &st) < 0) {
			if (errno == ENOENT)
				continue;
			return log_debug_errno(-errno, "inspect '%s'", side);
		}
		if ((r = file_trusted(side, &st)) < 0)
			return r;
	}
	return 0;
}

/* Creates the file if needed and checks it before SQLite sees it: no link
 * followed (O_NOFOLLOW), nothing created at a dangling link's target.
 * *ret_st is what was checked, for file_mode_verify(). */
static int file_prepare(const char *path, struct stat *ret_st)
{
	struct stat st;
	int fd, r;

	if ((r = side_files_check(path)) < 0)
		return r;
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0) {
		if (errno == ELOOP) {
			log_error("refusing the database file '%s': it is a symbolic link", path);
			return -ELOOP;
		}
		return log_debug_errno(-errno, "open database file");
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		(void)close(fd);
		return r;
	}
	if ((r = file_trusted(path, &st)) < 0) {
		(void)close(fd);
		return r;
	}
	/* Others could only have read it (ciphertext): take that away. */
	if ((st.st_mode & 077) && fchmod(fd, 0600) < 0) {
		r = -errno;
		(void)close(fd);
		return log_debug_errno(r, "tighten database file mode");
	}
	(void)close(fd);
	*ret_st = st;
	return 0;
}

/* After SQLite opened the files by name: the database is still the file
 * file_prepare() checked (not swapped for another in between), and every
 * file is a private regular file of ours. */
static int file_mode_verify(const char *path, const struct stat *prepared)
{
	struct stat st;
	int r;

	if (lstat(path, &st) < 0)
		return -errno;
	if ((r = file_trusted(path, &st)) < 0)
		return r;
	if (prepared && (st.st_dev != prepared->st_dev || st.st_ino != prepared->st_ino)) {
		log_error("refusing the database file '%s': it was replaced while it was being opened", path);
		return -EPERM;
	}
	if (st.st_mode & 077)
		return log_debug_errno(-EPERM, "database file mode is not 0600");
	return 0;
}

/* Runs "PRAGMA ..." (which may be a setter returning the new value) and
 * compares its first row's text with expect. */
static int pragma_expect(sqlite3 *db, const char *sql, const char *expect)
{
	_cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;
	const unsigned char *t;
	int r = 0, rc;

	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_error(db, rc, "pragma");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		t = sqlite3_column_text(st, 0);
		if (!t || !streq((const char *)t, expect))
			r = log_debug_errno(-EIO, "%s: unexpected value", sql);
	} else if (rc == SQLITE_DONE)
		r = log_debug_errno(-EIO, "%s: no value (compiled out?)", sql);
	else
		r = sql_error(db, rc, "pragma");
	return r;
}

static int query_int(sqlite3 *db, const char *sql, int64_t *ret)
{
	_cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;
	int r = 0, rc;

	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_error(db, rc, "pragma");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*ret = sqlite3_column_int64(st, 0);
	else
		r = rc == SQLITE_DONE ? -EIO : sql_error(db, rc, "pragma");
	return r;
}

static int exec(sqlite3 *db, const char *sql, const char *op)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : sql_error(db, rc, op);
}

/* What every connection gets: flags are the SQLITE_OPEN_ mode bits. */
static int conn_open_base(struct conn *c, const char *path, int flags)
{
	int rc;

	/* NOMUTEX: each connection is used by one thread at a time under our
	 * own locks. It still needs a thread-safe library build. */
	flags |= SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
	rc = sqlite3_open_v2(path, &c->db, flags, NULL);
	if (rc != SQLITE_OK)
		return sql_error(c->db, rc, "open");
	if ((rc = sqlite3_busy_timeout(c->db, STORE_BUSY_TIMEOUT_MS)) != SQLITE_OK)
		return sql_error(c->db, rc, "busy_timeout");
	/* Defensive: no writable_schema, no shadow-table writes, so SQL cannot
	 * corrupt the file; trusted_schema=OFF keeps schema-embedded SQL from
	 * calling risky functions. */
	if ((rc = sqlite3_db_config(c->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL)) != SQLITE_OK)
		return sql_error(c->db, rc, "dbconfig");
	return exec(c->db, "PRAGMA trusted_schema = OFF", "trusted_schema");
}

static int conn_open(struct conn *c, const char *path, bool write)
{
	int r;

	r = conn_open_base(c, path,
			   write ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY);
	if (r < 0)
		return r;
	if (!write) {
		/* Belt and braces over SQLITE_OPEN_READONLY: a reader that ever
		 * got a write statement fails it instead of taking a lock. */
		if ((r = exec(c->db, "PRAGMA query_only = ON", "query_only")) < 0)
			return r;
		return pragma_expect(c->db, "PRAGMA query_only", "1");
	}

	/* WAL: readers keep their snapshot while the writer commits. FULL: an
	 * acknowledged commit survives power loss (WAL + NORMAL would not). */
	if ((r = pragma_expect(c->db, "PRAGMA journal_mode = WAL", "wal")) < 0)
		return r;
	if ((r = exec(c->db,
		      "PRAGMA synchronous = FULL; PRAGMA secure_delete = ON; "
		      "PRAGMA foreign_keys = ON",
		      "pragmas")) < 0)
		return r;
	/* Setters stay silent when a feature is compiled out: read back. */
	if ((r = pragma_expect(c->db, "PRAGMA synchronous", "2")) < 0 ||
	    (r = pragma_expect(c->db, "PRAGMA secure_delete", "1")) < 0 ||
	    (r = pragma_expect(c->db, "PRAGMA foreign_keys", "1")) < 0)
		return r;
	return 0;
}

static void conn_close(struct conn *c)
{
	int rc;

	for (size_t i = 0; i < _Q_MAX; i++) {
		(void)sqlite3_finalize(c->stmt[i]);
		c->stmt[i] = NULL;
	}
	if (c->db) {
		rc = sqlite3_close(c->db);
		if (rc != SQLITE_OK)
			(void)sql_error(c->db, rc, "close");
		c->db = NULL;
	}
}

/* Applies the missing migrations, each in its own transaction. BEGIN
 * IMMEDIATE takes the write lock before user_version is read, so two
 * processes opening a fresh file cannot both run migration 1. */
static int migrate(struct conn *w, int *ret_version)
{
	const int known = (int)ELEMENTSOF(migrations);
	char sql[64];
	int64_t v, app_id, n_objects;
	int r;

	for (;;) {
		if ((r = exec(w->db, "BEGIN IMMEDIATE", "migrate begin")) < 0)
			return r;
		if ((r = query_int(w->db, "PRAGMA user_version", &v)) < 0 ||
		    (r = query_int(w->db, "PRAGMA application_id", &app_id)) < 0)
			goto rollback;
		if (v > known) {
			r = log_debug_errno(-EIO, "database schema %lld is newer than this vaultd (%d)",
					    (long long)v, known);
			goto rollback;
		}
		if (v < 0 || (v > 0 && app_id != STORE_APPLICATION_ID)) {
			r = log_debug_errno(-EIO, "not a vaultd database");
			goto rollback;
		}
		if (v == 0) {
			/* user_version 0 must mean an empty file, not someone
			 * else's database that we would add our tables to. */
			if ((r = query_int(w->db, "SELECT count(*) FROM sqlite_schema",
					    &n_objects)) < 0)
				goto rollback;
			if (n_objects > 0 || app_id != 0) {
				r = log_debug_errno(-EIO, "not a vaultd database");
				goto rollback;
			}
		}
		if (v == known)
			break;
		log_debug("migrating schema %lld -> %lld", (long long)v, (long long)v + 1);
		(void)snprintf(sql, sizeof(sql), "PRAGMA user_version = %lld", (long long)v + 1);
		if ((r = exec(w->db, migrations[v], "migration")) < 0 ||
		    (r = exec(w->db, sql, "migration version")) < 0 ||
		    (r = exec(w->db, "COMMIT", "migration commit")) < 0)
			goto rollback;
	}
	if ((r = exec(w->db, "COMMIT", "migrate commit")) < 0)
		goto rollback;
	*ret_version = (int)v;
	return 0;
rollback:
	if (!sqlite3_get_autocommit(w->db))
		(void)exec(w->db, "ROLLBACK", "migrate rollback");
	return r;
}

static int locks_init(struct store *s)
{
	pthread_mutexattr_t a;
	int r;

	/* Error-checking: a thread that re-enters store_write_begin() while
	 * it holds the write transaction gets -EDEADLK instead of hanging. */
	if ((r = pthread_mutexattr_init(&a)) != 0)
		return -r;
	(void)pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
	r = pthread_mutex_init(&s->writer_lock, &a);
	(void)pthread_mutexattr_destroy(&a);
	if (r != 0)
		return -r;
	if ((r = pthread_mutex_init(&s->pool_lock, NULL)) != 0) {
		(void)pthread_mutex_destroy(&s->writer_lock);
		return -r;
	}
	if ((r = pthread_cond_init(&s->pool_cond, NULL)) != 0) {
		(void)pthread_mutex_destroy(&s->pool_lock);
		(void)pthread_mutex_destroy(&s->writer_lock);
		return -r;
	}
	s->locks_ready = true;
	return 0;
}

int store_open(const char *path, unsigned readers, struct store **ret)
{
	_cleanup_(store_closep) struct store *s = NULL;
	_cleanup_free_ char *wal = NULL;
	struct stat prepared;
	const char *fn;
	int r;

	if (!path || !*path || !ret || readers < 1 || readers > STORE_READERS_MAX)
		return -EINVAL;
	if (!sqlite3_threadsafe())
		return log_debug_errno(-EIO, "SQLite is built without thread support");

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	if ((r = locks_init(s)) < 0)
		return r;

	if ((r = file_prepare(path, &prepared)) < 0)
		return r;
	if ((r = conn_open(&s->writer, path, true)) < 0)
		return r;
	/* SQLite's absolute name of the file: still right after a chdir(). */
	if (!(fn = sqlite3_db_filename(s->writer.db, "main")) || !*fn)
		return log_debug_errno(-EIO, "database has no file name");
	s->path = strdup(fn);
	if (!s->path)
		return -ENOMEM;
	if ((r = migrate(&s->writer, &s->schema_version)) < 0)
		return r;
	if (asprintf(&wal, "%s-wal", path) < 0) {
		wal = NULL;
		return -ENOMEM;
	}
	if ((r = file_mode_verify(path, &prepared)) < 0)
		return r;
	if (access(wal, F_OK) == 0 && (r = file_mode_verify(wal, NULL)) < 0)
		return r;
	if ((r = side_files_check(path)) < 0)     /* -shm, made by the WAL switch */
		return r;

	/* Readers open after the writer so the file is already in WAL mode
	 * and migrated (a read-only connection can do neither). */
	for (unsigned i = 0; i < readers; i++) {
		if ((r = conn_open(&s->readers[i], path, false)) < 0)
			return r;
		s->n_readers++;
		s->free_readers[s->n_free++] = i;
	}
	s->writer.tx = (struct store_tx){ .store = s, .conn = &s->writer, .write = true };
	for (unsigned i = 0; i < readers; i++)
		s->readers[i].tx = (struct store_tx){ .store = s, .conn = &s->readers[i] };

	*ret = TAKE_PTR(s);
	return 0;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	/* Best effort: empty the WAL so a destroyed blob's old pages do not
	 * outlive the process in the -wal file. */
	if (s->writer.db && s->locks_ready)
		(void)store_checkpoint(s);
	if (s->n_free != s->n_readers)
		log_debug("closing with %u read transaction(s) open", s->n_readers - s->n_free);
	for (unsigned i = 0; i < STORE_READERS_MAX; i++)
		conn_close(&s->readers[i]);
	conn_close(&s->writer);
	if (s->locks_ready) {
		(void)pthread_cond_destroy(&s->pool_cond);
		(void)pthread_mutex_destroy(&s->pool_lock);
		(void)pthread_mutex_destroy(&s->writer_lock);
	}
	free(s->path);
	free(s);
}

int store_schema_version(struct store *s)
{
	return s ? s->schema_version : -EINVAL;
}

/* --- transactions --- */

int store_write_begin(struct store *s, struct store_tx **ret)
{
	struct conn *w;
	int r;

	if (!s || !ret)
		return -EINVAL;
	if ((r = pthread_mutex_lock(&s->writer_lock)) != 0)
		return -r;                      /* EDEADLK: this thread holds it */
	w = &s->writer;
	if ((r = stmt_run(w, Q_BEGIN_IMMEDIATE, "begin write")) < 0) {
		(void)pthread_mutex_unlock(&s->writer_lock);
		return r;
	}
	w->tx.active = true;
	*ret = &w->tx;
	return 0;
}

static void tx_release(struct store_tx *tx)
{
	struct store *s = tx->store;
	unsigned idx;

	tx->active = false;
	if (tx->write) {
		(void)pthread_mutex_unlock(&s->writer_lock);
		return;
	}
	idx = (unsigned)(tx->conn - s->readers);
	(void)pthread_mutex_lock(&s->pool_lock);
	s->free_readers[s->n_free++] = idx;
	(void)pthread_cond_signal(&s->pool_cond);
	(void)pthread_mutex_unlock(&s->pool_lock);
}

int store_write_commit(struct store_tx *tx)
{
	int r;

	if (!tx || !tx->active)
		return -EINVAL;
	if (!tx->write) {
		store_tx_end(tx);
		return -EINVAL;
	}
	if (sqlite3_get_autocommit(tx->conn->db))
		r = log_debug_errno(-EIO, "commit: transaction was rolled back by SQLite");
	else
		r = stmt_run(tx->conn, Q_COMMIT, "commit");
	if (r < 0 && !sqlite3_get_autocommit(tx->conn->db))
		(void)stmt_run(tx->conn, Q_ROLLBACK, "rollback");
	tx_release(tx);
	return r;
}

int store_read_begin(struct store *s, struct store_tx **ret)
{
	struct conn *c;
	int r;

	if (!s || !ret)
		return -EINVAL;
	(void)pthread_mutex_lock(&s->pool_lock);
	while (s->n_free == 0)
		(void)pthread_cond_wait(&s->pool_cond, &s->pool_lock);
	c = &s->readers[s->free_readers[--s->n_free]];
	(void)pthread_mutex_unlock(&s->pool_lock);

	c->tx.active = true;
	if ((r = stmt_run(c, Q_BEGIN, "begin read")) < 0 ||
	    (r = stmt_run(c, Q_SNAPSHOT, "snapshot")) < 0) {
		store_tx_end(&c->tx);
		return r;
	}
	*ret = &c->tx;
	return 0;
}

void store_tx_end(struct store_tx *tx)
{
	if (!tx || !tx->active)
		return;
	if (!sqlite3_get_autocommit(tx->conn->db))
		(void)stmt_run(tx->conn, Q_ROLLBACK, "rollback");
	tx_release(tx);
}

int store_checkpoint(struct store *s)
{
	int r, rc, log_frames = 0, done = 0;

	if (!s)
		return -EINVAL;
	if ((r = pthread_mutex_lock(&s->writer_lock)) != 0)
		return -r;
	/* TRUNCATE waits (busy timeout) for readers to leave the WAL, copies
	 * every frame back and truncates the -wal file to zero bytes. */
	rc = sqlite3_wal_checkpoint_v2(s->writer.db, NULL, SQLITE_CHECKPOINT_TRUNCATE,
				       &log_frames, &done);
	r = rc == SQLITE_OK ? 0 : sql_error(s->writer.db, rc, "checkpoint");
	(void)pthread_mutex_unlock(&s->writer_lock);
	return r;
}

int store_integrity_check(struct store *s)
{
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	_cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;
	const unsigned char *t;
	int r, rc, rows = 0;
	bool ok = false;

	/* On a reader: a full scan that does not hold up writers. */
	if ((r = store_read_begin(s, &tx)) < 0)
		return r;
	rc = sqlite3_prepare_v2(tx->conn->db, "PRAGMA integrity_check", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_error(tx->conn->db, rc, "integrity_check");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		t = sqlite3_column_text(st, 0);
		if (rows++ == 0 && t && streq((const char *)t, "ok"))
			ok = true;
		else if (rows <= 10)
			log_debug("integrity_check: %s", t ? (const char *)t : "(null)");
	}
	if (rc != SQLITE_DONE)
		r = sql_error(tx->conn->db, rc, "integrity_check");
	else
		r = ok && rows == 1 ? 0 : -EIO;
	return r;
}

/* --- meta --- */

int store_meta_get(struct store_tx *tx, const char *key, char **ret_value)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r, rc;

	if (!key || !ret_value)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_META_GET, &st)) < 0 ||
	    (r = bind_text(c, st, 1, key)) < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_error(c->db, rc, "meta get");
	return col_text_dup(st, 0, ret_value);
}

int store_meta_set(struct store_tx *tx, const char *key, const char *value)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r, rc;

	if (!key || !value)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, Q_META_SET, &st)) < 0 ||
	    (r = bind_text(c, st, 1, key)) < 0 || (r = bind_text(c, st, 2, value)) < 0)
		return r;
	rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? 0 : sql_error(c->db, rc, "meta set");
}

/* --- root keys --- */

void store_rootkey_clear(struct store_rootkey *rk)
{
	if (!rk)
		return;
	free(rk->blob);
	memset(rk, 0, sizeof(*rk));
}

int store_rootkey_put(struct store_tx *tx, const struct store_rootkey *rk)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r, rc;

	if (!rk || !name_fits(rk->hsm_label, sizeof(rk->hsm_label)) || !rk->blob ||
	    rk->blob_len == 0)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, Q_RK_PUT, &st)) < 0 ||
	    (r = bind_int(c, st, 1, rk->version)) < 0 ||
	    (r = bind_text(c, st, 2, rk->hsm_label)) < 0 ||
	    (r = bind_int(c, st, 3, rk->hsm_version)) < 0 ||
	    (r = bind_blob(c, st, 4, rk->blob, rk->blob_len)) < 0 ||
	    (r = bind_int(c, st, 5, rk->created_at)) < 0)
		return r;
	rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? 0 : sql_error(c->db, rc, "rootkey put");
}

/* Decodes a row of Q_RK_CURRENT / Q_RK_LIST. */
static int rootkey_read_row(sqlite3_stmt *st, struct store_rootkey *ret)
{
	_cleanup_(store_rootkey_clear) struct store_rootkey rk = {0};
	int r;

	if ((r = col_u32(st, 0, &rk.version)) < 0 ||
	    (r = col_text_copy(st, 1, rk.hsm_label, sizeof(rk.hsm_label))) < 0 ||
	    (r = col_u32(st, 2, &rk.hsm_version)) < 0 ||
	    (r = col_blob_dup(st, 3, &rk.blob, &rk.blob_len)) < 0)
		return r;
	rk.created_at = sqlite3_column_int64(st, 4);
	*ret = TAKE_STRUCT(rk);
	return 0;
}

int store_rootkey_get_current(struct store_tx *tx, struct store_rootkey *ret)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r, rc;

	if (!ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_RK_CURRENT, &st)) < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_error(c->db, rc, "rootkey get");
	return rootkey_read_row(st, ret);
}

int store_rootkey_list(struct store_tx *tx,
		       int (*cb)(const struct store_rootkey *rk, void *userdata), void *userdata)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r, rc, n = 0;

	if (!cb)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_RK_LIST, &st)) < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		_cleanup_(store_rootkey_clear) struct store_rootkey rk = {0};

		if ((r = rootkey_read_row(st, &rk)) < 0)
			return r;
		if ((r = cb(&rk, userdata)) < 0)
			return r;
		if (n < INT32_MAX)
			n++;
	}
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc, "rootkey list");
	return n;
}

int store_rootkey_rewrap(struct store_tx *tx, uint32_t version, const char *hsm_label,
			 uint32_t hsm_version, const uint8_t *blob, size_t len)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!name_fits(hsm_label, sizeof(((struct store_rootkey *)0)->hsm_label)) || !blob ||
	    len == 0)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, Q_RK_REWRAP, &st)) < 0 ||
	    (r = bind_int(c, st, 1, version)) < 0 || (r = bind_text(c, st, 2, hsm_label)) < 0 ||
	    (r = bind_int(c, st, 3, hsm_version)) < 0 || (r = bind_blob(c, st, 4, blob, len)) < 0)
		return r;
	r = step_changes(c, st, "rootkey rewrap");
	return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

int store_rootkey_delete_below(struct store_tx *tx, uint32_t below)
{
	_cleanup_reset_ sqlite3_stmt *ref = NULL, *del = NULL;
	struct conn *c;
	int r, rc;

	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, Q_RK_REFERENCED_BELOW, &ref)) < 0 ||
	    (r = bind_int(c, ref, 1, below)) < 0)
		return r;
	rc = sqlite3_step(ref);
	if (rc == SQLITE_ROW)
		return -EEXIST;
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc, "rootkey referenced");
	/* One statement: should the foreign key still object, SQLite undoes
	 * the whole DELETE, so nothing is ever half-deleted. */
	if ((r = stmt_get(c, Q_RK_DELETE_BELOW, &del)) < 0 || (r = bind_int(c, del, 1, below)) < 0)
		return r;
	rc = sqlite3_step(del);
	if (rc != SQLITE_DONE) {
		if (sqlite3_extended_errcode(c->db) == SQLITE_CONSTRAINT_FOREIGNKEY)
			return log_debug_errno(-EEXIST, "rootkey delete: still referenced");
		return sql_error(c->db, rc, "rootkey delete");
	}
	return sqlite3_changes(c->db);
}

/* --- KEKs --- */

void store_kek_clear(struct store_kek *k)
{
	if (!k)
		return;
	free(k->blob);
	memset(k, 0, sizeof(*k));
}

int store_kek_put(struct store_tx *tx, const struct store_kek *k)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r, rc;

	if (!k || !name_fits(k->tenant, sizeof(k->tenant)) || !k->blob || k->blob_len == 0 ||
	    k->wrap_count > INT64_MAX)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, Q_KEK_PUT, &st)) < 0 ||
	    (r = bind_text(c, st, 1, k->tenant)) < 0 || (r = bind_int(c, st, 2, k->version)) < 0 ||
	    (r = bind_int(c, st, 3, k->rk_version)) < 0 ||
	    (r = bind_blob(c, st, 4, k->blob, k->blob_len)) < 0 ||
	    (r = bind_int(c, st, 5, (int64_t)k->wrap_count)) < 0 ||
	    (r = bind_int(c, st, 6, k->created_at)) < 0)
		return r;
	rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? 0 : sql_error(c->db, rc, "kek put");
}

/* Decodes a row of tenant, version, rk_version, blob (NULL in the
 * listings that leave it out), wrap_count, created_at. */
static int kek_read_row(sqlite3_stmt *st, struct store_kek *ret)
{
	_cleanup_(store_kek_clear) struct store_kek k = {0};
	sqlite3_int64 wraps;
	int r;

	if ((r = col_text_copy(st, 0, k.tenant, sizeof(k.tenant))) < 0 ||
	    (r = col_u32(st, 1, &k.version)) < 0 || (r = col_u32(st, 2, &k.rk_version)) < 0 ||
	    (r = col_blob_dup(st, 3, &k.blob, &k.blob_len)) < 0)
		return r;
	wraps = sqlite3_column_int64(st, 4);
	if (wraps < 0)
		return log_debug_errno(-EIO, "kek: negative wrap count");
	k.wrap_count = (uint64_t)wraps;
	k.created_at = sqlite3_column_int64(st, 5);
	*ret = TAKE_STRUCT(k);
	return 0;
}

static int kek_read(struct conn *c, sqlite3_stmt *st, struct store_kek *ret)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_error(c->db, rc, "kek get");
	return kek_read_row(st, ret);
}

/* Runs a KEK listing, calling cb per row; returns the count. */
static int kek_each(struct conn *c, sqlite3_stmt *st,
		    int (*cb)(const struct store_kek *k, void *userdata), void *userdata)
{
	int r, rc, n = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		_cleanup_(store_kek_clear) struct store_kek k = {0};

		if ((r = kek_read_row(st, &k)) < 0)
			return r;
		if ((r = cb(&k, userdata)) < 0)
			return r;
		if (n < INT32_MAX)
			n++;
	}
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc, "kek list");
	return n;
}

int store_kek_get(struct store_tx *tx, const char *tenant, uint32_t version, struct store_kek *ret)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!tenant || !ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_KEK_GET, &st)) < 0 ||
	    (r = bind_text(c, st, 1, tenant)) < 0 || (r = bind_int(c, st, 2, version)) < 0)
		return r;
	return kek_read(c, st, ret);
}

int store_kek_get_current(struct store_tx *tx, const char *tenant, struct store_kek *ret)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!tenant || !ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_KEK_CURRENT, &st)) < 0 ||
	    (r = bind_text(c, st, 1, tenant)) < 0)
		return r;
	return kek_read(c, st, ret);
}

int store_kek_add_wraps(struct store_tx *tx, const char *tenant, uint32_t version, uint64_t n)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r, rc;

	/* SQLite turns an overflowing integer sum into REAL, which the STRICT
	 * column then refuses; keep n where the sum can be checked. */
	if (!tenant || n > INT64_MAX)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, Q_KEK_ADD_WRAPS, &st)) < 0 ||
	    (r = bind_text(c, st, 1, tenant)) < 0 || (r = bind_int(c, st, 2, version)) < 0 ||
	    (r = bind_int(c, st, 3, (int64_t)n)) < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc, "kek add wraps");
	return sqlite3_changes(c->db) == 0 ? -ENOENT : 0;
}

/* A tenant name as the path ranges need it: the first segment of a path. */
static bool tenant_valid(const char *tenant)
{
	return name_fits(tenant, sizeof(((struct store_kek *)0)->tenant)) && !strchr(tenant, '/');
}

int store_kek_list_old_rk(struct store_tx *tx, uint32_t below_rk, unsigned limit,
			  int (*cb)(const struct store_kek *k, void *userdata), void *userdata)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!cb || limit == 0)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_KEK_LIST_OLD_RK, &st)) < 0 ||
	    (r = bind_int(c, st, 1, below_rk)) < 0 || (r = bind_int(c, st, 2, limit)) < 0)
		return r;
	return kek_each(c, st, cb, userdata);
}

/* Steps a "SELECT count(*) ..." whose count may pass INT32_MAX. */
static int64_t step_count64(struct conn *c, sqlite3_stmt *st, const char *op)
{
	sqlite3_int64 n;
	int rc = sqlite3_step(st);

	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? -EIO : sql_error(c->db, rc, op);
	n = sqlite3_column_int64(st, 0);
	return n < 0 ? -EIO : n;
}

int64_t store_kek_count_old_rk(struct store_tx *tx, uint32_t below_rk)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_KEK_COUNT_OLD_RK, &st)) < 0 ||
	    (r = bind_int(c, st, 1, below_rk)) < 0)
		return r;
	return step_count64(c, st, "kek count old rk");
}

int store_kek_rewrap(struct store_tx *tx, const char *tenant, uint32_t version, uint32_t rk_version,
		     const uint8_t *blob, size_t len)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!tenant || !blob || len == 0)
		return -EINVAL;
	/* An rk_version with no root_keys row breaks the foreign key: -EINVAL. */
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, Q_KEK_REWRAP, &st)) < 0 ||
	    (r = bind_text(c, st, 1, tenant)) < 0 || (r = bind_int(c, st, 2, version)) < 0 ||
	    (r = bind_int(c, st, 3, rk_version)) < 0 || (r = bind_blob(c, st, 4, blob, len)) < 0)
		return r;
	r = step_changes(c, st, "kek rewrap");
	return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

int store_kek_delete_unused(struct store_tx *tx, const char *tenant, uint32_t below)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!tenant_valid(tenant))
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, Q_KEK_DELETE_UNUSED, &st)) < 0 ||
	    (r = bind_text(c, st, 1, tenant)) < 0 || (r = bind_int(c, st, 2, below)) < 0)
		return r;
	return step_changes(c, st, "kek delete unused");
}

int store_kek_list_current(struct store_tx *tx,
			   int (*cb)(const struct store_kek *k, void *userdata), void *userdata)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!cb)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_KEK_LIST_CURRENT, &st)) < 0)
		return r;
	return kek_each(c, st, cb, userdata);
}

int store_kek_list_tenant(struct store_tx *tx, const char *tenant,
			  int (*cb)(const struct store_kek *k, void *userdata), void *userdata)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!tenant || !cb)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_KEK_LIST_TENANT, &st)) < 0 ||
	    (r = bind_text(c, st, 1, tenant)) < 0)
		return r;
	return kek_each(c, st, cb, userdata);
}

/* --- secrets --- */

void store_secret_clear(struct store_secret *s)
{
	if (!s)
		return;
	free(s->path);
	free(s->metadata);
	memset(s, 0, sizeof(*s));
}

void store_version_clear(struct store_version *v)
{
	if (!v)
		return;
	free(v->dek_blob);
	free(v->data_blob);
	memset(v, 0, sizeof(*v));
}

/* Decodes a row of SECRET_COLUMNS. */
static int secret_read_row(sqlite3_stmt *st, struct store_secret *ret)
{
	_cleanup_(store_secret_clear) struct store_secret h = {0};
	int r;

	if ((r = col_text_dup(st, 0, &h.path)) < 0 ||
	    (r = col_text_copy(st, 1, h.tenant, sizeof(h.tenant))) < 0 ||
	    (r = col_text_copy(st, 2, h.type, sizeof(h.type))) < 0 ||
	    (r = col_text_dup(st, 3, &h.metadata)) < 0 ||
	    (r = col_u32(st, 4, &h.current_version)) < 0 ||
	    (r = col_u32(st, 5, &h.latest_version)) < 0 ||
	    (r = col_u32(st, 9, &h.pending_version)) < 0 ||
	    (r = col_u32(st, 10, &h.previous_version)) < 0)
		return r;
	h.created_at = sqlite3_column_int64(st, 6);
	h.updated_at = sqlite3_column_int64(st, 7);
	h.deleted_at = sqlite3_column_int64(st, 8);
	*ret = TAKE_STRUCT(h);
	return 0;
}

int store_secret_get(struct store_tx *tx, const char *path, struct store_secret *ret)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r, rc;

	if (!path || !ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_SECRET_GET, &st)) < 0 ||
	    (r = bind_text(c, st, 1, path)) < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_error(c->db, rc, "secret get");
	return secret_read_row(st, ret);
}

int store_version_get(struct store_tx *tx, const char *path, uint32_t version,
		      struct store_version *ret)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	_cleanup_(store_version_clear) struct store_version v = {0};
	struct conn *c;
	int r, rc;

	if (!path || !ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_VERSION_GET, &st)) < 0 ||
	    (r = bind_text(c, st, 1, path)) < 0 || (r = bind_int(c, st, 2, version)) < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_error(c->db, rc, "version get");
	if ((r = col_u32(st, 0, &v.version)) < 0 || (r = col_u32(st, 1, &v.kek_version)) < 0 ||
	    (r = col_blob_dup(st, 2, &v.dek_blob, &v.dek_len)) < 0 ||
	    (r = col_blob_dup(st, 3, &v.data_blob, &v.data_len)) < 0)
		return r;
	v.created_at = sqlite3_column_int64(st, 4);
	*ret = TAKE_STRUCT(v);
	return 0;
}

/* The version row itself; its head row must exist (foreign key). */
static int version_insert(struct conn *c, const char *path, const struct store_version *v)
{
	_cleanup_reset_ sqlite3_stmt *row = NULL;
	int r, rc;

	if ((r = stmt_get(c, Q_VERSION_PUT, &row)) < 0 || (r = bind_text(c, row, 1, path)) < 0 ||
	    (r = bind_int(c, row, 2, v->version)) < 0 ||
	    (r = bind_int(c, row, 3, v->kek_version)) < 0 ||
	    (r = bind_blob(c, row, 4, v->dek_blob, v->dek_len)) < 0 ||
	    (r = bind_blob(c, row, 5, v->data_blob, v->data_len)) < 0 ||
	    (r = bind_int(c, row, 6, v->created_at)) < 0)
		return r;
	rc = sqlite3_step(row);
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc, "version put");
	return 0;
}

/* The steps of store_secret_put_version(), run inside a savepoint. */
static int put_version_steps(struct conn *c, const char *path, const char *tenant,
			     const char *type, const char *metadata, const struct store_version *v)
{
	_cleanup_reset_ sqlite3_stmt *latest = NULL, *head = NULL;
	uint32_t have = 0;
	int r, rc;

	if ((r = stmt_get(c, Q_SECRET_LATEST, &latest)) < 0 ||
	    (r = bind_text(c, latest, 1, path)) < 0)
		return r;
	rc = sqlite3_step(latest);
	if (rc == SQLITE_ROW) {
		if ((r = col_u32(latest, 0, &have)) < 0)
			return r;
	} else if (rc != SQLITE_DONE)
		return sql_error(c->db, rc, "secret latest");
	/* Check-and-set on the version number: a writer that read an older
	 * head cannot overwrite a version written since. */
	if ((uint64_t)v->version != (uint64_t)have + 1)
		return -EEXIST;

	/* Head first: the version row's foreign key needs it. */
	if ((r = stmt_get(c, Q_SECRET_UPSERT, &head)) < 0 ||
	    (r = bind_text(c, head, 1, path)) < 0 || (r = bind_text(c, head, 2, tenant)) < 0 ||
	    (r = bind_text(c, head, 3, type)) < 0 || (r = bind_text(c, head, 4, metadata)) < 0 ||
	    (r = bind_int(c, head, 5, v->version)) < 0 ||
	    (r = bind_int(c, head, 6, v->created_at)) < 0)
		return r;
	rc = sqlite3_step(head);
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc, "secret head upsert");

	return version_insert(c, path, v);
}

int store_secret_put_version(struct store_tx *tx, const char *path, const char *tenant,
			     const char *type, const char *metadata, const struct store_version *v)
{
	struct conn *c;
	size_t tlen;
	int r;

	/* What goes in must come back out through the fixed-size fields, and
	 * the tenant is the path's first segment. */
	if (!path || !v || !name_fits(tenant, sizeof(((struct store_secret *)0)->tenant)) ||
	    !name_fits(type, sizeof(((struct store_secret *)0)->type)))
		return -EINVAL;
	tlen = strlen(tenant);
	if (strncmp(path, tenant, tlen) != 0 || path[tlen] != '/' || path[tlen + 1] == 0)
		return -EINVAL;
	if (!v->dek_blob || v->dek_len == 0 || !v->data_blob || v->data_len == 0)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0)
		return r;

	/* Three statements: a savepoint makes them one step within the
	 * caller's transaction, so a failure leaves nothing half-written. */
	if ((r = stmt_run(c, Q_SAVEPOINT, "savepoint")) < 0)
		return r;
	if ((r = put_version_steps(c, path, tenant, type, metadata, v)) < 0)
		goto rollback;
	if ((r = stmt_run(c, Q_RELEASE, "release")) < 0)
		goto rollback;
	return 0;
rollback:
	if (!sqlite3_get_autocommit(c->db)) {
		(void)stmt_run(c, Q_ROLLBACK_TO, "rollback to");
		(void)stmt_run(c, Q_RELEASE, "release");
	}
	return r;
}

/* What the staging calls need of a head: -ENOENT if there is none. */
struct head_state {
	uint32_t latest_version;
	uint32_t pending_version;
	bool deleted;
};

static int head_state_read(struct conn *c, const char *path, struct head_state *ret)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct head_state h = {0};
	int r, rc;

	if ((r = stmt_get(c, Q_SECRET_STATE, &st)) < 0 || (r = bind_text(c, st, 1, path)) < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_error(c->db, rc, "secret state");
	if ((r = col_u32(st, 0, &h.latest_version)) < 0 || (r = col_u32(st, 2, &h.pending_version)) < 0)
		return r;
	h.deleted = sqlite3_column_int64(st, 1) != 0;
	*ret = h;
	return 0;
}

/* The steps of store_secret_put_pending(), run inside a savepoint. */
static int put_pending_steps(struct conn *c, const char *path, const char *metadata,
			     const struct store_version *v)
{
	_cleanup_reset_ sqlite3_stmt *head = NULL;
	struct head_state h;
	int r, rc;

	if ((r = head_state_read(c, path, &h)) < 0)
		return r;
	if (h.deleted)
		return -ENOENT;
	/* The same check-and-set on the version number as put_version. */
	if ((uint64_t)v->version != (uint64_t)h.latest_version + 1)
		return -EEXIST;

	if ((r = stmt_get(c, Q_SECRET_STAGE, &head)) < 0 || (r = bind_text(c, head, 1, path)) < 0 ||
	    (r = bind_int(c, head, 2, v->version)) < 0 || (r = bind_text(c, head, 3, metadata)) < 0 ||
	    (r = bind_int(c, head, 4, v->created_at)) < 0)
		return r;
	rc = sqlite3_step(head);
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc, "secret stage");

	return version_insert(c, path, v);
}

int store_secret_put_pending(struct store_tx *tx, const char *path, const char *metadata,
			     const struct store_version *v)
{
	struct conn *c;
	int r;

	if (!path || !v || !v->dek_blob || v->dek_len == 0 || !v->data_blob || v->data_len == 0)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = savepoint_begin(c)) < 0)
		return r;
	return savepoint_end(c, put_pending_steps(c, path, metadata, v));
}

int store_secret_promote(struct store_tx *tx, const char *path, uint32_t version, int64_t now)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct head_state h;
	struct conn *c;
	int r;

	if (!path)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = head_state_read(c, path, &h)) < 0)
		return r;
	if (h.deleted)
		return -ENOENT;
	if (h.pending_version == 0 || (version != 0 && version != h.pending_version))
		return -ESRCH;
	/* The return value carries the version: refuse, changing nothing,
	 * one that an int cannot hold. */
	if (h.pending_version > INT32_MAX)
		return -EOVERFLOW;
	if ((r = stmt_get(c, Q_SECRET_PROMOTE, &st)) < 0 || (r = bind_text(c, st, 1, path)) < 0 ||
	    (r = bind_int(c, st, 2, now)) < 0 || (r = bind_int(c, st, 3, h.pending_version)) < 0)
		return r;
	r = step_changes(c, st, "secret promote");
	if (r < 0)
		return r;
	/* The write transaction holds the lock since the read: cannot happen. */
	if (r == 0)
		return log_debug_errno(-EIO, "secret promote: head changed under the writer");
	return (int)h.pending_version;
}

int store_secret_prune_versions(struct store_tx *tx, const char *path, unsigned keep)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!path || keep == 0)
		return -EINVAL;
	/* secure_delete overwrites the blobs' old cells and overflow pages. */
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, Q_SECRET_PRUNE, &st)) < 0 ||
	    (r = bind_text(c, st, 1, path)) < 0 || (r = bind_int(c, st, 2, keep)) < 0)
		return r;
	return step_changes(c, st, "secret prune");
}

int store_secret_list_max_age(struct store_tx *tx,
			      int (*cb)(const struct store_secret *s, const char *max_age,
					int64_t current_created_at, void *userdata),
			      void *userdata)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r, rc, n = 0;

	if (!cb)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_SECRET_LIST_MAX_AGE, &st)) < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		_cleanup_(store_secret_clear) struct store_secret h = {0};
		_cleanup_free_ char *max_age = NULL;

		if ((r = secret_read_row(st, &h)) < 0 || (r = col_text_dup(st, 11, &max_age)) < 0)
			return r;
		if ((r = cb(&h, max_age, sqlite3_column_int64(st, 12), userdata)) < 0)
			return r;
		if (n < INT32_MAX)
			n++;
	}
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc, "secret list max age");
	return n;
}

int store_secret_soft_delete(struct store_tx *tx, const char *path, int64_t now)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r, rc;

	/* deleted_at 0 means live, so a deletion needs a non-zero time. */
	if (!path || now == 0)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, Q_SECRET_SOFT_DELETE, &st)) < 0 ||
	    (r = bind_text(c, st, 1, path)) < 0 || (r = bind_int(c, st, 2, now)) < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc, "secret soft delete");
	return sqlite3_changes(c->db) == 0 ? -ENOENT : 0;
}

int store_secret_destroy(struct store_tx *tx, const char *path)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r, rc;

	if (!path)
		return -EINVAL;
	/* The version rows go with the head (ON DELETE CASCADE) in the same
	 * statement; secure_delete zeroes their cells in the page. */
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, Q_SECRET_DESTROY, &st)) < 0 ||
	    (r = bind_text(c, st, 1, path)) < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc, "secret destroy");
	return sqlite3_changes(c->db) == 0 ? -ENOENT : 0;
}

int store_secret_list(struct store_tx *tx, const char *prefix, unsigned limit,
		      int (*cb)(const struct store_secret *s, void *userdata), void *userdata)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r, rc, n = 0;
	bool all = !prefix || !*prefix;

	if (!cb)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 ||
	    (r = stmt_get(c, all ? Q_SECRET_LIST_ALL : Q_SECRET_LIST, &st)) < 0 ||
	    (!all && (r = bind_text(c, st, 1, prefix)) < 0) ||
	    (r = bind_int(c, st, 2, limit == 0 ? -1 : (int64_t)limit)) < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		_cleanup_(store_secret_clear) struct store_secret h = {0};

		if ((r = secret_read_row(st, &h)) < 0)
			return r;
		if ((r = cb(&h, userdata)) < 0)
			return r;
		if (n < INT32_MAX)
			n++;
	}
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc, "secret list");
	return n;
}

int store_version_list(struct store_tx *tx, const char *path,
		       int (*cb)(const struct store_version *v, void *userdata), void *userdata)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r, rc, n = 0;

	if (!path || !cb)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_VERSION_LIST, &st)) < 0 ||
	    (r = bind_text(c, st, 1, path)) < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_version v = {0};

		if ((r = col_u32(st, 0, &v.version)) < 0 || (r = col_u32(st, 1, &v.kek_version)) < 0)
			return r;
		v.dek_len = (size_t)sqlite3_column_int64(st, 2);
		v.data_len = (size_t)sqlite3_column_int64(st, 3);
		v.created_at = sqlite3_column_int64(st, 4);
		if ((r = cb(&v, userdata)) < 0)
			return r;
		if (n < INT32_MAX)
			n++;
	}
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc, "version list");
	return n;
}

/* --- rotation support --- */

/* Runs a batch reader of VERSION_ROW_COLUMNS, calling cb per row with the
 * path and the version, blobs loaded; returns the count. */
static int version_each(struct conn *c, sqlite3_stmt *st, store_version_cb cb, void *userdata,
			const char *op)
{
	int r, rc, n = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		_cleanup_(store_version_clear) struct store_version v = {0};
		_cleanup_free_ char *path = NULL;

		if ((r = col_text_dup(st, 0, &path)) < 0 || (r = col_u32(st, 1, &v.version)) < 0 ||
		    (r = col_u32(st, 2, &v.kek_version)) < 0 ||
		    (r = col_blob_dup(st, 3, &v.dek_blob, &v.dek_len)) < 0 ||
		    (r = col_blob_dup(st, 4, &v.data_blob, &v.data_len)) < 0)
			return r;
		v.created_at = sqlite3_column_int64(st, 5);
		if ((r = cb(path, &v, userdata)) < 0)
			return r;
		if (n < INT32_MAX)
			n++;
	}
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc, op);
	return n;
}

int store_version_list_old_kek(struct store_tx *tx, const char *tenant, uint32_t below_version,
			       unsigned limit, store_version_cb cb, void *userdata)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!tenant_valid(tenant) || limit == 0 || !cb)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_VERSION_OLD_KEK, &st)) < 0 ||
	    (r = bind_text(c, st, 1, tenant)) < 0 || (r = bind_int(c, st, 2, below_version)) < 0 ||
	    (r = bind_int(c, st, 3, limit)) < 0)
		return r;
	return version_each(c, st, cb, userdata, "version list old kek");
}

int64_t store_version_count_old_kek(struct store_tx *tx, const char *tenant, uint32_t below_version)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!tenant_valid(tenant))
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_VERSION_COUNT_OLD_KEK, &st)) < 0 ||
	    (r = bind_text(c, st, 1, tenant)) < 0 || (r = bind_int(c, st, 2, below_version)) < 0)
		return r;
	return step_count64(c, st, "version count old kek");
}

int store_version_list_range(struct store_tx *tx, const char *prefix, const char *after_path,
			     uint32_t after_version, unsigned limit, store_version_cb cb, void *userdata)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;
	bool all;

	if (!prefix || limit == 0 || !cb)
		return -EINVAL;
	if (!after_path)
		after_path = "";
	all = !*prefix;
	/* A cursor before the prefix starts at the prefix: (prefix, 0) sorts
	 * before every version of every path under it. */
	if (!all && strcmp(after_path, prefix) < 0) {
		after_path = prefix;
		after_version = 0;
	}
	if ((r = tx_conn(tx, false, &c)) < 0 ||
	    (r = stmt_get(c, all ? Q_VERSION_RANGE_ALL : Q_VERSION_RANGE, &st)) < 0 ||
	    (!all && (r = bind_text(c, st, 1, prefix)) < 0) ||
	    (r = bind_text(c, st, 2, after_path)) < 0 || (r = bind_int(c, st, 3, after_version)) < 0 ||
	    (r = bind_int(c, st, 4, limit)) < 0)
		return r;
	return version_each(c, st, cb, userdata, "version list range");
}

int64_t store_version_count_prefix(struct store_tx *tx, const char *prefix)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;
	bool all;

	if (!prefix)
		return -EINVAL;
	all = !*prefix;
	if ((r = tx_conn(tx, false, &c)) < 0 ||
	    (r = stmt_get(c, all ? Q_VERSION_COUNT_ALL : Q_VERSION_COUNT_PREFIX, &st)) < 0 ||
	    (!all && (r = bind_text(c, st, 1, prefix)) < 0))
		return r;
	return step_count64(c, st, "version count prefix");
}

int store_version_rewrap(struct store_tx *tx, const char *path, uint32_t version, uint32_t kek_version,
			 const uint8_t *dek_blob, size_t dek_len, const uint8_t *data_blob,
			 size_t data_len)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!path || !dek_blob || dek_len == 0 || !blob_arg_valid(data_blob, data_len))
		return -EINVAL;
	/* A NULL data blob binds NULL, which the coalesce() keeps as it was. */
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, Q_VERSION_REWRAP, &st)) < 0 ||
	    (r = bind_text(c, st, 1, path)) < 0 || (r = bind_int(c, st, 2, version)) < 0 ||
	    (r = bind_int(c, st, 3, kek_version)) < 0 ||
	    (r = bind_blob(c, st, 4, dek_blob, dek_len)) < 0 ||
	    (r = bind_blob_opt(c, st, 5, data_blob, data_len)) < 0)
		return r;
	r = step_changes(c, st, "version rewrap");
	return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

int store_version_retag_destroyed(struct store_tx *tx, const char *tenant, uint32_t kek_version)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!tenant_valid(tenant))
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, Q_VERSION_RETAG, &st)) < 0 ||
	    (r = bind_text(c, st, 1, tenant)) < 0 || (r = bind_int(c, st, 2, kek_version)) < 0)
		return r;
	return step_changes(c, st, "version retag destroyed");
}

/* --- helpers for the identity tables --- */

/* Hex SHA-256 as the callers produce it: 64 lowercase hex digits. */
static bool hex64_valid(const char *h)
{
	if (!h || strnlen(h, 65) != 64)
		return false;
	for (size_t i = 0; i < 64; i++)
		if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
			return false;
	return true;
}

/* 0 if the user row exists, -ENOENT if not. Lets writers that reference a
 * user say "no such user" instead of the foreign key's -EINVAL. */
static int user_exists(struct conn *c, const char *name)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = stmt_get(c, Q_USER_EXISTS, &st)) < 0 || (r = bind_text(c, st, 1, name)) < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		return 0;
	return rc == SQLITE_DONE ? -ENOENT : sql_error(c->db, rc, "user exists");
}

/* Runs a one-row JSON check (Q_ROLES_VALID, Q_JSON_VALID): 0 or -EINVAL.
 * Checked here, not by a CHECK in the schema: with trusted_schema=OFF,
 * SQLite 3.40 refuses JSON functions inside the schema. */
static int json_check(struct conn *c, enum query q, const char *text)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	int r, rc;

	if (!text)
		return -EINVAL;
	if ((r = stmt_get(c, q, &st)) < 0 || (r = bind_text(c, st, 1, text)) < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return sql_error(c->db, rc, "json check");
	return sqlite3_column_int(st, 0) == 1 ? 0 : -EINVAL;
}

/* roles columns hold a JSON array; anything else would never match in
 * json_each and could hide an assignment. */
static int roles_check(struct conn *c, const char *roles)
{
	return json_check(c, Q_ROLES_VALID, roles);
}

/* --- users --- */

void store_user_clear(struct store_user *u)
{
	if (!u)
		return;
	/* A PHC string is not the passphrase, but it is what an offline
	 * guessing attack needs: do not leave it in freed heap. The MFA blobs
	 * are wrapped, but cost nothing to wipe as well. */
	if (u->phc) {
		explicit_bzero(u->phc, strlen(u->phc));
		free(u->phc);
	}
	free(u->roles);
	if (u->mfa_key) {
		explicit_bzero(u->mfa_key, u->mfa_key_len);
		free(u->mfa_key);
	}
	if (u->totp_blob) {
		explicit_bzero(u->totp_blob, u->totp_len);
		free(u->totp_blob);
	}
	memset(u, 0, sizeof(*u));
}

int store_user_put(struct store_tx *tx, const struct store_user *u)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r, rc;

	if (!u || !name_fits(u->name, sizeof(u->name)) || !u->phc || !u->roles ||
	    u->mfa_state < STORE_MFA_NONE || u->mfa_state > STORE_MFA_ACTIVE ||
	    !blob_arg_valid(u->mfa_key, u->mfa_key_len) ||
	    !blob_arg_valid(u->totp_blob, u->totp_len) || u->totp_last_step > INT64_MAX)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = roles_check(c, u->roles)) < 0)
		return r;
	if ((r = stmt_get(c, Q_USER_PUT, &st)) < 0 ||
	    (r = bind_text(c, st, 1, u->name)) < 0 || (r = bind_text(c, st, 2, u->phc)) < 0 ||
	    (r = bind_text(c, st, 3, u->roles)) < 0 || (r = bind_int(c, st, 4, u->mfa_state)) < 0 ||
	    (r = bind_blob_opt(c, st, 5, u->mfa_key, u->mfa_key_len)) < 0 ||
	    (r = bind_blob_opt(c, st, 6, u->totp_blob, u->totp_len)) < 0 ||
	    (r = bind_int(c, st, 7, (int64_t)u->totp_last_step)) < 0 ||
	    (r = bind_int(c, st, 8, u->created_at)) < 0 ||
	    (r = bind_int(c, st, 9, u->updated_at)) < 0 || (r = bind_mac(c, st, 10, u->mac)) < 0)
		return r;
	rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? 0 : sql_error(c->db, rc, "user put");
}

/* Decodes the first eight columns of Q_USER_GET / Q_USER_LIST. */
static int user_read_row(sqlite3_stmt *st, struct store_user *u)
{
	sqlite3_int64 state, step;
	int r;

	if ((r = col_text_copy(st, 0, u->name, sizeof(u->name))) < 0 ||
	    (r = col_text_dup(st, 1, &u->phc)) < 0 || (r = col_text_dup(st, 2, &u->roles)) < 0)
		return r;
	state = sqlite3_column_int64(st, 3);
	step = sqlite3_column_int64(st, 4);
	if (state < STORE_MFA_NONE || state > STORE_MFA_ACTIVE || step < 0)
		return log_debug_errno(-EIO, "user: bad MFA columns");
	u->mfa_state = (int)state;
	u->totp_last_step = (uint64_t)step;
	u->created_at = sqlite3_column_int64(st, 5);
	u->updated_at = sqlite3_column_int64(st, 6);
	return col_mac(st, 7, u->mac);
}

int store_user_get(struct store_tx *tx, const char *name, struct store_user *ret)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	_cleanup_(store_user_clear) struct store_user u = {0};
	struct conn *c;
	int r, rc;

	if (!name || !ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_USER_GET, &st)) < 0 ||
	    (r = bind_text(c, st, 1, name)) < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_error(c->db, rc, "user get");
	if ((r = user_read_row(st, &u)) < 0 ||
	    (r = col_blob_dup(st, 8, &u.mfa_key, &u.mfa_key_len)) < 0 ||
	    (r = col_blob_dup(st, 9, &u.totp_blob, &u.totp_len)) < 0)
		return r;
	*ret = TAKE_STRUCT(u);
	return 0;
}

int store_user_delete(struct store_tx *tx, const char *name)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!name)
		return -EINVAL;
	/* Tokens and recovery codes go with the row (ON DELETE CASCADE). */
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, Q_USER_DELETE, &st)) < 0 ||
	    (r = bind_text(c, st, 1, name)) < 0)
		return r;
	r = step_changes(c, st, "user delete");
	return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

int store_user_count(struct store_tx *tx)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_USER_COUNT, &st)) < 0)
		return r;
	return step_count(c, st, "user count");
}

int store_user_list(struct store_tx *tx, int (*cb)(const struct store_user *u, void *userdata),
		    void *userdata)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r, rc, n = 0;

	if (!cb)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_USER_LIST, &st)) < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		_cleanup_(store_user_clear) struct store_user u = {0};

		if ((r = user_read_row(st, &u)) < 0)
			return r;
		if ((r = cb(&u, userdata)) < 0)
			return r;
		if (n < INT32_MAX)
			n++;
	}
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc, "user list");
	return n;
}

int store_user_count_with_role(struct store_tx *tx, const char *role)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!role)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_USER_COUNT_ROLE, &st)) < 0 ||
	    (r = bind_text(c, st, 1, role)) < 0)
		return r;
	return step_count(c, st, "user count with role");
}

int store_user_list_mfa_keys(struct store_tx *tx,
			     int (*cb)(const char *name, const uint8_t *blob, size_t len, void *userdata),
			     void *userdata)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r, rc, n = 0;

	if (!cb)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_USER_LIST_MFA_KEYS, &st)) < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char name[sizeof(((struct store_user *)0)->name)];
		const void *b;
		int len;

		if ((r = col_text_copy(st, 0, name, sizeof(name))) < 0)
			return r;
		/* Lent straight from the row: valid until the next step. */
		b = sqlite3_column_blob(st, 1);         /* blob before bytes */
		len = sqlite3_column_bytes(st, 1);
		if (sqlite3_column_type(st, 1) != SQLITE_BLOB || !b || len <= 0)
			return log_debug_errno(-EIO, "user: bad MFA key column");
		if ((r = cb(name, b, (size_t)len, userdata)) < 0)
			return r;
		if (n < INT32_MAX)
			n++;
	}
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc, "user list mfa keys");
	return n;
}

int store_user_set_mfa_key(struct store_tx *tx, const char *name, const uint8_t *blob, size_t len)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!name || !blob || len == 0)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, Q_USER_SET_MFA_KEY, &st)) < 0 ||
	    (r = bind_text(c, st, 1, name)) < 0 || (r = bind_blob(c, st, 2, blob, len)) < 0)
		return r;
	r = step_changes(c, st, "user set mfa key");
	return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

int store_user_use_totp_step(struct store_tx *tx, const char *name, uint64_t step)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!name || step > INT64_MAX)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, Q_USER_USE_STEP, &st)) < 0 ||
	    (r = bind_text(c, st, 1, name)) < 0 || (r = bind_int(c, st, 2, (int64_t)step)) < 0)
		return r;
	if ((r = step_changes(c, st, "user use totp step")) != 0)
		return r < 0 ? r : 0;
	/* Nothing changed: a replayed (or older) step, or no such user. */
	r = user_exists(c, name);
	return r < 0 ? r : -EALREADY;
}

/* --- recovery codes --- */

static int recovery_set_steps(struct conn *c, const char *user, const char (*hashes)[65],
			      unsigned n)
{
	_cleanup_reset_ sqlite3_stmt *clear = NULL;
	int r;

	if ((r = stmt_get(c, Q_RECOVERY_CLEAR, &clear)) < 0 ||
	    (r = bind_text(c, clear, 1, user)) < 0 ||
	    (r = step_changes(c, clear, "recovery clear")) < 0)
		return r;
	for (unsigned i = 0; i < n; i++) {
		_cleanup_reset_ sqlite3_stmt *add = NULL;

		if ((r = stmt_get(c, Q_RECOVERY_ADD, &add)) < 0 ||
		    (r = bind_text(c, add, 1, user)) < 0 ||
		    (r = bind_text(c, add, 2, hashes[i])) < 0 ||
		    (r = step_changes(c, add, "recovery add")) < 0)
			return r;       /* a duplicate in hashes: -EEXIST */
	}
	return 0;
}

int store_recovery_set(struct store_tx *tx, const char *user, const char (*hashes)[65], unsigned n)
{
	struct conn *c;
	int r;

	if (!user || (n > 0 && !hashes))
		return -EINVAL;
	/* All checked before anything is deleted. */
	for (unsigned i = 0; i < n; i++)
		if (!hex64_valid(hashes[i]))
			return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = user_exists(c, user)) < 0)
		return r;
	/* Delete and n inserts: one step within the caller's transaction. */
	if ((r = savepoint_begin(c)) < 0)
		return r;
	return savepoint_end(c, recovery_set_steps(c, user, hashes, n));
}

int store_recovery_consume(struct store_tx *tx, const char *user, const char *hash)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!user || !hash)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, Q_RECOVERY_CONSUME, &st)) < 0 ||
	    (r = bind_text(c, st, 1, user)) < 0 || (r = bind_text(c, st, 2, hash)) < 0)
		return r;
	r = step_changes(c, st, "recovery consume");
	return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

int store_recovery_count(struct store_tx *tx, const char *user)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!user)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_RECOVERY_COUNT, &st)) < 0 ||
	    (r = bind_text(c, st, 1, user)) < 0)
		return r;
	return step_count(c, st, "recovery count");
}

/* --- session tokens --- */

int store_token_put(struct store_tx *tx, const struct store_token *t)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!t || !hex64_valid(t->hash) || !name_fits(t->user, sizeof(t->user)))
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = user_exists(c, t->user)) < 0 ||
	    (r = stmt_get(c, Q_TOKEN_PUT, &st)) < 0 || (r = bind_text(c, st, 1, t->hash)) < 0 ||
	    (r = bind_text(c, st, 2, t->user)) < 0 || (r = bind_int(c, st, 3, t->uid)) < 0 ||
	    (r = bind_int(c, st, 4, t->created_at)) < 0 ||
	    (r = bind_int(c, st, 5, t->expires_at)) < 0)
		return r;
	r = step_changes(c, st, "token put");
	return r < 0 ? r : 0;
}

int store_token_get(struct store_tx *tx, const char *hash, struct store_token *ret)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct store_token t = {0};
	struct conn *c;
	int r, rc;

	if (!hash || !ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_TOKEN_GET, &st)) < 0 ||
	    (r = bind_text(c, st, 1, hash)) < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_error(c->db, rc, "token get");
	if ((r = col_text_copy(st, 0, t.hash, sizeof(t.hash))) < 0 ||
	    (r = col_text_copy(st, 1, t.user, sizeof(t.user))) < 0 || (r = col_u32(st, 2, &t.uid)) < 0)
		return r;
	t.created_at = sqlite3_column_int64(st, 3);
	t.expires_at = sqlite3_column_int64(st, 4);
	*ret = t;
	return 0;
}

/* The token deletes: bind one optional text or integer, return the count. */
static int token_delete_q(struct store_tx *tx, enum query q, const char *text, int64_t num,
			  bool use_num)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, q, &st)) < 0 ||
	    (text && (r = bind_text(c, st, 1, text)) < 0) ||
	    (use_num && (r = bind_int(c, st, 1, num)) < 0))
		return r;
	return step_changes(c, st, "token delete");
}

int store_token_delete(struct store_tx *tx, const char *hash)
{
	int r;

	if (!hash)
		return -EINVAL;
	r = token_delete_q(tx, Q_TOKEN_DELETE, hash, 0, false);
	return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

int store_token_delete_user(struct store_tx *tx, const char *user)
{
	if (!user)
		return -EINVAL;
	return token_delete_q(tx, Q_TOKEN_DELETE_USER, user, 0, false);
}

int store_token_delete_user_except(struct store_tx *tx, const char *user, const char *keep_hash)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!user || !keep_hash)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, Q_TOKEN_DELETE_USER_EXCEPT, &st)) < 0 ||
	    (r = bind_text(c, st, 1, user)) < 0 || (r = bind_text(c, st, 2, keep_hash)) < 0)
		return r;
	return step_changes(c, st, "token delete");
}

int store_token_delete_all(struct store_tx *tx)
{
	return token_delete_q(tx, Q_TOKEN_DELETE_ALL, NULL, 0, false);
}

int store_token_purge_expired(struct store_tx *tx, int64_t now)
{
	return token_delete_q(tx, Q_TOKEN_PURGE, NULL, now, true);
}

/* --- custom roles --- */

void store_role_clear(struct store_role *r)
{
	if (!r)
		return;
	free(r->rules);
	memset(r, 0, sizeof(*r));
}

int store_role_put(struct store_tx *tx, const struct store_role *role)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!role || !name_fits(role->name, sizeof(role->name)) || !role->rules)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = json_check(c, Q_JSON_VALID, role->rules)) < 0 ||
	    (r = stmt_get(c, Q_ROLE_PUT, &st)) < 0 ||
	    (r = bind_text(c, st, 1, role->name)) < 0 || (r = bind_text(c, st, 2, role->rules)) < 0 ||
	    (r = bind_int(c, st, 3, role->created_at)) < 0 ||
	    (r = bind_int(c, st, 4, role->updated_at)) < 0 || (r = bind_mac(c, st, 5, role->mac)) < 0)
		return r;
	r = step_changes(c, st, "role put");
	return r < 0 ? r : 0;
}

static int role_read_row(sqlite3_stmt *st, struct store_role *ret)
{
	_cleanup_(store_role_clear) struct store_role role = {0};
	int r;

	if ((r = col_text_copy(st, 0, role.name, sizeof(role.name))) < 0 ||
	    (r = col_text_dup(st, 1, &role.rules)) < 0)
		return r;
	role.created_at = sqlite3_column_int64(st, 2);
	role.updated_at = sqlite3_column_int64(st, 3);
	if ((r = col_mac(st, 4, role.mac)) < 0)
		return r;
	*ret = TAKE_STRUCT(role);
	return 0;
}

int store_role_get(struct store_tx *tx, const char *name, struct store_role *ret)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r, rc;

	if (!name || !ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_ROLE_GET, &st)) < 0 ||
	    (r = bind_text(c, st, 1, name)) < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_error(c->db, rc, "role get");
	return role_read_row(st, ret);
}

int store_role_delete(struct store_tx *tx, const char *name)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!name)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, Q_ROLE_DELETE, &st)) < 0 ||
	    (r = bind_text(c, st, 1, name)) < 0)
		return r;
	r = step_changes(c, st, "role delete");
	return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

int store_role_list(struct store_tx *tx, int (*cb)(const struct store_role *r, void *userdata),
		    void *userdata)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r, rc, n = 0;

	if (!cb)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_ROLE_LIST, &st)) < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		_cleanup_(store_role_clear) struct store_role role = {0};

		if ((r = role_read_row(st, &role)) < 0)
			return r;
		if ((r = cb(&role, userdata)) < 0)
			return r;
		if (n < INT32_MAX)
			n++;
	}
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc, "role list");
	return n;
}

int store_role_refs(struct store_tx *tx, const char *role)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!role)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_ROLE_REFS, &st)) < 0 ||
	    (r = bind_text(c, st, 1, role)) < 0)
		return r;
	return step_count(c, st, "role refs");
}

/* --- service bindings --- */

void store_service_clear(struct store_service *s)
{
	if (!s)
		return;
	free(s->roles);
	memset(s, 0, sizeof(*s));
}

int store_service_put(struct store_tx *tx, const struct store_service *s)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!s || !name_fits(s->name, sizeof(s->name)) || !s->roles)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = roles_check(c, s->roles)) < 0)
		return r;
	if ((r = stmt_get(c, Q_SERVICE_PUT, &st)) < 0 || (r = bind_text(c, st, 1, s->name)) < 0 ||
	    (r = bind_int(c, st, 2, s->uid)) < 0 || (r = bind_text(c, st, 3, s->roles)) < 0 ||
	    (r = bind_int(c, st, 4, s->created_at)) < 0 ||
	    (r = bind_int(c, st, 5, s->updated_at)) < 0 || (r = bind_mac(c, st, 6, s->mac)) < 0)
		return r;
	r = step_changes(c, st, "service put");        /* uid taken: UNIQUE -> -EEXIST */
	return r < 0 ? r : 0;
}

static int service_read_row(sqlite3_stmt *st, struct store_service *ret)
{
	_cleanup_(store_service_clear) struct store_service svc = {0};
	int r;

	if ((r = col_text_copy(st, 0, svc.name, sizeof(svc.name))) < 0 ||
	    (r = col_u32(st, 1, &svc.uid)) < 0 || (r = col_text_dup(st, 2, &svc.roles)) < 0)
		return r;
	svc.created_at = sqlite3_column_int64(st, 3);
	svc.updated_at = sqlite3_column_int64(st, 4);
	if ((r = col_mac(st, 5, svc.mac)) < 0)
		return r;
	*ret = TAKE_STRUCT(svc);
	return 0;
}

static int service_get_q(struct store_tx *tx, enum query q, const char *name, uint32_t uid,
			 struct store_service *ret)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r, rc;

	if (!ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, q, &st)) < 0 ||
	    (r = name ? bind_text(c, st, 1, name) : bind_int(c, st, 1, uid)) < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_error(c->db, rc, "service get");
	return service_read_row(st, ret);
}

int store_service_get(struct store_tx *tx, const char *name, struct store_service *ret)
{
	if (!name)
		return -EINVAL;
	return service_get_q(tx, Q_SERVICE_GET, name, 0, ret);
}

int store_service_get_by_uid(struct store_tx *tx, uint32_t uid, struct store_service *ret)
{
	return service_get_q(tx, Q_SERVICE_GET_UID, NULL, uid, ret);
}

int store_service_delete(struct store_tx *tx, const char *name)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!name)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, Q_SERVICE_DELETE, &st)) < 0 ||
	    (r = bind_text(c, st, 1, name)) < 0)
		return r;
	r = step_changes(c, st, "service delete");
	return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

int store_service_list(struct store_tx *tx,
		       int (*cb)(const struct store_service *s, void *userdata), void *userdata)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r, rc, n = 0;

	if (!cb)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_SERVICE_LIST, &st)) < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		_cleanup_(store_service_clear) struct store_service svc = {0};

		if ((r = service_read_row(st, &svc)) < 0)
			return r;
		if ((r = cb(&svc, userdata)) < 0)
			return r;
		if (n < INT32_MAX)
			n++;
	}
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc, "service list");
	return n;
}

/* --- brute-force accounting --- */

/* Keys are "user:<name>" or "uid:<n>"; the bound is ours. */
#define FAILURE_KEY_MAX 256

static bool failure_key_valid(const char *key)
{
	return name_fits(key, FAILURE_KEY_MAX);
}

/* Reads the record of key: 0, -ENOENT, or an error. */
static int failure_read(struct conn *c, const char *key, struct store_failure *ret)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct store_failure f = {0};
	int r, rc;

	if ((r = stmt_get(c, Q_FAILURE_GET, &st)) < 0 || (r = bind_text(c, st, 1, key)) < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_error(c->db, rc, "failure get");
	if ((r = col_u32(st, 0, &f.count)) < 0)
		return r;
	f.window_start = sqlite3_column_int64(st, 1);
	f.locked_until = sqlite3_column_int64(st, 2);
	*ret = f;
	return 0;
}

int store_failure_get(struct store_tx *tx, const char *key, struct store_failure *ret)
{
	struct conn *c;
	int r;

	if (!failure_key_valid(key) || !ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0)
		return r;
	return failure_read(c, key, ret);
}

int store_failure_record(struct store_tx *tx, const char *key, int64_t now, int64_t window,
			 uint32_t max, int64_t lockout, struct store_failure *ret)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct store_failure f = {0};
	struct conn *c;
	int64_t until;
	int r;

	/* The arithmetic below must not overflow: now + lockout, now - start. */
	if (!failure_key_valid(key) || now < 0 || window <= 0 || max == 0 || lockout < 0 ||
	    lockout > INT64_MAX - now)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0)
		return r;
	/* Read, compute, upsert: the caller's write transaction holds the
	 * writer lock, so no other failure can interleave. */
	r = failure_read(c, key, &f);
	if (r < 0 && r != -ENOENT)
		return r;
	/* A window_start in the future (clock stepped back) restarts too. */
	if (r == -ENOENT || f.window_start > now || now - f.window_start >= window) {
		f.count = 1;
		f.window_start = now;
	} else if (f.count < UINT32_MAX)
		f.count++;
	if (f.count >= max) {
		until = now + lockout;
		if (until > f.locked_until)     /* never shorten a longer lock */
			f.locked_until = until;
	}
	if ((r = stmt_get(c, Q_FAILURE_PUT, &st)) < 0 || (r = bind_text(c, st, 1, key)) < 0 ||
	    (r = bind_int(c, st, 2, f.count)) < 0 || (r = bind_int(c, st, 3, f.window_start)) < 0 ||
	    (r = bind_int(c, st, 4, f.locked_until)) < 0 ||
	    (r = step_changes(c, st, "failure record")) < 0)
		return r;
	if (ret)
		*ret = f;
	return 0;
}

int store_failure_clear(struct store_tx *tx, const char *key)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!failure_key_valid(key))
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, Q_FAILURE_CLEAR, &st)) < 0 ||
	    (r = bind_text(c, st, 1, key)) < 0)
		return r;
	r = step_changes(c, st, "failure clear");
	return r < 0 ? r : 0;
}

/* --- rotation jobs --- */

static bool rotation_kind_valid(const char *s)
{
	return streq(s, "secret") || streq(s, "kek") || streq(s, "root") || streq(s, "hsm");
}

static bool rotation_state_valid(const char *s)
{
	return streq(s, "queued") || streq(s, "running") || streq(s, "done") || streq(s, "failed");
}

/* Every char[] field NUL-terminated within its size (so that it comes back
 * out whole) and kind and state known. */
static bool rotation_valid(const struct store_rotation *r)
{
	return text_fits(r->kind, sizeof(r->kind)) && rotation_kind_valid(r->kind) &&
	       text_fits(r->target, sizeof(r->target)) && text_fits(r->state, sizeof(r->state)) &&
	       rotation_state_valid(r->state) && text_fits(r->principal, sizeof(r->principal)) &&
	       text_fits(r->request_id, sizeof(r->request_id)) &&
	       text_fits(r->cursor_path, sizeof(r->cursor_path)) &&
	       text_fits(r->error, sizeof(r->error));
}

/* Decodes a row of ROTATION_COLUMNS. Each text must fit its field: a
 * longer one is -EIO, never truncated. */
static int rotation_read_row(sqlite3_stmt *st, struct store_rotation *ret)
{
	struct store_rotation j = {0};
	int r;

	j.id = sqlite3_column_int64(st, 0);
	if ((r = col_text_copy(st, 1, j.kind, sizeof(j.kind))) < 0 ||
	    (r = col_text_copy(st, 2, j.target, sizeof(j.target))) < 0 ||
	    (r = col_text_copy(st, 3, j.state, sizeof(j.state))) < 0 ||
	    (r = col_text_copy(st, 4, j.principal, sizeof(j.principal))) < 0 ||
	    (r = col_text_copy(st, 5, j.request_id, sizeof(j.request_id))) < 0 ||
	    (r = col_u32(st, 6, &j.from_version)) < 0 || (r = col_u32(st, 7, &j.to_version)) < 0 ||
	    (r = col_text_copy(st, 10, j.cursor_path, sizeof(j.cursor_path))) < 0 ||
	    (r = col_u32(st, 11, &j.cursor_version)) < 0 ||
	    (r = col_text_copy(st, 12, j.error, sizeof(j.error))) < 0)
		return r;
	j.done = sqlite3_column_int64(st, 8);
	j.total = sqlite3_column_int64(st, 9);
	j.created_at = sqlite3_column_int64(st, 13);
	j.updated_at = sqlite3_column_int64(st, 14);
	j.finished_at = sqlite3_column_int64(st, 15);
	*ret = j;
	return 0;
}

int store_rotation_add(struct store_tx *tx, struct store_rotation *j)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!j || !rotation_valid(j))
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, Q_ROTATION_ADD, &st)) < 0 ||
	    (r = bind_text(c, st, 1, j->kind)) < 0 || (r = bind_text(c, st, 2, j->target)) < 0 ||
	    (r = bind_text(c, st, 3, j->state)) < 0 || (r = bind_text(c, st, 4, j->principal)) < 0 ||
	    (r = bind_text(c, st, 5, j->request_id)) < 0 ||
	    (r = bind_int(c, st, 6, j->from_version)) < 0 ||
	    (r = bind_int(c, st, 7, j->to_version)) < 0 || (r = bind_int(c, st, 8, j->done)) < 0 ||
	    (r = bind_int(c, st, 9, j->total)) < 0 || (r = bind_text(c, st, 10, j->cursor_path)) < 0 ||
	    (r = bind_int(c, st, 11, j->cursor_version)) < 0 ||
	    (r = bind_text(c, st, 12, j->error)) < 0 || (r = bind_int(c, st, 13, j->created_at)) < 0 ||
	    (r = bind_int(c, st, 14, j->updated_at)) < 0 ||
	    (r = bind_int(c, st, 15, j->finished_at)) < 0)
		return r;
	/* A negative done or total fails its CHECK: -EINVAL. */
	if ((r = step_changes(c, st, "rotation add")) < 0)
		return r;
	j->id = sqlite3_last_insert_rowid(c->db);
	return 0;
}

int store_rotation_update(struct store_tx *tx, const struct store_rotation *j)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!j || !rotation_valid(j))
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, Q_ROTATION_UPDATE, &st)) < 0 ||
	    (r = bind_int(c, st, 1, j->id)) < 0 || (r = bind_text(c, st, 2, j->state)) < 0 ||
	    (r = bind_int(c, st, 3, j->from_version)) < 0 ||
	    (r = bind_int(c, st, 4, j->to_version)) < 0 || (r = bind_int(c, st, 5, j->done)) < 0 ||
	    (r = bind_int(c, st, 6, j->total)) < 0 || (r = bind_text(c, st, 7, j->cursor_path)) < 0 ||
	    (r = bind_int(c, st, 8, j->cursor_version)) < 0 ||
	    (r = bind_text(c, st, 9, j->error)) < 0 || (r = bind_int(c, st, 10, j->updated_at)) < 0 ||
	    (r = bind_int(c, st, 11, j->finished_at)) < 0)
		return r;
	r = step_changes(c, st, "rotation update");
	return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

/* Steps a one-row rotation query: the job or -ENOENT. */
static int rotation_read(struct conn *c, sqlite3_stmt *st, struct store_rotation *ret)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_error(c->db, rc, "rotation get");
	return rotation_read_row(st, ret);
}

int store_rotation_get(struct store_tx *tx, int64_t id, struct store_rotation *ret)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_ROTATION_GET, &st)) < 0 ||
	    (r = bind_int(c, st, 1, id)) < 0)
		return r;
	return rotation_read(c, st, ret);
}

int store_rotation_next(struct store_tx *tx, struct store_rotation *ret)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_ROTATION_NEXT, &st)) < 0)
		return r;
	return rotation_read(c, st, ret);
}

int store_rotation_find_active(struct store_tx *tx, const char *kind, const char *target,
			       struct store_rotation *ret)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!kind || !target || !ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_ROTATION_FIND_ACTIVE, &st)) < 0 ||
	    (r = bind_text(c, st, 1, kind)) < 0 || (r = bind_text(c, st, 2, target)) < 0)
		return r;
	return rotation_read(c, st, ret);
}

int store_rotation_list(struct store_tx *tx, unsigned limit,
			int (*cb)(const struct store_rotation *r, void *userdata), void *userdata)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r, rc, n = 0;

	if (!cb)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_ROTATION_LIST, &st)) < 0 ||
	    (r = bind_int(c, st, 1, limit)) < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_rotation j;

		if ((r = rotation_read_row(st, &j)) < 0)
			return r;
		if ((r = cb(&j, userdata)) < 0)
			return r;
		if (n < INT32_MAX)
			n++;
	}
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc, "rotation list");
	return n;
}

/* --- backup --- */

#define BACKUP_READ_CHUNK 65536
/* The SQLite file header: its magic, and user_version (big-endian) at 60. */
#define SQLITE_HEADER_MAGIC "SQLite format 3"
#define SQLITE_HEADER_USER_VERSION 60

/* VACUUM INTO on a short-lived read-only connection of its own. The pool's
 * readers run with query_only=ON, under which SQLite refuses VACUUM INTO
 * (it writes the copy), and a long copy should not hold a pool slot. With
 * no BEGIN around it, VACUUM INTO reads one consistent snapshot; in WAL
 * mode that never blocks the writer. */
static int backup_copy(struct store *s, const char *path)
{
	struct conn c = {0};
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = conn_open_base(&c, s->path, SQLITE_OPEN_READONLY)) >= 0 &&
	    (r = stmt_get(&c, Q_BACKUP, &st)) >= 0 && (r = bind_text(&c, st, 1, path)) >= 0) {
		rc = sqlite3_step(st);
		if (rc != SQLITE_DONE)
			r = sql_error(c.db, rc, "vacuum into");
	}
	conn_close(&c);         /* finalizes st */
	return r;
}

/* Flushes the copy, checks it is still the file created (same inode) and
 * a SQLite database, and measures it: size, SHA-256, user_version. */
static int backup_describe(const char *path, const struct stat *created, struct store_backup_info *ret)
{
	_cleanup_free_ uint8_t *buf = NULL;
	crypto_hash_sha256_state h;
	uint8_t header[100];
	struct stat st;
	int64_t bytes = 0;
	ssize_t n;
	int fd, r = 0;

	buf = malloc(BACKUP_READ_CHUNK);
	if (!buf)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return log_debug_errno(-errno, "backup: reopen the copy");
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_dev != created->st_dev || st.st_ino != created->st_ino) {
		r = log_debug_errno(-EIO, "backup: the copy was replaced");
		goto out;
	}
	/* VACUUM INTO writes the copy without syncing it. */
	if (fsync(fd) < 0) {
		r = log_debug_errno(-errno, "backup: fsync the copy");
		goto out;
	}
	crypto_hash_sha256_init(&h);
	while ((n = read(fd, buf, BACKUP_READ_CHUNK)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = log_debug_errno(-errno, "backup: read the copy");
			goto out;
		}
		if (bytes < (int64_t)sizeof(header))
			memcpy(header + bytes, buf,
			       MIN((size_t)n, sizeof(header) - (size_t)bytes));
		crypto_hash_sha256_update(&h, buf, (unsigned long long)n);
		bytes += n;
	}
	if (bytes < (int64_t)sizeof(header) ||
	    memcmp(header, SQLITE_HEADER_MAGIC, sizeof(SQLITE_HEADER_MAGIC)) != 0) {
		r = log_debug_errno(-EIO, "backup: the copy is not a database");
		goto out;
	}
	crypto_hash_sha256_final(&h, ret->sha256);
	ret->bytes = bytes;
	ret->schema_version = (int)(int32_t)get_be32(header + SQLITE_HEADER_USER_VERSION);
out:
	(void)close(fd);
	return r;
}

/* Makes the copy's directory entry durable. */
static int fsync_parent(const char *path)
{
	_cleanup_free_ char *dir = strdup(path);
	char *slash;
	int fd, r = 0;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		slash[1] = 0;
	else
		*slash = 0;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return log_debug_errno(-errno, "backup: open the directory");
	if (fsync(fd) < 0)
		r = log_debug_errno(-errno, "backup: fsync the directory");
	(void)close(fd);
	return r;
}

int store_backup(struct store *s, const char *path, struct store_backup_info *ret)
{
	struct store_backup_info info = {0};
	struct stat created;
	int fd, r;

	if (!s || !path || !*path || !ret)
		return -EINVAL;
	/* Created here, empty, 0600 whatever the umask: O_EXCL makes "must not
	 * exist" and the creation one step, O_NOFOLLOW refuses a symlink.
	 * VACUUM INTO accepts an empty file. The fd is closed before SQLite
	 * opens the file (see file_prepare()). */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0)
		return log_debug_errno(-errno, "backup: create the copy");
	if (fstat(fd, &created) < 0 || fchmod(fd, 0600) < 0) {
		r = -errno;
		(void)close(fd);
		(void)unlink(path);
		return r;
	}
	(void)close(fd);

	r = backup_copy(s, path);
	if (r >= 0)
		r = backup_describe(path, &created, &info);
	if (r >= 0)
		r = fsync_parent(path);
	if (r < 0) {
		/* Removed, unless someone replaced it: that file is not ours. */
		struct stat now;

		if (lstat(path, &now) == 0 && now.st_dev == created.st_dev &&
		    now.st_ino == created.st_ino)
			(void)unlink(path);
		return r;
	}
	*ret = info;
	return 0;
}

/* --- audit --- */

/* The bound on a composed audit query; the fragments below add up to far less. */
#define AUDIT_QUERY_SQL_MAX 1024
#define AUDIT_QUERY_LIMIT_MAX 10000

void store_audit_clear(struct store_audit *a)
{
	if (!a)
		return;
	free(a->path);
	free(a->detail);
	memset(a, 0, sizeof(*a));
}

static bool audit_result_valid(const char *s)
{
	return s && (streq(s, "allowed") || streq(s, "denied") || streq(s, "failed") || streq(s, "attempt"));
}

/* NULL stays NULL (no path, no detail); text is copied out. */
static int col_text_dup_opt(sqlite3_stmt *st, int i, char **ret)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL) {
		*ret = NULL;
		return 0;
	}
	return col_text_dup(st, i, ret);
}

static int col_i32(sqlite3_stmt *st, int i, int32_t *ret)
{
	sqlite3_int64 v = sqlite3_column_int64(st, i);

	if (sqlite3_column_type(st, i) != SQLITE_INTEGER || v < INT32_MIN || v > INT32_MAX)
		return log_debug_errno(-EIO, "column %d: not a 32-bit integer", i);
	*ret = (int32_t)v;
	return 0;
}

/* Exactly size bytes, never NULL. */
static int col_blob_fixed(sqlite3_stmt *st, int i, uint8_t *buf, size_t size)
{
	const void *b = sqlite3_column_blob(st, i);     /* blob before bytes */
	int n = sqlite3_column_bytes(st, i);

	if (sqlite3_column_type(st, i) != SQLITE_BLOB || !b || n < 0 || (size_t)n != size)
		return log_debug_errno(-EIO, "column %d: blob of the wrong size", i);
	memcpy(buf, b, size);
	return 0;
}

/* Decodes a row of AUDIT_COLUMNS. */
static int audit_read_row(sqlite3_stmt *st, struct store_audit *ret)
{
	_cleanup_(store_audit_clear) struct store_audit a = {0};
	int32_t status;
	int r;

	a.id = sqlite3_column_int64(st, 0);
	a.time = sqlite3_column_int64(st, 1);
	if ((r = col_text_copy(st, 2, a.principal, sizeof(a.principal))) < 0 ||
	    (r = col_u32(st, 3, &a.uid)) < 0 || (r = col_i32(st, 4, &a.pid)) < 0 ||
	    (r = col_text_copy(st, 5, a.action, sizeof(a.action))) < 0 ||
	    (r = col_text_dup_opt(st, 6, &a.path)) < 0 ||
	    (r = col_text_copy(st, 7, a.capability, sizeof(a.capability))) < 0 ||
	    (r = col_text_copy(st, 8, a.result, sizeof(a.result))) < 0 ||
	    (r = col_i32(st, 9, &status)) < 0 || (r = col_text_dup_opt(st, 10, &a.detail)) < 0 ||
	    (r = col_text_copy(st, 11, a.request_id, sizeof(a.request_id))) < 0 ||
	    (r = col_blob_fixed(st, 12, a.hash, sizeof(a.hash))) < 0)
		return r;
	a.status = status;
	*ret = TAKE_STRUCT(a);
	return 0;
}

int store_audit_last(struct store_tx *tx, struct store_audit *ret)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r, rc;

	if (!ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_AUDIT_LAST, &st)) < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_error(c->db, rc, "audit last");
	return audit_read_row(st, ret);
}

int store_audit_append(struct store_tx *tx, const struct store_audit *a)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	/* Whatever goes in must come back out through the fixed-size fields. */
	if (!a || a->id < 1 || !name_fits(a->principal, sizeof(a->principal)) ||
	    !name_fits(a->action, sizeof(a->action)) ||
	    !text_fits(a->capability, sizeof(a->capability)) ||
	    !text_fits(a->result, sizeof(a->result)) || !audit_result_valid(a->result) ||
	    !text_fits(a->request_id, sizeof(a->request_id)))
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, Q_AUDIT_APPEND, &st)) < 0 ||
	    (r = bind_int(c, st, 1, a->id)) < 0 || (r = bind_int(c, st, 2, a->time)) < 0 ||
	    (r = bind_text(c, st, 3, a->principal)) < 0 || (r = bind_int(c, st, 4, a->uid)) < 0 ||
	    (r = bind_int(c, st, 5, a->pid)) < 0 || (r = bind_text(c, st, 6, a->action)) < 0 ||
	    (r = bind_text(c, st, 7, a->path)) < 0 ||
	    (r = bind_text(c, st, 8, a->capability)) < 0 ||
	    (r = bind_text(c, st, 9, a->result)) < 0 || (r = bind_int(c, st, 10, a->status)) < 0 ||
	    (r = bind_text(c, st, 11, a->detail)) < 0 ||
	    (r = bind_text(c, st, 12, a->request_id)) < 0 ||
	    (r = bind_blob(c, st, 13, a->hash, sizeof(a->hash))) < 0)
		return r;
	r = step_changes(c, st, "audit append");
	/* No row: the id does not follow the current last one. */
	return r < 0 ? r : r == 0 ? -EEXIST : 0;
}

/* Runs a SELECT of AUDIT_COLUMNS, calling cb per row; returns the count. */
static int audit_each(struct conn *c, sqlite3_stmt *st,
		      int (*cb)(const struct store_audit *a, void *userdata), void *userdata)
{
	int r, rc, n = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		_cleanup_(store_audit_clear) struct store_audit a = {0};

		if ((r = audit_read_row(st, &a)) < 0)
			return r;
		if ((r = cb(&a, userdata)) < 0)
			return r;
		if (n < INT32_MAX)
			n++;
	}
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc, "audit read");
	return n;
}

static int sql_append(char *buf, size_t size, size_t *len, const char *frag)
{
	size_t n = strlen(frag);

	if (n >= size - *len)
		return log_debug_errno(-EIO, "audit query too long");
	memcpy(buf + *len, frag, n + 1);
	*len += n;
	return 0;
}

int store_audit_query(struct store_tx *tx, const struct store_audit_filter *f,
		      int (*cb)(const struct store_audit *a, void *userdata), void *userdata)
{
	_cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;
	char sql[AUDIT_QUERY_SQL_MAX];
	size_t len = 0;
	struct conn *c;
	int r, rc;
	bool cursor;

	if (!f || !cb || f->limit < 1 || f->limit > AUDIT_QUERY_LIMIT_MAX || f->after_id < 0 ||
	    (f->path_prefix && !*f->path_prefix) || (f->result && !audit_result_valid(f->result)))
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0)
		return r;
	/* Ascending, id > 0 holds for every row anyway; descending, 0 means
	 * start from the newest. */
	cursor = f->after_id > 0;

	/* Fixed fragments with fixed parameter numbers: only the shape of the
	 * query depends on the filter, every value is bound. ?8 (the limit)
	 * is always there, so binding any lower number is in range. The path
	 * test is store_secret_list's index range plus segment boundary. */
	if ((r = sql_append(sql, sizeof(sql), &len,
			    "SELECT " AUDIT_COLUMNS " FROM audit WHERE 1")) < 0 ||
	    (f->since != 0 && (r = sql_append(sql, sizeof(sql), &len, " AND time >= ?1")) < 0) ||
	    (f->until != 0 && (r = sql_append(sql, sizeof(sql), &len, " AND time <= ?2")) < 0) ||
	    (f->principal && (r = sql_append(sql, sizeof(sql), &len, " AND principal = ?3")) < 0) ||
	    (f->path_prefix &&
	     (r = sql_append(sql, sizeof(sql), &len,
			     " AND path >= ?4 AND path < ?4 || '0' "
			     "AND (path = ?4 OR substr(path, length(?4) + 1, 1) = '/')")) < 0) ||
	    (f->action && (r = sql_append(sql, sizeof(sql), &len, " AND action = ?5")) < 0) ||
	    (f->result && (r = sql_append(sql, sizeof(sql), &len, " AND result = ?6")) < 0) ||
	    (cursor && (r = sql_append(sql, sizeof(sql), &len,
				       f->descending ? " AND id < ?7" : " AND id > ?7")) < 0) ||
	    (r = sql_append(sql, sizeof(sql), &len,
			    f->descending ? " ORDER BY id DESC LIMIT ?8" : " ORDER BY id LIMIT ?8")) < 0)
		return r;

	/* One-off: the filter combinations are too many to cache. */
	rc = sqlite3_prepare_v3(c->db, sql, -1, 0, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_error(c->db, rc, "prepare audit query");
	if ((f->since != 0 && (r = bind_int(c, st, 1, f->since)) < 0) ||
	    (f->until != 0 && (r = bind_int(c, st, 2, f->until)) < 0) ||
	    (f->principal && (r = bind_text(c, st, 3, f->principal)) < 0) ||
	    (f->path_prefix && (r = bind_text(c, st, 4, f->path_prefix)) < 0) ||
	    (f->action && (r = bind_text(c, st, 5, f->action)) < 0) ||
	    (f->result && (r = bind_text(c, st, 6, f->result)) < 0) ||
	    (cursor && (r = bind_int(c, st, 7, f->after_id)) < 0) ||
	    (r = bind_int(c, st, 8, f->limit)) < 0)
		return r;
	return audit_each(c, st, cb, userdata);
}

int store_audit_iterate(struct store_tx *tx,
			int (*cb)(const struct store_audit *a, void *userdata), void *userdata)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!cb)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_AUDIT_ITERATE, &st)) < 0)
		return r;
	return audit_each(c, st, cb, userdata);
}

int store_audit_first(struct store_tx *tx, struct store_audit *ret)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r, rc;

	if (!ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_AUDIT_FIRST, &st)) < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_error(c->db, rc, "audit first");
	return audit_read_row(st, ret);
}

int store_audit_last_before(struct store_tx *tx, int64_t before, struct store_audit *ret)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r, rc;

	if (!ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_AUDIT_LAST_BEFORE, &st)) < 0 ||
	    (r = bind_int(c, st, 1, before)) < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_error(c->db, rc, "audit last before");
	return audit_read_row(st, ret);
}

int64_t store_audit_delete_through(struct store_tx *tx, int64_t through)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r, rc;

	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, Q_AUDIT_DELETE_THROUGH, &st)) < 0 ||
	    (r = bind_int(c, st, 1, through)) < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc, "audit delete through");
	return sqlite3_changes64(c->db);
}
