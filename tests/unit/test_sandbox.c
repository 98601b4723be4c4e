/* tests/unit/test_sandbox.c: sandbox_check_dir(), the rule for the
 * directories that hold the database and the socket (finding 11). Each test
 * works in its own mkdtemp() directory under /tmp, the way the e2e harness
 * makes its vaults. The ownership cases need root (chown) and skip without it.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include "common/log.h"
#include "vaultd/sandbox.h"

#define OTHER_UID 4242          /* nobody we know */

struct fixture {
	char dir[64];           /* mkdtemp(), 0700 */
	char sub[96];           /* dir/d, made by each test */
	int logfd[2];           /* the log, to check what it names */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/vaultd-e2e-XXXXXX");
	if (!mkdtemp(f->dir) || pipe2(f->logfd, O_NONBLOCK | O_CLOEXEC) < 0) {
		free(f);
		return -1;
	}
	snprintf(f->sub, sizeof(f->sub), "%s/d", f->dir);
	log_set_fd(f->logfd[1]);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char p[128];

	log_set_fd(2);
	close(f->logfd[0]);
	close(f->logfd[1]);
	snprintf(p, sizeof(p), "%s/link", f->dir);
	(void)unlink(p);
	snprintf(p, sizeof(p), "%s/file", f->dir);
	(void)unlink(p);
	(void)rmdir(f->sub);
	(void)rmdir(f->dir);
	free(f);
	return 0;
}

/* What the logger wrote since the last call (NUL-terminated). */
static const char *logged(struct fixture *f)
{
	static char buf[4096];
	ssize_t n = read(f->logfd[0], buf, sizeof(buf) - 1);

	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* f->sub with exactly this mode (mkdir goes through the umask). */
static void make_sub(struct fixture *f, mode_t mode)
{
	(void)rmdir(f->sub);
	assert_int_equal(mkdir(f->sub, 0700), 0);
	assert_int_equal(chmod(f->sub, mode), 0);
}

static void expect_refused(struct fixture *f, const char *dir, const char *why)
{
	const char *log;

	assert_int_equal(sandbox_check_dir(dir), -EPERM);
	log = logged(f);
	/* One line that names the directory and says why. */
	if (!strstr(log, dir) || !strstr(log, why))
		fail_msg("refusing '%s': expected the log to name it and say \"%s\", got \"%s\"", dir, why, log);
}

/* The e2e harness's vaults: mkdtemp() under /tmp, 0700, ours. */
static void test_private_dirs_accepted(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(sandbox_check_dir(f->dir), 0);
	make_sub(f, 0700);
	assert_int_equal(sandbox_check_dir(f->sub), 0);
	make_sub(f, 0711);
	assert_int_equal(sandbox_check_dir(f->sub), 0);
	make_sub(f, 0750);              /* RuntimeDirectoryMode=0750 */
	assert_int_equal(sandbox_check_dir(f->sub), 0);
	make_sub(f, 0755);
	assert_int_equal(sandbox_check_dir(f->sub), 0);
	assert_int_equal(sandbox_check_dir("/"), 0);  /* root's, 0755 */
	assert_string_equal(logged(f), "");
}

/* docs: "its directory must not be world-writable". The sticky bit keeps
 * others from renaming our files, not from creating a vault.db-wal or a
 * socket name first, so it does not make /tmp acceptable. */
static void test_world_writable_refused(void **state)
{
	struct fixture *f = *state;

	make_sub(f, 0777);
	expect_refused(f, f->sub, "world-writable");
	make_sub(f, 01777);
	expect_refused(f, f->sub, "world-writable");
	make_sub(f, 0703);
	expect_refused(f, f->sub, "world-writable");
	make_sub(f, 01733);
	expect_refused(f, f->sub, "world-writable");
	expect_refused(f, "/tmp", "world-writable");
}

/* Group members are others too: the socket's group (docs: socket_group) is
 * exactly the people who must not replace the database. */
static void test_group_writable_refused(void **state)
{
	struct fixture *f = *state;

	make_sub(f, 0770);
	expect_refused(f, f->sub, "group-writable");
	make_sub(f, 0775);
	expect_refused(f, f->sub, "group-writable");
	make_sub(f, 01770);
	expect_refused(f, f->sub, "group-writable");
	make_sub(f, 0720);
	expect_refused(f, f->sub, "group-writable");
}

/* A directory owned by another user is theirs to chmod and fill. */
static void test_foreign_owner_refused(void **state)
{
	struct fixture *f = *state;

	if (geteuid() != 0)
		fail_msg("this test chowns a directory: run the suite as root, as CI does");
	make_sub(f, 0700);
	assert_int_equal(chown(f->sub, OTHER_UID, (gid_t)-1), 0);
	expect_refused(f, f->sub, "owned by uid 4242");
	make_sub(f, 0755);
	assert_int_equal(chown(f->sub, OTHER_UID, OTHER_UID), 0);
	expect_refused(f, f->sub, "owned by uid 4242");
	/* Root's directories are fine (the daemon trusts root anyway). */
	make_sub(f, 0755);
	assert_int_equal(chown(f->sub, 0, OTHER_UID), 0);
	assert_int_equal(sandbox_check_dir(f->sub), 0);
}

static void test_not_a_directory(void **state)
{
	struct fixture *f = *state;
	char file[128], link[128];
	int fd;

	snprintf(file, sizeof(file), "%s/file", f->dir);
	fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(sandbox_check_dir(file), -ENOTDIR);
	(void)rmdir(f->sub);
	assert_int_equal(sandbox_check_dir(f->sub), -ENOENT);

	/* A symbolic link to a directory is judged by the directory. */
	snprintf(link, sizeof(link), "%s/link", f->dir);
	make_sub(f, 0700);
	assert_int_equal(symlink(f->sub, link), 0);
	assert_int_equal(sandbox_check_dir(link), 0);
	assert_int_equal(chmod(f->sub, 01777), 0);
	assert_int_equal(sandbox_check_dir(link), -EPERM);
}

/* sandbox_check_socket_group() in a child that is uid OTHER_UID with the
 * given groups: its return value as the exit status (the negated errno). */
static int check_as_other(struct fixture *f, gid_t gid, const gid_t *groups, size_t n, mode_t mode)
{
	char sock[128];
	int status;
	pid_t pid;

	snprintf(sock, sizeof(sock), "%s/vaultd.sock", f->sub);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgroups(n, groups) < 0 || setgid(OTHER_UID) < 0 || setuid(OTHER_UID) < 0)
			_exit(100);
		_exit(-sandbox_check_socket_group(sock, mode, "clients", gid));
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return -WEXITSTATUS(status);
}

