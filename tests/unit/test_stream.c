/* Backpressure, streaming receive (on_chunk) and streaming send
 * (wsmsg_send_stream). */
#include "pair.h"

/* ---- backpressure ---- */

static int drains;
static void on_drain(wsmsg_conn *c, void *u) {
  (void)c;
  (void)u;
  drains++;
}

static void bp_fail(pair *p) {
  wsmsg_endpoint_set_backpressure(p->sep, 1000, 200, WSMSG_BACKPRESSURE_FAIL);
  wsmsg_endpoint_on_drain(p->sep, on_drain);
}

static void test_backpressure_fail(void **s) {
  (void)s;
  drains = 0;
  pair p;
  pair_open(&p, bp_fail);
  char msg[300];
  memset(msg, 'm', sizeof(msg));
  int ok = 0, refused = 0;
  for (int i = 0; i < 10; i++) {
    int r = wsmsg_send_text(p.s, msg, sizeof(msg));
    if (r == 0)
      ok++;
    else if (r == WSMSG_ERR_BACKPRESSURE)
      refused++;
  }
  assert_int_equal(ok, 3); /* 3 x 304 bytes; a 4th would pass 1000 */
  assert_int_equal(refused, 7);
  assert_int_equal(wsmsg_conn_buffered_amount(p.s), 3 * 304);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
  /* draining to 304 (not under 200) does not fire; under 200 does, once */
  const void *b;
  size_t n = wsmsg_conn_pending(p.s, &b);
  wsmsg_conn_recv(p.c, b, 608);
  wsmsg_conn_consume(p.s, 608);
  assert_int_equal(drains, 0);
  n = wsmsg_conn_pending(p.s, &b);
  wsmsg_conn_recv(p.c, b, n);
  wsmsg_conn_consume(p.s, n);
  assert_int_equal(drains, 1);
  assert_int_equal(p.cr.texts, 3);
  assert_int_equal(wsmsg_send_text(p.s, msg, sizeof(msg)), 0);
  pump(&p);
  assert_int_equal(drains, 1);
  pair_free(&p);
}

static void test_backpressure_big_message_when_empty(void **s) {
  (void)s;
  pair p;
  pair_open(&p, bp_fail);
  char *big = calloc(1, 5000);
  /* larger than the high mark, but the queue is empty: it goes */
  assert_int_equal(wsmsg_send_binary(p.s, big, 5000), 0);
  assert_int_equal(wsmsg_send_binary(p.s, big, 1), WSMSG_ERR_BACKPRESSURE);
  pump(&p);
  assert_int_equal(p.cr.binaries, 1);
  free(big);
  pair_free(&p);
}

static void bp_close(pair *p) {
  wsmsg_endpoint_set_backpressure(p->sep, 1000, 200, WSMSG_BACKPRESSURE_CLOSE);
}

static void test_backpressure_close(void **s) {
  (void)s;
  pair p;
  pair_open(&p, bp_close);
  char msg[600] = {0};
  assert_int_equal(wsmsg_send_binary(p.s, msg, sizeof(msg)), 0);
  assert_int_equal(wsmsg_send_binary(p.s, msg, sizeof(msg)),
                   WSMSG_ERR_BACKPRESSURE);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_CLOSED);
  assert_int_equal(p.sr.close.error, WSMSG_ERR_BACKPRESSURE);
  pump(&p);
  assert_int_equal(p.cr.binaries, 1);
  assert_int_equal(p.cr.close.code, 1008);
  pair_free(&p);
}

/* A peer that never reads cannot grow our memory past the mark, not even by
 * flooding pings (their pongs are skipped above the mark). */
static void test_backpressure_bound(void **s) {
  (void)s;
  pair p;
  pair_open(&p, bp_fail);
  char msg[100] = {0};
  size_t peak = 0;
  for (int i = 0; i < 1000; i++) {
    wsmsg_send_binary(p.s, msg, sizeof(msg));
    to_server(&p, 1, 0, 9, "ping!", 5);
    size_t b = wsmsg_conn_buffered_amount(p.s);
    if (b > peak)
      peak = b;
  }
  assert_true(peak <= 1000 + 7); /* the high mark plus at most one pong */
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
  pair_free(&p);
}

