/* vaultd/http/server.c: see server.h.
 *
 * Request life cycle in libmicrohttpd 0.9.75:
 *   on_connection(STARTED)  SO_PEERCRED -> struct peer (socket context),
 *                           counted against its uid or refused (503); deadline set
 *   on_uri()                raw request-target -> struct request_state, request id
 *   on_access() 1st call    headers done: peer, URL length, Content-Length checks
 *   on_access() n-th call   body bytes -> struct secret (bounded by max_body)
 *   on_access() last call   (upload_data_size == 0) deadline off, the handler
 *                           runs, deadline on again for the reply, reply queued
 *   on_completed()          Authorization values wiped, request_state freed,
 *                           deadline restarted for the next request
 *   on_connection(CLOSED)   struct peer unlinked and freed
 * A request MHD cannot parse never reaches on_access(): MHD queues its own
 * refusal, which MHD_queue_response() below answers in JSON instead.
 * A reply queued on the first call (413, 414) makes MHD close the connection
 * after sending it, without reading the body: what we want for those. MHD
 * 0.9.75 cannot queue a reply in the middle of an upload, so a body that grows
 * past max_body is discarded until it ends (at most max_body more bytes, else
 * the connection is dropped) and then answered with 413.
 *
 * Deadlines: MHD's CONNECTION_TIMEOUT is an idle timeout (every byte restarts
 * it), so a client sending a byte now and then would hold its connection for
 * ever. The reaper thread closes a connection whose request has not fully
 * arrived timeout_s after the connection became ready for it (with a 408
 * first if its request line had arrived), and one whose reply has not left
 * timeout_s after the handler returned. It only calls
 * shutdown() on MHD's descriptor, under s->lock: MHD 0.9.75 closes a
 * connection's descriptor after on_connection(CLOSED) (MHD_cleanup_connections,
 * and the failure path of internal_add_connection), and that callback takes
 * s->lock to unlink the peer, so the descriptor cannot be closed, let alone
 * reused, while the reaper looks at it. MHD then sees EOF and closes as usual.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "common/json.h"
#include "common/log.h"
#include "common/number.h"
#include "vaultd/http/server.h"

#define BODY_FIRST_CAP 4096             /* chunked bodies start here and double */
#define HEADER_BUDGET (16u * 1024u)     /* MHD connection memory beyond max_url */
#define MAX_URL_LIMIT (64u * 1024u)
#define LISTEN_BACKLOG 64
#define NSEC_PER_SEC 1000000000ull
#define DEADLINE_NONE UINT64_MAX
#define REFUSAL_LOG_INTERVAL (10 * NSEC_PER_SEC)  /* one refusal line per uid and 10 s */
#define REAPER_MAX_SLEEP NSEC_PER_SEC
#define REAPER_MIN_SLEEP (NSEC_PER_SEC / 20)   /* deadlines are met within 50 ms */
#define REAPER_LOG_BATCH 16             /* lines the reaper logs per pass, after unlocking */

/* One uid's share of the connections and its refusal log state. A slot
 * whose uid holds no connection may be given to another uid. */
struct uid_slot {
	uid_t uid;
	unsigned conns;                 /* connections it holds */
	unsigned refused;               /* refusals not logged yet */
	uint64_t log_after;             /* no refusal line before this (CLOCK_MONOTONIC ns) */
};

struct peer;

static void peer_request_open(struct server *s, struct peer *p, bool open);

struct server {
	struct MHD_Daemon *mhd;
	int listen_fd;                  /* ours; MHD gets a dup() it may close itself */
	char *socket_path;
	bool bound;                     /* the socket file is ours to unlink */
	dev_t sock_dev;
	ino_t sock_ino;
	server_handler_fn fn;
	void *userdata;
	size_t max_body;
	size_t max_url;
	unsigned max_per_uid;
	unsigned timeout_s;
	void (*test_completed)(void *userdata, struct MHD_Connection *c);

	/* Shared by MHD's workers and the reaper. */
	pthread_mutex_t lock;           /* everything below */
	pthread_cond_t wake;            /* the reaper's (CLOCK_MONOTONIC) */
	pthread_cond_t drained;         /* in_flight reached 0 (CLOCK_MONOTONIC) */
	unsigned in_flight;             /* requests begun (on_uri) and not completed */
	bool sync_ready;                /* lock and wake are initialised */
	bool reaper_running;
	bool stopping;
	pthread_t reaper;
	struct peer *peers;             /* every admitted connection */
	struct uid_slot *uids;
	size_t n_uids;                  /* 2 * max_connections: never all taken */
};

/* Socket context: the peer of one admitted connection, read once at accept.
 * The credentials never change; the rest is under s->lock. */
struct peer {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	int fd;                         /* MHD's; valid while the peer is linked */
	uint64_t deadline;              /* CLOCK_MONOTONIC ns; DEADLINE_NONE in the handler */
	bool reaped;                    /* shut down for missing its deadline */
	bool request_open;              /* a request line arrived and nothing is answered yet */
	struct uid_slot *slot;          /* its uid's; conns >= 1 while linked */
	struct peer *prev, *next;       /* s->peers */
};

/* Request context (MHD's con_cls), created by on_uri(). */
struct request_state {
	struct server *server;
	struct MHD_Connection *connection;
	struct peer *peer;
	char *path;                     /* raw request-target up to '?' */
	size_t target_len;              /* the whole request-target */
	size_t expected;                /* Content-Length, 0 if absent */
	struct secret *body;
	size_t drained;                 /* bytes thrown away after passing max_body */
	bool started;
	bool too_large;
	bool arena_full;                /* the body did not fit in the secure arena */
	char request_id[33];
};

static inline void closep(int *fd)
{
	if (*fd >= 0)
		(void)close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)
#define TAKE_FD(fd)                                                     \
	({                                                              \
		int _f = (fd);                                          \
		(fd) = -1;                                              \
		_f;                                                     \
	})

