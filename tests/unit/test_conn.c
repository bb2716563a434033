/* Connections: a client and a server wired in memory, plus raw frames fed
 * to a server to check every rule a peer can break. */
#include "internal.h" /* to look inside idle connections */
#include "pair.h"

/* ---- messages both ways ---- */

static uint8_t *pattern(size_t n, int text) {
  uint8_t *b = malloc(n ? n : 1);
  for (size_t i = 0; i < n; i++)
    b[i] = text ? (uint8_t)('a' + i % 26) : (uint8_t)(i * 7 + 3);
  return b;
}

static const size_t SIZES[] = {
    0, 1, 125, 126, 127, 65535, 65536, 65537, (1u << 20) - 1, 1u << 20};

static void test_sizes_both_ways(void **s) {
  (void)s;
  for (int text = 0; text <= 1; text++) {
    for (size_t i = 0; i < sizeof(SIZES) / sizeof(SIZES[0]); i++) {
      size_t n = SIZES[i];
      pair p;
      pair_open(&p, NULL);
      p.sr.echo = 1;
      uint8_t *d = pattern(n, text);
      int r = text ? wsmsg_send_text(p.c, (const char *)d, n)
                   : wsmsg_send_binary(p.c, d, n);
      assert_int_equal(r, 0);
      pump(&p);
      rec *got = &p.cr; /* echoed back to the client */
      assert_int_equal(text ? got->texts : got->binaries, 1);
      assert_int_equal(got->last_len, n);
      assert_memory_equal(got->last, d, n);
      if (text)
        assert_true(got->last_nul_ok);
      assert_int_equal(text ? p.sr.texts : p.sr.binaries, 1);
      free(d);
      pair_free(&p);
    }
  }
}

/* Byte-at-a-time delivery of a mix of frames. */
/* An empty binary message reaches on_binary with a valid pointer. */
static const uint8_t *empty_seen;
static void note_ptr(wsmsg_conn *c, const uint8_t *d, size_t n, void *u) {
  cb_binary(c, d, n, u);
  empty_seen = d;
}
static void ptr_setup(pair *p) { wsmsg_endpoint_on_binary(p->sep, note_ptr); }

static void test_empty_binary_pointer(void **s) {
  (void)s;
  pair p;
  pair_open(&p, ptr_setup);
  empty_seen = NULL;
  to_server(&p, 0, 0, 2, "", 0); /* fragmented: through the buffer path */
  to_server(&p, 1, 0, 0, "", 0);
  assert_int_equal(p.sr.binaries, 1);
  assert_int_equal(p.sr.last_len, 0);
  assert_non_null(empty_seen);
  pair_free(&p);
}

static void test_one_byte_chops(void **s) {
  (void)s;
  pair p;
  pair_open(&p, NULL);
  p.sr.echo = 1;
  uint8_t *d = pattern(70000, 0);
  wsmsg_send_binary(p.c, d, 70000);
  wsmsg_send_text(p.c, "hello", 5);
  wsmsg_send_ping(p.c, "pp", 2);
  pump1(p.c, p.s, 1);
  assert_int_equal(p.sr.binaries, 1);
  assert_int_equal(p.sr.texts, 1);
  pump1(p.s, p.c, 1);
  assert_int_equal(p.cr.binaries, 1);
  assert_int_equal(p.cr.texts, 1);
  assert_int_equal(p.cr.pongs, 1);
  assert_memory_equal(p.cr.last, "pp", 2);
  free(d);
  pair_free(&p);
}

static void test_fragmented_from_raw(void **s) {
  (void)s;
  pair p;
  pair_open(&p, NULL);
  assert_int_equal(to_server(&p, 0, 0, 1, "Hel", 3), 0);
  assert_int_equal(to_server(&p, 0, 0, 0, "", 0), 0);     /* empty fragment */
  assert_int_equal(to_server(&p, 1, 0, 9, "ping", 4), 0); /* interleaved */
  assert_int_equal(to_server(&p, 1, 0, 0, "lo", 2), 0);
  assert_int_equal(p.sr.texts, 1);
  assert_int_equal(p.sr.last_len, 5);
  assert_memory_equal(p.sr.last, "Hello", 5);
  /* the pong went out with the ping's payload */
  pump(&p);
  assert_int_equal(p.cr.pongs, 1);
  assert_memory_equal(p.cr.last, "ping", 4);
  pair_free(&p);
}

/* UTF-8 split across fragments is fine when the sequence completes. */
static void test_utf8_across_fragments(void **s) {
  (void)s;
  pair p;
  pair_open(&p, NULL);
  const char *euro = "\xe2\x82\xac"; /* U+20AC */
  to_server(&p, 0, 0, 1, euro, 1);
  to_server(&p, 0, 0, 0, euro + 1, 1);
  assert_int_equal(to_server(&p, 1, 0, 0, euro + 2, 1), 0);
  assert_int_equal(p.sr.texts, 1);
  assert_memory_equal(p.sr.last, euro, 3);
  pair_free(&p);
}

/* ---- peer errors: each gets its close code and a reason ---- */

typedef struct peer_err {
  const char *name;
  int fin, rsv, op;
  const char *payload;
  size_t len;
  int code, err;
} peer_err;

static const peer_err PEER_ERRS[] = {
    {"rsv1", 1, 4, 1, "x", 1, 1002, WSMSG_ERR_PROTOCOL},
    {"rsv2", 1, 2, 2, "x", 1, 1002, WSMSG_ERR_PROTOCOL},
    {"rsv3", 1, 1, 1, "x", 1, 1002, WSMSG_ERR_PROTOCOL},
    {"opcode 3", 1, 0, 3, "", 0, 1002, WSMSG_ERR_PROTOCOL},
    {"opcode 7", 1, 0, 7, "", 0, 1002, WSMSG_ERR_PROTOCOL},
    {"opcode 0xB", 1, 0, 0xB, "", 0, 1002, WSMSG_ERR_PROTOCOL},
    {"opcode 0xF", 1, 0, 0xF, "", 0, 1002, WSMSG_ERR_PROTOCOL},
    {"bare continuation", 1, 0, 0, "x", 1, 1002, WSMSG_ERR_PROTOCOL},
    {"fragmented ping", 0, 0, 9, "", 0, 1002, WSMSG_ERR_PROTOCOL},
    {"invalid utf8", 1, 0, 1, "\xc0\xaf", 2, 1007, WSMSG_ERR_UTF8},
    {"surrogate", 1, 0, 1, "\xed\xa0\x80", 3, 1007, WSMSG_ERR_UTF8},
    {"truncated utf8", 1, 0, 1, "\xe2\x82", 2, 1007, WSMSG_ERR_UTF8},
    {"above U+10FFFF", 1, 0, 1, "\xf4\x90\x80\x80", 4, 1007, WSMSG_ERR_UTF8},
    {"close 1 byte", 1, 0, 8, "\x03", 1, 1002, WSMSG_ERR_PROTOCOL},
    {"close 999", 1, 0, 8, "\x03\xe7", 2, 1002, WSMSG_ERR_CLOSE_CODE},
    {"close 1004", 1, 0, 8, "\x03\xec", 2, 1002, WSMSG_ERR_CLOSE_CODE},
    {"close 1005", 1, 0, 8, "\x03\xed", 2, 1002, WSMSG_ERR_CLOSE_CODE},
    {"close 1006", 1, 0, 8, "\x03\xee", 2, 1002, WSMSG_ERR_CLOSE_CODE},
    {"close 1015", 1, 0, 8, "\x03\xf7", 2, 1002, WSMSG_ERR_CLOSE_CODE},
    {"close 1016", 1, 0, 8, "\x03\xf8", 2, 1002, WSMSG_ERR_CLOSE_CODE},
    {"close 2999", 1, 0, 8, "\x0b\xb7", 2, 1002, WSMSG_ERR_CLOSE_CODE},
    {"close 5000", 1, 0, 8, "\x13\x88", 2, 1002, WSMSG_ERR_CLOSE_CODE},
    {"close bad reason", 1, 0, 8, "\x03\xe8\xff", 3, 1007, WSMSG_ERR_UTF8},
};

