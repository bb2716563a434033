"""The wsmsg binding: Python classes over the C handles (see __init__.py)."""
import ctypes
import enum
import json as _json
import threading
import traceback
import weakref
from ctypes import byref, c_void_p, create_string_buffer, string_at

from . import _capi

_lib = _capi.load()

# ---- enums (mirrors of include/wsmsg.h; tests/abi/check_abi.py compares) ----


class ErrorCode(enum.IntEnum):
    """enum wsmsg_error_code"""
    OK = 0
    ERR_NOMEM = -1
    ERR_INVALID_ARG = -2
    ERR_STATE = -3
    ERR_CLOSED = -4
    ERR_PROTOCOL = -5
    ERR_UTF8 = -6
    ERR_TOO_BIG = -7
    ERR_TOO_MANY_FRAGMENTS = -8
    ERR_CLOSE_CODE = -9
    ERR_HANDSHAKE = -10
    ERR_IO = -11
    ERR_TIMEOUT = -12
    ERR_BACKPRESSURE = -13
    ERR_EOF = -14
    ERR_ABORTED = -15
    ERR_NOT_FOUND = -16
    ERR_VALIDATION = -17
    ERR_SCHEMA = -18
    ERR_UNSUPPORTED = -19
    ERR_JSON = -20
    ERR_BUDGET = -21
    ERR_RATE_LIMIT = -22


class State(enum.IntEnum):
    """enum wsmsg_state"""
    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


class EventType(enum.IntEnum):
    """enum wsmsg_event_type"""
    NONE = 0
    OPEN = 1
    TEXT = 2
    BINARY = 3
    CLOSE = 4
    PONG = 5
    TIMEOUT = 6
    DRAIN = 7
    JSON = 8
    INVALID = 9


class TimeoutKind(enum.IntEnum):
    """enum wsmsg_timeout_kind"""
    RECEIVE = 1
    HANDSHAKE = 2
    PONG = 3
    MESSAGE = 4
    CLOSE = 5
    WRITE = 6


class TimeoutAction(enum.IntEnum):
    """enum wsmsg_timeout_action (Endpoint(timeout_action=...))"""
    EVENT = 0
    PING = 1
    HEARTBEAT = 2
    CLOSE_1001 = 3
    CLOSE_1011 = 4


class BackpressurePolicy(enum.IntEnum):
    """enum wsmsg_backpressure_policy"""
    FAIL = 0
    CLOSE = 1


class LimitPolicy(enum.IntEnum):
    """enum wsmsg_limit_policy"""
    CLOSE = 0
    DROP = 1


class PublishFlag(enum.IntEnum):
    """enum wsmsg_publish_flags (wsmsg_topic_publish)"""
    REMOTE = 1


class InvalidPolicy(enum.IntEnum):
    """enum wsmsg_invalid_policy"""
    REPLY = 0
    CLOSE = 1
    IGNORE = 2


class UnhandledPolicy(enum.IntEnum):
    """enum wsmsg_unhandled_policy (Endpoint(unhandled=...)): what a push
    endpoint does with a message kind it has no callback for"""
    CLOSE = 0
    IGNORE = 1


class Validate(enum.IntFlag):
    """enum wsmsg_validate_flag (Endpoint(validation=...))"""
    STRICT = 0
    COERCE = 1
    DEFAULTS = 2
    FORMAT = 4
    EXTRA_IGNORE = 8
    EXTRA_FORBID = 16
    PYDANTIC_V2 = 32


class ErrorStyle(enum.IntEnum):
    """enum wsmsg_error_style (Endpoint(error_style=...)): "v1" or "v2"
    (Pydantic's error shapes)"""
    PYDANTIC_V1 = 0
    PYDANTIC_V2 = 1


def _error_style(v):
    if v in ("v1", "V1", 1):
        return 0
    if v in ("v2", "V2", 2):
        return 1
    return _enum("error_style", v, ErrorStyle)


class ExtraPolicy(enum.IntEnum):
    """enum wsmsg_extra_policy (Endpoint(extra=...)): Pydantic's `extra`"""
    ALLOW = 0
    IGNORE = 1
    FORBID = 2


class DeflateMode(enum.IntEnum):
    """enum wsmsg_deflate_mode (Endpoint(deflate=...)): permessage-deflate
    presets (docs/compression.md)"""
    OFF = 0
    ON = 1
    LOW_MEMORY = 2
    MAX_RATIO = 3


class SchemaOption(enum.IntFlag):
    """enum wsmsg_schema_option"""
    DRAFT2020_12 = 0
    DRAFT7 = 1
    NO_JIT = 2


# ---- errors ------------------------------------------------------------------


class Error(Exception):
    """A wsmsg call failed.  `code` is the negative WSMSG_ERR_* value (an
    ErrorCode when known; None for errors the binding itself raises)."""

    def __init__(self, message, code=None):
        super().__init__(message)
        if code is not None:
            try:
                code = ErrorCode(code)
            except ValueError:
                pass
        self.code = code


class StateError(Error):
    """WSMSG_ERR_STATE: not allowed now (a setter on an endpoint in use, a
    send before the handshake, freeing an object others still use)."""


class ClosedError(Error):
    """WSMSG_ERR_CLOSED: the connection is closing or closed."""


class BackpressureError(Error):
    """WSMSG_ERR_BACKPRESSURE: the output queue is above its high mark."""


class SchemaError(Error):
    """A JSON Schema did not compile (WSMSG_ERR_JSON / _SCHEMA /
    _UNSUPPORTED); the message is the library's explanation."""


class InvalidArgumentError(Error, ValueError):
    """WSMSG_ERR_INVALID_ARG: the library refused a value (a path without
    '/', a header it sets itself, CR/LF in a header...).  Also a
    ValueError."""


class FreedError(Error, ValueError):
    """The object was freed (free(), a `with` block's end): its C handle is
    gone.  Also a ValueError, like I/O on a closed file."""


_ERRORS = {ErrorCode.ERR_STATE: StateError, ErrorCode.ERR_CLOSED: ClosedError,
           ErrorCode.ERR_BACKPRESSURE: BackpressureError,
           ErrorCode.ERR_INVALID_ARG: InvalidArgumentError}


def strerror(code):
    """wsmsg_strerror: a short description of an error code."""
    return _lib.wsmsg_strerror(_int("code", code)).decode()


def _raise(code, what):
    raise _ERRORS.get(code, Error)("%s: %s" % (what, strerror(code)), code)


def _check(r, what):
    if r < 0:
        _raise(r, what)
    return r


# ---- argument checks: wrong types are TypeError, bad values ValueError -------


def _int(name, v):
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError("%s must be an int, not %s" % (name, type(v).__name__))
    return v


def _uint(name, v, bits):
    _int(name, v)
    if v < 0 or v >= (1 << bits):
        raise ValueError("%s must be in 0..%d, not %d" % (name, (1 << bits) - 1, v))
    return v


def _i32(name, v):
    _int(name, v)
    if not -(1 << 31) <= v < (1 << 31):
        raise ValueError("%s out of range: %d" % (name, v))
    return v


def _size(name, v):
    return _uint(name, v, ctypes.sizeof(ctypes.c_size_t) * 8)


def _flag(name, v):
    if not isinstance(v, (bool, int)):
        raise TypeError("%s must be a bool, not %s" % (name, type(v).__name__))
    return 1 if v else 0


def _cstr(name, v):
    """A str (encoded as UTF-8) or bytes for a NUL-terminated C string."""
    if isinstance(v, str):
        v = v.encode()
    elif not isinstance(v, bytes):
        raise TypeError("%s must be str, not %s" % (name, type(v).__name__))
    if b"\0" in v:
        raise ValueError("%s must not contain NUL characters" % name)
    return v


def _buffer(name, v):
    """Bytes for a (pointer, length) argument."""
    if isinstance(v, bytes):
        return v
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    raise TypeError("%s must be bytes-like, not %s" % (name, type(v).__name__))


def _enum(name, v, enum_cls):
    """An enum member given as the enum, its int value or its name."""
    if isinstance(v, str):
        try:
            return int(enum_cls[v.upper()])
        except KeyError:
            raise ValueError("%s: unknown %s %r (one of %s)" % (
                name, enum_cls.__name__, v,
                ", ".join(m.lower() for m in enum_cls.__members__))) from None
    _int(name, v)
    try:
        return int(enum_cls(v))
    except ValueError:
        raise ValueError("%s: %d is not a %s" % (name, v, enum_cls.__name__)) from None


def _text(p):
    return p.decode("utf-8", "replace") if p is not None else None


# ---- JSON documents (json_t*) -> Python -------------------------------------

_dumpb = _lib.wsmsg_json_dumpb


class _JsonBuf:
    """A growing buffer for wsmsg_json_dumpb (one per connection/schema)."""
    __slots__ = ("buf", "size")

    def __init__(self, size=4096):
        self.buf = create_string_buffer(size)
        self.size = size

    def dump(self, j):
        """json_t* -> its compact JSON text (bytes)."""
        n = _dumpb(j, self.buf, self.size)
        if n < 0:
            _raise(n, "wsmsg_json_dumpb")
        if n >= self.size:
            size = max(n + 1, self.size * 2)
            self.buf = create_string_buffer(size)
            self.size = size
            n = _dumpb(j, self.buf, size)
            if n < 0:
                _raise(n, "wsmsg_json_dumpb")
        return string_at(self.buf, n)