/* Issue 14, point 3: a dedicated socket_group works only if the daemon is
 * in it, the mode grants the group write and the directory lets members
 * through; each miss is refused at start with what to do. */
static void test_socket_group(void **state)
{
	struct fixture *f = *state;
	const gid_t clients = 4343, in[] = { clients };
	const char *log;

	if (geteuid() != 0)
		fail_msg("this test changes uid: run the suite as root, as CI does");
	assert_int_equal(sandbox_check_socket_group("/nonexistent/s", 0660, "", (gid_t)-1), 0);
	make_sub(f, 0755);
	assert_int_equal(chmod(f->dir, 0755), 0);       /* the child must reach sub */

	assert_int_equal(check_as_other(f, clients, NULL, 0, 0660), -EPERM);
	log = logged(f);
	if (!strstr(log, "socket_group 'clients' (gid 4343)") || !strstr(log, "uid 4242 is not a member") ||
	    !strstr(log, "SupplementaryGroups=clients"))
		fail_msg("not a member: the log must name the group, the uid and the fix, got \"%s\"", log);

	assert_int_equal(check_as_other(f, clients, in, 1, 0660), 0);
	assert_int_equal(check_as_other(f, clients, in, 1, 0600), -EPERM);
	log = logged(f);
	if (!strstr(log, "socket_mode 0600"))
		fail_msg("a mode without group write: got \"%s\"", log);

	/* 0750 owned by another group: members cannot reach the socket. */
	assert_int_equal(chmod(f->sub, 0750), 0);
	assert_int_equal(check_as_other(f, clients, in, 1, 0660), -EPERM);
	log = logged(f);
	if (!strstr(log, f->sub) || !strstr(log, "mode 0750") || !strstr(log, "RuntimeDirectoryMode=0755"))
		fail_msg("an unreachable directory: the log must name it, its mode and the fix, got \"%s\"", log);
	/* 0750 of that very group is fine, and so is 0711. */
	assert_int_equal(chown(f->sub, 0, clients), 0);
	assert_int_equal(check_as_other(f, clients, in, 1, 0660), 0);
	assert_int_equal(chown(f->sub, 0, 0), 0);
	assert_int_equal(chmod(f->sub, 0711), 0);
	assert_int_equal(check_as_other(f, clients, in, 1, 0660), 0);
	assert_int_equal(chmod(f->dir, 0700), 0);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_private_dirs_accepted),
		T(test_world_writable_refused),
		T(test_group_writable_refused),
		T(test_foreign_owner_refused),
		T(test_not_a_directory),
		T(test_socket_group),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
