"""Attack suite: one hostile client against the example servers (issue 20).

Each case starts its own server on 127.0.0.1 and a free port, attacks it,
measures the server from /proc (CPU seconds per wall second from
/proc/PID/stat, VmRSS from /proc/PID/status, open descriptors from
/proc/PID/fd) and what a normal client sees meanwhile (echo round trips),
and stops the server by its PID (also when the case fails).  Every wait is
bounded; the whole suite takes about two minutes.

    make check-attacks                     # the suite, against examples/
    EXAMPLE_BIN=/some/dir make check-attacks   # other binaries (e.g. main's)
    /usr/bin/python3 tests/attacks/attacks.py [-v] [CASE ...]

A case listed in XFAIL needs a library change that has not landed yet (a
memory budget, safe default timeouts, ...): it runs, and the report says
"xfail" when it fails as expected and "XPASS" when it passes (then take it
off the list).  Only unexpected failures make the exit status 1.  Options
that a binary does not have (an older build) are left out of its command
line, so the same case shows the failure instead of a usage error.

Numbers are printed per case ("metrics"); docs/reliability.md has a before
and after table made with this suite.
"""
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import wsharness as H  # noqa: E402

# Cases that need a library change not made yet (issue 20's cases all
# pass now; f6_json_cpu_max_size left the list after quiet-machine runs,
# docs/reliability.md).
XFAIL = {}

CLK_TCK = os.sysconf("SC_CLK_TCK")
MiB = 1 << 20
VERBOSE = False


def log(*a):
    if VERBOSE:
        print("     ", *a, flush=True)


# ---- measuring a process -------------------------------------------------------

def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def nfds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_rate(pid, seconds):
    """CPU seconds the process used per wall second over `seconds`."""
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)  # a measurement window, not synchronisation
    return (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def wait_until(pred, timeout, step=0.05):
    """Poll `pred` (bounded); the time it took, or None if it never held."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(step)
    # once more at the end: a timeout of 0 (a generator case judged after
    # its deadline, f3_idle_defaults) still looks
    return time.monotonic() - t0 if pred() else None


# ---- servers ---------------------------------------------------------------------

_help_cache = {}


def supports(name, flag):
    """Whether example `name` has option `flag` (from its --help)."""
    if name not in _help_cache:
        r = subprocess.run([H.binary(name), "--help"], capture_output=True,
                           timeout=10)
        _help_cache[name] = (r.stdout + r.stderr).decode(errors="replace")
    return flag in _help_cache[name]


class Server(H.Proc):
    """An example server on a free port.  `opt` holds (flag, value) pairs
    that are passed only if the binary knows the flag; `nofile` sets
    RLIMIT_NOFILE (soft and hard) through prlimit, which execs the server
    (same PID)."""

    def __init__(self, name, *args, opt=(), nofile=None, env=None,
                 positional=False):
        self.name, self.port = name, H.free_port()
        argv = [H.binary(name), "--host", "127.0.0.1", "--port",
                str(self.port), *args]
        if positional:  # minimal_server PORT [PING_MS]
            argv = [H.binary(name), str(self.port), *args]
        self.missing = []
        for flag, value in opt:
            if supports(name, flag):
                argv += [flag, str(value)]
            else:
                self.missing.append(flag)
        if nofile:
            argv = ["prlimit", f"--nofile={nofile}:{nofile}", "--"] + argv
        self.argv = argv
        self.errf = tempfile.TemporaryFile()
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=self.errf,
                                  env=env)
        H._started.append(self)
        H.wait_listening(self.port, self.p)
        self.base_fds = nfds(self.pid)

    def stderr_bytes(self):
        self.errf.seek(0)
        return self.errf.read()

    def finish(self):
        """SIGTERM, and the exit status must be 0 (no crash, no sanitizer
        report)."""
        rc = self.stop()
        assert rc == 0, f"{self.name} exited {rc}:\n" + \
            self.stderr_bytes()[-2000:].decode(errors="replace")


class Clients:
    """Sockets a case opened; all closed at the end of the case."""

    def __init__(self):
        self.socks = []

    def add(self, s):
        self.socks.append(s)
        return s

    def close_all(self):
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass
        self.socks = []


def handshake(port, path="/", rcvbuf=None, timeout=5.0):
    """A connected, upgraded plain socket (blocking with a timeout)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
               ).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(1)  # byte by byte: leave any frame after it unread
        if not d:
            raise AssertionError("closed during the handshake")
        head += d
    status = int(head.split(b" ", 2)[1])
    if status != 101:
        raise AssertionError(f"handshake status {status}")
    return s