static void bp_events(pair *p) {
  wsmsg_endpoint_set_backpressure(p->sep, 500, 100, WSMSG_BACKPRESSURE_FAIL);
  wsmsg_endpoint_on_drain(p->sep, NULL);
}

static void test_drain_event(void **s) {
  (void)s;
  pair p;
  pair_open(&p, bp_events);
  char msg[400] = {0};
  wsmsg_send_binary(p.s, msg, sizeof(msg));
  assert_int_equal(wsmsg_send_binary(p.s, msg, sizeof(msg)),
                   WSMSG_ERR_BACKPRESSURE);
  pump(&p);
  wsmsg_event ev;
  assert_int_equal(wsmsg_conn_next_event(p.s, &ev), 1);
  assert_int_equal(ev.type, WSMSG_EV_DRAIN);
  assert_int_equal(wsmsg_conn_next_event(p.s, &ev), 0);
  pair_free(&p);
}

/* ---- broadcast ---- */

static const char REQ[] =
    "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: "
    "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: "
    "13\r\n\r\n";

static void test_broadcast(void **s) {
  (void)s;
  pair p; /* p.s/p.c: a pair; plus 20 raw server connections */
  pair_open(&p, bp_fail);
  enum { N = 20 };
  wsmsg_conn *cs[N + 4];
  for (int i = 0; i < N; i++) {
    cs[i] = wsmsg_server_accept(p.srv, &p.sr);
    wsmsg_conn_recv(cs[i], REQ, sizeof(REQ) - 1);
    wsmsg_conn_consume(cs[i], wsmsg_conn_pending(cs[i], NULL));
  }
  wsmsg_close(cs[3], 1000, NULL); /* closing: skipped */
  wsmsg_conn_consume(cs[3], wsmsg_conn_pending(cs[3], NULL));
  char big[990] = {0};
  wsmsg_send_binary(cs[5], big, sizeof(big)); /* over its 1000-byte mark */
  cs[N] = NULL;                               /* skipped */
  cs[N + 1] = cs[0];                          /* listed twice: gets it twice */
  cs[N + 2] = p.c; /* a client connection: masked, framed by itself */
  cs[N + 3] = p.s;
  assert_int_equal(wsmsg_broadcast(cs, N + 4, WSMSG_EV_TEXT, "hello", 5),
                   N - 2 + 1 + 2);
  for (int i = 0; i < N; i++) {
    const void *b;
    size_t n = wsmsg_conn_pending(cs[i], &b);
    if (i == 3) {
      assert_int_equal(n, 0);
    } else if (i == 5) {
      assert_int_equal(n, 994); /* only its own message */
    } else if (i == 0) {
      assert_int_equal(n, 14);
      assert_memory_equal(b, "\x81\x05hello\x81\x05hello", 14);
    } else {
      assert_int_equal(n, 7);
      assert_memory_equal(b, "\x81\x05hello", 7);
    }
  }
  pump(&p); /* the pair got it both ways */
  assert_int_equal(p.sr.texts, 1);
  assert_int_equal(p.cr.texts, 1);
  assert_string_equal((char *)p.cr.last, "hello");
  /* invalid text or arguments: nothing is queued anywhere */
  assert_int_equal(wsmsg_broadcast(cs, N, WSMSG_EV_TEXT, "\xff", 1),
                   WSMSG_ERR_UTF8);
  assert_int_equal(wsmsg_broadcast(cs, N, 42, "x", 1), WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_broadcast(NULL, 0, WSMSG_EV_BINARY, NULL, 0), 0);
  assert_int_equal(wsmsg_conn_pending(cs[1], NULL), 7);
  for (int i = 0; i < N; i++)
    wsmsg_conn_free(cs[i]);
  pair_free(&p);
}

/* ---- on_output: who got output from a broadcast ---- */

static wsmsg_conn *reported[16];
static int nreported;
static wsmsg_conn *must_have[4]; /* recipients that must hold the message
                                    whenever on_output runs */
static wsmsg_conn *writes_in_cb; /* on_output "writes" this one's output */

static void record_output(wsmsg_conn *c, void *u) {
  (void)u;
  assert_true(nreported < 16);
  reported[nreported++] = c;
  assert_true(wsmsg_conn_want_write(c));
  /* called once the message is in every recipient, so writing (consuming)
   * this connection's output cannot disturb the copies */
  for (int i = 0; i < 4; i++)
    if (must_have[i])
      assert_true(wsmsg_conn_buffered_amount(must_have[i]) > 0);
  if (c == writes_in_cb)
    wsmsg_conn_consume(c, wsmsg_conn_pending(c, NULL));
}

