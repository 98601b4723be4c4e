"""Disk faults (issue 15, point 6): the database on a small filesystem (a
tmpfs with a size limit, mounted by the test; needs root) that then fills
up. Writes are refused with 507 insufficient_storage and a JSON body, and one
log line says the disk is full; nothing is corrupted (integrity_check, the
audit chain, every secret still reads); what reads do is the documented
fail-closed rule (docs/threat-model.md, "Disk full"): a read is served only if
its audit record is stored; and when space returns, writes work again with no
restart.
"""
import os
import sqlite3
import subprocess
import sys

from harness import VaultTestCase, main

SIZE = "8m"


class DiskFull(VaultTestCase):
    def setUp(self):
        super().setUp()
        self.small = os.path.join(self.v.dir, "small")
        os.mkdir(self.small, 0o700)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0700", "tmpfs", self.small], check=True)
        with open(self.v.conf) as f:
            conf = f.read()
        self.db = os.path.join(self.small, "vault.db")
        self.v.write_config(conf.replace(f"path = {self.v.db}", f"path = {self.db}", 1))
        self.v.db = self.db
        self.filler = os.path.join(self.small, "filler")

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            subprocess.run(["umount", "-l", self.small], check=False)

    def fill(self):
        """Fills the filesystem to the last block."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (65536, 4096, 512, 1):
                try:
                    while True:
                        os.write(fd, b"\0" * size)
                except OSError:
                    pass
        finally:
            os.close(fd)

    def test_writes_refused_reads_fail_closed_recovery(self):
        v = self.v
        v.ready()
        for i in range(20):
            self.assertEqual(v.put(f"/v1/secrets/acme/s{i}", {"type": "generic", "data": {"k": f"v{i}" * 50}}).status,
                             200)
        log_mark = len(v.read_log())
        self.fill()

        # Writes: 507, JSON, the store unchanged. A big one cannot fit.
        for i in range(5):
            r = v.put(f"/v1/secrets/acme/new{i}", {"type": "generic", "data": {"k": "x" * 30000}})
            self.assertEqual(r.status, 507, f"a write on a full disk: {r}")
            self.assertEqual((r.json or {}).get("error"), "insufficient_storage", f"a JSON body: {r}")
        log = v.read_log()[log_mark:]
        full_lines = [l for l in log.splitlines() if l.startswith("error:") and "disk is full" in l]
        self.assertTrue(full_lines, f"the log says the disk is full:\n{log[-2000:]}")
        self.assertLessEqual(len(full_lines), 2, f"one line, not one per request:\n{full_lines}")
        self.assertIn(self.small, full_lines[0], "the line names where")

        # Reads: served with their record, or refused for want of one.
        served = 0
        for i in range(20):
            r = v.get(f"/v1/secrets/acme/s{i}")
            served += r.status == 200
            if r.status == 200:
                self.assertEqual(r.json["data"], {"k": f"v{i}" * 50})
            else:
                self.assertEqual((r.status, r.json["error"]), (507, "insufficient_storage"), r)
        print(f"disk full: {served} of 20 reads served (their records found room), "
              f"{20 - served} refused", file=sys.stderr)
        self.assertEqual(v.get("/v1/sys/health").status, 200, "health answers")

        # Space returns: writes work again, nothing was lost or corrupted.
        os.unlink(self.filler)
        r = v.put("/v1/secrets/acme/after", {"type": "generic", "data": {"k": "back"}})
        self.assertEqual(r.status, 200, f"a write once space is back: {r}")
        for i in range(20):
            r = v.get(f"/v1/secrets/acme/s{i}")
            self.assertEqual((r.status, r.json["data"]), (200, {"k": f"v{i}" * 50}), f"s{i} after the fault")
        for i in range(5):
            self.assertEqual(v.get(f"/v1/secrets/acme/new{i}").status, 404, "no refused write is half-there")
        verify = v.get("/v1/audit/verify").json
        self.assertTrue(verify["ok"], f"the audit chain verifies: {verify}")
        self.assertEqual(v.stop(), 0)
        con = sqlite3.connect(self.db)
        try:
            self.assertEqual(con.execute("PRAGMA integrity_check").fetchall(), [("ok",)])
        finally:
            con.close()


if __name__ == "__main__":
    main()
