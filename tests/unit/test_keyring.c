/* tests/unit/test_keyring.c: the keyring (vaultd/keyring.h) on a real store
 * and a real SoftHSM2 token, both in one mkdtemp() directory.
 *
 * The group setup makes the token; each test opens a fresh database and a
 * keyring, initialises and unlocks it. Tests that rotate or retire HSM keys
 * use an HSM key label of their own, so that deleting one never takes a key
 * another test relies on. RSA-3072 generation in SoftHSM takes seconds: the
 * tests that need no HSM rotation share the label "kr-main".
 */
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
#include "vaultd/keys/keyring.h"
#include "vaultd/store/store.h"

extern char **environ;

#define PIN "4711-user"
#define SO_PIN "0815-so"
#define TOKEN "vt-keyring"
#define SLOW_MS 60000

static char tmpdir[] = "/tmp/vaultd-test-keyring-XXXXXX";
static char pin_file[256];
static const char *module_path;
static bool have_tmpdir;
static unsigned db_counter;

#define fmt_path(buf, ...)                                                      \
	do {                                                                    \
		int _k = snprintf((buf), sizeof(buf), __VA_ARGS__);             \
		assert_true(_k > 0 && (size_t)_k < sizeof(buf));                \
	} while (0)

struct fixture {
	char path[300];
	char label[KEYPROV_LABEL_MAX + 1];
	struct keyring_hsm hsm;
	struct store *s;
	struct keyring *k;
};

/* ---- group fixture: the token ---- */

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

static void write_file(const char *path, const char *content, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	assert_true(fd >= 0);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	assert_int_equal(close(fd), 0);
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

static int group_setup(void **state)
{
	const char *const init_argv[] = { "/usr/bin/softhsm2-util", "--init-token", "--free", "--label", TOKEN,
					  "--pin", PIN, "--so-pin", SO_PIN, NULL };
	char tokendir[300], conf[300], conf_text[600];
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
	fmt_path(conf, "%s/softhsm2.conf", tmpdir);
	fmt_path(conf_text, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", tokendir);
	write_file(conf, conf_text, 0600);
	assert_int_equal(setenv("SOFTHSM2_CONF", conf, 1), 0);
	fmt_path(pin_file, "%s/pin", tmpdir);
	write_file(pin_file, PIN "\n", 0600);
	assert_int_equal(run(init_argv), 0);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (have_tmpdir)
		(void)nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* ---- per-test fixture: a database and an unlocked keyring ---- */

static struct fixture *fixture_new(const char *label)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct store_tx *tx = NULL;

	assert_non_null(f);
	fmt_path(f->path, "%s/vault-%u.db", tmpdir, db_counter++);
	snprintf(f->label, sizeof(f->label), "%s", label);
	f->hsm = (struct keyring_hsm){
		.prov = { .module_path = module_path, .token_label = TOKEN, .pin_file = pin_file,
			  .timeout_ms = SLOW_MS },
		.key_label = f->label,
		.mech = KEYPROV_MECH_OAEP_HOST,
		.hash = KEYPROV_HASH_SHA256,
	};
	assert_int_equal(store_open(f->path, 4, &f->s), 0);
	assert_int_equal(keyring_new(&f->hsm, &f->k), 0);
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(keyring_init(f->k, tx), 0);
	assert_int_equal(store_write_commit(tx), 0);
	assert_int_equal(keyring_unlock(f->k, f->s), 0);
	assert_true(keyring_is_unlocked(f->k));
	return f;
}

static int setup_main(void **state)
{
	*state = fixture_new("kr-main");
	return 0;
}

static int setup_retire_a(void **state)
{
	*state = fixture_new("kr-retire-a");
	return 0;
}

static int setup_retire_b(void **state)
{
	*state = fixture_new("kr-retire-b");
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char p[320];

	keyring_free(f->k);
	store_close(f->s);
	(void)unlink(f->path);
	snprintf(p, sizeof(p), "%s-wal", f->path);
	(void)unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->path);
	(void)unlink(p);
	free(f);
	return 0;
}

/* ---- helpers ---- */

static unsigned count_maps(void)
{
	char buf[65536];
	unsigned lines = 0;
	ssize_t n;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++)
			lines += buf[i] == '\n';
	assert_int_equal(n, 0);
	close(fd);
	return lines;
}

