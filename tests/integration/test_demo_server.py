"""demo_server's endpoints driven by the python3-websockets client: valid,
invalid, non-JSON, huge and deeply nested inputs; the heartbeat; files.

DEMO_SERVER runs the same test against another server with demo_server's
options and behaviour (a command line, e.g. "python3
examples/ffi/python/asyncio_server.py"; test_asyncio_server.py does that).

    CASE=json /usr/bin/python3 tests/integration/test_demo_server.py
runs the cases whose name contains "json"; a filter that matches nothing
fails.
"""
import asyncio
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsharness import (count_ok, run_one, sanitizer_report,  # noqa: E402
                       wait_listening)

BIN = os.environ.get("EXAMPLE_BIN", "examples")
BOUND = 20.0  # seconds: generous bound on every wait (ASan, a loaded machine)
SERVER = (shlex.split(os.environ.get("DEMO_SERVER", ""))
          or [os.path.join(BIN, "demo_server")])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Demo:
    def __init__(self, *args):
        self.dir = tempfile.mkdtemp(prefix="wsmsg-demo-test-")
        self.port = free_port()
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [*SERVER, "--port", str(self.port),
             "--dir", self.dir, "--max-file", str(2 << 20), *args],
            stderr=self.log)
        try:
            wait_listening(self.port, self.proc, timeout=30)
        except RuntimeError:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.log.seek(0)
            shutil.rmtree(self.dir)
            raise RuntimeError(f"{SERVER} did not listen: "
                               f"{self.log.read()[-2000:]}") from None
        self.url = f"ws://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.terminate()
        try:
            rc = self.proc.wait(timeout=BOUND)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # by PID: the server we started
            self.proc.wait(timeout=10)
            rc = "killed: ignored SIGTERM for %ss" % BOUND
        self.log.seek(0)
        text = self.log.read()
        shutil.rmtree(self.dir)
        assert rc == 0, (rc, text[-2000:])  # under ASan: no leak at exit
        bad = sanitizer_report(text)
        assert bad is None, (bad, text[-3000:])
        return text


async def chat(d):
    async with websockets.connect(d.url + "/ws/chat") as ws:
        await ws.send("hello")
        r = await ws.recv()
        assert re.fullmatch(r"\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] "
                            r"Server received: hello", r), r
        await ws.send("é ünïcødé ✓")
        assert (await ws.recv()).endswith("Server received: é ünïcødé ✓")


async def chat_binary(d):
    """4,100 binary messages to the text-only /ws/chat: they were queued as
    events nobody reads until the 4,097th closed with 1008 "event queue
    full"; a push endpoint now refuses the first with 1003 (issue 13)."""
    async with websockets.connect(d.url + "/ws/chat") as ws:
        try:
            for _ in range(4100):
                await ws.send(b"x")
            # then a text, which the chat answers if the binaries left the
            # connection open: that fails at once, not after BOUND
            await ws.send("still open?")
            got = await asyncio.wait_for(ws.recv(), BOUND)
            raise AssertionError("the connection stayed open after binary "
                                 f"messages: got {got!r}")
        except websockets.ConnectionClosed:
            pass
        await asyncio.wait_for(ws.wait_closed(), BOUND)
        assert ws.close_code == 1003, (ws.close_code, ws.close_reason)
        assert ws.close_reason == "binary messages are not accepted here", \
            ws.close_reason


async def room(d):
    """/ws/room broadcasts each text message to every member
    (wsmsg_broadcast_json).  Members that send nothing get it only if the
    loop learns they have output: the server's on_output (issue 13);
    without it they waited until they next became readable."""
    url = d.url + "/ws/room"
    a = await websockets.connect(url)
    b = await websockets.connect(url)
    c = await websockets.connect(url)
    try:
        await a.send("hi")
        for ws in (a, b, c):
            got = json.loads(await asyncio.wait_for(ws.recv(), BOUND))
            assert got == {"text": "hi", "members": 3}, got
        await c.close()
        await b.send("bye")
        for ws in (a, b):
            got = json.loads(await asyncio.wait_for(ws.recv(), BOUND))
            assert got == {"text": "bye", "members": 2}, got
    finally:
        for ws in (a, b, c):
            await ws.close()


