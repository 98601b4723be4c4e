/* vaultctl/secrets.c: put, get, list, delete, versions, rollback, promote.
 * Which fields are sensitive comes from GET /v1/types, so masking follows
 * the daemon's type definitions; a field the types do not know is masked.
 */
#include <stdio.h>
#include <unistd.h>
#include "common/json.h"
#include "vaultctl/cli.h"
#include "vaultctl/client.h"
#include "vaultctl/input.h"
#include "vaultctl/msg.h"
#include "vaultctl/output.h"
#include "vaultctl/secrets.h"

#define VERSION_MAX 2147483647ul

/* "/v1/secrets/<path><suffix>" with the path escaped. */
static char *secret_url(const char *path, const char *suffix)
{
	_cleanup_free_ char *esc = NULL;
	char *url = NULL;

	while (*path == '/')
		path++;
	esc = path_escape(path);
	if (!esc || asprintf(&url, "/v1/secrets%s%s%s", *esc ? "/" : "", esc, suffix) < 0)
		return NULL;
	return url;
}

static int fetch_types(struct ctx *ctx, json_t **ret)
{
	return api_call(ctx, "types", "GET", "/v1/types", NULL, API_AUTH, ret);
}

static bool field_sensitive(const json_t *types, const char *type, const char *field)
{
	const json_t *t, *f;
	size_t i, j;

	json_array_foreach(json_object_get(types, "types"), i, t) {
		if (!streq(json_string_value(json_object_get(t, "name")) ?: "", type))
			continue;
		json_array_foreach(json_object_get(t, "fields"), j, f)
			if (streq(json_string_value(json_object_get(f, "name")) ?: "", field))
				return !json_is_false(json_object_get(f, "sensitive"));
		return true;    /* generic, or a field this type does not name */
	}
	return true;
}

static const char put_help[] =
	"Usage: vaultctl put PATH --type TYPE FIELD=VALUE|FIELD=@FILE|FIELD=- ...\n"
	"                    [--metadata KEY=VALUE]... [--cas VERSION] [--pending]\n"
	"\n"
	"Stores a credential at PATH (TENANT/NAME..., e.g. acme/chat/slack) as a new\n"
	"version. Each field's value comes from the argument (it then sits in your\n"
	"shell history: avoid it for secrets), from a file (@FILE, one trailing\n"
	"newline dropped) or from standard input (-, one field only).\n"
	"--metadata adds plain-text metadata (never secrets: it is not encrypted).\n"
	"--cas N writes only if the current version is N (0: only if it does not\n"
	"exist yet); otherwise exit 7. 'vaultctl types' lists types and fields.\n"
	"--pending stages the new version instead of making it current: readers\n"
	"keep the current value until 'vaultctl promote PATH' (for a credential\n"
	"being changed at a third-party system; the credential must exist, exit 6\n"
	"otherwise). Metadata key max_age (like 90d) says how long a value may live:\n"
	"'vaultctl rotate status' lists the credentials past it.\n"
	"\n"
	"Examples:\n"
	"  printf %s \"$BOT_TOKEN\" | vaultctl put acme/chat/slack --type slack bot_token=- signing_secret=@signing.txt\n"
	"  vaultctl put acme/rmm/tactical --type tactical-rmm url=https://rmm.acme.example api_key=@key.txt\n"
	"  vaultctl put acme/rmm/tactical --pending --type tactical-rmm url=https://rmm.acme.example api_key=@new.txt\n";

