#!/usr/bin/env python3
"""tests/deploy/flow.py: what an admin does after docs/operations.md's
"Deploy", run by scripts/deploy-check inside its throw-away root (as root,
with systemctl the emulation in tests/deploy/systemctl, the daemon running
as vaultd in the unit's sandbox). Each check names the point of issue 14 it
covers. Exits non-zero at the first failure, saying what was expected."""
import base64
import hashlib
import hmac
import json
import os
import pwd
import re
import struct
import subprocess
import sys
import time

JOURNAL = "/var/log/vaultd.journal"
CONF = "/etc/vaultd/vaultd.conf"
DB = "/var/lib/vaultd/vault.db"
ADMIN = "alice"
XDG = "/root/xdg"
PASSFILE = "/root/alice.pass"
API_KEY = "trmm-deploy-check-key-7f3a"
checked = []


def fail(msg):
    print(f"deploy-check: FAIL: {msg}", file=sys.stderr)
    try:
        print("--- the last lines of the journal:\n" + "".join(open(JOURNAL).readlines()[-15:]), file=sys.stderr)
    except OSError:
        pass
    sys.exit(1)


def ok(point, what):
    checked.append((point, what))
    print(f"  ok  [{point}] {what}", flush=True)


def run(*args, user=None, stdin="", env=None, want=0):
    cmd = list(args)
    if user:
        cmd = ["runuser", "-u", user, "--"] + cmd
    e = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin", "LANG": "C.UTF-8",
         "XDG_RUNTIME_DIR": XDG, "HOME": "/root"}
    e.update(env or {})
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=e, timeout=300)
    if want is not None and p.returncode != want:
        fail(f"{' '.join(cmd)}: exit {p.returncode}, want {want}\nstdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def ctl(*args, **kw):
    return run("vaultctl", *args, **kw)


class Totp:
    """RFC 6238 codes, each step used once and in order, as vaultd wants."""

    def __init__(self, secret):
        self.key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
        self.last = None

    def code(self):
        while True:
            now = int(time.time()) // 30
            lo = now - 1 if self.last is None else max(now - 1, self.last + 1)
            # A step at most now + 1, and one that stays valid a few seconds.
            if lo <= now + 1 and (lo >= now or time.time() % 30 < 25):
                self.last = lo
                mac = hmac.new(self.key, struct.pack(">Q", lo), hashlib.sha1).digest()
                o = mac[-1] & 15
                return "%06d" % ((struct.unpack(">I", mac[o:o + 4])[0] & 0x7FFFFFFF) % 1000000)
            time.sleep(1)


def journal_since(mark):
    with open(JOURNAL) as f:
        return f.read()[mark:]


def journal_mark():
    return os.path.getsize(JOURNAL)


def wait_serving(mark, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "serving on" in journal_since(mark):
            return
        time.sleep(0.2)
    fail(f"vaultd did not start serving within {timeout} s")


def restart(mark=None):
    mark = journal_mark() if mark is None else mark
    run("systemctl", "restart", "vaultd")
    wait_serving(mark)


def main():
    os.makedirs(XDG, mode=0o700, exist_ok=True)
    with open(PASSFILE, "w") as f:
        f.write("alice's deploy-check passphrase\n")
    os.chmod(PASSFILE, 0o600)

    # The unit as installed: systemd accepts it, and its exposure.
    p = run("systemd-analyze", "verify", "/lib/systemd/system/vaultd.service", want=None)
    if p.returncode != 0:
        fail(f"systemd-analyze verify: {p.stdout}{p.stderr}")
    ok(4, "systemd-analyze verify accepts the installed unit (its ExecStart exists)")
    p = run("systemd-analyze", "security", "--offline=true", "--no-pager", "/lib/systemd/system/vaultd.service",
            want=None)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", p.stdout)
    if not m or float(m.group(1)) > 2.0:
        fail(f"systemd-analyze security: exposure {m.group(1) if m else '?'} (at most 2.0)\n{p.stdout[-500:]}")
    ok(2, f"systemd-analyze security --offline=true: exposure {m.group(1)}")

    # The daemon as the unit runs it: user, groups, capabilities, and a
    # read-only system but for the unit's ReadWritePaths=.
    pid = int(open("/run/deploy-check/vaultd.pid").read())
    status = dict(line.split(":\t", 1) for line in open(f"/proc/{pid}/status").read().splitlines() if ":\t" in line)
    uid = pwd.getpwnam("vaultd").pw_uid
    if int(status["Uid"].split()[1]) != uid or int(status["NoNewPrivs"]) != 1 or status["CapEff"].strip() != "0000000000004000":
        fail(f"vaultd runs with Uid {status['Uid']}, NoNewPrivs {status['NoNewPrivs']}, CapEff {status['CapEff']}")
    writable = {}
    for line in open(f"/proc/{pid}/mountinfo"):
        f = line.split()
        writable[f[4]] = "rw" in f[5].split(",")
    want_rw = {"/var/lib/vaultd", "/run/vaultd", "/var/lib/softhsm/tokens", "/var/backups/vaultd"}
    if writable.get("/") or writable.get("/run") or {m for m in want_rw if not writable.get(m)}:
        fail(f"the daemon's mounts: / rw={writable.get('/')}, /run rw={writable.get('/run')}, "
             f"{ {m: writable.get(m) for m in want_rw} }")
    ok(2, "vaultd runs as vaultd, no new privileges, CAP_IPC_LOCK only; / and /run read-only, "
       "only the unit's ReadWritePaths writable")

    # What the package made.
    for path, mode, owner in (("/var/lib/vaultd", 0o700, "vaultd"), ("/var/backups/vaultd", 0o700, "vaultd"),
                              ("/etc/vaultd", 0o750, "root"), (CONF, 0o640, "root")):
        st = os.stat(path)
        if (st.st_mode & 0o7777, pwd.getpwuid(st.st_uid).pw_name) != (mode, owner):
            fail(f"{path}: mode {st.st_mode & 0o7777:04o} owner {pwd.getpwuid(st.st_uid).pw_name}, "
                 f"want {mode:04o} {owner}")
    groups = run("id", "-nG", "vaultd").stdout.split()
    if not {"softhsm", "vaultd-clients"} <= set(groups):
        fail(f"vaultd's groups are {groups}, want softhsm and vaultd-clients")
    ok(1, "user vaultd is in groups softhsm and vaultd-clients; it made the token as the docs say")
    ok(4, "the package made /var/lib/vaultd, /var/backups/vaultd (0700 vaultd), /etc/vaultd and its config")

    # Start-up errors name what is wrong, before init too.
    conf = open(CONF).read()
    run("systemctl", "stop", "vaultd")
    with open(CONF, "w") as f:
        f.write(conf.replace("token_label = vaultd", "token_label = no-such-token", 1))
    mark = journal_mark()
    restart(mark)
    if "no-such-token" not in journal_since(mark):
        fail("a wrong [hsm] token_label: the start-up log does not name it")
    ok(5, "a wrong token label is named in the start-up log, before init")
    run("systemctl", "stop", "vaultd")
    with open(CONF, "w") as f:
        f.write(conf)
    restart()

    # Init and unlock: one TOTP code unlocks and logs in, so lock works at once.
    j = json.loads(ctl("init", "--admin", ADMIN, "--passphrase-file", PASSFILE, "--json").stdout)
    totp = Totp(j["totp_secret"])
    ok(2, "init generated the HSM key in the token under the sandbox (its directory is writable)")
    ctl("unlock", "--user", ADMIN, "--passphrase-file", PASSFILE, "--totp", totp.code())
    ctl("lock")
    ok(7, "unlock, then lock at once: one TOTP code")
    ctl("unlock", "--user", ADMIN, "--passphrase-file", PASSFILE, "--totp", totp.code())

    # A credential, and a service in socket_group that reads it.
    ctl("put", "acme/rmm/tactical", "--type", "tactical-rmm", "url=https://rmm.acme.example", "api_key=-",
        stdin=API_KEY + "\n")
    run("adduser", "--quiet", "--system", "--no-create-home", "psa-sync")
    run("adduser", "--quiet", "psa-sync", "vaultd-clients")
    ctl("role", "set", "rmm-read", "--rule", "acme/rmm/*:read")
    ctl("service", "add", "psa-sync", "--uid", "psa-sync", "--role", "rmm-read")
    p = ctl("get", "acme/rmm/tactical", "--field", "api_key", user="psa-sync")
    if p.stdout != API_KEY + "\n":
        fail(f"the service read {p.stdout!r}")
    ok(3, "a service uid in socket_group vaultd-clients reads its credential")
    p = ctl("get", "acme/rmm/tactical", "--field", "api_key", user="psa-sync", env={"XDG_RUNTIME_DIR": XDG})
    if p.stdout != API_KEY + "\n":
        fail(f"with root's XDG_RUNTIME_DIR, the service read {p.stdout!r}")
    ok(9, "with an inherited XDG_RUNTIME_DIR it cannot read, vaultctl still acts as the uid's service")
    p = ctl("status", user="nobody", want=1)
    if "socket's group" not in p.stderr:
        fail(f"a uid outside socket_group: {p.stderr!r}")
    ok(3, "a uid outside socket_group cannot connect, and is told why")

    # rotate hsm writes the token; backup writes /var/backups/vaultd.
    ctl("rotate", "hsm")
    ok(2, "rotate hsm wrote the next key into the token under the sandbox")
    backup = "/var/backups/vaultd/vault-deploy-check.db"
    manifest = json.loads(ctl("backup", backup, "--json").stdout)
    ok(2, f"backup wrote {backup} under the sandbox")
    ctl("put", "acme/rmm/after-backup", "--type", "generic", "note=-", stdin="written after the backup\n")

    # A restart: locked, the old session is refused, a service's locked-time
    # read is recorded with its name, action and path.
    old_token = open(os.path.join(XDG, "vaultctl/token")).read().strip()
    ctl("list", "acme", env={"VAULTD_TOKEN": old_token})
    restart()
    ctl("list", "acme", want=3)
    ctl("get", "acme/rmm/tactical", "--field", "api_key", user="psa-sync", want=3)
    ctl("unlock", "--user", ADMIN, "--passphrase-file", PASSFILE, "--totp", totp.code())
    ctl("list", "acme")
    p = ctl("list", "acme", env={"VAULTD_TOKEN": old_token}, want=4)
    ok(6, "a session from before the restart is refused after it (" + p.stderr.strip() + ")")
    wrong = "/root/wrong.pass"
    with open(wrong, "w") as f:
        f.write("not alice's passphrase\n")
    os.chmod(wrong, 0o600)
    ctl("login", "--user", ADMIN, "--passphrase-file", wrong, "--totp", "000000", want=4)
    recs = json.loads(ctl("audit", "search", "--principal", "service:psa-sync", "--result", "failed",
                          "--json").stdout)["records"]
    if not any(r["action"] == "secret.read" and r["path"] == "acme/rmm/tactical" and r["status"] == 503
               for r in recs):
        fail(f"the locked-time read by psa-sync is not recorded with its name, action and path: {recs}")
    recs = json.loads(ctl("audit", "search", "--action", "auth.login", "--result", "failed", "--json")
                      .stdout)["records"]
    if not recs:
        fail("a failed login is not found by --result failed")
    ok(8, "a locked-time read names service:psa-sync, secret.read and the path; failed logins are 'failed'")
    ctl("audit", "verify")

    # Restore, as the docs say: stop, move aside, copy, check, start, unlock.
    run("systemctl", "stop", "vaultd")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(DB + suffix):
            os.rename(DB + suffix, DB + suffix + ".old")
    run("install", "-m", "0600", "-o", "vaultd", "-g", "vaultd", backup, DB)
    digest = hashlib.sha256(open(DB, "rb").read()).hexdigest()
    if digest != manifest["sha256"]:
        fail(f"the copy's SHA-256 {digest} is not the manifest's {manifest['sha256']}")
    restart()
    ctl("unlock", "--user", ADMIN, "--passphrase-file", PASSFILE, "--totp", totp.code())
    ctl("get", "acme/rmm/after-backup", want=6)
    p = ctl("get", "acme/rmm/tactical", "--field", "api_key", user="psa-sync")
    if p.stdout != API_KEY + "\n":
        fail(f"after the restore the service read {p.stdout!r}")
    ctl("audit", "verify")
    ok(2, "restore from the backup: the backup's credentials, not the later one; the audit verifies")

    print(f"deploy-check: {len(checked)} checks passed: points "
          f"{', '.join(str(p) for p in sorted({p for p, _ in checked}))} of issue 14 "
          "(10 is the audit_actions test of the suite)")


if __name__ == "__main__":
    main()
