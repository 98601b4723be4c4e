#!/usr/bin/env python3
"""vaultctl end to end: rotation, credential staging and backup through the
CLI binary (docs/api.md, "Credential staging", "Rotation", "Backup") against
a real vaultd on a temporary SoftHSM2 token.

Covers rotate secret/kek/root/hsm/all/status/job, waiting for jobs (summary
lines, --json, --no-wait, a job already active, the progress bar on a
terminal and silence without one), put --pending, get --stage, promote and
the STAGE column of versions, backup with its manifest, and the exit codes
(2 usage, 5 forbidden, 6 not found, 7 conflict).

The binary comes from VAULTCTL_BIN. Each test gets its own vault and its own
XDG_RUNTIME_DIR (so its own token file)."""
import hashlib
import json
import os
import pty
import re
import select
import stat
import subprocess
import time

from harness import VAULTCTL, CliTestCase, main

ADMIN = "alice"
PASSPHRASE = "correct horse battery staple"
BATCH = 5


class RotateCliCase(CliTestCase):
    maxDiff = None

    def setUp(self):
        super().setUp()
        with open(self.v.conf) as f:
            conf = f.read()
        # Small batches: a rotation takes many steps, so there is progress to see.
        self.v.write_config(conf + f"[rotation]\nbatch_size = {BATCH}\n")

    def ctl_json(self, *args, **kw):
        return json.loads(self.ctl(*args, "--json", check=0, **kw).stdout)

    def boot(self):
        """Start, init, unlock, login: all through the CLI. Requests the test
        makes itself (self.v.get/put/post) carry the admin's token."""
        self.v.start()
        reply = json.loads(self.ctl("init", "--admin", ADMIN, "--passphrase-file", self.pfile, "--json",
                                    check=0).stdout)
        self.v.totp_secrets[ADMIN] = reply["totp_secret"]
        self.v.recovery_codes[ADMIN] = reply["recovery_codes"]
        self.ctl("unlock", "--user", ADMIN, "--passphrase-file", self.pfile, "--totp",
                 self.v.fresh_totp(ADMIN), check=0)
        self.ctl("login", "--user", ADMIN, "--passphrase-file", self.pfile, "--totp",
                 self.v.fresh_totp(ADMIN), check=0)
        with open(os.path.join(self.xdg, "vaultctl", "token")) as f:
            self.v.token = f.read().strip()
        self.v.token_uid = os.getuid()

    def put(self, path, value, *extra, check=0):
        return self.ctl("put", path, "--type", "generic", "value=-", *extra, stdin=value + "\n", check=check)

    def put_api(self, items):
        """Many secrets quickly, over one keep-alive connection."""
        from harness import UnixHTTPConnection
        conn = UnixHTTPConnection(self.v.sock)
        try:
            for p, val in items.items():
                r = self.v.put(f"/v1/secrets/{p}", {"type": "generic", "data": {"value": val}}, conn=conn)
                self.assertEqual(r.status, 200, r)
        finally:
            conn.close()

    def value(self, path, *extra, env=None):
        return self.ctl("get", path, "--field", "value", *extra, env=env, check=0).stdout[:-1]

    def assert_values(self, items, env=None):
        for p, val in items.items():
            self.assertEqual(self.value(p, env=env), val, p)

    def status(self):
        return self.ctl_json("rotate", "status")

    def add_user(self, name, role):
        """A user with role, logged in: returns the env that makes vaultctl act as them."""
        pf = self.write_file(f"{name}.pass", f"{name}'s passphrase, long enough\n")
        j = json.loads(self.ctl("user", "add", name, "--role", role, "--passphrase-file", pf, "--json",
                                check=0).stdout)
        self.v.totp_secrets[name] = j["totp_secret"]
        p = self.ctl("login", "--user", name, "--passphrase-file", pf, "--totp", self.v.fresh_totp(name),
                     "--print-token", check=0)
        return {"VAULTD_TOKEN": p.stdout.strip()}


SECRETS = {"acme/rmm/tactical": "acme-rmm-1", "acme/chat/slack": "acme-slack-1", "acme/psa/cw": "acme-cw-1",
           "globex/rmm/kaseya": "globex-1", "globex/chat/teams": "globex-2"}


