/* bench/loadgen.c: a closed-loop HTTP/1.1 load generator over a Unix socket.
 *
 *   loadgen --socket PATH --requests FILE [--connections N] [--duration S]
 *           [--warmup S] [--header 'Name: value']... [--cpu N] [--label TEXT]
 *
 * FILE holds one request per line, "METHOD PATH" or "METHOD PATH BODY" (the
 * rest of the line is the body, sent as application/json). Each connection
 * is a thread with one keep-alive connection: it sends a request, reads the
 * whole response, records the latency and sends the next, walking FILE from
 * its own offset. Requests during the warm-up are not counted. Prints one
 * JSON object: requests, errors (a status outside 2xx, or a broken
 * connection), statuses, rps, and latency percentiles from a log-linear
 * histogram (about 1.5% resolution). A benchmark tool: figures, never a test.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SUB_BITS 6                      /* 64 sub-buckets per power of two */
#define SUB (1u << SUB_BITS)
#define BUCKETS (64 * SUB)
#define MAX_HEADERS 8
#define STATUS_MAX 600
#define MIN_READ(a, b) ((a) < (b) ? (a) : (b))

struct request {
	char *text;                     /* the whole request, ready to send */
	size_t len;
};

struct worker {
	pthread_t thread;
	unsigned index;
	uint64_t hist[BUCKETS];
	uint64_t count, errors;
	uint64_t status[STATUS_MAX];
	int failed_errno;
};

static const char *sock_path;
static struct request *reqs;
static size_t n_reqs;
static atomic_bool counting, stop;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned bucket_of(uint64_t v)
{
	unsigned msb;

	if (v < SUB)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	return (msb - SUB_BITS + 1) * SUB + (unsigned)((v >> (msb - SUB_BITS)) & (SUB - 1));
}

/* The middle of a bucket's range, in ns. */
static double bucket_value(unsigned b)
{
	unsigned e = b / SUB, m = b % SUB;

	if (e == 0)
		return m;
	return ((double)(SUB + m) + 0.5) * (double)(1ull << (e - 1));
}

