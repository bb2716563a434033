"""Timeouts against real peers, for echo_server and uv_echo_server.

- a raw-socket client that never answers pings: keepalive close 1011, seen
  by the client (close frame) and by the server (its on_close log line);
- a client that sends half a handshake: 408 and dropped after the handshake
  timeout, while a python3-websockets client keeps echoing meanwhile;
- a python3-websockets client with a short ping_interval: its pings are
  answered and the server's pings too, the connection stays up;
- the receive timeout with the ping action keeps an idle client alive.

Run with /usr/bin/python3 (Debian's python3-websockets).
"""
import asyncio
import base64
import os
import socket
import struct
import subprocess
import sys
import time

import websockets

BIN = os.environ.get("EXAMPLE_BIN", "examples")
SERVERS = os.environ.get("ECHO_SERVERS", "echo_server uv_echo_server").split()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self, name, *args):
        self.port = free_port()
        self.log = open(f"/tmp/wsmsg-it-{name}-{self.port}.log", "w+")
        self.proc = subprocess.Popen(
            [os.path.join(BIN, name), "--port", str(self.port), "--verbose", *args],
            stderr=self.log, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.02)  # bounded polling for the listener
        raise RuntimeError(f"{name} did not start")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.seek(0)
        text = self.log.read()
        self.log.close()
        os.unlink(self.log.name)
        # a clean exit; under ASan this also means no leak at exit
        assert self.proc.returncode == 0, (self.proc.returncode, text[-2000:])
        return text


def raw_handshake(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /raw HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        assert chunk, "closed during handshake"
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return s, rest


def read_frames(s, rest, until_close=True, limit=5.0):
    """Parse server frames until a close frame (or EOF / time limit)."""
    buf, frames = rest, []
    end = time.monotonic() + limit
    while time.monotonic() < end:
        while len(buf) >= 2:
            ln = buf[1] & 127
            hl = 2 + (2 if ln == 126 else 8 if ln == 127 else 0)
            if len(buf) < hl:
                break
            if ln == 126:
                ln = struct.unpack("!H", buf[2:4])[0]
            elif ln == 127:
                ln = struct.unpack("!Q", buf[2:10])[0]
            if len(buf) < hl + ln:
                break
            frames.append((buf[0] & 15, buf[hl:hl + ln]))
            buf = buf[hl + ln:]
            if frames[-1][0] == 8 and until_close:
                return frames
        s.settimeout(max(0.01, end - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
    return frames


def test_silent_client_keepalive(name):
    srv = Server(name, "--ping-interval", "200", "--pong-timeout", "300")
    try:
        s, rest = raw_handshake(srv.port)
        t0 = time.monotonic()
        frames = read_frames(s, rest)
        elapsed = time.monotonic() - t0
        ops = [op for op, _ in frames]
        assert ops[0] == 9, ops                     # the server pinged
        assert len(frames[0][1]) == 8              # with a matchable payload
        assert ops[-1] == 8, ops                    # then closed
        code = struct.unpack("!H", frames[-1][1][:2])[0]
        assert code == 1011, code
        assert b"keepalive" in frames[-1][1][2:]
        assert 0.4 <= elapsed < 3.0, elapsed        # 200 + 300 ms, loosely
        # the server closed the TCP connection after its close frame
        s.settimeout(3)
        assert s.recv(10) == b""
        s.close()
    finally:
        log = srv.stop()
    assert "close code=1011 clean=0 error: keepalive timeout" in log, log
    print(f"  {name}: silent client closed with 1011 after {elapsed:.2f}s")


async def echo_loop(port, n, delay):
    async with websockets.connect(f"ws://127.0.0.1:{port}/ok") as ws:
        for i in range(n):
            await ws.send(f"msg {i}")
            assert await ws.recv() == f"msg {i}"
            await asyncio.sleep(delay)
    return n


def test_half_handshake(name):
    srv = Server(name, "--handshake-timeout", "400")
    try:
        slow = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        t0 = time.monotonic()
        # a well-behaved client keeps working meanwhile
        done = asyncio.run(echo_loop(srv.port, 20, 0.02))
        assert done == 20
        slow.settimeout(3)
        resp = b""
        while True:
            chunk = slow.recv(4096)
            if not chunk:
                break
            resp += chunk
        elapsed = time.monotonic() - t0
        assert resp.startswith(b"HTTP/1.1 408"), resp
        assert 0.3 <= elapsed < 3.0, elapsed
        slow.close()
    finally:
        srv.stop()
    print(f"  {name}: half handshake got 408 after {elapsed:.2f}s, others unaffected")


async def pinging_client(port):
    async with websockets.connect(f"ws://127.0.0.1:{port}/p", ping_interval=0.05,
                                  ping_timeout=0.5) as ws:
        t_end = time.monotonic() + 0.8
        n = 0
        while time.monotonic() < t_end:
            await ws.send("x" * n)
            assert await ws.recv() == "x" * n
            n += 1
            await asyncio.sleep(0.05)
        # our own ping with payload is answered with the same payload
        waiter = await ws.ping(b"payload-123")
        latency = await asyncio.wait_for(waiter, 2)
        assert latency is None or latency >= 0
        return n, ws.open


def test_client_pings(name):
    srv = Server(name, "--ping-interval", "100", "--pong-timeout", "300")
    try:
        n, still_open = asyncio.run(pinging_client(srv.port))
        assert still_open and n > 5
    finally:
        log = srv.stop()
    assert "clean=0" not in log, log  # no keepalive failure on either side
    print(f"  {name}: websockets client with 50 ms pings stayed up ({n} echoes)")


async def idle_client(port):
    async with websockets.connect(f"ws://127.0.0.1:{port}/idle", ping_interval=None) as ws:
        await asyncio.sleep(0.7)  # idle: the server's receive timeout pings us
        await ws.send("after idle")
        return await ws.recv()


def test_receive_timeout_ping(name):
    srv = Server(name, "--receive-timeout", "200", "--pong-timeout", "0")
    try:
        assert asyncio.run(idle_client(srv.port)) == "after idle"
    finally:
        srv.stop()
    print(f"  {name}: receive timeout pinged an idle client, which stayed up")


def main():
    for name in SERVERS:
        if not os.path.exists(os.path.join(BIN, name)):
            print(f"  skip {name}: not built in {BIN}")
            continue
        test_silent_client_keepalive(name)
        test_half_handshake(name)
        test_client_pings(name)
        test_receive_timeout_ping(name)
    print("test_timeouts: ok")


if __name__ == "__main__":
    sys.exit(main())
