#!/usr/bin/env python3
"""vaultd end to end: the audit log (docs/api.md, "Audit (issue 7)").

One record per request that reaches an access decision, found by the
request's X-Request-Id; denied unlocks and logins (a replayed TOTP code, wrong
passphrases, the rate limit); no secret value, passphrase, code or token in
the audit table; tamper detection (an edited, a deleted and two swapped rows,
named by GET /v1/audit/verify and 'vaultctl audit verify'); and the vaultctl
audit commands (tail, search, export, verify).

The CLI comes from VAULTCTL_BIN, else from the build tree next to VAULTD_BIN
(<build>/vaultctl/vaultctl). The database is read and edited with the sqlite3
shell. Every test starts a fresh vault.
"""
import grp
import json
import os
import re
import subprocess
import time

from harness import ADMIN, PASSPHRASE, VAULTD_BIN, VaultTestCase, as_uid, main, wrong_totp

NOBODY = 65534
NOGROUP = grp.getgrnam("nogroup").gr_gid
VAULTCTL = os.environ.get("VAULTCTL_BIN") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(VAULTD_BIN))), "vaultctl", "vaultctl")

RECORD_KEYS = {"id", "time", "principal", "uid", "pid", "action", "path", "capability", "result", "status",
               "detail", "request_id", "hash"}
TABLE_HEAD = ["ID", "TIME", "PRINCIPAL", "ACTION", "PATH", "RESULT", "STATUS", "DETAIL"]
RFC3339 = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]00:00)$"

MARKER = "PLANTED-audit-5f0c1e"   # never a legitimate part of a record


def request_id(r):
    for k, v in r.headers.items():
        if k.lower() == "x-request-id":
            return v
    raise AssertionError(f"reply without X-Request-Id: {r}")


class AuditCase(VaultTestCase):
    maxDiff = None

    def setUp(self):
        super().setUp()
        self.v.auto_login = False          # every request here names its token
        self.v.allow_other_uids()
        self.xdg = os.path.join(self.v.dir, "xdg")
        os.mkdir(self.xdg, 0o700)

    # ---- helpers ----

    def check(self, r, status, what):
        self.assertEqual(r.status, status, f"{what}: expected {status}, got {r}")
        return r

    def boot(self):
        """Started, initialised, unlocked with TOTP; the admin's token."""
        v = self.v
        v.start()
        r = v.init()
        self.assertIn("totp_secret", r.json or {}, f"init enrols TOTP (issue 4): {r}")
        self.check(self.unlock_req(totp=v.fresh_totp(ADMIN)), 200, "unlock")
        self.token = v.login()
        return self.token

    def unlock_req(self, user=ADMIN, passphrase=PASSPHRASE, **cred):
        body = {"user": user, "passphrase": passphrase}
        body.update(cred)
        return self.v.post("/v1/sys/unlock", body, token=False)

    def make_user(self, name, roles, passphrase=PASSPHRASE):
        r = self.v.put(f"/v1/users/{name}", {"passphrase": passphrase, "roles": roles}, token=self.token)
        self.check(r, 200, f"admin creates user {name!r}")
        self.v.remember_enrolment(name, r)
        return r

    def audit_page(self, token=None, **query):
        q = "&".join(f"{k}={v}" for k, v in query.items())
        r = self.v.get("/v1/audit" + ("?" + q if q else ""), token=token or self.token)
        self.check(r, 200, f"GET /v1/audit?{q} (route of issue 7; capability audit)")
        self.assertIsInstance(r.json.get("records"), list, f"audit reply has records: {r}")
        self.assertIn("next_cursor", r.json, f"audit reply has next_cursor: {r}")
        return r.json

    def audit_all(self, token=None, **query):
        """Every record (matching query), paging with the cursor."""
        out, cursor = [], None
        for _ in range(1000):
            q = dict(query, limit=query.get("limit", 1000))
            if cursor is not None:
                q["cursor"] = cursor
            page = self.audit_page(token, **q)
            out += page["records"]
            cursor = page["next_cursor"]
            if cursor is None:
                return out
        self.fail("GET /v1/audit never stopped answering a next_cursor")

    def one(self, records, r, what):
        """The single record of the request that got reply r."""
        rid = request_id(r)
        found = [x for x in records if x.get("request_id") == rid]
        self.assertEqual(len(found), 1, f"{what}: exactly one audit record with request_id {rid}; got {found}")
        return found[0]

    def assert_record(self, rec, what, **want):
        got = {k: rec.get(k) for k in want}
        self.assertEqual(got, want, f"{what}: audit record {rec}")

    def sql(self, statement):
        p = subprocess.run(["sqlite3", self.v.db, statement], capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, f"sqlite3 {statement!r}: {p.stderr.decode(errors='replace')}")
        return p.stdout.decode(errors="replace")

    def ctl(self, *args, check=None, env=None, token=None, user=None):
        e = {k: v for k, v in os.environ.items() if k not in ("VAULTD_TOKEN", "XDG_RUNTIME_DIR")}
        e.update(VAULTD_SOCKET=self.v.sock, XDG_RUNTIME_DIR=self.xdg)
        if token:
            e["VAULTD_TOKEN"] = token
        e.update(env or {})
        kw = {}
        if user is not None:
            kw = dict(user=user, group=NOGROUP, extra_groups=[])
            e.pop("XDG_RUNTIME_DIR")
        self.assertTrue(os.access(VAULTCTL, os.X_OK), f"no vaultctl binary at {VAULTCTL} (set VAULTCTL_BIN)")
        p = subprocess.run([VAULTCTL, *args], capture_output=True, text=True, env=e, timeout=120, **kw)
        if check is not None:
            self.assertEqual(p.returncode, check, f"vaultctl {' '.join(args)}:\n{p.stdout}\n{p.stderr}")
        return p