static uint64_t now_ns(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

json_t *server_error_json(const char *code, const char *message)
{
	return json_pack("{s:s, s:s}", "error", code, "message", message);
}

/* ---- query arguments ---------------------------------------------------- */

struct query_walk {
	const char *key;
	unsigned count;
	const char *value;
	int (*fn)(const char *k, const char *v, void *u);
	void *u;
	int r;
	struct MHD_Connection *connection;
	bool repeated;
};

static enum MHD_Result query_count_it(void *cls, enum MHD_ValueKind kind, const char *key,
				      const char *value)
{
	struct query_walk *w = cls;

	if (key && streq(key, w->key)) {
		w->count++;
		w->value = value ? value : "";
	}
	return MHD_YES;
}

static unsigned query_count(struct MHD_Connection *c, const char *key, const char **ret_value)
{
	struct query_walk w = { .key = key };

	(void)MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, query_count_it, &w);
	if (ret_value)
		*ret_value = w.value;
	return w.count;
}

static struct MHD_Connection *request_connection(const struct server_request *req)
{
	const struct request_state *st = req->internal;

	return st->connection;
}

const char *server_request_query(const struct server_request *req, const char *key)
{
	const char *v;

	if (query_count(request_connection(req), key, &v) != 1)
		return NULL;
	return v;
}

unsigned server_request_query_count(const struct server_request *req, const char *key)
{
	return query_count(request_connection(req), key, NULL);
}

static enum MHD_Result query_foreach_it(void *cls, enum MHD_ValueKind kind, const char *key,
					const char *value)
{
	struct query_walk *w = cls;

	w->r = w->fn(key ? key : "", value ? value : "", w->u);
	return w->r < 0 ? MHD_NO : MHD_YES;
}

int server_request_query_foreach(const struct server_request *req,
				 int (*fn)(const char *k, const char *v, void *u), void *u)
{
	struct query_walk w = { .fn = fn, .u = u };

	(void)MHD_get_connection_values(request_connection(req), MHD_GET_ARGUMENT_KIND,
					query_foreach_it, &w);
	return w.r < 0 ? w.r : 0;
}

/* Quadratic, but the number of arguments is bounded by max_url, checked first. */
static enum MHD_Result query_repeat_it(void *cls, enum MHD_ValueKind kind, const char *key,
				       const char *value)
{
	struct query_walk *w = cls;

	if (query_count(w->connection, key ? key : "", NULL) > 1) {
		w->repeated = true;
		return MHD_NO;
	}
	return MHD_YES;
}

static bool query_has_repeat(struct MHD_Connection *c)
{
	struct query_walk w = { .connection = c };

	(void)MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, query_repeat_it, &w);
	return w.repeated;
}

static enum MHD_Result header_count_it(void *cls, enum MHD_ValueKind kind, const char *key,
				       const char *value)
{
	struct query_walk *w = cls;

	if (key && strcasecmp(key, w->key) == 0)
		w->count++;
	return MHD_YES;
}

static unsigned header_count(struct MHD_Connection *c, const char *name)
{
	struct query_walk w = { .key = name };

	(void)MHD_get_connection_values(c, MHD_HEADER_KIND, header_count_it, &w);
	return w.count;
}

/* ---- replies ------------------------------------------------------------ */

static const char *status_code_name(unsigned status)
{
	switch (status) {
	case 400: return "bad_request";
	case 401: return "unauthenticated";
	case 403: return "forbidden";
	case 404: return "not_found";
	case 405: return "method_not_allowed";
	case 409: return "conflict";
	case 413: return "too_large";
	case 414: return "uri_too_long";
	case 429: return "rate_limited";
	case 503: return "unavailable";
	default:  return status < 500 ? "bad_request" : "internal";
	}
}

static char *serialize(json_t *body)
{
	/* Allocated by the wiping allocator: released with json_secure_free(). */
	return json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* Queues status + body (reference taken; NULL allowed) with the common headers. */
static enum MHD_Result reply(struct MHD_Connection *c, const struct request_state *st,
			     unsigned status, json_t *body_in)
{
	_cleanup_json_ json_t *body = body_in;
	static const char out_of_memory_reply[] =
		"{\"error\":\"secure_memory_exhausted\",\"message\":\"the daemon's secure memory is full; retry shortly\"}";
	struct MHD_Response *resp;
	enum MHD_Result ret;
	const char *fixed = NULL;
	char *text = NULL;

	if (status == MHD_HTTP_NO_CONTENT || status == MHD_HTTP_NOT_MODIFIED) {
		json_decref(TAKE_PTR(body));    /* HTTP forbids a body here */
	} else {
		if (!body)
			body = status < 400 ? json_object()
					    : server_error_json(status_code_name(status),
								"The request failed.");
		if (body)
			text = serialize(body);
		if (!text) {
			/* Unserialisable value or out of memory: one try with a small error. */
			log_error("cannot serialise the reply (status %u, request %s)", status,
				  st->request_id);
			json_decref(body);
			status = MHD_HTTP_INTERNAL_SERVER_ERROR;
			body = server_error_json("internal", "The server could not build its reply.");
			if (body)
				text = serialize(body);
			if (!text) {
				/* No memory at all for a reply (the arena is full): a
				 * fixed one, which needs none. */
				status = MHD_HTTP_SERVICE_UNAVAILABLE;
				fixed = out_of_memory_reply;
			}
		}
	}

	if (fixed) {
		resp = MHD_create_response_from_buffer(strlen(fixed), (void *)fixed, MHD_RESPMEM_PERSISTENT);
	} else if (text) {
		resp = MHD_create_response_from_buffer_with_free_callback(strlen(text), text,
									  json_secure_free);
		if (!resp) {
			json_secure_free(text);
			return MHD_NO;
		}
	} else
		resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;

	if (((text || fixed) && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					     "application/json") != MHD_YES) ||
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES ||
	    MHD_add_response_header(resp, "X-Request-Id", st->request_id) != MHD_YES) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);     /* MHD holds its own reference until sent */
	if (ret == MHD_YES && st->peer)
		peer_request_open(st->server, st->peer, false);
	return ret;
}

static enum MHD_Result reply_error(struct MHD_Connection *c, const struct request_state *st,
				   unsigned status, const char *code, const char *message)
{
	log_debug("request %s: %u %s", st->request_id, status, code);
	return reply(c, st, status, server_error_json(code, message));
}

