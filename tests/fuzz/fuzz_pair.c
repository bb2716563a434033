/* libFuzzer target: a client and a server wired together in memory,
 * exchanging fuzzer-chosen operations (messages, some by wsmsg_broadcast;
 * pings, streams, closes, partial deliveries, ticks, EOF and aborts).  Two
 * oracles per direction:
 *  - the frames the sender writes (checked by fz_wire) carry exactly the
 *    messages it accepted, in order;
 *  - the receiver delivers exactly those messages, in order (callbacks,
 *    events or chunks), as long as it is open.
 * When neither side had an error, everything sent has arrived, and a close
 * from either side completes cleanly with the right codes.
 *
 * With config[3] != 0 both sides allocate through a wsmsg_mem whose
 * allocation number config[3] & 127 fails (and every later one if bit 7 is
 * set): then only memory safety, leaks and the correctness of whatever is
 * delivered are checked.
 *
 * Input: 4 config bytes, then operations (one byte: side << 7 | op << 4 |
 * arg, some followed by a parameter byte). */
#include "fuzz_common.h"

/* config[0] (server) and config[1] (client) */
#define PF_STREAM_BIN 0x01
#define PF_STREAM_TEXT 0x02
#define PF_PULL 0x04 /* messages as events (without PF_STREAM_*) */
#define PF_SMALL_BP 0x08
#define PF_PING 0x10  /* keepalive pings */
#define PF_PONG 0x20  /* with a pong timeout */
#define PF_CLOSE 0x40 /* short close timeout */
#define PF_PULL_CLOSE 0x80

static const uint64_t PAIR_MAX[16] = {
    UINT64_MAX, 0,        1,  125, 126,        1000,       65535,  65536,
    70000,      1u << 20, 10, 100, UINT64_MAX, UINT64_MAX, 200000, 5};
static const size_t PAIR_LEN[16] = {0,     10,    20,    120,  130, 1000,
                                    65530, 65540, 70000, 1,    2,   125,
                                    126,   127,   65535, 65536};
static const size_t DELIVER[16] = {
    1, 2, 3, 5, 8, 13, 64, 126, 127, 1000, 4096, 65536, 70000, 2, 7, SIZE_MAX};
static const int PAIR_CODES[8] = {1000, 1001, 1003, 1011, 3000, 4999, 0, 1008};

typedef struct expect {
  int text;
  size_t len;
  uint64_t pos; /* pattern offset */
} expect;

struct pairctx;

typedef struct side {
  struct pairctx *pc;
  int idx; /* 0 server, 1 client */
  wsmsg_conn *c;
  unsigned flags;
  uint64_t max_message;
  int opened, closes, close_events;
  wsmsg_close_info ci;
  int sent_close; /* code this side sent (1005: none), 0 if none */
  int chunk_open, chunk_type;
  fz_buf chunk;
  stream_src src;
  fz_out out;
  fz_wire wire; /* frames this side wrote (once `live`) */
  int live;
  /* messages this side sent, and how far the wire / the peer got */
  expect *exp;
  size_t nexp, cap, wire_at, recv_at;
} side;

typedef struct pairctx {
  side s[2];
} pairctx;

static uint8_t *scratch; /* payloads up to 70000 bytes */

static void expect_push(side *s, int text, size_t len, uint64_t pos) {
  if (s->nexp == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 16;
    s->exp = realloc(s->exp, s->cap * sizeof(expect));
    FZ_CHECK(s->exp != NULL);
  }
  s->exp[s->nexp++] = (expect){text, len, pos};
}

/* Does message (text, d, n) equal the next expected one of `from`? */
static void expect_match(side *from, size_t *at, int text, const uint8_t *d,
                         size_t n) {
  FZ_CHECK(*at < from->nexp);
  const expect *e = &from->exp[*at];
  FZ_CHECK(e->text == text);
  FZ_CHECK(e->len == n);
  size_t off = 0;
  uint8_t tmp[4096];
  while (off < n) {
    size_t k = n - off < sizeof(tmp) ? n - off : sizeof(tmp);
    fill_pattern(tmp, k, e->pos + off, text);
    FZ_CHECK(memcmp(tmp, d + off, k) == 0);
    off += k;
  }
  ++*at;
}

