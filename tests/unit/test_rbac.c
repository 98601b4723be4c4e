/* tests/unit/test_rbac.c: patterns, matching, the access decision, role JSON. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "common/json.h"
#include "vaultd/access/rbac.h"

#define R_EMPTY "pattern is empty"
#define R_LONG "pattern is longer than 520 characters"
#define R_SLASH "leading or trailing '/'"
#define R_EMPTY_SEG "empty segment"
#define R_MANY "more than 8 segments"
#define R_LONG_SEG "segment longer than 64 characters"
#define R_STAR "'*' must be a whole segment, as in acme/*/slack"
#define R_CHAR "a segment contains a character outside [A-Za-z0-9._-]"
#define R_DOTS "'.' and '..' are not allowed as segments"

#define R_NAME "must be 1 to 64 characters of [A-Za-z0-9._-], starting with a letter or digit"
#define R_FIELD_NAME "field names must be 1 to 64 characters of [A-Za-z0-9._-]"
#define R_UNKNOWN_CAP "unknown capability; expected read, list, write, delete, rotate, audit or admin"

#define ALL_CAPS "[\"read\",\"list\",\"write\",\"delete\",\"rotate\",\"audit\",\"admin\"]"

/* n segments of 'seg' joined by '/', into buf. */
static const char *join(char *buf, size_t size, const char *seg, unsigned n)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < n; i++) {
		int k = snprintf(buf + off, size - off, "%s%s", i ? "/" : "", seg);
		assert_true(k > 0 && (size_t)k < size - off);
		off += (size_t)k;
	}
	return buf;
}

static void expect_pattern(const char *pattern, const char *reason)
{
	const char *r = rbac_pattern_check(pattern);

	if (!reason) {
		if (r)
			fail_msg("'%s': unexpected \"%s\"", pattern, r);
		return;
	}
	if (!r)
		fail_msg("'%s': accepted, expected \"%s\"", pattern ? pattern : "(null)", reason);
	if (strcmp(r, reason) != 0)
		fail_msg("'%s': got \"%s\", expected \"%s\"", pattern, r, reason);
}

static void expect_match(const char *pattern, const char *path, bool want)
{
	if (rbac_match(pattern, path) != want)
		fail_msg("rbac_match('%s', '%s') should be %s", pattern ? pattern : "(null)",
			 path ? path : "(null)", want ? "true" : "false");
}

static void expect_cover(const char *pattern, const char *prefix, bool want)
{
	if (rbac_pattern_may_cover(pattern, prefix) != want)
		fail_msg("rbac_pattern_may_cover('%s', '%s') should be %s", pattern ? pattern : "(null)",
			 prefix ? prefix : "(null)", want ? "true" : "false");
}

/* ---- capabilities ---- */

static void test_cap_names(void **state)
{
	static const struct {
		enum rbac_cap c;
		const char *name;
	} caps[] = {
		{ RBAC_READ, "read" }, { RBAC_LIST, "list" }, { RBAC_WRITE, "write" },
		{ RBAC_DELETE, "delete" }, { RBAC_ROTATE, "rotate" }, { RBAC_AUDIT, "audit" },
		{ RBAC_ADMIN, "admin" },
	};
	enum rbac_cap c;
	unsigned all = 0;
	(void)state;

	assert_int_equal(ELEMENTSOF(caps), RBAC_CAP_COUNT);
	for (size_t i = 0; i < ELEMENTSOF(caps); i++) {
		assert_string_equal(rbac_cap_name(caps[i].c), caps[i].name);
		assert_int_equal(rbac_cap_from_name(caps[i].name, &c), 0);
		assert_int_equal(c, caps[i].c);
		all |= caps[i].c;
	}
	assert_int_equal(all, RBAC_CAPS_ALL);

	assert_null(rbac_cap_name((enum rbac_cap)0));
	assert_null(rbac_cap_name((enum rbac_cap)(RBAC_READ | RBAC_LIST)));
	assert_null(rbac_cap_name((enum rbac_cap)(1u << RBAC_CAP_COUNT)));

	c = RBAC_WRITE;
	assert_int_equal(rbac_cap_from_name("READ", &c), -EINVAL);
	assert_int_equal(rbac_cap_from_name("reads", &c), -EINVAL);
	assert_int_equal(rbac_cap_from_name("rea", &c), -EINVAL);
	assert_int_equal(rbac_cap_from_name("", &c), -EINVAL);
	assert_int_equal(rbac_cap_from_name(NULL, &c), -EINVAL);
	assert_int_equal(c, RBAC_WRITE);        /* untouched on failure */
}

/* ---- pattern syntax ---- */

static void test_pattern_valid(void **state)
{
	char buf[1024], seg64[PATH_SEGMENT_MAX + 1];
	(void)state;

	memset(seg64, 'a', PATH_SEGMENT_MAX);
	seg64[PATH_SEGMENT_MAX] = '\0';

	expect_pattern("*", NULL);
	expect_pattern("acme", NULL);
	expect_pattern("acme/rmm", NULL);
	expect_pattern("acme/rmm/*", NULL);
	expect_pattern("*/slack", NULL);
	expect_pattern("acme/*/slack", NULL);
	expect_pattern("*/*", NULL);
	expect_pattern("A-z_0.9/..x/.x/x.", NULL);
	expect_pattern(seg64, NULL);
	expect_pattern(join(buf, sizeof(buf), "x", PATH_SEGMENTS_MAX), NULL);
	expect_pattern(join(buf, sizeof(buf), "*", PATH_SEGMENTS_MAX), NULL);
	expect_pattern(join(buf, sizeof(buf), seg64, PATH_SEGMENTS_MAX), NULL);  /* 519 chars */
}