int cmd_put(struct ctx *ctx, int argc, char **argv)
{
	enum { OPT_TYPE = OPT_COMMON_LAST + 1, OPT_META, OPT_CAS, OPT_PENDING };
	static const struct option opts[] = {
		COMMON_LONGOPTS,
		{ "type", required_argument, NULL, OPT_TYPE },
		{ "metadata", required_argument, NULL, OPT_META },
		{ "cas", required_argument, NULL, OPT_CAS },
		{ "pending", no_argument, NULL, OPT_PENDING },
		{},
	};
	_cleanup_json_ json_t *body = NULL, *data = NULL, *meta = NULL, *reply = NULL, *types = NULL;
	_cleanup_free_ char *url = NULL;
	const char *type = NULL, *path;
	unsigned long cas = 0;
	bool have_cas = false, stdin_used = false, literal = false, pending = false;
	int c, r;

	meta = json_object();
	data = json_object();
	while ((c = GETOPT(argc, argv, COMMON_SHORTOPTS, opts)) != -1) {
		switch (c) {
		case OPT_TYPE:
			type = optarg;
			break;
		case OPT_META: {
			const char *eq = strchr(optarg, '=');
			_cleanup_free_ char *k = NULL;
			if (!eq || eq == optarg || !(k = strndup(optarg, (size_t)(eq - optarg))))
				return usage_error("put", "--metadata needs KEY=VALUE");
			json_object_set_new(meta, k, json_string(eq + 1));
			break;
		}
		case OPT_CAS:
			if (parse_uint(optarg, VERSION_MAX, &cas) < 0)
				return usage_error("put", "--cas needs a version number");
			have_cas = true;
			break;
		case OPT_PENDING:
			pending = true;
			break;
		default:
			if ((r = common_option(ctx, c, put_help)) != OPT_CONTINUE)
				return r;
		}
	}
	if (optind >= argc)
		return usage_error("put", "put needs a PATH");
	if (!type)
		return usage_error("put", "put needs --type TYPE ('vaultctl types' lists them)");
	path = argv[optind++];
	if (optind >= argc)
		return usage_error("put", "put needs at least one FIELD=VALUE");
	for (; optind < argc; optind++) {
		struct field f;
		json_t *v;

		if ((r = field_parse(argv[optind], &stdin_used, &f)) != EXIT_OK)
			return r;
		v = json_stringn((const char *)f.value->p, f.value->len);
		if (!v) {
			r = error("the value of %s is not valid UTF-8 text", f.name);
			field_clear(&f);
			return r;
		}
		if (json_object_get(data, f.name)) {
			r = usage_error("put", "field %s is given twice", f.name);
			json_decref(v);
			field_clear(&f);
			return r;
		}
		json_object_set_new(data, f.name, v);
		literal |= f.literal;
		field_clear(&f);
	}
	/* Values typed on the command line: warn for the ones the type says are secret. */
	if (literal && fetch_types(ctx, &types) == EXIT_OK) {
		for (int i = 1; i < argc; i++) {
			const char *eq = strchr(argv[i], '=');
			_cleanup_free_ char *k = eq ? strndup(argv[i], (size_t)(eq - argv[i])) : NULL;
			if (!k || eq[1] == '@' || streq(eq + 1, "-") || !json_object_get(data, k) || argv[i][0] == '-')
				continue;
			if (field_sensitive(types, type, k))
				warning("%s was given on the command line: it is now in your shell history and visible in the process list; use %s=@FILE or %s=-",
					k, k, k);
		}
	}
	body = json_pack("{s:s, s:O}", "type", type, "data", data);
	if (json_object_size(meta))
		json_object_set(body, "metadata", meta);
	if (have_cas)
		json_object_set_new(body, "cas", json_integer((json_int_t)cas));
	if (pending)
		json_object_set_new(body, "stage", json_string("pending"));
	if (!(url = secret_url(path, "")))
		return error("out of memory");
	if ((r = api_call(ctx, "put", "PUT", url, body, API_AUTH, &reply)) != EXIT_OK)
		return r;
	if (ctx->json)
		print_json(reply);
	else if (pending)
		out_line("Stored %s, version %lld, as pending: readers still get the current version until "
			 "'vaultctl promote %s'.",
			 json_string_value(json_object_get(reply, "path")) ?: path,
			 (long long)json_integer_value(json_object_get(reply, "version")),
			 json_string_value(json_object_get(reply, "path")) ?: path);
	else
		out_line("Stored %s, version %lld.", json_string_value(json_object_get(reply, "path")) ?: path,
			 (long long)json_integer_value(json_object_get(reply, "version")));
	return EXIT_OK;
}

static const char get_help[] =
	"Usage: vaultctl get PATH [--version N | --stage STAGE] [--reveal] [--field NAME] [--json]\n"
	"\n"
	"Shows a credential: its current version, an old one (--version N) or the\n"
	"version of a stage (--stage pending, current or previous: pending is staged\n"
	"by 'put --pending', previous was current before the last change). Sensitive\n"
	"fields (as its type defines them) are shown as ******** unless --reveal.\n"
	"--field NAME prints that one value, raw, for piping into another program\n"
	"(on a terminal it is escaped like all output, tabs and newlines kept).\n"
	"--json prints the API's JSON (still masked unless --reveal). Exit 6 if there\n"
	"is no such credential, version or stage.\n"
	"\n"
	"Examples:\n"
	"  vaultctl get acme/chat/slack\n"
	"  vaultctl get acme/chat/slack --field bot_token | other-program --token-stdin\n"
	"  vaultctl get acme/chat/slack --stage pending --field bot_token\n";