def frame(op, payload=b"", fin=True, rsv=0, length=None):
    """A client frame with a zero mask key (legal, and the payload is sent
    as is: fast for megabytes)."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    if n < 126:
        head = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
    return head + b"\0\0\0\0" + payload


class Prober:
    """A normal client: echo round trips on `path`, one at a time."""

    def __init__(self, port, path="/"):
        self.ws = H.RawWS(port, path, timeout=5.0)
        self.ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def rtts(self, n=200, max_seconds=5.0):
        """Round-trip times in ms of up to n 16-byte echoes; a reply that
        does not come within 5 s fails the case."""
        out, t_end = [], time.monotonic() + max_seconds
        for i in range(n):
            if time.monotonic() > t_end:
                break
            t = time.monotonic()
            self.ws.send_raw(frame(H.OP_TEXT, b"probe-%010d" % i))
            op, data = self.ws.recv_message()
            out.append((time.monotonic() - t) * 1000)
            assert data == b"probe-%010d" % i, "wrong echo"
        return out

    def close(self):
        self.ws.close()


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def latency(port, path="/", n=200, max_seconds=5.0):
    pr = Prober(port, path)
    try:
        r = pr.rtts(n, max_seconds)
    finally:
        pr.close()
    return {"p50_ms": round(pct(r, 50), 2), "p99_ms": round(pct(r, 99), 2),
            "n": len(r)}


def send_all(sock, data, timeout=10.0):
    """sendall with a bound; returns the bytes sent (less if the peer
    stopped reading for `timeout`)."""
    sock.settimeout(timeout)
    sent = 0
    view = memoryview(data)
    try:
        while sent < len(data):
            sent += sock.send(view[sent:sent + MiB])
    except (socket.timeout, BlockingIOError):
        pass
    return sent


class Case:
    """What a case reports: metrics and failed criteria."""

    def __init__(self, name):
        self.name, self.metrics, self.failures = name, {}, []

    def check(self, ok, what):
        if not ok:
            self.failures.append(what)
        return ok


# ---- the cases -----------------------------------------------------------------------
# Each takes a Case, fills metrics, records failed criteria with c.check.

CPU_IDLE = 0.10  # CPU s per wall s that counts as "not spinning"


def _half_closed_reader(c, srv, path, payloads, settle=0.5):
    cl = Clients()
    try:
        s = cl.add(handshake(srv.port, path, rcvbuf=4096))
        for p in payloads:
            send_all(s, p, timeout=5.0)
        s.shutdown(socket.SHUT_WR)  # and never read
        t_shut = time.monotonic()
        time.sleep(settle)  # let the server read the EOF (a window start)
        c.metrics["fds_open"] = nfds(srv.pid) - srv.base_fds
        rate = cpu_rate(srv.pid, 2.0)
        c.metrics["cpu_s_per_s"] = round(rate, 3)
        c.check(rate < CPU_IDLE, f"server CPU {rate:.2f} s/s while a "
                "half-closed client does not read (spinning)")
        lat = latency(srv.port, path if path.endswith("echo") else "/ws/echo"
                      if srv.name == "demo_server" else "/")
        c.metrics.update(lat)
        # --drain-timeout 2000: the connection must be freed soon after
        t = wait_until(lambda: nfds(srv.pid) <= srv.base_fds, 4.0)
        c.metrics["freed_after_s"] = (round(time.monotonic() - t_shut, 1)
                                      if t is not None else "never")
        c.check(t is not None, "the half-closed connection was not freed "
                "within the drain timeout")
    finally:
        cl.close_all()


def case_f1_half_closed_echo(c, name="echo_server"):
    """Finding 1: fill the output, shutdown(SHUT_WR), never read."""
    srv = Server(name, opt=[("--drain-timeout", 2000)])
    try:
        # 4 x 1 MiB: under echo_server's 8 MiB backpressure limit
        msgs = [frame(H.OP_BINARY, b"x" * MiB) for _ in range(4)]
        _half_closed_reader(c, srv, "/", msgs)
    finally:
        srv.finish()


def case_f1_half_closed_uv(c):
    case_f1_half_closed_echo(c, "uv_echo_server")


def case_f1_half_closed_json(c):
    """Finding 1 on /ws/json-demo: 160 KB of `{}`, each answered with a
    254-byte validation error, then shutdown(SHUT_WR)."""
    srv = Server("demo_server", "--quiet", opt=[("--drain-timeout", 2000)])
    try:
        msgs = [frame(H.OP_TEXT, b"{}") * 20000]
        _half_closed_reader(c, srv, "/ws/json-demo", msgs)
    finally:
        srv.finish()


def case_f1_f2_minimal_server(c):
    """Findings 1 and 2 against the README's loop (minimal_server): a
    half-closed peer that does not read its echoes, then 20 connections
    failed with unread input.  It has no drain deadline (wsmsg's, once the
    library has one), so only the CPU is judged."""
    srv = Server("minimal_server", positional=True)
    cl = Clients()
    try:
        s = cl.add(handshake(srv.port, "/ws/chat", rcvbuf=4096))
        send_all(s, frame(H.OP_TEXT, b"x" * (MiB - 64)) * 4, timeout=5.0)
        s.shutdown(socket.SHUT_WR)
        time.sleep(0.5)
        rate = cpu_rate(srv.pid, 1.5)
        c.metrics["half_closed_cpu_s_per_s"] = round(rate, 3)
        c.check(rate < CPU_IDLE, f"CPU {rate:.2f} s/s with a half-closed "
                "peer that does not read (spinning)")
        for _ in range(20):
            x = cl.add(handshake(srv.port, "/ws/chat", rcvbuf=4096))
            send_all(x, frame(H.OP_TEXT, b"y" * (MiB - 64)) * 3, timeout=3.0)
            x.sendall(frame(H.OP_TEXT, b"bad", rsv=4) + b"\x81")
        time.sleep(0.5)
        rate = cpu_rate(srv.pid, 1.5)
        c.metrics["failed_cpu_s_per_s"] = round(rate, 3)
        c.check(rate < CPU_IDLE, f"CPU {rate:.2f} s/s with failed "
                "connections holding unread input (spinning)")
        c.metrics.update(latency(srv.port, "/ws/chat"))
    finally:
        cl.close_all()
        srv.stop()


def _fail_with_unread_input(port):
    """Fill our output, break a rule, then send one more byte: the server
    fails the connection and stops reading, and there is input it will
    never read."""
    s = handshake(port, "/", rcvbuf=4096)
    send_all(s, frame(H.OP_BINARY, b"y" * (MiB - 64)) * 3, timeout=3.0)
    s.sendall(frame(H.OP_TEXT, b"bad", rsv=4))  # RSV bit: 1002
    s.sendall(b"\x81")  # one more byte
    return s


def case_f2_close_timeout_busy(c, name="echo_server", conns=50):
    """Finding 2: connections that failed with unread input during the
    close timeout; a normal client's latency meanwhile."""
    srv = Server(name, "--close-timeout", "6000")
    cl = Clients()
    try:
        c.metrics["base"] = latency(srv.port)
        for _ in range(conns):
            cl.add(_fail_with_unread_input(srv.port))
        time.sleep(0.5)
        rate = cpu_rate(srv.pid, 2.0)
        c.metrics["cpu_s_per_s"] = round(rate, 3)
        c.check(rate < CPU_IDLE, f"server CPU {rate:.2f} s/s during the "
                "close timeout of failed connections (spinning)")
        lat = latency(srv.port)
        c.metrics["attacked"] = lat
        c.check(lat["p99_ms"] < 50, f"normal client p99 {lat['p99_ms']} ms "
                "under attack")
    finally:
        cl.close_all()
        srv.finish()


