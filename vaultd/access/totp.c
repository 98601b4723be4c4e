/* vaultd/access/totp.c: RFC 6238 TOTP and recovery codes; see totp.h.
 *
 * Why generate-and-compare instead of oath_totp_validate4(): liboath compares
 * candidates with strcmp() and returns at the first match, so its timing
 * depends on how many leading digits of a guess are right and on which step
 * matched. We ask liboath only for the HMAC-based codes
 * (oath_totp_generate2()), always for all three steps of the window, and
 * compare each with sodium_memcmp(). Which of the three outcomes we return
 * is what the caller learns anyway.
 *
 * liboath does not wipe its HMAC state (key pads, inner hash) from its stack
 * frames; burn_stack() overwrites the region below our frame after each
 * call. That is best effort (the compiler and sanitizers may place frames
 * elsewhere); the secret itself stays in guarded memory.
 */
#include <errno.h>
#include <liboath/oath.h>
#include <sodium.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include "common/encoding.h"
#include "common/secret.h"
#include "vaultd/access/totp.h"

/* Steps are turned into times for oath_totp_generate2(): step * TOTP_STEP must fit in time_t. */
_Static_assert(sizeof(time_t) == sizeof(int64_t), "64-bit time_t required");
#define TOTP_STEP_MAX ((uint64_t)(INT64_MAX / TOTP_STEP))

#define RECOVERY_RAW 10                 /* 80 bits -> exactly 16 base32 characters */
#define RECOVERY_GROUP 4
#define RECOVERY_SHOWN 19               /* xxxx-xxxx-xxxx-xxxx */
#define RECOVERY_INPUT_MAX 64           /* generous room for separators, then refuse */
#define URI_PART_MAX 255                /* issuer, account */

_Static_assert(RECOVERY_RAW * 8 == TOTP_RECOVERY_CHARS * 5, "recovery code must be whole base32");
_Static_assert(TOTP_HASH_HEX == crypto_hash_sha256_BYTES * 2 + 1, "hex SHA-256 size");

/* Masks are all-ones (true) or zero; arguments below 2^16 (as in encoding.c). */
static inline uint32_t mask_lt(uint32_t a, uint32_t b)
{
	return 0U - ((a - b) >> 31);
}

static inline uint32_t mask_in(uint32_t x, uint32_t lo, uint32_t hi)
{
	return ~mask_lt(x, lo) & mask_lt(x, hi + 1);
}

static inline uint32_t mask_eq(uint32_t a, uint32_t b)
{
	return mask_in(a, b, b);
}

/* Overwrites stack that liboath's HMAC just used (see the top comment). */
static __attribute__((noinline)) void burn_stack(void)
{
	uint8_t buf[4096];

	sodium_memzero(buf, sizeof(buf));
	__asm__ __volatile__("" : : "r"(buf) : "memory");
}

static bool key_ok(const struct secret *key)
{
	return key && key->p && key->len >= TOTP_SECRET_MIN && key->len <= TOTP_SECRET_MAX;
}

int totp_library_init(void)
{
	return oath_init() == OATH_OK ? 0 : -EIO;
}

int totp_secret_new(struct secret **ret)
{
	if (!ret)
		return -EINVAL;
	return secret_random(TOTP_SECRET_LEN, ret);
}

uint64_t totp_step(int64_t t)
{
	return t < 0 ? 0 : (uint64_t)t / TOTP_STEP;
}

/* The caller checked the key and step <= TOTP_STEP_MAX. out: TOTP_DIGITS + 1 bytes. */
static int generate_raw(const struct secret *key, uint64_t step, char *out)
{
	int rc;

	rc = oath_totp_generate2((const char *)key->p, key->len, (time_t)(step * TOTP_STEP), TOTP_STEP,
				 OATH_TOTP_DEFAULT_START_TIME, TOTP_DIGITS, /* flags= */ 0, out);
	return rc == OATH_OK ? 0 : -EIO;
}

int totp_generate(const struct secret *key, uint64_t step, char code[TOTP_DIGITS + 1])
{
	char tmp[TOTP_DIGITS + 1];
	int r;

	if (!key_ok(key) || !code || step > TOTP_STEP_MAX)
		return -EINVAL;
	r = generate_raw(key, step, tmp);
	burn_stack();
	if (r >= 0)
		memcpy(code, tmp, sizeof(tmp));
	sodium_memzero(tmp, sizeof(tmp));
	return r;
}

/* Exactly TOTP_DIGITS ASCII digits. Branches on the length only: the digit
 * checks fold into one mask. */
