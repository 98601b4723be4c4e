#!/usr/bin/env python3
"""vaultd end to end: the findings of the security review (issue 11).

Each class is one finding, reproduced against a real vaultd the way the
review confirmed it (an attacker with the database file while the daemon is
stopped, an unbound local uid on the socket, a mirror that cannot be
written); each test failed on the code before its fix. The database is
edited with the sqlite3 shell, as an attacker would.
"""
import hashlib
import json
import os
import struct
import subprocess
import threading
import time

from harness import ADMIN, PASSPHRASE, UnixHTTPConnection, as_uid, main, wrong_totp
from test_audit import NOGROUP, NOBODY, AuditCase
from test_rotation import RotationCase


def record_hash(prev, rec):
    """audit_record_hash() of vaultd/audit.c: SHA-256 over a tag, the previous
    hash and every field length-prefixed (None and "" differ)."""
    h = hashlib.sha256(b"vaultd-audit-v1" + prev)

    def field(b):
        h.update(struct.pack(">I", len(b)) + b)

    def s(v):
        if v is None:
            h.update(b"\xff")
        else:
            field(v.encode())

    def i(v):
        field(struct.pack(">q", v))

    i(rec["id"]); i(rec["time"]); s(rec["principal"]); i(rec["uid"]); i(rec["pid"]); s(rec["action"])
    s(rec["path"]); s(rec["capability"]); s(rec["result"]); i(rec["status"]); s(rec["detail"])
    s(rec["request_id"])
    return h.digest()


class SecurityCase(AuditCase):
    def restart_unlocked(self):
        """Restart and unlock with a recovery code (TOTP codes are scarce);
        uid 0 is bound as an auditor service, so no login is needed."""
        v = self.v
        v.start()
        code = v.recovery_codes[ADMIN].pop()
        self.check(self.unlock_req(recovery_code=code), 200, "unlock after the restart")

    def boot_auditor(self):
        token = self.boot()
        self.check(self.v.put("/v1/services/auditbot", {"uid": 0, "roles": ["auditor"]}, token=token), 200,
                   "bind uid 0 to an auditor service")
        return token

    def verify(self):
        return self.check(self.v.get("/v1/audit/verify", token=False), 200, "GET /v1/audit/verify").json


class UnlockSession(SecurityCase):
    """Issue 14, point 7: a TOTP step is good once, so "unlock, then log in"
    needed two codes and there was no emergency lock right after an unlock.
    Unlock may now log the same admin in ("session": true), with one code."""

    def test_unlock_then_lock_needs_one_code(self):
        v = self.v
        v.start()
        v.remember_enrolment(ADMIN, v.init())
        code = v.fresh_totp(ADMIN)
        r = self.check(self.unlock_req(totp=code, session=True), 200, "unlock with a session")
        self.assertRegex(r.json["token"], r"^vt\.[0-9a-f]{64}$")
        self.assertEqual((r.json["locked"], r.json["user"]), (False, ADMIN))
        self.assertIn("admin", r.json["roles"])
        token = r.json["token"]
        # The same code does not log in again: the unlock's session is the only one it bought.
        again = v.post("/v1/auth/login", {"user": ADMIN, "passphrase": PASSPHRASE, "totp": code}, token=False)
        self.assertEqual(again.status, 401, again)
        # The emergency brake, at once, with no second code.
        self.check(v.post("/v1/sys/lock", token=token), 200, "lock with the unlock's session")
        self.assertTrue(v.get("/v1/sys/health", token=False).json["locked"])
        # The lock ended that session like every other.
        self.check(self.unlock_req(recovery_code=v.recovery_codes[ADMIN].pop()), 200, "unlock without a session")
        self.assertEqual(v.get("/v1/auth/self", token=token).status, 401)
        self.assertNotIn("token", self.unlock_req(recovery_code=v.recovery_codes[ADMIN].pop()).json)
        # The records: the unlock says it came with a session, the lock is the admin's.
        self.token = v.login()
        recs = self.audit_all(action="sys.unlock")
        self.assertEqual([x["detail"] for x in recs], ["with a session", None, None])
        locks = self.audit_all(action="sys.lock")
        self.assertEqual([(x["principal"], x["result"]) for x in locks], [(f"user:{ADMIN}", "allowed")])

    def test_session_field_is_checked(self):
        v = self.v
        v.start()
        v.remember_enrolment(ADMIN, v.init())
        r = self.unlock_req(totp=v.fresh_totp(ADMIN), session="yes")
        self.assertEqual((r.status, list(r.json["fields"])), (400, ["session"]), r)
        self.assertTrue(v.get("/v1/sys/health", token=False).json["locked"], "a refused unlock unlocks nothing")
        r = self.unlock_req(passphrase=PASSPHRASE + "x", totp=v.fresh_totp(ADMIN), session=True)
        self.assertEqual(r.status, 401, r)
        self.assertNotIn("token", r.json)
        self.assertTrue(v.get("/v1/sys/health", token=False).json["locked"])
        self.check(self.unlock_req(recovery_code=v.recovery_codes[ADMIN].pop()), 200, "unlock")
        r = v.post("/v1/auth/login", {"user": ADMIN, "passphrase": PASSPHRASE, "totp": v.fresh_totp(ADMIN),
                                      "session": True}, token=False)
        self.assertEqual((r.status, r.json["fields"]), (400, {"session": "only unlock takes it"}), r)


