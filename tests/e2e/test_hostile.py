#!/usr/bin/env python3
"""vaultd end to end: the hostile-input catalogue (issue 15, point 3).

A table of malformed and hostile requests, each sent over the Unix socket as
raw bytes (so malformed HTTP reaches the daemon exactly as written) to one
daemon, initialised, unlocked and with an admin session, so that requests
reach the real handlers rather than a 401. For every entry:

  - the status is the one the table names, and the body is JSON in the API's
    error shape ({"error": <the code the table names>, "message": <string>},
    Content-Type application/json) -- for malformed HTTP too;
  - the daemon still answers GET /v1/sys/health;
  - a digest of every row of every table of the store (opened read-only) is
    unchanged, but for the audit log, which may only have grown by the one
    record of this request's denial: its request id and status are the
    reply's, and GET /v1/audit/verify says the chain verifies with that count.

The one class of entry that gets no reply at all: a request line without a
request target ("GET", "GARBAGE", a line that starts with a space or a NUL).
libmicrohttpd 0.9.75 closes such a connection without queueing any response
(it is not HTTP), so there is nothing to make JSON; those entries assert the
close, the daemon still serving and nothing changed (NO_REPLY below).
"""
import hashlib
import json
import os
import socket
import sqlite3
import time
import unittest

from harness import Vault, main

NO_REPLY = None                 # expected status: connection closed, nothing sent
TIMEOUT = 2                     # [server] request_timeout here, seconds
MAX_BODY = 65536                # the default [server] max_body
AUDIT_TABLES = ("audit",)       # may grow by the denial record only
# meta's audit_head ("v2:<first id>:<newest id>:<MAC>") moves with every
# audited request: checked to name the newest record, its MAC by verify.
AUDIT_HEAD = "audit_head"

H = b"Host: vaultd\r\n"
JSON_CT = b"Content-Type: application/json\r\n"
GEN = b'{"type":"generic","data":{"k":"v"}}'


def req(method, path, body=None, headers=b"", ctype=JSON_CT, auth=True, close=True):
    """A structured request as bytes: the admin's token unless auth is
    False (or a bytes Authorization value), Content-Length for a body."""
    m = method if isinstance(method, bytes) else method.encode()
    p = path if isinstance(path, bytes) else path.encode()
    out = m + b" " + p + b" HTTP/1.1\r\n" + H
    if auth is True:
        out += b"Authorization: Bearer {TOKEN}\r\n"
    elif auth:
        out += b"Authorization: " + auth + b"\r\n"
    if close:
        out += b"Connection: close\r\n"
    out += headers
    if body is not None:
        b = body if isinstance(body, bytes) else json.dumps(body).encode()
        out += (ctype or b"") + b"Content-Length: %d\r\n\r\n" % len(b) + b
    else:
        out += b"\r\n"
    return out


def put_secret(body, path="/v1/secrets/acme/hostile/x", **kw):
    return req("PUT", path, body, **kw)


def chunked(data, size=None):
    return b"%x\r\n" % (len(data) if size is None else size) + data + b"\r\n0\r\n\r\n"


def raw_put(extra_headers, tail, path=b"/v1/secrets/acme/hostile/x"):
    return (b"PUT " + path + b" HTTP/1.1\r\n" + H + b"Authorization: Bearer {TOKEN}\r\n" + JSON_CT +
            extra_headers + b"\r\n" + tail)


def health(line_tail=b"", headers=b""):
    return b"GET /v1/sys/health" + line_tail + b"\r\n" + headers + b"\r\n"


DEEP = b'{"type":"generic","data":' + b"[" * 30000 + b"]" * 30000 + b"}"
HUGE_CHUNKED = chunked(b'{"type":"generic","data":{"k":"' + b"A" * (MAX_BODY + 10) + b'"}}')
NAME65 = "n" * 65

