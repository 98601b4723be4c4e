#!/usr/bin/env python3
"""vaultd --dev DIR: the try-it-out vault README's first command uses."""
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from harness import VAULTD_BIN, UnixHTTPConnection, Response  # noqa: F401
import harness


def request(sock, method, path, body=None):
    import json
    conn = UnixHTTPConnection(sock)
    try:
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=hdrs)
        r = conn.getresponse()
        return Response(r.status, dict(r.getheaders()), r.read())
    finally:
        conn.close()


class DevMode(unittest.TestCase):
    def setUp(self):
        self.parent = tempfile.mkdtemp(prefix="vaultd-dev-e2e-")
        self.dir = os.path.join(self.parent, "vault")
        self.sock = os.path.join(self.dir, "vaultd.sock")
        self.env = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}

    def tearDown(self):
        shutil.rmtree(self.parent, ignore_errors=True)

    def start(self):
        out = open(os.path.join(self.parent, "out.log"), "ab")
        p = subprocess.Popen([VAULTD_BIN, "--dev", self.dir], stdout=out, stderr=out, env=self.env)
        out.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self.assertIsNone(p.poll(), self.log())
            if os.path.exists(self.sock):
                try:
                    if request(self.sock, "GET", "/v1/sys/health").status == 200:
                        return p
                except OSError:
                    pass
            time.sleep(0.05)
        p.kill()
        self.fail("vaultd --dev did not start:\n" + self.log())

    def log(self):
        with open(os.path.join(self.parent, "out.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, p):
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(20), 0, self.log())

    def test_dev_vault_serves_and_is_reused(self):
        p = self.start()
        h = request(self.sock, "GET", "/v1/sys/health").json
        self.assertEqual((h["initialized"], h["locked"]), (True, False))
        banner = self.log()
        self.assertIn("NOT FOR PRODUCTION", banner)
        with open(os.path.join(self.dir, "admin.passphrase")) as f:
            self.assertIn(f.read().strip(), banner)
        for name in ["admin.passphrase", "hsm.pin", "softhsm2.conf", "vault.db"]:
            self.assertEqual(os.stat(os.path.join(self.dir, name)).st_mode & 0o777, 0o600, name)
        self.assertEqual(os.stat(self.dir).st_mode & 0o777, 0o700)
        cred = {"url": "https://rmm.acme.example", "api_key": "dev-e2e-key"}
        r = request(self.sock, "PUT", "/v1/secrets/acme/rmm/tactical", {"type": "tactical-rmm", "data": cred})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(request(self.sock, "GET", "/v1/secrets/acme/rmm/tactical").json["data"], cred)
        self.stop(p)

        p = self.start()  # same DIR: same token, same vault, unlocked again
        self.assertFalse(request(self.sock, "GET", "/v1/sys/health").json["locked"])
        self.assertEqual(request(self.sock, "GET", "/v1/secrets/acme/rmm/tactical").json["data"], cred)
        self.stop(p)

    def test_dev_refuses_unsafe_dir(self):
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        r = subprocess.run([VAULTD_BIN, "--dev", self.dir], capture_output=True, text=True, timeout=20, env=self.env)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("0700", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
