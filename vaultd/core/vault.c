/* vaultd/core/vault.c: see vault.h. */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>
#include "common/log.h"
#include "common/path.h"
#include "vaultd/access/accounts.h"
#include "vaultd/access/authz.h"
#include "vaultd/access/principal.h"
#include "vaultd/core/vault.h"

static int record_for_worker(void *userdata, struct store_tx *tx, const char *action, const char *path,
			     const char *result, const char *detail)
{
	struct vault *v = userdata;

	return auditor_record_system(v->auditor, tx, action, path, result, detail);
}

static void prune_for_worker(void *userdata)
{
	struct vault *v = userdata;

	auditor_prune_if_due(v->auditor);
}

/* No session survives a restart (the epoch is new); their rows go too. */
static int first_look(struct vault *v)
{
	struct store_rootkey rk = {0};
	struct store_tx *tx = NULL;
	int r, c;

	r = store_write_begin(v->store, &tx);
	if (r < 0)
		return r;
	r = store_token_delete_all(tx);
	if (r >= 0)
		r = store_rootkey_get_current(tx, &rk);
	store_rootkey_clear(&rk);
	if (r >= 0 || r == -ENOENT) {
		v->initialized = r >= 0;
		c = store_write_commit(TAKE_PTR(tx));
		r = c < 0 ? c : 0;
	}
	store_tx_end(tx);
	return r;
}

int vault_new(const struct vault_config *cfg, struct vault **ret)
{
	_cleanup_(vault_freep) struct vault *v = NULL;
	int r;

	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	pthread_mutex_init(&v->state_mu, NULL);
	pthread_mutex_init(&v->epoch_mu, NULL);
	randombytes_buf(v->epoch, sizeof(v->epoch));
	v->started_at = time(NULL);

	r = store_open(cfg->db_path, cfg->db_readers, &v->store);
	if (r < 0)
		return log_error_errno(r, "cannot open the database '%s'", cfg->db_path);
	r = keyring_new(&cfg->hsm, &v->keyring);
	if (r < 0)
		return log_error_errno(r, "cannot make the keyring");
	keyring_set_kek_cache_max(v->keyring, cfg->kek_cache_max);
	r = auditor_new(&cfg->audit, v->store, v->keyring, &v->auditor);
	if (r < 0)
		return log_error_errno(r, "cannot start the audit recorder%s%s", cfg->audit.jsonl_path ? " for " : "",
				       cfg->audit.jsonl_path ? cfg->audit.jsonl_path : "");
	r = first_look(v);
	if (r < 0)
		return log_error_errno(r, "cannot read the vault's state from '%s'", cfg->db_path);
	{
		struct rotator_deps d = {
			.store = v->store,
			.keyring = v->keyring,
			.batch_size = cfg->rotate_batch,
			.kek_max_wraps = cfg->kek_max_wraps,
			.record = record_for_worker,
			.on_idle_unlocked = prune_for_worker,
			.userdata = v,
		};
		r = rotator_start(&d, &v->rotator);
		if (r < 0)
			return log_error_errno(r, "cannot start the rotation worker");
	}
	*ret = TAKE_PTR(v);
	return 0;
}

void vault_free(struct vault *v)
{
	if (!v)
		return;
	rotator_stop(v->rotator);       /* joined: nothing touches the keyring after this */
	keyring_free(v->keyring);       /* wipes RK and KEKs */
	auditor_free(v->auditor);       /* after the last record */
	store_close(v->store);
	sodium_memzero(v->epoch, sizeof(v->epoch));
	pthread_mutex_destroy(&v->epoch_mu);
	pthread_mutex_destroy(&v->state_mu);
	free(v);
}

bool vault_is_initialized(struct vault *v)
{
	bool i;

	pthread_mutex_lock(&v->state_mu);
	i = v->initialized;
	pthread_mutex_unlock(&v->state_mu);
	return i;
}

void vault_set_initialized(struct vault *v)
{
	v->initialized = true;
}

void vault_epoch_get(struct vault *v, uint8_t ret[16])
{
	pthread_mutex_lock(&v->epoch_mu);
	memcpy(ret, v->epoch, sizeof(v->epoch));
	pthread_mutex_unlock(&v->epoch_mu);
}

void vault_epoch_renew(struct vault *v)
{
	pthread_mutex_lock(&v->epoch_mu);
	randombytes_buf(v->epoch, sizeof(v->epoch));
	pthread_mutex_unlock(&v->epoch_mu);
}

void vault_lock(struct vault *v)
{
	pthread_mutex_lock(&v->state_mu);
	vault_epoch_renew(v);
	keyring_lock(v->keyring);
	pthread_mutex_unlock(&v->state_mu);
}

