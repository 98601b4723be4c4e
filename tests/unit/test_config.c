/* tests/unit/test_config.c: vaultd.conf parsing, validation and file safety. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>
#include <cmocka.h>
#include "vaultd/config.h"

#define PIN "[hsm]\npin_env = VAULTD_HSM_PIN\n"  /* lines 1-2: makes a text loadable */

/* ARCHITECTURE.md section 9, verbatim. */
static const char arch_example[] =
	"[server]\n"
	"socket = /run/vaultd/vaultd.sock\n"
	"socket_mode = 0660\n"
	"socket_group = vaultd\n"
	"[storage]\n"
	"path = /var/lib/vaultd/vault.db\n"
	"[hsm]\n"
	"module = /usr/lib/softhsm/libsofthsm2.so\n"
	"token_label = vaultd\n"
	"pin_file = /etc/vaultd/hsm.pin     ; or pin_env = VAULTD_HSM_PIN\n"
	"key_label = vaultd-root\n"
	"[auth]\n"
	"session_ttl = 900\n"
	"max_failures = 5\n"
	"lockout_seconds = 300\n"
	"argon2_memory_kib = 65536\n"
	"argon2_iterations = 3\n"
	"[audit]\n"
	"jsonl_path =                        ; optional mirror of the audit chain as JSON lines\n";

static void assert_defaults_except_pin_and_group(const struct config *c)
{
	assert_string_equal(c->server.socket, "/run/vaultd/vaultd.sock");
	assert_int_equal(c->server.socket_mode, 0660);
	assert_int_equal(c->server.max_connections, 64);
	assert_int_equal(c->server.max_connections_per_uid, 32);
	assert_int_equal(c->server.request_timeout, 10);
	assert_int_equal(c->server.max_body, 65536);
	assert_int_equal(c->server.threads, 4);
	assert_string_equal(c->storage.path, "/var/lib/vaultd/vault.db");
	assert_int_equal(c->storage.readers, 4);
	assert_string_equal(c->hsm.module, "/usr/lib/softhsm/libsofthsm2.so");
	assert_string_equal(c->hsm.token_label, "vaultd");
	assert_string_equal(c->hsm.key_label, "vaultd-root");
	assert_string_equal(c->hsm.mechanism, "oaep-sha256-host");
	assert_string_equal(c->hsm.oaep_token_hash, "sha1");
	assert_int_equal(c->hsm.timeout_ms, 10000);
	assert_int_equal(c->auth.session_ttl, 900);
	assert_int_equal(c->auth.max_failures, 5);
	assert_int_equal(c->auth.lockout_seconds, 300);
	assert_int_equal(c->auth.argon2_memory_kib, 65536);
	assert_int_equal(c->auth.argon2_iterations, 3);
	assert_int_equal(c->auth.argon2_parallelism, 1);
	assert_null(c->audit.jsonl_path);
	assert_string_equal(c->audit.jsonl_on_failure, "refuse");
	assert_int_equal(c->audit.jsonl_timeout_ms, 1000);
	assert_int_equal(c->log.level, LOG_INFO);
}

static void assert_defaults_except_pin(const struct config *c)
{
	assert_null(c->server.socket_group);
	assert_defaults_except_pin_and_group(c);
}

static void test_init_defaults(void **state)
{
	struct config c;
	(void)state;

	assert_int_equal(config_init_defaults(&c), 0);
	assert_defaults_except_pin(&c);
	assert_null(c.hsm.pin_file);
	assert_null(c.hsm.pin_env);
	config_free(&c);
	assert_null(c.server.socket);
	config_free(&c);                /* twice is fine */
	config_free(NULL);
}

