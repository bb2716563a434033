"""wsmsg.asgi -- a WebSocket protocol for uvicorn backed by wsmsg's C core.

    import uvicorn
    from wsmsg.asgi import WSMsgProtocol
    uvicorn.run(app, ws=WSMsgProtocol)        # the one line that changes

uvicorn parses the HTTP request; when it is a WebSocket upgrade, uvicorn's
HTTP protocol builds the class given as `ws` with (config, server_state[,
app_state]), calls connection_made(transport), hands over the request head
(data_received) and moves the transport to it (set_protocol).  From there
WSMsgProtocol speaks the ASGI WebSocket interface (spec 2.3, what uvicorn
0.17.6 implements) to the application and RFC 6455 to the peer; framing,
masking, UTF-8 checks, message limits, keepalive, the close handshake and
permessage-deflate (when the loaded library has it) run in libwsmsg.

The opening handshake is the application's decision (websocket.accept or
websocket.close), which comes asynchronously; wsmsg's handshake is
synchronous.  So the request head is checked here (what uvicorn's
built-ins check), the scope goes to the application, and only on
websocket.accept is a wsmsg connection made: it is given a minimal upgrade
request carrying the client's key, version, extension offer and the
subprotocol the application chose, and its 101 response (with the
application's extra headers added) is what the client gets.

uvicorn settings used: ws_max_size (wsmsg's max message size: bigger
messages close with 1009), ws_ping_interval / ws_ping_timeout (wsmsg's
ping interval and pong timeout), ws_per_message_deflate (wsmsg's
permessage-deflate when the library has it), root_path, and with newer
uvicorn ws_max_queue (messages waiting before reading pauses; 32 without).

What the application sees is what uvicorn's built-ins give it; on the wire
(see docs/ffi.md, "FastAPI on wsmsg"):
  - an application that raises after accept closes the connection with 1011
    (the built-ins drop the TCP connection: the client sees 1006);
  - an application that returns after accept without closing closes with
    1000 (as uvicorn's websockets protocol; wsproto leaves it open);
  - sending after the connection is gone raises ClientDisconnected (an
    OSError, as newer uvicorn does);
  - server shutdown closes open connections with 1012 and completes the
    closing handshake (bounded by wsmsg's close timeout).
"""
import asyncio
import base64
import binascii
import collections
import logging
from urllib.parse import unquote

from ctypes import string_at as _string_at

from . import _core as _c

__all__ = ["WSMsgProtocol", "ClientDisconnected"]

try:  # newer uvicorn raises this on a send after the disconnect
    from uvicorn.protocols.utils import ClientDisconnected  # type: ignore
except ImportError:  # uvicorn <= 0.2x, or no uvicorn at all
    class ClientDisconnected(OSError):
        """send() after the WebSocket connection ended."""

HIGH_MESSAGES = 32      # pause reading when this many messages wait for the app
                        # (newer uvicorn's ws_max_queue, when it has one)
HIGH_BYTES = 1 << 20    # ... or this many bytes
FLUSH_BYTES = 64 << 10  # write at once when this much output waits
MAX_HEAD = 64 << 10     # most bytes of a request head we take
MAX_EARLY = 1 << 20     # bytes the client may send before the app accepted
LINGER_S = 1.0          # how long a finished socket waits for the peer's EOF
CLOSE_TIMEOUT_MS = 10000  # closing handshake (websockets' default)
# (these are read when a connection is accepted: set them before the
# server starts)
MAX_CACHED_SERVERS = 32   # (config, subprotocol) pairs kept for reuse

_STATUS = {400: "Bad Request", 403: "Forbidden", 426: "Upgrade Required",
           500: "Internal Server Error"}

_next_event = _c._next_event
_EV_TEXT, _EV_BINARY = _c._EV_TEXT, _c._EV_BINARY

def _drop(_msg):
    pass


# connection phases
_HEAD, _CONNECTING, _OPEN, _DENIED, _GONE = range(5)


