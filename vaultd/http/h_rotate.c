/* vaultd/http/h_rotate.c: the /v1/rotate routes (docs/api.md, "Rotation").
 * Requests queue jobs; the worker in rotate.c runs them. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/duration.h"
#include "common/keyprov.h"
#include "common/log.h"
#include "common/number.h"
#include "common/path.h"
#include "vaultd/http/api_internal.h"
#include "vaultd/rotate/rotate.h"

#define JOBS_SHOWN 50
#define DEFAULT_WITHIN "14d"

enum rotate_op {
	ROT_STATUS = 1,
	ROT_JOB,
	ROT_SECRET,
	ROT_KEK,
	ROT_ROOT,
	ROT_HSM,
	ROT_HSM_RETIRE,
	ROT_ALL,
};

json_t *rotation_json(const struct store_rotation *r)
{
	return json_pack("{s:I, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o}", "id", (json_int_t)r->id,
			 "kind", r->kind, "target", r->target, "state", r->state, "principal", r->principal,
			 "from_version", (json_int_t)r->from_version, "to_version", (json_int_t)r->to_version, "done",
			 (json_int_t)r->done, "total", (json_int_t)r->total, "error",
			 r->error[0] ? json_string(r->error) : json_null(), "created_at", json_time(r->created_at),
			 "updated_at", json_time(r->updated_at), "finished_at",
			 r->finished_at ? json_time(r->finished_at) : json_null());
}

int rotate_classify(struct call *c, unsigned *ret_cap, json_t **ret_body)
{
	static const struct {
		const char *method, *name;
		enum rotate_op op;
		unsigned cap;
		const char *action;
		bool takes_path;
	} ops[] = {
		{ "GET", "status", ROT_STATUS, RBAC_ROTATE, "rotate.status", false },
		{ "GET", "jobs", ROT_JOB, RBAC_ROTATE, "rotate.job", false },
		{ "POST", "secret", ROT_SECRET, RBAC_ROTATE, "rotate.secret", true },
		{ "POST", "kek", ROT_KEK, RBAC_ROTATE, "rotate.kek", true },
		{ "POST", "root", ROT_ROOT, RBAC_ADMIN, "rotate.root", false },
		{ "POST", "hsm", ROT_HSM, RBAC_ADMIN, "rotate.hsm", false },
		{ "POST", "all", ROT_ALL, RBAC_ADMIN, "rotate.all", false },
	};
	const char *rest = c->rest, *arg, *why;
	size_t n;

	if (*rest == '/')
		rest++;
	arg = strchrnul(rest, '/');
	n = (size_t)(arg - rest);
	if (*arg)
		arg++;
	for (size_t i = 0; i < ELEMENTSOF(ops); i++) {
		if (strlen(ops[i].name) != n || strncmp(rest, ops[i].name, n) != 0)
			continue;
		if (!streq(c->req->method, ops[i].method))
			return reply_error(ret_body, 405, "method_not_allowed", "use %s for /v1/rotate/%s",
					   ops[i].method, ops[i].name);
		c->op = ops[i].op;
		c->action = ops[i].action;
		*ret_cap = ops[i].cap;
		c->path[0] = '\0';
		if (ops[i].op == ROT_HSM && streq(arg, "retire")) {
			c->op = ROT_HSM_RETIRE;
			c->action = "rotate.hsm_retire";
		} else if (ops[i].op == ROT_JOB) {
			if (!*arg || strlen(arg) > 18 || arg[strspn(arg, "0123456789")])
				return reply_error(ret_body, 404, "not_found", "no such API route; use /v1/rotate/jobs/<id>");
			snprintf(c->detail, sizeof(c->detail), "job %s", arg);
			/* Who may see a job depends on the job: job_get() decides. */
			c->handler_decides = true;
		} else if (ops[i].takes_path && *arg) {
			if (strlen(arg) >= sizeof(c->path))
				return reply_error(ret_body, 400, "bad_path", "path too long");
			if ((why = path_check(arg, 1)))
				return reply_error(ret_body, 400, "bad_path", "invalid path: %s", why);
			if (ops[i].op == ROT_KEK && strchr(arg, '/'))
				return reply_error(ret_body, 400, "bad_path", "a KEK belongs to a tenant: one path segment");
			snprintf(c->path, sizeof(c->path), "%s", arg);
		} else if (ops[i].op == ROT_KEK || (*arg && !ops[i].takes_path))
			return reply_error(ret_body, 404, "not_found", "no such API route");
		return 0;
	}
	return reply_error(ret_body, 404, "not_found", "no such rotation; see /v1/rotate/status");
}

