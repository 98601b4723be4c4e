/* vaultd/keys/keyring_rotate.c: the KEK, DEK and root-key rotation
 * primitives of keyring.h, which vaultd/rotate/ drives in batches. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/log.h"
#include "common/path.h"
#include "common/util.h"
#include "vaultd/keys/envelope.h"
#include "vaultd/keys/keyring.h"
#include "vaultd/keys/keyring_internal.h"

/* ---- row batches ---- */

/* Rows copied out of a batch query before they are rewritten: SQLite leaves
 * undefined what a running SELECT sees of rows changed under it. */
struct row_copy {
	char path[PATH_MAX_TEXT];
	struct store_version v;
};

struct row_batch {
	struct row_copy *rows;
	size_t n, cap;
	size_t bytes;
	bool with_data;
};

/* Keeps a batch's memory bounded whatever the rows hold. */
#define BATCH_BYTES_MAX (8u << 20)

static int batch_one(const char *path, const struct store_version *v, void *userdata)
{
	struct row_batch *b = userdata;
	struct row_copy *c;

	if (b->n > 0 && b->bytes >= BATCH_BYTES_MAX)
		return -ENOBUFS;        /* enough for this batch; not an error */
	if (b->n == b->cap)
		return -ENOBUFS;
	c = &b->rows[b->n];
	snprintf(c->path, sizeof(c->path), "%s", path);
	c->v = (struct store_version){ .version = v->version, .kek_version = v->kek_version,
				       .created_at = v->created_at };
	c->v.dek_blob = malloc(v->dek_len);
	if (!c->v.dek_blob)
		return -ENOMEM;
	memcpy(c->v.dek_blob, v->dek_blob, v->dek_len);
	c->v.dek_len = v->dek_len;
	if (b->with_data) {
		c->v.data_blob = malloc(v->data_len);
		if (!c->v.data_blob) {
			store_version_clear(&c->v);
			return -ENOMEM;
		}
		memcpy(c->v.data_blob, v->data_blob, v->data_len);
		c->v.data_len = v->data_len;
	}
	b->bytes += v->dek_len + (b->with_data ? v->data_len : 0);
	b->n++;
	return 0;
}

static int batch_init(struct row_batch *b, unsigned limit, bool with_data)
{
	*b = (struct row_batch){ .cap = limit, .with_data = with_data };
	b->rows = calloc(limit, sizeof(*b->rows));
	return b->rows ? 0 : -ENOMEM;
}

static void batch_free(struct row_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		store_version_clear(&b->rows[i].v);
	free(b->rows);
	*b = (struct row_batch){0};
}

/* ---- KEK rotation ---- */

int keyring_kek_begin(struct keyring *k, struct store_tx *tx, const char *tenant, uint32_t *ret_from,
		      uint32_t *ret_to)
{
	_cleanup_secret_ struct secret *kek = NULL;
	struct store_kek row = {0};
	uint32_t from;
	int r;

	pthread_rwlock_rdlock(&k->state);
	if (!k->rk) {
		r = -EACCES;
		goto out;
	}
	r = store_kek_get_current(tx, tenant, &row);
	if (r < 0)
		goto out;
	from = row.version;
	store_kek_clear(&row);
	if (from == UINT32_MAX) {
		r = -EOVERFLOW;
		goto out;
	}
	r = secret_random(ENVELOPE_KEY_LEN, &kek);
	if (r < 0)
		goto out;
	snprintf(row.tenant, sizeof(row.tenant), "%s", tenant);
	row.version = from + 1;
	row.rk_version = k->rk_version;
	row.created_at = time(NULL);
	r = envelope_wrap_kek(k->rk, k->rk_version, tenant, row.version, kek, &row.blob, &row.blob_len);
	if (r < 0)
		goto out;
	r = store_kek_put(tx, &row);
	free(row.blob);
	if (r < 0)
		goto out;
	/* Not cached here: the cache holds committed keys only, and this row
	 * commits with the caller's transaction. */
	*ret_from = from;
	*ret_to = from + 1;
out:
	pthread_rwlock_unlock(&k->state);
	return r;
}

