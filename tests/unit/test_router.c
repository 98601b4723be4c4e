/* tests/unit/test_router.c: the route table (vaultd/http/router.c): every
 * route resolves to its row, a known path with another method is 405, an
 * unknown one 404, a capture that is not valid 400, before any handler. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "vaultd/http/api_internal.h"

struct want {
	const char *method, *path;
	int status;
	const char *pattern;            /* when status is 0 */
	const char *action;             /* when status is 0; NULL: classify decides */
};

static const struct want routes[] = {
	{ "GET", "/v1/sys/health", 0, "/v1/sys/health", NULL },
	{ "POST", "/v1/sys/init", 0, "/v1/sys/init", "sys.init" },
	{ "POST", "/v1/sys/unlock", 0, "/v1/sys/unlock", "sys.unlock" },
	{ "POST", "/v1/sys/lock", 0, "/v1/sys/lock", "sys.lock" },
	{ "POST", "/v1/sys/backup", 0, "/v1/sys/backup", "sys.backup" },
	{ "GET", "/v1/sys/metrics", 0, "/v1/sys/metrics", "sys.metrics" },
	{ "POST", "/v1/auth/login", 0, "/v1/auth/login", "auth.login" },
	{ "POST", "/v1/auth/logout", 0, "/v1/auth/logout", "auth.logout" },
	{ "GET", "/v1/auth/self", 0, "/v1/auth/self", "auth.self" },
	{ "POST", "/v1/auth/passphrase", 0, "/v1/auth/passphrase", "auth.passphrase" },
	{ "GET", "/v1/types", 0, "/v1/types", "types.list" },
	{ "GET", "/v1/audit", 0, "/v1/audit", "audit.read" },
	{ "GET", "/v1/audit/verify", 0, "/v1/audit/verify", "audit.verify" },
	{ "GET", "/v1/users", 0, "/v1/users", "user.read" },
	{ "GET", "/v1/users/alice", 0, "/v1/users/{name}", "user.read" },
	{ "PUT", "/v1/users/alice", 0, "/v1/users/{name}", "user.write" },
	{ "DELETE", "/v1/users/alice", 0, "/v1/users/{name}", "user.delete" },
	{ "POST", "/v1/users/alice/reset-mfa", 0, "/v1/users/{name}/reset-mfa", "user.reset_mfa" },
	{ "GET", "/v1/roles", 0, "/v1/roles", "role.read" },
	{ "GET", "/v1/roles/rmm-read", 0, "/v1/roles/{name}", "role.read" },
	{ "PUT", "/v1/roles/rmm-read", 0, "/v1/roles/{name}", "role.write" },
	{ "DELETE", "/v1/roles/rmm-read", 0, "/v1/roles/{name}", "role.delete" },
	{ "GET", "/v1/services", 0, "/v1/services", "service.read" },
	{ "GET", "/v1/services/sync", 0, "/v1/services/{name}", "service.read" },
	{ "PUT", "/v1/services/sync", 0, "/v1/services/{name}", "service.write" },
	{ "DELETE", "/v1/services/sync", 0, "/v1/services/{name}", "service.delete" },
	{ "GET", "/v1/rotate/status", 0, "/v1/rotate/status", "rotate.status" },
	{ "GET", "/v1/rotate/jobs/42", 0, "/v1/rotate/jobs/{id}", "rotate.job" },
	{ "POST", "/v1/rotate/secret", 0, "/v1/rotate/secret", "rotate.secret" },
	{ "POST", "/v1/rotate/secret/acme/rmm", 0, "/v1/rotate/secret/{path*}", "rotate.secret" },
	{ "POST", "/v1/rotate/kek/acme", 0, "/v1/rotate/kek/{path*}", "rotate.kek" },
	{ "POST", "/v1/rotate/root", 0, "/v1/rotate/root", "rotate.root" },
	{ "POST", "/v1/rotate/hsm", 0, "/v1/rotate/hsm", "rotate.hsm" },
	{ "POST", "/v1/rotate/hsm/retire", 0, "/v1/rotate/hsm/retire", "rotate.hsm_retire" },
	{ "POST", "/v1/rotate/all", 0, "/v1/rotate/all", "rotate.all" },
	{ "GET", "/v1/secrets", 0, "/v1/secrets", NULL },
	{ "GET", "/v1/secrets/acme/rmm/tactical", 0, "/v1/secrets/{path*}", NULL },
	{ "PUT", "/v1/secrets/acme/rmm/tactical", 0, "/v1/secrets/{path*}", NULL },
	{ "DELETE", "/v1/secrets/acme/rmm/tactical", 0, "/v1/secrets/{path*}", NULL },
	{ "POST", "/v1/secrets/acme/rmm/tactical/rollback", 0, "/v1/secrets/{path*}/rollback", NULL },
	{ "POST", "/v1/secrets/acme/rmm/tactical/promote", 0, "/v1/secrets/{path*}/promote", NULL },
	/* A secret whose last segment reads like an action is a secret. */
	{ "GET", "/v1/secrets/acme/rollback", 0, "/v1/secrets/{path*}", NULL },

	/* Known paths, other methods: 405. */
	{ "DELETE", "/v1/sys/health", 405, NULL, NULL },
	{ "GET", "/v1/sys/unlock", 405, NULL, NULL },
	{ "POST", "/v1/users/alice", 405, NULL, NULL },
	{ "PATCH", "/v1/roles/x", 405, NULL, NULL },
	{ "GET", "/v1/rotate/root", 405, NULL, NULL },
	{ "POST", "/v1/secrets/acme/a/b", 405, NULL, NULL },
	{ "PUT", "/v1/audit", 405, NULL, NULL },
	/* Unknown: 404. */
	{ "GET", "/", 404, NULL, NULL },
	{ "GET", "/v1", 404, NULL, NULL },
	{ "GET", "/v1/no/such/route", 404, NULL, NULL },
	{ "GET", "/v1/users/alice/extra", 404, NULL, NULL },
	{ "GET", "/v2/sys/health", 404, NULL, NULL },
	{ "GET", "v1/sys/health", 404, NULL, NULL },
	{ "GET", "/v1/sys/health/", 404, NULL, NULL },
	{ "POST", "/v1/rotate/kek", 404, NULL, NULL },
	{ "POST", "/v1/rotate/bogus", 404, NULL, NULL },
	{ "GET", "/v1/rotate/jobs", 404, NULL, NULL },
	{ "GET", "/v1/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s", 404, NULL, NULL },
	/* Captures checked before any handler: 400. */
	{ "GET", "/v1/users/bad%20name", 400, NULL, NULL },
	{ "PUT", "/v1/roles/-leading-dash", 400, NULL, NULL },
	{ "GET", "/v1/rotate/jobs/12x", 400, NULL, NULL },
	{ "GET", "/v1/rotate/jobs/1234567890123456789", 400, NULL, NULL },
	{ "DELETE", "/v1/services/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 400, NULL, NULL },
	/* An empty segment matches no capture. */
	{ "GET", "/v1/users/", 404, NULL, NULL },
	{ "GET", "/v1/secrets//x", 0, "/v1/secrets/{path*}", NULL },
};

static void test_every_route(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		const struct want *w = &routes[i];
		const char *pattern = NULL, *action = NULL;
		int status = router_lookup(w->method, w->path, &pattern, &action);

		if (status != w->status)
			fail_msg("%s %s: %d, expected %d", w->method, w->path, status, w->status);
		if (status)
			continue;
		assert_string_equal(pattern, w->pattern);
		if (w->action)
			assert_string_equal(action, w->action);
		else
			assert_null(action);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = { cmocka_unit_test(test_every_route) };

	return cmocka_run_group_tests(tests, NULL, NULL);
}
