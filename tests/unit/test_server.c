/* tests/unit/test_server.c: the socket server, driven by a raw HTTP client
 * over a real AF_UNIX socket in a temporary directory. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <strings.h>
#include <setjmp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <microhttpd.h>
#include <sodium.h>
#include "common/json.h"
#include "common/log.h"
#include "common/secret.h"
#include "vaultd/http/server.h"

#define MAX_BODY 4096
#define MAX_URL 1024

/* ---- the test handler --------------------------------------------------- */

static atomic_int handler_calls;
static atomic_int slow_entered, slow_done;

static int add_pair(const char *k, const char *v, void *u)
{
	return json_array_append_new(u, json_pack("[s, s]", k, v)) < 0 ? -ENOMEM : 0;
}

static int echo_handler(void *userdata, const struct server_request *req, json_t **ret_body)
{
	json_t *q, *b;

	(void)userdata;
	atomic_fetch_add(&handler_calls, 1);
	if (streq(req->path, "/204")) {
		*ret_body = json_pack("{s:s}", "dropped", "yes");   /* must not be sent */
		return 204;
	}
	if (streq(req->path, "/bad-status"))
		return 99;
	if (streq(req->path, "/slow")) {
		atomic_store(&slow_entered, 1);
		usleep(300 * 1000);
		atomic_store(&slow_done, 1);
		return 200;
	}
	if (streq(req->path, "/sleep-1500")) {
		usleep(1500 * 1000);
		return 200;
	}

	q = json_array();
	assert_non_null(q);
	assert_int_equal(server_request_query_foreach(req, add_pair, q), 0);
	b = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:o, s:b, s:i, s:s?, s:s?, s:s?, s:s?, s:s}",
		      "method", req->method,
		      "path", req->path,
		      "uid", (json_int_t)req->uid,
		      "gid", (json_int_t)req->gid,
		      "pid", (json_int_t)req->pid,
		      "body_len", (json_int_t)(req->body ? (json_int_t)req->body->len : -1),
		      "query", q,
		      "query_repeated", req->query_repeated,
		      "x_count", (int)server_request_query_count(req, "x"),
		      "x", server_request_query(req, "x"),
		      "version", server_request_query(req, "version"),
		      "content_type", req->content_type,
		      "authorization", req->authorization,      /* test only */
		      "request_id", req->request_id);
	assert_non_null(b);
	if (req->body)
		assert_int_equal(json_object_set_new(b, "body",
						     json_stringn((const char *)req->body->p,
								  req->body->len)), 0);
	*ret_body = b;
	return 200;
}

/* ---- fixture ------------------------------------------------------------ */

struct fixture {
	char dir[64];
	char sock[128];
	struct server *srv;
};

static struct server_config default_config(const struct fixture *f)
{
	return (struct server_config){
		.socket_path = f->sock,
		.socket_mode = 0660,
		.socket_gid = (gid_t)-1,
		.max_connections = 8,
		.max_per_uid = 8,
		.timeout_s = 5,
		.max_body = MAX_BODY,
		.threads = 2,
		.max_url = MAX_URL,
	};
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	strcpy(f->dir, "/tmp/vaultd-test-server-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->sock, sizeof(f->sock), "%s/vaultd.sock", f->dir);
	atomic_store(&handler_calls, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	server_stop(f->srv);
	(void)unlink(f->sock);
	assert_int_equal(rmdir(f->dir), 0);
	free(f);
	return 0;
}

static void start_with(struct fixture *f, const struct server_config *cfg)
{
	assert_int_equal(server_start(cfg, echo_handler, NULL, &f->srv), 0);
}

static void start_default(struct fixture *f)
{
	struct server_config cfg = default_config(f);

	start_with(f, &cfg);
}

/* ---- a small raw HTTP client -------------------------------------------- */

struct conn {
	int fd;
	size_t len;
	char buf[64 * 1024];
};

struct resp {
	int status;
	char head[4096];                /* status line and headers */
	char body[16 * 1024];           /* NUL-terminated */
	size_t body_len;
};

static struct conn *cli_connect(const char *path)
{
	struct conn *c = calloc(1, sizeof(*c));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 3 };

	assert_non_null(c);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(c->fd >= 0);
	assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	strcpy(sa.sun_path, path);
	assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return c;
}

static void cli_close(struct conn *c)
{
	if (!c)
		return;
	(void)close(c->fd);
	free(c);
}

/* Sends all bytes; 0 or -errno (the server may close on us first). */
static int cli_send(struct conn *c, const void *p, size_t n)
{
	const char *s = p;

	while (n > 0) {
		ssize_t k = send(c->fd, s, n, MSG_NOSIGNAL);
		if (k < 0)
			return -errno;
		s += k;
		n -= (size_t)k;
	}
	return 0;
}

static int cli_sends(struct conn *c, const char *s)
{
	return cli_send(c, s, strlen(s));
}

static void cli_sendf(struct conn *c, const char *fmt, ...) _printf_(2, 3);
static void cli_sendf(struct conn *c, const char *fmt, ...)
{
	char buf[8192];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < sizeof(buf));
	assert_int_equal(cli_send(c, buf, (size_t)n), 0);
}

/* More bytes into c->buf: >0 read, 0 EOF, -errno (-EAGAIN after 3 s). */
static ssize_t cli_fill(struct conn *c)
{
	ssize_t k;

	assert_true(c->len < sizeof(c->buf));
	k = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
	if (k < 0)
		return -errno;
	c->len += (size_t)k;
	return k;
}