/* The daemon's own record of an init (vaultd --dev), the chain's first. */
static int record_own_init(struct vault *v, struct store_tx *tx, const struct secret *audit_key)
{
	struct audit_entry e = {
		.principal = AUDIT_SYSTEM_PRINCIPAL, .uid = getuid(), .pid = getpid(), .action = "sys.init",
		.capability = "", .result = "allowed", .status = 200, .detail = "vaultd --dev",
		.request_id = "00000000000000000000000000000000",
	};

	return auditor_record_genesis(v->auditor, tx, &e, audit_key, NULL);
}

int vault_init(struct vault *v, const struct auth_params *argon2, const char *admin, const struct secret *pass,
	       vault_record_fn record, void *userdata, json_t **ret_enrolment)
{
	_cleanup_secret_ struct secret *audit_key = NULL, *authz_key = NULL;
	char hashes[TOTP_RECOVERY_CODES][65];
	struct store_user u = {0};
	struct store_tx *tx = NULL;
	json_t *enrolment = NULL;
	char now[32];
	int r;

	if (!name_valid(admin) || auth_passphrase_check(pass))
		return -EINVAL;
	snprintf(u.name, sizeof(u.name), "%s", admin);
	/* Hash before taking the state lock: Argon2 is the slow part. */
	r = auth_hash(argon2, pass, &u.phc);
	if (r < 0)
		return r;
	u.roles = strdup("[\"admin\"]");
	if (!u.roles) {
		store_user_clear(&u);
		return -ENOMEM;
	}

	pthread_mutex_lock(&v->state_mu);
	if (v->initialized) {
		r = -EEXIST;
		goto out;
	}
	r = store_write_begin(v->store, &tx);
	if (r < 0)
		goto out;
	r = keyring_init_keys(v->keyring, tx, &audit_key, &authz_key);
	if (r < 0)
		goto out;
	r = accounts_enrol(v->keyring, &u, hashes, &enrolment);
	if (r < 0)
		goto out;
	u.created_at = u.updated_at = time(NULL);
	/* A new vault is sealed from its first row; the genesis anchor
	 * below binds the flag. */
	authz_mac_user(authz_key, &u, u.mac);
	if ((r = store_meta_set(tx, AUDIT_AUTHZ_SEALED_KEY, "1")) < 0 || (r = store_user_put(tx, &u)) < 0 ||
	    (r = store_recovery_set(tx, u.name, (const char(*)[65])hashes, TOTP_RECOVERY_CODES)) < 0)
		goto out;
	snprintf(now, sizeof(now), "%" PRId64, (int64_t)u.created_at);
	r = store_meta_set(tx, "initialized_at", now);
	if (r < 0)
		goto out;
	/* The record commits with the vault, or neither does. */
	r = record ? record(userdata, tx, audit_key) : record_own_init(v, tx, audit_key);
	if (r < 0)
		goto out;
	r = store_write_commit(TAKE_PTR(tx));
	if (r < 0)
		goto out;
	v->initialized = true;
	log_info("vault initialised; admin user '%s' (MFA enrolment pending)", admin);
	if (ret_enrolment)
		*ret_enrolment = TAKE_PTR(enrolment);
out:
	store_tx_end(tx);
	pthread_mutex_unlock(&v->state_mu);
	json_decref(enrolment);
	sodium_memzero(hashes, sizeof(hashes));
	store_user_clear(&u);
	return r;
}

int vault_bind_service(struct vault *v, const char *name, uid_t uid, const char *roles_json)
{
	_cleanup_secret_ struct secret *key = NULL;
	struct store_service svc = {0};
	struct store_tx *tx = NULL;
	int r;

	if (!name_valid(name))
		return -EINVAL;
	snprintf(svc.name, sizeof(svc.name), "%s", name);
	svc.uid = (uint32_t)uid;
	svc.roles = (char *)roles_json;
	svc.created_at = svc.updated_at = time(NULL);
	r = keyring_authz_key(v->keyring, &key);
	if (r < 0)
		return r;
	authz_mac_service(key, &svc, svc.mac);
	r = store_write_begin(v->store, &tx);
	if (r >= 0)
		r = store_service_put(tx, &svc);
	if (r >= 0)
		r = store_write_commit(TAKE_PTR(tx));
	store_tx_end(tx);
	return r;
}

/* key: the authorization seal's, to check custom roles with; NULL while
 * locked. */
static bool roles_allow_admin(struct vault *v, struct store_tx *tx, const struct secret *key, const char *roles_json)
{
	struct principal p = {0};
	bool ok = false;

	if (principal_load_roles(v->store, tx, key, roles_json, &p) >= 0)
		ok = rbac_allowed(p.roles, p.n_roles, NULL, RBAC_ADMIN);
	principal_clear(&p);
	return ok;
}