/* ---- libmicrohttpd's own error replies --------------------------------
 *
 * MHD 0.9.75 answers a request it cannot parse itself, before any callback
 * of ours sees it: a bad request line or header line (400), a bad
 * Content-Length (400) or one too large to represent (413), a bad chunk
 * (400) or chunk size (413), a request line or headers over the connection
 * memory (414, 431), an HTTP version it does not speak (505). Its pages are
 * HTML and it has no option to supply another body (MHD_OPTION_* and the
 * daemon flags of this version have none; the access handler is not called).
 * All of them go through one function, transmit_error_response_len(), whose
 * MHD_queue_response() call goes through the library's PLT (the other
 * internal caller is digest authentication, unused here), after its check
 * that no byte of a reply has been sent yet. So the definition below,
 * exported from the executable, is the one it reaches: a call from inside
 * libmicrohttpd with a 4xx or 5xx is answered with the same status and a
 * JSON body in the API's error shape; every other call is passed on
 * unchanged. A libmicrohttpd built to bind that call internally would bring
 * the HTML back, and e2e_hostile fails on it. Not covered, because MHD
 * queues nothing for them: a request line without a target (MHD closes the
 * connection at once) and a connection sending only empty lines or NULs
 * (closed by the reaper, with no request begun). */

typedef enum MHD_Result (*queue_response_fn)(struct MHD_Connection *c, unsigned int status,
					     struct MHD_Response *r);

static queue_response_fn real_queue_response;
static void *mhd_base;                  /* libmicrohttpd's load address */
static pthread_once_t mhd_resolved = PTHREAD_ONCE_INIT;

static void mhd_resolve(void)
{
	Dl_info info;
	void *p = dlsym(RTLD_NEXT, "MHD_queue_response");

	if (!p)
		return;
	memcpy(&real_queue_response, &p, sizeof(p));   /* POSIX: a function's address */
	if (dladdr(p, &info) && info.dli_fbase)
		mhd_base = info.dli_fbase;
}

static const char *mhd_error_body(unsigned status)
{
	switch (status) {
	case MHD_HTTP_BAD_REQUEST:
		return "{\"error\":\"bad_request\",\"message\":\"The request is not well-formed HTTP.\"}";
	case MHD_HTTP_CONTENT_TOO_LARGE:
		return "{\"error\":\"too_large\",\"message\":\"The request body is too large.\"}";
	case MHD_HTTP_URI_TOO_LONG:
		return "{\"error\":\"uri_too_long\",\"message\":\"The request target is too long.\"}";
	case MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE:
		return "{\"error\":\"headers_too_large\",\"message\":\"The request headers are too large.\"}";
	case MHD_HTTP_HTTP_VERSION_NOT_SUPPORTED:
		return "{\"error\":\"http_version_not_supported\",\"message\":\"Only HTTP/1.0 and HTTP/1.1 are spoken.\"}";
	default:
		return status < 500 ? "{\"error\":\"bad_request\",\"message\":\"The request is not valid.\"}"
				    : "{\"error\":\"internal\",\"message\":\"The server failed to handle the request.\"}";
	}
}

/* Writes a whole fixed reply straight to the socket, then shuts it down:
 * MHD sees EOF (or EPIPE on its own send, MSG_NOSIGNAL) and closes the
 * connection. MSG_DONTWAIT: a worker never waits on a client, and a client
 * that left a full send buffer gets what fits. */
static void send_fixed_reply(int fd, unsigned status, const char *reason, const char *extra_headers,
			     const char *body)
{
	char buf[768], id[33];
	uint8_t raw[16];
	int n;

	randombytes_buf(raw, sizeof(raw));
	(void)sodium_bin2hex(id, sizeof(id), raw, sizeof(raw));
	n = snprintf(buf, sizeof(buf),
		     "HTTP/1.1 %u %s\r\n"
		     "Content-Type: application/json\r\n"
		     "Cache-Control: no-store\r\n"
		     "%s"
		     "Connection: close\r\n"
		     "X-Request-Id: %s\r\n"
		     "Content-Length: %zu\r\n"
		     "\r\n%s",
		     status, reason, extra_headers, id, strlen(body), body);
	if (n > 0 && (size_t)n < sizeof(buf))
		(void)send(fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)shutdown(fd, SHUT_RDWR);
}

/* The JSON reply is written to the socket here rather than queued in place
 * of MHD's: MHD 0.9.75 sends the status line and headers of its
 * Content-Length refusals twice and never the body, whatever the response.
 * Its own (HTML) response is then queued on a socket already shut down, so
 * not a byte of it leaves; MHD logs the failed send and closes. */
_public_ __attribute__((noinline)) enum MHD_Result
MHD_queue_response(struct MHD_Connection *c, unsigned int status, struct MHD_Response *resp)
{
	void *caller = __builtin_return_address(0);
	const union MHD_ConnectionInfo *ci;
	const char *reason;
	Dl_info info;

	(void)pthread_once(&mhd_resolved, mhd_resolve);
	if (!real_queue_response)
		return MHD_NO;
	if (status >= 400 && mhd_base && dladdr(caller, &info) && info.dli_fbase == mhd_base &&
	    (ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD))) {
		reason = MHD_get_reason_phrase_for(status);
		log_debug("libmicrohttpd refused a request with %u: answered in JSON, connection closed",
			  status);
		send_fixed_reply(ci->connect_fd, status, reason && *reason ? reason : "Error", "",
				 mhd_error_body(status));
	}
	return real_queue_response(c, status, resp);
}

/* ---- connections per uid, deadlines ------------------------------------ */

/* How much a slot holding no connection is still worth: 0 free, 1 in its
 * refusal log's quiet period, 2 with refusals not logged yet. */
static int uid_slot_rank(const struct uid_slot *u, uint64_t now)
{
	return u->refused > 0 ? 2 : u->log_after > now ? 1 : 0;
}