static void test_pattern_invalid(void **state)
{
	char buf[2048], seg65[PATH_SEGMENT_MAX + 2];
	(void)state;

	memset(seg65, 'a', PATH_SEGMENT_MAX + 1);
	seg65[PATH_SEGMENT_MAX + 1] = '\0';

	expect_pattern(NULL, R_EMPTY);
	expect_pattern("", R_EMPTY);
	expect_pattern("/", R_SLASH);
	expect_pattern("/acme", R_SLASH);
	expect_pattern("acme/", R_SLASH);
	expect_pattern("/*", R_SLASH);
	expect_pattern("acme//rmm", R_EMPTY_SEG);
	expect_pattern("acme/**", R_STAR);
	expect_pattern("**", R_STAR);
	expect_pattern("acme/x*", R_STAR);
	expect_pattern("acme/*x", R_STAR);
	expect_pattern("ac*me", R_STAR);
	expect_pattern("a/../b", R_DOTS);
	expect_pattern("a/./b", R_DOTS);
	expect_pattern(".", R_DOTS);
	expect_pattern("..", R_DOTS);
	expect_pattern("acme/rm m", R_CHAR);
	expect_pattern("acme/rmm?", R_CHAR);
	expect_pattern("acme/%2e%2e", R_CHAR);
	expect_pattern("acme\\rmm", R_CHAR);
	expect_pattern("acme/caf\xc3\xa9", R_CHAR);
	expect_pattern("acme/r\tm", R_CHAR);
	expect_pattern(seg65, R_LONG_SEG);
	expect_pattern(join(buf, sizeof(buf), "x", PATH_SEGMENTS_MAX + 1), R_MANY);
	expect_pattern(join(buf, sizeof(buf), "*", PATH_SEGMENTS_MAX + 1), R_MANY);
	memset(buf, 'a', 600);
	buf[600] = '\0';
	expect_pattern(buf, R_LONG);
}

/* ---- matching ---- */

static void test_match_prefix(void **state)
{
	(void)state;

	expect_match("acme/rmm", "acme/rmm", true);
	expect_match("acme/rmm", "acme/rmm/x", true);
	expect_match("acme/rmm", "acme/rmm/x/y", true);
	expect_match("acme", "acme/rmm/tactical", true);

	/* Segment boundaries, not string prefixes. */
	expect_match("acme/rmm", "acme/rmm-old", false);
	expect_match("acme/rmm", "acme/rmm-old/x", false);
	expect_match("acme/rmm", "acme/rmm.x", false);
	expect_match("acme/rmm", "acme/rmmx", false);
	expect_match("acme/rmm", "acme/rm", false);
	expect_match("acme/rmm", "acme", false);
	expect_match("acme", "acme-corp/rmm", false);
	expect_match("acme/rmm", "globex/acme/rmm", false);

	/* Case sensitive, byte for byte. */
	expect_match("acme/rmm", "Acme/rmm", false);
	expect_match("acme/rmm", "acme/RMM", false);
	expect_match("Acme", "acme/rmm", false);
}

static void test_match_star(void **state)
{
	char buf[1024];
	(void)state;

	expect_match("acme/*", "acme/x", true);
	expect_match("acme/*", "acme/x/y", true);
	expect_match("acme/*", "acme", false);          /* '*' needs one segment */
	expect_match("acme/*", "globex/x", false);

	expect_match("*/slack", "acme/slack", true);
	expect_match("*/slack", "globex/slack", true);
	expect_match("*/slack", "acme/slack/bot", true);
	expect_match("*/slack", "acme/chat/slack", false); /* never across '/' */
	expect_match("*/slack", "slack", false);
	expect_match("*/slack", "acme/slackbot", false);
	expect_match("*/slack", "acme/Slack", false);

	expect_match("acme/*/slack", "acme/x/slack", true);
	expect_match("acme/*/slack", "acme/x/slack/bot", true);
	expect_match("acme/*/slack", "acme/x/y/slack", false);
	expect_match("acme/*/slack", "acme/slack", false);

	expect_match("acme/rmm/*", "acme/rmm/tactical", true);
	expect_match("acme/rmm/*", "acme/rmm", false);
	expect_match("acme/rmm/*", "acme/rmm-old/tactical", false);

	/* "*" alone: every valid path. */
	expect_match("*", "acme", true);
	expect_match("*", "acme/rmm", true);
	expect_match("*", "Z/._-", true);
	expect_match("*", join(buf, sizeof(buf), "x", PATH_SEGMENTS_MAX), true);
	expect_match("*/*", "acme", false);
	expect_match("*/*", "acme/x", true);
}