/* Rotation requests carry no parameters: an empty body or {}. */
static int no_body(const struct server_request *req, json_t **ret_body)
{
	static const char *const none[] = { NULL };
	static const char *const q[] = { NULL };
	_cleanup_json_ json_t *body = NULL;
	int r;

	if ((r = check_query(req, q, ret_body)))
		return r;
	if (req->body && req->body->len > 0 && (r = parse_body(req, none, &body, ret_body)))
		return r;
	return 0;
}

static int queue_one(struct api *a, struct call *c, const char *kind, const char *target, json_t **ret_body)
{
	struct store_rotation j = {0};
	struct store_kek kek = {0};
	struct store_tx *tx = NULL;
	bool existing = false;
	int r;

	r = store_write_begin(a->store, &tx);
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, c->req, r, "begin write");
	if (streq(kind, "kek")) {
		r = store_kek_get_current(tx, target, &kek);
		store_kek_clear(&kek);
		if (r == -ENOENT) {
			store_tx_end(tx);
			return reply_error(ret_body, 404, "not_found", "tenant '%s' has no key: nothing was stored under it",
					   target);
		}
	}
	if (r >= 0)
		r = rotate_queue(tx, kind, target, call_principal(c), c->req->request_id, &j,
				 &existing);
	if (r >= 0) {
		snprintf(c->detail, sizeof(c->detail), "job %" PRId64 "%s", j.id, existing ? " (already active)" : "");
		c->ok_status = 202;
		r = commit_audited(a, c, &tx);
	}
	store_tx_end(tx);
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, c->req, r, "queue rotation");
	rotator_kick(a->rot, false);
	return reply(ret_body, 202, json_pack("{s:o, s:b}", "job", rotation_json(&j), "already_active", existing));
}

struct tenants {
	char (*names)[PATH_SEGMENT_MAX + 1];
	size_t n, cap;
};

static int tenant_one(const struct store_kek *k, void *userdata)
{
	struct tenants *t = userdata;
	void *p;

	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 32;
		p = reallocarray(t->names, cap, sizeof(*t->names));
		if (!p)
			return -ENOMEM;
		t->names = p;
		t->cap = cap;
	}
	snprintf(t->names[t->n++], sizeof(t->names[0]), "%s", k->tenant);
	return 0;
}

static int queue_all(struct api *a, struct call *c, json_t **ret_body)
{
	_cleanup_json_ json_t *jobs = json_array();
	struct tenants t = {0};
	struct store_tx *tx = NULL;
	const char *who = call_principal(c);
	int r;

	if (!jobs)
		return reply_internal(ret_body, c->req, -ENOMEM, "rotate all");
	r = store_write_begin(a->store, &tx);
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, c->req, r, "begin write");
	r = store_kek_list_current(tx, tenant_one, &t);
	/* Outermost first: the worker runs jobs in this order. */
	for (size_t i = 0; r >= 0 && i < t.n + 3; i++) {
		struct store_rotation j = {0};
		bool existing;
		const char *kind = i == 0 ? "hsm" : i == 1 ? "root" : i < t.n + 2 ? "kek" : "secret";
		const char *target = streq(kind, "kek") ? t.names[i - 2] : "";

		r = rotate_queue(tx, kind, target, who, c->req->request_id, &j, &existing);
		if (r >= 0)
			json_array_append_new(jobs, rotation_json(&j));
	}
	free(t.names);
	if (r >= 0) {
		snprintf(c->detail, sizeof(c->detail), "emergency rotation: %zu jobs", json_array_size(jobs));
		c->ok_status = 202;
		r = commit_audited(a, c, &tx);
	}
	store_tx_end(tx);
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, c->req, r, "queue rotations");
	log_notice("emergency rotation of every key asked by %s", who);
	rotator_kick(a->rot, false);
	return reply(ret_body, 202, json_pack("{s:O}", "jobs", jobs));
}

struct retire_ctx {
	struct api *a;
	struct call *c;
};

/* The attempt, as the admin who asked, before any key leaves the token;
 * the request's own record (by the router) says how it ended. */
static int record_retire(void *userdata, struct store_tx *tx, const char *result, const char *detail)
{
	struct retire_ctx *x = userdata;

	return streq(result, "attempt") ? audit_call_attempt(x->a, x->c, tx, detail) : 0;
}

static int hsm_retire(struct api *a, struct call *c, json_t **ret_body)
{
	struct retire_ctx x = { .a = a, .c = c };
	json_t *deleted = NULL;
	int r;

	r = keyring_hsm_retire_audited(a->keyring, a->store, record_retire, &x, &deleted);
	if (r == -EACCES)
		return reply_error(ret_body, 503, "locked", "the vault is locked");
	if (r < 0)
		return reply_hsm_error(ret_body, c->req, r, "retire HSM keys");
	snprintf(c->detail, sizeof(c->detail), "%zu HSM key versions deleted", json_array_size(deleted));
	return reply(ret_body, 200, json_pack("{s:o}", "deleted", deleted));
}

