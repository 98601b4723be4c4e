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
#define METADATA_MAX 8192
#define METADATA_KEYS_MAX 32
#define LIST_MAX 10000

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
	char *end;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
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
	uint64_t failures;
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
	return reply(ret_body, 200,
		     json_pack("{s:I, s:o, s:I, s:b, s:I}", "audit_mirror_failures", (json_int_t)failures,
			       "audit_mirror_last_failure", last ? json_time(last) : json_null(),
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
static int commit_request(void *userdata, struct store_tx **tx)
{
	struct api_call *ac = userdata;

	return commit_audited(ac->a, ac->c, tx);
}

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

	r = secrets_write(&env, &w, commit_request, &ac, &out);
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
static int load_version(struct api *a, const struct server_request *req, struct store_tx *tx,
			const struct store_secret *head, uint32_t version, struct secret **ret_plain,
			int64_t *ret_created, json_t **ret_body)
{
	struct store_version v = {0};
	int r;

	r = store_version_get(tx, head->path, version, &v);
	if (r == -ENOENT)
		return reply_error(ret_body, 404, "not_found", "'%s' has no version %u", head->path, version);
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, req, r, "read version");
	r = keyring_open(a->keyring, tx, head->path, &v, ret_plain);
	*ret_created = v.created_at;
	store_version_clear(&v);
	if (r == -ENOENT)
		return reply_error(ret_body, 404, "not_found", "version %u of '%s' was destroyed", version, head->path);
	if (r == -EACCES)
		return reply_error(ret_body, 503, "locked", "the vault is locked");
	if (r < 0)
		/* -EBADMSG here means the row was tampered with or moved. */
		return reply_internal(ret_body, req, r, "open secret");
	return 0;
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
	_cleanup_secret_ struct secret *plain = NULL;
	struct store_secret head = {0};
	struct store_tx *tx = NULL;
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

	r = store_read_begin(a->store, &tx);
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, req, r, "begin read");
	r = store_secret_get(tx, path, &head);
	if (r == -ENOENT || (r == 0 && head.deleted_at)) {
		status = reply_error(ret_body, 404, "not_found", "no secret at '%s'", path);
		goto out;
	}
	if (r < 0) {
		status = reply_store_busy_or_internal(ret_body, req, r, "read secret");
		goto out;
	}
	if (stage && streq(stage, "pending"))
		version = head.pending_version;
	else if (stage && streq(stage, "previous"))
		version = head.previous_version;
	else if (!vs)
		version = head.current_version;
	if (!version) {
		status = reply_error(ret_body, 404, "not_found", "'%s' has no %s version", path, stage);
		goto out;
	}
	status = load_version(a, req, tx, &head, version, &plain, &created, ret_body);
	if (status)
		goto out;

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
	store_tx_end(tx);
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
	struct list_ctx l = { .who = &c->who };
	struct store_tx *tx = NULL;
	int r;

	if ((r = check_query(req, q, ret_body)))
		return r;
	r = store_read_begin(a->store, &tx);
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, req, r, "begin read");
	l.arr = json_array();
	r = store_secret_list(tx, prefix, LIST_MAX, list_one, &l);
	store_tx_end(tx);
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
	struct store_secret head = {0};
	struct store_tx *tx = NULL;
	struct versions_ctx c = {0};
	int r, status;

	if ((r = check_query(req, q, ret_body)))
		return r;
	r = store_read_begin(a->store, &tx);
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, req, r, "begin read");
	r = store_secret_get(tx, path, &head);
	if (r == -ENOENT) {
		status = reply_error(ret_body, 404, "not_found", "no secret at '%s'", path);
		goto out;
	}
	if (r < 0) {
		status = reply_store_busy_or_internal(ret_body, req, r, "read secret");
		goto out;
	}
	c.arr = json_array();
	c.head = &head;
	r = store_version_list(tx, path, versions_one, &c);
	if (r < 0) {
		json_decref(c.arr);
		status = reply_store_busy_or_internal(ret_body, req, r, "list versions");
		goto out;
	}
	status = reply(ret_body, 200, json_pack("{s:s, s:i, s:o, s:o, s:b, s:o}", "path", path, "current_version",
					       (json_int_t)head.current_version, "pending_version",
					       json_version_or_null(head.pending_version), "previous_version",
					       json_version_or_null(head.previous_version), "deleted", head.deleted_at != 0,
					       "versions", c.arr));