/* The slot of 'uid', or a new one for it: a free slot if there is one, else
 * the least valuable slot holding no connection (evicting it loses a quiet
 * period or a count, which takes more uids refused within 10 s than there
 * are slots). NULL only if every slot holds connections, which cannot
 * happen: there are twice as many slots as connections. Under s->lock. */
static struct uid_slot *uid_slot_get(struct server *s, uid_t uid, uint64_t now)
{
	struct uid_slot *best = NULL;
	int best_rank = 3;

	for (size_t i = 0; i < s->n_uids; i++) {
		struct uid_slot *u = &s->uids[i];
		int rank;

		if (u->conns > 0) {
			if (u->uid == uid)
				return u;
			continue;
		}
		rank = uid_slot_rank(u, now);
		if (u->uid == uid && rank > 0)
			return u;
		if (rank < best_rank || (rank == best_rank && u->log_after < best->log_after)) {
			best = u;
			best_rank = rank;
		}
	}
	if (best)
		*best = (struct uid_slot){ .uid = uid };
	return best;
}

/* Admits the connection on fd for uc->uid. 0 and *ret (linked, deadline
 * running); -EUSERS if the uid already holds max_per_uid connections, with
 * *ret_log the refusals to report now (0: within the quiet period);
 * -ENOMEM. */
static int peer_admit(struct server *s, int fd, const struct ucred *uc, struct peer **ret,
		      unsigned *ret_log)
{
	_cleanup_free_ struct peer *p = NULL;
	struct uid_slot *u;
	uint64_t now = now_ns();

	*ret_log = 0;
	p = malloc(sizeof(*p));
	if (!p)
		return -ENOMEM;
	*p = (struct peer){
		.uid = uc->uid,
		.gid = uc->gid,
		.pid = uc->pid,
		.fd = fd,
		.deadline = now + (uint64_t)s->timeout_s * NSEC_PER_SEC,
	};

	pthread_mutex_lock(&s->lock);
	u = uid_slot_get(s, uc->uid, now);
	if (!u || u->conns >= s->max_per_uid) {
		if (u) {
			u->refused++;
			if (now >= u->log_after) {
				*ret_log = u->refused;
				u->refused = 0;
				u->log_after = now + REFUSAL_LOG_INTERVAL;
			}
		}
		pthread_mutex_unlock(&s->lock);
		return -EUSERS;
	}
	u->conns++;
	p->slot = u;
	p->next = s->peers;
	if (s->peers)
		s->peers->prev = p;
	s->peers = p;
	pthread_mutex_unlock(&s->lock);
	*ret = TAKE_PTR(p);
	return 0;
}

/* on_connection(CLOSED): MHD closes p->fd after this returns. NULL-safe. */
static void peer_release(struct server *s, struct peer *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&s->lock);
	if (p->prev)
		p->prev->next = p->next;
	else
		s->peers = p->next;
	if (p->next)
		p->next->prev = p->prev;
	p->slot->conns--;
	pthread_mutex_unlock(&s->lock);
	free(p);
}

/* The request has fully arrived: its time stops while the handler runs.
 * False if the reaper shut the connection down first (the handler must not
 * run: the reply could not be sent). */
static bool peer_handler_begin(struct server *s, struct peer *p)
{
	bool ok;

	pthread_mutex_lock(&s->lock);
	ok = !p->reaped;
	if (ok)
		p->deadline = DEADLINE_NONE;
	pthread_mutex_unlock(&s->lock);
	return ok;
}

/* A new timeout_s starts: after the handler for the reply to leave, after
 * a request for the next one to arrive. */
static void peer_deadline_restart(struct server *s, struct peer *p)
{
	pthread_mutex_lock(&s->lock);
	p->deadline = now_ns() + (uint64_t)s->timeout_s * NSEC_PER_SEC;
	pthread_mutex_unlock(&s->lock);
}

/* A request has begun to arrive (on_uri) or has been answered: one cut
 * at its deadline while open is told 408 first. */
static void peer_request_open(struct server *s, struct peer *p, bool open)
{
	pthread_mutex_lock(&s->lock);
	p->request_open = open;
	pthread_mutex_unlock(&s->lock);
}

static void log_refusals(const struct server *s, uid_t uid, unsigned n)
{
	log_notice("refused %u connection%s from uid %u: over max_connections_per_uid (%u)", n,
		   n == 1 ? "" : "s", (unsigned)uid, s->max_per_uid);
}

/* Over its uid's share: a fixed 503 written straight to the socket, which
 * never reaches a worker, then shutdown(): MHD reads EOF at once and frees
 * its slot. A new connection's send buffer is empty, so the reply fits;
 * MSG_DONTWAIT anyway, as a worker must never wait on a client. */
static void refuse_busy(int fd)
{
	send_fixed_reply(fd, MHD_HTTP_SERVICE_UNAVAILABLE, "Service Unavailable", "Retry-After: 1\r\n",
			 "{\"error\":\"too_many_connections\",\"message\":"
			 "\"Too many connections from this uid; retry later.\"}");
}

struct reaped {
	uid_t uid;
	pid_t pid;
};

struct refusals {
	uid_t uid;
	unsigned n;
};

/* One pass under s->lock: shuts down the overdue, collects refusal counts
 * whose quiet period is over; returns when to look again. */
