#!/usr/bin/env python3
"""Prints the last lines of each failed test's output from ctest's LastTest.log.

CI shows the end of a run; ctest prints a failed test's output where the test ended, in the
middle. Repeating the tail of each failed test's output at the very end keeps the cause in view.
Usage: ci_failures.py BUILD_DIR [LINES]
"""
import pathlib
import sys

build = pathlib.Path(sys.argv[1])
keep = int(sys.argv[2]) if len(sys.argv) > 2 else 40
log = build / "Testing" / "Temporary" / "LastTest.log"
if not log.exists():
    sys.exit(0)
name, output, in_output = None, [], False
for line in log.read_text(errors="replace").splitlines():
    if " Testing: " in line and line.split(" Testing: ", 1)[0].replace("/", "").isdigit():
        name, output, in_output = line.split(" Testing: ", 1)[1], [], False
    elif line == "Output:":
        in_output = True
    elif line == "<end of output>":
        in_output = False
    elif in_output and not (not output and set(line) == {"-"}):
        output.append(line)
    elif line.startswith("Test Failed") and name:
        print(f"==== failed: {name} (last {keep} lines of its output)")
        print("\n".join(output[-keep:]))
