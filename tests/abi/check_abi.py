#!/usr/bin/env python3
"""ABI checks of include/wsmsg.h and lib/libwsmsg.so (run by `make check-abi`).

Rules (docs/abi.md explains them):

  1. callable from ctypes/cffi: no struct or union passed or returned by
     value, no varargs (except the allow-listed C-only conveniences), no
     inline function-pointer parameters (typedef them), integer types whose
     size does not depend on the platform: int32_t, uint32_t, int64_t,
     uint64_t, size_t -- plus int and unsigned for parameters and return
     values (32 bits on every ABI wsmsg targets: ILP32, LP64, LLP64), never
     long, short, char, bool, float/double or an enum type by value;
  2. public structs (passed by pointer) use only fixed-width integers,
     size_t and pointers: no int, no enum, no bool, no bitfield;
  3. the header declares exactly what the library exports;
  4. the Python binding (examples/ffi/python/wsmsg/_capi.py) declares every
     function with argtypes/restype matching the header, its structs have
     the C layout (offsets and sizes measured by the compiler), its enums
     have the header's values;
  5. nothing in the baseline (tests/abi/baseline.txt: the functions,
     struct layouts and enum values of soname libwsmsg.so.N) was removed
     or changed unless SOMAJOR was bumped; additions are listed (update
     the baseline with --update).

Usage: check_abi.py --somajor N [--lib lib/libwsmsg.so] [--cc cc] [--update]
       (--header H --baseline B: check another header; selftest.py uses it)
"""
import argparse
import ctypes
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
HEADER = os.path.join(ROOT, "include", "wsmsg.h")
BASELINE = os.path.join(ROOT, "tests", "abi", "baseline.txt")

# varargs functions that are documented C-only conveniences
VARARGS_OK = {"wsmsg_send_jsonf"}
# integer types allowed by value in parameters and return values
INT_PARAM = {"int", "unsigned", "unsigned int", "int32_t", "uint32_t", "int64_t",
             "uint64_t", "size_t"}
# ... and in public struct fields
INT_FIELD = {"int32_t", "uint32_t", "int64_t", "uint64_t", "size_t"}
# what a pointer may point to, besides handles and structs
PTR_BASE = INT_PARAM | {"char", "void", "uint8_t"}
# header enums and the Python enum that mirrors each (None: not bound,
# with the reason)
ENUMS = {
    "wsmsg_error_code": ("ErrorCode", "WSMSG_"),
    "wsmsg_state": ("State", "WSMSG_STATE_"),
    "wsmsg_event_type": ("EventType", "WSMSG_EV_"),
    "wsmsg_timeout_kind": ("TimeoutKind", "WSMSG_TIMEOUT_"),
    "wsmsg_timeout_action": ("TimeoutAction", "WSMSG_ON_TIMEOUT_"),
    "wsmsg_backpressure_policy": ("BackpressurePolicy", "WSMSG_BACKPRESSURE_"),
    "wsmsg_stream_kind": (None, "streaming callbacks are C-only in the binding"),
    "wsmsg_schema_option": ("SchemaOption", "WSMSG_SCHEMA_"),
    "wsmsg_validate_flag": ("Validate", "WSMSG_VALIDATE_"),
    "wsmsg_invalid_policy": ("InvalidPolicy", "WSMSG_INVALID_"),
    "wsmsg_limit_policy": ("LimitPolicy", "WSMSG_LIMIT_"),
    "wsmsg_extra_policy": ("ExtraPolicy", "WSMSG_EXTRA_"),
    "wsmsg_unhandled_policy": ("UnhandledPolicy", "WSMSG_UNHANDLED_"),
    "wsmsg_error_style": ("ErrorStyle", "WSMSG_ERRORS_"),
    "wsmsg_deflate_mode": ("DeflateMode", "WSMSG_DEFLATE_"),
    "wsmsg_publish_flags": ("PublishFlag", "WSMSG_PUBLISH_"),
}

errors = []


