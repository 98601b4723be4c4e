/* vaultd/access/rbac.c: see rbac.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "vaultd/access/rbac.h"

static const char *const cap_names[RBAC_CAP_COUNT] = {
	"read", "list", "write", "delete", "rotate", "audit", "admin",
};

const char *rbac_cap_name(enum rbac_cap c)
{
	for (unsigned i = 0; i < RBAC_CAP_COUNT; i++)
		if ((unsigned)c == 1u << i)
			return cap_names[i];
	return NULL;
}

int rbac_cap_from_name(const char *s, enum rbac_cap *ret)
{
	if (!s)
		return -EINVAL;
	for (unsigned i = 0; i < RBAC_CAP_COUNT; i++)
		if (streq(s, cap_names[i])) {
			*ret = (enum rbac_cap)(1u << i);
			return 0;
		}
	return -EINVAL;
}

void rbac_role_clear(struct rbac_role *r)
{
	if (!r)
		return;
	/* A built-in role points into static const data: it owns nothing, and
	 * freeing its pointers (say, through a copy of the struct) would crash. */
	if (!r->builtin) {
		for (size_t i = 0; r->rules && i < r->n_rules; i++)
			free(r->rules[i].pattern);
		free(r->rules);
	}
	*r = (struct rbac_role){ 0 };
}

/* ---- patterns ---- */

/* Explicit ranges, as in common/path.c: independent of the locale, and bytes
 * >= 0x80 never pass. */
