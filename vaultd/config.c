/* vaultd/config.c: see config.h.
 *
 * inih does the INI syntax; everything else is ours. inih reads the text
 * through config_reader(), which hands it one line per call: that is how we
 * know the line number (the handler is the 4-argument INI_HANDLER_LINENO=0
 * kind declared by Debian's ini.h), and where too long lines, unknown
 * section headers and leading blanks are dealt with before inih sees them.
 */
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>
#include "common/err.h"
#include "common/number.h"
#include "common/util.h"
#include "vaultd/config.h"

/* Defining INI_HANDLER_LINENO to 1 changes the handler type, and is only
 * correct if the shared library was built the same way. Debian's libinih1 55
 * happens to pass the line number as a fifth argument (harmless to a
 * 4-argument handler on x86-64 and arm64) although its ini.h says 0; other
 * builds need not. So we keep the header's default and count lines in the
 * reader. */
_Static_assert(!INI_HANDLER_LINENO, "config.c counts lines itself");

struct config_key;
typedef int (*config_parser)(const struct config_key *k, const char *value, void *field, char *why,
			     size_t why_size);

struct config_key {
	const char *section;
	const char *name;
	config_parser parse;
	size_t offset;                  /* of the field in struct config */
	unsigned long long min, max;    /* integers: range; strings: length in bytes */
	const void *arg;                /* parser-specific: see each parser */
	const char *def;                /* default, as it would be written in the file */
};

/* A string key's extra rule: a predicate and how the message names it. */
struct string_rule {
	bool (*valid)(const char *s);
	const char *what;
};

static void why_set(char *why, size_t why_size, const char *fmt, ...) _printf_(3, 4);
static void why_set(char *why, size_t why_size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(why, why_size, fmt, ap);
	va_end(ap);
}

