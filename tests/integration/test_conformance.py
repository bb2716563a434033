"""RFC 6455 conformance cases, grouped like the Autobahn testsuite's sections,
run against echo_server and uv_echo_server with the same code.

Sections (case ids are SECTION.GROUP.N, like Autobahn's):
  1 framing      payload lengths at every length-encoding boundary, 1-byte
                 chops, frames split at every position, many frames per write
  2 ping/pong    payload 0/125 echoed, 126 refused, unsolicited pongs
                 ignored, pings inside fragmented messages, pings in a row
  3 reserved     RSV1/2/3 and opcodes 3-7, 11-15, plain and mid-message
  4 fragments    1..N fragments (with empty ones), orphan continuations,
                 data frames inside a message, fragmented control frames
  5 UTF-8        valid edge cases byte-exact; invalid sequences whole, split
                 at every byte across fragments and in 1-byte fragments,
                 failing as soon as the bad byte is in (fail fast)
  6 close        valid codes echoed with their reason, invalid codes, short
                 and long payloads, bad reasons, empty close
  7 after close  nothing after a close frame is answered; the server closes
                 the TCP connection
  8 handshake    oversized and overlong requests, versions, keys, methods,
                 slowloris clients against the handshake timeout
 12 compression  permessage-deflate (RFC 7692) as Autobahn's section 12:
                 text and binary of 16 B..128 KiB, whole and fragmented,
                 several messages per connection (context takeover)
 13 offers       Autobahn's section 13 offers (client_no_context_takeover,
                 client_max_window_bits 8/15/none, several offers), every
                 server_max_window_bits, invalid offers declined; corrupt
                 data (1007), RSV1 on a continuation or control frame (1002)

Every case opens its own connection(s), asserts the exact close code (and
the reason where RFC 6455 specifies it, i.e. when our own close is echoed),
reads the server's frames strictly (no RSV bits, no masks, minimal lengths,
control frames <= 125 bytes and unfragmented, nothing after the close
frame), and checks that the server then closes the TCP connection.  After
every case a bystander connection opened at the start must still echo.

Run alone:
    /usr/bin/python3 tests/integration/test_conformance.py
    CASE=5.3 /usr/bin/python3 tests/integration/test_conformance.py    # id prefix
    CASE=surrogate /usr/bin/python3 tests/integration/...               # or name part
    CONF_SERVERS=uv_echo_server /usr/bin/python3 tests/integration/...
        (default: $ECHO_SERVERS, else both)
    CONF_SECTIONS="1 2 5" ...   only these sections (test_tls.py runs
        sections 1-6 over wss:// with WS_TLS_CERT/KEY/CA set: see
        wsharness.py)
    VERBOSE=1 ... (tracebacks)
"""
import asyncio
import os
import random
import select
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsharness import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG,  # noqa
                       OP_TEXT, Closed, EchoServer, RawWS, close_payload,
                       count_ok, run_one)

HS_TIMEOUT_MS = 1000   # --handshake-timeout of the servers under test
IO_TIMEOUT = 20.0      # bound on every socket read (ASan, a loaded machine)
MIB = 1 << 20
MIN_CASES = 627        # per server: fewer means cases were lost

F = RawWS.frame

SECTIONS = {
    1: "framing",
    2: "pings and pongs",
    3: "reserved bits and opcodes",
    4: "fragmentation",
    5: "UTF-8",
    6: "close frames",
    7: "behaviour after close",
    8: "handshake abuse",
    12: "compression",
    13: "compression offers",
}

CASES = []          # (section, id, title, fn(ctx))
_counters = {}


def add(group, title, fn, *args):
    """Register a case in `group` ("1.1"); its id is group.N."""
    n = _counters[group] = _counters.get(group, 0) + 1
    CASES.append((int(group.split(".")[0]), f"{group}.{n}", title,
                  lambda ctx: fn(ctx, *args)))


# ---- the peer ----------------------------------------------------------------

VALID_WIRE_CODES = set(range(1000, 1004)) | set(range(1007, 1015)) | \
    set(range(3000, 5000))


class Peer(RawWS):
    """A raw client that reads the server's frames strictly."""

    def __init__(self, ctx, timeout=IO_TIMEOUT, **kw):
        super().__init__(ctx.port, path="/conformance", timeout=timeout, **kw)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def chop(self, data, size=1):
        """Send `data` in writes of `size` bytes, each read by the server
        before the next is written (TCP_NODELAY is on)."""
        for i in range(0, len(data), size):
            self.send_read(data[i:i + size])

    def next_msg(self):
        """The next thing the server says: ("text"|"binary", data) with
        fragments joined, ("ping"|"pong", payload) or ("close", code,
        reason)."""
        op0, data = None, b""
        while True:
            fin, rsv, op, payload = self.recv_frame()
            assert rsv == 0, f"server frame with RSV bits {rsv:03b}"
            if op >= 8:
                assert op in (OP_CLOSE, OP_PING, OP_PONG), \
                    f"server frame with reserved opcode {op}"
                assert fin and len(payload) <= 125, \
                    "server sent a fragmented or over-long control frame"
                if op == OP_CLOSE:
                    return ("close",) + strict_close(payload)
                return ("ping" if op == OP_PING else "pong", payload)
            if op0 is None:
                assert op in (OP_TEXT, OP_BINARY), \
                    f"server message starts with opcode {op}"
                op0 = op
            else:
                assert op == OP_CONT, f"opcode {op} inside a server message"
            data += payload
            if fin:
                if op0 == OP_TEXT:
                    data.decode("utf-8")  # the server sends only UTF-8 text
                return ("text" if op0 == OP_TEXT else "binary", data)

    def expect(self, *items):
        for i, want in enumerate(items):
            got = self.next_msg()
            if got != want:
                raise AssertionError(f"reply {i}: expected {short(want)}, "
                                     f"got {short(got)}")

    def fails_with(self, code, *before, reason=None):
        """The server sends `before` (echoes, pongs), then a close frame with
        `code` (and `reason` if given), then closes the TCP connection
        without sending anything else."""
        self.expect(*before)
        got = self.next_msg()
        assert got[0] == "close", f"expected close {code}, got {short(got)}"
        assert got[1] == code, f"expected close {code}, got {got[1]} " \
            f"({got[2]!r})"
        if reason is not None:
            assert got[2] == reason, f"close reason {got[2]!r}, " \
                f"expected {reason!r}"
        self.closed_by_server()
        return got[2]

    def closed_by_server(self):
        """Nothing more after the close frame, then EOF (a reset after the
        close frame is accepted too: the handshake is over)."""
        extra = self.buf
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    break
                extra += d
        except ConnectionResetError:
            pass
        except socket.timeout:
            raise AssertionError("the server did not close the TCP "
                                 f"connection within {self.sock.gettimeout()}"
                                 " s of its close frame") from None
        assert not extra, f"server sent {len(extra)} bytes after its close " \
            f"frame: {extra[:40]!r}"
        self.close()


def strict_close(payload):
    """(code, reason) of a server close frame, checked against 5.5.1/7.4."""
    if not payload:
        return 1005, ""
    assert len(payload) >= 2, "server close frame with a 1-byte payload"
    code = struct.unpack("!H", payload[:2])[0]
    assert code in VALID_WIRE_CODES, f"server sent close code {code}"
    try:
        return code, payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise AssertionError("server close reason is not UTF-8") from None


def short(x):
    r = repr(x)
    return r if len(r) < 120 else r[:100] + f"... ({len(r)} chars)"


def fails(ctx, data, code, *before, reason=None):
    """Send `data` in one write on a new connection; expect `before`, then
    close `code` (with `reason` if given) and the TCP close."""
    ws = Peer(ctx)
    try:
        ws.send_raw(data)
        return ws.fails_with(code, *before, reason=reason)
    finally:
        ws.close()


# ---- test data -----------------------------------------------------------------

UNIT = "ab\u00e9\u20ac\U0001F600z".encode()  # 1+1+2+3+4+1 = 12 bytes


