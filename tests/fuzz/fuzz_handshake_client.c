/* libFuzzer target: a client connection fed arbitrary "responses" to its
 * upgrade request.
 *
 * The fuzzer writes "@A" where the right Sec-WebSocket-Accept goes (when
 * config bit HC_SUBST is set, wsmsg_accept_key of the key in the request
 * the client built replaces it), so it reaches the checks after the accept
 * value and the frames that follow a 101.  Each response is fed to two
 * clients with the same key: split at a fuzzer-chosen point, and byte by
 * byte (7-byte pieces when long); both must end the same way.  A client
 * always reports how it ended (on_close exactly once once closed), drops
 * its output when the handshake fails, and never accepts a subprotocol or
 * an extension it did not offer.  The request it builds is checked by
 * feeding it to a wsmsg server.
 *
 * Input: 3 config bytes (flags, split point (2)), then the response. */
#include "fuzz_common.h"

#define HC_PROTOS 0x01
#define HC_HEADERS 0x02
#define HC_SUBST 0x04
#define HC_TICK 0x08
#define HC_PULL_CLOSE 0x10
#define HC_CROSS 0x20 /* check the request against a wsmsg server */

typedef struct cctx {
  int opens, closes, messages;
  uint64_t digest;
  wsmsg_close_info ci;
} cctx;

static void on_open(wsmsg_conn *c, void *u) {
  cctx *x = u;
  FZ_CHECK(wsmsg_conn_state(c) == WSMSG_STATE_OPEN);
  FZ_CHECK(wsmsg_conn_http_status(c) == 101);
  FZ_CHECK(x->opens++ == 0);
}

static void mix(cctx *x, int type, const uint8_t *d, size_t n) {
  uint64_t h = x->digest ^ (uint64_t)type;
  for (size_t i = 0; i < n; i++)
    h = (h ^ d[i]) * 0x100000001B3ull;
  x->digest = h ^ n;
  x->messages++;
}

static void on_text(wsmsg_conn *c, const char *d, size_t n, void *u) {
  (void)c;
  FZ_CHECK(d[n] == '\0' && fz_utf8_ok((const uint8_t *)d, n));
  mix(u, 1, (const uint8_t *)d, n);
}

static void on_binary(wsmsg_conn *c, const uint8_t *d, size_t n, void *u) {
  (void)c;
  mix(u, 2, d, n);
}

static void on_close(wsmsg_conn *c, const wsmsg_close_info *ci, void *u) {
  cctx *x = u;
  FZ_CHECK(wsmsg_conn_state(c) == WSMSG_STATE_CLOSED);
  FZ_CHECK(x->closes++ == 0);
  FZ_CHECK(ci->reason && ci->detail);
  FZ_CHECK(!ci->clean || !ci->error);
  x->ci = *ci;
  x->ci.reason = x->ci.detail = NULL;
}

typedef struct outcome {
  int state, status, error, opens, closes, messages, code;
  uint64_t digest;
  char proto[64];
} outcome;

/* The response with every "@A" replaced by the accept value. */
static uint8_t *substitute(const uint8_t *p, size_t n, const char *acc,
                           size_t *out_n) {
  size_t al = strlen(acc);
  uint8_t *o = malloc(n / 2 * al + n + 1);
  FZ_CHECK(o != NULL);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (i + 1 < n && p[i] == '@' && p[i + 1] == 'A') {
      memcpy(o + k, acc, al);
      k += al;
      i++;
    } else {
      o[k++] = p[i];
    }
  }
  *out_n = k;
  return o;
}

static void cross_check(const char *req, size_t n, int protos) {
  wsmsg_endpoint *ep = wsmsg_endpoint_new();
  wsmsg_server *srv = wsmsg_server_new();
  FZ_CHECK(ep && srv);
  wsmsg_endpoint_add_subprotocol(ep, "superchat");
  wsmsg_server_route(srv, "/ws", ep);
  wsmsg_conn *s = wsmsg_server_accept(srv, NULL);
  FZ_CHECK(wsmsg_conn_recv(s, req, n) == 0);
  FZ_CHECK(wsmsg_conn_http_status(s) == 101);
  FZ_CHECK(!strcmp(wsmsg_conn_query(s), "x=1"));
  const char *sp = wsmsg_conn_subprotocol(s);
  FZ_CHECK(protos ? sp && !strcmp(sp, "superchat") : sp == NULL);
  wsmsg_conn_free(s);
  wsmsg_server_free(srv);
  wsmsg_endpoint_free(ep);
}

