#!/usr/bin/env python3
"""Group commit of audit records ([audit] sync, vaultd.conf(5)): under
concurrency every request still gets exactly one record, in the order each
client sent them, in a chain that verifies; records share transactions (the
metrics say so); a batch that cannot commit refuses every request in it and
leaves no record and no secret behind; under sync = normal the records of
reads survive kill -9 and are synced by the daemon within the interval."""
import json
import os
import signal
import subprocess
import threading

from harness import UnixHTTPConnection, Vault, VaultTestCase, main

Vault.spend_recovery_codes = True      # no test here counts recovery codes
CLIENTS = 16
READS = 20
VALUE = "gc-e2e-secret-value-{}"


def request_id(r):
    return {k.lower(): v for k, v in r.headers.items()}["x-request-id"]


class GroupCommit(VaultTestCase):
    def seed(self):
        for n in range(CLIENTS):
            r = self.v.put(f"/v1/secrets/t{n}/gc/s", {"type": "generic", "data": {"k": VALUE.format(n)}})
            self.assertEqual(r.status, 200, r)

    def parallel_reads(self, reads=READS):
        """CLIENTS threads, each on its own keep-alive connection; returns
        per client the (request id, status, raw body) of each read, in order."""
        out = [[] for _ in range(CLIENTS)]
        errors = []
        barrier = threading.Barrier(CLIENTS)

        def client(n):
            conn = UnixHTTPConnection(self.v.sock)
            try:
                barrier.wait()
                for _ in range(reads):
                    r = self.v.get(f"/v1/secrets/t{n}/gc/s", conn=conn)
                    out[n].append((request_id(r), r.status, r.raw, r.json))
            except Exception as e:  # noqa: BLE001 -- reported below
                errors.append(e)
            finally:
                conn.close()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        self.assertEqual(errors, [])
        return out

    def records(self):
        out, cursor = [], None
        while True:
            r = self.v.get("/v1/audit?limit=1000" + (f"&cursor={cursor}" if cursor else ""))
            self.assertEqual(r.status, 200, r)
            out += r.json["records"]
            cursor = r.json["next_cursor"]
            if cursor is None:
                return out

    def assert_one_record_each_in_order(self, reads):
        recs = self.records()
        ids = [r["id"] for r in recs]
        self.assertEqual(ids, list(range(ids[0], ids[0] + len(ids))), "ids are consecutive")
        by_rid = {}
        for r in recs:
            by_rid.setdefault(r["request_id"], []).append(r)
        for n, client in enumerate(reads):
            got = []
            for rid, status, _, _ in client:
                self.assertEqual(len(by_rid.get(rid, [])), 1, f"client {n}: request {rid} has one record")
                rec = by_rid[rid][0]
                self.assertEqual((rec["action"], rec["path"], rec["status"]), ("secret.read", f"t{n}/gc/s", status))
                got.append(rec["id"])
            self.assertEqual(got, sorted(got), f"client {n}: records in the order it sent the requests")
        verify = self.v.get("/v1/audit/verify")
        self.assertEqual(verify.status, 200, verify)
        self.assertTrue(verify.json["ok"], verify.json)

    def test_parallel_readers_get_one_record_each_in_order(self):
        self.v.ready()
        self.seed()
        before = self.v.get("/v1/sys/metrics").json
        reads = self.parallel_reads()
        for n, client in enumerate(reads):
            for _, status, raw, j in client:
                self.assertEqual(status, 200, raw)
                self.assertEqual(j["data"], {"k": VALUE.format(n)})
        self.assert_one_record_each_in_order(reads)
        after = self.v.get("/v1/sys/metrics").json
        batches = after["audit_batches"] - before["audit_batches"]
        records = after["audit_batched_records"] - before["audit_batched_records"]
        # Every read's record went through a batch, and batches were shared.
        self.assertGreaterEqual(records, CLIENTS * READS)
        self.assertGreater(records, batches, f"{records} records in {batches} batches: no group commit")

    def test_a_batch_that_cannot_commit_refuses_every_request_in_it(self):
        fault = os.path.join(self.v.dir, "audit-commit-fails")
        self.v.env["VAULTD_TEST_AUDIT_COMMIT_FAIL_FILE"] = fault
        self.v.ready()
        self.seed()
        n_before = len(self.records())
        open(fault, "w").close()
        reads = self.parallel_reads(reads=5)
        os.unlink(fault)
        for client in reads:
            for _, status, raw, j in client:
                self.assertEqual((status, j["error"]), (503, "audit_unavailable"), raw)
                self.assertNotIn(b"gc-e2e-secret-value", raw)
        recs = self.records()
        refused = {rid for client in reads for rid, _, _, _ in client}
        self.assertEqual([r for r in recs if r["request_id"] in refused], [], "no record of a refused read")
        # The GET /v1/audit pages just made are recorded too; nothing else.
        self.assertEqual([r["action"] for r in recs[n_before:]], ["audit.read"] * (len(recs) - n_before))
        self.assertIn("cannot write the audit record", self.v.read_log())
        # Serving again once the batch can commit.
        reads = self.parallel_reads(reads=2)
        self.assertTrue(all(s == 200 for c in reads for _, s, _, _ in c))
        self.assert_one_record_each_in_order(reads)

    def test_sync_normal_survives_kill9_and_syncs_within_the_interval(self):
        v = self.v
        v.write_config(open(v.conf).read() + "[audit]\nsync = normal\nsync_interval_ms = 200\n")
        v.ready()
        self.seed()
        reads = self.parallel_reads(reads=5)
        self.assertTrue(all(s == 200 for c in reads for _, s, _, _ in c))
        # The daemon syncs on its own within the interval: its marker commit lands.
        deadline = 0
        synced = ""
        while deadline < 50 and not synced:
            synced = subprocess.run(["sqlite3", v.db, "SELECT value FROM meta WHERE key = 'wal_synced_at'"],
                                    capture_output=True, text=True, timeout=30).stdout.strip()
            deadline += 1
            threading.Event().wait(0.1)
        self.assertRegex(synced, r"^\d+$", "no synced commit within 5 s of sync_interval_ms = 200")
        # kill -9 right after acknowledged reads: their records are in the WAL.
        more = self.parallel_reads(reads=3)
        v.proc.send_signal(signal.SIGKILL)
        v.proc.wait(timeout=30)
        v.start()
        v.unlock()
        self.assert_one_record_each_in_order(reads)
        recs = {r["request_id"] for r in self.records()}
        for client in more:
            for rid, status, _, _ in client:
                self.assertEqual(status, 200)
                self.assertIn(rid, recs, "an acknowledged read lost its record to kill -9")

    def test_bad_sync_settings_are_refused(self):
        v = self.v
        base = open(v.conf).read()
        for bad, word in [("sync = fast", "sync"), ("sync_interval_ms = 5", "sync_interval_ms"),
                          ("sync_interval_ms = 60001", "sync_interval_ms")]:
            v.write_config(base + f"[audit]\n{bad}\n")
            p = subprocess.run([os.environ.get("VAULTD_BIN", "vaultd"), "-c", v.conf, "-f"],
                               capture_output=True, text=True, env=v.env, timeout=30)
            self.assertNotEqual(p.returncode, 0, bad)
            self.assertIn(word, p.stderr, bad)
            self.assertIn(v.conf, p.stderr, bad)


if __name__ == "__main__":
    main()
