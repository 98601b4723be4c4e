/* vaultd/keys/keyring_hsm.c: HSM-key rotation and retirement (keyring.h).
 *
 * Rotation rewraps every RK row and every user's MFA key under the next
 * version of the configured HSM key and lists the old version in meta
 * "hsm_retire"; retirement deletes the listed versions from the token. The
 * list has one reader, retire_parse(), and one writer, refs_format().
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/err.h"
#include "common/log.h"
#include "common/number.h"
#include "common/path.h"
#include "common/util.h"
#include "vaultd/keys/keyring.h"
#include "vaultd/keys/keyring_internal.h"

/* ---- the retire list ---- */

#define HSM_RETIRE_KEY "hsm_retire"
#define RETIRE_MAX 16
#define RETIRE_TEXT_MAX (RETIRE_MAX * (KEYPROV_LABEL_MAX + 12))

struct hsm_ref {
	char label[KEYPROV_LABEL_MAX + 1];
	uint32_t version;
};

/* meta "hsm_retire": "label:version" entries separated by spaces. */
static int retire_parse(const char *text, struct hsm_ref *refs, size_t *n)
{
	*n = 0;
	for (const char *p = text; *p;) {
		const char *e = strchrnul(p, ' '), *colon = memchr(p, ':', (size_t)(e - p));
		uint64_t v;

		if (e == p) {
			p++;
			continue;
		}
		if (!colon || colon == p || (size_t)(colon - p) > KEYPROV_LABEL_MAX || *n == RETIRE_MAX)
			return -EINVAL;
		if (number_parse_u64n(colon + 1, (size_t)(e - colon - 1), 1, UINT32_MAX, &v) < 0)
			return -EINVAL;
		snprintf(refs[*n].label, sizeof(refs[*n].label), "%.*s", (int)(colon - p), p);
		refs[*n].version = (uint32_t)v;
		(*n)++;
		p = *e ? e + 1 : e;
	}
	return 0;
}

static bool refs_has(const struct hsm_ref *refs, size_t n, const char *label, uint32_t version)
{
	for (size_t i = 0; i < n; i++)
		if (refs[i].version == version && streq(refs[i].label, label))
			return true;
	return false;
}

static int retire_add(struct hsm_ref *refs, size_t *n, const char *label, uint32_t version)
{
	if (refs_has(refs, *n, label, version))
		return 0;
	if (*n == RETIRE_MAX)
		return -E2BIG;
	snprintf(refs[*n].label, sizeof(refs[*n].label), "%s", label);
	refs[(*n)++].version = version;
	return 0;
}

/* The writer of retire_parse()'s format (also used in audit details). */
static void refs_format(const struct hsm_ref *refs, size_t n, char *text, size_t size)
{
	size_t used = 0;

	text[0] = '\0';
	for (size_t i = 0; i < n && used < size; i++)
		used += (size_t)snprintf(text + used, size - used, "%s%s:%" PRIu32, i ? " " : "", refs[i].label,
					 refs[i].version);
}

static int retire_store(struct store_tx *tx, const struct hsm_ref *refs, size_t n)
{
	char text[RETIRE_TEXT_MAX];

	refs_format(refs, n, text, sizeof(text));
	return store_meta_set(tx, HSM_RETIRE_KEY, text);
}

static int retire_load(struct store_tx *tx, struct hsm_ref *refs, size_t *n)
{
	_cleanup_free_ char *text = NULL;
	int r;

	*n = 0;
	r = store_meta_get(tx, HSM_RETIRE_KEY, &text);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	r = retire_parse(text, refs, n);
	if (r < 0)
		log_error("meta %s is malformed; ignoring it", HSM_RETIRE_KEY);
	return r;
}

/* ---- HSM-key rotation ---- */

struct mfa_rows {
	struct {
		char name[PATH_SEGMENT_MAX + 1];
		uint8_t *blob;
		size_t len;
	} *rows;
	size_t n, cap;
};

