/* libFuzzer target: plain HTTP beside the upgrade (lib/http.c).
 *
 * A server with an on_http hook whose answer depends on the request path's
 * first letter: a fixed body, a body streamed with a known length (which
 * may pause, or fail), a chunked one, 204, "Connection: close", a declined
 * request (the upgrade checks then answer) or an error status.  The input
 * is fed in pieces while the output is written in slices of fuzzer-chosen
 * sizes, as a host loop would (pipelined requests wait for the output to
 * drain).  Everything written must parse back as a sequence of HTTP
 * responses, one per answered request and in order, each framed as its
 * head says (Content-Length, chunked, close-delimited, or none for HEAD and
 * 204), optionally followed by wsmsg's own closing error response or a 101
 * and frames; a cut-off body is allowed only when the connection was
 * aborted on purpose.
 *
 * With F_DRAIN the server drains (wsmsg_server_drain) once the loop has
 * turned `seed & 15` times: an answer being written is finished and is the
 * connection's last, a later one says Connection: close, an idle
 * keep-alive connection or a paused stream is ended, an upgrade gets 503,
 * and a request still arriving is answered (Connection: close) or timed
 * out: with the input fed, time runs on until the connection is done.
 *
 * Input: 4 config bytes (flags, feed piece size, write slice size, body
 * size seed), then the request bytes. */
#include "fuzz_common.h"

#include <strings.h>

#define F_SMALL_REQUEST 0x01
#define F_TICK 0x02
#define F_FAIL_STREAM 0x04
#define F_PAUSE 0x08
#define F_FEW_HEADERS 0x10
#define F_HANDSHAKE_DENY 0x20
#define F_DRAIN 0x40

#define MAX_ANSWERS 64

typedef struct answer {
  int status;
  int head;         /* HEAD request: no body on the wire */
  int64_t body_len; /* fixed or streamed length, -1 chunked/close */
} answer;

typedef struct ctx {
  unsigned flags, seed;
  int calls;
  int nans;
  answer ans[MAX_ANSWERS];
  /* the running streamed body */
  int64_t left;
  int chunked_left;
  int paused_once;
  int paused;
  int failing;
  uint8_t fixed[4096];
} ctx;

