/* tests/unit/test_audit.c: the hash chain and its anchor, against a real
 * store; tampering is done with SQLite directly, as an attacker with the
 * database file would. */
#include <errno.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <sodium.h>
#include "vaultd/audit/audit.h"

struct fixture {
	char dir[64];
	char db[96];
	struct store *s;
	struct secret *key;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/vaultd-audit-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/vault.db", f->dir);
	assert_int_equal(store_open(f->db, 1, &f->s), 0);
	assert_int_equal(secret_random(32, &f->key), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	store_close(f->s);
	secret_free(f->key);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void append(struct fixture *f, const char *action, const char *path, const struct secret *key)
{
	struct audit_entry e = {
		.principal = "user:alice", .uid = 1000, .pid = 42, .action = action, .path = path,
		.capability = "read", .result = "allowed", .status = 200, .request_id = "00112233445566778899aabbccddeeff",
	};
	struct store_tx *tx;

	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(audit_append(tx, &e, key, NULL), 0);
	assert_int_equal(store_write_commit(tx), 0);
}

static struct audit_verify verify(struct fixture *f, const struct secret *key)
{
	struct audit_verify v;
	struct store_tx *tx;

	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(audit_verify(tx, key, &v), 0);
	store_tx_end(tx);
	return v;
}

/* Runs SQL on the file behind the store's back (closing and reopening the
 * store around it, as with the daemon stopped). */
static void tamper(struct fixture *f, const char *sql)
{
	sqlite3 *db;

	store_close(f->s);
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(store_open(f->db, 1, &f->s), 0);
}

static void fill(struct fixture *f, int n)
{
	char path[32];

	for (int i = 1; i <= n; i++) {
		snprintf(path, sizeof(path), "acme/app/s%d", i);
		append(f, "secret.read", path, f->key);
	}
}

static void test_intact_chain_verifies(void **state)
{
	struct fixture *f = *state;
	struct audit_verify v;

	v = verify(f, f->key);
	assert_true(v.ok);
	assert_int_equal(v.records, 0);
	fill(f, 5);
	append(f, "sys.unlock", NULL, NULL);    /* while "locked": chained, not anchored */
	v = verify(f, f->key);
	assert_true(v.ok);
	assert_int_equal(v.records, 6);
	assert_int_equal(v.anchored_through, 5);
	append(f, "secret.read", "acme/x/y", f->key);
	v = verify(f, f->key);
	assert_true(v.ok);
	assert_int_equal(v.anchored_through, 7);
}

static void test_edited_record_is_named(void **state)
{
	struct fixture *f = *state;
	struct audit_verify v;

	fill(f, 5);
	tamper(f, "UPDATE audit SET path = 'acme/app/other' WHERE id = 3");
	v = verify(f, f->key);
	assert_false(v.ok);
	assert_int_equal(v.first_broken, 3);
	assert_non_null(strstr(v.reason, "record 3"));
}

static void test_deleted_record_is_named(void **state)
{
	struct fixture *f = *state;
	struct audit_verify v;

	fill(f, 5);
	tamper(f, "DELETE FROM audit WHERE id = 2");
	v = verify(f, f->key);
	assert_false(v.ok);
	assert_int_equal(v.first_broken, 3);
}

static void test_reordered_records_are_named(void **state)
{
	struct fixture *f = *state;
	struct audit_verify v;

	fill(f, 5);
	/* Swap the contents (hashes included) of records 2 and 4. */
	tamper(f, "UPDATE audit SET id = 1000 WHERE id = 2; UPDATE audit SET id = 2 WHERE id = 4;"
		  "UPDATE audit SET id = 4 WHERE id = 1000");
	v = verify(f, f->key);
	assert_false(v.ok);
	assert_int_equal(v.first_broken, 2);
}

static void test_truncated_tail_is_detected(void **state)
{
	struct fixture *f = *state;
	struct audit_verify v;

	fill(f, 5);
	tamper(f, "DELETE FROM audit WHERE id >= 4");
	v = verify(f, f->key);
	assert_false(v.ok);
	assert_int_equal(v.first_broken, 5);    /* the anchored record is gone */
}

static void test_truncate_then_refill_is_detected(void **state)
{
	struct fixture *f = *state;
	struct audit_verify v;

	/* Cut the tail while "stopped", then let new records reuse the ids
	 * and move the anchor: the anchor check on the way catches it. */
	fill(f, 5);
	tamper(f, "DELETE FROM audit WHERE id >= 4");
	fill(f, 3);
	v = verify(f, f->key);
	assert_false(v.ok);
	assert_int_equal(v.first_broken, 5);
	assert_non_null(strstr(v.reason, "record 5"));
}

static void test_rewritten_chain_fails_the_anchor(void **state)
{
	struct fixture *f = *state;
	_cleanup_secret_ struct secret *other = NULL;
	struct audit_verify v;

	fill(f, 3);
	/* An attacker with only the database can recompute every hash, but
	 * not the anchor's MAC: simulate a consistent rewrite by anchoring
	 * with a key that is not the vault's. */
	assert_int_equal(secret_random(32, &other), 0);
	append(f, "secret.read", "acme/forged/entry", other);
	v = verify(f, f->key);
	assert_false(v.ok);
	assert_non_null(strstr(v.reason, "anchor"));
	/* Without the anchor row at all. */
	tamper(f, "DELETE FROM meta WHERE key IN ('audit_head', 'audit_tamper')");
	v = verify(f, f->key);
	assert_false(v.ok);
	assert_non_null(strstr(v.reason, "anchor is missing"));
}

/* Retention: prune everything older than a cutoff, append the checkpoint
 * the way the daemon does, and the rest still verifies. */
static int64_t prune(struct fixture *f, int64_t before, char *detail, size_t n)
{
	struct audit_entry e = {
		.principal = "system:vaultd", .uid = 0, .pid = 1, .action = AUDIT_PRUNE_ACTION, .capability = "",
		.result = "allowed", .status = 200, .request_id = "ffeeddccbbaa99887766554433221100",
	};
	struct store_tx *tx;
	int64_t pruned;

	assert_int_equal(store_write_begin(f->s, &tx), 0);
	pruned = audit_prune(tx, before, f->key, detail, n);
	assert_true(pruned >= 0);
	if (pruned > 0) {
		e.detail = detail;
		assert_int_equal(audit_append(tx, &e, f->key, NULL), 0);
	}
	assert_int_equal(store_write_commit(tx), 0);
	return pruned;
}

static void test_prune_keeps_the_chain_verifiable(void **state)
{
	struct fixture *f = *state;
	struct audit_verify v;
	char detail[256];

	fill(f, 6);
	/* Nothing is older than an hour ago. */
	assert_int_equal(prune(f, time(NULL) - 3600, detail, sizeof(detail)), 0);
	/* Everything is older than tomorrow, but the newest record stays. */
	assert_int_equal(prune(f, time(NULL) + 86400, detail, sizeof(detail)), 5);
	assert_non_null(strstr(detail, "pruned records 1..5 older than "));
	assert_non_null(strstr(detail, "chain continues from hash "));
	v = verify(f, f->key);
	assert_true(v.ok);
	assert_int_equal(v.records, 2);         /* record 6 and the checkpoint */
	assert_int_equal(v.anchored_through, 7);
	fill(f, 2);
	/* A second pruning chains on from the first. */
	assert_int_equal(prune(f, time(NULL) + 86400, detail, sizeof(detail)), 3);
	assert_non_null(strstr(detail, "pruned records 6..8 "));
	v = verify(f, f->key);
	assert_true(v.ok);
	/* Deleting the oldest remaining record is caught and named. */
	tamper(f, "DELETE FROM audit WHERE id = 9");
	v = verify(f, f->key);
	assert_false(v.ok);
	assert_int_equal(v.first_broken, 10);
	assert_non_null(strstr(v.reason, "retention checkpoint"));
}

static void test_forged_checkpoint_is_caught(void **state)
{
	struct fixture *f = *state;
	struct audit_verify v;
	char detail[256];

	fill(f, 4);
	assert_int_equal(prune(f, time(NULL) + 86400, detail, sizeof(detail)), 3);
	/* Editing the checkpoint's hash breaks its own record's hash. */
	tamper(f, "UPDATE audit SET detail = replace(detail, 'hash ', 'hash 0') WHERE action = 'audit.prune'");
	v = verify(f, f->key);
	assert_false(v.ok);
}

static void test_reanchor_moves_the_anchor_key(void **state)
{
	struct fixture *f = *state;
	_cleanup_secret_ struct secret *next = NULL;
	struct audit_verify v;
	struct store_tx *tx;

	fill(f, 3);
	assert_int_equal(secret_random(32, &next), 0);
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(audit_reanchor(tx, f->key, next), 0);
	assert_int_equal(store_write_commit(tx), 0);
	v = verify(f, next);
	assert_true(v.ok);
	assert_int_equal(v.anchored_through, 3);
	v = verify(f, f->key);
	assert_false(v.ok);
	append(f, "secret.read", "acme/after", next);
	v = verify(f, next);
	assert_true(v.ok);
	assert_int_equal(v.anchored_through, 4);
}

static void test_hash_covers_every_field(void **state)
{
	struct store_audit a = {
		.id = 7, .time = 1700000000, .principal = "user:alice", .uid = 1000, .pid = 42,
		.action = "secret.read", .path = (char *)"acme/x", .capability = "read", .result = "allowed",
		.status = 200, .detail = NULL, .request_id = "r",
	};
	uint8_t prev[32] = {0}, h0[32], h[32];
	(void)state;

	audit_record_hash(prev, &a, h0);
#define CHANGED(stmt) do { struct store_audit b = a; stmt; audit_record_hash(prev, &b, h); \
		assert_memory_not_equal(h, h0, 32); } while (0)
	CHANGED(b.id = 8);
	CHANGED(b.time++);
	CHANGED(b.principal[0] = 'U');
	CHANGED(b.uid = 0);
	CHANGED(b.pid = 43);
	CHANGED(b.action[0] = 'S');
	CHANGED(b.path = (char *)"acme/y");
	CHANGED(b.path = NULL);
	CHANGED(b.path = (char *)"");
	CHANGED(b.capability[0] = 'R');
	CHANGED(b.result[0] = 'A');
	CHANGED(b.status = 201);
	CHANGED(b.detail = (char *)"x");
	CHANGED(b.request_id[0] = 'q');
	prev[0] = 1;
	audit_record_hash(prev, &a, h);
	assert_memory_not_equal(h, h0, 32);
#undef CHANGED
}


/* Makes the fixture's store an initialised vault (a root key row), as the
 * daemon's init does before its first record. */
static void initialise(struct fixture *f)
{
	uint8_t blob[16] = { 1 };
	struct store_rootkey rk = { .version = 1, .hsm_label = "k", .hsm_version = 1, .blob = blob,
				    .blob_len = sizeof(blob), .created_at = 1 };
	struct store_tx *tx;

	struct audit_entry e = {
		.principal = "user:root", .uid = 0, .pid = 42, .action = "sys.init", .capability = "",
		.result = "allowed", .status = 200, .request_id = "00112233445566778899aabbccddeeff",
	};

	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(store_rootkey_put(tx, &rk), 0);
	assert_int_equal(audit_append_genesis(tx, &e, f->key, NULL), 0);
	assert_int_equal(audit_append_genesis(tx, &e, f->key, NULL), -EEXIST);       /* one genesis */
	assert_int_equal(store_write_commit(tx), 0);
}

/* Finding 1: DELETE FROM audit; DELETE FROM meta WHERE key='audit_head'
 * while stopped used to verify as a fresh, intact log. */
static void test_wiped_log_of_an_initialised_vault_is_tampering(void **state)
{
	struct fixture *f = *state;
	struct audit_verify v;

	initialise(f);
	fill(f, 4);
	assert_true(verify(f, f->key).ok);
	tamper(f, "DELETE FROM audit; DELETE FROM meta WHERE key = 'audit_head'");
	v = verify(f, f->key);
	assert_false(v.ok);
	assert_non_null(strstr(v.reason, "anchor is missing"));
	/* New records start a new chain at id 1: the anchor check on the way
	 * records the wipe, and it stays reported. */
	fill(f, 2);
	v = verify(f, f->key);
	assert_false(v.ok);
	assert_non_null(strstr(v.reason, "missing on an initialised vault"));
}

static void hex32(const uint8_t b[32], char out[65])
{
	static const char d[] = "0123456789abcdef";

	for (int i = 0; i < 32; i++) {
		out[2 * i] = d[b[i] >> 4];
		out[2 * i + 1] = d[b[i] & 15];
	}
	out[64] = '\0';
}

static int hash_of(const struct store_audit *a, void *userdata)
{
	memcpy(userdata, a->hash, 32);
	return 0;
}

/* Finding 2: delete records 1..20 and append a record that claims to be
 * retention's checkpoint for them. Its text and chain hash need no key. */
static void test_forged_checkpoint_does_not_cover_a_cut_start(void **state)
{
	struct fixture *f = *state;
	struct store_audit_filter q = { .limit = 1 };
	struct store_audit last = {0}, forged = {0};
	struct audit_verify v;
	uint8_t h20[32];
	char hex[65], detail[256], sql[1024];
	struct store_tx *tx;

	fill(f, 25);
	assert_int_equal(store_read_begin(f->s, &tx), 0);
	q.after_id = 19;
	assert_int_equal(store_audit_query(tx, &q, hash_of, h20), 1);
	assert_int_equal(store_audit_last(tx, &last), 0);
	store_tx_end(tx);
	hex32(h20, hex);
	snprintf(detail, sizeof(detail), "pruned records 1..20 older than 2026-01-01T00:00:00Z; "
		 "chain continues from hash %s; mac %s", hex, hex);
	forged = (struct store_audit){ .id = 26, .time = time(NULL), .principal = "system:vaultd", .uid = 0, .pid = 1,
				       .action = "audit.prune", .capability = "", .result = "allowed", .status = 200,
				       .detail = detail, .request_id = "ffeeddccbbaa99887766554433221100" };
	audit_record_hash(last.hash, &forged, forged.hash);
	store_audit_clear(&last);
	hex32(forged.hash, hex);
	snprintf(sql, sizeof(sql),
		 "DELETE FROM audit WHERE id <= 20; INSERT INTO audit (id, time, principal, uid, pid, action, path, "
		 "capability, result, status, detail, request_id, hash) VALUES (26, %lld, 'system:vaultd', 0, 1, "
		 "'audit.prune', NULL, '', 'allowed', 200, '%s', 'ffeeddccbbaa99887766554433221100', x'%s')",
		 (long long)forged.time, detail, hex);
	tamper(f, sql);
	v = verify(f, f->key);
	assert_false(v.ok);
	assert_int_equal(v.first_broken, 21);
	assert_non_null(strstr(v.reason, "no authentic retention checkpoint"));
	/* And the next anchored append records it. */
	fill(f, 1);
	v = verify(f, f->key);
	assert_false(v.ok);
}

/* Finding 8: the anchor's MAC was compared before its length was checked;
 * under ASan a short anchor read past the end of its string. */
static void test_short_or_malformed_anchor_is_reported(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = { "5:abc", "5:", "5", "", ":", "v2:1:5:ab", "v2:6:5:" "00",
					   "x5:0000000000000000000000000000000000000000000000000000000000000000",
					   "5:00000000000000000000000000000000000000000000000000000000000000000" };
	struct audit_verify v;
	char sql[256];

	fill(f, 5);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(sql, sizeof(sql), "UPDATE meta SET value = '%s' WHERE key = 'audit_head'", bad[i]);
		tamper(f, sql);
		v = verify(f, f->key);
		assert_false(v.ok);
		assert_non_null(strstr(v.reason, "anchor"));
	}
}

