/* Connections: the RFC 6455 state machine over wslay's frame layer.
 *
 * wslay_frame parses and builds frame headers and (un)masks payloads; this
 * file owns everything above: message reassembly, control frames, UTF-8,
 * limits, the close handshake, and delivery to callbacks or the event queue.
 * We use the frame layer rather than wslay_event because wslay_event rejects
 * the IANA close codes 1012-1014, copies every outgoing message into a
 * malloc'd buffer, and gives no hook for fragment limits or error reasons
 * (see docs/design.md). */
#include "internal.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#define MAX_RESPONSE_HEAD 16384
/* Streaming send: fragment size, and how much output may be pending before
 * the next fragment is pulled. */
#define STREAM_CHUNK 65536
#define STREAM_LOW 65536

/* ---- errors and close ------------------------------------------------------
 */

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

static void deliver_close(wsmsg_conn *c);

static const struct wslay_frame_callbacks frame_cbs;

/* Borrow a frame parser from the pool for as long as there is work. */
static int acquire_parser(wsmsg_conn *c) {
  if (c->slot)
    return 0;
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
static void release_parser(wsmsg_conn *c) {
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

static size_t buffered(const wsmsg_conn *c) {
  return c->out.len - c->out.off + c->deferred.len;
}

/* Frame a message (or a fragment) into the output.  Data frames go behind a
 * running stream (the deferred buffer); control frames never wait. */
static int queue_frame_ex(wsmsg_conn *c, uint8_t opcode, const uint8_t *data,
                          size_t len, bool fin, wsm_buf *sink) {
  struct wslay_frame_iocb io;
  memset(&io, 0, sizeof(io));
  io.fin = fin;
  io.opcode = opcode;
  io.mask = c->client ? 1 : 0;
  io.payload_length = len;
  io.data = data;
  io.data_length = len;
  /* room for the header and the payload in one step: the send callback then
   * never fails half-way through a frame */
  /* inside recv more replies are likely to follow (a pipelined batch):
   * start with 4 KiB; a one-off send takes the smallest class that fits */
  int r = wsm_pbuf_reserve_min(sink, c->pool, len + 14, c->in_recv ? 4096 : 0);
  if (r)
    return r;
  if ((r = acquire_parser(c)) != 0)
    return r;
  bool was_empty = c->out.len == c->out.off;
  c->sink = sink;
  ssize_t n = wslay_frame_send(c->slot->fr, &io);
  c->sink = &c->out; /* the parser stays while output is pending */
  if (n < 0 || (size_t)n != len)
    return WSMSG_ERR_NOMEM;
  if (was_empty && c->ep && c->ep->t_write) {
    c->t_write_progress = wsm_now(c);
    wsm_timers_touch(c);
  }
  return 0;
}

static int queue_frame(wsmsg_conn *c, uint8_t opcode, const uint8_t *data,
                       size_t len) {
  bool behind = c->stream_cb && opcode < 8; /* data waits for the stream */
  return queue_frame_ex(c, opcode, data, len, true,
                        behind ? &c->deferred : &c->out);
}

static int fail(wsmsg_conn *c, int err, unsigned code, const char *detail);

static void stream_end(wsmsg_conn *c, bool flush_deferred) {
  if (!c->stream_cb && !c->deferred.len)
    return;
  c->stream_cb = NULL;
  wsm_free(c->mem, c->stream_buf);
  c->stream_buf = NULL;
  bool lost =
      flush_deferred && c->deferred.len &&
      wsm_pbuf_append(&c->out, c->pool, c->deferred.p, c->deferred.len) != 0;
  wsm_pbuf_release(&c->deferred, c->pool);
  if (lost) /* messages the application was told were queued */
    fail(c, WSMSG_ERR_NOMEM, 1011, "out of memory");
}

/* The closing handshake starts now: the close timeout runs from here. */
static void mark_closing(wsmsg_conn *c) {
  if (!c->closing_timed && c->ep && c->ep->t_close) {
    c->closing_timed = true;
    c->t_close_start = wsm_now(c);
    wsm_timers_touch(c);
  }
}

static int queue_close_frame(wsmsg_conn *c, unsigned code, const char *reason,
                             size_t rlen) {
  uint8_t p[125];
  size_t n = 0;
  if (code) {
    p[0] = (uint8_t)(code >> 8);
    p[1] = (uint8_t)(code & 0xff);
    rlen = wsm_utf8_cut(reason ? reason : "", rlen, 123);
    if (rlen)
      memcpy(p + 2, reason, rlen);
    n = 2 + rlen;
  }
  c->close_sent = true;
  c->code_sent = (uint16_t)(code ? code : 1005);
  stream_end(c, false); /* an unfinished stream stays unfinished */
  mark_closing(c);
  return queue_frame(c, WSLAY_CONNECTION_CLOSE, p, n);
}

/* A peer broke a rule: send a close frame with `code`, stop reading, and
 * end the connection (RFC 6455 7.1.7: no more data is processed). */
static int fail(wsmsg_conn *c, int err, unsigned code, const char *detail) {
  wsm_conn_set_error(c, err, detail);
  c->failed = true;
  stream_end(c, false);
  mark_closing(c);
  if (!c->close_sent && c->state != WSMSG_STATE_CONNECTING)
    (void)queue_close_frame(c, code, detail, strlen(detail));
  else if (!c->close_sent)
    c->code_sent = (uint16_t)code;
  c->state = WSMSG_STATE_CLOSED;
  /* mark_closing touched the timer set while the state still said OPEN:
   * tell it again, now that the close timeout is the deadline (a failure
   * in a send or in pending() is followed by no recv or tick that would) */
  wsm_timers_touch(c);
  deliver_close(c);
  return err;
}

/* ---- events
 * ------------------------------------------------------------------ */

wsm_evnode *wsm_ev_alloc(wsmsg_conn *c, int type, size_t extra) {
  size_t size = sizeof(wsm_evnode) + extra;
  wsm_evnode *n = wsm_malloc(c->mem, size);
  if (!n)
    return NULL;
  memset(n, 0, sizeof(*n));
  n->size = size;
  n->ev.type = type;
  return n;
}

static void ev_free(wsmsg_conn *c, wsm_evnode *n) {
  if (!n)
    return;
  json_decref(n->ev.json);
  wsm_free(c->mem, n);
}

static void ev_link(wsmsg_conn *c, wsm_evnode *n) {
  c->ev_bytes += n->size;
  if (c->ev_tail)
    c->ev_tail->next = n;
  else
    c->ev_head = n;
  c->ev_tail = n;
  c->nev++;
}

/* Queue an event, unless the application is not reading its events: then
 * the connection fails (a peer must not grow memory through a kind of
 * message nobody handles). */
bool wsm_ev_push(wsmsg_conn *c, wsm_evnode *n) {
  const wsmsg_endpoint *ep = c->ep;
  if (ep &&
      ((ep->max_events && c->nev >= ep->max_events) ||
       (ep->max_event_bytes && c->ev_bytes + n->size > ep->max_event_bytes))) {
    ev_free(c, n);
    fail(c, WSMSG_ERR_BACKPRESSURE, 1008,
         "event queue full: the application is not reading events");
    return false;
  }
  ev_link(c, n);
  return true;
}

static int ev_queue_data(wsmsg_conn *c, int type, const uint8_t *d,
                         size_t len) {
  wsm_evnode *n = wsm_ev_alloc(c, type, len + 1);
  if (!n)
    return WSMSG_ERR_NOMEM;
  if (len)
    memcpy(n->data, d, len);
  n->data[len] = '\0';
  n->ev.data = n->data;
  n->ev.len = len;
  return wsm_ev_push(c, n) ? 0 : WSMSG_ERR_BACKPRESSURE;
}

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
  ci->reason = c->reason_recv ? c->reason_recv : "";
  ci->reason_len = c->reason_recv ? c->reason_recv_len : 0;
  ci->detail = c->detail ? c->detail : "";
}

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
  if (c->ep && c->ep->on_close) {
    c->ep->on_close(c, &ci, c->user);
    return;
  }
  size_t dl = strlen(ci.detail);
  wsm_evnode *n = wsm_ev_alloc(c, WSMSG_EV_CLOSE, ci.reason_len + dl + 2);
  if (!n)
    return;
  memcpy(n->data, ci.reason, ci.reason_len);
  n->data[ci.reason_len] = '\0';
  memcpy(n->data + ci.reason_len + 1, ci.detail, dl + 1);
  n->ev.code = ci.code;
  n->ev.clean = ci.clean;
  n->ev.error = ci.error;
  n->ev.data = n->data;
  n->ev.len = ci.reason_len;
  n->ev.detail = (const char *)n->data + ci.reason_len + 1;
  ev_link(c, n); /* the last event: never refused */
}

