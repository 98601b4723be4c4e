/* vaultctl/auth.c: login, logout and the credentials that unlock and login share. */
#include <stdio.h>
#include "common/json.h"
#include "vaultctl/auth.h"
#include "vaultctl/cli.h"
#include "vaultctl/client.h"
#include "vaultctl/input.h"
#include "vaultctl/msg.h"
#include "vaultctl/output.h"
#include "vaultctl/token.h"

int credentials_body(const char *user, const char *passphrase_file, const char *totp, bool recovery,
		     json_t **ret)
{
	_cleanup_secret_ struct secret *pass = NULL, *code = NULL;
	_cleanup_free_ char *what = NULL;
	json_t *body;
	int r;

	if (asprintf(&what, "passphrase for %s", user) < 0)
		return error("out of memory");
	if ((r = get_passphrase(passphrase_file, false, what, &pass)) != EXIT_OK)
		return r;
	if (totp) {
		size_t n = strlen(totp);
		if (secret_new(n + 1, &code) < 0 || secret_append(code, totp, n + 1) < 0)
			return error("out of memory");
		code->len = n;
	} else {
		free(what);
		if (asprintf(&what, "%s for %s", recovery ? "recovery code" : "TOTP code", user) < 0)
			return error("out of memory");
		if (!can_prompt())
			return error("no terminal to ask for the %s: give it with %s", what,
				     recovery ? "a terminal" : "--totp CODE");
		/* A TOTP code is useless once spent, so it may echo; a recovery code may not. */
		if ((r = prompt(what, !recovery, 64, &code)) != EXIT_OK)
			return r;
	}
	body = json_pack("{s:s, s:s%, s:s%}", "user", user, "passphrase", (const char *)pass->p, pass->len,
			 recovery ? "recovery_code" : "totp", (const char *)code->p, code->len);
	if (!body)
		return error("the passphrase or code is not valid UTF-8");
	*ret = body;
	return EXIT_OK;
}

int parse_cred_opts(struct ctx *ctx, int argc, char **argv, const char *cmd, const char *help,
			   struct cred_opts *o)
{
	enum { OPT_USER = OPT_COMMON_LAST + 1, OPT_PFILE, OPT_TOTP, OPT_RECOVERY, OPT_PRINT, OPT_NO_LOGIN };
	static const struct option opts[] = {
		COMMON_LONGOPTS,
		{ "user", required_argument, NULL, OPT_USER },
		{ "passphrase-file", required_argument, NULL, OPT_PFILE },
		{ "totp", required_argument, NULL, OPT_TOTP },
		{ "recovery-code", no_argument, NULL, OPT_RECOVERY },
		{ "print-token", no_argument, NULL, OPT_PRINT },
		{ "no-login", no_argument, NULL, OPT_NO_LOGIN },
		{},
	};
	int c, r;

	while ((c = GETOPT(argc, argv, COMMON_SHORTOPTS "u:", opts)) != -1) {
		switch (c) {
		case 'u':
		case OPT_USER:
			o->user = optarg;
			break;
		case OPT_PFILE:
			o->pfile = optarg;
			break;
		case OPT_TOTP:
			o->totp = optarg;
			break;
		case OPT_RECOVERY:
			o->recovery = true;
			break;
		case OPT_PRINT:
			if (!streq(cmd, "login"))
				return usage_error(cmd, "--print-token is only for login");
			o->print_token = true;
			break;
		case OPT_NO_LOGIN:
			if (!streq(cmd, "unlock"))
				return usage_error(cmd, "--no-login is only for unlock");
			o->no_login = true;
			break;
		default:
			if ((r = common_option(ctx, c, help)) != OPT_CONTINUE)
				return r;
		}
	}
	if (optind < argc)
		return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	if (!o->user)
		return usage_error(cmd, "%s needs --user NAME", cmd);
	if (o->totp && o->recovery)
		return usage_error(cmd, "give --totp or --recovery-code, not both");
	return OPT_CONTINUE;
}

