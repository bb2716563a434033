"""examples/asyncapi_mock: a mock server from an AsyncAPI 3 document
(issue 18), driven with python3-websockets.  The shared websocket-gemini
example (../shared/data/asyncapi/examples) and documents written here
cover: shared address with an inferred discriminator, an explicit
discriminator, try-each, address parameters, bindings.ws query and header
checks at the handshake, replies with and without examples, correlation
ids, --emit, GET /asyncapi.json, and a refused document.

    CASE=case_gemini /usr/bin/python3 tests/integration/test_asyncapi_mock.py
"""
import asyncio
import json
import os
import signal
import sys
import tempfile
import urllib.request

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wsharness as H  # noqa: E402

BOUND = 20.0
SHARED = os.path.join(H.ROOT, "..", "shared", "data", "asyncapi")
GEMINI = os.path.join(SHARED, "examples", "websocket-gemini-asyncapi.yml")
SCHEMAS = os.path.join(SHARED, "schemas")

# A Kraken-like control channel: ping/subscribe on one address told apart
# by "event" (inferred), replies with and without examples, correlation ids
# in "reqid"; a second channel on the same address; an explicit
# discriminator; try-each; a parameter with x-pattern; a header binding.
DOC = """\
asyncapi: 3.0.0
info:
  title: mock test
  version: '1.8.0'
servers:
  local:
    host: 'localhost'
    protocol: ws
channels:
  control:
    address: /
    messages:
      ping: {$ref: '#/components/messages/ping'}
      pong: {$ref: '#/components/messages/pong'}
      subscribe: {$ref: '#/components/messages/subscribe'}
      status: {$ref: '#/components/messages/status'}
  control2:
    address: /
    messages:
      unsubscribe:
        payload:
          type: object
          required: [event]
          properties:
            event: {const: unsubscribe}
  pets:
    address: /pets
    messages:
      Cat:
        payload:
          type: object
          discriminator: kind
          required: [kind, lives]
          properties:
            kind: {type: string}
            lives: {type: integer, minimum: 1, maximum: 9}
      Dog:
        payload:
          type: object
          discriminator: kind
          required: [kind]
          properties:
            kind: {type: string}
  shapes:
    address: /shapes
    messages:
      point:
        payload:
          type: object
          required: [x, y]
          properties: {x: {type: number}, y: {type: number}}
      label:
        payload:
          type: object
          required: [text]
          properties: {text: {type: string, maxLength: 5}}
      drawn:
        payload:
          type: object
          required: [ok, id, at, tags]
          properties:
            ok: {const: true}
            id: {type: string, format: uuid}
            at: {type: string, format: date-time}
            code: {type: string, pattern: '^[A-Z]{3}-[0-9]{2}$'}
            n: {type: integer, minimum: 10, multipleOf: 5}
            tags: {type: array, minItems: 2, items: {enum: [a, b]}}
  rooms:
    address: '/rooms/{room}'
    parameters:
      room: {x-pattern: '^[a-z]{1,8}$'}
    bindings:
      ws:
        headers:
          type: object
          required: [X-Api-Key]
          properties:
            X-Api-Key: {type: string, minLength: 4}
    messages:
      say:
        payload: {type: object, required: [text], properties: {text: {type: string}}}
operations:
  receivePing:
    action: receive
    channel: {$ref: '#/channels/control'}
    messages: [{$ref: '#/channels/control/messages/ping'}]
    reply:
      channel: {$ref: '#/channels/control'}
      messages: [{$ref: '#/channels/control/messages/pong'}]
  receiveSubscribe:
    action: receive
    channel: {$ref: '#/channels/control'}
    messages: [{$ref: '#/channels/control/messages/subscribe'}]
    reply:
      channel: {$ref: '#/channels/control'}
      messages: [{$ref: '#/channels/control/messages/status'}]
  receiveUnsubscribe:
    action: receive
    channel: {$ref: '#/channels/control2'}
  sendStatus:
    action: send
    channel: {$ref: '#/channels/control'}
    messages: [{$ref: '#/channels/control/messages/status'}]
  receivePet:
    action: receive
    channel: {$ref: '#/channels/pets'}
  receiveShape:
    action: receive
    channel: {$ref: '#/channels/shapes'}
    messages:
      - {$ref: '#/channels/shapes/messages/point'}
      - {$ref: '#/channels/shapes/messages/label'}
    reply:
      messages: [{$ref: '#/channels/shapes/messages/drawn'}]
  receiveSay:
    action: receive
    channel: {$ref: '#/channels/rooms'}
components:
  messages:
    ping:
      payload:
        type: object
        required: [event]
        properties:
          event: {type: string, const: ping}
          reqid: {type: integer}
      correlationId: {location: '$message.payload#/reqid'}
    pong:
      payload:
        type: object
        required: [event]
        properties:
          event: {type: string, const: pong}
          reqid: {type: integer}
      correlationId: {location: '$message.payload#/reqid'}
    subscribe:
      payload:
        type: object
        required: [event, pair]
        properties:
          event: {type: string, const: subscribe}
          reqid: {type: integer}
          pair: {type: array, items: {type: string}, minItems: 1}
      correlationId: {location: '$message.payload#/reqid'}
    status:
      payload:
        type: object
        required: [event, status]
        properties:
          event: {type: string, const: subscriptionStatus}
          status: {type: string, enum: [subscribed, error]}
          reqid: {type: integer}
      correlationId: {location: '$message.payload#/reqid'}
      examples:
        - payload: {event: subscriptionStatus, status: subscribed, reqid: 0}
"""


