/* Connections: their life cycle and the RFC 6455 state machine.
 *
 * This file creates and frees connections, lends them a frame parser from
 * the pool, applies the opening handshake's verdict (handshake.c decides,
 * this file changes state and queues the answer), runs the closing
 * handshake and the ways a connection ends (failure, EOF, abort), and
 * answers the state queries.  Frames are received by rx.c and sent by
 * send.c; events are event.c's, timers timeout.c's.
 *
 * wslay_frame parses and builds frame headers; we use the frame layer
 * rather than wslay_event because wslay_event rejects the IANA close codes
 * 1012-1014, copies every outgoing message into a malloc'd buffer, and
 * gives no hook for fragment limits or error reasons (see docs/design.md). */
#include "internal.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MAX_RESPONSE_HEAD 16384
#define MAX_RESPONSE_HEADERS 256

/* ---- errors ---- */

void wsm_conn_set_error(wsmsg_conn *c, int err, const char *detail) {
  if (c->error)
    return;
  c->error = err;
  wsm_free(c->mem, c->detail);
  c->detail = wsm_strdup(c->mem, detail ? detail : "");
}

bool wsm_close_code_valid_wire(unsigned code) {
  /* RFC 6455 7.4 plus the IANA registry: 1012-1014 are assigned; 1004-1006
   * and 1015 must never appear in a close frame. */
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

/* ---- the frame parser, lent by the pool ---- */

static const struct wslay_frame_callbacks frame_cbs = {
    wsm_tx_cb_send, wsm_rx_cb_recv, wsm_tx_cb_genmask};

int wsm_conn_lend_parser(wsmsg_conn *c) {
  c->slot = wsm_pool_get_slot(c->pool, &frame_cbs);
  if (!c->slot)
    return WSMSG_ERR_NOMEM;
  c->slot->conn = c;
  c->in_fed = c->in_used = 0;
  return 0;
}

/* Give the parser back once the connection is idle: between frames, every
 * byte fed to it framed, no output pending (a busy connection keeps it, so
 * sends do not pay a pool round trip each).  A connection that broke off
 * mid-frame destroys it. */
void wsm_conn_release_parser(wsmsg_conn *c) {
  if (!c->slot || c->in_recv)
    return;
  if (c->out.len > c->out.off && !c->failed && !c->aborted &&
      c->state != WSMSG_STATE_CLOSED)
    return;
  bool clean = !c->in_frame && c->in_fed == c->in_used;
  if (!clean && !c->failed && c->state != WSMSG_STATE_CLOSED && !c->aborted)
    return; /* a frame is in progress: keep it */
  wsm_pool_put_slot(c->pool, c->slot, clean);
  c->slot = NULL;
}

/* ---- how a connection ends ---- */

static void fill_close_info(const wsmsg_conn *c, wsmsg_close_info *ci) {
  memset(ci, 0, sizeof(*ci));
  ci->clean = c->close_sent && c->close_recv && !c->failed;
  ci->remote = c->close_recv && c->remote_first;
  if (c->close_recv)
    ci->code = c->code_recv ? c->code_recv : 1005;
  else if (c->close_sent)
    ci->code = c->code_sent;
  else
    ci->code = 1006;
  ci->error = c->error;
  ci->reason = c->close_reason ? c->close_reason : "";
  ci->reason_len = c->close_reason ? c->close_reason_len : 0;
  ci->detail = c->detail ? c->detail : "";
}

/* Report the end to on_close or as the last event (once). */
static void deliver_close(wsmsg_conn *c) {
  if (c->close_called)
    return;
  /* server connections that never opened report nothing; client
   * connections always report how they ended */
  if (!c->opened && !c->client)
    return;
  c->close_called = true;
  wsmsg_close_info ci;
  fill_close_info(c, &ci);
  if (c->ep && c->ep->on_close)
    c->ep->on_close(c, &ci, c->user);
  else
    wsm_ev_close(c, &ci);
  if (c->subs) /* after on_close, which may still look at them */
    wsm_topics_conn_gone(c);
}

/* A peer broke a rule: send a close frame with `code`, stop reading, and
 * end the connection (RFC 6455 7.1.7: no more data is processed). */
int wsm_conn_fail(wsmsg_conn *c, int err, unsigned code, const char *detail) {
  wsm_conn_set_error(c, err, detail);
  c->failed = true;
  wsm_stream_end(c, false);
  wsm_conn_closing_starts(c);
  if (!c->close_sent && c->state != WSMSG_STATE_CONNECTING)
    (void)wsm_queue_close_frame(c, code, detail, strlen(detail));
  else if (!c->close_sent)
    c->code_sent = (uint16_t)code;
  c->state = WSMSG_STATE_CLOSED;
  /* closing_starts touched the timer set while the state still said OPEN:
   * tell it again, now that the close timeout is the deadline (a failure
   * in a send or in pending() is followed by no recv or tick that would) */
  wsm_timers_touch(c);
  deliver_close(c);
  return err;
}

/* The peer's close frame (payload p[0..n), n <= 125) arrived. */
int wsm_conn_close_received(wsmsg_conn *c, const uint8_t *p, size_t n) {
  unsigned code = 0;
  const char *reason = "";
  size_t rlen = 0;
  if (n == 1)
    return wsm_conn_fail(c, WSMSG_ERR_PROTOCOL, 1002,
                         "close frame with 1-byte payload");
  if (n >= 2) {
    code = (unsigned)(p[0] << 8 | p[1]);
    if (!wsm_close_code_valid_wire(code)) {
      char why[64];
      snprintf(why, sizeof(why), "invalid close code %u", code);
      return wsm_conn_fail(c, WSMSG_ERR_CLOSE_CODE, 1002, why);
    }
    reason = (const char *)p + 2;
    rlen = n - 2u;
    if (!wsmsg_utf8_valid(reason, rlen))
      return wsm_conn_fail(c, WSMSG_ERR_UTF8, 1007,
                           "close reason is not UTF-8");
  }
  c->close_recv = true;
  wsm_conn_closing_starts(c);
  c->remote_first = !c->close_sent;
  c->code_recv = (uint16_t)code;
  wsm_free(c->mem, c->close_reason); /* ours, if we closed first */
  c->close_reason = wsm_strndup(c->mem, reason, rlen);
  c->close_reason_len = c->close_reason ? rlen : 0;
  if (!c->close_sent) /* echo the code, as RFC 6455 5.5.1 suggests */
    (void)wsm_queue_close_frame(c, code, reason, rlen);
  c->state = WSMSG_STATE_CLOSED;
  deliver_close(c);
  return 0;
}

void wsmsg_conn_eof(wsmsg_conn *c) {
  if (!c || c->state == WSMSG_STATE_CLOSED)
    return;
  wsm_conn_set_error(c, WSMSG_ERR_EOF,
                     "peer closed the TCP connection without a close frame");
  c->state = WSMSG_STATE_CLOSED;
  wsm_stream_end(c, false); /* a closed connection pulls nothing more */
  /* output already queued is kept: a half-closed peer may still read it,
   * within the close timeout (the drain deadline; the write timeout runs
   * too), so a peer that half-closes and never reads cannot hold it */
  if (c->out.len > c->out.off)
    wsm_conn_closing_starts(c);
  deliver_close(c);
  wsm_conn_trim(c); /* an unfinished message is not needed any more */
}

void wsm_conn_abort_err(wsmsg_conn *c, int err, const char *detail) {
  c->out.off = c->out.len = 0;
  c->aborted = true;
  wsm_stream_end(c, false); /* else pending() would pull fragments again */
  if (c->state == WSMSG_STATE_CLOSED)
    return;
  wsm_conn_set_error(c, err, detail);
  c->state = WSMSG_STATE_CLOSED;
  deliver_close(c);
}

void wsmsg_conn_abort(wsmsg_conn *c) {
  if (c)
    wsm_conn_abort_err(c, WSMSG_ERR_ABORTED, "aborted by the application");
}

/* ---- creation ---- */

static wsmsg_conn *conn_new(const wsmsg_mem *mem, wsm_pool *pool, void *user,
                            bool client, wsmsg_clock_cb clock,
                            void *clock_user) {
  wsmsg_conn *c = wsm_calloc(mem, sizeof(*c));
  if (!c)
    return NULL;
  c->mem = mem;
  c->pool = pool;
  c->user = user;
  c->client = client;
  c->state = WSMSG_STATE_CONNECTING;
  c->clock = clock;
  c->clock_user = clock_user;
  c->t_created = wsm_now(c);
  c->rtt = -1;
  c->heap_idx = SIZE_MAX;
  c->sink = &c->out;
  c->hs = wsm_calloc(mem, sizeof(wsm_http));
  if (!c->hs) {
    wsm_free(mem, c);
    return NULL;
  }
  return c;
}

wsmsg_conn *wsmsg_server_accept(wsmsg_server *srv, void *user) {
  if (!srv)
    return NULL;
  atomic_store(&srv->frozen, 1);
  wsmsg_conn *c =
      conn_new(&srv->mem, &srv->pool, user, false, srv->clock, srv->clock_user);
  if (!c)
    return NULL;
  c->srv = srv;
  c->t_handshake = srv->t_handshake;
  c->hs->limit = srv->max_request;
  c->hs->max_headers = srv->max_headers;
  wsm_registry_add(c);
  return c;
}

static bool has_ctl(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f)
      return true;
  return false;
}

