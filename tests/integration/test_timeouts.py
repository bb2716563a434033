"""Timeouts against real peers, for echo_server and uv_echo_server.

- a raw-socket client that never answers pings: keepalive close 1011, seen
  by the client (close frame) and by the server (its on_close log line);
- a client that sends half a handshake: 408 and dropped after the handshake
  timeout, while a python3-websockets client keeps echoing meanwhile;
- a python3-websockets client with a short ping_interval: its pings are
  answered with their payload, and the server's own pings reach it (counted
  as the client answers them); the connection stays up;
- the receive timeout with the ping action: a raw-socket client counts the
  server's pings while idle and still gets its echo afterwards;
- the receive timeout with the close action: 1001, and a peer that never
  answers the close frame is dropped after the close timeout.

The precise timer boundaries are checked on a fake clock in
tests/unit/test_timer.c.  Here time is only bounded generously (a loaded
2-core machine under ASan must not flake): a timer must not fire before its
period, and what it does must be seen within a bound far above it.  Every
wait is for an event (a frame, a close, EOF), bounded by a socket timeout.

    CASE=receive_timeout_ping /usr/bin/python3 tests/integration/test_timeouts.py
runs the cases whose name contains the CASE string (for each server).
Run with /usr/bin/python3 (Debian's python3-websockets).
"""
import asyncio
import os
import struct
import sys

import websockets
import websockets.legacy.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsharness import (OP_CLOSE, OP_PING, OP_PONG, OP_TEXT,  # noqa: E402
                       EXAMPLE_BIN, Closed, EchoServer, RawWS, ci_skip,
                       close_payload, count_ok, run_one)

import time  # noqa: E402  (only to report how long things took)

SERVERS = os.environ.get("ECHO_SERVERS", "echo_server uv_echo_server").split()
BOUND = 20.0   # seconds: far above every timer below, even under ASan
# per server: fewer means cases were lost
MIN_CASES = {"echo_server": 5, "uv_echo_server": 4}


def case_silent_client_keepalive(name):
    srv = EchoServer("--verbose", "--ping-interval", "200",
                     "--pong-timeout", "300", name=name)
    try:
        ws = RawWS(srv.port, path="/raw", timeout=BOUND)
        t0 = time.monotonic()
        fin, _, op, payload = ws.recv_frame()
        assert op == OP_PING, op               # the server pinged
        assert len(payload) == 8, payload      # with a matchable payload
        code, reason = ws.expect_close()       # we never answer: 1011
        elapsed = time.monotonic() - t0
        assert code == 1011, code
        assert "keepalive" in reason, reason
        # not before ping interval + pong timeout (500 ms, from the
        # handshake); the upper bound is the socket timeout
        assert elapsed >= 0.4, elapsed
        ws.expect_eof()  # the server closed TCP after its close frame
        ws.close()
    finally:
        srv.finish()
    log = srv.stderr()
    assert "close code=1011 clean=0 error: keepalive timeout" in log, log
    return f"closed with 1011 after {elapsed:.2f}s"


async def echo_loop(port, n):
    async with websockets.connect(f"ws://127.0.0.1:{port}/ok",
                                  open_timeout=BOUND) as ws:
        for i in range(n):
            await ws.send(f"msg {i}")
            assert await asyncio.wait_for(ws.recv(), BOUND) == f"msg {i}"
    return n


def case_half_handshake(name):
    srv = EchoServer("--handshake-timeout", "400", name=name)
    try:
        slow = RawWS(srv.port, handshake=False, timeout=BOUND)
        slow.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        t0 = time.monotonic()
        # a well-behaved client keeps working meanwhile
        assert asyncio.run(echo_loop(srv.port, 20)) == 20
        assert slow.read_response() == 408, slow.status_line
        slow.expect_eof()
        elapsed = time.monotonic() - t0
        assert elapsed >= 0.3, elapsed  # not before the 400 ms
        slow.close()
    finally:
        srv.finish()
    return f"half handshake got 408 after {elapsed:.2f}s, others unaffected"