/* Value of header 'name' in r->head into out; false if absent. */
static bool resp_header(const struct resp *r, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name);

	for (const char *l = strstr(r->head, "\r\n"); l; l = strstr(l, "\r\n")) {
		l += 2;
		if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
			const char *v = l + nl + 1, *e;
			while (*v == ' ')
				v++;
			e = strstr(v, "\r\n");
			if (!e)
				e = v + strlen(v);
			snprintf(out, outlen, "%.*s", (int)(e - v), v);
			return true;
		}
	}
	return false;
}

/* Reads one response. 0; -ECONNRESET on EOF before a whole response; -errno. */
static int cli_read(struct conn *c, struct resp *r)
{
	char cl[32];
	char *end;
	size_t hlen, blen = 0;
	ssize_t k;

	memset(r, 0, sizeof(*r));
	while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4))) {
		k = cli_fill(c);
		if (k == 0 || k == -ECONNRESET)
			return -ECONNRESET;
		if (k < 0)
			return (int)k;
	}
	hlen = (size_t)(end - c->buf) + 4;
	assert_true(hlen < sizeof(r->head));
	memcpy(r->head, c->buf, hlen);
	assert_int_equal(sscanf(r->head, "HTTP/1.%*d %d", &r->status), 1);
	if (resp_header(r, "Content-Length", cl, sizeof(cl)))
		blen = strtoul(cl, NULL, 10);
	assert_true(blen < sizeof(r->body));
	while (c->len < hlen + blen) {
		k = cli_fill(c);
		if (k == 0)
			return -ECONNRESET;
		if (k < 0)
			return (int)k;
	}
	memcpy(r->body, c->buf + hlen, blen);
	r->body_len = blen;
	memmove(c->buf, c->buf + hlen + blen, c->len - hlen - blen);
	c->len -= hlen + blen;
	return 0;
}

/* True if the server closed the connection (EOF or reset) within 3 s. */
static bool cli_sees_close(struct conn *c)
{
	for (;;) {
		ssize_t k = cli_fill(c);
		if (k == 0 || k == -ECONNRESET)
			return true;
		if (k < 0)
			return false;   /* timeout */
	}
}

static json_t *resp_json(const struct resp *r)
{
	json_t *j = json_loadb(r->body, r->body_len, 0, NULL);

	assert_non_null(j);
	return j;
}

static void assert_error_reply(const struct resp *r, int status, const char *code)
{
	_cleanup_json_ json_t *j = NULL;
	char v[64];

	assert_int_equal(r->status, status);
	assert_true(resp_header(r, "Content-Type", v, sizeof(v)));
	assert_string_equal(v, "application/json");
	j = resp_json(r);
	assert_string_equal(json_string_value(json_object_get(j, "error")), code);
	assert_true(json_is_string(json_object_get(j, "message")));
}

static void get(struct conn *c, const char *target, struct resp *r)
{
	cli_sendf(c, "GET %s HTTP/1.1\r\nHost: vaultd\r\n\r\n", target);
	assert_int_equal(cli_read(c, r), 0);
}

static json_int_t jint(json_t *j, const char *k)
{
	assert_true(json_is_integer(json_object_get(j, k)));
	return json_integer_value(json_object_get(j, k));
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- tests -------------------------------------------------------------- */

static void test_get_json_and_peer(void **state)
{
	struct fixture *f = *state;
	_cleanup_json_ json_t *j = NULL;
	struct conn *c;
	struct resp r;
	char v[64];

	start_default(f);
	c = cli_connect(f->sock);
	get(c, "/v1/sys/health", &r);
	assert_int_equal(r.status, 200);
	assert_true(resp_header(&r, "Content-Type", v, sizeof(v)));
	assert_string_equal(v, "application/json");
	assert_true(resp_header(&r, "Cache-Control", v, sizeof(v)));
	assert_string_equal(v, "no-store");
	j = resp_json(&r);
	assert_string_equal(json_string_value(json_object_get(j, "method")), "GET");
	assert_string_equal(json_string_value(json_object_get(j, "path")), "/v1/sys/health");
	assert_int_equal(jint(j, "uid"), getuid());
	assert_int_equal(jint(j, "gid"), getgid());
	assert_int_equal(jint(j, "pid"), getpid());
	assert_int_equal(jint(j, "body_len"), -1);
	assert_true(json_is_null(json_object_get(j, "content_type")));
	assert_true(json_is_null(json_object_get(j, "authorization")));
	/* Compact serialisation. */
	assert_null(memchr(r.body, '\n', r.body_len));
	assert_null(strstr(r.body, "\": "));
	cli_close(c);
}

static void test_keepalive_and_pipelining(void **state)
{
	struct fixture *f = *state;
	struct conn *c;
	struct resp r;

	start_default(f);
	c = cli_connect(f->sock);
	get(c, "/one", &r);
	assert_int_equal(r.status, 200);
	get(c, "/two", &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"path\":\"/two\""));

	/* Two requests in one write, each with its own token: the wipe of the
	 * first request's Authorization must not touch the second request. */
	cli_sendf(c, "GET /p1 HTTP/1.1\r\nHost: v\r\nAuthorization: Bearer tok-one\r\n\r\n"
		     "GET /p2 HTTP/1.1\r\nHost: v\r\nAuthorization: Bearer tok-two\r\n\r\n");
	for (int i = 1; i <= 2; i++) {
		_cleanup_json_ json_t *j = NULL;
		char want[32];

		assert_int_equal(cli_read(c, &r), 0);
		assert_int_equal(r.status, 200);
		j = resp_json(&r);
		snprintf(want, sizeof(want), "/p%d", i);
		assert_string_equal(json_string_value(json_object_get(j, "path")), want);
		snprintf(want, sizeof(want), "Bearer tok-%s", i == 1 ? "one" : "two");
		assert_string_equal(json_string_value(json_object_get(j, "authorization")), want);
	}
	assert_int_equal(atomic_load(&handler_calls), 4);
	cli_close(c);
}

