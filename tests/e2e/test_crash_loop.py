"""Crash loop (issue 15, point 2): kill -9 at random moments of a mixed
workload, again and again; after each kill, restart, unlock and check that
the store holds every acknowledged change and nothing half-made.

The workload, from several threads at once: writes, soft deletes (and the
revival that follows), rollbacks, pending versions and their promotion, KEK
and data-key rotations of both tenants, and, in one iteration of five, the
audit retention's prune (a restart with the retention clock moved forward,
VAULTD_TEST_AUDIT_CLOCK_OFFSET, just before the workload). Each worker owns its paths, so what it was
told is a sequence: after a kill, a path may be in the state of its last
acknowledged change, or of the change that was in flight (acknowledged or
not: a commit can land before its answer leaves), nothing else.

After each kill:
  - PRAGMA integrity_check is ok (before vaultd opens the file again);
  - every path reads as one of those states, and every version a path lists
    decrypts (no 500, no garbage);
  - every acknowledged change has its audit record (unless a prune ran);
  - the audit chain verifies.

Seeded and reproducible: the seed is printed; VAULTD_CRASH_SEED=N replays
it, VAULTD_CRASH_ITERATIONS=N changes the count (default 50).
"""
import json
import os
import random
import sqlite3
import sys
import threading
import time

from harness import ADMIN, PASSPHRASE, VaultTestCase, main

TENANTS = ("acme", "globex")
WORKERS = 3
PATHS_PER_WORKER = 4
ADMINS = 12                 # unlocks need fresh TOTP steps: one user's last ~30 s


class Gone(Exception):
    """The daemon went away mid-request (it was killed)."""


class PathModel:
    """What one path may hold: a list of possible (current, pending) states,
    where current is a value or None (deleted or never written) and pending
    a value, None, or ANY (unknown, e.g. after a delete and revival)."""
    ANY = object()

    def __init__(self):
        self.states = [(None, None)]
        self.versions = {}          # version -> value, acknowledged writes

    def only(self):
        return self.states[-1]


