/* vaultd/access/totp.h: second factor for people (ARCHITECTURE.md section 4).
 *
 * RFC 6238 TOTP with HMAC-SHA-1, 6 digits, a 30-second step and T0 = 0;
 * verification accepts the steps now-1, now and now+1, and each step at most
 * once. The HMAC comes from liboath (oath_totp_generate2); the comparison is
 * ours: liboath's validators compare with strcmp() and stop at the first
 * match, so totp_verify() generates all three candidates and compares each
 * with sodium_memcmp() (constant time), whatever matched.
 *
 * Recovery codes: 80 random bits shown as xxxx-xxxx-xxxx-xxxx (lower-case
 * base32). Only their SHA-256 (libsodium) is meant to be stored.
 *
 * Secrets, URIs (which contain the secret) and recovery codes live in
 * struct secret (guarded memory); stack intermediates are wiped. Nothing here
 * logs. Errors are -errno; outputs are written only on success.
 *
 * Threads: every function is thread-safe once secret_library_init() and
 * totp_library_init() have returned (a given struct secret must not be freed
 * while another thread reads it).
 */
#pragma once
#include <stdint.h>
#include "common/secret.h"

#define TOTP_SECRET_LEN 20              /* 160-bit secret, RFC 4226's recommendation */
#define TOTP_SECRET_MIN 16              /* RFC 4226 R6: at least 128 bits */
#define TOTP_SECRET_MAX 64              /* one HMAC-SHA-1 block */
#define TOTP_DIGITS 6
#define TOTP_STEP 30
#define TOTP_RECOVERY_CODES 10          /* how many to issue by default */
#define TOTP_RECOVERY_MAX 100           /* totp_recovery_generate() refuses more */
#define TOTP_RECOVERY_CHARS 16          /* base32 characters: 80 bits */
#define TOTP_HASH_HEX 65                /* hex SHA-256 + NUL */

/* Library init (oath_init()); once at start, after secret_library_init(). 0 or -EIO. */
_warn_unused_ int totp_library_init(void);

/* A new random TOTP_SECRET_LEN-byte secret (randombytes_buf) in guarded memory.
 * 0 or -ENOMEM. Caller owns *ret. */
_warn_unused_ int totp_secret_new(struct secret **ret);

/* The step of unix time t: t / TOTP_STEP. A time before 1970 gives 0. */
uint64_t totp_step(int64_t t);

/* The code of a step (for tests and vaultd --dev), written as 6 digits + NUL.
 * 0; -EINVAL if the key length is outside TOTP_SECRET_MIN..TOTP_SECRET_MAX or
 * the step is past the range of time_t; -EIO if liboath fails. */
_warn_unused_ int totp_generate(const struct secret *key, uint64_t step, char code[TOTP_DIGITS + 1]);

/* Checks code at time now against the steps now-1, now and now+1. Single use:
 * a matching step <= *last_used_step is a replay. Start *last_used_step at 0
 * for a new enrolment, and persist it after every success.
 *   0          match; *last_used_step set to the matched step (the highest
 *              one if the code matches several unused steps, so the same code
 *              cannot pass twice)
 *   -EALREADY  the code matches only steps already used (a replay)
 *   -EACCES    wrong code
 *   -EINVAL    code is not exactly 6 ASCII digits (the check branches on the
 *              length only, not on which character is wrong), now < 0, or a
 *              bad key length
 *   -EIO       liboath failure
 * *last_used_step changes only on success. */
_warn_unused_ int totp_verify(const struct secret *key, const char *code, int64_t now,
			      uint64_t *last_used_step);

/* otpauth://totp/<issuer>:<account>?secret=<BASE32, no padding>&issuer=<issuer>
 *	&algorithm=SHA1&digits=6&period=30
 * issuer and account are percent-encoded: RFC 3986 unreserved characters
 * (A-Z a-z 0-9 - . _ ~) kept, every other byte as %XX (upper-case hex), so
 * '@' becomes %40 and ' ' %20. Both must be 1..255 bytes, else -EINVAL.
 * *ret_uri is NUL-terminated guarded memory (len excludes the NUL) because it
 * contains the secret. 0, -EINVAL, -ENOMEM. */
_warn_unused_ int totp_uri(const struct secret *key, const char *issuer, const char *account,
			   struct secret **ret_uri);

/* n (1..TOTP_RECOVERY_MAX) distinct recovery codes of 80 random bits, each
 * shown as xxxx-xxxx-xxxx-xxxx (lower-case base32).
 * *ret_codes: the n codes separated by '\n' (no trailing newline),
 * NUL-terminated (len excludes the NUL), for display once.
 * ret_hashes[0..n-1]: the hex SHA-256 of each normalised code (the 16
 * characters, lower case, no dashes), NUL-terminated, for storage.
 * 0, -EINVAL, -ENOMEM. */
_warn_unused_ int totp_recovery_generate(unsigned n, struct secret **ret_codes,
					 char (*ret_hashes)[TOTP_HASH_HEX]);

/* Normalises input (drops '-' and ' ', folds to lower case) and writes the hex
 * SHA-256 of the result for lookup. -EINVAL unless exactly 16 base32
 * characters remain (input longer than 64 bytes is refused outright). The
 * characters are checked without branching on their values; the separators'
 * positions (layout, not secret) may show in timing. */
_warn_unused_ int totp_recovery_hash(const char *input, char ret_hash[TOTP_HASH_HEX]);