static void test_match_invalid(void **state)
{
	char buf[1024];
	(void)state;

	/* An invalid path never matches, even "*". */
	expect_match("*", NULL, false);
	expect_match("*", "", false);
	expect_match("*", "/acme", false);
	expect_match("*", "acme/", false);
	expect_match("*", "acme//x", false);
	expect_match("*", "acme/../globex", false);
	expect_match("acme", "acme/../globex", false);
	expect_match("acme", "acme/./x", false);
	expect_match("*", join(buf, sizeof(buf), "x", PATH_SEGMENTS_MAX + 1), false);
	expect_match("acme/*", "acme/*", false);        /* '*' is no path character */
	expect_match("*", "acme/x y", false);

	/* An invalid pattern never matches. */
	expect_match(NULL, "acme/x", false);
	expect_match("", "acme/x", false);
	expect_match("acme/**", "acme/x", false);
	expect_match("acme/x*", "acme/xyz", false);
	expect_match("acme/", "acme/x", false);
	expect_match("/acme", "acme/x", false);
	expect_match("acme/../globex", "acme/../globex", false);
}

static void test_may_cover(void **state)
{
	(void)state;

	/* Listing above a rule: some path below may match. */
	expect_cover("acme/rmm/*", "acme", true);
	expect_cover("acme/rmm/*", "acme/rmm", true);
	expect_cover("acme/rmm/*", "acme/rmm/tactical", true);
	expect_cover("acme/rmm/*", "acme/rmm/tactical/x", true);
	expect_cover("acme/rmm/*", "globex", false);
	expect_cover("acme/rmm/*", "acme/psa", false);
	expect_cover("acme/rmm/*", "acme/rmm-old", false);
	expect_cover("acme/rmm/*", "Acme", false);

	/* Listing below a rule: covered when the rule matches. */
	expect_cover("acme", "acme/rmm", true);
	expect_cover("acme", "acme/rmm/x", true);
	expect_cover("acme", "globex/rmm", false);

	/* Wildcards. */
	expect_cover("*/slack", "acme", true);
	expect_cover("*/slack", "acme/slack", true);
	expect_cover("*/slack", "acme/chat", false);
	expect_cover("*", "acme", true);
	expect_cover("*", "acme/x/y", true);

	/* The root: only patterns starting with a "*" segment. */
	expect_cover("*", "", true);
	expect_cover("*/slack", "", true);
	expect_cover("*/*/x", "", true);
	expect_cover("acme", "", false);
	expect_cover("acme/rmm/*", "", false);
	expect_cover("acme/*", "", false);

	/* Invalid input never covers. */
	expect_cover("*", NULL, false);
	expect_cover("*", "/", false);
	expect_cover("*", "/acme", false);
	expect_cover("*", "acme/", false);
	expect_cover("*", "acme/..", false);
	expect_cover(NULL, "acme", false);
	expect_cover("", "acme", false);
	expect_cover("", "", false);
	expect_cover("**", "", false);
	expect_cover("acme/x*", "acme", false);
}

/* ---- the decision ---- */

#define ROLE(n, r) { .name = n, .rules = (r), .n_rules = ELEMENTSOF(r) }

static void test_allowed_default_deny(void **state)
{
	struct rbac_role empty = { .name = "empty" };
	const struct rbac_role *admin = rbac_builtin_find("admin");
	const struct rbac_role *roles[] = { &empty };
	const struct rbac_role *nulls[] = { NULL, NULL };
	(void)state;

	assert_false(rbac_allowed(NULL, 0, "acme/x", RBAC_READ));
	assert_false(rbac_allowed(roles, 0, "acme/x", RBAC_READ));
	assert_false(rbac_allowed(NULL, 3, "acme/x", RBAC_READ));
	assert_false(rbac_allowed(roles, 1, "acme/x", RBAC_READ));
	assert_false(rbac_allowed(roles, 1, NULL, RBAC_AUDIT));
	assert_false(rbac_allowed(nulls, 2, "acme/x", RBAC_READ));
	assert_false(rbac_allowed_list(NULL, 0, "acme"));
	assert_false(rbac_allowed_list(roles, 1, "acme"));
	assert_false(rbac_allowed_list(roles, 1, ""));

	/* Even admin: asking for nothing or for unknown bits is a bug, denied. */
	assert_non_null(admin);
	assert_true(rbac_allowed(&admin, 1, "acme/x", RBAC_READ));
	assert_false(rbac_allowed(&admin, 1, "acme/x", 0));
	assert_false(rbac_allowed(&admin, 1, "acme/x", 1u << RBAC_CAP_COUNT));
	assert_false(rbac_allowed(&admin, 1, "acme/x", RBAC_READ | (1u << 31)));
	/* ... and an invalid path. */
	assert_false(rbac_allowed(&admin, 1, "", RBAC_READ));
	assert_false(rbac_allowed(&admin, 1, "acme/../globex", RBAC_READ));
	assert_false(rbac_allowed(&admin, 1, "/acme", RBAC_READ));
	assert_false(rbac_allowed_list(&admin, 1, NULL));
	assert_false(rbac_allowed_list(&admin, 1, "acme/"));
}

