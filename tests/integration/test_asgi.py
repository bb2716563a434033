"""wsmsg.asgi (WSMsgProtocol) under uvicorn against uvicorn's own WebSocket
protocols, over real sockets (python3-websockets clients and raw sockets;
Starlette's TestClient would bypass the protocol under test).

1. The FastAPI article's app (examples/ffi/python/fastapi_article.py) with
   --ws wsmsg, websockets and wsproto: demo_server's behaviour checks
   (chat, JSON validation replies, heartbeat, files, echo, limits, 403 for
   an unknown path, a message and the close frame in one segment).  Every
   reply transcript of wsmsg must equal websockets' (uvicorn's default).
2. The ASGI corner cases (tests/integration/asgi_cases_app.py): scope,
   subprotocol and extra headers, denial (403), the app raising or
   returning before/after accept, closing twice, sending after the
   disconnect, the peer's close code, flow control (an app that never
   receives), backpressure on sends, keepalive, graceful shutdown.

Where uvicorn's built-ins differ from each other or from wsmsg, the
difference is written down below (WIRE) and checked, not ignored.

    CASE=echo /usr/bin/python3 tests/integration/test_asgi.py
    ASGI_WS="wsmsg websockets" ...     (protocols to run; default all three)
"""
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time

import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from wsharness import (OP_CLOSE, OP_PING, OP_TEXT, Proc, RawWS,  # noqa: E402
                       ci_skip, count_ok, free_port, parse_close, run_one,
                       sanitizer_report, wait_listening)

ROOT = os.path.join(HERE, "..", "..")
ARTICLE = os.path.join(ROOT, "examples", "ffi", "python", "fastapi_article.py")
CASES_APP = os.path.join(HERE, "asgi_cases_app.py")
PY = sys.executable
BOUND = 20.0  # seconds: every wait (a loaded machine)
# Under check-asan (WSMSG_ASAN_LIB) the wsmsg servers load the sanitized
# library with the ASan/UBSan runtimes preloaded, as test_asyncio_server.py
# does, and only wsmsg runs (the built-ins do not use the library).
ASAN_LIB = os.environ.get("WSMSG_ASAN_LIB")
ASAN_ENV = []
if ASAN_LIB:
    _preload = os.environ.get("WSMSG_ASAN_PRELOAD", "").strip()
    if _preload:
        ASAN_ENV = ["env", f"LD_PRELOAD={_preload}",
                    f"WSMSG_LIB={os.path.abspath(ASAN_LIB)}",
                    "ASAN_OPTIONS=detect_leaks=0:exitcode=86",
                    "UBSAN_OPTIONS=exitcode=86"]
    else:
        ci_skip("no shared ASan runtime: the wsmsg servers run against the "
                "unsanitized lib/libwsmsg.so, not " + ASAN_LIB)
PROTOCOLS = os.environ.get("ASGI_WS", "wsmsg" if ASAN_LIB else
                           "wsmsg websockets wsproto").split()

