/* vaultd/store/secrets.c: secret heads (one row per path) and their
 * versions (one row per version, DEK and data sealed), and the batch readers
 * rotation walks them with; see store.h.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/log.h"
#define STORE_INTERNAL
#include "vaultd/store/internal.h"
#include "vaultd/store/store.h"

enum {
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
	_Q_SECRETS_MAX,
};

#define SECRET_COLUMNS                                                                  \
	"path, tenant, type, metadata, current_version, latest_version, created_at, "  \
	"updated_at, deleted_at, pending_version, previous_version"

/* The batch readers' rows: the path, then a struct store_version. */
#define VERSION_ROW_COLUMNS "path, version, kek_version, dek_blob, data_blob, created_at"

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

static const char *const secrets_sql[_Q_SECRETS_MAX] = {
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
	 * than failing the whole listing, as in people.c's Q_USER_COUNT_ROLE. */
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
};
DEFINE_STMT_TABLE(secrets_stmts, STMT_SECRETS, secrets_sql);

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
	int r;

	if (!path || !ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 ||
	    (r = stmt_get(c, &secrets_stmts, Q_SECRET_GET, &st)) < 0 ||
	    (r = bind_text(c, st, 1, path)) < 0 || (r = step_row(c, st, "secret get")) < 0)
		return r;
	return secret_read_row(st, ret);
}

int store_version_get(struct store_tx *tx, const char *path, uint32_t version,
		      struct store_version *ret)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	_cleanup_(store_version_clear) struct store_version v = {0};
	struct conn *c;
	int r;

	if (!path || !ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 ||
	    (r = stmt_get(c, &secrets_stmts, Q_VERSION_GET, &st)) < 0 ||
	    (r = bind_text(c, st, 1, path)) < 0 || (r = bind_int(c, st, 2, version)) < 0 ||
	    (r = step_row(c, st, "version get")) < 0)
		return r;
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
	int r;

	if ((r = stmt_get(c, &secrets_stmts, Q_VERSION_PUT, &row)) < 0 ||
	    (r = bind_text(c, row, 1, path)) < 0 || (r = bind_int(c, row, 2, v->version)) < 0 ||
	    (r = bind_int(c, row, 3, v->kek_version)) < 0 ||
	    (r = bind_blob(c, row, 4, v->dek_blob, v->dek_len)) < 0 ||
	    (r = bind_blob(c, row, 5, v->data_blob, v->data_len)) < 0 ||
	    (r = bind_int(c, row, 6, v->created_at)) < 0)
		return r;
	return step_done(c, row, "version put");
}

/* The steps of store_secret_put_version(), run inside a savepoint. */
static int put_version_steps(struct conn *c, const char *path, const char *tenant,
			     const char *type, const char *metadata, const struct store_version *v)
{
	_cleanup_reset_ sqlite3_stmt *latest = NULL, *head = NULL;
	uint32_t have = 0;
	int r;

	if ((r = stmt_get(c, &secrets_stmts, Q_SECRET_LATEST, &latest)) < 0 ||
	    (r = bind_text(c, latest, 1, path)) < 0)
		return r;
	r = step_row(c, latest, "secret latest");
	if (r == 0) {
		if ((r = col_u32(latest, 0, &have)) < 0)
			return r;
	} else if (r != -ENOENT)
		return r;
	/* Check-and-set on the version number: a writer that read an older
	 * head cannot overwrite a version written since. */
	if ((uint64_t)v->version != (uint64_t)have + 1)
		return -EEXIST;

	/* Head first: the version row's foreign key needs it. */
	if ((r = stmt_get(c, &secrets_stmts, Q_SECRET_UPSERT, &head)) < 0 ||
	    (r = bind_text(c, head, 1, path)) < 0 || (r = bind_text(c, head, 2, tenant)) < 0 ||
	    (r = bind_text(c, head, 3, type)) < 0 || (r = bind_text(c, head, 4, metadata)) < 0 ||
	    (r = bind_int(c, head, 5, v->version)) < 0 ||
	    (r = bind_int(c, head, 6, v->created_at)) < 0 ||
	    (r = step_done(c, head, "secret head upsert")) < 0)
		return r;

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
	/* Three statements: a savepoint makes them one step within the
	 * caller's transaction, so a failure leaves nothing half-written. */
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = savepoint_begin(c)) < 0)
		return r;
	return savepoint_end(c, put_version_steps(c, path, tenant, type, metadata, v));
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
	int r;

	if ((r = stmt_get(c, &secrets_stmts, Q_SECRET_STATE, &st)) < 0 ||
	    (r = bind_text(c, st, 1, path)) < 0 || (r = step_row(c, st, "secret state")) < 0)
		return r;
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
	int r;

	if ((r = head_state_read(c, path, &h)) < 0)
		return r;
	if (h.deleted)
		return -ENOENT;
	/* The same check-and-set on the version number as put_version. */
	if ((uint64_t)v->version != (uint64_t)h.latest_version + 1)
		return -EEXIST;

	if ((r = stmt_get(c, &secrets_stmts, Q_SECRET_STAGE, &head)) < 0 ||
	    (r = bind_text(c, head, 1, path)) < 0 || (r = bind_int(c, head, 2, v->version)) < 0 ||
	    (r = bind_text(c, head, 3, metadata)) < 0 || (r = bind_int(c, head, 4, v->created_at)) < 0 ||
	    (r = step_done(c, head, "secret stage")) < 0)
		return r;

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
	if ((r = stmt_get(c, &secrets_stmts, Q_SECRET_PROMOTE, &st)) < 0 ||
	    (r = bind_text(c, st, 1, path)) < 0 || (r = bind_int(c, st, 2, now)) < 0 ||
	    (r = bind_int(c, st, 3, h.pending_version)) < 0)
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
	if ((r = tx_conn(tx, true, &c)) < 0 ||
	    (r = stmt_get(c, &secrets_stmts, Q_SECRET_PRUNE, &st)) < 0 ||
	    (r = bind_text(c, st, 1, path)) < 0 || (r = bind_int(c, st, 2, keep)) < 0)
		return r;
	return step_changes(c, st, "secret prune");
}

