/* Plain HTTP beside the upgrade: wsmsg_server_on_http, wsmsg_http_respond,
 * wsmsg_http_respond_stream (lib/http.c). */
#include "pair.h"

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="

static const char UPGRADE[] = "GET /ws HTTP/1.1\r\n"
                              "Host: x\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Key: " KEY "\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n";

/* what the hook saw and how it answers */
typedef struct hk {
  rec r;
  int calls;
  char method[16], path[64], query[64], host[64];
  int mode;        /* see on_http */
  int ret;         /* returned when not answering */
  int respond_ret; /* wsmsg_http_respond's result */
  /* streamed body */
  size_t body_size, body_sent;
  int pause_at; /* pause once at this many bytes (0: never) */
  int paused;
  int fail;       /* 1: return -1; 2: eof early; 3: give too much */
  int64_t length; /* given to respond_stream */
  int stream_calls;
} hk;

enum { M_DECLINE, M_TEXT, M_STREAM, M_RET, M_CLOSE_HDR };

static int64_t body_read(wsmsg_conn *c, uint8_t *buf, size_t len, int *eof,
                         void *user) {
  (void)c;
  hk *h = user;
  h->stream_calls++;
  if (h->fail == 1)
    return -1;
  if (h->pause_at && !h->paused && h->body_sent >= (size_t)h->pause_at) {
    h->paused = 1;
    return 0;
  }
  size_t left = h->body_size - h->body_sent;
  if (h->fail == 2 && h->body_sent >= h->body_size / 2) {
    *eof = 1;
    return 0;
  }
  size_t n = left < len ? left : len;
  if (h->fail == 3)
    n = len;
  for (size_t i = 0; i < n; i++)
    buf[i] = (uint8_t)('a' + (h->body_sent + i) % 26);
  h->body_sent += n;
  if (h->body_sent >= h->body_size)
    *eof = 1;
  return (int64_t)n;
}

static int on_http(wsmsg_conn *c, const wsmsg_request *req, void *user) {
  hk *h = user;
  h->calls++;
  snprintf(h->method, sizeof(h->method), "%s", wsmsg_request_method(req));
  snprintf(h->path, sizeof(h->path), "%s", wsmsg_request_path(req));
  snprintf(h->query, sizeof(h->query), "%s", wsmsg_request_query(req));
  const char *host = wsmsg_request_header(req, "Host");
  snprintf(h->host, sizeof(h->host), "%s", host ? host : "");
  switch (h->mode) {
  case M_TEXT:
    h->respond_ret =
        wsmsg_http_respond(c, 200, "Content-Type: text/plain\r\n", "hello", 5);
    /* a second answer is refused */
    assert_int_equal(wsmsg_http_respond(c, 200, NULL, "x", 1), WSMSG_ERR_STATE);
    return 0;
  case M_CLOSE_HDR:
    h->respond_ret =
        wsmsg_http_respond(c, 200, "Connection: close\r\n", "bye", 3);
    return 0;
  case M_STREAM:
    h->respond_ret =
        wsmsg_http_respond_stream(c, 200, NULL, h->length, body_read, h);
    return 0;
  case M_RET:
    return h->ret;
  default:
    return 0;
  }
}

typedef struct fix {
  wsmsg_endpoint *ep;
  wsmsg_server *srv;
  wsmsg_conn *c;
  hk h;
} fix;

static uint64_t fake_now;
static uint64_t fake_clock(void *u) {
  (void)u;
  return fake_now;
}

static void fx_init(fix *f, int hook) {
  memset(f, 0, sizeof(*f));
  f->ep = wsmsg_endpoint_new();
  f->srv = wsmsg_server_new();
  ep_callbacks(f->ep);
  fake_now = 1000;
  assert_int_equal(wsmsg_server_set_clock(f->srv, fake_clock, NULL), 0);
  assert_int_equal(wsmsg_server_route(f->srv, "/ws", f->ep), 0);
  if (hook)
    assert_int_equal(wsmsg_server_on_http(f->srv, on_http), 0);
  f->c = wsmsg_server_accept(f->srv, &f->h);
  assert_non_null(f->c);
  /* frozen now */
  assert_int_equal(wsmsg_server_on_http(f->srv, on_http), WSMSG_ERR_STATE);
}

