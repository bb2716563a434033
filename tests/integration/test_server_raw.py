"""echo_server fed invalid input by a hand-written client on a raw socket.

Each case checks the exact close code (RFC 6455 7.4.1) or HTTP status the
server answers with, that it then closes the TCP connection, and that a
bystander connection opened at the start still echoes afterwards.

Run alone:  /usr/bin/python3 tests/integration/test_server_raw.py
            CASE=case_bad_close_codes /usr/bin/python3 tests/integration/...
"""
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsharness import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG,  # noqa
                       OP_TEXT, Closed, EchoServer, RawWS, close_payload,
                       run_cases)

IO_BOUND = 20.0  # seconds: every wait for the server (ASan, loaded machine)


class Ctx:
    def __init__(self):
        self.srv = EchoServer("--verbose")  # logs every on_close
        self.small = EchoServer("--max-message", "1000", "--verbose")
        self.nolimit = EchoServer("--max-message", "0")
        self.bystander = RawWS(self.srv.port, "/bystander")
        self.n = 0

    def logged(self, server, line, timeout=IO_BOUND):
        """The server's --verbose log has `line` (on_close's code, clean
        flag and error detail as the library reported them)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if line in server.stderr():
                return
            time.sleep(0.01)
        raise AssertionError(f"server log lacks {line!r}; last lines: "
                             f"{server.stderr().splitlines()[-3:]}")

    def check_bystander(self):
        """The server still serves an unrelated, older connection."""
        self.n += 1
        msg = f"bystander {self.n}".encode()
        self.bystander.send_frame(OP_TEXT, msg)
        assert self.bystander.recv_message() == (OP_TEXT, msg), \
            "bystander connection stopped echoing"


def expect_fail(ctx, frames, code, port=None, reason_has=None):
    """Open a connection, send `frames` (bytes), expect a close frame with
    `code` and then the TCP connection closed by the server."""
    ws = RawWS(port or ctx.srv.port)
    try:
        ws.send_raw(frames)
        got, reason = ws.expect_close()
        assert got == code, f"expected close {code}, got {got} ({reason!r})"
        if reason_has:
            assert reason_has in reason, f"reason {reason!r}"
        ws.expect_eof()
    finally:
        ws.close()
    ctx.check_bystander()
    return reason


F = RawWS.frame


# ---- framing errors -> 1002 ----------------------------------------------------

def case_unmasked_frame(ctx):
    """RFC 6455 5.1: a server MUST close on an unmasked client frame."""
    expect_fail(ctx, F(OP_TEXT, b"hello", mask=False), 1002)


def case_rsv_bits(ctx):
    """5.2: RSV1-3 set without a negotiated extension -> fail."""
    for rsv in (1, 2, 4, 7):
        expect_fail(ctx, F(OP_TEXT, b"x", rsv=rsv), 1002)
    expect_fail(ctx, F(OP_PING, b"x", rsv=4), 1002)


def case_reserved_opcodes(ctx):
    """5.2: opcodes 3-7 and 0xB-0xF are reserved -> fail."""
    for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF):
        expect_fail(ctx, F(op, b"abc"), 1002)


def case_control_frame_rules(ctx):
    """5.5: control frames have <= 125 bytes and are never fragmented."""
    expect_fail(ctx, F(OP_PING, b"p" * 126), 1002)
    expect_fail(ctx, F(OP_PING, b"p", fin=False), 1002)
    expect_fail(ctx, F(OP_CLOSE, close_payload(1000), fin=False), 1002)


def case_fragmentation_rules(ctx):
    """5.4: continuation without a started message, or a new data frame
    inside a fragmented message -> fail."""
    expect_fail(ctx, F(OP_CONT, b"orphan"), 1002)
    expect_fail(ctx, F(OP_TEXT, b"a", fin=False) + F(OP_TEXT, b"b"), 1002)
    expect_fail(ctx, F(OP_BINARY, b"a", fin=False) + F(OP_TEXT, b"b"), 1002)


def case_rsv_on_continuation(ctx):
    expect_fail(ctx, F(OP_TEXT, b"a", fin=False) + F(OP_CONT, b"b", rsv=4),
                1002)


def case_close_inside_fragmented_message(ctx):
    """A close frame between fragments is answered; the unfinished message
    is never delivered."""
    ws = RawWS(ctx.srv.port)
    try:
        ws.send_raw(F(OP_TEXT, b"never ", fin=False) +
                    F(OP_CLOSE, close_payload(1000, "mid-message")))
        fin, _, op, payload = ws.recv_frame()
        assert op == OP_CLOSE, f"got opcode {op} ({payload!r}) before close"
        assert payload == close_payload(1000, "mid-message"), payload
        ws.expect_eof()
    finally:
        ws.close()


def case_random_garbage(ctx):
    """Random bytes after the handshake (20 seeded streams at once): the
    server answers each with a protocol-level close code, never crashes,
    and keeps serving others.  Every seed here breaks a frame rule within
    its 4096 bytes, so each stream must end in a close frame: after the
    bytes we shut our side down, and a stream that only saw EOF (the
    server waiting for more), a reset or a timeout fails."""
    import random
    socks = []
    for seed in range(20):
        rnd = random.Random(seed)
        ws = RawWS(ctx.srv.port)
        ws.send_raw(bytes(rnd.getrandbits(8) for _ in range(4096)))
        ws.sock.shutdown(socket.SHUT_WR)  # then EOF: nothing more comes
        socks.append(ws)
    codes, problems = {}, []
    for seed, ws in enumerate(socks):
        try:
            # a run of valid frames before the error is echoed
            codes[seed], _ = ws.expect_close(data_ok=True)
            ws.expect_eof()
        except (OSError, Closed) as e:
            problems.append(f"seed {seed}: {type(e).__name__} {e}")
        finally:
            ws.close()
    bad = {s: c for s, c in codes.items() if c not in (1002, 1007, 1009)}
    assert not bad, f"unexpected close codes {bad}"
    assert not problems, "no close frame: " + "; ".join(problems)
    ctx.check_bystander()


def case_non_minimal_length(ctx):
    """5.2: 'the minimal number of bytes MUST be used to encode the length';
    a 64-bit length with the top bit set is invalid."""
    key = b"\0\0\0\0"
    short_in_16 = struct.pack("!BBH", 0x81, 0x80 | 126, 5) + key + b"hello"
    expect_fail(ctx, short_in_16, 1002)
    short_in_64 = struct.pack("!BBQ", 0x82, 0x80 | 127, 300) + key + b"x" * 300
    expect_fail(ctx, short_in_64, 1002)
    top_bit = struct.pack("!BBQ", 0x82, 0x80 | 127, 1 << 63) + key + b"x"
    expect_fail(ctx, top_bit, 1002)


# ---- UTF-8 -> 1007 ------------------------------------------------------------------

BAD_UTF8 = {
    "invalid byte": b"abc\xffdef",
    "lone continuation": b"\x80",
    "overlong '/'": b"\xc0\xaf",
    "overlong 3-byte": b"\xe0\x80\xaf",
    "surrogate U+D800": b"\xed\xa0\x80",
    "above U+10FFFF": b"\xf4\x90\x80\x80",
    "truncated at end": b"ok \xe2\x82",
}


def case_invalid_utf8(ctx):
    """8.1: a text message that is not UTF-8 -> close 1007."""
    for name, data in BAD_UTF8.items():
        try:
            expect_fail(ctx, F(OP_TEXT, data), 1007)
            ctx.logged(ctx.srv, "close code=1007 clean=0 error: " + (
                "text message ends inside a character"
                if name == "truncated at end" else
                "invalid UTF-8 in text message"))
        except AssertionError as e:
            raise AssertionError(f"{name}: {e}") from None


def case_invalid_utf8_across_fragments(ctx):
    """The check runs over the reassembled message: a character split over
    fragments is fine; a bad continuation byte in the next fragment, or a
    message ending inside a character, is 1007."""
    euro = "€".encode()  # e2 82 ac
    bad = (F(OP_TEXT, b"ok " + euro[:2], fin=False) +
           F(OP_CONT, b"\x41 no continuation"))
    expect_fail(ctx, bad, 1007)
    ends_inside = (F(OP_TEXT, b"ok ", fin=False) +
                   F(OP_CONT, euro[:1], fin=False) + F(OP_CONT, euro[1:2]))
    expect_fail(ctx, ends_inside, 1007)


def case_invalid_utf8_fails_fast(ctx):
    """6.1.3 / Autobahn 6.4: invalid UTF-8 in the first fragment fails the
    connection before the message ends."""
    ws = RawWS(ctx.srv.port)
    try:
        ws.send_frame(OP_TEXT, b"\xff bad", fin=False)
        code, _ = ws.expect_close()
        assert code == 1007, code
    finally:
        ws.close()
    ctx.check_bystander()


def case_valid_utf8_split_across_fragments(ctx):
    ws = RawWS(ctx.srv.port)
    try:
        s = "a😀b€c".encode()
        # cut inside the 4-byte and the 3-byte character
        pieces = [s[:2], s[2:4], s[4:6], s[6:8], s[8:]]
        data = F(OP_TEXT, pieces[0], fin=False)
        for p in pieces[1:-1]:
            data += F(OP_CONT, p, fin=False)
        data += F(OP_CONT, pieces[-1])
        ws.send_raw(data)
        assert ws.recv_message() == (OP_TEXT, s)
    finally:
        ws.close()


def case_valid_utf8_boundaries(ctx):
    """The edges of every UTF-8 length, noncharacters and NUL are valid
    text (RFC 3629) and come back unchanged."""
    chars = ["\x00", "\x7f", "\x80", "\u07ff", "\u0800", "\ud7ff",
             "\ue000", "\ufffd", "\ufffe", "\uffff", "\U00010000",
             "\U0010ffff", "a\x00b"]
    ws = RawWS(ctx.srv.port)
    try:
        for ch in chars:
            data = ch.encode("utf-8")
            ws.send_frame(OP_TEXT, data)
            got = ws.recv_message()
            assert got == (OP_TEXT, data), f"{ch!r}: got {got}"
    finally:
        ws.close()


def case_close_reason_not_utf8(ctx):
    """7.1.6 / 8.1: a close reason that is not UTF-8 -> 1007."""
    expect_fail(ctx, F(OP_CLOSE, close_payload(1000, b"\xff\xfe")), 1007)


# ---- close frames ---------------------------------------------------------------------

def case_bad_close_codes(ctx):
    """7.4: 1004-1006 and 1015 must not be sent, 0-999 are unused, 1016-2999
    are reserved, 5000+ are undefined -> 1002."""
    for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000,
                 65535):
        try:
            expect_fail(ctx, F(OP_CLOSE, close_payload(code, "r")), 1002)
            ctx.logged(ctx.srv, "close code=1002 clean=0 error: invalid "
                       f"close code {code}\n")
        except AssertionError as e:
            raise AssertionError(f"close code {code}: {e}") from None


def case_one_byte_close_payload(ctx):
    """5.5.1: a close body, if any, starts with a 2-byte code."""
    expect_fail(ctx, F(OP_CLOSE, b"\x03"), 1002)


def case_valid_close_codes_echoed(ctx):
    """Every code valid on the wire is echoed with its reason."""
    for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012,
                 1013, 1014, 3000, 3999, 4000, 4999):
        ws = RawWS(ctx.srv.port)
        try:
            ws.send_frame(OP_CLOSE, close_payload(code, f"reason {code}"))
            got = ws.expect_close()
            assert got == (code, f"reason {code}"), f"{code}: got {got}"
            ws.expect_eof()
            ctx.logged(ctx.srv, f"close code={code} clean=1\n")
        finally:
            ws.close()
    ctx.check_bystander()


def case_empty_close_echoed_empty(ctx):
    """A close frame without a code is answered by one without a code."""
    ws = RawWS(ctx.srv.port)
    try:
        ws.send_frame(OP_CLOSE, b"")
        fin, rsv, op, payload = ws.recv_frame()
        assert op == OP_CLOSE and payload == b"", (op, payload)
        ws.expect_eof()
    finally:
        ws.close()


def case_data_after_close_ignored(ctx):
    """1.4 / 5.5.1: nothing after the close frame is processed."""
    ws = RawWS(ctx.srv.port)
    try:
        ws.send_raw(F(OP_CLOSE, close_payload(1000, "x")) +
                    F(OP_TEXT, b"after close") + F(OP_PING, b"after"))
        fin, _, op, payload = ws.recv_frame()
        assert op == OP_CLOSE, f"first frame after close has opcode {op}"
        ws.expect_eof()
        assert ws.buf == b"", f"server sent {ws.buf!r} after its close frame"
    finally:
        ws.close()


# ---- limits -> 1009 ----------------------------------------------------------------------

def case_max_message_limit(ctx):
    """--max-message 1000: 1000 bytes pass, 1001 (single frame, or two
    fragments of 600) get close 1009."""
    ws = RawWS(ctx.small.port)
    try:
        ws.send_frame(OP_BINARY, b"b" * 1000)
        assert ws.recv_message() == (OP_BINARY, b"b" * 1000)
        ws.send_frame(OP_TEXT, b"t" * 400, fin=False)
        ws.send_frame(OP_CONT, b"t" * 600)
        assert ws.recv_message() == (OP_TEXT, b"t" * 1000)
    finally:
        ws.close()
    expect_fail(ctx, F(OP_BINARY, b"b" * 1001), 1009, port=ctx.small.port)
    expect_fail(ctx, F(OP_TEXT, b"t" * 1001), 1009, port=ctx.small.port)
    expect_fail(ctx, F(OP_TEXT, b"t" * 600, fin=False) + F(OP_CONT, b"t" * 600),
                1009, port=ctx.small.port)
    for total in (1001, 1200):
        ctx.logged(ctx.small, f"close code=1009 clean=0 error: message of "
                   f"{total}+ bytes over the limit of 1000")


def case_max_message_zero_is_unlimited(ctx):
    """--max-message 0: no limit but memory (3 MiB, as one frame and as
    fragments)."""
    ws = RawWS(ctx.nolimit.port, timeout=20)
    try:
        big = os.urandom(3 * 2**20)
        ws.send_frame(OP_BINARY, big)
        assert ws.recv_message() == (OP_BINARY, big)
        ws.send_raw(F(OP_BINARY, big[:2**20], fin=False) +
                    F(OP_CONT, big[2**20:]))
        assert ws.recv_message() == (OP_BINARY, big)
    finally:
        ws.close()


def case_oversize_rejected_before_payload(ctx):
    """A frame announcing 4 GiB is refused from its header: the server must
    not wait for (or buffer) the payload."""
    head = struct.pack("!BBQ", 0x82, 0x80 | 127, 4 << 30) + b"\0\0\0\0"
    # the payload never comes: only a server that decides from the header
    # answers (the socket timeout bounds the wait)
    expect_fail(ctx, head + b"x" * 10, 1009)


def case_header_errors_without_payload(ctx):
    """A frame header that breaks a rule is refused as soon as the header is
    in, without waiting for payload bytes that may never come (a peer that
    announces 4 GiB, or sends an unmasked or RSV header, and then waits)."""
    key = b"\0\0\0\0"
    heads = {
        "4 GiB binary": (struct.pack("!BBQ", 0x82, 0x80 | 127, 4 << 30) + key,
                         1009),
        "unmasked text": (struct.pack("!BB", 0x81, 5), 1002),
        "RSV1 text": (struct.pack("!BB", 0xC1, 0x80 | 5) + key, 1002),
        "opcode 3": (struct.pack("!BB", 0x83, 0x80 | 5) + key, 1002),
        # rules wslay would only check with the payload in
        "ping without FIN": (struct.pack("!BB", 0x09, 0x80 | 5) + key, 1002),
        "126-byte ping": (struct.pack("!BBH", 0x89, 0x80 | 126, 126) + key,
                          1002),
        "64-bit length, top bit": (struct.pack("!BBQ", 0x82, 0x80 | 127,
                                               1 << 63) + key, 1002),
    }
    problems = []
    socks = {name: RawWS(ctx.srv.port) for name in heads}
    for name, ws in socks.items():
        ws.send_raw(heads[name][0])
    # the payloads never come: only a server that decides from the header
    # answers; one shared, generous bound (a loaded machine must not flake)
    deadline = time.monotonic() + IO_BOUND
    for name, ws in socks.items():
        try:
            ws.sock.settimeout(max(0.05, deadline - time.monotonic()))
            code, _ = ws.expect_close()
            if code != heads[name][1]:
                problems.append(f"{name}: close {code}, "
                                f"expected {heads[name][1]}")
        except (OSError, Closed) as e:
            problems.append(f"{name}: no close frame ({type(e).__name__})")
        finally:
            ws.close()
    ctx.check_bystander()
    assert not problems, "; ".join(problems) + \
        " (header checks wait for the first payload byte)"


# ---- well-formed but unusual input --------------------------------------------------------

def case_ping_inside_fragmented_message(ctx):
    """5.4: control frames may be injected between fragments; the pong
    carries the ping's payload and the message is still reassembled."""
    ws = RawWS(ctx.srv.port)
    try:
        ws.send_raw(F(OP_TEXT, b"frag", fin=False) + F(OP_PING, b"mid-ping") +
                    F(OP_CONT, b"mented", fin=False) + F(OP_PONG, b"unasked") +
                    F(OP_CONT, b"!"))
        fin, _, op, payload = ws.recv_frame()
        assert (op, payload) == (OP_PONG, b"mid-ping"), (op, payload)
        assert ws.recv_message() == (OP_TEXT, b"fragmented!")
    finally:
        ws.close()


