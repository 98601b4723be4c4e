/* vaultd/audit.c: see audit.h. */
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/log.h"
#include "vaultd/audit.h"

#define HEAD_KEY "audit_head"
/* Set once, never cleared by vaultd: evidence that the anchored head was
 * gone or different when the anchor was about to move. */
#define TAMPER_KEY "audit_tamper"

static void put_field(crypto_hash_sha256_state *st, const void *p, size_t n)
{
	uint8_t len[4];

	put_be32(len, (uint32_t)n);
	crypto_hash_sha256_update(st, len, sizeof(len));
	crypto_hash_sha256_update(st, p, n);
}

static void put_str(crypto_hash_sha256_state *st, const char *s)
{
	/* NULL and "" differ: a path that is absent is not an empty path. */
	if (!s) {
		uint8_t none = 0xff;
		crypto_hash_sha256_update(st, &none, 1);
		return;
	}
	put_field(st, s, strlen(s));
}

static void put_i64(crypto_hash_sha256_state *st, int64_t v)
{
	uint8_t b[8];

	put_be32(b, (uint32_t)((uint64_t)v >> 32));
	put_be32(b + 4, (uint32_t)v);
	put_field(st, b, sizeof(b));
}

void audit_record_hash(const uint8_t prev[32], const struct store_audit *a, uint8_t out[32])
{
	crypto_hash_sha256_state st;

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const uint8_t *)"vaultd-audit-v1", 15);
	crypto_hash_sha256_update(&st, prev, 32);
	put_i64(&st, a->id);
	put_i64(&st, a->time);
	put_str(&st, a->principal);
	put_i64(&st, a->uid);
	put_i64(&st, a->pid);
	put_str(&st, a->action);
	put_str(&st, a->path);
	put_str(&st, a->capability);
	put_str(&st, a->result);
	put_i64(&st, a->status);
	put_str(&st, a->detail);
	put_str(&st, a->request_id);
	crypto_hash_sha256_final(&st, out);
}

static void head_mac(const struct secret *key, int64_t id, const uint8_t hash[32], char out[65])
{
	crypto_auth_hmacsha256_state st;
	uint8_t mac[crypto_auth_hmacsha256_BYTES], idb[8];

	put_be32(idb, (uint32_t)((uint64_t)id >> 32));
	put_be32(idb + 4, (uint32_t)id);
	crypto_auth_hmacsha256_init(&st, key->p, key->len);
	crypto_auth_hmacsha256_update(&st, idb, sizeof(idb));
	crypto_auth_hmacsha256_update(&st, hash, 32);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_bin2hex(out, 65, mac, sizeof(mac));
}

struct find_ctx {
	int64_t id;
	bool found;
	uint8_t hash[32];
};

static int find_one(const struct store_audit *a, void *userdata)
{
	struct find_ctx *f = userdata;

	if (a->id == f->id) {
		f->found = true;
		memcpy(f->hash, a->hash, 32);
	}
	return 0;
}

/* Before the anchor moves on, the record it names must still be there and
 * still be what was anchored: otherwise records were removed or rewritten
 * while the anchor could not watch (daemon stopped, vault locked), and new
 * records reusing their ids would hide it. Records the finding, once. */
static int check_old_anchor(struct store_tx *tx, const struct secret *mac_key)
{
	_cleanup_free_ char *head = NULL, *seen = NULL;
	struct store_audit_filter f = { .limit = 1 };
	struct find_ctx fc = {0};
	char mac[65], why[160];
	const char *colon;
	int r;

	r = store_meta_get(tx, HEAD_KEY, &head);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	colon = strchr(head, ':');
	fc.id = strtoll(head, NULL, 10);
	if (!colon || fc.id < 1)
		snprintf(why, sizeof(why), "the audit anchor was malformed");
	else {
		f.after_id = fc.id - 1;
		r = store_audit_query(tx, &f, find_one, &fc);
		if (r < 0)
			return r;
		if (!fc.found) {
			snprintf(why, sizeof(why), "anchored record %" PRId64 " was gone (log truncated)", fc.id);
		} else {
			head_mac(mac_key, fc.id, fc.hash, mac);
			if (strlen(colon + 1) == 64 && sodium_memcmp(mac, colon + 1, 64) == 0)
				return 0;
			snprintf(why, sizeof(why),
				 "anchored record %" PRId64 " was replaced (log truncated or rewritten)", fc.id);
		}
	}
	if (store_meta_get(tx, TAMPER_KEY, &seen) == 0)
		return 0;               /* keep the first finding */
	log_error("audit chain tampering detected: %s", why);
	return store_meta_set(tx, TAMPER_KEY, why);
}

static int anchor(struct store_tx *tx, const struct secret *mac_key, int64_t id, const uint8_t hash[32])
{
	char value[96], mac[65];
	int r;

	r = check_old_anchor(tx, mac_key);
	if (r < 0)
		return r;
	head_mac(mac_key, id, hash, mac);
	snprintf(value, sizeof(value), "%" PRId64 ":%s", id, mac);
	return store_meta_set(tx, HEAD_KEY, value);
}

