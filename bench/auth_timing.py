#!/usr/bin/env python3
"""Login timing by failure reason: a wrong answer must take as long whether
the passphrase, the TOTP code or the user name was wrong, or the answer's
timing is a guessing oracle (docs/threat-model.md, "Brute force").

Starts a vaultd on a temporary SoftHSM2 token (the end-to-end test harness,
tests/e2e/harness.py), then makes N failed logins of each kind, interleaved,
and prints the median and spread of each. Figures, not assertions: compare
the medians by eye; the test suite has no timed checks.

    bench/auth_timing.py [--vaultd build/release/vaultd/vaultd] [-n 30]
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vaultd", default=os.path.join(HERE, "..", "build", "release", "vaultd", "vaultd"))
    ap.add_argument("-n", type=int, default=30, help="failed logins of each kind (at most 33)")
    args = ap.parse_args()
    os.environ["VAULTD_BIN"] = os.path.abspath(args.vaultd)
    os.environ.setdefault("VAULTD_SOFTHSM_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
    from harness import ADMIN, PASSPHRASE, Vault, wrong_totp     # reads VAULTD_BIN

    n = min(args.n, 33)                 # 3 kinds x n failures stay under max_failures = 100
    v = Vault()
    v.set_auth(max_failures=100)
    try:
        v.ready()
        secret = v.totp_secrets[ADMIN]
        kinds = {"wrong passphrase": (ADMIN, "a wrong passphrase"),
                 "right passphrase, wrong code": (ADMIN, PASSPHRASE),
                 "no such user": ("nobody-here", PASSPHRASE)}
        ms = {k: [] for k in kinds}
        for _ in range(n):
            for kind, (user, passphrase) in kinds.items():
                t = time.perf_counter()
                r = v.post("/v1/auth/login", {"user": user, "passphrase": passphrase, "totp": wrong_totp(secret)},
                           token=False)
                ms[kind].append((time.perf_counter() - t) * 1000)
                if r.status != 401:
                    raise SystemExit(f"{kind}: expected 401, got {r}")
        print(f"{n} failed logins of each kind (Argon2id m=8192 KiB t=1, the test harness's costs)")
        for kind, xs in ms.items():
            xs.sort()
            print(f"  {kind:30s} median {statistics.median(xs):7.2f} ms   "
                  f"p10 {xs[len(xs) // 10]:7.2f} ms   p90 {xs[len(xs) * 9 // 10]:7.2f} ms")
    finally:
        v.cleanup()


if __name__ == "__main__":
    main()
