/* vaultd/audit/audit.c: see audit.h. */
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/log.h"
#include "common/number.h"
#include "vaultd/audit/audit.h"

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

/* ---- the formats: one parser each (anchor, checkpoint) ---- */

/* Strict decimal id in [1, INT64_MAX], no leading zero, ending at 'stop'
 * (which it skips). */
static int parse_id(const char **p, char stop, int64_t *ret)
{
	const char *s = *p;
	size_t n = strspn(s, "0123456789");
	uint64_t v;
	int r;

	if (n == 0 || s[n] != stop || (n > 1 && s[0] == '0'))
		return -EINVAL;
	if ((r = number_parse_u64n(s, n, 1, INT64_MAX, &v)) < 0)
		return r;
	*p = s + n + (stop ? 1 : 0);
	*ret = (int64_t)v;
	return 0;
}

static int parse_mac(const char *s, uint8_t out[32])
{
	size_t n = 0;

	/* Exactly 64 hex digits and nothing after: the length is checked
	 * before a byte is compared. */
	if (strlen(s) != 64 || sodium_hex2bin(out, 32, s, 64, NULL, &n, NULL) != 0 || n != 32)
		return -EINVAL;
	return 0;
}

int audit_anchor_parse(const char *text, struct audit_anchor *ret)
{
	struct audit_anchor a = {0};
	const char *p = text;
	int r;

	if (!text)
		return -EINVAL;
	if (strncmp(p, "v2:", 3) == 0) {
		p += 3;
		a.version = 2;
		if ((r = parse_id(&p, ':', &a.first)) < 0 || (r = parse_id(&p, ':', &a.id)) < 0)
			return r;
		if (a.first > a.id)
			return -EINVAL;
	} else {
		a.version = 1;
		if ((r = parse_id(&p, ':', &a.id)) < 0)
			return r;
	}
	if ((r = parse_mac(p, a.mac)) < 0)
		return r;
	*ret = a;
	return 0;
}

/* "pruned records A..B older than T; chain continues from hash H; mac M" */
#define PRUNE_HASH_TAG "; chain continues from hash "
#define PRUNE_MAC_TAG "; mac "

int audit_checkpoint_parse(const char *detail, struct audit_checkpoint *ret)
{
	struct audit_checkpoint c = {0};
	const char *p = detail, *h, *m;
	char hex[65];
	size_t n = 0;

	if (!p || strncmp(p, "pruned records ", 15) != 0)
		return -EINVAL;
	p += 15;
	if (parse_id(&p, '.', &c.first) < 0 || *p++ != '.' || parse_id(&p, ' ', &c.through) < 0 ||
	    c.first > c.through)
		return -EINVAL;
	h = strstr(p, PRUNE_HASH_TAG);
	if (!h)
		return -EINVAL;
	h += strlen(PRUNE_HASH_TAG);
	m = strstr(h, PRUNE_MAC_TAG);
	if (!m || m - h != 64)
		return -EINVAL;
	memcpy(hex, h, 64);
	hex[64] = '\0';
	if (sodium_hex2bin(c.hash, 32, hex, 64, NULL, &n, NULL) != 0 || n != 32)
		return -EINVAL;
	if (parse_mac(m + strlen(PRUNE_MAC_TAG), c.mac) < 0)
		return -EINVAL;
	*ret = c;
	return 0;
}

/* ---- MACs under the audit key ---- */

static void put_be64(uint8_t b[8], int64_t v)
{
	put_be32(b, (uint32_t)((uint64_t)v >> 32));
	put_be32(b + 4, (uint32_t)v);
}

/* v1, from vaults made before the first retained id and the authorization
 * seal were bound: HMAC(id || hash). Read, never written. */
static void anchor_mac_v1(const struct secret *key, int64_t id, const uint8_t hash[32], uint8_t out[32])
{
	crypto_auth_hmacsha256_state st;
	uint8_t idb[8];

	put_be64(idb, id);
	crypto_auth_hmacsha256_init(&st, key->p, key->len);
	crypto_auth_hmacsha256_update(&st, idb, sizeof(idb));
	crypto_auth_hmacsha256_update(&st, hash, 32);
	crypto_auth_hmacsha256_final(&st, out);
}

