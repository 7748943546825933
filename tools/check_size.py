#!/usr/bin/env python3
"""Size limits for production code (issue 17): no function over 120 lines, no file over 1,000.

Scans the production directories (not tests/) and exits 1 listing every function and file over
its limit. A function's length runs from the first line of its declaration to its closing brace;
lambdas and local classes inside a function count toward it.

Function detection is a brace scanner, not a parser: comments, string and character literals
(raw strings too) and preprocessor lines are blanked first; then every '{' at namespace, class or
file scope is classified by the text before it (its "head"): namespace, class/struct/union,
enum, initializer (`= {`, `x_{0}`, a constructor's member initializers) or function body. It
relies on the code being clang-formatted Google style; tests/unit/size_fixture holds the cases it
must get right, and a function one line over the limit that it must reject.

  tools/check_size.py                 # the check (ctest: size_limits)
  tools/check_size.py --top 20        # the 20 longest functions, for before/after figures
"""
import argparse
import os
import re
import sys

FUNCTION_LINES_MAX = 120
FILE_LINES_MAX = 1000
PRODUCTION_DIRS = ["atlasd", "consensus", "storage", "socketproto", "proto", "tools"]
CPP_SUFFIXES = (".cc", ".h", ".cpp", ".hpp")
SOURCE_SUFFIXES = CPP_SUFFIXES + (".proto", ".py", ".sh", ".cmake")

# Files excused from the limits, each with its reason (none today).
EXCEPTIONS = set()


def blank_non_code(text):
    """Returns text with comments, literals and preprocessor lines replaced by spaces.

    Newlines are kept, so offsets map to the same line numbers as the input."""
    out = []
    i, n = 0, len(text)
    at_line_start = True
    while i < n:
        c = text[i]
        if at_line_start and c == "#":
            # A preprocessor line, with its backslash continuations.
            j = i
            while j < n and text[j] != "\n":
                if text[j] == "\\" and j + 1 < n and text[j + 1] == "\n":
                    j += 2
                    continue
                j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
            continue
        if c == "\n":
            at_line_start = True
            out.append(c)
            i += 1
            continue
        if not c.isspace():
            at_line_start = False
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
            continue
        raw = re.match(r'(?:u8|u|U|L)?R"([^()\\ ]{0,16})\(', text[i:i + 40])
        if raw and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = text.find(")" + raw.group(1) + '"', i + raw.end())
            j = n if end < 0 else end + len(raw.group(1)) + 2
            out.append('""' + re.sub(r"[^\n]", " ", text[i + 2:j]))
            i = j
            continue
        if c in "\"'":
            # A digit separator (1'000'000) is not a character literal.
            if c == "'" and i > 0 and text[i - 1].isalnum() and i + 1 < n and text[i + 1].isalnum():
                out.append(" ")
                i += 1
                continue
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(c + " " * (j - i - 2) + c if j - i >= 2 else c)
            i = j
            continue
        out.append(c)
        i += 1
    return "".join(out)


def strip_template_prefix(head):
    """Drops leading `template <...>` clauses (their `class T` is not a class head)."""
    while True:
        m = re.match(r"\s*template\s*<", head)
        if not m:
            return head
        depth, j = 1, m.end()
        while j < len(head) and depth:
            depth += {"<": 1, ">": -1}.get(head[j], 0)
            j += 1
        head = head[j:]


def depth_zero(head):
    """head with what stands inside parentheses and square brackets replaced by spaces."""
    out, depth = [], 0
    for ch in head:
        if ch in "([":
            out.append(ch if depth == 0 else " ")
            depth += 1
        elif ch in ")]":
            depth = max(0, depth - 1)
            out.append(ch if depth == 0 else " ")
        else:
            out.append(ch if depth == 0 else " ")
    return "".join(out)


FUNCTION_SUFFIX_WORDS = {"const", "override", "final", "noexcept", "mutable", "try", "volatile"}


def classify(head, prev_token):
    """What a '{' at namespace/class scope opens: scope | skip | function."""
    head = re.sub(r"\boperator\s*(\(\)|[^\s(]+)", "operator_", head)
    head = re.sub(r"\[\[.*?\]\]", " ", head)
    head = re.sub(r"\b(public|private|protected)\s*:(?!:)", " ", head)
    body = strip_template_prefix(head).strip()
    if re.match(r"^(inline\s+)?namespace\b", body) or re.match(r"^extern\s*\"\s*\"$", body) \
            or body == "extern":
        return "scope"
    top = depth_zero(body)
    if re.match(r"^(typedef\s+)?(class|struct|union)\b", body) and "(" not in top.split("{")[0]:
        return "scope"
    if re.match(r"^(typedef\s+)?enum\b", body):
        return "skip"
    if "=" in top:
        # `auto f = [](...) {` at namespace scope is a function in all but name.
        after = body[top.index("=") + 1:].lstrip()
        return "function" if after.startswith("[") else "skip"
    if "(" not in body:
        return "skip"  # a braced initializer: `int x_{0};`
    if prev_token in (")", "}") or prev_token in FUNCTION_SUFFIX_WORDS or prev_token in ("&", "&&"):
        return "function"
    if "->" in top:
        return "function"  # a trailing return type
    return "skip"  # `std::function<void()> f_{...}`