static void test_peer_errors(void **s) {
  (void)s;
  for (size_t i = 0; i < sizeof(PEER_ERRS) / sizeof(PEER_ERRS[0]); i++) {
    const peer_err *e = &PEER_ERRS[i];
    pair p;
    pair_open(&p, NULL);
    int r = to_server(&p, e->fin, e->rsv, e->op, e->payload, e->len);
    if (r != e->err)
      fail_msg("%s: recv returned %d, want %d", e->name, r, e->err);
    if (pending_close_code(p.s) != e->code)
      fail_msg("%s: close code %d, want %d", e->name, pending_close_code(p.s),
               e->code);
    assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_CLOSED);
    assert_false(wsmsg_conn_want_read(p.s));
    assert_int_equal(wsmsg_conn_error(p.s), e->err);
    assert_true(strlen(wsmsg_conn_error_detail(p.s)) > 0);
    assert_int_equal(p.sr.closes, 1);
    assert_int_equal(p.sr.close.error, e->err);
    assert_int_equal(p.sr.close.code, e->code);
    assert_false(p.sr.close.clean);
    assert_int_equal(p.sr.texts + p.sr.binaries, 0);
    /* nothing more is processed, sends fail */
    assert_int_equal(to_server(&p, 1, 0, 1, "late", 4), WSMSG_ERR_CLOSED);
    assert_int_equal(wsmsg_send_text(p.s, "x", 1), WSMSG_ERR_CLOSED);
    /* the client sees the code and the reason */
    pump(&p);
    assert_int_equal(p.cr.closes, 1);
    assert_int_equal(p.cr.close.code, e->code);
    assert_true(strlen(p.cr.close_reason) > 0);
    /* the server is done once its close frame is written */
    assert_true(wsmsg_conn_done(p.s));
    pair_free(&p);
  }
}

static void small_limits(pair *p);

/* A bad header is refused as soon as its bytes are in, without waiting for
 * a payload byte; a good header cut anywhere is not. */
static void test_header_only_errors(void **s) {
  (void)s;
  static const struct {
    const char *name;
    uint8_t h[14];
    size_t n;
    int code;
  } cases[] = {
      {"unmasked", {0x81, 0x05}, 2, 1002},
      {"rsv1", {0xC1, 0x85}, 2, 1002},
      {"rsv1 alone", {0xC1}, 1, 1002},
      {"fragmented ping, 1 byte", {0x09}, 1, 1002},
      {"close, 1-byte length", {0x88, 0x81}, 2, 1002},
      {"ping of 126", {0x89, 0xFE}, 2, 1002},
      {"64-bit top bit", {0x82, 0xFF, 0x80}, 3, 1002},
      {"opcode 3", {0x83, 0x85}, 2, 1002},
      {"continuation", {0x80, 0x85}, 2, 1002},
      {"4 GiB", {0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4}, 14, 1009},
      {"4 GiB, no key yet", {0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0}, 10, 1009},
      {"64 KiB > 1000", {0x82, 0xFE, 0xFF, 0xFF}, 4, 1009},
  };
  for (size_t i = 0; i < 2 * sizeof(cases) / sizeof(cases[0]); i++) {
    size_t ci = i / 2;
    bool whole = i % 2; /* byte by byte, then in one read */
    pair p;
    pair_open(&p, small_limits);
    int r = 0;
    if (whole)
      r = wsmsg_conn_recv(p.s, cases[ci].h, cases[ci].n);
    for (size_t k = 0; !whole && k < cases[ci].n && !r; k++)
      r = wsmsg_conn_recv(p.s, cases[ci].h + k, 1);
    if (pending_close_code(p.s) != cases[ci].code)
      fail_msg("%s%s: close %d, want %d", cases[ci].name,
               whole ? " (one read)" : "", pending_close_code(p.s),
               cases[ci].code);
    assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_CLOSED);
    pair_free(&p);
  }
  /* a valid 64-bit header split byte by byte waits quietly */
  pair p;
  pair_open(&p, NULL);
  const uint8_t ok[] = {0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4};
  for (size_t k = 0; k < sizeof(ok); k++)
    assert_int_equal(wsmsg_conn_recv(p.s, ok + k, 1), 0);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
  assert_int_equal(wsmsg_conn_pending(p.s, NULL), 0);
  pair_free(&p);
  /* and so does one that came whole in one read */
  pair_open(&p, NULL);
  assert_int_equal(wsmsg_conn_recv(p.s, ok, sizeof(ok)), 0);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
  assert_null(p.s->slot); /* held by the connection, not the parser */
  pair_free(&p);
}

static void test_unmasked_from_client(void **s) {
  (void)s;
  pair p;
  pair_open(&p, NULL);
  uint8_t buf[16];
  size_t n = frame(buf, 1, 0, 1, "hi", 2, 0);
  assert_int_equal(wsmsg_conn_recv(p.s, buf, n), WSMSG_ERR_PROTOCOL);
  assert_int_equal(pending_close_code(p.s), 1002);
  pair_free(&p);
  /* and a masked frame from a server is rejected by the client */
  pair_open(&p, NULL);
  n = frame(buf, 1, 0, 1, "hi", 2, 1);
  assert_int_equal(wsmsg_conn_recv(p.c, buf, n), WSMSG_ERR_PROTOCOL);
  assert_int_equal(p.cr.close.code, 1002);
  pair_free(&p);
}

/* Everything the server got, in order, as one checksum. */
static uint64_t seen_sum;
static int seen_msgs;
static void sum_in(int kind, const void *d, size_t n) {
  const uint8_t *b = d;
  seen_sum = (seen_sum ^ (uint64_t)kind ^ n) * 0x100000001b3ull;
  for (size_t i = 0; i < n; i++)
    seen_sum = (seen_sum ^ b[i]) * 0x100000001b3ull;
  seen_msgs++;
}
static void sum_text(wsmsg_conn *c, const char *d, size_t n, void *u) {
  (void)c;
  (void)u;
  sum_in(1, d, n);
}
static void sum_binary(wsmsg_conn *c, const uint8_t *d, size_t n, void *u) {
  (void)c;
  (void)u;
  sum_in(2, d, n);
}
static void sum_setup(pair *p) {
  wsmsg_endpoint_on_text(p->sep, sum_text);
  wsmsg_endpoint_on_binary(p->sep, sum_binary);
}

