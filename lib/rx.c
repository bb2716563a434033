/* The receive path of an open connection: bytes -> frames -> messages.
 *
 * wslay_frame parses frame headers; this file feeds it (server role: with
 * the client's masking undone here, 8 bytes at a time), judges every header
 * against the rules a peer can break, reassembles fragmented messages,
 * checks UTF-8, and delivers messages to the callbacks or the event queue
 * (JSON endpoints: to json.c).  Control frames: pings are answered, pongs
 * reported, a close frame goes to conn.c's state machine. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

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

ssize_t wsm_rx_cb_recv(uint8_t *buf, size_t len, int flags, void *ud) {
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

/* ---- rate limits ---- */

bool wsm_rate_admit(wsmsg_conn *c, uint64_t len) {
  const wsmsg_endpoint *ep = c->ep;
  if (!ep->rate_msgs && !ep->rate_bytes)
    return true;
  /* token buckets in thousandths of a message / byte, one second deep,
   * refilled by the time since the last message (c->t_last_rx: the clock
   * is read once per read) */
  uint64_t now = c->t_last_rx;
  uint64_t mcap = (uint64_t)ep->rate_msgs * 1000, bcap = ep->rate_bytes * 1000;
  if (!c->rl_init) {
    c->rl_init = true;
    c->rl_t = now;
    c->rl_msgs = mcap;
    c->rl_bytes = bcap;
  }
  uint64_t dt = now > c->rl_t ? now - c->rl_t : 0;
  if (dt > 1000)
    dt = 1000; /* full after a second */
  c->rl_t = now;
  c->rl_msgs += dt * ep->rate_msgs;
  if (c->rl_msgs > mcap)
    c->rl_msgs = mcap;
  c->rl_bytes += dt * ep->rate_bytes;
  if (c->rl_bytes > bcap)
    c->rl_bytes = bcap;
  /* a message bigger than a second's worth passes on a full bucket */
  uint64_t cost = len > UINT64_MAX / 1000 ? UINT64_MAX : len * 1000;
  bool ok = (!ep->rate_msgs || c->rl_msgs >= 1000) &&
            (!ep->rate_bytes || c->rl_bytes >= (cost < bcap ? cost : bcap));
  if (ok) {
    if (ep->rate_msgs)
      c->rl_msgs -= 1000;
    if (ep->rate_bytes)
      c->rl_bytes -= cost < c->rl_bytes ? cost : c->rl_bytes;
    return true;
  }
  if (ep->rate_policy == WSMSG_LIMIT_CLOSE) {
    char why[96];
    snprintf(why, sizeof(why), "rate limit exceeded: over %u messages/s or %llu bytes/s",
             ep->rate_msgs, (unsigned long long)ep->rate_bytes);
    wsm_conn_fail(c, WSMSG_ERR_RATE_LIMIT, 1008, why);
  }
  return false;
}

static int deliver_message(wsmsg_conn *c, uint8_t op, uint8_t *d, size_t len) {
  const wsmsg_endpoint *ep = c->ep;
  c->t_last_msg = c->t_last_rx;
  if (!wsm_rate_admit(c, len))
    return 0; /* dropped, or the connection failed */
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
    if (wsm_ep_push(ep)) {
      wsm_rx_unhandled(c, "text messages");
      return 0;
    }
    return wsm_ev_queue(c, WSMSG_EV_TEXT, d, len);
  }
  if (ep->on_binary) {
    ep->on_binary(c, d, len, c->user);
    return 0;
  }
  if (wsm_ep_push(ep)) {
    wsm_rx_unhandled(c, "binary messages");
    return 0;
  }
  return wsm_ev_queue(c, WSMSG_EV_BINARY, d, len);
}