def text_of(n):
    """Valid UTF-8 of exactly n bytes with 1- to 4-byte characters."""
    return UNIT * (n // len(UNIT)) + b"x" * (n % len(UNIT))


def binary_of(n, seed=0):
    return random.Random(n * 7919 + seed).randbytes(n)


LENGTHS = [0, 1, 125, 126, 127, 128, 65535, 65536, 65537, MIB - 1, MIB]


def utf8_fail_point(b):
    """Length of the shortest prefix of `b` that no valid UTF-8 text starts
    with (the byte where a validator must fail), or None when every prefix
    could still become valid (a sequence cut short at the end).  Written
    from RFC 3629 / Unicode table 3-7."""
    i, n = 0, len(b)
    while i < n:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            need, lo, hi = 1, 0x80, 0xBF
        elif c == 0xE0:
            need, lo, hi = 2, 0xA0, 0xBF
        elif c == 0xED:
            need, lo, hi = 2, 0x80, 0x9F
        elif 0xE1 <= c <= 0xEF:
            need, lo, hi = 2, 0x80, 0xBF
        elif c == 0xF0:
            need, lo, hi = 3, 0x90, 0xBF
        elif 0xF1 <= c <= 0xF3:
            need, lo, hi = 3, 0x80, 0xBF
        elif c == 0xF4:
            need, lo, hi = 3, 0x80, 0x8F
        else:
            return i + 1
        for j in range(need):
            k = i + 1 + j
            if k >= n:
                return None
            if not ((lo <= b[k] <= hi) if j == 0 else (0x80 <= b[k] <= 0xBF)):
                return k + 1
        i += need + 1
    return None


KOSME = bytes.fromhex("cebae1bdb9cf83cebcceb5")  # κόσμε
INVALID_UTF8 = [
    ("kosme + U+D800 + edited", KOSME + b"\xed\xa0\x80edited"),
    ("kosme + F4 90 80 80 + edited", KOSME + b"\xf4\x90\x80\x80edited"),
    ("lone continuation 80", b"\x80"),
    ("lone continuation BF", b"\xbf"),
    ("continuations 80 BF 80", b"\x80\xbf\x80"),
    ("all 64 continuation bytes", bytes(range(0x80, 0xC0))),
    ("lone C2 + space", b"\xc2 "),
    ("lone E1 + space", b"\xe1 x"),
    ("E1 80 + space", b"\xe1\x80 "),
    ("lone F1 + space", b"\xf1 "),
    ("F1 80 80 + space", b"\xf1\x80\x80 "),
    ("FE", b"\xfe"),
    ("FF", b"\xff"),
    ("FE FE FF FF", b"\xfe\xfe\xff\xff"),
    ("F5 80 80 80", b"\xf5\x80\x80\x80"),
    ("F7 BF BF BF (U+1FFFFF)", b"\xf7\xbf\xbf\xbf"),
    ("5-byte F8 88 80 80 80", b"\xf8\x88\x80\x80\x80"),
    ("6-byte FC 84 80 80 80 80", b"\xfc\x84\x80\x80\x80\x80"),
    ("U+110000 F4 90 80 80", b"\xf4\x90\x80\x80"),
    ("U+13FFFF F4 BF BF BF", b"\xf4\xbf\xbf\xbf"),
    ("overlong / C0 AF", b"\xc0\xaf"),
    ("overlong / E0 80 AF", b"\xe0\x80\xaf"),
    ("overlong / F0 80 80 AF", b"\xf0\x80\x80\xaf"),
    ("overlong / F8 80 80 80 AF", b"\xf8\x80\x80\x80\xaf"),
    ("overlong / FC 80 80 80 80 AF", b"\xfc\x80\x80\x80\x80\xaf"),
    ("max overlong C1 BF", b"\xc1\xbf"),
    ("max overlong E0 9F BF", b"\xe0\x9f\xbf"),
    ("max overlong F0 8F BF BF", b"\xf0\x8f\xbf\xbf"),
    ("overlong NUL C0 80", b"\xc0\x80"),
    ("overlong NUL E0 80 80", b"\xe0\x80\x80"),
    ("overlong NUL F0 80 80 80", b"\xf0\x80\x80\x80"),
    ("surrogate U+D800", b"\xed\xa0\x80"),
    ("surrogate U+DB7F", b"\xed\xad\xbf"),
    ("surrogate U+DB80", b"\xed\xae\x80"),
    ("surrogate U+DBFF", b"\xed\xaf\xbf"),
    ("surrogate U+DC00", b"\xed\xb0\x80"),
    ("surrogate U+DF80", b"\xed\xbe\x80"),
    ("surrogate U+DFFF", b"\xed\xbf\xbf"),
    ("surrogate pair D800 DC00", b"\xed\xa0\x80\xed\xb0\x80"),
    ("surrogate pair DBFF DFFF", b"\xed\xaf\xbf\xed\xbf\xbf"),
    ("truncated C2 at end", b"ok \xc2"),
    ("truncated E2 82 at end", b"ok \xe2\x82"),
    ("truncated F0 9F 98 at end", b"ok \xf0\x9f\x98"),
    ("truncated E2 82 then ASCII", b"\xe2\x82A"),
    ("truncated F0 9F then ASCII", b"\xf0\x9fAB"),
    ("7 ASCII + FF", b"abcdefg\xff"),
    ("8 ASCII + 80", b"abcdefgh\x80"),
    ("15 ASCII + C0 AF", b"a" * 15 + b"\xc0\xaf"),
    ("16 ASCII + surrogate", b"a" * 16 + b"\xed\xa0\x80"),
    ("valid 4-byte then 80", "x\U0001F600".encode() + b"\x80"),
]

VALID_UTF8 = [
    ("kosme", KOSME),
    ("Hello-µ@ßöäüàá-UTF-8!!", "Hello-µ@ßöäüàá-UTF-8!!".encode()),
    ("U+0000", b"\x00"),
    ("U+007F", b"\x7f"),
    ("U+0080", "\u0080".encode()),
    ("U+07FF", "\u07ff".encode()),
    ("U+0800", "\u0800".encode()),
    ("U+D7FF (below surrogates)", "\ud7ff".encode()),
    ("U+E000 (above surrogates)", "\ue000".encode()),
    ("U+FDD0 noncharacter", "\ufdd0".encode()),
    ("U+FFFD", "\ufffd".encode()),
    ("U+FFFE noncharacter", "\ufffe".encode()),
    ("U+FFFF", "\uffff".encode()),
    ("U+10000", "\U00010000".encode()),
    ("U+1FFFF", "\U0001ffff".encode()),
    ("U+10FFFE", "\U0010fffe".encode()),
    ("U+10FFFF (max)", "\U0010ffff".encode()),
    ("BOM alone", "\ufeff".encode()),
    ("BOM + text", "\ufeffhello".encode()),
    ("one of each length", "a\u00e9\u20ac\U0001F600".encode()),
    ("8 ASCII + 4-byte + 8 ASCII", "abcdefgh\U0010ffffabcdefgh".encode()),
]

for name, data in INVALID_UTF8:  # the oracle and the table agree
    try:
        data.decode("utf-8")
        raise SystemExit(f"INVALID_UTF8 {name!r} decodes")
    except UnicodeDecodeError:
        pass
for name, data in VALID_UTF8:
    data.decode("utf-8")
    assert utf8_fail_point(data) is None, name


# ---- 1 framing -------------------------------------------------------------

def echo_one(ctx, op, payload):
    ws = Peer(ctx, timeout=20)
    try:
        ws.send_frame(op, payload)
        ws.expect(("text" if op == OP_TEXT else "binary", payload))
    finally:
        ws.close()


for n in LENGTHS:
    add("1.1", f"text message of {n} bytes echoed", echo_one, OP_TEXT,
        text_of(n))
for n in LENGTHS:
    add("1.2", f"binary message of {n} bytes echoed", echo_one, OP_BINARY,
        binary_of(n))


def over_limit(ctx, fragmented):
    """The default limit is 1 MiB: one byte more is 1009, seen from the
    header (RFC 6455 10.4, 7.4.1)."""
    data = b"x" * (MIB + 1)
    if fragmented:
        wire = F(OP_BINARY, data[:MIB], fin=False) + F(OP_CONT, data[MIB:])
    else:
        wire = F(OP_BINARY, data)
    ws = Peer(ctx)
    try:
        try:
            ws.send_raw(wire)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may stop reading; its close frame is queued
        ws.fails_with(1009)
    finally:
        ws.close()


add("1.3", "1 MiB + 1 in one frame: 1009", over_limit, False)
add("1.3", "1 MiB + 1 in two fragments: 1009", over_limit, True)


def chopped(ctx, frames, replies, first=None):
    """Every byte of `frames` in its own write (the first `first` bytes only,
    the rest in 1 KiB writes)."""
    ws = Peer(ctx, timeout=20)
    try:
        n = len(frames) if first is None else first
        ws.chop(frames[:n], 1)
        ws.chop(frames[n:], 1024)
        ws.expect(*replies)
    finally:
        ws.close()


for title, frames, replies, first in [
    ("empty text", F(OP_TEXT, b""), [("text", b"")], None),
    ("text of 125 bytes", F(OP_TEXT, text_of(125)),
     [("text", text_of(125))], None),
    ("text of 126 bytes (16-bit length)", F(OP_TEXT, text_of(126)),
     [("text", text_of(126))], None),
    ("binary of 300 bytes", F(OP_BINARY, binary_of(300)),
     [("binary", binary_of(300))], None),
    ("binary of 65536 bytes (64-bit length), first 100 bytes",
     F(OP_BINARY, binary_of(65536)), [("binary", binary_of(65536))], 100),
    ("ping of 125 bytes", F(OP_PING, binary_of(125)),
     [("pong", binary_of(125))], None),
    ("fragmented text with a ping inside",
     F(OP_TEXT, b"frag", fin=False) + F(OP_PING, b"in") +
     F(OP_CONT, "m€nted".encode()),
     [("pong", b"in"), ("text", "fragm€nted".encode())], None),
    ("three messages", F(OP_TEXT, b"one") + F(OP_BINARY, b"\x00two") +
     F(OP_TEXT, b"three"),
     [("text", b"one"), ("binary", b"\x00two"), ("text", b"three")], None),
]:
    add("1.4", f"1-byte chops: {title}", chopped, frames, replies, first)


def chopped_997(ctx, op, n):
    """Autobahn 1.1.8 / 1.2.8: a 64 KiB message in writes of 997 bytes."""
    payload = text_of(n) if op == OP_TEXT else binary_of(n)
    ws = Peer(ctx, timeout=20)
    try:
        ws.chop(F(op, payload), 997)
        ws.expect(("text" if op == OP_TEXT else "binary", payload))
    finally:
        ws.close()


add("1.4", "997-byte chops: text of 65535 bytes", chopped_997, OP_TEXT, 65535)
add("1.4", "997-byte chops: binary of 65536 bytes", chopped_997, OP_BINARY,
    65536)


def close_chopped(ctx):
    ws = Peer(ctx)
    try:
        ws.chop(F(OP_CLOSE, close_payload(1000, "chopped")), 1)
        ws.fails_with(1000, reason="chopped")
    finally:
        ws.close()


add("1.4", "1-byte chops: close frame", close_chopped)


def split_everywhere(ctx, frame, reply, positions=None):
    """Send `frame` in two writes, split at every position (or at
    `positions`), on one connection; each time the reply comes back."""
    ws = Peer(ctx, timeout=20)
    try:
        for p in positions or range(1, len(frame)):
            ws.send_read(frame[:p])
            ws.send_raw(frame[p:])
            try:
                ws.expect(reply)
            except AssertionError as e:
                raise AssertionError(f"split at {p}: {e}") from None
    finally:
        ws.close()


def frame_with(op, payload, key=b"\x37\xfa\x21\x3d"):
    """A masked frame with a fixed key (so all splits send the same bytes)."""
    n = len(payload)
    head = bytes([0x80 | op])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + body


_big = binary_of(65536, 1)
for title, frame, reply, positions in [
    ("text 'Hello'", frame_with(OP_TEXT, b"Hello"), ("text", b"Hello"), None),
    ("text of 126 bytes", frame_with(OP_TEXT, text_of(126)),
     ("text", text_of(126)), None),
    ("ping of 125 bytes", frame_with(OP_PING, binary_of(125)),
     ("pong", binary_of(125)), None),
    ("binary of 65536 bytes (header, first and last bytes)",
     frame_with(OP_BINARY, _big), ("binary", _big),
     list(range(1, 40)) + list(range(65550 - 20, 65550))),
    ("mask key all zero", frame_with(OP_BINARY, b"zero key", b"\0\0\0\0"),
     ("binary", b"zero key"), None),
]:
    add("1.5", f"split at every position: {title}", split_everywhere, frame,
        reply, positions)


def close_split_everywhere(ctx):
    frame = frame_with(OP_CLOSE, close_payload(1001, "split"))
    for p in range(1, len(frame)):
        ws = Peer(ctx)
        try:
            ws.send_read(frame[:p])
            ws.send_raw(frame[p:])
            ws.fails_with(1001, reason="split")
        except AssertionError as e:
            raise AssertionError(f"split at {p}: {e}") from None
        finally:
            ws.close()


add("1.5", "split at every position: close frame", close_split_everywhere)


def many_in_one_write(ctx, n, ping_every):
    rnd = random.Random(n)
    wire, replies = b"", []
    for i in range(n):
        size = rnd.choice([0, 1, 2, 7, 125, 126, 127, 300, 1000])
        if i % 2:
            wire += F(OP_BINARY, binary_of(size, i))
            replies.append(("binary", binary_of(size, i)))
        else:
            wire += F(OP_TEXT, text_of(size))
            replies.append(("text", text_of(size)))
        if ping_every and i % ping_every == 0:
            wire += F(OP_PING, str(i).encode())
            replies.append(("pong", str(i).encode()))
    ws = Peer(ctx, timeout=20)
    try:
        ws.send_raw(wire)
        ws.expect(*replies)
    finally:
        ws.close()


add("1.6", "1000 mixed text/binary frames in one write, in order",
    many_in_one_write, 1000, 0)
add("1.6", "2000 frames and 200 pings in one write, in order",
    many_in_one_write, 2000, 10)


def framing_errors(ctx, wire):
    fails(ctx, F(OP_TEXT, b"before") + wire + F(OP_PING, b"after"), 1002,
          ("text", b"before"))


add("1.7", "unmasked client frame: 1002 (5.1)", framing_errors,
    F(OP_TEXT, b"bare", mask=False))
add("1.7", "16-bit length for 5 bytes: 1002 (5.2 minimal length)",
    framing_errors,
    struct.pack("!BBH", 0x81, 0x80 | 126, 5) + b"\0\0\0\0hello")
add("1.7", "64-bit length for 300 bytes: 1002 (5.2 minimal length)",
    framing_errors,
    struct.pack("!BBQ", 0x82, 0x80 | 127, 300) + b"\0\0\0\0" + b"x" * 300)
add("1.7", "64-bit length with the top bit set: 1002 (5.2)", framing_errors,
    struct.pack("!BBQ", 0x82, 0x80 | 127, 1 << 63) + b"\0\0\0\0x")


# ---- 2 pings and pongs ----------------------------------------------------------

def ping_echo(ctx, payload, chop=None):
    ws = Peer(ctx)
    try:
        frame = F(OP_PING, payload)
        if chop:
            ws.chop(frame, chop)
        else:
            ws.send_raw(frame)
        ws.expect(("pong", payload))
    finally:
        ws.close()


add("2.1", "ping without payload: empty pong", ping_echo, b"")
add("2.1", "ping with 125-byte binary payload: same pong", ping_echo,
    bytes(range(125)))
add("2.1", "ping with text payload: same pong", ping_echo,
    "ping €".encode())
add("2.1", "ping of 125 bytes in 1-byte chops", ping_echo, binary_of(125), 1)
add("2.2", "ping of 126 bytes: 1002 and no pong (5.5)", lambda ctx: fails(
    ctx, F(OP_PING, b"p" * 126) + F(OP_PING, b"after"), 1002))
add("2.2", "ping of 65536 bytes (64-bit length): 1002", lambda ctx: fails(
    ctx, F(OP_PING, b"p" * 65536), 1002))
add("2.2", "pong of 126 bytes: 1002", lambda ctx: fails(
    ctx, F(OP_PONG, b"p" * 126), 1002))


def unsolicited_pongs(ctx, pongs):
    """5.5.3: an unsolicited pong needs no answer; the next reply is the
    echo of what follows it."""
    ws = Peer(ctx)
    try:
        ws.send_raw(b"".join(F(OP_PONG, p) for p in pongs) +
                    F(OP_TEXT, b"after pongs"))
        ws.expect(("text", b"after pongs"))
    finally:
        ws.close()


add("2.3", "unsolicited empty pong ignored", unsolicited_pongs, [b""])
add("2.3", "unsolicited 125-byte pong ignored", unsolicited_pongs,
    [binary_of(125)])
add("2.3", "10 unsolicited pongs ignored", unsolicited_pongs,
    [str(i).encode() for i in range(10)])


def pings_in_fragmented(ctx, separate_writes):
    """5.4: control frames may come between fragments; each ping is answered
    at once (before the message ends) and the message is intact."""
    parts = [F(OP_TEXT, b"one ", fin=False), F(OP_PING, b"p1"),
             F(OP_CONT, b"two ", fin=False), F(OP_PING, b"p2"),
             F(OP_PONG, b"unasked"), F(OP_CONT, b"", fin=False),
             F(OP_CONT, b"three")]
    ws = Peer(ctx)
    try:
        if separate_writes:
            # pongs must come before the message is complete
            ws.send_raw(parts[0] + parts[1])
            ws.expect(("pong", b"p1"))
            ws.send_raw(parts[2] + parts[3])
            ws.expect(("pong", b"p2"))
            ws.send_raw(b"".join(parts[4:]))
            ws.expect(("text", b"one two three"))
        else:
            ws.send_raw(b"".join(parts))
            ws.expect(("pong", b"p1"), ("pong", b"p2"),
                      ("text", b"one two three"))
    finally:
        ws.close()


add("2.4", "pings inside a fragmented message, one write",
    pings_in_fragmented, False)
add("2.4", "pings inside a fragmented message, answered before its end",
    pings_in_fragmented, True)


def pings_in_a_row(ctx, one_write):
    ws = Peer(ctx)
    try:
        frames = [F(OP_PING, f"ping {i}".encode()) for i in range(10)]
        if one_write:
            ws.send_raw(b"".join(frames))
        else:
            for fr in frames:
                ws.send_raw(fr)
        ws.expect(*[("pong", f"ping {i}".encode()) for i in range(10)])
    finally:
        ws.close()


add("2.5", "10 pings in one write: 10 pongs in order", pings_in_a_row, True)
add("2.5", "10 pings in 10 writes: 10 pongs in order", pings_in_a_row, False)


# ---- 3 reserved bits and opcodes --------------------------------------------

def reserved(ctx, wire):
    """A valid text first (echoed), then the offending frame(s), then a ping
    in the same write: 1002, and the ping is never answered (7.1.7)."""
    fails(ctx, F(OP_TEXT, b"before") + wire + F(OP_PING, b"after"), 1002,
          ("text", b"before"))


for bit, rsv in (("RSV1", 4), ("RSV2", 2), ("RSV3", 1)):
    for title, wire in [
        ("text", F(OP_TEXT, b"rsv", rsv=rsv)),
        ("empty text", F(OP_TEXT, b"", rsv=rsv)),
        ("binary", F(OP_BINARY, b"\x00\xff", rsv=rsv)),
        ("ping", F(OP_PING, b"p", rsv=rsv)),
        ("pong", F(OP_PONG, b"p", rsv=rsv)),
        ("close", F(OP_CLOSE, close_payload(1000), rsv=rsv)),
        ("first fragment", F(OP_TEXT, b"a", fin=False, rsv=rsv) +
         F(OP_CONT, b"b")),
        ("continuation", F(OP_TEXT, b"a", fin=False) +
         F(OP_CONT, b"b", rsv=rsv)),
        ("ping inside a fragmented message", F(OP_TEXT, b"a", fin=False) +
         F(OP_PING, b"p", rsv=rsv) + F(OP_CONT, b"b")),
    ]:
        add("3.1", f"{bit} on {title}: 1002", reserved, wire)
add("3.1", "RSV1+2+3 on binary: 1002", reserved,
    F(OP_BINARY, b"x", rsv=7))



def rsv1_after_deflate_offer(ctx):
    """5.2/9.1: permessage-deflate offered but not accepted (no
    Sec-WebSocket-Extensions in the 101: the offer's window is out of
    range, RFC 7692 7.1.2.2), so RSV1 is still a protocol error."""
    ws = Peer(ctx, extra_headers=(
        "Sec-WebSocket-Extensions: permessage-deflate; "
        "client_max_window_bits=7",))
    try:
        assert "sec-websocket-extensions" not in ws.headers, ws.headers
        ws.send_raw(F(OP_TEXT, b"plain") +
                    F(OP_TEXT, b"\xf2H\xcd\xc9\xc9\x07\x00", rsv=4))
        ws.fails_with(1002, ("text", b"plain"))
    finally:
        ws.close()


add("3.1", "RSV1 after permessage-deflate was offered, not accepted: 1002",
    rsv1_after_deflate_offer)

for op in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15):
    add("3.2", f"opcode {op}: 1002", reserved, F(op, b"reserved"))
    add("3.2", f"opcode {op}, empty: 1002", reserved, F(op, b""))
    add("3.2", f"opcode {op} inside a fragmented message: 1002", reserved,
        F(OP_BINARY, b"a", fin=False) + F(op, b"x") + F(OP_CONT, b"b"))