static side *peer(side *s) { return &s->pc->s[!s->idx]; }

/* `queued`: taken from the event queue, where it may wait behind an
 * on_close callback (it was queued before); a CLOSE event comes last. */
static void take_events(side *s);

static void got_message(side *s, int text, const uint8_t *d, size_t n,
                        int queued) {
  /* a side that takes some kinds as events and others through callbacks
   * sees them in order if it takes the queued ones first */
  if (!queued && wsmsg_conn_event_count(s->c))
    take_events(s);
  FZ_CHECK(s->close_events == 0);
  FZ_CHECK(queued || s->closes == 0);
  FZ_CHECK(!s->max_message || n <= s->max_message);
  side *from = peer(s);
  expect_match(from, &from->recv_at, text, d, n);
}

static void on_wire_msg(void *u, int op, const uint8_t *d, size_t n) {
  side *s = u; /* the sender */
  if (fz_trace)
    fprintf(stderr,
            "side %d wrote a message: op %d, %zu bytes (expected #%zu"
            " of %zu)\n",
            s->idx, op, n, s->wire_at, s->nexp);
  expect_match(s, &s->wire_at, op == 1, d, n);
}

/* ---- callbacks ------------------------------------------------------------
 */

static void cb_open(wsmsg_conn *c, void *u) {
  side *s = u;
  (void)c;
  FZ_CHECK(s->opened++ == 0);
}

static void cb_text(wsmsg_conn *c, const char *d, size_t n, void *u) {
  (void)c;
  FZ_CHECK(d[n] == '\0');
  got_message(u, 1, (const uint8_t *)d, n, 0);
}

static void cb_binary(wsmsg_conn *c, const uint8_t *d, size_t n, void *u) {
  (void)c;
  got_message(u, 0, d, n, 0);
}

static void cb_chunk(wsmsg_conn *c, int type, const uint8_t *d, size_t n,
                     int first, int final, void *u) {
  side *s = u;
  (void)c;
  FZ_CHECK(s->closes == 0);
  if (first) {
    FZ_CHECK(!s->chunk_open);
    s->chunk_open = 1;
    s->chunk_type = type;
    s->chunk.n = 0;
  } else {
    FZ_CHECK(s->chunk_open && s->chunk_type == type);
  }
  fz_buf_add(&s->chunk, d, n);
  if (final) {
    s->chunk_open = 0;
    got_message(s, type == WSMSG_EV_TEXT, s->chunk.p, s->chunk.n, 0);
  }
}

static void cb_pong(wsmsg_conn *c, const uint8_t *d, size_t n, void *u) {
  (void)c;
  (void)d;
  side *s = u;
  FZ_CHECK(s->closes == 0 && n <= 125);
}

static void note_close(side *s, const wsmsg_close_info *ci) {
  FZ_CHECK(s->closes + s->close_events == 0);
  FZ_CHECK(wsmsg_conn_state(s->c) == WSMSG_STATE_CLOSED);
  FZ_CHECK(ci->reason_len <= 123 && ci->reason[ci->reason_len] == '\0');
  FZ_CHECK(!ci->clean || ci->error == 0);
  s->ci = *ci;
  s->ci.reason = s->ci.detail = NULL; /* not valid after the call */
}

static void cb_close(wsmsg_conn *c, const wsmsg_close_info *ci, void *u) {
  side *s = u;
  (void)c;
  note_close(s, ci);
  s->closes++;
}