void wsm_rx_unhandled(wsmsg_conn *c, const char *what) {
  if (c->ep->unhandled == WSMSG_UNHANDLED_IGNORE || c->close_sent)
    return;
  /* RFC 6455 7.4.1: 1003, "a type of data it cannot accept" */
  char reason[96];
  snprintf(reason, sizeof(reason), "%s are not accepted here", what);
  (void)wsmsg_close(c, 1003, reason);
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
  if (rsv == 4 && c->pmd.on) { /* RSV1: a compressed message */
    if (op >= 8)
      return wsm_conn_fail(c, WSMSG_ERR_PROTOCOL, 1002,
                           "RSV1 set on a control frame");
    if (op == WSLAY_CONTINUATION_FRAME)
      return wsm_conn_fail(c, WSMSG_ERR_PROTOCOL, 1002,
                           "RSV1 set on a continuation frame");
  } else if (rsv) {
    return wsm_conn_fail(c, WSMSG_ERR_PROTOCOL, 1002, "reserved bits set");
  }
  if (mask >= 0 && mask != (c->client ? 0 : 1))
    return wsm_conn_fail(c, WSMSG_ERR_PROTOCOL, 1002,
                         c->client ? "masked frame from server"
                                   : "unmasked frame from client");
  if (op >= 8) {
    if (op > WSLAY_PONG)
      return wsm_conn_fail(c, WSMSG_ERR_PROTOCOL, 1002,
                           "reserved control opcode");
    if (!fin)
      return wsm_conn_fail(c, WSMSG_ERR_PROTOCOL, 1002,
                           "fragmented control frame");
    if (len != LEN_UNKNOWN && len > 125)
      return wsm_conn_fail(c, WSMSG_ERR_PROTOCOL, 1002,
                           "control frame payload over 125 bytes");
    if (op == WSLAY_CONNECTION_CLOSE && len == 1)
      return wsm_conn_fail(c, WSMSG_ERR_PROTOCOL, 1002,
                           "close frame with 1-byte payload");
    return 0;
  }
  if (op == WSLAY_CONTINUATION_FRAME) {
    if (!c->msg_op)
      return wsm_conn_fail(c, WSMSG_ERR_PROTOCOL, 1002,
                           "continuation frame without a message");
  } else if (op == WSLAY_TEXT_FRAME || op == WSLAY_BINARY_FRAME) {
    if (c->msg_op)
      return wsm_conn_fail(c, WSMSG_ERR_PROTOCOL, 1002,
                           "new message inside a fragmented message");
  } else {
    return wsm_conn_fail(c, WSMSG_ERR_PROTOCOL, 1002, "reserved data opcode");
  }
  bool first = op != WSLAY_CONTINUATION_FRAME;
  const wsmsg_endpoint *ep = c->ep;
  if (ep->max_fragments && (first ? 0 : c->nfrag) + 1 > ep->max_fragments) {
    snprintf(why, sizeof(why), "more than %u fragments in a message",
             ep->max_fragments);
    return wsm_conn_fail(c, WSMSG_ERR_TOO_MANY_FRAGMENTS, 1009, why);
  }
  if (len != LEN_UNKNOWN) {
    uint64_t total = (first ? 0 : c->msg_total) + len;
    uint64_t limit = ep->max_message;
    if (limit && (first ? rsv == 4 : c->pmd.rx_msg))
      /* compressed: the inflated size is held to the limit as it grows
       * (deflate.c); incompressible data may take a little more */
      limit += (limit >> 6) + 1024;
    if ((limit && total > limit) ||
        (!stream_kind(c, (uint8_t)(first ? op : c->msg_op)) &&
         total >= SIZE_MAX / 2)) {
      snprintf(why, sizeof(why),
               "message of %llu+ bytes over the limit of %llu",
               (unsigned long long)total, (unsigned long long)ep->max_message);
      return wsm_conn_fail(c, WSMSG_ERR_TOO_BIG, 1009, why);
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
    c->pmd.rx_msg = (io->rsv & 4) != 0;
    c->pmd.rx_total = 0;
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
      return wsm_conn_fail(c, WSMSG_ERR_PROTOCOL, 1002,
                           "64-bit length with top bit set");
    else if (k >= 2u + hdr_ext(h[1]))
      len = hdr_payload_len(h);
  }
  return check_header(c, fin, rsv, op, mask, len);
}

static int frame_end(wsmsg_conn *c) {
  uint8_t op = c->fr_op;
  if (op == WSLAY_CONNECTION_CLOSE)
    return wsm_conn_close_received(c, c->slot->ctl, c->ctl_len);
  if (op == WSLAY_PING) {
    /* above the high mark a peer that pings but does not read gets no
     * pong (RFC 6455 5.5.3 allows answering only the latest ping) */
    if (!c->close_sent &&
        !(c->ep->bp_high && wsm_buffered(c) >= c->ep->bp_high))
      return wsm_queue_frame(c, WSLAY_PONG, c->slot->ctl, c->ctl_len);
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
      return wsm_ev_queue(c, WSMSG_EV_PONG, c->slot->ctl, c->ctl_len);
    return 0;
  }
  if (!c->fr_fin)
    return 0;
  /* last frame of a data message */
  if (c->msg_op == WSLAY_TEXT_FRAME && c->utf8 != WSM_UTF8_ACCEPT)
    return wsm_conn_fail(c, WSMSG_ERR_UTF8, 1007,
                         "text message ends inside a character");
  uint8_t mop = c->msg_op;
  c->msg_op = 0;
  if (mop == WSLAY_TEXT_FRAME) { /* text is NUL-terminated for on_text */
    int r = wsm_pbuf_reserve(&c->msg, c->pool, 1);
    if (r)
      return wsm_conn_fail(c, r, 1011, "out of memory");
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
      return wsm_conn_fail(c, WSMSG_ERR_UTF8, 1007,
                           "invalid UTF-8 in text message");
  }
  size_t nul = c->msg_op == WSLAY_TEXT_FRAME; /* room for on_text's NUL */
  if (c->msg.cap - c->msg.len < n + nul) {
    /* reserve the whole frame at once when it is small, else grow */
    uint64_t rest = c->fr_len - c->fr_off + nul;
    size_t want = rest <= 65536 ? (size_t)rest : n + nul;
    if (want < n + nul) /* inflated bytes: the frame says nothing */
      want = n + nul;
    int r = wsm_budget_reserve(c, &c->msg, want, 0);
    if (r == WSMSG_ERR_BUDGET)
      return wsm_conn_fail(c, r, 1013, "server memory budget exhausted");
    if (r)
      return wsm_conn_fail(c, WSMSG_ERR_NOMEM, 1011, "out of memory");
  }
  memcpy(c->msg.p + c->msg.len, d, n);
  c->msg.len += n;
  return 0;
}

/* Streaming receive: hand a piece of the message to on_chunk (`final`:
 * the message ends with it). */
static int chunk_out(wsmsg_conn *c, const uint8_t *d, size_t n, bool final) {
  if (c->msg_op == WSLAY_TEXT_FRAME) {
    c->utf8 = wsm_utf8_feed(c->utf8, d, n);
    if (c->utf8 == WSM_UTF8_REJECT)
      return wsm_conn_fail(c, WSMSG_ERR_UTF8, 1007,
                           "invalid UTF-8 in text message");
    if (final && c->utf8 != WSM_UTF8_ACCEPT)
      return wsm_conn_fail(c, WSMSG_ERR_UTF8, 1007,
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
    /* counted when it ends; a dropped stream was delivered already */
    if (!wsm_rate_admit(c, c->msg_total) && c->failed)
      return 0;
  }
  c->ep->on_chunk(c, type, d, n, first, final, c->user);
  return 0;
}

/* Streaming receive: a piece of the current data frame. */
static int stream_piece(wsmsg_conn *c, const uint8_t *d, size_t n) {
  c->fr_off += n;
  bool frame_done = c->fr_off == c->fr_len;
  bool final = frame_done && c->fr_fin;
  if (frame_done)
    c->in_frame = false;
  return chunk_out(c, d, n, final);
}

/* Bytes inflated from a compressed message (deflate.c's sink). */
static int inflated(wsmsg_conn *c, const uint8_t *p, size_t n, bool final) {
  if (c->msg_stream)
    return chunk_out(c, p, n, final);
  return n ? frame_data(c, p, n) : 0;
}

/* A piece of a compressed message's frame: inflate it; the message is
 * delivered when its last frame ends. */
static int compressed_piece(wsmsg_conn *c, const uint8_t *d, size_t n) {
  c->fr_off += n;
  bool frame_done = c->fr_off == c->fr_len;
  bool final = frame_done && c->fr_fin;
  if (frame_done)
    c->in_frame = false;
  int r = wsm_pmd_inflate(c, d, n, final, inflated);
  if (r == 0 && final && !c->msg_stream && !c->failed)
    r = frame_end(c);
  return r;
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
      return wsm_conn_fail(c, WSMSG_ERR_PROTOCOL, 1002,
                           "invalid frame header (length or control frame)");
    if (!c->in_frame) {
      c->in_frame = true;
      if ((r = frame_start(c, &io)) != 0)
        return r;
    }
    if (c->fr_op < 8 && c->pmd.rx_msg) {
      if ((r = compressed_piece(c, io.data, io.data_length)) != 0)
        return r;
      continue;
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
      if (wsm_rate_admit(c, io.data_length))
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

int wsm_rx_process(wsmsg_conn *c, const uint8_t *d, size_t n) {
  c->in = d;
  c->in_len = n;
  int r = process_frames(c);
  if (r && !c->failed && c->state != WSMSG_STATE_CLOSED)
    /* out of memory for an event or a pong: the message is lost and the
     * rest of the input unread, so the connection cannot go on */
    r = wsm_conn_fail(c, r, 1011, wsmsg_strerror(r));
  if (r == 0 && !c->failed && c->state != WSMSG_STATE_CLOSED)
    r = c->client ? check_partial_header(c, d, n) : check_rx_header(c);
  c->in = NULL;
  c->in_len = 0;
  return r;
}
