/* common/encoding.c: base32 and base64; see encoding.h.
 *
 * These run on key material (TOTP secrets, wrapped keys), so no table is
 * indexed by a data byte and no branch depends on one: a character is
 * computed from a 5- or 6-bit value by masked arithmetic over the alphabet's
 * ranges, and decoding runs the reverse with the validity of every
 * character folded into one error mask checked at the end. Only the input
 * length and the '=' padding (which the length already reveals) steer
 * control flow.
 */
#include <errno.h>
#include <sodium.h>
#include <stdint.h>
#include "common/encoding.h"
#include "common/util.h"

/* Masks are all-ones (true) or zero. Arguments are below 2^16, so a - b
 * wraps into bit 31 exactly when a < b. */
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

/* 0..31 -> "A-Z2-7" */
static char b32_char(uint32_t x)
{
	return (char)((mask_lt(x, 26) & (x + 'A')) | (~mask_lt(x, 26) & (x - 26 + '2')));
}

/* Character -> 0..31 (upper or lower case); *err gets all-ones if invalid. */
static uint32_t b32_value(uint32_t c, uint32_t *err)
{
	uint32_t up = mask_in(c, 'A', 'Z'), lo = mask_in(c, 'a', 'z'), dg = mask_in(c, '2', '7');

	*err |= ~(up | lo | dg);
	return (up & (c - 'A')) | (lo & (c - 'a')) | (dg & (c - '2' + 26));
}

/* 0..63 -> "A-Za-z0-9+/" */
static char b64_char(uint32_t x)
{
	return (char)((mask_lt(x, 26) & (x + 'A')) | (mask_in(x, 26, 51) & (x - 26 + 'a')) |
		      (mask_in(x, 52, 61) & (x - 52 + '0')) | (mask_eq(x, 62) & '+') |
		      (mask_eq(x, 63) & '/'));
}

static uint32_t b64_value(uint32_t c, uint32_t *err)
{
	uint32_t up = mask_in(c, 'A', 'Z'), lo = mask_in(c, 'a', 'z'), dg = mask_in(c, '0', '9');
	uint32_t plus = mask_eq(c, '+'), slash = mask_eq(c, '/');

	*err |= ~(up | lo | dg | plus | slash);
	return (up & (c - 'A')) | (lo & (c - 'a' + 26)) | (dg & (c - '0' + 52)) | (plus & 62) |
	       (slash & 63);
}

/* Characters of the unpadded encoding of n bytes, and of the padded one.
 * SIZE_MAX when the size does not fit (no buffer can then be big enough). */
static size_t b32_chars(size_t n, int pad)
{
	static const uint8_t tail[5] = { 0, 2, 4, 5, 7 };       /* indexed by length, not data */
	size_t groups = n / 5;

	if (groups > (SIZE_MAX - 16) / 8)
		return SIZE_MAX;
	if (pad)
		return (groups + (n % 5 != 0)) * 8;
	return groups * 8 + tail[n % 5];
}

size_t base32_encoded_size(size_t n)
{
	size_t c = b32_chars(n, 1);

	return c == SIZE_MAX ? SIZE_MAX : c + 1;
}

size_t base64_encoded_size(size_t n)
{
	size_t groups = n / 3 + (n % 3 != 0);

	if (groups > (SIZE_MAX - 1) / 4)
		return SIZE_MAX;
	return groups * 4 + 1;
}

int base32_encode(const uint8_t *in, size_t n, int pad, char *out, size_t out_size)
{
	size_t chars = b32_chars(n, pad), o = 0;
	uint32_t acc = 0;
	unsigned bits = 0;

	if ((n > 0 && !in) || !out)
		return -EINVAL;
	if (chars == SIZE_MAX || out_size <= chars)
		return -ENOBUFS;
	for (size_t i = 0; i < n; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			out[o++] = b32_char((acc >> bits) & 31);
		}
		/* Keep only the bits not yet emitted, so acc never overflows. */
		acc &= (1U << bits) - 1;
	}
	if (bits > 0)
		out[o++] = b32_char((acc << (5 - bits)) & 31);
	while (o < chars)
		out[o++] = '=';
	out[o] = '\0';
	return 0;
}