# How the protocols differ on the wire (docs/ffi.md, "FastAPI on wsmsg").
WIRE = {
    # the app raised after accept: wsmsg closes with 1011, the built-ins
    # drop TCP (the client sees 1006)
    "app_error_close": {"wsmsg": 1011, "websockets": 1006, "wsproto": 1006},
    # uvicorn stops: 1012; uvicorn 0.17.6's websockets protocol drops TCP
    "shutdown_close": {"wsmsg": 1012, "websockets": 1006, "wsproto": 1012},
    # ws_max_size enforced (1009); wsproto 0.17.6 ignores it
    "max_size": {"wsmsg": True, "websockets": True, "wsproto": False},
    # ws_ping_interval/ws_ping_timeout; wsproto 0.17.6 sends no pings
    "keepalive": {"wsmsg": True, "websockets": True, "wsproto": False},
    # the app returned after accept: closed with 1000; wsproto 0.17.6
    # leaves the connection open
    "return_closes": {"wsmsg": True, "websockets": True, "wsproto": False},
    # invalid UTF-8 in a text message: 1007; wsproto 0.17.6 drops TCP
    "invalid_utf8": {"wsmsg": 1007, "websockets": 1007, "wsproto": None},
    # Sec-WebSocket-Version: 12 (426 with the version we speak, RFC 6455 4.4)
    "bad_version": {"wsmsg": 426, "websockets": 400, "wsproto": 426},
    # the app closes while reading is paused and the peer's close frame is
    # behind unread data: wsmsg reads on (dropping data) and completes the
    # handshake; websockets never reads it (the peer's send fails after
    # 20 s), wsproto resets the connection
    "close_unread": {"wsmsg": True, "websockets": False, "wsproto": False},
    # the client left before the app accepted: what receive gave, what a
    # late accept raised (None: receive never returns)
    "late_accept": {"wsmsg": [1006, "ClientDisconnected"],
                    "websockets": None, "wsproto": None},
    # what a producer's send raises once uvicorn is stopping
    "push_after_shutdown": {"wsmsg": "ClientDisconnected",
                            "websockets": "ConnectionClosedError",
                            "wsproto": "LocalProtocolError"},
    # what a send after the disconnect raises in the app
    "send_after": {"wsmsg": "ClientDisconnected", "websockets": "RuntimeError",
                   "wsproto": "LocalProtocolError"},
}
# lines in a server's stderr that mean the protocol itself failed
PROTOCOL_FAILURES = ("Fatal error: protocol", "Exception in callback",
                     "Task exception was never retrieved",
                     "Fatal error on transport", "Fatal write error")


class Server(Proc):
    def __init__(self, script, ws, *args):
        self.ws = ws
        self.script = script
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="wsmsg-asgi-test-")
        argv = [*(ASAN_ENV if ws == "wsmsg" else []),
                PY, script, "--port", str(self.port), "--ws", ws, *args]
        if script == ARTICLE:
            argv += ["--dir", self.dir]
        super().__init__(argv)
        try:
            wait_listening(self.port, self.p, timeout=30)
        except RuntimeError:
            self.p.kill()
            self.p.wait(timeout=10)
            raise RuntimeError(f"{argv} did not listen: {self.stderr()[-2000:]}")
        self.url = f"ws://127.0.0.1:{self.port}"

    def finish(self):
        try:
            rc = self.stop(timeout=BOUND)
            err = self.stderr()
            if os.environ.get("VERBOSE"):
                print(f"---- {os.path.basename(self.script)} [{self.ws}] log\n{err}----", flush=True)
            assert rc == 0, f"{self.argv} exited {rc}:\n{err[-3000:]}"
            bad = sanitizer_report(err)
            assert bad is None, f"{bad}\n{err[-3000:]}"
            for mark in PROTOCOL_FAILURES:
                assert mark not in err, f"{mark!r} in the server's log:\n{err[-3000:]}"
            return err
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, BOUND * 2))


async def expect_closed(ws, code):
    """The server ends the connection with `code` (1006: without a close
    frame)."""
    try:
        for _ in range(100):  # bounded: at most 100 messages before the close
            await asyncio.wait_for(ws.recv(), BOUND)
        raise AssertionError("still open after 100 messages")
    except websockets.ConnectionClosed as e:
        got = e.rcvd.code if e.rcvd is not None else 1006
        assert got == code, (got, code, e)


async def expect_status(url, status):
    try:
        async with websockets.connect(url, open_timeout=BOUND):
            raise AssertionError(f"expected HTTP {status}, got 101")
    except websockets.InvalidStatusCode as e:
        assert e.status_code == status, (e.status_code, status)


# ---- 1. the article's app -------------------------------------------------------

STAMP = re.compile(r"^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] ")


async def a_chat(s):
    async with websockets.connect(s.url + "/ws/chat") as ws:
        out = []
        for m in ("hello", "é ünïcødé ✓", ""):
            await ws.send(m)
            r = await ws.recv()
            assert STAMP.match(r) and r.endswith("Server received: " + m), r
            out.append(STAMP.sub("[T] ", r))
        return out


