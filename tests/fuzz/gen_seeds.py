#!/usr/bin/env python3
"""Write the hand-made seed corpora: tests/fuzz/corpus/<target>/seed-*.

Deterministic; run it again after changing an input layout (the files it
writes start with "seed-"; crash inputs kept as regression seeds are named
"regress-*" and are left alone).  The layouts are described at the top of
each target's source.
"""
import os
import struct
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def frame(op, payload=b"", fin=True, mask=None, rsv=0, length=None):
    """One frame; mask is a 4-byte key or None.  `length` overrides the
    length field (for frames whose payload does not follow)."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    mbit = 0x80 if mask is not None else 0
    if n < 126:
        h = bytes([b0, mbit | n])
    elif n < 65536:
        h = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        h = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if mask is not None:
        h += mask
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return h + payload


def close_payload(code, reason=b""):
    return struct.pack(">H", code) + reason


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def clean(target):
    d = os.path.join(ROOT, target)
    if os.path.isdir(d):
        for f in os.listdir(d):
            if f.startswith("seed-"):
                os.remove(os.path.join(d, f))


# ---- frames a peer may send (shared by the conn targets) -----------------

def peer_frames(mask):
    m = mask
    big = bytes(range(256)) * 1  # 256 bytes: 16-bit length
    return {
        "text": frame(1, b"hello", mask=m),
        "text-empty": frame(1, b"", mask=m),
        "text-utf8": frame(1, "h\u00e9llo \u20ac \U0001f600".encode(), mask=m),
        "binary": frame(2, b"\x00\x01\x02\xff", mask=m),
        "binary-256": frame(2, big, mask=m),
        "fragmented": frame(1, b"Hel", fin=False, mask=m)
        + frame(0, b"", fin=False, mask=m)
        + frame(9, b"mid", mask=m)
        + frame(0, b"lo", mask=m),
        "fragmented-utf8-split": frame(1, b"\xe2\x82", fin=False, mask=m)
        + frame(0, b"\xac", mask=m),
        "fragmented-binary": frame(2, b"ab", fin=False, mask=m)
        + frame(0, b"cd", fin=False, mask=m)
        + frame(0, b"ef", mask=m),
        "ping": frame(9, b"are you there", mask=m),
        "pong": frame(10, b"\x00" * 7 + b"\x01", mask=m),
        "close-1000": frame(8, close_payload(1000, b"bye"), mask=m),
        "close-empty": frame(8, b"", mask=m),
        "close-4999": frame(8, close_payload(4999), mask=m),
        "close-1byte": frame(8, b"\x03", mask=m),
        "close-1005": frame(8, close_payload(1005), mask=m),
        "close-bad-utf8": frame(8, close_payload(1000, b"\xff"), mask=m),
        "bad-utf8": frame(1, b"ok\xc3\x28", mask=m),
        "bad-utf8-end": frame(1, b"ok\xe2\x82", mask=m),
        "rsv": frame(1, b"x", rsv=4, mask=m),
        "reserved-op": frame(3, b"x", mask=m),
        "reserved-ctl": frame(11, b"", mask=m),
        "continuation-alone": frame(0, b"x", mask=m),
        "ctl-fragmented": frame(9, b"x", fin=False, mask=m),
        "ctl-126": frame(9, b"p" * 126, mask=m),
        "new-inside-fragmented": frame(1, b"a", fin=False, mask=m)
        + frame(2, b"b", mask=m),
        "len-64k-header-only": frame(2, b"", mask=m, length=70000),
        "len-huge-header-only": frame(2, b"", mask=m, length=1 << 62),
        "wrong-mask": frame(1, b"x", mask=None if m else b"\x01\x02\x03\x04"),
        "many": frame(1, b"a", mask=m) * 4 + frame(9, b"", mask=m)
        + frame(2, b"b", mask=m),
        "text-then-close": frame(1, b"hi", mask=m)
        + frame(8, close_payload(1001), mask=m),
    }


def conn_seeds(target, mask):
    clean(target)
    frames = peer_frames(mask)

    def cfg(epf=0, limits=0, to=0, tv=0, cbf=0, k=1, script=b"", tail=0x0F):
        return bytes([epf, limits, to, tv, cbf, k, len(script), tail]) + script

    # every frame fed whole, with callbacks (echo on)
    for name, fr in frames.items():
        write(target, "cb-" + name, cfg(cbf=0x01) + fr)
    # byte by byte, pull API, streaming receive
    for name in ("text", "fragmented", "fragmented-utf8-split", "close-1000",
                 "binary-256", "bad-utf8"):
        write(target, "bytewise-" + name,
              cfg(epf=0x0C, tail=0x00) + frames[name])
        write(target, "chunked-" + name,
              cfg(epf=0x03, tail=0x02) + frames[name])
    # limits: max message 16, max fragments 2
    write(target, "limits-fragmented", cfg(limits=0x34) + frames["fragmented"])
    write(target, "limits-binary", cfg(limits=0x04) + frames["binary-256"])
    # scripts: recv / consume / send / ping / close / tick / stream / events
    S = bytes
    write(target, "script-sends",
          cfg(script=S([0x0F, 0x34, 0x44, 0x63, 0x21, 0xE0, 0x70, 0x00, 0xE0]))
          + frames["text"] + frames["ping"])
    write(target, "script-text-bytes",
          cfg(script=S([0x50, 6]) + "h\u00e9\u20ac".encode()[:6])
          + frames["text"])
    write(target, "script-stream",
          cfg(script=S([0x91, 0x0B, 0xE0, 0x22, 0xA0, 0xE0, 0x0F]))
          + frames["text"])
    write(target, "script-stream-pause",
          cfg(script=S([0x90, 0x2C, 0xE0, 0xA0, 0xE0, 0x70, 0x03]))
          + frames["close-1000"])
    write(target, "script-close-reasons",
          cfg(script=S([0x7C, 0x00, 0x70, 0x07, 0x7F, 0x03, 0x0F]))
          + frames["close-1000"])
    write(target, "script-eof", cfg(script=S([0x0F, 0xD0])) + frames["text"])
    write(target, "script-abort",
          cfg(script=S([0x38, 0x20, 0xDF])) + frames["text"])
    write(target, "script-queries", cfg(epf=0x40, script=S([0xC0, 0xB5])))
    # timeouts: receive (callback), keepalive ping/pong, message, close, write
    write(target, "timeout-receive-cb",
          cfg(to=0x81, tv=0x06, script=S([0x8A, 0x8A, 0xE0])))
    write(target, "timeout-receive-actions",
          cfg(to=0x01, tv=0x26, script=S([0x8A, 0xE0, 0x8A, 0xB5])))
    write(target, "timeout-heartbeat",
          cfg(to=0x01, tv=0xC6, script=S([0x8A, 0xE0])))
    write(target, "timeout-keepalive",
          cfg(to=0x06, tv=0x05, script=S([0x89, 0xE0, 0x89, 0x89, 0x00]))
          + frames["pong"])
    write(target, "timeout-message",
          cfg(to=0x08, tv=0x05, epf=0x20,
              script=S([0x00, 0x00, 0x00, 0x00, 0x00, 0x8A]))
          + frames["fragmented"])
    write(target, "timeout-close",
          cfg(to=0x10, tv=0x05, script=S([0x70, 0x00, 0xE0, 0x8C, 0x8F])))
    write(target, "timeout-write",
          cfg(to=0x20, tv=0x05, epf=0x20, script=S([0x38, 0x8A, 0x8A])))
    # backpressure: small marks, fail and close policies, drain callback
    write(target, "bp-fail",
          cfg(epf=0x80, cbf=0x80, script=S([0x3E, 0x3E, 0x3E, 0x2F, 0xE0])))
    write(target, "bp-close",
          cfg(epf=0x80, to=0x40, script=S([0x3E, 0x3E, 0x3E, 0xE0])))
    # callbacks that close, stream, ping, abort at the k-th message
    write(target, "cb-close-at-2", cfg(cbf=0x22, k=2) + frames["many"])
    write(target, "cb-stream-at-1", cfg(cbf=0x08) + frames["many"])
    write(target, "cb-ping", cfg(cbf=0x04) + frames["many"])
    write(target, "cb-abort-at-3", cfg(cbf=0x10, k=3) + frames["many"])
    write(target, "final-steps", cfg(tail=0xF0) + frames["text"])


# ---- handshakes ------------------------------------------------------------

def request(target=b"/ws", extra=b"", key=KEY, version=b"13",
            host=b"Host: example.com\r\n", method=b"GET", http=b"HTTP/1.1",
            upgrade=b"Upgrade: websocket\r\n",
            connection=b"Connection: Upgrade\r\n"):
    return (method + b" " + target + b" " + http + b"\r\n" + host + upgrade
            + connection + b"Sec-WebSocket-Key: " + key + b"\r\n"
            + b"Sec-WebSocket-Version: " + version + b"\r\n" + extra + b"\r\n")


def handshake_server_seeds():
    t = "fuzz_handshake_server"
    clean(t)
    m = b"\x11\x22\x33\x44"
    reqs = {
        "basic": request(),
        "query": request(b"/ws?room=1&x=y"),
        "prefix-route": request(b"/ws/room/42"),
        "not-found": request(b"/nope"),
        "protocols": request(extra=b"Sec-WebSocket-Protocol: other, chat\r\n"
                             b"Sec-WebSocket-Protocol: superchat\r\n"),
        "origin-ok": request(extra=b"Origin: https://example.com\r\n"),
        "origin-bad": request(extra=b"Origin: https://evil.example\r\n"),
        "origin-twice": request(extra=b"Origin: https://example.com\r\n"
                                b"Origin: https://example.com\r\n"),
        "cookies": request(extra=b"Cookie: a=1; session=\"abc\"; z=2\r\n"
                           b"Cookie: id=7\r\n"),
        "cookie-odd": request(extra=b"Cookie: ;;=x; session=; a\r\n"),
        "lowercase": request().replace(b"Upgrade:", b"upgrade:")
        .replace(b"Sec-WebSocket-Key", b"sec-websocket-key"),
        "spaces": request(extra=b"X-Pad:   \t value with spaces \t \r\n"),
        "keep-alive": request(connection=b"Connection: keep-alive, Upgrade\r\n"),
        "post": request(method=b"POST"),
        "http10": request(http=b"HTTP/1.0"),
        "no-host": request(host=b""),
        "two-hosts": request(host=b"Host: a\r\nHost: b\r\n"),
        "bad-key": request(key=b"short"),
        "bad-key-chars": request(key=b"dGhlIHNhbXBsZSBub25jZQ!="),
        "version-8": request(version=b"8"),
        "no-upgrade": request(upgrade=b""),
        "folding": request(extra=b"X-A: 1\r\n continued\r\n"),
        "no-colon": request(extra=b"Bad header line\r\n"),
        "ctl-in-value": request(extra=b"X-A: a\x01b\r\n"),
        "absolute-uri": request(b"http://example.com/ws"),
        "many-headers": request(extra=b"".join(b"X-%d: v\r\n" % i
                                               for i in range(8))),
        "then-frames": request() + frame(1, b"hello", mask=m)
        + frame(9, b"p", mask=m) + frame(8, close_payload(1000), mask=m),
        "then-bad-frame": request() + frame(1, b"x", mask=None),
        "incomplete": request()[:-2],
        "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        "bare-lf": request().replace(b"\r\n", b"\n"),
    }
    cfgs = [b"\x08\x00\x10\x00", b"\x00\x00\x00\x01", b"\x48\x00\x05\x02",
            b"\x10\x00\x01\x03", b"\x18\x00\x07\x84", b"\x28\x00\x20\x05",
            b"\x03\x00\x00\x06", b"\x84\x00\x09\x07"]
    for i, (name, r) in enumerate(reqs.items()):
        write(t, name, cfgs[i % len(cfgs)] + r)
    write(t, "small-limit", b"\x01\x00\x10\x00" + request(extra=b"X: "
                                                        + b"a" * 300 + b"\r\n"))
    write(t, "timeout", b"\x0c\x00\x05\x00" + request()[:40])
    write(t, "reject-401", b"\x10\x00\x10\x00" + request())
    write(t, "require-proto", b"\x28\x00\x10\x00" + request(b"/ws/x"))


def response(accept=b"@A", status=b"101 Switching Protocols", extra=b"",
             http=b"HTTP/1.1", upgrade=b"Upgrade: websocket\r\n",
             connection=b"Connection: Upgrade\r\n"):
    acc = b"Sec-WebSocket-Accept: " + accept + b"\r\n" if accept else b""
    return (http + b" " + status + b"\r\n" + upgrade + connection + acc + extra
            + b"\r\n")


def handshake_client_seeds():
    t = "fuzz_handshake_client"
    clean(t)
    resps = {
        "basic": response(),
        "protocol-chat": response(extra=b"Sec-WebSocket-Protocol: chat\r\n"),
        "protocol-unknown": response(extra=b"Sec-WebSocket-Protocol: x\r\n"),
        "protocol-twice": response(extra=b"Sec-WebSocket-Protocol: chat\r\n"
                                   b"Sec-WebSocket-Protocol: chat\r\n"),
        "extension": response(extra=b"Sec-WebSocket-Extensions: "
                              b"permessage-deflate\r\n"),
        "status-400": response(status=b"400 Bad Request", accept=b"")
        + b"bad",
        "status-1011": response(status=b"1011 Nope"),
        "http10": response(http=b"HTTP/1.0"),
        "no-upgrade": response(upgrade=b""),
        "no-connection": response(connection=b""),
        "wrong-accept": response(accept=b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "two-accepts": response(extra=b"Sec-WebSocket-Accept: @A\r\n"),
        "lowercase": response().lower().replace(b"@a", b"@A"),
        "then-frames": response() + frame(1, b"hello") + frame(2, b"\x00\xff")
        + frame(9, b"ping") + frame(8, close_payload(1000, b"bye")),
        "then-masked-frame": response() + frame(1, b"x",
                                                mask=b"\x01\x02\x03\x04"),
        "incomplete": response()[:-2],
        "garbage": b"\x00\xff\r\n\r\n",
        "huge-header": response(extra=b"X: " + b"a" * 600 + b"\r\n"),
    }
    cfgs = [b"\x04\x00\x10", b"\x05\x00\x03", b"\x27\x00\x40", b"\x0e\x00\x00",
            b"\x14\x00\x21", b"\x06\x00\x07"]
    for i, (name, r) in enumerate(resps.items()):
        write(t, name, cfgs[i % len(cfgs)] + r)
    write(t, "raw-no-subst", b"\x00\x00\x10" + response())
    write(t, "timeout", b"\x0c\x00\x05" + response()[:30])


# ---- pair ------------------------------------------------------------------

def pair_seeds():
    t = "fuzz_pair"
    clean(t)
    C = 0x80  # client side

    def ops(*b):
        return bytes(b)

    seeds = {
        "echo-text": (b"\x00\x00\x00\x00", ops(C | 0x01, C | 0x5F, 0x00 | 0x02,
                                               0x5F)),
        "binary-sizes": (b"\x00\x00\x00\x00",
                         ops(C | 0x10, C | 0x13, C | 0x16, C | 0x1F, C | 0x5F)),
        "partial-delivery": (b"\x00\x00\x00\x00",
                             ops(C | 0x05, C | 0x50, C | 0x53, C | 0x56,
                                 C | 0x5F)),
        "bytewise": (b"\x00\x00\x00\x00", ops(C | 0x03, C | 0x50, C | 0x5D,
                                              C | 0x5F)),
        "ping": (b"\x00\x00\x00\x00", ops(C | 0x25, C | 0x5F, 0x5F)),
        "stream-bin": (b"\x00\x00\x00\x00", ops(C | 0x30, 0x1D, C | 0x5F,
                                                C | 0x5F)),
        "stream-text-pause": (b"\x00\x00\x00\x00",
                              ops(0x31, 0x2C, 0x01, 0x5F, 0x70, 0x5F)),
        "stream-then-msg": (b"\x00\x00\x00\x00",
                            ops(C | 0x30, 0x0D, C | 0x01, C | 0x5F)),
        "close-client": (b"\x00\x00\x00\x00", ops(C | 0x01, C | 0x40, C | 0x5F,
                                                  0x5F)),
        "close-both": (b"\x00\x00\x00\x00", ops(0x44, C | 0x45, 0x5F, C | 0x5F)),
        "close-no-code": (b"\x00\x00\x00\x00", ops(0x46, 0x5F, C | 0x5F)),
        "chunks-both": (b"\x03\x03\x00\x00",
                        ops(C | 0x05, C | 0x11, C | 0x5F, 0x00, 0x5F)),
        "pull": (b"\x84\x84\x00\x00", ops(C | 0x01, C | 0x5F, 0x75, C | 0x44,
                                          C | 0x5F, 0x5F, 0x74, C | 0x74)),
        "limits": (b"\x00\x00\x21\x00", ops(C | 0x05, C | 0x5F)),
        "backpressure": (b"\x08\x08\x00\x00",
                         ops(0x05, 0x05, 0x05, 0x05, 0x52, 0x05)),
        "keepalive": (b"\x30\x30\x00\x00", ops(0x6A, 0x5F, C | 0x5F, 0x6A,
                                               0x6A)),
        "close-timeout": (b"\x40\x40\x00\x00", ops(0x40, 0x5F, 0x6C)),
        "eof": (b"\x00\x00\x00\x00", ops(C | 0x01, 0x7C, C | 0x5F)),
        "abort": (b"\x00\x00\x00\x00", ops(C | 0x01, C | 0x7F, C | 0x5F)),
    }
    for name, (cfg, o) in seeds.items():
        write(t, name, cfg + o)
    # allocation failures: the n-th allocation, once or from then on
    base = ops(C | 0x05, C | 0x5F, 0x13, 0x5F, C | 0x30, 0x1D, C | 0x5F,
               0x04, 0x5F, C | 0x40, C | 0x5F, 0x5F)
    for n in (1, 2, 3, 5, 8, 12, 20, 30):
        write(t, "oom-%d" % n, bytes([0, 0x04, 0, n]) + base)
        write(t, "oom-%d-sticky" % n, bytes([0x03, 0x84, 0, 0x80 | n]) + base)


# ---- JSON Schema -------------------------------------------------------------

SCHEMAS = [
    {"type": "object",
     "properties": {"user": {"type": "string", "minLength": 1},
                    "content": {"type": "string", "maxLength": 20},
                    "timestamp": {"type": "number"},
                    "room": {"type": "string", "default": "lobby"}},
     "required": ["user", "content", "timestamp"],
     "additionalProperties": False},
    {"type": ["integer", "null"], "minimum": -5, "exclusiveMaximum": 1000,
     "multipleOf": 3},
    {"type": "number", "multipleOf": 0.01, "maximum": 1e300},
    {"type": "string", "pattern": "^[a-z]+\\d{2,}$", "minLength": 3},
    {"anyOf": [{"format": f} for f in ("email", "uuid", "date-time", "ipv4",
                                        "ipv6", "uri")], "type": "string"},
    {"type": "object", "patternProperties": {"^x-": {"type": "integer"},
                                             "\\p{Lu}": {"type": "boolean"}},
     "propertyNames": {"maxLength": 8, "pattern": "^[^ ]*$"}},
    {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}],
     "items": {"type": "boolean"}, "maxItems": 5, "uniqueItems": True},
    {"type": "array", "contains": {"const": 1}, "minContains": 2,
     "maxContains": 3, "unevaluatedItems": False},
    {"oneOf": [{"type": "object", "properties": {"type": {"const": "chat"},
                                                 "text": {"type": "string"}},
                "required": ["type", "text"]},
               {"type": "object", "properties": {"type": {"const": "join"},
                                                 "room": {"type": "string",
                                                          "default": "lobby"}},
                "required": ["type"]}]},
    {"if": {"properties": {"n": {"type": "integer"}}},
     "then": {"required": ["m"]}, "else": {"not": {"required": ["m"]}},
     "dependentRequired": {"card": ["cvv"]}},
    {"allOf": [{"$ref": "#/$defs/pos"},
               {"enum": [1, 2, 3, "4", None, [1], {"a": 1}]}],
     "$defs": {"pos": {"type": "integer", "exclusiveMinimum": 0}}},
    {"$defs": {"node": {"type": "object",
                        "properties": {"v": {"type": "integer"},
                                       "kids": {"type": "array",
                                                "items": {"$ref": "#/$defs/node"}}},
                        "unevaluatedProperties": False}},
     "$ref": "#/$defs/node"},
    {"$schema": "http://json-schema.org/draft-07/schema#", "type": "array",
     "items": [{"type": "string"}, {"type": "number"}],
     "additionalItems": False, "dependencies": {}},
    {"$schema": "http://json-schema.org/draft-07/schema#",
     "definitions": {"b": {"type": "boolean", "default": True}},
     "type": "object",
     "properties": {"flag": {"$ref": "#/definitions/b"},
                    "on": {"type": "boolean", "default": "yes"}},
     "dependencies": {"a": ["b"], "c": {"required": ["d"]}}},
    True,
    {"properties": {"a": False},
     "additionalProperties": {"type": ["string", "integer"], "maxLength": 4}},
]

MORE_SCHEMAS = {
    "anchor": {"$defs": {"x": {"$anchor": "pt", "type": "integer"}},
               "items": {"$ref": "#pt"}},
    "id-resources": {"$id": "http://example.com/root.json",
                     "$defs": {"b": {"$id": "b.json", "type": "string"}},
                     "properties": {"p": {"$ref": "b.json"},
                                    "q": {"$ref": "http://example.com/b.json"}}},
    "pointer-escapes": {"$defs": {"a/b": {"type": "null"}, "c~d": {},
                                  "%": {"minimum": 1}},
                        "anyOf": [{"$ref": "#/$defs/a~1b"},
                                  {"$ref": "#/$defs/c~0d"},
                                  {"$ref": "#/$defs/%25"}]},
    "ref-cycle": {"$defs": {"a": {"$ref": "#/$defs/b"},
                            "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
    "dynamic-ref": {"$dynamicRef": "#x"},
    "remote-ref": {"$ref": "http://json-schema.org/draft/2020-12/schema"},
    "bad-regex": {"pattern": "(["},
    "ecma-regex": {"pattern": "^\\u00e9\\s[^]\\p{Letter}\\d$"},
    "unknown-dialect": {"$schema": "http://json-schema.org/draft-04/schema#"},
    "bad-type": {"type": "integr"},
    "bad-minimum": {"minimum": "3"},
    "deep": {"items": {"items": {"items": {"items": {"items": {}}}}}},
    "unevaluated": {"allOf": [{"properties": {"a": True}}],
                    "unevaluatedProperties": {"type": "integer"}},
    "dependent-schemas": {"dependentSchemas": {"a": {"required": ["b"]}}},
}

DOCS = {
    0: ['{"user": "ann", "content": "hi", "timestamp": 1.5}',
        '{"user": "", "content": "' + "x" * 30 + '", "timestamp": "3", "z": 1}',
        '{"user": 5}', '[]'],
    1: ['9', '-6', 'null', '"12"', '3.0', '999', '1000'],
    2: ['0.07', '0.071', '"1e2"', '1e308'],
    3: ['"abc12"', '"ab"', '12', '"ABC12"'],
    4: ['"a@b.cd"', '"123e4567-e89b-12d3-a456-426614174000"',
        '"2024-02-29T12:00:00Z"', '"1.2.3.4"', '"::1"', '"http://x/y"',
        '"nope"'],
    5: ['{"x-a": 1, "B": true, "c": null}', '{"x-a": "1", "has space": 0}'],
    6: ['[1, "a", true, false]', '[1, 1]', '["1", 2]', '[1, "a", true, true]'],
    7: ['[1, 1]', '[1, 2]', '[1, 1, 1, 1]'],
    8: ['{"type": "chat", "text": "hi"}', '{"type": "join"}',
        '{"type": "other"}', '{"type": "chat", "text": 5}'],
    9: ['{"n": 1, "m": 2}', '{"n": "1"}', '{"m": 1}', '{"card": 1}'],
    10: ['1', '4', '"4"', '[1]'],
    11: ['{"v": 1, "kids": [{"v": 2, "kids": []}, {"v": "3"}]}',
         '{"v": 1, "x": 2}'],
    12: ['["a", 1]', '["a", 1, 2]', '[1, "a"]'],
    13: ['{}', '{"a": 1}', '{"c": 1, "on": "no"}'],
    14: ['null', '{"anything": [1, 2]}'],
    15: ['{"a": 1}', '{"b": "12345", "c": 5.5}'],
}


def json_dumps(v):
    import json
    return json.dumps(v).encode()


def schema_seeds():
    t = "fuzz_schema_compile"
    clean(t)
    for i, sc in enumerate(SCHEMAS):
        write(t, "seed%02d" % i, bytes([0x00 if i % 2 else 0x02 << 2])
              + json_dumps(sc))
    for name, sc in MORE_SCHEMAS.items():
        write(t, name, b"\x00" + json_dumps(sc))
    write(t, "draft7-default", b"\x01" + json_dumps({"items": [{}, {}]}))
    write(t, "not-json", b"\x0c" + b'{"type": ')
    t = "fuzz_schema_validate"
    clean(t)
    for k, docs in DOCS.items():
        for j, d in enumerate(docs):
            flags = [0, 1, 3, 7, 4, 2][j % 6]
            cap = [0, 0x10, 0x20, 0x30][(k + j) % 4]
            write(t, "s%02d-%d" % (k, j), bytes([flags | cap, k]) + d.encode())
    write(t, "not-json", b"\x00\x00" + b'{"user": ')
    own = json_dumps({"type": "object", "properties": {
        "n": {"type": "integer", "default": 5}}})
    write(t, "own-schema", bytes([0x43]) + struct.pack(">H", len(own)) + own
          + b'{"n": "7"}')


def json_endpoint_seeds():
    t = "fuzz_json_endpoint"
    clean(t)
    m = b"\x37\xfa\x21\x3d"
    texts = {
        "valid": b'{"user": "ann", "content": "hi", "n": "3"}',
        "defaults": b'{"user": "ann", "content": "hi", "tags": ["a", "\xc3\xa9"]}',
        "missing": b'{"user": 5}',
        "extra": b'{"user": "a", "content": "b", "x": true, "y": 1}',
        "dups": b'{"user": "a", "user": "b", "content": ""}',
        "not-json": b'{"user": ',
        "bad-escape-split-char": b'["\\u000\xc8\x84"]',
        "not-object": b'[1, 2]',
        "scalar": b'"just a string"',
        "join": b'{"type": "join"}',
        "join-bad-room": b'{"type": "join", "room": "NO SPACES"}',
        "chat": b'{"type": "chat", "user": "a", "content": "b"}',
        "unknown-route": b'{"type": "' + "\u00e9".encode() * 70 + b'"}',
        "route-not-string": b'{"type": 5}',
        "no-discriminator": b'{"user": "a"}',
        "any-route": b'{"type": "any", "whatever": [1, {"x": null}]}',
        "deep": b"[" * 300 + b"]" * 300,
    }
    # config: epf, limits, timeouts, tv, cbf (echo), k, script len, tail, json
    for i, (name, txt) in enumerate(texts.items()):
        js = [0x04 | 0x08, 0x01 | 0x04, 0x10 | 0x04 | 0x08, 0x02 | 0x04,
              0x00, 0x0C | 0x80, 0x20 | 0x04, 0x40 | 0x0C][i % 8]
        cfg = bytes([0x00 if i % 3 else 0x0C, 0, 0, 0, 0x01, 2, 0, 0x0F, js])
        write(t, name, cfg + frame(1, txt, mask=m))
    # every policy with on_invalid, and events, on the error paths
    for name in ("not-json", "bad-escape-split-char", "unknown-route",
                 "missing"):
        for js, tag in ((0x19, "close-cb"), (0x10, "reply-events"),
                        (0x1A, "ignore-cb")):
            cfg = bytes([0x00, 0, 0, 0, 0x00, 1, 0, 0x0F, js])
            write(t, "%s-%s" % (name, tag), cfg + frame(1, texts[name], mask=m))
    # a JSON message split in fragments, byte by byte, then a close
    msg = texts["valid"]
    write(t, "fragmented", bytes([0, 0, 0, 0, 1, 1, 0, 0x00, 0x0D])
          + frame(1, msg[:10], fin=False, mask=m) + frame(0, msg[10:], mask=m)
          + frame(8, close_payload(1000), mask=m))
    write(t, "binary-untouched", bytes([0, 0, 0, 0, 1, 1, 0, 0x0F, 0x0D])
          + frame(2, b'{"user": 1}', mask=m))


def http_seeds():
    """fuzz_http: flags, feed piece, write slice, seed, then requests."""
    t = "fuzz_http"
    clean(t)

    def get(path, method=b"GET", http=b"HTTP/1.1", extra=b""):
        return (method + b" " + path + b" " + http + b"\r\nHost: h\r\n"
                + extra + b"\r\n")
    reqs = {
        "page": get(b"/"),
        "keep-alive-3": get(b"/a") + get(b"/b?x=1") + get(b"/c?y"),
        "head": get(b"/", method=b"HEAD") + get(b"/s?q", method=b"HEAD"),
        "stream": get(b"/s?abc") + get(b"/after"),
        "stream-fail": get(b"/s?f"),
        "chunked": get(b"/c") + get(b"/c", http=b"HTTP/1.0"),
        "http10-keep": get(b"/a", http=b"HTTP/1.0",
                           extra=b"Connection: keep-alive\r\n") + get(b"/b"),
        "conn-close": get(b"/a", extra=b"Connection: close\r\n") + get(b"/b"),
        "resp-close": get(b"/x") + get(b"/b"),
        "no-content": get(b"/n") + get(b"/h"),
        "declined": get(b"/d"),
        "error": get(b"/e"),
        "upgrade": request(),
        "page-then-upgrade": get(b"/") + request(),
        "body": get(b"/a", method=b"POST", extra=b"Content-Length: 3\r\n")
        + b"abc",
        "cl-zero": get(b"/a", method=b"PUT", extra=b"Content-Length: 0\r\n"),
        "absolute": get(b"http://h/s?z"),
        "incomplete": get(b"/a") + get(b"/b")[:-3],
        "leading-crlf": b"\r\n\r\n" + get(b"/a") + b"\r\n" + get(b"/b"),
    }
    cfgs = [b"\x00\x07\x07\x00", b"\x08\x00\x00\x11", b"\x04\x03\x02\x22",
            b"\x02\x01\x05\x33", b"\x20\x07\x03\x44", b"\x01\x02\x01\x55"]
    for i, (name, r) in enumerate(sorted(reqs.items())):
        write(t, name, cfgs[i % len(cfgs)] + r)


def main():
    conn_seeds("fuzz_conn_server", b"\x37\xfa\x21\x3d")
    conn_seeds("fuzz_conn_client", None)
    handshake_server_seeds()
    handshake_client_seeds()
    pair_seeds()
    schema_seeds()
    json_endpoint_seeds()
    http_seeds()
    return 0


if __name__ == "__main__":
    sys.exit(main())
