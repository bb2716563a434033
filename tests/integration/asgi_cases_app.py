"""A raw ASGI application that misbehaves on purpose, for test_asgi.py (not
a test itself): the ASGI corner cases a WebSocket protocol for uvicorn must
survive, served by uvicorn with --ws wsmsg|websockets|wsproto.

    asgi_cases_app.py --port P --ws wsmsg [--ping-interval S --ping-timeout S]

Paths (the first segment picks the behaviour):
  /scope/...     accept with the first offered subprotocol and an extra
                 header, send the scope (JSON), then echo until disconnect
  /deny          websocket.close before accept (403)
  /raise-before  raise before accept (500)
  /return-before return without accepting (500)
  /raise-after   accept, send "ok", raise (the connection must end)
  /return-after  accept, send "ok", return without closing
  /close-code    accept, close with 4001 "custom", close again (RuntimeError)
  /late-accept   wait for the disconnect before accepting; REPORT says
                 what receive gave and what accept raised
  /disconnect    accept, receive until disconnect; the code goes to REPORT
  /send-after    accept, wait for the disconnect, then send (must raise)
  /never-receive accept, send "ready", never receive (flow control)
  /flood         accept, send 128 messages of 1 MiB (backpressure), close
  /close-unread  accept, "ready", close once /release-close is opened, then
                 stay alive without receiving until /release-end
  /push          send "tick" every 20 ms, never receive; prints how the
                 send failed at the end ("push ended: ...")
  /release, /release-close, /release-end: set those events (403)
  /report        accept, send REPORT (JSON: what the cases above saw, and
                 with wsmsg the number of live wsmsg connections), close
"""
import argparse
import asyncio
import gc
import json
import os
import sys

REPORT = {"flood_sent": 0, "disconnect_codes": [], "send_after": [],
          "close_twice": [], "lifespan": [], "late_accept": []}
RELEASE = asyncio.Event()  # set by /release
RELEASE_CLOSE = asyncio.Event()  # set by /release-close
RELEASE_END = asyncio.Event()  # set by /release-end


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            REPORT["lifespan"].append(m["type"])
            if m["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif m["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "websocket":
        return
    assert (await receive())["type"] == "websocket.connect"
    what = scope["path"].split("/")[1]
    if what == "scope":
        offered = scope["subprotocols"]
        await send({"type": "websocket.accept",
                    "subprotocol": offered[0] if offered else None,
                    "headers": [(b"x-extra", b"yes")]})
        s = {k: v for k, v in scope.items() if k not in ("headers", "state")}
        s["query_string"] = s["query_string"].decode()
        s["raw_path"] = s["raw_path"].decode() if isinstance(s["raw_path"], bytes) \
            else s["raw_path"]
        s["header_names"] = sorted({k.decode() for k, _ in scope["headers"]})
        s["headers_are_bytes"] = all(isinstance(k, bytes) and isinstance(v, bytes)
                                     for k, v in scope["headers"])
        await send({"type": "websocket.send", "text": json.dumps(s)})
        while True:
            m = await receive()
            if m["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", **{k: v for k, v in m.items()
                                                     if k in ("text", "bytes")}})
    elif what == "deny":
        await send({"type": "websocket.close", "code": 1000})
    elif what == "raise-before":
        raise ValueError("raised before accept (on purpose)")
    elif what == "return-before":
        return
    elif what == "raise-after":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "ok"})
        raise ValueError("raised after accept (on purpose)")
    elif what == "return-after":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "ok"})
    elif what == "close-code":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4001, "reason": "custom"})
        try:
            await send({"type": "websocket.close", "code": 4002})
            REPORT["close_twice"].append("no error")
        except Exception as e:  # noqa: BLE001 - what kind is the report
            REPORT["close_twice"].append(type(e).__name__)
            raise
    elif what == "late-accept":  # accepts after the client has gone
        m = await receive()  # the disconnect
        REPORT["late_accept"].append(m.get("code"))
        try:
            await send({"type": "websocket.accept"})
            REPORT["late_accept"].append("no error")
        except Exception as e:  # noqa: BLE001
            REPORT["late_accept"].append(type(e).__name__)
    elif what == "disconnect":
        await send({"type": "websocket.accept"})
        while True:
            m = await receive()
            if m["type"] == "websocket.disconnect":
                REPORT["disconnect_codes"].append(m.get("code"))
                return
    elif what == "send-after":
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass
        try:
            for _ in range(1000):  # bounded: a send that never fails
                await send({"type": "websocket.send", "text": "late"})
            REPORT["send_after"].append("no error")
        except Exception as e:  # noqa: BLE001
            REPORT["send_after"].append(type(e).__name__)
            raise
    elif what == "never-receive":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "ready"})
        await RELEASE.wait()  # never receives; ends when /release is opened
    elif what == "flood":
        await send({"type": "websocket.accept"})
        blob = os.urandom(1 << 20)  # incompressible (permessage-deflate)
        for _ in range(128):
            await send({"type": "websocket.send", "bytes": blob})
            REPORT["flood_sent"] += 1
        await send({"type": "websocket.close", "code": 1000})
    elif what == "close-unread":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "ready"})
        await RELEASE_CLOSE.wait()
        await send({"type": "websocket.close", "code": 1000})
        await RELEASE_END.wait()  # alive after its close, still not receiving
    elif what == "push":  # a producer that never receives
        await send({"type": "websocket.accept"})
        try:
            for _ in range(3000):  # bounded: 60 s
                await send({"type": "websocket.send", "text": "tick"})
                await asyncio.sleep(0.02)
        except Exception as e:  # noqa: BLE001 - how the push learnt it ended
            print("push ended: %s" % type(e).__name__, file=sys.stderr, flush=True)
    elif what in ("release-close", "release-end"):
        (RELEASE_CLOSE if what == "release-close" else RELEASE_END).set()
        await send({"type": "websocket.close"})
    elif what == "release":
        RELEASE.set()
        await send({"type": "websocket.close"})
    elif what == "report":
        await send({"type": "websocket.accept"})
        core = sys.modules.get("wsmsg._core")
        if core is not None:  # wsmsg connections not freed (this one too)
            REPORT["live_conns"] = sum(1 for o in gc.get_objects()
                                       if isinstance(o, core.Conn) and not o.freed)
        await send({"type": "websocket.send", "text": json.dumps(REPORT)})
        await send({"type": "websocket.close", "code": 1000})
    else:
        await send({"type": "websocket.close"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ws", default="wsmsg")
    ap.add_argument("--ping-interval", type=float, default=20.0)
    ap.add_argument("--ping-timeout", type=float, default=20.0)
    args = ap.parse_args()
    ws = args.ws
    if ws == "wsmsg":
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                        "..", "..", "examples", "ffi", "python"))
        from wsmsg import asgi
        # longer than any test waits: a closing handshake that completes
        # does so on its own, not by the close timeout
        asgi.CLOSE_TIMEOUT_MS = 60000
        ws = asgi.WSMsgProtocol
    import uvicorn
    uvicorn.run(app, host="127.0.0.1", port=args.port, ws=ws,
                ws_max_size=1 << 20, ws_ping_interval=args.ping_interval or None,
                ws_ping_timeout=args.ping_timeout or None, log_level="info",
                lifespan="on")


if __name__ == "__main__":
    main()
