/* vaultd/store.c: SQLite storage; see store.h.
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
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/log.h"
#include "common/util.h"
#include "vaultd/store.h"

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
	Q_KEK_PUT,
	Q_KEK_GET,
	Q_KEK_CURRENT,
	Q_KEK_ADD_WRAPS,
	Q_SECRET_GET,
	Q_SECRET_LATEST,
	Q_SECRET_UPSERT,
	Q_VERSION_PUT,
	Q_VERSION_GET,
	Q_SECRET_SOFT_DELETE,
	Q_SECRET_DESTROY,
	Q_SECRET_LIST,
	Q_SECRET_LIST_ALL,
	Q_VERSION_LIST,
	Q_USER_PUT,
	Q_USER_GET,
	Q_USER_DELETE,
	Q_USER_COUNT,
	_Q_MAX,
};

#define SECRET_COLUMNS                                                                  \
	"path, tenant, type, metadata, current_version, latest_version, created_at, "  \
	"updated_at, deleted_at"

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
	[Q_KEK_PUT] = "INSERT INTO keks(tenant, version, rk_version, blob, wrap_count, created_at) "
		      "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[Q_KEK_GET] = "SELECT tenant, version, rk_version, blob, wrap_count, created_at "
		      "FROM keks WHERE tenant = ?1 AND version = ?2",
	[Q_KEK_CURRENT] = "SELECT tenant, version, rk_version, blob, wrap_count, created_at "
			  "FROM keks WHERE tenant = ?1 ORDER BY version DESC LIMIT 1",
	[Q_KEK_ADD_WRAPS] = "UPDATE keks SET wrap_count = wrap_count + ?3 "
			    "WHERE tenant = ?1 AND version = ?2",
	[Q_SECRET_GET] = "SELECT " SECRET_COLUMNS " FROM secrets WHERE path = ?1",
	[Q_SECRET_LATEST] = "SELECT latest_version FROM secrets WHERE path = ?1",
	[Q_SECRET_UPSERT] =
		"INSERT INTO secrets(" SECRET_COLUMNS ") "
		"VALUES (?1, ?2, ?3, coalesce(?4, '{}'), ?5, ?5, ?6, ?6, 0) "
		"ON CONFLICT(path) DO UPDATE SET type = excluded.type, "
		"metadata = coalesce(?4, secrets.metadata), "
		"current_version = excluded.current_version, "
		"latest_version = excluded.latest_version, "
		"updated_at = excluded.updated_at, deleted_at = 0",
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
	[Q_USER_PUT] = "INSERT INTO users(name, phc, roles, created_at, updated_at) "
		       "VALUES (?1, ?2, ?3, ?4, ?5) "
		       "ON CONFLICT(name) DO UPDATE SET phc = excluded.phc, "
		       "roles = excluded.roles, updated_at = excluded.updated_at",
	[Q_USER_GET] = "SELECT name, phc, roles, created_at, updated_at FROM users WHERE name = ?1",
	[Q_USER_DELETE] = "DELETE FROM users WHERE name = ?1",
	[Q_USER_COUNT] = "SELECT count(*) FROM users",
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
static int file_prepare(const char *path)
{
	struct stat st;
	int fd;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0)
		return log_debug_errno(-errno, "open database file");
	if (fstat(fd, &st) < 0) {
		int r = -errno;
		(void)close(fd);
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		(void)close(fd);
		return log_debug_errno(-EINVAL, "database path is not a regular file");
	}
	if ((st.st_mode & 077) && fchmod(fd, 0600) < 0) {
		int r = -errno;
		(void)close(fd);
		return log_debug_errno(r, "tighten database file mode");
	}
	(void)close(fd);
	return 0;
}

static int file_mode_verify(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (st.st_mode & 077))
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

static int conn_open(struct conn *c, const char *path, bool write)
{
	int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
	int r, rc;

	/* NOMUTEX: each connection is used by one thread at a time under our
	 * own locks. It still needs a thread-safe library build. */
	flags |= write ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;
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
	if ((r = exec(c->db, "PRAGMA trusted_schema = OFF", "trusted_schema")) < 0)
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

	if ((r = file_prepare(path)) < 0)
		return r;
	if ((r = conn_open(&s->writer, path, true)) < 0)
		return r;
	if ((r = migrate(&s->writer, &s->schema_version)) < 0)
		return r;
	if (asprintf(&wal, "%s-wal", path) < 0) {
		wal = NULL;
		return -ENOMEM;
	}
	if ((r = file_mode_verify(path)) < 0)
		return r;
	if (access(wal, F_OK) == 0 && (r = file_mode_verify(wal)) < 0)
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