class WipedLog(SecurityCase):
    """Finding 1: a full wipe of the audit table and its anchor verified as
    a fresh, intact log."""

    def test_full_wipe_is_reported_as_tampering(self):
        v = self.v
        token = self.boot_auditor()
        for i in range(3):
            self.check(v.put(f"/v1/secrets/acme/app/s{i}", {"type": "generic", "data": {"k": "v"}}, token=token),
                       200, f"write #{i}")
        self.assertIs(self.verify().get("ok"), True)
        v.stop()
        self.sql("DELETE FROM audit; DELETE FROM meta WHERE key = 'audit_head'")
        self.restart_unlocked()
        j = self.verify()
        self.assertIs(j.get("ok"), False, f"a wiped log of an initialised vault is tampering: {j}")
        self.assertIn("anchor", j.get("reason", ""), j)
        p = self.ctl("audit", "verify")
        self.assertEqual(p.returncode, 1, f"vaultctl audit verify exits 1:\n{p.stdout}\n{p.stderr}")


class ForgedCheckpoint(SecurityCase):
    """Finding 2: deleting records 1..20 and appending a record that claims
    to be retention's checkpoint for them verified as intact."""

    def forge(self, mac):
        v = self.v
        token = self.boot_auditor()
        for i in range(25):
            self.check(v.put(f"/v1/secrets/acme/app/s{i}", {"type": "generic", "data": {"k": "v"}}, token=token),
                       200, f"write #{i}")
        v.stop()
        cols = "id, time, principal, uid, pid, action, path, capability, result, status, detail, request_id"
        last = json.loads(self.sql("SELECT json_object('id', id, 'hash', lower(hex(hash))) FROM audit "
                                   "ORDER BY id DESC LIMIT 1"))
        h20 = self.sql("SELECT lower(hex(hash)) FROM audit WHERE id = 20").strip()
        detail = f"pruned records 1..20 older than 2026-01-01T00:00:00Z; chain continues from hash {h20}"
        if mac:
            detail += f"; mac {h20}"
        rec = {"id": last["id"] + 1, "time": int(time.time()), "principal": "system:vaultd", "uid": 0, "pid": 1,
               "action": "audit.prune", "path": None, "capability": "", "result": "allowed", "status": 200,
               "detail": detail, "request_id": "ffeeddccbbaa99887766554433221100"}
        digest = record_hash(bytes.fromhex(last["hash"]), rec).hex()
        self.sql(f"DELETE FROM audit WHERE id <= 20; INSERT INTO audit ({cols}, hash) VALUES "
                 f"({rec['id']}, {rec['time']}, 'system:vaultd', 0, 1, 'audit.prune', NULL, '', 'allowed', 200, "
                 f"'{detail}', '{rec['request_id']}', x'{digest}')")
        self.restart_unlocked()
        j = self.verify()
        self.assertIs(j.get("ok"), False, f"a forged checkpoint must not cover deleted records: {j}")
        self.assertEqual(j.get("first_broken"), 21, j)

    def test_checkpoint_text_alone_is_not_trusted(self):
        self.forge(mac=False)

    def test_checkpoint_with_a_made_up_mac_is_not_trusted(self):
        self.forge(mac=True)


