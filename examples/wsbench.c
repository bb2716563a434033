/* wsbench — a WebSocket (RFC 6455) load generator.
 *
 * Deliberately independent of wsmsg (and of any WebSocket library) so that
 * it can measure wsmsg, a bare wslay server, FastAPI or node alike: one
 * thread, level-triggered epoll, raw non-blocking sockets, and client frames
 * masked once at start-up and then written as they are.
 *
 *   wsbench [options] ws://HOST:PORT/PATH
 *
 *   -c, --connections N   connections (default 10)
 *   -p, --pipeline D      messages in flight per connection (default 1)
 *   -s, --size BYTES      payload size (default 64)
 *   -t, --type T          text | binary | json (default text).  json sends
 *                         {"user": ..., "content": ..., "timestamp": ...}
 *                         padded to --size and expects a text reply holding
 *                         "PROCESSED"; text and binary expect an echo of the
 *                         same type and length
 *   -d, --duration S      measured seconds (default 5)
 *   -w, --warmup S        seconds before measuring (default 1)
 *   -r, --rate R          open loop: R messages/s per connection, sent on a
 *                         schedule whatever the replies (default: closed
 *                         loop, a new message for every reply)
 *       --idle            open the connections, finish the handshakes, hold
 *                         them for --hold seconds, report
 *       --hold S          idle hold time (default: --duration)
 *       --cpu N           pin wsbench to CPU N
 *       --server-pid PID  sample that process's CPU time and VmRSS (from
 *                         /proc) around the measurement
 *       --sources N       spread connections over source addresses
 *                         127.0.0.1 .. 127.0.0.N (loopback targets only)
 *       --connect-timeout S  give up on connections not open by then (30)
 *       --json            print one JSON line on stdout (the human report
 *                         goes to stderr)
 *       --label S         label copied into the JSON line
 *       --allow-remote    allow a target that is not a loopback address
 *       --deflate         offer permessage-deflate (RFC 7692) with no
 *                         context takeover either way; the server must
 *                         accept it.  Every message is sent compressed
 *                         (compressed once at start-up, level 6, window
 *                         2^15, which no context takeover allows) and
 *                         replies are inflated and checked
 *       --realistic       text payloads are demo-like JSON records with
 *                         varied words (compressible like real traffic)
 *                         instead of a cycle of printable ASCII
 *
 * The report includes the bytes on the wire per message each way
 * (frame headers included), to compare with and without compression.
 *
 * Latencies come from a log-linear histogram (256 sub-buckets per power of
 * two, so every percentile is within 0.4 % of the true sample) in
 * nanoseconds, measured from the moment a message is handed to the socket
 * layer to the moment its reply has been fully parsed.
 *
 * Exit status: 0 if the run had no errors, 1 if it had some, 2 on bad usage.
 *
 * SPDX-License-Identifier: MIT
 */
#include "common/ws_frame.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/* ---- limits ---------------------------------------------------------------
 */

#define MAX_CONNS 200000
#define MAX_PIPELINE 4096
#define MAX_SIZE (256u << 20)
#define MAX_PENDING_CONNECTS 256 /* connects + handshakes in progress */
#define HS_MAX 4096              /* handshake response head */
#define JSON_REPLY_MAX 65536
#define RATE_RING 64 /* in-flight messages per connection, rate mode */
#define READ_BUDGET (1u << 20) /* bytes read per connection per pass */
#define IOV_BATCH 64
#define DRAIN_NS 3000000000ull /* wait for replies after the window */
#define CLOSE_NS 2000000000ull /* wait for the closing handshake */

/* the RFC 6455 example key: every connection uses it, so the expected
 * Sec-WebSocket-Accept is a constant */
