/* tests/unit/test_store.c: SQLite storage, each test on a fresh file in its
 * own mkdtemp() directory. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <sodium.h>
#include "common/log.h"
#include "vaultd/store/store.h"

struct fixture {
	char dir[64];
	char path[128];
	struct store *s;
};

static void unlink_db(const char *path)
{
	char p[160];

	(void)unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	(void)unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	(void)unlink(p);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/test_store.XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/vault.db", f->dir);
	if (store_open(f->path, 2, &f->s) < 0) {
		unlink_db(f->path);
		(void)rmdir(f->dir);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	store_close(f->s);
	unlink_db(f->path);
	(void)rmdir(f->dir);
	free(f);
	return 0;
}

/* --- helpers --- */

static uint8_t dek_bytes[40] = "dek-blob-0123456789abcdef0123456789abcde";
static uint8_t data_bytes[48] = "data-blob-0123456789abcdef0123456789abcdef01234";

static int put_version(struct store *s, const char *path, uint32_t version, const char *type,
		       const char *metadata, int64_t now)
{
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct store_version v = {
		.version = version, .kek_version = 1,
		.dek_blob = dek_bytes, .dek_len = sizeof(dek_bytes),
		.data_blob = data_bytes, .data_len = sizeof(data_bytes),
		.created_at = now,
	};
	char tenant[65];
	const char *slash = strchr(path, '/');
	int r;

	snprintf(tenant, sizeof(tenant), "%.*s", slash ? (int)(slash - path) : 0, path);
	if ((r = store_write_begin(s, &tx)) < 0)
		return r;
	if ((r = store_secret_put_version(tx, path, tenant, type, metadata, &v)) < 0)
		return r;
	return store_write_commit(TAKE_PTR(tx));
}

static int get_head(struct store *s, const char *path, struct store_secret *ret)
{
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	int r;

	if ((r = store_read_begin(s, &tx)) < 0)
		return r;
	return store_secret_get(tx, path, ret);
}

static int put_rootkey(struct store *s, uint32_t version)
{
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	uint8_t blob[16];
	struct store_rootkey rk = { .version = version, .hsm_version = 7, .blob = blob,
				    .blob_len = sizeof(blob), .created_at = 1000 + version };
	int r;

	memset(blob, (int)version, sizeof(blob));
	strcpy(rk.hsm_label, "vaultd-root");
	if ((r = store_write_begin(s, &tx)) < 0 || (r = store_rootkey_put(tx, &rk)) < 0)
		return r;
	return store_write_commit(TAKE_PTR(tx));
}

static bool file_contains(const char *path, const uint8_t *needle, size_t n)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *buf;
	long size;
	bool found;

	if (!fp)
		return false;
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	size = ftell(fp);
	rewind(fp);
	buf = malloc((size_t)size + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)size, fp), (size_t)size);
	fclose(fp);
	found = memmem(buf, (size_t)size, needle, n) != NULL;
	free(buf);
	return found;
}

static int64_t raw_pragma(const char *path, const char *sql, char *text, size_t text_size)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	if (text)
		snprintf(text, text_size, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	return v;
}

static void raw_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* --- open, migrations --- */

static void test_open_creates_0600_wal_latest(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	char path[160], wal[170], mode[16];
	struct stat st;
	mode_t old;

	/* A permissive umask must not leak into the file's mode. */
	snprintf(path, sizeof(path), "%s/other.db", f->dir);
	old = umask(0);
	assert_int_equal(store_open(path, 1, &s), 0);
	umask(old);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	snprintf(wal, sizeof(wal), "%s-wal", path);
	assert_int_equal(stat(wal, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(store_schema_version(s), 7);
	store_close(s);

	raw_pragma(path, "PRAGMA journal_mode", mode, sizeof(mode));
	assert_string_equal(mode, "wal");
	assert_int_equal(raw_pragma(path, "PRAGMA user_version", NULL, 0), 7);
	assert_int_equal(raw_pragma(path, "PRAGMA application_id", NULL, 0), 0x564c5444);
	/* The close checkpointed and removed the WAL. */
	assert_int_not_equal(access(wal, F_OK), 0);

	/* An existing file with a loose mode is tightened. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(store_open(path, 1, &s), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	store_close(s);
	unlink_db(path);
}

static void test_open_bad_args(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;

	assert_int_equal(store_open(f->path, 0, &s), -EINVAL);
	assert_int_equal(store_open(f->path, 17, &s), -EINVAL);
	assert_int_equal(store_open(NULL, 1, &s), -EINVAL);
	assert_int_equal(store_open(f->dir, 1, &s), -EISDIR);
	assert_null(s);
	store_close(NULL);
	store_tx_end(NULL);
}

static void test_reopen_keeps_data(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	_cleanup_free_ char *v = NULL;

	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_meta_set(tx, "initialized_at", "12345"), 0);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);
	assert_int_equal(put_version(f->s, "acme/rmm", 1, "generic", NULL, 10), 0);
	store_close(f->s);
	f->s = NULL;

	assert_int_equal(store_open(f->path, 2, &f->s), 0);
	assert_int_equal(store_schema_version(f->s), 7);
	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_meta_get(tx, "initialized_at", &v), 0);
	assert_string_equal(v, "12345");
	{
		struct store_secret h = {0};

		assert_int_equal(store_secret_get(tx, "acme/rmm", &h), 0);
		assert_int_equal(h.latest_version, 1);
		store_secret_clear(&h);
	}
}

static void test_future_version_refused(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	char path[160];

	store_close(f->s);
	f->s = NULL;
	raw_exec(f->path, "PRAGMA user_version = 8");
	assert_int_equal(store_open(f->path, 1, &s), -EIO);
	assert_null(s);
	/* Refusal changed nothing. */
	assert_int_equal(raw_pragma(f->path, "PRAGMA user_version", NULL, 0), 8);

	/* Someone else's database is not migrated into. */
	snprintf(path, sizeof(path), "%s/foreign.db", f->dir);
	raw_exec(path, "CREATE TABLE foo(x)");
	assert_int_equal(store_open(path, 1, &s), -EIO);
	assert_null(s);
	unlink_db(path);
}

/* --- meta --- */

static void test_meta(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	char *v = NULL;

	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_meta_get(tx, "k", &v), -ENOENT);
	assert_null(v);
	assert_int_equal(store_meta_set(tx, "k", "one"), 0);
	assert_int_equal(store_meta_get(tx, "k", &v), 0);
	assert_string_equal(v, "one");
	free(v);
	assert_int_equal(store_meta_set(tx, "k", "two"), 0);      /* upsert */
	assert_int_equal(store_meta_set(tx, "empty", ""), 0);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_meta_get(tx, "k", &v), 0);
	assert_string_equal(v, "two");
	free(v);
	assert_int_equal(store_meta_get(tx, "empty", &v), 0);
	assert_string_equal(v, "");
	free(v);
	/* A read transaction refuses writes. */
	assert_int_equal(store_meta_set(tx, "k", "three"), -EINVAL);
	assert_int_equal(store_meta_set(NULL, "k", "three"), -EINVAL);
}

/* --- root keys --- */

static void test_rootkey(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct store_rootkey rk = {0};

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_rootkey_get_current(tx, &rk), -ENOENT);
	store_tx_end(TAKE_PTR(tx));

	assert_int_equal(put_rootkey(f->s, 2), 0);
	assert_int_equal(put_rootkey(f->s, 1), 0);
	assert_int_equal(put_rootkey(f->s, 2), -EEXIST);

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_rootkey_get_current(tx, &rk), 0);
	assert_int_equal(rk.version, 2);            /* highest wins, not latest inserted */
	assert_string_equal(rk.hsm_label, "vaultd-root");
	assert_int_equal(rk.hsm_version, 7);
	assert_int_equal(rk.blob_len, 16);
	for (size_t i = 0; i < rk.blob_len; i++)
		assert_int_equal(rk.blob[i], 2);
	assert_int_equal(rk.created_at, 1002);
	store_rootkey_clear(&rk);
	assert_null(rk.blob);
	store_rootkey_clear(&rk);                   /* twice is harmless */
}

/* --- KEKs --- */

static void test_kek(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	uint8_t blob[60];
	struct store_kek k = { .version = 1, .rk_version = 1, .blob = blob,
			       .blob_len = sizeof(blob), .created_at = 50 };
	struct store_kek got = {0};

	memset(blob, 0xab, sizeof(blob));
	strcpy(k.tenant, "acme");
	assert_int_equal(put_rootkey(f->s, 1), 0);

	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_kek_put(tx, &k), 0);
	assert_int_equal(store_kek_put(tx, &k), -EEXIST);
	k.version = 2;
	k.wrap_count = 4;
	assert_int_equal(store_kek_put(tx, &k), 0);
	/* The foreign key to root_keys is enforced. */
	k.version = 3;
	k.rk_version = 99;
	assert_int_equal(store_kek_put(tx, &k), -EINVAL);
	assert_int_equal(store_kek_add_wraps(tx, "acme", 1, 5), 0);
	assert_int_equal(store_kek_add_wraps(tx, "acme", 1, 3), 0);
	assert_int_equal(store_kek_add_wraps(tx, "acme", 9, 1), -ENOENT);
	assert_int_equal(store_kek_add_wraps(tx, "acme", 1, UINT64_MAX), -EINVAL);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_kek_get(tx, "acme", 1, &got), 0);
	assert_string_equal(got.tenant, "acme");
	assert_int_equal(got.version, 1);
	assert_int_equal(got.rk_version, 1);
	assert_int_equal(got.wrap_count, 8);
	assert_int_equal(got.created_at, 50);
	assert_int_equal(got.blob_len, sizeof(blob));
	assert_memory_equal(got.blob, blob, sizeof(blob));
	store_kek_clear(&got);

	assert_int_equal(store_kek_get_current(tx, "acme", &got), 0);
	assert_int_equal(got.version, 2);
	assert_int_equal(got.wrap_count, 4);
	store_kek_clear(&got);

	assert_int_equal(store_kek_get(tx, "acme", 3, &got), -ENOENT);
	assert_int_equal(store_kek_get_current(tx, "other", &got), -ENOENT);
	assert_null(got.blob);
}

/* --- secrets --- */

static void test_secret_versions(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct store_secret h = {0};
	struct store_version v = {0};

	assert_int_equal(put_version(f->s, "acme/rmm", 1, "tactical-rmm", "{\"a\":1}", 100), 0);
	assert_int_equal(put_version(f->s, "acme/rmm", 2, "tactical-rmm", NULL, 200), 0);
	assert_int_equal(put_version(f->s, "acme/rmm", 3, "generic", NULL, 300), 0);

	assert_int_equal(get_head(f->s, "acme/rmm", &h), 0);
	assert_string_equal(h.path, "acme/rmm");
	assert_string_equal(h.tenant, "acme");
	assert_string_equal(h.type, "generic");     /* the head keeps the latest type */
	assert_string_equal(h.metadata, "{\"a\":1}"); /* NULL kept the previous metadata */
	assert_int_equal(h.current_version, 3);
	assert_int_equal(h.latest_version, 3);
	assert_int_equal(h.created_at, 100);
	assert_int_equal(h.updated_at, 300);
	assert_int_equal(h.deleted_at, 0);
	store_secret_clear(&h);

	/* Not latest + 1: a stale writer cannot overwrite or skip. */
	assert_int_equal(put_version(f->s, "acme/rmm", 3, "generic", "{}", 400), -EEXIST);
	assert_int_equal(put_version(f->s, "acme/rmm", 2, "generic", "{}", 400), -EEXIST);
	assert_int_equal(put_version(f->s, "acme/rmm", 5, "generic", "{}", 400), -EEXIST);
	assert_int_equal(put_version(f->s, "acme/new", 2, "generic", NULL, 400), -EEXIST);
	assert_int_equal(put_version(f->s, "acme/rmm", 0, "generic", NULL, 400), -EEXIST);

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_secret_get(tx, "acme/rmm", &h), 0);
	assert_int_equal(h.latest_version, 3);
	assert_int_equal(h.updated_at, 300);
	assert_string_equal(h.metadata, "{\"a\":1}");
	store_secret_clear(&h);
	assert_int_equal(store_secret_get(tx, "acme/new", &h), -ENOENT);
	assert_int_equal(store_version_get(tx, "acme/rmm", 4, &v), -ENOENT);
	assert_int_equal(store_version_get(tx, "acme/rmm", 5, &v), -ENOENT);
	for (uint32_t i = 1; i <= 3; i++) {
		assert_int_equal(store_version_get(tx, "acme/rmm", i, &v), 0);
		assert_int_equal(v.version, i);
		assert_int_equal(v.kek_version, 1);
		assert_int_equal(v.created_at, 100 * i);
		assert_int_equal(v.dek_len, sizeof(dek_bytes));
		assert_memory_equal(v.dek_blob, dek_bytes, sizeof(dek_bytes));
		assert_int_equal(v.data_len, sizeof(data_bytes));
		assert_memory_equal(v.data_blob, data_bytes, sizeof(data_bytes));
		store_version_clear(&v);
	}
	store_tx_end(TAKE_PTR(tx));

	/* A new path gets "{}" when no metadata is given. */
	assert_int_equal(put_version(f->s, "acme/new", 1, "generic", NULL, 500), 0);
	assert_int_equal(get_head(f->s, "acme/new", &h), 0);
	assert_string_equal(h.metadata, "{}");
	store_secret_clear(&h);
}

static void test_secret_put_bad_args(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct store_version v = { .version = 1, .dek_blob = dek_bytes, .dek_len = 4,
				   .data_blob = data_bytes, .data_len = 4 };
	char long_type[40];

	memset(long_type, 't', sizeof(long_type) - 1);
	long_type[sizeof(long_type) - 1] = 0;
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_secret_put_version(tx, "other/x", "acme", "generic", NULL, &v),
			 -EINVAL);
	assert_int_equal(store_secret_put_version(tx, "acme", "acme", "generic", NULL, &v), -EINVAL);
	assert_int_equal(store_secret_put_version(tx, "acme/", "acme", "generic", NULL, &v), -EINVAL);
	assert_int_equal(store_secret_put_version(tx, "acmex/y", "acme", "generic", NULL, &v),
			 -EINVAL);
	assert_int_equal(store_secret_put_version(tx, "acme/x", "acme", long_type, NULL, &v),
			 -EINVAL);
	v.data_len = 0;
	assert_int_equal(store_secret_put_version(tx, "acme/x", "acme", "generic", NULL, &v),
			 -EINVAL);
	v.data_len = 4;
	assert_int_equal(store_secret_put_version(tx, "acme/x", "acme", "generic", NULL, &v), 0);
	/* The writer's own transaction sees its write. */
	{
		struct store_secret h = {0};

		assert_int_equal(store_secret_get(tx, "acme/x", &h), 0);
		store_secret_clear(&h);
	}
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);
}

static int collect_paths(const struct store_secret *s, void *userdata)
{
	char *out = userdata;

	strcat(out, s->path);
	strcat(out, ";");
	return 0;
}

static void test_soft_delete_and_revive(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct store_secret h = {0};
	char paths[256] = "";

	assert_int_equal(put_version(f->s, "acme/a", 1, "generic", NULL, 10), 0);
	assert_int_equal(put_version(f->s, "acme/b", 1, "generic", NULL, 10), 0);

	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_secret_soft_delete(tx, "acme/a", 77), 0);
	assert_int_equal(store_secret_soft_delete(tx, "acme/a", 78), -ENOENT);     /* already */
	assert_int_equal(store_secret_soft_delete(tx, "acme/none", 78), -ENOENT);
	assert_int_equal(store_secret_soft_delete(tx, "acme/b", 0), -EINVAL);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);

	assert_int_equal(get_head(f->s, "acme/a", &h), 0);
	assert_int_equal(h.deleted_at, 77);
	assert_int_equal(h.latest_version, 1);
	store_secret_clear(&h);

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_secret_list(tx, "acme", 0, collect_paths, paths), 1);
	assert_string_equal(paths, "acme/b;");
	store_tx_end(TAKE_PTR(tx));

	/* Writing the next version makes it live again. */
	assert_int_equal(put_version(f->s, "acme/a", 2, "generic", NULL, 90), 0);
	assert_int_equal(get_head(f->s, "acme/a", &h), 0);
	assert_int_equal(h.deleted_at, 0);
	assert_int_equal(h.current_version, 2);
	assert_int_equal(h.created_at, 10);
	store_secret_clear(&h);
	paths[0] = 0;
	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_secret_list(tx, "acme", 0, collect_paths, paths), 2);
	assert_string_equal(paths, "acme/a;acme/b;");
}

static void test_destroy_wipes_blobs(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	uint8_t marker[64], dek[32];
	struct store_version v = { .version = 1, .kek_version = 1, .dek_blob = dek,
				   .dek_len = sizeof(dek), .data_blob = marker,
				   .data_len = sizeof(marker), .created_at = 1 };
	struct store_secret h = {0};
	struct store_version got = {0};
	char wal[170];
	struct stat st;

	for (size_t i = 0; i < sizeof(marker); i++)
		marker[i] = (uint8_t)(0x80 ^ (i * 37));
	memcpy(marker, "MARKER!!", 8);
	memset(dek, 0xd5, sizeof(dek));
	/* Neighbours in the same pages, which must survive. */
	assert_int_equal(put_version(f->s, "acme/keep", 1, "generic", NULL, 1), 0);
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_secret_put_version(tx, "acme/gone", "acme", "generic", NULL, &v), 0);
	v.version = 2;
	assert_int_equal(store_secret_put_version(tx, "acme/gone", "acme", "generic", NULL, &v), 0);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);
	assert_int_equal(store_checkpoint(f->s), 0);
	assert_true(file_contains(f->path, marker, sizeof(marker)));

	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_secret_destroy(tx, "acme/gone"), 0);
	assert_int_equal(store_secret_destroy(tx, "acme/gone"), -ENOENT);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);
	assert_int_equal(store_checkpoint(f->s), 0);

	assert_false(file_contains(f->path, marker, sizeof(marker)));
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	assert_int_equal(stat(wal, &st), 0);
	assert_int_equal(st.st_size, 0);

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_secret_get(tx, "acme/gone", &h), -ENOENT);
	assert_int_equal(store_version_get(tx, "acme/gone", 1, &got), -ENOENT);
	assert_int_equal(store_version_get(tx, "acme/gone", 2, &got), -ENOENT);
	assert_int_equal(store_secret_get(tx, "acme/keep", &h), 0);
	store_secret_clear(&h);
	store_tx_end(TAKE_PTR(tx));
	assert_int_equal(store_integrity_check(f->s), 0);
}

struct list_acc {
	char paths[512];
	int stop_after;
	int seen;
};

static int list_cb(const struct store_secret *s, void *userdata)
{
	struct list_acc *a = userdata;

	a->seen++;
	strcat(a->paths, s->path);
	strcat(a->paths, ";");
	if (a->stop_after && a->seen >= a->stop_after)
		return -ECANCELED;
	return 0;
}

