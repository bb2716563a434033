"""examples/echo_client against real servers: a python3-websockets server
(in a thread of this process) and, for what websockets would never send, a
hand-written server on a raw socket.

Run alone:  /usr/bin/python3 tests/integration/test_client_websockets.py
            CASE=case_binary_file_round_trip /usr/bin/python3 tests/...
"""
import asyncio
import http
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import websockets  # noqa: E402
from websockets.datastructures import Headers  # noqa: E402
from wsharness import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG,  # noqa
                       OP_TEXT, RawWS, accept_key, binary, close_payload,
                       SANITIZER_EXIT, free_port, parse_close, run_cases,
                       sanitizer_report)

BOUND = 20.0  # seconds: every wait (ASan, a loaded machine)


# ---- a python3-websockets server in a background thread ------------------------------

class PyServer:
    """websockets server on 127.0.0.1:<free port>.  Paths:
      /echo       echo every message
      /whoami     first send {"subprotocol", "headers"} as JSON, then echo
      /close4000  close at once with 4000 "server says bye"
      /forbidden  answer the upgrade with 403
    Each finished connection is recorded in self.seen[path] as a dict with
    the close code/reason the client sent and the messages received."""

    def __init__(self):
        self.port = free_port()
        self.seen = {}
        self.lock = threading.Condition()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("websockets server did not start")

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def process_request(path, headers):
            if path.startswith("/forbidden"):
                return (http.HTTPStatus.FORBIDDEN,
                        Headers([("Content-Type", "text/plain")]),
                        b"go away\n")
            return None

        async def handler(ws):
            headers = {k.lower(): v for k, v in ws.request_headers.raw_items()}
            rec = {"messages": [], "headers": headers,
                   "subprotocol": ws.subprotocol}
            try:
                if ws.path.startswith("/close4000"):
                    await ws.close(4000, "server says bye")
                    return
                if ws.path.startswith("/whoami"):
                    await ws.send(json.dumps({
                        "subprotocol": ws.subprotocol,
                        "headers": headers}))
                async for msg in ws:  # also drains what came before close
                    rec["messages"].append(msg)
                    try:
                        await ws.send(msg)
                    except websockets.ConnectionClosed:
                        pass  # the client closed: record the rest
            except websockets.ConnectionClosed:
                pass
            finally:
                await ws.wait_closed()
                rec["close_code"] = ws.close_code
                rec["close_reason"] = ws.close_reason
                with self.lock:
                    self.seen.setdefault(ws.path, []).append(rec)
                    self.lock.notify_all()

        async def main():
            self.server = await websockets.serve(
                handler, "127.0.0.1", self.port, max_size=None,
                subprotocols=["chat.v2", "chat.v1"],
                process_request=process_request, close_timeout=5)
            self.stop_ev = asyncio.Event()
            self.ready.set()
            await self.stop_ev.wait()
            self.server.close()
            await self.server.wait_closed()

        self.loop.run_until_complete(main())

    def record(self, path, timeout=BOUND):
        """The server's record of the (single) connection to `path`, once
        the handler has finished it (waits on a condition, bounded)."""
        with self.lock:
            if self.lock.wait_for(lambda: path in self.seen, timeout):
                return self.seen[path][-1]
        raise AssertionError(f"the server saw no finished connection on "
                             f"{path} within {timeout} s")

    def stop(self):
        self.loop.call_soon_threadsafe(self.stop_ev.set)
        self.thread.join(10)
        assert not self.thread.is_alive(), "websockets server did not stop"

    def url(self, path):
        return f"ws://127.0.0.1:{self.port}{path}"


def client(*args, stdin=b"", timeout=BOUND + 10):
    """Run echo_client; returns CompletedProcess (stdout/stderr as str).
    Every case here should finish long before echo_client's own --timeout:
    hitting it means the client hung, whatever its exit status."""
    argv = [binary("echo_client"), "--timeout", "15000", *args]
    p = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)
    p.stdout = p.stdout.decode("utf-8", errors="replace")
    p.stderr = p.stderr.decode("utf-8", errors="replace")
    no_sanitizer_report(p.returncode, p.stderr)
    assert "echo_client: timeout" not in p.stderr, \
        f"echo_client hung until its --timeout: {show(p)}"
    return p


