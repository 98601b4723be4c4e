/* vaultctl/vaultctl.h: what every command of vaultctl shares.
 * Commands return an exit code (section 9 of ARCHITECTURE.md), never -errno:
 * the process exits with what main() gets back. Single-threaded.
 */
#pragma once
#include <getopt.h>
#include <stdbool.h>
#include <jansson.h>
#include "common/secret.h"

enum {
	EXIT_OK = 0,
	EXIT_ERROR = 1,
	EXIT_USAGE = 2,
	EXIT_LOCKED = 3,
	EXIT_AUTH = 4,
	EXIT_FORBIDDEN = 5,
	EXIT_NOT_FOUND = 6,
	EXIT_CONFLICT = 7,
};

#define DEFAULT_SOCKET "/run/vaultd/vaultd.sock"

struct ctx {
	const char *socket;     /* -s, else $VAULTD_SOCKET, else DEFAULT_SOCKET */
	bool json;              /* --json: the API's JSON on stdout */
	bool token_loaded;      /* token was looked up (it may still be NULL) */
	struct secret *token;   /* bearer token, NUL-terminated; NULL: none */
};

/* Long options every command accepts after its name as well as before it. */
enum { OPT_JSON = 0x100, OPT_COMMON_LAST = 0x1ff };
#define COMMON_LONGOPTS                                                 \
	{ "json", no_argument, NULL, OPT_JSON },                        \
	{ "socket", required_argument, NULL, 's' },                     \
	{ "help", no_argument, NULL, 'h' }
#define COMMON_SHORTOPTS "s:h"

/* Returned by common_option() for an option it handled: keep parsing. */
#define OPT_CONTINUE (-1)
/* Handles --json, -s, -h (prints help, returns EXIT_OK) and unknown options
 * ('?' or anything else: a hint on stderr, EXIT_USAGE). */
int common_option(struct ctx *ctx, int c, const char *help);
/* Set while a progress line is drawn on standard error (a terminal, see
 * rotate.c): progress_wipe() erases it, and every message below calls it
 * first, so a message never lands on the progress line. */
extern bool progress_drawn;
void progress_wipe(void);
/* The messages below are escaped for the terminal like every printer in
 * output.h: quote server text in them freely. */
/* Prints "vaultctl: MSG" and a --help hint to stderr; returns EXIT_USAGE. */
int usage_error(const char *cmd, const char *fmt, ...) _printf_(2, 3);
/* Prints "vaultctl: MSG" to stderr; returns EXIT_ERROR. */
int error(const char *fmt, ...) _printf_(1, 2);
void warning(const char *fmt, ...) _printf_(1, 2);

/* Command groups, one file each. argv[0] is the command's name. */
int cmd_status(struct ctx *ctx, int argc, char **argv);
int cmd_init(struct ctx *ctx, int argc, char **argv);
int cmd_unlock(struct ctx *ctx, int argc, char **argv);
int cmd_lock(struct ctx *ctx, int argc, char **argv);
int cmd_login(struct ctx *ctx, int argc, char **argv);
int cmd_logout(struct ctx *ctx, int argc, char **argv);
int cmd_put(struct ctx *ctx, int argc, char **argv);
int cmd_get(struct ctx *ctx, int argc, char **argv);
int cmd_list(struct ctx *ctx, int argc, char **argv);
int cmd_delete(struct ctx *ctx, int argc, char **argv);
int cmd_versions(struct ctx *ctx, int argc, char **argv);
int cmd_rollback(struct ctx *ctx, int argc, char **argv);
int cmd_promote(struct ctx *ctx, int argc, char **argv);
int cmd_types(struct ctx *ctx, int argc, char **argv);
int cmd_user(struct ctx *ctx, int argc, char **argv);
int cmd_role(struct ctx *ctx, int argc, char **argv);
int cmd_service(struct ctx *ctx, int argc, char **argv);
int cmd_audit(struct ctx *ctx, int argc, char **argv);
int cmd_rotate(struct ctx *ctx, int argc, char **argv);
int cmd_backup(struct ctx *ctx, int argc, char **argv);

/* A subcommand of a group (user, role, service, audit, rotate). */
struct subcommand {
	const char *name;
	int (*run)(struct ctx *ctx, int argc, char **argv);
	const char *summary;
};
/* Runs argv[1] of a group from table (NULL-terminated); help is the group's. */
int run_subcommand(struct ctx *ctx, const char *group, const struct subcommand *table, const char *help,
		   int argc, char **argv);

/* Parses a non-negative decimal integer <= max; -EINVAL otherwise. */
int parse_uint(const char *s, unsigned long max, unsigned long *ret);

/* getopt_long over a command's argv from argv[1] (optind reset each time). */
#define GETOPT(argc, argv, shortopts, longopts) getopt_long(argc, argv, shortopts, longopts, NULL)

/* auth.c: the {"user", "passphrase", "totp"|"recovery_code"} body of unlock
 * and login, from files, options or prompts. */
int credentials_body(const char *user, const char *passphrase_file, const char *totp, bool recovery,
		     json_t **ret);

/* qr.c: TOTP enrolment of an init, user add or reset-mfa reply: QR code (on
 * a terminal or with qr), otpauth URI, base32 secret, recovery codes. */
void print_enrolment(const json_t *reply, bool qr);

/* auth.c: the options of unlock and login. OPT_CONTINUE when parsed, else an exit code. */
struct cred_opts {
	const char *user, *pfile, *totp;
	bool recovery, print_token;
};
int parse_cred_opts(struct ctx *ctx, int argc, char **argv, const char *cmd, const char *help,
		    struct cred_opts *o);