int store_rootkey_get_current(struct store_tx *tx, struct store_rootkey *ret)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	_cleanup_(store_rootkey_clear) struct store_rootkey rk = {0};
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
	if ((r = col_u32(st, 0, &rk.version)) < 0 ||
	    (r = col_text_copy(st, 1, rk.hsm_label, sizeof(rk.hsm_label))) < 0 ||
	    (r = col_u32(st, 2, &rk.hsm_version)) < 0 ||
	    (r = col_blob_dup(st, 3, &rk.blob, &rk.blob_len)) < 0)
		return r;
	rk.created_at = sqlite3_column_int64(st, 4);
	*ret = TAKE_STRUCT(rk);
	return 0;
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

static int kek_read(struct conn *c, sqlite3_stmt *st, struct store_kek *ret)
{
	_cleanup_(store_kek_clear) struct store_kek k = {0};
	sqlite3_int64 wraps;
	int r, rc;

	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sql_error(c->db, rc, "kek get");
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
	    (r = col_u32(st, 5, &h.latest_version)) < 0)
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

/* The steps of store_secret_put_version(), run inside a savepoint. */
static int put_version_steps(struct conn *c, const char *path, const char *tenant,
			     const char *type, const char *metadata, const struct store_version *v)
{
	_cleanup_reset_ sqlite3_stmt *latest = NULL, *head = NULL, *row = NULL;
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

/* --- users --- */

void store_user_clear(struct store_user *u)
{
	if (!u)
		return;
	/* A PHC string is not the passphrase, but it is what an offline
	 * guessing attack needs: do not leave it in freed heap. */
	if (u->phc) {
		explicit_bzero(u->phc, strlen(u->phc));
		free(u->phc);
	}
	free(u->roles);
	memset(u, 0, sizeof(*u));
}

int store_user_put(struct store_tx *tx, const struct store_user *u)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r, rc;

	if (!u || !name_fits(u->name, sizeof(u->name)) || !u->phc || !u->roles)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, Q_USER_PUT, &st)) < 0 ||
	    (r = bind_text(c, st, 1, u->name)) < 0 || (r = bind_text(c, st, 2, u->phc)) < 0 ||
	    (r = bind_text(c, st, 3, u->roles)) < 0 || (r = bind_int(c, st, 4, u->created_at)) < 0 ||
	    (r = bind_int(c, st, 5, u->updated_at)) < 0)
		return r;
	rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? 0 : sql_error(c->db, rc, "user put");
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
	if ((r = col_text_copy(st, 0, u.name, sizeof(u.name))) < 0 ||
	    (r = col_text_dup(st, 1, &u.phc)) < 0 || (r = col_text_dup(st, 2, &u.roles)) < 0)
		return r;
	u.created_at = sqlite3_column_int64(st, 3);
	u.updated_at = sqlite3_column_int64(st, 4);
	*ret = TAKE_STRUCT(u);
	return 0;
}

int store_user_delete(struct store_tx *tx, const char *name)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r, rc;

	if (!name)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, Q_USER_DELETE, &st)) < 0 ||
	    (r = bind_text(c, st, 1, name)) < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc, "user delete");
	return sqlite3_changes(c->db) == 0 ? -ENOENT : 0;
}

int store_user_count(struct store_tx *tx)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	sqlite3_int64 n;
	int r, rc;

	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, Q_USER_COUNT, &st)) < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return sql_error(c->db, rc, "user count");
	n = sqlite3_column_int64(st, 0);
	return n > INT32_MAX ? INT32_MAX : (int)n;
}
