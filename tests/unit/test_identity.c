/* tests/unit/test_identity.c: who is calling (vaultd/access/identity.h) on
 * a real store: a token proves its user only from the uid that logged in,
 * only in the epoch it was issued in, only until it expires; a uid is its
 * bound service or nobody; rows that fail the authorization seal are
 * refused (and custom roles that fail it grant nothing). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <sodium.h>
#include "vaultd/access/authz.h"
#include "vaultd/access/identity.h"
#include "vaultd/store/store.h"

#define TOKEN "vt.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define PHC "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"

struct fixture {
	char dir[64], db[96];
	struct store *s;
	struct secret *key;
	uint8_t epoch[16];
};

static void seal_and_put(struct fixture *f, struct store_user *u, struct store_role *r, struct store_service *sv)
{
	struct store_tx *tx;

	assert_int_equal(store_write_begin(f->s, &tx), 0);
	if (r) {
		authz_mac_role(f->key, r, r->mac);
		assert_int_equal(store_role_put(tx, r), 0);
	}
	if (u) {
		authz_mac_user(f->key, u, u->mac);
		assert_int_equal(store_user_put(tx, u), 0);
	}
	if (sv) {
		authz_mac_service(f->key, sv, sv->mac);
		assert_int_equal(store_service_put(tx, sv), 0);
	}
	assert_int_equal(store_write_commit(tx), 0);
}

static void put_token(struct fixture *f, const uint8_t epoch[16], uid_t uid, int64_t expires_at)
{
	struct store_token t = { .uid = (uint32_t)uid, .created_at = time(NULL), .expires_at = expires_at };
	struct store_tx *tx;

	snprintf(t.user, sizeof(t.user), "alice");
	token_hash_hex(epoch, TOKEN, strlen(TOKEN), t.hash);
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	(void)store_token_delete(tx, t.hash);
	assert_int_equal(store_token_put(tx, &t), 0);
	assert_int_equal(store_write_commit(tx), 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct store_user u = { .name = "alice", .phc = (char *)PHC, .roles = (char *)"[\"operator\",\"ro\"]" };
	struct store_role r = { .name = "ro", .rules = (char *)"{\"rules\":[{\"path\":\"acme/*\",\"capabilities\":[\"read\"]}]}" };
	struct store_service sv = { .name = "sync", .uid = 998, .roles = (char *)"[\"ro\"]" };

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/vaultd-identity-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/vault.db", f->dir);
	assert_int_equal(store_open(f->db, 1, &f->s), 0);
	assert_int_equal(secret_random(32, &f->key), 0);
	randombytes_buf(f->epoch, sizeof(f->epoch));
	seal_and_put(f, &u, &r, &sv);
	put_token(f, f->epoch, 1000, time(NULL) + 600);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	store_close(f->s);
	secret_free(f->key);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static int by_token(struct fixture *f, const uint8_t epoch[16], uid_t uid, const struct secret *key,
		    struct principal *p)
{
	struct store_tx *tx;
	int r;

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	r = identity_of_token(f->s, tx, key, epoch, TOKEN, strlen(TOKEN), uid, p);
	store_tx_end(tx);
	return r;
}

static int by_uid(struct fixture *f, uid_t uid, const struct secret *key, struct principal *p)
{
	struct store_tx *tx;
	int r;

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	r = identity_of_uid(f->s, tx, key, uid, p);
	store_tx_end(tx);
	return r;
}

static void test_a_token_proves_its_user_with_the_roles(void **state)
{
	struct fixture *f = *state;
	struct principal p = {0};

	assert_int_equal(by_token(f, f->epoch, 1000, f->key, &p), 0);
	assert_int_equal(p.kind, PRINCIPAL_USER);
	assert_string_equal(p.name, "alice");
	assert_int_equal(p.n_roles, 2);                 /* the built-in and the sealed custom role */
	assert_true(rbac_allowed(p.roles, p.n_roles, "acme/rmm/x", RBAC_WRITE));
	assert_false(rbac_allowed(p.roles, p.n_roles, NULL, RBAC_ADMIN));
	principal_clear(&p);
}

static void test_a_token_is_bound_to_its_uid_epoch_and_lifetime(void **state)
{
	struct fixture *f = *state;
	struct principal p = {0};
	uint8_t other[16];

	assert_int_equal(by_token(f, f->epoch, 1001, f->key, &p), -EPERM);     /* copied to another uid */
	principal_clear(&p);
	memcpy(other, f->epoch, sizeof(other));
	other[0] ^= 1;                                  /* after a lock, an unlock or a restart */
	assert_int_equal(by_token(f, other, 1000, f->key, &p), -EACCES);
	principal_clear(&p);
	put_token(f, f->epoch, 1000, time(NULL) - 1);   /* expired */
	assert_int_equal(by_token(f, f->epoch, 1000, f->key, &p), -EACCES);
	principal_clear(&p);
}

static void test_a_uid_is_its_service_or_nobody(void **state)
{
	struct fixture *f = *state;
	struct principal p = {0};

	assert_int_equal(by_uid(f, 998, f->key, &p), 0);
	assert_int_equal(p.kind, PRINCIPAL_SERVICE);
	assert_string_equal(p.name, "sync");
	assert_true(rbac_allowed(p.roles, p.n_roles, "acme/rmm/x", RBAC_READ));
	assert_false(rbac_allowed(p.roles, p.n_roles, "globex/rmm/x", RBAC_READ));
	principal_clear(&p);
	assert_int_equal(by_uid(f, 4242, f->key, &p), 0);
	assert_int_equal(p.kind, PRINCIPAL_NONE);
	principal_clear(&p);
}

static void test_rows_failing_the_seal_are_refused(void **state)
{
	struct fixture *f = *state;
	struct store_service evil = { .name = "evil", .uid = 65534, .roles = (char *)"[\"admin\"]" };
	struct principal p = {0};
	struct store_tx *tx;
	char *tamper = NULL;

	/* A binding inserted behind vaultd's back: no MAC. */
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_service_put(tx, &evil), 0);
	assert_int_equal(store_write_commit(tx), 0);
	assert_int_equal(by_uid(f, 65534, f->key, &p), -EBADMSG);
	principal_clear(&p);
	/* Locked (no key), the same row is used unchecked: what a locked
	 * vault serves is documented as that. */
	assert_int_equal(by_uid(f, 65534, NULL, &p), 0);
	principal_clear(&p);
	/* A custom role widened behind vaultd's back grants nothing. */
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	{
		struct store_role r = {0};
		assert_int_equal(store_role_get(tx, "ro", &r), 0);
		free(r.rules);
		r.rules = strdup("{\"rules\":[{\"path\":\"*\",\"capabilities\":[\"read\"]}]}");
		assert_int_equal(store_role_put(tx, &r), 0);
		store_role_clear(&r);
	}
	assert_int_equal(store_write_commit(tx), 0);
	assert_int_equal(by_uid(f, 998, f->key, &p), 0);
	assert_int_equal(p.n_roles, 0);
	assert_false(rbac_allowed(p.roles, p.n_roles, "globex/rmm/x", RBAC_READ));
	principal_clear(&p);
	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_meta_get(tx, AUDIT_AUTHZ_TAMPER_KEY, &tamper), 0);
	store_tx_end(tx);
	assert_non_null(strstr(tamper, "service 'evil'"));
	free(tamper);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_a_token_proves_its_user_with_the_roles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_token_is_bound_to_its_uid_epoch_and_lifetime, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_uid_is_its_service_or_nobody, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rows_failing_the_seal_are_refused, setup, teardown),
	};

	if (secret_library_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