static uint64_t reap_pass(struct server *s, uint64_t now, struct reaped *cut, size_t *n_cut,
			  size_t *more_cut, struct refusals *ref, size_t *n_ref)
{
	uint64_t next = now + REAPER_MAX_SLEEP;

	*n_cut = *more_cut = *n_ref = 0;
	for (struct peer *p = s->peers; p; p = p->next) {
		if (p->reaped || p->deadline == DEADLINE_NONE)
			continue;
		if (p->deadline > now) {
			if (p->deadline < next)
				next = p->deadline;
			continue;
		}
		/* Linked, so MHD has not closed p->fd: see the top of the file.
		 * A request that began but never fully arrived (a truncated
		 * body, headers that never end) is told so; nothing of a reply
		 * has been queued for it, so these are the first bytes sent. */
		if (p->request_open)
			send_fixed_reply(p->fd, MHD_HTTP_REQUEST_TIMEOUT, "Request Timeout", "",
					 "{\"error\":\"request_timeout\",\"message\":"
					 "\"The request did not fully arrive within request_timeout.\"}");
		(void)shutdown(p->fd, SHUT_RDWR);
		p->reaped = true;
		if (*n_cut < REAPER_LOG_BATCH)
			cut[(*n_cut)++] = (struct reaped){ p->uid, p->pid };
		else
			(*more_cut)++;
	}
	for (size_t i = 0; i < s->n_uids; i++) {
		struct uid_slot *u = &s->uids[i];

		if (u->refused == 0)
			continue;
		if (now < u->log_after) {
			if (u->log_after < next)
				next = u->log_after;
		} else if (*n_ref < REAPER_LOG_BATCH) {
			ref[(*n_ref)++] = (struct refusals){ u->uid, u->refused };
			u->refused = 0;
			u->log_after = now + REFUSAL_LOG_INTERVAL;
		} else
			next = now;     /* more next time round */
	}
	return next;
}

static void *reaper_main(void *userdata)
{
	struct server *s = userdata;
	struct reaped cut[REAPER_LOG_BATCH];
	struct refusals ref[REAPER_LOG_BATCH];
	size_t n_cut, more_cut, n_ref;
	struct timespec ts;
	uint64_t next;

	pthread_mutex_lock(&s->lock);
	while (!s->stopping) {
		next = reap_pass(s, now_ns(), cut, &n_cut, &more_cut, ref, &n_ref);
		if (n_cut > 0 || n_ref > 0) {
			/* Never log under the lock the workers take at accept. */
			pthread_mutex_unlock(&s->lock);
			for (size_t i = 0; i < n_cut; i++)
				log_debug("closed a connection of uid %u (pid %d): no whole request or "
					  "reply within %u s", (unsigned)cut[i].uid, (int)cut[i].pid,
					  s->timeout_s);
			if (more_cut > 0)
				log_debug("closed %zu more connections past their deadline", more_cut);
			for (size_t i = 0; i < n_ref; i++)
				log_refusals(s, ref[i].uid, ref[i].n);
			pthread_mutex_lock(&s->lock);
			continue;
		}
		/* Coalesced: many connections with deadlines a few ms apart
		 * must not make the reaper scan them all for each one. */
		if (next < now_ns() + REAPER_MIN_SLEEP)
			next = now_ns() + REAPER_MIN_SLEEP;
		ts = (struct timespec){ .tv_sec = (time_t)(next / NSEC_PER_SEC),
					.tv_nsec = (long)(next % NSEC_PER_SEC) };
		(void)pthread_cond_timedwait(&s->wake, &s->lock, &ts);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static int reaper_start(struct server *s)
{
	sigset_t all, old;
	int r;

	/* Signals belong to the daemon's main thread (sigwait()). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = -pthread_create(&s->reaper, NULL, reaper_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		return r;
	s->reaper_running = true;
	return 0;
}

static void reaper_stop(struct server *s)
{
	if (!s->reaper_running)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	(void)pthread_join(s->reaper, NULL);
	s->reaper_running = false;
}

/* ---- MHD callbacks ------------------------------------------------------ */

static void on_mhd_log(void *cls, const char *fmt, va_list ap) _printf_(2, 0);
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	size_t n;

	if (log_get_max_level() < LOG_DEBUG)
		return;
	(void)vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	log_debug("libmicrohttpd: %s", buf);
}

/* Runs on the worker that accepted the connection (STARTED) or is closing
 * it (CLOSED). A connection left without a socket context is never served:
 * on_access() refuses every request on it. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	struct server *s = cls;
	const union MHD_ConnectionInfo *ci;
	struct ucred uc = { .pid = 0 };
	socklen_t len = sizeof(uc);
	struct peer *p = NULL;
	unsigned n_log;
	int r;

	if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		peer_release(s, *socket_context);
		*socket_context = NULL;
		return;
	}
	if (toe != MHD_CONNECTION_NOTIFY_STARTED)
		return;

	*socket_context = NULL;
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!ci)
		return;
	if (getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0 ||
	    len != sizeof(uc)) {
		log_warning_errno(-errno, "cannot read the peer's credentials; dropping connection");
		goto refuse;
	}
	r = peer_admit(s, ci->connect_fd, &uc, &p, &n_log);
	if (r == -EUSERS) {
		refuse_busy(ci->connect_fd);
		if (n_log > 0)
			log_refusals(s, uc.uid, n_log);
		return;
	}
	if (r < 0)
		goto refuse;
	*socket_context = p;
	return;
refuse:
	/* MHD sees EOF and closes the connection. */
	(void)shutdown(ci->connect_fd, SHUT_RDWR);
}

/* Called once per request with the raw request-target, before MHD parses it:
 * the path the API sees is exactly what the client sent (MHD's own 'url' is
 * percent-decoded, which would turn "a%2Fb" into two segments). */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct server *s = cls;
	const union MHD_ConnectionInfo *ci;
	struct request_state *st;
	uint8_t id[16];

	st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	st->server = cls;
	st->connection = c;
	st->target_len = strlen(uri);
	st->path = strndup(uri, strcspn(uri, "?"));
	if (!st->path) {
		free(st);
		return NULL;
	}
	randombytes_buf(id, sizeof(id));
	(void)sodium_bin2hex(st->request_id, sizeof(st->request_id), id, sizeof(id));
	pthread_mutex_lock(&s->lock);
	s->in_flight++;
	pthread_mutex_unlock(&s->lock);
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (ci && ci->socket_context)
		peer_request_open(s, ci->socket_context, true);
	return st;
}

static enum MHD_Result wipe_authorization_it(void *cls, enum MHD_ValueKind kind, const char *key,
					     size_t key_size, const char *value, size_t value_size)
{
	if (key && value && strcasecmp(key, MHD_HTTP_HEADER_AUTHORIZATION) == 0)
		sodium_memzero((char *)value, value_size);
	return MHD_YES;
}