int cmd_get(struct ctx *ctx, int argc, char **argv)
{
	enum { OPT_VERSION = OPT_COMMON_LAST + 1, OPT_REVEAL, OPT_FIELD, OPT_STAGE };
	static const struct option opts[] = {
		COMMON_LONGOPTS,
		{ "version", required_argument, NULL, OPT_VERSION },
		{ "reveal", no_argument, NULL, OPT_REVEAL },
		{ "field", required_argument, NULL, OPT_FIELD },
		{ "stage", required_argument, NULL, OPT_STAGE },
		{},
	};
	_cleanup_json_ json_t *reply = NULL, *types = NULL;
	_cleanup_free_ char *url = NULL, *what = NULL, *suffix = NULL;
	const char *field = NULL, *stage = NULL, *type, *key;
	unsigned long version = 0;
	bool reveal = false;
	json_t *data, *v;
	int c, r, width = 9;

	while ((c = GETOPT(argc, argv, COMMON_SHORTOPTS, opts)) != -1) {
		switch (c) {
		case OPT_VERSION:
			if (parse_uint(optarg, VERSION_MAX, &version) < 0 || version == 0)
				return usage_error("get", "--version needs a version number");
			break;
		case OPT_REVEAL:
			reveal = true;
			break;
		case OPT_FIELD:
			field = optarg;
			break;
		case OPT_STAGE:
			if (!streq(optarg, "pending") && !streq(optarg, "current") && !streq(optarg, "previous"))
				return usage_error("get", "--stage is pending, current or previous, not '%s'", optarg);
			stage = optarg;
			break;
		default:
			if ((r = common_option(ctx, c, get_help)) != OPT_CONTINUE)
				return r;
		}
	}
	if (optind + 1 != argc)
		return usage_error("get", "get needs exactly one PATH");
	if (version && stage)
		return usage_error("get", "give --version or --stage, not both");
	if (version && asprintf(&suffix, "?version=%lu", version) < 0)
		return error("out of memory");
	if (stage && asprintf(&suffix, "?stage=%s", stage) < 0)
		return error("out of memory");
	if (!(url = secret_url(argv[optind], suffix ?: "")) || asprintf(&what, "get %s", argv[optind]) < 0)
		return error("out of memory");
	if ((r = api_call(ctx, what, "GET", url, NULL, API_AUTH, &reply)) != EXIT_OK)
		return r;
	data = json_object_get(reply, "data");
	type = json_string_value(json_object_get(reply, "type")) ?: "";
	if (field) {
		/* The user asked for this one value: no masking. Raw into a
		 * pipe or file, escaped on a terminal (print_value()). */
		v = json_object_get(data, field);
		if (!json_is_string(v)) {
			error("%s has no field '%s'", argv[optind], field);
			return EXIT_NOT_FOUND;
		}
		print_value(json_string_value(v), json_string_length(v));
		return EXIT_OK;
	}
	if (!reveal) {
		/* Without the types (should not happen) everything is masked. */
		if (fetch_types(ctx, &types) != EXIT_OK)
			types = NULL;
		json_object_foreach(data, key, v)
			if (!types || field_sensitive(types, type, key))
				json_object_set_new(data, key, json_string(MASK));
	}
	if (ctx->json) {
		print_json(reply);
		return EXIT_OK;
	}
	kv(width, "path", "%s", json_string_value(json_object_get(reply, "path")) ?: argv[optind]);
	kv(width, "type", "%s", type);
	{
		const json_t *st = json_object_get(reply, "stage");
		_cleanup_free_ char *cur = json_text(json_object_get(reply, "current_version"));
		_cleanup_free_ char *pend = json_text(json_object_get(reply, "pending_version"));
		_cleanup_free_ char *prev = json_text(json_object_get(reply, "previous_version"));

		/* Older daemons know no stages: then only "current N". */
		if (json_is_string(st))
			kv(width, "version", "%lld (%s)", (long long)json_integer_value(json_object_get(reply, "version")),
			   json_string_value(st));
		else if (st)
			kv(width, "version", "%lld (an old version)",
			   (long long)json_integer_value(json_object_get(reply, "version")));
		else
			kv(width, "version", "%lld", (long long)json_integer_value(json_object_get(reply, "version")));
		kv(width, "current", "%s", cur ?: "-");
		if (json_object_get(reply, "pending_version"))
			kv(width, "pending", "%s", pend ?: "-");
		if (json_object_get(reply, "previous_version"))
			kv(width, "previous", "%s", prev ?: "-");
	}
	kv(width, "created", "%s", json_string_value(json_object_get(reply, "created_at")) ?: "-");
	kv(width, "updated", "%s", json_string_value(json_object_get(reply, "updated_at")) ?: "-");
	if (json_object_size(json_object_get(reply, "metadata")))
		puts("metadata:");
	json_object_foreach(json_object_get(reply, "metadata"), key, v) {
		_cleanup_free_ char *t = json_text(v);
		out_line("  %s = %s", key, t ?: "?");
	}
	puts("data:");
	/* Credential values are arbitrary strings: escaped like everything else. */
	json_object_foreach(data, key, v)
		out_line("  %s = %s", key, json_string_value(v) ?: "?");
	if (!reveal)
		puts("(sensitive fields are masked: --reveal shows them, --field NAME prints one)");
	return EXIT_OK;
}

