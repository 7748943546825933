#!/usr/bin/env python3
"""Every reference to a section of a document names a heading that exists.

Code and docs point into the docs as `docs/consensus.md §Time`. When a heading is renamed or a
section moves, such a pointer goes stale silently; this test finds it. The rule (also in
docs/testing.md, "Section references"):

- A reference is a Markdown file name, `docs/<name>.md` or `<name>.md` (docs/<name>.md, or the
  root's README.md), then `§` and a section. A closing backtick or `]` may follow the file name,
  and the `§` may be on the next comment line. The older form, the file name, an optional comma
  and the heading in double quotes (`docs/consensus.md, "Time"`), is checked the same way.
- `shared/spec/<name>.md` (or `../shared/spec/<name>.md`) is the contract, which lives next to
  the repository, not in it: its references are checked against `<root>/../shared/spec` (or
  `--spec DIR`) when that directory exists, and counted as unchecked otherwise.
- More sections of the same file may follow: `§1, §3`, `§4 and §5`, `§2-§5`.
- In a Markdown file, a `§<section>` without a file name names a section of that same file.
  Elsewhere a section sign must follow a file name. `WPaxos §<n>` cites the paper and is not
  checked. An inline code span with a section sign in it is an example of the notation, not a
  reference, and is not checked either.
- The section names a heading (any level, outside ``` blocks) or a run-in title (bold text that
  opens a paragraph or a list item: `**Teeth.** ...`), case-sensitively, from the
  heading's start: the section's text up to its first `)`, `(`, `;`, `:`, `,`, `[`, `]`, `|`,
  `*`, backtick, quote, `§` or sentence end is a prefix of the heading that ends at a word
  boundary (so `§Time` names `## Time` but not `## Timers`), or the whole heading starts the
  text after the `§` (`§The command table describes ...`). A section that starts with a digit is
  a number: `§5` names `## 5. Commands`.
- A Markdown link to an anchor, `[x](protocol.md#a-heading)` or `[x](#a-heading)`, names a
  heading by its GitHub anchor.

Usage: section_refs_test.py [--spec DIR] [ROOT]  check the tree at ROOT (default: this
                                                 repository): exit 1 if any reference is broken
       section_refs_test.py --self-test           check a small tree with known broken
                                                 references and fail unless exactly those are
                                                 reported (the checker's teeth)
"""
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.abspath(__file__)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))

# Where a comment line starts, in the languages of the tree (C++, proto, CMake, shell, TOML,
# Python, the fuzz dictionaries).
COMMENT_LEADER = re.compile(r"^\s*(?://+|/\*+|\*+|#+|--)\s?")
# A file name followed by a section sign.
FILE_REF = re.compile(r"(?<![\w.-])((?:[\w.-]+/)*[\w-]+\.md)[`\]]?\s*§")
# A file name followed by a heading in double quotes (the older form).
QUOTED_REF = re.compile(r'(?<![\w.-])((?:[\w.-]+/)*[\w-]+\.md)[`\]]?(?:,\s*|\s+)"([^"\n§]{1,80})"')
# The contract's files, outside the repository.
SPEC_REF = re.compile(r"(?:^|/)shared/spec/([\w-]+\.md)$")
# After one section: another of the same file.
CHAIN = re.compile(r"\s*(?:,|and|or|-|–|to)\s*§")
# Where a section's name ends.
NAME_END = re.compile(r"[()\[\];:,`\"|*§<>{}]|\.(?=\s|$)|\n")
PAPER = re.compile(r"WPaxos\s+$")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# A run-in title: bold text that opens a paragraph or a list item (`**Teeth.** ...`).
RUN_IN = re.compile(r"^(?:[-*+]\s+|\d+\.\s+)?\*\*([^*]+?)\*\*")
FENCE = re.compile(r"^\s*(```|~~~)")
# An inline code span with a section sign in it: an example of the notation, not a reference.
CODE_SPAN = re.compile(r"`[^`\n]*`")
ANCHOR_LINK = re.compile(r"\]\(([^)\s#]*)#([^)\s]+)\)")


def headings(path, run_in=False):
    """The text of each heading of a Markdown file, in order (``` blocks skipped); with run_in,
    also each run-in title."""
    out, fenced, blank = [], False, True
    with open(path, encoding="utf-8") as f:
        for line in f:
            if FENCE.match(line):
                fenced = not fenced
                continue
            m = None if fenced else HEADING.match(line.rstrip("\n"))
            if m:
                out.append(m.group(2))
            elif run_in and not fenced:
                item = re.match(r"\s*(?:[-*+]|\d+\.)\s", line)
                r = RUN_IN.match(line.lstrip()) if blank or item else None
                if r:
                    out.append(r.group(1).strip())
            blank = not line.strip()
    return out