/* The server unmasks client frames itself, 8 bytes at a time, before wslay
 * sees them: every payload length, key and cut of the input must give back
 * the bytes that were sent. */
static void test_unmask_any_cut(void **s) {
  (void)s;
  static const size_t lens[] = {0,    1,    3,     7,     8,    9,    31,
                                33,   125,  126,   127,   4095, 4096, 4097,
                                8191, 8200, 65535, 65536, 70001};
  size_t cap = 0;
  for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
    cap += lens[i] + 14;
  cap += 3 * (14 + 40);
  uint8_t *wire = malloc(cap);
  uint8_t *pl = pattern(70001 + 32, 0); /* frames start i bytes in */
  size_t w = 0;
  uint64_t want = 0;
  seen_sum = 0;
  seen_msgs = 0;
  for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
    w += frame_key(wire + w, 1, 0, 2, pl + i, lens[i], 1,
                   0x9e3779b9u * (uint32_t)i);
    sum_in(2, pl + i, lens[i]);
  }
  /* a text message in three fragments around a ping */
  const char *t = "fragments: caf\xc3\xa9 and more";
  w += frame_key(wire + w, 0, 0, 1, t, 12, 1, 0x01020304u);
  w += frame_key(wire + w, 1, 0, 9, "pi", 2, 1, 0xdeadbeefu);
  w += frame_key(wire + w, 0, 0, 0, t + 12, 3, 1, 0xa5a5a5a5u);
  w += frame_key(wire + w, 1, 0, 0, t + 15, strlen(t) - 15, 1, 0x7f000001u);
  sum_in(1, t, strlen(t));
  want = seen_sum;
  int nmsg = seen_msgs;
  static const size_t cuts[] = {0, 1, 2, 3, 5, 6, 7, 13, 64, 1000, 4093, 4099};
  for (size_t ci = 0; ci <= sizeof(cuts) / sizeof(cuts[0]); ci++) {
    pair p;
    pair_open(&p, sum_setup);
    seen_sum = 0;
    seen_msgs = 0;
    uint32_t rnd = 12345;
    for (size_t off = 0; off < w;) {
      size_t k;
      if (ci < sizeof(cuts) / sizeof(cuts[0])) {
        k = cuts[ci] ? cuts[ci] : w;
      } else { /* random cuts, mostly short */
        rnd = rnd * 1103515245u + 12345u;
        k = 1 + (rnd >> 16) % ((rnd & 1) ? 20 : 9000);
      }
      if (k > w - off)
        k = w - off;
      assert_int_equal(wsmsg_conn_recv(p.s, wire + off, k), 0);
      off += k;
    }
    assert_int_equal(seen_msgs, nmsg);
    assert_true(seen_sum == want);
    assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
    pump(&p);
    assert_int_equal(p.cr.pongs, 1);
    assert_memory_equal(p.cr.last, "pi", 2);
    pair_free(&p);
  }
  free(pl);
  free(wire);
}

/* An unmasked frame after good ones: the good ones are delivered first,
 * then the connection fails, also when the bad header comes a byte at a
 * time. */
static void test_unmasked_after_masked(void **s) {
  (void)s;
  uint8_t wire[128];
  size_t w = frame(wire, 1, 0, 1, "one", 3, 1);
  w += frame(wire + w, 1, 0, 2, "two", 3, 1);
  size_t bad = w;
  w += frame(wire + w, 1, 0, 1, "bad", 3, 0);
  w += frame(wire + w, 1, 0, 1, "never", 5, 1);
  for (int bytewise = 0; bytewise <= 1; bytewise++) {
    pair p;
    pair_open(&p, NULL);
    int r;
    if (bytewise) {
      assert_int_equal(wsmsg_conn_recv(p.s, wire, bad + 1), 0);
      assert_int_equal(p.sr.texts + p.sr.binaries, 2);
      r = wsmsg_conn_recv(p.s, wire + bad + 1, 1); /* the mask bit */
    } else {
      r = wsmsg_conn_recv(p.s, wire, w);
    }
    assert_int_equal(r, WSMSG_ERR_PROTOCOL);
    assert_int_equal(p.sr.texts, 1);
    assert_int_equal(p.sr.binaries, 1);
    assert_memory_equal(p.sr.last, "two", 3);
    assert_int_equal(pending_close_code(p.s), 1002);
    assert_int_equal(wsmsg_conn_recv(p.s, wire, 1), WSMSG_ERR_CLOSED);
    pump(&p);
    assert_int_equal(p.cr.closes, 1);
    assert_int_equal(p.cr.close.code, 1002);
    assert_non_null(strstr(p.cr.close_reason, "unmasked"));
    pair_free(&p);
  }
}

static void test_control_too_long(void **s) {
  (void)s;
  pair p;
  pair_open(&p, NULL);
  char big[126];
  memset(big, 'p', sizeof(big));
  assert_int_equal(to_server(&p, 1, 0, 9, big, 126), WSMSG_ERR_PROTOCOL);
  assert_int_equal(pending_close_code(p.s), 1002);
  pair_free(&p);
  /* 125 is fine */
  pair_open(&p, NULL);
  assert_int_equal(to_server(&p, 1, 0, 9, big, 125), 0);
  pump(&p);
  assert_int_equal(p.cr.pongs, 1);
  assert_int_equal(p.cr.last_len, 125);
  pair_free(&p);
}

static void test_new_message_inside_fragmented(void **s) {
  (void)s;
  pair p;
  pair_open(&p, NULL);
  to_server(&p, 0, 0, 1, "a", 1);
  assert_int_equal(to_server(&p, 1, 0, 2, "b", 1), WSMSG_ERR_PROTOCOL);
  assert_int_equal(pending_close_code(p.s), 1002);
  pair_free(&p);
}

static void test_invalid_utf8_split(void **s) {
  (void)s;
  /* the bad byte arrives in the second fragment: fail fast there, before
   * the message ends */
  pair p;
  pair_open(&p, NULL);
  assert_int_equal(to_server(&p, 0, 0, 1, "ok \xe2", 4), 0);
  assert_int_equal(to_server(&p, 0, 0, 0, "\x28", 1), WSMSG_ERR_UTF8);
  assert_int_equal(pending_close_code(p.s), 1007);
  pair_free(&p);
  /* the invalid sequence split at every position of a whole frame */
  const char bad[] = "abc\xf0\x9f\x98\xff"; /* 4-byte sequence broken */
  for (size_t cut = 1; cut < sizeof(bad) - 1; cut++) {
    pair_open(&p, NULL);
    uint8_t buf[64];
    size_t n = frame(buf, 1, 0, 1, bad, sizeof(bad) - 1, 1);
    size_t at = 6 + cut;
    int r1 = wsmsg_conn_recv(p.s, buf, at);
    int r2 = r1 ? r1 : wsmsg_conn_recv(p.s, buf + at, n - at);
    assert_int_equal(r1 ? r1 : r2, WSMSG_ERR_UTF8);
    assert_int_equal(pending_close_code(p.s), 1007);
    assert_int_equal(p.sr.texts, 0);
    pair_free(&p);
  }
}