def fail(msg):
    errors.append(msg)


# ---- parsing the header ------------------------------------------------------


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def split_params(s):
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


TYPE_WORDS = {"const", "volatile", "unsigned", "signed", "struct", "enum", "union",
              "int", "char", "short", "long", "void", "float", "double", "_Bool",
              "bool"}


class CType:
    """A parsed C type: base name (without qualifiers), pointer depth."""

    def __init__(self, text):
        self.text = " ".join(text.replace("*", " * ").split())
        toks = self.text.split()
        self.depth = toks.count("*")
        words = [t for t in toks if t not in ("*", "const", "volatile")]
        self.base = " ".join(words)

    def __repr__(self):
        return self.text


def parse_param(p):
    """'const char *text' -> (CType('const char *'), 'text')."""
    p = " ".join(p.replace("*", " * ").split())
    toks = p.split()
    if len(toks) >= 2 and toks[-1] not in TYPE_WORDS and toks[-1] != "*" \
            and re.fullmatch(r"\w+", toks[-1]):
        # the last word is the name unless the type would be empty
        rest = [t for t in toks[:-1] if t not in ("const", "volatile", "*")]
        if rest:
            return CType(" ".join(toks[:-1])), toks[-1]
    return CType(p), None


class Header:
    def __init__(self, text):
        self.raw = text
        code = strip_comments(text)
        # drop preprocessor lines (with their continuations)
        code = re.sub(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", " ", code, flags=re.M)
        self.code = " ".join(code.split())
        c = self.code
        self.structs = {}
        for name, body, alias in re.findall(
                r"typedef struct (\w+)\s*\{(.*?)\}\s*(\w+)\s*;", c):
            self.structs[alias] = [f.strip() for f in body.split(";") if f.strip()]
        self.opaque = {a for a, b in re.findall(r"typedef struct (\w+) (\w+)\s*;", c)
                       if a == b}
        self.callbacks = {}
        for ret, name, params in re.findall(
                r"typedef ([\w\s\*]+?)\(\s*\*\s*(\w+)\s*\)\s*\((.*?)\)\s*;", c):
            self.callbacks[name] = (CType(ret), [parse_param(p) for p in split_params(params)
                                                 if p != "void"])
        self.enums = {}
        for name, body in re.findall(r"enum (\w+)\s*\{(.*?)\}", c):
            vals, nxt = {}, 0
            for item in [i.strip() for i in body.split(",") if i.strip()]:
                if "=" in item:
                    k, v = [x.strip() for x in item.split("=", 1)]
                    nxt = int(v, 0)
                else:
                    k = item
                vals[k] = nxt
                nxt += 1
            self.enums[name] = vals
        self.functions = {}
        self.varargs = set()
        for ret, name, params in re.findall(
                r"WSMSG_API ([\w\s\*]+?)\b(wsmsg_\w+)\s*\((.*?)\)\s*;", c):
            plist = split_params(params)
            if "..." in plist:
                self.varargs.add(name)
                plist = [p for p in plist if p != "..."]
            self.functions[name] = (CType(ret), [parse_param(p) for p in plist if p != "void"],
                                    params)
        raw_api = len(re.findall(r"^WSMSG_API ", text, flags=re.M))
        if raw_api != len(self.functions):
            fail("header: %d WSMSG_API declarations but %d parsed: the parser "
                 "needs a look" % (raw_api, len(self.functions)))

    @property
    def handles(self):
        return self.opaque | set(self.structs) | {"json_t"}


# ---- rule 1 and 2: callable from ctypes ----------------------------------------


def check_value_type(where, t, hdr, is_return=False):
    if "(" in t.text:
        fail("%s: inline function pointer %s: typedef it" % (where, t))
        return
    if t.base.startswith(("struct ", "union ", "enum ")) and t.depth == 0:
        fail("%s: %s by value" % (where, t))
        return
    if t.depth == 0:
        if t.base == "void" and is_return:
            return
        if t.base in INT_PARAM or t.base in hdr.callbacks:
            return
        if t.base in hdr.handles:
            fail("%s: struct %s passed by value" % (where, t.base))
        else:
            fail("%s: type %s is not fixed-width (use int32_t, uint32_t, int64_t, "
                 "uint64_t, size_t, int, unsigned or a pointer)" % (where, t))
        return
    base = t.base.replace("struct ", "")
    if base not in PTR_BASE and base not in hdr.handles:
        fail("%s: pointer to %s (platform-dependent size)" % (where, t.base))


def check_callable(hdr):
    for name, (ret, params, _) in sorted(hdr.functions.items()):
        check_value_type("%s() return" % name, ret, hdr, is_return=True)
        for i, (t, _pname) in enumerate(params):
            check_value_type("%s() parameter %d" % (name, i + 1), t, hdr)
    for name in sorted(hdr.varargs - VARARGS_OK):
        fail("%s() takes varargs: not callable from ctypes (add a va_list-free "
             "variant, or allow-list it as a documented C-only convenience)" % name)
    for name in sorted(hdr.varargs & VARARGS_OK):
        doc = re.search(r"/\*\*((?:(?!\*/).)*)\*/\s*WSMSG_API[^;]*\b%s\b" % name,
                        hdr.raw, flags=re.S)
        if not doc or "FFI" not in doc.group(1):
            fail("%s(): a varargs convenience must say in its comment what FFI "
                 "callers use instead" % name)
    for name, (ret, params) in sorted(hdr.callbacks.items()):
        check_value_type("callback %s return" % name, ret, hdr, is_return=True)
        for i, (t, _p) in enumerate(params):
            check_value_type("callback %s parameter %d" % (name, i + 1), t, hdr)
    for sname, fields in sorted(hdr.structs.items()):
        for f in fields:
            if ":" in f:
                fail("struct %s: bitfield %r" % (sname, f))
                continue
            m = re.fullmatch(r"([\w\s\*]+?)\(\s*\*\s*(\w+)\s*\)\s*\((.*)\)", f)
            if m:  # function pointer member
                check_value_type("struct %s.%s return" % (sname, m.group(2)),
                                 CType(m.group(1)), hdr, is_return=True)
                for i, p in enumerate(split_params(m.group(3))):
                    if p != "void":
                        check_value_type("struct %s.%s parameter %d" % (sname, m.group(2), i + 1),
                                         parse_param(p)[0], hdr)
                continue
            t, fname = parse_param(f)
            if t.depth == 0 and t.base not in INT_FIELD:
                fail("struct %s.%s: %s (public struct fields must be int32_t, "
                     "uint32_t, int64_t, uint64_t, size_t or pointers)" % (sname, fname, t))
            elif t.depth:
                check_value_type("struct %s.%s" % (sname, fname), t, hdr)


# ---- rule 3: header == exports -------------------------------------------------------


def exported(lib):
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True,
                         capture_output=True, text=True).stdout
    return {l.split()[2] for l in out.splitlines() if len(l.split()) == 3 and
            l.split()[1] in "TtWi"}