def anchors(titles):
    """GitHub's anchors for headings: lower case, punctuation dropped, spaces to hyphens, and
    -1, -2, ... on repeats."""
    out, seen = set(), {}
    for t in titles:
        slug = re.sub(r"[^\w\- ]", "", t.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def joined(text, markdown):
    """The file's text with each continuation line appended to the one before it (a reference
    may wrap), and the line number of every character.

    In Markdown a non-blank line continues the one before it; elsewhere a comment line
    continues a comment line, without its comment leader."""
    out, line_of = [], []
    prev_comment = False
    for n, raw in enumerate(text.split("\n"), 1):
        if markdown:
            body = raw.strip()
            is_comment = bool(body)
            cont = prev_comment and is_comment
        else:
            m = COMMENT_LEADER.match(raw)
            is_comment = m is not None
            body = raw[m.end():].rstrip() if m else raw.strip()
            cont = prev_comment and is_comment and body != ""
        sep = " " if cont else "\n"
        if out:
            out.append(sep)
            line_of.append(n)
        out.append(body)
        line_of.extend([n] * len(body))
        prev_comment = is_comment and body != ""
    return "".join(out), line_of


def section_name(rest):
    m = re.match(r"\d+(?:\.\d+)*", rest)
    if m:
        return m.group(0)
    end = NAME_END.search(rest)
    return (rest[: end.start()] if end else rest).strip()


def names_heading(name, rest, titles):
    for h in titles:
        if name and h.startswith(name) and (len(h) == len(name) or not h[len(name)].isalnum()):
            return True
        if h and rest.startswith(h) and (len(rest) == len(h) or not rest[len(h)].isalnum()):
            return True
    return False


class Unchecked(Exception):
    """A reference into the contract when the contract is not next to the tree."""


def resolve(root, path, name, spec):
    """The file a reference's file name means, or None."""
    m = SPEC_REF.search(name)
    if m:
        if spec is None or not os.path.isdir(spec):
            raise Unchecked()
        candidate = os.path.join(spec, m.group(1))
        return os.path.normpath(candidate) if os.path.isfile(candidate) else None
    base = os.path.dirname(os.path.join(root, path))
    for candidate in (os.path.join(root, name), os.path.join(root, "docs", name),
                      os.path.join(base, name)):
        if not os.path.normpath(candidate).startswith(os.path.normpath(root) + os.sep):
            continue  # only the tree's own files (the contract is handled above)
        if os.path.isfile(candidate):
            return os.path.normpath(candidate)
    return None


def tree_files(root):
    try:
        out = subprocess.run(
            ["git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            check=True, capture_output=True).stdout.decode()
        files = sorted(set(p for p in out.split("\0") if p))
    except (OSError, subprocess.CalledProcessError):
        files = []
        for d, dirs, names in os.walk(root):
            dirs[:] = sorted(x for x in dirs if not x.startswith((".", "build")))
            files += [os.path.relpath(os.path.join(d, x), root) for x in sorted(names)]
    return [p for p in files if os.path.isfile(os.path.join(root, p))]


def check(root, skip=(), spec=None):
    """(references checked, references not checked, problems): each problem is
    'path:line: message'."""
    problems, checked, unchecked = [], 0, 0
    cache = {}

    def titles_of(target, run_in=True):
        if (target, run_in) not in cache:
            cache[(target, run_in)] = headings(target, run_in)
        return cache[(target, run_in)]

    for path in tree_files(root):
        full = os.path.join(root, path)
        if os.path.normpath(full) in skip:
            continue
        try:
            with open(full, encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, OSError):
            continue  # images, archives
        markdown = path.endswith(".md")
        if "§" not in text and '"' not in text and not (markdown and "#" in text):
            continue
        flat, line_of = joined(text, markdown)
        flat = CODE_SPAN.sub(lambda m: " " * len(m.group(0)) if "§" in m.group(0) else m.group(0),
                             flat)

        def report(pos, message):
            problems.append(f"{path}:{line_of[min(pos, len(line_of) - 1)]}: {message}")

        def check_section(pos, file_shown, target, name=None):
            """The section whose text starts at flat[pos]; returns where it ends."""
            nonlocal checked
            rest = flat[pos:]
            if name is None:
                name = section_name(rest)
            checked += 1
            ref = f"{file_shown} §{name}".strip()
            if not name:
                report(pos, f"'{file_shown} §' names no section")
            elif target is None:
                report(pos, f"{ref}: no such file")
            elif not names_heading(name, rest, titles_of(target)):
                report(pos, f"{ref}: no heading of {os.path.relpath(target, root)} "
                            f"starts with '{name}'")
            return pos + len(name)

        consumed = set()  # positions of section signs that belong to a file reference
        for m in QUOTED_REF.finditer(flat):
            try:
                target = resolve(root, path, m.group(1), spec)
            except Unchecked:
                unchecked += 1
                continue
            check_section(m.start(2), m.group(1), target, name=m.group(2).strip())
        for m in FILE_REF.finditer(flat):
            sign = m.end() - 1
            try:
                target = resolve(root, path, m.group(1), spec)
            except Unchecked:
                unchecked += 1
                consumed.add(sign)
                c = CHAIN.match(flat, sign + 1 + len(section_name(flat[sign + 1:])))
                while c:  # the chained sections are the contract's too
                    consumed.add(c.end() - 1)
                    c = CHAIN.match(flat, c.end() + len(section_name(flat[c.end():])))
                continue
            while True:
                consumed.add(sign)
                end = check_section(sign + 1, m.group(1), target)
                c = CHAIN.match(flat, end)
                if not c:
                    break
                sign = c.end() - 1
        for m in re.finditer("§", flat):
            if m.start() in consumed or PAPER.search(flat, 0, m.start()):
                continue
            if markdown:
                check_section(m.end(), "", full)
            else:
                checked += 1
                report(m.start(), "a § outside the docs must follow the file it refers to "
                                  "(docs/<file>.md §<section>)")
        if markdown:
            for m in ANCHOR_LINK.finditer(flat):
                link, anchor = m.group(1), m.group(2)
                if link.startswith(("http:", "https:")) or (link and not link.endswith(".md")):
                    continue
                target = os.path.normpath(os.path.join(os.path.dirname(full), link)) if link \
                    else full
                checked += 1
                if not os.path.isfile(target):
                    report(m.start(), f"link to {link}#{anchor}: no such file")
                elif anchor not in anchors(titles_of(target, run_in=False)):
                    report(m.start(), f"link to {link}#{anchor}: no heading has that anchor")
    return checked, unchecked, problems


# The self-test's tree: each reference that should be reported says so in its own text.
SELF_TEST_DOC = """# Guide

## 5. Commands
## Time
### Join tokens: lifetime, uses
### `GET /health`

```
## Not a heading (inside a code block)
```

**Upgrades (run-in).** A bold title that opens a paragraph names a section too.
- **Listed**: so does one that opens a list item; but not **inline** bold.

Examples in code spans, `§Nope` and `guide.md §Nope`, are not references.
In this file §Time, §Upgrades, §Listed and §5 are fine; §inline is BROKEN-not-run-in; (§Nope) BROKEN-same-file. [ok](#time),
[ok](#join-tokens-lifetime-uses), [bad](#nope) BROKEN-anchor, [ok](other.md#other),
[bad](other.md#missing) BROKEN-anchor-other-file. WPaxos §4.2 is the paper.
"""
SELF_TEST_OTHER = "# Other\n\nNothing here refers anywhere.\n"
SELF_TEST_SPEC = "# The contract\n\n## 1. Transport\n\n## 6. Access control\n"
SELF_TEST_CODE = """// docs/guide.md §Time and guide.md §Join tokens) are fine, and so is (`guide.md` §5).
// A wrapped one, docs/guide.md
// §Join tokens: fine.
// (docs/guide.md §1, §5): the first is BROKEN-chain.
// (docs/guide.md §2-§5): the first is BROKEN-range.
// (docs/guide.md §Timers) BROKEN-word-boundary.
// (docs/guide.md §time) BROKEN-case.
// (docs/guide.md §Not a heading) BROKEN-fenced.
// (docs/missing.md §Time) BROKEN-no-file.
// An example, `docs/<file>.md §<section>`, is not a reference.
// A bare (§Time) BROKEN-no-document. WPaxos §3 cites the paper.
// The older form: docs/guide.md, "Time" is fine,
// and guide.md "Timers" is BROKEN-quoted.
// The contract: shared/spec/protocol.md §6 and ../shared/spec/protocol.md §1, §6 are fine;
// shared/spec/protocol.md §9 is BROKEN-contract-section, shared/spec/nope.md §1 BROKEN-contract-file.
int x = 1;
// docs/guide.md
int y = 2;  // (§Time) on the line after code does not continue the comment: BROKEN-not-wrapped
"""


def write_tree(base, files):
    for rel, text in files:
        os.makedirs(os.path.dirname(os.path.join(base, rel)), exist_ok=True)
        with open(os.path.join(base, rel), "w", encoding="utf-8") as f:
            f.write(text)


def self_test():
    """The checker's teeth: on a tree whose broken references are marked BROKEN-<why> in their
    own line, it must report exactly those lines, and the command line must fail; on the same
    tree without its code file it must pass."""
    with tempfile.TemporaryDirectory() as base:
        root, spec = os.path.join(base, "repo"), os.path.join(base, "shared", "spec")
        tree = (("docs/guide.md", SELF_TEST_DOC), ("docs/other.md", SELF_TEST_OTHER),
                ("src/a.cc", SELF_TEST_CODE))
        write_tree(root, tree)
        write_tree(spec, (("protocol.md", SELF_TEST_SPEC),))
        checked, unchecked, problems = check(root, spec=spec)
        expected = {}
        for rel, text in tree:
            for n, line in enumerate(text.split("\n"), 1):
                for tag in re.findall(r"BROKEN-[\w-]+", line):
                    expected.setdefault(f"{rel}:{n}", []).append(tag)
        got = {}
        for p in problems:
            rel, line, _ = p.split(":", 2)
            got.setdefault(f"{rel}:{line}", []).append(p)
        ok = True
        for where in sorted(set(got) | set(expected)):
            want, have = len(expected.get(where, [])), len(got.get(where, []))
            if want != have:
                ok = False
                print(f"self-test: {where}: expected {want} problem(s), got {have}: "
                      f"{got.get(where, [])} (marked {expected.get(where, [])})")
        for p in problems:
            print(f"caught: {p}")
        if unchecked:
            ok = False
            print(f"self-test: {unchecked} contract references left unchecked with the contract "
                  f"present")
        # Without the contract next to the tree, its references are not checked (nor failed).
        _, unchecked_without, problems_without = check(root, spec=os.path.join(base, "none"))
        if unchecked_without != 4 or len(problems_without) != len(problems) - 2:
            ok = False
            print(f"self-test: without the contract: {unchecked_without} unchecked (want 4), "
                  f"{len(problems_without)} problems (want {len(problems) - 2})")
        if main(["section_refs_test.py", "--spec", spec, root]) != 1:
            ok = False
            print("self-test: the command line passed a tree with broken references")
        # The same tree with the marked lines taken out.
        write_tree(root, ((rel, re.sub(r".*BROKEN.*\n", "", text)) for rel, text in tree))
        checked_clean, _, problems_clean = check(root, spec=spec)
        if problems_clean or checked_clean != 8 or \
                main(["section_refs_test.py", "--spec", spec, root]) != 0:
            ok = False
            print("self-test: the command line failed a tree without broken references")
        if not ok:
            return 1
        n = sum(len(v) for v in expected.values())
        print(f"self-test: {checked} references, the {n} broken ones caught and nothing else")
        return 0


def main(argv):
    args = argv[1:]
    if args == ["--self-test"]:
        return self_test()
    spec = None
    if len(args) >= 2 and args[0] == "--spec":
        spec, args = os.path.abspath(args[1]), args[2:]
    if len(args) > 1 or (args and args[0].startswith("-")):
        print(__doc__)
        return 2
    root = os.path.abspath(args[0]) if args else ROOT
    if spec is None:
        spec = os.path.join(os.path.dirname(root), "shared", "spec")
    # This file holds the self-test's broken references: skip it in whichever tree is checked.
    itself = os.path.normpath(os.path.join(root, os.path.relpath(HERE, ROOT)))
    checked, unchecked, problems = check(root, skip={itself}, spec=spec)
    for p in problems:
        print(p)
    note = (f"; {unchecked} into the contract not checked ({spec} is absent)"
            if unchecked else "")
    if problems:
        print(f"{len(problems)} of {checked} section references name nothing{note} "
              f"(rule: tests/unit/section_refs_test.py)")
        return 1
    print(f"{checked} section references, each names an existing heading{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