def case_f2_close_timeout_uv(c):
    case_f2_close_timeout_busy(c, "uv_echo_server")


def case_f3_descriptor_exhaustion(c, name="echo_server"):
    """Finding 3: accept fails with EMFILE.  The server must not spin, a
    new client must learn its fate quickly (refused, not left hanging),
    and once descriptors are free again new clients are served."""
    srv = Server(name, nofile=64)
    cl = Clients()
    try:
        for _ in range(2):  # more than the server has descriptors for
            for _ in range(50):
                cl.add(socket.create_connection(("127.0.0.1", srv.port),
                                                timeout=2))
            time.sleep(0.3)  # (the second batch takes slots freed meanwhile)
        rate = cpu_rate(srv.pid, 2.0)
        c.metrics["cpu_s_per_s"] = round(rate, 3)
        c.check(rate < CPU_IDLE, f"server CPU {rate:.2f} s/s at descriptor "
                "exhaustion (spinning)")
        # a new client learns its fate within 2 s: served (a slot was
        # free) or refused (EOF/reset), not left hanging in the backlog
        t0 = time.monotonic()
        fate = _fate(srv.port)
        c.metrics["new_client"] = f"{fate} in {time.monotonic() - t0:.2f}s"
        c.check(fate != "hung", "a new client hung at descriptor exhaustion")
        cl.close_all()  # descriptors come back (the server sees EOFs)
        t = wait_until(lambda: _serves(srv.port), 5.0, step=0.1)
        c.metrics["served_again_after_s"] = round(t, 2) if t is not None \
            else "never(>5s)"
        c.check(t is not None, "not serving again after the attackers left")
    finally:
        cl.close_all()
        srv.finish()


def case_f3_descriptor_exhaustion_uv(c):
    case_f3_descriptor_exhaustion(c, "uv_echo_server")


def _fate(port, timeout=2.0):
    """'served' (handshake and an echo), 'refused' (EOF or reset) or
    'hung' (nothing within `timeout`)."""
    try:
        ws = H.RawWS(port, "/", timeout=timeout)
        ws.send_raw(frame(H.OP_TEXT, b"hi"))
        ok = ws.recv_message() == (H.OP_TEXT, b"hi")
        ws.close()
        return "served" if ok else "wrong echo"
    except socket.timeout:
        return "hung"
    except (H.Closed, ConnectionError):
        return "refused"


def _serves(port):
    try:
        ws = H.RawWS(port, "/", timeout=1.0)
        ws.send_raw(frame(H.OP_TEXT, b"hi"))
        ok = ws.recv_message() == (H.OP_TEXT, b"hi")
        ws.close()
        return ok
    except (OSError, AssertionError, H.Closed):
        return False


def case_f3_max_conns(c, name="echo_server"):
    """Finding 3: --max-conns caps connections; one beyond is closed at
    once, the server does not spin, and a freed slot serves again."""
    srv = Server(name, opt=[("--max-conns", 10)])
    cl = Clients()
    try:
        c.check(not srv.missing, f"{name} has no --max-conns")
        for _ in range(10):
            cl.add(handshake(srv.port))
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=2)
        t0 = time.monotonic()
        s.settimeout(2.0)
        try:
            refused = s.recv(1) == b""
        except ConnectionResetError:
            refused = True
        except socket.timeout:
            refused = False
        s.close()
        c.metrics["eleventh"] = (f"refused in {time.monotonic() - t0:.2f}s"
                                 if refused else "not refused within 2 s")
        c.check(refused, "the 11th connection was not refused")
        rate = cpu_rate(srv.pid, 1.0)
        c.metrics["cpu_s_per_s"] = round(rate, 3)
        c.check(rate < CPU_IDLE, f"server CPU {rate:.2f} s/s at the cap")
        cl.socks.pop().close()
        t = wait_until(lambda: _serves(srv.port), 3.0, step=0.1)
        c.check(t is not None, "a freed slot did not serve a new client")
    finally:
        cl.close_all()
        srv.finish()


def case_f3_max_conns_uv(c):
    case_f3_max_conns(c, "uv_echo_server")


def _raw_upgrade(port, target):
    """An upgrade request for a raw request-target (bytes); the status."""
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n"
              b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              b"Sec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(1)
        if not d:
            break
        head += d
    return s, head


