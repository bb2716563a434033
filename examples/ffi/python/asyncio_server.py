#!/usr/bin/env python3
"""asyncio_server -- examples/demo_server.c in Python: asyncio owns the
sockets, wsmsg (through the ctypes binding) does the protocol.

    asyncio_server.py [--host 127.0.0.1] [--port 8080] [--dir DIR]
                      [--max-file BYTES] [--receive-timeout MS]
                      [--ping-interval MS] [--pong-timeout MS]
                      [--handshake-timeout MS] [--close-timeout MS]
                      [--drain-timeout MS] [--loop asyncio|uvloop] [--quiet]

Same endpoints, options and replies as demo_server:

  /ws/chat           text: "[<ISO-8601 time>] Server received: <msg>"
  /ws/file-transfer  binary: each message stored as a file under --dir and
                     answered with the binary message "FILE_RECEIVED"
  /ws/json-demo      JSON validated against MessageModel {user: string,
                     content: string, timestamp: number}: the message plus
                     "status": "PROCESSED"; invalid input gets
                     {"error": "validation_error", "detail": [...]}
  /ws/with-timeout   "Echo: <msg>"; "HEARTBEAT" after --receive-timeout ms
                     (10 s) without a message
  /ws/echo           text as text, binary as binary
  /ws/room           a chat room: each text message goes to everyone in it
                     as {"text": <msg>, "members": <n>} (broadcast_json;
                     the server's on_output schedules the members' writes)

How it is put together (one WsProtocol per TCP connection):

  data_received(bytes)  -> conn.recv(bytes)
  events                -> for ev in conn: handler(ev)  (Text, Binary, Json...)
  output                -> transport.write(conn.data_to_send())
  broadcast output      -> Server(on_output=...) -> loop.call_soon(after):
                           the members a broadcast gave output to
  timers                -> loop.call_at(loop.time() + conn.next_deadline()/1000,
                           conn.tick), re-armed only when the deadline moves
                           earlier (a later one is caught up lazily)
  done                  -> half-close, linger up to 1 s for the peer's EOF,
                           close (so a peer still sending does not turn our
                           close frame into a TCP reset)
  SIGTERM / SIGINT      -> stop listening, Server.drain(): 1001 "going away"
                           to every open connection (on_output schedules the
                           writes), handshakes in progress ended; exit once
                           Server.conn_count is 0 or --drain-timeout (2 s)
                           passed

One difference from the C server: /ws/file-transfer receives each file as
one Binary event (the binding uses the pull API, not the C streaming
callback), so a file is held in memory up to --max-file while it arrives.
"""
import argparse
import asyncio
import os
import signal
import socket
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wsmsg  # noqa: E402

NAME = "asyncio_server"
LINGER_S = 1.0   # how long a finished socket waits for the peer's EOF
DRAIN_MS = 2000  # how long shutdown waits for connections to close

MESSAGE_MODEL = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "MessageModel", "type": "object",
    "properties": {"user": {"type": "string"}, "content": {"type": "string"},
                   "timestamp": {"type": "number"}},
    "required": ["user", "content", "timestamp"],
}


def utc_stamp():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + \
        ".%03dZ" % (int(t * 1000) % 1000)


def refuse_binary(conn):
    """Close with 1003 once; binary messages behind the first are dropped."""
    try:
        conn.close(1003, "binary messages are not accepted here")
    except wsmsg.ClosedError:
        pass