class Effects(SecurityCase):
    """Finding 3: under [audit] jsonl_on_failure = refuse with a mirror that
    cannot be written, actions took effect without their record; and
    sessions outlived the lock, restart or passphrase they were made under."""

    def setUp(self):
        super().setUp()
        self.v.spend_recovery_codes = True
        self.mirror = os.path.join(self.v.dir, "audit.jsonl")
        with open(self.v.conf) as f:
            conf = f.read()
        self.v.write_config(conf + f"\n[audit]\njsonl_path = {self.mirror}\njsonl_on_failure = refuse\n")

    def break_mirror(self):
        os.unlink(self.mirror)
        os.mkdir(self.mirror)   # cannot be opened for writing now

    def mend_mirror(self):
        os.rmdir(self.mirror)

    def locked(self):
        return self.v.get("/v1/sys/health", token=False).json["locked"]

    def recovery_unlock(self):
        return self.unlock_req(recovery_code=self.v.recovery_codes[ADMIN].pop())

    def test_unrecorded_unlock_is_undone(self):
        v = self.v
        token = self.boot()
        self.check(v.post("/v1/sys/lock", token=token), 200, "lock")
        self.break_mirror()
        r = self.recovery_unlock()
        self.assertEqual((r.status, (r.json or {}).get("error")), (503, "audit_unavailable"), r)
        self.assertTrue(self.locked(), "an unlock whose record failed must not leave the vault unlocked")
        self.mend_mirror()
        self.check(self.recovery_unlock(), 200, "unlock once the mirror works")
        self.assertFalse(self.locked())

    def test_unrecorded_backup_leaves_no_file(self):
        v = self.v
        token = self.boot()
        self.break_mirror()
        target = os.path.join(v.dir, "backup.db")
        r = v.post("/v1/sys/backup", {"path": target}, token=token)
        self.assertEqual((r.status, (r.json or {}).get("error")), (503, "audit_unavailable"), r)
        self.assertFalse(os.path.exists(target), "a backup whose record failed must not be left behind")
        self.mend_mirror()
        self.check(v.post("/v1/sys/backup", {"path": target}, token=token), 200, "backup once the mirror works")
        self.assertTrue(os.path.exists(target))

    def test_lock_ends_every_session_even_unrecorded(self):
        v = self.v
        token = self.boot()
        self.break_mirror()
        r = v.post("/v1/sys/lock", token=token)
        self.assertEqual(r.status, 503, f"the lock's record could not be written: {r}")
        self.assertTrue(self.locked(), "locking is never refused: it is the emergency brake")
        self.mend_mirror()
        self.check(self.recovery_unlock(), 200, "unlock")
        r = v.get("/v1/auth/self", token=token)
        self.assertEqual(r.status, 401, f"a token from before the lock must not work after the next unlock: {r}")

    def test_a_login_in_flight_during_a_lock_gets_no_working_token(self):
        v = self.v
        v.env["VAULTD_TEST_LOGIN_DELAY_MS"] = "1500"   # test builds: login waits before storing its token
        token = self.boot()
        out = {}
        t = threading.Thread(target=lambda: out.update(r=v.login_request(ADMIN)))
        t.start()
        time.sleep(0.5)
        self.check(v.post("/v1/sys/lock", token=token), 200, "lock while the login is in flight")
        t.join(20)
        r = out["r"]
        self.check(self.recovery_unlock(), 200, "unlock")
        if r.status == 200:
            got = v.get("/v1/auth/self", token=r.json["token"]).status
            self.assertEqual(got, 401, "a token stored after the lock's purge must not work after the next unlock")
        self.assertEqual((r.status, (r.json or {}).get("error")), (503, "locked"), r)

    def test_no_session_survives_a_restart(self):
        v = self.v
        token = self.boot()
        self.check(v.get("/v1/auth/self", token=token), 200, "the token works")
        v.stop()
        v.start()
        self.check(self.recovery_unlock(), 200, "unlock after the restart")
        r = v.get("/v1/auth/self", token=token)
        self.assertEqual(r.status, 401, f"a token issued before a restart must be refused after it: {r}")

    def test_passphrase_change_ends_the_other_sessions(self):
        v = self.v
        token = self.boot()
        self.make_user("bob", ["operator"])
        bob1 = v.login("bob")
        bob2 = v.login("bob")
        new = PASSPHRASE + " and more"
        self.check(v.post("/v1/auth/passphrase", {"current": PASSPHRASE, "new": new}, token=bob1), 200,
                   "bob changes his passphrase")
        self.check(v.get("/v1/auth/self", token=bob1), 200, "the session that changed it goes on")
        self.assertEqual(v.get("/v1/auth/self", token=bob2).status, 401, "bob's other session ended")
        bob3 = v.login("bob", passphrase=new)
        # An admin setting bob's passphrase ends all of bob's sessions.
        self.check(v.put("/v1/users/bob", {"passphrase": PASSPHRASE}, token=token), 200, "admin resets it")
        self.assertEqual(v.get("/v1/auth/self", token=bob3).status, 401, "every session of bob ended")
        self.assertEqual(v.get("/v1/auth/self", token=bob1).status, 401)