def no_sanitizer_report(rc, err):
    """An expected exit 1 must be echo_client's own, not a sanitizer's
    (wsharness makes those exit SANITIZER_EXIT, and the report is
    recognised in stderr)."""
    bad = sanitizer_report(err)
    assert rc != SANITIZER_EXIT and bad is None, \
        f"echo_client: sanitizer report (exit {rc}): {bad}\n{err[-3000:]}"


def show(p):
    return f"exit {p.returncode}, stdout {p.stdout[-500:]!r}, " \
        f"stderr {p.stderr[-500:]!r}"


_n = [0]


def unique(path):
    """A path no other case used, so server records do not mix."""
    _n[0] += 1
    return f"{path}/{_n[0]}"


# ---- cases against python3-websockets ----------------------------------------------

def case_stdin_lines_as_text(srv):
    """Each stdin line is a text message (the last one needs no newline);
    --count N closes (1000, "bye") once N echoes were printed."""
    path = unique("/echo")
    lines = ["hello", "wörld 😀", "", "x" * 70000, "last line, no newline"]
    p = client("--count", str(len(lines)), srv.url(path),
               stdin="\n".join(lines).encode())
    assert p.returncode == 0, show(p)
    assert p.stdout == "\n".join(lines) + "\n", show(p)
    rec = srv.record(path)
    assert rec["messages"] == lines, rec["messages"][:3]
    assert (rec["close_code"], rec["close_reason"]) == (1000, "bye"), rec


def case_close_at_end_of_input(srv):
    """--close: close (1000, "bye") as soon as stdin ends.  Every line
    reached the server; the echoes printed are those the server sent before
    answering the close frame (websockets answers at once, so maybe none)."""
    path = unique("/echo")
    lines = [f"line {i}" for i in range(50)]
    p = client("--close", srv.url(path), stdin="\n".join(lines).encode())
    assert p.returncode == 0, show(p)
    printed = p.stdout.splitlines()
    assert printed == lines[:len(printed)], show(p)
    rec = srv.record(path)
    assert rec["messages"] == lines, f"server got {len(rec['messages'])}"
    assert (rec["close_code"], rec["close_reason"]) == (1000, "bye"), rec


def case_invalid_utf8_line_not_sent(srv):
    path = unique("/echo")
    p = client("--count", "2", srv.url(path),
               stdin=b"good\n\xff\xfe bad\nalso good\n")
    assert p.returncode == 0, show(p)
    assert p.stdout == "good\nalso good\n", show(p)
    assert "not valid UTF-8" in p.stderr, show(p)
    assert srv.record(path)["messages"] == ["good", "also good"]


def case_binary_file_round_trip(srv):
    for size in (0, 1, 125, 126, 65536, 300000, 2**20 - 1):
        path = unique("/echo")
        data = os.urandom(size)
        with tempfile.TemporaryDirectory() as d:
            src, out = os.path.join(d, "in.bin"), os.path.join(d, "out.bin")
            with open(src, "wb") as f:
                f.write(data)
            p = client("--binary", src, "--out", out, "--count", "1",
                       srv.url(path))
            assert p.returncode == 0, f"{size}: {show(p)}"
            assert f"<binary {size} bytes>" in p.stdout, show(p)
            with open(out, "rb") as f:
                back = f.read()
        assert back == data, f"{size} bytes: {len(back)} came back, differ"
        rec = srv.record(path)
        assert rec["messages"] == [data], f"{size}: server got other bytes"
        assert rec["close_code"] == 1000, rec["close_code"]


def case_count_stops_without_eof(srv):
    """--count N: exits after N messages although stdin stays open."""
    path = unique("/echo")
    argv = [binary("echo_client"), "--count", "2", "--timeout", "5000",
            srv.url(path)]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(b"one\ntwo\n")
    proc.stdin.flush()  # and keep stdin open
    try:
        rc = proc.wait(timeout=BOUND)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        raise AssertionError(f"echo_client --count 2 still running after "
                             f"{BOUND} s with stdin open") from None
    finally:
        proc.stdin.close()
    out = proc.stdout.read().decode()
    err = proc.stderr.read().decode()
    no_sanitizer_report(rc, err)
    assert rc == 0, f"exit {rc}: {err}"
    assert out == "one\ntwo\n", out
    rec = srv.record(path)
    assert rec["close_code"] == 1000, rec