# (name, category, bytes, expected status, expected error code)
CATALOGUE = [
    # ---- request line ----
    ("request line without a target", "request-line", b"GET\r\n\r\n", NO_REPLY, None),
    ("not HTTP at all", "request-line", b"GARBAGE\r\n\r\n", NO_REPLY, None),
    ("NUL and binary before the method", "request-line", b"\x00\x01garbage\r\n\r\n", NO_REPLY, None),
    ("request line starting with a space", "request-line", b" GET /v1/sys/health HTTP/1.1\r\n" + H + b"\r\n",
     NO_REPLY, None),
    ("HTTP/0.9 style request", "request-line", b"GET /v1/sys/health\r\n\r\n", 400, "bad_request"),
    ("unknown protocol name", "request-line", health(b" HTTX/1.1", H), 400, "bad_request"),
    ("HTTP/2.0 on an HTTP/1 socket", "request-line", health(b" HTTP/2.0", H), 505, "http_version_not_supported"),
    ("HTTP/9.9", "request-line", health(b" HTTP/9.9", H), 505, "http_version_not_supported"),
    ("NUL after the version", "request-line", health(b" HTTP/1.1\x00", H), 400, "bad_request"),
    ("method with a parenthesis", "request-line", b"G(T /v1/sys/health HTTP/1.1\r\n" + H + b"\r\n", 400,
     "bad_request"),
    ("method of 40 letters", "request-line", b"G" * 40 + b" /v1/sys/health HTTP/1.1\r\n" + H + b"\r\n", 400,
     "bad_request"),
    # Bytes MHD keeps in the target reach the router, which finds no route
    # or no valid path, and the refusal is audited (escaped: docs/api.md).
    ("control byte in the target", "request-line", b"GET /v1/sys/he\x01alth HTTP/1.1\r\n" + H + b"\r\n", 404,
     "not_found"),
    ("tab in the target", "request-line", b"GET /v1/sys/he\talth HTTP/1.1\r\n" + H + b"\r\n", 404, "not_found"),
    ("two spaces around the target", "request-line", b"GET  /v1/sys/health  HTTP/1.1\r\n" + H + b"\r\n", 404,
     "not_found"),
    ("escape sequence in the target", "request-line", req("GET", b"/v1/secrets/acme/\x1b[2J\x1b]0;owned\x07"), 400,
     "bad_path"),
    ("DEL in the target", "request-line", req("GET", b"/v1/secrets/acme/a\x7fb"), 400, "bad_path"),
    ("raw UTF-8 in the target", "request-line", req("GET", b"/v1/secrets/acme/caf\xc3\xa9"), 400, "bad_path"),
    ("invalid UTF-8 in the target", "request-line", req("GET", b"/v1/secrets/acme/\xff\xfe"), 400, "bad_path"),
    ("target of 3000 bytes", "request-line", req("GET", "/v1/secrets/acme/" + "a" * 3000), 414, "uri_too_long"),
    ("target over the connection memory", "request-line",
     b"GET /v1/secrets/acme/" + b"a" * 70000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414, "uri_too_long"),

    # ---- header lines ----
    ("header line without a colon", "headers", health(b" HTTP/1.1", H + b"Bogus header line\r\n"), 400,
     "bad_request"),
    ("space before the colon", "headers", health(b" HTTP/1.1", H + b"X-A : b\r\n"), 400, "bad_request"),
    ("byte over 0x7f in a header name", "headers", health(b" HTTP/1.1", H + b"X-\xff\xfe: b\r\n"), 400,
     "bad_request"),
    ("NUL in a header name", "headers", health(b" HTTP/1.1", H + b"X-A\x00B: c\r\n"), 400, "bad_request"),
    ("bare CR in a header value", "headers", health(b" HTTP/1.1", H + b"X-A: b\rc\r\n"), 400, "bad_request"),
    ("control byte in a header value", "headers", health(b" HTTP/1.1", H + b"X-A: \x01\r\n"), 400,
     "bad_request"),
    ("DEL in a header value", "headers", health(b" HTTP/1.1", H + b"X-A: \x7f\r\n"), 400, "bad_request"),
    ("header flood: 5000 headers", "headers",
     health(b" HTTP/1.1", H + b"".join(b"X-%d: y\r\n" % i for i in range(5000))), 431, "headers_too_large"),
    ("one header of 40000 bytes", "headers", health(b" HTTP/1.1", H + b"X-A: " + b"a" * 40000 + b"\r\n"), 431,
     "headers_too_large"),
    ("Host repeated", "headers", health(b" HTTP/1.1", H + H), 400, "bad_request"),
    ("Authorization repeated", "headers",
     req("GET", "/v1/secrets/acme/db/main", headers=b"Authorization: Bearer {TOKEN}\r\n"), 400, "bad_request"),
    ("headers that never end", "headers", health(b" HTTP/1.1", H)[:-2] + b"X-Slow: 1\r\n", 408,
     "request_timeout"),

    # ---- framing and request smuggling ----
    ("Content-Length not a number", "framing", raw_put(b"Content-Length: abc\r\n", b""), 400, "bad_request"),
    ("Content-Length negative", "framing", raw_put(b"Content-Length: -1\r\n", b""), 400, "bad_request"),
    ("Content-Length with a plus sign", "framing", raw_put(b"Content-Length: +35\r\n", GEN), 400, "bad_request"),
    ("Content-Length as hex", "framing", raw_put(b"Content-Length: 0x23\r\n", GEN), 400, "bad_request"),
    ("Content-Length of two numbers", "framing", raw_put(b"Content-Length: 35 35\r\n", GEN), 400, "bad_request"),
    ("Content-Length past 2^64", "framing", raw_put(b"Content-Length: 99999999999999999999999\r\n", b""), 413,
     "too_large"),
    ("Content-Length over max_body", "framing", raw_put(b"Content-Length: %d\r\n" % (MAX_BODY + 1), b""), 413,
     "too_large"),
    ("Content-Length repeated, values differ", "framing",
     raw_put(b"Content-Length: 5\r\nContent-Length: %d\r\n" % len(GEN), GEN), 400, "bad_request"),
    ("Content-Length repeated, same value", "framing",
     raw_put(b"Content-Length: %d\r\nContent-Length: %d\r\n" % (len(GEN), len(GEN)), GEN), 400, "bad_request"),
    ("Content-Length with chunked (CL.TE)", "framing",
     raw_put(b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", chunked(GEN)), 400, "bad_request"),
    ("chunked with Content-Length (TE.CL)", "framing",
     raw_put(b"Transfer-Encoding: chunked\r\nContent-Length: %d\r\n" % len(GEN), chunked(GEN)), 400,
     "bad_request"),
    ("Transfer-Encoding repeated", "framing",
     raw_put(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", chunked(GEN)), 400, "bad_request"),
    ("Transfer-Encoding gzip", "framing", raw_put(b"Transfer-Encoding: gzip\r\n", GEN), 400, "bad_request"),
    ("Transfer-Encoding gzip, chunked", "framing",
     raw_put(b"Transfer-Encoding: gzip, chunked\r\n", chunked(GEN)), 400, "bad_request"),
    ("Transfer-Encoding identity", "framing", raw_put(b"Transfer-Encoding: identity\r\n", GEN), 400,
     "bad_request"),
    ("chunk size not hex", "framing", raw_put(b"Transfer-Encoding: chunked\r\n", b"zz\r\n" + GEN + b"\r\n0\r\n\r\n"),
     400, "bad_request"),
    ("chunk size past 2^64", "framing",
     raw_put(b"Transfer-Encoding: chunked\r\n", b"ffffffffffffffffff\r\n" + GEN + b"\r\n0\r\n\r\n"), 413,
     "too_large"),
    ("chunk data longer than its size", "framing",
     raw_put(b"Transfer-Encoding: chunked\r\n", b"4\r\n" + GEN + b"\r\n0\r\n\r\n"), 400, "bad_request"),
    ("chunked body over max_body", "framing", raw_put(b"Transfer-Encoding: chunked\r\n", HUGE_CHUNKED), 413,
     "too_large"),
    ("body truncated (Content-Length 100, 35 sent)", "framing",
     raw_put(b"Content-Length: 100\r\n", GEN), 408, "request_timeout"),
    ("chunked body truncated", "framing",
     raw_put(b"Transfer-Encoding: chunked\r\n", b"100\r\n" + GEN), 408, "request_timeout"),

    # ---- content types ----
    ("no Content-Type", "content-type", put_secret(GEN, ctype=None), 415, "unsupported_media_type"),
    ("text/plain", "content-type", put_secret(GEN, ctype=b"Content-Type: text/plain\r\n"), 415,
     "unsupported_media_type"),
    ("application/jsonx", "content-type", put_secret(GEN, ctype=b"Content-Type: application/jsonx\r\n"), 415,
     "unsupported_media_type"),
    ("multipart/form-data", "content-type",
     put_secret(GEN, ctype=b"Content-Type: multipart/form-data; boundary=x\r\n"), 415, "unsupported_media_type"),
    ("application/x-www-form-urlencoded", "content-type",
     put_secret(b"type=generic", ctype=b"Content-Type: application/x-www-form-urlencoded\r\n"), 415,
     "unsupported_media_type"),

    # ---- JSON bodies ----
    ("empty body", "json", put_secret(b""), 400, "bad_request"),
    ("malformed JSON", "json", put_secret(b'{"type": "generic", "data": {'), 400, "bad_json"),
    ("trailing garbage after the object", "json", put_secret(GEN + b"x"), 400, "bad_json"),
    ("two objects", "json", put_secret(GEN + GEN), 400, "bad_json"),
    ("top-level array", "json", put_secret(b"[1,2]"), 400, "bad_request"),
    ("top-level string", "json", put_secret(b'"generic"'), 400, "bad_json"),
    ("top-level null", "json", put_secret(b"null"), 400, "bad_json"),
    ("duplicate keys", "json", put_secret(b'{"type":"generic","type":"generic","data":{"k":"v"}}'), 400,
     "bad_json"),
    ("duplicate keys inside data", "json", put_secret(b'{"type":"generic","data":{"k":"v","k":"w"}}'), 400,
     "bad_json"),
    ("nesting 30000 deep", "json", put_secret(DEEP), 400, "bad_json"),
    ("invalid UTF-8 in a string", "json", put_secret(b'{"type":"generic","data":{"k":"\xff\xfe"}}'), 400,
     "bad_json"),
    ("overlong UTF-8 for '/'", "json", put_secret(b'{"type":"generic","data":{"k":"\xc0\xaf"}}'), 400,
     "bad_json"),
    ("lone UTF-16 surrogate escape", "json", put_secret(b'{"type":"generic","data":{"k":"\\ud800"}}'), 400,
     "bad_json"),
    ("\\u0000 in a value", "json", put_secret(b'{"type":"generic","data":{"k":"a\\u0000b"}}'), 400, "bad_json"),
    ("\\u0000 in a key", "json", put_secret(b'{"type":"generic","data":{"k\\u0000":"v"}}'), 400, "bad_json"),
    ("raw NUL byte in the body", "json", put_secret(b'{"type":"generic","data":{"k":"a\x00b"}}'), 400,
     "bad_json"),
    ("raw control byte in a string", "json", put_secret(b'{"type":"generic","data":{"k":"a\x01b"}}'), 400,
     "bad_json"),
    ("byte order mark before the object", "json", put_secret(b"\xef\xbb\xbf" + GEN), 400, "bad_json"),
    ("unknown top-level field", "json", put_secret({"type": "generic", "data": {"k": "v"}, "evil": 1}), 400,
     "unknown_field"),
    ("type as a number", "json", put_secret({"type": 7, "data": {"k": "v"}}), 400, "invalid"),
    ("unknown type", "json", put_secret({"type": "no-such-type", "data": {"k": "v"}}), 400, "invalid"),
    ("data as a string", "json", put_secret({"type": "generic", "data": "k=v"}), 400, "invalid"),
    ("data value a number", "json", put_secret({"type": "generic", "data": {"k": 5}}), 400, "invalid"),
    ("data value escaped control character", "json", put_secret({"type": "generic", "data": {"k": "a\u0001b"}}),
     400, "invalid"),
    ("data key with a space", "json", put_secret({"type": "generic", "data": {"a b": "v"}}), 400, "invalid"),
    ("data key of 65 characters", "json", put_secret({"type": "generic", "data": {NAME65: "v"}}), 400, "invalid"),
    ("data value over the type's limit", "json", put_secret({"type": "generic", "data": {"k": "v" * 300000}}),
     413, "too_large"),
    ("cas as a string", "json", put_secret({"type": "generic", "data": {"k": "v"}, "cas": "3"}), 400, "invalid"),
    ("cas negative", "json", put_secret({"type": "generic", "data": {"k": "v"}, "cas": -1}), 400, "invalid"),
    ("cas fractional", "json", put_secret({"type": "generic", "data": {"k": "v"}, "cas": 1.5}), 400, "invalid"),
    ("cas past 2^64", "json", put_secret(b'{"type":"generic","data":{"k":"v"},"cas":99999999999999999999}'),
     400, "bad_json"),
    ("number 1e400", "json", put_secret(b'{"type":"generic","data":{"k":"v"},"cas":1e400}'), 400, "bad_json"),
    ("metadata nested object", "json",
     put_secret({"type": "generic", "data": {"k": "v"}, "metadata": {"o": {"x": 1}}}), 400, "invalid"),
    ("metadata key with a control character", "json",
     put_secret({"type": "generic", "data": {"k": "v"}, "metadata": {"a\u0007": "x"}}), 400, "invalid"),
    ("metadata value with a C1 control", "json",
     put_secret({"type": "generic", "data": {"k": "v"}, "metadata": {"owner": "a\u0085b"}}), 400, "invalid"),
    ("metadata of 33 keys", "json",
     put_secret({"type": "generic", "data": {"k": "v"}, "metadata": {f"m{i}": "x" for i in range(33)}}), 400,
     "invalid"),
    ("metadata key of 65 characters", "json",
     put_secret({"type": "generic", "data": {"k": "v"}, "metadata": {NAME65: "x"}}), 400, "invalid"),
    ("metadata max_age not a duration", "json",
     put_secret({"type": "generic", "data": {"k": "v"}, "metadata": {"max_age": "forever"}}), 400, "invalid"),
    ("stage unknown", "json", put_secret({"type": "generic", "data": {"k": "v"}, "stage": "bogus"}), 400,
     "invalid"),
    ("unlock with session not a boolean", "json",
     req("POST", "/v1/sys/unlock", {"user": "admin", "passphrase": "x" * 12, "session": "yes"}, auth=False), 400,
     "invalid"),
    ("login user as an array", "json",
     req("POST", "/v1/auth/login", {"user": ["admin"], "passphrase": "x" * 12}, auth=False), 400, "invalid"),
    ("role rules as a string", "json", req("PUT", "/v1/roles/hostile", {"rules": "everything"}), 400, "invalid"),
    ("service uid as a string", "json", req("PUT", "/v1/services/hostile", {"uid": "0", "roles": []}), 400,
     "invalid"),
    ("service uid past 2^32", "json", req("PUT", "/v1/services/hostile", {"uid": 2 ** 32, "roles": []}), 400,
     "invalid"),

    # ---- paths and percent-encoding ----
    ("dot-dot segment", "paths", put_secret(GEN, path="/v1/secrets/acme/../x"), 400, "bad_path"),
    ("percent-encoded dot-dot", "paths", put_secret(GEN, path="/v1/secrets/acme/%2e%2e/x"), 400, "bad_path"),
    ("percent-encoded slash", "paths", put_secret(GEN, path="/v1/secrets/acme/a%2Fb"), 400, "bad_path"),
    ("percent-encoded NUL", "paths", req("GET", "/v1/secrets/acme/x%00y"), 400, "bad_path"),
    ("percent-encoded UTF-8", "paths", req("GET", "/v1/secrets/acme/caf%C3%A9"), 400, "bad_path"),
    ("double percent-encoding", "paths", req("GET", "/v1/secrets/acme/%252e%252e"), 400, "bad_path"),
    ("dot segment", "paths", put_secret(GEN, path="/v1/secrets/acme/./x"), 400, "bad_path"),
    ("empty segment", "paths", put_secret(GEN, path="/v1/secrets/acme//x"), 400, "bad_path"),
    ("trailing slash", "paths", put_secret(GEN, path="/v1/secrets/acme/x/"), 400, "bad_path"),
    ("backslash", "paths", put_secret(GEN, path="/v1/secrets/acme/a\\b"), 400, "bad_path"),
    ("tenant only", "paths", put_secret(GEN, path="/v1/secrets/acme"), 400, "bad_path"),
    ("segment of 65 characters", "paths", put_secret(GEN, path="/v1/secrets/acme/" + NAME65), 400, "bad_path"),
    ("nine segments", "paths", put_secret(GEN, path="/v1/secrets/a/b/c/d/e/f/g/h/i"), 400, "bad_path"),
    ("rotate kek of two segments", "paths", req("POST", "/v1/rotate/kek/acme/x", {}), 400, "bad_path"),

    # ---- names ----
    ("user name with a space", "names", req("GET", "/v1/users/a%20b"), 400, "bad_name"),
    ("user name of 65 characters", "names", req("GET", "/v1/users/" + NAME65), 400, "bad_name"),
    ("user name '..'", "names", req("DELETE", "/v1/users/.."), 400, "bad_name"),
    ("role name with a NUL", "names", req("PUT", "/v1/roles/a%00b", {"rules": []}), 400, "bad_name"),
    ("service name with a slash", "names", req("GET", "/v1/services/a%2Fb"), 400, "bad_name"),
    ("job id not a number", "names", req("GET", "/v1/rotate/jobs/abc"), 400, "bad_request"),
    ("job id of 19 digits", "names", req("GET", "/v1/rotate/jobs/" + "9" * 19), 400, "bad_request"),

    # ---- query strings ----
    ("unknown query parameter", "query", req("GET", "/v1/secrets/acme/db/main?bogus=1"), 400, "bad_request"),
    ("repeated query parameter", "query", req("GET", "/v1/secrets/acme/db/main?version=1&version=1"), 400,
     "bad_request"),
    ("version not a number", "query", req("GET", "/v1/secrets/acme/db/main?version=abc"), 400, "bad_request"),
    ("version negative", "query", req("GET", "/v1/secrets/acme/db/main?version=-1"), 400, "bad_request"),
    ("version past 2^32", "query", req("GET", "/v1/secrets/acme/db/main?version=99999999999"), 400,
     "bad_request"),
    ("stage and version together", "query", req("GET", "/v1/secrets/acme/db/main?stage=current&version=1"), 400,
     "bad_request"),
    ("audit limit 0", "query", req("GET", "/v1/audit?limit=0"), 400, "bad_request"),
    ("audit limit 1001", "query", req("GET", "/v1/audit?limit=1001"), 400, "bad_request"),
    ("audit order sideways", "query", req("GET", "/v1/audit?order=sideways"), 400, "bad_request"),
    ("audit since not a number", "query", req("GET", "/v1/audit?since=yesterday"), 400, "bad_request"),
    ("health with a query", "query", req("GET", "/v1/sys/health?x=1"), 400, "bad_request"),

    # ---- routes and methods ----
    ("unknown route", "routes", req("GET", "/v1/nope"), 404, "not_found"),
    ("root", "routes", req("GET", "/"), 404, "not_found"),
    ("prefix look-alike", "routes", req("GET", "/v1/secretsx/acme/a"), 404, "not_found"),
    ("absolute-form target", "routes", req("GET", "http://vaultd/v1/sys/health"), 404, "not_found"),
    ("asterisk-form target", "routes", req("OPTIONS", "*"), 404, "not_found"),
    ("CONNECT", "routes", req("CONNECT", "vaultd:80"), 404, "not_found"),
    ("PATCH on a secret", "routes", req("PATCH", "/v1/secrets/acme/db/main", {}), 405, "method_not_allowed"),
    ("DELETE on health", "routes", req("DELETE", "/v1/sys/health"), 405, "method_not_allowed"),
    ("TRACE on a secret", "routes", req("TRACE", "/v1/secrets/acme/db/main"), 405, "method_not_allowed"),
    ("lower-case method", "routes", req("get", "/v1/sys/health"), 405, "method_not_allowed"),
    ("invented method", "routes", req("BREW", "/v1/secrets/acme/db/main"), 405, "method_not_allowed"),
    ("POST on a secret", "routes", req("POST", "/v1/secrets/acme/db/main", {"version": 1}), 405,
     "method_not_allowed"),

    # ---- tokens ----
    ("token too short", "tokens", req("GET", "/v1/auth/self", auth=b"Bearer vt.abc"), 401, "unauthorized"),
    ("token of 65 hex digits", "tokens", req("GET", "/v1/auth/self", auth=b"Bearer vt." + b"a" * 65), 401,
     "unauthorized"),
    ("token outside the hex alphabet", "tokens", req("GET", "/v1/auth/self", auth=b"Bearer vt." + b"g" * 64), 401,
     "unauthorized"),
    ("token without its prefix", "tokens", req("GET", "/v1/auth/self", auth=b"Bearer " + b"a" * 64), 401,
     "unauthorized"),
    ("well-formed unknown token", "tokens", req("GET", "/v1/auth/self", auth=b"Bearer vt." + b"0" * 64), 401,
     "unauthorized"),
    ("Basic credentials", "tokens", req("GET", "/v1/auth/self", auth=b"Basic YWRtaW46YWRtaW4="), 401,
     "unauthorized"),
    ("Bearer with no token", "tokens", req("GET", "/v1/auth/self", auth=b"Bearer"), 401, "unauthorized"),
    ("token with a percent escape", "tokens", req("GET", "/v1/auth/self", auth=b"Bearer vt.%00" + b"a" * 61), 401,
     "unauthorized"),
]


class Reply:
    def __init__(self, raw):
        self.raw = raw
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        self.status = int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None
        self.headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()


def exchange(sock_path, data, timeout):
    """Sends data and reads one reply (to its Content-Length) or until the
    daemon closes; b"" if it closed without a byte."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path)
    buf = b""
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass            # answered before the rest was read
        while True:
            head, sep, body = buf.partition(b"\r\n\r\n")
            if sep:
                cl = Reply(buf).headers.get("content-length")
                if cl is not None and cl.isdigit() and len(body) >= int(cl):
                    return buf[:len(head) + 4 + int(cl)]
            try:
                b = s.recv(65536)
            except socket.timeout:
                raise AssertionError(f"no complete reply within {timeout} s; got {buf[:300]!r}")
            except ConnectionResetError:
                return buf
            if not b:
                return buf
            buf += b
    finally:
        s.close()


class HostileCatalogue(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.v = v = Vault()
        with open(v.conf) as f:
            conf = f.read()
        v.write_config(conf.replace("request_timeout = 5\n", f"request_timeout = {TIMEOUT}\n", 1))
        v.ready()
        assert v.put("/v1/secrets/acme/db/main", {"type": "generic", "data": {"k": "v"}}).status == 200
        cls.db = sqlite3.connect(f"file:{v.db}?mode=ro", uri=True)

    @classmethod
    def tearDownClass(cls):
        cls.db.close()
        cls.v.cleanup()

    def snapshot(self):
        """(digest of every non-audit row, audit row count, newest audit row)."""
        db = self.db
        h = hashlib.sha256()
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        for t in tables:
            if t in AUDIT_TABLES:
                continue
            h.update(t.encode() + b"\0")
            for row in db.execute(f'SELECT * FROM "{t}" ORDER BY 1, 2' if t != "meta" else
                                  "SELECT * FROM meta WHERE key != ? ORDER BY key",
                                  () if t != "meta" else (AUDIT_HEAD,)):
                h.update(repr(row).encode() + b"\n")
        n = db.execute("SELECT count(*) FROM audit").fetchone()[0]
        last = db.execute("SELECT id, status, request_id, result FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        head = db.execute("SELECT value FROM meta WHERE key = ?", (AUDIT_HEAD,)).fetchone()[0]
        self.assertEqual(int(head.split(":")[2]), last[0], f"{AUDIT_HEAD} names the newest record")
        return h.hexdigest(), n, last

    def run_entry(self, name, data, status, code):
        v = self.v
        data = data.replace(b"{TOKEN}", v.token.encode())
        before = self.snapshot()
        t0 = time.monotonic()
        out = exchange(v.sock, data, TIMEOUT + 3)
        took = time.monotonic() - t0
        if status is NO_REPLY:
            self.assertEqual(out, b"", "closed without a reply")
        else:
            r = Reply(out)
            self.assertEqual(r.status, status, out[:300])
            self.assertEqual(r.headers.get("content-type"), "application/json", out[:300])
            self.assertNotIn(b"<html", out.lower())
            self.assertEqual(int(r.headers.get("content-length", -1)), len(r.body), out[:300])
            j = json.loads(r.body)
            self.assertIsInstance(j, dict, r.body)
            self.assertEqual(j.get("error"), code, r.body)
            self.assertIsInstance(j.get("message"), str, r.body)
            self.assertTrue(set(j) <= {"error", "message", "fields"}, r.body)
            self.assertRegex(r.headers.get("x-request-id", ""), r"^[0-9a-f]{32}$")
        if status in (408, NO_REPLY):
            self.assertLess(took, TIMEOUT + 1, "closed at request_timeout")
        else:
            self.assertLess(took, TIMEOUT, "answered at once, not at the deadline")
        # Still serving.
        self.assertEqual(v.get("/v1/sys/health", token=False).status, 200)
        # The store: unchanged; the audit log grew by this denial at most.
        after = self.snapshot()
        self.assertEqual(after[0], before[0], "a table other than the audit log changed")
        grew = after[1] - before[1]
        self.assertIn(grew, (0, 1), "the audit log grew by more than one record")
        if grew:
            _, st, rid, result = after[2]
            self.assertEqual(st, status, "the record names the status answered")
            self.assertEqual(rid, Reply(out).headers.get("x-request-id"), "the record is this request's")
            self.assertIn(result, ("denied", "failed"))
        ver = v.get("/v1/audit/verify")
        self.assertEqual(ver.status, 200, ver)
        self.assertTrue(ver.json["ok"], ver.json)
        self.assertEqual(ver.json["records"], after[1], ver.json)

    def test_catalogue(self):
        names = [e[0] for e in CATALOGUE]
        self.assertEqual(len(names), len(set(names)), "entry names are distinct")
        self.assertEqual(len({e[2] for e in CATALOGUE}), len(CATALOGUE), "entry requests are distinct")
        self.assertGreaterEqual(len(CATALOGUE), 80)
        t0 = time.monotonic()
        for name, category, data, status, code in CATALOGUE:
            with self.subTest(entry=name, category=category):
                self.run_entry(name, data, status, code)
        print(f"\n{len(CATALOGUE)} entries in {len({e[1] for e in CATALOGUE})} categories, "
              f"{time.monotonic() - t0:.1f} s")
        self.assertIsNone(self.v.proc.poll(), "vaultd still running")


if __name__ == "__main__":
    main()