/* The scenario the design promises: a service bound to rmm-read. */
static void test_allowed_rmm_read(void **state)
{
	struct rbac_rule rules[] = { { .pattern = "acme/rmm/*", .caps = RBAC_READ | RBAC_LIST } };
	struct rbac_role rmm_read = ROLE("rmm-read", rules);
	const struct rbac_role *roles[] = { &rmm_read };
	(void)state;

	assert_true(rbac_allowed(roles, 1, "acme/rmm/tactical", RBAC_READ));
	assert_true(rbac_allowed(roles, 1, "acme/rmm/tactical", RBAC_LIST));
	assert_true(rbac_allowed(roles, 1, "acme/rmm/tactical", RBAC_READ | RBAC_LIST));
	assert_false(rbac_allowed(roles, 1, "acme/rmm/tactical", RBAC_WRITE));
	assert_false(rbac_allowed(roles, 1, "acme/rmm/tactical", RBAC_DELETE));
	assert_false(rbac_allowed(roles, 1, "acme/rmm/tactical", RBAC_ROTATE));
	assert_false(rbac_allowed(roles, 1, "acme/rmm/tactical", RBAC_READ | RBAC_WRITE));
	assert_false(rbac_allowed(roles, 1, "acme/psa/autotask", RBAC_READ));
	assert_false(rbac_allowed(roles, 1, "globex/rmm/tactical", RBAC_READ));
	assert_false(rbac_allowed(roles, 1, "acme/rmm", RBAC_READ));
	assert_false(rbac_allowed(roles, 1, "acme/rmm-old/tactical", RBAC_READ));
	assert_false(rbac_allowed(roles, 1, NULL, RBAC_AUDIT));
	assert_false(rbac_allowed(roles, 1, NULL, RBAC_READ));

	/* Listing: allowed down to the rule, then each entry is filtered. */
	assert_true(rbac_allowed_list(roles, 1, "acme"));
	assert_true(rbac_allowed_list(roles, 1, "acme/rmm"));
	assert_true(rbac_allowed_list(roles, 1, "acme/rmm/tactical"));
	assert_false(rbac_allowed_list(roles, 1, "acme/psa"));
	assert_false(rbac_allowed_list(roles, 1, "globex"));
	assert_false(rbac_allowed_list(roles, 1, ""));
	assert_true(rbac_allowed(roles, 1, "acme/rmm/ninja", RBAC_LIST));
	assert_false(rbac_allowed(roles, 1, "acme/psa/autotask", RBAC_LIST));
}

static void test_allowed_caps_per_rule(void **state)
{
	struct rbac_rule ro_rules[] = { { .pattern = "acme", .caps = RBAC_READ | RBAC_LIST } };
	struct rbac_rule split[] = {
		{ .pattern = "acme", .caps = RBAC_READ },
		{ .pattern = "acme", .caps = RBAC_WRITE },
	};
	struct rbac_rule list_only[] = { { .pattern = "*", .caps = RBAC_READ | RBAC_WRITE } };
	struct rbac_role ro = ROLE("read-only", ro_rules), sp = ROLE("split", split),
			 nl = ROLE("no-list", list_only);
	const struct rbac_role *r_ro[] = { &ro }, *r_sp[] = { &sp }, *r_nl[] = { &nl };
	(void)state;

	/* A read-only role cannot write. */
	assert_true(rbac_allowed(r_ro, 1, "acme/x", RBAC_READ));
	assert_false(rbac_allowed(r_ro, 1, "acme/x", RBAC_WRITE));
	assert_false(rbac_allowed(r_ro, 1, "acme/x", RBAC_DELETE));
	assert_false(rbac_allowed(r_ro, 1, "acme/x", RBAC_CAPS_ALL));

	/* One rule must grant every capability asked for. */
	assert_true(rbac_allowed(r_sp, 1, "acme/x", RBAC_READ));
	assert_true(rbac_allowed(r_sp, 1, "acme/x", RBAC_WRITE));
	assert_false(rbac_allowed(r_sp, 1, "acme/x", RBAC_READ | RBAC_WRITE));

	/* No list capability, no listing, even on "*". */
	assert_false(rbac_allowed_list(r_nl, 1, "acme"));
	assert_false(rbac_allowed_list(r_nl, 1, ""));
	assert_false(rbac_allowed(r_nl, 1, "acme/x", RBAC_LIST));
	/* And RBAC_ADMIN implies nothing. */
	struct rbac_rule adm_rules[] = { { .pattern = "*", .caps = RBAC_ADMIN } };
	struct rbac_role adm = ROLE("adm", adm_rules);
	const struct rbac_role *r_adm[] = { &adm };
	assert_true(rbac_allowed(r_adm, 1, NULL, RBAC_ADMIN));
	assert_false(rbac_allowed(r_adm, 1, "acme/x", RBAC_READ));
}

static void test_allowed_union(void **state)
{
	struct rbac_rule a_rules[] = { { .pattern = "acme/rmm/*", .caps = RBAC_READ } };
	struct rbac_rule b_rules[] = {
		{ .pattern = "globex", .caps = RBAC_WRITE },
		{ .pattern = "*/slack", .caps = RBAC_ROTATE | RBAC_READ },
	};
	struct rbac_role a = ROLE("a", a_rules), b = ROLE("b", b_rules);
	const struct rbac_role *roles[] = { NULL, &a, NULL, &b };
	(void)state;

	assert_true(rbac_allowed(roles, 4, "acme/rmm/tactical", RBAC_READ));
	assert_true(rbac_allowed(roles, 4, "globex/x", RBAC_WRITE));
	assert_true(rbac_allowed(roles, 4, "initech/slack", RBAC_ROTATE));
	assert_true(rbac_allowed(roles, 4, "acme/slack/bot", RBAC_READ | RBAC_ROTATE));
	assert_false(rbac_allowed(roles, 4, "acme/rmm/tactical", RBAC_WRITE));
	assert_false(rbac_allowed(roles, 4, "globex/x", RBAC_READ));
	assert_false(rbac_allowed(roles, 4, "acme/chat/slack", RBAC_READ));
	/* Only the first n_roles count. */
	assert_false(rbac_allowed(roles, 3, "globex/x", RBAC_WRITE));
	assert_true(rbac_allowed(roles, 2, "acme/rmm/tactical", RBAC_READ));
}

