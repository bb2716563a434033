/* Handshake: server request parser and checks, client response checks. */
#include "pair.h"

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static const char GOOD[] = "GET /ws?room=1&x=y HTTP/1.1\r\n"
                           "Host: example.com:8080\r\n"
                           "Upgrade: websocket\r\n"
                           "Connection: keep-alive, Upgrade\r\n"
                           "Sec-WebSocket-Key: " KEY "\r\n"
                           "Sec-WebSocket-Version: 13\r\n"
                           "Cookie: a=1; session=\"abc\"; z=2\r\n"
                           "\r\n";

typedef struct srvfix {
  wsmsg_endpoint *ep;
  wsmsg_server *srv;
  rec r;
} srvfix;

static void srv_init(srvfix *f) {
  memset(f, 0, sizeof(*f));
  f->ep = wsmsg_endpoint_new();
  f->srv = wsmsg_server_new();
  ep_callbacks(f->ep);
  assert_int_equal(wsmsg_server_route(f->srv, "/ws", f->ep), 0);
}

static void srv_free(srvfix *f) {
  wsmsg_server_free(f->srv);
  wsmsg_endpoint_free(f->ep);
  free(f->r.last);
}

/* Feed a request (in chunks of `chunk` bytes, 0 = whole) and return the
 * HTTP status of the response. */
static int status_of(srvfix *f, const char *req, size_t len, size_t chunk,
                     char *resp, size_t resp_size) {
  wsmsg_conn *c = wsmsg_server_accept(f->srv, &f->r);
  for (size_t i = 0; i < len;) {
    size_t k = chunk && chunk < len - i ? chunk : len - i;
    wsmsg_conn_recv(c, req + i, k);
    i += k;
    if (wsmsg_conn_state(c) != WSMSG_STATE_CONNECTING)
      break;
  }
  const void *p;
  size_t n = wsmsg_conn_pending(c, &p);
  int status = 0;
  if (n > 12 && memcmp(p, "HTTP/1.1 ", 9) == 0)
    status = atoi((const char *)p + 9);
  if (resp) {
    size_t k = n < resp_size - 1 ? n : resp_size - 1;
    memcpy(resp, p, k);
    resp[k] = 0;
  }
  assert_int_equal(wsmsg_conn_http_status(c), status);
  if (status != 101) {
    assert_int_equal(wsmsg_conn_state(c), WSMSG_STATE_CLOSED);
    assert_int_equal(wsmsg_conn_error(c), WSMSG_ERR_HANDSHAKE);
    assert_false(wsmsg_conn_want_read(c));
    wsmsg_conn_consume(c, n);
    assert_true(wsmsg_conn_done(c));
  }
  wsmsg_conn_free(c);
  return status;
}

static void test_accept_key_rfc_example(void **s) {
  (void)s;
  char out[32];
  assert_int_equal(wsmsg_accept_key(KEY, out, sizeof(out)), 0);
  assert_string_equal(out, ACCEPT);
  assert_int_equal(wsmsg_accept_key(KEY, out, 10), WSMSG_ERR_INVALID_ARG);
}

static void test_valid_request(void **s) {
  (void)s;
  srvfix f;
  srv_init(&f);
  char resp[512];
  assert_int_equal(status_of(&f, GOOD, strlen(GOOD), 0, resp, sizeof(resp)),
                   101);
  assert_non_null(strstr(resp, "Sec-WebSocket-Accept: " ACCEPT "\r\n"));
  assert_non_null(strstr(resp, "Upgrade: websocket\r\n"));
  assert_non_null(strstr(resp, "Connection: Upgrade\r\n"));
  assert_null(strstr(resp, "Sec-WebSocket-Protocol"));
  assert_int_equal(f.r.opened, 1);
  srv_free(&f);
}

/* The request arrives one byte at a time, and split at every position. */
static void test_split_everywhere(void **s) {
  (void)s;
  srvfix f;
  srv_init(&f);
  size_t len = strlen(GOOD);
  assert_int_equal(status_of(&f, GOOD, len, 1, NULL, 0), 101);
  for (size_t cut = 1; cut < len; cut++) {
    wsmsg_conn *c = wsmsg_server_accept(f.srv, &f.r);
    assert_int_equal(wsmsg_conn_recv(c, GOOD, cut), 0);
    assert_int_equal(wsmsg_conn_state(c), WSMSG_STATE_CONNECTING);
    assert_int_equal(wsmsg_conn_recv(c, GOOD + cut, len - cut), 0);
    assert_int_equal(wsmsg_conn_state(c), WSMSG_STATE_OPEN);
    wsmsg_conn_free(c);
  }
  srv_free(&f);
}

