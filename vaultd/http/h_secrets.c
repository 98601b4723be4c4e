/* vaultd/http/h_secrets.c: the /v1/secrets routes: strict parsing of
 * bodies and queries, the calls into the secrets domain and the store,
 * the replies. */
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/duration.h"
#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/path.h"
#include "vaultd/audit/audit.h"
#include "vaultd/http/api_internal.h"
#include "vaultd/rotate/rotate.h"
#include "vaultd/secrets/secrets.h"
#include "vaultd/secrets/types.h"

#define METADATA_MAX 8192
#define METADATA_KEYS_MAX 32
#define LIST_MAX 10000

/* ---- secrets ---- */

static json_t *secret_head_json(const struct store_secret *s)
{
	json_t *meta = json_loads(s->metadata, 0, NULL);

	return json_pack("{s:s, s:s, s:i, s:o, s:o, s:o}", "path", s->path, "type", s->type, "version",
			 (json_int_t)s->current_version, "metadata", meta ? meta : json_object(),
			 "created_at", json_time(s->created_at), "updated_at", json_time(s->updated_at));
}

/* A control character (C0, DEL, or C1 as UTF-8 U+0080..U+009F) or a NUL
 * inside s[0..n): text that could drive a terminal or cut a C string. */
static bool has_control(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char b = (unsigned char)s[i];
		if (b < 0x20 || b == 0x7f || (b == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
					      (unsigned char)s[i + 1] <= 0x9f))
			return true;
	}
	return false;
}

/* Metadata: a flat object of strings, numbers and booleans, printable
 * text only. Not encrypted, so the reasons say "not secret" in the docs.
 * NULL, or the reason (with *ret_key the offending key, or NULL). */
static const char *metadata_check(const json_t *m, const char **ret_key)
{
	const char *k;
	json_t *v;

	*ret_key = NULL;
	if (!json_is_object(m))
		return "must be a JSON object";
	if (json_object_size(m) > METADATA_KEYS_MAX)
		return "at most 32 keys";
	json_object_foreach((json_t *)m, k, v) {
		*ret_key = k;
		if (strlen(k) == 0 || strlen(k) > 64)
			return "keys must be 1-64 characters";
		if (has_control(k, strlen(k)))
			return "keys must not contain control characters";
		if (!json_is_string(v) && !json_is_number(v) && !json_is_boolean(v))
			return "values must be strings, numbers or booleans";
		if (json_is_string(v) && json_string_length(v) > 1024)
			return "string values must be at most 1024 characters";
		if (json_is_string(v) && has_control(json_string_value(v), json_string_length(v)))
			return "string values must not contain control characters";
	}
	*ret_key = NULL;
	return NULL;
}

/* The one metadata key vaultd itself reads. NULL if fine. */
static const char *max_age_check(const json_t *m)
{
	const json_t *v = json_object_get(m, "max_age");
	int64_t ignored;

	if (!v)
		return NULL;
	if (!json_is_string(v) || duration_parse(json_string_value(v), &ignored) < 0)
		return "a duration like \"90d\": 1-6 digits then h, d or w, at most 10 years";
	return NULL;
}

/* Seals 'data' as the next version of path and commits: current, or
 * pending (staged for promotion). cas < 0: no check. Versions beyond
 * [secrets] keep_versions are destroyed in the same transaction. */

/* The write itself is the domain's (secrets.h); this names its errors for
 * the client. */