static bool code_format_ok(const char *code)
{
	uint32_t bad = 0;

	if (strnlen(code, TOTP_DIGITS + 1) != TOTP_DIGITS)
		return false;
	for (size_t i = 0; i < TOTP_DIGITS; i++)
		bad |= ~mask_in((uint8_t)code[i], '0', '9');
	return bad == 0;
}

int totp_verify(const struct secret *key, const char *code, int64_t now, uint64_t *last_used_step)
{
	char cand[3][TOTP_DIGITS + 1];
	uint64_t cur, steps[3];
	unsigned matched = 0;           /* bit i: candidate i equals code */
	int r = 0;

	if (!key_ok(key) || !code || !last_used_step || now < 0)
		return -EINVAL;
	if (!code_format_ok(code))
		return -EINVAL;
	cur = totp_step(now);
	if (cur + 1 > TOTP_STEP_MAX)
		return -EINVAL;

	/* All three candidates, always compared, no early exit. Step now-1
	 * does not exist at step 0 (the first 30 s of 1970 only). */
	for (unsigned i = 0; i < 3; i++) {
		steps[i] = cur + i - 1;
		if (i == 0 && cur == 0)
			continue;
		r = generate_raw(key, steps[i], cand[i]);
		if (r < 0)
			break;
		matched |= (unsigned)(sodium_memcmp(cand[i], code, TOTP_DIGITS) == 0) << i;
	}
	burn_stack();
	sodium_memzero(cand, sizeof(cand));
	if (r < 0)
		return r;

	/* Highest unused matching step first: were a code to match two
	 * unused steps, taking the lower one would let it pass again. */
	for (unsigned i = 3; i-- > 0;)
		if ((matched >> i) & 1u && steps[i] > *last_used_step) {
			*last_used_step = steps[i];
			return 0;
		}
	return matched ? -EALREADY : -EACCES;
}

/* RFC 3986 section 2.3. Issuer and account are not secret: plain branches. */
static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '.' || c == '_' || c == '~';
}

static size_t pct_len(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += unreserved((unsigned char)*s) ? 1 : 3;
	return n;
}

static int pct_append(struct secret *u, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	int r;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		const char esc[3] = { '%', hex[c >> 4], hex[c & 15] };

		r = unreserved(c) ? secret_append(u, s, 1) : secret_append(u, esc, sizeof(esc));
		if (r < 0)
			return r;
	}
	return 0;
}

static int str_append(struct secret *u, const char *s)
{
	return secret_append(u, s, strlen(s));
}

int totp_uri(const struct secret *key, const char *issuer, const char *account, struct secret **ret_uri)
{
	static const char scheme[] = "otpauth://totp/", q_secret[] = "?secret=", q_issuer[] = "&issuer=",
			  q_rest[] = "&algorithm=SHA1&digits=6&period=30";
	_cleanup_secret_ struct secret *u = NULL;
	size_t il, al, b32, cap;
	int r;

	if (!key_ok(key) || !issuer || !account || !ret_uri)
		return -EINVAL;
	il = strnlen(issuer, URI_PART_MAX + 1);
	al = strnlen(account, URI_PART_MAX + 1);
	if (il == 0 || il > URI_PART_MAX || al == 0 || al > URI_PART_MAX)
		return -EINVAL;

	b32 = (key->len * 8 + 4) / 5;   /* unpadded base32 characters */
	cap = strlen(scheme) + pct_len(issuer) + 1 + pct_len(account) + strlen(q_secret) + b32 +
	      strlen(q_issuer) + pct_len(issuer) + strlen(q_rest) + 1;
	r = secret_new(cap, &u);
	if (r < 0)
		return r;

	if ((r = str_append(u, scheme)) < 0 || (r = pct_append(u, issuer)) < 0 ||
	    (r = secret_append(u, ":", 1)) < 0 || (r = pct_append(u, account)) < 0 ||
	    (r = str_append(u, q_secret)) < 0)
		return r;
	/* Encoded in place, so the secret never leaves guarded memory. */
	r = base32_encode(key->p, key->len, /* pad= */ 0, (char *)u->p + u->len, u->cap - u->len);
	if (r < 0)
		return r;
	u->len += b32;
	if ((r = str_append(u, q_issuer)) < 0 || (r = pct_append(u, issuer)) < 0 ||
	    (r = str_append(u, q_rest)) < 0)
		return r;
	if (u->len != cap - 1)
		return -EINVAL;         /* cannot happen: cap was computed above */
	u->p[u->len] = '\0';

	*ret_uri = TAKE_PTR(u);
	return 0;
}

