/* Body of fuzz_conn_server and fuzz_conn_client: an open connection (server
 * or client role, FZ_CLIENT) fed arbitrary frames, driven by a script of
 * host operations, with invariants checked after every step.
 *
 * Input layout (see tests/fuzz/gen_seeds.py):
 *   8 config bytes
 *     [0] endpoint flags   [1] limits      [2] timeouts on   [3] timeout
 *     values and action    [4] callback behaviour  [5] k (message count
 *     that triggers close/abort/stream in a callback)  [6] script length
 *     [7] tail chunk size and final steps
 *   script (config[6] bytes): one byte per host operation (op << 4 | arg),
 *     some followed by parameter bytes
 *   wire: the rest, the bytes the peer sends, fed by the script's RECV
 *     operations and after the script in chunks of config[7] & 15.
 * With FZ_JSON (fuzz_json_endpoint) a 9th config byte makes the server a
 * JSON endpoint (see JS_* below) and text messages go through lib/json.c. */
#ifndef WSMSG_FUZZ_CONN_H
#define WSMSG_FUZZ_CONN_H

#include "fuzz_common.h"

#ifndef FZ_CLIENT
#error define FZ_CLIENT to 0 (server role) or 1 (client role)
#endif
#ifndef FZ_JSON
#define FZ_JSON 0
#endif
#define NCFG (8 + FZ_JSON)
#if FZ_JSON
#include "fuzz_schema_common.h"
#endif

/* config[0] */
#define EPF_STREAM_BIN 0x01
#define EPF_STREAM_TEXT 0x02
#define EPF_PULL_MSGS 0x04  /* no on_text/on_binary: events */
#define EPF_PULL_CLOSE 0x08 /* no on_close: CLOSE event */
#define EPF_PONG_EVENTS 0x10
#define EPF_TIMERS 0x20 /* drive timers through a wsmsg_timers heap */
#define EPF_SUBPROTO 0x40
#define EPF_SMALL_BP 0x80

/* config[2] */
#define TO_RECEIVE 0x01
#define TO_PING 0x02
#define TO_PONG 0x04
#define TO_MESSAGE 0x08
#define TO_CLOSE 0x10
#define TO_WRITE 0x20
#define TO_BP_CLOSE 0x40
#define TO_CALLBACK 0x80

/* config[4] */
#define CB_ECHO 0x01
#define CB_CLOSE_AT_K 0x02
#define CB_PING 0x04
#define CB_STREAM_AT_K 0x08
#define CB_ABORT_AT_K 0x10
#define CB_SEND_IN_CLOSE 0x20
#define CB_TIMEOUT_CLOSES 0x40
#define CB_DRAIN_SENDS 0x80

/* config[7] high nibble */
#define FIN_CLOSE 0x10
#define FIN_TICK 0x20
#define FIN_EOF 0x40
#define FIN_ABORT 0x80

#if FZ_JSON
/* config[8] (fuzz_json_endpoint) */
#define JS_POLICY 0x03 /* REPLY, CLOSE, IGNORE, REPLY */
#define JS_ON_JSON 0x04
#define JS_ON_INVALID 0x08
#define JS_ROUTES 0x10
#define JS_STRICT 0x20
#define JS_DUPS 0x40
#define JS_ONE_ERROR 0x80
#endif

static const uint64_t MAX_MESSAGE[16] = {
    UINT64_MAX, 0,    1,     2,     16,    125,    126,      127,
    1000,       4096, 65535, 65536, 65537, 100000, 1u << 20, 2u << 20};
static const uint32_t MAX_FRAGMENTS[16] = {UINT32_MAX, 0,    1, 2, 3, 4, 8, 16,
                                           100,        4096, 1, 2, 3, 5, 7, 9};
static const uint32_t TIMEOUT_BASE[16] = {1,     5,    10,   50,   100,   500,
                                          1000,  2000, 3000, 5000, 10000, 30000,
                                          60000, 7,    13,   999};
static const size_t CHUNK[16] = {1,  2,  3,  4,   5,   7,    8,    13,
                                 16, 31, 64, 126, 200, 1024, 4096, SIZE_MAX};
static const size_t DATA_LEN[16] = {0,     1,   2,    3,     10,    125,
                                    126,   127, 1000, 65535, 65536, 65537,
                                    70000, 40,  200,  1000};
static const int CLOSE_CODES[16] = {1000, 1001, 1002, 1003, 1007, 1008,
                                    1011, 1012, 1014, 3000, 4999, 0,
                                    999,  1004, 1005, 5000};

typedef struct ctx {
  wsmsg_conn *c;
  unsigned epf, cbf, k;
  uint64_t max_message;
  int closes, close_events, open_events, opened;
  uint64_t msgs;
  int chunk_open, chunk_type;
  fz_buf chunk;
  stream_src src;
  fz_out out;
  fz_wire wire;
  wsmsg_timers *timers;
  wsmsg_conn *other; /* server role: a second open connection, first in
                        wsmsg_broadcast's list so that c gets the copy */
  unsigned jsf;      /* FZ_JSON: config[8] */
  int invalids;      /* on_invalid calls */
} ctx;

