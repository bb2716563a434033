"""test_demo_server.py against examples/ffi/python/asyncio_server.py: the
same endpoints, options and replies as demo_server, on asyncio + the ctypes
binding (which loads lib/libwsmsg.so, or $WSMSG_LIB).

Under check-asan (WSMSG_ASAN_LIB set) the server loads the sanitized
library with the shared ASan/UBSan runtimes preloaded
(WSMSG_ASAN_PRELOAD); its stderr is checked for sanitizer reports.
Without those runtimes it says so and runs against lib/libwsmsg.so, which
fails under CI=true.
"""
import os
import shlex
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
from wsharness import ci_skip  # noqa: E402

server = [sys.executable, os.path.join(here, "..", "..", "examples", "ffi",
                                       "python", "asyncio_server.py")]
asan_lib = os.environ.get("WSMSG_ASAN_LIB")
if asan_lib:
    preload = os.environ.get("WSMSG_ASAN_PRELOAD", "").strip()
    if preload:
        # python is not sanitized: its own allocations are not leaks we own
        server = ["env", f"LD_PRELOAD={preload}",
                  f"WSMSG_LIB={os.path.abspath(asan_lib)}",
                  "ASAN_OPTIONS=detect_leaks=0:exitcode=86",
                  "UBSAN_OPTIONS=exitcode=86", *server]
        print(f"test_asyncio_server: the binding loads {asan_lib} (ASan)")
    else:
        ci_skip("no shared ASan runtime: the asyncio server runs against the "
                "unsanitized lib/libwsmsg.so, not " + asan_lib)
os.environ.setdefault("DEMO_SERVER", " ".join(shlex.quote(a) for a in server))
import test_demo_server  # noqa: E402

if __name__ == "__main__":
    sys.exit(test_demo_server.main())