class Mock(H.Proc):
    def __init__(self, path, *extra, expect_listen=True):
        self.port = H.free_port()
        super().__init__([H.binary("asyncapi_mock"), "--port", str(self.port),
                          "--asyncapi", path, "--schemas", SCHEMAS,
                          *extra])
        if expect_listen:
            H.wait_listening(self.port, self.p, timeout=BOUND)

    def url(self, path):
        return f"ws://127.0.0.1:{self.port}{path}"

    def finish(self):
        rc = self.stop(signal.SIGTERM)
        err = self.stderr()
        assert rc == 0, f"asyncapi_mock exited {rc}:\n{err[-3000:]}"
        rep = H.sanitizer_report(err)
        assert not rep, rep
        return err


_tmp = tempfile.TemporaryDirectory()


def doc_file(text, name="doc.yaml"):
    path = os.path.join(_tmp.name, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, BOUND))


async def ask(ws, msg):
    await ws.send(json.dumps(msg))
    return json.loads(await asyncio.wait_for(ws.recv(), BOUND))


def with_mock(path, body, *extra):
    srv = Mock(path, *extra)
    try:
        run(body(srv))
        return srv.finish()
    finally:
        srv.stop()


def case_shared_address_inferred_discriminator_and_replies():
    async def body(srv):
        async with websockets.connect(srv.url("/")) as ws:
            # no example: a generated pong, the request's reqid copied
            r = await ask(ws, {"event": "ping", "reqid": 42})
            assert r == {"event": "pong", "reqid": 42}, r
            # an example: its payload, with this request's reqid
            r = await ask(ws, {"event": "subscribe", "reqid": 7,
                               "pair": ["XBT/USD"]})
            assert r == {"event": "subscriptionStatus",
                         "status": "subscribed", "reqid": 7}, r
            # coercion (FastAPI's default): "9" is an integer reqid
            r = await ask(ws, {"event": "ping", "reqid": "9"})
            assert r["reqid"] == 9, r
            # invalid: the standard error reply, naming the field
            r = await ask(ws, {"event": "subscribe", "pair": []})
            assert r["error"] == "validation_error", r
            assert r["detail"][0]["loc"] == ["pair"], r
            r = await ask(ws, {"event": "nope"})
            assert "invalid_discriminator" in r["detail"][-1]["type"], r
            r = await ask(ws, {"reqid": 1})
            assert "missing_discriminator" in r["detail"][-1]["type"], r
            # the other channel on the address: no reply, no error
            await ws.send(json.dumps({"event": "unsubscribe"}))
            r = await ask(ws, {"event": "ping", "reqid": 1})
            assert r == {"event": "pong", "reqid": 1}, r
    err = with_mock(doc_file(DOC), body)
    assert '"event" (inferred)' in err, err