static void output_setup(pair *p) {
  assert_int_equal(wsmsg_server_on_output(p->srv, record_output), 0);
}

static int times_reported(wsmsg_conn *c) {
  int k = 0;
  for (int i = 0; i < nreported; i++)
    k += reported[i] == c;
  return k;
}

/* After wsmsg_broadcast the host only knew the sender's want_write; other
 * recipients' output sat unwritten unless the host scanned every
 * connection.  on_output names each recipient that had nothing pending,
 * once, after the message is queued on all of them. */
static void test_broadcast_on_output(void **s) {
  (void)s;
  pair p;
  pair_open(&p, output_setup);
  assert_int_equal(wsmsg_server_on_output(p.srv, NULL), WSMSG_ERR_STATE);
  assert_int_equal(wsmsg_server_on_output(NULL, NULL), WSMSG_ERR_INVALID_ARG);
  enum { N = 5 };
  wsmsg_conn *cs[N + 2];
  for (int i = 0; i < N; i++) {
    cs[i] = wsmsg_server_accept(p.srv, &p.sr);
    wsmsg_conn_recv(cs[i], REQ, sizeof(REQ) - 1);
    wsmsg_conn_consume(cs[i], wsmsg_conn_pending(cs[i], NULL));
  }
  wsmsg_send_text(cs[1], "mine", 4); /* already has output: not reported */
  wsmsg_close(cs[2], 1000, NULL);     /* closing: gets nothing */
  wsmsg_conn_consume(cs[2], wsmsg_conn_pending(cs[2], NULL));
  cs[N] = cs[0]; /* listed twice: reported once */
  cs[N + 1] = p.c; /* a client connection: no server, not reported */
  nreported = 0;
  must_have[0] = cs[3]; /* already hold it when cs[0] is reported */
  must_have[1] = cs[4];
  writes_in_cb = cs[0]; /* the connection whose output holds the frame */
  assert_int_equal(wsmsg_broadcast(cs, N + 2, WSMSG_EV_TEXT, "hello", 5), 6);
  assert_int_equal(nreported, 3);
  assert_int_equal(times_reported(cs[0]), 1);
  assert_int_equal(times_reported(cs[3]), 1);
  assert_int_equal(times_reported(cs[4]), 1);
  const void *b;
  assert_int_equal(wsmsg_conn_pending(cs[0], NULL), 0); /* written in cb */
  for (int i = 3; i < N; i++) {
    assert_int_equal(wsmsg_conn_pending(cs[i], &b), 7);
    assert_memory_equal(b, "\x81\x05hello", 7);
  }
  assert_int_equal(wsmsg_conn_pending(cs[1], NULL), 6 + 7);
  /* still pending on 3 and 4: only cs[0] (written) is news again */
  nreported = 0;
  writes_in_cb = NULL;
  memset(must_have, 0, sizeof(must_have));
  assert_int_equal(wsmsg_broadcast(cs, N, WSMSG_EV_BINARY, "x", 1), 4);
  assert_int_equal(nreported, 1);
  assert_ptr_equal(reported[0], cs[0]);

  /* JSON, serialized once: small (stack) and over 4 KiB (heap) */
  for (int i = 0; i < N; i++)
    wsmsg_conn_consume(cs[i], wsmsg_conn_pending(cs[i], NULL));
  nreported = 0;
  json_t *doc = json_pack("{s:s, s:i}", "from", "ann", "n", 1);
  assert_int_equal(wsmsg_broadcast_json(cs, N, doc), 4);
  assert_int_equal(nreported, 4);
  assert_int_equal(wsmsg_conn_pending(cs[4], &b), 2 + 20);
  assert_memory_equal(b, "\x81\x14{\"from\":\"ann\",\"n\":1}", 22);
  json_t *big = json_array();
  for (int i = 0; i < 2000; i++)
    json_array_append_new(big, json_integer(i));
  size_t blen = json_dumpb(big, NULL, 0, JSON_COMPACT);
  assert_true(blen > 4096);
  assert_int_equal(wsmsg_broadcast_json(cs, N, big), 4);
  assert_int_equal(wsmsg_conn_pending(cs[3], NULL), 22 + 4 + blen);
  assert_int_equal(wsmsg_broadcast_json(NULL, 0, doc), 0);
  assert_int_equal(wsmsg_broadcast_json(cs, N, NULL), WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_broadcast_json(NULL, 1, doc), WSMSG_ERR_INVALID_ARG);
  /* the pair's client gets the JSON as a text message */
  wsmsg_conn *pc[1] = {p.s};
  assert_int_equal(wsmsg_broadcast_json(pc, 1, doc), 1);
  pump(&p);
  assert_string_equal((char *)p.cr.last, "{\"from\":\"ann\",\"n\":1}");
  json_decref(doc);
  json_decref(big);
  for (int i = 0; i < N; i++)
    wsmsg_conn_free(cs[i]);
  pair_free(&p);
}