/* ---- limits ---- */

static void small_limits(pair *p) {
  wsmsg_endpoint_set_max_message_size(p->sep, 1000);
  wsmsg_endpoint_set_max_fragments(p->sep, 3);
}

static void test_max_message(void **s) {
  (void)s;
  pair p;
  pair_open(&p, small_limits);
  char *d = calloc(1, 2000);
  assert_int_equal(to_server(&p, 1, 0, 2, d, 1000), 0); /* exactly at limit */
  assert_int_equal(p.sr.binaries, 1);
  /* one more byte: rejected at the header (wslay reports a frame with its
   * first payload byte), before the payload is read */
  uint8_t hdr[16];
  size_t n = frame(hdr, 1, 0, 2, d, 0, 1);
  hdr[1] = 0x80 | 126;
  hdr[2] = 1001 >> 8;
  hdr[3] = 1001 & 0xff;
  memset(hdr + 4, 0, 5);
  (void)n;
  assert_int_equal(wsmsg_conn_recv(p.s, hdr, 9), WSMSG_ERR_TOO_BIG);
  assert_int_equal(pending_close_code(p.s), 1009);
  assert_int_equal(p.sr.close.error, WSMSG_ERR_TOO_BIG);
  assert_non_null(strstr(p.sr.close_detail, "limit"));
  pair_free(&p);
  /* over the limit across fragments */
  pair_open(&p, small_limits);
  to_server(&p, 0, 0, 1, d, 600);
  assert_int_equal(to_server(&p, 1, 0, 0, d, 401), WSMSG_ERR_TOO_BIG);
  assert_int_equal(pending_close_code(p.s), 1009);
  free(d);
  pair_free(&p);
}

static void test_max_fragments(void **s) {
  (void)s;
  pair p;
  pair_open(&p, small_limits);
  to_server(&p, 0, 0, 1, "a", 1);
  to_server(&p, 0, 0, 0, "", 0);
  assert_int_equal(to_server(&p, 1, 0, 0, "b", 1), 0); /* 3 frames: ok */
  assert_int_equal(p.sr.texts, 1);
  to_server(&p, 0, 0, 1, "a", 1);
  to_server(&p, 0, 0, 0, "", 0);
  to_server(&p, 0, 0, 0, "", 0);
  assert_int_equal(to_server(&p, 0, 0, 0, "", 0), WSMSG_ERR_TOO_MANY_FRAGMENTS);
  assert_int_equal(pending_close_code(p.s), 1009);
  pair_free(&p);
}

/* ---- close handshake ---- */

static void test_close_from_client(void **s) {
  (void)s;
  static const int codes[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009,
                              1010, 1011, 1012, 1013, 1014, 3000, 4999};
  for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
    pair p;
    pair_open(&p, NULL);
    assert_int_equal(wsmsg_close(p.c, codes[i], "see you"), 0);
    assert_int_equal(wsmsg_conn_state(p.c), WSMSG_STATE_CLOSING);
    assert_int_equal(wsmsg_send_text(p.c, "x", 1), WSMSG_ERR_CLOSED);
    assert_int_equal(wsmsg_close(p.c, 1000, NULL), WSMSG_ERR_CLOSED);
    pump(&p);
    /* server: peer-initiated, clean, code and reason */
    assert_int_equal(p.sr.closes, 1);
    assert_int_equal(p.sr.close.code, codes[i]);
    assert_true(p.sr.close.clean);
    assert_true(p.sr.close.remote);
    assert_int_equal(p.sr.close.error, 0);
    assert_string_equal(p.sr.close_reason, "see you");
    /* client: got the echo, clean, local */
    assert_int_equal(p.cr.closes, 1);
    assert_int_equal(p.cr.close.code, codes[i]);
    assert_true(p.cr.close.clean);
    assert_false(p.cr.close.remote);
    /* the reported code is the answer's, and so is the reason */
    assert_string_equal(p.cr.close_reason, "see you");
    assert_true(wsmsg_conn_done(p.s));
    assert_true(wsmsg_conn_done(p.c));
    pair_free(&p);
  }
}

static void test_close_from_server_no_code(void **s) {
  (void)s;
  pair p;
  pair_open(&p, NULL);
  assert_int_equal(wsmsg_close(p.s, 0, "ignored"), 0);
  pump(&p);
  assert_int_equal(p.cr.close.code, 1005);
  assert_true(p.cr.close.clean);
  assert_int_equal(p.sr.close.code, 1005);
  pair_free(&p);
}

static void test_close_code_validation(void **s) {
  (void)s;
  pair p;
  pair_open(&p, NULL);
  static const int bad[] = {1, 999, 1004, 1005, 1006, 1015, 2000, 5000, -1};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(wsmsg_close(p.s, bad[i], NULL), WSMSG_ERR_CLOSE_CODE);
  assert_int_equal(wsmsg_close(p.s, 1000, "\xff"), WSMSG_ERR_UTF8);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
  pair_free(&p);
}

/* Reasons are cut to 123 bytes on a character boundary. */
static void test_close_reason_cut(void **s) {
  (void)s;
  pair p;
  pair_open(&p, NULL);
  char reason[400] = "";
  for (int i = 0; i < 60; i++)
    strcat(reason, "\xc3\xa9");     /* 120 bytes of é */
  strcat(reason, "ab\xe2\x82\xac"); /* 122 + 3 bytes: the euro must go */
  assert_int_equal(wsmsg_close(p.s, 1000, reason), 0);
  pump(&p);
  assert_int_equal(strlen(p.cr.close_reason), 122);
  assert_true(wsmsg_utf8_valid(p.cr.close_reason, 122));
  pair_free(&p);
}

/* Data that arrives after we sent close but before the peer's close is
 * still delivered; pings are not answered any more. */
static void test_closing_state(void **s) {
  (void)s;
  pair p;
  pair_open(&p, NULL);
  wsmsg_close(p.s, 1000, NULL);
  assert_int_equal(to_server(&p, 1, 0, 1, "late", 4), 0);
  assert_int_equal(p.sr.texts, 1);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_CLOSING);
  assert_int_equal(to_server(&p, 1, 0, 8, "\x03\xe8", 2), 0);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_CLOSED);
  assert_int_equal(p.sr.close.code, 1000);
  assert_true(p.sr.close.clean);
  assert_false(p.sr.close.remote);
  pair_free(&p);
}

