"""echo_server driven by a real peer: python3-websockets (Debian, 10.4).

Run alone:  /usr/bin/python3 tests/integration/test_server_websockets.py
            CASE=case_close_codes /usr/bin/python3 tests/integration/...
"""
import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import websockets  # noqa: E402  (Debian's python3-websockets)
from wsharness import EchoServer, run_cases  # noqa: E402

SIZES = [0, 1, 125, 126, 65535, 65536, 2**20 - 1, 2**20]


def run(coro, timeout=30):
    """Run a coroutine with a hard time limit."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def text_of(n):
    """A str whose UTF-8 encoding is exactly n bytes, with 1-, 2-, 3- and
    4-byte characters in it."""
    unit = "wsmsg é € 😀 "
    s = unit * (n // len(unit.encode()) + 1)
    b = s.encode()[:n]
    while True:  # cut on a character boundary, pad with ASCII
        try:
            t = b.decode()
            break
        except UnicodeDecodeError:
            b = b[:-1]
    return t + "x" * (n - len(b))


def connect(srv, path="/", **kw):
    kw.setdefault("max_size", None)
    kw.setdefault("open_timeout", 5)
    kw.setdefault("close_timeout", 5)
    return websockets.connect(srv.url + path, **kw)


async def echo(ws, msg, timeout=10):
    await ws.send(msg)
    return await asyncio.wait_for(ws.recv(), timeout)


# ---- cases --------------------------------------------------------------------

def case_text_sizes(srv):
    async def go():
        async with connect(srv) as ws:
            for n in SIZES:
                msg = text_of(n)
                assert len(msg.encode()) == n
                got = await echo(ws, msg)
                assert isinstance(got, str), f"{n}: echo is not text"
                assert got == msg, f"text of {n} bytes: echo differs " \
                    f"({len(got.encode())} bytes back)"
    run(go())


def case_binary_sizes(srv):
    async def go():
        async with connect(srv) as ws:
            for n in SIZES:
                msg = os.urandom(n)
                got = await echo(ws, msg)
                assert isinstance(got, bytes), f"{n}: echo is not binary"
                assert got == msg, f"binary of {n} bytes: echo differs " \
                    f"({len(got)} bytes back)"
    run(go())


def case_pipelined_messages(srv):
    """100 messages sent before reading any echo come back in order."""
    async def go():
        async with connect(srv) as ws:
            msgs = [f"m{i}" if i % 2 else os.urandom(i) for i in range(100)]
            for m in msgs:
                await ws.send(m)
            for m in msgs:
                assert await asyncio.wait_for(ws.recv(), 10) == m
    run(go())


def case_fragmented_text(srv):
    async def go():
        async with connect(srv) as ws:
            parts = ["Hel", "lo, ", "", "wörld ", "😀" * 1000]
            got = await echo(ws, parts)
            assert got == "".join(parts), "fragmented text not reassembled"
    run(go())


def case_fragmented_binary(srv):
    async def go():
        async with connect(srv) as ws:
            parts = [os.urandom(n) for n in (1, 0, 125, 126, 70000, 3)]
            assert await echo(ws, parts) == b"".join(parts)

            async def agen():  # an async iterator is sent as fragments too
                for i in range(500):
                    yield bytes([i % 256]) * 100
            got = await echo(ws, agen())
            assert got == b"".join(bytes([i % 256]) * 100 for i in range(500))
    run(go())


def case_fragment_limit(srv):
    """Default limit: 4096 frames per message pass, 4097 get close 1009.
    websockets sends each item of an iterable as a frame and then an empty
    final frame, so N items make N + 1 frames."""
    async def go():
        async with connect(srv) as ws:
            assert await echo(ws, [b"x"] * 4095) == b"x" * 4095
            try:
                await ws.send([b"y"] * 4096)
                await asyncio.wait_for(ws.recv(), 10)
                raise AssertionError("4097 fragments were accepted")
            except websockets.ConnectionClosed as e:
                assert e.rcvd is not None, "no close frame from the server"
                assert e.rcvd.code == 1009, f"close code {e.rcvd.code}"
    run(go())


def case_message_too_big(srv):
    """Default max message 1 MiB: 1 MiB + 1 gets close 1009 with a reason."""
    async def go():
        async with connect(srv) as ws:
            try:
                await echo(ws, os.urandom(2**20 + 1))
                raise AssertionError("1 MiB + 1 was accepted")
            except websockets.ConnectionClosed as e:
                assert e.rcvd is not None, "no close frame from the server"
                assert e.rcvd.code == 1009, f"close code {e.rcvd.code}"
                assert "1048577" in e.rcvd.reason, e.rcvd.reason
    run(go())


def case_ping_payloads(srv):
    """Pings with payloads get pongs with the same payload (websockets only
    resolves the waiter of a ping whose payload came back)."""
    async def go():
        async with connect(srv) as ws:
            for payload in (b"", b"p", b"hello ping", os.urandom(125)):
                waiter = await ws.ping(payload)
                await asyncio.wait_for(waiter, 5)
            # pings between messages do not disturb the echo
            waiters = [await ws.ping(str(i)) for i in range(20)]
            assert await echo(ws, "after pings") == "after pings"
            await asyncio.wait_for(asyncio.gather(*waiters), 5)
    run(go())


CLOSES = [
    (1000, ""),
    (1000, "normal"),
    (1001, "going away"),
    (3000, "registered"),
    (4999, "private use, last code"),
    (1012, "service restart"),
    (1013, "try again later"),
    (1014, "bad gateway"),
    (4000, "ünïcødé 😀"),
    (1000, "r" * 123),  # the longest reason a close frame can hold
]


def case_close_codes(srv):
    """The client closes with a code and reason; the server's close frame
    carries the same code (and the same reason)."""
    async def go():
        for code, reason in CLOSES:
            async with connect(srv) as ws:
                assert await echo(ws, "before close") == "before close"
                await asyncio.wait_for(ws.close(code, reason), 5)
                assert ws.close_code == code, \
                    f"sent {code}, server answered {ws.close_code}"
                assert ws.close_reason == reason, \
                    f"sent {reason!r}, server answered {ws.close_reason!r}"
    run(go())


def case_compression_negotiated(srv):
    """websockets offers permessage-deflate by default and echo_server
    accepts it (no context takeover either way; test_server_deflate.py
    covers the parameters)."""
    async def go():
        async with connect(srv) as ws:
            assert [e.name for e in ws.extensions] == ["permessage-deflate"]
            ext = ws.response_headers.get("Sec-WebSocket-Extensions")
            assert "server_no_context_takeover" in ext, ext
            assert await echo(ws, "x" * 5000) == "x" * 5000
        async with connect(srv, compression=None) as ws:
            assert ws.extensions == [], ws.extensions
            assert ws.response_headers.get("Sec-WebSocket-Extensions") is None
            assert await echo(ws, "x" * 5000) == "x" * 5000
    run(go())


def case_subprotocol_offered_not_required(srv):
    """echo_server speaks no subprotocol: an offer is answered without one."""
    async def go():
        async with connect(srv, subprotocols=["chat"]) as ws:
            assert ws.subprotocol is None
            assert await echo(ws, "hi") == "hi"
    run(go())


def case_any_path_and_query(srv):
    async def go():
        for path in ("/", "/a/b/c", "/x?y=1&z=2", "/%20space"):
            async with connect(srv, path) as ws:
                assert await echo(ws, path) == path
    run(go())


def case_concurrent_200_clients(srv):
    """200 connections open at the same time, each echoing its own text and
    binary message, then closing with its own code."""
    N = 200

    async def one(i, opened, go_ahead):
        async with connect(srv, f"/c{i}") as ws:
            opened.append(i)
            await go_ahead.wait()
            t = f"client {i} " + "é" * i
            b = i.to_bytes(2, "big") * (i + 1)
            assert await echo(ws, t) == t, f"client {i}: text"
            assert await echo(ws, b) == b, f"client {i}: binary"
            await ws.close(3000 + i, f"bye {i}")
            assert ws.close_code == 3000 + i, f"client {i}: {ws.close_code}"
        return i

    async def go():
        opened, go_ahead = [], asyncio.Event()
        tasks = [asyncio.create_task(one(i, opened, go_ahead))
                 for i in range(N)]
        while len(opened) < N:  # all open at once before anyone sends
            done = [t for t in tasks if t.done()]
            for t in done:
                t.result()  # re-raise a failed connect
            await asyncio.sleep(0.01)
        go_ahead.set()
        res = await asyncio.gather(*tasks)
        assert sorted(res) == list(range(N))
    run(go(), timeout=60)


def case_concurrent_large_messages(srv):
    """20 clients echo 1 MiB - 1 at the same time (the server's per-read
    budget and output buffering under load)."""
    async def one(i):
        async with connect(srv) as ws:
            msg = bytes([i]) * (2**20 - 1)
            for _ in range(3):
                assert await echo(ws, msg, timeout=30) == msg, f"client {i}"

    async def go():
        await asyncio.gather(*(one(i) for i in range(20)))
    run(go(), timeout=60)


def case_server_still_serves(srv):
    """After all of the above, a new connection still works."""
    async def go():
        async with connect(srv) as ws:
            assert await echo(ws, "still here") == "still here"
    run(go())


def setup():
    return EchoServer()


def teardown(srv):
    srv.finish()  # SIGTERM: exit status must be 0 (also under ASan)


MIN_CASES = 15  # the case_* functions above: fewer means some were lost


if __name__ == "__main__":
    run_cases(globals(), setup, teardown, minimum=MIN_CASES)