def _dumps(obj):
    """Compact JSON text of a Python value, as bytes (NaN refused)."""
    return _json.dumps(obj, separators=(",", ":"), ensure_ascii=False,
                       allow_nan=False).encode()


# ---- events -----------------------------------------------------------------------


class Event:
    """Base of the events Conn.next_event() returns.  Events are plain
    Python objects that own their data: they stay valid after the next
    call and after the connection is freed."""
    __slots__ = ()
    _fields = ()  # what __eq__ and __repr__ show
    type = EventType.NONE

    def __eq__(self, other):
        return type(self) is type(other) and all(
            getattr(self, f) == getattr(other, f) for f in self._fields)

    __hash__ = None

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__, ", ".join(
            "%s=%r" % (f, getattr(self, f)) for f in self._fields))


class Open(Event):
    """The opening handshake completed."""
    __slots__ = ()
    type = EventType.OPEN


class Text(Event):
    """A text message: `data` is a str."""
    __slots__ = ("data",)
    _fields = ("data",)
    type = EventType.TEXT

    def __init__(self, data):
        self.data = data


class Binary(Event):
    """A binary message: `data` is bytes."""
    __slots__ = ("data",)
    _fields = ("data",)
    type = EventType.BINARY

    def __init__(self, data):
        self.data = data


class Json(Event):
    """A valid JSON message (JSON endpoints): `data` is the parsed document
    as validated -- after coercion and defaults, so it can differ from
    `text`, the message as it arrived (decoded on first use)."""
    __slots__ = ("data", "_text")
    _fields = ("data", "text")
    type = EventType.JSON

    def __init__(self, data, text=None):
        self.data = data
        self._text = text

    @property
    def text(self):
        t = self._text
        if type(t) is bytes:
            t = self._text = t.decode()
        return t


class Invalid(Event):
    """A text message on a JSON endpoint that is not JSON or failed
    validation: `errors` is a list of Pydantic-shaped dicts
    ({"loc": [...], "msg": ..., "type": ..., maybe "ctx": {...}}), `text`
    the message.  The endpoint's invalid policy already answered the peer."""
    __slots__ = ("errors", "text")
    _fields = ("errors", "text")
    type = EventType.INVALID

    def __init__(self, errors, text=None):
        self.errors = errors
        self.text = text


class Close(Event):
    """The connection closed.  `code` (1005: no code, 1006: no close frame),
    `reason` (str), `clean` (closing handshake completed), `error` (0 or the
    WSMSG_ERR_* rule that fired, an ErrorCode) and `detail` (its
    explanation, "" when error is 0)."""
    __slots__ = ("code", "reason", "clean", "error", "detail")
    _fields = ("code", "reason", "clean", "error", "detail")
    type = EventType.CLOSE

    def __init__(self, code, reason="", clean=True, error=0, detail=""):
        self.code = code
        self.reason = reason
        self.clean = clean
        self.error = error
        self.detail = detail


class Timeout(Event):
    """The receive timeout passed (action EVENT): `kind` is a TimeoutKind."""
    __slots__ = ("kind",)
    _fields = ("kind",)
    type = EventType.TIMEOUT

    def __init__(self, kind=TimeoutKind.RECEIVE):
        self.kind = kind


class Pong(Event):
    """A pong arrived (Endpoint(pong_events=True)): `data` is its payload."""
    __slots__ = ("data",)
    _fields = ("data",)
    type = EventType.PONG

    def __init__(self, data=b""):
        self.data = data


class Drain(Event):
    """The output queue fell under the low water mark: sending may resume."""
    __slots__ = ()
    type = EventType.DRAIN


class Unknown(Event):
    """An event type this binding does not know (a newer library: new
    event types are a compatible addition, docs/abi.md).  `code` is its
    number; skip it."""
    __slots__ = ("code",)
    _fields = ("code",)
    type = EventType.NONE

    def __init__(self, code):
        self.code = code


def _as_error_code(e):
    try:
        return ErrorCode(e)
    except ValueError:
        return e


# ---- handle base: free exactly once, never before the objects using it ------


# guards the use counts and the handle swap; re-entrant because the garbage
# collector may run a __del__ (which frees) while this thread holds it
_users_lock = threading.RLock()


class _Handle:
    """Owns one C object.  free() (or the end of a `with` block, or garbage
    collection through __del__) frees it exactly once; any later use raises
    FreedError.  An object that others borrow (a schema used by endpoints,
    an endpoint routed by servers, a server with connections) refuses an
    explicit free() with StateError while they live; if it is garbage
    collected first (a reference cycle), the C free is deferred until the
    last user is freed."""

    _p = None
    _users = 0
    _free_pending = False
    _c_free = None  # the C destructor, set by subclasses

    def _ptr(self):
        p = self._p
        if p is None:
            raise FreedError("this %s was freed" % type(self).__name__)
        return p

    @property
    def freed(self):
        """True once the C object is freed."""
        return self._p is None

    def _adopt(self):
        with _users_lock:  # servers may accept on many threads
            self._users += 1

    def _release(self):
        with _users_lock:
            self._users -= 1
            last = self._users == 0 and self._free_pending
        if last:
            self._destroy()

    def _destroy(self):
        with _users_lock:
            p, self._p = self._p, None
        if p is not None:
            self._c_free(p)
            self._on_freed()

    def _on_freed(self):
        """Subclasses release what they borrowed."""

    def free(self):
        """Free the C object now (idempotent).  StateError while other
        objects still use it (free those first)."""
        with _users_lock:
            if self._p is None:
                return
            if self._users:
                raise StateError("%s still used by %d object(s); free them first"
                                 % (type(self).__name__, self._users),
                                 ErrorCode.ERR_STATE)
            p, self._p = self._p, None
        self._c_free(p)
        self._on_freed()

    def __enter__(self):
        self._ptr()
        return self

    def __exit__(self, *exc):
        self.free()

    def __del__(self):
        try:
            if self._p is None:
                return
            if self._users:
                self._free_pending = True
            else:
                self._destroy()
        except Exception:  # interpreter shutdown: nothing sensible to do
            pass


def _clock(fn):
    if not callable(fn):
        raise TypeError("clock must be callable (returning milliseconds)")

    def cb(_user):
        return int(fn())
    return _capi.clock_cb(cb)


# ---- schemas ----------------------------------------------------------------------

_DRAFTS = {None: 0, "2020-12": 0, "draft2020-12": 0, 202012: 0, 2020: 0,
           "draft-07": 1, "draft7": 1, "draft-7": 1, "7": 1, 7: 1}
_REWRITE = int(Validate.COERCE | Validate.DEFAULTS | Validate.EXTRA_IGNORE)
_EXTRA_FLAGS = {"allow": 0, "ignore": int(Validate.EXTRA_IGNORE),
                "forbid": int(Validate.EXTRA_FORBID)}