static bool char_segment(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

const char *rbac_pattern_check(const char *pattern)
{
	size_t len, i = 0;
	unsigned n = 0;

	if (!pattern || pattern[0] == '\0')
		return "pattern is empty";
	len = strnlen(pattern, RBAC_PATTERN_MAX + 1);   /* bounded scan */
	if (len > RBAC_PATTERN_MAX)
		return "pattern is longer than 520 characters";
	if (pattern[0] == '/' || pattern[len - 1] == '/')
		return "leading or trailing '/'";

	while (i <= len) {
		size_t start = i, seg;

		while (i < len && pattern[i] != '/')
			i++;
		seg = i - start;
		i++;                    /* past the '/' or the NUL */

		if (++n > PATH_SEGMENTS_MAX)
			return "more than 8 segments";
		if (seg == 0)
			return "empty segment";
		if (seg > PATH_SEGMENT_MAX)
			return "segment longer than 64 characters";
		/* '*' is a whole segment or nothing: a glob inside a segment
		 * ("rmm*") or across segments ("**") would make rules far
		 * harder to read and to audit. */
		if (memchr(pattern + start, '*', seg)) {
			if (seg == 1)
				continue;
			return "'*' must be a whole segment, as in acme/*/slack";
		}
		for (size_t k = start; k < start + seg; k++)
			if (!char_segment(pattern[k]))
				return "a segment contains a character outside [A-Za-z0-9._-]";
		if (pattern[start] == '.' && (seg == 1 || (seg == 2 && pattern[start + 1] == '.')))
			return "'.' and '..' are not allowed as segments";
	}
	return NULL;
}

struct seg {
	const char *p;
	size_t len;
};

/* Next segment of a checked pattern or path; *s becomes NULL after the last.
 * False once there is none left. */
static bool seg_next(const char **s, struct seg *ret)
{
	const char *p = *s, *e;

	if (!p)
		return false;
	e = strchrnul(p, '/');
	ret->p = p;
	ret->len = (size_t)(e - p);
	*s = *e ? e + 1 : NULL;
	return true;
}

static bool seg_is_star(const struct seg *s)
{
	return s->len == 1 && s->p[0] == '*';
}

/* Both arguments already checked. Walks the two side by side: the pattern
 * running out first means the path is covered; the path running out first
 * means a match only if 'partial' (listing a prefix). */
static bool segments_agree(const char *pattern, const char *path, bool partial)
{
	struct seg ps, qs;

	for (;;) {
		if (!seg_next(&pattern, &ps))
			return true;
		if (!seg_next(&path, &qs))
			return partial;
		if (seg_is_star(&ps))
			continue;
		if (ps.len != qs.len || memcmp(ps.p, qs.p, ps.len) != 0)
			return false;
	}
}

/* 'path' already checked (or NULL: only "*" counts). Patterns are checked on
 * every use because a role may have been built by hand. */
static bool pattern_covers(const char *pattern, const char *path)
{
	if (rbac_pattern_check(pattern))
		return false;
	if (!path)
		return streq(pattern, "*");
	return segments_agree(pattern, path, false);
}

/* 'prefix' already checked, or "". */
static bool pattern_may_cover(const char *pattern, const char *prefix)
{
	if (rbac_pattern_check(pattern))
		return false;
	/* The root spans every tenant: only a pattern whose first segment is
	 * "*" says anything about every tenant. A valid pattern starting with
	 * '*' starts with the segment "*". */
	if (prefix[0] == '\0')
		return pattern[0] == '*';
	return segments_agree(pattern, prefix, true);
}

bool rbac_match(const char *pattern, const char *path)
{
	if (!path || path_check(path, 1))
		return false;
	return pattern_covers(pattern, path);
}

bool rbac_pattern_may_cover(const char *pattern, const char *prefix)
{
	if (!prefix || (prefix[0] != '\0' && path_check(prefix, 1)))
		return false;
	return pattern_may_cover(pattern, prefix);
}

/* ---- the decision ---- */

bool rbac_allowed(const struct rbac_role *const *roles, size_t n_roles, const char *path, unsigned want)
{
	if (!roles || want == 0 || (want & ~RBAC_CAPS_ALL) != 0)
		return false;
	if (path && path_check(path, 1))
		return false;

	for (size_t i = 0; i < n_roles; i++) {
		const struct rbac_role *role = roles[i];

		if (!role || !role->rules)
			continue;
		for (size_t j = 0; j < role->n_rules; j++) {
			const struct rbac_rule *rule = &role->rules[j];

			/* One rule must grant everything asked for. */
			if ((rule->caps & want) == want && pattern_covers(rule->pattern, path))
				return true;
		}
	}
	return false;
}

bool rbac_allowed_list(const struct rbac_role *const *roles, size_t n_roles, const char *prefix)
{
	if (!roles || !prefix || (prefix[0] != '\0' && path_check(prefix, 1)))
		return false;

	for (size_t i = 0; i < n_roles; i++) {
		const struct rbac_role *role = roles[i];

		if (!role || !role->rules)
			continue;
		for (size_t j = 0; j < role->n_rules; j++) {
			const struct rbac_rule *rule = &role->rules[j];

			if ((rule->caps & RBAC_LIST) && pattern_may_cover(rule->pattern, prefix))
				return true;
		}
	}
	return false;
}

/* ---- built-in roles ---- */

/* The casts drop const only to fit struct rbac_role; the data stays in
 * read-only memory, and rbac_role_clear() never frees a built-in role. */
static const struct rbac_rule admin_rules[] = {
	{ .pattern = "*", .caps = RBAC_CAPS_ALL },
};
static const struct rbac_rule operator_rules[] = {
	{ .pattern = "*", .caps = RBAC_READ | RBAC_LIST | RBAC_WRITE | RBAC_DELETE | RBAC_ROTATE },
};
static const struct rbac_rule auditor_rules[] = {
	{ .pattern = "*", .caps = RBAC_AUDIT | RBAC_LIST },
};

#define BUILTIN(n, r) \
	{ .name = n, .rules = (struct rbac_rule *)(r), .n_rules = ELEMENTSOF(r), .builtin = true }

static const struct rbac_role builtins[] = {
	BUILTIN("admin", admin_rules),
	BUILTIN("operator", operator_rules),
	BUILTIN("auditor", auditor_rules),
};

size_t rbac_builtin_count(void)
{
	return ELEMENTSOF(builtins);
}

const struct rbac_role *rbac_builtin_at(size_t i)
{
	return i < ELEMENTSOF(builtins) ? &builtins[i] : NULL;
}

const struct rbac_role *rbac_builtin_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < ELEMENTSOF(builtins); i++)
		if (streq(builtins[i].name, name))
			return &builtins[i];
	return NULL;
}

/* ---- JSON ---- */

#define ERR_KEY_MAX 128         /* "rules[63].capabilities[6]", "rules[63].<64 chars>" */

/* The first reason given for a key stands. */
static int add_error(json_t *errors, const char *key, const char *reason)
{
	if (json_object_get(errors, key))
		return 0;
	return json_object_set_new(errors, key, json_string(reason)) < 0 ? -ENOMEM : 0;
}