struct max_age_rows {
	int (*cb)(const struct store_secret *s, const char *max_age, int64_t current_created_at,
		  void *userdata);
	void *userdata;
};

static int max_age_row(sqlite3_stmt *st, void *userdata)
{
	const struct max_age_rows *e = userdata;
	_cleanup_(store_secret_clear) struct store_secret h = {0};
	_cleanup_free_ char *max_age = NULL;
	int r;

	if ((r = secret_read_row(st, &h)) < 0 || (r = col_text_dup(st, 11, &max_age)) < 0)
		return r;
	return e->cb(&h, max_age, sqlite3_column_int64(st, 12), e->userdata);
}

int store_secret_list_max_age(struct store_tx *tx,
			      int (*cb)(const struct store_secret *s, const char *max_age,
					int64_t current_created_at, void *userdata),
			      void *userdata)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!cb)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 ||
	    (r = stmt_get(c, &secrets_stmts, Q_SECRET_LIST_MAX_AGE, &st)) < 0)
		return r;
	return stmt_each(c, st, max_age_row, &(struct max_age_rows){ cb, userdata },
			 "secret list max age");
}

int store_secret_soft_delete(struct store_tx *tx, const char *path, int64_t now)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	/* deleted_at 0 means live, so a deletion needs a non-zero time. */
	if (!path || now == 0)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 ||
	    (r = stmt_get(c, &secrets_stmts, Q_SECRET_SOFT_DELETE, &st)) < 0 ||
	    (r = bind_text(c, st, 1, path)) < 0 || (r = bind_int(c, st, 2, now)) < 0)
		return r;
	r = step_changes(c, st, "secret soft delete");
	return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

int store_secret_destroy(struct store_tx *tx, const char *path)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!path)
		return -EINVAL;
	/* The version rows go with the head (ON DELETE CASCADE) in the same
	 * statement; secure_delete zeroes their cells in the page. */
	if ((r = tx_conn(tx, true, &c)) < 0 ||
	    (r = stmt_get(c, &secrets_stmts, Q_SECRET_DESTROY, &st)) < 0 ||
	    (r = bind_text(c, st, 1, path)) < 0)
		return r;
	r = step_changes(c, st, "secret destroy");
	return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

struct secret_rows {
	int (*cb)(const struct store_secret *s, void *userdata);
	void *userdata;
};

static int secret_row(sqlite3_stmt *st, void *userdata)
{
	const struct secret_rows *e = userdata;
	_cleanup_(store_secret_clear) struct store_secret h = {0};
	int r;

	if ((r = secret_read_row(st, &h)) < 0)
		return r;
	return e->cb(&h, e->userdata);
}

int store_secret_list(struct store_tx *tx, const char *prefix, unsigned limit,
		      int (*cb)(const struct store_secret *s, void *userdata), void *userdata)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;
	bool all = !prefix || !*prefix;

	if (!cb)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 ||
	    (r = stmt_get(c, &secrets_stmts, all ? Q_SECRET_LIST_ALL : Q_SECRET_LIST, &st)) < 0 ||
	    (!all && (r = bind_text(c, st, 1, prefix)) < 0) ||
	    (r = bind_int(c, st, 2, limit == 0 ? -1 : (int64_t)limit)) < 0)
		return r;
	return stmt_each(c, st, secret_row, &(struct secret_rows){ cb, userdata }, "secret list");
}

