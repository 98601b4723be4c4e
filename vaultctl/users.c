/* vaultctl/users.c: user add, list, get, passwd, roles, reset-mfa, del. */
#include <stdio.h>
#include "common/json.h"
#include "vaultctl/cli.h"
#include "vaultctl/client.h"
#include "vaultctl/input.h"
#include "vaultctl/msg.h"
#include "vaultctl/output.h"
#include "vaultctl/qr.h"
#include "vaultctl/users.h"

static char *user_url(const char *name, const char *suffix)
{
	_cleanup_free_ char *esc = path_escape(name);
	char *url = NULL;

	if (!esc || asprintf(&url, "/v1/users/%s%s", esc, suffix) < 0)
		return NULL;
	return url;
}

/* Options of the user subcommands; each takes what it needs. */
struct user_opts {
	const char *pfile;
	json_t *roles;
	bool qr;
};

static int parse_user_opts(struct ctx *ctx, int argc, char **argv, const char *cmd, const char *help,
			   struct user_opts *o)
{
	enum { OPT_ROLE = OPT_COMMON_LAST + 1, OPT_PFILE, OPT_QR };
	static const struct option opts[] = {
		COMMON_LONGOPTS,
		{ "role", required_argument, NULL, OPT_ROLE },
		{ "passphrase-file", required_argument, NULL, OPT_PFILE },
		{ "qr", no_argument, NULL, OPT_QR },
		{},
	};
	int c, r;

	while ((c = GETOPT(argc, argv, COMMON_SHORTOPTS "r:", opts)) != -1) {
		switch (c) {
		case 'r':
		case OPT_ROLE:
			if (!o->roles)
				return usage_error(cmd, "%s takes no --role", cmd);
			json_array_append_new(o->roles, json_string(optarg));
			break;
		case OPT_PFILE:
			if (!streq(cmd, "user add") && !streq(cmd, "user passwd"))
				return usage_error(cmd, "%s takes no --passphrase-file", cmd);
			o->pfile = optarg;
			break;
		case OPT_QR:
			o->qr = true;
			break;
		default:
			if ((r = common_option(ctx, c, help)) != OPT_CONTINUE)
				return r;
		}
	}
	return OPT_CONTINUE;
}

static const char user_help[] =
	"Usage: vaultctl user COMMAND ...\n"
	"\n"
	"Manages the people who may log in (needs the admin role, except passwd\n"
	"without a NAME, which changes your own passphrase).\n"
	"\n"
	"Commands:\n"
	"  add NAME --role ROLE... [--passphrase-file FILE]  create a user; prints the TOTP enrolment\n"
	"  list                                           list users\n"
	"  get NAME                                       show a user\n"
	"  passwd [NAME] [--passphrase-file FILE]         change your passphrase, or set NAME's\n"
	"  roles NAME ROLE...                             replace NAME's roles\n"
	"  reset-mfa NAME                                 new TOTP secret and recovery codes for NAME\n"
	"  del NAME                                       delete NAME and revoke their sessions\n"
	"\n"
	"Example:\n"
	"  vaultctl user add bob --role operator\n";

static const char user_add_help[] =
	"Usage: vaultctl user add NAME --role ROLE [--role ROLE]... [--passphrase-file FILE] [--qr]\n"
	"\n"
	"Creates a user with the given roles. The passphrase (12 to 1024 characters)\n"
	"is asked twice without echo, or read from FILE. Prints the user's TOTP\n"
	"enrolment and recovery codes, shown once: hand them over safely. The user's\n"
	"MFA is pending until their first login with a valid code.\n"
	"\n"
	"Example:\n"
	"  vaultctl user add bob --role operator\n";

