/* vaultctl/types.c: 'vaultctl types [TYPE]', the credential types as
 * GET /v1/types publishes them. Everything printed comes from the daemon's
 * table, so the CLI never restates a rule; all of it is escaped on output.
 */
#include <stdio.h>
#include <string.h>
#include "common/json.h"
#include "vaultctl/cli.h"
#include "vaultctl/client.h"
#include "vaultctl/msg.h"
#include "vaultctl/output.h"
#include "vaultctl/types.h"

static const char types_help[] =
	"Usage: vaultctl types [TYPE] [--json]\n"
	"\n"
	"Without TYPE, lists the credential types and their fields: sensitive\n"
	"fields, masked by 'vaultctl get', are marked *, optional ones ?, and a\n"
	"type with alternative forms (PRTG) shows them joined by 'or'.\n"
	"With TYPE, shows its fields: whether each is required, sensitive, its\n"
	"longest value, its format and what that format accepts, and the forms\n"
	"of which exactly one must be used.\n"
	"\n"
	"Exit 6 if TYPE is not a credential type.\n"
	"\n"
	"Examples:\n"
	"  vaultctl types\n"
	"  vaultctl types prtg\n";

static const char *str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key)) ?: "?";
}

/* Appends "name[*][?]" to buf at *n, with sep first; false when full. */
static bool append(char *buf, size_t size, size_t *n, const char *sep, const json_t *f)
{
	int w = snprintf(buf + *n, size - *n, "%s%s%s%s", sep, str(f, "name"),
			 json_is_true(json_object_get(f, "sensitive")) ? "*" : "",
			 json_is_false(json_object_get(f, "required")) ? "?" : "");

	if (w < 0 || (size_t)w >= size - *n)
		return false;
	*n += (size_t)w;
	return true;
}

static const json_t *field_named(const json_t *type, const char *name)
{
	const json_t *f;
	size_t i;

	json_array_foreach(json_object_get(type, "fields"), i, f)
		if (streq(str(f, "name"), name))
			return f;
	return NULL;
}

/* "url, then api_token* or username + passhash*": the fields every form
 * has, then each form's own. */
static void fields_summary(const json_t *type, char *buf, size_t size)
{
	const json_t *f, *form, *name;
	size_t i, j, n = 0;
	bool ok = true;

	buf[0] = '\0';
	if (!json_array_size(json_object_get(type, "fields"))) {
		snprintf(buf, size, "any fields*");
		return;
	}
	json_array_foreach(json_object_get(type, "fields"), i, f)
		if (ok && !json_object_get(f, "form"))
			ok = append(buf, size, &n, n ? ", " : "", f);
	json_array_foreach(json_object_get(type, "forms"), i, form) {
		const char *sep = i ? " or " : n ? ", then " : "";

		json_array_foreach(json_object_get(form, "fields"), j, name) {
			const json_t *ff = field_named(type, json_string_value(name) ?: "");

			if (ok && ff)
				ok = append(buf, size, &n, j ? " + " : sep, ff);
		}
	}
}

static int list_types(const json_t *reply)
{
	static const char *const head[] = { "TYPE", "FIELDS (* sensitive, ? optional)", "DESCRIPTION" };
	struct table *t = table_new(3, head);
	const json_t *ty;
	size_t i;

	json_array_foreach(json_object_get(reply, "types"), i, ty) {
		char fields[1024];

		fields_summary(ty, fields, sizeof(fields));
		const char *row[] = { str(ty, "name"), fields, str(ty, "description") };
		table_add(t, row);
	}
	table_print_free(t);
	return EXIT_OK;
}

/* "yes", "no", or "in form X" for a field of a form. */
static const char *required_text(const json_t *f, char *buf, size_t size)
{
	if (json_object_get(f, "form")) {
		snprintf(buf, size, "in form %s", str(f, "form"));
		return buf;
	}
	return json_is_true(json_object_get(f, "required")) ? "yes" : "no";
}