out:
	store_tx_end(tx);
	store_secret_clear(&head);
	return status;
}

static int secret_delete(struct api *a, struct call *c, const char *path, json_t **ret_body)
{
	const struct server_request *req = c->req;
	static const char *const q[] = { "destroy", NULL };
	struct store_tx *tx = NULL;
	bool destroy;
	int r;

	if ((r = check_query(req, q, ret_body)))
		return r;
	destroy = flag_set(req, "destroy");
	r = store_write_begin(a->store, &tx);
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, req, r, "begin write");
	if (destroy)
		r = store_secret_destroy(tx, path);
	else
		r = store_secret_soft_delete(tx, path, time(NULL));
	if (r >= 0 && destroy)
		c->action = "secret.destroy";
	if (r >= 0)
		r = commit_audited(a, c, &tx);
	store_tx_end(tx);
	if (r == -ENOENT)
		return reply_error(ret_body, 404, "not_found", "no secret at '%s'", path);
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, req, r, destroy ? "destroy secret" : "delete secret");
	if (destroy) {
		/* Move the freed pages out of the WAL too, so the wrapped DEKs are
		 * gone from disk, not just unreferenced. */
		r = store_checkpoint(a->store);
		if (r < 0)
			log_warning_errno(r, "checkpoint after destroying '%s'", path);
		log_info("destroyed '%s'", path);
	}
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
	struct store_secret head = {0};
	struct store_tx *tx = NULL;
	json_t *ver, *cas;
	int64_t created;
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
	r = store_read_begin(a->store, &tx);
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, req, r, "begin read");
	r = store_secret_get(tx, path, &head);
	if (r == -ENOENT || (r == 0 && head.deleted_at)) {
		status = reply_error(ret_body, 404, "not_found", "no secret at '%s'", path);
		goto out;
	}
	if (r < 0) {
		status = reply_store_busy_or_internal(ret_body, req, r, "read secret");
		goto out;
	}
	status = load_version(a, req, tx, &head, (uint32_t)json_integer_value(ver), &plain, &created, ret_body);
	if (status)
		goto out;
	type = strdup(head.type);
	store_tx_end(TAKE_PTR(tx));
	if (!type) {
		status = reply_internal(ret_body, req, -ENOMEM, "rollback");
		goto out;
	}
	status = write_version(a, c, path, type, NULL, plain, cas ? json_integer_value(cas) : -1,
			       (uint32_t)json_integer_value(ver), false, ret_body);
	if (status == 200)
		json_object_set_new(*ret_body, "rolled_back_from", json_integer(json_integer_value(ver)));
out:
	store_tx_end(tx);
	store_secret_clear(&head);
	return status;
}

static int secret_promote(struct api *a, struct call *c, const char *path, json_t **ret_body)
{
	const struct server_request *req = c->req;
	static const char *const fields[] = { "version", NULL };
	static const char *const q[] = { NULL };
	_cleanup_json_ json_t *body = NULL;
	struct store_secret head = {0};
	struct store_tx *tx = NULL;
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
	r = store_write_begin(a->store, &tx);
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, req, r, "begin write");
	r = store_secret_promote(tx, path, want, time(NULL));
	if (r >= 0)
		r = store_secret_get(tx, path, &head);
	if (r >= 0)
		r = commit_audited(a, c, &tx);
	store_tx_end(tx);
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
static int secrets_classify(struct call *c, unsigned *ret_cap, json_t **ret_body)
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

static int h_secrets(struct api *a, struct call *c, json_t **ret_body)
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

/* ---- routing and the access decision ---- */

enum {
	ROUTE_PREFIX = 1u << 0,         /* path is a prefix: "" or "/..." may follow */
	ROUTE_WHEN_UNINIT = 1u << 1,    /* answers before init */
	ROUTE_WHEN_LOCKED = 1u << 2,    /* answers while locked */
	ROUTE_PUBLIC = 1u << 3,         /* no principal needed (the handler checks credentials) */
	ROUTE_ANY_PRINCIPAL = 1u << 4,  /* any user or service, no capability */
	ROUTE_CLASSIFY = 1u << 5,       /* capability and path from the route's classify() */
};

