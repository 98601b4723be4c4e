/* vaultctl/main.c: global options and the command table.
 * vaultctl is a pure client of vaultd's socket API: it never opens the
 * database or the HSM. Each command lives in the file of its group.
 */
#include <stdio.h>
#include "version.h"
#include "vaultctl/audit.h"
#include "vaultctl/auth.h"
#include "vaultctl/backup.h"
#include "vaultctl/cli.h"
#include "vaultctl/client.h"
#include "vaultctl/msg.h"
#include "vaultctl/roles.h"
#include "vaultctl/rotate.h"
#include "vaultctl/secrets.h"
#include "vaultctl/types.h"
#include "vaultctl/services.h"
#include "vaultctl/sys.h"
#include "vaultctl/users.h"

struct command {
	const char *name;
	int (*run)(struct ctx *ctx, int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "status", cmd_status, "show whether the vault is initialised and unlocked, and who you are" },
	{ "init", cmd_init, "initialise a new vault and create its first admin" },
	{ "unlock", cmd_unlock, "unlock the vault (admin passphrase and TOTP code)" },
	{ "lock", cmd_lock, "lock the vault: wipe its keys from memory" },
	{ "login", cmd_login, "log in and keep a session token for later commands" },
	{ "logout", cmd_logout, "revoke the session token and remove it" },
	{ "put", cmd_put, "store a credential (a new version)" },
	{ "get", cmd_get, "show a credential (sensitive fields masked)" },
	{ "list", cmd_list, "list credentials under a prefix" },
	{ "delete", cmd_delete, "delete a credential (or destroy every version)" },
	{ "versions", cmd_versions, "list the versions of a credential" },
	{ "rollback", cmd_rollback, "make an old version current again" },
	{ "promote", cmd_promote, "make a credential's pending version current" },
	{ "types", cmd_types, "list the credential types and their fields" },
	{ "user", cmd_user, "manage people: add, list, get, passwd, roles, reset-mfa, del" },
	{ "role", cmd_role, "manage roles: set, get, list, del" },
	{ "service", cmd_service, "bind Unix uids to services: add, list, get, del" },
	{ "audit", cmd_audit, "read and verify the audit log: tail, search, verify, export" },
	{ "rotate", cmd_rotate, "rotate keys: secret, kek, root, hsm, all; status, job" },
	{ "backup", cmd_backup, "write a consistent copy of the database, with its manifest" },
};

static const char main_help[] =
	"Usage: vaultctl [-s SOCKET] [--json] COMMAND [ARGS...]\n"
	"\n"
	"The admin CLI of vaultd, the credential vault. It talks to vaultd over its\n"
	"Unix socket and never opens the database or the HSM.\n"
	"\n"
	"Options:\n"
	"  -s, --socket SOCKET  vaultd's socket (default: $VAULTD_SOCKET, else " DEFAULT_SOCKET ")\n"
	"      --json           print the API's JSON instead of tables (for scripts)\n"
	"  -h, --help           this help; 'vaultctl COMMAND --help' for a command's\n"
	"      --version        print the version\n"
	"\n"
	"Commands:\n";

static const char main_help_tail[] =
	"\n"
	"Secret values never need to be typed on the command line: FIELD=- reads\n"
	"standard input, FIELD=@FILE reads a file; passphrases are asked without echo.\n"
	"The session token of 'vaultctl login' is kept in $XDG_RUNTIME_DIR/vaultctl/token;\n"
	"$VAULTD_TOKEN overrides it.\n"
	"\n"
	"Exit codes: 0 ok, 1 error, 2 usage, 3 locked, 4 authentication failed,\n"
	"5 forbidden, 6 not found, 7 conflict.\n"
	"\n"
	"Example: the first steps on a new vault\n"
	"  vaultctl init --admin alice\n"
	"  vaultctl unlock --user alice\n"
	"  vaultctl login --user alice\n"
	"  vaultctl put acme/chat/slack --type slack bot_token=- signing_secret=@signing.txt\n"
	"\n"
	"See vaultctl(1).\n";

static void print_main_help(FILE *f)
{
	fputs(main_help, f);
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fputs(main_help_tail, f);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		COMMON_LONGOPTS,
		{ "version", no_argument, NULL, 'V' },
		{},
	};
	struct ctx ctx = { 0 };
	const char *env = getenv("VAULTD_SOCKET");
	int c, r;

	ctx.socket = env && *env ? env : DEFAULT_SOCKET;
	/* "+": stop at the command; its options are its own. */
	while ((c = getopt_long(argc, argv, "+" COMMON_SHORTOPTS, opts, NULL)) != -1) {
		switch (c) {
		case 'V':
			printf("vaultctl %s\n", VAULTD_VERSION);
			return EXIT_OK;
		case 'h':
			print_main_help(stdout);
			return EXIT_OK;
		default:
			if ((r = common_option(&ctx, c, "")) != OPT_CONTINUE)
				return r;
		}
	}
	if (optind >= argc) {
		print_main_help(stderr);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
		if (!streq(argv[optind], commands[i].name))
			continue;
		if ((r = client_init()) != EXIT_OK)
			return r;
		argv += optind;
		argc -= optind;
		optind = 0;     /* the command parses its own argv from argv[1] */
		r = commands[i].run(&ctx, argc, argv);
		secret_free(ctx.token);
		client_done();
		fflush(stdout);
		if (ferror(stdout) && r == EXIT_OK)
			return error("cannot write to standard output");
		return r;
	}
	return usage_error(NULL, "unknown command '%s'", argv[optind]);
}
