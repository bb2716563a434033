/* libFuzzer target: the server's upgrade request parser and checks.
 *
 * A server with exact and prefix routes, subprotocols, an origin list and
 * an on_handshake callback that reads every header, the path, the query
 * and cookies.  The request (and whatever follows it: frames) is fed twice,
 * to two connections: split at a fuzzer-chosen point, and byte by byte (in
 * 7-byte pieces when long).  Both must come to the same answer -- parsing
 * must not depend on how TCP cut the bytes -- and the answer must be
 * well-formed: a 101 with the right Sec-WebSocket-Accept and one of our
 * subprotocols, or an error status whose Content-Length matches its body.
 *
 * Input: 4 config bytes (flags, split point (2), cookie/route choice),
 * then the request bytes. */
#include "fuzz_common.h"

#include <strings.h>

#define HF_SMALL_REQUEST 0x01
#define HF_FEW_HEADERS 0x02
#define HF_TICK 0x04
#define HF_CB_MASK 0x18 /* 0 none, 1 accept, 2 reject 401, 3 odd status */
#define HF_REQUIRE_PROTO 0x20
#define HF_ORIGINS 0x40
#define HF_ANY_ORIGIN 0x80

typedef struct hctx {
  unsigned flags, pick;
  int handshakes, opens, closes, messages;
  uint64_t digest; /* of the messages, in order */
  char key[64];
  int have_key;
} hctx;

static const char *const COOKIES[8] = {"session", "a",   "z", "id",
                                       "SESSION", "x y", "",  "="};
static const size_t OUTS[4] = {1, 4, 16, 256};