class App:
    """The endpoints, their handlers and the live connections."""

    def __init__(self, args):
        self.args = args
        self.verbose = not args.quiet
        self.dir = args.dir
        self.files = 0
        self.next_id = 0
        self.conns = set()
        self.room = []  # /ws/room members (WsProtocol), in join order
        self.model = wsmsg.Schema(MESSAGE_MODEL)
        common = dict(ping_interval=args.ping_interval,
                      pong_timeout=args.pong_timeout,
                      close_timeout=args.close_timeout)
        # a whole file is one event: let the event queue hold one
        file_bytes = 0 if args.max_file == 0 else max(16 << 20, 2 * args.max_file)
        eps = {
            "/ws/chat": wsmsg.Endpoint(**common),
            "/ws/file-transfer": wsmsg.Endpoint(max_message_size=args.max_file,
                                                max_queued=(4096, file_bytes),
                                                **common),
            "/ws/json-demo": wsmsg.Endpoint(schema=self.model, extra="ignore",
                                            **common),
            "/ws/with-timeout": wsmsg.Endpoint(receive_timeout=args.receive_timeout,
                                               timeout_action="heartbeat",
                                               heartbeat="HEARTBEAT", **common),
            "/ws/echo": wsmsg.Endpoint(**common),
            "/ws/room": wsmsg.Endpoint(**common),
        }
        self.endpoints = eps
        self.handlers = {"/ws/chat": self.chat, "/ws/file-transfer": self.file,
                         "/ws/json-demo": self.json_demo,
                         "/ws/with-timeout": self.with_timeout, "/ws/echo": self.echo,
                         "/ws/room": self.room_text}
        self.server = wsmsg.Server(routes=eps, handshake_timeout=args.handshake_timeout,
                                   on_output=self.on_output)

    def log(self, proto, fmt, *a):
        if self.verbose:
            sys.stderr.write("[%s #%d] %s\n" % (NAME, proto.id if proto else 0, fmt % a))

    def free(self):
        for p in list(self.conns):
            p.finish()
        self.server.free()
        for ep in self.endpoints.values():
            ep.free()
        self.model.free()

    # ---- handlers: (protocol, conn, event) ----

    def chat(self, p, conn, ev):
        if isinstance(ev, wsmsg.Text):
            conn.send_text("[%s] Server received: %s" % (utc_stamp(), ev.data))
        elif isinstance(ev, wsmsg.Binary):
            # what demo_server's push endpoint does (the unhandled policy)
            refuse_binary(conn)

    def file(self, p, conn, ev):
        if isinstance(ev, wsmsg.Text):
            conn.send_text("send files as binary messages")
        elif isinstance(ev, wsmsg.Binary):
            self.files += 1
            path = os.path.join(self.dir, "upload-%d.bin" % self.files)
            self.log(p, "storing %s", path)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
                try:
                    view = memoryview(ev.data)
                    while view:  # bounded: every write makes progress or raises
                        view = view[os.write(fd, view):]
                finally:
                    os.close(fd)
            except OSError as e:
                self.log(p, "cannot store %s: %s", path, e)
                try:
                    os.unlink(path)
                except OSError:
                    pass
                conn.close(1011, "cannot store the file")
                return
            conn.send_bytes(b"FILE_RECEIVED")

    def json_demo(self, p, conn, ev):
        if isinstance(ev, wsmsg.Json):
            msg = ev.data
            msg["status"] = "PROCESSED"
            conn.send_json(msg)
        elif isinstance(ev, wsmsg.Invalid):
            # the endpoint's invalid policy (REPLY) already answered
            e = ev.errors
            self.log(p, "invalid message: %d error(s), first %s: %s", len(e),
                     e[0]["type"] if e else "-", e[0]["msg"] if e else "-")

    def room_text(self, p, conn, ev):
        if isinstance(ev, wsmsg.Text):
            wsmsg.broadcast_json([m.conn for m in self.room],
                                 {"text": ev.data, "members": len(self.room)})
        elif isinstance(ev, wsmsg.Binary):
            refuse_binary(conn)

    def on_output(self, conn):
        """A broadcast (or the drain) gave `conn` output while none was
        pending, or ended it: write it soon (not now: the broadcast is still
        running)."""
        proto = conn.user
        if proto is not None:
            proto.loop.call_soon(proto.write_soon)

    def with_timeout(self, p, conn, ev):
        if isinstance(ev, wsmsg.Text):
            conn.send_text("Echo: " + ev.data)
        elif isinstance(ev, wsmsg.Binary):
            refuse_binary(conn)

    def echo(self, p, conn, ev):
        if isinstance(ev, wsmsg.Text):
            conn.send_text(ev.data)
        elif isinstance(ev, wsmsg.Binary):
            conn.send_bytes(ev.data)


