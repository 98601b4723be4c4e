/* fuzz/fuzz_encoding.c: common/encoding.c, the base32 (TOTP secrets) and
 * base64 decoders. Property: whatever base32_decode() accepts, encoding it
 * again and decoding that gives the same bytes. */
#include <stdint.h>
#include "fuzz/fuzz.h"
#include <stdlib.h>
#include <string.h>
#include "common/encoding.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t out[4096], again[4096];
	char text[8192];
	size_t n, m;

	if (size > 4096)
		return 0;
	if (base32_decode((const char *)data, size, out, sizeof(out), &n) == 0) {
		if (n > sizeof(out) || base32_encode(out, n, 0, text, sizeof(text)) < 0)
			abort();
		if (base32_decode(text, strlen(text), again, sizeof(again), &m) != 0 || m != n ||
		    memcmp(out, again, n) != 0)
			abort();
	}
	/* A buffer too small must be refused, never overrun. */
	(void)base32_decode((const char *)data, size, out, size / 4, &n);
	(void)base64_decode((const char *)data, size, out, sizeof(out), &n);
	(void)base64_decode((const char *)data, size, out, size / 4, &n);
	return 0;
}