static void value_of(char *buf, size_t size, const char *path)
{
	snprintf(buf, size, "{\"value\":\"%s\"}", path);
}

/* Seals version 1 of path in tx (the tenant's KEK exists). */
static void seal_one(struct fixture *f, struct store_tx *tx, const char *path, const char *tenant)
{
	_cleanup_secret_ struct secret *plain = NULL;
	struct store_version v = {0};
	char value[128];

	value_of(value, sizeof(value), path);
	assert_int_equal(secret_from_bytes(value, strlen(value), &plain), 0);
	assert_int_equal(keyring_seal(f->k, tx, path, 1, plain, &v, NULL), 0);
	assert_int_equal(store_secret_put_version(tx, path, tenant, "generic", NULL, &v), 0);
	store_version_clear(&v);
}

/* Opens version 'version' of path through tx and checks its value. */
static void open_one(struct fixture *f, struct store_tx *tx, const char *path, uint32_t version)
{
	_cleanup_secret_ struct secret *plain = NULL;
	struct store_version v = {0};
	char value[128];

	value_of(value, sizeof(value), path);
	assert_int_equal(store_version_get(tx, path, version, &v), 0);
	assert_int_equal(keyring_open(f->k, tx, path, &v, &plain), 0);
	store_version_clear(&v);
	assert_int_equal(plain->len, strlen(value));
	assert_memory_equal(plain->p, value, plain->len);
}

static void tenant_name(char *buf, size_t size, unsigned i)
{
	snprintf(buf, size, "t%05u", i);
}

/* Tenants [from, to): a KEK each (its own transaction, as the API makes
 * them) and one secret each, sealed in batches of one transaction. */
#define SEAL_BATCH 500
static void make_tenants(struct fixture *f, unsigned from, unsigned to)
{
	for (unsigned b = from; b < to; b += SEAL_BATCH) {
		unsigned end = b + SEAL_BATCH < to ? b + SEAL_BATCH : to;
		struct store_tx *tx = NULL;
		char tenant[16], path[32];

		for (unsigned i = b; i < end; i++) {
			tenant_name(tenant, sizeof(tenant), i);
			assert_int_equal(keyring_ensure_kek(f->k, f->s, tenant), 0);
		}
		assert_int_equal(store_write_begin(f->s, &tx), 0);
		for (unsigned i = b; i < end; i++) {
			tenant_name(tenant, sizeof(tenant), i);
			snprintf(path, sizeof(path), "%s/s", tenant);
			seal_one(f, tx, path, tenant);
		}
		assert_int_equal(store_write_commit(tx), 0);
	}
}

static void open_tenants(struct fixture *f, unsigned from, unsigned to)
{
	for (unsigned b = from; b < to; b += SEAL_BATCH) {
		unsigned end = b + SEAL_BATCH < to ? b + SEAL_BATCH : to;
		struct store_tx *tx = NULL;
		char tenant[16], path[32];

		assert_int_equal(store_read_begin(f->s, &tx), 0);
		for (unsigned i = b; i < end; i++) {
			tenant_name(tenant, sizeof(tenant), i);
			snprintf(path, sizeof(path), "%s/s", tenant);
			open_one(f, tx, path, 1);
		}
		store_tx_end(tx);
	}
}

/* One secret in its own tenant, as the API writes it. */
static void put_secret(struct fixture *f, const char *tenant, const char *path)
{
	struct store_tx *tx = NULL;

	assert_int_equal(keyring_ensure_kek(f->k, f->s, tenant), 0);
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	seal_one(f, tx, path, tenant);
	assert_int_equal(store_write_commit(tx), 0);
}

