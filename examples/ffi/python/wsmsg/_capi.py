"""ctypes declarations of libwsmsg's public API (include/wsmsg.h).

Every exported function of the header is declared here with its argtypes
and restype, except wsmsg_send_jsonf (varargs: the documented C-only
convenience).  tests/abi/check_abi.py reads DECLS and fails if a
declaration disagrees with the header, so a change to a signature in C
cannot silently break the binding.

Handles are distinct opaque pointer types (POINTER(_Conn) and so on), so
ctypes itself refuses a server where a connection is expected.  jansson's
json_t is opaque too (POINTER(_Json)).

Library lookup, in order:
  1. $WSMSG_LIB (a path to libwsmsg.so or libwsmsg.so.0);
  2. a libwsmsg.so* next to this package (a vendored copy), then the source
     tree's lib/ (examples/ffi/python/wsmsg -> ../../../../lib);
  3. the system: ctypes.util.find_library("wsmsg") (ldconfig, installed
     with `make install`).
"""
import ctypes
import ctypes.util
import os
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_int,
                    c_int32, c_int64, c_size_t, c_uint, c_uint32, c_uint64,
                    c_void_p)

#: The library major version (soname libwsmsg.so.<major>) this binding was
#: written for; loading refuses any other.
ABI_MAJOR = 0


# ---- opaque handles -----------------------------------------------------

class _Endpoint(Structure):
    """struct wsmsg_endpoint (opaque)"""


class _Server(Structure):
    """struct wsmsg_server (opaque)"""


class _Conn(Structure):
    """struct wsmsg_conn (opaque)"""


class _Request(Structure):
    """struct wsmsg_request (opaque)"""


class _Timers(Structure):
    """struct wsmsg_timers (opaque)"""


class _Topics(Structure):
    """struct wsmsg_topics (opaque)"""


class _Schema(Structure):
    """struct wsmsg_schema (opaque)"""


class _Verrors(Structure):
    """struct wsmsg_verrors (opaque)"""


class _Asyncapi(Structure):
    """struct wsmsg_asyncapi (opaque)."""


class _Json(Structure):
    """jansson's json_t (opaque to the binding)"""


ENDPOINT = POINTER(_Endpoint)
SERVER = POINTER(_Server)
CONN = POINTER(_Conn)
REQUEST = POINTER(_Request)
TIMERS = POINTER(_Timers)
TOPICS = POINTER(_Topics)
SCHEMA = POINTER(_Schema)
VERRORS = POINTER(_Verrors)
JSON = POINTER(_Json)
ASYNCAPI = POINTER(_Asyncapi)

# ---- public structs (passed by pointer only) ------------------------------


class wsmsg_event(Structure):
    """struct wsmsg_event: filled by wsmsg_conn_next_event."""
    _fields_ = [
        ("type", c_int32),
        ("code", c_int32),
        ("clean", c_int32),
        ("error", c_int32),
        ("data", c_void_p),
        ("len", c_size_t),
        ("detail", c_char_p),
        ("json", JSON),
    ]


class wsmsg_close_info(Structure):
    """struct wsmsg_close_info: what on_close receives."""
    _fields_ = [
        ("code", c_int32),
        ("clean", c_int32),
        ("remote", c_int32),
        ("error", c_int32),
        ("reason", c_char_p),
        ("reason_len", c_size_t),
        ("detail", c_char_p),
    ]


# ---- callback types ---------------------------------------------------------

malloc_fn = CFUNCTYPE(c_void_p, c_size_t, c_void_p)
free_fn = CFUNCTYPE(None, c_void_p, c_void_p)
realloc_fn = CFUNCTYPE(c_void_p, c_void_p, c_size_t, c_void_p)


class wsmsg_mem(Structure):
    """struct wsmsg_mem: a custom allocator (copied by the library)."""
    _fields_ = [
        ("user", c_void_p),
        ("malloc", malloc_fn),
        ("free", free_fn),
        ("realloc", realloc_fn),
    ]