static _printf_(3, 4) int add_errorf(json_t *errors, const char *reason, const char *fmt, ...)
{
	char key[ERR_KEY_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(key, sizeof(key), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(key))
		return -EINVAL;         /* cannot happen: keys are bounded above */
	return add_error(errors, key, reason);
}

/* Field names are echoed in error keys only when they look like field names:
 * a JSON key may be huge or hold any byte, NUL included. */
static bool key_echoable(const char *s, size_t n)
{
	if (n == 0 || n > PATH_SEGMENT_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!char_segment(s[i]))
			return false;
	return true;
}

static bool key_is(const char *key, size_t len, const char *want)
{
	return len == strlen(want) && memcmp(key, want, len) == 0;
}

#define R_FIELD_NAME "field names must be 1 to 64 characters of [A-Za-z0-9._-]"
#define R_UNKNOWN_CAP "unknown capability; expected read, list, write, delete, rotate, audit or admin"

static int parse_caps(json_t *errors, size_t i, const json_t *caps, unsigned *ret)
{
	unsigned set = 0;
	size_t n;
	int r;

	if (!caps)
		return add_errorf(errors, "required", "rules[%zu].capabilities", i);
	if (!json_is_array(caps))
		return add_errorf(errors, "must be an array of capability names", "rules[%zu].capabilities", i);
	n = json_array_size(caps);
	if (n == 0)
		return add_errorf(errors, "must name at least one capability", "rules[%zu].capabilities", i);
	/* Distinct names only, so more than seven is always wrong; this also
	 * bounds the errors reported for one rule. */
	if (n > RBAC_CAP_COUNT)
		return add_errorf(errors, "must name at most 7 capabilities", "rules[%zu].capabilities", i);

	for (size_t j = 0; j < n; j++) {
		const json_t *v = json_array_get(caps, j);
		enum rbac_cap c;

		if (!json_is_string(v))
			r = add_errorf(errors, "must be a string", "rules[%zu].capabilities[%zu]", i, j);
		else if (json_string_length(v) != strlen(json_string_value(v)) ||
			 rbac_cap_from_name(json_string_value(v), &c) < 0)
			r = add_errorf(errors, R_UNKNOWN_CAP, "rules[%zu].capabilities[%zu]", i, j);
		else if (set & c)
			r = add_errorf(errors, "duplicate capability", "rules[%zu].capabilities[%zu]", i, j);
		else {
			set |= c;
			r = 0;
		}
		if (r < 0)
			return r;
	}
	*ret = set;
	return 0;
}

/* Fills *rule (pattern and caps) if the rule is valid; otherwise adds errors
 * and leaves it as it was. 0 or -ENOMEM. */
static int parse_rule(json_t *errors, size_t i, const json_t *v, struct rbac_rule *rule)
{
	json_t *obj = (json_t *)v;      /* jansson's iterators take non-const; only read */
	const json_t *path, *caps;
	const char *reason;
	unsigned set = 0;
	size_t before = json_object_size(errors);
	int r;

	if (!json_is_object(v))
		return add_errorf(errors, "must be an object with path and capabilities", "rules[%zu]", i);

	for (void *it = json_object_iter(obj); it; it = json_object_iter_next(obj, it)) {
		const char *key = json_object_iter_key(it);
		size_t len = json_object_iter_key_len(it);

		if (key_is(key, len, "path") || key_is(key, len, "capabilities"))
			continue;
		if (key_echoable(key, len))
			r = add_errorf(errors, "unknown field", "rules[%zu].%.*s", i, (int)len, key);
		else
			r = add_errorf(errors, R_FIELD_NAME, "rules[%zu]", i);
		if (r < 0)
			return r;
	}

	path = json_object_get(v, "path");
	if (!path)
		reason = "required";
	else if (!json_is_string(path))
		reason = "must be a string";
	else if (json_string_length(path) != strlen(json_string_value(path)))
		reason = "must not contain NUL bytes";
	else
		reason = rbac_pattern_check(json_string_value(path));
	if (reason && (r = add_errorf(errors, reason, "rules[%zu].path", i)) < 0)
		return r;

	caps = json_object_get(v, "capabilities");
	if ((r = parse_caps(errors, i, caps, &set)) < 0)
		return r;

	if (json_object_size(errors) != before)
		return 0;               /* this rule is bad; the role will be refused */
	rule->pattern = strdup(json_string_value(path));
	if (!rule->pattern)
		return -ENOMEM;
	rule->caps = set;
	return 0;
}

int rbac_role_from_json(const char *name, const json_t *obj, struct rbac_role *ret, json_t **ret_errors)
{
	_cleanup_(rbac_role_clear) struct rbac_role role = { 0 };
	_cleanup_json_ json_t *errors = NULL;
	json_t *o = (json_t *)obj;      /* only read */
	const json_t *rules;
	size_t n;
	int r;

	errors = json_object();
	if (!errors)
		return -ENOMEM;

	if (!name_valid(name))
		r = add_error(errors, "name",
			      "must be 1 to 64 characters of [A-Za-z0-9._-], starting with a letter or digit");
	else if (rbac_builtin_find(name))
		r = add_error(errors, "name", "is a built-in role and cannot be defined");
	else
		r = 0;
	if (r < 0)
		return r;

	if (!json_is_object(obj)) {
		r = add_error(errors, "body", "must be a JSON object");
		goto out;
	}
	for (void *it = json_object_iter(o); it; it = json_object_iter_next(o, it)) {
		const char *key = json_object_iter_key(it);
		size_t len = json_object_iter_key_len(it);

		if (key_is(key, len, "rules"))
			continue;
		if (key_echoable(key, len))
			r = add_errorf(errors, "unknown field", "%.*s", (int)len, key);
		else
			r = add_error(errors, "body", R_FIELD_NAME);
		if (r < 0)
			return r;
	}

	rules = json_object_get(obj, "rules");
	n = json_array_size(rules);     /* 0 if not an array */
	if (!rules)
		r = add_error(errors, "rules", "required");
	else if (!json_is_array(rules))
		r = add_error(errors, "rules", "must be an array of rules");
	else if (n == 0)
		r = add_error(errors, "rules", "must have at least one rule");
	else if (n > RBAC_RULES_MAX)
		r = add_error(errors, "rules", "must have at most 64 rules");
	else {
		role.rules = calloc(n, sizeof(*role.rules));
		if (!role.rules)
			return -ENOMEM;
		role.n_rules = n;       /* patterns start NULL: clearing is safe throughout */
		r = 0;
		for (size_t i = 0; i < n && r == 0; i++)
			r = parse_rule(errors, i, json_array_get(rules, i), &role.rules[i]);
	}

out:
	if (r < 0)
		return r;
	if (json_object_size(errors) > 0) {
		if (ret_errors)
			*ret_errors = TAKE_PTR(errors);
		return -EINVAL;
	}

	/* name_valid() bounded the length. */
	memcpy(role.name, name, strlen(name) + 1);
	role.builtin = false;
	*ret = role;
	role = (struct rbac_role){ 0 };         /* ownership moved to *ret */
	return 0;
}

json_t *rbac_role_to_json(const struct rbac_role *r)
{
	_cleanup_json_ json_t *o = NULL, *rules = NULL;

	if (!r)
		return NULL;
	rules = json_array();
	if (!rules)
		return NULL;
	for (size_t i = 0; i < r->n_rules; i++) {
		const struct rbac_rule *rule = &r->rules[i];
		_cleanup_json_ json_t *jr = NULL;
		json_t *caps;

		/* The _new setters take the reference even when they fail, and
		 * fail on a NULL value. */
		jr = json_object();
		if (!jr || !rule->pattern || json_object_set_new(jr, "path", json_string(rule->pattern)) < 0 ||
		    json_object_set_new(jr, "capabilities", json_array()) < 0)
			return NULL;
		caps = json_object_get(jr, "capabilities");
		for (unsigned b = 0; b < RBAC_CAP_COUNT; b++)
			if ((rule->caps & (1u << b)) && json_array_append_new(caps, json_string(cap_names[b])) < 0)
				return NULL;
		if (json_array_append_new(rules, TAKE_PTR(jr)) < 0)
			return NULL;
	}

	o = json_object();
	if (!o || json_object_set_new(o, "name", json_string(r->name)) < 0 ||
	    json_object_set_new(o, "builtin", json_boolean(r->builtin)) < 0 ||
	    json_object_set_new(o, "rules", TAKE_PTR(rules)) < 0)
		return NULL;
	return TAKE_PTR(o);
}
