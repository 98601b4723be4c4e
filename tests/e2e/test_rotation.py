#!/usr/bin/env python3
"""vaultd end to end: rotation (docs/api.md, "Rotation" and "Credential staging").

Every key layer is rotated on a real vaultd with a SoftHSM2 token: tenant KEK,
root key, HSM key and data keys. After each, every secret must read back
unchanged and the database must hold no blob wrapped under a retired key
version (checked with Python's sqlite3 module on the stopped database). Crash
safety: kill -9 in the middle of a KEK rotation of 10,000 secrets, and the
fault-injection points of a test build (VAULTD_TEST_CRASH_ROTATION, compiled
in by -DVAULTD_FAULT_INJECTION=ON, as the dev preset does) for every kind.
Also: reads that never fail while rotations run, automatic KEK rotation at the
wrap limit, the staging model (pending/current/previous), version retention,
max_age status, backup, audit retention, and who may rotate what.

The tester's uid is bound as service "tester" with role admin, so requests
need no session token; unlocks after a restart use recovery codes (a TOTP code
may be spent once per 30 s step, recovery codes at once).
"""
import hashlib
import json
import os
import re
import shutil
import sqlite3
import stat
import struct
import subprocess
import threading
import time

import grp

from harness import ADMIN, PASSPHRASE, SOFTHSM_MODULE, UnixHTTPConnection, VaultTestCase, as_uid, main

NOBODY = 65534
NOGROUP = grp.getgrnam("nogroup").gr_gid


def generic(value):
    return {"type": "generic", "data": {"value": value}}