def in_ctor_initializers(head):
    """True when head ends inside a constructor's member-initializer list (`) : a_(x), b_`)."""
    top = depth_zero(re.sub(r"::", "  ", head))
    return re.search(r"\)\s*(noexcept\s*)?:", top) is not None


def function_name(head):
    body = strip_template_prefix(head)
    op = re.search(r"([\w:]*)\boperator\s*(\(\)|[^\s(]+)", body)
    if op:
        return op.group(1) + "operator" + op.group(2)
    top = depth_zero(body)
    k = top.find("(")
    if k < 0 or "=" in top[:k]:
        return "<lambda>"
    m = re.search(r"([~\w:]+)\s*$", body[:k])
    return m.group(1) if m else "<function>"


def matching_brace(code, i):
    depth = 0
    for j in range(i, len(code)):
        if code[j] == "{":
            depth += 1
        elif code[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(code) - 1


def functions(text):
    """Yields (name, first_line, last_line) for every function defined at namespace/class scope."""
    code = blank_non_code(text)
    line_at = [0] * (len(code) + 1)
    line = 1
    for k, ch in enumerate(code):
        line_at[k] = line
        if ch == "\n":
            line += 1
    line_at[len(code)] = line

    def scan(begin, end):
        head_start = begin
        i = begin
        while i < end:
            ch = code[i]
            if ch == ";":
                head_start = i + 1
            elif ch == "}":
                head_start = i + 1
            elif ch == "{":
                head = code[head_start:i]
                prev = re.findall(r"[\w]+|&&|->|\S", head)
                prev_token = prev[-1] if prev else ""
                if in_ctor_initializers(head) and not re.search(r"[)}]\s*$", head):
                    kind = "skip"  # `a_{x}` inside a constructor's initializer list
                else:
                    kind = classify(head, prev_token)
                close = matching_brace(code, i)
                if kind == "scope":
                    yield from scan(i + 1, close)
                    head_start = close + 1
                elif kind == "function":
                    label = re.match(r"(\s*(public|private|protected)\s*:(?!:))*\s*", head)
                    first = head_start + label.end()
                    yield function_name(head), line_at[first], line_at[close]
                    head_start = close + 1
                # A skipped initializer continues the same declaration: keep its head.
                i = close
            i += 1

    yield from scan(0, len(code))


def production_files(root, dirs):
    for top in dirs:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                if name.endswith(SOURCE_SUFFIXES) or is_script(path):
                    yield rel, path


def is_script(path):
    if os.path.splitext(path)[1] or not os.access(path, os.X_OK):
        return False
    with open(path, "rb") as f:
        return f.read(2) == b"#!"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.join(os.path.dirname(__file__), ".."))
    parser.add_argument("--dirs", nargs="*", default=PRODUCTION_DIRS)
    parser.add_argument("--function-lines-max", type=int, default=FUNCTION_LINES_MAX)
    parser.add_argument("--file-lines-max", type=int, default=FILE_LINES_MAX)
    parser.add_argument("--no-exceptions", action="store_true",
                        help="check the temporarily excepted files too")
    parser.add_argument("--top", type=int, default=0,
                        help="print the N longest functions and files, then check")
    args = parser.parse_args()
    root = os.path.abspath(args.root)
    exceptions = set() if args.no_exceptions else EXCEPTIONS

    all_functions, all_files, offenders = [], [], []
    for rel, path in production_files(root, args.dirs):
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
        all_files.append((lines, rel))
        excepted = rel in exceptions
        if lines > args.file_lines_max and not excepted:
            offenders.append(f"{rel}: file has {lines} lines (max {args.file_lines_max})")
        if not rel.endswith(CPP_SUFFIXES):
            continue
        for name, first, last in functions(text):
            length = last - first + 1
            all_functions.append((length, f"{rel}:{first}", name))
            if length > args.function_lines_max and not excepted:
                offenders.append(f"{rel}:{first}: {name} has {length} lines "
                                 f"(max {args.function_lines_max})")

    if args.top:
        print(f"longest functions ({len(all_functions)} scanned):")
        for length, where, name in sorted(all_functions, reverse=True)[: args.top]:
            print(f"  {length:5}  {where}  {name}")
        print("longest files:")
        for lines, rel in sorted(all_files, reverse=True)[: min(args.top, 10)]:
            print(f"  {lines:5}  {rel}")
    if exceptions & {rel for _, rel in all_files}:
        print("not checked (temporary exceptions): " + ", ".join(sorted(exceptions)))
    if offenders:
        print(f"{len(offenders)} over the size limits:")
        for o in offenders:
            print("  " + o)
        return 1
    print(f"size limits hold: {len(all_functions)} functions <= {args.function_lines_max} "
          f"lines, {len(all_files)} files <= {args.file_lines_max} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
