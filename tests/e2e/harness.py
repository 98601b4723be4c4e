"""End-to-end harness: a real vaultd on a temporary SoftHSM2 token.

Each Vault gets its own directory with a SoftHSM2 config and token, an HSM PIN
file, a vaultd.conf, the database and the socket. Requests go over the Unix
socket with http.client; raw() sends arbitrary bytes for malformed-input tests.
Standard library only. Paths come from the environment ctest sets:
VAULTD_BIN, VAULTD_SOFTHSM_MODULE.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

VAULTD_BIN = os.environ.get("VAULTD_BIN", "vaultd")
SOFTHSM_MODULE = os.environ.get("VAULTD_SOFTHSM_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
PASSPHRASE = "correct horse battery staple"
ADMIN = "admin"


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("vaultd", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
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
    def __init__(self, extra_config="", token_label="vaultd-test", pin="1234-test-pin"):
        self.dir = tempfile.mkdtemp(prefix="vaultd-e2e-")
        os.chmod(self.dir, 0o700)
        self.sock = os.path.join(self.dir, "vaultd.sock")
        self.db = os.path.join(self.dir, "vault.db")
        self.log = os.path.join(self.dir, "vaultd.log")
        self.conf = os.path.join(self.dir, "vaultd.conf")
        self.proc = None
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
request_timeout = 5
[storage]
path = {self.db}
[hsm]
module = {SOFTHSM_MODULE}
token_label = {token_label}
pin_file = {pin_file}
key_label = vaultd-root
[auth]
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

    def wait_ready(self, timeout=30):
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

    def stop(self, sig=signal.SIGTERM, timeout=20):
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

    def request(self, method, path, body=None, headers=None, raw_body=None, conn=None):
        own = conn is None
        conn = conn or UnixHTTPConnection(self.sock)
        hdrs = dict(headers or {})
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
        return r

    def unlock(self, user=ADMIN, passphrase=PASSPHRASE):
        r = self.post("/v1/sys/unlock", {"user": user, "passphrase": passphrase})
        assert r.status == 200, r
        return r

    def ready(self):
        """Started, initialised and unlocked."""
        self.start()
        self.init()
        self.unlock()
        return self


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


def main():
    unittest.main(verbosity=2)
