#!/usr/bin/env python3
"""Clang's thread-safety analysis over the production sources that use lock annotations.

GCC ignores ABSL_GUARDED_BY and friends, so without this a member read without its mutex
compiles and passes every test. This runs `clang++ -fsyntax-only -Werror=thread-safety` with
each source's own flags from compile_commands.json over every source under atlasd/,
socketproto/, storage/ and tools/ that uses an annotation or directly includes a project
header that does (docs/testing.md §Lock annotations).

  thread_safety_check.py BUILD_DIR SOURCE_DIR             check the production sources
  thread_safety_check.py BUILD_DIR SOURCE_DIR --expect-reject FIXTURE
                                                          prove the check has teeth: exit 0
                                                          only if clang rejects FIXTURE for
                                                          thread safety
Exits 77 (ctest SKIP_RETURN_CODE) when clang++ is not installed.
"""
import concurrent.futures
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

PRODUCTION_DIRS = ("atlasd", "socketproto", "storage", "tools")
ANNOTATED = re.compile(r"ABSL_GUARDED_BY|ABSL_PT_GUARDED_BY|ABSL_EXCLUSIVE_LOCKS_REQUIRED|"
                       r"ABSL_LOCKS_EXCLUDED|absl::Mutex")
INCLUDE = re.compile(r'#include "([^"]+)"')
CHECK_FLAGS = ["-fsyntax-only", "-Wno-everything", "-Wthread-safety",
               "-Werror=thread-safety"]


def clang_args(entry):
    """The entry's compile flags without output, warnings, optimisation or dependency files."""
    args = entry.get("arguments") or shlex.split(entry["command"])
    out, skip = [], False
    for a in args[1:]:
        if skip:
            skip = False
            continue
        if a in ("-o", "-MF", "-MT", "-MQ", "-c"):
            skip = a != "-c"
            continue
        if a.startswith(("-W", "-O", "-g", "-M")) or a == entry["file"]:
            continue
        out.append(a)
    return out


def uses_annotations(path, source_dir):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    if ANNOTATED.search(text):
        return True
    for inc in INCLUDE.findall(text):
        header = os.path.join(source_dir, inc)
        if os.path.isfile(header):
            with open(header, encoding="utf-8", errors="replace") as f:
                if ANNOTATED.search(f.read()):
                    return True
    return False


def run_clang(clang, entry, path):
    cmd = [clang] + clang_args(entry) + CHECK_FLAGS + [path]
    proc = subprocess.run(cmd, cwd=entry["directory"], capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


def production_entries(entries, source_dir):
    chosen = {}
    for e in entries:
        rel = os.path.relpath(e["file"], source_dir)
        if rel.split(os.sep)[0] in PRODUCTION_DIRS and rel not in chosen:
            if uses_annotations(e["file"], source_dir):
                chosen[rel] = e
    return chosen


def main():
    if len(sys.argv) not in (3, 5):
        sys.exit(__doc__)
    build_dir, source_dir = sys.argv[1], os.path.realpath(sys.argv[2])
    clang = shutil.which("clang++")
    if clang is None:
        print("SKIP: clang++ not installed")
        return 77
    with open(os.path.join(build_dir, "compile_commands.json"), encoding="utf-8") as f:
        entries = json.load(f)
    chosen = production_entries(entries, source_dir)
    if not chosen:
        print("no annotated sources found in compile_commands.json")
        return 1
    if len(sys.argv) == 5:
        # The fixture compiles with a daemon source's flags (Abseil, the project root).
        fixture = os.path.realpath(sys.argv[4])
        code, out = run_clang(clang, chosen[sorted(chosen)[0]], fixture)
        print(out)
        rejected = code != 0 and "-Wthread-safety" in out
        print("rejected for thread safety, as it must be" if rejected
              else "NOT rejected for thread safety: the check has no teeth")
        return 0 if rejected else 1
    failed = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {rel: pool.submit(run_clang, clang, e, e["file"]) for rel, e in chosen.items()}
        for rel in sorted(futures):
            code, out = futures[rel].result()
            print(f"{'FAIL' if code else 'ok  '} {rel}")
            if code:
                failed.append(rel)
                print(out)
    print(f"{len(chosen) - len(failed)} of {len(chosen)} sources pass -Wthread-safety")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
