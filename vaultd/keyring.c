/* vaultd/keyring.c: see keyring.h. */
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <time.h>
#include "common/err.h"
#include "common/log.h"
#include "common/path.h"
#include "vaultd/envelope.h"
#include "vaultd/keyring.h"

struct kek_entry {
	char tenant[PATH_SEGMENT_MAX + 1];
	uint32_t version;
	struct secret *key;
	struct kek_entry *next;
};

struct keyring {
	struct keyring_hsm hsm;
	/* Every use of the key provider, open to close. Closing a provider
	 * finalises the PKCS#11 module for the whole process, so two must
	 * never overlap. */
	pthread_mutex_t hsm_mu;
	pthread_rwlock_t state;         /* shared: seal/open; exclusive: unlock/lock */
	struct secret *rk;              /* NULL while locked */
	uint32_t rk_version;
	pthread_mutex_t cache_mu;       /* guards the list, not the keys it points to */
	struct kek_entry *keks;
};

int keyring_new(const struct keyring_hsm *hsm, struct keyring **ret)
{
	struct keyring *k = calloc(1, sizeof(*k));

	if (!k)
		return -ENOMEM;
	k->hsm = *hsm;
	pthread_mutex_init(&k->hsm_mu, NULL);
	pthread_rwlock_init(&k->state, NULL);
	pthread_mutex_init(&k->cache_mu, NULL);
	*ret = k;
	return 0;
}

static void cache_clear(struct keyring *k)
{
	struct kek_entry *e, *n;

	for (e = k->keks; e; e = n) {
		n = e->next;
		secret_free(e->key);
		free(e);
	}
	k->keks = NULL;
}

void keyring_lock(struct keyring *k)
{
	pthread_rwlock_wrlock(&k->state);
	secret_free(k->rk);
	k->rk = NULL;
	k->rk_version = 0;
	cache_clear(k);
	pthread_rwlock_unlock(&k->state);
}

void keyring_free(struct keyring *k)
{
	if (!k)
		return;
	keyring_lock(k);
	pthread_rwlock_destroy(&k->state);
	pthread_mutex_destroy(&k->cache_mu);
	pthread_mutex_destroy(&k->hsm_mu);
	free(k);
}

bool keyring_is_unlocked(struct keyring *k)
{
	bool u;

	pthread_rwlock_rdlock(&k->state);
	u = k->rk != NULL;
	pthread_rwlock_unlock(&k->state);
	return u;
}

static int init_locked(struct keyring *k, struct store_tx *tx)
{
	_cleanup_(keyprov_closep) struct keyprov *kp = NULL;
	_cleanup_secret_ struct secret *rk = NULL;
	struct store_rootkey row = { .version = 1, .hsm_version = 1 };
	int r;

	r = keyprov_open(&k->hsm.prov, &kp);
	if (r < 0)
		return r;
	r = keyprov_find(kp, k->hsm.key_label, 1);
	if (r == -VLT_E_HSM_KEY_NOT_FOUND)
		r = keyprov_generate(kp, k->hsm.key_label, 1);
	else if (r == 0)
		/* Left by an init that crashed before its commit, or shared with
		 * another vault on this token. Reusing it is safe: this vault's RK
		 * is fresh either way. */
		log_notice("reusing existing HSM key '%s' version 1", k->hsm.key_label);
	if (r < 0)
		return r;

	r = secret_random(KEYPROV_RK_LEN, &rk);
	if (r < 0)
		return r;
	r = keyprov_wrap(kp, k->hsm.key_label, 1, k->hsm.mech, k->hsm.hash, rk, &row.blob, &row.blob_len);
	if (r < 0)
		return r;
	/* Wrapping is plain OpenSSL and succeeds even when the token cannot
	 * unwrap by the chosen mechanism: prove the round trip before the
	 * vault depends on it. */
	{
		_cleanup_secret_ struct secret *check = NULL;
		r = keyprov_unwrap(kp, row.blob, row.blob_len, &check);
		if (r >= 0 && !secret_equal(rk, check))
			r = -VLT_E_HSM_UNWRAP;
		if (r < 0) {
			free(row.blob);
			return r;
		}
	}
	snprintf(row.hsm_label, sizeof(row.hsm_label), "%s", k->hsm.key_label);
	row.created_at = time(NULL);
	r = store_rootkey_put(tx, &row);
	free(row.blob);
	return r;
}