/* For the caller's err buffer, which may have size 0. */
static void set_err(char *err, size_t err_size, const char *fmt, ...) _printf_(3, 4);
static void set_err(char *err, size_t err_size, const char *fmt, ...)
{
	va_list ap;

	if (err_size == 0)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(err, err_size, fmt, ap);
	va_end(ap);
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* unsigned, decimal digits only: strtoull alone would take blanks, a sign
 * ("-1" wraps) and, with base 0, hex. */
static int parse_uint(const struct config_key *k, const char *value, void *field, char *why,
		      size_t why_size)
{
	uint64_t v;

	if (number_parse_u64(value, k->min, k->max, &v) < 0)
		goto bad;
	*(unsigned *)field = (unsigned)v;
	return 0;
bad:
	why_set(why, why_size, "must be an integer from %llu to %llu", k->min, k->max);
	return -EINVAL;
}

/* Octal permission bits only (no setuid, setgid or sticky), and never
 * writable by others: anyone could then talk to the daemon. */
static int parse_mode(const struct config_key *k, const char *value, void *field, char *why,
		      size_t why_size)
{
	unsigned long long v;
	size_t n = strlen(value);

	(void)k;
	if (n == 0 || n > 4 || strspn(value, "01234567") != n)
		goto bad;
	v = strtoull(value, NULL, 8);
	if (v > 0777)
		goto bad;
	if (v & S_IWOTH) {
		why_set(why, why_size, "must not let others write (o+w), as %04llo does", v);
		return -EINVAL;
	}
	*(mode_t *)field = (mode_t)v;
	return 0;
bad:
	why_set(why, why_size, "must be an octal mode like 0660");
	return -EINVAL;
}

/* Replaces *field; "" stores NULL when the key is optional (min == 0). */
static int store_string(const char *value, void *field)
{
	char *copy = NULL;

	if (*value) {
		copy = strdup(value);
		if (!copy)
			return -ENOMEM;
	}
	free(*(char **)field);
	*(char **)field = copy;
	return 0;
}

static int parse_path(const struct config_key *k, const char *value, void *field, char *why,
		      size_t why_size)
{
	size_t n = strlen(value);

	if (n == 0 && k->min == 0)
		return store_string(value, field);
	if (value[0] != '/') {
		why_set(why, why_size, "must be an absolute path");
		return -EINVAL;
	}
	if (n > k->max) {
		why_set(why, why_size, "must be at most %llu characters long", k->max);
		return -EINVAL;
	}
	if (has_control(value)) {
		why_set(why, why_size, "must not contain control characters");
		return -EINVAL;
	}
	return store_string(value, field);
}

/* arg: struct string_rule. */
static int parse_string(const struct config_key *k, const char *value, void *field, char *why,
			size_t why_size)
{
	const struct string_rule *rule = k->arg;
	size_t n = strlen(value);

	if (n == 0 && k->min == 0)
		return store_string(value, field);
	if (n < k->min || n > k->max || has_control(value) || !rule->valid(value)) {
		why_set(why, why_size, "must be %s%llu to %llu %s", k->min == 0 ? "empty or " : "",
			k->min == 0 ? 1 : k->min, k->max, rule->what);
		return -EINVAL;
	}
	return store_string(value, field);
}

/* arg: NULL-terminated list of the accepted strings; stores the string. */
static int parse_choice(const struct config_key *k, const char *value, void *field, char *why,
			size_t why_size)
{
	const char *const *choices = k->arg;
	size_t used = 0;

	for (size_t i = 0; choices[i]; i++)
		if (streq(value, choices[i]))
			return store_string(value, field);
	why_set(why, why_size, "must be one of:");
	for (size_t i = 0; choices[i]; i++) {
		used = strlen(why);
		if (used < why_size)
			why_set(why + used, why_size - used, "%s %s", i ? "," : "", choices[i]);
	}
	return -EINVAL;
}

static const struct {
	const char *name;
	int level;
} log_levels[] = {
	{ "error", LOG_ERR },
	{ "warning", LOG_WARNING },
	{ "notice", LOG_NOTICE },
	{ "info", LOG_INFO },
	{ "debug", LOG_DEBUG },
};

static int parse_log_level(const struct config_key *k, const char *value, void *field, char *why,
			   size_t why_size)
{
	(void)k;
	for (size_t i = 0; i < ELEMENTSOF(log_levels); i++)
		if (streq(value, log_levels[i].name)) {
			*(int *)field = log_levels[i].level;
			return 0;
		}
	why_set(why, why_size, "must be one of: error, warning, notice, info, debug");
	return -EINVAL;
}

static bool valid_token_label(const char *s)
{
	(void)s;
	return true;    /* any bytes but control characters: PKCS#11 labels are UTF-8 */
}

static bool valid_key_label(const char *s)
{
	for (; *s; s++)
		if (*s <= ' ' || *s >= 0x7f)
			return false;
	return true;
}

/* The portable POSIX name set; a leading '-' would read as an option. */
static bool valid_group(const char *s)
{
	if (*s == '-')
		return false;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
	       strlen(s);
}

static bool valid_env_name(const char *s)
{
	if (*s >= '0' && *s <= '9')
		return false;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") ==
	       strlen(s);
}

static const struct string_rule rule_token_label = {
	valid_token_label, "bytes, no control characters"
};
static const struct string_rule rule_key_label = {
	valid_key_label, "printable ASCII characters, no spaces"
};
static const struct string_rule rule_group = {
	valid_group, "characters from A-Z a-z 0-9 . _ -, not starting with -"
};
static const struct string_rule rule_env_name = {
	valid_env_name, "characters from A-Z a-z 0-9 _, not starting with a digit"
};
static const char *const mechanisms[] = { "oaep-sha256-host", "oaep-token", NULL };
static const char *const oaep_hashes[] = { "sha1", "sha256", NULL };
static const char *const mirror_policies[] = { "refuse", "continue", NULL };
static const char *const audit_syncs[] = { "full", "normal", NULL };

/* offsetof(), but only if the field has the parser's type: a mismatch picks
 * (void)0, which cannot initialise a size_t, so the table does not compile. */
#define FIELD_(sec, key, type)                                                                  \
	__builtin_choose_expr(                                                                  \
		__builtin_types_compatible_p(__typeof__(((struct config *)0)->sec.key), type), \
		offsetof(struct config, sec.key), (void)0)
#define KEY_(sec, key, parser, type, lo, hi, arg, def) \
	{ #sec, #key, parser, FIELD_(sec, key, type), lo, hi, arg, def }
#define KEY_UINT(sec, key, def, lo, hi) KEY_(sec, key, parse_uint, unsigned, lo, hi, NULL, def)
#define KEY_MODE(sec, key, def) KEY_(sec, key, parse_mode, mode_t, 0, 0777, NULL, def)
#define KEY_PATH(sec, key, def, lo, hi) KEY_(sec, key, parse_path, char *, lo, hi, NULL, def)
#define KEY_STRING(sec, key, def, lo, hi, rule) \
	KEY_(sec, key, parse_string, char *, lo, hi, &(rule), def)
#define KEY_CHOICE(sec, key, def, list) KEY_(sec, key, parse_choice, char *, 0, 0, list, def)
#define KEY_LEVEL(sec, key, def) KEY_(sec, key, parse_log_level, int, 0, 0, NULL, def)

/* Every key; dist/vaultd.conf lists the same keys with the same defaults
 * (test_config checks that). */
static const struct config_key config_keys[] = {
	KEY_PATH(server, socket, "/run/vaultd/vaultd.sock", 1, CONFIG_SOCKET_PATH_MAX),
	KEY_MODE(server, socket_mode, "0660"),
	KEY_STRING(server, socket_group, "", 0, 32, rule_group),
	KEY_UINT(server, max_connections, "64", 1, 4096),
	/* Unset, config_validate() lowers it to half a max_connections under 64. */
	KEY_UINT(server, max_connections_per_uid, "32", 1, 4096),
	KEY_UINT(server, request_timeout, "10", 1, 3600),
	KEY_UINT(server, max_body, "65536", 1024, 1048576),
	KEY_UINT(server, threads, "4", 1, 64),
	KEY_UINT(server, secure_memory_mib, "16", 1, 1024),

	KEY_PATH(storage, path, "/var/lib/vaultd/vault.db", 1, PATH_MAX - 1),
	KEY_UINT(storage, readers, "4", 1, 16),

	KEY_PATH(hsm, module, "/usr/lib/softhsm/libsofthsm2.so", 1, PATH_MAX - 1),
	KEY_STRING(hsm, token_label, "vaultd", 1, 32, rule_token_label),
	KEY_PATH(hsm, pin_file, "", 0, PATH_MAX - 1),
	KEY_STRING(hsm, pin_env, "", 0, 128, rule_env_name),
	KEY_STRING(hsm, key_label, "vaultd-root", 1, 64, rule_key_label),
	KEY_CHOICE(hsm, mechanism, "oaep-sha256-host", mechanisms),
	KEY_CHOICE(hsm, oaep_token_hash, "sha1", oaep_hashes),
	KEY_UINT(hsm, timeout_ms, "10000", 100, 600000),

	KEY_UINT(auth, session_ttl, "900", 60, 86400),
	KEY_UINT(auth, max_failures, "5", 1, 100),
	KEY_UINT(auth, lockout_seconds, "300", 1, 86400),
	KEY_UINT(auth, argon2_memory_kib, "65536", 8192, 4194304),
	KEY_UINT(auth, argon2_iterations, "3", 1, 100),
	KEY_UINT(auth, argon2_parallelism, "1", 1, 16),

	KEY_PATH(audit, jsonl_path, "", 0, PATH_MAX - 1),
	KEY_CHOICE(audit, jsonl_on_failure, "refuse", mirror_policies),
	KEY_UINT(audit, jsonl_timeout_ms, "1000", 10, 60000),
	KEY_UINT(audit, retain_days, "0", 0, 36500),
	KEY_CHOICE(audit, sync, "full", audit_syncs),
	KEY_UINT(audit, sync_interval_ms, "1000", 10, 60000),

	KEY_UINT(secrets, keep_versions, "10", 1, 1000),

	KEY_UINT(keys, kek_max_wraps, "1073741824", 10, 2147483648u),
	KEY_UINT(keys, kek_cache_max, "8192", 1, 1048576),

	KEY_UINT(rotation, batch_size, "500", 1, 10000),

	KEY_LEVEL(log, level, "info"),
};

static const char *const config_sections[] = { "server", "storage", "hsm", "auth", "audit", "secrets", "keys",
						 "rotation", "log" };

static bool section_known(const char *s, size_t n)
{
	for (size_t i = 0; i < ELEMENTSOF(config_sections); i++)
		if (strlen(config_sections[i]) == n && memcmp(config_sections[i], s, n) == 0)
			return true;
	return false;
}

static const struct config_key *key_find(const char *section, const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(config_keys); i++)
		if (streq(config_keys[i].section, section) && streq(config_keys[i].name, name))
			return &config_keys[i];
	return NULL;
}

static void *key_field(struct config *c, const struct config_key *k)
{
	return (char *)c + k->offset;
}

void config_free(struct config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < ELEMENTSOF(config_keys); i++) {
		const struct config_key *k = &config_keys[i];

		if (k->parse == parse_path || k->parse == parse_string || k->parse == parse_choice)
			free(*(char **)key_field(c, k));
	}
	memset(c, 0, sizeof(*c));
}

