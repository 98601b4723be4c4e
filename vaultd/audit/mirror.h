/* vaultd/audit/mirror.h: the JSON-lines audit mirror ([audit] jsonl_path).
 *
 * One writer thread per mirror opens the file (O_APPEND, created 0600, no
 * symlinks), writes one line and closes it again for every record, so log
 * rotation needs nothing from us. Callers hand a line over and wait at most
 * timeout_ms: a mirror on a hung file system or a FIFO nobody reads then
 * delays one request by the timeout, and later ones fail at once until the
 * stuck write returns, instead of freezing the store's writer for good.
 * Lines are written in handoff order. Any thread may call mirror_write();
 * vaultd does so under the store writer lock, one caller at a time (a caller
 * that overlaps another waits for it, within its own timeout).
 */
#pragma once
#include <stddef.h>

struct mirror;

/* Starts the writer thread for path (copied). The file is not touched until
 * the first line. 0, -EINVAL (empty path or a zero timeout), -ENOMEM, or
 * pthread_create()'s error as -errno. */
int mirror_new(const char *path, unsigned timeout_ms, struct mirror **ret);

/* Appends line[0..n) and a '\n' (the line must hold no newline and nothing
 * secret: it is copied and freed without wiping). 0 once written whole;
 * -errno of open(), write() or close(); -EIO for a short write; -ENOMEM;
 * -ETIMEDOUT when it was not written within the timeout: the line is then
 * abandoned and not written if the writer had not got past open() (a hung
 * mount, a FIFO without a reader), but it may still land later if the writer
 * was already inside write(); -EBUSY at once, without waiting, while the
 * writer is still stuck on an abandoned line. */
int mirror_write(struct mirror *m, const char *line, size_t n);

/* Stops the writer; no mirror_write() may be running. NULL-safe. Never
 * waits for a stuck writer: that thread is detached and frees the mirror
 * itself when its system call returns. */
void mirror_free(struct mirror *m);