def check_exports(hdr, lib):
    exp = exported(lib)
    for s in sorted(set(hdr.functions) - exp):
        fail("%s is declared in wsmsg.h but not exported by %s" % (s, lib))
    for s in sorted(exp - set(hdr.functions)):
        fail("%s is exported by %s but not declared in wsmsg.h" % (s, lib))


# ---- rule 4: the ctypes binding ---------------------------------------------------------


def expected_ctypes(t, hdr, capi):
    """The ctypes types acceptable for C type `t`."""
    c = ctypes
    scalar = {"int": [c.c_int], "unsigned": [c.c_uint], "unsigned int": [c.c_uint],
              "int32_t": [c.c_int32], "uint32_t": [c.c_uint32], "int64_t": [c.c_int64],
              "uint64_t": [c.c_uint64], "size_t": [c.c_size_t]}
    if t.depth == 0:
        if t.base == "void":
            return [None]
        if t.base in hdr.callbacks:
            return [capi.CALLBACKS.get(t.base)]
        return scalar.get(t.base, [])
    base = t.base.replace("struct ", "")
    if t.depth == 1:
        if base in ("char", "void", "uint8_t"):
            return [c.c_char_p, c.c_void_p, c.POINTER(c.c_char), c.POINTER(c.c_uint8)]
        if base in capi.STRUCTS:
            return [c.POINTER(capi.STRUCTS[base])]
        if base in scalar:
            return [c.POINTER(x) for x in scalar[base]]
        return []
    if t.depth == 2:
        if base == "void":
            return [c.POINTER(c.c_void_p)]
        if base in capi.STRUCTS:
            return [c.POINTER(c.POINTER(capi.STRUCTS[base]))]
    return []


