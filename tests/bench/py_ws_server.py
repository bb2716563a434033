"""python3-websockets (Debian, 10.4) echo server for tests/bench/deflate_bench.sh.

    /usr/bin/python3 tests/bench/py_ws_server.py --host 127.0.0.1 --port N [--deflate]

--deflate: permessage-deflate at wsmsg's WSMSG_DEFLATE_ON settings (zlib
level 6, memLevel 8, windows of 2^15; websockets has no threshold and
compresses every message); without it compression is off.
"""
import argparse
import asyncio
import signal

import websockets
from websockets.extensions import permessage_deflate as pmd


async def echo(ws, path=None):
    async for m in ws:
        await ws.send(m)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9005)
    ap.add_argument("--deflate", action="store_true")
    a = ap.parse_args()
    kw = {"max_size": None, "ping_interval": None}
    if a.deflate:
        kw["extensions"] = [pmd.ServerPerMessageDeflateFactory(
            compress_settings={"level": 6, "memLevel": 8})]
    else:
        kw["compression"] = None
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with websockets.serve(echo, a.host, a.port, backlog=4096, **kw):
        await stop


asyncio.run(main())