static int start_stream(ctx *x, uint8_t p, int text) {
  stream_src_init(&x->src, x->c, p, text);
  int st = wsmsg_conn_state(x->c);
  int streaming = wsmsg_conn_streaming(x->c);
  int r = wsmsg_send_stream(x->c, text ? WSMSG_EV_TEXT : WSMSG_EV_BINARY,
                            src_read, &x->src);
  if (st != WSMSG_STATE_OPEN)
    FZ_CHECK(r == WSMSG_ERR_CLOSED);
  else if (streaming)
    FZ_CHECK(r == WSMSG_ERR_STATE);
  else
    FZ_CHECK(r == 0);
  return r;
}

/* ---- checks shared by every step ---------------------------------------- */

static void check_send_result(ctx *x, int st, int r) {
  if (st == WSMSG_STATE_OPEN) /* or the server's memory budget is spent */
    FZ_CHECK(r == 0 || r == WSMSG_ERR_BACKPRESSURE || r == WSMSG_ERR_BUDGET);
  else
    FZ_CHECK(r == WSMSG_ERR_CLOSED);
  (void)x;
}

static void check_conn(ctx *x) {
  wsmsg_conn *c = x->c;
  int st = wsmsg_conn_state(c);
  FZ_CHECK(st >= WSMSG_STATE_OPEN && st <= WSMSG_STATE_CLOSED);
  FZ_CHECK((st == WSMSG_STATE_CLOSED) == !wsmsg_conn_want_read(c));
  FZ_CHECK(x->closes <= 1 && x->close_events <= 1);
  if (!(x->epf & EPF_PULL_CLOSE))
    FZ_CHECK((st == WSMSG_STATE_CLOSED) == (x->closes == 1));
  if (wsmsg_conn_error(c))
    FZ_CHECK(*wsmsg_conn_error_detail(c) != '\0');
#if FZ_JSON
  /* the CLOSE policy closes after any invalid message */
  if ((x->jsf & JS_POLICY) == 1 && x->invalids)
    FZ_CHECK(st != WSMSG_STATE_OPEN);
#endif
  size_t n = fz_out_look(c, &x->out, NULL);
  FZ_CHECK(wsmsg_conn_buffered_amount(c) >= n);
  if (n)
    FZ_CHECK(wsmsg_conn_want_write(c));
  int64_t d = wsmsg_conn_deadline(c), nd = wsmsg_conn_next_deadline(c);
  FZ_CHECK((d < 0) == (nd < 0));
  if (d >= 0)
    FZ_CHECK(nd ==
             ((uint64_t)d <= fz_now ? 0 : (int64_t)((uint64_t)d - fz_now)));
}

/* ---- callbacks ------------------------------------------------------------
 */

static void on_message(ctx *x, int text, const uint8_t *d, size_t n) {
  wsmsg_conn *c = x->c;
  x->msgs++;
  if (x->cbf & CB_ECHO) {
    int st = wsmsg_conn_state(c);
    int r = text ? wsmsg_send_text(c, (const char *)d, n)
                 : wsmsg_send_binary(c, d, n);
    check_send_result(x, st, r);
  }
  if (x->cbf & CB_PING) {
    int st = wsmsg_conn_state(c);
    check_send_result(x, st, wsmsg_send_ping(c, d, n < 125 ? n : 125));
  }
  if (x->msgs == x->k) {
    if (x->cbf & CB_STREAM_AT_K)
      start_stream(x, (uint8_t)(x->k * 37), text);
    if (x->cbf & CB_CLOSE_AT_K) {
      int st = wsmsg_conn_state(c);
      int r = wsmsg_close(c, 4000, "enough");
      FZ_CHECK(st == WSMSG_STATE_OPEN ? r == 0 : r == WSMSG_ERR_CLOSED);
    }
    if (x->cbf & CB_ABORT_AT_K) {
      x->out.aborted = 1;
      wsmsg_conn_abort(c);
    }
  }
}

static void cb_open(wsmsg_conn *c, void *u) {
  ctx *x = u;
  FZ_CHECK(c == x->c || !x->c);
  FZ_CHECK(x->opened == 0);
  x->opened = 1;
}

static void cb_text(wsmsg_conn *c, const char *d, size_t n, void *u) {
  ctx *x = u;
  FZ_CHECK(c == x->c);
  FZ_CHECK(x->closes == 0);
  FZ_CHECK(d[n] == '\0');
  FZ_CHECK(fz_utf8_ok((const uint8_t *)d, n));
  FZ_CHECK(!x->max_message || n <= x->max_message);
  FZ_CHECK(!(x->epf & EPF_STREAM_TEXT));
  on_message(x, 1, (const uint8_t *)d, n);
}

static void cb_binary(wsmsg_conn *c, const uint8_t *d, size_t n, void *u) {
  ctx *x = u;
  FZ_CHECK(c == x->c);
  FZ_CHECK(x->closes == 0);
  FZ_CHECK(!x->max_message || n <= x->max_message);
  FZ_CHECK(!(x->epf & EPF_STREAM_BIN));
  on_message(x, 0, d, n);
}

