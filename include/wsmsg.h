/*
 * wsmsg — embeddable WebSocket message handling for C.
 *
 * The host application owns the sockets and the event loop; wsmsg turns the
 * bytes it reads into typed messages (text, binary, ...) and the messages the
 * application sends into bytes to write.  Everything between the bytes and a
 * message is wsmsg's: the HTTP upgrade handshake, framing (through wslay),
 * reassembly, UTF-8 checks, limits and the close handshake of RFC 6455.
 *
 * Conventions used by every function below:
 *  - Functions that can fail return int (int64_t where a count or length
 *    may be large): 0, or a documented non-negative value, on success and
 *    a negative WSMSG_ERR_* code on failure.  Each such function's comment
 *    ends with every code it can return and what the code means there:
 *        Returns 0, or:
 *         - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *         - WSMSG_ERR_STATE: ...
 *    A function that creates an object (or a new reference) returns NULL
 *    on failure; its comment ends with "Returns <what>, or NULL if <why>."
 *    A function with neither ending cannot fail: it returns void, a value
 *    or a 1/0 predicate (documented for NULL arguments too).  `make
 *    check-docs` holds every declaration below to these rules.
 *    wsmsg_strerror() turns a code into text and never returns NULL.
 *  - Handles are opaque and come in _new/_free pairs.  No struct is passed by
 *    value and no function takes varargs, so everything is callable from
 *    ctypes/cffi as is.
 *  - The library never keeps a pointer the caller passed in after the call
 *    returns (strings are copied), unless the documentation says so.  Data
 *    passed to a callback is valid for the duration of that callback only.
 *  - Threads: a connection is used by one thread at a time.  Endpoints and
 *    servers are configured first and are immutable once a connection uses
 *    them (setters then fail with WSMSG_ERR_STATE); they may then be shared
 *    by any number of threads.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef WSMSG_H
#define WSMSG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(WSMSG_BUILDING) && defined(__GNUC__)
#define WSMSG_API __attribute__((visibility("default")))
#else
#define WSMSG_API
#endif

/* ------------------------------------------------------------------------ */
/* Version                                                                   */
/* ------------------------------------------------------------------------ */

#define WSMSG_VERSION_MAJOR 0
#define WSMSG_VERSION_MINOR 1
#define WSMSG_VERSION_PATCH 0
#define WSMSG_VERSION_STRING "0.1.0"
/** Version as one number: major * 10000 + minor * 100 + patch. */
#define WSMSG_VERSION_NUMBER                                                   \
  (WSMSG_VERSION_MAJOR * 10000 + WSMSG_VERSION_MINOR * 100 +                   \
   WSMSG_VERSION_PATCH)

/**
 * The version of the library actually linked, as "MAJOR.MINOR.PATCH".
 * Compare with WSMSG_VERSION_STRING to detect a header/library mismatch.
 * Returns a static string; never NULL.
 */
WSMSG_API const char *wsmsg_version(void);

/** The linked library's version as WSMSG_VERSION_NUMBER would compute it. */
WSMSG_API int wsmsg_version_number(void);

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/** Error codes.  All are negative; 0 is success. */
enum wsmsg_error_code {
  WSMSG_OK = 0,
  WSMSG_ERR_NOMEM = -1,              /**< an allocation failed */
  WSMSG_ERR_INVALID_ARG = -2,        /**< NULL handle, bad size, bad value */
  WSMSG_ERR_STATE = -3,              /**< not allowed in the current state */
  WSMSG_ERR_CLOSED = -4,             /**< connection closing or closed */
  WSMSG_ERR_PROTOCOL = -5,           /**< peer broke RFC 6455 (close 1002) */
  WSMSG_ERR_UTF8 = -6,               /**< invalid UTF-8 in text (close 1007) */
  WSMSG_ERR_TOO_BIG = -7,            /**< message over the size limit (1009) */
  WSMSG_ERR_TOO_MANY_FRAGMENTS = -8, /**< fragment limit exceeded (1009) */
  WSMSG_ERR_CLOSE_CODE = -9,         /**< invalid close code */
  WSMSG_ERR_HANDSHAKE = -10,         /**< the opening handshake failed */
  WSMSG_ERR_IO = -11,                /**< socket error (wsmsg_conn_io_fd) */
  WSMSG_ERR_TIMEOUT = -12,           /**< a deadline passed */
  WSMSG_ERR_BACKPRESSURE = -13,      /**< output queue above its high mark */
  WSMSG_ERR_EOF = -14,       /**< peer closed TCP without a close frame */
  WSMSG_ERR_ABORTED = -15,   /**< the host aborted the connection */
  WSMSG_ERR_NOT_FOUND = -16, /**< no such route, header, item */

  WSMSG_ERR_VALIDATION = -17,  /**< a document does not match its schema */
  WSMSG_ERR_SCHEMA = -18,      /**< a JSON Schema is malformed */
  WSMSG_ERR_UNSUPPORTED = -19, /**< a schema uses an unsupported feature */
  WSMSG_ERR_JSON = -20,        /**< text is not valid JSON */
  WSMSG_ERR_BUDGET = -21, /**< the server's memory budget is spent (1013) */
  WSMSG_ERR_RATE_LIMIT = -22, /**< a peer exceeded a rate limit (1008) */
};

/**
 * A short English description of an error code (for any int; unknown codes
 * give "unknown error").  Returns a static string; never NULL.
 */
WSMSG_API const char *wsmsg_strerror(int code);

/* ------------------------------------------------------------------------ */
/* Memory                                                                    */
/* ------------------------------------------------------------------------ */

/**
 * A custom allocator, in the style of nghttp2_mem.  Every allocation wsmsg's
 * own code makes goes through the allocator of the object it belongs to:
 * servers, endpoints, timer sets, error lists and compiled schemas take one
 * at creation (the `_mem` constructors); a connection uses the allocator of
 * the server or endpoint that created it, and so does everything it owns
 * (its buffers, events, error list, JSON send buffers).  The libraries
 * wsmsg builds on allocate with their own allocators: wslay (frame parsers),
 * jansson (json_t values; see json_set_alloc_funcs) and libyaml (its parser,
 * while an AsyncAPI document is read); PCRE2's compiled
 * patterns, contexts and match data go through the allocator of the schema
 * or error list they belong to (a PCRE2 general context over the hook; the
 * JIT's executable memory excepted).  tests/unit/test_alloc.c checks the promise: a
 * session through every feature makes no direct libc allocator call from
 * wsmsg's code.  `realloc` may be NULL, in which case wsmsg uses malloc +
 * copy + free.  The struct is copied; `user` is passed back to every call.
 */
typedef struct wsmsg_mem {
  void *user;
  void *(*malloc)(size_t size, void *user);
  void (*free)(void *ptr, void *user);
  void *(*realloc)(void *ptr, size_t size, void *user);
} wsmsg_mem;

/* ------------------------------------------------------------------------ */
/* Handles                                                                   */
/* ------------------------------------------------------------------------ */

/** Callbacks, limits and protocol options shared by many connections. */
typedef struct wsmsg_endpoint wsmsg_endpoint;
/** A routing table from request paths to endpoints (server side). */
typedef struct wsmsg_server wsmsg_server;
/** A set of topics (publish/subscribe), see wsmsg_topics_new. */
typedef struct wsmsg_topics wsmsg_topics;
/** One WebSocket connection, server or client side, over a host socket. */
typedef struct wsmsg_conn wsmsg_conn;
/** Read-only view of an HTTP request head, valid during on_handshake or a
 *  wsmsg_http_cb. */
typedef struct wsmsg_request wsmsg_request;

/** Connection states (wsmsg_conn_state). */
enum wsmsg_state {
  WSMSG_STATE_CONNECTING = 0, /**< opening handshake in progress */
  WSMSG_STATE_OPEN = 1,       /**< messages flow both ways */
  WSMSG_STATE_CLOSING = 2,    /**< a close frame was sent or received */
  WSMSG_STATE_CLOSED = 3      /**< finished; write what is pending, then
                                   close the socket */
};

/** Message and event kinds (wsmsg_event.type). */
enum wsmsg_event_type {
  WSMSG_EV_NONE = 0,
  WSMSG_EV_OPEN = 1,    /**< handshake done (only if no on_open callback) */
  WSMSG_EV_TEXT = 2,    /**< a text message: data/len, NUL-terminated */
  WSMSG_EV_BINARY = 3,  /**< a binary message: data/len */
  WSMSG_EV_CLOSE = 4,   /**< the connection closed: code, clean, error, data =
                             reason (NUL-terminated), detail */
  WSMSG_EV_PONG = 5,    /**< a pong arrived (only if enabled, see
                             wsmsg_endpoint_set_pong_events) */
  WSMSG_EV_TIMEOUT = 6, /**< the receive timeout passed (code =
                            WSMSG_TIMEOUT_RECEIVE), when no on_timeout
                            callback is set and the action is EVENT */
  WSMSG_EV_DRAIN = 7,   /**< the output queue fell under the low mark after
                            a send hit the high mark (no on_drain set) */
  WSMSG_EV_JSON = 8,    /**< a valid JSON message (JSON endpoints): json =
                            the document, data/len = its text */
  WSMSG_EV_INVALID = 9  /**< a text message that is not JSON or failed
                            validation (pull JSON endpoints without
                            on_invalid): json = {"detail": [...]}, data/len =
                            the text */
};

/**
 * Details of how a connection ended; passed to on_close and carried by
 * WSMSG_EV_CLOSE events.
 */
typedef struct wsmsg_close_info {
  /** The close code: the code of the peer's close frame if one was
   *  received (its first close, or its answer to ours), else the code of
   *  the close frame we sent (our wsmsg_close, a rule that failed the
   *  connection, a timeout); 1005 if that frame had no code, 1006 if no
   *  close frame was exchanged (EOF, abort, a failed handshake). */
  int32_t code;
  /** 1 if the closing handshake completed (close frames both ways). */
  int32_t clean;
  /** 1 if the peer started the close (its close frame came first). */
  int32_t remote;
  /** 0, or the WSMSG_ERR_* rule that fired (limit, protocol, EOF...). */
  int32_t error;
  /** The reason of the close frame whose `code` is reported: the peer's
   *  when its close frame was received, else ours (e.g. "keepalive
   *  timeout: no pong within 300 ms" on the side whose keepalive fired,
   *  the invalid or unhandled policy's reason); "" when that frame had
   *  none or with code 1006.  NUL-terminated, never NULL; may hold NUL
   *  bytes only if the peer sent them (use reason_len). */
  const char *reason;
  /** Length of reason in bytes. */
  size_t reason_len;
  /** A human-readable explanation of error, "" when error is 0 (may say
   *  more than reason, which is cut to 123 bytes on the wire). */
  const char *detail;
} wsmsg_close_info;

/**
 * An event from the pull API (wsmsg_conn_next_event).  The pointers inside
 * stay valid until the next call to wsmsg_conn_next_event on the same
 * connection or until the connection is freed.
 */
typedef struct wsmsg_event {
  int32_t type;  /**< enum wsmsg_event_type */
  int32_t code;  /**< CLOSE: close code */
  int32_t clean; /**< CLOSE: closing handshake completed */
  int32_t error; /**< CLOSE: WSMSG_ERR_* that caused it, or 0 */
  /** TEXT/BINARY/PONG: payload (TEXT is NUL-terminated); CLOSE: reason. */
  const uint8_t *data;
  size_t len;         /**< length of data in bytes (without the NUL) */
  const char *detail; /**< CLOSE: explanation of error ("" if none) */
  /** JSON/INVALID: a document owned by the event (valid like data;
   *  json_incref / wsmsg_json_incref to keep it), else NULL. */
  json_t *json;
} wsmsg_event;

/* ------------------------------------------------------------------------ */
/* Callbacks                                                                 */
/* ------------------------------------------------------------------------ */
/* In every callback `user` is the connection's user pointer
 * (wsmsg_conn_user).  Callbacks may send and close on their connection; they
 * must not free it. */

/** The connection is open (handshake done). */
typedef void (*wsmsg_open_cb)(wsmsg_conn *conn, void *user);
/** A text message: valid UTF-8, `len` bytes, followed by a NUL byte. */
typedef void (*wsmsg_text_cb)(wsmsg_conn *conn, const char *data, size_t len,
                              void *user);
/** A binary message of `len` bytes. */
typedef void (*wsmsg_binary_cb)(wsmsg_conn *conn, const uint8_t *data,
                                size_t len, void *user);
/** A pong arrived (payload of at most 125 bytes). */
typedef void (*wsmsg_pong_cb)(wsmsg_conn *conn, const uint8_t *data, size_t len,
                              void *user);
/** The connection is closed; called exactly once for every connection that
 *  was opened, and for client connections whose handshake failed. */
typedef void (*wsmsg_close_cb)(wsmsg_conn *conn, const wsmsg_close_info *info,
                               void *user);
/**
 * Server side: decide on an upgrade request after wsmsg's own checks passed.
 * Return 0 to accept, or an HTTP status code (400..599) to reject with.  The
 * request view is valid during the call only.
 */
typedef int (*wsmsg_handshake_cb)(wsmsg_conn *conn, const wsmsg_request *req,
                                  void *user);

/**
 * Server side: a complete HTTP request head arrived (see
 * wsmsg_server_on_http).  Answer it with wsmsg_http_respond or
 * wsmsg_http_respond_stream and return 0; or return 0 without answering to
 * let wsmsg handle it as it would without the hook (an upgrade request goes
 * on to the WebSocket checks, anything else gets today's 400/404/426); or
 * return an HTTP status (400..599) to answer with wsmsg's own plain-text
 * error response.  `user` is the connection's user pointer.
 */
typedef int (*wsmsg_http_cb)(wsmsg_conn *conn, const wsmsg_request *req,
                             void *user);

/** Timeout kinds: the argument of on_timeout and the detail of the
 *  WSMSG_ERR_TIMEOUT errors that end connections. */
enum wsmsg_timeout_kind {
  WSMSG_TIMEOUT_RECEIVE = 1,   /**< no message within the receive timeout */
  WSMSG_TIMEOUT_HANDSHAKE = 2, /**< opening handshake not done in time */
  WSMSG_TIMEOUT_PONG = 3,      /**< keepalive ping not answered in time */
  WSMSG_TIMEOUT_MESSAGE = 4,   /**< fragmented message not completed */
  WSMSG_TIMEOUT_CLOSE = 5,     /**< closing handshake not completed */
  WSMSG_TIMEOUT_WRITE = 6      /**< pending output not drained */
};