static int mfa_one(const char *name, const uint8_t *blob, size_t len, void *userdata)
{
	struct mfa_rows *l = userdata;
	void *p;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		p = reallocarray(l->rows, cap, sizeof(*l->rows));
		if (!p)
			return -ENOMEM;
		l->rows = p;
		l->cap = cap;
	}
	snprintf(l->rows[l->n].name, sizeof(l->rows[l->n].name), "%s", name);
	l->rows[l->n].blob = malloc(len);
	if (!l->rows[l->n].blob)
		return -ENOMEM;
	memcpy(l->rows[l->n].blob, blob, len);
	l->rows[l->n].len = len;
	l->n++;
	return 0;
}

static void mfa_rows_free(struct mfa_rows *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->rows[i].blob);
	free(l->rows);
	*l = (struct mfa_rows){0};
}

/* Rewraps, under (label, version), every RK row and MFA key blob that is
 * wrapped by another HSM key -- all of them (rotation), or only those under
 * a key in only[] (retirement sweep). Records each old key in retired[].
 * Caller holds the write tx, k->state shared, hsm_mu, and an open kp. */
static int rewrap_hsm_blobs(struct keyring *k, struct store_tx *tx, struct keyprov *kp, const char *label,
			    uint32_t version, const struct hsm_ref *only, size_t n_only, struct hsm_ref *retired,
			    size_t *n_retired, int64_t *ret_count)
{
	struct rk_rows rks = {0};
	struct mfa_rows users = {0};
	struct keyprov_blob b;
	int64_t count = 0;
	int r;

	r = store_rootkey_list(tx, kr_rk_rows_one, &rks);
	if (r >= 0)
		r = store_user_list_mfa_keys(tx, mfa_one, &users);
	for (size_t i = 0; r >= 0 && i < rks.n; i++) {
		struct store_rootkey *row = &rks.rows[i];
		const struct secret *rk = kr_rk_find(k, row->version);
		_cleanup_free_ uint8_t *blob = NULL;
		size_t len;

		if (row->hsm_version == version && streq(row->hsm_label, label))
			continue;
		if (only && !refs_has(only, n_only, row->hsm_label, row->hsm_version))
			continue;
		if (!rk && k->staged.key && k->staged.version == row->version)
			rk = k->staged.key;
		if (!rk) {
			r = log_error_errno(-EACCES, "root key v%u is not in memory", row->version);
			break;
		}
		r = kr_hsm_wrap_checked(k, kp, label, version, rk, &blob, &len);
		if (r >= 0)
			r = store_rootkey_rewrap(tx, row->version, label, version, blob, len);
		if (r >= 0)
			r = retire_add(retired, n_retired, row->hsm_label, row->hsm_version);
		count++;
	}
	for (size_t i = 0; r >= 0 && i < users.n; i++) {
		_cleanup_secret_ struct secret *key = NULL;
		_cleanup_free_ uint8_t *blob = NULL;
		size_t len;

		r = keyprov_blob_parse(users.rows[i].blob, users.rows[i].len, &b);
		if (r < 0)
			break;
		if (b.key_version == version && streq(b.label, label))
			continue;
		if (only && !refs_has(only, n_only, b.label, b.key_version))
			continue;
		r = keyprov_unwrap(kp, users.rows[i].blob, users.rows[i].len, &key);
		if (r < 0) {
			log_error_errno(r, "cannot unwrap the MFA key of user '%s'", users.rows[i].name);
			break;
		}
		r = keyprov_wrap(kp, label, version, k->hsm.mech, k->hsm.hash, key, &blob, &len);
		if (r >= 0)
			r = store_user_set_mfa_key(tx, users.rows[i].name, blob, len);
		if (r >= 0)
			r = retire_add(retired, n_retired, b.label, b.key_version);
		count++;
	}
	kr_rk_rows_clear(&rks);
	mfa_rows_free(&users);
	if (r >= 0 && ret_count)
		*ret_count = count;
	return r;
}