static int show_type(const json_t *ty)
{
	static const char *const head[] = { "FIELD", "REQUIRED", "SENSITIVE", "MAX", "FORMAT", "DESCRIPTION" };
	static const char *const form_head[] = { "FORM", "FIELDS", "DESCRIPTION" };
	static const char *const fmt_head[] = { "FORMAT", "ACCEPTS" };
	_cleanup_json_ json_t *seen = json_object();
	const json_t *f, *form, *name;
	struct table *t;
	size_t i, j;

	if (!seen)
		return error("out of memory");
	out_line("%s: %s", str(ty, "name"), str(ty, "description"));
	if (!json_array_size(json_object_get(ty, "fields"))) {
		out_line("Fields: any names of [A-Za-z0-9_.-]; every value is sensitive.");
		return EXIT_OK;
	}
	putchar('\n');
	t = table_new(6, head);
	json_array_foreach(json_object_get(ty, "fields"), i, f) {
		char req[80], max[24];

		snprintf(max, sizeof(max), "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(f, "max_length")));
		const char *row[] = { str(f, "name"), required_text(f, req, sizeof(req)),
				      json_is_true(json_object_get(f, "sensitive")) ? "yes" : "no", max,
				      str(f, "format"), str(f, "description") };
		table_add(t, row);
	}
	table_print_free(t);

	if (json_array_size(json_object_get(ty, "forms"))) {
		putchar('\n');
		out_line("Forms: use exactly one; a form's fields are all required when it is used.");
		t = table_new(3, form_head);
		json_array_foreach(json_object_get(ty, "forms"), i, form) {
			char names[512] = "";
			size_t n = 0;

			json_array_foreach(json_object_get(form, "fields"), j, name) {
				int w = snprintf(names + n, sizeof(names) - n, "%s%s", j ? ", " : "",
						 json_string_value(name) ?: "?");
				if (w < 0 || (size_t)w >= sizeof(names) - n)
					break;
				n += (size_t)w;
			}
			const char *row[] = { str(form, "name"), names, str(form, "description") };
			table_add(t, row);
		}
		table_print_free(t);
	}

	/* Each format once, with what it accepts. */
	putchar('\n');
	out_line("Formats:");
	t = table_new(2, fmt_head);
	json_array_foreach(json_object_get(ty, "fields"), i, f) {
		if (json_object_get(seen, str(f, "format")))
			continue;
		if (json_object_set_new(seen, str(f, "format"), json_true()) < 0) {
			table_print_free(t);
			return error("out of memory");
		}
		const char *row[] = { str(f, "format"), str(f, "accepts") };
		table_add(t, row);
	}
	table_print_free(t);
	return EXIT_OK;
}

int cmd_types(struct ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { COMMON_LONGOPTS, {} };
	_cleanup_json_ json_t *reply = NULL;
	const char *want = NULL;
	const json_t *ty;
	size_t i;
	int c, r;

	while ((c = GETOPT(argc, argv, COMMON_SHORTOPTS, opts)) != -1)
		if ((r = common_option(ctx, c, types_help)) != OPT_CONTINUE)
			return r;
	if (optind < argc)
		want = argv[optind++];
	if (optind < argc)
		return usage_error("types", "types takes at most one TYPE");
	if ((r = api_call(ctx, "types", "GET", "/v1/types", NULL, API_AUTH, &reply)) != EXIT_OK)
		return r;
	if (!want) {
		if (ctx->json) {
			print_json(reply);
			return EXIT_OK;
		}
		return list_types(reply);
	}
	json_array_foreach(json_object_get(reply, "types"), i, ty) {
		if (!streq(str(ty, "name"), want))
			continue;
		if (ctx->json) {
			print_json(ty);
			return EXIT_OK;
		}
		return show_type(ty);
	}
	error("no credential type '%s'; 'vaultctl types' lists them", want);
	return EXIT_NOT_FOUND;
}