static void test_put_body_intact(void **state)
{
	struct fixture *f = *state;
	_cleanup_json_ json_t *j = NULL;
	const char *body = "{\"type\":\"generic\",\"data\":{\"k\":\"v \\u00e9 \\\"q\\\"\"}}";
	struct conn *c;
	struct resp r;

	start_default(f);
	c = cli_connect(f->sock);
	cli_sendf(c, "PUT /v1/secrets/acme/rmm/x HTTP/1.1\r\nHost: v\r\n"
		     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
		  strlen(body), body);
	assert_int_equal(cli_read(c, &r), 0);
	assert_int_equal(r.status, 200);
	j = resp_json(&r);
	assert_string_equal(json_string_value(json_object_get(j, "method")), "PUT");
	assert_string_equal(json_string_value(json_object_get(j, "path")), "/v1/secrets/acme/rmm/x");
	assert_string_equal(json_string_value(json_object_get(j, "content_type")), "application/json");
	assert_int_equal(jint(j, "body_len"), strlen(body));
	assert_string_equal(json_string_value(json_object_get(j, "body")), body);

	/* Exactly max_body bytes is allowed. */
	{
		_cleanup_json_ json_t *j2 = NULL;
		char *big = malloc(MAX_BODY + 1);

		assert_non_null(big);
		memset(big, 'a', MAX_BODY);
		big[MAX_BODY] = '\0';
		cli_sendf(c, "POST /full HTTP/1.1\r\nHost: v\r\nContent-Length: %d\r\n\r\n", MAX_BODY);
		assert_int_equal(cli_send(c, big, MAX_BODY), 0);
		assert_int_equal(cli_read(c, &r), 0);
		assert_int_equal(r.status, 200);
		j2 = resp_json(&r);
		assert_int_equal(jint(j2, "body_len"), MAX_BODY);
		assert_string_equal(json_string_value(json_object_get(j2, "body")), big);
		free(big);
	}
	cli_close(c);
}

static void test_chunked_body_intact(void **state)
{
	struct fixture *f = *state;
	_cleanup_json_ json_t *j = NULL;
	struct conn *c;
	struct resp r;

	start_default(f);
	c = cli_connect(f->sock);
	cli_sendf(c, "POST /chunked HTTP/1.1\r\nHost: v\r\nTransfer-Encoding: chunked\r\n\r\n"
		     "5\r\n{\"a\":\r\n4\r\n\"b\"}\r\n0\r\n\r\n");
	assert_int_equal(cli_read(c, &r), 0);
	assert_int_equal(r.status, 200);
	j = resp_json(&r);
	assert_string_equal(json_string_value(json_object_get(j, "body")), "{\"a\":\"b\"}");
	cli_close(c);
}

static void test_content_length_too_large(void **state)
{
	struct fixture *f = *state;
	struct conn *c;
	struct resp r;

	start_default(f);
	c = cli_connect(f->sock);
	/* Headers only: the 413 must come without the server reading a body. */
	cli_sendf(c, "PUT /v1/secrets/acme/x HTTP/1.1\r\nHost: v\r\nContent-Length: %d\r\n\r\n",
		  MAX_BODY + 1);
	assert_int_equal(cli_read(c, &r), 0);
	assert_error_reply(&r, 413, "too_large");
	assert_true(cli_sees_close(c));
	cli_close(c);

	/* With Expect: 100-continue the answer is 413, never 100. */
	c = cli_connect(f->sock);
	cli_sendf(c, "PUT /x HTTP/1.1\r\nHost: v\r\nExpect: 100-continue\r\n"
		     "Content-Length: 99999999999999999999999\r\n\r\n");
	assert_int_equal(cli_read(c, &r), 0);
	assert_int_equal(r.status, 413);
	cli_close(c);
	assert_int_equal(atomic_load(&handler_calls), 0);
}