class Layers(RotateCliCase):
    def test_failed_job_says_why_and_a_retry_succeeds(self):
        # The HSM refuses the next key generation (the PIN file now holds a
        # wrong PIN; the daemon reads it at every token session): the job
        # fails, vaultctl says so on one line and exits 1, every secret stays
        # readable under the old key, and the same command later succeeds.
        self.boot()
        for p, val in SECRETS.items():
            self.put(p, val)
        pin_file = os.path.join(self.v.dir, "hsm.pin")
        with open(pin_file) as f:
            pin = f.read()
        with open(pin_file, "w") as f:
            f.write("not-the-pin\n")
        p = self.ctl("rotate", "hsm", check=1)
        self.assertEqual(p.stdout, "")
        m = re.fullmatch(r"vaultctl: hsm \(job (\d+)\) failed: (.+); the old key version stays in use: "
                         r"run the rotation again to retry\n", p.stderr)
        self.assertTrue(m, p.stderr)
        self.assertIn("PIN", m.group(2))
        job = self.ctl_json("rotate", "job", m.group(1))["job"]
        self.assertEqual((job["state"], job["error"]), ("failed", m.group(2)))
        p = self.ctl("rotate", "job", m.group(1), "--wait", check=1)
        self.assertIn(f"(job {m.group(1)}) failed", p.stderr)
        self.assertEqual(self.status()["root_key"]["hsm_key"], {"label": "vaultd-root", "version": 1})
        self.assert_values(SECRETS)

        with open(pin_file, "w") as f:
            f.write(pin)
        p = self.ctl("rotate", "hsm", check=0)
        self.assertRegex(p.stdout, r"^hsm: version 1 -> 2, ")
        self.assert_values(SECRETS)

    def test_kek_root_hsm_secret_status_job(self):
        self.boot()
        for p, val in SECRETS.items():
            self.put(p, val)
        # A second version of one acme secret: 4 acme DEKs in all.
        self.put("acme/chat/slack", "acme-slack-2")
        items = dict(SECRETS, **{"acme/chat/slack": "acme-slack-2"})

        # kek: waits, one summary line on stdout, nothing on stderr without a terminal.
        p = self.ctl("rotate", "kek", "acme", check=0)
        self.assertEqual(p.stdout, "kek acme: version 1 -> 2, 4 keys rewrapped\n")
        self.assertEqual(p.stderr, "")
        j = self.ctl_json("rotate", "kek", "acme")
        self.assertEqual(set(j), {"job", "already_active"})
        self.assertIs(j["already_active"], False)
        job = j["job"]
        self.assertEqual((job["kind"], job["target"], job["state"], job["from_version"], job["to_version"]),
                         ("kek", "acme", "done", 2, 3))
        self.assertEqual((job["done"], job["total"]), (4, 4))
        self.assertEqual(job["principal"], f"user:{ADMIN}")
        self.assertIsNone(job["error"])
        self.assertIsNotNone(job["finished_at"])
        self.assert_values(items)

        # root: every tenant's KEK rewrapped.
        p = self.ctl("rotate", "root", check=0)
        self.assertEqual(p.stdout, "root: version 1 -> 2, 2 keys rewrapped\n")
        self.assertEqual(p.stderr, "")
        self.assert_values(items)

        # hsm: the root key (and the admin's MFA key) under the new HSM key;
        # the old one stays until retired, and the summary says so.
        p = self.ctl("rotate", "hsm", check=0)
        self.assertRegex(p.stdout, r"^hsm: version 1 -> 2, \d+ keys? rewrapped\n")
        self.assertIn("rotate hsm --retire", p.stdout)
        self.assertIn("vaultctl backup", p.stdout)
        self.assert_values(items)

        # status --json: the API's shape.
        st = self.status()
        self.assertEqual(set(st), {"root_key", "hsm_keys_to_retire", "tenants", "jobs", "within", "credentials"})
        self.assertEqual(st["root_key"]["version"], 2)
        self.assertEqual(st["root_key"]["hsm_key"], {"label": "vaultd-root", "version": 2})
        self.assertEqual(st["hsm_keys_to_retire"], [{"label": "vaultd-root", "version": 1}])
        tenants = {t["tenant"]: t for t in st["tenants"]}
        self.assertEqual(sorted(tenants), ["acme", "globex"])
        self.assertEqual((tenants["acme"]["kek_version"], tenants["acme"]["old_versions"]), (3, 0))
        self.assertEqual(tenants["globex"]["kek_version"], 1)
        for t in st["tenants"]:
            self.assertEqual(set(t), {"tenant", "kek_version", "created_at", "wrap_count", "wrap_limit",
                                      "old_versions"})
        kinds = [(j["kind"], j["target"], j["state"]) for j in st["jobs"]]
        for k in [("kek", "acme", "done"), ("root", "", "done"), ("hsm", "", "done")]:
            self.assertIn(k, kinds)
        self.assertEqual(st["within"], "14d")
        self.assertEqual(st["credentials"], [])
        self.assertEqual(self.ctl_json("rotate", "status", "--within", "30d")["within"], "30d")

        # status, readable.
        p = self.ctl("rotate", "status", check=0)
        self.assertRegex(p.stdout, r"(?m)^root key:\s+version 2 ")
        self.assertRegex(p.stdout, r"(?m)^hsm key:\s+'vaultd-root' version 2$")
        self.assertRegex(p.stdout, r"(?m)^to retire:\s+HSM key 'vaultd-root' version 1 ")
        self.assertRegex(p.stdout, r"(?m)^TENANT\s+KEK VERSION\s+WRAPS/LIMIT\s+OLD VERSIONS$")
        self.assertRegex(p.stdout, r"(?m)^acme\s+3\s+\d+/\d+\s+0$")
        self.assertRegex(p.stdout, r"(?m)^ID\s+KIND\s+TARGET\s+STATE\s+DONE/TOTAL\s+PRINCIPAL\s+ERROR$")
        self.assertRegex(p.stdout, rf"(?m)^{job['id']}\s+kek\s+acme\s+done\s+4/4\s+user:{ADMIN}\s+-$")
        self.assertRegex(p.stdout, r"(?m)^\d+\s+root\s+-\s+done\s+2/2\s+")
        self.assertIn("Credentials due within 14d: none", p.stdout)

        # Retire the old HSM key now; a second time there is nothing left.
        p = self.ctl("rotate", "hsm", "--retire", check=0)
        self.assertEqual(p.stdout, "Deleted HSM key 'vaultd-root' version 1 from the token.\n")
        self.assertEqual(self.status()["hsm_keys_to_retire"], [])
        self.assertEqual(self.ctl_json("rotate", "hsm", "--retire"), {"deleted": []})
        p = self.ctl("rotate", "hsm", "--retire", check=0)
        self.assertIn("nothing deleted", p.stdout)
        self.assert_values(items)

        # Data keys: a prefix, then the whole store.
        p = self.ctl("rotate", "secret", "acme", check=0)
        self.assertEqual(p.stdout, "secret acme: 4 versions re-encrypted under fresh data keys\n")
        p = self.ctl("rotate", "secret", "acme/chat", check=0)
        self.assertEqual(p.stdout, "secret acme/chat: 2 versions re-encrypted under fresh data keys\n")
        j = self.ctl_json("rotate", "secret", "--all")["job"]
        self.assertEqual((j["kind"], j["target"], j["state"], j["done"]), ("secret", "", "done", 6))
        p = self.ctl("rotate", "secret", "--all", check=0)
        self.assertEqual(p.stdout, "secret *: 6 versions re-encrypted under fresh data keys\n")
        self.assert_values(items)
        self.assertEqual(self.value("acme/chat/slack", "--version", "1"), "acme-slack-1")

        # One job, readable and as JSON; --wait on a finished job just reports it.
        p = self.ctl("rotate", "job", str(job["id"]), check=0)
        self.assertRegex(p.stdout, rf"(?m)^id:\s+{job['id']}$")
        self.assertRegex(p.stdout, r"(?m)^rotates:\s+kek acme$")
        self.assertRegex(p.stdout, r"(?m)^state:\s+done$")
        self.assertRegex(p.stdout, r"(?m)^versions:\s+2 -> 3$")
        self.assertRegex(p.stdout, r"(?m)^progress:\s+4/4$")
        self.assertRegex(p.stdout, r"(?m)^error:\s+-$")
        jj = self.ctl_json("rotate", "job", str(job["id"]))
        self.assertEqual(set(jj), {"job"})
        self.assertEqual(set(jj["job"]), {"id", "kind", "target", "state", "principal", "from_version",
                                          "to_version", "done", "total", "error", "created_at", "updated_at",
                                          "finished_at"})
        self.assertEqual(jj["job"], job)
        p = self.ctl("rotate", "job", str(job["id"]), "--wait", check=0)
        self.assertEqual(p.stdout, "kek acme: version 2 -> 3, 4 keys rewrapped\n")
        self.assertEqual(self.ctl_json("rotate", "job", str(job["id"]), "--wait"), jj)

        # Errors.
        self.ctl("rotate", "job", "999999", check=6)
        self.ctl("rotate", "job", "abc", check=2)
        self.ctl("rotate", "job", check=2)
        self.ctl("rotate", "kek", "initech", check=6)        # nothing stored under it
        self.ctl("rotate", "kek", "acme/rmm", check=2)
        self.ctl("rotate", "kek", check=2)
        self.ctl("rotate", "secret", check=2)
        self.ctl("rotate", "secret", "acme", "--all", check=2)
        self.ctl("rotate", "root", "extra", check=2)
        self.ctl("rotate", "root", "--all", check=2)
        self.ctl("rotate", "hsm", "--retire", "--no-wait", check=2)
        self.ctl("rotate", "status", "--within", "3x", check=2)
        self.ctl("rotate", "status", "--within", "0d", check=2)
        self.ctl("rotate", check=2)
        self.ctl("rotate", "frob", check=2)


