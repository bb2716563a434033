/* Sending: framing into the output buffer (wslay's send side), the public
 * send calls with backpressure, broadcast (one frame shared by every
 * server connection), streaming sends, and the host's side of the output
 * (pending / consume).  The receive side and the state machine are
 * conn.c's and rx.c's. */
#include "internal.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

/* Streaming send: fragment size, and how much output may be pending before
 * the next fragment is pulled. */
#define STREAM_CHUNK 65536
#define STREAM_LOW 65536

/* ---- wslay's send side ---- */

ssize_t wsm_tx_cb_send(const uint8_t *data, size_t len, int flags, void *ud) {
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

int wsm_tx_cb_genmask(uint8_t *buf, size_t len, void *ud) {
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

/* ---- a broadcast's state ---- */

/* What a broadcast shares across its recipients (NULL outside one): the
 * clock, read once per publish (per clock hook) and not once per
 * recipient, and the batch of output buffers and budget accounting. */
typedef struct wsm_bcast {
  const wsmsg_server *clock_srv; /* `now` is this server's clock */
  wsmsg_clock_cb clock;          /* or this hook's (clock_srv NULL) */
  void *clock_user;
  uint64_t now;
  wsm_batch batch;
} wsm_bcast;

static uint64_t stamp(const wsmsg_conn *c, wsm_bcast *bc) {
  if (!bc)
    return wsm_now(c);
  if (c->srv) {
    /* a server's connections have its clock (fixed before its first
     * accept): known without reading two more cache lines of each
     * connection, which counts at 10,000 recipients */
    if (bc->clock_srv != c->srv) {
      bc->now = wsm_now(c);
      bc->clock_srv = c->srv;
    }
    return bc->now;
  }
  if (bc->clock_srv || bc->clock != c->clock ||
      bc->clock_user != c->clock_user) {
    bc->now = wsm_now(c);
    bc->clock_srv = NULL;
    bc->clock = c->clock;
    bc->clock_user = c->clock_user;
  }
  return bc->now;
}

/* Before anything that may run the application's callbacks or count
 * memory outside the batch: srv->mem_used is exact again. */
static void bcast_settle(wsm_bcast *bc) {
  if (bc)
    wsm_batch_flush_mem(&bc->batch);
}

/* ---- framing ---- */

/* Output went from empty to pending: the write timeout runs from now. */
static void write_started(wsmsg_conn *c, wsm_bcast *bc) {
  if (c->ep && c->ep->t_write) {
    c->t_write_progress = stamp(c, bc);
    if (c->timers)
      wsm_timers_touch(c);
  }
}

void wsm_write_started(wsmsg_conn *c) { write_started(c, NULL); }

/* Frame a message (or a fragment) into `sink`. */
static int queue_frame_ex(wsmsg_conn *c, uint8_t opcode, const uint8_t *data,
                          size_t len, bool fin, uint8_t rsv, wsm_buf *sink) {
  struct wslay_frame_iocb io;
  memset(&io, 0, sizeof(io));
  io.fin = fin;
  io.rsv = rsv;
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
  if ((r = wsm_conn_acquire_parser(c)) != 0)
    return r;
  bool was_empty = c->out.len == c->out.off;
  c->sink = sink;
  ssize_t n = wslay_frame_send(c->slot->fr, &io);
  c->sink = &c->out; /* the parser stays while output is pending */
  if (n < 0 || (size_t)n != len)
    return WSMSG_ERR_NOMEM;
  if (was_empty)
    write_started(c, NULL);
  return 0;
}

/* Data frames go behind a running stream (the deferred buffer); control
 * frames never wait. */
static wsm_buf *sink_for(wsmsg_conn *c, uint8_t opcode) {
  return c->stream_cb && opcode < 8 ? &c->deferred : &c->out;
}

int wsm_queue_frame(wsmsg_conn *c, uint8_t opcode, const uint8_t *data,
                    size_t len) {
  return queue_frame_ex(c, opcode, data, len, true, 0, sink_for(c, opcode));
}

void wsm_stream_end(wsmsg_conn *c, bool flush_deferred) {
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
    wsm_conn_fail(c, WSMSG_ERR_NOMEM, 1011, "out of memory");
}

int wsm_queue_close_frame(wsmsg_conn *c, unsigned code, const char *reason,
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
  if (!c->close_recv && !c->close_reason && n > 2) {
    /* on_close reports our code, so our reason, until the peer's close
     * frame arrives (best effort: out of memory leaves it empty) */
    c->close_reason = wsm_strndup(c->mem, (const char *)p + 2, n - 2);
    c->close_reason_len = c->close_reason ? n - 2 : 0;
  }
  wsm_stream_end(c, false); /* an unfinished stream stays unfinished */
  wsm_conn_closing_starts(c);
  return wsm_queue_frame(c, WSLAY_CONNECTION_CLOSE, p, n);
}

/* ---- sending ---- */

int wsm_can_send(const wsmsg_conn *c) {
  if (!c)
    return WSMSG_ERR_INVALID_ARG;
  if (c->state == WSMSG_STATE_CONNECTING)
    return WSMSG_ERR_STATE;
  if (c->close_sent || c->state == WSMSG_STATE_CLOSED || c->aborted)
    return WSMSG_ERR_CLOSED;
  return 0;
}

/* The server's memory budget: room for the frame, or the connection is
 * closed with 1013 (budget.c). */
static int admit_budget(wsmsg_conn *c, size_t len, wsm_bcast *bc) {
  int r =
      wsm_budget_reserve_batch(c, sink_for(c, WSLAY_BINARY_FRAME), len + 14,
                               c->in_recv ? 4096 : 0, bc ? &bc->batch : NULL);
  if (r != WSMSG_ERR_BUDGET)
    return r;
  bcast_settle(bc); /* on_close runs */
  /* 1013 behind the queued output if it fits; else the output (a peer
   * that does not read it) is dropped with the connection, rather than
   * doubling a big buffer for a close frame it would not read either */
  if (c->out.cap - (c->out.len - c->out.off) >= 256 || c->out.len == 0)
    wsm_conn_fail(c, r, 1013, "server memory budget exhausted");
  else
    wsm_conn_abort_err(c, r, "server memory budget exhausted: output dropped");
  return r;
}

/* Backpressure: may this data message of `len` bytes be queued? */
static int admit(wsmsg_conn *c, size_t len, wsm_bcast *bc) {
  const wsmsg_endpoint *ep = c->ep;
  size_t b = wsm_buffered(c);
  if (!ep->bp_high || b == 0 || b + len + 14 <= ep->bp_high)
    return admit_budget(c, len, bc);
  c->bp_blocked = true;
  if (ep->bp_policy == WSMSG_BACKPRESSURE_CLOSE) {
    bcast_settle(bc); /* on_close runs */
    char why[96];
    snprintf(why, sizeof(why), "peer not reading: output over %zu bytes",
             ep->bp_high);
    wsm_conn_fail(c, WSMSG_ERR_BACKPRESSURE, 1008, why);
  }
  return WSMSG_ERR_BACKPRESSURE;
}

/* After queueing: crossing the high mark makes on_drain due. */
static void check_high_mark(wsmsg_conn *c) {
  if (c->ep->bp_high && wsm_buffered(c) >= c->ep->bp_high)
    c->bp_blocked = true;
}

/* Frame a data message, compressed (RSV1) when permessage-deflate was
 * agreed and the message is not under the threshold. */
static int queue_data(wsmsg_conn *c, uint8_t op, const uint8_t *data,
                      size_t len) {
  if (!wsm_pmd_tx(c, len))
    return wsm_queue_frame(c, op, data, len);
  wsm_buf z = {0}; /* pool storage: no allocation once warm */
  int r = wsm_pmd_compress(c, data, len, true, &z);
  /* incompressible: without context takeover nothing depends on this
   * message's compressed form, so it may go plain; so may a message when
   * no compressor fits the server's memory budget */
  if (r == WSMSG_ERR_BUDGET || (!r && c->pmd.tx_no_ctx && z.len >= len))
    r = wsm_queue_frame(c, op, data, len);
  else if (!r)
    r = queue_frame_ex(c, op, z.p, z.len, true, 4, sink_for(c, op));
  wsm_pbuf_release(&z, c->pool);
  return r;
}

/* A data message was queued: the idle timeout counts both directions. */
static void data_sent(wsmsg_conn *c, wsm_bcast *bc) {
  if (c->ep->t_idle)
    c->t_last_tx = stamp(c, bc);
}

int wsm_send_data(wsmsg_conn *c, uint8_t op, const uint8_t *data, size_t len) {
  int r = admit(c, len, NULL);
  if (r)
    return r;
  r = queue_data(c, op, data, len);
  if (!r) {
    check_high_mark(c);
    data_sent(c, NULL);
  }
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

/* Queue an already framed (unmasked) data message, a frame header
 * hdr[0..hn) and its payload d[0..n) (admit reserved the room): what
 * wsm_send_data does, minus the framing. */
static int queue_framed(wsmsg_conn *c, const uint8_t *hdr, size_t hn,
                        const uint8_t *d, size_t n, wsm_bcast *bc) {
  bool was_empty = c->out.len == c->out.off;
  wsm_buf *sink = sink_for(c, WSLAY_BINARY_FRAME);
  if (sink->cap - sink->len < hn + n) {
    int r = wsm_pbuf_reserve(sink, c->pool, hn + n);
    if (r)
      return r;
  }
  if (hn)
    memcpy(sink->p + sink->len, hdr, hn);
  if (n)
    memcpy(sink->p + sink->len + hn, d, n);
  sink->len += hn + n;
  if (was_empty)
    write_started(c, bc);
  check_high_mark(c);
  data_sent(c, bc);
  return 0;
}

/* The header of an unmasked, unfragmented frame without RSV bits (RFC 6455
 * 5.2): what wslay writes for a server's message.  Returns its length. */
static size_t frame_header(uint8_t h[10], uint8_t op, size_t len) {
  h[0] = (uint8_t)(0x80 | op);
  if (len < 126) {
    h[1] = (uint8_t)len;
    return 2;
  }
  if (len <= 0xffff) {
    h[1] = 126;
    h[2] = (uint8_t)(len >> 8);
    h[3] = (uint8_t)len;
    return 4;
  }
  h[1] = 127;
  for (int i = 0; i < 8; i++)
    h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
  return 10;
}

/* Whether `c` must be told (on_output) if this call gives it output: it
 * has none pending, and its server wants to know. */
static inline bool want_write(const wsmsg_conn *c) {
  if (c->client && !c->request_built && c->state == WSMSG_STATE_CONNECTING)
    return true;
  if (c->stream_cb && !c->stream_paused)
    return true;
  if (wsm_http_active(c) && wsm_http_want_write(c))
    return true;
  return c->out.len > c->out.off;
}

static bool output_news(const wsmsg_conn *c) {
  return c->srv && c->srv->on_output && !want_write(c);
}

/* Tell the host about every connection marked by output_news, once each,
 * after the message went into all of them (the frame shared from the
 * first recipient's output must stay put while it is copied, so the host
 * may only write output once the copying is over). */
static void output_notify(wsmsg_conn *const *conns, size_t n) {
  for (size_t i = 0; i < n; i++) {
    wsmsg_conn *c = conns[i];
    if (c && c->out_notify) {
      c->out_notify = false;
      c->srv->on_output(c, c->user);
    }
  }
}

int64_t wsm_broadcast(wsmsg_conn *const *conns, size_t n, uint8_t op,
                      const void *data, size_t len) {
  int64_t sent = 0;
  bool notify = false;
  /* an uncompressed frame to a server's connection is this header and
   * the payload, made once: no parser, no per-recipient framing */
  uint8_t hdr[10];
  size_t hn = frame_header(hdr, op, len);
  wsm_bcast bc;        /* not memset: its buffer array is filled before use */
  bc.clock_srv = NULL; /* the clock not read yet */
  bc.clock = NULL;
  bc.clock_user = NULL;
  bc.now = 0;
  bc.batch.srv = NULL;
  bc.batch.pending = 0;
  bc.batch.bufs.pool = NULL;
  bc.batch.bufs.want = 0;
  bc.batch.bufs.n = 0;
  bc.batch.bufs.k = 0;
  /* compressed once per parameter set among those that reset their
   * compressor after every message (wsm_pmd_share_key); each such frame
   * lives in its first server recipient's output */
  enum { KINDS = 4 };
  struct {
    uint32_t key;
    const uint8_t *frame;
    size_t len;
    wsmsg_conn *holder;
  } fr[KINDS];
  size_t nfr = 0;
  for (size_t i = 0; i < n; i++) {
    wsmsg_conn *c = conns[i];
    if (!c || wsm_can_send(c) != 0)
      continue;
    uint32_t key = c->pmd.on ? wsm_pmd_share_key(c, len) : 0;
    int r;
    bool news;
    if (key == 0 && !c->client) {
      bc.batch.bufs.want = n - i; /* buffers for at most the rest */
      if (admit(c, len, &bc) != 0)
        continue;
      news = output_news(c);
      r = queue_framed(c, hdr, hn, data, len, &bc);
      goto queued;
    }
    /* masked, or compressed: memory counted and clock read outside the
     * batch */
    bcast_settle(&bc);
    if (admit(c, len, NULL) != 0)
      continue;
    news = output_news(c);
    size_t k = 0;
    while (k < nfr && fr[k].key != key)
      k++;
    if (c->client || key == UINT32_MAX || (k < nfr && c == fr[k].holder) ||
        (k == nfr && nfr == KINDS)) {
      /* masked per connection, its own compression context, listed twice,
       * or too many kinds: frame it itself */
      r = wsm_send_data(c, op, data, len);
    } else if (k == nfr) {
      wsm_buf *sink = sink_for(c, op);
      size_t before = sink->len;
      r = wsm_send_data(c, op, data, len);
      if (r == 0) {
        fr[nfr].key = key;
        fr[nfr].holder = c;
        fr[nfr].len = sink->len - before;
        /* stable: nobody appends to a holder during the loop (a holder
         * listed again frames itself, above) */
        fr[nfr].frame = sink->p + before;
        nfr++;
      }
    } else {
      r = queue_framed(c, NULL, 0, fr[k].frame, fr[k].len, NULL);
    }
  queued:
    if (r != 0)
      continue;
    sent++;
    if (news) {
      c->out_notify = true;
      notify = true;
    }
  }
  wsm_bufcache_flush(&bc.batch.bufs);
  bcast_settle(&bc);
  if (notify)
    output_notify(conns, n);
  return sent;
}

int64_t wsmsg_broadcast(wsmsg_conn *const *conns, size_t n, int type,
                        const void *data, size_t len) {
  if ((!conns && n) || (!data && len) ||
      (type != WSMSG_EV_TEXT && type != WSMSG_EV_BINARY))
    return WSMSG_ERR_INVALID_ARG;
  uint8_t op = type == WSMSG_EV_TEXT ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME;
  if (op == WSLAY_TEXT_FRAME && !wsmsg_utf8_valid(data, len))
    return WSMSG_ERR_UTF8;
  return wsm_broadcast(conns, n, op, data, len);
}

int wsmsg_send_ping(wsmsg_conn *c, const void *data, size_t len) {
  int r = wsm_can_send(c);
  if (r)
    return r;
  if (len > 125 || (!data && len))
    return WSMSG_ERR_INVALID_ARG;
  return wsm_queue_frame(c, WSLAY_PING, data, len);
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
  return wsm_queue_close_frame(c, (unsigned)code, reason, rl);
}

/* ---- streaming send ---- */

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
    return wsm_http_active(c) ? wsm_http_resume(c) : WSMSG_ERR_STATE;
  c->stream_paused = false;
  return 0;
}

int wsmsg_conn_streaming(const wsmsg_conn *c) { return c && c->stream_cb; }

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
      wsm_conn_fail(c, WSMSG_ERR_ABORTED, 1011, "stream source failed");
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
        wsm_conn_fail(c, WSMSG_ERR_UTF8, 1011,
                      "stream source gave invalid UTF-8");
        return;
      }
    }
    uint8_t op = c->stream_op;
    c->stream_op = WSLAY_CONTINUATION_FRAME;
    if (op != WSLAY_CONTINUATION_FRAME) /* a stream is compressed whole */
      c->pmd.tx_stream = wsm_pmd_tx(c, SIZE_MAX);
    int r;
    if (c->pmd.tx_stream) { /* compressed across its fragments */
      wsm_buf z = {0};
      r = wsm_pmd_compress(c, c->stream_buf, (size_t)n, eof != 0, &z);
      if (r == WSMSG_ERR_BUDGET) { /* first fragment: the stream goes plain */
        c->pmd.tx_stream = false;
        r = queue_frame_ex(c, op, c->stream_buf, (size_t)n, eof != 0, 0,
                           &c->out);
      } else if (!r) {
        r = queue_frame_ex(c, op, z.p, z.len, eof != 0,
                           op != WSLAY_CONTINUATION_FRAME ? 4 : 0, &c->out);
      }
      wsm_pbuf_release(&z, c->pool);
    } else {
      r = queue_frame_ex(c, op, c->stream_buf, (size_t)n, eof != 0, 0, &c->out);
    }
    if (r) {
      wsm_conn_fail(c, WSMSG_ERR_NOMEM, 1011, "out of memory");
      return;
    }
    if (eof)
      wsm_stream_end(c, true);
  }
}

