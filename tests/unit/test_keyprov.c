/* tests/unit/test_keyprov.c: the PKCS#11 key provider (pkcs11/) against a
 * real SoftHSM2 token set up in a temporary directory.
 *
 * Tokens: "vt-a" (main), "vt-b" (a second token holding a different key of
 * the same label and version), "vt-locked" (its user PIN marked locked, see
 * lock_token()). Key generation is slow, so the group setup generates
 * ("vaultd-root", 1) once on vt-a and vt-b; each test opens its own provider.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "common/err.h"
#include "common/keyprov.h"
#include "common/log.h"
#include "common/secret.h"
#include "pkcs11/keyprov_p11_test.h"

extern char **environ;

#define PIN "4711-user"
#define SO_PIN "0815-so"
#define TOKEN_A "vt-a"
#define TOKEN_B "vt-b"
#define TOKEN_LOCKED "vt-locked"
#define KEY_LABEL "vaultd-root"
#define KEY_VERSION 1u
#define SLOW_MS 60000           /* RSA-3072 generation in SoftHSM can take seconds */
/* The mechanism/hash pairs, as two arguments. */
#define HOST_SHA256 KEYPROV_MECH_OAEP_HOST, KEYPROV_HASH_SHA256
#define TOKEN_SHA1 KEYPROV_MECH_OAEP_TOKEN, KEYPROV_HASH_SHA1
#define TOKEN_SHA256 KEYPROV_MECH_OAEP_TOKEN, KEYPROV_HASH_SHA256
#define PIN_ENV "VAULTD_TEST_HSM_PIN"
#define BAD_PIN_ENV "VAULTD_TEST_HSM_BAD_PIN"
#define TAKEN_PIN_ENV "VAULTD_TEST_HSM_TAKEN_PIN"

/* CKR_* values (PKCS#11 v2.40 §5.1), spelled out: tests do not include pkcs11.h. */
#define CKR_OK_ 0x000UL
#define CKR_PIN_INCORRECT_ 0x0A0UL
#define CKR_PIN_LOCKED_ 0x0A4UL
#define CKR_USER_ALREADY_LOGGED_IN_ 0x100UL
#define CKR_DEVICE_ERROR_ 0x030UL

static char tmpdir[] = "/tmp/vaultd-test-p11-XXXXXX";
static char tokendir[256], pin_file[256], pin_file_0644[256];
static const char *module_path;
static bool have_tmpdir;

/* ---- fixture helpers ---- */

/* snprintf() that must not truncate. */
#define fmt_path(buf, ...)                                                      \
	do {                                                                    \
		int _k = snprintf((buf), sizeof(buf), __VA_ARGS__);             \
		assert_true(_k > 0 && (size_t)_k < sizeof(buf));                \
	} while (0)

static int run(const char *const argv[])
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int status, r;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	r = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r != 0)
		return -r;
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

static void init_token(const char *label)
{
	const char *const argv[] = { "/usr/bin/softhsm2-util", "--init-token", "--free", "--label", label,
				     "--pin", PIN, "--so-pin", SO_PIN, NULL };

	assert_int_equal(run(argv), 0);
}

static void write_file(const char *path, const char *content, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	assert_true(fd >= 0);
	assert_int_equal(fchmod(fd, mode), 0);         /* umask-proof */
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	assert_int_equal(close(fd), 0);
}

/* SoftHSM2 2.6.1 never locks a user PIN by itself (no retry counter), but it
 * reports and honours the CKF_USER_PIN_LOCKED token flag kept in its file
 * store. The flags are the attribute CKA_OS_TOKENFLAGS (0x8000534b), stored
 * as u64 type, u64 kind (2 = unsigned long) and u64 value, big-endian. We
 * set CKF_USER_PIN_LOCKED (0x00040000) in the token labelled 'label'. This
 * depends on SoftHSM's file format: if it changes, the test fails (it does
 * not skip). */
static void lock_token(const char *label)
{
	static const uint8_t flags_tag[16] = { 0, 0, 0, 0, 0x80, 0, 0x53, 0x4b, 0, 0, 0, 0, 0, 0, 0, 2 };
	char padded[32], path[512];
	struct dirent *de;
	DIR *d;
	bool patched = false;

	memset(padded, ' ', sizeof(padded));
	memcpy(padded, label, strlen(label));
	d = opendir(tokendir);
	assert_non_null(d);
	while ((de = readdir(d))) {
		uint8_t buf[8192], *tag;
		ssize_t n;
		int fd;

		if (de->d_name[0] == '.')
			continue;
		fmt_path(path, "%s/%s/token.object", tokendir, de->d_name);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf));
		assert_true(n > 0);
		if (!memmem(buf, (size_t)n, padded, sizeof(padded))) {
			close(fd);
			continue;
		}
		tag = memmem(buf, (size_t)n, flags_tag, sizeof(flags_tag));
		assert_non_null(tag);
		assert_true(tag + sizeof(flags_tag) + 8 <= buf + n);
		tag[sizeof(flags_tag) + 5] |= 0x04;    /* bit 18 of the big-endian u64 */
		assert_int_equal(pwrite(fd, buf, (size_t)n, 0), n);
		close(fd);
		patched = true;
	}
	closedir(d);
	assert_true(patched);
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