class Records(AuditCase):
    def test_every_route_class_is_recorded_once(self):
        v = self.v
        token = self.boot()
        data = {"url": "https://rmm.acme.example", "api_key": "TRMM-audit-key-0123456789"}
        health = v.get("/v1/sys/health", token=False)
        write = self.check(v.put("/v1/secrets/acme/rmm/tactical", {"type": "tactical-rmm", "data": data},
                                 token=token), 200, "write")
        read = self.check(v.get("/v1/secrets/acme/rmm/tactical", token=token), 200, "read")
        lst = self.check(v.get("/v1/secrets/acme?list=1", token=token), 200, "list")
        delete = self.check(v.delete("/v1/secrets/acme/rmm/tactical", token=token), 200, "delete")

        def unbound():
            r = v.get("/v1/secrets/acme/rmm/tactical", token=False)
            return r.status, request_id(r)
        st, forbidden_rid = as_uid(NOBODY, NOGROUP, unbound)
        self.assertEqual(st, 403, "an unbound uid reads a secret")
        no_route = self.check(v.get("/v1/no/such/route", token=token), 404, "a route that does not exist")
        login = self.check(v.login_request(ADMIN, PASSPHRASE), 200, "login")
        lock = self.check(v.post("/v1/sys/lock", token=token), 200, "lock")
        bad_unlock = self.check(self.unlock_req(passphrase="a wrong passphrase",
                                                totp=wrong_totp(v.totp_secrets[ADMIN])), 401,
                                "unlock with a wrong passphrase")
        # Past three TOTP steps: a recovery code rather than a 30 s wait.
        v.spend_recovery_codes = True
        self.check(self.unlock_req(**v.second_factor(ADMIN)), 200, "unlock")
        self.token = v.login()

        records = self.audit_all()
        # The shape of every record.
        ids = [x.get("id") for x in records]
        self.assertEqual(ids, sorted(ids), "records come oldest first")
        self.assertEqual(len(set(ids)), len(ids), "ids are unique")
        for rec in records:
            self.assertEqual(set(rec), RECORD_KEYS, f"record fields: {rec}")
            self.assertRegex(rec["time"], RFC3339, f"time is RFC 3339: {rec}")
            self.assertRegex(rec["hash"], r"^[0-9a-f]{64}$", f"hash is SHA-256 hex: {rec}")
            self.assertRegex(rec["request_id"], r"^[0-9a-f]{32}$", f"request_id: {rec}")
            self.assertIn(rec["result"], ("allowed", "denied", "failed"), f"result: {rec}")
            self.assertIsInstance(rec["capability"], str, f"capability is a string: {rec}")
        self.assertEqual([x for x in records if x["request_id"] == request_id(health)], [],
                         "health is not recorded")

        admin = "user:" + ADMIN
        self.assert_record(self.one(records, write, "secret write"), "secret write", action="secret.write",
                           principal=admin, uid=0, path="acme/rmm/tactical", capability="write",
                           result="allowed", status=200)
        self.assert_record(self.one(records, read, "secret read"), "secret read", action="secret.read",
                           principal=admin, path="acme/rmm/tactical", capability="read", result="allowed",
                           status=200)
        self.assert_record(self.one(records, lst, "secret list"), "secret list", action="secret.list",
                           principal=admin, path="acme", capability="list", result="allowed", status=200)
        self.assert_record(self.one(records, delete, "secret delete"), "secret delete", action="secret.delete",
                           principal=admin, path="acme/rmm/tactical", capability="delete", result="allowed",
                           status=200)
        rec = [x for x in records if x["request_id"] == forbidden_rid]
        self.assertEqual(len(rec), 1, f"one record for the unbound uid's 403: {rec}")
        self.assert_record(rec[0], "403 for an unbound uid", action="secret.read", principal=f"uid:{NOBODY}",
                           uid=NOBODY, path="acme/rmm/tactical", capability="read", result="denied",
                           status=403)
        self.assert_record(self.one(records, no_route, "no such route"), "no such route", action="unknown",
                           principal=admin, status=404, result="failed")
        self.assert_record(self.one(records, login, "login"), "login", action="auth.login", principal=admin,
                           path=None, result="allowed", status=200)
        self.assert_record(self.one(records, lock, "lock"), "lock", action="sys.lock", principal=admin,
                           path=None, capability="admin", result="allowed", status=200)
        rec = self.one(records, bad_unlock, "failed unlock")
        self.assert_record(rec, "failed unlock", action="sys.unlock", uid=0, path=None, result="failed",
                           status=401)
        self.assertIn(rec["principal"], (admin, "uid:0"),
                      f"a failed unlock names the claimed user or the caller's uid: {rec}")