class Lockout(SecurityCase):
    """Finding 5: five wrong unlocks for 'admin' from any uid, even an
    unbound one, locked the real admin out (and kept them out for good)."""

    def test_an_attacker_uid_cannot_lock_the_admin_out(self):
        v = self.v
        token = self.boot()
        self.check(v.post("/v1/sys/lock", token=token), 200, "lock")
        secret = v.totp_secrets[ADMIN]

        def hammer():
            out = []
            for _ in range(8):
                out.append(v.post("/v1/sys/unlock", {"user": ADMIN, "passphrase": "wrong " + PASSPHRASE,
                                                     "totp": wrong_totp(secret)}, token=False).status)
            return out

        statuses = as_uid(NOBODY, NOGROUP, hammer)
        self.assertEqual(statuses[:5], [401] * 5, statuses)
        self.assertEqual(statuses[-1], 429, f"the attacking uid itself is locked out: {statuses}")
        t0 = time.monotonic()
        r = self.unlock_req(recovery_code=v.recovery_codes[ADMIN].pop())
        self.assertEqual(r.status, 200, f"the admin's own uid still unlocks: {r}")
        self.assertLess(time.monotonic() - t0, 10, "at most a short delay")
        # And after a restart too, while the attacker keeps at it.
        self.check(v.post("/v1/sys/lock", token=v.login()), 200, "lock again")
        v.stop()
        v.start()
        self.assertEqual(as_uid(NOBODY, NOGROUP, hammer)[-1], 429)
        self.check(self.unlock_req(recovery_code=v.recovery_codes[ADMIN].pop()), 200, "unlock after the restart")


class HostileText(SecurityCase):
    """Finding 4: an unbound caller's raw request path was recorded as sent
    (invalid UTF-8 made every audit page holding it answer 500; terminal
    escapes reached the auditor's terminal), and metadata accepted control
    characters."""

    def test_unauthenticated_paths_cannot_poison_the_log(self):
        v = self.v
        token = self.boot()
        paths = [b"/v1/secrets/acme/\xff\xfe", b"/v1/secrets/acme/\x1b[2J\x1b]0;owned\x07"]

        def send():
            return [v.raw(b"GET " + p + b" HTTP/1.1\r\nHost: vaultd\r\nConnection: close\r\n\r\n")[:12]
                    for p in paths]

        answers = as_uid(NOBODY, NOGROUP, send)
        self.assertTrue(all(a.startswith(b"HTTP/1.1 4") for a in answers), answers)
        page = self.v.get("/v1/audit?limit=1000", token=token)
        self.assertEqual(page.status, 200, f"GET /v1/audit must answer whatever callers sent: {page}")
        recs = [r for r in page.json["records"] if r["principal"] == f"uid:{NOBODY}"]
        self.assertEqual(len(recs), 2, recs)
        for rec in recs:
            self.assertTrue(all(0x20 <= ord(ch) < 0x7f for ch in json.dumps(rec)), rec)
        self.assertIn("acme/%FF%FE", [r["path"] for r in recs])
        raw = self.sql("SELECT group_concat(coalesce(path, '') || coalesce(detail, ''), '|') FROM audit")
        self.assertNotIn("\x1b", raw)
        self.assertNotIn("\x07", raw)

    def test_metadata_with_control_characters_is_refused(self):
        v = self.v
        token = self.boot()
        for meta, key in (({"note": "a\x1b[31mred"}, "'note'"), ({"k\x07": "v"}, "'k%07'"),
                          ({"n": "c1 \u009b"}, "'n'")):
            r = v.put("/v1/secrets/acme/app/x", {"type": "generic", "data": {"k": "v"}, "metadata": meta},
                      token=token)
            self.assertEqual(r.status, 400, r)
            why = (r.json or {}).get("fields", {}).get("metadata", "")
            self.assertIn(f"key {key}", why, r)
            self.assertIn("control characters", why, r)
            self.assertEqual(v.get("/v1/secrets/acme/app/x", token=token).status, 404, "nothing was written")
        self.check(v.put("/v1/secrets/acme/app/x", {"type": "generic", "data": {"k": "v"},
                                                    "metadata": {"note": "plain text, tabs aside: ok"}},
                         token=token), 200, "printable metadata")