/** What the receive timeout does when no on_timeout callback is set. */
enum wsmsg_timeout_action {
  WSMSG_ON_TIMEOUT_EVENT = 0,      /**< queue a WSMSG_EV_TIMEOUT event */
  WSMSG_ON_TIMEOUT_PING = 1,       /**< send a ping */
  WSMSG_ON_TIMEOUT_HEARTBEAT = 2,  /**< send a text message ("HEARTBEAT") */
  WSMSG_ON_TIMEOUT_CLOSE_1001 = 3, /**< close with 1001 (going away) */
  WSMSG_ON_TIMEOUT_CLOSE_1011 = 4  /**< close with 1011 */
};

/**
 * The receive timeout passed (kind is WSMSG_TIMEOUT_RECEIVE): no data
 * message arrived for the configured time.  The timer is re-armed, so an
 * idle connection gets one call per period.  The callback may send or
 * close.  Other timeouts end the connection (on_close with error
 * WSMSG_ERR_TIMEOUT) and are not reported here.
 */
typedef void (*wsmsg_timeout_cb)(wsmsg_conn *conn, int kind, void *user);

/** A monotonic clock in milliseconds (see wsmsg_server_set_clock). */
typedef uint64_t (*wsmsg_clock_cb)(void *user);

/** The output queue fell under the low water mark after a send was refused
 *  (or the high mark was crossed): sending may resume. */
typedef void (*wsmsg_drain_cb)(wsmsg_conn *conn, void *user);

/**
 * A connection got output from a call made elsewhere — a wsmsg_broadcast
 * or wsmsg_broadcast_json, a topic publish, wsmsg_server_close_all — while it had
 * nothing pending: the host must write it (watch the socket for writing),
 * since no call of its own on that connection will show it.  Called once
 * per transition from "nothing pending" to "output pending", for every
 * such recipient (the connection whose callback broadcasts included),
 * after the message was queued on all of them; a recipient that already
 * had output pending is not called (the host is already writing it).
 * wsmsg_server_close_all and wsmsg_server_drain also report connections
 * they ended (the host then sees wsmsg_conn_done and frees them).
 * Output a connection gets from calls on itself (a send, recv, tick) is
 * not reported: the host checks wsmsg_conn_want_write after those.  The
 * callback may write and consume the connection's output, send on it or
 * close it; it must not free any connection nor broadcast.  `user` is the
 * connection's user pointer.
 */
typedef void (*wsmsg_output_cb)(wsmsg_conn *conn, void *user);

/**
 * Streaming receive: a piece of a message, delivered as it arrives instead
 * of the whole message.  `type` is WSMSG_EV_TEXT or WSMSG_EV_BINARY;
 * `first` is 1 on the message's first piece, `final` 1 on its last (pieces
 * may be empty).  Text is UTF-8-checked across pieces, but a piece may end
 * inside a character.  If the connection fails in the middle (bad UTF-8,
 * size limit, timeout), no final piece comes: on_close tells why.
 */
typedef void (*wsmsg_chunk_cb)(wsmsg_conn *conn, int type, const uint8_t *data,
                               size_t len, int first, int final, void *user);

/**
 * Streaming send: fill `buf` with up to `len` bytes of the message and
 * return how many; set *eof to 1 with (or after) the last bytes.  Return 0
 * without eof to pause until wsmsg_conn_resume_stream, or -1 to abort (the
 * connection is closed with 1011).
 */
typedef int64_t (*wsmsg_read_cb)(wsmsg_conn *conn, uint8_t *buf, size_t len,
                                 int *eof, void *user);

/** Backpressure policies (wsmsg_endpoint_set_backpressure). */
enum wsmsg_backpressure_policy {
  WSMSG_BACKPRESSURE_FAIL = 0, /**< the send fails with
                                    WSMSG_ERR_BACKPRESSURE */
  WSMSG_BACKPRESSURE_CLOSE = 1 /**< the connection is closed with 1008 */
};

/** What happens to a message over a rate limit
 *  (wsmsg_endpoint_set_rate_limit). */
enum wsmsg_limit_policy {
  WSMSG_LIMIT_CLOSE = 0, /**< the connection is closed with 1008 */
  WSMSG_LIMIT_DROP = 1   /**< the message is dropped, not delivered */
};

/** Which messages wsmsg_endpoint_on_chunk streams. */
enum wsmsg_stream_kind { WSMSG_STREAM_BINARY = 1, WSMSG_STREAM_TEXT = 2 };

/* ------------------------------------------------------------------------ */
/* Endpoints                                                                 */
/* ------------------------------------------------------------------------ */

/**
 * Create an endpoint with default limits (max message 1 MiB, 4096 fragments per
 * message) and no callbacks.  Free it with wsmsg_endpoint_free once no
 * connection uses it.
 *
 * Returns the endpoint, or NULL if out of memory.
 */
WSMSG_API wsmsg_endpoint *wsmsg_endpoint_new(void);

/**
 * As wsmsg_endpoint_new, with a custom allocator (copied) used for the endpoint
 * and for client connections created from it.  `mem` may be NULL (or lack
 * malloc or free): then libc's allocator is used.
 *
 * Returns the endpoint, or NULL if out of memory.
 */
WSMSG_API wsmsg_endpoint *wsmsg_endpoint_new_mem(const wsmsg_mem *mem);

/** Free an endpoint.  NULL is ignored.  Connections using it must be freed
 *  first. */
WSMSG_API void wsmsg_endpoint_free(wsmsg_endpoint *ep);

/*
 * Push and pull endpoints.  An endpoint with any message callback (on_text,
 * on_binary, on_json, a wsmsg_endpoint_route_json route with a callback,
 * on_chunk) is a PUSH endpoint: its messages go to callbacks, and a message
 * kind with no callback (binary on a text/JSON endpoint, text on a binary
 * one, a JSON route without a callback when on_json is NULL) is never
 * queued: the unhandled policy (wsmsg_endpoint_set_unhandled) closes the
 * connection with 1003 or drops the message.  Invalid JSON messages on a
 * push endpoint go to on_invalid if set; either way the invalid policy
 * answers them (reply, close) or drops them (ignore), and nothing is
 * queued.  An endpoint with no message callback is a PULL endpoint: every
 * message becomes an event for wsmsg_conn_next_event.  on_open, on_close,
 * on_pong, on_timeout and on_drain do not make an endpoint push; without
 * them their events are queued as before (one per occurrence, not per
 * peer message, so a peer cannot fill the queue with them).
 */

/**
 * Set callbacks.  Any may be NULL (the default); see "Push and pull
 * endpoints" above for what happens to a message kind with no callback.
 * Like every endpoint setter, they fail once a connection has used the
 * endpoint.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_on_open(wsmsg_endpoint *ep, wsmsg_open_cb cb);
/**
 * Set the text-message callback (see wsmsg_endpoint_on_open).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_on_text(wsmsg_endpoint *ep, wsmsg_text_cb cb);
/**
 * Set the binary-message callback (see wsmsg_endpoint_on_open).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_on_binary(wsmsg_endpoint *ep, wsmsg_binary_cb cb);
/**
 * Set the close callback (see wsmsg_endpoint_on_open).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_on_close(wsmsg_endpoint *ep, wsmsg_close_cb cb);
/**
 * Set the pong callback (see wsmsg_endpoint_on_open).  Pongs are dropped
 * when neither this nor wsmsg_endpoint_set_pong_events is set.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_on_pong(wsmsg_endpoint *ep, wsmsg_pong_cb cb);
/**
 * Set the server-side handshake callback (authentication, cookies...).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_on_handshake(wsmsg_endpoint *ep,
                                          wsmsg_handshake_cb cb);

/** What a push endpoint does with a message no callback takes (enum for
 *  wsmsg_endpoint_set_unhandled). */
enum wsmsg_unhandled_policy {
  /** Close with 1003 ("a type of data it cannot accept", RFC 6455 7.4.1)
   *  and the reason "binary messages are not accepted here" (or "text
   *  messages", "JSON messages without a handler"); the default. */
  WSMSG_UNHANDLED_CLOSE = 0,
  /** Drop the message; the connection goes on. */
  WSMSG_UNHANDLED_IGNORE = 1
};

/**
 * Set the unhandled policy of `ep` (enum wsmsg_unhandled_policy; default
 * WSMSG_UNHANDLED_CLOSE).  It applies to push endpoints only (see "Push
 * and pull endpoints"): a pull endpoint queues every message.  The close is
 * a normal closing handshake (wsmsg_close); messages that arrive after it
 * are dropped.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL or `policy` is not a
 *    wsmsg_unhandled_policy.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_unhandled(wsmsg_endpoint *ep, int policy);

/**
 * Queue WSMSG_EV_PONG events when no on_pong callback is set (default 0).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_pong_events(wsmsg_endpoint *ep, int on);

/**
 * Largest message accepted, in bytes (default 1 MiB, and 64 KiB once the
 * endpoint is a JSON one unless this was called; 0 means no limit other
 * than memory).  A bigger message fails the connection with close 1009
 * before its payload is read.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_max_message_size(wsmsg_endpoint *ep,
                                                  uint64_t bytes);

/**
 * Most frames one message may have, empty frames included (default 4096;
 * 0 means unlimited).  More fail the connection with close 1009.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_max_fragments(wsmsg_endpoint *ep,
                                               uint32_t count);

/**
 * Bound the pull-API event queue of each connection: at most `count`
 * events and `bytes` bytes of payload (defaults 4096 and 16 MiB; 0 = no
 * bound).  Past either, the application is not reading: the connection is
 * closed with 1008 (error WSMSG_ERR_BACKPRESSURE), so a peer cannot grow
 * memory through a kind of message nobody handles.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_max_queued(wsmsg_endpoint *ep, size_t count,
                                            size_t bytes);

/**
 * Add a subprotocol this endpoint speaks, in order of preference: the server
 * picks its most preferred one among those the client offers; a client offers
 * all of them.  `name` must be an HTTP token; it is copied.  Adding a name
 * twice changes nothing.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL, or `name` is NULL, empty or not an
 *    HTTP token.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 *  - WSMSG_ERR_NOMEM: out of memory.
 */
WSMSG_API int wsmsg_endpoint_add_subprotocol(wsmsg_endpoint *ep,
                                             const char *name);

/**
 * Server side: if `on`, reject (400) a client that offers none of our
 * subprotocols.  Default 0: the connection opens without a subprotocol.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_require_subprotocol(wsmsg_endpoint *ep, int on);

/**
 * Server side: allow browsers from this Origin (e.g. "https://example.com",
 * compared case-insensitively).  Once any origin is added, a request whose
 * Origin header is not on the list gets 403; requests without an Origin
 * header (non-browser clients) are still accepted.  "*" allows all.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL, or `origin` is NULL, empty or
 *    contains CR or LF.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 *  - WSMSG_ERR_NOMEM: out of memory.
 */
WSMSG_API int wsmsg_endpoint_allow_origin(wsmsg_endpoint *ep,
                                          const char *origin);

/* ---- backpressure and streaming ---- */

/**
 * Bound the output queue (wsmsg_conn_buffered_amount).  A data message that
 * would take the queue past `high` bytes is refused by the policy (enum
 * wsmsg_backpressure_policy) — unless the queue is empty, so one message larger
 * than `high` can still go out; pongs are skipped while above `high`.  Once
 * refused (or above `high`), on_drain fires when the queue falls under `low`.
 * Defaults: 8 MiB, 2 MiB, FAIL.  `high` 0 means no limit.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL, `low` > `high` (with `high` not 0),
 *    or `policy` is not a WSMSG_BACKPRESSURE_* value.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_backpressure(wsmsg_endpoint *ep, size_t high,
                                              size_t low, int policy);

/**
 * Per-connection rate limits on received data messages: at most
 * `messages_per_s` messages and `bytes_per_s` payload bytes a second, with
 * bursts of one second's worth (token buckets; 0 turns a limit off).  A
 * message over a limit is handled by `policy` (enum wsmsg_limit_policy):
 * WSMSG_LIMIT_CLOSE fails the connection with close 1008 "rate limit
 * exceeded" (on_close error WSMSG_ERR_RATE_LIMIT), WSMSG_LIMIT_DROP drops
 * it (not delivered).  Streamed messages (on_chunk) are counted when they
 * end.  Default: off (legitimate rates differ too much between
 * applications to guess one).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL or `policy` is not a
 *    wsmsg_limit_policy.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_rate_limit(wsmsg_endpoint *ep,
                                            uint32_t messages_per_s,
                                            uint64_t bytes_per_s, int policy);

/**
 * JSON endpoints: more than `count` invalid messages (not JSON, or not
 * valid for the schema or routes) within `window_ms` fail the connection
 * with close 1008 "too many invalid messages" (on_close error
 * WSMSG_ERR_RATE_LIMIT) instead of answering them: each error reply is
 * larger than the message it answers, so a flood of small invalid
 * messages is amplified.  Default 32 within 10000 ms; `count` 0 turns the
 * limit off.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL, or `window_ms` is 0 with a
 *    limit.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_invalid_limit(wsmsg_endpoint *ep,
                                               uint32_t count,
                                               uint32_t window_ms);

/**
 * Set the drain callback (see wsmsg_drain_cb); without one a
 * WSMSG_EV_DRAIN event is queued.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_on_drain(wsmsg_endpoint *ep, wsmsg_drain_cb cb);

/**
 * Receive the message kinds in `kinds` (enum wsmsg_stream_kind flags) as
 * pieces through `cb` instead of whole messages: a 4 GiB upload never sits
 * in memory.  Raise wsmsg_endpoint_set_max_message_size for big messages
 * (it still applies).  `cb` NULL turns streaming off.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL, or `kinds` has bits other than
 *    WSMSG_STREAM_BINARY and WSMSG_STREAM_TEXT.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_on_chunk(wsmsg_endpoint *ep, wsmsg_chunk_cb cb,
                                      unsigned kinds);

/* ---- compression (RFC 7692) ---- */
/* Off by default; docs/compression.md gives the reasons, the memory each
 * setting costs and the close codes.  A message is compressed or not on
 * its own (RSV1): control frames never are, messages under the threshold
 * are not.  Received compressed messages are inflated with the inflated
 * size held to wsmsg_endpoint_set_max_message_size (close 1009 before the
 * memory grows); corrupt data closes with 1007. */

/** Presets for wsmsg_endpoint_set_deflate. */
enum wsmsg_deflate_mode {
  /** Decline every offer; offer nothing (the default). */
  WSMSG_DEFLATE_OFF = 0,
  /** No context takeover either way (both sides reset their compressor
   *  after each message): zlib state exists only while a message is
   *  compressed or inflated and is pooled per server, so an idle
   *  connection holds none.  Level 6, memLevel 8, windows of 2^15, a
   *  threshold of 128 bytes. */
  WSMSG_DEFLATE_ON = 1,
  /** Context takeover both ways with small windows (2^11 ours, 2^11
   *  asked of the peer, memLevel 4), threshold 16 bytes: about 31 KiB of
   *  zlib state per connection that sent and received a compressed
   *  message, kept while it lives; the demo's small JSON messages shrink
   *  to about a quarter (WSMSG_DEFLATE_ON leaves them as they are). */
  WSMSG_DEFLATE_LOW_MEMORY = 2,
  /** Context takeover both ways, windows of 2^15, memLevel 8, threshold
   *  16 bytes: the best ratio, about 300 KiB per active connection. */
  WSMSG_DEFLATE_MAX_RATIO = 3
};