/* The HSM key version a rotation moves from (the current RK's) and to: past
 * every version in use or awaiting retirement, so a new key never takes the
 * CKA_ID of one that is about to be deleted. retired/n_retired: meta
 * "hsm_retire", for the caller to extend. */
static int hsm_next_version(struct store_tx *tx, struct hsm_ref *retired, size_t *n_retired,
			    uint32_t *ret_from, uint32_t *ret_to)
{
	struct rk_rows rks = {0};
	uint32_t to = 0;
	int r;

	r = retire_load(tx, retired, n_retired);
	if (r < 0)
		return r;
	r = store_rootkey_list(tx, kr_rk_rows_one, &rks);
	if (r < 0)
		return r;
	if (rks.n == 0) {
		kr_rk_rows_clear(&rks);
		return -ENOENT;
	}
	*ret_from = rks.rows[rks.n - 1].hsm_version;
	for (size_t i = 0; i < rks.n; i++)
		to = MAX(to, rks.rows[i].hsm_version);
	for (size_t i = 0; i < *n_retired; i++)
		to = MAX(to, retired[i].version);
	kr_rk_rows_clear(&rks);
	if (to == UINT32_MAX)
		return -EOVERFLOW;
	*ret_to = to + 1;
	return 0;
}

/* Opens the provider and finds key version `to` of the configured label,
 * generating it if the token does not hold it. Called with hsm_mu held. */
static int hsm_find_or_generate(struct keyring *k, uint32_t to, struct keyprov **ret)
{
	_cleanup_(keyprov_closep) struct keyprov *kp = NULL;
	int r;

	r = keyprov_open(&k->hsm.prov, &kp);
	if (r < 0)
		return r;
	r = keyprov_find(kp, k->hsm.key_label, to);
	if (r == -VLT_E_HSM_KEY_NOT_FOUND) {
		log_info("generating HSM key '%s' version %u", k->hsm.key_label, to);
		r = keyprov_generate(kp, k->hsm.key_label, to);
	}
	if (r < 0)
		return r;
	*ret = TAKE_PTR(kp);
	return 0;
}

/* HSM key rotation runs unlocked (the RK stays in memory, held shared)
 * and alone with the token (hsm_mu). -EACCES while locked. */
static int hsm_session_begin(struct keyring *k)
{
	pthread_rwlock_rdlock(&k->state);
	if (!k->rk) {
		pthread_rwlock_unlock(&k->state);
		return -EACCES;
	}
	pthread_mutex_lock(&k->hsm_mu);
	return 0;
}

static void hsm_session_end(struct keyring *k)
{
	pthread_mutex_unlock(&k->hsm_mu);
	pthread_rwlock_unlock(&k->state);
}

int keyring_hsm_prepare(struct keyring *k, struct store *s)
{
	_cleanup_(keyprov_closep) struct keyprov *kp = NULL;
	struct hsm_ref retired[RETIRE_MAX];
	struct store_tx *tx = NULL;
	size_t n_retired = 0;
	uint32_t from, to;
	int r;

	r = store_read_begin(s, &tx);
	if (r < 0)
		return r;
	r = hsm_next_version(tx, retired, &n_retired, &from, &to);
	store_tx_end(tx);
	if (r < 0)
		return r;
	r = hsm_session_begin(k);
	if (r < 0)
		return r;
	r = hsm_find_or_generate(k, to, &kp);
	keyprov_close(TAKE_PTR(kp));
	hsm_session_end(k);
	return r;
}