wsmsg_conn *wsmsg_client_new(wsmsg_endpoint *ep, const char *host,
                             const char *path, void *user) {
  if (!ep || !host || !*host || !path || path[0] != '/' || has_ctl(host) ||
      has_ctl(path) || strchr(host, ' ') || strchr(path, ' '))
    return NULL;
  atomic_store(&ep->frozen, 1);
  wsmsg_conn *c =
      conn_new(&ep->mem, &ep->pool, user, true, ep->clock, ep->clock_user);
  if (!c)
    return NULL;
  c->ep = ep;
  c->t_handshake = ep->t_handshake;
  c->hs->limit = MAX_RESPONSE_HEAD;
  c->hs->max_headers = MAX_RESPONSE_HEADERS;
  c->chs = wsm_calloc(c->mem, sizeof(wsm_client_hs));
  if (c->chs) {
    c->chs->maskpos = sizeof(c->chs->masks); /* empty: refill on first use */
    c->chs->host = wsm_strdup(c->mem, host);
    c->chs->target = wsm_strdup(c->mem, path);
  }
  if (!c->chs || !c->chs->host || !c->chs->target) {
    wsmsg_conn_free(c);
    return NULL;
  }
  return c;
}

int wsmsg_client_add_header(wsmsg_conn *c, const char *name,
                            const char *value) {
  if (!c || !c->client || !name || !value)
    return WSMSG_ERR_INVALID_ARG;
  if (c->request_built)
    return WSMSG_ERR_STATE;
  if (!*name || strpbrk(name, " \t:\r\n") || has_ctl(name) ||
      strpbrk(value, "\r\n") || strncasecmp(name, "Sec-WebSocket-", 14) == 0 ||
      !strcasecmp(name, "Host") || !strcasecmp(name, "Upgrade") ||
      !strcasecmp(name, "Connection"))
    return WSMSG_ERR_INVALID_ARG;
  wsm_client_hs *ch = c->chs;
  wsm_header *nh =
      wsm_realloc(c->mem, ch->extra, ch->nextra * sizeof(wsm_header),
                  (ch->nextra + 1) * sizeof(wsm_header));
  if (!nh)
    return WSMSG_ERR_NOMEM;
  ch->extra = nh;
  nh[ch->nextra].name = wsm_strdup(c->mem, name);
  nh[ch->nextra].value = wsm_strdup(c->mem, value);
  if (!nh[ch->nextra].name || !nh[ch->nextra].value) {
    wsm_free(c->mem, nh[ch->nextra].name);
    wsm_free(c->mem, nh[ch->nextra].value);
    return WSMSG_ERR_NOMEM;
  }
  ch->nextra++;
  return 0;
}