/* An HSM-key rotation as the worker runs it: prepare, then one transaction. */
static void rotate_hsm(struct fixture *f, uint32_t want_from, uint32_t want_to)
{
	struct store_tx *tx = NULL;
	uint32_t from = 0, to = 0;
	int64_t count = 0;

	assert_int_equal(keyring_hsm_prepare(f->k, f->s), 0);
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(keyring_hsm_rotate(f->k, tx, &from, &to, &count), 0);
	assert_int_equal(store_write_commit(tx), 0);
	assert_int_equal(from, want_from);
	assert_int_equal(to, want_to);
}

static char *retire_list(struct fixture *f)
{
	struct store_tx *tx = NULL;
	char *text = NULL;

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_meta_get(tx, "hsm_retire", &text), 0);
	store_tx_end(tx);
	return text;
}

/* Whether the token holds (label, version). Only while no keyring call
 * runs: closing a provider finalises the module for the whole process. */
static bool token_has(const char *label, uint32_t version)
{
	struct keyprov_config cfg = { .module_path = module_path, .token_label = TOKEN, .pin_file = pin_file,
				      .timeout_ms = SLOW_MS };
	struct keyprov *kp = NULL;
	int r;

	assert_int_equal(keyprov_open(&cfg, &kp), 0);
	r = keyprov_find(kp, label, version);
	keyprov_close(kp);
	assert_true(r == 0 || r == -VLT_E_HSM_KEY_NOT_FOUND);
	return r == 0;
}

/* ---- finding 9: the KEK cache and the process's mappings ---- */

#define N_TENANTS 20000
#define WARM_TENANTS 16

/* Every cached KEK used to be a sodium_malloc() of its own (a guard page on
 * each side, its own mapping, mlock()ed: about four lines of
 * /proc/self/maps), so some 16,000 tenants reached vm.max_map_count and every
 * later guarded allocation failed. 20,000 tenants, each with a KEK, one
 * secret sealed and opened, must cost a bounded number of mappings, and each
 * secret must still open afterwards (whether or not its KEK is still cached). */
static void test_kek_cache_keeps_mappings_bounded(void **state)
{
	struct fixture *f = *state;
	unsigned before, after;
	time_t t0 = time(NULL);

	/* Warm up first: the first slab, SQLite's page cache, the allocator's
	 * first regions. */
	make_tenants(f, 0, WARM_TENANTS);
	open_tenants(f, 0, WARM_TENANTS);
	before = count_maps();
	make_tenants(f, WARM_TENANTS, N_TENANTS);
	open_tenants(f, 0, N_TENANTS);
	after = count_maps();
	print_message("%u tenants: /proc/self/maps %u -> %u lines (%ld s)\n", N_TENANTS, before, after,
		      (long)(time(NULL) - t0));
	assert_true(after < before + 100);
	/* Once more, in reverse order of their caching. */
	open_tenants(f, 0, N_TENANTS);
	assert_true(count_maps() < before + 100);
}

/* Readers pin the slot of the KEK they use: with a cache of 4 slots and 64
 * tenants read by 4 threads, every lookup evicts, and an eviction that took
 * a slot in use would refill it with another tenant's key under a reader
 * (its open would fail authentication, or worse, succeed with the wrong key). */
#define CHURN_TENANTS 64
#define CHURN_THREADS 4
#define CHURN_READS 1500

struct churn {
	struct fixture *f;
	unsigned seed;
	int failures;
};

static void *churn_reader(void *userdata)
{
	struct churn *c = userdata;

	for (unsigned n = 0; n < CHURN_READS; n++) {
		_cleanup_secret_ struct secret *plain = NULL;
		struct store_version v = {0};
		struct store_tx *tx = NULL;
		char tenant[16], path[32], value[128];
		unsigned i = (unsigned)rand_r(&c->seed) % CHURN_TENANTS;

		tenant_name(tenant, sizeof(tenant), i);
		snprintf(path, sizeof(path), "%s/s", tenant);
		value_of(value, sizeof(value), path);
		if (store_read_begin(c->f->s, &tx) < 0 || store_version_get(tx, path, 1, &v) < 0 ||
		    keyring_open(c->f->k, tx, path, &v, &plain) < 0 || plain->len != strlen(value) ||
		    memcmp(plain->p, value, plain->len) != 0)
			c->failures++;
		store_version_clear(&v);
		store_tx_end(tx);
	}
	return NULL;
}