static void take_events(side *s) {
  wsmsg_event ev;
  while (wsmsg_conn_next_event(s->c, &ev) == 1) {
    switch (ev.type) {
    case WSMSG_EV_TEXT:
      FZ_CHECK(ev.data[ev.len] == '\0');
      got_message(s, 1, ev.data, ev.len, 1);
      break;
    case WSMSG_EV_BINARY:
      got_message(s, 0, ev.data, ev.len, 1);
      break;
    case WSMSG_EV_CLOSE: {
      wsmsg_close_info ci = {
          ev.code, ev.clean, 0, ev.error, (const char *)ev.data,
          ev.len,  ev.detail};
      note_close(s, &ci);
      s->close_events++;
      break;
    }
    case WSMSG_EV_OPEN:
      FZ_CHECK(s->opened++ == 0);
      break;
    default:
      break;
    }
  }
}

/* ---- operations -------------------------------------------------------------
 */

static void check_side(side *s) {
  int st = wsmsg_conn_state(s->c);
  FZ_CHECK((st == WSMSG_STATE_CLOSED) == !wsmsg_conn_want_read(s->c));
  FZ_CHECK(s->closes + s->close_events <= 1);
  if (!(s->flags & PF_PULL_CLOSE) && s->opened)
    FZ_CHECK((st == WSMSG_STATE_CLOSED) == (s->closes == 1));
  fz_out_look(s->c, &s->out, NULL);
}

/* Move up to `k` bytes of what `from` wrote to its peer. */
static size_t deliver(side *from, size_t k, int bytewise) {
  side *to = peer(from);
  const void *p;
  size_t n = fz_out_look(from->c, &from->out, &p);
  if (k > n)
    k = n;
  if (!k)
    return 0;
  uint8_t *copy = malloc(k);
  FZ_CHECK(copy != NULL);
  memcpy(copy, p, k);
  fz_out_write(from->c, &from->out, k, from->live ? &from->wire : NULL,
               on_wire_msg, from);
  for (size_t i = 0; i < k;) {
    size_t m = bytewise ? 1 : k - i;
    if (!wsmsg_conn_want_read(to->c))
      break; /* the host drops what a closed connection would read */
    int r = wsmsg_conn_recv(to->c, copy + i, m);
    if (fz_trace && r < 0)
      fprintf(stderr, "recv into side %d: %d (%s), state %d, error %d: %s\n",
              to->idx, r, wsmsg_strerror(r), wsmsg_conn_state(to->c),
              wsmsg_conn_error(to->c), wsmsg_conn_error_detail(to->c));
    if (r < 0)
      FZ_CHECK(wsmsg_conn_state(to->c) == WSMSG_STATE_CLOSED);
    i += m;
  }
  free(copy);
  check_side(from);
  check_side(to);
  return k;
}

static void pump_all(pairctx *pc) {
  for (int i = 0; i < 200; i++) {
    size_t moved = deliver(&pc->s[0], SIZE_MAX, 0);
    moved += deliver(&pc->s[1], SIZE_MAX, 0);
    if (!moved)
      break;
  }
}

/* wsmsg_broadcast to a list naming this side's connection `copies` times
 * (with NULLs between, which are skipped): every copy it reports queued
 * must arrive, in order. */
static void broadcast_data(side *s, int text, size_t len, uint64_t pos,
                           int copies) {
  wsmsg_conn *list[5] = {s->c, NULL, s->c, NULL, s->c};
  int st = wsmsg_conn_state(s->c);
  fill_pattern(scratch, len, pos, text);
  int64_t r =
      wsmsg_broadcast(list, (size_t)(2 * copies - 1),
                      text ? WSMSG_EV_TEXT : WSMSG_EV_BINARY, scratch, len);
  if (fz_trace)
    fprintf(stderr, "side %d broadcasts %s of %zu bytes x%d: %lld\n", s->idx,
            text ? "text" : "binary", len, copies, (long long)r);
  FZ_CHECK(r >= 0 && r <= copies);
  if (st != WSMSG_STATE_OPEN)
    FZ_CHECK(r == 0);
  for (int64_t i = 0; i < r; i++)
    expect_push(s, text, len, pos);
}

