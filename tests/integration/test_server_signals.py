"""echo_server shutdown on SIGTERM / SIGINT: every open connection gets a
close frame with 1001 (going away), connections still in the handshake are
dropped, the listener stops accepting, and the process exits 0 once the
connections are done (or after its 2 s grace period).

Each case starts its own server (it is the one being stopped).
Run alone:  /usr/bin/python3 tests/integration/test_server_signals.py
"""
import asyncio
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import websockets  # noqa: E402
from wsharness import OP_TEXT, Closed, EchoServer, RawWS, run_cases  # noqa

GRACE = 2.0  # echo_server's shutdown grace period
BOUND = 20.0  # seconds: every wait (ASan, a loaded machine)


def poll_until(pred, what, timeout=BOUND):
    """Bounded polling for a condition we can observe from outside."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.005)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def rx_queue(server_port, client_port):
    """Bytes the server has not read yet on its side of our connection."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            p = line.split()
            lp = int(p[1].split(":")[1], 16)
            rp = int(p[2].split(":")[1], 16)
            if lp == server_port and rp == client_port:
                return int(p[4].split(":")[1], 16)
    return None


def proc_field(pid, name):
    with open(f"/proc/{pid}/{name}") as f:
        data = f.read()
    if name == "stat":  # the state letter after "(comm)"
        return data.rsplit(")", 1)[1].split()[0]
    return data.strip()


def shutdown_with_clients(sig):
    srv = EchoServer()
    try:
        half = RawWS(srv.port, handshake=False)  # mid-handshake
        half.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n")
        idle_tcp = socket.create_connection(("127.0.0.1", srv.port), BOUND)

        async def go():
            clients = [await websockets.connect(f"{srv.url}/c{i}",
                                                open_timeout=BOUND,
                                                close_timeout=BOUND)
                       for i in range(5)]
            for i, ws in enumerate(clients):  # really open and echoing
                await ws.send(f"hi {i}")
                assert await asyncio.wait_for(ws.recv(), BOUND) == f"hi {i}"
            t_sig = time.monotonic()
            srv.send_signal(sig)
            for i, ws in enumerate(clients):
                try:
                    await asyncio.wait_for(ws.recv(), BOUND)
                    raise AssertionError(f"client {i}: message instead of "
                                         "close")
                except websockets.ConnectionClosed as e:
                    assert e.rcvd is not None, f"client {i}: no close frame"
                    assert e.rcvd.code == 1001, \
                        f"client {i}: close code {e.rcvd.code}"
                    assert e.rcvd.reason == "going away", \
                        e.rcvd.reason
                await asyncio.wait_for(ws.wait_closed(), BOUND)
            return t_sig
        # every client gets its close frame at once (a close frame that only
        # came with the grace period's end would come as EOF, no frame)
        t_sig = asyncio.run(asyncio.wait_for(go(), 3 * BOUND))
        # connections still in the handshake are ended without a response
        half.expect_eof()
        assert half.buf == b"", f"half-open handshake got {half.buf!r}"
        half.close()
        idle_tcp.settimeout(BOUND)
        assert idle_tcp.recv(100) == b""
        idle_tcp.close()
        rc = srv.wait(BOUND)
        assert rc is not None, f"echo_server still running {BOUND} s after " \
            "the signal"
        assert rc == 0, f"exit status {rc}:\n{srv.stderr()[-2000:]}"
        # with every peer gone it exits at once, not when the grace period
        # ends: the one time bound here (milliseconds against 2 s)
        took = time.monotonic() - t_sig
        assert took < GRACE, f"exit took {took:.2f}s with every peer gone"
    finally:
        srv.stop(signal.SIGKILL)


def case_sigterm_closes_clients_with_1001():
    shutdown_with_clients(signal.SIGTERM)


def case_sigint_closes_clients_with_1001():
    shutdown_with_clients(signal.SIGINT)


def case_sigterm_idle_server_exits_promptly():
    srv = EchoServer()
    t0 = time.monotonic()
    rc = srv.stop(signal.SIGTERM, timeout=BOUND)
    assert rc == 0, f"exit status {rc}:\n{srv.stderr()[-1500:]}"
    # nothing to close: it does not wait for the grace period
    took = time.monotonic() - t0
    assert took < GRACE, f"idle server took {took:.2f}s to exit"


def case_signal_and_client_event_in_one_batch():
    """The signal and a client's data become ready in the same epoll_wait
    batch, signal first.  Shutdown drops the client still in its handshake;
    the client's event in the same batch must not touch it afterwards.

    Made deterministic by stopping the server (SIGSTOP) while both events
    are queued: it is idle in epoll_wait with nothing unread, then SIGTERM
    is queued, then the client writes, then SIGCONT."""
    for attempt in range(3):
        srv = EchoServer()
        try:
            half = RawWS(srv.port, handshake=False)
            half.send_raw(b"GET / HTTP/1.1\r\n")
            cport = half.sock.getsockname()[1]
            poll_until(lambda: rx_queue(srv.port, cport) == 0 and
                       proc_field(srv.pid, "wchan") == "do_epoll_wait",
                       "echo_server to read the bytes and wait in epoll")
            srv.send_signal(signal.SIGSTOP)
            poll_until(lambda: proc_field(srv.pid, "stat") == "T",
                       "echo_server to stop")
            srv.send_signal(signal.SIGTERM)  # blocked: queued on signalfd
            half.send_raw(b"Host: x\r\n")  # client fd readable too
            srv.send_signal(signal.SIGCONT)
            try:
                half.expect_eof()  # the server ends the handshake
            except OSError:
                pass  # or died trying: the exit status tells
            half.close()
            rc = srv.wait(BOUND)
            assert rc == 0, f"attempt {attempt}: echo_server exited {rc} " \
                f"(-11 = SIGSEGV):\n{srv.stderr()[-1500:]}"
        finally:
            srv.stop(signal.SIGKILL)


def case_unresponsive_client_bounded_by_grace():
    """A client that never answers the close frame does not keep the server
    alive past its grace period; new connections are refused meanwhile."""
    srv = EchoServer()
    try:
        ws = RawWS(srv.port)
        ws.send_frame(OP_TEXT, b"x")
        assert ws.recv_message() == (OP_TEXT, b"x")
        t0 = time.monotonic()
        srv.send_signal(signal.SIGTERM)
        code, reason = ws.expect_close()  # ... and we never answer it
        assert code == 1001, code
        try:
            s = socket.create_connection(("127.0.0.1", srv.port), 1)
            s.close()
            raise AssertionError("listener still accepts after SIGTERM")
        except ConnectionRefusedError:
            pass
        rc = srv.wait(GRACE + BOUND)
        took = time.monotonic() - t0
        assert rc is not None, "still running long after the grace period"
        assert rc == 0, f"exit status {rc}"
        assert took >= GRACE - 0.5, f"exited after {took:.2f}s, before the " \
            "close handshake could finish"
        ws.expect_eof()
        ws.close()
    finally:
        srv.stop(signal.SIGKILL)


MIN_CASES = 5  # the case_* functions above: fewer means some were lost


if __name__ == "__main__":
    run_cases(globals(), minimum=MIN_CASES)
