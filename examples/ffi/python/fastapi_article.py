#!/usr/bin/env python3
"""fastapi_article -- the FastAPI WebSocket article's app, unchanged, served
by uvicorn with the WebSocket protocol of your choice:

    fastapi_article.py --port 8000 [--host 127.0.0.1]
                       [--ws wsmsg|websockets|wsproto] [--dir DIR]
                       [--max-size BYTES] [--receive-timeout SECONDS]
                       [--ping-interval SECONDS] [--ping-timeout SECONDS]

  /ws/chat           text: "[<ISO-8601 UTC time>] Server received: <msg>"
  /ws/file-transfer  binary: each message stored as a file under --dir and
                     answered with the binary message "FILE_RECEIVED"
  /ws/json-demo      JSON parsed into MessageModel (pydantic): the model's
                     fields plus "status": "PROCESSED"; invalid input gets
                     {"error": "validation_error", "detail": e.errors()}
  /ws/with-timeout   "Echo: <msg>"; "HEARTBEAT" after 10 s
                     (--receive-timeout) without a message (asyncio.wait_for)
  /ws/echo           text as text, binary as binary

The endpoints are plain FastAPI code (FastAPI 0.92, pydantic 1.10 from
Debian).  The one line that puts them on wsmsg is in main():

    uvicorn.run(app, ws=WSMsgProtocol)

--ws websockets / wsproto run the same app on uvicorn's built-in protocols
(for comparison: tests/integration/test_asgi.py, tests/bench/asgi_bench.sh).
Run with /usr/bin/python3 (Debian's python3-fastapi, python3-uvicorn).
"""
import argparse
import asyncio
import itertools
import os
import sys
import tempfile
from datetime import datetime, timezone

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ValidationError

app = FastAPI(title="FastAPI WebSockets")
FILES_DIR = tempfile.gettempdir()   # --dir
RECEIVE_TIMEOUT = 10.0              # --receive-timeout
_file_numbers = itertools.count(1)


class MessageModel(BaseModel):
    user: str
    content: str
    timestamp: float


def utc_now():
    t = datetime.now(timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


@app.websocket("/ws/chat")
async def websocket_chat(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            data = await websocket.receive_text()
            await websocket.send_text(f"[{utc_now()}] Server received: {data}")
    except WebSocketDisconnect:
        pass


@app.websocket("/ws/file-transfer")
async def websocket_file_transfer(websocket: WebSocket):
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            break
        if message.get("bytes") is not None:
            path = os.path.join(FILES_DIR, "upload-%d.bin" % next(_file_numbers))
            with open(path, "xb") as f:
                f.write(message["bytes"])
            await websocket.send_bytes(b"FILE_RECEIVED")
        else:
            await websocket.send_text("send files as binary messages")


@app.websocket("/ws/json-demo")
async def websocket_json_demo(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            data = await websocket.receive_text()
            try:
                message = MessageModel.parse_raw(data)
            except ValidationError as e:
                await websocket.send_json({"error": "validation_error",
                                           "detail": e.errors()})
                continue
            response = message.dict()
            response["status"] = "PROCESSED"
            await websocket.send_json(response)
    except WebSocketDisconnect:
        pass


@app.websocket("/ws/with-timeout")
async def websocket_with_timeout(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            try:
                data = await asyncio.wait_for(websocket.receive_text(),
                                              timeout=RECEIVE_TIMEOUT)
                await websocket.send_text(f"Echo: {data}")
            except asyncio.TimeoutError:
                await websocket.send_text("HEARTBEAT")
    except WebSocketDisconnect:
        pass


@app.websocket("/ws/echo")
async def websocket_echo(websocket: WebSocket):
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await websocket.send_text(message["text"])
        elif message.get("bytes") is not None:
            await websocket.send_bytes(message["bytes"])


def ws_protocol(name):
    """uvicorn's `ws` setting: a protocol class for wsmsg, the name of a
    built-in otherwise."""
    if name != "wsmsg":
        return name
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from wsmsg.asgi import WSMsgProtocol
    return WSMsgProtocol


def main(argv=None):
    global FILES_DIR, RECEIVE_TIMEOUT
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--ws", choices=("wsmsg", "websockets", "wsproto"),
                    default="wsmsg")
    ap.add_argument("--dir", help="where /ws/file-transfer stores files "
                    "(default: a new /tmp/fastapi-article-* directory)")
    ap.add_argument("--max-size", type=int, default=16 << 20, metavar="BYTES",
                    help="uvicorn's ws_max_size (default 16 MiB)")
    ap.add_argument("--receive-timeout", type=float, default=10.0,
                    metavar="SECONDS", help="/ws/with-timeout's wait_for")
    ap.add_argument("--ping-interval", type=float, default=20.0, metavar="SECONDS",
                    help="uvicorn's ws_ping_interval (0: off)")
    ap.add_argument("--ping-timeout", type=float, default=20.0, metavar="SECONDS",
                    help="uvicorn's ws_ping_timeout")
    ap.add_argument("--log-level", default="warning")
    args = ap.parse_args(argv)
    FILES_DIR = args.dir or tempfile.mkdtemp(prefix="fastapi-article-")
    RECEIVE_TIMEOUT = args.receive_timeout

    import uvicorn
    uvicorn.run(app, host=args.host, port=args.port, ws=ws_protocol(args.ws),
                ws_max_size=args.max_size,
                ws_ping_interval=args.ping_interval or None,
                ws_ping_timeout=args.ping_timeout or None,
                log_level=args.log_level, backlog=4096)
    return 0


if __name__ == "__main__":
    sys.exit(main())