int keyring_kek_rewrap_batch(struct keyring *k, struct store_tx *tx, const char *tenant, unsigned limit)
{
	struct row_batch b = {0};
	struct store_kek cur = {0};
	struct kek_ref new_kek = KEK_REF_INIT, old_kek = KEK_REF_INIT;
	int r;

	pthread_rwlock_rdlock(&k->state);
	if (!k->rk) {
		r = -EACCES;
		goto out;
	}
	r = store_kek_get_current(tx, tenant, &cur);
	if (r < 0)
		goto out;
	r = kr_kek_load(k, tx, tenant, cur.version, &new_kek);
	if (r < 0)
		goto out;
	r = batch_init(&b, limit, false);
	if (r < 0)
		goto out;
	r = store_version_list_old_kek(tx, tenant, cur.version, limit, batch_one, &b);
	if (r < 0 && r != -ENOBUFS)
		goto out;
	for (size_t i = 0; i < b.n; i++) {
		struct row_copy *c = &b.rows[i];
		_cleanup_secret_ struct secret *dek = NULL;
		_cleanup_free_ uint8_t *blob = NULL;
		size_t len;

		r = kr_kek_load(k, tx, tenant, c->v.kek_version, &old_kek);
		if (r < 0)
			goto out;
		/* The DEK passes through guarded memory; the data stays sealed. */
		r = envelope_unwrap_dek(&old_kek.key, c->v.kek_version, c->path, c->v.version, c->v.dek_blob,
					c->v.dek_len, &dek);
		kr_kek_unpin(k, &old_kek);
		if (r < 0) {
			log_error_errno(r, "cannot unwrap the DEK of '%s' version %u", c->path, c->v.version);
			goto out;
		}
		r = envelope_wrap_dek(&new_kek.key, cur.version, c->path, c->v.version, dek, &blob, &len);
		if (r < 0)
			goto out;
		r = store_version_rewrap(tx, c->path, c->v.version, cur.version, blob, len, NULL, 0);
		if (r < 0)
			goto out;
	}
	if (b.n > 0)
		r = store_kek_add_wraps(tx, tenant, cur.version, b.n);
	if (r >= 0)
		r = (int)b.n;
out:
	kr_kek_unpin(k, &new_kek);
	pthread_rwlock_unlock(&k->state);
	batch_free(&b);
	store_kek_clear(&cur);
	return r;
}

int keyring_kek_finish(struct keyring *k, struct store_tx *tx, const char *tenant)
{
	struct store_kek cur = {0};
	int64_t left;
	int r;

	if (!keyring_is_unlocked(k))
		return -EACCES;
	r = store_kek_get_current(tx, tenant, &cur);
	if (r < 0)
		return r;
	left = store_version_count_old_kek(tx, tenant, cur.version);
	if (left != 0) {
		store_kek_clear(&cur);
		return left < 0 ? (int)left : -EAGAIN;
	}
	r = store_version_retag_destroyed(tx, tenant, cur.version);
	if (r >= 0)
		r = store_kek_delete_unused(tx, tenant, cur.version);
	store_kek_clear(&cur);
	return r;
}

/* ---- DEK rotation (reseal) ---- */