/* Every request MHD handed us ends here, however it was answered (by the
 * handler, by an early 4xx, or not at all). */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct server *s = cls;
	struct request_state *st = *con_cls;
	const union MHD_ConnectionInfo *ci;

	/* The header values live in MHD's connection buffer, which is reused
	 * and freed without being cleared; this runs before MHD resets it.
	 * Every Authorization header, repeated or not, read or not; MHD parses
	 * in place, so its buffer is writable. */
	(void)MHD_get_connection_values_n(c, MHD_HEADER_KIND, wipe_authorization_it, NULL);
	if (st) {
		secret_free(st->body);
		free(st->path);
		free(st);
		*con_cls = NULL;
		pthread_mutex_lock(&s->lock);
		if (--s->in_flight == 0)
			pthread_cond_broadcast(&s->drained);
		pthread_mutex_unlock(&s->lock);
	}
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (ci && ci->socket_context) {
		peer_request_open(s, ci->socket_context, false);
		peer_deadline_restart(s, ci->socket_context);
	}
	if (s->test_completed)
		s->test_completed(s->userdata, c);
}

static int parse_content_length(const char *s, size_t *ret)
{
	uint64_t v;
	int r = number_parse_u64(s, 0, UINT64_MAX, &v);

	if (r < 0)
		return r;
	*ret = v > SIZE_MAX ? SIZE_MAX : (size_t)v;
	return 0;
}

struct header_walk {
	const char *bad;                /* what is wrong, for the 400 */
};

static bool token_valid(const char *p, size_t n)
{
	static const char tchar[] = "!#$%&'*+-.^_`|~0123456789"
				    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (p[i] == '\0' || !strchr(tchar, p[i]))
			return false;
	return true;
}

/* MHD 0.9.75 takes a header name up to the colon as it is (spaces before
 * the colon, bytes over 0x7f) and a value up to the line end (a bare CR and
 * other control bytes included). */
static enum MHD_Result header_check_it(void *cls, enum MHD_ValueKind kind, const char *key,
				       size_t key_size, const char *value, size_t value_size)
{
	struct header_walk *w = cls;

	if (!key || !token_valid(key, key_size)) {
		w->bad = "A header name is not a valid token.";
		return MHD_NO;
	}
	for (size_t i = 0; value && i < value_size; i++) {
		unsigned char ch = (unsigned char)value[i];

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
			w->bad = "A header value holds a control character.";
			return MHD_NO;
		}
	}
	return MHD_YES;
}

/* NULL, or what makes the request's header section unacceptable: a bad
 * name or value, or framing a front end could read differently from us
 * (request smuggling: RFC 9112 section 6.3). MHD 0.9.75 uses the first of
 * repeated Content-Length headers, and a chunked Transfer-Encoding over a
 * Content-Length; it treats any other transfer coding as no body. */
static const char *headers_invalid(struct MHD_Connection *c)
{
	struct header_walk w = { 0 };
	const char *te;

	(void)MHD_get_connection_values_n(c, MHD_HEADER_KIND, header_check_it, &w);
	if (w.bad)
		return w.bad;
	if (header_count(c, MHD_HTTP_HEADER_CONTENT_LENGTH) > 1)
		return "The Content-Length header is repeated.";
	if (header_count(c, MHD_HTTP_HEADER_TRANSFER_ENCODING) > 1)
		return "The Transfer-Encoding header is repeated.";
	if (header_count(c, MHD_HTTP_HEADER_HOST) > 1)
		return "The Host header is repeated.";
	te = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	if (te && strcasecmp(te, "chunked") != 0)
		return "The only Transfer-Encoding accepted is chunked.";
	if (te && MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH))
		return "Content-Length and Transfer-Encoding must not both be sent.";
	return NULL;
}

/* An RFC 9110 token: MHD 0.9.75 passes any bytes up to the first space. */
static bool method_valid(const char *m)
{
	size_t n = strspn(m, "!#$%&'*+-.^_`|~0123456789"
			     "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");

	return n > 0 && n <= 32 && m[n] == '\0';
}

static enum MHD_Result request_begin(struct server *s, struct request_state *st,
				     struct MHD_Connection *c, const char *method)
{
	const union MHD_ConnectionInfo *ci;
	const char *cl, *msg;
	size_t n;
	int r;

	st->started = true;
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (!ci || !ci->socket_context)
		return MHD_NO;          /* unknown peer: never served */
	st->peer = ci->socket_context;

	if (!method_valid(method))
		return reply_error(c, st, MHD_HTTP_BAD_REQUEST, "bad_request",
				   "The request method is not valid.");
	if (st->target_len > s->max_url)
		return reply_error(c, st, MHD_HTTP_URI_TOO_LONG, "uri_too_long",
				   "The request target is too long.");
	log_debug("request %s: %s '%s' uid %u", st->request_id, method, st->path,
		  (unsigned)st->peer->uid);

	if ((msg = headers_invalid(c)))
		return reply_error(c, st, MHD_HTTP_BAD_REQUEST, "bad_request", msg);

	cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl) {
		r = parse_content_length(cl, &n);
		if (r == -ERANGE)
			n = SIZE_MAX;
		else if (r < 0)
			return reply_error(c, st, MHD_HTTP_BAD_REQUEST, "bad_request",
					   "The Content-Length header is not valid.");
		/* Answered before a byte of the body is read; MHD then closes. */
		if (n > s->max_body)
			return reply_error(c, st, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
					   "The request body is too large.");
		st->expected = n;
	}
	return MHD_YES;
}

/* Appends to the body, growing the guarded buffer up to max. */
static int body_append(struct request_state *st, size_t max, const void *p, size_t n)
{
	_cleanup_secret_ struct secret *nb = NULL;
	struct secret *b = st->body;
	size_t need, cap;
	int r;

	if (!b || b->cap - b->len < n) {
		need = (b ? b->len : 0) + n;    /* <= max: checked by the caller */
		cap = b ? b->cap : (st->expected > 0 ? st->expected : BODY_FIRST_CAP);
		while (cap < need)
			cap = cap > max / 2 ? max : cap * 2;
		if (cap > max)
			cap = max;
		if ((r = secret_new(cap, &nb)) < 0)
			return r;
		if (b && (r = secret_append(nb, b->p, b->len)) < 0)
			return r;
		secret_free(st->body);
		st->body = b = TAKE_PTR(nb);
	}
	return secret_append(b, p, n);
}