static int write_version(struct api *a, struct call *c, const char *path,
			 const char *type, const char *metadata, const struct secret *plain,
			 int64_t cas, uint32_t from_version, bool pending, json_t **ret_body)
{
	const struct secrets_env env = { .store = a->store, .keyring = a->keyring, .keep_versions = a->cfg.keep_versions };
	const struct secret_write w = { .path = path, .type = type, .metadata = metadata, .plain = plain, .cas = cas,
					.from_version = from_version, .pending = pending };
	struct api_call ac = { .a = a, .c = c };
	struct secret_written out = {0};
	const struct server_request *req = c->req;
	int r;

	r = secrets_write(&env, &w, api_call_commit, &ac, &out);
	if (r >= 0) {
		if (out.kek_wraps >= a->cfg.kek_max_wraps)
			rotator_kick(a->rot, false);
		return reply(ret_body, 200, json_pack("{s:s, s:i, s:s}", "path", path, "version", (json_int_t)out.version,
						      "stage", pending ? "pending" : "current"));
	}
	switch (r) {
	case -ENOENT:
	case -VLT_E_DELETED:
		if (pending)
			return reply_errno(ret_body, req, r, "write secret", "no secret at '%s'; a pending version "
					   "stages a change to an existing secret", path);
		return r == -ENOENT ? reply_errno(ret_body, req, r, "write secret", "no secret at '%s'", path)
				    : reply_errno(ret_body, req, r, "write secret", "the secret at '%s' is deleted", path);
	case -VLT_E_TYPE:
		return reply_errno(ret_body, req, r, "write secret",
				   "'%s' holds a %s credential; its type cannot change (destroy it first)", path, out.type);
	case -VLT_E_CAS:
		return reply_errno(ret_body, req, r, "write secret",
				   "check-and-set failed: current version is %" PRIu32 ", not %" PRId64,
				   out.current_version, cas);
	case -VLT_E_VERSIONS:
		return reply_errno(ret_body, req, r, "write secret", "'%s' has run out of version numbers", path);
	case -EINVAL:
		return reply_error(ret_body, 400, "bad_path", "invalid path");
	case -EACCES:
		return reply_error(ret_body, 503, "locked", "the vault is locked");
	default:
		return reply_store_busy_or_internal(ret_body, req, r, "write secret");
	}
}

static int secret_put(struct api *a, struct call *c, const char *path, json_t **ret_body)
{
	const struct server_request *req = c->req;
	static const char *const fields[] = { "type", "data", "metadata", "cas", "stage", NULL };
	static const char *const q[] = { NULL };
	_cleanup_json_ json_t *body = NULL, *errors = NULL;
	_cleanup_secret_ struct secret *plain = NULL;
	_cleanup_free_ char *meta_text = NULL;
	const struct cred_type *t;
	json_t *type, *data, *meta, *cas, *stage;
	char *text;
	const char *why, *bad_key;
	int r;

	if ((r = check_query(req, q, ret_body)) || (r = parse_body(req, fields, &body, ret_body)))
		return r;
	type = json_object_get(body, "type");
	data = json_object_get(body, "data");
	meta = json_object_get(body, "metadata");
	cas = json_object_get(body, "cas");
	stage = json_object_get(body, "stage");
	if (!json_is_string(type))
		return reply_invalid(ret_body, json_pack("{s:s}", "type", "required; see GET /v1/types"),
				     "invalid credential");
	t = cred_type_find(json_string_value(type));
	if (!t)
		return reply_invalid(ret_body, json_pack("{s:s}", "type", "unknown type; see GET /v1/types"),
				     "invalid credential");
	if (!data)
		return reply_invalid(ret_body, json_pack("{s:s}", "data", "required"), "invalid credential");
	if (cred_type_validate(t, data, &errors) < 0)
		return reply_invalid(ret_body, TAKE_PTR(errors), "invalid credential");
	if (meta && (why = metadata_check(meta, &bad_key))) {
		char reason[3 * 64 + 128];
		if (bad_key) {
			/* Named, but escaped: the key itself may be the trouble. */
			char esc[3 * 64 + 1];
			audit_text_escape(esc, sizeof(esc), bad_key);
			snprintf(reason, sizeof(reason), "key '%s': %s", esc, why);
		} else
			snprintf(reason, sizeof(reason), "%s", why);
		return reply_invalid(ret_body, json_pack("{s:s}", "metadata", reason), "invalid metadata");
	}
	if (meta && (why = max_age_check(meta)))
		return reply_invalid(ret_body, json_pack("{s:s}", "metadata.max_age", why), "invalid metadata");
	if (stage && (!json_is_string(stage) || (!streq(json_string_value(stage), "current") &&
						 !streq(json_string_value(stage), "pending"))))
		return reply_invalid(ret_body, json_pack("{s:s}", "stage", "\"current\" or \"pending\""),
				     "invalid stage");
	if (cas && (!json_is_integer(cas) || json_integer_value(cas) < 0 ||
		    json_integer_value(cas) > UINT32_MAX))
		return reply_invalid(ret_body, json_pack("{s:s}", "cas", "must be a non-negative integer version"),
				     "invalid check-and-set");
	if (meta) {
		meta_text = json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS);
		if (!meta_text || strlen(meta_text) > METADATA_MAX)
			return reply_invalid(ret_body, json_pack("{s:s}", "metadata", "at most 8192 bytes"),
					     "invalid metadata");
	}

	/* The canonical text of the data goes straight into guarded memory;
	 * jansson's copy is wiped by the secure allocator. */
	text = json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text)
		return reply_internal(ret_body, req, -ENOMEM, "serialise data");
	r = secret_from_bytes(text, strlen(text), &plain);
	json_secure_free(text);
	if (r == -EINVAL)
		return reply_error(ret_body, 413, "too_large", "the credential data is too large");
	if (r < 0)
		return reply_internal(ret_body, req, r, "copy data");
	if (plain->len > 256 * 1024)
		return reply_error(ret_body, 413, "too_large", "the credential data is too large");

	/* meta_text came from the secure allocator too: hand the store a copy. */
	if (meta_text) {
		char *copy = strdup(meta_text);
		json_secure_free(TAKE_PTR(meta_text));
		meta_text = copy;
		if (!meta_text)
			return reply_internal(ret_body, req, -ENOMEM, "copy metadata");
	}
	return write_version(a, c, path, t->name, meta_text, plain, cas ? json_integer_value(cas) : -1, 0,
			     stage && streq(json_string_value(stage), "pending"), ret_body);
}

