/* vaultd/http/reply.c: replies, and the one table where a domain error
 * (-errno or -VLT_E_*) becomes an HTTP status, an error code and a message
 * (docs/api.md, "Errors"). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include "common/err.h"
#include "common/keyprov.h"
#include "common/log.h"
#include "vaultd/http/api_internal.h"

int reply(json_t **ret_body, int status, json_t *body)
{
	*ret_body = body;
	return status;
}

_printf_(4, 5) int reply_error(json_t **ret_body, int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return reply(ret_body, status, server_error_json(code, msg));
}

int reply_invalid(json_t **ret_body, json_t *fields, const char *message)
{
	json_t *e = server_error_json("invalid", message);

	json_object_set_new(e, "fields", fields);
	return reply(ret_body, 400, e);
}

int reply_internal(json_t **ret_body, const struct server_request *req, int r, const char *what)
{
	if (r == -ENOSPC) {
		/* The store logged the full disk, once for many requests. */
		log_debug("%s (request %s): the database's disk is full", what, req->request_id);
		return reply_insufficient_storage(ret_body);
	}
	/* Logged once here, where the failure is decided; the client gets the
	 * request id to quote, not our internals. */
	log_error_errno(r, "%s (request %s)", what, req->request_id);
	return reply_error(ret_body, 500, "internal", "internal error; see the daemon log for request %s",
			   req->request_id);
}

int reply_store_busy_or_internal(json_t **ret_body, const struct server_request *req, int r,
					const char *what)
{
	if (r == -EBUSY)
		return reply_error(ret_body, 503, "busy", "the database is busy; retry");
	return reply_internal(ret_body, req, r, what);
}

int reply_insufficient_storage(json_t **ret_body)
{
	return reply_error(ret_body, 507, "insufficient_storage",
			   "the disk of the database is full: nothing was changed; retry once space is freed");
}

int reply_audit_unavailable_errno(json_t **ret_body, int r)
{
	return r == -ENOSPC ? reply_insufficient_storage(ret_body) : reply_audit_unavailable(ret_body);
}

int reply_audit_unavailable(json_t **ret_body)
{
	return reply_error(ret_body, 503, "audit_unavailable",
			   "the audit log cannot be written; the request was refused");
}

json_t *json_time(int64_t t)
{
	char buf[32];
	struct tm tm;
	time_t tt = (time_t)t;

	if (!gmtime_r(&tt, &tm))
		return json_null();
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

int reply_hsm_error(json_t **ret_body, const struct server_request *req, int r, const char *what)
{
	/* HSM trouble is the operator's to fix: say which and what (a path, a
	 * label, a version; never a PIN), without internals. */
	const char *d = keyprov_error_detail();

	log_error("%s: %s%s%s (request %s)", what, vlt_strerror(r), *d ? ": " : "", d, req->request_id);
	if (r == -VLT_E_HSM_TIMEOUT)
		return reply_error(ret_body, 503, "hsm_unavailable", "the HSM did not answer in time%s%s",
				   *d ? ": " : "", d);
	if (-r > VLT_E_FIRST && -r < VLT_E_LAST)
		return reply_error(ret_body, 503, "hsm_unavailable", "%s%s%s", vlt_strerror(r), *d ? ": " : "", d);
	return reply_internal(ret_body, req, r, what);
}

/* The one place an errno becomes a status. Errors not listed here are the
 * server's own trouble: 500, logged with the request id. */
static const struct errno_reply {
	int err;
	int status;
	const char *code;
	const char *msg;
} errno_replies[] = {
	{ -EACCES, 503, "locked", "the vault is locked; run 'vaultctl unlock'" },
	{ -EBUSY, 503, "busy", "the database is busy; retry" },
	{ -ENOENT, 404, "not_found", "not found" },
	{ -EEXIST, 409, "conflict", "it exists already" },
	{ -EINVAL, 400, "bad_request", "invalid request" },
	{ -VLT_E_CAS, 409, "conflict", "check-and-set failed: the credential changed" },
	{ -VLT_E_TYPE, 409, "type_mismatch", "a credential's type cannot change (destroy it first)" },
	{ -VLT_E_DELETED, 404, "not_found", "the secret is deleted" },
	{ -VLT_E_VERSIONS, 409, "conflict", "the secret has run out of version numbers" },
};

_printf_(5, 6) int reply_errno(json_t **ret_body, const struct server_request *req, int r, const char *what,
			       const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (-r > VLT_E_FIRST && -r < VLT_E_LAST)
		return reply_hsm_error(ret_body, req, r, what);
	for (size_t i = 0; i < ELEMENTSOF(errno_replies); i++) {
		const struct errno_reply *e = &errno_replies[i];
		if (e->err != r)
			continue;
		if (fmt) {
			va_start(ap, fmt);
			vsnprintf(msg, sizeof(msg), fmt, ap);
			va_end(ap);
		}
		return reply_error(ret_body, e->status, e->code, "%s", fmt ? msg : e->msg);
	}
	return reply_internal(ret_body, req, r, what);
}