static void test_chunked_too_large(void **state)
{
	struct fixture *f = *state;
	char chunk[1000];
	struct conn *c;
	struct resp r;

	memset(chunk, 'z', sizeof(chunk));
	start_default(f);
	c = cli_connect(f->sock);
	cli_sendf(c, "POST /x HTTP/1.1\r\nHost: v\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (int i = 0; i < 5; i++) {   /* 5000 > MAX_BODY */
		cli_sendf(c, "%zx\r\n", sizeof(chunk));
		assert_int_equal(cli_send(c, chunk, sizeof(chunk)), 0);
		cli_sendf(c, "\r\n");
	}
	cli_sendf(c, "0\r\n\r\n");
	assert_int_equal(cli_read(c, &r), 0);
	assert_error_reply(&r, 413, "too_large");
	/* The body was read to its end, so the connection stays usable. */
	get(c, "/after", &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(atomic_load(&handler_calls), 1);
	cli_close(c);

	/* Far over the limit (> 2 * max_body): dropped without waiting for the end. */
	c = cli_connect(f->sock);
	cli_sendf(c, "POST /x HTTP/1.1\r\nHost: v\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (int i = 0; i < 12; i++) {
		char hdr[16];
		snprintf(hdr, sizeof(hdr), "%zx\r\n", sizeof(chunk));
		if (cli_sends(c, hdr) < 0 || cli_send(c, chunk, sizeof(chunk)) < 0 ||
		    cli_sends(c, "\r\n") < 0)
			break;
	}
	assert_true(cli_sees_close(c));
	assert_int_equal(atomic_load(&handler_calls), 1);
	cli_close(c);
}

static void test_url_too_long(void **state)
{
	struct fixture *f = *state;
	char target[2001];
	struct conn *c;
	struct resp r;

	start_default(f);
	target[0] = '/';
	memset(target + 1, 'a', sizeof(target) - 2);
	target[sizeof(target) - 1] = '\0';
	c = cli_connect(f->sock);
	get(c, target, &r);
	assert_error_reply(&r, 414, "uri_too_long");
	cli_close(c);

	/* The query counts: a short path with a long query is refused too. */
	memcpy(target, "/?q=", 4);
	c = cli_connect(f->sock);
	get(c, target, &r);
	assert_int_equal(r.status, 414);
	cli_close(c);
	assert_int_equal(atomic_load(&handler_calls), 0);

	/* Exactly max_url is fine. */
	target[MAX_URL] = '\0';
	c = cli_connect(f->sock);
	get(c, target, &r);
	assert_int_equal(r.status, 200);
	cli_close(c);
}

static void test_204_no_body(void **state)
{
	struct fixture *f = *state;
	struct conn *c;
	struct resp r;
	char v[64];

	start_default(f);
	c = cli_connect(f->sock);
	get(c, "/204", &r);
	assert_int_equal(r.status, 204);
	assert_int_equal(r.body_len, 0);
	assert_false(resp_header(&r, "Content-Type", v, sizeof(v)));
	assert_true(resp_header(&r, "X-Request-Id", v, sizeof(v)));
	/* No stray body bytes: the next reply on the connection parses cleanly. */
	get(c, "/next", &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"path\":\"/next\""));
	cli_close(c);
}

static void test_invalid_status_is_500(void **state)
{
	struct fixture *f = *state;
	struct conn *c;
	struct resp r;

	start_default(f);
	c = cli_connect(f->sock);
	get(c, "/bad-status", &r);
	assert_error_reply(&r, 500, "internal");
	cli_close(c);
}

static void test_request_id(void **state)
{
	struct fixture *f = *state;
	char ids[3][64];
	struct conn *c;
	struct resp r;

	start_default(f);
	c = cli_connect(f->sock);
	for (int i = 0; i < 3; i++) {
		_cleanup_json_ json_t *j = NULL;

		get(c, "/id", &r);
		assert_true(resp_header(&r, "X-Request-Id", ids[i], sizeof(ids[i])));
		assert_int_equal(strlen(ids[i]), 32);
		assert_int_equal(strspn(ids[i], "0123456789abcdef"), 32);
		j = resp_json(&r);
		assert_string_equal(json_string_value(json_object_get(j, "request_id")), ids[i]);
		for (int k = 0; k < i; k++)
			assert_string_not_equal(ids[i], ids[k]);
	}
	/* Server-generated errors carry one too. */
	get(c, "/bad-status", &r);
	assert_true(resp_header(&r, "X-Request-Id", ids[0], sizeof(ids[0])));
	assert_int_equal(strlen(ids[0]), 32);
	cli_close(c);
}

static void test_query(void **state)
{
	struct fixture *f = *state;
	_cleanup_json_ json_t *j = NULL, *want = NULL, *j2 = NULL;
	struct conn *c;
	struct resp r;

	start_default(f);
	c = cli_connect(f->sock);
	get(c, "/v1/secrets/acme/a%2Fb?list=1&x=1&x=2&y=%41%20b+c&flag", &r);
	assert_int_equal(r.status, 200);
	j = resp_json(&r);
	/* The path is passed as received: not decoded, query removed. */
	assert_string_equal(json_string_value(json_object_get(j, "path")), "/v1/secrets/acme/a%2Fb");
	want = json_pack("[[s,s],[s,s],[s,s],[s,s],[s,s]]", "list", "1", "x", "1", "x", "2",
			 "y", "A b c", "flag", "");
	assert_true(json_equal(json_object_get(j, "query"), want));
	assert_true(json_is_true(json_object_get(j, "query_repeated")));
	assert_int_equal(jint(j, "x_count"), 2);
	assert_true(json_is_null(json_object_get(j, "x")));     /* repeated: no value */

	get(c, "/v1/secrets/acme/db?version=3", &r);
	j2 = resp_json(&r);
	assert_true(json_is_false(json_object_get(j2, "query_repeated")));
	assert_string_equal(json_string_value(json_object_get(j2, "version")), "3");
	assert_int_equal(jint(j2, "x_count"), 0);
	cli_close(c);
}

static void test_unknown_method_and_auth_header(void **state)
{
	struct fixture *f = *state;
	_cleanup_json_ json_t *j = NULL;
	struct conn *c;
	struct resp r;

	start_default(f);
	c = cli_connect(f->sock);
	cli_sendf(c, "BREW /pot HTTP/1.1\r\nHost: v\r\n\r\n");
	assert_int_equal(cli_read(c, &r), 0);
	assert_int_equal(r.status, 200);
	j = resp_json(&r);
	assert_string_equal(json_string_value(json_object_get(j, "method")), "BREW");

	cli_sendf(c, "GET /x HTTP/1.1\r\nHost: v\r\nAuthorization: Bearer a\r\n"
		     "Authorization: Bearer b\r\n\r\n");
	assert_int_equal(cli_read(c, &r), 0);
	assert_error_reply(&r, 400, "bad_request");
	assert_int_equal(atomic_load(&handler_calls), 1);
	cli_close(c);
}

