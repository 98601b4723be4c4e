/* vaultctl/audit.c: audit tail, search, verify, export (docs/api.md, "Audit").
 * Every subcommand needs the audit capability (the auditor or admin role).
 * Records never hold secret values, so nothing here masks.
 */
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include "common/json.h"
#include "vaultctl/audit.h"
#include "vaultctl/cli.h"
#include "vaultctl/client.h"
#include "vaultctl/msg.h"
#include "vaultctl/output.h"

#define PAGE_MAX 1000           /* the API's largest limit */
#define TAIL_DEFAULT 20
#define SEARCH_DEFAULT 100
#define COUNT_MAX 10000000ul

/* Which options a subcommand takes. */
enum {
	AO_FILTERS = 1 << 0,    /* --since --until --principal --path --action --result */
	AO_LIMIT = 1 << 1,      /* --limit */
	AO_COUNT = 1 << 2,      /* -n */
	AO_CURSOR = 1 << 3,     /* --cursor */
};

struct audit_opts {
	const char *since, *until;      /* unix seconds, converted */
	const char *principal, *path, *action, *result;
	unsigned long limit, count, cursor;
	bool have_limit, have_count, have_cursor;
	char since_buf[24], until_buf[24];
};

/* T: unix seconds, or RFC 3339 UTC: 2026-11-26T10:00:00Z (also with a
 * fraction, a space for T, lower-case t/z, or +00:00). */
