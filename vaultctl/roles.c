/* vaultctl/roles.c: role set, get, list, del. */
#include <stdio.h>
#include "common/json.h"
#include "vaultctl/cli.h"
#include "vaultctl/client.h"
#include "vaultctl/msg.h"
#include "vaultctl/output.h"
#include "vaultctl/roles.h"

static char *role_url(const char *name)
{
	_cleanup_free_ char *esc = path_escape(name);
	char *url = NULL;

	if (!esc || asprintf(&url, "/v1/roles/%s", esc) < 0)
		return NULL;
	return url;
}

/* "acme/rmm/x:read,list" -> {"path": "acme/rmm/x", "capabilities": ["read", "list"]}.
 * The last ':' splits, as paths hold none. */
static json_t *parse_rule(const char *s)
{
	const char *colon = strrchr(s, ':');
	_cleanup_free_ char *caps = NULL;
	json_t *arr, *rule;
	char *save = NULL;

	if (!colon || colon == s || !colon[1] || !(caps = strdup(colon + 1)))
		return NULL;
	arr = json_array();
	for (char *c = strtok_r(caps, ",", &save); c; c = strtok_r(NULL, ",", &save))
		json_array_append_new(arr, json_string(c));
	rule = json_pack("{s:s%, s:o}", "path", s, (size_t)(colon - s), "capabilities", arr);
	return rule;
}

static const char role_help[] =
	"Usage: vaultctl role COMMAND ...\n"
	"\n"
	"Manages roles (needs the admin role). A role is a list of rules PATH:CAPS:\n"
	"PATH is a pattern ('*' alone is everything; a '*' segment matches one\n"
	"segment; a pattern covers the paths below it), CAPS a comma-separated list\n"
	"of read, list, write, delete, rotate, audit, admin.\n"
	"Built-in roles: admin, operator, auditor.\n"
	"\n"
	"Commands:\n"
	"  set NAME --rule PATH:CAPS [--rule ...]   create or replace a role\n"
	"  get NAME                                 show a role's rules\n"
	"  list                                     list roles\n"
	"  del NAME                                 delete a role (exit 7 while in use)\n"
	"\n"
	"Example:\n"
	"  vaultctl role set acme-rmm-read --rule 'acme/rmm/*:read,list'\n";

static const char role_set_help[] =
	"Usage: vaultctl role set NAME --rule PATH:CAPS [--rule PATH:CAPS]...\n"
	"\n"
	"Creates or replaces the custom role NAME with these rules (see\n"
	"'vaultctl role --help' for PATH and CAPS). Built-in roles cannot change.\n"
	"\n"
	"Example:\n"
	"  vaultctl role set slack-bot --rule 'acme/chat/slack:read'\n";

static int role_set(struct ctx *ctx, int argc, char **argv)
{
	enum { OPT_RULE = OPT_COMMON_LAST + 1 };
	static const struct option opts[] = { COMMON_LONGOPTS, { "rule", required_argument, NULL, OPT_RULE }, {} };
	_cleanup_json_ json_t *rules = json_array(), *body = NULL, *reply = NULL;
	_cleanup_free_ char *url = NULL, *what = NULL;
	int c, r;

	while ((c = GETOPT(argc, argv, COMMON_SHORTOPTS, opts)) != -1) {
		if (c == OPT_RULE) {
			json_t *rule = parse_rule(optarg);
			if (!rule)
				return usage_error("role set", "--rule needs PATH:CAPS, e.g. 'acme/rmm/*:read,list'");
			json_array_append_new(rules, rule);
		} else if ((r = common_option(ctx, c, role_set_help)) != OPT_CONTINUE)
			return r;
	}
	if (optind + 1 != argc)
		return usage_error("role set", "role set needs exactly one NAME");
	if (!json_array_size(rules))
		return usage_error("role set", "role set needs at least one --rule PATH:CAPS");
	if (!(url = role_url(argv[optind])) || asprintf(&what, "role set %s", argv[optind]) < 0)
		return error("out of memory");
	body = json_pack("{s:O}", "rules", rules);
	if ((r = api_call(ctx, what, "PUT", url, body, API_AUTH, &reply)) != EXIT_OK)
		return r;
	if (ctx->json)
		print_json(reply);
	else
		out_line("Role '%s' was saved with %zu rule%s.", argv[optind], json_array_size(rules),
			 json_array_size(rules) == 1 ? "" : "s");
	return EXIT_OK;
}

static void print_rules(const json_t *rules)
{
	static const char *const head[] = { "PATH", "CAPABILITIES" };
	struct table *t = table_new(2, head);
	json_t *rule;
	size_t i;

	json_array_foreach(rules, i, rule) {
		_cleanup_free_ char *caps = json_text(json_object_get(rule, "capabilities"));
		const char *row[] = { json_string_value(json_object_get(rule, "path")), caps };
		table_add(t, row);
	}
	table_print_free(t);
}

