#!/usr/bin/env python3
"""Credential types end to end: one credential of every type stored and read
back through the API and through vaultctl put/get (masked by default,
--reveal shows it); an invalid value per type refused with the field named
and the stored credential unchanged; 'vaultctl types [TYPE]'; docs/api.md's
tables checked against GET /v1/types; webhook URLs, which are the secret,
never in the log, the audit records or the database file."""
import glob
import json
import os
import re

import types_table
from cred_examples import INVALID, PRTG_API_TOKEN, VALID
from harness import Vault, VaultTestCase, main
from test_vaultctl import MASK, CtlCase

Vault.spend_recovery_codes = True      # no test here counts recovery codes
SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DOCS = os.path.join(SRC, "docs", "api.md")
COMPLETION = os.path.join(SRC, "dist", "vaultctl.bash-completion")


def values(data):
    return [v for v in data.values()]


class Api(VaultTestCase):
    def setUp(self):
        super().setUp()
        self.v.ready()

    def test_every_type_has_examples(self):
        names = [t["name"] for t in self.v.get("/v1/types").json["types"]]
        self.assertEqual(sorted(names), sorted(VALID))
        self.assertEqual(sorted(names), sorted(INVALID))

    def test_every_type_round_trips_and_each_invalid_value_is_refused(self):
        v = self.v
        for name, data in [*VALID.items(), ("prtg", PRTG_API_TOKEN)]:
            p = f"/v1/secrets/acme/{name}/{len(data)}"
            r = v.put(p, {"type": name, "data": data})
            self.assertEqual(r.status, 200, (name, r))
            g = v.get(p)
            self.assertEqual((g.status, g.json["type"], g.json["data"]), (200, name, data))
        for name, (bad, field, reason) in INVALID.items():
            p = f"/v1/secrets/acme/{name}/{len(VALID[name])}"
            r = v.put(p, {"type": name, "data": bad})
            self.assertEqual((r.status, r.json["error"]), (400, "invalid"), (name, r))
            self.assertEqual(list(r.json["fields"]), [field], (name, r))
            self.assertIn(reason, r.json["fields"][field], (name, r))
            for value in values(bad):
                self.assertNotIn(value.encode(), r.raw, f"{name}: the refusal echoes a value")
            # Nothing changed: still version 1, the same data.
            g = v.get(p)
            self.assertEqual((g.json["version"], g.json["data"]), (1, VALID[name]), name)
            # And nothing is created on a fresh path.
            self.assertEqual(v.put(f"/v1/secrets/acme/bad/{name}", {"type": name, "data": bad}).status, 400)
            self.assertEqual(v.get(f"/v1/secrets/acme/bad/{name}").status, 404)

    def test_webhook_urls_never_in_log_audit_or_database(self):
        v = self.v
        hooks = [VALID["slack-webhook"]["url"], VALID["teams-webhook"]["url"],
                 VALID["nable-ncentral"]["api_token"]]
        for name in ("slack-webhook", "teams-webhook", "nable-ncentral"):
            self.assertEqual(v.put(f"/v1/secrets/acme/chat/{name}", {"type": name, "data": VALID[name]}).status, 200)
            self.assertEqual(v.get(f"/v1/secrets/acme/chat/{name}").status, 200)
        # A refused webhook URL is not logged either.
        bad = "https://hooks.slack.com.evil.example/services/e2e-refused-hook"
        self.assertEqual(v.put("/v1/secrets/acme/chat/bad", {"type": "slack-webhook", "data": {"url": bad}}).status,
                         400)
        audit = v.get("/v1/audit?limit=1000")
        self.assertEqual(audit.status, 200)
        self.assertTrue(any(r.get("path") == "acme/chat/slack-webhook" for r in audit.json["records"]))
        v.stop()
        files = [v.log, *glob.glob(v.db + "*")]
        for secret in [*hooks, bad]:
            self.assertNotIn(secret.encode(), audit.raw, "in an audit record")
            # The part after the host, which is what makes it a secret.
            tail = (secret.split("/", 3)[3] if secret.startswith("https://") else secret).encode()
            for f in files:
                with open(f, "rb") as fh:
                    self.assertNotIn(tail, fh.read(), f"in {f}")