int keyring_unlock(struct keyring *k, struct store *s)
{
	_cleanup_(keyprov_closep) struct keyprov *kp = NULL;
	_cleanup_secret_ struct secret *rk = NULL;
	struct store_rootkey row = {0};
	struct store_tx *tx = NULL;
	int r;

	if (keyring_is_unlocked(k))
		return 0;
	r = store_read_begin(s, &tx);
	if (r < 0)
		return r;
	r = store_rootkey_get_current(tx, &row);
	store_tx_end(tx);
	if (r < 0)
		return r;

	pthread_mutex_lock(&k->hsm_mu);
	r = keyprov_open(&k->hsm.prov, &kp);
	if (r >= 0)
		r = keyprov_unwrap(kp, row.blob, row.blob_len, &rk);
	keyprov_close(TAKE_PTR(kp));
	pthread_mutex_unlock(&k->hsm_mu);
	if (r >= 0 && rk->len != KEYPROV_RK_LEN)
		r = -VLT_E_HSM_UNWRAP;
	if (r < 0) {
		store_rootkey_clear(&row);
		return r;
	}

	pthread_rwlock_wrlock(&k->state);
	if (!k->rk) {
		k->rk = TAKE_PTR(rk);
		k->rk_version = row.version;
	}
	pthread_rwlock_unlock(&k->state);
	store_rootkey_clear(&row);
	return 0;
}

int keyring_check_hsm(struct keyring *k, struct store *s)
{
	_cleanup_(keyprov_closep) struct keyprov *kp = NULL;
	struct store_rootkey row = {0};
	struct keyprov_blob b;
	struct store_tx *tx = NULL;
	int r;

	r = store_read_begin(s, &tx);
	if (r < 0)
		return r;
	r = store_rootkey_get_current(tx, &row);
	store_tx_end(tx);
	if (r < 0)
		return r;
	r = keyprov_blob_parse(row.blob, row.blob_len, &b);
	pthread_mutex_lock(&k->hsm_mu);
	if (r >= 0)
		r = keyprov_open(&k->hsm.prov, &kp);
	if (r >= 0)
		r = keyprov_find(kp, b.label, b.key_version);
	keyprov_close(TAKE_PTR(kp));
	pthread_mutex_unlock(&k->hsm_mu);
	store_rootkey_clear(&row);
	return r;
}

int keyring_init(struct keyring *k, struct store_tx *tx)
{
	int r;

	pthread_mutex_lock(&k->hsm_mu);
	r = init_locked(k, tx);
	pthread_mutex_unlock(&k->hsm_mu);
	return r;
}

int keyring_hsm_wrap_key(struct keyring *k, const struct secret *key, uint8_t **ret_blob, size_t *ret_len)
{
	_cleanup_(keyprov_closep) struct keyprov *kp = NULL;
	int r;

	pthread_mutex_lock(&k->hsm_mu);
	r = keyprov_open(&k->hsm.prov, &kp);
	/* XXX: HSM key version 1 until HSM-key rotation (issue 6) tracks the
	 * current one; rotation must then rewrap these blobs too. */
	if (r >= 0)
		r = keyprov_wrap(kp, k->hsm.key_label, 1, k->hsm.mech, k->hsm.hash, key, ret_blob, ret_len);
	keyprov_close(TAKE_PTR(kp));
	pthread_mutex_unlock(&k->hsm_mu);
	return r;
}

