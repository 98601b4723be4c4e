/* vaultctl/main.c: global options and the command table.
 * vaultctl is a pure client of vaultd's socket API: it never opens the
 * database or the HSM. Each command lives in the file of its group.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>
#include "version.h"
#include "vaultctl/client.h"
#include "vaultctl/output.h"

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

bool progress_drawn;

void progress_wipe(void)
{
	if (!progress_drawn)
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
	progress_drawn = false;
}

/* Messages quote server text (error messages, reasons, names) and the
 * command line: out_vfprintf() escapes them (output.h). */
int error(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	progress_wipe();
	fputs("vaultctl: ", stderr);
	va_start(ap, fmt);
	errno = saved;  /* for %m */
	out_vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_ERROR;
}

void warning(const char *fmt, ...)
{
	va_list ap;

	progress_wipe();
	fputs("vaultctl: warning: ", stderr);
	va_start(ap, fmt);
	out_vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	progress_wipe();
	fputs("vaultctl: ", stderr);
	va_start(ap, fmt);
	out_vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (cmd)
		fprintf(stderr, " (see 'vaultctl %s --help')\n", cmd);
	else
		fputs(" (see 'vaultctl --help')\n", stderr);
	return EXIT_USAGE;
}

int common_option(struct ctx *ctx, int c, const char *help)
{
	switch (c) {
	case OPT_JSON:
		ctx->json = true;
		return OPT_CONTINUE;
	case 's':
		ctx->socket = optarg;
		return OPT_CONTINUE;
	case 'h':
		fputs(help, stdout);
		return EXIT_OK;
	default:
		/* getopt already named the bad option. */
		fputs("vaultctl: see --help for the options\n", stderr);
		return EXIT_USAGE;
	}
}

int run_subcommand(struct ctx *ctx, const char *group, const struct subcommand *table, const char *help,
		   int argc, char **argv)
{
	if (argc < 2 || streq(argv[1], "-h") || streq(argv[1], "--help")) {
		fputs(help, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	for (const struct subcommand *s = table; s->name; s++)
		if (streq(argv[1], s->name))
			return s->run(ctx, argc - 1, argv + 1);
	return usage_error(group, "unknown command '%s %s'", group, argv[1]);
}

int parse_uint(const char *s, unsigned long max, unsigned long *ret)
{
	char *end;
	unsigned long v;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
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