def case_pong_payload_exact(ctx):
    ws = RawWS(ctx.srv.port)
    try:
        for p in (b"", b"\x00\xff binary", bytes(range(125))):
            ws.send_frame(OP_PING, p)
            fin, rsv, op, payload = ws.recv_frame()
            assert (fin, rsv, op, payload) == (True, 0, OP_PONG, p)
    finally:
        ws.close()


def case_floods(ctx):
    """10000 pings and 10000 one-byte messages in one write each: as many
    pongs and echoes come back, in order."""
    ws = RawWS(ctx.srv.port, timeout=20)
    try:
        N = 10000
        ws.send_raw(b"".join(F(OP_PING, str(i).encode()) for i in range(N)))
        for i in range(N):
            fin, _, op, payload = ws.recv_frame()
            assert (op, payload) == (OP_PONG, str(i).encode()), (i, op)
        ws.send_raw(b"".join(F(OP_BINARY, bytes([i % 256]))
                             for i in range(N)))
        for i in range(N):
            assert ws.recv_message() == (OP_BINARY, bytes([i % 256])), i
    finally:
        ws.close()


def case_byte_by_byte(ctx):
    """Handshake and frames split into 1-byte writes are parsed correctly."""
    import base64
    key = base64.b64encode(os.urandom(16)).decode()
    req = (f"GET /slow HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n").encode()
    ws = RawWS(ctx.srv.port, handshake=False)
    ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        for i in range(len(req)):
            ws.send_raw(req[i:i + 1])
        assert ws.read_response() == 101
        data = F(OP_TEXT, "byte by byte €".encode(), fin=False) + \
            F(OP_CONT, b"!" * 300)
        for i in range(len(data)):
            ws.send_raw(data[i:i + 1])
        assert ws.recv_message() == (OP_TEXT, "byte by byte €".encode() +
                                     b"!" * 300)
    finally:
        ws.close()