for op in (3, 11):
    add("3.2", f"opcode {op} with FIN=0: 1002", reserved,
        F(op, b"x", fin=False))


# ---- 4 fragmentation ---------------------------------------------------------------

def fragmented_echo(ctx, op, pieces):
    wire = b""
    for i, p in enumerate(pieces):
        wire += F(op if i == 0 else OP_CONT, p, fin=i == len(pieces) - 1)
    ws = Peer(ctx)
    try:
        ws.send_raw(wire)
        ws.expect(("text" if op == OP_TEXT else "binary", b"".join(pieces)))
    finally:
        ws.close()


def split_n(data, n):
    k = max(1, -(-len(data) // n))
    return [data[i * k:(i + 1) * k] for i in range(n)]


for op, kind, data in ((OP_TEXT, "text", b"fragmented text " * 20),
                       (OP_BINARY, "binary", binary_of(333))):
    for n in (1, 2, 3, 10, 100):
        add("4.1", f"{kind} in {n} fragment(s)", fragmented_echo, op,
            split_n(data, n))
    add("4.1", f"{kind}: empty first fragment", fragmented_echo, op,
        [b"", data[:10], data[10:]])
    add("4.1", f"{kind}: empty middle fragments", fragmented_echo, op,
        [data[:10], b"", b"", data[10:]])
    add("4.1", f"{kind}: empty last fragment", fragmented_echo, op,
        [data[:10], data[10:], b""])
    add("4.1", f"{kind}: all 3 fragments empty", fragmented_echo, op,
        [b"", b"", b""])
    add("4.1", f"{kind}: 1000 fragments (999 of 1 byte, an empty last)",
        fragmented_echo, op,
        [data[i % len(data):i % len(data) + 1] for i in range(999)] + [b""])
add("4.1", "text: 4-byte characters in 1-byte fragments", fragmented_echo,
    OP_TEXT, [bytes([b]) for b in "\U0001F600\U0010ffff€é".encode()])


def fragmented_slowly(ctx):
    """Fragments in separate writes with pings between them (Autobahn 5.19):
    each pong arrives before the message is complete."""
    ws = Peer(ctx)
    try:
        ws.send_raw(F(OP_TEXT, b"frag1 ", fin=False) +
                    F(OP_CONT, b"frag2 ", fin=False) + F(OP_PING, b"one"))
        ws.expect(("pong", b"one"))
        ws.send_raw(F(OP_CONT, b"frag3 ", fin=False) +
                    F(OP_CONT, b"frag4 ", fin=False) + F(OP_PING, b"two"))
        ws.expect(("pong", b"two"))
        ws.send_raw(F(OP_CONT, b"frag5"))
        ws.expect(("text", b"frag1 frag2 frag3 frag4 frag5"))
    finally:
        ws.close()


add("4.1", "fragments in separate writes with pings between",
    fragmented_slowly)


def frag_error(ctx, wire, before=(("text", b"before"),)):
    fails(ctx, F(OP_TEXT, b"before") + wire + F(OP_PING, b"after"), 1002,
          *before)


add("4.2", "continuation FIN=1 without a message: 1002", frag_error,
    F(OP_CONT, b"orphan"))
add("4.2", "continuation FIN=0 without a message: 1002", frag_error,
    F(OP_CONT, b"orphan", fin=False))
add("4.2", "empty continuation without a message: 1002", frag_error,
    F(OP_CONT, b""))
add("4.2", "continuation after a finished message: 1002", frag_error,
    F(OP_TEXT, b"a", fin=False) + F(OP_CONT, b"b") + F(OP_CONT, b"c"),
    (("text", b"before"), ("text", b"ab")))
add("4.2", "continuation FIN=0 after a finished message, then text: 1002",
    frag_error,
    F(OP_TEXT, b"a", fin=False) + F(OP_CONT, b"b") +
    F(OP_CONT, b"c", fin=False) + F(OP_TEXT, b"d"),
    (("text", b"before"), ("text", b"ab")))
add("4.2", "continuation as the very first frame: 1002",
    lambda ctx: fails(ctx, F(OP_CONT, b"first", fin=False) +
                      F(OP_TEXT, b"x"), 1002))

for inner_op, outer_op, title in [
    (OP_TEXT, OP_TEXT, "text inside text"),
    (OP_BINARY, OP_TEXT, "binary inside text"),
    (OP_TEXT, OP_BINARY, "text inside binary"),
    (OP_BINARY, OP_BINARY, "binary inside binary"),
]:
    add("4.3", f"{title} (FIN=1): 1002", frag_error,
        F(outer_op, b"a", fin=False) + F(inner_op, b"b") + F(OP_CONT, b"c"))
    add("4.3", f"{title} (FIN=0): 1002", frag_error,
        F(outer_op, b"a", fin=False) + F(inner_op, b"b", fin=False) +
        F(OP_CONT, b"c"))

for op, name in ((OP_PING, "ping"), (OP_PONG, "pong"),
                 (OP_CLOSE, "close")):
    payload = close_payload(1000) if op == OP_CLOSE else b"ctl"
    add("4.4", f"fragmented {name} (FIN=0 + continuation): 1002", frag_error,
        F(op, payload, fin=False) + F(OP_CONT, b"more"))
    add("4.4", f"{name} with FIN=0 inside a fragmented message: 1002",
        frag_error,
        F(OP_TEXT, b"a", fin=False) + F(op, payload, fin=False) +
        F(OP_CONT, b"b"))


# ---- 5 UTF-8 -------------------------------------------------------------------------

def valid_whole(ctx, data):
    ws = Peer(ctx)
    try:
        ws.send_frame(OP_TEXT, data)
        ws.expect(("text", data))
    finally:
        ws.close()


def valid_split(ctx, data):
    """Split in two fragments at every byte position (also 0 and len)."""
    ws = Peer(ctx)
    try:
        wire = b""
        for p in range(len(data) + 1):
            wire += F(OP_TEXT, data[:p], fin=False) + F(OP_CONT, data[p:])
        ws.send_raw(wire)
        ws.expect(*[("text", data)] * (len(data) + 1))
        # and one fragment per byte
        wire = F(OP_TEXT, data[:1], fin=len(data) <= 1)
        for i in range(1, len(data)):
            wire += F(OP_CONT, data[i:i + 1], fin=i == len(data) - 1)
        ws.send_raw(wire)
        ws.expect(("text", data))
    finally:
        ws.close()


for name, data in VALID_UTF8:
    add("5.1", f"valid {name}: echoed byte-exact", valid_whole, data)
    add("5.1", f"valid {name}: split at every byte, echoed", valid_split,
        data)


def every_scalar_value(ctx):
    """Every Unicode scalar value U+0000..U+10FFFF but the surrogates, in
    messages under the 1 MiB limit, echoed byte-exact."""
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    ws = Peer(ctx, timeout=20)
    try:
        step = 200000  # < 1 MiB of UTF-8 per message
        msgs = ["".join(chars[i:i + step]).encode()
                for i in range(0, len(chars), step)]
        ws.send_raw(b"".join(F(OP_TEXT, m) for m in msgs))
        ws.expect(*[("text", m) for m in msgs])
    finally:
        ws.close()


add("5.1", "every Unicode scalar value, byte-exact", every_scalar_value)


def invalid_whole(ctx, data):
    fails(ctx, F(OP_TEXT, b"before") + F(OP_TEXT, data) +
          F(OP_PING, b"after"), 1007, ("text", b"before"))


def invalid_split(ctx, data):
    """Two fragments split at every position 0..len.  When the first
    fragment already holds the bad byte, only it is sent: the close must
    come without the rest (fail fast, RFC 6455 8.1 / Autobahn 6.4)."""
    k = utf8_fail_point(data)
    for p in range(len(data) + 1):
        ws = Peer(ctx)
        try:
            wire = F(OP_TEXT, data[:p], fin=False)
            if k is None or p < k:
                wire += F(OP_CONT, data[p:])
            ws.send_raw(wire)
            ws.fails_with(1007)
        except (AssertionError, socket.timeout) as e:
            raise AssertionError(
                f"split at {p} ({data[:p].hex()} | {data[p:].hex()}"
                f"{', rest not sent' if k is not None and p >= k else ''})"
                f": {type(e).__name__}: {e}") from None
        finally:
            ws.close()


def invalid_one_byte_fragments(ctx, data):
    """One fragment per byte, stopping after the bad byte when there is one
    (Autobahn 6.3.2)."""
    k = utf8_fail_point(data)
    n = len(data) if k is None else k
    wire = b""
    for i in range(n):
        wire += F(OP_TEXT if i == 0 else OP_CONT, data[i:i + 1],
                  fin=k is None and i == n - 1)
    fails(ctx, wire, 1007)


def invalid_fail_fast_in_frame(ctx, data):
    """One frame announcing the whole message plus 100 bytes; only the bytes
    up to the bad one are sent: the close comes before the frame ends
    (Autobahn 6.4.3)."""
    k = utf8_fail_point(data)
    head = struct.pack("!BBH", 0x81, 0x80 | 126, len(data) + 200)
    ws = Peer(ctx)
    try:
        ws.send_raw(head + b"\0\0\0\0" + b"valid prefix " + data[:k])
        ws.fails_with(1007)
    finally:
        ws.close()


for name, data in INVALID_UTF8:
    add("5.2", f"{name} ({data[:12].hex(' ')}): 1007", invalid_whole, data)
for name, data in INVALID_UTF8:
    add("5.3", f"{name}: split at every byte: 1007, fail fast",
        invalid_split, data)
for name, data in INVALID_UTF8:
    add("5.4", f"{name}: 1-byte fragments: 1007", invalid_one_byte_fragments,
        data)
for name, data in INVALID_UTF8:
    if utf8_fail_point(data) is not None:
        add("5.5", f"{name}: inside an unfinished frame: 1007 at once",
            invalid_fail_fast_in_frame, data)


def utf8_at_offset(ctx, off, bad):
    """A 3-byte or 4-byte character (valid, or a surrogate when `bad`)
    placed across offset `off` of one large text frame: the validator keeps
    its state across the reads and buffers the frame arrives in."""
    ch = b"\xed\xa0\x80" if bad else "\U0001F600".encode()
    data = b"a" * (off - 1) + ch + "é".encode() * 100
    ws = Peer(ctx)
    try:
        ws.send_frame(OP_TEXT, data)
        if bad:
            ws.fails_with(1007)
        else:
            ws.expect(("text", data))
    finally:
        ws.close()


for off in (4095, 4096, 4097, 8192, 65535, 65536, 65537):
    add("5.6", f"4-byte character across offset {off} of a frame: echoed",
        utf8_at_offset, off, False)
    add("5.6", f"surrogate across offset {off} of a frame: 1007",
        utf8_at_offset, off, True)


def invalid_after_ping_wait(ctx):
    """Autobahn 6.4.1: a valid first fragment is accepted (a ping after it
    is answered), the fragment with U+110000 fails at once."""
    ws = Peer(ctx)
    try:
        ws.send_raw(F(OP_TEXT, KOSME, fin=False) + F(OP_PING, b"wait"))
        ws.expect(("pong", b"wait"))
        ws.send_raw(F(OP_CONT, b"\xf4\x90\x80\x80", fin=False))
        ws.fails_with(1007)
    finally:
        ws.close()


add("5.5", "valid fragment accepted, then U+110000 fragment: 1007 at once",
    invalid_after_ping_wait)


# ---- 6 close frames ----------------------------------------------------------------------

def close_echo(ctx, payload, code, reason):
    ws = Peer(ctx)
    try:
        ws.send_frame(OP_CLOSE, payload)
        ws.fails_with(code, reason=reason)
    finally:
        ws.close()


for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012,
             1013, 1014, 3000, 3999, 4000, 4999):
    add("6.1", f"close {code} + reason echoed", close_echo,
        close_payload(code, f"reason for {code} €"), code,
        f"reason for {code} €")
add("6.1", "close 1000 without reason echoed without reason", close_echo,
    close_payload(1000), 1000, "")
add("6.1", "empty close answered with an empty close", close_echo, b"",
    1005, "")
add("6.1", "123-byte reason (125-byte payload) echoed", close_echo,
    close_payload(1000, "r" * 123), 1000, "r" * 123)
add("6.1", "123-byte reason with 4-byte characters echoed", close_echo,
    close_payload(4000, "\U0001F600" * 30 + "abc"), 4000,
    "\U0001F600" * 30 + "abc")

for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000,
             65535):
    add("6.2", f"close code {code}: 1002", lambda ctx, c=code: fails(
        ctx, F(OP_CLOSE, close_payload(c, "bad code")), 1002))
