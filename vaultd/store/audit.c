/* vaultd/store/audit.c: the audit log (migration 3): append-only from
 * vaultd's side, hash-chained, ids dense from 1; see store.h. Retention
 * deletes a prefix of it.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/log.h"
#include "common/util.h"
#define STORE_INTERNAL
#include "vaultd/store/internal.h"
#include "vaultd/store/store.h"

enum {
	Q_AUDIT_LAST,
	Q_AUDIT_APPEND,
	Q_AUDIT_ITERATE,
	Q_AUDIT_FIRST,
	Q_AUDIT_LAST_BEFORE,
	Q_AUDIT_DELETE_THROUGH,
	Q_AUDIT_GET,
	_Q_AUDIT_MAX,
};

#define AUDIT_COLUMNS                                                                   \
	"id, time, principal, uid, pid, action, path, capability, result, status, "    \
	"detail, request_id, hash"

static const char *const audit_sql[_Q_AUDIT_MAX] = {
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
	[Q_AUDIT_GET] = "SELECT " AUDIT_COLUMNS " FROM audit WHERE id = ?1",
};
DEFINE_STMT_TABLE(audit_stmts, STMT_AUDIT, audit_sql);

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

/* Steps a one-row audit query: the record or -ENOENT. */
static int audit_read(struct conn *c, sqlite3_stmt *st, const char *op, struct store_audit *ret)
{
	int r = step_row(c, st, op);

	return r < 0 ? r : audit_read_row(st, ret);
}

int store_audit_last(struct store_tx *tx, struct store_audit *ret)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, &audit_stmts, Q_AUDIT_LAST, &st)) < 0)
		return r;
	return audit_read(c, st, "audit last", ret);
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
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, &audit_stmts, Q_AUDIT_APPEND, &st)) < 0 ||
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

struct audit_rows {
	int (*cb)(const struct store_audit *a, void *userdata);
	void *userdata;
};

static int audit_row(sqlite3_stmt *st, void *userdata)
{
	const struct audit_rows *e = userdata;
	_cleanup_(store_audit_clear) struct store_audit a = {0};
	int r;

	if ((r = audit_read_row(st, &a)) < 0)
		return r;
	return e->cb(&a, e->userdata);
}

/* Runs a SELECT of AUDIT_COLUMNS, calling cb per row; returns the count. */
static int audit_each(struct conn *c, sqlite3_stmt *st,
		      int (*cb)(const struct store_audit *a, void *userdata), void *userdata)
{
	return stmt_each(c, st, audit_row, &(struct audit_rows){ cb, userdata }, "audit read");
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
	if ((r = tx_conn(tx, false, &c)) < 0 ||
	    (r = stmt_get(c, &audit_stmts, Q_AUDIT_ITERATE, &st)) < 0)
		return r;
	return audit_each(c, st, cb, userdata);
}

int store_audit_get(struct store_tx *tx, int64_t id, struct store_audit *ret)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, &audit_stmts, Q_AUDIT_GET, &st)) < 0 ||
	    (r = bind_int(c, st, 1, id)) < 0)
		return r;
	return audit_read(c, st, "audit get", ret);
}

int store_audit_first(struct store_tx *tx, struct store_audit *ret)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, &audit_stmts, Q_AUDIT_FIRST, &st)) < 0)
		return r;
	return audit_read(c, st, "audit first", ret);
}

int store_audit_last_before(struct store_tx *tx, int64_t before, struct store_audit *ret)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 ||
	    (r = stmt_get(c, &audit_stmts, Q_AUDIT_LAST_BEFORE, &st)) < 0 ||
	    (r = bind_int(c, st, 1, before)) < 0)
		return r;
	return audit_read(c, st, "audit last before", ret);
}

int64_t store_audit_delete_through(struct store_tx *tx, int64_t through)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if ((r = tx_conn(tx, true, &c)) < 0 ||
	    (r = stmt_get(c, &audit_stmts, Q_AUDIT_DELETE_THROUGH, &st)) < 0 ||
	    (r = bind_int(c, st, 1, through)) < 0 ||
	    (r = step_done(c, st, "audit delete through")) < 0)
		return r;
	return sqlite3_changes64(c->db);
}