/**
 * Turn permessage-deflate on with one of the presets (enum
 * wsmsg_deflate_mode), replacing every compression setting below; call
 * the other setters after it to adjust one.  A server accepts the first
 * acceptable offer of a client; a client offers it and fails the handshake
 * if the server's answer is not within the offer.
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL or `mode` is not a
 *    wsmsg_deflate_mode.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_deflate(wsmsg_endpoint *ep, int mode);

/**
 * zlib's compression `level` (1-9; 1 is fastest) and `mem_level` (1-9:
 * the compressor's hash table and buffers, 2^(mem_level+9) bytes).
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL or a value is out of range.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_deflate_level(wsmsg_endpoint *ep, int level,
                                               int mem_level);

/**
 * LZ77 windows, as powers of two (8-15): `ours` is the largest we
 * compress with (a peer may ask for a smaller one; at 8, which zlib cannot
 * compress with, our messages go uncompressed), `peers` the largest we
 * ask the peer to use (it bounds our inflate memory; a client that does
 * not announce client_max_window_bits keeps 15).
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL or a value is out of range.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_deflate_window(wsmsg_endpoint *ep, int ours,
                                                int peers);

/**
 * Context takeover: `ours` 1 keeps our compressor's window from message
 * to message (better ratio, its state stays with the connection), 0
 * resets it after each message; `peers` the same asked of the peer
 * (client/server_no_context_takeover).  A peer may still ask us to reset.
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_deflate_takeover(wsmsg_endpoint *ep, int ours,
                                                  int peers);

/**
 * Messages shorter than `bytes` are sent uncompressed (default 128 for
 * WSMSG_DEFLATE_ON, 16 with context takeover; 0 compresses everything).
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL or `bytes` is over 2^32-1.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_deflate_threshold(wsmsg_endpoint *ep,
                                                   size_t bytes);

/* ---- timeouts (all in milliseconds; 0 turns one off) ---- */
/* Time is whatever the clock hook says (default wsmsg_now_ms); timers fire
 * in wsmsg_conn_tick / wsmsg_timers_expire, never on their own: a host that
 * sets any timeout below (or keeps the defaults: keepalive, message, write,
 * close and handshake deadlines are on) must drive them, either by calling
 * wsmsg_conn_tick at wsmsg_conn_next_deadline, or by keeping its connections
 * in a wsmsg_timers set and calling wsmsg_timers_expire when
 * wsmsg_timers_next_ms says (examples/minimal_server.c does this). */

/**
 * Set the receive-timeout callback (see wsmsg_timeout_cb).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_on_timeout(wsmsg_endpoint *ep,
                                        wsmsg_timeout_cb cb);

/**
 * No data message within `ms` (counted from the open, then from the last
 * message): on_timeout, or the action below.  Default 0 (off).  Fires only
 * when the host drives timers (wsmsg_conn_tick or wsmsg_timers_expire).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_receive_timeout(wsmsg_endpoint *ep,
                                                 uint32_t ms);

/**
 * What the receive timeout does without an on_timeout callback (enum
 * wsmsg_timeout_action; default WSMSG_ON_TIMEOUT_EVENT).  `heartbeat` is
 * the text sent by WSMSG_ON_TIMEOUT_HEARTBEAT (NULL: "HEARTBEAT"; copied,
 * must be UTF-8 of at most 125 bytes).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL, `action` is not a WSMSG_ON_TIMEOUT_*
 *    value, or `heartbeat` is longer than 125 bytes or not UTF-8.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 *  - WSMSG_ERR_NOMEM: out of memory.
 */
WSMSG_API int wsmsg_endpoint_set_timeout_action(wsmsg_endpoint *ep, int action,
                                                const char *heartbeat);

/**
 * Send a keepalive ping when nothing arrived from the peer for `ms`
 * (default 20000, as python-websockets; 0 turns pings off).  Its pong
 * gives wsmsg_conn_rtt_ms.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_ping_interval(wsmsg_endpoint *ep, uint32_t ms);

/**
 * A keepalive ping not answered within `ms` fails the connection with
 * close 1011 "keepalive timeout" (on_close clean = 0).  Default 20000;
 * 0: pings are sent but not awaited.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_pong_timeout(wsmsg_endpoint *ep, uint32_t ms);

/**
 * A message whose frames do not all arrive within `ms` of its first byte
 * fails the connection with close 1008.  Default 60000 (a 1 MiB message
 * at ~17 KB/s); 0 turns it off.  Streamed messages (on_chunk) count too:
 * an endpoint taking large uploads over slow links raises it.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_message_timeout(wsmsg_endpoint *ep,
                                                 uint32_t ms);

/**
 * After a close frame was sent or received, the closing handshake and the
 * final write must finish within `ms`, else the connection is aborted
 * (on_close clean = 0).  Default 10000.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_close_timeout(wsmsg_endpoint *ep, uint32_t ms);

/**
 * Pending output that makes no progress (wsmsg_conn_consume) for `ms`
 * aborts the connection: a peer that stopped reading.  Default 30000;
 * 0 turns it off.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_write_timeout(wsmsg_endpoint *ep, uint32_t ms);

/**
 * No data message received or sent for `ms` starts the closing handshake
 * with 1001 "idle timeout" (on_close error WSMSG_ERR_TIMEOUT).  Pings and
 * pongs do not count.  Default 0 (off: the keepalive ping already frees
 * peers that are gone; an idle live client is legitimate).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_idle_timeout(wsmsg_endpoint *ep, uint32_t ms);

/**
 * Client connections: the server's 101 must arrive within `ms` of
 * wsmsg_client_new.  Default 10000.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_handshake_timeout(wsmsg_endpoint *ep,
                                                   uint32_t ms);

/**
 * The clock for client connections of this endpoint (NULL: wsmsg_now_ms).
 * Tests use a fake clock here.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_clock(wsmsg_endpoint *ep, wsmsg_clock_cb cb,
                                       void *user);

/* ------------------------------------------------------------------------ */
/* Servers and routing                                                       */
/* ------------------------------------------------------------------------ */

/**
 * Create a server (routing table).
 *
 * Returns the server, or NULL if out of memory.
 */
WSMSG_API wsmsg_server *wsmsg_server_new(void);

/**
 * As wsmsg_server_new with a custom allocator (copied) used for the server and
 * the connections it accepts.  `mem` may be NULL.
 *
 * Returns the server, or NULL if out of memory.
 */
WSMSG_API wsmsg_server *wsmsg_server_new_mem(const wsmsg_mem *mem);

/** Free a server.  NULL is ignored.  Its connections must be freed first;
 *  the endpoints are not freed (the caller owns them). */
WSMSG_API void wsmsg_server_free(wsmsg_server *srv);

/**
 * Route requests for `path` to `ep`.  `path` is matched against the request
 * path without the query string.  A path ending in '*' matches every path with
 * that prefix ("/ws/" followed by "*"); "*" alone matches everything.  Exact
 * routes win over prefix routes, longer prefixes over shorter ones.  The path
 * is copied; the endpoint is borrowed and must outlive the server.  Unknown
 * paths get 404.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `srv`, `path` or `ep` is NULL, or `path` does not
 *    start with '/' (and is not "*") or contains a space, a control character
 *    or '?'.
 *  - WSMSG_ERR_STATE: `srv` is frozen (it has accepted a connection), or `path`
 *    is routed already.
 *  - WSMSG_ERR_NOMEM: out of memory.
 */
WSMSG_API int wsmsg_server_route(wsmsg_server *srv, const char *path,
                                 wsmsg_endpoint *ep);

/**
 * The server-wide memory budget: bytes held in unfinished messages and
 * output queues (buffer capacities) across all of the server's
 * connections, on whatever threads they run.  Each connection may hold
 * `per_conn` bytes whatever the others hold; beyond that its buffers grow
 * only while the server holds less than `bytes`.  A connection that needs
 * more past the budget is failed with close 1013 "Try Again Later"
 * (on_close error WSMSG_ERR_BUDGET; a send returns it; when even the close
 * frame does not fit its output, the output is dropped and the connection
 * aborted): it is one of the big holders, and the others keep working.
 * Memory held is then at most about bytes + connections x per_conn.
 * Default 256 MiB and 64 KiB; `bytes` 0 turns the budget off.  Control
 * frames and the handshake are not refused.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `srv` is NULL, or `per_conn` > `bytes` with a
 *    budget.
 *  - WSMSG_ERR_STATE: `srv` is frozen: it has accepted a connection.
 */
WSMSG_API int wsmsg_server_set_memory_budget(wsmsg_server *srv, size_t bytes,
                                             size_t per_conn);

/**
 * Bytes the server's connections hold now in message and output buffers
 * (what the memory budget counts); 0 for NULL.
 */
WSMSG_API size_t wsmsg_server_memory_used(const wsmsg_server *srv);

/**
 * Largest upgrade request accepted, in bytes (default 8192; a bigger one gets
 * 431).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `srv` is NULL or `bytes` is under 64.
 *  - WSMSG_ERR_STATE: `srv` is frozen: it has accepted a connection.
 */
WSMSG_API int wsmsg_server_set_max_request_size(wsmsg_server *srv,
                                                size_t bytes);

/**
 * Most header lines in an upgrade request (default 64; more get 431).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `srv` is NULL or `count` is under 4.
 *  - WSMSG_ERR_STATE: `srv` is frozen: it has accepted a connection.
 */
WSMSG_API int wsmsg_server_set_max_headers(wsmsg_server *srv, uint32_t count);

/**
 * Server connections: the upgrade request must be complete within `ms` of
 * wsmsg_server_accept (default 10000), else 408 is sent and the connection
 * ends (slowloris).  0 turns it off.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `srv` is NULL.
 *  - WSMSG_ERR_STATE: `srv` is frozen: it has accepted a connection.
 */
WSMSG_API int wsmsg_server_set_handshake_timeout(wsmsg_server *srv,
                                                 uint32_t ms);

/**
 * The clock used by the server's connections (NULL: wsmsg_now_ms).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `srv` is NULL.
 *  - WSMSG_ERR_STATE: `srv` is frozen: it has accepted a connection.
 */
WSMSG_API int wsmsg_server_set_clock(wsmsg_server *srv, wsmsg_clock_cb cb,
                                     void *user);

/**
 * Set the output callback (see wsmsg_output_cb) of the server's
 * connections: how the host learns, without scanning, which connections a
 * broadcast gave output to.  NULL (the default) turns it off.  Client
 * connections have no server and are not reported: after broadcasting to
 * client connections, check their wsmsg_conn_want_write.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `srv` is NULL.
 *  - WSMSG_ERR_STATE: `srv` is frozen: it accepted a connection.
 */
WSMSG_API int wsmsg_server_on_output(wsmsg_server *srv, wsmsg_output_cb cb);

/**
 * Create a server-side connection for a socket the host just accepted.  It
 * starts in WSMSG_STATE_CONNECTING and waits for the upgrade request.  `user`
 * is passed to every callback.  From the first call on, `srv` is frozen (its
 * setters fail with WSMSG_ERR_STATE).  Free the connection with
 * wsmsg_conn_free.
 *
 * Returns the connection, or NULL if `srv` is NULL or out of memory.
 */
WSMSG_API wsmsg_conn *wsmsg_server_accept(wsmsg_server *srv, void *user);

/* ------------------------------------------------------------------------ */
/* Registry and graceful drain                                               */
/* ------------------------------------------------------------------------ */
/* A server knows the connections it accepted until wsmsg_conn_free (an
 * intrusive list, no allocation).  Accept and free may run on any thread
 * (the list has a lock); closing connections touches them, so
 * wsmsg_server_close_all and wsmsg_server_drain belong to the thread that
 * runs all of the server's connections: with one event loop per thread,
 * give each thread its own server (docs/scaling.md). */

/** How many connections `srv` accepted that are not freed yet (any state).
 *  0 for NULL.  A draining host exits when this reaches 0. */
WSMSG_API size_t wsmsg_server_conn_count(const wsmsg_server *srv);

/**
 * Close every open connection of `srv` with `code` and `reason` (as
 * wsmsg_close: a close frame is queued; the closing handshake and the close
 * timeout then run as usual).  Connections still in the opening handshake
 * are ended at once (nothing reported to the application) unless they are
 * writing an HTTP response (wsmsg_server_on_http), a streamed body the
 * host paused included: that response, and a request already pipelined
 * behind it, is then their last (closed once written, whatever keep-alive
 * said); connections already closing are
 * left alone.
 * Every connection this changes that had no output pending is reported
 * to the server's on_output callback (wsmsg_server_on_output), so the host
 * learns without scanning which sockets to write (the close frame) or to
 * free (wsmsg_conn_done: the handshakes ended here); without the callback,
 * the host looks at all of them.
 *
 * Returns how many connections a close frame was queued on, or:
 *  - WSMSG_ERR_INVALID_ARG: `srv` is NULL.
 *  - WSMSG_ERR_CLOSE_CODE: `code` is not one wsmsg_close accepts.
 *  - WSMSG_ERR_UTF8: `reason` is not valid UTF-8.
 */
WSMSG_API int64_t wsmsg_server_close_all(wsmsg_server *srv, int code,
                                         const char *reason);

/**
 * Start a graceful drain (SIGTERM in a rolling deploy): from now on every
 * WebSocket upgrade request `srv` receives is refused with 503 Service
 * Unavailable (plain HTTP requests still reach wsmsg_server_on_http's hook,
 * which can answer health checks with 503 by looking at
 * wsmsg_server_draining; every response then says Connection: close and
 * is its connection's last, so no keep-alive connection of a balancer or
 * a browser keeps the process alive), and every open connection is closed
 * with 1001 "going away" (wsmsg_server_close_all).  The host keeps its loop
 * running until wsmsg_server_conn_count is 0 or its own drain timeout
 * passes, then frees what is left.  Calling it again closes what opened since (nothing,
 * unless connections were accepted before the first call and upgraded
 * after it, which the 503 prevents).
 *
 * Returns how many connections a close frame was queued on, or:
 *  - WSMSG_ERR_INVALID_ARG: `srv` is NULL.
 */
WSMSG_API int64_t wsmsg_server_drain(wsmsg_server *srv);

/** 1 once wsmsg_server_drain was called on `srv` (any thread may ask),
 *  else 0 (also for NULL). */
WSMSG_API int wsmsg_server_draining(const wsmsg_server *srv);