/* Frames right behind the request in the same read are processed. */
static void test_request_plus_frames(void **s) {
  (void)s;
  srvfix f;
  srv_init(&f);
  uint8_t buf[1024];
  size_t n = strlen(GOOD);
  memcpy(buf, GOOD, n);
  n += frame(buf + n, 1, 0, 1, "hi", 2, 1);
  n += frame(buf + n, 1, 0, 2, "\x01\x02\x03", 3, 1);
  wsmsg_conn *c = wsmsg_server_accept(f.srv, &f.r);
  assert_int_equal(wsmsg_conn_recv(c, buf, n), 0);
  assert_int_equal(f.r.texts, 1);
  assert_int_equal(f.r.binaries, 1);
  assert_int_equal(f.r.last_len, 3);
  /* and again one byte at a time */
  wsmsg_conn *c2 = wsmsg_server_accept(f.srv, &f.r);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(wsmsg_conn_recv(c2, buf + i, 1), 0);
  assert_int_equal(f.r.texts, 2);
  assert_int_equal(f.r.binaries, 2);
  wsmsg_conn_free(c);
  wsmsg_conn_free(c2);
  srv_free(&f);
}

static void test_request_view(void **s);

/* An upgrade GET with a body is refused with 400 before its body can be
 * read as frames (a text frame hidden in the "body" must not reach
 * on_text); "Content-Length: 0" is no body and is accepted. */
static void test_request_with_body(void **s) {
  (void)s;
  srvfix f;
  srv_init(&f);
  const char *heads[] = {"Content-Length: 8\r\n",
                         "Transfer-Encoding: chunked\r\n"};
  for (size_t i = 0; i < 2; i++) {
    uint8_t buf[1024];
    size_t n = strlen(GOOD) - 2; /* without the final CRLF */
    memcpy(buf, GOOD, n);
    n += (size_t)sprintf((char *)buf + n, "%s\r\n", heads[i]);
    n += frame(buf + n, 1, 0, 1, "hi", 2, 1); /* the 8-byte "body" */
    wsmsg_conn *c = wsmsg_server_accept(f.srv, &f.r);
    wsmsg_conn_recv(c, buf, n);
    assert_int_equal(wsmsg_conn_http_status(c), 400);
    assert_int_equal(wsmsg_conn_state(c), WSMSG_STATE_CLOSED);
    const void *p;
    size_t k = wsmsg_conn_pending(c, &p);
    assert_true(k > 12 && memcmp(p, "HTTP/1.1 400 ", 13) == 0);
    assert_non_null(memmem(p, k, "no body", 7));
    wsmsg_conn_free(c);
  }
  assert_int_equal(f.r.opened, 0);
  assert_int_equal(f.r.texts, 0);
  char req[1024];
  size_t n = strlen(GOOD) - 2;
  memcpy(req, GOOD, n);
  n += (size_t)sprintf(req + n, "Content-Length: 0\r\n\r\n");
  assert_int_equal(status_of(&f, req, n, 0, NULL, 0), 101);
  srv_free(&f);
}

typedef struct bad_case {
  const char *req;
  int status;
} bad_case;

#define H_HOST "Host: x\r\n"
#define H_UPG "Upgrade: websocket\r\n"
#define H_CONN "Connection: Upgrade\r\n"
#define H_KEY "Sec-WebSocket-Key: " KEY "\r\n"
#define H_VER "Sec-WebSocket-Version: 13\r\n"

