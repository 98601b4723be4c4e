/* vaultd/http/server.h: HTTP/1.1 over the AF_UNIX socket (libmicrohttpd 0.9.75).
 *
 * The server binds the socket itself (refusing anything but a stale socket at
 * the path), reads the peer's SO_PEERCRED once per connection, enforces the
 * transport limits (connections in all and per peer uid, a deadline per
 * request, header memory, request-target length, body size) and hands every
 * complete request to one handler. It knows nothing about routes: unknown
 * methods and paths reach the handler too.
 *
 * Connections: at most max_connections in all (MHD's limit, split evenly over
 * the workers) and max_per_uid per peer uid. A connection over its uid's
 * share gets a fixed 503 "too_many_connections" (Retry-After: 1, Connection:
 * close) written at accept and is shut down at once, so it never holds one of
 * MHD's slots; refusals are logged once per uid and 10 s, with a count.
 *
 * Deadline: a request (line, headers, body) must have arrived timeout_s
 * after the connection became ready for it (accept, or the end of the
 * previous request); the handler's time does not count; its reply must have
 * left timeout_s after the handler returned. A connection past its deadline
 * is shut down by the reaper thread, however slowly it keeps sending. MHD's
 * idle timeout (the same timeout_s) stays as well.
 *
 * Threads: MHD's internal thread pool ('threads' workers, epoll) plus the
 * reaper. The handler runs on a worker thread and may block (Argon2); while
 * it does, the other connections owned by that worker wait (their deadlines
 * run on), so at most 'threads' handlers run at once. The server keeps no
 * global mutable state; everything lives in struct server and
 * per-connection/per-request contexts.
 *
 * Secrets: request bodies are copied into a struct secret (guarded memory)
 * and MHD's copy of each consumed chunk is wiped; every Authorization value
 * (repeated ones too, and on early 4xx replies that never reach the handler)
 * is wiped in MHD's buffer when the request ends; replies are serialised with
 * the wiping JSON allocator. Bodies, Authorization and query values are never
 * logged (paths only, at debug level).
 * XXX: requests MHD rejects itself before calling us (a header line without a
 * colon, headers over the memory limit), and connections closed before their
 * headers ended, leave those header bytes in MHD's pool, which MHD frees
 * without wiping; 0.9.75 has no hook there.
 *
 * SIGPIPE: MHD blocks SIGPIPE in its own threads and sends with MSG_NOSIGNAL;
 * the daemon still ignores SIGPIPE in main() so no other write can kill it.
 *
 * Requires secret_library_init() and json_secure_init() first.
 */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "common/secret.h"
#include "common/util.h"

struct server;                          /* opaque; defined in server.c */
struct MHD_Connection;                  /* libmicrohttpd's; for server_config.test_completed only */

/* One request, as the handler sees it. Everything is borrowed and valid only
 * during the handler call: copy what must outlive it. */
struct server_request {
	const char *method;             /* "GET", "PUT", ... or any token (handler answers 405) */
	const char *path;               /* request-target as received, up to '?', not percent-decoded */
	const char *content_type;       /* NULL if absent */
	const char *authorization;      /* NULL if absent; never log it */
	const struct secret *body;      /* NULL if the request carried no body bytes */
	uid_t uid;                      /* SO_PEERCRED of the connection, read once at accept */
	gid_t gid;
	pid_t pid;
	bool query_repeated;            /* some query key occurs more than once: reject (400) */
	char request_id[33];            /* 16 random bytes as hex; also sent as X-Request-Id */
	void *internal;                 /* the server's; do not touch */
};

/* Value of query parameter 'key' (percent-decoded; "" for "?key" or "?key="),
 * or NULL if it is absent OR repeated, so an ambiguous value is never used by
 * accident; server_request_query_count() tells the two apart. Never log it. */
const char *server_request_query(const struct server_request *req, const char *key);
/* How many times 'key' occurs in the query string. */
unsigned server_request_query_count(const struct server_request *req, const char *key);
/* Calls fn(key, value, u) for every query argument in order (values as in
 * server_request_query()). fn returns 0 to go on or a negative code to stop.
 * Returns 0 or the first negative code from fn. */
int server_request_query_foreach(const struct server_request *req,
				 int (*fn)(const char *key, const char *value, void *u), void *u);

/* The handler: returns an HTTP status (200..599) and may store a JSON value in
 * *ret_body, whose reference it hands over (the server decrefs it). NULL body:
 * 204/304 send no body, other 2xx/3xx send "{}", 4xx/5xx a generic error.
 * A body with 204/304 is dropped. Any other status is logged and becomes 500
 * "internal". Called on a worker thread; may block. Must not keep pointers
 * from req after it returns. */
typedef int (*server_handler_fn)(void *userdata, const struct server_request *req,
				 json_t **ret_body);

struct server_config {
	const char *socket_path;        /* absolute or relative; < sizeof(sun_path) */
	mode_t socket_mode;             /* e.g. 0660; applied after the group is set */
	gid_t socket_gid;               /* (gid_t)-1 = leave the creator's group */
	unsigned max_connections;       /* >= threads; MHD splits it evenly over the workers */
	unsigned max_per_uid;           /* 1..max_connections: connections one peer uid may hold */
	unsigned timeout_s;             /* >= 1: the deadline of each request, see above */
	size_t max_body;                /* 1 .. SECRET_MAX bytes; more -> 413 */
	unsigned threads;               /* >= 1 worker threads */
	size_t max_url;                 /* >= 1; longer request-target (incl. query) -> 414 */
	/* Tests only; NULL in vaultd. Called on a worker thread at the end of
	 * every request, after the server's own clean-up, with the handler's
	 * userdata: a test looks into MHD's buffers through it. */
	void (*test_completed)(void *userdata, struct MHD_Connection *c);
};

/* Binds cfg->socket_path and starts serving. 'userdata' is borrowed and must
 * outlive the server. Returns 0, or:
 *   -EINVAL      bad config (zero limits, threads or max_per_uid > max_connections,
 *                path too long)
 *   -EEXIST      the path exists and is not a socket (left untouched)
 *   -EADDRINUSE  a live server answers on the path
 *   -errno       socket/bind/chmod/chown/listen failed
 *   -EIO         MHD refused to start
 * A stale socket (nobody listening) at the path is replaced. */
int server_start(const struct server_config *cfg, server_handler_fn fn, void *userdata,
		 struct server **ret);
/* NULL-safe. Stops accepting, unlinks the socket (if it is still ours), waits
 * for handlers in progress to return, closes every connection (a reply still
 * queued may be lost) and frees the server. Not from a handler. */
void server_stop(struct server *s);

/* {"error": code, "message": message}: the shape of every API error. NULL on
 * allocation failure. */
json_t *server_error_json(const char *code, const char *message);

DEFINE_CLEANUP(struct server *, server_stop)