typedef int (*handler_fn)(struct api *a, struct call *c, json_t **ret_body);
typedef int (*classify_fn)(struct call *c, unsigned *ret_cap, json_t **ret_body);

static int h_audit(struct api *a, struct call *c, json_t **ret_body);
static int h_audit_verify(struct api *a, struct call *c, json_t **ret_body);

static const struct route {
	const char *methods;            /* space-separated */
	const char *path;
	unsigned flags;
	unsigned cap;                   /* asked on "*" (no path) unless ROUTE_SECRETS */
	handler_fn fn;
	const char *action;             /* audit action; "<kind>." + verb for management routes */
	classify_fn classify;           /* ROUTE_CLASSIFY: sets c->path (empty: no path), cap, action */
} routes[] = {
	{ "GET", "/v1/sys/health", ROUTE_WHEN_UNINIT | ROUTE_WHEN_LOCKED | ROUTE_PUBLIC, 0, h_health, NULL, NULL },
	{ "POST", "/v1/sys/init", ROUTE_WHEN_UNINIT | ROUTE_WHEN_LOCKED | ROUTE_PUBLIC, 0, h_init, "sys.init", NULL },
	{ "POST", "/v1/sys/unlock", ROUTE_WHEN_LOCKED | ROUTE_PUBLIC, 0, h_unlock, "sys.unlock", NULL },
	{ "POST", "/v1/sys/lock", 0, RBAC_ADMIN, h_lock, "sys.lock", NULL },
	{ "POST", "/v1/sys/backup", 0, RBAC_ADMIN, h_backup, "sys.backup", NULL },
	/* While locked too: "locked" is what monitoring most wants to see. */
	{ "GET", "/v1/sys/metrics", ROUTE_WHEN_LOCKED, RBAC_AUDIT, h_metrics, "sys.metrics", NULL },
	{ "POST", "/v1/auth/login", ROUTE_PUBLIC, 0, h_login, "auth.login", NULL },
	{ "POST", "/v1/auth/logout", ROUTE_ANY_PRINCIPAL, 0, h_logout, "auth.logout", NULL },
	{ "GET", "/v1/auth/self", ROUTE_ANY_PRINCIPAL, 0, h_self, "auth.self", NULL },
	{ "POST", "/v1/auth/passphrase", ROUTE_ANY_PRINCIPAL, 0, h_passphrase, "auth.passphrase", NULL },
	{ "GET", "/v1/types", ROUTE_ANY_PRINCIPAL, 0, h_types, "types.list", NULL },
	{ "GET", "/v1/audit/verify", 0, RBAC_AUDIT, h_audit_verify, "audit.verify", NULL },
	{ "GET", "/v1/audit", 0, RBAC_AUDIT, h_audit, "audit.read", NULL },
	{ "GET PUT DELETE POST", "/v1/users", ROUTE_PREFIX, RBAC_ADMIN, h_users, "user.", NULL },
	{ "GET PUT DELETE", "/v1/roles", ROUTE_PREFIX, RBAC_ADMIN, h_roles, "role.", NULL },
	{ "GET PUT DELETE", "/v1/services", ROUTE_PREFIX, RBAC_ADMIN, h_services, "service.", NULL },
	/* Status and jobs while locked too (h_rotate refuses the rest). */
	{ "GET POST", "/v1/rotate", ROUTE_PREFIX | ROUTE_CLASSIFY | ROUTE_WHEN_LOCKED, 0, h_rotate, NULL,
	  rotate_classify },
	{ "GET PUT DELETE POST", SECRETS_PREFIX, ROUTE_PREFIX | ROUTE_CLASSIFY, 0, h_secrets, NULL, secrets_classify },
};

static bool method_in(const char *list, const char *m)
{
	size_t n = strlen(m);

	for (const char *p = list; *p;) {
		const char *e = strchrnul(p, ' ');
		if ((size_t)(e - p) == n && strncmp(p, m, n) == 0)
			return true;
		p = *e ? e + 1 : e;
	}
	return false;
}