DEEP = "acme/a/b/c/d/e/f"      # 7 segments: 8 distinct prefixes cover a secret below it


class Waiting(RotateCliCase):
    def big_store(self, n=600, prefix="acme/bulk"):
        items = {f"{prefix}/s{i:04d}": f"v{i}" for i in range(n)}
        self.put_api(items)
        return items

    def test_no_wait_already_active_job_wait(self):
        # A test build holds every job queued while the pause file exists
        # (VAULTD_TEST_ROTATION_PAUSE_FILE), so "already active" does not
        # depend on how fast the worker is.
        pause = os.path.join(self.v.dir, "pause-rotation")
        self.v.env["VAULTD_TEST_ROTATION_PAUSE_FILE"] = pause
        self.boot()
        n = 200
        items = self.big_store(n, DEEP)
        open(pause, "w").close()
        blockers = []
        segs = DEEP.split("/")
        for target in [["--all"]] + [["/".join(segs[:k])] for k in range(1, len(segs) + 1)]:
            j = self.ctl_json("rotate", "secret", *target, "--no-wait")
            self.assertEqual(set(j), {"job", "already_active"})
            self.assertEqual(j["job"]["state"], "queued")
            self.assertIs(j["already_active"], False)
            blockers.append(j["job"]["id"])
        p = self.ctl("rotate", "kek", "acme", "--no-wait", check=0)
        m = re.match(r"Queued job (\d+): kek acme\.\nFollow it with 'vaultctl rotate job (\d+) --wait'\.\n$",
                     p.stdout)
        self.assertTrue(m, p.stdout)
        kek_id = int(m.group(1))
        self.assertEqual(int(m.group(2)), kek_id)
        # --no-wait while the same job is active: says so, queues nothing new.
        p = self.ctl("rotate", "kek", "acme", "--no-wait", check=0)
        self.assertRegex(p.stdout, rf"^Job {kek_id} \(kek acme\) is already (queued|running): nothing new was queued\.\n")
        # Asking again and waiting: names the active job, waits for it, reports it.
        waiter = subprocess.Popen([VAULTCTL, "rotate", "kek", "acme"], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=dict(os.environ, VAULTD_SOCKET=self.v.sock, XDG_RUNTIME_DIR=self.xdg))
        time.sleep(1)
        if waiter.poll() is not None:
            self.fail(f"vaultctl returned while its job was still queued: {waiter.communicate()}")
        os.unlink(pause)
        out, err = waiter.communicate(timeout=300)
        self.assertEqual(waiter.returncode, 0, err)
        self.assertRegex(err, rf"already (queued|running) as job {kek_id}: waiting for it\n$")
        self.assertEqual(out, f"kek acme: version 1 -> 2, {n} keys rewrapped\n")
        j = self.ctl_json("rotate", "kek", "acme", "--no-wait")      # finished: a new job
        self.assertIs(j["already_active"], False)
        self.assertGreater(j["job"]["id"], kek_id)
        # The blockers ran before it, oldest first.
        for b in blockers:
            j = self.ctl_json("rotate", "job", str(b))["job"]
            self.assertEqual((j["state"], j["done"], j["total"]), ("done", n, n))
            self.assertLess(j["id"], kek_id)
        p = self.ctl("rotate", "job", str(blockers[1]), "--wait", check=0)
        self.assertEqual(p.stdout, f"secret acme: {n} versions re-encrypted under fresh data keys\n")
        self.assertEqual(p.stderr, "")
        self.assert_values({k: items[k] for k in list(items)[::100]})

    def pty_proc(self, *args):
        """Starts vaultctl with stderr on a pseudo-terminal (stdin and stdout
        not); returns (proc, the terminal's master fd)."""
        master, slave = pty.openpty()
        e = {k: v for k, v in os.environ.items() if k not in ("VAULTD_TOKEN", "XDG_RUNTIME_DIR")}
        e.update(VAULTD_SOCKET=self.v.sock, XDG_RUNTIME_DIR=self.xdg)
        proc = subprocess.Popen([VAULTCTL, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=slave, env=e)
        os.close(slave)
        return proc, master

    def read_pty(self, proc, master, until=None, timeout=300):
        """What the terminal gets, until the regex until matches it or the
        child is gone."""
        got = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if until and re.search(until, got.decode(errors="replace")):
                break
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    b = os.read(master, 65536)
                except OSError:         # EIO: the child closed the terminal
                    break
                if not b:
                    break
                got += b
            elif proc.poll() is not None:
                break
        return got.decode(errors="replace")

    def finish_pty(self, proc, master, tty=""):
        tty += self.read_pty(proc, master)
        out = proc.stdout.read().decode()
        proc.stdout.close()
        rc = proc.wait(30)
        os.close(master)
        return rc, out, tty

    def run_on_pty(self, *args):
        """Runs vaultctl with stderr on a pseudo-terminal; returns (rc,
        stdout, what the terminal got)."""
        proc, master = self.pty_proc(*args)
        return self.finish_pty(proc, master)

    def test_lock_while_waiting_then_resume(self):
        self.boot()
        n = 2000
        items = self.big_store(n, DEEP)
        segs = DEEP.split("/")
        for k in range(1, len(segs) + 1):
            self.ctl("rotate", "secret", "/".join(segs[:k]), "--no-wait", check=0)
        proc, master = self.pty_proc("rotate", "kek", "acme")
        tty = self.read_pty(proc, master, until=r"\[[#.]{30}\] +\d+%")    # waiting, bar drawn
        self.assertIsNone(proc.poll(), tty)
        self.assertEqual(self.v.post("/v1/sys/lock").status, 200)
        rc, out, tty = self.finish_pty(proc, master, tty)
        self.assertEqual(rc, 3, tty)
        self.assertEqual(out, "")
        # The bar is wiped before the message, which says what to do.
        self.assertIn("\r\x1b[Kvaultctl: rotate job ", tty)
        self.assertIn("the vault is locked: run 'vaultctl unlock'", tty)
        m = re.search(r"job (\d+) goes on in vaultd .*'vaultctl rotate job \1 --wait' follows it", tty)
        self.assertTrue(m, repr(tty))
        # After the next unlock the job resumes and finishes.
        code = self.v.recovery_codes[ADMIN].pop()
        r = self.v.post("/v1/sys/unlock", {"user": ADMIN, "passphrase": PASSPHRASE, "recovery_code": code},
                        token=False)
        self.assertEqual(r.status, 200, r)
        token = self.v.login(ADMIN, recovery_code=self.v.recovery_codes[ADMIN].pop())
        p = self.ctl("rotate", "job", m.group(1), "--wait", env={"VAULTD_TOKEN": token}, check=0)
        self.assertEqual(p.stdout, f"kek acme: version 1 -> 2, {n} keys rewrapped\n")
        self.assert_values({k: items[k] for k in list(items)[::200]}, env={"VAULTD_TOKEN": token})

    def test_progress_bar_on_a_terminal_only(self):
        self.boot()
        self.big_store()
        rc, out, tty = self.run_on_pty("rotate", "secret", "--all")
        self.assertEqual(rc, 0, tty)
        self.assertEqual(out, "secret *: 600 versions re-encrypted under fresh data keys\n")
        # At least one bar: "\r\033[K[####......]  52%  312/600  secret *"
        bars = re.findall(r"\r\x1b\[K\[([#.]{30})\] +(\d+)%  (\d+)/(\d+)  secret \*", tty)
        self.assertTrue(bars, repr(tty))
        for fill, pct, done, total in bars:
            self.assertLessEqual(int(done), int(total) or int(done))
            self.assertEqual(fill.count("#"), int(pct) * 30 // 100)
        self.assertTrue(tty.endswith("\r\x1b[K"), repr(tty[-80:]))   # the bar is wiped at the end
        # Without a terminal: nothing at all on stderr while waiting.
        p = self.ctl("rotate", "secret", "--all", check=0)
        self.assertEqual(p.stderr, "")
        # rotate all: one bar over every job, naming the current one.
        rc, out, tty = self.run_on_pty("rotate", "all", "--yes")
        self.assertEqual(rc, 0, tty)
        self.assertRegex(tty, r"\[[#.]{30}\] +\d+%  \d+/\d+  (hsm|root|kek acme|secret \*) \(job \d of 4")
        self.assertEqual(len(out.splitlines()), 4 + 3, out)     # 4 summaries and the HSM note


class All(RotateCliCase):
    def test_rotate_all(self):
        self.boot()
        for p, val in SECRETS.items():
            self.put(p, val)
        self.put("initech/x", "initech-1")
        items = dict(SECRETS, **{"initech/x": "initech-1"})
        # No terminal and no --yes: a usage error, and nothing is queued.
        p = self.ctl("rotate", "all", check=2)
        self.assertIn("--yes", p.stderr)
        self.assertEqual(self.status()["jobs"], [])
        j = self.ctl_json("rotate", "all", "--yes")
        self.assertEqual(set(j), {"jobs"})
        jobs = j["jobs"]
        self.assertEqual([(x["kind"], x["target"]) for x in jobs],
                         [("hsm", ""), ("root", ""), ("kek", "acme"), ("kek", "globex"), ("kek", "initech"),
                          ("secret", "")])
        self.assertEqual({x["state"] for x in jobs}, {"done"})
        self.assertEqual([x["to_version"] for x in jobs[:5]], [2, 2, 2, 2, 2])
        self.assertEqual(jobs[5]["done"], 6)
        self.assert_values(items)
        st = self.status()
        self.assertEqual(st["root_key"]["version"], 2)
        self.assertEqual(st["root_key"]["hsm_key"]["version"], 2)
        self.assertEqual({t["tenant"]: t["kek_version"] for t in st["tenants"]},
                         {"acme": 2, "globex": 2, "initech": 2})
        # Readable: a summary line per job (and the HSM note).
        p = self.ctl("rotate", "all", "--yes", check=0)
        lines = p.stdout.splitlines()
        self.assertRegex(lines[0], r"^hsm: version 2 -> 3, \d+ keys? rewrapped$")
        self.assertEqual(lines[1], "root: version 2 -> 3, 3 keys rewrapped")
        self.assertEqual(lines[2], "kek acme: version 2 -> 3, 3 keys rewrapped")
        self.assertEqual(lines[3], "kek globex: version 2 -> 3, 2 keys rewrapped")
        self.assertEqual(lines[4], "kek initech: version 2 -> 3, 1 key rewrapped")
        self.assertEqual(lines[5], "secret *: 6 versions re-encrypted under fresh data keys")
        self.assertIn("rotate hsm --retire", p.stdout)
        self.assertEqual(p.stderr, "")
        self.assert_values(items)
        # --no-wait: the queued jobs, then the status shows them finishing.
        p = self.ctl("rotate", "all", "-y", "--no-wait", check=0)
        self.assertEqual(len(re.findall(r"(?m)^Queued job \d+: ", p.stdout)), 6, p.stdout)
        self.assertIn("vaultctl rotate status", p.stdout)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if all(x["state"] == "done" for x in self.status()["jobs"]):
                break
            time.sleep(0.2)
        self.assertTrue(all(x["state"] == "done" for x in self.status()["jobs"]), self.status()["jobs"])
        self.assert_values(items)


    def on_terminal(self, args, answer):
        """Runs vaultctl with a terminal as its controlling terminal, stdin,
        stdout and stderr; answers its prompt; returns (rc, what the terminal got)."""
        env = {k: v for k, v in os.environ.items() if k not in ("VAULTD_TOKEN", "XDG_RUNTIME_DIR")}
        env.update(VAULTD_SOCKET=self.v.sock, XDG_RUNTIME_DIR=self.xdg)
        pid, fd = pty.fork()
        if pid == 0:
            try:
                os.execve(VAULTCTL, [VAULTCTL, *args], env)
            finally:
                os._exit(127)
        got, answered = b"", False
        deadline = time.monotonic() + 300
        try:
            while time.monotonic() < deadline:
                if not answered and b"to continue: " in got:
                    os.write(fd, answer.encode() + b"\n")
                    answered = True
                ready, _, _ = select.select([fd], [], [], 0.2)
                if not ready:
                    continue
                try:
                    b = os.read(fd, 65536)
                except OSError:         # EIO: the child is gone
                    break
                if not b:
                    break
                got += b
        finally:
            os.close(fd)
            _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), got.decode(errors="replace")

    def test_rotate_all_asks_on_a_terminal(self):
        self.boot()
        self.put("acme/x", "x1")
        rc, tty = self.on_terminal(["rotate", "all"], "yes")
        self.assertEqual(rc, 1, tty)
        self.assertIn("Type 'rotate all' to continue: ", tty)
        self.assertIn("not confirmed: nothing was rotated", tty)
        self.assertEqual(self.status()["jobs"], [])
        rc, tty = self.on_terminal(["rotate", "all"], "rotate all")
        self.assertEqual(rc, 0, tty)
        self.assertIn("kek acme: version 1 -> 2, 1 key rewrapped", tty)
        self.assertEqual([j["state"] for j in self.status()["jobs"]], ["done"] * 4)
        self.assertEqual(self.value("acme/x"), "x1")


class Staging(RotateCliCase):
    def test_pending_promote_previous(self):
        self.boot()
        path = "acme/rmm/tactical"
        self.put(path, "old")
        p = self.put(path, "new", "--pending")
        self.assertIn("version 2, as pending", p.stdout)
        self.assertIn(f"vaultctl promote {path}", p.stdout)
        # Readers without a stage still get the current value.
        self.assertEqual(self.value(path), "old")
        self.assertEqual(self.value(path, "--stage", "pending"), "new")
        self.assertEqual(self.value(path, "--stage", "current"), "old")
        self.ctl("get", path, "--stage", "previous", check=6)
        self.ctl("get", path, "--stage", "next", check=2)
        self.ctl("get", path, "--stage", "pending", "--version", "1", check=2)
        g = self.ctl("get", path, check=0).stdout
        self.assertRegex(g, r"(?m)^version:\s+1 \(current\)$")
        self.assertRegex(g, r"(?m)^current:\s+1$")
        self.assertRegex(g, r"(?m)^pending:\s+2$")
        self.assertRegex(g, r"(?m)^previous:\s+-$")
        g = self.ctl("get", path, "--stage", "pending", check=0).stdout
        self.assertRegex(g, r"(?m)^version:\s+2 \(pending\)$")
        j = self.ctl_json("get", path, "--stage", "pending")
        self.assertEqual((j["version"], j["stage"], j["current_version"], j["pending_version"],
                          j["previous_version"]), (2, "pending", 1, 2, None))
        # versions: a STAGE column.
        v = self.ctl("versions", path, check=0).stdout
        self.assertEqual(v.splitlines()[0].split(), ["VERSION", "CREATED", "STATE", "STAGE"])
        self.assertRegex(v, r"(?m)^1\s+\S+\s+current$")
        self.assertRegex(v, r"(?m)^2\s+\S+\s+pending$")
        # promote: only the pending version; then old current is previous.
        p = self.ctl("promote", path, "--version", "1", check=7)
        self.assertIn(f"promote {path}", p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        p = self.ctl("promote", path, "--version", "2", check=0)
        self.assertEqual(p.stdout, f"Promoted {path}: version 2 is current, version 1 is previous.\n")
        self.ctl("promote", path, check=7)                   # nothing pending any more
        self.assertEqual(self.value(path), "new")
        self.assertEqual(self.value(path, "--stage", "previous"), "old")
        self.ctl("get", path, "--stage", "pending", check=6)
        v = self.ctl("versions", path, check=0).stdout
        self.assertRegex(v, r"(?m)^1\s+\S+\s+previous$")
        self.assertRegex(v, r"(?m)^2\s+\S+\s+current$")
        j = self.ctl_json("versions", path)
        self.assertEqual([(x["version"], x["stage"]) for x in j["versions"]], [(1, "previous"), (2, "current")])
        # A second round, promoted without --version, with --json.
        self.put(path, "newer", "--pending")
        j = self.ctl_json("promote", path)
        self.assertEqual(j, {"path": path, "version": 3, "previous_version": 2})
        self.assertEqual(self.value(path, "--stage", "previous"), "new")
        # put --pending --json: the API's reply.
        j = json.loads(self.put(path, "x", "--pending", "--json").stdout)
        self.assertEqual(j, {"path": path, "version": 4, "stage": "pending"})
        # A pending version needs an existing secret; promote one that is not there.
        self.put("acme/none", "x", "--pending", check=6)
        self.ctl("promote", "acme/none", check=6)
        self.ctl("promote", check=2)
        self.ctl("promote", path, "--version", "zero", check=2)


class Backup(RotateCliCase):
    def test_backup_manifest_exists(self):
        self.boot()
        for p, val in SECRETS.items():
            self.put(p, val)
        work = os.path.join(self.v.dir, "work")
        os.mkdir(work, 0o700)
        target = os.path.join(work, "vault.db")
        # A relative FILE is made absolute against the caller's directory.
        p = self.ctl("backup", "vault.db", "--manifest", "vault.json", cwd=work, check=0)
        self.assertEqual(stat.S_IMODE(os.stat(target).st_mode), 0o600)
        with open(target, "rb") as f:
            data = f.read()
        with open(os.path.join(work, "vault.json")) as f:
            manifest = json.load(f)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(work, "vault.json")).st_mode), 0o600)
        self.assertEqual(manifest["path"], target)
        self.assertEqual(manifest["sha256"], hashlib.sha256(data).hexdigest())
        self.assertEqual(manifest["bytes"], len(data))
        self.assertEqual(manifest["hsm_key"], {"label": "vaultd-root", "version": 1})
        self.assertEqual(manifest["root_key_version"], 1)
        self.assertEqual(manifest["secrets"], len(SECRETS))
        self.assertEqual(set(manifest), {"path", "bytes", "sha256", "schema_version", "created_at",
                                         "root_key_version", "hsm_key", "secrets", "audit_records"})
        self.assertRegex(p.stdout, rf"(?m)^path:\s+{re.escape(target)}$")
        self.assertRegex(p.stdout, rf"(?m)^sha256:\s+{manifest['sha256']}$")
        self.assertRegex(p.stdout, rf"(?m)^bytes:\s+{len(data)}$")
        self.assertRegex(p.stdout, r"(?m)^hsm key:\s+'vaultd-root' version 1$")
        self.assertIn("Keep the HSM token with key vaultd-root version 1: the backup is useless without it",
                      p.stdout)
        self.assertEqual(data[:16], b"SQLite format 3\x00")
        # The same file again: 7, and the file is untouched.
        before = os.stat(target)
        p = self.ctl("backup", target, check=7)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        after = os.stat(target)
        self.assertEqual((before.st_size, before.st_mtime_ns, before.st_ino),
                         (after.st_size, after.st_mtime_ns, after.st_ino))
        with open(target, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), manifest["sha256"])
        # --json: the manifest, naming the HSM key after a rotation.
        self.ctl("rotate", "hsm", check=0)
        j = self.ctl_json("backup", os.path.join(work, "after-hsm.db"))
        self.assertEqual(j["hsm_key"], {"label": "vaultd-root", "version": 2})
        with open(os.path.join(work, "after-hsm.db"), "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), j["sha256"])
        # A directory that does not exist: vaultd's 400 is 1; no FILE is 2.
        self.ctl("backup", os.path.join(work, "no", "such.db"), check=1)
        self.ctl("backup", check=2)
        self.ctl("backup", "a.db", "b.db", check=2)
        # --manifest into a missing directory: refused before the copy is made.
        self.ctl("backup", os.path.join(work, "c.db"), "--manifest", os.path.join(work, "no", "m.json"), check=1)
        self.assertFalse(os.path.exists(os.path.join(work, "c.db")))


class Access(RotateCliCase):
    def test_operator_may_rotate_data_and_keks_not_root(self):
        self.boot()
        self.put("acme/x", "x1")
        op = self.add_user("bob", "operator")           # rotate on everything, no admin
        p = self.ctl("rotate", "root", env=op, check=5)
        self.assertIn("rotate root", p.stderr)
        self.assertIn("an admin can grant it a role that does", p.stderr)
        self.ctl("rotate", "hsm", env=op, check=5)
        self.ctl("rotate", "hsm", "--retire", env=op, check=5)
        self.ctl("rotate", "all", "--yes", env=op, check=5)
        self.ctl("backup", os.path.join(self.v.dir, "bob.db"), env=op, check=5)
        self.assertFalse(os.path.exists(os.path.join(self.v.dir, "bob.db")))
        p = self.ctl("rotate", "kek", "acme", env=op, check=0)
        self.assertEqual(p.stdout, "kek acme: version 1 -> 2, 1 key rewrapped\n")
        self.ctl("rotate", "secret", "acme", env=op, check=0)
        self.ctl("rotate", "status", env=op, check=0)
        # Rotate on one tenant only: whoever may rotate the tenant may start
        # and follow its jobs, even jobs someone else asked for.
        self.ctl("role", "set", "acme-rotator", "--rule", "acme:rotate,read", check=0)
        scoped = self.add_user("dave", "acme-rotator")
        p = self.ctl("rotate", "kek", "acme", env=scoped, check=0)
        self.assertEqual(p.stdout, "kek acme: version 2 -> 3, 1 key rewrapped\n")
        j = self.ctl_json("rotate", "kek", "acme", "--no-wait")
        p = self.ctl("rotate", "job", str(j["job"]["id"]), "--wait", env=scoped, check=0)
        self.assertEqual(p.stdout, "kek acme: version 3 -> 4, 1 key rewrapped\n")
        # ... but not a job of another tenant.
        self.put("globex/x", "g1")
        g = self.ctl_json("rotate", "kek", "globex", "--no-wait")
        self.ctl("rotate", "job", str(g["job"]["id"]), env=scoped, check=5)
        p = self.ctl("rotate", "kek", "acme", "--no-wait", env=scoped, check=0)
        self.assertRegex(p.stdout, r"^Queued job \d+: kek acme\.\n")
        self.ctl("rotate", "kek", "globex", env=scoped, check=5)
        self.ctl("rotate", "secret", "--all", env=scoped, check=5)
        self.ctl("rotate", "status", env=scoped, check=5)
        # An auditor may rotate nothing.
        aud = self.add_user("carol", "auditor")
        self.ctl("rotate", "kek", "acme", env=aud, check=5)
        self.ctl("rotate", "status", env=aud, check=5)
        self.assertEqual(self.value("acme/x"), "x1")
        # The locked vault: 3.
        self.ctl("lock", check=0)
        self.ctl("rotate", "status", check=3)


class Help(RotateCliCase):
    def test_help_with_examples(self):
        p = self.ctl("--help", check=0)
        for c in ("rotate", "backup", "promote"):
            self.assertRegex(p.stdout, rf"(?m)^  {c}\s")
        for c in ["rotate", "rotate secret", "rotate kek", "rotate root", "rotate hsm", "rotate all",
                  "rotate status", "rotate job", "backup", "promote"]:
            p = self.ctl(*c.split(), "--help", check=0)
            self.assertIn("Usage: vaultctl " + c, p.stdout, c)
            self.assertIn("Example", p.stdout, c)
            self.assertEqual(p.stderr, "", c)
        self.assertIn("Commands:", self.ctl("rotate", "--help", check=0).stdout)
        self.assertIn("--pending", self.ctl("put", "--help", check=0).stdout)
        self.assertIn("--stage", self.ctl("get", "--help", check=0).stdout)
        self.assertIn("STAGE", self.ctl("versions", "--help", check=0).stdout)


if __name__ == "__main__":
    main()
