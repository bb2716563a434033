/* Test helpers: a client conn and a server conn wired together in memory,
 * raw frame builders, and a recorder for callbacks. Header-only. */
#ifndef WSMSG_TEST_PAIR_H
#define WSMSG_TEST_PAIR_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <wsmsg.h>

#include "run.h"

/* An allocator hook whose n-th allocation fails: set fail_countdown to n
 * (0: nothing fails); it is 0 again once that allocation has failed. */
static int fail_countdown;
static inline void *fail_malloc(size_t n, void *u) {
  (void)u;
  if (fail_countdown > 0 && --fail_countdown == 0)
    return NULL;
  return malloc(n);
}
static inline void fail_free(void *q, void *u) {
  (void)u;
  free(q);
}
static const wsmsg_mem failing_mem = {NULL, fail_malloc, fail_free, NULL};

/* Everything a side saw, recorded by the callbacks below. */
typedef struct rec {
  int opened;
  int texts, binaries, pongs, closes;
  uint8_t *last; /* last message payload (malloc'd copy) */
  size_t last_len;
  int last_nul_ok; /* text was NUL-terminated */
  wsmsg_close_info close;
  char close_reason[128];
  char close_detail[256];
  int echo; /* echo messages back */
} rec;

static inline void rec_store(rec *r, const void *d, size_t n) {
  free(r->last);
  r->last = malloc(n + 1);
  memcpy(r->last, d, n);
  r->last[n] = 0;
  r->last_len = n;
}

static inline void cb_open(wsmsg_conn *c, void *u) {
  (void)c;
  ((rec *)u)->opened++;
}
static inline void cb_text(wsmsg_conn *c, const char *d, size_t n, void *u) {
  rec *r = u;
  r->texts++;
  r->last_nul_ok = d[n] == '\0';
  rec_store(r, d, n);
  if (r->echo)
    wsmsg_send_text(c, d, n);
}
static inline void cb_binary(wsmsg_conn *c, const uint8_t *d, size_t n,
                             void *u) {
  rec *r = u;
  r->binaries++;
  rec_store(r, d, n);
  if (r->echo)
    wsmsg_send_binary(c, d, n);
}
static inline void cb_pong(wsmsg_conn *c, const uint8_t *d, size_t n, void *u) {
  (void)c;
  rec *r = u;
  r->pongs++;
  rec_store(r, d, n);
}
static inline void cb_close(wsmsg_conn *c, const wsmsg_close_info *ci,
                            void *u) {
  (void)c;
  rec *r = u;
  r->closes++;
  r->close = *ci;
  snprintf(r->close_reason, sizeof(r->close_reason), "%.*s",
           (int)ci->reason_len, ci->reason);
  snprintf(r->close_detail, sizeof(r->close_detail), "%s", ci->detail);
  r->close.reason = r->close_reason;
  r->close.detail = r->close_detail;
}

static inline void ep_callbacks(wsmsg_endpoint *ep) {
  wsmsg_endpoint_on_open(ep, cb_open);
  wsmsg_endpoint_on_text(ep, cb_text);
  wsmsg_endpoint_on_binary(ep, cb_binary);
  wsmsg_endpoint_on_pong(ep, cb_pong);
  wsmsg_endpoint_on_close(ep, cb_close);
}

typedef struct pair {
  wsmsg_endpoint *sep, *cep;
  wsmsg_server *srv;
  wsmsg_conn *s, *c;
  rec sr, cr;
} pair;

/* Move pending bytes from `from` to `to`, `chunk` bytes per recv call (0:
 * all at once).  Returns how many bytes moved. */
static inline size_t pump1(wsmsg_conn *from, wsmsg_conn *to, size_t chunk) {
  const void *p;
  size_t n, total = 0;
  while ((n = wsmsg_conn_pending(from, &p)) > 0) {
    size_t k = chunk && chunk < n ? chunk : n;
    if (wsmsg_conn_want_read(to))
      wsmsg_conn_recv(to, p, k);
    wsmsg_conn_consume(from, k);
    total += k;
  }
  return total;
}

/* Exchange bytes until nothing moves (bounded). */
static inline void pump(pair *p) {
  for (int i = 0; i < 100; i++) {
    size_t a = pump1(p->c, p->s, 0);
    size_t b = pump1(p->s, p->c, 0);
    if (!a && !b)
      break;
  }
}

/* Create both ends with callbacks; `setup` may adjust the endpoints before
 * any connection freezes them. */
