#!/usr/bin/env python3
"""Rotation throughput: how fast vaultd rewraps and re-encrypts, and what a
rotation costs the reads that run during it.

Starts `vaultd --dev` in a temporary directory, writes N credentials across
T tenants, then runs, one after the other, a KEK rotation of the first
tenant, a root-key rotation, a data-key rotation of the first tenant and an
HSM-key rotation, each while C clients keep reading. Prints rows per second
per rotation and the read latency during it. Figures, not assertions: see
README ("Benchmarks").

    bench/rotate_bench.py [--vaultd build/release/vaultd/vaultd] [-n 10000] [-t 4] [-c 2]
"""
import argparse
import json
import statistics
import threading
import time

from api_bench import Conn, call, dev_vault, peak_rss_mib


def job(conn, what):
    conn.request("POST", f"/v1/rotate/{what}")
    r = conn.getresponse()
    body = r.read()
    if r.status != 202:
        raise SystemExit(f"rotate {what}: {r.status} {body[:200]!r}")
    return json.loads(body)["job"]["id"]


def wait(conn, job_id):
    while True:
        conn.request("GET", f"/v1/rotate/jobs/{job_id}")
        r = conn.getresponse()
        j = json.loads(r.read())["job"]
        if j["state"] in ("done", "failed"):
            if j["state"] == "failed":
                raise SystemExit(f"job {job_id} failed: {j['error']}")
            return j
        time.sleep(0.02)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vaultd", default="build/release/vaultd/vaultd")
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("-t", type=int, default=4)
    ap.add_argument("-c", type=int, default=2)
    a = ap.parse_args()
    with dev_vault(a.vaultd) as (p, sock):
        data = {"url": "https://rmm.acme.example", "api_key": "k" * 40}
        paths = [f"t{i % a.t}/rmm/s{i}" for i in range(a.n)]

        def writer(part):
            c = Conn(sock)
            for path in part:
                call(c, "PUT", f"/v1/secrets/{path}", {"type": "tactical-rmm", "data": data})
        ws = [threading.Thread(target=writer, args=(paths[i::4],)) for i in range(4)]
        [w.start() for w in ws]
        [w.join() for w in ws]
        print(f"{a.n} credentials in {a.t} tenants")

        for what in ("kek/t0", "root", "secret/t0", "hsm"):
            stop, lat = threading.Event(), []

            def reader(k):
                c = Conn(sock)
                i = k
                while not stop.is_set():
                    lat.append(call(c, "GET", f"/v1/secrets/{paths[i % len(paths)]}"))
                    i += 13
            rs = [threading.Thread(target=reader, args=(k,)) for k in range(a.c)]
            [r.start() for r in rs]
            c = Conn(sock)
            t0 = time.perf_counter()
            j = wait(c, job(c, what))
            wall = time.perf_counter() - t0
            stop.set()
            [r.join() for r in rs]
            q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [0] * 99
            print(f"rotate {what:10} {j['done']:6} rows  {wall:6.2f} s  {j['done'] / wall:8.0f} rows/s   "
                  f"reads meanwhile: {len(lat):6}  p50 {q[49] * 1000:6.2f} ms  p99 {q[98] * 1000:6.2f} ms")
        print(f"vaultd peak RSS {peak_rss_mib(p)} MiB")


if __name__ == "__main__":
    main()
