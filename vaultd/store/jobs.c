/* vaultd/store/jobs.c: rotation jobs (migration 4), one row per requested
 * rotation; see store.h.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include "common/util.h"
#define STORE_INTERNAL
#include "vaultd/store/internal.h"
#include "vaultd/store/store.h"

enum {
	Q_ROTATION_ADD,
	Q_ROTATION_UPDATE,
	Q_ROTATION_GET,
	Q_ROTATION_NEXT,
	Q_ROTATION_FIND_ACTIVE,
	Q_ROTATION_LIST,
	_Q_JOBS_MAX,
};

#define ROTATION_COLUMNS                                                                \
	"id, kind, target, state, principal, request_id, from_version, to_version, "   \
	"done, total, cursor_path, cursor_version, error, created_at, updated_at, "     \
	"finished_at"

static const char *const jobs_sql[_Q_JOBS_MAX] = {
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
};
DEFINE_STMT_TABLE(jobs_stmts, STMT_JOBS, jobs_sql);

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
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, &jobs_stmts, Q_ROTATION_ADD, &st)) < 0 ||
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
	if ((r = tx_conn(tx, true, &c)) < 0 ||
	    (r = stmt_get(c, &jobs_stmts, Q_ROTATION_UPDATE, &st)) < 0 ||
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
	int r = step_row(c, st, "rotation get");

	return r < 0 ? r : rotation_read_row(st, ret);
}

int store_rotation_get(struct store_tx *tx, int64_t id, struct store_rotation *ret)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, &jobs_stmts, Q_ROTATION_GET, &st)) < 0 ||
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
	if ((r = tx_conn(tx, false, &c)) < 0 ||
	    (r = stmt_get(c, &jobs_stmts, Q_ROTATION_NEXT, &st)) < 0)
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
	if ((r = tx_conn(tx, false, &c)) < 0 ||
	    (r = stmt_get(c, &jobs_stmts, Q_ROTATION_FIND_ACTIVE, &st)) < 0 ||
	    (r = bind_text(c, st, 1, kind)) < 0 || (r = bind_text(c, st, 2, target)) < 0)
		return r;
	return rotation_read(c, st, ret);
}

struct rotation_rows {
	int (*cb)(const struct store_rotation *r, void *userdata);
	void *userdata;
};

static int rotation_row(sqlite3_stmt *st, void *userdata)
{
	const struct rotation_rows *e = userdata;
	struct store_rotation j;
	int r;

	if ((r = rotation_read_row(st, &j)) < 0)
		return r;
	return e->cb(&j, e->userdata);
}

int store_rotation_list(struct store_tx *tx, unsigned limit,
			int (*cb)(const struct store_rotation *r, void *userdata), void *userdata)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!cb)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 ||
	    (r = stmt_get(c, &jobs_stmts, Q_ROTATION_LIST, &st)) < 0 ||
	    (r = bind_int(c, st, 1, limit)) < 0)
		return r;
	return stmt_each(c, st, rotation_row, &(struct rotation_rows){ cb, userdata }, "rotation list");
}