static void test_eof_and_abort(void **s) {
  (void)s;
  pair p;
  pair_open(&p, NULL);
  wsmsg_conn_eof(p.s);
  assert_int_equal(p.sr.closes, 1);
  assert_int_equal(p.sr.close.code, 1006);
  assert_false(p.sr.close.clean);
  assert_int_equal(p.sr.close.error, WSMSG_ERR_EOF);
  assert_true(wsmsg_conn_done(p.s));
  wsmsg_conn_eof(p.s); /* once only */
  assert_int_equal(p.sr.closes, 1);
  wsmsg_send_text(p.c, "queued", 6);
  wsmsg_conn_abort(p.c);
  assert_int_equal(p.cr.closes, 1);
  assert_int_equal(p.cr.close.error, WSMSG_ERR_ABORTED);
  assert_int_equal(wsmsg_conn_pending(p.c, NULL), 0);
  assert_true(wsmsg_conn_done(p.c));
  pair_free(&p);
}

/* ---- pull API ---- */

static void test_pull_api(void **s) {
  (void)s;
  pair p;
  memset(&p, 0, sizeof(p));
  p.sep = wsmsg_endpoint_new(); /* no callbacks at all */
  p.cep = wsmsg_endpoint_new();
  wsmsg_endpoint_set_pong_events(p.cep, 1);
  p.srv = wsmsg_server_new();
  wsmsg_server_route(p.srv, "/ws", p.sep);
  p.s = wsmsg_server_accept(p.srv, NULL);
  p.c = wsmsg_client_new(p.cep, "h", "/ws", NULL);
  pump(&p);
  wsmsg_event ev;
  assert_int_equal(wsmsg_conn_next_event(p.s, &ev), 1);
  assert_int_equal(ev.type, WSMSG_EV_OPEN);
  assert_int_equal(wsmsg_conn_next_event(p.c, &ev), 1);
  assert_int_equal(ev.type, WSMSG_EV_OPEN);
  wsmsg_send_text(p.c, "one", 3);
  wsmsg_send_binary(p.c, "\x00\x01", 2);
  wsmsg_send_ping(p.c, "hb", 2);
  pump(&p);
  assert_int_equal(wsmsg_conn_event_count(p.s), 2);
  assert_int_equal(wsmsg_conn_next_event(p.s, &ev), 1);
  assert_int_equal(ev.type, WSMSG_EV_TEXT);
  assert_int_equal(ev.len, 3);
  assert_string_equal((const char *)ev.data, "one");
  assert_int_equal(wsmsg_conn_next_event(p.s, &ev), 1);
  assert_int_equal(ev.type, WSMSG_EV_BINARY);
  assert_memory_equal(ev.data, "\x00\x01", 2);
  assert_int_equal(wsmsg_conn_next_event(p.s, &ev), 0);
  assert_int_equal(ev.type, WSMSG_EV_NONE);
  assert_int_equal(wsmsg_conn_next_event(p.c, &ev), 1);
  assert_int_equal(ev.type, WSMSG_EV_PONG);
  assert_memory_equal(ev.data, "hb", 2);
  wsmsg_close(p.s, 4000, "custom");
  pump(&p);
  assert_int_equal(wsmsg_conn_next_event(p.c, &ev), 1);
  assert_int_equal(ev.type, WSMSG_EV_CLOSE);
  assert_int_equal(ev.code, 4000);
  assert_true(ev.clean);
  assert_string_equal((const char *)ev.data, "custom");
  assert_string_equal(ev.detail, "");
  assert_int_equal(wsmsg_conn_next_event(p.s, &ev), 1);
  assert_int_equal(ev.type, WSMSG_EV_CLOSE);
  assert_int_equal(ev.code, 4000);
  assert_int_equal(wsmsg_conn_next_event(NULL, &ev), WSMSG_ERR_INVALID_ARG);
  /* events still queued at free time are released (valgrind checks) */
  wsmsg_send_text(p.c, "never read", 10);
  pair_free(&p);
}

/* ---- push endpoints: a message kind without a callback ---- */

static void no_binary(pair *p) { wsmsg_endpoint_on_binary(p->sep, NULL); }
static void no_binary_ignore(pair *p) {
  no_binary(p);
  assert_int_equal(wsmsg_endpoint_set_unhandled(p->sep, WSMSG_UNHANDLED_IGNORE),
                   0);
}
static void no_text(pair *p) { wsmsg_endpoint_on_text(p->sep, NULL); }
static void chunk_cb(wsmsg_conn *c, int type, const uint8_t *d, size_t n,
                     int first, int final, void *u) {
  (void)c, (void)type, (void)d, (void)n, (void)first, (void)final, (void)u;
}
static void chunks_only(pair *p) {
  wsmsg_endpoint_on_text(p->sep, NULL);
  wsmsg_endpoint_on_binary(p->sep, NULL);
  wsmsg_endpoint_on_chunk(p->sep, chunk_cb, WSMSG_STREAM_BINARY);
}
static void no_messages(pair *p) { /* on_open, on_close, on_pong only */
  wsmsg_endpoint_on_text(p->sep, NULL);
  wsmsg_endpoint_on_binary(p->sep, NULL);
}

/* Binary messages on an endpoint with on_text but no on_binary were queued
 * as events nobody reads, until the 4097th closed the connection with 1008
 * "event queue full".  Now such a push endpoint closes with 1003 at the
 * first one (or drops them with the ignore policy); a pull endpoint still
 * queues. */
static void test_unhandled_kinds(void **s) {
  (void)s;
  pair p;
  pair_open(&p, no_binary);
  for (int i = 0; i < 5000; i++)
    wsmsg_send_binary(p.c, "x", 1);
  pump(&p);
  assert_int_equal(wsmsg_conn_event_count(p.s), 0);
  assert_int_equal(p.sr.closes, 1);
  assert_int_equal(p.sr.close.code, 1003);
  assert_false(p.sr.close.remote);
  assert_true(p.sr.close.clean);
  assert_string_equal(p.sr.close_reason,
                      "binary messages are not accepted here");
  assert_int_equal(p.cr.close.code, 1003);
  assert_string_equal(p.cr.close_reason,
                      "binary messages are not accepted here");
  pair_free(&p);

  pair_open(&p, no_binary_ignore);
  for (int i = 0; i < 5000; i++)
    wsmsg_send_binary(p.c, "x", 1);
  wsmsg_send_text(p.c, "still here", 10);
  pump(&p);
  assert_int_equal(wsmsg_conn_event_count(p.s), 0);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
  assert_int_equal(p.sr.texts, 1);
  assert_string_equal((char *)p.sr.last, "still here");
  pair_free(&p);

  /* text on a binary-only endpoint, and on a streaming binary one */
  pair_open(&p, no_text);
  wsmsg_send_text(p.c, "t", 1);
  pump(&p);
  assert_int_equal(p.sr.close.code, 1003);
  assert_string_equal(p.sr.close_reason, "text messages are not accepted here");
  assert_int_equal(wsmsg_conn_event_count(p.s), 0);
  pair_free(&p);
  pair_open(&p, chunks_only);
  wsmsg_send_text(p.c, "t", 1);
  pump(&p);
  assert_int_equal(p.cr.close.code, 1003);
  pair_free(&p);

  /* a pull endpoint (no message callback) queues both kinds */
  pair_open(&p, no_messages);
  wsmsg_send_binary(p.c, "b", 1);
  wsmsg_send_text(p.c, "t", 1);
  pump(&p);
  assert_int_equal(wsmsg_conn_event_count(p.s), 2);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
  pair_free(&p);

  wsmsg_endpoint *ep = wsmsg_endpoint_new();
  assert_int_equal(wsmsg_endpoint_set_unhandled(ep, 2), WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_endpoint_set_unhandled(ep, -1), WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_endpoint_set_unhandled(NULL, 0),
                   WSMSG_ERR_INVALID_ARG);
  wsmsg_conn *c = wsmsg_client_new(ep, "h", "/", NULL); /* freezes it */
  assert_int_equal(wsmsg_endpoint_set_unhandled(ep, WSMSG_UNHANDLED_IGNORE),
                   WSMSG_ERR_STATE);
  wsmsg_conn_free(c);
  wsmsg_endpoint_free(ep);
}