def case_close_code(srv):
    for code in (1000, 1001, 3000, 4321, 4999, 1012, 1013, 1014):
        path = unique("/echo")
        p = client("--close", "--code", str(code), srv.url(path),
                   stdin=b"hi\n")
        assert p.returncode == 0, f"--code {code}: {show(p)}"
        rec = srv.record(path)
        assert (rec["close_code"], rec["close_reason"]) == (code, "bye"), \
            f"--code {code}: server saw {rec['close_code']}"


def case_subprotocol_negotiation(srv):
    cases = [(["chat.v1"], "chat.v1"),
             (["nope", "chat.v2"], "chat.v2"),
             (["nope"], None)]
    for offered, expect in cases:
        path = unique("/whoami")
        args = []
        for s in offered:
            args += ["--subprotocol", s]
        p = client(*args, "--count", "1", srv.url(path))
        assert p.returncode == 0, show(p)
        info = json.loads(p.stdout.splitlines()[0])
        assert info["subprotocol"] == expect, (offered, info["subprotocol"])
        hdr = info["headers"].get("sec-websocket-protocol", "")
        assert [s.strip() for s in hdr.split(",")] == offered, hdr


def case_headers_seen_by_server(srv):
    path = unique("/whoami")
    p = client("--header", "X-Token: abc 123", "--header",
               "Origin: http://example.com", "--count", "1", srv.url(path))
    assert p.returncode == 0, show(p)
    h = json.loads(p.stdout.splitlines()[0])["headers"]
    assert h.get("x-token") == "abc 123", h
    assert h.get("origin") == "http://example.com", h
    assert h.get("host") == f"127.0.0.1:{srv.port}", h
    assert h.get("sec-websocket-version") == "13", h
    # reserved headers are refused by the client
    p = client("--header", "Sec-WebSocket-Key: x", srv.url(unique("/echo")))
    assert p.returncode == 2 and "not allowed" in p.stderr, show(p)


def case_server_closes_with_code(srv):
    p = client(srv.url(unique("/close4000")))
    assert p.returncode == 0, show(p)
    assert "closed: code 4000 reason 'server says bye' clean=1" in p.stderr, \
        show(p)


def case_forbidden_403(srv):
    p = client(srv.url("/forbidden"), stdin=b"x\n")
    assert p.returncode != 0, show(p)
    assert "403" in p.stderr and "instead of 101" in p.stderr, show(p)


def case_connection_refused(srv):
    port = free_port()  # nothing listens there
    p = client(f"ws://127.0.0.1:{port}/")
    assert p.returncode == 1, show(p)
    assert "cannot connect" in p.stderr, show(p)


def case_bad_usage(srv):
    for args in ([], ["http://x/"], ["--count"], ["--bogus", "ws://x/"]):
        p = client(*args)
        assert p.returncode == 2 and "usage" in p.stderr, (args, show(p))


# ---- cases against a hand-written server ------------------------------------------------

class RawServer:
    """Accepts one connection, answers the upgrade (optionally wrongly), then
    runs `script(conn)`; the result or exception is kept in self.result."""

    def __init__(self, script, response=None):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))  # our own listener: no race
        self.lsock.listen(1)
        self.lsock.settimeout(10)
        self.port = self.lsock.getsockname()[1]
        self.script, self.response = script, response
        self.result = None
        self.request = {}
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        try:
            s, _ = self.lsock.accept()
            s.settimeout(10)
            conn = RawWS.__new__(RawWS)  # reuse the frame reader
            conn.sock, conn.buf = s, b""
            while b"\r\n\r\n" not in conn.buf:
                conn._fill()
            head, conn.buf = conn.buf.split(b"\r\n\r\n", 1)
            for ln in head.decode().split("\r\n")[1:]:
                k, v = ln.split(":", 1)
                self.request[k.strip().lower()] = v.strip()
            key = self.request["sec-websocket-key"]
            resp = self.response(key) if self.response else (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                f"{accept_key(key)}\r\n\r\n")
            s.sendall(resp.encode() if isinstance(resp, str) else resp)
            self.result = self.script(conn)
        except Exception as e:  # noqa: BLE001
            self.result = e
        finally:
            self.lsock.close()

    def join(self):
        self.t.join(15)
        assert not self.t.is_alive(), "raw server thread stuck"
        if isinstance(self.result, Exception):
            raise AssertionError(f"raw server: {self.result!r}")
        return self.result

    def url(self, path="/"):
        return f"ws://127.0.0.1:{self.port}{path}"