int config_init_defaults(struct config *c)
{
	char why[128];
	int r;

	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < ELEMENTSOF(config_keys); i++) {
		const struct config_key *k = &config_keys[i];

		r = k->parse(k, k->def, key_field(c, k), why, sizeof(why));
		if (r < 0) {
			config_free(c);
			return r;       /* -ENOMEM; -EINVAL would be a bad default in the table */
		}
	}
	return 0;
}

struct parse_ctx {
	struct config *c;
	const char *name;               /* file name for messages */
	const char *pos;                /* next unread byte of the text */
	const char *line;               /* current line after leading blanks (not NUL-terminated) */
	size_t line_len;
	unsigned lineno;
	unsigned set_on[ELEMENTSOF(config_keys)];      /* line each key was set on; 0: not set */
	int r;                          /* first error, or 0 */
	unsigned err_line;
	char *err;
	size_t err_size;
};

/* Copies s for a message: at most 64 bytes, control characters as '?'. */
static const char *printable(const char *s, size_t n, char *buf, size_t size)
{
	size_t i;

	for (i = 0; i < n && s[i] && i < size - 1; i++)
		buf[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
	buf[i] = '\0';
	return buf;
}

/* Records the first error as "NAME:LINE: message". */
static void ctx_fail(struct parse_ctx *ctx, int r, const char *fmt, ...) _printf_(3, 4);
static void ctx_fail(struct parse_ctx *ctx, int r, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (ctx->r < 0)
		return;
	ctx->r = r;
	ctx->err_line = ctx->lineno;
	if (ctx->err_size == 0)
		return;
	n = snprintf(ctx->err, ctx->err_size, "%s:%u: ", ctx->name, ctx->lineno);
	if (n < 0 || (size_t)n >= ctx->err_size)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(ctx->err + n, ctx->err_size - (size_t)n, fmt, ap);
	va_end(ap);
}

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* Checks a "[section]" line; false (error recorded) if it is unknown. A line
 * with no ']' is left to inih, which reports it as a syntax error. */
static bool check_section_line(struct parse_ctx *ctx, const char *p, size_t n)
{
	const char *close = memchr(p, ']', n);
	char buf[65];
	size_t i;

	if (!close)
		return true;
	if (!section_known(p + 1, (size_t)(close - p - 1))) {
		ctx_fail(ctx, -EINVAL, "unknown section [%s]",
			 printable(p + 1, (size_t)(close - p - 1), buf, sizeof(buf)));
		return false;
	}
	for (i = (size_t)(close - p) + 1; i < n && is_blank(p[i]); i++)
		;
	if (i < n && p[i] != ';' && p[i] != '#') {
		ctx_fail(ctx, -EINVAL, "unexpected text after [%s]",
			 printable(p + 1, (size_t)(close - p - 1), buf, sizeof(buf)));
		return false;
	}
	return true;
}

/* inih's fgets-like reader: one line per call, so ctx->lineno is the line
 * the handler is called for. Leading blanks are dropped so that an indented
 * line is never taken for a continuation of the previous value (inih's
 * multi-line mode, on in Debian's build). Returning NULL stops inih. */
static char *config_reader(char *buf, int num, void *user)
{
	struct parse_ctx *ctx = user;
	const char *p = ctx->pos, *nl;
	size_t n;

	if (ctx->r < 0 || *p == '\0')
		return NULL;
	nl = strchr(p, '\n');
	n = nl ? (size_t)(nl - p) : strlen(p);
	ctx->pos = p + n + (nl ? 1 : 0);
	ctx->lineno++;

	if (ctx->lineno == 1 && n >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) {
		p += 3;         /* UTF-8 byte order mark */
		n -= 3;
	}
	while (n > 0 && is_blank(*p)) {
		p++;
		n--;
	}
	ctx->line = p;
	ctx->line_len = n;
	/* inih needs room for "\r\n\0" after the longest line (ini.h) and would
	 * otherwise cut a long line into several. */
	if (num < 3 || n > (size_t)num - 3 || n > CONFIG_LINE_MAX) {
		ctx_fail(ctx, -EINVAL, "line longer than %d characters",
			 num < 3 || num - 3 > CONFIG_LINE_MAX ? CONFIG_LINE_MAX : num - 3);
		return NULL;
	}
	if (n > 0 && *p == '[' && !check_section_line(ctx, p, n))
		return NULL;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return buf;
}

/* Only ';' starts an inline comment, so "path = /x # note" would quietly
 * keep the note in the path. A '#' standing alone between blanks (or at the
 * end) is taken for such a comment and refused; "Token #2" is a value. */
static bool has_hash_comment(const char *value)
{
	for (const char *h = strchr(value, '#'); h; h = strchr(h + 1, '#'))
		if (h > value && is_blank(h[-1]) && (h[1] == '\0' || is_blank(h[1])))
			return true;
	return false;
}

/* Called by inih for every "name = value" with name and value trimmed and
 * an inline "; comment" removed. Returns 1 to go on, 0 on error. */
static int config_handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse_ctx *ctx = user;
	const struct config_key *k;
	char sbuf[65], nbuf[65], why[160];
	size_t i;
	int r;

	if (ctx->r < 0)
		return 0;
	/* inih also accepts "name: value"; the format is "name = value". */
	for (i = 0; i < ctx->line_len && ctx->line[i] != '=' && ctx->line[i] != ':'; i++)
		;
	if (i < ctx->line_len && ctx->line[i] == ':') {
		ctx_fail(ctx, -EINVAL, "syntax error: expected 'key = value', not 'key: value'");
		return 0;
	}
	if (!*name) {
		ctx_fail(ctx, -EINVAL, "syntax error: no key before '='");
		return 0;
	}
	printable(name, SIZE_MAX, nbuf, sizeof(nbuf));
	if (!*section) {
		ctx_fail(ctx, -EINVAL, "%s: key outside any section", nbuf);
		return 0;
	}
	printable(section, SIZE_MAX, sbuf, sizeof(sbuf));
	if (!section_known(section, strlen(section))) {   /* the reader saw the header already */
		ctx_fail(ctx, -EINVAL, "unknown section [%s]", sbuf);
		return 0;
	}
	k = key_find(section, name);
	if (!k) {
		ctx_fail(ctx, -EINVAL, "[%s] %s: unknown key", sbuf, nbuf);
		return 0;
	}
	if (ctx->set_on[k - config_keys]) {
		ctx_fail(ctx, -EINVAL, "[%s] %s: set twice (first on line %u)", sbuf, nbuf,
			 ctx->set_on[k - config_keys]);
		return 0;
	}
	if (has_hash_comment(value)) {
		ctx_fail(ctx, -EINVAL, "[%s] %s: '#' after a value is not a comment (use ';')",
			 sbuf, nbuf);
		return 0;
	}
	why[0] = '\0';
	r = k->parse(k, value, key_field(ctx->c, k), why, sizeof(why));
	if (r < 0) {
		ctx_fail(ctx, r, "[%s] %s: %s", sbuf, nbuf, r == -ENOMEM ? "out of memory" : why);
		return 0;
	}
	ctx->set_on[k - config_keys] = ctx->lineno;
	return 1;
}