/* ---- streaming receive ---- */

typedef struct chunks {
  uint8_t *data;
  size_t len;
  int pieces, firsts, finals, type;
} chunks;
static chunks got;

static void on_chunk(wsmsg_conn *c, int type, const uint8_t *d, size_t n,
                     int first, int final, void *u) {
  (void)c;
  (void)u;
  if (first) {
    assert_int_equal(got.len, 0);
    got.type = type;
  }
  assert_int_equal(type, got.type);
  got.data = realloc(got.data, got.len + n + 1);
  memcpy(got.data + got.len, d, n);
  got.len += n;
  got.pieces++;
  got.firsts += first;
  got.finals += final;
}

static void reset_chunks(void) {
  free(got.data);
  memset(&got, 0, sizeof(got));
}

static void stream_bin(pair *p) {
  wsmsg_endpoint_on_chunk(p->sep, on_chunk, WSMSG_STREAM_BINARY);
  wsmsg_endpoint_set_max_message_size(p->sep, 0);
}

static void test_stream_receive_binary(void **s) {
  (void)s;
  reset_chunks();
  pair p;
  pair_open(&p, stream_bin);
  size_t n = 200000;
  uint8_t *d = malloc(n);
  for (size_t i = 0; i < n; i++)
    d[i] = (uint8_t)(i * 31);
  to_server(&p, 0, 0, 2, d, 50000);
  to_server(&p, 0, 0, 0, d + 50000, 0);
  to_server(&p, 0, 0, 0, d + 50000, 100000);
  assert_int_equal(got.finals, 0);
  to_server(&p, 1, 0, 0, d + 150000, 50000);
  assert_int_equal(got.firsts, 1);
  assert_int_equal(got.finals, 1);
  assert_true(got.pieces > 4); /* delivered as it came, not whole */
  assert_int_equal(got.type, WSMSG_EV_BINARY);
  assert_int_equal(got.len, n);
  assert_memory_equal(got.data, d, n);
  assert_int_equal(p.sr.binaries, 0);
  /* text is not streamed with this setting */
  to_server(&p, 1, 0, 1, "whole", 5);
  assert_int_equal(p.sr.texts, 1);
  /* an empty binary message is one piece, first and final */
  reset_chunks();
  to_server(&p, 1, 0, 2, "", 0);
  assert_int_equal(got.pieces, 1);
  assert_int_equal(got.firsts + got.finals, 2);
  free(d);
  reset_chunks();
  pair_free(&p);
}

static void stream_small(pair *p) {
  wsmsg_endpoint_on_chunk(p->sep, on_chunk, WSMSG_STREAM_BINARY);
  wsmsg_endpoint_set_max_message_size(p->sep, 1000);
}

/* The size limit counts a streamed message's frames together. */
static void test_stream_receive_limit(void **s) {
  (void)s;
  reset_chunks();
  pair p;
  pair_open(&p, stream_small);
  uint8_t d[600] = {0};
  assert_int_equal(to_server(&p, 0, 0, 2, d, 600), 0);
  assert_int_equal(to_server(&p, 1, 0, 0, d, 401), WSMSG_ERR_TOO_BIG);
  assert_int_equal(pending_close_code(p.s), 1009);
  assert_int_equal(got.finals, 0);
  reset_chunks();
  pair_free(&p);
}

static void stream_text(pair *p) {
  wsmsg_endpoint_on_chunk(p->sep, on_chunk, WSMSG_STREAM_TEXT);
}

