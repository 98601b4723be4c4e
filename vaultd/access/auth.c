/* vaultd/access/auth.c: see auth.h. */
#include <argon2.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include "vaultd/access/auth.h"

#define SALT_LEN 16
#define HASH_LEN 32

const char *auth_passphrase_check(const struct secret *pass)
{
	if (!pass || pass->len < AUTH_PASSPHRASE_MIN)
		return "the passphrase must be at least 12 characters";
	if (pass->len > AUTH_PASSPHRASE_MAX)
		return "the passphrase must be at most 1024 characters";
	if (memchr(pass->p, '\0', pass->len))
		return "the passphrase must not contain NUL characters";
	return NULL;
}

int auth_hash(const struct auth_params *p, const struct secret *pass, char **ret_phc)
{
	uint8_t salt[SALT_LEN];
	size_t n;
	char *phc;
	int r;

	if (pass->len > AUTH_PASSPHRASE_MAX)
		return -EINVAL;
	randombytes_buf(salt, sizeof(salt));
	n = argon2_encodedlen(p->iterations, p->memory_kib, p->parallelism, SALT_LEN, HASH_LEN, Argon2_id);
	phc = malloc(n);
	if (!phc)
		return -ENOMEM;
	r = argon2id_hash_encoded(p->iterations, p->memory_kib, p->parallelism, pass->p, pass->len,
				  salt, sizeof(salt), HASH_LEN, phc, n);
	if (r != ARGON2_OK) {
		free(phc);
		return r == ARGON2_MEMORY_ALLOCATION_ERROR ? -ENOMEM : -EIO;
	}
	*ret_phc = phc;
	return 0;
}

int auth_verify(const char *phc, const struct secret *pass)
{
	int r;

	if (strncmp(phc, "$argon2id$", 10) != 0)
		return -EINVAL;
	r = argon2id_verify(phc, (const char *)pass->p, pass->len);
	if (r == ARGON2_OK)
		return 0;
	if (r == ARGON2_VERIFY_MISMATCH)
		return -EACCES;
	return r == ARGON2_MEMORY_ALLOCATION_ERROR ? -ENOMEM : -EINVAL;
}

void auth_burn(const struct auth_params *p, const struct secret *pass)
{
	char *phc = NULL;

	/* Hashing costs what verifying costs: same parameters, same work. */
	if (auth_hash(p, pass, &phc) == 0)
		free(phc);
}

bool auth_needs_rehash(const char *phc, const struct auth_params *p)
{
	char want[64];

	snprintf(want, sizeof(want), "$argon2id$v=19$m=%u,t=%u,p=%u$", p->memory_kib, p->iterations,
		 p->parallelism);
	return strncmp(phc, want, strlen(want)) != 0;
}
