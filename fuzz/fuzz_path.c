/* fuzz/fuzz_path.c: common/path.c, the secret and prefix path validator.
 * Property: a path path_check() accepts has a tenant path_tenant() copies,
 * and that tenant is itself a valid one-segment path. */
#include <stdint.h>
#include "fuzz/fuzz.h"
#include <stdlib.h>
#include <string.h>
#include "common/path.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char tenant[PATH_SEGMENT_MAX + 1];
	char *s;

	s = fuzz_cstr(data, size, 4096);
	if (!s)
		return 0;
	for (unsigned min = 0; min <= 2; min++)
		if (!path_check(s, min)) {
			if (path_tenant(s, tenant) != 0 || path_check(tenant, 1))
				abort();
		}
	free(s);
	return 0;
}