static void free_client_hs(wsmsg_conn *c) {
  wsm_client_hs *ch = c->chs;
  if (!ch)
    return;
  wsm_free(c->mem, ch->host);
  wsm_free(c->mem, ch->target);
  for (size_t i = 0; i < ch->nextra; i++) {
    wsm_free(c->mem, ch->extra[i].name);
    wsm_free(c->mem, ch->extra[i].value);
  }
  wsm_free(c->mem, ch->extra);
  /* keep the mask batch: it is still needed to send frames */
  ch->host = ch->target = NULL;
  ch->extra = NULL;
  ch->nextra = 0;
}

void wsmsg_conn_free(wsmsg_conn *c) {
  if (!c)
    return;
  const wsmsg_mem *m = c->mem;
  wsmsg_timers_remove(c);
  if (c->subs)
    wsm_topics_conn_gone(c);
  if (c->srv)
    wsm_registry_remove(c);
  if (c->slot)
    wsm_pool_put_slot(c->pool, c->slot,
                      !c->in_frame && c->in_fed == c->in_used);
  wsm_http_free_resp(c); /* it lives in c->hs */
  wsm_http_free(c->hs, m);
  free_client_hs(c);
  wsm_free(m, c->chs);
  wsm_pmd_release(c);
  wsm_pbuf_release(&c->out, c->pool);
  wsm_pbuf_release(&c->msg, c->pool);
  wsm_pbuf_release(&c->deferred, c->pool);
  wsm_mem_account(c); /* nothing held now */
  wsm_free(m, c->stream_buf);
  wsm_free(m, c->path);
  wsm_free(m, c->detail);
  wsm_free(m, c->close_reason);
  wsm_ev_clear(c);
  wsmsg_verrors_free(c->verrs);
  wsm_free(m, c);
}