static void anchor_mac_v2(const struct secret *key, int64_t first, int64_t id, const uint8_t hash[32], bool sealed,
			  uint8_t out[32])
{
	crypto_auth_hmacsha256_state st;
	uint8_t b[8], flag = sealed ? 1 : 0;

	crypto_auth_hmacsha256_init(&st, key->p, key->len);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)"vaultd-audit-anchor-v2", 22);
	put_be64(b, first);
	crypto_auth_hmacsha256_update(&st, b, sizeof(b));
	put_be64(b, id);
	crypto_auth_hmacsha256_update(&st, b, sizeof(b));
	crypto_auth_hmacsha256_update(&st, hash, 32);
	crypto_auth_hmacsha256_update(&st, &flag, 1);
	crypto_auth_hmacsha256_final(&st, out);
}

static void checkpoint_mac(const struct secret *key, int64_t first, int64_t through, const uint8_t hash[32],
			   uint8_t out[32])
{
	crypto_auth_hmacsha256_state st;
	uint8_t b[8];

	crypto_auth_hmacsha256_init(&st, key->p, key->len);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)"vaultd-audit-checkpoint-v1", 26);
	put_be64(b, first);
	crypto_auth_hmacsha256_update(&st, b, sizeof(b));
	put_be64(b, through);
	crypto_auth_hmacsha256_update(&st, b, sizeof(b));
	crypto_auth_hmacsha256_update(&st, hash, 32);
	crypto_auth_hmacsha256_final(&st, out);
}

bool audit_checkpoint_authentic(const struct secret *key, const struct audit_checkpoint *c)
{
	uint8_t mac[32];

	checkpoint_mac(key, c->first, c->through, c->hash, mac);
	return sodium_memcmp(mac, c->mac, 32) == 0;
}

/* ---- vault state the anchor binds ---- */

static int is_initialised(struct store_tx *tx)
{
	struct store_rootkey rk = {0};
	int r = store_rootkey_get_current(tx, &rk);

	store_rootkey_clear(&rk);
	return r == 0 ? 1 : r == -ENOENT ? 0 : r;
}

int audit_authz_sealed(struct store_tx *tx)
{
	_cleanup_free_ char *v = NULL;
	int r = store_meta_get(tx, AUDIT_AUTHZ_SEALED_KEY, &v);

	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	return streq(v, "1");
}

static int record_hash(struct store_tx *tx, int64_t id, bool *ret_found, uint8_t hash[32])
{
	struct store_audit a = {0};
	int r = store_audit_get(tx, id, &a);

	if (r == -ENOENT) {
		*ret_found = false;
		return 0;
	}
	if (r < 0)
		return r;
	*ret_found = true;
	memcpy(hash, a.hash, 32);
	store_audit_clear(&a);
	return 0;
}

struct newest_cp {
	const struct secret *key;
	bool found, authentic;
	struct audit_checkpoint c;
};

static int newest_cp_one(const struct store_audit *a, void *userdata)
{
	struct newest_cp *n = userdata;

	if (n->found || !streq(a->principal, AUDIT_SYSTEM_PRINCIPAL) || audit_checkpoint_parse(a->detail, &n->c) < 0)
		return 0;
	n->found = true;
	n->authentic = audit_checkpoint_authentic(n->key, &n->c);
	return 0;
}

/* The records before 'first' are accounted for: there are none (first is
 * 1), or the newest retention checkpoint is authentic and ends at first - 1. */
static int start_accounted(struct store_tx *tx, const struct secret *key, int64_t first, bool *ret)
{
	struct store_audit_filter f = { .action = AUDIT_PRUNE_ACTION, .limit = 16, .descending = true };
	struct newest_cp n = { .key = key };
	int r;

	if (first <= 1) {
		*ret = true;
		return 0;
	}
	r = store_audit_query(tx, &f, newest_cp_one, &n);
	if (r < 0)
		return r;
	*ret = n.found && n.authentic && n.c.through == first - 1;
	return 0;
}

/* Before the anchor moves on, the record it names must still be there and
 * still be what was anchored, and the log must still start where the anchor
 * (or an authentic retention checkpoint) says: otherwise records were
 * removed or rewritten while the anchor could not watch (daemon stopped,
 * vault locked), and new records reusing their ids would hide it. A vault
 * that holds a root key always has an anchor (init writes the first one),
 * so a missing one is a wiped log. Records the finding, once. */
static int audit_start_check(struct store_tx *tx, const struct secret *mac_key, int64_t anchored_first, char *why,
			     size_t why_size);