def case_explicit_discriminator():
    async def body(srv):
        async with websockets.connect(srv.url("/pets")) as ws:
            r = await ask(ws, {"kind": "Cat", "lives": 10})
            assert r["detail"][0]["loc"] == ["lives"], r
            r = await ask(ws, {"kind": "Bird"})
            assert "invalid_discriminator" in r["detail"][0]["type"], r
            assert "Cat" in r["detail"][0]["msg"], r
            # valid ones have no reply: a following invalid one answers
            await ws.send(json.dumps({"kind": "Dog"}))
            r = await ask(ws, {"kind": "Cat"})
            assert r["detail"][0]["loc"] == ["lives"], r
    err = with_mock(doc_file(DOC), body)
    assert '"kind" (explicit discriminator)' in err, err


def case_try_each_and_generated_reply():
    async def body(srv):
        async with websockets.connect(srv.url("/shapes")) as ws:
            for msg in ({"x": 1, "y": 2.5}, {"text": "hi"}):
                r = await ask(ws, msg)
                # generated from the schema: every constraint holds
                assert r["ok"] is True, r
                assert len(r["id"]) == 36 and r["id"].count("-") == 4, r
                assert r["at"].endswith("Z"), r
                assert len(r["tags"]) >= 2, r
                if "code" in r:
                    c = r["code"]
                    assert len(c) == 6 and c[3] == "-" and c[:3].isupper(), r
                if "n" in r:
                    assert r["n"] >= 10 and r["n"] % 5 == 0, r
            # none matches: the closest message's errors (label's)
            r = await ask(ws, {"text": "far too long"})
            assert r["error"] == "validation_error", r
            assert [d["loc"] for d in r["detail"]] == [["text"]], r
            # both match
            r = await ask(ws, {"x": 1, "y": 2, "text": "a"})
            assert "more than one message" in r["detail"][0]["msg"], r
    err = with_mock(doc_file(DOC), body)
    assert "each is tried" in err, err
    assert "0 generated messages refused" in err, err


def case_parameters_and_header_binding():
    async def body(srv):
        hdr = {"X-Api-Key": "secret"}
        async with websockets.connect(srv.url("/rooms/lobby"),
                                      extra_headers=hdr) as ws:
            r = await ask(ws, {"nope": 1})
            assert r["detail"][0]["loc"] == ["text"], r
        for path, headers, status in (
                ("/rooms/Lobby", hdr, 400),        # x-pattern
                ("/rooms/lobby", {}, 400),          # header required
                ("/rooms/lobby", {"X-Api-Key": "abc"}, 400),  # minLength
                ("/rooms/lobby/x", hdr, 404),       # not the template
                ("/rooms/", hdr, 404),              # a parameter is never empty
                ("/nowhere", hdr, 404)):
            try:
                async with websockets.connect(srv.url(path),
                                              extra_headers=headers):
                    raise AssertionError(f"{path}: opened")
            except websockets.InvalidStatusCode as e:
                assert e.status_code == status, (path, e.status_code)
    with_mock(doc_file(DOC), body)


