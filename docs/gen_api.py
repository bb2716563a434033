#!/usr/bin/env python3
"""Generate docs/api.md from the doc comments of include/wsmsg.h.

Usage: gen_api.py [--check]

--check fails (exit 1, one line per problem) if docs/api.md is out of date,
if a section banner is malformed, or if a fallible function's comment does
not end with its error list.  The rules, as the header's opening comment
states them:

  - A function returning int or int64_t is fallible (it can return a
    negative WSMSG_ERR_* code) unless INFALLIBLE below names it.  Its
    comment ends with

        Returns 0, or:                 (or "Returns <the value>, or:")
         - WSMSG_ERR_INVALID_ARG: what it means for this function.
         - WSMSG_ERR_...: ...

    and nothing after the list; every code is one of enum wsmsg_error_code.
  - A function returning a pointer that is NULL on failure (a constructor,
    wsmsg_*_new*, or one named in NULL_ON_FAILURE) ends with one sentence
    "Returns <what>, or NULL if <why>."
  - Everything else (void, getters, predicates) cannot fail and needs
    neither.
"""
import re
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
hdr = (root / "include" / "wsmsg.h").read_text()

# int/int64_t functions that cannot fail: each returns a value or a
# predicate for every argument (NULL included)
INFALLIBLE = {
    "wsmsg_version_number": "a constant",
    "wsmsg_utf8_valid": "predicate",
    "wsmsg_conn_state": "state; CLOSED for NULL",
    "wsmsg_conn_want_write": "predicate",
    "wsmsg_conn_want_read": "predicate",
    "wsmsg_conn_done": "predicate",
    "wsmsg_conn_is_client": "predicate",
    "wsmsg_conn_streaming": "predicate",
    "wsmsg_conn_deflate": "predicate",
    "wsmsg_conn_error": "the code that ended the connection, as a value",
    "wsmsg_conn_http_status": "a value, 0 before it is known",
    "wsmsg_conn_deadline": "-1 means no timer",
    "wsmsg_conn_next_deadline": "-1 means no timer",
    "wsmsg_conn_rtt_ms": "-1 means not measured",
    "wsmsg_timers_next_ms": "-1 means no deadline",
    "wsmsg_verrors_truncated": "predicate",
    "wsmsg_server_draining": "predicate",
    "wsmsg_topic_is_subscribed": "predicate",
}
# pointer-returning functions, besides wsmsg_*_new*, whose NULL is a failure
NULL_ON_FAILURE = {"wsmsg_server_accept", "wsmsg_json_loads",
                   "wsmsg_verrors_to_json", "wsmsg_server_asyncapi",
                   "wsmsg_yaml_loads"}

def clean(text):
    lines = [re.sub(r"^\s*\* ?", "", l) for l in text.strip().splitlines()]
    return "\n".join(l.rstrip() for l in lines).strip()


def body_lines(text):
    """The comment's lines without the leading '*', indentation kept."""
    lines = [re.sub(r"^\s*\*", "", l).rstrip() for l in text.splitlines()]
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    return lines


def check_errors_block(name, text, enum_codes):
    """The comment ends with 'Returns ..., or:' and a list of codes."""
    lines = body_lines(text)
    starts = [i for i, l in enumerate(lines) if l.strip().startswith("Returns ")]
    if not starts:
        return "comment lacks the closing 'Returns 0, or:' list of WSMSG_ERR_* codes"
    i, sentence = starts[-1], ""
    while i < len(lines) and not re.match(r"\s*- ", lines[i]):
        sentence += " " + lines[i].strip()
        if sentence.endswith("or:"):
            break
        i += 1
    if not sentence.endswith(", or:"):
        return "the last 'Returns' sentence does not end with ', or:'"
    codes = []
    for l in lines[i + 1:]:
        item = re.match(r"( *)- (WSMSG_ERR_[A-Z0-9_]+): \S", l)
        if item:
            codes.append(item.group(2))
            indent = len(item.group(1)) + 2
        elif (not codes or not l.startswith(" " * indent) or not l.strip()
              or l.lstrip().startswith("- ")):
            return f"unexpected line after 'Returns ..., or:': {l.strip()!r}"
    if not codes:
        return "'Returns ..., or:' is followed by no '- WSMSG_ERR_X: meaning' item"
    for c in codes:
        if c not in enum_codes:
            return f"{c} is not a WSMSG_ERR_* code"
    if len(set(codes)) != len(codes):
        return "a code is listed twice"
    return None


