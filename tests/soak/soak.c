/* soak — many concurrent WebSocket clients against an echo server, for a
 * long time, with a slice of them misbehaving.
 *
 * Library-free on purpose (epoll, raw sockets, frames built by hand), so it
 * tests the server and not itself.  It starts the server (echo_server by
 * default) with short handshake and close timeouts and --verbose, then:
 *
 *   - opens --conns connections (default 10000) from several 127.0.0.x
 *     source addresses;
 *   - well-behaved ones send text, binary, fragmented messages and pings of
 *     mixed sizes (0 B .. 1 MiB) at --rate units a second in total, and
 *     check every echo byte by byte and every pong, in order;
 *   - a slice of slots misbehave, each in cycles (connect, behave for 1-4 s,
 *     misbehave, check how it ends, reconnect): frames with RSV bits
 *     (1002), a 2 MiB frame header (1009), an invalid close code (1002),
 *     invalid UTF-8, whole or as an unfinished fragment (1007), a peer that
 *     never reads (1008 from the 8 MiB backpressure limit, or cut by the
 *     close timeout), a peer that drops the TCP connection mid-frame (1006
 *     in the server's log), a handshake that stalls (408);
 *   - samples the server's VmRSS and CPU every second;
 *   - at the end closes every good connection with 1000, stops the server
 *     with SIGTERM (exit status 0), and checks the server's log: every
 *     connection's on_close code matches what its slot did.
 *
 * Exit status 0 when: no error on any well-behaved connection, every
 * finished misbehaving cycle ended with its code, the server's RSS grew by
 * at most the tolerance between the 1/3 mark (20 s of 60) and the end, and
 * the server exited 0.
 *
 *   soak [--server PATH] [--seconds 60] [--conns 10000] [--rate 5000]
 *        [--rss-tolerance-kb 2048] [--hs-timeout 2000] [--close-timeout 2000]
 *        [--log FILE] [--sources 16] [--samples CSV] [--malloc-defaults 0]
 *
 * Every loop is bounded; the whole run ends by --seconds + 40 s. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "../../examples/common/ws_frame.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MIB (1u << 20)
#define NEXP 64         /* expectations a connection can have queued */
#define MAX_OUTSTANDING 8 /* replies pending per good connection */
#define OUT_LOW (256u << 10) /* generate more only under this much output */
#define NEVERREADERS 4

/* ---- kinds of slots --------------------------------------------------- */

enum kind {
  K_GOOD,
  K_RSV,       /* data frame with RSV bits + garbage: 1002 */
  K_OVERSIZE,  /* 2 MiB frame header: 1009 */
  K_BADCLOSE,  /* close frame with an invalid code: 1002 */
  K_UTF8,      /* invalid UTF-8, whole or an unfinished fragment: 1007 */
  K_NEVERREAD, /* stop reading, keep sending: 1008 */
  K_DROP,      /* TCP close or reset in the middle of a frame: 1006 */
  K_STALL,     /* half a handshake, then nothing: 408 */
  NKINDS
};
static const char *kind_name[NKINDS] = {"good",      "rsv",  "oversize",
                                        "badclose",  "utf8", "neverread",
                                        "drop",      "stall"};
/* close code the server must report (its on_close), and send */
static const int kind_code[NKINDS] = {1000, 1002, 1009, 1002,
                                      1007, 1008, 1006, 408};

enum state {
  S_IDLE,       /* waiting to (re)connect at t_next */
  S_CONNECTING, /* connect() in progress */
  S_HANDSHAKE,  /* request sent, waiting for 101 */
  S_OPEN,       /* exchanging messages */
  S_FAILING,    /* misbehaved: waiting for the close frame */
  S_STUCK,      /* never-reader: sending until the server stops reading */
  S_CLOSING,    /* we sent close (good, at the end): waiting for the echo */
  S_EOF,        /* close frame seen: waiting for the server's FIN */
  S_STALLED,    /* half handshake sent: waiting for 408 */
  S_DONE
};

enum etype { E_TEXT = 1, E_BINARY = 2, E_PONG = 10, E_CLOSE = 8 };

typedef struct {
  uint8_t type;
  uint16_t code;
  uint32_t seq;
  uint32_t size;
  uint32_t t_sent; /* ms since the start */
} expect_t;

typedef struct conn {
  int fd;
  int slot;
  uint8_t kind, state;
  bool misbehaved, reading, counted_open;
  bool choppy; /* writes its bytes a few at a time, one piece per pass */
  uint32_t cycle;
  uint64_t t_state, t_next, t_misbehave, t_last_progress, t_connect, t_stuck;
  uint64_t t_last_rx;
  uint8_t rounds; /* never-reader: pushes so far this cycle */
  uint32_t seq;
  uint32_t rng;
  /* output */
  uint8_t *out;
  size_t out_len, out_off, out_cap;
  uint64_t never_sent; /* never-reader: bytes of messages queued */
  /* input: HTTP response, then frames */
  char http[1024];
  size_t http_len;
  uint8_t hdr[10];
  uint8_t hdr_have, hdr_need;
  uint8_t op, fin, in_msg, msg_op, in_payload, discard;
  uint64_t pl_left;
  uint8_t ctl[125];
  uint8_t ctl_len;
  uint64_t msg_off;
  expect_t exp[NEXP];
  uint8_t exp_head, exp_n;
} conn;

/* ---- options and global state ------------------------------------------- */

static struct {
  const char *server;
  int seconds, conns, rate, sources;
  long rss_tol_kb;
  int hs_timeout, close_timeout;
  const char *log, *samples;
  int malloc_defaults;
} O = {"examples/echo_server", 60, 10000, 5000, 16, 2048, 2000, 2000, NULL,
       NULL, 0};

static struct {
  int ep, port;
  pid_t pid;
  conn *c;
  int nconns;
  uint64_t t0;
  uint64_t sent_units, sent_msgs, sent_pings, sent_bytes;
  uint64_t echoes_ok, pongs_ok, echo_bytes;
  uint64_t good_msgs, good_pings, good_echoes, good_pongs; /* K_GOOD only */
  uint64_t errors, good_closed_ok;
  uint64_t opened[NKINDS], cycles_ok[NKINDS], cycles_cut[NKINDS],
      unfinished[NKINDS];
  uint64_t neverread_saw_1008, neverread_cut, neverread_rounds;
  uint64_t late_408_max; /* ms past the handshake timeout, at most */
  uint64_t connect_fail;
  int open_now, max_open;
  uint64_t max_lag; /* longest pass of our own loop, ms */
  int rr; /* round-robin cursor for sending */
  int *bad, nbad; /* indexes of the misbehaving slots */
  int nchoppy;
  bool sending, closing_phase;
  char errbuf[20][200];
  int nerr_logged;
} G;

/* per-second samples */
#define MAXSAMPLES 4096
static struct {
  double t;
  long rss_kb;
  double srv_cpu, cli_cpu; /* % of one core over the last second */
  int open;
  uint64_t echoes;
} S[MAXSAMPLES];
static int nsamples;

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint32_t xr(uint32_t *s) { /* xorshift32 */
  uint32_t x = *s ? *s : 0x9e3779b9u;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *s = x;
}

/* errors counted by their format string */
static struct {
  const char *fmt;
  uint64_t n;
} EK[64];