/* ---- allocator hook ---- */

typedef struct counting {
  long allocs, frees, live;
  long grows; /* realloc of a live block: an allocation too */
} counting;

static void *c_malloc(size_t n, void *u) {
  counting *c = u;
  c->allocs++;
  c->live++;
  return malloc(n);
}
static void c_free(void *p, void *u) {
  counting *c = u;
  c->frees++;
  c->live--;
  free(p);
}
/* Every realloc is counted as an allocation, not only realloc(NULL, ...):
 * a buffer that grows (or moves) per message is an allocation per message
 * and the steady-state check below must see it. */
static void *c_realloc(void *p, size_t n, void *u) {
  counting *c = u;
  c->allocs++;
  if (!p)
    c->live++;
  else
    c->grows++;
  return realloc(p, n);
}

static void test_allocator_hook(void **s) {
  (void)s;
  counting cnt = {0, 0, 0, 0};
  wsmsg_mem mem = {&cnt, c_malloc, c_free, c_realloc};
  wsmsg_endpoint *sep = wsmsg_endpoint_new_mem(&mem);
  wsmsg_endpoint *cep = wsmsg_endpoint_new_mem(&mem);
  wsmsg_server *srv = wsmsg_server_new_mem(&mem);
  rec sr, cr;
  memset(&sr, 0, sizeof(sr));
  memset(&cr, 0, sizeof(cr));
  ep_callbacks(sep);
  ep_callbacks(cep);
  sr.echo = 1;
  wsmsg_server_route(srv, "/ws", sep);
  pair p;
  memset(&p, 0, sizeof(p));
  p.sep = sep;
  p.cep = cep;
  p.srv = srv;
  p.s = wsmsg_server_accept(srv, &sr);
  p.c = wsmsg_client_new(cep, "h", "/ws", &cr);
  pump(&p);
  assert_true(cnt.allocs > 0);
  /* warm up, then count allocations per echoed message */
  for (int i = 0; i < 4; i++) {
    wsmsg_send_text(p.c, "warm", 4);
    pump(&p);
  }
  long before = cnt.allocs;
  for (int i = 0; i < 100; i++) {
    wsmsg_send_text(p.c, "steady state message", 20);
    pump(&p);
  }
  assert_int_equal(cr.texts, 104);
  assert_int_equal(cnt.allocs - before, 0); /* no allocation per message */
  wsmsg_conn_free(p.s);
  wsmsg_conn_free(p.c);
  wsmsg_server_free(srv);
  wsmsg_endpoint_free(sep);
  wsmsg_endpoint_free(cep);
  assert_int_equal(cnt.live, 0);
  free(sr.last);
  free(cr.last);

  /* a hook without realloc works too */
  counting c2 = {0, 0, 0, 0};
  wsmsg_mem m2 = {&c2, c_malloc, c_free, NULL};
  pair q;
  memset(&q, 0, sizeof(q));
  q.sep = wsmsg_endpoint_new_mem(&m2);
  q.cep = wsmsg_endpoint_new_mem(&m2);
  q.srv = wsmsg_server_new_mem(&m2);
  ep_callbacks(q.sep);
  ep_callbacks(q.cep);
  q.sr.echo = 1;
  wsmsg_server_route(q.srv, "/ws", q.sep);
  q.s = wsmsg_server_accept(q.srv, &q.sr);
  q.c = wsmsg_client_new(q.cep, "h", "/ws", &q.cr);
  pump(&q);
  uint8_t *big = pattern(300000, 0);
  wsmsg_send_binary(q.c, big, 300000);
  pump(&q);
  assert_int_equal(q.cr.last_len, 300000);
  assert_memory_equal(q.cr.last, big, 300000);
  free(big);
  pair_free(&q);
  assert_int_equal(c2.live, 0);
}

/* An idle connection holds no frame parser and no buffer: they are
 * borrowed from the server's pool while there is work.  A frame cut in its
 * payload keeps its parser until it completes; a cut header does not need
 * one (the server collects headers itself, in 14 bytes of the conn). */
static void test_idle_holds_nothing(void **s) {
  (void)s;
  pair p;
  pair_open(&p, NULL);
  p.sr.echo = 1;
  wsmsg_send_text(p.c, "hello", 5);
  wsmsg_send_binary(p.c, "\x01\x02", 2);
  pump(&p);
  assert_int_equal(p.cr.texts + p.cr.binaries, 2);
  assert_null(p.s->slot);
  assert_int_equal(p.s->out.cap, 0);
  assert_int_equal(p.s->msg.cap, 0);
  assert_null(p.c->slot);
  /* half a frame: the parser stays with the connection */
  uint8_t buf[64];
  size_t n = frame(buf, 1, 0, 1, "split me", 8, 1);
  wsmsg_conn_recv(p.s, buf, 9); /* header (6) and 3 payload bytes */
  assert_non_null(p.s->slot);
  wsmsg_conn_recv(p.s, buf + 9, n - 9);
  assert_non_null(p.s->slot); /* its echo is pending: still busy */
  pump(&p);
  assert_null(p.s->slot); /* written: idle again */
  assert_int_equal(p.sr.texts, 2);
  assert_string_equal((char *)p.sr.last, "split me");
  /* header bytes only, 2 then the whole header: no parser is held */
  wsmsg_conn_recv(p.s, buf, 2);
  assert_null(p.s->slot);
  wsmsg_conn_recv(p.s, buf + 2, 4);
  assert_null(p.s->slot);
  wsmsg_conn_recv(p.s, buf + 6, n - 6);
  pump(&p);
  assert_null(p.s->slot);
  assert_int_equal(p.sr.texts, 3);
  assert_string_equal((char *)p.sr.last, "split me");
  pair_free(&p);
}

/* ---- misc API contracts ---- */

