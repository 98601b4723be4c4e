/* tests/unit/test_arena.c: the secure arena (common/secret.h).
 * One process, one arena of 64 KiB (the smallest), set up in main(): every
 * secret and every JSON block after that comes from it, a full arena is an
 * error and never a fallback, frees wipe, and guarded memory stays guarded.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "common/json.h"
#include "common/secret.h"

#define ARENA (64 * 1024)

static void test_secrets_come_from_the_arena(void **state)
{
	_cleanup_secret_ struct secret *a = NULL, *b = NULL, *c = NULL, *g = NULL, *gd = NULL;
	(void)state;

	assert_true(secret_arena_active());
	assert_int_equal(secret_arena_size(), ARENA);
	assert_int_equal(secret_new(100, &a), 0);
	assert_true(secret_arena_owns(a->p));
	assert_false(a->guarded);
	for (size_t i = 0; i < a->cap; i++)
		assert_int_equal(a->p[i], 0);
	assert_int_equal(secret_random(32, &b), 0);
	assert_true(secret_arena_owns(b->p));
	assert_int_equal(secret_dup(b, &c), 0);
	assert_true(secret_arena_owns(c->p));
	assert_true(secret_equal(b, c));
	/* Long-lived keys keep guard pages. */
	assert_int_equal(secret_random_guarded(32, &g), 0);
	assert_true(g->guarded);
	assert_false(secret_arena_owns(g->p));
	assert_int_equal(secret_dup(g, &gd), 0);
	assert_true(gd->guarded);
	assert_int_equal(secret_seal(g), 0);
	assert_int_equal(secret_unseal(g), 0);
	assert_int_equal(secret_seal(a), -EINVAL);      /* no pages of its own to protect */
	assert_int_equal(secret_arena_init(ARENA), -EALREADY);
}

static void test_json_lives_in_the_arena(void **state)
{
	_cleanup_json_ json_t *j = json_pack("{s:s}", "api_key", "arena-json-secret");
	char *text;
	(void)state;

	assert_non_null(j);
	text = json_dumps(j, JSON_COMPACT);
	assert_non_null(text);
	assert_true(secret_arena_owns(text));
	assert_string_equal(text, "{\"api_key\":\"arena-json-secret\"}");
	json_secure_free(text);
	assert_true(secret_arena_owns(json_string_value(json_object_get(j, "api_key"))));
}

static void test_full_is_an_error_not_a_fallback(void **state)
{
	struct secret *held[ARENA / 1024 + 1];
	struct secret *s = NULL;
	size_t n = 0, before = secret_arena_used();
	(void)state;

	secret_arena_exhausted_reset();
	while (n < sizeof(held) / sizeof(held[0])) {
		int r = secret_new(1024, &held[n]);

		if (r < 0) {
			assert_int_equal(r, -ENOMEM);
			break;
		}
		assert_true(secret_arena_owns(held[n]->p));    /* never from anywhere else */
		n++;
	}
	assert_true(n > 0 && n < sizeof(held) / sizeof(held[0]));
	assert_true(secret_arena_exhausted());
	/* JSON too: no heap behind it. */
	assert_null(json_string("x"));
	assert_null(secret_arena_alloc(16));
	/* Guarded memory is not the arena's and is still there for keys. */
	assert_int_equal(secret_new_guarded(16, &s), 0);
	secret_free(TAKE_PTR(s));

	while (n)
		secret_free(held[--n]);
	assert_int_equal(secret_arena_used(), before);
	secret_arena_exhausted_reset();
	assert_false(secret_arena_exhausted());
	assert_int_equal(secret_new(1024, &s), 0);
	secret_free(s);
	assert_false(secret_arena_exhausted());
}

/* A freed block is wiped: the next block of the same size (the buddy
 * allocator hands the same one back), taken without zeroing, holds no byte
 * of what was written, past the allocator's own free-list links. */
static void test_free_wipes(void **state)
{
	struct secret *s = NULL;
	uint8_t *p, *again;
	(void)state;

	assert_int_equal(secret_new(4096, &s), 0);
	p = s->p;
	memset(p, 0xA5, 4096);
	secret_free(s);
	again = CRYPTO_secure_malloc(4096, NULL, 0);
	assert_ptr_equal(again, p);
	for (size_t i = 2 * sizeof(void *); i < 4096; i++)
		assert_int_not_equal(again[i], 0xA5);
	CRYPTO_secure_free(again, NULL, 0);

	/* The same through jansson's free. */
	{
		_cleanup_json_ json_t *j = json_pack("[s]", "wipe-me-wipe-me");
		char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
		size_t n;

		assert_non_null(text);
		n = strlen(text) + 1;
		p = (uint8_t *)text;
		json_secure_free(text);
		again = CRYPTO_secure_malloc(n, NULL, 0);
		assert_ptr_equal(again, p);
		assert_null(memmem(again, n, "wipe", 4));
		CRYPTO_secure_free(again, NULL, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_secrets_come_from_the_arena),
		cmocka_unit_test(test_json_lives_in_the_arena),
		cmocka_unit_test(test_full_is_an_error_not_a_fallback),
		cmocka_unit_test(test_free_wipes),
	};
	int r;

	if (secret_library_init() < 0)
		return 1;
	json_secure_init();
	r = secret_arena_init(1000);            /* rounded up to the smallest arena */
	if (r < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