static void test_anchor_and_checkpoint_parsers(void **state)
{
	struct audit_anchor a;
	struct audit_checkpoint c;
	char text[256];
	(void)state;

	assert_int_equal(audit_anchor_parse("7:" "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", &a), 0);
	assert_int_equal(a.version, 1);
	assert_int_equal(a.id, 7);
	assert_int_equal(audit_anchor_parse("v2:3:7:" "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
					    &a), 0);
	assert_int_equal(a.version, 2);
	assert_int_equal(a.first, 3);
	assert_int_equal(a.id, 7);
	assert_true(audit_anchor_parse("v2:8:7:" "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
				       &a) < 0);  /* first after head */
	assert_true(audit_anchor_parse("07:" "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", &a) < 0);
	assert_true(audit_anchor_parse("99999999999999999999:" "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
				       &a) < 0);
	assert_true(audit_anchor_parse(NULL, &a) < 0);
	snprintf(text, sizeof(text), "pruned records 1..5 older than 2026-01-01T00:00:00Z; chain continues from hash "
		 "%s; mac %s", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
		 "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100");
	assert_int_equal(audit_checkpoint_parse(text, &c), 0);
	assert_int_equal(c.first, 1);
	assert_int_equal(c.through, 5);
	assert_int_equal(c.hash[1], 0x11);
	assert_int_equal(c.mac[0], 0xff);
	/* Without a MAC (the format before it was authenticated): refused. */
	assert_true(audit_checkpoint_parse("pruned records 1..5 older than 2026-01-01T00:00:00Z; chain continues from "
					   "hash 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
					   &c) < 0);
	assert_true(audit_checkpoint_parse("pruned records 5..1 older than x; chain continues from hash "
					   "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff; mac "
					   "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", &c) < 0);
}