def check_null_sentence(name, text):
    joined = " ".join(l.strip() for l in body_lines(text))
    k = joined.rfind("Returns ")
    if k < 0 or not re.fullmatch(r"Returns .+, or NULL( .+)?\.", joined[k:]):
        return "comment does not end with 'Returns <what>, or NULL if <why>.'"
    return None


def markdown(text):
    """clean(), with the error list as a Markdown list of code spans."""
    s = clean(text)
    s = re.sub(r"^ ?- (WSMSG_ERR_\w+):", r"- `\1`:", s, flags=re.M)
    return s


def generate(hdr):
    """docs/api.md's text for a header, and the problems found in it."""
    enum_codes = set(re.findall(r"\b(WSMSG_ERR_\w+)\s*=", hdr))
    problems = []
    out = ["# wsmsg API reference", "",
           "Generated from `include/wsmsg.h` by `docs/gen_api.py`; do not edit.",
           "Conventions (errors, ownership, threads) are in the header's opening",
           "comment and in [guide.md](guide.md).", ""]

    # section banners look like: /* ---...--- */ /* Title   */ /* ---...--- */
    # and sub-sections like /* ---- title ---- */; a plain (non-doc) comment
    # right after either is the section's introduction
    rule = r"/\* -{10,} \*/"
    intro = r"(?:\s*\n(/\*(?!\*)(?:(?!\*/).)*\*/))?"
    banner = re.compile(rule + r"\n/\* ([^-\n].*?)\s*\*/\n" + rule + intro, re.S)
    sub = re.compile(r"/\* ---- ([^-\n]+?) ---- \*/" + intro, re.S)
    # a doc comment (never reaching into the next one) and the declaration after
    # it; braces are matched over comments, which may contain "}"
    doc = re.compile(r"/\*\*((?:(?!\*/).)*)\*/\s*\n((?:(?!/\*)[^;{}]|\{(?:/\*.*?\*/|[^}])*\})*?[;}])", re.S)

    items = []
    known = set()
    for m in banner.finditer(hdr):
        items.append((m.start(), "h2", (m.group(1), m.group(2))))
        known.update(range(m.start(), m.end(2) if m.group(2) else m.end()))
    for m in sub.finditer(hdr):
        items.append((m.start(), "h3", (m.group(1), m.group(2))))
        if not m.group(1).lower().startswith("end"):  # sections end at the next
            known.add(m.start())
    for m in doc.finditer(hdr):
        items.append((m.start(), "doc", (m.group(1), m.group(2))))
    items.sort(key=lambda x: x[0])

    # anything else that looks like a banner renders wrongly: refuse it
    for m in re.finditer(r"/\* -{4,}.*", hdr):
        if m.start() not in known and not re.fullmatch(rule, m.group(0)):
            line = hdr.count("\n", 0, m.start()) + 1
            problems.append(f"include/wsmsg.h:{line}: malformed section banner "
                            f"{m.group(0).strip()!r}")


    seen_fns = set()
    for _, kind, val in items:
        if kind == "h2":
            out += [f"## {val[0]}", ""]
            if val[1]:
                out += [clean(val[1][2:-2]), ""]
        elif kind == "h3":
            out += [f"### {val[0][0].upper() + val[0][1:]}", ""]
            if val[1]:
                out += [clean(val[1][2:-2]), ""]
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
            fn = re.match(r"WSMSG_API\s+([\w\s\*]+?)\b(wsmsg_\w+)\s*\(", decl)
            if fn:
                ret, fname = " ".join(fn.group(1).split()), fn.group(2)
                seen_fns.add(fname)
                why = None
                if ret in ("int", "int64_t") and fname not in INFALLIBLE:
                    why = check_errors_block(fname, text, enum_codes)
                elif ret.endswith("*") and (re.search(r"_new(_\w+)?$", fname)
                                            or fname in NULL_ON_FAILURE):
                    why = check_null_sentence(fname, text)
                if why:
                    problems.append(f"include/wsmsg.h: {fname}(): {why}")
            decl = re.sub(r"WSMSG_API\s+", "", decl)
            decl = re.sub(r"\s+", " ", decl) if "{" not in decl else decl
            out += [f"#### `{title}`", "", "```c", decl, "```", "",
                    markdown(text), ""]

    for fname in sorted(set(INFALLIBLE) - seen_fns):
        problems.append(f"docs/gen_api.py: INFALLIBLE names {fname}, which "
                        "wsmsg.h does not declare")
    undocumented = set(re.findall(r"^WSMSG_API [^(]*?\b(wsmsg_\w+)\s*\(", hdr, re.M))
    for fname in sorted(undocumented - seen_fns):
        problems.append(f"include/wsmsg.h: {fname}() has no doc comment")

    return "\n".join(out).rstrip() + "\n", problems


