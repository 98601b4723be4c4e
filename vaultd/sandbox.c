/* vaultd/sandbox.c: see sandbox.h. */
#include <errno.h>
#include <limits.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/log.h"
#include "common/util.h"
#include "vaultd/sandbox.h"

int sandbox_early(void)
{
	const struct rlimit no_core = { 0, 0 };

	if (setrlimit(RLIMIT_CORE, &no_core) < 0)
		return -errno;
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return -errno;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	umask(077);
	/* Whatever a parent leaked to us (a database handle, a socket) must not
	 * live on in the daemon. */
	if (close_range(3, ~0u, 0) < 0 && errno != ENOSYS)
		return -errno;
	return 0;
}

int sandbox_lock_memory(void)
{
#if defined(__SANITIZE_ADDRESS__)
	/* ASan reserves terabytes of shadow memory: locking it all would fail or
	 * exhaust RAM. Sanitizer builds are for tests, never for production. */
	return -EOPNOTSUPP;
#else
	/* MCL_ONFAULT: a page is locked when first touched, not populated in
	 * advance, so thread stacks and the secure arena cost what they use
	 * (a page never touched holds nothing to swap out). */
	return mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) < 0 ? -errno : 0;
#endif
}

int sandbox_check_dir(const char *dir)
{
	const uid_t me = geteuid();
	struct stat st;
	unsigned mode;

	if (stat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	mode = (unsigned)st.st_mode & 07777;
	/* The sticky bit stops others renaming or deleting our entries, not
	 * creating names first (a vault.db-wal, a socket path): /tmp is out. */
	if (st.st_mode & S_IWOTH) {
		log_error("directory '%s' is world-writable (mode %04o): the directory of the database "
			  "or the socket must be writable only by uid %u or root", dir, mode, (unsigned)me);
		return -EPERM;
	}
	/* Whoever the group is, its members are not the daemon. */
	if (st.st_mode & S_IWGRP) {
		log_error("directory '%s' is group-writable (mode %04o, group %u): the directory of the "
			  "database or the socket must be writable only by uid %u or root", dir, mode,
			  (unsigned)st.st_gid, (unsigned)me);
		return -EPERM;
	}
	/* Its owner may chmod it and write whatever it likes. */
	if (st.st_uid != me && st.st_uid != 0) {
		log_error("directory '%s' is owned by uid %u: the directory of the database or the socket "
			  "must be owned by uid %u (the daemon) or root", dir, (unsigned)st.st_uid, (unsigned)me);
		return -EPERM;
	}
	return 0;
}

static bool in_group(gid_t gid)
{
	_cleanup_free_ gid_t *groups = NULL;
	int n;

	if (getegid() == gid)
		return true;
	n = getgroups(0, NULL);
	if (n <= 0 || !(groups = calloc((size_t)n, sizeof(*groups))))
		return false;
	n = getgroups(n, groups);
	for (int i = 0; i < n; i++)
		if (groups[i] == gid)
			return true;
	return false;
}

int sandbox_check_socket_group(const char *socket_path, mode_t socket_mode, const char *group, gid_t gid)
{
	char buf[PATH_MAX];
	const char *dir;
	struct stat st;

	if (gid == (gid_t)-1)
		return 0;
	/* chown() to a group needs membership, or CAP_CHOWN (root). */
	if (geteuid() != 0 && !in_group(gid)) {
		log_error("socket_group '%s' (gid %u): vaultd's uid %u is not a member, so it cannot give the "
			  "socket to it; add it (usermod -aG %s USER, or SupplementaryGroups=%s in the unit)",
			  group, (unsigned)gid, (unsigned)geteuid(), group, group);
		return -EPERM;
	}
	if (!(socket_mode & S_IWGRP)) {
		log_error("socket_group '%s' is set but socket_mode %04o gives the group no write permission, "
			  "which connecting needs; use socket_mode = 0660", group, (unsigned)socket_mode);
		return -EPERM;
	}
	snprintf(buf, sizeof(buf), "%s", socket_path);
	dir = dirname(buf);
	if (stat(dir, &st) < 0)
		return -errno;
	if (!(st.st_mode & S_IXOTH) && !((st.st_mode & S_IXGRP) && st.st_gid == gid)) {
		log_error("the socket's directory '%s' (mode %04o, group %u) does not let members of "
			  "socket_group '%s' reach the socket; make it traversable: chmod 0755 (the socket's own "
			  "mode decides who connects), or RuntimeDirectoryMode=0755 in the unit",
			  dir, (unsigned)st.st_mode & 07777, (unsigned)st.st_gid, group);
		return -EPERM;
	}
	return 0;
}