/**
 * Plain HTTP beside the upgrade (like python-websockets' process_request):
 * `cb` sees every request head the server receives -- WebSocket upgrades
 * included, before wsmsg's own checks -- whose start line and headers parse,
 * whose version is HTTP/1.0 or 1.x, whose target is a path (or an absolute
 * http(s)/ws(s) URI) and which carries no body (no Transfer-Encoding, no
 * Content-Length other than 0).  Other requests get 400 as without the hook.
 * The request view gives the method (wsmsg_request_method), path, query and
 * headers.  A request answered with wsmsg_http_respond* is not upgraded;
 * after the response the connection stays open for the next request
 * (keep-alive) or closes, as HTTP/1.1 says: HTTP/1.1 keeps it unless the
 * request or the response says "Connection: close", HTTP/1.0 closes it
 * unless the request says "Connection: keep-alive".  Pipelined requests are
 * answered one at a time, in order: while a response is being written,
 * wsmsg_conn_want_read is 0 and bytes fed anyway are kept (up to the maximum
 * request size; beyond it the connection closes after the current
 * response).  The handshake timeout (wsmsg_server_set_handshake_timeout) is
 * the time allowed for each request head, counted from accept and then from
 * the end of each response; it does not run while a streamed body is being
 * produced, and on a connection that has answered a request it ends the
 * connection without a 408.  NULL removes the hook.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `srv` is NULL.
 *  - WSMSG_ERR_STATE: `srv` is frozen: it has accepted a connection.
 */
WSMSG_API int wsmsg_server_on_http(wsmsg_server *srv, wsmsg_http_cb cb);

/**
 * Answer the request being handled by a wsmsg_http_cb, or deny an upgrade
 * from on_handshake with a response of the host's choice (e.g. 401 with a
 * body; the connection then closes after it, whatever on_handshake returns).
 * `status` is 200..599.  `headers` (may be NULL) holds extra header lines,
 * each "Name: value" ended by CRLF, e.g. "Content-Type: text/html\r\n";
 * wsmsg writes Content-Length and Connection itself, so `headers` must not
 * contain Content-Length or Transfer-Encoding, and the only Connection line
 * it may hold is "Connection: close" (which closes the connection after the
 * response).  The body (`len` bytes, copied) is not sent for HEAD requests,
 * whose Content-Length still says `len`; 204 and 304 responses carry no
 * body and no Content-Length (`len` must be 0).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `conn` is NULL, `body` is NULL with `len` > 0,
 *    `status` is out of range, `len` > 0 with status 204 or 304, or a header
 *    line is malformed (no colon, a name that is not a token, a control
 *    character in the value, a missing CRLF) or one wsmsg writes itself.
 *  - WSMSG_ERR_STATE: not called from the connection's wsmsg_http_cb or
 *    on_handshake, or the request was answered already.
 *  - WSMSG_ERR_NOMEM: out of memory (the connection then ends without a
 *    response).
 */
WSMSG_API int wsmsg_http_respond(wsmsg_conn *conn, int status,
                                 const char *headers, const void *body,
                                 size_t len);

/**
 * As wsmsg_http_respond with a body pulled from `cb` as the socket drains
 * (files): wsmsg calls `cb` from wsmsg_conn_pending while little output is
 * pending, with the same contract as wsmsg_send_stream's callback (return 0
 * without eof to pause until wsmsg_conn_resume_stream; -1 aborts the
 * connection).  `length` is the body's size, sent as Content-Length (the
 * callback must give exactly that many bytes; more, or eof before, aborts
 * the connection, as the response cannot be framed any more), or -1 if
 * unknown: then the body is sent chunked to HTTP/1.1 clients and
 * close-delimited to HTTP/1.0 ones.  For HEAD requests `cb` is never called.
 * wsmsg does not free `user`: release what it holds when `cb` sets *eof,
 * returns -1, or when you free the connection.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `conn` or `cb` is NULL, `length` < -1, `status`
 *    is out of range or 204/304, or `headers` is malformed (as for
 *    wsmsg_http_respond).
 *  - WSMSG_ERR_STATE: not called from the connection's wsmsg_http_cb or
 *    on_handshake, or the request was answered already.
 *  - WSMSG_ERR_NOMEM: out of memory (the connection then ends without a
 *    response).
 */
WSMSG_API int wsmsg_http_respond_stream(wsmsg_conn *conn, int status,
                                        const char *headers, int64_t length,
                                        wsmsg_read_cb cb, void *user);

/* ------------------------------------------------------------------------ */
/* Clients                                                                   */
/* ------------------------------------------------------------------------ */

/**
 * Create a client-side connection that will speak to `host` (the Host header,
 * e.g. "example.com:8080") at `path` (e.g. "/ws/chat?room=1").  The upgrade
 * request is built on the first wsmsg_conn_pending call, so headers can be
 * added before.  The endpoint's subprotocols are offered.  `ep` is frozen from
 * then on.
 *
 * Returns the connection, or NULL if out of memory or an argument is invalid
 * (`ep`, `host` or `path` NULL, `host` empty, `path` not starting with '/', a
 * space or control character in `host` or `path`).
 */
WSMSG_API wsmsg_conn *wsmsg_client_new(wsmsg_endpoint *ep, const char *host,
                                       const char *path, void *user);

/**
 * Add a header to the client's upgrade request (e.g. "Origin",
 * "Authorization").  Both strings are copied.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `conn` is NULL or server-side; `name` or `value` is
 *    NULL; `name` is empty or has a space, tab, ':' or control character;
 *    `value` contains CR or LF; or `name` is a header wsmsg sets itself (Host,
 *    Upgrade, Connection, Sec-WebSocket-*).
 *  - WSMSG_ERR_STATE: the request was built already (by the first
 *    wsmsg_conn_pending).
 *  - WSMSG_ERR_NOMEM: out of memory.
 */
WSMSG_API int wsmsg_client_add_header(wsmsg_conn *conn, const char *name,
                                      const char *value);

/* ------------------------------------------------------------------------ */
/* Connections: bytes in and out (sans-I/O)                                  */
/* ------------------------------------------------------------------------ */

/**
 * Free a connection and everything it holds.  NULL is ignored.  Does not
 * call on_close; use wsmsg_conn_abort first if the application must see it.
 */
WSMSG_API void wsmsg_conn_free(wsmsg_conn *conn);

/**
 * Feed `n` bytes read from the socket.  wsmsg consumes all of them: it runs the
 * handshake, parses frames and calls callbacks (or queues events) for every
 * complete message.  Whatever it returns, write what wsmsg_conn_pending returns
 * next.  A peer's error ends the connection: it is then CLOSED, the close frame
 * (or HTTP error response) with the matching code is pending, and on_close (or
 * the CLOSE event) says why.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `conn` is NULL, or `bytes` is NULL with `n` > 0.
 *  - WSMSG_ERR_CLOSED: the connection no longer reads (closed, failed or
 *    aborted); the bytes are ignored.
 *  - WSMSG_ERR_STATE: a client connection whose upgrade request was not taken
 *    from wsmsg_conn_pending yet.
 *  - WSMSG_ERR_HANDSHAKE: the opening handshake failed: a server rejected the
 *    request (a 4xx/5xx response is pending) or a client got a response that is
 *    not a valid 101.
 *  - WSMSG_ERR_PROTOCOL: the peer broke RFC 6455 framing (close 1002).
 *  - WSMSG_ERR_CLOSE_CODE: the peer's close frame has an invalid code (close
 *    1002).
 *  - WSMSG_ERR_UTF8: a text message or close reason is not UTF-8 (close 1007).
 *  - WSMSG_ERR_TOO_BIG: a message is over the size limit (close 1009).
 *  - WSMSG_ERR_TOO_MANY_FRAGMENTS: a message has more frames than the limit
 *    (close 1009).
 *  - WSMSG_ERR_BACKPRESSURE: the event queue is over its bound
 *    (wsmsg_endpoint_set_max_queued), or a callback's send was refused under
 *    WSMSG_BACKPRESSURE_CLOSE (close 1008).
 *  - WSMSG_ERR_NOMEM: out of memory for a message, an event or a reply (close
 *    1011; during the handshake the connection ends without a response).
 */
WSMSG_API int wsmsg_conn_recv(wsmsg_conn *conn, const void *bytes, size_t n);

/**
 * The peer closed its side of the TCP connection (read returned 0).  If the
 * closing handshake had not completed, the connection ends uncleanly
 * (code 1006, error WSMSG_ERR_EOF) and on_close is called.  Output
 * already queued stays for a half-closed peer that may still read it, for
 * at most the close timeout (the drain deadline: then the connection is
 * aborted; the write timeout runs too), so keep ticking its timers.
 */
WSMSG_API void wsmsg_conn_eof(wsmsg_conn *conn);

/**
 * The host gives up on the connection (socket error, shutdown...): it is
 * closed immediately (code 1006, error WSMSG_ERR_ABORTED), pending output is
 * dropped and on_close is called if the connection was open.
 */
WSMSG_API void wsmsg_conn_abort(wsmsg_conn *conn);

/**
 * The bytes to write next: sets *bytes and returns how many (0 if none).
 * The pointer stays valid until the next call into this connection.  Many
 * queued messages are coalesced into one contiguous buffer.
 */
WSMSG_API size_t wsmsg_conn_pending(wsmsg_conn *conn, const void **bytes);

/** Tell wsmsg that `n` of the pending bytes were written.  `n` larger than
 *  what is pending is clamped. */
WSMSG_API void wsmsg_conn_consume(wsmsg_conn *conn, size_t n);

/** The connection's state (enum wsmsg_state); CLOSED for NULL. */
WSMSG_API int wsmsg_conn_state(const wsmsg_conn *conn);

/** 1 if bytes are pending for the socket (wait for POLLOUT), else 0. */
WSMSG_API int wsmsg_conn_want_write(const wsmsg_conn *conn);

/** 1 if the connection still wants bytes from the socket, else 0. */
WSMSG_API int wsmsg_conn_want_read(const wsmsg_conn *conn);

/**
 * 1 when the host should close the socket and free the connection: the
 * connection is CLOSED and everything pending was written (or dropped by
 * wsmsg_conn_abort).
 */
WSMSG_API int wsmsg_conn_done(const wsmsg_conn *conn);

/** The user pointer given at creation. */
WSMSG_API void *wsmsg_conn_user(const wsmsg_conn *conn);

/** Replace the user pointer (e.g. from on_handshake). */
WSMSG_API void wsmsg_conn_set_user(wsmsg_conn *conn, void *user);

/** 1 for a client-side connection, 0 for a server-side one. */
WSMSG_API int wsmsg_conn_is_client(const wsmsg_conn *conn);

/** The endpoint serving the connection (NULL before routing). */
WSMSG_API wsmsg_endpoint *wsmsg_conn_endpoint(const wsmsg_conn *conn);

/** The request path without the query ("" before the handshake). */
WSMSG_API const char *wsmsg_conn_path(const wsmsg_conn *conn);

/** The query string after '?' ("" if none). */
WSMSG_API const char *wsmsg_conn_query(const wsmsg_conn *conn);

/** The negotiated subprotocol, or NULL if none. */
WSMSG_API const char *wsmsg_conn_subprotocol(const wsmsg_conn *conn);

/** 1 if the connection agreed on permessage-deflate, else 0 (NULL: 0). */
WSMSG_API int wsmsg_conn_deflate(const wsmsg_conn *conn);

/**
 * The error that ended or failed the connection (0 if none), with a
 * human-readable detail in wsmsg_conn_error_detail.
 */
WSMSG_API int wsmsg_conn_error(const wsmsg_conn *conn);

/** Explanation of wsmsg_conn_error ("" if none); never NULL. */
WSMSG_API const char *wsmsg_conn_error_detail(const wsmsg_conn *conn);

/**
 * The HTTP status of the handshake: on a server the status sent (101 or an
 * error), on a client the status received; 0 before it is known.
 */
WSMSG_API int wsmsg_conn_http_status(const wsmsg_conn *conn);

/**
 * Pull API, like Starlette's receive(): take the next queued event.
 * Messages are queued on pull endpoints only (no message callback; see
 * "Push and pull endpoints").  The data inside *ev stays valid until the
 * next call.
 *
 * Returns 1 and fills *ev if there was an event, 0 if the queue is empty (*ev
 * is zeroed), or:
 *  - WSMSG_ERR_INVALID_ARG: `conn` or `ev` is NULL.
 */
WSMSG_API int wsmsg_conn_next_event(wsmsg_conn *conn, wsmsg_event *ev);

/** How many events are queued for wsmsg_conn_next_event. */
WSMSG_API size_t wsmsg_conn_event_count(const wsmsg_conn *conn);

/**
 * Optional helper for a non-blocking socket: read everything available (feeding
 * wsmsg_conn_recv), then write what is pending until the socket would block.
 * What wsmsg_conn_recv returns is not passed on: a connection it ended is done,
 * with the reason in wsmsg_conn_error.
 *
 * Returns 1 when the connection is done (close the fd and free the connection),
 * 0 when it goes on (poll for POLLIN, plus POLLOUT if wsmsg_conn_want_write),
 * or:
 *  - WSMSG_ERR_INVALID_ARG: `conn` is NULL or `fd` is negative.
 *  - WSMSG_ERR_IO: reading or writing `fd` failed; the connection is aborted
 *    (error WSMSG_ERR_IO) and done.
 */
WSMSG_API int wsmsg_conn_io_fd(wsmsg_conn *conn, int fd);

/* ------------------------------------------------------------------------ */
/* Time                                                                      */
/* ------------------------------------------------------------------------ */

/** Milliseconds of CLOCK_MONOTONIC: the default clock. */
WSMSG_API uint64_t wsmsg_now_ms(void);

/**
 * Run the connection's timers at time `now_ms`: every deadline at or before it
 * fires (handshake, receive, ping/pong, message, close, write).  Afterwards
 * write what wsmsg_conn_pending returns (pings, close frames) and check
 * wsmsg_conn_done.  A timer that ends the connection reports WSMSG_ERR_TIMEOUT
 * through on_close, not here.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `conn` is NULL.
 */
WSMSG_API int wsmsg_conn_tick(wsmsg_conn *conn, uint64_t now_ms);

/** The connection's next deadline as an absolute clock value in ms, or -1
 *  if no timer is armed. */
WSMSG_API int64_t wsmsg_conn_deadline(const wsmsg_conn *conn);

/** Milliseconds from the clock's now until the next deadline (0 if it
 *  passed), or -1 if no timer is armed. */
WSMSG_API int64_t wsmsg_conn_next_deadline(const wsmsg_conn *conn);

/** Round-trip time of the last answered keepalive ping in ms, or -1. */
WSMSG_API int64_t wsmsg_conn_rtt_ms(const wsmsg_conn *conn);

