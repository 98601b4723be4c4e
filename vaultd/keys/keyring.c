/* vaultd/keys/keyring.c: see keyring.h. The keyring's lifetime and lock
 * state, init and unlock, the HSM wrap of MFA keys, the keys derived from
 * the RK, and the seal/open path. The KEK cache is kek_cache.c, the rotation
 * primitives keyring_rotate.c and keyring_hsm.c (keyring_internal.h). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/err.h"
#include "common/log.h"
#include "common/path.h"
#include "common/util.h"
#include "vaultd/keys/envelope.h"
#include "vaultd/keys/keyring.h"
#include "vaultd/keys/keyring_internal.h"

/* ---- lifetime and lock state ---- */

int keyring_new(const struct keyring_hsm *hsm, struct keyring **ret)
{
	struct keyring *k = calloc(1, sizeof(*k));

	if (!k)
		return -ENOMEM;
	k->hsm = *hsm;
	pthread_mutex_init(&k->hsm_mu, NULL);
	pthread_rwlock_init(&k->state, NULL);
	pthread_mutex_init(&k->cache_mu, NULL);
	kr_cache_init(&k->cache);
	*ret = k;
	return 0;
}

/* Caller holds k->state exclusively. */
static void rks_clear(struct keyring *k)
{
	for (size_t i = 0; i < k->n_rks; i++)
		secret_free(k->rks[i].key);
	memset(k->rks, 0, sizeof(k->rks));
	k->n_rks = 0;
	secret_free(k->staged.key);
	k->staged = (struct rk_entry){0};
	k->rk = NULL;
	k->rk_version = 0;
}

const struct secret *kr_rk_find(struct keyring *k, uint32_t version)
{
	for (size_t i = 0; i < k->n_rks; i++)
		if (k->rks[i].version == version)
			return k->rks[i].key;
	return NULL;
}

#ifdef VAULTD_FAULT_INJECTION
/* Test builds only: $VAULTD_TEST_KEYS_OUT gets the keys a lock is about to
 * wipe ("rk VERSION HEX", "kek TENANT VERSION HEX"), so the memory-hygiene
 * test can look for them in the process afterwards. Never compiled into a
 * release build. */
static void test_dump_keys(struct keyring *k)
{
	const char *path = getenv("VAULTD_TEST_KEYS_OUT");
	char hex[2 * ENVELOPE_KEY_LEN + 1];
	FILE *f;

	if (!path || !k->n_rks || !(f = fopen(path, "ae")))
		return;
	for (size_t i = 0; i < k->n_rks; i++)
		if (k->rks[i].key && k->rks[i].key->len == ENVELOPE_KEY_LEN) {
			sodium_bin2hex(hex, sizeof(hex), k->rks[i].key->p, ENVELOPE_KEY_LEN);
			fprintf(f, "rk %" PRIu32 " %s\n", k->rks[i].version, hex);
		}
	sodium_memzero(hex, sizeof(hex));
	kr_cache_test_dump(k, f);
	fclose(f);
}
#endif

void keyring_lock(struct keyring *k)
{
	pthread_rwlock_wrlock(&k->state);
#ifdef VAULTD_FAULT_INJECTION
	test_dump_keys(k);
#endif
	rks_clear(k);
	kr_cache_clear(k);
	pthread_rwlock_unlock(&k->state);
}

