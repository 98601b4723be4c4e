#!/usr/bin/env python3
"""Throughput of vaultd's secret read and write paths, over the Unix socket.

Starts `vaultd --dev` in a temporary directory (its own SoftHSM2 token), writes
N credentials, then reads them back with C concurrent keep-alive clients, and
prints requests per second and latency percentiles. Figures, not assertions:
see README ("Benchmarks"). Every request is audited (one SQLite write with
synchronous=FULL each), which dominates the read path.

    bench/api_bench.py [--vaultd build/release/vaultd/vaultd] [-n 500] [-c 4]
"""
import argparse
import contextlib
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time


class Conn(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("vaultd", timeout=30)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def call(conn, method, path, body=None):
    t0 = time.perf_counter()
    conn.request(method, path, body=json.dumps(body).encode() if body else None,
                 headers={"Content-Type": "application/json"} if body else {})
    r = conn.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"{method} {path}: {r.status}")
    return time.perf_counter() - t0


def run(name, sock, jobs, clients):
    lat, lock = [], threading.Lock()

    def worker(part):
        c = Conn(sock)
        mine = [call(c, *job) for job in part]
        with lock:
            lat.extend(mine)
    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(jobs[i::clients],)) for i in range(clients)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    wall = time.perf_counter() - t0
    q = statistics.quantiles(lat, n=100)
    print(f"{name:6} {len(jobs):6} requests  {len(jobs) / wall:8.0f} req/s  "
          f"p50 {q[49] * 1000:6.2f} ms  p99 {q[98] * 1000:6.2f} ms  ({clients} clients)")


@contextlib.contextmanager
def dev_vault(vaultd):
    """vaultd --dev in a temporary directory, for the with-block: yields
    (process, socket path); stops it and removes the directory after."""
    d = tempfile.mkdtemp(prefix="vaultd-bench-")
    vault = os.path.join(d, "v")
    sock = os.path.join(vault, "vaultd.sock")
    p = subprocess.Popen([vaultd, "--dev", vault], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        time.sleep(0.2)
        yield p, sock
    finally:
        p.terminate()
        p.wait()
        shutil.rmtree(d, ignore_errors=True)


def peak_rss_mib(p):
    with open(f"/proc/{p.pid}/status") as f:
        return int(f.read().split("VmHWM:")[1].split()[0]) // 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vaultd", default="build/release/vaultd/vaultd")
    ap.add_argument("-n", type=int, default=500)
    ap.add_argument("-c", type=int, default=4)
    a = ap.parse_args()
    with dev_vault(a.vaultd) as (p, sock):
        data = {"url": "https://rmm.acme.example", "api_key": "k" * 40}
        writes = [("PUT", f"/v1/secrets/t{i % 10}/rmm/s{i}", {"type": "tactical-rmm", "data": data})
                  for i in range(a.n)]
        reads = [("GET", f"/v1/secrets/t{i % 10}/rmm/s{i}") for i in range(a.n)]
        run("write", sock, writes, a.c)
        run("read", sock, reads, a.c)
        print(f"vaultd peak RSS {peak_rss_mib(p)} MiB")


if __name__ == "__main__":
    main()