class WsProtocol(asyncio.Protocol):
    """One TCP connection: bytes to and from a wsmsg.Conn."""

    def __init__(self, app):
        self.app = app
        self.loop = asyncio.get_running_loop()
        self.transport = None
        self.conn = None
        self.handler = None
        self.timer = None
        self.timer_at = None   # wsmsg clock ms the timer is set for
        self.paused = False
        self.lingering = False
        self.linger_timer = None
        self.peer_eof = False
        app.next_id += 1
        self.id = app.next_id

    # ---- asyncio callbacks ----

    def connection_made(self, transport):
        self.transport = transport
        self.conn = self.app.server.accept(user=self)
        self.app.conns.add(self)
        self.after()  # arms the handshake timer

    def data_received(self, data):
        if self.lingering:
            return  # the WebSocket is over: drain until EOF
        self.conn.recv(data)
        self.after()

    def eof_received(self):
        self.peer_eof = True
        if self.lingering:
            return False  # the peer's EOF after ours: close now
        self.conn.eof()
        self.after()
        return True  # we close the transport ourselves once done

    def connection_lost(self, exc):
        conn = self.conn
        if conn is not None and not conn.freed and not conn.done:
            conn.abort()  # a Close event (1006) for the handlers and the log
            self.dispatch()
        self.finish()

    def pause_writing(self):
        # the socket does not keep up: stop reading (which makes output)
        # and leave the output in wsmsg, whose backpressure and write
        # timeout then apply
        self.paused = True
        self.transport.pause_reading()

    def resume_writing(self):
        self.paused = False
        if not self.lingering and self.conn is not None and not self.conn.freed:
            self.transport.resume_reading()
            self.after()

    # ---- driving the connection ----

    def dispatch(self):
        conn = self.conn
        for ev in conn:
            t = type(ev)
            if t is wsmsg.Open:
                self.handler = self.app.handlers.get(conn.path)
                if conn.path == "/ws/room":
                    self.app.room.append(self)
                q = conn.query
                self.app.log(self, "open %s%s", conn.path, "?" + q if q else "")
            elif t is wsmsg.Close:
                if self in self.app.room:
                    self.app.room.remove(self)
                self.app.log(self, "close %s code=%d clean=%d%s", conn.path, ev.code,
                             1 if ev.clean else 0,
                             " error: " + ev.detail if ev.error else "")
            elif self.handler is not None:
                try:
                    self.handler(self, conn, ev)
                except (wsmsg.ClosedError, wsmsg.StateError, wsmsg.BackpressureError) as e:
                    # the peer closed meanwhile (its close frame came in the
                    # same read) or does not read: the reply is dropped, as
                    # demo_server ignores wsmsg_send_* failures
                    self.app.log(self, "reply dropped: %s", e)
                except Exception:
                    sys.stderr.write("[%s #%d] handler failed:\n%s" % (
                        NAME, self.id, traceback.format_exc()))
                    if conn.state == wsmsg.State.OPEN:
                        conn.close(1011, "internal error")

    def after(self):
        """After every call into the connection: events, output, done,
        timers."""
        conn = self.conn
        if conn.event_count:
            self.dispatch()
        if not self.paused:
            data = conn.data_to_send()
            if data:
                self.transport.write(data)
        if conn.done:
            self.linger()
            return
        d = conn.deadline()
        if d is None or (self.timer is not None and self.timer_at <= d):
            return  # nothing armed, or an earlier wake-up is set: caught up then
        if self.timer is not None:
            self.timer.cancel()
        self.timer_at = d
        self.timer = self.loop.call_at(self.loop.time() + conn.next_deadline() / 1000,
                                       self.on_timer)

    def write_soon(self):
        """Scheduled by App.on_output: write what a broadcast queued."""
        if self.conn is None or self.conn.freed or self.lingering:
            return
        self.after()

    def on_timer(self):
        self.timer = None
        if self.conn is None or self.conn.freed or self.lingering:
            return
        self.conn.tick()
        self.after()

    def linger(self):
        """The WebSocket is finished: send our FIN once the output is
        written, wait (bounded) for the peer's, then close."""
        if self.lingering:
            return
        self.lingering = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.paused:
            self.transport.resume_reading()
        if self.peer_eof:
            self.transport.close()  # after the pending output is written
        elif self.transport.can_write_eof():
            self.transport.write_eof()
            self.linger_timer = self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()

    def finish(self):
        """The transport is gone (or the server stops): free the conn."""
        for t in (self.timer, self.linger_timer):
            if t is not None:
                t.cancel()
        self.timer = self.linger_timer = None
        if self in self.app.room:  # freed without a Close event
            self.app.room.remove(self)
        if self.conn is not None:
            self.conn.free()
        self.app.conns.discard(self)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