async def a_chat_binary(s):
    """receive_text() on a binary message raises in the app (KeyError)."""
    async with websockets.connect(s.url + "/ws/chat") as ws:
        await ws.send(b"x")
        await expect_closed(ws, WIRE["app_error_close"][s.ws])
    return "closed"


async def a_json_demo(s):
    out = []
    async with websockets.connect(s.url + "/ws/json-demo", max_size=None) as ws:
        async def ask(text):
            await ws.send(text)
            r = json.loads(await ws.recv())
            out.append(r)
            return r
        msg = {"user": "ann", "content": "hi", "timestamp": 1700000000.5}
        assert await ask(json.dumps(msg)) == {**msg, "status": "PROCESSED"}
        # pydantic's default extra = "ignore"
        r = await ask(json.dumps({**msg, "spam": "x" * 1000}))
        assert r == {**msg, "status": "PROCESSED"}, r
        # coercion: "12" -> 12.0
        r = await ask(json.dumps({"user": "b", "content": "c", "timestamp": "12"}))
        assert r["timestamp"] == 12 and r["status"] == "PROCESSED", r
        r = await ask(json.dumps({"user": [1], "timestamp": "soon"}))
        assert r["error"] == "validation_error", r
        got = {(tuple(e["loc"]), e["type"]) for e in r["detail"]}
        assert got == {(("user",), "type_error.str"),
                       (("content",), "value_error.missing"),
                       (("timestamp",), "type_error.float")}, got
        r = await ask(json.dumps({"user": "a\u0000b", "content": "c", "timestamp": 1}))
        assert r["user"] == "a\u0000b" and r["status"] == "PROCESSED", r
        r = await ask("{this is not json")
        e = r["detail"][0]
        assert e["type"] == "value_error.jsondecode" and e["loc"] == ["__root__"], e
        assert "line 1 column" in e["msg"], e
        big = {"user": "u", "content": "x" * (900 << 10), "timestamp": 1}
        await ws.send(json.dumps(big))
        r = json.loads(await ws.recv())
        assert r["content"] == big["content"] and r["status"] == "PROCESSED"
        out.append("900 KiB ok")
        await ws.send(json.dumps({"content": "y" * (2 << 20)}))  # > ws_max_size
        if WIRE["max_size"][s.ws]:
            await expect_closed(ws, 1009)
        else:
            r = json.loads(await ws.recv())
            assert r["error"] == "validation_error", r
    return out


async def a_json_nested(s):
    """100 000 nested brackets: json.loads raises RecursionError in the
    app (pydantic does not catch it)."""
    async with websockets.connect(s.url + "/ws/json-demo") as ws:
        await ws.send("[" * 100000)
        await expect_closed(ws, WIRE["app_error_close"][s.ws])
    return "closed"


async def a_with_timeout(s):
    async with websockets.connect(s.url + "/ws/with-timeout") as ws:
        await ws.send("ping me")
        assert await ws.recv() == "Echo: ping me"
        t0 = time.monotonic()
        assert await asyncio.wait_for(ws.recv(), BOUND) == "HEARTBEAT"
        assert time.monotonic() - t0 >= 0.2  # not before the 300 ms wait_for
        assert await asyncio.wait_for(ws.recv(), BOUND) == "HEARTBEAT"
        await ws.send("again")
        assert await ws.recv() == "Echo: again"
    return "ok"


async def a_file_transfer(s):
    async with websockets.connect(s.url + "/ws/file-transfer", max_size=None) as ws:
        blobs = [os.urandom(n) for n in (0, 1, 70000, 512 << 10)]
        for b in blobs:
            await ws.send(b)
            assert await ws.recv() == b"FILE_RECEIVED"
        await ws.send("text?")
        assert await ws.recv() == "send files as binary messages"
        stored = sorted(os.listdir(s.dir))
        sizes = sorted(os.path.getsize(os.path.join(s.dir, f)) for f in stored)
        assert sizes == sorted(len(b) for b in blobs), sizes
        contents = sorted(open(os.path.join(s.dir, f), "rb").read() for f in stored)
        assert contents == sorted(blobs)
        await ws.send(os.urandom(3 << 20))
        if WIRE["max_size"][s.ws]:
            await expect_closed(ws, 1009)
            assert len(os.listdir(s.dir)) == 4
        else:
            assert await ws.recv() == b"FILE_RECEIVED"
    return sizes


