#!/usr/bin/env python3
"""Runs every ```atlas example of docs/commands.md against a fresh atlasd, in order.

A block is one `atlas` session fed the block's `> ` lines on stdin; its output must equal the
lines under them, where `<any>` matches any text. Usage: doc_examples_test.py BIN_DIR [DOC...]
"""
import os
import re
import subprocess
import sys

from pydaemon import Daemon

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def blocks(path):
    """(line number, commands, expected lines) of each ```atlas block."""
    out, cur, start = [], None, 0
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if cur is None:
                if line.strip() == "```atlas":
                    cur, start = [], n
                continue
            if line.strip() == "```":
                cmds = [l[2:] for l in cur if l.startswith("> ")]
                expected = [l for l in cur if not l.startswith("> ")]
                out.append((start, cmds, expected))
                cur = None
            else:
                cur.append(line)
    return out


def matches(expected, actual):
    pattern = "".join(".*" if part == "<any>" else re.escape(part)
                      for part in re.split(r"(<any>)", expected))
    return re.fullmatch(pattern, actual) is not None


def main():
    bin_dir = os.path.abspath(sys.argv[1])
    docs = sys.argv[2:] or [os.path.join(ROOT, "docs", "commands.md")]
    daemon = Daemon(bin_dir, "atlas-docs.")
    work, sock = daemon.work, daemon.sock
    with open(os.path.join(work, "hello.txt"), "wb") as f:
        f.write(b"hello\r\nworld")
    failures = total = 0
    try:
        for doc in docs:
            for start, cmds, expected in blocks(doc):
                total += 1
                p = subprocess.run([os.path.join(bin_dir, "atlas"), "--socket", sock],
                                   input="\n".join(cmds) + "\n", capture_output=True, text=True,
                                   cwd=work, timeout=60)
                actual = p.stdout.rstrip("\n").split("\n")
                ok = len(actual) == len(expected) and all(
                    matches(e, a) for e, a in zip(expected, actual))
                if not ok:
                    failures += 1
                    print(f"FAIL {doc}:{start}:\n  sent:     {cmds}\n  expected: {expected}\n"
                          f"  got:      {actual}\n  stderr:   {p.stderr.strip()}")
    finally:
        daemon.stop(keep=failures > 0)
    print(f"{total - failures}/{total} example blocks passed")
    return 1 if failures or total == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