static struct keyprov_config cfg_for(const char *token)
{
	return (struct keyprov_config){
		.module_path = module_path,
		.token_label = token,
		.pin_file = pin_file,
		.timeout_ms = SLOW_MS,
	};
}

static struct keyprov *open_token(const char *token)
{
	struct keyprov_config cfg = cfg_for(token);
	struct keyprov *kp = NULL;

	assert_int_equal(keyprov_open(&cfg, &kp), 0);
	assert_non_null(kp);
	return kp;
}

static struct secret *random_rk(void)
{
	struct secret *rk = NULL;

	assert_int_equal(secret_random(KEYPROV_RK_LEN, &rk), 0);
	return rk;
}

/* Wraps rk under the shared key ("vaultd-root", 1). */
static int wrap_main(struct keyprov *kp, enum keyprov_mech mech, enum keyprov_hash hash,
		     const struct secret *rk, uint8_t **blob, size_t *len)
{
	return keyprov_wrap(kp, KEY_LABEL, KEY_VERSION, mech, hash, rk, blob, len);
}

static void wrap_unwrap(struct keyprov *kp, enum keyprov_mech mech, enum keyprov_hash hash)
{
	struct secret *rk = random_rk(), *out = NULL;
	struct keyprov_blob b;
	uint8_t *blob = NULL;
	size_t len = 0;

	assert_int_equal(wrap_main(kp, mech, hash, rk, &blob, &len), 0);
	assert_int_equal(keyprov_blob_parse(blob, len, &b), 0);
	assert_int_equal(b.mech, mech);
	assert_int_equal(b.hash, hash);
	assert_int_equal(b.key_version, KEY_VERSION);
	assert_string_equal(b.label, KEY_LABEL);
	assert_int_equal(b.ct_len, 384);                /* RSA-3072 */

	assert_int_equal(keyprov_unwrap(kp, blob, len, &out), 0);
	assert_non_null(out);
	assert_int_equal(out->len, KEYPROV_RK_LEN);
	assert_true(secret_equal(rk, out));
	secret_free(out);
	secret_free(rk);
	free(blob);
}