static void test_list_prefix(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	static const char *const paths[] = {
		"acme/rmm", "acme/rmm/x", "acme/rmm/y/z", "acme/rmm-x", "acme/rmm.x", "acme/rmmx",
		"acme/rm", "acme/rmm0", "acme/a%b/x", "acme/a_b/y", "acme/aXb/z", "acme/aXXb/w",
		"acmex/rmm/x",
	};
	struct list_acc a = {0};

	for (size_t i = 0; i < ELEMENTSOF(paths); i++)
		assert_int_equal(put_version(f->s, paths[i], 1, "generic", NULL, 1), 0);

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_secret_list(tx, "acme/rmm", 0, list_cb, &a), 3);
	assert_string_equal(a.paths, "acme/rmm;acme/rmm/x;acme/rmm/y/z;");

	memset(&a, 0, sizeof(a));
	assert_int_equal(store_secret_list(tx, "acme/rmm/x", 0, list_cb, &a), 1);
	assert_string_equal(a.paths, "acme/rmm/x;");

	/* LIKE metacharacters are ordinary characters. */
	memset(&a, 0, sizeof(a));
	assert_int_equal(store_secret_list(tx, "acme/a%b", 0, list_cb, &a), 1);
	assert_string_equal(a.paths, "acme/a%b/x;");
	memset(&a, 0, sizeof(a));
	assert_int_equal(store_secret_list(tx, "acme/a_b", 0, list_cb, &a), 1);
	assert_string_equal(a.paths, "acme/a_b/y;");
	memset(&a, 0, sizeof(a));
	assert_int_equal(store_secret_list(tx, "acme/a%", 0, list_cb, &a), 0);
	assert_int_equal(store_secret_list(tx, "acme/%", 0, list_cb, &a), 0);

	/* The tenant itself as prefix: not the "acmex" tenant. */
	memset(&a, 0, sizeof(a));
	assert_int_equal(store_secret_list(tx, "acme", 0, list_cb, &a), 12);
	assert_null(strstr(a.paths, "acmex"));

	/* Limit, and sorted order. */
	memset(&a, 0, sizeof(a));
	assert_int_equal(store_secret_list(tx, "acme/rmm", 2, list_cb, &a), 2);
	assert_string_equal(a.paths, "acme/rmm;acme/rmm/x;");

	/* An empty prefix lists everything. */
	memset(&a, 0, sizeof(a));
	assert_int_equal(store_secret_list(tx, "", 0, list_cb, &a), (int)ELEMENTSOF(paths));

	/* A callback error stops the walk and is returned. */
	memset(&a, 0, sizeof(a));
	a.stop_after = 2;
	assert_int_equal(store_secret_list(tx, "acme", 0, list_cb, &a), -ECANCELED);
	assert_int_equal(a.seen, 2);

	memset(&a, 0, sizeof(a));
	assert_int_equal(store_secret_list(tx, "nobody", 0, list_cb, &a), 0);
}

struct vacc {
	uint32_t versions[16];
	size_t lens[16];
	size_t dek_lens[16];
	uint32_t keks[16];
	int n;
};

static int version_cb(const struct store_version *v, void *userdata)
{
	struct vacc *a = userdata;

	assert_null(v->dek_blob);
	assert_null(v->data_blob);
	assert_int_equal(v->dek_len, sizeof(dek_bytes));
	a->versions[a->n] = v->version;
	a->lens[a->n] = v->data_len;
	a->n++;
	return 0;
}

/* Live or destroyed: records what store_version_list() says of each. */
static int version_cb_any(const struct store_version *v, void *userdata)
{
	struct vacc *a = userdata;

	assert_null(v->dek_blob);
	assert_null(v->data_blob);
	if (a->n >= (int)ELEMENTSOF(a->versions))
		return -ENOBUFS;
	a->versions[a->n] = v->version;
	a->lens[a->n] = v->data_len;
	a->dek_lens[a->n] = v->dek_len;
	a->keks[a->n] = v->kek_version;
	a->n++;
	return 0;
}

static void test_version_list(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct vacc a = {0};

	for (uint32_t i = 1; i <= 3; i++)
		assert_int_equal(put_version(f->s, "acme/v", i, "generic", NULL, i), 0);
	assert_int_equal(put_version(f->s, "acme/v2", 1, "generic", NULL, 1), 0);

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_version_list(tx, "acme/v", version_cb, &a), 3);
	assert_int_equal(a.n, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(a.versions[i], (uint32_t)i + 1);
		assert_int_equal(a.lens[i], sizeof(data_bytes));
	}
	memset(&a, 0, sizeof(a));
	assert_int_equal(store_version_list(tx, "acme/none", version_cb, &a), 0);
}

/* --- users --- */

static void test_users(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct store_user u = { .phc = "$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA",
				.roles = "[\"admin\"]", .created_at = 5, .updated_at = 5 };
	struct store_user got = {0};

	strcpy(u.name, "alice");
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_user_count(tx), 0);
	assert_int_equal(store_user_put(tx, &u), 0);
	strcpy(u.name, "bob");
	assert_int_equal(store_user_put(tx, &u), 0);
	assert_int_equal(store_user_count(tx), 2);
	/* Upsert: new hash and roles, created_at kept. */
	strcpy(u.name, "alice");
	u.phc = "$argon2id$v=19$m=65536,t=3,p=1$c2FsdDI$aGFzaDI";
	u.roles = "[\"auditor\"]";
	u.created_at = 99;
	u.updated_at = 9;
	assert_int_equal(store_user_put(tx, &u), 0);
	assert_int_equal(store_user_count(tx), 2);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_user_get(tx, "alice", &got), 0);
	assert_string_equal(got.name, "alice");
	assert_string_equal(got.phc, u.phc);
	assert_string_equal(got.roles, "[\"auditor\"]");
	assert_int_equal(got.created_at, 5);
	assert_int_equal(got.updated_at, 9);
	store_user_clear(&got);
	assert_int_equal(store_user_get(tx, "carol", &got), -ENOENT);
	store_tx_end(TAKE_PTR(tx));

	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_user_delete(tx, "alice"), 0);
	assert_int_equal(store_user_delete(tx, "alice"), -ENOENT);
	assert_int_equal(store_user_get(tx, "alice", &got), -ENOENT);
	assert_int_equal(store_user_count(tx), 1);
	u.name[0] = 0;
	assert_int_equal(store_user_put(tx, &u), -EINVAL);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);
}

/* --- migration 2 and the identity tables --- */

/* Migration 1 exactly as shipped: a v1 file built by hand. */
static const char v1_schema[] =
	"PRAGMA application_id = 1447842884;\n"
	"CREATE TABLE meta (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL) STRICT, WITHOUT ROWID;\n"
	"CREATE TABLE root_keys (version INTEGER PRIMARY KEY CHECK (version BETWEEN 0 AND 4294967295),\n"
	"	hsm_label TEXT NOT NULL, hsm_version INTEGER NOT NULL CHECK (hsm_version BETWEEN 0 AND 4294967295),\n"
	"	blob BLOB NOT NULL, created_at INTEGER NOT NULL) STRICT;\n"
	"CREATE TABLE keks (tenant TEXT NOT NULL, version INTEGER NOT NULL CHECK (version BETWEEN 0 AND 4294967295),\n"
	"	rk_version INTEGER NOT NULL REFERENCES root_keys(version), blob BLOB NOT NULL,\n"
	"	wrap_count INTEGER NOT NULL DEFAULT 0 CHECK (wrap_count >= 0), created_at INTEGER NOT NULL,\n"
	"	PRIMARY KEY (tenant, version)) STRICT, WITHOUT ROWID;\n"
	"CREATE INDEX keks_by_rk_version ON keks(rk_version);\n"
	"CREATE TABLE secrets (path TEXT NOT NULL PRIMARY KEY, tenant TEXT NOT NULL, type TEXT NOT NULL,\n"
	"	metadata TEXT NOT NULL DEFAULT '{}', current_version INTEGER NOT NULL,\n"
	"	latest_version INTEGER NOT NULL CHECK (latest_version <= 4294967295),\n"
	"	created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, deleted_at INTEGER NOT NULL DEFAULT 0,\n"
	"	CHECK (current_version BETWEEN 1 AND latest_version)) STRICT;\n"
	"CREATE TABLE secret_versions (path TEXT NOT NULL REFERENCES secrets(path) ON DELETE CASCADE,\n"
	"	version INTEGER NOT NULL CHECK (version BETWEEN 1 AND 4294967295),\n"
	"	kek_version INTEGER NOT NULL CHECK (kek_version BETWEEN 0 AND 4294967295),\n"
	"	dek_blob BLOB, data_blob BLOB, created_at INTEGER NOT NULL, PRIMARY KEY (path, version)) STRICT;\n"
	"CREATE INDEX secret_versions_by_kek ON secret_versions(kek_version, path);\n"
	"CREATE TABLE users (name TEXT NOT NULL PRIMARY KEY, phc TEXT NOT NULL, roles TEXT NOT NULL,\n"
	"	created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL) STRICT;\n"
	"PRAGMA user_version = 1;\n";

#define PHC "$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA"

/* From v1 through the shipped migrations 2 and 3 to a v3 file, then 4. */
static void test_migrate_v1_to_latest(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	_cleanup_free_ char *v = NULL;
	struct store_user u = {0};
	struct store_token t = { .uid = 1000, .created_at = 1, .expires_at = 100 };

	store_close(f->s);
	f->s = NULL;
	unlink_db(f->path);
	raw_exec(f->path, v1_schema);
	raw_exec(f->path, "INSERT INTO users VALUES ('alice', '" PHC "', '[\"admin\"]', 11, 12);"
			  "INSERT INTO users VALUES ('bob', '" PHC "', '[]', 21, 22);"
			  "INSERT INTO meta VALUES ('initialized_at', '7');"
			  /* A secret with two versions: migration 4 adds columns to both tables' rows. */
			  "INSERT INTO secrets VALUES ('acme/old', 'acme', 'generic', '{}', 2, 2, 5, 6, 0);"
			  "INSERT INTO secret_versions VALUES ('acme/old', 1, 1, x'01', x'02', 5);"
			  "INSERT INTO secret_versions VALUES ('acme/old', 2, 1, x'03', x'04', 6);");
	assert_int_equal(raw_pragma(f->path, "PRAGMA user_version", NULL, 0), 1);

	assert_int_equal(store_open(f->path, 2, &f->s), 0);
	assert_int_equal(store_schema_version(f->s), 7);
	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_meta_get(tx, "initialized_at", &v), 0);
	assert_string_equal(v, "7");
	assert_int_equal(store_user_count(tx), 2);
	assert_int_equal(store_user_get(tx, "alice", &u), 0);
	assert_string_equal(u.phc, PHC);
	assert_string_equal(u.roles, "[\"admin\"]");
	assert_int_equal(u.mfa_state, STORE_MFA_NONE);
	assert_null(u.mfa_key);
	assert_int_equal(u.mfa_key_len, 0);
	assert_null(u.totp_blob);
	assert_int_equal(u.totp_last_step, 0);
	assert_int_equal(u.created_at, 11);
	assert_int_equal(u.updated_at, 12);
	store_user_clear(&u);
	assert_int_equal(store_user_count_with_role(tx, "admin"), 1);
	{
		/* Migration 4: an existing head has no pending and no previous version. */
		struct store_secret h = {0};

		assert_int_equal(store_secret_get(tx, "acme/old", &h), 0);
		assert_int_equal(h.current_version, 2);
		assert_int_equal(h.latest_version, 2);
		assert_int_equal(h.pending_version, 0);
		assert_int_equal(h.previous_version, 0);
		store_secret_clear(&h);
		assert_int_equal(store_version_count_old_kek(tx, "acme", 2), 2);
	}
	store_tx_end(TAKE_PTR(tx));

	/* The new tables work on the upgraded file, foreign keys included. */
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	memset(t.hash, 'a', 64);
	strcpy(t.user, "bob");
	assert_int_equal(store_token_put(tx, &t), 0);
	assert_int_equal(store_user_delete(tx, "bob"), 0);
	assert_int_equal(store_token_delete(tx, t.hash), -ENOENT);
	{
		/* Migration 3's audit table, rebuilt by migration 7 to admit
		 * "attempt". */
		struct store_audit a = { .id = 1, .time = 1, .principal = "uid:0",
					 .action = "sys.init", .result = "allowed" };
		struct store_audit b = { .id = 2, .time = 1, .principal = "system:vaultd",
					 .action = "rotate.hsm_retire", .result = "attempt", .status = 202 };
		struct store_audit c = { .id = 3, .time = 1, .principal = "uid:0",
					 .action = "x", .result = "maybe" };

		assert_int_equal(store_audit_append(tx, &a), 0);
		assert_int_equal(store_audit_append(tx, &b), 0);
		assert_int_equal(store_audit_append(tx, &c), -EINVAL);
	}
	{
		/* Migration 6's authorization seal column. */
		struct store_user m = {0};

		assert_int_equal(store_user_get(tx, "alice", &m), 0);
		assert_string_equal(m.mac, "");
		memset(m.mac, 'f', 64);
		assert_int_equal(store_user_put(tx, &m), 0);
		store_user_clear(&m);
		assert_int_equal(store_user_get(tx, "alice", &m), 0);
		assert_int_equal(strlen(m.mac), 64);
		store_user_clear(&m);
	}
	{
		/* Migration 4's rotations table and head columns. */
		struct store_rotation j = { .kind = "root", .state = "queued", .created_at = 1,
					    .updated_at = 1 };
		struct store_version v3 = { .version = 3, .kek_version = 1, .dek_blob = dek_bytes,
					    .dek_len = 4, .data_blob = data_bytes, .data_len = 4 };
		struct store_secret h = {0};

		assert_int_equal(store_rotation_add(tx, &j), 0);
		assert_int_equal(j.id, 1);
		assert_int_equal(store_secret_put_version(tx, "acme/old", "acme", "generic", NULL, &v3), 0);
		assert_int_equal(store_secret_get(tx, "acme/old", &h), 0);
		assert_int_equal(h.previous_version, 2);
		store_secret_clear(&h);
	}
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);
	store_close(f->s);
	f->s = NULL;
	assert_int_equal(raw_pragma(f->path, "PRAGMA user_version", NULL, 0), 7);
	assert_int_equal(store_open(f->path, 1, &f->s), 0);
	assert_int_equal(store_schema_version(f->s), 7);
	assert_int_equal(store_integrity_check(f->s), 0);
}

static int add_user(struct store_tx *tx, const char *name, const char *roles)
{
	struct store_user u = { .phc = (char *)PHC, .roles = (char *)roles, .created_at = 1,
				.updated_at = 1 };

	snprintf(u.name, sizeof(u.name), "%s", name);
	return store_user_put(tx, &u);
}

static void hash_of(char out[65], char c)
{
	memset(out, c, 64);
	out[64] = 0;
}

static void test_user_mfa_fields(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	uint8_t key[40], blob[60];
	struct store_user u = { .phc = (char *)PHC, .roles = (char *)"[\"admin\"]",
				.mfa_state = STORE_MFA_PENDING, .mfa_key = key,
				.mfa_key_len = sizeof(key), .totp_blob = blob, .totp_len = sizeof(blob),
				.totp_last_step = INT64_MAX, .created_at = 5, .updated_at = 6 };
	struct store_user got = {0}, bad;

	memset(key, 0x11, sizeof(key));
	memset(blob, 0x22, sizeof(blob));
	strcpy(u.name, "alice");
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_user_put(tx, &u), 0);
	assert_int_equal(store_user_get(tx, "alice", &got), 0);
	assert_int_equal(got.mfa_state, STORE_MFA_PENDING);
	assert_int_equal(got.mfa_key_len, sizeof(key));
	assert_memory_equal(got.mfa_key, key, sizeof(key));
	assert_int_equal(got.totp_len, sizeof(blob));
	assert_memory_equal(got.totp_blob, blob, sizeof(blob));
	assert_true(got.totp_last_step == (uint64_t)INT64_MAX);
	store_user_clear(&got);
	assert_null(got.phc);

	/* Upsert drops the blobs (NULL allowed), keeps created_at. */
	u.mfa_key = NULL;
	u.mfa_key_len = 0;
	u.totp_blob = NULL;
	u.totp_len = 0;
	u.mfa_state = STORE_MFA_NONE;
	u.totp_last_step = 3;
	u.created_at = 50;
	u.updated_at = 60;
	assert_int_equal(store_user_put(tx, &u), 0);
	assert_int_equal(store_user_get(tx, "alice", &got), 0);
	assert_null(got.mfa_key);
	assert_null(got.totp_blob);
	assert_int_equal(got.mfa_state, STORE_MFA_NONE);
	assert_int_equal(got.totp_last_step, 3);
	assert_int_equal(got.created_at, 5);
	assert_int_equal(got.updated_at, 60);
	store_user_clear(&got);

	bad = u;
	bad.mfa_state = 3;
	assert_int_equal(store_user_put(tx, &bad), -EINVAL);
	bad = u;
	bad.mfa_state = -1;
	assert_int_equal(store_user_put(tx, &bad), -EINVAL);
	bad = u;
	bad.mfa_key = key;              /* pointer without length */
	assert_int_equal(store_user_put(tx, &bad), -EINVAL);
	bad = u;
	bad.totp_len = 4;               /* length without pointer */
	assert_int_equal(store_user_put(tx, &bad), -EINVAL);
	bad = u;
	bad.totp_last_step = (uint64_t)INT64_MAX + 1;
	assert_int_equal(store_user_put(tx, &bad), -EINVAL);
	bad = u;
	bad.roles = (char *)"{\"a\":\"admin\"}";
	assert_int_equal(store_user_put(tx, &bad), -EINVAL);
	bad.roles = (char *)"[\"admin\"";
	assert_int_equal(store_user_put(tx, &bad), -EINVAL);
	bad.roles = NULL;
	assert_int_equal(store_user_put(tx, &bad), -EINVAL);
	/* Nothing of the refused puts landed. */
	assert_int_equal(store_user_get(tx, "alice", &got), 0);
	assert_string_equal(got.roles, "[\"admin\"]");
	assert_int_equal(got.totp_last_step, 3);
	store_user_clear(&got);
	store_user_clear(NULL);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);
}

struct user_rows {
	char names[8][65];
	int n;
	bool blobs_seen;
	int stop_after;
};

static int user_list_cb(const struct store_user *u, void *userdata)
{
	struct user_rows *rows = userdata;

	if (rows->stop_after && rows->n == rows->stop_after)
		return -ECANCELED;
	if (u->mfa_key || u->totp_blob || u->mfa_key_len || u->totp_len || !u->phc || !u->roles)
		rows->blobs_seen = true;
	if (rows->n < 8)
		strcpy(rows->names[rows->n++], u->name);
	return 0;
}

static void test_user_list(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct user_rows rows = {0};
	uint8_t key[8] = "keykeyk";
	struct store_user u = { .phc = (char *)PHC, .roles = (char *)"[]", .mfa_key = key,
				.mfa_key_len = sizeof(key), .totp_blob = key, .totp_len = sizeof(key) };

	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_user_list(tx, user_list_cb, &rows), 0);
	assert_int_equal(store_user_list(tx, NULL, &rows), -EINVAL);
	strcpy(u.name, "carol");
	assert_int_equal(store_user_put(tx, &u), 0);
	strcpy(u.name, "alice");
	assert_int_equal(store_user_put(tx, &u), 0);
	strcpy(u.name, "bob");
	assert_int_equal(store_user_put(tx, &u), 0);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_user_list(tx, user_list_cb, &rows), 3);
	assert_false(rows.blobs_seen);
	assert_string_equal(rows.names[0], "alice");
	assert_string_equal(rows.names[1], "bob");
	assert_string_equal(rows.names[2], "carol");
	memset(&rows, 0, sizeof(rows));
	rows.stop_after = 2;
	assert_int_equal(store_user_list(tx, user_list_cb, &rows), -ECANCELED);
	assert_int_equal(rows.n, 2);
}

