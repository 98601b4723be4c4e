/* vaultctl/services.c: service add, list, get, del. A service is a Unix uid
 * bound to roles: its requests without a token act as the service. */
#include <pwd.h>
#include <stdio.h>
#include "common/json.h"
#include "vaultctl/cli.h"
#include "vaultctl/client.h"
#include "vaultctl/msg.h"
#include "vaultctl/output.h"
#include "vaultctl/services.h"

static char *service_url(const char *name)
{
	_cleanup_free_ char *esc = path_escape(name);
	char *url = NULL;

	if (!esc || asprintf(&url, "/v1/services/%s", esc) < 0)
		return NULL;
	return url;
}

static const char service_help[] =
	"Usage: vaultctl service COMMAND ...\n"
	"\n"
	"Binds Unix uids to services (needs the admin role). A process of a bound\n"
	"uid that sends no token acts as that service, with its roles.\n"
	"\n"
	"Commands:\n"
	"  add NAME --uid UID|USER --role ROLE... [--replace]  bind a uid\n"
	"  list                                                list services\n"
	"  get NAME                                            show a service\n"
	"  del NAME                                            remove a binding\n"
	"\n"
	"Example:\n"
	"  vaultctl service add slack-bot --uid slackbot --role slack-bot\n";

static const char service_add_help[] =
	"Usage: vaultctl service add NAME --uid UID|USER --role ROLE [--role ROLE]... [--replace]\n"
	"\n"
	"Binds the uid (a number or a user name) to the service NAME with these\n"
	"roles. An existing service is changed only with --replace (exit 7\n"
	"otherwise); a uid bound to another service is refused (exit 7).\n"
	"\n"
	"Example:\n"
	"  vaultctl service add slack-bot --uid 998 --role slack-bot\n";

static int service_add(struct ctx *ctx, int argc, char **argv)
{
	enum { OPT_UID = OPT_COMMON_LAST + 1, OPT_ROLE, OPT_REPLACE };
	static const struct option opts[] = {
		COMMON_LONGOPTS,
		{ "uid", required_argument, NULL, OPT_UID },
		{ "role", required_argument, NULL, OPT_ROLE },
		{ "replace", no_argument, NULL, OPT_REPLACE },
		{},
	};
	_cleanup_json_ json_t *roles = json_array(), *body = NULL, *reply = NULL, *old = NULL;
	_cleanup_free_ char *url = NULL, *what = NULL;
	const char *uid_arg = NULL;
	unsigned long uid;
	bool replace = false;
	long status;
	int c, r;

	while ((c = GETOPT(argc, argv, COMMON_SHORTOPTS "u:r:", opts)) != -1) {
		switch (c) {
		case 'u':
		case OPT_UID:
			uid_arg = optarg;
			break;
		case 'r':
		case OPT_ROLE:
			json_array_append_new(roles, json_string(optarg));
			break;
		case OPT_REPLACE:
			replace = true;
			break;
		default:
			if ((r = common_option(ctx, c, service_add_help)) != OPT_CONTINUE)
				return r;
		}
	}
	if (optind + 1 != argc)
		return usage_error("service add", "service add needs exactly one NAME");
	if (!uid_arg)
		return usage_error("service add", "service add needs --uid UID");
	if (!json_array_size(roles))
		return usage_error("service add", "service add needs at least one --role ROLE");
	if (parse_uint(uid_arg, 0xfffffffeul, &uid) < 0) {
		struct passwd *pw = getpwnam(uid_arg);
		if (!pw)
			return usage_error("service add", "--uid: no such user or uid '%s'", uid_arg);
		uid = pw->pw_uid;
	}
	if (!(url = service_url(argv[optind])) || asprintf(&what, "service add %s", argv[optind]) < 0)
		return error("out of memory");
	if (!replace) {
		if ((r = client_send(ctx, "GET", url, NULL, API_AUTH, &status, &old)) != EXIT_OK)
			return r;
		if (status == 200) {
			error("%s: the service already exists: add --replace to change it", what);
			return EXIT_CONFLICT;
		}
		if (status != 404) {
			api_print_error(what, status, old, API_AUTH);
			return api_exit_code(status, old);
		}
	}
	body = json_pack("{s:I, s:O}", "uid", (json_int_t)uid, "roles", roles);
	if ((r = api_call(ctx, what, "PUT", url, body, API_AUTH, &reply)) != EXIT_OK)
		return r;
	if (ctx->json)
		print_json(reply);
	else {
		_cleanup_free_ char *t = json_text(roles);
		out_line("Service '%s' is uid %lu with the roles: %s", argv[optind], uid, t ?: "?");
	}
	return EXIT_OK;
}