def case_f10_log_escape(c):
    """Finding 10: peer-controlled text (path, query, jansson's error text
    quoting the input) reaches the log escaped: no control bytes, no
    terminal escape sequences."""
    srv = Server("demo_server")  # logs one line per connection event
    socks = []
    try:
        # the handshake refuses bytes < 0x20 in the request line, but DEL,
        # 8-bit C1 controls (0x9b is CSI) and UTF-8-encoded ones
        # (U+009B: c2 9b, which UTF-8 terminals obey) pass
        target = b"/ws/json-demo?q=\x7fpwned\x9b2J\xc2\x9b31mFORGED"
        # a text message can hold any control character
        evil = b"\x1b]0;pwned\x07\x1b[2J\r\nFORGED "
        s, head = _raw_upgrade(srv.port, target)
        socks.append(s)
        c.metrics["status"] = head.split(b" ", 2)[1].decode() if head else "-"
        if head.startswith(b"HTTP/1.1 101"):
            # invalid JSON: jansson's error message quotes the bad token
            s.sendall(frame(H.OP_TEXT, b'{"user": ' + evil + b"}"))
            s.settimeout(3)
            s.recv(4096)  # the error reply
        s2, _ = _raw_upgrade(srv.port, b"/ws/echo\x9b2J")
        socks.append(s2)
        for x in socks:
            x.close()
        socks = []
        srv.finish()
        log_bytes = srv.stderr_bytes()
        bad = sorted({b for b in log_bytes
                      if (b < 0x20 and b not in (0x0a,)) or b >= 0x7f})
        c.metrics["log_bytes"] = len(log_bytes)
        c.metrics["raw_control_bytes"] = [hex(b) for b in bad]
        c.check(b"pwned" in log_bytes or b"FORGED" in log_bytes,
                "the request did not reach the log at all (nothing tested)")
        c.check(not bad, "raw control/non-ASCII bytes in the log: "
                + " ".join(hex(b) for b in bad))
    finally:
        for x in socks:
            x.close()
        if srv.alive():
            srv.stop()


def _dir_bytes(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))


def _upload_until_closed(port, size, limit_bytes):
    """Upload `size`-byte files on one connection until the server closes
    it or `limit_bytes` went out; (bytes sent, close code or None)."""
    s = handshake(port, "/ws/file-transfer")
    sent, code = 0, None
    payload = b"f" * size
    try:
        while sent < limit_bytes:
            s.sendall(frame(H.OP_BINARY, payload))
            sent += size
            s.settimeout(10)
            head = s.recv(2)
            if len(head) < 2 or head[0] & 0x0F == H.OP_CLOSE:
                rest = s.recv(125)
                code = struct.unpack("!H", rest[:2])[0] if len(rest) >= 2 \
                    else 1005
                break
            s.recv(head[1] & 0x7F)  # FILE_RECEIVED
    except (ConnectionError, socket.timeout):
        code = code or "reset"
    finally:
        s.close()
    return sent, code


def case_f8_file_quotas(c):
    """Finding 8: /ws/file-transfer with demo_server's defaults: one client
    uploading without end, then 40 stalled uploads, must stay within the
    default quotas (64 MiB per connection, 256 MiB in all); and a restart
    with the same --dir must not reuse names (1011 before)."""
    d = tempfile.mkdtemp(prefix="wsmsg-attack-files-")
    srv = None
    cl = Clients()
    try:
        srv = Server("demo_server", "--quiet", "--dir", d)
        t0 = time.monotonic()
        sent, code = _upload_until_closed(srv.port, 16 * MiB - 64, 384 * MiB)
        c.metrics["one_client"] = {"sent_mib": sent // MiB, "close": code,
                                   "stored_mib": _dir_bytes(d) // MiB,
                                   "s": round(time.monotonic() - t0, 1)}
        c.check(_dir_bytes(d) <= 64 * MiB, f"one connection stored "
                f"{_dir_bytes(d) // MiB} MiB (per-client quota 64 MiB)")
        for _ in range(40):  # stalled: 8 MiB of a message that never ends
            s = cl.add(handshake(srv.port, "/ws/file-transfer"))
            send_all(s, frame(H.OP_BINARY, b"s" * (8 * MiB), fin=False),
                     timeout=5.0)
        time.sleep(0.3)
        c.metrics["stalled_stored_mib"] = _dir_bytes(d) // MiB
        c.check(_dir_bytes(d) <= 256 * MiB, f"stalled uploads hold "
                f"{_dir_bytes(d) // MiB} MiB on disk (total quota 256 MiB)")
        cl.close_all()
        srv.finish()
        # restart with the same directory: the next upload gets a new name
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))
        srv = Server("demo_server", "--quiet", "--dir", d)
        _upload_until_closed(srv.port, 1000, 1000)
        srv.finish()
        srv = Server("demo_server", "--quiet", "--dir", d)
        sent, code = _upload_until_closed(srv.port, 1000, 1000)
        c.metrics["after_restart"] = "ok" if code is None else code
        c.check(code is None, f"upload after a restart closed with {code}")
        srv.finish()
    finally:
        cl.close_all()
        if srv and srv.alive():
            srv.stop()
        shutil.rmtree(d, ignore_errors=True)


def _wave(port, conns, size, path="/"):
    """`conns` connections that each send all but the last byte of a
    `size`-byte message (the server holds it unfinished); returns them."""
    socks = []
    head = frame(H.OP_BINARY, b"", length=size)
    body = b"w" * (size - 1)
    for _ in range(conns):
        s = handshake(port, path)
        s.sendall(head)
        socks.append(s)
    for s in socks:
        send_all(s, body, timeout=10.0)
    return socks