static void test_role_counting(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct store_service svc = { .uid = 500, .roles = (char *)"[\"admin\",\"ops\"]" };

	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_user_count_with_role(tx, "admin"), 0);
	assert_int_equal(add_user(tx, "alice", "[\"admin\"]"), 0);
	assert_int_equal(add_user(tx, "bob", "[\"admins\"]"), 0);
	assert_int_equal(add_user(tx, "carol", "[\"auditor\",\"admin\"]"), 0);
	assert_int_equal(add_user(tx, "dave", "[]"), 0);
	assert_int_equal(add_user(tx, "erin", "[\"x.admin\",\"adm\",\"Admin\"]"), 0);
	/* Not strings, or nested: never a role. */
	assert_int_equal(add_user(tx, "frank", "[1,[\"admin\"],{\"admin\":\"admin\"}]"), 0);
	assert_int_equal(add_user(tx, "gina", "[\"admin\",\"admin\"]"), 0);   /* counted once */
	strcpy(svc.name, "backup");
	assert_int_equal(store_service_put(tx, &svc), 0);

	assert_int_equal(store_user_count_with_role(tx, "admin"), 3);
	assert_int_equal(store_user_count_with_role(tx, "admins"), 1);
	assert_int_equal(store_user_count_with_role(tx, "adm"), 1);
	assert_int_equal(store_user_count_with_role(tx, "Admin"), 1);
	assert_int_equal(store_user_count_with_role(tx, "admi"), 0);
	assert_int_equal(store_user_count_with_role(tx, "1"), 0);
	assert_int_equal(store_user_count_with_role(tx, ""), 0);
	assert_int_equal(store_user_count_with_role(tx, NULL), -EINVAL);
	assert_int_equal(store_role_refs(tx, "admin"), 4);
	assert_int_equal(store_role_refs(tx, "ops"), 1);
	assert_int_equal(store_role_refs(tx, "admins"), 1);
	assert_int_equal(store_role_refs(tx, "none"), 0);
	assert_int_equal(store_role_refs(tx, NULL), -EINVAL);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);

	/* Also on a reader. */
	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_user_count_with_role(tx, "admin"), 3);
	assert_int_equal(store_role_refs(tx, "admin"), 4);
}

static void test_totp_step(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct store_user u = { .phc = (char *)PHC, .roles = (char *)"[]",
				.mfa_state = STORE_MFA_PENDING, .created_at = 1, .updated_at = 1 };
	struct store_user got = {0};

	strcpy(u.name, "alice");
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_user_put(tx, &u), 0);
	assert_int_equal(store_user_use_totp_step(tx, "alice", 0), -EALREADY);
	assert_int_equal(store_user_use_totp_step(tx, "alice", 5), 0);
	assert_int_equal(store_user_get(tx, "alice", &got), 0);
	assert_int_equal(got.totp_last_step, 5);
	assert_int_equal(got.mfa_state, STORE_MFA_ACTIVE);
	assert_true(got.updated_at > 1600000000);       /* enrolment completed now */
	store_user_clear(&got);

	assert_int_equal(store_user_use_totp_step(tx, "alice", 5), -EALREADY);
	assert_int_equal(store_user_use_totp_step(tx, "alice", 4), -EALREADY);
	assert_int_equal(store_user_use_totp_step(tx, "alice", 6), 0);
	assert_int_equal(store_user_use_totp_step(tx, "bob", 7), -ENOENT);
	assert_int_equal(store_user_use_totp_step(tx, "alice", (uint64_t)INT64_MAX + 1), -EINVAL);
	assert_int_equal(store_user_use_totp_step(tx, NULL, 9), -EINVAL);
	assert_int_equal(store_user_get(tx, "alice", &got), 0);
	assert_int_equal(got.totp_last_step, 6);
	assert_int_equal(got.mfa_state, STORE_MFA_ACTIVE);
	store_user_clear(&got);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_user_use_totp_step(tx, "alice", 100), -EINVAL);
}

static void test_recovery_codes(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	char h[4][65], bad[2][65];

	hash_of(h[0], 'a');
	hash_of(h[1], 'b');
	hash_of(h[2], 'c');
	hash_of(h[3], '0');
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_recovery_set(tx, "alice", (const char(*)[65])h, 3), -ENOENT);
	assert_int_equal(add_user(tx, "alice", "[]"), 0);
	assert_int_equal(add_user(tx, "bob", "[]"), 0);
	assert_int_equal(store_recovery_count(tx, "alice"), 0);
	assert_int_equal(store_recovery_set(tx, "alice", (const char(*)[65])h, 3), 0);
	assert_int_equal(store_recovery_set(tx, "bob", (const char(*)[65])h, 2), 0);
	assert_int_equal(store_recovery_count(tx, "alice"), 3);
	assert_int_equal(store_recovery_consume(tx, "alice", h[1]), 0);
	assert_int_equal(store_recovery_consume(tx, "alice", h[1]), -ENOENT);    /* one use */
	assert_int_equal(store_recovery_consume(tx, "alice", h[3]), -ENOENT);
	assert_int_equal(store_recovery_consume(tx, "carol", h[0]), -ENOENT);
	assert_int_equal(store_recovery_count(tx, "alice"), 2);
	assert_int_equal(store_recovery_count(tx, "bob"), 2);          /* per user */

	/* Replacement drops the old set. */
	assert_int_equal(store_recovery_set(tx, "alice", (const char(*)[65])&h[2], 2), 0);
	assert_int_equal(store_recovery_count(tx, "alice"), 2);
	assert_int_equal(store_recovery_consume(tx, "alice", h[0]), -ENOENT);
	assert_int_equal(store_recovery_consume(tx, "alice", h[3]), 0);

	/* Bad hashes: -EINVAL before anything is deleted. */
	hash_of(bad[0], 'd');
	hash_of(bad[1], 'A');
	assert_int_equal(store_recovery_set(tx, "alice", (const char(*)[65])bad, 2), -EINVAL);
	bad[1][0] = 'g';
	memset(bad[1] + 1, 'e', 63);
	assert_int_equal(store_recovery_set(tx, "alice", (const char(*)[65])bad, 2), -EINVAL);
	hash_of(bad[1], 'e');
	bad[1][63] = 0;                                 /* 63 digits */
	assert_int_equal(store_recovery_set(tx, "alice", (const char(*)[65])bad, 2), -EINVAL);
	assert_int_equal(store_recovery_set(tx, "alice", NULL, 1), -EINVAL);
	assert_int_equal(store_recovery_set(tx, NULL, (const char(*)[65])h, 1), -EINVAL);
	assert_int_equal(store_recovery_count(tx, "alice"), 1);
	/* A duplicate within the set: -EEXIST, and the savepoint puts the old
	 * codes back. */
	hash_of(bad[1], 'd');
	assert_int_equal(store_recovery_set(tx, "alice", (const char(*)[65])bad, 2), -EEXIST);
	assert_int_equal(store_recovery_count(tx, "alice"), 1);
	assert_int_equal(store_recovery_consume(tx, "alice", h[2]), 0);
	/* n = 0 clears. */
	assert_int_equal(store_recovery_set(tx, "bob", NULL, 0), 0);
	assert_int_equal(store_recovery_count(tx, "bob"), 0);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_recovery_count(tx, "nobody"), 0);
	assert_int_equal(store_recovery_set(tx, "alice", (const char(*)[65])h, 1), -EINVAL);
	assert_int_equal(store_recovery_consume(tx, "alice", h[0]), -EINVAL);
}

static void test_tokens(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct store_token t = { .uid = UINT32_MAX, .created_at = 10, .expires_at = 100 }, got, bad;

	hash_of(t.hash, '1');
	strcpy(t.user, "alice");
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_token_put(tx, &t), -ENOENT);    /* no such user */
	assert_int_equal(add_user(tx, "alice", "[]"), 0);
	assert_int_equal(add_user(tx, "bob", "[]"), 0);
	assert_int_equal(store_token_put(tx, &t), 0);
	assert_int_equal(store_token_put(tx, &t), -EEXIST);
	assert_int_equal(store_token_get(tx, t.hash, &got), 0);
	assert_string_equal(got.hash, t.hash);
	assert_string_equal(got.user, "alice");
	assert_true(got.uid == UINT32_MAX);
	assert_int_equal(got.created_at, 10);
	assert_int_equal(got.expires_at, 100);
	bad = t;
	bad.hash[0] = 'X';
	assert_int_equal(store_token_put(tx, &bad), -EINVAL);
	bad = t;
	bad.hash[10] = 0;
	assert_int_equal(store_token_put(tx, &bad), -EINVAL);
	bad = t;
	bad.user[0] = 0;
	assert_int_equal(store_token_put(tx, &bad), -EINVAL);
	assert_int_equal(store_token_put(tx, NULL), -EINVAL);

	/* Five more: alice 200, 300; bob 100, 150, 400. */
	hash_of(t.hash, '2');
	t.expires_at = 200;
	assert_int_equal(store_token_put(tx, &t), 0);
	hash_of(t.hash, '3');
	t.expires_at = 300;
	assert_int_equal(store_token_put(tx, &t), 0);
	strcpy(t.user, "bob");
	t.uid = 0;
	hash_of(t.hash, '4');
	t.expires_at = 100;
	assert_int_equal(store_token_put(tx, &t), 0);
	hash_of(t.hash, '5');
	t.expires_at = 150;
	assert_int_equal(store_token_put(tx, &t), 0);
	hash_of(t.hash, '6');
	t.expires_at = 400;
	assert_int_equal(store_token_put(tx, &t), 0);

	/* Purge takes expires_at <= now. */
	assert_int_equal(store_token_purge_expired(tx, 99), 0);
	assert_int_equal(store_token_purge_expired(tx, 100), 2);
	hash_of(t.hash, '1');
	assert_int_equal(store_token_get(tx, t.hash, &got), -ENOENT);
	hash_of(t.hash, '5');
	assert_int_equal(store_token_delete(tx, t.hash), 0);
	assert_int_equal(store_token_delete(tx, t.hash), -ENOENT);
	assert_int_equal(store_token_delete(tx, NULL), -EINVAL);
	assert_int_equal(store_token_delete_user(tx, "alice"), 2);
	assert_int_equal(store_token_delete_user(tx, "alice"), 0);
	assert_int_equal(store_token_delete_user(tx, "nobody"), 0);
	hash_of(t.hash, '6');
	assert_int_equal(store_token_get(tx, t.hash, &got), 0);
	assert_int_equal(got.uid, 0);
	assert_int_equal(store_token_delete_all(tx), 1);
	assert_int_equal(store_token_delete_all(tx), 0);
	assert_int_equal(store_token_get(tx, t.hash, &got), -ENOENT);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_token_put(tx, &t), -EINVAL);
	assert_int_equal(store_token_delete(tx, t.hash), -EINVAL);
	assert_int_equal(store_token_delete_user(tx, "bob"), -EINVAL);
	assert_int_equal(store_token_delete_all(tx), -EINVAL);
	assert_int_equal(store_token_purge_expired(tx, 1000), -EINVAL);
	assert_int_equal(store_token_get(tx, t.hash, &got), -ENOENT);
}

static void test_user_delete_cascades(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct store_token t = { .uid = 1000, .created_at = 1, .expires_at = 1000 }, got;
	char h[2][65];

	hash_of(h[0], 'a');
	hash_of(h[1], 'b');
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(add_user(tx, "alice", "[]"), 0);
	assert_int_equal(add_user(tx, "bob", "[]"), 0);
	assert_int_equal(store_recovery_set(tx, "alice", (const char(*)[65])h, 2), 0);
	assert_int_equal(store_recovery_set(tx, "bob", (const char(*)[65])h, 1), 0);
	strcpy(t.user, "alice");
	hash_of(t.hash, '1');
	assert_int_equal(store_token_put(tx, &t), 0);
	hash_of(t.hash, '2');
	assert_int_equal(store_token_put(tx, &t), 0);
	strcpy(t.user, "bob");
	hash_of(t.hash, '3');
	assert_int_equal(store_token_put(tx, &t), 0);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);

	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_user_delete(tx, "alice"), 0);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_recovery_count(tx, "alice"), 0);
	assert_int_equal(store_recovery_count(tx, "bob"), 1);
	hash_of(t.hash, '1');
	assert_int_equal(store_token_get(tx, t.hash, &got), -ENOENT);
	hash_of(t.hash, '2');
	assert_int_equal(store_token_get(tx, t.hash, &got), -ENOENT);
	hash_of(t.hash, '3');
	assert_int_equal(store_token_get(tx, t.hash, &got), 0);
	assert_string_equal(got.user, "bob");
	store_tx_end(TAKE_PTR(tx));
	/* A re-created alice starts clean. */
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(add_user(tx, "alice", "[]"), 0);
	assert_int_equal(store_recovery_count(tx, "alice"), 0);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);
}

struct role_rows {
	char names[4][65];
	int n;
};

static int role_list_cb(const struct store_role *r, void *userdata)
{
	struct role_rows *rows = userdata;

	if (rows->n < 4)
		strcpy(rows->names[rows->n++], r->name);
	return 0;
}

static void test_roles(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct store_role r = { .rules = (char *)"{\"rules\":[{\"path\":\"acme/*\",\"capabilities\":[\"read\"]}]}",
				.created_at = 5, .updated_at = 5 };
	struct store_role got = {0};
	struct role_rows rows = {0};

	strcpy(r.name, "reader");
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_role_get(tx, "reader", &got), -ENOENT);
	assert_int_equal(store_role_put(tx, &r), 0);
	r.rules = (char *)"{\"rules\":[]}";
	r.created_at = 50;
	r.updated_at = 60;
	assert_int_equal(store_role_put(tx, &r), 0);   /* upsert */
	strcpy(r.name, "auditor");
	assert_int_equal(store_role_put(tx, &r), 0);
	r.rules = (char *)"{\"rules\":";
	assert_int_equal(store_role_put(tx, &r), -EINVAL);
	r.rules = NULL;
	assert_int_equal(store_role_put(tx, &r), -EINVAL);
	r.rules = (char *)"{}";
	r.name[0] = 0;
	assert_int_equal(store_role_put(tx, &r), -EINVAL);
	assert_int_equal(store_role_get(tx, "reader", &got), 0);
	assert_string_equal(got.name, "reader");
	assert_string_equal(got.rules, "{\"rules\":[]}");
	assert_int_equal(got.created_at, 5);
	assert_int_equal(got.updated_at, 60);
	store_role_clear(&got);
	store_role_clear(NULL);
	assert_int_equal(store_role_list(tx, role_list_cb, &rows), 2);
	assert_string_equal(rows.names[0], "auditor");
	assert_string_equal(rows.names[1], "reader");
	assert_int_equal(store_role_list(tx, NULL, NULL), -EINVAL);
	assert_int_equal(store_role_delete(tx, "auditor"), 0);
	assert_int_equal(store_role_delete(tx, "auditor"), -ENOENT);
	assert_int_equal(store_role_get(tx, "auditor", &got), -ENOENT);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	strcpy(r.name, "x");
	assert_int_equal(store_role_put(tx, &r), -EINVAL);
	assert_int_equal(store_role_delete(tx, "reader"), -EINVAL);
	assert_int_equal(store_role_get(tx, "reader", &got), 0);
	store_role_clear(&got);
}

struct service_rows {
	char names[4][65];
	uint32_t uids[4];
	int n;
};

static int service_list_cb(const struct store_service *s, void *userdata)
{
	struct service_rows *rows = userdata;

	if (rows->n < 4) {
		strcpy(rows->names[rows->n], s->name);
		rows->uids[rows->n++] = s->uid;
	}
	return 0;
}

static void test_services(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct store_service a = { .uid = 1000, .roles = (char *)"[\"ops\"]", .created_at = 5,
				   .updated_at = 5 };
	struct store_service b = { .uid = 1000, .roles = (char *)"[\"backup\"]", .created_at = 7,
				   .updated_at = 7 };
	struct store_service got = {0};
	struct service_rows rows = {0};

	strcpy(a.name, "alpha");
	strcpy(b.name, "beta");
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_service_get(tx, "alpha", &got), -ENOENT);
	assert_int_equal(store_service_get_by_uid(tx, 1000, &got), -ENOENT);
	assert_int_equal(store_service_put(tx, &a), 0);
	/* The uid belongs to alpha: refused, nothing written. */
	assert_int_equal(store_service_put(tx, &b), -EEXIST);
	assert_int_equal(store_service_get(tx, "beta", &got), -ENOENT);
	assert_int_equal(store_service_get_by_uid(tx, 1000, &got), 0);
	assert_string_equal(got.name, "alpha");
	assert_string_equal(got.roles, "[\"ops\"]");
	store_service_clear(&got);

	/* Moving alpha to another uid frees 1000 for beta. */
	a.uid = 1001;
	a.created_at = 99;
	a.updated_at = 9;
	assert_int_equal(store_service_put(tx, &a), 0);
	assert_int_equal(store_service_put(tx, &b), 0);
	assert_int_equal(store_service_get(tx, "alpha", &got), 0);
	assert_int_equal(got.uid, 1001);
	assert_int_equal(got.created_at, 5);
	assert_int_equal(got.updated_at, 9);
	store_service_clear(&got);
	/* beta onto alpha's uid: -EEXIST, beta unchanged. */
	b.uid = 1001;
	b.roles = (char *)"[\"other\"]";
	assert_int_equal(store_service_put(tx, &b), -EEXIST);
	assert_int_equal(store_service_get(tx, "beta", &got), 0);
	assert_int_equal(got.uid, 1000);
	assert_string_equal(got.roles, "[\"backup\"]");
	store_service_clear(&got);

	b.uid = UINT32_MAX;
	assert_int_equal(store_service_put(tx, &b), 0);
	assert_int_equal(store_service_get_by_uid(tx, UINT32_MAX, &got), 0);
	assert_string_equal(got.name, "beta");
	assert_true(got.uid == UINT32_MAX);
	store_service_clear(&got);
	assert_int_equal(store_service_get_by_uid(tx, 1000, &got), -ENOENT);

	b.roles = (char *)"\"ops\"";
	assert_int_equal(store_service_put(tx, &b), -EINVAL);
	b.roles = NULL;
	assert_int_equal(store_service_put(tx, &b), -EINVAL);
	assert_int_equal(store_service_put(tx, NULL), -EINVAL);
	assert_int_equal(store_service_get(tx, NULL, &got), -EINVAL);

	assert_int_equal(store_service_list(tx, service_list_cb, &rows), 2);
	assert_string_equal(rows.names[0], "alpha");
	assert_int_equal(rows.uids[0], 1001);
	assert_string_equal(rows.names[1], "beta");
	assert_int_equal(store_service_list(tx, NULL, NULL), -EINVAL);
	assert_int_equal(store_service_delete(tx, "alpha"), 0);
	assert_int_equal(store_service_delete(tx, "alpha"), -ENOENT);
	assert_int_equal(store_service_get_by_uid(tx, 1001, &got), -ENOENT);
	store_service_clear(NULL);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	b.roles = (char *)"[]";
	assert_int_equal(store_service_put(tx, &b), -EINVAL);
	assert_int_equal(store_service_delete(tx, "beta"), -EINVAL);
	assert_int_equal(store_service_get(tx, "beta", &got), 0);
	store_service_clear(&got);
}

