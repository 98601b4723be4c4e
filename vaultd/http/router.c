/* vaultd/http/router.c: see api.h. The route table, the one access
 * decision, the audit rule ("every request leaves a record"), the shared
 * reply and input helpers, and (until they move into their own files) the
 * secrets, lock, metrics and audit handlers. */
#include <errno.h>
#include <unistd.h>
#include <sodium.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "common/duration.h"
#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/secret.h"
#include "common/number.h"
#include "common/path.h"
#include "vaultd/http/api.h"
#include "vaultd/core/vault.h"
#include "vaultd/http/api_internal.h"
#include "vaultd/audit/audit.h"
#include "vaultd/audit/recorder.h"
#include "vaultd/rotate/rotate.h"
#include "vaultd/secrets/secrets.h"
#include "vaultd/secrets/types.h"
#include "version.h"

#define SECRETS_PREFIX "/v1/secrets"

/* ---- strict input ---- */

static bool content_type_is_json(const char *ct)
{
	size_t n = strlen("application/json");

	if (!ct || strncasecmp(ct, "application/json", n) != 0)
		return false;
	return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

/* Parses the body as a JSON object with only the allowed keys. On failure
 * writes the reply and returns its status (> 0); 0 on success. */
int parse_body(const struct server_request *req, const char *const *allowed, json_t **ret_obj,
		      json_t **ret_body)
{
	json_error_t jerr;
	const char *key;
	json_t *obj, *v;

	if (!req->body || req->body->len == 0)
		return reply_error(ret_body, 400, "bad_request", "a JSON object body is required");
	if (!content_type_is_json(req->content_type))
		return reply_error(ret_body, 415, "unsupported_media_type",
				   "the body must be sent as Content-Type: application/json");
	obj = json_loadb((const char *)req->body->p, req->body->len, JSON_REJECT_DUPLICATES, &jerr);
	if (!obj)
		/* jerr.text describes the syntax, it does not quote the input. */
		return reply_error(ret_body, 400, "bad_json", "malformed JSON at line %d column %d: %s",
				   jerr.line, jerr.column, jerr.text);
	if (!json_is_object(obj)) {
		json_decref(obj);
		return reply_error(ret_body, 400, "bad_request", "the body must be a JSON object");
	}
	json_object_foreach(obj, key, v) {
		bool ok = false;
		for (size_t i = 0; allowed[i]; i++)
			if (streq(key, allowed[i]))
				ok = true;
		if (!ok) {
			char name[80];
			snprintf(name, sizeof(name), "%.64s", key);
			json_decref(obj);
			return reply_error(ret_body, 400, "unknown_field", "unknown field '%s'", name);
		}
	}
	*ret_obj = obj;
	return 0;
}

struct query_check {
	const char *const *allowed;
	char bad[80];
};

static int query_check_one(const char *k, const char *v, void *u)
{
	struct query_check *q = u;

	for (size_t i = 0; q->allowed[i]; i++)
		if (streq(k, q->allowed[i]))
			return 0;
	snprintf(q->bad, sizeof(q->bad), "%.64s", k);
	return -EINVAL;
}

/* 0, or writes a 400 reply and returns its status. */
int check_query(const struct server_request *req, const char *const *allowed, json_t **ret_body)
{
	struct query_check q = { .allowed = allowed };

	if (req->query_repeated)
		return reply_error(ret_body, 400, "bad_request", "a query parameter is repeated");
	if (server_request_query_foreach(req, query_check_one, &q) < 0)
		return reply_error(ret_body, 400, "bad_request", "unknown query parameter '%s'", q.bad);
	return 0;
}

/* Strict decimal in [min, max]. */
int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *ret)
{
	return number_parse_u32(s, min, max, ret) < 0 ? -EINVAL : 0;
}

bool flag_set(const struct server_request *req, const char *key)
{
	const char *v = server_request_query(req, key);

	return v && (streq(v, "1") || streq(v, "true"));
}

/* A JSON string into guarded memory. */
int json_to_secret(const json_t *v, struct secret **ret)
{
	size_t n = json_string_length(v);

	if (n == 0)
		return -EINVAL;
	return secret_from_bytes(json_string_value(v), n, ret);
}

/* ---- state ---- */

bool api_is_initialized(struct api *a)
{
	return vault_is_initialized(a->v);
}

int api_new(const struct api_config *cfg, struct vault *v, struct api **ret)
{
	struct api *a;

	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->cfg = *cfg;
	a->v = v;
	a->store = v->store;
	a->keyring = v->keyring;
	a->auditor = v->auditor;
	a->rot = v->rotator;
	*ret = a;
	return 0;
}

void api_free(struct api *a)
{
	free(a);
}

/* ---- handlers ---- */