static const char WS_KEY[] = "dGhlIHNhbXBsZSBub25jZQ==";
static const char WS_ACCEPT[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/* ---- options --------------------------------------------------------------
 */

enum { T_TEXT, T_BINARY, T_JSON };

static struct {
  char host[256];
  int port;
  char path[1024];
  long conns;
  long pipeline;
  size_t size;
  int type;
  double duration, warmup, rate, hold, connect_timeout;
  bool idle, json, allow_remote, deflate, realistic;
  int cpu;
  long server_pid;
  int sources;
  const char *label;
} opt = {.port = 80,
         .conns = 10,
         .pipeline = 1,
         .size = 64,
         .type = T_TEXT,
         .duration = 5,
         .warmup = 1,
         .rate = 0,
         .hold = -1,
         .connect_timeout = 30,
         .cpu = -1,
         .server_pid = 0,
         .sources = 1,
         .label = ""};

/* ---- time ---------------------------------------------------------------
 */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t sec_to_ns(double s) { return s <= 0 ? 0 : (uint64_t)(s * 1e9); }

/* ---- histogram (log-linear, HDR style) ----------------------------------
 */

#define H_SUB_BITS 8
#define H_SUB (1u << H_SUB_BITS) /* values below this are exact */
#define H_HALF (H_SUB / 2)       /* sub-buckets per octave above */
#define H_OCTAVES 40             /* up to 2^48 ns (~3 days) */
#define H_BUCKETS (H_SUB + H_OCTAVES * H_HALF)

typedef struct hist {
  uint64_t count[H_BUCKETS];
  uint64_t total, max;
  double sum;
} hist;

static unsigned h_index(uint64_t v) {
  if (v < H_SUB)
    return (unsigned)v;
  unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= H_SUB_BITS */
  unsigned shift = e - (H_SUB_BITS - 1);
  unsigned m = (unsigned)(v >> shift); /* in [H_HALF, H_SUB) */
  unsigned idx = H_SUB + (e - H_SUB_BITS) * H_HALF + (m - H_HALF);
  return idx < H_BUCKETS ? idx : H_BUCKETS - 1;
}

/* the largest value that falls in bucket idx */
static uint64_t h_high(unsigned idx) {
  if (idx < H_SUB)
    return idx;
  unsigned e = (idx - H_SUB) / H_HALF + H_SUB_BITS;
  unsigned m = (idx - H_SUB) % H_HALF + H_HALF;
  unsigned shift = e - (H_SUB_BITS - 1);
  return (((uint64_t)m + 1) << shift) - 1;
}

static void h_record(hist *h, uint64_t v) {
  h->count[h_index(v)]++;
  h->total++;
  h->sum += (double)v;
  if (v > h->max)
    h->max = v;
}

static uint64_t h_percentile(const hist *h, double p) {
  if (h->total == 0)
    return 0;
  uint64_t target = (uint64_t)ceil(p / 100.0 * (double)h->total);
  if (target < 1)
    target = 1;
  uint64_t acc = 0;
  for (unsigned i = 0; i < H_BUCKETS; i++) {
    acc += h->count[i];
    if (acc >= target) {
      uint64_t v = h_high(i);
      return v < h->max ? v : h->max;
    }
  }
  return h->max;
}

/* ---- statistics ---------------------------------------------------------
 */

static struct {
  uint64_t connect_failed, handshake_failed, unexpected, closed, timeouts,
      overruns;
  uint64_t opened;
  uint64_t msgs, bytes; /* replies inside the measurement window */
  uint64_t wire_in;     /* bytes read inside the window */
  uint64_t sent;        /* messages sent inside the window */
  uint64_t max_lag;     /* rate mode: worst lateness vs the schedule (ns) */
  char first_error[200];
} st;

static hist lat;

static void note_error(uint64_t *counter, const char *fmt, const char *what) {
  (*counter)++;
  if (!st.first_error[0])
    snprintf(st.first_error, sizeof(st.first_error), fmt, what);
}

/* ---- connections ----------------------------------------------------------
 */

enum {
  C_FREE = 0,   /* not started */
  C_CONNECTING, /* TCP connect in progress */
  C_HANDSHAKE,  /* request sent (or being sent), reading the response */
  C_OPEN,
  C_CLOSING, /* our close frame queued; waiting for the peer's, then EOF */
  C_DEAD
};

typedef struct conn {
  int fd;
  uint8_t state;
  uint32_t events; /* registered epoll interest */
  /* handshake */
  char *hbuf;
  uint16_t hlen;
  uint16_t req_off;
  /* output: control bytes (pong, close) go first, at a frame boundary */
  uint8_t ctl[136];
  uint8_t ctl_len, ctl_off;
  uint32_t tx_frames; /* data frames not yet fully written */
  size_t tx_off;      /* bytes of the first of them already written */
  /* input parser */
  uint8_t hdr[14];
  uint8_t hdr_len, hdr_need;
  bool in_payload;
  uint8_t op;     /* opcode of the current frame */
  bool fin;       /* FIN of the current frame */
  uint64_t left;  /* payload bytes of the current frame still to come */
  uint8_t msg_op; /* opcode of the data message in progress, 0 if none */
  uint64_t msg_len;
  uint8_t cbuf[125]; /* control frame payload */
  uint8_t clen;
  bool got_close;
  char *jbuf; /* json mode: the reply text (JSON_REPLY_MAX) */
  size_t jlen;
  /* --deflate: the reply being inflated */
  z_stream *z;
  bool zmsg;      /* the message in progress is compressed (RSV1) */
  uint64_t zout;  /* its inflated bytes so far */
  /* in-flight messages: send times, oldest first */
  uint64_t *ts;
  uint32_t ts_head, ts_count;
} conn;

static conn *conns;
static uint32_t ring_cap;
static int epfd;
static uint8_t *frame_buf; /* one prebuilt masked client frame */
static size_t frame_len;
static char request[2048];
static size_t request_len;
static uint8_t mask_key[4];
static struct sockaddr_in target;
static uint8_t *rbuf;
#define RBUF_SIZE (256u << 10)

/* phases of the run */
enum { P_CONNECT, P_RUN, P_DRAIN, P_HOLD, P_CLOSE, P_END };
static int phase;
static bool sending;            /* new messages may be queued */
static uint64_t m_start, m_end; /* measurement window */
static volatile sig_atomic_t interrupted;

static void set_events(conn *c, uint32_t want) {
  if (c->fd < 0 || want == c->events)
    return;
  struct epoll_event ev = {.events = want, .data.ptr = c};
  if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
    c->events = want;
}

static long n_pending_connects; /* CONNECTING + HANDSHAKE */
static long n_open;             /* OPEN */
static long n_resolved;         /* became OPEN or failed */
static long n_live;             /* sockets still open */

static void conn_close(conn *c) {
  if (c->fd >= 0) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    n_live--;
  }
  if (c->state == C_CONNECTING || c->state == C_HANDSHAKE) {
    n_pending_connects--;
    n_resolved++;
  }
  if (c->state == C_OPEN)
    n_open--;
  c->state = C_DEAD;
  free(c->hbuf);
  c->hbuf = NULL;
  free(c->jbuf);
  if (c->z) {
    inflateEnd(c->z);
    free(c->z);
    c->z = NULL;
  }
  c->jbuf = NULL;
}

/* A protocol violation by the server: count it and drop the connection. */
static void conn_fail(conn *c, uint64_t *counter, const char *why) {
  note_error(counter, "%s", why);
  conn_close(c);
}

/* ---- output ---------------------------------------------------------------
 */

static void queue_ctl(conn *c, uint8_t opcode, const uint8_t *p, size_t n) {
  if (n > 125 || (size_t)c->ctl_len + n + 6 > sizeof(c->ctl))
    return; /* one control frame pending at most: drop extra pongs */
  uint8_t *o = c->ctl + c->ctl_len;
  size_t h = ws_frame_header(o, (uint8_t)(0x80 | opcode), n, mask_key);
  if (n)
    memcpy(o + h, p, n);
  ws_frame_mask(o + h, n, mask_key);
  c->ctl_len = (uint8_t)(c->ctl_len + h + n);
}

static bool queue_message(conn *c, uint64_t ts) {
  if (c->ts_count >= ring_cap) {
    st.overruns++;
    return false;
  }
  c->ts[(c->ts_head + c->ts_count) % ring_cap] = ts;
  c->ts_count++;
  c->tx_frames++;
  if (ts >= m_start && ts < m_end)
    st.sent++;
  return true;
}

static ssize_t send_iov(int fd, struct iovec *iov, int n) {
  struct msghdr mh;
  memset(&mh, 0, sizeof(mh));
  mh.msg_iov = iov;
  mh.msg_iovlen = (size_t)n;
  return sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Write what is queued until the socket is full (bounded passes). */
static void flush(conn *c) {
  if (c->fd < 0)
    return;
  if (c->state == C_HANDSHAKE && c->req_off < request_len) {
    ssize_t n = send(c->fd, request + c->req_off, request_len - c->req_off,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0)
      c->req_off = (uint16_t)(c->req_off + n);
    else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
             errno != EINTR) {
      conn_fail(c, &st.handshake_failed, "handshake: send failed");
      return;
    }
    set_events(c, EPOLLIN | (c->req_off < request_len ? EPOLLOUT : 0));
    return;
  }
  if (c->state != C_OPEN && c->state != C_CLOSING)
    return;
  for (int pass = 0; pass < 64; pass++) {
    struct iovec iov[IOV_BATCH];
    int k = 0;
    size_t want = 0;
    bool ctl_first = c->ctl_len > c->ctl_off && c->tx_off == 0;
    if (ctl_first) {
      iov[k].iov_base = c->ctl + c->ctl_off;
      iov[k].iov_len = (size_t)(c->ctl_len - c->ctl_off);
      want += iov[k++].iov_len;
    }
    for (uint32_t f = 0; f < c->tx_frames && k < IOV_BATCH; f++) {
      size_t off = f == 0 ? c->tx_off : 0;
      iov[k].iov_base = frame_buf + off;
      iov[k].iov_len = frame_len - off;
      want += iov[k++].iov_len;
    }
    if (k == 0)
      break;
    ssize_t n = send_iov(c->fd, iov, k);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      if (c->state == C_CLOSING) {
        conn_close(c);
      } else {
        conn_fail(c, &st.closed, "send failed (connection reset?)");
      }
      return;
    }
    size_t done = (size_t)n;
    if (ctl_first) {
      size_t cl = (size_t)(c->ctl_len - c->ctl_off);
      size_t t = done < cl ? done : cl;
      c->ctl_off = (uint8_t)(c->ctl_off + t);
      done -= t;
      if (c->ctl_off == c->ctl_len)
        c->ctl_off = c->ctl_len = 0;
    }
    while (done > 0 && c->tx_frames > 0) {
      size_t rest = frame_len - c->tx_off;
      if (done >= rest) {
        done -= rest;
        c->tx_off = 0;
        c->tx_frames--;
      } else {
        c->tx_off += done;
        done = 0;
      }
    }
    if ((size_t)n < want)
      break; /* socket buffer full */
  }
  bool more = (c->ctl_len > c->ctl_off) || c->tx_frames > 0;
  set_events(c, EPOLLIN | (more ? EPOLLOUT : 0));
}