class CrashLoop(VaultTestCase):
    def setUp(self):
        super().setUp()
        seed = os.environ.get("VAULTD_CRASH_SEED")
        self.seed = int(seed) if seed else random.SystemRandom().randrange(1 << 32)
        self.iterations = int(os.environ.get("VAULTD_CRASH_ITERATIONS", "50"))
        print(f"crash loop: seed {self.seed} (VAULTD_CRASH_SEED={self.seed} replays it), "
              f"{self.iterations} iterations", file=sys.stderr, flush=True)
        self.rng = random.Random(self.seed)
        with open(self.v.conf, "a") as f:
            f.write("[audit]\nretain_days = 1\n")

    # ---- requests --------------------------------------------------------

    def call(self, method, path, body=None):
        try:
            r = self.v.request(method, path, body=body, token=self.token)
        except (OSError, ConnectionError) as e:
            raise Gone() from e
        if r.status >= 500 and r.status != 503:
            raise AssertionError(f"{method} {path}: {r}")
        return r

    def unlock(self):
        """Unlocks with the first admin that has an unspent TOTP step, and
        keeps the session unlock hands back."""
        v = self.v
        while True:
            for name in self.admins:
                code = v.fresh_totp(name, wait=False)
                if code:
                    r = v.post("/v1/sys/unlock", {"user": name, "passphrase": PASSPHRASE, "totp": code,
                                                  "session": True}, token=False)
                    self.assertEqual(r.status, 200, f"unlock as {name}: {r}")
                    self.token = r.json["token"]
                    return
            time.sleep(1)

    # ---- the workload ----------------------------------------------------

    def worker(self, rng, paths, inflight, acked, stop):
        """Random operations on its own paths until the daemon goes away."""
        while not stop.is_set():
            path = rng.choice(paths)
            m = self.model[path]
            cur, pend = m.only()
            op = rng.choices(("write", "pending", "promote", "rollback", "delete"), (6, 2, 2, 2, 1))[0]
            value = f"{path}#{rng.randrange(1 << 30)}"
            url = f"/v1/secrets/{path}"
            try:
                if op == "write" or cur is None:
                    after = (value, pend)
                    inflight[path] = after
                    r = self.call("PUT", url, {"type": "generic", "data": {"v": value}})
                    if r.status == 200:
                        m.versions[r.json["version"]] = value
                elif op == "pending":
                    after = (cur, value)
                    inflight[path] = after
                    r = self.call("PUT", url, {"type": "generic", "data": {"v": value}, "stage": "pending"})
                    if r.status == 200:
                        m.versions[r.json["version"]] = value
                elif op == "promote":
                    if pend is None or pend is PathModel.ANY:
                        continue
                    after = (pend, None)
                    inflight[path] = after
                    r = self.call("POST", url + "/promote", {})
                elif op == "rollback":
                    old = [n for n in m.versions if n >= max(m.versions) - 5]
                    n = rng.choice(old)
                    after = (m.versions[n], pend)
                    inflight[path] = after
                    r = self.call("POST", url + "/rollback", {"version": n})
                    if r.status == 200:
                        m.versions[r.json["version"]] = m.versions[n]
                else:
                    after = (None, PathModel.ANY)
                    inflight[path] = after
                    r = self.call("DELETE", url)
                if r.status == 200:
                    m.states = [after]
                    acked.append(r.headers.get("X-Request-Id") or r.headers.get("x-request-id"))
                    if op == "write" and pend is PathModel.ANY:
                        m.states = [(value, PathModel.ANY)]
                elif r.status == 503:
                    return      # shutting down or locked: no change was made
                else:
                    raise AssertionError(f"{op} {path}: {r}")
                inflight.pop(path, None)
            except Gone:
                return

    def rotator(self, rng, stop):
        while not stop.is_set():
            what = rng.choice([f"/v1/rotate/kek/{t}" for t in TENANTS] + [f"/v1/rotate/secret/{t}" for t in TENANTS])
            try:
                r = self.call("POST", what, {})
            except Gone:
                return
            # 404: the tenant has no key yet (nothing written under it).
            self.assertIn(r.status, (200, 202, 404, 409, 503), f"POST {what}: {r}")
            stop.wait(rng.uniform(0.05, 0.4))

    # ---- the checks ------------------------------------------------------

    def check_integrity(self, it):
        db = sqlite3.connect(self.v.db)
        try:
            got = db.execute("PRAGMA integrity_check").fetchall()
        finally:
            db.close()
        self.assertEqual(got, [("ok",)], f"iteration {it}: PRAGMA integrity_check")

    def check_paths(self, it, inflight):
        for path, m in self.model.items():
            if path in inflight:
                m.states = m.states + [inflight[path]]
            r = self.call("GET", f"/v1/secrets/{path}")
            got_cur = r.json["data"]["v"] if r.status == 200 else None
            self.assertIn(r.status, (200, 404), f"iteration {it}: GET {path}: {r}")
            rp = self.call("GET", f"/v1/secrets/{path}?stage=pending")
            self.assertIn(rp.status, (200, 404), f"iteration {it}: GET {path}?stage=pending: {rp}")
            got_pend = rp.json["data"]["v"] if rp.status == 200 else None
            match = [s for s in m.states if s[0] == got_cur and (s[1] is PathModel.ANY or s[1] == got_pend
                                                                 or got_cur is None)]
            self.assertTrue(match, f"iteration {it} (seed {self.seed}): {path} reads current={got_cur!r} "
                            f"pending={got_pend!r}; acknowledged or in-flight states: {m.states}")
            m.states = [match[-1]] if len(match) == 1 else [(got_cur, got_pend if got_cur else None)]
            # Every version it lists decrypts.
            rv = self.call("GET", f"/v1/secrets/{path}?versions=1")
            if rv.status == 404:
                continue
            for ver in rv.json["versions"]:
                if ver["destroyed"]:
                    continue
                rr = self.call("GET", f"/v1/secrets/{path}?version={ver['version']}")
                if rv.json.get("deleted"):
                    self.assertIn(rr.status, (200, 404), f"iteration {it}: {path} v{ver['version']}: {rr}")
                    continue
                self.assertEqual(rr.status, 200, f"iteration {it}: {path} version {ver['version']}: {rr}")
                known = m.versions.get(ver["version"])
                if known is not None:
                    self.assertEqual(rr.json["data"]["v"], known, f"iteration {it}: {path} v{ver['version']}")

    def check_audit(self, it, acked, pruned):
        r = self.call("GET", "/v1/audit/verify")
        self.assertEqual(r.status, 200, f"iteration {it}: audit verify: {r}")
        self.assertTrue(r.json.get("ok"), f"iteration {it} (seed {self.seed}): the audit chain: {r.json}")
        if pruned or not acked:
            return
        want, seen, cursor = set(acked), set(), None
        while True:
            q = f"/v1/audit?limit=1000&order=desc" + (f"&cursor={cursor}" if cursor else "")
            page = self.call("GET", q).json
            seen.update(x["request_id"] for x in page["records"])
            if want <= seen or not page.get("next_cursor"):
                break
            cursor = page["next_cursor"]
        self.assertFalse(want - seen, f"iteration {it} (seed {self.seed}): acknowledged changes without "
                         f"an audit record: {sorted(want - seen)[:5]}")

    # ---- the loop --------------------------------------------------------

    def test_kill9_at_random_moments(self):
        v, rng = self.v, self.rng
        v.auto_login = False
        v.start()
        v.init()
        self.admins = [ADMIN]
        self.unlock()
        for i in range(1, ADMINS):
            name = f"admin{i}"
            r = self.call("PUT", f"/v1/users/{name}", {"passphrase": PASSPHRASE, "roles": ["admin"]})
            self.assertEqual(r.status, 200, r)
            v.remember_enrolment(name, r)
            self.admins.append(name)
        paths = [[f"{TENANTS[(w + j) % 2]}/w{w}/s{j}" for j in range(PATHS_PER_WORKER)] for w in range(WORKERS)]
        self.model = {p: PathModel() for ps in paths for p in ps}
        kills_in_prune = 0
        for it in range(1, self.iterations + 1):
            pruned = rng.random() < 0.2
            if pruned:
                # The retention clock two days on: the rotation worker's next
                # tick prunes, during the workload.
                v.stop()
                v.env["VAULTD_TEST_AUDIT_CLOCK_OFFSET"] = str(2 * 86400)
                v.start()
                self.unlock()
            stop = threading.Event()
            inflight, acked, errors = {}, [], []

            def guarded(fn, *args):
                def run():
                    try:
                        fn(*args)
                    except BaseException as e:  # noqa: a client's failure fails the test
                        errors.append(e)
                return threading.Thread(target=run)
            threads = [guarded(self.worker, random.Random(rng.random()), ps, inflight, acked, stop) for ps in paths]
            threads.append(guarded(self.rotator, random.Random(rng.random()), stop))
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.05, 1.0))
            v.kill9()
            stop.set()
            for t in threads:
                t.join(30)
                self.assertFalse(t.is_alive(), f"iteration {it}: a client thread hangs")
            if errors:
                raise AssertionError(f"iteration {it} (seed {self.seed}): a client failed") from errors[0]
            kills_in_prune += pruned
            self.check_integrity(it)
            v.env.pop("VAULTD_TEST_AUDIT_CLOCK_OFFSET", None)
            v.start()
            self.unlock()
            self.check_paths(it, inflight)
            self.check_audit(it, [a for a in acked if a], pruned)
        v.stop()
        print(f"crash loop: {self.iterations} kills (seed {self.seed}), {kills_in_prune} with the audit "
              f"prune due, {len(self.model)} paths, "
              f"{sum(len(m.versions) for m in self.model.values())} acknowledged versions", file=sys.stderr)


if __name__ == "__main__":
    main()
