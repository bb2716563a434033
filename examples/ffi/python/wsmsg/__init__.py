"""wsmsg for Python: a ctypes binding over libwsmsg (standard library only).

    import wsmsg
    chat = wsmsg.Endpoint(receive_timeout=10000, timeout_action="heartbeat")
    srv = wsmsg.Server(routes={"/ws/chat": chat})
    conn = srv.accept()              # per accepted socket; you own the socket
    conn.recv(sock.recv(65536))      # bytes in
    for ev in conn:                  # messages out, as events
        if isinstance(ev, wsmsg.Text):
            conn.send_text("echo: " + ev.data)
    sock.sendall(conn.data_to_send())   # bytes out
    conn.tick()                      # when conn.next_deadline() ms passed

Objects: Endpoint, Server, Conn, Schema, Timers, Topics, Client (a blocking client
over a socket).  Events: Open, Text, Binary, Json, Invalid, Close, Timeout,
Pong, Drain (and Unknown, for event types newer than the binding).  Errors: Error (code = ErrorCode), StateError, ClosedError,
BackpressureError, InvalidArgumentError, SchemaError, FreedError.  See docs/ffi.md.

The library is found through $WSMSG_LIB, next to this package, the source
tree's lib/, or the system (ctypes.util.find_library("wsmsg")).
"""
from ._core import (BackpressureError, BackpressurePolicy, Binary, Close,
                    ClosedError, Conn, Drain, Endpoint, Error, ErrorCode,
                    Event, EventType, FreedError, InvalidArgumentError,
                    InvalidPolicy, LimitPolicy, Invalid, ExtraPolicy,
                    ErrorStyle, UnhandledPolicy, DeflateMode, PublishFlag,
                    Json, Open, Pong, Schema, SchemaError, SchemaOption,
                    Server, State, StateError, Text, Timeout, TimeoutAction,
                    TimeoutKind, Timers, Topics, Unknown, Validate,
                    accept_key,
                    broadcast, broadcast_json, library_path,
                    now_ms, strerror, utf8_valid, verrors_list, version,
                    version_number)
from .client import Client, HandshakeError

__all__ = [
    "BackpressureError", "BackpressurePolicy", "Binary", "Client", "Close",
    "ClosedError", "Conn", "Drain", "Endpoint", "Error", "ErrorCode", "Event",
    "EventType", "FreedError", "HandshakeError", "InvalidArgumentError", "InvalidPolicy", "LimitPolicy", "Invalid", "ExtraPolicy", "ErrorStyle", "UnhandledPolicy", "DeflateMode", "PublishFlag",
    "Json", "Open", "Pong", "Schema", "SchemaError", "SchemaOption", "Server",
    "State", "StateError", "Text", "Timeout", "TimeoutAction", "TimeoutKind",
    "Timers", "Topics", "Unknown", "Validate", "accept_key", "broadcast", "broadcast_json", "library_path",
    "now_ms", "strerror",
    "utf8_valid", "verrors_list", "version", "version_number",
]
__version__ = version()