/* The common case: the hook answers every request with a short text. */
static void fx_text(fix *f) {
  fx_init(f, 1);
  f->h.mode = M_TEXT;
}

static void fx_free(fix *f) {
  wsmsg_conn_free(f->c);
  wsmsg_server_free(f->srv);
  wsmsg_endpoint_free(f->ep);
  free(f->h.r.last);
}

static int feed(fix *f, const char *s) {
  return wsmsg_conn_recv(f->c, s, strlen(s));
}

/* Take up to `max` pending bytes (all: 0) into out (NUL-terminated,
 * truncated to out_size); returns how many were taken. */
static size_t take(fix *f, char *out, size_t out_size, size_t max) {
  size_t total = 0;
  out[0] = '\0';
  for (int guard = 0; guard < 100000; guard++) {
    const void *p;
    size_t n = wsmsg_conn_pending(f->c, &p);
    if (n == 0)
      break;
    if (max && n > max - total)
      n = max - total;
    if (total < out_size - 1) {
      size_t k = n < out_size - 1 - total ? n : out_size - 1 - total;
      memcpy(out + total, p, k);
      out[total + k] = '\0';
    }
    total += n;
    wsmsg_conn_consume(f->c, n);
    if (max && total >= max)
      break;
  }
  return total;
}

static void test_no_hook_keeps_400(void **s) {
  (void)s;
  fix f;
  fx_init(&f, 0);
  assert_int_equal(feed(&f, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
                   WSMSG_ERR_HANDSHAKE);
  char out[512];
  take(&f, out, sizeof(out), 0);
  assert_non_null(strstr(out, "HTTP/1.1 400 "));
  assert_true(wsmsg_conn_done(f.c));
  fx_free(&f);
}

static void test_get_keep_alive(void **s) {
  (void)s;
  fix f;
  fx_text(&f);
  assert_int_equal(feed(&f, "GET /healthz?a=1 HTTP/1.1\r\nHost: h:1\r\n\r\n"),
                   0);
  assert_int_equal(f.h.calls, 1);
  assert_int_equal(f.h.respond_ret, 0);
  assert_string_equal(f.h.method, "GET");
  assert_string_equal(f.h.path, "/healthz");
  assert_string_equal(f.h.query, "a=1");
  assert_string_equal(f.h.host, "h:1");
  assert_int_equal(wsmsg_conn_http_status(f.c), 200);
  assert_false(wsmsg_conn_want_read(f.c)); /* the answer is being written */
  assert_true(wsmsg_conn_want_write(f.c));
  char out[1024];
  take(&f, out, sizeof(out), 0);
  assert_string_equal(out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                           "Content-Length: 5\r\n\r\nhello");
  /* keep-alive: the next request on the same connection */
  assert_int_equal(wsmsg_conn_state(f.c), WSMSG_STATE_CONNECTING);
  assert_true(wsmsg_conn_want_read(f.c));
  assert_false(wsmsg_conn_done(f.c));
  assert_int_equal(feed(&f, "GET /two HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
  assert_int_equal(f.h.calls, 2);
  assert_string_equal(f.h.path, "/two");
  assert_string_equal(f.h.query, "");
  take(&f, out, sizeof(out), 0);
  assert_non_null(strstr(out, "\r\n\r\nhello"));
  /* Connection: close from the client ends it after the answer */
  assert_int_equal(
      feed(&f, "GET /3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"), 0);
  take(&f, out, sizeof(out), 0);
  assert_non_null(strstr(out, "\r\nConnection: close\r\n"));
  assert_int_equal(wsmsg_conn_state(f.c), WSMSG_STATE_CLOSED);
  assert_true(wsmsg_conn_done(f.c));
  assert_int_equal(wsmsg_conn_error(f.c), 0);
  assert_int_equal(f.h.r.opened, 0);
  assert_int_equal(f.h.r.closes, 0); /* never opened: no on_close */
  fx_free(&f);
}

static void test_http10(void **s) {
  (void)s;
  fix f;
  fx_text(&f);
  /* 1.0 with keep-alive keeps it and says so */
  assert_int_equal(feed(&f, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
                   0);
  char out[1024];
  take(&f, out, sizeof(out), 0);
  assert_non_null(strstr(out, "\r\nConnection: keep-alive\r\n"));
  assert_int_equal(wsmsg_conn_state(f.c), WSMSG_STATE_CONNECTING);
  /* 1.0 without: close (no Host needed in 1.0) */
  assert_int_equal(feed(&f, "GET / HTTP/1.0\r\n\r\n"), 0);
  take(&f, out, sizeof(out), 0);
  assert_non_null(strstr(out, "\r\nConnection: close\r\n"));
  assert_true(wsmsg_conn_done(f.c));
  fx_free(&f);
}

static void test_response_connection_close(void **s) {
  (void)s;
  fix f;
  fx_init(&f, 1);
  f.h.mode = M_CLOSE_HDR;
  assert_int_equal(feed(&f, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
  assert_int_equal(f.h.respond_ret, 0);
  char out[1024];
  take(&f, out, sizeof(out), 0);
  /* the host's own Connection: close, once */
  assert_string_equal(
      out, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\n"
           "bye");
  assert_true(wsmsg_conn_done(f.c));
  fx_free(&f);
}

static void test_pipelined(void **s) {
  (void)s;
  fix f;
  fx_text(&f);
  assert_int_equal(feed(&f, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
                            "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"
                            "GET /c HTTP/1.1\r\nHost: h\r\nConnection: close"
                            "\r\n\r\nGET /ignored HTTP/1.1\r\n"),
                   0);
  /* one at a time: /b waits until /a's answer was written */
  assert_int_equal(f.h.calls, 1);
  assert_string_equal(f.h.path, "/a");
  assert_false(wsmsg_conn_want_read(f.c));
  char out[4096];
  const void *p;
  size_t n = wsmsg_conn_pending(f.c, &p);
  assert_true(n > 0);
  wsmsg_conn_consume(f.c, n - 1); /* not all of it: /b still waits */
  n = wsmsg_conn_pending(f.c, &p);
  assert_int_equal(n, 1);
  assert_int_equal(f.h.calls, 1);
  wsmsg_conn_consume(f.c, 1);
  assert_true(wsmsg_conn_want_write(f.c)); /* /b is due */
  n = wsmsg_conn_pending(f.c, &p);
  assert_int_equal(f.h.calls, 2);
  assert_string_equal(f.h.path, "/b");
  take(&f, out, sizeof(out), 0);
  assert_int_equal(f.h.calls, 3);
  assert_string_equal(f.h.path, "/c");
  assert_non_null(strstr(out, "Connection: close"));
  assert_int_equal(wsmsg_conn_state(f.c), WSMSG_STATE_CLOSED);
  assert_true(wsmsg_conn_done(f.c));
  assert_int_equal(f.h.calls, 3); /* nothing after the close */
  fx_free(&f);
}

static void test_pipelined_overflow_closes(void **s) {
  (void)s;
  fix f;
  fx_text(&f);
  assert_int_equal(feed(&f, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
  /* fed while the answer is pending: more than a request's worth */
  static char big[9000];
  memset(big, 'x', sizeof(big) - 1);
  assert_int_equal(wsmsg_conn_recv(f.c, big, sizeof(big) - 1), 0);
  char out[1024];
  take(&f, out, sizeof(out), 0);
  assert_int_equal(f.h.calls, 1);
  assert_true(wsmsg_conn_done(f.c));
  fx_free(&f);
}

static void test_head(void **s) {
  (void)s;
  fix f;
  fx_text(&f);
  assert_int_equal(feed(&f, "HEAD / HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
  char out[1024];
  take(&f, out, sizeof(out), 0);
  assert_string_equal(out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                           "Content-Length: 5\r\n\r\n");
  /* a streamed HEAD: the source is never called */
  f.h.mode = M_STREAM;
  f.h.body_size = 100;
  f.h.length = 100;
  assert_int_equal(feed(&f, "HEAD /f HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
  take(&f, out, sizeof(out), 0);
  assert_string_equal(out, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
  assert_int_equal(f.h.stream_calls, 0);
  assert_int_equal(wsmsg_conn_state(f.c), WSMSG_STATE_CONNECTING);
  fx_free(&f);
}

/* A 300,000-byte download of known length whose source pauses at 50,000:
 * the request is answered, and what was written before the pause (the
 * head and what was pulled) is taken into `out`.  Returns its length. */
static size_t fx_paused_download(fix *f, char *out, size_t size) {
  fx_init(f, 1);
  f->h.mode = M_STREAM;
  f->h.body_size = 300000;
  f->h.length = 300000;
  f->h.pause_at = 50000;
  assert_int_equal(feed(f, "GET /file HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
  assert_int_equal(f->h.respond_ret, 0);
  size_t n = take(f, out, size, 0);
  assert_int_equal(f->h.paused, 1);
  return n;
}

/* The body's length in the `len` bytes of a response at `out`. */
static size_t body_len(const char *out, size_t len) {
  const char *body = strstr(out, "\r\n\r\n");
  assert_non_null(body);
  return len - (size_t)(body + 4 - out);
}

static void test_stream_known_length(void **s) {
  (void)s;
  fix f;
  static char out[400000];
  size_t n = fx_paused_download(&f, out, sizeof(out));
  assert_false(wsmsg_conn_done(f.c));
  assert_false(wsmsg_conn_want_write(f.c)); /* paused: nothing to do */
  assert_int_equal(wsmsg_conn_resume_stream(f.c), 0);
  assert_true(wsmsg_conn_want_write(f.c));
  size_t m = take(&f, out + n, sizeof(out) - n, 0);
  assert_int_equal(body_len(out, n + m), 300000);
  const char *body = strstr(out, "\r\n\r\n") + 4;
  for (size_t i = 0; i < 300000; i += 997)
    assert_int_equal(body[i], 'a' + i % 26);
  assert_non_null(strstr(out, "Content-Length: 300000\r\n"));
  assert_int_equal(wsmsg_conn_state(f.c), WSMSG_STATE_CONNECTING);
  assert_true(wsmsg_conn_want_read(f.c));
  assert_int_equal(wsmsg_conn_resume_stream(f.c), WSMSG_ERR_STATE);
  fx_free(&f);
}

static void test_stream_chunked(void **s) {
  (void)s;
  fix f;
  fx_init(&f, 1);
  f.h.mode = M_STREAM;
  f.h.body_size = 20000;
  f.h.length = -1;
  assert_int_equal(feed(&f, "GET /c HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
  static char out[40000];
  take(&f, out, sizeof(out), 0);
  assert_non_null(strstr(out, "\r\nTransfer-Encoding: chunked\r\n"));
  /* 16384 + 3616 bytes: two chunks, then the last */
  char *b = strstr(out, "\r\n\r\n") + 4;
  assert_memory_equal(b, "4000\r\n", 6);
  assert_non_null(strstr(b, "\r\ne20\r\n"));
  size_t len = strlen(out);
  assert_string_equal(out + len - 7, "\r\n0\r\n\r\n");
  assert_int_equal(wsmsg_conn_state(f.c), WSMSG_STATE_CONNECTING);
  /* HTTP/1.0: close-delimited */
  f.h.body_sent = 0;
  assert_int_equal(feed(&f, "GET /c HTTP/1.0\r\n\r\n"), 0);
  take(&f, out, sizeof(out), 0);
  assert_null(strstr(out, "chunked"));
  assert_null(strstr(out, "Content-Length"));
  assert_non_null(strstr(out, "Connection: close"));
  assert_int_equal(strlen(strstr(out, "\r\n\r\n") + 4), 20000);
  assert_true(wsmsg_conn_done(f.c));
  fx_free(&f);
}

static void test_stream_source_errors(void **s) {
  (void)s;
  for (int fail = 1; fail <= 3; fail++) {
    fix f;
    fx_init(&f, 1);
    f.h.mode = M_STREAM;
    f.h.body_size = 100000;
    f.h.length = 100000;
    f.h.fail = fail;
    assert_int_equal(feed(&f, "GET /f HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
    static char out[200000];
    size_t n = take(&f, out, sizeof(out), 0);
    if (fail == 3) {
      /* a source that would give more is never asked for more than the
       * Content-Length: the response is whole */
      const char *body = strstr(out, "\r\n\r\n") + 4;
      assert_int_equal(n - (size_t)(body - out), 100000);
      assert_int_equal(wsmsg_conn_state(f.c), WSMSG_STATE_CONNECTING);
      fx_free(&f);
      continue;
    }
    /* the response cannot be framed any more: the connection is cut */
    assert_true(wsmsg_conn_done(f.c));
    assert_int_equal(wsmsg_conn_error(f.c), WSMSG_ERR_ABORTED);
    fx_free(&f);
  }
}

static int deny_401(wsmsg_conn *c, const wsmsg_request *req, void *u) {
  (void)req;
  (void)u;
  assert_int_equal(wsmsg_http_respond(c, 401,
                                      "WWW-Authenticate: Bearer\r\n"
                                      "Content-Type: text/plain\r\n",
                                      "login first", 11),
                   0);
  return 0; /* responding denies, whatever is returned */
}

static void test_upgrade_denied_with_body(void **s) {
  (void)s;
  fix f;
  memset(&f, 0, sizeof(f));
  f.ep = wsmsg_endpoint_new();
  f.srv = wsmsg_server_new();
  ep_callbacks(f.ep);
  wsmsg_endpoint_on_handshake(f.ep, deny_401);
  assert_int_equal(wsmsg_server_route(f.srv, "/ws", f.ep), 0);
  f.c = wsmsg_server_accept(f.srv, &f.h);
  assert_int_equal(feed(&f, UPGRADE), WSMSG_ERR_HANDSHAKE);
  char out[1024];
  take(&f, out, sizeof(out), 0);
  assert_string_equal(out, "HTTP/1.1 401 Unauthorized\r\n"
                           "WWW-Authenticate: Bearer\r\n"
                           "Content-Type: text/plain\r\n"
                           "Content-Length: 11\r\nConnection: close\r\n\r\n"
                           "login first");
  assert_int_equal(wsmsg_conn_http_status(f.c), 401);
  assert_int_equal(wsmsg_conn_error(f.c), WSMSG_ERR_HANDSHAKE);
  assert_true(wsmsg_conn_done(f.c));
  assert_int_equal(f.h.r.opened, 0);
  fx_free(&f);
}

static void test_hook_sees_upgrades(void **s) {
  (void)s;
  fix f;
  /* declined: the upgrade goes on */
  fx_init(&f, 1);
  f.h.mode = M_DECLINE;
  assert_int_equal(feed(&f, UPGRADE), 0);
  assert_int_equal(f.h.calls, 1);
  assert_int_equal(wsmsg_conn_state(f.c), WSMSG_STATE_OPEN);
  assert_int_equal(wsmsg_conn_http_status(f.c), 101);
  fx_free(&f);
  /* answered: no upgrade */
  fx_text(&f);
  assert_int_equal(feed(&f, UPGRADE), 0);
  assert_int_equal(wsmsg_conn_http_status(f.c), 200);
  assert_int_equal(f.h.r.opened, 0);
  fx_free(&f);
  /* a status: wsmsg's own error response */
  fx_init(&f, 1);
  f.h.mode = M_RET;
  f.h.ret = 404;
  assert_int_equal(feed(&f, "GET /nope HTTP/1.1\r\nHost: h\r\n\r\n"),
                   WSMSG_ERR_HANDSHAKE);
  char out[1024];
  take(&f, out, sizeof(out), 0);
  assert_non_null(strstr(out, "HTTP/1.1 404 Not Found\r\n"));
  assert_true(wsmsg_conn_done(f.c));
  fx_free(&f);
  /* out of range: 500 */
  fx_init(&f, 1);
  f.h.mode = M_RET;
  f.h.ret = 42;
  feed(&f, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  assert_int_equal(wsmsg_conn_http_status(f.c), 500);
  fx_free(&f);
  /* declined non-upgrade: today's 400 */
  fx_init(&f, 1);
  f.h.mode = M_DECLINE;
  assert_int_equal(feed(&f, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
                   WSMSG_ERR_HANDSHAKE);
  assert_int_equal(wsmsg_conn_http_status(f.c), 400);
  fx_free(&f);
}

static void test_requests_not_offered(void **s) {
  (void)s;
  static const char *const bad[] = {
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
      "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
      ("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n"
       "Content-Length: 0\r\n\r\n"),       /* one string: a duplicate header */
      "GET / HTTP/1.1\r\n\r\n",            /* no Host in 1.1 */
      "GET / HTTP/2.0\r\nHost: h\r\n\r\n", /* not HTTP/1.x */
      "GET * HTTP/1.1\r\nHost: h\r\n\r\n", /* not a path */
      "G(T / HTTP/1.1\r\nHost: h\r\n\r\n", /* method not a token */
      "GET / HTTP/1.1\r\nHost h\r\n\r\n",  /* malformed header */
      "GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    fix f;
    fx_init(&f, 1);
    f.h.mode = M_TEXT;
    assert_int_equal(feed(&f, bad[i]), WSMSG_ERR_HANDSHAKE);
    assert_int_equal(f.h.calls, 0);
    assert_int_equal(wsmsg_conn_http_status(f.c), 400);
    assert_true(wsmsg_conn_state(f.c) == WSMSG_STATE_CLOSED);
    fx_free(&f);
  }
  /* Content-Length: 0 is no body */
  fix f;
  fx_text(&f);
  assert_int_equal(
      feed(&f, "DELETE /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"),
      0);
  assert_int_equal(f.h.calls, 1);
  assert_string_equal(f.h.method, "DELETE");
  fx_free(&f);
  /* too large a head: 431, the hook never sees it */
  fx_init(&f, 1);
  static char big[9000];
  memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
  memset(big + 19, 'a', sizeof(big) - 20);
  assert_int_equal(wsmsg_conn_recv(f.c, big, sizeof(big) - 1),
                   WSMSG_ERR_HANDSHAKE);
  assert_int_equal(wsmsg_conn_http_status(f.c), 431);
  assert_int_equal(f.h.calls, 0);
  fx_free(&f);
}

static int bad_calls(wsmsg_conn *c, const wsmsg_request *req, void *u) {
  (void)req;
  (void)u;
  static const char *const hdrs[] = {
      "X: 1",                  /* no CRLF */
      "X 1\r\n",               /* no colon */
      ": 1\r\n",               /* empty name */
      "X: a\rb\r\n",           /* control character */
      "Content-Length: 3\r\n", /* wsmsg's own */
      "transfer-encoding: x\r\n",
      "Connection: keep-alive\r\n",
  };
  for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++)
    assert_int_equal(wsmsg_http_respond(c, 200, hdrs[i], "", 0),
                     WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_http_respond(c, 199, NULL, "", 0),
                   WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_http_respond(c, 600, NULL, "", 0),
                   WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_http_respond(c, 204, NULL, "x", 1),
                   WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_http_respond(c, 200, NULL, NULL, 1),
                   WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_http_respond_stream(c, 200, NULL, -2, body_read, u),
                   WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_http_respond_stream(c, 200, NULL, 1, NULL, u),
                   WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_http_respond_stream(c, 304, NULL, 1, body_read, u),
                   WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_http_respond(c, 204, "X-A: b\r\n", NULL, 0), 0);
  return 0;
}

static void test_respond_args(void **s) {
  (void)s;
  assert_int_equal(wsmsg_http_respond(NULL, 200, NULL, "", 0),
                   WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_server_on_http(NULL, on_http), WSMSG_ERR_INVALID_ARG);
  assert_string_equal(wsmsg_request_method(NULL), "");
  fix f;
  fx_init(&f, 0);
  /* outside a callback */
  assert_int_equal(wsmsg_http_respond(f.c, 200, NULL, "", 0), WSMSG_ERR_STATE);
  fx_free(&f);
  memset(&f, 0, sizeof(f));
  f.ep = wsmsg_endpoint_new();
  f.srv = wsmsg_server_new();
  assert_int_equal(wsmsg_server_on_http(f.srv, bad_calls), 0);
  f.c = wsmsg_server_accept(f.srv, &f.h);
  assert_int_equal(feed(&f, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
  char out[512];
  take(&f, out, sizeof(out), 0);
  assert_string_equal(out, "HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n");
  fx_free(&f);
}

static void test_keep_alive_idle_timeout(void **s) {
  (void)s;
  fix f;
  fx_text(&f);
  assert_int_equal(wsmsg_conn_deadline(f.c), 1000 + 10000);
  fake_now = 5000;
  assert_int_equal(feed(&f, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
  char out[512];
  take(&f, out, sizeof(out), 0);
  /* the next head's period runs from the end of the response */
  assert_int_equal(wsmsg_conn_deadline(f.c), 5000 + 10000);
  fake_now = 15000;
  wsmsg_conn_tick(f.c, fake_now);
  /* idle keep-alive: ended without a 408 */
  assert_int_equal(wsmsg_conn_pending(f.c, NULL), 0);
  assert_true(wsmsg_conn_done(f.c));
  assert_int_equal(wsmsg_conn_error(f.c), WSMSG_ERR_TIMEOUT);
  fx_free(&f);
  /* no deadline while a body is streamed */
  fx_init(&f, 1);
  f.h.mode = M_STREAM;
  f.h.body_size = 200000;
  f.h.length = 200000;
  f.h.pause_at = 10;
  feed(&f, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  take(&f, out, sizeof(out), 0);
  assert_int_equal(f.h.paused, 1);
  assert_int_equal(wsmsg_conn_deadline(f.c), -1);
  fx_free(&f);
}

static void test_stash_then_upgrade(void **s) {
  (void)s;
  /* a page, then the WebSocket on the same connection */
  fix f;
  fx_text(&f);
  char req[1024];
  snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: h\r\n\r\n%s", UPGRADE);
  assert_int_equal(feed(&f, req), 0);
  f.h.mode = M_DECLINE;
  char out[1024];
  take(&f, out, sizeof(out), 0);
  assert_non_null(strstr(out, "HTTP/1.1 101 "));
  assert_int_equal(wsmsg_conn_state(f.c), WSMSG_STATE_OPEN);
  assert_int_equal(f.h.r.opened, 1);
  fx_free(&f);
}

/* ---- a draining server (wsmsg_server_drain) keeps no connection ---- */

static void test_drain_ends_idle_keep_alive(void **s) {
  (void)s;
  fix f;
  fx_text(&f);
  assert_int_equal(feed(&f, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
  char out[1024];
  take(&f, out, sizeof(out), 0);
  assert_null(strstr(out, "Connection: close"));
  assert_int_equal(wsmsg_conn_state(f.c), WSMSG_STATE_CONNECTING);
  /* between requests: ended at once (wsmsg_server_close_all) */
  assert_int_equal(wsmsg_server_drain(f.srv), 0);
  assert_true(wsmsg_conn_done(f.c));
  assert_int_equal(wsmsg_conn_error(f.c), WSMSG_ERR_ABORTED);
  assert_int_equal(f.h.r.closes, 0);
  fx_free(&f);
}

static void test_drain_mid_response_closes_after(void **s) {
  (void)s;
  fix f;
  fx_text(&f);
  assert_int_equal(feed(&f, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
  /* the answer is being written when the drain starts: it is finished
   * (queued as keep-alive, so no Connection: close), then the connection
   * closes instead of waiting for another request */
  assert_int_equal(wsmsg_server_drain(f.srv), 0);
  assert_false(wsmsg_conn_done(f.c));
  char out[1024];
  take(&f, out, sizeof(out), 0);
  assert_string_equal(out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                           "Content-Length: 5\r\n\r\nhello");
  assert_int_equal(wsmsg_conn_state(f.c), WSMSG_STATE_CLOSED);
  assert_true(wsmsg_conn_done(f.c));
  assert_int_equal(wsmsg_conn_error(f.c), 0);
  fx_free(&f);
}

static void test_drain_pipelined_answered_then_closed(void **s) {
  (void)s;
  fix f;
  fx_text(&f);
  assert_int_equal(feed(&f, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
                            "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"
                            "GET /c HTTP/1.1\r\nHost: h\r\n\r\n"),
                   0);
  assert_int_equal(f.h.calls, 1);
  assert_int_equal(wsmsg_server_drain(f.srv), 0);
  /* /b, already received, is answered with Connection: close and is the
   * last: /c is not */
  char out[2048];
  take(&f, out, sizeof(out), 0);
  assert_int_equal(f.h.calls, 2);
  assert_string_equal(f.h.path, "/b");
  const char *second = strstr(out, "hello");
  assert_non_null(second);
  assert_non_null(strstr(second, "\r\nConnection: close\r\n"));
  assert_true(wsmsg_conn_done(f.c));
  fx_free(&f);
}

static void test_drain_finishes_paused_stream(void **s) {
  (void)s;
  fix f;
  static char out[400000];
  size_t n = fx_paused_download(&f, out, sizeof(out));
  /* the drain starts while the host has paused the download: it is not
   * cut off (it was, as an idle connection), it is finished and is the
   * connection's last answer */
  assert_int_equal(wsmsg_server_drain(f.srv), 0);
  assert_false(wsmsg_conn_done(f.c));
  assert_int_equal(wsmsg_conn_error(f.c), 0);
  assert_int_equal(wsmsg_conn_resume_stream(f.c), 0);
  size_t m = take(&f, out + n, sizeof(out) - n, 0);
  assert_int_equal(body_len(out, n + m), 300000);
  assert_true(wsmsg_conn_done(f.c));
  assert_int_equal(wsmsg_conn_error(f.c), 0);
  fx_free(&f);
}

static void test_drain_new_connections(void **s) {
  (void)s;
  fix f;
  fx_init(&f, 1);
  assert_int_equal(wsmsg_server_drain(f.srv), 0);
  assert_true(wsmsg_conn_done(f.c)); /* had sent nothing */
  wsmsg_conn_free(f.c);
  /* a health check on a new connection: answered, Connection: close */
  f.c = wsmsg_server_accept(f.srv, &f.h);
  assert_non_null(f.c);
  f.h.mode = M_TEXT;
  assert_int_equal(feed(&f, "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
  char out[1024];
  take(&f, out, sizeof(out), 0);
  assert_string_equal(out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                           "Content-Length: 5\r\nConnection: close\r\n\r\n"
                           "hello");
  assert_true(wsmsg_conn_done(f.c));
  wsmsg_conn_free(f.c);
  /* HTTP/1.0 asking for keep-alive: not granted either */
  f.c = wsmsg_server_accept(f.srv, &f.h);
  assert_int_equal(feed(&f, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
                   0);
  take(&f, out, sizeof(out), 0);
  assert_non_null(strstr(out, "\r\nConnection: close\r\n"));
  assert_null(strstr(out, "keep-alive"));
  assert_true(wsmsg_conn_done(f.c));
  wsmsg_conn_free(f.c);
  /* an upgrade the hook lets through: 503, never opened */
  f.c = wsmsg_server_accept(f.srv, &f.h);
  f.h.mode = M_DECLINE;
  int calls = f.h.calls;
  assert_int_equal(feed(&f, UPGRADE), WSMSG_ERR_HANDSHAKE);
  assert_int_equal(f.h.calls, calls + 1);
  take(&f, out, sizeof(out), 0);
  assert_non_null(strstr(out, "HTTP/1.1 503 "));
  assert_int_equal(wsmsg_conn_http_status(f.c), 503);
  assert_true(wsmsg_conn_done(f.c));
  assert_int_equal(f.h.r.opened, 0);
  fx_free(&f);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_no_hook_keeps_400),
      cmocka_unit_test(test_get_keep_alive),
      cmocka_unit_test(test_http10),
      cmocka_unit_test(test_response_connection_close),
      cmocka_unit_test(test_pipelined),
      cmocka_unit_test(test_pipelined_overflow_closes),
      cmocka_unit_test(test_head),
      cmocka_unit_test(test_stream_known_length),
      cmocka_unit_test(test_stream_chunked),
      cmocka_unit_test(test_stream_source_errors),
      cmocka_unit_test(test_upgrade_denied_with_body),
      cmocka_unit_test(test_hook_sees_upgrades),
      cmocka_unit_test(test_requests_not_offered),
      cmocka_unit_test(test_respond_args),
      cmocka_unit_test(test_keep_alive_idle_timeout),
      cmocka_unit_test(test_stash_then_upgrade),
      cmocka_unit_test(test_drain_ends_idle_keep_alive),
      cmocka_unit_test(test_drain_mid_response_closes_after),
      cmocka_unit_test(test_drain_pipelined_answered_then_closed),
      cmocka_unit_test(test_drain_finishes_paused_stream),
      cmocka_unit_test(test_drain_new_connections),
  };
  return unit_run("http", tests, argc, argv);
}