open_cb = CFUNCTYPE(None, CONN, c_void_p)
text_cb = CFUNCTYPE(None, CONN, c_void_p, c_size_t, c_void_p)
binary_cb = CFUNCTYPE(None, CONN, c_void_p, c_size_t, c_void_p)
pong_cb = CFUNCTYPE(None, CONN, c_void_p, c_size_t, c_void_p)
close_cb = CFUNCTYPE(None, CONN, POINTER(wsmsg_close_info), c_void_p)
handshake_cb = CFUNCTYPE(c_int, CONN, REQUEST, c_void_p)
http_cb = CFUNCTYPE(c_int, CONN, REQUEST, c_void_p)
timeout_cb = CFUNCTYPE(None, CONN, c_int, c_void_p)
clock_cb = CFUNCTYPE(c_uint64, c_void_p)
drain_cb = CFUNCTYPE(None, CONN, c_void_p)
chunk_cb = CFUNCTYPE(None, CONN, c_int, c_void_p, c_size_t, c_int, c_int,
                     c_void_p)
read_cb = CFUNCTYPE(c_int64, CONN, c_void_p, c_size_t, POINTER(c_int),
                    c_void_p)
json_cb = CFUNCTYPE(None, CONN, JSON, c_void_p)
invalid_cb = CFUNCTYPE(None, CONN, VERRORS, c_void_p, c_size_t, c_void_p)
output_cb = CFUNCTYPE(None, CONN, c_void_p)
publish_cb = CFUNCTYPE(None, TOPICS, c_char_p, c_int, c_void_p, c_size_t,
                       c_void_p)
asyncapi_loader_cb = CFUNCTYPE(JSON, c_char_p, c_void_p)
operation_cb = CFUNCTYPE(None, CONN, c_char_p, c_char_p, JSON, c_void_p)
asyncapi_endpoint_cb = CFUNCTYPE(None, ENDPOINT, c_char_p, c_void_p)

#: C typedef name -> ctypes type, for tests/abi/check_abi.py
CALLBACKS = {
    "wsmsg_open_cb": open_cb, "wsmsg_text_cb": text_cb,
    "wsmsg_binary_cb": binary_cb, "wsmsg_pong_cb": pong_cb,
    "wsmsg_close_cb": close_cb, "wsmsg_handshake_cb": handshake_cb,
    "wsmsg_http_cb": http_cb,
    "wsmsg_timeout_cb": timeout_cb, "wsmsg_clock_cb": clock_cb,
    "wsmsg_drain_cb": drain_cb, "wsmsg_chunk_cb": chunk_cb,
    "wsmsg_read_cb": read_cb, "wsmsg_json_cb": json_cb,
    "wsmsg_invalid_cb": invalid_cb, "wsmsg_output_cb": output_cb,
    "wsmsg_publish_cb": publish_cb,
    "wsmsg_asyncapi_loader_cb": asyncapi_loader_cb,
    "wsmsg_operation_cb": operation_cb,
    "wsmsg_asyncapi_endpoint_cb": asyncapi_endpoint_cb,
}
#: C struct/handle name -> ctypes type, for tests/abi/check_abi.py
STRUCTS = {
    "wsmsg_endpoint": _Endpoint, "wsmsg_server": _Server,
    "wsmsg_conn": _Conn, "wsmsg_request": _Request,
    "wsmsg_timers": _Timers, "wsmsg_topics": _Topics, "wsmsg_schema": _Schema,
    "wsmsg_verrors": _Verrors, "json_t": _Json,
    "wsmsg_event": wsmsg_event, "wsmsg_close_info": wsmsg_close_info,
    "wsmsg_mem": wsmsg_mem, "wsmsg_asyncapi": _Asyncapi,
}

# ---- functions: (name, restype, argtypes) ----------------------------------
# Pointers to bytes the caller passes with a length (data, text) are
# c_void_p or c_char_p: ctypes passes a bytes object's buffer for both.
# NUL-terminated strings the library returns are c_char_p (-> bytes).

