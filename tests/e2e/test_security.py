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

from harness import ADMIN, PASSPHRASE, as_uid, main, wrong_totp
from test_audit import NOGROUP, NOBODY, AuditCase


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


if __name__ == "__main__":
    main()