/* ---- input: the server's frames, parsed incrementally -------------------
 */

static void message_done(conn *c, uint64_t now) {
  uint8_t mop = c->msg_op;
  uint64_t len = c->msg_len;
  c->msg_op = 0;
  c->msg_len = 0;
  if (c->state == C_CLOSING)
    return; /* late replies during the close are not checked */
  if (c->ts_count == 0) {
    note_error(&st.unexpected, "%s", "a message nobody asked for");
    return;
  }
  uint64_t ts = c->ts[c->ts_head];
  c->ts_head = (c->ts_head + 1) % ring_cap;
  c->ts_count--;
  uint8_t want_op = opt.type == T_BINARY ? 2 : 1;
  if (mop != want_op) {
    note_error(&st.unexpected, "%s",
               mop == 1 ? "text reply to a binary message"
                        : "binary reply to a text message");
  } else if (opt.type != T_JSON && len != opt.size) {
    char why[96];
    snprintf(why, sizeof(why), "echo of %llu bytes for %zu sent",
             (unsigned long long)len, opt.size);
    note_error(&st.unexpected, "%s", why);
  } else if (opt.type == T_JSON &&
             (!c->jbuf || len > JSON_REPLY_MAX ||
              !memmem(c->jbuf, c->jlen, "PROCESSED", 9))) {
    note_error(&st.unexpected, "%s", "JSON reply without \"PROCESSED\"");
  }
  c->jlen = 0;
  if (now >= m_start && now < m_end) {
    st.msgs++;
    st.bytes += len;
    h_record(&lat, now - ts);
  }
  if (sending && opt.rate <= 0)
    (void)queue_message(c, now); /* written once the read is parsed */
}

static void frame_begin(conn *c) {
  uint8_t b0 = c->hdr[0], b1 = c->hdr[1];
  c->fin = (b0 & 0x80) != 0;
  c->op = b0 & 0x0f;
  uint64_t len = b1 & 0x7f;
  if (len == 126)
    len = (uint64_t)c->hdr[2] << 8 | c->hdr[3];
  else if (len == 127) {
    len = 0;
    for (int i = 0; i < 8; i++)
      len = len << 8 | c->hdr[2 + i];
  }
  c->left = len;
  c->in_payload = true;
  bool rsv1 = (b0 & 0x70) == 0x40 && opt.deflate && (c->op == 1 || c->op == 2);
  if ((b0 & 0x70) && !rsv1) {
    conn_fail(c, &st.unexpected, "server frame with RSV bits set");
    return;
  }
  if (b1 & 0x80) {
    conn_fail(c, &st.unexpected, "masked frame from the server");
    return;
  }
  if (c->op >= 8) {
    if (!c->fin || len > 125 || (c->op != 8 && c->op != 9 && c->op != 10))
      conn_fail(c, &st.unexpected, "bad control frame from the server");
    c->clen = 0;
    return;
  }
  if (c->op == 0) {
    if (!c->msg_op)
      conn_fail(c, &st.unexpected, "continuation frame without a message");
  } else if (c->op == 1 || c->op == 2) {
    if (c->msg_op) {
      conn_fail(c, &st.unexpected, "new message inside a fragmented one");
      return;
    }
    c->msg_op = c->op;
    c->msg_len = 0;
    c->jlen = 0;
    c->zmsg = rsv1;
    c->zout = 0;
  } else {
    conn_fail(c, &st.unexpected, "reserved opcode from the server");
    return;
  }
  if (c->state == C_OPEN || c->state == C_CLOSING)
    c->msg_len += len;
}

static void keep_json(conn *c, const uint8_t *p, size_t n);

/* --deflate: inflate a piece of a compressed reply (`last`: the message's
 * payload ended: the 00 00 ff ff tail goes in, then a reset, since the
 * server does not keep its context). */
static void inflate_piece(conn *c, const uint8_t *p, size_t n, bool last) {
  static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
  static uint8_t out[16384];
  if (!c->z) {
    c->z = calloc(1, sizeof(z_stream));
    if (!c->z || inflateInit2(c->z, -15) != Z_OK) {
      conn_fail(c, &st.unexpected, "out of memory for inflate");
      return;
    }
  }
  for (int round = 0; round < 2; round++) {
    if (round == 1) {
      if (!last)
        break;
      p = tail;
      n = sizeof(tail);
    }
    c->z->next_in = (Bytef *)(uintptr_t)p;
    c->z->avail_in = (uInt)n;
    for (int guard = 0; guard < 1 << 20; guard++) {
      c->z->next_out = out;
      c->z->avail_out = sizeof(out);
      int zr = inflate(c->z, Z_SYNC_FLUSH);
      size_t got = sizeof(out) - c->z->avail_out;
      if (zr != Z_OK && zr != Z_BUF_ERROR && zr != Z_STREAM_END) {
        conn_fail(c, &st.unexpected, "corrupt compressed reply");
        return;
      }
      c->zout += got;
      keep_json(c, out, got);
      if (c->z->avail_in == 0 && c->z->avail_out != 0)
        break;
    }
  }
  if (last)
    inflateReset(c->z);
}

static void frame_payload(conn *c, const uint8_t *p, size_t n) {
  if (c->op >= 8) {
    memcpy(c->cbuf + c->clen, p, n);
    c->clen = (uint8_t)(c->clen + n);
    return;
  }
  if (c->zmsg) {
    inflate_piece(c, p, n, false);
    return;
  }
  keep_json(c, p, n);
}

static void keep_json(conn *c, const uint8_t *p, size_t n) {
  if (opt.type == T_JSON && c->msg_op == 1) {
    if (!c->jbuf)
      c->jbuf = malloc(JSON_REPLY_MAX);
    if (c->jbuf && c->jlen + n <= JSON_REPLY_MAX) {
      memcpy(c->jbuf + c->jlen, p, n);
      c->jlen += n;
    }
  }
}

static void frame_end(conn *c, uint64_t now) {
  c->in_payload = false;
  c->hdr_len = 0;
  switch (c->op) {
  case 9: /* ping: answer (written once the read is parsed) */
    queue_ctl(c, 10, c->cbuf, c->clen);
    return;
  case 10:
    return;
  case 8:
    c->got_close = true;
    if (c->state == C_CLOSING)
      return; /* wait for the server to close TCP (it owns TIME_WAIT) */
    note_error(&st.closed, "%s", "the server closed a connection");
    {
      uint8_t code[2] = {0x03, 0xe8}; /* 1000 */
      queue_ctl(c, 8, code, 2);
      c->state = C_CLOSING;
      n_open--;
      c->tx_frames = c->tx_off ? 1 : 0; /* finish a partial frame */
      flush(c);
    }
    return;
  default:
    if (c->fin && c->zmsg) {
      inflate_piece(c, NULL, 0, true);
      if (c->fd < 0)
        return;
      c->msg_len = c->zout; /* the checks are on the inflated message */
    }
    if (c->fin)
      message_done(c, now);
  }
}

