/* vaultd/store/store.c: the store's core; see store.h.
 *
 * Opening (the file checks, the pragmas), the migrations, the connections,
 * the transactions and the statement cache, the integrity check and the WAL
 * checkpoint. The record families live in files of their own, each with its
 * statements (meta.c, keys.c, secrets.c, people.c, sessions.c, audit.c,
 * jobs.c, backup.c); what they share is in internal.h, its helpers in sql.c.
 *
 * One writer connection behind an error-checking mutex, and a pool of
 * read-only connections handed out whole. Each connection keeps its own cache
 * of prepared statements (SQLITE_PREPARE_PERSISTENT), one row per family, so
 * a statement is only ever used by the thread that holds the connection. A
 * struct store_tx lives inside its connection: beginning a transaction
 * allocates nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/log.h"
#include "common/util.h"
#define STORE_INTERNAL
#include "vaultd/store/internal.h"
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

/* The transactions' own statements; every record family has a table like
 * this in its file (internal.h). */
enum {
	Q_BEGIN,
	Q_BEGIN_IMMEDIATE,
	Q_COMMIT,
	Q_ROLLBACK,
	Q_SNAPSHOT,
	Q_SAVEPOINT,
	Q_RELEASE,
	Q_ROLLBACK_TO,
	Q_SYNC_FULL,
	Q_SYNC_NORMAL,
	_Q_CORE_MAX,
};

static const char *const core_sql[_Q_CORE_MAX] = {
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
	/* Only outside a transaction: SQLite refuses a change inside one. */
	[Q_SYNC_FULL] = "PRAGMA synchronous = FULL",
	[Q_SYNC_NORMAL] = "PRAGMA synchronous = NORMAL",
};
DEFINE_STMT_TABLE(core_stmts, STMT_CORE, core_sql);

struct store {
	struct conn writer;
	pthread_mutex_t writer_lock;    /* held from write_begin to commit/end */
	bool writer_relaxed;            /* the writer is at synchronous = NORMAL (under writer_lock) */
	/* CLOCK_MONOTONIC ms of the oldest relaxed commit no synced commit has
	 * covered yet; 0 if none. Written under writer_lock, read by anyone. */
	_Atomic int64_t unsynced_since;

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

/* --- the statement cache --- */

/* The slot is the family's row of the connection's cache: families never
 * share a slot, and no family needs to know another's statements. */
int stmt_get(struct conn *c, const struct stmt_table *t, unsigned q, sqlite3_stmt **ret)
{
	sqlite3_stmt **slot;
	int rc;

	if (t->family >= _STMT_FAMILY_MAX || q >= t->n || !t->sql[q])
		return log_debug_errno(-EINVAL, "statement %u of family %d: none", q, (int)t->family);
	slot = &c->stmt[t->family][q];
	if (!*slot) {
		rc = sqlite3_prepare_v3(c->db, t->sql[q], -1, SQLITE_PREPARE_PERSISTENT, slot, NULL);
		if (rc != SQLITE_OK)
			return sql_error(c->db, rc, "prepare");
	}
	*ret = *slot;
	return 0;
}

/* Runs one of the transactions' statements, which return no rows we need. */
static int stmt_run(struct conn *c, unsigned q, const char *op)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt_get(c, &core_stmts, q, &st)) < 0)
		return r;
	r = stmt_each(c, st, NULL, NULL, op);
	return r < 0 ? r : 0;
}

int savepoint_begin(struct conn *c)
{
	return stmt_run(c, Q_SAVEPOINT, "savepoint");
}

int savepoint_end(struct conn *c, int r)
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

/* SQLite rolls a transaction back by itself on some errors (I/O, full disk,
 * out of memory); carrying on would then run each later statement in
 * autocommit mode, so that is -EIO. */
int tx_conn(struct store_tx *tx, bool write, struct conn **ret)
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