class Cli(CtlCase):
    def put(self, path, name, data, check=0):
        args = []
        for k, val in data.items():
            args.append(f"{k}=@{self.write_file('field-' + k, val + chr(10))}")  # one trailing newline dropped
        return self.ctl("put", path, "--type", name, *args, check=check)

    def test_every_type_through_vaultctl_masked_then_revealed(self):
        self.init_unlock_login()
        types = {t["name"]: t for t in json.loads(self.ctl("types", "--json", check=0).stdout)["types"]}
        self.assertEqual(sorted(types), sorted(VALID))
        for name, data in [*VALID.items(), ("prtg", PRTG_API_TOKEN)]:
            path = f"acme/{name}/{len(data)}"
            self.put(path, name, data)
            sensitive = {f["name"]: f["sensitive"] for f in types[name]["fields"]}
            shown = self.ctl("get", path, check=0).stdout
            for k, val in data.items():
                if sensitive.get(k, True):
                    self.assertIn(f"{k} = {MASK}", shown, (name, k))
                    self.assertNotIn(val, shown, (name, k))
                else:
                    self.assertIn(f"{k} = {val}", shown, (name, k))
            j = json.loads(self.ctl("get", path, "--json", check=0).stdout)
            self.assertEqual(j["type"], name)
            self.assertEqual(j["data"], {k: MASK if sensitive.get(k, True) else val for k, val in data.items()})
            revealed = self.ctl("get", path, "--reveal", check=0).stdout
            for k, val in data.items():
                if "\n" not in val:
                    self.assertIn(f"{k} = {val}", revealed, (name, k))
            j = json.loads(self.ctl("get", path, "--reveal", "--json", check=0).stdout)
            self.assertEqual(j["data"], data, name)
        # Webhook URLs are sensitive: masked like any key.
        self.assertTrue(all(f["sensitive"] for f in types["slack-webhook"]["fields"]))
        self.assertTrue(all(f["sensitive"] for f in types["teams-webhook"]["fields"]))

    def test_invalid_value_per_type_names_the_field_and_changes_nothing(self):
        self.init_unlock_login()
        for name, (bad, field, reason) in INVALID.items():
            path = f"acme/{name}/main"
            self.put(path, name, VALID[name])
            p = self.put(path, name, bad, check=1)
            self.assertIn(f"{field}: ", p.stderr, name)
            self.assertIn(reason, p.stderr, name)
            for value in values(bad):
                self.assertNotIn(value, p.stderr + p.stdout, f"{name}: a value in the error")
            j = json.loads(self.ctl("get", path, "--reveal", "--json", check=0).stdout)
            self.assertEqual((j["version"], j["data"]), (1, VALID[name]), name)
            self.put(f"acme/bad/{name}", name, bad, check=1)
            self.ctl("get", f"acme/bad/{name}", check=6)

    def test_types_prtg_shows_both_forms(self):
        self.init_unlock_login()
        out = self.ctl("types", "prtg", check=0).stdout
        self.assertRegex(out, r"^prtg: PRTG Network Monitor")
        self.assertRegex(out, r"(?m)^FIELD\s+REQUIRED\s+SENSITIVE\s+MAX\s+FORMAT\s+DESCRIPTION$")
        self.assertRegex(out, r"(?m)^url\s+yes\s+no\s+2048\s+https-url\s")
        self.assertRegex(out, r"(?m)^username\s+in form passhash\s+no\s+256\s+text\s")
        self.assertRegex(out, r"(?m)^passhash\s+in form passhash\s+yes\s+4096\s+text\s")
        self.assertRegex(out, r"(?m)^api_token\s+in form api-token\s+yes\s+4096\s+text\s")
        self.assertRegex(out, r"(?m)^Forms: use exactly one")
        self.assertRegex(out, r"\n\nFormats:\nFORMAT +ACCEPTS\n")
        self.assertNotIn("\\x", out)
        self.assertRegex(out, r"(?m)^api-token\s+api_token\s+an API key")
        self.assertRegex(out, r"(?m)^passhash\s+username, passhash\s+a user name and its passhash$")
        self.assertRegex(out, r"(?m)^https-url\s+an https:// URL")
        # Rules are shown, not learnt by failing.
        out = self.ctl("types", "nable-ncentral", check=0).stdout
        self.assertRegex(out, r"(?m)^api_token\s+yes\s+yes\s+4096\s+jwt\s")
        self.assertRegex(out, r"(?m)^jwt\s+a signed JSON Web Token")
        out = self.ctl("types", "generic", check=0).stdout
        self.assertIn("every value is sensitive", out)
        # --json gives the daemon's object for that type.
        j = json.loads(self.ctl("types", "prtg", "--json", check=0).stdout)
        self.assertEqual([f["name"] for f in j["forms"]], ["api-token", "passhash"])
        self.assertEqual([f["fields"] for f in j["forms"]], [["api_token"], ["username", "passhash"]])
        # The list names every type, forms joined by "or".
        out = self.ctl("types", check=0).stdout
        self.assertRegex(out, r"(?m)^prtg\s+url, then api_token\* or username \+ passhash\*\s+PRTG")
        self.assertRegex(out, r"(?m)^solarwinds-orion\s+url, username, password\*, verify_tls_fingerprint\?\s")
        self.assertRegex(out, r"(?m)^slack-webhook\s+url\*\s")
        for name in VALID:
            self.assertRegex(out, rf"(?m)^{name}\s")
        # Errors.
        p = self.ctl("types", "nope", check=6)
        self.assertEqual(p.stderr, "vaultctl: no credential type 'nope'; 'vaultctl types' lists them\n")
        self.assertEqual(p.stdout, "")
        self.ctl("types", "prtg", "slack", check=2)

    def test_docs_tables_match_the_daemon(self):
        self.init_unlock_login()
        want = types_table.render(json.loads(self.ctl("types", "--json", check=0).stdout))
        with open(DOCS, encoding="utf-8") as f:
            got = types_table.in_docs(f.read())
        self.assertIsNotNone(got, f"{DOCS}: no {types_table.BEGIN} ... {types_table.END}")
        self.assertEqual(got, want, "docs/api.md's type tables differ from GET /v1/types; regenerate with "
                                    "'vaultctl types --json | python3 tests/e2e/types_table.py'")

    def test_bash_completion_offers_every_type(self):
        self.init_unlock_login()
        names = [t["name"] for t in json.loads(self.ctl("types", "--json", check=0).stdout)["types"]]
        with open(COMPLETION, encoding="utf-8") as f:
            m = re.search(r'--type\)\n\s+COMPREPLY=\(\$\(compgen -W "([^"]*)"', f.read())
        self.assertIsNotNone(m, f"{COMPLETION}: no --type completion")
        self.assertEqual(m.group(1).split(), names)


if __name__ == "__main__":
    main()