/**
 * Blocking convenience for simple clients and FFI, the analog of
 * asyncio.wait_for(ws.receive(), timeout): drive the connection over the
 * blocking or non-blocking socket `fd` (poll + wsmsg_conn_io_fd +
 * wsmsg_conn_tick) until an event is queued, then take it into *ev.
 * `timeout_ms` < 0 waits without limit.  Messages with callbacks are not
 * events.  A connection that ends yields its CLOSE event (when no on_close is
 * set) before WSMSG_ERR_CLOSED.
 *
 * Returns 1 with an event, 0 if `timeout_ms` passed first, or:
 *  - WSMSG_ERR_INVALID_ARG: `conn` or `ev` is NULL, or `fd` is negative.
 *  - WSMSG_ERR_CLOSED: the connection is done and no event is left.
 *  - WSMSG_ERR_IO: poll, read or write failed (the connection is aborted).
 */
WSMSG_API int wsmsg_conn_wait_event(wsmsg_conn *conn, int fd, wsmsg_event *ev,
                                    int timeout_ms);

/** A set of connections ordered by deadline (a binary min-heap). */
typedef struct wsmsg_timers wsmsg_timers;

/**
 * Create an empty timer set.
 *
 * Returns the set, or NULL if out of memory.
 */
WSMSG_API wsmsg_timers *wsmsg_timers_new(void);

/**
 * As wsmsg_timers_new, with a custom allocator (copied; NULL: libc) for the set
 * and its heap.
 *
 * Returns the set, or NULL if out of memory.
 */
WSMSG_API wsmsg_timers *wsmsg_timers_new_mem(const wsmsg_mem *mem);

/** Free a timer set; its connections are detached, not freed. */
WSMSG_API void wsmsg_timers_free(wsmsg_timers *t);

/**
 * Put a connection under this timer set (a connection is in at most one;
 * adding moves it).  From then on its deadline is kept in the heap in
 * O(log n) whenever it moves earlier; moves to later are applied lazily
 * when the old deadline comes.  wsmsg_conn_free removes it.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `t` or `conn` is NULL.
 *  - WSMSG_ERR_NOMEM: out of memory; the connection is then in no set.
 */
WSMSG_API int wsmsg_timers_add(wsmsg_timers *t, wsmsg_conn *conn);

/** Take a connection out of its timer set (no-op if it is in none). */
WSMSG_API void wsmsg_timers_remove(wsmsg_conn *conn);

/** How many connections the set holds. */
WSMSG_API size_t wsmsg_timers_count(const wsmsg_timers *t);

/** Milliseconds from `now_ms` until the earliest deadline (0 if due), or -1
 *  if none: the timeout for epoll_wait/poll. */
WSMSG_API int64_t wsmsg_timers_next_ms(const wsmsg_timers *t, uint64_t now_ms);

/**
 * Run the timers that are due at `now_ms`, one connection per call: ticks
 * the earliest connection whose deadline passed and returns it (so the
 * host can write its output and check wsmsg_conn_done), or NULL when none
 * is due.  Call in a loop until NULL; every connection is returned at most
 * once per `now_ms`.
 */
WSMSG_API wsmsg_conn *wsmsg_timers_expire(wsmsg_timers *t, uint64_t now_ms);

/* ------------------------------------------------------------------------ */
/* Sending                                                                   */
/* ------------------------------------------------------------------------ */

/**
 * Queue a text message of `len` bytes (copied).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `conn` is NULL, or `data` is NULL with `len` > 0.
 *  - WSMSG_ERR_STATE: the connection is still connecting.
 *  - WSMSG_ERR_CLOSED: a close frame was sent, or the connection is closed.
 *  - WSMSG_ERR_UTF8: the text is not valid UTF-8 (nothing queued).
 *  - WSMSG_ERR_BACKPRESSURE: the output queue is over its high mark
 *    (wsmsg_endpoint_set_backpressure); nothing was queued, and under
 *    WSMSG_BACKPRESSURE_CLOSE the connection is closed with 1008.
 *  - WSMSG_ERR_NOMEM: out of memory.
 */
WSMSG_API int wsmsg_send_text(wsmsg_conn *conn, const char *data, size_t len);

/**
 * Queue a binary message of `len` bytes (copied).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `conn` is NULL, or `data` is NULL with `len` > 0.
 *  - WSMSG_ERR_STATE: the connection is still connecting.
 *  - WSMSG_ERR_CLOSED: a close frame was sent, or the connection is closed.
 *  - WSMSG_ERR_BACKPRESSURE: the output queue is over its high mark
 *    (wsmsg_endpoint_set_backpressure); nothing was queued, and under
 *    WSMSG_BACKPRESSURE_CLOSE the connection is closed with 1008.
 *  - WSMSG_ERR_NOMEM: out of memory.
 */
WSMSG_API int wsmsg_send_binary(wsmsg_conn *conn, const void *data, size_t len);

/**
 * Send a message whose data is pulled from `cb` as the socket drains (as
 * fragments of up to 64 KiB; `type` is WSMSG_EV_TEXT or WSMSG_EV_BINARY).  Only
 * one stream runs at a time: data messages sent meanwhile are queued behind it;
 * pings, pongs and close frames go between its fragments.  Text is
 * UTF-8-checked as it is pulled (bad text, or `cb` returning -1, fails the
 * connection with 1011).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `conn` or `cb` is NULL, or `type` is not
 *    WSMSG_EV_TEXT or WSMSG_EV_BINARY.
 *  - WSMSG_ERR_STATE: the connection is still connecting, or a stream is
 *    already running.
 *  - WSMSG_ERR_CLOSED: a close frame was sent, or the connection is closed.
 *  - WSMSG_ERR_NOMEM: out of memory.
 */
WSMSG_API int wsmsg_send_stream(wsmsg_conn *conn, int type, wsmsg_read_cb cb,
                                void *user);

/**
 * Send one message to many connections (a chat room, a fan-out): framed once,
 * then the frame's bytes are copied into each server-side connection's output,
 * so the cost per recipient is a copy (client-side connections mask their
 * frames and are framed one by one).  `type` is WSMSG_EV_TEXT (checked for
 * UTF-8 once) or WSMSG_EV_BINARY.  Connections that cannot take the message —
 * NULL, not open, closing, refused by their backpressure policy or out of
 * memory — are skipped: only the count tells.  Recipients that had no
 * output pending are reported to their server's on_output callback
 * (wsmsg_server_on_output) once the message is queued on all of them: the
 * host learns which sockets to write without scanning.
 *
 * Returns how many connections queued it (0 to `n`), or:
 *  - WSMSG_ERR_INVALID_ARG: `conns` is NULL with `n` > 0, `data` is NULL with
 *    `len` > 0, or `type` is neither WSMSG_EV_TEXT nor WSMSG_EV_BINARY (nothing
 *    sent).
 *  - WSMSG_ERR_UTF8: the text is not valid UTF-8 (nothing sent).
 */
WSMSG_API int64_t wsmsg_broadcast(wsmsg_conn *const *conns, size_t n, int type,
                                  const void *data, size_t len);

/* ------------------------------------------------------------------------ */
/* Topics (publish/subscribe)                                                */
/* ------------------------------------------------------------------------ */
/* A topic set maps names to the connections subscribed to them (what
 * uWebSockets calls subscribe/publish and Socket.IO calls rooms).  Publish
 * frames a message once and appends the same bytes to every subscriber's
 * output: O(subscribers), no allocation per recipient; subscribe and
 * unsubscribe are O(1) (hash tables).  Each recipient's backpressure
 * policy applies (wsmsg_endpoint_set_backpressure): a subscriber over its
 * high mark is skipped (WSMSG_BACKPRESSURE_FAIL) or closed with 1008
 * (WSMSG_BACKPRESSURE_CLOSE), so a slow reader never makes memory grow
 * without bound.  A connection leaves all its topics when it closes (after
 * its on_close or CLOSE event) or is freed.
 *
 * Threads: a set belongs to one thread, like the connections in it (no
 * locks).  With one event loop per thread, each thread has its own set,
 * and what one thread publishes reaches the others through a bus (Redis
 * pub/sub in examples/chat) or a hand-off the host owns: docs/scaling.md.
 * A connection may be in several sets. */

/** Publish flags. */
enum wsmsg_publish_flags {
  /** The message came from elsewhere (a bus): the publish hook
   *  (wsmsg_topics_on_publish) is not called, so it is not sent back. */
  WSMSG_PUBLISH_REMOTE = 1
};

/**
 * The publish hook: called once for every local publish (flags without
 * WSMSG_PUBLISH_REMOTE) to a topic of `topics`, whether or not the topic
 * has local subscribers, after the local subscribers have the message, so
 * the host can forward it to a bus.  `type` is WSMSG_EV_TEXT (JSON
 * publishes arrive serialized, as text) or WSMSG_EV_BINARY; `topic` and
 * `data` are valid during the call only.  It must not publish to
 * `topics` (WSMSG_ERR_STATE) or free it; subscribing and unsubscribing
 * connections is allowed (the publish's recipients are settled by then).
 */
typedef void (*wsmsg_publish_cb)(wsmsg_topics *topics, const char *topic,
                                 int type, const void *data, size_t len,
                                 void *user);

/**
 * Create an empty topic set.  Free it with wsmsg_topics_free.
 *
 * Returns the set, or NULL if out of memory.
 */
WSMSG_API wsmsg_topics *wsmsg_topics_new(void);

/**
 * As wsmsg_topics_new with a custom allocator (copied; NULL: libc).
 *
 * Returns the set, or NULL if out of memory.
 */
WSMSG_API wsmsg_topics *wsmsg_topics_new_mem(const wsmsg_mem *mem);

/** Free a topic set, unsubscribing every connection (the connections stay
 *  open).  NULL is ignored.  Not from a publish hook. */
WSMSG_API void wsmsg_topics_free(wsmsg_topics *topics);

/**
 * Set the publish hook (see wsmsg_publish_cb) and its `user` pointer; NULL
 * removes it.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `topics` is NULL.
 */
WSMSG_API int wsmsg_topics_on_publish(wsmsg_topics *topics, wsmsg_publish_cb cb,
                                      void *user);

/**
 * Subscribe an open connection to `topic` (a NUL-terminated name, copied;
 * any bytes, compared exactly), creating the topic on first use.
 *
 * Returns 0 (subscribed), 1 (it already was), or:
 *  - WSMSG_ERR_INVALID_ARG: `topics`, `conn` or `topic` is NULL.
 *  - WSMSG_ERR_STATE: the connection is still connecting, or a publish to
 *    this topic is running (a callback it caused).
 *  - WSMSG_ERR_CLOSED: the connection is closing or closed.
 *  - WSMSG_ERR_NOMEM: out of memory (nothing changed).
 */
WSMSG_API int wsmsg_topic_subscribe(wsmsg_topics *topics, wsmsg_conn *conn,
                                    const char *topic);

/**
 * Unsubscribe `conn` from `topic`; a topic left without subscribers is
 * freed.  Allowed from callbacks a publish causes (the connection gets
 * nothing more from it).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `topics`, `conn` or `topic` is NULL.
 *  - WSMSG_ERR_NOT_FOUND: `conn` is not subscribed to `topic`.
 */
WSMSG_API int wsmsg_topic_unsubscribe(wsmsg_topics *topics, wsmsg_conn *conn,
                                      const char *topic);

/** 1 if `conn` is subscribed to `topic` in `topics`, else 0 (also for
 *  NULL arguments). */
WSMSG_API int wsmsg_topic_is_subscribed(const wsmsg_topics *topics,
                                        const wsmsg_conn *conn,
                                        const char *topic);

/** How many connections are subscribed to `topic` (0 for NULL arguments
 *  or an unknown topic). */
WSMSG_API size_t wsmsg_topic_subscribers(const wsmsg_topics *topics,
                                         const char *topic);

/** How many topics have subscribers in `topics` (0 for NULL). */
WSMSG_API size_t wsmsg_topics_count(const wsmsg_topics *topics);

/** How many topics `conn` is subscribed to, in all sets (0 for NULL). */
WSMSG_API size_t wsmsg_conn_topic_count(const wsmsg_conn *conn);

/**
 * Publish a text (WSMSG_EV_TEXT, checked for UTF-8 once) or binary
 * (WSMSG_EV_BINARY) message to every connection subscribed to `topic`, as
 * wsmsg_broadcast does (framed once, no allocation per recipient;
 * subscribers that cannot take it -- closing, or refused by their
 * backpressure policy -- are skipped), then call the publish hook unless
 * `flags` has WSMSG_PUBLISH_REMOTE.  The host writes the recipients'
 * output: those that had none pending are reported to their server's
 * on_output callback (wsmsg_server_on_output) once the message is queued
 * on all of them, as for wsmsg_broadcast.  Not from a callback a publish
 * to the same set causes (the publish hook, or on_close of a subscriber
 * its backpressure policy closed).
 *
 * Returns how many subscribers queued it (0 if the topic has none), or:
 *  - WSMSG_ERR_INVALID_ARG: `topics` or `topic` is NULL, `data` is NULL
 *    with `len` > 0, `type` is neither WSMSG_EV_TEXT nor WSMSG_EV_BINARY,
 *    or `flags` has an unknown bit (nothing sent).
 *  - WSMSG_ERR_UTF8: the text is not valid UTF-8 (nothing sent).
 *  - WSMSG_ERR_STATE: called from a callback of a publish to this set
 *    (nothing sent).
 */
WSMSG_API int64_t wsmsg_topic_publish(wsmsg_topics *topics, const char *topic,
                                      int type, const void *data, size_t len,
                                      int flags);

/**
 * wsmsg_topic_publish for a JSON document: serialized once (compact; into
 * a 4 KiB stack buffer when it fits, else one allocation from the set's
 * allocator) and published as text.  `msg` is borrowed.
 *
 * Returns how many subscribers queued it, or:
 *  - WSMSG_ERR_INVALID_ARG: `topics`, `topic` or `msg` is NULL, `flags` has
 *    an unknown bit, or jansson cannot serialize `msg` (nothing sent).
 *  - WSMSG_ERR_NOMEM: no memory for a document over 4 KiB (nothing sent).
 *  - WSMSG_ERR_STATE: called from a callback of a publish to this set
 *    (nothing sent).
 */
WSMSG_API int64_t wsmsg_topic_publish_json(wsmsg_topics *topics,
                                           const char *topic,
                                           const json_t *msg, int flags);

/**
 * wsmsg_broadcast for a JSON document: serialized once (compact, into a 4
 * KiB stack buffer when it fits, else one allocation from the first
 * recipient's allocator), then framed once and copied to each recipient
 * like wsmsg_broadcast; no allocation per recipient.  `msg` is borrowed.
 * Recipients whose output was empty are reported to their server's
 * on_output (wsmsg_server_on_output), as for wsmsg_broadcast.
 *
 * Returns how many connections queued it (0 to `n`), or:
 *  - WSMSG_ERR_INVALID_ARG: `conns` is NULL with `n` > 0, `msg` is NULL, or
 *    jansson cannot serialize it (nothing sent).
 *  - WSMSG_ERR_NOMEM: no memory for a document over 4 KiB (nothing sent).
 */