int audit_reanchor(struct store_tx *tx, const struct secret *old_key, const struct secret *new_key)
{
	struct store_audit last = {0};
	char value[96], mac[65];
	int r;

	r = check_old_anchor(tx, old_key);
	if (r < 0)
		return r;
	r = store_audit_last(tx, &last);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	head_mac(new_key, last.id, last.hash, mac);
	snprintf(value, sizeof(value), "%" PRId64 ":%s", last.id, mac);
	store_audit_clear(&last);
	return store_meta_set(tx, HEAD_KEY, value);
}

int audit_anchor(struct store_tx *tx, const struct secret *mac_key)
{
	struct store_audit last = {0};
	int r;

	r = store_audit_last(tx, &last);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	r = anchor(tx, mac_key, last.id, last.hash);
	store_audit_clear(&last);
	return r;
}

static void copy(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "");
}

int audit_append(struct store_tx *tx, const struct audit_entry *e, const struct secret *mac_key,
		 struct store_audit *ret)
{
	struct store_audit last = {0}, rec = {0};
	uint8_t prev[32] = {0};
	int r;

	r = store_audit_last(tx, &last);
	if (r < 0 && r != -ENOENT)
		return r;
	if (r == 0) {
		memcpy(prev, last.hash, sizeof(prev));
		rec.id = last.id + 1;
	} else
		rec.id = 1;
	store_audit_clear(&last);

	rec.time = time(NULL);
	copy(rec.principal, sizeof(rec.principal), e->principal);
	rec.uid = (uint32_t)e->uid;
	rec.pid = (int32_t)e->pid;
	copy(rec.action, sizeof(rec.action), e->action);
	rec.path = (char *)e->path;
	copy(rec.capability, sizeof(rec.capability), e->capability);
	copy(rec.result, sizeof(rec.result), e->result);
	rec.status = e->status;
	rec.detail = (char *)e->detail;
	copy(rec.request_id, sizeof(rec.request_id), e->request_id);
	audit_record_hash(prev, &rec, rec.hash);

	r = store_audit_append(tx, &rec);
	if (r >= 0 && mac_key)
		r = anchor(tx, mac_key, rec.id, rec.hash);
	if (r >= 0 && ret)
		*ret = rec;
	return r;
}

/* "pruned records 1..N older than <time>; chain continues from hash <hex>" */
#define PRUNE_HASH_TAG "chain continues from hash "

int64_t audit_prune(struct store_tx *tx, int64_t before, char *detail, size_t detail_size)
{
	struct store_audit first = {0}, last = {0}, cut = {0};
	char hex[65], when[32];
	int64_t through, n;
	struct tm tm;
	time_t t = (time_t)before;
	int r;

	r = store_audit_last(tx, &last);
	if (r == 0)
		r = store_audit_first(tx, &first);
	if (r == 0)
		r = store_audit_last_before(tx, before, &cut);
	if (r < 0) {
		n = r == -ENOENT ? 0 : r;
		goto out;
	}
	/* The newest record stays: the chain and its anchor continue from it. */
	through = cut.id < last.id ? cut.id : last.id - 1;
	if (through < first.id) {
		n = 0;
		goto out;
	}
	if (through != cut.id) {
		store_audit_clear(&cut);
		struct store_audit_filter f = { .after_id = through - 1, .limit = 1 };
		struct find_ctx fc = { .id = through };
		r = store_audit_query(tx, &f, find_one, &fc);
		if (r < 0 || !fc.found) {
			n = r < 0 ? r : -EIO;
			goto out;
		}
		memcpy(cut.hash, fc.hash, 32);
	}
	sodium_bin2hex(hex, sizeof(hex), cut.hash, 32);
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	n = store_audit_delete_through(tx, through);
	if (n >= 0)
		snprintf(detail, detail_size, "pruned records %" PRId64 "..%" PRId64 " older than %s; " PRUNE_HASH_TAG "%s",
			 first.id, through, when, hex);
out:
	store_audit_clear(&first);
	store_audit_clear(&last);
	store_audit_clear(&cut);
	return n;
}

#define CHECKPOINTS_MAX 10000

struct checkpoint {
	int64_t through;
	uint8_t hash[32];
};

struct checkpoints {
	struct checkpoint *c;
	size_t n;
};

static int checkpoint_one(const struct store_audit *a, void *userdata)
{
	struct checkpoints *l = userdata;
	const char *d = a->detail, *h;
	long long first, through;

	/* Only the daemon writes these; anything else is not a checkpoint. */
	if (!d || !streq(a->principal, "system:vaultd") || sscanf(d, "pruned records %lld..%lld", &first, &through) != 2)
		return 0;
	h = strstr(d, PRUNE_HASH_TAG);
	if (!h || strlen(h + strlen(PRUNE_HASH_TAG)) != 64)
		return 0;
	if (sodium_hex2bin(l->c[l->n].hash, 32, h + strlen(PRUNE_HASH_TAG), 64, NULL, NULL, NULL) != 0)
		return 0;
	l->c[l->n++].through = through;
	return 0;
}

