/* common/encoding.h: base32 (RFC 4648, upper-case alphabet, used for TOTP
 * secrets) and base64 (RFC 4648 standard alphabet, padded).
 * Encoders write a NUL-terminated string; decoders reject any character
 * outside the alphabet, bad padding and non-canonical trailing bits.
 * Constant-time in the data (no table lookups indexed by secret bytes), so
 * they may be used on key material.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

/* Bytes needed for the encoding of n bytes, including the NUL. */
size_t base32_encoded_size(size_t n);   /* padded with '=' when pad != 0 */
size_t base64_encoded_size(size_t n);

/* 0 or -ENOBUFS if out_size is too small. */
int base32_encode(const uint8_t *in, size_t n, int pad, char *out, size_t out_size);
int base64_encode(const uint8_t *in, size_t n, char *out, size_t out_size);

/* Decoded length into *ret_len. -EINVAL on bad input, -ENOBUFS if out is too
 * small. base32_decode accepts input with or without padding, upper or lower case. */
int base32_decode(const char *in, size_t n, uint8_t *out, size_t out_size, size_t *ret_len);
int base64_decode(const char *in, size_t n, uint8_t *out, size_t out_size, size_t *ret_len);
