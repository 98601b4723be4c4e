/* vaultd/access/rbac.h: roles, rules and the access decision.
 * Pure logic: no storage, no I/O, no logging. The daemon loads roles (from
 * SQLite, or the built-ins below), then asks rbac_allowed() or
 * rbac_allowed_list() before it looks anything up, so that a forbidden path
 * answers 403 whether or not it exists.
 *
 * A role is a list of rules; a rule is a path pattern and a set of
 * capabilities. Access is default deny: a request is allowed only if one
 * rule, by itself, has a pattern covering the path and every capability
 * asked for. Capabilities are never combined across rules or roles, and none
 * implies another (RBAC_ADMIN does not imply RBAC_READ; the built-in "admin"
 * role simply lists every capability).
 *
 * Patterns. Syntax (rbac_pattern_check()): 1 to 8 segments joined by single
 * '/', each either a path segment as in common/path.h ([A-Za-z0-9._-], 1 to
 * 64 characters, not "." or "..") or the wildcard "*", which must be the
 * whole segment ("acme/x*" and "acme/\**" are invalid). No leading, trailing
 * or doubled '/'. Matching is on whole segments, byte for byte, case
 * sensitive.
 *
 * rbac_match(pattern, path): the path has at least as many segments as the
 * pattern and each pattern segment is "*" or equal to the path's segment at
 * the same position. So every pattern is a prefix on segment boundaries, and
 * "*" stands for exactly one segment, never for a '/':
 *   "acme/rmm"    matches "acme/rmm", "acme/rmm/x/y";
 *                 not "acme/rmm-old", "acme/rmmx", "acme/rmm.x", "Acme/rmm", "acme"
 *   "acme/rmm/\*" matches "acme/rmm/tactical", "acme/rmm/tactical/api";
 *                 not "acme/rmm" (one segment short), "acme/psa/x"
 *   "*\/slack"    matches "acme/slack", "globex/slack/bot";
 *                 not "acme/chat/slack", "slack"
 *   "*"           one wildcard segment: matches every valid path.
 * (The '\' in "acme/rmm/\*" and "*\/slack" only keeps this comment from
 * ending; patterns never contain '\'.)
 * The path must pass path_check(path, 1); an invalid path or pattern never
 * matches (fail closed).
 *
 * rbac_pattern_may_cover(pattern, prefix), for listing: true if the prefix or
 * some path below it could match, i.e. for each of the first
 * min(segments(prefix), segments(pattern)) positions the pattern segment is
 * "*" or equal to the prefix's. Listing "acme" with rule "acme/rmm/\*" is
 * therefore allowed, and the daemon then filters every listed path with
 * rbac_match(). A prefix longer than the pattern is covered when the pattern
 * matches it ("acme" covers prefix "acme/rmm"). The empty prefix "" (the
 * root, across every tenant) is covered only by patterns whose first segment
 * is "*" ("*", "*\/slack"): a tenant-scoped role cannot enumerate from the
 * root, not even filtered. A NULL or otherwise invalid prefix is never
 * covered.
 *
 * Strings are NUL-terminated: callers holding length-delimited input must
 * reject embedded NUL bytes first (rbac_role_from_json() does so itself).
 *
 * Thread safety: every function is pure and reentrant. The built-in roles are
 * static const data shared by all threads. JSON objects passed in are only
 * read.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include "common/json.h"                /* jansson, _cleanup_json_ */
#include "common/path.h"
#include "common/util.h"

/* Capabilities, as flags. */
enum rbac_cap {
	RBAC_READ = 1u << 0,
	RBAC_LIST = 1u << 1,
	RBAC_WRITE = 1u << 2,
	RBAC_DELETE = 1u << 3,
	RBAC_ROTATE = 1u << 4,
	RBAC_AUDIT = 1u << 5,
	RBAC_ADMIN = 1u << 6,
};
#define RBAC_CAP_COUNT 7
#define RBAC_CAPS_ALL ((1u << RBAC_CAP_COUNT) - 1u)

#define RBAC_RULES_MAX 64               /* rules in one role */
#define RBAC_PATTERN_MAX PATH_MAX_LEN   /* bound on strlen(pattern) */

struct rbac_rule {
	char *pattern;                  /* owned (malloc) unless the role is built in */
	unsigned caps;                  /* enum rbac_cap flags, non-zero, within RBAC_CAPS_ALL */
};

struct rbac_role {
	char name[PATH_SEGMENT_MAX + 1]; /* name_valid() */
	struct rbac_rule *rules;        /* owned array of n_rules unless built in */
	size_t n_rules;
	bool builtin;
};

/* "read", "list", "write", "delete", "rotate", "audit", "admin"; NULL unless
 * c is exactly one known flag. */