def same_ctype(a, b):
    if a is b:
        return True
    if a is None or b is None:
        return False
    # POINTER(X) is cached, CFUNCTYPE prototypes compared by signature
    if hasattr(a, "_argtypes_") and hasattr(b, "_argtypes_"):
        return (same_ctype(a._restype_, b._restype_) and
                len(a._argtypes_) == len(b._argtypes_) and
                all(same_ctype(x, y) for x, y in zip(a._argtypes_, b._argtypes_)))
    return False


def check_binding(hdr, capi):
    decls = {name: (res, args) for name, res, args in capi.DECLS}
    for name in sorted(set(hdr.functions) - set(decls) - set(capi.NOT_DECLARED)):
        fail("binding: %s is not declared in _capi.DECLS (declare it, or list it "
             "in NOT_DECLARED with the reason)" % name)
    for name in sorted(set(decls) - set(hdr.functions)):
        fail("binding: _capi.DECLS declares %s, which wsmsg.h does not" % name)
    for name in sorted(set(capi.NOT_DECLARED) - hdr.varargs):
        fail("binding: %s is in NOT_DECLARED but is callable: declare it" % name)
    for name, (res, args) in sorted(decls.items()):
        if name not in hdr.functions:
            continue
        ret, params, _ = hdr.functions[name]
        ok = expected_ctypes(ret, hdr, capi)
        if not any(same_ctype(res, x) for x in ok):
            fail("binding: %s restype %r, header returns %s" % (name, res, ret))
        if len(args) != len(params):
            fail("binding: %s has %d argtypes, header %d parameters"
                 % (name, len(args), len(params)))
            continue
        for i, (a, (t, pname)) in enumerate(zip(args, params)):
            ok = expected_ctypes(t, hdr, capi)
            if not any(same_ctype(a, x) for x in ok):
                fail("binding: %s argument %d (%s): %r, header says %s"
                     % (name, i + 1, pname, a, t))
    for cname, (ret, params) in sorted(hdr.callbacks.items()):
        proto = capi.CALLBACKS.get(cname)
        if proto is None:
            fail("binding: no CFUNCTYPE for callback %s" % cname)
            continue
        if not any(same_ctype(proto._restype_, x) for x in expected_ctypes(ret, hdr, capi)):
            fail("binding: callback %s returns %r, header %s" % (cname, proto._restype_, ret))
        if len(proto._argtypes_) != len(params):
            fail("binding: callback %s takes %d arguments, header %d"
                 % (cname, len(proto._argtypes_), len(params)))
            continue
        for i, (a, (t, pname)) in enumerate(zip(proto._argtypes_, params)):
            if not any(same_ctype(a, x) for x in expected_ctypes(t, hdr, capi)):
                fail("binding: callback %s argument %d (%s): %r, header %s"
                     % (cname, i + 1, pname, a, t))