static void test_failures(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct store_failure r = {0}, got = {0};
	const char *k = "user:alice", *k2 = "uid:1000";

	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_failure_get(tx, k, &got), -ENOENT);
	/* window 60, max 3, lockout 300 */
	assert_int_equal(store_failure_record(tx, k, 100, 60, 3, 300, &r), 0);
	assert_int_equal(r.count, 1);
	assert_int_equal(r.window_start, 100);
	assert_int_equal(r.locked_until, 0);
	assert_int_equal(store_failure_record(tx, k, 110, 60, 3, 300, &r), 0);
	assert_int_equal(r.count, 2);
	assert_int_equal(r.window_start, 100);
	assert_int_equal(r.locked_until, 0);
	assert_int_equal(store_failure_record(tx, k, 120, 60, 3, 300, &r), 0);
	assert_int_equal(r.count, 3);                   /* reaches max: locked */
	assert_int_equal(r.locked_until, 420);
	assert_int_equal(store_failure_get(tx, k, &got), 0);
	assert_memory_equal(&got, &r, sizeof(r));
	assert_int_equal(store_failure_record(tx, k, 130, 60, 3, 300, &r), 0);
	assert_int_equal(r.count, 4);
	assert_int_equal(r.locked_until, 430);
	/* Exactly 'window' seconds after the start: a new window, and the
	 * lock is kept. */
	assert_int_equal(store_failure_record(tx, k, 160, 60, 3, 300, &r), 0);
	assert_int_equal(r.count, 1);
	assert_int_equal(r.window_start, 160);
	assert_int_equal(r.locked_until, 430);
	/* A later lock with a shorter lockout does not shorten it. */
	assert_int_equal(store_failure_record(tx, k, 161, 60, 3, 5, &r), 0);
	assert_int_equal(store_failure_record(tx, k, 162, 60, 3, 5, &r), 0);
	assert_int_equal(r.count, 3);
	assert_int_equal(r.locked_until, 430);
	/* A window start in the future (clock stepped back) restarts. */
	assert_int_equal(store_failure_record(tx, k, 50, 60, 3, 5, &r), 0);
	assert_int_equal(r.count, 1);
	assert_int_equal(r.window_start, 50);
	assert_int_equal(r.locked_until, 430);

	/* max 1: the first failure locks; keys are independent. */
	assert_int_equal(store_failure_record(tx, k2, 1000, 10, 1, 60, NULL), 0);
	assert_int_equal(store_failure_get(tx, k2, &got), 0);
	assert_int_equal(got.count, 1);
	assert_int_equal(got.locked_until, 1060);

	assert_int_equal(store_failure_record(tx, k, 1, 0, 3, 5, &r), -EINVAL);
	assert_int_equal(store_failure_record(tx, k, 1, 60, 0, 5, &r), -EINVAL);
	assert_int_equal(store_failure_record(tx, k, 1, 60, 3, -1, &r), -EINVAL);
	assert_int_equal(store_failure_record(tx, k, INT64_MAX, 60, 3, 5, &r), -EINVAL);
	assert_int_equal(store_failure_record(tx, "", 1, 60, 3, 5, &r), -EINVAL);
	assert_int_equal(store_failure_record(tx, NULL, 1, 60, 3, 5, &r), -EINVAL);
	assert_int_equal(store_failure_get(tx, k, &got), 0);
	assert_int_equal(got.count, 1);                 /* refused calls changed nothing */

	assert_int_equal(store_failure_clear(tx, k), 0);
	assert_int_equal(store_failure_clear(tx, k), 0);
	assert_int_equal(store_failure_get(tx, k, &got), -ENOENT);
	assert_int_equal(store_failure_get(tx, k2, &got), 0);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_failure_get(tx, k2, &got), 0);
	assert_int_equal(store_failure_record(tx, k2, 2000, 10, 3, 5, &r), -EINVAL);
	assert_int_equal(store_failure_clear(tx, k2), -EINVAL);
}

static void test_identity_writes_refuse_read_tx(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct store_user u = { .phc = (char *)PHC, .roles = (char *)"[]" };
	struct store_role role = { .rules = (char *)"{}" };
	struct store_service svc = { .uid = 1, .roles = (char *)"[]" };

	strcpy(u.name, "alice");
	strcpy(role.name, "r");
	strcpy(svc.name, "s");
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_user_put(tx, &u), 0);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_user_put(tx, &u), -EINVAL);
	assert_int_equal(store_user_delete(tx, "alice"), -EINVAL);
	assert_int_equal(store_user_use_totp_step(tx, "alice", 1), -EINVAL);
	assert_int_equal(store_role_put(tx, &role), -EINVAL);
	assert_int_equal(store_service_put(tx, &svc), -EINVAL);
	assert_int_equal(store_recovery_set(tx, "alice", NULL, 0), -EINVAL);
	store_tx_end(TAKE_PTR(tx));
	/* Refusals left the reader usable and the data untouched. */
	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_user_count(tx), 1);
}

/* --- audit --- */

static struct store_audit audit_rec(int64_t id, int64_t time, const char *principal,
				    const char *action, const char *path, const char *result)
{
	struct store_audit a = { .id = id, .time = time, .uid = 1000 + (uint32_t)id,
				 .pid = -(int32_t)id, .status = 200, .path = (char *)path };

	snprintf(a.principal, sizeof(a.principal), "%s", principal);
	snprintf(a.action, sizeof(a.action), "%s", action);
	snprintf(a.result, sizeof(a.result), "%s", result);
	snprintf(a.request_id, sizeof(a.request_id), "req-%lld", (long long)id);
	/* Binary, with NUL bytes: a blob, never text. */
	for (size_t i = 0; i < sizeof(a.hash); i++)
		a.hash[i] = (uint8_t)(i * 7 + (size_t)id) * (i % 3 != 0);
	return a;
}

static int audit_append_one(struct store *s, const struct store_audit *a)
{
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	int r;

	if ((r = store_write_begin(s, &tx)) < 0 || (r = store_audit_append(tx, a)) < 0)
		return r;
	return store_write_commit(TAKE_PTR(tx));
}

struct audit_ids {
	int64_t ids[32];
	int n;
	int stop_after;         /* 0 = never */
};

static int audit_ids_cb(const struct store_audit *a, void *userdata)
{
	struct audit_ids *x = userdata;

	if (x->n >= (int)ELEMENTSOF(x->ids))
		return -ENOSPC;
	x->ids[x->n++] = a->id;
	if (x->stop_after && x->n == x->stop_after)
		return -ECANCELED;
	return 0;
}

static void assert_ids(const struct audit_ids *x, const int64_t *want, int n)
{
	assert_int_equal(x->n, n);
	for (int i = 0; i < n; i++)
		assert_int_equal(x->ids[i], want[i]);
}

static int audit_count(struct store *s)
{
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct audit_ids x = {0};
	int r;

	if ((r = store_read_begin(s, &tx)) < 0)
		return r;
	return store_audit_iterate(tx, audit_ids_cb, &x);
}

static void test_audit_append_last(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct store_audit a, got = {0};

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_audit_last(tx, &got), -ENOENT);
	store_tx_end(TAKE_PTR(tx));

	/* The chain starts at 1. */
	a = audit_rec(2, 100, "user:alice", "secret.read", "acme/rmm", "allowed");
	assert_int_equal(audit_append_one(f->s, &a), -EEXIST);
	a = audit_rec(0, 100, "user:alice", "secret.read", "acme/rmm", "allowed");
	assert_int_equal(audit_append_one(f->s, &a), -EINVAL);

	a = audit_rec(1, 100, "user:alice", "secret.read", "acme/rmm", "allowed");
	strcpy(a.capability, "read");
	a.detail = (char *)"ok";
	assert_int_equal(audit_append_one(f->s, &a), 0);
	a = audit_rec(2, 101, "uid:1000", "sys.status", NULL, "denied");   /* no path, no detail */
	a.status = 403;
	assert_int_equal(audit_append_one(f->s, &a), 0);
	a = audit_rec(3, 102, "service:sync", "secret.write", "acme/x", "failed");
	a.pid = INT32_MIN;
	a.uid = UINT32_MAX;
	a.status = -1;
	a.detail = (char *)"kek missing";
	assert_int_equal(audit_append_one(f->s, &a), 0);

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_audit_last(tx, &got), 0);
	assert_int_equal(got.id, 3);
	assert_int_equal(got.time, 102);
	assert_string_equal(got.principal, "service:sync");
	assert_int_equal(got.uid, UINT32_MAX);
	assert_int_equal(got.pid, INT32_MIN);
	assert_string_equal(got.action, "secret.write");
	assert_string_equal(got.path, "acme/x");
	assert_string_equal(got.capability, "");
	assert_string_equal(got.result, "failed");
	assert_int_equal(got.status, -1);
	assert_string_equal(got.detail, "kek missing");
	assert_string_equal(got.request_id, "req-3");
	assert_memory_equal(got.hash, a.hash, sizeof(a.hash));
	store_audit_clear(&got);
	assert_null(got.path);
	store_audit_clear(&got);                /* twice is harmless */
	store_audit_clear(NULL);

	/* Appends refuse a read transaction. */
	a = audit_rec(4, 103, "user:alice", "secret.read", NULL, "allowed");
	assert_int_equal(store_audit_append(tx, &a), -EINVAL);
	store_tx_end(TAKE_PTR(tx));

	/* Wrong ids: -EEXIST, and nothing changed. */
	a = audit_rec(3, 103, "user:mallory", "secret.read", NULL, "allowed");
	assert_int_equal(audit_append_one(f->s, &a), -EEXIST);
	a.id = 5;
	assert_int_equal(audit_append_one(f->s, &a), -EEXIST);
	a.id = 2;
	assert_int_equal(audit_append_one(f->s, &a), -EEXIST);
	assert_int_equal(audit_count(f->s), 3);

	/* Bad fields. */
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	a = audit_rec(4, 103, "user:alice", "secret.read", NULL, "allowed");
	strcpy(a.result, "ALLOWED");
	assert_int_equal(store_audit_append(tx, &a), -EINVAL);
	strcpy(a.result, "");
	assert_int_equal(store_audit_append(tx, &a), -EINVAL);
	a = audit_rec(4, 103, "", "secret.read", NULL, "allowed");
	assert_int_equal(store_audit_append(tx, &a), -EINVAL);
	a = audit_rec(4, 103, "user:alice", "", NULL, "allowed");
	assert_int_equal(store_audit_append(tx, &a), -EINVAL);
	a = audit_rec(4, 103, "user:alice", "secret.read", NULL, "allowed");
	memset(a.principal, 'p', sizeof(a.principal));          /* no NUL inside */
	assert_int_equal(store_audit_append(tx, &a), -EINVAL);
	a = audit_rec(4, 103, "user:alice", "secret.read", NULL, "allowed");
	memset(a.capability, 'c', sizeof(a.capability));
	assert_int_equal(store_audit_append(tx, &a), -EINVAL);
	a = audit_rec(4, 103, "user:alice", "secret.read", NULL, "allowed");
	memset(a.request_id, 'r', sizeof(a.request_id));
	assert_int_equal(store_audit_append(tx, &a), -EINVAL);
	a = audit_rec(4, 103, "user:alice", "secret.read", NULL, "allowed");
	memset(a.action, 'a', sizeof(a.action));
	assert_int_equal(store_audit_append(tx, &a), -EINVAL);
	assert_int_equal(store_audit_append(tx, NULL), -EINVAL);
	assert_int_equal(store_audit_append(NULL, &a), -EINVAL);
	/* The longest values that fit are taken. */
	a = audit_rec(4, 103, "user:alice", "secret.read", NULL, "allowed");
	memset(a.principal, 'p', sizeof(a.principal) - 1);
	memset(a.action, 'a', sizeof(a.action) - 1);
	memset(a.capability, 'c', sizeof(a.capability) - 1);
	memset(a.request_id, 'r', sizeof(a.request_id) - 1);
	assert_int_equal(store_audit_append(tx, &a), 0);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_audit_last(tx, &got), 0);
	assert_int_equal(got.id, 4);
	assert_memory_equal(got.principal, a.principal, sizeof(a.principal));
	assert_memory_equal(got.request_id, a.request_id, sizeof(a.request_id));
	store_audit_clear(&got);
	assert_int_equal(store_audit_last(tx, NULL), -EINVAL);
	store_tx_end(TAKE_PTR(tx));

	/* A write transaction sees its own append, and rollback undoes it. */
	{
		_cleanup_(store_tx_endp) struct store_tx *w = NULL;

		assert_int_equal(store_write_begin(f->s, &w), 0);
		a = audit_rec(5, 104, "user:alice", "secret.read", NULL, "allowed");
		assert_int_equal(store_audit_append(w, &a), 0);
		assert_int_equal(store_audit_last(w, &got), 0);
		assert_int_equal(got.id, 5);
		store_audit_clear(&got);
	}
	assert_int_equal(audit_count(f->s), 4);

	/* Survives a reopen. */
	store_close(f->s);
	f->s = NULL;
	assert_int_equal(store_open(f->path, 1, &f->s), 0);
	assert_int_equal(audit_count(f->s), 4);
}

static void test_audit_null_fields_and_hash(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct store_audit a = audit_rec(1, 5, "uid:0", "sys.unlock", NULL, "allowed"), got = {0};

	memset(a.hash, 0, sizeof(a.hash));      /* all zero, still 32 bytes */
	assert_int_equal(audit_append_one(f->s, &a), 0);
	a = audit_rec(2, 6, "uid:0", "sys.lock", "", "allowed");
	memset(a.hash, 0xff, sizeof(a.hash));
	a.detail = (char *)"";
	assert_int_equal(audit_append_one(f->s, &a), 0);

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	{
		struct audit_ids x = {0};

		assert_int_equal(store_audit_iterate(tx, audit_ids_cb, &x), 2);
	}
	assert_int_equal(store_audit_last(tx, &got), 0);
	/* Empty strings stay empty strings, not NULL. */
	assert_non_null(got.path);
	assert_string_equal(got.path, "");
	assert_non_null(got.detail);
	assert_string_equal(got.detail, "");
	for (size_t i = 0; i < sizeof(got.hash); i++)
		assert_int_equal(got.hash[i], 0xff);
	store_audit_clear(&got);
	store_tx_end(TAKE_PTR(tx));

	/* The first record: NULL path and detail come back NULL. */
	assert_int_equal(store_read_begin(f->s, &tx), 0);
	{
		struct store_audit_filter q = { .limit = 1 };
		struct audit_ids x = {0};

		assert_int_equal(store_audit_query(tx, &q, audit_ids_cb, &x), 1);
		assert_int_equal(x.ids[0], 1);
	}
	store_tx_end(TAKE_PTR(tx));

	/* The schema itself refuses a hash of another length. */
	{
		sqlite3 *db = NULL;

		/* A second connection, outside the store (WAL allows it). */
		assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
		assert_int_not_equal(sqlite3_exec(db,
						  "INSERT INTO audit VALUES (3, 1, 'p', 0, 0, 'a', NULL, "
						  "'', 'allowed', 200, NULL, 'r', x'00')",
						  NULL, NULL, NULL),
				     SQLITE_OK);
		assert_int_not_equal(sqlite3_exec(db,
						  "INSERT INTO audit VALUES (3, 1, 'p', 0, 0, 'a', NULL, "
						  "'', 'maybe', 200, NULL, 'r', zeroblob(32))",
						  NULL, NULL, NULL),
				     SQLITE_OK);
		assert_int_equal(sqlite3_close(db), SQLITE_OK);
	}
}

/* Eight records for the query tests:
 *  id time principal      action        path              result */
static void audit_fill(struct store *s)
{
	static const struct {
		int64_t time;
		const char *principal, *action, *path, *result;
	} rows[] = {
		{ 100, "user:alice", "secret.read", "acme/rmm", "allowed" },             /* 1 */
		{ 110, "user:alice", "secret.read", "acme/rmm/db", "allowed" },          /* 2 */
		{ 120, "user:bob", "secret.read", "acme/rmm-old", "denied" },            /* 3 */
		{ 130, "user:bob", "secret.write", "acme/rmm", "denied" },               /* 4 */
		{ 140, "service:sync", "secret.write", "acme/rmmx/y", "failed" },        /* 5 */
		{ 150, "uid:1000", "sys.status", NULL, "allowed" },                      /* 6 */
		{ 160, "user:alice", "secret.write", "other/rmm", "allowed" },           /* 7 */
		{ 170, "user:alice", "secret.read", "acme/rmm/a/b", "failed" },          /* 8 */
	};
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;

	assert_int_equal(store_write_begin(s, &tx), 0);
	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		struct store_audit a = audit_rec((int64_t)i + 1, rows[i].time, rows[i].principal,
						 rows[i].action, rows[i].path, rows[i].result);

		assert_int_equal(store_audit_append(tx, &a), 0);
	}
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);
}

static int audit_query(struct store_tx *tx, const struct store_audit_filter *q, struct audit_ids *x)
{
	memset(x, 0, sizeof(*x));
	return store_audit_query(tx, q, audit_ids_cb, x);
}

#define QUERY_IS(q, ...)                                                                     \
	do {                                                                                 \
		const int64_t want_[] = { __VA_ARGS__ };                                     \
		struct audit_ids x_;                                                         \
		assert_int_equal(audit_query(tx, &(q), &x_), (int)ELEMENTSOF(want_));        \
		assert_ids(&x_, want_, (int)ELEMENTSOF(want_));                              \
	} while (0)

static void test_audit_query_filters(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct store_audit_filter q;
	struct audit_ids x;

	audit_fill(f->s);
	assert_int_equal(store_read_begin(f->s, &tx), 0);

	q = (struct store_audit_filter){ .limit = 100 };
	QUERY_IS(q, 1, 2, 3, 4, 5, 6, 7, 8);
	q = (struct store_audit_filter){ .limit = 100, .since = 120 };
	QUERY_IS(q, 3, 4, 5, 6, 7, 8);
	q = (struct store_audit_filter){ .limit = 100, .until = 120 };
	QUERY_IS(q, 1, 2, 3);
	q = (struct store_audit_filter){ .limit = 100, .since = 120, .until = 140 };   /* inclusive */
	QUERY_IS(q, 3, 4, 5);
	q = (struct store_audit_filter){ .limit = 100, .since = 141, .until = 149 };
	assert_int_equal(audit_query(tx, &q, &x), 0);
	q = (struct store_audit_filter){ .limit = 100, .principal = "user:alice" };
	QUERY_IS(q, 1, 2, 7, 8);
	q = (struct store_audit_filter){ .limit = 100, .principal = "user:%" };       /* no LIKE */
	assert_int_equal(audit_query(tx, &q, &x), 0);
	q = (struct store_audit_filter){ .limit = 100, .action = "secret.write" };
	QUERY_IS(q, 4, 5, 7);
	q = (struct store_audit_filter){ .limit = 100, .result = "denied" };
	QUERY_IS(q, 3, 4);
	q = (struct store_audit_filter){ .limit = 100, .result = "failed" };
	QUERY_IS(q, 5, 8);

	/* Path prefix: the path itself and below, on a segment boundary. */
	q = (struct store_audit_filter){ .limit = 100, .path_prefix = "acme/rmm" };
	QUERY_IS(q, 1, 2, 4, 8);
	q = (struct store_audit_filter){ .limit = 100, .path_prefix = "acme/rmm-old" };
	QUERY_IS(q, 3);
	q = (struct store_audit_filter){ .limit = 100, .path_prefix = "acme/rmm/a" };
	QUERY_IS(q, 8);
	q = (struct store_audit_filter){ .limit = 100, .path_prefix = "acme" };
	QUERY_IS(q, 1, 2, 3, 4, 5, 8);
	q = (struct store_audit_filter){ .limit = 100, .path_prefix = "acme/rm" };
	assert_int_equal(audit_query(tx, &q, &x), 0);
	q = (struct store_audit_filter){ .limit = 100, .path_prefix = "acme/%" };
	assert_int_equal(audit_query(tx, &q, &x), 0);

	/* Combinations. */
	q = (struct store_audit_filter){ .limit = 100, .principal = "user:alice",
					 .path_prefix = "acme/rmm", .action = "secret.read" };
	QUERY_IS(q, 1, 2, 8);
	q = (struct store_audit_filter){ .limit = 100, .principal = "user:alice",
					 .path_prefix = "acme/rmm", .result = "failed" };
	QUERY_IS(q, 8);
	q = (struct store_audit_filter){ .limit = 100, .principal = "user:bob", .since = 125,
					 .action = "secret.write", .result = "denied" };
	QUERY_IS(q, 4);
	q = (struct store_audit_filter){ .limit = 100, .since = 110, .until = 160,
					 .principal = "user:alice", .descending = true };
	QUERY_IS(q, 7, 2);
	q = (struct store_audit_filter){ .limit = 100, .principal = "user:alice", .after_id = 2,
					 .path_prefix = "acme" };
	QUERY_IS(q, 8);

	/* cb stops the walk with its own value. */
	q = (struct store_audit_filter){ .limit = 100 };
	memset(&x, 0, sizeof(x));
	x.stop_after = 2;
	assert_int_equal(store_audit_query(tx, &q, audit_ids_cb, &x), -ECANCELED);
	assert_int_equal(x.n, 2);
}