static void cb_chunk(wsmsg_conn *c, int type, const uint8_t *d, size_t n,
                     int first, int final, void *u) {
  ctx *x = u;
  FZ_CHECK(c == x->c);
  FZ_CHECK(x->closes == 0);
  FZ_CHECK(type == WSMSG_EV_TEXT || type == WSMSG_EV_BINARY);
  FZ_CHECK(x->epf & (type == WSMSG_EV_TEXT ? EPF_STREAM_TEXT : EPF_STREAM_BIN));
  FZ_CHECK(n == 0 || d != NULL);
  if (first) {
    FZ_CHECK(!x->chunk_open);
    x->chunk_open = 1;
    x->chunk_type = type;
    x->chunk.n = 0;
  } else {
    FZ_CHECK(x->chunk_open && type == x->chunk_type);
  }
  fz_buf_add(&x->chunk, d, n);
  FZ_CHECK(!x->max_message || x->chunk.n <= x->max_message);
  if (final) {
    x->chunk_open = 0;
    if (type == WSMSG_EV_TEXT)
      FZ_CHECK(fz_utf8_ok(x->chunk.p, x->chunk.n));
    on_message(x, type == WSMSG_EV_TEXT, x->chunk.p, x->chunk.n);
  }
}

static void cb_pong(wsmsg_conn *c, const uint8_t *d, size_t n, void *u) {
  ctx *x = u;
  FZ_CHECK(c == x->c);
  FZ_CHECK(x->closes == 0);
  FZ_CHECK(n <= 125 && (n == 0 || d != NULL));
}

static void check_close_info(const wsmsg_close_info *ci) {
  FZ_CHECK(ci->reason != NULL && ci->detail != NULL);
  FZ_CHECK(ci->reason_len <= 123 && ci->reason[ci->reason_len] == '\0');
  FZ_CHECK(fz_utf8_ok((const uint8_t *)ci->reason, ci->reason_len));
  FZ_CHECK(ci->code == 1005 || ci->code == 1006 ||
           fz_close_code_ok((unsigned)ci->code));
  FZ_CHECK(!ci->clean || ci->error == 0);
  FZ_CHECK(!ci->error || ci->detail[0] != '\0');
  FZ_CHECK(ci->error <= 0);
}

static void cb_close(wsmsg_conn *c, const wsmsg_close_info *ci, void *u) {
  ctx *x = u;
  FZ_CHECK(c == x->c || !x->c);
  FZ_CHECK(x->closes == 0 && x->close_events == 0);
  x->closes++;
  FZ_CHECK(wsmsg_conn_state(c) == WSMSG_STATE_CLOSED);
  check_close_info(ci);
  if (x->cbf & CB_SEND_IN_CLOSE) {
    FZ_CHECK(wsmsg_send_text(c, "late", 4) == WSMSG_ERR_CLOSED);
    FZ_CHECK(wsmsg_send_ping(c, "", 0) == WSMSG_ERR_CLOSED);
    FZ_CHECK(wsmsg_close(c, 1000, NULL) == WSMSG_ERR_CLOSED);
  }
}

static void cb_timeout(wsmsg_conn *c, int kind, void *u) {
  ctx *x = u;
  FZ_CHECK(c == x->c);
  FZ_CHECK(kind == WSMSG_TIMEOUT_RECEIVE);
  int st = wsmsg_conn_state(c);
  if (x->cbf & CB_TIMEOUT_CLOSES) {
    int r = wsmsg_close(c, 1001, "idle");
    FZ_CHECK(st == WSMSG_STATE_OPEN ? r == 0 : r == WSMSG_ERR_CLOSED);
  } else {
    check_send_result(x, st, wsmsg_send_text(c, "still there?", 12));
  }
}

static void cb_drain(wsmsg_conn *c, void *u) {
  ctx *x = u;
  FZ_CHECK(c == x->c);
  if (x->cbf & CB_DRAIN_SENDS) {
    int st = wsmsg_conn_state(c);
    check_send_result(x, st, wsmsg_send_binary(c, "more", 4));
  }
}

/* ---- the pull API -----------------------------------------------------------
 */