static void parse(conn *c, const uint8_t *p, size_t n, uint64_t now) {
  /* bounded by n: every pass consumes at least one byte or ends a frame */
  while (c->fd >= 0 && (c->state == C_OPEN || c->state == C_CLOSING)) {
    if (!c->in_payload) {
      if (n == 0)
        return;
      if (c->hdr_len < 2) {
        c->hdr[c->hdr_len++] = *p++;
        n--;
        if (c->hdr_len == 2) {
          uint8_t l7 = c->hdr[1] & 0x7f;
          c->hdr_need = (uint8_t)(2 +
                                  (l7 == 126   ? 2
                                   : l7 == 127 ? 8
                                               : 0) +
                                  ((c->hdr[1] & 0x80) ? 4 : 0));
        }
        if (c->hdr_len < 2)
          continue;
      } else {
        size_t k = (size_t)(c->hdr_need - c->hdr_len);
        if (k > n)
          k = n;
        memcpy(c->hdr + c->hdr_len, p, k);
        c->hdr_len = (uint8_t)(c->hdr_len + k);
        p += k;
        n -= k;
      }
      if (c->hdr_len < c->hdr_need)
        continue;
      frame_begin(c);
      if (c->fd < 0)
        return;
      if (c->left == 0)
        frame_end(c, now);
      continue;
    }
    if (n == 0)
      return;
    size_t k = c->left < n ? (size_t)c->left : n;
    frame_payload(c, p, k);
    p += k;
    n -= k;
    c->left -= k;
    if (c->left == 0)
      frame_end(c, now);
  }
}

/* ---- handshake --------------------------------------------------------------
 */

static const char *find_header(const char *head, const char *name) {
  size_t nl = strlen(name);
  const char *line = strstr(head, "\r\n");
  while (line && line[2] != '\r') {
    line += 2;
    if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
      const char *v = line + nl + 1;
      while (*v == ' ' || *v == '\t')
        v++;
      return v;
    }
    line = strstr(line, "\r\n");
  }
  return NULL;
}

static void handshake_input(conn *c, const uint8_t *p, size_t n, uint64_t now) {
  if (!c->hbuf && !(c->hbuf = malloc(HS_MAX + 1))) {
    conn_fail(c, &st.handshake_failed, "out of memory");
    return;
  }
  size_t room = HS_MAX - c->hlen;
  size_t k = n < room ? n : room;
  memcpy(c->hbuf + c->hlen, p, k);
  c->hlen = (uint16_t)(c->hlen + k);
  c->hbuf[c->hlen] = '\0';
  char *end = strstr(c->hbuf, "\r\n\r\n");
  if (!end) {
    if (c->hlen >= HS_MAX)
      conn_fail(c, &st.handshake_failed, "handshake response too large");
    return;
  }
  size_t head = (size_t)(end + 4 - c->hbuf);
  end[2] = '\0'; /* keep the last header's CRLF for find_header */
  if (strncmp(c->hbuf, "HTTP/1.1 101", 12) != 0) {
    char why[120];
    char *eol = strchr(c->hbuf, '\r');
    if (eol)
      *eol = '\0';
    snprintf(why, sizeof(why), "handshake refused: %.80s", c->hbuf);
    conn_fail(c, &st.handshake_failed, why);
    return;
  }
  const char *acc = find_header(c->hbuf, "Sec-WebSocket-Accept");
  if (!acc || strncmp(acc, WS_ACCEPT, sizeof(WS_ACCEPT) - 1) != 0) {
    conn_fail(c, &st.handshake_failed, "bad Sec-WebSocket-Accept");
    return;
  }
  if (opt.deflate) {
    const char *ext = find_header(c->hbuf, "Sec-WebSocket-Extensions");
    if (!ext || strncasecmp(ext, "permessage-deflate", 18) != 0) {
      conn_fail(c, &st.handshake_failed,
                "--deflate: the server declined permessage-deflate");
      return;
    }
  }
  /* bytes after the head already belong to the frame stream */
  size_t extra = c->hlen - head;
  uint8_t tail[HS_MAX];
  memcpy(tail, c->hbuf + head, extra);
  /* the bytes of this read that did not fit were not copied yet */
  free(c->hbuf);
  c->hbuf = NULL;
  c->state = C_OPEN;
  n_pending_connects--;
  n_open++;
  n_resolved++;
  st.opened++;
  if (opt.type == T_JSON)
    c->jbuf = malloc(JSON_REPLY_MAX);
  if (extra)
    parse(c, tail, extra, now);
  if (c->fd >= 0 && k < n)
    parse(c, p + k, n - k, now);
}

static void start_connect(conn *c, long idx) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    note_error(&st.connect_failed, "socket: %s", strerror(errno));
    c->state = C_DEAD;
    n_resolved++;
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (opt.sources > 1) {
    struct sockaddr_in src;
    memset(&src, 0, sizeof(src));
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(idx % opt.sources));
#ifdef IP_BIND_ADDRESS_NO_PORT
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
    if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
      note_error(&st.connect_failed, "bind: %s", strerror(errno));
      close(fd);
      c->state = C_DEAD;
      n_resolved++;
      return;
    }
  }
  int r = connect(fd, (struct sockaddr *)&target, sizeof(target));
  if (r < 0 && errno != EINPROGRESS) {
    note_error(&st.connect_failed, "connect: %s", strerror(errno));
    close(fd);
    c->state = C_DEAD;
    n_resolved++;
    return;
  }
  c->fd = fd;
  c->state = C_CONNECTING;
  c->events = EPOLLOUT;
  n_pending_connects++;
  n_live++;
  struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
    note_error(&st.connect_failed, "epoll_ctl: %s", strerror(errno));
    c->fd = -1;
    close(fd);
    n_live--;
    n_pending_connects--;
    n_resolved++;
    c->state = C_DEAD;
  }
}

/* ---- events -----------------------------------------------------------------
 */

static void on_readable(conn *c) {
  size_t budget = READ_BUDGET;
  for (int pass = 0; pass < 1024 && c->fd >= 0 && budget > 0; pass++) {
    ssize_t n = recv(c->fd, rbuf, RBUF_SIZE, MSG_DONTWAIT);
    if (n > 0) {
      uint64_t now = now_ns();
      if (now >= m_start && now < m_end)
        st.wire_in += (uint64_t)n;
      budget = (size_t)n >= budget ? 0 : budget - (size_t)n;
      if (c->state == C_HANDSHAKE)
        handshake_input(c, rbuf, (size_t)n, now);
      else
        parse(c, rbuf, (size_t)n, now);
      if ((size_t)n < RBUF_SIZE)
        break; /* drained (level-triggered epoll calls again if not) */
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    /* EOF or error */
    if (c->state == C_CLOSING) {
      conn_close(c);
    } else if (c->state == C_HANDSHAKE) {
      conn_fail(c, &st.handshake_failed,
                n == 0 ? "EOF during the handshake"
                       : "reset during the "
                         "handshake");
    } else if (phase == P_CLOSE) {
      conn_close(c);
    } else {
      conn_fail(c, &st.closed,
                n == 0 ? "the server closed TCP" : "connection reset");
    }
    return;
  }
  if (c->fd >= 0 && (c->tx_frames > 0 || c->ctl_len > c->ctl_off))
    flush(c);
}

static void on_event(conn *c, uint32_t ev) {
  if (c->fd < 0)
    return;
  if (c->state == C_CONNECTING) {
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
      conn_fail(c, &st.connect_failed, strerror(err));
      return;
    }
    if (!(ev & EPOLLOUT))
      return;
    c->state = C_HANDSHAKE;
    c->req_off = 0;
    flush(c);
    return;
  }
  if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
    on_readable(c);
  if (c->fd >= 0 && (ev & EPOLLOUT))
    flush(c);
}