static int check_old_anchor(struct store_tx *tx, const struct secret *mac_key)
{
	_cleanup_free_ char *head = NULL, *seen = NULL;
	struct audit_anchor an;
	uint8_t hash[32], mac[32];
	char why[160];
	bool found = false, ok = false;
	int r, sealed;

	r = store_meta_get(tx, HEAD_KEY, &head);
	if (r < 0 && r != -ENOENT)
		return r;
	if (r == -ENOENT) {
		r = is_initialised(tx);
		if (r <= 0)
			return r;       /* not initialised yet: init writes the first anchor */
		snprintf(why, sizeof(why), "the audit anchor was missing on an initialised vault (log wiped?)");
	} else if (audit_anchor_parse(head, &an) < 0) {
		snprintf(why, sizeof(why), "the audit anchor was malformed");
	} else if ((r = record_hash(tx, an.id, &found, hash)) < 0) {
		return r;
	} else if (!found) {
		snprintf(why, sizeof(why), "anchored record %" PRId64 " was gone (log truncated)", an.id);
	} else {
		if ((sealed = audit_authz_sealed(tx)) < 0)
			return sealed;
		if (an.version == 1) {
			/* Legacy anchors only on a vault that never wrote a
			 * v2 one: sealing writes v2. */
			anchor_mac_v1(mac_key, an.id, hash, mac);
			ok = !sealed && sodium_memcmp(mac, an.mac, 32) == 0;
		} else {
			anchor_mac_v2(mac_key, an.first, an.id, hash, sealed, mac);
			ok = sodium_memcmp(mac, an.mac, 32) == 0;
		}
		if (!ok)
			snprintf(why, sizeof(why),
				 "anchored record %" PRId64 " was replaced (log truncated or rewritten)", an.id);
		else if (an.version == 2 && (r = audit_start_check(tx, mac_key, an.first, why, sizeof(why))) != 0) {
			if (r < 0)
				return r;
			ok = false;
		}
		if (ok)
			return 0;
	}
	if (store_meta_get(tx, TAMPER_KEY, &seen) == 0)
		return 0;               /* keep the first finding */
	log_error("audit chain tampering detected: %s", why);
	return store_meta_set(tx, TAMPER_KEY, why);
}

/* 0 if the log starts at anchored_first, or later with every record before
 * it accounted for by an authentic checkpoint; 1 with why filled if not. */
static int audit_start_check(struct store_tx *tx, const struct secret *mac_key, int64_t anchored_first, char *why,
			     size_t why_size)
{
	struct store_audit first = {0};
	bool accounted = false;
	int r;

	int64_t first_id;

	r = store_audit_first(tx, &first);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	first_id = first.id;
	store_audit_clear(&first);
	if (first_id == anchored_first)
		return 0;
	if (first_id > anchored_first) {
		r = start_accounted(tx, mac_key, first_id, &accounted);
		if (r < 0)
			return r;
		if (accounted)
			return 0;
	}
	snprintf(why, why_size, "the log starts at record %" PRId64 ", not at %" PRId64
		 " as anchored, and no authentic retention checkpoint covers the difference", first_id, anchored_first);
	return 1;
}

/* Writes the v2 anchor for (id, hash) under key, after checking the old one
 * under check_key (NULL: no check). */
static int anchor_under(struct store_tx *tx, const struct secret *check_key, const struct secret *key, int64_t id,
			const uint8_t hash[32])
{
	struct store_audit first = {0};
	char value[160], hex[65];
	uint8_t mac[32];
	int64_t first_id;
	int r, sealed;

	if (check_key && (r = check_old_anchor(tx, check_key)) < 0)
		return r;
	r = store_audit_first(tx, &first);
	if (r < 0)
		return r;
	first_id = first.id;
	store_audit_clear(&first);
	sealed = audit_authz_sealed(tx);
	if (sealed < 0)
		return sealed;
	anchor_mac_v2(key, first_id, id, hash, sealed, mac);
	sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac));
	snprintf(value, sizeof(value), "v2:%" PRId64 ":%" PRId64 ":%s", first_id, id, hex);
	return store_meta_set(tx, HEAD_KEY, value);
}