add("6.2", "close with a 1-byte payload: 1002 (5.5.1)", lambda ctx: fails(
    ctx, F(OP_CLOSE, b"\x03"), 1002))
add("6.2", "close with a 124-byte reason (126-byte payload): 1002",
    lambda ctx: fails(ctx, F(OP_CLOSE, close_payload(1000, "r" * 124)), 1002))
for name, reason in (("FF", b"\xff"), ("surrogate", b"\xed\xa0\x80"),
                     ("truncated", b"ok \xe2\x82"),
                     ("overlong", b"\xc0\xaf"),
                     ("kosme + U+110000", KOSME + b"\xf4\x90\x80\x80")):
    add("6.3", f"close reason with invalid UTF-8 ({name}): 1007",
        lambda ctx, r=reason: fails(ctx, F(OP_CLOSE, close_payload(1000, r)),
                                    1007))


# ---- 7 behaviour after close --------------------------------------------------------------

def after_close_same_write(ctx, tail):
    """The close frame and more frames in one write: only the close is
    answered (RFC 6455 5.5.1: no data frames after close; 1.4)."""
    fails(ctx, F(OP_TEXT, b"before") + F(OP_CLOSE, close_payload(1000, "bye"))
          + tail, 1000, ("text", b"before"), reason="bye")


