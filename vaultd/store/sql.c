/* vaultd/store/sql.c: the helpers every record family shares (internal.h):
 * SQLite result codes as -errno, binds, column readers, stepping, the row
 * loop, and the argument checks that keep what goes in readable back out
 * through the fixed-size fields of store.h.
 */
#include <errno.h>
#include <pthread.h>
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

/* The filesystem of the database is full: one error line, then at most one
 * every 10 s (counting the failures between), so a full disk is plain in the
 * log without a line per refused request. */
static void disk_full(sqlite3 *db)
{
	static pthread_mutex_t mtx = PTHREAD_MUTEX_INITIALIZER;
	static int64_t last_ms;
	static unsigned since;
	const char *path = db ? sqlite3_db_filename(db, "main") : NULL;
	int64_t now = now_ms();

	pthread_mutex_lock(&mtx);
	if (last_ms && now - last_ms < 10000) {
		since++;
		pthread_mutex_unlock(&mtx);
		return;
	}
	log_error("the disk is full where the database is ('%s'): changes and the audit records they need are "
		  "refused (507 insufficient_storage) until space is freed there (%u more since the last line)",
		  path && *path ? path : "?", since);
	last_ms = now;
	since = 0;
	pthread_mutex_unlock(&mtx);
}

/* One table for SQLite result codes. The message names the operation and
 * carries SQLite's text, which names tables and columns, never bound values. */
int sql_error(sqlite3 *db, int rc, const char *op)
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
	case SQLITE_FULL:
		disk_full(db);
		r = -ENOSPC;
		break;
	default:
		r = -EIO;
		break;
	}
	return log_debug_errno(r, "%s: %s (%d)", op, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc),
			       ext);
}

/* --- binds --- */

/* The bind helpers fold SQLite's code into -errno; text and blobs always go
 * with explicit lengths. Binds are SQLITE_STATIC: the cleanup clears them
 * before the caller's buffers go away. */
int bind_text(struct conn *c, sqlite3_stmt *st, int i, const char *s)
{
	int rc;

	if (!s)
		rc = sqlite3_bind_null(st, i);
	else
		rc = sqlite3_bind_text64(st, i, s, strlen(s), SQLITE_STATIC, SQLITE_UTF8);
	return rc == SQLITE_OK ? 0 : sql_error(c->db, rc, "bind");
}

int bind_blob(struct conn *c, sqlite3_stmt *st, int i, const uint8_t *p, size_t n)
{
	/* A NULL pointer would bind SQL NULL; callers reject empty blobs. */
	int rc = sqlite3_bind_blob64(st, i, p, n, SQLITE_STATIC);

	return rc == SQLITE_OK ? 0 : sql_error(c->db, rc, "bind");
}

int bind_blob_opt(struct conn *c, sqlite3_stmt *st, int i, const uint8_t *p, size_t n)
{
	int rc;

	if (!p) {
		rc = sqlite3_bind_null(st, i);
		return rc == SQLITE_OK ? 0 : sql_error(c->db, rc, "bind");
	}
	return bind_blob(c, st, i, p, n);
}

int bind_int(struct conn *c, sqlite3_stmt *st, int i, int64_t v)
{
	int rc = sqlite3_bind_int64(st, i, v);

	return rc == SQLITE_OK ? 0 : sql_error(c->db, rc, "bind");
}

int bind_mac(struct conn *c, sqlite3_stmt *st, int i, const char *mac)
{
	if (!mac[0]) {
		int rc = sqlite3_bind_null(st, i);
		return rc == SQLITE_OK ? 0 : sql_error(c->db, rc, "bind");
	}
	return bind_text(c, st, i, mac);
}

/* --- columns --- */

int col_u32(sqlite3_stmt *st, int i, uint32_t *ret)
{
	sqlite3_int64 v = sqlite3_column_int64(st, i);

	if (sqlite3_column_type(st, i) != SQLITE_INTEGER || v < 0 || v > UINT32_MAX)
		return log_debug_errno(-EIO, "column %d: not a 32-bit version", i);
	*ret = (uint32_t)v;
	return 0;
}

