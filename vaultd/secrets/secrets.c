/* vaultd/secrets/secrets.c: see secrets.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "common/log.h"
#include "common/err.h"
#include "common/path.h"
#include "vaultd/secrets/secrets.h"

int secrets_write(const struct secrets_env *env, const struct secret_write *w, secrets_commit_fn commit,
		  void *userdata, struct secret_written *ret)
{
	char tenant[PATH_SEGMENT_MAX + 1];
	struct store_secret head = {0};
	struct store_version v = {0};
	struct store_tx *tx = NULL;
	struct secret_written out = {0};
	bool exists;
	int r;

	if (path_tenant(w->path, tenant) < 0)
		return -EINVAL;
	/* Committed in a transaction of its own before anything is sealed
	 * under it (keyring.h). */
	r = keyring_ensure_kek(env->keyring, env->store, tenant);
	if (r < 0)
		return r;

	r = store_write_begin(env->store, &tx);
	if (r < 0)
		return r;
	r = store_secret_get(tx, w->path, &head);
	if (r < 0 && r != -ENOENT)
		goto out;
	exists = r == 0;
	r = 0;
	if (exists) {
		out.current_version = head.deleted_at ? 0 : head.current_version;
		snprintf(out.type, sizeof(out.type), "%s", head.type);
	}
	if ((w->from_version || w->pending) && !exists)
		r = -ENOENT;
	else if ((w->from_version || w->pending) && head.deleted_at)
		r = -VLT_E_DELETED;
	else if (exists && !streq(head.type, w->type))
		r = -VLT_E_TYPE;
	else if (w->cas >= 0 && out.current_version != w->cas)
		r = -VLT_E_CAS;
	if (r < 0)
		goto out;
	out.version = exists ? head.latest_version + 1 : 1;
	if (out.version == 0) {
		r = -VLT_E_VERSIONS;
		goto out;
	}

	r = keyring_seal(env->keyring, tx, w->path, out.version, w->plain, &v, &out.kek_wraps);
	if (r >= 0)
		r = w->pending ? store_secret_put_pending(tx, w->path, w->metadata, &v)
			       : store_secret_put_version(tx, w->path, tenant, w->type, w->metadata, &v);
	if (r >= 0)
		r = store_secret_prune_versions(tx, w->path, env->keep_versions);
	/* The record commits with the change, or neither does. */
	if (r >= 0)
		r = commit(userdata, &tx);
out:
	store_tx_end(tx);
	store_secret_clear(&head);
	store_version_clear(&v);
	if (r >= 0 || r == -VLT_E_CAS || r == -VLT_E_TYPE)
		*ret = out;
	return r;
}

void secret_read_clear(struct secret_read *r)
{
	if (!r)
		return;
	store_secret_clear(&r->head);
	secret_free(r->plain);
	*r = (struct secret_read){0};
}

int secrets_read(const struct secrets_env *env, const char *path, uint32_t version, const char *stage,
		 struct secret_read *ret)
{
	struct secret_read out = {0};
	struct store_version v = {0};
	struct store_tx *tx = NULL;
	int r;

	r = store_read_begin(env->store, &tx);
	if (r < 0)
		return r;
	r = store_secret_get(tx, path, &out.head);
	if (r == 0 && out.head.deleted_at)
		r = -ENOENT;
	if (r == -ENOENT)
		out.missing = SECRET_MISSING_SECRET;
	if (r < 0)
		goto out;
	if (!version)
		version = !stage || streq(stage, "current") ? out.head.current_version
			  : streq(stage, "pending")	      ? out.head.pending_version
							      : out.head.previous_version;
	out.version = version;
	if (!version) {
		out.missing = SECRET_MISSING_STAGE;
		r = -ENOENT;
		goto out;
	}
	r = store_version_get(tx, path, version, &v);
	if (r == -ENOENT)
		out.missing = SECRET_MISSING_VERSION;
	if (r < 0)
		goto out;
	out.version_created_at = v.created_at;
	r = keyring_open(env->keyring, tx, path, &v, &out.plain);
	if (r == -ENOENT)
		out.missing = SECRET_MISSING_DESTROYED;
out:
	store_tx_end(tx);
	store_version_clear(&v);
	if (r >= 0) {
		*ret = out;
		return 0;
	}
	ret->missing = out.missing;
	ret->version = out.version;
	secret_read_clear(&out);
	return r;
}

int secrets_delete(const struct secrets_env *env, const char *path, bool destroy, secrets_commit_fn commit,
		   void *userdata)
{
	struct store_tx *tx = NULL;
	int r;

	r = store_write_begin(env->store, &tx);
	if (r < 0)
		return r;
	r = destroy ? store_secret_destroy(tx, path) : store_secret_soft_delete(tx, path, time(NULL));
	if (r >= 0)
		r = commit(userdata, &tx);
	store_tx_end(tx);
	if (r < 0 || !destroy)
		return r;
	/* Move the freed pages out of the WAL too, so the wrapped DEKs are gone
	 * from disk, not just unreferenced. */
	if (store_checkpoint(env->store) < 0)
		log_warning("checkpoint after destroying '%s' failed; the pages leave the WAL at the next one", path);
	log_info("destroyed '%s'", path);
	return 0;
}

int secrets_promote(const struct secrets_env *env, const char *path, uint32_t version, secrets_commit_fn commit,
		    void *userdata, struct store_secret *ret_head)
{
	struct store_secret head = {0};
	struct store_tx *tx = NULL;
	int r;

	r = store_write_begin(env->store, &tx);
	if (r < 0)
		return r;
	r = store_secret_promote(tx, path, version, time(NULL));
	if (r >= 0)
		r = store_secret_get(tx, path, &head);
	if (r >= 0)
		r = commit(userdata, &tx);
	store_tx_end(tx);
	if (r < 0) {
		store_secret_clear(&head);
		return r;
	}
	*ret_head = head;
	return 0;
}

int secrets_list(const struct secrets_env *env, const char *prefix, unsigned limit,
		 int (*cb)(const struct store_secret *s, void *userdata), void *userdata)
{
	struct store_tx *tx = NULL;
	int r;

	r = store_read_begin(env->store, &tx);
	if (r < 0)
		return r;
	r = store_secret_list(tx, prefix, limit, cb, userdata);
	store_tx_end(tx);
	return r;
}

int secrets_versions(const struct secrets_env *env, const char *path, struct store_secret *ret_head,
		     int (*cb)(const struct store_version *v, void *userdata), void *userdata)
{
	struct store_secret head = {0};
	struct store_tx *tx = NULL;
	int r;

	r = store_read_begin(env->store, &tx);
	if (r < 0)
		return r;
	r = store_secret_get(tx, path, &head);
	if (r >= 0) {
		/* The callback may look at the head (its stage names). */
		*ret_head = head;
		head = (struct store_secret){0};
		r = store_version_list(tx, path, cb, userdata);
		if (r < 0) {
			store_secret_clear(ret_head);
			*ret_head = (struct store_secret){0};
		}
	}
	store_tx_end(tx);
	store_secret_clear(&head);
	return r;
}