class Shutdown(RotationCase):
    """Finding 7: main() freed the keyring before joining the rotation
    worker, which went on using it: a use-after-free at every SIGTERM
    during a rotation (AddressSanitizer in test builds)."""
    batch_size = 5

    def test_sigterm_while_a_rotation_job_runs(self):
        # A test build keeps the worker going 300 ms into shutdown
        # (VAULTD_TEST_STOP_DELAY_MS) before it is told to stop: whatever
        # main() tears down first, the job is still using.
        self.boot(env={"VAULTD_TEST_STOP_DELAY_MS": "300"})
        items = {f"acme/bulk/s{i:04d}": f"v{i}" for i in range(1500)}
        self.put_many(items)
        job = self.rotate("secret/acme")["job"]
        deadline = time.monotonic() + 60
        while True:
            j = self.v.get(f"/v1/rotate/jobs/{job['id']}").json["job"]
            if j["state"] == "running" and j["done"] > 0:
                break
            self.assertNotEqual(j["state"], "done", "the job finished before the signal")
            self.assertLess(time.monotonic(), deadline, j)
            time.sleep(0.01)
        rc = self.v.stop()
        log = self.v.read_log()
        self.assertFalse("AddressSanitizer" in log, log[log.find("AddressSanitizer") - 200:][:3000])
        self.assertEqual(rc, 0, f"SIGTERM during a rotation must exit cleanly:\n{log[-3000:]}")
        self.restart()
        self.assertEqual(self.wait_job(job["id"])["state"], "done")
        self.assertEqual(self.read_all(items), [])


class UnprovenFlood(SecurityCase):
    """Finding 6 (the log's part): an unbound uid grew the audit log by one
    record per refused request, without bound."""

    def test_refusals_of_an_unbound_uid_are_budgeted_and_counted(self):
        v = self.v
        token = self.boot_auditor()
        before = int(self.sql("SELECT count(*) FROM audit").strip())

        def flood():
            conn = UnixHTTPConnection(v.sock)
            t0 = time.monotonic()
            out = [v.get("/v1/secrets/acme/app/x", conn=conn, token=False).status for _ in range(400)]
            conn.close()
            return out, time.monotonic() - t0

        statuses, took = as_uid(NOBODY, NOGROUP, flood)
        self.assertEqual(set(statuses), {403, 429}, statuses)
        recorded = int(self.sql(f"SELECT count(*) FROM audit WHERE principal = 'uid:{NOBODY}' "
                                "AND action <> 'audit.rate_limited'").strip())
        self.assertLessEqual(recorded, 100 + 10 * took + 2, f"{recorded} records for 400 refusals in {took:.1f} s")
        self.assertEqual(recorded, statuses.count(403), "every answered refusal has its record")
        # The count of those left out is recorded once the budget allows.
        time.sleep(0.3)
        self.assertEqual(as_uid(NOBODY, NOGROUP, lambda: v.get("/v1/secrets/acme/app/x", token=False).status), 403)
        rows = self.sql(f"SELECT detail FROM audit WHERE action = 'audit.rate_limited' "
                        f"AND principal = 'uid:{NOBODY}'").splitlines()
        self.assertTrue(rows)
        for row in rows:
            self.assertRegex(row, r"^\d+ refused requests of this uid left unrecorded since ", rows)
        self.assertEqual(sum(int(row.split()[0]) for row in rows), statuses.count(429))
        # Another uid (the admin's, a proven principal) was never held back.
        self.check(v.get("/v1/sys/health", token=False), 200, "health")
        self.check(v.put("/v1/secrets/acme/app/y", {"type": "generic", "data": {"k": "v"}}, token=token), 200, "write")
        self.assertIs(self.verify().get("ok"), True)
        self.assertGreater(int(self.sql("SELECT count(*) FROM audit").strip()), before)