int col_i32(sqlite3_stmt *st, int i, int32_t *ret)
{
	sqlite3_int64 v = sqlite3_column_int64(st, i);

	if (sqlite3_column_type(st, i) != SQLITE_INTEGER || v < INT32_MIN || v > INT32_MAX)
		return log_debug_errno(-EIO, "column %d: not a 32-bit integer", i);
	*ret = (int32_t)v;
	return 0;
}

int col_text_copy(sqlite3_stmt *st, int i, char *buf, size_t size)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	int n = sqlite3_column_bytes(st, i);

	if (!t || n < 0 || (size_t)n >= size || memchr(t, 0, (size_t)n))
		return log_debug_errno(-EIO, "column %d: text missing or too long", i);
	memcpy(buf, t, (size_t)n);
	buf[n] = 0;
	return 0;
}

int col_text_dup(sqlite3_stmt *st, int i, char **ret)
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

int col_text_dup_opt(sqlite3_stmt *st, int i, char **ret)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL) {
		*ret = NULL;
		return 0;
	}
	return col_text_dup(st, i, ret);
}

int col_blob_dup(sqlite3_stmt *st, int i, uint8_t **ret, size_t *ret_len)
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

int col_blob_fixed(sqlite3_stmt *st, int i, uint8_t *buf, size_t size)
{
	const void *b = sqlite3_column_blob(st, i);     /* blob before bytes */
	int n = sqlite3_column_bytes(st, i);

	if (sqlite3_column_type(st, i) != SQLITE_BLOB || !b || n < 0 || (size_t)n != size)
		return log_debug_errno(-EIO, "column %d: blob of the wrong size", i);
	memcpy(buf, b, size);
	return 0;
}

int col_mac(sqlite3_stmt *st, int i, char buf[65])
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL) {
		buf[0] = '\0';
		return 0;
	}
	return col_text_copy(st, i, buf, 65);
}

/* --- stepping --- */

int step_row(struct conn *c, sqlite3_stmt *st, const char *op)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		return 0;
	return rc == SQLITE_DONE ? -ENOENT : sql_error(c->db, rc, op);
}

int step_done(struct conn *c, sqlite3_stmt *st, const char *op)
{
	int rc = sqlite3_step(st);

	return rc == SQLITE_DONE ? 0 : sql_error(c->db, rc, op);
}

int step_changes(struct conn *c, sqlite3_stmt *st, const char *op)
{
	int rc = sqlite3_step(st);
	int n;

	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc, op);
	n = sqlite3_changes(c->db);
	return n < 0 ? 0 : n;
}

int step_count(struct conn *c, sqlite3_stmt *st, const char *op)
{
	sqlite3_int64 n;
	int rc = sqlite3_step(st);

	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? -EIO : sql_error(c->db, rc, op);
	n = sqlite3_column_int64(st, 0);
	if (n < 0)
		return -EIO;
	return n > INT32_MAX ? INT32_MAX : (int)n;
}

int64_t step_count64(struct conn *c, sqlite3_stmt *st, const char *op)
{
	sqlite3_int64 n;
	int rc = sqlite3_step(st);

	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? -EIO : sql_error(c->db, rc, op);
	n = sqlite3_column_int64(st, 0);
	return n < 0 ? -EIO : n;
}

int stmt_each(struct conn *c, sqlite3_stmt *st, int (*row)(sqlite3_stmt *st, void *userdata),
	      void *userdata, const char *op)
{
	int r, rc, n = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (row && (r = row(st, userdata)) < 0)
			return r;
		if (n < INT32_MAX)
			n++;
	}
	if (rc != SQLITE_DONE)
		return sql_error(c->db, rc, op);
	return n;
}

/* --- argument checks --- */

bool name_fits(const char *s, size_t size)
{
	size_t n;

	if (!s)
		return false;
	n = strnlen(s, size);
	return n > 0 && n < size;
}

bool text_fits(const char *s, size_t size)
{
	return s && strnlen(s, size) < size;
}

bool blob_arg_valid(const uint8_t *p, size_t n)
{
	return p ? n > 0 : n == 0;
}

bool tenant_valid(const char *tenant)
{
	return name_fits(tenant, sizeof(((struct store_kek *)0)->tenant)) && !strchr(tenant, '/');
}

bool hex64_valid(const char *h)
{
	if (!h || strnlen(h, 65) != 64)
		return false;
	for (size_t i = 0; i < 64; i++)
		if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
			return false;
	return true;
}
