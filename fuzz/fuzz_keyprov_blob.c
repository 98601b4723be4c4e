/* fuzz/fuzz_keyprov_blob.c: common/keyprov_blob.c, the decoder of the
 * HSM-wrapped root key blob stored in the database. Property: a blob it
 * accepts builds back to the very same bytes. */
#include <stdint.h>
#include "fuzz/fuzz.h"
#include <stdlib.h>
#include <string.h>
#include "common/keyprov.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct keyprov_blob b;
	uint8_t *again = NULL;
	size_t n = 0;

	if (keyprov_blob_parse(data, size, &b) != 0)
		return 0;
	if (keyprov_blob_build(&b, &again, &n) != 0 || n != size || memcmp(again, data, size) != 0)
		abort();
	free(again);
	return 0;
}