/* ---- wslay callbacks
 * ------------------------------------------------------------ */

static ssize_t cb_send(const uint8_t *data, size_t len, int flags, void *ud) {
  (void)flags;
  wsmsg_conn *c = ((wsm_slot *)ud)->conn;
  wsm_buf *b = c->sink;
  if (b->cap - b->len >= len) { /* reserved by queue_frame_ex */
    memcpy(b->p + b->len, data, len);
    b->len += len;
    return (ssize_t)len;
  }
  if (wsm_pbuf_append(c->sink, c->pool, data, len))
    return WSLAY_ERR_WOULDBLOCK; /* nothing accepted: wslay fails the frame */
  return (ssize_t)len;
}

enum { RX_HDR, RX_EMIT, RX_PAY };

/* Frame header helpers, from the second header byte on: how many extended
 * length bytes follow it, and the payload length once they are all in. */
static unsigned hdr_ext(uint8_t b1) {
  unsigned l7 = b1 & 127u;
  return l7 == 127 ? 8u : l7 == 126 ? 2u : 0u;
}
static uint64_t hdr_payload_len(const uint8_t *h) {
  uint64_t v = h[1] & 127u;
  unsigned ext = hdr_ext(h[1]);
  if (ext)
    v = 0;
  for (unsigned i = 0; i < ext; i++)
    v = v << 8 | h[2 + i];
  return v;
}

/* XOR n bytes with the mask key, starting `phase` bytes into it, 32 and 8
 * bytes at a time (wslay's own loop does one byte per step). */
static void unmask_copy(uint8_t *dst, const uint8_t *src, size_t n,
                        const uint8_t key[4], unsigned phase) {
  uint8_t k12[12];
  memcpy(k12, key, 4);
  memcpy(k12 + 4, key, 4);
  memcpy(k12 + 8, key, 4);
  const uint8_t *k8 = k12 + phase; /* the key from `phase` on, twice */
  uint64_t m;
  memcpy(&m, k8, 8);
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    uint64_t v[4];
    memcpy(v, src + i, 32);
    v[0] ^= m;
    v[1] ^= m;
    v[2] ^= m;
    v[3] ^= m;
    memcpy(dst + i, v, 32);
  }
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    memcpy(&v, src + i, 8);
    v ^= m;
    memcpy(dst + i, &v, 8);
  }
  for (; i < n; i++)
    dst[i] = src[i] ^ k8[i & 7];
}

/* Server role: copy client frames into wslay's buffer with the masking
 * undone, the mask bit cleared and the key left out, so wslay reads plain
 * frames.  A header is given to wslay only with its first payload byte (or
 * alone when the payload is empty): between reads wslay then never holds a
 * frame it has not reported.  A header cut by the end of the input is
 * collected in rx_hdr, where check_rx_header judges it.  An unmasked frame
 * stops the feed at its second byte; process_frames fails the connection
 * once wslay has reported everything before it. */
static size_t rx_feed(wsmsg_conn *c, uint8_t *buf, size_t len) {
  const uint8_t *in = c->in;
  size_t avail = c->in_len, w = 0;
  while (w < len) {
    if (c->rx_state == RX_PAY) {
      size_t k = len - w;
      if (k > avail)
        k = avail;
      if (k > c->rx_left)
        k = (size_t)c->rx_left;
      if (k == 0)
        break;
      unmask_copy(buf + w, in, k, c->rx_key, c->rx_phase);
      c->rx_phase = (uint8_t)((c->rx_phase + k) & 3);
      in += k;
      avail -= k;
      w += k;
      if ((c->rx_left -= k) != 0)
        break; /* out of input or of room */
      c->rx_state = RX_HDR;
      continue;
    }
    if (c->rx_state == RX_HDR && c->rx_hlen == 0 && avail >= 6 &&
        (in[1] & 0x80)) {
      /* fast path: a whole masked header with a payload byte after it */
      unsigned ext = hdr_ext(in[1]);
      size_t hl = 2u + ext;
      uint64_t pl = avail >= hl + 4 ? hdr_payload_len(in) : 0;
      if (avail > hl + 4 - (pl == 0) && len - w >= hl) {
        buf[w] = in[0];
        buf[w + 1] = (uint8_t)(in[1] & 0x7f);
        if (ext == 2)
          memcpy(buf + w + 2, in + 2, 2);
        else if (ext == 8)
          memcpy(buf + w + 2, in + 2, 8);
        memcpy(c->rx_key, in + hl, 4);
        w += hl;
        in += hl + 4;
        avail -= hl + 4;
        c->rx_left = pl;
        c->rx_phase = 0;
        c->rx_state = pl ? RX_PAY : RX_HDR;
        continue;
      }
    }
    if (c->rx_state == RX_HDR) { /* a byte of a header */
      if (avail == 0 || c->rx_unmasked)
        break;
      c->rx_hdr[c->rx_hlen++] = *in++;
      avail--;
      if (c->rx_hlen == 2) {
        uint8_t b1 = c->rx_hdr[1];
        if (!(b1 & 0x80)) {
          c->rx_unmasked = true; /* reported by process_frames */
          break;
        }
        c->rx_need = (uint8_t)(6u + hdr_ext(b1));
      }
      if (c->rx_hlen == c->rx_need) {
        memcpy(c->rx_key, c->rx_hdr + c->rx_need - 4, 4);
        c->rx_left = hdr_payload_len(c->rx_hdr);
        c->rx_phase = 0;
        c->rx_out = 0;
        c->rx_state = RX_EMIT;
      }
      continue;
    }
    /* RX_EMIT: give wslay the collected header, without its key */
    if (c->rx_left && avail == 0)
      break; /* wait for the first payload byte */
    unsigned hl = c->rx_need - 4u;
    while (c->rx_out < hl && w < len) {
      uint8_t b = c->rx_hdr[c->rx_out];
      buf[w++] = c->rx_out == 1 ? (uint8_t)(b & 0x7f) : b;
      c->rx_out++;
    }
    if (c->rx_out == hl) {
      c->rx_hlen = c->rx_need = 0;
      c->rx_state = c->rx_left ? RX_PAY : RX_HDR;
    }
  }
  c->in = in;
  c->in_len = avail;
  return w;
}