/* Finding 4: whatever a caller sends, the log holds printable ASCII. */
static void test_hostile_text_is_escaped(void **state)
{
	struct fixture *f = *state;
	struct audit_entry e = {
		.principal = "uid:1000", .uid = 1000, .pid = 42, .action = "secret.read",
		.path = "acme/\xff\xfe/\x1b[2J\x1b]0;owned\x07", .capability = "read", .result = "denied", .status = 403,
		.detail = "100%\n", .request_id = "00112233445566778899aabbccddeeff",
	};
	struct store_audit rec = {0};
	struct store_tx *tx;
	char out[16];

	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(audit_append(tx, &e, f->key, &rec), 0);
	assert_int_equal(store_write_commit(tx), 0);
	assert_string_equal(rec.path, "acme/%FF%FE/%1B[2J%1B]0;owned%07");
	assert_string_equal(rec.detail, "100%25%0A");
	store_audit_clear(&rec);
	assert_true(verify(f, f->key).ok);
	audit_text_escape(out, sizeof(out), "abc\x01\x02\x03\x04\x05");
	assert_string_equal(out, "abc%01%02%03%04");    /* never half an escape */
}

/* A vault from before the v2 anchor: "<id>:<HMAC(be64 id || hash)>", no
 * seal flag. It verifies, sealing moves it to v2 with the flag bound, and
 * clearing the flag afterwards breaks the anchor. */