int keyring_hsm_rotate(struct keyring *k, struct store_tx *tx, uint32_t *ret_from, uint32_t *ret_to,
		       int64_t *ret_count)
{
	_cleanup_(keyprov_closep) struct keyprov *kp = NULL;
	struct hsm_ref retired[RETIRE_MAX];
	uint32_t from, to;
	size_t n_retired = 0;
	int r;

	r = hsm_next_version(tx, retired, &n_retired, &from, &to);
	if (r < 0)
		return r;

	r = hsm_session_begin(k);
	if (r < 0)
		return r;
	/* Normally keyring_hsm_prepare() made the key outside the transaction
	 * (or a rotation that crashed before its commit left it): found. */
	r = hsm_find_or_generate(k, to, &kp);
	if (r >= 0)
		r = rewrap_hsm_blobs(k, tx, kp, k->hsm.key_label, to, NULL, 0, retired, &n_retired, ret_count);
	if (r >= 0)
		r = retire_store(tx, retired, n_retired);
	keyprov_close(TAKE_PTR(kp));
	if (r >= 0) {
		/* New MFA keys go under the new HSM key from now on; if the
		 * commit fails they still unwrap, the key being in the token. */
		snprintf(k->hsm_label, sizeof(k->hsm_label), "%s", k->hsm.key_label);
		k->hsm_version = to;
		*ret_from = from;
		*ret_to = to;
	}
	hsm_session_end(k);
	return r;
}

/* ---- retirement ---- */

/* Retirement: the record of the keys about to leave the token commits with
 * the straggler rewrap, before any keyprov_destroy(), so a deletion never
 * happens without its record (the audit mirror included: with [audit]
 * jsonl_on_failure = refuse, a record the mirror did not take fails and
 * nothing is deleted). A side effect outside the database transaction gets
 * its "attempt" record first; the outcome follows in the transaction that
 * takes the deleted keys off the list. Only the keys deleted leave the list:
 * an HSM-key rotation may have committed a new entry in between (hsm_mu is
 * released before the last transaction, which needs the writer). */