static void test_kek_cache_eviction_spares_keys_in_use(void **state)
{
	struct fixture *f = *state;
	pthread_t t[CHURN_THREADS];
	struct churn c[CHURN_THREADS];

	keyring_set_kek_cache_max(f->k, 4);
	make_tenants(f, 0, CHURN_TENANTS);
	for (unsigned i = 0; i < CHURN_THREADS; i++) {
		c[i] = (struct churn){ .f = f, .seed = i + 1 };
		assert_int_equal(pthread_create(&t[i], NULL, churn_reader, &c[i]), 0);
	}
	int failures = 0;

	for (unsigned i = 0; i < CHURN_THREADS; i++) {
		(void)pthread_join(t[i], NULL);         /* every thread, before any assert leaves */
		failures += c[i].failures;
	}
	assert_int_equal(failures, 0);
}

/* A cache of one slot, and a KEK rotation that needs two keys at once (the
 * new KEK pinned for the whole batch, each old one per row): the key that
 * finds no free slot is used uncached, and nothing leaks (LeakSanitizer). */
static void test_kek_cache_full_of_pins_still_works(void **state)
{
	struct fixture *f = *state;
	struct store_tx *tx = NULL;
	uint32_t from = 0, to = 0;
	char cursor[PATH_MAX_TEXT] = "";
	uint32_t cursor_version = 0;
	int n;

	keyring_set_kek_cache_max(f->k, 1);
	assert_int_equal(keyring_ensure_kek(f->k, f->s, "acme"), 0);
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	seal_one(f, tx, "acme/a", "acme");
	seal_one(f, tx, "acme/b", "acme");
	seal_one(f, tx, "acme/c", "acme");
	assert_int_equal(store_write_commit(tx), 0);

	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(keyring_kek_begin(f->k, tx, "acme", &from, &to), 0);
	assert_int_equal(store_write_commit(tx), 0);
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(keyring_kek_rewrap_batch(f->k, tx, "acme", 2), 2);
	assert_int_equal(store_write_commit(tx), 0);
	/* Half rotated: a and b under v2, c under v1; a data-key rotation
	 * then needs v1 and v2 at once per row. */
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	while ((n = keyring_reseal_batch(f->k, tx, "acme", cursor, &cursor_version, 2)) > 0)
		;
	assert_int_equal(n, 0);
	assert_int_equal(store_write_commit(tx), 0);
	assert_int_equal(store_read_begin(f->s, &tx), 0);
	open_one(f, tx, "acme/a", 1);
	open_one(f, tx, "acme/b", 1);
	open_one(f, tx, "acme/c", 1);
	store_tx_end(tx);
	assert_true(keyring_kek_cached(f->k, "acme", 2));
}

/* ---- finding 10: a KEK version deleted by a finished rotation ---- */

/* A reader whose snapshot predates the rotation's finishing commit still sees
 * the deleted KEK row: it may open what its snapshot holds, but the deleted
 * version must not go back into the cache (where it would stay until lock). */