class Schema(_Handle):
    """A compiled JSON Schema (draft 2020-12 or draft-07): wsmsg_schema.

    Schema(json_schema, draft=None, jit=True): `json_schema` is JSON text
    (str/bytes) or a Python value (dict, bool) to serialize.  `draft`
    ("2020-12", the default, or "draft-07") applies when the schema has no
    "$schema".  Raises SchemaError if it does not compile.

    Immutable once compiled: any number of threads may validate with it
    (validation releases the GIL).  Endpoints borrow it; the binding keeps
    it alive while they exist."""

    _c_free = staticmethod(_lib.wsmsg_schema_free)

    def __init__(self, json_schema, draft=None, jit=True):
        if isinstance(json_schema, (dict, bool)):
            text = _dumps(json_schema)
        elif isinstance(json_schema, str):
            text = json_schema.encode()
        elif isinstance(json_schema, bytes):
            text = json_schema
        else:
            raise TypeError("json_schema must be str, bytes, dict or bool, not %s"
                            % type(json_schema).__name__)
        key = draft.lower() if isinstance(draft, str) else draft
        if isinstance(key, bool) or key not in _DRAFTS:
            raise ValueError("draft must be '2020-12' or 'draft-07', not %r" % (draft,))
        opts = _DRAFTS[key] | (0 if jit else int(SchemaOption.NO_JIT))
        out = _capi.SCHEMA()
        err = create_string_buffer(512)
        r = _lib.wsmsg_schema_compile(text, len(text), opts, byref(out), err, 512)
        if r < 0:
            raise SchemaError("schema: %s" % (err.value.decode("utf-8", "replace")
                                               or strerror(r)), r)
        self._p = out

    @property
    def dialect(self):
        """"2020-12" or "draft-07": the dialect of the schema's root."""
        d = _check(_lib.wsmsg_schema_dialect(self._ptr()), "wsmsg_schema_dialect")
        return "2020-12" if d == 202012 else "draft-07"

    def set_regex_limits(self, match_limit=0, depth_limit=0):
        """Bound each match of the schema's patterns: PCRE2's match limit
        and depth limit (0: the default, WSMSG_REGEX_*_LIMIT_DEFAULT).  A
        match that hits one is an error of type
        "value_error.str.regex_limit", not a mismatch.  Call it before
        sharing the schema between threads (wsmsg_schema_set_regex_limits)."""
        for name, v in (("match_limit", match_limit), ("depth_limit", depth_limit)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError("%s must be an int" % name)
            if not 0 <= v <= 0xFFFFFFFF:
                raise ValueError("%s must be in [0, 2**32)" % name)
        _check(_lib.wsmsg_schema_set_regex_limits(self._ptr(), match_limit,
                                                  depth_limit),
               "wsmsg_schema_set_regex_limits")

    def _flags(self, coerce, defaults, format, extra="allow", error_style="v1"):
        if extra not in _EXTRA_FLAGS:
            raise ValueError("extra must be 'allow', 'ignore' or 'forbid', not %r"
                             % (extra,))
        return ((int(Validate.COERCE) if _flag("coerce", coerce) else 0)
                | (int(Validate.DEFAULTS) if _flag("defaults", defaults) else 0)
                | (int(Validate.FORMAT) if _flag("format", format) else 0)
                | _EXTRA_FLAGS[extra]
                | (int(Validate.PYDANTIC_V2) if _error_style(error_style) else 0))

    def validate(self, obj, coerce=False, defaults=False, format=False,
                 max_errors=None, extra="allow", error_style="v1"):
        """Validate a Python value (anything json.dumps takes; TypeError
        otherwise).  Returns (value, errors): `errors` is a list of
        Pydantic-shaped dicts (empty when valid); `value` is `obj` itself
        in strict mode, or a new, rewritten copy with coerce=True ("12" ->
        12 where a number is wanted, 1 -> "1" for a string...) or
        defaults=True (missing properties filled from "default").
        format=True asserts "format" (date-time, email, uuid, ipv4, ipv6,
        uri).  At most max_errors errors are collected (default 32).
        extra= is Pydantic's model config: "allow" (keep undeclared
        properties), "ignore" (drop them: a rewritten copy is returned) or
        "forbid" (errors), see docs/schema.md "Extra properties".
        error_style="v2" gives Pydantic v2's error dicts ({"type":
        "missing", "loc": [...], "msg": "Field required", "input": ...})
        instead of v1's (the default)."""
        text = _dumps(obj)
        flags = self._flags(coerce, defaults, format, extra, error_style)
        doc, errors = self._validate(text, flags, max_errors)
        return (doc if flags & _REWRITE and doc is not _NO_DOC else obj), errors

    def validate_text(self, text, coerce=False, defaults=False, format=False,
                      max_errors=None, extra="allow", error_style="v1"):
        """As validate() for JSON text (str or bytes).  Text that is not
        JSON gives (None, [{"loc": ["__root__"], "type":
        "value_error.jsondecode", ...}])."""
        if isinstance(text, str):
            text = text.encode()
        elif not isinstance(text, (bytes, bytearray, memoryview)):
            raise TypeError("text must be str or bytes, not %s" % type(text).__name__)
        text = bytes(text)
        doc, errors = self._validate(text,
                                     self._flags(coerce, defaults, format, extra,
                                                 error_style),
                                     max_errors, want_doc=True)
        return (None if doc is _NO_DOC else doc), errors

    def is_valid(self, obj, format=False):
        """True if `obj` is valid (strict; no error list is built: faster)."""
        text = _dumps(obj)
        flags = int(Validate.FORMAT) if _flag("format", format) else 0
        r = _lib.wsmsg_schema_validate_text(self._ptr(), text, len(text), flags,
                                            None, None)
        if r == ErrorCode.ERR_VALIDATION:
            return False
        _check(r, "wsmsg_schema_validate_text")
        return True

    def _validate(self, text, flags, max_errors, want_doc=False):
        p = self._ptr()
        errs = _lib.wsmsg_verrors_new()
        if not errs:
            raise MemoryError("wsmsg_verrors_new")
        doc = _capi.JSON()
        try:
            if max_errors is not None:
                if _size("max_errors", max_errors) == 0:
                    raise ValueError("max_errors must be at least 1")
                _lib.wsmsg_verrors_set_max(errs, max_errors)
            wants = want_doc or flags & _REWRITE
            r = _lib.wsmsg_schema_validate_text(p, text, len(text), flags, errs,
                                                byref(doc) if wants else None)
            if r not in (0, ErrorCode.ERR_VALIDATION, ErrorCode.ERR_JSON):
                _raise(r, "wsmsg_schema_validate_text")
            out = _NO_DOC
            if doc:
                jb = getattr(_tls, "jbuf", None)
                if jb is None:
                    jb = _tls.jbuf = _JsonBuf()
                out = _json.loads(jb.dump(doc))
            return out, (verrors_list(errs) if r else [])
        finally:
            if doc:
                _lib.wsmsg_json_decref(doc)
            _lib.wsmsg_verrors_free(errs)


_NO_DOC = object()
_tls = threading.local()  # a dump buffer per thread (schemas are shared)


def verrors_list(errs):
    """The errors of a wsmsg_verrors* as a list of Pydantic-shaped dicts
    (through wsmsg_verrors_dump)."""
    size = 4096
    for _ in range(3):
        buf = create_string_buffer(size)
        n = _lib.wsmsg_verrors_dump(errs, buf, size)
        if n < 0:
            _raise(n, "wsmsg_verrors_dump")
        if n < size:
            return _json.loads(string_at(buf, n))["detail"]
        size = n + 1
    raise Error("wsmsg_verrors_dump: the error list keeps growing")


# ---- endpoints ----------------------------------------------------------------------

_ENDPOINT_OPTIONS = (
    "max_message_size", "max_fragments", "subprotocols", "require_subprotocol",
    "origins", "pong_events", "backpressure", "max_queued", "receive_timeout",
    "timeout_action", "heartbeat", "ping_interval", "pong_timeout",
    "message_timeout", "close_timeout", "write_timeout", "handshake_timeout",
    "idle_timeout", "rate_limit", "invalid_limit", "json", "schema",
    "validation", "invalid_policy", "allow_duplicate_keys", "max_errors",
    "route_field", "routes", "clock", "extra", "error_style", "unhandled",
    "deflate", "deflate_level", "deflate_window", "deflate_takeover",
    "deflate_threshold")


class Endpoint(_Handle):
    """How to treat a kind of connection: limits, timeouts, subprotocols,
    JSON mode, schema, routes (wsmsg_endpoint).  Messages reach Python as
    events (Conn.next_event); the binding sets no C callbacks for them.

    Every option is a keyword of the constructor and a set_* method
    (times in milliseconds, 0 = off, as in C):

      max_message_size=1 MiB  max_fragments=4096  subprotocols=("chat.v2",)
      require_subprotocol=False  origins=("https://a.example",)
      pong_events=False  backpressure=(high, low, "fail"|"close")
      max_queued=(events, bytes)  receive_timeout  timeout_action=
      "event"|"ping"|"heartbeat"|"close_1001"|"close_1011"  heartbeat="HEARTBEAT"
      ping_interval=20000  pong_timeout=20000  message_timeout=60000
      close_timeout=10000  write_timeout=30000  idle_timeout (off)
      rate_limit=(messages_per_s, bytes_per_s, "close"|"drop") (off)
      invalid_limit=(count, window_ms) (JSON: 32 within 10000)
      handshake_timeout=10000 (client side)
      json=False  schema=Schema  validation=Validate.COERCE|Validate.DEFAULTS
      extra="allow"|"ignore"|"forbid" (Pydantic's model config extra)
      error_style="v1"|"v2" (Pydantic's error shapes; v1 by default)
      invalid_policy="reply"|"close"|"ignore"  allow_duplicate_keys=False
      unhandled="close"|"ignore" (push endpoints only; see set_unhandled)
      max_errors=32  route_field="type", routes={"chat": Schema or None}
      clock=callable returning ms (client connections; tests)
      deflate="off"|"on"|"low_memory"|"max_ratio" (permessage-deflate)
      deflate_level=(level, mem_level)  deflate_window=(ours, peers)
      deflate_takeover=(ours, peers)  deflate_threshold=128

    Configure first: once a connection used the endpoint, setters raise
    StateError.  Then it is immutable and may be shared by threads.  The
    endpoint must outlive its connections and the servers routing to it:
    the binding holds the references, and free() refuses while they live."""

    _c_free = staticmethod(_lib.wsmsg_endpoint_free)

    def __init__(self, **options):
        bad = set(options) - set(_ENDPOINT_OPTIONS)
        if bad:
            raise TypeError("Endpoint() got unknown option(s): %s"
                            % ", ".join(sorted(bad)))
        p = _lib.wsmsg_endpoint_new()
        if not p:
            raise MemoryError("wsmsg_endpoint_new")
        self._p = p
        self._schemas = []  # borrowed by the C endpoint
        self._vflags = _REWRITE  # the C default validation flags
        self._clock_cb = None
        self.clock = None  # the Python clock given to set_clock, if any
        o = options
        for k in ("max_message_size", "max_fragments", "require_subprotocol",
                  "pong_events", "receive_timeout", "ping_interval",
                  "pong_timeout", "message_timeout", "close_timeout",
                  "write_timeout", "handshake_timeout", "idle_timeout",
                  "json", "schema",
                  "validation", "extra", "error_style", "invalid_policy",
                  "allow_duplicate_keys", "max_errors", "clock", "unhandled"):
            if o.get(k) is not None:
                getattr(self, "set_" + k)(o[k])
        for s in o.get("subprotocols") or ():
            self.add_subprotocol(s)
        for origin in o.get("origins") or ():
            self.allow_origin(origin)
        if o.get("deflate") is not None:
            self.set_deflate(o["deflate"])
        for k in ("deflate_level", "deflate_window", "deflate_takeover"):
            if o.get(k) is not None:
                getattr(self, "set_" + k)(*o[k])
        if o.get("deflate_threshold") is not None:
            self.set_deflate_threshold(o["deflate_threshold"])
        if o.get("backpressure") is not None:
            self.set_backpressure(*o["backpressure"])
        if o.get("max_queued") is not None:
            self.set_max_queued(*o["max_queued"])
        if o.get("rate_limit") is not None:
            self.set_rate_limit(*o["rate_limit"])
        if o.get("invalid_limit") is not None:
            self.set_invalid_limit(*o["invalid_limit"])
        action = o.get("timeout_action")
        if action is not None or o.get("heartbeat") is not None:
            # heartbeat= alone means the HEARTBEAT action
            self.set_timeout_action("heartbeat" if action is None else action,
                                    o.get("heartbeat"))
        routes = o.get("routes")
        if routes:
            field = o.get("route_field")
            if field is None:
                raise TypeError("routes= needs route_field=")
            for value, schema in routes.items():
                self.route_json(field, value, schema)
        elif o.get("route_field") is not None:
            raise TypeError("route_field= without routes=")

    def _on_freed(self):
        for s in self._schemas:
            s._release()
        self._schemas = []

    def _set(self, fn, *args):
        _check(fn(self._ptr(), *args), fn.__name__)
        return self

    def set_max_message_size(self, n):
        """Largest message in bytes (0: no limit); more closes with 1009."""
        return self._set(_lib.wsmsg_endpoint_set_max_message_size,
                         _uint("max_message_size", n, 64))

    def set_max_fragments(self, n):
        """Most frames per message (0: unlimited); more closes with 1009."""
        return self._set(_lib.wsmsg_endpoint_set_max_fragments,
                         _uint("max_fragments", n, 32))

    def add_subprotocol(self, name):
        """A subprotocol, in order of preference (an HTTP token)."""
        return self._set(_lib.wsmsg_endpoint_add_subprotocol, _cstr("subprotocol", name))

    def set_deflate(self, mode):
        """permessage-deflate preset: "off" (the default), "on" (no
        context takeover: no zlib state while idle), "low_memory" or
        "max_ratio" (context takeover); replaces the deflate_* settings."""
        return self._set(_lib.wsmsg_endpoint_set_deflate,
                         _enum("deflate", mode, DeflateMode))

    def set_deflate_level(self, level, mem_level):
        """zlib compression level (1-9) and memLevel (1-9)."""
        return self._set(_lib.wsmsg_endpoint_set_deflate_level,
                         _i32("level", level), _i32("mem_level", mem_level))

    def set_deflate_window(self, ours, peers):
        """LZ77 window bits (8-15): ours, and the largest asked of the peer."""
        return self._set(_lib.wsmsg_endpoint_set_deflate_window,
                         _i32("ours", ours), _i32("peers", peers))

    def set_deflate_takeover(self, ours, peers):
        """Context takeover for our messages and asked of the peer's."""
        return self._set(_lib.wsmsg_endpoint_set_deflate_takeover,
                         _flag("ours", ours), _flag("peers", peers))

    def set_deflate_threshold(self, n):
        """Messages shorter than n bytes go uncompressed (default 128)."""
        return self._set(_lib.wsmsg_endpoint_set_deflate_threshold,
                         _uint("deflate_threshold", n, 32))

    def set_require_subprotocol(self, on=True):
        """Server side: refuse (400) clients offering none of ours."""
        return self._set(_lib.wsmsg_endpoint_require_subprotocol,
                         _flag("require_subprotocol", on))

    def allow_origin(self, origin):
        """Allow browsers from this Origin ("*": all)."""
        return self._set(_lib.wsmsg_endpoint_allow_origin, _cstr("origin", origin))

    def set_pong_events(self, on=True):
        """Deliver pongs as Pong events."""
        return self._set(_lib.wsmsg_endpoint_set_pong_events, _flag("pong_events", on))

    def set_backpressure(self, high, low, policy="fail"):
        """Output queue water marks in bytes and the policy ("fail": sends
        raise BackpressureError; "close": close 1008)."""
        return self._set(_lib.wsmsg_endpoint_set_backpressure, _size("high", high),
                         _size("low", low), _enum("policy", policy, BackpressurePolicy))

    def set_max_queued(self, count, nbytes):
        """Bound the event queue (0: no bound); past it the connection is
        closed with 1008 (the application does not read its events)."""
        return self._set(_lib.wsmsg_endpoint_set_max_queued, _size("count", count),
                         _size("bytes", nbytes))

    def set_receive_timeout(self, ms):
        """No data message within `ms`: the timeout action."""
        return self._set(_lib.wsmsg_endpoint_set_receive_timeout,
                         _uint("receive_timeout", ms, 32))

    def set_timeout_action(self, action, heartbeat=None):
        """What the receive timeout does: "event" (a Timeout event), "ping",
        "heartbeat" (send the text `heartbeat`, default "HEARTBEAT"),
        "close_1001", "close_1011"."""
        hb = None if heartbeat is None else _cstr("heartbeat", heartbeat)
        return self._set(_lib.wsmsg_endpoint_set_timeout_action,
                         _enum("timeout_action", action, TimeoutAction), hb)

    def set_ping_interval(self, ms):
        """Keepalive ping after `ms` without anything from the peer."""
        return self._set(_lib.wsmsg_endpoint_set_ping_interval,
                         _uint("ping_interval", ms, 32))

    def set_pong_timeout(self, ms):
        """A keepalive ping unanswered for `ms` closes with 1011."""
        return self._set(_lib.wsmsg_endpoint_set_pong_timeout,
                         _uint("pong_timeout", ms, 32))

    def set_message_timeout(self, ms):
        """A fragmented message not completed within `ms` closes with 1008."""
        return self._set(_lib.wsmsg_endpoint_set_message_timeout,
                         _uint("message_timeout", ms, 32))

    def set_close_timeout(self, ms):
        """The closing handshake must finish within `ms` (default 10000)."""
        return self._set(_lib.wsmsg_endpoint_set_close_timeout,
                         _uint("close_timeout", ms, 32))

    def set_write_timeout(self, ms):
        """Pending output without progress for `ms` aborts the connection."""
        return self._set(_lib.wsmsg_endpoint_set_write_timeout,
                         _uint("write_timeout", ms, 32))

    def set_rate_limit(self, messages_per_s, bytes_per_s, policy="close"):
        """At most `messages_per_s` received messages and `bytes_per_s`
        bytes a second per connection (0: no limit); over it "close"
        (1008) or "drop" the message."""
        return self._set(_lib.wsmsg_endpoint_set_rate_limit,
                         _uint("messages_per_s", messages_per_s, 32),
                         _uint("bytes_per_s", bytes_per_s, 64),
                         _enum("policy", policy, LimitPolicy))

    def set_invalid_limit(self, count, window_ms):
        """JSON: more than `count` invalid messages within `window_ms`
        close the connection with 1008 (count 0: off)."""
        return self._set(_lib.wsmsg_endpoint_set_invalid_limit,
                         _uint("count", count, 32),
                         _uint("window_ms", window_ms, 32))

    def set_idle_timeout(self, ms):
        """No data message either way for `ms` closes with 1001 (default
        0, off)."""
        return self._set(_lib.wsmsg_endpoint_set_idle_timeout,
                         _uint("idle_timeout", ms, 32))

    def set_handshake_timeout(self, ms):
        """Client connections: the 101 must arrive within `ms`."""
        return self._set(_lib.wsmsg_endpoint_set_handshake_timeout,
                         _uint("handshake_timeout", ms, 32))

    def set_clock(self, fn):
        """The clock of this endpoint's client connections: a callable
        returning milliseconds (None: wsmsg_now_ms).  Called from C: an
        exception inside is printed and counts as time 0."""
        cb = _capi.clock_cb() if fn is None else _clock(fn)
        self._set(_lib.wsmsg_endpoint_set_clock, cb, None)
        self._clock_cb = cb  # C keeps the pointer: keep the thunk alive
        self.clock = fn
        return self

    def set_json(self, on=True):
        """Make this a JSON endpoint: text messages become Json or Invalid
        events."""
        return self._set(_lib.wsmsg_endpoint_set_json, _flag("json", on))

    def set_schema(self, schema):
        """Validate JSON messages against `schema` (a Schema; None: no
        validation).  Makes this a JSON endpoint.  The schema is kept alive
        as long as the endpoint."""
        if schema is not None and not isinstance(schema, Schema):
            raise TypeError("schema must be a Schema, not %s" % type(schema).__name__)
        sp = schema._ptr() if schema is not None else None
        self._set(_lib.wsmsg_endpoint_set_schema, sp)
        if schema is not None:
            schema._adopt()
            self._schemas.append(schema)
        return self

    def set_validation(self, flags):
        """Validate flags (default COERCE | DEFAULTS, as FastAPI; 0 or
        "strict" for plain JSON Schema)."""
        if flags == "strict":
            flags = 0
        if isinstance(flags, bool) or not isinstance(flags, int):
            raise TypeError("validation must be Validate flags")
        self._set(_lib.wsmsg_endpoint_set_validation, _uint("validation", int(flags), 32))
        self._vflags = int(flags)
        return self

    def set_extra(self, policy):
        """Properties the schema does not declare: "allow" (kept, the
        default), "ignore" (dropped before the message is delivered, as
        Pydantic's default) or "forbid" (the message is invalid).  Sets
        Validate.EXTRA_* in the validation flags."""
        p = _enum("extra", policy, ExtraPolicy)
        self._set(_lib.wsmsg_endpoint_set_extra, p)
        self._vflags = (self._vflags & ~int(Validate.EXTRA_IGNORE | Validate.EXTRA_FORBID)) | (
            (0, int(Validate.EXTRA_IGNORE), int(Validate.EXTRA_FORBID))[p])
        return self

    def set_error_style(self, style):
        """Shape of the validation errors: "v1" (Pydantic v1 / FastAPI
        < 0.100, the default) or "v2" ({"type", "loc", "msg", "input",
        "ctx"} with Pydantic v2's types and messages)."""
        s = _error_style(style)
        self._set(_lib.wsmsg_endpoint_set_error_style, s)
        self._vflags = (self._vflags & ~int(Validate.PYDANTIC_V2)) | (
            int(Validate.PYDANTIC_V2) if s else 0)
        return self

    def set_invalid_policy(self, policy):
        """What the peer sees after an invalid message: "reply" (the
        default: {"error": "validation_error", "detail": [...]}),
        "close" (1008) or "ignore"."""
        return self._set(_lib.wsmsg_endpoint_set_invalid_policy,
                         _enum("invalid_policy", policy, InvalidPolicy))

    def set_unhandled(self, policy):
        """What a push endpoint (one with a C message callback) does with a
        message kind it has no callback for: "close" (1003, the default)
        or "ignore".  The binding's endpoints deliver every message as an
        event (pull endpoints), so this matters only to an endpoint shared
        with C code that sets message callbacks."""
        return self._set(_lib.wsmsg_endpoint_set_unhandled,
                         _enum("unhandled", policy, UnhandledPolicy))

    def set_allow_duplicate_keys(self, on=True):
        """Accept objects with duplicate keys (the last one wins)."""
        return self._set(_lib.wsmsg_endpoint_allow_duplicate_keys,
                         _flag("allow_duplicate_keys", on))

    def set_max_errors(self, n):
        """Most errors reported per invalid message (at least 1)."""
        return self._set(_lib.wsmsg_endpoint_set_max_errors, _size("max_errors", n))

    def route_json(self, field, value, schema=None):
        """Route JSON objects whose `field` equals `value` to `schema` (None:
        not validated).  All routes use one field; a missing or unknown
        value is an Invalid message at loc [field]."""
        if schema is not None and not isinstance(schema, Schema):
            raise TypeError("schema must be a Schema, not %s" % type(schema).__name__)
        sp = schema._ptr() if schema is not None else None
        self._set(_lib.wsmsg_endpoint_route_json, _cstr("field", field),
                  _cstr("value", value), sp, _capi.json_cb())
        if schema is not None:
            schema._adopt()
            self._schemas.append(schema)
        return self

    def client(self, host, path, headers=None, user=None):
        """A client connection to `host` ("example.com:8080", the Host
        header) at `path` ("/ws/chat?room=1"), speaking this endpoint's
        options.  The host connects the socket.  `headers`: extra request
        headers (a dict or pairs).  Returns a Conn."""
        p = _lib.wsmsg_client_new(self._ptr(), _cstr("host", host),
                                  _cstr("path", path), None)
        if not p:
            raise ValueError("wsmsg_client_new failed: host and path must be "
                             "non-empty, the path start with '/', no CR/LF")
        conn = Conn._wrap(p, self, user)
        try:
            items = headers.items() if isinstance(headers, dict) else (headers or ())
            for name, value in items:
                conn.add_header(name, value)
        except BaseException:
            conn.free()
            raise
        return conn


# ---- servers ------------------------------------------------------------------------


class Server(_Handle):
    """Routes request paths to endpoints and accepts connections
    (wsmsg_server).

    Server(routes={"/ws/chat": ep}, handshake_timeout=10000,
    max_request_size=8192, max_headers=64, clock=None, on_output=None,
    memory_budget=(256 MiB, 64 KiB per connection); (0, 0) turns it off).
    Paths ending in "*" are prefix routes.  on_output(conn) is called when
    a broadcast gives a connection its first pending bytes (see
    set_on_output).  Configure first; once it accepted, setters raise
    StateError.  The server keeps its endpoints alive and must outlive its
    connections (free() refuses while they live)."""

    _c_free = staticmethod(_lib.wsmsg_server_free)

    def __init__(self, routes=None, handshake_timeout=None, max_request_size=None,
                 max_headers=None, clock=None, on_output=None,
                 memory_budget=None):
        p = _lib.wsmsg_server_new()
        if not p:
            raise MemoryError("wsmsg_server_new")
        self._p = p
        self._endpoints = {}  # path -> Endpoint (borrowed by C)
        self._by_addr = {}    # C endpoint address -> Endpoint
        self._clock_cb = None
        self.clock = None
        self._output_cb = None
        self.on_output = None
        self._conns = weakref.WeakValueDictionary()  # C address -> Conn
        if on_output is not None:
            self.set_on_output(on_output)
        if handshake_timeout is not None:
            self.set_handshake_timeout(handshake_timeout)
        if max_request_size is not None:
            self._set(_lib.wsmsg_server_set_max_request_size,
                      _size("max_request_size", max_request_size))
        if max_headers is not None:
            self._set(_lib.wsmsg_server_set_max_headers,
                      _uint("max_headers", max_headers, 32))
        if clock is not None:
            self.set_clock(clock)
        if memory_budget is not None:
            self.set_memory_budget(*memory_budget)
        for path, ep in (routes or {}).items():
            self.route(path, ep)

    def _on_freed(self):
        for ep in self._endpoints.values():
            ep._release()
        self._endpoints = {}
        self._by_addr = {}

    def _set(self, fn, *args):
        _check(fn(self._ptr(), *args), fn.__name__)
        return self

    def set_memory_budget(self, total, per_conn):
        """Bytes all connections may hold in messages and output beyond
        `per_conn` each; past it a connection asking for more is closed
        with 1013 (wsmsg_server_set_memory_budget).  total 0: off."""
        return self._set(_lib.wsmsg_server_set_memory_budget,
                         _size("total", total), _size("per_conn", per_conn))

    @property
    def memory_used(self):
        """Bytes the connections hold now (what the budget counts)."""
        return _lib.wsmsg_server_memory_used(self._ptr())

    @property
    def routes(self):
        """{path: Endpoint} (a copy)."""
        return dict(self._endpoints)

    def route(self, path, endpoint):
        """Serve `path` with `endpoint`."""
        if not isinstance(endpoint, Endpoint):
            raise TypeError("endpoint must be an Endpoint, not %s" % type(endpoint).__name__)
        path_b = _cstr("path", path)
        epp = endpoint._ptr()
        self._set(_lib.wsmsg_server_route, path_b, epp)
        endpoint._adopt()
        self._endpoints[path_b.decode()] = endpoint
        self._by_addr[ctypes.addressof(epp.contents)] = endpoint
        return self

    def set_handshake_timeout(self, ms):
        """The upgrade request must be complete within `ms` (else 408)."""
        return self._set(_lib.wsmsg_server_set_handshake_timeout,
                         _uint("handshake_timeout", ms, 32))

    def set_clock(self, fn):
        """The clock of the server's connections (a callable returning ms;
        None: wsmsg_now_ms).  See Endpoint.set_clock."""
        cb = _capi.clock_cb() if fn is None else _clock(fn)
        self._set(_lib.wsmsg_server_set_clock, cb, None)
        self._clock_cb = cb
        self.clock = fn
        return self

    def set_on_output(self, fn):
        """fn(conn) is called when a broadcast (broadcast, broadcast_json)
        gives one of this server's connections output while it had none
        pending: write conn's data_to_send() soon (e.g. loop.call_soon),
        since no call of yours on that connection reveals it.  Called from
        C during the broadcast: fn must not free connections; an exception
        inside is printed and ignored.  None turns it off."""
        if fn is not None and not callable(fn):
            raise TypeError("on_output must be callable")
        if fn is None:
            cb = _capi.output_cb()
        else:
            conns = self._conns

            def cb_fn(conn_p, _user):
                try:
                    c = conns.get(ctypes.addressof(conn_p.contents))
                    if c is not None:
                        fn(c)
                except Exception:  # noqa: BLE001 - C cannot take it
                    traceback.print_exc()
            cb = _capi.output_cb(cb_fn)
        self._set(_lib.wsmsg_server_on_output, cb)
        self._output_cb = cb  # C keeps the pointer: keep the thunk alive
        self.on_output = fn
        return self

    # -- the registry and graceful drain --

    @property
    def conn_count(self):
        """How many connections this server accepted that are not freed yet
        (any state): a draining host exits when it reaches 0
        (wsmsg_server_conn_count)."""
        return _lib.wsmsg_server_conn_count(self._ptr())

    def close_all(self, code=1000, reason=""):
        """Close every open connection with `code` and `reason` (as
        Conn.close: a close frame is queued, the closing handshake runs as
        usual); connections still in the opening handshake are ended at once
        unless they are writing an HTTP answer, which is then their last
        (wsmsg_server_close_all).  Each connection it changes that had no
        output pending is reported to on_output: write its data_to_send()
        and check done.  Returns how many got a close frame.
        Error(ERR_CLOSE_CODE) for a code Conn.close refuses, Error(ERR_UTF8)
        for a bytes reason that is not UTF-8.  Call it from the thread that
        runs the server's connections."""
        return _check(_lib.wsmsg_server_close_all(
            self._ptr(), _i32("code", code), _cstr("reason", reason)),
            "close_all")

    def drain(self):
        """Start a graceful drain (SIGTERM in a rolling deploy): from now on
        every upgrade is refused with 503 and every plain HTTP answer closes
        its connection, and every open connection is closed with 1001
        "going away" (wsmsg_server_drain).  Keep the loop running until
        conn_count is 0 (or your drain timeout passes), then free what is
        left.  Returns how many connections got a close frame.  Call it
        from the thread that runs the server's connections."""
        return _check(_lib.wsmsg_server_drain(self._ptr()), "drain")

    @property
    def draining(self):
        """True once drain() was called (any thread may ask)."""
        return _lib.wsmsg_server_draining(self._ptr()) == 1

    def accept(self, user=None):
        """A server connection for a socket the host just accepted; it waits
        for the upgrade request.  `user` is stored as conn.user (Python
        only).  Returns a Conn."""
        p = _lib.wsmsg_server_accept(self._ptr(), None)
        if not p:
            raise MemoryError("wsmsg_server_accept")
        c = Conn._wrap(p, self, user)
        self._conns[c._addr] = c  # for on_output
        return c


# ---- connections --------------------------------------------------------------------

_next_event = _lib.wsmsg_conn_next_event
_pending = _lib.wsmsg_conn_pending
_consume = _lib.wsmsg_conn_consume
_recv = _lib.wsmsg_conn_recv
_send_text = _lib.wsmsg_send_text
_send_binary = _lib.wsmsg_send_binary
_conn_done = _lib.wsmsg_conn_done
_EV_TEXT, _EV_BINARY, _EV_JSON, _EV_INVALID, _EV_CLOSE = 2, 3, 8, 9, 4
_EV_OPEN, _EV_PONG, _EV_TIMEOUT, _EV_DRAIN = 1, 5, 6, 7
_OPEN = Open()
_DRAIN = Drain()


class Conn(_Handle):
    """One WebSocket connection over a socket the host owns (wsmsg_conn),
    sans-I/O: feed what the socket read to recv(), write what
    data_to_send() (or pending()/consume()) returns, call tick() when
    next_deadline() says, and take messages as events:

        for ev in conn:          # drains the queued events
            if isinstance(ev, wsmsg.Text): conn.send_text(ev.data)

    Made by Server.accept() and Endpoint.client(), never directly.  It
    keeps its server (or endpoint) alive.  Not thread-safe: use one
    connection from one thread at a time (the C rule).  free() (or `with`,
    or garbage collection) frees it once; afterwards every method raises
    FreedError.  Freeing does not report a Close event: abort() first if
    the application must see one."""

    _c_free = staticmethod(_lib.wsmsg_conn_free)

    def __init__(self, *a, **k):
        raise TypeError("use Server.accept() or Endpoint.client() to make a Conn")

    @classmethod
    def _wrap(cls, p, parent, user):
        self = object.__new__(cls)
        self._p = p
        self._addr = ctypes.addressof(p.contents)
        self._parent = parent
        parent._adopt()
        self.user = user
        self._ev = _capi.wsmsg_event()
        self._evp = byref(self._ev)
        self._out = c_void_p()
        self._outp = byref(self._out)
        self._jbuf = None
        self._timers = None
        self._topic_sets = None  # Topics holding this conn (weak)
        self._strict = False  # JSON events need no re-serialization
        return self

    def _on_freed(self):
        reg = getattr(self._parent, "_conns", None)
        if reg is not None and reg.get(self._addr) is self:
            del reg[self._addr]
        t = self._timers() if self._timers is not None else None
        if t is not None:
            t._forget(self)
        self._timers = None
        self._left_topics()
        parent, self._parent = self._parent, None
        parent._release()

    # -- bytes in, bytes out --

    def recv(self, data):
        """Feed bytes read from the socket (bytes-like).  Messages become
        events.  Returns 0, or a negative WSMSG_ERR_* code when the bytes
        broke a rule (the connection is then closing: a Close event says
        why) or the connection no longer reads (ERR_CLOSED).  Peer errors
        are not raised: they are the peer's doing, not the program's."""
        p = self._p
        if p is None:
            self._ptr()
        if type(data) is not bytes:
            data = _buffer("data", data)
        return _recv(p, data, len(data))

    def eof(self):
        """The peer closed its side of TCP (read returned 0)."""
        _lib.wsmsg_conn_eof(self._ptr())

    def abort(self):
        """Give up on the connection now (Close event with 1006, pending
        output dropped)."""
        _lib.wsmsg_conn_abort(self._ptr())

    def pending(self):
        """The bytes to write next (a copy; nothing is consumed)."""
        p = self._ptr()
        n = _pending(p, self._outp)
        return string_at(self._out, n) if n else b""

    def consume(self, n):
        """`n` of the pending bytes were written."""
        _consume(self._ptr(), _size("n", n))

    def data_to_send(self):
        """All pending bytes, consumed: for transports that buffer
        themselves (asyncio).  b"" when there is nothing."""
        p = self._p
        if p is None:
            self._ptr()
        n = _pending(p, self._outp)
        if not n:
            return b""
        data = string_at(self._out, n)
        _consume(p, n)
        return data

    def io_fd(self, fd):
        """wsmsg_conn_io_fd: read what a socket has (fd or socket object),
        write what is pending.  1 when done, 0 to go on, <0 on a socket
        error."""
        return _lib.wsmsg_conn_io_fd(self._ptr(), _fileno(fd))

    # -- time --

    def tick(self, now=None):
        """Run the timers due at `now` (ms of the connection's clock;
        default: that clock's now -- the server's or endpoint's clock=, else
        wsmsg_now_ms()).  Then write data_to_send() and check done."""
        p = self._ptr()
        if now is None:
            clock = self._parent.clock
            now = int(clock()) if clock is not None else _now_ms()
        _lib.wsmsg_conn_tick(p, _uint("now", now, 64))

    def next_deadline(self):
        """Milliseconds until the next deadline (0 if passed), or None."""
        d = _lib.wsmsg_conn_next_deadline(self._ptr())
        return None if d < 0 else d

    def deadline(self):
        """The next deadline as an absolute clock value in ms, or None."""
        d = _lib.wsmsg_conn_deadline(self._ptr())
        return None if d < 0 else d

    # -- sending (all raise: StateError before the handshake, ClosedError
    #    after a close frame, BackpressureError above the high mark) --

    def send_text(self, text):
        """Queue a text message (a str)."""
        p = self._p
        if p is None:
            self._ptr()
        if type(text) is not str:
            raise TypeError("send_text takes a str, not %s" % type(text).__name__)
        b = text.encode()
        r = _send_text(p, b, len(b))
        if r:
            _raise(r, "send_text")

    def send_bytes(self, data):
        """Queue a binary message (bytes-like)."""
        p = self._p
        if p is None:
            self._ptr()
        if type(data) is not bytes:
            if isinstance(data, str):
                raise TypeError("send_bytes takes bytes, not str (send_text?)")
            data = _buffer("data", data)
        r = _send_binary(p, data, len(data))
        if r:
            _raise(r, "send_bytes")

    def send_json(self, obj):
        """Queue `obj` as compact JSON text (json.dumps; TypeError for
        values it cannot serialize, ValueError for NaN/Infinity)."""
        p = self._p
        if p is None:
            self._ptr()
        b = _dumps(obj)
        r = _send_text(p, b, len(b))
        if r:
            _raise(r, "send_json")

    def ping(self, payload=b""):
        """Queue a ping (payload up to 125 bytes)."""
        data = _buffer("payload", payload)
        if len(data) > 125:
            raise ValueError("a ping payload is at most 125 bytes")
        _check(_lib.wsmsg_send_ping(self._ptr(), data, len(data)), "ping")

    def close(self, code=1000, reason=""):
        """Start the closing handshake (code 1000-1003, 1007-1014,
        3000-4999, or 0 for none).  ClosedError if a close frame was
        already sent, StateError while connecting; Error(ERR_CLOSE_CODE)
        for a code not allowed.  Does not free the connection."""
        r = _lib.wsmsg_close(self._ptr(), _i32("code", code), _cstr("reason", reason))
        if r:
            _raise(r, "close")

    def add_header(self, name, value):
        """Client connections: a header for the upgrade request (before the
        first pending())."""
        _check(_lib.wsmsg_client_add_header(self._ptr(), _cstr("name", name),
                                            _cstr("value", value)), "add_header")

    # -- events --

    def next_event(self):
        """The next queued event (Open, Text, Binary, Json, Invalid, Close,
        Timeout, Pong, Drain), or None when the queue is empty."""
        p = self._p
        if p is None:
            self._ptr()
        if _next_event(p, self._evp) != 1:
            return None
        return self._convert(self._ev)

    def __iter__(self):
        """Iterate over the queued events until the queue is empty."""
        nxt = self.next_event
        ev = nxt()
        while ev is not None:
            yield ev
            ev = nxt()

    def events(self):
        """All queued events, as a list."""
        return list(self)

    def wait_event(self, sock, timeout=None):
        """Blocking: drive the connection over `sock` (a socket or fd) until
        an event comes (returned), or `timeout` seconds pass (None).
        ClosedError once the connection is done with no event left.  The
        GIL is released while waiting."""
        ms = -1 if timeout is None else max(0, int(timeout * 1000))
        r = _lib.wsmsg_conn_wait_event(self._ptr(), _fileno(sock), self._evp, ms)
        if r == 1:
            return self._convert(self._ev)
        if r == 0:
            return None
        _raise(r, "wait_event")

    def _convert(self, ev):
        t = ev.type
        if t == _EV_TEXT:
            return Text(string_at(ev.data, ev.len).decode() if ev.len else "")
        if t == _EV_JSON:
            raw = string_at(ev.data, ev.len)
            if self._strict:  # nothing rewritten: the text is the document
                return Json(_json.loads(raw), raw)
            jb = self._jbuf or self._new_jbuf()
            return Json(_json.loads(jb.dump(ev.json)), raw)
        if t == _EV_BINARY:
            return Binary(string_at(ev.data, ev.len) if ev.len else b"")
        if t == _EV_INVALID:
            jb = self._jbuf or self._new_jbuf()
            doc = _json.loads(jb.dump(ev.json)) if ev.json else {}
            return Invalid(doc.get("detail", []),
                           string_at(ev.data, ev.len).decode("utf-8", "replace")
                           if ev.len else "")
        if t == _EV_OPEN:
            ep = self.endpoint
            self._strict = ep is not None and not ep._vflags & _REWRITE
            return _OPEN
        if t == _EV_CLOSE:
            if self._topic_sets:  # C dropped its topics with the close
                self._left_topics()
            return Close(ev.code,
                         string_at(ev.data, ev.len).decode("utf-8", "replace")
                         if ev.len else "",
                         bool(ev.clean), _as_error_code(ev.error),
                         _text(ev.detail) or "")
        if t == _EV_PONG:
            return Pong(string_at(ev.data, ev.len) if ev.len else b"")
        if t == _EV_TIMEOUT:
            try:
                return Timeout(TimeoutKind(ev.code))
            except ValueError:
                return Timeout(ev.code)
        if t == _EV_DRAIN:
            return _DRAIN
        return Unknown(t)

    def _new_jbuf(self):
        self._jbuf = _JsonBuf()
        return self._jbuf

    def _left_topics(self):
        sets, self._topic_sets = self._topic_sets, None
        for ts in list(sets or ()):
            ts._held.pop(self._addr, None)

    @property
    def topic_count(self):
        """How many topics this connection is subscribed to, in all Topics
        sets (wsmsg_conn_topic_count)."""
        return _lib.wsmsg_conn_topic_count(self._ptr())

    # -- state --

    @property
    def state(self):
        """State.CONNECTING / OPEN / CLOSING / CLOSED."""
        return State(_lib.wsmsg_conn_state(self._ptr()))

    @property
    def done(self):
        """True when the host should close the socket and free the conn."""
        p = self._p
        if p is None:
            self._ptr()
        return _conn_done(p) == 1

    @property
    def want_write(self):
        """True if bytes are pending for the socket."""
        return _lib.wsmsg_conn_want_write(self._ptr()) == 1

    @property
    def want_read(self):
        """True if the connection still wants bytes from the socket."""
        return _lib.wsmsg_conn_want_read(self._ptr()) == 1

    @property
    def is_client(self):
        return _lib.wsmsg_conn_is_client(self._ptr()) == 1

    @property
    def endpoint(self):
        """The Endpoint serving the connection (None before routing)."""
        p = _lib.wsmsg_conn_endpoint(self._ptr())
        if not p:
            return None
        if isinstance(self._parent, Endpoint):
            return self._parent
        return self._parent._by_addr.get(ctypes.addressof(p.contents))

    @property
    def path(self):
        """The request path without the query ("" before the handshake)."""
        return _text(_lib.wsmsg_conn_path(self._ptr())) or ""

    @property
    def query(self):
        """The query string after '?' ("" if none)."""
        return _text(_lib.wsmsg_conn_query(self._ptr())) or ""

    @property
    def subprotocol(self):
        """The negotiated subprotocol, or None."""
        return _text(_lib.wsmsg_conn_subprotocol(self._ptr()))

    @property
    def deflate(self):
        """True if permessage-deflate was agreed."""
        return bool(_lib.wsmsg_conn_deflate(self._ptr()))

    @property
    def error(self):
        """The WSMSG_ERR_* that ended or failed the connection (0: none)."""
        return _as_error_code(_lib.wsmsg_conn_error(self._ptr()))

    @property
    def error_detail(self):
        """Explanation of `error` ("" if none)."""
        return _text(_lib.wsmsg_conn_error_detail(self._ptr())) or ""

    @property
    def http_status(self):
        """The handshake's HTTP status (sent or received; 0 before)."""
        return _lib.wsmsg_conn_http_status(self._ptr())

    @property
    def rtt_ms(self):
        """Round-trip time of the last keepalive ping in ms, or None."""
        r = _lib.wsmsg_conn_rtt_ms(self._ptr())
        return None if r < 0 else r

    @property
    def buffered_amount(self):
        """Bytes queued for the socket and not yet consumed."""
        return _lib.wsmsg_conn_buffered_amount(self._ptr())

    @property
    def event_count(self):
        """Events queued for next_event()."""
        return _lib.wsmsg_conn_event_count(self._ptr())

    def __repr__(self):
        if self._p is None:
            return "<wsmsg.Conn freed>"
        return "<wsmsg.Conn %s %s%s>" % (
            "client" if self.is_client else "server", self.state.name,
            " " + self.path if self.path else "")


def _fileno(sock):
    if hasattr(sock, "fileno"):
        sock = sock.fileno()
    _int("fd", sock)
    if sock < 0:
        raise ValueError("fd must be >= 0 (closed socket?)")
    return sock


# ---- timers ----------------------------------------------------------------------


class Timers(_Handle):
    """Many connections ordered by deadline (wsmsg_timers, a min-heap):
    one host timer for all of them.

        t.add(conn)                      # conn.free() removes it
        ms = t.next_ms()                 # None: nothing armed
        for conn in t.expire():          # the connections whose timers ran
            flush(conn)

    The set holds its connections (strong references) until they are
    removed or freed."""

    _c_free = staticmethod(_lib.wsmsg_timers_free)

    def __init__(self):
        p = _lib.wsmsg_timers_new()
        if not p:
            raise MemoryError("wsmsg_timers_new")
        self._p = p
        self._conns = {}  # C address -> Conn

    def _on_freed(self):
        for c in self._conns.values():
            c._timers = None
        self._conns = {}

    def _forget(self, conn):
        self._conns.pop(conn._addr, None)

    def add(self, conn):
        """Put `conn` under this set (moving it from another)."""
        if not isinstance(conn, Conn):
            raise TypeError("add takes a Conn, not %s" % type(conn).__name__)
        cp = conn._ptr()
        _check(_lib.wsmsg_timers_add(self._ptr(), cp), "timers_add")
        old = conn._timers() if conn._timers is not None else None
        if old is not None and old is not self:
            old._conns.pop(conn._addr, None)
        self._conns[conn._addr] = conn
        conn._timers = weakref.ref(self)

    def remove(self, conn):
        """Take `conn` out of the set (no-op if it is not in it)."""
        if not isinstance(conn, Conn):
            raise TypeError("remove takes a Conn, not %s" % type(conn).__name__)
        self._ptr()
        cp = conn._ptr()
        if self._conns.pop(conn._addr, None) is not None:
            _lib.wsmsg_timers_remove(cp)
            conn._timers = None

    def __len__(self):
        return _lib.wsmsg_timers_count(self._ptr())

    def __contains__(self, conn):
        return isinstance(conn, Conn) and self._conns.get(conn._addr) is conn

    def next_ms(self, now=None):
        """Milliseconds from `now` until the earliest deadline (0 if due),
        or None if none is armed."""
        now = now_ms() if now is None else _uint("now", now, 64)
        r = _lib.wsmsg_timers_next_ms(self._ptr(), now)
        return None if r < 0 else r

    def expire(self, now=None):
        """Run the timers due at `now`: yields each connection whose timers
        ran (write its output, check done)."""
        now = now_ms() if now is None else _uint("now", now, 64)
        for _ in range(len(self) + 1):
            cp = _lib.wsmsg_timers_expire(self._ptr(), now)
            if not cp:
                return
            conn = self._conns.get(ctypes.addressof(cp.contents))
            if conn is not None:
                yield conn


# ---- topics (publish/subscribe) ----------------------------------------------------


def _topic_name(b):
    try:
        return b.decode()
    except UnicodeDecodeError:  # names are any bytes in C
        return b


class Topics(_Handle):
    """Topics, or rooms (wsmsg_topics): connections subscribe to named
    topics, and a publish reaches every subscriber, framed once in C with
    no allocation per recipient (each recipient's backpressure policy
    applies: a slow reader is skipped or closed).

        rooms = wsmsg.Topics(on_publish=bus.forward)
        rooms.subscribe(conn, "lobby")          # an open server connection
        rooms.publish("lobby", "hi")            # str: text, bytes: binary
        rooms.publish_json("lobby", {"said": "hi"})
        rooms.publish("lobby", data, remote=True)   # from the bus: no hook

    A connection leaves all its topics when it closes (its Close event) or
    is freed.  Recipients that had no output pending are reported to their
    Server's on_output, as for broadcast().  on_publish(topic, data) sees
    every local publish (data: str for text and JSON, bytes for binary),
    so the host can forward it to a bus; publishes with remote=True (what
    came from the bus) do not call it, so nothing is sent back.

    One set belongs to one thread, like its connections (no locks).  The
    set holds its subscribed Conns (strong references) until they
    unsubscribe, close or are freed, so the garbage collector cannot free a
    connection in the middle of a publish."""

    _c_free = staticmethod(_lib.wsmsg_topics_free)

    def __init__(self, on_publish=None):
        p = _lib.wsmsg_topics_new()
        if not p:
            raise MemoryError("wsmsg_topics_new")
        self._p = p
        self._held = {}       # C address -> [Conn, subscriptions]
        self._publish_cb = None
        self._in_hook = [0]   # depth of on_publish calls (a list: the
        #                       thunk must not hold self, or set and thunk
        #                       would make a reference cycle)
        self.on_publish = None
        if on_publish is not None:
            self.set_on_publish(on_publish)

    def _on_freed(self):
        held, self._held = self._held, {}
        for conn, _n in held.values():
            if conn._topic_sets is not None:
                conn._topic_sets.discard(self)

    def free(self):
        """Free the set, unsubscribing every connection (they stay open).
        StateError from the publish hook."""
        if self._in_hook[0]:
            raise StateError("Topics.free from its publish hook",
                             ErrorCode.ERR_STATE)
        super().free()

    def set_on_publish(self, fn):
        """fn(topic, data) after every local publish (not remote=True),
        whether or not the topic has local subscribers: data is str (text,
        JSON) or bytes (binary); topic is str (bytes if it is not UTF-8).
        It must not publish to, subscribe to or free this set, nor replace
        the hook (StateError); an exception inside is printed and ignored.
        None removes it."""
        if fn is not None and not callable(fn):
            raise TypeError("on_publish must be callable")
        if self._in_hook[0]:  # its thunk is running: keep it
            raise StateError("Topics.set_on_publish from its publish hook",
                             ErrorCode.ERR_STATE)
        if fn is None:
            cb = _capi.publish_cb()
        else:
            depth = self._in_hook

            def cb_fn(_topics, topic, kind, data, n, _user):
                depth[0] += 1
                try:
                    payload = string_at(data, n) if n else b""
                    if kind == _EV_TEXT:
                        payload = payload.decode("utf-8", "replace")
                    fn(_topic_name(topic), payload)
                except Exception:  # noqa: BLE001 - C cannot take it
                    traceback.print_exc()
                finally:
                    depth[0] -= 1
            cb = _capi.publish_cb(cb_fn)
        _check(_lib.wsmsg_topics_on_publish(self._ptr(), cb, None),
               "topics_on_publish")
        self._publish_cb = cb  # C keeps the pointer: keep the thunk alive
        self.on_publish = fn
        return self

    @staticmethod
    def _conn(conn):
        if not isinstance(conn, Conn):
            raise TypeError("a Conn is needed, not %s" % type(conn).__name__)
        return conn._ptr()

    def subscribe(self, conn, topic):
        """Subscribe an open connection to `topic` (str or bytes).  True if
        it was not subscribed yet, False if it was.  StateError while it is
        connecting, from the publish hook or a callback of a publish to
        `topic`; ClosedError once it is closing."""
        cp = self._conn(conn)
        if self._in_hook[0]:  # the header forbids it (wsmsg_publish_cb)
            raise StateError("Topics.subscribe from its publish hook",
                             ErrorCode.ERR_STATE)
        r = _check(_lib.wsmsg_topic_subscribe(self._ptr(), cp,
                                              _cstr("topic", topic)),
                   "subscribe")
        if r == 0:
            ent = self._held.get(conn._addr)
            if ent is None:
                self._held[conn._addr] = [conn, 1]
                if conn._topic_sets is None:
                    conn._topic_sets = weakref.WeakSet()
                conn._topic_sets.add(self)
            else:
                ent[1] += 1
        return r == 0

    def unsubscribe(self, conn, topic):
        """Unsubscribe `conn` from `topic`.  True if it was subscribed,
        False if not (it may have left by closing)."""
        cp = self._conn(conn)
        r = _lib.wsmsg_topic_unsubscribe(self._ptr(), cp, _cstr("topic", topic))
        if r == ErrorCode.ERR_NOT_FOUND:
            return False
        _check(r, "unsubscribe")
        ent = self._held.get(conn._addr)
        if ent is not None:
            ent[1] -= 1
            if ent[1] <= 0:
                del self._held[conn._addr]
                if conn._topic_sets is not None:
                    conn._topic_sets.discard(self)
        return True

    def is_subscribed(self, conn, topic):
        """True if `conn` is subscribed to `topic` in this set."""
        cp = self._conn(conn)
        return _lib.wsmsg_topic_is_subscribed(self._ptr(), cp,
                                              _cstr("topic", topic)) == 1

    def subscribers(self, topic):
        """How many connections are subscribed to `topic` (0 if unknown)."""
        return _lib.wsmsg_topic_subscribers(self._ptr(), _cstr("topic", topic))

    def __len__(self):
        """How many topics have subscribers."""
        return _lib.wsmsg_topics_count(self._ptr())

    def publish(self, topic, data, remote=False):
        """Send `data` (str: text, bytes-like: binary) to every subscriber
        of `topic`, then call on_publish unless `remote`.  Returns how many
        subscribers queued it.  StateError from a callback of a publish to
        this set (on_publish, on_output)."""
        p = self._ptr()
        name = _cstr("topic", topic)
        if isinstance(data, str):
            payload, kind = data.encode("utf-8"), _EV_TEXT
        else:
            payload, kind = _buffer("data", data), _EV_BINARY
        return _check(_lib.wsmsg_topic_publish(
            p, name, kind, payload, len(payload),
            int(PublishFlag.REMOTE) if _flag("remote", remote) else 0),
            "publish")

    def publish_json(self, topic, obj, remote=False):
        """publish() for a JSON value: serialized once (json.dumps, compact;
        TypeError/ValueError as Conn.send_json) and published as text
        through wsmsg_topic_publish_json.  Returns how many subscribers
        queued it."""
        p = self._ptr()
        name = _cstr("topic", topic)
        flags = int(PublishFlag.REMOTE) if _flag("remote", remote) else 0
        text = _dumps(obj)
        doc = _lib.wsmsg_json_loads(text, len(text))
        if not doc:
            raise MemoryError("wsmsg_json_loads")
        try:
            r = _lib.wsmsg_topic_publish_json(p, name, doc, flags)
        finally:
            _lib.wsmsg_json_decref(doc)
        return _check(r, "publish_json")

    def __repr__(self):
        if self._p is None:
            return "<wsmsg.Topics freed>"
        return "<wsmsg.Topics %d topic(s)>" % len(self)


# ---- module functions --------------------------------------------------------------


_now_ms = _lib.wsmsg_now_ms


def broadcast(conns, data):
    """Send one message to many connections: framed once in C, then copied
    to each server-side connection (str: text, bytes-like: binary).
    Connections that cannot take it (closed, over their backpressure mark)
    are skipped; returns how many queued it."""
    conns = list(conns)
    for c in conns:
        if not isinstance(c, Conn):
            raise TypeError("broadcast takes Conn objects, not %s"
                            % type(c).__name__)
    if isinstance(data, str):
        payload, kind = data.encode("utf-8"), int(EventType.TEXT)
    else:
        payload, kind = bytes(_buffer("data", data)), int(EventType.BINARY)
    arr = (_capi.CONN * len(conns))(*[c._ptr() for c in conns])
    r = _lib.wsmsg_broadcast(arr, len(conns), kind, payload, len(payload))
    if r < 0:
        _raise(r, "broadcast")
    return r


def broadcast_json(conns, obj):
    """broadcast() for a JSON value: serialized once (json.dumps, compact)
    and sent through wsmsg_broadcast_json as one text frame copied to each
    connection.  TypeError/ValueError as Conn.send_json; returns how many
    queued it."""
    conns = list(conns)
    for c in conns:
        if not isinstance(c, Conn):
            raise TypeError("broadcast_json takes Conn objects, not %s"
                            % type(c).__name__)
    text = _dumps(obj)
    doc = _lib.wsmsg_json_loads(text, len(text))
    if not doc:
        raise MemoryError("wsmsg_json_loads")
    try:
        arr = (_capi.CONN * len(conns))(*[c._ptr() for c in conns])
        r = _lib.wsmsg_broadcast_json(arr, len(conns), doc)
    finally:
        _lib.wsmsg_json_decref(doc)
    if r < 0:
        _raise(r, "broadcast_json")
    return r


def now_ms():
    """wsmsg_now_ms(): CLOCK_MONOTONIC in milliseconds (the default clock)."""
    return _now_ms()


def version():
    """The linked library's version, "MAJOR.MINOR.PATCH"."""
    return _lib.wsmsg_version().decode()


def version_number():
    """The linked library's version as major * 10000 + minor * 100 + patch."""
    return _lib.wsmsg_version_number()


def utf8_valid(data):
    """True if `data` (bytes-like) is valid UTF-8."""
    b = _buffer("data", data)
    return _lib.wsmsg_utf8_valid(b, len(b)) == 1


def accept_key(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key."""
    out = create_string_buffer(64)
    _check(_lib.wsmsg_accept_key(_cstr("key", key), out, 64), "accept_key")
    return out.value.decode()


library_path = _lib._wsmsg_path
