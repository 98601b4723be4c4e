#!/usr/bin/env python3
"""vaultd end to end: people, services and access (docs/api.md, issue 4).

MFA at init and unlock, login tokens bound to a uid, brute-force lockout,
recovery codes, users, roles, services, and the RBAC decision as seen from
several principals: users by bearer token, services by the uid of the
caller, unbound uids. Requests from other uids run in a forked child (as_uid)
under that uid, in group nogroup, which may reach the socket.

Every test starts a fresh vault. TOTP codes are single use per user, so each
test spends at most three per user (steps now-1, now, now+1: no waiting) and
uses recovery codes beyond that.
"""
import base64
import grp
import time
import urllib.parse
from datetime import datetime, timezone

from harness import (ADMIN, PASSPHRASE, TOTP_PERIOD, VaultTestCase, as_uid, main, totp,
                     wrong_totp)

NOBODY = 65534                        # unbound unless a test binds it
NOGROUP = grp.getgrnam("nogroup").gr_gid
SERVICE_UID = 4242                    # a uid with no passwd entry, bound to a service
SESSION_TTL = 600

TRMM = {"url": "https://rmm.acme.example", "api_key": "TRMM-access-key-0123456789"}
TRMM_GLOBEX = {"url": "https://rmm.globex.example", "api_key": "TRMM-globex-key-9876543210"}
AUTOTASK = {"zone_url": "https://webservices5.autotask.net", "username": "api@acme.example", "secret": "sec-access-at", "integration_code": "IC-ACCESS"}
RMM_READ = {"rules": [{"path": "acme/rmm/*", "capabilities": ["read", "list"]}]}

RECOVERY_RE = r"^[^\s-]{4}-[^\s-]{4}-[^\s-]{4}-[^\s-]{4}$"
OK = "2xx"


def status_class(r):
    return OK if 200 <= r.status < 300 else r.status


def paths(r):
    return [s["path"] for s in r.json["secrets"]] if r.status == 200 and r.json else None


def names(items):
    """Names from a list of strings or of objects with a "name"."""
    return {x if isinstance(x, str) else x.get("name") for x in items}


class AccessCase(VaultTestCase):
    """A vault other uids may reach, that hands tokens out explicitly."""

    AUTH = {"max_failures": 50, "lockout_seconds": 60, "session_ttl": SESSION_TTL}
    maxDiff = None

    def setUp(self):
        super().setUp()
        self.v.auto_login = False      # every request here names its token
        self.v.allow_other_uids()
        self.v.set_auth(**self.AUTH)

    # ---- helpers ----

    def check(self, r, status, what):
        self.assertEqual(r.status, status, f"{what}: expected {status}, got {r}")
        return r

    def init_enrolled(self):
        """Starts and initialises; returns the init reply, checked for TOTP enrolment."""
        v = self.v.start()
        r = v.init()
        self.assertIn("totp_secret", r.json or {},
                      f"init reply has no totp_secret: the daemon does not enrol TOTP (issue 4): {r}")
        return r

    def boot(self):
        """Started, initialised, unlocked with TOTP, admin logged in: the admin token."""
        self.init_enrolled()
        v = self.v
        self.check(self.unlock_req(totp=v.fresh_totp(ADMIN)), 200, "unlock as the admin with a valid TOTP code")
        return self.login_ok(ADMIN)

    def unlock_req(self, user=ADMIN, passphrase=PASSPHRASE, **cred):
        body = {"user": user, "passphrase": passphrase}
        body.update(cred)
        return self.v.post("/v1/sys/unlock", body, token=False)

    def login_ok(self, user, passphrase=PASSPHRASE, **kw):
        r = self.v.login_request(user, passphrase, **kw)
        self.check(r, 200, f"login as {user!r}")
        self.assertTrue(r.json.get("token"), f"login reply has a token: {r}")
        return r.json["token"]

    def locked(self):
        return self.v.get("/v1/sys/health", token=False).json["locked"]

    def make_user(self, admin_token, name, roles, passphrase=PASSPHRASE):
        r = self.v.put(f"/v1/users/{name}", {"passphrase": passphrase, "roles": roles}, token=admin_token)
        self.check(r, 200, f"admin creates user {name!r} with roles {roles}")
        self.v.remember_enrolment(name, r)
        return r

    def write(self, token, path, data, type_="generic"):
        r = self.v.put(f"/v1/secrets/{path}", {"type": type_, "data": data}, token=token)
        self.check(r, 200, f"write {path}")
        return r

    def assert_enrolment(self, r, what):
        """An init, user-creation or MFA-reset reply: otpauth URI, base32 secret, ten codes."""
        j = r.json or {}
        for key in ("totp_uri", "totp_secret", "recovery_codes"):
            self.assertIn(key, j, f"{what}: reply lacks {key!r}: {r}")
        uri = urllib.parse.urlsplit(j["totp_uri"])
        self.assertEqual((uri.scheme, uri.netloc), ("otpauth", "totp"), f"{what}: totp_uri is otpauth://totp/...")
        q = urllib.parse.parse_qs(uri.query)
        self.assertIn("secret", q, f"{what}: totp_uri carries secret=")
        norm = lambda s: s.upper().rstrip("=")  # noqa: E731
        self.assertEqual(norm(q["secret"][0]), norm(j["totp_secret"]), f"{what}: the URI's secret is totp_secret")
        for param, value in (("algorithm", "SHA1"), ("digits", "6"), ("period", "30")):
            if param in q:
                self.assertEqual(q[param][0].upper(), value, f"{what}: totp_uri {param}")
        s = j["totp_secret"].upper()
        key = base64.b32decode(s + "=" * (-len(s) % 8))
        self.assertGreaterEqual(len(key), 10, f"{what}: the TOTP secret has at least 80 bits")
        codes = j["recovery_codes"]
        self.assertEqual(len(codes), 10, f"{what}: ten recovery codes: {codes}")
        self.assertEqual(len(set(codes)), 10, f"{what}: recovery codes are distinct")
        for c in codes:
            self.assertRegex(c, RECOVERY_RE, f"{what}: recovery code shape xxxx-xxxx-xxxx-xxxx")
        return j