/* Loads and opens one version. Writes the reply on failure (returns > 0). */
static struct secrets_env env_of(struct api *a)
{
	return (struct secrets_env){ .store = a->store, .keyring = a->keyring, .keep_versions = a->cfg.keep_versions };
}


/* A read that did not find what it was asked for, said precisely. */
static int reply_read_error(json_t **ret_body, const struct server_request *req, int r, const char *path,
			    const struct secret_read *rd, const char *stage)
{
	if (r == -ENOENT)
		switch (rd->missing) {
		case SECRET_MISSING_STAGE:
			return reply_error(ret_body, 404, "not_found", "'%s' has no %s version", path,
					   stage ? stage : "current");
		case SECRET_MISSING_VERSION:
			return reply_error(ret_body, 404, "not_found", "'%s' has no version %u", path, rd->version);
		case SECRET_MISSING_DESTROYED:
			return reply_error(ret_body, 404, "not_found", "version %u of '%s' was destroyed", rd->version,
					   path);
		default:
			return reply_error(ret_body, 404, "not_found", "no secret at '%s'", path);
		}
	if (r == -EACCES)
		return reply_error(ret_body, 503, "locked", "the vault is locked");
	if (r == -EBUSY)
		return reply_store_busy_or_internal(ret_body, req, r, "read secret");
	/* -EBADMSG here means the row was tampered with or moved. */
	return reply_internal(ret_body, req, r, "open secret");
}

static const char *stage_of(const struct store_secret *h, uint32_t version)
{
	if (version == h->current_version)
		return "current";
	if (version == h->pending_version)
		return "pending";
	if (version == h->previous_version)
		return "previous";
	return NULL;
}

static json_t *json_version_or_null(uint32_t v)
{
	return v ? json_integer(v) : json_null();
}

