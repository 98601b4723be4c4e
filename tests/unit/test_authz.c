/* tests/unit/test_authz.c: the authorization seal (vaultd/authz.h) against
 * a real store: what each MAC covers, sealing an older vault's rows,
 * resealing under a new key, and rows changed behind vaultd's back. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "vaultd/access/authz.h"

struct fixture {
	char dir[64], db[96];
	struct store *s;
	struct secret *k1, *k2;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/vaultd-authz-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/vault.db", f->dir);
	assert_int_equal(store_open(f->db, 1, &f->s), 0);
	assert_int_equal(secret_random(32, &f->k1), 0);
	assert_int_equal(secret_random(32, &f->k2), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	store_close(f->s);
	secret_free(f->k1);
	secret_free(f->k2);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

#define PHC "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"

/* Rows as an older vaultd wrote them: no MAC. */
static void put_rows(struct fixture *f, const struct secret *seal_with)
{
	struct store_user u = { .name = "alice", .phc = (char *)PHC, .roles = (char *)"[\"admin\"]" };
	struct store_role r = { .name = "ro", .rules = (char *)"{\"rules\":[]}" };
	struct store_service s = { .name = "sync", .uid = 998, .roles = (char *)"[\"ro\"]" };
	struct store_tx *tx;

	if (seal_with) {
		authz_mac_user(seal_with, &u, u.mac);
		authz_mac_role(seal_with, &r, r.mac);
		authz_mac_service(seal_with, &s, s.mac);
	}
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_role_put(tx, &r), 0);
	assert_int_equal(store_user_put(tx, &u), 0);
	assert_int_equal(store_service_put(tx, &s), 0);
	assert_int_equal(store_write_commit(tx), 0);
}

static void rows_ok(struct fixture *f, const struct secret *key, bool want)
{
	struct store_user u = {0};
	struct store_role r = {0};
	struct store_service s = {0};
	struct store_tx *tx;

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_user_get(tx, "alice", &u), 0);
	assert_int_equal(store_role_get(tx, "ro", &r), 0);
	assert_int_equal(store_service_get(tx, "sync", &s), 0);
	store_tx_end(tx);
	assert_true(authz_user_ok(key, &u) == want);
	assert_true(authz_role_ok(key, &r) == want);
	assert_true(authz_service_ok(key, &s) == want);
	store_user_clear(&u);
	store_role_clear(&r);
	store_service_clear(&s);
}

static int seal(struct fixture *f, const struct secret *check, const struct secret *key, int64_t *rows)
{
	struct store_tx *tx;
	int r;

	assert_int_equal(store_write_begin(f->s, &tx), 0);
	r = authz_seal_all(tx, check, key, rows);
	if (r >= 0)
		assert_int_equal(store_write_commit(tx), 0);
	else
		store_tx_end(tx);
	return r;
}

static void test_every_granting_field_is_covered(void **state)
{
	struct fixture *f = *state;
	struct store_user u = { .name = "alice", .phc = (char *)PHC, .roles = (char *)"[\"admin\"]" };
	struct store_role r = { .name = "ro", .rules = (char *)"{\"rules\":[]}" };
	struct store_service s = { .name = "sync", .uid = 998, .roles = (char *)"[\"ro\"]" };

	authz_mac_user(f->k1, &u, u.mac);
	authz_mac_role(f->k1, &r, r.mac);
	authz_mac_service(f->k1, &s, s.mac);
	assert_int_equal(strlen(u.mac), 64);
	assert_true(authz_user_ok(f->k1, &u) && authz_role_ok(f->k1, &r) && authz_service_ok(f->k1, &s));
	assert_false(authz_user_ok(f->k2, &u));         /* another root key */
#define BROKEN(obj, check, stmt) do { __typeof__(obj) b = obj; stmt; assert_false(check(f->k1, &b)); } while (0)
	BROKEN(u, authz_user_ok, b.name[0] = 'A');
	BROKEN(u, authz_user_ok, b.phc = (char *)"$argon2id$other");
	BROKEN(u, authz_user_ok, b.roles = (char *)"[\"operator\"]");
	BROKEN(u, authz_user_ok, b.mac[0] = '\0');
	BROKEN(u, authz_user_ok, b.mac[63] = b.mac[63] == '0' ? '1' : '0');
	BROKEN(r, authz_role_ok, b.rules = (char *)"{\"rules\":[{\"path\":\"*\"}]}");
	BROKEN(r, authz_role_ok, b.name[1] = 'w');
	BROKEN(s, authz_service_ok, b.uid = 0);
	BROKEN(s, authz_service_ok, b.roles = (char *)"[\"admin\"]");
	BROKEN(s, authz_service_ok, b.name[0] = 'S');
#undef BROKEN
	/* The same fields of another kind never match: the kind is bound. */
	{
		struct store_role as_role = { .name = "alice", .rules = (char *)PHC };
		memcpy(as_role.mac, u.mac, sizeof(u.mac));
		assert_false(authz_role_ok(f->k1, &as_role));
	}
	/* What is left out on purpose changes nothing. */
	u.mfa_state = STORE_MFA_ACTIVE;
	u.totp_last_step = 99;
	u.updated_at = 12345;
	assert_true(authz_user_ok(f->k1, &u));
}