static void send_data(side *s, int text, size_t len, uint64_t pos) {
  int st = wsmsg_conn_state(s->c);
  fill_pattern(scratch, len, pos, text);
  int r = text ? wsmsg_send_text(s->c, (const char *)scratch, len)
               : wsmsg_send_binary(s->c, scratch, len);
  if (st != WSMSG_STATE_OPEN) {
    FZ_CHECK(r == WSMSG_ERR_CLOSED);
    return;
  }
  FZ_CHECK(r == 0 || r == WSMSG_ERR_BACKPRESSURE || FZ_OOM_OK(r));
  if (fz_trace)
    fprintf(stderr, "side %d sends %s of %zu bytes: %d\n", s->idx,
            text ? "text" : "binary", len, r);
  if (r == 0)
    expect_push(s, text, len, pos);
}

static void do_close(side *s, int code) {
  int st = wsmsg_conn_state(s->c);
  int r = wsmsg_close(s->c, code, code ? "bye" : NULL);
  if (st != WSMSG_STATE_OPEN) {
    FZ_CHECK(r == WSMSG_ERR_CLOSED);
    return;
  }
  FZ_CHECK(r == 0 || FZ_OOM_OK(r));
  s->sent_close = code ? code : 1005;
}

static void tick_both(pairctx *pc, uint32_t step) {
  fz_now += step;
  for (int i = 0; i < 2; i++) {
    FZ_CHECK(wsmsg_conn_tick(pc->s[i].c, fz_now) == 0);
    int64_t d = wsmsg_conn_deadline(pc->s[i].c);
    FZ_CHECK(d < 0 || (uint64_t)d > fz_now);
    check_side(&pc->s[i]);
  }
}

