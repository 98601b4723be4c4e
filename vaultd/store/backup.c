/* vaultd/store/backup.c: a consistent online copy of the database (VACUUM
 * INTO), measured for the caller; see store.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/log.h"
#include "common/util.h"
#define STORE_INTERNAL
#include "vaultd/store/internal.h"
#include "vaultd/store/store.h"

enum {
	Q_BACKUP,
	_Q_BACKUP_MAX,
};

static const char *const backup_sql[_Q_BACKUP_MAX] = {
	/* Only ever prepared on store_backup()'s own connection. */
	[Q_BACKUP] = "VACUUM INTO ?1",
};
DEFINE_STMT_TABLE(backup_stmts, STMT_BACKUP, backup_sql);

#define BACKUP_READ_CHUNK 65536
/* The SQLite file header: its magic, and user_version (big-endian) at 60. */
#define SQLITE_HEADER_MAGIC "SQLite format 3"
#define SQLITE_HEADER_USER_VERSION 60

/* VACUUM INTO on a short-lived read-only connection of its own. The pool's
 * readers run with query_only=ON, under which SQLite refuses VACUUM INTO
 * (it writes the copy), and a long copy should not hold a pool slot. With
 * no BEGIN around it, VACUUM INTO reads one consistent snapshot; in WAL
 * mode that never blocks the writer. */
static int backup_copy(struct store *s, const char *path)
{
	struct conn c = {0};
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = conn_open_private(s, &c)) >= 0 &&
	    (r = stmt_get(&c, &backup_stmts, Q_BACKUP, &st)) >= 0 &&
	    (r = bind_text(&c, st, 1, path)) >= 0)
		r = step_done(&c, st, "vacuum into");
	conn_close(&c);         /* finalizes st */
	return r;
}

/* Flushes the copy, checks it is still the file created (same inode) and
 * a SQLite database, and measures it: size, SHA-256, user_version. */
static int backup_describe(const char *path, const struct stat *created, struct store_backup_info *ret)
{
	_cleanup_free_ uint8_t *buf = NULL;
	crypto_hash_sha256_state h;
	uint8_t header[100];
	struct stat st;
	int64_t bytes = 0;
	ssize_t n;
	int fd, r = 0;

	buf = malloc(BACKUP_READ_CHUNK);
	if (!buf)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return log_debug_errno(-errno, "backup: reopen the copy");
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_dev != created->st_dev || st.st_ino != created->st_ino) {
		r = log_debug_errno(-EIO, "backup: the copy was replaced");
		goto out;
	}
	/* VACUUM INTO writes the copy without syncing it. */
	if (fsync(fd) < 0) {
		r = log_debug_errno(-errno, "backup: fsync the copy");
		goto out;
	}
	crypto_hash_sha256_init(&h);
	while ((n = read(fd, buf, BACKUP_READ_CHUNK)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = log_debug_errno(-errno, "backup: read the copy");
			goto out;
		}
		if (bytes < (int64_t)sizeof(header))
			memcpy(header + bytes, buf,
			       MIN((size_t)n, sizeof(header) - (size_t)bytes));
		crypto_hash_sha256_update(&h, buf, (unsigned long long)n);
		bytes += n;
	}
	if (bytes < (int64_t)sizeof(header) ||
	    memcmp(header, SQLITE_HEADER_MAGIC, sizeof(SQLITE_HEADER_MAGIC)) != 0) {
		r = log_debug_errno(-EIO, "backup: the copy is not a database");
		goto out;
	}
	crypto_hash_sha256_final(&h, ret->sha256);
	ret->bytes = bytes;
	ret->schema_version = (int)(int32_t)get_be32(header + SQLITE_HEADER_USER_VERSION);
out:
	(void)close(fd);
	return r;
}

/* Makes the copy's directory entry durable. */
static int fsync_parent(const char *path)
{
	_cleanup_free_ char *dir = strdup(path);
	char *slash;
	int fd, r = 0;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		slash[1] = 0;
	else
		*slash = 0;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return log_debug_errno(-errno, "backup: open the directory");
	if (fsync(fd) < 0)
		r = log_debug_errno(-errno, "backup: fsync the directory");
	(void)close(fd);
	return r;
}

int store_backup(struct store *s, const char *path, struct store_backup_info *ret)
{
	struct store_backup_info info = {0};
	struct stat created;
	int fd, r;

	if (!s || !path || !*path || !ret)
		return -EINVAL;
	/* Created here, empty, 0600 whatever the umask: O_EXCL makes "must not
	 * exist" and the creation one step, O_NOFOLLOW refuses a symlink.
	 * VACUUM INTO accepts an empty file. The fd is closed before SQLite
	 * opens the file (see file_prepare()). */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0)
		return log_debug_errno(-errno, "backup: create the copy");
	if (fstat(fd, &created) < 0 || fchmod(fd, 0600) < 0) {
		r = -errno;
		(void)close(fd);
		(void)unlink(path);
		return r;
	}
	(void)close(fd);

	r = backup_copy(s, path);
	if (r >= 0)
		r = backup_describe(path, &created, &info);
	if (r >= 0)
		r = fsync_parent(path);
	if (r < 0) {
		/* Removed, unless someone replaced it: that file is not ours. */
		struct stat now;

		if (lstat(path, &now) == 0 && now.st_dev == created.st_dev &&
		    now.st_ino == created.st_ino)
			(void)unlink(path);
		return r;
	}
	*ret = info;
	return 0;
}
