/* vaultctl/token.c: see token.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include "vaultctl/msg.h"
#include "vaultctl/token.h"

#define TOKEN_MAX 512

/* The directory that holds the token file; NULL (and why) when none can be named.
 * An XDG_RUNTIME_DIR that is not ours (inherited through sudo or su, say) is
 * someone else's runtime directory, not our token store: it is passed over
 * for /run/user/<uid>, as if unset, so a service uid acts as its binding. */
static int token_dir(char **ret, bool for_writing)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");
	char *dir = NULL, fallback[64], why[160] = "";
	struct stat st;

	if (rt && *rt && rt[0] != '/')
		return error("XDG_RUNTIME_DIR must be an absolute path");
	if (rt && *rt && (stat(rt, &st) < 0 || st.st_uid != getuid())) {
		snprintf(why, sizeof(why), "XDG_RUNTIME_DIR %s is not yours", rt);
		rt = NULL;
	}
	if (!rt || !*rt) {
		snprintf(fallback, sizeof(fallback), "/run/user/%u", (unsigned)getuid());
		if (stat(fallback, &st) < 0 || !S_ISDIR(st.st_mode)) {
			*ret = NULL;
			if (for_writing)
				return error("%s and %s does not exist: set XDG_RUNTIME_DIR to a private directory",
					     why[0] ? why : "XDG_RUNTIME_DIR is not set", fallback);
			return EXIT_OK;
		}
		rt = fallback;
	}
	if (asprintf(&dir, "%s/vaultctl", rt) < 0)
		return error("out of memory");
	*ret = dir;
	return EXIT_OK;
}

/* Private means ours and closed to group and others; a symlink is refused too. */
static int check_private(const char *path, const struct stat *st, bool dir)
{
	if (dir ? !S_ISDIR(st->st_mode) : !S_ISREG(st->st_mode))
		return error("refusing the token %s %s: not a %s", dir ? "directory" : "file", path,
			     dir ? "directory" : "regular file");
	if (st->st_uid != getuid())
		return error("refusing the token %s %s: it is not owned by you; remove it and run 'vaultctl login'",
			     dir ? "directory" : "file", path);
	if (st->st_mode & 077)
		return error("refusing the token %s %s: its mode %04o lets others in; remove it (others may have read the token) and run 'vaultctl login'",
			     dir ? "directory" : "file", path, (unsigned)(st->st_mode & 07777));
	return EXIT_OK;
}

static int token_set(struct ctx *ctx, const char *p, size_t n)
{
	while (n && (p[n - 1] == '\n' || p[n - 1] == '\r'))
		n--;
	if (n == 0 || n > TOKEN_MAX)
		return error("the token is empty or too long: run 'vaultctl login'");
	for (size_t i = 0; i < n; i++)
		if (p[i] <= ' ' || p[i] > '~')
			return error("the token contains invalid characters: run 'vaultctl login'");
	if (secret_new(n + 1, &ctx->token) < 0 || secret_append(ctx->token, p, n) < 0 ||
	    secret_append(ctx->token, "", 1) < 0)
		return error("out of memory");
	return EXIT_OK;
}

int token_get(struct ctx *ctx)
{
	_cleanup_free_ char *dir = NULL, *file = NULL;
	_cleanup_secret_ struct secret *buf = NULL;
	const char *env = getenv("VAULTD_TOKEN");
	struct stat st;
	ssize_t n;
	int fd, r;

	if (ctx->token_loaded)
		return EXIT_OK;
	ctx->token_loaded = true;
	if (env && *env)
		return token_set(ctx, env, strlen(env));
	if ((r = token_dir(&dir, false)) != EXIT_OK || !dir)
		return r;
	if (lstat(dir, &st) < 0)
		return errno == ENOENT ? EXIT_OK : error("cannot read %s: %m", dir);
	if ((r = check_private(dir, &st, true)) != EXIT_OK)
		return r;
	if (asprintf(&file, "%s/token", dir) < 0)
		return error("out of memory");
	fd = open(file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT)
			return EXIT_OK;
		if (errno == ELOOP)
			return error("refusing the token file %s: it is a symlink", file);
		return error("cannot read the token file %s: %m", file);
	}
	if (fstat(fd, &st) < 0 || (r = check_private(file, &st, false)) != EXIT_OK ||
	    secret_new(TOKEN_MAX + 2, &buf) < 0) {
		close(fd);
		return r != EXIT_OK ? r : error("cannot read the token file %s", file);
	}
	n = read(fd, buf->p, buf->cap);
	close(fd);
	if (n < 0)
		return error("cannot read the token file %s: %m", file);
	return token_set(ctx, (const char *)buf->p, (size_t)n);
}

static int token_dir_ready(char **ret)
{
	_cleanup_free_ char *dir = NULL;
	struct stat st;
	int r;

	if ((r = token_dir(&dir, true)) != EXIT_OK)
		return r;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return error("cannot create %s: %m", dir);
	if (lstat(dir, &st) < 0)
		return error("cannot read %s: %m", dir);
	if ((r = check_private(dir, &st, true)) != EXIT_OK)
		return r;
	*ret = TAKE_PTR(dir);
	return EXIT_OK;
}

int token_can_store(void)
{
	_cleanup_free_ char *dir = NULL;

	return token_dir_ready(&dir);
}

int token_store(const char *token, size_t len, char **ret_path)
{
	_cleanup_free_ char *dir = NULL, *file = NULL, *tmp = NULL;
	int fd, r;

	if ((r = token_dir_ready(&dir)) != EXIT_OK)
		return r;
	if (asprintf(&file, "%s/token", dir) < 0 || asprintf(&tmp, "%s/.token.XXXXXX", dir) < 0)
		return error("out of memory");
	fd = mkstemp(tmp);      /* 0600 */
	if (fd < 0)
		return error("cannot create a file in %s: %m", dir);
	if (fchmod(fd, 0600) < 0 || write(fd, token, len) != (ssize_t)len || write(fd, "\n", 1) != 1 ||
	    fsync(fd) < 0) {
		r = errno;
		close(fd);
		unlink(tmp);
		return error("cannot write the token file in %s: %s", dir, strerror(r));
	}
	if (close(fd) < 0 || rename(tmp, file) < 0) {
		r = errno;
		unlink(tmp);
		return error("cannot write the token file %s: %s", file, strerror(r));
	}
	*ret_path = TAKE_PTR(file);
	return EXIT_OK;
}

int token_remove(void)
{
	_cleanup_free_ char *dir = NULL, *file = NULL;
	int r;

	if ((r = token_dir(&dir, false)) != EXIT_OK || !dir)
		return r;
	if (asprintf(&file, "%s/token", dir) < 0)
		return error("out of memory");
	if (unlink(file) < 0 && errno != ENOENT)
		return error("cannot remove the token file %s: %m", file);
	return EXIT_OK;
}