static ssize_t cb_recv(uint8_t *buf, size_t len, int flags, void *ud) {
  (void)flags;
  wsmsg_conn *c = ((wsm_slot *)ud)->conn;
  if (!c->client) {
    size_t w = rx_feed(c, buf, len);
    c->in_fed += w;
    return (ssize_t)w;
  }
  size_t n = c->in_len < len ? c->in_len : len;
  if (n == 0)
    return 0;
  memcpy(buf, c->in, n);
  c->in += n;
  c->in_len -= n;
  c->in_fed += n;
  return (ssize_t)n;
}

static int cb_genmask(uint8_t *buf, size_t len, void *ud) {
  wsmsg_conn *c = ((wsm_slot *)ud)->conn;
  wsm_client_hs *ch = c->chs;
  /* masking keys come from getrandom in batches, not a syscall per frame */
  if (ch->maskpos + len > sizeof(ch->masks)) {
    if (getrandom(ch->masks, sizeof(ch->masks), 0) !=
        (ssize_t)sizeof(ch->masks))
      return -1;
    ch->maskpos = 0;
  }
  memcpy(buf, ch->masks + ch->maskpos, len);
  ch->maskpos = (uint16_t)(ch->maskpos + len);
  return 0;
}

static const struct wslay_frame_callbacks frame_cbs = {cb_send, cb_recv,
                                                       cb_genmask};

/* ---- creation
 * ------------------------------------------------------------------ */

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
  c->hs->max_headers = 256;
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
  if (c->slot)
    wsm_pool_put_slot(c->pool, c->slot,
                      !c->in_frame && c->in_fed == c->in_used);
  wsm_http_free(c->hs, m);
  free_client_hs(c);
  wsm_free(m, c->chs);
  wsm_pbuf_release(&c->out, c->pool);
  wsm_pbuf_release(&c->msg, c->pool);
  wsm_pbuf_release(&c->deferred, c->pool);
  wsm_free(m, c->stream_buf);
  wsm_free(m, c->path);
  wsm_free(m, c->detail);
  wsm_free(m, c->reason_recv);
  wsm_evnode *n = c->ev_head;
  while (n) {
    wsm_evnode *nx = n->next;
    ev_free(c, n);
    n = nx;
  }
  ev_free(c, c->ev_cur);
  wsmsg_verrors_free(c->verrs);
  wsm_free(m, c);
}

int wsm_conn_opened(wsmsg_conn *c) {
  wsm_http_free(c->hs, c->mem);
  c->hs = NULL;
  free_client_hs(c);
  c->state = WSMSG_STATE_OPEN;
  c->opened = true;
  c->t_last_msg = c->t_last_rx = wsm_now(c);
  if (c->ep->on_open) {
    c->ep->on_open(c, c->user);
    return 0;
  }
  int r = ev_queue_data(c, WSMSG_EV_OPEN, NULL, 0);
  if (r && !c->failed) /* the host would never learn it opened */
    return fail(c, r, 1011, wsmsg_strerror(r));
  return r;
}

/* ---- receiving frames
 * ------------------------------------------------------------- */

static int deliver_message(wsmsg_conn *c, uint8_t op, uint8_t *d, size_t len) {
  const wsmsg_endpoint *ep = c->ep;
  c->t_last_msg = c->t_last_rx;
  if (op == WSLAY_TEXT_FRAME) {
    if (ep->json)
      return wsm_json_deliver(c, (const char *)d, len);
    if (ep->on_text) {
      /* sending this very text back (an echo) needs no second UTF-8 pass */
      c->valid_text = d;
      c->valid_text_len = len;
      ep->on_text(c, (const char *)d, len, c->user);
      c->valid_text = NULL;
      return 0;
    }
    return ev_queue_data(c, WSMSG_EV_TEXT, d, len);
  }
  if (ep->on_binary) {
    ep->on_binary(c, d, len, c->user);
    return 0;
  }
  return ev_queue_data(c, WSMSG_EV_BINARY, d, len);
}

#define LEN_UNKNOWN UINT64_MAX

/* Does this kind of message go to on_chunk rather than a buffer? */
static bool stream_kind(const wsmsg_conn *c, uint8_t op) {
  return c->ep->on_chunk &&
         (c->ep->stream_kinds &
          (op == WSLAY_TEXT_FRAME ? WSMSG_STREAM_TEXT : WSMSG_STREAM_BINARY));
}

/* Check a frame header against every rule a peer can break; `mask` is -1
 * and `len` LEN_UNKNOWN while those header bytes have not arrived.  No side
 * effect unless it fails the connection. */
static int check_header(wsmsg_conn *c, int fin, int rsv, int op, int mask,
                        uint64_t len) {
  char why[96];
  if (rsv)
    return fail(c, WSMSG_ERR_PROTOCOL, 1002, "reserved bits set");
  if (mask >= 0 && mask != (c->client ? 0 : 1))
    return fail(c, WSMSG_ERR_PROTOCOL, 1002,
                c->client ? "masked frame from server"
                          : "unmasked frame from client");
  if (op >= 8) {
    if (op > WSLAY_PONG)
      return fail(c, WSMSG_ERR_PROTOCOL, 1002, "reserved control opcode");
    if (!fin)
      return fail(c, WSMSG_ERR_PROTOCOL, 1002, "fragmented control frame");
    if (len != LEN_UNKNOWN && len > 125)
      return fail(c, WSMSG_ERR_PROTOCOL, 1002,
                  "control frame payload over 125 bytes");
    if (op == WSLAY_CONNECTION_CLOSE && len == 1)
      return fail(c, WSMSG_ERR_PROTOCOL, 1002,
                  "close frame with 1-byte payload");
    return 0;
  }
  if (op == WSLAY_CONTINUATION_FRAME) {
    if (!c->msg_op)
      return fail(c, WSMSG_ERR_PROTOCOL, 1002,
                  "continuation frame without a message");
  } else if (op == WSLAY_TEXT_FRAME || op == WSLAY_BINARY_FRAME) {
    if (c->msg_op)
      return fail(c, WSMSG_ERR_PROTOCOL, 1002,
                  "new message inside a fragmented message");
  } else {
    return fail(c, WSMSG_ERR_PROTOCOL, 1002, "reserved data opcode");
  }
  bool first = op != WSLAY_CONTINUATION_FRAME;
  const wsmsg_endpoint *ep = c->ep;
  if (ep->max_fragments && (first ? 0 : c->nfrag) + 1 > ep->max_fragments) {
    snprintf(why, sizeof(why), "more than %u fragments in a message",
             ep->max_fragments);
    return fail(c, WSMSG_ERR_TOO_MANY_FRAGMENTS, 1009, why);
  }
  if (len != LEN_UNKNOWN) {
    uint64_t total = (first ? 0 : c->msg_total) + len;
    if ((ep->max_message && total > ep->max_message) ||
        (!stream_kind(c, (uint8_t)(first ? op : c->msg_op)) &&
         total >= SIZE_MAX / 2)) {
      snprintf(why, sizeof(why),
               "message of %llu+ bytes over the limit of %llu",
               (unsigned long long)total, (unsigned long long)ep->max_message);
      return fail(c, WSMSG_ERR_TOO_BIG, 1009, why);
    }
  }
  return 0;
}