int audit_reanchor(struct store_tx *tx, const struct secret *old_key, const struct secret *new_key)
{
	struct store_audit last = {0};
	int r;

	r = store_audit_last(tx, &last);
	if (r == -ENOENT)
		return check_old_anchor(tx, old_key);
	if (r < 0)
		return r;
	r = anchor_under(tx, old_key, new_key, last.id, last.hash);
	store_audit_clear(&last);
	return r;
}

int audit_anchor(struct store_tx *tx, const struct secret *mac_key)
{
	return audit_reanchor(tx, mac_key, mac_key);
}

int audit_check_anchor(struct store_tx *tx, const struct secret *mac_key)
{
	_cleanup_free_ char *seen = NULL;
	int r = check_old_anchor(tx, mac_key);

	if (r < 0)
		return r;
	r = store_meta_get(tx, TAMPER_KEY, &seen);
	return r == 0 ? 1 : r == -ENOENT ? 0 : r;
}

int audit_seal_authz(struct store_tx *tx, const struct secret *mac_key)
{
	struct store_audit last = {0};
	int r;

	/* The old anchor is checked under the old flag and the new one
	 * written under the new, so a flag cleared behind vaultd's back
	 * breaks the anchor: that is how a stripped seal is noticed. */
	r = check_old_anchor(tx, mac_key);
	if (r >= 0)
		r = store_meta_set(tx, AUDIT_AUTHZ_SEALED_KEY, "1");
	if (r < 0)
		return r;
	r = store_audit_last(tx, &last);
	if (r == -ENOENT)
		return 0;
	if (r >= 0)
		r = anchor_under(tx, NULL, mac_key, last.id, last.hash);
	store_audit_clear(&last);
	return r;
}

/* Audit text is printable ASCII: anything else (control characters, every
 * byte >= 0x80, '%' itself) is percent-escaped, so a record can neither
 * break JSON nor reach an auditor's terminal as an escape sequence.
 * Truncates at n - 1 bytes, never inside an escape. */
static void escape(char *dst, size_t n, const char *src, bool percent)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	if (n == 0)
		return;
	for (const unsigned char *p = (const unsigned char *)(src ? src : ""); *p; p++) {
		if (*p >= 0x20 && *p < 0x7f && (*p != '%' || !percent)) {
			if (o + 1 >= n)
				break;
			dst[o++] = (char)*p;
		} else {
			if (o + 3 >= n)
				break;
			dst[o++] = '%';
			dst[o++] = hex[*p >> 4];
			dst[o++] = hex[*p & 15];
		}
	}
	dst[o] = '\0';
}

void audit_text_escape(char *dst, size_t n, const char *src)
{
	escape(dst, n, src, true);
}

void audit_text_printable(char *dst, size_t n, const char *src)
{
	escape(dst, n, src, false);
}

static char *escape_dup(const char *src, bool percent)
{
	size_t n;
	char *d;

	if (!src)
		return NULL;
	n = strlen(src) * 3 + 1;
	d = malloc(n);
	if (d)
		escape(d, n, src, percent);
	return d;
}

char *audit_text_escape_dup(const char *src)
{
	return escape_dup(src, true);
}

char *audit_text_printable_dup(const char *src)
{
	return escape_dup(src, false);
}

static int append(struct store_tx *tx, const struct audit_entry *e, const struct secret *check_key,
		  const struct secret *mac_key, struct store_audit *ret);

int audit_append(struct store_tx *tx, const struct audit_entry *e, const struct secret *mac_key,
		 struct store_audit *ret)
{
	return append(tx, e, mac_key, mac_key, ret);
}

int audit_append_genesis(struct store_tx *tx, const struct audit_entry *e, const struct secret *mac_key,
			 struct store_audit *ret)
{
	_cleanup_free_ char *head = NULL;
	int r;

	/* Requests made to the uninitialised vault may be in the chain
	 * already: this first anchor covers them too. */
	r = store_meta_get(tx, HEAD_KEY, &head);
	if (r != -ENOENT)
		return r < 0 ? r : -EEXIST;
	return append(tx, e, NULL, mac_key, ret);
}