static void test_an_older_vault_is_sealed_once(void **state)
{
	struct fixture *f = *state;
	int64_t rows = -1;

	put_rows(f, NULL);
	rows_ok(f, f->k1, false);
	assert_int_equal(seal(f, NULL, f->k1, &rows), 0);
	assert_int_equal(rows, 3);
	rows_ok(f, f->k1, true);
	/* Sealed rows are left as they are. */
	assert_int_equal(seal(f, NULL, f->k1, &rows), 0);
	assert_int_equal(rows, 0);
}

static void test_sealing_refuses_a_row_with_a_wrong_mac(void **state)
{
	struct fixture *f = *state;
	int64_t rows = -1;

	put_rows(f, f->k2);             /* sealed under a key that is not ours */
	assert_int_equal(seal(f, NULL, f->k1, &rows), -EBADMSG);
	rows_ok(f, f->k2, true);        /* nothing was rewritten */
}

static void test_root_rotation_reseals_after_checking(void **state)
{
	struct fixture *f = *state;
	struct store_tx *tx;
	int64_t rows = -1;

	put_rows(f, f->k1);
	assert_int_equal(seal(f, f->k1, f->k2, &rows), 0);
	assert_int_equal(rows, 3);
	rows_ok(f, f->k2, true);
	rows_ok(f, f->k1, false);
	/* A role widened behind vaultd's back: the next rotation refuses
	 * to launder it, and writes nothing. */
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	{
		struct store_role r = {0};
		assert_int_equal(store_role_get(tx, "ro", &r), 0);
		free(r.rules);
		r.rules = strdup("{\"rules\":[{\"path\":\"*\",\"capabilities\":[\"read\"]}]}");
		assert_int_equal(store_role_put(tx, &r), 0);     /* keeps the old MAC */
		store_role_clear(&r);
	}
	assert_int_equal(store_write_commit(tx), 0);
	assert_int_equal(seal(f, f->k2, f->k1, &rows), -EBADMSG);
	{
		struct store_user u = {0};
		assert_int_equal(store_read_begin(f->s, &tx), 0);
		assert_int_equal(store_user_get(tx, "alice", &u), 0);
		store_tx_end(tx);
		assert_true(authz_user_ok(f->k2, &u));
		store_user_clear(&u);
	}
}

static void test_tamper_note_keeps_the_first(void **state)
{
	struct fixture *f = *state;
	struct store_tx *tx;
	char *v = NULL;

	authz_note_tamper(f->s, "service 'evil' (uid 65534)");
	authz_note_tamper(f->s, "role 'ro'");
	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_meta_get(tx, AUDIT_AUTHZ_TAMPER_KEY, &v), 0);
	store_tx_end(tx);
	assert_non_null(strstr(v, "service 'evil'"));
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_every_granting_field_is_covered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_an_older_vault_is_sealed_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sealing_refuses_a_row_with_a_wrong_mac, setup, teardown),
		cmocka_unit_test_setup_teardown(test_root_rotation_reseals_after_checking, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tamper_note_keeps_the_first, setup, teardown),
	};

	if (secret_library_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