static int frame_start(wsmsg_conn *c, const struct wslay_frame_iocb *io) {
  /* the server's frames reach wslay unmasked by rx_feed, which stops at an
   * unmasked one: every frame wslay reports there was masked */
  int r = check_header(c, io->fin, io->rsv, io->opcode,
                       c->client ? io->mask : 1, io->payload_length);
  if (r)
    return r;
  uint8_t op = io->opcode;
  uint64_t pl = io->payload_length;
  c->in_used += 2u +
                (pl >= 65536 ? 8u
                 : pl >= 126 ? 2u
                             : 0u) +
                (io->mask ? 4u : 0u) + pl;
  c->hdr_len = 0;
  c->fr_op = op;
  c->fr_fin = io->fin;
  c->fr_len = pl;
  c->fr_off = 0;
  if (op >= 8) {
    c->ctl_len = 0;
    return 0;
  }
  if (op != WSLAY_CONTINUATION_FRAME) {
    c->msg_op = op;
    c->t_msg_start = c->t_last_rx;
    c->msg_stream = stream_kind(c, op);
    c->msg_first = true;
    c->nfrag = 0;
    c->msg_total = 0;
    c->utf8 = WSM_UTF8_ACCEPT;
    c->msg.len = c->msg.off = 0;
  }
  c->nfrag++;
  c->msg_total += pl;
  return 0;
}

static int check_header_bytes(wsmsg_conn *c, const uint8_t *h, uint64_t k);

/* Client role.  The parser stopped on a frame header without payload yet (wslay
 * reports a frame with its first payload byte): the unframed tail of the input
 * is that partial header.  Judge what of it arrived now, so a bad header is
 * refused at once instead of when (if ever) its payload comes. */
static int check_partial_header(wsmsg_conn *c, const uint8_t *d, size_t n) {
  uint64_t k = c->in_fed - c->in_used;
  if (c->in_frame || k == 0 || k > sizeof(c->slot->hdr))
    return 0;
  if (k <= n) {
    memcpy(c->slot->hdr, d + n - k, (size_t)k);
  } else { /* the header started in an earlier read */
    if (c->hdr_len != k - n)
      return 0;
    memcpy(c->slot->hdr + c->hdr_len, d, n);
  }
  c->hdr_len = (uint8_t)k;
  return check_header_bytes(c, c->slot->hdr, k);
}

/* Server role: judge the header rx_feed holds (a partial one, or a whole
 * one waiting for its payload). */
static int check_rx_header(wsmsg_conn *c) {
  if (c->rx_state == RX_PAY || c->rx_hlen == 0)
    return 0;
  return check_header_bytes(c, c->rx_hdr, c->rx_hlen);
}

/* Judge the first k bytes of a frame header as they arrived. */
static int check_header_bytes(wsmsg_conn *c, const uint8_t *h, uint64_t k) {
  int fin = h[0] >> 7, rsv = (h[0] >> 4) & 7, op = h[0] & 15, mask = -1;
  uint64_t len = LEN_UNKNOWN;
  if (k >= 2) {
    mask = h[1] >> 7;
    unsigned l7 = h[1] & 127;
    if (l7 < 126 || op >= 8) /* 126, 127: over the control limit */
      len = l7;
    else if (l7 == 127 && k >= 3 && (h[2] & 0x80))
      return fail(c, WSMSG_ERR_PROTOCOL, 1002,
                  "64-bit length with top bit set");
    else if (k >= 2u + hdr_ext(h[1]))
      len = hdr_payload_len(h);
  }
  return check_header(c, fin, rsv, op, mask, len);
}
static int handle_close_frame(wsmsg_conn *c) {
  unsigned code = 0;
  const char *reason = "";
  size_t rlen = 0;
  if (c->ctl_len == 1)
    return fail(c, WSMSG_ERR_PROTOCOL, 1002, "close frame with 1-byte payload");
  if (c->ctl_len >= 2) {
    code = (unsigned)(c->slot->ctl[0] << 8 | c->slot->ctl[1]);
    if (!wsm_close_code_valid_wire(code)) {
      char why[64];
      snprintf(why, sizeof(why), "invalid close code %u", code);
      return fail(c, WSMSG_ERR_CLOSE_CODE, 1002, why);
    }
    reason = (const char *)c->slot->ctl + 2;
    rlen = c->ctl_len - 2u;
    if (!wsmsg_utf8_valid(reason, rlen))
      return fail(c, WSMSG_ERR_UTF8, 1007, "close reason is not UTF-8");
  }
  c->close_recv = true;
  mark_closing(c);
  c->remote_first = !c->close_sent;
  c->code_recv = (uint16_t)code;
  c->reason_recv = wsm_strndup(c->mem, reason, rlen);
  c->reason_recv_len = c->reason_recv ? rlen : 0;
  if (!c->close_sent) /* echo the code, as RFC 6455 5.5.1 suggests */
    (void)queue_close_frame(c, code, reason, rlen);
  c->state = WSMSG_STATE_CLOSED;
  deliver_close(c);
  return 0;
}

static int frame_end(wsmsg_conn *c) {
  uint8_t op = c->fr_op;
  if (op == WSLAY_CONNECTION_CLOSE)
    return handle_close_frame(c);
  if (op == WSLAY_PING) {
    /* above the high mark a peer that pings but does not read gets no
     * pong (RFC 6455 5.5.3 allows answering only the latest ping) */
    if (!c->close_sent && !(c->ep->bp_high && buffered(c) >= c->ep->bp_high))
      return queue_frame(c, WSLAY_PONG, c->slot->ctl, c->ctl_len);
    return 0;
  }
  if (op == WSLAY_PONG) {
    if (c->ctl_len == 8 && c->ping_seq) {
      uint64_t seq = 0;
      for (int i = 0; i < 8; i++)
        seq = seq << 8 | c->slot->ctl[i];
      if (seq == c->ping_seq) { /* the answer to our keepalive ping */
        c->rtt = (int64_t)(c->t_last_rx - c->t_ping_sent);
        c->ping_outstanding = false;
      }
    }
    if (c->ep->on_pong)
      c->ep->on_pong(c, c->slot->ctl, c->ctl_len, c->user);
    else if (c->ep->pong_events)
      return ev_queue_data(c, WSMSG_EV_PONG, c->slot->ctl, c->ctl_len);
    return 0;
  }
  if (!c->fr_fin)
    return 0;
  /* last frame of a data message */
  if (c->msg_op == WSLAY_TEXT_FRAME && c->utf8 != WSM_UTF8_ACCEPT)
    return fail(c, WSMSG_ERR_UTF8, 1007,
                "text message ends inside a character");
  uint8_t mop = c->msg_op;
  c->msg_op = 0;
  if (mop == WSLAY_TEXT_FRAME) { /* text is NUL-terminated for on_text */
    int r = wsm_pbuf_reserve(&c->msg, c->pool, 1);
    if (r)
      return fail(c, r, 1011, "out of memory");
    c->msg.p[c->msg.len] = '\0';
  }
  size_t len = c->msg.len;
  c->msg.len = 0;
  static uint8_t empty[1]; /* an empty binary message has no buffer */
  return deliver_message(c, mop, c->msg.p ? c->msg.p : empty, len);
}

