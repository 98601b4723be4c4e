/* vaultd/access/principal.h: who is calling, and what their roles allow.
 * A principal is filled per request (http/identity.c) or per check (the
 * core's unlock) and cleared after it. Threads: one principal, one thread.
 */
#pragma once
#include <stdbool.h>
#include "common/json.h"
#include "common/path.h"
#include "common/secret.h"
#include "vaultd/access/rbac.h"
#include "vaultd/store/store.h"

#define PRINCIPAL_ROLES_MAX 16

enum principal_kind {
	PRINCIPAL_NONE = 0,             /* unbound uid, no token */
	PRINCIPAL_USER,                 /* a person, by bearer token */
	PRINCIPAL_SERVICE,              /* a bound uid */
};

struct principal {
	enum principal_kind kind;
	char name[PATH_SEGMENT_MAX + 1];
	char token_hash[65];            /* users: the hash of the token presented */
	const struct rbac_role *roles[PRINCIPAL_ROLES_MAX];
	size_t n_roles;
	struct rbac_role owned[PRINCIPAL_ROLES_MAX];    /* custom roles loaded for this principal */
	size_t n_owned;
	json_t *role_names;             /* JSON array of the role names */
};
void principal_clear(struct principal *p);

/* Loads the roles named by a JSON array text into p (built-ins by
 * reference, custom roles from the store in tx). Unknown names are skipped
 * (default deny), and so is a custom role failing the authorization seal
 * under key (when key is non-NULL: while unlocked), which is reported
 * (authz_note_tamper() on s). 0; -EBADMSG a malformed array or role;
 * -ENOMEM; storage errors. */
int principal_load_roles(struct store *s, struct store_tx *tx, const struct secret *key, const char *roles_json,
			 struct principal *p);