async def json_demo(d):
    async with websockets.connect(d.url + "/ws/json-demo", max_size=None) as ws:
        msg = {"user": "ann", "content": "hi", "timestamp": 1700000000.5}
        await ws.send(json.dumps(msg))
        r = json.loads(await ws.recv())
        assert r == {**msg, "status": "PROCESSED"}, r
        # Pydantic's extra = "ignore": message.dict() has the model's fields
        await ws.send(json.dumps({**msg, "spam": "x" * 1000}))
        r = json.loads(await ws.recv())
        assert r == {**msg, "status": "PROCESSED"}, r
        # coercion as Pydantic does: "12" -> 12 for a number
        await ws.send(json.dumps({"user": "b", "content": "c", "timestamp": "12"}))
        r = json.loads(await ws.recv())
        assert r["timestamp"] == 12 and r["status"] == "PROCESSED", r
        # invalid: structured errors, connection stays open
        await ws.send(json.dumps({"user": [1], "timestamp": "soon"}))
        r = json.loads(await ws.recv())
        assert r["error"] == "validation_error", r
        got = {(tuple(e["loc"]), e["type"]) for e in r["detail"]}
        assert (("content",), "value_error.missing") in got, got
        assert (("user",), "type_error.str") in got, got
        assert (("timestamp",), "type_error.float") in got, got
        for e in r["detail"]:
            assert set(e) >= {"loc", "msg", "type"}, e
        # U+0000 in a string is valid JSON (JSON.stringify writes it)
        nul = {"user": "a\u0000b", "content": "c", "timestamp": 1}
        await ws.send(json.dumps(nul))
        r = json.loads(await ws.recv())
        assert r["user"] == "a\u0000b" and r["status"] == "PROCESSED", r
        # ... but not in a key: an error in wsmsg's words
        await ws.send('{"a\\u0000": 1}')
        r = json.loads(await ws.recv())
        e = r["detail"][0]
        assert e["type"] == "value_error.jsondecode", e
        assert e["msg"].startswith("an object key contains \\u0000"), e
        # not JSON
        await ws.send("{this is not json")
        r = json.loads(await ws.recv())
        e = r["detail"][0]
        assert e["type"] == "value_error.jsondecode" and e["loc"] == ["__root__"], e
        assert "line 1 column" in e["msg"], e
        # deeply nested (within the JSON endpoints' 64 KiB default limit)
        await ws.send("[" * 60000)
        r = json.loads(await ws.recv())
        assert r["detail"][0]["type"] == "value_error.jsondecode", r
        # big but valid (60 KiB of content: JSON endpoints take 64 KiB by
        # default, issue 20)
        big = {"user": "u", "content": "x" * (60 << 10), "timestamp": 1}
        await ws.send(json.dumps(big))
        r = json.loads(await ws.recv())
        assert r["content"] == big["content"] and r["status"] == "PROCESSED"
        # over the 64 KiB limit: 1009
        try:
            await ws.send(json.dumps({"content": "y" * (100 << 10)}))
            await ws.recv()
            raise AssertionError("expected a close")
        except websockets.ConnectionClosed as e:
            assert e.rcvd is not None and e.rcvd.code == 1009, e


async def with_timeout(d):
    async with websockets.connect(d.url + "/ws/with-timeout") as ws:
        await ws.send("ping me")
        assert await ws.recv() == "Echo: ping me"
        t0 = time.monotonic()
        # the 300 ms receive timeout: not before it (the precise boundary is
        # in the fake-clock unit tests); the upper bound is generous
        assert await asyncio.wait_for(ws.recv(), BOUND) == "HEARTBEAT"
        dt = time.monotonic() - t0
        assert dt >= 0.2, dt
        assert await asyncio.wait_for(ws.recv(), BOUND) == "HEARTBEAT"  # again


