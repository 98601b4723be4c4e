/* vaultd/access/auth.h: passphrases (Argon2id through libargon2, PHC string form).
 * Passphrases arrive and stay in struct secret. Verification is constant-time
 * in the hash (argon2id_verify); auth_burn() spends the same work when the
 * user does not exist, so timing does not reveal existence. Thread-safe.
 */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "common/secret.h"

#define AUTH_PASSPHRASE_MIN 12
#define AUTH_PASSPHRASE_MAX 1024

struct auth_params {
	uint32_t iterations;
	uint32_t memory_kib;
	uint32_t parallelism;
};

/* NULL if acceptable, else a one-sentence reason (never echoing the value). */
const char *auth_passphrase_check(const struct secret *pass);
/* *ret_phc is malloc()ed. 0, -EINVAL, -ENOMEM, -EIO. */
int auth_hash(const struct auth_params *p, const struct secret *pass, char **ret_phc);
/* 0 on match, -EACCES on mismatch, -EINVAL if phc is not an Argon2id string. */
int auth_verify(const char *phc, const struct secret *pass);
/* Does the work of one verification against nothing. */
void auth_burn(const struct auth_params *p, const struct secret *pass);
/* True when phc was made with parameters other than p (rehash on success). */
bool auth_needs_rehash(const char *phc, const struct auth_params *p);