def selftest(hdr):
    """The checks catch what they exist for: each mutation of the real
    header must give a problem, and the header itself none."""
    bad = []

    def expect(what, mutated, pattern):
        if mutated == hdr:
            bad.append(f"selftest: cannot build the case '{what}'")
            return
        _, found = generate(mutated)
        if not any(re.search(pattern, f) for f in found):
            bad.append(f"selftest: '{what}' was not caught")

    block = re.search(r"\n \*\n \* Returns 0, or:\n(?: \*  .*\n)+(?= \*/\n"
                      r"WSMSG_API int wsmsg_conn_resume_stream)", hdr)
    expect("an int function without its Returns block",
           hdr.replace(block.group(0), "\n") if block else hdr,
           r"wsmsg_conn_resume_stream\(\): comment lacks")
    expect("an unknown code in a Returns block",
           hdr.replace(" *  - WSMSG_ERR_STATE: no stream is running.",
                       " *  - WSMSG_ERR_NO_SUCH_CODE: no stream is running."),
           r"WSMSG_ERR_NO_SUCH_CODE is not a WSMSG_ERR_\* code")
    expect("a Returns sentence without ', or:'",
           hdr.replace(" * Returns 0, or:\n *  - WSMSG_ERR_INVALID_ARG: `conn` is "
                       "NULL.\n *  - WSMSG_ERR_STATE: no stream is running.",
                       " * Returns 0 or\n *  - WSMSG_ERR_INVALID_ARG: `conn` is "
                       "NULL.\n *  - WSMSG_ERR_STATE: no stream is running."),
           r"wsmsg_conn_resume_stream\(\): the last 'Returns' sentence")
    expect("prose after the list",
           hdr.replace(" *  - WSMSG_ERR_STATE: no stream is running.\n",
                       " *  - WSMSG_ERR_STATE: no stream is running.\n *\n"
                       " * More text.\n"),
           r"unexpected line")
    expect("a constructor without its NULL sentence",
           hdr.replace(" * Returns the set, or NULL if out of memory.\n */\n"
                       "WSMSG_API wsmsg_timers *wsmsg_timers_new(void);",
                       " */\nWSMSG_API wsmsg_timers *wsmsg_timers_new(void);"),
           r"wsmsg_timers_new\(\): comment does not end")
    expect("a malformed banner",
           hdr.replace("/* Utilities  ", "/* ---- Utilities"),
           r"malformed section banner")
    expect("a new int function without a block",
           hdr.replace("#ifdef __cplusplus\n}",
                       "/** Does a thing. */\nWSMSG_API int wsmsg_new_thing(void);"
                       "\n\n#ifdef __cplusplus\n}"),
           r"wsmsg_new_thing\(\): comment lacks")
    _, found = generate(hdr)
    bad += [f"selftest: the header itself: {f}" for f in found]
    return bad


if __name__ == "__main__":
    text, problems = generate(hdr)
    target = root / "docs" / "api.md"
    if "--check" in sys.argv:
        if not target.exists() or target.read_text() != text:
            problems.append("docs/api.md is out of date: run docs/gen_api.py")
        if not problems:
            problems = selftest(hdr)
        if problems:
            print("\n".join(f"check-docs: {p}" for p in problems),
                  file=sys.stderr)
            sys.exit(1)
        print("docs/api.md is up to date; every fallible function lists its "
              "errors (and the check catches 7 kinds of breakage)")
    else:
        for p in problems:
            print(f"gen_api.py: warning: {p}", file=sys.stderr)
        target.write_text(text)