add("7.1", "text after close (same write) not echoed",
    after_close_same_write, F(OP_TEXT, b"after"))
add("7.1", "ping after close (same write) not answered",
    after_close_same_write, F(OP_PING, b"after"))
add("7.1", "second close frame not answered", after_close_same_write,
    F(OP_CLOSE, close_payload(1001, "again")))
add("7.1", "invalid frame after close ignored (no 1002)",
    after_close_same_write, F(5, b"reserved") + F(OP_TEXT, b"\xff"))
add("7.1", "close after a fragment ending inside a character: close echoed",
    lambda ctx: fails(ctx, F(OP_TEXT, b"ok \xe2\x82", fin=False) +
                      F(OP_CLOSE, close_payload(1000, "cut")), 1000,
                      reason="cut"))
add("7.1", "fragment, close, fragment: only the close answered",
    lambda ctx: fails(ctx, F(OP_TEXT, b"frag", fin=False) +
                      F(OP_CLOSE, close_payload(1000, "mid")) +
                      F(OP_CONT, b"ment"), 1000, reason="mid"))


def after_close_later(ctx):
    """Text and ping sent after the server's close frame arrived: no reply,
    then EOF."""
    ws = Peer(ctx)
    try:
        ws.send_frame(OP_CLOSE, close_payload(1000, "x"))
        got = ws.next_msg()
        assert got == ("close", 1000, "x"), got
        try:
            ws.send_raw(F(OP_TEXT, b"late") + F(OP_PING, b"late"))
        except (BrokenPipeError, ConnectionResetError):
            pass  # already gone: fine
        ws.closed_by_server()
    finally:
        ws.close()


add("7.1", "text and ping after the server's close: no reply",
    after_close_later)


def big_then_close_then_ping(ctx):
    """256 KiB message, close, ping in one write (Autobahn 7.1.6): the echo,
    the close, no pong."""
    big = binary_of(256 * 1024)
    ws = Peer(ctx, timeout=10)
    try:
        ws.send_raw(F(OP_BINARY, big) + F(OP_CLOSE, close_payload(1000)) +
                    F(OP_PING, b"late"))
        ws.fails_with(1000, ("binary", big), reason="")
    finally:
        ws.close()


add("7.1", "256 KiB message, close, ping: echo and close only",
    big_then_close_then_ping)


def server_closes_tcp(ctx):
    """RFC 6455 7.1.1: after the closing handshake the server closes the TCP
    connection first; we never close ours (fails_with waits for EOF, bounded
    by the socket timeout)."""
    ws = Peer(ctx)
    try:
        ws.send_frame(OP_CLOSE, close_payload(1000))
        ws.fails_with(1000, reason="")
    finally:
        ws.close()


add("7.2", "the server closes the TCP connection after the handshake",
    server_closes_tcp)


def close_while_peer_sends(ctx):
    """The peer closes and keeps sending 2 MiB of data frames: the server's
    close frame still arrives (a reset must not destroy it), then EOF."""
    ws = Peer(ctx, timeout=10)
    try:
        ws.send_frame(OP_CLOSE, close_payload(1000, "flood"))
        blob = F(OP_BINARY, b"z" * 65536)
        sent = 0
        try:
            for _ in range(32):
                ws.send_raw(blob)
                sent += 1
        except (BrokenPipeError, ConnectionResetError):
            pass
        got = ws.next_msg()
        assert got == ("close", 1000, "flood"), got
    except ConnectionResetError:
        raise AssertionError("connection reset before the server's close "
                             "frame was read") from None
    finally:
        ws.close()


add("7.2", "close frame arrives while the peer keeps sending",
    close_while_peer_sends)