static int append(struct store_tx *tx, const struct audit_entry *e, const struct secret *check_key,
		  const struct secret *mac_key, struct store_audit *ret)
{
	struct store_audit last = {0}, rec = {0};
	_cleanup_free_ char *path = NULL, *detail = NULL;
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

	path = audit_text_escape_dup(e->path);
	detail = audit_text_escape_dup(e->detail);
	if ((e->path && !path) || (e->detail && !detail))
		return -ENOMEM;
	rec.time = time(NULL);
	audit_text_escape(rec.principal, sizeof(rec.principal), e->principal);
	rec.uid = (uint32_t)e->uid;
	rec.pid = (int32_t)e->pid;
	audit_text_escape(rec.action, sizeof(rec.action), e->action);
	rec.path = path;
	audit_text_escape(rec.capability, sizeof(rec.capability), e->capability);
	audit_text_escape(rec.result, sizeof(rec.result), e->result);
	rec.status = e->status;
	rec.detail = detail;
	audit_text_escape(rec.request_id, sizeof(rec.request_id), e->request_id);
	audit_record_hash(prev, &rec, rec.hash);

	r = store_audit_append(tx, &rec);
	if (r >= 0 && mac_key)
		r = anchor_under(tx, check_key, mac_key, rec.id, rec.hash);
	if (r >= 0 && ret) {
		rec.path = TAKE_PTR(path);
		rec.detail = TAKE_PTR(detail);
		*ret = rec;             /* the caller clears it */
	}
	return r;
}

int64_t audit_prune(struct store_tx *tx, int64_t before, const struct secret *mac_key, char *detail,
		    size_t detail_size)
{
	struct store_audit first = {0}, last = {0}, cut = {0};
	char hex[65], machex[65], when[32];
	uint8_t mac[32];
	int64_t through, n;
	struct tm tm;
	time_t t = (time_t)before;
	bool found = false;
	int r;

	if (!mac_key)
		return -EACCES;
	/* The anchor is proven before the start moves: pruning must never
	 * launder a truncation made while vaultd was not watching. */
	r = check_old_anchor(tx, mac_key);
	if (r >= 0)
		r = store_audit_last(tx, &last);
	if (r >= 0)
		r = store_audit_first(tx, &first);
	if (r >= 0)
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
	r = record_hash(tx, through, &found, cut.hash);
	if (r < 0 || !found) {
		n = r < 0 ? r : -EIO;
		goto out;
	}
	sodium_bin2hex(hex, sizeof(hex), cut.hash, 32);
	checkpoint_mac(mac_key, first.id, through, cut.hash, mac);
	sodium_bin2hex(machex, sizeof(machex), mac, sizeof(mac));
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	n = store_audit_delete_through(tx, through);
	if (n >= 0)
		snprintf(detail, detail_size,
			 "pruned records %" PRId64 "..%" PRId64 " older than %s" PRUNE_HASH_TAG "%s" PRUNE_MAC_TAG "%s",
			 first.id, through, when, hex, machex);
out:
	store_audit_clear(&first);
	store_audit_clear(&last);
	store_audit_clear(&cut);
	return n;
}

#define CHECKPOINTS_MAX 10000

struct checkpoints {
	const struct secret *key;
	struct audit_checkpoint *c;
	size_t n;
};

static int checkpoint_one(const struct store_audit *a, void *userdata)
{
	struct checkpoints *l = userdata;
	struct audit_checkpoint c;

	/* Only the daemon writes these, and only with the audit key: anything
	 * else is not a checkpoint, whatever its text says. */
	if (l->n >= CHECKPOINTS_MAX || !streq(a->principal, AUDIT_SYSTEM_PRINCIPAL) ||
	    audit_checkpoint_parse(a->detail, &c) < 0 || !audit_checkpoint_authentic(l->key, &c))
		return 0;
	l->c[l->n++] = c;
	return 0;
}