def case_emit_send_operations():
    async def body(srv):
        async with websockets.connect(srv.url("/")) as ws:
            got = json.loads(await asyncio.wait_for(ws.recv(), BOUND))
            assert got["event"] == "subscriptionStatus", got
            assert got["status"] in ("subscribed", "error"), got
            got2 = json.loads(await asyncio.wait_for(ws.recv(), BOUND))
            assert got2["event"] == "subscriptionStatus", got2
    with_mock(doc_file(DOC), body, "--emit", "50")


def case_gemini():
    """The shared example: wss server, /v1/marketdata/{symbol} with an enum,
    a query binding, a send operation whose payload is oneOf of allOfs."""
    async def body(srv):
        url = srv.url("/v1/marketdata/btcusd?heartbeat=true&bids=false")
        async with websockets.connect(url) as ws:
            for _ in range(3):
                m = json.loads(await asyncio.wait_for(ws.recv(), BOUND))
                assert m["type"] in ("heartbeat", "update"), m
                assert isinstance(m["socket_sequence"], int), m
        for path, status in (("/v1/marketdata/dogeusd", 400),
                             ("/v1/marketdata/btcusd?heartbeat=maybe", 400),
                             ("/v1/marketdata/", 404)):
            try:
                async with websockets.connect(srv.url(path)):
                    raise AssertionError(f"{path}: opened")
            except websockets.InvalidStatusCode as e:
                assert e.status_code == status, (path, e.status_code)
        # the document over plain HTTP
        def fetch():
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{srv.port}/asyncapi.json",
                    timeout=BOUND) as r:
                return r.status, json.loads(r.read())
        status, doc = await asyncio.get_running_loop().run_in_executor(
            None, fetch)
        assert status == 200 and doc["asyncapi"] == "3.1.0", doc.keys()
        assert "marketDataV1" in doc["channels"]
    err = with_mock(GEMINI, body, "--emit", "30")
    assert "0 generated messages refused" in err, err


def case_demo_server_describes_itself():
    """demo_server's GET /asyncapi.json is a valid AsyncAPI 3.0 document:
    asyncapi_mock loads it (validating it against the official schema)
    and serves it, and the mock then checks /ws/json-demo's messages as
    demo_server does."""
    port = H.free_port()
    tmpdir = tempfile.mkdtemp(dir=_tmp.name)
    demo = H.Proc([H.binary("demo_server"), "--port", str(port), "--dir",
                   tmpdir, "--quiet"])
    try:
        H.wait_listening(port, demo.p, timeout=BOUND)
        with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/asyncapi.json", timeout=BOUND) as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "application/json"
            text = r.read().decode()
        rc = demo.stop(signal.SIGTERM)
        assert rc == 0, (rc, demo.stderr()[-2000:])
    finally:
        demo.stop()
    doc = json.loads(text)
    assert doc["asyncapi"] == "3.0.0", doc
    addrs = sorted(c["address"] for c in doc["channels"].values())
    assert addrs == ["/ws/chat", "/ws/echo", "/ws/file-transfer",
                     "/ws/json-demo", "/ws/room", "/ws/with-timeout"], addrs

    async def body(srv):
        async with websockets.connect(srv.url("/ws/json-demo")) as ws:
            r = await ask(ws, {"user": "ann", "content": "hi"})
            assert r["error"] == "validation_error", r
            assert [d["loc"] for d in r["detail"]] == [["timestamp"]], r
    with_mock(doc_file(text, "demo.json"), body)


def case_refused_document():
    bad = doc_file("asyncapi: 3.0.0\ninfo: {title: t}\nchannels: 7\n",
                   "bad.yaml")
    srv = Mock(bad, expect_listen=False)
    rc = srv.wait(BOUND)
    err = srv.stderr()
    assert rc == 1, (rc, err)
    assert "does not match the AsyncAPI 3.0.0 schema" in err, err
    assert '["info","version"]' in err and '["channels"]' in err, err
    rep = H.sanitizer_report(err)
    assert not rep, rep


if __name__ == "__main__":
    H.run_cases(globals(), minimum=8)
