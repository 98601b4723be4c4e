/* vaultd/sandbox.h: process hardening (ARCHITECTURE.md section 8).
 * Main thread, before any other thread exists.
 */
#pragma once
#include <sys/types.h>

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
/* Checks that socket_group (name, gid; gid -1: none, 0 returned) can work:
 * a daemon that is not root must be in the group to give the socket to it;
 * socket_mode must grant the group write (connecting needs it); and the
 * socket's directory must let members through (o+x, or g+x with that
 * group). -EPERM with one error line naming the group, the uid, the
 * directory or the mode, and the fix; -errno if the directory cannot be
 * inspected. Before the socket is bound. */
int sandbox_check_socket_group(const char *socket_path, mode_t socket_mode, const char *group, gid_t gid);