struct version_rows {
	int (*cb)(const struct store_version *v, void *userdata);
	void *userdata;
};

/* A row of Q_VERSION_LIST: lengths, no blobs. */
static int version_row(sqlite3_stmt *st, void *userdata)
{
	const struct version_rows *e = userdata;
	struct store_version v = {0};
	int r;

	if ((r = col_u32(st, 0, &v.version)) < 0 || (r = col_u32(st, 1, &v.kek_version)) < 0)
		return r;
	v.dek_len = (size_t)sqlite3_column_int64(st, 2);
	v.data_len = (size_t)sqlite3_column_int64(st, 3);
	v.created_at = sqlite3_column_int64(st, 4);
	return e->cb(&v, e->userdata);
}

int store_version_list(struct store_tx *tx, const char *path,
		       int (*cb)(const struct store_version *v, void *userdata), void *userdata)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!path || !cb)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 ||
	    (r = stmt_get(c, &secrets_stmts, Q_VERSION_LIST, &st)) < 0 ||
	    (r = bind_text(c, st, 1, path)) < 0)
		return r;
	return stmt_each(c, st, version_row, &(struct version_rows){ cb, userdata }, "version list");
}

/* --- rotation support --- */

struct batch_rows {
	store_version_cb cb;
	void *userdata;
};

/* A row of VERSION_ROW_COLUMNS: the path and the version, blobs loaded. */
static int batch_row(sqlite3_stmt *st, void *userdata)
{
	const struct batch_rows *e = userdata;
	_cleanup_(store_version_clear) struct store_version v = {0};
	_cleanup_free_ char *path = NULL;
	int r;

	if ((r = col_text_dup(st, 0, &path)) < 0 || (r = col_u32(st, 1, &v.version)) < 0 ||
	    (r = col_u32(st, 2, &v.kek_version)) < 0 ||
	    (r = col_blob_dup(st, 3, &v.dek_blob, &v.dek_len)) < 0 ||
	    (r = col_blob_dup(st, 4, &v.data_blob, &v.data_len)) < 0)
		return r;
	v.created_at = sqlite3_column_int64(st, 5);
	return e->cb(path, &v, e->userdata);
}

int store_version_list_old_kek(struct store_tx *tx, const char *tenant, uint32_t below_version,
			       unsigned limit, store_version_cb cb, void *userdata)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!tenant_valid(tenant) || limit == 0 || !cb)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 ||
	    (r = stmt_get(c, &secrets_stmts, Q_VERSION_OLD_KEK, &st)) < 0 ||
	    (r = bind_text(c, st, 1, tenant)) < 0 || (r = bind_int(c, st, 2, below_version)) < 0 ||
	    (r = bind_int(c, st, 3, limit)) < 0)
		return r;
	return stmt_each(c, st, batch_row, &(struct batch_rows){ cb, userdata },
			 "version list old kek");
}

int64_t store_version_count_old_kek(struct store_tx *tx, const char *tenant, uint32_t below_version)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!tenant_valid(tenant))
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 ||
	    (r = stmt_get(c, &secrets_stmts, Q_VERSION_COUNT_OLD_KEK, &st)) < 0 ||
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
	    (r = stmt_get(c, &secrets_stmts, all ? Q_VERSION_RANGE_ALL : Q_VERSION_RANGE, &st)) < 0 ||
	    (!all && (r = bind_text(c, st, 1, prefix)) < 0) ||
	    (r = bind_text(c, st, 2, after_path)) < 0 || (r = bind_int(c, st, 3, after_version)) < 0 ||
	    (r = bind_int(c, st, 4, limit)) < 0)
		return r;
	return stmt_each(c, st, batch_row, &(struct batch_rows){ cb, userdata }, "version list range");
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
	    (r = stmt_get(c, &secrets_stmts, all ? Q_VERSION_COUNT_ALL : Q_VERSION_COUNT_PREFIX,
			  &st)) < 0 ||
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
	if ((r = tx_conn(tx, true, &c)) < 0 ||
	    (r = stmt_get(c, &secrets_stmts, Q_VERSION_REWRAP, &st)) < 0 ||
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
	if ((r = tx_conn(tx, true, &c)) < 0 ||
	    (r = stmt_get(c, &secrets_stmts, Q_VERSION_RETAG, &st)) < 0 ||
	    (r = bind_text(c, st, 1, tenant)) < 0 || (r = bind_int(c, st, 2, kek_version)) < 0)
		return r;
	return step_changes(c, st, "version retag destroyed");
}