static int h_health(struct api *a, struct call *c, json_t **ret_body)
{
	const struct server_request *req = c->req;
	static const char *const q[] = { NULL };
	int r;

	if ((r = check_query(req, q, ret_body)))
		return r;
	return reply(ret_body, 200,
		     json_pack("{s:b, s:b, s:s}", "initialized", api_is_initialized(a), "locked",
			       !keyring_is_unlocked(a->keyring), "version", VAULTD_VERSION));
}

static int h_lock(struct api *a, struct call *c, json_t **ret_body)
{
	const struct server_request *req = c->req;
	struct store_tx *tx = NULL;
	static const char *const q[] = { NULL };
	int r;

	if ((r = check_query(req, q, ret_body)))
		return r;
	/* Locking is the emergency brake: it happens whatever the audit log
	 * can take. Sessions end with the epoch, at once; their rows and the
	 * record follow, and if they cannot be written the client is told. */
	vault_lock(a->v);
	log_info("vault locked by '%s' (uid %u)", c->who.name, (unsigned)req->uid);
	r = store_write_begin(a->store, &tx);
	if (r >= 0)
		r = store_token_delete_all(tx);
	if (r >= 0)
		r = commit_audited(a, c, &tx);
	store_tx_end(tx);
	if (r < 0) {
		log_error_errno(r, "the vault is locked, but its audit record could not be written (request %s)",
				req->request_id);
		return reply_error(ret_body, 503, "audit_unavailable",
				   "the vault is locked, but the audit log cannot be written");
	}
	return reply(ret_body, 200, json_pack("{s:b}", "locked", 1));
}

static int count_active(const struct store_rotation *r, void *userdata)
{
	if (STORE_ROTATION_ACTIVE(r))
		(*(int64_t *)userdata)++;
	return 0;
}

/* Counters for monitoring; nothing secret, nothing per tenant. */
static int h_metrics(struct api *a, struct call *c, json_t **ret_body)
{
	static const char *const q[] = { NULL };
	struct store_tx *tx = NULL;
	int64_t active = 0, last;
	uint64_t failures, batches, batched;
	int r;

	if ((r = check_query(c->req, q, ret_body)))
		return r;
	r = store_read_begin(a->store, &tx);
	if (r >= 0)
		r = store_rotation_list(tx, 1000, count_active, &active);
	store_tx_end(tx);
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, c->req, r, "metrics");
	auditor_mirror_failures(a->auditor, &failures, &last);
	auditor_batch_stats(a->auditor, &batches, &batched);
	return reply(ret_body, 200,
		     json_pack("{s:I, s:o, s:I, s:I, s:I, s:b, s:I}", "audit_mirror_failures", (json_int_t)failures,
			       "audit_mirror_last_failure", last ? json_time(last) : json_null(),
			       "audit_batches", (json_int_t)batches, "audit_batched_records", (json_int_t)batched,
			       "rotation_jobs_active", (json_int_t)active, "locked", !keyring_is_unlocked(a->keyring),
			       "uptime_seconds", (json_int_t)(time(NULL) - a->v->started_at)));
}

static int h_types(struct api *a, struct call *c, json_t **ret_body)
{
	const struct server_request *req = c->req;
	static const char *const q[] = { NULL };
	int r;

	if ((r = check_query(req, q, ret_body)))
		return r;
	return reply(ret_body, 200, cred_types_to_json());
}

/* ---- routing and the access decision ---- */

enum {
	ROUTE_WHEN_UNINIT = 1u << 1,    /* answers before init */
	ROUTE_WHEN_LOCKED = 1u << 2,    /* answers while locked */
	ROUTE_PUBLIC = 1u << 3,         /* no principal needed (the handler checks credentials) */
	ROUTE_ANY_PRINCIPAL = 1u << 4,  /* any user or service, no capability */
	ROUTE_CLASSIFY = 1u << 5,       /* capability and path from the route's classify() */
	ROUTE_NAME_DETAIL = 1u << 6,    /* the record's detail names the user, role or service */
};

typedef int (*handler_fn)(struct api *a, struct call *c, json_t **ret_body);
typedef int (*classify_fn)(struct call *c, unsigned *ret_cap, json_t **ret_body);


/* One row per (method, path pattern). A pattern is literal segments and
 * captures: {name} (one segment, a valid name) and {id} (a decimal number),
 * both checked here before any handler runs, and {path*} (one or more
 * segments, the rest of the path but the literal segments after it), which
 * the route's classify function checks. 'mount' is
 * the literal prefix the handler's c->rest is relative to. A path that
 * matches a pattern of another method only answers 405 with the methods it
 * has; one that matches none, 404. */
