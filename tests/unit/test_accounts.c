/* tests/unit/test_accounts.c: the account rules (vaultd/access/accounts.h)
 * on a real store: a roles array names 1-16 existing roles; the last user
 * holding admin can be neither deleted nor demoted. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "vaultd/access/accounts.h"
#include "vaultd/store/store.h"

#define PHC "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"

struct fixture {
	char dir[64], db[96];
	struct store *s;
};

static void put_user(struct fixture *f, const char *name, const char *roles)
{
	struct store_user u = { .phc = (char *)PHC, .roles = (char *)roles };
	struct store_tx *tx;

	snprintf(u.name, sizeof(u.name), "%s", name);
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_user_put(tx, &u), 0);
	assert_int_equal(store_write_commit(tx), 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct store_role r = { .name = "ro", .rules = (char *)"{\"rules\":[]}" };
	struct store_tx *tx;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/vaultd-accounts-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/vault.db", f->dir);
	assert_int_equal(store_open(f->db, 1, &f->s), 0);
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_role_put(tx, &r), 0);
	assert_int_equal(store_write_commit(tx), 0);
	put_user(f, "alice", "[\"admin\"]");
	put_user(f, "bob", "[\"operator\"]");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	store_close(f->s);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static int check(struct fixture *f, const char *json, const char **why)
{
	_cleanup_json_ json_t *roles = json_loads(json, 0, NULL);
	struct store_tx *tx;
	int r;

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	r = accounts_roles_check(tx, roles, why);
	store_tx_end(tx);
	return r;
}

static void test_roles_arrays(void **state)
{
	struct fixture *f = *state;
	const char *why = NULL;

	assert_int_equal(check(f, "[\"admin\"]", &why), 0);
	assert_int_equal(check(f, "[\"ro\", \"auditor\"]", &why), 0);
	assert_int_equal(check(f, "[]", &why), -EINVAL);
	assert_string_equal(why, "an array of 1-16 role names");
	assert_int_equal(check(f, "\"admin\"", &why), -EINVAL);
	assert_int_equal(check(f, "[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\",\"l\",\"m\",\"n\","
				  "\"o\",\"p\",\"q\"]", &why), -EINVAL);
	assert_int_equal(check(f, "[\"bad name\"]", &why), -EINVAL);
	assert_string_equal(why, "role names are strings of [A-Za-z0-9._-]");
	assert_int_equal(check(f, "[1]", &why), -EINVAL);
	assert_int_equal(check(f, "[\"nosuch\"]", &why), -EINVAL);
	assert_string_equal(why, "names a role that does not exist");
}

static bool lost(struct fixture *f, const char *user, const char *new_roles)
{
	_cleanup_json_ json_t *roles = new_roles ? json_loads(new_roles, 0, NULL) : NULL;
	struct store_tx *tx;
	bool r;

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	r = accounts_last_admin_lost(tx, user, roles);
	store_tx_end(tx);
	return r;
}

static void test_the_last_admin_stays(void **state)
{
	struct fixture *f = *state;

	assert_true(lost(f, "alice", NULL));                    /* delete the only admin */
	assert_true(lost(f, "alice", "[\"operator\"]"));        /* demote the only admin */
	assert_false(lost(f, "alice", "[\"operator\",\"admin\"]"));
	assert_false(lost(f, "bob", NULL));                     /* not an admin */
	assert_false(lost(f, "nobody", NULL));
	put_user(f, "carol", "[\"admin\"]");
	assert_false(lost(f, "alice", NULL));                   /* another admin remains */
	assert_false(lost(f, "alice", "[\"ro\"]"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roles_arrays, setup, teardown),
		cmocka_unit_test_setup_teardown(test_the_last_admin_stays, setup, teardown),
	};

	if (secret_library_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
