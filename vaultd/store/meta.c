/* vaultd/store/meta.c: key-value metadata (e.g. "initialized_at"); see store.h. */
#include <errno.h>
#include <sqlite3.h>
#define STORE_INTERNAL
#include "vaultd/store/internal.h"
#include "vaultd/store/store.h"

enum {
	Q_META_GET,
	Q_META_SET,
	_Q_META_MAX,
};

static const char *const meta_sql[_Q_META_MAX] = {
	[Q_META_GET] = "SELECT value FROM meta WHERE key = ?1",
	[Q_META_SET] = "INSERT INTO meta(key, value) VALUES (?1, ?2) "
		       "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
};
DEFINE_STMT_TABLE(meta_stmts, STMT_META, meta_sql);

int store_meta_get(struct store_tx *tx, const char *key, char **ret_value)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!key || !ret_value)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, &meta_stmts, Q_META_GET, &st)) < 0 ||
	    (r = bind_text(c, st, 1, key)) < 0 || (r = step_row(c, st, "meta get")) < 0)
		return r;
	return col_text_dup(st, 0, ret_value);
}

int store_meta_set(struct store_tx *tx, const char *key, const char *value)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!key || !value)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, &meta_stmts, Q_META_SET, &st)) < 0 ||
	    (r = bind_text(c, st, 1, key)) < 0 || (r = bind_text(c, st, 2, value)) < 0)
		return r;
	return step_done(c, st, "meta set");
}