class LockedRecords(AuditCase):
    def test_a_locked_time_read_names_the_service_action_and_path(self):
        """Issue 14, point 8: a read by a bound service while locked was
        recorded as 'uid:65534 unknown - failed 503'."""
        v = self.v
        token = self.boot()
        self.check(v.put("/v1/roles/psa-read", {"rules": [{"path": "acme/*", "capabilities": ["read"]}]}, token=token),
                   200, "role")
        self.check(v.put("/v1/services/psa-sync", {"uid": NOBODY, "roles": ["psa-read"]}, token=token), 200, "bind")
        self.check(v.post("/v1/sys/lock", token=token), 200, "lock")

        def read():
            r = v.get("/v1/secrets/acme/psa/autotask", token=False)
            return r.status, request_id(r)
        st, rid = as_uid(NOBODY, NOGROUP, read)
        self.assertEqual(st, 503)
        self.check(self.unlock_req(recovery_code=v.recovery_codes[ADMIN].pop()), 200, "unlock")
        self.token = v.login()
        rec = [x for x in self.audit_all() if x["request_id"] == rid]
        self.assertEqual(len(rec), 1, rec)
        self.assert_record(rec[0], "a read while locked", principal="service:psa-sync", action="secret.read",
                           path="acme/psa/autotask", capability="read", result="failed", status=503)