/* Hex SHA-256 of the 16 normalised characters. */
static void recovery_digest(const char norm[TOTP_RECOVERY_CHARS], char hex[TOTP_HASH_HEX])
{
	uint8_t d[crypto_hash_sha256_BYTES];

	(void)crypto_hash_sha256(d, (const uint8_t *)norm, TOTP_RECOVERY_CHARS);
	(void)sodium_bin2hex(hex, TOTP_HASH_HEX, d, sizeof(d));
	sodium_memzero(d, sizeof(d));
}

int totp_recovery_generate(unsigned n, struct secret **ret_codes, char (*ret_hashes)[TOTP_HASH_HEX])
{
	_cleanup_secret_ struct secret *codes = NULL, *scratch = NULL;
	uint8_t *raw;
	char *b32, (*hashes)[TOTP_HASH_HEX];
	int r;

	if (n == 0 || n > TOTP_RECOVERY_MAX || !ret_codes || !ret_hashes)
		return -EINVAL;
	/* Each code is shown in 19 characters followed by '\n' or, for the
	 * last one, the NUL. */
	r = secret_new((size_t)n * (RECOVERY_SHOWN + 1), &codes);
	if (r < 0)
		return r;
	/* Every intermediate in guarded memory: raw bytes, base32, hashes. */
	r = secret_new(RECOVERY_RAW + TOTP_RECOVERY_CHARS + 1 + (size_t)n * TOTP_HASH_HEX, &scratch);
	if (r < 0)
		return r;
	raw = scratch->p;
	b32 = (char *)scratch->p + RECOVERY_RAW;
	hashes = (char (*)[TOTP_HASH_HEX])(scratch->p + RECOVERY_RAW + TOTP_RECOVERY_CHARS + 1);

	for (unsigned i = 0; i < n;) {
		bool dup = false;

		randombytes_buf(raw, RECOVERY_RAW);
		r = base32_encode(raw, RECOVERY_RAW, /* pad= */ 0, b32, TOTP_RECOVERY_CHARS + 1);
		if (r < 0)
			return r;
		/* Lower case: setting bit 5 maps A-Z to a-z and leaves 2-7 alone. */
		for (size_t j = 0; j < TOTP_RECOVERY_CHARS; j++)
			b32[j] |= 0x20;
		recovery_digest(b32, hashes[i]);
		/* A repeat (p ~ 2^-74) would be one code counted twice: draw again.
		 * Hashes are what gets stored, so comparing them leaks nothing. */
		for (unsigned k = 0; k < i; k++)
			dup = dup || memcmp(hashes[k], hashes[i], TOTP_HASH_HEX) == 0;
		if (dup)
			continue;

		for (size_t g = 0; g < TOTP_RECOVERY_CHARS; g += RECOVERY_GROUP) {
			if (g > 0 && (r = secret_append(codes, "-", 1)) < 0)
				return r;
			if ((r = secret_append(codes, b32 + g, RECOVERY_GROUP)) < 0)
				return r;
		}
		if (i + 1 < n && (r = secret_append(codes, "\n", 1)) < 0)
			return r;
		i++;
	}
	codes->p[codes->len] = '\0';    /* len = cap - 1 here */

	memcpy(ret_hashes, hashes, (size_t)n * TOTP_HASH_HEX);
	*ret_codes = TAKE_PTR(codes);
	return 0;
}

int totp_recovery_hash(const char *input, char ret_hash[TOTP_HASH_HEX])
{
	char norm[TOTP_RECOVERY_CHARS];
	uint32_t bad = 0;
	size_t n, k = 0;

	if (!input || !ret_hash)
		return -EINVAL;
	n = strnlen(input, RECOVERY_INPUT_MAX + 1);
	if (n > RECOVERY_INPUT_MAX)
		return -EINVAL;

	for (size_t i = 0; i < n; i++) {
		uint32_t c = (uint8_t)input[i], lc;

		/* Separators are layout, not secret: skipping them may branch. */
		if (mask_eq(c, '-') | mask_eq(c, ' '))
			continue;
		lc = c | (mask_in(c, 'A', 'Z') & 0x20);
		bad |= ~(mask_in(lc, 'a', 'z') | mask_in(lc, '2', '7'));
		if (k < TOTP_RECOVERY_CHARS)
			norm[k] = (char)lc;
		k++;
	}
	if (k != TOTP_RECOVERY_CHARS || bad != 0) {
		sodium_memzero(norm, sizeof(norm));
		return -EINVAL;
	}
	recovery_digest(norm, ret_hash);
	sodium_memzero(norm, sizeof(norm));
	return 0;
}
