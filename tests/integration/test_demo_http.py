"""demo_server's plain HTTP beside the upgrade (wsmsg_server_on_http):
the page and its files from examples/web/, /healthz, keep-alive and
pipelining over one socket, HEAD, 404 for anything outside the web
directory, 405 for other methods, 400 for a request with a body, the
WebSocket endpoints unchanged on the same port, and the file-transfer
endpoint's JSON header protocol (what the page speaks) with its errors.

    CASE=case_pipelined /usr/bin/python3 tests/integration/test_demo_http.py
"""
import asyncio
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsharness import (ROOT, Proc, binary, free_port, run_cases,  # noqa
                       sanitizer_report, wait_listening)

BOUND = 20.0
WEB = os.path.join(ROOT, "examples", "web")


class Demo(Proc):
    def __init__(self, *args):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="wsmsg-demo-http-")
        super().__init__([binary("demo_server"), "--host", "127.0.0.1",
                          "--port", str(self.port), "--dir", self.dir,
                          "--web", WEB, *args])
        wait_listening(self.port, self.p)

    def finish(self):
        rc = self.stop()
        err = self.stderr()
        shutil.rmtree(self.dir, ignore_errors=True)
        assert rc == 0, f"demo_server exited {rc}:\n{err[-3000:]}"
        bad = sanitizer_report(err)
        assert bad is None, f"{bad}\n{err[-3000:]}"


def setup():
    return Demo()


def teardown(d):
    d.finish()


