/* vaultd/store/people.c: who may act and what they may do: users (with
 * their MFA columns), their recovery codes, custom roles and service
 * bindings; see store.h. Session tokens and the brute-force accounting are
 * in sessions.c.
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
	_Q_PEOPLE_MAX,
};

static const char *const people_sql[_Q_PEOPLE_MAX] = {
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
};
DEFINE_STMT_TABLE(people_stmts, STMT_PEOPLE, people_sql);

int user_exists(struct conn *c, const char *name)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	int r;

	if ((r = stmt_get(c, &people_stmts, Q_USER_EXISTS, &st)) < 0 ||
	    (r = bind_text(c, st, 1, name)) < 0)
		return r;
	return step_row(c, st, "user exists");
}

/* Runs a one-row JSON check (Q_ROLES_VALID, Q_JSON_VALID): 0 or -EINVAL.
 * Checked here, not by a CHECK in the schema: with trusted_schema=OFF,
 * SQLite 3.40 refuses JSON functions inside the schema. */
static int json_check(struct conn *c, unsigned q, const char *text)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	int r, rc;

	if (!text)
		return -EINVAL;
	if ((r = stmt_get(c, &people_stmts, q, &st)) < 0 || (r = bind_text(c, st, 1, text)) < 0)
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
	int r;

	if (!u || !name_fits(u->name, sizeof(u->name)) || !u->phc || !u->roles ||
	    u->mfa_state < STORE_MFA_NONE || u->mfa_state > STORE_MFA_ACTIVE ||
	    !blob_arg_valid(u->mfa_key, u->mfa_key_len) ||
	    !blob_arg_valid(u->totp_blob, u->totp_len) || u->totp_last_step > INT64_MAX)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 || (r = roles_check(c, u->roles)) < 0)
		return r;
	if ((r = stmt_get(c, &people_stmts, Q_USER_PUT, &st)) < 0 ||
	    (r = bind_text(c, st, 1, u->name)) < 0 || (r = bind_text(c, st, 2, u->phc)) < 0 ||
	    (r = bind_text(c, st, 3, u->roles)) < 0 || (r = bind_int(c, st, 4, u->mfa_state)) < 0 ||
	    (r = bind_blob_opt(c, st, 5, u->mfa_key, u->mfa_key_len)) < 0 ||
	    (r = bind_blob_opt(c, st, 6, u->totp_blob, u->totp_len)) < 0 ||
	    (r = bind_int(c, st, 7, (int64_t)u->totp_last_step)) < 0 ||
	    (r = bind_int(c, st, 8, u->created_at)) < 0 ||
	    (r = bind_int(c, st, 9, u->updated_at)) < 0 || (r = bind_mac(c, st, 10, u->mac)) < 0)
		return r;
	return step_done(c, st, "user put");
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
	int r;

	if (!name || !ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, &people_stmts, Q_USER_GET, &st)) < 0 ||
	    (r = bind_text(c, st, 1, name)) < 0 || (r = step_row(c, st, "user get")) < 0)
		return r;
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
	if ((r = tx_conn(tx, true, &c)) < 0 ||
	    (r = stmt_get(c, &people_stmts, Q_USER_DELETE, &st)) < 0 ||
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

	if ((r = tx_conn(tx, false, &c)) < 0 ||
	    (r = stmt_get(c, &people_stmts, Q_USER_COUNT, &st)) < 0)
		return r;
	return step_count(c, st, "user count");
}

struct user_rows {
	int (*cb)(const struct store_user *u, void *userdata);
	void *userdata;
};

static int user_row(sqlite3_stmt *st, void *userdata)
{
	const struct user_rows *e = userdata;
	_cleanup_(store_user_clear) struct store_user u = {0};
	int r;

	if ((r = user_read_row(st, &u)) < 0)
		return r;
	return e->cb(&u, e->userdata);
}

int store_user_list(struct store_tx *tx, int (*cb)(const struct store_user *u, void *userdata),
		    void *userdata)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!cb)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, &people_stmts, Q_USER_LIST, &st)) < 0)
		return r;
	return stmt_each(c, st, user_row, &(struct user_rows){ cb, userdata }, "user list");
}

int store_user_count_with_role(struct store_tx *tx, const char *role)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!role)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 ||
	    (r = stmt_get(c, &people_stmts, Q_USER_COUNT_ROLE, &st)) < 0 ||
	    (r = bind_text(c, st, 1, role)) < 0)
		return r;
	return step_count(c, st, "user count with role");
}

struct mfa_key_rows {
	int (*cb)(const char *name, const uint8_t *blob, size_t len, void *userdata);
	void *userdata;
};

static int mfa_key_row(sqlite3_stmt *st, void *userdata)
{
	const struct mfa_key_rows *e = userdata;
	char name[sizeof(((struct store_user *)0)->name)];
	const void *b;
	int len, r;

	if ((r = col_text_copy(st, 0, name, sizeof(name))) < 0)
		return r;
	/* Lent straight from the row: valid until the next step. */
	b = sqlite3_column_blob(st, 1);         /* blob before bytes */
	len = sqlite3_column_bytes(st, 1);
	if (sqlite3_column_type(st, 1) != SQLITE_BLOB || !b || len <= 0)
		return log_debug_errno(-EIO, "user: bad MFA key column");
	return e->cb(name, b, (size_t)len, e->userdata);
}