static void test_stream_receive_text(void **s) {
  (void)s;
  reset_chunks();
  pair p;
  pair_open(&p, stream_text);
  /* a character split between fragments is fine */
  to_server(&p, 0, 0, 1, "caf\xc3", 4);
  to_server(&p, 1, 0, 0, "\xa9!", 2);
  assert_int_equal(got.finals, 1);
  assert_int_equal(got.len, 6);
  assert_memory_equal(got.data, "caf\xc3\xa9!", 6);
  /* invalid UTF-8 mid-stream: 1007 and no final piece */
  reset_chunks();
  to_server(&p, 0, 0, 1, "ok", 2);
  assert_int_equal(to_server(&p, 1, 0, 0, "\xff", 1), WSMSG_ERR_UTF8);
  assert_int_equal(got.finals, 0);
  assert_int_equal(pending_close_code(p.s), 1007);
  reset_chunks();
  pair_free(&p);
}

/* Streaming keeps memory flat: a 4 MiB message through on_chunk never
 * allocates more than a few KiB in wsmsg. */
typedef struct meter {
  size_t live, peak;
} meter;
static void *m_malloc(size_t n, void *u) {
  meter *m = u;
  size_t *p = malloc(n + 16);
  *p = n;
  m->live += n;
  if (m->live > m->peak)
    m->peak = m->live;
  return (char *)p + 16;
}
static void m_free(void *q, void *u) {
  meter *m = u;
  size_t *p = (size_t *)((char *)q - 16);
  m->live -= *p;
  free(p);
}

static void test_stream_receive_memory(void **s) {
  (void)s;
  reset_chunks();
  meter mt = {0, 0};
  wsmsg_mem mem = {&mt, m_malloc, m_free, NULL};
  wsmsg_endpoint *ep = wsmsg_endpoint_new_mem(&mem);
  wsmsg_server *srv = wsmsg_server_new_mem(&mem);
  wsmsg_endpoint_on_chunk(ep, on_chunk, WSMSG_STREAM_BINARY);
  wsmsg_endpoint_set_max_message_size(ep, 0);
  wsmsg_server_route(srv, "*", ep);
  wsmsg_conn *c = wsmsg_server_accept(srv, NULL);
  const char *req = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: "
                    "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                    "\r\n";
  wsmsg_conn_recv(c, req, strlen(req));
  wsmsg_conn_consume(c, wsmsg_conn_pending(c, NULL));
  size_t before = mt.peak;
  /* one 4 MiB frame, fed 64 KiB at a time */
  size_t n = 4u << 20;
  uint8_t *buf = malloc(n + 14);
  uint8_t *payload = calloc(1, n);
  size_t k = frame(buf, 1, 0, 2, payload, n, 1);
  for (size_t off = 0; off < k; off += 65536)
    wsmsg_conn_recv(c, buf + off, k - off < 65536 ? k - off : 65536);
  assert_int_equal(got.len, n);
  assert_int_equal(got.finals, 1);
  assert_true(mt.peak - before < 4096); /* nothing grows with the message */
  free(buf);
  free(payload);
  reset_chunks();
  wsmsg_conn_free(c);
  wsmsg_server_free(srv);
  wsmsg_endpoint_free(ep);
  assert_int_equal(mt.live, 0);
}

/* ---- streaming send ---- */

typedef struct source {
  const uint8_t *data;
  size_t len, off;
  size_t step;  /* bytes per call (varies) */
  int pause_at; /* return 0 once at this call, -1 never */
  int fail_at;  /* return -1 at this call, -1 never */
  int calls;
} source;

static int64_t src_read(wsmsg_conn *c, uint8_t *buf, size_t len, int *eof,
                        void *u) {
  (void)c;
  source *s = u;
  int call = s->calls++;
  if (call == s->fail_at)
    return -1;
  if (call == s->pause_at)
    return 0;
  size_t n = s->step + (size_t)(call % 7) * 1000;
  if (n > len)
    n = len;
  if (n > s->len - s->off)
    n = s->len - s->off;
  memcpy(buf, s->data + s->off, n);
  s->off += n;
  *eof = s->off == s->len;
  return (int64_t)n;
}