static void take_events(ctx *x, unsigned max) {
  wsmsg_event ev;
  for (unsigned i = 0; i < max; i++) {
    size_t before = wsmsg_conn_event_count(x->c);
    int r = wsmsg_conn_next_event(x->c, &ev);
    FZ_CHECK(r == 0 || r == 1);
    FZ_CHECK(before == 0 ? r == 0 : r == 1);
    if (r == 0) {
      FZ_CHECK(ev.type == WSMSG_EV_NONE);
      return;
    }
    FZ_CHECK(wsmsg_conn_event_count(x->c) == before - 1);
    FZ_CHECK(ev.detail != NULL);
    FZ_CHECK(ev.len == 0 || ev.data != NULL);
    switch (ev.type) {
    case WSMSG_EV_OPEN:
      FZ_CHECK(x->open_events++ == 0);
      break;
    case WSMSG_EV_TEXT:
      FZ_CHECK(x->close_events == 0);
      FZ_CHECK(ev.data[ev.len] == '\0');
      FZ_CHECK(fz_utf8_ok(ev.data, ev.len));
      FZ_CHECK(!x->max_message || ev.len <= x->max_message);
      break;
    case WSMSG_EV_BINARY:
      FZ_CHECK(x->close_events == 0);
      FZ_CHECK(!x->max_message || ev.len <= x->max_message);
      break;
    case WSMSG_EV_CLOSE: {
      FZ_CHECK(x->closes == 0 && x->close_events++ == 0);
      FZ_CHECK(wsmsg_conn_state(x->c) == WSMSG_STATE_CLOSED);
      wsmsg_close_info ci = {
          ev.code, ev.clean, 0, ev.error, (const char *)ev.data,
          ev.len,  ev.detail};
      check_close_info(&ci);
      break;
    }
    case WSMSG_EV_PONG:
      FZ_CHECK(ev.len <= 125);
      FZ_CHECK(x->epf & EPF_PONG_EVENTS);
      break;
    case WSMSG_EV_TIMEOUT:
      FZ_CHECK(ev.code == WSMSG_TIMEOUT_RECEIVE);
      break;
    case WSMSG_EV_DRAIN:
      break;
#if FZ_JSON
    case WSMSG_EV_JSON:
      FZ_CHECK(ev.json != NULL);
      break;
    case WSMSG_EV_INVALID:
      /* the FastAPI body: {"detail": [...]} with at least one error */
      FZ_CHECK(ev.json != NULL);
      FZ_CHECK(json_array_size(json_object_get(ev.json, "detail")) >= 1);
      FZ_CHECK(fz_utf8_ok(ev.data, ev.len));
      break;
#endif
    default:
      FZ_CHECK(!"unknown event type");
    }
  }
}

/* ---- host operations --------------------------------------------------------
 */

static void do_recv(ctx *x, const uint8_t *d, size_t n) {
  wsmsg_conn *c = x->c;
  int could = wsmsg_conn_want_read(c);
  int r = wsmsg_conn_recv(c, d, n);
  if (!could)
    FZ_CHECK(r == WSMSG_ERR_CLOSED);
  else
    FZ_CHECK(r != WSMSG_ERR_CLOSED);
  if (r < 0 && r != WSMSG_ERR_CLOSED) {
    /* a rule fired: the connection is closed and reads nothing more */
    FZ_CHECK(wsmsg_conn_state(c) == WSMSG_STATE_CLOSED);
    FZ_CHECK(!wsmsg_conn_want_read(c));
    FZ_CHECK(wsmsg_conn_error(c) == r);
    FZ_CHECK(wsmsg_conn_recv(c, d, n) == WSMSG_ERR_CLOSED);
  }
  check_conn(x);
}

static void do_tick(ctx *x, uint32_t step) {
  fz_now += step;
  if (x->timers) {
    int64_t next = wsmsg_timers_next_ms(x->timers, fz_now);
    int got = 0;
    wsmsg_conn *t;
    while ((t = wsmsg_timers_expire(x->timers, fz_now)) != NULL) {
      FZ_CHECK(t == x->c);
      FZ_CHECK(++got == 1); /* at most once per now */
      (void)next;
    }
  } else {
    FZ_CHECK(wsmsg_conn_tick(x->c, fz_now) == 0);
  }
  /* every due timer fired: nothing left to do at this time */
  int64_t d = wsmsg_conn_deadline(x->c);
  FZ_CHECK(d < 0 || (uint64_t)d > fz_now);
  check_conn(x);
}

/* wsmsg_broadcast to {other, c}: other frames the message, c gets a copy
 * of that frame (into its output, or behind a running stream).  other
 * always takes it (it is open and drained here); c when it can send. */
static void do_broadcast(ctx *x, int st, const uint8_t *d, size_t n) {
  wsmsg_conn *list[2] = {x->other, x->c};
  int64_t r = wsmsg_broadcast(list, 2, WSMSG_EV_BINARY, d, n);
  FZ_CHECK(r >= 1 && r <= 2);
  if (st != WSMSG_STATE_OPEN)
    FZ_CHECK(r == 1);
  const void *p;
  size_t k;
  for (int i = 0; i < 100 && (k = wsmsg_conn_pending(x->other, &p)) > 0; i++)
    wsmsg_conn_consume(x->other, k);
  FZ_CHECK(wsmsg_conn_pending(x->other, NULL) == 0);
  FZ_CHECK(wsmsg_conn_state(x->other) == WSMSG_STATE_OPEN);
}

static void op_close(ctx *x, int code, uint8_t p) {
  static const char LONG[] =
      "0123456789012345678901234567890123456789012345678901234567890123456789"
      "0123456789012345678901234567890123456789012345678901234567890123456789";
  static const char *const REASONS[8] = {
      NULL, "", "bye", LONG, "\xe2\x82\xac\xe2\x82\xac", "\xff", NULL, NULL};
  char mb[200];
  const char *reason = REASONS[p & 7];
  if ((p & 7) >= 6) { /* a reason whose cut at 123 bytes falls mid-char */
    size_t k = 0;
    while (k + 3 < sizeof(mb) - 1) {
      memcpy(mb + k, "\xe2\x82\xac", 3);
      k += 3;
    }
    mb[k] = '\0';
    if ((p & 7) == 7)
      mb[0] = 'x', mb[1] = 'y'; /* breaks the first char: invalid UTF-8 */
    reason = mb;
  }
  int st = wsmsg_conn_state(x->c);
  int r = wsmsg_close(x->c, code, reason);
  int code_ok = code == 0 || fz_close_code_ok((unsigned)code);
  int utf8_ok = code == 0 || !reason ||
                fz_utf8_ok((const uint8_t *)reason, strlen(reason));
  if (st != WSMSG_STATE_OPEN)
    FZ_CHECK(r == WSMSG_ERR_CLOSED);
  else if (!code_ok)
    FZ_CHECK(r == WSMSG_ERR_CLOSE_CODE);
  else if (!utf8_ok)
    FZ_CHECK(r == WSMSG_ERR_UTF8);
  else
    FZ_CHECK(r == 0);
  if (r == 0)
    FZ_CHECK(wsmsg_conn_state(x->c) != WSMSG_STATE_OPEN);
}