def case_f9_memory_returned(c, name="echo_server"):
    """Finding 9: after a 1,000-connection wave of ~1 MiB unfinished
    messages, all but one connection close; the server's RSS must go back
    down.  glibc kept ~1 GB before: one big message echoed earlier raises
    its mmap threshold (so the wave's buffers come from the heap), and the
    connection still open pins the heap's top, so nothing below it is given
    back without malloc_trim."""
    srv = Server(name)
    socks = []
    try:
        c.metrics["rss_idle_mib"] = round(rss_mib(srv.pid), 1)
        ws = H.RawWS(srv.port, "/", timeout=10)  # warm-up: one 1 MiB echo
        ws.send_raw(frame(H.OP_BINARY, b"m" * (MiB - 64)))
        ws.recv_message()
        ws.close()
        t0 = time.monotonic()
        socks = _wave(srv.port, 1000, MiB - 64)
        wait_until(lambda: rss_mib(srv.pid) > 900, 10.0)
        c.metrics["rss_peak_mib"] = round(rss_mib(srv.pid), 1)
        c.metrics["wave_s"] = round(time.monotonic() - t0, 1)
        for s in socks[:-1]:
            s.close()
        socks = socks[-1:]
        t = wait_until(lambda: nfds(srv.pid) <= srv.base_fds + 1, 10.0)
        c.check(t is not None, "the wave's connections were not all freed")
        # the loop trims at a quiet moment (200 ms without closes, at most
        # once a second): allow 3 s
        t = wait_until(lambda: rss_mib(srv.pid) < 64, 3.0)
        c.metrics["rss_after_mib"] = round(rss_mib(srv.pid), 1)
        c.metrics["returned_after_s"] = round(t, 2) if t is not None \
            else "not within 3 s"
        c.check(t is not None, f"RSS {rss_mib(srv.pid):.0f} MiB after 999 "
                "of the wave's 1,000 connections closed (ceiling 64 MiB)")
        c.metrics["after_wave_latency"] = latency(srv.port)
    finally:
        for s in socks:
            s.close()
        srv.finish()


def case_f9_memory_returned_uv(c):
    case_f9_memory_returned(c, "uv_echo_server")


def _hostile_server(reason):
    """A one-shot server on a free port: completes the handshake, sends a
    close frame with `reason` (bytes), closes.  Returns (port, thread)."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    ls.settimeout(10)

    def run():
        try:
            s, _ = ls.accept()
            s.settimeout(5)
            req = b""
            while b"\r\n\r\n" not in req:
                d = s.recv(4096)
                if not d:
                    return
                req += d
            key = [ln.split(b":", 1)[1].strip().decode()
                   for ln in req.split(b"\r\n")
                   if ln.lower().startswith(b"sec-websocket-key:")][0]
            s.sendall(b"HTTP/1.1 101 Switching Protocols\r\n"
                      b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Accept: " + H.accept_key(key).encode()
                      + b"\r\n\r\n")
            payload = struct.pack("!H", 4000) + reason
            s.sendall(bytes([0x88, len(payload)]) + payload)
            time.sleep(0.2)  # let the client answer before we close
            s.close()
        except OSError:
            pass
        finally:
            ls.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return ls.getsockname()[1], t


def case_f10_client_log_escape(c):
    """Finding 10 on the client side: echo_client prints the close reason a
    server sent; a reason with terminal control sequences (valid UTF-8:
    ESC, BEL, CSI as U+009B) must reach stderr escaped."""
    reason = b"\x1b]0;pwned\x07\x1b[2J\xc2\x9b31mbye"
    port, t = _hostile_server(reason)
    r = subprocess.run([H.binary("echo_client"), "--count", "1",
                        f"ws://127.0.0.1:{port}/"], input=b"",
                       capture_output=True, timeout=20)
    t.join(timeout=10)
    err = r.stderr
    bad = sorted({b for b in err if (b < 0x20 and b != 0x0a) or b >= 0x7f})
    c.metrics["stderr"] = err.decode("ascii", "backslashreplace")[:200]
    c.check(b"code 4000" in err, "echo_client did not report the close")
    c.check(not bad, "raw control bytes on echo_client's stderr: "
            + " ".join(hex(b) for b in bad))


def case_f8_ft_server_quotas(c):
    """Finding 8 on examples/file_transfer: 12 connections each announce a
    1 GiB file (and could then write it slowly); with the defaults at most
    8 GiB may be promised (--max-total), the rest get quota_exceeded."""
    d = tempfile.mkdtemp(prefix="wsmsg-attack-ft-")
    srv = Server("file_transfer/ft_server", "--dir", d)
    socks = []
    try:
        ready = refused = 0
        for _ in range(12):
            ws = H.RawWS(srv.port, "/upload", timeout=5)
            socks.append(ws)
            ws.send_frame(H.OP_TEXT, json.dumps(
                {"name": "big.bin", "size": 1 << 30, "sha256": "0" * 64}))
            r = json.loads(ws.recv_message()[1])
            if r.get("status") == "READY":
                ready += 1
            elif r.get("error") == "quota_exceeded":
                refused += 1
        c.metrics["ready"], c.metrics["quota_exceeded"] = ready, refused
        c.check(ready <= 8, f"{ready} uploads of 1 GiB accepted at once "
                "(default --max-total 8 GiB)")
    finally:
        for ws in socks:
            ws.close()
        srv.finish()
        shutil.rmtree(d, ignore_errors=True)


# ---- cases that waited on library work (issue 20; XFAIL until it landed) ---------

IDLE_FREE_S = 45  # python-websockets' keepalive frees a silent peer in 40 s


def case_f3_idle_defaults(c):
    """Finding 3, second half: with the defaults nothing times out an idle
    open connection, so idle sockets hold every descriptor.  A silent peer
    (handshake done, then nothing, no pong) must be freed within
    IDLE_FREE_S by default.  A generator: the runner starts it, runs the
    other cases meanwhile, and comes back to judge it; a watcher thread
    notes when the descriptor went, so the verdict is about that moment,
    not about when the other cases happened to end."""
    srv = Server("echo_server")
    s = handshake(srv.port)
    t0 = time.monotonic()
    freed = []
    done = threading.Event()

    def watch():  # bounded: IDLE_FREE_S + 15 s at the most
        t = wait_until(lambda: done.is_set() or nfds(srv.pid) <= srv.base_fds,
                       IDLE_FREE_S + 15, step=0.2)
        if t is not None and not done.is_set():
            freed.append(time.monotonic() - t0)

    w = threading.Thread(target=watch, daemon=True)
    w.start()
    yield  # the other cases run now
    try:
        w.join(max(0.0, IDLE_FREE_S + 16 - (time.monotonic() - t0)))
        c.metrics["freed_after_s"] = (round(freed[0], 1) if freed
                                      else "not freed")
        c.check(bool(freed) and freed[0] <= IDLE_FREE_S,
                "a silent connection was not freed by the default timeouts "
                f"within {IDLE_FREE_S} s ({c.metrics['freed_after_s']})")
    finally:
        done.set()
        s.close()
        srv.finish()


def case_f4_unfinished_messages(c):
    """Finding 4: 800 connections each hold an unfinished 1 MiB - 64
    message.  Target: RSS under 512 MiB (a server-wide budget refuses the
    rest) and a normal client's p99 echo under 50 ms meanwhile."""
    srv = Server("echo_server")
    socks = []
    try:
        socks = _wave(srv.port, 800, MiB - 64)
        time.sleep(0.5)
        lat = latency(srv.port)
        rss = rss_mib(srv.pid)
        c.metrics["rss_mib"] = round(rss, 1)
        c.metrics["open"] = nfds(srv.pid) - srv.base_fds
        c.metrics["latency"] = lat
        c.check(rss < 512, f"RSS {rss:.0f} MiB with 800 unfinished 1 MiB "
                "messages (target < 512 MiB)")
        c.check(lat["p99_ms"] < 50, f"p99 {lat['p99_ms']} ms under attack")
    finally:
        for x in socks:
            x.close()
        srv.finish()


