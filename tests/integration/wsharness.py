"""Shared helpers for the integration tests (not a test itself).

- free_port(), wait_listening(): pick a port, wait (bounded) for a listener.
- Proc: a child process we started, stopped by its own PID only.
- RawWS: a hand-written WebSocket client over a plain socket, for sending
  what well-behaved libraries refuse to send (bad frames, bad close codes).
- Runner: runs the case_* functions of a test module, prints one line per
  case and a summary, exits 1 if any case failed.
- TLS: with WS_TLS_CERT, WS_TLS_KEY and WS_TLS_CA set (test_tls.py sets
  them), EchoServer passes --tls-cert/--tls-key and RawWS speaks TLS with
  that CA, so a suite written for ws:// runs over wss:// unchanged;
  make_certs() makes a throwaway CA and server certificate with openssl.

Every wait here is bounded: sockets have timeouts, processes are waited for
with a timeout and killed when it passes.
"""
import atexit
import base64
import hashlib
import os
import select
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLE_BIN = os.path.join(ROOT, os.environ.get("EXAMPLE_BIN", "examples"))
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TLS_CERT = os.environ.get("WS_TLS_CERT")
TLS_KEY = os.environ.get("WS_TLS_KEY")
TLS_CA = os.environ.get("WS_TLS_CA")


def tls_client_context(ca=None):
    """A client context trusting only `ca` (default: $WS_TLS_CA)."""
    return ssl.create_default_context(cafile=ca or TLS_CA)