static void test_allowed_no_path(void **state)
{
	struct rbac_rule star[] = { { .pattern = "*", .caps = RBAC_AUDIT } };
	struct rbac_rule tenant[] = { { .pattern = "acme", .caps = RBAC_AUDIT | RBAC_ADMIN } };
	struct rbac_rule stars[] = { { .pattern = "*/*", .caps = RBAC_AUDIT } };
	struct rbac_rule broken[] = { { .pattern = NULL, .caps = RBAC_CAPS_ALL },
				      { .pattern = "**", .caps = RBAC_CAPS_ALL } };
	struct rbac_role s = ROLE("s", star), t = ROLE("t", tenant), ss = ROLE("ss", stars),
			 br = ROLE("br", broken);
	const struct rbac_role *r_s[] = { &s }, *r_t[] = { &t }, *r_ss[] = { &ss }, *r_br[] = { &br };
	const struct rbac_role *admin = rbac_builtin_find("admin"), *op = rbac_builtin_find("operator"),
			       *aud = rbac_builtin_find("auditor");
	(void)state;

	assert_true(rbac_allowed(r_s, 1, NULL, RBAC_AUDIT));
	assert_false(rbac_allowed(r_s, 1, NULL, RBAC_ADMIN));
	assert_false(rbac_allowed(r_t, 1, NULL, RBAC_AUDIT));   /* only "*" counts */
	assert_false(rbac_allowed(r_t, 1, NULL, RBAC_ADMIN));
	assert_false(rbac_allowed(r_ss, 1, NULL, RBAC_AUDIT));
	assert_true(rbac_allowed(r_t, 1, "acme/x", RBAC_AUDIT));

	/* Broken hand-made rules grant nothing. */
	assert_false(rbac_allowed(r_br, 1, NULL, RBAC_ADMIN));
	assert_false(rbac_allowed(r_br, 1, "acme/x", RBAC_READ));
	assert_false(rbac_allowed_list(r_br, 1, "acme"));

	assert_true(rbac_allowed(&admin, 1, NULL, RBAC_ADMIN));
	assert_true(rbac_allowed(&admin, 1, NULL, RBAC_AUDIT));
	assert_false(rbac_allowed(&op, 1, NULL, RBAC_ADMIN));
	assert_false(rbac_allowed(&op, 1, NULL, RBAC_AUDIT));
	assert_true(rbac_allowed(&aud, 1, NULL, RBAC_AUDIT));
	assert_false(rbac_allowed(&aud, 1, NULL, RBAC_ADMIN));
}

/* ---- built-in roles ---- */

static void check_builtin(const char *name, unsigned caps)
{
	const struct rbac_role *r = rbac_builtin_find(name);

	assert_non_null(r);
	assert_string_equal(r->name, name);
	assert_true(r->builtin);
	assert_int_equal(r->n_rules, 1);
	assert_string_equal(r->rules[0].pattern, "*");
	assert_int_equal(r->rules[0].caps, caps);
}

static void test_builtins(void **state)
{
	const struct rbac_role *admin, *op, *aud;
	struct rbac_role copy;
	(void)state;

	assert_int_equal(rbac_builtin_count(), 3);
	assert_string_equal(rbac_builtin_at(0)->name, "admin");
	assert_string_equal(rbac_builtin_at(1)->name, "operator");
	assert_string_equal(rbac_builtin_at(2)->name, "auditor");
	assert_null(rbac_builtin_at(3));
	assert_null(rbac_builtin_at((size_t)-1));
	assert_null(rbac_builtin_find("nope"));
	assert_null(rbac_builtin_find("Admin"));
	assert_null(rbac_builtin_find(""));
	assert_null(rbac_builtin_find(NULL));

	check_builtin("admin", RBAC_CAPS_ALL);
	check_builtin("operator", RBAC_READ | RBAC_LIST | RBAC_WRITE | RBAC_DELETE | RBAC_ROTATE);
	check_builtin("auditor", RBAC_AUDIT | RBAC_LIST);

	admin = rbac_builtin_find("admin");
	op = rbac_builtin_find("operator");
	aud = rbac_builtin_find("auditor");
	for (unsigned b = 0; b < RBAC_CAP_COUNT; b++)
		assert_true(rbac_allowed(&admin, 1, "acme/rmm/x", 1u << b));
	assert_true(rbac_allowed(&op, 1, "globex/x", RBAC_READ | RBAC_WRITE | RBAC_DELETE | RBAC_ROTATE));
	assert_true(rbac_allowed_list(&op, 1, ""));
	assert_false(rbac_allowed(&aud, 1, "acme/x", RBAC_READ));
	assert_true(rbac_allowed_list(&aud, 1, "acme"));
	assert_true(rbac_allowed_list(&aud, 1, ""));

	/* Clearing a copy of a built-in role frees nothing. */
	copy = *admin;
	rbac_role_clear(&copy);
	assert_int_equal(copy.n_rules, 0);
	assert_null(copy.rules);
	check_builtin("admin", RBAC_CAPS_ALL);
	rbac_role_clear(NULL);
}