def case_f5_slow_readers(c):
    """Finding 5: slow readers hold queued replies: 80 on /ws/echo push
    10 MiB each (8 MiB queued per connection by default, the rest dropped
    silently), 20 on /ws/json-demo send 320 KB of `{}` (27x amplified into
    error replies).  Target: RSS under 512 MiB, p99 under 50 ms."""
    srv = Server("demo_server", "--quiet")
    cl = Clients()
    try:
        msg = frame(H.OP_BINARY, b"r" * (MiB - 64))
        for _ in range(80):
            s = cl.add(handshake(srv.port, "/ws/echo", rcvbuf=4096))
            s.setblocking(False)
        js = frame(H.OP_TEXT, b"{}") * 40000
        for _ in range(20):
            s = cl.add(handshake(srv.port, "/ws/json-demo", rcvbuf=4096))
            send_all(s, js, timeout=5.0)
        for s in cl.socks[:80]:
            send_all(s, msg * 10, timeout=3.0)
        time.sleep(0.5)
        lat = latency(srv.port, "/ws/echo")
        rss = rss_mib(srv.pid)
        c.metrics["rss_mib"] = round(rss, 1)
        c.metrics["open"] = nfds(srv.pid) - srv.base_fds
        c.metrics["latency"] = lat
        c.check(rss < 512, f"RSS {rss:.0f} MiB with 100 slow readers "
                "(target < 512 MiB)")
        c.check(lat["p99_ms"] < 50, f"p99 {lat['p99_ms']} ms under attack")
    finally:
        cl.close_all()
        srv.finish()


def case_f6_json_cpu(c):
    """Finding 6: one client sends 1 MiB `[{},{},...]` messages back to
    back to /ws/json-demo (0.1-0.16 s of CPU and ~85 MB of heap each);
    a normal client's echo p99 must stay under 50 ms."""
    srv = Server("demo_server", "--quiet")
    stop = threading.Event()
    sent = [0]
    s = handshake(srv.port, "/ws/json-demo")
    body = b"[" + b"{}," * 349000 + b"{}]"
    msg = frame(H.OP_TEXT, body)

    def drain():
        s.settimeout(0.2)
        while not stop.is_set():
            try:
                if not s.recv(65536):
                    return
            except socket.timeout:
                continue
            except OSError:
                return

    def attack():
        try:
            while not stop.is_set():
                s.sendall(msg)
                sent[0] += 1
        except OSError:
            pass

    threads = [threading.Thread(target=drain, daemon=True),
               threading.Thread(target=attack, daemon=True)]
    try:
        c.metrics["base"] = latency(srv.port, "/ws/echo")
        for t in threads:
            t.start()
        time.sleep(0.5)
        c0, t0 = cpu_seconds(srv.pid), time.monotonic()
        lat = latency(srv.port, "/ws/echo", n=100, max_seconds=5.0)
        c.metrics["attacked"] = lat
        c.metrics["cpu_s_per_s"] = round((cpu_seconds(srv.pid) - c0)
                                         / (time.monotonic() - t0), 2)
        c.check(lat["p99_ms"] < 50, f"p99 {lat['p99_ms']} ms while one "
                "client sends 1 MiB JSON arrays")
    finally:
        stop.set()
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        for t in threads:
            t.join(timeout=10)
        s.close()
        c.metrics["messages_sent"] = sent[0]
        srv.finish()


def _json_attacker(port, msg, seconds, conns):
    """Child process: `conns` connections send `msg` back to back for
    `seconds` and read what comes back, with blocking sockets (a thread
    each way: no busy loop of ours competes with the server or the prober
    for the CPU), in its own process so that its threads do not take the
    GIL from the prober's round trips."""
    socks = [handshake(port, "/ws/json-demo") for _ in range(conns)]
    t_end = time.monotonic() + seconds
    sent = [0]

    def send(s):
        s.settimeout(1.0)
        try:
            while time.monotonic() < t_end:
                s.sendall(msg)
                sent[0] += 1
        except OSError:
            pass

    def recv(s):
        while time.monotonic() < t_end:
            try:
                if not s.recv(1 << 20):
                    return
            except socket.timeout:
                continue
            except OSError:
                return

    threads = [threading.Thread(target=f, args=(s,), daemon=True)
               for s in socks for f in (send, recv)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 5)
    for s in socks:
        s.close()
    os._exit(0 if sent[0] else 1)


