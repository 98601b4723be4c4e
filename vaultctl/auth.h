/* vaultctl/auth.h: login and logout, and the credentials that unlock (sys.c)
 * and login share. Results are exit codes (ctx.h). */
#pragma once
#include <stdbool.h>
#include <jansson.h>
#include "vaultctl/ctx.h"

/* The {"user", "passphrase", "totp"|"recovery_code"} body of unlock and
 * login, from files, options or prompts. On EXIT_OK the caller owns *ret. */
int credentials_body(const char *user, const char *passphrase_file, const char *totp, bool recovery,
		     json_t **ret);

/* The options of unlock and login. OPT_CONTINUE (cli.h) when parsed, else an exit code. */
struct cred_opts {
	const char *user, *pfile, *totp;
	bool recovery, print_token, no_login;
};
int parse_cred_opts(struct ctx *ctx, int argc, char **argv, const char *cmd, const char *help,
		    struct cred_opts *o);

/* argv[0] is the command's name. */
int cmd_login(struct ctx *ctx, int argc, char **argv);
int cmd_logout(struct ctx *ctx, int argc, char **argv);