static int user_add(struct ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_t *roles = json_array(), *body = NULL, *reply = NULL, *old = NULL;
	_cleanup_secret_ struct secret *pass = NULL;
	_cleanup_free_ char *url = NULL, *what = NULL;
	struct user_opts o = { .roles = roles };
	long status;
	int r;

	if ((r = parse_user_opts(ctx, argc, argv, "user add", user_add_help, &o)) != OPT_CONTINUE)
		return r;
	if (optind + 1 != argc)
		return usage_error("user add", "user add needs exactly one NAME");
	if (!json_array_size(roles))
		return usage_error("user add", "user add needs at least one --role ROLE");
	if (!(url = user_url(argv[optind], "")) || asprintf(&what, "user add %s", argv[optind]) < 0)
		return error("out of memory");
	/* PUT on an existing user updates it: refuse, so "add" never changes a passphrase by accident. */
	if ((r = client_send(ctx, "GET", url, NULL, API_AUTH, &status, &old)) != EXIT_OK)
		return r;
	if (status == 200) {
		error("%s: the user already exists: use 'vaultctl user roles' or 'vaultctl user passwd'", what);
		return EXIT_CONFLICT;
	}
	if (status != 404) {
		api_print_error(what, status, old, API_AUTH);
		return api_exit_code(status, old);
	}
	if ((r = get_passphrase(o.pfile, true, "passphrase for the new user", &pass)) != EXIT_OK)
		return r;
	body = json_pack("{s:s%, s:O}", "passphrase", (const char *)pass->p, pass->len, "roles", roles);
	if (!body)
		return error("the passphrase is not valid UTF-8");
	if ((r = api_call(ctx, what, "PUT", url, body, API_AUTH, &reply)) != EXIT_OK)
		return r;
	if (ctx->json) {
		print_json(reply);
		return EXIT_OK;
	}
	out_line("User '%s' was created.", argv[optind]);
	putchar('\n');
	print_enrolment(reply, o.qr);
	return EXIT_OK;
}

static const char user_list_help[] =
	"Usage: vaultctl user list [--json]\n"
	"\n"
	"Lists users: NAME, ROLES, MFA (pending until the first valid code), CREATED.\n"
	"\n"
	"Example:\n"
	"  vaultctl user list\n";

static int user_list(struct ctx *ctx, int argc, char **argv)
{
	static const char *const head[] = { "NAME", "ROLES", "MFA", "CREATED" };
	_cleanup_json_ json_t *reply = NULL;
	struct user_opts o = { 0 };
	struct table *t;
	json_t *u;
	size_t i;
	int r;

	if ((r = parse_user_opts(ctx, argc, argv, "user list", user_list_help, &o)) != OPT_CONTINUE)
		return r;
	if (optind != argc)
		return usage_error("user list", "user list takes no arguments");
	if ((r = api_call(ctx, "user list", "GET", "/v1/users", NULL, API_AUTH, &reply)) != EXIT_OK)
		return r;
	if (ctx->json) {
		print_json(reply);
		return EXIT_OK;
	}
	t = table_new(4, head);
	json_array_foreach(json_object_get(reply, "users"), i, u) {
		_cleanup_free_ char *roles = json_text(json_object_get(u, "roles"));
		const char *row[] = { json_string_value(json_object_get(u, "name")), roles,
				      json_string_value(json_object_get(u, "mfa")),
				      json_string_value(json_object_get(u, "created_at")) };
		table_add(t, row);
	}
	table_print_free(t);
	return EXIT_OK;
}

static const char user_get_help[] =
	"Usage: vaultctl user get NAME [--json]\n"
	"\n"
	"Shows a user: roles, MFA state, recovery codes left, times.\n"
	"\n"
	"Example:\n"
	"  vaultctl user get bob\n";

/* Prints every member of a flat object as key/value lines. */
static void print_object(const json_t *o)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)o, key, v) {
		_cleanup_free_ char *t = json_text(v);
		kv(20, key, "%s", t ?: "?");
	}
}

static int user_get(struct ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_t *reply = NULL;
	_cleanup_free_ char *url = NULL, *what = NULL;
	struct user_opts o = { 0 };
	int r;

	if ((r = parse_user_opts(ctx, argc, argv, "user get", user_get_help, &o)) != OPT_CONTINUE)
		return r;
	if (optind + 1 != argc)
		return usage_error("user get", "user get needs exactly one NAME");
	if (!(url = user_url(argv[optind], "")) || asprintf(&what, "user get %s", argv[optind]) < 0)
		return error("out of memory");
	if ((r = api_call(ctx, what, "GET", url, NULL, API_AUTH, &reply)) != EXIT_OK)
		return r;
	if (ctx->json)
		print_json(reply);
	else
		print_object(reply);
	return EXIT_OK;
}

