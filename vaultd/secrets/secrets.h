/* vaultd/secrets/secrets.h: writing credentials, the rules and nothing of
 * HTTP: check-and-set, versioning, sealing under the tenant's KEK, staging,
 * pruning old versions. The caller's audit record commits with the write
 * (commit hook) or neither does.
 *
 * Errors (0 or -errno): -EINVAL a path without a tenant; -EACCES the vault
 * is locked; -ENOENT no secret at the path (a rollback, or staging, needs
 * one); -VLT_E_DELETED it is soft-deleted (same cases); -VLT_E_TYPE its type
 * differs; -VLT_E_CAS the current version is not w->cas; -VLT_E_VERSIONS no
 * version number left; storage and keyring errors pass through, and so does
 * whatever the commit hook returns. Threads: any.
 */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "common/secret.h"
#include "vaultd/keys/keyring.h"
#include "vaultd/store/store.h"

struct secrets_env {
	struct store *store;
	struct keyring *keyring;
	unsigned keep_versions;         /* [secrets] keep_versions */
};

struct secret_write {
	const char *path;               /* validated: "<tenant>/<rest>" */
	const char *type;               /* a known credential type (types.h) */
	const char *metadata;           /* JSON object text, or NULL to keep the current */
	const struct secret *plain;     /* the canonical data, borrowed */
	int64_t cas;                    /* < 0: no check; else the current version it must be (0: none) */
	uint32_t from_version;          /* rollback: the version copied (the secret must exist) */
	bool pending;                   /* staged, not current (the secret must exist) */
};

struct secret_written {
	uint32_t version;               /* the version written */
	uint64_t kek_wraps;             /* the tenant KEK's wrap count after it */
	/* Also filled for -VLT_E_CAS and -VLT_E_TYPE, to name what is there. */
	uint32_t current_version;
	char type[33];
};

/* Called inside the write transaction, just before it commits: the
 * request's audit record. < 0 refuses the write. */
typedef int (*secrets_commit_fn)(void *userdata, struct store_tx **tx);

int secrets_write(const struct secrets_env *env, const struct secret_write *w, secrets_commit_fn commit,
		  void *userdata, struct secret_written *ret);

/* ---- reading ---- */

enum secret_missing {
	SECRET_MISSING_NONE = 0,
	SECRET_MISSING_SECRET,          /* no live secret at the path */
	SECRET_MISSING_STAGE,           /* it has no version in the stage asked */
	SECRET_MISSING_VERSION,         /* it has no such version */
	SECRET_MISSING_DESTROYED,       /* the version was destroyed */
};

struct secret_read {
	struct store_secret head;       /* the secret's head row */
	uint32_t version;               /* the version read */
	int64_t version_created_at;
	struct secret *plain;           /* its data (guarded memory) */
	enum secret_missing missing;    /* why, for -ENOENT */
};
void secret_read_clear(struct secret_read *r);

/* Reads one version of path in a snapshot: 'version' (> 0), or else the
 * one in 'stage' ("current", "pending", "previous"; NULL: current). 0 with
 * *ret filled (the caller clears it); -ENOENT with ret->missing saying
 * what; -EACCES locked; -EBADMSG a row that fails authentication (tampered
 * with or moved); storage errors. */
int secrets_read(const struct secrets_env *env, const char *path, uint32_t version, const char *stage,
		 struct secret_read *ret);

/* ---- deleting, promoting ---- */

/* Soft-deletes path (its versions stay for rollback and destroy), or with
 * destroy deletes the head and every version row and checkpoints the WAL
 * so the wrapped keys are gone from disk too. -ENOENT if absent. */
int secrets_delete(const struct secrets_env *env, const char *path, bool destroy, secrets_commit_fn commit,
		   void *userdata);

/* Makes the pending version (or, version > 0, that pending version)
 * current. -ENOENT no live secret; -ESRCH no such pending version.
 * *ret_head: the head after it (caller clears it). */
int secrets_promote(const struct secrets_env *env, const char *path, uint32_t version, secrets_commit_fn commit,
		    void *userdata, struct store_secret *ret_head);

/* ---- listing ---- */

/* Live secrets under prefix ("" is every one), ordered by path, at most
 * limit, each handed to cb (borrowed for the call; the caller filters what
 * the principal may see). Returns the count or -errno. */
int secrets_list(const struct secrets_env *env, const char *prefix, unsigned limit,
		 int (*cb)(const struct store_secret *s, void *userdata), void *userdata);

/* The head of path (soft-deleted too) into *ret_head (caller clears it), then
 * each version row, ascending, to cb (no blobs; lengths 0 once destroyed).
 * -ENOENT if the path was never written or was destroyed. */
int secrets_versions(const struct secrets_env *env, const char *path, struct store_secret *ret_head,
		     int (*cb)(const struct store_version *v, void *userdata), void *userdata);