static const char role_get_help[] =
	"Usage: vaultctl role get NAME [--json]\n"
	"\n"
	"Shows a role's rules.\n"
	"\n"
	"Example:\n"
	"  vaultctl role get operator\n";

static int role_get(struct ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { COMMON_LONGOPTS, {} };
	_cleanup_json_ json_t *reply = NULL;
	_cleanup_free_ char *url = NULL, *what = NULL;
	int c, r;

	while ((c = GETOPT(argc, argv, COMMON_SHORTOPTS, opts)) != -1)
		if ((r = common_option(ctx, c, role_get_help)) != OPT_CONTINUE)
			return r;
	if (optind + 1 != argc)
		return usage_error("role get", "role get needs exactly one NAME");
	if (!(url = role_url(argv[optind])) || asprintf(&what, "role get %s", argv[optind]) < 0)
		return error("out of memory");
	if ((r = api_call(ctx, what, "GET", url, NULL, API_AUTH, &reply)) != EXIT_OK)
		return r;
	if (ctx->json) {
		print_json(reply);
		return EXIT_OK;
	}
	kv(8, "name", "%s", json_string_value(json_object_get(reply, "name")) ?: argv[optind]);
	kv(8, "builtin", "%s", json_is_true(json_object_get(reply, "builtin")) ? "yes" : "no");
	print_rules(json_object_get(reply, "rules"));
	return EXIT_OK;
}

static const char role_list_help[] =
	"Usage: vaultctl role list [--json]\n"
	"\n"
	"Lists roles, built-in and custom: NAME, BUILTIN, RULES.\n"
	"\n"
	"Example:\n"
	"  vaultctl role list\n";

static int role_list(struct ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { COMMON_LONGOPTS, {} };
	static const char *const head[] = { "NAME", "BUILTIN", "RULES" };
	_cleanup_json_ json_t *reply = NULL;
	struct table *t;
	json_t *role, *rule;
	size_t i, j;
	int c, r;

	while ((c = GETOPT(argc, argv, COMMON_SHORTOPTS, opts)) != -1)
		if ((r = common_option(ctx, c, role_list_help)) != OPT_CONTINUE)
			return r;
	if (optind != argc)
		return usage_error("role list", "role list takes no arguments");
	if ((r = api_call(ctx, "role list", "GET", "/v1/roles", NULL, API_AUTH, &reply)) != EXIT_OK)
		return r;
	if (ctx->json) {
		print_json(reply);
		return EXIT_OK;
	}
	t = table_new(3, head);
	json_array_foreach(json_object_get(reply, "roles"), i, role) {
		char rules[512] = "";
		size_t n = 0;
		json_array_foreach(json_object_get(role, "rules"), j, rule) {
			_cleanup_free_ char *caps = json_text(json_object_get(rule, "capabilities"));
			int w = snprintf(rules + n, sizeof(rules) - n, "%s%s:%s", j ? "; " : "",
					 json_string_value(json_object_get(rule, "path")) ?: "?", caps ?: "?");
			if (w < 0 || (size_t)w >= sizeof(rules) - n)
				break;
			n += (size_t)w;
		}
		const char *row[] = { json_string_value(json_object_get(role, "name")),
				      json_is_true(json_object_get(role, "builtin")) ? "yes" : "no", rules };
		table_add(t, row);
	}
	table_print_free(t);
	return EXIT_OK;
}

static const char role_del_help[] =
	"Usage: vaultctl role del NAME [--json]\n"
	"\n"
	"Deletes a custom role; exit 7 while a user or service still has it.\n"
	"\n"
	"Example:\n"
	"  vaultctl role del acme-rmm-read\n";

static int role_del(struct ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { COMMON_LONGOPTS, {} };
	_cleanup_json_ json_t *reply = NULL;
	_cleanup_free_ char *url = NULL, *what = NULL;
	int c, r;

	while ((c = GETOPT(argc, argv, COMMON_SHORTOPTS, opts)) != -1)
		if ((r = common_option(ctx, c, role_del_help)) != OPT_CONTINUE)
			return r;
	if (optind + 1 != argc)
		return usage_error("role del", "role del needs exactly one NAME");
	if (!(url = role_url(argv[optind])) || asprintf(&what, "role del %s", argv[optind]) < 0)
		return error("out of memory");
	if ((r = api_call(ctx, what, "DELETE", url, NULL, API_AUTH, &reply)) != EXIT_OK)
		return r;
	if (ctx->json)
		print_json(reply);
	else
		out_line("Role '%s' was deleted.", argv[optind]);
	return EXIT_OK;
}

int cmd_role(struct ctx *ctx, int argc, char **argv)
{
	static const struct subcommand table[] = {
		{ "set", role_set, "create or replace a role" },
		{ "get", role_get, "show a role" },
		{ "list", role_list, "list roles" },
		{ "del", role_del, "delete a role" },
		{},
	};
	return run_subcommand(ctx, "role", table, role_help, argc, argv);
}