static const struct route *route_find(const char *path, const char **ret_rest)
{
	for (size_t i = 0; i < ELEMENTSOF(routes); i++) {
		const struct route *rt = &routes[i];
		size_t n = strlen(rt->path);

		if (rt->flags & ROUTE_PREFIX) {
			if (strncmp(path, rt->path, n) == 0 && (path[n] == '\0' || path[n] == '/')) {
				*ret_rest = path + n;
				return rt;
			}
		} else if (streq(path, rt->path)) {
			*ret_rest = path + n;
			return rt;
		}
	}
	return NULL;
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
		return reply_error(ret_body, 403, "forbidden", "%s '%s' may not %s here",
				   w->kind == PRINCIPAL_USER ? "user" : "service", w->name, rbac_cap_name(cap));
	}
	return 0;
}

/* "user." + the verb the method means. */
static const char *management_action(const struct route *rt, const struct server_request *req)
{
	static const char *const users[] = { "user.read", "user.write", "user.delete", "user.reset_mfa" };
	static const char *const roles[] = { "role.read", "role.write", "role.delete", "role.write" };
	static const char *const services[] = { "service.read", "service.write", "service.delete", "service.write" };
	const char *const *t = rt->fn == h_users ? users : rt->fn == h_roles ? roles : services;

	if (streq(req->method, "GET"))
		return t[0];
	if (streq(req->method, "PUT"))
		return t[1];
	if (streq(req->method, "DELETE"))
		return t[2];
	return t[3];
}

int audit_effect(struct api *a, struct call *c, json_t **ret_body)
{
	int r = audit_call(a, c, NULL, 200);

	if (r >= 0)
		return 0;
	log_error_errno(r, "cannot write the audit record of request %s: undoing it", c->req->request_id);
	return reply_audit_unavailable(ret_body);
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
			: status < 300 ? "allowed" : (status == 401 || status == 403 || status == 429) ? "denied" : "failed",
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

static int parse_i64_param(const char *s, int64_t *ret)
{
	char *end;
	long long v;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*ret = v;
	return 0;
}

struct audit_page {
	json_t *arr;
	int64_t last_id;
};

static int audit_one(const struct store_audit *r, void *userdata)
{
	struct audit_page *p = userdata;

	p->last_id = r->id;
	return json_array_append_new(p->arr, audit_record_json(r)) < 0 ? -ENOMEM : 0;
}

static int h_audit(struct api *a, struct call *c, json_t **ret_body)
{
	static const char *const q[] = { "since", "until", "principal", "path", "action", "result", "limit",
					 "order", "cursor", NULL };
	const struct server_request *req = c->req;
	struct store_audit_filter f = { .limit = 100 };
	struct audit_page page = {0};
	struct store_tx *tx = NULL;
	const char *v;
	uint32_t limit;
	int r;

	if ((r = check_query(req, q, ret_body)))
		return r;
	if (((v = server_request_query(req, "since")) && parse_i64_param(v, &f.since) < 0) ||
	    ((v = server_request_query(req, "until")) && parse_i64_param(v, &f.until) < 0) ||
	    ((v = server_request_query(req, "cursor")) && parse_i64_param(v, &f.after_id) < 0))
		return reply_error(ret_body, 400, "bad_request", "since, until and cursor must be non-negative integers");
	if ((v = server_request_query(req, "limit"))) {
		if (parse_u32(v, 1, 1000, &limit) < 0)
			return reply_error(ret_body, 400, "bad_request", "limit must be 1 to 1000");
		f.limit = limit;
	}
	if ((v = server_request_query(req, "order"))) {
		if (!streq(v, "asc") && !streq(v, "desc"))
			return reply_error(ret_body, 400, "bad_request", "order must be asc or desc");
		f.descending = streq(v, "desc");
	}
	f.principal = server_request_query(req, "principal");
	f.path_prefix = server_request_query(req, "path");
	f.action = server_request_query(req, "action");
	f.result = server_request_query(req, "result");

	r = store_read_begin(a->store, &tx);
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, req, r, "begin read");
	page.arr = json_array();
	r = store_audit_query(tx, &f, audit_one, &page);
	store_tx_end(tx);
	if (r == -EINVAL) {
		json_decref(page.arr);
		return reply_error(ret_body, 400, "bad_request", "invalid audit filter");
	}
	if (r < 0) {
		json_decref(page.arr);
		return reply_store_busy_or_internal(ret_body, req, r, "read audit");
	}
	return reply(ret_body, 200,
		     json_pack("{s:o, s:o}", "records", page.arr, "next_cursor",
			       json_array_size(page.arr) == f.limit ? json_integer(page.last_id) : json_null()));
}