static int frame_data(wsmsg_conn *c, const uint8_t *d, size_t n) {
  if (c->fr_op >= 8) {
    memcpy(c->slot->ctl + c->ctl_len, d, n); /* wslay caps control payloads */
    c->ctl_len = (uint8_t)(c->ctl_len + n);
    return 0;
  }
  if (c->msg_op == WSLAY_TEXT_FRAME) {
    c->utf8 = wsm_utf8_feed(c->utf8, d, n);
    if (c->utf8 == WSM_UTF8_REJECT)
      return fail(c, WSMSG_ERR_UTF8, 1007, "invalid UTF-8 in text message");
  }
  size_t nul = c->msg_op == WSLAY_TEXT_FRAME; /* room for on_text's NUL */
  if (c->msg.cap - c->msg.len < n + nul) {
    /* reserve the whole frame at once when it is small, else grow */
    uint64_t rest = c->fr_len - c->fr_off + nul;
    size_t want = rest <= 65536 ? (size_t)rest : n + nul;
    if (wsm_pbuf_reserve(&c->msg, c->pool, want))
      return fail(c, WSMSG_ERR_NOMEM, 1011, "out of memory");
  }
  memcpy(c->msg.p + c->msg.len, d, n);
  c->msg.len += n;
  return 0;
}

/* Streaming receive: hand a piece of the current data frame to on_chunk. */
static int stream_piece(wsmsg_conn *c, const uint8_t *d, size_t n) {
  c->fr_off += n;
  bool frame_done = c->fr_off == c->fr_len;
  bool final = frame_done && c->fr_fin;
  if (frame_done)
    c->in_frame = false;
  if (c->msg_op == WSLAY_TEXT_FRAME) {
    c->utf8 = wsm_utf8_feed(c->utf8, d, n);
    if (c->utf8 == WSM_UTF8_REJECT)
      return fail(c, WSMSG_ERR_UTF8, 1007, "invalid UTF-8 in text message");
    if (final && c->utf8 != WSM_UTF8_ACCEPT)
      return fail(c, WSMSG_ERR_UTF8, 1007,
                  "text message ends inside a character");
  }
  if (n == 0 && !c->msg_first && !final)
    return 0;
  int type = c->msg_op == WSLAY_TEXT_FRAME ? WSMSG_EV_TEXT : WSMSG_EV_BINARY;
  bool first = c->msg_first;
  c->msg_first = false;
  if (final) {
    c->msg_op = 0;
    c->t_last_msg = c->t_last_rx;
  }
  c->ep->on_chunk(c, type, d, n, first, final, c->user);
  return 0;
}

static int process_frames(wsmsg_conn *c) {
  int r = 0;
  while (!c->failed && c->state != WSMSG_STATE_CLOSED) {
    struct wslay_frame_iocb io;
    memset(&io, 0, sizeof(io));
    ssize_t n = wslay_frame_recv(c->slot->fr, &io);
    if (n == WSLAY_ERR_WANT_READ) {
      if (c->rx_unmasked) /* every frame before it is handled */
        return check_header_bytes(c, c->rx_hdr, c->rx_hlen);
      if (c->in_len == 0)
        break;
      continue;
    }
    if (n < 0)
      return fail(c, WSMSG_ERR_PROTOCOL, 1002,
                  "invalid frame header (length or control frame)");
    if (!c->in_frame) {
      c->in_frame = true;
      if ((r = frame_start(c, &io)) != 0)
        return r;
    }
    if (c->fr_op < 8 && c->msg_stream) {
      if ((r = stream_piece(c, io.data, io.data_length)) != 0)
        return r;
      continue;
    }
    /* fast path: a whole unfragmented binary message in wslay's buffer is
     * delivered without copying */
    if (c->fr_op == WSLAY_BINARY_FRAME && c->fr_fin && c->fr_off == 0 &&
        io.data_length == c->fr_len && c->ep->on_binary) {
      c->in_frame = false;
      c->msg_op = 0;
      c->t_last_msg = c->t_last_rx;
      c->ep->on_binary(c, io.data, io.data_length, c->user);
      continue;
    }
    if (io.data_length && (r = frame_data(c, io.data, io.data_length)) != 0)
      return r;
    c->fr_off += io.data_length;
    if (c->fr_off == c->fr_len) {
      c->in_frame = false;
      if ((r = frame_end(c)) != 0)
        return r;
    }
  }
  return r;
}

/* ---- bytes in
 * ---------------------------------------------------------------------- */

static int feed_handshake(wsmsg_conn *c, const uint8_t *d, size_t n,
                          size_t *used) {
  int r = wsm_http_feed(c->hs, c->mem, d, n, used);
  if (r < 0) { /* out of memory: the bytes cannot be kept for later */
    wsm_conn_set_error(c, r, "out of memory for the handshake");
    c->failed = true;
    c->state = WSMSG_STATE_CLOSED;
    c->out.off = c->out.len = 0;
    deliver_close(c); /* clients report it */
    return r;
  }
  if (c->client) {
    if (r == 0)
      return 0;
    if (r != 1) {
      wsm_conn_set_error(c, WSMSG_ERR_HANDSHAKE,
                         "handshake response too large");
      r = WSMSG_ERR_HANDSHAKE;
    } else {
      r = wsm_hs_client_verify(c);
    }
    if (r) {
      c->failed = true;
      c->state = WSMSG_STATE_CLOSED;
      c->out.off = c->out.len = 0;
      deliver_close(c);
      return r;
    }
    return wsm_conn_opened(c);
  }
  if (r == 0)
    return 0;
  if (r != 1) {
    /* over the size limit before the head ended */
    wsm_http *h = c->hs;
    h->len = 0;
    h->nhdrs = 0;
    c->failed = true;
    char resp[200];
    int k = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 431 %s\r\nContent-Type: text/plain\r\n"
                     "Content-Length: 18\r\nConnection: close\r\n\r\n"
                     "request too large\n",
                     wsm_http_reason(431));
    (void)wsm_pbuf_append(&c->out, c->pool, resp, (size_t)k);
    c->http_status = 431;
    wsm_conn_set_error(c, WSMSG_ERR_HANDSHAKE,
                       "handshake rejected with 431: request too large");
    c->state = WSMSG_STATE_CLOSED;
    return WSMSG_ERR_HANDSHAKE;
  }
  r = wsm_hs_server_respond(c);
  if (r > 0) {
    c->failed = true;
    return WSMSG_ERR_HANDSHAKE;
  }
  return r;
}

