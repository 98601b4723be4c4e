#!/usr/bin/env python3
"""tests/dist/check_actions.py SRC: every audit action vaultd records is
listed in docs/api.md's "Actions:" paragraph and offered by vaultctl's bash
completion for --action, and neither lists one vaultd never records
(issue 14, point 10: the lists had drifted). The actions are read from the
code: the route table and the handlers of vaultd/http/, and the daemon's own
records (rotate.<kind>, audit.prune, audit.rate_limited, authz.seal)."""
import glob
import os
import re
import sys

src = sys.argv[1]
code = ""
for f in sorted(glob.glob(os.path.join(src, "vaultd", "http", "*.c"))):
    code += open(f).read()
# Route entries (which may wrap a line), and what handlers set (one or two
# names per assignment, "a ? x : y").
actions = set(re.findall(r'\{ "(?:GET|PUT|POST|DELETE)", "[^"]*", "[^"]*",[^,]+,[^,]+,\s*\w+,\s*"([a-z_.]+)"', code))
for rhs in re.findall(r'(?:c->action|\.action) = ([^;]+);', code):
    actions |= set(re.findall(r'"([a-z_]+\.[a-z_]+)"', rhs))
kinds = set(re.findall(r'"rotate\.([a-z_]+)"', code))
actions |= {"unknown", "audit.prune", "audit.rate_limited", "authz.seal"} | {f"rotate.{k}" for k in kinds}
if len(actions) < 30:
    sys.exit(f"check_actions: found only {len(actions)} actions in the code: the pattern broke")

api = open(os.path.join(src, "docs", "api.md")).read()
m = re.search(r"^Actions: (.*?)\n\n", api, re.S | re.M)
doc = set(re.findall(r"`([a-z_]+(?:\.[a-z_]+)?)`", m.group(1))) if m else set()
doc.discard("system:vaultd")
doc = {a for a in doc if a == "unknown" or "." in a}
comp = open(os.path.join(src, "dist", "vaultctl.bash-completion")).read()
m2 = re.search(r'--action\)\n\s+COMPREPLY=\(\$\(compgen -W "([^"]*)"', comp)
offered = set(m2.group(1).split()) if m2 else set()

fail = False
for name, have in (("docs/api.md's Actions", doc), ("the --action completion", offered)):
    if actions - have:
        print(f"check_actions: {name} misses {sorted(actions - have)}", file=sys.stderr)
        fail = True
    if have - actions:
        print(f"check_actions: {name} lists {sorted(have - actions)}, which vaultd never records", file=sys.stderr)
        fail = True
print(f"{len(actions)} actions: {' '.join(sorted(actions))}")
sys.exit(1 if fail else 0)
