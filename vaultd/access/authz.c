/* vaultd/access/authz.c: see authz.h. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/log.h"
#include "vaultd/access/authz.h"

static void put(crypto_auth_hmacsha256_state *st, const void *p, size_t n)
{
	uint8_t len[4];

	put_be32(len, (uint32_t)n);
	crypto_auth_hmacsha256_update(st, len, sizeof(len));
	crypto_auth_hmacsha256_update(st, p, n);
}

static void put_str(crypto_auth_hmacsha256_state *st, const char *s)
{
	put(st, s ? s : "", s ? strlen(s) : 0);
}

static void begin(crypto_auth_hmacsha256_state *st, const struct secret *key, const char *kind)
{
	crypto_auth_hmacsha256_init(st, key->p, key->len);
	put_str(st, "vaultd-authz-v1");
	put_str(st, kind);
}

static void finish(crypto_auth_hmacsha256_state *st, char out[65])
{
	uint8_t mac[crypto_auth_hmacsha256_BYTES];

	crypto_auth_hmacsha256_final(st, mac);
	sodium_bin2hex(out, 65, mac, sizeof(mac));
}

void authz_mac_user(const struct secret *key, const struct store_user *u, char out[65])
{
	crypto_auth_hmacsha256_state st;

	begin(&st, key, "user");
	put_str(&st, u->name);
	put_str(&st, u->phc);
	put_str(&st, u->roles);
	finish(&st, out);
}

void authz_mac_role(const struct secret *key, const struct store_role *r, char out[65])
{
	crypto_auth_hmacsha256_state st;

	begin(&st, key, "role");
	put_str(&st, r->name);
	put_str(&st, r->rules);
	finish(&st, out);
}

void authz_mac_service(const struct secret *key, const struct store_service *s, char out[65])
{
	crypto_auth_hmacsha256_state st;
	uint8_t uid[4];

	begin(&st, key, "service");
	put_str(&st, s->name);
	put_be32(uid, s->uid);
	put(&st, uid, sizeof(uid));
	put_str(&st, s->roles);
	finish(&st, out);
}

static bool same(const char *want, const char *have)
{
	return strlen(have) == 64 && sodium_memcmp(want, have, 64) == 0;
}

bool authz_user_ok(const struct secret *key, const struct store_user *u)
{
	char mac[65];

	authz_mac_user(key, u, mac);
	return same(mac, u->mac);
}

bool authz_role_ok(const struct secret *key, const struct store_role *r)
{
	char mac[65];

	authz_mac_role(key, r, mac);
	return same(mac, r->mac);
}

bool authz_service_ok(const struct secret *key, const struct store_service *s)
{
	char mac[65];

	authz_mac_service(key, s, mac);
	return same(mac, s->mac);
}

/* The rows are listed first (names only), then each is read whole and
 * rewritten: a running SELECT must not see the rows it changes. */
struct names {
	char (*v)[65];
	size_t n, cap;
};

static int names_add(struct names *l, const char *name)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		char(*v)[65] = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	snprintf(l->v[l->n++], 65, "%s", name);
	return 0;
}

static int user_name(const struct store_user *u, void *userdata)
{
	return names_add(userdata, u->name);
}

static int role_name(const struct store_role *r, void *userdata)
{
	return names_add(userdata, r->name);
}

static int service_name(const struct store_service *s, void *userdata)
{
	return names_add(userdata, s->name);
}

/* One row: checked (or adopted) and resealed. */
static int reseal(const struct secret *check_key, const struct secret *key, bool has_mac, bool ok_old,
		  bool ok_new, const char *kind, const char *name, int64_t *rows)
{
	if (check_key ? !ok_old : (has_mac && !ok_new)) {
		log_error("authorization row %s '%s' fails its seal: changed outside vaultd; not resealed", kind, name);
		return -EBADMSG;
	}
	if (!check_key && has_mac)
		return 0;               /* sealed already */
	(*rows)++;
	return 1;
}

int authz_seal_all(struct store_tx *tx, const struct secret *check_key, const struct secret *key,
		   int64_t *ret_rows)
{
	struct names users = {0}, roles = {0}, services = {0};
	int64_t rows = 0;
	int r;

	r = store_user_list(tx, user_name, &users);
	if (r >= 0)
		r = store_role_list(tx, role_name, &roles);
	if (r >= 0)
		r = store_service_list(tx, service_name, &services);
	for (size_t i = 0; r >= 0 && i < users.n; i++) {
		struct store_user u = {0};
		if ((r = store_user_get(tx, users.v[i], &u)) < 0)
			break;
		r = reseal(check_key, key, u.mac[0], check_key && authz_user_ok(check_key, &u), authz_user_ok(key, &u),
			   "user", u.name, &rows);
		if (r > 0) {
			authz_mac_user(key, &u, u.mac);
			r = store_user_put(tx, &u);
		}
		store_user_clear(&u);
	}
	for (size_t i = 0; r >= 0 && i < roles.n; i++) {
		struct store_role ro = {0};
		if ((r = store_role_get(tx, roles.v[i], &ro)) < 0)
			break;
		r = reseal(check_key, key, ro.mac[0], check_key && authz_role_ok(check_key, &ro),
			   authz_role_ok(key, &ro), "role", ro.name, &rows);
		if (r > 0) {
			authz_mac_role(key, &ro, ro.mac);
			r = store_role_put(tx, &ro);
		}
		store_role_clear(&ro);
	}
	for (size_t i = 0; r >= 0 && i < services.n; i++) {
		struct store_service sv = {0};
		if ((r = store_service_get(tx, services.v[i], &sv)) < 0)
			break;
		r = reseal(check_key, key, sv.mac[0], check_key && authz_service_ok(check_key, &sv),
			   authz_service_ok(key, &sv), "service", sv.name, &rows);
		if (r > 0) {
			authz_mac_service(key, &sv, sv.mac);
			r = store_service_put(tx, &sv);
		}
		store_service_clear(&sv);
	}
	free(users.v);
	free(roles.v);
	free(services.v);
	if (r < 0)
		return r;
	if (ret_rows)
		*ret_rows = rows;
	return 0;
}

void authz_note_tamper(struct store *s, const char *what)
{
	_cleanup_free_ char *seen = NULL;
	struct store_tx *tx = NULL;
	char why[192];

	log_error("authorization tampering detected: %s fails its seal (changed outside vaultd); refused", what);
	if (store_write_begin(s, &tx) < 0)
		return;
	snprintf(why, sizeof(why), "authorization row %s was changed outside vaultd", what);
	if (store_meta_get(tx, AUDIT_AUTHZ_TAMPER_KEY, &seen) == -ENOENT && store_meta_set(tx, AUDIT_AUTHZ_TAMPER_KEY, why) >= 0)
		(void)store_write_commit(TAKE_PTR(tx));
	store_tx_end(tx);
}