async def file_transfer(d):
    async with websockets.connect(d.url + "/ws/file-transfer", max_size=None) as ws:
        blobs = [os.urandom(n) for n in (0, 1, 70000, 1 << 20)]
        for b in blobs:
            await ws.send(b)
            assert await ws.recv() == b"FILE_RECEIVED"
        await ws.send("text?")
        assert "binary" in await ws.recv()
        stored = sorted(os.listdir(d.dir))
        assert len(stored) == 4, stored
        sizes = sorted(os.path.getsize(os.path.join(d.dir, f)) for f in stored)
        assert sizes == sorted(len(b) for b in blobs)
        # over --max-file: 1009 and no file left behind
        try:
            await ws.send(os.urandom(3 << 20))
            await ws.recv()
            raise AssertionError("expected a close")
        except websockets.ConnectionClosed as e:
            assert e.rcvd is not None and e.rcvd.code == 1009, e
    # the server removes the partial file when it handles the close, which
    # the client cannot observe: poll the directory (bounded)
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline and len(os.listdir(d.dir)) != 4:
        await asyncio.sleep(0.02)
    assert len(os.listdir(d.dir)) == 4, os.listdir(d.dir)


async def echo(d):
    async with websockets.connect(d.url + "/ws/echo", max_size=None) as ws:
        for n in (0, 125, 126, 65536):
            await ws.send("t" * n)
            assert await ws.recv() == "t" * n
            await ws.send(b"b" * n)
            assert await ws.recv() == b"b" * n


async def unknown_path(d):
    try:
        async with websockets.connect(d.url + "/ws/nope"):
            raise AssertionError("expected 404")
    except websockets.InvalidStatusCode as e:
        assert e.status_code == 404


async def message_then_close(d):
    """A message and the close frame in one TCP segment: the server may or
    may not answer the message, but must complete the closing handshake."""
    import base64
    import struct

    def frame(op, payload, mask=b"\x01\x02\x03\x04"):
        return bytes([0x80 | op, 0x80 | len(payload)]) + mask + bytes(
            b ^ mask[i % 4] for i, b in enumerate(payload))

    host, port = d.url[len("ws://"):].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(("GET /ws/chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n" % key).encode())
        data = b""
        while b"\r\n\r\n" not in data:  # bounded by the socket timeout
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
        assert data.startswith(b"HTTP/1.1 101"), data
        data = data.split(b"\r\n\r\n", 1)[1]
        s.sendall(frame(1, b"hello") + frame(8, struct.pack("!H", 1000) + b"bye"))
        while True:  # until the server closes TCP (bounded by the timeout)
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    ops = []
    while data:
        op, n = data[0] & 0x0F, data[1] & 0x7F
        assert n < 126, data
        ops.append((op, data[2:2 + n]))
        data = data[2 + n:]
    assert ops and ops[-1][0] == 8, ops
    assert struct.unpack("!H", ops[-1][1][:2])[0] == 1000, ops
    assert all(op == 1 for op, _ in ops[:-1]), ops


CASES = [("chat", chat), ("chat binary flood", chat_binary),
         ("json-demo", json_demo),
         ("with-timeout", with_timeout), ("file-transfer", file_transfer),
         ("echo", echo), ("room", room), ("unknown path", unknown_path),
         ("message then close", message_then_close)]


def main():
    only = os.environ.get("CASE")
    cases = [(n, fn) for n, fn in CASES if not only or only in n]
    print(f"test_demo_server: {len(cases)} cases", flush=True)
    if not count_ok("test_demo_server", len(cases), len(CASES)):
        return 1
    failed = []
    d = Demo("--receive-timeout", "300")
    try:
        for name, fn in cases:
            if not run_one(name, lambda fn=fn: asyncio.run(fn(d))):
                failed.append(name)
    finally:
        log = d.stop()
    # one log line per connection event
    if not only or "json" in only:
        assert "open /ws/json-demo" in log and "close /ws/json-demo" in log, log
        assert "invalid message: " in log, log
    print(f"test_demo_server ({' '.join(SERVER)}): "
          f"{len(cases) - len(failed)}/{len(cases)} passed"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
