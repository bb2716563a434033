"""test_demo_server.py against examples/ffi/python/asyncio_server.py: the
same endpoints, options and replies as demo_server, on asyncio + the ctypes
binding (which loads lib/libwsmsg.so, or $WSMSG_LIB).

Plus one case of its own: SIGTERM drains through the binding's
Server.drain() -- every open client gets 1001 "going away", a connection
still in its handshake is ended without an answer, and the process exits 0
once the close handshakes are done (well before its drain timeout).
CASE=sigterm runs that case alone.

Under check-asan (WSMSG_ASAN_LIB set) the server loads the sanitized
library with the shared ASan/UBSan runtimes preloaded
(WSMSG_ASAN_PRELOAD); its stderr is checked for sanitizer reports.
Without those runtimes it says so and runs against lib/libwsmsg.so, which
fails under CI=true.
"""
import asyncio
import os
import shlex
import signal
import socket
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
from wsharness import ci_skip, run_one  # noqa: E402

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
import websockets  # noqa: E402

BOUND = test_demo_server.BOUND


def sigterm_drain():
    # a drain timeout far beyond BOUND: the exit must come from the close
    # handshakes finishing, not from the timeout
    d = test_demo_server.Demo("--drain-timeout", "120000")
    try:
        async def go():
            clients = [await websockets.connect(d.url + "/ws/echo",
                                                open_timeout=BOUND,
                                                close_timeout=BOUND)
                       for _ in range(3)]
            for i, ws in enumerate(clients):  # really open
                await ws.send(f"hi {i}")
                assert await asyncio.wait_for(ws.recv(), BOUND) == f"hi {i}"
            host, port = d.url[len("ws://"):].split(":")
            half = socket.create_connection((host, int(port)), BOUND)
            half.sendall(b"GET /ws/echo HTTP/1.1\r\nHost: x\r\n")  # unfinished
            await asyncio.sleep(0)
            # the server has it once the echo below comes back on a
            # connection opened after it
            probe = await websockets.connect(d.url + "/ws/echo",
                                             open_timeout=BOUND)
            await probe.send("probe")
            assert await asyncio.wait_for(probe.recv(), BOUND) == "probe"
            clients.append(probe)
            d.proc.send_signal(signal.SIGTERM)
            for i, ws in enumerate(clients):
                try:
                    await asyncio.wait_for(ws.recv(), BOUND)
                    raise AssertionError(f"client {i}: a message, not a close")
                except websockets.ConnectionClosed as e:
                    assert e.rcvd is not None, f"client {i}: no close frame"
                    assert (e.rcvd.code, e.rcvd.reason) == (1001, "going away"), \
                        (i, e.rcvd.code, e.rcvd.reason)
                await asyncio.wait_for(ws.wait_closed(), BOUND)
            # the unfinished handshake is ended without an answer
            half.settimeout(BOUND)
            got = half.recv(100)
            half.close()
            assert got == b"", got
        asyncio.run(asyncio.wait_for(go(), 3 * BOUND))
        try:
            rc = d.proc.wait(BOUND)
        except Exception:
            raise AssertionError(f"still running {BOUND} s after SIGTERM with "
                                 "every peer gone") from None
        assert rc == 0, rc
    finally:
        log = d.stop()  # (already exited: collects the log, checks rc 0)
    assert "closing " in log, log[-2000:]
    assert "drain timeout" not in log, log[-2000:]


def main():
    only = os.environ.get("CASE")
    demo = [n for n, _ in test_demo_server.CASES if not only or only in n]
    mine = not only or only in "sigterm drain"
    if not demo and not mine:
        print(f"test_asyncio_server: FAIL: CASE={only!r} matches nothing")
        return 1
    rc = test_demo_server.main() if demo else 0
    if mine and not run_one("sigterm drain (asyncio_server)", sigterm_drain):
        rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