static void test_idle_timeout(void **state)
{
	struct fixture *f = *state;
	struct server_config cfg = default_config(f);
	struct conn *idle, *partial, *c;
	struct resp r;
	double t0;

	cfg.timeout_s = 1;
	start_with(f, &cfg);
	t0 = now_s();
	idle = cli_connect(f->sock);            /* sends nothing */
	partial = cli_connect(f->sock);         /* half a request */
	cli_sendf(partial, "GET /slowloris HTTP/1.1\r\nHost: v\r\n");

	/* Meanwhile another client is served. */
	c = cli_connect(f->sock);
	get(c, "/live", &r);
	assert_int_equal(r.status, 200);

	assert_true(cli_sees_close(idle));
	assert_true(cli_sees_close(partial));
	assert_true(now_s() - t0 < 3.0);
	assert_int_equal(atomic_load(&handler_calls), 1);
	cli_close(idle);
	cli_close(partial);
	cli_close(c);
}

static void test_connection_limit(void **state)
{
	struct fixture *f = *state;
	struct server_config cfg = default_config(f);
	struct conn *a, *b, *third;
	struct pollfd pfd;
	struct resp r;

	cfg.max_connections = 2;
	cfg.max_per_uid = 2;
	cfg.threads = 2;
	start_with(f, &cfg);
	a = cli_connect(f->sock);
	get(a, "/a", &r);
	assert_int_equal(r.status, 200);
	b = cli_connect(f->sock);
	get(b, "/b", &r);
	assert_int_equal(r.status, 200);

	/* MHD 0.9.75 stops accepting at the limit: the third connect() succeeds
	 * (the kernel queues it in the listen backlog) but nothing reads it... */
	third = cli_connect(f->sock);
	cli_sendf(third, "GET /third HTTP/1.1\r\nHost: v\r\n\r\n");
	pfd = (struct pollfd){ .fd = third->fd, .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 500), 0);
	assert_int_equal(atomic_load(&handler_calls), 2);

	/* ...until a slot frees up; then it is served, not dropped. */
	cli_close(a);
	assert_int_equal(cli_read(third, &r), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"path\":\"/third\""));
	cli_close(b);
	cli_close(third);
}