async def a_echo(s):
    async with websockets.connect(s.url + "/ws/echo", max_size=None) as ws:
        for n in (0, 125, 126, 65535, 65536, 1 << 20):
            await ws.send("t" * n)
            assert await ws.recv() == "t" * n
            await ws.send(b"b" * n)
            assert await ws.recv() == b"b" * n
        # pipelined: 200 messages out before the first reply is read
        msgs = ["m%03d" % i for i in range(200)]
        for m in msgs:
            await ws.send(m)
        got = [await ws.recv() for _ in msgs]
        assert got == msgs
        # 4 MiB of 2-byte characters, 3000 messages out before any reply is
        # read: flow control's accounting must come back to zero (a drift
        # between bytes and characters would leave reading paused)
        for burst in range(2):
            for i in range(1500):
                await ws.send("é" * 700)
            for i in range(1500):
                assert await asyncio.wait_for(ws.recv(), BOUND) == "é" * 700
    return "ok"


async def a_unknown_path(s):
    await expect_status(s.url + "/ws/nope", 403)  # Starlette closes: 403
    return 403


def a_message_then_close(s):
    """A message and the close frame in one TCP segment: the closing
    handshake completes with 1000 (the reply may or may not come first)."""
    raw = RawWS(s.port, "/ws/echo", timeout=BOUND)
    try:
        raw.send_raw(raw.frame(OP_TEXT, "hello") +
                     raw.frame(OP_CLOSE, struct.pack("!H", 1000) + b"bye"))
        ops = []
        while True:
            _, _, op, payload = raw.recv_frame()
            ops.append((op, payload))
            if op == OP_CLOSE:
                break
        assert parse_close(ops[-1][1])[0] == 1000, ops
        assert all(o == (OP_TEXT, b"hello") for o in ops[:-1]), ops
        raw.expect_eof()
    finally:
        raw.close()
    return "closed 1000"


ARTICLE_CASES = [a_chat, a_chat_binary, a_json_demo, a_json_nested, a_with_timeout,
                 a_file_transfer, a_echo, a_unknown_path, a_message_then_close]


# ---- 2. ASGI corner cases ---------------------------------------------------------

async def report(s):
    async with websockets.connect(s.url + "/report") as ws:
        return json.loads(await ws.recv())


async def poll_report(s, key):
    """The app's report once REPORT[key] is not empty (bounded)."""
    deadline = time.monotonic() + BOUND
    while True:
        r = await report(s)
        if r[key] or time.monotonic() > deadline:
            return r
        await asyncio.sleep(0.02)


async def c_scope(s):
    url = s.url + "/scope/a%20b?x=1&y=%C3%A9"
    async with websockets.connect(url, subprotocols=["p1", "p2"]) as ws:
        assert ws.subprotocol == "p1", ws.subprotocol
        assert ws.response_headers.get("x-extra") == "yes", ws.response_headers
        # ws_per_message_deflate (uvicorn's default: on)
        assert [e.name for e in ws.extensions] == ["permessage-deflate"], \
            ws.response_headers
        sc = json.loads(await ws.recv())
        assert sc["type"] == "websocket" and sc["asgi"]["spec_version"] == "2.3", sc
        assert sc["path"] == "/scope/a b", sc
        assert sc["raw_path"] == "/scope/a%20b", sc
        assert sc["query_string"] == "x=1&y=%C3%A9", sc
        assert sc["subprotocols"] == ["p1", "p2"], sc
        assert sc["client"][0] == "127.0.0.1" and sc["server"] == ["127.0.0.1", s.port], sc
        assert sc["scheme"] == "ws" and sc["root_path"] == "" and \
            sc["http_version"] == "1.1", sc
        assert sc["headers_are_bytes"], sc
        assert {"host", "sec-websocket-key", "upgrade", "connection"} <= \
            set(sc["header_names"]), sc
        await ws.send("t")
        assert await ws.recv() == "t"
        await ws.send(b"b")
        assert await ws.recv() == b"b"
    sc["client"] = sc["client"][0]
    return sc


