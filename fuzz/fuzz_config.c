/* fuzz/fuzz_config.c: vaultd/config.c, the vaultd.conf parser and validator
 * (inih underneath), fed the input as a config file's text. Property: an
 * error message is always a NUL-terminated string within its buffer. */
#include <stdint.h>
#include "fuzz/fuzz.h"
#include <stdlib.h>
#include <string.h>
#include "common/util.h"
#include "vaultd/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c = {0};
	char err[256];
	char *text;

	text = fuzz_cstr(data, size, 65536);
	if (!text)
		return 0;
	memset(err, 'x', sizeof(err));
	if (config_load_string(text, "fuzz.conf", &c, err, sizeof(err)) < 0 && !memchr(err, '\0', sizeof(err)))
		abort();
	config_free(&c);
	free(text);
	return 0;
}
