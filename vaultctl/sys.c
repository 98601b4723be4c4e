/* vaultctl/sys.c: status, init, unlock, lock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/json.h"
#include "vaultctl/auth.h"
#include "vaultctl/cli.h"
#include "vaultctl/client.h"
#include "vaultctl/input.h"
#include "vaultctl/msg.h"
#include "vaultctl/output.h"
#include "vaultctl/qr.h"
#include "vaultctl/token.h"
#include "vaultctl/sys.h"

static const char status_help[] =
	"Usage: vaultctl status [--json]\n"
	"\n"
	"Shows whether the vault is initialised and unlocked, vaultd's version, and\n"
	"who you are to vaultd (the logged-in user, or the service your uid is bound to).\n"
	"Exits 0 when the vault is unlocked, 3 when it is locked or not initialised.\n"
	"\n"
	"Example:\n"
	"  vaultctl status\n";

int cmd_status(struct ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { COMMON_LONGOPTS, {} };
	_cleanup_json_ json_t *health = NULL, *self = NULL;
	json_t *out;
	bool locked;
	long status;
	int c, r;

	while ((c = GETOPT(argc, argv, COMMON_SHORTOPTS, opts)) != -1)
		if ((r = common_option(ctx, c, status_help)) != OPT_CONTINUE)
			return r;
	if (optind < argc)
		return usage_error("status", "status takes no arguments");
	if ((r = api_call(ctx, "status", "GET", "/v1/sys/health", NULL, 0, &health)) != EXIT_OK)
		return r;
	locked = !json_is_false(json_object_get(health, "locked")) ||
		 !json_is_true(json_object_get(health, "initialized"));
	if (!locked) {
		/* Who am I: unbound callers get 403, an expired token 401; neither is an error here. */
		r = client_send(ctx, "GET", "/v1/auth/self", NULL, API_AUTH, &status, &self);
		if (r != EXIT_OK)
			return r;
		if (status != 200) {
			json_decref(self);
			self = NULL;
			if (status == 401)
				warning("your session token was refused (expired or revoked): run 'vaultctl login'");
		}
	}
	if (ctx->json) {
		out = json_deep_copy(health);
		json_object_set_new(out, "socket", json_string(ctx->socket));
		json_object_set(out, "self", self ? self : json_null());
		print_json(out);
		json_decref(out);
	} else {
		_cleanup_free_ char *roles = json_text(json_object_get(self, "roles"));
		kv(12, "socket", "%s", ctx->socket);
		kv(12, "initialized", "%s", json_is_true(json_object_get(health, "initialized")) ? "yes" : "no");
		kv(12, "locked", "%s", json_is_false(json_object_get(health, "locked")) ? "no" : "yes");
		kv(12, "version", "%s", json_string_value(json_object_get(health, "version")) ?: "-");
		if (self)
			kv(12, "you are", "%s %s (uid %lld; roles: %s)",
			   json_string_value(json_object_get(self, "kind")) ?: "?",
			   json_string_value(json_object_get(self, "name")) ?: "?",
			   (long long)json_integer_value(json_object_get(self, "uid")), roles ? roles : "-");
		else if (!locked)
			kv(12, "you are", "not logged in, and uid %u is bound to no service", (unsigned)getuid());
		if (!json_is_true(json_object_get(health, "initialized")))
			puts("\nThe vault is not initialised: run 'vaultctl init --admin NAME'.");
		else if (locked)
			puts("\nThe vault is locked: run 'vaultctl unlock --user NAME'.");
	}
	return locked ? EXIT_LOCKED : EXIT_OK;
}

static const char init_help[] =
	"Usage: vaultctl init --admin NAME [--passphrase-file FILE] [--qr] [--json]\n"
	"\n"
	"Initialises a new vault: vaultd generates its keys and creates the first\n"
	"admin. The passphrase (12 to 1024 characters) is asked twice without echo,\n"
	"or read from FILE. Prints the admin's TOTP enrolment (a QR code when stdout\n"
	"is a terminal or with --qr, the otpauth:// URI and the secret) and ten\n"
	"recovery codes, shown only this once. The vault is then locked.\n"
	"Only root or vaultd's own user may initialise.\n"
	"\n"
	"Example:\n"
	"  sudo vaultctl init --admin alice\n"
	"  vaultctl unlock --user alice\n";

