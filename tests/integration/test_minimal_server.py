"""examples/minimal_server.c: the README's epoll loop is a complete program
(issue 13).  The README's code block must be the file, byte for byte; the
program echoes for python3-websockets clients, many at once; its timers
run (a keepalive ping every PING_MS: a client that answers stays, a silent
one is closed).

    CASE=case_readme /usr/bin/python3 tests/integration/test_minimal_server.py
"""
import asyncio
import os
import re
import signal
import sys
import time

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wsharness as H  # noqa: E402

BOUND = 20.0


def readme_block():
    with open(os.path.join(H.ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    sec = text.split("## Linking it into an epoll loop\n", 1)
    assert len(sec) == 2, "README has no 'Linking it into an epoll loop'"
    m = re.search(r"```c\n(.*?)```\n", sec[1], re.S)
    assert m, "no ```c block in that section"
    return m.group(1)


def case_readme_block_is_the_file():
    with open(os.path.join(H.ROOT, "examples", "minimal_server.c"),
              encoding="utf-8") as f:
        src = f.read()
    block = readme_block()
    if block != src:
        a, b = block.splitlines(), src.splitlines()
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                raise AssertionError(f"README differs at line {i + 1}:\n"
                                     f"  README: {x!r}\n  file:   {y!r}")
        raise AssertionError(f"README block {len(a)} lines, file {len(b)}")


class Minimal(H.Proc):
    def __init__(self, ping_ms=20000):
        self.port = H.free_port()
        super().__init__([H.binary("minimal_server"), str(self.port),
                          str(ping_ms)])
        H.wait_listening(self.port, self.p, timeout=BOUND)

    def finish(self):
        # SIGTERM drains it (wsmsg_server_drain), then it exits 0
        rc = self.stop()
        err = self.stderr()
        assert rc == 0, f"minimal_server exited {rc}:\n{err[-2000:]}"
        rep = H.sanitizer_report(err)
        assert not rep, rep


def case_echo_and_404():
    srv = Minimal()
    try:
        async def go():
            url = f"ws://127.0.0.1:{srv.port}"
            async with websockets.connect(url + "/ws/chat",
                                          max_size=None) as ws:
                for msg in ("hello", "é" * 1000, "x" * 200000):
                    await ws.send(msg)
                    assert await ws.recv() == msg
            try:
                async with websockets.connect(url + "/other"):
                    raise AssertionError("expected 404")
            except websockets.InvalidStatusCode as e:
                assert e.status_code == 404, e
        asyncio.run(asyncio.wait_for(go(), BOUND))
        srv.finish()
    finally:
        srv.stop()


def case_many_clients_at_once():
    srv = Minimal()
    try:
        async def one(i):
            async with websockets.connect(
                    f"ws://127.0.0.1:{srv.port}/ws/chat") as ws:
                for k in range(3):
                    await ws.send(f"{i}-{k}")
                    assert await ws.recv() == f"{i}-{k}"

        async def go():
            await asyncio.gather(*(one(i) for i in range(300)))
        asyncio.run(asyncio.wait_for(go(), BOUND))
        srv.finish()
    finally:
        srv.stop()


def case_keepalive_timers():
    """PING_MS=200: python-websockets answers the pings and stays; a raw
    client that completes the handshake and then answers nothing gets a
    ping, then a close, then EOF."""
    srv = Minimal(ping_ms=200)
    silent = H.RawWS(srv.port, "/ws/chat", timeout=BOUND)
    try:
        async def go():
            async with websockets.connect(
                    f"ws://127.0.0.1:{srv.port}/ws/chat") as ws:
                end = time.monotonic() + 1.2  # six ping intervals
                n = 0
                while time.monotonic() < end:
                    await ws.send(f"m{n}")
                    assert await ws.recv() == f"m{n}"
                    n += 1
                    await asyncio.sleep(0.1)
        asyncio.run(asyncio.wait_for(go(), BOUND))
        ops = []
        try:
            while True:
                fin, _, op, payload = silent.recv_frame()
                ops.append(op)
                if op == H.OP_CLOSE:
                    break
        except H.Closed:
            pass
        assert H.OP_PING in ops, ops
        assert ops[-1] == H.OP_CLOSE, ops
        silent.expect_eof()
        srv.finish()
    finally:
        silent.close()
        srv.stop()


def case_sigterm_drains():
    """SIGTERM: every open client gets 1001 "going away" at once and the
    server exits 0 once they answered (wsmsg_server_drain and
    wsmsg_server_conn_count, as the README shows)."""
    srv = Minimal()
    try:
        async def go():
            url = f"ws://127.0.0.1:{srv.port}/ws/chat"
            clients = [await websockets.connect(url) for _ in range(5)]
            for ws in clients:
                await ws.send("x")
                assert await ws.recv() == "x"
            srv.p.send_signal(signal.SIGTERM)
            for ws in clients:
                await asyncio.wait_for(ws.wait_closed(), BOUND)
                assert ws.close_code == 1001, ws.close_code
                assert ws.close_reason == "going away", ws.close_reason
        asyncio.run(asyncio.wait_for(go(), BOUND))
        rc = srv.p.wait(BOUND)
        assert rc == 0, f"minimal_server exited {rc}"
    finally:
        srv.stop()


if __name__ == "__main__":
    H.run_cases(globals(), minimum=5)
