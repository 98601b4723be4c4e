/* vaultd/http/api.h: the HTTP API of ARCHITECTURE.md section 5 (http/router.c).
 *
 * One route table decides, for every request and before any handler runs:
 * route (404/405), vault state (503 while uninitialised or locked), and
 * access (403). Handlers then parse strictly (unknown fields and query
 * parameters are 400) and answer {"error", "message"[, "fields"]} on failure.
 * Callers are users (bearer token from login) or services (a uid an admin
 * bound); roles decide (rbac.h), default deny.
 *
 * api_handle() is a server_handler_fn and runs on server worker threads.
 */
#pragma once
#include <sys/types.h>
#include "vaultd/access/auth.h"
#include "vaultd/http/server.h"

struct api_config {
	uid_t daemon_uid;
	struct auth_params argon2;
	unsigned session_ttl;           /* seconds a login token lives */
	unsigned max_failures;          /* failed authentications before 429 ... */
	unsigned lockout_seconds;       /* ... within and for this long */
	unsigned keep_versions;         /* versions kept per secret */
	uint64_t kek_max_wraps;         /* a write at this count queues the KEK's rotation */
};

struct api;
struct vault;

/* The HTTP layer over a vault core (core/vault.h), which it borrows. */
int api_new(const struct api_config *cfg, struct vault *v, struct api **ret);
void api_free(struct api *a);                  /* NULL-safe */
int api_handle(void *userdata, const struct server_request *req, json_t **ret_body);

bool api_is_initialized(struct api *a);
