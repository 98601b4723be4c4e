/* vaultd/store/internal.h: what the files of vaultd/store/ share. Nothing
 * outside vaultd/store/ includes it; a file that does must say so first with
 * #define STORE_INTERNAL (as OpenSSH's sshbuf files do with SSHBUF_INTERNAL).
 *
 * store.c owns the connections, the transactions and the statement cache;
 * each record family (meta.c, keys.c, secrets.c, people.c, sessions.c,
 * audit.c, jobs.c, backup.c) owns its SQL in a table of its own, prepared
 * only through stmt_get(), and lists rows only through stmt_each(); sql.c
 * holds the bind, column and step helpers and the one SQLite-to-errno table.
 *
 * This header does not include store.h: store.c and store.h are one module
 * and an include back would be a cycle. The families include both.
 *
 * Threads: a struct conn is used by the one thread holding its transaction
 * (store.h); nothing here locks.
 */
#pragma once
#ifndef STORE_INTERNAL
#error "vaultd/store/internal.h is private to vaultd/store/: use vaultd/store/store.h"
#endif
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "common/util.h"

struct store;
struct conn;

/* --- statements: one table per family, cached per connection --- */

/* One per file that owns statements. The cache keeps STMT_FAMILY_SLOTS
 * prepared statements per family on each connection. */
enum stmt_family {
	STMT_CORE,              /* store.c: BEGIN, COMMIT, savepoints */
	STMT_META,              /* meta.c */
	STMT_KEYS,              /* keys.c: root keys, KEKs */
	STMT_SECRETS,           /* secrets.c: heads, versions, batch readers */
	STMT_PEOPLE,            /* people.c: users, recovery codes, roles, services */
	STMT_SESSIONS,          /* sessions.c: tokens, auth failures */
	STMT_AUDIT,             /* audit.c */
	STMT_JOBS,              /* jobs.c: rotation jobs */
	STMT_BACKUP,            /* backup.c */
	_STMT_FAMILY_MAX,
};
#define STMT_FAMILY_SLOTS 32

/* A family's statements: sql[i] is statement i of the family's own enum. */
struct stmt_table {
	enum stmt_family family;
	unsigned n;
	const char *const *sql;
};
/* static const struct stmt_table name, checked at compile time to fit the
 * cache: DEFINE_STMT_TABLE(keys_stmts, STMT_KEYS, keys_sql); */