static int parse_time(const char *s, char *out, size_t outlen)
{
	unsigned long secs;
	struct tm tm = { 0 };
	const char *p;
	time_t t;
	int n = 0;

	if (parse_uint(s, (unsigned long)INT64_MAX, &secs) == 0) {
		snprintf(out, outlen, "%lu", secs);
		return 0;
	}
	if (sscanf(s, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &n) != 3 || n != 10)
		return -EINVAL;
	p = s + n;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return -EINVAL;
	p++;
	n = 0;
	if (sscanf(p, "%2d:%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 3 || n != 8)
		return -EINVAL;
	p += n;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (!streq(p, "Z") && !streq(p, "z") && !streq(p, "+00:00") && !streq(p, "-00:00"))
		return -EINVAL;
	if (tm.tm_year < 1970 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
	    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 59)
		return -EINVAL;
	{
		/* Reject 2026-02-30 and the like: timegm() would roll it over. */
		struct tm check;
		int mday = tm.tm_mday, mon = tm.tm_mon - 1;

		tm.tm_year -= 1900;
		tm.tm_mon = mon;
		t = timegm(&tm);
		if (t == (time_t)-1 || !gmtime_r(&t, &check) || check.tm_mday != mday || check.tm_mon != mon)
			return -EINVAL;
	}
	snprintf(out, outlen, "%lld", (long long)t);
	return 0;
}

static int parse_audit_opts(struct ctx *ctx, int argc, char **argv, const char *cmd, const char *help,
			    unsigned allowed, struct audit_opts *o)
{
	enum {
		OPT_SINCE = OPT_COMMON_LAST + 1,
		OPT_UNTIL,
		OPT_PRINCIPAL,
		OPT_PATH,
		OPT_ACTION,
		OPT_RESULT,
		OPT_LIMIT,
		OPT_CURSOR,
	};
	static const struct option opts[] = {
		COMMON_LONGOPTS,
		{ "since", required_argument, NULL, OPT_SINCE },
		{ "until", required_argument, NULL, OPT_UNTIL },
		{ "principal", required_argument, NULL, OPT_PRINCIPAL },
		{ "path", required_argument, NULL, OPT_PATH },
		{ "action", required_argument, NULL, OPT_ACTION },
		{ "result", required_argument, NULL, OPT_RESULT },
		{ "limit", required_argument, NULL, OPT_LIMIT },
		{ "cursor", required_argument, NULL, OPT_CURSOR },
		{ "lines", required_argument, NULL, 'n' },
		{},
	};
	int c, r;

	while ((c = GETOPT(argc, argv, COMMON_SHORTOPTS "n:", opts)) != -1) {
		switch (c) {
		case OPT_SINCE:
		case OPT_UNTIL:
		case OPT_PRINCIPAL:
		case OPT_PATH:
		case OPT_ACTION:
		case OPT_RESULT:
			if (!(allowed & AO_FILTERS))
				return usage_error(cmd, "%s takes no filters", cmd);
			if (!*optarg)
				return usage_error(cmd, "empty value for a filter");
			if (c == OPT_SINCE || c == OPT_UNTIL) {
				char *buf = c == OPT_SINCE ? o->since_buf : o->until_buf;
				if (parse_time(optarg, buf, sizeof(o->since_buf)) < 0)
					return usage_error(cmd, "--%s wants unix seconds or an RFC 3339 UTC time "
							   "like 2026-11-26T10:00:00Z, not '%s'",
							   c == OPT_SINCE ? "since" : "until", optarg);
				*(c == OPT_SINCE ? &o->since : &o->until) = buf;
			} else if (c == OPT_PRINCIPAL)
				o->principal = optarg;
			else if (c == OPT_PATH)
				o->path = optarg;
			else if (c == OPT_ACTION)
				o->action = optarg;
			else
				o->result = optarg;
			break;
		case OPT_LIMIT:
			if (!(allowed & AO_LIMIT))
				return usage_error(cmd, "%s takes no --limit", cmd);
			if (parse_uint(optarg, PAGE_MAX, &o->limit) < 0 || o->limit < 1)
				return usage_error(cmd, "--limit wants a number from 1 to %d, not '%s'", PAGE_MAX, optarg);
			o->have_limit = true;
			break;
		case OPT_CURSOR:
			if (!(allowed & AO_CURSOR))
				return usage_error(cmd, "%s takes no --cursor", cmd);
			if (parse_uint(optarg, (unsigned long)INT64_MAX, &o->cursor) < 0)
				return usage_error(cmd, "--cursor wants a record id, not '%s'", optarg);
			o->have_cursor = true;
			break;
		case 'n':
			if (!(allowed & AO_COUNT))
				return usage_error(cmd, "%s takes no -n", cmd);
			if (parse_uint(optarg, COUNT_MAX, &o->count) < 0 || o->count < 1)
				return usage_error(cmd, "-n wants a number from 1 to %lu, not '%s'", COUNT_MAX, optarg);
			o->have_count = true;
			break;
		default:
			if ((r = common_option(ctx, c, help)) != OPT_CONTINUE)
				return r;
		}
	}
	if (optind != argc)
		return usage_error(cmd, "%s takes no arguments", cmd);
	return OPT_CONTINUE;
}

/* Appends "&name=value" (value percent-encoded) to a query being built. */
static int query_add(FILE *q, const char *name, const char *value)
{
	_cleanup_free_ char *esc = NULL;

	if (!value)
		return 0;
	if (!(esc = path_escape(value)))
		return -ENOMEM;
	fprintf(q, "&%s=%s", name, esc);
	return 0;
}

/* "/v1/audit?limit=N[&order=desc][&filters...]" without the cursor. */
static char *audit_url(const struct audit_opts *o, unsigned long limit, bool desc)
{
	char *url = NULL;
	size_t len = 0;
	FILE *q = open_memstream(&url, &len);
	int r = 0;

	if (!q)
		return NULL;
	fprintf(q, "/v1/audit?limit=%lu", limit);
	if (desc)
		fputs("&order=desc", q);
	r |= query_add(q, "since", o->since);
	r |= query_add(q, "until", o->until);
	r |= query_add(q, "principal", o->principal);
	r |= query_add(q, "path", o->path);
	r |= query_add(q, "action", o->action);
	r |= query_add(q, "result", o->result);
	if (fclose(q) != 0 || r < 0) {
		free(url);
		return NULL;
	}
	return url;
}

/* One page: GET base[&cursor=N]. *ret_next is the next cursor, or -1 at the end. */
static int audit_page(struct ctx *ctx, const char *what, const char *base, long long cursor, json_t **ret,
		      long long *ret_next)
{
	_cleanup_free_ char *url = NULL;
	json_t *reply = NULL, *records, *next;
	int r;

	if (cursor >= 0 ? asprintf(&url, "%s&cursor=%lld", base, cursor) < 0 : !(url = strdup(base)))
		return error("out of memory");
	if ((r = api_call(ctx, what, "GET", url, NULL, API_AUTH, &reply)) != EXIT_OK)
		return r;
	records = json_object_get(reply, "records");
	next = json_object_get(reply, "next_cursor");
	if (!json_is_array(records) || (next && !json_is_null(next) && !json_is_integer(next))) {
		json_decref(reply);
		return error("%s: unexpected reply from vaultd (no records array)", what);
	}
	*ret_next = json_is_integer(next) ? (long long)json_integer_value(next) : -1;
	if (*ret_next >= 0 && cursor >= 0 && *ret_next == cursor) {
		json_decref(reply);
		return error("%s: vaultd answered the same cursor %lld twice", what, cursor);
	}
	*ret = reply;
	return EXIT_OK;
}

/* The id of the newest record (0 if the log is empty). */
static int newest_id(struct ctx *ctx, const char *what, long long *ret)
{
	_cleanup_json_ json_t *reply = NULL;
	long long next;
	int r;

	if ((r = audit_page(ctx, what, "/v1/audit?limit=1&order=desc", -1, &reply, &next)) != EXIT_OK)
		return r;
	*ret = (long long)json_integer_value(json_object_get(json_array_get(json_object_get(reply, "records"), 0), "id"));
	return EXIT_OK;
}

static void add_row(struct table *t, const json_t *rec)
{
	_cleanup_free_ char *id = json_text(json_object_get(rec, "id"));
	_cleanup_free_ char *status = json_text(json_object_get(rec, "status"));
	_cleanup_free_ char *when = json_text(json_object_get(rec, "time"));
	_cleanup_free_ char *principal = json_text(json_object_get(rec, "principal"));
	_cleanup_free_ char *action = json_text(json_object_get(rec, "action"));
	_cleanup_free_ char *path = json_text(json_object_get(rec, "path"));
	_cleanup_free_ char *result = json_text(json_object_get(rec, "result"));
	_cleanup_free_ char *detail = json_text(json_object_get(rec, "detail"));
	const char *row[] = { id, when, principal, action, path, result, status, detail };

	table_add(t, row);
}

static const char *const table_head[] = { "ID", "TIME", "PRINCIPAL", "ACTION", "PATH", "RESULT", "STATUS",
					   "DETAIL" };

static void print_records(const json_t *records)
{
	struct table *t = table_new(8, table_head);
	json_t *rec;
	size_t i;

	json_array_foreach(records, i, rec)
		add_row(t, rec);
	table_print_free(t);
}

static const char audit_help[] =
	"Usage: vaultctl audit COMMAND ...\n"
	"\n"
	"Reads vaultd's tamper-evident audit log (needs the audit capability: the\n"
	"auditor or admin role). Every request but health is recorded: allowed,\n"
	"denied and failed alike; never with secret values, passphrases or codes.\n"
	"\n"
	"Commands:\n"
	"  tail [-n N]                 the newest N records (default 20), oldest first\n"
	"  search [FILTERS] [--limit N] [--cursor ID]\n"
	"                              one page of matching records (default 100)\n"
	"  verify                      check the hash chain and its anchor (exit 1 if broken)\n"
	"  export [FILTERS] [--limit N]\n"
	"                              every matching record as JSON lines\n"
	"\n"
	"Filters: --since T, --until T (unix seconds or RFC 3339 UTC, e.g.\n"
	"2026-11-26T10:00:00Z), --principal user:NAME|service:NAME|uid:N,\n"
	"--path PREFIX, --action ACTION (e.g. secret.read), --result allowed|denied|failed.\n"
	"\n"
	"Example:\n"
	"  vaultctl audit search --principal user:bob --result denied\n";

static const char audit_tail_help[] =
	"Usage: vaultctl audit tail [-n N] [--json]\n"
	"\n"
	"Shows the newest N audit records (default 20), oldest first: ID, TIME,\n"
	"PRINCIPAL, ACTION, PATH, RESULT, STATUS. With --json: {\"records\": [...]}\n"
	"with the records as the API gives them.\n"
	"\n"
	"Example:\n"
	"  vaultctl audit tail -n 50\n";

static int audit_tail(struct ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_t *all = json_array();
	_cleanup_free_ char *base = NULL;
	struct audit_opts o = { .count = TAIL_DEFAULT };
	long long cursor = -1;
	size_t i;
	int r;

	if ((r = parse_audit_opts(ctx, argc, argv, "audit tail", audit_tail_help, AO_COUNT, &o)) != OPT_CONTINUE)
		return r;
	if (!(base = audit_url(&o, o.count < PAGE_MAX ? o.count : PAGE_MAX, true)))
		return error("out of memory");
	/* Newest first, page by page, until N records or the start of the log. */
	while (json_array_size(all) < o.count) {
		_cleanup_json_ json_t *reply = NULL;
		json_t *rec;
		long long next;

		if ((r = audit_page(ctx, "audit tail", base, cursor, &reply, &next)) != EXIT_OK)
			return r;
		json_array_foreach(json_object_get(reply, "records"), i, rec) {
			if (json_array_size(all) >= o.count)
				break;
			json_array_append(all, rec);
		}
		if (next < 0)
			break;
		cursor = next;
	}
	{
		/* Oldest first, like tail(1). */
		size_t n = json_array_size(all);
		_cleanup_json_ json_t *records = json_array();
		for (i = n; i-- > 0;)
			json_array_append(records, json_array_get(all, i));
		if (ctx->json) {
			_cleanup_json_ json_t *out = json_pack("{s:O}", "records", records);
			print_json(out);
		} else
			print_records(records);
	}
	return EXIT_OK;
}

static const char audit_search_help[] =
	"Usage: vaultctl audit search [--since T] [--until T] [--principal P] [--path PREFIX]\n"
	"                             [--action A] [--result R] [--limit N] [--cursor ID] [--json]\n"
	"\n"
	"Shows one page of the audit records matching every filter given, oldest\n"
	"first: at most N (1 to 1000, default 100). T is unix seconds or an RFC 3339\n"
	"UTC time (2026-11-26T10:00:00Z); P is user:NAME, service:NAME or uid:N;\n"
	"PREFIX matches on segment boundaries (acme/rmm covers acme/rmm/x, not\n"
	"acme/rmm-old); R is allowed, denied or failed. When more records match, the\n"
	"cursor for the next page is printed on standard error (with --json it is\n"
	"next_cursor in the API's reply, printed as it is).\n"
	"\n"
	"Examples:\n"
	"  vaultctl audit search --path acme/rmm --since 2026-11-26T00:00:00Z\n"
	"  vaultctl audit search --result denied --limit 20 --cursor 1234\n";

static int audit_search(struct ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_t *reply = NULL;
	_cleanup_free_ char *base = NULL;
	struct audit_opts o = { .limit = SEARCH_DEFAULT };
	long long next;
	int r;

	if ((r = parse_audit_opts(ctx, argc, argv, "audit search", audit_search_help,
				  AO_FILTERS | AO_LIMIT | AO_CURSOR, &o)) != OPT_CONTINUE)
		return r;
	if (!(base = audit_url(&o, o.limit, false)))
		return error("out of memory");
	if ((r = audit_page(ctx, "audit search", base, o.have_cursor ? (long long)o.cursor : -1, &reply, &next)) !=
	    EXIT_OK)
		return r;
	if (ctx->json) {
		print_json(reply);
		return EXIT_OK;
	}
	print_records(json_object_get(reply, "records"));
	if (next >= 0)
		fprintf(stderr, "vaultctl: more records match: add --cursor %lld for the next page\n", next);
	return EXIT_OK;
}

static const char audit_verify_help[] =
	"Usage: vaultctl audit verify [--json]\n"
	"\n"
	"Asks vaultd to recompute the audit log's hash chain and check its anchor\n"
	"(an HMAC under a key derived from the root key: needs the vault unlocked).\n"
	"An edited, deleted or reordered record breaks the chain at that record.\n"
	"Exits 0 when the log is intact; 1 with \"audit chain broken at record N:\n"
	"REASON\" on standard error when it is not.\n"
	"\n"
	"Example:\n"
	"  vaultctl audit verify\n";

static int audit_verify(struct ctx *ctx, int argc, char **argv)
{
	_cleanup_json_ json_t *reply = NULL;
	struct audit_opts o = { 0 };
	json_t *ok, *first;
	const char *reason;
	int r;

	if ((r = parse_audit_opts(ctx, argc, argv, "audit verify", audit_verify_help, 0, &o)) != OPT_CONTINUE)
		return r;
	if ((r = api_call(ctx, "audit verify", "GET", "/v1/audit/verify", NULL, API_AUTH, &reply)) != EXIT_OK)
		return r;
	ok = json_object_get(reply, "ok");
	if (!json_is_boolean(ok))
		return error("audit verify: unexpected reply from vaultd (no \"ok\")");
	if (ctx->json)
		print_json(reply);
	if (json_is_true(ok)) {
		if (!ctx->json)
			printf("The audit chain is intact: %lld records, anchored through record %lld.\n",
			       (long long)json_integer_value(json_object_get(reply, "records")),
			       (long long)json_integer_value(json_object_get(reply, "anchored_through")));
		return EXIT_OK;
	}
	first = json_object_get(reply, "first_broken");
	reason = json_string_value(json_object_get(reply, "reason")) ?: "no reason given";
	if (json_is_integer(first))
		return error("audit chain broken at record %lld: %s", (long long)json_integer_value(first), reason);
	return error("audit chain broken: %s", reason);
}

static const char audit_export_help[] =
	"Usage: vaultctl audit export [--since T] [--until T] [--principal P] [--path PREFIX]\n"
	"                             [--action A] [--result R] [--limit N]\n"
	"\n"
	"Writes every matching audit record, oldest first, as JSON lines on standard\n"
	"output: one record (as the API gives it) per line. It pages through the log\n"
	"N records at a time (1 to 1000, default 1000). The filters are those of\n"
	"'vaultctl audit search'.\n"
	"\n"
	"Example:\n"
	"  vaultctl audit export --since 2026-11-01T00:00:00Z > audit-november.jsonl\n";

static int audit_export(struct ctx *ctx, int argc, char **argv)
{
	_cleanup_free_ char *base = NULL;
	struct audit_opts o = { .limit = PAGE_MAX };
	long long cursor = -1, last;
	int r;

	if ((r = parse_audit_opts(ctx, argc, argv, "audit export", audit_export_help, AO_FILTERS | AO_LIMIT, &o)) !=
	    OPT_CONTINUE)
		return r;
	if (!(base = audit_url(&o, o.limit, false)))
		return error("out of memory");
	/* Each page we read is itself recorded: export what existed when we
	 * started, or a small --limit would chase its own records forever. */
	if ((r = newest_id(ctx, "audit export", &last)) != EXIT_OK)
		return r;
	while (last > 0) {
		_cleanup_json_ json_t *reply = NULL;
		json_t *rec;
		long long next;
		size_t i;

		if ((r = audit_page(ctx, "audit export", base, cursor, &reply, &next)) != EXIT_OK)
			return r;
		json_array_foreach(json_object_get(reply, "records"), i, rec) {
			if (json_integer_value(json_object_get(rec, "id")) > last) {
				next = -1;
				break;
			}
			print_json_line(rec);
		}
		if (fflush(stdout) != 0 || ferror(stdout))
			return error("cannot write to standard output: %m");
		if (next < 0)
			break;
		cursor = next;
	}
	return EXIT_OK;
}

int cmd_audit(struct ctx *ctx, int argc, char **argv)
{
	static const struct subcommand table[] = {
		{ "tail", audit_tail, "the newest records" },
		{ "search", audit_search, "one page of matching records" },
		{ "verify", audit_verify, "check the hash chain" },
		{ "export", audit_export, "every matching record as JSON lines" },
		{},
	};
	return run_subcommand(ctx, "audit", table, audit_help, argc, argv);
}
