/* vaultd/http/api_internal.h: what the router, the handlers (h_*.c, api_*.c) and identity.c share.
 * Not a public interface: the route table in api.c is the only caller.
 */
#pragma once
#include <pthread.h>
#include <stdbool.h>
#include "common/path.h"
#include "common/secret.h"
#include "vaultd/http/api.h"
#include "vaultd/access/identity.h"
#include "vaultd/access/principal.h"
#include "vaultd/access/rbac.h"
#include "vaultd/store/store.h"


struct auditor;
struct vault;
struct rotator;

struct api {
	struct api_config cfg;
	struct vault *v;                /* the core: state, session epoch (core/vault.h) */
	/* The core's parts, borrowed: the handlers' shorthand. */
	struct store *store;
	struct keyring *keyring;
	struct rotator *rot;
	struct auditor *auditor;
};

/* One request as the route table sees it. */
struct call {
	const struct server_request *req;
	const char *rest;               /* the path after the route's prefix */
	struct principal who;
	char path[PATH_MAX_LEN + 16];   /* secrets: validated path or list prefix */
	int op;                         /* secrets: which operation */
	/* The audit record this request will leave. */
	const char *action;
	unsigned cap;                   /* capability asked, 0 if none */
	char principal[80];             /* set by identity or by the auth handlers */
	char detail[160];               /* why, for refusals and failures; never secret */
	bool audited;                   /* the handler recorded it with its own change */
	int ok_status;                  /* what commit_audited() records; 0 means 200 */
	bool handler_decides;           /* classify(): any principal passes, the handler checks */
	bool audit_refused;             /* a record of it failed on the mirror (refuse policy) */
	bool auth_failed;               /* credentials were presented and proved wrong: the
					 * record says "failed" (an authentication failure),
					 * not "denied" (a policy refusal) */
};

/* A request as a domain callback's userdata. */
struct api_call {
	struct api *a;
	struct call *c;
};

/* A domain commit hook (secrets.h, accounts.h): commit_audited() for the
 * request in userdata (a struct api_call). */
int api_call_commit(void *userdata, struct store_tx **tx);

/* Appends c's audit record for status: in tx when given (the caller's write
 * transaction, committed with the change), else in a transaction of its own.
 * Never fails silently: the caller must refuse the request if this fails. */
int audit_call(struct api *a, struct call *c, struct store_tx *tx, int status);
/* The record of an effect the request is about to have outside the
 * database (result "attempt", status 202, this detail), in tx, before it
 * happens; the request's own record still follows. */
int audit_call_attempt(struct api *a, struct call *c, struct store_tx *tx, const char *detail);
/* c->principal, filled as the audit record names it ("user:alice",
 * "service:sync", "uid:1000") if the handler has not set it. */
const char *call_principal(struct call *c);
/* For a handler whose effect lies outside the database (unlock, a backup
 * file): records its success (status 200) now, in a transaction of its own.
 * 0; or the record failed, and a 503 audit_unavailable reply is written and
 * its status returned: the caller must undo the effect. */
int audit_effect(struct api *a, struct call *c, json_t **ret_body);
/* For a handler whose change succeeded in *tx: records it (status 200) in
 * the same transaction and commits both (*tx becomes NULL). On failure
 * nothing is committed; the caller's store_tx_end() rolls back. */
int commit_audited(struct api *a, struct call *c, struct store_tx **tx);

/* An audit record of the daemon's own doing (rotation worker, retention),
 * principal "system:vaultd", in tx, mirrored like every other record. */
int audit_system(struct api *a, struct store_tx *tx, const char *action, const char *path, const char *result,
		 const char *detail);
/* init's record, the first of the chain: c's (or, for vaultd --dev with c
 * NULL, the daemon's own "sys.init"), anchored under the new root key's
 * audit key, in init's transaction. */
int audit_init_record(struct api *a, struct call *c, struct store_tx *tx, const struct secret *audit_key);
/* Audit retention ([audit] retain_days): at most once a day, deletes the
 * records older than that and appends a checkpoint record ("audit.prune")
 * carrying the hash of the last one deleted, so the rest still verifies.
 * Worker thread only; needs the vault unlocked. */