def case_frames_in_handshake_packet(ctx):
    """Frames sent in the same write as the upgrade request are not lost."""
    import base64
    key = base64.b64encode(os.urandom(16)).decode()
    req = (f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n").encode()
    ws = RawWS(ctx.srv.port, handshake=False)
    try:
        ws.send_raw(req + F(OP_TEXT, b"early") + F(OP_BINARY, b"\x01\x02"))
        assert ws.read_response() == 101
        assert ws.recv_message() == (OP_TEXT, b"early")
        assert ws.recv_message() == (OP_BINARY, b"\x01\x02")
    finally:
        ws.close()


def case_abrupt_disconnects(ctx):
    """Peers vanishing mid-handshake, mid-frame and mid-message do not
    disturb the server."""
    for data in (b"GET / HTTP/1.1\r\nHost: x\r\n",  # half a request
                 None,  # handshake done, then gone
                 F(OP_TEXT, b"x" * 1000)[:500],  # half a frame
                 F(OP_BINARY, b"a", fin=False)):  # half a message
        if data is not None and data.startswith(b"GET"):
            ws = RawWS(ctx.srv.port, handshake=False)
        else:
            ws = RawWS(ctx.srv.port)
        if data:
            ws.send_raw(data)
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                           struct.pack("ii", 1, 0))  # close with RST
        ws.close()
    ctx.check_bystander()