int keyring_hsm_unwrap_key(struct keyring *k, const uint8_t *blob, size_t len, struct secret **ret_key)
{
	_cleanup_(keyprov_closep) struct keyprov *kp = NULL;
	int r;

	pthread_mutex_lock(&k->hsm_mu);
	r = keyprov_open(&k->hsm.prov, &kp);
	if (r >= 0)
		r = keyprov_unwrap(kp, blob, len, ret_key);
	keyprov_close(TAKE_PTR(kp));
	pthread_mutex_unlock(&k->hsm_mu);
	return r;
}

/* Caller holds k->state (shared). Returns a borrowed key valid until lock. */
static struct secret *cache_get(struct keyring *k, const char *tenant, uint32_t version)
{
	struct kek_entry *e;

	pthread_mutex_lock(&k->cache_mu);
	for (e = k->keks; e; e = e->next)
		if (e->version == version && streq(e->tenant, tenant))
			break;
	pthread_mutex_unlock(&k->cache_mu);
	return e ? e->key : NULL;
}

/* Takes ownership of key. If another thread cached the same KEK meanwhile,
 * keeps theirs and returns it. */
static struct secret *cache_put(struct keyring *k, const char *tenant, uint32_t version, struct secret *key)
{
	struct kek_entry *e, *n;

	n = calloc(1, sizeof(*n));
	if (!n) {
		secret_free(key);
		return NULL;
	}
	snprintf(n->tenant, sizeof(n->tenant), "%s", tenant);
	n->version = version;
	n->key = key;
	pthread_mutex_lock(&k->cache_mu);
	for (e = k->keks; e; e = e->next)
		if (e->version == version && streq(e->tenant, tenant))
			break;
	if (!e) {
		n->next = k->keks;
		k->keks = n;
		e = n;
		n = NULL;
	}
	pthread_mutex_unlock(&k->cache_mu);
	if (n) {
		secret_free(n->key);
		free(n);
	}
	return e->key;
}

/* Caller holds k->state (shared) with k->rk set. */
static int kek_load(struct keyring *k, struct store_tx *tx, const char *tenant, uint32_t version,
		    struct secret **ret)
{
	struct store_kek row = {0};
	struct secret *key;
	int r;

	key = cache_get(k, tenant, version);
	if (key) {
		*ret = key;
		return 0;
	}
	r = store_kek_get(tx, tenant, version, &row);
	if (r < 0)
		return r;
	if (row.rk_version != k->rk_version) {
		/* XXX: only one RK version is live until root-key rotation lands
		 * (issue 6); a KEK under another RK cannot be opened yet. */
		store_kek_clear(&row);
		return log_error_errno(-EBADMSG, "KEK '%s' v%u is wrapped under root key v%u, not v%u",
				       tenant, version, row.rk_version, k->rk_version);
	}
	r = envelope_unwrap_kek(k->rk, k->rk_version, tenant, version, row.blob, row.blob_len, &key);
	store_kek_clear(&row);
	if (r < 0)
		return r;
	key = cache_put(k, tenant, version, key);
	if (!key)
		return -ENOMEM;
	*ret = key;
	return 0;
}

int keyring_ensure_kek(struct keyring *k, struct store *s, const char *tenant)
{
	_cleanup_secret_ struct secret *kek = NULL;
	struct store_kek row = {0};
	struct store_tx *tx = NULL;
	int r;

	pthread_rwlock_rdlock(&k->state);
	if (!k->rk) {
		r = -EACCES;
		goto out;
	}
	r = store_write_begin(s, &tx);
	if (r < 0)
		goto out;
	r = store_kek_get_current(tx, tenant, &row);
	if (r == 0) {
		store_kek_clear(&row);
		goto out;       /* exists */
	}
	if (r != -ENOENT)
		goto out;

	r = secret_random(ENVELOPE_KEY_LEN, &kek);
	if (r < 0)
		goto out;
	snprintf(row.tenant, sizeof(row.tenant), "%s", tenant);
	row.version = 1;
	row.rk_version = k->rk_version;
	row.created_at = time(NULL);
	r = envelope_wrap_kek(k->rk, k->rk_version, tenant, 1, kek, &row.blob, &row.blob_len);
	if (r < 0)
		goto out;
	r = store_kek_put(tx, &row);
	free(row.blob);
	if (r < 0)
		goto out;
	r = store_write_commit(TAKE_PTR(tx));
	if (r < 0)
		goto out;
	if (!cache_put(k, tenant, 1, TAKE_PTR(kek)))
		r = -ENOMEM;
out:
	store_tx_end(tx);
	pthread_rwlock_unlock(&k->state);
	return r;
}