static const struct route {
	const char *method;
	const char *pattern;
	const char *mount;              /* c->rest = path after this */
	unsigned flags;
	unsigned cap;                   /* asked on "*" (no path) unless ROUTE_CLASSIFY */
	handler_fn fn;
	const char *action;             /* audit action (classify may refine it) */
	classify_fn classify;           /* ROUTE_CLASSIFY: sets c->path (empty: no path), cap, action */
} routes[] = {
	{ "GET", "/v1/sys/health", "", ROUTE_WHEN_UNINIT | ROUTE_WHEN_LOCKED | ROUTE_PUBLIC, 0, h_health, NULL, NULL },
	{ "POST", "/v1/sys/init", "", ROUTE_WHEN_UNINIT | ROUTE_WHEN_LOCKED | ROUTE_PUBLIC, 0, h_init, "sys.init", NULL },
	{ "POST", "/v1/sys/unlock", "", ROUTE_WHEN_LOCKED | ROUTE_PUBLIC, 0, h_unlock, "sys.unlock", NULL },
	{ "POST", "/v1/sys/lock", "", 0, RBAC_ADMIN, h_lock, "sys.lock", NULL },
	{ "POST", "/v1/sys/backup", "", 0, RBAC_ADMIN, h_backup, "sys.backup", NULL },
	/* While locked too: "locked" is what monitoring most wants to see. */
	{ "GET", "/v1/sys/metrics", "", ROUTE_WHEN_LOCKED, RBAC_AUDIT, h_metrics, "sys.metrics", NULL },
	{ "POST", "/v1/auth/login", "", ROUTE_PUBLIC, 0, h_login, "auth.login", NULL },
	{ "POST", "/v1/auth/logout", "", ROUTE_ANY_PRINCIPAL, 0, h_logout, "auth.logout", NULL },
	{ "GET", "/v1/auth/self", "", ROUTE_ANY_PRINCIPAL, 0, h_self, "auth.self", NULL },
	{ "POST", "/v1/auth/passphrase", "", ROUTE_ANY_PRINCIPAL, 0, h_passphrase, "auth.passphrase", NULL },
	{ "GET", "/v1/types", "", ROUTE_ANY_PRINCIPAL, 0, h_types, "types.list", NULL },
	{ "GET", "/v1/audit/verify", "", 0, RBAC_AUDIT, h_audit_verify, "audit.verify", NULL },
	{ "GET", "/v1/audit", "", 0, RBAC_AUDIT, h_audit, "audit.read", NULL },
	{ "GET", "/v1/users", "/v1/users", 0, RBAC_ADMIN, h_users, "user.read", NULL },
	{ "GET", "/v1/users/{name}", "/v1/users", ROUTE_NAME_DETAIL, RBAC_ADMIN, h_users, "user.read", NULL },
	{ "PUT", "/v1/users/{name}", "/v1/users", ROUTE_NAME_DETAIL, RBAC_ADMIN, h_users, "user.write", NULL },
	{ "DELETE", "/v1/users/{name}", "/v1/users", ROUTE_NAME_DETAIL, RBAC_ADMIN, h_users, "user.delete", NULL },
	{ "POST", "/v1/users/{name}/reset-mfa", "/v1/users", ROUTE_NAME_DETAIL, RBAC_ADMIN, h_users, "user.reset_mfa",
	  NULL },
	{ "GET", "/v1/roles", "/v1/roles", 0, RBAC_ADMIN, h_roles, "role.read", NULL },
	{ "GET", "/v1/roles/{name}", "/v1/roles", ROUTE_NAME_DETAIL, RBAC_ADMIN, h_roles, "role.read", NULL },
	{ "PUT", "/v1/roles/{name}", "/v1/roles", ROUTE_NAME_DETAIL, RBAC_ADMIN, h_roles, "role.write", NULL },
	{ "DELETE", "/v1/roles/{name}", "/v1/roles", ROUTE_NAME_DETAIL, RBAC_ADMIN, h_roles, "role.delete", NULL },
	{ "GET", "/v1/services", "/v1/services", 0, RBAC_ADMIN, h_services, "service.read", NULL },
	{ "GET", "/v1/services/{name}", "/v1/services", ROUTE_NAME_DETAIL, RBAC_ADMIN, h_services, "service.read",
	  NULL },
	{ "PUT", "/v1/services/{name}", "/v1/services", ROUTE_NAME_DETAIL, RBAC_ADMIN, h_services, "service.write",
	  NULL },
	{ "DELETE", "/v1/services/{name}", "/v1/services", ROUTE_NAME_DETAIL, RBAC_ADMIN, h_services,
	  "service.delete", NULL },
	/* Status and jobs answer while locked too. */
	{ "GET", "/v1/rotate/status", "/v1/rotate", ROUTE_CLASSIFY | ROUTE_WHEN_LOCKED, 0, h_rotate, "rotate.status",
	  rotate_classify },
	{ "GET", "/v1/rotate/jobs/{id}", "/v1/rotate", ROUTE_CLASSIFY | ROUTE_WHEN_LOCKED, 0, h_rotate, "rotate.job",
	  rotate_classify },
	{ "POST", "/v1/rotate/secret", "/v1/rotate", ROUTE_CLASSIFY, 0, h_rotate, "rotate.secret", rotate_classify },
	{ "POST", "/v1/rotate/secret/{path*}", "/v1/rotate", ROUTE_CLASSIFY, 0, h_rotate, "rotate.secret",
	  rotate_classify },
	/* {path*}: classify answers 400 for more than the one segment a tenant is. */
	{ "POST", "/v1/rotate/kek/{path*}", "/v1/rotate", ROUTE_CLASSIFY, 0, h_rotate, "rotate.kek", rotate_classify },
	{ "POST", "/v1/rotate/root", "/v1/rotate", ROUTE_CLASSIFY, 0, h_rotate, "rotate.root", rotate_classify },
	{ "POST", "/v1/rotate/hsm", "/v1/rotate", ROUTE_CLASSIFY, 0, h_rotate, "rotate.hsm", rotate_classify },
	{ "POST", "/v1/rotate/hsm/retire", "/v1/rotate", ROUTE_CLASSIFY, 0, h_rotate, "rotate.hsm_retire",
	  rotate_classify },
	{ "POST", "/v1/rotate/all", "/v1/rotate", ROUTE_CLASSIFY, 0, h_rotate, "rotate.all", rotate_classify },
	{ "GET", "/v1/secrets", SECRETS_PREFIX, ROUTE_CLASSIFY, 0, h_secrets, NULL, secrets_classify },
	{ "GET", "/v1/secrets/{path*}", SECRETS_PREFIX, ROUTE_CLASSIFY, 0, h_secrets, NULL, secrets_classify },
	{ "PUT", "/v1/secrets/{path*}", SECRETS_PREFIX, ROUTE_CLASSIFY, 0, h_secrets, NULL, secrets_classify },
	{ "DELETE", "/v1/secrets/{path*}", SECRETS_PREFIX, ROUTE_CLASSIFY, 0, h_secrets, NULL, secrets_classify },
	{ "POST", "/v1/secrets/{path*}/rollback", SECRETS_PREFIX, ROUTE_CLASSIFY, 0, h_secrets, NULL,
	  secrets_classify },
	{ "POST", "/v1/secrets/{path*}/promote", SECRETS_PREFIX, ROUTE_CLASSIFY, 0, h_secrets, NULL,
	  secrets_classify },
};

