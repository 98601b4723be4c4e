/* fuzz/fuzz_http.c: whole HTTP requests, as bytes on the socket, through
 * the real server (libmicrohttpd and vaultd/http/server.c), router and
 * handlers, on a real store. LLVMFuzzerInitialize makes a `vaultd --dev`
 * vault in a temporary directory (a SoftHSM2 token of its own: the only key
 * provider there is), initialises and unlocks it and binds this process's
 * uid to the admin role, so requests without a token reach every
 * authenticated handler. Each input is written to a fresh connection and
 * the first answer read (an input that is not a whole request yet gets none
 * within 60 ms and is dropped, as a client that gives up).
 * Properties: every answer is an HTTP/1.1 status line with a JSON body (or
 * none at all, when vaultd cuts the connection), never a 5xx but 503/507.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "fuzz/fuzz.h"
#include "common/json.h"
#include "common/log.h"
#include "common/secret.h"
#include "vaultd/config.h"
#include "vaultd/core/dev.h"
#include "vaultd/core/vault.h"
#include "vaultd/http/api.h"
#include "vaultd/http/server.h"

static struct sockaddr_un addr;
/* Kept for the life of the process (libFuzzer never returns), and
 * reachable, so LeakSanitizer does not count them. */
static struct dev_vault dev;
static struct config cfg;
static struct vault *vault;
static struct api *api;
static struct server *server;

static void die(const char *what, int r)
{
	fprintf(stderr, "fuzz_http: %s: %s\n", what, strerror(r < 0 ? -r : r));
	abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* tmpfs: each request commits its audit record, and a disk's fsync
	 * would make the fuzzer wait on it. */
	char dir[] = "/dev/shm/vaultd-fuzz-http-XXXXXX", err[256];
	json_t *enrolment = NULL;
	int r = 0;

	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	if (secret_library_init() < 0)
		die("libsodium", EIO);
	json_secure_init();
	if (!mkdtemp(dir))
		die("mkdtemp", errno);
	/* dev_prepare() makes DIR itself. */
	if (rmdir(dir) < 0 || (r = dev_prepare(dir, &dev)) < 0)
		die("dev_prepare", r);
	if ((r = config_load_string(dev.config_text, dev.config_name, &cfg, err, sizeof(err))) < 0) {
		fprintf(stderr, "fuzz_http: %s\n", err);
		abort();
	}
	log_set_max_level(LOG_ERR);
	if ((r = secret_arena_init(64u << 20)) < 0)
		die("secret_arena_init", r);
	{
		struct vault_config vcfg = {
			.db_path = cfg.storage.path,
			.db_readers = cfg.storage.readers,
			.hsm = {
				.prov = {
					.module_path = cfg.hsm.module,
					.token_label = cfg.hsm.token_label,
					.pin_file = cfg.hsm.pin_file,
					.timeout_ms = cfg.hsm.timeout_ms,
				},
				.key_label = cfg.hsm.key_label,
				.mech = KEYPROV_MECH_OAEP_HOST,
				.hash = KEYPROV_HASH_SHA256,
			},
			.kek_cache_max = cfg.keys.kek_cache_max,
			.audit = { .retain_days = 0, .sync_normal = true, .sync_interval_ms = 1000 },
			.rotate_batch = cfg.rotation.batch_size,
			.kek_max_wraps = cfg.keys.kek_max_wraps,
		};
		struct api_config acfg = {
			.daemon_uid = getuid(),
			.session_ttl = cfg.auth.session_ttl,
			.max_failures = cfg.auth.max_failures,
			.lockout_seconds = cfg.auth.lockout_seconds,
			.keep_versions = cfg.secrets.keep_versions,
			.kek_max_wraps = cfg.keys.kek_max_wraps,
			.argon2 = { .iterations = 1, .memory_kib = 8192, .parallelism = 1 },
		};
		struct server_config scfg = {
			.socket_path = cfg.server.socket,
			.socket_mode = 0600,
			.socket_gid = (gid_t)-1,
			.max_connections = 64,
			.max_per_uid = 32,
			.timeout_s = 2,
			.max_body = cfg.server.max_body,
			.threads = 2,
			.max_url = 2048,
		};

		if ((r = vault_new(&vcfg, &vault)) < 0)
			die("vault_new", r);
		if ((r = api_new(&acfg, vault, &api)) < 0)
			die("api_new", r);
		if ((r = vault_init(vault, &acfg.argon2, DEV_ADMIN, dev.passphrase, NULL, NULL, &enrolment)) < 0)
			die("vault_init", r);
		json_decref(enrolment);
		if ((r = vault_unlock_with_passphrase(vault, DEV_ADMIN, dev.passphrase)) < 0 ||
		    (r = vault_bind_service(vault, "fuzz", getuid(), "[\"admin\"]")) < 0)
			die("unlock", r);
		if ((r = server_start(&scfg, api_handle, api, &server)) < 0)
			die("server_start", r);
	}
	addr.sun_family = AF_UNIX;
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", cfg.server.socket);
	/* The vault lives until the process ends: libFuzzer never returns. */
	return 0;
}

/* Whether buf holds one whole answer: its headers and Content-Length bytes. */
static bool complete(const char *buf, size_t n)
{
	const char *end = memmem(buf, n, "\r\n\r\n", 4), *cl;
	unsigned long len;

	if (!end)
		return false;
	cl = strcasestr(buf, "\r\nContent-Length: ");
	if (!cl || cl > end)
		return false;
	len = strtoul(cl + 18, NULL, 10);
	return (size_t)(end + 4 - buf) + len <= n;
}

/* Reads the first answer (until it is whole, vaultd closes, or it stalls). */
static size_t read_answer(int fd, char *buf, size_t size)
{
	size_t n = 0;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t k;

		/* An answer starts within milliseconds, or the input is a
		 * request that is not over yet (vaultd waits for the rest until
		 * request_timeout): waiting longer would only slow the fuzzer. */
		if (poll(&p, 1, n ? 2000 : 60) <= 0)
			break;
		k = read(fd, buf + n, size - 1 - n);
		if (k <= 0)
			break;
		n += (size_t)k;
		buf[n] = '\0';
		if (n == size - 1 || complete(buf, n))
			break;
	}
	buf[n] = '\0';
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char answer[1 << 20];
	size_t n, off = 0;
	int fd, status;

	if (size > 256 * 1024)
		return 0;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		die("connect", errno);
	while (off < size) {
		ssize_t k = write(fd, data + off, size - off);
		if (k <= 0)
			break;          /* vaultd refused the rest: it may answer still */
		off += (size_t)k;
	}
	n = read_answer(fd, answer, sizeof(answer));
	close(fd);
	if (n == 0)
		return 0;
	if (sscanf(answer, "HTTP/1.1 %3d ", &status) != 1) {
		fprintf(stderr, "fuzz_http: not an HTTP/1.1 answer: %.80s\n", answer);
		abort();
	}
	/* A 500 is a bug (503 and 507 are states: locked, busy, disk full). */
	if (status == 500) {
		fprintf(stderr, "fuzz_http: 500 for this input: %.300s\n", answer);
		abort();
	}
	/* Every body is JSON. */
	{
		const char *body = strstr(answer, "\r\n\r\n");
		if (body && body[4] && body[4] != '{') {
			fprintf(stderr, "fuzz_http: a body that is not JSON: %.300s\n", answer);
			abort();
		}
	}
	return 0;
}