def make_certs(d, cn="localhost"):
    """A throwaway CA and a server certificate for `cn`, localhost and
    127.0.0.1 signed by it, made with the openssl command in directory d:
    (ca.pem, server cert, server key)."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True,
                       capture_output=True, timeout=60)
    if not os.path.exists(os.path.join(d, "ca.pem")):
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
            "ca.key", "-out", "ca.pem", "-days", "2", "-subj",
            "/CN=wsmsg test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", cn + ".key",
        "-out", cn + ".csr", "-subj", "/CN=" + cn)
    with open(os.path.join(d, cn + ".ext"), "w") as f:
        f.write(f"subjectAltName=DNS:{cn},DNS:localhost,IP:127.0.0.1\n"
                "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", cn + ".csr", "-CA", "ca.pem", "-CAkey",
        "ca.key", "-CAcreateserial", "-out", cn + ".pem", "-days", "2",
        "-extfile", cn + ".ext")
    return (os.path.join(d, "ca.pem"), os.path.join(d, cn + ".pem"),
            os.path.join(d, cn + ".key"))

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA


def binary(name):
    path = os.path.join(EXAMPLE_BIN, name)
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is missing: run `make all` first")
    return path


def free_port():
    """A port that was free a moment ago (bind to port 0, read, release)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port, proc=None, timeout=10.0):
    """Poll connect() until something listens on port (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} "
                               "before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listening on port {port} after {timeout}s")


def accept_key(key):
    return base64.b64encode(
        hashlib.sha1((key + GUID).encode()).digest()).decode()


_started = []  # every Proc of this test process, killed at exit if alive


@atexit.register
def _kill_leftovers():
    for proc in _started:
        if proc.p.poll() is None:
            proc.p.kill()  # by PID: only what we started
            try:
                proc.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


def _on_sigterm(signum, frame):
    # run.sh's `timeout` stops us with SIGTERM: unwind (finally blocks,
    # teardown, atexit) so that no server we started is left behind
    raise SystemExit(f"stopped by signal {signum}")


signal.signal(signal.SIGTERM, _on_sigterm)


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "WARNING: AddressSanitizer")


# Under check-asan a sanitizer abort must not pass for an expected exit 1
# (ASan's default exit status): every child we start reports with 86.
SANITIZER_EXIT = 86
for _var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
    _cur = os.environ.get(_var, "")
    if "exitcode=" not in _cur:
        os.environ[_var] = (_cur + ":" if _cur else "") + \
            f"exitcode={SANITIZER_EXIT}"


def sanitizer_report(text):
    """The first line of a sanitizer report in `text` (a process's stderr),
    or None.  A report fails the test even when the exit status is 0."""
    for line in text.splitlines():
        if any(m in line for m in SANITIZER_MARKS):
            return line.strip()
    return None


class Proc:
    """A child process we started; stopped by its PID, never by name."""

    def __init__(self, argv, stdin=None):
        self.argv = argv
        self.errf = tempfile.TemporaryFile()
        self.p = subprocess.Popen(argv, stdin=stdin or subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=self.errf)
        _started.append(self)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def stderr(self):
        self.errf.seek(0)
        return self.errf.read().decode(errors="replace")

    def send_signal(self, sig):
        if self.alive():
            os.kill(self.p.pid, sig)

    def wait(self, timeout):
        """Exit status, or None if it did not exit within timeout."""
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        """Signal, wait (bounded), kill if needed; returns the exit status."""
        if not self.alive():
            return self.p.returncode
        self.send_signal(sig)
        rc = self.wait(timeout)
        if rc is None:
            self.p.kill()
            self.p.wait(timeout=5)
            raise AssertionError(f"{self.argv[0]} ignored signal {sig} for "
                                 f"{timeout}s; killed")
        return rc


# Which echo server the suites drive: echo_server (epoll) or uv_echo_server
# (libuv); run.sh runs the echo suites against both.
ECHO_SERVER = os.environ.get("ECHO_SERVER", "echo_server")


class EchoServer(Proc):
    """examples/echo_server (or $ECHO_SERVER, or `name`: another example
    server taking the same options) on 127.0.0.1 and a free port."""

    def __init__(self, *args, name=None):
        self.port = free_port()
        self.name = name or ECHO_SERVER
        tls = ["--tls-cert", TLS_CERT, "--tls-key", TLS_KEY] \
            if TLS_CERT else []
        super().__init__([binary(self.name), "--host", "127.0.0.1",
                          "--port", str(self.port), *tls, *args])
        wait_listening(self.port, self.p)

    @property
    def url(self):
        if TLS_CERT:
            return f"wss://localhost:{self.port}"
        return f"ws://127.0.0.1:{self.port}"

    def finish(self):
        """Stop with SIGTERM and check the exit status is 0 (no sanitizer
        report, no crash)."""
        rc = self.stop()
        err = self.stderr()
        assert rc == 0, f"{self.name} exited {rc}:\n{err[-3000:]}"
        bad = sanitizer_report(err)
        assert bad is None, f"{self.name}: {bad}\n{err[-3000:]}"


# ---- what the server has not read yet ------------------------------------------

_NETLINK_SOCK_DIAG, _SOCK_DIAG_BY_FAMILY = 4, 20
_diag = []  # one netlink socket, opened on first use


def _tcp_diag(local, remote):
    """(unread bytes, bytes received) of the IPv4 TCP socket local -> remote
    (any process's socket, such as a server's end of our connection), from
    the kernel's sock_diag with tcp_info; None when the kernel cannot
    tell."""
    try:
        if not _diag:
            _diag.append(socket.socket(socket.AF_NETLINK, socket.SOCK_RAW,
                                       _NETLINK_SOCK_DIAG))
        nl = _diag[0]
        sockid = (struct.pack("!HH", local[1], remote[1]) +
                  socket.inet_aton(local[0]) + bytes(12) +
                  socket.inet_aton(remote[0]) + bytes(12) +
                  struct.pack("=I", 0) + b"\xff" * 8)  # no cookie check
        req = struct.pack("=BBBBI", socket.AF_INET, socket.IPPROTO_TCP,
                          1 << (2 - 1),  # INET_DIAG_INFO: tcp_info
                          0, 0xFFFFFFFF) + sockid
        nl.send(struct.pack("=IHHII", 16 + len(req), _SOCK_DIAG_BY_FAMILY,
                            1, 0, 0) + req)
        d = nl.recv(65536)
        if struct.unpack_from("=H", d, 4)[0] != _SOCK_DIAG_BY_FAMILY:
            return None
        unread = struct.unpack_from("=I", d, 16 + 56)[0]
        off, end = 16 + 72, struct.unpack_from("=I", d)[0]
        while off + 4 <= end:  # rtattrs after inet_diag_msg
            alen, atype = struct.unpack_from("=HH", d, off)
            if alen < 4:
                break
            if atype == 2 and alen - 4 >= 136:
                return unread, struct.unpack_from("=Q", d, off + 4 + 128)[0]
            off += (alen + 3) & ~3
        return None
    except (OSError, struct.error):
        return None


def wait_peer_read(sock, timeout=1.0):
    """Bounded poll until every byte written on `sock` has been read by the
    process at the other end: its socket received all we sent and holds no
    unread byte.  Lets a test make each write a separate read() in the
    server.  False if that was not seen within `timeout` (or the kernel
    cannot tell: then the test goes on without the guarantee)."""
    me, peer = sock.getsockname(), sock.getpeername()
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
        sent, retrans = struct.unpack_from("=QQ", info, 200)
    except (OSError, struct.error):
        return False
    deadline = time.monotonic() + timeout
    polls = 0
    while True:
        theirs = _tcp_diag(peer, me)
        if theirs is None:
            return False
        if theirs[0] == 0 and theirs[1] >= sent - retrans:
            return True
        if time.monotonic() > deadline:
            return False
        polls += 1
        if polls > 20:
            time.sleep(0.0002)


# ---- a raw WebSocket client -------------------------------------------------

class Closed(Exception):
    """The peer closed the TCP connection."""


class RawWS:
    """A WebSocket client speaking bytes on a plain socket (blocking, with a
    timeout on every read)."""

    def __init__(self, port, path="/", timeout=20.0, handshake=True,
                 extra_headers=()):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=timeout)
        if TLS_CA:  # the server under test speaks TLS (WS_TLS_*)
            self.sock = tls_client_context().wrap_socket(
                self.sock, server_hostname="localhost")
        self.sock.settimeout(timeout)
        self.buf = b""
        self.status = None
        self.headers = {}
        self.body = b""
        if handshake:
            key = base64.b64encode(os.urandom(16)).decode()
            req = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\n"
                   "Sec-WebSocket-Version: 13\r\n")
            for h in extra_headers:
                req += h + "\r\n"
            self.send_raw((req + "\r\n").encode())
            self.read_response()
            assert self.status == 101, f"handshake status {self.status}"
            assert self.headers.get("sec-websocket-accept") == accept_key(key)

    # -- bytes
    def send_raw(self, data):
        self.sock.sendall(data)

    def send_read(self, data):
        """Send, then wait (bounded) until the server has read it all, so
        that the next write arrives in a read() of its own."""
        self.sock.sendall(data)
        wait_peer_read(self.sock)

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise Closed()
        self.buf += d

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self):
        """Read an HTTP response head (and a Content-Length body)."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        self.status = int(lines[0].split(" ")[1])
        self.headers = {}
        for ln in lines[1:]:
            k, v = ln.split(":", 1)
            self.headers[k.strip().lower()] = v.strip()
        n = int(self.headers.get("content-length", "0"))
        self.body = self._take(n)
        return self.status

    # -- frames
    @staticmethod
    def frame(opcode, payload=b"", fin=True, rsv=0, mask=True, length=None):
        """Encode one frame; `length` overrides the length field."""
        if isinstance(payload, str):
            payload = payload.encode()
        n = len(payload) if length is None else length
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        mbit = 0x80 if mask else 0
        if n < 126:
            head = struct.pack("!BB", b0, mbit | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, mbit | 126, n)
        else:
            head = struct.pack("!BBQ", b0, mbit | 127, n)
        if mask:
            key = os.urandom(4)
            body = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) \
                if len(payload) < 4096 else _mask_fast(payload, key)
            return head + key + body
        return head + payload

    def send_frame(self, opcode, payload=b"", **kw):
        self.send_raw(self.frame(opcode, payload, **kw))

    def recv_frame(self):
        """(fin, rsv, opcode, payload) of the next frame from the server."""
        b0, b1 = self._take(2)
        assert not (b1 & 0x80), "server sent a masked frame"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._take(2))[0]
            assert n >= 126, f"server sent a 16-bit length for {n} bytes"
        elif n == 127:
            n = struct.unpack("!Q", self._take(8))[0]
            assert 65536 <= n < 1 << 63, \
                f"server sent a 64-bit length for {n} bytes"  # RFC 6455 5.2
        return bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, self._take(n)

    def recv_message(self):
        """(opcode, payload) of the next data message, failing on close."""
        op0, data = None, b""
        while True:
            fin, _, op, payload = self.recv_frame()
            if op == OP_CLOSE:
                raise AssertionError(f"unexpected close {parse_close(payload)}")
            if op >= 8:
                continue
            op0 = op if op0 is None else op0
            data += payload
            if fin:
                return op0, data

    def expect_close(self, data_ok=False):
        """Read frames until a close frame; returns its (code, reason).
        Pings and pongs on the way are skipped.  A data frame fails at once
        unless `data_ok`: a server that answers a message it should have
        refused (an echo instead of 1007 or 1009) is wrong from that frame
        on, and waiting would only end in the read timeout (20 s a case
        under make check-mutations).  The socket's timeout bounds the
        whole wait, not each read: pings on the way (the server's default
        keepalive) do not extend it."""
        t = self.sock.gettimeout()
        end = time.monotonic() + t if t else None
        try:
            while True:
                if end is not None:
                    left = end - time.monotonic()
                    if left <= 0:
                        raise socket.timeout(f"no close frame within {t} s")
                    self.sock.settimeout(left)
                fin, _, op, payload = self.recv_frame()
                if op == OP_CLOSE:
                    return parse_close(payload)
                if op < 8 and not data_ok:
                    raise AssertionError(
                        f"expected a close frame, got a data frame (opcode "
                        f"{op}, {len(payload)} bytes: {payload[:60]!r})")
        finally:
            self.sock.settimeout(t)

    def expect_eof(self):
        """The server closes the TCP connection (bounded by the timeout)."""
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return
        except ConnectionResetError:
            return

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def _mask_fast(payload, key):
    k = int.from_bytes(key * ((len(payload) + 3) // 4), "big")
    k >>= 8 * ((4 - len(payload) % 4) % 4)
    return (int.from_bytes(payload, "big") ^ k).to_bytes(len(payload), "big")


def parse_close(payload):
    """(code, reason) of a close payload; (1005, '') if empty."""
    if len(payload) == 0:
        return 1005, ""
    code = struct.unpack("!H", payload[:2])[0]
    return code, payload[2:].decode("utf-8")


def close_payload(code, reason=b""):
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack("!H", code) + reason


# ---- a tiny test runner ------------------------------------------------------

def run_one(label, fn, *args):
    """Run one case: print PASS/FAIL with its time (and the traceback when
    VERBOSE is set); True if it passed."""
    t = time.monotonic()
    try:
        fn(*args)
        print(f"  PASS {label} ({time.monotonic() - t:.2f}s)", flush=True)
        return True
    except Exception as e:  # noqa: BLE001 - report every failure
        print(f"  FAIL {label} ({time.monotonic() - t:.2f}s): "
              f"{type(e).__name__}: {e}", flush=True)
        if os.environ.get("VERBOSE"):
            traceback.print_exc()
        return False


def count_ok(name, total, minimum):
    """A run that ran nothing proves nothing: False (with the reason
    printed) when no case ran (a CASE filter that matches nothing) or, with
    no filter, fewer than the `minimum` cases the suite is known to have."""
    only = os.environ.get("CASE")
    if total == 0:
        print(f"{name}: FAIL: no case ran"
              + (f" (CASE={only!r} matches nothing)" if only else ""),
              flush=True)
        return False
    if not only and total < minimum:
        print(f"{name}: FAIL: {total} cases, the suite has at least "
              f"{minimum}", flush=True)
        return False
    return True


def ci_skip(what):
    """Something the suite should run is unavailable: a skip outside CI,
    a failure (exit 1) when CI=true, where a skip would be a green run that
    ran nothing.  Returns only when skipping is allowed."""
    if os.environ.get("CI") == "true":
        print(f"FAIL: {what} (CI=true: a skip is a failure)", flush=True)
        sys.exit(1)
    print(f"SKIP: {what}", flush=True)


def run_cases(module_globals, setup=None, teardown=None, minimum=1):
    """Run every case_* function in definition order.  `setup` returns a
    context object passed to each case; `teardown(ctx)` runs at the end.
    Fails when no case ran, or fewer than `minimum` without a CASE
    filter."""
    name = os.path.basename(module_globals.get("__file__", "?"))
    only = os.environ.get("CASE")  # run one case alone: CASE=case_x
    cases = [(k, v) for k, v in module_globals.items()
             if k.startswith("case_") and callable(v)
             and (not only or k == only)]
    print(f"{name}: {len(cases)} cases", flush=True)
    if not count_ok(name, len(cases), minimum):
        sys.exit(1)
    ctx = setup() if setup else None
    failed = []
    t0 = time.monotonic()
    try:
        for k, fn in cases:
            if not run_one(k, fn, *((ctx,) if setup else ())):
                failed.append(k)
    finally:
        if teardown:
            try:
                teardown(ctx)
            except Exception as e:  # noqa: BLE001
                failed.append("teardown")
                print(f"  FAIL teardown: {type(e).__name__}: {e}", flush=True)
    total = len(cases)
    print(f"{name}: {total - len([f for f in failed if f != 'teardown'])}"
          f"/{total} passed in {time.monotonic() - t0:.1f}s"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""), flush=True)
    sys.exit(1 if failed else 0)