struct verify_ctx {
	struct audit_verify *v;
	const struct checkpoints *cps;
	uint8_t prev[32];
	int64_t expect_id;
	int64_t anchor_id;
	uint8_t anchor_hash[32];
	bool anchor_seen;
};

static int verify_one(const struct store_audit *a, void *userdata)
{
	struct verify_ctx *c = userdata;
	struct audit_verify *v = c->v;
	uint8_t h[32];

	v->records++;
	if (!v->ok)
		return 0;
	if (v->records == 1 && a->id != 1) {
		/* Retention pruned the start: a checkpoint must say where the
		 * chain continues from. */
		for (size_t i = 0; i < c->cps->n; i++)
			if (c->cps->c[i].through == a->id - 1) {
				memcpy(c->prev, c->cps->c[i].hash, 32);
				c->expect_id = a->id;
			}
		if (c->expect_id != a->id) {
			v->ok = false;
			v->first_broken = a->id;
			snprintf(v->reason, sizeof(v->reason), "records 1..%" PRId64
				 " are missing and no retention checkpoint covers them", a->id - 1);
			return 0;
		}
	}
	if (a->id != c->expect_id) {
		v->ok = false;
		v->first_broken = a->id;
		snprintf(v->reason, sizeof(v->reason), "record %" PRId64 " follows record %" PRId64
			 ": records are missing", a->id, c->expect_id - 1);
		return 0;
	}
	audit_record_hash(c->prev, a, h);
	if (sodium_memcmp(h, a->hash, 32) != 0) {
		v->ok = false;
		v->first_broken = a->id;
		snprintf(v->reason, sizeof(v->reason),
			 "record %" PRId64 " does not match its hash (edited, reordered, or a record before it was removed)",
			 a->id);
		return 0;
	}
	if (a->id == c->anchor_id) {
		memcpy(c->anchor_hash, a->hash, 32);
		c->anchor_seen = true;
	}
	memcpy(c->prev, a->hash, 32);
	c->expect_id++;
	return 0;
}

int audit_verify(struct store_tx *tx, const struct secret *mac_key, struct audit_verify *ret)
{
	struct audit_verify v = { .ok = true };
	struct checkpoints cps = {0};
	struct verify_ctx c = { .v = &v, .expect_id = 1, .cps = &cps };
	struct store_audit_filter f = { .action = AUDIT_PRUNE_ACTION, .limit = CHECKPOINTS_MAX };
	_cleanup_free_ char *head = NULL;
	char mac[65];
	const char *colon = NULL;
	int r;


	r = store_meta_get(tx, HEAD_KEY, &head);
	if (r < 0 && r != -ENOENT)
		return r;
	if (head) {
		colon = strchr(head, ':');
		c.anchor_id = strtoll(head, NULL, 10);
	}
	cps.c = calloc(CHECKPOINTS_MAX, sizeof(*cps.c));
	if (!cps.c)
		return -ENOMEM;
	r = store_audit_query(tx, &f, checkpoint_one, &cps);
	if (r >= 0)
		r = store_audit_iterate(tx, verify_one, &c);
	free(cps.c);
	if (r < 0)
		return r;
	{
		_cleanup_free_ char *tamper = NULL;
		if (v.ok && store_meta_get(tx, TAMPER_KEY, &tamper) == 0) {
			v.ok = false;
			v.first_broken = strtoll(tamper + strcspn(tamper, "0123456789"), NULL, 10);
			snprintf(v.reason, sizeof(v.reason), "%s", tamper);
		}
	}
	if (v.ok && mac_key && v.records > 0) {
		if (!head || !colon || c.anchor_id < 1) {
			v.ok = false;
			snprintf(v.reason, sizeof(v.reason), "the chain's anchor is missing");
		} else if (!c.anchor_seen) {
			v.ok = false;
			v.first_broken = c.anchor_id;
			snprintf(v.reason, sizeof(v.reason), "the anchored record %" PRId64 " is gone (log truncated?)",
				 c.anchor_id);
		} else {
			head_mac(mac_key, c.anchor_id, c.anchor_hash, mac);
			if (sodium_memcmp(mac, colon + 1, 64) != 0 || strlen(colon + 1) != 64) {
				v.ok = false;
				v.first_broken = c.anchor_id;
				snprintf(v.reason, sizeof(v.reason),
					 "the anchor does not authenticate record %" PRId64 " (chain rewritten?)",
					 c.anchor_id);
			} else
				v.anchored_through = c.anchor_id;
		}
	}
	*ret = v;
	return 0;
}