def c_layouts(hdr, cc, cflags):
    """{struct: (sizeof, {field: offset})} measured by the C compiler."""
    lines = ["#include <stddef.h>", "#include <stdio.h>", "#include <wsmsg.h>",
             "int main(void) {"]
    names = {}
    for sname, fields in sorted(hdr.structs.items()):
        lines.append('  printf("%s sizeof %%zu\\n", sizeof(%s));' % (sname, sname))
        for f in fields:
            if ":" in f:
                continue  # a bitfield (rule 2 reports it) has no offsetof
            m = re.search(r"\(\s*\*\s*(\w+)\s*\)", f)
            fname = m.group(1) if m else parse_param(f)[1]
            names.setdefault(sname, []).append(fname)
            lines.append('  printf("%s %s %%zu\\n", offsetof(%s, %s));'
                         % (sname, fname, sname, fname))
    lines += ["  return 0;", "}"]
    with tempfile.TemporaryDirectory() as d:
        src, exe = os.path.join(d, "layout.c"), os.path.join(d, "layout")
        with open(src, "w") as f:
            f.write("\n".join(lines) + "\n")
        subprocess.run([cc, "-std=c11", "-I" + os.path.dirname(HEADER)] + cflags +
                       [src, "-o", exe], check=True)
        out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
    res = {}
    for line in out.splitlines():
        s, f, v = line.split()
        size, offs = res.setdefault(s, [0, {}])
        if f == "sizeof":
            res[s][0] = int(v)
        else:
            offs[f] = int(v)
    return {k: (v[0], v[1]) for k, v in res.items()}


def check_layouts(layouts, capi):
    for sname, (size, offs) in sorted(layouts.items()):
        py = capi.STRUCTS.get(sname)
        if py is None or not getattr(py, "_fields_", None):
            fail("binding: no ctypes Structure for struct %s" % sname)
            continue
        if ctypes.sizeof(py) != size:
            fail("binding: sizeof(%s) is %d in C, %d in ctypes" % (sname, size, ctypes.sizeof(py)))
        pyf = [f[0] for f in py._fields_]
        if pyf != list(offs):
            fail("binding: %s fields %s, C has %s" % (sname, pyf, list(offs)))
        for fname, off in offs.items():
            if hasattr(py, fname) and getattr(py, fname).offset != off:
                fail("binding: %s.%s at offset %d in C, %d in ctypes"
                     % (sname, fname, off, getattr(py, fname).offset))


def check_enums(hdr, wsmsg):
    for ename, vals in sorted(hdr.enums.items()):
        if ename not in ENUMS:
            fail("enum %s is new: mirror it in the binding (and in ENUMS here) "
                 "or list why not" % ename)
            continue
        pyname, prefix = ENUMS[ename]
        if pyname is None:
            continue
        py = getattr(wsmsg, pyname)
        pyvals = {m.name: int(m.value) for m in py.__members__.values()}
        for cname, v in vals.items():
            short = cname[len(prefix):] if cname.startswith(prefix) else cname
            if short not in pyvals:
                fail("binding: %s.%s missing (C %s = %d)" % (pyname, short, cname, v))
            elif pyvals[short] != v:
                fail("binding: %s.%s = %d, C %s = %d" % (pyname, short, pyvals[short], cname, v))
        for short in set(pyvals) - {c[len(prefix):] for c in vals}:
            fail("binding: %s.%s has no C counterpart in enum %s" % (pyname, short, ename))


# ---- rule 5: the baseline --------------------------------------------------------------


def abi_lines(hdr, layouts):
    out = []
    for name, (ret, params, _) in sorted(hdr.functions.items()):
        sig = ", ".join(t.text for t, _ in params) or "void"
        if name in hdr.varargs:
            sig += ", ..."
        out.append("function %s %s(%s)" % (ret.text, name, sig))
    for name, (ret, params) in sorted(hdr.callbacks.items()):
        out.append("callback %s (*%s)(%s)" % (ret.text, name,
                                              ", ".join(t.text for t, _ in params) or "void"))
    for sname, (size, offs) in sorted(layouts.items()):
        out.append("struct %s size %d %s" % (sname, size,
                                             " ".join("%s@%d" % kv for kv in offs.items())))
    for ename, vals in sorted(hdr.enums.items()):
        for k, v in vals.items():
            out.append("enum %s %s = %d" % (ename, k, v))
    return out