static int h_audit_verify(struct api *a, struct call *c, json_t **ret_body)
{
	static const char *const q[] = { NULL };
	_cleanup_secret_ struct secret *mac_key = NULL;
	struct audit_verify v;
	struct store_tx *tx = NULL;
	json_t *out;
	int r;

	if ((r = check_query(c->req, q, ret_body)))
		return r;
	r = keyring_audit_key(a->keyring, &mac_key);
	if (r < 0)
		return reply_error(ret_body, 503, "locked", "the vault is locked; run 'vaultctl unlock'");
	r = store_read_begin(a->store, &tx);
	if (r >= 0) {
		r = audit_verify(tx, mac_key, &v);
		store_tx_end(tx);
	}
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, c->req, r, "verify audit");
	if (!v.ok)
		log_error("audit chain verification failed: %s", v.reason);
	out = json_pack("{s:b, s:I, s:I}", "ok", v.ok, "records", (json_int_t)v.records, "anchored_through",
			(json_int_t)v.anchored_through);
	if (!v.ok) {
		json_object_set_new(out, "first_broken", v.first_broken ? json_integer(v.first_broken) : json_null());
		json_object_set_new(out, "reason", json_string(v.reason));
	}
	return reply(ret_body, 200, out);
}

static int dispatch(struct api *a, struct call *c, const struct route *rt, json_t **ret_body)
{
	const struct server_request *req = c->req;
	unsigned cap;
	int status;

	if (!method_in(rt->methods, req->method))
		return reply_error(ret_body, 405, "method_not_allowed", "%s is not allowed here; allowed: %s",
				   req->method, rt->methods);
	if (!(rt->flags & ROUTE_WHEN_UNINIT) && !api_is_initialized(a))
		return reply_error(ret_body, 503, "uninitialized", "the vault is not initialized; run 'vaultctl init'");
	/* Locking revoked every session token: one presented now says the
	 * vault is locked, which tells the user more than "log in again"
	 * (that cannot work until someone unlocks). */
	if (!keyring_is_unlocked(a->keyring) &&
	    (!(rt->flags & ROUTE_WHEN_LOCKED) || (!(rt->flags & ROUTE_PUBLIC) && req->authorization)))
		return reply_error(ret_body, 503, "locked", "the vault is locked; run 'vaultctl unlock'");
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

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

int api_handle(void *userdata, const struct server_request *req, json_t **ret_body)
{
	struct api *a = userdata;
	const struct route *rt;
	struct call c = { .req = req };
	int status, r;

	rt = route_find(req->path, &c.rest);
	if (!rt) {
		json_t *ignored = NULL;
		/* Only for the record: who asked for a route that does not exist. */
		if (identity_resolve(a, &c, &ignored))
			json_decref(ignored);
		status = reply_error(ret_body, 404, "not_found", "no such API route");
	}
	else {
		c.action = rt->action;
		if (rt->action && rt->action[strlen(rt->action) - 1] == '.') {
			c.action = management_action(rt, req);
			if (*c.rest)    /* which user, role or service: a name, never a secret */
				snprintf(c.detail, sizeof(c.detail), "%s%.64s", rt->path + 4, c.rest);
		}
		status = dispatch(a, &c, rt, ret_body);
	}
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
		log_error_errno(r, "cannot write the audit record of request %s: refusing it", req->request_id);
		json_decref(*ret_body);
		*ret_body = NULL;
		status = reply_audit_unavailable(ret_body);
	}
	principal_clear(&c.who);
	return status;
}

/* ---- audit retention ---- */

void audit_prune_if_due(struct api *a)
{
	auditor_prune_if_due(a->auditor);
}