static int is_tchar(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
         (c >= 'A' && c <= 'Z') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int on_handshake(wsmsg_conn *c, const wsmsg_request *req, void *u) {
  hctx *h = u;
  h->handshakes++;
  FZ_CHECK(wsmsg_conn_state(c) == WSMSG_STATE_CONNECTING);
  const char *path = wsmsg_request_path(req), *query = wsmsg_request_query(req);
  FZ_CHECK(path && query && path[0] == '/' && !strchr(path, '?'));
  FZ_CHECK(!strcmp(path, wsmsg_conn_path(c)));
  FZ_CHECK(!strcmp(query, wsmsg_conn_query(c)));
  size_t n = wsmsg_request_header_count(req);
  FZ_CHECK(wsmsg_request_header_name(req, n) == NULL);
  FZ_CHECK(wsmsg_request_header_value(req, n) == NULL);
  for (size_t i = 0; i < n; i++) {
    const char *name = wsmsg_request_header_name(req, i);
    const char *value = wsmsg_request_header_value(req, i);
    FZ_CHECK(name && value && *name);
    for (const char *q = name; *q; q++)
      FZ_CHECK(is_tchar((unsigned char)*q));
    size_t vl = strlen(value);
    for (size_t j = 0; j < vl; j++)
      FZ_CHECK((unsigned char)value[j] >= 0x20 || value[j] == '\t');
    FZ_CHECK(vl == 0 || (value[0] != ' ' && value[0] != '\t' &&
                         value[vl - 1] != ' ' && value[vl - 1] != '\t'));
    /* the lookup by name finds the first line with that name */
    const char *first = wsmsg_request_header(req, name);
    FZ_CHECK(first != NULL);
    for (size_t j = 0; j < n; j++) {
      if (strcasecmp(wsmsg_request_header_name(req, j), name) == 0) {
        FZ_CHECK(first == wsmsg_request_header_value(req, j));
        break;
      }
    }
  }
  const char *key = wsmsg_request_header(req, "Sec-WebSocket-Key");
  FZ_CHECK(key != NULL && strlen(key) == 24);
  memcpy(h->key, key, 25);
  h->have_key = 1;
  for (int k = 0; k < 4; k++) {
    const char *name = COOKIES[(h->pick + k) & 7];
    char out[256];
    size_t osz = OUTS[k];
    int r = wsmsg_request_cookie(req, name, out, osz);
    if (!*name)
      FZ_CHECK(r == WSMSG_ERR_INVALID_ARG);
    else if (r >= 0)
      FZ_CHECK((size_t)r < osz && out[r] == '\0' && strlen(out) == (size_t)r);
    else
      FZ_CHECK(r == WSMSG_ERR_NOT_FOUND || r == WSMSG_ERR_INVALID_ARG);
  }
  switch ((h->flags & HF_CB_MASK) >> 3) {
  case 2:
    return 401;
  case 3:
    return (h->pick & 1) ? 42 : 700; /* out of range: 500 */
  default:
    return 0;
  }
}

static void on_open(wsmsg_conn *c, void *u) {
  hctx *h = u;
  FZ_CHECK(wsmsg_conn_state(c) == WSMSG_STATE_OPEN);
  h->opens++;
}

static void mix(hctx *h, int type, const uint8_t *d, size_t n) {
  uint64_t x = h->digest ^ (uint64_t)type;
  for (size_t i = 0; i < n; i++)
    x = (x ^ d[i]) * 0x100000001B3ull;
  h->digest = x ^ n;
  h->messages++;
}

static void on_text(wsmsg_conn *c, const char *d, size_t n, void *u) {
  (void)c;
  FZ_CHECK(fz_utf8_ok((const uint8_t *)d, n));
  mix(u, 1, (const uint8_t *)d, n);
}

static void on_binary(wsmsg_conn *c, const uint8_t *d, size_t n, void *u) {
  (void)c;
  mix(u, 2, d, n);
}

static void on_close(wsmsg_conn *c, const wsmsg_close_info *ci, void *u) {
  hctx *h = u;
  (void)ci;
  FZ_CHECK(h->opens == 1); /* only connections that opened report */
  FZ_CHECK(wsmsg_conn_state(c) == WSMSG_STATE_CLOSED);
  h->closes++;
}

typedef struct outcome {
  int state, status, error, want_read;
  char proto[64];
  char path[256];
  int handshakes, opens, closes, messages;
  uint64_t digest;
  size_t head_len;
  uint8_t head[1024]; /* the HTTP response head */
} outcome;

/* The HTTP head at the start of `p`: its length (through CRLF CRLF). */
static size_t head_len(const uint8_t *p, size_t n) {
  const uint8_t *e = memmem(p, n, "\r\n\r\n", 4);
  return e ? (size_t)(e - p) + 4 : 0;
}

static void check_response(const uint8_t *p, size_t n, const hctx *h,
                           int status) {
  size_t hl = head_len(p, n);
  FZ_CHECK(hl > 0);
  char line[32];
  snprintf(line, sizeof(line), "HTTP/1.1 %d ", status);
  FZ_CHECK(n > strlen(line) && !memcmp(p, line, strlen(line)));
  char head[2048];
  FZ_CHECK(hl < sizeof(head));
  memcpy(head, p, hl);
  head[hl] = '\0';
  if (status == 101) {
    FZ_CHECK(h->have_key || !(h->flags & HF_CB_MASK));
    if (h->have_key) {
      char acc[32], want[64];
      FZ_CHECK(wsmsg_accept_key(h->key, acc, sizeof(acc)) == 0);
      snprintf(want, sizeof(want), "\r\nSec-WebSocket-Accept: %s\r\n", acc);
      FZ_CHECK(strstr(head, want) != NULL);
    }
    FZ_CHECK(strstr(head, "\r\nUpgrade: websocket\r\n") != NULL);
    return;
  }
  FZ_CHECK(status >= 400 && status <= 599);
  const char *cl = strstr(head, "\r\nContent-Length: ");
  FZ_CHECK(cl != NULL);
  size_t body = (size_t)strtoul(cl + 18, NULL, 10);
  FZ_CHECK(n - hl == body); /* nothing after the error body */
  FZ_CHECK(strstr(head, "\r\nConnection: close\r\n") != NULL);
}

static void run_one(wsmsg_server *srv, hctx *h, fz req, size_t split,
                    int bytewise, outcome *o) {
  wsmsg_conn *c = wsmsg_server_accept(srv, h);
  FZ_CHECK(c != NULL);
  FZ_CHECK(wsmsg_conn_state(c) == WSMSG_STATE_CONNECTING);
  FZ_CHECK(wsmsg_conn_endpoint(c) == NULL);
  size_t piece = bytewise ? (req.n <= 256 ? 1 : 7) : split;
  for (size_t at = 0; at < req.n;) {
    size_t k = piece && piece < req.n - at ? piece : req.n - at;
    if (!bytewise)
      piece = 0; /* split: the rest in one go */
    int could = wsmsg_conn_want_read(c);
    int r = wsmsg_conn_recv(c, req.p + at, k);
    if (!could)
      FZ_CHECK(r == WSMSG_ERR_CLOSED);
    if (r < 0 && r != WSMSG_ERR_CLOSED)
      FZ_CHECK(wsmsg_conn_state(c) == WSMSG_STATE_CLOSED);
    if (wsmsg_conn_state(c) == WSMSG_STATE_CONNECTING)
      FZ_CHECK(wsmsg_conn_pending(c, NULL) == 0);
    at += k;
  }
  if ((h->flags & HF_TICK) && wsmsg_conn_state(c) == WSMSG_STATE_CONNECTING) {
    fz_now += 10000; /* the handshake timeout: 408 */
    wsmsg_conn_tick(c, fz_now);
    FZ_CHECK(wsmsg_conn_http_status(c) == 408);
  }
  const void *vp;
  size_t n = wsmsg_conn_pending(c, &vp);
  const uint8_t *p = vp;
  memset(o, 0, sizeof(*o));
  o->state = wsmsg_conn_state(c);
  o->status = wsmsg_conn_http_status(c);
  o->error = wsmsg_conn_error(c);
  o->want_read = wsmsg_conn_want_read(c);
  const char *sp = wsmsg_conn_subprotocol(c);
  snprintf(o->proto, sizeof(o->proto), "%s", sp ? sp : "(none)");
  snprintf(o->path, sizeof(o->path), "%s?%s", wsmsg_conn_path(c),
           wsmsg_conn_query(c));
  if (o->status) {
    check_response(p, n, h, o->status);
    o->head_len = head_len(p, n);
    FZ_CHECK(o->head_len <= sizeof(o->head));
    memcpy(o->head, p, o->head_len);
  } else {
    FZ_CHECK(o->state == WSMSG_STATE_CONNECTING && n == 0);
  }
  if (o->status == 101) {
    FZ_CHECK(h->opens == 1);
    FZ_CHECK(o->state != WSMSG_STATE_CONNECTING);
    FZ_CHECK(wsmsg_conn_endpoint(c) != NULL);
    if (sp) {
      FZ_CHECK(!strcmp(sp, "chat") || !strcmp(sp, "superchat"));
      char want[80];
      snprintf(want, sizeof(want), "\r\nSec-WebSocket-Protocol: %s\r\n", sp);
      FZ_CHECK(memmem(p, o->head_len, want, strlen(want)) != NULL);
    } else {
      FZ_CHECK(!memmem(p, o->head_len, "Sec-WebSocket-Protocol", 22));
      FZ_CHECK(!(h->flags & HF_REQUIRE_PROTO));
    }
  } else {
    FZ_CHECK(h->opens == 0 && h->closes == 0);
    if (o->status) {
      FZ_CHECK(o->state == WSMSG_STATE_CLOSED && !o->want_read);
      FZ_CHECK(o->error == WSMSG_ERR_HANDSHAKE ||
               o->error == WSMSG_ERR_TIMEOUT);
      FZ_CHECK(*wsmsg_conn_error_detail(c));
      wsmsg_conn_consume(c, n);
      FZ_CHECK(wsmsg_conn_done(c));
    }
  }
  if (h->flags & HF_TICK) { /* and once more: a stuck head is dropped */
    fz_now += 10000;
    wsmsg_conn_tick(c, fz_now);
    if (o->status != 101)
      FZ_CHECK(wsmsg_conn_done(c));
  }
  FZ_CHECK(h->closes <= 1);
  o->handshakes = h->handshakes;
  o->opens = h->opens;
  o->closes = h->closes;
  o->messages = h->messages;
  o->digest = h->digest;
  wsmsg_conn_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4)
    return 0;
  fz in = {data, size};
  unsigned flags = fz_u8(&in);
  size_t split = fz_u16(&in);
  unsigned pick = fz_u8(&in);
  fz_rng_reset(size);
  fz_now = 1000;

  wsmsg_endpoint *ep = wsmsg_endpoint_new(), *ep2 = wsmsg_endpoint_new();
  wsmsg_server *srv = wsmsg_server_new();
  FZ_CHECK(ep && ep2 && srv);
  wsmsg_server_set_clock(srv, fz_clock, NULL);
  if (flags & HF_SMALL_REQUEST)
    FZ_CHECK(wsmsg_server_set_max_request_size(srv, 200) == 0);
  if (flags & HF_FEW_HEADERS)
    FZ_CHECK(wsmsg_server_set_max_headers(srv, 6) == 0);
  FZ_CHECK(wsmsg_server_route(srv, "/ws", ep) == 0);
  FZ_CHECK(wsmsg_server_route(srv, "/ws/*", ep2) == 0);
  if (pick & 0x80)
    FZ_CHECK(wsmsg_server_route(srv, "*", ep2) == 0);
  FZ_CHECK(wsmsg_server_route(srv, "/ws", ep2) == WSMSG_ERR_STATE);
  wsmsg_endpoint *eps[2] = {ep, ep2};
  for (int i = 0; i < 2; i++) {
    wsmsg_endpoint *e = eps[i];
    wsmsg_endpoint_on_open(e, on_open);
    wsmsg_endpoint_on_text(e, on_text);
    wsmsg_endpoint_on_binary(e, on_binary);
    wsmsg_endpoint_on_close(e, on_close);
    if (flags & HF_CB_MASK)
      wsmsg_endpoint_on_handshake(e, on_handshake);
    if (flags & HF_REQUIRE_PROTO)
      wsmsg_endpoint_require_subprotocol(e, 1);
    if (flags & HF_ORIGINS) {
      wsmsg_endpoint_allow_origin(e, "https://example.com");
      wsmsg_endpoint_allow_origin(e, "http://localhost:8080");
    }
    if (flags & HF_ANY_ORIGIN)
      wsmsg_endpoint_allow_origin(e, "*");
  }
  wsmsg_endpoint_add_subprotocol(ep, "chat");
  wsmsg_endpoint_add_subprotocol(ep, "superchat");
  FZ_CHECK(wsmsg_endpoint_add_subprotocol(ep, "bad name") ==
           WSMSG_ERR_INVALID_ARG);

  outcome a, b;
  hctx ha = {flags, pick, 0, 0, 0, 0, 0, {0}, 0};
  hctx hb = ha;
  uint64_t t0 = fz_now;
  run_one(srv, &ha, in, split, 0, &a);
  fz_now = t0;
  run_one(srv, &hb, in, 0, 1, &b);
  /* the same answer however the bytes were cut */
  FZ_CHECK(a.status == b.status);
  FZ_CHECK(a.state == b.state);
  FZ_CHECK(a.want_read == b.want_read);
  FZ_CHECK((a.error == 0) == (b.error == 0));
  if (a.status != 101) /* (after a 101, which frame rule fires first may
                          depend on how much of a header had arrived) */
    FZ_CHECK(a.error == b.error);
  FZ_CHECK(!strcmp(a.proto, b.proto));
  FZ_CHECK(!strcmp(a.path, b.path));
  FZ_CHECK(a.head_len == b.head_len && !memcmp(a.head, b.head, a.head_len));
  FZ_CHECK(a.handshakes == b.handshakes && a.opens == b.opens);
  FZ_CHECK(a.messages == b.messages && a.digest == b.digest);
  FZ_CHECK(a.closes == b.closes);

  wsmsg_server_free(srv);
  wsmsg_endpoint_free(ep);
  wsmsg_endpoint_free(ep2);
  return 0;
}
