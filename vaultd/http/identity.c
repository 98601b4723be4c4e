/* vaultd/identity.c: who is calling (bearer token or service binding) and
 * the roles that decide what they may do. See api_internal.h.
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <time.h>
#include "common/json.h"
#include "common/log.h"
#include "vaultd/http/api_internal.h"
#include "vaultd/core/vault.h"
#include "vaultd/access/authz.h"
#include "vaultd/access/identity.h"
#include "vaultd/keys/keyring.h"
#include "vaultd/store/store.h"

#define BEARER "Bearer "

int identity_resolve(struct api *a, struct call *c, json_t **ret_body)
{
	_cleanup_secret_ struct secret *key = NULL;
	const char *auth = c->req->authorization;
	struct store_tx *tx = NULL;
	uint8_t epoch[16];
	int r, status = 0;

	/* The seal is checked whenever it can be: while unlocked (authz.h). */
	(void)keyring_authz_key(a->keyring, &key);

	r = store_read_begin(a->store, &tx);
	if (r < 0)
		return reply_store_busy_or_internal(ret_body, c->req, r, "begin read");
	if (auth) {
		size_t n = strlen(auth);
		if (n <= strlen(BEARER) || strncmp(auth, BEARER, strlen(BEARER)) != 0) {
			status = reply_error(ret_body, 401, "unauthorized", "Authorization must be 'Bearer <token>'");
			goto out;
		}
		vault_epoch_get(a->v, epoch);
		r = identity_of_token(a->store, tx, key, epoch, auth + strlen(BEARER), n - strlen(BEARER), c->req->uid,
				      &c->who);
		sodium_memzero(epoch, sizeof(epoch));
		if (r == -EACCES)
			status = reply_error(ret_body, 401, "unauthorized",
					     "the token is invalid, expired or revoked; log in again");
		else if (r == -EPERM)
			status = reply_error(ret_body, 401, "unauthorized", "the token belongs to another uid");
		else if (r == -EBADMSG)
			status = reply_error(ret_body, 401, "unauthorized",
					     "the token's user fails the authorization seal; see the daemon log");
		else if (r < 0)
			status = reply_store_busy_or_internal(ret_body, c->req, r, "resolve the token");
		goto out;
	}
	r = identity_of_uid(a->store, tx, key, c->req->uid, &c->who);
	if (r == -EBADMSG)
		status = reply_error(ret_body, 403, "forbidden", "the binding of uid %u fails the authorization seal; "
				     "see the daemon log", (unsigned)c->req->uid);
	else if (r < 0)
		status = reply_store_busy_or_internal(ret_body, c->req, r, "resolve the uid");
out:
	if (status)
		principal_clear(&c->who);
	store_tx_end(tx);
	return status;
}