static void test_send_states(void **s) {
  (void)s;
  pair p;
  pair_init(&p, NULL);
  assert_int_equal(wsmsg_send_text(p.s, "x", 1), WSMSG_ERR_STATE);
  assert_int_equal(wsmsg_close(p.s, 1000, NULL), WSMSG_ERR_STATE);
  pump(&p);
  assert_int_equal(wsmsg_send_text(p.s, "\xff", 1), WSMSG_ERR_UTF8);
  assert_int_equal(wsmsg_send_text(p.s, NULL, 1), WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_send_text(p.s, NULL, 0), 0);
  assert_int_equal(wsmsg_send_ping(p.s, "x", 126), WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_send_text(NULL, "x", 1), WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_conn_recv(NULL, "x", 1), WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_endpoint_on_text(p.sep, NULL), WSMSG_ERR_STATE);
  assert_string_equal(wsmsg_strerror(WSMSG_ERR_TOO_BIG), "message too big");
  assert_string_equal(wsmsg_strerror(12345), "unknown error");
  assert_string_equal(wsmsg_version(), WSMSG_VERSION_STRING);
  assert_int_equal(wsmsg_version_number(), WSMSG_VERSION_NUMBER);
  void *u = &p;
  wsmsg_conn_set_user(p.s, u);
  assert_ptr_equal(wsmsg_conn_user(p.s), u);
  pair_free(&p);
}

/* Every code has its own text; 0 is "success" (the enum's "0 is success").
 * A second check of lib/error.c beside the binding's test_strerror_and_codes
 * (mutation strerror-success-text). */
static void test_strerror_every_code(void **s) {
  (void)s;
  assert_string_equal(wsmsg_strerror(WSMSG_OK), "success");
  const char *seen[-WSMSG_ERR_RATE_LIMIT + 1];
  for (int code = WSMSG_OK; code >= WSMSG_ERR_RATE_LIMIT; code--) {
    const char *t = wsmsg_strerror(code);
    assert_non_null(t);
    assert_true(t[0] != '\0');
    if (strcmp(t, "unknown error") == 0)
      fail_msg("code %d has no text of its own", code);
    for (int k = 0; k < -code; k++)
      if (strcmp(seen[k], t) == 0)
        fail_msg("codes %d and %d share the text %s", -k, code, t);
    seen[-code] = t;
  }
  assert_string_equal(wsmsg_strerror(WSMSG_ERR_RATE_LIMIT - 1),
                      "unknown error");
  assert_string_equal(wsmsg_strerror(1), "unknown error");
}

/* Topics seen from the subscriber's end of the wire (lib/topic.c; the
 * counts and errors are test_topic's): a publish arrives, a text that is
 * not UTF-8 never reaches the wire (the client would fail the connection
 * with 1007), and once unsubscribed nothing more arrives.  A second killer
 * of the mutations topic-publish-text-utf8-unchecked and
 * topic-unsubscribe-noop. */
static void test_topic_over_the_wire(void **s) {
  (void)s;
  pair p;
  pair_open(&p, NULL);
  wsmsg_topics *t = wsmsg_topics_new();
  assert_non_null(t);
  const void *q;
  assert_int_equal(wsmsg_topic_subscribe(t, p.s, "news"), 0);
  assert_int_equal(wsmsg_topic_publish(t, "news", WSMSG_EV_TEXT, "one", 3, 0),
                   1);
  pump(&p);
  assert_int_equal(p.cr.texts, 1);
  assert_int_equal(p.cr.last_len, 3);
  assert_memory_equal(p.cr.last, "one", 3);

  static const char *const bad[] = {"\xed\xa0\x80", "ok \xff", "\xc0\xaf",
                                    "ends inside \xe2\x82"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(wsmsg_topic_publish(t, "news", WSMSG_EV_TEXT, bad[i],
                                         strlen(bad[i]), 0),
                     WSMSG_ERR_UTF8);
    assert_int_equal(wsmsg_conn_pending(p.s, &q), 0);
  }
  pump(&p);
  assert_int_equal(p.cr.texts, 1);
  assert_int_equal(p.cr.closes, 0);
  assert_int_equal(wsmsg_conn_state(p.c), WSMSG_STATE_OPEN);

  assert_int_equal(wsmsg_topic_unsubscribe(t, p.s, "news"), 0);
  assert_int_equal(wsmsg_topic_publish(t, "news", WSMSG_EV_BINARY, "two", 3, 0),
                   0);
  assert_int_equal(wsmsg_conn_pending(p.s, &q), 0);
  pump(&p);
  assert_int_equal(p.cr.texts, 1);
  assert_int_equal(p.cr.binaries, 0);
  /* subscribed again, it gets the next one */
  assert_int_equal(wsmsg_topic_subscribe(t, p.s, "news"), 0);
  assert_int_equal(
      wsmsg_topic_publish(t, "news", WSMSG_EV_BINARY, "three", 5, 0), 1);
  pump(&p);
  assert_int_equal(p.cr.binaries, 1);
  assert_memory_equal(p.cr.last, "three", 5);
  wsmsg_topics_free(t);
  pair_free(&p);
}

/* Many small messages are coalesced into one contiguous output. */
static void test_output_coalesced(void **s) {
  (void)s;
  pair p;
  pair_open(&p, NULL);
  for (int i = 0; i < 50; i++)
    wsmsg_send_text(p.s, "0123456789", 10);
  const void *b;
  assert_int_equal(wsmsg_conn_pending(p.s, &b), 50 * 12);
  /* partial writes */
  assert_int_equal(wsmsg_conn_recv(p.c, b, 5), 0);
  wsmsg_conn_consume(p.s, 5);
  assert_int_equal(wsmsg_conn_pending(p.s, &b), 50 * 12 - 5);
  pump(&p);
  assert_int_equal(p.cr.texts, 50);
  pair_free(&p);
}

/* The callback may close the connection; later frames in the same buffer
 * are then still processed until the peer's close arrives. */
static void close_on_text(wsmsg_conn *c, const char *d, size_t n, void *u) {
  cb_text(c, d, n, u);
  wsmsg_close(c, 1000, "enough");
}
static void closing_setup(pair *p) {
  wsmsg_endpoint_on_text(p->sep, close_on_text);
}

static void test_close_inside_callback(void **s) {
  (void)s;
  pair p;
  pair_open(&p, closing_setup);
  wsmsg_send_text(p.c, "a", 1);
  wsmsg_send_text(p.c, "b", 1);
  pump(&p);
  assert_int_equal(p.sr.texts, 2);
  assert_int_equal(p.sr.closes, 1);
  assert_int_equal(p.cr.close.code, 1000);
  assert_string_equal(p.cr.close_reason, "enough");
  pair_free(&p);
}

/* Found by fuzz_pair with allocation failures: when wsmsg_conn_recv ran
 * out of memory for the frame parser it borrows, or for a queued event, it
 * returned WSMSG_ERR_NOMEM but left the connection open, with the message
 * lost and the rest of the bytes of that call dropped (for the event, wslay
 * had buffered only part of them): the frame stream was corrupt from there
 * on.  It now fails the connection with 1011, as it did already when out of
 * memory while reassembling a message. */