struct verify_ctx {
	struct audit_verify *v;
	const struct checkpoints *cps;
	uint8_t prev[32];
	int64_t expect_id;
	int64_t first_id;
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
	if (v->records == 1) {
		c->first_id = a->id;
		if (a->id != 1) {
			/* Retention pruned the start: an authentic checkpoint
			 * must say where the chain continues from. */
			for (size_t i = 0; c->cps && i < c->cps->n; i++)
				if (c->cps->c[i].through == a->id - 1) {
					memcpy(c->prev, c->cps->c[i].hash, 32);
					c->expect_id = a->id;
				}
			if (c->expect_id != a->id) {
				v->ok = false;
				v->first_broken = a->id;
				snprintf(v->reason, sizeof(v->reason), "records 1..%" PRId64
					 " are missing and no authentic retention checkpoint covers them", a->id - 1);
				return 0;
			}
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

static void broken(struct audit_verify *v, int64_t id, const char *why)
{
	v->ok = false;
	v->first_broken = id;
	snprintf(v->reason, sizeof(v->reason), "%s", why);
}

/* The anchor, once the chain itself checked out. */
static int verify_anchor(struct store_tx *tx, const struct secret *mac_key, const char *head,
			 const struct verify_ctx *c, struct audit_verify *v)
{
	struct audit_anchor an;
	uint8_t mac[32];
	char why[192];
	int sealed, init;
	bool ok;

	init = is_initialised(tx);
	if (init < 0)
		return init;
	if (!head) {
		if (v->records > 0 || init)
			broken(v, 0, "the chain's anchor is missing (log wiped or anchor deleted)");
		return 0;
	}
	if (audit_anchor_parse(head, &an) < 0) {
		broken(v, 0, "the chain's anchor is malformed");
		return 0;
	}
	if (!c->anchor_seen || an.id != c->anchor_id) {
		snprintf(why, sizeof(why), "the anchored record %" PRId64 " is gone (log truncated?)", an.id);
		broken(v, an.id, why);
		return 0;
	}
	sealed = audit_authz_sealed(tx);
	if (sealed < 0)
		return sealed;
	if (an.version == 1) {
		anchor_mac_v1(mac_key, an.id, c->anchor_hash, mac);
		ok = !sealed && sodium_memcmp(mac, an.mac, 32) == 0;
	} else {
		anchor_mac_v2(mac_key, an.first, an.id, c->anchor_hash, sealed, mac);
		ok = sodium_memcmp(mac, an.mac, 32) == 0;
	}
	if (!ok) {
		snprintf(why, sizeof(why), "the anchor does not authenticate record %" PRId64
			 " (chain rewritten, or the authorization seal stripped?)", an.id);
		broken(v, an.id, why);
		return 0;
	}
	/* The log may start later than the anchor says only where retention
	 * left an authentic checkpoint, which verify_one already required. */
	if (an.version == 2 && c->first_id && c->first_id < an.first) {
		snprintf(why, sizeof(why), "the log starts at record %" PRId64 ", before the anchored start %" PRId64,
			 c->first_id, an.first);
		broken(v, c->first_id, why);
		return 0;
	}
	v->anchored_through = an.id;
	return 0;
}

int audit_verify(struct store_tx *tx, const struct secret *mac_key, struct audit_verify *ret)
{
	struct audit_verify v = { .ok = true };
	struct checkpoints cps = { .key = mac_key };
	struct verify_ctx c = { .v = &v, .expect_id = 1 };
	struct store_audit_filter f = { .action = AUDIT_PRUNE_ACTION, .limit = CHECKPOINTS_MAX };
	_cleanup_free_ char *head = NULL, *tamper = NULL;
	struct audit_anchor an;
	int r;

	r = store_meta_get(tx, HEAD_KEY, &head);
	if (r < 0 && r != -ENOENT)
		return r;
	if (head && audit_anchor_parse(head, &an) == 0)
		c.anchor_id = an.id;
	if (mac_key) {
		/* Without the key no checkpoint can be trusted: the chain must
		 * then start at record 1. */
		cps.c = calloc(CHECKPOINTS_MAX, sizeof(*cps.c));
		if (!cps.c)
			return -ENOMEM;
		r = store_audit_query(tx, &f, checkpoint_one, &cps);
		c.cps = &cps;
	}
	if (r >= 0)
		r = store_audit_iterate(tx, verify_one, &c);
	if (r >= 0 && v.ok && store_meta_get(tx, TAMPER_KEY, &tamper) == 0) {
		v.ok = false;
		v.first_broken = strtoll(tamper + strcspn(tamper, "0123456789"), NULL, 10);
		snprintf(v.reason, sizeof(v.reason), "%s", tamper);
	}
	/* The authorization seal's findings (authz.h) are the log's too:
	 * the one command an auditor runs must show them. */
	if (r >= 0 && v.ok && store_meta_get(tx, AUDIT_AUTHZ_TAMPER_KEY, &tamper) == 0) {
		v.ok = false;
		v.first_broken = 0;
		snprintf(v.reason, sizeof(v.reason), "%s", tamper);
	}
	if (r >= 0 && v.ok && mac_key)
		r = verify_anchor(tx, mac_key, head, &c, &v);
	free(cps.c);
	if (r < 0)
		return r;
	*ret = v;
	return 0;
}