#define SEGMENTS_MAX 16

struct segs {
	const char *p[SEGMENTS_MAX];
	size_t n[SEGMENTS_MAX];
	size_t count;
};

/* "/a/b/c" -> a, b, c (an empty segment is a segment). false past the max. */
static bool split(const char *path, struct segs *ret)
{
	ret->count = 0;
	if (*path != '/')
		return false;
	for (const char *p = path + 1;; ) {
		const char *e = strchrnul(p, '/');
		if (ret->count == SEGMENTS_MAX)
			return false;
		ret->p[ret->count] = p;
		ret->n[ret->count++] = (size_t)(e - p);
		if (!*e)
			return true;
		p = e + 1;
	}
}

static bool seg_is(const struct segs *s, size_t i, const char *lit, size_t n)
{
	return s->n[i] == n && strncmp(s->p[i], lit, n) == 0;
}

/* Does path (split) match the pattern? *ret_bad_capture names a {name} or
 * {id} capture that matched structurally but is not valid. */
static bool match(const char *pattern, const struct segs *path, const char **ret_bad_capture)
{
	struct segs pat;
	size_t star = SIZE_MAX, tail, i, j;

	if (!split(pattern, &pat))
		return false;
	for (i = 0; i < pat.count; i++)
		if (seg_is(&pat, i, "{path*}", 7))
			star = i;
	if (star == SIZE_MAX ? path->count != pat.count : path->count < pat.count)
		return false;
	tail = star == SIZE_MAX ? 0 : pat.count - star - 1;
	for (i = 0; i < pat.count; i++) {
		if (i == star)
			continue;
		j = star != SIZE_MAX && i > star ? path->count - tail + (i - star - 1) : i;
		if (pat.p[i][0] != '{') {
			if (!seg_is(path, j, pat.p[i], pat.n[i]))
				return false;
			continue;
		}
		if (path->n[j] == 0)
			return false;
	}
	/* Structure matches: now the captures' syntax. */
	*ret_bad_capture = NULL;
	for (i = 0; i < pat.count; i++) {
		char seg[PATH_SEGMENT_MAX + 2];
		j = star != SIZE_MAX && i > star ? path->count - tail + (i - star - 1) : i;
		if (i == star || pat.p[i][0] != '{')
			continue;
		snprintf(seg, sizeof(seg), "%.*s", (int)MIN(path->n[j], sizeof(seg) - 1), path->p[j]);
		if (seg_is(&pat, i, "{name}", 6) && (path->n[j] > PATH_SEGMENT_MAX || !name_valid(seg)))
			*ret_bad_capture = "name";
		else if (seg_is(&pat, i, "{id}", 4) &&
			 (path->n[j] > 18 || strspn(path->p[j], "0123456789") < path->n[j]))
			*ret_bad_capture = "id";
	}
	return true;
}