def key(line):
    w = line.split()
    if w[0] == "function":
        return "function " + re.search(r"(wsmsg_\w+)\(", line).group(1)
    if w[0] == "callback":
        return "callback " + re.search(r"\(\*(\w+)\)", line).group(1)
    if w[0] == "struct":
        return "struct " + w[1]
    return "enum %s %s" % (w[1], w[2])


def check_baseline(lines, somajor, update):
    header = "# wsmsg ABI baseline for soname libwsmsg.so.%d (tests/abi/check_abi.py --update)" % somajor
    if update or not os.path.exists(BASELINE):
        with open(BASELINE, "w") as f:
            f.write(header + "\n" + "\n".join(lines) + "\n")
        print("check-abi: wrote %s (%d entries)" % (os.path.relpath(BASELINE, ROOT), len(lines)))
        return
    with open(BASELINE) as f:
        base = [l.rstrip("\n") for l in f if l.strip()]
    m = re.search(r"libwsmsg\.so\.(\d+)", base[0]) if base else None
    base_major = int(m.group(1)) if m else -1
    base = [l for l in base if not l.startswith("#")]
    if base_major != somajor:
        print("check-abi: SOMAJOR %d != baseline's %d: incompatible changes allowed; "
              "run tests/abi/check_abi.py --update to record the new ABI" % (somajor, base_major))
        return
    now = {key(l): l for l in lines}
    was = {key(l): l for l in base}
    for k in sorted(set(was) - set(now)):
        fail("ABI break without a soname bump: %s was removed (%s)" % (k, was[k]))
    for k in sorted(set(was) & set(now)):
        if was[k] != now[k]:
            fail("ABI break without a soname bump: %s changed\n    was: %s\n    now: %s"
                 % (k, was[k], now[k]))
    added = sorted(set(now) - set(was))
    if added:
        print("check-abi: %d addition(s) since the baseline (compatible): %s%s"
              % (len(added), ", ".join(a.split(" ", 1)[1] for a in added[:8]),
                 " ..." if len(added) > 8 else ""))
        print("           record them with: tests/abi/check_abi.py --update")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default=os.path.join(ROOT, "lib", "libwsmsg.so"))
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    ap.add_argument("--cflags", default="")
    ap.add_argument("--somajor", type=int, required=True)
    ap.add_argument("--update", action="store_true")
    ap.add_argument("--header", help="check this header instead (self-test)")
    ap.add_argument("--baseline", help="compare with this baseline instead")
    args = ap.parse_args()
    global HEADER, BASELINE
    HEADER = os.path.abspath(args.header or HEADER)
    BASELINE = os.path.abspath(args.baseline or BASELINE)

    with open(HEADER) as f:
        hdr = Header(f.read())
    if not hdr.functions:
        print("check-abi: parsed no function from %s" % HEADER, file=sys.stderr)
        return 1
    check_callable(hdr)
    check_exports(hdr, args.lib)
    sys.path.insert(0, os.path.join(ROOT, "examples", "ffi", "python"))
    os.environ["WSMSG_LIB"] = os.path.abspath(args.lib)
    import wsmsg
    from wsmsg import _capi
    check_binding(hdr, _capi)
    layouts = c_layouts(hdr, args.cc, args.cflags.split())
    check_layouts(layouts, _capi)
    check_enums(hdr, wsmsg)
    if not errors:
        check_baseline(abi_lines(hdr, layouts), args.somajor, args.update)
    if errors:
        for e in errors:
            print("check-abi: " + e, file=sys.stderr)
        print("check-abi: %d problem(s)" % len(errors), file=sys.stderr)
        return 1
    print("check-abi: %d functions, %d callbacks, %d structs, %d enums: callable "
          "from ctypes, exported = declared, binding in step"
          % (len(hdr.functions), len(hdr.callbacks), len(hdr.structs), len(hdr.enums)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