static enum MHD_Result request_body(struct server *s, struct request_state *st,
				    const char *data, size_t *data_size)
{
	size_t n = *data_size, have = st->body ? st->body->len : 0;
	int r = 0;

	*data_size = 0;
	if (!st->too_large && n > s->max_body - have) {
		st->too_large = true;
		secret_free(TAKE_PTR(st->body));
	}
	if (st->too_large || st->arena_full)
		st->drained += n;
	else {
		secret_arena_exhausted_reset();
		r = body_append(st, s->max_body, data, n);
		if (r == -ENOMEM && secret_arena_exhausted()) {
			/* Read the rest and answer 503 (request_finish()). */
			st->arena_full = true;
			st->drained += n;
			secret_free(TAKE_PTR(st->body));
			r = 0;
		}
	}
	/* MHD's read buffer is writable and these bytes are consumed: do not
	 * leave a copy of the body there. */
	sodium_memzero((void *)data, n);
	if (r < 0)
		return MHD_NO;
	if (st->drained > s->max_body) {
		log_debug("request %s: body far over the limit; dropping connection",
			  st->request_id);
		return MHD_NO;
	}
	return MHD_YES;
}

static enum MHD_Result request_finish(struct server *s, struct request_state *st,
				      struct MHD_Connection *c, const char *method)
{
	_cleanup_json_ json_t *body = NULL;
	struct server_request req = {
		.method = method,
		.path = st->path,
		.body = st->body,
		.uid = st->peer->uid,
		.gid = st->peer->gid,
		.pid = st->peer->pid,
		.internal = st,
	};
	int status;

	if (st->too_large)
		return reply_error(c, st, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
				   "The request body is too large.");
	if (st->arena_full) {
		static _Atomic int64_t logged_at;
		int64_t now = time(NULL);

		if (now - logged_at >= 10) {
			logged_at = now;
			log_error("the secure memory arena is full (%zu of %zu bytes in use): the body of request %s "
				  "did not fit, refused with 503; raise [server] secure_memory_mib if this recurs",
				  secret_arena_used(), secret_arena_size(), st->request_id);
		}
		return reply_error(c, st, MHD_HTTP_SERVICE_UNAVAILABLE, "secure_memory_exhausted",
				   "the daemon's secure memory is full; retry shortly");
	}
	if (header_count(c, MHD_HTTP_HEADER_AUTHORIZATION) > 1)
		return reply_error(c, st, MHD_HTTP_BAD_REQUEST, "bad_request",
				   "The Authorization header is repeated.");

	req.content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						       MHD_HTTP_HEADER_CONTENT_TYPE);
	req.authorization = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							MHD_HTTP_HEADER_AUTHORIZATION);
	req.query_repeated = query_has_repeat(c);
	memcpy(req.request_id, st->request_id, sizeof(req.request_id));

	if (!peer_handler_begin(s, st->peer))
		return MHD_NO;          /* past its deadline: already shut down */
	status = s->fn(s->userdata, &req, &body);
	peer_deadline_restart(s, st->peer);
	if (status < 200 || status > 599) {
		log_error("request %s: handler returned invalid status %d for %s '%s'",
			  st->request_id, status, method, st->path);
		return reply_error(c, st, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
				   "The server failed to handle the request.");
	}
	return reply(c, st, (unsigned)status, TAKE_PTR(body));
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url,
				 const char *method, const char *version, const char *upload_data,
				 size_t *upload_data_size, void **con_cls)
{
	struct server *s = cls;
	struct request_state *st = *con_cls;

	if (!st)
		return MHD_NO;          /* on_uri() ran out of memory */
	if (!st->started)
		return request_begin(s, st, c, method);
	if (*upload_data_size > 0)
		return request_body(s, st, upload_data, upload_data_size);
	return request_finish(s, st, c, method);
}

/* ---- socket ------------------------------------------------------------- */

static int sockaddr_fill(const char *path, struct sockaddr_un *sa)
{
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(sa->sun_path))
		return -EINVAL;
	*sa = (struct sockaddr_un){ .sun_family = AF_UNIX };
	memcpy(sa->sun_path, path, n);
	return 0;
}