static int secret_get(struct api *a, const struct server_request *req, const char *path, json_t **ret_body)
{
	static const char *const q[] = { "version", "stage", NULL };
	const struct secrets_env env = env_of(a);
	_cleanup_secret_ struct secret *plain = NULL;
	struct secret_read rd = {0};
	struct store_secret head = {0};
	json_t *data, *out;
	int64_t created = 0;
	uint32_t version = 0;
	const char *vs, *stage, *st;
	int r, status;

	if ((r = check_query(req, q, ret_body)))
		return r;
	vs = server_request_query(req, "version");
	stage = server_request_query(req, "stage");
	if (vs && parse_u32(vs, 1, UINT32_MAX, &version) < 0)
		return reply_error(ret_body, 400, "bad_request", "version must be a positive integer");
	if (stage && !streq(stage, "current") && !streq(stage, "pending") && !streq(stage, "previous"))
		return reply_error(ret_body, 400, "bad_request", "stage must be current, pending or previous");
	if (vs && stage)
		return reply_error(ret_body, 400, "bad_request", "ask for a version or a stage, not both");

	r = secrets_read(&env, path, version, stage, &rd);
	if (r < 0)
		return reply_read_error(ret_body, req, r, path, &rd, stage);
	plain = TAKE_PTR(rd.plain);
	head = rd.head;
	version = rd.version;
	created = rd.version_created_at;

	data = json_loadb((const char *)plain->p, plain->len, 0, NULL);
	if (!data) {
		status = reply_internal(ret_body, req, -EBADMSG, "parse stored data");
		goto out;
	}
	out = secret_head_json(&head);
	json_object_set_new(out, "version", json_integer(version));
	json_object_set_new(out, "current_version", json_integer(head.current_version));
	json_object_set_new(out, "pending_version", json_version_or_null(head.pending_version));
	json_object_set_new(out, "previous_version", json_version_or_null(head.previous_version));
	st = stage_of(&head, version);
	json_object_set_new(out, "stage", st ? json_string(st) : json_null());
	json_object_set_new(out, "data", data);
	json_object_set_new(out, "version_created_at", json_time(created));
	status = reply(ret_body, 200, out);
out:
	store_secret_clear(&head);
	return status;
}

struct list_ctx {
	json_t *arr;
	const struct principal *who;
};

static int list_one(const struct store_secret *s, void *userdata)
{
	struct list_ctx *l = userdata;

	/* A role may cover part of the prefix: show only what it may list. */
	if (!rbac_allowed(l->who->roles, l->who->n_roles, s->path, RBAC_LIST))
		return 0;
	return json_array_append_new(l->arr, secret_head_json(s)) < 0 ? -ENOMEM : 0;
}

static int secret_list(struct api *a, struct call *c, const char *prefix, json_t **ret_body)
{
	static const char *const q[] = { "list", NULL };
	const struct server_request *req = c->req;
	const struct secrets_env env = env_of(a);
	struct list_ctx l = { .who = &c->who };
	int r;

	if ((r = check_query(req, q, ret_body)))
		return r;
	l.arr = json_array();
	r = secrets_list(&env, prefix, LIST_MAX, list_one, &l);
	if (r < 0) {
		json_decref(l.arr);
		return reply_store_busy_or_internal(ret_body, req, r, "list secrets");
	}
	return reply(ret_body, 200, json_pack("{s:s, s:o}", "prefix", prefix, "secrets", l.arr));
}

struct versions_ctx {
	json_t *arr;
	const struct store_secret *head;
};

static int versions_one(const struct store_version *v, void *userdata)
{
	struct versions_ctx *c = userdata;
	const char *st = stage_of(c->head, v->version);

	return json_array_append_new(c->arr, json_pack("{s:i, s:o, s:b, s:b, s:o}", "version", (json_int_t)v->version,
						       "created_at", json_time(v->created_at), "destroyed",
						       v->dek_len == 0, "current", v->version == c->head->current_version,
						       "stage", st ? json_string(st) : json_null())) < 0
		       ? -ENOMEM
		       : 0;
}

static int secret_versions(struct api *a, const struct server_request *req, const char *path, json_t **ret_body)
{
	static const char *const q[] = { "versions", NULL };
	const struct secrets_env env = env_of(a);
	struct store_secret head = {0};
	struct versions_ctx c = {0};
	int r, status;

	if ((r = check_query(req, q, ret_body)))
		return r;
	c.arr = json_array();
	c.head = &head;
	r = secrets_versions(&env, path, &head, versions_one, &c);
	if (r < 0) {
		json_decref(c.arr);
		if (r == -ENOENT)
			return reply_error(ret_body, 404, "not_found", "no secret at '%s'", path);
		return reply_store_busy_or_internal(ret_body, req, r, "list versions");
	}
	status = reply(ret_body, 200, json_pack("{s:s, s:i, s:o, s:o, s:b, s:o}", "path", path, "current_version",
					       (json_int_t)head.current_version, "pending_version",
					       json_version_or_null(head.pending_version), "previous_version",
					       json_version_or_null(head.previous_version), "deleted", head.deleted_at != 0,
					       "versions", c.arr));
	store_secret_clear(&head);
	return status;
}