void keyring_free(struct keyring *k)
{
	if (!k)
		return;
	keyring_lock(k);
	kr_cache_fini(&k->cache);
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

/* ---- key derivation and the checked HSM wrap ---- */

/* Keys of their own for the audit anchor and the authorization rows' MACs,
 * so the RK itself never keys anything but the KEK layer. */
static int derive_key(const struct secret *rk, uint64_t id, const char ctx[crypto_kdf_CONTEXTBYTES],
		      struct secret **ret)
{
	struct secret *key;
	int r;

	r = secret_new(crypto_kdf_KEYBYTES, &key);
	if (r < 0)
		return r;
	crypto_kdf_derive_from_key(key->p, crypto_kdf_KEYBYTES, id, ctx, rk->p);
	key->len = crypto_kdf_KEYBYTES;
	*ret = key;
	return 0;
}

static int derive_audit_key(const struct secret *rk, struct secret **ret)
{
	return derive_key(rk, 1, "vltaudit", ret);
}

static int derive_authz_key(const struct secret *rk, struct secret **ret)
{
	return derive_key(rk, 1, "vltauthz", ret);
}

/* Wrapping is plain OpenSSL and succeeds even when the token cannot unwrap
 * by the chosen mechanism: prove the round trip before the vault depends on
 * the blob. */
int kr_hsm_wrap_checked(struct keyring *k, struct keyprov *kp, const char *label, uint32_t version,
			const struct secret *rk, uint8_t **ret_blob, size_t *ret_len)
{
	_cleanup_secret_ struct secret *check = NULL;
	int r;

	r = keyprov_wrap(kp, label, version, k->hsm.mech, k->hsm.hash, rk, ret_blob, ret_len);
	if (r < 0)
		return r;
	r = keyprov_unwrap(kp, *ret_blob, *ret_len, &check);
	if (r >= 0 && !secret_equal(rk, check))
		r = -VLT_E_HSM_UNWRAP;
	if (r < 0) {
		free(*ret_blob);
		*ret_blob = NULL;
	}
	return r;
}

/* ---- init and unlock ---- */

static int init_locked(struct keyring *k, struct store_tx *tx, struct secret **ret_audit_key,
		       struct secret **ret_authz_key)
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

	r = secret_random_guarded(KEYPROV_RK_LEN, &rk);
	if (r < 0)
		return r;
	r = kr_hsm_wrap_checked(k, kp, k->hsm.key_label, 1, rk, &row.blob, &row.blob_len);
	if (r < 0)
		return r;
	snprintf(row.hsm_label, sizeof(row.hsm_label), "%s", k->hsm.key_label);
	row.created_at = time(NULL);
	r = store_rootkey_put(tx, &row);
	free(row.blob);
	if (r >= 0 && ret_audit_key)
		r = derive_audit_key(rk, ret_audit_key);
	if (r >= 0 && ret_authz_key && (r = derive_authz_key(rk, ret_authz_key)) < 0 && ret_audit_key)
		secret_free(TAKE_PTR(*ret_audit_key));
	if (r >= 0) {
		snprintf(k->hsm_label, sizeof(k->hsm_label), "%s", k->hsm.key_label);
		k->hsm_version = 1;
	}
	return r;
}

int kr_rk_rows_one(const struct store_rootkey *rk, void *userdata)
{
	struct rk_rows *l = userdata;
	struct store_rootkey *d;

	if (l->n == RK_LIVE_MAX)
		return log_error_errno(-E2BIG, "more than %d root key versions are live", RK_LIVE_MAX);
	d = &l->rows[l->n];
	*d = *rk;
	d->blob = malloc(rk->blob_len);
	if (!d->blob)
		return -ENOMEM;
	memcpy(d->blob, rk->blob, rk->blob_len);
	l->n++;
	return 0;
}

void kr_rk_rows_clear(struct rk_rows *l)
{
	for (size_t i = 0; i < l->n; i++)
		store_rootkey_clear(&l->rows[i]);
	l->n = 0;
}

static int rk_rows_load(struct store *s, struct rk_rows *l)
{
	struct store_tx *tx = NULL;
	int r;

	r = store_read_begin(s, &tx);
	if (r < 0)
		return r;
	r = store_rootkey_list(tx, kr_rk_rows_one, l);
	store_tx_end(tx);
	if (r >= 0 && l->n == 0)
		r = -ENOENT;
	if (r < 0)
		kr_rk_rows_clear(l);
	return r;
}

/* Remembers which HSM key wraps the current RK. Caller holds hsm_mu. */
static void note_hsm_key(struct keyring *k, const struct store_rootkey *current)
{
	snprintf(k->hsm_label, sizeof(k->hsm_label), "%s", current->hsm_label);
	k->hsm_version = current->hsm_version;
}