static void setup_ep(wsmsg_endpoint *ep, unsigned f, uint8_t limit, side *s) {
  wsmsg_endpoint_on_open(ep, cb_open);
  unsigned kinds = (f & PF_STREAM_BIN ? WSMSG_STREAM_BINARY : 0) |
                   (f & PF_STREAM_TEXT ? WSMSG_STREAM_TEXT : 0);
  /* on_chunk makes a push endpoint, which queues no message kind (a kind
   * without a callback is refused with 1003, issue 13): PF_PULL applies to
   * endpoints that do not stream */
  if (!(f & PF_PULL) || kinds) {
    wsmsg_endpoint_on_text(ep, cb_text);
    wsmsg_endpoint_on_binary(ep, cb_binary);
  }
  if (!(f & PF_PULL_CLOSE))
    wsmsg_endpoint_on_close(ep, cb_close);
  wsmsg_endpoint_on_pong(ep, cb_pong);
  if (kinds)
    wsmsg_endpoint_on_chunk(ep, cb_chunk, kinds);
  if (f & PF_SMALL_BP)
    wsmsg_endpoint_set_backpressure(ep, 1000, 200, WSMSG_BACKPRESSURE_FAIL);
  if (f & PF_PING)
    wsmsg_endpoint_set_ping_interval(ep, 1000);
  if (f & PF_PONG)
    wsmsg_endpoint_set_pong_timeout(ep, 500);
  if (f & PF_CLOSE)
    wsmsg_endpoint_set_close_timeout(ep, 2000);
  s->max_message = 1u << 20;
  uint64_t mm = PAIR_MAX[limit & 15];
  if (mm != UINT64_MAX) {
    wsmsg_endpoint_set_max_message_size(ep, mm);
    s->max_message = mm;
  }
  wsmsg_endpoint_set_clock(ep, fz_clock, NULL);
  s->flags = f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4)
    return 0;
  fz in = {data, size};
  uint8_t cfg[4];
  for (int i = 0; i < 4; i++)
    cfg[i] = fz_u8(&in);
  fz_rng_reset(size);
  fz_now = 1000;
  fz_patterns_init();
  if (!scratch)
    scratch = malloc(70000);

  pairctx pc;
  memset(&pc, 0, sizeof(pc));
  memset(&fz_oom, 0, sizeof(fz_oom));
  fz_oom.fail_at = cfg[3] & 127;
  fz_oom.sticky = cfg[3] >> 7;
  wsmsg_endpoint *sep = wsmsg_endpoint_new_mem(&FZ_OOM_MEM),
                 *cep = wsmsg_endpoint_new_mem(&FZ_OOM_MEM);
  wsmsg_server *srv = wsmsg_server_new_mem(&FZ_OOM_MEM);
  FZ_CHECK(sep && cep && srv);
  for (int i = 0; i < 2; i++) {
    pc.s[i].pc = &pc;
    pc.s[i].idx = i;
  }
  setup_ep(sep, cfg[0], cfg[2], &pc.s[0]);
  setup_ep(cep, cfg[1], cfg[2] >> 4, &pc.s[1]);
  wsmsg_server_set_clock(srv, fz_clock, NULL);
  wsmsg_server_route(srv, "/ws", sep);
  fz_oom.armed = 1; /* from here on allocations may fail */
  pc.s[0].c = wsmsg_server_accept(srv, &pc.s[0]);
  pc.s[1].c = wsmsg_client_new(cep, "localhost:1", "/ws", &pc.s[1]);
  FZ_CHECK((pc.s[0].c && pc.s[1].c) || fz_oom.failed);
  if (pc.s[0].c && pc.s[1].c)
    pump_all(&pc);
  for (int i = 0; i < 2 && pc.s[0].c && pc.s[1].c; i++) {
    take_events(&pc.s[i]);
    if (fz_oom.failed && wsmsg_conn_state(pc.s[i].c) != WSMSG_STATE_OPEN)
      break;
    FZ_CHECK(wsmsg_conn_state(pc.s[i].c) == WSMSG_STATE_OPEN);
    FZ_CHECK(pc.s[i].opened == 1);
  }
  int up = pc.s[0].c && pc.s[1].c && pc.s[0].opened && pc.s[1].opened;
  for (int i = 0; i < 2; i++) {
    fz_wire_init(&pc.s[i].wire, i == 1);
    pc.s[i].live = up;
  }
  if (!up) /* the handshake failed for lack of memory: just clean up */
    goto cleanup;
  uint64_t seq = 0; /* distinct payloads */
  while (in.n) {
    uint8_t b = fz_u8(&in);
    side *s = &pc.s[b >> 7];
    unsigned op = (b >> 4) & 7, arg = b & 15;
    seq++;
    switch (op) {
    case 0:
    case 1: {
      int text = op == 0;
      size_t len = PAIR_LEN[arg];
      if (text)
        len -= len % PAT_TEXT_PERIOD;
      uint64_t pos = text ? seq * PAT_TEXT_PERIOD : seq * 7;
      if (seq % 5 == 4) /* every fifth data message goes by broadcast */
        broadcast_data(s, text, len, pos, 1 + (int)(seq / 5 % 3));
      else
        send_data(s, text, len, pos);
      break;
    }
    case 2: {
      int st = wsmsg_conn_state(s->c);
      size_t n = arg * 8u;
      int r = wsmsg_send_ping(s->c, scratch, n);
      FZ_CHECK(st != WSMSG_STATE_OPEN
                   ? r == WSMSG_ERR_CLOSED
                   : r == (n > 125 ? WSMSG_ERR_INVALID_ARG : 0) ||
                         FZ_OOM_OK(r));
      break;
    }
    case 3: {
      uint8_t p = fz_u8(&in);
      int text = arg & 1, st = wsmsg_conn_state(s->c);
      int streaming = wsmsg_conn_streaming(s->c);
      stream_src keep = s->src;
      stream_src_init(&s->src, s->c, p, text);
      int r = wsmsg_send_stream(s->c, text ? WSMSG_EV_TEXT : WSMSG_EV_BINARY,
                                src_read, &s->src);
      if (st != WSMSG_STATE_OPEN) {
        FZ_CHECK(r == WSMSG_ERR_CLOSED);
      } else if (streaming) {
        FZ_CHECK(r == WSMSG_ERR_STATE);
        s->src = keep; /* the running stream still reads it */
      } else if (r == 0) {
        expect_push(s, text, (size_t)s->src.total, 0);
      } else {
        FZ_CHECK(FZ_OOM_OK(r));
      }
      break;
    }
    case 4:
      do_close(s, PAIR_CODES[arg & 7]);
      break;
    case 5:
      deliver(s, DELIVER[arg], arg == 0 || arg == 13);
      break;
    case 6:
      tick_both(&pc, FZ_STEPS[arg]);
      break;
    case 7:
      if (arg < 4) {
        wsmsg_conn_resume_stream(s->c);
      } else if (arg < 12) {
        take_events(s);
      } else if (arg < 14) {
        wsmsg_conn_eof(s->c);
      } else {
        s->out.aborted = 1;
        wsmsg_conn_abort(s->c);
      }
      break;
    }
    check_side(&pc.s[0]);
    check_side(&pc.s[1]);
  }

  /* let everything arrive (paused streams resumed) */
  for (int round = 0; round < 8; round++) {
    pump_all(&pc);
    wsmsg_conn_resume_stream(pc.s[0].c);
    wsmsg_conn_resume_stream(pc.s[1].c);
  }
  pump_all(&pc);
  take_events(&pc.s[0]);
  take_events(&pc.s[1]);
  side *S = &pc.s[0], *C = &pc.s[1];
  int clean =
      !fz_oom.failed && !wsmsg_conn_error(S->c) && !wsmsg_conn_error(C->c);
  if (clean && wsmsg_conn_state(S->c) == WSMSG_STATE_OPEN &&
      wsmsg_conn_state(C->c) == WSMSG_STATE_OPEN &&
      !wsmsg_conn_streaming(S->c) && !wsmsg_conn_streaming(C->c)) {
    /* both open, no error: everything sent arrived, both ways */
    for (int i = 0; i < 2; i++) {
      side *s = &pc.s[i];
      FZ_CHECK(s->wire_at == s->nexp);
      FZ_CHECK(s->recv_at == s->nexp);
    }
    /* and a close completes cleanly */
    side *closer = &pc.s[size & 1];
    do_close(closer, 1000);
    pump_all(&pc);
    take_events(S);
    take_events(C);
    for (int i = 0; i < 2 && !fz_oom.failed; i++) {
      side *s = &pc.s[i];
      FZ_CHECK(wsmsg_conn_state(s->c) == WSMSG_STATE_CLOSED);
      FZ_CHECK(wsmsg_conn_done(s->c));
      FZ_CHECK(s->closes + s->close_events == 1);
      FZ_CHECK(s->ci.clean && s->ci.error == 0);
      FZ_CHECK(s->ci.code == 1000);
      if (!(s->flags & PF_PULL_CLOSE)) /* (events do not carry it) */
        FZ_CHECK(s->ci.remote == (s != closer));
    }
  } else if (clean && wsmsg_conn_state(S->c) == WSMSG_STATE_CLOSED &&
             wsmsg_conn_state(C->c) == WSMSG_STATE_CLOSED) {
    /* both closed without an error: a clean closing handshake, each side
     * reporting the code its peer sent */
    for (int i = 0; i < 2; i++) {
      side *s = &pc.s[i];
      FZ_CHECK(s->closes + s->close_events == 1);
      FZ_CHECK(s->ci.clean);
      if (peer(s)->sent_close)
        FZ_CHECK(s->ci.code == peer(s)->sent_close);
    }
  }
cleanup:
  for (int i = 0; i < 2; i++) {
    side *s = &pc.s[i];
    fz_wire_end(&s->wire, s->out.dropped);
    wsmsg_conn_free(s->c);
    fz_out_free(&s->out);
    fz_wire_free(&s->wire);
    fz_buf_free(&s->chunk);
    free(s->exp);
  }
  wsmsg_server_free(srv);
  wsmsg_endpoint_free(sep);
  wsmsg_endpoint_free(cep);
  return 0;
}