def close_behind_echoes_while_peer_sends(ctx):
    """The peer sends 6 MiB of messages and a close frame without reading
    (its receive buffer is small, so the echoes wait at the server), then
    keeps sending data frames for up to 0.5 s, and only then reads: all 6
    echoes, then the close frame, then EOF.  The server drains what the
    peer sends while lingering; closing with unread input would reset the
    connection and destroy the echoes and the close frame still queued
    (7.1.1: the server closes the TCP connection *after* the handshake)."""
    ws = Peer(ctx, timeout=10)
    try:
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        msgs = [binary_of(MIB, i) for i in range(6)]
        ws.send_raw(b"".join(F(OP_BINARY, m) for m in msgs) +
                    F(OP_CLOSE, close_payload(1000, "behind echoes")))
        junk = F(OP_BINARY, b"j" * 65536) * 16
        ws.sock.setblocking(False)
        deadline = time.monotonic() + 0.5
        pushed, off = 0, 0
        while time.monotonic() < deadline and pushed < 16 * MIB:
            try:
                n = ws.sock.send(junk[off:])
                pushed += n
                off = (off + n) % len(junk)
            except BlockingIOError:
                select.select([], [ws.sock], [], 0.05)
            except (BrokenPipeError, ConnectionResetError):
                break
        ws.sock.setblocking(True)
        ws.sock.settimeout(10)
        try:
            ws.fails_with(1000, *[("binary", m) for m in msgs],
                          reason="behind echoes")
        except ConnectionResetError:
            raise AssertionError(
                f"connection reset before the echoes and the close frame "
                f"were read ({pushed} bytes pushed after the close)") from None
    finally:
        ws.close()


add("7.2", "close frame behind 6 MiB of echoes arrives while the peer "
    "keeps sending", close_behind_echoes_while_peer_sends)


def failed_conn_closes_tcp(ctx):
    """After failing a connection (1002) the server stops reading and closes
    the TCP connection even though the peer keeps its side open."""
    ws = Peer(ctx)
    try:
        ws.send_frame(3, b"x")
        ws.fails_with(1002)
    finally:
        ws.close()


add("7.2", "the server closes TCP after failing the connection",
    failed_conn_closes_tcp)


# ---- 8 handshake abuse -------------------------------------------------------------------------

def upgrade_request(drop=(), version="13", key=None, method="GET",
                    proto="HTTP/1.1", extra="", target="/chat"):
    import base64
    key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
    hs = {"Host": "127.0.0.1", "Upgrade": "websocket",
          "Connection": "Upgrade", "Sec-WebSocket-Key": key,
          "Sec-WebSocket-Version": version}
    lines = [f"{method} {target} {proto}"]
    lines += [f"{k}: {v}" for k, v in hs.items() if k not in drop]
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


