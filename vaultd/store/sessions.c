/* vaultd/store/sessions.c: login state: session tokens (stored as hex
 * SHA-256 of the bearer token, each bound to a user) and the brute-force
 * accounting ("user:<name>" or "uid:<n>"); see store.h.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#define STORE_INTERNAL
#include "vaultd/store/internal.h"
#include "vaultd/store/store.h"

enum {
	Q_TOKEN_PUT,
	Q_TOKEN_GET,
	Q_TOKEN_DELETE,
	Q_TOKEN_DELETE_USER,
	Q_TOKEN_DELETE_USER_EXCEPT,
	Q_TOKEN_DELETE_ALL,
	Q_TOKEN_PURGE,
	Q_FAILURE_GET,
	Q_FAILURE_PUT,
	Q_FAILURE_CLEAR,
	_Q_SESSIONS_MAX,
};

static const char *const sessions_sql[_Q_SESSIONS_MAX] = {
	[Q_TOKEN_PUT] = "INSERT INTO tokens(hash, user, uid, created_at, expires_at) "
			"VALUES (?1, ?2, ?3, ?4, ?5)",
	[Q_TOKEN_GET] = "SELECT hash, user, uid, created_at, expires_at FROM tokens WHERE hash = ?1",
	[Q_TOKEN_DELETE] = "DELETE FROM tokens WHERE hash = ?1",
	[Q_TOKEN_DELETE_USER] = "DELETE FROM tokens WHERE user = ?1",
	[Q_TOKEN_DELETE_USER_EXCEPT] = "DELETE FROM tokens WHERE user = ?1 AND hash <> ?2",
	[Q_TOKEN_DELETE_ALL] = "DELETE FROM tokens",
	[Q_TOKEN_PURGE] = "DELETE FROM tokens WHERE expires_at <= ?1",
	[Q_FAILURE_GET] = "SELECT count, window_start, locked_until FROM auth_failures WHERE key = ?1",
	[Q_FAILURE_PUT] = "INSERT INTO auth_failures(key, count, window_start, locked_until) "
			  "VALUES (?1, ?2, ?3, ?4) "
			  "ON CONFLICT(key) DO UPDATE SET count = excluded.count, "
			  "window_start = excluded.window_start, locked_until = excluded.locked_until",
	[Q_FAILURE_CLEAR] = "DELETE FROM auth_failures WHERE key = ?1",
};
DEFINE_STMT_TABLE(sessions_stmts, STMT_SESSIONS, sessions_sql);

/* --- session tokens --- */

int store_token_put(struct store_tx *tx, const struct store_token *t)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!t || !hex64_valid(t->hash) || !name_fits(t->user, sizeof(t->user)))
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = user_exists(c, t->user)) < 0 ||
	    (r = stmt_get(c, &sessions_stmts, Q_TOKEN_PUT, &st)) < 0 ||
	    (r = bind_text(c, st, 1, t->hash)) < 0 || (r = bind_text(c, st, 2, t->user)) < 0 ||
	    (r = bind_int(c, st, 3, t->uid)) < 0 || (r = bind_int(c, st, 4, t->created_at)) < 0 ||
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
	int r;

	if (!hash || !ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 ||
	    (r = stmt_get(c, &sessions_stmts, Q_TOKEN_GET, &st)) < 0 ||
	    (r = bind_text(c, st, 1, hash)) < 0 || (r = step_row(c, st, "token get")) < 0)
		return r;
	if ((r = col_text_copy(st, 0, t.hash, sizeof(t.hash))) < 0 ||
	    (r = col_text_copy(st, 1, t.user, sizeof(t.user))) < 0 || (r = col_u32(st, 2, &t.uid)) < 0)
		return r;
	t.created_at = sqlite3_column_int64(st, 3);
	t.expires_at = sqlite3_column_int64(st, 4);
	*ret = t;
	return 0;
}

/* The token deletes: bind one optional text or integer, return the count. */
static int token_delete_q(struct store_tx *tx, unsigned q, const char *text, int64_t num,
			  bool use_num)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if ((r = tx_conn(tx, true, &c)) < 0 || (r = stmt_get(c, &sessions_stmts, q, &st)) < 0 ||
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
	if ((r = tx_conn(tx, true, &c)) < 0 ||
	    (r = stmt_get(c, &sessions_stmts, Q_TOKEN_DELETE_USER_EXCEPT, &st)) < 0 ||
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
	int r;

	if ((r = stmt_get(c, &sessions_stmts, Q_FAILURE_GET, &st)) < 0 ||
	    (r = bind_text(c, st, 1, key)) < 0 || (r = step_row(c, st, "failure get")) < 0)
		return r;
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
	if ((r = stmt_get(c, &sessions_stmts, Q_FAILURE_PUT, &st)) < 0 ||
	    (r = bind_text(c, st, 1, key)) < 0 || (r = bind_int(c, st, 2, f.count)) < 0 ||
	    (r = bind_int(c, st, 3, f.window_start)) < 0 ||
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
	if ((r = tx_conn(tx, true, &c)) < 0 ||
	    (r = stmt_get(c, &sessions_stmts, Q_FAILURE_CLEAR, &st)) < 0 ||
	    (r = bind_text(c, st, 1, key)) < 0)
		return r;
	r = step_changes(c, st, "failure clear");
	return r < 0 ? r : 0;
}