static int connect_unix(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(sock_path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	strcpy(a.sun_path, sock_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads one response; returns its status, or -errno. buf carries bytes
 * over between responses (none, with a closed-loop client). */
static int read_response(int fd, char *buf, size_t size)
{
	size_t have = 0, body = 0, head;
	char *end = NULL, *p;
	int status;

	for (;;) {
		ssize_t n;

		if (have > 3 && (end = memmem(buf, have, "\r\n\r\n", 4)))
			break;
		if (have == size - 1)
			return -E2BIG;
		n = read(fd, buf + have, size - 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? -ECONNRESET : -errno;
		have += (size_t)n;
	}
	head = (size_t)(end - buf) + 4;
	buf[have] = '\0';
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
		return -EPROTO;
	for (p = buf; p && p < end; p = strstr(p, "\r\n")) {
		p += 2;
		if (!strncasecmp(p, "Content-Length:", 15))
			body = strtoul(p + 15, NULL, 10);
	}
	/* Skip the body without keeping it. */
	for (size_t got = have - head; got < body;) {
		ssize_t n = read(fd, buf, MIN_READ(size, body - got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? -ECONNRESET : -errno;
		got += (size_t)n;
	}
	return status;
}

static void *worker_main(void *userdata)
{
	struct worker *w = userdata;
	static _Thread_local char buf[1 << 16];
	size_t i = w->index * 7919u % n_reqs;
	int fd = connect_unix();

	if (fd < 0) {
		w->failed_errno = -fd;
		return NULL;
	}
	while (!atomic_load(&stop)) {
		const struct request *q = &reqs[i];
		uint64_t t0 = now_ns();
		int status;

		i = (i + 1) % n_reqs;
		status = write_all(fd, q->text, q->len);
		if (status == 0)
			status = read_response(fd, buf, sizeof(buf));
		if (!atomic_load(&counting))
			continue;
		if (status < 0) {
			w->errors++;
			w->failed_errno = -status;
			close(fd);
			if ((fd = connect_unix()) < 0)
				return NULL;
			continue;
		}
		w->count++;
		w->hist[bucket_of(now_ns() - t0)]++;
		if (status < STATUS_MAX)
			w->status[status]++;
		if (status < 200 || status > 299)
			w->errors++;
	}
	close(fd);
	return NULL;
}

static char *headers_text(char **headers, size_t n)
{
	size_t len = 1;
	char *out, *p;

	for (size_t i = 0; i < n; i++)
		len += strlen(headers[i]) + 2;
	out = p = malloc(len);
	if (!out)
		return NULL;
	*p = '\0';
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "%s\r\n", headers[i]);
	return out;
}

static int load_requests(const char *file, const char *extra)
{
	FILE *f = fopen(file, "re");
	char *line = NULL;
	size_t cap = 0, alloc = 0;
	ssize_t n;

	if (!f)
		return -errno;
	while ((n = getline(&line, &cap, f)) > 0) {
		char method[16], *path, *body, *sp;
		int len;

		while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (!n || line[0] == '#')
			continue;
		sp = strchr(line, ' ');
		if (!sp || sp - line >= (ssize_t)sizeof(method))
			goto bad;
		memcpy(method, line, (size_t)(sp - line));
		method[sp - line] = '\0';
		path = sp + 1;
		body = strchr(path, ' ');
		if (body)
			*body++ = '\0';
		if (n_reqs == alloc) {
			struct request *r = realloc(reqs, (alloc = alloc ? alloc * 2 : 256) * sizeof(*reqs));
			if (!r)
				goto nomem;
			reqs = r;
		}
		len = asprintf(&reqs[n_reqs].text,
			       "%s %s HTTP/1.1\r\nHost: vaultd\r\n%s%s%zu\r\n\r\n%s", method, path, extra,
			       body ? "Content-Type: application/json\r\nContent-Length: " : "Content-Length: ",
			       body ? strlen(body) : 0, body ? body : "");
		if (len < 0)
			goto nomem;
		reqs[n_reqs++].len = (size_t)len;
	}
	free(line);
	fclose(f);
	return n_reqs ? 0 : -ENODATA;
bad:
	fprintf(stderr, "loadgen: %s: a line is not 'METHOD PATH [BODY]'\n", file);
	free(line);
	fclose(f);
	return -EINVAL;
nomem:
	free(line);
	fclose(f);
	return -ENOMEM;
}

static double percentile(const uint64_t *hist, uint64_t total, double q)
{
	uint64_t want = (uint64_t)(q * (double)total), seen = 0;

	for (unsigned b = 0; b < BUCKETS; b++) {
		seen += hist[b];
		if (seen > want)
			return bucket_value(b);
	}
	return 0;
}

static void usage(void)
{
	fputs("Usage: loadgen --socket PATH --requests FILE [--connections N] [--duration S] [--warmup S]\n"
	      "               [--header 'Name: value']... [--cpu N] [--label TEXT]\n", stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "requests", required_argument, NULL, 'r' },
		{ "connections", required_argument, NULL, 'c' },
		{ "duration", required_argument, NULL, 'd' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "header", required_argument, NULL, 'H' },
		{ "cpu", required_argument, NULL, 'p' },
		{ "label", required_argument, NULL, 'l' },
		{},
	};
	char *headers[MAX_HEADERS], *extra;
	const char *file = NULL, *label = "";
	double duration = 5, warmup = 1;
	unsigned conns = 1, n_headers = 0;
	int cpu = -1, c, r;
	struct worker *w;
	uint64_t *hist, total = 0, errors = 0, status[STATUS_MAX] = {0};
	uint64_t t0, t1;
	bool first = true;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's': sock_path = optarg; break;
		case 'r': file = optarg; break;
		case 'c': conns = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'd': duration = strtod(optarg, NULL); break;
		case 'w': warmup = strtod(optarg, NULL); break;
		case 'H':
			if (n_headers == MAX_HEADERS)
				usage();
			headers[n_headers++] = optarg;
			break;
		case 'p': cpu = atoi(optarg); break;
		case 'l': label = optarg; break;
		default: usage();
		}
	}
	if (!sock_path || !file || conns < 1 || conns > 1024 || duration <= 0 || warmup < 0)
		usage();
	if (cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) < 0)
			fprintf(stderr, "loadgen: cannot pin to CPU %d: %s\n", cpu, strerror(errno));
	}
	extra = headers_text(headers, n_headers);
	if (!extra || (r = load_requests(file, extra)) < 0) {
		fprintf(stderr, "loadgen: cannot load '%s': %s\n", file, strerror(extra ? -r : ENOMEM));
		return 1;
	}
	w = calloc(conns, sizeof(*w));
	hist = calloc(BUCKETS, sizeof(*hist));
	if (!w || !hist)
		return 1;
	for (unsigned i = 0; i < conns; i++) {
		w[i].index = i;
		if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]) != 0)
			return 1;
	}
	usleep((useconds_t)(warmup * 1e6));
	t0 = now_ns();
	atomic_store(&counting, true);
	usleep((useconds_t)(duration * 1e6));
	atomic_store(&counting, false);
	t1 = now_ns();
	atomic_store(&stop, true);
	for (unsigned i = 0; i < conns; i++) {
		pthread_join(w[i].thread, NULL);
		for (unsigned b = 0; b < BUCKETS; b++)
			hist[b] += w[i].hist[b];
		for (unsigned s = 0; s < STATUS_MAX; s++)
			status[s] += w[i].status[s];
		total += w[i].count;
		errors += w[i].errors;
		if (w[i].failed_errno && !w[i].count)
			fprintf(stderr, "loadgen: connection %u: %s\n", i, strerror(w[i].failed_errno));
	}
	printf("{\"label\": \"%s\", \"connections\": %u, \"seconds\": %.3f, \"requests\": %" PRIu64
	       ", \"errors\": %" PRIu64 ", \"rps\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f, \"p999_us\": %.1f"
	       ", \"statuses\": {",
	       label, conns, (double)(t1 - t0) / 1e9, total, errors, (double)total * 1e9 / (double)(t1 - t0),
	       percentile(hist, total, 0.50) / 1e3, percentile(hist, total, 0.99) / 1e3,
	       percentile(hist, total, 0.999) / 1e3);
	for (unsigned s = 0; s < STATUS_MAX; s++)
		if (status[s]) {
			printf("%s\"%u\": %" PRIu64, first ? "" : ", ", s, status[s]);
			first = false;
		}
	puts("}}");
	return errors && !total ? 1 : 0;
}
