"""The load tool must measure correctly: wsbench against awkward servers.

A raw asyncio WebSocket server (no library) answers wsbench's messages in
the most awkward legal way: every reply is fragmented into several frames,
a ping is interleaved between the fragments, and the bytes are written in
random pieces of 1 to 7 bytes, so wsbench's incremental parser sees every
possible split.  wsbench must report no error.  A second server answers
with one byte missing: wsbench must count it as unexpected and exit 1.
Then wsbench runs against examples/echo_server (text, binary, 64 KiB+,
rate and idle modes).  Nothing here depends on timing: only correctness
counters are checked.

Run with /usr/bin/python3; EXAMPLE_BIN may point at the examples.
CASE=split runs the checks whose name contains "split"; a filter that
matches nothing fails, and so does a missing wsbench or echo_server.
"""
import asyncio
import base64
import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import threading
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsharness import count_ok, sanitizer_report, wait_listening  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("EXAMPLE_BIN", "examples")
if not os.path.isabs(BIN):
    BIN = os.path.join(ROOT, BIN)


def find(name):
    for d in (BIN, os.path.join(ROOT, "examples")):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    return None


WSBENCH = find("wsbench")
ECHO = find("echo_server")
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(op, payload, fin=True):
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | op])
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + n.to_bytes(2, "big")
    else:
        head += bytes([127]) + n.to_bytes(8, "big")
    return head + payload


class AwkwardServer:
    """mode "split": fragmented replies, interleaved pings, tiny writes.
    mode "short": replies one byte short."""

    def __init__(self, mode):
        self.mode = mode
        self.port = None
        self.pongs = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("server did not start")

    def _run(self):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self.handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    async def send_awkward(self, writer, data):
        pos = 0
        while pos < len(data):
            k = random.randint(1, 7)
            writer.write(data[pos:pos + k])
            await writer.drain()
            pos += k

    async def handle(self, reader, writer):
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            key = b""
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"sec-websocket-key:"):
                    key = line.split(b":", 1)[1].strip()
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            while True:
                h = await reader.readexactly(2)
                op, n = h[0] & 0x0F, h[1] & 0x7F
                if n == 126:
                    n = int.from_bytes(await reader.readexactly(2), "big")
                elif n == 127:
                    n = int.from_bytes(await reader.readexactly(8), "big")
                mask = await reader.readexactly(4)
                data = bytearray(await reader.readexactly(n))
                for i in range(n):
                    data[i] ^= mask[i & 3]
                if op == 8:
                    writer.write(frame(8, bytes(data[:2])))
                    await writer.drain()
                    break
                if op == 10:
                    self.pongs += 1
                    continue
                if op not in (1, 2):
                    continue
                if self.mode == "short":
                    writer.write(frame(op, bytes(data[:-1])))
                    await writer.drain()
                    continue
                # three fragments with a ping between the first two
                a, b = n // 3, 2 * n // 3
                out = (frame(op, bytes(data[:a]), fin=False) + frame(9, b"hi") +
                       frame(0, bytes(data[a:b]), fin=False) + frame(0, bytes(data[b:])))
                await self.send_awkward(writer, out)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()