class Mfa(AccessCase):
    def test_init_enrols_totp_and_unlock_needs_a_fresh_code(self):
        v = self.v
        r = self.init_enrolled()
        j = self.assert_enrolment(r, "init")
        self.assertEqual((j.get("initialized"), j.get("admin"), j.get("locked")), (True, ADMIN, True),
                         f"init still answers initialized/admin/locked: {r}")
        secret = j["totp_secret"]

        r = self.unlock_req()
        self.assertIn(r.status, (400, 401), f"unlock without a TOTP code is refused: {r}")
        r_code = self.check(self.unlock_req(totp=wrong_totp(secret)), 401, "unlock with a wrong TOTP code")
        self.assertEqual(r_code.json["error"], "unauthorized")
        r_pass = self.check(self.unlock_req(passphrase="wrong passphrase!", totp=wrong_totp(secret)), 401,
                            "unlock with a wrong passphrase")
        r_user = self.check(self.unlock_req(user="nosuchuser", totp=wrong_totp(secret)), 401,
                            "unlock as an unknown user")
        self.assertEqual({r_code.json["message"], r_pass.json["message"], r_user.json["message"]},
                         {r_code.json["message"]}, "wrong user, passphrase or code: the same message")
        self.assertTrue(self.locked(), "refused unlocks leave the vault locked")

        # Make sure the first code stays valid for a while (it is step now-1,
        # valid until the end of step now), so that refusing it below is the
        # single-use rule and not expiry.
        if time.time() % TOTP_PERIOD > TOTP_PERIOD - 10:
            time.sleep(TOTP_PERIOD - time.time() % TOTP_PERIOD + 0.1)
        now = int(time.time() // TOTP_PERIOD)
        c_unlock, c_login = totp(secret, step=now - 1), totp(secret, step=now)
        v._totp_last_step[ADMIN] = now
        r = self.check(self.unlock_req(totp=c_unlock), 200, "unlock with a valid TOTP code")
        self.assertEqual(r.json, {"locked": False})
        self.assertFalse(self.locked())

        login = self.check(v.login_request(code=c_login), 200, "login as the admin with a valid TOTP code")
        token = login.json["token"]
        self.check(v.login_request(code=c_login), 401, "login replaying the code that was just accepted")
        u = self.check(v.get(f"/v1/users/{ADMIN}", token=token), 200, "admin reads its own user").json
        self.assertEqual(u["mfa"], "active", "the first valid code completed the admin's enrolment")
        self.assertEqual(u["recovery_codes_left"], 10)

        self.check(v.post("/v1/sys/lock", token=token), 200, "admin locks")
        self.assertLessEqual(int(time.time() // TOTP_PERIOD), now, "test too slow: the first code expired")
        self.check(self.unlock_req(totp=c_unlock), 401, "unlock replaying the code of the first unlock")
        self.check(self.unlock_req(totp=c_login), 401, "unlock with the code spent on login (single use per user)")
        self.assertTrue(self.locked(), "replayed codes do not unlock")
        self.check(self.unlock_req(totp=v.fresh_totp(ADMIN)), 200, "unlock with a fresh code")

    def test_recovery_code_works_once(self):
        v = self.v
        codes = self.assert_enrolment(self.init_enrolled(), "init")["recovery_codes"]
        self.check(self.unlock_req(totp=v.fresh_totp(ADMIN)), 200, "unlock with TOTP")
        token = self.login_ok(ADMIN)
        self.check(v.post("/v1/sys/lock", token=token), 200, "admin locks")

        self.check(self.unlock_req(recovery_code=codes[0]), 200, "unlock with a recovery code instead of TOTP")
        token = self.login_ok(ADMIN, recovery_code=codes[1])
        u = self.check(v.get(f"/v1/users/{ADMIN}", token=token), 200, "admin reads its own user").json
        self.assertEqual(u["recovery_codes_left"], 8, "two recovery codes spent")
        self.check(v.post("/v1/sys/lock", token=token), 200, "admin locks")

        self.check(self.unlock_req(recovery_code=codes[0]), 401, "the recovery code spent on unlock, again")
        self.check(self.unlock_req(recovery_code=codes[1]), 401, "the recovery code spent on login, for unlock")
        self.check(self.unlock_req(recovery_code="abcd-efgh-ijkl-mnop"), 401, "a recovery code never issued")
        self.assertTrue(self.locked())
        self.check(self.unlock_req(recovery_code=codes[2]), 200, "an unused recovery code still works")

    def test_a_wrong_passphrase_spends_no_second_factor(self):
        # The daemon checks the second factor even after a wrong passphrase
        # (so timing does not say which was wrong), but spends it only when
        # the passphrase was right: the same code then still works.
        v = self.v
        codes = self.assert_enrolment(self.init_enrolled(), "init")["recovery_codes"]
        code = v.fresh_totp(ADMIN)
        self.check(self.unlock_req(passphrase="a wrong passphrase", totp=code), 401,
                   "unlock, wrong passphrase, right TOTP code")
        self.check(self.unlock_req(passphrase="a wrong passphrase", recovery_code=codes[0]), 401,
                   "unlock, wrong passphrase, right recovery code")
        self.check(self.unlock_req("no-such-user", totp=code), 401, "unlock as a user that does not exist")
        self.check(self.unlock_req("no-such-user", recovery_code=codes[0]), 401,
                   "unlock as a user that does not exist, with the admin's recovery code")
        self.assertTrue(self.locked())
        self.check(self.unlock_req(totp=code), 200, "the same TOTP code, right passphrase")
        token = self.login_ok(ADMIN, recovery_code=codes[0])
        u = self.check(v.get(f"/v1/users/{ADMIN}", token=token), 200, "admin reads its own user").json
        self.assertEqual(u["recovery_codes_left"], 9, "only the login spent a recovery code")
        self.check(v.post("/v1/sys/lock", token=token), 200, "admin locks")
        self.check(self.unlock_req(totp=code), 401, "the TOTP code, spent by the right unlock, again")
        self.check(self.unlock_req(recovery_code=codes[0]), 401, "the recovery code, spent by the login, again")


class BruteForce(AccessCase):
    AUTH = {"max_failures": 5, "lockout_seconds": 60, "session_ttl": SESSION_TTL}

    def test_unlock_is_rate_limited_after_max_failures(self):
        v = self.v
        token = self.boot()
        self.make_user(token, "bob", ["admin"], "bob's long passphrase")
        self.check(v.post("/v1/sys/lock", token=token), 200, "admin locks")

        secret = v.totp_secrets[ADMIN]
        for i in range(5):
            self.check(self.unlock_req(passphrase=f"wrong passphrase {i}", totp=wrong_totp(secret)), 401,
                       f"wrong passphrase #{i + 1} of max_failures = 5")
        r = self.check(self.unlock_req(totp=v.fresh_totp(ADMIN)), 429,
                       "the 6th unlock, with the right passphrase and code, after 5 failures")
        self.assertEqual(r.json["error"], "rate_limited")
        self.assertTrue(self.locked(), "a rate-limited unlock does not unlock")
        # The uid is locked out too: another user, right credentials, same uid.
        bob_code = v.fresh_totp("bob")
        r = self.check(self.unlock_req("bob", "bob's long passphrase", totp=bob_code), 429,
                       "another user from the same (locked-out) uid")
        self.assertEqual(r.json["error"], "rate_limited")
        self.assertTrue(self.locked())

        # Neither bob nor uid 65534 failed: bob unlocks from there. The
        # admin's right credentials from that uid pass too: the hard lockout
        # is per (user, uid) and per uid, never per name alone (security
        # review finding 5: a name-wide lockout let anyone lock every admin
        # out).
        bob_code = v.fresh_totp("bob")
        rc = v.recovery_codes[ADMIN][0]

        def from_nobody():
            u = self.unlock_req("bob", "bob's long passphrase", totp=bob_code)
            login = v.login_request(ADMIN, PASSPHRASE, recovery_code=rc)
            return u.status, login.status, (login.json or {}).get("error")
        self.assertEqual(as_uid(NOBODY, NOGROUP, from_nobody), (200, 200, None),
                         "from uid 65534: bob (no failures) unlocks; the admin logs in from a uid that did not fail")
        self.assertFalse(self.locked())

    def test_lockout_counts_per_user_and_per_uid(self):
        v = self.v
        token = self.boot()
        self.make_user(token, "bob", ["operator"], "bob's long passphrase")
        bob_secret = v.totp_secrets["bob"]

        def fail_five():
            return [v.login_request("bob", f"wrong passphrase {i}", code=wrong_totp(bob_secret)).status
                    for i in range(5)]
        self.assertEqual(as_uid(NOBODY, NOGROUP, fail_five), [401] * 5,
                         "five wrong passphrases for bob from uid 65534: 401 each")
        # Security review finding 5: a lockout keyed on the name alone let
        # any uid lock bob out. The pair (bob, 65534) and uid 65534 are
        # locked; bob from his own uid is not.
        r = self.check(as_uid(NOBODY, NOGROUP, lambda: v.login_request("bob", "bob's long passphrase")), 429,
                       "bob's right credentials from uid 65534, which failed five times")
        self.assertEqual(r.json["error"], "rate_limited")
        self.check(v.login_request("bob", "bob's long passphrase"), 200,
                   "bob with the right passphrase and code from uid 0: the attacker's failures do not lock him out")
        rc = v.recovery_codes[ADMIN][0]
        r = as_uid(NOBODY, NOGROUP, lambda: v.login_request(ADMIN, PASSPHRASE, recovery_code=rc).status)
        self.assertEqual(r, 429, "the admin's right credentials from uid 65534 (that uid is locked out)")
        self.login_ok(ADMIN)  # neither admin nor uid 0 failed


class Sessions(AccessCase):
    def test_token_bound_to_uid_and_revoked_by_logout_lock_and_delete(self):
        v = self.v
        self.init_enrolled()
        self.check(self.unlock_req(totp=v.fresh_totp(ADMIN)), 200, "unlock")
        t0 = time.time()
        login = self.check(v.login_request(ADMIN), 200, "admin login")
        j = login.json
        self.assertEqual((j.get("user"), j.get("roles")), (ADMIN, ["admin"]), f"login reply: {login}")
        self.assertIsInstance(j.get("token"), str)
        exp = j.get("expires_at")
        if isinstance(exp, str):
            exp = datetime.fromisoformat(exp.replace("Z", "+00:00")).astimezone(timezone.utc).timestamp()
        self.assertAlmostEqual(exp, t0 + SESSION_TTL, delta=30,
                               msg=f"expires_at is session_ttl ({SESSION_TTL} s) from now: {j.get('expires_at')}")
        token = j["token"]

        r = self.check(v.get("/v1/auth/self", token=token), 200, "self with the admin token")
        self.assertEqual(r.json, {"kind": "user", "name": ADMIN, "roles": ["admin"], "uid": 0})
        self.check(v.get("/v1/auth/self", token=False), 403, "uid 0 without a token is unbound")
        self.check(v.get("/v1/auth/self", token="not-a-token"), 401, "an unknown token")
        self.check(v.get("/v1/secrets/acme/a/b", token="not-a-token"), 401, "an unknown token on a secret")

        def replay():
            return [v.get("/v1/auth/self", token=token).status,
                    v.get("/v1/types", token=token).status,
                    v.get("/v1/secrets/acme/a/b", token=token).status,
                    v.get("/v1/users", token=token).status,
                    v.get("/v1/auth/self", token=False).status]
        self.assertEqual(as_uid(NOBODY, NOGROUP, replay), [401, 401, 401, 401, 403],
                         "the admin's token from uid 65534: 401 everywhere (never the uid's standing); "
                         "no token there: 403")

        # A user logging in from uid 65534 gets a token for that uid only.
        self.make_user(token, "olga", ["operator"])
        olga_code = v.fresh_totp("olga")

        def olga_login():
            r = v.login_request("olga", PASSPHRASE, code=olga_code)
            if r.status != 200:
                return r.status, None, None
            s = v.get("/v1/auth/self", token=r.json["token"])
            return r.status, r.json["token"], s.json
        st, olga_token, olga_self = as_uid(NOBODY, NOGROUP, olga_login)
        self.assertEqual(st, 200, "olga logs in from uid 65534")
        self.assertEqual(olga_self, {"kind": "user", "name": "olga", "roles": ["operator"], "uid": NOBODY})
        self.check(v.get("/v1/auth/self", token=olga_token), 401, "olga's token (uid 65534) from uid 0")

        self.check(v.post("/v1/auth/logout", token=token), 200, "logout")
        self.check(v.get("/v1/auth/self", token=token), 401, "the token after logout")
        self.check(v.get("/v1/types", token=token), 401, "the token after logout, on another route")

        token = self.login_ok(ADMIN)
        self.check(v.post("/v1/sys/lock", token=token), 200, "admin locks")
        self.check(self.unlock_req(recovery_code=v.recovery_codes[ADMIN][0]), 200, "unlock (recovery code)")
        self.check(v.get("/v1/auth/self", token=token), 401, "the admin's token after lock and unlock")
        self.assertEqual(as_uid(NOBODY, NOGROUP, lambda: v.get("/v1/auth/self", token=olga_token).status), 401,
                         "olga's token after lock and unlock, from her own uid")

        token = self.login_ok(ADMIN, recovery_code=v.recovery_codes[ADMIN][1])
        self.make_user(token, "carol", ["operator"])
        carol = self.login_ok("carol")
        self.check(v.get("/v1/auth/self", token=carol), 200, "carol's token")
        self.check(v.delete("/v1/users/carol", token=token), 200, "admin deletes carol")
        self.check(v.get("/v1/auth/self", token=carol), 401, "carol's token after her user was deleted")
        self.check(v.get("/v1/secrets/acme/a/b", token=carol), 401, "carol's token after deletion, on a secret")


class MustShow(AccessCase):
    def test_service_sees_only_what_its_role_allows(self):
        v = self.v
        admin = self.boot()
        self.check(v.put("/v1/roles/rmm-read", RMM_READ, token=admin), 200, "admin creates role rmm-read")
        self.check(v.put("/v1/services/tactical-sync", {"uid": NOBODY, "roles": ["rmm-read"]}, token=admin), 200,
                   "admin binds uid 65534 to service tactical-sync")
        self.write(admin, "acme/rmm/tactical", TRMM, "tactical-rmm")
        self.write(admin, "acme/rmm/backup", {"k": "backup-key"})
        self.write(admin, "acme/rmm-old/legacy", {"k": "legacy-key"})
        self.write(admin, "acme/psa/autotask", AUTOTASK, "autotask")
        self.write(admin, "globex/rmm/tactical", TRMM_GLOBEX, "tactical-rmm")
        hijack = {"url": "https://evil.example", "api_key": "HIJACKED-0123456789"}

        def as_service():
            # No token: uid 65534 is the service. Each entry: one request, in order.
            def full(r):
                return r.status, r.json

            def data(r):
                return r.status, (r.json or {}).get("data")

            def listed(r):
                return r.status, paths(r)

            def st(r):
                return r.status
            secrets = "/v1/secrets/"
            gen = {"type": "generic", "data": {"k": "v"}}
            return {
                "self": full(v.get("/v1/auth/self", token=False)),
                "read": data(v.get(secrets + "acme/rmm/tactical", token=False)),
                "versions": st(v.get(secrets + "acme/rmm/tactical?versions=1", token=False)),
                "write": st(v.put(secrets + "acme/rmm/tactical", {"type": "tactical-rmm", "data": hijack},
                                  token=False)),
                "rollback": st(v.post(secrets + "acme/rmm/tactical/rollback", {"version": 1}, token=False)),
                "delete": st(v.delete(secrets + "acme/rmm/tactical", token=False)),
                "read acme/psa/autotask": st(v.get(secrets + "acme/psa/autotask", token=False)),
                "versions acme/psa/autotask": st(v.get(secrets + "acme/psa/autotask?versions=1", token=False)),
                "read acme/rmm-old/legacy": st(v.get(secrets + "acme/rmm-old/legacy", token=False)),
                "read globex/rmm/tactical": st(v.get(secrets + "globex/rmm/tactical", token=False)),
                "read acme/rmm/nonexistent": st(v.get(secrets + "acme/rmm/nonexistent", token=False)),
                "read acme/psa/nonexistent": st(v.get(secrets + "acme/psa/nonexistent", token=False)),
                "write acme/psa/new": st(v.put(secrets + "acme/psa/new", gen, token=False)),
                "list acme/rmm": listed(v.get(secrets + "acme/rmm?list=1", token=False)),
                "list acme": listed(v.get(secrets + "acme?list=1", token=False)),
                "list globex": st(v.get(secrets + "globex?list=1", token=False)),
                "list root": listed(v.get("/v1/secrets?list=1", token=False)),
                "types": st(v.get("/v1/types", token=False)),
                "lock": st(v.post("/v1/sys/lock", token=False)),
                "users": st(v.get("/v1/users", token=False)),
                "services": st(v.get("/v1/services", token=False)),
            }
        got = as_uid(NOBODY, NOGROUP, as_service)

        self.assertEqual(got["self"], (200, {"kind": "service", "name": "tactical-sync", "roles": ["rmm-read"],
                                             "uid": NOBODY}), "uid 65534 without a token acts as the service")
        self.assertEqual(got["read"], (200, TRMM), "the service reads acme/rmm/tactical (read on acme/rmm/*)")
        self.assertEqual(got["read acme/rmm/nonexistent"], 404, "an allowed path that does not exist: 404")
        self.assertEqual(got["list acme/rmm"], (200, ["acme/rmm/backup", "acme/rmm/tactical"]),
                         "listing acme/rmm: the acme/rmm secrets")
        self.assertEqual(got["list acme"], (200, ["acme/rmm/backup", "acme/rmm/tactical"]),
                         "listing acme is filtered to acme/rmm/* (not acme/psa, not acme/rmm-old)")
        self.assertIn(got["list root"], [(403, None), (200, ["acme/rmm/backup", "acme/rmm/tactical"])],
                      "listing the root: refused, or filtered to acme/rmm/*")
        expected = {"versions": 200, "write": 403, "rollback": 403, "delete": 403,
                    "read acme/psa/autotask": 403, "versions acme/psa/autotask": 403,
                    "read acme/rmm-old/legacy": 403, "read globex/rmm/tactical": 403,
                    "read acme/psa/nonexistent": 403, "write acme/psa/new": 403, "list globex": 403,
                    "types": 200, "lock": 403, "users": 403, "services": 403}
        self.assertEqual({k: got[k] for k in expected}, expected,
                         "as service tactical-sync (uid 65534): status per request")

        # Nothing the refused requests asked for happened.
        self.assertFalse(self.locked(), "the refused lock did not lock")
        for path, data in [("acme/rmm/tactical", TRMM), ("acme/psa/autotask", AUTOTASK),
                           ("globex/rmm/tactical", TRMM_GLOBEX)]:
            r = self.check(v.get(f"/v1/secrets/{path}", token=admin), 200, f"admin reads {path}")
            self.assertEqual((r.json["version"], r.json["data"]), (1, data), f"{path} unchanged")
        self.check(v.get("/v1/secrets/acme/psa/new", token=admin), 404, "the refused write stored nothing")
        self.assertEqual(paths(v.get("/v1/secrets/acme?list=1", token=admin)),
                         ["acme/psa/autotask", "acme/rmm-old/legacy", "acme/rmm/backup", "acme/rmm/tactical"],
                         "admin lists acme: exactly what it wrote")


# The access matrix. Rows: routes; one column per principal.
ROUTES = ["GET /v1/sys/health", "POST /v1/auth/login (wrong passphrase)",
          "GET secret", "GET other tenant's secret", "PUT secret", "DELETE secret", "list acme",
          "GET /v1/types", "GET /v1/auth/self", "GET /v1/users", "PUT /v1/roles/x", "GET /v1/services"]


def row(*statuses):
    return dict(zip(ROUTES, statuses))


F, U = 403, 401
# Health and login answer everyone (login: 401 for the wrong passphrase, not 403).
MATRIX = {
    "admin": row(OK, U, OK, OK, OK, OK, OK, OK, OK, OK, OK, OK),
    "operator": row(OK, U, OK, OK, OK, OK, OK, OK, OK, F, F, F),
    "auditor": row(OK, U, F, F, F, F, OK, OK, OK, F, F, F),
    "custom role acme-rw": row(OK, U, OK, F, OK, OK, OK, OK, OK, F, F, F),
    "service rmm-read (uid 4242)": row(OK, U, OK, F, F, F, OK, OK, OK, F, F, F),
    "unbound uid 65534": row(OK, U, F, F, F, F, F, F, F, F, F, F),
    "uid 0 without a token": row(OK, U, F, F, F, F, F, F, F, F, F, F),
    "admin token from uid 65534": row(OK, U, U, U, U, U, U, U, U, U, U, U),
    "revoked admin token": row(OK, U, U, U, U, U, U, U, U, U, U, U),
}


def probe_routes(v, token, tag):
    t = token or False
    gen = {"type": "generic", "data": {"k": "v"}}
    return {
        # Health with no token (whether a bad token spoils it is not specified).
        "GET /v1/sys/health": status_class(v.get("/v1/sys/health", token=False)),
        "POST /v1/auth/login (wrong passphrase)": status_class(v.post(
            "/v1/auth/login", {"user": ADMIN, "passphrase": "not the passphrase", "totp": "000000"}, token=t)),
        "GET secret": status_class(v.get("/v1/secrets/acme/rmm/tactical", token=t)),
        "GET other tenant's secret": status_class(v.get("/v1/secrets/globex/rmm/tactical", token=t)),
        "PUT secret": status_class(v.put(f"/v1/secrets/acme/rmm/w-{tag}", gen, token=t)),
        "DELETE secret": status_class(v.delete(f"/v1/secrets/acme/rmm/d-{tag}", token=t)),
        "list acme": status_class(v.get("/v1/secrets/acme?list=1", token=t)),
        "GET /v1/types": status_class(v.get("/v1/types", token=t)),
        "GET /v1/auth/self": status_class(v.get("/v1/auth/self", token=t)),
        "GET /v1/users": status_class(v.get("/v1/users", token=t)),
        "PUT /v1/roles/x": status_class(v.put("/v1/roles/x", {"rules": [{"path": "acme/x",
                                                                          "capabilities": ["read"]}]}, token=t)),
        "GET /v1/services": status_class(v.get("/v1/services", token=t)),
    }


class Matrix(AccessCase):
    def test_route_matrix_and_lock(self):
        v = self.v
        admin = self.boot()
        self.check(v.put("/v1/roles/rmm-read", RMM_READ, token=admin), 200, "create role rmm-read")
        self.check(v.put("/v1/roles/acme-rw", {"rules": [{"path": "acme", "capabilities":
                                                          ["read", "list", "write", "delete"]}]}, token=admin),
                   200, "create role acme-rw")
        self.check(v.put("/v1/services/rmm-bot", {"uid": SERVICE_UID, "roles": ["rmm-read"]}, token=admin), 200,
                   "bind uid 4242")
        self.make_user(admin, "olga", ["operator"])
        self.make_user(admin, "audrey", ["auditor"])
        self.make_user(admin, "cora", ["acme-rw"])
        self.write(admin, "acme/rmm/tactical", TRMM, "tactical-rmm")
        self.write(admin, "globex/rmm/tactical", TRMM_GLOBEX, "tactical-rmm")
        tags = ["admin", "operator", "auditor", "custom", "service", "unbound", "root", "replayed", "revoked"]
        for tag in tags:
            self.write(admin, f"acme/rmm/d-{tag}", {"k": tag})
        revoked = self.login_ok(ADMIN)
        self.check(v.post("/v1/auth/logout", token=revoked), 200, "logout (the revoked token)")
        tokens = {"olga": self.login_ok("olga"), "audrey": self.login_ok("audrey"), "cora": self.login_ok("cora")}

        got = {
            "admin": probe_routes(v, admin, "admin"),
            "operator": probe_routes(v, tokens["olga"], "operator"),
            "auditor": probe_routes(v, tokens["audrey"], "auditor"),
            "custom role acme-rw": probe_routes(v, tokens["cora"], "custom"),
            "service rmm-read (uid 4242)": as_uid(SERVICE_UID, NOGROUP, lambda: probe_routes(v, None, "service")),
            "unbound uid 65534": as_uid(NOBODY, NOGROUP, lambda: probe_routes(v, None, "unbound")),
            "uid 0 without a token": probe_routes(v, None, "root"),
            "admin token from uid 65534": as_uid(NOBODY, NOGROUP, lambda: probe_routes(v, admin, "replayed")),
            "revoked admin token": probe_routes(v, revoked, "revoked"),
        }
        wrong = [f"  {who:28} {route:40} expected {MATRIX[who][route]}, got {got[who][route]}"
                 for who in MATRIX for route in ROUTES if got[who][route] != MATRIX[who][route]]
        if wrong:
            self.fail("routes answering otherwise than docs/api.md says (principal, route):\n" + "\n".join(wrong))

        # The auditor lists everything, the service only what its rule covers.
        self.assertEqual(paths(v.get("/v1/secrets/acme?list=1", token=tokens["audrey"])),
                         sorted(["acme/rmm/tactical", "acme/rmm/w-admin", "acme/rmm/w-operator", "acme/rmm/w-custom"]
                                + [f"acme/rmm/d-{t}" for t in tags if t not in ("admin", "operator", "custom")]),
                         "the auditor lists every acme secret (and the writes and deletes above happened)")

        # POST /v1/sys/lock: admin only. Everyone else leaves the vault unlocked.
        lockers = [("operator", lambda: v.post("/v1/sys/lock", token=tokens["olga"]).status, 403),
                   ("auditor", lambda: v.post("/v1/sys/lock", token=tokens["audrey"]).status, 403),
                   ("custom role", lambda: v.post("/v1/sys/lock", token=tokens["cora"]).status, 403),
                   ("service", lambda: as_uid(SERVICE_UID, NOGROUP,
                                              lambda: v.post("/v1/sys/lock", token=False).status), 403),
                   ("unbound uid", lambda: as_uid(NOBODY, NOGROUP,
                                                  lambda: v.post("/v1/sys/lock", token=False).status), 403),
                   ("uid 0 without a token", lambda: v.post("/v1/sys/lock", token=False).status, 403),
                   ("admin token from uid 65534", lambda: as_uid(NOBODY, NOGROUP,
                                                                 lambda: v.post("/v1/sys/lock", token=admin).status),
                    401),
                   ("revoked token", lambda: v.post("/v1/sys/lock", token=revoked).status, 401)]
        for who, fn, want in lockers:
            self.assertEqual(fn(), want, f"POST /v1/sys/lock as {who}")
            self.assertFalse(self.locked(), f"POST /v1/sys/lock as {who} left the vault unlocked")
        self.check(v.post("/v1/sys/lock", token=admin), 200, "POST /v1/sys/lock as admin")
        self.assertTrue(self.locked())

        # Unlocking needs the admin capability too.
        r = self.check(self.unlock_req("olga", PASSPHRASE, totp=v.fresh_totp("olga")), 403,
                       "unlock by an operator with valid credentials")
        self.assertEqual(r.json["error"], "forbidden")
        self.assertTrue(self.locked())


class Users(AccessCase):
    def test_user_lifecycle(self):
        v = self.v
        admin = self.boot()
        bob_pass = "bob's long passphrase"
        r = self.check(v.put("/v1/users/bob", {"passphrase": bob_pass, "roles": ["operator"]}, token=admin), 200,
                       "create bob")
        first = self.assert_enrolment(r, "create bob")
        self.assertEqual((r.json["name"], r.json["roles"]), ("bob", ["operator"]))
        v.remember_enrolment("bob", r)

        u = self.check(v.get("/v1/users/bob", token=admin), 200, "read bob").json
        self.assertEqual((u["name"], u["roles"], u["mfa"], u["recovery_codes_left"]),
                         ("bob", ["operator"], "pending", 10), f"bob as read back: {u}")
        for key in ("created_at", "updated_at"):
            self.assertIn(key, u)
        raw = v.get("/v1/users/bob", token=admin).raw.decode()
        self.assertNotIn(first["totp_secret"], raw, "the TOTP secret is shown once only")
        self.assertNotIn(bob_pass, raw)
        listed = self.check(v.get("/v1/users", token=admin), 200, "list users").json["users"]
        self.assertEqual(names(listed), {ADMIN, "bob"})

        # Pending enrolment: login needs a valid code, and the first one completes it.
        r = v.post("/v1/auth/login", {"user": "bob", "passphrase": bob_pass}, token=False)
        self.assertIn(r.status, (400, 401), f"bob's login without a code: {r}")
        self.check(v.login_request("bob", bob_pass, code=wrong_totp(first["totp_secret"])), 401,
                   "bob's login with a wrong code")
        self.assertEqual(v.get("/v1/users/bob", token=admin).json["mfa"], "pending")
        login = self.check(v.login_request("bob", bob_pass), 200, "bob's login with a valid code")
        self.assertEqual((login.json["user"], login.json["roles"]), ("bob", ["operator"]))
        bob = login.json["token"]
        self.assertEqual(v.get("/v1/users/bob", token=admin).json["mfa"], "active",
                         "the valid code completed enrolment")
        self.assertEqual(v.get("/v1/auth/self", token=bob).json, {"kind": "user", "name": "bob", "roles": ["operator"],
                                                                  "uid": 0})
        self.write(bob, "acme/rmm/tactical", TRMM, "tactical-rmm")
        self.check(v.get("/v1/users", token=bob), 403, "an operator lists users")
        self.check(v.put("/v1/users/eve", {"passphrase": PASSPHRASE, "roles": ["admin"]}, token=bob), 403,
                   "an operator creates an admin")
        self.check(v.get("/v1/users/eve", token=admin), 404, "eve was not created")

        # MFA reset: new secret and codes, pending again, tokens revoked.
        r = self.check(v.post("/v1/users/bob/reset-mfa", token=admin), 200, "reset bob's MFA")
        second = self.assert_enrolment(r, "reset-mfa")
        self.assertNotEqual(second["totp_secret"], first["totp_secret"], "reset draws a new TOTP secret")
        self.assertFalse(set(second["recovery_codes"]) & set(first["recovery_codes"]), "and new recovery codes")
        v.remember_enrolment("bob", r)
        self.assertEqual(v.get("/v1/users/bob", token=admin).json["mfa"], "pending", "pending again after reset")
        self.check(v.get("/v1/auth/self", token=bob), 401, "bob's token after his MFA reset")
        self.check(v.login_request("bob", bob_pass, code=totp(first["totp_secret"])), 401,
                   "a code from the old TOTP secret")
        self.check(v.login_request("bob", bob_pass, recovery_code=first["recovery_codes"][0]), 401,
                   "an old recovery code")
        bob = self.login_ok("bob", bob_pass)
        self.assertEqual(v.get("/v1/users/bob", token=admin).json["mfa"], "active")

        # Roles: update, unknown role, last admin.
        r = self.check(v.put("/v1/users/bob", {"roles": ["auditor"]}, token=admin), 200, "bob becomes auditor")
        self.assertEqual(r.json, {"name": "bob", "roles": ["auditor"]})
        self.assertEqual(v.get("/v1/users/bob", token=admin).json["roles"], ["auditor"])
        login = self.check(v.login_request("bob", bob_pass), 200, "bob logs in as auditor")
        self.assertEqual(login.json["roles"], ["auditor"])
        bob = login.json["token"]
        self.check(v.get("/v1/secrets/acme/rmm/tactical", token=bob), 403, "the auditor bob reads a secret")
        self.check(v.put("/v1/users/bob", {"roles": ["no-such-role"]}, token=admin), 400, "bob gets an unknown role")
        self.assertEqual(v.get("/v1/users/bob", token=admin).json["roles"], ["auditor"], "bob's roles unchanged")
        self.check(v.put("/v1/users/carol", {"passphrase": PASSPHRASE, "roles": ["no-such-role"]}, token=admin), 400,
                   "create a user with an unknown role")
        self.check(v.get("/v1/users/carol", token=admin), 404, "carol was not created")

        self.check(v.delete(f"/v1/users/{ADMIN}", token=admin), 409, "delete the last admin")
        self.check(v.put(f"/v1/users/{ADMIN}", {"roles": ["operator"]}, token=admin), 409, "demote the last admin")
        self.assertEqual(v.get(f"/v1/users/{ADMIN}", token=admin).json["roles"], ["admin"], "still an admin")

        # Deleting bob revokes his token.
        self.check(v.delete("/v1/users/bob", token=admin), 200, "delete bob")
        self.check(v.get("/v1/auth/self", token=bob), 401, "bob's token after his deletion")
        self.check(v.get("/v1/users/bob", token=admin), 404, "bob is gone")
        self.check(v.login_request("bob", bob_pass, code=wrong_totp(second["totp_secret"])), 401, "bob logs in")
        self.assertEqual(names(v.get("/v1/users", token=admin).json["users"]), {ADMIN})

        # With a second admin, the first may be demoted.
        self.make_user(admin, "carol", ["admin"])
        r = self.check(v.put(f"/v1/users/{ADMIN}", {"roles": ["operator"]}, token=admin), 200,
                       "demote an admin who is not the last one")
        self.assertEqual(r.json, {"name": ADMIN, "roles": ["operator"]})


class RolesAndServices(AccessCase):
    def test_roles_and_services(self):
        v = self.v
        admin = self.boot()
        for name in ("admin", "operator", "auditor"):
            self.check(v.put(f"/v1/roles/{name}", RMM_READ, token=admin), 409, f"PUT built-in role {name}")
        self.check(v.delete("/v1/roles/auditor", token=admin), 409, "DELETE built-in role auditor")

        self.check(v.put("/v1/roles/rmm-read", RMM_READ, token=admin), 200, "create rmm-read")
        r = self.check(v.get("/v1/roles/rmm-read", token=admin), 200, "read rmm-read")
        self.assertEqual([(x["path"], sorted(x["capabilities"])) for x in r.json["rules"]],
                         [("acme/rmm/*", ["list", "read"])], f"rmm-read's rules as written: {r}")
        r = self.check(v.get("/v1/roles", token=admin), 200, "list roles")
        self.assertEqual(names(r.json["roles"]), {"admin", "operator", "auditor", "rmm-read"},
                         f"built-in and custom roles: {r}")
        for bad in [{"rules": [{"path": "acme/rmm/*", "capabilities": ["fly"]}]},
                    {"rules": [{"path": "acme//rmm", "capabilities": ["read"]}]},
                    {"rules": [{"path": "acme/rmm", "capabilities": ["read"], "extra": 1}]}]:
            self.check(v.put("/v1/roles/bad", bad, token=admin), 400, f"invalid role {bad}")
        self.check(v.get("/v1/roles/bad", token=admin), 404, "no invalid role was stored")

        self.check(v.put("/v1/services/sync", {"uid": SERVICE_UID, "roles": ["rmm-read"]}, token=admin), 200,
                   "bind uid 4242 to sync")
        r = self.check(v.get("/v1/services/sync", token=admin), 200, "read service sync").json
        self.assertEqual((r["uid"], r["roles"]), (SERVICE_UID, ["rmm-read"]))
        self.assertEqual(names(self.check(v.get("/v1/services", token=admin), 200, "list services").json["services"]),
                         {"sync"})
        self.check(v.put("/v1/services/sync", {"uid": SERVICE_UID, "roles": ["rmm-read"]}, token=admin), 200,
                   "re-put sync with its own uid")
        self.check(v.put("/v1/services/other", {"uid": SERVICE_UID, "roles": ["rmm-read"]}, token=admin), 409,
                   "bind the same uid to another service")
        self.check(v.get("/v1/services/other", token=admin), 404, "the conflicting service was not created")
        self.check(v.put("/v1/services/other", {"uid": SERVICE_UID + 1, "roles": ["no-such-role"]}, token=admin),
                   400, "a service with an unknown role")

        self.check(v.delete("/v1/roles/rmm-read", token=admin), 409, "delete a role a service uses")
        self.check(v.put("/v1/roles/psa", {"rules": [{"path": "acme/psa", "capabilities": ["read"]}]}, token=admin),
                   200, "create psa")
        self.make_user(admin, "dave", ["psa"])
        self.check(v.delete("/v1/roles/psa", token=admin), 409, "delete a role a user uses")

        self.write(admin, "acme/rmm/tactical", TRMM, "tactical-rmm")
        read = lambda: v.get("/v1/secrets/acme/rmm/tactical", token=False).status  # noqa: E731
        self.assertEqual(as_uid(SERVICE_UID, NOGROUP, read), 200, "uid 4242 reads as service sync")
        self.check(v.delete("/v1/services/sync", token=admin), 200, "unbind sync")
        self.check(v.get("/v1/services/sync", token=admin), 404, "sync is gone")
        self.assertEqual(as_uid(SERVICE_UID, NOGROUP, read), 403, "uid 4242 is unbound again")
        self.check(v.delete("/v1/roles/rmm-read", token=admin), 200, "delete rmm-read, now unused")
        self.check(v.get("/v1/roles/rmm-read", token=admin), 404, "rmm-read is gone")


class Passphrase(AccessCase):
    def test_passphrase_change(self):
        v = self.v
        admin = self.boot()
        old_b, new_b, set_b = "bob's long passphrase", "bob's newer passphrase", "set by the admin, long"
        self.make_user(admin, "bob", ["operator"], old_b)
        bob = self.login_ok("bob", old_b)

        r = v.post("/v1/auth/passphrase", {"current": "not bob's passphrase", "new": new_b}, token=bob)
        self.assertIn(r.status, (400, 401, 403), f"change with a wrong current passphrase is refused: {r}")
        self.check(v.post("/v1/auth/passphrase", {"current": old_b, "new": "short"}, token=bob), 400,
                   "a new passphrase under 12 characters")
        self.check(v.post("/v1/auth/passphrase", {"current": old_b, "new": new_b}, token=bob), 200,
                   "bob changes his passphrase")
        self.check(v.login_request("bob", old_b, recovery_code=v.recovery_codes["bob"][0]), 401,
                   "bob logs in with the old passphrase")
        self.login_ok("bob", new_b)

        r = self.check(v.put("/v1/users/bob", {"passphrase": set_b}, token=admin), 200, "admin sets bob's passphrase")
        self.assertEqual(r.json, {"name": "bob", "roles": ["operator"]})
        self.check(v.login_request("bob", new_b, recovery_code=v.recovery_codes["bob"][1]), 401,
                   "bob logs in with the passphrase he chose before")
        self.login_ok("bob", set_b)

        # The admin's own passphrase also governs unlock.
        new_a = "the admin's new passphrase"
        self.check(v.post("/v1/auth/passphrase", {"current": PASSPHRASE, "new": new_a}, token=admin), 200,
                   "admin changes its passphrase")
        self.check(v.post("/v1/sys/lock", token=admin), 200, "admin locks")
        self.check(self.unlock_req(passphrase=PASSPHRASE, recovery_code=v.recovery_codes[ADMIN][0]), 401,
                   "unlock with the old passphrase")
        self.assertTrue(self.locked())
        self.check(self.unlock_req(passphrase=new_a, totp=v.fresh_totp(ADMIN)), 200, "unlock with the new passphrase")
        self.check(v.login_request(ADMIN, PASSPHRASE, recovery_code=v.recovery_codes[ADMIN][1]), 401,
                   "admin logs in with the old passphrase")
        self.login_ok(ADMIN, new_a, recovery_code=v.recovery_codes[ADMIN][2])


if __name__ == "__main__":
    main()