class Http:
    """HTTP/1.1 on a raw socket: responses parsed strictly, in order."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=BOUND)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def _fill(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError("connection closed")
        self.buf += d

    def response(self, head_request=False):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        assert lines[0].startswith("HTTP/1.1 "), lines[0]
        hdrs = {}
        for ln in lines[1:]:
            k, v = ln.split(":", 1)
            assert k.lower() not in hdrs, f"duplicate header {k}"
            hdrs[k.lower()] = v.strip()
        n = 0 if head_request else int(hdrs.get("content-length", "0"))
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, hdrs, body

    def closed(self):
        """True if the server closed the connection (bounded read)."""
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
                self.buf += d
        except ConnectionResetError:
            return True

    def close(self):
        self.s.close()


def get(path, extra=""):
    return (f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").encode()


def web(name):
    with open(os.path.join(WEB, name), "rb") as f:
        return f.read()


def case_healthz(d):
    h = Http(d.port)
    try:
        h.send(get("/healthz"))
        st, hdrs, body = h.response()
        assert (st, body) == (200, b"ok\n"), (st, body)
        assert hdrs["content-type"].startswith("text/plain")
    finally:
        h.close()


def case_page_and_assets(d):
    """GET / is index.html; the page's files come with their types and
    the exact bytes on disk."""
    h = Http(d.port)
    try:
        for path, name, ctype in (("/", "index.html", "text/html"),
                                  ("/index.html", "index.html", "text/html"),
                                  ("/app.js", "app.js", "text/javascript"),
                                  ("/style.css", "style.css", "text/css")):
            h.send(get(path))
            st, hdrs, body = h.response()
            assert st == 200, (path, st)
            assert hdrs["content-type"].startswith(ctype), hdrs
            assert hdrs["x-content-type-options"] == "nosniff"
            assert body == web(name), path
    finally:
        h.close()


def case_pipelined_keep_alive(d):
    """Five requests in one write: five responses, in order, on one
    connection; Connection: close on the last ends it."""
    h = Http(d.port)
    try:
        h.send(get("/healthz") + get("/style.css") + get("/nope")
               + get("/app.js") + get("/healthz", "Connection: close\r\n"))
        got = [h.response()[0:3:2] for _ in range(5)]
        assert [g[0] for g in got] == [200, 200, 404, 200, 200], got
        assert got[1][1] == web("style.css") and got[3][1] == web("app.js")
        assert h.closed(), "the connection stayed open after close"
    finally:
        h.close()


def case_http10(d):
    """HTTP/1.0: answered, then closed; with keep-alive it stays."""
    h = Http(d.port)
    try:
        h.send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        st, hdrs, body = h.response()
        assert st == 200 and hdrs.get("connection") == "keep-alive", hdrs
        h.send(b"GET /healthz HTTP/1.0\r\n\r\n")
        st, hdrs, body = h.response()
        assert st == 200 and hdrs.get("connection") == "close", hdrs
        assert h.closed()
    finally:
        h.close()


def case_head(d):
    h = Http(d.port)
    try:
        h.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n" + get("/healthz"))
        st, hdrs, body = h.response(head_request=True)
        assert st == 200 and body == b""
        assert int(hdrs["content-length"]) == len(web("index.html"))
        st, _, body = h.response()  # the next response starts right after
        assert (st, body) == (200, b"ok\n"), (st, body)
    finally:
        h.close()


def case_outside_the_web_dir(d):
    """Traversal, encoded dots, hidden files, doubled slashes, a
    directory: 404, and the connection stays usable."""
    h = Http(d.port)
    try:
        for path in ("/../Makefile", "/..%2fMakefile", "/%2e%2e/Makefile",
                     "/./index.html", "/.hidden", "//etc/passwd",
                     "/web/../../Makefile", "/index.html/", "/nope.html",
                     "/a b", "/.."):
            h.send(get(path.replace(" ", "%20")))
            st, _, body = h.response()
            assert st == 404, (path, st, body[:80])
        h.send(get("/healthz"))
        assert h.response()[0] == 200
    finally:
        h.close()


def case_methods_and_bodies(d):
    """POST without a body: 405 with Allow; a request with a body: 400
    and the connection closes (a body is never read as a request)."""
    h = Http(d.port)
    try:
        h.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        st, hdrs, _ = h.response()
        assert st == 405 and hdrs["allow"] == "GET, HEAD", (st, hdrs)
        h.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 29\r\n\r\n"
               + get("/healthz")[:29])
        st, hdrs, _ = h.response()
        assert st == 400, st
        assert h.closed()
    finally:
        h.close()


def case_websocket_on_the_same_port(d):
    """The WebSocket endpoints upgrade on the port that serves the page."""
    async def go():
        async with websockets.connect(
                f"ws://127.0.0.1:{d.port}/ws/echo") as ws:
            await ws.send("x")
            assert await ws.recv() == "x"
        async with websockets.connect(
                f"ws://127.0.0.1:{d.port}/ws/chat") as ws:
            await ws.send("y")
            assert (await ws.recv()).endswith("Server received: y")
    asyncio.run(asyncio.wait_for(go(), BOUND))


def upload(port, header, chunks):
    async def go():
        async with websockets.connect(
                f"ws://127.0.0.1:{port}/ws/file-transfer",
                max_size=None) as ws:
            await ws.send(json.dumps(header) if isinstance(header, dict)
                          else header)
            first = json.loads(await ws.recv())
            if first["status"] != "READY":
                return [first]
            got = [first]
            for c in chunks:
                await ws.send(c)
            while True:
                m = json.loads(await ws.recv())
                got.append(m)
                if m["status"] != "PROGRESS":
                    return got
    return asyncio.run(asyncio.wait_for(go(), BOUND))


def case_file_header_protocol(d):
    """A header, 3 binary messages: a PROGRESS per message, then
    FILE_RECEIVED with the SHA-256 of the stored file."""
    data = os.urandom(300000)
    sha = hashlib.sha256(data).hexdigest()
    got = upload(d.port, {"name": "a.bin", "size": len(data), "sha256": sha},
                 [data[:100000], data[100000:250000], data[250000:]])
    assert got[0]["status"] == "READY", got
    assert [m["received"] for m in got[1:-1]] == [100000, 250000], got
    fin = got[-1]
    assert fin["status"] == "FILE_RECEIVED" and fin["sha256"] == sha, fin
    with open(os.path.join(d.dir, fin["file"]), "rb") as f:
        assert f.read() == data


def case_file_header_errors(d):
    """A wrong SHA-256, too many bytes, a bad header: an error each, and
    no file is left behind."""
    before = set(os.listdir(d.dir))
    data = os.urandom(1000)
    got = upload(d.port, {"name": "a", "size": 1000, "sha256": "0" * 64},
                 [data])
    assert got[-1]["error"] == "sha256_mismatch", got
    assert got[-1]["detail"] == hashlib.sha256(data).hexdigest()
    got = upload(d.port, {"name": "a", "size": 10}, [data])
    assert got[-1]["error"] == "too_large", got
    for bad in ({"size": 3}, {"name": "a", "size": -1},
                {"name": "a", "size": 1, "sha256": "xyz"}):
        got = upload(d.port, bad, [])
        assert got[0]["error"] == "bad_header", (bad, got)
    assert set(os.listdir(d.dir)) == before, os.listdir(d.dir)


if __name__ == "__main__":
    run_cases(globals(), setup=setup, teardown=teardown, minimum=10)