_ = None  # void
DECLS = [
    # version and errors
    ("wsmsg_version", c_char_p, []),
    ("wsmsg_version_number", c_int, []),
    ("wsmsg_strerror", c_char_p, [c_int]),
    # endpoints
    ("wsmsg_endpoint_new", ENDPOINT, []),
    ("wsmsg_endpoint_new_mem", ENDPOINT, [POINTER(wsmsg_mem)]),
    ("wsmsg_endpoint_free", _, [ENDPOINT]),
    ("wsmsg_endpoint_on_open", c_int, [ENDPOINT, open_cb]),
    ("wsmsg_endpoint_on_text", c_int, [ENDPOINT, text_cb]),
    ("wsmsg_endpoint_on_binary", c_int, [ENDPOINT, binary_cb]),
    ("wsmsg_endpoint_on_close", c_int, [ENDPOINT, close_cb]),
    ("wsmsg_endpoint_on_pong", c_int, [ENDPOINT, pong_cb]),
    ("wsmsg_endpoint_on_handshake", c_int, [ENDPOINT, handshake_cb]),
    ("wsmsg_endpoint_set_pong_events", c_int, [ENDPOINT, c_int]),
    ("wsmsg_endpoint_set_max_message_size", c_int, [ENDPOINT, c_uint64]),
    ("wsmsg_endpoint_set_max_fragments", c_int, [ENDPOINT, c_uint32]),
    ("wsmsg_endpoint_set_deflate", c_int, [ENDPOINT, c_int]),
    ("wsmsg_endpoint_set_deflate_level", c_int, [ENDPOINT, c_int, c_int]),
    ("wsmsg_endpoint_set_deflate_window", c_int, [ENDPOINT, c_int, c_int]),
    ("wsmsg_endpoint_set_deflate_takeover", c_int, [ENDPOINT, c_int, c_int]),
    ("wsmsg_endpoint_set_deflate_threshold", c_int, [ENDPOINT, c_size_t]),
    ("wsmsg_endpoint_add_subprotocol", c_int, [ENDPOINT, c_char_p]),
    ("wsmsg_endpoint_require_subprotocol", c_int, [ENDPOINT, c_int]),
    ("wsmsg_endpoint_allow_origin", c_int, [ENDPOINT, c_char_p]),
    ("wsmsg_endpoint_set_backpressure", c_int,
     [ENDPOINT, c_size_t, c_size_t, c_int]),
    ("wsmsg_endpoint_on_drain", c_int, [ENDPOINT, drain_cb]),
    ("wsmsg_endpoint_on_chunk", c_int, [ENDPOINT, chunk_cb, c_uint]),
    ("wsmsg_endpoint_on_timeout", c_int, [ENDPOINT, timeout_cb]),
    ("wsmsg_endpoint_set_receive_timeout", c_int, [ENDPOINT, c_uint32]),
    ("wsmsg_endpoint_set_timeout_action", c_int, [ENDPOINT, c_int, c_char_p]),
    ("wsmsg_endpoint_set_ping_interval", c_int, [ENDPOINT, c_uint32]),
    ("wsmsg_endpoint_set_pong_timeout", c_int, [ENDPOINT, c_uint32]),
    ("wsmsg_endpoint_set_message_timeout", c_int, [ENDPOINT, c_uint32]),
    ("wsmsg_endpoint_set_close_timeout", c_int, [ENDPOINT, c_uint32]),
    ("wsmsg_endpoint_set_write_timeout", c_int, [ENDPOINT, c_uint32]),
    ("wsmsg_endpoint_set_idle_timeout", c_int, [ENDPOINT, c_uint32]),
    ("wsmsg_endpoint_set_rate_limit", c_int,
     [ENDPOINT, c_uint32, c_uint64, c_int]),
    ("wsmsg_endpoint_set_invalid_limit", c_int, [ENDPOINT, c_uint32, c_uint32]),
    ("wsmsg_endpoint_set_handshake_timeout", c_int, [ENDPOINT, c_uint32]),
    ("wsmsg_endpoint_set_clock", c_int, [ENDPOINT, clock_cb, c_void_p]),
    # servers
    ("wsmsg_server_new", SERVER, []),
    ("wsmsg_server_new_mem", SERVER, [POINTER(wsmsg_mem)]),
    ("wsmsg_server_free", _, [SERVER]),
    ("wsmsg_server_route", c_int, [SERVER, c_char_p, ENDPOINT]),
    ("wsmsg_server_set_max_request_size", c_int, [SERVER, c_size_t]),
    ("wsmsg_server_set_memory_budget", c_int, [SERVER, c_size_t, c_size_t]),
    ("wsmsg_server_memory_used", c_size_t, [SERVER]),
    ("wsmsg_server_set_max_headers", c_int, [SERVER, c_uint32]),
    ("wsmsg_server_set_handshake_timeout", c_int, [SERVER, c_uint32]),
    ("wsmsg_server_set_clock", c_int, [SERVER, clock_cb, c_void_p]),
    ("wsmsg_server_on_output", c_int, [SERVER, output_cb]),
    ("wsmsg_server_accept", CONN, [SERVER, c_void_p]),
    # registry and graceful drain
    ("wsmsg_server_conn_count", c_size_t, [SERVER]),
    ("wsmsg_server_close_all", c_int64, [SERVER, c_int, c_char_p]),
    ("wsmsg_server_drain", c_int64, [SERVER]),
    ("wsmsg_server_draining", c_int, [SERVER]),
    # clients
    ("wsmsg_client_new", CONN, [ENDPOINT, c_char_p, c_char_p, c_void_p]),
    ("wsmsg_client_add_header", c_int, [CONN, c_char_p, c_char_p]),
    # connections
    ("wsmsg_conn_free", _, [CONN]),
    ("wsmsg_conn_recv", c_int, [CONN, c_void_p, c_size_t]),
    ("wsmsg_conn_eof", _, [CONN]),
    ("wsmsg_conn_abort", _, [CONN]),
    ("wsmsg_conn_pending", c_size_t, [CONN, POINTER(c_void_p)]),
    ("wsmsg_conn_consume", _, [CONN, c_size_t]),
    ("wsmsg_conn_state", c_int, [CONN]),
    ("wsmsg_conn_want_write", c_int, [CONN]),
    ("wsmsg_conn_want_read", c_int, [CONN]),
    ("wsmsg_conn_done", c_int, [CONN]),
    ("wsmsg_conn_user", c_void_p, [CONN]),
    ("wsmsg_conn_set_user", _, [CONN, c_void_p]),
    ("wsmsg_conn_is_client", c_int, [CONN]),
    ("wsmsg_conn_endpoint", ENDPOINT, [CONN]),
    ("wsmsg_conn_path", c_char_p, [CONN]),
    ("wsmsg_conn_query", c_char_p, [CONN]),
    ("wsmsg_conn_subprotocol", c_char_p, [CONN]),
    ("wsmsg_conn_deflate", c_int, [CONN]),
    ("wsmsg_conn_error", c_int, [CONN]),
    ("wsmsg_conn_error_detail", c_char_p, [CONN]),
    ("wsmsg_conn_http_status", c_int, [CONN]),
    ("wsmsg_conn_next_event", c_int, [CONN, POINTER(wsmsg_event)]),
    ("wsmsg_conn_event_count", c_size_t, [CONN]),
    ("wsmsg_conn_io_fd", c_int, [CONN, c_int]),
    # time
    ("wsmsg_now_ms", c_uint64, []),
    ("wsmsg_conn_tick", c_int, [CONN, c_uint64]),
    ("wsmsg_conn_deadline", c_int64, [CONN]),
    ("wsmsg_conn_next_deadline", c_int64, [CONN]),
    ("wsmsg_conn_rtt_ms", c_int64, [CONN]),
    ("wsmsg_conn_wait_event", c_int, [CONN, c_int, POINTER(wsmsg_event), c_int]),
    ("wsmsg_timers_new", TIMERS, []),
    ("wsmsg_timers_new_mem", TIMERS, [POINTER(wsmsg_mem)]),
    ("wsmsg_timers_free", _, [TIMERS]),
    ("wsmsg_timers_add", c_int, [TIMERS, CONN]),
    ("wsmsg_timers_remove", _, [CONN]),
    ("wsmsg_timers_count", c_size_t, [TIMERS]),
    ("wsmsg_timers_next_ms", c_int64, [TIMERS, c_uint64]),
    ("wsmsg_timers_expire", CONN, [TIMERS, c_uint64]),
    # sending
    ("wsmsg_send_text", c_int, [CONN, c_char_p, c_size_t]),
    ("wsmsg_send_binary", c_int, [CONN, c_void_p, c_size_t]),
    ("wsmsg_send_stream", c_int, [CONN, c_int, read_cb, c_void_p]),
    ("wsmsg_broadcast", c_int64, [POINTER(CONN), c_size_t, c_int, c_void_p,
                                  c_size_t]),
    ("wsmsg_broadcast_json", c_int64, [POINTER(CONN), c_size_t, JSON]),
    # topics
    ("wsmsg_topics_new", TOPICS, []),
    ("wsmsg_topics_new_mem", TOPICS, [POINTER(wsmsg_mem)]),
    ("wsmsg_topics_free", _, [TOPICS]),
    ("wsmsg_topics_on_publish", c_int, [TOPICS, publish_cb, c_void_p]),
    ("wsmsg_topic_subscribe", c_int, [TOPICS, CONN, c_char_p]),
    ("wsmsg_topic_unsubscribe", c_int, [TOPICS, CONN, c_char_p]),
    ("wsmsg_topic_is_subscribed", c_int, [TOPICS, CONN, c_char_p]),
    ("wsmsg_topic_subscribers", c_size_t, [TOPICS, c_char_p]),
    ("wsmsg_topics_count", c_size_t, [TOPICS]),
    ("wsmsg_conn_topic_count", c_size_t, [CONN]),
    ("wsmsg_topic_publish", c_int64, [TOPICS, c_char_p, c_int, c_void_p,
                                      c_size_t, c_int]),
    ("wsmsg_topic_publish_json", c_int64, [TOPICS, c_char_p, JSON, c_int]),
    ("wsmsg_conn_resume_stream", c_int, [CONN]),
    ("wsmsg_conn_streaming", c_int, [CONN]),
    ("wsmsg_conn_buffered_amount", c_size_t, [CONN]),
    ("wsmsg_send_ping", c_int, [CONN, c_void_p, c_size_t]),
    ("wsmsg_close", c_int, [CONN, c_int, c_char_p]),
    # plain HTTP beside the upgrade
    ("wsmsg_server_on_http", c_int, [SERVER, http_cb]),
    ("wsmsg_http_respond", c_int, [CONN, c_int, c_char_p, c_void_p,
                                   c_size_t]),
    ("wsmsg_http_respond_stream", c_int, [CONN, c_int, c_char_p, c_int64,
                                          read_cb, c_void_p]),
    # handshake request view
    ("wsmsg_request_method", c_char_p, [REQUEST]),
    ("wsmsg_request_path", c_char_p, [REQUEST]),
    ("wsmsg_request_query", c_char_p, [REQUEST]),
    ("wsmsg_request_header", c_char_p, [REQUEST, c_char_p]),
    ("wsmsg_request_header_count", c_size_t, [REQUEST]),
    ("wsmsg_request_header_name", c_char_p, [REQUEST, c_size_t]),
    ("wsmsg_request_header_value", c_char_p, [REQUEST, c_size_t]),
    ("wsmsg_request_cookie", c_int, [REQUEST, c_char_p, c_char_p, c_size_t]),
    # JSON Schema
    ("wsmsg_schema_compile", c_int,
     [c_char_p, c_size_t, c_uint, POINTER(SCHEMA), c_char_p, c_size_t]),
    ("wsmsg_schema_compile_json", c_int,
     [JSON, c_uint, POINTER(SCHEMA), c_char_p, c_size_t]),
    ("wsmsg_schema_compile_mem", c_int,
     [c_char_p, c_size_t, c_uint, POINTER(wsmsg_mem), POINTER(SCHEMA),
      c_char_p, c_size_t]),
    ("wsmsg_schema_compile_json_mem", c_int,
     [JSON, c_uint, POINTER(wsmsg_mem), POINTER(SCHEMA), c_char_p, c_size_t]),
    ("wsmsg_schema_free", _, [SCHEMA]),
    ("wsmsg_schema_dialect", c_int, [SCHEMA]),
    ("wsmsg_schema_set_regex_limits", c_int, [SCHEMA, c_uint32, c_uint32]),
    ("wsmsg_schema_validate", c_int, [SCHEMA, JSON, c_uint, VERRORS]),
    ("wsmsg_schema_validate_text", c_int,
     [SCHEMA, c_char_p, c_size_t, c_uint, VERRORS, POINTER(JSON)]),
    ("wsmsg_verrors_new", VERRORS, []),
    ("wsmsg_verrors_new_mem", VERRORS, [POINTER(wsmsg_mem)]),
    ("wsmsg_verrors_free", _, [VERRORS]),
    ("wsmsg_verrors_clear", _, [VERRORS]),
    ("wsmsg_verrors_set_max", c_int, [VERRORS, c_size_t]),
    ("wsmsg_verrors_count", c_size_t, [VERRORS]),
    ("wsmsg_verrors_truncated", c_int, [VERRORS]),
    ("wsmsg_verrors_msg", c_char_p, [VERRORS, c_size_t]),
    ("wsmsg_verrors_type", c_char_p, [VERRORS, c_size_t]),
    ("wsmsg_verrors_loc", JSON, [VERRORS, c_size_t]),
    ("wsmsg_verrors_ctx", JSON, [VERRORS, c_size_t]),
    ("wsmsg_verrors_input", JSON, [VERRORS, c_size_t]),
    ("wsmsg_verrors_loc_dump", c_int, [VERRORS, c_size_t, c_char_p, c_size_t]),
    ("wsmsg_verrors_to_json", JSON, [VERRORS]),
    ("wsmsg_verrors_dump", c_int, [VERRORS, c_char_p, c_size_t]),
    # JSON messages
    ("wsmsg_endpoint_on_json", c_int, [ENDPOINT, json_cb]),
    ("wsmsg_endpoint_set_json", c_int, [ENDPOINT, c_int]),
    ("wsmsg_endpoint_on_invalid", c_int, [ENDPOINT, invalid_cb]),
    ("wsmsg_endpoint_set_schema", c_int, [ENDPOINT, SCHEMA]),
    ("wsmsg_endpoint_set_validation", c_int, [ENDPOINT, c_uint]),
    ("wsmsg_endpoint_set_extra", c_int, [ENDPOINT, c_int]),
    ("wsmsg_endpoint_set_error_style", c_int, [ENDPOINT, c_int]),
    ("wsmsg_endpoint_set_invalid_policy", c_int, [ENDPOINT, c_int]),
    ("wsmsg_endpoint_set_unhandled", c_int, [ENDPOINT, c_int]),
    ("wsmsg_endpoint_allow_duplicate_keys", c_int, [ENDPOINT, c_int]),
    ("wsmsg_endpoint_set_max_errors", c_int, [ENDPOINT, c_size_t]),
    ("wsmsg_endpoint_route_json", c_int,
     [ENDPOINT, c_char_p, c_char_p, SCHEMA, json_cb]),
    ("wsmsg_send_json", c_int, [CONN, JSON]),
    ("wsmsg_json_incref", JSON, [JSON]),
    ("wsmsg_json_decref", _, [JSON]),
    ("wsmsg_json_loads", JSON, [c_char_p, c_size_t]),
    ("wsmsg_json_dumpb", c_int64, [JSON, c_char_p, c_size_t]),
    ("wsmsg_endpoint_set_max_queued", c_int, [ENDPOINT, c_size_t, c_size_t]),
    # AsyncAPI
    ("wsmsg_asyncapi_new", ASYNCAPI, [POINTER(wsmsg_mem)]),
    ("wsmsg_asyncapi_free", _, [ASYNCAPI]),
    ("wsmsg_asyncapi_set_schema_dir", c_int, [ASYNCAPI, c_char_p]),
    ("wsmsg_asyncapi_set_loader", c_int,
     [ASYNCAPI, asyncapi_loader_cb, c_void_p]),
    ("wsmsg_asyncapi_load", c_int, [ASYNCAPI, c_char_p, c_size_t]),
    ("wsmsg_asyncapi_load_json", c_int, [ASYNCAPI, JSON]),
    ("wsmsg_asyncapi_errors", VERRORS, [ASYNCAPI]),
    ("wsmsg_asyncapi_detail", c_char_p, [ASYNCAPI]),
    ("wsmsg_asyncapi_notes", c_char_p, [ASYNCAPI]),
    ("wsmsg_asyncapi_document", JSON, [ASYNCAPI]),
    ("wsmsg_asyncapi_on_operation", c_int,
     [ASYNCAPI, c_char_p, operation_cb, c_void_p]),
    ("wsmsg_asyncapi_on_endpoint", c_int,
     [ASYNCAPI, asyncapi_endpoint_cb, c_void_p]),
    ("wsmsg_asyncapi_set_validation", c_int, [ASYNCAPI, c_uint]),
    ("wsmsg_asyncapi_serve", c_int, [ASYNCAPI, SERVER, c_char_p]),
    ("wsmsg_asyncapi_conn_channel", c_char_p, [ASYNCAPI, CONN]),
    ("wsmsg_asyncapi_send", c_int, [ASYNCAPI, CONN, c_char_p, JSON, VERRORS]),
    ("wsmsg_server_asyncapi", JSON, [SERVER, JSON]),
    ("wsmsg_yaml_loads", JSON, [c_char_p, c_size_t, c_char_p, c_size_t]),
    # utilities
    ("wsmsg_utf8_valid", c_int, [c_void_p, c_size_t]),
    ("wsmsg_accept_key", c_int, [c_char_p, c_char_p, c_size_t]),
]