# ---- handshake errors ------------------------------------------------------------------

def request(ctx, raw):
    """(status, headers, body) of the answer to a request every caller
    expects refused; after an error status the server must close."""
    ws = RawWS(ctx.srv.port, handshake=False)
    try:
        ws.send_raw(raw)
        status = ws.read_response()
        headers, body = ws.headers, ws.body
        # a 101 (or any success) keeps the connection open: no EOF to wait
        # for, the caller's check of the status fails at once
        if status < 400:
            return status, headers, body
        ws.expect_eof()  # the server closes after an error response
    finally:
        ws.close()
    ctx.check_bystander()
    return status, headers, body


def upgrade(drop=(), version="13", key=None, method="GET", proto="HTTP/1.1",
            extra=""):
    import base64
    key = key or base64.b64encode(os.urandom(16)).decode()
    hs = {"Host": "127.0.0.1", "Upgrade": "websocket",
          "Connection": "Upgrade", "Sec-WebSocket-Key": key,
          "Sec-WebSocket-Version": version}
    lines = [f"{method} /chat HTTP/1.1".replace("HTTP/1.1", proto)]
    lines += [f"{k}: {v}" for k, v in hs.items() if k not in drop]
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


def case_handshake_missing_key(ctx):
    """4.2.1 item 5: no Sec-WebSocket-Key -> 400."""
    st, _, body = request(ctx, upgrade(drop=("Sec-WebSocket-Key",)))
    assert st == 400, st
    assert b"Sec-WebSocket-Key" in body, body