def wsbench(*args, timeout=60):
    cmd = [WSBENCH, "--json", *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    line = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else "{}"
    return p.returncode, json.loads(line), p.stderr


passed = failed = 0
ONLY = os.environ.get("CASE")
MIN_CHECKS = 16


def selected(*names):
    """Whether any of these checks is selected by the CASE filter."""
    return not ONLY or any(ONLY in n for n in names)


def check(name, cond, detail="", always=False):
    global passed, failed
    if not always and not selected(name):
        return
    if cond:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


SPLIT = [f"split replies, {typ} {size} B: no errors"
         for typ, size in (("text", 1500), ("binary", 300), ("text", 1),
                           ("binary", 0))]
ECHO_CASES = [
    ("echo_server text 64 B pipeline 16", ["-c", "10", "-p", "16", "-s", "64"]),
    ("echo_server binary 200000 B", ["-c", "2", "-s", "200000", "-t", "binary"]),
    ("echo_server text 1 KiB", ["-c", "2", "-s", "1024", "-t", "text"]),
    ("echo_server rate mode", ["-c", "50", "-r", "20", "-s", "32"]),
    # permessage-deflate: wsbench inflates every reply and checks its length
    ("echo_server --deflate text 16 KiB realistic",
     ["-c", "2", "-p", "2", "-s", "16384", "-t", "text", "--realistic", "--deflate"]),
    # random bytes do not compress: the echo comes back without RSV1
    ("echo_server --deflate binary 3000 B", ["-c", "2", "-s", "3000", "-t", "binary", "--deflate"]),
]
DEFLATE_WIRE = "--deflate: replies smaller on the wire than the messages"
IDLE = "echo_server idle mode opens every connection"
ECHO_EXIT = "echo_server exits 0 with no sanitizer report"


def main():
    global failed
    # a green run must have run something: nothing here is optional
    for what, path in (("wsbench", WSBENCH), ("echo_server", ECHO)):
        if not path:
            print(f"FAIL {what} is not built (make all)")
            return 1
    random.seed(6455)

    pings = "pings between fragments were answered"
    if selected(*SPLIT, pings):
        srv = AwkwardServer("split")
        try:
            url = f"ws://127.0.0.1:{srv.port}/split"
            for name, (typ, size) in zip(SPLIT, (("text", 1500), ("binary", 300),
                                                 ("text", 1), ("binary", 0))):
                if not selected(name):
                    continue
                rc, r, err = wsbench("-c", "3", "-p", "4", "-s", str(size), "-t", typ,
                                     "-d", "0.5", "-w", "0", url)
                check(name,
                      rc == 0 and r.get("errors") == 0 and r.get("messages", 0) > 0,
                      f"rc={rc} {r} {err[-300:]}")
            check(pings, srv.pongs > 0, f"pongs={srv.pongs}")
        finally:
            srv.stop()

    name = "a short echo is counted as unexpected"
    if selected(name):
        srv = AwkwardServer("short")
        try:
            rc, r, err = wsbench("-c", "1", "-s", "64", "-d", "0.3", "-w", "0",
                                 f"ws://127.0.0.1:{srv.port}/")
            check(name, rc == 1 and r.get("unexpected", 0) > 0, f"rc={rc} {r}")
        finally:
            srv.stop()

    name = "a refused connection is counted"
    if selected(name):
        rc, r, err = wsbench("-c", "2", "-d", "0.3", "-w", "0", "ws://127.0.0.1:1/")
        check(name, rc == 1 and r.get("connect_failed") == 2, f"{r}")

    if selected(*[n for n, _ in ECHO_CASES], IDLE, ECHO_EXIT, DEFLATE_WIRE):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        # echo_server's stderr and exit status are checked: a sanitizer
        # report under check-asan fails the run
        errf = tempfile.TemporaryFile(mode="w+")
        proc = subprocess.Popen([ECHO, "--host", "127.0.0.1", "--port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=errf)
        rc = None
        try:
            wait_listening(port, proc, timeout=30)
            url = f"ws://127.0.0.1:{port}/ws/echo"
            for name, args in ECHO_CASES:
                if not selected(name):
                    continue
                rc, r, err = wsbench(*args, "-d", "0.5", "-w", "0", "--server-pid",
                                     str(proc.pid), url)
                check(name, rc == 0 and r.get("errors") == 0 and r.get("messages", 0) > 0,
                      f"rc={rc} {r}")
            if selected(DEFLATE_WIRE):
                rc, r, err = wsbench("-c", "1", "-s", "4096", "-t", "text", "--realistic",
                                     "--deflate", "-d", "0.3", "-w", "0", url)
                check(DEFLATE_WIRE,
                      rc == 0 and r.get("deflate") == 1 and r.get("messages", 0) > 0
                      and 0 < r.get("wire_in_per_msg", 0) < 4096 / 2
                      and r.get("wire_out_per_msg", 0) < 4096 / 2,
                      f"rc={rc} {r}")
            if selected(IDLE):
                rc, r, err = wsbench("-c", "300", "--idle", "--hold", "0.3",
                                     "--server-pid", str(proc.pid), url)
                check(IDLE,
                      rc == 0 and r.get("open") == 300
                      and r.get("server_rss_kb_after", -1) > 0,
                      f"rc={rc} {r}")
        finally:
            proc.terminate()
            try:
                rc = proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()  # by PID: the server we started
                proc.wait(10)
                rc = "killed: ignored SIGTERM"
            errf.seek(0)
            err = errf.read()
        bad = sanitizer_report(err)
        check(ECHO_EXIT, rc == 0 and bad is None,
              f"exit {rc}: {bad or ''}\n{err[-3000:]}", always=True)
    total = passed + failed
    print(f"{passed} passed, {failed} failed")
    if not count_ok("test_wsbench.py", total, MIN_CHECKS):
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