def http_status(ctx, raw, status, header=None):
    """Send a request; the response has `status` (and `header`, a (name,
    value) pair); then the server closes the connection."""
    ws = RawWS(ctx.port, handshake=False, timeout=IO_TIMEOUT)
    try:
        try:
            ws.send_raw(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer before the whole request is in
        try:
            got = ws.read_response()
        except (Closed, ConnectionResetError) as e:
            raise AssertionError(f"no HTTP response ({type(e).__name__}); "
                                 f"expected {status}") from None
        assert got == status, f"status {got} ({ws.status_line!r}), " \
            f"expected {status}"
        if header:
            assert ws.headers.get(header[0].lower()) == header[1], \
                f"{header[0]}: {ws.headers.get(header[0].lower())!r}"
        try:
            ws.expect_eof()
        except socket.timeout:
            raise AssertionError("the server kept the connection open after "
                                 f"its {status}") from None
    finally:
        ws.close()


def sized_request(n):
    """A valid upgrade request of exactly n bytes (padded with a header)."""
    base = upgrade_request(extra="X-Pad: \r\n")
    pad = n - len(base)
    assert pad >= 0
    return upgrade_request(extra="X-Pad: " + "p" * pad + "\r\n")


V13 = ("Sec-WebSocket-Version", "13")
for title, raw, status, header in [
    ("request of 8193 bytes (one over the limit): 431", sized_request(8193),
     431, None),
    ("header value of 9000 bytes: 431",
     upgrade_request(extra="X-Big: " + "v" * 9000 + "\r\n"), 431, None),
    ("header value of 64 KiB: 431",
     upgrade_request(extra="X-Big: " + "v" * 65536 + "\r\n"), 431, None),
    ("3000 header lines (30 KiB): 431",
     upgrade_request(extra="".join(f"X-{i}: y\r\n" for i in range(3000))),
     431, None),
    ("1500 short header lines under 8 KiB: 431",
     upgrade_request(extra="a: b\r\n" * 1500), 431, None),
    ("65 header lines (limit 64): 431",
     upgrade_request(extra="".join(f"X-{i}: y\r\n" for i in range(60))),
     431, None),
    ("request line of 9000 bytes: 431",
     upgrade_request(target="/" + "p" * 9000), 431, None),
    ("version 8: 426 + Sec-WebSocket-Version: 13",
     upgrade_request(version="8"), 426, V13),
    ("version 0: 426 + Sec-WebSocket-Version: 13",
     upgrade_request(version="0"), 426, V13),
    ("version 12: 426", upgrade_request(version="12"), 426, V13),
    ("version 14: 426", upgrade_request(version="14"), 426, V13),
    ("version 255: 426", upgrade_request(version="255"), 426, V13),
    ("version 'abc': 426", upgrade_request(version="abc"), 426, V13),
    ("version '13, 8': 426", upgrade_request(version="13, 8"), 426, V13),
    ("empty version: 426", upgrade_request(version=""), 426, V13),
    ("missing version: 426",
     upgrade_request(drop=("Sec-WebSocket-Version",)), 426, V13),
    ("two version headers: 426",
     upgrade_request(extra="Sec-WebSocket-Version: 8\r\n"), 426, V13),
    ("missing key: 400", upgrade_request(drop=("Sec-WebSocket-Key",)), 400,
     None),
    ("empty key: 400", upgrade_request(key=""), 400, None),
    ("key of 15 bytes: 400",
     upgrade_request(key="AAAAAAAAAAAAAAAAAAAA"), 400, None),
    ("key of 17 bytes: 400",
     upgrade_request(key="AAAAAAAAAAAAAAAAAAAAAAA="), 400, None),
    ("key not base64: 400",
     upgrade_request(key="!!!!!!!!!!!!!!!!!!!!!!=="), 400, None),
    ("two key headers: 400",
     upgrade_request(extra="Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"),
     400, None),
    ("HTTP/1.0: 400", upgrade_request(proto="HTTP/1.0"), 400, None),
    ("POST: 400", upgrade_request(method="POST"), 400, None),
    ("HEAD: 400", upgrade_request(method="HEAD"), 400, None),
    ("no Host: 400", upgrade_request(drop=("Host",)), 400, None),
    ("no Upgrade: 400", upgrade_request(drop=("Upgrade",)), 400, None),
    ("Upgrade: h2c: 400", upgrade_request(drop=("Upgrade",),
                                          extra="Upgrade: h2c\r\n"), 400,
     None),
    ("no Connection: 400", upgrade_request(drop=("Connection",)), 400, None),
    ("Connection: keep-alive only: 400",
     upgrade_request(drop=("Connection",), extra="Connection: keep-alive\r\n"),
     400, None),
    ("target without a leading slash: 400",
     upgrade_request(target="chat"), 400, None),
    ("space before the colon of a header: 400 (RFC 7230 3.2.4)",
     upgrade_request(extra="X-Bad : v\r\n"), 400, None),
    ("two Host headers: 400 (RFC 7230 5.4)",
     upgrade_request(extra="Host: other\r\n"), 400, None),
    ("HTTP/2.0 in an HTTP/1 request line: 400",
     upgrade_request(proto="HTTP/2.0"), 400, None),
    ("NUL in a header value: 400",
     upgrade_request(extra="X-Nul: a\0b\r\n"), 400, None),
    ("garbage request line: 400", b"\x16\x03\x01\x02\x00\x01\x00\r\n\r\n",
     400, None),
]:
    add("8.1", title, http_status, raw, status, header)


def upgrade_ok(ctx, raw, chop=None, check=None):
    """A request that must be accepted: 101 with Upgrade: websocket,
    Connection: Upgrade and the right accept key (4.2.2), no extension or
    subprotocol the client did not get, then an echo works."""
    import base64
    import hashlib
    import re
    key = re.search(rb"(?i)\r\nsec-websocket-key:\s*(\S+)", raw).group(1)
    ws = RawWS(ctx.port, handshake=False, timeout=IO_TIMEOUT)
    try:
        ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        wire = raw + F(OP_TEXT, b"first")
        if chop:
            for i in range(len(wire)):
                ws.send_read(wire[i:i + 1])
        else:
            ws.send_raw(wire)
        st = ws.read_response()
        assert st == 101, f"status {ws.status_line!r}: {ws.body[:80]!r}"
        h = ws.headers
        assert h.get("upgrade", "").lower() == "websocket", h
        assert "upgrade" in h.get("connection", "").lower(), h
        want = base64.b64encode(hashlib.sha1(
            key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()).decode()
        assert h.get("sec-websocket-accept") == want, h
        assert "sec-websocket-extensions" not in h, h
        assert "sec-websocket-protocol" not in h, h
        assert ws.recv_message() == (OP_TEXT, b"first")
        ws.send_frame(OP_CLOSE, close_payload(1000))
        code, _ = ws.expect_close()
        assert code == 1000, code
    finally:
        ws.close()


for title, raw, chop in [
    ("plain request", upgrade_request(), False),
    ("request and a frame in 1-byte writes", upgrade_request(), True),
    ("header names in lower case, Upgrade: WebSocket",
     upgrade_request().replace(b"Upgrade: websocket", b"upgrade: WebSocket")
     .replace(b"Sec-WebSocket-Key", b"sec-websocket-key")
     .replace(b"Sec-WebSocket-Version", b"sec-websocket-version"), False),
    ("Connection: keep-alive, Upgrade",
     upgrade_request(drop=("Connection",),
                     extra="Connection: keep-alive, Upgrade\r\n"), False),
    ("extension offered, none accepted",
     upgrade_request(extra="Sec-WebSocket-Extensions: x-webkit-deflate-frame"
                     "\r\n"),
     False),
    ("subprotocol offered, none chosen",
     upgrade_request(extra="Sec-WebSocket-Protocol: chat, superchat\r\n"),
     False),
    ("Origin and other headers", upgrade_request(
        extra="Origin: http://example.com\r\nUser-Agent: conformance\r\n"
        "Cookie: a=b\r\n"), False),
    ("request of exactly 8192 bytes (the limit)", sized_request(8192), False),
    ("64 header lines (the limit)", upgrade_request(
        extra="".join(f"X-{i}: y\r\n" for i in range(59))), False),
    ("absolute-form http:// target (4.2.1 item 1, RFC 7230 5.3.2)",
     upgrade_request(target="http://127.0.0.1/chat?room=1"), False),
    ("absolute-form https:// target (4.2.1 item 1)",
     upgrade_request(target="https://127.0.0.1/chat"), False),
    ("HTTP/1.2, 'HTTP/1.1 or higher' (4.2.1 item 1, RFC 7230 2.6)",
     upgrade_request(proto="HTTP/1.2"), False),
]:
    add("8.2", f"accepted: {title}", upgrade_ok, raw, chop)


def slowloris(ctx, nslow):
    """`nslow` clients send a valid request one byte every 50 ms (and one
    sends nothing): each gets 408 once the handshake timeout passes, counted
    from the connection, not from its last byte.  Meanwhile a
    python3-websockets client on another connection keeps echoing without
    a single error."""
    import websockets
    t_out = HS_TIMEOUT_MS / 1000
    stop = threading.Event()
    stats = {"echoes": 0, "errors": []}

    async def echo_loop():
        async with websockets.connect(f"ws://127.0.0.1:{ctx.port}/bystander2",
                                      ping_interval=None,
                                      open_timeout=IO_TIMEOUT) as ws:
            i = 0
            while not stop.is_set():
                msg = f"echo {i} " + "é" * (i % 50)
                await ws.send(msg)
                got = await asyncio.wait_for(ws.recv(), IO_TIMEOUT)
                if got != msg:
                    stats["errors"].append(f"echo {i}: {got!r}")
                stats["echoes"] += 1
                i += 1
                await asyncio.sleep(0.01)  # pacing: ~100 echoes a second

    def runner():
        try:
            asyncio.run(echo_loop())
        except Exception as e:  # noqa: BLE001 - any error fails the case
            stats["errors"].append(f"{type(e).__name__}: {e}")

    th = threading.Thread(target=runner, daemon=True)
    th.start()
    req = upgrade_request()
    socks = []
    try:
        t0 = time.monotonic()
        for i in range(nslow + 1):
            s = socket.create_connection(("127.0.0.1", ctx.port),
                                         timeout=IO_TIMEOUT)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            socks.append(s)
        silent = socks[-1]
        got = {s: b"" for s in socks}
        done = {}       # sock -> seconds until EOF
        sent_then = {}  # sock -> request bytes sent when it ended
        pos = 0
        next_byte = t0
        # the whole request takes len(req) * 50 ms (~7 s) to go out: the
        # bound is that plus a generous margin, not the timeout
        deadline = t0 + len(req) * 0.05 + IO_TIMEOUT
        while len(done) < len(socks) and time.monotonic() < deadline:
            now = time.monotonic()
            if now >= next_byte and pos < len(req):
                for s in socks:
                    if s is not silent and s not in done and not got[s]:
                        try:
                            s.sendall(req[pos:pos + 1])
                        except OSError:
                            pass
                pos += 1
                next_byte += 0.05
            live = [s for s in socks if s not in done]
            r, _, _ = select.select(live, [], [],
                                    max(0.0, min(next_byte, deadline) - now))
            for s in r:
                try:
                    d = s.recv(4096)
                except ConnectionResetError:
                    d = b""
                if d:
                    got[s] += d
                    # any other answer is wrong from its first line: fail
                    # now, not after waiting out the deadline (a 101 once
                    # a handshake timeout restarted by every byte lets the
                    # whole request through)
                    if b"\r\n" in got[s] and \
                            not got[s].startswith(b"HTTP/1.1 408 "):
                        who = "silent client" if s is silent else \
                            f"slow client {socks.index(s)}"
                        raise AssertionError(
                            f"{who}: got {got[s][:60]!r} after "
                            f"{time.monotonic() - t0:.2f} s, request bytes "
                            f"sent {pos}/{len(req)}")
                else:
                    done[s] = time.monotonic() - t0
                    sent_then[s] = pos
        stop.set()
        for i, s in enumerate(socks):
            who = "silent client" if s is silent else f"slow client {i}"
            head = got[s].split(b"\r\n", 1)[0]
            assert s in done, f"{who}: no response and no close within " \
                f"{deadline - t0:.1f} s"
            assert head.startswith(b"HTTP/1.1 408 "), \
                f"{who}: got {got[s][:60]!r} after {done[s]:.2f} s"
            # not before the timeout, and while the request was still
            # trickling in: a timeout restarted by every byte (50 ms apart)
            # would never fire before the request completes; no upper
            # bound in seconds (a loaded machine is only slower)
            assert done[s] >= t_out * 0.9, \
                f"{who}: 408 after {done[s]:.2f} s, timeout {t_out} s"
            assert sent_then[s] < len(req), \
                f"{who}: 408 only after the whole request ({done[s]:.2f} s)"
    finally:
        stop.set()
        for s in socks:
            s.close()
        th.join(10)
    assert not th.is_alive(), "websockets client did not stop"
    assert not stats["errors"], f"websockets client: {stats['errors'][:3]}"
    assert stats["echoes"] >= 5, f"only {stats['echoes']} echoes meanwhile"


add("8.3", "slowloris: 1 byte every 50 ms gets 408 at the handshake "
    "timeout; a websockets client keeps echoing", slowloris, 1)
add("8.3", "10 slowloris clients and a silent one: all 408, echoes go on",
    slowloris, 10)


# ---- 12, 13: permessage-deflate (RFC 7692) ------------------------------------------

import zlib  # noqa: E402

DEFLATE_TAIL = b"\x00\x00\xff\xff"


def pmd_params(value):
    """{name: value or True} of a permessage-deflate response element."""
    parts = [p.strip() for p in value.split(";")]
    assert parts[0] == "permessage-deflate", value
    out = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        assert k not in out, f"duplicate {k} in {value!r}"
        out[k.strip()] = v.strip().strip('"') if v else True
    return out


class DeflatePeer(Peer):
    """A client that offers permessage-deflate, compresses what it sends
    (RSV1) and inflates what it gets, checking the server's frames: RSV1
    only on a message's first frame, never on control frames."""

    def __init__(self, ctx, offer="permessage-deflate; client_max_window_bits",
                 takeover=True, wbits=15):
        super().__init__(ctx, extra_headers=(
            f"Sec-WebSocket-Extensions: {offer}",) if offer else ())
        ext = self.headers.get("sec-websocket-extensions")
        self.params = pmd_params(ext) if ext else None
        p = self.params or {}
        self.server_reset = "server_no_context_takeover" in p
        self.client_reset = "client_no_context_takeover" in p or not takeover
        swb = int(p.get("server_max_window_bits", 15))
        cwb = min(wbits, int(p.get("client_max_window_bits", 15)))
        self.cwb = max(cwb, 9)  # zlib cannot compress with 8: a smaller
        self.swb = swb          # window than allowed is always fine
        self.inf = zlib.decompressobj(-max(swb, 9))
        self.dfl = self.new_deflater()

    def new_deflater(self):
        return zlib.compressobj(6, zlib.DEFLATED, -self.cwb)

    def compress(self, data):
        out = self.dfl.compress(data) + self.dfl.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(DEFLATE_TAIL)
        if self.client_reset:
            self.dfl = self.new_deflater()
        return out[:-4] or b"\x00"

    def send_msg(self, op, data, frags=1):
        z = self.compress(data)
        cut = [len(z) * i // frags for i in range(frags + 1)]
        wire = b""
        for i in range(frags):
            wire += F(op if i == 0 else OP_CONT, z[cut[i]:cut[i + 1]],
                      fin=i == frags - 1, rsv=4 if i == 0 else 0)
        self.send_raw(wire)

    def next_msg(self):
        op0, data, rsv1 = None, b"", False
        while True:
            fin, rsv, op, payload = self.recv_frame()
            if op >= 8:
                assert rsv == 0, f"control frame with RSV bits {rsv:03b}"
                if op == OP_CLOSE:
                    return ("close",) + strict_close(payload)
                return ("ping" if op == OP_PING else "pong", payload)
            if op0 is None:
                assert rsv in (0, 4), f"RSV bits {rsv:03b}"
                assert rsv == 0 or self.params, "RSV1 without the extension"
                op0, rsv1 = op, rsv == 4
            else:
                assert op == OP_CONT and rsv == 0, \
                    f"continuation with opcode {op}, RSV {rsv:03b}"
            data += payload
            if fin:
                break
        if rsv1:
            data = self.inf.decompress(data + DEFLATE_TAIL)
            if self.server_reset:
                self.inf = zlib.decompressobj(-max(self.swb, 9))
        if op0 == OP_TEXT:
            data.decode("utf-8")
        return ("text" if op0 == OP_TEXT else "binary", data)


def payload_of(kind, n, seed):
    if kind == "text":
        return text_of(n)
    if kind == "json":
        unit = (b'{"type":"chat","user":"user%d","text":"hello world",'
                b'"ts":1733400000},' % seed)
        return (unit * (n // len(unit) + 1))[:n]
    return binary_of(n, seed)


def deflate_echo(ctx, kind, n, frags, offer=None, count=3):
    """`count` messages of `n` bytes (each in `frags` fragments) are echoed
    intact over one compressed connection."""
    kw = {} if offer is None else {"offer": offer}
    ws = DeflatePeer(ctx, **kw)
    try:
        assert ws.params is not None, "permessage-deflate not accepted"
        # the answer is to the first offer (RFC 7692 5.1): within its
        # client_max_window_bits, if it has one
        first = pmd_params((offer or "permessage-deflate").split(",")[0])
        if first.get("client_max_window_bits", True) is not True:
            got = int(ws.params.get("client_max_window_bits", 15))
            assert got <= int(first["client_max_window_bits"]), \
                f"answer {ws.params} is not to the first offer {first}"
        op = OP_BINARY if kind == "binary" else OP_TEXT
        for i in range(count):
            data = payload_of(kind, n, i)
            ws.send_msg(op, data, frags)
            got = ws.next_msg()
            want = ("binary" if op == OP_BINARY else "text", data)
            assert got == want, f"message {i}: expected {short(want)}, " \
                f"got {short(got)}"
        ws.send_frame(OP_CLOSE, close_payload(1000))
        assert ws.next_msg()[:2] == ("close", 1000)
    finally:
        ws.close()


DEFLATE_SIZES = [16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072]
for kind in ("text", "json", "binary"):
    for n in DEFLATE_SIZES:
        add("12.1", f"{kind} of {n} bytes, 3 messages", deflate_echo,
            kind, n, 1)
for kind in ("text", "binary"):
    for n in DEFLATE_SIZES:
        add("12.2", f"{kind} of {n} bytes in 4 fragments", deflate_echo,
            kind, n, 4)
for n in (0, 1):
    add("12.3", f"{n}-byte compressed text, 3 messages", deflate_echo,
        "text", n, 1)

# Autobahn 13.1-13.7: the client's offer
OFFERS = [
    ("13.1", "permessage-deflate"),
    ("13.2", "permessage-deflate; client_no_context_takeover"),
    ("13.3", "permessage-deflate; client_max_window_bits=8"),
    ("13.4", "permessage-deflate; client_max_window_bits=15"),
    ("13.5", "permessage-deflate; client_no_context_takeover; "
     "client_max_window_bits=8"),
    ("13.6", "permessage-deflate; client_no_context_takeover; "
     "client_max_window_bits=15"),
    ("13.7", "permessage-deflate; client_no_context_takeover; "
     "client_max_window_bits=8, permessage-deflate; "
     "client_no_context_takeover, permessage-deflate"),
]
for group, offer in OFFERS:
    for n in (16, 1024, 16384, 131072):
        add(group, f"{offer[:60]}: text of {n} bytes", deflate_echo,
            "json", n, 1, offer)
for w in range(8, 16):
    add("13.8", f"server_max_window_bits={w} (8: answered, sent plain)",
        deflate_echo, "json", 65536, 1,
        f"permessage-deflate; server_max_window_bits={w}; "
        "server_no_context_takeover")


def deflate_declined(ctx, offer):
    """An invalid offer is declined (no Sec-WebSocket-Extensions in the
    101) and the connection works uncompressed."""
    ws = Peer(ctx, extra_headers=(f"Sec-WebSocket-Extensions: {offer}",))
    try:
        assert "sec-websocket-extensions" not in ws.headers, ws.headers
        ws.send_frame(OP_TEXT, b"plain")
        ws.expect(("text", b"plain"))
    finally:
        ws.close()


for offer in ["permessage-deflate; server_max_window_bits",
              "permessage-deflate; server_max_window_bits=7",
              "permessage-deflate; server_max_window_bits=16",
              "permessage-deflate; client_max_window_bits=08",
              "permessage-deflate; client_max_window_bits=0",
              "permessage-deflate; server_no_context_takeover=1",
              "permessage-deflate; client_no_context_takeover; "
              "client_no_context_takeover",
              "permessage-deflate; unknown_parameter",
              "permessage-deflate; server_max_window_bits=\"1 0\"",
              "permessage-deflate;",
              "x-webkit-deflate-frame"]:
    add("13.9", f"declined: {offer}", deflate_declined, offer)


def deflate_fails(ctx, wire, code, *before):
    ws = DeflatePeer(ctx)
    try:
        ws.send_raw(wire(ws))
        ws.fails_with(code, *before)
    finally:
        ws.close()


add("13.10", "corrupt compressed data: 1007", deflate_fails,
    lambda ws: F(OP_TEXT, b"\xff\xff\xff\xff\x00", rsv=4), 1007)
add("13.10", "RSV1 on a continuation frame: 1002", deflate_fails,
    lambda ws: F(OP_TEXT, ws.compress(b"ab"), fin=False, rsv=4) +
    F(OP_CONT, ws.compress(b"cd"), rsv=4), 1002)
add("13.10", "RSV1 on a ping: 1002", deflate_fails,
    lambda ws: F(OP_PING, b"", rsv=4), 1002)
add("13.10", "RSV2 with the extension: 1002", deflate_fails,
    lambda ws: F(OP_TEXT, ws.compress(b"ab"), rsv=6), 1002)
add("13.10", "invalid UTF-8 once inflated: 1007", deflate_fails,
    lambda ws: F(OP_TEXT, ws.compress(b"ok" * 500 + b"\xc0\xaf"), rsv=4),
    1007)
add("13.10", "inflates over the 1 MiB limit: 1009", deflate_fails,
    lambda ws: F(OP_BINARY, ws.compress(b"\0" * (MIB + 1)), rsv=4), 1009)
def deflate_mixed(ctx):
    """RSV1 is per message: compressed and plain messages interleave."""
    ws = DeflatePeer(ctx)
    try:
        for i in range(4):
            data = payload_of("json", 500 + i, i)
            if i % 2:
                ws.send_frame(OP_TEXT, data)
            else:
                ws.send_msg(OP_TEXT, data)
            ws.expect(("text", data))
    finally:
        ws.close()


add("13.10", "plain message after compressed ones", deflate_mixed)


# ---- runner ---------------------------------------------------------------------------------------

class Ctx:
    def __init__(self, name):
        self.name = name
        self.srv = EchoServer("--handshake-timeout", str(HS_TIMEOUT_MS),
                              name=name)
        self.port = self.srv.port
        self.bystander = RawWS(self.port, "/bystander")
        self.n = 0

    def check_bystander(self):
        assert self.srv.alive(), f"{self.name} exited with " \
            f"{self.srv.p.returncode}:\n{self.srv.stderr()[-2000:]}"
        self.n += 1
        msg = f"bystander {self.n}".encode()
        self.bystander.send_frame(OP_TEXT, msg)
        assert self.bystander.recv_message() == (OP_TEXT, msg), \
            "the bystander connection stopped echoing"

    def finish(self):
        self.bystander.close()
        self.srv.finish()


def run_case(ctx, fn):
    try:
        fn(ctx)
    finally:
        ctx.check_bystander()


def main():
    servers = (os.environ.get("CONF_SERVERS") or
               os.environ.get("ECHO_SERVERS") or
               "echo_server uv_echo_server").split()
    only = os.environ.get("CASE", "")
    sections = {int(x) for x in os.environ.get("CONF_SECTIONS", "").split()}
    selected = [c for c in CASES
                if (not only or c[1] == only or c[1].startswith(only + ".")
                    or (not only[0].isdigit()
                        and only.lower() in c[2].lower()))
                and (not sections or c[0] in sections)]
    print(f"test_conformance.py: {len(selected)} cases x {len(servers)} "
          "servers", flush=True)
    # a chosen subset of sections has its own size: the minimum is for
    # full runs
    minimum = 1 if sections else MIN_CASES * len(servers)
    if not count_ok("test_conformance.py", len(selected) * len(servers),
                    minimum):
        sys.exit(1)
    table = {}   # (server, section) -> [passed, failed]
    failed = []
    t0 = time.monotonic()
    for name in servers:
        print(f"== {name}: {len(selected)} cases", flush=True)
        ctx = Ctx(name)
        try:
            for sec, cid, title, fn in selected:
                ok = run_one(f"{cid} {title}", run_case, ctx, fn)
                table.setdefault((name, sec), [0, 0])[0 if ok else 1] += 1
                if not ok:
                    failed.append(f"{name} {cid}")
                    if not ctx.srv.alive():
                        print(f"  {name} died: stopping its run", flush=True)
                        break
        finally:
            try:
                ctx.finish()
            except Exception as e:  # noqa: BLE001
                failed.append(f"{name} teardown")
                print(f"  FAIL {name} teardown: {type(e).__name__}: {e}",
                      flush=True)
    width = max(len(s) for s in servers) + 2
    print("\nsection                          " +
          "".join(f"{s:>{width}}" for s in servers))
    totals = {s: [0, 0] for s in servers}
    for sec, title in SECTIONS.items():
        cells = []
        for s in servers:
            p, f = table.get((s, sec), [0, 0])
            totals[s][0] += p
            totals[s][1] += f
            cells.append(f"{p}/{p + f}" + (f" ({f} FAIL)" if f else ""))
        if any(table.get((s, sec)) for s in servers):
            print(f"{sec} {title:<31}" +
                  "".join(f"{c:>{width}}" for c in cells))
    print("  total                          " +
          "".join(f"{f'{p}/{p + f}':>{width}}" for p, f in totals.values()))
    print(f"test_conformance.py: {sum(p for p, _ in totals.values())}/"
          f"{sum(p + f for p, f in totals.values())} passed in "
          f"{time.monotonic() - t0:.1f}s"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
