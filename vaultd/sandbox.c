/* vaultd/sandbox.c: see sandbox.h. */
#include <errno.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
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
	return mlockall(MCL_CURRENT | MCL_FUTURE) < 0 ? -errno : 0;
#endif
}

int sandbox_check_dir(const char *dir)
{
	struct stat st;

	if (stat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))
		return -EPERM;
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) && st.st_uid != getuid() && st.st_uid != 0)
		return -EPERM;
	return 0;
}
