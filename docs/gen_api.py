#!/usr/bin/env python3
"""Generate docs/api.md from the doc comments of include/wsmsg.h.

Usage: gen_api.py [--check]   (--check: fail if docs/api.md is out of date)
"""
import re
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
hdr = (root / "include" / "wsmsg.h").read_text()
out = ["# wsmsg API reference", "",
       "Generated from `include/wsmsg.h` by `docs/gen_api.py`; do not edit.",
       "Conventions (errors, ownership, threads) are in the header's opening",
       "comment and in [guide.md](guide.md).", ""]

# section banners look like: /* ---...--- */ /* Title   */ /* ---...--- */
banner = re.compile(r"/\* -{10,} \*/\n/\* (.+?)\s*\*/\n/\* -{10,} \*/")
sub = re.compile(r"/\* ---- (.+?) ---- \*/")
# a doc comment (never reaching into the next one) and the declaration after
# it; braces are matched over comments, which may contain "}"
doc = re.compile(r"/\*\*((?:(?!\*/).)*)\*/\s*\n((?:(?!/\*)[^;{}]|\{(?:/\*.*?\*/|[^}])*\})*?[;}])", re.S)

pos = 0
items = []
for m in banner.finditer(hdr):
    items.append((m.start(), "h2", m.group(1)))
for m in sub.finditer(hdr):
    items.append((m.start(), "h3", m.group(1)))
for m in doc.finditer(hdr):
    items.append((m.start(), "doc", (m.group(1), m.group(2))))
items.sort(key=lambda x: x[0])


def clean(text):
    lines = [re.sub(r"^\s*\* ?", "", l) for l in text.strip().splitlines()]
    return "\n".join(l.rstrip() for l in lines).strip()


for _, kind, val in items:
    if kind == "h2":
        out += [f"## {val}", ""]
    elif kind == "h3":
        out += [f"### {val[0].upper() + val[1:]}", ""]
    else:
        text, decl = val
        decl = decl.strip()
        if decl.startswith("#define") or not decl:
            continue
        name = (re.match(r"(?:typedef )?(?:enum|struct) (\w+)", decl)
                or re.search(r"\(\*(\w+)\)", decl)
                or re.search(r"(wsmsg_\w+)\s*\(", decl)
                or re.search(r"(wsmsg_\w+)\s*;", decl)
                or re.search(r"(WSMSG_\w+)", decl))
        title = name.group(1) if name else decl.split()[0]
        decl = re.sub(r"WSMSG_API\s+", "", decl)
        decl = re.sub(r"\s+", " ", decl) if "{" not in decl else decl
        out += [f"#### `{title}`", "", "```c", decl, "```", "", clean(text), ""]

text = "\n".join(out).rstrip() + "\n"
target = root / "docs" / "api.md"
if "--check" in sys.argv:
    if not target.exists() or target.read_text() != text:
        sys.exit("docs/api.md is out of date: run docs/gen_api.py")
    print("docs/api.md is up to date")
else:
    target.write_text(text)