class Denied(AuditCase):
    def test_every_route_records_exactly_the_expected_record(self):
        """Each route of the API, allowed and (where it can be) refused,
        leaves exactly one record with the expected action, capability,
        path, result and status; health leaves none."""
        v = self.v
        token = self.boot()
        self.check(v.put("/v1/services/probe", {"uid": NOBODY, "roles": ["auditor"]}, token=token), 200, "bind")
        data = {"url": "https://rmm.acme.example", "api_key": "TRMM-every-route-0123456789"}
        backups = os.path.join(v.dir, "backups")
        os.mkdir(backups, 0o700)
        secret = {"type": "tactical-rmm", "data": data}
        steps = [
            # (method, path, body, expected status, action, capability, record path)
            ("POST", "/v1/sys/init", {"admin": "x", "passphrase": PASSPHRASE * 2}, 409, "sys.init", "", None),
            ("GET", "/v1/types", None, 200, "types.list", "", None),
            ("GET", "/v1/auth/self", None, 200, "auth.self", "", None),
            ("PUT", "/v1/secrets/acme/rmm/t", secret, 200, "secret.write", "write", "acme/rmm/t"),
            ("PUT", "/v1/secrets/acme/rmm/t", dict(secret, stage="pending"), 200, "secret.write", "write",
             "acme/rmm/t"),
            ("POST", "/v1/secrets/acme/rmm/t/promote", {}, 200, "secret.promote", "write", "acme/rmm/t"),
            ("GET", "/v1/secrets/acme/rmm/t", None, 200, "secret.read", "read", "acme/rmm/t"),
            ("GET", "/v1/secrets/acme/rmm/t?versions=1", None, 200, "secret.versions", "read", "acme/rmm/t"),
            ("GET", "/v1/secrets/acme?list=1", None, 200, "secret.list", "list", "acme"),
            ("POST", "/v1/secrets/acme/rmm/t/rollback", {"version": 1}, 200, "secret.rollback", "write",
             "acme/rmm/t"),
            ("GET", "/v1/secrets/acme/rmm/none", None, 404, "secret.read", "read", "acme/rmm/none"),
            ("PUT", "/v1/users/bob", {"passphrase": PASSPHRASE, "roles": ["operator"]}, 200, "user.write",
             "admin", None),
            ("GET", "/v1/users/bob", None, 200, "user.read", "admin", None),
            ("GET", "/v1/users", None, 200, "user.read", "admin", None),
            ("POST", "/v1/users/bob/reset-mfa", None, 200, "user.reset_mfa", "admin", None),
            ("DELETE", "/v1/users/bob", None, 200, "user.delete", "admin", None),
            ("PUT", "/v1/roles/r1", {"rules": [{"path": "acme/*", "capabilities": ["read"]}]}, 200, "role.write",
             "admin", None),
            ("GET", "/v1/roles/r1", None, 200, "role.read", "admin", None),
            ("GET", "/v1/roles", None, 200, "role.read", "admin", None),
            ("DELETE", "/v1/roles/r1", None, 200, "role.delete", "admin", None),
            ("PUT", "/v1/services/s1", {"uid": 4242, "roles": ["auditor"]}, 200, "service.write", "admin", None),
            ("GET", "/v1/services/s1", None, 200, "service.read", "admin", None),
            ("GET", "/v1/services", None, 200, "service.read", "admin", None),
            ("DELETE", "/v1/services/s1", None, 200, "service.delete", "admin", None),
            ("GET", "/v1/audit?limit=1", None, 200, "audit.read", "audit", None),
            ("GET", "/v1/audit/verify", None, 200, "audit.verify", "audit", None),
            ("GET", "/v1/sys/metrics", None, 200, "sys.metrics", "audit", None),
            ("POST", "/v1/sys/backup", {"path": backups + "/b.db"}, 200, "sys.backup", "admin", None),
            ("POST", "/v1/rotate/secret/acme", None, 202, "rotate.secret", "rotate", "acme"),
            ("POST", "/v1/rotate/kek/acme", None, 202, "rotate.kek", "rotate", "acme"),
            ("POST", "/v1/rotate/root", None, 202, "rotate.root", "admin", None),
            ("POST", "/v1/rotate/hsm", None, 202, "rotate.hsm", "admin", None),
            ("GET", "/v1/rotate/status", None, 200, "rotate.status", "rotate", None),
            ("GET", "/v1/rotate/jobs/1", None, 200, "rotate.job", "rotate", None),
            ("POST", "/v1/rotate/hsm/retire", None, 200, "rotate.hsm_retire", "admin", None),
            ("POST", "/v1/rotate/all", None, 202, "rotate.all", "admin", None),
            ("DELETE", "/v1/secrets/acme/rmm/t", None, 200, "secret.delete", "delete", "acme/rmm/t"),
            ("DELETE", "/v1/secrets/acme/rmm/t?destroy=1", None, 200, "secret.destroy", "delete", "acme/rmm/t"),
            ("GET", "/v1/no/such/route", None, 404, "unknown", "", None),
            ("POST", "/v1/auth/passphrase", {"current": PASSPHRASE, "new": PASSPHRASE + " 2"}, 200,
             "auth.passphrase", "", None),
        ]
        done = []
        for method, path, body, status, action, cap, rpath in steps:
            r = v.request(method, path, body=body, token=token)
            self.check(r, status, f"{method} {path}")
            # init is public (the daemon's uid or root may call it): the
            # record names the uid, not a user.
            who = "uid:0" if action == "sys.init" else "user:" + ADMIN
            done.append((r, method, path, status, action, cap, rpath, who, 0))
        # Refusals: the auditor service on routes it may not use.
        for method, path, body, action, cap, rpath in (
                ("GET", "/v1/secrets/acme/rmm/t", None, "secret.read", "read", "acme/rmm/t"),
                ("POST", "/v1/rotate/root", None, "rotate.root", "admin", None),
                ("POST", "/v1/sys/backup", {"path": backups + "/c.db"}, "sys.backup", "admin", None),
                ("GET", "/v1/users", None, "user.read", "admin", None)):
            r = as_uid(NOBODY, NOGROUP, lambda: v.request(method, path, body=body, token=False))
            self.check(r, 403, f"auditor: {method} {path}")
            done.append((r, method, path, 403, action, cap, rpath, "service:probe", NOBODY))
        health = v.get("/v1/sys/health", token=False)
        logout = self.check(v.post("/v1/auth/logout", token=token), 200, "logout")
        done.append((logout, "POST", "/v1/auth/logout", 200, "auth.logout", "", None, "user:" + ADMIN, 0))

        self.token = v.login(ADMIN, PASSPHRASE + " 2")
        records = self.audit_all()
        self.assertEqual([x for x in records if x["request_id"] == request_id(health)], [])
        for r, method, path, status, action, cap, rpath, principal, uid in done:
            what = f"{method} {path}"
            self.assert_record(self.one(records, r, what), what, action=action, capability=cap, path=rpath,
                               status=status, principal=principal, uid=uid,
                               result="allowed" if status < 300 else "denied" if status in (401, 403, 429)
                               else "failed")

    def test_reused_totp_and_sixth_wrong_passphrase(self):
        v = self.v
        v.set_auth(max_failures=5, lockout_seconds=60)
        self.boot()
        self.make_user("bob", ["admin"], "bob's long passphrase")
        code = v.fresh_totp("bob")

        # From uid 65534, so that neither uid 0 nor the admin count this failure.
        def replay():
            ok = v.login_request("bob", "bob's long passphrase", code=code)
            again = v.login_request("bob", "bob's long passphrase", code=code)
            wrong = v.login_request("bob", "not bob's passphrase", code=code)
            return ok.status, again, wrong
        ok, again, wrong_pass = as_uid(NOBODY, NOGROUP, replay)
        replay_rid = request_id(again)
        self.assertEqual((ok, again.status), (200, 401), "bob logs in, then replays the same TOTP code")
        self.assertEqual(again.json["error"], "code_reused", f"the replay is told as such: {again.json}")
        self.assertIn("wait for the next", again.json["message"])
        # The same answer whatever the passphrase: a spent code is no
        # passphrase oracle.
        self.assertEqual((wrong_pass.status, wrong_pass.json["error"], wrong_pass.json["message"]),
                         (401, "code_reused", again.json["message"]),
                         "a spent code with a wrong passphrase gets the very same answer")

        self.check(v.post("/v1/sys/lock", token=self.token), 200, "lock")
        wrong = []
        for i in range(5):
            r = self.check(self.unlock_req(passphrase=f"wrong passphrase {i}",
                                           totp=wrong_totp(v.totp_secrets[ADMIN])), 401,
                           f"wrong passphrase #{i + 1} of max_failures = 5")
            wrong.append(request_id(r))
        sixth = self.check(self.unlock_req(totp=v.fresh_totp(ADMIN)), 429,
                           "the sixth unlock (right passphrase) after five failures")

        # bob (no other failures) unlocks and reads the audit from uid 65534.
        c1, c2 = v.fresh_totp("bob"), v.fresh_totp("bob")

        def read_audit():
            u = self.unlock_req("bob", "bob's long passphrase", totp=c1)
            if u.status != 200:
                return ("unlock", u.status, u.raw.decode(errors="replace"))
            t = v.login_request("bob", "bob's long passphrase", code=c2)
            if t.status != 200:
                return ("login", t.status, t.raw.decode(errors="replace"))
            self.token = t.json["token"]
            return ("ok", self.audit_all())
        got = as_uid(NOBODY, NOGROUP, read_audit)
        self.assertEqual(got[0], "ok", f"bob unlocks and logs in from uid 65534: {got}")
        records = got[1]

        rec = [x for x in records if x["request_id"] == replay_rid]
        self.assertEqual(len(rec), 1, f"one record for the replayed code: {rec}")
        rec = rec[0]
        self.assert_record(rec, "replayed TOTP code", action="auth.login", uid=NOBODY, result="failed",
                           status=401)
        self.assertRegex(rec["detail"] or "", r"(?i)reuse|replay",
                         f"the replayed code's record says why (reused): {rec}")
        self.assertIn("bob", json.dumps(rec), f"the replayed code's record names bob: {rec}")
        for i, rid in enumerate(wrong):
            rec = [x for x in records if x["request_id"] == rid]
            self.assertEqual(len(rec), 1, f"one record for wrong passphrase #{i + 1}: {rec}")
            self.assert_record(rec[0], f"wrong passphrase #{i + 1}", action="sys.unlock", uid=0,
                               result="failed", status=401)
        rec = self.one(records, sixth, "the sixth attempt")
        self.assert_record(rec, "the sixth attempt", action="sys.unlock", uid=0, result="denied", status=429)
        self.assertTrue(rec["detail"], f"the rate-limited record says why: {rec}")


