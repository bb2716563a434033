"""Client: a small blocking WebSocket client over a TCP socket.

    with wsmsg.Client("ws://127.0.0.1:8080/ws/json-demo") as c:
        c.send_json({"user": "ann", "content": "hi", "timestamp": 1})
        print(c.recv(timeout=5))        # an event: Text(...), Close(...)

The socket is Python's; the protocol is wsmsg's: the waiting happens in C
(wsmsg_conn_wait_event: poll + read + write + timers) with the GIL
released.  ws:// only (no TLS).
"""
import select
import socket
import time
from urllib.parse import urlsplit

from ._core import (Close, ClosedError, Endpoint, Error, ErrorCode, Open,
                    State)


class HandshakeError(Error):
    """The server refused the upgrade or answered something else than a
    valid 101.  `status` is the HTTP status received (0 if none)."""

    def __init__(self, message, status=0, code=ErrorCode.ERR_HANDSHAKE):
        super().__init__(message, code)
        self.status = status


def _parse(url):
    u = urlsplit(url)
    if u.scheme != "ws":
        raise ValueError("Client supports ws:// URLs only, not %r" % url)
    if not u.hostname:
        raise ValueError("no host in %r" % url)
    port = u.port or 80
    path = (u.path or "/") + ("?" + u.query if u.query else "")
    host = u.hostname
    hosthdr = ("[%s]" % host if ":" in host else host) + (
        ":%d" % u.port if u.port else "")
    return host, port, hosthdr, path


class Client:
    """A blocking client connection.

    Client(url, headers=None, subprotocols=(), timeout=10.0, endpoint=None,
    **endpoint_options): connects, performs the opening handshake (raises
    HandshakeError, OSError, or TimeoutError), and is then open.  Without
    `endpoint` a private Endpoint is made from `subprotocols` and the
    Endpoint options (max_message_size=..., json=..., schema=...) and freed
    with the client.  close() (or the end of a `with` block) does the
    closing handshake, closes the socket and frees the connection."""

    def __init__(self, url, headers=None, subprotocols=(), timeout=10.0,
                 endpoint=None, **options):
        host, port, hosthdr, path = _parse(url)
        self.url = url
        self.timeout = timeout
        self._own_ep = endpoint is None
        if endpoint is None:
            endpoint = Endpoint(subprotocols=subprotocols, **options)
        elif options or subprotocols:
            raise TypeError("give either endpoint= or endpoint options")
        self.endpoint = endpoint
        self.conn = None
        self.sock = None
        self.close_event = None
        try:
            self.conn = endpoint.client(hosthdr, path, headers)
            self.sock = socket.create_connection((host, port), timeout=timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            ev = self._wait(timeout)
            if not isinstance(ev, Open):
                detail = self.conn.error_detail or "no answer"
                raise HandshakeError("handshake with %s failed: %s" % (url, detail),
                                     self.conn.http_status)
        except BaseException:
            self._release()
            raise

    def _wait(self, timeout):
        try:
            return self.conn.wait_event(self.sock, timeout)
        except ClosedError:
            return None

    def _flush(self):
        """Write everything pending, waiting at most `timeout` for the
        socket to take it."""
        end = None if self.timeout is None else time.monotonic() + self.timeout
        while self.conn.want_write:
            r = self.conn.io_fd(self.sock)
            if r < 0:
                raise Error("write to %s failed" % self.url, r)
            if not self.conn.want_write:
                break
            left = None if end is None else max(0.0, end - time.monotonic())
            if left == 0.0:
                raise TimeoutError("the server does not read (%s)" % self.url)
            select.select([], [self.sock], [], left)

    # -- messages --

    def send_text(self, text):
        """Send a text message (str)."""
        self.conn.send_text(text)
        self._flush()

    def send_bytes(self, data):
        """Send a binary message (bytes-like)."""
        self.conn.send_bytes(data)
        self._flush()

    def send_json(self, obj):
        """Send `obj` as compact JSON text."""
        self.conn.send_json(obj)
        self._flush()

    def ping(self, payload=b""):
        """Send a ping (its pong is a Pong event with pong_events=True)."""
        self.conn.ping(payload)
        self._flush()

    def recv(self, timeout=None):
        """The next event (Text, Binary, Json, Invalid, Close...), or None
        if `timeout` seconds pass (None: wait as long as it takes).  After
        the Close event: ClosedError."""
        if self.close_event is not None:
            raise ClosedError("the connection is closed", ErrorCode.ERR_CLOSED)
        ev = self.conn.wait_event(self.sock, timeout)
        if isinstance(ev, Close):
            self.close_event = ev
        return ev

    def __iter__(self):
        """Events until (and including) Close."""
        while self.close_event is None:
            ev = self.recv()
            if ev is not None:
                yield ev

    @property
    def subprotocol(self):
        return self.conn.subprotocol

    @property
    def state(self):
        return self.conn.state if self.conn is not None else State.CLOSED

    # -- closing --

    def close(self, code=1000, reason="", timeout=None):
        """Closing handshake (at most `timeout` s, default the client's),
        then close the socket and free everything.  Returns the Close event
        (None if the peer never answered).  Idempotent."""
        if self.conn is None:
            return self.close_event
        timeout = self.timeout if timeout is None else timeout
        try:
            if self.conn.state == State.OPEN:
                self.conn.close(code, reason)
            end = time.monotonic() + (timeout or 0)
            while self.close_event is None and not self.conn.done:
                left = end - time.monotonic()
                if left <= 0:
                    break
                ev = self._wait(left)
                if ev is None and self.conn.done:
                    break
                if isinstance(ev, Close):
                    self.close_event = ev
            while self.conn.want_write and time.monotonic() < end:
                if self.conn.io_fd(self.sock) != 0:
                    break
        except OSError:
            pass
        finally:
            self._release()
        return self.close_event

    def _release(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.conn is not None:
            self.conn.free()
            self.conn = None
        if self._own_ep and self.endpoint is not None:
            self.endpoint.free()
            self.endpoint = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self._release()
        except Exception:
            pass