static void error_at(conn *c, const char *fmt, ...) {
  G.errors++;
  for (int i = 0; i < 64; i++) {
    if (!EK[i].fmt)
      EK[i].fmt = fmt;
    if (EK[i].fmt == fmt) {
      EK[i].n++;
      break;
    }
  }
  if (G.nerr_logged >= 20)
    return;
  char msg[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  snprintf(G.errbuf[G.nerr_logged++], sizeof(G.errbuf[0]),
           "t=%.1fs slot %d (%s, cycle %u, seq %u): %s",
           (double)(now_ms() - G.t0) / 1000, c->slot, kind_name[c->kind],
           c->cycle, c->seq, msg);
}

/* ---- payloads ------------------------------------------------------------
 * A message is a pure function of (slot, seq, type, size): the sender
 * generates it into the frame, the receiver regenerates it to compare. */

static const uint8_t UNIT[12] = {'a',  0xc3, 0xa9, 0xe2, 0x82, 0xac,
                                 0xf0, 0x9f, 0x98, 0x80, 'z',  '!'};

static void gen(uint8_t *dst, int type, int slot, uint32_t seq, uint64_t size,
                uint64_t off, size_t n) {
  if (type == E_TEXT) {
    static const char hex[] = "0123456789abcdef";
    uint64_t full = size >= 8 ? (size - 8) / 12 * 12 : 0;
    for (size_t i = 0; i < n; i++) {
      uint64_t o = off + i;
      if (o < 8)
        dst[i] = (uint8_t)hex[(seq >> (28 - 4 * o)) & 15];
      else if (o - 8 < full)
        dst[i] = UNIT[(o - 8) % 12];
      else
        dst[i] = (uint8_t)('A' + (o % 26));
    }
  } else { /* binary and ping payloads */
    uint32_t x = seq * 0x9e3779b1u ^ (uint32_t)slot * 0x85ebca77u ^
                 (uint32_t)type * 0xc2b2ae3du;
    for (size_t i = 0; i < n; i++) {
      uint64_t o = off + i;
      dst[i] = (uint8_t)((x >> ((o & 3) * 8)) ^ (o * 131) ^ (o >> 9));
    }
  }
}

static uint32_t pick_size(conn *c) {
  uint32_t r = xr(&c->rng) % 1000;
  uint32_t v = xr(&c->rng);
  if (r < 600)
    return v % 126;
  if (r < 850)
    return 126 + v % (4096 - 126);
  if (r < 970)
    return 4096 + v % (65536 - 4096);
  if (r < 999)
    return 65536 + v % (262144 - 65536);
  return 262144 + v % (MIB - 262144 + 1); /* up to 1 MiB, the limit */
}

/* ---- output ------------------------------------------------------------------ */

static uint8_t *out_reserve(conn *c, size_t n) {
  if (c->out_off == c->out_len)
    c->out_off = c->out_len = 0;
  if (c->out_cap - c->out_len < n) {
    if (c->out_off) {
      memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
      c->out_len -= c->out_off;
      c->out_off = 0;
    }
    if (c->out_cap - c->out_len < n) {
      size_t cap = c->out_cap ? c->out_cap : 4096;
      while (cap - c->out_len < n)
        cap *= 2;
      uint8_t *p = realloc(c->out, cap);
      if (!p) {
        fprintf(stderr, "soak: out of memory\n");
        exit(3);
      }
      c->out = p;
      c->out_cap = cap;
    }
  }
  return c->out + c->out_len;
}

/* Append one masked frame whose payload is generated (gen_type != 0) or
 * copied from `data`. */
static void put_frame(conn *c, uint8_t b0, uint64_t len, int gen_type,
                      uint32_t seq, uint64_t msg_size, uint64_t msg_off,
                      const uint8_t *data) {
  uint8_t *p = out_reserve(c, len + 14);
  uint32_t k = xr(&c->rng);
  uint8_t key[4] = {(uint8_t)k, (uint8_t)(k >> 8), (uint8_t)(k >> 16),
                    (uint8_t)(k >> 24)};
  size_t h = ws_frame_header(p, b0, len, key);
  if (gen_type)
    gen(p + h, gen_type, c->slot, seq, msg_size, msg_off, (size_t)len);
  else if (len)
    memcpy(p + h, data, (size_t)len);
  ws_frame_mask(p + h, (size_t)len, key);
  c->out_len += h + (size_t)len;
  G.sent_bytes += h + len;
}

static bool expect(conn *c, uint8_t type, uint32_t seq, uint32_t size,
                   uint16_t code) {
  if (c->exp_n == NEXP) {
    error_at(c, "expectation queue full");
    return false;
  }
  expect_t *e = &c->exp[(c->exp_head + c->exp_n) % NEXP];
  e->type = type;
  e->seq = seq;
  e->size = size;
  e->code = code;
  e->t_sent = (uint32_t)(now_ms() - G.t0);
  c->exp_n++;
  return true;
}

static void send_ping(conn *c) {
  uint32_t seq = c->seq++;
  uint8_t p[125];
  size_t n = seq % 126;
  gen(p, E_PONG, c->slot, seq, n, 0, n);
  put_frame(c, 0x89, n, 0, 0, 0, 0, p);
  expect(c, E_PONG, seq, (uint32_t)n, 0);
  G.sent_pings++;
  if (c->kind == K_GOOD)
    G.good_pings++;
}

/* One send unit: a message (maybe fragmented, maybe with a ping inside) or
 * a ping. */
static void send_unit(conn *c) {
  uint32_t r = xr(&c->rng) % 100;
  G.sent_units++;
  if (r < 10) {
    send_ping(c);
    return;
  }
  int type = (xr(&c->rng) & 1) ? E_TEXT : E_BINARY;
  uint32_t seq = c->seq++;
  uint32_t size = pick_size(c);
  G.sent_msgs++;
  if (c->kind == K_GOOD)
    G.good_msgs++;
  if (r < 15 && size >= 24) { /* fragmented: 2-4 pieces, maybe a ping */
    int nfrag = 2 + (int)(xr(&c->rng) % 3);
    bool ping_inside = xr(&c->rng) % 3 == 0;
    uint64_t off = 0;
    for (int i = 0; i < nfrag; i++) {
      uint64_t len = i == nfrag - 1 ? size - off : (size / (uint64_t)nfrag);
      if (i == 1 && i < nfrag - 1 && xr(&c->rng) % 4 == 0)
        len = 0; /* an empty middle fragment now and then */
      uint8_t b0 = (uint8_t)((i == nfrag - 1 ? 0x80 : 0) |
                             (i == 0 ? type : 0));
      put_frame(c, b0, len, type, seq, size, off, NULL);
      off += len;
      if (i == 0 && ping_inside)
        send_ping(c); /* its pong comes before the echo */
    }
  } else {
    put_frame(c, (uint8_t)(0x80 | type), size, type, seq, size, 0, NULL);
  }
  expect(c, (uint8_t)type, seq, size, 0);
}

/* ---- connections ------------------------------------------------------------- */

static void set_state(conn *c, int st) {
  c->state = (uint8_t)st;
  c->t_state = now_ms();
}

static void ep_mod(conn *c) {
  struct epoll_event ev = {0};
  ev.data.ptr = c;
  if (c->reading)
    ev.events |= EPOLLIN | EPOLLRDHUP;
  if ((c->out_len > c->out_off && !c->choppy) || c->state == S_CONNECTING)
    ev.events |= EPOLLOUT;
  epoll_ctl(G.ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_close(conn *c, bool reset) {
  if (c->fd >= 0) {
    if (reset) {
      struct linger l = {1, 0};
      setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
    epoll_ctl(G.ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    G.open_now--;
  }
  c->out_len = c->out_off = 0;
  if (c->out_cap > (64u << 10)) { /* give big buffers back */
    free(c->out);
    c->out = NULL;
    c->out_cap = 0;
  }
}

/* A misbehaving slot's cycle is over: next one after a pause. */
static void cycle_end(conn *c, bool ok, bool reset) {
  if (ok)
    G.cycles_ok[c->kind]++;
  conn_close(c, reset);
  c->t_next = now_ms() + 200 + xr(&c->rng) % 800;
  set_state(c, S_IDLE);
}

static void start_connect(conn *c) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error_at(c, "socket: %s", strerror(errno));
    c->t_next = now_ms() + 1000;
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
  if (c->kind == K_NEVERREAD) { /* small buffers: the queue grows sooner */
    int sz = 16384;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
  }
  struct sockaddr_in src = {0}, dst = {0};
  src.sin_family = AF_INET;
  src.sin_addr.s_addr =
      htonl(0x7f000002u + (uint32_t)((c->slot + (int)c->cycle) % O.sources));
  if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
    error_at(c, "bind: %s", strerror(errno));
    close(fd);
    c->t_next = now_ms() + 1000;
    return;
  }
  dst.sin_family = AF_INET;
  dst.sin_port = htons((uint16_t)G.port);
  dst.sin_addr.s_addr = htonl(0x7f000001u);
  c->fd = fd;
  G.open_now++;
  if (G.open_now > G.max_open)
    G.max_open = G.open_now;
  c->cycle++;
  c->seq = 0;
  c->http_len = 0;
  c->hdr_have = 0;
  c->hdr_need = 2;
  c->in_msg = 0;
  c->exp_n = 0;
  c->in_payload = 0;
  c->discard = 0;
  c->misbehaved = false;
  c->counted_open = false;
  c->never_sent = 0;
  c->rounds = 0;
  c->reading = true;
  G.opened[c->kind]++;
  set_state(c, S_CONNECTING);
  c->t_connect = c->t_state;
  struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
  epoll_ctl(G.ep, EPOLL_CTL_ADD, fd, &ev);
  if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 &&
      errno != EINPROGRESS) {
    G.connect_fail++;
    error_at(c, "connect: %s", strerror(errno));
    conn_close(c, false);
    c->t_next = now_ms() + 1000;
    set_state(c, S_IDLE);
  }
}

static const char KEY[] = "dGhlIHNhbXBsZSBub25jZQ==";
static const char ACCEPT[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="; /* RFC 6455 1.3 */

static void send_request(conn *c) {
  char req[512];
  int n = snprintf(req, sizeof(req),
                   "GET /soak/%s/%d/%u HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                   kind_name[c->kind], c->slot, c->cycle, G.port, KEY);
  if (c->kind == K_STALL) {
    /* half a request, or nothing at all (every other cycle) */
    n = c->cycle % 2 ? n / 2 : 0;
    set_state(c, S_STALLED);
  } else {
    set_state(c, S_HANDSHAKE);
  }
  memcpy(out_reserve(c, (size_t)n), req, (size_t)n);
  c->out_len += (size_t)n;
}

/* A never-reader's connection ended before we read its close frame.  Fine
 * if the server's close timeout did it: that runs from the 1008, which
 * came after we started pushing; earlier means the server reset us. */
static void neverread_cut(conn *c) {
  uint64_t el = now_ms() - c->t_stuck;
  bool ok = el + 50 >= (uint64_t)O.close_timeout;
  if (!ok)
    error_at(c, "never-reader reset %" PRIu64 " ms after it stopped reading, "
                "before the close timeout", el);
  G.neverread_cut++;
  G.cycles_cut[c->kind]++;
  cycle_end(c, ok, false);
}

static void flush_out(conn *c) {
  for (int i = 0; i < 64 && c->fd >= 0 && c->out_len > c->out_off; i++) {
    size_t want = c->out_len - c->out_off;
    if (c->choppy && i > 0)
      break; /* one piece per pass */
    if (c->choppy) { /* half the pieces 1-16 bytes, half up to 16 KiB */
      uint32_t r = xr(&c->rng);
      size_t piece = r & 1 ? 1 + (r >> 1) % 16 : 1 + (r >> 1) % 16384;
      if (piece < want)
        want = piece;
    }
    ssize_t n = send(c->fd, c->out + c->out_off, want,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      c->out_off += (size_t)n;
      c->t_last_progress = now_ms();
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    /* the server is gone: expected only after it failed us */
    if (c->kind == K_GOOD || (!c->misbehaved && c->state == S_OPEN))
      error_at(c, "send: %s", n < 0 ? strerror(errno) : "0");
    else if (c->kind == K_NEVERREAD) {
      neverread_cut(c);
      return;
    }
    c->out_len = c->out_off = 0;
    break;
  }
  if (c->fd >= 0)
    ep_mod(c);
}

/* The misbehaviour of this slot's kind. */
static void misbehave(conn *c) {
  uint8_t junk[64];
  c->misbehaved = true;
  set_state(c, S_FAILING);
  switch (c->kind) {
  case K_RSV: {
    uint8_t b0 = (uint8_t)(0x80 | ((1 + xr(&c->rng) % 7) << 4) |
                           (1 + xr(&c->rng) % 2));
    for (int i = 0; i < 64; i++)
      junk[i] = (uint8_t)xr(&c->rng);
    put_frame(c, b0, 64, 0, 0, 0, 0, junk);
    expect(c, E_CLOSE, 0, 0, 1002);
    break;
  }
  case K_OVERSIZE: {
    uint8_t *p = out_reserve(c, 14 + 100);
    p[0] = 0x82;
    p[1] = 0x80 | 127;
    uint64_t len = 2 * MIB;
    for (int i = 0; i < 8; i++)
      p[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    memset(p + 10, 0, 4 + 100);
    c->out_len += 114;
    expect(c, E_CLOSE, 0, 0, 1009);
    break;
  }
  case K_BADCLOSE: {
    static const uint16_t bad[] = {0,    999,  1004, 1005, 1006,
                                   1015, 1016, 2000, 2999, 5000};
    uint16_t code = bad[xr(&c->rng) % 10];
    uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    put_frame(c, 0x88, 2, 0, 0, 0, 0, p);
    expect(c, E_CLOSE, 0, 0, 1002);
    break;
  }
  case K_UTF8: {
    static const uint8_t *seqs[] = {
        (const uint8_t *)"ok \xed\xa0\x80", (const uint8_t *)"\xc0\xaf",
        (const uint8_t *)"abcdefgh\xf4\x90\x80\x80", (const uint8_t *)"\xff",
        (const uint8_t *)"\xe2\x82\x41"};
    const uint8_t *s = seqs[xr(&c->rng) % 5];
    size_t n = strlen((const char *)s);
    /* every other cycle: an unfinished first fragment (fail fast) */
    put_frame(c, c->cycle % 2 ? 0x01 : 0x81, n, 0, 0, 0, 0, s);
    expect(c, E_CLOSE, 0, 0, 1007);
    break;
  }
  case K_NEVERREAD:
    c->reading = false; /* read nothing from now on */
    c->t_last_progress = now_ms();
    set_state(c, S_STUCK);
    c->t_stuck = c->t_state;
    c->rounds = 1;
    break;
  case K_DROP: {
    /* half of a 1000-byte text frame, then close or reset */
    uint8_t *p = out_reserve(c, 8 + 300);
    p[0] = 0x81;
    p[1] = 0x80 | 126;
    p[2] = 1000 >> 8;
    p[3] = 1000 & 255;
    memset(p + 4, 0, 4 + 300);
    memset(p + 8, 'd', 300);
    c->out_len += 308;
    flush_out(c);
    cycle_end(c, true, c->cycle % 2 == 0);
    return;
  }
  default:
    break;
  }
  flush_out(c);
}

/* ---- input ------------------------------------------------------------------------ */

static void got_close(conn *c, uint16_t code) {
  /* a never-reader's echoes stop where the server stopped reading */
  if (c->kind == K_NEVERREAD && c->misbehaved) {
    while (c->exp_n && c->exp[c->exp_head].type != E_CLOSE) {
      c->exp_head = (uint8_t)((c->exp_head + 1) % NEXP);
      c->exp_n--;
    }
    if (code == 1008)
      G.neverread_saw_1008++;
    else
      error_at(c, "never-reader got close %u, expected 1008", code);
    set_state(c, S_EOF);
    return;
  }
  if (!c->exp_n || c->exp[c->exp_head].type != E_CLOSE) {
    error_at(c, "unexpected close %u (%u replies pending)", code, c->exp_n);
    set_state(c, S_EOF);
    return;
  }
  expect_t *e = &c->exp[c->exp_head];
  if (code != e->code)
    error_at(c, "close %u, expected %u", code, e->code);
  c->exp_head = (uint8_t)((c->exp_head + 1) % NEXP);
  c->exp_n--;
  if (c->kind == K_GOOD && code == 1000)
    G.good_closed_ok++;
  set_state(c, S_EOF);
}

/* A frame's payload bytes (or its end: n == 0 && end). */
static bool payload(conn *c, const uint8_t *d, size_t n, bool end) {
  uint8_t op = c->op;
  if (op >= 8) {
    if (c->ctl_len + n > 125) {
      error_at(c, "control frame over 125 bytes");
      return false;
    }
    memcpy(c->ctl + c->ctl_len, d, n);
    c->ctl_len = (uint8_t)(c->ctl_len + n);
    if (!end)
      return true;
    if (op == 8) {
      uint16_t code = c->ctl_len >= 2 ? (uint16_t)(c->ctl[0] << 8 | c->ctl[1])
                                      : 1005;
      got_close(c, code);
      return true;
    }
    if (op == 9) {
      error_at(c, "server sent a ping");
      return false;
    }
    if (op != 10) {
      error_at(c, "reserved opcode %u from the server", op);
      return false;
    }
    if (!c->exp_n || c->exp[c->exp_head].type != E_PONG) {
      error_at(c, "unexpected pong");
      return false;
    }
    expect_t *e = &c->exp[c->exp_head];
    uint8_t want[125];
    gen(want, E_PONG, c->slot, e->seq, e->size, 0, e->size);
    if (c->ctl_len != e->size || memcmp(want, c->ctl, e->size) != 0) {
      error_at(c, "pong payload differs (ping seq %u)", e->seq);
      return false;
    }
    c->exp_head = (uint8_t)((c->exp_head + 1) % NEXP);
    c->exp_n--;
    G.pongs_ok++;
    if (c->kind == K_GOOD)
      G.good_pongs++;
    /* a pong that is a unit of its own completes it */
    return true;
  }
  /* data */
  if (!c->exp_n || (c->exp[c->exp_head].type != E_TEXT &&
                    c->exp[c->exp_head].type != E_BINARY)) {
    error_at(c, "unexpected data frame (opcode %u)", op);
    return false;
  }
  expect_t *e = &c->exp[c->exp_head];
  if (!c->in_msg && e->type != c->msg_op) {
    error_at(c, "echo has opcode %u, expected %u", c->msg_op, e->type);
    return false;
  }
  c->in_msg = 1;
  if (c->msg_off + n > e->size) {
    error_at(c, "echo longer than the %u bytes sent", e->size);
    return false;
  }
  uint8_t want[16384];
  for (size_t i = 0; i < n;) {
    size_t k = n - i < sizeof(want) ? n - i : sizeof(want);
    gen(want, e->type, c->slot, e->seq, e->size, c->msg_off, k);
    if (memcmp(want, d + i, k) != 0) {
      error_at(c, "echo differs from what was sent near byte %" PRIu64,
               c->msg_off);
      return false;
    }
    i += k;
    c->msg_off += k;
  }
  if (end && c->fin) {
    if (c->msg_off != e->size) {
      error_at(c, "echo of %" PRIu64 " bytes, sent %u", c->msg_off,
               e->size);
      return false;
    }
    c->in_msg = 0;
    c->exp_head = (uint8_t)((c->exp_head + 1) % NEXP);
    c->exp_n--;
    G.echoes_ok++;
    G.echo_bytes += e->size;
    if (c->kind == K_GOOD)
      G.good_echoes++;
  }
  return true;
}

static bool frames(conn *c, const uint8_t *d, size_t n) {
  size_t i = 0;
  while (i < n) {
    if (!c->in_payload) {
      if (c->hdr_have == 0 && c->state == S_EOF) {
        error_at(c, "%zu bytes after the close frame", n - i);
        return false;
      }
      c->hdr[c->hdr_have++] = d[i++];
      if (c->hdr_have == 2) {
        uint8_t b0 = c->hdr[0], b1 = c->hdr[1];
        if (b0 & 0x70) {
          error_at(c, "server frame with RSV bits");
          return false;
        }
        if (b1 & 0x80) {
          error_at(c, "masked server frame");
          return false;
        }
        uint8_t l7 = b1 & 127;
        c->hdr_need = (uint8_t)(2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0));
      }
      if (c->hdr_have < c->hdr_need)
        continue;
      uint8_t l7 = c->hdr[1] & 127;
      uint64_t len = l7;
      if (l7 == 126) {
        len = (uint64_t)c->hdr[2] << 8 | c->hdr[3];
        if (len < 126) {
          error_at(c, "non-minimal 16-bit length from the server");
          return false;
        }
      } else if (l7 == 127) {
        len = 0;
        for (int k = 2; k < 10; k++)
          len = len << 8 | c->hdr[k];
        if (len < 65536 || len >> 63) {
          error_at(c, "bad 64-bit length from the server");
          return false;
        }
      }
      c->op = c->hdr[0] & 15;
      c->fin = c->hdr[0] >> 7;
      c->pl_left = len;
      c->hdr_have = 0;
      c->hdr_need = 2;
      if (c->op >= 8) {
        c->ctl_len = 0;
        if (!c->fin || len > 125) {
          error_at(c, "bad control frame from the server");
          return false;
        }
      } else if (c->op == 0) {
        if (!c->in_msg) {
          error_at(c, "continuation without a message");
          return false;
        }
      } else {
        if (c->in_msg) {
          error_at(c, "new message inside a message");
          return false;
        }
        c->msg_op = c->op;
        c->msg_off = 0;
      }
      if (len == 0) {
        if (!payload(c, NULL, 0, true))
          return false;
      } else {
        c->in_payload = 1;
      }
      continue;
    }
    size_t k = n - i < c->pl_left ? n - i : (size_t)c->pl_left;
    c->pl_left -= k;
    if (c->pl_left == 0)
      c->in_payload = 0;
    if (!payload(c, d + i, k, c->pl_left == 0))
      return false;
    i += k;
  }
  return true;
}

static void on_http(conn *c, size_t *used, const uint8_t *d, size_t n) {
  size_t room = sizeof(c->http) - 1 - c->http_len;
  size_t take = n < room ? n : room;
  memcpy(c->http + c->http_len, d, take);
  c->http_len += take;
  c->http[c->http_len] = '\0';
  char *end = strstr(c->http, "\r\n\r\n");
  if (!end) {
    *used = take;
    if (c->http_len == sizeof(c->http) - 1)
      error_at(c, "HTTP response head too long");
    return;
  }
  *used = (size_t)(end + 4 - c->http) - (c->http_len - take);
  if (c->state == S_STALLED) {
    /* from our connect(): the server accepted later, so its timeout
     * cannot have passed earlier than this */
    uint64_t el = now_ms() - c->t_connect;
    if (strncmp(c->http, "HTTP/1.1 408 ", 13) != 0)
      error_at(c, "stalled handshake got %.20s", c->http);
    else if (el < (uint64_t)O.hs_timeout || el > (uint64_t)O.hs_timeout + 5000)
      error_at(c, "408 after %" PRIu64 " ms (timeout %d)", el, O.hs_timeout);
    if (el > (uint64_t)O.hs_timeout && el - (uint64_t)O.hs_timeout > G.late_408_max)
      G.late_408_max = el - (uint64_t)O.hs_timeout;
    set_state(c, S_EOF);
    return;
  }
  if (strncmp(c->http, "HTTP/1.1 101 ", 13) != 0 ||
      !strstr(c->http, ACCEPT)) {
    error_at(c, "handshake answered %.30s", c->http);
    set_state(c, S_EOF);
    return;
  }
  set_state(c, S_OPEN);
  c->counted_open = true;
  c->t_misbehave = c->kind == K_GOOD
                       ? UINT64_MAX
                       : now_ms() + 1000 + xr(&c->rng) % 3000;
}

static void on_readable(conn *c) {
  uint8_t buf[65536];
  for (int round = 0; round < 16 && c->fd >= 0 && c->reading; round++) {
    ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && errno == EINTR)
      continue;
    if (n > 0)
      c->t_last_rx = now_ms();
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return;
    if (n <= 0) { /* EOF or reset */
      bool reset = n < 0;
      switch (c->state) {
      case S_EOF:
        if (c->kind == K_GOOD) {
          conn_close(c, false);
          set_state(c, S_DONE);
        } else {
          cycle_end(c, true, false);
        }
        return;
      case S_STUCK:
      case S_FAILING:
        if (c->kind == K_NEVERREAD) { /* cut by the close timeout */
          neverread_cut(c);
          return;
        }
        /* fall through */
      default:
        error_at(c, "%s in state %d with %u replies pending",
                 reset ? strerror(errno) : "EOF", c->state, c->exp_n);
        if (c->kind == K_GOOD) {
          conn_close(c, false);
          set_state(c, S_DONE);
        } else {
          cycle_end(c, false, false);
        }
        return;
      }
    }
    size_t off = 0;
    if (c->discard)
      continue; /* an HTTP error body: wait for the EOF */
    if (c->state == S_HANDSHAKE || c->state == S_STALLED) {
      on_http(c, &off, buf, (size_t)n);
      if (c->state == S_HANDSHAKE || c->state == S_STALLED)
        continue;
      if (c->state == S_EOF) { /* 408 (or a failed handshake) */
        c->discard = 1;
        continue;
      }
    }
    if (off < (size_t)n && !frames(c, buf + off, (size_t)n - off)) {
      /* a protocol error from the server: this connection is done */
      if (c->kind == K_GOOD) {
        conn_close(c, true);
        set_state(c, S_DONE);
      } else {
        cycle_end(c, false, true);
      }
      return;
    }
  }
}

/* ---- the server process ----------------------------------------------------------- */

static long read_rss_kb(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  long kb = -1;
  while (fgets(line, sizeof(line), f))
    if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
      break;
  fclose(f);
  return kb;
}

static double proc_cpu_s(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  if (!p)
    return -1;
  unsigned long ut = 0, st = 0;
  /* fields after ')': state(3) ... utime(14) stime(15) */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
             &ut, &st) != 2)
    return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(0x7f000001u);
  socklen_t l = sizeof(a);
  if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
      getsockname(fd, (struct sockaddr *)&a, &l) < 0) {
    perror("soak: bind");
    exit(2);
  }
  close(fd);
  return ntohs(a.sin_port);
}

static void start_server(void) {
  char port[16], hs[16], cl[16];
  G.port = free_port();
  snprintf(port, sizeof(port), "%d", G.port);
  snprintf(hs, sizeof(hs), "%d", O.hs_timeout);
  snprintf(cl, sizeof(cl), "%d", O.close_timeout);
  int logfd = open(O.log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (logfd < 0) {
    perror(O.log);
    exit(2);
  }
  G.pid = fork();
  if (G.pid < 0) {
    perror("soak: fork");
    exit(2);
  }
  if (G.pid == 0) {
    dup2(logfd, 2);
    /* A fixed mmap threshold: glibc's dynamic one rises after a big buffer
     * is freed (a never-reader's 8 MiB queue), and later big buffers come
     * from the brk heap, which fragmentation can keep from shrinking.  RSS
     * then steps up and stays, without any live memory behind it.  With
     * big buffers always mmapped, RSS follows what the server holds. */
    if (!O.malloc_defaults && !getenv("GLIBC_TUNABLES"))
      setenv("GLIBC_TUNABLES",
             "glibc.malloc.mmap_threshold=131072:"
             "glibc.malloc.trim_threshold=262144",
             1);
    execl(O.server, O.server, "--host", "127.0.0.1", "--port", port,
          "--handshake-timeout", hs, "--close-timeout", cl, "--verbose",
          (char *)NULL);
    perror(O.server);
    _exit(127);
  }
  close(logfd);
  /* bounded poll until it listens */
  for (int i = 0; i < 500; i++) {
    int st;
    if (waitpid(G.pid, &st, WNOHANG) == G.pid) {
      fprintf(stderr, "soak: %s exited before listening\n", O.server);
      exit(2);
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)G.port);
    a.sin_addr.s_addr = htonl(0x7f000001u);
    int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    if (ok)
      return;
    usleep(20000);
  }
  fprintf(stderr, "soak: %s not listening after 10 s\n", O.server);
  kill(G.pid, SIGKILL);
  exit(2);
}

static int stop_server(void) {
  kill(G.pid, SIGTERM);
  for (int i = 0; i < 1000; i++) { /* 10 s */
    int st;
    pid_t r = waitpid(G.pid, &st, WNOHANG);
    if (r == G.pid)
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    usleep(10000);
  }
  kill(G.pid, SIGKILL);
  waitpid(G.pid, NULL, 0);
  return -1;
}

/* The server's --verbose log: "[name #ID] open /soak/KIND/SLOT/CYCLE" and
 * "[name #ID] close code=N clean=C ...".  Every connection's close code
 * must be its kind's; unfinished cycles (cut by the end of the run) are
 * skipped. */
static uint64_t check_log(uint64_t *by_kind_ok, uint64_t *by_kind_bad) {
  FILE *f = fopen(O.log, "r");
  if (!f)
    return 1;
  size_t cap = 1u << 16;
  struct ent {
    int8_t kind;
    int slot;
    uint32_t cycle;
  } *ids = calloc(cap, sizeof(*ids));
  char line[512];
  uint64_t bad = 0;
  while (fgets(line, sizeof(line), f)) {
    unsigned long id;
    char rest[400];
    if (sscanf(line, "[%*[^#]#%lu] %399[^\n]", &id, rest) != 2)
      continue;
    while (id >= cap) {
      ids = realloc(ids, cap * 2 * sizeof(*ids));
      memset(ids + cap, 0, cap * sizeof(*ids));
      cap *= 2;
    }
    char kname[32];
    int slot;
    unsigned cyc;
    if (sscanf(rest, "open /soak/%31[^/]/%d/%u", kname, &slot, &cyc) == 3) {
      ids[id].kind = -1;
      for (int k = 0; k < NKINDS; k++)
        if (!strcmp(kname, kind_name[k]))
          ids[id].kind = (int8_t)(k + 1);
      ids[id].slot = slot;
      ids[id].cycle = cyc;
      continue;
    }
    int code, clean;
    if (sscanf(rest, "close code=%d clean=%d", &code, &clean) == 2) {
      if (ids[id].kind <= 0)
        continue;
      int k = ids[id].kind - 1;
      conn *c = &G.c[ids[id].slot];
      bool last_cycle = c->cycle == ids[id].cycle;
      if (code == kind_code[k] && (k != K_GOOD || clean)) {
        by_kind_ok[k]++;
      } else if (last_cycle && c->state != S_DONE && c->state != S_IDLE &&
                 k != K_GOOD) {
        /* cut by the end of the run */
      } else {
        by_kind_bad[k]++;
        if (bad++ < 10)
          fprintf(stderr, "  server log: %s/%d/%u closed: %s", kind_name[k],
                  ids[id].slot, ids[id].cycle, rest);
      }
    }
  }
  fclose(f);
  free(ids);
  return bad;
}

/* ---- main loop -------------------------------------------------------------------- */

static void usage(void) {
  fprintf(stderr,
          "usage: soak [--server PATH] [--seconds N] [--conns N] [--rate N]\n"
          "            [--rss-tolerance-kb N] [--hs-timeout MS] "
          "[--close-timeout MS]\n"
          "            [--log FILE] [--sources N] [--samples CSV]"
          " [--malloc-defaults 0|1]\n");
}

static void assign_kinds(void) {
  /* per 1000 slots: 20 rsv, 10 oversize, 10 badclose, 20 utf8, 20 drop,
   * 20 stall; never-readers: NEVERREADERS in all (each pushes up to 24 MiB
   * a cycle) */
  int nn = 0;
  for (int i = 0; i < G.nconns; i++) {
    int r = i % 1000;
    int k = r < 20   ? K_RSV
            : r < 30 ? K_OVERSIZE
            : r < 40 ? K_BADCLOSE
            : r < 60 ? K_UTF8
            : r < 80 ? K_DROP
            : r < 100 ? K_STALL
                      : K_GOOD;
    if (k == K_GOOD && r == 100 + (i / 1000) % 10 && nn < NEVERREADERS)
      k = K_NEVERREAD, nn++;
    G.c[i].kind = (uint8_t)k;
  }
  for (int i = 0; nn < NEVERREADERS && i < G.nconns; i++)
    if (G.c[i].kind == K_GOOD && i % 97 == 5)
      G.c[i].kind = K_NEVERREAD, nn++;
  /* a tenth of the good ones write in small pieces (handshake included),
   * so thousands of connections sit in the server with a partial header,
   * control frame or payload at any time */
  for (int i = 0; i < G.nconns; i++)
    if (G.c[i].kind == K_GOOD && i % 10 == 7) {
      G.c[i].choppy = true;
      G.nchoppy++;
    }
}


int main(int argc, char **argv) {
  for (int i = 1; i < argc; i += 2) { /* --option value pairs */
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) {
      usage();
      return 2;
    }
    if (!strcmp(a, "--server"))
      O.server = v;
    else if (!strcmp(a, "--seconds"))
      O.seconds = atoi(v);
    else if (!strcmp(a, "--conns"))
      O.conns = atoi(v);
    else if (!strcmp(a, "--rate"))
      O.rate = atoi(v);
    else if (!strcmp(a, "--rss-tolerance-kb"))
      O.rss_tol_kb = atol(v);
    else if (!strcmp(a, "--hs-timeout"))
      O.hs_timeout = atoi(v);
    else if (!strcmp(a, "--close-timeout"))
      O.close_timeout = atoi(v);
    else if (!strcmp(a, "--log"))
      O.log = v;
    else if (!strcmp(a, "--sources"))
      O.sources = atoi(v);
    else if (!strcmp(a, "--samples"))
      O.samples = v;
    else if (!strcmp(a, "--malloc-defaults"))
      O.malloc_defaults = atoi(v);
    else {
      usage();
      return 2;
    }
  }
  if (O.seconds < 3 || O.seconds > 86400 || O.conns < 100 ||
      O.conns > 100000 || O.rate < 1 || O.sources < 1 || O.sources > 250) {
    usage();
    return 2;
  }
  char logpath[128];
  if (!O.log) {
    snprintf(logpath, sizeof(logpath), "/tmp/soak-server-%d.log",
             (int)getpid());
    O.log = logpath;
  }
  /* descriptors: ours, and the server inherits the limit */
  struct rlimit rl;
  rlim_t want = (rlim_t)O.conns + 4096; /* each process: its own end */
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_max < want) {
    rl.rlim_max = want; /* root may raise the hard limit */
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
      getrlimit(RLIMIT_NOFILE, &rl);
      fprintf(stderr, "soak: RLIMIT_NOFILE is %llu, need %llu (ulimit -n)\n",
              (unsigned long long)rl.rlim_max, (unsigned long long)want);
      return 2;
    }
  } else if (rl.rlim_cur < want) {
    rl.rlim_cur = want;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  start_server();
  G.ep = epoll_create1(EPOLL_CLOEXEC);
  G.nconns = O.conns;
  G.c = calloc((size_t)G.nconns, sizeof(conn));
  for (int i = 0; i < G.nconns; i++) {
    G.c[i].fd = -1;
    G.c[i].slot = i;
    G.c[i].rng = 0x12345u + (uint32_t)i * 2654435761u;
  }
  assign_kinds();
  G.bad = calloc((size_t)G.nconns, sizeof(int));
  for (int i = 0; i < G.nconns; i++)
    if (G.c[i].kind != K_GOOD)
      G.bad[G.nbad++] = i;
  printf("soak: %s on 127.0.0.1:%d (pid %d), %d connections, %d s, "
         "%d units/s, handshake timeout %d ms, close timeout %d ms\n",
         O.server, G.port, (int)G.pid, G.nconns, O.seconds, O.rate,
         O.hs_timeout, O.close_timeout);
  printf("   t   open  units/s  echoes/s    MB/s   errors   server RSS  "
         "server CPU  soak CPU\n");
  fflush(stdout);

  G.t0 = now_ms();
  uint64_t end_send = G.t0 + (uint64_t)O.seconds * 1000;
  uint64_t hard_end = end_send + 40000;
  uint64_t next_sample = G.t0 + 1000, next_scan = G.t0 + 1000;
  double srv_cpu0 = proc_cpu_s(G.pid), cli_cpu0 = self_cpu_s();
  double srv_cpu_prev = srv_cpu0, cli_cpu_prev = cli_cpu0;
  uint64_t echoes_prev = 0, units_prev = 0, bytes_prev = 0;
  int connect_cursor = 0;
  double credit = 0;
  uint64_t last_loop = G.t0;
  G.sending = true;
  bool final_sent = false;
  uint64_t final_deadline = 0;
  struct epoll_event evs[512];

  uint64_t pass_start = now_ms();
  for (;;) {
    uint64_t now = now_ms();
    if (now - pass_start > G.max_lag)
      G.max_lag = now - pass_start;
    pass_start = now;
    if (now >= hard_end)
      break;
    /* ramp up: at most 50 new connections per pass (10000 a second) */
    for (int k = 0; k < 50 && connect_cursor < G.nconns; k++)
      start_connect(&G.c[connect_cursor++]);

    /* misbehaving slots: reconnect, misbehave, time out */
    for (int j = 0; j < G.nbad; j++) {
      int i = G.bad[j];
      conn *c = &G.c[i];
      switch (c->state) {
      case S_IDLE:
        if (G.sending && connect_cursor > i && c->cycle > 0 &&
            now >= c->t_next)
          start_connect(c);
        break;
      case S_OPEN:
        if (G.sending && now >= c->t_misbehave)
          misbehave(c);
        break;
      case S_STUCK: /* never-reader: keep 1 MiB messages coming */
        if (c->out_len - c->out_off < MIB && c->never_sent < 24u * MIB) {
          uint32_t seq = c->seq++;
          put_frame(c, 0x82, MIB, E_BINARY, seq, MIB, 0, NULL);
          G.sent_msgs++;
          expect(c, E_BINARY, seq, MIB, 0);
          c->never_sent += MIB;
          flush_out(c);
        }
        if (c->state == S_STUCK && now > c->t_last_progress + 300) {
          /* the server stopped reading us: now read what it says */
          expect(c, E_CLOSE, 0, 0, 1008);
          c->reading = true;
          set_state(c, S_FAILING);
          c->t_last_rx = now;
          ep_mod(c);
        }
        break;
      case S_FAILING:
        /* A never-reader that got every echo and no close: the server was
         * only slow to read (a busy machine), it never reached the limit.
         * Stop reading and push again (at most 5 rounds). */
        if (c->kind == K_NEVERREAD && c->exp_n == 1 &&
            c->exp[c->exp_head].type == E_CLOSE && now > c->t_last_rx + 500) {
          if (c->rounds >= 5) {
            error_at(c, "the server echoed %d rounds of 24 MiB without "
                        "reaching its 8 MiB limit", c->rounds);
            cycle_end(c, false, true);
            break;
          }
          c->exp_n = 0;
          c->rounds++;
          G.neverread_rounds++;
          c->never_sent = 0;
          c->reading = false;
          c->t_last_progress = now;
          set_state(c, S_STUCK);
          c->t_stuck = c->t_state;
          ep_mod(c);
          break;
        }
        goto progress;
      case S_CONNECTING:
      case S_HANDSHAKE:
      case S_EOF:
      case S_STALLED:
      progress: {
        uint64_t limit = c->state == S_STALLED
                             ? (uint64_t)O.hs_timeout + 6000
                         : c->kind == K_NEVERREAD
                             ? (uint64_t)O.close_timeout + 10000
                             : 5000;
        if (now > c->t_state + limit) {
          error_at(c, "no progress for %" PRIu64 " ms in state %d",
                   now - c->t_state, c->state);
          cycle_end(c, false, true);
        }
        break;
      }
      default:
        break;
      }
    }

    /* choppy connections: one piece each per pass */
    for (int i = 7; i < G.nconns; i += 10) {
      conn *c = &G.c[i];
      if (c->choppy && c->fd >= 0 && c->out_len > c->out_off &&
          c->state != S_CONNECTING)
        flush_out(c);
    }

    /* send units at the target rate, round robin over open connections */
    if (G.sending) {
      credit += (double)(now - last_loop) * O.rate / 1000.0;
      if (credit > O.rate / 10.0)
        credit = O.rate / 10.0; /* no bursts after a stall */
      int scanned = 0;
      while (credit >= 1 && scanned < G.nconns) {
        conn *c = &G.c[G.rr];
        G.rr = (G.rr + 1) % G.nconns;
        scanned++;
        if (c->state != S_OPEN || c->misbehaved ||
            c->exp_n >= MAX_OUTSTANDING ||
            c->out_len - c->out_off > OUT_LOW)
          continue;
        send_unit(c);
        flush_out(c);
        credit -= 1;
        scanned = 0;
      }
    }
    last_loop = now;

    /* the end: stop sending, let replies arrive, then close with 1000 */
    if (G.sending && now >= end_send) {
      G.sending = false;
      final_deadline = now + 10000;
    }
    if (!G.sending && !final_sent) {
      bool pending = false;
      for (int i = 0; i < G.nconns && !pending; i++)
        if (G.c[i].kind == K_GOOD && G.c[i].state == S_OPEN &&
            G.c[i].exp_n)
          pending = true;
      if (!pending || now >= final_deadline) {
        for (int i = 0; i < G.nconns; i++) {
          conn *c = &G.c[i];
          if (c->kind == K_GOOD && c->state == S_OPEN) {
            if (c->exp_n)
              error_at(c, "%u replies still missing at the end", c->exp_n);
            c->exp_n = 0;
            static const uint8_t bye[] = {0x03, 0xe8, 'b', 'y', 'e'};
            put_frame(c, 0x88, sizeof(bye), 0, 0, 0, 0, bye);
            expect(c, E_CLOSE, 0, 0, 1000);
            set_state(c, S_CLOSING);
            flush_out(c);
          }
        }
        final_sent = true;
        final_deadline = now + 10000;
      }
    }
    if (final_sent) {
      bool busy = false;
      for (int i = 0; i < G.nconns; i++) {
        conn *c = &G.c[i];
        if (c->fd < 0)
          continue;
        if (c->kind == K_GOOD || c->state == S_FAILING ||
            c->state == S_STUCK || c->state == S_EOF ||
            c->state == S_STALLED) {
          busy = true;
          break;
        }
      }
      if (!busy || now >= final_deadline)
        break;
    }

    /* every second: RSS, CPU, and replies that take too long */
    if (now >= next_sample && nsamples < MAXSAMPLES) {
      double sc = proc_cpu_s(G.pid), cc = self_cpu_s();
      S[nsamples].t = (double)(now - G.t0) / 1000;
      S[nsamples].rss_kb = read_rss_kb(G.pid);
      S[nsamples].srv_cpu = (sc - srv_cpu_prev) * 100;
      S[nsamples].cli_cpu = (cc - cli_cpu_prev) * 100;
      S[nsamples].open = G.open_now;
      S[nsamples].echoes = G.echoes_ok;
      srv_cpu_prev = sc;
      cli_cpu_prev = cc;
      int sec = (int)((now - G.t0 + 500) / 1000);
      if (sec % 10 == 0 || sec <= 1) {
        printf("%4ds %6d %8" PRIu64 " %9" PRIu64 " %7.1f %8" PRIu64
               " %9ld kB %10.0f%% %8.0f%%\n",
               sec, G.open_now, G.sent_units - units_prev,
               G.echoes_ok - echoes_prev,
               (double)(G.sent_bytes - bytes_prev) / 1e6, G.errors,
               S[nsamples].rss_kb, S[nsamples].srv_cpu, S[nsamples].cli_cpu);
        fflush(stdout);
      }
      units_prev = G.sent_units;
      echoes_prev = G.echoes_ok;
      bytes_prev = G.sent_bytes;
      nsamples++;
      next_sample += 1000;
    }
    if (now >= next_scan) {
      for (int i = 0; i < G.nconns; i++) {
        conn *c = &G.c[i];
        uint64_t sent = G.t0 + c->exp[c->exp_head].t_sent;
        if (c->state == S_OPEN && c->exp_n && now > sent + 10000) {
          error_at(c, "no reply for %" PRIu64 " ms (%u pending)", now - sent,
                   c->exp_n);
          c->exp[c->exp_head].t_sent = (uint32_t)(now - G.t0);
        }
      }
      next_scan += 1000;
    }

    int n = epoll_wait(G.ep, evs, 512, 5);
    for (int i = 0; i < n; i++) {
      conn *c = evs[i].data.ptr;
      if (c->fd < 0)
        continue;
      if (c->state == S_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
          G.connect_fail++;
          error_at(c, "connect: %s", strerror(err));
          if (c->kind == K_GOOD) {
            conn_close(c, false);
            set_state(c, S_DONE);
          } else {
            cycle_end(c, false, false);
          }
          continue;
        }
        send_request(c);
        flush_out(c);
        continue;
      }
      if ((evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) &&
          c->reading)
        on_readable(c);
      if (c->fd >= 0 && (evs[i].events & EPOLLOUT))
        flush_out(c);
    }
  }

  /* what is still open is unfinished (good ones were checked above) */
  for (int i = 0; i < G.nconns; i++) {
    conn *c = &G.c[i];
    if (c->fd >= 0) {
      if (c->kind == K_GOOD && c->state != S_DONE)
        error_at(c, "still open at the end in state %d", c->state);
      else if (c->kind != K_GOOD)
        G.unfinished[c->kind]++;
      conn_close(c, true);
    }
  }
  double srv_cpu_total = proc_cpu_s(G.pid) - srv_cpu0;
  double cli_cpu_total = self_cpu_s() - cli_cpu0;
  double wall = (double)(now_ms() - G.t0) / 1000;
  long rss_end = read_rss_kb(G.pid);
  int rc = stop_server();
  uint64_t log_ok[NKINDS] = {0}, log_bad[NKINDS] = {0};
  uint64_t log_bad_total = check_log(log_ok, log_bad);

  /* RSS: the lowest sample of the 10 s up to the 1/3 mark (20 s of 60)
   * against the lowest of the last 10 s of the sending phase.  Minima,
   * because a never-reader holds up to 8 MiB of queued echoes for a second
   * or two at any time; a leak raises the floor. */
  /* the mark: 20 s, or a third of longer runs; runs under 40 s are too
   * short to tell warm-up (pools filling) from growth */
  int mark = O.seconds / 3 > 20 ? O.seconds / 3 : 20, last = O.seconds;
  bool rss_judged = O.seconds >= 40;
  long floor_mark = -1, floor_last = -1, rss_at_mark = -1, rss_at_last = -1,
       rss_max = 0;
  for (int i = 0; i < nsamples; i++) {
    int sec = (int)(S[i].t + 0.5);
    long r = S[i].rss_kb;
    if (r <= 0)
      continue;
    if (sec > mark - 10 && sec <= mark && (floor_mark < 0 || r < floor_mark))
      floor_mark = r;
    if (sec > last - 10 && sec <= last && (floor_last < 0 || r < floor_last))
      floor_last = r;
    if (sec == mark)
      rss_at_mark = r;
    if (sec <= last)
      rss_at_last = r;
    if (sec >= mark && sec <= last && r > rss_max)
      rss_max = r;
  }
  long growth = floor_last - floor_mark;
  if (O.samples) {
    FILE *f = fopen(O.samples, "w");
    if (f) {
      fprintf(f, "t,rss_kb,open,echoes,server_cpu_pct,soak_cpu_pct\n");
      for (int i = 0; i < nsamples; i++)
        fprintf(f, "%.1f,%ld,%d,%" PRIu64 ",%.0f,%.0f\n", S[i].t,
                S[i].rss_kb, S[i].open, S[i].echoes, S[i].srv_cpu,
                S[i].cli_cpu);
      fclose(f);
    }
  }

  printf("\nconnections opened: %" PRIu64 " (max %d at once)\n",
         G.opened[0] + G.opened[1] + G.opened[2] + G.opened[3] + G.opened[4] +
             G.opened[5] + G.opened[6] + G.opened[7],
         G.max_open);
  printf("all: %" PRIu64 " messages and %" PRIu64 " pings sent, %" PRIu64
         " echoes and %" PRIu64 " pongs verified byte by byte, %.1f MB "
         "echoed\n",
         G.sent_msgs, G.sent_pings, G.echoes_ok, G.pongs_ok,
         (double)G.echo_bytes / 1e6);
  printf("good: %" PRIu64 " connections (%d writing in small pieces), %" PRIu64
         "/%" PRIu64 " echoes, %" PRIu64 "/%" PRIu64 " pongs, %" PRIu64
         " closed with 1000\n",
         G.opened[K_GOOD], G.nchoppy, G.good_echoes, G.good_msgs,
         G.good_pongs, G.good_pings, G.good_closed_ok);
  printf("%-10s %8s %9s %9s %11s %13s %12s\n", "kind", "opened", "ok",
         "cut", "unfinished", "server log ok", "log wrong");
  for (int k = 0; k < NKINDS; k++)
    printf("%-10s %8" PRIu64 " %9" PRIu64 " %9" PRIu64 " %11" PRIu64
           " %13" PRIu64 " %12" PRIu64 "   (expect %d)\n",
           kind_name[k], G.opened[k], G.cycles_ok[k], G.cycles_cut[k],
           G.unfinished[k], log_ok[k], log_bad[k], kind_code[k]);
  printf("never-readers: %" PRIu64 " saw close 1008, %" PRIu64
         " cut by the close timeout before they read it, %" PRIu64
         " pushed again (the server was still reading)\n",
         G.neverread_saw_1008, G.neverread_cut, G.neverread_rounds);
  printf("stalled handshakes: 408 at most %" PRIu64
         " ms after the handshake timeout\n",
         G.late_408_max);
  printf("server RSS: %ld kB at %d s, %ld kB at %d s, max %ld kB between; "
         "lowest of the 10 s before: %ld kB and %ld kB, growth %ld kB "
         "(tolerance %ld kB); %ld kB after the closes\n",
         rss_at_mark, mark, rss_at_last, last, rss_max, floor_mark,
         floor_last, growth, O.rss_tol_kb, rss_end);
  if (!rss_judged)
    printf("(RSS growth not judged: runs under 40 s are mostly warm-up)\n");
  printf("CPU over %.0f s: server %.1f s (%.0f%% of a core), soak %.1f s "
         "(%.0f%%)\n",
         wall, srv_cpu_total, srv_cpu_total / wall * 100, cli_cpu_total,
         cli_cpu_total / wall * 100);
  printf("errors: %" PRIu64 ", connect failures: %" PRIu64
         ", server exit status %d, server log: %s, longest pass of the soak "
         "loop: %" PRIu64 " ms\n",
         G.errors, G.connect_fail, rc, O.log, G.max_lag);
  for (int i = 0; i < 64 && EK[i].fmt; i++)
    printf("  %8" PRIu64 " x %s\n", EK[i].n, EK[i].fmt);
  for (int i = 0; i < G.nerr_logged; i++)
    printf("  error: %s\n", G.errbuf[i]);

  bool ok = G.errors == 0 && rc == 0 && log_bad_total == 0 &&
            (!rss_judged ||
             (floor_mark > 0 && floor_last > 0 && growth <= O.rss_tol_kb)) &&
            G.good_closed_ok == G.opened[K_GOOD] &&
            G.good_echoes == G.good_msgs && G.good_pongs == G.good_pings;
  for (int k = 1; k < NKINDS; k++)
    if (G.opened[k] && !G.cycles_ok[k])
      ok = false; /* every kind must have happened */
  printf("soak: %s\n", ok ? "PASS" : "FAIL");
  free(G.c);
  return ok ? 0 : 1;
}