static void test_forgotten_kek_version_stays_out_of_cache(void **state)
{
	struct fixture *f = *state;
	struct store_tx *old = NULL, *tx = NULL;
	struct store_version v = {0};
	uint32_t from = 0, to = 0;
	int n;

	put_secret(f, "acme", "acme/x");
	assert_true(keyring_kek_cached(f->k, "acme", 1));

	/* The old snapshot starts with its first read, before the rotation. */
	assert_int_equal(store_read_begin(f->s, &old), 0);
	assert_int_equal(store_version_get(old, "acme/x", 1, &v), 0);
	assert_int_equal(v.kek_version, 1);
	store_version_clear(&v);

	/* The KEK rotation, as the worker runs it: start, batches, finish, forget. */
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(keyring_kek_begin(f->k, tx, "acme", &from, &to), 0);
	assert_int_equal(store_write_commit(tx), 0);
	assert_int_equal(from, 1);
	assert_int_equal(to, 2);
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	while ((n = keyring_kek_rewrap_batch(f->k, tx, "acme", 10)) > 0)
		;
	assert_int_equal(n, 0);
	assert_int_equal(keyring_kek_finish(f->k, tx, "acme"), 1);      /* v1 deleted */
	assert_int_equal(store_write_commit(tx), 0);
	keyring_kek_forget(f->k, "acme", 2);
	assert_false(keyring_kek_cached(f->k, "acme", 1));

	/* The old snapshot still names v1 and holds its row: it opens ... */
	open_one(f, old, "acme/x", 1);
	store_tx_end(old);
	/* ... but the deleted version stays out of the cache. */
	assert_false(keyring_kek_cached(f->k, "acme", 1));

	/* A current reader uses v2, which is cached. */
	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_version_get(tx, "acme/x", 1, &v), 0);
	assert_int_equal(v.kek_version, 2);
	store_version_clear(&v);
	open_one(f, tx, "acme/x", 1);
	store_tx_end(tx);
	assert_true(keyring_kek_cached(f->k, "acme", 2));
	assert_false(keyring_kek_cached(f->k, "acme", 1));
}

/* ---- finding 11: retirement and a rotation that commits meanwhile ---- */

static void rotate_meanwhile(void *userdata)
{
	struct fixture *f = userdata;

	/* v2 -> v3: reads the list before the retirement's last transaction
	 * and adds v2 to it. */
	rotate_hsm(f, 2, 3);
}

/* keyring_hsm_retire() used to clear the whole list in its last transaction,
 * so an entry an HSM-key rotation added after the deletions was lost, and
 * its key stayed in the token for ever. */
static void test_hsm_retire_keeps_entries_added_meanwhile(void **state)
{
	struct fixture *f = *state;
	json_t *deleted = NULL;
	char *list;

	put_secret(f, "acme", "acme/x");
	rotate_hsm(f, 1, 2);
	list = retire_list(f);
	assert_string_equal(list, "kr-retire-a:1");
	free(list);

	keyring_set_retire_hook(f->k, rotate_meanwhile, f);
	assert_int_equal(keyring_hsm_retire(f->k, f->s, &deleted), 0);
	keyring_set_retire_hook(f->k, NULL, NULL);
	assert_int_equal(json_array_size(deleted), 1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(deleted, 0), "version")), 1);
	json_decref(deleted);

	/* v1 is deleted and off the list; v2, added by the rotation, stays. */
	list = retire_list(f);
	assert_string_equal(list, "kr-retire-a:2");
	free(list);
	assert_false(token_has("kr-retire-a", 1));
	assert_true(token_has("kr-retire-a", 2));
	assert_true(token_has("kr-retire-a", 3));

	/* The next retirement deletes it. */
	assert_int_equal(keyring_hsm_retire(f->k, f->s, &deleted), 0);
	assert_int_equal(json_array_size(deleted), 1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(deleted, 0), "version")), 2);
	json_decref(deleted);
	list = retire_list(f);
	assert_string_equal(list, "");
	free(list);
	assert_false(token_has("kr-retire-a", 2));
	assert_true(token_has("kr-retire-a", 3));

	/* Still unlocks, and the secret opens, under v3 alone. */
	keyring_lock(f->k);
	assert_int_equal(keyring_unlock(f->k, f->s), 0);
	{
		struct store_tx *tx = NULL;

		assert_int_equal(store_read_begin(f->s, &tx), 0);
		open_one(f, tx, "acme/x", 1);
		store_tx_end(tx);
	}
}

/* ---- finding 3 (HSM part): no deletion without its record first ---- */

struct records {
	int refuse;                     /* error the attempt record returns, or 0 */
	unsigned n;
	char result[4][16];
	char detail[4][512];
};

