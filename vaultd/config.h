/* vaultd/config.h: vaultd.conf, an INI file read by inih into a typed struct.
 *
 * One static table in config.c maps every "section.key" to a typed parser and
 * the offsetof() of its field below; every key has a default, set by
 * config_init_defaults() from that same table. Unknown sections and keys, a
 * key set twice, and values out of range are errors, never ignored. Values
 * are trimmed and unquoted; ';' after whitespace starts a comment (also after
 * a value); '#' starts a comment only at the beginning of a line, and a lone
 * '#' after a value ("/x # note") is refused. Lines may be indented;
 * continuation lines do not exist; a line holds at most CONFIG_LINE_MAX
 * characters and a file at most CONFIG_FILE_MAX bytes.
 * Secrets never go in this file: the HSM PIN is named by pin_file or pin_env.
 *
 * Ownership: a loaded struct config owns its strings (malloc()ed); release
 * them with config_free(), which frees the members and not the struct, so the
 * struct can live on the stack: `_cleanup_(config_free) struct config c = {0};`.
 * Optional strings are NULL when unset (an empty value in the file means
 * unset); required strings are never NULL after a successful load.
 *
 * Errors: 0 on success or a negative errno. Every failure writes one line
 * (no trailing newline) to the caller's err buffer when err_size > 0, naming
 * the file, the line and the key, e.g.
 *   /etc/vaultd/vaultd.conf:12: [server] socket_mode: must be an octal mode like 0660
 * Messages quote key and section names (control characters replaced) and
 * never a value.
 *
 * Threads: no global state (the inih globals are left alone); vaultd calls
 * it from the main thread only. A SIGHUP reload loads a new struct config and
 * swaps it in only on success, so a bad edit leaves the running config alone.
 */
#pragma once
#include <stddef.h>
#include <sys/types.h>
#include "common/util.h"

#define CONFIG_LINE_MAX 197             /* inih's line buffer (200) minus "\r\n\0" */
#define CONFIG_FILE_MAX 65536
#define CONFIG_SOCKET_PATH_MAX 107      /* sizeof(sun_path) - 1 */

struct config {
	struct {
		char *socket;           /* absolute, <= 107 bytes */
		mode_t socket_mode;     /* <= 0777, never o+w */
		char *socket_group;     /* NULL: the daemon's primary group; else a name */
		unsigned max_connections;       /* 1..4096 */
		unsigned max_connections_per_uid;       /* 1..max_connections; unset: 32 or half */
		unsigned request_timeout;       /* seconds, 1..3600 */
		unsigned max_body;      /* bytes, 1024..1048576 */
		unsigned threads;       /* 1..64 */
		unsigned secure_memory_mib;     /* the secure arena, MiB (rounded up to a power of two), 1..1024 */
	} server;
	struct {
		char *path;             /* absolute */
		unsigned readers;       /* 1..16 */
	} storage;
	struct {
		char *module;           /* absolute path of the PKCS#11 module */
		char *token_label;      /* 1..32 bytes */
		char *pin_file;         /* absolute; exactly one of pin_file, pin_env is set */
		char *pin_env;          /* environment variable name */
		char *key_label;        /* 1..64 printable ASCII, no spaces */
		/* Checked against the allowed names only: vaultd maps them with
		 * keyprov_mech_from_name() and keyprov_hash_from_name(). */
		char *mechanism;        /* "oaep-sha256-host" or "oaep-token" */
		char *oaep_token_hash;  /* "sha1" or "sha256"; used by oaep-token only */
		unsigned timeout_ms;    /* 100..600000 */
	} hsm;
	struct {
		unsigned session_ttl;           /* seconds, 60..86400 */
		unsigned max_failures;          /* 1..100 */
		unsigned lockout_seconds;       /* 1..86400 */
		unsigned argon2_memory_kib;     /* 8192..4194304 */
		unsigned argon2_iterations;     /* 1..100 */
		unsigned argon2_parallelism;    /* 1..16 */
	} auth;
	struct {
		char *jsonl_path;       /* NULL: no JSON-lines mirror; else absolute */
		char *jsonl_on_failure; /* "refuse" (fail closed, 503) or "continue" (log and serve) */
		unsigned jsonl_timeout_ms;      /* a request waits this long for the mirror, 10..60000 */
		unsigned retain_days;   /* 0: keep forever; else prune older records, 1..36500 */
		char *sync;             /* "full": each batch of read records fsynced; "normal": see vaultd.conf(5) */
		unsigned sync_interval_ms;      /* normal: records of reads reach the disk within this, 10..60000 */
	} audit;
	struct {
		unsigned keep_versions; /* versions kept per secret before the oldest are destroyed, 1..1000 */
	} secrets;
	struct {
		unsigned kek_max_wraps; /* DEKs a KEK wraps before it is rotated automatically, 10..2^31 */
		unsigned kek_cache_max; /* unwrapped tenant KEKs kept in memory (LRU), 1..1048576 */
	} keys;
	struct {
		unsigned batch_size;    /* rows per rotation transaction, 1..10000 */
	} rotation;
	struct {
		int level;              /* LOG_ERR ... LOG_DEBUG (syslog.h) */
	} log;
};

/* Overwrites *c (without freeing what it held) with the defaults.
 * 0, or -ENOMEM with *c zeroed. */
int config_init_defaults(struct config *c);

/* Frees the members and zeroes *c; the struct itself is the caller's.
 * NULL-safe, and safe on a zeroed or already freed struct. */
void config_free(struct config *c);

/* Defaults, then the file, then the cross-key checks (exactly one of
 * hsm.pin_file and hsm.pin_env). Does not check the file's permissions: call
 * config_check_file_safety() first. On success the caller owns *c; on
 * failure *c is zeroed (config_free() on it is a no-op).
 * -EINVAL bad syntax, key or value; -ENOENT, -EACCES, ... the file cannot be
 * opened or read; -EFBIG larger than CONFIG_FILE_MAX; -ENOMEM. */
int config_load(const char *path, struct config *c, char *err, size_t err_size);

/* As config_load() on a NUL-terminated text; name_for_errors (NULL:
 * "<string>") prefixes the messages. For tests and `vaultd --dev`. */
int config_load_string(const char *text, const char *name_for_errors, struct config *c, char *err,
		       size_t err_size);

/* Refuses (-EPERM) a config file that is not a regular file, is writable by
 * others, or sits in a directory writable by others without the sticky bit
 * (checked for the path as given and, through symlinks, for the file's real
 * directory). -ENOENT etc. when it cannot be examined. Symlinks are followed. */
int config_check_file_safety(const char *path, char *err, size_t err_size);