def case_f6_json_cpu_max_size(c):
    """Finding 6 at the new default limit: one client sends valid
    MessageModel documents just under 64 KiB whose ignored extra property
    is `[{},{},...]` (~21k objects: the most parse work per byte), back to
    back, from another process.  Each is parsed and answered; a normal
    client's /ws/echo p99 must stay under 50 ms."""
    srv = Server("demo_server", "--quiet")
    pad = b"{}," * 21700
    body = (b'{"user":"u","content":"c","timestamp":1,"x":[' + pad +
            b'{}]}')
    assert len(body) <= 65536, len(body)
    msg = frame(H.OP_TEXT, body)
    pid = os.fork()
    if pid == 0:
        try:
            _json_attacker(srv.port, msg, 4.0, 1)
        except BaseException:  # noqa: BLE001 - the child reports by status
            traceback.print_exc()
        os._exit(2)
    try:
        time.sleep(0.5)
        c0, t0 = cpu_seconds(srv.pid), time.monotonic()
        lat = latency(srv.port, "/ws/echo", n=200, max_seconds=3.0)
        c.metrics["attacked"] = lat
        c.metrics["cpu_s_per_s"] = round((cpu_seconds(srv.pid) - c0)
                                         / (time.monotonic() - t0), 2)
        c.check(lat["p99_ms"] < 50, f"p99 {lat['p99_ms']} ms while a "
                "client sends 64 KiB worst-case JSON")
    finally:
        _, st = os.waitpid(pid, 0)
        c.metrics["attacker_exit"] = os.waitstatus_to_exitcode(st)
        c.check(c.metrics["attacker_exit"] == 0, "the attacker failed")
        c.metrics["message_bytes"] = len(body)
        srv.finish()


def case_f6_invalid_flood(c):
    """Finding 6, amplification: a flood of 8-byte `{}` frames on
    /ws/json-demo (each answered with a ~254-byte error reply) is cut off
    by the invalid-message limit (32 within 10 s by default): reply bytes
    stay bounded."""
    srv = Server("demo_server", "--quiet")
    try:
        s = handshake(srv.port, "/ws/json-demo")
        data = frame(H.OP_TEXT, b"{}") * 10000
        sent = send_all(s, data, timeout=3.0)
        got, t_end = b"", time.monotonic() + 5.0
        s.settimeout(0.5)
        while time.monotonic() < t_end:
            try:
                d = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not d:
                break
            got += d
        s.close()
        c.metrics.update(in_bytes=sent, out_bytes=len(got),
                         ratio=round(len(got) / max(1, sent), 2),
                         closed_1008=b"\x03\xf0" in got)
        c.check(len(got) < 16384, f"{len(got)} reply bytes for a flood of "
                f"{sent} bytes of invalid messages")
        c.check(b"\x03\xf0" in got, "no close 1008 after the flood")
    finally:
        srv.finish()


def case_f7_unknown_properties(c):
    """Finding 7: /ws/json-demo echoes properties MessageModel does not
    declare (the article's handler replies message.dict(): the model's
    fields only).  A 50 KB extra property (the JSON
    endpoints take 64 KiB by default) must not come back."""
    srv = Server("demo_server", "--quiet")
    try:
        ws = H.RawWS(srv.port, "/ws/json-demo", timeout=5)
        doc = {"user": "a", "content": "b", "timestamp": 1,
               "extra": [0.1] * 10000}
        data = json.dumps(doc).encode()
        ws.send_raw(frame(H.OP_TEXT, data))
        op, reply = ws.recv_message()
        ws.close()
        c.metrics["in_bytes"] = len(data)
        c.metrics["out_bytes"] = len(reply)
        c.check(b"extra" not in reply, f"the undeclared property came back "
                f"({len(reply)} bytes out for {len(data)} in)")
    finally:
        srv.finish()


def _push(socks, data, per_sock, seconds):
    """Round robin, non-blocking: push `data` into every socket until each
    took `per_sock` bytes or `seconds` passed (the server stops reading a
    slow reader once its output is over the limits).  Bytes pushed."""
    left = {s: per_sock for s in socks}
    for s in socks:
        s.setblocking(False)
    t_end, total = time.monotonic() + seconds, 0
    while left and time.monotonic() < t_end:
        moved = 0
        for s in list(left):
            try:
                n = s.send(data[:left[s]])
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                del left[s]
                continue
            left[s] -= n
            moved += n
            if left[s] <= 0:
                del left[s]
        total += moved
        if not moved:
            time.sleep(0.05)
    return total


def _full_size(c):
    """The issue's target at full size (ATTACK_FULL=1; too heavy for CI):
    demo_server with its defaults; 600 slow readers (480 on /ws/echo push
    10 MiB each with a 4 KiB receive buffer, 120 send 320 KB of `{}` on
    /ws/json-demo) and 2,000 connections each holding an unfinished
    1 MiB - 64 message on /ws/echo, all at once.  Target: RSS under
    512 MiB, a normal client's /ws/echo p99 under 50 ms meanwhile."""
    srv = Server("demo_server", "--quiet")
    cl = Clients()
    peak = [0.0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], rss_mib(srv.pid))
            except OSError:
                return
            time.sleep(0.1)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        t0 = time.monotonic()
        echo = [cl.add(handshake(srv.port, "/ws/echo", rcvbuf=4096))
                for _ in range(480)]
        js = [cl.add(handshake(srv.port, "/ws/json-demo", rcvbuf=4096))
              for _ in range(120)]
        pushed = _push(js, frame(H.OP_TEXT, b"{}") * 40000, 320000, 10.0)
        pushed += _push(echo, frame(H.OP_BINARY, b"r" * (MiB - 64)) * 10,
                        10 * MiB, 15.0)
        c.metrics["slow_pushed_mib"] = pushed // MiB
        head = frame(H.OP_BINARY, b"", length=MiB - 64)
        holders = []
        for _ in range(2000):
            s = cl.add(handshake(srv.port, "/ws/echo"))
            s.sendall(head)
            holders.append(s)
        c.metrics["held_pushed_mib"] = _push(
            holders, b"w" * (MiB - 65), MiB - 65, 25.0) // MiB
        c.metrics["setup_s"] = round(time.monotonic() - t0, 1)
        lat = latency(srv.port, "/ws/echo")
        rss = rss_mib(srv.pid)
        c.metrics.update(rss_mib=round(rss, 1), rss_peak_mib=round(peak[0], 1),
                         open=nfds(srv.pid) - srv.base_fds, latency=lat)
        c.check(peak[0] < 512, f"RSS peak {peak[0]:.0f} MiB (target < 512)")
        c.check(lat["p99_ms"] < 50, f"p99 {lat['p99_ms']} ms under attack")
    finally:
        stop.set()
        cl.close_all()
        srv.finish()