static void test_audit_query_paging_and_limits(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct store_audit_filter q;
	struct audit_ids x;
	int64_t seen[8];
	int n_seen = 0;

	audit_fill(f->s);
	assert_int_equal(store_read_begin(f->s, &tx), 0);

	q = (struct store_audit_filter){ .limit = 3 };
	QUERY_IS(q, 1, 2, 3);
	q.after_id = 3;
	QUERY_IS(q, 4, 5, 6);
	q.after_id = 6;
	QUERY_IS(q, 7, 8);
	q.after_id = 8;
	assert_int_equal(audit_query(tx, &q, &x), 0);

	/* Tail: newest first, then page backwards with the last id seen. */
	q = (struct store_audit_filter){ .limit = 3, .descending = true };
	for (;;) {
		int r = audit_query(tx, &q, &x);

		assert_true(r >= 0);
		for (int i = 0; i < x.n; i++)
			seen[n_seen++] = x.ids[i];
		if (r < (int)q.limit)
			break;
		q.after_id = x.ids[x.n - 1];
	}
	assert_int_equal(n_seen, 8);
	for (int i = 0; i < 8; i++)
		assert_int_equal(seen[i], 8 - i);
	q = (struct store_audit_filter){ .limit = 100, .descending = true, .after_id = 1 };
	assert_int_equal(audit_query(tx, &q, &x), 0);
	q = (struct store_audit_filter){ .limit = 2, .descending = true, .path_prefix = "acme/rmm",
					 .after_id = 8 };
	QUERY_IS(q, 4, 2);

	/* Limits and bad filters. */
	q = (struct store_audit_filter){ .limit = 1 };
	QUERY_IS(q, 1);
	q = (struct store_audit_filter){ .limit = 10000 };
	assert_int_equal(audit_query(tx, &q, &x), 8);
	q = (struct store_audit_filter){ .limit = 0 };
	assert_int_equal(audit_query(tx, &q, &x), -EINVAL);
	q = (struct store_audit_filter){ .limit = 10001 };
	assert_int_equal(audit_query(tx, &q, &x), -EINVAL);
	q = (struct store_audit_filter){ .limit = 10, .after_id = -1 };
	assert_int_equal(audit_query(tx, &q, &x), -EINVAL);
	q = (struct store_audit_filter){ .limit = 10, .path_prefix = "" };
	assert_int_equal(audit_query(tx, &q, &x), -EINVAL);
	q = (struct store_audit_filter){ .limit = 10, .result = "maybe" };
	assert_int_equal(audit_query(tx, &q, &x), -EINVAL);
	assert_int_equal(store_audit_query(tx, NULL, audit_ids_cb, &x), -EINVAL);
	q = (struct store_audit_filter){ .limit = 10 };
	assert_int_equal(store_audit_query(tx, &q, NULL, NULL), -EINVAL);
	assert_int_equal(store_audit_query(NULL, &q, audit_ids_cb, &x), -EINVAL);
}

static void test_audit_iterate(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct audit_ids x = {0};
	const int64_t want[] = { 1, 2, 3, 4, 5, 6, 7, 8 };

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_audit_iterate(tx, audit_ids_cb, &x), 0);
	store_tx_end(TAKE_PTR(tx));

	audit_fill(f->s);
	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_audit_iterate(tx, audit_ids_cb, &x), 8);
	assert_ids(&x, want, 8);
	memset(&x, 0, sizeof(x));
	x.stop_after = 3;
	assert_int_equal(store_audit_iterate(tx, audit_ids_cb, &x), -ECANCELED);
	assert_int_equal(store_audit_iterate(tx, NULL, NULL), -EINVAL);
	store_tx_end(TAKE_PTR(tx));

	/* A write transaction iterates too (verification under the writer). */
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	memset(&x, 0, sizeof(x));
	assert_int_equal(store_audit_iterate(tx, audit_ids_cb, &x), 8);
}

/* --- migration 4: staging, pruning, rotation support --- */

/* Writes version of path under KEK version kek; blobs derived from both. */
static void blobs_for(const char *path, uint32_t version, uint8_t dek[24], uint8_t data[40])
{
	snprintf((char *)dek, 24, "D:%s:%u", path, version);
	snprintf((char *)data, 40, "X:%s:%u", path, version);
}

static int put_kek_version(struct store *s, const char *path, uint32_t version, uint32_t kek)
{
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	uint8_t dek[24] = {0}, data[40] = {0};
	struct store_version v = { .version = version, .kek_version = kek, .dek_blob = dek,
				   .dek_len = sizeof(dek), .data_blob = data,
				   .data_len = sizeof(data), .created_at = 1000 + version };
	char tenant[65];
	const char *slash = strchr(path, '/');
	int r;

	blobs_for(path, version, dek, data);
	snprintf(tenant, sizeof(tenant), "%.*s", slash ? (int)(slash - path) : 0, path);
	if ((r = store_write_begin(s, &tx)) < 0 ||
	    (r = store_secret_put_version(tx, path, tenant, "generic", NULL, &v)) < 0)
		return r;
	return store_write_commit(TAKE_PTR(tx));
}

static int put_pending(struct store *s, const char *path, uint32_t version, const char *metadata,
		       int64_t now)
{
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct store_version v = { .version = version, .kek_version = 1, .dek_blob = dek_bytes,
				   .dek_len = sizeof(dek_bytes), .data_blob = data_bytes,
				   .data_len = sizeof(data_bytes), .created_at = now };
	int r;

	if ((r = store_write_begin(s, &tx)) < 0 ||
	    (r = store_secret_put_pending(tx, path, metadata, &v)) < 0)
		return r;
	return store_write_commit(TAKE_PTR(tx));
}

static int promote(struct store *s, const char *path, uint32_t version, int64_t now)
{
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	int r, n;

	if ((r = store_write_begin(s, &tx)) < 0)
		return r;
	if ((n = store_secret_promote(tx, path, version, now)) < 0)
		return n;
	if ((r = store_write_commit(TAKE_PTR(tx))) < 0)
		return r;
	return n;
}

static int prune(struct store *s, const char *path, unsigned keep)
{
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	int r, n;

	if ((r = store_write_begin(s, &tx)) < 0)
		return r;
	if ((n = store_secret_prune_versions(tx, path, keep)) < 0)
		return n;
	if ((r = store_write_commit(TAKE_PTR(tx))) < 0)
		return r;
	return n;
}

static void assert_head(struct store *s, const char *path, uint32_t current, uint32_t previous,
			uint32_t pending, uint32_t latest)
{
	struct store_secret h = {0};

	assert_int_equal(get_head(s, path, &h), 0);
	assert_int_equal(h.current_version, current);
	assert_int_equal(h.previous_version, previous);
	assert_int_equal(h.pending_version, pending);
	assert_int_equal(h.latest_version, latest);
	store_secret_clear(&h);
}

struct head_fields {
	uint32_t current, previous, pending;
};

static int head_fields_cb(const struct store_secret *s, void *userdata)
{
	struct head_fields *x = userdata;

	x->current = s->current_version;
	x->previous = s->previous_version;
	x->pending = s->pending_version;
	return 0;
}

static void test_pending_promote(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct store_version v = { .version = 1, .dek_blob = dek_bytes, .dek_len = 4,
				   .data_blob = data_bytes, .data_len = 4 };
	struct store_secret h = {0};
	struct head_fields hf = {0};

	/* put_version: previous_version is the current one it replaces. */
	assert_int_equal(put_version(f->s, "acme/p", 1, "generic", "{\"m\":0}", 10), 0);
	assert_head(f->s, "acme/p", 1, 0, 0, 1);
	assert_int_equal(put_version(f->s, "acme/p", 2, "generic", NULL, 20), 0);
	assert_head(f->s, "acme/p", 2, 1, 0, 2);

	/* Staged: current and previous stay, metadata as put_version's. */
	assert_int_equal(put_pending(f->s, "acme/p", 3, "{\"m\":1}", 30), 0);
	assert_int_equal(get_head(f->s, "acme/p", &h), 0);
	assert_int_equal(h.current_version, 2);
	assert_int_equal(h.previous_version, 1);
	assert_int_equal(h.pending_version, 3);
	assert_int_equal(h.latest_version, 3);
	assert_string_equal(h.metadata, "{\"m\":1}");
	assert_string_equal(h.type, "generic");
	assert_int_equal(h.created_at, 10);
	assert_int_equal(h.updated_at, 30);
	store_secret_clear(&h);
	assert_int_equal(put_pending(f->s, "acme/p", 3, NULL, 31), -EEXIST);
	assert_int_equal(put_pending(f->s, "acme/p", 5, NULL, 31), -EEXIST);
	assert_int_equal(put_pending(f->s, "acme/none", 1, NULL, 31), -ENOENT);

	/* A second stage replaces the pending one, which stays as an old version. */
	assert_int_equal(put_pending(f->s, "acme/p", 4, NULL, 40), 0);
	assert_head(f->s, "acme/p", 2, 1, 4, 4);
	assert_int_equal(get_head(f->s, "acme/p", &h), 0);
	assert_string_equal(h.metadata, "{\"m\":1}");       /* NULL kept it */
	store_secret_clear(&h);
	{
		struct store_version got = {0};

		assert_int_equal(store_read_begin(f->s, &tx), 0);
		assert_int_equal(store_version_get(tx, "acme/p", 3, &got), 0);
		assert_int_equal(got.created_at, 30);
		assert_non_null(got.data_blob);
		store_version_clear(&got);
		store_tx_end(TAKE_PTR(tx));
	}

	/* put_version keeps the pending version. */
	assert_int_equal(put_version(f->s, "acme/p", 5, "generic", NULL, 50), 0);
	assert_head(f->s, "acme/p", 5, 2, 4, 5);

	/* Promotion: only the pending version, once. */
	assert_int_equal(promote(f->s, "acme/p", 3, 60), -ESRCH);
	assert_int_equal(promote(f->s, "acme/p", 5, 60), -ESRCH);
	assert_head(f->s, "acme/p", 5, 2, 4, 5);
	assert_int_equal(promote(f->s, "acme/p", 4, 60), 4);
	assert_head(f->s, "acme/p", 4, 5, 0, 5);
	assert_int_equal(get_head(f->s, "acme/p", &h), 0);
	assert_int_equal(h.updated_at, 60);
	store_secret_clear(&h);
	assert_int_equal(promote(f->s, "acme/p", 0, 70), -ESRCH);
	assert_int_equal(promote(f->s, "acme/p", 4, 70), -ESRCH);
	assert_int_equal(promote(f->s, "acme/none", 0, 70), -ENOENT);
	/* Version 0 promotes whatever is pending. */
	assert_int_equal(put_pending(f->s, "acme/p", 6, NULL, 80), 0);
	assert_int_equal(promote(f->s, "acme/p", 0, 90), 6);
	assert_head(f->s, "acme/p", 6, 4, 0, 6);

	/* The listing carries the new fields too. */
	assert_int_equal(put_pending(f->s, "acme/p", 7, NULL, 95), 0);
	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_secret_list(tx, "acme", 0, head_fields_cb, &hf), 1);
	assert_int_equal(hf.current, 6);
	assert_int_equal(hf.previous, 4);
	assert_int_equal(hf.pending, 7);
	store_tx_end(TAKE_PTR(tx));

	/* A soft-deleted secret can be neither staged nor promoted. */
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_secret_soft_delete(tx, "acme/p", 100), 0);
	assert_int_equal(store_secret_promote(tx, "acme/p", 0, 101), -ENOENT);
	v.version = 8;
	assert_int_equal(store_secret_put_pending(tx, "acme/p", NULL, &v), -ENOENT);
	/* Bad arguments. */
	assert_int_equal(store_secret_put_pending(tx, NULL, NULL, &v), -EINVAL);
	assert_int_equal(store_secret_put_pending(tx, "acme/p", NULL, NULL), -EINVAL);
	v.dek_len = 0;
	assert_int_equal(store_secret_put_pending(tx, "acme/p", NULL, &v), -EINVAL);
	v.dek_len = 4;
	v.data_blob = NULL;
	assert_int_equal(store_secret_put_pending(tx, "acme/p", NULL, &v), -EINVAL);
	assert_int_equal(store_secret_promote(tx, NULL, 0, 1), -EINVAL);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);
	assert_head(f->s, "acme/p", 6, 4, 7, 7);

	/* Writes need a write transaction. */
	assert_int_equal(store_read_begin(f->s, &tx), 0);
	v.data_blob = data_bytes;
	assert_int_equal(store_secret_put_pending(tx, "acme/p", NULL, &v), -EINVAL);
	assert_int_equal(store_secret_promote(tx, "acme/p", 0, 1), -EINVAL);
	assert_int_equal(store_secret_prune_versions(tx, "acme/p", 1), -EINVAL);
}

static void test_prune_versions(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	static const size_t live = sizeof(data_bytes);
	struct store_version got = {0};
	struct vacc a = {0};

	assert_int_equal(put_version(f->s, "acme/o", 1, "generic", NULL, 1), 0);
	/* 1, 2 current in turn; 3 staged; 4..7 current in turn; then 3 promoted. */
	assert_int_equal(put_version(f->s, "acme/pr", 1, "generic", NULL, 1), 0);
	assert_int_equal(put_version(f->s, "acme/pr", 2, "generic", NULL, 2), 0);
	assert_int_equal(put_pending(f->s, "acme/pr", 3, NULL, 3), 0);
	for (uint32_t i = 4; i <= 7; i++)
		assert_int_equal(put_version(f->s, "acme/pr", i, "generic", NULL, i), 0);
	assert_int_equal(promote(f->s, "acme/pr", 3, 8), 3);
	assert_int_equal(put_pending(f->s, "acme/pr", 8, NULL, 9), 0);
	assert_head(f->s, "acme/pr", 3, 7, 8, 8);

	/* keep 1: the newest (8) stays, and so do current 3, previous 7 and
	 * pending 8. */
	assert_int_equal(prune(f->s, "acme/pr", 0), -EINVAL);
	assert_int_equal(prune(f->s, "acme/pr", 1), 5);
	assert_int_equal(prune(f->s, "acme/pr", 1), 0);     /* destroyed rows are not counted again */
	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_version_list(tx, "acme/pr", version_cb_any, &a), 8);
	for (int i = 0; i < 8; i++) {
		uint32_t ver = a.versions[i];
		bool kept = ver == 3 || ver == 7 || ver == 8;

		assert_int_equal(ver, (uint32_t)i + 1);
		assert_int_equal(a.lens[i], kept ? live : 0);
		assert_int_equal(a.dek_lens[i], kept ? sizeof(dek_bytes) : 0);
	}
	/* A destroyed version reads back with no blobs. */
	assert_int_equal(store_version_get(tx, "acme/pr", 1, &got), 0);
	assert_null(got.dek_blob);
	assert_null(got.data_blob);
	assert_int_equal(got.dek_len, 0);
	assert_int_equal(got.data_len, 0);
	assert_int_equal(got.created_at, 1);
	store_version_clear(&got);
	/* Other paths are untouched. */
	assert_int_equal(store_version_get(tx, "acme/o", 1, &got), 0);
	assert_non_null(got.data_blob);
	store_version_clear(&got);
	store_tx_end(TAKE_PTR(tx));

	/* The newest 'keep' are counted by number among all versions,
	 * destroyed ones included: keep 3 is {6, 7, 8}, 6 already destroyed. */
	assert_int_equal(promote(f->s, "acme/pr", 8, 10), 8);
	assert_head(f->s, "acme/pr", 8, 3, 0, 8);
	assert_int_equal(prune(f->s, "acme/pr", 3), 0);
	assert_int_equal(prune(f->s, "acme/pr", 1), 1);     /* 7 goes; 3 is previous */
	memset(&a, 0, sizeof(a));
	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_version_list(tx, "acme/pr", version_cb_any, &a), 8);
	assert_int_equal(a.lens[2], live);
	assert_int_equal(a.lens[6], 0);
	assert_int_equal(a.lens[7], live);
	store_tx_end(TAKE_PTR(tx));

	/* A large keep or an unknown path destroys nothing. */
	assert_int_equal(prune(f->s, "acme/o", 100), 0);
	assert_int_equal(prune(f->s, "acme/o", 1), 0);
	assert_int_equal(prune(f->s, "acme/none", 1), 0);
	assert_int_equal(store_integrity_check(f->s), 0);
}

/* What the batch readers pass: path, version, KEK version, blobs. */
struct vrows {
	char paths[16][32];
	uint32_t versions[16];
	uint32_t keks[16];
	int n;
	int stop_after;
};

static int vrow_cb(const char *path, const struct store_version *v, void *userdata)
{
	struct vrows *x = userdata;
	uint8_t dek[24] = {0}, data[40] = {0};

	/* Blobs are loaded, and they are the row's. */
	assert_non_null(v->dek_blob);
	assert_non_null(v->data_blob);
	blobs_for(path, v->version, dek, data);
	assert_int_equal(v->dek_len, sizeof(dek));
	assert_memory_equal(v->dek_blob, dek, sizeof(dek));
	assert_int_equal(v->data_len, sizeof(data));
	assert_memory_equal(v->data_blob, data, sizeof(data));
	assert_int_equal(v->created_at, 1000 + v->version);
	if (x->n >= (int)ELEMENTSOF(x->versions))
		return -ENOBUFS;
	snprintf(x->paths[x->n], sizeof(x->paths[0]), "%s", path);
	x->versions[x->n] = v->version;
	x->keks[x->n] = v->kek_version;
	x->n++;
	if (x->stop_after && x->n == x->stop_after)
		return -ECANCELED;
	return 0;
}

static void assert_vrow(const struct vrows *x, int i, const char *path, uint32_t version)
{
	assert_true(i < x->n);
	assert_string_equal(x->paths[i], path);
	assert_int_equal(x->versions[i], version);
}

static int old_kek(struct store_tx *tx, const char *tenant, uint32_t below, unsigned limit,
		   struct vrows *x)
{
	memset(x, 0, sizeof(*x));
	return store_version_list_old_kek(tx, tenant, below, limit, vrow_cb, x);
}