static const char list_help[] =
	"Usage: vaultctl list [PREFIX] [--json]\n"
	"\n"
	"Lists the credentials at or below PREFIX (a tenant, or a deeper path; all\n"
	"you may list when omitted): PATH, TYPE, VERSION, UPDATED. Never values.\n"
	"\n"
	"Example:\n"
	"  vaultctl list acme\n";

int cmd_list(struct ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { COMMON_LONGOPTS, {} };
	static const char *const head[] = { "PATH", "TYPE", "VERSION", "UPDATED" };
	_cleanup_json_ json_t *reply = NULL;
	_cleanup_free_ char *url = NULL;
	struct table *t;
	json_t *s;
	size_t i;
	int c, r;

	while ((c = GETOPT(argc, argv, COMMON_SHORTOPTS, opts)) != -1)
		if ((r = common_option(ctx, c, list_help)) != OPT_CONTINUE)
			return r;
	if (argc - optind > 1)
		return usage_error("list", "list takes at most one PREFIX");
	if (!(url = secret_url(optind < argc ? argv[optind] : "", "?list=1")))
		return error("out of memory");
	if ((r = api_call(ctx, "list", "GET", url, NULL, API_AUTH, &reply)) != EXIT_OK)
		return r;
	if (ctx->json) {
		print_json(reply);
		return EXIT_OK;
	}
	t = table_new(4, head);
	json_array_foreach(json_object_get(reply, "secrets"), i, s) {
		_cleanup_free_ char *ver = json_text(json_object_get(s, "version"));
		const char *row[] = { json_string_value(json_object_get(s, "path")),
				      json_string_value(json_object_get(s, "type")), ver,
				      json_string_value(json_object_get(s, "updated_at")) };
		table_add(t, row);
	}
	table_print_free(t);
	return EXIT_OK;
}

static const char delete_help[] =
	"Usage: vaultctl delete PATH [--destroy [--yes]] [--json]\n"
	"\n"
	"Deletes a credential: it is no longer served or listed, but its versions\n"
	"stay (writing it again revives it). --destroy erases every version for\n"
	"good; it asks for confirmation, or needs --yes without a terminal.\n"
	"\n"
	"Examples:\n"
	"  vaultctl delete acme/chat/slack\n"
	"  vaultctl delete acme/chat/slack --destroy --yes\n";