static int secret_delete(struct api *a, struct call *c, const char *path, json_t **ret_body)
{
	const struct server_request *req = c->req;
	static const char *const q[] = { "destroy", NULL };
	const struct secrets_env env = env_of(a);
	struct api_call ac = { .a = a, .c = c };
	bool destroy;
	int r;

	if ((r = check_query(req, q, ret_body)))
		return r;
	destroy = flag_set(req, "destroy");
	if (destroy)
		c->action = "secret.destroy";
	r = secrets_delete(&env, path, destroy, api_call_commit, &ac);
	if (r == -ENOENT)
		return reply_error(ret_body, 404, "not_found", "no secret at '%s'", path);
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, req, r, destroy ? "destroy secret" : "delete secret");
	return reply(ret_body, 200, json_pack("{s:s, s:b, s:b}", "path", path, "deleted", 1, "destroyed", destroy));
}

static int secret_rollback(struct api *a, struct call *c, const char *path, json_t **ret_body)
{
	const struct server_request *req = c->req;
	static const char *const fields[] = { "version", "cas", NULL };
	static const char *const q[] = { NULL };
	_cleanup_json_ json_t *body = NULL;
	_cleanup_secret_ struct secret *plain = NULL;
	_cleanup_free_ char *type = NULL;
	const struct secrets_env env = env_of(a);
	struct secret_read rd = {0};
	json_t *ver, *cas;
	int r, status;

	if ((r = check_query(req, q, ret_body)) || (r = parse_body(req, fields, &body, ret_body)))
		return r;
	ver = json_object_get(body, "version");
	cas = json_object_get(body, "cas");
	if (!json_is_integer(ver) || json_integer_value(ver) < 1 || json_integer_value(ver) > UINT32_MAX)
		return reply_invalid(ret_body, json_pack("{s:s}", "version", "required: a positive integer"),
				     "invalid rollback");
	if (cas && (!json_is_integer(cas) || json_integer_value(cas) < 0 || json_integer_value(cas) > UINT32_MAX))
		return reply_invalid(ret_body, json_pack("{s:s}", "cas", "must be a non-negative integer version"),
				     "invalid rollback");

	/* Read the old version in a snapshot, then write it as a new version;
	 * check-and-set (optional) guards against a write in between. */
	r = secrets_read(&env, path, (uint32_t)json_integer_value(ver), NULL, &rd);
	if (r < 0)
		return reply_read_error(ret_body, req, r, path, &rd, NULL);
	plain = TAKE_PTR(rd.plain);
	type = strdup(rd.head.type);
	secret_read_clear(&rd);
	if (!type)
		return reply_internal(ret_body, req, -ENOMEM, "rollback");
	status = write_version(a, c, path, type, NULL, plain, cas ? json_integer_value(cas) : -1,
			       (uint32_t)json_integer_value(ver), false, ret_body);
	if (status == 200)
		json_object_set_new(*ret_body, "rolled_back_from", json_integer(json_integer_value(ver)));
	return status;
}

static int secret_promote(struct api *a, struct call *c, const char *path, json_t **ret_body)
{
	const struct server_request *req = c->req;
	static const char *const fields[] = { "version", NULL };
	static const char *const q[] = { NULL };
	_cleanup_json_ json_t *body = NULL;
	const struct secrets_env env = env_of(a);
	struct api_call ac = { .a = a, .c = c };
	struct store_secret head = {0};
	uint32_t want = 0;
	json_t *ver;
	int r;

	if ((r = check_query(req, q, ret_body)))
		return r;
	if (req->body && req->body->len > 0) {
		if ((r = parse_body(req, fields, &body, ret_body)))
			return r;
		ver = json_object_get(body, "version");
		if (ver && (!json_is_integer(ver) || json_integer_value(ver) < 1 ||
			    json_integer_value(ver) > UINT32_MAX))
			return reply_invalid(ret_body, json_pack("{s:s}", "version", "a positive integer"),
					     "invalid promotion");
		want = ver ? (uint32_t)json_integer_value(ver) : 0;
	}
	r = secrets_promote(&env, path, want, api_call_commit, &ac, &head);
	if (r == -ENOENT)
		return reply_error(ret_body, 404, "not_found", "no secret at '%s'", path);
	if (r == -ESRCH) {
		snprintf(c->detail, sizeof(c->detail), "no such pending version");
		return want ? reply_error(ret_body, 409, "no_pending", "version %u of '%s' is not pending", want, path)
			    : reply_error(ret_body, 409, "no_pending", "'%s' has no pending version", path);
	}
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, req, r, "promote");
	r = reply(ret_body, 200, json_pack("{s:s, s:i, s:o}", "path", path, "version", (json_int_t)head.current_version,
					   "previous_version", json_version_or_null(head.previous_version)));
	store_secret_clear(&head);
	return r;
}

