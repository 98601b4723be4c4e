#!/usr/bin/env python3
"""vaultd end to end: every route of the secrets API over the Unix socket."""
import grp
import json
import os
import socket
import time

from cred_examples import TRMM, VALID as EXAMPLES
from harness import ADMIN, PASSPHRASE, SLOW, Vault, VaultTestCase, as_uid, main

Vault.spend_recovery_codes = True      # no test here counts recovery codes


class Lifecycle(VaultTestCase):
    def test_states_init_unlock_lock(self):
        v = self.v.start()
        h = v.get("/v1/sys/health")
        self.assertEqual(h.status, 200)
        self.assertEqual(h.json["initialized"], False)
        self.assertTrue(h.json["locked"])
        self.assertRegex(h.headers["X-Request-Id"], r"^[0-9a-f]{32}$")
        # Before init: everything but health and init answers 503.
        for method, path in [("GET", "/v1/secrets/acme/x"), ("POST", "/v1/sys/lock"), ("GET", "/v1/types")]:
            r = v.request(method, path)
            self.assertEqual(r.status, 503, (method, path, r))
            self.assertEqual(r.json["error"], "uninitialized")
        r = v.post("/v1/sys/unlock", {"user": ADMIN, "passphrase": PASSPHRASE})
        self.assertEqual(r.status, 503)

        r = v.init()
        self.assertEqual({k: r.json[k] for k in ("initialized", "admin", "locked")},
                         {"initialized": True, "admin": ADMIN, "locked": True})
        self.assertTrue(r.json["totp_uri"].startswith("otpauth://totp/"))
        self.assertEqual(v.post("/v1/sys/init", {"admin": "x", "passphrase": PASSPHRASE * 2}).status, 409)
        h = v.get("/v1/sys/health").json
        self.assertTrue(h["initialized"] and h["locked"])
        # Locked: 503 locked.
        for method, path in [("GET", "/v1/secrets/acme/x"), ("PUT", "/v1/secrets/acme/x"),
                             ("GET", "/v1/secrets/acme?list=1"), ("GET", "/v1/types"), ("POST", "/v1/sys/lock")]:
            r = v.request(method, path)
            self.assertEqual(r.status, 503, (method, path, r))
            self.assertEqual(r.json["error"], "locked")

        self.assertEqual(v.post("/v1/sys/unlock", {"user": ADMIN, "passphrase": "wrong passphrase!",
                                                    "totp": "000000"}).status, 401)
        r = v.post("/v1/sys/unlock", {"user": "nobody", "passphrase": PASSPHRASE, "totp": "000000"})
        self.assertEqual(r.status, 401)
        self.assertEqual(r.json["message"], "wrong user, passphrase or code")
        v.unlock()
        self.assertFalse(v.get("/v1/sys/health").json["locked"])
        self.assertEqual(v.put("/v1/secrets/acme/rmm/tactical", {"type": "tactical-rmm", "data": TRMM}).status, 200)
        self.assertEqual(v.post("/v1/sys/lock").json, {"locked": True})
        self.assertEqual(v.get("/v1/secrets/acme/rmm/tactical").status, 503)
        v.unlock()
        self.assertEqual(v.get("/v1/secrets/acme/rmm/tactical").json["data"], TRMM)

    def test_init_validation(self):
        v = self.v.start()
        for body, field in [({"admin": "admin", "passphrase": "short"}, "passphrase"),
                            ({"admin": "bad name!", "passphrase": PASSPHRASE}, "admin"),
                            ({"admin": "admin"}, "passphrase"),
                            ({"passphrase": PASSPHRASE}, "admin")]:
            r = v.post("/v1/sys/init", body)
            self.assertEqual(r.status, 400, r)
            self.assertIn(field, r.json["fields"])
        r = v.post("/v1/sys/init", {"admin": "admin", "passphrase": PASSPHRASE, "extra": 1})
        self.assertEqual((r.status, r.json["error"]), (400, "unknown_field"))
        self.assertFalse(v.get("/v1/sys/health").json["initialized"])

    def test_restart_then_unlock_keeps_data(self):
        v = self.v.ready()
        for i in range(20):
            self.assertEqual(v.put(f"/v1/secrets/t{i % 3}/app/s{i}",
                                   {"type": "generic", "data": {"v": f"value-{i}"}}).status, 200)
        self.assertEqual(v.stop(), 0)  # SIGTERM: clean exit
        self.assertFalse(os.path.exists(v.sock), "socket removed on shutdown")
        v.start()
        self.assertTrue(v.get("/v1/sys/health").json["locked"], "starts locked")
        self.assertEqual(v.get("/v1/secrets/t0/app/s0").status, 503)
        v.unlock()
        for i in range(20):
            r = v.get(f"/v1/secrets/t{i % 3}/app/s{i}")
            self.assertEqual(r.json["data"], {"v": f"value-{i}"})


