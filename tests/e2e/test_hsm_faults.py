"""HSM faults while vaultd runs (issue 15, point 5), through a PKCS#11 module
that forwards to SoftHSM2 and, on demand, hangs in C_Decrypt or loses its
token (tests/hsm/p11_fault.c). Start-up and unlock errors for a wrong module
path, a missing token, a wrong PIN or a deleted key are test_api.py's
HsmErrors.

- The token goes away from an unlocked daemon: reads and writes go on (the
  keys they need are in memory), logins and a rotation that needs the token
  fail with 503 hsm_unavailable, and the failed rotation leaves every table
  as it was but for its audit record; when the token is back, the rotation
  works.
- A hung C_Decrypt: the unlock answers 503 within [hsm] timeout_ms and a
  margin, the daemon keeps serving, the next unlock opens a fresh provider
  and works; a daemon asked to stop while a call hangs stops.
"""
import hashlib
import os
import signal
import sqlite3
import threading
import time

from harness import SOFTHSM_MODULE, VaultTestCase, main

FAULT_MODULE = os.environ.get("VAULTD_FAULT_P11")
TIMEOUT_MS = 1500


def table_digests(db, skip=("audit",)):
    """{table: SHA-256 of its rows in a stable order} for every table but those in skip."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        out = {}
        for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
            if t in skip:
                continue
            h = hashlib.sha256()
            # meta's audit_head is the audit chain's head: it moves with every record.
            where = " WHERE key <> 'audit_head'" if t == "meta" else ""
            for row in con.execute(f'SELECT * FROM "{t}"{where} ORDER BY 1'):
                h.update(repr(row).encode() + b"\n")
            out[t] = h.hexdigest()
        return out
    finally:
        con.close()


class HsmFaultCase(VaultTestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(FAULT_MODULE and os.path.exists(FAULT_MODULE), "VAULTD_FAULT_P11 names the fault module")
        v = self.v
        with open(v.conf) as f:
            conf = f.read()
        conf = conf.replace(f"module = {SOFTHSM_MODULE}", f"module = {FAULT_MODULE}", 1)
        conf = conf.replace("[hsm]\n", f"[hsm]\ntimeout_ms = {TIMEOUT_MS}\n", 1)
        v.write_config(conf)
        v.env["VAULTD_FAULT_P11_MODULE"] = SOFTHSM_MODULE
        v.env["VAULTD_FAULT_P11_DIR"] = v.dir
        v.spend_recovery_codes = True       # no waiting for the next TOTP step

    def fault(self, name, on=True):
        path = os.path.join(self.v.dir, name)
        if on:
            open(path, "w").close()
        elif os.path.exists(path):
            os.unlink(path)

    def tearDown(self):
        self.fault("hang", False)
        self.fault("gone", False)
        super().tearDown()

    def assert_serving(self, what):
        self.assertIsNone(self.v.proc.poll(), f"{what}: vaultd is still running")
        self.assertEqual(self.v.get("/v1/sys/health").status, 200, f"{what}: health answers")

    def assert_hsm_unavailable(self, r, what):
        self.assertEqual(r.status, 503, f"{what}: {r}")
        self.assertEqual((r.json or {}).get("error"), "hsm_unavailable", f"{what}: a JSON error: {r}")


class TokenGone(HsmFaultCase):
    def wait_job(self, job_id, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.v.get(f"/v1/rotate/jobs/{job_id}").json["job"]
            if job["state"] in ("done", "failed"):
                return job
            time.sleep(0.1)
        self.fail(f"job {job_id} did not finish in {timeout} s")

    def test_token_pulled_from_an_unlocked_daemon(self):
        v = self.v
        v.ready()
        for i in range(3):
            self.assertEqual(v.put(f"/v1/secrets/acme/rmm/s{i}", {"type": "generic", "data": {"k": f"v{i}"}}).status,
                             200)

        self.fault("gone")
        for i in range(3):
            r = v.get(f"/v1/secrets/acme/rmm/s{i}")
            self.assertEqual((r.status, r.json["data"]), (200, {"k": f"v{i}"}), f"a read without the token: {r}")
        r = v.put("/v1/secrets/acme/rmm/new", {"type": "generic", "data": {"k": "n"}})
        self.assertEqual(r.status, 200, f"a write under a cached tenant key needs no token: {r}")
        # A TOTP code (a recovery code needs no token): may wait for a step.
        r = v.login_request(code=v.fresh_totp("admin"))
        self.assert_hsm_unavailable(r, "a login (the MFA key is unwrapped by the token)")
        self.assertIn("the token is gone", r.json["message"], "the 503 says what is wrong")

        status = v.get("/v1/rotate/status").json
        before = table_digests(v.db, skip=("audit", "rotations"))
        audit_before = v.get("/v1/audit/verify").json["records"]
        r = v.post("/v1/rotate/hsm", {})
        self.assertEqual(r.status, 202, f"rotate hsm is a job: {r}")
        job = self.wait_job(r.json["job"]["id"])
        self.assertEqual(job["state"], "failed", f"without the token the job fails: {job}")
        self.assertRegex(job["error"] or "", r"(?i)hsm|token", f"and says why: {job}")
        after = table_digests(v.db, skip=("audit", "rotations"))
        self.assertEqual([t for t in after if after[t] != before.get(t)], [], "tables that changed")
        self.assertEqual(after, before, "a failed HSM rotation changes no table but the audit and its job's row")
        verify = v.get("/v1/audit/verify").json
        self.assertTrue(verify["ok"], verify)
        self.assertGreater(verify["records"], audit_before, "the refusal is recorded")
        now = v.get("/v1/rotate/status").json
        for k in ("root_key", "hsm_keys_to_retire", "tenants"):
            self.assertEqual(now[k], status[k], f"rotate status: {k} unchanged")
        self.assert_serving("after the token went away")

        self.fault("gone", False)
        r = v.post("/v1/rotate/hsm", {})
        self.assertEqual(r.status, 202, f"rotate hsm once the token is back: {r}")
        job = self.wait_job(r.json["job"]["id"])
        self.assertEqual(job["state"], "done", f"with the token back the rotation works: {job}")
        self.assertEqual(v.get("/v1/secrets/acme/rmm/new").json["data"], {"k": "n"})
        self.assertEqual(v.stop(), 0, "a clean stop")


class HungDecrypt(HsmFaultCase):
    def unlock_req(self):
        v = self.v
        body = {"user": "admin", "passphrase": "correct horse battery staple"}
        body.update(v.second_factor("admin"))
        return v.post("/v1/sys/unlock", body, token=False)

    def test_a_hung_call_times_out_and_the_next_unlock_works(self):
        v = self.v
        v.ready()
        self.assertEqual(v.post("/v1/sys/lock").status, 200)

        self.fault("hang")
        t0 = time.monotonic()
        r = self.unlock_req()
        took = time.monotonic() - t0
        self.assert_hsm_unavailable(r, "an unlock while C_Decrypt hangs")
        self.assertIn("in time", r.json["message"], r)
        self.assertLess(took, TIMEOUT_MS / 1000 + 3, f"the unlock answered after {took:.1f} s")
        self.assertGreater(took, TIMEOUT_MS / 1000 - 0.2, "it waited for the timeout")
        self.assert_serving("while the abandoned call still hangs")
        self.assertIn(f"HSM call timed out: unwrap: no answer from the token within {TIMEOUT_MS} ms", v.read_log(),
                      "one log line says what timed out and after how long")

        self.fault("hang", False)
        r = self.unlock_req()
        self.assertEqual(r.status, 200, f"the next unlock opens a fresh provider: {r}")
        self.assertEqual(v.put("/v1/secrets/acme/x", {"type": "generic", "data": {"k": "v"}},
                               token=v.login()).status, 200)
        self.assertEqual(v.stop(), 0, "a clean stop")

    def test_stop_while_a_call_hangs(self):
        v = self.v
        # The module of a call that never returned is never finalized (on
        # purpose): what SoftHSM2 holds inside it is still held at exit.
        v.env["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") + ":fast_unwind_on_malloc=0").lstrip(":")
        v.env["LSAN_OPTIONS"] = "suppressions=" + os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                                               "hsm", "lsan-abandoned-module.supp")
        v.ready()
        self.assertEqual(v.post("/v1/sys/lock").status, 200)
        self.fault("hang")
        done = []
        t = threading.Thread(target=lambda: done.append(self.unlock_req()))
        t.start()
        time.sleep(0.5)                         # the worker is inside C_Decrypt now
        t0 = time.monotonic()
        v.proc.send_signal(signal.SIGTERM)
        rc = v.proc.wait(20)
        t.join(20)
        self.assertLess(time.monotonic() - t0, 15, "SIGTERM ends a daemon whose HSM call hangs")
        self.assertEqual(rc, 0, f"a clean exit, not a crash:\n{v.read_log()[-3000:]}")
        v.proc = None
        self.assertTrue(done and done[0].status in (503,), f"the unlock in flight got an answer: {done}")


if __name__ == "__main__":
    main()
