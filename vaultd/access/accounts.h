/* vaultd/access/accounts.h: what a user account is made of.
 *
 * MFA scheme: each user has a random 32-byte MFA key, wrapped by the HSM key
 * (like the root key), and a TOTP secret sealed under it (envelope kind
 * TOTP). Unlock needs the TOTP secret while the vault is locked, and the HSM
 * is usable then; a stolen database without the token yields neither. An
 * MFA reset draws a new key and secret, shown once, and leaves the user
 * pending until a first valid code. Threads: any.
 */
#pragma once
#include <stdbool.h>
#include "common/json.h"
#include "common/secret.h"
#include "vaultd/access/auth.h"
#include "vaultd/access/rbac.h"
#include "vaultd/access/totp.h"
#include "vaultd/keys/keyring.h"
#include "vaultd/store/store.h"

/* Draws a new MFA key (wrapped by the HSM key) and TOTP secret for u (state
 * pending, blobs replaced) and TOTP_RECOVERY_CODES recovery codes (their
 * hashes in hashes[], for store_recovery_set()); *ret_reply holds what the
 * user must see once: {"totp_uri", "totp_secret", "recovery_codes"}.
 * HSM errors as in keyprov.h. */
int accounts_enrol(struct keyring *k, struct store_user *u, char (*hashes)[65], json_t **ret_reply);

/* A roles array for a user or service: 1-16 valid names, each a built-in
 * or an existing custom role. 0; -EINVAL with *ret_why (one sentence);
 * storage errors. */
int accounts_roles_check(struct store_tx *tx, const json_t *roles, const char **ret_why);

/* Last-admin protection: would deleting user (new_roles NULL) or giving it
 * new_roles leave no user holding the built-in "admin" role? The vault
 * could then never be unlocked again. */
bool accounts_last_admin_lost(struct store_tx *tx, const char *user, const json_t *new_roles);

/* ---- users ---- */

struct accounts_env {
	struct store *store;
	struct keyring *keyring;
	struct auth_params argon2;      /* the configured costs */
};

/* Called inside the write transaction, just before it commits: the
 * request's audit record. < 0 refuses the change. */
typedef int (*accounts_commit_fn)(void *userdata, struct store_tx **tx);

struct account_user_write {
	const char *name;               /* a valid name */
	const struct secret *passphrase;        /* checked by auth_passphrase_check(); NULL: keep */
	const json_t *roles;            /* NULL: keep; both are required to create */
	bool reset_mfa;                 /* a new second factor (the user must exist) */
};

struct account_user_written {
	bool created;
	json_t *enrolment;              /* a new second factor: what the user sees once; caller frees */
	char *roles;                    /* the user's roles (JSON text); caller frees */
	/* -EINVAL: which field, and why (one sentence each). */
	const char *field, *why;
};

/* Creates, changes or resets a user, the row sealed (-EACCES while locked):
 * a new second factor replaces the recovery codes and, with a new
 * passphrase, ends every session of the user. 0; -ENOENT no such user (a
 * reset); -EINVAL a missing or bad field (ret->field, ret->why);
 * -VLT_E_LAST_ADMIN the last admin would be demoted; HSM and storage errors,
 * and the commit hook's. */
int accounts_user_write(const struct accounts_env *env, const struct account_user_write *w,
			accounts_commit_fn commit, void *userdata, struct account_user_written *ret);
void account_user_written_clear(struct account_user_written *w);

/* Deletes a user, its sessions and recovery codes. 0; -ENOENT;
 * -VLT_E_LAST_ADMIN the last admin. */
int accounts_user_delete(const struct accounts_env *env, const char *name, accounts_commit_fn commit,
			 void *userdata);

/* ---- roles and services ---- */

/* Writes custom role name with body {"rules": [...]}, sealed; *ret_parsed
 * (caller clears it) is the role as it now grants. 0; -VLT_E_BUILTIN a
 * built-in name; -EINVAL with *ret_errors (caller frees: field -> why);
 * storage errors and the hook's. */
int accounts_role_write(const struct accounts_env *env, const char *name, const json_t *body,
			accounts_commit_fn commit, void *userdata, struct rbac_role *ret_parsed, json_t **ret_errors);
/* 0; -ENOENT; -VLT_E_BUILTIN; -VLT_E_IN_USE (*ret_refs users and services
 * hold it). */
int accounts_role_delete(const struct accounts_env *env, const char *name, accounts_commit_fn commit,
			 void *userdata, int *ret_refs);

/* Binds uid as service name with roles, sealed. 0; -EINVAL with *ret_why
 * (the roles); -EEXIST the uid is bound to another service; storage errors
 * and the hook's. */
int accounts_service_write(const struct accounts_env *env, const char *name, uint32_t uid, const json_t *roles,
			   accounts_commit_fn commit, void *userdata, const char **ret_why);
/* 0; -ENOENT. */
int accounts_service_delete(const struct accounts_env *env, const char *name, accounts_commit_fn commit,
			    void *userdata);