def _addr(transport, local):
    sock = transport.get_extra_info("socket")
    info = None
    if sock is not None:
        try:
            info = sock.getsockname() if local else sock.getpeername()
        except OSError:
            info = None
    if info is None:
        info = transport.get_extra_info("sockname" if local else "peername")
    if isinstance(info, (list, tuple)) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    return None


def _endpoint_options(config):
    o = {"max_message_size": int(config.ws_max_size or 0),
         "receive_timeout": 0, "message_timeout": 0,
         "close_timeout": CLOSE_TIMEOUT_MS,
         # events are taken after every recv() and reading pauses when the
         # application falls behind: no bound needed in C
         "max_queued": (0, 0),
         # output is moved to the transport at once; the transport's
         # pause_writing is the backpressure the application waits on
         "backpressure": (0, 0, "fail")}
    interval = getattr(config, "ws_ping_interval", None)
    timeout = getattr(config, "ws_ping_timeout", None)
    # explicit, also when off: uvicorn's settings, not the library's defaults
    o["ping_interval"] = max(1, int(interval * 1000)) if interval else 0
    o["pong_timeout"] = max(1, int(timeout * 1000)) if interval and timeout else 0
    if "idle_timeout" in _c._ENDPOINT_OPTIONS:  # off, as in uvicorn
        o["idle_timeout"] = 0
    if getattr(config, "ws_per_message_deflate", False) and \
            "deflate" in _c._ENDPOINT_OPTIONS:
        o["deflate"] = "on"
    return o


def _server_for(config, subprotocol):
    """A wsmsg Server routing "/" to an endpoint made from the uvicorn
    config, speaking `subprotocol` (None: none), cached on the config."""
    cache = config.__dict__.get("_wsmsg_servers")
    if cache is None:
        cache = config.__dict__["_wsmsg_servers"] = {}
    srv = cache.get(subprotocol)
    if srv is not None:
        return srv
    ep = _c.Endpoint(subprotocols=[subprotocol] if subprotocol else None,
                     **_endpoint_options(config))
    srv = _c.Server(routes={"/": ep}, max_request_size=MAX_HEAD + 1024)
    if len(cache) < MAX_CACHED_SERVERS:
        cache[subprotocol] = srv
    return srv


def _http_response(status, body=b"", headers=()):
    head = ["HTTP/1.1 %d %s" % (status, _STATUS.get(status, "Error")),
            "content-type: text/plain; charset=utf-8",
            "content-length: %d" % len(body), "connection: close"]
    head.extend(headers)
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class _BadRequest(Exception):
    def __init__(self, status, msg, headers=()):
        super().__init__(msg)
        self.status = status
        self.headers = headers


def _tokens(values):
    out = []
    for v in values:
        out.extend(t.strip().lower() for t in v.split(b","))
    return out


