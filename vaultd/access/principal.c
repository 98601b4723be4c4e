/* vaultd/access/principal.c: see principal.h. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include "vaultd/access/authz.h"
#include "vaultd/access/principal.h"

void principal_clear(struct principal *p)
{
	for (size_t i = 0; i < p->n_owned; i++)
		rbac_role_clear(&p->owned[i]);
	json_decref(p->role_names);
	sodium_memzero(p->token_hash, sizeof(p->token_hash));
	*p = (struct principal){0};
}

int principal_load_roles(struct store *s, struct store_tx *tx, const struct secret *key, const char *roles_json,
			 struct principal *p)
{
	_cleanup_json_ json_t *arr = json_loads(roles_json, 0, NULL);
	json_t *v;
	size_t i;

	if (!json_is_array(arr))
		return -EBADMSG;
	json_array_foreach(arr, i, v) {
		const struct rbac_role *b;
		struct store_role row = {0};
		const char *name = json_string_value(v);
		json_t *rules;
		int r;

		if (!name || p->n_roles >= PRINCIPAL_ROLES_MAX)
			continue;
		b = rbac_builtin_find(name);
		if (b) {
			p->roles[p->n_roles++] = b;
			continue;
		}
		r = store_role_get(tx, name, &row);
		if (r == -ENOENT)
			continue;       /* deleted role: grants nothing */
		if (r < 0)
			return r;
		if (key && !authz_role_ok(key, &row)) {
			/* Changed outside vaultd: grants nothing, and is reported. */
			char what[96];
			snprintf(what, sizeof(what), "role '%s'", row.name);
			store_role_clear(&row);
			authz_note_tamper(s, what);
			continue;
		}
		rules = json_loads(row.rules, 0, NULL);
		store_role_clear(&row);
		if (!rules)
			return -EBADMSG;
		r = rbac_role_from_json(name, rules, &p->owned[p->n_owned], NULL);
		json_decref(rules);
		if (r < 0)
			return r == -ENOMEM ? r : -EBADMSG;
		p->roles[p->n_roles++] = &p->owned[p->n_owned++];
	}
	p->role_names = TAKE_PTR(arr);
	return 0;
}