/* ---- JSON ---- */

static json_t *load(const char *text)
{
	json_error_t err;
	json_t *j = json_loads(text, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);

	if (!j)
		fail_msg("bad test JSON '%s': %s", text, err.text);
	return j;
}

static void assert_json_eq(const json_t *got, const char *want_text)
{
	_cleanup_json_ json_t *want = load(want_text);

	if (!json_equal(got, want)) {
		char *g = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT);
		char *w = json_dumps(want, JSON_SORT_KEYS | JSON_COMPACT);
		print_error("got  %s\nwant %s\n", g ? g : "(null)", w ? w : "(null)");
		json_secure_free(g);
		json_secure_free(w);
		fail();
	}
}

/* Parsing 'body' as role 'name' fails with exactly these errors, and leaves
 * *ret untouched. */
static void expect_errors_obj(const char *name, const json_t *obj, const char *errors)
{
	_cleanup_json_ json_t *got = NULL;
	struct rbac_role role, before;

	memset(&role, 0xa5, sizeof(role));
	before = role;
	assert_int_equal(rbac_role_from_json(name, obj, &role, &got), -EINVAL);
	assert_non_null(got);
	assert_json_eq(got, errors);
	assert_memory_equal(&role, &before, sizeof(role));
	/* The same without an errors object. */
	assert_int_equal(rbac_role_from_json(name, obj, &role, NULL), -EINVAL);
	assert_memory_equal(&role, &before, sizeof(role));
}

static void expect_errors(const char *name, const char *body, const char *errors)
{
	_cleanup_json_ json_t *obj = load(body);

	expect_errors_obj(name, obj, errors);
}

#define OK_RULE "{\"path\":\"acme\",\"capabilities\":[\"read\"]}"

static void test_json_parse(void **state)
{
	_cleanup_json_ json_t *obj = NULL, *out = NULL, *again = NULL, *errors = NULL;
	_cleanup_(rbac_role_clear) struct rbac_role role = { 0 }, role2 = { 0 };
	const struct rbac_role *roles[] = { &role };
	(void)state;

	obj = load("{\"rules\":["
		   "{\"path\":\"acme/rmm/*\",\"capabilities\":[\"list\",\"read\"]},"
		   "{\"capabilities\":" ALL_CAPS ",\"path\":\"*/slack\"}]}");
	assert_int_equal(rbac_role_from_json("rmm-read", obj, &role, &errors), 0);
	assert_null(errors);
	assert_string_equal(role.name, "rmm-read");
	assert_false(role.builtin);
	assert_int_equal(role.n_rules, 2);
	assert_string_equal(role.rules[0].pattern, "acme/rmm/*");
	assert_int_equal(role.rules[0].caps, RBAC_READ | RBAC_LIST);
	assert_string_equal(role.rules[1].pattern, "*/slack");
	assert_int_equal(role.rules[1].caps, RBAC_CAPS_ALL);
	assert_true(rbac_allowed(roles, 1, "acme/rmm/tactical", RBAC_READ));
	assert_false(rbac_allowed(roles, 1, "acme/psa/autotask", RBAC_READ));

	/* To JSON: canonical capability order. */
	out = rbac_role_to_json(&role);
	assert_non_null(out);
	assert_json_eq(out, "{\"name\":\"rmm-read\",\"builtin\":false,\"rules\":["
			    "{\"path\":\"acme/rmm/*\",\"capabilities\":[\"read\",\"list\"]},"
			    "{\"path\":\"*/slack\",\"capabilities\":" ALL_CAPS "}]}");

	/* Round trip: the rules of the output parse back to the same role. */
	again = json_pack("{s:O}", "rules", json_object_get(out, "rules"));
	assert_non_null(again);
	assert_int_equal(rbac_role_from_json("rmm-read", again, &role2, NULL), 0);
	assert_string_equal(role2.name, role.name);
	assert_int_equal(role2.n_rules, role.n_rules);
	for (size_t i = 0; i < role.n_rules; i++) {
		assert_string_equal(role2.rules[i].pattern, role.rules[i].pattern);
		assert_int_equal(role2.rules[i].caps, role.rules[i].caps);
	}
	/* ... but not the output itself: "name" and "builtin" are not body fields. */
	rbac_role_clear(&role2);
	assert_int_equal(rbac_role_from_json("rmm-read", out, &role2, NULL), -EINVAL);

	/* Built-in roles serialise too. */
	json_decref(out);
	out = rbac_role_to_json(rbac_builtin_find("auditor"));
	assert_json_eq(out, "{\"name\":\"auditor\",\"builtin\":true,\"rules\":"
			    "[{\"path\":\"*\",\"capabilities\":[\"list\",\"audit\"]}]}");
	assert_null(rbac_role_to_json(NULL));
}