static unsigned key_line(const struct parse_ctx *ctx, const char *section, const char *name)
{
	return ctx->set_on[key_find(section, name) - config_keys];
}

/* Rules that involve more than one key. */
static int config_validate(struct parse_ctx *ctx)
{
	const struct config *c = ctx->c;

	if (c->hsm.pin_file && c->hsm.pin_env) {
		unsigned lf = key_line(ctx, "hsm", "pin_file");
		unsigned le = key_line(ctx, "hsm", "pin_env");
		bool file_last = lf > le;

		/* name the later one: that is where the conflict appears */
		ctx->lineno = file_last ? lf : le;
		ctx_fail(ctx, -EINVAL, "[hsm] %s: set together with %s (line %u); set exactly one",
			 file_last ? "pin_file" : "pin_env", file_last ? "pin_env" : "pin_file",
			 file_last ? le : lf);
		return -EINVAL;
	}
	if (!c->hsm.pin_file && !c->hsm.pin_env) {
		set_err(ctx->err, ctx->err_size,
			"%s: [hsm] pin_file, pin_env: neither is set; set exactly one", ctx->name);
		ctx->r = -EINVAL;
		return -EINVAL;
	}
	if (c->server.threads > c->server.max_connections) {
		/* libmicrohttpd splits the connection limit across its workers:
		 * a worker with no share could never accept. */
		unsigned lt = key_line(ctx, "server", "threads");
		unsigned lm = key_line(ctx, "server", "max_connections");
		ctx->lineno = lt > lm ? lt : lm;
		ctx_fail(ctx, -EINVAL, "[server] threads: %u is more than max_connections (%u)",
			 c->server.threads, c->server.max_connections);
		return -EINVAL;
	}
	if (!key_line(ctx, "server", "max_connections_per_uid")) {
		/* The default must leave other uids room under a small
		 * max_connections too: one uid gets at most half of it. */
		unsigned half = c->server.max_connections / 2;

		if (c->server.max_connections_per_uid > half)
			ctx->c->server.max_connections_per_uid = half > 0 ? half : 1;
	} else if (c->server.max_connections_per_uid > c->server.max_connections) {
		unsigned lu = key_line(ctx, "server", "max_connections_per_uid");
		unsigned lm = key_line(ctx, "server", "max_connections");
		ctx->lineno = lu > lm ? lu : lm;
		ctx_fail(ctx, -EINVAL,
			 "[server] max_connections_per_uid: %u is more than max_connections (%u)",
			 c->server.max_connections_per_uid, c->server.max_connections);
		return -EINVAL;
	}
	return 0;
}