int keyring_reseal_batch(struct keyring *k, struct store_tx *tx, const char *prefix, char *cursor_path,
			 uint32_t *cursor_version, unsigned limit)
{
	char tenant[PATH_SEGMENT_MAX + 1] = "";
	struct row_batch b = {0};
	struct store_kek cur = {0};
	struct kek_ref kek = KEK_REF_INIT, old_kek = KEK_REF_INIT;
	int r;

	pthread_rwlock_rdlock(&k->state);
	if (!k->rk) {
		r = -EACCES;
		goto out;
	}
	r = batch_init(&b, limit, true);
	if (r < 0)
		goto out;
	r = store_version_list_range(tx, prefix, cursor_path, *cursor_version, limit, batch_one, &b);
	if (r < 0 && r != -ENOBUFS)
		goto out;
	r = 0;
	for (size_t i = 0; i < b.n; i++) {
		struct row_copy *c = &b.rows[i];
		_cleanup_secret_ struct secret *dek = NULL, *plain = NULL, *new_dek = NULL;
		_cleanup_free_ uint8_t *dek_blob = NULL, *data_blob = NULL;
		char t[PATH_SEGMENT_MAX + 1];
		size_t dek_len, data_len;

		r = path_tenant(c->path, t);
		if (r < 0)
			goto out;
		if (!streq(t, tenant)) {
			/* Rows come ordered by path, so one tenant at a time. */
			store_kek_clear(&cur);
			kr_kek_unpin(k, &kek);
			r = store_kek_get_current(tx, t, &cur);
			if (r < 0)
				goto out;
			r = kr_kek_load(k, tx, t, cur.version, &kek);
			if (r < 0)
				goto out;
			snprintf(tenant, sizeof(tenant), "%s", t);
		}
		r = kr_kek_load(k, tx, t, c->v.kek_version, &old_kek);
		if (r >= 0)
			r = envelope_unwrap_dek(&old_kek.key, c->v.kek_version, c->path, c->v.version, c->v.dek_blob,
						c->v.dek_len, &dek);
		kr_kek_unpin(k, &old_kek);
		if (r >= 0)
			r = envelope_open_data(dek, c->path, c->v.version, c->v.data_blob, c->v.data_len, &plain);
		if (r < 0) {
			log_error_errno(r, "cannot open '%s' version %u", c->path, c->v.version);
			goto out;
		}
		r = secret_random(ENVELOPE_KEY_LEN, &new_dek);
		if (r >= 0)
			r = envelope_seal_data(new_dek, c->path, c->v.version, plain, &data_blob, &data_len);
		if (r >= 0)
			r = envelope_wrap_dek(&kek.key, cur.version, c->path, c->v.version, new_dek, &dek_blob, &dek_len);
		if (r >= 0)
			r = store_version_rewrap(tx, c->path, c->v.version, cur.version, dek_blob, dek_len, data_blob,
						 data_len);
		if (r >= 0)
			r = store_kek_add_wraps(tx, t, cur.version, 1);
		if (r < 0)
			goto out;
		snprintf(cursor_path, PATH_MAX_TEXT, "%s", c->path);
		*cursor_version = c->v.version;
	}
	r = (int)b.n;
out:
	kr_kek_unpin(k, &kek);
	pthread_rwlock_unlock(&k->state);
	batch_free(&b);
	store_kek_clear(&cur);
	return r;
}

/* ---- root-key rotation ---- */

int keyring_root_stage(struct keyring *k, struct store_tx *tx, uint32_t *ret_from, uint32_t *ret_to)
{
	_cleanup_(keyprov_closep) struct keyprov *kp = NULL;
	_cleanup_secret_ struct secret *rk = NULL;
	struct store_rootkey cur = {0}, row = {0};
	int r;

	if (!keyring_is_unlocked(k))
		return -EACCES;
	r = store_rootkey_get_current(tx, &cur);
	if (r < 0)
		return r;
	if (cur.version == UINT32_MAX) {
		store_rootkey_clear(&cur);
		return -EOVERFLOW;
	}
	row = (struct store_rootkey){ .version = cur.version + 1, .hsm_version = cur.hsm_version,
				      .created_at = time(NULL) };
	snprintf(row.hsm_label, sizeof(row.hsm_label), "%s", cur.hsm_label);
	store_rootkey_clear(&cur);

	r = secret_random_guarded(KEYPROV_RK_LEN, &rk);
	if (r < 0)
		return r;
	pthread_mutex_lock(&k->hsm_mu);
	r = keyprov_open(&k->hsm.prov, &kp);
	if (r >= 0)
		r = kr_hsm_wrap_checked(k, kp, row.hsm_label, row.hsm_version, rk, &row.blob, &row.blob_len);
	keyprov_close(TAKE_PTR(kp));
	pthread_mutex_unlock(&k->hsm_mu);
	if (r < 0)
		return r;
	r = store_rootkey_put(tx, &row);
	free(row.blob);
	if (r < 0)
		return r;

	pthread_rwlock_wrlock(&k->state);
	if (!k->rk)
		r = -EACCES;
	else if (k->n_rks == RK_LIVE_MAX)
		r = log_error_errno(-E2BIG, "%d root key versions are live; finish the running root rotation first",
				    RK_LIVE_MAX);
	else {
		secret_free(k->staged.key);
		k->staged = (struct rk_entry){ .version = row.version, .key = TAKE_PTR(rk) };
		*ret_from = row.version - 1;
		*ret_to = row.version;
	}
	pthread_rwlock_unlock(&k->state);
	return r;
}

