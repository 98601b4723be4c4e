/* bench/ceiling.c: the ceiling vaultd's throughput is measured against.
 *
 *   ceiling --socket PATH --size BYTES [--threads N]
 *
 * A libmicrohttpd server built as vaultd's is (internal polling thread,
 * epoll, a pool of --threads workers, on a Unix socket it listens on
 * itself) that answers every request, any method and path, with a fixed
 * JSON body of --size bytes and the headers vaultd sends. It reads and
 * drops request bodies. Nothing else: no parsing, no crypto, no storage.
 * Runs until SIGTERM or SIGINT.
 */
#include <errno.h>
#include <getopt.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static char *body;
static size_t body_len;

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	static int marker;
	struct MHD_Response *r;
	enum MHD_Result ret;

	(void)cls, (void)url, (void)method, (void)version, (void)upload_data;
	if (!*con_cls) {
		*con_cls = &marker;
		return MHD_YES;
	}
	if (*upload_data_size) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	r = MHD_create_response_from_buffer(body_len, body, MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(r, "X-Request-Id", "00000000000000000000000000000000");
	ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "size", required_argument, NULL, 'n' },
		{ "threads", required_argument, NULL, 't' },
		{},
	};
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	const char *path = NULL;
	unsigned threads = 4;
	struct MHD_Daemon *d;
	sigset_t sigs;
	int c, fd, sig;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's': path = optarg; break;
		case 'n': body_len = strtoul(optarg, NULL, 10); break;
		case 't': threads = (unsigned)strtoul(optarg, NULL, 10); break;
		default:
			fputs("Usage: ceiling --socket PATH --size BYTES [--threads N]\n", stderr);
			return 2;
		}
	}
	if (!path || body_len < 2 || threads < 1 || strlen(path) >= sizeof(a.sun_path)) {
		fputs("Usage: ceiling --socket PATH --size BYTES [--threads N]\n", stderr);
		return 2;
	}
	/* A JSON string of the right size: {"x":"aaa..."}. */
	body = malloc(body_len + 1);
	if (!body)
		return 1;
	memset(body, 'a', body_len);
	if (body_len >= 8) {
		memcpy(body, "{\"x\":\"", 6);
		memcpy(body + body_len - 2, "\"}", 2);
	}
	body[body_len] = '\0';

	strcpy(a.sun_path, path);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 128) < 0) {
		fprintf(stderr, "ceiling: cannot listen on '%s': %s\n", path, strerror(errno));
		return 1;
	}
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC, 0, NULL, NULL,
			     on_request, NULL, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
			     MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT, 64u,
			     MHD_OPTION_END);
	if (!d) {
		fputs("ceiling: cannot start libmicrohttpd\n", stderr);
		return 1;
	}
	sigwait(&sigs, &sig);
	MHD_stop_daemon(d);
	unlink(path);
	free(body);
	return 0;
}