bool vault_user_may_unlock(struct vault *v, const struct store_user *u)
{
	struct store_tx *tx = NULL;
	bool ok = false;

	if (store_read_begin(v->store, &tx) >= 0) {
		ok = roles_allow_admin(v, tx, NULL, u->roles);
		store_tx_end(tx);
	}
	return ok;
}

/* Right after the keyring unlocked (state_mu held): an older vault's rows
 * are sealed now (once: the flag goes into the audit anchor), then the
 * user who unlocked must hold a sealed row with admin. 0; -EBADMSG if the
 * seal says the rows were changed outside vaultd (reported); -EACCES if
 * the user is no admin after all; storage errors. */
static int unlock_check_seal(struct vault *v, const char *user)
{
	_cleanup_secret_ struct secret *key = NULL, *audit_key = NULL;
	struct store_user u = {0};
	struct store_tx *tx = NULL;
	int64_t rows = 0;
	char detail[96], what[96] = "";
	int r, sealed;

	if ((r = keyring_authz_key(v->keyring, &key)) < 0 || (r = keyring_audit_key(v->keyring, &audit_key)) < 0)
		return r;
	r = store_write_begin(v->store, &tx);
	if (r < 0)
		return r;
	sealed = audit_authz_sealed(tx);
	if (sealed == 0) {
		/* Only a vault whose anchor says it was never sealed is sealed
		 * now: the anchor binds the flag, so a seal stripped behind
		 * vaultd's back shows as tampering here, and a log found
		 * tampered with proves nothing about these rows. They stay
		 * unsealed (and refused) until someone restores. */
		r = audit_check_anchor(tx, audit_key);
		if (r > 0) {
			log_error("not sealing the authorization rows of this vault: its audit log shows tampering");
			r = -EBADMSG;
		} else if (r == 0)
			r = authz_seal_all(tx, NULL, key, &rows);
		if (r >= 0)
			r = audit_seal_authz(tx, audit_key);
		snprintf(detail, sizeof(detail), "sealed the %" PRId64 " authorization rows of a vault made before the seal",
			 rows);
		if (r >= 0)
			r = auditor_record_system(v->auditor, tx, "authz.seal", NULL, "allowed", detail);
		if (r >= 0) {
			r = store_write_commit(TAKE_PTR(tx));
			if (r >= 0)
				log_notice("%s", detail);
		}
	} else
		r = sealed;
	store_tx_end(tx);
	if (r < 0)
		return r;

	r = store_read_begin(v->store, &tx);
	if (r < 0)
		return r;
	r = store_user_get(tx, user, &u);
	if (r >= 0 && !authz_user_ok(key, &u)) {
		snprintf(what, sizeof(what), "user '%s'", u.name);
		r = -EBADMSG;
	} else if (r >= 0 && !roles_allow_admin(v, tx, key, u.roles))
		r = -EACCES;
	store_tx_end(tx);
	store_user_clear(&u);
	if (r == -EBADMSG && what[0])
		authz_note_tamper(v->store, what);
	return r;
}

int vault_unlock(struct vault *v, const char *user, vault_unlock_record_fn record, void *userdata)
{
	int r;

	pthread_mutex_lock(&v->state_mu);
	r = keyring_unlock(v->keyring, v->store);
	/* The rows that let this user unlock could not be checked while
	 * locked: now they are, or the unlock is undone. */
	if (r >= 0 && (r = unlock_check_seal(v, user)) < 0)
		keyring_lock(v->keyring);
	if (r >= 0) {
		vault_epoch_renew(v);
		/* Recorded before anyone can use it, or undone. */
		if (record && record(userdata) < 0) {
			keyring_lock(v->keyring);
			vault_epoch_renew(v);
			r = -ECANCELED;
		}
	}
	pthread_mutex_unlock(&v->state_mu);
	if (r >= 0)
		/* Resumes interrupted rotations, retires proven-obsolete HSM keys. */
		rotator_kick(v->rotator, true);
	return r;
}

int vault_unlock_with_passphrase(struct vault *v, const char *user, const struct secret *pass)
{
	struct store_user u = {0};
	struct store_tx *tx = NULL;
	bool is_admin;
	int r;

	if (!vault_is_initialized(v))
		return -ENOENT;
	r = store_read_begin(v->store, &tx);
	if (r < 0)
		return r;
	r = store_user_get(tx, user, &u);
	is_admin = r == 0 && roles_allow_admin(v, tx, NULL, u.roles);
	store_tx_end(tx);
	if (r < 0)
		return r == -ENOENT ? -EACCES : r;
	r = auth_verify(u.phc, pass);
	store_user_clear(&u);
	if (r < 0 || !is_admin)
		return -EACCES;
	return vault_unlock(v, user, NULL, NULL);
}