def server_frame(opcode, payload=b"", fin=True, mask=False, rsv=0):
    return RawWS.frame(opcode, payload, fin=fin, mask=mask, rsv=rsv)


def expect_client_close(conn):
    """Read until the client's close frame; check it is masked."""
    while True:
        b0, b1 = conn._take(2)
        assert b1 & 0x80, "client frame not masked"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", conn._take(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", conn._take(8))[0]
        key = conn._take(4)
        data = bytes(b ^ key[i % 4] for i, b in enumerate(conn._take(n)))
        if b0 & 0x0F == OP_CLOSE:
            return parse_close(data)


def case_client_rejects_bad_accept(srv):
    rs = RawServer(lambda c: None, response=lambda key: (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Accept: "
        f"{accept_key('x' + key)}\r\n\r\n"))
    p = client(rs.url())
    rs.join()
    assert p.returncode == 1, show(p)
    assert "Sec-WebSocket-Accept does not match" in p.stderr, show(p)


def case_client_rejects_unoffered_subprotocol(srv):
    rs = RawServer(lambda c: None, response=lambda key: (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept_key(key)}\r\n"
        "Sec-WebSocket-Protocol: evil\r\n\r\n"))
    p = client("--subprotocol", "good", rs.url())
    rs.join()
    assert p.returncode == 1, show(p)
    assert "subprotocol 'evil'" in p.stderr, show(p)


def case_client_rejects_masked_server_frame(srv):
    """5.1: a client MUST close on a masked frame from the server (1002)."""
    rs = RawServer(lambda c: (c.sock.sendall(server_frame(OP_TEXT, b"hi",
                                                          mask=True)),
                              expect_client_close(c))[1])
    p = client(rs.url())
    code, _ = rs.join()
    assert code == 1002, f"client closed with {code}"
    assert p.returncode == 1, show(p)
    assert "masked frame from server" in p.stderr, show(p)


def case_client_rejects_invalid_utf8(srv):
    rs = RawServer(lambda c: (c.sock.sendall(
        server_frame(OP_TEXT, b"ok \xe2\x82", fin=False) +
        server_frame(OP_CONT, b"A")), expect_client_close(c))[1])
    p = client(rs.url())
    code, _ = rs.join()
    assert code == 1007, f"client closed with {code}"
    assert p.returncode == 1, show(p)


def case_client_reassembles_and_pongs(srv):
    """Fragments with a ping in between: the client answers the ping with
    the same payload and prints the reassembled message; then the server
    closes with 1000 and the client exits 0."""
    s = "fragmented 😀 text".encode()

    def script(c):
        c.sock.sendall(server_frame(OP_TEXT, s[:12], fin=False) +
                       server_frame(OP_PING, b"are you there") +
                       server_frame(OP_CONT, s[12:14], fin=False) +
                       server_frame(OP_CONT, s[14:]))
        b0, b1 = c._take(2)
        assert b0 & 0x0F == OP_PONG and b1 & 0x80, (b0, b1)
        key = c._take(4)
        data = bytes(b ^ key[i % 4]
                     for i, b in enumerate(c._take(b1 & 0x7F)))
        c.sock.sendall(server_frame(OP_CLOSE, close_payload(1000, "done")))
        return data, expect_client_close(c)

    rs = RawServer(script)
    p = client(rs.url())
    pong, close = rs.join()
    assert pong == b"are you there", pong
    assert close == (1000, "done"), f"client echoed close {close}"
    assert p.returncode == 0, show(p)
    assert p.stdout == s.decode() + "\n", show(p)