/* The row for (method, path): 0; or writes 404 (no pattern matches), 405
 * (only patterns of other methods; *ret_known set to one of them, for the
 * record) or 400 (a capture is not valid; *ret is the row) and returns it. */
static int route_find(const char *method, const char *path, const struct route **ret, const struct route **ret_known,
		      json_t **ret_body)
{
	char allowed[64] = "";
	const char *bad = NULL;
	struct segs s;

	*ret = *ret_known = NULL;
	if (!split(path, &s))
		return reply_error(ret_body, 404, "not_found", "no such API route");
	for (size_t i = 0; i < ELEMENTSOF(routes); i++) {
		const struct route *rt = &routes[i];
		const char *b = NULL;

		if (!match(rt->pattern, &s, &b))
			continue;
		if (!streq(rt->method, method)) {
			if (!*ret_known)
				*ret_known = rt;
			if (!strstr(allowed, rt->method) && strlen(allowed) + strlen(rt->method) + 2 < sizeof(allowed))
				snprintf(allowed + strlen(allowed), sizeof(allowed) - strlen(allowed), "%s%s",
					 allowed[0] ? " " : "", rt->method);
			continue;
		}
		*ret = rt;
		bad = b;
		break;
	}
	if (*ret && bad)
		return reply_error(ret_body, 400, streq(bad, "name") ? "bad_name" : "bad_request",
				   "invalid %s in the path: %s", bad,
				   streq(bad, "name") ? "1-64 characters of [A-Za-z0-9._-], starting with a letter or digit"
						      : "a decimal number");
	if (*ret)
		return 0;
	if (*ret_known)
		return reply_error(ret_body, 405, "method_not_allowed", "%s is not allowed here; allowed: %s", method,
				   allowed);
	return reply_error(ret_body, 404, "not_found", "no such API route");
}

int router_lookup(const char *method, const char *path, const char **ret_pattern, const char **ret_action)
{
	const struct route *rt = NULL, *known = NULL;
	json_t *body = NULL;
	int status = route_find(method, path, &rt, &known, &body);

	json_decref(body);
	if (status == 0) {
		*ret_pattern = rt->pattern;
		*ret_action = rt->action;
	}
	return status;
}

/* The one access decision, before any handler or lookup runs: a forbidden
 * path answers 403 whether or not it exists. */
static int authorize(const struct route *rt, struct call *c, unsigned cap, json_t **ret_body)
{
	const struct principal *w = &c->who;
	bool ok;

	if (w->kind == PRINCIPAL_NONE) {
		log_warning("unbound uid %u refused on %s %s (request %s)", (unsigned)c->req->uid, c->req->method,
			    c->req->path, c->req->request_id);
		return reply_error(ret_body, 403, "forbidden",
				   "uid %u is not bound to a service; log in or ask an admin to bind it",
				   (unsigned)c->req->uid);
	}
	if ((rt->flags & ROUTE_ANY_PRINCIPAL) || c->handler_decides)
		return 0;
	if (rt->flags & ROUTE_CLASSIFY)
		/* An empty path is the whole store: only "*" rules grant it. */
		ok = cap == RBAC_LIST ? rbac_allowed_list(w->roles, w->n_roles, c->path)
				      : rbac_allowed(w->roles, w->n_roles, c->path[0] ? c->path : NULL, cap);
	else
		ok = rbac_allowed(w->roles, w->n_roles, NULL, cap);
	if (!ok) {
		log_warning("%s '%s' (uid %u) denied %s on %s %s (request %s)",
			    w->kind == PRINCIPAL_USER ? "user" : "service", w->name, (unsigned)c->req->uid,
			    rbac_cap_name(cap), c->req->method, c->req->path, c->req->request_id);
		return reply_error(ret_body, 403, "forbidden", "%s '%s' may not %s here; an admin can grant it a role that does",
				   w->kind == PRINCIPAL_USER ? "user" : "service", w->name, rbac_cap_name(cap));
	}
	return 0;
}

