/* fuzz/fuzz.h: the libFuzzer entry points every harness defines (the
 * prototypes -Wmissing-prototypes wants). */
#pragma once
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);
