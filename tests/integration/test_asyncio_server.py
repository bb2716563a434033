"""test_demo_server.py against examples/ffi/python/asyncio_server.py: the
same endpoints, options and replies as demo_server, on asyncio + the ctypes
binding (which loads lib/libwsmsg.so, or $WSMSG_LIB).
"""
import os
import shlex
import sys

here = os.path.dirname(os.path.abspath(__file__))
os.environ.setdefault("DEMO_SERVER", "%s %s" % (
    shlex.quote(sys.executable),
    shlex.quote(os.path.join(here, "..", "..", "examples", "ffi", "python",
                             "asyncio_server.py"))))
sys.path.insert(0, here)
import test_demo_server  # noqa: E402

if __name__ == "__main__":
    sys.exit(test_demo_server.main())
