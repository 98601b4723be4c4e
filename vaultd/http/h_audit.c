/* vaultd/http/h_audit.c: GET /v1/audit (query with filters and a cursor)
 * and GET /v1/audit/verify. */
#include <errno.h>
#include <stdlib.h>
#include "common/json.h"
#include "common/log.h"
#include "common/number.h"
#include "vaultd/audit/audit.h"
#include "vaultd/audit/recorder.h"
#include "vaultd/http/api_internal.h"
#include "vaultd/keys/keyring.h"

static int parse_i64_param(const char *s, int64_t *ret)
{
	uint64_t v;

	if (number_parse_u64(s, 0, INT64_MAX, &v) < 0)
		return -EINVAL;
	*ret = (int64_t)v;
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

int h_audit(struct api *a, struct call *c, json_t **ret_body)
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

int h_audit_verify(struct api *a, struct call *c, json_t **ret_body)
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