enum secrets_op {
	OP_GET = 1,
	OP_VERSIONS,
	OP_LIST,
	OP_PUT,
	OP_DELETE,
	OP_ROLLBACK,
	OP_PROMOTE,
};

/* Works out which secrets operation a request is, and on which path, so
 * the access decision can be made before any handler runs. 0, or writes a
 * 400/405 reply and returns its status. Sets *ret_cap. */
int secrets_classify(struct call *c, unsigned *ret_cap, json_t **ret_body)
{
	const char *method = c->req->method, *rest = c->rest, *why;
	size_t n;

	/* rest is what follows "/v1/secrets": "" or "/<path>". */
	if (*rest == '/')
		rest++;
	n = strlen(rest);
	if (n >= sizeof(c->path))
		return reply_error(ret_body, 400, "bad_path", "path too long");
	memcpy(c->path, rest, n + 1);

	if (streq(method, "GET") && flag_set(c->req, "list")) {
		if (n > 0 && (why = path_check(c->path, 1)))
			return reply_error(ret_body, 400, "bad_path", "invalid prefix: %s", why);
		c->op = OP_LIST;
		c->action = "secret.list";
		*ret_cap = RBAC_LIST;
		return 0;
	}
	if (streq(method, "POST")) {
		static const char rollback[] = "/rollback", promote[] = "/promote";
		size_t s1 = sizeof(rollback) - 1, s2 = sizeof(promote) - 1;
		if (n > s1 && streq(c->path + n - s1, rollback)) {
			c->path[n - s1] = '\0';
			c->op = OP_ROLLBACK;
		} else if (n > s2 && streq(c->path + n - s2, promote)) {
			c->path[n - s2] = '\0';
			c->op = OP_PROMOTE;
		} else
			return reply_error(ret_body, 405, "method_not_allowed",
					   "POST is only for .../rollback and .../promote under /v1/secrets");
	}
	if ((why = path_check(c->path, 2)))
		return reply_error(ret_body, 400, "bad_path", "invalid path: %s", why);
	if (streq(method, "GET")) {
		c->op = server_request_query(c->req, "versions") ? OP_VERSIONS : OP_GET;
		c->action = c->op == OP_VERSIONS ? "secret.versions" : "secret.read";
		*ret_cap = RBAC_READ;
	} else if (streq(method, "PUT")) {
		c->op = OP_PUT;
		c->action = "secret.write";
		*ret_cap = RBAC_WRITE;
	} else if (streq(method, "DELETE")) {
		c->op = OP_DELETE;
		c->action = "secret.delete";
		*ret_cap = RBAC_DELETE;
	} else if (streq(method, "POST")) {
		c->action = c->op == OP_ROLLBACK ? "secret.rollback" : "secret.promote";
		*ret_cap = RBAC_WRITE;
	} else
		return reply_error(ret_body, 405, "method_not_allowed", "%s is not allowed on secrets", method);
	return 0;
}

int h_secrets(struct api *a, struct call *c, json_t **ret_body)
{
	switch (c->op) {
	case OP_LIST:
		return secret_list(a, c, c->path, ret_body);
	case OP_VERSIONS:
		return secret_versions(a, c->req, c->path, ret_body);
	case OP_GET:
		return secret_get(a, c->req, c->path, ret_body);
	case OP_PUT:
		return secret_put(a, c, c->path, ret_body);
	case OP_DELETE:
		return secret_delete(a, c, c->path, ret_body);
	case OP_ROLLBACK:
		return secret_rollback(a, c, c->path, ret_body);
	case OP_PROMOTE:
		return secret_promote(a, c, c->path, ret_body);
	}
	return reply_internal(ret_body, c->req, -EINVAL, "unclassified secrets request");
}

