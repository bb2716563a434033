#!/usr/bin/env python3
"""check_abi.py must catch what it claims to: each case edits a copy of
include/wsmsg.h (or of the baseline) and expects a failure naming the
problem.  Run by `make check-abi`."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
HDR = open(os.path.join(ROOT, "include", "wsmsg.h")).read()
BASE = open(os.path.join(HERE, "baseline.txt")).read()


def sub(old, new, text=HDR):
    assert old in text, old
    return text.replace(old, new, 1)


CASES = [
    # (what, header text, baseline text, expected substring of the output)
    ("long parameter",
     sub("wsmsg_endpoint_set_ping_interval(wsmsg_endpoint *ep, uint32_t ms)",
         "wsmsg_endpoint_set_ping_interval(wsmsg_endpoint *ep, long ms)"),
     None, "type long is not fixed-width"),
    ("struct by value",
     sub("wsmsg_conn_next_event(wsmsg_conn *conn, wsmsg_event *ev)",
         "wsmsg_conn_next_event(wsmsg_conn *conn, wsmsg_event ev)"),
     None, "struct wsmsg_event passed by value"),
    ("struct returned by value",
     sub("WSMSG_API int wsmsg_conn_error(const wsmsg_conn *conn);",
         "WSMSG_API wsmsg_close_info wsmsg_conn_error(const wsmsg_conn *conn);"),
     None, "wsmsg_conn_error() return: struct wsmsg_close_info passed by value"),
    ("enum by value",
     sub("wsmsg_endpoint_set_invalid_policy(wsmsg_endpoint *ep,\n                                                int policy)",
         "wsmsg_endpoint_set_invalid_policy(wsmsg_endpoint *ep,\n                                                enum wsmsg_invalid_policy policy)"),
     None, "enum wsmsg_invalid_policy by value"),
    ("bool",
     sub("wsmsg_endpoint_set_json(wsmsg_endpoint *ep, int on)",
         "wsmsg_endpoint_set_json(wsmsg_endpoint *ep, _Bool on)"),
     None, "type _Bool is not fixed-width"),
    ("varargs",
     sub("WSMSG_API int wsmsg_close(wsmsg_conn *conn, int code, const char *reason);",
         "WSMSG_API int wsmsg_close(wsmsg_conn *conn, int code, const char *reason, ...);"),
     None, "wsmsg_close() takes varargs"),
    ("int field in a public struct",
     sub("  int32_t clean; /**< CLOSE", "  int clean; /**< CLOSE"),
     None, "struct wsmsg_event.clean: int"),
    ("bitfield",
     sub("  int32_t remote;", "  uint32_t remote : 1;"),
     None, "bitfield"),
    ("inline function pointer parameter",
     sub("wsmsg_endpoint_on_drain(wsmsg_endpoint *ep, wsmsg_drain_cb cb)",
         "wsmsg_endpoint_on_drain(wsmsg_endpoint *ep, void (*cb)(wsmsg_conn *, void *))"),
     None, "inline function pointer"),
    ("binding out of step",
     sub("wsmsg_conn_consume(wsmsg_conn *conn, size_t n)",
         "wsmsg_conn_consume(wsmsg_conn *conn, uint32_t n)"),
     None, "binding: wsmsg_conn_consume argument 2"),
    ("declared, not exported",
     sub("WSMSG_API int wsmsg_version_number(void);",
         "WSMSG_API int wsmsg_version_number(void);\nWSMSG_API int wsmsg_not_there(void);"),
     None, "wsmsg_not_there is declared in wsmsg.h but not exported"),
    ("enum value changed",
     sub("WSMSG_INVALID_IGNORE = 2", "WSMSG_INVALID_IGNORE = 3"),
     None, "InvalidPolicy.IGNORE = 2, C WSMSG_INVALID_IGNORE = 3"),
    ("struct layout out of step with ctypes",
     sub("  int32_t error; /**< CLOSE: WSMSG_ERR_* that caused it, or 0 */",
         "  int64_t error; /**< CLOSE: WSMSG_ERR_* that caused it, or 0 */"),
     None, "wsmsg_event"),
    ("function removed (baseline)",
     HDR, BASE + "function int wsmsg_gone(void)\n",
     "ABI break without a soname bump: function wsmsg_gone was removed"),
    ("signature changed (baseline)",
     HDR, sub("function int wsmsg_close(wsmsg_conn *, int, const char *)",
              "function int wsmsg_close(wsmsg_conn *, int32_t, const char *)", BASE),
     "function wsmsg_close changed"),
]


def main():
    somajor = sys.argv[1] if len(sys.argv) > 1 else "0"
    bad = 0
    with tempfile.TemporaryDirectory() as d:
        os.mkdir(os.path.join(d, "include"))
        h, b = os.path.join(d, "include", "wsmsg.h"), os.path.join(d, "baseline.txt")
        for what, hdr, base, expect in CASES:
            with open(h, "w") as f:
                f.write(hdr)
            with open(b, "w") as f:
                f.write(base if base is not None else BASE)
            r = subprocess.run([sys.executable, os.path.join(HERE, "check_abi.py"),
                                "--somajor", somajor, "--header", h, "--baseline", b],
                               capture_output=True, text=True)
            out = r.stdout + r.stderr
            if r.returncode == 0 or expect not in out:
                bad += 1
                print("selftest: %s: not caught (rc %d), expected %r in:\n%s"
                      % (what, r.returncode, expect, out[-1500:]), file=sys.stderr)
    if bad:
        return 1
    print("check-abi selftest: %d violations caught" % len(CASES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