static int job_get(struct api *a, struct call *c, json_t **ret_body)
{
	static const char *const q[] = { NULL };
	const char *id_text = strrchr(c->rest, '/') + 1;
	struct store_rotation j = {0};
	struct store_tx *tx = NULL;
	uint64_t id = 0;
	int r;

	if ((r = check_query(c->req, q, ret_body)))
		return r;
	if (number_parse_u64(id_text, 1, INT64_MAX, &id) < 0)
		return reply_error(ret_body, 404, "not_found", "no such API route; use /v1/rotate/jobs/<id>");
	r = store_read_begin(a->store, &tx);
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, c->req, r, "begin read");
	r = store_rotation_get(tx, id, &j);
	store_tx_end(tx);
	if (r < 0 && r != -ENOENT)
		return reply_store_busy_or_internal(ret_body, c->req, r, "read job");
	/* Decided before saying whether the job exists. */
	if (!rbac_allowed(c->who.roles, c->who.n_roles, NULL, RBAC_ROTATE) &&
	    !(r == 0 && streq(j.principal, call_principal(c))) &&
	    !(r == 0 && j.target[0] && rbac_allowed(c->who.roles, c->who.n_roles, j.target, RBAC_ROTATE))) {
		snprintf(c->detail, sizeof(c->detail), "job %" PRId64 ": not the asker, no rotate on its target", id);
		return reply_error(ret_body, 403, "forbidden", "only whoever asked for job %" PRId64
				   " or may rotate its target may follow it", id);
	}
	if (r == -ENOENT)
		return reply_error(ret_body, 404, "not_found", "no rotation job %" PRId64, id);
	return reply(ret_body, 200, json_pack("{s:o}", "job", rotation_json(&j)));
}

/* ---- status ---- */

struct status_ctx {
	struct store_tx *tx;
	const struct principal *who;
	json_t *tenants, *jobs, *due;
	uint64_t wrap_limit;
	int64_t now, within;
	uint32_t kek_current;
	int64_t kek_versions;
};

static int kek_version_one(const struct store_kek *k, void *userdata)
{
	struct status_ctx *s = userdata;

	(void)k;
	s->kek_versions++;
	return 0;
}

static int status_tenant(const struct store_kek *k, void *userdata)
{
	struct status_ctx *s = userdata;
	int r;

	s->kek_versions = 0;
	r = store_kek_list_tenant(s->tx, k->tenant, kek_version_one, s);
	if (r < 0)
		return r;
	return json_array_append_new(s->tenants,
				     json_pack("{s:s, s:I, s:o, s:I, s:I, s:I}", "tenant", k->tenant, "kek_version",
					       (json_int_t)k->version, "created_at", json_time(k->created_at),
					       "wrap_count", (json_int_t)k->wrap_count, "wrap_limit",
					       (json_int_t)s->wrap_limit, "old_versions",
					       (json_int_t)(s->kek_versions - 1))) < 0
		       ? -ENOMEM
		       : 0;
}

static int status_job(const struct store_rotation *r, void *userdata)
{
	struct status_ctx *s = userdata;

	return json_array_append_new(s->jobs, rotation_json(r)) < 0 ? -ENOMEM : 0;
}

static int status_due(const struct store_secret *sec, const char *max_age, int64_t created, void *userdata)
{
	struct status_ctx *s = userdata;
	int64_t age_limit, due_at, age = s->now - created;

	if (duration_parse(max_age, &age_limit) < 0)
		return 0;       /* written before validation existed: not ours to judge */
	if (!rbac_allowed(s->who->roles, s->who->n_roles, sec->path, RBAC_LIST))
		return 0;
	due_at = created + age_limit;
	if (due_at > s->now + s->within)
		return 0;
	return json_array_append_new(s->due, json_pack("{s:s, s:s, s:I, s:s, s:I, s:o, s:s}", "path", sec->path,
						       "type", sec->type, "version",
						       (json_int_t)sec->current_version, "max_age", max_age,
						       "age_seconds", (json_int_t)age, "due_at", json_time(due_at),
						       "status", due_at <= s->now ? "overdue" : "due_soon")) < 0
		       ? -ENOMEM
		       : 0;
}