class CountingClient(websockets.legacy.client.WebSocketClientProtocol):
    """Counts the server's pings: the protocol answers each with pong()."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.server_pings = 0
        self.pinged = asyncio.Event()

    async def pong(self, data=b""):
        self.server_pings += 1
        self.pinged.set()
        await super().pong(data)


async def pinging_client(port):
    # the client pings every 300 ms (its keepalive: a missing pong would
    # fail the connection); the server pings after 100 ms without a byte
    # from us, so both sides ping
    async with websockets.connect(f"ws://127.0.0.1:{port}/p",
                                  ping_interval=0.3, ping_timeout=BOUND,
                                  open_timeout=BOUND,
                                  create_protocol=CountingClient) as ws:
        n = 0
        for n in range(1, 6):
            await ws.send("x" * n)
            assert await asyncio.wait_for(ws.recv(), BOUND) == "x" * n
            # our ping: the waiter resolves only on a pong with this payload
            waiter = await ws.ping(b"payload-%d" % n)
            await asyncio.wait_for(waiter, BOUND)
        # the server's pings (event-based: each one sets `pinged`)
        while ws.server_pings < 3:
            ws.pinged.clear()
            await asyncio.wait_for(ws.pinged.wait(), BOUND)
        await ws.send("after pings")
        assert await asyncio.wait_for(ws.recv(), BOUND) == "after pings"
        assert ws.open
        return n, ws.server_pings


def case_client_pings(name):
    srv = EchoServer("--verbose", "--ping-interval", "100",
                     "--pong-timeout", "5000", name=name)
    try:
        n, pings = asyncio.run(pinging_client(srv.port))
        assert n == 5 and pings >= 3, (n, pings)
    finally:
        srv.finish()
    log = srv.stderr()
    assert "clean=0" not in log, log  # no keepalive failure on either side
    return f"{n} of our pings answered with their payload, {pings} server pings"


def case_receive_timeout_ping(name):
    # --ping-interval 0: no keepalive pings (the library's default is 20 s,
    # which would pass for the receive timeout's action); only the receive
    # timeout's ping action pings
    srv = EchoServer("--receive-timeout", "200", "--ping-interval", "0",
                     "--pong-timeout", "0", name=name)
    try:
        ws = RawWS(srv.port, path="/idle", timeout=BOUND)
        t0 = time.monotonic()
        pings = []
        while len(pings) < 3:  # idle: one ping per receive timeout
            try:
                fin, rsv, op, payload = ws.recv_frame()
            except (OSError, Closed) as e:
                raise AssertionError(f"after {len(pings)} pings: "
                                     f"{type(e).__name__} {e}") from None
            assert op == OP_PING, (op, payload)
            assert fin and rsv == 0
            pings.append(payload)
        elapsed = time.monotonic() - t0
        assert elapsed >= 0.5, elapsed  # three periods of 200 ms, loosely
        assert len(set(pings)) == 3, pings  # each a new payload
        # the connection is still up and echoes
        ws.send_frame(OP_TEXT, "after idle")
        op, data = ws.recv_message()
        assert (op, data) == (OP_TEXT, b"after idle"), (op, data)
        # our late pong is harmless, and our ping is answered
        ws.send_frame(OP_PONG, pings[-1])
        ws.send_frame(OP_PING, b"still there?")
        while True:
            fin, _, op, payload = ws.recv_frame()
            if op == OP_PONG:
                break
            assert op == OP_PING, op  # another receive-timeout ping
        assert payload == b"still there?", payload
        ws.send_frame(OP_CLOSE, close_payload(1000))
        assert ws.expect_close()[0] == 1000
        ws.close()
    finally:
        srv.finish()
    return f"{len(pings)} pings in {elapsed:.2f}s of idleness, still echoing"


def case_unanswered_close_dropped(name):
    # the receive timeout's close action: 1001, then the close timeout
    # drops a peer that never answers the close frame
    srv = EchoServer("--verbose", "--receive-timeout", "200",
                     "--timeout-action", "close", "--close-timeout", "300",
                     name=name)
    try:
        ws = RawWS(srv.port, path="/mute", timeout=BOUND)
        t0 = time.monotonic()
        code, reason = ws.expect_close()  # ... and we never answer it
        assert (code, reason) == (1001, "receive timeout"), (code, reason)
        t_close = time.monotonic()
        ws.expect_eof()  # the server gives up on us (bounded by BOUND)
        elapsed = time.monotonic() - t0
        assert t_close - t0 >= 0.15, t_close - t0  # not before 200 ms
        assert elapsed >= 0.4, elapsed  # and 300 ms more
        ws.close()
    finally:
        srv.finish()
    log = srv.stderr()
    assert "closing handshake not completed" in log, log
    return f"close 1001 unanswered: dropped after {elapsed:.2f}s"


# uv_echo_server has no --timeout-action (its receive timeout pings)
case_unanswered_close_dropped.servers = ("echo_server",)


def main():
    cases = [(k[len("case_"):], v) for k, v in globals().items()
             if k.startswith("case_") and callable(v)]
    only = os.environ.get("CASE")
    if only:
        cases = [(k, v) for k, v in cases if only in k]
    servers = []
    for name in SERVERS:
        if os.access(os.path.join(EXAMPLE_BIN, name), os.X_OK):
            servers.append(name)
        else:  # a missing server is a failure, not a skip
            print(f"  FAIL {name}: not built in {EXAMPLE_BIN}", flush=True)
            return 1
    runs = [(name, k, fn) for name in servers for k, fn in cases
            if name in getattr(fn, "servers", (name,))]
    total = len(runs)
    print(f"test_timeouts.py: {total} cases", flush=True)
    if not count_ok("test_timeouts.py", total,
                    sum(MIN_CASES.get(n, 4) for n in servers)):
        return 1
    failed = []
    t0 = time.monotonic()
    for name, k, fn in runs:
        notes = []

        def one(fn=fn, name=name, notes=notes):
            notes.append(fn(name))

        if run_one(f"{name} {k}", one):
            print(f"    {notes[0]}", flush=True)
        else:
            failed.append(f"{name} {k}")
    print(f"test_timeouts.py: {total - len(failed)}/{total} passed in "
          f"{time.monotonic() - t0:.1f}s"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