/* ---- the opening handshake ---- */

/* The handshake failed: the connection is closed and reads nothing more;
 * its output is dropped unless it holds the answer to send (a server's
 * error response).  Client connections report the end. */
static int handshake_failed(wsmsg_conn *c, int err, const char *detail,
                            bool keep_output) {
  wsm_conn_set_error(c, err, detail);
  c->failed = true;
  c->state = WSMSG_STATE_CLOSED;
  if (!keep_output)
    c->out.off = c->out.len = 0;
  deliver_close(c);
  return err;
}

int wsm_conn_reject(wsmsg_conn *c, int status, const char *why, int err,
                    const char *detail) {
  wsm_hs_error_head(&c->out, c->pool, status, why);
  wsm_write_started(c);
  c->http_status = status;
  char d[160];
  if (!detail) {
    snprintf(d, sizeof(d), "handshake rejected with %d: %s", status, why);
    detail = d;
  }
  return handshake_failed(c, err, detail, true);
}

/* Keep "path\0query\0subprotocol\0" in one allocation. */
static int store_names(wsmsg_conn *c, const char *path, size_t plen,
                       const char *query, const char *sub) {
  size_t ql = strlen(query), sl = sub ? strlen(sub) : 0;
  char *d = wsm_malloc(c->mem, plen + ql + sl + 3);
  if (!d)
    return WSMSG_ERR_NOMEM;
  memcpy(d, path, plen);
  d[plen] = '\0';
  memcpy(d + plen + 1, query, ql + 1);
  if (sub)
    memcpy(d + plen + ql + 2, sub, sl + 1);
  wsm_free(c->mem, c->path);
  c->path = d;
  c->query = d + plen + 1;
  c->subprotocol = sub ? d + plen + ql + 2 : NULL;
  return 0;
}

/* The handshake succeeded: the connection is open. */
static int conn_opened(wsmsg_conn *c) {
  wsm_http_free_resp(c); /* a page may have come first: nothing is left */
  wsm_http_free(c->hs, c->mem);
  c->hs = NULL;
  free_client_hs(c);
  c->state = WSMSG_STATE_OPEN;
  c->opened = true;
  c->t_last_msg = c->t_last_rx = c->t_last_tx = wsm_now(c);
  if (c->ep->on_open) {
    c->ep->on_open(c, c->user);
    return 0;
  }
  int r = wsm_ev_queue(c, WSMSG_EV_OPEN, NULL, 0);
  if (r && !c->failed) /* the host would never learn it opened */
    return wsm_conn_fail(c, r, 1011, wsmsg_strerror(r));
  return r;
}

/* Server: the request head is complete.  handshake.c judges the request;
 * the endpoint's on_handshake may still refuse it. */
