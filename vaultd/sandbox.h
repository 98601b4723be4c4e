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
/* -EPERM if dir (the directory holding the database or the socket) is
 * world-writable without the sticky bit, or group/world-writable and not
 * owned by us or root; -errno if it cannot be inspected. */
int sandbox_check_dir(const char *dir);
