"""permessage-deflate (RFC 7692) against python3-websockets 10.4 (Debian),
in both directions: its client against echo_server (every window size and
context-takeover combination it can ask for, each server preset) and
wsmsg's echo_client against its server (every setting of both).

Run alone:  /usr/bin/python3 tests/integration/test_server_deflate.py
            CASE=case_client_windows /usr/bin/python3 tests/integration/...
"""
import asyncio
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import websockets  # noqa: E402  (Debian's python3-websockets)
from websockets.extensions import permessage_deflate as pmd  # noqa: E402
from wsharness import (EchoServer, OP_BINARY, RawWS, binary, free_port,  # noqa: E402
                       run_cases)

SIZES = [16, 64, 1000, 16384, 65536, 131072]


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def json_text(n):
    """Text like the demo's JSON chat traffic, n characters."""
    unit = ('{"type":"chat","user":"alice","room":"lobby",'
            '"text":"hello world, café €","ts":1733400000},')
    return (unit * (n // len(unit) + 1))[:n]


class Counting(websockets.WebSocketClientProtocol):
    """Counts the bytes that arrive on the wire."""
    wire = 0

    def data_received(self, data):
        Counting.wire += len(data)
        super().data_received(data)


def connect(url, **kw):
    kw.setdefault("max_size", None)
    kw.setdefault("open_timeout", 5)
    kw.setdefault("close_timeout", 5)
    return websockets.connect(url, create_protocol=Counting, **kw)


async def echo_all(ws, sizes=SIZES, binary_too=True):
    for n in sizes:
        msg = json_text(n)
        await ws.send(msg)
        got = await asyncio.wait_for(ws.recv(), 10)
        assert got == msg, f"text of {n}: echo differs ({len(got)})"
        if binary_too:
            b = msg.encode()
            await ws.send(b)
            got = await asyncio.wait_for(ws.recv(), 10)
            assert got == b, f"binary of {n}: echo differs"
    # fragmented: websockets compresses across the fragments, RSV1 on the
    # first only
    parts = [json_text(3000) for _ in range(5)]
    await ws.send(iter(parts))
    got = await asyncio.wait_for(ws.recv(), 10)
    assert got == "".join(parts), "fragmented message: echo differs"


def agreed(ws):
    names = [e.name for e in ws.extensions]
    assert names == ["permessage-deflate"], names
    return ws.extensions[0]


# ---- python client -> echo_server ---------------------------------------------

def case_default_offer(srv):
    """websockets' default offer (client_max_window_bits): echo_server's
    default preset answers with no context takeover both ways, and its
    128 KiB JSON echo arrives compressed (under a fifth of its size)."""
    async def go():
        async with connect(srv.url) as ws:
            ext = agreed(ws)
            h = ws.response_headers["Sec-WebSocket-Extensions"]
            assert "server_no_context_takeover" in h, h
            assert "client_no_context_takeover" in h, h
            assert ext.local_no_context_takeover and ext.remote_no_context_takeover
            await echo_all(ws)
            Counting.wire = 0
            msg = json_text(131072)
            await ws.send(msg)
            assert await ws.recv() == msg
            assert Counting.wire < 131072 // 5, Counting.wire
    run(go())


def case_client_windows(srv):
    """Every window websockets can ask for: server_max_window_bits 8-15
    (8: echo_server answers 8 and sends uncompressed, zlib cannot deflate
    with 256 bytes) and client_max_window_bits 9-15 (websockets' zlib
    cannot compress with 8 either)."""
    async def go():
        for w in range(8, 16):
            f = pmd.ClientPerMessageDeflateFactory(server_max_window_bits=w,
                                                   client_max_window_bits=max(w, 9))
            async with connect(srv.url, extensions=[f]) as ws:
                agreed(ws)
                h = ws.response_headers["Sec-WebSocket-Extensions"]
                assert f"server_max_window_bits={w}" in h, h
                await echo_all(ws, sizes=[16, 5000, 70000], binary_too=w == 8)
                Counting.wire = 0
                msg = json_text(65536)
                await ws.send(msg)
                assert await ws.recv() == msg
                if w == 8:
                    assert Counting.wire > 65536, Counting.wire
                else:
                    assert Counting.wire < 65536 // 3, (w, Counting.wire)
    run(go())


def case_client_takeover_flags(srv):
    """Each combination of the two no_context_takeover parameters asked by
    the client."""
    async def go():
        for snct in (False, True):
            for cnct in (False, True):
                f = pmd.ClientPerMessageDeflateFactory(
                    server_no_context_takeover=snct,
                    client_no_context_takeover=cnct)
                async with connect(srv.url, extensions=[f]) as ws:
                    agreed(ws)
                    await echo_all(ws, sizes=[16, 1000, 65536])
    run(go())


def case_server_presets(srv):
    """echo_server with context takeover (--deflate low_memory and
    max_ratio) against websockets' default client: repeated small JSON
    messages get much smaller than without takeover."""
    async def go(url, sizes):
        async with connect(url) as ws:
            agreed(ws)
            await echo_all(ws, sizes=sizes)
            Counting.wire = 0
            for i in range(50):
                msg = json_text(200 + i)
                await ws.send(msg)
                assert await ws.recv() == msg
            return Counting.wire
    wires = {}
    for preset in ("on", "low_memory", "max_ratio"):
        s = EchoServer("--deflate", preset)
        try:
            wires[preset] = run(go(s.url, SIZES))
        finally:
            s.finish()
    # takeover: later messages refer back to earlier ones
    assert wires["low_memory"] < wires["on"] * 0.6, wires
    assert wires["max_ratio"] < wires["on"] * 0.6, wires


def case_no_deflate_flag(srv):
    """echo_server --no-deflate declines every offer."""
    s = EchoServer("--no-deflate")
    try:
        async def go():
            async with connect(s.url) as ws:
                assert ws.extensions == [], ws.extensions
                await echo_all(ws, sizes=[16, 5000])
        run(go())
    finally:
        s.finish()


def case_bomb(srv):
    """64 MiB of zeros compressed to ~64 KiB: echo_server (1 MiB limit)
    closes with 1009 once the inflated size passes the limit, and keeps
    serving; corrupt compressed data closes with 1007."""
    import zlib
    z = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    data = z.compress(b"\0" * (64 << 20)) + z.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\0\0\xff\xff") and len(data) < 100000
    offer = ("Sec-WebSocket-Extensions: permessage-deflate; "
             "client_max_window_bits",)
    for payload, code in ((data[:-4], 1009), (b"\xff\xff\xff\x00", 1007)):
        ws = RawWS(srv.port, extra_headers=offer)
        try:
            assert "permessage-deflate" in ws.headers["sec-websocket-extensions"]
            ws.send_frame(OP_BINARY, payload, rsv=4)
            got, _ = ws.expect_close()
            assert got == code, f"closed with {got}, expected {code}"
        finally:
            ws.close()
    async def go():
        async with connect(srv.url) as ws:
            await echo_all(ws, sizes=[16, 5000])
    run(go())


# ---- echo_client (wsmsg) -> python server ----------------------------------------

PY_SERVER = r"""
import asyncio, sys
import websockets
from websockets.extensions import permessage_deflate as pmd
port, spec = int(sys.argv[1]), sys.argv[2]
async def handler(ws, path=None):
    async for m in ws:
        await ws.send(m)
async def main():
    kw = {"max_size": None}
    if spec == "off":
        kw["compression"] = None
    elif spec != "default":
        kw["extensions"] = [eval("pmd.ServerPerMessageDeflateFactory(%s)" % spec)]
    async with websockets.serve(handler, "127.0.0.1", port, **kw):
        print("ready", flush=True)
        await asyncio.Future()
asyncio.run(main())
"""


def with_py_server(spec, fn):
    """Run fn(url) against a python3-websockets echo server in a child
    process: spec "default" (compression on, its defaults), "off", or the
    arguments of ServerPerMessageDeflateFactory."""
    port = free_port()
    p = subprocess.Popen([sys.executable, "-c", PY_SERVER, str(port), spec],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = p.stdout.readline()
        assert line == b"ready\n", p.stderr.read() if p.poll() is not None else line
        fn(f"ws://127.0.0.1:{port}/")
    finally:
        p.kill()
        p.wait(5)


def client(url, *args, lines=None):
    lines = lines or [json_text(n) for n in (16, 200, 5000, 60000)]
    stdin = "".join(l + "\n" for l in lines).encode()
    p = subprocess.run([binary("echo_client"), "--timeout", "10000",
                        "--count", str(len(lines)), "--close", *args, url],
                       input=stdin, capture_output=True, timeout=30)
    out = p.stdout.decode()
    err = p.stderr.decode()
    assert p.returncode == 0, f"echo_client exited {p.returncode}: {err}"
    assert out.splitlines() == lines, f"echo differs: {out[:200]!r}"
    return err


def case_wsmsg_client_presets(srv):
    """echo_client with each preset against websockets' default server
    (windows 12, memLevel 5, takeover) and against one with compression
    off."""
    def go(url):
        for preset in ("on", "low_memory", "max_ratio"):
            err = client(url, "--deflate", preset)
            assert "permessage-deflate" in err, (preset, err)
    with_py_server("default", go)

    def off(url):
        err = client(url, "--deflate", "on")
        assert "permessage-deflate" not in err, err
    with_py_server("off", off)


def case_wsmsg_client_windows(srv):
    """Every server_max_window_bits / client_max_window_bits websockets'
    server can impose (9-15), and our own windows 9-15 offered to it."""
    for w in range(9, 16):
        f = f"server_max_window_bits={w}, client_max_window_bits={w}"

        def go(url, w=w):
            err = client(url, "--deflate", "max_ratio")
            assert "permessage-deflate" in err, err
            err = client(url, "--deflate", "on", "--deflate-window",
                         f"{w},{w}")
            assert "permessage-deflate" in err, err
        with_py_server(f, go)
    for snct in (False, True):
        for cnct in (False, True):
            f = (f"server_no_context_takeover={snct}, "
                 f"client_no_context_takeover={cnct}")
            with_py_server(f, lambda url: client(url, "--deflate",
                                                   "low_memory"))


def setup():
    return EchoServer()


def teardown(srv):
    srv.finish()


MIN_CASES = 8


if __name__ == "__main__":
    run_cases(globals(), setup, teardown, minimum=MIN_CASES)
