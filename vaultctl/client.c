/* vaultctl/client.c: see client.h. */
#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <sodium.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "common/json.h"
#include "vaultctl/client.h"
#include "vaultctl/msg.h"
#include "vaultctl/output.h"
#include "vaultctl/token.h"

#define REPLY_FIRST (64u * 1024)

int client_init(void)
{
	if (secret_library_init() < 0)
		return error("cannot initialise libsodium");
	json_secure_init();
	if (curl_global_init(CURL_GLOBAL_NOTHING) != CURLE_OK)
		return error("cannot initialise libcurl");
	return EXIT_OK;
}

void client_done(void)
{
	curl_global_cleanup();
}

DEFINE_CLEANUP(CURL *, curl_easy_cleanup)

/* The header list may hold the bearer token: wipe each string before freeing. */
static void slist_wipe_free(struct curl_slist *l)
{
	for (struct curl_slist *i = l; i; i = i->next)
		sodium_memzero(i->data, strlen(i->data));
	curl_slist_free_all(l);
}
DEFINE_CLEANUP(struct curl_slist *, slist_wipe_free)

static void json_dump_freep(char **p)
{
	if (*p) {
		sodium_memzero(*p, strlen(*p));
		json_secure_free(*p);
	}
}

/* The reply grows in sodium memory; the old buffer is wiped when replaced. */
struct sink {
	struct secret *buf;
	bool too_large;
};

static size_t on_data(char *p, size_t size, size_t n, void *userdata)
{
	struct sink *s = userdata;
	size_t len = size * n;

	if (len > SECRET_MAX - s->buf->len) {
		s->too_large = true;
		return 0;
	}
	if (s->buf->len + len > s->buf->cap) {
		struct secret *bigger;
		size_t cap = s->buf->cap;

		while (cap < s->buf->len + len)
			cap = cap > SECRET_MAX / 2 ? SECRET_MAX : cap * 2;
		if (secret_new(cap, &bigger) < 0)
			return 0;
		(void)secret_append(bigger, s->buf->p, s->buf->len);
		secret_free(s->buf);
		s->buf = bigger;
	}
	(void)secret_append(s->buf, p, len);
	return len;
}

/* curl says only "couldn't connect"; connect ourselves to learn why. */
static int report_connect_failure(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, e = 0;

	if (strlen(path) >= sizeof(sa.sun_path))
		return error("socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			e = errno;
		close(fd);
	}
	if (e == ENOENT || (e == 0 && stat(path, &st) < 0))
		return error("vaultd is not running (no socket at %s): start it, or give the socket with -s or VAULTD_SOCKET",
			     path);
	if (e == ECONNREFUSED)
		return error("vaultd is not running (connection refused at %s): start it, or check -s/VAULTD_SOCKET",
			     path);
	if (e == EACCES || e == EPERM)
		return error("permission denied on %s: ask an admin to add you to the socket's group", path);
	if (e == ENOTSOCK || e == ENOTDIR)
		return error("%s is not a socket: check -s or VAULTD_SOCKET", path);
	return error("cannot connect to vaultd at %s: %s", path, e ? strerror(e) : "connection failed");
}

char *path_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(strlen(s) * 3 + 1), *o = out;

	if (!out)
		return NULL;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		    strchr("._~/-", ch))
			*o++ = (char)ch;
		else {
			*o++ = '%';
			*o++ = hex[ch >> 4];
			*o++ = hex[ch & 15];
		}
	}
	*o = 0;
	return out;
}

