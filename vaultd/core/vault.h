/* vaultd/core/vault.h: the vault core. It owns the parts (store, keyring,
 * audit recorder, rotation worker) and their lifetimes, and the state every
 * layer above shares: initialised or not, and the session epoch.
 *
 * vault_new() opens the store, makes the keyring (locked), the recorder and
 * starts the rotation worker; vault_free() tears them down in dependency
 * order: the worker is joined before the keyring is wiped, the recorder is
 * freed after the last record, the store closes last. Stop the server (no
 * handler may run) before vault_free().
 *
 * The parts are fields for the layers above to use; only vault.c creates,
 * replaces or frees them. Threads: any, after vault_new() returns.
 */
#pragma once
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "common/json.h"
#include "vaultd/access/auth.h"
#include "vaultd/audit/recorder.h"
#include "vaultd/keys/keyring.h"
#include "vaultd/rotate/rotate.h"
#include "vaultd/store/store.h"

struct vault_config {
	const char *db_path;
	unsigned db_readers;            /* 1..16 */
	struct keyring_hsm hsm;         /* borrowed strings */
	unsigned kek_cache_max;         /* [keys] kek_cache_max */
	struct auditor_config audit;
	unsigned rotate_batch;          /* [rotation] batch_size */
	uint64_t kek_max_wraps;         /* [keys] kek_max_wraps */
};

struct vault {
	struct store *store;
	struct keyring *keyring;
	struct auditor *auditor;
	struct rotator *rotator;
	/* Serialises init, unlock and lock (and guards 'initialized'). */
	pthread_mutex_t state_mu;
	bool initialized;
	/* Session tokens are stored as a hash keyed by the epoch they were
	 * issued in. A new epoch is drawn at start, at every unlock and at
	 * every lock, so no token survives any of them, even if deleting the
	 * rows failed (epoch_mu). */
	pthread_mutex_t epoch_mu;
	uint8_t epoch[16];
	int64_t started_at;
};

/* 0; -errno from the store (its error names the file), the keyring or the
 * recorder. Logs what failed. Deletes the session rows of an earlier run. */
int vault_new(const struct vault_config *cfg, struct vault **ret);
void vault_free(struct vault *v);               /* NULL-safe; see above */
DEFINE_CLEANUP(struct vault *, vault_free)

bool vault_is_initialized(struct vault *v);
/* init only, with state_mu held, once its transaction committed. */
void vault_set_initialized(struct vault *v);

/* The current session epoch; vault_epoch_renew() ends every session. */
void vault_epoch_get(struct vault *v, uint8_t ret[16]);
void vault_epoch_renew(struct vault *v);

/* Locks: a new epoch (every session ends) and the keys wiped. */
void vault_lock(struct vault *v);

/* init's audit record, in init's transaction, anchored under the new root
 * key's audit key (auditor_record_genesis()). */
typedef int (*vault_record_fn)(void *userdata, struct store_tx *tx, const struct secret *audit_key);

/* Makes the vault: the HSM key (found or generated), the root key, the
 * admin user (Argon2id at argon2's costs, MFA enrolment pending, the row
 * sealed), recovery codes, the seal flag and the first anchor, in one
 * transaction with the record: record's (the request's), or the daemon's
 * own "sys.init" when record is NULL (vaultd --dev). Leaves it locked.
 * *ret_enrolment (may be NULL): what the admin must see once. 0; -EEXIST
 * already initialised; -EINVAL bad name or passphrase; HSM and storage
 * errors otherwise. */
int vault_init(struct vault *v, const struct auth_params *argon2, const char *admin, const struct secret *pass,
	       vault_record_fn record, void *userdata, json_t **ret_enrolment);

/* Binds uid as service name with roles (JSON array text), sealed: the
 * vault must be unlocked (-EACCES). -EEXIST if the uid is bound to another
 * service; -EINVAL for a bad name. */
int vault_bind_service(struct vault *v, const char *name, uid_t uid, const char *roles_json);

/* Whether u's roles grant admin, the capability unlocking needs (custom
 * roles unchecked while locked; vault_unlock() checks them again). */
bool vault_user_may_unlock(struct vault *v, const struct store_user *u);

/* The unlock's record, once the keys are unwrapped and before anyone can
 * use them. < 0 undoes the unlock. */
typedef int (*vault_unlock_record_fn)(void *userdata);

/* Unlocks for user, whom the caller has authenticated: unwraps the keys
 * through the HSM, seals an older vault's authorization rows (once), checks
 * the user's row and admin role under the seal, draws a new session epoch
 * (every session ends), and has record() (may be NULL) write the unlock's
 * record. A failure after the keys were unwrapped locks again. Kicks the
 * rotation worker on success. 0; -EBADMSG the rows fail their seal
 * (reported); -EACCES no sealed admin role; -ECANCELED record() failed; HSM
 * and storage errors otherwise. */
int vault_unlock(struct vault *v, const char *user, vault_unlock_record_fn record, void *userdata);

/* vaultd --dev only: unlock with the passphrase alone (the dev process holds
 * the TOTP secret too, so a second factor would prove nothing). -ENOENT
 * not initialised; -EACCES wrong user or passphrase, or no admin. */
int vault_unlock_with_passphrase(struct vault *v, const char *user, const struct secret *pass);
