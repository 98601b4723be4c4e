#!/usr/bin/env python3
"""tests/deploy/run_docs.py ROOT DOC DIR: runs the ```sh blocks of DOC between
<!-- deploy-check:begin --> and <!-- deploy-check:end --> as written, one
after the other, each with `bash -euo pipefail` chrooted into ROOT, in DIR
(a path inside ROOT), as root, on a pseudo-terminal: what asks for a PIN
there gets what a person following the text would type. softhsm2-util asks
for an SO PIN (answered with one made here, as an admin would choose it)
and for the user PIN, which the text says is the one in /root/hsm.pin
(read from ROOT when asked). Exits with the first failing block's status,
after printing it."""
import os
import pty
import re
import secrets
import sys
import time

BEGIN, END = "<!-- deploy-check:begin -->", "<!-- deploy-check:end -->"
FENCE = re.compile(r"^([ \t]*)```sh\n(.*?)^\1```", re.S | re.M)


def blocks(doc):
    text = open(doc).read()
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        sys.exit(f"run_docs: {doc}: want one {BEGIN} and one {END}")
    part = text[text.index(BEGIN):text.index(END)]
    out = []
    for m in FENCE.finditer(part):
        indent = m.group(1)
        out.append("".join(line[len(indent):] if line.startswith(indent) else line
                           for line in m.group(2).splitlines(True)))
    if not out:
        sys.exit(f"run_docs: {doc}: no ```sh block between the markers")
    return out


def answers(root):
    so_pin = secrets.token_hex(8)

    def user_pin():
        with open(os.path.join(root, "root/hsm.pin")) as f:
            return f.read().strip()
    return [(re.compile(rb"(?:enter|reenter) SO PIN: ?$"), lambda: so_pin),
            (re.compile(rb"(?:enter|reenter) user PIN: ?$"), user_pin)]


def run(root, cwd, script, table, timeout=600):
    pid, fd = pty.fork()
    if pid == 0:
        os.chroot(root)
        os.chdir(cwd)
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
               "TERM": "dumb", "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}
        os.execve("/bin/bash", ["bash", "-euo", "pipefail", "-c", script], env)
    seen, line, deadline = b"", b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = os.read(fd, 4096)
        except OSError:         # EIO: the block's processes closed the terminal
            break
        if not data:
            break
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        seen += data
        line = (line + data).rsplit(b"\n", 1)[-1]
        for prompt, answer in table:
            if prompt.search(line):
                os.write(fd, (answer() + "\n").encode())
                line = b""
                break
    else:
        os.kill(pid, 9)
        print(f"run_docs: the block did not finish within {timeout} s", file=sys.stderr)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status)


def main():
    root, doc, cwd = sys.argv[1:4]
    table = answers(root)
    for i, script in enumerate(blocks(doc), 1):
        print(f"\n[run_docs] block {i} of {doc}:\n{script}", flush=True)
        rc = run(root, cwd, script, table)
        if rc != 0:
            sys.exit(f"run_docs: block {i} of {doc} failed with status {rc}:\n{script}")


if __name__ == "__main__":
    main()