class RotationCase(VaultTestCase):
    maxDiff = None
    batch_size = 50
    extra = ""

    def setUp(self):
        super().setUp()
        with open(self.v.conf) as f:
            conf = f.read()
        self.v.write_config(conf + f"[rotation]\nbatch_size = {self.batch_size}\n" + self.extra)

    def boot(self, env=None):
        if env:
            self.v.env.update(env)
        self.v.ready()
        r = self.v.put(f"/v1/services/tester", {"uid": os.getuid(), "roles": ["admin"]})
        self.assertEqual(r.status, 200, r)
        self.v.token = None             # from here the uid binding is the identity

    def restart(self, env=None):
        """Stops (if running), starts with env changes, unlocks with a recovery code."""
        if self.v.proc:
            self.v.stop()
        for k, val in (env or {}).items():
            if val is None:
                self.v.env.pop(k, None)
            else:
                self.v.env[k] = val
        self.v.start()
        self.unlock()

    def unlock(self):
        code = self.v.recovery_codes[ADMIN].pop()
        r = self.v.post("/v1/sys/unlock", {"user": ADMIN, "passphrase": PASSPHRASE, "recovery_code": code},
                        token=False)
        self.assertEqual(r.status, 200, r)

    def put_many(self, items, threads=4):
        """items: {path: value}; PUTs them over keep-alive connections."""
        paths = sorted(items)
        errors = []

        def work(chunk):
            conn = UnixHTTPConnection(self.v.sock)
            try:
                for p in chunk:
                    r = self.v.put(f"/v1/secrets/{p}", generic(items[p]), conn=conn)
                    if r.status != 200:
                        errors.append((p, r))
                        return
            finally:
                conn.close()
        ts = [threading.Thread(target=work, args=(paths[i::threads],)) for i in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(errors, [])

    def read_all(self, items, threads=4):
        """Reads every path back; returns the mismatches."""
        paths = sorted(items)
        bad = []

        def work(chunk):
            conn = UnixHTTPConnection(self.v.sock)
            try:
                for p in chunk:
                    r = self.v.get(f"/v1/secrets/{p}", conn=conn)
                    if r.status != 200 or r.json["data"] != {"value": items[p]}:
                        bad.append((p, r))
            finally:
                conn.close()
        ts = [threading.Thread(target=work, args=(paths[i::threads],)) for i in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return bad

    def rotate(self, what, expect=202):
        r = self.v.post(f"/v1/rotate/{what}")
        self.assertEqual(r.status, expect, r)
        return r.json

    def wait_job(self, job_id, timeout=300, state="done"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.v.get(f"/v1/rotate/jobs/{job_id}")
            self.assertEqual(r.status, 200, r)
            j = r.json["job"]
            if j["state"] in ("done", "failed"):
                self.assertEqual(j["state"], state, j)
                return j
            time.sleep(0.1)
        self.fail(f"job {job_id} did not finish: {j}")

    def run_job(self, what):
        return self.wait_job(self.rotate(what)["job"]["id"])

    def db(self):
        """The stopped vault's database (read-only)."""
        self.assertIsNone(self.v.proc, "stop the daemon before reading its database")
        return sqlite3.connect(f"file:{self.v.db}?mode=ro", uri=True)

    def assert_no_retired_blobs(self, tenants_rotated=()):
        """Every blob is under a live key version: one root key, every KEK
        under it, every DEK under its tenant's current KEK, every MFA key and
        the root key under the current HSM key; rotated tenants have exactly
        one KEK version."""
        with self.db() as c:
            rks = c.execute("SELECT version, hsm_label, hsm_version, blob FROM root_keys").fetchall()
            self.assertEqual(len(rks), 1, "more than one root key version left")
            rk_version, hsm_label, hsm_version, rk_blob = rks[0]
            self.assertEqual(self.blob_hsm_version(rk_blob), (hsm_label, hsm_version))
            stale = c.execute("SELECT tenant, version, rk_version FROM keks WHERE rk_version != ?",
                              (rk_version,)).fetchall()
            self.assertEqual(stale, [], "KEKs under a retired root key")
            current = dict(c.execute("SELECT tenant, MAX(version) FROM keks GROUP BY tenant").fetchall())
            for t in tenants_rotated:
                n = c.execute("SELECT COUNT(*) FROM keks WHERE tenant = ?", (t,)).fetchone()[0]
                self.assertEqual(n, 1, f"tenant {t}: old KEK versions left")
            for path, kek_version, dek in c.execute("SELECT path, kek_version, dek_blob FROM secret_versions"):
                tenant = path.split("/")[0]
                if dek is None:
                    continue
                self.assertEqual(kek_version, current[tenant], f"{path}: DEK under a retired KEK")
                # The blob header names the key version that sealed it.
                self.assertEqual(struct.unpack(">I", dek[2:6])[0], current[tenant], path)
            for name, blob in c.execute("SELECT name, mfa_key FROM users WHERE mfa_key IS NOT NULL"):
                self.assertEqual(self.blob_hsm_version(blob), (hsm_label, hsm_version),
                                 f"user {name}: MFA key under a retired HSM key")
            return rk_version, hsm_version, current

    @staticmethod
    def blob_hsm_version(blob):
        # keyprov blob: u8 format, u8 mech, u8 hash, u32 version, u8 label length, label
        version = struct.unpack(">I", blob[3:7])[0]
        n = blob[7]
        return blob[8:8 + n].decode(), version


class Layers(RotationCase):
    def test_kek_root_hsm_then_restart(self):
        """Must show: after rotate kek acme, rotate root and rotate hsm, a
        restart and unlock read every secret back unchanged, and no blob is
        wrapped under a retired key version."""
        self.boot()
        items = {f"acme/rmm/s{i:03d}": f"acme-value-{i}" for i in range(300)}
        items.update({f"globex/psa/s{i:03d}": f"globex-value-{i}" for i in range(60)})
        self.put_many(items)
        # History too: old versions, a soft-deleted and a destroyed secret.
        for i in range(3):
            self.assertEqual(self.v.put("/v1/secrets/acme/hist", generic(f"h{i}")).status, 200)
        items["acme/hist"] = "h2"
        self.assertEqual(self.v.put("/v1/secrets/acme/gone", generic("x")).status, 200)
        self.assertEqual(self.v.delete("/v1/secrets/acme/gone?destroy=1").status, 200)
        self.assertEqual(self.v.put("/v1/secrets/acme/soft", generic("soft")).status, 200)
        self.assertEqual(self.v.delete("/v1/secrets/acme/soft").status, 200)

        kek = self.run_job("kek/acme")
        self.assertEqual((kek["kind"], kek["target"], kek["from_version"], kek["to_version"]), ("kek", "acme", 1, 2))
        self.assertGreaterEqual(kek["done"], 303)
        root = self.run_job("root")
        self.assertEqual((root["from_version"], root["to_version"]), (1, 2))
        self.assertEqual(root["done"], 2)                   # two tenants, one KEK each now
        hsm = self.run_job("hsm")
        self.assertEqual((hsm["from_version"], hsm["to_version"]), (1, 2))
        self.assertEqual(self.read_all(items), [])
        # Old versions of a secret survive the rotations too.
        r = self.v.get("/v1/secrets/acme/hist?version=1")
        self.assertEqual((r.status, r.json["data"]), (200, {"value": "h0"}), r)

        st = self.v.get("/v1/rotate/status").json
        self.assertEqual(st["root_key"]["version"], 2)
        self.assertEqual(st["root_key"]["hsm_key"], {"label": "vaultd-root", "version": 2})
        self.assertEqual(st["hsm_keys_to_retire"], [{"label": "vaultd-root", "version": 1}])
        self.assertEqual({t["tenant"]: t["kek_version"] for t in st["tenants"]}, {"acme": 2, "globex": 1})

        self.v.stop()
        rk, hsm_version, keks = self.assert_no_retired_blobs(tenants_rotated=["acme"])
        self.assertEqual((rk, hsm_version, keks), (2, 2, {"acme": 2, "globex": 1}))
        self.restart()
        self.assertEqual(self.read_all(items), [])
        # The unlock proved the new HSM key: the old one leaves the token.
        deadline = time.monotonic() + 20
        while self.v.get("/v1/rotate/status").json["hsm_keys_to_retire"] and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertEqual(self.v.get("/v1/rotate/status").json["hsm_keys_to_retire"], [])
        self.assertIn("deleted retired HSM key 'vaultd-root' version 1", self.v.read_log())
        # The audit chain survived the root key switch (re-anchored).
        r = self.v.get("/v1/audit/verify")
        self.assertEqual((r.status, r.json["ok"]), (200, True), r)
        recs = self.v.get("/v1/audit?action=rotate.root&limit=100").json["records"]
        self.assertTrue(any("done" in (x["detail"] or "") for x in recs), recs)
        # And another restart still unlocks with only the new HSM key.
        self.restart()
        self.assertEqual(self.read_all(items), [])

    def test_secret_data_keys(self):
        self.boot()
        items = {f"acme/k/s{i:02d}": f"v{i}" for i in range(40)}
        items["acme2/x"] = "other tenant"
        self.put_many(items)
        self.assertEqual(self.v.put("/v1/secrets/acme/k/s00", generic("v0-new")).status, 200)
        items["acme/k/s00"] = "v0-new"
        self.v.stop()
        with self.db() as c:
            before = dict(((p, v), d) for p, v, d in c.execute(
                "SELECT path, version, data_blob FROM secret_versions"))
        self.restart()
        job = self.run_job("secret/acme/k")
        self.assertEqual(job["done"], 41)                    # 40 secrets + one extra version
        self.assertEqual(self.read_all(items), [])
        self.assertEqual(self.v.get("/v1/secrets/acme/k/s00?version=1").json["data"], {"value": "v0"})
        self.v.stop()
        with self.db() as c:
            after = dict(((p, v), d) for p, v, d in c.execute(
                "SELECT path, version, data_blob FROM secret_versions"))
        for key, blob in after.items():
            if key[0].startswith("acme/k/"):
                self.assertNotEqual(blob, before[key], f"{key} was not re-encrypted")
            else:
                self.assertEqual(blob, before[key], f"{key} is outside the prefix")

    def test_status_shape_and_errors(self):
        self.boot()
        self.assertEqual(self.v.put("/v1/secrets/acme/a", generic("1")).status, 200)
        st = self.v.get("/v1/rotate/status")
        self.assertEqual(st.status, 200, st)
        self.assertEqual(set(st.json), {"root_key", "hsm_keys_to_retire", "tenants", "jobs", "within", "credentials"})
        self.assertEqual(st.json["tenants"][0]["wrap_count"], 1)
        self.assertEqual(self.v.post("/v1/rotate/kek/nosuch").status, 404)
        self.assertEqual(self.v.post("/v1/rotate/kek/acme/x").status, 400)
        self.assertEqual(self.v.post("/v1/rotate/bogus").status, 404)
        self.assertEqual(self.v.get("/v1/rotate/root").status, 405)
        self.assertEqual(self.v.get("/v1/rotate/jobs/999").status, 404)
        self.assertEqual(self.v.post("/v1/rotate/root", {"force": True}).status, 400)
        self.assertEqual(self.v.get("/v1/rotate/status?within=soon").status, 400)
        # A second request while one is active gets the same job.
        a = self.rotate("root")
        b = self.rotate("root")
        if b["already_active"]:
            self.assertEqual(a["job"]["id"], b["job"]["id"])
        self.wait_job(a["job"]["id"])
        # Locked: progress and jobs still readable; starting one is not.
        self.assertEqual(self.v.post("/v1/sys/lock").status, 200)
        st = self.v.get("/v1/rotate/status")
        self.assertEqual(st.status, 200, st)
        self.assertEqual(st.json["jobs"][0]["id"], a["job"]["id"])
        self.assertEqual(self.v.get(f"/v1/rotate/jobs/{a['job']['id']}").status, 200)
        for what in ("root", "kek/acme", "hsm", "hsm/retire", "all"):
            r = self.v.post(f"/v1/rotate/{what}")
            self.assertEqual((r.status, r.json["error"]), (503, "locked"), what)
        self.assertEqual(self.v.get("/v1/rotate/status").json["jobs"][0]["id"], a["job"]["id"], "nothing queued")
        self.unlock()

    def test_explicit_hsm_retire(self):
        self.boot()
        self.assertEqual(self.v.put("/v1/secrets/acme/a", generic("1")).status, 200)
        self.run_job("hsm")
        r = self.v.post("/v1/rotate/hsm/retire")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["deleted"], [{"label": "vaultd-root", "version": 1}])
        self.assertEqual(self.v.get("/v1/rotate/status").json["hsm_keys_to_retire"], [])
        # Nothing left to retire: an empty answer, not an error.
        self.assertEqual(self.v.post("/v1/rotate/hsm/retire").json["deleted"], [])
        self.restart()
        self.assertEqual(self.v.get("/v1/secrets/acme/a").json["data"], {"value": "1"})

    def test_rotate_all(self):
        self.boot()
        items = {f"{t}/s/{i}": f"{t}{i}" for t in ("acme", "globex", "initech") for i in range(30)}
        self.put_many(items)
        r = self.v.post("/v1/rotate/all")
        self.assertEqual(r.status, 202, r)
        kinds = [(j["kind"], j["target"]) for j in r.json["jobs"]]
        self.assertEqual(kinds, [("hsm", ""), ("root", ""), ("kek", "acme"), ("kek", "globex"),
                                 ("kek", "initech"), ("secret", "")])
        for j in r.json["jobs"]:
            self.wait_job(j["id"])
        self.assertEqual(self.read_all(items), [])
        self.restart()
        self.assertEqual(self.read_all(items), [])
        self.v.stop()
        self.assert_no_retired_blobs(tenants_rotated=["acme", "globex", "initech"])


class Concurrency(RotationCase):
    batch_size = 20

    def test_reads_never_fail_during_rotations(self):
        self.boot()
        items = {f"acme/c/s{i:03d}": f"value-{i}" for i in range(400)}
        self.put_many(items)
        stop = threading.Event()
        failures, reads = [], [0]

        def reader(offset):
            conn = UnixHTTPConnection(self.v.sock)
            paths = sorted(items)
            i = offset
            try:
                while not stop.is_set():
                    p = paths[i % len(paths)]
                    r = self.v.get(f"/v1/secrets/{p}", conn=conn)
                    if r.status != 200 or r.json["data"] != {"value": items[p]}:
                        failures.append((p, r))
                    reads[0] += 1
                    i += 7
            finally:
                conn.close()

        def writer():
            conn = UnixHTTPConnection(self.v.sock)
            n = 0
            try:
                while not stop.is_set():
                    r = self.v.put("/v1/secrets/acme/c/live", generic(f"w{n}"), conn=conn)
                    if r.status != 200:
                        failures.append(("write", r))
                    n += 1
            finally:
                conn.close()
        ts = [threading.Thread(target=reader, args=(k,)) for k in range(3)] + [threading.Thread(target=writer)]
        for t in ts:
            t.start()
        try:
            for what in ("kek/acme", "root", "secret/acme", "hsm", "kek/acme"):
                self.run_job(what)
        finally:
            stop.set()
            for t in ts:
                t.join()
        self.assertEqual(failures, [])
        self.assertGreater(reads[0], 100)


class Crash(RotationCase):
    batch_size = 10         # 1000 transactions; the kill lands after the 10th

    def test_kill9_mid_kek_rotation_10000(self):
        """Must show: kill -9 in the middle of a KEK rotation of 10,000
        secrets; after restart and unlock all 10,000 read back."""
        # A test build pauses the job once it has done 100 rows
        # (VAULTD_TEST_ROTATION_PAUSE_FILE holding "100"), so the kill lands
        # in the middle however fast the machine; the kill is still a
        # SIGKILL from outside, with the worker between two transactions.
        pause = os.path.join(self.v.dir, "pause")
        with open(pause, "w") as f:
            f.write("100\n")
        self.boot(env={"VAULTD_TEST_ROTATION_PAUSE_FILE": pause})
        items = {f"acme/bulk/s{i:05d}": f"bulk-{i}-{'x' * (i % 17)}" for i in range(10000)}
        self.put_many(items)
        job = self.rotate("kek/acme")["job"]
        deadline = time.monotonic() + 120
        while True:
            j = self.v.get(f"/v1/rotate/jobs/{job['id']}").json["job"]
            if j["state"] == "running" and j["done"] >= 100:
                break
            self.assertNotEqual(j["state"], "done", "the job did not pause: build with "
                                "-DVAULTD_FAULT_INJECTION=ON (the dev preset does)")
            self.assertLess(time.monotonic(), deadline, j)
            time.sleep(0.05)
        self.v.kill9()
        with self.db() as c:
            old = c.execute("SELECT COUNT(*) FROM secret_versions WHERE kek_version = 1").fetchone()[0]
            new = c.execute("SELECT COUNT(*) FROM secret_versions WHERE kek_version = 2").fetchone()[0]
        self.assertGreater(new, 0)
        self.assertGreater(old, 0, "killed after the rotation had finished")
        self.restart(env={"VAULTD_TEST_ROTATION_PAUSE_FILE": None})
        # Readable at once, half-rotated, and the job resumes to the end.
        self.assertEqual(self.read_all(items), [])
        j = self.wait_job(job["id"])
        self.assertEqual(j["to_version"], 2)
        self.assertEqual(self.read_all(items), [])
        self.v.stop()
        self.assert_no_retired_blobs(tenants_rotated=["acme"])
        with self.db() as c:
            self.assertEqual(c.execute("PRAGMA integrity_check").fetchone()[0], "ok")


class FaultInjection(RotationCase):
    """The daemon kills itself at a chosen point (test builds only)."""
    batch_size = 10

    def crash_and_recover(self, point, what, tenants_rotated=()):
        self.boot()
        items = {f"{t}/f/s{i:02d}": f"{t}-{i}" for t in ("acme", "globex") for i in range(45)}
        self.put_many(items)
        self.v.stop()
        self.restart(env={"VAULTD_TEST_CRASH_ROTATION": point})
        job = self.rotate(what)["job"]
        try:
            rc = self.v.proc.wait(120)
        except Exception:
            self.fail(f"vaultd did not kill itself at {point}: build with -DVAULTD_FAULT_INJECTION=ON "
                      "(the dev preset does)")
        self.assertEqual(rc, -9, f"expected SIGKILL at {point}")
        self.v.proc = None
        with self.db() as c:
            self.assertEqual(c.execute("PRAGMA integrity_check").fetchone()[0], "ok")
        self.restart(env={"VAULTD_TEST_CRASH_ROTATION": None})
        self.assertEqual(self.read_all(items), [], f"unreadable after a crash at {point}")
        self.wait_job(job["id"])
        self.assertEqual(self.read_all(items), [])
        self.v.stop()
        return self.assert_no_retired_blobs(tenants_rotated)

    def test_kek_start(self):
        self.crash_and_recover("kek:start", "kek/acme", ["acme"])

    def test_kek_batch(self):
        self.crash_and_recover("kek:batch:2", "kek/acme", ["acme"])

    def test_kek_finish(self):
        self.crash_and_recover("kek:finish", "kek/acme", ["acme"])

    def test_root_start(self):
        rk, _, _ = self.crash_and_recover("root:start", "root")
        self.assertEqual(rk, 2)

    def test_root_batch(self):
        # Two tenants = two KEKs: one batch of 1 is not enough at batch_size 10,
        # so crash after the first (and only) batch instead.
        rk, _, _ = self.crash_and_recover("root:batch:1", "root")
        self.assertEqual(rk, 2)

    def test_root_finish(self):
        rk, _, _ = self.crash_and_recover("root:finish", "root")
        self.assertEqual(rk, 2)

    def test_secret_batch(self):
        self.crash_and_recover("secret:batch:3", "secret/acme")

    def test_hsm_start(self):
        # The HSM step is one transaction: a crash after it committed.
        _, hsm, _ = self.crash_and_recover("hsm:start", "hsm")
        self.assertEqual(hsm, 2)


class HsmRetireAudit(RotationCase):
    """Deleting old HSM keys from the token is a side effect outside the
    database: its "attempt" record commits, and reaches the audit mirror,
    before any key leaves the token; the outcome record follows."""

    def setUp(self):
        super().setUp()
        self.mirror = os.path.join(self.v.dir, "audit.jsonl")
        with open(self.v.conf) as f:
            conf = f.read()
        self.v.write_config(conf + f"[audit]\njsonl_path = {self.mirror}\njsonl_on_failure = refuse\n")

    def token_keys(self):
        """{(label, version)} of the private keys in the vault's token."""
        p = subprocess.run(["pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", "vaultd-test",
                            "--login", "--pin", "1234-test-pin", "--list-objects", "--type", "privkey"],
                           env=self.v.env, capture_output=True, text=True, check=True)
        return {(label, int(key_id, 16)) for label, key_id in
                re.findall(r"label:\s*(\S+)\s*\n\s*ID:\s*([0-9a-f]+)", p.stdout)}

    def wait_log(self, *needles, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.v.read_log()
            if any(n in log for n in needles):
                return log
            time.sleep(0.1)
        self.fail(f"none of {needles} in the log:\n{self.v.read_log()}")

    def test_retirement_waits_for_its_audit_record(self):
        if not shutil.which("pkcs11-tool"):
            self.skipTest("pkcs11-tool (OpenSC) is not installed")
        self.boot()
        self.assertEqual(self.v.put("/v1/secrets/acme/a", generic("1")).status, 200)
        self.run_job("hsm")
        self.assertEqual(self.token_keys(), {("vaultd-root", 1), ("vaultd-root", 2)})

        # The unlock kicks the retirement; the pause file holds it back
        # while the mirror breaks (a directory cannot be opened for writing).
        pause = os.path.join(self.v.dir, "pause")
        open(pause, "w").close()
        self.restart(env={"VAULTD_TEST_ROTATION_PAUSE_FILE": pause})
        os.unlink(self.mirror)
        os.mkdir(self.mirror)
        os.unlink(pause)
        self.wait_log("cannot retire the old HSM keys", "cannot record the retirement")
        self.assertIn(("vaultd-root", 1), self.token_keys(),
                      "the old HSM key was deleted although its audit record was refused")

        # Once the mirror works, the next unlock retires it, with both records.
        os.rmdir(self.mirror)
        self.assertEqual(self.v.get("/v1/rotate/status").json["hsm_keys_to_retire"],
                         [{"label": "vaultd-root", "version": 1}])
        self.assertEqual(self.v.post("/v1/sys/lock").status, 200)
        self.unlock()
        deadline = time.monotonic() + 20
        while self.v.get("/v1/rotate/status").json["hsm_keys_to_retire"] and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertEqual(self.v.get("/v1/rotate/status").json["hsm_keys_to_retire"], [])
        self.assertEqual(self.token_keys(), {("vaultd-root", 2)})
        recs = sorted(self.v.get("/v1/audit?action=rotate.hsm_retire&limit=10").json["records"],
                      key=lambda x: x["id"])
        # The attempt (result "attempt", status 202) before the keys left
        # the token, then the outcome.
        self.assertEqual([(x["principal"], x["result"], x["status"], x["detail"].split(" ", 1)[0]) for x in recs],
                         [("system:vaultd", "attempt", 202, "deleting"), ("system:vaultd", "allowed", 200, "deleted")],
                         recs)
        self.assertTrue(recs[0]["detail"].startswith("deleting HSM keys vaultd-root:1 from the token"), recs)
        self.assertTrue(recs[1]["detail"].startswith("deleted HSM keys vaultd-root:1 from the token"), recs)
        with open(self.mirror) as f:
            mirrored = [json.loads(line) for line in f]
        self.assertEqual([x["hash"] for x in mirrored if x["action"] == "rotate.hsm_retire"],
                         [x["hash"] for x in recs], "both records reached the mirror")
        self.assertEqual(self.v.get("/v1/secrets/acme/a").json["data"], {"value": "1"})
        self.assertEqual(self.v.stop(), 0)


class AutoKek(RotationCase):
    extra = "[keys]\nkek_max_wraps = 20\n"

    def test_rotates_at_wrap_limit(self):
        self.boot()
        items = {f"acme/a/s{i:02d}": f"v{i}" for i in range(25)}
        self.put_many(items, threads=1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            st = self.v.get("/v1/rotate/status").json
            jobs = [j for j in st["jobs"] if j["kind"] == "kek" and j["state"] == "done"]
            if jobs:
                break
            time.sleep(0.2)
        self.assertTrue(jobs, st)
        self.assertEqual(jobs[0]["principal"], "system:vaultd")
        self.assertGreaterEqual(st["tenants"][0]["kek_version"], 2)
        self.assertEqual(self.read_all(items), [])


class Staging(RotationCase):
    extra = "[secrets]\nkeep_versions = 3\n"

    def test_pending_promote_previous(self):
        self.boot()
        p = "/v1/secrets/acme/chat/slack"
        self.assertEqual(self.v.put(p, generic("old")).status, 200)
        r = self.v.put(p, dict(generic("new"), stage="pending"))
        self.assertEqual((r.status, r.json["version"], r.json["stage"]), (200, 2, "pending"), r)
        # Readers without a stage still get the current value.
        g = self.v.get(p).json
        self.assertEqual((g["data"], g["version"], g["stage"], g["pending_version"], g["previous_version"]),
                         ({"value": "old"}, 1, "current", 2, None))
        g = self.v.get(p + "?stage=pending").json
        self.assertEqual((g["data"], g["version"], g["stage"]), ({"value": "new"}, 2, "pending"))
        self.assertEqual(self.v.get(p + "?stage=previous").status, 404)
        self.assertEqual(self.v.get(p + "?stage=next").status, 400)
        self.assertEqual(self.v.get(p + "?stage=pending&version=1").status, 400)
        self.assertEqual(self.v.post(p + "/promote", {"version": 1}).status, 409)
        r = self.v.post(p + "/promote")
        self.assertEqual((r.status, r.json["version"], r.json["previous_version"]), (200, 2, 1), r)
        g = self.v.get(p).json
        self.assertEqual((g["data"], g["pending_version"], g["previous_version"]), ({"value": "new"}, None, 1))
        self.assertEqual(self.v.get(p + "?stage=previous").json["data"], {"value": "old"})
        r = self.v.post(p + "/promote")
        self.assertEqual((r.status, r.json["error"]), (409, "no_pending"), r)
        # Pending needs an existing, live secret.
        self.assertEqual(self.v.put("/v1/secrets/acme/none", dict(generic("x"), stage="pending")).status, 404)
        self.assertEqual(self.v.put(p, dict(generic("x"), stage="later")).status, 400)
        vs = self.v.get(p + "?versions=1").json
        self.assertEqual([(x["version"], x["stage"]) for x in vs["versions"]], [(1, "previous"), (2, "current")])
        # The promotion is audited.
        recs = self.v.get("/v1/audit?action=secret.promote&limit=10").json["records"]
        self.assertEqual([x["status"] for x in recs], [409, 200, 409])

    def test_keep_versions_destroys_oldest(self):
        self.boot()
        p = "/v1/secrets/acme/k"
        for i in range(1, 7):
            self.assertEqual(self.v.put(p, generic(f"v{i}")).status, 200)
        vs = {x["version"]: x for x in self.v.get(p + "?versions=1").json["versions"]}
        # Newest 3 kept (6 current, 5 previous, 4); 1-3 destroyed.
        self.assertEqual([v for v in sorted(vs) if vs[v]["destroyed"]], [1, 2, 3])
        self.assertEqual(self.v.get(p + "?version=2").status, 404)
        self.assertEqual(self.v.get(p + "?version=4").json["data"], {"value": "v4"})
        # A pending version protects the current and previous from pruning.
        self.assertEqual(self.v.put(p, dict(generic("p7"), stage="pending")).status, 200)
        for i in range(8, 11):
            self.assertEqual(self.v.put(p, dict(generic(f"p{i}"), stage="pending")).status, 200)
        vs = {x["version"]: x for x in self.v.get(p + "?versions=1").json["versions"]}
        kept = sorted(v for v in vs if not vs[v]["destroyed"])
        self.assertEqual(kept, [5, 6, 8, 9, 10])
        self.assertEqual(self.v.get(p).json["data"], {"value": "v6"})
        self.assertEqual(self.v.get(p + "?stage=previous").json["data"], {"value": "v5"})
        self.v.stop()
        with self.db() as c:
            n = c.execute("SELECT COUNT(*) FROM secret_versions WHERE path = 'acme/k' AND "
                          "(dek_blob IS NOT NULL OR data_blob IS NOT NULL) AND version IN (1,2,3,4,7)").fetchone()[0]
        self.assertEqual(n, 0)

    def test_max_age_status(self):
        self.boot()
        bad = self.v.put("/v1/secrets/acme/x", dict(generic("x"), metadata={"max_age": "90 days"}))
        self.assertEqual(bad.status, 400, bad)
        self.assertIn("metadata.max_age", bad.json["fields"])
        self.assertEqual(self.v.put("/v1/secrets/acme/x", dict(generic("x"), metadata={"max_age": 90})).status, 400)
        for path, age in (("acme/old", "30d"), ("acme/soon", "2d"), ("acme/fresh", "90d"), ("globex/old", "1h")):
            r = self.v.put(f"/v1/secrets/{path}", dict(generic("v"), metadata={"max_age": age}))
            self.assertEqual(r.status, 200, r)
        self.assertEqual(self.v.put("/v1/secrets/acme/none", generic("v")).status, 200)
        self.v.stop()
        with sqlite3.connect(self.v.db) as c:
            c.execute("UPDATE secret_versions SET created_at = created_at - 40 * 86400 WHERE path = 'acme/old'")
            c.execute("UPDATE secret_versions SET created_at = created_at - 7200 WHERE path = 'globex/old'")
        self.restart()
        st = self.v.get("/v1/rotate/status?within=7d").json
        got = [(x["path"], x["status"]) for x in st["credentials"]]
        self.assertEqual(got, [("acme/old", "overdue"), ("globex/old", "overdue"), ("acme/soon", "due_soon")])
        self.assertEqual(st["within"], "7d")
        self.assertEqual(st["credentials"][0]["max_age"], "30d")
        self.assertGreaterEqual(st["credentials"][0]["age_seconds"], 40 * 86400)


class Access(RotationCase):
    def test_who_may_rotate(self):
        self.v.allow_other_uids()
        self.boot()
        self.assertEqual(self.v.put("/v1/secrets/acme/a/b", generic("1")).status, 200)
        self.assertEqual(self.v.put("/v1/secrets/globex/a", generic("2")).status, 200)
        self.assertEqual(self.v.put("/v1/roles/acme-rot", {"rules": [
            {"path": "acme/*", "capabilities": ["rotate", "read"]}]}).status, 200)
        self.assertEqual(self.v.put("/v1/roles/acme-all", {"rules": [
            {"path": "acme", "capabilities": ["rotate"]}]}).status, 200)
        for role, path, status in (("operator", "root", 403), ("operator", "hsm", 403), ("operator", "all", 403),
                                   ("operator", "kek/acme", 202), ("acme-rot", "kek/acme", 403),
                                   ("acme-rot", "secret/acme/a", 202), ("acme-rot", "secret/globex", 403),
                                   ("acme-rot", "secret", 403), ("acme-rot", "status", 403),
                                   ("acme-all", "kek/acme", 202), ("acme-all", "kek/globex", 403),
                                   ("auditor", "kek/acme", 403)):
            r = self.v.put("/v1/services/probe", {"uid": NOBODY, "roles": [role]})
            self.assertEqual(r.status, 200, r)
            method = "GET" if path == "status" else "POST"
            got = as_uid(NOBODY, NOGROUP, lambda: self.v.request(method, f"/v1/rotate/{path}").status)
            self.assertEqual(got, status, f"{role} on {path}")
        self.assertEqual(self.v.get("/v1/secrets/acme/a/b").json["data"], {"value": "1"})
        # Every refusal is in the audit log.
        recs = self.v.get("/v1/audit?principal=service:probe&result=denied&limit=100").json["records"]
        self.assertEqual(len(recs), 9)


class Backup(RotationCase):
    def test_backup_and_restore(self):
        self.boot()
        items = {f"acme/b/s{i}": f"v{i}" for i in range(20)}
        self.put_many(items)
        out = os.path.join(self.v.dir, "backups")
        os.mkdir(out, 0o700)
        target = os.path.join(out, "vault-1.db")
        r = self.v.post("/v1/sys/backup", {"path": target})
        self.assertEqual(r.status, 200, r)
        m = r.json
        self.assertEqual(stat.S_IMODE(os.stat(target).st_mode), 0o600)
        with open(target, "rb") as f:
            data = f.read()
        self.assertEqual((m["bytes"], m["sha256"]), (len(data), hashlib.sha256(data).hexdigest()))
        self.assertEqual((m["secrets"], m["root_key_version"], m["hsm_key"]["version"]), (20, 1, 1))
        self.assertEqual(m["schema_version"], 7)
        # Never overwrites; refuses relative paths and missing directories.
        r = self.v.post("/v1/sys/backup", {"path": target})
        self.assertEqual((r.status, r.json["error"]), (409, "exists"), r)
        with open(target, "rb") as f:
            self.assertEqual(f.read(), data)
        self.assertEqual(self.v.post("/v1/sys/backup", {"path": "rel.db"}).status, 400)
        self.assertEqual(self.v.post("/v1/sys/backup", {"path": out + "/no/such/x.db"}).status, 400)
        self.assertEqual(self.v.post("/v1/sys/backup", {}).status, 400)
        # Changes after the backup are lost by a restore; the rest reads back.
        self.assertEqual(self.v.put("/v1/secrets/acme/b/s0", generic("after")).status, 200)
        self.v.stop()
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(self.v.db + suffix)
            except FileNotFoundError:
                pass
        with open(self.v.db, "wb") as f:
            f.write(data)
        os.chmod(self.v.db, 0o600)
        self.restart()
        self.assertEqual(self.read_all(items), [])
        r = self.v.get("/v1/audit/verify")
        self.assertEqual((r.status, r.json["ok"]), (200, True), r)


class Retention(RotationCase):
    extra = "[audit]\nretain_days = 1\n"

    def test_prune_keeps_chain_verifiable(self):
        """Records cannot be aged in the database (their time is hashed), so
        a test build moves the daemon's retention clock two days ahead
        (VAULTD_TEST_AUDIT_CLOCK_OFFSET): everything but the newest record is
        then past the one-day retention."""
        self.boot()
        for i in range(5):
            self.assertEqual(self.v.put(f"/v1/secrets/acme/r{i}", generic("x")).status, 200)
        # Young records are left alone.
        self.restart()
        time.sleep(0.5)
        self.assertEqual(self.v.get("/v1/audit?action=audit.prune&limit=10").json["records"], [])
        self.v.stop()
        with self.db() as c:
            last = c.execute("SELECT MAX(id) FROM audit").fetchone()[0]
        self.restart(env={"VAULTD_TEST_AUDIT_CLOCK_OFFSET": str(2 * 86400)})
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            recs = self.v.get("/v1/audit?action=audit.prune&limit=10").json["records"]
            if recs:
                break
            time.sleep(0.2)
        self.assertEqual(len(recs), 1, recs)
        self.assertEqual(recs[0]["principal"], "system:vaultd")
        self.assertRegex(recs[0]["detail"], r"^pruned records 1\.\.\d+ older than .*; chain continues from hash [0-9a-f]{64}; mac [0-9a-f]{64}$")
        r = self.v.get("/v1/audit/verify")
        self.assertEqual((r.status, r.json["ok"]), (200, True), r)
        self.v.stop()
        with self.db() as c:
            first = c.execute("SELECT MIN(id) FROM audit").fetchone()[0]
        self.assertGreater(first, last - 1)
        # Deleting the oldest remaining record is still caught: the
        # checkpoint says where the chain must start.
        with sqlite3.connect(self.v.db) as c:
            c.execute("DELETE FROM audit WHERE id = ?", (first,))
        self.restart(env={"VAULTD_TEST_AUDIT_CLOCK_OFFSET": None})
        r = self.v.get("/v1/audit/verify")
        self.assertEqual((r.json["ok"], r.json["first_broken"]), (False, first + 1), r)


if __name__ == "__main__":
    main()
