/* vaultd/sandbox.c: see sandbox.h. */
#include <errno.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/log.h"
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