int cmd_delete(struct ctx *ctx, int argc, char **argv)
{
	enum { OPT_DESTROY = OPT_COMMON_LAST + 1, OPT_YES };
	static const struct option opts[] = {
		COMMON_LONGOPTS,
		{ "destroy", no_argument, NULL, OPT_DESTROY },
		{ "yes", no_argument, NULL, OPT_YES },
		{},
	};
	_cleanup_json_ json_t *reply = NULL;
	_cleanup_free_ char *url = NULL, *what = NULL, *q = NULL;
	bool destroy = false, yes = false;
	int c, r;

	while ((c = GETOPT(argc, argv, COMMON_SHORTOPTS "y", opts)) != -1) {
		switch (c) {
		case OPT_DESTROY:
			destroy = true;
			break;
		case 'y':
		case OPT_YES:
			yes = true;
			break;
		default:
			if ((r = common_option(ctx, c, delete_help)) != OPT_CONTINUE)
				return r;
		}
	}
	if (optind + 1 != argc)
		return usage_error("delete", "delete needs exactly one PATH");
	if (destroy && !yes) {
		/* Destroying is irreversible: a script must say so explicitly. */
		if (!isatty(STDIN_FILENO) || !can_prompt())
			return usage_error("delete", "--destroy erases every version for good: add --yes to confirm");
		if (asprintf(&q, "destroy every version of %s for good? [y/N]", argv[optind]) < 0)
			return error("out of memory");
		if (!confirm(q))
			return error("not destroyed");
	}
	if (!(url = secret_url(argv[optind], destroy ? "?destroy=1" : "")) ||
	    asprintf(&what, "delete %s", argv[optind]) < 0)
		return error("out of memory");
	if ((r = api_call(ctx, what, "DELETE", url, NULL, API_AUTH, &reply)) != EXIT_OK)
		return r;
	if (ctx->json)
		print_json(reply);
	else
		out_line("%s %s.", destroy ? "Destroyed" : "Deleted", argv[optind]);
	return EXIT_OK;
}

static const char versions_help[] =
	"Usage: vaultctl versions PATH [--json]\n"
	"\n"
	"Lists the versions of a credential: VERSION, CREATED, STATE (destroyed, or\n"
	"blank while the version is kept) and STAGE (current, pending, previous, or\n"
	"blank for an old version). Never values.\n"
	"\n"
	"Example:\n"
	"  vaultctl versions acme/chat/slack\n";

int cmd_versions(struct ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { COMMON_LONGOPTS, {} };
	static const char *const head[] = { "VERSION", "CREATED", "STATE", "STAGE" };
	_cleanup_json_ json_t *reply = NULL;
	_cleanup_free_ char *url = NULL, *what = NULL;
	struct table *t;
	json_t *v;
	size_t i;
	int c, r;

	while ((c = GETOPT(argc, argv, COMMON_SHORTOPTS, opts)) != -1)
		if ((r = common_option(ctx, c, versions_help)) != OPT_CONTINUE)
			return r;
	if (optind + 1 != argc)
		return usage_error("versions", "versions needs exactly one PATH");
	if (!(url = secret_url(argv[optind], "?versions=1")) || asprintf(&what, "versions %s", argv[optind]) < 0)
		return error("out of memory");
	if ((r = api_call(ctx, what, "GET", url, NULL, API_AUTH, &reply)) != EXIT_OK)
		return r;
	if (ctx->json) {
		print_json(reply);
		return EXIT_OK;
	}
	t = table_new(4, head);
	json_array_foreach(json_object_get(reply, "versions"), i, v) {
		_cleanup_free_ char *n = json_text(json_object_get(v, "version"));
		const char *state = json_is_true(json_object_get(v, "destroyed")) ? "destroyed" : "";
		/* An older daemon without stages: "current" from the flag. */
		const char *stage = json_string_value(json_object_get(v, "stage"))
				    ?: json_is_true(json_object_get(v, "current")) ? "current"
										  : "";
		const char *row[] = { n, json_string_value(json_object_get(v, "created_at")), state, stage };
		table_add(t, row);
	}
	table_print_free(t);
	if (json_is_true(json_object_get(reply, "deleted")))
		puts("(the credential is deleted: writing it again revives it)");
	return EXIT_OK;
}

static const char rollback_help[] =
	"Usage: vaultctl rollback PATH VERSION [--cas CURRENT] [--json]\n"
	"\n"
	"Writes VERSION's data as a new current version. --cas CURRENT does it only\n"
	"if the current version is still CURRENT (exit 7 otherwise).\n"
	"\n"
	"Example:\n"
	"  vaultctl rollback acme/chat/slack 2\n";