static inline void pair_init(pair *p, void (*setup)(pair *)) {
  memset(p, 0, sizeof(*p));
  p->sep = wsmsg_endpoint_new();
  p->cep = wsmsg_endpoint_new();
  p->srv = wsmsg_server_new();
  assert_non_null(p->sep);
  assert_non_null(p->cep);
  ep_callbacks(p->sep);
  ep_callbacks(p->cep);
  assert_int_equal(wsmsg_server_route(p->srv, "/ws", p->sep), 0);
  if (setup)
    setup(p);
  p->s = wsmsg_server_accept(p->srv, &p->sr);
  p->c = wsmsg_client_new(p->cep, "localhost:1", "/ws", &p->cr);
  assert_non_null(p->s);
  assert_non_null(p->c);
}

static inline void pair_open(pair *p, void (*setup)(pair *)) {
  pair_init(p, setup);
  pump(p);
  assert_int_equal(wsmsg_conn_state(p->s), WSMSG_STATE_OPEN);
  assert_int_equal(wsmsg_conn_state(p->c), WSMSG_STATE_OPEN);
  assert_int_equal(p->sr.opened, 1);
  assert_int_equal(p->cr.opened, 1);
}

static inline void pair_free(pair *p) {
  wsmsg_conn_free(p->s);
  wsmsg_conn_free(p->c);
  wsmsg_server_free(p->srv);
  wsmsg_endpoint_free(p->sep);
  wsmsg_endpoint_free(p->cep);
  free(p->sr.last);
  free(p->cr.last);
}

/* One raw frame: masked with `key` (big-endian, as on the wire) if `mask`. */
static inline size_t frame_key(uint8_t *out, int fin, int rsv, int op,
                               const void *payload, size_t n, int mask,
                               uint32_t key) {
  size_t k = 0;
  out[k++] = (uint8_t)((fin ? 0x80 : 0) | (rsv << 4) | op);
  uint8_t mbit = mask ? 0x80 : 0;
  if (n < 126) {
    out[k++] = (uint8_t)(mbit | n);
  } else if (n < 65536) {
    out[k++] = mbit | 126;
    out[k++] = (uint8_t)(n >> 8);
    out[k++] = (uint8_t)n;
  } else {
    out[k++] = mbit | 127;
    for (int i = 7; i >= 0; i--)
      out[k++] = (uint8_t)((uint64_t)n >> (8 * i));
  }
  const uint8_t kb[4] = {(uint8_t)(key >> 24), (uint8_t)(key >> 16),
                         (uint8_t)(key >> 8), (uint8_t)key};
  if (mask) {
    memcpy(out + k, kb, 4);
    k += 4;
  }
  const uint8_t *pl = payload;
  for (size_t i = 0; i < n; i++)
    out[k + i] = mask ? (uint8_t)(pl[i] ^ kb[i % 4]) : pl[i];
  return k + n;
}

/* One raw frame.  mask: 0 none, else use the key 0x11223344. */
static inline size_t frame(uint8_t *out, int fin, int rsv, int op,
                           const void *payload, size_t n, int mask) {
  return frame_key(out, fin, rsv, op, payload, n, mask, 0x11223344u);
}

/* Feed a raw client->server frame into the server conn. */
static inline int to_server(pair *p, int fin, int rsv, int op, const void *d,
                            size_t n) {
  uint8_t *buf = malloc(n + 14);
  size_t k = frame(buf, fin, rsv, op, d, n, 1);
  int r = wsmsg_conn_recv(p->s, buf, k);
  free(buf);
  return r;
}

/* The close code in the first close frame pending on conn `c` (unmasked
 * server output), or -1. */
static inline int pending_close_code(wsmsg_conn *c) {
  const void *vp;
  size_t n = wsmsg_conn_pending(c, &vp);
  const uint8_t *p = vp;
  size_t i = 0;
  while (i + 2 <= n) {
    int op = p[i] & 0x0f;
    size_t len = p[i + 1] & 0x7f, h = 2;
    if (len == 126) {
      len = (size_t)p[i + 2] << 8 | p[i + 3];
      h = 4;
    } else if (len == 127) {
      len = 0;
      for (int k = 0; k < 8; k++)
        len = len << 8 | p[i + 2 + k];
      h = 10;
    }
    if (p[i + 1] & 0x80)
      h += 4;
    if (op == 8)
      return len >= 2 ? (p[i + h] << 8 | p[i + h + 1]) : 1005;
    i += h + len;
  }
  return -1;
}

#endif