static int recv_bytes(wsmsg_conn *c, const void *bytes, size_t n) {
  if (c->failed || c->state == WSMSG_STATE_CLOSED || c->aborted)
    return WSMSG_ERR_CLOSED;
  const uint8_t *d = bytes;
  if (c->state == WSMSG_STATE_CONNECTING) {
    if (c->client && !c->request_built)
      return WSMSG_ERR_STATE; /* the request was not even sent */
    size_t used = 0;
    int r = feed_handshake(c, d, n, &used);
    if (r || c->state != WSMSG_STATE_OPEN)
      return r;
    d += used;
    n -= used;
  }
  if (n == 0)
    return 0;
  const wsmsg_endpoint *ep = c->ep;
  if (ep->t_receive || ep->t_ping || ep->t_message || ep->t_pong)
    c->t_last_rx = wsm_now(c); /* one clock read per read, not per frame */
  int r = acquire_parser(c);
  if (r) /* the bytes cannot be kept for later: the stream would be cut */
    return fail(c, r, 1011, wsmsg_strerror(r));
  c->in = d;
  c->in_len = n;
  c->in_recv = true;
  r = process_frames(c);
  if (r && !c->failed && c->state != WSMSG_STATE_CLOSED)
    /* out of memory for an event or a pong: the message is lost and the
     * rest of the input unread, so the connection cannot go on */
    r = fail(c, r, 1011, wsmsg_strerror(r));
  if (r == 0 && !c->failed && c->state != WSMSG_STATE_CLOSED)
    r = c->client ? check_partial_header(c, d, n) : check_rx_header(c);
  c->in_recv = false;
  c->in = NULL;
  c->in_len = 0;
  release_parser(c); /* kept if it produced output: consume returns it */
  if (!c->msg_op && c->msg.cap) /* between messages: give the buffer back */
    wsm_pbuf_release(&c->msg, c->pool);
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

void wsmsg_conn_eof(wsmsg_conn *c) {
  if (!c || c->state == WSMSG_STATE_CLOSED)
    return;
  wsm_conn_set_error(c, WSMSG_ERR_EOF,
                     "peer closed the TCP connection without a close frame");
  c->state = WSMSG_STATE_CLOSED;
  stream_end(c, false); /* a closed connection pulls nothing more */
  /* output already queued is kept: a half-closed peer may still read it */
  deliver_close(c);
}

void wsm_conn_abort_err(wsmsg_conn *c, int err, const char *detail) {
  c->out.off = c->out.len = 0;
  c->aborted = true;
  stream_end(c, false); /* else pending() would pull fragments again */
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

/* ---- bytes out
 * ------------------------------------------------------------------------- */

/* Pull fragments from the stream source while little output is pending. */
static void stream_pull(wsmsg_conn *c) {
  for (int guard = 0; guard < 64; guard++) {
    if (!c->stream_cb || c->stream_paused ||
        c->out.len - c->out.off >= STREAM_LOW)
      return;
    int eof = 0;
    int64_t n =
        c->stream_cb(c, c->stream_buf, STREAM_CHUNK, &eof, c->stream_user);
    if (n < 0 || n > STREAM_CHUNK) {
      fail(c, WSMSG_ERR_ABORTED, 1011, "stream source failed");
      return;
    }
    if (n == 0 && !eof) {
      c->stream_paused = true;
      return;
    }
    if (c->stream_text) {
      c->stream_utf8 = wsm_utf8_feed(c->stream_utf8, c->stream_buf, (size_t)n);
      if (c->stream_utf8 == WSM_UTF8_REJECT ||
          (eof && c->stream_utf8 != WSM_UTF8_ACCEPT)) {
        fail(c, WSMSG_ERR_UTF8, 1011, "stream source gave invalid UTF-8");
        return;
      }
    }
    uint8_t op = c->stream_op;
    c->stream_op = WSLAY_CONTINUATION_FRAME;
    if (queue_frame_ex(c, op, c->stream_buf, (size_t)n, eof != 0, &c->out)) {
      fail(c, WSMSG_ERR_NOMEM, 1011, "out of memory");
      return;
    }
    if (eof)
      stream_end(c, true);
  }
}

size_t wsmsg_conn_pending(wsmsg_conn *c, const void **bytes) {
  if (!c) {
    if (bytes)
      *bytes = NULL;
    return 0;
  }
  if (c->client && !c->request_built && c->state == WSMSG_STATE_CONNECTING &&
      !c->aborted) {
    c->request_built = true;
    if (wsm_hs_client_request(c) != 0) {
      wsm_conn_set_error(c, WSMSG_ERR_NOMEM, "cannot build the request");
      c->failed = true;
      c->state = WSMSG_STATE_CLOSED;
      c->out.off = c->out.len = 0;
      deliver_close(c);
    }
  }
  stream_pull(c);
  if (bytes)
    *bytes = c->out.p ? c->out.p + c->out.off : NULL;
  return c->out.len - c->out.off;
}

void wsmsg_conn_consume(wsmsg_conn *c, size_t n) {
  if (!c)
    return;
  size_t avail = c->out.len - c->out.off;
  c->out.off += n < avail ? n : avail;
  if (c->out.off == c->out.len) { /* idle connections hold nothing */
    wsm_pbuf_release(&c->out, c->pool);
    release_parser(c);
  }
  if (n && c->ep && c->ep->t_write)
    c->t_write_progress = wsm_now(c);
  if (c->bp_blocked && buffered(c) < c->ep->bp_low) {
    c->bp_blocked = false;
    if (c->ep->on_drain)
      c->ep->on_drain(c, c->user);
    else
      (void)ev_queue_data(c, WSMSG_EV_DRAIN, NULL, 0);
  }
}

/* ---- queries
 * ----------------------------------------------------------------------------
 */

int wsmsg_conn_state(const wsmsg_conn *c) {
  if (!c)
    return WSMSG_STATE_CLOSED;
  if (c->state == WSMSG_STATE_OPEN && (c->close_sent || c->close_recv))
    return WSMSG_STATE_CLOSING;
  return c->state;
}

int wsmsg_conn_want_write(const wsmsg_conn *c) {
  if (!c)
    return 0;
  if (c->client && !c->request_built && c->state == WSMSG_STATE_CONNECTING)
    return 1;
  if (c->stream_cb && !c->stream_paused)
    return 1;
  return c->out.len > c->out.off;
}

int wsmsg_conn_want_read(const wsmsg_conn *c) {
  return c && !c->failed && !c->aborted && c->state != WSMSG_STATE_CLOSED;
}

int wsmsg_conn_done(const wsmsg_conn *c) {
  return !c || (c->state == WSMSG_STATE_CLOSED && c->out.len == c->out.off);
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

int wsmsg_conn_error(const wsmsg_conn *c) { return c ? c->error : 0; }

const char *wsmsg_conn_error_detail(const wsmsg_conn *c) {
  return c && c->detail ? c->detail : "";
}

int wsmsg_conn_http_status(const wsmsg_conn *c) {
  return c ? c->http_status : 0;
}

int wsmsg_conn_next_event(wsmsg_conn *c, wsmsg_event *ev) {
  if (!c || !ev)
    return WSMSG_ERR_INVALID_ARG;
  ev_free(c, c->ev_cur);
  c->ev_cur = NULL;
  wsm_evnode *n = c->ev_head;
  if (!n) {
    memset(ev, 0, sizeof(*ev));
    return 0;
  }
  c->ev_head = n->next;
  if (!c->ev_head)
    c->ev_tail = NULL;
  c->nev--;
  c->ev_bytes -= n->size;
  c->ev_cur = n;
  *ev = n->ev;
  if (!ev->detail)
    ev->detail = "";
  return 1;
}

size_t wsmsg_conn_event_count(const wsmsg_conn *c) { return c ? c->nev : 0; }

/* ---- sending
 * ----------------------------------------------------------------------------
 */

int wsm_can_send(const wsmsg_conn *c) {
  if (!c)
    return WSMSG_ERR_INVALID_ARG;
  if (c->state == WSMSG_STATE_CONNECTING)
    return WSMSG_ERR_STATE;
  if (c->close_sent || c->state == WSMSG_STATE_CLOSED || c->aborted)
    return WSMSG_ERR_CLOSED;
  return 0;
}

/* Backpressure: may this data message of `len` bytes be queued? */
static int admit(wsmsg_conn *c, size_t len) {
  const wsmsg_endpoint *ep = c->ep;
  size_t b = buffered(c);
  if (!ep->bp_high || b == 0 || b + len + 14 <= ep->bp_high)
    return 0;
  c->bp_blocked = true;
  if (ep->bp_policy == WSMSG_BACKPRESSURE_CLOSE) {
    char why[96];
    snprintf(why, sizeof(why), "peer not reading: output over %zu bytes",
             ep->bp_high);
    fail(c, WSMSG_ERR_BACKPRESSURE, 1008, why);
  }
  return WSMSG_ERR_BACKPRESSURE;
}

int wsm_send_data(wsmsg_conn *c, uint8_t op, const uint8_t *data, size_t len) {
  int r = admit(c, len);
  if (r)
    return r;
  r = queue_frame(c, op, data, len);
  if (!r && c->ep->bp_high && buffered(c) >= c->ep->bp_high)
    c->bp_blocked = true; /* crossed the mark: drain is due */
  return r;
}

int wsmsg_send_text(wsmsg_conn *c, const char *data, size_t len) {
  int r = wsm_can_send(c);
  if (r)
    return r;
  if (!data && len)
    return WSMSG_ERR_INVALID_ARG;
  bool known_valid =
      (const uint8_t *)data == c->valid_text && len == c->valid_text_len;
  if (!known_valid && !wsmsg_utf8_valid(data, len))
    return WSMSG_ERR_UTF8;
  return wsm_send_data(c, WSLAY_TEXT_FRAME, (const uint8_t *)data, len);
}

int wsmsg_send_binary(wsmsg_conn *c, const void *data, size_t len) {
  int r = wsm_can_send(c);
  if (r)
    return r;
  if (!data && len)
    return WSMSG_ERR_INVALID_ARG;
  return wsm_send_data(c, WSLAY_BINARY_FRAME, data, len);
}

/* Queue an already framed (unmasked) data message: what queue_frame does,
 * minus the framing. */
static int queue_framed(wsmsg_conn *c, const uint8_t *frame, size_t n) {
  wsm_buf *sink = c->stream_cb ? &c->deferred : &c->out;
  bool was_empty = c->out.len == c->out.off;
  int r = wsm_pbuf_append(sink, c->pool, frame, n);
  if (r)
    return r;
  if (was_empty && c->ep->t_write) {
    c->t_write_progress = wsm_now(c);
    wsm_timers_touch(c);
  }
  if (c->ep->bp_high && buffered(c) >= c->ep->bp_high)
    c->bp_blocked = true;
  return 0;
}

int64_t wsmsg_broadcast(wsmsg_conn *const *conns, size_t n, int type,
                        const void *data, size_t len) {
  if ((!conns && n) || (!data && len) ||
      (type != WSMSG_EV_TEXT && type != WSMSG_EV_BINARY))
    return WSMSG_ERR_INVALID_ARG;
  uint8_t op = type == WSMSG_EV_TEXT ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME;
  if (op == WSLAY_TEXT_FRAME && !wsmsg_utf8_valid(data, len))
    return WSMSG_ERR_UTF8;
  int64_t sent = 0;
  const uint8_t *frame = NULL; /* the frame, in the first server recipient's
                                  output */
  size_t frame_len = 0;
  wsmsg_conn *holder = NULL;
  for (size_t i = 0; i < n; i++) {
    wsmsg_conn *c = conns[i];
    if (!c || wsm_can_send(c) != 0 || admit(c, len) != 0)
      continue;
    if (c->client || c == holder) { /* masked per connection, or listed
                                       twice: frame it itself */
      if (wsm_send_data(c, op, data, len) == 0)
        sent++;
      continue;
    }
    if (!holder) {
      wsm_buf *sink = c->stream_cb ? &c->deferred : &c->out;
      size_t before = sink->len;
      if (wsm_send_data(c, op, data, len) != 0)
        continue;
      holder = c;
      frame_len = sink->len - before;
      frame = sink->p + before; /* stable: nobody appends to holder now */
      sent++;
      continue;
    }
    if (queue_framed(c, frame, frame_len) == 0)
      sent++;
  }
  return sent;
}

int wsmsg_send_stream(wsmsg_conn *c, int type, wsmsg_read_cb cb, void *user) {
  int r = wsm_can_send(c);
  if (r)
    return r;
  if (!cb || (type != WSMSG_EV_TEXT && type != WSMSG_EV_BINARY))
    return WSMSG_ERR_INVALID_ARG;
  if (c->stream_cb)
    return WSMSG_ERR_STATE;
  c->stream_buf = wsm_malloc(c->mem, STREAM_CHUNK);
  if (!c->stream_buf)
    return WSMSG_ERR_NOMEM;
  c->stream_cb = cb;
  c->stream_user = user;
  c->stream_op = type == WSMSG_EV_TEXT ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME;
  c->stream_text = type == WSMSG_EV_TEXT;
  c->stream_utf8 = WSM_UTF8_ACCEPT;
  c->stream_paused = false;
  return 0;
}

int wsmsg_conn_resume_stream(wsmsg_conn *c) {
  if (!c)
    return WSMSG_ERR_INVALID_ARG;
  if (!c->stream_cb)
    return WSMSG_ERR_STATE;
  c->stream_paused = false;
  return 0;
}

int wsmsg_conn_streaming(const wsmsg_conn *c) { return c && c->stream_cb; }

size_t wsmsg_conn_buffered_amount(const wsmsg_conn *c) {
  return c ? buffered(c) : 0;
}

int wsmsg_send_ping(wsmsg_conn *c, const void *data, size_t len) {
  int r = wsm_can_send(c);
  if (r)
    return r;
  if (len > 125 || (!data && len))
    return WSMSG_ERR_INVALID_ARG;
  return queue_frame(c, WSLAY_PING, data, len);
}

int wsmsg_close(wsmsg_conn *c, int code, const char *reason) {
  int r = wsm_can_send(c);
  if (r)
    return r;
  if (code != 0 && !(code >= 1000 && code <= 4999 &&
                     wsm_close_code_valid_wire((unsigned)code)))
    return WSMSG_ERR_CLOSE_CODE;
  if (!reason || code == 0)
    reason = "";
  size_t rl = strlen(reason);
  if (!wsmsg_utf8_valid(reason, rl))
    return WSMSG_ERR_UTF8;
  return queue_close_frame(c, (unsigned)code, reason, rl);
}

/* ---- timers
 * ------------------------------------------------------------------ */

int64_t wsmsg_conn_deadline(const wsmsg_conn *c) {
  if (!c || c->aborted || wsmsg_conn_done(c))
    return -1;
  const wsmsg_endpoint *ep = c->ep;
  uint64_t best = UINT64_MAX;
#define CAND(x)                                                                \
  do {                                                                         \
    uint64_t v_ = (x);                                                         \
    if (v_ < best)                                                             \
      best = v_;                                                               \
  } while (0)
  if (!c->opened) {
    if (c->t_handshake)
      CAND(c->t_created + c->t_handshake);
  } else if (c->state == WSMSG_STATE_OPEN && !c->close_sent) {
    if (ep->t_receive)
      CAND(c->t_last_msg + ep->t_receive);
    if (ep->t_ping && !c->ping_outstanding)
      CAND(c->t_last_rx + ep->t_ping);
    if (ep->t_pong && c->ping_outstanding)
      CAND(c->t_ping_sent + ep->t_pong);
    if (ep->t_message && c->msg_op)
      CAND(c->t_msg_start + ep->t_message);
  } else if (c->closing_timed) {
    CAND(c->t_close_start + ep->t_close);
  }
  if (ep && ep->t_write && c->out.len > c->out.off)
    CAND(c->t_write_progress + ep->t_write);
#undef CAND
  return best == UINT64_MAX ? -1 : (int64_t)best;
}

int64_t wsmsg_conn_next_deadline(const wsmsg_conn *c) {
  int64_t d = wsmsg_conn_deadline(c);
  if (d < 0)
    return -1;
  uint64_t now = wsm_now(c);
  return (uint64_t)d <= now ? 0 : (int64_t)((uint64_t)d - now);
}

int64_t wsmsg_conn_rtt_ms(const wsmsg_conn *c) { return c ? c->rtt : -1; }

static void send_keepalive_ping(wsmsg_conn *c, uint64_t now) {
  uint8_t p[8];
  c->ping_seq++;
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(c->ping_seq >> (56 - 8 * i));
  c->t_ping_sent = now;
  (void)queue_frame(c, WSLAY_PING, p, sizeof(p));
}

static void fire_receive_timeout(wsmsg_conn *c, uint64_t now) {
  const wsmsg_endpoint *ep = c->ep;
  c->t_last_msg = now; /* re-arm: one call per idle period */
  if (ep->on_timeout) {
    ep->on_timeout(c, WSMSG_TIMEOUT_RECEIVE, c->user);
    return;
  }
  switch (ep->timeout_action) {
  case WSMSG_ON_TIMEOUT_PING:
    send_keepalive_ping(c, now);
    break;
  case WSMSG_ON_TIMEOUT_HEARTBEAT: {
    const char *hb = ep->heartbeat ? ep->heartbeat : "HEARTBEAT";
    (void)queue_frame(c, WSLAY_TEXT_FRAME, (const uint8_t *)hb, strlen(hb));
    break;
  }
  case WSMSG_ON_TIMEOUT_CLOSE_1001:
  case WSMSG_ON_TIMEOUT_CLOSE_1011:
    (void)queue_close_frame(
        c, ep->timeout_action == WSMSG_ON_TIMEOUT_CLOSE_1001 ? 1001 : 1011,
        "receive timeout", 15);
    break;
  default: {
    wsm_evnode *n = wsm_ev_alloc(c, WSMSG_EV_TIMEOUT, 1);
    if (n) {
      n->data[0] = '\0';
      n->ev.data = n->data;
      n->ev.code = WSMSG_TIMEOUT_RECEIVE;
      wsm_ev_push(c, n);
    }
  }
  }
}

static void timeout_abort(wsmsg_conn *c, const char *what, uint32_t ms) {
  char why[96];
  snprintf(why, sizeof(why), "%s within %u ms", what, ms);
  wsm_conn_set_error(c, WSMSG_ERR_TIMEOUT, why);
  wsm_conn_abort_err(c, WSMSG_ERR_TIMEOUT, why);
}

/* Fire the first due timer; returns 1 if one fired. */
static int fire_one(wsmsg_conn *c, uint64_t now) {
  const wsmsg_endpoint *ep = c->ep;
  char why[96];
  if (ep && ep->t_write && c->out.len > c->out.off &&
      now >= c->t_write_progress + ep->t_write) {
    timeout_abort(c, "peer read nothing", ep->t_write);
    return 1;
  }
  if (!c->opened) {
    if (!c->t_handshake || now < c->t_created + c->t_handshake)
      return 0;
    if (c->client || c->state == WSMSG_STATE_CLOSED) {
      timeout_abort(c, "opening handshake not completed", c->t_handshake);
      return 1;
    }
    /* server: answer 408, then give the answer one more period to drain */
    static const char resp[] =
        "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\n"
        "Content-Length: 16\r\nConnection: close\r\n\r\nrequest timeout\n";
    (void)wsm_pbuf_append(&c->out, c->pool, resp, sizeof(resp) - 1);
    c->http_status = 408;
    snprintf(why, sizeof(why), "upgrade request not complete within %u ms",
             c->t_handshake);
    wsm_conn_set_error(c, WSMSG_ERR_TIMEOUT, why);
    c->failed = true;
    c->state = WSMSG_STATE_CLOSED;
    c->t_created = now;
    return 1;
  }
  if (c->state == WSMSG_STATE_OPEN && !c->close_sent) {
    if (ep->t_pong && c->ping_outstanding &&
        now >= c->t_ping_sent + ep->t_pong) {
      snprintf(why, sizeof(why), "keepalive timeout: no pong within %u ms",
               ep->t_pong);
      fail(c, WSMSG_ERR_TIMEOUT, 1011, why);
      return 1;
    }
    if (ep->t_message && c->msg_op && now >= c->t_msg_start + ep->t_message) {
      snprintf(why, sizeof(why), "message not completed within %u ms",
               ep->t_message);
      fail(c, WSMSG_ERR_TIMEOUT, 1008, why);
      return 1;
    }
    if (ep->t_ping && !c->ping_outstanding &&
        now >= c->t_last_rx + ep->t_ping) {
      send_keepalive_ping(c, now);
      if (ep->t_pong)
        c->ping_outstanding = true;
      else
        c->t_last_rx = now; /* next ping one interval later */
      return 1;
    }
    if (ep->t_receive && now >= c->t_last_msg + ep->t_receive) {
      fire_receive_timeout(c, now);
      return 1;
    }
    return 0;
  }
  if (c->closing_timed && now >= c->t_close_start + ep->t_close) {
    timeout_abort(c, "closing handshake not completed", ep->t_close);
    return 1;
  }
  return 0;
}

int wsm_conn_tick_count(wsmsg_conn *c, uint64_t now) {
  int fired = 0;
  for (int guard = 0; guard < 16; guard++) {
    int64_t d = wsmsg_conn_deadline(c);
    if (d < 0 || (uint64_t)d > now || !fire_one(c, now))
      break;
    fired++;
  }
  return fired;
}

int wsmsg_conn_tick(wsmsg_conn *c, uint64_t now) {
  if (!c)
    return WSMSG_ERR_INVALID_ARG;
  wsm_conn_tick_count(c, now);
  wsm_timers_touch(c);
  return 0;
}