#define DEFINE_STMT_TABLE(name, fam, array)                                             \
	_Static_assert(ELEMENTSOF(array) <= STMT_FAMILY_SLOTS,                          \
		       #array ": more statements than STMT_FAMILY_SLOTS");              \
	static const struct stmt_table name = { .family = (fam), .n = ELEMENTSOF(array), .sql = (array) }

/* A struct store_tx lives inside its connection: beginning a transaction
 * allocates nothing. */
struct store_tx {
	struct store *store;
	struct conn *conn;
	bool write;
	bool active;
	bool relaxed;           /* store_write_begin_relaxed(): commit without fsync */
	int64_t changes_at_begin;       /* sqlite3_total_changes64() at BEGIN (writer) */
};

struct conn {
	sqlite3 *db;
	sqlite3_stmt *stmt[_STMT_FAMILY_MAX][STMT_FAMILY_SLOTS];       /* prepared on first use */
	struct store_tx tx;     /* the one transaction this connection can carry */
};

/* Statement q of table t on c, prepared (SQLITE_PREPARE_PERSISTENT) on its
 * first use there and kept until conn_close(). Use it under
 * _cleanup_reset_. -EINVAL for a q outside the table; prepare errors mapped
 * by sql_error(). */
int stmt_get(struct conn *c, const struct stmt_table *t, unsigned q, sqlite3_stmt **ret);

/* Resets a cached statement and drops its bindings (which may point at the
 * caller's buffers, bound SQLITE_STATIC) when it leaves scope. */
static inline void stmt_resetp(sqlite3_stmt **p)
{
	if (*p) {
		(void)sqlite3_reset(*p);
		(void)sqlite3_clear_bindings(*p);
	}
}
#define _cleanup_reset_ _cleanup_(stmt_resetp)
/* For one-off statements (open, migration, integrity check, audit query). */
DEFINE_CLEANUP(sqlite3_stmt *, sqlite3_finalize)

/* --- connections and transactions (store.c) --- */

/* The connection behind a live transaction; write: it must be a write
 * transaction. -EINVAL for no, an ended or a read transaction where write
 * is needed; -EIO if SQLite rolled the transaction back by itself. */
int tx_conn(struct store_tx *tx, bool write, struct conn **ret);
/* SAVEPOINT: the statements until savepoint_end() become one step within
 * the caller's transaction. */
int savepoint_begin(struct conn *c);
/* Releases the savepoint when r >= 0; rolls back to it when r < 0. Returns
 * r, or the release's error. */
int savepoint_end(struct conn *c, int r);
/* A connection of the caller's own (c zeroed by the caller) on the store's
 * file, read-only, with every connection's settings but none of the pool's
 * (no query_only): store_backup()'s VACUUM INTO. Close with conn_close(),
 * also after a failure. */
int conn_open_private(struct store *s, struct conn *c);
/* Finalizes c's statements and closes it. Safe on a partly opened or a
 * zeroed conn. */
void conn_close(struct conn *c);

/* --- SQLite result codes as -errno (sql.c) --- */

/* -EEXIST for a duplicate key, -EINVAL for another constraint, -EBUSY,
 * -ENOMEM, else -EIO; logged at debug level naming op and SQLite's text
 * (which names tables and columns, never bound values). db may be NULL. */
int sql_error(sqlite3 *db, int rc, const char *op);

/* --- binds (sql.c): SQLITE_STATIC, so the statement must be reset (the
 * cleanup above) before the caller's buffers go away --- */

int bind_text(struct conn *c, sqlite3_stmt *st, int i, const char *s);  /* NULL binds NULL */
int bind_blob(struct conn *c, sqlite3_stmt *st, int i, const uint8_t *p, size_t n);
int bind_blob_opt(struct conn *c, sqlite3_stmt *st, int i, const uint8_t *p, size_t n); /* NULL binds NULL */
int bind_int(struct conn *c, sqlite3_stmt *st, int i, int64_t v);
int bind_mac(struct conn *c, sqlite3_stmt *st, int i, const char *mac);        /* "" binds NULL */

/* --- columns (sql.c): what the database holds is checked against the
 * structs' limits rather than trusted, so a corrupt row is -EIO, never an
 * overflow --- */

int col_u32(sqlite3_stmt *st, int i, uint32_t *ret);
int col_i32(sqlite3_stmt *st, int i, int32_t *ret);
/* Text that fits buf[size] with its NUL and holds no NUL. */
int col_text_copy(sqlite3_stmt *st, int i, char *buf, size_t size);
/* A heap copy; -ENOMEM, -EIO for NULL or an embedded NUL. */
int col_text_dup(sqlite3_stmt *st, int i, char **ret);
/* As col_text_dup(), but NULL stays NULL. */
int col_text_dup_opt(sqlite3_stmt *st, int i, char **ret);
/* NULL stays NULL (a destroyed blob); anything else is a non-empty copy. */
int col_blob_dup(sqlite3_stmt *st, int i, uint8_t **ret, size_t *ret_len);
/* A blob of exactly size bytes, never NULL. */
int col_blob_fixed(sqlite3_stmt *st, int i, uint8_t *buf, size_t size);
/* The optional 64-hex MAC column: "" when NULL. */
int col_mac(sqlite3_stmt *st, int i, char buf[65]);

/* --- stepping (sql.c) --- */

/* Steps a one-row query: 0 with the row ready to read, -ENOENT if there
 * is none, else the mapped error. */
int step_row(struct conn *c, sqlite3_stmt *st, const char *op);
/* Steps a statement that returns no rows: 0 or the mapped error. */
int step_done(struct conn *c, sqlite3_stmt *st, const char *op);
/* Steps a write statement to the end; returns the rows it changed. */
int step_changes(struct conn *c, sqlite3_stmt *st, const char *op);
/* Steps a "SELECT count(*) ...": the count, clamped into an int. */
int step_count(struct conn *c, sqlite3_stmt *st, const char *op);
/* Steps a "SELECT count(*) ..." whose count may pass INT32_MAX. */
int64_t step_count64(struct conn *c, sqlite3_stmt *st, const char *op);

/* The row loop, for every listing: steps st to its end and calls row(st,
 * userdata) on each row (row may be NULL: the rows are skipped). row
 * returning < 0 stops the loop with that value. Returns the rows seen
 * (at most INT32_MAX) or the mapped step error, named by op. */
int stmt_each(struct conn *c, sqlite3_stmt *st, int (*row)(sqlite3_stmt *st, void *userdata),
	      void *userdata, const char *op);

/* --- argument checks (sql.c): what goes in must come back out --- */

/* Non-empty and fits a char[size] field with its NUL. */
bool name_fits(const char *s, size_t size);
/* Fits a char[size] field; empty allowed. */
bool text_fits(const char *s, size_t size);
/* A blob field is either absent (NULL, 0) or a non-empty buffer. */
bool blob_arg_valid(const uint8_t *p, size_t n);
/* A tenant name as the path ranges need it: the first segment of a path. */
bool tenant_valid(const char *tenant);
/* Hex SHA-256 as the callers produce it: 64 lowercase hex digits. */
bool hex64_valid(const char *h);

/* --- shared between families --- */

/* people.c: 0 if the user row exists, -ENOENT if not. Lets writers that
 * reference a user (recovery codes, tokens) say "no such user" instead of
 * the foreign key's -EINVAL. */
int user_exists(struct conn *c, const char *name);

/* SQL fragment: a tenant's paths. Every path starting with ?1 + "/" is in
 * the range [?1 || '/', ?1 || '0') and nothing else is ('0' follows '/').
 * p is the table's alias with its dot, or "". */
#define TENANT_RANGE(p) p "path >= ?1 || '/' AND " p "path < ?1 || '0'"

/* Moves a struct out of a _cleanup_ variable, leaving zeroes behind. */
#define TAKE_STRUCT(s)                                                  \
	({                                                              \
		__typeof__(s) _s = (s);                                 \
		memset(&(s), 0, sizeof(s));                             \
		_s;                                                     \
	})