static void test_stream_send(void **s) {
  (void)s;
  pair p;
  pair_open(&p, NULL);
  size_t n = 300000;
  uint8_t *d = malloc(n);
  for (size_t i = 0; i < n; i++)
    d[i] = (uint8_t)(i ^ (i >> 8));
  source src = {d, n, 0, 20000, 3, -1, 0};
  assert_int_equal(wsmsg_send_stream(p.s, WSMSG_EV_BINARY, src_read, &src), 0);
  assert_true(wsmsg_conn_streaming(p.s));
  assert_int_equal(wsmsg_send_stream(p.s, WSMSG_EV_BINARY, src_read, &src),
                   WSMSG_ERR_STATE);
  /* a message sent meanwhile waits for the stream; a ping does not */
  assert_int_equal(wsmsg_send_text(p.s, "after", 5), 0);
  to_server(&p, 1, 0, 9, "mid", 3);
  pump(&p);
  /* paused at the 4th call */
  assert_true(wsmsg_conn_streaming(p.s));
  assert_false(wsmsg_conn_want_write(p.s));
  assert_int_equal(p.cr.pongs, 1); /* the pong went between fragments */
  assert_int_equal(p.cr.binaries, 0);
  assert_int_equal(p.cr.texts, 0);
  assert_int_equal(wsmsg_conn_resume_stream(p.s), 0);
  assert_true(wsmsg_conn_want_write(p.s));
  pump(&p);
  assert_false(wsmsg_conn_streaming(p.s));
  assert_int_equal(p.cr.binaries, 1);
  assert_int_equal(p.cr.texts, 1);
  assert_string_equal((char *)p.cr.last, "after"); /* order kept */
  assert_int_equal(wsmsg_conn_resume_stream(p.s), WSMSG_ERR_STATE);
  pair_free(&p);
  /* check the bytes with a binary-only receiver */
  pair_open(&p, NULL);
  source s2 = {d, n, 0, 65536, -1, -1, 0};
  wsmsg_send_stream(p.s, WSMSG_EV_BINARY, src_read, &s2);
  pump(&p);
  assert_int_equal(p.cr.last_len, n);
  assert_memory_equal(p.cr.last, d, n);
  pair_free(&p);
  free(d);
}

static void test_stream_send_errors(void **s) {
  (void)s;
  pair p;
  /* the source fails: close 1011 */
  pair_open(&p, NULL);
  static uint8_t d[100000];
  source src = {d, sizeof(d), 0, 100, -1, 2, 0}; /* fails at the 3rd call */
  wsmsg_send_stream(p.s, WSMSG_EV_BINARY, src_read, &src);
  pump(&p);
  assert_int_equal(p.cr.close.code, 1011);
  assert_int_equal(p.cr.binaries, 0);
  pair_free(&p);
  /* invalid UTF-8 from a text source: close 1011 */
  pair_open(&p, NULL);
  uint8_t bad[3] = {'a', 0xff, 'b'};
  source s2 = {bad, 3, 0, 100, -1, -1, 0};
  wsmsg_send_stream(p.s, WSMSG_EV_TEXT, src_read, &s2);
  pump(&p);
  assert_int_equal(p.cr.close.code, 1011);
  assert_int_equal(p.sr.close.error, WSMSG_ERR_UTF8);
  pair_free(&p);
  /* closing during a stream ends it */
  pair_open(&p, NULL);
  uint8_t big[200000] = {0};
  source s3 = {big, sizeof(big), 0, 1000, 1, -1, 0};
  wsmsg_send_stream(p.s, WSMSG_EV_BINARY, src_read, &s3);
  wsmsg_send_text(p.s, "queued behind", 13);
  pump(&p);
  assert_int_equal(wsmsg_close(p.s, 1000, "stop"), 0);
  assert_false(wsmsg_conn_streaming(p.s));
  pump(&p);
  assert_int_equal(p.cr.close.code, 1000);
  assert_int_equal(p.cr.texts, 0); /* the deferred message was dropped */
  assert_int_equal(wsmsg_send_stream(p.s, WSMSG_EV_BINARY, src_read, &s3),
                   WSMSG_ERR_CLOSED);
  pair_free(&p);
  /* bad arguments */
  pair_open(&p, NULL);
  assert_int_equal(wsmsg_send_stream(p.s, 99, src_read, &s3),
                   WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_send_stream(p.s, WSMSG_EV_TEXT, NULL, NULL),
                   WSMSG_ERR_INVALID_ARG);
  pair_free(&p);
}