int cmd_init(struct ctx *ctx, int argc, char **argv)
{
	enum { OPT_ADMIN = OPT_COMMON_LAST + 1, OPT_PFILE, OPT_QR };
	static const struct option opts[] = {
		COMMON_LONGOPTS,
		{ "admin", required_argument, NULL, OPT_ADMIN },
		{ "passphrase-file", required_argument, NULL, OPT_PFILE },
		{ "qr", no_argument, NULL, OPT_QR },
		{},
	};
	_cleanup_secret_ struct secret *pass = NULL;
	_cleanup_json_ json_t *body = NULL, *reply = NULL;
	const char *admin = NULL, *pfile = NULL;
	bool qr = false;
	int c, r;

	while ((c = GETOPT(argc, argv, COMMON_SHORTOPTS, opts)) != -1) {
		switch (c) {
		case OPT_ADMIN:
			admin = optarg;
			break;
		case OPT_PFILE:
			pfile = optarg;
			break;
		case OPT_QR:
			qr = true;
			break;
		default:
			if ((r = common_option(ctx, c, init_help)) != OPT_CONTINUE)
				return r;
		}
	}
	if (!admin)
		return usage_error("init", "init needs --admin NAME");
	if (optind < argc)
		return usage_error("init", "unexpected argument '%s'", argv[optind]);
	if ((r = get_passphrase(pfile, true, "new passphrase for the admin", &pass)) != EXIT_OK)
		return r;
	body = json_pack("{s:s, s:s%}", "admin", admin, "passphrase", (const char *)pass->p, pass->len);
	if (!body)
		return error("the passphrase is not valid UTF-8");
	if ((r = api_call(ctx, "init", "POST", "/v1/sys/init", body, 0, &reply)) != EXIT_OK)
		return r;
	if (ctx->json) {
		print_json(reply);
		return EXIT_OK;
	}
	out_line("The vault is initialised; admin '%s' was created. It is locked: run 'vaultctl unlock --user %s'.",
		 admin, admin);
	putchar('\n');
	print_enrolment(reply, qr);
	return EXIT_OK;
}

static const char unlock_help[] =
	"Usage: vaultctl unlock --user NAME [--passphrase-file FILE] [--totp CODE | --recovery-code]\n"
	"                       [--no-login]\n"
	"\n"
	"Unlocks the vault with an admin's passphrase and TOTP code, and logs that\n"
	"admin in with the same code (a code is good once; --no-login does not), so\n"
	"'vaultctl lock' works at once. What is not given as an option is asked on\n"
	"the terminal (the passphrase without echo).\n"
	"--recovery-code asks for one of the recovery codes instead of a TOTP code.\n"
	"After too many failures vaultd refuses further attempts for a while (exit 4).\n"
	"\n"
	"Examples:\n"
	"  vaultctl unlock --user alice\n"
	"  vaultctl unlock --user alice --passphrase-file /run/keys/alice --totp 123456\n";

int cmd_unlock(struct ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_t *body = NULL, *reply = NULL;
	_cleanup_free_ char *path = NULL;
	struct cred_opts o = { 0 };
	const char *token;
	bool login;
	int r;

	if ((r = parse_cred_opts(ctx, argc, argv, "unlock", unlock_help, &o)) != OPT_CONTINUE)
		return r;
	if ((r = credentials_body(o.user, o.pfile, o.totp, o.recovery, &body)) != EXIT_OK)
		return r;
	/* Logged in by the same code: a TOTP step is good once, so a separate
	 * login would have to wait for the next one. Only where the token can
	 * be kept. */
	login = !o.no_login && getenv("XDG_RUNTIME_DIR");
	if (login && json_object_set_new(body, "session", json_true()) < 0)
		return error("out of memory");
	if ((r = api_call(ctx, "unlock", "POST", "/v1/sys/unlock", body, API_CREDENTIALS, &reply)) != EXIT_OK)
		return r;
	token = json_string_value(json_object_get(reply, "token"));
	if (token && (r = token_store(token, strlen(token), &path)) != EXIT_OK)
		token = NULL;           /* said why; the vault is unlocked all the same */
	json_object_del(reply, "token");        /* never printed */
	if (ctx->json) {
		if (path)
			json_object_set_new(reply, "token_file", json_string(path));
		print_json(reply);
		return EXIT_OK;
	}
	if (token)
		out_line("The vault is unlocked; logged in as %s until %s (token in %s).",
			 json_string_value(json_object_get(reply, "user")) ?: o.user,
			 json_string_value(json_object_get(reply, "expires_at")) ?: "?", path);
	else if (login)
		out_line("The vault is unlocked, but you are not logged in: run 'vaultctl login'.");
	else
		puts("The vault is unlocked.");
	return EXIT_OK;
}

static const char lock_help[] =
	"Usage: vaultctl lock [--json]\n"
	"\n"
	"Locks the vault: vaultd wipes the root key and every tenant key from memory\n"
	"and revokes every session. Needs the admin role. Unlock again with\n"
	"'vaultctl unlock'.\n"
	"\n"
	"Example:\n"
	"  vaultctl lock\n";

int cmd_lock(struct ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { COMMON_LONGOPTS, {} };
	_cleanup_json_ json_t *reply = NULL;
	int c, r;

	while ((c = GETOPT(argc, argv, COMMON_SHORTOPTS, opts)) != -1)
		if ((r = common_option(ctx, c, lock_help)) != OPT_CONTINUE)
			return r;
	if (optind < argc)
		return usage_error("lock", "lock takes no arguments");
	if ((r = api_call(ctx, "lock", "POST", "/v1/sys/lock", NULL, API_AUTH, &reply)) != EXIT_OK)
		return r;
	if (ctx->json)
		print_json(reply);
	else
		puts("The vault is locked.");
	return EXIT_OK;
}