static const char service_list_help[] =
	"Usage: vaultctl service list [--json]\n"
	"\n"
	"Lists services: NAME, UID, ROLES.\n"
	"\n"
	"Example:\n"
	"  vaultctl service list\n";

static int service_list(struct ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { COMMON_LONGOPTS, {} };
	static const char *const head[] = { "NAME", "UID", "ROLES" };
	_cleanup_json_ json_t *reply = NULL;
	struct table *t;
	json_t *s;
	size_t i;
	int c, r;

	while ((c = GETOPT(argc, argv, COMMON_SHORTOPTS, opts)) != -1)
		if ((r = common_option(ctx, c, service_list_help)) != OPT_CONTINUE)
			return r;
	if (optind != argc)
		return usage_error("service list", "service list takes no arguments");
	if ((r = api_call(ctx, "service list", "GET", "/v1/services", NULL, API_AUTH, &reply)) != EXIT_OK)
		return r;
	if (ctx->json) {
		print_json(reply);
		return EXIT_OK;
	}
	t = table_new(3, head);
	json_array_foreach(json_object_get(reply, "services"), i, s) {
		_cleanup_free_ char *uid = json_text(json_object_get(s, "uid"));
		_cleanup_free_ char *roles = json_text(json_object_get(s, "roles"));
		const char *row[] = { json_string_value(json_object_get(s, "name")), uid, roles };
		table_add(t, row);
	}
	table_print_free(t);
	return EXIT_OK;
}

static const char service_get_help[] =
	"Usage: vaultctl service get NAME [--json]\n"
	"\n"
	"Shows a service: uid, roles, times.\n"
	"\n"
	"Example:\n"
	"  vaultctl service get slack-bot\n";

static const char service_del_help[] =
	"Usage: vaultctl service del NAME [--json]\n"
	"\n"
	"Removes the binding: the uid's requests are then refused.\n"
	"\n"
	"Example:\n"
	"  vaultctl service del slack-bot\n";

/* get and del differ only in method and output. */
static int service_one(struct ctx *ctx, int argc, char **argv, bool del)
{
	static const struct option opts[] = { COMMON_LONGOPTS, {} };
	const char *cmd = del ? "service del" : "service get";
	_cleanup_json_ json_t *reply = NULL;
	_cleanup_free_ char *url = NULL, *what = NULL;
	const char *key;
	json_t *v;
	int c, r;

	while ((c = GETOPT(argc, argv, COMMON_SHORTOPTS, opts)) != -1)
		if ((r = common_option(ctx, c, del ? service_del_help : service_get_help)) != OPT_CONTINUE)
			return r;
	if (optind + 1 != argc)
		return usage_error(cmd, "%s needs exactly one NAME", cmd);
	if (!(url = service_url(argv[optind])) || asprintf(&what, "%s %s", cmd, argv[optind]) < 0)
		return error("out of memory");
	if ((r = api_call(ctx, what, del ? "DELETE" : "GET", url, NULL, API_AUTH, &reply)) != EXIT_OK)
		return r;
	if (ctx->json)
		print_json(reply);
	else if (del)
		out_line("Service '%s' was deleted.", argv[optind]);
	else
		json_object_foreach(reply, key, v) {
			_cleanup_free_ char *t = json_text(v);
			kv(12, key, "%s", t ?: "?");
		}
	return EXIT_OK;
}

static int service_get(struct ctx *ctx, int argc, char **argv)
{
	return service_one(ctx, argc, argv, false);
}

static int service_del(struct ctx *ctx, int argc, char **argv)
{
	return service_one(ctx, argc, argv, true);
}

int cmd_service(struct ctx *ctx, int argc, char **argv)
{
	static const struct subcommand table[] = {
		{ "add", service_add, "bind a uid" },
		{ "list", service_list, "list services" },
		{ "get", service_get, "show a service" },
		{ "del", service_del, "remove a binding" },
		{},
	};
	return run_subcommand(ctx, "service", table, service_help, argc, argv);
}