static int server_handshake(wsmsg_conn *c) {
  if (c->srv->on_http) { /* plain HTTP first (http.c) */
    int r = wsm_http_offer(c);
    if (r <= 0)
      return r;
  }
  wsm_hs_verdict v;
  wsm_hs_server_check(c->hs, c->mem, c->srv, &v);
  if (v.status == 101 && atomic_load(&c->srv->draining))
    v.status = 503, v.why = "the server is shutting down";
  if (v.ep) {
    atomic_store(&v.ep->frozen, 1);
    c->ep = v.ep;
  }
  if (v.status == 101 &&
      store_names(c, v.path, v.path_len, v.query, v.subprotocol))
    v.status = 500, v.why = "out of memory";
  if (v.status == 101 && c->ep->on_handshake) {
    wsmsg_request req = {c->hs, c->path, c->query};
    c->http_cb = 2; /* it may deny with wsmsg_http_respond */
    int r = c->ep->on_handshake(c, &req, c->user);
    c->http_cb = 0;
    if (c->aborted || c->state == WSMSG_STATE_CLOSED)
      return c->error ? c->error : WSMSG_ERR_CLOSED;
    int denied = wsm_http_denied(c);
    if (denied) { /* its response is queued */
      char d[96];
      snprintf(d, sizeof(d), "handshake denied by the application with %d",
               denied);
      return handshake_failed(c, WSMSG_ERR_HANDSHAKE, d, true);
    }
    if (r != 0) {
      v.status = r < 400 || r > 599 ? 500 : r;
      v.why = "rejected by the application";
    }
  }
  if (v.status == 101 &&
      wsm_hs_accept_head(&c->out, c->pool, v.accept, c->subprotocol,
                         v.pmd.on ? v.ext : NULL))
    v.status = 500, v.why = "out of memory";
  if (v.status != 101)
    return wsm_conn_reject(c, v.status, v.why, WSMSG_ERR_HANDSHAKE, NULL);
  wsm_write_started(c);
  c->http_status = 101;
  c->pmd = v.pmd;
  return conn_opened(c);
}

/* Client: the response head is complete. */
static int client_handshake(wsmsg_conn *c) {
  wsm_hs_verdict v;
  int r = wsm_hs_client_check(c->hs, c->mem, c->chs, c->ep, &v);
  c->http_status = v.status;
  if (r)
    return handshake_failed(c, r, v.why, false);
  const char *target = c->chs->target;
  const char *q = strchr(target, '?');
  size_t plen = q ? (size_t)(q - target) : strlen(target);
  if (store_names(c, target, plen, q ? q + 1 : "", v.subprotocol))
    return handshake_failed(c, WSMSG_ERR_NOMEM, "out of memory", false);
  c->pmd = v.pmd;
  return conn_opened(c);
}

void wsm_conn_build_request(wsmsg_conn *c) {
  if (c->request_built || c->state != WSMSG_STATE_CONNECTING || c->aborted)
    return;
  c->request_built = true;
  int r = wsm_hs_client_request(&c->out, c->pool, c->chs, c->ep);
  if (!r)
    wsm_write_started(c);
  if (r)
    handshake_failed(c, r,
                     r == WSMSG_ERR_IO
                         ? "cannot build the request: getrandom failed"
                         : "cannot build the request: out of memory",
                     false);
}

static int feed_handshake(wsmsg_conn *c, const uint8_t *d, size_t n,
                          size_t *used) {
  int status;
  int r = wsm_http_feed(c->hs, c->mem, d, n, used, &status);
  if (r < 0) /* out of memory: the bytes cannot be kept for later */
    return handshake_failed(c, r, "out of memory for the handshake", false);
  if (status) { /* over the size limit before the head ended */
    if (c->client)
      return handshake_failed(c, WSMSG_ERR_HANDSHAKE,
                              "handshake response too large", false);
    c->hs->len = 0;
    c->hs->nhdrs = 0;
    return wsm_conn_reject(c, status, "request too large", WSMSG_ERR_HANDSHAKE,
                           NULL);
  }
  if (r == 0)
    return 0;
  return c->client ? client_handshake(c) : server_handshake(c);
}