static void test_json_limits(void **state)
{
	_cleanup_json_ json_t *rules = json_array(), *obj = NULL, *errors = NULL;
	_cleanup_(rbac_role_clear) struct rbac_role role = { 0 };
	char name64[PATH_SEGMENT_MAX + 1], pattern[1024];
	(void)state;

	memset(name64, 'r', PATH_SEGMENT_MAX);
	name64[PATH_SEGMENT_MAX] = '\0';
	assert_non_null(rules);
	for (unsigned i = 0; i < RBAC_RULES_MAX; i++) {
		snprintf(pattern, sizeof(pattern), "t%u/*/x/*/x/*/x/*", i);
		assert_int_equal(json_array_append_new(rules, json_pack("{s:s, s:[s]}", "path", pattern,
									"capabilities", "read")), 0);
	}
	obj = json_pack("{s:O}", "rules", rules);
	assert_int_equal(rbac_role_from_json(name64, obj, &role, &errors), 0);
	assert_null(errors);
	assert_string_equal(role.name, name64);
	assert_int_equal(role.n_rules, RBAC_RULES_MAX);
	assert_string_equal(role.rules[63].pattern, "t63/*/x/*/x/*/x/*");

	/* One more is too many. */
	assert_int_equal(json_array_append_new(rules, json_pack("{s:s, s:[s]}", "path", "acme",
								"capabilities", "read")), 0);
	json_decref(obj);
	obj = json_pack("{s:O}", "rules", rules);
	rbac_role_clear(&role);
	assert_int_equal(rbac_role_from_json("r", obj, &role, &errors), -EINVAL);
	assert_json_eq(errors, "{\"rules\":\"must have at most 64 rules\"}");
}

