/* fuzz/fuzz.h: the libFuzzer entry points every harness defines (the
 * prototypes -Wmissing-prototypes wants). */
#pragma once
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#include <stdlib.h>
#include <string.h>

/* The input as a NUL-terminated string the caller frees; NULL if size is
 * over max or memory is short (the input is then skipped). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size, size_t max)
{
	char *s = size <= max ? malloc(size + 1) : NULL;

	if (s) {
		memcpy(s, data, size);
		s[size] = '\0';
	}
	return s;
}