class NoSecrets(AuditCase):
    def test_planted_values_never_reach_the_audit(self):
        v = self.v
        token = self.boot()
        api_key = MARKER + "-api-key"
        carol_pass = "carol passphrase " + MARKER + "-pass"
        wrong_pass = "wrong passphrase " + MARKER + "-wrong"
        new_pass = "carol new passphrase " + MARKER + "-new"
        self.check(v.put("/v1/secrets/acme/rmm/planted", {"type": "tactical-rmm", "data": {
            "url": "https://rmm.acme.example", "api_key": api_key}}, token=token), 200, "write a marked secret")
        self.check(v.get("/v1/secrets/acme/rmm/planted", token=token), 200, "read it back")
        # A validation failure whose bad value carries the marker.
        r = v.put("/v1/secrets/acme/rmm/bad", {"type": "tactical-rmm", "data": {
            "url": "http://" + MARKER + ".example", "api_key": api_key}}, token=token)
        self.check(r, 400, "an invalid url")
        self.check(v.put("/v1/secrets/acme/misc/g", {"type": "generic", "data": {"k": api_key + "-generic"}},
                         token=token), 200, "a generic secret")
        self.check(v.post("/v1/secrets/acme/rmm/planted/rollback", {"version": 1}, token=token), 200, "rollback")

        self.make_user("carol", ["operator"], carol_pass)
        good_code = v.fresh_totp("carol")
        r = self.check(v.login_request("carol", carol_pass, code=good_code), 200, "carol logs in")
        carol_token = r.json["token"]
        bad_code = wrong_totp(v.totp_secrets["carol"])
        self.check(v.login_request("carol", wrong_pass, code=bad_code), 401, "carol, wrong passphrase and code")
        self.check(v.post("/v1/auth/passphrase", {"current": carol_pass, "new": new_pass}, token=carol_token),
                   200, "carol changes her passphrase")
        recovery = v.recovery_codes[ADMIN][0]
        r = self.check(v.login_request(ADMIN, PASSPHRASE, recovery_code=recovery), 200,
                       "admin logs in with a recovery code")
        self.check(v.get("/v1/secrets/acme/rmm/planted", token=carol_token), 200, "carol reads")
        self.check(v.post("/v1/sys/lock", token=token), 200, "lock")
        lock_code = v.fresh_totp(ADMIN)
        self.check(self.unlock_req(passphrase=wrong_pass, totp=lock_code), 401, "unlock, wrong passphrase")
        unlock_code = v.fresh_totp(ADMIN)
        self.check(self.unlock_req(totp=unlock_code), 200, "unlock")
        self.token = v.login(recovery_code=v.recovery_codes[ADMIN][1])
        codes = [good_code, bad_code, lock_code, unlock_code]
        secrets_ = [api_key, MARKER, carol_pass, wrong_pass, new_pass, PASSPHRASE, recovery,
                    v.recovery_codes[ADMIN][1], token, carol_token, self.token]

        api = json.dumps(self.audit_all())
        export = self.ctl("audit", "export", token=self.token, check=0).stdout
        table = self.sql("SELECT * FROM audit")
        self.assertGreater(len(table.splitlines()), 15, f"the audit table has the records:\n{table}")
        for where, text in (("the audit table (sqlite3)", table), ("GET /v1/audit", api),
                            ("vaultctl audit export", export)):
            for s in secrets_:
                self.assertNotIn(s, text, f"{s!r} in {where}")
            for c in codes:
                self.assertNotRegex(text, rf"(?<![0-9a-fA-F]){c}(?![0-9a-fA-F])", f"TOTP code {c} in {where}")