WSMSG_API int64_t wsmsg_broadcast_json(wsmsg_conn *const *conns, size_t n,
                                       const json_t *msg);

/**
 * Resume a stream whose read callback returned 0 without eof.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `conn` is NULL.
 *  - WSMSG_ERR_STATE: no stream is running.
 */
WSMSG_API int wsmsg_conn_resume_stream(wsmsg_conn *conn);

/** 1 while a wsmsg_send_stream message is being sent. */
WSMSG_API int wsmsg_conn_streaming(const wsmsg_conn *conn);

/** Bytes queued for the socket and not yet consumed (data messages queued
 *  behind a stream included). */
WSMSG_API size_t wsmsg_conn_buffered_amount(const wsmsg_conn *conn);

/**
 * Queue a ping with up to 125 bytes of payload.  The peer's pong reaches
 * on_pong.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `conn` is NULL, `len` is over 125, or `data` is
 *    NULL with `len` > 0.
 *  - WSMSG_ERR_STATE: the connection is still connecting.
 *  - WSMSG_ERR_CLOSED: a close frame was sent, or the connection is closed.
 *  - WSMSG_ERR_NOMEM: out of memory.
 */
WSMSG_API int wsmsg_send_ping(wsmsg_conn *conn, const void *data, size_t len);

/**
 * Start the closing handshake: queue a close frame with `code` and `reason`
 * (NUL-terminated, may be NULL; cut to 123 bytes on a UTF-8 boundary).  `code`
 * is 1000-1003, 1007-1014 or 3000-4999, or 0 for a close frame without code
 * (then the reason is ignored).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `conn` is NULL.
 *  - WSMSG_ERR_STATE: the connection is still connecting.
 *  - WSMSG_ERR_CLOSED: a close frame was sent already, or the connection is
 *    closed.
 *  - WSMSG_ERR_CLOSE_CODE: `code` is not one of the codes above.
 *  - WSMSG_ERR_UTF8: `reason` is not valid UTF-8.
 *  - WSMSG_ERR_NOMEM: out of memory.
 */
WSMSG_API int wsmsg_close(wsmsg_conn *conn, int code, const char *reason);

/* ------------------------------------------------------------------------ */
/* Request view (valid during on_handshake and a wsmsg_http_cb)             */
/* ------------------------------------------------------------------------ */

/** The request method ("GET", "HEAD", ...); "" for NULL. */
WSMSG_API const char *wsmsg_request_method(const wsmsg_request *req);

/** Request path without the query string; never NULL. */
WSMSG_API const char *wsmsg_request_path(const wsmsg_request *req);

/** Query string after '?', "" if none; never NULL. */
WSMSG_API const char *wsmsg_request_query(const wsmsg_request *req);

/**
 * Value of the first header called `name` (case-insensitive), with
 * surrounding whitespace removed, or NULL if absent.
 */
WSMSG_API const char *wsmsg_request_header(const wsmsg_request *req,
                                           const char *name);

/** Number of header lines in the request. */
WSMSG_API size_t wsmsg_request_header_count(const wsmsg_request *req);

/** Name of header line `i` as sent, or NULL if out of range. */
WSMSG_API const char *wsmsg_request_header_name(const wsmsg_request *req,
                                                size_t i);

/** Value of header line `i`, or NULL if out of range. */
WSMSG_API const char *wsmsg_request_header_value(const wsmsg_request *req,
                                                 size_t i);

/**
 * Value of cookie `name` from the Cookie header(s), copied into `out` (size
 * `out_size`, NUL-terminated; surrounding double quotes are removed).
 *
 * Returns the value's length, or:
 *  - WSMSG_ERR_INVALID_ARG: `req`, `name` or `out` is NULL, `name` is empty or
 *    `out_size` is 0, or the value does not fit in `out_size` bytes with its
 *    NUL.
 *  - WSMSG_ERR_NOT_FOUND: the request has no cookie `name`.
 */
WSMSG_API int wsmsg_request_cookie(const wsmsg_request *req, const char *name,
                                   char *out, size_t out_size);

/* ------------------------------------------------------------------------ */
/* JSON Schema validation                                                    */
/* ------------------------------------------------------------------------ */
/*
 * JSON Schema (draft 2020-12 and draft-07) validation of jansson documents,
 * with errors in the shape Pydantic v1 / FastAPI users know:
 *   {"loc": ["items", 0, "price"], "msg": "field required",
 *    "type": "value_error.missing"}
 * (or, with WSMSG_VALIDATE_PYDANTIC_V2, the Pydantic v2 / FastAPI >= 0.100
 * shape {"type": "missing", "loc": [...], "msg": "Field required",
 * "input": ...}).
 * A schema is compiled once and is then immutable: any number of threads may
 * validate with it at the same time.  A wsmsg_verrors list is used by one
 * thread at a time.  docs/schema.md lists the supported keywords, the
 * keyword -> error type table and the exact coercion rules.
 */

/** A compiled JSON Schema (immutable, shareable across threads). */
typedef struct wsmsg_schema wsmsg_schema;
/** A list of validation errors, filled by wsmsg_schema_validate(). */
typedef struct wsmsg_verrors wsmsg_verrors;

/** Options of wsmsg_schema_compile() (`options`). */
enum wsmsg_schema_option {
  /** Dialect of a schema without "$schema": 2020-12 (the default). */
  WSMSG_SCHEMA_DRAFT2020_12 = 0,
  /** Dialect of a schema without "$schema": draft-07 (AsyncAPI 2.x). */
  WSMSG_SCHEMA_DRAFT7 = 1,
  /** Do not JIT-compile patterns (slower matching; for valgrind runs or
      systems that forbid executable memory).  OR it with a dialect. */
  WSMSG_SCHEMA_NO_JIT = 2
};

/** Flags of wsmsg_schema_validate() (`flags`, OR-ed together). */
enum wsmsg_validate_flag {
  /** Plain JSON Schema: the document is not modified. */
  WSMSG_VALIDATE_STRICT = 0,
  /** Pydantic-like lax mode: "12" -> 12 for integer/number, "yes"/1 ->
      true for boolean, 12 -> "12" for string; rewrites the document. */
  WSMSG_VALIDATE_COERCE = 1,
  /** Fill missing properties from their subschema's "default" (deep copy);
      rewrites the document. */
  WSMSG_VALIDATE_DEFAULTS = 2,
  /** Assert "format" for date-time, email, uuid, ipv4, ipv6 and uri
      (otherwise "format" is an annotation only). */
  WSMSG_VALIDATE_FORMAT = 4,
  /** Pydantic's extra = "ignore": drop the keys of an object that its
      model-like schema (one with "properties" or "patternProperties")
      does not declare ("properties", "patternProperties", "required");
      rewrites the document.  docs/schema.md, "Extra properties", defines
      "declare". */
  WSMSG_VALIDATE_EXTRA_IGNORE = 8,
  /** Pydantic's extra = "forbid": such keys are errors
      (value_error.extra), as if the schema said
      "additionalProperties": false.  Wins over EXTRA_IGNORE. */
  WSMSG_VALIDATE_EXTRA_FORBID = 16,
  /** Errors in Pydantic v2's shape (FastAPI >= 0.100): {"type":
      "missing", "loc": [...], "msg": "Field required", "input": ...,
      "ctx": {...}} with v2's types and messages (docs/schema.md has the
      table); without it, Pydantic v1's shape (the default). */
  WSMSG_VALIDATE_PYDANTIC_V2 = 32
};

/** Default cap on the number of errors a wsmsg_verrors collects. */
#define WSMSG_VERRORS_DEFAULT_MAX 32

/**
 * Compile a JSON Schema from text (`len` bytes, need not be NUL-terminated).
 * `options` is a WSMSG_SCHEMA_* mask (dialect when the schema has no "$schema",
 * NO_JIT).  On success stores a new schema in *out (free it with
 * wsmsg_schema_free).  On failure *out is NULL and a message is written to
 * `err` (if not NULL; `err_size` bytes, NUL-terminated, truncated).  The text
 * is not kept.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `out` or `text` is NULL.
 *  - WSMSG_ERR_JSON: the text is not JSON.
 *  - WSMSG_ERR_SCHEMA: the schema is malformed: a keyword with a wrong value,
 *    an unresolvable $ref or one that cycles without descending into the
 *    instance, a bad regex, nesting too deep.
 *  - WSMSG_ERR_UNSUPPORTED: $dynamicRef, $recursiveRef, a remote $ref or an
 *    unknown "$schema" dialect (the message names it).
 *  - WSMSG_ERR_NOMEM: out of memory.
 */
WSMSG_API int wsmsg_schema_compile(const char *text, size_t len,
                                   unsigned options, wsmsg_schema **out,
                                   char *err, size_t err_size);

/**
 * Like wsmsg_schema_compile() but from a jansson value.  The schema is deep
 * copied: the caller keeps its reference and may change or free `schema`
 * afterwards.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `out` or `schema` is NULL.
 *  - WSMSG_ERR_SCHEMA: as for wsmsg_schema_compile().
 *  - WSMSG_ERR_UNSUPPORTED: as for wsmsg_schema_compile().
 *  - WSMSG_ERR_NOMEM: out of memory.
 */
WSMSG_API int wsmsg_schema_compile_json(const json_t *schema, unsigned options,
                                        wsmsg_schema **out, char *err,
                                        size_t err_size);

/**
 * As wsmsg_schema_compile, with a custom allocator (copied; NULL: libc) for the
 * schema, its compiled graph and the compiler's scratch memory; a validation
 * without an error list takes its scratch memory from it too.  (The schema
 * document and PCRE2 patterns are jansson's and PCRE2's.)
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `out` or `text` is NULL.
 *  - WSMSG_ERR_JSON: the text is not JSON.
 *  - WSMSG_ERR_SCHEMA: as for wsmsg_schema_compile().
 *  - WSMSG_ERR_UNSUPPORTED: as for wsmsg_schema_compile().
 *  - WSMSG_ERR_NOMEM: out of memory.
 */
WSMSG_API int wsmsg_schema_compile_mem(const char *text, size_t len,
                                       unsigned options, const wsmsg_mem *mem,
                                       wsmsg_schema **out, char *err,
                                       size_t err_size);

/**
 * As wsmsg_schema_compile_json, with a custom allocator (see
 * wsmsg_schema_compile_mem).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `out` or `schema` is NULL.
 *  - WSMSG_ERR_SCHEMA: as for wsmsg_schema_compile().
 *  - WSMSG_ERR_UNSUPPORTED: as for wsmsg_schema_compile().
 *  - WSMSG_ERR_NOMEM: out of memory.
 */
WSMSG_API int wsmsg_schema_compile_json_mem(const json_t *schema,
                                            unsigned options,
                                            const wsmsg_mem *mem,
                                            wsmsg_schema **out, char *err,
                                            size_t err_size);

/** Free a compiled schema (NULL is ignored).  No validation may be running
 *  with it. */
WSMSG_API void wsmsg_schema_free(wsmsg_schema *schema);

/** Default PCRE2 match limit of each pattern match of a schema (about
 *  0.3 ms of CPU with the JIT, 1 ms with the interpreter, for the worst
 *  backtracking patterns measured; docs/schema.md). */
#define WSMSG_REGEX_MATCH_LIMIT_DEFAULT 100000u
/** Default PCRE2 depth limit (backtracking depth, interpreter only). */
#define WSMSG_REGEX_DEPTH_LIMIT_DEFAULT 10000u

/**
 * Bound the cost of each match of the schema's patterns ("pattern" and
 * "patternProperties"): PCRE2's match limit (`match_limit`, backtracking
 * steps, JIT and interpreter) and depth limit (`depth_limit`, backtracking
 * depth, interpreter only; it also bounds the interpreter's heap).  0 for
 * either restores its default (WSMSG_REGEX_MATCH_LIMIT_DEFAULT,
 * WSMSG_REGEX_DEPTH_LIMIT_DEFAULT), which every compiled schema starts
 * with.  A match that hits a limit (or PCRE2's JIT stack) has no verdict:
 * the document is invalid with error type value_error.str.regex_limit
 * (v2: string_pattern_limit), never "does not match".  Call it before the
 * schema is used: not while any thread validates with it.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `schema` is NULL.
 */
WSMSG_API int wsmsg_schema_set_regex_limits(wsmsg_schema *schema,
                                            uint32_t match_limit,
                                            uint32_t depth_limit);

/**
 * The dialect the root of a compiled schema uses.
 *
 * Returns 202012 (draft 2020-12) or 7 (draft-07), or:
 *  - WSMSG_ERR_INVALID_ARG: `schema` is NULL.
 */
WSMSG_API int wsmsg_schema_dialect(const wsmsg_schema *schema);

/**
 * Validate `doc` against `schema`.  `flags` is a WSMSG_VALIDATE_* mask.  `out`
 * (may be NULL when only the verdict matters; validation is then faster) is
 * cleared first and receives every error, up to its cap.  With
 * WSMSG_VALIDATE_COERCE or WSMSG_VALIDATE_DEFAULTS the document is rewritten in
 * place (values replaced, properties added; the root value itself cannot change
 * type: use wsmsg_schema_validate_text for that).  On failure the document may
 * be partly rewritten.  The schema is not modified.
 *
 * Returns 0 if `doc` is valid, or:
 *  - WSMSG_ERR_VALIDATION: `doc` does not match; `out` lists why.
 *  - WSMSG_ERR_INVALID_ARG: `schema` or `doc` is NULL.
 *  - WSMSG_ERR_NOMEM: out of memory; the verdict is unknown.
 */
WSMSG_API int wsmsg_schema_validate(const wsmsg_schema *schema, json_t *doc,
                                    unsigned flags, wsmsg_verrors *out);

/**
 * Parse `len` bytes of JSON text and validate it (convenient from FFI).  If
 * `doc_out` is not NULL it receives the parsed (and, with COERCE or DEFAULTS,
 * rewritten) document as a new reference whenever the text was valid JSON, else
 * NULL.
 *
 * Returns 0 if the text is valid, or:
 *  - WSMSG_ERR_JSON: the text is not JSON; `out` holds one error {"loc":
 *    ["__root__"], "type": "value_error.jsondecode"} whose ctx has msg, pos,
 *    lineno and colno.
 *  - WSMSG_ERR_VALIDATION: the document does not match; `out` lists why.
 *  - WSMSG_ERR_INVALID_ARG: `schema` is NULL, or `text` is NULL with `len` > 0.
 *  - WSMSG_ERR_NOMEM: out of memory; the verdict is unknown.
 */
