/* vaultctl/client.h: requests to vaultd over its Unix socket, with libcurl.
 * A request body is dumped by jansson's wiping allocator and the reply is
 * collected into a struct secret, so credential values and passphrases do
 * not linger in ordinary heap after the call. Connection failures are told
 * apart (no socket, refused, permission) and reported on stderr.
 */
#pragma once
#include <jansson.h>
#include "vaultctl/ctx.h"

enum {
	API_AUTH = 1 << 0,      /* send the bearer token, if there is one */
	API_QUIET = 1 << 1,     /* do not report HTTP errors (transport errors still are) */
	API_CREDENTIALS = 1 << 2, /* the body carries a user's credentials: a 401 means they were wrong */
};

/* One-time setup (curl, jansson's wiping allocator). 0 or EXIT_ERROR. */
int client_init(void);
void client_done(void);

/* Sends METHOD PATH (PATH starts with /v1/, query included) with body (may be
 * NULL). On any HTTP reply: EXIT_OK, *ret_status set and *ret_body the parsed
 * JSON (NULL if the reply was not JSON). Otherwise prints why and returns
 * EXIT_ERROR (or the token's refusal). */
int client_send(struct ctx *ctx, const char *method, const char *path, json_t *body, unsigned flags,
		long *ret_status, json_t **ret_body);

/* client_send() and the status mapping of section 9: on 2xx EXIT_OK and
 * *ret_body (may be NULL if ret_body is NULL); else, unless API_QUIET, one line
 * "vaultctl: WHAT: <server message>: <what to do>", and the exit code. */
int api_call(struct ctx *ctx, const char *what, const char *method, const char *path, json_t *body,
	     unsigned flags, json_t **ret_body);

/* The exit code for an HTTP status and error body. */
int api_exit_code(long status, const json_t *body);
/* Prints the error line (and each "fields" entry) for a non-2xx reply; flags
 * as api_call()'s choose the hint. */
void api_print_error(const char *what, long status, const json_t *body, unsigned flags);

/* Appends s to buf percent-encoding what is not [A-Za-z0-9._~/-]. */
char *path_escape(const char *s);