if os.environ.get("ATTACK_FULL"):
    case_f45_full_size = _full_size


def case_f10_upgrade_with_body(c):
    """Finding 10, second half: an upgrade GET with a body (Content-Length
    or chunked) must get 400, not have its body parsed as frames."""
    srv = Server("echo_server")
    try:
        got = {}
        for kind, hdr, body in [
                ("content-length", b"Content-Length: 6\r\n",
                 frame(H.OP_TEXT, b"")),
                ("chunked", b"Transfer-Encoding: chunked\r\n",
                 b"6\r\n" + frame(H.OP_TEXT, b"") + b"\r\n0\r\n\r\n")]:
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=3)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      b"Sec-WebSocket-Version: 13\r\n" + hdr + b"\r\n" + body)
            head = b""
            try:
                while b"\r\n\r\n" not in head:
                    d = s.recv(1)
                    if not d:
                        break
                    head += d
            except OSError:
                pass
            s.close()
            got[kind] = head.split(b" ", 2)[1].decode() if head else "-"
        c.metrics.update(got)
        for kind, status in got.items():
            c.check(status == "400", f"upgrade GET with a body "
                    f"({kind}) answered {status}")
    finally:
        srv.finish()


# ---- runner --------------------------------------------------------------------------

CASE_LIMIT_S = 180 if os.environ.get("ATTACK_FULL") else 60  # a case that
# takes longer fails (and its server is killed)


class CaseTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise CaseTimeout(f"case took more than {CASE_LIMIT_S}s")


def main(argv):
    global VERBOSE
    args = [a for a in argv if not a.startswith("-")]
    VERBOSE = "-v" in argv
    cases = [(n[5:], f) for n, f in globals().items()
             if n.startswith("case_") and callable(f)]
    # a generator case (f3_idle_defaults) first: it waits in the background
    cases.sort(key=lambda nf: not nf[1].__code__.co_flags & 0x20)
    if args:  # parts of names, or whole names with --exact
        exact = "--exact" in argv
        cases = [(n, f) for n, f in cases
                 if any(a == n if exact else a in n for a in args)]
        if len(cases) < (len(args) if exact else 1):
            print(f"attack suite: no case matches {args}", flush=True)
            return 1
    signal.signal(signal.SIGALRM, _alarm)
    t_all = time.monotonic()
    results = {"pass": [], "FAIL": [], "xfail": [], "XPASS": []}
    print(f"attack suite: {len(cases)} cases, binaries in {H.EXAMPLE_BIN}",
          flush=True)
    deferred = []  # (name, Case, generator, t, processes) to finish

    def report(name, c, dt):
        xf = name in XFAIL
        verdict = ("XPASS" if xf else "pass") if not c.failures else \
            ("xfail" if xf else "FAIL")
        results[verdict].append(name)
        print(f"  {verdict:5} {name} ({dt:.1f}s) {json.dumps(c.metrics)}",
              flush=True)
        for f in c.failures:
            print(f"        - {f}", flush=True)
        if xf and c.failures:
            print(f"        (expected until: {XFAIL[name]})", flush=True)

    def kill(procs):
        for p in procs:  # whatever the case left running, by PID
            if p.p.poll() is None:
                p.p.kill()
                p.p.wait(timeout=5)

    def step(c, gen_or_fn, first):
        """Run a case (or its next part); the generator if it paused."""
        signal.alarm(CASE_LIMIT_S)
        try:
            r = gen_or_fn(c) if first else next(gen_or_fn)
            if first and hasattr(r, "__next__"):
                next(r)  # set-up part, up to its yield
                return r
            return None
        except StopIteration:
            return None
        except Exception as e:  # noqa: BLE001 - an error fails the case
            c.failures.append(f"{type(e).__name__}: {e}")
            if VERBOSE:
                traceback.print_exc()
            return None
        finally:
            signal.alarm(0)

    for name, fn in cases:
        c = Case(name)
        t = time.monotonic()
        n0 = len(H._started)
        gen = step(c, fn, True)
        procs = H._started[n0:]
        if gen is not None:
            deferred.append((name, c, gen, t, procs))
            print(f"  ...   {name}: started, judged at the end", flush=True)
            continue
        kill(procs)
        report(name, c, time.monotonic() - t)
    for name, c, gen, t, procs in deferred:
        step(c, gen, False)
        kill(procs)
        report(name, c, time.monotonic() - t)
    dt = time.monotonic() - t_all
    print(f"attack suite: {len(results['pass'])} passed, "
          f"{len(results['FAIL'])} failed, {len(results['xfail'])} xfail, "
          f"{len(results['XPASS'])} XPASS in {dt:.0f}s", flush=True)
    if results["XPASS"]:
        print("XPASS (take off the XFAIL list): " + " ".join(results["XPASS"]))
    if results["FAIL"]:
        print("FAILED: " + " ".join(results["FAIL"]))
    return 1 if results["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