WSMSG_API int wsmsg_schema_validate_text(const wsmsg_schema *schema,
                                         const char *text, size_t len,
                                         unsigned flags, wsmsg_verrors *out,
                                         json_t **doc_out);

/**
 * A new, empty error list with the default cap (WSMSG_VERRORS_DEFAULT_MAX).
 * Free it with wsmsg_verrors_free().
 *
 * Returns the list, or NULL if out of memory.
 */
WSMSG_API wsmsg_verrors *wsmsg_verrors_new(void);

/**
 * As wsmsg_verrors_new, with a custom allocator (copied; NULL: libc) for the
 * list, its messages and the scratch memory of validations that fill it.
 *
 * Returns the list, or NULL if out of memory.
 */
WSMSG_API wsmsg_verrors *wsmsg_verrors_new_mem(const wsmsg_mem *mem);

/** Free an error list and everything it holds (NULL is ignored). */
WSMSG_API void wsmsg_verrors_free(wsmsg_verrors *errors);

/** Remove every error (the cap is kept).  NULL is ignored. */
WSMSG_API void wsmsg_verrors_clear(wsmsg_verrors *errors);

/**
 * Set the cap on collected errors.  Validation stops early once the cap is
 * reached and wsmsg_verrors_truncated() then returns 1.  The error lists
 * of anyOf/oneOf branches (an error's `ctx`), however nested, hold at most
 * 4 times the cap in all; what they leave out also makes
 * wsmsg_verrors_truncated() 1.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `errors` is NULL or `max` is 0.
 */
WSMSG_API int wsmsg_verrors_set_max(wsmsg_verrors *errors, size_t max);

/** Number of errors in the list (0 for NULL). */
WSMSG_API size_t wsmsg_verrors_count(const wsmsg_verrors *errors);

/** 1 if errors were dropped because of the cap (or the branches' budget,
 * see wsmsg_verrors_set_max), else 0. */
WSMSG_API int wsmsg_verrors_truncated(const wsmsg_verrors *errors);

/** Message of error `i` ("field required"); NULL if out of range.  Owned by
 *  the list: valid until it is cleared, reused or freed. */
WSMSG_API const char *wsmsg_verrors_msg(const wsmsg_verrors *errors, size_t i);

/** Type of error `i` ("value_error.missing"); NULL if out of range.  A
 *  static string. */
WSMSG_API const char *wsmsg_verrors_type(const wsmsg_verrors *errors, size_t i);

/** Location of error `i` as a JSON array of keys (strings) and indexes
 *  (integers), borrowed (valid like wsmsg_verrors_msg); NULL if out of
 *  range. */
WSMSG_API json_t *wsmsg_verrors_loc(const wsmsg_verrors *errors, size_t i);

/** Context of error `i` (e.g. {"limit_value": 3}), borrowed, or NULL if the
 *  error has none or `i` is out of range. */
WSMSG_API json_t *wsmsg_verrors_ctx(const wsmsg_verrors *errors, size_t i);

/** Input of error `i` (Pydantic v2's "input": the value at its location,
 *  the object for a missing key, the text for invalid JSON), borrowed;
 *  NULL for v1-shaped errors or if `i` is out of range.  With rewriting
 *  flags it is the value as validation left it (e.g. defaults filled). */
WSMSG_API json_t *wsmsg_verrors_input(const wsmsg_verrors *errors, size_t i);

/**
 * Location of error `i` as compact JSON text (`["items",0,"price"]`) into `buf`
 * (`size` bytes, NUL-terminated, truncated; `buf` may be NULL when `size` is
 * 0).
 *
 * Returns the full length without the NUL (like snprintf), or:
 *  - WSMSG_ERR_INVALID_ARG: `errors` is NULL or `i` is out of range.
 *  - WSMSG_ERR_NOMEM: out of memory.
 *  - WSMSG_ERR_TOO_BIG: the text would be longer than INT_MAX - 1 bytes.
 */
WSMSG_API int wsmsg_verrors_loc_dump(const wsmsg_verrors *errors, size_t i,
                                     char *buf, size_t size);

/**
 * All errors as {"detail": [{"loc": [...], "msg": "...", "type": "...", "ctx":
 * {...}}, ...]} (FastAPI's 422 body), as a new reference the caller must
 * json_decref().
 *
 * Returns the document, or NULL if `errors` is NULL or out of memory.
 */
WSMSG_API json_t *wsmsg_verrors_to_json(const wsmsg_verrors *errors);

/**
 * wsmsg_verrors_to_json() as compact JSON text into `buf` (snprintf style, see
 * wsmsg_verrors_loc_dump).
 *
 * Returns the full length without the NUL, or:
 *  - WSMSG_ERR_INVALID_ARG: `errors` is NULL.
 *  - WSMSG_ERR_NOMEM: out of memory.
 *  - WSMSG_ERR_TOO_BIG: the text would be longer than INT_MAX - 1 bytes.
 */
WSMSG_API int wsmsg_verrors_dump(const wsmsg_verrors *errors, char *buf,
                                 size_t size);

/* ------------------------------------------------------------------------ */
/* JSON messages                                                             */
/* ------------------------------------------------------------------------ */
/*
 * A JSON endpoint parses every text message with jansson (json_loadb;
 * "\u0000" accepted in strings, which then contain NUL bytes: read them
 * with json_string_length; rejected in object keys, which jansson cannot
 * hold; duplicate keys rejected by default), validates it
 * against a compiled schema (by default coercing and filling defaults, as
 * FastAPI/Pydantic do), optionally routes it by a discriminator field, and
 * delivers it to on_json (or as a WSMSG_EV_JSON event).  Text that is not
 * JSON or does not validate goes to on_invalid with Pydantic-style errors
 * (type value_error.jsondecode for bad JSON, with ctx {msg, pos, lineno,
 * colno} as wsmsg_schema_validate_text gives), and the invalid policy
 * decides what the peer sees.  Binary messages are unaffected.
 */

/**
 * A valid JSON message.  `msg` is borrowed: valid during the callback;
 * json_incref (or wsmsg_json_incref) to keep it.  With coercion or defaults
 * it is the rewritten document.
 */
typedef void (*wsmsg_json_cb)(wsmsg_conn *conn, json_t *msg, void *user);

/**
 * A text message that is not JSON or failed validation: `errors` (read
 * with wsmsg_verrors_*, valid during the callback) and the raw text.  Runs
 * before the invalid policy's reply or close.
 */
typedef void (*wsmsg_invalid_cb)(wsmsg_conn *conn, const wsmsg_verrors *errors,
                                 const char *text, size_t len, void *user);

/** What the peer sees after an invalid message (enum for
 *  wsmsg_endpoint_set_invalid_policy). */
enum wsmsg_invalid_policy {
  /** Reply {"error": "validation_error", "detail": [...]} and keep the
   *  connection (the default). */
  WSMSG_INVALID_REPLY = 0,
  /** Close with 1008 and the first error's message (FastAPI's choice). */
  WSMSG_INVALID_CLOSE = 1,
  /** Nothing: only on_invalid (or the INVALID event) learns of it. */
  WSMSG_INVALID_IGNORE = 2
};

/**
 * Make `ep` a JSON endpoint and set its message callback (NULL: JSON
 * messages become WSMSG_EV_JSON events).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_on_json(wsmsg_endpoint *ep, wsmsg_json_cb cb);

/**
 * Make `ep` a JSON endpoint (on) or a plain text one (off, the default)
 * without touching callbacks.  A JSON endpoint's default maximum message
 * size is 64 KiB (the worst document of that size parses in ~2.5 ms; see
 * wsmsg_endpoint_set_max_message_size), and more than 32 invalid messages
 * within 10 s close it (wsmsg_endpoint_set_invalid_limit).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_json(wsmsg_endpoint *ep, int on);

/**
 * Set the invalid-message callback (see wsmsg_invalid_cb).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_on_invalid(wsmsg_endpoint *ep,
                                        wsmsg_invalid_cb cb);

/**
 * Validate every JSON message against `schema` (NULL: no validation).
 * Makes `ep` a JSON endpoint.  With routes (wsmsg_endpoint_route_json)
 * both apply: this schema first, then the matching route's, and an
 * invalid message reports the errors of both, in that order (a message
 * whose discriminator matches no route gets this schema's errors, then the
 * discriminator error).  With routes, extra ignore/forbid is applied by
 * the route's schema only (this one runs with extra allowed): declare the
 * shared properties in the route schemas too.  docs/schema.md, "Schemas
 * and routes".  The schema is borrowed: it must outlive the
 * endpoint; one schema may serve many endpoints and threads.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_schema(wsmsg_endpoint *ep,
                                        const wsmsg_schema *schema);

/**
 * Validation flags (WSMSG_VALIDATE_*) for this endpoint's messages.
 * Default WSMSG_VALIDATE_COERCE | WSMSG_VALIDATE_DEFAULTS: the FastAPI
 * behaviour ("42" becomes 42 for an integer field, missing fields get their
 * defaults).  WSMSG_VALIDATE_STRICT for plain JSON Schema.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL, or `flags` has a bit that is not a
 *    WSMSG_VALIDATE_* flag.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_validation(wsmsg_endpoint *ep,
                                            unsigned flags);

/**
 * The invalid policy (enum wsmsg_invalid_policy, default REPLY).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL, or `policy` is not a WSMSG_INVALID_*
 *    value.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_invalid_policy(wsmsg_endpoint *ep,
                                                int policy);

/** What a JSON endpoint does with properties its schema does not declare
 *  (enum for wsmsg_endpoint_set_extra), as Pydantic's model config
 *  `extra`.  A schema's own additionalProperties / unevaluatedProperties
 *  always wins. */
enum wsmsg_extra_policy {
  /** Keep them (the default; plain JSON Schema). */
  WSMSG_EXTRA_ALLOW = 0,
  /** Drop them before on_json sees the message (Pydantic's default). */
  WSMSG_EXTRA_IGNORE = 1,
  /** Refuse the message: value_error.extra at each such key. */
  WSMSG_EXTRA_FORBID = 2
};

/**
 * Set the extra policy of `ep` (enum wsmsg_extra_policy): it sets or clears
 * WSMSG_VALIDATE_EXTRA_IGNORE / WSMSG_VALIDATE_EXTRA_FORBID in the
 * endpoint's validation flags (wsmsg_endpoint_set_validation sets all of
 * them at once).  Needs a schema to apply.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL, or `policy` is not a WSMSG_EXTRA_*
 *    value.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_extra(wsmsg_endpoint *ep, int policy);

/** Shape of a JSON endpoint's validation errors (enum for
 *  wsmsg_endpoint_set_error_style). */
enum wsmsg_error_style {
  /** Pydantic v1 / FastAPI < 0.100: {"loc", "msg", "type", "ctx"} (the
   *  default). */
  WSMSG_ERRORS_PYDANTIC_V1 = 0,
  /** Pydantic v2 / FastAPI >= 0.100: {"type", "loc", "msg", "input",
   *  "ctx"}. */
  WSMSG_ERRORS_PYDANTIC_V2 = 1
};

/**
 * Choose the error shape of `ep`'s invalid messages (enum
 * wsmsg_error_style): what on_invalid reads, the INVALID event and the
 * REPLY and CLOSE policies send.  Sets or clears
 * WSMSG_VALIDATE_PYDANTIC_V2 in the endpoint's validation flags.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL, or `style` is not a WSMSG_ERRORS_*
 *    value.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_error_style(wsmsg_endpoint *ep, int style);

/**
 * Accept objects with duplicate keys (the last one wins); default 0: a
 * duplicate key is a value_error.jsondecode error.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_allow_duplicate_keys(wsmsg_endpoint *ep, int on);

/**
 * Most errors reported per invalid message (default 32).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep` is NULL or `n` is 0.
 *  - WSMSG_ERR_STATE: `ep` is frozen: a connection was created on it or routed
 *    to it.
 */
WSMSG_API int wsmsg_endpoint_set_max_errors(wsmsg_endpoint *ep, size_t n);

/**
 * Route JSON messages by a discriminator: objects whose `field` equals the
 * string `value` are validated against `schema` (NULL: not validated) and
 * delivered to `cb` (NULL: on_json or an event).  All routes of an endpoint use
 * the same field.  A message without the field, or with a value no route has,
 * is invalid at loc [field]
 * (value_error.discriminated_union.missing_discriminator /
 * invalid_discriminator, as Pydantic v1 names them).  Lookup is a binary
 * search.  Strings are copied; the schema is borrowed.  Makes `ep` a JSON
 * endpoint; a route with a callback makes it a push endpoint.  The
 * endpoint's schema (wsmsg_endpoint_set_schema), if any, is applied before
 * the route's.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `ep`, `field` or `value` is NULL, `field` is empty,
 *    or `field` differs from the earlier routes' field.
 *  - WSMSG_ERR_STATE: `ep` is frozen (a connection was created on it or routed
 *    to it), or `value` has a route already.
 *  - WSMSG_ERR_NOMEM: out of memory.
 */
WSMSG_API int wsmsg_endpoint_route_json(wsmsg_endpoint *ep, const char *field,
                                        const char *value,
                                        const wsmsg_schema *schema,
                                        wsmsg_json_cb cb);

/**
 * Send a JSON document as a compact text message (no pretty printing),
 * serialized straight into a stack buffer when it fits (4 KiB), so small
 * messages cost one copy.  `msg` is borrowed.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `conn` or `msg` is NULL, or jansson cannot
 *    serialize `msg`.
 *  - WSMSG_ERR_STATE: the connection is still connecting.
 *  - WSMSG_ERR_CLOSED: a close frame was sent, or the connection is closed.
 *  - WSMSG_ERR_BACKPRESSURE: the output queue is over its high mark
 *    (wsmsg_endpoint_set_backpressure); nothing was queued, and under
 *    WSMSG_BACKPRESSURE_CLOSE the connection is closed with 1008.
 *  - WSMSG_ERR_NOMEM: out of memory.
 */
WSMSG_API int wsmsg_send_json(wsmsg_conn *conn, const json_t *msg);

/**
 * Build a document with a json_pack() format and send it, e.g.
 * wsmsg_send_jsonf(c, "{s:s, s:i}", "status", "ok", "n", 3).  A C convenience
 * (varargs): FFI callers use wsmsg_send_json or wsmsg_send_text.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `conn` or `fmt` is NULL, or `fmt` and the arguments
 *    do not build a document.
 *  - WSMSG_ERR_STATE: the connection is still connecting.
 *  - WSMSG_ERR_CLOSED: a close frame was sent, or the connection is closed.
 *  - WSMSG_ERR_BACKPRESSURE: the output queue is over its high mark
 *    (wsmsg_endpoint_set_backpressure); nothing was queued, and under
 *    WSMSG_BACKPRESSURE_CLOSE the connection is closed with 1008.
 *  - WSMSG_ERR_NOMEM: out of memory.
 */