/* ---- /proc sampling of the server ----------------------------------------
 */

static double proc_cpu_s(long pid) {
  char path[64], buf[2048];
  snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')'); /* comm may hold spaces */
  if (!p)
    return -1;
  /* fields after comm: state(3) ... utime(14) stime(15) */
  unsigned long ut = 0, stt = 0;
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
             &stt) != 2)
    return -1;
  return (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
}

static long proc_rss_kb(long pid) {
  char path[64], line[256];
  snprintf(path, sizeof(path), "/proc/%ld/status", pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  long kb = -1;
  for (int i = 0; i < 200 && fgets(line, sizeof(line), f); i++)
    if (strncmp(line, "VmRSS:", 6) == 0) {
      kb = atol(line + 6);
      break;
    }
  fclose(f);
  return kb;
}

/* CPU seconds the whole machine spent busy (all CPUs), from /proc/stat */
static double machine_busy_s(void) {
  FILE *f = fopen("/proc/stat", "r");
  if (!f)
    return -1;
  unsigned long long v[8] = {0};
  int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
                 &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
  fclose(f);
  if (n < 8)
    return -1;
  /* user nice system idle iowait irq softirq steal: all but idle, iowait */
  unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
  return (double)busy / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- set-up -----------------------------------------------------------------
 */

static int parse_url(const char *url) {
  if (strncmp(url, "ws://", 5) != 0) {
    fprintf(stderr, "wsbench: only ws:// URLs (got %s)\n", url);
    return -1;
  }
  const char *h = url + 5;
  const char *slash = strchr(h, '/');
  size_t hl = slash ? (size_t)(slash - h) : strlen(h);
  if (hl == 0 || hl >= sizeof(opt.host)) {
    fprintf(stderr, "wsbench: bad host in %s\n", url);
    return -1;
  }
  memcpy(opt.host, h, hl);
  opt.host[hl] = '\0';
  char *colon = strrchr(opt.host, ':');
  if (colon) {
    *colon = '\0';
    opt.port = atoi(colon + 1);
    if (opt.port <= 0 || opt.port > 65535) {
      fprintf(stderr, "wsbench: bad port in %s\n", url);
      return -1;
    }
  }
  snprintf(opt.path, sizeof(opt.path), "%s", slash ? slash : "/");
  for (const char *s = opt.path; *s; s++)
    if ((unsigned char)*s <= 0x20 || *s == 0x7f) {
      fprintf(stderr, "wsbench: bad path in %s\n", url);
      return -1;
    }
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(opt.host, NULL, &hints, &res) != 0 || !res) {
    fprintf(stderr, "wsbench: cannot resolve %s (IPv4 only)\n", opt.host);
    return -1;
  }
  memcpy(&target, res->ai_addr, sizeof(target));
  freeaddrinfo(res);
  target.sin_port = htons((uint16_t)opt.port);
  bool loopback = (ntohl(target.sin_addr.s_addr) >> 24) == 127;
  if (!loopback && !opt.allow_remote) {
    fprintf(stderr,
            "wsbench: %s is not a loopback address; pass "
            "--allow-remote to load another host\n",
            opt.host);
    return -1;
  }
  if (!loopback && opt.sources > 1) {
    fprintf(stderr, "wsbench: --sources needs a loopback target\n");
    return -1;
  }
  return 0;
}

/* The message payload, then the whole masked frame. */
static int build_frame(void) {
  size_t n = opt.size;
  uint8_t *payload = malloc(n ? n : 1);
  if (!payload)
    return -1;
  if (opt.type == T_JSON) {
    const char *pre = "{\"user\": \"wsbench\", \"content\": \"";
    const char *post = "\", \"timestamp\": 1700000000.5}";
    size_t fixed = strlen(pre) + strlen(post);
    if (n < fixed) {
      n = opt.size = fixed;
      free(payload);
      payload = malloc(n);
      if (!payload)
        return -1;
    }
    size_t pad = n - fixed;
    memcpy(payload, pre, strlen(pre));
    for (size_t i = 0; i < pad; i++)
      payload[strlen(pre) + i] = (uint8_t)('a' + i % 26);
    memcpy(payload + strlen(pre) + pad, post, strlen(post));
  } else if (opt.type == T_TEXT && opt.realistic) {
    /* demo-like JSON records, one per line, with varied words */
    static const char *users[] = {"alice", "bob", "carol", "dave", "erin"};
    static const char *words[] = {"hello", "world", "how",  "are",   "you",
                                  "today", "the",   "build", "is",   "green",
                                  "lunch", "at",    "noon",  "ok",   "thanks",
                                  "see",   "later", "merge", "the",  "branch"};
    size_t k = 0;
    uint32_t x = 12345u;
    for (int rec = 0; k < n; rec++) {
      char line[256];
      char content[160];
      size_t cl = 0;
      x = x * 1103515245u + 12345u;
      int nw = 3 + (int)((x >> 16) % 9);
      for (int w = 0; w < nw; w++) {
        x = x * 1103515245u + 12345u;
        cl += (size_t)snprintf(content + cl, sizeof(content) - cl, "%s%s",
                               w ? " " : "", words[(x >> 16) % 20]);
      }
      int m = snprintf(line, sizeof(line),
                       "{\"user\":\"%s\",\"content\":\"%s\",\"timestamp\":"
                       "%.3f}\n",
                       users[rec % 5], content, 1733400000.0 + rec * 0.731);
      size_t take = (size_t)m < n - k ? (size_t)m : n - k;
      memcpy(payload + k, line, take);
      k += take;
    }
  } else if (opt.type == T_TEXT) {
    for (size_t i = 0; i < n; i++)
      payload[i] = (uint8_t)(' ' + i % 95); /* printable ASCII */
  } else {
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      payload[i] = (uint8_t)x;
    }
  }
  uint32_t seed = (uint32_t)now_ns() | 1u;
  for (int i = 0; i < 4; i++) {
    seed = seed * 1103515245u + 12345u;
    mask_key[i] = (uint8_t)(seed >> 16);
  }
  uint8_t b0 = (uint8_t)(0x80 | (opt.type == T_BINARY ? 2 : 1));
  if (opt.deflate) { /* no context takeover: every copy is the same */
    uLong cap = compressBound((uLong)n) + 16;
    uint8_t *z = malloc(cap);
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (!z || deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY)) {
      free(z);
      free(payload);
      return -1;
    }
    zs.next_in = payload;
    zs.avail_in = (uInt)n;
    zs.next_out = z;
    zs.avail_out = (uInt)cap;
    deflate(&zs, Z_SYNC_FLUSH);
    size_t zn = cap - zs.avail_out;
    deflateEnd(&zs);
    if (zn >= 4)
      zn -= 4; /* the 00 00 ff ff tail (RFC 7692 7.2.1) */
    if (zn == 0)
      z[zn++] = 0;
    free(payload);
    payload = z;
    n = zn;
    b0 |= 0x40; /* RSV1 */
  }
  frame_buf = malloc(n + 14);
  if (!frame_buf) {
    free(payload);
    return -1;
  }
  size_t k = ws_frame_header(frame_buf, b0, n, mask_key);
  if (n)
    memcpy(frame_buf + k, payload, n);
  ws_frame_mask(frame_buf + k, n, mask_key);
  frame_len = k + n;
  free(payload);
  return 0;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: wsbench [options] ws://HOST:PORT/PATH\n"
          "  -c, --connections N   -p, --pipeline D   -s, --size BYTES\n"
          "  -t, --type text|binary|json   -d, --duration S   -w, --warmup S\n"
          "  -r, --rate R (msgs/s per connection, open loop)\n"
          "  --idle [--hold S]   --cpu N   --server-pid PID   --sources N\n"
          "  --connect-timeout S   --json   --label S   --allow-remote\n"
          "  --deflate   --realistic\n");
}

