"""End-to-end harness: a real vaultd on a temporary SoftHSM2 token.

Each Vault gets its own directory with a SoftHSM2 config and token, an HSM PIN
file, a vaultd.conf, the database and the socket. Requests go over the Unix
socket with http.client; raw() sends arbitrary bytes for malformed-input tests.
Standard library only. Paths come from the environment ctest sets:
VAULTD_BIN, VAULTD_SOFTHSM_MODULE.
"""
import base64
import grp
import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import unittest

VAULTD_BIN = os.environ.get("VAULTD_BIN", "vaultd")
SOFTHSM_MODULE = os.environ.get("VAULTD_SOFTHSM_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
PASSPHRASE = "correct horse battery staple"
# scripts/memcheck runs the daemon under valgrind, some 20 to 50 times
# slower: every timeout here and in the config scales by this factor.
SLOW = float(os.environ.get("VAULTD_E2E_SLOW", "1"))
ADMIN = "admin"


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30 * SLOW):
        super().__init__("vaultd", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(self.timeout)
            s.connect(self.unix_path)
        except BaseException:
            s.close()
            raise
        self.sock = s


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.raw = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return f"<{self.status} {self.raw[:300]!r}>"


class Vault:
    # When no unspent TOTP step is left, spend one of the user's recovery
    # codes instead of sleeping up to 30 s for the next step. Off by default:
    # tests of recovery codes count them.
    spend_recovery_codes = False

    def __init__(self, extra_config="", token_label="vaultd-test", pin="1234-test-pin"):
        self.dir = tempfile.mkdtemp(prefix="vaultd-e2e-")
        os.chmod(self.dir, 0o700)
        self.sock = os.path.join(self.dir, "vaultd.sock")
        self.db = os.path.join(self.dir, "vault.db")
        self.log = os.path.join(self.dir, "vaultd.log")
        self.conf = os.path.join(self.dir, "vaultd.conf")
        self.proc = None
        # Issue 4 (MFA, tokens): what init and user creation handed out, per
        # user name, and the last TOTP step each user spent (codes are single
        # use per user). Empty against a daemon without MFA.
        self.totp_secrets = {}
        self.recovery_codes = {}
        self._totp_last_step = {}
        # After unlock(), log in as that user and send the token on every
        # request made from this uid that names no token (see request()).
        # Only when the daemon enrols TOTP (issue 4); tests that handle tokens
        # themselves set it to False.
        self.auto_login = True
        self.token = None
        self.token_uid = None
        self.env = dict(os.environ, SOFTHSM2_CONF=os.path.join(self.dir, "softhsm2.conf"))
        os.makedirs(os.path.join(self.dir, "tokens"), mode=0o700)
        with open(self.env["SOFTHSM2_CONF"], "w") as f:
            f.write(f"directories.tokendir = {self.dir}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n")
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", token_label,
                        "--pin", pin, "--so-pin", "so-" + pin], env=self.env, check=True,
                       stdout=subprocess.DEVNULL)
        pin_file = os.path.join(self.dir, "hsm.pin")
        fd = os.open(pin_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, pin.encode() + b"\n")
        os.close(fd)
        self.write_config(f"""
[server]
socket = {self.sock}
socket_mode = 0660
request_timeout = {int(5 * SLOW)}
[storage]
path = {self.db}
[hsm]
module = {SOFTHSM_MODULE}
token_label = {token_label}
pin_file = {pin_file}
key_label = vaultd-root
""" + (f"timeout_ms = {int(10000 * SLOW)}\n" if SLOW > 1 else "") + """[auth]
argon2_memory_kib = 8192
argon2_iterations = 1
[log]
level = debug
""" + extra_config)

    def write_config(self, text):
        with open(self.conf, "w") as f:
            f.write(text)
        os.chmod(self.conf, 0o600)

    # ---- process ----

    def start(self, wait=True):
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([VAULTD_BIN, "-c", self.conf, "-f"], env=self.env,
                                     stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
        logf.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=30 * SLOW):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"vaultd exited with {self.proc.returncode}:\n{self.read_log()}")
            try:
                if self.get("/v1/sys/health").status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("vaultd did not become ready:\n" + self.read_log())

    def stop(self, sig=signal.SIGTERM, timeout=20 * SLOW):
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            raise AssertionError("vaultd did not stop on signal %d" % sig)
        self.proc = None
        return rc

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start()

    def read_log(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def cleanup(self):
        try:
            if self.proc and self.proc.poll() is None:
                self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    # ---- requests ----

    def request(self, method, path, body=None, headers=None, raw_body=None, conn=None, token=None):
        """token: a bearer token to send; None sends self.token (set by
        auto-login) when this process runs as the uid that logged in; False
        sends none."""
        own = conn is None
        conn = conn or UnixHTTPConnection(self.sock)
        hdrs = dict(headers or {})
        if token is None and self.token and self.token_uid == os.getuid():
            token = self.token
        if token:
            hdrs.setdefault("Authorization", "Bearer " + token)
        data = raw_body
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
            return Response(resp.status, dict(resp.getheaders()), payload)
        finally:
            if own:
                conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def put(self, path, body, **kw):
        return self.request("PUT", path, body=body, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def raw(self, data, read_timeout=5):
        """Sends bytes as they are and returns everything read until close or timeout."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(read_timeout)
        s.connect(self.sock)
        try:
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the daemon answered (e.g. 413) before reading everything
            chunks = []
            while True:
                try:
                    b = s.recv(65536)
                except (socket.timeout, ConnectionResetError):
                    break
                if not b:
                    break
                chunks.append(b)
            return b"".join(chunks)
        finally:
            s.close()

    # ---- flows ----

    def init(self, admin=ADMIN, passphrase=PASSPHRASE):
        r = self.post("/v1/sys/init", {"admin": admin, "passphrase": passphrase})
        assert r.status == 200, r
        self.remember_enrolment(admin, r)
        return r

    def unlock(self, user=ADMIN, passphrase=PASSPHRASE):
        body = {"user": user, "passphrase": passphrase}
        if user in self.totp_secrets:
            body.update(self.second_factor(user))
        r = self.post("/v1/sys/unlock", body, token=False)
        assert r.status == 200, r
        if self.auto_login and user in self.totp_secrets:
            self.token = self.login(user, passphrase)
            self.token_uid = os.getuid()
        return r

    def ready(self):
        """Started, initialised and unlocked."""
        self.start()
        self.init()
        self.unlock()
        return self

    # ---- issue 4: MFA, login, other uids ----

    def remember_enrolment(self, user, r):
        """Keeps the TOTP secret and recovery codes of an init or user-creation
        (or MFA reset) reply, if it has them."""
        if r.json and r.json.get("totp_secret"):
            self.totp_secrets[user] = r.json["totp_secret"]
            self.recovery_codes[user] = list(r.json.get("recovery_codes") or [])

    def second_factor(self, user):
        """{"totp": code}, or {"recovery_code": code} when spend_recovery_codes
        is set and waiting for a fresh TOTP step would be needed."""
        code = self.fresh_totp(user, wait=not (self.spend_recovery_codes and self.recovery_codes.get(user)))
        if code is None:
            return {"recovery_code": self.recovery_codes[user].pop()}
        return {"totp": code}

    def fresh_totp(self, user, secret=None, wait=True):
        """A TOTP code for user that the daemon has not seen accepted yet.

        The daemon accepts steps now-1, now, now+1 and each step once per user
        (codes only ever move forward), so take the smallest step above the
        last one this user spent that stays acceptable for the next
        TOTP_MARGIN seconds; sleep to the next step when there is none (or
        return None if not wait)."""
        secret = secret or self.totp_secrets[user]
        while True:
            t = time.time()
            lo = int((t + TOTP_MARGIN) // TOTP_PERIOD) - 1
            hi = int(t // TOTP_PERIOD) + 1
            last = self._totp_last_step.get(user)
            steps = [s for s in range(lo, hi + 1) if last is None or s > last]
            if steps:
                self._totp_last_step[user] = steps[0]
                return totp(secret, step=steps[0])
            if not wait:
                return None
            time.sleep(TOTP_PERIOD - t % TOTP_PERIOD + 0.05)

    def login_request(self, user=ADMIN, passphrase=PASSPHRASE, totp_secret=None, recovery_code=None, code=None):
        """POST /v1/auth/login with a fresh TOTP code (from totp_secret or the
        one remembered for user), a given code, or a recovery code."""
        body = {"user": user, "passphrase": passphrase}
        if recovery_code is not None:
            body["recovery_code"] = recovery_code
        elif code is not None:
            body["totp"] = code
        elif totp_secret is not None:
            body["totp"] = self.fresh_totp(user, totp_secret)
        elif user in self.totp_secrets:
            body.update(self.second_factor(user))
        return self.post("/v1/auth/login", body, token=False)

    def login(self, user=ADMIN, passphrase=PASSPHRASE, totp_secret=None, recovery_code=None):
        """Logs in and returns the bearer token (asserts 200)."""
        r = self.login_request(user, passphrase, totp_secret, recovery_code)
        assert r.status == 200 and r.json and r.json.get("token"), f"login as {user!r} failed: {r}"
        return r.json["token"]

    def set_auth(self, **keys):
        """Adds keys to the [auth] section of the config (before start)."""
        with open(self.conf) as f:
            conf = f.read()
        extra = "".join(f"{k} = {v}\n" for k, v in keys.items())
        self.write_config(conf.replace("[auth]\n", "[auth]\n" + extra, 1))

    def allow_other_uids(self, group="nogroup"):
        """Lets processes of other uids (in group) reach the socket (before start)."""
        with open(self.conf) as f:
            conf = f.read()
        self.write_config(conf.replace("socket_mode = 0660", f"socket_mode = 0660\nsocket_group = {group}", 1))
        os.chmod(self.dir, 0o711)


TOTP_PERIOD = 30
TOTP_MARGIN = 3  # seconds a chosen code must stay acceptable: request latency


def totp(secret_b32, t=None, step=None, digits=6):
    """RFC 6238 TOTP (HMAC-SHA-1, 30 s steps) for a base32 secret, at time t
    (default now) or at an explicit step number."""
    s = secret_b32.strip().replace(" ", "").upper()
    key = base64.b32decode(s + "=" * (-len(s) % 8))
    if step is None:
        step = int((time.time() if t is None else t) // TOTP_PERIOD)
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF) % 10 ** digits
    return "%0*d" % (digits, code)


def wrong_totp(secret_b32):
    """A 6-digit code that is not valid for this secret anywhere near now."""
    now = int(time.time() // TOTP_PERIOD)
    valid = {totp(secret_b32, step=s) for s in range(now - 3, now + 4)}
    n = int(totp(secret_b32, step=now))
    while "%06d" % n in valid:
        n = (n + 1) % 1000000
    return "%06d" % n


def as_uid(uid, gid, fn, timeout=120):
    """Runs fn() in a forked child under uid/gid (no supplementary groups) and
    returns its result (must pickle). An exception in the child is raised in
    the parent as an AssertionError carrying the child's traceback."""
    import pickle
    import select
    import traceback
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            out = pickle.dumps((True, fn()))
        except BaseException:  # noqa
            out = pickle.dumps((False, traceback.format_exc()))
        try:
            os.write(w, out)
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([r], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                raise AssertionError(f"child as uid {uid} did not finish in {timeout} s")
            b = os.read(r, 65536)
            if not b:
                break
            data += b
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    if not data:
        raise AssertionError(f"child as uid {uid} died without an answer")
    ok, value = pickle.loads(data)
    if not ok:
        raise AssertionError(f"child as uid {uid} failed:\n{value}")
    return value


class VaultTestCase(unittest.TestCase):
    """One fresh vault per test; the log is printed when a test fails."""

    def setUp(self):
        self.v = Vault()

    def tearDown(self):
        failed = any(err for (_, err) in getattr(self._outcome, "errors", []) if err) if hasattr(
            self._outcome, "errors") else False
        result = getattr(self._outcome, "result", None)
        if result is not None and (result.failures or result.errors):
            failed = True
        if failed:
            print("---- vaultd log ----\n" + self.v.read_log()[-8000:])
        self.v.cleanup()


VAULTCTL = os.environ.get("VAULTCTL_BIN", "vaultctl")


class CliTestCase(VaultTestCase):
    """vaultctl end to end: each test gets its own XDG_RUNTIME_DIR (so its
    own token file) and a passphrase file; ctl() runs the binary."""

    def setUp(self):
        super().setUp()
        self.xdg = os.path.join(self.v.dir, "xdg")
        os.mkdir(self.xdg, 0o700)
        self.pfile = self.write_file("pass", PASSPHRASE + "\n")

    def write_file(self, name, text, mode=0o600):
        path = os.path.join(self.v.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def ctl(self, *args, stdin="", env=None, user=None, check=None, sock=None, cwd=None, timeout=300):
        """Runs vaultctl with standard input a pipe (never a terminal; stdin
        is what it reads); returns the CompletedProcess (text). user: run as
        that uid (group nogroup, no runtime dir). check: the expected exit
        code, asserted with stdout and stderr in the message."""
        e = {k: v for k, v in os.environ.items() if k not in ("VAULTD_TOKEN", "XDG_RUNTIME_DIR")}
        e.update(VAULTD_SOCKET=sock or self.v.sock, XDG_RUNTIME_DIR=self.xdg)
        e.update(env or {})
        kw = {}
        if user is not None:
            kw = dict(user=user, group=grp.getgrnam("nogroup").gr_gid, extra_groups=[])
            if "XDG_RUNTIME_DIR" not in (env or {}):
                e.pop("XDG_RUNTIME_DIR")
        p = subprocess.run([VAULTCTL, *args], input=stdin, capture_output=True, text=True, env=e, cwd=cwd,
                           timeout=timeout, **kw)
        if check is not None:
            self.assertEqual(p.returncode, check, f"vaultctl {' '.join(args)}:\n{p.stdout}\n{p.stderr}")
        return p


def main():
    unittest.main(verbosity=2)