void audit_prune_if_due(struct api *a);

/* h_rotate.c: the rotation routes. */
json_t *rotation_json(const struct store_rotation *r);
/* Classifies a /v1/rotate request (capability and path) before access is
 * decided. 0, or writes a 404/405 reply and returns its status. */
int rotate_classify(struct call *c, unsigned *ret_cap, json_t **ret_body);
int h_rotate(struct api *a, struct call *c, json_t **ret_body);
/* router.c: the route table's answer for (method, path) without running
 * anything: 0 with the row's pattern and action (NULL where the route's
 * classify function decides it), or 400 (a {name} or {id} capture that is
 * not valid), 404 or 405. For tests and fuzzing. */
int router_lookup(const char *method, const char *path, const char **ret_pattern, const char **ret_action);
/* h_secrets.c: the /v1/secrets routes. secrets_classify() decides the
 * operation, capability and path before access is decided. */
int secrets_classify(struct call *c, unsigned *ret_cap, json_t **ret_body);
int h_secrets(struct api *a, struct call *c, json_t **ret_body);
/* h_audit.c */
int h_audit(struct api *a, struct call *c, json_t **ret_body);
int h_audit_verify(struct api *a, struct call *c, json_t **ret_body);
/* h_backup.c */
int h_backup(struct api *a, struct call *c, json_t **ret_body);

/* identity.c */
/* Fills c->who from the bearer token or the uid's service binding. 0 (kind
 * may be NONE), or writes a 401/5xx reply and returns its status. */
int identity_resolve(struct api *a, struct call *c, json_t **ret_body);

/* h_accounts.c: a user row sealed for a write (the passphrase change in
 * h_auth.c). -EACCES while locked. */
int account_seal_user(struct api *a, struct store_user *u);
/* h_auth.c and h_accounts.c: the handlers of the people-and-access routes. */
int h_init(struct api *a, struct call *c, json_t **ret_body);
int h_unlock(struct api *a, struct call *c, json_t **ret_body);
int h_login(struct api *a, struct call *c, json_t **ret_body);
int h_logout(struct api *a, struct call *c, json_t **ret_body);
int h_self(struct api *a, struct call *c, json_t **ret_body);
int h_passphrase(struct api *a, struct call *c, json_t **ret_body);
int h_users(struct api *a, struct call *c, json_t **ret_body);
int h_roles(struct api *a, struct call *c, json_t **ret_body);
int h_services(struct api *a, struct call *c, json_t **ret_body);

/* api.c: replies and strict input, shared by every handler. */
int reply(json_t **ret_body, int status, json_t *body);
_printf_(4, 5) int reply_error(json_t **ret_body, int status, const char *code, const char *fmt, ...);
int reply_invalid(json_t **ret_body, json_t *fields, const char *message);
int reply_internal(json_t **ret_body, const struct server_request *req, int r, const char *what);
int reply_store_busy_or_internal(json_t **ret_body, const struct server_request *req, int r, const char *what);
int reply_hsm_error(json_t **ret_body, const struct server_request *req, int r, const char *what);
/* A domain error as its status, code and message (http/reply.c, the one
 * table); fmt (may be NULL) names the case better than the table's
 * sentence. An error the table does not know is a 500, logged with what. */
_printf_(5, 6) int reply_errno(json_t **ret_body, const struct server_request *req, int r, const char *what,
			       const char *fmt, ...);
int reply_audit_unavailable(json_t **ret_body);
/* 507 insufficient_storage: the database's filesystem is full (-ENOSPC). */
int reply_insufficient_storage(json_t **ret_body);
/* reply_audit_unavailable(), or 507 when the record failed for a full disk. */
int reply_audit_unavailable_errno(json_t **ret_body, int r);
json_t *json_time(int64_t t);
int parse_body(const struct server_request *req, const char *const *allowed, json_t **ret_obj, json_t **ret_body);
int check_query(const struct server_request *req, const char *const *allowed, json_t **ret_body);
int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *ret);
bool flag_set(const struct server_request *req, const char *key);
int json_to_secret(const json_t *v, struct secret **ret);