static bool num_arg(const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= lo && v <= hi))
    return false;
  *out = v;
  return true;
}

static int parse_args(int argc, char **argv) {
  const char *url = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    double d;
#define NUM(lo, hi)                                                            \
  do {                                                                         \
    if (!v || !num_arg(v, lo, hi, &d)) {                                       \
      fprintf(stderr, "wsbench: %s needs a number in [%g, %g]\n", a,           \
              (double)(lo), (double)(hi));                                     \
      return -1;                                                               \
    }                                                                          \
    i++;                                                                       \
  } while (0)
    if (!strcmp(a, "-c") || !strcmp(a, "--connections")) {
      NUM(1, MAX_CONNS);
      opt.conns = (long)d;
    } else if (!strcmp(a, "-p") || !strcmp(a, "--pipeline")) {
      NUM(1, MAX_PIPELINE);
      opt.pipeline = (long)d;
    } else if (!strcmp(a, "-s") || !strcmp(a, "--size")) {
      NUM(0, MAX_SIZE);
      opt.size = (size_t)d;
    } else if (!strcmp(a, "-t") || !strcmp(a, "--type")) {
      if (!v)
        return -1;
      if (!strcmp(v, "text"))
        opt.type = T_TEXT;
      else if (!strcmp(v, "binary"))
        opt.type = T_BINARY;
      else if (!strcmp(v, "json"))
        opt.type = T_JSON;
      else {
        fprintf(stderr, "wsbench: --type text|binary|json\n");
        return -1;
      }
      i++;
    } else if (!strcmp(a, "-d") || !strcmp(a, "--duration")) {
      NUM(0.1, 86400);
      opt.duration = d;
    } else if (!strcmp(a, "-w") || !strcmp(a, "--warmup")) {
      NUM(0, 3600);
      opt.warmup = d;
    } else if (!strcmp(a, "-r") || !strcmp(a, "--rate")) {
      NUM(0, 1e6);
      opt.rate = d;
    } else if (!strcmp(a, "--idle")) {
      opt.idle = true;
    } else if (!strcmp(a, "--hold")) {
      NUM(0, 86400);
      opt.hold = d;
    } else if (!strcmp(a, "--cpu")) {
      NUM(0, CPU_SETSIZE - 1);
      opt.cpu = (int)d;
    } else if (!strcmp(a, "--server-pid")) {
      NUM(1, 1e9);
      opt.server_pid = (long)d;
    } else if (!strcmp(a, "--sources")) {
      NUM(1, 254);
      opt.sources = (int)d;
    } else if (!strcmp(a, "--connect-timeout")) {
      NUM(0.1, 3600);
      opt.connect_timeout = d;
    } else if (!strcmp(a, "--deflate")) {
      opt.deflate = true;
    } else if (!strcmp(a, "--realistic")) {
      opt.realistic = true;
    } else if (!strcmp(a, "--json")) {
      opt.json = true;
    } else if (!strcmp(a, "--label")) {
      if (!v)
        return -1;
      opt.label = v;
      i++;
    } else if (!strcmp(a, "--allow-remote")) {
      opt.allow_remote = true;
    } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      exit(0);
    } else if (a[0] != '-' && !url) {
      url = a;
    } else {
      fprintf(stderr, "wsbench: unknown argument %s\n", a);
      return -1;
    }
#undef NUM
  }
  if (!url) {
    usage(stderr);
    return -1;
  }
  if (opt.hold < 0)
    opt.hold = opt.duration;
  return parse_url(url);
}

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

/* JSON-safe copy of a string (quotes, backslashes and controls escaped). */
static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      fprintf(f, "\\%c", ch);
    else if (ch < 0x20)
      fprintf(f, "\\u%04x", ch);
    else
      fputc(ch, f);
  }
  fputc('"', f);
}

/* ---- main -------------------------------------------------------------------
 */