int config_load_string(const char *text, const char *name_for_errors, struct config *c, char *err,
		       size_t err_size)
{
	struct parse_ctx ctx = {
		.c = c,
		.name = name_for_errors ? name_for_errors : "<string>",
		.pos = text,
		.err = err,
		.err_size = err_size,
	};
	int r;

	if (err_size > 0)
		err[0] = '\0';
	r = config_init_defaults(c);
	if (r < 0) {
		set_err(err, err_size, "%s: out of memory", ctx.name);
		return r;
	}

	r = ini_parse_stream(config_reader, &ctx, config_handler, &ctx);
	if (r > 0 && (ctx.r == 0 || (unsigned)r < ctx.err_line)) {
		/* inih's own error (no '=', no ']'), before any of ours */
		ctx.r = 0;
		ctx.lineno = (unsigned)r;
		ctx_fail(&ctx, -EINVAL, "syntax error: expected '[section]' or 'key = value'");
	} else if (r < 0 && ctx.r == 0) {
		ctx.r = r == -2 ? -ENOMEM : -EIO;     /* -2: inih's malloc failed (heap builds) */
		set_err(err, err_size, "%s: %s", ctx.name, vlt_strerror(ctx.r));
	}
	if (ctx.r == 0)
		(void)config_validate(&ctx);
	if (ctx.r < 0) {
		config_free(c);
		return ctx.r;
	}
	return 0;
}