static int due_order(const void *x, const void *y)
{
	const char *a = json_string_value(json_object_get(*(json_t *const *)x, "due_at"));
	const char *b = json_string_value(json_object_get(*(json_t *const *)y, "due_at"));

	/* RFC 3339 UTC strings sort as times: most overdue first. */
	return strcmp(a ? a : "", b ? b : "");
}

static json_t *sorted(json_t *arr)
{
	size_t n = json_array_size(arr);
	json_t **v = calloc(n ? n : 1, sizeof(*v)), *out;

	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++)
		v[i] = json_array_get(arr, i);
	qsort(v, n, sizeof(*v), due_order);
	out = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append(out, v[i]);
	free(v);
	return out;
}

static json_t *retire_json(const char *text)
{
	json_t *arr = json_array();

	for (const char *p = text; p && *p;) {
		const char *e = strchrnul(p, ' '), *colon = memchr(p, ':', (size_t)(e - p));
		if (colon)
			json_array_append_new(arr, json_pack("{s:s%, s:I}", "label", p, (size_t)(colon - p), "version",
							     (json_int_t)strtoll(colon + 1, NULL, 10)));
		p = *e ? e + 1 : e;
	}
	return arr;
}

static int status(struct api *a, struct call *c, json_t **ret_body)
{
	static const char *const q[] = { "within", NULL };
	_cleanup_free_ char *retire = NULL;
	struct status_ctx s = { .who = &c->who, .wrap_limit = a->cfg.kek_max_wraps, .now = time(NULL) };
	struct store_rootkey rk = {0};
	const char *within;
	json_t *out = NULL, *due;
	int r;

	if ((r = check_query(c->req, q, ret_body)))
		return r;
	within = server_request_query(c->req, "within");
	if (!within)
		within = DEFAULT_WITHIN;
	if (duration_parse(within, &s.within) < 0)
		return reply_error(ret_body, 400, "bad_request", "within must be a duration like 14d (h, d or w)");
	r = store_read_begin(a->store, &s.tx);
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, c->req, r, "begin read");
	s.tenants = json_array();
	s.jobs = json_array();
	s.due = json_array();
	r = store_rootkey_get_current(s.tx, &rk);
	if (r >= 0 && store_meta_get(s.tx, "hsm_retire", &retire) == -ENOMEM)
		r = -ENOMEM;
	if (r >= 0)
		r = store_kek_list_current(s.tx, status_tenant, &s);
	if (r >= 0)
		r = store_rotation_list(s.tx, JOBS_SHOWN, status_job, &s);
	if (r >= 0)
		r = store_secret_list_max_age(s.tx, status_due, &s);
	store_tx_end(s.tx);
	due = r >= 0 ? sorted(s.due) : NULL;
	if (r >= 0 && !due)
		r = -ENOMEM;
	if (r >= 0)
		out = json_pack("{s:{s:I, s:o, s:{s:s, s:I}}, s:o, s:o, s:o, s:s, s:o}", "root_key", "version",
				(json_int_t)rk.version, "created_at", json_time(rk.created_at), "hsm_key", "label",
				rk.hsm_label, "version", (json_int_t)rk.hsm_version, "hsm_keys_to_retire",
				retire_json(retire), "tenants", s.tenants, "jobs", s.jobs, "within", within,
				"credentials", due);
	else {
		json_decref(s.tenants);
		json_decref(s.jobs);
	}
	json_decref(s.due);
	store_rootkey_clear(&rk);
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, c->req, r, "rotation status");
	return reply(ret_body, 200, out);
}

int h_rotate(struct api *a, struct call *c, json_t **ret_body)
{
	int r;

	switch (c->op) {
	case ROT_STATUS:
		return status(a, c, ret_body);
	case ROT_JOB:
		return job_get(a, c, ret_body);
	default:
		break;
	}
	/* Reading progress needs no key; starting or retiring one does. */
	if (!keyring_is_unlocked(a->keyring))
		return reply_error(ret_body, 503, "locked", "the vault is locked; run 'vaultctl unlock'");
	if ((r = no_body(c->req, ret_body)))
		return r;
	switch (c->op) {
	case ROT_SECRET:
		return queue_one(a, c, "secret", c->path, ret_body);
	case ROT_KEK:
		return queue_one(a, c, "kek", c->path, ret_body);
	case ROT_ROOT:
		return queue_one(a, c, "root", "", ret_body);
	case ROT_HSM:
		return queue_one(a, c, "hsm", "", ret_body);
	case ROT_HSM_RETIRE:
		return hsm_retire(a, c, ret_body);
	case ROT_ALL:
		return queue_all(a, c, ret_body);
	}
	return reply_internal(ret_body, c->req, -EINVAL, "unclassified rotation request");
}
