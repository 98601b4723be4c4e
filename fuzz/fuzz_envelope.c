/* fuzz/fuzz_envelope.c: vaultd/keys/envelope.c, the decoders of the wrapped
 * blobs in the database (wrapped KEKs, wrapped DEKs, sealed values, sealed
 * TOTP secrets): the header parser (envelope_peek()) and every unwrap/open
 * under a fixed key, which must refuse what it did not seal, cleanly. */
#include <stdint.h>
#include "fuzz/fuzz.h"
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "common/secret.h"
#include "vaultd/keys/envelope.h"

static struct secret *key;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (sodium_init() < 0 || secret_arena_init(16u << 20) < 0 || secret_new(ENVELOPE_KEY_LEN, &key) < 0)
		abort();
	memset(key->p, 0x42, ENVELOPE_KEY_LEN);
	key->len = ENVELOPE_KEY_LEN;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct secret *out = NULL;
	enum envelope_kind kind;
	uint32_t version;

	if (size > 70000)
		return 0;
	(void)envelope_peek(data, size, &kind, &version);
	/* Nobody sealed these with the fuzz key: an accepted blob is a
	 * forgery (or the fuzzer found the key), either way a crash. */
	if (envelope_unwrap_kek(key, 1, "acme", 1, data, size, &out) == 0)
		abort();
	if (envelope_unwrap_dek(key, 1, "acme/rmm/x", 1, data, size, &out) == 0)
		abort();
	if (envelope_open_data(key, "acme/rmm/x", 1, data, size, &out) == 0)
		abort();
	if (envelope_open_totp(key, "alice", data, size, &out) == 0)
		abort();
	secret_free(out);
	return 0;
}
