/* vaultd/access/identity.c: see identity.h. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <time.h>
#include "common/log.h"
#include "vaultd/access/authz.h"
#include "vaultd/access/identity.h"

void token_hash_hex(const uint8_t epoch[16], const char *token, size_t n, char ret[65])
{
	uint8_t h[32];

	crypto_generichash(h, sizeof(h), (const uint8_t *)token, n, epoch, 16);
	sodium_bin2hex(ret, 65, h, sizeof(h));
	sodium_memzero(h, sizeof(h));
}

int identity_of_token(struct store *s, struct store_tx *tx, const struct secret *key, const uint8_t epoch[16],
		      const char *token, size_t n, uid_t uid, struct principal *ret)
{
	struct store_token t = {0};
	struct store_user u = {0};
	int r;

	/* A token of an earlier epoch (before a lock, an unlock or a restart)
	 * hashes to a row that does not exist. */
	token_hash_hex(epoch, token, n, ret->token_hash);
	r = store_token_get(tx, ret->token_hash, &t);
	if (r == -ENOENT || (r == 0 && t.expires_at <= time(NULL)))
		return -EACCES;
	if (r < 0)
		return r;
	if (t.uid != (uint32_t)uid) {
		/* A token is bound to the uid that logged in: a copied token is
		 * useless to anyone else on the host. */
		log_warning("token of '%s' (uid %u) presented by uid %u", t.user, t.uid, (unsigned)uid);
		return -EPERM;
	}
	r = store_user_get(tx, t.user, &u);
	if (r == -ENOENT)
		return -EACCES;
	if (r < 0)
		return r;
	if (key && !authz_user_ok(key, &u)) {
		char what[96];
		snprintf(what, sizeof(what), "user '%s'", u.name);
		store_user_clear(&u);
		authz_note_tamper(s, what);
		return -EBADMSG;
	}
	ret->kind = PRINCIPAL_USER;
	snprintf(ret->name, sizeof(ret->name), "%s", u.name);
	r = principal_load_roles(s, tx, key, u.roles, ret);
	store_user_clear(&u);
	return r;
}

int identity_of_uid(struct store *s, struct store_tx *tx, const struct secret *key, uid_t uid,
		    struct principal *ret)
{
	struct store_service svc = {0};
	int r;

	r = store_service_get_by_uid(tx, (uint32_t)uid, &svc);
	if (r == -ENOENT) {
		ret->kind = PRINCIPAL_NONE;     /* unbound */
		return 0;
	}
	if (r < 0)
		return r;
	if (key && !authz_service_ok(key, &svc)) {
		char what[112];
		snprintf(what, sizeof(what), "service '%s' (uid %u)", svc.name, svc.uid);
		store_service_clear(&svc);
		authz_note_tamper(s, what);
		return -EBADMSG;
	}
	ret->kind = PRINCIPAL_SERVICE;
	snprintf(ret->name, sizeof(ret->name), "%s", svc.name);
	r = principal_load_roles(s, tx, key, svc.roles, ret);
	store_service_clear(&svc);
	return r;
}