static void run(ctx *x, fz *script, fz *wire, uint8_t tail) {
  wsmsg_conn *c = x->c;
  uint8_t *buf = malloc(70000);
  FZ_CHECK(buf != NULL);
  while (script->n) {
    uint8_t b = fz_u8(script);
    unsigned op = b >> 4, arg = b & 15;
    const uint8_t *d;
    size_t n;
    int st = wsmsg_conn_state(c);
    if (fz_trace)
      fprintf(stderr,
              "op %u arg %u: state %d pending %zu deadline %lld now %llu\n", op,
              arg, st, wsmsg_conn_pending(c, NULL),
              (long long)wsmsg_conn_deadline(c), (unsigned long long)fz_now);
    switch (op) {
    case 0: /* recv a chunk */
      n = fz_take(wire, CHUNK[arg], &d);
      do_recv(x, d, n);
      break;
    case 1: /* recv byte by byte */
      for (unsigned i = 0; i <= arg && wire->n; i++) {
        n = fz_take(wire, 1, &d);
        do_recv(x, d, n);
      }
      break;
    case 2: { /* the socket took part of the output */
      size_t pend = fz_out_look(c, &x->out, NULL);
      fz_out_write(c, &x->out, pend * arg / 16 + 1, &x->wire, NULL, NULL);
      break;
    }
    case 3: /* send a text message */
      n = DATA_LEN[arg];
      fill_pattern(buf, n, 0, 1);
      if (arg < 13) /* ASCII up to here; the last ones whole characters */
        memset(buf, 'a' + arg, n);
      check_send_result(x, st, wsmsg_send_text(c, (const char *)buf, n));
      break;
    case 4: /* send a binary message (the last lengths by broadcast) */
      n = DATA_LEN[arg];
      fill_pattern(buf, n, 0, 0);
      if (arg >= 13 && x->other)
        do_broadcast(x, st, buf, n);
      else
        check_send_result(x, st, wsmsg_send_binary(c, buf, n));
      break;
    case 5: { /* send text with arbitrary bytes from the script */
      n = fz_take(script, fz_u8(script) & 63, &d);
      int r = wsmsg_send_text(c, (const char *)d, n);
      int ok = fz_utf8_ok(d, n);
      FZ_CHECK(wsmsg_utf8_valid(d, n) == ok);
      if (st != WSMSG_STATE_OPEN)
        FZ_CHECK(r == WSMSG_ERR_CLOSED);
      else if (!ok)
        FZ_CHECK(r == WSMSG_ERR_UTF8);
      else
        FZ_CHECK(r == 0 || r == WSMSG_ERR_BACKPRESSURE);
      break;
    }
    case 6: { /* ping */
      n = arg * 9u;
      memset(buf, 'p', n);
      int r = wsmsg_send_ping(c, buf, n);
      if (st != WSMSG_STATE_OPEN)
        FZ_CHECK(r == WSMSG_ERR_CLOSED);
      else
        FZ_CHECK(r == (n > 125 ? WSMSG_ERR_INVALID_ARG : 0));
      break;
    }
    case 7:
      op_close(x, CLOSE_CODES[arg], fz_u8(script));
      break;
    case 8:
      do_tick(x, FZ_STEPS[arg]);
      break;
    case 9:
      start_stream(x, fz_u8(script), arg & 1);
      break;
    case 10: {
      int streaming = wsmsg_conn_streaming(c);
      int r = wsmsg_conn_resume_stream(c);
      FZ_CHECK(r == (streaming ? 0 : WSMSG_ERR_STATE));
      break;
    }
    case 11:
      take_events(x, arg == 15 ? UINT32_MAX : arg + 1);
      break;
    case 12: /* queries */
      FZ_CHECK(wsmsg_conn_is_client(c) == FZ_CLIENT);
      FZ_CHECK(wsmsg_conn_user(c) == x);
      FZ_CHECK(strcmp(wsmsg_conn_path(c), "/ws") == 0);
      FZ_CHECK(strcmp(wsmsg_conn_query(c), "q=1") == 0);
      FZ_CHECK(wsmsg_conn_http_status(c) == 101);
      FZ_CHECK(wsmsg_conn_rtt_ms(c) >= -1);
      FZ_CHECK(wsmsg_conn_endpoint(c) != NULL);
      if (x->epf & EPF_SUBPROTO)
        FZ_CHECK(wsmsg_conn_subprotocol(c) &&
                 !strcmp(wsmsg_conn_subprotocol(c), "chat"));
      else
        FZ_CHECK(wsmsg_conn_subprotocol(c) == NULL);
      break;
    case 13:
      if (arg < 12) {
        wsmsg_conn_eof(c);
      } else {
        x->out.aborted = 1;
        wsmsg_conn_abort(c);
        FZ_CHECK(wsmsg_conn_pending(c, NULL) == 0);
        FZ_CHECK(wsmsg_conn_done(c));
      }
      FZ_CHECK(wsmsg_conn_state(c) == WSMSG_STATE_CLOSED);
      break;
    case 14:
      fz_out_drain(c, &x->out, &x->wire, NULL, NULL);
      break;
    case 15: /* everything the peer has left, at once */
      n = fz_take(wire, SIZE_MAX, &d);
      do_recv(x, d, n);
      break;
    }
    check_conn(x);
  }
  /* the rest of the wire */
  size_t chunk = CHUNK[tail & 15];
  while (wire->n) {
    const uint8_t *d;
    size_t n = fz_take(wire, chunk, &d);
    do_recv(x, d, n);
  }
  /* final steps */
  if (tail & FIN_CLOSE)
    op_close(x, 1000, 2);
  fz_out_drain(c, &x->out, &x->wire, NULL, NULL);
  check_conn(x);
  if (tail & FIN_TICK)
    do_tick(x, 200000);
  if (tail & FIN_EOF)
    wsmsg_conn_eof(c);
  if (tail & FIN_ABORT) {
    x->out.aborted = 1;
    wsmsg_conn_abort(c);
  }
  check_conn(x);
  take_events(x, UINT32_MAX);
  fz_out_drain(c, &x->out, &x->wire, NULL, NULL);
  check_conn(x);
  if (wsmsg_conn_state(c) == WSMSG_STATE_CLOSED)
    FZ_CHECK(x->closes + x->close_events == 1);
  fz_wire_end(&x->wire, x->out.dropped);
  free(buf);
}