static void test_version_list_old_kek(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct vrows x;

	/* acme: rows under KEK 1, 2 and 3, interleaved in path order. */
	assert_int_equal(put_kek_version(f->s, "acme/a", 1, 1), 0);
	assert_int_equal(put_kek_version(f->s, "acme/a", 2, 2), 0);
	assert_int_equal(put_kek_version(f->s, "acme/a", 3, 3), 0);
	for (uint32_t i = 1; i <= 3; i++)
		assert_int_equal(put_kek_version(f->s, "acme/b", i, 1), 0);
	assert_int_equal(put_kek_version(f->s, "acme/c/d", 1, 2), 0);
	/* Neighbouring tenants whose names share a prefix with "acme". */
	assert_int_equal(put_kek_version(f->s, "acme2/a", 1, 1), 0);
	assert_int_equal(put_kek_version(f->s, "acm/a", 1, 1), 0);
	assert_int_equal(put_kek_version(f->s, "acme-x/a", 1, 1), 0);
	assert_int_equal(put_kek_version(f->s, "acme.x/a", 1, 1), 0);
	/* A destroyed version (acme/b 1) has no DEK left to rewrap. */
	assert_int_equal(prune(f->s, "acme/b", 1), 1);

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(old_kek(tx, "acme", 3, 100, &x), 5);
	assert_vrow(&x, 0, "acme/a", 1);
	assert_vrow(&x, 1, "acme/a", 2);
	assert_vrow(&x, 2, "acme/b", 2);
	assert_vrow(&x, 3, "acme/b", 3);
	assert_vrow(&x, 4, "acme/c/d", 1);
	assert_int_equal(x.keks[0], 1);
	assert_int_equal(x.keks[1], 2);
	assert_int_equal(x.keks[4], 2);
	assert_int_equal(store_version_count_old_kek(tx, "acme", 3), 5);

	/* The limit takes the first rows in (path, version) order. */
	assert_int_equal(old_kek(tx, "acme", 3, 2, &x), 2);
	assert_vrow(&x, 0, "acme/a", 1);
	assert_vrow(&x, 1, "acme/a", 2);
	assert_int_equal(old_kek(tx, "acme", 3, 3, &x), 3);
	assert_vrow(&x, 2, "acme/b", 2);
	assert_int_equal(old_kek(tx, "acme", 3, 1, &x), 1);
	assert_vrow(&x, 0, "acme/a", 1);

	/* Below 2: only KEK 1 rows. */
	assert_int_equal(old_kek(tx, "acme", 2, 100, &x), 3);
	assert_vrow(&x, 0, "acme/a", 1);
	assert_vrow(&x, 1, "acme/b", 2);
	assert_vrow(&x, 2, "acme/b", 3);
	assert_int_equal(store_version_count_old_kek(tx, "acme", 2), 3);
	assert_int_equal(old_kek(tx, "acme", 1, 100, &x), 0);
	assert_int_equal(store_version_count_old_kek(tx, "acme", 1), 0);
	assert_int_equal(store_version_count_old_kek(tx, "acme", UINT32_MAX), 6);

	/* Each neighbour sees only its own row. */
	assert_int_equal(old_kek(tx, "acme2", 9, 100, &x), 1);
	assert_vrow(&x, 0, "acme2/a", 1);
	assert_int_equal(old_kek(tx, "acm", 9, 100, &x), 1);
	assert_vrow(&x, 0, "acm/a", 1);
	assert_int_equal(old_kek(tx, "acme-x", 9, 100, &x), 1);
	assert_int_equal(store_version_count_old_kek(tx, "acme2", 9), 1);
	assert_int_equal(store_version_count_old_kek(tx, "acm", 9), 1);
	assert_int_equal(store_version_count_old_kek(tx, "nobody", 9), 0);

	/* A callback error stops the walk and is returned. */
	memset(&x, 0, sizeof(x));
	x.stop_after = 2;
	assert_int_equal(store_version_list_old_kek(tx, "acme", 3, 100, vrow_cb, &x), -ECANCELED);
	assert_int_equal(x.n, 2);

	assert_int_equal(old_kek(tx, "acme", 3, 0, &x), -EINVAL);
	assert_int_equal(old_kek(tx, "", 3, 10, &x), -EINVAL);
	assert_int_equal(old_kek(tx, "acme/a", 3, 10, &x), -EINVAL);
	assert_int_equal(store_version_list_old_kek(tx, "acme", 3, 10, NULL, NULL), -EINVAL);
	assert_int_equal(store_version_count_old_kek(tx, NULL, 3), -EINVAL);
	store_tx_end(TAKE_PTR(tx));
	assert_int_equal(store_version_count_old_kek(NULL, "acme", 3), -EINVAL);
}

static int range(struct store_tx *tx, const char *prefix, const char *after_path, uint32_t after_version,
		 unsigned limit, struct vrows *x)
{
	memset(x, 0, sizeof(*x));
	return store_version_list_range(tx, prefix, after_path, after_version, limit, vrow_cb, x);
}

static void test_version_list_range(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	/* "acme/aaa/x" has a '/' just where "acme/rmm/..." has: only the
	 * range keeps it out. */
	static const char *const singles[] = {
		"acme/rmm/x", "acme/rmm-x", "acme/rmm2", "acme/rm", "acme/a", "acme/aaa/x", "other/z",
	};
	struct vrows x;

	for (uint32_t i = 1; i <= 3; i++)
		assert_int_equal(put_kek_version(f->s, "acme/rmm", i, 1), 0);
	for (size_t i = 0; i < ELEMENTSOF(singles); i++)
		assert_int_equal(put_kek_version(f->s, singles[i], 1, 1), 0);
	assert_int_equal(prune(f->s, "acme/rmm", 1), 1);   /* acme/rmm 1 destroyed */
	{
		/* Soft-deleted secrets still hold data: included. */
		_cleanup_(store_tx_endp) struct store_tx *w = NULL;

		assert_int_equal(store_write_begin(f->s, &w), 0);
		assert_int_equal(store_secret_soft_delete(w, "acme/rmm/x", 5), 0);
		assert_int_equal(store_write_commit(TAKE_PTR(w)), 0);
	}

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	/* "acme/rmm": itself and below, never "acme/rmm2" or "acme/rmm-x". */
	assert_int_equal(range(tx, "acme/rmm", "", 0, 10, &x), 3);
	assert_vrow(&x, 0, "acme/rmm", 2);
	assert_vrow(&x, 1, "acme/rmm", 3);
	assert_vrow(&x, 2, "acme/rmm/x", 1);
	assert_int_equal(store_version_count_prefix(tx, "acme/rmm"), 3);

	/* Paging with the cursor. */
	assert_int_equal(range(tx, "acme/rmm", "", 0, 2, &x), 2);
	assert_vrow(&x, 1, "acme/rmm", 3);
	assert_int_equal(range(tx, "acme/rmm", "acme/rmm", 3, 2, &x), 1);
	assert_vrow(&x, 0, "acme/rmm/x", 1);
	assert_int_equal(range(tx, "acme/rmm", "acme/rmm/x", 1, 2, &x), 0);
	assert_int_equal(range(tx, "acme/rmm", "acme/rmm", 2, 10, &x), 2);
	assert_vrow(&x, 0, "acme/rmm", 3);
	/* A cursor before the prefix starts at it; one after it ends. */
	assert_int_equal(range(tx, "acme/rmm", "acme/a", 1, 10, &x), 3);
	assert_vrow(&x, 0, "acme/rmm", 2);
	assert_int_equal(range(tx, "acme/rmm", "acme/zzz", 0, 10, &x), 0);
	assert_int_equal(range(tx, "acme/rmm", NULL, 0, 10, &x), 3);

	/* "" is everything, in (path, version) order. */
	assert_int_equal(range(tx, "", "", 0, 16, &x), 9);
	assert_vrow(&x, 0, "acme/a", 1);
	assert_vrow(&x, 1, "acme/aaa/x", 1);
	assert_vrow(&x, 2, "acme/rm", 1);
	assert_vrow(&x, 3, "acme/rmm", 2);
	assert_vrow(&x, 4, "acme/rmm", 3);
	assert_vrow(&x, 5, "acme/rmm-x", 1);
	assert_vrow(&x, 6, "acme/rmm/x", 1);
	assert_vrow(&x, 7, "acme/rmm2", 1);
	assert_vrow(&x, 8, "other/z", 1);
	assert_int_equal(range(tx, "", "acme/rmm-x", 1, 2, &x), 2);
	assert_vrow(&x, 0, "acme/rmm/x", 1);
	assert_vrow(&x, 1, "acme/rmm2", 1);
	assert_int_equal(store_version_count_prefix(tx, ""), 9);
	assert_int_equal(store_version_count_prefix(tx, "acme"), 8);
	assert_int_equal(store_version_count_prefix(tx, "acme/rmm2"), 1);
	assert_int_equal(store_version_count_prefix(tx, "acme/rmm/x"), 1);
	assert_int_equal(store_version_count_prefix(tx, "nobody"), 0);

	memset(&x, 0, sizeof(x));
	x.stop_after = 1;
	assert_int_equal(store_version_list_range(tx, "", "", 0, 5, vrow_cb, &x), -ECANCELED);
	assert_int_equal(range(tx, "acme", "", 0, 0, &x), -EINVAL);
	assert_int_equal(range(tx, NULL, "", 0, 1, &x), -EINVAL);
	assert_int_equal(store_version_list_range(tx, "acme", "", 0, 1, NULL, NULL), -EINVAL);
	assert_int_equal(store_version_count_prefix(tx, NULL), -EINVAL);
}

static void test_version_rewrap_retag(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	uint8_t dek[24] = {0}, data[40] = {0}, new_dek[20], new_data[30];
	struct store_version got = {0};
	struct vacc a = {0};

	memset(new_dek, 0x5a, sizeof(new_dek));
	memset(new_data, 0xa5, sizeof(new_data));
	for (uint32_t i = 1; i <= 3; i++) {
		assert_int_equal(put_kek_version(f->s, "acme/r", i, 1), 0);
		assert_int_equal(put_kek_version(f->s, "acme2/r", i, 1), 0);
	}
	assert_int_equal(prune(f->s, "acme/r", 1), 1);
	assert_int_equal(prune(f->s, "acme2/r", 1), 1);

	assert_int_equal(store_write_begin(f->s, &tx), 0);
	/* No data blob: the data stays as it was. */
	assert_int_equal(store_version_rewrap(tx, "acme/r", 2, 55, new_dek, sizeof(new_dek), NULL, 0), 0);
	assert_int_equal(store_version_get(tx, "acme/r", 2, &got), 0);
	blobs_for("acme/r", 2, dek, data);
	assert_int_equal(got.kek_version, 55);
	assert_int_equal(got.dek_len, sizeof(new_dek));
	assert_memory_equal(got.dek_blob, new_dek, sizeof(new_dek));
	assert_int_equal(got.data_len, sizeof(data));
	assert_memory_equal(got.data_blob, data, sizeof(data));
	assert_int_equal(got.created_at, 1002);
	store_version_clear(&got);
	/* With one: both replaced. */
	assert_int_equal(store_version_rewrap(tx, "acme/r", 3, 55, new_dek, sizeof(new_dek), new_data,
					      sizeof(new_data)),
			 0);
	assert_int_equal(store_version_get(tx, "acme/r", 3, &got), 0);
	assert_int_equal(got.data_len, sizeof(new_data));
	assert_memory_equal(got.data_blob, new_data, sizeof(new_data));
	store_version_clear(&got);
	/* Destroyed or absent: -ENOENT. Bad blobs: -EINVAL. */
	assert_int_equal(store_version_rewrap(tx, "acme/r", 1, 55, new_dek, sizeof(new_dek), NULL, 0),
			 -ENOENT);
	assert_int_equal(store_version_rewrap(tx, "acme/r", 9, 55, new_dek, sizeof(new_dek), NULL, 0),
			 -ENOENT);
	assert_int_equal(store_version_rewrap(tx, "acme/none", 1, 55, new_dek, sizeof(new_dek), NULL, 0),
			 -ENOENT);
	assert_int_equal(store_version_rewrap(tx, "acme/r", 2, 55, NULL, 0, NULL, 0), -EINVAL);
	assert_int_equal(store_version_rewrap(tx, "acme/r", 2, 55, new_dek, 0, NULL, 0), -EINVAL);
	assert_int_equal(store_version_rewrap(tx, "acme/r", 2, 55, new_dek, sizeof(new_dek), new_data, 0),
			 -EINVAL);
	assert_int_equal(store_version_rewrap(tx, NULL, 2, 55, new_dek, sizeof(new_dek), NULL, 0), -EINVAL);
	assert_int_equal(store_version_count_old_kek(tx, "acme", 55), 0);

	/* The destroyed row still names KEK 1: retag it, this tenant only. */
	assert_int_equal(store_version_retag_destroyed(tx, "acme", 55), 1);
	assert_int_equal(store_version_retag_destroyed(tx, "acme", 55), 0);
	assert_int_equal(store_version_retag_destroyed(tx, "acme/r", 55), -EINVAL);
	assert_int_equal(store_version_list(tx, "acme/r", version_cb_any, &a), 3);
	assert_int_equal(a.keks[0], 55);
	assert_int_equal(a.lens[0], 0);
	memset(&a, 0, sizeof(a));
	assert_int_equal(store_version_list(tx, "acme2/r", version_cb_any, &a), 3);
	assert_int_equal(a.keks[0], 1);
	assert_int_equal(a.keks[1], 1);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_version_rewrap(tx, "acme/r", 2, 56, new_dek, sizeof(new_dek), NULL, 0),
			 -EINVAL);
	assert_int_equal(store_version_retag_destroyed(tx, "acme", 56), -EINVAL);
}

static int put_kek(struct store *s, const char *tenant, uint32_t version, uint32_t rk, uint64_t wraps)
{
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	uint8_t blob[16];
	struct store_kek k = { .version = version, .rk_version = rk, .blob = blob,
			       .blob_len = sizeof(blob), .wrap_count = wraps,
			       .created_at = 100 + version };
	int r;

	memset(blob, (int)(version * 16 + rk), sizeof(blob));
	snprintf(k.tenant, sizeof(k.tenant), "%s", tenant);
	if ((r = store_write_begin(s, &tx)) < 0 || (r = store_kek_put(tx, &k)) < 0)
		return r;
	return store_write_commit(TAKE_PTR(tx));
}

struct kek_rows {
	char tenants[8][65];
	uint32_t versions[8];
	uint32_t rks[8];
	uint64_t wraps[8];
	bool blobs[8];
	int n;
};

static int kek_cb(const struct store_kek *k, void *userdata)
{
	struct kek_rows *x = userdata;

	if (x->n >= 8)
		return -ENOBUFS;
	snprintf(x->tenants[x->n], sizeof(x->tenants[0]), "%s", k->tenant);
	x->versions[x->n] = k->version;
	x->rks[x->n] = k->rk_version;
	x->wraps[x->n] = k->wrap_count;
	x->blobs[x->n] = k->blob != NULL;
	if (k->blob) {
		uint8_t want[16];

		memset(want, (int)(k->version * 16 + k->rk_version), sizeof(want));
		assert_int_equal(k->blob_len, sizeof(want));
		assert_memory_equal(k->blob, want, sizeof(want));
	} else
		assert_int_equal(k->blob_len, 0);
	x->n++;
	return 0;
}

static void assert_kek_row(const struct kek_rows *x, int i, const char *tenant, uint32_t version)
{
	assert_true(i < x->n);
	assert_string_equal(x->tenants[i], tenant);
	assert_int_equal(x->versions[i], version);
}

struct rk_rows {
	uint32_t versions[4];
	char labels[4][65];
	uint32_t hsm_versions[4];
	size_t lens[4];
	int n;
};

static int rk_cb(const struct store_rootkey *rk, void *userdata)
{
	struct rk_rows *x = userdata;

	if (x->n >= 4)
		return -ENOBUFS;
	assert_non_null(rk->blob);
	x->versions[x->n] = rk->version;
	snprintf(x->labels[x->n], sizeof(x->labels[0]), "%s", rk->hsm_label);
	x->hsm_versions[x->n] = rk->hsm_version;
	x->lens[x->n] = rk->blob_len;
	x->n++;
	return 0;
}

static void test_kek_rotation_support(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	uint8_t blob2[16];
	struct store_kek got = {0};
	struct kek_rows x = {0};

	assert_int_equal(put_rootkey(f->s, 1), 0);
	assert_int_equal(put_rootkey(f->s, 2), 0);
	assert_int_equal(put_kek(f->s, "acme", 1, 1, 10), 0);
	assert_int_equal(put_kek(f->s, "acme", 2, 1, 20), 0);
	assert_int_equal(put_kek(f->s, "acme", 3, 2, 30), 0);
	assert_int_equal(put_kek(f->s, "beta", 1, 1, 40), 0);
	assert_int_equal(put_kek(f->s, "beta", 2, 2, 50), 0);

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	/* Under an RK below 2, by (tenant, version), blobs loaded. */
	assert_int_equal(store_kek_list_old_rk(tx, 2, 10, kek_cb, &x), 3);
	assert_kek_row(&x, 0, "acme", 1);
	assert_kek_row(&x, 1, "acme", 2);
	assert_kek_row(&x, 2, "beta", 1);
	assert_true(x.blobs[0]);
	memset(&x, 0, sizeof(x));
	assert_int_equal(store_kek_list_old_rk(tx, 2, 2, kek_cb, &x), 2);
	assert_kek_row(&x, 1, "acme", 2);
	memset(&x, 0, sizeof(x));
	assert_int_equal(store_kek_list_old_rk(tx, 1, 10, kek_cb, &x), 0);
	assert_int_equal(store_kek_list_old_rk(tx, 2, 0, kek_cb, &x), -EINVAL);
	assert_int_equal(store_kek_count_old_rk(tx, 2), 3);
	assert_int_equal(store_kek_count_old_rk(tx, 1), 0);
	assert_int_equal(store_kek_count_old_rk(tx, 3), 5);

	/* Each tenant's current KEK, and one tenant's versions: no blobs. */
	memset(&x, 0, sizeof(x));
	assert_int_equal(store_kek_list_current(tx, kek_cb, &x), 2);
	assert_kek_row(&x, 0, "acme", 3);
	assert_kek_row(&x, 1, "beta", 2);
	assert_int_equal(x.wraps[0], 30);
	assert_int_equal(x.rks[1], 2);
	assert_false(x.blobs[0]);
	memset(&x, 0, sizeof(x));
	assert_int_equal(store_kek_list_tenant(tx, "acme", kek_cb, &x), 3);
	for (int i = 0; i < 3; i++) {
		assert_kek_row(&x, i, "acme", (uint32_t)i + 1);
		assert_false(x.blobs[i]);
	}
	memset(&x, 0, sizeof(x));
	assert_int_equal(store_kek_list_tenant(tx, "nobody", kek_cb, &x), 0);
	assert_int_equal(store_kek_list_current(tx, NULL, NULL), -EINVAL);
	/* Writes refuse a read transaction. */
	assert_int_equal(store_kek_rewrap(tx, "acme", 1, 2, blob2, sizeof(blob2)), -EINVAL);
	assert_int_equal(store_kek_delete_unused(tx, "acme", 3), -EINVAL);
	assert_int_equal(store_rootkey_delete_below(tx, 2), -EINVAL);
	store_tx_end(TAKE_PTR(tx));

	/* Rewrap: a new RK version and blob; the rest stays. */
	memset(blob2, 0x77, sizeof(blob2));
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_kek_rewrap(tx, "acme", 1, 2, blob2, sizeof(blob2)), 0);
	assert_int_equal(store_kek_get(tx, "acme", 1, &got), 0);
	assert_int_equal(got.rk_version, 2);
	assert_memory_equal(got.blob, blob2, sizeof(blob2));
	assert_int_equal(got.wrap_count, 10);
	assert_int_equal(got.created_at, 101);
	store_kek_clear(&got);
	assert_int_equal(store_kek_rewrap(tx, "acme", 9, 2, blob2, sizeof(blob2)), -ENOENT);
	assert_int_equal(store_kek_rewrap(tx, "acme", 1, 99, blob2, sizeof(blob2)), -EINVAL);
	assert_int_equal(store_kek_rewrap(tx, "acme", 1, 2, NULL, 0), -EINVAL);
	assert_int_equal(store_kek_count_old_rk(tx, 2), 2);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);

	/* delete_unused: acme v1 is used by a live version, v2 only by a
	 * destroyed one and by another tenant's row (which does not count). */
	assert_int_equal(put_kek_version(f->s, "acme/x", 1, 1), 0);
	assert_int_equal(put_kek_version(f->s, "acme/y", 1, 2), 0);
	assert_int_equal(put_kek_version(f->s, "acme/y", 2, 3), 0);
	assert_int_equal(put_kek_version(f->s, "acme/y", 3, 3), 0);
	assert_int_equal(prune(f->s, "acme/y", 1), 1);
	assert_int_equal(put_kek_version(f->s, "acme2/z", 1, 2), 0);
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_kek_delete_unused(tx, "acme", 3), 1);
	assert_int_equal(store_kek_delete_unused(tx, "acme", 3), 0);
	assert_int_equal(store_kek_delete_unused(tx, "acme", 1), 0);
	assert_int_equal(store_kek_delete_unused(tx, "acme/x", 3), -EINVAL);
	memset(&x, 0, sizeof(x));
	assert_int_equal(store_kek_list_tenant(tx, "acme", kek_cb, &x), 2);
	assert_kek_row(&x, 0, "acme", 1);
	assert_kek_row(&x, 1, "acme", 3);
	/* Nothing of beta's, below or not. */
	assert_int_equal(store_kek_delete_unused(tx, "beta", 9), 2);
	assert_int_equal(store_kek_get(tx, "beta", 1, &got), -ENOENT);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);
}