/* Reads the whole file (at most CONFIG_FILE_MAX bytes) as a C string. */
static int read_text(const char *path, char **ret, char *err, size_t err_size)
{
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t len = 0;
	ssize_t k;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		set_err(err, err_size, "%s: cannot open: %s", path, vlt_strerror(r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		set_err(err, err_size, "%s: cannot examine: %s", path, vlt_strerror(r));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		set_err(err, err_size, "%s: not a regular file", path);
		goto out;
	}
	buf = malloc(CONFIG_FILE_MAX + 2);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	while (len < CONFIG_FILE_MAX + 1) {
		k = read(fd, buf + len, CONFIG_FILE_MAX + 1 - len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = -errno;
			set_err(err, err_size, "%s: cannot read: %s", path,
				vlt_strerror(r));
			goto out;
		}
		if (k == 0)
			break;
		len += (size_t)k;
	}
	if (len > CONFIG_FILE_MAX) {
		r = -EFBIG;
		set_err(err, err_size, "%s: larger than %d bytes", path, CONFIG_FILE_MAX);
		goto out;
	}
	buf[len] = '\0';
	if (memchr(buf, '\0', len)) {
		const char *nul = memchr(buf, '\0', len);
		unsigned line = 1;

		for (const char *p = buf; p < nul; p++)
			line += *p == '\n';
		r = -EINVAL;
		set_err(err, err_size, "%s:%u: NUL byte in the file", path, line);
		goto out;
	}
	*ret = TAKE_PTR(buf);
out:
	(void)close(fd);
	return r;
}

int config_load(const char *path, struct config *c, char *err, size_t err_size)
{
	_cleanup_free_ char *text = NULL;
	int r;

	memset(c, 0, sizeof(*c));
	if (err_size > 0)
		err[0] = '\0';
	r = read_text(path, &text, err, err_size);
	if (r == -ENOMEM && err_size > 0)
		(void)snprintf(err, err_size, "%s: out of memory", path);
	if (r < 0)
		return r;
	return config_load_string(text, path, c, err, err_size);
}

/* Directory 'dir' must not be writable by others unless sticky. */
static int check_dir(const char *file, const char *dir, char *err, size_t err_size)
{
	struct stat st;
	int r;

	if (stat(dir, &st) < 0) {
		r = -errno;
		set_err(err, err_size, "%s: cannot examine directory %s: %s", file, dir,
			vlt_strerror(r));
		return r;
	}
	if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX)) {
		set_err(err, err_size,
			"%s: refusing a config file in world-writable directory %s (mode %04o)",
			file, dir, (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

int config_check_file_safety(const char *path, char *err, size_t err_size)
{
	_cleanup_free_ char *copy = NULL, *real = NULL, *real_copy = NULL;
	struct stat st;
	int r;

	if (err_size > 0)
		err[0] = '\0';
	if (stat(path, &st) < 0) {
		r = -errno;
		set_err(err, err_size, "%s: cannot examine: %s", path, vlt_strerror(r));
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		set_err(err, err_size, "%s: refusing a config file that is not a regular file",
			path);
		return -EPERM;
	}
	if (st.st_mode & S_IWOTH) {
		set_err(err, err_size,
			"%s: refusing a world-writable config file (mode %04o); run chmod o-w",
			path, (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}

	/* The directory of the name given: whoever can write there can swap
	 * the file (or the symlink) under us. */
	copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	r = check_dir(path, dirname(copy), err, err_size);
	if (r < 0)
		return r;

	/* And the directory the file really lives in, through any symlinks. */
	real = realpath(path, NULL);
	if (!real) {
		r = -errno;
		set_err(err, err_size, "%s: cannot resolve: %s", path, vlt_strerror(r));
		return r;
	}
	if (streq(real, path))
		return 0;
	real_copy = strdup(real);
	if (!real_copy)
		return -ENOMEM;
	return check_dir(path, dirname(real_copy), err, err_size);
}