/* Found by fuzz_conn_server: an abort (or the peer's EOF) left a running
 * stream in place, so wsmsg_conn_pending pulled new fragments into the
 * output of a connection that was done (after an abort, behind a frame cut
 * in the middle). */
static void test_stream_ends_with_connection(void **s) {
  (void)s;
  static uint8_t big[200000];
  for (int how = 0; how < 2; how++) {
    pair p;
    pair_open(&p, NULL);
    source src = {big, sizeof(big), 0, 65536, -1, -1, 0};
    assert_int_equal(wsmsg_send_stream(p.s, WSMSG_EV_BINARY, src_read, &src),
                     0);
    const void *out;
    size_t n = wsmsg_conn_pending(p.s, &out);
    assert_true(n > 0);
    wsmsg_conn_consume(p.s, n / 2); /* a frame half-written */
    if (how == 0)
      wsmsg_conn_abort(p.s);
    else
      wsmsg_conn_eof(p.s);
    assert_false(wsmsg_conn_streaming(p.s));
    int calls = src.calls;
    n = wsmsg_conn_pending(p.s, &out);
    assert_int_equal(src.calls, calls); /* the source is not asked again */
    if (how == 0)
      assert_int_equal(n, 0); /* aborted: everything dropped */
    wsmsg_conn_consume(p.s, n);
    assert_int_equal(wsmsg_conn_pending(p.s, &out), 0);
    assert_true(wsmsg_conn_done(p.s));
    assert_false(wsmsg_conn_want_write(p.s));
    pair_free(&p);
  }
}

/* Found by fuzz_pair with allocation failures: when a stream ended, the
 * data messages queued behind it were appended to the output and the
 * result ignored, so out of memory there dropped messages that
 * wsmsg_send_* had accepted while the connection went on (later messages
 * arrived, earlier ones never).  It now fails the connection (1011). */
static void test_stream_flush_oom_fails(void **s) {
  (void)s;
  static uint8_t big[60000];
  static uint8_t after[10000];
  wsmsg_mem mem = failing_mem;
  pair p;
  memset(&p, 0, sizeof(p));
  p.sep = wsmsg_endpoint_new();
  p.cep = wsmsg_endpoint_new();
  p.srv = wsmsg_server_new_mem(&mem);
  ep_callbacks(p.sep);
  ep_callbacks(p.cep);
  wsmsg_server_route(p.srv, "/ws", p.sep);
  p.s = wsmsg_server_accept(p.srv, &p.sr);
  p.c = wsmsg_client_new(p.cep, "localhost:1", "/ws", &p.cr);
  pump(&p);
  source src = {big, sizeof(big), 0, sizeof(big), -1, -1, 0};
  assert_int_equal(wsmsg_send_stream(p.s, WSMSG_EV_BINARY, src_read, &src), 0);
  assert_int_equal(wsmsg_send_binary(p.s, after, sizeof(after)), 0);
  /* 1: the output buffer for the stream's only fragment; 2: growing it to
   * take the message queued behind the stream */
  fail_countdown = 2;
  wsmsg_conn_pending(p.s, NULL);
  assert_int_equal(fail_countdown, 0);
  assert_false(wsmsg_conn_streaming(p.s));
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_CLOSED);
  assert_int_equal(wsmsg_conn_error(p.s), WSMSG_ERR_NOMEM);
  pump(&p);
  assert_int_equal(p.cr.close.code, 1011);
  pair_free(&p);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_backpressure_fail),
      cmocka_unit_test(test_backpressure_big_message_when_empty),
      cmocka_unit_test(test_backpressure_close),
      cmocka_unit_test(test_backpressure_bound),
      cmocka_unit_test(test_drain_event),
      cmocka_unit_test(test_broadcast),
      cmocka_unit_test(test_broadcast_on_output),
      cmocka_unit_test(test_stream_receive_binary),
      cmocka_unit_test(test_stream_receive_text),
      cmocka_unit_test(test_stream_receive_limit),
      cmocka_unit_test(test_stream_receive_memory),
      cmocka_unit_test(test_stream_send),
      cmocka_unit_test(test_stream_send_errors),
      cmocka_unit_test(test_stream_ends_with_connection),
      cmocka_unit_test(test_stream_flush_oom_fails),
  };
  return unit_run("stream", tests, argc, argv);
}