int keyring_hsm_retire_audited(struct keyring *k, struct store *s, keyring_record_fn record, void *userdata,
			       json_t **ret_deleted)
{
	_cleanup_(keyprov_closep) struct keyprov *kp = NULL;
	_cleanup_json_ json_t *deleted = json_array();
	struct hsm_ref refs[RETIRE_MAX], swept[RETIRE_MAX], doomed[RETIRE_MAX], done[RETIRE_MAX];
	char text[RETIRE_TEXT_MAX] = "", detail[RETIRE_TEXT_MAX + 256];
	struct store_rootkey cur = {0};
	size_t n = 0, n_swept = 0, n_doomed = 0, n_done = 0;
	struct store_tx *tx = NULL;
	const struct hsm_ref *failed = NULL;
	int r, err = 0;

	if (!deleted)
		return -ENOMEM;
	r = store_write_begin(s, &tx);
	if (r < 0)
		return r;
	r = retire_load(tx, refs, &n);
	if (r < 0 || n == 0)
		goto out;
	pthread_rwlock_rdlock(&k->state);
	if (!k->rk) {
		pthread_rwlock_unlock(&k->state);
		r = -EACCES;
		goto out;
	}
	pthread_mutex_lock(&k->hsm_mu);
	r = store_rootkey_get_current(tx, &cur);
	if (r >= 0)
		r = keyprov_open(&k->hsm.prov, &kp);
	/* Stragglers first: a blob wrapped under an old key while the rotation
	 * ran (a user added meanwhile) must not be stranded. */
	if (r >= 0)
		r = rewrap_hsm_blobs(k, tx, kp, cur.hsm_label, cur.hsm_version, refs, n, swept, &n_swept, NULL);
	if (r >= 0) {
		/* The proof that the current HSM key works: it unwraps the
		 * current RK to the key in memory. */
		_cleanup_secret_ struct secret *check = NULL;
		r = keyprov_unwrap(kp, cur.blob, cur.blob_len, &check);
		if (r >= 0 && !secret_equal(check, k->rk))
			r = -VLT_E_HSM_UNWRAP;
		if (r < 0)
			log_error_errno(r, "the current HSM key does not unwrap the root key; keeping the old ones");
	}
	pthread_rwlock_unlock(&k->state);
	for (size_t i = 0; i < n; i++)
		if (refs[i].version != cur.hsm_version || !streq(refs[i].label, cur.hsm_label))
			doomed[n_doomed++] = refs[i];   /* never the key in use */
	if (r >= 0 && n_doomed > 0 && record) {
		refs_format(doomed, n_doomed, text, sizeof(text));
		snprintf(detail, sizeof(detail), "deleting HSM keys %s from the token", text);
		r = record(userdata, tx, "attempt", detail);
		if (r < 0)
			log_error_errno(r, "cannot record the retirement of HSM keys %s; deleting none", text);
	}
	if (r >= 0)
		r = store_write_commit(TAKE_PTR(tx));
	for (size_t i = 0; r >= 0 && i < n_doomed; i++) {
		err = keyprov_destroy(kp, doomed[i].label, doomed[i].version);
		if (err == -VLT_E_HSM_KEY_NOT_FOUND)
			err = 0;        /* deleted by an earlier, interrupted retirement */
		if (err < 0) {
			failed = &doomed[i];
			log_error_errno(err, "cannot delete retired HSM key '%s' version %u from the token",
					failed->label, failed->version);
			break;
		}
		log_notice("deleted retired HSM key '%s' version %u from the token", doomed[i].label,
			   doomed[i].version);
		json_array_append_new(deleted, json_pack("{s:s, s:i}", "label", doomed[i].label, "version",
							 (json_int_t)doomed[i].version));
		done[n_done++] = doomed[i];
	}
	keyprov_close(TAKE_PTR(kp));
	pthread_mutex_unlock(&k->hsm_mu);
	if (k->retire_hook)
		k->retire_hook(k->retire_hook_userdata);
	if (r < 0 || (n_done == 0 && !failed))
		goto out;

	refs_format(done, n_done, text, sizeof(text));
	r = store_write_begin(s, &tx);
	if (r >= 0) {
		struct hsm_ref now[RETIRE_MAX], keep[RETIRE_MAX];
		size_t n_now = 0, n_keep = 0;

		r = retire_load(tx, now, &n_now);
		for (size_t i = 0; r >= 0 && i < n_now; i++)
			if (!refs_has(done, n_done, now[i].label, now[i].version))
				keep[n_keep++] = now[i];
		if (r >= 0)
			r = retire_store(tx, keep, n_keep);
	}
	if (r >= 0 && record) {
		if (failed)
			snprintf(detail, sizeof(detail), "deleted HSM keys %s from the token; could not delete %s:%" PRIu32
				 ": %s", n_done ? text : "(none)", failed->label, failed->version, vlt_strerror(err));
		else
			snprintf(detail, sizeof(detail), "deleted HSM keys %s from the token", text);
		r = record(userdata, tx, failed ? "failed" : "allowed", detail);
	}
	if (r >= 0)
		r = store_write_commit(TAKE_PTR(tx));
	if (r < 0 && n_done > 0)
		/* Still listed: the next retirement finds them gone and records it. */
		log_error_errno(r, "cannot record the deletion of HSM keys %s", text);
	if (r >= 0 && failed)
		r = err;
out:
	store_tx_end(tx);
	store_rootkey_clear(&cur);
	if (r >= 0 && ret_deleted)
		*ret_deleted = TAKE_PTR(deleted);
	return r;
}

int keyring_hsm_retire(struct keyring *k, struct store *s, json_t **ret_deleted)
{
	return keyring_hsm_retire_audited(k, s, /* record= */ NULL, NULL, ret_deleted);
}

/* ---- for tests ---- */

void keyring_set_retire_hook(struct keyring *k, void (*fn)(void *userdata), void *userdata)
{
	k->retire_hook = fn;
	k->retire_hook_userdata = userdata;
}