def ms_arg(s):
    try:
        v = int(s, 10)
    except ValueError:
        v = -1
    if not 0 <= v <= 86400000:
        raise argparse.ArgumentTypeError("bad milliseconds: %s" % s)
    return v


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog=NAME, description="demo_server's endpoints on asyncio + wsmsg "
        "(/ws/chat /ws/file-transfer /ws/json-demo /ws/with-timeout /ws/echo); "
        "timeouts in milliseconds (0 = off)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--dir", help="where /ws/file-transfer stores files "
                    "(default: a new /tmp/wsmsg-demo-* directory)")
    ap.add_argument("--max-file", type=int, default=16 << 20, metavar="BYTES")
    ap.add_argument("--receive-timeout", type=ms_arg, default=10000, metavar="MS",
                    help="the HEARTBEAT period of /ws/with-timeout")
    ap.add_argument("--ping-interval", type=ms_arg, default=0, metavar="MS")
    ap.add_argument("--pong-timeout", type=ms_arg, default=0, metavar="MS")
    ap.add_argument("--handshake-timeout", type=ms_arg, default=10000, metavar="MS")
    ap.add_argument("--close-timeout", type=ms_arg, default=10000, metavar="MS")
    ap.add_argument("--drain-timeout", type=ms_arg, default=DRAIN_MS, metavar="MS",
                    help="on SIGTERM/SIGINT, how long the closing handshakes "
                    "may take before the process exits anyway")
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                    help="event loop implementation (uvloop if installed)")
    ap.add_argument("--quiet", "-q", action="store_true")
    args = ap.parse_args(argv)
    if args.max_file < 0:
        ap.error("--max-file must be >= 0")
    return args


async def serve(args):
    loop = asyncio.get_running_loop()
    app = App(args)
    server = await loop.create_server(lambda: WsProtocol(app), args.host, args.port,
                                      reuse_address=True, backlog=4096)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sys.stderr.write("%s (wsmsg %s) listening on ws://%s:%d/\n"
                     % (NAME, wsmsg.version(), args.host, args.port))
    sys.stderr.write("%s: files go to %s\n" % (NAME, app.dir))
    try:
        await stop.wait()
    finally:
        # a graceful drain (docs/scaling.md): no new TCP connections, 1001
        # "going away" to every open WebSocket, handshakes in progress ended
        # (an upgrade still arriving would get 503); each connection this
        # changed comes back through on_output, which schedules its write
        server.close()
        n = app.server.conn_count
        if n:
            sys.stderr.write("%s: closing %d connection(s)\n" % (NAME, n))
        app.server.drain()
        # the close handshakes finish (each connection is freed once its
        # socket closed) or the drain timeout passes
        end = loop.time() + args.drain_timeout / 1000
        while app.server.conn_count and loop.time() < end:
            await asyncio.sleep(0.02)  # bounded: --drain-timeout
        if app.server.conn_count:
            sys.stderr.write("%s: drain timeout: %d connection(s) dropped\n"
                             % (NAME, app.server.conn_count))
        app.free()
        await server.wait_closed()
    sys.stderr.write("%s: bye\n" % NAME)


def main(argv=None):
    args = parse_args(argv)
    if args.dir is None:
        args.dir = tempfile.mkdtemp(prefix="wsmsg-demo-")
    if not os.path.isdir(args.dir):
        sys.stderr.write("%s: %s is not a directory\n" % (NAME, args.dir))
        return 1
    if args.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            sys.stderr.write("%s: --loop uvloop: uvloop is not installed\n" % NAME)
            return 2
        uvloop.install()
    try:
        asyncio.run(serve(args))
    except OSError as e:
        sys.stderr.write("%s: %s:%d: %s\n" % (NAME, args.host, args.port, e.strerror or e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