static const char user_passwd_help[] =
	"Usage: vaultctl user passwd [NAME] [--passphrase-file FILE]\n"
	"\n"
	"Without NAME: changes your own passphrase (needs 'vaultctl login'); asks\n"
	"for the current one and twice for the new one, without echo. With\n"
	"--passphrase-file, FILE holds the current passphrase on its first line and\n"
	"the new one on its second.\n"
	"With NAME (admin): sets NAME's passphrase, asked twice or read from FILE.\n"
	"\n"
	"Examples:\n"
	"  vaultctl user passwd\n"
	"  vaultctl user passwd bob\n";

static int user_passwd(struct ctx *ctx, int argc, char **argv)
{
	_cleanup_secret_ struct secret *cur = NULL, *pass = NULL;
	_cleanup_json_ json_t *body = NULL, *reply = NULL;
	_cleanup_free_ char *url = NULL, *what = NULL;
	struct user_opts o = { 0 };
	int r;

	if ((r = parse_user_opts(ctx, argc, argv, "user passwd", user_passwd_help, &o)) != OPT_CONTINUE)
		return r;
	if (argc - optind > 1)
		return usage_error("user passwd", "user passwd takes at most one NAME");
	if (optind < argc) {
		if (!(url = user_url(argv[optind], "")) || asprintf(&what, "user passwd %s", argv[optind]) < 0)
			return error("out of memory");
		if ((r = get_passphrase(o.pfile, true, "new passphrase", &pass)) != EXIT_OK)
			return r;
		body = json_pack("{s:s%}", "passphrase", (const char *)pass->p, pass->len);
		if (!body)
			return error("the passphrase is not valid UTF-8");
		if ((r = api_call(ctx, what, "PUT", url, body, API_AUTH, &reply)) != EXIT_OK)
			return r;
	} else {
		if (o.pfile) {
			_cleanup_secret_ struct secret *both = NULL;
			const char *nl;
			if ((r = read_value_file(o.pfile, 2 * PASSPHRASE_MAX + 1, &both)) != EXIT_OK)
				return r;
			nl = memchr(both->p, '\n', both->len);
			if (!nl)
				return error("%s must hold the current passphrase and the new one on two lines", o.pfile);
			if (secret_from_bytes(both->p, (size_t)(nl - (char *)both->p), &cur) < 0 ||
			    secret_from_bytes(nl + 1, both->len - (size_t)(nl + 1 - (char *)both->p), &pass) < 0)
				return error("empty or invalid passphrase in %s", o.pfile);
		} else if ((r = get_passphrase(NULL, false, "current passphrase", &cur)) != EXIT_OK ||
			   (r = get_passphrase(NULL, true, "new passphrase", &pass)) != EXIT_OK)
			return r;
		body = json_pack("{s:s%, s:s%}", "current", (const char *)cur->p, cur->len, "new",
				 (const char *)pass->p, pass->len);
		if (!body)
			return error("the passphrase is not valid UTF-8");
		if ((r = api_call(ctx, "user passwd", "POST", "/v1/auth/passphrase", body, API_AUTH | API_CREDENTIALS, &reply)) !=
		    EXIT_OK)
			return r;
	}
	if (ctx->json)
		print_json(reply);
	else
		puts("The passphrase was changed.");
	return EXIT_OK;
}

static const char user_roles_help[] =
	"Usage: vaultctl user roles NAME ROLE...\n"
	"\n"
	"Replaces NAME's roles. The last admin cannot lose the admin role (exit 7).\n"
	"\n"
	"Example:\n"
	"  vaultctl user roles bob operator acme-read\n";