class AuthzSeal(SecurityCase):
    """Finding 12: anyone who could write the database file could insert
    services(uid=<theirs>, roles=["admin"]) or widen a role, and vaultd
    would honour it."""

    def setUp(self):
        super().setUp()
        self.v.spend_recovery_codes = True

    def stopped_edit(self, statement):
        self.v.stop()
        self.sql(statement)
        self.restart_unlocked()

    def test_a_service_row_inserted_behind_vaultds_back_is_refused(self):
        v = self.v
        token = self.boot_auditor()
        self.check(v.put("/v1/secrets/acme/app/x", {"type": "generic", "data": {"k": "v"}}, token=token), 200,
                   "write")
        self.stopped_edit(f"INSERT INTO services (name, uid, roles, created_at, updated_at) "
                          f"VALUES ('evil', {NOBODY}, '[\"admin\"]', 1, 1)")
        st = as_uid(NOBODY, NOGROUP, lambda: v.get("/v1/secrets/acme/app/x", token=False).status)
        self.assertEqual(st, 403, "a forged binding grants nothing")
        j = self.verify()
        self.assertIs(j.get("ok"), False, f"the forged row is reported: {j}")
        self.assertIn("service 'evil'", j.get("reason", ""), j)

    def test_widened_role_and_promoted_user_grant_nothing(self):
        v = self.v
        token = self.boot_auditor()
        self.check(v.put("/v1/roles/ro", {"rules": [{"path": "acme/a/*", "capabilities": ["read"]}]}, token=token),
                   200, "role ro")
        self.check(v.put("/v1/services/reader", {"uid": NOBODY, "roles": ["ro"]}, token=token), 200, "bind")
        for p in ("acme/a/x", "acme/b/x"):
            self.check(v.put(f"/v1/secrets/{p}", {"type": "generic", "data": {"k": "v"}}, token=token), 200, p)
        self.make_user("bob", ["operator"])
        self.assertEqual(as_uid(NOBODY, NOGROUP, lambda: v.get("/v1/secrets/acme/a/x", token=False).status), 200)
        self.stopped_edit("UPDATE roles SET rules = replace(rules, 'acme/a/*', '*') WHERE name = 'ro'; "
                          "UPDATE users SET roles = '[\"admin\"]' WHERE name = 'bob'")
        got = as_uid(NOBODY, NOGROUP, lambda: [v.get("/v1/secrets/acme/a/x", token=False).status,
                                               v.get("/v1/secrets/acme/b/x", token=False).status])
        self.assertEqual(got, [403, 403], "the widened role grants nothing, not even what it granted before")
        r = v.login_request("bob")
        self.assertEqual(r.status, 401, f"bob's promoted row is refused at login: {r}")
        j = self.verify()
        self.assertIs(j.get("ok"), False, j)
        self.assertIn("authorization row", j.get("reason", ""), j)

    def test_a_stripped_seal_is_not_adopted(self):
        v = self.v
        self.boot_auditor()
        v.stop()
        # Strip every MAC and the flag, and bind the attacker: what an
        # older, never sealed vault would look like.
        self.sql(f"UPDATE users SET mac = NULL; UPDATE roles SET mac = NULL; UPDATE services SET mac = NULL; "
                 f"DELETE FROM meta WHERE key = 'authz_sealed'; INSERT INTO services (name, uid, roles, created_at, "
                 f"updated_at) VALUES ('evil', {NOBODY}, '[\"admin\"]', 1, 1)")
        v.start()
        r = self.unlock_req(recovery_code=v.recovery_codes[ADMIN].pop())
        self.assertEqual(r.status, 401, f"the vault must not adopt rows whose seal was stripped: {r}")
        self.assertTrue(v.get("/v1/sys/health", token=False).json["locked"])


if __name__ == "__main__":
    main()