/* ---- the host's side of the output ---- */

size_t wsmsg_conn_pending(wsmsg_conn *c, const void **bytes) {
  if (!c) {
    if (bytes)
      *bytes = NULL;
    return 0;
  }
  if (c->client && !c->request_built)
    wsm_conn_build_request(c);
  if (wsm_http_active(c)) /* plain HTTP: a streamed body, pipelined
                             requests */
    wsm_http_pull(c);
  stream_pull(c);
  wsm_mem_account(c);
  if (bytes)
    *bytes = c->out.p ? c->out.p + c->out.off : NULL;
  return c->out.len - c->out.off;
}

void wsmsg_conn_consume(wsmsg_conn *c, size_t n) {
  if (!c)
    return;
  size_t avail = c->out.len - c->out.off;
  c->out.off += n < avail ? n : avail;
  bool drained = c->out.off == c->out.len;
  if (drained) { /* idle connections hold nothing */
    wsm_pbuf_release(&c->out, c->pool);
    if (c->slot)
      wsm_conn_release_parser(c);
  }
  /* write progress: the write timeout runs while output is pending.  On
   * an open WebSocket connection, all output goes through queue_frame_ex
   * or queue_framed, which stamp it when it goes from none to pending:
   * once drained, its stamp is not read again before that, so the clock
   * is not read here (a read per consume was a quarter of a fan-out's
   * CPU).  Before the upgrade (handshake, plain HTTP) output is queued
   * elsewhere: stamp as always. */
  if (n && c->ep && c->ep->t_write &&
      (!drained || !c->opened || wsm_http_active(c)))
    c->t_write_progress = wsm_now(c);
  if (c->bp_blocked && wsm_buffered(c) < c->ep->bp_low) {
    c->bp_blocked = false;
    if (c->ep->on_drain)
      c->ep->on_drain(c, c->user);
    else
      (void)wsm_ev_queue(c, WSMSG_EV_DRAIN, NULL, 0);
  }
  wsm_mem_account(c);
}

int wsmsg_conn_want_write(const wsmsg_conn *c) { return c && want_write(c); }

size_t wsmsg_conn_buffered_amount(const wsmsg_conn *c) {
  return c ? wsm_buffered(c) : 0;
}
