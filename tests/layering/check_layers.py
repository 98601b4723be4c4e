#!/usr/bin/env python3
"""The layers of docs/architecture.md, checked on every include.

    common < store < keys < audit < access, secrets, rotate < core < http < main

A file may include its own layer and the layers below it; of the three
domain wings only rotate may use access (a root-key rotation reseals the
authorization rows), and secrets stands alone. pkcs11/ sits on common/ only;
vaultctl/ is a pure client of the socket API: common/ and itself. Include
cycles between modules (a .c and its .h are one module) fail too.

    check_layers.py SOURCE_DIR      check the tree; exit 1 naming each problem
    check_layers.py --self-test     prove the check fails on a bad include
"""
import os
import re
import sys
import tempfile

RANK = {"common": 0, "pkcs11": 1, "store": 1, "keys": 2, "audit": 3, "access": 4, "secrets": 4, "rotate": 4,
        "core": 5, "http": 6, "main": 7}
# Same rank, different wing: allowed only as listed.
WINGS_MAY = {("rotate", "access")}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer_of(rel):
    """The layer of a file path relative to the source tree, or None."""
    parts = rel.split("/")
    if parts[0] == "common":
        return "common"
    if parts[0] == "pkcs11":
        return "pkcs11"
    if parts[0] == "vaultctl":
        return "vaultctl"
    if parts[0] == "vaultd":
        if len(parts) == 2:
            return "main"
        return parts[1] if parts[1] in RANK else "unknown:" + parts[1]
    return None


def allowed(src, dst):
    if src == dst:
        return True
    if src == "vaultctl":
        return dst == "common"
    if dst == "vaultctl" or src is None:
        return src is None
    if src == "pkcs11":
        return dst == "common"
    if dst == "pkcs11":
        return False        # only through common/keyprov.h
    if src.startswith("unknown") or dst.startswith("unknown"):
        return False
    if RANK[dst] < RANK[src]:
        return True
    if RANK[dst] == RANK[src]:
        return (src, dst) in WINGS_MAY
    return False


def scan(root):
    files = {}
    for top in ("common", "pkcs11", "vaultd", "vaultctl"):
        for d, _, names in os.walk(os.path.join(root, top)):
            for n in names:
                if n.endswith((".c", ".h")):
                    p = os.path.join(d, n)
                    rel = os.path.relpath(p, root)
                    with open(p, errors="replace") as f:
                        files[rel] = INCLUDE.findall(f.read())
    return files


def resolve(rel, inc, files):
    """The tree file an include names, or None (system, generated)."""
    if inc in files:
        return inc
    near = os.path.normpath(os.path.join(os.path.dirname(rel), inc))
    return near if near in files else None


def module(rel):
    return rel[:-2]


def check(root):
    files = scan(root)
    problems = []
    graph = {}
    for rel, incs in sorted(files.items()):
        src = layer_of(rel)
        for inc in incs:
            target = resolve(rel, inc, files)
            if target is None:
                continue
            dst = layer_of(target)
            if not allowed(src, dst):
                problems.append(f"{rel}: includes {target}: layer '{src}' may not use layer '{dst}'")
            if module(target) != module(rel):
                graph.setdefault(module(rel), set()).add(module(target))
    # Cycles between modules.
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                cyc = stack[stack.index(n):] + [n]
                problems.append("include cycle: " + " -> ".join(cyc))
            elif not state.get(n):
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if not state.get(m):
            visit(m)
    return problems, len(files)


def self_test():
    """A tree with one good and one bad include of each kind must report
    exactly the bad ones."""
    cases = {
        "vaultd/store/store.c": '#include "vaultd/store/store.h"\n#include "common/log.h"\n',
        "vaultd/store/store.h": "",
        "vaultd/keys/keyring.c": '#include "vaultd/http/api.h"\n',            # up: bad
        "vaultd/http/api.h": '#include "vaultd/store/store.h"\n',
        "vaultd/secrets/types.c": '#include "vaultd/access/rbac.h"\n',        # across wings: bad
        "vaultd/access/rbac.h": "",
        "vaultd/rotate/rotate.c": '#include "vaultd/access/rbac.h"\n',        # listed wing: fine
        "vaultctl/main.c": '#include "vaultd/store/store.h"\n',               # client opens the store: bad
        "common/log.h": "",
        "common/a.h": '#include "common/b.h"\n',
        "common/b.h": '#include "common/a.h"\n',                               # cycle: bad
    }
    with tempfile.TemporaryDirectory() as d:
        for rel, text in cases.items():
            os.makedirs(os.path.join(d, os.path.dirname(rel)), exist_ok=True)
            with open(os.path.join(d, rel), "w") as f:
                f.write(text)
        problems, _ = check(d)
    want = ["vaultd/keys/keyring.c: includes vaultd/http/api.h",
            "vaultd/secrets/types.c: includes vaultd/access/rbac.h",
            "vaultctl/main.c: includes vaultd/store/store.h",
            "include cycle: common/a -> common/b -> common/a"]
    missing = [w for w in want if not any(p.startswith(w) for p in problems)]
    extra = [p for p in problems if not any(p.startswith(w) for w in want)]
    if missing or extra:
        print("self-test failed:\n  missing: %s\n  unexpected: %s" % (missing, extra))
        return 1
    print("self-test: the check reports %d of %d planted problems and nothing else" % (len(want), len(want)))
    return 0


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "--self-test":
        return self_test()
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    problems, n = check(sys.argv[1])
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} layering problem(s) in {n} files")
        return 1
    print(f"layers hold: {n} files, no include pointing up or across, no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
