/* vaultd/sandbox.h: process hardening (ARCHITECTURE.md section 8).
 * Main thread, before any other thread exists.
 */
#pragma once

/* No core dumps (RLIMIT_CORE 0, non-dumpable, which also stops same-uid
 * ptrace), no new privileges, umask 077, inherited descriptors above 2
 * closed. 0 or -errno. */
int sandbox_early(void);
/* mlockall(MCL_CURRENT | MCL_FUTURE) so nothing is swapped. -errno when not
 * permitted (RLIMIT_MEMLOCK, no CAP_IPC_LOCK); the caller decides. */
int sandbox_lock_memory(void);
/* Checks dir (the directory holding the database or the socket; a symbolic
 * link is judged by its target): only the daemon may change what is in it.
 * -EPERM, with one error line naming dir and the reason, if it is
 * world-writable (sticky or not: /tmp is refused), group-writable (whatever
 * the group), or owned by anyone but the daemon's effective uid or root.
 * -ENOTDIR if it is not a directory; -errno if it cannot be inspected. */
int sandbox_check_dir(const char *dir);