int audit_effect(struct api *a, struct call *c, json_t **ret_body)
{
	int r = audit_call(a, c, NULL, 200);

	if (r >= 0)
		return 0;
	if (r != -ENOSPC)
		log_error_errno(r, "cannot write the audit record of request %s: undoing it", c->req->request_id);
	return reply_audit_unavailable_errno(ret_body, r);
}

int api_call_commit(void *userdata, struct store_tx **tx)
{
	struct api_call *ac = userdata;

	return commit_audited(ac->a, ac->c, tx);
}

int commit_audited(struct api *a, struct call *c, struct store_tx **tx)
{
	/* The record commits with the change, or neither does. */
	int r = audit_call(a, c, *tx, c->ok_status ? c->ok_status : 200);

	if (r >= 0)
		r = store_write_commit(TAKE_PTR(*tx));
	if (r >= 0)
		c->audited = true;
	return r;
}

const char *call_principal(struct call *c)
{
	if (!c->principal[0]) {
		if (c->who.kind != PRINCIPAL_NONE)
			snprintf(c->principal, sizeof(c->principal), "%s:%s",
				 c->who.kind == PRINCIPAL_USER ? "user" : "service", c->who.name);
		else
			snprintf(c->principal, sizeof(c->principal), "uid:%u", (unsigned)c->req->uid);
	}
	return c->principal;
}

static int audit_call_key(struct api *a, struct call *c, struct store_tx *tx, int status,
			  const struct secret *genesis_key, const char *result, const char *detail)
{
	struct audit_entry e = {
		.principal = c->principal,
		.uid = c->req->uid,
		.pid = c->req->pid,
		.action = c->action ? c->action : "unknown",
		.path = c->path[0] ? c->path : NULL,
		.capability = c->cap ? rbac_cap_name(c->cap) : "",
		.result = result ? result
			: status < 300 ? "allowed"
			: c->auth_failed ? "failed"
			: (status == 401 || status == 403 || status == 429) ? "denied" : "failed",
		.status = status,
		.detail = detail ? detail : c->detail[0] ? c->detail : NULL,
		.request_id = c->req->request_id,
	};
	int r;

	call_principal(c);
	r = genesis_key ? auditor_record_genesis(a->auditor, tx, &e, genesis_key, &c->audit_refused)
			: auditor_record(a->auditor, tx, &e, &c->audit_refused);
	/* An attempt is not the request's record: that still follows. */
	if (r >= 0 && !tx && !result)
		c->audited = true;
	return r;
}

int audit_call_attempt(struct api *a, struct call *c, struct store_tx *tx, const char *detail)
{
	return audit_call_key(a, c, tx, 202, NULL, "attempt", detail);
}

int audit_call(struct api *a, struct call *c, struct store_tx *tx, int status)
{
	return audit_call_key(a, c, tx, status, NULL, NULL, NULL);
}

int audit_system(struct api *a, struct store_tx *tx, const char *action, const char *path, const char *result,
		 const char *detail)
{
	return auditor_record_system(a->auditor, tx, action, path, result, detail);
}

int audit_init_record(struct api *a, struct call *c, struct store_tx *tx, const struct secret *audit_key)
{
	struct audit_entry e = {
		.principal = AUDIT_SYSTEM_PRINCIPAL, .uid = getuid(), .pid = getpid(), .action = "sys.init",
		.capability = "", .result = "allowed", .status = 200, .detail = "vaultd --dev",
		.request_id = "00000000000000000000000000000000",
	};

	if (c)
		return audit_call_key(a, c, tx, 200, audit_key, NULL, NULL);
	return auditor_record_genesis(a->auditor, tx, &e, audit_key, NULL);
}