#if FZ_JSON
static const char MSG_SCHEMA[] =
    "{\"type\": \"object\", \"properties\": {\"user\": {\"type\": "
    "\"string\", \"minLength\": 1}, \"content\": {\"type\": \"string\", "
    "\"maxLength\": 50}, \"n\": {\"type\": \"integer\", \"default\": 1}, "
    "\"tags\": {\"type\": \"array\", \"items\": {\"enum\": [\"a\", \"b\", "
    "\"\\u00e9\"]}, \"uniqueItems\": true}}, \"required\": [\"user\", "
    "\"content\"], \"additionalProperties\": {\"type\": \"boolean\"}}";
static const char JOIN_SCHEMA[] =
    "{\"type\": \"object\", \"properties\": {\"type\": {\"const\": "
    "\"join\"}, \"room\": {\"type\": \"string\", \"pattern\": "
    "\"^[a-z0-9\\u00e0-\\u00ff]{1,16}$\", \"default\": \"lobby\"}}}";
static wsmsg_schema *msg_schema, *join_schema;

static void json_schemas(void) {
  if (msg_schema)
    return;
  FZ_CHECK(wsmsg_schema_compile(MSG_SCHEMA, strlen(MSG_SCHEMA), 0, &msg_schema,
                                NULL, 0) == 0);
  FZ_CHECK(wsmsg_schema_compile(JOIN_SCHEMA, strlen(JOIN_SCHEMA), 0,
                                &join_schema, NULL, 0) == 0);
}

static void cb_json(wsmsg_conn *c, json_t *msg, void *u) {
  ctx *x = u;
  FZ_CHECK(c == x->c && x->closes == 0);
  FZ_CHECK(msg != NULL);
  x->msgs++;
  if (x->cbf & CB_ECHO) {
    int st = wsmsg_conn_state(c);
    check_send_result(x, st, wsmsg_send_json(c, msg));
  }
  if (x->msgs == x->k && (x->cbf & CB_CLOSE_AT_K))
    wsmsg_close(c, 4000, "enough");
}

static void cb_invalid(wsmsg_conn *c, const wsmsg_verrors *e, const char *text,
                       size_t len, void *u) {
  ctx *x = u;
  FZ_CHECK(c == x->c && x->closes == 0);
  FZ_CHECK(text != NULL && fz_utf8_ok((const uint8_t *)text, len));
  size_t n = wsmsg_verrors_count(e);
  FZ_CHECK(n >= 1);
  check_verrors(e, x->jsf & JS_ONE_ERROR ? 1 : 32);
  for (size_t i = 0; i < n; i++) {
    const char *m = wsmsg_verrors_msg(e, i);
    FZ_CHECK(fz_utf8_ok((const uint8_t *)m, strlen(m)));
  }
  x->invalids++;
}