static int record_to_meta(void *userdata, struct store_tx *tx, const char *result, const char *detail)
{
	struct records *rec = userdata;
	char key[32];
	int r;

	if (rec->n == 4)
		return -E2BIG;
	snprintf(rec->result[rec->n], sizeof(rec->result[0]), "%s", result);
	snprintf(rec->detail[rec->n], sizeof(rec->detail[0]), "%s", detail);
	if (rec->refuse && streq(result, "attempt")) {
		rec->n++;
		return rec->refuse;
	}
	/* Written in the caller's transaction: present afterwards only if
	 * that transaction committed. */
	snprintf(key, sizeof(key), "test.record.%u", rec->n++);
	r = store_meta_set(tx, key, result);
	return r < 0 ? r : 0;
}

static char *meta(struct fixture *f, const char *key)
{
	struct store_tx *tx = NULL;
	char *text = NULL;
	int r;

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	r = store_meta_get(tx, key, &text);
	store_tx_end(tx);
	assert_true(r == 0 || r == -ENOENT);
	return text;
}

static void test_hsm_retire_records_before_deleting(void **state)
{
	struct fixture *f = *state;
	struct records rec = { .refuse = -EIO };
	json_t *deleted = NULL;
	char *text;

	put_secret(f, "acme", "acme/x");
	rotate_hsm(f, 1, 2);

	/* The attempt record is refused (an audit mirror that refuses, a busy
	 * database): nothing leaves the token and the list stays. */
	assert_int_equal(keyring_hsm_retire_audited(f->k, f->s, record_to_meta, &rec, &deleted), -EIO);
	assert_null(deleted);
	assert_int_equal(rec.n, 1);
	assert_string_equal(rec.result[0], "attempt");
	assert_string_equal(rec.detail[0], "deleting HSM keys kr-retire-b:1 from the token");
	assert_true(token_has("kr-retire-b", 1));
	text = retire_list(f);
	assert_string_equal(text, "kr-retire-b:1");
	free(text);

	/* Accepted: the attempt commits before the deletion, the outcome with
	 * the list update. */
	rec = (struct records){0};
	assert_int_equal(keyring_hsm_retire_audited(f->k, f->s, record_to_meta, &rec, &deleted), 0);
	assert_int_equal(json_array_size(deleted), 1);
	json_decref(deleted);
	assert_int_equal(rec.n, 2);
	assert_string_equal(rec.result[0], "attempt");
	assert_string_equal(rec.detail[0], "deleting HSM keys kr-retire-b:1 from the token");
	assert_string_equal(rec.result[1], "allowed");
	assert_string_equal(rec.detail[1], "deleted HSM keys kr-retire-b:1 from the token");
	text = meta(f, "test.record.0");
	assert_non_null(text);
	assert_string_equal(text, "attempt");
	free(text);
	text = meta(f, "test.record.1");
	assert_non_null(text);
	assert_string_equal(text, "allowed");
	free(text);
	assert_false(token_has("kr-retire-b", 1));
	assert_true(token_has("kr-retire-b", 2));
	text = retire_list(f);
	assert_string_equal(text, "");
	free(text);

	/* Nothing left: no record at all. */
	rec = (struct records){0};
	assert_int_equal(keyring_hsm_retire_audited(f->k, f->s, record_to_meta, &rec, &deleted), 0);
	assert_int_equal(json_array_size(deleted), 0);
	json_decref(deleted);
	assert_int_equal(rec.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kek_cache_keeps_mappings_bounded, setup_main, teardown),
		cmocka_unit_test_setup_teardown(test_kek_cache_eviction_spares_keys_in_use, setup_main, teardown),
		cmocka_unit_test_setup_teardown(test_kek_cache_full_of_pins_still_works, setup_main, teardown),
		cmocka_unit_test_setup_teardown(test_forgotten_kek_version_stays_out_of_cache, setup_main, teardown),
		cmocka_unit_test_setup_teardown(test_hsm_retire_keeps_entries_added_meanwhile, setup_retire_a,
						teardown),
		cmocka_unit_test_setup_teardown(test_hsm_retire_records_before_deleting, setup_retire_b, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