static int dispatch(struct api *a, struct call *c, const struct route *rt, json_t **ret_body)
{
	const struct server_request *req = c->req;
	unsigned cap;
	int status;

	if (!(rt->flags & ROUTE_WHEN_UNINIT) && !api_is_initialized(a))
		return reply_error(ret_body, 503, "uninitialized", "the vault is not initialized; run 'vaultctl init'");
	/* Locking revoked every session token: one presented now says the
	 * vault is locked, which tells the user more than "log in again"
	 * (that cannot work until someone unlocks). */
	if (!keyring_is_unlocked(a->keyring) &&
	    (!(rt->flags & ROUTE_WHEN_LOCKED) || (!(rt->flags & ROUTE_PUBLIC) && req->authorization))) {
		/* Refused, but the record still says who asked for what: the
		 * action and path (classify), the service bound to the uid. */
		json_t *ignored = NULL;

		cap = rt->cap;
		if ((rt->flags & ROUTE_CLASSIFY) && rt->classify(c, &cap, &ignored))
			json_decref(TAKE_PTR(ignored));
		c->cap = cap;
		if (!(rt->flags & ROUTE_PUBLIC) && identity_resolve(a, c, &ignored))
			json_decref(TAKE_PTR(ignored));
		return reply_error(ret_body, 503, "locked", "the vault is locked; run 'vaultctl unlock'");
	}
	if (rt->flags & ROUTE_PUBLIC)
		return rt->fn(a, c, ret_body);

	cap = rt->cap;
	if ((rt->flags & ROUTE_CLASSIFY) && (status = rt->classify(c, &cap, ret_body)))
		return status;
	c->cap = cap;
	if ((status = identity_resolve(a, c, ret_body)))
		return status;
	if ((status = authorize(rt, c, cap, ret_body))) {
		snprintf(c->detail, sizeof(c->detail), "no rule grants %s", rbac_cap_name(cap));
		return status;
	}
	return rt->fn(a, c, ret_body);
}

/* ---- refusals of unproven callers: a budget of records per uid ----
 *
 * A caller that is neither a bound service nor a logged-in user (an unbound
 * uid, a failed or absent login) could otherwise grow the audit log without
 * bound, one refused request per record. Each uid gets UNPROVEN_BURST
 * records of refusals, refilled at UNPROVEN_PER_S; past that its refusals
 * are answered 429 and counted instead of recorded, and the count is
 * recorded (action "audit.rate_limited") with the next refusal the budget
 * allows. Successes are always recorded, and so are the refusals of every
 * proven principal. */
#define UNPROVEN_BURST 100.0
#define UNPROVEN_PER_S 10.0
#define UNPROVEN_SLOTS 256

struct unproven_slot {
	bool used;
	uid_t uid;
	double tokens;
	int64_t last_ms;
	uint64_t suppressed;
	int64_t suppressed_since;
};

static struct {
	pthread_mutex_t mu;
	struct unproven_slot slot[UNPROVEN_SLOTS];
} unproven = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* true: record it (and *ret_suppressed, *ret_since say what to record
 * first); false: over budget, counted. */
static bool unproven_take(uid_t uid, uint64_t *ret_suppressed, int64_t *ret_since)
{
	struct unproven_slot *s = NULL, *oldest = &unproven.slot[0];
	int64_t t = now_ms();
	bool ok;

	pthread_mutex_lock(&unproven.mu);
	for (size_t i = 0; i < UNPROVEN_SLOTS; i++) {
		struct unproven_slot *e = &unproven.slot[(uid + i) % UNPROVEN_SLOTS];
		if (e->used && e->uid == uid) {
			s = e;
			break;
		}
		if (!e->used) {
			s = e;
			*s = (struct unproven_slot){ .used = true, .uid = uid, .tokens = UNPROVEN_BURST, .last_ms = t };
			break;
		}
		if (e->last_ms < oldest->last_ms)
			oldest = e;
	}
	if (!s) {
		/* Full: the least recently seen uid starts over (its count,
		 * if any, is lost, which only a flood of 256 uids can cause). */
		s = oldest;
		*s = (struct unproven_slot){ .used = true, .uid = uid, .tokens = UNPROVEN_BURST, .last_ms = t };
	}
	s->tokens = MIN(UNPROVEN_BURST, s->tokens + (double)(t - s->last_ms) * UNPROVEN_PER_S / 1000.0);
	s->last_ms = t;
	ok = s->tokens >= 1.0;
	if (ok) {
		s->tokens -= 1.0;
		*ret_suppressed = s->suppressed;
		*ret_since = s->suppressed_since;
		s->suppressed = 0;
	} else if (s->suppressed++ == 0)
		s->suppressed_since = time(NULL);
	pthread_mutex_unlock(&unproven.mu);
	return ok;
}

static int record_suppressed(struct api *a, const struct call *c, uint64_t n, int64_t since)
{
	char principal[32], detail[160], rid[33];
	uint8_t id[16];
	struct tm tm;
	time_t t = (time_t)since;
	char when[32];
	struct audit_entry e = {
		.principal = principal, .uid = c->req->uid, .pid = c->req->pid, .action = "audit.rate_limited",
		.capability = "", .result = "denied", .status = 429, .detail = detail, .request_id = rid,
	};

	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(principal, sizeof(principal), "uid:%u", (unsigned)c->req->uid);
	snprintf(detail, sizeof(detail), "%" PRIu64 " refused requests of this uid left unrecorded since %s (rate limit)",
		 n, when);
	randombytes_buf(id, sizeof(id));
	sodium_bin2hex(rid, sizeof(rid), id, sizeof(id));
	return auditor_record(a->auditor, NULL, &e, NULL);
}