int keyring_unlock(struct keyring *k, struct store *s)
{
	_cleanup_(keyprov_closep) struct keyprov *kp = NULL;
	struct rk_entry got[RK_LIVE_MAX] = {0};
	struct rk_rows rows = {0};
	size_t i;
	int r;

	if (keyring_is_unlocked(k))
		return 0;
	r = rk_rows_load(s, &rows);
	if (r < 0)
		return r;

	pthread_mutex_lock(&k->hsm_mu);
	r = keyprov_open(&k->hsm.prov, &kp);
	for (i = 0; r >= 0 && i < rows.n; i++) {
		got[i].version = rows.rows[i].version;
		r = keyprov_unwrap(kp, rows.rows[i].blob, rows.rows[i].blob_len, &got[i].key);
		if (r >= 0 && got[i].key->len != KEYPROV_RK_LEN)
			r = -VLT_E_HSM_UNWRAP;
	}
	keyprov_close(TAKE_PTR(kp));
	if (r >= 0) {
		note_hsm_key(k, &rows.rows[rows.n - 1]);
		k->unlocked_hsm_version = rows.rows[rows.n - 1].hsm_version;
	}
	pthread_mutex_unlock(&k->hsm_mu);

	if (r >= 0) {
		pthread_rwlock_wrlock(&k->state);
		if (!k->rk) {
			for (i = 0; i < rows.n; i++) {
				k->rks[i] = got[i];
				got[i] = (struct rk_entry){0};
			}
			k->n_rks = rows.n;
			/* rows ascend by version: the last is current. */
			k->rk = k->rks[rows.n - 1].key;
			k->rk_version = k->rks[rows.n - 1].version;
		}
		pthread_rwlock_unlock(&k->state);
	}
	for (i = 0; i < RK_LIVE_MAX; i++)
		secret_free(got[i].key);
	kr_rk_rows_clear(&rows);
	return r;
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
	if (r == -ENOENT) {
		/* Not initialised: the module, the token and the PIN at least. */
		pthread_mutex_lock(&k->hsm_mu);
		r = keyprov_open(&k->hsm.prov, &kp);
		keyprov_close(TAKE_PTR(kp));
		pthread_mutex_unlock(&k->hsm_mu);
		return r;
	}
	if (r < 0)
		return r;
	r = keyprov_blob_parse(row.blob, row.blob_len, &b);
	if (r >= 0 && !streq(b.label, k->hsm.key_label))
		log_warning("[hsm] key_label is '%s', but this vault's root key is wrapped by HSM key '%s' version %u: "
			    "unlock uses '%s'; 'vaultctl rotate hsm' would move it to '%s'",
			    k->hsm.key_label, b.label, b.key_version, b.label, k->hsm.key_label);
	pthread_mutex_lock(&k->hsm_mu);
	if (r >= 0)
		r = keyprov_open(&k->hsm.prov, &kp);
	if (r >= 0)
		r = keyprov_find(kp, b.label, b.key_version);
	keyprov_close(TAKE_PTR(kp));
	if (r >= 0)
		note_hsm_key(k, &row);
	pthread_mutex_unlock(&k->hsm_mu);
	store_rootkey_clear(&row);
	return r;
}

uint32_t keyring_unlocked_hsm_version(struct keyring *k)
{
	uint32_t v;

	pthread_mutex_lock(&k->hsm_mu);
	v = k->unlocked_hsm_version;
	pthread_mutex_unlock(&k->hsm_mu);
	return v;
}

int keyring_init_keys(struct keyring *k, struct store_tx *tx, struct secret **ret_audit_key,
		      struct secret **ret_authz_key)
{
	int r;

	pthread_mutex_lock(&k->hsm_mu);
	r = init_locked(k, tx, ret_audit_key, ret_authz_key);
	pthread_mutex_unlock(&k->hsm_mu);
	return r;
}

int keyring_init(struct keyring *k, struct store_tx *tx)
{
	return keyring_init_keys(k, tx, NULL, NULL);
}

/* ---- MFA keys under the HSM key ---- */