static void test_recv_oom_fails_connection(void **s) {
  (void)s;
  /* allocations in the client's recv: 1 the frame parser, 2 the TEXT
   * event for "one" */
  for (int k = 1; k <= 2; k++) {
    wsmsg_mem mem = failing_mem;
    pair p;
    memset(&p, 0, sizeof(p));
    p.sep = wsmsg_endpoint_new();
    p.cep = wsmsg_endpoint_new_mem(&mem);
    p.srv = wsmsg_server_new();
    ep_callbacks(p.sep);
    wsmsg_endpoint_on_open(p.cep, cb_open);
    wsmsg_endpoint_on_close(p.cep, cb_close); /* texts become events */
    wsmsg_server_route(p.srv, "/ws", p.sep);
    p.s = wsmsg_server_accept(p.srv, &p.sr);
    p.c = wsmsg_client_new(p.cep, "localhost:1", "/ws", &p.cr);
    pump(&p);
    assert_int_equal(wsmsg_conn_state(p.c), WSMSG_STATE_OPEN);
    wsmsg_send_text(p.s, "one", 3);
    wsmsg_send_text(p.s, "two", 3);
    wsmsg_send_text(p.s, "three", 5);
    const void *out;
    size_t n = wsmsg_conn_pending(p.s, &out);
    fail_countdown = k;
    int r = wsmsg_conn_recv(p.c, out, n);
    wsmsg_conn_consume(p.s, n);
    assert_int_equal(fail_countdown, 0);
    assert_int_equal(r, WSMSG_ERR_NOMEM);
    assert_int_equal(wsmsg_conn_state(p.c), WSMSG_STATE_CLOSED);
    assert_int_equal(wsmsg_conn_error(p.c), WSMSG_ERR_NOMEM);
    assert_int_equal(p.cr.closes, 1);
    assert_int_equal(p.cr.close.error, WSMSG_ERR_NOMEM);
    assert_int_equal(wsmsg_conn_recv(p.c, "x", 1), WSMSG_ERR_CLOSED);
    /* the server hears why */
    pump(&p);
    assert_int_equal(p.sr.close.code, 1011);
    pair_free(&p);
  }
}

/* Found by fuzz_pair with allocation failures: out of memory while
 * accumulating the upgrade request (or queueing the OPEN event) made recv
 * return WSMSG_ERR_NOMEM with the connection still CONNECTING (or OPEN and
 * the bytes after the head unread).  Every allocation of the handshake is
 * failed in turn, on both sides.  Whatever recv returned, the side whose
 * allocation failed must end CLOSED (never left CONNECTING with the bytes
 * dropped), take no more bytes, and a client must report it once; the
 * other side ends CLOSED too once the host closes the TCP connection. */
static void test_handshake_oom_closes(void **s) {
  (void)s;
  int hits[2] = {0, 0};
  for (int side = 0; side < 2; side++) {
    for (int k = 1; k < 40; k++) {
      wsmsg_mem mem = failing_mem;
      pair p;
      memset(&p, 0, sizeof(p));
      p.sep = side ? wsmsg_endpoint_new() : wsmsg_endpoint_new_mem(&mem);
      p.cep = side ? wsmsg_endpoint_new_mem(&mem) : wsmsg_endpoint_new();
      p.srv = side ? wsmsg_server_new() : wsmsg_server_new_mem(&mem);
      ep_callbacks(p.cep);
      wsmsg_endpoint_on_close(p.sep, cb_close); /* OPEN is an event */
      wsmsg_server_route(p.srv, "/ws", p.sep);
      p.s = wsmsg_server_accept(p.srv, &p.sr);
      p.c = wsmsg_client_new(p.cep, "localhost:1", "/ws", &p.cr);
      assert_non_null(p.s);
      assert_non_null(p.c);
      fail_countdown = k;
      wsmsg_conn *who = side ? p.c : p.s;
      wsmsg_conn *other = side ? p.s : p.c;
      pump(&p); /* the return values of recv are not trusted */
      if (fail_countdown > 0) { /* no allocation left to fail */
        assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
        assert_int_equal(wsmsg_conn_state(p.c), WSMSG_STATE_OPEN);
        fail_countdown = 0;
        pair_free(&p);
        assert_true(k > 2); /* the handshake allocates on both sides */
        break;
      }
      hits[side]++;
      assert_int_equal(wsmsg_conn_state(who), WSMSG_STATE_CLOSED);
      /* it says why: out of memory (a 500 answer is a HANDSHAKE error
       * whose detail says so) */
      int err = wsmsg_conn_error(who);
      assert_true(err == WSMSG_ERR_NOMEM ||
                  (err == WSMSG_ERR_HANDSHAKE &&
                   strstr(wsmsg_conn_error_detail(who), "out of memory")));
      assert_int_equal(wsmsg_conn_recv(who, "x", 1), WSMSG_ERR_CLOSED);
      if (side) {
        assert_int_equal(p.cr.closes, 1); /* a client always reports */
        assert_int_equal(p.cr.close.error, err); /* reported as such */
      }
      /* the host closes the TCP connection of a finished conn */
      if (wsmsg_conn_state(other) != WSMSG_STATE_CLOSED)
        wsmsg_conn_eof(other);
      assert_int_equal(wsmsg_conn_state(other), WSMSG_STATE_CLOSED);
      assert_int_equal(p.cr.closes, 1);
      pair_free(&p);
    }
  }
  /* both sides had allocations to fail */
  assert_true(hits[0] >= 2);
  assert_true(hits[1] >= 2);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sizes_both_ways),
      cmocka_unit_test(test_empty_binary_pointer),
      cmocka_unit_test(test_one_byte_chops),
      cmocka_unit_test(test_fragmented_from_raw),
      cmocka_unit_test(test_utf8_across_fragments),
      cmocka_unit_test(test_peer_errors),
      cmocka_unit_test(test_header_only_errors),
      cmocka_unit_test(test_unmasked_from_client),
      cmocka_unit_test(test_control_too_long),
      cmocka_unit_test(test_new_message_inside_fragmented),
      cmocka_unit_test(test_invalid_utf8_split),
      cmocka_unit_test(test_max_message),
      cmocka_unit_test(test_max_fragments),
      cmocka_unit_test(test_close_from_client),
      cmocka_unit_test(test_close_from_server_no_code),
      cmocka_unit_test(test_close_code_validation),
      cmocka_unit_test(test_close_reason_cut),
      cmocka_unit_test(test_closing_state),
      cmocka_unit_test(test_eof_and_abort),
      cmocka_unit_test(test_pull_api),
      cmocka_unit_test(test_unhandled_kinds),
      cmocka_unit_test(test_allocator_hook),
      cmocka_unit_test(test_recv_oom_fails_connection),
      cmocka_unit_test(test_handshake_oom_closes),
      cmocka_unit_test(test_idle_holds_nothing),
      cmocka_unit_test(test_unmask_any_cut),
      cmocka_unit_test(test_unmasked_after_masked),
      cmocka_unit_test(test_send_states),
      cmocka_unit_test(test_strerror_every_code),
      cmocka_unit_test(test_topic_over_the_wire),
      cmocka_unit_test(test_output_coalesced),
      cmocka_unit_test(test_close_inside_callback),
  };
  return unit_run("conn", tests, argc, argv);
}
