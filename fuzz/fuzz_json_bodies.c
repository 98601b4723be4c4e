/* fuzz/fuzz_json_bodies.c: the JSON bodies the API validates without a
 * store: credential data for every type (vaultd/secrets/types.c) and role
 * bodies (vaultd/access/rbac.c), parsed the way the router parses a body
 * (jansson, duplicate keys refused). The first byte picks the type. */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include "fuzz/fuzz.h"
#include <stdlib.h>
#include "vaultd/access/rbac.h"
#include "vaultd/secrets/types.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct cred_type *t;
	struct rbac_role role = {0};
	json_t *j, *errors = NULL;
	json_error_t jerr;

	if (size < 1 || size > 65536)
		return 0;
	j = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, &jerr);
	if (!j)
		return 0;
	t = cred_type_at(data[0] % cred_types_count());
	if (cred_type_validate(t, j, &errors) == -EINVAL && errors && !json_is_object(errors))
		abort();
	json_decref(errors);
	errors = NULL;
	if (rbac_role_from_json("fuzz-role", j, &role, &errors) == 0)
		rbac_role_clear(&role);
	json_decref(errors);
	json_decref(j);
	return 0;
}