static int is_tchar(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
         (c >= 'A' && c <= 'Z') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int64_t body_read(wsmsg_conn *c, uint8_t *buf, size_t len, int *eof,
                         void *user) {
  (void)c;
  ctx *x = user;
  FZ_CHECK(len > 0 && len <= 65536);
  if (x->failing)
    return -1;
  if ((x->flags & F_PAUSE) && !x->paused_once) {
    x->paused_once = 1;
    x->paused = 1;
    return 0;
  }
  if (x->left >= 0) { /* known length: never asked for more */
    FZ_CHECK((uint64_t)len <= (uint64_t)x->left);
    size_t n = len;
    memset(buf, 'k', n);
    x->left -= (int64_t)n;
    if (x->left == 0)
      *eof = 1;
    return (int64_t)n;
  }
  /* chunked: a few pieces of odd sizes */
  size_t n = len < 777 ? len : 777;
  memset(buf, 'c', n);
  if (--x->chunked_left <= 0)
    *eof = 1;
  return (int64_t)n;
}

static void record(ctx *x, const wsmsg_request *req, int status,
                   int64_t body_len) {
  FZ_CHECK(x->nans < MAX_ANSWERS);
  answer *a = &x->ans[x->nans++];
  a->status = status;
  a->head = !strcmp(wsmsg_request_method(req), "HEAD");
  a->body_len = body_len;
}

static int on_http(wsmsg_conn *c, const wsmsg_request *req, void *u) {
  ctx *x = u;
  x->calls++;
  const char *m = wsmsg_request_method(req);
  FZ_CHECK(*m);
  for (const char *p = m; *p; p++)
    FZ_CHECK(is_tchar((unsigned char)*p));
  const char *path = wsmsg_request_path(req);
  const char *query = wsmsg_request_query(req);
  FZ_CHECK(path[0] == '/' && !strchr(path, '?'));
  FZ_CHECK(query != NULL);
  FZ_CHECK(wsmsg_conn_state(c) == WSMSG_STATE_CONNECTING);
  size_t n = wsmsg_request_header_count(req);
  for (size_t i = 0; i < n; i++)
    FZ_CHECK(wsmsg_request_header_name(req, i) &&
             wsmsg_request_header_value(req, i));
  int64_t size = (int64_t)((x->seed * 997u + strlen(query) * 131u) % 70000u);
  int r;
  if (x->nans >= MAX_ANSWERS - 1) {
    /* the harness's record is full (a long pipeline of small requests):
     * the last answer it records ends the connection */
    FZ_CHECK(wsmsg_http_respond(c, 200, "Connection: close\r\n", "bye", 3) ==
             0);
    record(x, req, 200, 3);
    return 0;
  }
  switch (path[1]) {
  case 's': /* streamed, known length */
    x->left = size;
    x->paused_once = 0;
    x->failing = (x->flags & F_FAIL_STREAM) && (query[0] == 'f');
    r = wsmsg_http_respond_stream(c, 200, "Content-Type: a/b\r\n", size,
                                  body_read, x);
    FZ_CHECK(r == 0);
    record(x, req, 200, size);
    return 0;
  case 'c': /* chunked (close-delimited to HTTP/1.0) */
    x->left = -1;
    x->chunked_left = (int)(x->seed % 5) + 1;
    x->paused_once = 0;
    x->failing = 0;
    r = wsmsg_http_respond_stream(c, 200, NULL, -1, body_read, x);
    FZ_CHECK(r == 0);
    record(x, req, 200, -1);
    return 0;
  case 'd': /* declined */
    return 0;
  case 'e':
    return 400 + (int)(x->seed % 200);
  case 'n':
    FZ_CHECK(wsmsg_http_respond(c, 204, NULL, NULL, 0) == 0);
    record(x, req, 204, 0);
    return 0;
  case 'x':
    FZ_CHECK(wsmsg_http_respond(c, 200, "Connection: close\r\n", "bye", 3) ==
             0);
    record(x, req, 200, 3);
    return 0;
  case 'h': /* a bad header line is refused, a good answer follows */
    FZ_CHECK(wsmsg_http_respond(c, 200, "X: a\nb\r\n", "", 0) ==
             WSMSG_ERR_INVALID_ARG);
    /* fall through */
  default: {
    size_t len = (size_t)size % sizeof(x->fixed);
    FZ_CHECK(wsmsg_http_respond(c, 200, "X-Y: z\r\n", x->fixed, len) == 0);
    FZ_CHECK(wsmsg_http_respond(c, 200, NULL, NULL, 0) == WSMSG_ERR_STATE);
    record(x, req, 200, (int64_t)len);
    return 0;
  }
  }
}

static int on_handshake(wsmsg_conn *c, const wsmsg_request *req, void *u) {
  ctx *x = u;
  if (!(x->flags & F_HANDSHAKE_DENY))
    return 0;
  FZ_CHECK(wsmsg_http_respond(c, 401, "WWW-Authenticate: Basic\r\n", "no", 2) ==
           0);
  record(x, req, 401, 2);
  return 0;
}

/* ---- reading the written bytes back ---- */

static size_t find_crlf2(const uint8_t *p, size_t n) {
  const uint8_t *e = memmem(p, n, "\r\n\r\n", 4);
  return e ? (size_t)(e - p) + 4 : 0;
}

/* The value of header `name` in head (NUL-terminated), or NULL. */
static const char *hdr(const char *head, const char *name, char *out,
                       size_t out_size) {
  char pat[64];
  snprintf(pat, sizeof(pat), "\r\n%s: ", name);
  const char *p = strcasestr(head, pat);
  if (!p)
    return NULL;
  p += strlen(pat);
  const char *e = strstr(p, "\r\n");
  size_t k = (size_t)(e - p) < out_size - 1 ? (size_t)(e - p) : out_size - 1;
  memcpy(out, p, k);
  out[k] = '\0';
  return out;
}

static void check_output(const ctx *x, const uint8_t *p, size_t n, int cut_ok,
                         int status_final) {
  size_t at = 0;
  int i = 0;
  while (at < n) {
    size_t hl = find_crlf2(p + at, n - at);
    if (!hl) {
      FZ_CHECK(cut_ok);
      return;
    }
    char head[8192];
    FZ_CHECK(hl < sizeof(head));
    memcpy(head, p + at, hl);
    head[hl] = '\0';
    FZ_CHECK(!strncmp(head, "HTTP/1.1 ", 9));
    int status = atoi(head + 9);
    at += hl;
    if (status == 101)
      return; /* frames follow */
    char v[64];
    if (i >= x->nans) {
      /* wsmsg's own error response: the last thing written */
      FZ_CHECK(status == status_final);
      FZ_CHECK(strstr(head, "\r\nConnection: close\r\n") != NULL);
      FZ_CHECK(hdr(head, "Content-Length", v, sizeof(v)));
      FZ_CHECK(n - at == (size_t)strtoull(v, NULL, 10));
      return;
    }
    const answer *a = &x->ans[i++];
    FZ_CHECK(status == a->status);
    const char *cl = hdr(head, "Content-Length", v, sizeof(v));
    if (a->status == 204) {
      FZ_CHECK(!cl);
      continue;
    }
    if (a->body_len >= 0) {
      FZ_CHECK(cl && (int64_t)strtoull(cl, NULL, 10) == a->body_len);
      if (a->head)
        continue;
      if ((int64_t)(n - at) < a->body_len) {
        FZ_CHECK(cut_ok);
        return;
      }
      at += (size_t)a->body_len;
      continue;
    }
    FZ_CHECK(!cl);
    if (a->head)
      continue;
    char te[64];
    if (!hdr(head, "Transfer-Encoding", te, sizeof(te))) {
      /* close-delimited: the rest, and the connection closed */
      FZ_CHECK(strstr(head, "\r\nConnection: close\r\n") != NULL);
      return;
    }
    FZ_CHECK(!strcmp(te, "chunked"));
    for (int guard = 0;; guard++) {
      FZ_CHECK(guard < 100000);
      const uint8_t *e = memmem(p + at, n - at, "\r\n", 2);
      if (!e) {
        FZ_CHECK(cut_ok);
        return;
      }
      size_t sz = (size_t)strtoull((const char *)p + at, NULL, 16);
      at = (size_t)(e - p) + 2;
      if (n - at < sz + 2) {
        FZ_CHECK(cut_ok);
        return;
      }
      FZ_CHECK(p[at + sz] == '\r' && p[at + sz + 1] == '\n');
      at += sz + 2;
      if (sz == 0)
        break;
    }
  }
  FZ_CHECK(i == x->nans || cut_ok);
}

static size_t slice_size(unsigned sel) {
  static const size_t S[8] = {1, 7, 100, 1000, 4096, 16384, 65536, 1 << 20};
  return S[sel & 7];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4)
    return 0;
  fz in = {data, size};
  ctx x;
  memset(&x, 0, sizeof(x));
  x.flags = fz_u8(&in);
  size_t piece = slice_size(fz_u8(&in));
  unsigned wsel = fz_u8(&in);
  x.seed = fz_u8(&in);
  fz_now = 1000;

  wsmsg_endpoint *ep = wsmsg_endpoint_new();
  wsmsg_server *srv = wsmsg_server_new();
  FZ_CHECK(ep && srv);
  wsmsg_server_set_clock(srv, fz_clock, NULL);
  if (x.flags & F_SMALL_REQUEST)
    FZ_CHECK(wsmsg_server_set_max_request_size(srv, 200) == 0);
  if (x.flags & F_FEW_HEADERS)
    FZ_CHECK(wsmsg_server_set_max_headers(srv, 6) == 0);
  FZ_CHECK(wsmsg_server_route(srv, "/ws", ep) == 0);
  FZ_CHECK(wsmsg_server_on_http(srv, on_http) == 0);
  wsmsg_endpoint_on_handshake(ep, on_handshake);

  wsmsg_conn *c = wsmsg_server_accept(srv, &x);
  FZ_CHECK(c != NULL);
  fz_buf out = {0};
  size_t cap = 8u << 20;
  size_t at = 0;
  int drained = 0;
  for (int guard = 0; guard < 100000; guard++) {
    if ((x.flags & F_DRAIN) && !drained && guard >= (int)(x.seed & 15)) {
      FZ_CHECK(wsmsg_server_drain(srv) >= 0);
      FZ_CHECK(wsmsg_server_draining(srv));
      drained = 1;
    }
    if (at < in.n && wsmsg_conn_want_read(c)) {
      size_t k = piece < in.n - at ? piece : in.n - at;
      (void)wsmsg_conn_recv(c, in.p + at, k);
      at += k;
    } else if (at < in.n && wsmsg_conn_state(c) == WSMSG_STATE_CONNECTING &&
               (guard & 3) == 0) {
      /* fed anyway while a response is being written: kept for later */
      size_t k = piece < in.n - at ? piece : in.n - at;
      FZ_CHECK(wsmsg_conn_recv(c, in.p + at, k) == 0);
      at += k;
    }
    if (wsmsg_conn_state(c) == WSMSG_STATE_OPEN)
      break;
    const void *p;
    size_t n = wsmsg_conn_pending(c, &p);
    if (n) {
      size_t k = slice_size(wsel + (unsigned)guard);
      if (k > n)
        k = n;
      if (out.n + k <= cap)
        fz_buf_add(&out, p, k);
      wsmsg_conn_consume(c, k);
      continue;
    }
    if (x.paused) {
      x.paused = 0;
      FZ_CHECK(wsmsg_conn_resume_stream(c) == 0);
      continue;
    }
    if (wsmsg_conn_done(c))
      break;
    if (at >= in.n) {
      if ((x.flags & F_TICK || drained) &&
          wsmsg_conn_state(c) != WSMSG_STATE_CLOSED) {
        fz_now += 10000;
        wsmsg_conn_tick(c, fz_now);
        continue;
      }
      break;
    }
  }
  if (drained && wsmsg_conn_state(c) != WSMSG_STATE_OPEN &&
      out.n + 65536 < cap) {
    /* a draining server keeps no HTTP connection once its output is taken */
    const void *p;
    if (!wsmsg_conn_pending(c, &p))
      FZ_CHECK(wsmsg_conn_done(c));
  }
  int st = wsmsg_conn_http_status(c);
  int cut_ok = wsmsg_conn_error(c) == WSMSG_ERR_ABORTED ||
               wsmsg_conn_error(c) == WSMSG_ERR_TIMEOUT || out.n + 65536 >= cap;
  check_output(&x, out.p, out.n, cut_ok, st);
  fz_buf_free(&out);
  wsmsg_conn_free(c);
  wsmsg_server_free(srv);
  wsmsg_endpoint_free(ep);
  return 0;
}
