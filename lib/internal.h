/* Private declarations shared by the files of lib/.  Not installed. */
#ifndef WSMSG_INTERNAL_H
#define WSMSG_INTERNAL_H

#include "wsmsg.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <wslay/wslay.h>

#define WSM_HIDDEN __attribute__((visibility("hidden")))

/* ---- memory (mem.c) ---------------------------------------------------- */

/* Fill `out` from `in` (NULL: libc).  A missing realloc stays NULL. */
WSM_HIDDEN void wsm_mem_init(wsmsg_mem *out, const wsmsg_mem *in);
WSM_HIDDEN void *wsm_malloc(const wsmsg_mem *m, size_t n);
WSM_HIDDEN void *wsm_calloc(const wsmsg_mem *m, size_t n);
WSM_HIDDEN void wsm_free(const wsmsg_mem *m, void *p);
/* `old` is the current size of `p` (needed when the hook has no realloc). */
WSM_HIDDEN void *wsm_realloc(const wsmsg_mem *m, void *p, size_t old, size_t n);
WSM_HIDDEN char *wsm_strdup(const wsmsg_mem *m, const char *s);
WSM_HIDDEN char *wsm_strndup(const wsmsg_mem *m, const char *s, size_t n);
/* printf into a new NUL-terminated string from `m` (NULL if out of memory). */
WSM_HIDDEN char *wsm_vasprintf(const wsmsg_mem *m, const char *fmt, va_list ap);
WSM_HIDDEN char *wsm_asprintf(const wsmsg_mem *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- pools of frame parsers and buffers (pool.c) ------------------------ */

/* A growable byte buffer whose storage comes from a pool (wsm_pbuf_*). */
typedef struct wsm_buf {
  uint8_t *p;
  size_t off; /* first unconsumed byte */
  size_t len; /* end of data */
  size_t cap;
} wsm_buf;

/* A wslay frame parser lent to one connection at a time. */
typedef struct wsm_slot {
  wslay_frame_context_ptr fr;
  struct wsmsg_conn *conn;
  struct wsm_slot *next;
  /* per-frame scratch, needed only while a frame is in progress (when the
   * connection necessarily holds its parser) */
  uint8_t ctl[125]; /* control frame payload */
  uint8_t hdr[14];  /* partial frame header */
} wsm_slot;

#define WSM_POOL_CLASSES 14 /* 256 B .. 2 MiB */
typedef struct wsm_pool {
  pthread_mutex_t mu;
  const wsmsg_mem *mem;
  wsm_slot *slots;
  size_t nslots;
  /* idle buffers per class: a stack of pointers (taking one does not
   * touch the buffer, so a batch of them costs no cache misses) */
  struct wsm_pool_stack {
    void **b;
    size_t n, cap;
    size_t live; /* buffers of the class that exist (pool.c) */
  } bufs[WSM_POOL_CLASSES];
  size_t pooled_bytes;
  struct wsm_zs *zs; /* idle zlib streams (deflate.c) */
  unsigned nzs;
} wsm_pool;

WSM_HIDDEN void wsm_pool_init(wsm_pool *p, const wsmsg_mem *mem);
WSM_HIDDEN void wsm_pool_destroy(wsm_pool *p);
WSM_HIDDEN wsm_slot *wsm_pool_get_slot(wsm_pool *p,
                                       const struct wslay_frame_callbacks *cbs);
/* `clean`: the parser is between frames with nothing buffered (reusable);
 * otherwise it is destroyed. */
WSM_HIDDEN void wsm_pool_put_slot(wsm_pool *p, wsm_slot *s, bool clean);
/* wsm_buf operations with storage from a pool. */
WSM_HIDDEN int wsm_pbuf_reserve(wsm_buf *b, wsm_pool *p, size_t extra);
/* As wsm_pbuf_reserve, taking at least `min_cap` bytes when it allocates. */
WSM_HIDDEN int wsm_pbuf_reserve_min(wsm_buf *b, wsm_pool *p, size_t extra,
                                    size_t min_cap);
/* A broadcast's batch of one class of a pool's buffers (pool.c): taken
 * from the pool up to WSM_BUFCACHE_N at a time, never more than `want`
 * (the recipients left), under one lock; wsm_bufcache_flush gives back
 * what is left.  Zeroed to start; one thread's, like its broadcast. */
#define WSM_BUFCACHE_N 32
typedef struct wsm_bufcache {
  wsm_pool *pool;
  size_t want;
  unsigned n;
  int k; /* the class: buffers of 1 << k bytes */
  void *b[WSM_BUFCACHE_N];
} wsm_bufcache;
/* As wsm_pbuf_reserve_min, a new buffer from `bc` (NULL: the pool). */
WSM_HIDDEN int wsm_pbuf_reserve_cached(wsm_buf *b, wsm_pool *p, size_t extra,
                                       size_t min_cap, wsm_bufcache *bc);
WSM_HIDDEN void wsm_bufcache_flush(wsm_bufcache *bc);
WSM_HIDDEN int wsm_pbuf_append(wsm_buf *b, wsm_pool *p, const void *d,
                               size_t n);
/* How many bytes wsm_pbuf_reserve_min(b, extra, min_cap) would add to the
 * buffer's capacity (0: it fits). */
WSM_HIDDEN size_t wsm_pbuf_growth(const wsm_buf *b, size_t extra,
                                  size_t min_cap);
WSM_HIDDEN void wsm_pbuf_release(wsm_buf *b, wsm_pool *p);

/* ---- permessage-deflate (deflate.c) ------------------------------------ */

/* The parameters of one permessage-deflate offer or answer (RFC 7692 7.1). */
#define WSM_PMD_WB_NOVAL 1 /* client_max_window_bits without a value */
typedef struct wsm_pmd_params {
  bool server_no_ctx, client_no_ctx;
  uint8_t server_wbits; /* 0: absent, else 8..15 */
  uint8_t client_wbits; /* 0: absent, WSM_PMD_WB_NOVAL, or 8..15 */
} wsm_pmd_params;

/* wsm_pmd_parse's verdicts on one element of Sec-WebSocket-Extensions. */
enum {
  WSM_PMD_OK = 0,     /* a well-formed permessage-deflate element */
  WSM_PMD_OTHER = 1,  /* a well-formed element naming another extension */
  WSM_PMD_BAD = 2,    /* permessage-deflate with a bad/duplicate/unknown
                         parameter */
  WSM_PMD_SYNTAX = 3  /* not an extension element at all */
};

/* An endpoint's settings (wsmsg_endpoint_set_deflate*).  "tx" is what we
 * send, "rx" what the peer sends, in either role. */
typedef struct wsm_pmd_cfg {
  bool on;
  uint8_t level;     /* 0..9 */
  uint8_t mem_level; /* 1..9 */
  uint8_t tx_wbits;  /* our largest window, 8..15 (8: we send uncompressed) */
  uint8_t rx_wbits;  /* the largest window we ask of the peer, 8..15 */
  bool tx_no_ctx;    /* we reset our compressor after every message */
  bool rx_no_ctx;    /* we ask the peer to reset its compressor */
  uint32_t threshold; /* messages shorter than this go uncompressed */
} wsm_pmd_cfg;

/* A connection's agreement, and its zlib streams (NULL while not needed). */
typedef struct wsm_pmd {
  bool on;        /* negotiated */
  bool tx_no_ctx, rx_no_ctx;
  uint8_t tx_wbits, rx_wbits; /* agreed; tx 8: we send uncompressed */
  bool rx_msg;    /* the message being received is compressed */
  bool rx_ended;  /* its deflate data ended (a BFINAL block) */
  bool tx_stream; /* the running streaming send is compressed */
  uint64_t rx_total; /* inflated bytes of the current message */
  struct wsm_zs *def, *inf;
} wsm_pmd;

/* Judge one element (s[0..n), e.g. "permessage-deflate; x=1") of
 * Sec-WebSocket-Extensions; fills *p for WSM_PMD_OK. */
WSM_HIDDEN int wsm_pmd_parse(const char *s, size_t n, wsm_pmd_params *p);
/* The next comma-separated element of an extension header value (commas in
 * quoted strings do not count); NULL at the end. */
WSM_HIDDEN const char *wsm_ext_next(const char *s, size_t *len);

/* ---- UTF-8 (utf8.c) ------------------------------------------------------ */

#define WSM_UTF8_ACCEPT 0u
#define WSM_UTF8_REJECT 1u
/* Incremental validation: feed chunks, keeping *state between calls.  Returns
 * the new state: ACCEPT at a character boundary, REJECT on an invalid
 * sequence (sticky), anything else in the middle of a character. */
WSM_HIDDEN uint32_t wsm_utf8_feed(uint32_t state, const uint8_t *p, size_t n);
/* Length of the longest prefix of s[0..n) that ends on a character boundary
 * and is at most `max` bytes (s is valid UTF-8). */
WSM_HIDDEN size_t wsm_utf8_cut(const char *s, size_t n, size_t max);
/* Make a NUL-terminated string valid UTF-8 in place: every byte that does
 * not belong to a whole character becomes '?'.  For text from elsewhere
 * (jansson's error messages quote the input and may cut a character). */
WSM_HIDDEN void wsm_utf8_scrub(char *s);

/* ---- endpoints and servers (endpoint.c) ---------------------------------- */

struct wsmsg_endpoint {
  wsmsg_mem mem;
  atomic_int frozen;
  wsmsg_open_cb on_open;
  wsmsg_text_cb on_text;
  wsmsg_binary_cb on_binary;
  wsmsg_close_cb on_close;
  wsmsg_pong_cb on_pong;
  wsmsg_handshake_cb on_handshake;
  wsmsg_timeout_cb on_timeout;
  wsmsg_clock_cb clock;
  void *clock_user;
  uint32_t t_receive, t_ping, t_pong, t_message, t_close, t_write, t_handshake,
      t_idle;
  int timeout_action;
  char *heartbeat;
  wsmsg_drain_cb on_drain;
  wsmsg_chunk_cb on_chunk;
  unsigned stream_kinds;
  size_t bp_high, bp_low;
  int bp_policy;
  uint64_t max_message;
  bool max_message_set; /* by the application: JSON keeps it */
  uint32_t max_fragments;
  /* rate limits (rx.c) and the invalid-message limit (json.c) */
  uint32_t rate_msgs;
  uint64_t rate_bytes;
  int rate_policy;
  uint32_t inv_max, inv_window;
  bool pong_events;
  bool require_subprotocol;
  bool any_origin;
  char **subprotocols;
  size_t nsubprotocols;
  char **origins;
  size_t norigins;
  wsm_pool pool; /* for client connections */
  /* JSON (set in endpoint.c, used by json.c) */
  bool json;
  bool allow_dups;
  wsmsg_json_cb on_json;
  wsmsg_invalid_cb on_invalid;
  const wsmsg_schema *schema;
  unsigned vflags;
  int invalid_policy;
  size_t max_errors;
  char *route_field;
  struct wsm_jroute *jroutes; /* sorted by value */
  size_t njroutes;
  bool route_cb;   /* a route has its own callback */
  int unhandled;   /* enum wsmsg_unhandled_policy */
  /* event queue bounds */
  size_t max_events, max_event_bytes;
  wsm_pmd_cfg pmd; /* permessage-deflate settings */
  /* asyncapi.c: the address an endpoint it built serves (else NULL) */
  void *owner;
};

typedef struct wsm_jroute {
  char *value;
  const wsmsg_schema *schema;
  wsmsg_json_cb cb;
} wsm_jroute;

typedef struct wsm_route {
  char *path;
  size_t len; /* without the trailing '*' of a prefix route */
  bool prefix;
  wsmsg_endpoint *ep;
} wsm_route;

struct wsmsg_server {
  wsmsg_mem mem;
  atomic_int frozen;
  wsm_route *routes;
  size_t nroutes;
  size_t max_request;
  uint32_t max_headers;
  uint32_t t_handshake;
  wsmsg_clock_cb clock;
  void *clock_user;
  wsmsg_output_cb on_output; /* a connection got output from elsewhere */
  wsm_pool pool;
  wsmsg_http_cb on_http; /* plain HTTP beside the upgrade (http.c) */
  /* memory budget (see budget.c): bytes held by the connections' message
   * and output buffers, counted by every connection's thread */
  size_t mem_budget, mem_share;
  atomic_size_t mem_used;
  /* the registry of its connections (registry.c) */
  pthread_mutex_t reg_mu; /* recursive: close_all runs callbacks */
  struct wsmsg_conn *reg_head;
  size_t reg_count;
  atomic_int draining; /* upgrades are refused with 503 */
};

struct wsmsg_timers {
  wsmsg_mem mem;
  wsmsg_conn **heap;
  size_t n, cap;
};

/* Re-key the connection in its timer set if its deadline moved earlier. */
WSM_HIDDEN void wsm_timers_touch(wsmsg_conn *c);
WSM_HIDDEN uint64_t wsm_default_clock(void *user);

/* A push endpoint has a message callback: a message kind without one is
 * handled by the unhandled policy, never queued (docs/guide.md, "Push and
 * pull endpoints"). */
static inline bool wsm_ep_push(const wsmsg_endpoint *ep) {
  return ep->on_text || ep->on_binary || ep->on_json || ep->on_chunk ||
         ep->route_cb;
}

/* The JSON route for discriminator value v, or NULL (then *pos, if not
 * NULL, is where it would be inserted). */
WSM_HIDDEN const wsm_jroute *wsm_ep_find_route(const wsmsg_endpoint *ep,
                                               const char *v, size_t *pos);
WSM_HIDDEN wsmsg_endpoint *wsm_server_lookup(const wsmsg_server *srv,
                                             const char *path, size_t len);

/* ---- JSON and AsyncAPI (json.c, asyncapi*.c) ------------------------------ */

/* Report an invalid JSON message as the endpoint's invalid policy says
 * (on_invalid, the INVALID event, the error reply or the 1008 close), then
 * empty `errs`. */
WSM_HIDDEN void wsm_json_invalid(wsmsg_conn *c, wsmsg_verrors *errs,
                                 const char *text, size_t len);
/* YAML text -> a new jansson value (YAML 1.2 core schema; see
 * asyncapi_yaml.c), or NULL with a message in err. */
WSM_HIDDEN json_t *wsm_yaml_load(const wsmsg_mem *mem, const char *text,
                                 size_t len, char *err, size_t errsz);

/* ---- HTTP handshake (handshake.c) ---------------------------------------- */

typedef struct wsm_header {
  char *name;
  char *value;
} wsm_header;

/* An HTTP head (request or response) being received. */
typedef struct wsm_http {
  char *buf; /* raw bytes, then NUL-terminated pieces after parsing */
  size_t len, cap, scan;
  size_t limit;         /* max bytes */
  uint32_t max_headers; /* max header lines */
  wsm_header *hdrs;
  size_t nhdrs;
  /* request: method target version; response: version status reason */
  char *line[3];
  bool parsed;      /* http_parse ran (it parses in place, once) */
  int pstatus;      /* its result: 0 or an HTTP status */
  const char *pwhy; /* and reason */
  /* a server's plain HTTP responses (http.c), NULL until the first one:
   * here, not in the connection, so an open connection pays nothing */
  struct wsm_http_resp *resp;
} wsm_http;

struct wsmsg_request {
  const wsm_http *http;
  const char *path;
  const char *query;
};

/* Accumulate bytes of an HTTP head.  Sets *used to the bytes that belong to
 * it, and *status to 431 when the head outgrew its limit (else 0).  Returns
 * 1 when the head is complete, 0 if it is not (more is needed, or *status
 * says it never will be), or WSMSG_ERR_NOMEM. */
WSM_HIDDEN int wsm_http_feed(wsm_http *h, const wsmsg_mem *m, const uint8_t *d,
                             size_t n, size_t *used, int *status);
WSM_HIDDEN void wsm_http_free(wsm_http *h, const wsmsg_mem *m);
/* 1 if s is a non-empty RFC 7230 token (header names, subprotocols). */
WSM_HIDDEN bool wsm_http_is_token(const char *s);
/* Parse the complete head in place (once; later calls return the first
 * result): 0, or an HTTP status (400/431/500) with *why set. */
WSM_HIDDEN int wsm_http_parse(wsm_http *h, const wsmsg_mem *m,
                              const char **why);
/* The first header `name` (case-insensitive) of a parsed head, or NULL. */
WSM_HIDDEN const char *wsm_http_get(const wsm_http *h, const char *name);
/* How many header lines are called `name`. */
WSM_HIDDEN size_t wsm_http_count(const wsm_http *h, const char *name);
/* 1 if the comma-separated lists of every header `name` hold `tok`. */
WSM_HIDDEN bool wsm_http_has(const wsm_http *h, const char *name,
                             const char *tok);
/* The path-and-query of a request target (origin-form as is, absolute-form
 * from its path on, "" for none), or NULL if it is neither. */
WSM_HIDDEN const char *wsm_http_target(const char *t);
/* Forget a parsed head so the next one can be received (keep-alive). */
WSM_HIDDEN void wsm_http_reset(wsm_http *h, const wsmsg_mem *m);
/* The reason phrase of an HTTP status (RFC 9110 15), for the status line of
 * the handshake's error answers and of plain HTTP responses (http.c); a
 * status it does not name gets its class's ("Client Error"...). Static. */
WSM_HIDDEN const char *wsm_http_reason(int status);

typedef struct wsm_client_hs wsm_client_hs;

/* What handshake.c decided about a complete head; conn.c applies it. */
typedef struct wsm_hs_verdict {
  int status;         /* server: 101 to accept, else the error status to answer;
                         client: the response's status (0 if unreadable) */
  const char *why;    /* a refusal's reason (static, or in detail) */
  wsmsg_endpoint *ep; /* server: where the path routes (or NULL) */
  const char *path;   /* server: the target's path (in the head) */
  size_t path_len;    /* (not NUL-terminated) */
  const char *query;  /* server: its query, "" if none */
  const char *subprotocol; /* chosen, or NULL */
  char accept[32];         /* server: Sec-WebSocket-Accept to send */
  char detail[200];        /* storage for a formatted `why` */
  wsm_pmd pmd;             /* permessage-deflate as agreed (.on) */
  char ext[160];           /* server: Sec-WebSocket-Extensions to answer */
} wsm_hs_verdict;

/* Server side: judge the complete request head in `h` (parsed in place):
 * routing by path, Origin, subprotocol.  Fills *v (status 101 or an error
 * status with its reason); touches no connection. */
WSM_HIDDEN void wsm_hs_server_check(wsm_http *h, const wsmsg_mem *m,
                                    const wsmsg_server *srv, wsm_hs_verdict *v);
/* Append the 101 response head (0, or WSMSG_ERR_NOMEM) or an error
 * response (best effort) to `out`. */
WSM_HIDDEN int wsm_hs_accept_head(wsm_buf *out, wsm_pool *pool,
                                  const char *accept, const char *sub,
                                  const char *ext);
WSM_HIDDEN void wsm_hs_error_head(wsm_buf *out, wsm_pool *pool, int status,
                                  const char *why);
/* Client side: append the upgrade request to `out` and keep the expected
 * Sec-WebSocket-Accept in ch.  0, WSMSG_ERR_IO (getrandom failed) or
 * WSMSG_ERR_NOMEM. */
WSM_HIDDEN int wsm_hs_client_request(wsm_buf *out, wsm_pool *pool,
                                     wsm_client_hs *ch,
                                     const wsmsg_endpoint *ep);
/* Client side: verify the complete response head.  0 (v->subprotocol is
 * the server's choice), or WSMSG_ERR_HANDSHAKE with v->why. */
WSM_HIDDEN int wsm_hs_client_check(wsm_http *h, const wsmsg_mem *m,
                                   const wsm_client_hs *ch,
                                   const wsmsg_endpoint *ep, wsm_hs_verdict *v);

/* ---- connections (conn.c) ------------------------------------------------ */

typedef struct wsm_sub wsm_sub; /* a topic subscription (topic.c) */

typedef struct wsm_evnode {
  struct wsm_evnode *next;
  wsmsg_event ev;
  size_t size; /* bytes allocated for this node */
  uint8_t data[];
} wsm_evnode;

struct wsm_client_hs {
  char *host;
  char *target;
  wsm_header *extra;
  size_t nextra;
  char accept[32]; /* expected Sec-WebSocket-Accept */
  uint8_t masks[256];
  uint16_t maskpos;
};

struct wsmsg_conn {
  const wsmsg_mem *mem; /* the parent's allocator */
  wsmsg_server *srv;
  wsmsg_endpoint *ep;
  void *user;
  wsm_pool *pool;           /* the server's, or the endpoint's for clients */
  wsm_slot *slot;           /* borrowed frame parser, NULL when idle */
  uint64_t in_fed, in_used; /* bytes given to the parser / framed */
  bool in_recv;             /* inside wsmsg_conn_recv */

  uint8_t state;
  bool client;
  bool request_built; /* client: request queued */
  bool close_sent, close_recv;
  bool remote_first; /* the peer's close frame came before ours */
  bool failed;       /* a rule fired; nothing more is read */
  bool close_called; /* on_close / CLOSE event delivered */
  bool opened;       /* on_open delivered */
  bool in_frame;     /* in the middle of a frame's payload */
  bool aborted;
  uint8_t http_cb; /* inside on_http (1) or on_handshake (2): respond ok */

  /* current frame */
  uint8_t fr_op;
  bool fr_fin;
  uint64_t fr_len, fr_off;

  /* message being reassembled */
  uint8_t msg_op; /* 0 none, WSLAY_TEXT_FRAME, WSLAY_BINARY_FRAME */
  uint32_t nfrag;
  uint64_t msg_total;        /* payload bytes of its frames so far */
  uint8_t hdr_len;           /* bytes of a partial frame header seen */
  const uint8_t *valid_text; /* text being delivered to on_text */
  size_t valid_text_len;
  uint32_t utf8;
  wsm_buf msg;

  uint8_t ctl_len; /* control frame payload so far (slot->ctl) */

  /* bytes being fed to wslay */
  const uint8_t *in;
  size_t in_len;

  /* server role: client frames are unmasked here, 8 bytes at a time, as
   * they are copied into wslay's buffer; wslay sees them unmasked (its own
   * unmasking goes a byte at a time).  See rx_feed in conn.c. */
  uint64_t rx_left;   /* payload bytes of the current frame still to come */
  uint8_t rx_hdr[14]; /* a header cut by the end of a read, as it arrived */
  uint8_t rx_hlen;    /* bytes of it collected (0: none) */
  uint8_t rx_need;    /* its whole length, once its second byte is known */
  uint8_t rx_key[4];  /* the current frame's mask key */
  uint8_t rx_out;     /* bytes of the unmasked header given to wslay */
  uint8_t rx_state;   /* RX_HDR, RX_EMIT or RX_PAY */
  uint8_t rx_phase;   /* payload offset mod 4: where in the key */
  bool rx_unmasked;   /* an unmasked client frame: nothing more is parsed */

  wsm_pmd pmd; /* permessage-deflate (deflate.c) */

  wsm_buf out;
  wsm_buf deferred; /* data frames queued behind a running stream */
  wsm_buf *sink;    /* where wslay's send callback appends */
  bool msg_stream;  /* the current message goes to on_chunk */
  bool msg_first;   /* its first piece is not delivered yet */
  bool bp_blocked;  /* a send hit the high mark: on_drain is due */
  bool out_notify;  /* on_output is due once the broadcast is done */

  /* streaming send */
  wsmsg_read_cb stream_cb;
  void *stream_user;
  uint8_t *stream_buf;
  uint8_t stream_op; /* opcode of the next fragment */
  bool stream_text, stream_paused;
  uint32_t stream_utf8;

  /* handshake */
  wsm_http *hs;
  wsm_client_hs *chs;
  int http_status;
  char *path; /* "path\0query\0subprotocol\0" in one allocation */
  const char *query;
  const char *subprotocol;

  /* closing */
  uint16_t code_sent, code_recv;
  int error;
  char *detail;
  char *close_reason; /* the reason of the close frame whose code
                         on_close reports: ours until the peer's arrives */
  size_t close_reason_len;

  /* pull API */
  wsm_evnode *ev_head, *ev_tail, *ev_cur;
  size_t nev, ev_bytes;
  wsmsg_verrors *verrs; /* JSON endpoints: created on first use */

  /* time: every stamp comes from the clock hook */
  wsmsg_clock_cb clock;
  void *clock_user;
  uint32_t t_handshake; /* from the server (or endpoint for clients) */
  bool ping_outstanding;
  bool closing_timed; /* t_close_start is set */
  uint64_t t_created, t_last_msg, t_last_rx, t_msg_start, t_ping_sent,
      t_close_start, t_write_progress, t_last_tx;
  uint64_t ping_seq;
  int64_t rtt;
  wsmsg_timers *timers;
  size_t heap_idx;
  uint64_t heap_key;
  size_t mem_held; /* bytes counted in srv->mem_used for this connection */
  /* rate limits: token buckets in thousandths, refilled from rl_t */
  bool rl_init;
  uint64_t rl_t, rl_msgs, rl_bytes;
  uint32_t inv_count; /* invalid messages in the window from inv_start */
  uint64_t inv_start;

  /* fan-out: the server's registry (registry.c), its topics (topic.c) */
  struct wsmsg_conn *reg_prev, *reg_next;
  bool registered;
  wsm_sub *subs;
  /* left a topic during a publish that had already given it output: its
   * on_output is owed once the publish is over (topic.c) */
  struct wsmsg_conn *notify_next;
};

static inline uint64_t wsm_now(const wsmsg_conn *c) {
  return c->clock(c->clock_user);
}

/* Output bytes not yet taken by the host, including data queued behind a
 * running stream. */
static inline size_t wsm_buffered(const wsmsg_conn *c) {
  return c->out.len - c->out.off + c->deferred.len;
}

/* conn.c: life cycle and state machine */

/* Record `err`/`detail` as the reason the connection failed (first one
 * wins).  `detail` is copied. */
WSM_HIDDEN void wsm_conn_set_error(wsmsg_conn *c, int err, const char *detail);
/* A peer broke a rule (or a resource ran out): queue a close frame with
 * `code`, stop reading, end the connection.  Returns err. */
WSM_HIDDEN int wsm_conn_fail(wsmsg_conn *c, int err, unsigned code,
                             const char *detail);
/* End the connection now (pending output dropped), reporting err. */
WSM_HIDDEN void wsm_conn_abort_err(wsmsg_conn *c, int err, const char *detail);
/* Server: refuse the handshake with an HTTP error response (queued) and end
 * the connection with `err` and `detail` (NULL: "handshake rejected with
 * <status>: <why>").  Returns err. */
WSM_HIDDEN int wsm_conn_reject(wsmsg_conn *c, int status, const char *why,
                               int err, const char *detail);
/* Client: queue the upgrade request (once; a failure ends the
 * connection with its real cause). */
WSM_HIDDEN void wsm_conn_build_request(wsmsg_conn *c);
/* The peer's close frame arrived (payload p[0..n)). */
WSM_HIDDEN int wsm_conn_close_received(wsmsg_conn *c, const uint8_t *p,
                                       size_t n);
WSM_HIDDEN bool wsm_close_code_valid_wire(unsigned code);
/* Borrow a frame parser from the pool while there is work (0 or
 * WSMSG_ERR_NOMEM); give it back once the connection is idle. */
WSM_HIDDEN int wsm_conn_lend_parser(wsmsg_conn *c);
static inline int wsm_conn_acquire_parser(wsmsg_conn *c) {
  return c->slot ? 0 : wsm_conn_lend_parser(c);
}
WSM_HIDDEN void wsm_conn_release_parser(wsmsg_conn *c);

/* rx.c: the receive path (frames -> messages) */

/* wslay's receive callback. */
WSM_HIDDEN ssize_t wsm_rx_cb_recv(uint8_t *buf, size_t len, int flags,
                                  void *ud);
/* Charge a received data message of `len` bytes to the rate limits:
 * true to deliver it; false if it is dropped or the connection failed. */
WSM_HIDDEN bool wsm_rate_admit(wsmsg_conn *c, uint64_t len);
/* Parse and deliver n bytes of an open connection (its parser lent). */
WSM_HIDDEN int wsm_rx_process(wsmsg_conn *c, const uint8_t *d, size_t n);
/* A message of a push endpoint that no callback takes (`what`: "binary
 * messages"...): the unhandled policy closes with 1003 or drops it. */
WSM_HIDDEN void wsm_rx_unhandled(wsmsg_conn *c, const char *what);

/* send.c: framing and sending */

/* wslay's send and mask-key callbacks. */
WSM_HIDDEN ssize_t wsm_tx_cb_send(const uint8_t *data, size_t len, int flags,
                                  void *ud);
WSM_HIDDEN int wsm_tx_cb_genmask(uint8_t *buf, size_t len, void *ud);
/* Frame a whole message into the output (data behind a running stream). */
WSM_HIDDEN int wsm_queue_frame(wsmsg_conn *c, uint8_t opcode,
                               const uint8_t *data, size_t len);
/* Queue our close frame (code 0: none), ending a running stream. */
WSM_HIDDEN int wsm_queue_close_frame(wsmsg_conn *c, unsigned code,
                                     const char *reason, size_t rlen);
/* Output went from empty to pending outside framing (an HTTP answer, the
 * handshake's response or request): the write timeout runs from now. */
WSM_HIDDEN void wsm_write_started(wsmsg_conn *c);
/* Stop a streaming send; `flush_deferred` moves the messages queued behind
 * it to the output. */
WSM_HIDDEN void wsm_stream_end(wsmsg_conn *c, bool flush_deferred);
/* Whether the connection can send now (0) or why not. */
WSM_HIDDEN int wsm_can_send(const wsmsg_conn *c);
/* Send one message to many connections (op: text or binary; text already
 * UTF-8-checked), then call on_output for those it gave their first
 * pending bytes: the engine of wsmsg_broadcast, wsmsg_broadcast_json
 * and topic publishing (topic.c). */
WSM_HIDDEN int64_t wsm_broadcast(wsmsg_conn *const *conns, size_t n,
                                 uint8_t op, const void *data, size_t len);
/* Queue a data message with backpressure (after can_send checks). */
WSM_HIDDEN int wsm_send_data(wsmsg_conn *c, uint8_t op, const uint8_t *data,
                             size_t len);

/* event.c: the event queue */

/* A node holding a copy of d[0..len) and a NUL (ev.data, ev.len set),
 * with `extra` more bytes after the NUL. */
WSM_HIDDEN wsm_evnode *wsm_ev_new(wsmsg_conn *c, int type, const void *d,
                                  size_t len, size_t extra);
/* Queue a node (false if the queue bound was hit: the node is freed and the
 * connection failed). */
WSM_HIDDEN bool wsm_ev_push(wsmsg_conn *c, wsm_evnode *n);
/* wsm_ev_new + wsm_ev_push: 0, WSMSG_ERR_NOMEM or WSMSG_ERR_BACKPRESSURE. */
WSM_HIDDEN int wsm_ev_queue(wsmsg_conn *c, int type, const void *d, size_t len);
/* Queue the CLOSE event (the last one: never refused). */
WSM_HIDDEN void wsm_ev_close(wsmsg_conn *c, const wsmsg_close_info *ci);
/* Free every queued event and the one last returned. */
WSM_HIDDEN void wsm_ev_clear(wsmsg_conn *c);

/* timeout.c: the connection's timers */

/* Run due timers; returns how many fired. */
WSM_HIDDEN int wsm_conn_tick_count(wsmsg_conn *c, uint64_t now);
/* The closing handshake starts now: the close timeout runs from here. */
WSM_HIDDEN void wsm_conn_closing_starts(wsmsg_conn *c);

/* http.c: plain HTTP requests and responses beside the upgrade */

/* A server connection's request head is complete: offer it to the
 * server's on_http hook.  Returns 1 if the hook let it through (go on with
 * the upgrade checks), 0 if it was answered (or the connection ended), or a
 * WSMSG_ERR_* code. */
WSM_HIDDEN int wsm_http_offer(wsmsg_conn *c);
/* on_handshake answered with wsmsg_http_respond: the status it sent, or 0
 * if it did not. */
WSM_HIDDEN int wsm_http_denied(const wsmsg_conn *c);
/* Bytes fed to a connection while a response is being written: keep them
 * (0) or WSMSG_ERR_* . */
WSM_HIDDEN int wsm_http_stash(wsmsg_conn *c, const uint8_t *d, size_t n);
/* From wsmsg_conn_pending: pull a streamed body, then answer the next
 * pipelined request once the output drained. */
WSM_HIDDEN void wsm_http_pull(wsmsg_conn *c);
/* The connection has plain HTTP state (it answered a request). */
static inline bool wsm_http_active(const wsmsg_conn *c) {
  return c->hs && c->hs->resp;
}
/* A response is being written, or pipelined bytes wait: read nothing. */
WSM_HIDDEN bool wsm_http_busy(const wsmsg_conn *c);
/* A streamed body or a pipelined request wants wsmsg_conn_pending. */
WSM_HIDDEN bool wsm_http_want_write(const wsmsg_conn *c);
/* A streamed body is not complete yet (the connection is not done, and its
 * handshake timeout does not run). */
WSM_HIDDEN bool wsm_http_body_pending(const wsmsg_conn *c);
/* The connection answered a request: its handshake timeout then ends it
 * without a 408. */
WSM_HIDDEN bool wsm_http_served(const wsmsg_conn *c);
/* wsmsg_conn_resume_stream for a paused body: 0, or WSMSG_ERR_STATE. */
WSM_HIDDEN int wsm_http_resume(wsmsg_conn *c);
/* wsmsg_server_close_all on a connection writing an HTTP answer: that
 * answer (and a request already pipelined behind it) is its last. */
WSM_HIDDEN void wsm_http_last(wsmsg_conn *c);
WSM_HIDDEN void wsm_http_free_resp(wsmsg_conn *c);

/* deflate.c: permessage-deflate */

/* Server: pick the first acceptable permessage-deflate offer among the
 * Sec-WebSocket-Extensions headers of hdrs[0..n).  true: *agreed is set
 * (on) and `answer` holds the response's extension value. */
WSM_HIDDEN bool wsm_pmd_negotiate(const wsm_header *hdrs, size_t n,
                                  const wsm_pmd_cfg *cfg, wsm_pmd *agreed,
                                  char *answer, size_t cap);
/* Client: our offer (Sec-WebSocket-Extensions value) into buf. */
WSM_HIDDEN void wsm_pmd_offer(const wsm_pmd_cfg *cfg, char *buf, size_t cap);
/* Client: check the server's Sec-WebSocket-Extensions headers against our
 * offer.  0 (*agreed set; .on false if the server declined), or -1 with
 * *why a static reason. */
WSM_HIDDEN int wsm_pmd_check_answer(const wsm_header *hdrs, size_t n,
                                    const wsm_pmd_cfg *cfg, wsm_pmd *agreed,
                                    const char **why);
/* Should a data message of `len` bytes be compressed on this connection? */
static inline bool wsm_pmd_tx(const wsmsg_conn *c, size_t len) {
  return c->pmd.on && c->pmd.tx_wbits > 8 && len >= c->ep->pmd.threshold;
}
/* Compress d[0..n) into `out` (pool storage, appended): a whole message
 * or one fragment of a streamed one (`final`: the message ends here, the
 * 00 00 ff ff tail is removed).  0, WSMSG_ERR_NOMEM, or WSMSG_ERR_BUDGET
 * (no compressor yet and none fits the memory budget: send it plain). */
WSM_HIDDEN int wsm_pmd_compress(wsmsg_conn *c, const uint8_t *d, size_t n,
                                bool final, wsm_buf *out);
/* Where wsm_pmd_inflate hands inflated bytes (`final`: the last piece). */
typedef int (*wsm_pmd_sink)(wsmsg_conn *c, const uint8_t *p, size_t n,
                            bool final);
/* Inflate a piece of a compressed message's payload (`final`: the last of
 * its payload), with the inflated size held to the message limit (1009)
 * and corrupt data failing the connection (1007). */
WSM_HIDDEN int wsm_pmd_inflate(wsmsg_conn *c, const uint8_t *d, size_t n,
                               bool final, wsm_pmd_sink sink);
/* Give back a connection's zlib streams (conn free, closed), accounted. */
WSM_HIDDEN void wsm_pmd_release(wsmsg_conn *c);
/* Bytes of zlib state the connection holds (the memory budget's count). */
WSM_HIDDEN size_t wsm_pmd_held(const wsmsg_conn *c);
/* Free the idle zlib streams of a pool (pool destroy). */
WSM_HIDDEN void wsm_pmd_pool_drain(wsm_pool *p);
/* Broadcast: a key saying which connections can share one compressed frame
 * of a `len`-byte message (0: uncompressed; UINT32_MAX: its own stream). */
WSM_HIDDEN uint32_t wsm_pmd_share_key(const wsmsg_conn *c, size_t len);
/* topic.c: drop every subscription of a connection (it closed or is
 * being freed). */
WSM_HIDDEN void wsm_topics_conn_gone(wsmsg_conn *c);

/* registry.c: a server's connections */
WSM_HIDDEN int wsm_registry_init(wsmsg_server *srv);
WSM_HIDDEN void wsm_registry_destroy(wsmsg_server *srv);
WSM_HIDDEN void wsm_registry_add(wsmsg_conn *c);
WSM_HIDDEN void wsm_registry_remove(wsmsg_conn *c);

/* budget.c: the server's memory budget */

/* Bring srv->mem_used up to date with what the connection's buffers hold
 * now (a connection is used by one thread at a time; the counter is
 * atomic because its server's connections may run on several). */
WSM_HIDDEN void wsm_mem_account(wsmsg_conn *c);
/* Reserve `extra` bytes in a data buffer of the connection (its message
 * or output), growing only within the budget: 0, WSMSG_ERR_BUDGET (the
 * caller applies the policy) or WSMSG_ERR_NOMEM. */
WSM_HIDDEN int wsm_budget_reserve(wsmsg_conn *c, wsm_buf *b, size_t extra,
                                  size_t min_cap);
/* May the connection grow by `grow` bytes (its share, or the server is
 * under the budget)? */
WSM_HIDDEN bool wsm_budget_admit(const wsmsg_conn *c, size_t grow);
/* What a broadcast batches across its recipients: their output buffers
 * (from the pool a batch at a time) and the growth of what they hold,
 * counted into srv->mem_used once per batch instead of one atomic
 * operation per recipient.  `pending` bytes are already in the
 * connections' mem_held but not yet in srv->mem_used; admission adds
 * them, so the budget holds as if they were.  Zeroed to start. */
typedef struct wsm_batch {
  wsmsg_server *srv;
  size_t pending;
  wsm_bufcache bufs;
} wsm_batch;
/* wsm_budget_reserve within a batch (NULL: none). */
WSM_HIDDEN int wsm_budget_reserve_batch(wsmsg_conn *c, wsm_buf *b, size_t extra,
                                        size_t min_cap, wsm_batch *bt);
/* Count the batch's pending bytes into its server's mem_used. */
WSM_HIDDEN void wsm_batch_flush_mem(wsm_batch *bt);
/* Give back what a connection no longer needs (the message buffer of a
 * closed connection, its zlib streams), then account. */
WSM_HIDDEN void wsm_conn_trim(wsmsg_conn *c);

/* json.c: JSON endpoints */

/* Handle a complete text message of a JSON endpoint. */
WSM_HIDDEN int wsm_json_deliver(wsmsg_conn *c, const char *text, size_t len);

#endif