int store_user_list_mfa_keys(struct store_tx *tx,
			     int (*cb)(const char *name, const uint8_t *blob, size_t len, void *userdata),
			     void *userdata)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!cb)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 ||
	    (r = stmt_get(c, &people_stmts, Q_USER_LIST_MFA_KEYS, &st)) < 0)
		return r;
	return stmt_each(c, st, mfa_key_row, &(struct mfa_key_rows){ cb, userdata },
			 "user list mfa keys");
}

int store_user_set_mfa_key(struct store_tx *tx, const char *name, const uint8_t *blob, size_t len)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!name || !blob || len == 0)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 ||
	    (r = stmt_get(c, &people_stmts, Q_USER_SET_MFA_KEY, &st)) < 0 ||
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
	if ((r = tx_conn(tx, true, &c)) < 0 ||
	    (r = stmt_get(c, &people_stmts, Q_USER_USE_STEP, &st)) < 0 ||
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

	if ((r = stmt_get(c, &people_stmts, Q_RECOVERY_CLEAR, &clear)) < 0 ||
	    (r = bind_text(c, clear, 1, user)) < 0 ||
	    (r = step_changes(c, clear, "recovery clear")) < 0)
		return r;
	for (unsigned i = 0; i < n; i++) {
		_cleanup_reset_ sqlite3_stmt *add = NULL;

		if ((r = stmt_get(c, &people_stmts, Q_RECOVERY_ADD, &add)) < 0 ||
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
	if ((r = tx_conn(tx, true, &c)) < 0 ||
	    (r = stmt_get(c, &people_stmts, Q_RECOVERY_CONSUME, &st)) < 0 ||
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
	if ((r = tx_conn(tx, false, &c)) < 0 ||
	    (r = stmt_get(c, &people_stmts, Q_RECOVERY_COUNT, &st)) < 0 ||
	    (r = bind_text(c, st, 1, user)) < 0)
		return r;
	return step_count(c, st, "recovery count");
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
	    (r = stmt_get(c, &people_stmts, Q_ROLE_PUT, &st)) < 0 ||
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
	int r;

	if (!name || !ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, &people_stmts, Q_ROLE_GET, &st)) < 0 ||
	    (r = bind_text(c, st, 1, name)) < 0 || (r = step_row(c, st, "role get")) < 0)
		return r;
	return role_read_row(st, ret);
}

int store_role_delete(struct store_tx *tx, const char *name)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!name)
		return -EINVAL;
	if ((r = tx_conn(tx, true, &c)) < 0 ||
	    (r = stmt_get(c, &people_stmts, Q_ROLE_DELETE, &st)) < 0 ||
	    (r = bind_text(c, st, 1, name)) < 0)
		return r;
	r = step_changes(c, st, "role delete");
	return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

struct role_rows {
	int (*cb)(const struct store_role *r, void *userdata);
	void *userdata;
};

static int role_row(sqlite3_stmt *st, void *userdata)
{
	const struct role_rows *e = userdata;
	_cleanup_(store_role_clear) struct store_role role = {0};
	int r;

	if ((r = role_read_row(st, &role)) < 0)
		return r;
	return e->cb(&role, e->userdata);
}

int store_role_list(struct store_tx *tx, int (*cb)(const struct store_role *r, void *userdata),
		    void *userdata)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!cb)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, &people_stmts, Q_ROLE_LIST, &st)) < 0)
		return r;
	return stmt_each(c, st, role_row, &(struct role_rows){ cb, userdata }, "role list");
}

int store_role_refs(struct store_tx *tx, const char *role)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!role)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, &people_stmts, Q_ROLE_REFS, &st)) < 0 ||
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
	if ((r = stmt_get(c, &people_stmts, Q_SERVICE_PUT, &st)) < 0 ||
	    (r = bind_text(c, st, 1, s->name)) < 0 || (r = bind_int(c, st, 2, s->uid)) < 0 ||
	    (r = bind_text(c, st, 3, s->roles)) < 0 || (r = bind_int(c, st, 4, s->created_at)) < 0 ||
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

static int service_get_q(struct store_tx *tx, unsigned q, const char *name, uint32_t uid,
			 struct store_service *ret)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!ret)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 || (r = stmt_get(c, &people_stmts, q, &st)) < 0 ||
	    (r = name ? bind_text(c, st, 1, name) : bind_int(c, st, 1, uid)) < 0 ||
	    (r = step_row(c, st, "service get")) < 0)
		return r;
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
	if ((r = tx_conn(tx, true, &c)) < 0 ||
	    (r = stmt_get(c, &people_stmts, Q_SERVICE_DELETE, &st)) < 0 ||
	    (r = bind_text(c, st, 1, name)) < 0)
		return r;
	r = step_changes(c, st, "service delete");
	return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

struct service_rows {
	int (*cb)(const struct store_service *s, void *userdata);
	void *userdata;
};

static int service_row(sqlite3_stmt *st, void *userdata)
{
	const struct service_rows *e = userdata;
	_cleanup_(store_service_clear) struct store_service svc = {0};
	int r;

	if ((r = service_read_row(st, &svc)) < 0)
		return r;
	return e->cb(&svc, e->userdata);
}

int store_service_list(struct store_tx *tx,
		       int (*cb)(const struct store_service *s, void *userdata), void *userdata)
{
	_cleanup_reset_ sqlite3_stmt *st = NULL;
	struct conn *c;
	int r;

	if (!cb)
		return -EINVAL;
	if ((r = tx_conn(tx, false, &c)) < 0 ||
	    (r = stmt_get(c, &people_stmts, Q_SERVICE_LIST, &st)) < 0)
		return r;
	return stmt_each(c, st, service_row, &(struct service_rows){ cb, userdata }, "service list");
}