static void configure_json(wsmsg_endpoint *ep, ctx *x) {
  unsigned j = x->jsf;
  json_schemas();
  static const int POLICY[4] = {WSMSG_INVALID_REPLY, WSMSG_INVALID_CLOSE,
                                WSMSG_INVALID_IGNORE, WSMSG_INVALID_REPLY};
  FZ_CHECK(wsmsg_endpoint_set_invalid_policy(ep, POLICY[j & JS_POLICY]) == 0);
  if (j & JS_ROUTES) {
    FZ_CHECK(wsmsg_endpoint_route_json(ep, "type", "join", join_schema, NULL) ==
             0);
    FZ_CHECK(wsmsg_endpoint_route_json(ep, "type", "chat", msg_schema, NULL) ==
             0);
    FZ_CHECK(wsmsg_endpoint_route_json(ep, "type", "any", NULL, NULL) == 0);
  } else {
    FZ_CHECK(wsmsg_endpoint_set_schema(ep, msg_schema) == 0);
  }
  if (j & JS_ON_JSON)
    wsmsg_endpoint_on_json(ep, cb_json);
  else
    wsmsg_endpoint_set_json(ep, 1);
  if (j & JS_ON_INVALID)
    wsmsg_endpoint_on_invalid(ep, cb_invalid);
  if (j & JS_STRICT)
    wsmsg_endpoint_set_validation(ep, WSMSG_VALIDATE_STRICT);
  if (j & JS_DUPS)
    wsmsg_endpoint_allow_duplicate_keys(ep, 1);
  if (j & JS_ONE_ERROR)
    wsmsg_endpoint_set_max_errors(ep, 1);
}
#endif

/* ---- set-up
 * ------------------------------------------------------------------ */

static void configure(wsmsg_endpoint *ep, const uint8_t *cfg, ctx *x) {
  unsigned epf = cfg[0];
  if (!(epf & EPF_PULL_MSGS)) {
    wsmsg_endpoint_on_text(ep, cb_text);
    wsmsg_endpoint_on_binary(ep, cb_binary);
  }
  if (!(epf & EPF_PULL_CLOSE))
    wsmsg_endpoint_on_close(ep, cb_close);
  wsmsg_endpoint_on_open(ep, cb_open);
  if (epf & EPF_PONG_EVENTS)
    wsmsg_endpoint_set_pong_events(ep, 1);
  else
    wsmsg_endpoint_on_pong(ep, cb_pong);
  unsigned kinds = (epf & EPF_STREAM_BIN ? WSMSG_STREAM_BINARY : 0) |
                   (epf & EPF_STREAM_TEXT ? WSMSG_STREAM_TEXT : 0);
  if (kinds)
    FZ_CHECK(wsmsg_endpoint_on_chunk(ep, cb_chunk, kinds) == 0);
  if (epf & EPF_SUBPROTO) {
    wsmsg_endpoint_add_subprotocol(ep, "chat");
    wsmsg_endpoint_add_subprotocol(ep, "superchat");
  }
  uint64_t mm = MAX_MESSAGE[cfg[1] & 15];
  x->max_message = 1u << 20;
  if (mm != UINT64_MAX) {
    FZ_CHECK(wsmsg_endpoint_set_max_message_size(ep, mm) == 0);
    x->max_message = mm;
  }
  uint32_t mf = MAX_FRAGMENTS[cfg[1] >> 4];
  if (mf != UINT32_MAX)
    FZ_CHECK(wsmsg_endpoint_set_max_fragments(ep, mf) == 0);
  unsigned to = cfg[2];
  uint32_t base = TIMEOUT_BASE[cfg[3] & 15];
  if (to & TO_RECEIVE)
    wsmsg_endpoint_set_receive_timeout(ep, base);
  if (to & TO_PING)
    wsmsg_endpoint_set_ping_interval(ep, base + 1);
  if (to & TO_PONG)
    wsmsg_endpoint_set_pong_timeout(ep, base + 2);
  if (to & TO_MESSAGE)
    wsmsg_endpoint_set_message_timeout(ep, base + 3);
  if (to & TO_CLOSE)
    wsmsg_endpoint_set_close_timeout(ep, base + 4);
  if (to & TO_WRITE)
    wsmsg_endpoint_set_write_timeout(ep, base + 5);
  if (to & TO_CALLBACK)
    wsmsg_endpoint_on_timeout(ep, cb_timeout);
  FZ_CHECK(wsmsg_endpoint_set_timeout_action(
               ep, (cfg[3] >> 4) % 5, (cfg[3] & 0x80) ? "hb" : NULL) == 0);
  if (epf & EPF_SMALL_BP)
    FZ_CHECK(wsmsg_endpoint_set_backpressure(
                 ep, 300, 100,
                 to & TO_BP_CLOSE ? WSMSG_BACKPRESSURE_CLOSE
                                  : WSMSG_BACKPRESSURE_FAIL) == 0);
  /* issue 20's limits, with the small backpressure: message and byte
   * rates (close or drop), few invalid JSON messages */
  if ((epf & EPF_SMALL_BP) && (to & TO_BP_CLOSE))
    FZ_CHECK(wsmsg_endpoint_set_rate_limit(ep, 4, 1000,
                                           to & TO_CALLBACK
                                               ? WSMSG_LIMIT_DROP
                                               : WSMSG_LIMIT_CLOSE) == 0);
  wsmsg_endpoint_on_drain(ep, cb_drain);
#if FZ_JSON
  configure_json(ep, x);
  if (epf & EPF_SMALL_BP)
    FZ_CHECK(wsmsg_endpoint_set_invalid_limit(ep, 2, base + 1) == 0);
#endif
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < NCFG)
    return 0;
  fz in = {data, size};
  uint8_t cfg[NCFG];
  for (int i = 0; i < NCFG; i++)
    cfg[i] = fz_u8(&in);
  fz script = fz_sub(&in, cfg[6]);
  fz wire = in;
  fz_rng_reset(size);
  fz_now = 1000;
  fz_patterns_init();

  ctx x;
  memset(&x, 0, sizeof(x));
  x.epf = cfg[0];
  x.cbf = cfg[4];
  x.k = cfg[5] ? cfg[5] : 1;
