"""FastAPI + uvicorn comparison point for `make bench` (Debian's python3-fastapi
and python3-uvicorn; run with /usr/bin/python3).

Written the way the FastAPI docs write WebSocket endpoints:

  /ws/echo       echoes text as text and bytes as bytes
  /ws/json-demo  receive_json -> MessageModel (pydantic) -> send_json with
                 "status": "PROCESSED"; validation errors go back as
                 {"detail": errors()}

    /usr/bin/python3 tests/bench/fastapi_app.py [--host 127.0.0.1] [--port 9003]

uvicorn picks uvloop, httptools and websockets when they are installed (as
`pip install uvicorn[standard]` would); logging is at "warning" so that the
per-connection access log does not dominate the numbers.
"""
import argparse

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ValidationError


class MessageModel(BaseModel):
    user: str
    content: str
    timestamp: float


app = FastAPI()


@app.websocket("/ws/echo")
async def ws_echo(websocket: WebSocket):
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await websocket.send_text(message["text"])
        elif message.get("bytes") is not None:
            await websocket.send_bytes(message["bytes"])


@app.websocket("/ws/json-demo")
async def ws_json_demo(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            data = await websocket.receive_json()
            try:
                message = MessageModel(**data)
            except (ValidationError, TypeError) as exc:
                errors = exc.errors() if isinstance(exc, ValidationError) else [
                    {"loc": ["__root__"], "msg": str(exc), "type": "type_error"}]
                await websocket.send_json({"detail": errors})
                continue
            reply = message.dict()
            reply["status"] = "PROCESSED"
            await websocket.send_json(reply)
    except WebSocketDisconnect:
        return


def main() -> None:
    import uvicorn

    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9003)
    args = ap.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning",
                backlog=4096)


if __name__ == "__main__":
    main()
