"""Memory hygiene (issue 15, point 7): after a lock, no root key, no KEK and
no credential value is left anywhere in vaultd's writable memory.

The test build (VAULTD_FAULT_INJECTION) writes the keys a lock is about to
wipe to $VAULTD_TEST_KEYS_OUT (vaultd/keys/keyring.c); the test plants
credential values of its own through the API, reads them back, locks, and
then reads every writable mapping of the process (/proc/PID/maps and
/proc/PID/mem; root, as CI runs the suite) looking for each of them. A
control run while unlocked must find the keys, so the scan is known to read
where they live. Also: RLIMIT_CORE is 0 on the live process.
"""
import os
import re
import secrets

from harness import VaultTestCase, main

MAX_REGION = 512 << 20          # larger writable mappings are sanitizer shadow, never touched by us


def writable_regions(pid):
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)", line)
            lo, hi, perms, name = int(m.group(1), 16), int(m.group(2), 16), m.group(3), m.group(4)
            if perms[0] == "r" and perms[1] == "w" and name not in ("[vvar]", "[vsyscall]") and hi - lo <= MAX_REGION:
                yield lo, hi, name


def find_in_memory(pid, needles):
    """{needle name: [(address, mapping name)]} for every needle found."""
    found = {}
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for lo, hi, name in writable_regions(pid):
            addr = lo
            while addr < hi:
                size = min(hi - addr, 16 << 20)
                try:
                    mem.seek(addr)
                    chunk = mem.read(size)
                except OSError:
                    chunk = b""
                for what, needle in needles.items():
                    i = chunk.find(needle)
                    while i >= 0:
                        found.setdefault(what, []).append((addr + i, name))
                        i = chunk.find(needle, i + 1)
                addr += size
    return found


class AfterLock(VaultTestCase):
    def test_no_key_or_value_is_left_after_a_lock(self):
        v = self.v
        keys_out = os.path.join(v.dir, "keys-out")
        v.env["VAULTD_TEST_KEYS_OUT"] = keys_out
        v.ready()
        planted = {}
        for tenant in ("acme", "globex"):
            value = f"PLANTED-{tenant}-{secrets.token_hex(12)}"
            planted[f"value {tenant}"] = value.encode()
            r = v.put(f"/v1/secrets/{tenant}/rmm/t", {"type": "generic", "data": {"api_key": value}})
            self.assertEqual(r.status, 200, r)
            for _ in range(3):
                r = v.get(f"/v1/secrets/{tenant}/rmm/t")
                self.assertEqual(r.json["data"]["api_key"], value)
        self.assertEqual(v.post("/v1/sys/lock").status, 200)

        with open(keys_out) as f:
            lines = f.read().split()
        needles = dict(planted)
        rks = [i for i, w in enumerate(lines) if w == "rk"]
        keks = [i for i, w in enumerate(lines) if w == "kek"]
        self.assertTrue(rks and len(keks) >= 2, f"the test build wrote the root key and both KEKs: {lines[:3]}")
        for i in rks:
            needles[f"root key v{lines[i + 1]}"] = bytes.fromhex(lines[i + 2])
        for i in keks:
            needles[f"KEK {lines[i + 1]} v{lines[i + 2]}"] = bytes.fromhex(lines[i + 3])

        # Control: unlocked again (the same root key; the KEKs come back with
        # a read of each tenant), the scan must find the keys, which proves it
        # reads the memory they live in.
        v.spend_recovery_codes = True
        v.unlock()
        for tenant in ("acme", "globex"):
            self.assertEqual(v.get(f"/v1/secrets/{tenant}/rmm/t").status, 200)
        keys = {k: n for k, n in needles.items() if not k.startswith("value")}
        found = find_in_memory(v.proc.pid, keys)
        self.assertEqual(sorted(found), sorted(keys), "unlocked, the scan finds the root key and the KEKs")
        self.assertEqual(v.post("/v1/sys/lock").status, 200)

        found = find_in_memory(v.proc.pid, needles)
        self.assertEqual(found, {}, "after a lock, no key or value is in vaultd's writable memory: "
                         + ", ".join(f"{k} at {len(a)} place(s), e.g. {hex(a[0][0])} {a[0][1] or '(anonymous)'}"
                                     for k, a in found.items()))

        # And no core dump could carry anything (the non-dumpable flag is
        # test_sandbox's; a root daemon's /proc files tell nothing of it).
        with open(f"/proc/{v.proc.pid}/limits") as f:
            core = [l for l in f if l.startswith("Max core file size")][0].split()
        self.assertEqual(core[4:6], ["0", "0"], f"RLIMIT_CORE 0: {core}")


if __name__ == "__main__":
    main()