void keyring_root_activate(struct keyring *k)
{
	pthread_rwlock_wrlock(&k->state);
	if (k->rk && k->staged.key && k->n_rks < RK_LIVE_MAX) {
		k->rks[k->n_rks++] = k->staged;
		k->rk = k->staged.key;
		k->rk_version = k->staged.version;
		k->staged = (struct rk_entry){0};
	}
	pthread_rwlock_unlock(&k->state);
}

void keyring_root_unstage(struct keyring *k)
{
	pthread_rwlock_wrlock(&k->state);
	secret_free(k->staged.key);
	k->staged = (struct rk_entry){0};
	pthread_rwlock_unlock(&k->state);
}

struct kek_rows {
	struct store_kek *rows;
	size_t n, cap;
};

static int kek_rows_one(const struct store_kek *kek, void *userdata)
{
	struct kek_rows *l = userdata;
	struct store_kek *d;

	if (l->n == l->cap)
		return -ENOBUFS;
	d = &l->rows[l->n];
	*d = *kek;
	d->blob = malloc(kek->blob_len);
	if (!d->blob)
		return -ENOMEM;
	memcpy(d->blob, kek->blob, kek->blob_len);
	l->n++;
	return 0;
}

int keyring_root_rewrap_batch(struct keyring *k, struct store_tx *tx, unsigned limit)
{
	struct kek_rows l = { .cap = limit };
	int r;

	l.rows = calloc(limit, sizeof(*l.rows));
	if (!l.rows)
		return -ENOMEM;
	pthread_rwlock_rdlock(&k->state);
	if (!k->rk) {
		r = -EACCES;
		goto out;
	}
	r = store_kek_list_old_rk(tx, k->rk_version, limit, kek_rows_one, &l);
	if (r < 0 && r != -ENOBUFS)
		goto out;
	r = 0;
	for (size_t i = 0; i < l.n; i++) {
		struct store_kek *row = &l.rows[i];
		_cleanup_free_ uint8_t *blob = NULL;
		struct secret *kek = NULL;
		const struct secret *old_rk = kr_rk_find(k, row->rk_version);
		size_t len;

		if (!old_rk) {
			r = log_error_errno(-EBADMSG, "KEK '%s' v%u is wrapped under root key v%u, which is not live",
					    row->tenant, row->version, row->rk_version);
			goto out;
		}
		r = envelope_unwrap_kek(old_rk, row->rk_version, row->tenant, row->version, row->blob,
					row->blob_len, &kek);
		if (r < 0)
			goto out;
		r = envelope_wrap_kek(k->rk, k->rk_version, row->tenant, row->version, kek, &blob, &len);
		/* The KEK itself is committed and unchanged: cache it, so a reader
		 * whose snapshot predates this batch seldom needs the old RK (only
		 * if the KEK is evicted before that reader comes; see kr_kek_load()). */
		{
			int q = kr_cache_put(k, row->tenant, row->version, kek, /* ret= */ NULL);
			if (q < 0 && r >= 0)
				r = q;
		}
		if (r >= 0)
			r = store_kek_rewrap(tx, row->tenant, row->version, k->rk_version, blob, len);
		if (r < 0)
			goto out;
	}
	r = (int)l.n;
out:
	pthread_rwlock_unlock(&k->state);
	for (size_t i = 0; i < l.n; i++)
		store_kek_clear(&l.rows[i]);
	free(l.rows);
	return r;
}

int keyring_root_finish(struct keyring *k, struct store_tx *tx)
{
	uint32_t current;
	int64_t left;

	pthread_rwlock_rdlock(&k->state);
	current = k->rk_version;
	pthread_rwlock_unlock(&k->state);
	if (!current)
		return -EACCES;
	left = store_kek_count_old_rk(tx, current);
	if (left != 0)
		return left < 0 ? (int)left : -EAGAIN;
	return store_rootkey_delete_below(tx, current);
}

void keyring_root_forget_old(struct keyring *k)
{
	size_t j = 0;

	pthread_rwlock_wrlock(&k->state);
	for (size_t i = 0; i < k->n_rks; i++) {
		if (k->rks[i].version == k->rk_version)
			k->rks[j++] = k->rks[i];
		else
			secret_free(k->rks[i].key);
	}
	for (size_t i = j; i < k->n_rks; i++)
		k->rks[i] = (struct rk_entry){0};
	k->n_rks = j;
	pthread_rwlock_unlock(&k->state);
}