static void test_legacy_anchor_and_the_seal_flag(void **state)
{
	struct fixture *f = *state;
	struct store_audit last = {0};
	crypto_auth_hmacsha256_state st;
	uint8_t mac[32], idb[8];
	char hex[65], sql[256];
	struct audit_verify v;
	struct store_tx *tx;

	fill(f, 3);
	assert_int_equal(store_read_begin(f->s, &tx), 0);
	assert_int_equal(store_audit_last(tx, &last), 0);
	store_tx_end(tx);
	put_be32(idb, 0);
	put_be32(idb + 4, (uint32_t)last.id);
	crypto_auth_hmacsha256_init(&st, f->key->p, f->key->len);
	crypto_auth_hmacsha256_update(&st, idb, 8);
	crypto_auth_hmacsha256_update(&st, last.hash, 32);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_bin2hex(hex, sizeof(hex), mac, 32);
	snprintf(sql, sizeof(sql), "UPDATE meta SET value = '%lld:%s' WHERE key = 'audit_head'", (long long)last.id, hex);
	store_audit_clear(&last);
	tamper(f, sql);
	v = verify(f, f->key);
	assert_true(v.ok);
	assert_int_equal(v.anchored_through, 3);

	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(audit_authz_sealed(tx), 0);
	assert_int_equal(audit_check_anchor(tx, f->key), 0);
	assert_int_equal(audit_seal_authz(tx, f->key), 0);
	assert_int_equal(audit_authz_sealed(tx), 1);
	assert_int_equal(store_write_commit(tx), 0);
	assert_true(verify(f, f->key).ok);
	fill(f, 1);
	assert_true(verify(f, f->key).ok);

	/* Strip the flag: the anchor no longer authenticates, and the next
	 * anchor check says so. */
	tamper(f, "DELETE FROM meta WHERE key = 'authz_sealed'");
	v = verify(f, f->key);
	assert_false(v.ok);
	assert_non_null(strstr(v.reason, "seal"));
	assert_int_equal(store_write_begin(f->s, &tx), 0);
	assert_int_equal(audit_check_anchor(tx, f->key), 1);
	assert_int_equal(store_write_commit(tx), 0);
	/* A v1 anchor on a sealed vault is a downgrade: refused. */
	tamper(f, "INSERT OR REPLACE INTO meta VALUES ('authz_sealed', '1'); DELETE FROM meta WHERE key = 'audit_tamper'");
	tamper(f, sql);
	v = verify(f, f->key);
	assert_false(v.ok);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_intact_chain_verifies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edited_record_is_named, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deleted_record_is_named, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reordered_records_are_named, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_tail_is_detected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncate_then_refill_is_detected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rewritten_chain_fails_the_anchor, setup, teardown),
		cmocka_unit_test(test_hash_covers_every_field),
		cmocka_unit_test_setup_teardown(test_prune_keeps_the_chain_verifiable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forged_checkpoint_is_caught, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reanchor_moves_the_anchor_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wiped_log_of_an_initialised_vault_is_tampering, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forged_checkpoint_does_not_cover_a_cut_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_short_or_malformed_anchor_is_reported, setup, teardown),
		cmocka_unit_test(test_anchor_and_checkpoint_parsers),
		cmocka_unit_test_setup_teardown(test_hostile_text_is_escaped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_legacy_anchor_and_the_seal_flag, setup, teardown),
	};

	if (secret_library_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