int client_send(struct ctx *ctx, const char *method, const char *path, json_t *body, unsigned flags,
		long *ret_status, json_t **ret_body)
{
	_cleanup_(curl_easy_cleanupp) CURL *curl = NULL;
	_cleanup_(slist_wipe_freep) struct curl_slist *hdrs = NULL;
	_cleanup_(json_dump_freep) char *payload = NULL;
	_cleanup_free_ char *url = NULL;
	struct sink sink = { 0 };
	json_error_t jerr;
	json_t *reply;
	long status = 0;
	CURLcode cc;
	int r;

	if ((flags & API_AUTH) && (r = token_get(ctx)) != EXIT_OK)
		return r;
	curl = curl_easy_init();
	if (!curl || asprintf(&url, "http://vaultd%s", path) < 0)
		return error("out of memory");
	if (secret_new(REPLY_FIRST, &sink.buf) < 0)
		return error("out of memory");

	/* libmicrohttpd handles Expect: 100-continue, but waiting for it only adds latency. */
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (streq(method, "PUT") || streq(method, "POST"))
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	if ((flags & API_AUTH) && ctx->token) {
		_cleanup_secret_ struct secret *h = NULL;
		if (secret_new(ctx->token->len + 32, &h) < 0)
			return error("out of memory");
		(void)secret_append(h, "Authorization: Bearer ", 22);
		(void)secret_append(h, ctx->token->p, strlen((char *)ctx->token->p) + 1);
		hdrs = curl_slist_append(hdrs, (const char *)h->p);
	}
	if (!hdrs)
		return error("out of memory");

	curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, ctx->socket);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 300L); /* Argon2id and the HSM can be slow */
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
	if (body) {
		payload = json_dumps(body, JSON_COMPACT);
		if (!payload) {
			secret_free(sink.buf);
			return error("out of memory");
		}
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
	} else if (streq(method, "PUT") || streq(method, "POST")) {
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, 0L);
	}

	cc = curl_easy_perform(curl);
	if (cc != CURLE_OK) {
		bool too_large = sink.too_large;
		secret_free(sink.buf);
		if (too_large)
			return error("the reply of vaultd is larger than %u bytes", SECRET_MAX);
		if (cc == CURLE_COULDNT_CONNECT)
			return report_connect_failure(ctx->socket);
		return error("request to vaultd at %s failed: %s", ctx->socket, curl_easy_strerror(cc));
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	reply = sink.buf->len ? json_loadb((const char *)sink.buf->p, sink.buf->len, 0, &jerr) : NULL;
	secret_free(sink.buf);
	*ret_status = status;
	*ret_body = reply;
	return EXIT_OK;
}

int api_exit_code(long status, const json_t *body)
{
	const char *e = json_string_value(json_object_get(body, "error"));

	if (status >= 200 && status < 300)
		return EXIT_OK;
	switch (status) {
	case 401:
	case 429:
		return EXIT_AUTH;
	case 403:
		return EXIT_FORBIDDEN;
	case 404:
		return EXIT_NOT_FOUND;
	case 409:
		return EXIT_CONFLICT;
	case 503:
		if (e && (streq(e, "locked") || streq(e, "uninitialized")))
			return EXIT_LOCKED;
		return EXIT_ERROR;
	default:
		return EXIT_ERROR;
	}
}

void api_print_error(const char *what, long status, const json_t *body, unsigned flags)
{
	const char *e = json_string_value(json_object_get(body, "error"));
	const char *msg = json_string_value(json_object_get(body, "message"));
	const char *hint = NULL;
	const char *key;
	json_t *v;

	progress_wipe();
	if (!msg)
		msg = "unexpected reply";
	switch (status) {
	case 401:
		/* The server's message says what was refused; the hint says what
		 * to do about it, and only what applies to this request. */
		if (e && streq(e, "code_reused"))
			break;
		if (flags & API_CREDENTIALS)
			hint = "check the user, passphrase and code";
		else
			hint = "run 'vaultctl login'";
		break;
	case 429:
		msg = "too many failed attempts";
		hint = "wait for the lockout to pass and try again";
		break;
	case 503:
		if (e && streq(e, "locked")) {
			out_fline(stderr, "vaultctl: %s: the vault is locked: run 'vaultctl unlock'", what);
			return;
		}
		if (e && streq(e, "uninitialized")) {
			out_fline(stderr, "vaultctl: %s: the vault is not initialised: run 'vaultctl init'", what);
			return;
		}
		break;
	}
	/* The message and the field names and reasons are the server's text. */
	if (hint)
		out_fline(stderr, "vaultctl: %s: %s: %s", what, msg, hint);
	else if (json_is_string(json_object_get(body, "message")))
		out_fline(stderr, "vaultctl: %s: %s", what, msg);
	else
		out_fline(stderr, "vaultctl: %s: vaultd answered HTTP %ld", what, status);
	json_object_foreach((json_t *)json_object_get(body, "fields"), key, v)
		out_fline(stderr, "  %s: %s", key, json_is_string(v) ? json_string_value(v) : "invalid");
}

int api_call(struct ctx *ctx, const char *what, const char *method, const char *path, json_t *body,
	     unsigned flags, json_t **ret_body)
{
	_cleanup_json_ json_t *reply = NULL;
	long status;
	int r;

	r = client_send(ctx, method, path, body, flags, &status, &reply);
	if (r != EXIT_OK)
		return r;
	r = api_exit_code(status, reply);
	if (r != EXIT_OK) {
		if (!(flags & API_QUIET))
			api_print_error(what, status, reply, flags);
		return r;
	}
	if (ret_body)
		*ret_body = TAKE_PTR(reply);
	return EXIT_OK;
}