static void test_defaults_when_file_is_empty(void **state)
{
	_cleanup_(config_free) struct config c = {0};
	char err[256];
	(void)state;

	/* Nothing set: every default, but no PIN source, which has none. */
	assert_int_equal(config_load_string("", "t.conf", &c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err,
			    "t.conf: [hsm] pin_file, pin_env: neither is set; set exactly one");
	assert_null(c.server.socket);   /* zeroed on failure */

	/* Only the PIN source: everything else is the default. */
	assert_int_equal(config_load_string(PIN, "t.conf", &c, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_defaults_except_pin(&c);
	assert_null(c.hsm.pin_file);
	assert_string_equal(c.hsm.pin_env, "VAULTD_HSM_PIN");
}

static void test_full_config(void **state)
{
	_cleanup_(config_free) struct config c = {0};
	char err[256];
	static const char text[] =
		"; every key, none at its default\n"
		"# both comment styles at the start of a line\n"
		"[server]\n"
		"socket = /tmp/v/vaultd.sock\n"
		"socket_mode = 0600\n"
		"socket_group = vault-users\n"
		"max_connections = 4096\n"
		"max_connections_per_uid = 4096\n"
		"request_timeout = 3600\n"
		"max_body = 1024\n"
		"threads = 64\n"
		"\n"
		"[storage]\n"
		"path = /srv/vault/v.db\n"
		"readers = 16\n"
		"[hsm]\n"
		"module = /opt/hsm/lib/libvendor.so\n"
		"token_label = prod token 1\n"
		"pin_env = HSM_PIN_2\n"
		"key_label = root-key@2024\n"
		"mechanism = oaep-token\n"
		"oaep_token_hash = sha256\n"
		"timeout_ms = 600000\n"
		"[auth]\n"
		"session_ttl = 60\n"
		"max_failures = 100\n"
		"lockout_seconds = 86400\n"
		"argon2_memory_kib = 4194304\n"
		"argon2_iterations = 100\n"
		"argon2_parallelism = 16\n"
		"[audit]\n"
		"jsonl_path = /var/log/vaultd/audit.jsonl\n"
		"[log]\n"
		"level = debug\n";
	(void)state;

	assert_int_equal(config_load_string(text, "full.conf", &c, err, sizeof(err)), 0);
	assert_string_equal(c.server.socket, "/tmp/v/vaultd.sock");
	assert_int_equal(c.server.socket_mode, 0600);
	assert_string_equal(c.server.socket_group, "vault-users");
	assert_int_equal(c.server.max_connections, 4096);
	assert_int_equal(c.server.max_connections_per_uid, 4096);
	assert_int_equal(c.server.request_timeout, 3600);
	assert_int_equal(c.server.max_body, 1024);
	assert_int_equal(c.server.threads, 64);
	assert_string_equal(c.storage.path, "/srv/vault/v.db");
	assert_int_equal(c.storage.readers, 16);
	assert_string_equal(c.hsm.module, "/opt/hsm/lib/libvendor.so");
	assert_string_equal(c.hsm.token_label, "prod token 1");
	assert_null(c.hsm.pin_file);
	assert_string_equal(c.hsm.pin_env, "HSM_PIN_2");
	assert_string_equal(c.hsm.key_label, "root-key@2024");
	assert_string_equal(c.hsm.mechanism, "oaep-token");
	assert_string_equal(c.hsm.oaep_token_hash, "sha256");
	assert_int_equal(c.hsm.timeout_ms, 600000);
	assert_int_equal(c.auth.session_ttl, 60);
	assert_int_equal(c.auth.max_failures, 100);
	assert_int_equal(c.auth.lockout_seconds, 86400);
	assert_int_equal(c.auth.argon2_memory_kib, 4194304);
	assert_int_equal(c.auth.argon2_iterations, 100);
	assert_int_equal(c.auth.argon2_parallelism, 16);
	assert_string_equal(c.audit.jsonl_path, "/var/log/vaultd/audit.jsonl");
	assert_int_equal(c.log.level, LOG_DEBUG);
}

static void test_architecture_example(void **state)
{
	_cleanup_(config_free) struct config c = {0};
	char err[256];
	(void)state;

	assert_int_equal(config_load_string(arch_example, "arch.conf", &c, err, sizeof(err)), 0);
	assert_string_equal(c.server.socket_group, "vaultd");
	assert_string_equal(c.hsm.pin_file, "/etc/vaultd/hsm.pin");     /* inline comment dropped */
	assert_null(c.hsm.pin_env);
	assert_null(c.audit.jsonl_path);        /* "=   ; comment" is empty */
	assert_int_equal(c.server.socket_mode, 0660);
	assert_string_equal(c.hsm.key_label, "vaultd-root");
}

static void test_layout_tolerance(void **state)
{
	_cleanup_(config_free) struct config c = {0};
	char err[256];
	/* CRLF, blanks around '=', indented keys (never a continuation line),
	 * indented comments, comments after a section header, ';' inside a
	 * value (no blank before it), no final newline. */
	static const char text[] =
		"\xef\xbb\xbf[server]   ; the API\r\n"
		"  socket=/run/a;b.sock\r\n"
		"\tsocket_mode   =   0640   ; tabs and blanks\r\n"
		"    ; indented comment\r\n"
		"    threads = 2\r\n"
		"[hsm] # another\r\n"
		"  pin_file = /etc/p\r\n"
		"token_label = Token #2\r\n"
		"[log]\r\n"
		"level = warning";
	(void)state;

	assert_int_equal(config_load_string(text, "t.conf", &c, err, sizeof(err)), 0);
	assert_string_equal(c.server.socket, "/run/a;b.sock");
	assert_int_equal(c.server.socket_mode, 0640);
	assert_int_equal(c.server.threads, 2);
	assert_string_equal(c.hsm.pin_file, "/etc/p");
	assert_string_equal(c.hsm.token_label, "Token #2");     /* a '#' not standing alone */
	assert_int_equal(c.log.level, LOG_WARNING);
}

static void test_socket_path_limit(void **state)
{
	_cleanup_(config_free) struct config c = {0};
	char text[512], path[CONFIG_SOCKET_PATH_MAX + 2], err[256];
	(void)state;

	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[CONFIG_SOCKET_PATH_MAX] = '\0';    /* 107 characters: fits sun_path */
	snprintf(text, sizeof(text), PIN "[server]\nsocket = %s\n", path);
	assert_int_equal(config_load_string(text, "t.conf", &c, err, sizeof(err)), 0);
	assert_int_equal(strlen(c.server.socket), 107);
	config_free(&c);

	path[CONFIG_SOCKET_PATH_MAX] = 'a';     /* 108 */
	path[CONFIG_SOCKET_PATH_MAX + 1] = '\0';
	snprintf(text, sizeof(text), PIN "[server]\nsocket = %s\n", path);
	assert_int_equal(config_load_string(text, "t.conf", &c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "t.conf:4: [server] socket: must be at most 107 characters long");
}

struct reject_case {
	const char *text;
	const char *msg;
};

static const struct reject_case rejects[] = {
	/* names */
	{ PIN "[server]\nsockett = /x\n", "t.conf:4: [server] sockett: unknown key" },
	{ PIN "[sever]\nsocket = /x\n", "t.conf:3: unknown section [sever]" },
	{ PIN "[extra]\n", "t.conf:3: unknown section [extra]" },
	{ PIN "[ server ]\n", "t.conf:3: unknown section [ server ]" },
	{ PIN "[server] socket = /x\n", "t.conf:3: unexpected text after [server]" },
	{ "socket = /x\n" PIN, "t.conf:1: socket: key outside any section" },
	{ PIN "[hsm]\npin_env = OTHER\n", "t.conf:4: [hsm] pin_env: set twice (first on line 2)" },
	{ PIN "token_label = a\ntoken_label = b\n",
	  "t.conf:4: [hsm] token_label: set twice (first on line 3)" },
	/* syntax */
	{ PIN "[server]\nsocket /run/x.sock\n",
	  "t.conf:4: syntax error: expected '[section]' or 'key = value'" },
	{ PIN "[server\n", "t.conf:3: syntax error: expected '[section]' or 'key = value'" },
	{ PIN "[server]\nsocket: /run/x.sock\n",
	  "t.conf:4: syntax error: expected 'key = value', not 'key: value'" },
	{ PIN "= 5\n", "t.conf:3: syntax error: no key before '='" },
	{ PIN "[server]\nsocket = /run/x.sock # note\n",
	  "t.conf:4: [server] socket: '#' after a value is not a comment (use ';')" },
	{ PIN "token_label = tok #\n",
	  "t.conf:3: [hsm] token_label: '#' after a value is not a comment (use ';')" },
	/* the first error wins, whoever finds it */
	{ PIN "oops\n[server]\nnope = 1\n",
	  "t.conf:3: syntax error: expected '[section]' or 'key = value'" },
	{ PIN "[server]\nnope = 1\noops\n", "t.conf:4: [server] nope: unknown key" },
	/* octal modes */
	{ PIN "[server]\nsocket_mode = 0998\n",
	  "t.conf:4: [server] socket_mode: must be an octal mode like 0660" },
	{ PIN "[server]\nsocket_mode = rw-rw----\n",
	  "t.conf:4: [server] socket_mode: must be an octal mode like 0660" },
	{ PIN "[server]\nsocket_mode = 04660\n",
	  "t.conf:4: [server] socket_mode: must be an octal mode like 0660" },
	{ PIN "[server]\nsocket_mode = 1777\n",
	  "t.conf:4: [server] socket_mode: must be an octal mode like 0660" },
	{ PIN "[server]\nsocket_mode = -660\n",
	  "t.conf:4: [server] socket_mode: must be an octal mode like 0660" },
	{ PIN "[server]\nsocket_mode =\n",
	  "t.conf:4: [server] socket_mode: must be an octal mode like 0660" },
	{ PIN "[server]\nsocket_mode = 0662\n",
	  "t.conf:4: [server] socket_mode: must not let others write (o+w), as 0662 does" },
	/* integers: range, junk, sign, base, overflow */
	{ PIN "[server]\nmax_connections = 0\n",
	  "t.conf:4: [server] max_connections: must be an integer from 1 to 4096" },
	{ PIN "[server]\nmax_connections = 4097\n",
	  "t.conf:4: [server] max_connections: must be an integer from 1 to 4096" },
	{ PIN "[server]\nmax_body = 1023\n",
	  "t.conf:4: [server] max_body: must be an integer from 1024 to 1048576" },
	{ PIN "[server]\nmax_body = 1048577\n",
	  "t.conf:4: [server] max_body: must be an integer from 1024 to 1048576" },
	{ PIN "[server]\nrequest_timeout = 10s\n",
	  "t.conf:4: [server] request_timeout: must be an integer from 1 to 3600" },
	{ PIN "[server]\nthreads = -1\n",
	  "t.conf:4: [server] threads: must be an integer from 1 to 64" },
	{ PIN "[server]\nthreads = +4\n",
	  "t.conf:4: [server] threads: must be an integer from 1 to 64" },
	{ PIN "[server]\nthreads = 0x4\n",
	  "t.conf:4: [server] threads: must be an integer from 1 to 64" },
	{ PIN "[server]\nthreads = 4 4\n",
	  "t.conf:4: [server] threads: must be an integer from 1 to 64" },
	{ PIN "[server]\nthreads =\n",
	  "t.conf:4: [server] threads: must be an integer from 1 to 64" },
	{ PIN "[storage]\nreaders = 18446744073709551617\n",
	  "t.conf:4: [storage] readers: must be an integer from 1 to 16" },
	{ PIN "timeout_ms = 99\n",
	  "t.conf:3: [hsm] timeout_ms: must be an integer from 100 to 600000" },
	{ PIN "[auth]\nsession_ttl = 59\n",
	  "t.conf:4: [auth] session_ttl: must be an integer from 60 to 86400" },
	{ PIN "[auth]\nargon2_memory_kib = 4194305\n",
	  "t.conf:4: [auth] argon2_memory_kib: must be an integer from 8192 to 4194304" },
	{ PIN "[auth]\nargon2_memory_kib = 8191\n",
	  "t.conf:4: [auth] argon2_memory_kib: must be an integer from 8192 to 4194304" },
	{ PIN "[auth]\nargon2_parallelism = 17\n",
	  "t.conf:4: [auth] argon2_parallelism: must be an integer from 1 to 16" },
	/* paths */
	{ PIN "[storage]\npath = vault.db\n",
	  "t.conf:4: [storage] path: must be an absolute path" },
	{ PIN "[storage]\npath =\n", "t.conf:4: [storage] path: must be an absolute path" },
	{ PIN "[server]\nsocket = ./vaultd.sock\n",
	  "t.conf:4: [server] socket: must be an absolute path" },
	{ PIN "module = softhsm2.so\n", "t.conf:3: [hsm] module: must be an absolute path" },
	{ PIN "[audit]\njsonl_path = audit.jsonl\n",
	  "t.conf:4: [audit] jsonl_path: must be an absolute path" },
	{ "[hsm]\npin_file = ~/pin\n", "t.conf:2: [hsm] pin_file: must be an absolute path" },
	{ PIN "[storage]\npath = /a\x01" "b\n",
	  "t.conf:4: [storage] path: must not contain control characters" },
	/* the per-uid cap: a range, and never above max_connections, named on
	 * the later of the two lines */
	{ PIN "[server]\nmax_connections_per_uid = 0\n",
	  "t.conf:4: [server] max_connections_per_uid: must be an integer from 1 to 4096" },
	{ PIN "[server]\nmax_connections_per_uid = 4097\n",
	  "t.conf:4: [server] max_connections_per_uid: must be an integer from 1 to 4096" },
	{ PIN "[server]\nmax_connections = 16\nmax_connections_per_uid = 17\n",
	  "t.conf:5: [server] max_connections_per_uid: 17 is more than max_connections (16)" },
	{ PIN "[server]\nmax_connections_per_uid = 40\nthreads = 2\nmax_connections = 39\n",
	  "t.conf:6: [server] max_connections_per_uid: 40 is more than max_connections (39)" },
	{ PIN "[server]\nmax_connections_per_uid = 65\n",
	  "t.conf:4: [server] max_connections_per_uid: 65 is more than max_connections (64)" },
	/* threads must not exceed max_connections (libmicrohttpd splits the limit) */
	{ PIN "[server]\nmax_connections = 2\nthreads = 3\n",
	  "t.conf:5: [server] threads: 3 is more than max_connections (2)" },
	/* PIN source */
	{ "[hsm]\npin_file = /etc/vaultd/hsm.pin\npin_env = VAULTD_HSM_PIN\n",
	  "t.conf:3: [hsm] pin_env: set together with pin_file (line 2); set exactly one" },
	{ "[hsm]\npin_env = VAULTD_HSM_PIN\npin_file = /etc/vaultd/hsm.pin\n",
	  "t.conf:3: [hsm] pin_file: set together with pin_env (line 2); set exactly one" },
	{ "[hsm]\npin_file =\npin_env =\n",
	  "t.conf: [hsm] pin_file, pin_env: neither is set; set exactly one" },
	{ "[hsm]\npin_env = 1PIN\n",
	  "t.conf:2: [hsm] pin_env: must be empty or 1 to 128 characters from A-Z a-z 0-9 _, "
	  "not starting with a digit" },
	/* strings and choices */
	{ PIN "mechanism = rsa-pkcs\n",
	  "t.conf:3: [hsm] mechanism: must be one of: oaep-sha256-host, oaep-token" },
	{ PIN "mechanism =\n",
	  "t.conf:3: [hsm] mechanism: must be one of: oaep-sha256-host, oaep-token" },
	{ PIN "oaep_token_hash = md5\n",
	  "t.conf:3: [hsm] oaep_token_hash: must be one of: sha1, sha256" },
	{ PIN "[log]\nlevel = verbose\n",
	  "t.conf:4: [log] level: must be one of: error, warning, notice, info, debug" },
	{ PIN "key_label = vaultd root\n",
	  "t.conf:3: [hsm] key_label: must be 1 to 64 printable ASCII characters, no spaces" },
	{ PIN "key_label =\n",
	  "t.conf:3: [hsm] key_label: must be 1 to 64 printable ASCII characters, no spaces" },
	{ PIN "token_label = 123456789012345678901234567890123\n",
	  "t.conf:3: [hsm] token_label: must be 1 to 32 bytes, no control characters" },
	{ PIN "[server]\nsocket_group = -wheel\n",
	  "t.conf:4: [server] socket_group: must be empty or 1 to 32 characters from "
	  "A-Z a-z 0-9 . _ -, not starting with -" },
	/* names in messages are made printable */
	{ PIN "[server]\nsock\x1b[31met = 1\n", "t.conf:4: [server] sock?[31met: unknown key" },
};

static void test_rejections(void **state)
{
	char err[256];
	int r;
	(void)state;

	for (size_t i = 0; i < sizeof(rejects) / sizeof(rejects[0]); i++) {
		struct config c;

		memset(&c, 0xa5, sizeof(c));    /* garbage in: nothing is freed or kept */
		r = config_load_string(rejects[i].text, "t.conf", &c, err, sizeof(err));
		if (r != -EINVAL || strcmp(err, rejects[i].msg) != 0)
			print_message("case %zu: got %d \"%s\"\n", i, r, err);
		assert_int_equal(r, -EINVAL);
		assert_string_equal(err, rejects[i].msg);
		assert_null(c.server.socket);   /* zeroed, nothing leaked */
		assert_null(c.hsm.pin_env);
	}
}

/* Unset, the per-uid cap is 32, or half of a smaller max_connections, so
 * that one uid never holds every connection unless the file says so. */
static void test_per_uid_default(void **state)
{
	static const struct {
		const char *text;
		unsigned want;
	} cases[] = {
		{ PIN, 32 },
		{ PIN "[server]\nmax_connections = 4096\n", 32 },
		{ PIN "[server]\nmax_connections = 63\n", 31 },
		{ PIN "[server]\nmax_connections = 16\n", 8 },
		{ PIN "[server]\nmax_connections = 1\nthreads = 1\n", 1 },
		{ PIN "[server]\nmax_connections = 16\nmax_connections_per_uid = 16\n", 16 },
		{ PIN "[server]\nmax_connections_per_uid = 64\n", 64 },
		{ PIN "[server]\nmax_connections_per_uid = 1\n", 1 },
	};
	char err[256];
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		_cleanup_(config_free) struct config c = {0};

		assert_int_equal(config_load_string(cases[i].text, "t.conf", &c, err, sizeof(err)),
				 0);
		assert_int_equal(c.server.max_connections_per_uid, cases[i].want);
	}
}

static void test_line_too_long(void **state)
{
	_cleanup_(config_free) struct config c = {0};
	char text[512], path[256], err[256];
	(void)state;

	/* "path = " (7) + 190 = 197: the longest line accepted. */
	memset(path, 'p', sizeof(path));
	path[0] = '/';
	path[190] = '\0';
	snprintf(text, sizeof(text), PIN "[storage]\npath = %s\n", path);
	assert_int_equal(config_load_string(text, "t.conf", &c, err, sizeof(err)), 0);
	assert_int_equal(strlen(c.storage.path), 190);
	config_free(&c);

	path[190] = 'p';
	path[191] = '\0';
	snprintf(text, sizeof(text), PIN "[storage]\npath = %s\n", path);
	assert_int_equal(config_load_string(text, "t.conf", &c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "t.conf:4: line longer than 197 characters");
}

static void test_small_or_no_error_buffer(void **state)
{
	struct config c;
	char err[12];
	(void)state;

	assert_int_equal(config_load_string(PIN "[x]\n", "t.conf", &c, NULL, 0), -EINVAL);
	assert_int_equal(config_load_string(PIN "[x]\n", "t.conf", &c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "t.conf:3: u");    /* truncated, terminated */
	assert_int_equal(config_load_string("", NULL, &c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "<string>: [");
}

/* Files: each test gets a fresh mode-0700 directory. */
struct tmp {
	char dir[64];
};

static int tmp_setup(void **state)
{
	struct tmp *t = calloc(1, sizeof(*t));

	if (!t)
		return -1;
	strcpy(t->dir, "/tmp/test_config.XXXXXX");
	if (!mkdtemp(t->dir)) {
		free(t);
		return -1;
	}
	*state = t;
	return 0;
}

static int tmp_teardown(void **state)
{
	struct tmp *t = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
	if (system(cmd) != 0)
		return -1;
	free(t);
	return 0;
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
	assert_int_equal(chmod(path, mode), 0);     /* not subject to the umask */
}

static void test_load_file(void **state)
{
	struct tmp *t = *state;
	_cleanup_(config_free) struct config c = {0};
	static const char open_mode[] = PIN "[server]\nsocket_mode = 0777\n";
	static const char with_nul[] = PIN "[log]\nlevel = info\0debug\n";
	char path[128], err[256], expect[256];

	snprintf(path, sizeof(path), "%s/vaultd.conf", t->dir);
	write_file(path, arch_example, strlen(arch_example), 0640);
	assert_int_equal(config_check_file_safety(path, err, sizeof(err)), 0);
	assert_int_equal(config_load(path, &c, err, sizeof(err)), 0);
	assert_string_equal(c.hsm.pin_file, "/etc/vaultd/hsm.pin");
	config_free(&c);

	/* Messages carry the path. */
	write_file(path, open_mode, sizeof(open_mode) - 1, 0600);
	assert_int_equal(config_load(path, &c, err, sizeof(err)), -EINVAL);
	snprintf(expect, sizeof(expect),
		 "%s:4: [server] socket_mode: must not let others write (o+w), as 0777 does", path);
	assert_string_equal(err, expect);

	/* A NUL byte would hide the rest of its line from the parser. */
	write_file(path, with_nul, sizeof(with_nul) - 1, 0600);
	assert_int_equal(config_load(path, &c, err, sizeof(err)), -EINVAL);
	snprintf(expect, sizeof(expect), "%s:4: NUL byte in the file", path);
	assert_string_equal(err, expect);
}

static void test_load_file_errors(void **state)
{
	struct tmp *t = *state;
	struct config c;
	char path[128], err[256], expect[256], *big;

	snprintf(path, sizeof(path), "%s/missing.conf", t->dir);
	assert_int_equal(config_load(path, &c, err, sizeof(err)), -ENOENT);
	snprintf(expect, sizeof(expect), "%s: cannot open: No such file or directory", path);
	assert_string_equal(err, expect);
	assert_null(c.server.socket);

	assert_int_equal(config_load(t->dir, &c, err, sizeof(err)), -EISDIR);
	snprintf(expect, sizeof(expect), "%s: not a regular file", t->dir);
	assert_string_equal(err, expect);

	snprintf(path, sizeof(path), "%s/big.conf", t->dir);
	big = malloc(CONFIG_FILE_MAX + 1);
	assert_non_null(big);
	memset(big, '\n', CONFIG_FILE_MAX + 1);
	write_file(path, big, CONFIG_FILE_MAX + 1, 0600);
	free(big);
	assert_int_equal(config_load(path, &c, err, sizeof(err)), -EFBIG);
	snprintf(expect, sizeof(expect), "%s: larger than 65536 bytes", path);
	assert_string_equal(err, expect);
}

static void test_file_safety(void **state)
{
	struct tmp *t = *state;
	char path[128], sub[128], link[160], err[256], expect[320];

	snprintf(path, sizeof(path), "%s/vaultd.conf", t->dir);
	write_file(path, PIN, strlen(PIN), 0666);
	assert_int_equal(config_check_file_safety(path, err, sizeof(err)), -EPERM);
	snprintf(expect, sizeof(expect),
		 "%s: refusing a world-writable config file (mode 0666); run chmod o-w", path);
	assert_string_equal(err, expect);

	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(config_check_file_safety(path, err, sizeof(err)), 0);
	assert_string_equal(err, "");

	/* The directory: world-writable refused, unless sticky (like /tmp). */
	assert_int_equal(chmod(t->dir, 0777), 0);
	assert_int_equal(config_check_file_safety(path, err, sizeof(err)), -EPERM);
	snprintf(expect, sizeof(expect),
		 "%s: refusing a config file in world-writable directory %s (mode 0777)",
		 path, t->dir);
	assert_string_equal(err, expect);
	assert_int_equal(chmod(t->dir, 01777), 0);
	assert_int_equal(config_check_file_safety(path, err, sizeof(err)), 0);

	/* A symlink from a safe directory to a file in an unsafe one. */
	assert_int_equal(chmod(t->dir, 0777), 0);
	snprintf(sub, sizeof(sub), "%s/safe", t->dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	snprintf(link, sizeof(link), "%s/link.conf", sub);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(config_check_file_safety(link, err, sizeof(err)), -EPERM);
	snprintf(expect, sizeof(expect),
		 "%s: refusing a config file in world-writable directory %s (mode 0777)",
		 link, t->dir);
	assert_string_equal(err, expect);
	assert_int_equal(chmod(t->dir, 0700), 0);
	assert_int_equal(config_check_file_safety(link, err, sizeof(err)), 0);

	/* Not a regular file; missing. */
	assert_int_equal(config_check_file_safety(sub, err, sizeof(err)), -EPERM);
	snprintf(expect, sizeof(expect),
		 "%s: refusing a config file that is not a regular file", sub);
	assert_string_equal(err, expect);
	snprintf(path, sizeof(path), "%s/missing.conf", t->dir);
	assert_int_equal(config_check_file_safety(path, err, sizeof(err)), -ENOENT);
	snprintf(expect, sizeof(expect), "%s: cannot examine: No such file or directory", path);
	assert_string_equal(err, expect);
}

/* dist/vaultd.conf: loads, and every value is the built-in default but
 * pin_file (the unit's credential) and socket_group (the group the package
 * and setup-system create). */
static void test_dist_sample(void **state)
{
	_cleanup_(config_free) struct config c = {0};
	char path[PATH_MAX], err[256];
	(void)state;

	/* The build tells us where the tree is; a missing sample is a failure. */
	snprintf(path, sizeof(path), "%s/dist/vaultd.conf", VAULTD_SOURCE_DIR);
	assert_int_equal(access(path, R_OK), 0);
	assert_int_equal(config_load(path, &c, err, sizeof(err)), 0);
	assert_defaults_except_pin_and_group(&c);
	assert_string_equal(c.server.socket_group, "vaultd-clients");
	assert_string_equal(c.hsm.pin_file, "/run/credentials/vaultd.service/hsm.pin");
	assert_null(c.hsm.pin_env);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_defaults),
		cmocka_unit_test(test_defaults_when_file_is_empty),
		cmocka_unit_test(test_full_config),
		cmocka_unit_test(test_architecture_example),
		cmocka_unit_test(test_layout_tolerance),
		cmocka_unit_test(test_socket_path_limit),
		cmocka_unit_test(test_rejections),
		cmocka_unit_test(test_per_uid_default),
		cmocka_unit_test(test_line_too_long),
		cmocka_unit_test(test_small_or_no_error_buffer),
		cmocka_unit_test_setup_teardown(test_load_file, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_load_file_errors, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_file_safety, tmp_setup, tmp_teardown),
		cmocka_unit_test(test_dist_sample),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