#: Exported but deliberately not declared (see the module docstring).
NOT_DECLARED = {"wsmsg_send_jsonf": "varargs: a C-only convenience"}

_LIB_NAMES = ("libwsmsg.so", "libwsmsg.so.%d" % ABI_MAJOR)


def _candidates():
    env = os.environ.get("WSMSG_LIB")
    if env:
        # an explicit choice is the only one tried: a wrong path is an error
        return [env]
    here = os.path.dirname(os.path.abspath(__file__))
    out = [os.path.join(here, n) for n in _LIB_NAMES]
    repo_lib = os.path.normpath(os.path.join(here, "..", "..", "..", "..", "lib"))
    out += [os.path.join(repo_lib, n) for n in _LIB_NAMES]
    return out


def find_library():
    """The path (or soname) of the libwsmsg that load() would open."""
    cands = _candidates()
    if os.environ.get("WSMSG_LIB"):
        return cands[0]
    for c in cands:
        if os.path.exists(c):
            return c
    return ctypes.util.find_library("wsmsg")


def load(path=None):
    """Open libwsmsg and declare every function of DECLS on it.

    Raises ImportError when no library is found, when a declared symbol is
    missing, or when the library's major version is not ABI_MAJOR.
    """
    path = path or find_library()
    if not path:
        raise ImportError(
            "wsmsg: libwsmsg.so not found: build it (make lib), set WSMSG_LIB "
            "to its path, or install it (make install)")
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise ImportError("wsmsg: cannot load %s: %s" % (path, e)) from e
    for name, restype, argtypes in DECLS:
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise ImportError("wsmsg: %s lacks %s (an older library?)"
                              % (path, name)) from None
        fn.restype = restype
        fn.argtypes = argtypes
    major = lib.wsmsg_version_number() // 10000
    if major != ABI_MAJOR:
        raise ImportError("wsmsg: %s is version %s, this binding needs %d.x"
                          % (path, lib.wsmsg_version().decode(), ABI_MAJOR))
    lib._wsmsg_path = path
    return lib