class Tamper(AuditCase):
    def restart_unlocked(self):
        """Restart, unlock with a recovery code (TOTP codes are scarce)."""
        v = self.v
        v.start()
        code = v.recovery_codes[ADMIN].pop()
        self.check(self.unlock_req(recovery_code=code), 200, "unlock after the restart")

    def verify(self):
        """GET /v1/audit/verify and 'vaultctl audit verify' as service auditbot (uid 0, no token)."""
        r = self.check(self.v.get("/v1/audit/verify", token=False), 200, "GET /v1/audit/verify")
        p = self.ctl("audit", "verify")
        return r.json, p

    def row(self, rid):
        return self.sql(f"SELECT action, path, hex(hash) FROM audit WHERE id = {rid}").strip()

    def test_edit_delete_reorder_are_named(self):
        v = self.v
        token = self.boot()
        # uid 0 without a token acts as an auditor service: no logins after restarts.
        self.check(v.put("/v1/services/auditbot", {"uid": 0, "roles": ["auditor"]}, token=token), 200,
                   "bind uid 0 to an auditor service")
        for i in range(12):
            self.check(v.put(f"/v1/secrets/acme/app/s{i}", {"type": "generic", "data": {"k": f"v{i}"}},
                             token=token), 200, f"write #{i}")

        # Intact: ok through the API and the CLI.
        j, p = self.verify()
        self.assertIs(j.get("ok"), True, f"an intact log verifies: {j}")
        self.assertGreaterEqual(j.get("records", 0), 15, f"verify counts the records: {j}")
        self.assertIsInstance(j.get("anchored_through"), int, f"verify names the anchored id: {j}")
        self.assertGreater(j["anchored_through"], 0, f"an unlocked vault anchors its log: {j}")
        self.assertEqual(p.returncode, 0, f"vaultctl audit verify on an intact log:\n{p.stdout}\n{p.stderr}")
        p = self.ctl("audit", "verify", "--json", check=0)
        self.assertIs(json.loads(p.stdout)["ok"], True)
        self.assertTrue(self.row(14), "record 14 exists")

        # Each tamper hits an earlier record than the one before, so each is
        # the first break the check meets.
        cases = [
            ("edit record 14", "UPDATE audit SET path = 'x/y' WHERE id = 14", 14),
            ("delete record 9", "DELETE FROM audit WHERE id = 9", 10),
            ("swap records 4 and 5",
             "BEGIN; "
             "CREATE TEMP TABLE t AS SELECT * FROM audit WHERE id IN (4, 5); "
             "UPDATE audit SET (time, principal, uid, pid, action, path, capability, result, status, detail, "
             "request_id, hash) = (SELECT time, principal, uid, pid, action, path, capability, result, status, "
             "detail, request_id, hash FROM t WHERE t.id = 9 - audit.id) WHERE id IN (4, 5); "
             "COMMIT;", 4),
        ]
        for what, statement, broken in cases:
            with self.subTest(what):
                before = (self.row(4), self.row(5))
                v.stop()
                self.sql(statement)
                if what.startswith("swap"):
                    self.assertEqual((self.row(5), self.row(4)), before, "the rows were swapped")
                self.restart_unlocked()
                j, p = self.verify()
                self.assertIs(j.get("ok"), False, f"{what}: verify fails: {j}")
                self.assertEqual(j.get("first_broken"), broken, f"{what}: verify names record {broken}: {j}")
                self.assertTrue(j.get("reason"), f"{what}: verify says why: {j}")
                self.assertEqual(p.returncode, 1, f"{what}: vaultctl audit verify exits 1:\n{p.stdout}\n{p.stderr}")
                self.assertIn(f"audit chain broken at record {broken}: ", p.stderr, f"{what}: the CLI names it")
                p = self.ctl("audit", "verify", "--json")
                self.assertEqual(p.returncode, 1, f"{what}: --json exits 1 too")
                self.assertEqual(json.loads(p.stdout).get("first_broken"), broken)

    def test_truncating_the_newest_record_is_detected(self):
        """The anchor covers the newest record: deleting it while the daemon
        is down leaves a valid-looking chain that the anchor must expose."""
        v = self.v
        token = self.boot()
        self.check(v.put("/v1/services/auditbot", {"uid": 0, "roles": ["auditor"]}, token=token), 200,
                   "bind uid 0 to an auditor service")
        for i in range(3):
            self.check(v.put(f"/v1/secrets/acme/app/s{i}", {"type": "generic", "data": {"k": f"v{i}"}},
                             token=token), 200, f"write #{i}")
        j, _ = self.verify()
        self.assertIs(j.get("ok"), True, f"intact: {j}")
        v.stop()
        newest = int(self.sql("SELECT max(id) FROM audit").strip())
        self.sql(f"DELETE FROM audit WHERE id = {newest}")
        self.restart_unlocked()
        j, p = self.verify()
        self.assertIs(j.get("ok"), False, f"the newest record ({newest}) was deleted: verify fails: {j}")
        self.assertEqual(p.returncode, 1, f"vaultctl audit verify exits 1:\n{p.stdout}\n{p.stderr}")
        self.assertIn("audit chain broken", p.stderr)