int keyring_seal(struct keyring *k, struct store_tx *tx, const char *path, uint32_t version,
		 const struct secret *plaintext, struct store_version *ret)
{
	_cleanup_secret_ struct secret *dek = NULL;
	char tenant[PATH_SEGMENT_MAX + 1];
	struct store_version v = { .version = version };
	struct store_kek row = {0};
	struct secret *kek;
	int r;

	r = path_tenant(path, tenant);
	if (r < 0)
		return r;
	pthread_rwlock_rdlock(&k->state);
	if (!k->rk) {
		r = -EACCES;
		goto out;
	}
	r = store_kek_get_current(tx, tenant, &row);
	if (r < 0)
		goto out;
	v.kek_version = row.version;
	store_kek_clear(&row);
	r = kek_load(k, tx, tenant, v.kek_version, &kek);
	if (r < 0)
		goto out;

	r = secret_random(ENVELOPE_KEY_LEN, &dek);
	if (r < 0)
		goto out;
	r = envelope_seal_data(dek, path, version, plaintext, &v.data_blob, &v.data_len);
	if (r < 0)
		goto out;
	r = envelope_wrap_dek(kek, v.kek_version, path, version, dek, &v.dek_blob, &v.dek_len);
	if (r < 0)
		goto out;
	r = store_kek_add_wraps(tx, tenant, v.kek_version, 1);
	if (r < 0)
		goto out;
	v.created_at = time(NULL);
	*ret = v;
	v = (struct store_version){0};
out:
	pthread_rwlock_unlock(&k->state);
	store_version_clear(&v);
	return r;
}

int keyring_open(struct keyring *k, struct store_tx *tx, const char *path,
		 const struct store_version *v, struct secret **ret_plaintext)
{
	_cleanup_secret_ struct secret *dek = NULL;
	char tenant[PATH_SEGMENT_MAX + 1];
	struct secret *kek;
	int r;

	if (!v->dek_blob || !v->data_blob)
		return -ENOENT;
	r = path_tenant(path, tenant);
	if (r < 0)
		return r;
	pthread_rwlock_rdlock(&k->state);
	if (!k->rk) {
		r = -EACCES;
		goto out;
	}
	r = kek_load(k, tx, tenant, v->kek_version, &kek);
	if (r < 0)
		goto out;
	r = envelope_unwrap_dek(kek, v->kek_version, path, v->version, v->dek_blob, v->dek_len, &dek);
	if (r < 0)
		goto out;
	r = envelope_open_data(dek, path, v->version, v->data_blob, v->data_len, ret_plaintext);
out:
	pthread_rwlock_unlock(&k->state);
	return r;
}

int keyring_audit_key(struct keyring *k, struct secret **ret)
{
	struct secret *key;
	int r;

	pthread_rwlock_rdlock(&k->state);
	if (!k->rk) {
		pthread_rwlock_unlock(&k->state);
		return -EACCES;
	}
	r = secret_new(crypto_kdf_KEYBYTES, &key);
	if (r >= 0) {
		/* A key of its own for the audit anchor, so the RK itself never
		 * keys anything but the KEK layer. */
		crypto_kdf_derive_from_key(key->p, crypto_kdf_KEYBYTES, 1, "vltaudit", k->rk->p);
		key->len = crypto_kdf_KEYBYTES;
		*ret = key;
	}
	pthread_rwlock_unlock(&k->state);
	return r;
}