const char *rbac_cap_name(enum rbac_cap c);
/* 0 and *ret = the flag named s (exact, lower case); -EINVAL for NULL or an
 * unknown name (*ret untouched). */
_warn_unused_ int rbac_cap_from_name(const char *s, enum rbac_cap *ret);

/* Frees the rules (patterns and array) and zeroes *r. NULL-safe. A role with
 * 'builtin' set owns nothing (its rules are static), so it is only zeroed:
 * clearing a copy of a built-in role is harmless. Roles built by hand must
 * use malloc'd storage and builtin = false. */
void rbac_role_clear(struct rbac_role *r);

/* NULL if 'pattern' is valid (syntax above), else a static one-sentence
 * reason fit for an API error message; it never quotes the pattern. NULL
 * pattern: "pattern is empty". */
_warn_unused_ const char *rbac_pattern_check(const char *pattern);

/* Does 'pattern' cover 'path'? See the top of this file. False if either is
 * NULL or invalid. */
_warn_unused_ bool rbac_match(const char *pattern, const char *path);

/* Could 'pattern' cover 'prefix' or some path below it? See the top of this
 * file. False if either is NULL or invalid; "" is the root. */
_warn_unused_ bool rbac_pattern_may_cover(const char *pattern, const char *prefix);

/* Parses a role body: {"rules": [{"path": "acme/rmm/\*", "capabilities":
 * ["read", "list"]}, ...]} with 1 to RBAC_RULES_MAX rules, each with exactly
 * the fields "path" (a valid pattern) and "capabilities" (1 to 7 distinct
 * known names). No other field is accepted at either level; in particular
 * the "name" and "builtin" of rbac_role_to_json() are not (the name comes
 * from the URL, as 'name'). 'name' must be name_valid() and must not be a
 * built-in role's name (a caller wanting another status for that checks
 * rbac_builtin_find() first).
 *
 * 0 and *ret = a new role (builtin false) the caller clears with
 * rbac_role_clear(). -EINVAL if invalid: then, if ret_errors is not NULL,
 * *ret_errors = a new object naming every problem found, e.g.
 *   {"rules[2].path": "empty segment", "rules[0].capabilities[1]": "unknown capability"}
 * Keys: "name"; "body" (not an object, or a field name that is not
 * [A-Za-z0-9._-]{1,64}); "<field>" (unknown top-level field); "rules";
 * "rules[i]" (not an object, or a bad field name); "rules[i].<field>"
 * (unknown field); "rules[i].path"; "rules[i].capabilities";
 * "rules[i].capabilities[j]". Indexes are 0-based. -ENOMEM on allocation
 * failure. *ret and *ret_errors are written only as described. */
_warn_unused_ int rbac_role_from_json(const char *name, const json_t *obj, struct rbac_role *ret,
				      json_t **ret_errors);

/* New object {"name": "...", "builtin": false, "rules": [{"path": "...",
 * "capabilities": ["read", ...]}]}, capabilities in flag order. NULL if r is
 * NULL or on allocation failure. Caller owns it. */
json_t *rbac_role_to_json(const struct rbac_role *r);

/* Built-in roles, static const, in this order:
 *   "admin"     rule "*" with every capability;
 *   "operator"  rule "*" with read, list, write, delete, rotate;
 *   "auditor"   rule "*" with audit, list.
 * rbac_builtin_at() is NULL if i is out of range; rbac_builtin_find() is NULL
 * for an unknown name or NULL. */
size_t rbac_builtin_count(void);
const struct rbac_role *rbac_builtin_at(size_t i);
const struct rbac_role *rbac_builtin_find(const char *name);

/* The access decision. True iff some rule of some role has every capability
 * in 'want' and a pattern that matches 'path'. 'path' NULL is for
 * capabilities that are not about a path (audit, admin): then only rules
 * whose pattern is exactly "*" count. False (deny) when: no roles, no rules,
 * want == 0, want has bits outside RBAC_CAPS_ALL, roles is NULL, or path is
 * non-NULL but invalid. NULL entries in roles are skipped. */
_warn_unused_ bool rbac_allowed(const struct rbac_role *const *roles, size_t n_roles, const char *path,
				unsigned want);

/* Listing: true iff some rule of some role has RBAC_LIST and a pattern that
 * rbac_pattern_may_cover() 'prefix'. The daemon must still filter each
 * listed path with rbac_match() against the rules having RBAC_LIST (or
 * rbac_allowed(..., path, RBAC_LIST)). */
_warn_unused_ bool rbac_allowed_list(const struct rbac_role *const *roles, size_t n_roles,
				     const char *prefix);
