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