static const bad_case BAD[] = {
    /* a body (would be parsed as frames): Content-Length > 0, chunked */
    {"GET /ws HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER
     "Content-Length: 5\r\n\r\n",
     400},
    {"GET /ws HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER
     "Content-Length: 0\r\nContent-Length: 12\r\n\r\n",
     400},
    {"GET /ws HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER
     "Transfer-Encoding: chunked\r\n\r\n",
     400},
    {"GET /ws HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER
     "transfer-encoding: identity\r\n\r\n",
     400},
    {"POST /ws HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", 400},
    {"GET /ws HTTP/1.0\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", 400},
    {"GET /ws HTTP/1.1\r\n" H_UPG H_CONN H_KEY H_VER "\r\n", 400},
    {"GET /ws HTTP/2.0\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", 400},
    {"GET /ws HTTP/1.0\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", 400},
    {"GET /ws HTTP/1.x\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", 400},
    {"GET ftp://x/ws HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", 400},
    {"GET http:///ws HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", 400},
    {"GET * HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", 400},
    {"GET /ws HTTP/1.1\r\n" H_HOST H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", 400},
    {"GET /ws HTTP/1.1\r\n" H_HOST H_CONN H_KEY H_VER "\r\n", 400},
    {"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n" H_CONN H_KEY H_VER
     "\r\n",
     400},
    {"GET /ws HTTP/1.1\r\n" H_HOST H_UPG H_KEY H_VER "\r\n", 400},
    {"GET /ws HTTP/1.1\r\n" H_HOST H_UPG "Connection: close\r\n" H_KEY H_VER
     "\r\n",
     400},
    {"GET /ws HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_VER "\r\n", 400},
    {"GET /ws HTTP/1.1\r\n" H_HOST H_UPG H_CONN
     "Sec-WebSocket-Key: c2hvcnQ=\r\n" H_VER "\r\n",
     400},
    {"GET /ws HTTP/1.1\r\n" H_HOST H_UPG H_CONN
     "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==\r\n" H_VER "\r\n",
     400},
    {"GET /ws HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_KEY H_VER "\r\n", 400},
    {"GET /ws HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY "\r\n", 426},
    {"GET /ws HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY
     "Sec-WebSocket-Version: 8\r\n\r\n",
     426},
    {"GET /other HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", 404},
    {"GET /ws HTTP/1.1\r\n" H_HOST " folded\r\n" H_UPG H_CONN H_KEY H_VER
     "\r\n",
     400},
    {"GET /ws HTTP/1.1\r\nBad Header: x\r\n" H_HOST H_UPG H_CONN H_KEY H_VER
     "\r\n",
     400},
    {"GET /ws HTTP/1.1\r\nNoColon\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n",
     400},
    {"GET  /ws HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", 400},
    {"\r\n" H_HOST "\r\n", 400},
    {"GET /ws HTTP/1.1\r\nX: a\x01b\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n",
     400},
};

static void test_bad_requests(void **s) {
  (void)s;
  srvfix f;
  srv_init(&f);
  for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
    char resp[512];
    int st =
        status_of(&f, BAD[i].req, strlen(BAD[i].req), 0, resp, sizeof(resp));
    if (st != BAD[i].status)
      fail_msg("case %zu: got %d, want %d for %s", i, st, BAD[i].status,
               BAD[i].req);
    assert_non_null(strstr(resp, "Connection: close\r\n"));
    if (st == 426)
      assert_non_null(strstr(resp, "Sec-WebSocket-Version: 13\r\n"));
  }
  assert_int_equal(f.r.opened, 0);
  assert_int_equal(f.r.closes, 0); /* never opened: no on_close */
  srv_free(&f);
}

/* A header-name table: every required header is case-insensitive. */
/* RFC 6455 4.2.1: "an HTTP/1.1 or higher GET request" whose target is a
 * path or an absolute http(s) URI containing it. */
static void test_absolute_form_and_versions(void **s) {
  (void)s;
  srvfix f;
  srv_init(&f);
  const char *targets[] = {"http://example.com/ws?room=1",
                           "HTTPS://example.com:8443/ws", "ws://x/ws",
                           "GET /ws HTTP/1.2", "GET /ws HTTP/1.10"};
  for (size_t i = 0; i < 5; i++) {
    char req[512];
    int n = i < 3
                ? snprintf(req, sizeof(req),
                           "GET %s HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER
                           "\r\n",
                           targets[i])
                : snprintf(req, sizeof(req),
                           "%s\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n",
                           targets[i]);
    wsmsg_conn *c = wsmsg_server_accept(f.srv, &f.r);
    wsmsg_conn_recv(c, req, (size_t)n);
    if (wsmsg_conn_state(c) != WSMSG_STATE_OPEN)
      fail_msg("%s: not accepted (%d)", targets[i], wsmsg_conn_http_status(c));
    assert_string_equal(wsmsg_conn_path(c), "/ws");
    if (i == 0)
      assert_string_equal(wsmsg_conn_query(c), "room=1");
    wsmsg_conn_free(c);
  }
  srv_free(&f);
}

/* Empty lines before the request line are ignored (RFC 7230 3.5). */
static void test_leading_crlf(void **s) {
  (void)s;
  srvfix f;
  srv_init(&f);
  char req[600];
  int n = snprintf(req, sizeof(req), "\r\n\r\n%s", GOOD);
  assert_int_equal(status_of(&f, req, (size_t)n, 0, NULL, 0), 101);
  assert_int_equal(status_of(&f, req, (size_t)n, 1, NULL, 0), 101);
  srv_free(&f);
}

static void test_case_insensitive(void **s) {
  (void)s;
  srvfix f;
  srv_init(&f);
  const char *req = "GET /ws HTTP/1.1\r\nhOsT: x\r\nUPGRADE: WebSocket\r\n"
                    "connection: UPGRADE\r\nsec-websocket-key: " KEY "\r\n"
                    "SEC-WEBSOCKET-VERSION: 13\r\n\r\n";
  assert_int_equal(status_of(&f, req, strlen(req), 0, NULL, 0), 101);
  srv_free(&f);
}

static void test_limits(void **s) {
  (void)s;
  srvfix f;
  srv_init(&f);
  /* 8 KiB without the end of the head: 431 */
  char *big = malloc(9000);
  memcpy(big, "GET /ws HTTP/1.1\r\nX-Big: ", 25);
  memset(big + 25, 'a', 9000 - 25);
  assert_int_equal(status_of(&f, big, 9000, 0, NULL, 0), 431);
  assert_int_equal(status_of(&f, big, 9000, 100, NULL, 0), 431);
  free(big);
  /* too many header lines: 431 */
  char many[4096];
  size_t n = (size_t)sprintf(
      many, "GET /ws HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER);
  for (int i = 0; i < 70; i++)
    n += (size_t)sprintf(many + n, "X-%d: y\r\n", i);
  n += (size_t)sprintf(many + n, "\r\n");
  assert_int_equal(status_of(&f, many, n, 0, NULL, 0), 431);
  srv_free(&f);

  /* configurable limits */
  srv_init(&f);
  assert_int_equal(wsmsg_server_set_max_request_size(f.srv, 100), 0);
  assert_int_equal(status_of(&f, GOOD, strlen(GOOD), 0, NULL, 0), 431);
  assert_int_equal(wsmsg_server_set_max_request_size(f.srv, 100),
                   WSMSG_ERR_STATE); /* frozen once used */
  srv_free(&f);
}

static void test_routes(void **s) {
  (void)s;
  wsmsg_endpoint *a = wsmsg_endpoint_new(), *b = wsmsg_endpoint_new(),
                 *d = wsmsg_endpoint_new();
  wsmsg_server *srv = wsmsg_server_new();
  assert_int_equal(wsmsg_server_route(srv, "/ws/chat", a), 0);
  assert_int_equal(wsmsg_server_route(srv, "/ws/*", b), 0);
  assert_int_equal(wsmsg_server_route(srv, "*", d), 0);
  assert_int_equal(wsmsg_server_route(srv, "/ws/chat", b), WSMSG_ERR_STATE);
  assert_int_equal(wsmsg_server_route(srv, "nope", b), WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_server_route(srv, "/a b", b), WSMSG_ERR_INVALID_ARG);
  const struct {
    const char *path;
    wsmsg_endpoint *ep;
  } cases[] = {{"/ws/chat", a},   {"/ws/chat?x=1", a}, {"/ws/chatter", b},
               {"/ws/", b},       {"/ws", d},          {"/", d},
               {"/other/deep", d}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char req[512];
    int n =
        snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n",
                 cases[i].path);
    wsmsg_conn *c = wsmsg_server_accept(srv, NULL);
    wsmsg_conn_recv(c, req, (size_t)n);
    assert_int_equal(wsmsg_conn_state(c), WSMSG_STATE_OPEN);
    assert_ptr_equal(wsmsg_conn_endpoint(c), cases[i].ep);
    wsmsg_conn_free(c);
  }
  assert_int_equal(wsmsg_server_route(srv, "/late", a), WSMSG_ERR_STATE);
  wsmsg_server_free(srv);
  wsmsg_endpoint_free(a);
  wsmsg_endpoint_free(b);
  wsmsg_endpoint_free(d);
}

static void sub_setup(srvfix *f) {
  wsmsg_endpoint_add_subprotocol(f->ep, "v2.chat");
  wsmsg_endpoint_add_subprotocol(f->ep, "v1.chat");
}

static void test_subprotocols(void **s) {
  (void)s;
  srvfix f;
  srv_init(&f);
  sub_setup(&f);
  assert_int_equal(wsmsg_endpoint_add_subprotocol(f.ep, "bad name"),
                   WSMSG_ERR_INVALID_ARG);
  char resp[512];
  /* server preference wins over the client's order */
  const char *req = "GET /ws HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER
                    "Sec-WebSocket-Protocol: v1.chat, v2.chat\r\n\r\n";
  assert_int_equal(status_of(&f, req, strlen(req), 0, resp, sizeof(resp)), 101);
  assert_non_null(strstr(resp, "Sec-WebSocket-Protocol: v2.chat\r\n"));
  /* split over two header lines */
  req = "GET /ws HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER
        "Sec-WebSocket-Protocol: x\r\nSec-WebSocket-Protocol: v1.chat\r\n\r\n";
  assert_int_equal(status_of(&f, req, strlen(req), 0, resp, sizeof(resp)), 101);
  assert_non_null(strstr(resp, "Sec-WebSocket-Protocol: v1.chat\r\n"));
  /* none in common: open without a subprotocol */
  req = "GET /ws HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER
        "Sec-WebSocket-Protocol: mqtt\r\n\r\n";
  assert_int_equal(status_of(&f, req, strlen(req), 0, resp, sizeof(resp)), 101);
  assert_null(strstr(resp, "Sec-WebSocket-Protocol"));
  srv_free(&f);

  srv_init(&f);
  sub_setup(&f);
  wsmsg_endpoint_require_subprotocol(f.ep, 1);
  assert_int_equal(status_of(&f, req, strlen(req), 0, NULL, 0), 400);
  assert_int_equal(status_of(&f, GOOD, strlen(GOOD), 0, NULL, 0), 400);
  srv_free(&f);
}

static void test_origin(void **s) {
  (void)s;
  srvfix f;
  srv_init(&f);
  wsmsg_endpoint_allow_origin(f.ep, "https://good.example");
  const char *ok = "GET /ws HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER
                   "Origin: https://GOOD.example\r\n\r\n";
  const char *bad = "GET /ws HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER
                    "Origin: https://evil.example\r\n\r\n";
  assert_int_equal(status_of(&f, ok, strlen(ok), 0, NULL, 0), 101);
  assert_int_equal(status_of(&f, bad, strlen(bad), 0, NULL, 0), 403);
  /* no Origin: not a browser, accepted */
  assert_int_equal(status_of(&f, GOOD, strlen(GOOD), 0, NULL, 0), 101);
  assert_int_equal(wsmsg_endpoint_allow_origin(f.ep, "https://late"),
                   WSMSG_ERR_STATE);
  srv_free(&f);
}

static char seen_cookie[64], seen_query[64], seen_hdr[64];
static int hs_status;

static int on_hs(wsmsg_conn *c, const wsmsg_request *req, void *u) {
  (void)u;
  assert_string_equal(wsmsg_request_path(req), "/ws");
  snprintf(seen_query, sizeof(seen_query), "%s", wsmsg_request_query(req));
  const char *h = wsmsg_request_header(req, "host");
  snprintf(seen_hdr, sizeof(seen_hdr), "%s", h ? h : "(null)");
  int n =
      wsmsg_request_cookie(req, "session", seen_cookie, sizeof(seen_cookie));
  assert_int_equal(n, 3);
  char small[2];
  assert_int_equal(wsmsg_request_cookie(req, "session", small, sizeof(small)),
                   WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_request_cookie(req, "nope", small, sizeof(small)),
                   WSMSG_ERR_NOT_FOUND);
  assert_true(wsmsg_request_header_count(req) >= 6);
  assert_string_equal(wsmsg_request_header_name(req, 0), "Host");
  assert_null(wsmsg_request_header_name(req, 1000));
  assert_null(wsmsg_request_header(req, "X-Absent"));
  /* the path is known on the conn already */
  assert_string_equal(wsmsg_conn_path(c), "/ws");
  return hs_status;
}

static void test_request_view(void **s) {
  (void)s;
  srvfix f;
  srv_init(&f);
  wsmsg_endpoint_on_handshake(f.ep, on_hs);
  hs_status = 0;
  assert_int_equal(status_of(&f, GOOD, strlen(GOOD), 0, NULL, 0), 101);
  assert_string_equal(seen_cookie, "abc");
  assert_string_equal(seen_query, "room=1&x=y");
  assert_string_equal(seen_hdr, "example.com:8080");
  hs_status = 401;
  char resp[512];
  assert_int_equal(status_of(&f, GOOD, strlen(GOOD), 0, resp, sizeof(resp)),
                   401);
  assert_non_null(strstr(resp, "401 Unauthorized"));
  /* the reason phrases are those of plain HTTP responses (one table) */
  hs_status = 413;
  assert_int_equal(status_of(&f, GOOD, strlen(GOOD), 0, resp, sizeof(resp)),
                   413);
  assert_non_null(strstr(resp, "HTTP/1.1 413 Content Too Large\r\n"));
  hs_status = 502;
  assert_int_equal(status_of(&f, GOOD, strlen(GOOD), 0, resp, sizeof(resp)),
                   502);
  assert_non_null(strstr(resp, "HTTP/1.1 502 Bad Gateway\r\n"));
  hs_status = 418; /* no phrase of its own: its class's */
  assert_int_equal(status_of(&f, GOOD, strlen(GOOD), 0, resp, sizeof(resp)),
                   418);
  assert_non_null(strstr(resp, "HTTP/1.1 418 Client Error\r\n"));
  hs_status = 42; /* not an error status: treated as a server error */
  assert_int_equal(status_of(&f, GOOD, strlen(GOOD), 0, NULL, 0), 500);
  srv_free(&f);
}

static void test_conn_query_after_open(void **s) {
  (void)s;
  srvfix f;
  srv_init(&f);
  wsmsg_conn *c = wsmsg_server_accept(f.srv, &f.r);
  wsmsg_conn_recv(c, GOOD, strlen(GOOD));
  assert_string_equal(wsmsg_conn_path(c), "/ws");
  assert_string_equal(wsmsg_conn_query(c), "room=1&x=y");
  assert_null(wsmsg_conn_subprotocol(c));
  assert_false(wsmsg_conn_is_client(c));
  wsmsg_conn_free(c);
  srv_free(&f);
}

/* ---- client side ---- */

/* Run a client against a canned response; returns the client's error. */
static int client_against(const char *resp_fmt, const char *sub_offer, rec *r,
                          int *state) {
  wsmsg_endpoint *ep = wsmsg_endpoint_new();
  ep_callbacks(ep);
  if (sub_offer)
    wsmsg_endpoint_add_subprotocol(ep, sub_offer);
  wsmsg_conn *c = wsmsg_client_new(ep, "h:1", "/p?q=1", r);
  assert_int_equal(wsmsg_client_add_header(c, "Origin", "http://h"), 0);
  assert_int_equal(wsmsg_client_add_header(c, "Sec-WebSocket-Key", "x"),
                   WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_client_add_header(c, "X-Evil", "a\r\nb"),
                   WSMSG_ERR_INVALID_ARG);
  const void *p;
  size_t n = wsmsg_conn_pending(c, &p);
  assert_true(n > 0);
  char req[1024];
  memcpy(req, p, n);
  req[n] = 0;
  wsmsg_conn_consume(c, n);
  assert_int_equal(wsmsg_client_add_header(c, "X-Late", "1"), WSMSG_ERR_STATE);
  assert_non_null(strstr(req, "GET /p?q=1 HTTP/1.1\r\nHost: h:1\r\n"));
  assert_non_null(strstr(req, "Origin: http://h\r\n"));
  /* find our key and compute the right accept */
  const char *k = strstr(req, "Sec-WebSocket-Key: ");
  assert_non_null(k);
  char key[32];
  memcpy(key, k + 19, 24);
  key[24] = 0;
  char acc[32];
  wsmsg_accept_key(key, acc, sizeof(acc));
  char resp[1024];
  int rn = snprintf(resp, sizeof(resp), resp_fmt, acc);
  wsmsg_conn_recv(c, resp, (size_t)rn);
  int err = wsmsg_conn_error(c);
  *state = wsmsg_conn_state(c);
  wsmsg_conn_free(c);
  wsmsg_endpoint_free(ep);
  return err;
}

static void test_client_verify(void **s) {
  (void)s;
  rec r;
  int st;
  const char *ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n";
  memset(&r, 0, sizeof(r));
  assert_int_equal(client_against(ok, NULL, &r, &st), 0);
  assert_int_equal(st, WSMSG_STATE_OPEN);
  assert_int_equal(r.opened, 1);

  const char *fails[] = {
      "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n%s",
      "HTTP/1.1 101 OK\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
      "%s\r\n\r\n",
      "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: "
      "%s\r\n\r\n",
      "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\nX: %s\r\n\r\n",
      "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
      "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Extensions: "
      "permessage-deflate\r\n\r\n",
      "garbage\r\n\r\n%s",
  };
  for (size_t i = 0; i < sizeof(fails) / sizeof(fails[0]); i++) {
    memset(&r, 0, sizeof(r));
    assert_int_equal(client_against(fails[i], NULL, &r, &st),
                     WSMSG_ERR_HANDSHAKE);
    assert_int_equal(st, WSMSG_STATE_CLOSED);
    assert_int_equal(r.opened, 0);
    /* the client learns about the failure through on_close */
    assert_int_equal(r.closes, 1);
    assert_int_equal(r.close.code, 1006);
    assert_int_equal(r.close.error, WSMSG_ERR_HANDSHAKE);
    assert_true(strlen(r.close_detail) > 0);
    free(r.last);
  }
  /* a subprotocol we offered is fine */
  memset(&r, 0, sizeof(r));
  const char *sub = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                    "Sec-WebSocket-Protocol: chat\r\n\r\n";
  assert_int_equal(client_against(sub, "chat", &r, &st), 0);
  assert_int_equal(st, WSMSG_STATE_OPEN);
}

static void test_client_args(void **s) {
  (void)s;
  wsmsg_endpoint *ep = wsmsg_endpoint_new();
  assert_null(wsmsg_client_new(ep, "h", "nopath", NULL));
  assert_null(wsmsg_client_new(ep, "h\r\nX: y", "/", NULL));
  assert_null(wsmsg_client_new(ep, "h", "/a b", NULL));
  assert_null(wsmsg_client_new(NULL, "h", "/", NULL));
  wsmsg_conn *c = wsmsg_client_new(ep, "h", "/", NULL);
  assert_non_null(c);
  assert_true(wsmsg_conn_is_client(c));
  assert_true(wsmsg_conn_want_write(c));
  /* nothing can be received before the request is out */
  assert_int_equal(wsmsg_conn_recv(c, "x", 1), WSMSG_ERR_STATE);
  assert_int_equal(wsmsg_send_text(c, "x", 1), WSMSG_ERR_STATE);
  wsmsg_conn_free(c);
  wsmsg_endpoint_free(ep);
}

/* Pair with subprotocols negotiated end to end. */
static void sub_pair(pair *p) {
  wsmsg_endpoint_add_subprotocol(p->sep, "b");
  wsmsg_endpoint_add_subprotocol(p->sep, "a");
  wsmsg_endpoint_add_subprotocol(p->cep, "a");
  wsmsg_endpoint_add_subprotocol(p->cep, "b");
}

static void test_pair_subprotocol(void **s) {
  (void)s;
  pair p;
  pair_open(&p, sub_pair);
  assert_string_equal(wsmsg_conn_subprotocol(p.s), "b");
  assert_string_equal(wsmsg_conn_subprotocol(p.c), "b");
  assert_string_equal(wsmsg_conn_path(p.c), "/ws");
  pair_free(&p);
}

/* Out of memory while the handshake arrives a byte at a time, every
 * allocation failed in turn on each side: whatever recv returns, the side
 * that ran out ends CLOSED and takes no more bytes (it must never stay
 * CONNECTING with the bytes it could not keep dropped: the stream would
 * be cut); without a failure the handshake completes. */
static void test_oom_byte_by_byte(void **s) {
  (void)s;
  int hits[2] = {0, 0};
  for (int side = 0; side < 2; side++) {
    for (int k = 1; k < 60; k++) {
      wsmsg_mem mem = failing_mem;
      wsmsg_endpoint *sep = side ? wsmsg_endpoint_new()
                                 : wsmsg_endpoint_new_mem(&mem);
      wsmsg_endpoint *cep = side ? wsmsg_endpoint_new_mem(&mem)
                                 : wsmsg_endpoint_new();
      wsmsg_server *srv = side ? wsmsg_server_new() : wsmsg_server_new_mem(&mem);
      wsmsg_endpoint_on_close(sep, cb_close);
      wsmsg_endpoint_on_close(cep, cb_close);
      assert_int_equal(wsmsg_server_route(srv, "/ws", sep), 0);
      rec sr, cr;
      memset(&sr, 0, sizeof(sr));
      memset(&cr, 0, sizeof(cr));
      wsmsg_conn *sc = wsmsg_server_accept(srv, &sr);
      wsmsg_conn *cc = wsmsg_client_new(cep, "localhost:1", "/ws", &cr);
      assert_non_null(sc);
      assert_non_null(cc);
      const void *out;
      size_t n = wsmsg_conn_pending(cc, &out); /* the request, built */
      assert_true(n > 0);
      wsmsg_conn *who = side ? cc : sc;
      if (side) { /* the server answers at once; the client runs out */
        wsmsg_conn_recv(sc, out, n);
        wsmsg_conn_consume(cc, n);
        n = wsmsg_conn_pending(sc, &out);
        assert_true(n > 0);
      }
      fail_countdown = k;
      const uint8_t *b = out;
      int hit = 0;
      for (size_t i = 0; i < n && wsmsg_conn_state(who) ==
                                      WSMSG_STATE_CONNECTING; i++) {
        wsmsg_conn_recv(who, b + i, 1); /* the result is not trusted */
        if (fail_countdown == 0) { /* this byte's allocation failed */
          hit = 1;
          /* closed by this very call, not later by a request or
           * response cut where the lost byte was */
          assert_int_equal(wsmsg_conn_state(who), WSMSG_STATE_CLOSED);
          break;
        }
      }
      fail_countdown = 0;
      if (hit) {
        hits[side]++;
        assert_int_equal(wsmsg_conn_state(who), WSMSG_STATE_CLOSED);
        int err = wsmsg_conn_error(who); /* and says why */
        assert_true(err == WSMSG_ERR_NOMEM ||
                    (err == WSMSG_ERR_HANDSHAKE &&
                     strstr(wsmsg_conn_error_detail(who), "out of memory")));
        assert_int_equal(wsmsg_conn_recv(who, "x", 1), WSMSG_ERR_CLOSED);
        if (side) {
          assert_int_equal(cr.closes, 1); /* a client reports it */
          assert_int_equal(cr.close.error, err);
        }
      } else {
        assert_int_equal(wsmsg_conn_state(who), WSMSG_STATE_OPEN);
      }
      wsmsg_conn_free(sc);
      wsmsg_conn_free(cc);
      wsmsg_server_free(srv);
      wsmsg_endpoint_free(sep);
      wsmsg_endpoint_free(cep);
      free(sr.last);
      free(cr.last);
      if (!hit)
        break;
    }
  }
  assert_true(hits[0] >= 2); /* both sides had allocations to fail */
  assert_true(hits[1] >= 2);
}

/* A plain-HTTP hook (wsmsg_server_on_http) that returns a status outside
 * 400..599 gets wsmsg's own 500 on the wire, for an upgrade request as for
 * a plain one: never a 101 (a client would take the upgrade as done), 2xx
 * or 3xx with wsmsg's error body.  test_http checks the recorded status;
 * this checks the bytes (mutation http-hook-status-unclamped). */
static int hook_ret;
static int ret_hook(wsmsg_conn *c, const wsmsg_request *req, void *u) {
  (void)c, (void)req, (void)u;
  return hook_ret;
}

static void test_http_hook_status_on_the_wire(void **s) {
  (void)s;
  static const int out_of_range[] = {101, 200, 204, 302, 399, 600, 999, -1};
  static const char PLAIN[] = "GET /page HTTP/1.1\r\nHost: h\r\n\r\n";
  char resp[1024];
  for (size_t i = 0; i < sizeof(out_of_range) / sizeof(out_of_range[0]);
       i++) {
    for (int upgrade = 0; upgrade < 2; upgrade++) {
      srvfix f;
      srv_init(&f);
      assert_int_equal(wsmsg_server_on_http(f.srv, ret_hook), 0);
      hook_ret = out_of_range[i];
      const char *req = upgrade ? GOOD : PLAIN;
      int st = status_of(&f, req, strlen(req), 0, resp, sizeof(resp));
      if (st != 500)
        fail_msg("hook returned %d (%s request): answered %d:\n%s",
                 hook_ret, upgrade ? "upgrade" : "plain", st, resp);
      assert_null(strstr(resp, "Sec-WebSocket-Accept"));
      assert_int_equal(f.r.opened, 0);
      srv_free(&f);
    }
  }
  /* the edges of the range go out as they are */
  static const int in_range[] = {400, 404, 503, 599};
  for (size_t i = 0; i < sizeof(in_range) / sizeof(in_range[0]); i++) {
    srvfix f;
    srv_init(&f);
    assert_int_equal(wsmsg_server_on_http(f.srv, ret_hook), 0);
    hook_ret = in_range[i];
    assert_int_equal(status_of(&f, GOOD, strlen(GOOD), 0, resp, sizeof(resp)),
                     in_range[i]);
    assert_int_equal(f.r.opened, 0);
    srv_free(&f);
  }
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_accept_key_rfc_example),
      cmocka_unit_test(test_valid_request),
      cmocka_unit_test(test_split_everywhere),
      cmocka_unit_test(test_request_plus_frames),
      cmocka_unit_test(test_request_with_body),
      cmocka_unit_test(test_bad_requests),
      cmocka_unit_test(test_absolute_form_and_versions),
      cmocka_unit_test(test_leading_crlf),
      cmocka_unit_test(test_case_insensitive),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_routes),
      cmocka_unit_test(test_subprotocols),
      cmocka_unit_test(test_origin),
      cmocka_unit_test(test_request_view),
      cmocka_unit_test(test_conn_query_after_open),
      cmocka_unit_test(test_client_verify),
      cmocka_unit_test(test_client_args),
      cmocka_unit_test(test_pair_subprotocol),
      cmocka_unit_test(test_oom_byte_by_byte),
      cmocka_unit_test(test_http_hook_status_on_the_wire),
  };
  return unit_run("handshake", tests, argc, argv);
}