def case_handshake_bad_key(ctx):
    for key in ("short==", "not base64 at all!!!!!==", "A" * 24):
        st, _, _ = request(ctx, upgrade(key=key))
        assert st == 400, f"key {key!r}: {st}"


def case_handshake_wrong_version(ctx):
    """4.4: unsupported version -> 426 with Sec-WebSocket-Version: 13."""
    for v in ("8", "12", "14"):
        st, headers, _ = request(ctx, upgrade(version=v))
        assert st == 426, f"version {v}: {st}"
        assert headers.get("sec-websocket-version") == "13", headers


def case_handshake_missing_version(ctx):
    st, _, _ = request(ctx, upgrade(drop=("Sec-WebSocket-Version",)))
    assert st in (400, 426), st


def case_handshake_other_errors(ctx):
    """4.2.1: GET, HTTP/1.1, Host, Upgrade and Connection are required."""
    cases = {
        "POST": upgrade(method="POST"),
        "HTTP/1.0": upgrade(proto="HTTP/1.0"),
        "no Host": upgrade(drop=("Host",)),
        "no Upgrade": upgrade(drop=("Upgrade",)),
        "no Connection": upgrade(drop=("Connection",)),
        "garbage": b"hello\r\n\r\n",
    }
    for name, raw in cases.items():
        st, _, _ = request(ctx, raw)
        assert st in (400, 405, 426), f"{name}: {st}"