int keyring_hsm_wrap_key(struct keyring *k, const struct secret *key, uint8_t **ret_blob, size_t *ret_len)
{
	_cleanup_(keyprov_closep) struct keyprov *kp = NULL;
	int r;

	pthread_mutex_lock(&k->hsm_mu);
	if (!k->hsm_version)
		r = log_error_errno(-VLT_E_HSM_KEY_NOT_FOUND, "the current HSM key is not known yet");
	else
		r = keyprov_open(&k->hsm.prov, &kp);
	/* A blob that misses an HSM-key rotation running meanwhile is caught by
	 * keyring_hsm_retire(), which rewraps stragglers before deleting. */
	if (r >= 0)
		r = keyprov_wrap(kp, k->hsm_label, k->hsm_version, k->hsm.mech, k->hsm.hash, key, ret_blob,
				 ret_len);
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

/* ---- seal and open ---- */

int keyring_ensure_kek(struct keyring *k, struct store *s, const char *tenant)
{
	_cleanup_secret_ struct secret *kek = NULL;
	struct store_kek row = {0};
	struct store_tx *tx = NULL;
	int r;

	/* Lock order: the write transaction first (see keyring.h). */
	r = store_write_begin(s, &tx);
	if (r < 0)
		return r;
	pthread_rwlock_rdlock(&k->state);
	if (!k->rk) {
		r = -EACCES;
		goto out;
	}
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
	r = kr_cache_put(k, tenant, 1, TAKE_PTR(kek), /* ret= */ NULL);
out:
	store_tx_end(tx);
	pthread_rwlock_unlock(&k->state);
	return r;
}

int keyring_seal(struct keyring *k, struct store_tx *tx, const char *path, uint32_t version,
		 const struct secret *plaintext, struct store_version *ret, uint64_t *ret_wraps)
{
	_cleanup_secret_ struct secret *dek = NULL;
	char tenant[PATH_SEGMENT_MAX + 1];
	struct store_version v = { .version = version };
	struct store_kek row = {0};
	struct kek_ref kek = KEK_REF_INIT;
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
	if (ret_wraps)
		*ret_wraps = row.wrap_count + 1;
	store_kek_clear(&row);
	r = kr_kek_load(k, tx, tenant, v.kek_version, &kek);
	if (r < 0)
		goto out;

	r = secret_random(ENVELOPE_KEY_LEN, &dek);
	if (r < 0)
		goto out;
	r = envelope_seal_data(dek, path, version, plaintext, &v.data_blob, &v.data_len);
	if (r < 0)
		goto out;
	r = envelope_wrap_dek(&kek.key, v.kek_version, path, version, dek, &v.dek_blob, &v.dek_len);
	if (r < 0)
		goto out;
	r = store_kek_add_wraps(tx, tenant, v.kek_version, 1);
	if (r < 0)
		goto out;
	v.created_at = time(NULL);
	*ret = v;
	v = (struct store_version){0};
out:
	kr_kek_unpin(k, &kek);
	pthread_rwlock_unlock(&k->state);
	store_version_clear(&v);
	return r;
}

int keyring_open(struct keyring *k, struct store_tx *tx, const char *path,
		 const struct store_version *v, struct secret **ret_plaintext)
{
	_cleanup_secret_ struct secret *dek = NULL;
	char tenant[PATH_SEGMENT_MAX + 1];
	struct kek_ref kek = KEK_REF_INIT;
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
	r = kr_kek_load(k, tx, tenant, v->kek_version, &kek);
	if (r < 0)
		goto out;
	r = envelope_unwrap_dek(&kek.key, v->kek_version, path, v->version, v->dek_blob, v->dek_len, &dek);
	if (r < 0)
		goto out;
	r = envelope_open_data(dek, path, v->version, v->data_blob, v->data_len, ret_plaintext);
out:
	kr_kek_unpin(k, &kek);
	pthread_rwlock_unlock(&k->state);
	return r;
}

/* ---- the derived keys, current and staged ---- */

int keyring_audit_key(struct keyring *k, struct secret **ret)
{
	int r;

	pthread_rwlock_rdlock(&k->state);
	r = k->rk ? derive_audit_key(k->rk, ret) : -EACCES;
	pthread_rwlock_unlock(&k->state);
	return r;
}

int keyring_authz_key(struct keyring *k, struct secret **ret)
{
	int r;

	pthread_rwlock_rdlock(&k->state);
	r = k->rk ? derive_authz_key(k->rk, ret) : -EACCES;
	pthread_rwlock_unlock(&k->state);
	return r;
}

int keyring_authz_key_staged(struct keyring *k, struct secret **ret)
{
	int r;

	pthread_rwlock_rdlock(&k->state);
	r = k->rk && k->staged.key ? derive_authz_key(k->staged.key, ret) : -EACCES;
	pthread_rwlock_unlock(&k->state);
	return r;
}

int keyring_audit_key_staged(struct keyring *k, struct secret **ret)
{
	int r;

	pthread_rwlock_rdlock(&k->state);
	r = k->rk && k->staged.key ? derive_audit_key(k->staged.key, ret) : -EACCES;
	pthread_rwlock_unlock(&k->state);
	return r;
}