WSMSG_API int wsmsg_send_jsonf(wsmsg_conn *conn, const char *fmt, ...);

/* ---- jansson for FFI ---- */
/* json_incref/json_decref are static inline in jansson.h, so a binding
 * cannot call them; these wrappers can. */

/** json_incref(j); returns j. */
WSMSG_API json_t *wsmsg_json_incref(json_t *j);

/** json_decref(j); NULL is ignored. */
WSMSG_API void wsmsg_json_decref(json_t *j);

/**
 * Parse `len` bytes of JSON (any value, "\u0000" allowed in strings).
 *
 * Returns a new reference, or NULL if `text` is NULL or not JSON (or out of
 * memory).
 */
WSMSG_API json_t *wsmsg_json_loads(const char *text, size_t len);

/**
 * Serialize `j` compactly into `buf` (`size` bytes; NUL-terminated when it
 * fits; `buf` may be NULL when `size` is 0).
 *
 * Returns the full length without the NUL (like snprintf), or:
 *  - WSMSG_ERR_INVALID_ARG: `j` is NULL, `buf` is NULL with `size` > 0, or
 *    jansson cannot serialize `j`.
 */
WSMSG_API int64_t wsmsg_json_dumpb(const json_t *j, char *buf, size_t size);

/* ------------------------------------------------------------------------ */
/* AsyncAPI                                                                  */
/* ------------------------------------------------------------------------ */
/*
 * Contract first (docs/asyncapi.md): load an AsyncAPI 3.0 / 3.1 document
 * (JSON or YAML text, or a json_t), validate it against the official JSON
 * Schema of its version, and serve its WebSocket channels on a server: one
 * route per channel address, messages validated against the payloads of
 * the receive operations and told apart by a discriminator (explicit,
 * inferred from a const, or by trying each), handlers per operation id.
 * And the other direction: describe a configured server as an AsyncAPI
 * 3.0 document (wsmsg_server_asyncapi).
 */

/** A loaded AsyncAPI document and the endpoints built from it. */
typedef struct wsmsg_asyncapi wsmsg_asyncapi;

/**
 * Load the document a relative "$ref" names (`uri`: the part before '#',
 * e.g. "common/messages.yaml").  Return a new reference (parse YAML with
 * wsmsg_yaml_loads), or NULL if it cannot be loaded.
 */
typedef json_t *(*wsmsg_asyncapi_loader_cb)(const char *uri, void *user);

/**
 * A message of a receive operation arrived and is valid: `operation` is
 * the operation id, `message` the message's name (its "name", else its
 * key), `msg` the validated document (borrowed, as for wsmsg_json_cb).
 * `user` is the pointer given to wsmsg_asyncapi_on_operation; the
 * connection's own is wsmsg_conn_user(conn).
 */
typedef void (*wsmsg_operation_cb)(wsmsg_conn *conn, const char *operation,
                                   const char *message, json_t *msg,
                                   void *user);

/**
 * Create an empty AsyncAPI object with a custom allocator (copied; NULL:
 * libc) for itself, its compiled schemas and the endpoints it builds.
 *
 * Returns the object, or NULL if out of memory.
 */
WSMSG_API wsmsg_asyncapi *wsmsg_asyncapi_new(const wsmsg_mem *mem);

/** Free the object and the endpoints it built (NULL is ignored).  Free the
 *  server it serves on and the server's connections first. */
WSMSG_API void wsmsg_asyncapi_free(wsmsg_asyncapi *a);

/**
 * The directory holding the official AsyncAPI JSON Schemas as
 * <version>.json (3.0.0.json, 3.1.0.json; the spec-json-schemas
 * repository's schemas/ directory).  Loading needs it: a document is
 * validated against the schema of its "asyncapi" version first.  Copied.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `a` or `dir` is NULL.
 *  - WSMSG_ERR_STATE: a document was loaded already.
 *  - WSMSG_ERR_NOMEM: out of memory.
 */
WSMSG_API int wsmsg_asyncapi_set_schema_dir(wsmsg_asyncapi *a,
                                            const char *dir);

/**
 * Resolve "$ref"s to other files with `cb` (NULL: such refs fail the
 * load).  Each file is loaded once and mounted into the document under
 * "x-wsmsg-external"; its own refs are rewritten to point there.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `a` is NULL.
 *  - WSMSG_ERR_STATE: a document was loaded already.
 */
WSMSG_API int wsmsg_asyncapi_set_loader(wsmsg_asyncapi *a,
                                        wsmsg_asyncapi_loader_cb cb,
                                        void *user);

/**
 * Load a document from `len` bytes of JSON (text starting with '{') or
 * YAML (YAML 1.2 core schema: 1.8.0 and "on" stay strings; anchors,
 * aliases and merge keys; one document).  Then as wsmsg_asyncapi_load_json.
 * On failure wsmsg_asyncapi_detail says why.  One load per object.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `a` is NULL, or `text` is NULL with `len` > 0.
 *  - WSMSG_ERR_STATE: a document was loaded already (or the schema
 *    directory is not set).
 *  - WSMSG_ERR_JSON: the text is neither JSON nor YAML that maps to JSON.
 *  - WSMSG_ERR_VALIDATION: the document does not match the official
 *    schema: wsmsg_asyncapi_errors lists where (loc is a path into the
 *    document).
 *  - WSMSG_ERR_UNSUPPORTED: not AsyncAPI 3.x, no official schema for its
 *    version, or a relative "$ref" without a loader.
 *  - WSMSG_ERR_NOT_FOUND: the loader could not load a referenced file.
 *  - WSMSG_ERR_SCHEMA: a "$ref" does not resolve, or a message payload
 *    does not compile.
 *  - WSMSG_ERR_NOMEM: out of memory.
 */
WSMSG_API int wsmsg_asyncapi_load(wsmsg_asyncapi *a, const char *text,
                                  size_t len);

/**
 * Load a document from a jansson value (deep copied): validate it against
 * the official schema of its version, mount external refs (loader), and
 * compile the payload of every message of every channel (JSON Schema
 * draft-07 / AsyncAPI schemas; a message in another schemaFormat is noted
 * and refused only when served).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `a` or `doc` is NULL.
 *  - WSMSG_ERR_STATE: a document was loaded already (or the schema
 *    directory is not set).
 *  - WSMSG_ERR_VALIDATION: not an object, or it does not match the
 *    official schema (wsmsg_asyncapi_errors).
 *  - WSMSG_ERR_UNSUPPORTED: as for wsmsg_asyncapi_load.
 *  - WSMSG_ERR_NOT_FOUND: the loader could not load a referenced file.
 *  - WSMSG_ERR_SCHEMA: as for wsmsg_asyncapi_load.
 *  - WSMSG_ERR_NOMEM: out of memory.
 */
WSMSG_API int wsmsg_asyncapi_load_json(wsmsg_asyncapi *a, const json_t *doc);

/** The errors of the last validation against the official schema (empty
 *  if it passed); NULL if `a` is NULL. */
WSMSG_API const wsmsg_verrors *wsmsg_asyncapi_errors(const wsmsg_asyncapi *a);

/** Why the last call failed, in one line ("" if nothing failed); valid
 *  until the next call on `a`. */
WSMSG_API const char *wsmsg_asyncapi_detail(const wsmsg_asyncapi *a);

/** What loading and serving chose or skipped, one line each (channels
 *  without an address, non-WebSocket servers, the discriminator of each
 *  address); "" if nothing. */
WSMSG_API const char *wsmsg_asyncapi_notes(const wsmsg_asyncapi *a);

/** The loaded document (borrowed; do not modify), or NULL before a
 *  successful load. */
WSMSG_API json_t *wsmsg_asyncapi_document(const wsmsg_asyncapi *a);

/**
 * Call `cb` for the valid messages of receive operation `operation`
 * (NULL: the default handler, for the operations without one; it gets the
 * first matching operation's id).  Call before connections arrive.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `a` is NULL, or `operation` is a send
 *    operation.
 *  - WSMSG_ERR_STATE: no document is loaded (an operation id needs one).
 *  - WSMSG_ERR_NOT_FOUND: the document has no such operation.
 */
WSMSG_API int wsmsg_asyncapi_on_operation(wsmsg_asyncapi *a,
                                          const char *operation,
                                          wsmsg_operation_cb cb, void *user);

/**
 * Called by wsmsg_asyncapi_serve for each endpoint it builds, with the
 * address it serves (maybe a template), after the document's settings and
 * before the endpoint is routed: set limits, timeouts, on_open, on_close
 * there.  Leave on_json, on_text, on_handshake, schemas and routes alone:
 * they are the document's.
 */
typedef void (*wsmsg_asyncapi_endpoint_cb)(wsmsg_endpoint *ep,
                                           const char *path, void *user);

/**
 * Set the endpoint hook (see wsmsg_asyncapi_endpoint_cb; NULL: none).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `a` is NULL.
 *  - WSMSG_ERR_STATE: the document is served already.
 */
WSMSG_API int wsmsg_asyncapi_on_endpoint(wsmsg_asyncapi *a,
                                         wsmsg_asyncapi_endpoint_cb cb,
                                         void *user);

/**
 * Validation flags (WSMSG_VALIDATE_*) of the endpoints wsmsg_asyncapi_serve
 * builds (default WSMSG_VALIDATE_COERCE | WSMSG_VALIDATE_DEFAULTS, as any
 * endpoint).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `a` is NULL or `flags` has an unknown bit.
 *  - WSMSG_ERR_STATE: the document is served already.
 */
WSMSG_API int wsmsg_asyncapi_set_validation(wsmsg_asyncapi *a,
                                            unsigned flags);

/**
 * Route every channel of the loaded document that WebSocket server
 * `server_name` carries (NULL: every server whose protocol is ws or wss;
 * a document without servers: every channel) on `srv`, at the server's
 * pathname + the channel's address.  A templated address
 * ("/v1/marketdata/{symbol}") routes its literal prefix and is matched in
 * the handshake: a path that does not fit gets 404, a parameter outside
 * its enum or x-pattern 400; the channel's bindings.ws query and headers
 * schemas are checked there too (400).  A 400's body is
 * {"error": "validation_error", "detail": [...]} with loc ["path" |
 * "query" | "header", name, ...].  The endpoints belong to `a`, which must
 * outlive `srv`.  Once per object.
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `a` or `srv` is NULL.
 *  - WSMSG_ERR_STATE: no document is loaded, it is served already, or
 *    `srv` is frozen or already routes one of the paths.
 *  - WSMSG_ERR_NOT_FOUND: no server `server_name`, or none speaks ws/wss.
 *  - WSMSG_ERR_UNSUPPORTED: the server is not ws/wss, a received message's
 *    schemaFormat is not JSON Schema, or two templated addresses share
 *    their literal prefix.
 *  - WSMSG_ERR_SCHEMA: a "$ref" does not resolve, or a parameter or
 *    binding schema does not compile.
 *  - WSMSG_ERR_NOMEM: out of memory.
 */
WSMSG_API int wsmsg_asyncapi_serve(wsmsg_asyncapi *a, wsmsg_server *srv,
                                   const char *server_name);

/**
 * The id of the channel a connection of a served document talks on (the
 * first channel at its address), or NULL if `conn` is not one of `a`'s.
 */
WSMSG_API const char *wsmsg_asyncapi_conn_channel(const wsmsg_asyncapi *a,
                                                  const wsmsg_conn *conn);

/**
 * Send `msg` as operation `operation` says: a send operation's messages,
 * or a receive operation's reply messages.  `msg` must be valid (strictly,
 * unchanged) against one of them, else nothing is sent and `errors` (may
 * be NULL) gets the closest message's errors.  `conn` NULL: validate only
 * (a debug check of what the host would send).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `a`, `operation` or `msg` is NULL, or the
 *    operation receives and has no reply.
 *  - WSMSG_ERR_NOT_FOUND: the document has no such operation.
 *  - WSMSG_ERR_VALIDATION: `msg` matches none of the messages.
 *  - WSMSG_ERR_STATE: the connection is still connecting.
 *  - WSMSG_ERR_CLOSED: a close frame was sent, or the connection is closed.
 *  - WSMSG_ERR_BACKPRESSURE: the output queue is over its high mark.
 *  - WSMSG_ERR_NOMEM: out of memory.
 */
WSMSG_API int wsmsg_asyncapi_send(wsmsg_asyncapi *a, wsmsg_conn *conn,
                                  const char *operation, const json_t *msg,
                                  wsmsg_verrors *errors);

/**
 * Describe a configured server as an AsyncAPI 3.0.0 document: one channel
 * per route (a prefix route "/ws/" + "*" becomes "/ws/{path}"), one
 * message per discriminator route of its endpoint (payload: the endpoint's
 * schema, the route's and the discriminator's const), else one message
 * with the endpoint's schema (JSON endpoints) or a string (text); one
 * receive operation per channel.  `info` (borrowed, may be NULL) is the
 * Info object (title and version at least); NULL gives a placeholder.
 * 2020-12 schemas are embedded as multi-format schemas.
 *
 * Returns a new reference, or NULL if `srv` is NULL or out of memory.
 */
WSMSG_API json_t *wsmsg_server_asyncapi(const wsmsg_server *srv,
                                        const json_t *info);

/**
 * Parse YAML text (`len` bytes) into a jansson value as
 * wsmsg_asyncapi_load reads documents (YAML 1.2 core schema, anchors,
 * merge keys, one document).  A document over 32 MiB once its aliases
 * are expanded (16 bytes a node plus its text, keys included; 16 times
 * the input for a larger input) or nested deeper than 256 is refused.  On
 * failure a message goes to `err` (if not NULL; `err_size` bytes,
 * NUL-terminated).
 *
 * Returns a new reference, or NULL if the text is not such YAML (or out
 * of memory).
 */
WSMSG_API json_t *wsmsg_yaml_loads(const char *text, size_t len, char *err,
                                   size_t err_size);

/* ------------------------------------------------------------------------ */
/* Utilities                                                                 */
/* ------------------------------------------------------------------------ */

/** 1 if the `len` bytes at `data` are valid UTF-8 (RFC 3629), else 0. */
WSMSG_API int wsmsg_utf8_valid(const void *data, size_t len);

/**
 * Compute the Sec-WebSocket-Accept value for a Sec-WebSocket-Key:
 * base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")) into `out`
 * (at least 29 bytes; NUL-terminated).
 *
 * Returns 0, or:
 *  - WSMSG_ERR_INVALID_ARG: `key` or `out` is NULL, or `out_size` is under 29.
 */
WSMSG_API int wsmsg_accept_key(const char *key, char *out, size_t out_size);

#ifdef __cplusplus
}
#endif

#endif /* WSMSG_H */