class Secrets(VaultTestCase):
    def setUp(self):
        super().setUp()
        self.v.ready()

    def test_every_type_round_trips(self):
        v = self.v
        types = {t["name"] for t in v.get("/v1/types").json["types"]}
        self.assertEqual(types, set(EXAMPLES))
        for name, data in EXAMPLES.items():
            r = v.put(f"/v1/secrets/acme/{name}/main", {"type": name, "data": data})
            self.assertEqual(r.status, 200, (name, r))
            g = v.get(f"/v1/secrets/acme/{name}/main")
            self.assertEqual(g.status, 200)
            self.assertEqual(g.json["type"], name)
            self.assertEqual(g.json["data"], data)
            self.assertEqual(g.json["version"], 1)

    def test_validation_errors_name_each_field(self):
        v = self.v
        cases = [
            ("tactical-rmm", {"url": "http://rmm.acme.example", "api_key": "k"}, ["url"]),
            ("tactical-rmm", {"url": "https://rmm.acme.example"}, ["api_key"]),
            ("tactical-rmm", {"url": "https://u:p@rmm.acme.example", "api_key": "k"}, ["url"]),
            ("tactical-rmm", {"url": "", "api_key": 5}, ["url", "api_key"]),
            ("tactical-rmm", {"url": "https://rmm.acme.example", "api_key": "k", "extra": "x"}, ["extra"]),
            ("slack", {"bot_token": "xoxp-nope", "signing_secret": "zz"}, ["bot_token", "signing_secret"]),
            ("teams", {"tenant_id": "not-a-guid", "client_id": "1b1e3c9e-5f61-4bd3-9a34-0d7b2f7a9c11",
                       "client_secret": "s"}, ["tenant_id"]),
            ("generic", {}, None),
            ("generic", {"ok": 1}, ["ok"]),
        ]
        for t, data, fields in cases:
            r = v.put("/v1/secrets/acme/bad/x", {"type": t, "data": data})
            self.assertEqual(r.status, 400, (t, data, r))
            self.assertEqual(r.json["error"], "invalid")
            if fields:
                self.assertEqual(sorted(r.json["fields"]), sorted(fields), (t, data, r))
            self.assertNotIn("xoxp-nope", r.raw.decode(), "values are never echoed")
        r = v.put("/v1/secrets/acme/bad/x", {"type": "nope", "data": {}})
        self.assertEqual((r.status, list(r.json["fields"])), (400, ["type"]))
        r = v.put("/v1/secrets/acme/bad/x", {"type": "generic"})
        self.assertEqual((r.status, list(r.json["fields"])), (400, ["data"]))
        r = v.put("/v1/secrets/acme/bad/x", {"type": "generic", "data": {"a": "b"}, "metadata": {"n": {"x": 1}}})
        self.assertEqual((r.status, list(r.json["fields"])), (400, ["metadata"]))
        r = v.put("/v1/secrets/acme/bad/x", {"type": "generic", "data": {"a": "b"}, "cas": -1})
        self.assertEqual((r.status, list(r.json["fields"])), (400, ["cas"]))
        # Nothing was stored by any of the refusals.
        self.assertEqual(v.get("/v1/secrets/acme/bad/x").status, 404)
        self.assertEqual(v.get("/v1/secrets/acme?list=1").json["secrets"], [])

    def test_versions_cas_rollback(self):
        v = self.v
        p = "/v1/secrets/acme/psa/autotask"
        d = dict(EXAMPLES["autotask"])
        self.assertEqual(v.put(p, {"type": "autotask", "data": d, "cas": 0}).json["version"], 1)
        self.assertEqual(v.put(p, {"type": "autotask", "data": d, "cas": 0}).status, 409)
        for i in range(2, 5):
            d["secret"] = f"secret-v{i}"
            r = v.put(p, {"type": "autotask", "data": d, "cas": i - 1})
            self.assertEqual(r.json["version"], i, r)
        r = v.put(p, {"type": "autotask", "data": d, "cas": 2})
        self.assertEqual((r.status, r.json["error"]), (409, "conflict"))
        self.assertEqual(v.get(p).json["version"], 4)
        self.assertEqual(v.get(p + "?version=1").json["data"]["secret"], "sec-e2e-at")
        self.assertEqual(v.get(p + "?version=3").json["data"]["secret"], "secret-v3")
        self.assertEqual(v.get(p + "?version=9").status, 404)
        for bad in ["0", "-1", "abc", "1x", "99999999999"]:
            self.assertEqual(v.get(p + "?version=" + bad).status, 400, bad)
        vs = v.get(p + "?versions=1").json
        self.assertEqual([x["version"] for x in vs["versions"]], [1, 2, 3, 4])
        self.assertEqual([x["current"] for x in vs["versions"]], [False, False, False, True])
        self.assertNotIn("data", json.dumps(vs))

        r = v.post(p + "/rollback", {"version": 2})
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["version"], r.json["rolled_back_from"]), (5, 2))
        g = v.get(p).json
        self.assertEqual((g["version"], g["data"]["secret"]), (5, "secret-v2"))
        self.assertEqual(v.post(p + "/rollback", {"version": 77}).status, 404)
        self.assertEqual(v.post(p + "/rollback", {"version": 1, "cas": 4}).status, 409)
        self.assertEqual(v.post(p + "/rollback", {"version": 0}).status, 400)
        self.assertEqual(v.get(p).json["version"], 5, "failed rollbacks changed nothing")
        # The type of a secret cannot change.
        r = v.put(p, {"type": "generic", "data": {"a": "b"}})
        self.assertEqual((r.status, r.json["error"]), (409, "type_mismatch"))

    def test_metadata_kept_and_replaced(self):
        v = self.v
        p = "/v1/secrets/acme/chat/slack"
        v.put(p, {"type": "slack", "data": EXAMPLES["slack"], "metadata": {"owner": "noc", "max_age": "90d"}})
        v.put(p, {"type": "slack", "data": EXAMPLES["slack"]})
        self.assertEqual(v.get(p).json["metadata"], {"owner": "noc", "max_age": "90d"})
        v.put(p, {"type": "slack", "data": EXAMPLES["slack"], "metadata": {"owner": "ops"}})
        self.assertEqual(v.get(p).json["metadata"], {"owner": "ops"})

    def test_list(self):
        v = self.v
        for path in ["acme/rmm/a", "acme/rmm/b", "acme/rmm-old/c", "acme/psa/d", "globex/rmm/a"]:
            self.assertEqual(v.put("/v1/secrets/" + path, {"type": "generic", "data": {"k": "v"}}).status, 200)
        names = lambda prefix: [s["path"] for s in v.get(f"/v1/secrets/{prefix}?list=1").json["secrets"]]
        self.assertEqual(names("acme/rmm"), ["acme/rmm/a", "acme/rmm/b"])
        self.assertEqual(names("acme"), ["acme/psa/d", "acme/rmm-old/c", "acme/rmm/a", "acme/rmm/b"])
        self.assertEqual(names("initech"), [])
        everything = v.get("/v1/secrets?list=1").json["secrets"]
        self.assertEqual(len(everything), 5)
        self.assertNotIn('"k"', json.dumps(everything), "list never returns data")
        self.assertEqual(v.get("/v1/secrets/acme/../x?list=1").status, 400)

    def test_delete_and_destroy(self):
        v = self.v
        p = "/v1/secrets/acme/rmm/tactical"
        v.put(p, {"type": "tactical-rmm", "data": TRMM})
        v.put(p, {"type": "tactical-rmm", "data": TRMM})
        r = v.delete(p)
        self.assertEqual(r.json, {"path": "acme/rmm/tactical", "deleted": True, "destroyed": False})
        self.assertEqual(v.get(p).status, 404)
        self.assertEqual(v.get("/v1/secrets/acme?list=1").json["secrets"], [])
        self.assertEqual(v.delete(p).status, 404, "already deleted")
        # Writing revives it with the next version.
        self.assertEqual(v.put(p, {"type": "tactical-rmm", "data": TRMM}).json["version"], 3)
        self.assertEqual(v.delete(p + "?destroy=1").json["destroyed"], True)
        self.assertEqual(v.get(p).status, 404)
        self.assertEqual(v.get(p + "?versions=1").status, 404)
        self.assertEqual(v.delete(p + "?destroy=1").status, 404)
        # A destroyed path starts again at version 1, with any type.
        self.assertEqual(v.put(p, {"type": "generic", "data": {"a": "b"}}).json["version"], 1)

    def test_routes_methods_and_paths(self):
        v = self.v
        self.assertEqual(v.get("/v1/nope").status, 404)
        self.assertEqual(v.get("/").status, 404)
        self.assertEqual(v.get("/v1/secretsx/acme/a").status, 404)
        r = v.request("PATCH", "/v1/secrets/acme/a/b")
        self.assertEqual((r.status, r.json["error"]), (405, "method_not_allowed"))
        self.assertEqual(v.request("DELETE", "/v1/sys/health").status, 405)
        self.assertEqual(v.post("/v1/secrets/acme/a/b", {"version": 1}).status, 405)
        for bad in ["acme", "acme//x", "acme/./x", "acme/../x", "acme/x/", "acme/sp%20ace", "a/b/c/d/e/f/g/h/i",
                    "acme/" + "x" * 65, "acme/%2e%2e/x"]:
            r = v.put("/v1/secrets/" + bad, {"type": "generic", "data": {"k": "v"}})
            self.assertEqual(r.status, 400, (bad, r))
            self.assertEqual(r.json["error"], "bad_path")
        self.assertEqual(v.get("/v1/secrets/acme/a?bogus=1").status, 400)
        self.assertEqual(v.get("/v1/sys/health?x=1").status, 400)
        self.assertEqual(v.delete("/v1/secrets/acme/a/b?destroy=1&destroy=1").status, 400)

    def test_bad_bodies_are_refused_and_daemon_keeps_serving(self):
        v = self.v
        p = "/v1/secrets/acme/x/y"
        r = v.request("PUT", p, raw_body=b'{"type": "generic", "data": {', headers={"Content-Type": "application/json"})
        self.assertEqual((r.status, r.json["error"]), (400, "bad_json"))
        r = v.request("PUT", p, raw_body=b'{"type":"generic","data":{"a":"b"}}', headers={"Content-Type": "text/plain"})
        self.assertEqual((r.status, r.json["error"]), (415, "unsupported_media_type"))
        r = v.request("PUT", p, raw_body=b'[1,2]', headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 400)
        r = v.request("PUT", p, raw_body=b'{"type":"generic","type":"generic","data":{"a":"b"}}',
                      headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 400, "duplicate keys refused")
        r = v.request("PUT", p, raw_body=b"", headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 400)
        big = json.dumps({"type": "generic", "data": {"a": "x" * 70000}}).encode()
        out = v.raw(b"PUT " + p.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(big) + big)
        self.assertTrue(out.startswith(b"HTTP/1.1 413"), out[:100])
        self.assertIn(b'"too_large"', out)
        # Garbage on the wire: libmicrohttpd drops a connection that is not
        # HTTP at all, and refuses protocol errors itself (vaultd answers
        # those in JSON: e2e_hostile has the whole catalogue).
        for junk in [b"\x00\x01garbage\r\n\r\n", b"GARBAGE\r\n\r\n"]:
            out = v.raw(junk)
            self.assertTrue(out == b"" or out.startswith(b"HTTP/1.1 400"), out[:100])
        out = v.raw(b"PUT /v1/secrets/acme/x/y HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 400"), out[:100])
        out = v.raw(b"GET /v1/sys/health HTTP/9.9\r\nHost: x\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 505"), out[:100])
        # Paths are not percent-decoded: every byte must be literal.
        for raw_path in [b"acme/x%00y", b"acme/%2e%2e/x", b"acme/sp%20ace"]:
            out = v.raw(b"GET /v1/secrets/" + raw_path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertTrue(out.startswith(b"HTTP/1.1 400"), (raw_path, out[:100]))
            self.assertIn(b'"bad_path"', out)
        out = v.raw(b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertRegex(out[:12].decode(), r"HTTP/1.1 41[34]")
        self.assertEqual(v.get(p).status, 404, "nothing stored")
        self.assertEqual(v.get("/v1/sys/health").status, 200, "still serving")

    def test_keep_alive_and_concurrency(self):
        from harness import UnixHTTPConnection
        v = self.v
        conn = UnixHTTPConnection(v.sock)
        for i in range(5):
            self.assertEqual(v.put(f"/v1/secrets/acme/ka/{i}", {"type": "generic", "data": {"i": str(i)}},
                                   conn=conn).status, 200)
        for i in range(5):
            self.assertEqual(v.get(f"/v1/secrets/acme/ka/{i}", conn=conn).json["data"], {"i": str(i)})
        conn.close()
        import threading
        errors = []

        def worker(n):
            try:
                for j in range(10):
                    r = v.put(f"/v1/secrets/t{n}/c/x", {"type": "generic", "data": {"j": str(j)}})
                    if r.status != 200:
                        errors.append(r)
                    g = v.get(f"/v1/secrets/t{n}/c/x")
                    if g.status != 200:
                        errors.append(g)
            except Exception as e:  # noqa
                errors.append(e)
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        self.assertEqual(errors, [])
        for n in range(6):
            self.assertEqual(v.get(f"/v1/secrets/t{n}/c/x").json["version"], 10)

    def test_slow_client_does_not_hold_the_daemon(self):
        v = self.v
        idle = [socket.socket(socket.AF_UNIX) for _ in range(3)]
        for s in idle:
            s.connect(v.sock)
            s.sendall(b"GET /v1/sys/health HTTP/1.1\r\n")  # never finishes the headers
        t0 = time.monotonic()
        self.assertEqual(v.get("/v1/sys/health").status, 200, "others are served meanwhile")
        self.assertLess(time.monotonic() - t0, 2 * SLOW)
        for s in idle:
            s.settimeout(15 * SLOW)
            data = s.recv(100)  # the daemon drops it after request_timeout (5 s here, times SLOW)
            self.assertIn(data, (b"",) if not data else (data,))
            s.close()


def as_uid(uid, gid, fn):
    """Runs fn() in a child process under uid/gid; returns what it returned (status codes)."""
    import pickle
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            out = pickle.dumps(fn())
        except BaseException as e:  # noqa
            out = pickle.dumps(repr(e))
        os.write(w, out)
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        data += b
    os.close(r)
    os.waitpid(pid, 0)
    return pickle.loads(data)


class Identity(VaultTestCase):
    def test_other_uid_is_refused_until_rbac(self):
        import grp
        import pwd
        nobody = pwd.getpwnam("nobody")
        gid = grp.getgrnam("nogroup").gr_gid
        with open(self.v.conf) as f:
            conf = f.read()
        self.v.write_config(conf.replace("socket_mode = 0660",
                                                             "socket_mode = 0660\nsocket_group = nogroup"))
        os.chmod(self.v.dir, 0o711)  # let the other uid reach the socket
        v = self.v.ready()
        self.assertEqual(os.stat(v.sock).st_gid, gid)
        v.put("/v1/secrets/acme/rmm/tactical", {"type": "tactical-rmm", "data": TRMM})

        def probe():
            return [v.get("/v1/sys/health").status,
                    v.get("/v1/secrets/acme/rmm/tactical").status,
                    v.get("/v1/secrets/acme/nothing/here").status,
                    v.put("/v1/secrets/acme/rmm/tactical", {"type": "tactical-rmm", "data": TRMM}).status,
                    v.get("/v1/secrets/acme?list=1").status,
                    v.post("/v1/sys/lock").status,
                    v.post("/v1/sys/init", {"admin": "x", "passphrase": PASSPHRASE}).status,
                    v.get("/v1/types").status]
        # Health answers; everything else is 403, whether the path exists or not.
        self.assertEqual(as_uid(nobody.pw_uid, gid, probe), [200, 403, 403, 403, 403, 403, 403, 403])
        self.assertEqual(v.get("/v1/secrets/acme/rmm/tactical").json["version"], 1, "nothing changed")
        self.assertFalse(v.get("/v1/sys/health").json["locked"])

    def test_process_hardening(self):
        v = self.v.ready()
        limits = open(f"/proc/{v.proc.pid}/limits").read()
        core = [l for l in limits.splitlines() if l.startswith("Max core file size")][0]
        self.assertEqual(core.split()[4:6], ["0", "0"], core)
        status = open(f"/proc/{v.proc.pid}/status").read()
        self.assertIn("NoNewPrivs:\t1", status)
        # Non-dumpable: /proc/PID/mem of a non-dumpable process belongs to root
        # and the process's fds beyond the standard ones are only its own.
        fds = os.listdir(f"/proc/{v.proc.pid}/fd")
        self.assertLess(len(fds), 64)


class Secrecy(VaultTestCase):
    def test_planted_value_never_on_disk_or_in_log(self):
        v = self.v.ready()
        marker = "PLANTED-" + os.urandom(12).hex()
        for i in range(3):
            self.assertEqual(v.put(f"/v1/secrets/acme/leak/{i}",
                                   {"type": "tactical-rmm", "data": {"url": "https://x.example",
                                                                    "api_key": marker}}).status, 200)
            self.assertEqual(v.get(f"/v1/secrets/acme/leak/{i}").json["data"]["api_key"], marker)
        # A failing request carrying the value must not log it either.
        v.put("/v1/secrets/acme/leak/bad", {"type": "tactical-rmm", "data": {"url": "http://x", "api_key": marker}})
        raw_marker = marker.encode()
        for f in os.listdir(v.dir):
            path = os.path.join(v.dir, f)
            if os.path.isfile(path):
                with open(path, "rb") as fh:
                    self.assertNotIn(raw_marker, fh.read(), f"value found in {f}")
        self.assertTrue(os.path.exists(v.db + "-wal") or os.path.getsize(v.db) > 0)
        self.assertNotIn(PASSPHRASE.encode(), open(v.log, "rb").read())
        v.stop()
        for f in os.listdir(v.dir):
            path = os.path.join(v.dir, f)
            if os.path.isfile(path):
                self.assertNotIn(raw_marker, open(path, "rb").read(), f"value found in {f} after stop")


class Durability(VaultTestCase):
    def test_kill9_during_acknowledged_writes(self):
        import subprocess
        import threading
        v = self.v.ready()
        acked = {}
        stop = threading.Event()

        def writer(n):
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    r = v.put(f"/v1/secrets/acme/dur/w{n}", {"type": "generic", "data": {"i": str(i)}})
                except OSError:
                    return
                if r.status == 200:
                    acked[n] = (r.json["version"], str(i))
        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        [t.start() for t in threads]
        time.sleep(2.0)
        v.kill9()
        stop.set()
        [t.join() for t in threads]
        self.assertTrue(acked, "some writes were acknowledged")
        out = subprocess.run(["sqlite3", v.db, "PRAGMA integrity_check;"], capture_output=True, text=True)
        self.assertEqual(out.stdout.strip(), "ok", out)
        v.start()
        v.unlock()
        for n, (version, value) in acked.items():
            r = v.get(f"/v1/secrets/acme/dur/w{n}?version={version}")
            self.assertEqual(r.status, 200, (n, version, r))
            self.assertEqual(r.json["data"], {"i": value})
            self.assertGreaterEqual(v.get(f"/v1/secrets/acme/dur/w{n}").json["version"], version)


class HashUpgrade(VaultTestCase):
    def test_argon2_costs_raised_in_config_upgrade_the_hash_at_next_login(self):
        import subprocess
        v = self.v.ready()
        phc = lambda: subprocess.run(["sqlite3", v.db, "SELECT phc FROM users WHERE name='admin'"],
                                     capture_output=True, text=True).stdout.strip()
        self.assertIn("m=8192,t=1,", phc())
        v.stop()
        with open(v.conf) as f:
            conf = f.read()
        v.write_config(conf.replace("argon2_iterations = 1", "argon2_iterations = 2"))
        v.start()
        v.unlock()
        self.assertIn("m=8192,t=2,", phc())
        v.stop()
        v.start()
        v.unlock()  # the upgraded hash verifies


class FifoReader:
    """Reads a FIFO on a thread of its own. O_RDWR: the FIFO never reads as
    end of file between the daemon's per-record opens."""

    def __init__(self, path):
        import threading
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        self.data = b""
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        import select
        while not self.stop.is_set():
            if not select.select([self.fd], [], [], 0.05)[0]:
                continue
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                continue
            with self.lock:
                self.data += chunk

    def lines(self):
        with self.lock:
            return [json.loads(l) for l in self.data.decode().splitlines()]

    def wait_for(self, request_id, timeout=10 * SLOW):
        """The lines read, once the one of request_id is among them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.lines()
            if any(l["request_id"] == request_id for l in lines):
                return lines
            time.sleep(0.02)
        raise AssertionError(f"no mirror line for request {request_id}")

    def close(self):
        self.stop.set()
        self.thread.join()
        os.close(self.fd)


class AuditMirror(VaultTestCase):
    def _mirror(self, policy, extra=""):
        path = os.path.join(self.v.dir, "audit.jsonl")
        with open(self.v.conf) as f:
            conf = f.read()
        self.v.write_config(conf + f"\n[audit]\njsonl_path = {path}\njsonl_on_failure = {policy}\n{extra}")
        return path

    def _stuck_fifo_mirror(self, policy):
        """A vault whose mirror becomes, once it is ready, a FIFO nobody reads:
        the daemon's open() of it hangs until a reader comes."""
        path = self._mirror(policy, "jsonl_timeout_ms = 200\n")
        v = self.v.ready()
        before = v.get("/v1/sys/metrics").json["audit_mirror_failures"]
        os.unlink(path)
        os.mkfifo(path, 0o600)
        return v, path, before

    def test_mirror_matches_the_chain_and_holds_no_secret(self):
        path = self._mirror("refuse")
        v = self.v.ready()
        marker = "MIRROR-" + os.urandom(8).hex()
        r = v.put("/v1/secrets/acme/m/x", {"type": "generic", "data": {"k": marker}})
        self.assertEqual(r.status, 200)
        self.assertEqual(v.get("/v1/secrets/acme/m/x").json["data"]["k"], marker)
        with open(path) as f:
            lines = [json.loads(l) for l in f]
        records = v.get("/v1/audit?limit=1000").json["records"]
        # Every committed record is mirrored, in order, with the same hash;
        # the mirror may hold the audit read itself too.
        self.assertEqual([l["hash"] for l in lines[:len(records)]], [r["hash"] for r in records])
        write = [l for l in lines if l["request_id"] == r.headers["X-Request-Id"]]
        self.assertEqual([(w["action"], w["path"], w["result"]) for w in write],
                         [("secret.write", "acme/m/x", "allowed")])
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        with open(path) as f:
            mirrored = f.read()
        self.assertNotIn(marker, mirrored)
        self.assertNotIn(PASSPHRASE, mirrored)

    def test_unwritable_mirror_fails_closed(self):
        path = self._mirror("refuse")
        v = self.v.ready()
        os.unlink(path)
        os.mkdir(path)  # now it cannot be opened for writing
        r = v.put("/v1/secrets/acme/m/y", {"type": "generic", "data": {"k": "v"}})
        self.assertEqual((r.status, r.json["error"]), (503, "audit_unavailable"), r)
        self.assertEqual(v.get("/v1/secrets/acme/m/y").status, 503)
        os.rmdir(path)
        self.assertEqual(v.get("/v1/secrets/acme/m/y").status, 404, "the refused write left nothing")

    def test_unwritable_mirror_with_continue_keeps_serving(self):
        path = self._mirror("continue")
        self.v.allow_other_uids()
        v = self.v.ready()
        os.unlink(path)
        os.mkdir(path)
        self.assertEqual(v.put("/v1/secrets/acme/m/z", {"type": "generic", "data": {"k": "v"}}).status, 200)
        self.assertEqual(v.get("/v1/secrets/acme/m/z").status, 200)
        self.assertIn("cannot write the audit mirror", v.read_log())
        # ... and counts the failures for monitoring.
        m = v.get("/v1/sys/metrics")
        self.assertEqual(m.status, 200, m)
        self.assertGreaterEqual(m.json["audit_mirror_failures"], 2)
        self.assertIsNotNone(m.json["audit_mirror_last_failure"])
        # One log line for the streak (same cause, within 10 s), not one per
        # request; the recovery is logged with the count left out.
        self.assertEqual(v.read_log().count("cannot write the audit mirror"), 1, v.read_log())
        os.rmdir(path)
        before = v.get("/v1/sys/metrics").json["audit_mirror_failures"]
        self.assertEqual(v.get("/v1/secrets/acme/m/z").status, 200)
        self.assertEqual(v.get("/v1/sys/metrics").json["audit_mirror_failures"], before)
        self.assertRegex(v.read_log(), r"the audit mirror '[^']+' is written again "
                                       r"\(and [1-9]\d* failures not logged since the last line\)")
        # Served while locked too, to a service with audit (locking revokes
        # every session token): monitoring sees the lock.
        self.assertEqual(v.put("/v1/services/monitor", {"uid": os.getuid(), "roles": ["auditor"]}).status, 200)
        self.assertFalse(v.get("/v1/sys/metrics", token=False).json["locked"])
        self.assertEqual(v.post("/v1/sys/lock").status, 200)
        m = v.get("/v1/sys/metrics", token=False)
        self.assertEqual(m.status, 200, m)
        self.assertTrue(m.json["locked"])
        self.assertEqual(m.json["audit_mirror_failures"], before)
        m = v.get("/v1/sys/metrics")        # the admin's token, revoked by the lock
        self.assertEqual((m.status, m.json["error"]), (503, "locked"), "a token while locked: 'locked', not 401")
        st = as_uid(65534, grp.getgrnam("nogroup").gr_gid, lambda: v.get("/v1/sys/metrics", token=False).status)
        self.assertEqual(st, 403, "an unbound uid still may not")

    def test_stuck_fifo_mirror_fails_closed_without_freezing(self):
        import threading
        v, path, _ = self._stuck_fifo_mirror("refuse")
        put = {}
        t0 = time.monotonic()
        t = threading.Thread(target=lambda: put.update(
            r=v.put("/v1/secrets/acme/m/y", {"type": "generic", "data": {"k": "v"}})))
        t.start()
        # Health needs neither the writer nor the mirror: it answers while
        # the PUT waits for the mirror, and after.
        self.assertEqual(v.get("/v1/sys/health").status, 200)
        t.join(10 * SLOW)
        self.assertFalse(t.is_alive(), "the PUT did not come back")
        r = put["r"]
        self.assertEqual((r.status, r.json["error"]), (503, "audit_unavailable"), r)
        self.assertLess(time.monotonic() - t0, 5 * SLOW)
        self.assertEqual(v.get("/v1/sys/health").status, 200)
        # The mirror is still stuck on the PUT's record: the next ones are
        # refused at once, not after another timeout.
        r2 = v.put("/v1/secrets/acme/m/y2", {"type": "generic", "data": {"k": "v"}})
        self.assertEqual((r2.status, r2.json["error"]), (503, "audit_unavailable"), r2)
        log = v.read_log()
        self.assertIn("did not answer within 200 ms", log)
        self.assertIn("still stuck on an earlier record", log)

        reader = FifoReader(path)
        try:
            deadline = time.monotonic() + 10 * SLOW
            while True:
                r3 = v.put("/v1/secrets/acme/m/z", {"type": "generic", "data": {"k": "v"}})
                if r3.status == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            self.assertEqual(r3.status, 200, r3)
            self.assertEqual(v.get("/v1/secrets/acme/m/y").status, 404, "the refused write left nothing")
            self.assertEqual(v.get("/v1/secrets/acme/m/y2").status, 404)
            audit = v.get("/v1/audit?limit=1000")
            lines = reader.wait_for(audit.headers["X-Request-Id"])
            ids = [l["request_id"] for l in lines]
            self.assertIn(r3.headers["X-Request-Id"], ids)
            # The lines given up on were not written late.
            self.assertNotIn(r.headers["X-Request-Id"], ids)
            self.assertNotIn(r2.headers["X-Request-Id"], ids)
            # The mirror goes on with the chain, in order, from where the
            # reader came (and holds the audit read itself too).
            hashes = [rec["hash"] for rec in audit.json["records"]]
            mirrored = [l["hash"] for l in lines]
            i = hashes.index(mirrored[0])
            self.assertEqual(mirrored[:len(hashes) - i], hashes[i:])
        finally:
            reader.close()
        self.assertEqual(v.stop(), 0)

    def test_stuck_fifo_mirror_with_continue_keeps_serving(self):
        v, path, before = self._stuck_fifo_mirror("continue")
        t0 = time.monotonic()
        self.assertEqual(v.put("/v1/secrets/acme/m/c", {"type": "generic", "data": {"k": "v"}}).status, 200)
        self.assertEqual(v.get("/v1/secrets/acme/m/c").status, 200)
        self.assertLess(time.monotonic() - t0, 5 * SLOW)
        m = v.get("/v1/sys/metrics")
        self.assertEqual(m.status, 200, m)
        self.assertGreaterEqual(m.json["audit_mirror_failures"], before + 2)
        self.assertIsNotNone(m.json["audit_mirror_last_failure"])
        self.assertIn("did not answer within 200 ms", v.read_log())
        # Shutdown does not wait for the writer stuck in open().
        t0 = time.monotonic()
        self.assertEqual(v.stop(), 0)
        self.assertLess(time.monotonic() - t0, 10 * SLOW)


class HsmErrors(VaultTestCase):
    def test_wrong_pin_unlock_says_why(self):
        v = self.v.ready()
        v.put("/v1/secrets/acme/a/b", {"type": "generic", "data": {"k": "v"}})
        v.stop()
        with open(os.path.join(v.dir, "hsm.pin"), "w") as f:
            f.write("not-the-pin\n")
        v.start()
        r = v.post("/v1/sys/unlock", {"user": ADMIN, "passphrase": PASSPHRASE, "totp": v.fresh_totp(ADMIN)})
        self.assertEqual((r.status, r.json["error"]), (503, "hsm_unavailable"), r)
        self.assertIn("PIN", r.json["message"])
        self.assertTrue(v.get("/v1/sys/health").json["locked"])

    def start_with(self, old, new):
        """vaultd on a config with 'old' replaced by 'new', uninitialised;
        returns (the start-up log, the answer to init)."""
        v = self.v
        conf = open(v.conf).read()
        self.assertIn(old, conf)
        v.write_config(conf.replace(old, new))
        v.start()
        r = v.post("/v1/sys/init", {"admin": ADMIN, "passphrase": PASSPHRASE})
        return v.read_log(), r

    def assert_named(self, log, r, *words):
        self.assertEqual((r.status, r.json["error"]), (503, "hsm_unavailable"), r)
        for w in words:
            self.assertIn(w, r.json["message"], r)
            self.assertIn(w, log)
        self.assertRegex(log, r"error: .*init will fail until it is fixed", "checked at start, before init")
        self.assertEqual(self.v.get("/v1/sys/health").json["initialized"], False)

    def test_pin_file_problems_name_the_file_and_why(self):
        v = self.v
        pin_file = os.path.join(v.dir, "hsm.pin")
        os.chmod(pin_file, 0o640)
        log, r = self.start_with("key_label = vaultd-root", "key_label = vaultd-root")
        self.assert_named(log, r, pin_file, "mode 0640")
        self.assertNotIn(open(pin_file).read().strip(), log + r.raw.decode())

    def test_missing_pin_file_is_named(self):
        missing = os.path.join(self.v.dir, "no-such.pin")
        log, r = self.start_with(f"pin_file = {os.path.join(self.v.dir, 'hsm.pin')}", f"pin_file = {missing}")
        self.assert_named(log, r, missing, "No such file")

    def test_empty_pin_file_is_named(self):
        empty = os.path.join(self.v.dir, "empty.pin")
        fd = os.open(empty, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
        log, r = self.start_with(f"pin_file = {os.path.join(self.v.dir, 'hsm.pin')}", f"pin_file = {empty}")
        self.assert_named(log, r, empty, "empty")

    def test_wrong_module_names_the_path_and_dlerror(self):
        bogus = os.path.join(self.v.dir, "libnot-pkcs11.so")
        with open(bogus, "w") as f:
            f.write("not an ELF file\n")
        from harness import SOFTHSM_MODULE
        log, r = self.start_with(f"module = {SOFTHSM_MODULE}", f"module = {bogus}")
        self.assert_named(log, r, bogus, "dlopen")

    def test_wrong_token_label_is_named(self):
        log, r = self.start_with("token_label = vaultd-test", "token_label = no-such-token")
        self.assert_named(log, r, "no-such-token")

    def test_retired_or_missing_hsm_key_names_label_and_version(self):
        v = self.v.ready()
        v.stop()
        # The token loses the vault's key: a fresh, empty token under the same label and PIN.
        tokens = os.path.join(v.dir, "tokens")
        import shutil
        import subprocess
        shutil.rmtree(tokens)
        os.mkdir(tokens, 0o700)
        with open(os.path.join(v.dir, "hsm.pin")) as f:
            pin = f.read().strip()
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "vaultd-test", "--pin", pin,
                        "--so-pin", "so-" + pin], env=v.env, check=True, stdout=subprocess.DEVNULL)
        v.start()
        r = v.post("/v1/sys/unlock", {"user": ADMIN, "passphrase": PASSPHRASE, "totp": v.fresh_totp(ADMIN)})
        self.assertEqual((r.status, r.json["error"]), (503, "hsm_unavailable"), r)
        self.assertIn("'vaultd-root' with version 1", r.json["message"])
        self.assertRegex(v.read_log(), r"error: .*'vaultd-root' with version 1.*unlock will fail")

    def test_key_label_changed_after_init_is_warned(self):
        v = self.v.ready()
        v.stop()
        v.write_config(open(v.conf).read().replace("key_label = vaultd-root", "key_label = nokey"))
        v.start()
        self.assertRegex(v.read_log(), r"warning: .*key_label is 'nokey', but this vault's root key is wrapped "
                                       r"by HSM key 'vaultd-root' version 1")
        v.unlock()

    def test_pin_from_the_environment_unlocks_and_leaves_it(self):
        """[hsm] pin_env: the PIN is taken at the first open, kept sealed in
        guarded memory for every later one (init, each unlock), and gone from
        the process's environment (its value wiped in place)."""
        v = self.v
        pin_file = os.path.join(v.dir, "hsm.pin")
        with open(pin_file) as f:
            pin = f.read().strip()
        conf = open(v.conf).read().replace(f"pin_file = {pin_file}\n", "pin_env = VAULTD_E2E_PIN\n")
        self.assertIn("pin_env", conf)
        v.write_config(conf)
        v.env["VAULTD_E2E_PIN"] = pin
        v.ready()
        self.assertEqual(v.put("/v1/secrets/acme/env/pin", {"type": "generic", "data": {"k": "v"}}).status, 200)
        self.assertEqual(v.post("/v1/sys/lock").status, 200)
        v.unlock()                      # a second open of the token, from the kept copy
        self.assertEqual(v.get("/v1/secrets/acme/env/pin").json["data"], {"k": "v"})
        if os.environ.get("VAULTD_MEMCHECK_BIN"):
            # Under valgrind /proc/PID/environ is valgrind's start-up block,
            # not the one vaultd wipes: the check means nothing there.
            return
        with open(f"/proc/{v.proc.pid}/environ", "rb") as f:
            environ = f.read()
        # /proc/PID/environ is the start-up block: unsetenv() leaves the name
        # there, but its value was wiped in place.
        self.assertNotIn(pin.encode(), environ)
        self.assertNotIn(b"VAULTD_E2E_PIN=" + pin[:1].encode(), environ)


class Config(VaultTestCase):
    def test_bad_config_names_file_line_and_key(self):
        import subprocess
        v = self.v
        v.write_config(open(v.conf).read() + "\n[server]\nbogus = 1\n")
        out = subprocess.run([os.environ.get("VAULTD_BIN", "vaultd"), "-c", v.conf, "-f"], env=v.env,
                             capture_output=True, text=True, timeout=20)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn(v.conf, out.stderr)
        self.assertIn("bogus", out.stderr)
        self.assertRegex(out.stderr, r":\d+:")

    def test_world_writable_config_refused(self):
        import subprocess
        v = self.v
        os.chmod(v.conf, 0o666)
        out = subprocess.run([os.environ.get("VAULTD_BIN", "vaultd"), "-c", v.conf, "-f"], env=v.env,
                             capture_output=True, text=True, timeout=20)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("writable", out.stderr)

    def test_version_and_help(self):
        import subprocess
        b = os.environ.get("VAULTD_BIN", "vaultd")
        out = subprocess.run([b, "--version"], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0)
        self.assertRegex(out.stdout, r"^vaultd \d+\.\d+\.\d+")
        out = subprocess.run([b, "--help"], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0)
        self.assertIn("--dev", out.stdout)
        self.assertEqual(subprocess.run([b], capture_output=True).returncode, 2)
        self.assertEqual(subprocess.run([b, "--frobnicate"], capture_output=True).returncode, 2)


if __name__ == "__main__":
    main()