void conn_close(struct conn *c)
{
	int rc;

	for (size_t f = 0; f < _STMT_FAMILY_MAX; f++)
		for (size_t i = 0; i < STMT_FAMILY_SLOTS; i++) {
			(void)sqlite3_finalize(c->stmt[f][i]);
			c->stmt[f][i] = NULL;
		}
	if (c->db) {
		rc = sqlite3_close(c->db);
		if (rc != SQLITE_OK)
			(void)sql_error(c->db, rc, "close");
		c->db = NULL;
	}
}

int conn_open_private(struct store *s, struct conn *c)
{
	return conn_open_base(c, s->path, SQLITE_OPEN_READONLY);
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

static int write_begin(struct store *s, bool relaxed, struct store_tx **ret)
{
	struct conn *w;
	int r;

	if (!s || !ret)
		return -EINVAL;
	if ((r = pthread_mutex_lock(&s->writer_lock)) != 0)
		return -r;                      /* EDEADLK: this thread holds it */
	w = &s->writer;
	/* The level is set for each transaction, before its BEGIN: a durable
	 * write never runs at the relaxed level, and fails if it cannot be
	 * restored. */
	if (s->writer_relaxed != relaxed) {
		if ((r = stmt_run(w, relaxed ? Q_SYNC_NORMAL : Q_SYNC_FULL, "set synchronous")) < 0) {
			(void)pthread_mutex_unlock(&s->writer_lock);
			return r;
		}
		s->writer_relaxed = relaxed;
	}
	if ((r = stmt_run(w, Q_BEGIN_IMMEDIATE, "begin write")) < 0) {
		(void)pthread_mutex_unlock(&s->writer_lock);
		return r;
	}
	w->tx.active = true;
	w->tx.relaxed = relaxed;
	w->tx.changes_at_begin = sqlite3_total_changes64(w->db);
	*ret = &w->tx;
	return 0;
}

int store_write_begin(struct store *s, struct store_tx **ret)
{
	return write_begin(s, false, ret);
}

int store_write_begin_relaxed(struct store *s, struct store_tx **ret)
{
	return write_begin(s, true, ret);
}

int64_t store_unsynced_since(struct store *s)
{
	return s ? s->unsynced_since : 0;
}

int store_sync(struct store *s)
{
	struct store_tx *tx = NULL;
	char now[32];
	int r;

	if (!s)
		return -EINVAL;
	/* A synced commit that writes a frame makes the WAL durable up to it,
	 * and with it every relaxed commit before. An empty one writes none. */
	if ((r = store_write_begin(s, &tx)) < 0)
		return r;
	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	r = store_meta_set(tx, "wal_synced_at", now);
	if (r >= 0)
		return store_write_commit(tx);
	store_tx_end(tx);
	return r;
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
	if (r >= 0 && sqlite3_total_changes64(tx->conn->db) != tx->changes_at_begin) {
		struct store *s = tx->store;

		if (!tx->relaxed)
			s->unsynced_since = 0;  /* its fsync covered every frame before it */
		else if (!s->unsynced_since)
			s->unsynced_since = MAX(now_ms(), 1);
	}
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

/* integrity_check answers one row "ok", or up to 100 rows naming problems. */
struct integrity_rows {
	int rows;
	bool ok;
};

static int integrity_row(sqlite3_stmt *st, void *userdata)
{
	struct integrity_rows *ir = userdata;
	const unsigned char *t = sqlite3_column_text(st, 0);

	if (ir->rows++ == 0 && t && streq((const char *)t, "ok"))
		ir->ok = true;
	else if (ir->rows <= 10)
		log_debug("integrity_check: %s", t ? (const char *)t : "(null)");
	return 0;
}

int store_integrity_check(struct store *s)
{
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	_cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;
	struct integrity_rows ir = {0};
	int r, rc;

	/* On a reader: a full scan that does not hold up writers. */
	if ((r = store_read_begin(s, &tx)) < 0)
		return r;
	rc = sqlite3_prepare_v2(tx->conn->db, "PRAGMA integrity_check", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_error(tx->conn->db, rc, "integrity_check");
	if ((r = stmt_each(tx->conn, st, integrity_row, &ir, "integrity_check")) < 0)
		return r;
	return ir.ok && ir.rows == 1 ? 0 : -EIO;
}
