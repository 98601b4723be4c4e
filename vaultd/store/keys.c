/* vaultd/store/keys.c: root keys (the HSM-wrapped RK, one row per version)
 * and tenant KEKs (one row per tenant and version, wrapped by an RK
 * version); see store.h. Blobs arrive and leave wrapped.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/log.h"
#define STORE_INTERNAL
#include "vaultd/store/internal.h"
#include "vaultd/store/store.h"

enum {
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
	_Q_KEYS_MAX,
};

static const char *const keys_sql[_Q_KEYS_MAX] = {
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
};
DEFINE_STMT_TABLE(keys_stmts, STMT_KEYS, keys_sql);

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
	int r;

	if (!rk || !name_fits(rk->hsm_label, sizeof(rk->hsm_label)) || !rk->blob ||
	    rk->blob_len == 0)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, &keys_stmts, Q_RK_PUT, &st)) < 0 ||
	    (r = bind_int(c, st, 1, rk->version)) < 0 ||
	    (r = bind_text(c, st, 2, rk->hsm_label)) < 0 ||
	    (r = bind_int(c, st, 3, rk->hsm_version)) < 0 ||
	    (r = bind_blob(c, st, 4, rk->blob, rk->blob_len)) < 0 ||
	    (r = bind_int(c, st, 5, rk->created_at)) < 0)
		return r;
	return step_done(c, st, "rootkey put");
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
	int r;

	if (!ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, &keys_stmts, Q_RK_CURRENT, &st)) < 0 ||
	    (r = step_row(c, st, "rootkey get")) < 0)
		return r;
	return rootkey_read_row(st, ret);
}

struct rootkey_rows {
	int (*cb)(const struct store_rootkey *rk, void *userdata);
	void *userdata;
};

static int rootkey_row(sqlite3_stmt *st, void *userdata)
{
	const struct rootkey_rows *e = userdata;
	_cleanup_(store_rootkey_clear) struct store_rootkey rk = {0};
	int r;

	if ((r = rootkey_read_row(st, &rk)) < 0)
		return r;
	return e->cb(&rk, e->userdata);
}

int store_rootkey_list(struct store_tx *tx,
		       int (*cb)(const struct store_rootkey *rk, void *userdata), void *userdata)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!cb)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, &keys_stmts, Q_RK_LIST, &st)) < 0)
		return r;
	return stmt_each(c, st, rootkey_row, &(struct rootkey_rows){ cb, userdata }, "rootkey list");
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
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, &keys_stmts, Q_RK_REWRAP, &st)) < 0 ||
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

	if ((r = tx_conn(tx, true, &c)) < 0 ||
	    (r = stmt_get(c, &keys_stmts, Q_RK_REFERENCED_BELOW, &ref)) < 0 ||
	    (r = bind_int(c, ref, 1, below)) < 0)
		return r;
	r = step_row(c, ref, "rootkey referenced");
	if (r == 0)
		return -EEXIST;
	if (r != -ENOENT)
		return r;
	/* One statement: should the foreign key still object, SQLite undoes
	 * the whole DELETE, so nothing is ever half-deleted. */
	if ((r = stmt_get(c, &keys_stmts, Q_RK_DELETE_BELOW, &del)) < 0 ||
	    (r = bind_int(c, del, 1, below)) < 0)
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
	int r;

	if (!k || !name_fits(k->tenant, sizeof(k->tenant)) || !k->blob || k->blob_len == 0 ||
	    k->wrap_count > INT64_MAX)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, &keys_stmts, Q_KEK_PUT, &st)) < 0 ||
	    (r = bind_text(c, st, 1, k->tenant)) < 0 || (r = bind_int(c, st, 2, k->version)) < 0 ||
	    (r = bind_int(c, st, 3, k->rk_version)) < 0 ||
	    (r = bind_blob(c, st, 4, k->blob, k->blob_len)) < 0 ||
	    (r = bind_int(c, st, 5, (int64_t)k->wrap_count)) < 0 ||
	    (r = bind_int(c, st, 6, k->created_at)) < 0)
		return r;
	return step_done(c, st, "kek put");
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
	int r = step_row(c, st, "kek get");

	return r < 0 ? r : kek_read_row(st, ret);
}

struct kek_rows {
	int (*cb)(const struct store_kek *k, void *userdata);
	void *userdata;
};

static int kek_row(sqlite3_stmt *st, void *userdata)
{
	const struct kek_rows *e = userdata;
	_cleanup_(store_kek_clear) struct store_kek k = {0};
	int r;

	if ((r = kek_read_row(st, &k)) < 0)
		return r;
	return e->cb(&k, e->userdata);
}

/* Runs a KEK listing, calling cb per row; returns the count. */
static int kek_each(struct conn *c, sqlite3_stmt *st,
		    int (*cb)(const struct store_kek *k, void *userdata), void *userdata)
{
	return stmt_each(c, st, kek_row, &(struct kek_rows){ cb, userdata }, "kek list");
}

int store_kek_get(struct store_tx *tx, const char *tenant, uint32_t version, struct store_kek *ret)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!tenant || !ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, &keys_stmts, Q_KEK_GET, &st)) < 0 ||
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
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, &keys_stmts, Q_KEK_CURRENT, &st)) < 0 ||
	    (r = bind_text(c, st, 1, tenant)) < 0)
		return r;
	return kek_read(c, st, ret);
}

int store_kek_add_wraps(struct store_tx *tx, const char *tenant, uint32_t version, uint64_t n)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	/* SQLite turns an overflowing integer sum into REAL, which the STRICT
	 * column then refuses; keep n where the sum can be checked. */
	if (!tenant || n > INT64_MAX)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, &keys_stmts, Q_KEK_ADD_WRAPS, &st)) < 0 ||
	    (r = bind_text(c, st, 1, tenant)) < 0 || (r = bind_int(c, st, 2, version)) < 0 ||
	    (r = bind_int(c, st, 3, (int64_t)n)) < 0)
		return r;
	r = step_changes(c, st, "kek add wraps");
	return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

int store_kek_list_old_rk(struct store_tx *tx, uint32_t below_rk, unsigned limit,
			  int (*cb)(const struct store_kek *k, void *userdata), void *userdata)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!cb || limit == 0)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 ||
	    (r = stmt_get(c, &keys_stmts, Q_KEK_LIST_OLD_RK, &st)) < 0 ||
	    (r = bind_int(c, st, 1, below_rk)) < 0 || (r = bind_int(c, st, 2, limit)) < 0)
		return r;
	return kek_each(c, st, cb, userdata);
}

int64_t store_kek_count_old_rk(struct store_tx *tx, uint32_t below_rk)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if ((r = tx_conn(tx, false, &c)) < 0 ||
	    (r = stmt_get(c, &keys_stmts, Q_KEK_COUNT_OLD_RK, &st)) < 0 ||
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
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, &keys_stmts, Q_KEK_REWRAP, &st)) < 0 ||
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
	if ((r = tx_conn(tx, true, &c)) < 0 ||
	    (r = stmt_get(c, &keys_stmts, Q_KEK_DELETE_UNUSED, &st)) < 0 ||
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
	if ((r = tx_conn(tx, false, &c)) < 0 ||
	    (r = stmt_get(c, &keys_stmts, Q_KEK_LIST_CURRENT, &st)) < 0)
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
	if ((r = tx_conn(tx, false, &c)) < 0 ||
	    (r = stmt_get(c, &keys_stmts, Q_KEK_LIST_TENANT, &st)) < 0 ||
	    (r = bind_text(c, st, 1, tenant)) < 0)
		return r;
	return kek_each(c, st, cb, userdata);
}