int base64_encode(const uint8_t *in, size_t n, char *out, size_t out_size)
{
	size_t size = base64_encoded_size(n), o = 0;
	uint32_t acc = 0;
	unsigned bits = 0;

	if ((n > 0 && !in) || !out)
		return -EINVAL;
	if (size == SIZE_MAX || out_size < size)
		return -ENOBUFS;
	for (size_t i = 0; i < n; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = b64_char((acc >> bits) & 63);
		}
		acc &= (1U << bits) - 1;
	}
	if (bits > 0)
		out[o++] = b64_char((acc << (6 - bits)) & 63);
	while (o < size - 1)
		out[o++] = '=';
	out[o] = '\0';
	return 0;
}

/* Number of trailing '=' in in[0..n), at most max + 1 (enough to reject). */
static size_t count_padding(const char *in, size_t n, size_t max)
{
	size_t pad = 0;

	while (pad < n && pad <= max && in[n - 1 - pad] == '=')
		pad++;
	return pad;
}

/* Shared decoder core: 'width' bits per character (5 or 6), m characters.
 * The caller checked m's remainder and the output size. Returns 0 or
 * -EINVAL; out is wiped on -EINVAL since it may hold part of a key. */
static int decode_bits(const char *in, size_t m, unsigned width,
		       uint32_t (*value)(uint32_t, uint32_t *), uint8_t *out, size_t out_len)
{
	uint32_t acc = 0, err = 0;
	unsigned bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < m; i++) {
		acc = (acc << width) | value((uint8_t)in[i], &err);
		bits += width;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1U << bits) - 1;
		}
	}
	/* Leftover bits must be zero: otherwise two encodings would decode to
	 * the same bytes (non-canonical input). */
	err |= acc;
	if (err != 0 || o != out_len) {
		sodium_memzero(out, out_len);
		return -EINVAL;
	}
	return 0;
}

int base32_decode(const char *in, size_t n, uint8_t *out, size_t out_size, size_t *ret_len)
{
	size_t pad, m, len;
	int r;

	if ((n > 0 && (!in || !out)) || !ret_len)
		return -EINVAL;
	pad = count_padding(in, n, 6);
	m = n - pad;
	/* A final group of k characters carries floor(5k/8) bytes; k = 1, 3
	 * and 6 leave a whole character unused, so no encoder makes them. */
	switch (m % 8) {
	case 0: case 2: case 4: case 5: case 7:
		break;
	default:
		return -EINVAL;
	}
	/* Padding is either absent or exactly completes the last group. */
	if (pad > 0 && (m % 8 == 0 || pad != 8 - m % 8))
		return -EINVAL;
	len = m / 8 * 5 + (m % 8) * 5 / 8;
	if (len > out_size)
		return -ENOBUFS;
	r = decode_bits(in, m, 5, b32_value, out, len);
	if (r < 0)
		return r;
	*ret_len = len;
	return 0;
}

int base64_decode(const char *in, size_t n, uint8_t *out, size_t out_size, size_t *ret_len)
{
	size_t pad, m, len;
	int r;

	if ((n > 0 && (!in || !out)) || !ret_len)
		return -EINVAL;
	/* Strict: always padded, so the length is a multiple of 4 and at most
	 * two '=' end the last group. */
	if (n % 4 != 0)
		return -EINVAL;
	pad = count_padding(in, n, 2);
	if (pad > 2)
		return -EINVAL;
	m = n - pad;
	len = m / 4 * 3 + (m % 4) * 6 / 8;
	if (len > out_size)
		return -ENOBUFS;
	r = decode_bits(in, m, 6, b64_value, out, len);
	if (r < 0)
		return r;
	*ret_len = len;
	return 0;
}