int main(int argc, char **argv) {
  if (parse_args(argc, argv) < 0)
    return 2;
  if (opt.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(opt.cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) < 0)
      fprintf(stderr, "wsbench: cannot pin to CPU %d: %s\n", opt.cpu,
              strerror(errno));
  }
  struct rlimit rl;
  rlim_t need = (rlim_t)opt.conns + 64;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
    if (rl.rlim_max < need)
      rl.rlim_max = need; /* works as root */
    rl.rlim_cur = need;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
      getrlimit(RLIMIT_NOFILE, &rl);
      fprintf(stderr,
              "wsbench: only %llu descriptors allowed for %ld "
              "connections\n",
              (unsigned long long)rl.rlim_cur, opt.conns);
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);

  if (build_frame() < 0) {
    fprintf(stderr, "wsbench: out of memory\n");
    return 2;
  }
  int rl_len = snprintf(request, sizeof(request),
                        "GET %s HTTP/1.1\r\nHost: %s:%d\r\n"
                        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: %s\r\n"
                        "Sec-WebSocket-Version: 13\r\n%s"
                        "User-Agent: wsbench\r\n\r\n",
                        opt.path, opt.host, opt.port, WS_KEY,
                        opt.deflate ? "Sec-WebSocket-Extensions: "
                                      "permessage-deflate; "
                                      "server_no_context_takeover; "
                                      "client_no_context_takeover\r\n"
                                    : "");
  if (rl_len <= 0 || (size_t)rl_len >= sizeof(request)) {
    fprintf(stderr, "wsbench: path too long\n");
    return 2;
  }
  request_len = (size_t)rl_len;
  ring_cap = opt.rate > 0 ? RATE_RING : (uint32_t)opt.pipeline;
  conns = calloc((size_t)opt.conns, sizeof(conn));
  uint64_t *ts_all = calloc((size_t)opt.conns * ring_cap, sizeof(uint64_t));
  rbuf = malloc(RBUF_SIZE);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (!conns || !ts_all || !rbuf || epfd < 0) {
    fprintf(stderr, "wsbench: out of memory\n");
    return 2;
  }
  for (long i = 0; i < opt.conns; i++) {
    conns[i].fd = -1;
    conns[i].ts = ts_all + (size_t)i * ring_cap;
  }

  long rss_before = opt.server_pid ? proc_rss_kb(opt.server_pid) : -1;
  uint64_t t0 = now_ns();
  uint64_t connect_deadline = t0 + sec_to_ns(opt.connect_timeout);
  uint64_t t_open = 0; /* when every connection was resolved */
  uint64_t run_end = 0, drain_end = 0, close_end = 0;
  /* a hard upper bound on the whole run, whatever happens */
  uint64_t hard_end =
      connect_deadline +
      sec_to_ns(opt.warmup + (opt.idle ? opt.hold : opt.duration)) + DRAIN_NS +
      CLOSE_NS + 5000000000ull;
  double srv_cpu0 = 0, srv_cpu1 = 0, cli_cpu0 = 0, cli_cpu1 = 0;
  bool sampled0 = false, sampled1 = false;
  double mach0 = 0, mach1 = 0;
  long rss_after = -1;
  long next_connect = 0;
  /* rate mode: connection i sends at t + (k + i/N) / R */
  uint64_t period = opt.rate > 0 ? (uint64_t)(1e9 / opt.rate) : 0;
  uint64_t rate_t0 = 0, rate_round = 0;
  long rate_cursor = 0;
  m_start = m_end = UINT64_MAX;
  phase = P_CONNECT;

  struct epoll_event evs[1024];
  for (uint64_t iter = 0; iter < 4000000000ull && phase != P_END; iter++) {
    uint64_t now = now_ns();
    if (now >= hard_end) {
      fprintf(stderr, "wsbench: hard time limit reached\n");
      break;
    }
    if (interrupted && phase < P_CLOSE) {
      fprintf(stderr, "wsbench: interrupted\n");
      if (m_end > now)
        m_end = now;
      phase = P_DRAIN;
      drain_end = now;
    }
    int timeout = 100;
    switch (phase) {
    case P_CONNECT:
      while (next_connect < opt.conns &&
             n_pending_connects < MAX_PENDING_CONNECTS) {
        start_connect(&conns[next_connect], next_connect);
        next_connect++;
      }
      if (n_resolved >= opt.conns || now >= connect_deadline) {
        /* connections still not open count as connect failures */
        for (long i = 0; i < opt.conns; i++) {
          conn *c = &conns[i];
          if (c->state == C_CONNECTING || c->state == C_HANDSHAKE)
            conn_fail(c, &st.connect_failed, "connect/handshake timeout");
          else if (c->state == C_FREE) {
            c->state = C_DEAD;
            note_error(&st.connect_failed, "%s", "connect timeout");
          }
        }
        t_open = now_ns();
        if (opt.idle) {
          phase = P_HOLD;
          run_end = t_open + sec_to_ns(opt.hold);
          m_start = t_open;
          m_end = run_end;
        } else {
          phase = P_RUN;
          sending = true;
          m_start = t_open + sec_to_ns(opt.warmup);
          m_end = m_start + sec_to_ns(opt.duration);
          run_end = m_end;
          if (opt.rate > 0) {
            rate_t0 = t_open;
          } else {
            for (long i = 0; i < opt.conns; i++) {
              conn *c = &conns[i];
              if (c->state != C_OPEN)
                continue;
              for (long k = 0; k < opt.pipeline; k++)
                queue_message(c, t_open);
              flush(c);
            }
          }
        }
        continue;
      }
      timeout = 10;
      break;
    case P_RUN:
    case P_HOLD:
      if (!sampled0 && now >= m_start) {
        sampled0 = true;
        if (opt.server_pid)
          srv_cpu0 = proc_cpu_s(opt.server_pid);
        cli_cpu0 = self_cpu_s();
        mach0 = machine_busy_s();
      }
      if (now >= run_end) {
        if (opt.server_pid) {
          srv_cpu1 = proc_cpu_s(opt.server_pid);
          rss_after = proc_rss_kb(opt.server_pid);
        }
        cli_cpu1 = self_cpu_s();
        mach1 = machine_busy_s();
        sampled1 = true;
        sending = false;
        phase = opt.idle ? P_CLOSE : P_DRAIN;
        drain_end = now + (opt.idle ? 0 : DRAIN_NS);
        close_end = 0;
        continue;
      }
      if (opt.rate > 0 && phase == P_RUN) {
        /* bounded: at most one round of sends per pass */
        timeout = 0;
        for (long k = 0; k < opt.conns; k++) {
          uint64_t due = rate_t0 + rate_round * period +
                         (uint64_t)((double)period * (double)rate_cursor /
                                    (double)opt.conns);
          if (due > now) {
            uint64_t wait = (due - now + 999999) / 1000000;
            timeout = wait < 100 ? (int)wait : 100;
            break;
          }
          conn *c = &conns[rate_cursor];
          if (c->state == C_OPEN) {
            if (now - due > st.max_lag && now >= m_start)
              st.max_lag = now - due;
            if (queue_message(c, now))
              flush(c);
          }
          if (++rate_cursor == opt.conns) {
            rate_cursor = 0;
            rate_round++;
          }
        }
      } else {
        uint64_t wait = (run_end - now + 999999) / 1000000;
        timeout = wait < 100 ? (int)wait : 100;
      }
      break;
    case P_DRAIN: {
      bool busy = false;
      for (long i = 0; i < opt.conns && !busy; i++)
        busy = conns[i].state == C_OPEN && conns[i].ts_count > 0;
      if (!busy || now >= drain_end) {
        if (!sampled1) { /* interrupted before the window ended */
          sampled1 = true;
          cli_cpu1 = self_cpu_s();
          mach1 = machine_busy_s();
          if (opt.server_pid)
            srv_cpu1 = proc_cpu_s(opt.server_pid);
        }
        phase = P_CLOSE;
        continue;
      }
      timeout = 10;
      break;
    }
    case P_CLOSE:
      if (close_end == 0) {
        close_end = now + CLOSE_NS;
        for (long i = 0; i < opt.conns; i++) {
          conn *c = &conns[i];
          if (c->state == C_OPEN) {
            st.timeouts += c->ts_count;
            c->ts_count = 0;
            c->tx_frames = c->tx_off ? 1 : 0; /* finish a partial frame */
            uint8_t code[2] = {0x03, 0xe8};
            queue_ctl(c, 8, code, 2);
            c->state = C_CLOSING;
            n_open--;
            flush(c);
          } else if (c->state == C_CONNECTING || c->state == C_HANDSHAKE) {
            conn_close(c);
          }
        }
      }
      if (n_live == 0 || now >= close_end) {
        for (long i = 0; i < opt.conns; i++)
          if (conns[i].fd >= 0)
            conn_close(&conns[i]);
        phase = P_END;
        continue;
      }
      timeout = 10;
      break;
    default:
      break;
    }
    int n = epoll_wait(epfd, evs, 1024, timeout);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      perror("wsbench: epoll_wait");
      break;
    }
    for (int i = 0; i < n; i++)
      on_event((conn *)evs[i].data.ptr, evs[i].events);
  }
  for (long i = 0; i < opt.conns; i++)
    if (conns[i].fd >= 0)
      conn_close(&conns[i]);

  /* ---- report ---- */
  double window = m_end != UINT64_MAX && m_end > m_start
                      ? (double)(m_end - m_start) / 1e9
                      : 0;
  double mps = window > 0 ? (double)st.msgs / window : 0;
  double mbps = window > 0 ? (double)st.bytes / window / 1e6 : 0;
  double p50 = (double)h_percentile(&lat, 50) / 1e3;
  double p99 = (double)h_percentile(&lat, 99) / 1e3;
  double p999 = (double)h_percentile(&lat, 99.9) / 1e3;
  double pmax = (double)lat.max / 1e3;
  double mean = lat.total ? lat.sum / (double)lat.total / 1e3 : 0;
  double srv_cpu = -1;
  if (opt.server_pid && srv_cpu0 >= 0 && srv_cpu1 >= 0 && window > 0)
    srv_cpu = (srv_cpu1 - srv_cpu0) / window * 100.0;
  double cli_cpu = window > 0 ? (cli_cpu1 - cli_cpu0) / window * 100.0 : 0;
  /* CPU used by everything else on the machine during the window: a
   * measure of interference (kernel threads included) */
  double other_cpu = -1;
  if (window > 0 && mach0 >= 0 && mach1 >= 0 && sampled1)
    other_cpu = (mach1 - mach0) / window * 100.0 - cli_cpu -
                (srv_cpu >= 0 ? srv_cpu : 0);
  double connect_s = t_open > t0 ? (double)(t_open - t0) / 1e9 : 0;
  uint64_t errors = st.connect_failed + st.handshake_failed + st.unexpected +
                    st.closed + st.timeouts + st.overruns;
  const char *tname = opt.type == T_TEXT     ? "text"
                      : opt.type == T_BINARY ? "binary"
                                             : "json";
  const char *mode = opt.idle ? "idle" : opt.rate > 0 ? "rate" : "closed";
  FILE *out = opt.json ? stderr : stdout;
  fprintf(out, "wsbench: ws://%s:%d%s  %ld connections, ", opt.host, opt.port,
          opt.path, opt.conns);
  if (opt.idle)
    fprintf(out, "idle for %.1f s\n", opt.hold);
  else if (opt.rate > 0)
    fprintf(out, "%g msg/s each, %zu B %s, %.1f s (+%.1f s warm-up)\n",
            opt.rate, opt.size, tname, opt.duration, opt.warmup);
  else
    fprintf(out, "pipeline %ld, %zu B %s, %.1f s (+%.1f s warm-up)\n",
            opt.pipeline, opt.size, tname, opt.duration, opt.warmup);
  fprintf(out, "  open          %llu of %ld in %.2f s\n",
          (unsigned long long)st.opened, opt.conns, connect_s);
  if (!opt.idle) {
    fprintf(out, "  messages/s    %.0f  (%llu replies in %.2f s)\n", mps,
            (unsigned long long)st.msgs, window);
    fprintf(out,
            "  MB/s          %.2f  (payload, one direction, 1 MB = 1e6 "
            "B)\n",
            mbps);
    fprintf(out,
            "  latency us    p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean "
            "%.1f\n",
            p50, p99, p999, pmax, mean);
    if (opt.rate > 0)
      fprintf(out, "  schedule lag  max %.1f us\n", (double)st.max_lag / 1e3);
  }
  if (opt.server_pid) {
    fprintf(out,
            "  server        CPU %.1f %%, VmRSS %ld kB before, %ld kB "
            "after",
            srv_cpu, rss_before, rss_after);
    if (st.opened && rss_before >= 0 && rss_after >= 0)
      fprintf(out, " (%.2f kB per connection)",
              (double)(rss_after - rss_before) / (double)st.opened);
    fputc('\n', out);
  }
  fprintf(out, "  client CPU    %.1f %%  (rest of the machine %.1f %%)\n",
          cli_cpu, other_cpu);
  fprintf(out,
          "  errors        %llu: connect %llu, handshake %llu, unexpected "
          "%llu, closed %llu, timeouts %llu, overruns %llu\n",
          (unsigned long long)errors, (unsigned long long)st.connect_failed,
          (unsigned long long)st.handshake_failed,
          (unsigned long long)st.unexpected, (unsigned long long)st.closed,
          (unsigned long long)st.timeouts, (unsigned long long)st.overruns);
  double wire_in = st.msgs ? (double)st.wire_in / (double)st.msgs : 0;
  if (!opt.idle)
    fprintf(out,
            "  wire          %zu B per message sent, %.1f B read per reply%s\n",
            frame_len, wire_in, opt.deflate ? " (permessage-deflate)" : "");
  if (st.first_error[0])
    fprintf(out, "  first error   %s\n", st.first_error);
  if (opt.json) {
    printf("{\"label\":");
    json_str(stdout, opt.label);
    printf(",\"url\":");
    char url[1400];
    snprintf(url, sizeof(url), "ws://%s:%d%s", opt.host, opt.port, opt.path);
    json_str(stdout, url);
    printf(",\"mode\":\"%s\",\"type\":\"%s\",\"connections\":%ld,"
           "\"pipeline\":%ld,\"size\":%zu,\"rate\":%g,\"duration_s\":%.3f,"
           "\"open\":%llu,\"connect_s\":%.3f,\"messages\":%llu,"
           "\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f,\"p50_us\":%.1f,"
           "\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,"
           "\"mean_us\":%.1f,\"max_lag_us\":%.1f,\"server_cpu_pct\":%.1f,"
           "\"server_rss_kb_before\":%ld,\"server_rss_kb_after\":%ld,"
           "\"client_cpu_pct\":%.1f,\"other_cpu_pct\":%.1f,\"errors\":%llu,"
           "\"connect_failed\":%llu,\"handshake_failed\":%llu,"
           "\"unexpected\":%llu,\"closed\":%llu,\"timeouts\":%llu,"
           "\"overruns\":%llu,\"first_error\":",
           mode, tname, opt.conns, opt.pipeline, opt.size, opt.rate, window,
           (unsigned long long)st.opened, connect_s,
           (unsigned long long)st.msgs, mps, mbps, p50, p99, p999, pmax, mean,
           (double)st.max_lag / 1e3, srv_cpu, rss_before, rss_after, cli_cpu,
           other_cpu, (unsigned long long)errors,
           (unsigned long long)st.connect_failed,
           (unsigned long long)st.handshake_failed,
           (unsigned long long)st.unexpected, (unsigned long long)st.closed,
           (unsigned long long)st.timeouts, (unsigned long long)st.overruns);
    json_str(stdout, st.first_error);
    printf(",\"deflate\":%d,\"wire_out_per_msg\":%zu,"
           "\"wire_in_per_msg\":%.1f}\n",
           opt.deflate, frame_len, wire_in);
  }
  free(ts_all);
  free(conns);
  free(rbuf);
  free(frame_buf);
  close(epfd);
  return errors ? 1 : 0;
}