def ok_response(key, extra=""):
    return ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept_key(key)}"
            f"\r\n{extra}\r\n")


def case_client_frames_in_response_packet(srv):
    """A frame sent in the same write as the 101 response is not lost."""
    def resp(key):
        return ok_response(key).encode() + server_frame(OP_TEXT, b"early bird")

    def script(c):
        c.sock.sendall(server_frame(OP_CLOSE, close_payload(1000)))
        return expect_client_close(c)
    rs = RawServer(script, response=resp)
    p = client(rs.url())
    assert rs.join() == (1000, ""), "client did not echo the close"

    assert p.returncode == 0, show(p)
    assert p.stdout == "early bird\n", show(p)


def case_client_response_byte_by_byte(srv):
    def script(c):
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = server_frame(OP_TEXT, "slow €".encode()) + \
            server_frame(OP_CLOSE, close_payload(4001, "slowly"))
        for i in range(len(data)):
            c.sock.sendall(data[i:i + 1])
        return expect_client_close(c)

    def resp(key):  # the head is sent by RawServer in one write; the
        return ok_response(key)  # frames one byte at a time
    rs = RawServer(script, response=resp)
    p = client(rs.url())
    assert rs.join() == (4001, "slowly"), "client did not echo the close"
    assert p.returncode == 0, show(p)
    assert p.stdout == "slow €\n", show(p)


def case_client_rejects_unoffered_extension(srv):
    rs = RawServer(lambda c: None, response=lambda key: ok_response(
        key, "Sec-WebSocket-Extensions: permessage-deflate\r\n"))
    p = client(rs.url())
    rs.join()
    assert p.returncode == 1, show(p)
    assert "extension" in p.stderr, show(p)


def case_client_rejects_bad_close_code(srv):
    """7.4: a close frame from the server with code 1005 -> client 1002."""
    rs = RawServer(lambda c: (c.sock.sendall(
        server_frame(OP_CLOSE, close_payload(1005))), expect_client_close(c))[1])
    p = client(rs.url())
    code, _ = rs.join()
    assert code == 1002, f"client closed with {code}"
    assert p.returncode == 1, show(p)


def case_client_message_too_big(srv):
    """The client's default limit is 1 MiB too: 1 MiB + 1 -> 1009."""
    def script(c):
        try:
            c.sock.sendall(server_frame(OP_BINARY, b"\0" * (2**20 + 1)))
        except OSError:
            pass
        return expect_client_close(c)
    rs = RawServer(script)
    p = client(rs.url())
    code, _ = rs.join()
    assert code == 1009, f"client closed with {code}"
    assert p.returncode == 1, show(p)


def case_client_timeout(srv):
    """--timeout MS: a server that accepts the upgrade and then says
    nothing is given up on after MS, exit 1."""
    import time

    def script(c):  # silent until the client goes away
        try:
            while c.sock.recv(4096):
                pass
        except OSError:
            pass
    rs = RawServer(script)
    argv = [binary("echo_client"), "--timeout", "300", rs.url()]
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, timeout=BOUND)
    took = time.monotonic() - t0
    rs.join()
    no_sanitizer_report(p.returncode, p.stderr.decode(errors="replace"))
    assert p.returncode == 1, p
    assert b"echo_client: timeout" in p.stderr, p.stderr
    # not before its --timeout; the upper bound is the subprocess timeout
    # (the precise timer is unit-tested on a fake clock)
    assert took >= 0.25, f"took {took:.2f}s for --timeout 300"


def case_client_eof_without_close(srv):
    """The server drops TCP without a close frame: 1006, exit 1."""
    rs = RawServer(lambda c: c.sock.close())
    p = client(rs.url())
    rs.join()
    assert p.returncode == 1, show(p)
    assert "code 1006" in p.stderr, show(p)


def setup():
    return PyServer()


def teardown(srv):
    srv.stop()


MIN_CASES = 24  # the case_* functions above: fewer means some were lost


if __name__ == "__main__":
    run_cases(globals(), setup, teardown, minimum=MIN_CASES)