static void run_one(wsmsg_endpoint *ep, unsigned flags, fz resp, size_t split,
                    int bytewise, outcome *o) {
  cctx x;
  memset(&x, 0, sizeof(x));
  fz_rng_reset(resp.n); /* both clients get the same key */
  wsmsg_conn *c = wsmsg_client_new(ep, "example.com:8080", "/ws?x=1", &x);
  FZ_CHECK(c != NULL);
  if (flags & HC_HEADERS) {
    FZ_CHECK(wsmsg_client_add_header(c, "Origin", "https://example.com") == 0);
    FZ_CHECK(wsmsg_client_add_header(c, "Cookie", "session=abc; a=1") == 0);
    FZ_CHECK(wsmsg_client_add_header(c, "Host", "x") == WSMSG_ERR_INVALID_ARG);
    FZ_CHECK(wsmsg_client_add_header(c, "sec-websocket-key", "x") ==
             WSMSG_ERR_INVALID_ARG);
    FZ_CHECK(wsmsg_client_add_header(c, "X-A", "v\r\nX-B: w") ==
             WSMSG_ERR_INVALID_ARG);
    FZ_CHECK(wsmsg_client_add_header(c, "X A", "v") == WSMSG_ERR_INVALID_ARG);
  }
  FZ_CHECK(wsmsg_conn_recv(c, "x", 1) == WSMSG_ERR_STATE); /* not sent yet */
  FZ_CHECK(wsmsg_conn_want_write(c));
  const void *vp;
  size_t n = wsmsg_conn_pending(c, &vp);
  const char *req = vp;
  FZ_CHECK(n > 20 && !memcmp(req, "GET /ws?x=1 HTTP/1.1\r\n", 22));
  FZ_CHECK(!memcmp(req + n - 4, "\r\n\r\n", 4));
  FZ_CHECK(wsmsg_client_add_header(c, "X-Late", "1") == WSMSG_ERR_STATE);
  const char *kh = memmem(req, n, "\r\nSec-WebSocket-Key: ", 21);
  FZ_CHECK(kh != NULL);
  char key[25], acc[32];
  memcpy(key, kh + 21, 24);
  key[24] = '\0';
  FZ_CHECK(wsmsg_accept_key(key, acc, sizeof(acc)) == 0);
  if ((flags & HC_CROSS) && !bytewise)
    cross_check(req, n, flags & HC_PROTOS);
  wsmsg_conn_consume(c, n);
  FZ_CHECK(wsmsg_conn_pending(c, NULL) == 0);

  size_t rn = resp.n;
  uint8_t *r = NULL;
  const uint8_t *rp = resp.p;
  if (flags & HC_SUBST) {
    r = substitute(resp.p, resp.n, acc, &rn);
    rp = r;
  }
  size_t piece = bytewise ? (rn <= 256 ? 1 : 7) : split;
  for (size_t at = 0; at < rn;) {
    size_t k = piece && piece < rn - at ? piece : rn - at;
    if (!bytewise)
      piece = 0;
    int could = wsmsg_conn_want_read(c);
    int st = wsmsg_conn_state(c);
    int rr = wsmsg_conn_recv(c, rp + at, k);
    if (!could)
      FZ_CHECK(rr == WSMSG_ERR_CLOSED);
    if (rr < 0 && rr != WSMSG_ERR_CLOSED)
      FZ_CHECK(wsmsg_conn_state(c) == WSMSG_STATE_CLOSED);
    if (st == WSMSG_STATE_CONNECTING &&
        wsmsg_conn_state(c) == WSMSG_STATE_CLOSED && x.opens == 0) {
      /* the handshake failed: the client says why, and writes nothing */
      FZ_CHECK(rr == WSMSG_ERR_HANDSHAKE);
      FZ_CHECK(wsmsg_conn_error(c) == WSMSG_ERR_HANDSHAKE);
      FZ_CHECK(wsmsg_conn_pending(c, NULL) == 0);
      FZ_CHECK(wsmsg_conn_done(c));
    }
    at += k;
  }
  if (x.opens) {
    FZ_CHECK(wsmsg_conn_http_status(c) == 101);
    const char *sp = wsmsg_conn_subprotocol(c);
    if (sp)
      FZ_CHECK((flags & HC_PROTOS) &&
               (!strcmp(sp, "chat") || !strcmp(sp, "superchat")));
    FZ_CHECK(!strcmp(wsmsg_conn_path(c), "/ws"));
    FZ_CHECK(!strcmp(wsmsg_conn_query(c), "x=1"));
  } else if (wsmsg_conn_state(c) == WSMSG_STATE_CONNECTING) {
    FZ_CHECK(wsmsg_conn_pending(c, NULL) == 0);
  }
  if (flags & HC_TICK) {
    fz_now += 10000; /* the handshake timeout */
    wsmsg_conn_tick(c, fz_now);
    if (!x.opens) {
      FZ_CHECK(wsmsg_conn_state(c) == WSMSG_STATE_CLOSED);
      FZ_CHECK(wsmsg_conn_done(c));
    }
  }
  if (!(flags & HC_PULL_CLOSE) && wsmsg_conn_state(c) == WSMSG_STATE_CLOSED)
    FZ_CHECK(x.closes == 1);
  if (x.closes && !x.opens) {
    FZ_CHECK(x.ci.code == 1006 && !x.ci.clean);
    FZ_CHECK(x.ci.error == WSMSG_ERR_HANDSHAKE ||
             x.ci.error == WSMSG_ERR_TIMEOUT);
  }
  if (flags & HC_PULL_CLOSE) {
    wsmsg_event ev;
    int closes = 0;
    while (wsmsg_conn_next_event(c, &ev) == 1)
      if (ev.type == WSMSG_EV_CLOSE)
        closes++;
    FZ_CHECK(closes == (wsmsg_conn_state(c) == WSMSG_STATE_CLOSED));
    x.closes = closes;
  }
  memset(o, 0, sizeof(*o));
  o->state = wsmsg_conn_state(c);
  o->status = wsmsg_conn_http_status(c);
  o->error = wsmsg_conn_error(c);
  o->opens = x.opens;
  o->closes = x.closes;
  o->messages = x.messages;
  o->digest = x.digest;
  o->code = x.ci.code;
  const char *sp = wsmsg_conn_subprotocol(c);
  snprintf(o->proto, sizeof(o->proto), "%s", sp ? sp : "(none)");
  wsmsg_conn_free(c);
  free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3)
    return 0;
  fz in = {data, size};
  unsigned flags = fz_u8(&in);
  size_t split = fz_u16(&in);
  fz_now = 1000;

  FZ_CHECK(wsmsg_client_new(NULL, "h", "/", NULL) == NULL);
  wsmsg_endpoint *ep = wsmsg_endpoint_new();
  FZ_CHECK(ep != NULL);
  wsmsg_endpoint_set_clock(ep, fz_clock, NULL);
  wsmsg_endpoint_on_open(ep, on_open);
  wsmsg_endpoint_on_text(ep, on_text);
  wsmsg_endpoint_on_binary(ep, on_binary);
  if (!(flags & HC_PULL_CLOSE))
    wsmsg_endpoint_on_close(ep, on_close);
  if (flags & HC_PROTOS) {
    wsmsg_endpoint_add_subprotocol(ep, "chat");
    wsmsg_endpoint_add_subprotocol(ep, "superchat");
  }
  FZ_CHECK(wsmsg_client_new(ep, "", "/ws", NULL) == NULL);
  FZ_CHECK(wsmsg_client_new(ep, "h", "ws", NULL) == NULL);
  FZ_CHECK(wsmsg_client_new(ep, "h\r\nX: y", "/ws", NULL) == NULL);
  FZ_CHECK(wsmsg_client_new(ep, "h", "/ws x", NULL) == NULL);

  outcome a, b;
  run_one(ep, flags, in, split, 0, &a);
  fz_now = 1000;
  run_one(ep, flags, in, 0, 1, &b);
  FZ_CHECK(a.state == b.state);
  FZ_CHECK(a.status == b.status);
  FZ_CHECK((a.error == 0) == (b.error == 0));
  if (!a.opens)
    FZ_CHECK(a.error == b.error);
  FZ_CHECK(a.opens == b.opens && a.closes == b.closes);
  FZ_CHECK(a.messages == b.messages && a.digest == b.digest);
  FZ_CHECK(!strcmp(a.proto, b.proto));
  wsmsg_endpoint_free(ep);
  return 0;
}