static void test_rootkey_rotation_support(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	uint8_t blob[24];
	struct rk_rows x = {0};
	struct store_rootkey rk = {0};

	memset(blob, 0x3c, sizeof(blob));
	for (uint32_t i = 1; i <= 3; i++)
		assert_int_equal(put_rootkey(f->s, i), 0);
	assert_int_equal(put_kek(f->s, "acme", 1, 2, 0), 0);
	assert_int_equal(put_kek(f->s, "acme", 2, 3, 0), 0);

	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_rootkey_list(tx, rk_cb, &x), 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(x.versions[i], (uint32_t)i + 1);
		assert_string_equal(x.labels[i], "vaultd-root");
		assert_int_equal(x.hsm_versions[i], 7);
		assert_int_equal(x.lens[i], 16);
	}
	assert_int_equal(store_rootkey_list(tx, NULL, NULL), -EINVAL);

	/* Rewrap under another HSM key. */
	assert_int_equal(store_rootkey_rewrap(tx, 2, "vaultd-root-2", 8, blob, sizeof(blob)), 0);
	assert_int_equal(store_rootkey_rewrap(tx, 9, "vaultd-root-2", 8, blob, sizeof(blob)), -ENOENT);
	assert_int_equal(store_rootkey_rewrap(tx, 2, "", 8, blob, sizeof(blob)), -EINVAL);
	assert_int_equal(store_rootkey_rewrap(tx, 2, "x", 8, NULL, 0), -EINVAL);
	memset(&x, 0, sizeof(x));
	assert_int_equal(store_rootkey_list(tx, rk_cb, &x), 3);
	assert_string_equal(x.labels[1], "vaultd-root-2");
	assert_int_equal(x.hsm_versions[1], 8);
	assert_int_equal(x.lens[1], sizeof(blob));

	/* RK 2 is still referenced: nothing at all is deleted, not even the
	 * unreferenced RK 1. */
	assert_int_equal(store_rootkey_delete_below(tx, 3), -EEXIST);
	memset(&x, 0, sizeof(x));
	assert_int_equal(store_rootkey_list(tx, rk_cb, &x), 3);
	/* Below 2 only RK 1, which no KEK uses. */
	assert_int_equal(store_rootkey_delete_below(tx, 2), 1);
	assert_int_equal(store_rootkey_delete_below(tx, 2), 0);
	assert_int_equal(store_kek_rewrap(tx, "acme", 1, 3, blob, sizeof(blob)), 0);
	assert_int_equal(store_rootkey_delete_below(tx, 3), 1);
	memset(&x, 0, sizeof(x));
	assert_int_equal(store_rootkey_list(tx, rk_cb, &x), 1);
	assert_int_equal(x.versions[0], 3);
	assert_int_equal(store_rootkey_get_current(tx, &rk), 0);
	assert_int_equal(rk.version, 3);
	store_rootkey_clear(&rk);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);
}

struct mfa_rows {
	char names[4][65];
	uint8_t first[4];
	size_t lens[4];
	int n;
};

static int mfa_cb(const char *name, const uint8_t *blob, size_t len, void *userdata)
{
	struct mfa_rows *x = userdata;

	if (x->n >= 4)
		return -ENOBUFS;
	assert_non_null(blob);
	snprintf(x->names[x->n], sizeof(x->names[0]), "%s", name);
	x->first[x->n] = blob[0];
	x->lens[x->n] = len;
	x->n++;
	return 0;
}

static void test_user_mfa_keys(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	uint8_t ka[32], kc[40], knew[48];
	struct store_user u = { .phc = (char *)PHC, .roles = (char *)"[]", .created_at = 1,
				.updated_at = 2, .mfa_state = STORE_MFA_ACTIVE };
	struct store_user got = {0};
	struct mfa_rows x = {0};

	memset(ka, 0xaa, sizeof(ka));
	memset(kc, 0xcc, sizeof(kc));
	memset(knew, 0xee, sizeof(knew));
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	strcpy(u.name, "carol");
	u.mfa_key = kc;
	u.mfa_key_len = sizeof(kc);
	assert_int_equal(store_user_put(tx, &u), 0);
	strcpy(u.name, "alice");
	u.mfa_key = ka;
	u.mfa_key_len = sizeof(ka);
	assert_int_equal(store_user_put(tx, &u), 0);
	strcpy(u.name, "bob");
	u.mfa_key = NULL;
	u.mfa_key_len = 0;
	assert_int_equal(store_user_put(tx, &u), 0);

	/* Only users with a key, by name. */
	assert_int_equal(store_user_list_mfa_keys(tx, mfa_cb, &x), 2);
	assert_string_equal(x.names[0], "alice");
	assert_int_equal(x.lens[0], sizeof(ka));
	assert_int_equal(x.first[0], 0xaa);
	assert_string_equal(x.names[1], "carol");
	assert_int_equal(x.lens[1], sizeof(kc));

	assert_int_equal(store_user_set_mfa_key(tx, "alice", knew, sizeof(knew)), 0);
	assert_int_equal(store_user_set_mfa_key(tx, "bob", knew, sizeof(knew)), 0);
	assert_int_equal(store_user_set_mfa_key(tx, "nobody", knew, sizeof(knew)), -ENOENT);
	assert_int_equal(store_user_set_mfa_key(tx, "alice", NULL, 0), -EINVAL);
	assert_int_equal(store_user_set_mfa_key(tx, "alice", knew, 0), -EINVAL);
	assert_int_equal(store_user_get(tx, "alice", &got), 0);
	assert_int_equal(got.mfa_key_len, sizeof(knew));
	assert_memory_equal(got.mfa_key, knew, sizeof(knew));
	assert_int_equal(got.mfa_state, STORE_MFA_ACTIVE);   /* the rest stays */
	assert_int_equal(got.updated_at, 2);
	store_user_clear(&got);
	memset(&x, 0, sizeof(x));
	assert_int_equal(store_user_list_mfa_keys(tx, mfa_cb, &x), 3);
	assert_string_equal(x.names[1], "bob");
	assert_int_equal(x.first[1], 0xee);
	assert_int_equal(store_user_list_mfa_keys(tx, NULL, NULL), -EINVAL);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_user_set_mfa_key(tx, "alice", ka, sizeof(ka)), -EINVAL);
	memset(&x, 0, sizeof(x));
	assert_int_equal(store_user_list_mfa_keys(tx, mfa_cb, &x), 3);
}

static struct store_rotation job(const char *kind, const char *target, const char *state, int64_t now)
{
	struct store_rotation j = { .created_at = now, .updated_at = now };

	snprintf(j.kind, sizeof(j.kind), "%s", kind);
	snprintf(j.target, sizeof(j.target), "%s", target);
	snprintf(j.state, sizeof(j.state), "%s", state);
	snprintf(j.principal, sizeof(j.principal), "user:alice");
	snprintf(j.request_id, sizeof(j.request_id), "req-%lld", (long long)now);
	return j;
}

struct job_ids {
	int64_t ids[16];
	int n;
};

static int job_cb(const struct store_rotation *r, void *userdata)
{
	struct job_ids *x = userdata;

	if (x->n >= 16)
		return -ENOBUFS;
	x->ids[x->n++] = r->id;
	return 0;
}

static void test_rotations(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	/* 1 kek/acme queued, 2 secret/acme/rmm queued, 3 root done, 4 hsm
	 * failed, 5 kek/beta running, 6 kek/acme done. */
	static const char *const spec[6][3] = {
		{ "kek", "acme", "queued" },   { "secret", "acme/rmm", "queued" },
		{ "root", "", "done" },        { "hsm", "", "failed" },
		{ "kek", "beta", "running" },  { "kek", "acme", "done" },
	};
	struct store_rotation j, got = {0};
	struct job_ids x = {0};
	int64_t ids[6];

	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_rotation_next(tx, &got), -ENOENT);

	/* Bad kind, state or field: -EINVAL, nothing added. */
	j = job("keks", "acme", "queued", 1);
	assert_int_equal(store_rotation_add(tx, &j), -EINVAL);
	j = job("kek", "acme", "paused", 1);
	assert_int_equal(store_rotation_add(tx, &j), -EINVAL);
	j = job("kek", "acme", "queued", 1);
	memset(j.error, 'e', sizeof(j.error));              /* no NUL */
	assert_int_equal(store_rotation_add(tx, &j), -EINVAL);
	j = job("kek", "acme", "queued", 1);
	j.done = -1;
	assert_int_equal(store_rotation_add(tx, &j), -EINVAL);
	assert_int_equal(store_rotation_add(tx, NULL), -EINVAL);

	for (int i = 0; i < 6; i++) {
		j = job(spec[i][0], spec[i][1], spec[i][2], 10 + i);
		j.id = 999;                                 /* ignored */
		assert_int_equal(store_rotation_add(tx, &j), 0);
		ids[i] = j.id;
		if (i > 0)
			assert_true(ids[i] > ids[i - 1]);
	}
	/* A second active job of the same kind and target: -EEXIST (the
	 * API never asks, it finds the active one first); a finished one
	 * of the same kind and target was fine above. */
	j = job("kek", "acme", "running", 16);
	assert_int_equal(store_rotation_add(tx, &j), -EEXIST);
	j = job("kek", "beta", "queued", 16);
	assert_int_equal(store_rotation_add(tx, &j), -EEXIST);

	/* Round trip of every field, a full-length target included. */
	j = job("secret", "", "queued", 20);
	memset(j.target, 'p', sizeof(j.target) - 1);
	j.target[sizeof(j.target) - 1] = 0;
	j.from_version = 3;
	j.to_version = UINT32_MAX;
	j.done = 5;
	j.total = INT64_MAX;
	strcpy(j.cursor_path, "acme/x");
	j.cursor_version = 9;
	strcpy(j.error, "none yet");
	j.finished_at = 0;
	assert_int_equal(store_rotation_add(tx, &j), 0);
	assert_int_equal(store_rotation_get(tx, j.id, &got), 0);
	assert_int_equal(got.id, j.id);
	assert_string_equal(got.kind, "secret");
	assert_string_equal(got.target, j.target);
	assert_string_equal(got.state, "queued");
	assert_string_equal(got.principal, "user:alice");
	assert_string_equal(got.request_id, "req-20");
	assert_int_equal(got.from_version, 3);
	assert_int_equal(got.to_version, UINT32_MAX);
	assert_int_equal(got.done, 5);
	assert_int_equal(got.total, INT64_MAX);
	assert_string_equal(got.cursor_path, "acme/x");
	assert_int_equal(got.cursor_version, 9);
	assert_string_equal(got.error, "none yet");
	assert_int_equal(got.created_at, 20);
	assert_int_equal(got.updated_at, 20);
	assert_int_equal(got.finished_at, 0);
	assert_int_equal(store_rotation_get(tx, 12345, &got), -ENOENT);
	/* Done with it: mark it failed, so it is not the active one below. */
	strcpy(j.state, "failed");
	assert_int_equal(store_rotation_update(tx, &j), 0);

	/* The oldest active job. */
	assert_int_equal(store_rotation_next(tx, &got), 0);
	assert_int_equal(got.id, ids[0]);
	assert_string_equal(got.kind, "kek");
	assert_string_equal(got.target, "acme");
	assert_string_equal(got.principal, "user:alice");
	assert_string_equal(got.request_id, "req-10");
	assert_int_equal(store_rotation_find_active(tx, "kek", "acme", &got), 0);
	assert_int_equal(got.id, ids[0]);
	assert_int_equal(store_rotation_find_active(tx, "secret", "acme/rmm", &got), 0);
	assert_int_equal(got.id, ids[1]);
	assert_int_equal(store_rotation_find_active(tx, "kek", "beta", &got), 0);
	assert_int_equal(got.id, ids[4]);
	assert_int_equal(store_rotation_find_active(tx, "root", "", &got), -ENOENT);
	assert_int_equal(store_rotation_find_active(tx, "secret", "acme", &got), -ENOENT);

	/* Update: the progress fields move; kind, target, who and when stay. */
	assert_int_equal(store_rotation_get(tx, ids[0], &j), 0);
	strcpy(j.state, "done");
	strcpy(j.target, "ignored");
	j.from_version = 1;
	j.to_version = 2;
	j.done = j.total = 42;
	strcpy(j.cursor_path, "acme/zz");
	j.cursor_version = 4;
	strcpy(j.error, "");
	j.updated_at = 77;
	j.finished_at = 78;
	assert_int_equal(store_rotation_update(tx, &j), 0);
	assert_int_equal(store_rotation_get(tx, ids[0], &got), 0);
	assert_string_equal(got.state, "done");
	assert_string_equal(got.target, "acme");
	assert_int_equal(got.to_version, 2);
	assert_int_equal(got.done, 42);
	assert_string_equal(got.cursor_path, "acme/zz");
	assert_int_equal(got.cursor_version, 4);
	assert_int_equal(got.created_at, 10);
	assert_int_equal(got.updated_at, 77);
	assert_int_equal(got.finished_at, 78);
	assert_false(STORE_ROTATION_ACTIVE(&got));
	assert_int_equal(store_rotation_find_active(tx, "kek", "acme", &got), -ENOENT);
	assert_int_equal(store_rotation_next(tx, &got), 0);
	assert_int_equal(got.id, ids[1]);
	assert_true(STORE_ROTATION_ACTIVE(&got));
	strcpy(j.state, "stopped");
	assert_int_equal(store_rotation_update(tx, &j), -EINVAL);
	strcpy(j.state, "done");
	j.id = 12345;
	assert_int_equal(store_rotation_update(tx, &j), -ENOENT);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);

	/* Listing: active jobs (2, 5) first, then the newest finished, shown
	 * newest first. 7 is the failed round-trip job. */
	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_rotation_list(tx, 16, job_cb, &x), 7);
	for (int i = 0; i < 7; i++)
		assert_int_equal(x.ids[i], ids[0] + 6 - i);
	memset(&x, 0, sizeof(x));
	assert_int_equal(store_rotation_list(tx, 3, job_cb, &x), 3);
	assert_int_equal(x.ids[0], ids[0] + 6);
	assert_int_equal(x.ids[1], ids[4]);
	assert_int_equal(x.ids[2], ids[1]);
	memset(&x, 0, sizeof(x));
	assert_int_equal(store_rotation_list(tx, 2, job_cb, &x), 2);
	assert_int_equal(x.ids[0], ids[4]);
	assert_int_equal(x.ids[1], ids[1]);
	memset(&x, 0, sizeof(x));
	assert_int_equal(store_rotation_list(tx, 1, job_cb, &x), 1);
	assert_int_equal(x.ids[0], ids[4]);
	assert_int_equal(store_rotation_list(tx, 0, job_cb, &x), 0);
	assert_int_equal(store_rotation_list(tx, 3, NULL, NULL), -EINVAL);
	/* Writes need a write transaction. */
	j = job("kek", "acme", "queued", 1);
	assert_int_equal(store_rotation_add(tx, &j), -EINVAL);
}

struct max_age_rows {
	char paths[4][32];
	char max_age[4][16];
	int64_t created[4];
	int n;
	int stop_after;
};

static int max_age_cb(const struct store_secret *s, const char *max_age, int64_t current_created_at,
		      void *userdata)
{
	struct max_age_rows *x = userdata;

	if (x->n >= 4)
		return -ENOBUFS;
	assert_int_equal(s->deleted_at, 0);
	snprintf(x->paths[x->n], sizeof(x->paths[0]), "%s", s->path);
	snprintf(x->max_age[x->n], sizeof(x->max_age[0]), "%s", max_age);
	x->created[x->n] = current_created_at;
	x->n++;
	if (x->stop_after && x->n == x->stop_after)
		return -ECANCELED;
	return 0;
}

static void test_list_max_age(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct max_age_rows x = {0};

	assert_int_equal(put_version(f->s, "acme/a", 1, "generic", "{\"max_age\":\"30d\"}", 100), 0);
	assert_int_equal(put_version(f->s, "acme/a", 2, "generic", NULL, 200), 0);
	assert_int_equal(put_version(f->s, "acme/b", 1, "generic", "{\"max_age\":30}", 100), 0);
	assert_int_equal(put_version(f->s, "acme/c", 1, "generic", "{}", 100), 0);
	assert_int_equal(put_version(f->s, "acme/d", 1, "generic", "{\"max_age\":\"1h\"}", 100), 0);
	assert_int_equal(put_version(f->s, "acme/e", 1, "generic", "not json", 100), 0);
	assert_int_equal(put_version(f->s, "acme/g", 1, "generic", "[\"max_age\"]", 100), 0);
	assert_int_equal(put_version(f->s, "acme/h", 1, "generic", "{\"x\":{\"max_age\":\"1d\"}}", 100), 0);
	/* A staged version does not count: the current one's age does. */
	assert_int_equal(put_version(f->s, "acme/f", 1, "generic", "{\"max_age\":\"7d\"}", 300), 0);
	assert_int_equal(put_pending(f->s, "acme/f", 2, NULL, 400), 0);
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_secret_soft_delete(tx, "acme/d", 500), 0);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_secret_list_max_age(tx, max_age_cb, &x), 2);
	assert_string_equal(x.paths[0], "acme/a");
	assert_string_equal(x.max_age[0], "30d");
	assert_int_equal(x.created[0], 200);
	assert_string_equal(x.paths[1], "acme/f");
	assert_string_equal(x.max_age[1], "7d");
	assert_int_equal(x.created[1], 300);
	memset(&x, 0, sizeof(x));
	x.stop_after = 1;
	assert_int_equal(store_secret_list_max_age(tx, max_age_cb, &x), -ECANCELED);
	assert_int_equal(store_secret_list_max_age(tx, NULL, NULL), -EINVAL);
}

static void test_audit_retention(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct store_audit got = {0};
	struct audit_ids x = {0};
	const int64_t want[] = { 5, 6, 7, 8 };

	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_audit_first(tx, &got), -ENOENT);
	assert_int_equal(store_audit_last_before(tx, 1000, &got), -ENOENT);
	assert_int_equal(store_audit_delete_through(tx, 10), 0);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);

	audit_fill(f->s);
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_audit_first(tx, &got), 0);
	assert_int_equal(got.id, 1);
	store_audit_clear(&got);
	/* Times 100, 110, ..., 170: strictly before 140 is 1..4. */
	assert_int_equal(store_audit_last_before(tx, 140, &got), 0);
	assert_int_equal(got.id, 4);
	assert_int_equal(got.time, 130);
	assert_string_equal(got.principal, "user:bob");
	store_audit_clear(&got);
	assert_int_equal(store_audit_last_before(tx, 100, &got), -ENOENT);
	assert_int_equal(store_audit_delete_through(tx, 4), 4);
	assert_int_equal(store_audit_delete_through(tx, 4), 0);
	assert_int_equal(store_audit_first(tx, &got), 0);
	assert_int_equal(got.id, 5);
	store_audit_clear(&got);
	assert_int_equal(store_audit_last_before(tx, 140, &got), -ENOENT);
	/* By id: present, pruned, never written. */
	assert_int_equal(store_audit_get(tx, 6, &got), 0);
	assert_int_equal(got.id, 6);
	assert_int_equal(got.time, 150);
	store_audit_clear(&got);
	assert_int_equal(store_audit_get(tx, 4, &got), -ENOENT);
	assert_int_equal(store_audit_get(tx, 99, &got), -ENOENT);
	assert_int_equal(store_audit_get(tx, 6, NULL), -EINVAL);
	assert_int_equal(store_audit_iterate(tx, audit_ids_cb, &x), 4);
	assert_ids(&x, want, 4);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);

	/* The chain continues after the cut. */
	{
		struct store_audit a = audit_rec(9, 180, "user:alice", "audit.prune", NULL, "allowed");

		assert_int_equal(audit_append_one(f->s, &a), 0);
	}
	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_audit_delete_through(tx, 100), -EINVAL);
	assert_int_equal(store_audit_first(tx, NULL), -EINVAL);
}