static const char login_help[] =
	"Usage: vaultctl login --user NAME [--passphrase-file FILE] [--totp CODE | --recovery-code]\n"
	"                      [--print-token]\n"
	"\n"
	"Logs in with your passphrase and TOTP code and keeps the session token in\n"
	"$XDG_RUNTIME_DIR/vaultctl/token (directory 0700, file 0600) for later\n"
	"commands. With --print-token the token is printed instead of stored (for\n"
	"VAULTD_TOKEN). The session lasts vaultd's [auth] session_ttl.\n"
	"\n"
	"Examples:\n"
	"  vaultctl login --user alice\n"
	"  vaultctl login --user bot --passphrase-file ~/.bot-pass --totp \"$(oathtool --totp -b \"$SEED\")\"\n";

int cmd_login(struct ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_t *body = NULL, *reply = NULL;
	_cleanup_free_ char *path = NULL, *roles = NULL;
	struct cred_opts o = { 0 };
	const char *token;
	int r;

	if ((r = parse_cred_opts(ctx, argc, argv, "login", login_help, &o)) != OPT_CONTINUE)
		return r;
	if (!o.print_token && (r = token_can_store()) != EXIT_OK)
		return r;
	if ((r = credentials_body(o.user, o.pfile, o.totp, o.recovery, &body)) != EXIT_OK)
		return r;
	if ((r = api_call(ctx, "login", "POST", "/v1/auth/login", body, API_CREDENTIALS, &reply)) != EXIT_OK)
		return r;
	token = json_string_value(json_object_get(reply, "token"));
	if (!token)
		return error("login: vaultd's reply has no token");
	if (o.print_token) {
		print_value(token, strlen(token));
		return EXIT_OK;
	}
	if ((r = token_store(token, strlen(token), &path)) != EXIT_OK)
		return r;
	json_object_del(reply, "token");        /* never printed unless asked for */
	if (ctx->json) {
		json_object_set_new(reply, "token_file", json_string(path));
		print_json(reply);
		return EXIT_OK;
	}
	roles = json_text(json_object_get(reply, "roles"));
	out_line("Logged in as %s (roles: %s) until %s.", json_string_value(json_object_get(reply, "user")) ?: o.user,
		 roles ? roles : "-", json_string_value(json_object_get(reply, "expires_at")) ?: "?");
	out_line("The token is in %s; 'vaultctl logout' ends the session.", path);
	return EXIT_OK;
}

static const char logout_help[] =
	"Usage: vaultctl logout [--json]\n"
	"\n"
	"Revokes the session token at vaultd and removes the token file. The file is\n"
	"removed even when vaultd no longer knows the token (it expired).\n"
	"\n"
	"Example:\n"
	"  vaultctl logout\n";

int cmd_logout(struct ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { COMMON_LONGOPTS, {} };
	_cleanup_json_ json_t *reply = NULL;
	long status = 0;
	int c, r;

	while ((c = GETOPT(argc, argv, COMMON_SHORTOPTS, opts)) != -1)
		if ((r = common_option(ctx, c, logout_help)) != OPT_CONTINUE)
			return r;
	if (optind < argc)
		return usage_error("logout", "logout takes no arguments");
	if ((r = token_get(ctx)) != EXIT_OK)
		return r;
	if (!ctx->token) {
		if (!ctx->json)
			puts("Not logged in.");
		else
			puts("{\"logged_out\": false}");
		return EXIT_OK;
	}
	if ((r = client_send(ctx, "POST", "/v1/auth/logout", NULL, API_AUTH, &status, &reply)) != EXIT_OK)
		return r;
	/* 401: the token is already dead; removing the file is all that is left. */
	if (status != 200 && status != 401) {
		api_print_error("logout", status, reply, API_AUTH);
		return api_exit_code(status, reply);
	}
	if ((r = token_remove()) != EXIT_OK)
		return r;
	if (ctx->json)
		puts("{\"logged_out\": true}");
	else
		puts("Logged out.");
	return EXIT_OK;
}