def _parse_head(head):
    """(method, target, [(name, value)]) of a request head (bytes, without
    the blank line), checked as an RFC 6455 upgrade request."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        raise _BadRequest(400, "Invalid request line.")
    method, target, version = parts
    headers = []
    for ln in lines[1:]:
        name, sep, value = ln.partition(b":")
        if not sep or not name or name != name.strip():
            raise _BadRequest(400, "Invalid header line.")
        headers.append((name.lower(), value.strip(b" \t")))
    if method != b"GET" or version != b"HTTP/1.1":
        raise _BadRequest(400, "WebSocket upgrades are GET HTTP/1.1 requests.")

    def all_of(n):
        return [v for k, v in headers if k == n]
    if b"websocket" not in _tokens(all_of(b"upgrade")):
        raise _BadRequest(400, "Missing 'Upgrade: websocket'.")
    if b"upgrade" not in _tokens(all_of(b"connection")):
        raise _BadRequest(400, "Missing 'Connection: Upgrade'.")
    keys = all_of(b"sec-websocket-key")
    try:
        ok = len(keys) == 1 and len(base64.b64decode(keys[0], validate=True)) == 16
    except (binascii.Error, ValueError):
        ok = False
    if not ok:
        raise _BadRequest(400, "Invalid Sec-WebSocket-Key.")
    if all_of(b"sec-websocket-version") != [b"13"]:
        raise _BadRequest(426, "Unsupported WebSocket version.",
                          ("sec-websocket-version: 13",))
    return method, target, headers


class WSMsgProtocol(asyncio.Protocol):
    """One upgraded connection: the ASGI application on one side, wsmsg on
    the other.  Built by uvicorn (`ws=WSMsgProtocol`)."""

    def __init__(self, config, server_state, app_state=None, _loop=None,
                 **_future_kwargs):
        if not config.loaded:
            config.load()
        self.config = config
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.logger = logging.getLogger("uvicorn.error")
        self.root_path = config.root_path
        self.app_state = app_state
        self.connections = server_state.connections
        self.tasks = server_state.tasks
        self.high_messages = max(1, int(getattr(config, "ws_max_queue", None)
                                        or HIGH_MESSAGES))

        self.transport = None
        self.server = self.client = None
        self.scheme = "ws"
        self.scope = None
        self.phase = _HEAD
        self.head = b""
        self.early = bytearray()  # frames sent before the app accepted
        self.key = None
        self.extensions = []

        self.conn = None
        self.queue = collections.deque()
        self.queued_bytes = 0
        self.waiter = None          # the future receive() sleeps on
        self.connect_sent = False
        self.disconnect = None      # the disconnect message, once known
        self.close_sent = False     # the app sent websocket.close
        self.server_closing = False  # shutdown() sent 1012
        self.app_done = False
        self.read_paused = False
        self.write_paused = False
        self.writable = None        # a future while write_paused
        self.flush_handle = None
        self.unflushed = 0          # bytes sent since the last flush
        self.timer = None
        self.timer_at = None
        self.lingering = False
        self.linger_timer = None
        self.peer_eof = False

    # ---- asyncio.Protocol ----------------------------------------------------

    def connection_made(self, transport):
        self.connections.add(self)
        self.transport = transport
        self.server = _addr(transport, True)
        self.client = _addr(transport, False)
        if transport.get_extra_info("sslcontext"):
            self.scheme = "wss"

    def data_received(self, data):
        phase = self.phase
        if phase == _OPEN:
            if self.lingering:
                return
            self.conn.recv(data)
            self.pump()
        elif phase == _HEAD:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                if len(self.head) > MAX_HEAD:
                    self.reject(400, "Request head too large.")
                return
            head, rest = self.head[:end], self.head[end + 4:]
            self.head = b""
            self.early += rest
            self.handle_request(head)
        elif phase == _CONNECTING:
            self.early += data
            if len(self.early) > MAX_EARLY and not self.read_paused:
                self.read_paused = True
                self.transport.pause_reading()
        # _DENIED, _GONE: ignore

    def eof_received(self):
        self.peer_eof = True
        if self.lingering:
            return False  # the peer's EOF after ours: close now
        if self.phase == _OPEN and self.conn is not None and not self.conn.freed:
            self.conn.eof()
            self.pump()
            return True  # closed by us once wsmsg is done
        return False

    def connection_lost(self, exc):
        self.connections.discard(self)
        conn = self.conn
        if conn is not None and not conn.freed:
            if not conn.done:
                conn.abort()  # a Close event (1006)
                self.take_events()
            conn.free()
        self.phase = _GONE
        self.set_disconnect(1006)
        for h in (self.timer, self.linger_timer, self.flush_handle):
            if h is not None:
                h.cancel()
        self.timer = self.linger_timer = self.flush_handle = None
        self.set_writable()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def pause_writing(self):
        self.write_paused = True

    def resume_writing(self):
        self.write_paused = False
        self.set_writable()

    # ---- uvicorn -------------------------------------------------------------

    def shutdown(self):
        """uvicorn is stopping: 1012 (Service Restart) to open connections,
        500 to those the application has not accepted yet."""
        if self.phase == _OPEN and not self.lingering:
            self.set_disconnect(1012)
            self.server_closing = True
            try:
                self.conn.close(1012, "")
            except _c.Error:
                pass  # closing already
            self.resume()
            self.pump()
        elif self.phase in (_HEAD, _CONNECTING):
            self.reject(500, "Server shutting down.")

    def resume(self):
        """Read again (the app caught up, or the closing handshake needs
        the peer's close frame)."""
        if self.read_paused and self.transport is not None and \
                not self.transport.is_closing():
            self.read_paused = False
            self.transport.resume_reading()

    def on_task_complete(self, task):
        self.tasks.discard(task)

    # ---- the handshake ---------------------------------------------------------

    def reject(self, status, msg, headers=()):
        """An HTTP error response instead of the upgrade; the connection
        ends."""
        if self.phase in (_DENIED, _GONE) or self.transport.is_closing():
            self.phase = _DENIED if self.phase != _GONE else _GONE
            return
        self.phase = _DENIED
        self.transport.write(_http_response(status, msg.encode(), headers))
        self.transport.close()
        self.set_disconnect(1006)

    def handle_request(self, head):
        try:
            method, target, headers = _parse_head(head)
        except _BadRequest as e:
            self.logger.warning("Invalid WebSocket upgrade request: %s", e)
            self.reject(e.status, str(e), e.headers)
            return
        raw_path, _, query = target.partition(b"?")
        subprotocols = []
        for k, v in headers:
            if k == b"sec-websocket-key":
                self.key = v
            elif k == b"sec-websocket-protocol":
                subprotocols.extend(t.strip().decode("latin-1")
                                    for t in v.split(b",") if t.strip())
            elif k == b"sec-websocket-extensions":
                self.extensions.append(v)
        self.scope = {
            "type": "websocket",
            "asgi": {"version": self.config.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "scheme": self.scheme,
            "server": self.server,
            "client": self.client,
            "root_path": self.root_path,
            "path": unquote(raw_path.decode("latin-1")),
            "raw_path": raw_path,
            "query_string": query,
            "headers": headers,
            "subprotocols": subprotocols,
        }
        if self.app_state is not None:
            self.scope["state"] = self.app_state.copy()
        self.phase = _CONNECTING
        task = self.loop.create_task(self.run_asgi())
        task.add_done_callback(self.on_task_complete)
        self.tasks.add(task)

    def accept(self, message):
        subprotocol = message.get("subprotocol")
        extra = []
        for name, value in message.get("headers") or ():
            name, value = bytes(name), bytes(value)
            if not name or any(c in name for c in b"\r\n: \t") or \
                    b"\r" in value or b"\n" in value:
                raise RuntimeError("invalid header in websocket.accept: %r" % name)
            extra.append(name + b": " + value + b"\r\n")
        srv = _server_for(self.config, subprotocol)
        conn = srv.accept()
        req = [b"GET / HTTP/1.1\r\nHost: wsmsg\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
               b"Sec-WebSocket-Key: ", self.key, b"\r\n"]
        if subprotocol:
            req += [b"Sec-WebSocket-Protocol: ", subprotocol.encode(), b"\r\n"]
        for ext in self.extensions:
            req += [b"Sec-WebSocket-Extensions: ", ext, b"\r\n"]
        req.append(b"\r\n")
        conn.recv(b"".join(req))
        resp = conn.data_to_send()
        if not resp.startswith(b"HTTP/1.1 101 ") or not resp.endswith(b"\r\n\r\n"):
            status = conn.http_status
            conn.free()
            raise RuntimeError("wsmsg refused the upgrade (%s)" % status)
        self.conn = conn
        self.phase = _OPEN
        self.logger.info('%s - "WebSocket %s" [accepted]', self.scope["client"],
                         self.scope["path"])
        self.transport.write(resp[:-2] + b"".join(extra) + b"\r\n")
        for ev in conn:  # Open
            pass
        self.resume()  # paused while the app decided, if it sent much early
        if self.early:
            early, self.early = bytes(self.early), bytearray()
            conn.recv(early)
        self.pump()

    # ---- wsmsg -> application --------------------------------------------------

    def take_events(self):
        """wsmsg's queued events -> websocket.receive messages (text and
        bytes straight from the C event; the rest through the binding)."""
        conn = self.conn
        p, ev, evp = conn._p, conn._ev, conn._evp
        append = self.queue.append
        n = nbytes = 0
        if self.close_sent or self.server_closing:
            append = _drop  # closing: data the peer still sends is dropped
        while _next_event(p, evp) == 1:
            t = ev.type
            if t == _EV_TEXT:
                data = _string_at(ev.data, ev.len).decode() if ev.len else ""
                append({"type": "websocket.receive", "text": data})
            elif t == _EV_BINARY:
                data = _string_at(ev.data, ev.len) if ev.len else b""
                append({"type": "websocket.receive", "bytes": data})
            else:
                e = conn._convert(ev)
                if type(e) is _c.Close:
                    self.set_disconnect(e.code or 1005)
                continue
            n += 1
            nbytes += len(data)  # as asgi_receive counts it
        if n:
            self.queued_bytes += nbytes
            self.wake()

    def wake(self):
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    def set_disconnect(self, code):
        if self.disconnect is None:
            self.disconnect = {"type": "websocket.disconnect", "code": code}
            self.queue.append(self.disconnect)
            self.wake()

    def pump(self):
        """After every call into the connection: events, output, done,
        timers, reading."""
        conn = self.conn
        if conn.event_count:
            self.take_events()
        self.flush()
        if self.conn is None or conn.freed:
            return
        if conn.done:
            self.linger()
            return
        if (len(self.queue) >= self.high_messages or self.queued_bytes >= HIGH_BYTES) \
                and not self.read_paused and not self.app_done \
                and not self.close_sent and not self.server_closing:
            self.read_paused = True
            self.transport.pause_reading()
        d = conn.deadline()
        if d is None or (self.timer is not None and self.timer_at <= d):
            return
        if self.timer is not None:
            self.timer.cancel()
        self.timer_at = d
        self.timer = self.loop.call_at(self.loop.time() + conn.next_deadline() / 1000,
                                       self.on_timer)

    def flush(self):
        h = self.flush_handle
        if h is not None:
            h.cancel()
            self.flush_handle = None
        self.unflushed = 0
        conn = self.conn
        if conn is None or conn.freed:
            return
        data = conn.data_to_send()
        if data and not self.transport.is_closing():
            self.transport.write(data)

    def on_flush(self):
        self.flush_handle = None
        if self.conn is not None and not self.conn.freed and not self.lingering:
            self.pump()

    def on_timer(self):
        self.timer = None
        if self.conn is None or self.conn.freed or self.lingering:
            return
        self.conn.tick()
        self.pump()

    def linger(self):
        """wsmsg is done: our FIN once the output is written, then up to
        LINGER_S for the peer's, then close (a close frame is not lost to a
        reset while the peer still sends)."""
        if self.lingering:
            return
        self.lingering = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.set_disconnect(1006)  # normally set by the Close event already
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        if self.peer_eof or not self.transport.can_write_eof():
            self.transport.close()
        else:
            self.transport.write_eof()
            self.linger_timer = self.loop.call_later(LINGER_S, self.transport.close)

    def set_writable(self):
        w = self.writable
        if w is not None:
            self.writable = None
            if not w.done():
                w.set_result(None)

    # ---- the ASGI callables ------------------------------------------------------

    async def run_asgi(self):
        try:
            result = await self.app(self.scope, self.asgi_receive, self.asgi_send)
        except ClientDisconnected:
            self.finish_app(None)
        except BaseException as exc:  # the app's failure must not be ours
            self.logger.error("Exception in ASGI application\n", exc_info=exc)
            self.finish_app(1011)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        else:
            if result is not None:
                self.logger.error("ASGI callable should return None, but "
                                  "returned '%s'.", result)
            if self.phase == _CONNECTING:
                self.logger.error("ASGI callable returned without sending "
                                  "handshake.")
            self.finish_app(1000)

    def finish_app(self, code):
        """The application task ended: deny a handshake it left pending
        (500), close an open connection it left open (`code`: 1000 after a
        return, 1011 after an exception), stop holding the peer back."""
        self.app_done = True
        self.queue.clear()
        self.queued_bytes = 0
        if self.phase == _CONNECTING:
            self.reject(500, "Internal Server Error")
        elif self.phase == _OPEN and not self.lingering:
            if code is not None and not self.close_sent:
                self.close_sent = True
                try:
                    self.conn.close(code, "")
                except _c.Error:
                    pass  # the peer (or shutdown) closed first
            self.resume()
            self.pump()

    async def asgi_receive(self):
        if not self.connect_sent:
            self.connect_sent = True
            return {"type": "websocket.connect"}
        q = self.queue
        while not q:
            if self.disconnect is not None:
                return self.disconnect  # again: the connection is over
            w = self.waiter = self.loop.create_future()
            try:
                await w
            finally:
                self.waiter = None
        msg = q.popleft()
        if msg is not self.disconnect:
            self.queued_bytes -= len(msg.get("text") or msg.get("bytes") or "")
            if self.read_paused and len(q) <= self.high_messages // 2 and \
                    self.queued_bytes < HIGH_BYTES // 2 and self.phase == _OPEN \
                    and not self.lingering:
                self.resume()
        return msg

    async def asgi_send(self, message):
        mtype = message["type"]
        phase = self.phase
        if phase == _CONNECTING:
            if mtype == "websocket.accept":
                self.accept(message)
            elif mtype == "websocket.close":
                self.logger.info('%s - "WebSocket %s" 403', self.scope["client"],
                                 self.scope["path"])
                self.close_sent = True
                self.reject(403, "")
            else:
                raise RuntimeError("Expected ASGI message 'websocket.accept' or "
                                   "'websocket.close', but got '%s'." % mtype)
            return
        if self.close_sent:
            raise RuntimeError("Unexpected ASGI message '%s', after sending "
                               "'websocket.close'." % mtype)
        if self.server_closing:  # uvicorn is stopping: 1012 was sent
            if mtype == "websocket.close":
                self.close_sent = True
                return
            raise ClientDisconnected()
        if phase != _OPEN or self.lingering:
            raise ClientDisconnected()  # gone (also before the app accepted)
        if self.write_paused:
            w = self.writable
            if w is None:
                w = self.writable = self.loop.create_future()
            await w
            if self.phase != _OPEN or self.lingering:
                raise ClientDisconnected()
        conn = self.conn
        if mtype == "websocket.send":
            data = message.get("bytes")
            try:
                if data is not None:
                    conn.send_bytes(data)
                else:
                    data = message.get("text")
                    if data is None:
                        raise RuntimeError("websocket.send without text or bytes")
                    conn.send_text(data)
            except _c.ClosedError:
                raise ClientDisconnected() from None
            self.unflushed += len(data)
            if self.unflushed >= FLUSH_BYTES:
                self.pump()
            elif self.flush_handle is None:
                self.flush_handle = self.loop.call_soon(self.on_flush)
        elif mtype == "websocket.close":
            code = message.get("code", 1000)
            code = 1000 if code is None else code
            reason = message.get("reason") or ""
            try:
                conn.close(code, reason)
            except _c.ClosedError:
                pass  # the peer's close came first: the handshake is on
            except _c.Error as e:  # a code or reason RFC 6455 forbids
                raise ValueError("websocket.close: %s" % e) from None
            self.close_sent = True
            self.set_disconnect(code)
            self.resume()  # the peer's close frame must be read
            self.pump()
        else:
            raise RuntimeError("Expected ASGI message 'websocket.send' or "
                               "'websocket.close', but got '%s'." % mtype)