/* ---- bytes in ---- */

static int recv_bytes(wsmsg_conn *c, const void *bytes, size_t n) {
  if (c->failed || c->state == WSMSG_STATE_CLOSED || c->aborted)
    return WSMSG_ERR_CLOSED;
  const uint8_t *d = bytes;
  if (c->state == WSMSG_STATE_CONNECTING) {
    if (c->client && !c->request_built)
      return WSMSG_ERR_STATE; /* the request was not even sent */
    if (wsm_http_busy(c))     /* a response is being written: later */
      return wsm_http_stash(c, d, n);
    size_t used = 0;
    int r = feed_handshake(c, d, n, &used);
    if (!r && used < n && wsm_http_busy(c)) /* pipelined */
      return wsm_http_stash(c, d + used, n - used);
    if (r || c->state != WSMSG_STATE_OPEN)
      return r;
    d += used;
    n -= used;
  }
  if (n == 0)
    return 0;
  const wsmsg_endpoint *ep = c->ep;
  if (ep->t_receive || ep->t_ping || ep->t_message || ep->t_pong ||
      ep->t_idle || ep->rate_msgs || ep->rate_bytes)
    c->t_last_rx = wsm_now(c); /* one clock read per read, not per frame */
  int r = wsm_conn_acquire_parser(c);
  if (r) /* the bytes cannot be kept for later: the stream would be cut */
    return wsm_conn_fail(c, r, 1011, wsmsg_strerror(r));
  c->in_recv = true;
  r = wsm_rx_process(c, d, n);
  c->in_recv = false;
  wsm_conn_release_parser(c); /* kept if it produced output: consume
                                 returns it */
  wsm_conn_trim(c); /* between messages (or failed): the buffer goes back */
  if (r == 0 && c->error && c->failed)
    r = c->error;
  return r;
}

int wsmsg_conn_recv(wsmsg_conn *c, const void *bytes, size_t n) {
  if (!c || (!bytes && n))
    return WSMSG_ERR_INVALID_ARG;
  int r = recv_bytes(c, bytes, n);
  wsm_timers_touch(c); /* deadlines may have moved earlier */
  return r;
}

/* ---- queries ---- */

int wsmsg_conn_state(const wsmsg_conn *c) {
  if (!c)
    return WSMSG_STATE_CLOSED;
  if (c->state == WSMSG_STATE_OPEN && (c->close_sent || c->close_recv))
    return WSMSG_STATE_CLOSING;
  return c->state;
}

int wsmsg_conn_want_read(const wsmsg_conn *c) {
  return c && !c->failed && !c->aborted && c->state != WSMSG_STATE_CLOSED &&
         !wsm_http_busy(c);
}

int wsmsg_conn_done(const wsmsg_conn *c) {
  return !c || (c->state == WSMSG_STATE_CLOSED && c->out.len == c->out.off &&
                !wsm_http_body_pending(c));
}

void *wsmsg_conn_user(const wsmsg_conn *c) { return c ? c->user : NULL; }

void wsmsg_conn_set_user(wsmsg_conn *c, void *user) {
  if (c)
    c->user = user;
}

int wsmsg_conn_is_client(const wsmsg_conn *c) { return c && c->client; }

wsmsg_endpoint *wsmsg_conn_endpoint(const wsmsg_conn *c) {
  return c ? c->ep : NULL;
}

const char *wsmsg_conn_path(const wsmsg_conn *c) {
  return c && c->path ? c->path : "";
}

const char *wsmsg_conn_query(const wsmsg_conn *c) {
  return c && c->query ? c->query : "";
}

const char *wsmsg_conn_subprotocol(const wsmsg_conn *c) {
  return c ? c->subprotocol : NULL;
}

int wsmsg_conn_deflate(const wsmsg_conn *c) { return c && c->pmd.on; }

int wsmsg_conn_error(const wsmsg_conn *c) { return c ? c->error : 0; }

const char *wsmsg_conn_error_detail(const wsmsg_conn *c) {
  return c && c->detail ? c->detail : "";
}

int wsmsg_conn_http_status(const wsmsg_conn *c) {
  return c ? c->http_status : 0;
}