static void test_json_errors(void **state)
{
	_cleanup_json_ json_t *nul_key = NULL;
	char body[4096], name65[PATH_SEGMENT_MAX + 2];
	(void)state;

	memset(name65, 'r', PATH_SEGMENT_MAX + 1);
	name65[PATH_SEGMENT_MAX + 1] = '\0';

	/* The role name. */
	expect_errors(NULL, "{\"rules\":[" OK_RULE "]}", "{\"name\":\"" R_NAME "\"}");
	expect_errors("", "{\"rules\":[" OK_RULE "]}", "{\"name\":\"" R_NAME "\"}");
	expect_errors(".hidden", "{\"rules\":[" OK_RULE "]}", "{\"name\":\"" R_NAME "\"}");
	expect_errors("a/b", "{\"rules\":[" OK_RULE "]}", "{\"name\":\"" R_NAME "\"}");
	expect_errors(name65, "{\"rules\":[" OK_RULE "]}", "{\"name\":\"" R_NAME "\"}");
	expect_errors("admin", "{\"rules\":[" OK_RULE "]}",
		      "{\"name\":\"is a built-in role and cannot be defined\"}");
	expect_errors("operator", "{\"rules\":[" OK_RULE "]}",
		      "{\"name\":\"is a built-in role and cannot be defined\"}");
	expect_errors("auditor", "[]", "{\"name\":\"is a built-in role and cannot be defined\","
				      "\"body\":\"must be a JSON object\"}");

	/* The body. */
	expect_errors("r", "[]", "{\"body\":\"must be a JSON object\"}");
	expect_errors("r", "\"rules\"", "{\"body\":\"must be a JSON object\"}");
	expect_errors("r", "{\"rules\":[" OK_RULE "],\"extra\":1}", "{\"extra\":\"unknown field\"}");
	expect_errors("r", "{\"rules\":[" OK_RULE "],\"builtin\":true}", "{\"builtin\":\"unknown field\"}");
	expect_errors("r", "{\"rules\":[" OK_RULE "],\"bad key\":1}", "{\"body\":\"" R_FIELD_NAME "\"}");
	/* A key with a NUL byte (jansson's parser refuses those, but an object
	 * can still hold one): it must not pass for "rules", nor be echoed. */
	nul_key = load("{\"rules\":[" OK_RULE "]}");
	assert_int_equal(json_object_setn_new(nul_key, "rules\0x", 7, json_integer(1)), 0);
	expect_errors_obj("r", nul_key, "{\"body\":\"" R_FIELD_NAME "\"}");
	json_decref(nul_key);
	nul_key = load("{\"rules\":[]}");
	assert_int_equal(json_object_del(nul_key, "rules"), 0);
	assert_int_equal(json_object_setn_new(nul_key, "rules\0", 6, load("[" OK_RULE "]")), 0);
	expect_errors_obj("r", nul_key, "{\"body\":\"" R_FIELD_NAME "\",\"rules\":\"required\"}");
	expect_errors("r", "{}", "{\"rules\":\"required\"}");
	expect_errors("r", "{\"rules\":{}}", "{\"rules\":\"must be an array of rules\"}");
	expect_errors("r", "{\"rules\":\"acme\"}", "{\"rules\":\"must be an array of rules\"}");
	expect_errors("r", "{\"rules\":null}", "{\"rules\":\"must be an array of rules\"}");
	expect_errors("r", "{\"rules\":[]}", "{\"rules\":\"must have at least one rule\"}");

	/* A rule. */
	expect_errors("r", "{\"rules\":[" OK_RULE ",7]}",
		      "{\"rules[1]\":\"must be an object with path and capabilities\"}");
	expect_errors("r", "{\"rules\":[[]]}", "{\"rules[0]\":\"must be an object with path and capabilities\"}");
	expect_errors("r", "{\"rules\":[{\"path\":\"acme\",\"capabilities\":[\"read\"],\"note\":\"x\"}]}",
		      "{\"rules[0].note\":\"unknown field\"}");
	expect_errors("r", "{\"rules\":[{\"path\":\"acme\",\"capabilities\":[\"read\"],\"n/a\":\"x\"}]}",
		      "{\"rules[0]\":\"" R_FIELD_NAME "\"}");
	expect_errors("r", "{\"rules\":[{}]}",
		      "{\"rules[0].path\":\"required\",\"rules[0].capabilities\":\"required\"}");

	/* The path. */
	expect_errors("r", "{\"rules\":[{\"path\":7,\"capabilities\":[\"read\"]}]}",
		      "{\"rules[0].path\":\"must be a string\"}");
	expect_errors("r", "{\"rules\":[{\"path\":null,\"capabilities\":[\"read\"]}]}",
		      "{\"rules[0].path\":\"must be a string\"}");
	expect_errors("r", "{\"rules\":[{\"path\":\"acme\\u0000/x\",\"capabilities\":[\"read\"]}]}",
		      "{\"rules[0].path\":\"must not contain NUL bytes\"}");
	expect_errors("r", "{\"rules\":[{\"path\":\"\",\"capabilities\":[\"read\"]}]}",
		      "{\"rules[0].path\":\"" R_EMPTY "\"}");
	expect_errors("r", "{\"rules\":[{\"path\":\"acme/**\",\"capabilities\":[\"read\"]}]}",
		      "{\"rules[0].path\":\"" R_STAR "\"}");
	expect_errors("r", "{\"rules\":[{\"path\":\"a/../b\",\"capabilities\":[\"read\"]}]}",
		      "{\"rules[0].path\":\"" R_DOTS "\"}");
	expect_errors("r", "{\"rules\":[{\"path\":\"/acme\",\"capabilities\":[\"read\"]}]}",
		      "{\"rules[0].path\":\"" R_SLASH "\"}");
	expect_errors("r", "{\"rules\":[{\"path\":\"a/b/c/d/e/f/g/h/i\",\"capabilities\":[\"read\"]}]}",
		      "{\"rules[0].path\":\"" R_MANY "\"}");

	/* The capabilities. */
	expect_errors("r", "{\"rules\":[{\"path\":\"acme\",\"capabilities\":\"read\"}]}",
		      "{\"rules[0].capabilities\":\"must be an array of capability names\"}");
	expect_errors("r", "{\"rules\":[{\"path\":\"acme\",\"capabilities\":[]}]}",
		      "{\"rules[0].capabilities\":\"must name at least one capability\"}");
	expect_errors("r", "{\"rules\":[{\"path\":\"acme\",\"capabilities\":" ALL_CAPS "},"
		      "{\"path\":\"acme\",\"capabilities\":[\"read\",\"list\",\"write\",\"delete\","
		      "\"rotate\",\"audit\",\"admin\",\"read\"]}]}",
		      "{\"rules[1].capabilities\":\"must name at most 7 capabilities\"}");
	expect_errors("r", "{\"rules\":[{\"path\":\"acme\",\"capabilities\":[\"read\",1,null]}]}",
		      "{\"rules[0].capabilities[1]\":\"must be a string\","
		      "\"rules[0].capabilities[2]\":\"must be a string\"}");
	expect_errors("r", "{\"rules\":[{\"path\":\"acme\",\"capabilities\":[\"READ\",\"sudo\",\"\"]}]}",
		      "{\"rules[0].capabilities[0]\":\"" R_UNKNOWN_CAP "\","
		      "\"rules[0].capabilities[1]\":\"" R_UNKNOWN_CAP "\","
		      "\"rules[0].capabilities[2]\":\"" R_UNKNOWN_CAP "\"}");
	expect_errors("r", "{\"rules\":[{\"path\":\"acme\",\"capabilities\":[\"read\\u0000admin\"]}]}",
		      "{\"rules[0].capabilities[0]\":\"" R_UNKNOWN_CAP "\"}");
	expect_errors("r", "{\"rules\":[{\"path\":\"acme\",\"capabilities\":[\"read\",\"list\",\"read\"]}]}",
		      "{\"rules[0].capabilities[2]\":\"duplicate capability\"}");

	/* Every problem is named, across rules and fields. */
	snprintf(body, sizeof(body), "{\"rules\":["
		 "{\"path\":\"acme/rmm/*\",\"capabilities\":[\"read\",\"fly\"]},"
		 OK_RULE ","
		 "{\"path\":\"acme/x*\",\"capabilities\":[\"list\"],\"extra\":true}],"
		 "\"comment\":\"x\"}");
	expect_errors("-bad", body, "{\"name\":\"" R_NAME "\","
				    "\"comment\":\"unknown field\","
				    "\"rules[0].capabilities[1]\":\"" R_UNKNOWN_CAP "\","
				    "\"rules[2].extra\":\"unknown field\","
				    "\"rules[2].path\":\"" R_STAR "\"}");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cap_names),
		cmocka_unit_test(test_pattern_valid),
		cmocka_unit_test(test_pattern_invalid),
		cmocka_unit_test(test_match_prefix),
		cmocka_unit_test(test_match_star),
		cmocka_unit_test(test_match_invalid),
		cmocka_unit_test(test_may_cover),
		cmocka_unit_test(test_allowed_default_deny),
		cmocka_unit_test(test_allowed_rmm_read),
		cmocka_unit_test(test_allowed_caps_per_rule),
		cmocka_unit_test(test_allowed_union),
		cmocka_unit_test(test_allowed_no_path),
		cmocka_unit_test(test_builtins),
		cmocka_unit_test(test_json_parse),
		cmocka_unit_test(test_json_limits),
		cmocka_unit_test(test_json_errors),
	};

	json_secure_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