/* One log line per ARENA_LOG_EVERY_S at most, with the count since. */
#define ARENA_LOG_EVERY_S 10

static int arena_exhausted(const struct server_request *req, json_t **ret_body)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	static int64_t logged_at;
	static uint64_t unlogged;
	int64_t now = time(NULL);
	uint64_t n = 0;
	bool say = false;

	pthread_mutex_lock(&mu);
	if (!logged_at || now - logged_at >= ARENA_LOG_EVERY_S) {
		say = true;
		n = unlogged;
		unlogged = 0;
		logged_at = now;
	} else
		unlogged++;
	pthread_mutex_unlock(&mu);
	if (say)
		log_error("the secure memory arena is full (%zu of %zu bytes in use): request %s refused with 503%s; "
			  "raise [server] secure_memory_mib if this recurs",
			  secret_arena_used(), secret_arena_size(), req->request_id,
			  n ? " (and earlier ones not logged)" : "");
	json_decref(*ret_body);
	*ret_body = NULL;
	return reply_error(ret_body, 503, "secure_memory_exhausted",
			   "the daemon's secure memory is full; retry shortly");
}

int api_handle(void *userdata, const struct server_request *req, json_t **ret_body)
{
	struct api *a = userdata;
	const struct route *rt = NULL, *known = NULL;
	struct call c = { .req = req };
	int status, r;

	secret_arena_exhausted_reset();
	status = route_find(req->method, req->path, &rt, &known, ret_body);
	if (status == 0) {
		c.rest = req->path + strlen(rt->mount);
		c.action = rt->action;
		if ((rt->flags & ROUTE_NAME_DETAIL) && *c.rest)
			/* which user, role or service: a name, never a secret */
			snprintf(c.detail, sizeof(c.detail), "%s%.70s", rt->mount + 4, c.rest);
		status = dispatch(a, &c, rt, ret_body);
	} else {
		json_t *ignored = NULL;
		/* Only for the record: who asked for what. */
		if (rt || known)
			c.action = (rt ? rt : known)->action;
		if (identity_resolve(a, &c, &ignored))
			json_decref(ignored);
		if (!rt && known && known->fn == h_health)
			rt = known;     /* health leaves no record, whatever the method */
	}
	/* Whatever the handler made of it (often 500), a request the secure
	 * arena ran out for is told so: 503, retry later, and the record says
	 * the same. */
	if (secret_arena_exhausted())
		status = arena_exhausted(req, ret_body);
	/* Every request but health leaves a record; one that cannot be
	 * recorded is refused (fail closed), whatever it would have answered. */
	if (rt && rt->fn == h_health) {
		principal_clear(&c.who);
		return status;
	}
	if (rt && !(rt->flags & ROUTE_PUBLIC) && c.who.kind == PRINCIPAL_NONE && !c.principal[0] && req->authorization) {
		/* Refused before identity (405, 503): still name the caller. */
		json_t *ignored = NULL;
		if (identity_resolve(a, &c, &ignored))
			json_decref(ignored);
	}
	if (!c.audited && status >= 400 && c.who.kind == PRINCIPAL_NONE) {
		uint64_t n = 0;
		int64_t since = 0;
		if (!unproven_take(req->uid, &n, &since)) {
			/* Over budget: refused, counted, not recorded. */
			json_decref(*ret_body);
			*ret_body = NULL;
			principal_clear(&c.who);
			return reply_error(ret_body, 429, "rate_limited",
					   "too many refused requests from uid %u; slow down", (unsigned)req->uid);
		}
		if (n && (r = record_suppressed(a, &c, n, since)) < 0)
			log_error_errno(r, "cannot record that %" PRIu64 " requests of uid %u went unrecorded", n,
					(unsigned)req->uid);
	}
	if (!c.audited && c.audit_refused) {
		/* The handler's change failed on the mirror and was rolled back;
		 * whatever it made of the error (500, or 503 busy for a stuck
		 * mirror's -EBUSY), the client is told the audit log refused. */
		json_decref(*ret_body);
		*ret_body = NULL;
		status = reply_audit_unavailable(ret_body);
	}
	if (!c.audited && (r = audit_call(a, &c, NULL, status)) < 0) {
		if (r != -ENOSPC)       /* a full disk was logged where it was found */
			log_error_errno(r, "cannot write the audit record of request %s: refusing it",
					req->request_id);
		json_decref(*ret_body);
		*ret_body = NULL;
		status = reply_audit_unavailable_errno(ret_body, r);
	}
	principal_clear(&c.who);
	return status;
}

/* ---- audit retention ---- */

void audit_prune_if_due(struct api *a)
{
	auditor_prune_if_due(a->auditor);
}