/* Clears the way for bind(): nothing there, or a socket nobody answers on. */
static int socket_path_free(const struct sockaddr_un *sa)
{
	_cleanup_close_ int fd = -1;
	struct stat st;

	if (lstat(sa->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	/* Non-blocking: a live server with a full backlog answers EAGAIN
	 * instead of stalling us, and is live all the same. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 || errno == EAGAIN)
		return -EADDRINUSE;
	if (errno == ENOENT)
		return 0;
	if (errno != ECONNREFUSED)
		return -errno;
	log_debug("replacing stale socket '%s'", sa->sun_path);
	if (unlink(sa->sun_path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int socket_bind(struct server *s, const struct server_config *cfg)
{
	_cleanup_close_ int fd = -1;
	struct sockaddr_un sa;
	struct stat st;
	int r;

	if ((r = sockaddr_fill(cfg->socket_path, &sa)) < 0)
		return r;
	if ((r = socket_path_free(&sa)) < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* Linux creates the socket file with the socket inode's mode masked by
	 * the umask, so it never exists with a wider mode; and umask() is
	 * process-wide, not something to flip while other threads run. */
	if (fchmod(fd, 0600) < 0)
		return -errno;
	if (bind(fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	if (lstat(sa.sun_path, &st) < 0)
		return -errno;
	s->bound = true;
	s->sock_dev = st.st_dev;
	s->sock_ino = st.st_ino;
	/* Group first, then open the mode up to it. */
	if (cfg->socket_gid != (gid_t)-1 && lchown(sa.sun_path, (uid_t)-1, cfg->socket_gid) < 0)
		return -errno;
	if (chmod(sa.sun_path, cfg->socket_mode) < 0)
		return -errno;
	if (listen(fd, LISTEN_BACKLOG) < 0)
		return -errno;
	s->listen_fd = TAKE_FD(fd);
	return 0;
}

/* Unlinks the socket file only if it is still the one we bound. */
static void socket_unlink(struct server *s)
{
	struct stat st;

	if (!s->bound)
		return;
	s->bound = false;
	if (lstat(s->socket_path, &st) < 0 || st.st_dev != s->sock_dev ||
	    st.st_ino != s->sock_ino)
		return;
	(void)unlink(s->socket_path);
}

/* ---- start / stop ------------------------------------------------------- */

static int config_valid(const struct server_config *cfg)
{
	return cfg->socket_path && cfg->threads >= 1 && cfg->max_connections >= cfg->threads &&
	       cfg->max_per_uid >= 1 && cfg->max_per_uid <= cfg->max_connections &&
	       cfg->timeout_s >= 1 && cfg->max_body >= 1 && cfg->max_body <= SECRET_MAX &&
	       cfg->max_url >= 1 && cfg->max_url <= MAX_URL_LIMIT &&
	       (cfg->socket_mode & ~(mode_t)0777) == 0;
}

int server_start(const struct server_config *cfg, server_handler_fn fn, void *userdata,
		 struct server **ret)
{
	_cleanup_(server_stopp) struct server *s = NULL;
	pthread_condattr_t ca;
	int mhd_fd, r;

	if (!cfg || !fn || !ret || !config_valid(cfg))
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->listen_fd = -1;
	s->fn = fn;
	s->userdata = userdata;
	s->max_body = cfg->max_body;
	s->max_url = cfg->max_url;
	s->max_per_uid = cfg->max_per_uid;
	s->timeout_s = cfg->timeout_s;
	s->test_completed = cfg->test_completed;
	s->socket_path = strdup(cfg->socket_path);
	if (!s->socket_path)
		return -ENOMEM;
	/* Connections holding a slot never outnumber max_connections, so
	 * twice as many slots always leave one free (see uid_slot_get()). */
	s->n_uids = 2 * (size_t)cfg->max_connections;
	s->uids = calloc(s->n_uids, sizeof(*s->uids));
	if (!s->uids)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_init(&ca);
	/* Wall-clock jumps must neither stretch nor cut a deadline. */
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->wake, &ca);
	pthread_cond_init(&s->drained, &ca);
	pthread_condattr_destroy(&ca);
	s->sync_ready = true;
	if ((r = socket_bind(s, cfg)) < 0)
		return r;

	/* MHD may close the descriptor it is given, on failure as on stop:
	 * give it a duplicate so ours is never closed twice. */
	mhd_fd = fcntl(s->listen_fd, F_DUPFD_CLOEXEC, 3);
	if (mhd_fd < 0)
		return -errno;
	/* Thread pool + epoll: each worker polls the shared listen socket and
	 * owns the connections it accepts. MHD splits CONNECTION_LIMIT evenly
	 * over the workers; a worker at its share stops accepting, so excess
	 * clients wait in the listen backlog. MHD_USE_ITC for quiesce. */
	s->mhd = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_ERROR_LOG,
		0, NULL, NULL, on_access, s,
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
		MHD_OPTION_LISTEN_SOCKET, (MHD_socket)mhd_fd,
		MHD_OPTION_THREAD_POOL_SIZE, cfg->threads,
		MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections,
		/* A second after the reaper's deadline: MHD's idle timeout
		 * only backs it up, so a request cut at the deadline is told
		 * 408 (reap_pass()) rather than closed silently by MHD. */
		MHD_OPTION_CONNECTION_TIMEOUT, cfg->timeout_s + 1,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(cfg->max_url + HEADER_BUDGET),
		MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
		MHD_OPTION_END);
	if (!s->mhd)
		/* XXX: whether MHD closed mhd_fd is not reported; leaving it
		 * open at worst leaks one descriptor on a fatal path. */
		return -EIO;
	if ((r = reaper_start(s)) < 0)
		return r;

	log_debug("serving on '%s' with %u threads", s->socket_path, cfg->threads);
	*ret = TAKE_PTR(s);
	return 0;
}

static void drain(struct server *s)
{
	uint64_t deadline = now_ns() + ((uint64_t)s->timeout_s + 1) * NSEC_PER_SEC;
	struct timespec ts = {
		.tv_sec = (time_t)(deadline / NSEC_PER_SEC),
		.tv_nsec = (long)(deadline % NSEC_PER_SEC),
	};

	if (!s->sync_ready)
		return;
	pthread_mutex_lock(&s->lock);
	while (s->in_flight > 0)
		if (pthread_cond_timedwait(&s->drained, &s->lock, &ts) == ETIMEDOUT)
			break;
	if (s->in_flight > 0)
		log_warning("stopping with %u request(s) still unanswered after %u s", s->in_flight,
			    s->timeout_s + 1);
	pthread_mutex_unlock(&s->lock);
}

void server_stop(struct server *s)
{
	MHD_socket fd;

	if (!s)
		return;
	if (s->mhd) {
		/* Stop accepting and take MHD's listen descriptor back, remove
		 * the name so new clients fail fast, let the requests in
		 * progress be answered (MHD keeps serving the connections it
		 * has), then close every connection and join. The wait is
		 * bounded by the request timeout: the reaper cuts a client that
		 * is slower. Idle keep-alive connections do not hold it up. */
		fd = MHD_quiesce_daemon(s->mhd);
		socket_unlink(s);
		drain(s);
		MHD_stop_daemon(s->mhd);
		if (fd != MHD_INVALID_SOCKET)
			(void)close(fd);
	}
	/* After MHD: every peer is unlinked, and the reaper may still cut
	 * slow connections while MHD waits for a handler. */
	reaper_stop(s);
	if (s->sync_ready) {
		pthread_cond_destroy(&s->wake);
		pthread_cond_destroy(&s->drained);
		pthread_mutex_destroy(&s->lock);
	}
	free(s->uids);
	socket_unlink(s);
	if (s->listen_fd >= 0)
		(void)close(s->listen_fd);
	free(s->socket_path);
	free(s);
}