int cmd_rollback(struct ctx *ctx, int argc, char **argv)
{
	enum { OPT_CAS = OPT_COMMON_LAST + 1 };
	static const struct option opts[] = { COMMON_LONGOPTS, { "cas", required_argument, NULL, OPT_CAS }, {} };
	_cleanup_json_ json_t *reply = NULL, *body = NULL;
	_cleanup_free_ char *url = NULL, *what = NULL;
	unsigned long version, cas = 0;
	bool have_cas = false;
	int c, r;

	while ((c = GETOPT(argc, argv, COMMON_SHORTOPTS, opts)) != -1) {
		if (c == OPT_CAS) {
			if (parse_uint(optarg, VERSION_MAX, &cas) < 0)
				return usage_error("rollback", "--cas needs a version number");
			have_cas = true;
		} else if ((r = common_option(ctx, c, rollback_help)) != OPT_CONTINUE)
			return r;
	}
	if (optind + 2 != argc)
		return usage_error("rollback", "rollback needs PATH and VERSION");
	if (parse_uint(argv[optind + 1], VERSION_MAX, &version) < 0 || version == 0)
		return usage_error("rollback", "VERSION must be a version number");
	body = json_pack("{s:I}", "version", (json_int_t)version);
	if (have_cas)
		json_object_set_new(body, "cas", json_integer((json_int_t)cas));
	if (!(url = secret_url(argv[optind], "/rollback")) || asprintf(&what, "rollback %s", argv[optind]) < 0)
		return error("out of memory");
	if ((r = api_call(ctx, what, "POST", url, body, API_AUTH, &reply)) != EXIT_OK)
		return r;
	if (ctx->json)
		print_json(reply);
	else
		out_line("Rolled %s back to version %lu: it is now version %lld.", argv[optind], version,
			 (long long)json_integer_value(json_object_get(reply, "version")));
	return EXIT_OK;
}

static const char promote_help[] =
	"Usage: vaultctl promote PATH [--version N] [--json]\n"
	"\n"
	"Makes the pending version of a credential (written by 'vaultctl put\n"
	"--pending') current; the version that was current becomes previous, still\n"
	"readable with 'vaultctl get PATH --stage previous'. --version N promotes\n"
	"only if N is the pending version. Exit 7 if there is no pending version or\n"
	"N is not it; 6 if there is no such credential.\n"
	"\n"
	"Example:\n"
	"  vaultctl put acme/rmm/tactical --pending --type tactical-rmm url=https://rmm.acme.example api_key=@new.txt\n"
	"  vaultctl get acme/rmm/tactical --stage pending --field api_key | test-the-key\n"
	"  vaultctl promote acme/rmm/tactical\n";

int cmd_promote(struct ctx *ctx, int argc, char **argv)
{
	enum { OPT_VERSION = OPT_COMMON_LAST + 1 };
	static const struct option opts[] = { COMMON_LONGOPTS, { "version", required_argument, NULL, OPT_VERSION }, {} };
	_cleanup_json_ json_t *reply = NULL, *body = NULL;
	_cleanup_free_ char *url = NULL, *what = NULL, *prev = NULL;
	unsigned long version = 0;
	int c, r;

	while ((c = GETOPT(argc, argv, COMMON_SHORTOPTS, opts)) != -1) {
		if (c == OPT_VERSION) {
			if (parse_uint(optarg, VERSION_MAX, &version) < 0 || version == 0)
				return usage_error("promote", "--version needs a version number");
		} else if ((r = common_option(ctx, c, promote_help)) != OPT_CONTINUE)
			return r;
	}
	if (optind + 1 != argc)
		return usage_error("promote", "promote needs exactly one PATH");
	body = version ? json_pack("{s:I}", "version", (json_int_t)version) : json_object();
	if (!(url = secret_url(argv[optind], "/promote")) || asprintf(&what, "promote %s", argv[optind]) < 0)
		return error("out of memory");
	if ((r = api_call(ctx, what, "POST", url, body, API_AUTH, &reply)) != EXIT_OK)
		return r;
	if (ctx->json) {
		print_json(reply);
		return EXIT_OK;
	}
	prev = json_text(json_object_get(reply, "previous_version"));
	out_fprintf(stdout, "Promoted %s: version %lld is current",
		    json_string_value(json_object_get(reply, "path")) ?: argv[optind],
		    (long long)json_integer_value(json_object_get(reply, "version")));
	if (json_is_integer(json_object_get(reply, "previous_version")))
		printf(", version %s is previous", prev ?: "?");
	puts(".");
	return EXIT_OK;
}