#if FZ_JSON
  x.jsf = cfg[8];
#endif
  wsmsg_endpoint *ep = wsmsg_endpoint_new();
  FZ_CHECK(ep != NULL);
  configure(ep, cfg, &x);
  wsmsg_server *srv = NULL;
  const char *proto =
      x.epf & EPF_SUBPROTO ? "Sec-WebSocket-Protocol: chat, other\r\n" : "";
#if FZ_CLIENT
  wsmsg_endpoint_set_clock(ep, fz_clock, NULL);
  x.c = wsmsg_client_new(ep, "example.com", "/ws?q=1", &x);
  FZ_CHECK(x.c != NULL);
  const void *p;
  size_t n = wsmsg_conn_pending(x.c, &p);
  const char *kh = memmem(p, n, "Sec-WebSocket-Key: ", 19);
  FZ_CHECK(kh != NULL);
  char key[25], acc[32], resp[512];
  memcpy(key, kh + 19, 24);
  key[24] = '\0';
  FZ_CHECK(wsmsg_accept_key(key, acc, sizeof(acc)) == 0);
  fz_out_write(x.c, &x.out, n, NULL, NULL, NULL);
  int rl = snprintf(
      resp, sizeof(resp),
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n",
      acc, x.epf & EPF_SUBPROTO ? "Sec-WebSocket-Protocol: chat\r\n" : "");
  FZ_CHECK(wsmsg_conn_recv(x.c, resp, (size_t)rl) == 0);
  fz_wire_init(&x.wire, 1);
#else
  srv = wsmsg_server_new();
  FZ_CHECK(srv != NULL);
  wsmsg_server_set_clock(srv, fz_clock, NULL);
  if (x.epf & EPF_SMALL_BP) /* a memory budget the script can exhaust */
    FZ_CHECK(wsmsg_server_set_memory_budget(srv, 16384, 2048) == 0);
  FZ_CHECK(wsmsg_server_route(srv, "/ws", ep) == 0);
  wsmsg_endpoint *ep2 = wsmsg_endpoint_new(); /* for x.other */
  FZ_CHECK(ep2 != NULL && wsmsg_server_route(srv, "/other", ep2) == 0);
  x.c = wsmsg_server_accept(srv, &x);
  FZ_CHECK(x.c != NULL);
  char req[512];
  int rl = snprintf(req, sizeof(req),
                    "GET /ws?q=1 HTTP/1.1\r\nHost: example.com\r\n"
                    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Version: 13\r\n%s\r\n",
                    proto);
  FZ_CHECK(wsmsg_conn_recv(x.c, req, (size_t)rl) == 0);
  const void *p;
  size_t n = fz_out_look(x.c, &x.out, &p);
  FZ_CHECK(n > 12 && memcmp(p, "HTTP/1.1 101 ", 13) == 0);
  fz_out_write(x.c, &x.out, n, NULL, NULL, NULL);
  fz_wire_init(&x.wire, 0);
  /* the second connection, on an endpoint without callbacks */
  x.other = wsmsg_server_accept(srv, NULL);
  FZ_CHECK(x.other != NULL);
  rl = snprintf(req, sizeof(req),
                "GET /other HTTP/1.1\r\nHost: example.com\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n");
  FZ_CHECK(wsmsg_conn_recv(x.other, req, (size_t)rl) == 0);
  while ((n = wsmsg_conn_pending(x.other, &p)) > 0)
    wsmsg_conn_consume(x.other, n);
  FZ_CHECK(wsmsg_conn_state(x.other) == WSMSG_STATE_OPEN);
#endif
  (void)proto;
  FZ_CHECK(wsmsg_conn_state(x.c) == WSMSG_STATE_OPEN);
  if (x.epf & EPF_PULL_MSGS) {
    /* nothing: OPEN comes through on_open */
  }
  FZ_CHECK(x.opened == 1);
  if (x.epf & EPF_TIMERS) {
    x.timers = wsmsg_timers_new();
    FZ_CHECK(wsmsg_timers_add(x.timers, x.c) == 0);
    FZ_CHECK(wsmsg_timers_count(x.timers) == 1);
  }
  check_conn(&x);

  run(&x, &script, &wire, cfg[7]);

  wsmsg_conn_free(x.c);
  wsmsg_conn_free(x.other);
  if (x.timers) {
    FZ_CHECK(wsmsg_timers_count(x.timers) == 0);
    wsmsg_timers_free(x.timers);
  }
  wsmsg_server_free(srv);
  wsmsg_endpoint_free(ep);
#if !FZ_CLIENT
  wsmsg_endpoint_free(ep2);
#endif
  fz_out_free(&x.out);
  fz_wire_free(&x.wire);
  fz_buf_free(&x.chunk);
  return 0;
}

#endif