def case_handshake_too_large(ctx):
    """An upgrade request over 8 KiB -> 431."""
    st, _, _ = request(ctx, upgrade(extra="X-Pad: " + "p" * 9000 + "\r\n"))
    assert st == 431, st


def case_handshake_too_many_headers(ctx):
    """More than 64 header lines -> 431."""
    extra = "".join(f"X-H{i}: {i}\r\n" for i in range(100))
    st, _, _ = request(ctx, upgrade(extra=extra))
    assert st == 431, st


def case_handshake_comma_lists(ctx):
    """Connection and Upgrade are token lists, compared case-insensitively
    (Firefox sends 'Connection: keep-alive, Upgrade')."""
    import base64
    key = base64.b64encode(os.urandom(16)).decode()
    raw = (f"GET / HTTP/1.1\r\nhost: x\r\nupgrade: WebSocket\r\n"
           f"connection: keep-alive, Upgrade\r\nsec-websocket-key: {key}\r\n"
           "sec-websocket-version: 13\r\n\r\n").encode()
    ws = RawWS(ctx.srv.port, handshake=False)
    try:
        ws.send_raw(raw)
        assert ws.read_response() == 101
    finally:
        ws.close()


def case_bystander_survived(ctx):
    ctx.check_bystander()


def setup():
    return Ctx()


def teardown(ctx):
    ctx.bystander.close()
    try:
        ctx.small.finish()
        ctx.nolimit.finish()
    finally:
        ctx.srv.finish()


MIN_CASES = 39  # the case_* functions above: fewer means some were lost


if __name__ == "__main__":
    run_cases(globals(), setup, teardown, minimum=MIN_CASES)