class Cli(AuditCase):
    def test_tail_search_export(self):
        v = self.v
        token = self.boot()
        t0 = int(time.time())
        for path in ("acme/rmm/a", "acme/rmm/b", "acme/rmm-old/c", "globex/rmm/d"):
            self.check(v.put(f"/v1/secrets/{path}", {"type": "generic", "data": {"k": "v"}}, token=token), 200,
                       f"write {path}")
        self.check(v.get("/v1/secrets/acme/rmm/nope", token=token), 404, "a missing secret")
        self.check(v.login_request(ADMIN, "a wrong passphrase", code=wrong_totp(v.totp_secrets[ADMIN])), 401,
                   "a failed login")

        # tail
        p = self.ctl("audit", "tail", "-n", "3", "--json", token=token, check=0)
        recs = json.loads(p.stdout)["records"]
        self.assertEqual(len(recs), 3, p.stdout)
        ids = [r["id"] for r in recs]
        self.assertEqual(ids, sorted(ids), "tail: oldest first")
        self.assertEqual(ids, list(range(ids[0], ids[0] + 3)), "tail: the newest, consecutive")
        self.assertEqual(recs[-1]["action"], "auth.login", f"tail ends with the newest record: {recs}")
        p = self.ctl("audit", "tail", token=token, check=0)
        lines = p.stdout.splitlines()
        self.assertEqual(lines[0].split(), TABLE_HEAD)
        self.assertRegex(p.stdout, r"(?m)^\d+\s+\S+Z\s+user:admin\s+secret\.write\s+acme/rmm/a\s+allowed\s+200\s+-$")
        self.assertRegex(p.stdout, r"(?m)^\d+\s+\S+Z\s+\S+\s+auth\.login\s+-\s+failed\s+401\s+wrong passphrase$",
                         "a failed login is 'failed', and the table says why")

        # search: each filter
        def search(*args):
            return json.loads(self.ctl("audit", "search", "--json", *args, token=token, check=0).stdout)

        got = search("--path", "acme/rmm")
        self.assertEqual(sorted(r["path"] for r in got["records"]), ["acme/rmm/a", "acme/rmm/b", "acme/rmm/nope"],
                         "path is a prefix on segment boundaries")
        got = search("--action", "secret.write", "--principal", "user:admin")
        self.assertEqual([r["path"] for r in got["records"]],
                         ["acme/rmm/a", "acme/rmm/b", "acme/rmm-old/c", "globex/rmm/d"])
        got = search("--result", "failed", "--action", "auth.login")
        self.assertEqual([(r["action"], r["status"], r["detail"]) for r in got["records"]],
                         [("auth.login", 401, "wrong passphrase")], "wrong credentials are a failure")
        self.assertEqual(search("--result", "denied")["records"], [], "no policy refused anything here")
        got = search("--result", "failed", "--path", "acme")
        self.assertEqual([(r["path"], r["status"]) for r in got["records"]], [("acme/rmm/nope", 404)])
        got = search("--since", str(t0 - 60), "--action", "secret.write")
        self.assertEqual(len(got["records"]), 4, "since as unix seconds")
        future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        self.assertEqual(search("--since", future)["records"], [], "since an RFC 3339 time in the future")
        past = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 - 3600))
        self.assertEqual(search("--until", past)["records"], [], "until an RFC 3339 time in the past")
        self.assertEqual(len(search("--since", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 - 60)),
                                    "--action", "secret.write")["records"]), 4, "since RFC 3339")
        first = search("--limit", "2")
        self.assertEqual(len(first["records"]), 2)
        self.assertIsNotNone(first["next_cursor"], "a full page has a next cursor")
        second = search("--limit", "2", "--cursor", str(first["next_cursor"]))
        self.assertGreater(second["records"][0]["id"], first["records"][-1]["id"], "the cursor moves on")
        p = self.ctl("audit", "search", "--limit", "2", token=token, check=0)
        self.assertEqual(p.stdout.splitlines()[0].split(), TABLE_HEAD)
        self.assertEqual(len(p.stdout.splitlines()), 3)
        self.assertIn("--cursor", p.stderr, "the next page is pointed to")

        # export: JSON lines, paging through several pages.
        api = self.audit_all()
        p = self.ctl("audit", "export", "--limit", "2", token=token, check=0)
        lines = p.stdout.splitlines()
        recs = [json.loads(line) for line in lines]
        self.assertGreater(len(recs), 4, "more than two pages of two")
        self.assertEqual([r["id"] for r in recs], [r["id"] for r in api] + list(
            range(api[-1]["id"] + 1, api[-1]["id"] + 1 + len(recs) - len(api))), "every record, in order")
        self.assertEqual(recs[:len(api)], api, "export prints the API's records")
        for r in recs:
            self.assertEqual(set(r), RECORD_KEYS)
        p = self.ctl("audit", "export", "--limit", "1", "--action", "secret.write", "--path", "acme",
                     token=token, check=0)
        self.assertEqual([json.loads(line)["path"] for line in p.stdout.splitlines()],
                         ["acme/rmm/a", "acme/rmm/b", "acme/rmm-old/c"])

        # verify, and usage errors.
        self.assertIn("intact", self.ctl("audit", "verify", token=token, check=0).stdout)
        self.ctl("audit", check=2)
        self.ctl("audit", "frob", token=token, check=2)
        self.ctl("audit", "search", "--since", "yesterday", token=token, check=2)
        self.ctl("audit", "search", "--limit", "0", token=token, check=2)
        self.ctl("audit", "tail", "--path", "acme", token=token, check=2)
        self.ctl("audit", "tail", "-n", "1", token=False, check=5)      # uid 0 unbound: forbidden
        for sub in ("tail", "search", "verify", "export"):
            p = self.ctl("audit", sub, "--help", check=0)
            self.assertIn("Usage: vaultctl audit " + sub, p.stdout)
            self.assertIn("Example", p.stdout)
        self.assertRegex(self.ctl("--help", check=0).stdout, r"(?m)^  audit\s")

    def test_operator_may_not_read_the_audit(self):
        v = self.v
        self.boot()
        self.make_user("olga", ["operator"])
        olga = v.login("olga")
        r = v.get("/v1/audit", token=olga)
        self.check(r, 403, "an operator reads the audit")
        self.check(v.get("/v1/audit/verify", token=olga), 403, "an operator verifies the audit")
        self.ctl("audit", "tail", token=olga, check=5)
        self.make_user("aud", ["auditor"])
        aud = v.login("aud")
        self.check(v.get("/v1/audit", token=aud), 200, "an auditor reads the audit")
        self.ctl("audit", "verify", token=aud, check=0)
        recs = self.audit_all(action="audit.read", result="denied")
        self.assertEqual([(x["principal"], x["status"], x["capability"]) for x in recs],
                         [("user:olga", 403, "audit")] * 2,
                         f"olga's two refused audit reads (API and CLI) are recorded: {recs}")


if __name__ == "__main__":
    main()
