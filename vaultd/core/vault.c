/* vaultd/core/vault.c: see vault.h. */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/log.h"
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