static void test_socket_mode_and_group(void **state)
{
	struct fixture *f = *state;
	struct server_config cfg = default_config(f);
	struct stat st;

	cfg.socket_mode = 0660;
	cfg.socket_gid = getgid();
	start_with(f, &cfg);
	assert_int_equal(lstat(f->sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0660);
	assert_int_equal(st.st_gid, getgid());
	server_stop(TAKE_PTR(f->srv));

	cfg.socket_mode = 0600;
	cfg.socket_gid = (gid_t)-1;
	start_with(f, &cfg);
	assert_int_equal(lstat(f->sock, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
}

static void test_stale_socket_replaced(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct server *second = NULL;
	struct server_config cfg = default_config(f);
	struct conn *c;
	struct resp r;
	struct stat st;
	int fd;

	/* A socket file nobody listens on, as a crashed daemon leaves it. */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	strcpy(sa.sun_path, f->sock);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(lstat(f->sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));

	start_default(f);
	c = cli_connect(f->sock);
	get(c, "/after-stale", &r);
	assert_int_equal(r.status, 200);
	cli_close(c);

	/* A live server is not replaced. */
	assert_int_equal(server_start(&cfg, echo_handler, NULL, &second), -EADDRINUSE);
	assert_null(second);
	c = cli_connect(f->sock);
	get(c, "/still-first", &r);
	assert_int_equal(r.status, 200);
	cli_close(c);
}

static void test_regular_file_refused(void **state)
{
	struct fixture *f = *state;
	struct server_config cfg = default_config(f);
	struct server *s = NULL;
	struct stat st;
	FILE *fp;

	fp = fopen(f->sock, "w");
	assert_non_null(fp);
	fputs("keep me", fp);
	fclose(fp);
	assert_int_equal(server_start(&cfg, echo_handler, NULL, &s), -EEXIST);
	assert_null(s);
	assert_int_equal(lstat(f->sock, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_size, 7);
}

static void test_bad_config(void **state)
{
	struct fixture *f = *state;
	struct server_config cfg = default_config(f);
	struct server *s = NULL;
	char longpath[200];

	cfg.threads = 9;                /* more workers than connections */
	assert_int_equal(server_start(&cfg, echo_handler, NULL, &s), -EINVAL);
	cfg = default_config(f);
	cfg.max_body = SECRET_MAX + 1;
	assert_int_equal(server_start(&cfg, echo_handler, NULL, &s), -EINVAL);
	cfg = default_config(f);
	cfg.timeout_s = 0;
	assert_int_equal(server_start(&cfg, echo_handler, NULL, &s), -EINVAL);
	cfg = default_config(f);
	memset(longpath, 'p', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	cfg.socket_path = longpath;
	assert_int_equal(server_start(&cfg, echo_handler, NULL, &s), -EINVAL);
	assert_null(s);
	assert_int_equal(access(f->sock, F_OK), -1);
}

static void test_stop_unlinks_and_waits(void **state)
{
	struct fixture *f = *state;
	struct stat st;
	struct conn *c;
	FILE *fp;

	server_stop(NULL);
	start_default(f);
	assert_int_equal(lstat(f->sock, &st), 0);

	/* A handler in progress finishes before server_stop() returns. */
	atomic_store(&slow_entered, 0);
	atomic_store(&slow_done, 0);
	c = cli_connect(f->sock);
	cli_sendf(c, "GET /slow HTTP/1.1\r\nHost: v\r\n\r\n");
	for (int i = 0; i < 200 && !atomic_load(&slow_entered); i++)
		usleep(5000);
	assert_true(atomic_load(&slow_entered));
	server_stop(TAKE_PTR(f->srv));
	assert_true(atomic_load(&slow_done));
	assert_int_equal(lstat(f->sock, &st), -1);
	assert_int_equal(errno, ENOENT);
	cli_close(c);

	/* It unlinks only its own socket, not what replaced it. */
	start_default(f);
	assert_int_equal(unlink(f->sock), 0);
	fp = fopen(f->sock, "w");
	assert_non_null(fp);
	fclose(fp);
	server_stop(TAKE_PTR(f->srv));
	assert_int_equal(lstat(f->sock, &st), 0);
	assert_true(S_ISREG(st.st_mode));
}

static void test_malformed_request(void **state)
{
	struct fixture *f = *state;
	struct conn *c;
	struct resp r;

	start_default(f);
	/* MHD answers these itself: 400 with its own HTML body, then closes. */
	c = cli_connect(f->sock);
	cli_sendf(c, "garbage garbage garbage\r\n\r\n");
	assert_int_equal(cli_read(c, &r), 0);
	assert_int_equal(r.status, 400);
	assert_true(cli_sees_close(c));
	cli_close(c);

	c = cli_connect(f->sock);
	cli_sendf(c, "GET /x HTTP/1.1\r\nHost: v\r\nno colon here\r\n\r\n");
	assert_int_equal(cli_read(c, &r), 0);
	assert_int_equal(r.status, 400);
	assert_true(cli_sees_close(c));
	cli_close(c);

	/* Beyond MHD's connection memory (max_url + 16 KiB): MHD's own answers
	 * (414 for the request line, 431 for headers), and no leak. */
	{
		size_t n = MAX_URL + 20 * 1024;
		char *big = malloc(n + 1);

		assert_non_null(big);
		memset(big, 'a', n);
		big[0] = '/';
		big[n] = '\0';
		c = cli_connect(f->sock);
		/* The server may answer and close before we finish writing. */
		(void)(cli_sends(c, "GET ") < 0 || cli_send(c, big, n) < 0 ||
		       cli_sends(c, " HTTP/1.1\r\nHost: v\r\n\r\n") < 0);
		assert_int_equal(cli_read(c, &r), 0);
		assert_int_equal(r.status, 414);
		cli_close(c);

		c = cli_connect(f->sock);
		(void)(cli_sends(c, "GET /x HTTP/1.1\r\nHost: v\r\nX-Big: ") < 0 ||
		       cli_send(c, big, n) < 0 || cli_sends(c, "\r\n\r\n") < 0);
		assert_int_equal(cli_read(c, &r), 0);
		assert_int_equal(r.status, 431);
		cli_close(c);
		free(big);
	}

	/* A one-word line: MHD 0.9.75 just closes, without any reply. */
	c = cli_connect(f->sock);
	cli_sendf(c, "garbage\r\n\r\n");
	assert_int_equal(cli_read(c, &r), -ECONNRESET);
	cli_close(c);

	/* A method that is not a token never reaches the handler: our JSON 400. */
	c = cli_connect(f->sock);
	cli_sendf(c, "G\x01T /x HTTP/1.1\r\nHost: v\r\n\r\n");
	assert_int_equal(cli_read(c, &r), 0);
	assert_error_reply(&r, 400, "bad_request");
	cli_close(c);

	/* The server keeps serving. */
	c = cli_connect(f->sock);
	get(c, "/after", &r);
	assert_int_equal(r.status, 200);
	cli_close(c);
	assert_int_equal(atomic_load(&handler_calls), 1);
}


/* ---- per-uid cap, request deadline ------------------------------------- */

static void assert_refused_busy(struct conn *c)
{
	char v[64];
	struct resp r;
	double t0 = now_s();

	/* The server may have closed its end before we write: send errors are fine. */
	(void)cli_sends(c, "GET /over HTTP/1.1\r\nHost: v\r\n\r\n");
	assert_int_equal(cli_read(c, &r), 0);
	assert_error_reply(&r, 503, "too_many_connections");
	assert_true(resp_header(&r, "Retry-After", v, sizeof(v)));
	assert_string_equal(v, "1");
	assert_true(resp_header(&r, "Connection", v, sizeof(v)));
	assert_string_equal(v, "close");
	assert_true(resp_header(&r, "Cache-Control", v, sizeof(v)));
	assert_string_equal(v, "no-store");
	assert_true(cli_sees_close(c));
	assert_true(now_s() - t0 < 1.0);
}

static void test_per_uid_cap(void **state)
{
	struct fixture *f = *state;
	struct server_config cfg = default_config(f);
	struct conn *held[2], *over[6], *c;
	struct resp r;

	/* One worker with 4 slots: refused connections that kept a slot while
	 * their clients idle would fill it by the third refusal. */
	cfg.max_connections = 4;
	cfg.threads = 1;
	cfg.max_per_uid = 2;
	start_with(f, &cfg);
	for (int i = 0; i < 2; i++) {
		held[i] = cli_connect(f->sock);
		get(held[i], "/held", &r);
		assert_int_equal(r.status, 200);
	}

	/* Our uid holds its 2: every further connection gets a JSON 503 and is
	 * closed at once, while our end of each stays open. */
	for (int i = 0; i < 6; i++) {
		over[i] = cli_connect(f->sock);
		assert_refused_busy(over[i]);
	}
	assert_int_equal(atomic_load(&handler_calls), 2);

	/* The held ones are still served; one closed frees its place. */
	get(held[1], "/still", &r);
	assert_int_equal(r.status, 200);
	cli_close(held[0]);
	for (int i = 0; i < 100; i++) {         /* the close reaches MHD in its own time */
		c = cli_connect(f->sock);
		(void)cli_sends(c, "GET /again HTTP/1.1\r\nHost: v\r\n\r\n");
		if (cli_read(c, &r) == 0 && r.status == 200)
			break;
		cli_close(TAKE_PTR(c));
		usleep(20 * 1000);
	}
	assert_non_null(c);
	assert_int_equal(r.status, 200);
	cli_close(c);
	cli_close(held[1]);
	for (int i = 0; i < 6; i++)
		cli_close(over[i]);
}

static void test_bad_per_uid_config(void **state)
{
	struct fixture *f = *state;
	struct server_config cfg = default_config(f);
	struct server *s = NULL;

	cfg.max_per_uid = 0;
	assert_int_equal(server_start(&cfg, echo_handler, NULL, &s), -EINVAL);
	cfg.max_per_uid = cfg.max_connections + 1;
	assert_int_equal(server_start(&cfg, echo_handler, NULL, &s), -EINVAL);
	assert_null(s);
}

/* True if the server closed c within ms (EOF or reset pending). */
static bool cli_closed_within(struct conn *c, int ms)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	char b;

	if (poll(&pfd, 1, ms) <= 0)
		return false;
	return recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) <= 0;
}

static void test_request_deadline(void **state)
{
	static const char req[] = "GET /trickle HTTP/1.1\r\nHost: v\r\nX-Pad: aaaaaaaaaaaa\r\n\r\n";
	struct fixture *f = *state;
	struct server_config cfg = default_config(f);
	struct conn *slow, *c;
	bool closed = false;
	struct resp r;
	double t0, t1, cut;

	cfg.timeout_s = 2;
	start_with(f, &cfg);
	t0 = now_s();
	slow = cli_connect(f->sock);
	/* One byte every 0.5 s: each byte restarts an idle timeout, never a deadline. */
	for (size_t i = 0; i < sizeof(req) - 1 && now_s() - t0 < 6.0; i++) {
		if (cli_send(slow, &req[i], 1) < 0 || cli_closed_within(slow, 500)) {
			closed = true;
			break;
		}
		if (i == 2) {
			/* Meanwhile another connection is served promptly. */
			t1 = now_s();
			c = cli_connect(f->sock);
			get(c, "/live", &r);
			assert_int_equal(r.status, 200);
			assert_true(now_s() - t1 < 0.5);
			cli_close(c);
		}
	}
	cut = now_s() - t0;
	assert_true(closed);
	assert_true(cut >= 1.5);
	assert_true(cut < 3.0);
	assert_true(cli_sees_close(slow));
	assert_int_equal(atomic_load(&handler_calls), 1);
	cli_close(slow);
}

static void test_deadline_skips_handler_restarts_per_request(void **state)
{
	static const char req[] = "GET /second HTTP/1.1\r\nHost: v\r\n\r\n";
	struct fixture *f = *state;
	struct server_config cfg = default_config(f);
	struct conn *c;
	struct resp r;
	double t0;

	cfg.timeout_s = 1;
	start_with(f, &cfg);
	c = cli_connect(f->sock);
	/* The handler's 1.5 s do not count against the 1 s deadline. */
	get(c, "/sleep-1500", &r);
	assert_int_equal(r.status, 200);

	/* The deadline restarts when a request ends: 0.3 s idle, then a request
	 * sent over 0.3 s, is well inside it... */
	usleep(300 * 1000);
	for (size_t i = 0, n; i < sizeof(req) - 1; i += n) {
		n = sizeof(req) - 1 - i < 8 ? sizeof(req) - 1 - i : 8;
		assert_int_equal(cli_send(c, req + i, n), 0);
		usleep(60 * 1000);
	}
	assert_int_equal(cli_read(c, &r), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"path\":\"/second\""));

	/* ...and an idle keep-alive connection is closed when it runs out. */
	t0 = now_s();
	assert_true(cli_sees_close(c));
	assert_true(now_s() - t0 < 2.0);
	cli_close(c);
}

/* ---- Authorization wiped on every path --------------------------------- */

static atomic_int auth_seen, auth_left, completions;

static enum MHD_Result auth_check_it(void *cls, enum MHD_ValueKind kind, const char *key,
				     size_t key_size, const char *value, size_t value_size)
{
	(void)cls;
	(void)kind;
	(void)key_size;
	if (!key || strcasecmp(key, "Authorization") != 0)
		return MHD_YES;
	atomic_fetch_add(&auth_seen, 1);
	for (size_t i = 0; i < value_size; i++)
		if (value[i] != '\0') {
			atomic_fetch_add(&auth_left, 1);
			break;
		}
	return MHD_YES;
}

/* Looks at MHD's own copy of the header values, after the server's clean-up. */
static void auth_check_completed(void *userdata, struct MHD_Connection *c)
{
	(void)userdata;
	(void)MHD_get_connection_values_n(c, MHD_HEADER_KIND, auth_check_it, NULL);
	atomic_fetch_add(&completions, 1);
}

/* Sends one request with an Authorization value unique to it and returns
 * the reply's status once the server has finished with the request. */
static int auth_case(struct fixture *f, const char *head, const char *tail, int headers)
{
	char token[33], req[4096];
	uint8_t raw[16];
	struct conn *c;
	struct resp r;
	int n, done = atomic_load(&completions);

	randombytes_buf(raw, sizeof(raw));
	(void)sodium_bin2hex(token, sizeof(token), raw, sizeof(raw));
	n = snprintf(req, sizeof(req), "%s\r\nHost: v\r\nAuthorization: Bearer %s\r\n%s%s%s\r\n",
		     head, token, headers > 1 ? "Authorization: Bearer " : "",
		     headers > 1 ? token : "", headers > 1 ? "\r\n" : "");
	assert_true(n > 0 && (size_t)n < sizeof(req));
	c = cli_connect(f->sock);
	(void)cli_send(c, req, (size_t)n);
	if (tail)
		(void)cli_sends(c, tail);
	sodium_memzero(req, sizeof(req));
	sodium_memzero(token, sizeof(token));
	assert_int_equal(cli_read(c, &r), 0);
	cli_close(c);
	for (int i = 0; i < 200 && atomic_load(&completions) == done; i++)
		usleep(10 * 1000);
	assert_int_equal(atomic_load(&completions), done + 1);
	return r.status;
}

static void test_authorization_wiped_on_early_replies(void **state)
{
	struct fixture *f = *state;
	struct server_config cfg = default_config(f);
	char longtarget[MAX_URL + 16], head[MAX_URL + 64];

	cfg.test_completed = auth_check_completed;
	start_with(f, &cfg);
	atomic_store(&auth_seen, 0);
	atomic_store(&auth_left, 0);
	atomic_store(&completions, 0);

	/* Served: the handler saw it, then it is wiped (as before). */
	assert_int_equal(auth_case(f, "GET /ok HTTP/1.1", NULL, 1), 200);
	assert_int_equal(atomic_load(&auth_seen), 1);
	assert_int_equal(atomic_load(&auth_left), 0);

	/* 413 from Content-Length: answered before the handler ever runs. */
	snprintf(head, sizeof(head), "PUT /big HTTP/1.1\r\nContent-Length: %d", MAX_BODY + 1);
	assert_int_equal(auth_case(f, head, NULL, 1), 413);
	assert_int_equal(atomic_load(&auth_seen), 2);
	assert_int_equal(atomic_load(&auth_left), 0);

	/* A repeated Authorization header: 400, both values wiped. */
	assert_int_equal(auth_case(f, "GET /twice HTTP/1.1", NULL, 2), 400);
	assert_int_equal(atomic_load(&auth_seen), 4);
	assert_int_equal(atomic_load(&auth_left), 0);

	/* 414. */
	longtarget[0] = '/';
	memset(longtarget + 1, 'u', sizeof(longtarget) - 2);
	longtarget[sizeof(longtarget) - 1] = '\0';
	snprintf(head, sizeof(head), "GET %s HTTP/1.1", longtarget);
	assert_int_equal(auth_case(f, head, NULL, 1), 414);
	assert_int_equal(atomic_load(&auth_seen), 5);
	assert_int_equal(atomic_load(&auth_left), 0);

	/* A chunked body over max_body (5 x 1000 bytes): 413 once it ended. */
	{
		char body[5 * 1008 + 8], *p = body;

		for (int i = 0; i < 5; i++) {
			p += sprintf(p, "3e8\r\n");
			memset(p, 'b', 1000);
			p += 1000;
			p += sprintf(p, "\r\n");
		}
		strcpy(p, "0\r\n\r\n");
		assert_int_equal(auth_case(f, "POST /chunks HTTP/1.1\r\nTransfer-Encoding: chunked",
					   body, 1), 413);
	}
	assert_int_equal(atomic_load(&auth_seen), 6);
	assert_int_equal(atomic_load(&auth_left), 0);
	assert_int_equal(atomic_load(&handler_calls), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
		T(test_get_json_and_peer),
		T(test_keepalive_and_pipelining),
		T(test_put_body_intact),
		T(test_chunked_body_intact),
		T(test_content_length_too_large),
		T(test_chunked_too_large),
		T(test_url_too_long),
		T(test_204_no_body),
		T(test_invalid_status_is_500),
		T(test_request_id),
		T(test_query),
		T(test_unknown_method_and_auth_header),
		T(test_idle_timeout),
		T(test_connection_limit),
		T(test_socket_mode_and_group),
		T(test_stale_socket_replaced),
		T(test_regular_file_refused),
		T(test_bad_config),
		T(test_stop_unlinks_and_waits),
		T(test_malformed_request),
		T(test_per_uid_cap),
		T(test_bad_per_uid_config),
		T(test_request_deadline),
		T(test_deadline_skips_handler_restarts_per_request),
		T(test_authorization_wiped_on_early_replies),
#undef T
	};

	/* As vaultd's main() does: a closed peer must not kill the process. */
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(secret_library_init(), 0);
	json_secure_init();
	if (getenv("TEST_SERVER_DEBUG"))
		log_set_max_level(LOG_DEBUG);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