static int user_roles(struct ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_t *roles = json_array(), *body = NULL, *reply = NULL;
	_cleanup_free_ char *url = NULL, *what = NULL;
	struct user_opts o = { .roles = roles };
	int r;

	if ((r = parse_user_opts(ctx, argc, argv, "user roles", user_roles_help, &o)) != OPT_CONTINUE)
		return r;
	if (argc - optind < 1)
		return usage_error("user roles", "user roles needs NAME and at least one ROLE");
	for (int i = optind + 1; i < argc; i++)
		json_array_append_new(roles, json_string(argv[i]));
	if (!json_array_size(roles))
		return usage_error("user roles", "user roles needs at least one ROLE");
	if (!(url = user_url(argv[optind], "")) || asprintf(&what, "user roles %s", argv[optind]) < 0)
		return error("out of memory");
	/* PUT would try to create a missing user: look first, for a clean "not found". */
	if ((r = api_call(ctx, what, "GET", url, NULL, API_AUTH, NULL)) != EXIT_OK)
		return r;
	body = json_pack("{s:O}", "roles", roles);
	if ((r = api_call(ctx, what, "PUT", url, body, API_AUTH, &reply)) != EXIT_OK)
		return r;
	if (ctx->json)
		print_json(reply);
	else {
		_cleanup_free_ char *t = json_text(json_object_get(reply, "roles"));
		out_line("%s now has the roles: %s", argv[optind], t ?: "?");
	}
	return EXIT_OK;
}

static const char user_reset_mfa_help[] =
	"Usage: vaultctl user reset-mfa NAME [--qr] [--json]\n"
	"\n"
	"Gives NAME a new TOTP secret and new recovery codes (printed once, like\n"
	"'user add') and revokes their sessions; for a lost authenticator.\n"
	"\n"
	"Example:\n"
	"  vaultctl user reset-mfa bob\n";

static int user_reset_mfa(struct ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_t *reply = NULL;
	_cleanup_free_ char *url = NULL, *what = NULL;
	struct user_opts o = { 0 };
	int r;

	if ((r = parse_user_opts(ctx, argc, argv, "user reset-mfa", user_reset_mfa_help, &o)) != OPT_CONTINUE)
		return r;
	if (optind + 1 != argc)
		return usage_error("user reset-mfa", "user reset-mfa needs exactly one NAME");
	if (!(url = user_url(argv[optind], "/reset-mfa")) || asprintf(&what, "user reset-mfa %s", argv[optind]) < 0)
		return error("out of memory");
	if ((r = api_call(ctx, what, "POST", url, NULL, API_AUTH, &reply)) != EXIT_OK)
		return r;
	if (ctx->json) {
		print_json(reply);
		return EXIT_OK;
	}
	out_line("The MFA of '%s' was reset; their sessions are revoked.", argv[optind]);
	putchar('\n');
	print_enrolment(reply, o.qr);
	return EXIT_OK;
}

static const char user_del_help[] =
	"Usage: vaultctl user del NAME [--json]\n"
	"\n"
	"Deletes NAME and revokes their sessions. The last admin cannot be deleted\n"
	"(exit 7).\n"
	"\n"
	"Example:\n"
	"  vaultctl user del bob\n";

static int user_del(struct ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_t *reply = NULL;
	_cleanup_free_ char *url = NULL, *what = NULL;
	struct user_opts o = { 0 };
	int r;

	if ((r = parse_user_opts(ctx, argc, argv, "user del", user_del_help, &o)) != OPT_CONTINUE)
		return r;
	if (optind + 1 != argc)
		return usage_error("user del", "user del needs exactly one NAME");
	if (!(url = user_url(argv[optind], "")) || asprintf(&what, "user del %s", argv[optind]) < 0)
		return error("out of memory");
	if ((r = api_call(ctx, what, "DELETE", url, NULL, API_AUTH, &reply)) != EXIT_OK)
		return r;
	if (ctx->json)
		print_json(reply);
	else
		out_line("User '%s' was deleted.", argv[optind]);
	return EXIT_OK;
}

int cmd_user(struct ctx *ctx, int argc, char **argv)
{
	static const struct subcommand table[] = {
		{ "add", user_add, "create a user" },
		{ "list", user_list, "list users" },
		{ "get", user_get, "show a user" },
		{ "passwd", user_passwd, "change a passphrase" },
		{ "roles", user_roles, "replace a user's roles" },
		{ "reset-mfa", user_reset_mfa, "new TOTP secret and recovery codes" },
		{ "del", user_del, "delete a user" },
		{},
	};
	return run_subcommand(ctx, "user", table, user_help, argc, argv);
}