/* --- backup --- */

static void sha256_file(const char *path, uint8_t out[32], int64_t *size)
{
	crypto_hash_sha256_state h;
	uint8_t buf[4096];
	FILE *fp = fopen(path, "rb");
	size_t n;

	assert_non_null(fp);
	*size = 0;
	crypto_hash_sha256_init(&h);
	while ((n = fread(buf, 1, sizeof(buf), fp)) > 0) {
		crypto_hash_sha256_update(&h, buf, n);
		*size += (int64_t)n;
	}
	fclose(fp);
	crypto_hash_sha256_final(&h, out);
}

static void test_backup(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *w = NULL;
	struct store_backup_info info = {0};
	char copy[160], other[160], link[160], side[180], text[64];
	uint8_t sum[32];
	int64_t size;
	struct stat st;
	mode_t old;
	sqlite3 *db = NULL;
	sqlite3_stmt *q = NULL;
	int fd;

	for (uint32_t i = 1; i <= 3; i++)
		assert_int_equal(put_version(f->s, "acme/b", i, "generic", NULL, i), 0);
	assert_int_equal(put_version(f->s, "acme/c", 1, "generic", NULL, 1), 0);

	/* An open write transaction neither blocks the copy nor gets into it. */
	assert_int_equal(store_write_begin(f->s, &w), 0);
	{
		struct store_version v = { .version = 1, .kek_version = 1, .dek_blob = dek_bytes,
					   .dek_len = 4, .data_blob = data_bytes, .data_len = 4 };

		assert_int_equal(store_secret_put_version(w, "acme/uncommitted", "acme", "generic", NULL, &v),
				 0);
	}

	/* A tight umask does not change the copy's mode. */
	snprintf(copy, sizeof(copy), "%s/backup.db", f->dir);
	old = umask(0277);
	assert_int_equal(store_backup(f->s, copy, &info), 0);
	umask(old);
	assert_int_equal(store_write_commit(TAKE_PTR(w)), 0);

	assert_int_equal(lstat(copy, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(info.bytes, st.st_size);
	assert_int_equal(info.schema_version, 7);
	sha256_file(copy, sum, &size);
	assert_int_equal(size, info.bytes);
	assert_memory_equal(sum, info.sha256, sizeof(sum));
	/* Nothing left beside it (no journal, no WAL). */
	snprintf(side, sizeof(side), "%s-journal", copy);
	assert_int_not_equal(access(side, F_OK), 0);
	snprintf(side, sizeof(side), "%s-wal", copy);
	assert_int_not_equal(access(side, F_OK), 0);

	/* The copy is a whole, consistent database of the committed state. */
	assert_int_equal(sqlite3_open_v2(copy, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(q, 0), "ok");
	sqlite3_finalize(q);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM secrets", -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(q, 0), 2);
	sqlite3_finalize(q);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM secret_versions", -1, &q, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(q, 0), 4);
	sqlite3_finalize(q);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	assert_int_equal(raw_pragma(copy, "PRAGMA user_version", NULL, 0), 7);
	raw_pragma(copy, "PRAGMA journal_mode", text, sizeof(text));
	assert_string_equal(text, "delete");
	/* And vaultd opens it. */
	{
		struct store *s2 = NULL;
		struct store_secret h = {0};
		_cleanup_(store_tx_endp) struct store_tx *tx = NULL;

		assert_int_equal(store_open(copy, 1, &s2), 0);
		assert_int_equal(store_integrity_check(s2), 0);
		assert_int_equal(store_read_begin(s2, &tx), 0);
		assert_int_equal(store_secret_get(tx, "acme/b", &h), 0);
		assert_int_equal(h.current_version, 3);
		store_secret_clear(&h);
		assert_int_equal(store_secret_get(tx, "acme/uncommitted", &h), -ENOENT);
		store_tx_end(TAKE_PTR(tx));
		store_close(s2);
	}
	unlink_db(copy);

	/* An existing file is never touched. */
	snprintf(other, sizeof(other), "%s/existing", f->dir);
	fd = open(other, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "keep me", 7), 7);
	close(fd);
	memset(&info, 0x11, sizeof(info));
	assert_int_equal(store_backup(f->s, other, &info), -EEXIST);
	assert_int_equal(info.bytes, 0x1111111111111111);  /* not filled */
	assert_int_equal(stat(other, &st), 0);
	assert_int_equal(st.st_size, 7);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_true(file_contains(other, (const uint8_t *)"keep me", 7));
	/* Nor a symlink, dangling or not, nor its target. */
	snprintf(link, sizeof(link), "%s/link", f->dir);
	snprintf(side, sizeof(side), "%s/target", f->dir);
	assert_int_equal(symlink(side, link), 0);
	assert_int_equal(store_backup(f->s, link, &info), -EEXIST);
	assert_int_not_equal(access(side, F_OK), 0);
	assert_int_equal(unlink(link), 0);
	assert_int_equal(unlink(other), 0);

	/* No directory: its errno, and nothing created. */
	snprintf(other, sizeof(other), "%s/none/backup.db", f->dir);
	assert_int_equal(store_backup(f->s, other, &info), -ENOENT);
	assert_int_equal(store_backup(f->s, "", &info), -EINVAL);
	assert_int_equal(store_backup(NULL, copy, &info), -EINVAL);
	assert_int_equal(store_backup(f->s, copy, NULL), -EINVAL);
	assert_int_not_equal(access(copy, F_OK), 0);

	/* The store goes on as before. */
	assert_int_equal(put_version(f->s, "acme/b", 4, "generic", NULL, 4), 0);
	assert_int_equal(store_integrity_check(f->s), 0);

	/* A store opened by a relative name still backs up after a chdir()
	 * (the daemon changes to "/" once its files are open). */
	{
		char cwd[4096], rel[160];
		struct store *s2 = NULL;

		assert_non_null(getcwd(cwd, sizeof(cwd)));
		assert_int_equal(chdir(f->dir), 0);
		assert_int_equal(store_open("rel.db", 1, &s2), 0);
		assert_int_equal(chdir("/"), 0);
		assert_int_equal(store_backup(s2, copy, &info), 0);
		assert_int_equal(info.schema_version, 7);
		store_close(s2);
		assert_int_equal(chdir(cwd), 0);
		snprintf(rel, sizeof(rel), "%s/rel.db", f->dir);
		unlink_db(rel);
		assert_int_equal(unlink(copy), 0);
	}
}

/* --- transactions --- */

static void test_rollback_without_commit(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct store_version v = { .version = 1, .kek_version = 1, .dek_blob = dek_bytes,
				   .dek_len = 8, .data_blob = data_bytes, .data_len = 8 };
	struct store_secret h = {0};
	char *val = NULL;

	{
		_cleanup_(store_tx_endp) struct store_tx *w = NULL;

		assert_int_equal(store_write_begin(f->s, &w), 0);
		assert_int_equal(store_meta_set(w, "k", "v"), 0);
		assert_int_equal(store_secret_put_version(w, "acme/x", "acme", "generic", NULL, &v),
				 0);
		/* Scope ends without commit. */
	}
	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_meta_get(tx, "k", &val), -ENOENT);
	assert_int_equal(store_secret_get(tx, "acme/x", &h), -ENOENT);
	store_tx_end(TAKE_PTR(tx));

	/* The writer is free again, and a failed commit argument is refused. */
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_secret_put_version(tx, "acme/x", "acme", "generic", NULL, &v), 0);
	assert_int_equal(store_write_commit(TAKE_PTR(tx)), 0);
	assert_int_equal(store_write_commit(NULL), -EINVAL);
	assert_int_equal(get_head(f->s, "acme/x", &h), 0);
	store_secret_clear(&h);
}

static void test_write_begin_reentry(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
	struct store_tx *again = NULL;

	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_write_begin(f->s, &again), -EDEADLK);
	assert_null(again);
}

static void test_read_snapshot_does_not_block_writer(void **state)
{
	struct fixture *f = *state;
	_cleanup_(store_tx_endp) struct store_tx *rtx = NULL;
	struct store_secret h = {0};

	assert_int_equal(put_version(f->s, "acme/s", 1, "generic", "{\"v\":1}", 1), 0);
	assert_int_equal(store_read_begin(f->s, &rtx), 0);

	/* The writer commits twice while the read transaction is open. */
	assert_int_equal(put_version(f->s, "acme/s", 2, "generic", "{\"v\":2}", 2), 0);
	assert_int_equal(put_version(f->s, "acme/t", 1, "generic", NULL, 2), 0);

	assert_int_equal(store_secret_get(rtx, "acme/s", &h), 0);
	assert_int_equal(h.latest_version, 1);
	assert_string_equal(h.metadata, "{\"v\":1}");
	store_secret_clear(&h);
	assert_int_equal(store_secret_get(rtx, "acme/t", &h), -ENOENT);
	store_tx_end(TAKE_PTR(rtx));

	assert_int_equal(get_head(f->s, "acme/s", &h), 0);
	assert_int_equal(h.latest_version, 2);
	store_secret_clear(&h);
}

struct writer_arg {
	struct store *s;
	int iterations;
	int failures;
};

static void *writer_thread(void *p)
{
	struct writer_arg *a = p;

	for (int i = 0; i < a->iterations; i++) {
		_cleanup_(store_tx_endp) struct store_tx *tx = NULL;
		struct store_secret h = {0};
		struct store_version v = { .kek_version = 1, .dek_blob = dek_bytes, .dek_len = 8,
					   .data_blob = data_bytes, .data_len = 8 };
		int r;

		/* Read the head and write latest + 1 in one write transaction:
		 * the writer lock makes the pair atomic. */
		if (store_write_begin(a->s, &tx) < 0) {
			a->failures++;
			continue;
		}
		r = store_secret_get(tx, "acme/shared", &h);
		v.version = r == -ENOENT ? 1 : h.latest_version + 1;
		store_secret_clear(&h);
		if ((r < 0 && r != -ENOENT) ||
		    store_secret_put_version(tx, "acme/shared", "acme", "generic", NULL, &v) < 0 ||
		    store_write_commit(TAKE_PTR(tx)) < 0)
			a->failures++;
	}
	return NULL;
}

static void test_concurrent_writers(void **state)
{
	struct fixture *f = *state;
	struct writer_arg a = { .s = f->s, .iterations = 25 }, b = a;
	pthread_t ta, tb;
	struct store_secret h = {0};

	assert_int_equal(pthread_create(&ta, NULL, writer_thread, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, writer_thread, &b), 0);
	assert_int_equal(pthread_join(ta, NULL), 0);
	assert_int_equal(pthread_join(tb, NULL), 0);
	assert_int_equal(a.failures, 0);
	assert_int_equal(b.failures, 0);
	assert_int_equal(get_head(f->s, "acme/shared", &h), 0);
	assert_int_equal(h.latest_version, 50);
	store_secret_clear(&h);
}

struct reader_arg {
	struct store *s;
	atomic_int got;
};

static void *reader_thread(void *p)
{
	struct reader_arg *a = p;
	struct store_tx *tx = NULL;

	if (store_read_begin(a->s, &tx) == 0) {
		atomic_store(&a->got, 1);
		store_tx_end(tx);
	} else
		atomic_store(&a->got, -1);
	return NULL;
}

static void test_reader_pool_waits(void **state)
{
	struct fixture *f = *state;
	struct store_tx *r1 = NULL, *r2 = NULL;
	struct reader_arg a = { .s = f->s };
	pthread_t t;

	/* The fixture's pool has two readers: a third waits for one back. */
	assert_int_equal(store_read_begin(f->s, &r1), 0);
	assert_int_equal(store_read_begin(f->s, &r2), 0);
	assert_ptr_not_equal(r1, r2);
	assert_int_equal(pthread_create(&t, NULL, reader_thread, &a), 0);
	usleep(100 * 1000);
	assert_int_equal(atomic_load(&a.got), 0);
	store_tx_end(r1);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(atomic_load(&a.got), 1);
	store_tx_end(r2);
}

static void test_integrity_check(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(store_integrity_check(f->s), 0);
	assert_int_equal(put_version(f->s, "acme/i", 1, "generic", NULL, 1), 0);
	assert_int_equal(store_integrity_check(f->s), 0);
	assert_int_equal(store_checkpoint(f->s), 0);
	assert_int_equal(store_integrity_check(f->s), 0);
}

/* --- finding 11: what store_open() refuses at the database path --- */

#define OTHER_UID 4242

/* The log while fn runs, into buf (NUL-terminated). */
static int logfd_[2];
static void log_capture_begin(void)
{
	assert_int_equal(pipe2(logfd_, O_NONBLOCK | O_CLOEXEC), 0);
	log_set_fd(logfd_[1]);
}

static const char *log_capture_end(char *buf, size_t size)
{
	ssize_t n = read(logfd_[0], buf, size - 1);

	buf[n > 0 ? n : 0] = '\0';
	log_set_fd(2);
	close(logfd_[0]);
	close(logfd_[1]);
	return buf;
}

/* store_open(path) fails with err and one log line names culprit and why. */
static void expect_open_refused_at(const char *path, const char *culprit, int err, const char *why)
{
	struct store *s = NULL;
	char log[4096];
	int r;

	log_capture_begin();
	r = store_open(path, 1, &s);
	log_capture_end(log, sizeof(log));
	if (r != err)
		fail_msg("store_open('%s'): got %d, expected %d", path, r, err);
	assert_null(s);
	if (!strstr(log, culprit) || !strstr(log, why))
		fail_msg("store_open('%s'): expected the log to name '%s' and say \"%s\", got \"%s\"", path,
			 culprit, why, log);
}

static void expect_open_refused(const char *path, int err, const char *why)
{
	expect_open_refused_at(path, path, err, why);
}

static void test_open_refuses_symlink(void **state)
{
	struct fixture *f = *state;
	char link[160], target[160];
	struct stat st;

	store_close(f->s);
	f->s = NULL;
	/* A link to the real database: refused, not followed. */
	snprintf(link, sizeof(link), "%s/link.db", f->dir);
	assert_int_equal(symlink(f->path, link), 0);
	expect_open_refused(link, -ELOOP, "symbolic link");
	assert_int_equal(unlink(link), 0);

	/* A dangling link: O_CREAT must not create its target. */
	snprintf(target, sizeof(target), "%s/elsewhere.db", f->dir);
	assert_int_equal(symlink(target, link), 0);
	expect_open_refused(link, -ELOOP, "symbolic link");
	assert_int_not_equal(lstat(target, &st), 0);
	assert_int_equal(unlink(link), 0);

	/* The real path still opens. */
	assert_int_equal(store_open(f->path, 1, &f->s), 0);
}

/* SQLite opens PATH-wal and PATH-shm by name and follows links: a planted
 * link would send WAL frames or the lock file somewhere else. */
static void test_open_refuses_wal_shm_symlink(void **state)
{
	static const char *const suffix[] = { "-wal", "-shm" };
	struct fixture *f = *state;
	char side[170], target[160];
	struct stat st;

	store_close(f->s);
	f->s = NULL;
	snprintf(target, sizeof(target), "%s/elsewhere", f->dir);
	for (size_t i = 0; i < 2; i++) {
		snprintf(side, sizeof(side), "%s%s", f->path, suffix[i]);
		(void)unlink(side);
		assert_int_equal(symlink(target, side), 0);
		expect_open_refused_at(f->path, side, -ELOOP, "symbolic link");
		assert_int_not_equal(lstat(target, &st), 0);
		assert_int_equal(unlink(side), 0);
	}
	assert_int_equal(store_open(f->path, 1, &f->s), 0);
}

/* docs/operations.md, restore: "owner vaultd, mode 0600". Read bits for
 * group or others are taken away (test_open_creates_0600_wal_latest); a
 * file that others could have written is refused and left as it is. */
static void test_open_refuses_writable_by_others(void **state)
{
	static const mode_t modes[] = { 0660, 0620, 0606, 0602, 0666 };
	struct fixture *f = *state;
	struct stat st;

	store_close(f->s);
	f->s = NULL;
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		assert_int_equal(chmod(f->path, modes[i]), 0);
		expect_open_refused(f->path, -EPERM, "writable by group or others");
		assert_int_equal(stat(f->path, &st), 0);
		assert_int_equal(st.st_mode & 07777, modes[i]);
	}
	assert_int_equal(chmod(f->path, 0600), 0);
	assert_int_equal(store_open(f->path, 1, &f->s), 0);
}

static void test_open_refuses_foreign_owner(void **state)
{
	struct fixture *f = *state;
	char wal[170];
	struct stat st;
	int fd;

	if (geteuid() != 0)
		fail_msg("this test chowns the database: run the suite as root, as CI does");
	store_close(f->s);
	f->s = NULL;
	assert_int_equal(chown(f->path, OTHER_UID, OTHER_UID), 0);
	expect_open_refused(f->path, -EPERM, "owned by uid 4242");
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_uid, OTHER_UID);
	assert_int_equal(chown(f->path, 0, 0), 0);

	/* A -wal someone else owns (SQLite would replay it). */
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	fd = open(wal, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(chown(wal, OTHER_UID, OTHER_UID), 0);
	expect_open_refused_at(f->path, wal, -EPERM, "owned by uid 4242");
	assert_int_equal(unlink(wal), 0);
	assert_int_equal(store_open(f->path, 1, &f->s), 0);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_open_creates_0600_wal_latest),
		T(test_open_bad_args),
		T(test_reopen_keeps_data),
		T(test_future_version_refused),
		T(test_meta),
		T(test_rootkey),
		T(test_kek),
		T(test_secret_versions),
		T(test_secret_put_bad_args),
		T(test_soft_delete_and_revive),
		T(test_destroy_wipes_blobs),
		T(test_list_prefix),
		T(test_version_list),
		T(test_users),
		T(test_migrate_v1_to_latest),
		T(test_user_mfa_fields),
		T(test_user_list),
		T(test_role_counting),
		T(test_totp_step),
		T(test_recovery_codes),
		T(test_tokens),
		T(test_user_delete_cascades),
		T(test_roles),
		T(test_services),
		T(test_failures),
		T(test_identity_writes_refuse_read_tx),
		T(test_audit_append_last),
		T(test_audit_null_fields_and_hash),
		T(test_audit_query_filters),
		T(test_audit_query_paging_and_limits),
		T(test_audit_iterate),
		T(test_pending_promote),
		T(test_prune_versions),
		T(test_version_list_old_kek),
		T(test_version_list_range),
		T(test_version_rewrap_retag),
		T(test_kek_rotation_support),
		T(test_rootkey_rotation_support),
		T(test_user_mfa_keys),
		T(test_rotations),
		T(test_list_max_age),
		T(test_audit_retention),
		T(test_backup),
		T(test_rollback_without_commit),
		T(test_write_begin_reentry),
		T(test_read_snapshot_does_not_block_writer),
		T(test_concurrent_writers),
		T(test_reader_pool_waits),
		T(test_integrity_check),
		T(test_open_refuses_symlink),
		T(test_open_refuses_wal_shm_symlink),
		T(test_open_refuses_writable_by_others),
		T(test_open_refuses_foreign_owner),
	};
#undef T
	/* VAULTD_TEST_DEBUG=1 shows the store's debug lines (SQLite messages). */
	if (getenv("VAULTD_TEST_DEBUG"))
		log_set_max_level(LOG_DEBUG);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