static int group_setup(void **state)
{
	struct keyprov *kp;
	(void)state;

	assert_int_equal(secret_library_init(), 0);
	if (getenv("VAULTD_TEST_DEBUG"))
		log_set_max_level(LOG_DEBUG);
	module_path = getenv("VAULTD_SOFTHSM_MODULE");
	if (!module_path || !*module_path)
		module_path = "/usr/lib/softhsm/libsofthsm2.so";

	assert_non_null(mkdtemp(tmpdir));
	have_tmpdir = true;
	fmt_path(tokendir, "%s/tokens", tmpdir);
	assert_int_equal(mkdir(tokendir, 0700), 0);
	char conf[300], conf_text[400];
	fmt_path(conf, "%s/softhsm2.conf", tmpdir);
	fmt_path(conf_text,
		 "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", tokendir);
	write_file(conf, conf_text, 0600);
	assert_int_equal(setenv("SOFTHSM2_CONF", conf, 1), 0);

	fmt_path(pin_file, "%s/pin", tmpdir);
	write_file(pin_file, PIN "\n", 0600);          /* one trailing newline is stripped */
	fmt_path(pin_file_0644, "%s/pin-0644", tmpdir);
	write_file(pin_file_0644, PIN "\n", 0644);

	init_token(TOKEN_A);
	init_token(TOKEN_B);
	init_token(TOKEN_LOCKED);
	lock_token(TOKEN_LOCKED);

	kp = open_token(TOKEN_A);
	assert_int_equal(keyprov_generate(kp, KEY_LABEL, KEY_VERSION), 0);
	keyprov_close(kp);
	kp = open_token(TOKEN_B);
	assert_int_equal(keyprov_generate(kp, KEY_LABEL, KEY_VERSION), 0);
	keyprov_close(kp);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	(void)unsetenv(PIN_ENV);
	(void)unsetenv(BAD_PIN_ENV);
	if (have_tmpdir)
		(void)nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* ---- tests ---- */

static unsigned wiped_frees, dirty_frees;

static void count_wipes(const uint8_t *p, size_t cap)
{
	bool zero = true;

	for (size_t i = 0; i < cap; i++)
		zero &= p[i] == 0;
	if (zero)
		wiped_frees++;
	else
		dirty_frees++;
}

static void test_roundtrip_host_sha256(void **state)
{
	struct keyprov *kp;
	(void)state;

	/* The only secret open handles is the PIN: it is wiped and freed
	 * before keyprov_open() returns. */
	wiped_frees = dirty_frees = 0;
	secret_free_hook = count_wipes;
	kp = open_token(TOKEN_A);
	secret_free_hook = NULL;
	assert_int_equal(wiped_frees, 1);
	assert_int_equal(dirty_frees, 0);

	assert_int_equal(keyprov_find(kp, KEY_LABEL, KEY_VERSION), 0);
	wrap_unwrap(kp, HOST_SHA256);
	keyprov_close(kp);
}

static void test_roundtrip_token_sha1(void **state)
{
	struct keyprov *kp = open_token(TOKEN_A);
	(void)state;

	wrap_unwrap(kp, TOKEN_SHA1);
	keyprov_close(kp);
}

/* SoftHSM2 2.6.1 implements CKM_RSA_PKCS_OAEP with SHA-1 only and refuses
 * other hashes in C_DecryptInit (CKR_ARGUMENTS_BAD): the token lacks the
 * mechanism as asked, so -VLT_E_HSM_MECH, not -VLT_E_HSM_UNWRAP (which means
 * a wrong key or a damaged blob). Wrapping works: it is plain OpenSSL. */
static void test_token_sha256_unsupported(void **state)
{
	struct keyprov *kp = open_token(TOKEN_A);
	struct secret *rk = random_rk(), *out = NULL;
	uint8_t *blob = NULL;
	size_t len = 0;
	(void)state;

	assert_int_equal(wrap_main(kp, TOKEN_SHA256, rk, &blob, &len), 0);
	assert_int_equal(keyprov_unwrap(kp, blob, len, &out), -VLT_E_HSM_MECH);
	assert_null(out);
	free(blob);
	secret_free(rk);
	keyprov_close(kp);
}

static void test_key_attributes(void **state)
{
	struct keyprov *kp = open_token(TOKEN_A);
	struct keyprov_p11_test_attrs a;
	(void)state;

	memset(&a, 0xff, sizeof(a));
	assert_int_equal(keyprov_p11_test_key_attrs(kp, KEY_LABEL, KEY_VERSION, &a), 0);
	assert_true(a.priv_token);
	assert_true(a.priv_private);
	assert_true(a.priv_sensitive);
	assert_false(a.priv_extractable);
	assert_true(a.priv_always_sensitive);
	assert_true(a.priv_never_extractable);
	assert_false(a.priv_exponent_readable);
	assert_true(a.priv_decrypt);
	assert_false(a.priv_sign);
	assert_false(a.priv_unwrap);
	assert_true(a.pub_token);
	assert_true(a.pub_encrypt);
	assert_false(a.pub_verify);
	assert_int_equal(a.modulus_bits, 3072);
	assert_int_equal(keyprov_p11_test_key_attrs(kp, KEY_LABEL, 99, &a), -VLT_E_HSM_KEY_NOT_FOUND);
	keyprov_close(kp);
}

static void test_generate_existing(void **state)
{
	struct keyprov *kp = open_token(TOKEN_A);
	(void)state;

	assert_int_equal(keyprov_generate(kp, KEY_LABEL, KEY_VERSION), -VLT_E_HSM_KEY_EXISTS);
	keyprov_close(kp);
}

static void test_missing_key(void **state)
{
	struct keyprov *kp = open_token(TOKEN_A);
	struct secret *rk = random_rk(), *out = NULL;
	struct keyprov_blob b;
	uint8_t *blob = NULL, *other = NULL;
	size_t len = 0, other_len = 0;
	(void)state;

	assert_int_equal(keyprov_find(kp, KEY_LABEL, 99), -VLT_E_HSM_KEY_NOT_FOUND);
	assert_int_equal(keyprov_find(kp, "no-such-key", KEY_VERSION), -VLT_E_HSM_KEY_NOT_FOUND);
	assert_int_equal(keyprov_destroy(kp, KEY_LABEL, 99), -VLT_E_HSM_KEY_NOT_FOUND);
	assert_int_equal(keyprov_wrap(kp, KEY_LABEL, 99, HOST_SHA256, rk, &blob, &len),
			 -VLT_E_HSM_KEY_NOT_FOUND);

	/* A valid blob naming a key version the token does not hold. */
	assert_int_equal(wrap_main(kp, HOST_SHA256, rk, &blob, &len), 0);
	assert_int_equal(keyprov_blob_parse(blob, len, &b), 0);
	b.key_version = 99;
	assert_int_equal(keyprov_blob_build(&b, &other, &other_len), 0);
	assert_int_equal(keyprov_unwrap(kp, other, other_len, &out), -VLT_E_HSM_KEY_NOT_FOUND);
	free(other);
	b.mech = KEYPROV_MECH_OAEP_TOKEN;
	b.hash = KEYPROV_HASH_SHA1;
	assert_int_equal(keyprov_blob_build(&b, &other, &other_len), 0);
	assert_int_equal(keyprov_unwrap(kp, other, other_len, &out), -VLT_E_HSM_KEY_NOT_FOUND);
	assert_null(out);
	free(other);
	free(blob);
	secret_free(rk);
	keyprov_close(kp);
}

static void flip_and_expect_unwrap_error(struct keyprov *kp, enum keyprov_mech mech,
					 enum keyprov_hash hash)
{
	struct secret *rk = random_rk(), *out = NULL;
	uint8_t *blob = NULL;
	size_t len = 0;
	struct keyprov_blob b;

	assert_int_equal(wrap_main(kp, mech, hash, rk, &blob, &len), 0);
	assert_int_equal(keyprov_blob_parse(blob, len, &b), 0);
	blob[len - b.ct_len + 100] ^= 0x01;            /* one ciphertext bit */
	assert_int_equal(keyprov_unwrap(kp, blob, len, &out), -VLT_E_HSM_UNWRAP);
	blob[len - b.ct_len + 100] ^= 0x01;
	blob[len - 1] ^= 0x80;                          /* the last byte */
	assert_int_equal(keyprov_unwrap(kp, blob, len, &out), -VLT_E_HSM_UNWRAP);
	blob[len - 1] ^= 0x80;
	assert_int_equal(keyprov_unwrap(kp, blob, len, &out), 0);       /* restored */
	assert_true(secret_equal(rk, out));
	secret_free(out);
	secret_free(rk);
	free(blob);
}

static void test_tampered_blob(void **state)
{
	struct keyprov *kp = open_token(TOKEN_A);
	(void)state;

	flip_and_expect_unwrap_error(kp, HOST_SHA256);
	flip_and_expect_unwrap_error(kp, TOKEN_SHA1);
	keyprov_close(kp);
}

static void test_malformed_input(void **state)
{
	struct keyprov *kp = open_token(TOKEN_A);
	struct secret *rk = random_rk(), *short_rk = NULL, *out = NULL;
	uint8_t *blob = NULL;
	size_t len = 0;
	char long_label[KEYPROV_LABEL_MAX + 2];
	(void)state;

	memset(long_label, 'x', sizeof(long_label) - 1);
	long_label[sizeof(long_label) - 1] = '\0';
	assert_int_equal(keyprov_find(kp, "", 1), -EINVAL);
	assert_int_equal(keyprov_find(kp, long_label, 1), -EINVAL);
	assert_int_equal(keyprov_find(kp, "bad\nlabel", 1), -EINVAL);
	assert_int_equal(keyprov_generate(kp, NULL, 1), -EINVAL);
	/* HOST+SHA1 is not a valid combination. */
	assert_int_equal(wrap_main(kp, KEYPROV_MECH_OAEP_HOST, KEYPROV_HASH_SHA1, rk, &blob, &len),
			 -EINVAL);
	assert_int_equal(secret_random(16, &short_rk), 0);
	assert_int_equal(wrap_main(kp, HOST_SHA256, short_rk, &blob, &len), -EINVAL);

	assert_int_equal(wrap_main(kp, HOST_SHA256, rk, &blob, &len), 0);
	assert_int_equal(keyprov_unwrap(kp, blob, len - 1, &out), -VLT_E_BLOB_FORMAT);
	blob[0] = 9;
	assert_int_equal(keyprov_unwrap(kp, blob, len, &out), -VLT_E_BLOB_VERSION);
	assert_null(out);
	free(blob);
	secret_free(short_rk);
	secret_free(rk);
	keyprov_close(kp);
}

/* Wrapped under one open, unwrapped after close and a fresh open. */
static void test_reopen(void **state)
{
	struct secret *rk = random_rk(), *out = NULL;
	struct keyprov *kp = open_token(TOKEN_A);
	uint8_t *blob_host = NULL, *blob_tok = NULL;
	size_t len_host = 0, len_tok = 0;
	(void)state;

	assert_int_equal(wrap_main(kp, HOST_SHA256, rk, &blob_host, &len_host), 0);
	assert_int_equal(wrap_main(kp, TOKEN_SHA1, rk, &blob_tok, &len_tok), 0);
	keyprov_close(kp);

	kp = open_token(TOKEN_A);
	assert_int_equal(keyprov_unwrap(kp, blob_host, len_host, &out), 0);
	assert_true(secret_equal(rk, out));
	secret_free(out);
	assert_int_equal(keyprov_unwrap(kp, blob_tok, len_tok, &out), 0);
	assert_true(secret_equal(rk, out));
	secret_free(out);
	keyprov_close(kp);
	free(blob_host);
	free(blob_tok);
	secret_free(rk);
}

/* vt-b holds its own ("vaultd-root", 1): same name, different key. */
static void test_other_token_cannot_unwrap(void **state)
{
	struct secret *rk = random_rk(), *out = NULL;
	struct keyprov *kp = open_token(TOKEN_A);
	uint8_t *blob_host = NULL, *blob_tok = NULL;
	size_t len_host = 0, len_tok = 0;
	(void)state;

	assert_int_equal(wrap_main(kp, HOST_SHA256, rk, &blob_host, &len_host), 0);
	assert_int_equal(wrap_main(kp, TOKEN_SHA1, rk, &blob_tok, &len_tok), 0);
	keyprov_close(kp);

	kp = open_token(TOKEN_B);
	assert_int_equal(keyprov_find(kp, KEY_LABEL, KEY_VERSION), 0);
	assert_int_equal(keyprov_unwrap(kp, blob_host, len_host, &out), -VLT_E_HSM_UNWRAP);
	assert_int_equal(keyprov_unwrap(kp, blob_tok, len_tok, &out), -VLT_E_HSM_UNWRAP);
	assert_null(out);
	keyprov_close(kp);
	free(blob_host);
	free(blob_tok);
	secret_free(rk);
}

/* Destroy, then find fails; a regenerated key of the same name works in the
 * same provider (libp11's key cache still lists the destroyed object) and
 * the old blob no longer unwraps. */
static void test_destroy(void **state)
{
	struct keyprov *kp = open_token(TOKEN_A);
	struct secret *rk = random_rk(), *out = NULL;
	uint8_t *old_blob = NULL, *new_blob = NULL;
	size_t old_len = 0, new_len = 0;
	(void)state;

	assert_int_equal(keyprov_generate(kp, "tmp-key", 5), 0);
	assert_int_equal(keyprov_find(kp, "tmp-key", 5), 0);
	assert_int_equal(keyprov_wrap(kp, "tmp-key", 5, HOST_SHA256, rk, &old_blob, &old_len), 0);
	/* Now libp11 has the key in its cache. */
	assert_int_equal(keyprov_unwrap(kp, old_blob, old_len, &out), 0);
	secret_free(TAKE_PTR(out));

	assert_int_equal(keyprov_destroy(kp, "tmp-key", 5), 0);
	assert_int_equal(keyprov_find(kp, "tmp-key", 5), -VLT_E_HSM_KEY_NOT_FOUND);
	assert_int_equal(keyprov_destroy(kp, "tmp-key", 5), -VLT_E_HSM_KEY_NOT_FOUND);
	assert_int_equal(keyprov_unwrap(kp, old_blob, old_len, &out), -VLT_E_HSM_KEY_NOT_FOUND);
	/* The shared key is untouched. */
	assert_int_equal(keyprov_find(kp, KEY_LABEL, KEY_VERSION), 0);

	assert_int_equal(keyprov_generate(kp, "tmp-key", 5), 0);
	assert_int_equal(keyprov_wrap(kp, "tmp-key", 5, HOST_SHA256, rk, &new_blob, &new_len), 0);
	assert_int_equal(keyprov_unwrap(kp, new_blob, new_len, &out), 0);
	assert_true(secret_equal(rk, out));
	secret_free(TAKE_PTR(out));
	assert_int_equal(keyprov_unwrap(kp, old_blob, old_len, &out), -VLT_E_HSM_UNWRAP);
	assert_int_equal(keyprov_destroy(kp, "tmp-key", 5), 0);
	keyprov_close(kp);
	free(old_blob);
	free(new_blob);
	secret_free(rk);
}

static void test_wrong_pin(void **state)
{
	struct keyprov_config cfg = cfg_for(TOKEN_A);
	struct keyprov *kp = NULL;
	(void)state;

	assert_int_equal(setenv(BAD_PIN_ENV, "0000-wrong", 1), 0);
	cfg.pin_file = NULL;
	cfg.pin_env = BAD_PIN_ENV;
	assert_int_equal(keyprov_open(&cfg, &kp), -VLT_E_HSM_PIN);
	assert_null(kp);
	/* The token still works with the right PIN. */
	keyprov_close(open_token(TOKEN_A));
}

/* True if environ holds an entry for name (set or empty). */
static bool in_environ(const char *name)
{
	size_t n = strlen(name);

	for (char **e = environ; *e; e++)
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			return true;
	return false;
}

static void open_find_close(const struct keyprov_config *cfg)
{
	struct keyprov *kp = NULL;

	assert_int_equal(keyprov_open(cfg, &kp), 0);
	assert_int_equal(keyprov_find(kp, KEY_LABEL, KEY_VERSION), 0);
	keyprov_close(kp);
}

/* Finding 10: the PIN must not stay in the environment (inherited by every
 * child, readable in /proc/PID/environ) for the life of the daemon, which
 * opens the provider again at every unlock and rotation. */
static void test_pin_env_taken_and_wiped(void **state)
{
	struct keyprov_config cfg = cfg_for(TOKEN_A);
	char *value;
	size_t n;
	(void)state;

	assert_int_equal(setenv(TAKEN_PIN_ENV, PIN, 1), 0);
	value = getenv(TAKEN_PIN_ENV);         /* the bytes environ pointed at */
	assert_non_null(value);
	n = strlen(value);
	cfg.pin_file = NULL;
	cfg.pin_env = TAKEN_PIN_ENV;

	open_find_close(&cfg);
	assert_null(getenv(TAKEN_PIN_ENV));
	assert_false(in_environ(TAKEN_PIN_ENV));
	/* glibc never frees a setenv() string, so reading it is defined. */
	for (size_t i = 0; i < n; i++)
		if (value[i] != '\0')
			fail_msg("byte %zu of the environment's PIN was not wiped", i);

	/* Unlock and rotation open it again: the PIN taken the first time. */
	open_find_close(&cfg);
	open_find_close(&cfg);
	assert_null(getenv(TAKEN_PIN_ENV));
}

static void test_pin_from_env(void **state)
{
	struct keyprov_config cfg = cfg_for(TOKEN_A);
	struct keyprov *kp = NULL;
	(void)state;

	cfg.pin_file = NULL;
	cfg.pin_env = PIN_ENV;
	/* Never set, nothing taken yet. */
	assert_int_equal(unsetenv(PIN_ENV), 0);
	assert_int_equal(keyprov_open(&cfg, &kp), -VLT_E_HSM_PIN_SOURCE);
	assert_null(kp);

	assert_int_equal(setenv(PIN_ENV, PIN, 1), 0);
	open_find_close(&cfg);
	assert_null(getenv(PIN_ENV));

	/* Set again, the environment wins: a wrong PIN replaces the one taken
	 * (and is taken itself), the right one puts it back. */
	assert_int_equal(setenv(PIN_ENV, "0000-wrong", 1), 0);
	assert_int_equal(keyprov_open(&cfg, &kp), -VLT_E_HSM_PIN);
	assert_null(getenv(PIN_ENV));
	assert_int_equal(keyprov_open(&cfg, &kp), -VLT_E_HSM_PIN);
	assert_int_equal(setenv(PIN_ENV, PIN, 1), 0);
	open_find_close(&cfg);

	/* Set but empty is no PIN, whatever was taken before. */
	assert_int_equal(setenv(PIN_ENV, "", 1), 0);
	assert_int_equal(keyprov_open(&cfg, &kp), -VLT_E_HSM_PIN_SOURCE);
	assert_null(kp);
	assert_int_equal(unsetenv(PIN_ENV), 0);
	open_find_close(&cfg);

	/* Too long: refused, and still wiped and unset (it may be a secret). */
	{
		char longpin[300];

		memset(longpin, '7', sizeof(longpin) - 1);
		longpin[sizeof(longpin) - 1] = '\0';
		assert_int_equal(setenv(PIN_ENV, longpin, 1), 0);
		assert_int_equal(keyprov_open(&cfg, &kp), -VLT_E_HSM_PIN_SOURCE);
		assert_null(getenv(PIN_ENV));
		assert_null(kp);
	}
}

static void test_pin_source_errors(void **state)
{
	struct keyprov_config cfg = cfg_for(TOKEN_A);
	struct keyprov *kp = NULL;
	char path[300];
	(void)state;

	cfg.pin_file = pin_file_0644;
	assert_int_equal(keyprov_open(&cfg, &kp), -VLT_E_HSM_PIN_SOURCE);

	fmt_path(path, "%s/pin-0640", tmpdir);
	write_file(path, PIN, 0640);
	cfg.pin_file = path;
	assert_int_equal(keyprov_open(&cfg, &kp), -VLT_E_HSM_PIN_SOURCE);

	fmt_path(path, "%s/pin-empty", tmpdir);
	write_file(path, "\n", 0600);
	assert_int_equal(keyprov_open(&cfg, &kp), -VLT_E_HSM_PIN_SOURCE);

	fmt_path(path, "%s/pin-missing", tmpdir);
	assert_int_equal(keyprov_open(&cfg, &kp), -VLT_E_HSM_PIN_SOURCE);

	cfg.pin_file = tokendir;        /* a directory */
	assert_int_equal(keyprov_open(&cfg, &kp), -VLT_E_HSM_PIN_SOURCE);

	/* Only one newline is stripped: "PIN\n\n" is a different PIN. */
	fmt_path(path, "%s/pin-2nl", tmpdir);
	write_file(path, PIN "\n\n", 0600);
	cfg.pin_file = path;
	assert_int_equal(keyprov_open(&cfg, &kp), -VLT_E_HSM_PIN);

	/* Without a newline it is the same PIN. */
	fmt_path(path, "%s/pin-nonl", tmpdir);
	write_file(path, PIN, 0400);
	assert_int_equal(keyprov_open(&cfg, &kp), 0);
	keyprov_close(TAKE_PTR(kp));

	/* Exactly one source. */
	cfg.pin_env = PIN_ENV;
	assert_int_equal(keyprov_open(&cfg, &kp), -EINVAL);
	cfg.pin_file = cfg.pin_env = NULL;
	assert_int_equal(keyprov_open(&cfg, &kp), -EINVAL);
	assert_null(kp);
}

static void test_pin_locked(void **state)
{
	struct keyprov_config cfg = cfg_for(TOKEN_LOCKED);
	struct keyprov *kp = NULL;
	(void)state;

	/* The token reports CKF_USER_PIN_LOCKED (lock_token()). */
	assert_int_equal(keyprov_open(&cfg, &kp), -VLT_E_HSM_PIN_LOCKED);
	assert_null(kp);

	/* SoftHSM never answers C_Login with CKR_PIN_LOCKED, so that mapping
	 * is checked on the function keyprov_open() uses. */
	assert_int_equal(keyprov_p11_test_login_error(CKR_PIN_LOCKED_), -VLT_E_HSM_PIN_LOCKED);
	assert_int_equal(keyprov_p11_test_login_error(CKR_PIN_INCORRECT_), -VLT_E_HSM_PIN);
	assert_int_equal(keyprov_p11_test_login_error(CKR_OK_), 0);
	assert_int_equal(keyprov_p11_test_login_error(CKR_USER_ALREADY_LOGGED_IN_), 0);
	assert_int_equal(keyprov_p11_test_login_error(CKR_DEVICE_ERROR_), -VLT_E_HSM);
}

static void test_missing_token(void **state)
{
	struct keyprov_config cfg = cfg_for("no-such-token");
	struct keyprov *kp = NULL;
	(void)state;

	assert_int_equal(keyprov_open(&cfg, &kp), -VLT_E_HSM_TOKEN);
	cfg.token_label = "vt";         /* a prefix of real labels is not a match */
	assert_int_equal(keyprov_open(&cfg, &kp), -VLT_E_HSM_TOKEN);
	assert_null(kp);
}

static void test_bad_module(void **state)
{
	struct keyprov_config cfg = cfg_for(TOKEN_A);
	struct keyprov *kp = NULL;
	char path[300];
	(void)state;

	cfg.module_path = "/nonexistent/libnope-pkcs11.so";
	assert_int_equal(keyprov_open(&cfg, &kp), -VLT_E_HSM_MODULE);
	cfg.module_path = "libsofthsm2.so";     /* not absolute */
	assert_int_equal(keyprov_open(&cfg, &kp), -VLT_E_HSM_MODULE);
	fmt_path(path, "%s/not-a-module.so", tmpdir);
	write_file(path, "garbage", 0600);
	cfg.module_path = path;
	assert_int_equal(keyprov_open(&cfg, &kp), -VLT_E_HSM_MODULE);
	assert_null(kp);
}

struct unwrapper {
	struct keyprov *kp;
	const uint8_t *blob;
	size_t len;
	const struct secret *rk;
	int failures;
};

static void *unwrap_loop(void *arg)
{
	struct unwrapper *u = arg;

	for (int i = 0; i < 5; i++) {
		struct secret *out = NULL;

		if (keyprov_unwrap(u->kp, u->blob, u->len, &out) != 0 || !secret_equal(u->rk, out))
			u->failures++;
		secret_free(out);
	}
	return NULL;
}

/* One provider, several threads: calls are serialised on the worker. */
static void test_concurrent_callers(void **state)
{
	struct keyprov *kp = open_token(TOKEN_A);
	struct secret *rk = random_rk();
	struct unwrapper u[4];
	pthread_t t[4];
	uint8_t *blobs[2] = { NULL, NULL };
	size_t lens[2] = { 0, 0 };
	(void)state;

	assert_int_equal(wrap_main(kp, HOST_SHA256, rk, &blobs[0], &lens[0]), 0);
	assert_int_equal(wrap_main(kp, TOKEN_SHA1, rk, &blobs[1], &lens[1]), 0);
	for (int i = 0; i < 4; i++) {
		u[i] = (struct unwrapper){ .kp = kp, .blob = blobs[i % 2], .len = lens[i % 2], .rk = rk };
		assert_int_equal(pthread_create(&t[i], NULL, unwrap_loop, &u[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(u[i].failures, 0);
	}
	keyprov_close(kp);
	free(blobs[0]);
	free(blobs[1]);
	secret_free(rk);
}

static long elapsed_ms(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000L + (t1.tv_nsec - t0->tv_nsec) / 1000000L;
}

/* Runs last: the timed-out provider is abandoned with the module loaded. */
static void test_timeout(void **state)
{
	struct keyprov_config cfg = cfg_for(TOKEN_A);
	struct secret *rk = random_rk(), *out = NULL;
	struct keyprov *kp = NULL;
	struct timespec t0;
	uint8_t *blob = NULL;
	size_t len = 0;
	(void)state;

	/* A blob to try unwrapping later, made with a healthy provider. */
	kp = open_token(TOKEN_A);
	assert_int_equal(wrap_main(kp, HOST_SHA256, rk, &blob, &len), 0);
	keyprov_close(kp);

	/* 2 s to open, then a 500 ms stall against a 100 ms bound. */
	cfg.timeout_ms = 2000;
	assert_int_equal(keyprov_open(&cfg, &kp), 0);
	assert_int_equal(keyprov_find(kp, KEY_LABEL, KEY_VERSION), 0);
	keyprov_close(kp);

	cfg.timeout_ms = 100;
	assert_int_equal(keyprov_open(&cfg, &kp), 0);
	keyprov_p11_test_set_delay_ms(kp, 500);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(keyprov_find(kp, KEY_LABEL, KEY_VERSION), -VLT_E_HSM_TIMEOUT);
	assert_true(elapsed_ms(&t0) >= 90 && elapsed_ms(&t0) < 450);

	/* Poisoned: everything fails at once, without waiting. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(keyprov_find(kp, KEY_LABEL, KEY_VERSION), -VLT_E_HSM_TIMEOUT);
	assert_int_equal(keyprov_unwrap(kp, blob, len, &out), -VLT_E_HSM_TIMEOUT);
	assert_int_equal(keyprov_generate(kp, "never", 1), -VLT_E_HSM_TIMEOUT);
	assert_null(out);
	assert_true(elapsed_ms(&t0) < 50);

	/* Close neither hangs nor waits for the stuck job. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	keyprov_close(kp);
	assert_true(elapsed_ms(&t0) < 50);

	/* A fresh provider works while the abandoned one still holds the
	 * module (libp11 accepts CKR_CRYPTOKI_ALREADY_INITIALIZED). */
	kp = open_token(TOKEN_A);
	assert_int_equal(keyprov_unwrap(kp, blob, len, &out), 0);
	assert_true(secret_equal(rk, out));
	secret_free(out);
	/* Let the abandoned worker wake, skip its job and exit meanwhile. */
	usleep(600 * 1000);
	assert_int_equal(keyprov_find(kp, KEY_LABEL, KEY_VERSION), 0);
	keyprov_close(kp);
	free(blob);
	secret_free(rk);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_host_sha256),
		cmocka_unit_test(test_roundtrip_token_sha1),
		cmocka_unit_test(test_token_sha256_unsupported),
		cmocka_unit_test(test_key_attributes),
		cmocka_unit_test(test_generate_existing),
		cmocka_unit_test(test_missing_key),
		cmocka_unit_test(test_tampered_blob),
		cmocka_unit_test(test_malformed_input),
		cmocka_unit_test(test_reopen),
		cmocka_unit_test(test_other_token_cannot_unwrap),
		cmocka_unit_test(test_destroy),
		cmocka_unit_test(test_wrong_pin),
		cmocka_unit_test(test_pin_env_taken_and_wiped),
		cmocka_unit_test(test_pin_from_env),
		cmocka_unit_test(test_pin_source_errors),
		cmocka_unit_test(test_pin_locked),
		cmocka_unit_test(test_missing_token),
		cmocka_unit_test(test_bad_module),
		cmocka_unit_test(test_concurrent_callers),
		cmocka_unit_test(test_timeout),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