async def c_deny(s):
    await expect_status(s.url + "/deny", 403)


async def c_raise_before(s):
    await expect_status(s.url + "/raise-before", 500)


async def c_return_before(s):
    await expect_status(s.url + "/return-before", 500)


async def c_raise_after(s):
    async with websockets.connect(s.url + "/raise-after") as ws:
        assert await ws.recv() == "ok"
        await expect_closed(ws, WIRE["app_error_close"][s.ws])


async def c_return_after(s):
    if not WIRE["return_closes"][s.ws]:
        return "n/a"
    async with websockets.connect(s.url + "/return-after") as ws:
        assert await ws.recv() == "ok"
        await expect_closed(ws, 1000)


async def c_close_code(s):
    async with websockets.connect(s.url + "/close-code") as ws:
        await expect_closed(ws, 4001)
        assert ws.close_reason == "custom", ws.close_reason
    r = await poll_report(s, "close_twice")
    assert r["close_twice"] == ["RuntimeError"], r


async def c_disconnect_code(s):
    async with websockets.connect(s.url + "/disconnect") as ws:
        await ws.close(4321, "bye")
    r = await poll_report(s, "disconnect_codes")
    assert r["disconnect_codes"] == [4321], r


def c_late_accept(s):
    """The client leaves before the app accepts: the app's receive says
    so, and its late accept raises instead of writing to a closed socket."""
    want = WIRE["late_accept"][s.ws]
    if want is None:
        return "n/a"  # the app's receive never returns (it would hang the test)
    raw = RawWS(s.port, handshake=False, timeout=BOUND)
    raw.send_raw(b"GET /late-accept HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Key: "
                 b"dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    raw.close()
    # both entries are made in one step of the app's task
    r = asyncio.run(poll_report(s, "late_accept"))
    assert r["late_accept"] == want, r


async def c_send_after(s):
    async with websockets.connect(s.url + "/send-after") as ws:
        await ws.close(1000)
    r = await poll_report(s, "send_after")
    assert r["send_after"] == [WIRE["send_after"][s.ws]], r


def c_never_receive(s):
    """An app that never receives: the server stops reading (the client
    cannot push more than the socket buffers and a bounded queue)."""
    raw = RawWS(s.port, "/never-receive", timeout=BOUND)
    try:
        assert raw.recv_message() == (OP_TEXT, b"ready")
        frame = raw.frame(0x2, os.urandom(64 << 10))
        raw.sock.setblocking(False)
        sent, cap = 0, 96 << 20
        view = memoryview(b"")
        import select
        while sent < cap:
            if not view:
                view = memoryview(frame)
            try:
                n = raw.sock.send(view)
                sent += n
                view = view[n:]
            except BlockingIOError:
                # the server stopped reading: nothing drains for 1 s
                if not select.select([], [raw.sock], [], 1.0)[1]:
                    break
        assert sent < 48 << 20, f"the server read {sent} bytes the app never took"
    finally:
        raw.close()
    # the server goes on serving
    r = asyncio.run(report(s))
    assert "flood_sent" in r
    asyncio.run(expect_status(s.url + "/release", 403))
    return "paused"


def c_close_unread(s):
    """The app stopped reading (the peer flooded it), closes, and stays
    alive without receiving: its close frame goes out, and the peer's reply,
    behind megabytes the app will never take, is still read (reading
    resumes and the data is dropped): the closing handshake completes."""
    if not WIRE["close_unread"][s.ws]:
        return "n/a"
    raw = RawWS(s.port, "/close-unread", timeout=BOUND)
    try:
        assert raw.recv_message() == (OP_TEXT, b"ready")
        frame = raw.frame(0x2, os.urandom(64 << 10))
        raw.sock.setblocking(False)
        sent, view = 0, memoryview(b"")
        import select
        while sent < 96 << 20:
            if not view:
                view = memoryview(frame)
            try:
                n = raw.sock.send(view)
                sent += n
                view = view[n:]
            except BlockingIOError:
                if not select.select([], [raw.sock], [], 1.0)[1]:
                    break  # paused
        raw.sock.settimeout(BOUND)
        asyncio.run(expect_status(s.url + "/release-close", 403))
        code, _ = raw.expect_close()
        assert code == 1000, code
        raw.send_raw(bytes(view))  # the rest of the frame under way
        raw.send_raw(raw.frame(OP_CLOSE, struct.pack("!H", 1000)))
        raw.expect_eof()
    finally:
        raw.close()
        asyncio.run(expect_status(s.url + "/release-end", 403))


async def c_flood(s):
    """The app sends 128 MiB to a client that does not read: its sends
    wait (backpressure) instead of buffering everything."""
    async with websockets.connect(s.url + "/flood", max_size=None, max_queue=1,
                                  compression=None,
                                  read_limit=1 << 16) as ws:
        last, same = -1, 0
        deadline = time.monotonic() + BOUND
        while same < 5 and time.monotonic() < deadline:
            n = (await report(s))["flood_sent"]
            same = same + 1 if n == last else 0
            last = n
            await asyncio.sleep(0.1)
        print(f"    flood [{s.ws}]: {last} MiB sent to a client that reads nothing")
        assert last < 64, f"{last} MiB sent to a client that reads nothing"
        for _ in range(128):
            assert len(await asyncio.wait_for(ws.recv(), BOUND)) == 1 << 20
        await expect_closed(ws, 1000)
    assert (await report(s))["flood_sent"] == 128
    return "waited"


def c_invalid_utf8(s):
    raw = RawWS(s.port, "/scope/x", timeout=BOUND)
    try:
        raw.recv_message()  # the scope
        raw.send_frame(OP_TEXT, b"\xff\xfe")
        want = WIRE["invalid_utf8"][s.ws]
        if want is None:
            raw.expect_eof()
        else:
            code, _ = raw.expect_close()
            assert code == want, code
    finally:
        raw.close()


def c_bad_version(s):
    """Sec-WebSocket-Version 12: refused before the app runs."""
    raw = RawWS(s.port, handshake=False, timeout=BOUND)
    try:
        raw.send_raw(b"GET /scope/x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Key: "
                     b"dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 12\r\n\r\n")
        status = raw.read_response()
        assert status == WIRE["bad_version"][s.ws], status
        if status == 426:
            assert raw.headers.get("sec-websocket-version") == "13", raw.headers
    finally:
        raw.close()


def c_keepalive(s):
    """ws_ping_interval/ws_ping_timeout (0.3 s each on this server): a
    client that never answers pings is closed with 1011."""
    if not WIRE["keepalive"][s.ws]:
        return "n/a"
    s = Server(CASES_APP, s.ws, "--ping-interval", "0.3", "--ping-timeout", "0.3")
    raw = RawWS(s.port, "/disconnect", timeout=BOUND)
    try:
        ops = []
        while True:
            _, _, op, payload = raw.recv_frame()
            ops.append(op)
            if op == OP_CLOSE:
                break
        assert OP_PING in ops, ops
        assert parse_close(payload)[0] == 1011, parse_close(payload)
    finally:
        raw.close()
        s.finish()


async def c_no_leak(s):
    """After every case above, the only wsmsg connection left is the one
    asking (the report's own): each one was freed, however its app ended."""
    if s.ws != "wsmsg":
        return "n/a"
    deadline = time.monotonic() + BOUND
    while True:
        n = (await report(s))["live_conns"]
        if n == 1 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert n == 1, f"{n} wsmsg connections alive"


CORNER_CASES = [c_scope, c_deny, c_raise_before, c_return_before, c_raise_after,
                c_return_after, c_close_code, c_disconnect_code, c_late_accept,
                c_send_after,
                c_never_receive, c_close_unread, c_flood, c_invalid_utf8, c_bad_version,
                c_keepalive, c_no_leak]


async def shutdown_case(s):
    """SIGTERM: uvicorn shuts down; open WebSockets are closed with 1012
    (see WIRE) and the server exits 0 (checked by finish()); a producer
    app that never receives learns it from its next send."""
    async with websockets.connect(s.url + "/scope/x") as ws, \
            websockets.connect(s.url + "/push") as push:
        await ws.recv()
        assert await push.recv() == "tick"
        s.send_signal(signal.SIGTERM)
        await expect_closed(ws, WIRE["shutdown_close"][s.ws])
        await expect_closed(push, WIRE["shutdown_close"][s.ws])
    rc = s.wait(BOUND)
    assert rc == 0, rc
    want = "push ended: " + WIRE["push_after_shutdown"][s.ws]
    assert want in s.stderr(), s.stderr()[-2000:]


# ---- the runner ---------------------------------------------------------------

def call(fn, s):
    r = fn(s)
    return run(r) if asyncio.iscoroutine(r) else r


def main():
    only = os.environ.get("CASE")
    names = [f.__name__ for f in ARTICLE_CASES + CORNER_CASES] + ["shutdown"]
    names = [n for n in names if not only or only in n]
    total = len(names) * len(PROTOCOLS)
    print(f"test_asgi: {total} cases ({len(names)} x {' '.join(PROTOCOLS)})",
          flush=True)
    if not count_ok("test_asgi", total, 27 * len(PROTOCOLS)):
        return 1
    failed = []
    transcripts = {}
    for ws in PROTOCOLS:
        for script, cases, args in (
                (ARTICLE, ARTICLE_CASES, ["--max-size", str(1 << 20),
                                          "--receive-timeout", "0.3"]),
                (CASES_APP, CORNER_CASES + [shutdown_case], [])):
            cases = [c for c in cases if not only or only in
                     (c.__name__ if c is not shutdown_case else "shutdown")]
            if not cases:
                continue
            s = Server(script, ws, *args)
            try:
                for fn in cases:
                    label = f"{fn.__name__} [{ws}]"

                    def one(fn=fn):
                        transcripts[(fn.__name__, ws)] = call(fn, s)
                    if not run_one(label, one):
                        failed.append(label)
            finally:
                try:
                    err = s.finish()
                    if script == CASES_APP and (not only or "shutdown" in only):
                        # lifespan ran around the connections
                        assert "Application shutdown complete" in err, err[-2000:]
                except Exception as e:  # noqa: BLE001
                    failed.append(f"server ({ws})")
                    print(f"  FAIL server [{ws}] {os.path.basename(script)}: {e}",
                          flush=True)
    # wsmsg and uvicorn's default (websockets) give the app's clients the
    # same replies
    if "wsmsg" in PROTOCOLS and "websockets" in PROTOCOLS:
        for fn in ARTICLE_CASES + [c_scope]:
            a = transcripts.get((fn.__name__, "wsmsg"))
            b = transcripts.get((fn.__name__, "websockets"))
            if a is None or b is None:
                continue
            if isinstance(a, dict):  # the scope: the ports differ
                a = {k: v for k, v in a.items() if k not in ("server",)}
                b = {k: v for k, v in b.items() if k not in ("server",)}
            if a != b:
                failed.append(f"{fn.__name__}: wsmsg != websockets")
                print(f"  FAIL {fn.__name__}: wsmsg gave {str(a)[:300]}, "
                      f"websockets {str(b)[:300]}", flush=True)
    print(f"test_asgi: {total - len([f for f in failed if '[' in f])}/{total} "
          f"passed" + (f"; FAILED: {', '.join(failed)}" if failed else ""),
          flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
