/* Timeouts on a fake clock: every timer at its exact boundary (T-1 ms:
 * nothing; T: fires), re-arming on activity, interplay, and the wsmsg_timers
 * heap.  No sleeps anywhere. */
#include "pair.h"

static uint64_t fake_now;
static uint64_t fake_clock(void *u) {
  (void)u;
  return fake_now;
}

static int timeouts_seen;
static void on_timeout(wsmsg_conn *c, int kind, void *u) {
  (void)c;
  (void)u;
  assert_int_equal(kind, WSMSG_TIMEOUT_RECEIVE);
  timeouts_seen++;
}

/* The tests of one timer turn the others off: keepalive, message and
 * write timeouts are on by default (test_safe_defaults checks those). */
static void defaults_off(wsmsg_endpoint *ep) {
  wsmsg_endpoint_set_ping_interval(ep, 0);
  wsmsg_endpoint_set_pong_timeout(ep, 0);
  wsmsg_endpoint_set_message_timeout(ep, 0);
  wsmsg_endpoint_set_write_timeout(ep, 0);
}

static void clocks(pair *p) {
  wsmsg_server_set_clock(p->srv, fake_clock, NULL);
  wsmsg_endpoint_set_clock(p->cep, fake_clock, NULL);
  defaults_off(p->sep);
  defaults_off(p->cep);
}

static void set_receive(pair *p) {
  clocks(p);
  wsmsg_endpoint_set_receive_timeout(p->sep, 1000);
  wsmsg_endpoint_on_timeout(p->sep, on_timeout);
}

static void test_receive_timeout_boundary(void **s) {
  (void)s;
  fake_now = 5000;
  timeouts_seen = 0;
  pair p;
  pair_open(&p, set_receive);
  assert_int_equal(wsmsg_conn_deadline(p.s), 6000);
  assert_int_equal(wsmsg_conn_next_deadline(p.s), 1000);
  wsmsg_conn_tick(p.s, 5999);
  assert_int_equal(timeouts_seen, 0);
  wsmsg_conn_tick(p.s, 6000);
  assert_int_equal(timeouts_seen, 1);
  /* re-armed for one more period */
  assert_int_equal(wsmsg_conn_deadline(p.s), 7000);
  wsmsg_conn_tick(p.s, 6999);
  assert_int_equal(timeouts_seen, 1);
  /* activity moves the deadline */
  fake_now = 6500;
  wsmsg_send_text(p.c, "hi", 2);
  pump(&p);
  assert_int_equal(wsmsg_conn_deadline(p.s), 7500);
  wsmsg_conn_tick(p.s, 7000);
  assert_int_equal(timeouts_seen, 1);
  wsmsg_conn_tick(p.s, 7499);
  assert_int_equal(timeouts_seen, 1);
  wsmsg_conn_tick(p.s, 7500);
  assert_int_equal(timeouts_seen, 2);
  /* a ping is not a message: it does not re-arm the receive timeout */
  fake_now = 7600;
  wsmsg_send_ping(p.c, "x", 1);
  pump(&p);
  assert_int_equal(wsmsg_conn_deadline(p.s), 8500);
  pair_free(&p);
}

static int action;
static void set_action(pair *p) {
  clocks(p);
  wsmsg_endpoint_set_receive_timeout(p->sep, 100);
  wsmsg_endpoint_set_timeout_action(
      p->sep, action, action == WSMSG_ON_TIMEOUT_HEARTBEAT ? NULL : "unused");
}

static void test_timeout_actions(void **s) {
  (void)s;
  pair p;
  /* heartbeat text */
  fake_now = 0;
  action = WSMSG_ON_TIMEOUT_HEARTBEAT;
  pair_open(&p, set_action);
  wsmsg_conn_tick(p.s, 99);
  pump(&p);
  assert_int_equal(p.cr.texts, 0);
  wsmsg_conn_tick(p.s, 100);
  pump(&p);
  assert_int_equal(p.cr.texts, 1);
  assert_string_equal((char *)p.cr.last, "HEARTBEAT");
  wsmsg_conn_tick(p.s, 200);
  pump(&p);
  assert_int_equal(p.cr.texts, 2);
  pair_free(&p);
  /* ping: the client answers, the rtt is measured */
  action = WSMSG_ON_TIMEOUT_PING;
  pair_open(&p, set_action);
  wsmsg_conn_tick(p.s, 100);
  fake_now = 107;
  pump(&p);
  assert_int_equal(p.sr.pongs, 1);
  assert_int_equal(wsmsg_conn_rtt_ms(p.s), 7);
  pair_free(&p);
  /* close 1001 and 1011 */
  for (int code = 1001; code <= 1011; code += 10) {
    fake_now = 0;
    action = code == 1001 ? WSMSG_ON_TIMEOUT_CLOSE_1001
                          : WSMSG_ON_TIMEOUT_CLOSE_1011;
    pair_open(&p, set_action);
    wsmsg_conn_tick(p.s, 100);
    pump(&p);
    assert_int_equal(p.cr.close.code, code);
    assert_string_equal(p.cr.close_reason, "receive timeout");
    assert_true(p.sr.close.clean);
    pair_free(&p);
  }
  /* event for the pull API */
  fake_now = 0;
  action = WSMSG_ON_TIMEOUT_EVENT;
  pair_open(&p, set_action);
  wsmsg_conn_tick(p.s, 100);
  wsmsg_event ev;
  assert_int_equal(wsmsg_conn_next_event(p.s, &ev), 1);
  assert_int_equal(ev.type, WSMSG_EV_TIMEOUT);
  assert_int_equal(ev.code, WSMSG_TIMEOUT_RECEIVE);
  pair_free(&p);
}

static void set_keepalive(pair *p) {
  clocks(p);
  wsmsg_endpoint_set_ping_interval(p->sep, 500);
  wsmsg_endpoint_set_pong_timeout(p->sep, 200);
}

static void test_keepalive(void **s) {
  (void)s;
  fake_now = 0;
  pair p;
  pair_open(&p, set_keepalive);
  assert_int_equal(wsmsg_conn_rtt_ms(p.s), -1);
  wsmsg_conn_tick(p.s, 499);
  assert_int_equal(wsmsg_conn_pending(p.s, NULL), 0);
  wsmsg_conn_tick(p.s, 500);
  assert_true(wsmsg_conn_pending(p.s, NULL) > 0); /* the ping */
  /* answered 30 ms later: rtt, and the next ping one interval after the
   * pong */
  fake_now = 530;
  pump(&p);
  assert_int_equal(wsmsg_conn_rtt_ms(p.s), 30);
  assert_int_equal(wsmsg_conn_deadline(p.s), 1030);
  /* traffic from the peer postpones the next ping */
  fake_now = 900;
  wsmsg_send_text(p.c, "x", 1);
  pump(&p);
  assert_int_equal(wsmsg_conn_deadline(p.s), 1400);
  /* unanswered: T_pong - 1 nothing, T_pong closes 1011 */
  wsmsg_conn_tick(p.s, 1400);
  wsmsg_conn_consume(p.s, wsmsg_conn_pending(p.s, NULL)); /* lost ping */
  assert_int_equal(wsmsg_conn_deadline(p.s), 1600);
  wsmsg_conn_tick(p.s, 1599);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
  wsmsg_conn_tick(p.s, 1600);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_CLOSED);
  assert_int_equal(p.sr.closes, 1);
  assert_int_equal(p.sr.close.code, 1011);
  assert_false(p.sr.close.clean);
  assert_int_equal(p.sr.close.error, WSMSG_ERR_TIMEOUT);
  assert_non_null(strstr(p.sr.close_detail, "keepalive"));
  /* the closing side's reason is the one its close frame carried (it was
   * "" before: only detail had it) */
  assert_string_equal(p.sr.close_reason,
                      "keepalive timeout: no pong within 200 ms");
  assert_int_equal(p.sr.close.reason_len, strlen(p.sr.close_reason));
  assert_int_equal(pending_close_code(p.s), 1011);
  pump(&p);
  assert_int_equal(p.cr.close.code, 1011);
  assert_string_equal(p.cr.close_reason, p.sr.close_reason);
  pair_free(&p);
}

/* Without a pong timeout, pings go out every interval and are not awaited;
 * an unsolicited or foreign pong changes nothing. */
static void set_ping_only(pair *p) {
  clocks(p);
  wsmsg_endpoint_set_ping_interval(p->sep, 100);
}

static void test_ping_without_pong_timeout(void **s) {
  (void)s;
  fake_now = 0;
  pair p;
  pair_open(&p, set_ping_only);
  wsmsg_conn_tick(p.s, 100);
  size_t n1 = wsmsg_conn_pending(p.s, NULL);
  assert_true(n1 > 0);
  wsmsg_conn_consume(p.s, n1);
  wsmsg_conn_tick(p.s, 199);
  assert_int_equal(wsmsg_conn_pending(p.s, NULL), 0);
  wsmsg_conn_tick(p.s, 200);
  assert_true(wsmsg_conn_pending(p.s, NULL) > 0);
  wsmsg_conn_consume(p.s, wsmsg_conn_pending(p.s, NULL));
  /* a pong with another payload does not count as the answer */
  to_server(&p, 1, 0, 10, "12345678", 8);
  assert_int_equal(wsmsg_conn_rtt_ms(p.s), -1);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
  pair_free(&p);
}

static void set_message(pair *p) {
  clocks(p);
  wsmsg_endpoint_set_message_timeout(p->sep, 300);
}

static void test_message_timeout(void **s) {
  (void)s;
  fake_now = 1000;
  pair p;
  pair_open(&p, set_message);
  assert_int_equal(wsmsg_conn_deadline(p.s), -1);
  to_server(&p, 0, 0, 1, "part", 4);
  assert_int_equal(wsmsg_conn_deadline(p.s), 1300);
  fake_now = 1200;
  to_server(&p, 0, 0, 0, "more", 4); /* still the same message */
  wsmsg_conn_tick(p.s, 1299);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
  wsmsg_conn_tick(p.s, 1300);
  assert_int_equal(pending_close_code(p.s), 1008);
  assert_int_equal(p.sr.close.error, WSMSG_ERR_TIMEOUT);
  pair_free(&p);
  /* a message completed in time disarms it */
  fake_now = 0;
  pair_open(&p, set_message);
  to_server(&p, 0, 0, 1, "a", 1);
  to_server(&p, 1, 0, 0, "b", 1);
  assert_int_equal(p.sr.texts, 1);
  assert_int_equal(wsmsg_conn_deadline(p.s), -1);
  pair_free(&p);
}

static void set_close(pair *p) {
  clocks(p);
  wsmsg_endpoint_set_close_timeout(p->sep, 250);
}

static void test_close_timeout(void **s) {
  (void)s;
  fake_now = 0;
  pair p;
  pair_open(&p, set_close);
  fake_now = 100;
  wsmsg_close(p.s, 1000, "bye");
  /* the peer never answers */
  wsmsg_conn_consume(p.s, wsmsg_conn_pending(p.s, NULL));
  assert_int_equal(wsmsg_conn_deadline(p.s), 350);
  wsmsg_conn_tick(p.s, 349);
  assert_int_equal(p.sr.closes, 0);
  wsmsg_conn_tick(p.s, 350);
  assert_int_equal(p.sr.closes, 1);
  assert_false(p.sr.close.clean);
  assert_int_equal(p.sr.close.code, 1000);
  assert_int_equal(p.sr.close.error, WSMSG_ERR_TIMEOUT);
  assert_true(wsmsg_conn_done(p.s));
  pair_free(&p);
  /* a pong arriving during the close changes nothing; the close answer in
   * time completes cleanly */
  fake_now = 0;
  pair_open(&p, set_close);
  wsmsg_close(p.s, 1000, NULL);
  to_server(&p, 1, 0, 10, "late pong", 9);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_CLOSING);
  fake_now = 249;
  to_server(&p, 1, 0, 8, "\x03\xe8", 2);
  assert_true(p.sr.close.clean);
  pair_free(&p);
}

static void set_write(pair *p) {
  clocks(p);
  wsmsg_endpoint_set_write_timeout(p->sep, 400);
}

static void test_write_timeout(void **s) {
  (void)s;
  fake_now = 0;
  pair p;
  pair_open(&p, set_write);
  fake_now = 10;
  wsmsg_send_text(p.s, "unread", 6);
  assert_int_equal(wsmsg_conn_deadline(p.s), 410);
  /* partial progress re-arms it */
  fake_now = 300;
  wsmsg_conn_consume(p.s, 1);
  assert_int_equal(wsmsg_conn_deadline(p.s), 700);
  wsmsg_conn_tick(p.s, 699);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
  wsmsg_conn_tick(p.s, 700);
  assert_int_equal(p.sr.closes, 1);
  assert_int_equal(p.sr.close.error, WSMSG_ERR_TIMEOUT);
  assert_true(wsmsg_conn_done(p.s));
  pair_free(&p);
}

static int deny_hook(wsmsg_conn *c, const wsmsg_request *req, void *u) {
  (void)u;
  const char *q = wsmsg_request_query(req);
  if (!strcmp(q, "respond")) /* the endpoint answers itself */
    return wsmsg_http_respond(c, 401, NULL, "no", 2);
  return !strcmp(q, "deny") ? 403 : 0;
}

static const char *upgrade(const char *target) {
  static char buf[512];
  snprintf(buf, sizeof(buf),
           "GET %s HTTP/1.1\r\nHost: x\r\n"
           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n",
           target);
  return buf;
}

/* Output an endpoint queues outside framing (the 101, its on_handshake's
 * rejection or own answer, the client's request) starts the write timeout
 * from that moment: a tick before the host writes it is no timeout (the
 * stamp was 0, so with the 30 s default any tick on a real clock aborted
 * the connection with "peer read nothing"). */
static void test_write_timeout_from_handshake_output(void **s) {
  (void)s;
  const char *targets[] = {"/ws", "/ws?deny", "/ws?respond"};
  for (size_t i = 0; i < 3; i++) {
    fake_now = 1000000;
    wsmsg_endpoint *ep = wsmsg_endpoint_new();
    wsmsg_server *srv = wsmsg_server_new();
    wsmsg_server_route(srv, "/ws", ep);
    wsmsg_server_set_clock(srv, fake_clock, NULL);
    wsmsg_endpoint_on_handshake(ep, deny_hook);
    defaults_off(ep);
    wsmsg_endpoint_set_write_timeout(ep, 400);
    wsmsg_conn *c = wsmsg_server_accept(srv, NULL);
    fake_now = 1000100;
    const char *req = upgrade(targets[i]);
    (void)wsmsg_conn_recv(c, req, strlen(req));
    int err0 = wsmsg_conn_error(c);
    assert_int_equal(err0, i == 0 ? 0 : WSMSG_ERR_HANDSHAKE);
    assert_true(wsmsg_conn_pending(c, NULL) > 0);
    assert_int_equal(wsmsg_conn_deadline(c), 1000500);
    wsmsg_conn_tick(c, 1000499);
    assert_int_equal(wsmsg_conn_error(c), err0);
    assert_false(wsmsg_conn_done(c));
    assert_true(wsmsg_conn_pending(c, NULL) > 0);
    /* the write stalls from here: then the connection is given up */
    wsmsg_conn_tick(c, 1000500);
    assert_true(wsmsg_conn_done(c));
    if (!err0)
      assert_int_equal(wsmsg_conn_error(c), WSMSG_ERR_TIMEOUT);
    wsmsg_conn_free(c);
    wsmsg_server_free(srv);
    wsmsg_endpoint_free(ep);
  }
  /* the client's request */
  fake_now = 2000000;
  wsmsg_endpoint *ep = wsmsg_endpoint_new();
  wsmsg_endpoint_set_clock(ep, fake_clock, NULL);
  defaults_off(ep);
  wsmsg_endpoint_set_write_timeout(ep, 400);
  wsmsg_conn *c = wsmsg_client_new(ep, "h", "/", NULL);
  assert_true(wsmsg_conn_pending(c, NULL) > 0);
  assert_int_equal(wsmsg_conn_deadline(c), 2000400);
  wsmsg_conn_tick(c, 2000399);
  assert_int_equal(wsmsg_conn_error(c), 0);
  wsmsg_conn_tick(c, 2000400);
  assert_int_equal(wsmsg_conn_error(c), WSMSG_ERR_TIMEOUT);
  wsmsg_conn_free(c);
  wsmsg_endpoint_free(ep);
}

static void test_handshake_timeout(void **s) {
  (void)s;
  fake_now = 100;
  wsmsg_endpoint *ep = wsmsg_endpoint_new();
  wsmsg_server *srv = wsmsg_server_new();
  wsmsg_server_route(srv, "*", ep);
  wsmsg_server_set_clock(srv, fake_clock, NULL);
  wsmsg_server_set_handshake_timeout(srv, 2000);
  defaults_off(ep);
  wsmsg_conn *c = wsmsg_server_accept(srv, NULL);
  assert_int_equal(wsmsg_conn_deadline(c), 2100);
  /* a slowloris: half a request (25 bytes), one byte every 76 ms; the
   * deadline runs from the accept and no byte moves it */
  const char half[] = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (size_t i = 0; i < sizeof(half) - 1; i++) {
    fake_now = 100 + 76 * (i + 1); /* the last at 2000 */
    assert_int_equal(wsmsg_conn_recv(c, half + i, 1), 0);
    wsmsg_conn_tick(c, fake_now);
    assert_int_equal(wsmsg_conn_deadline(c), 2100);
    assert_int_equal(wsmsg_conn_next_deadline(c), (int64_t)(2100 - fake_now));
    assert_int_equal(wsmsg_conn_state(c), WSMSG_STATE_CONNECTING);
  }
  assert_int_equal(fake_now, 2000);
  wsmsg_conn_tick(c, 2099);
  assert_int_equal(wsmsg_conn_state(c), WSMSG_STATE_CONNECTING);
  fake_now = 2100;
  wsmsg_conn_tick(c, 2100);
  assert_int_equal(wsmsg_conn_state(c), WSMSG_STATE_CLOSED);
  assert_int_equal(wsmsg_conn_http_status(c), 408);
  assert_int_equal(wsmsg_conn_error(c), WSMSG_ERR_TIMEOUT);
  const void *b;
  size_t n = wsmsg_conn_pending(c, &b);
  assert_true(n > 0);
  assert_memory_equal(b, "HTTP/1.1 408", 12);
  /* the 408 is never read: dropped one more period later */
  assert_int_equal(wsmsg_conn_deadline(c), 4100);
  wsmsg_conn_tick(c, 4100);
  assert_true(wsmsg_conn_done(c));
  assert_int_equal(wsmsg_conn_deadline(c), -1);
  wsmsg_conn_free(c);
  /* a complete handshake disarms it */
  wsmsg_conn *c2 = wsmsg_server_accept(srv, NULL);
  const char *req = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: "
                    "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                    "\r\n";
  wsmsg_conn_recv(c2, req, strlen(req));
  wsmsg_conn_consume(c2, wsmsg_conn_pending(c2, NULL));
  assert_int_equal(wsmsg_conn_state(c2), WSMSG_STATE_OPEN);
  assert_int_equal(wsmsg_conn_deadline(c2), -1);
  wsmsg_conn_free(c2);
  wsmsg_server_free(srv);
  wsmsg_endpoint_free(ep);
}

static void test_client_handshake_timeout(void **s) {
  (void)s;
  fake_now = 0;
  rec r;
  memset(&r, 0, sizeof(r));
  wsmsg_endpoint *ep = wsmsg_endpoint_new();
  ep_callbacks(ep);
  wsmsg_endpoint_set_clock(ep, fake_clock, NULL);
  wsmsg_endpoint_set_handshake_timeout(ep, 700);
  wsmsg_conn *c = wsmsg_client_new(ep, "h", "/", &r);
  wsmsg_conn_consume(c, wsmsg_conn_pending(c, NULL));
  /* a slow server: part of a response, a byte every 20 ms; the deadline
   * stays where the connection started */
  const char part[] = "HTTP/1.1 101 Switching Protocols\r\n";
  for (size_t i = 0; i < sizeof(part) - 1; i++) {
    fake_now = 10 + 20 * i; /* 10 .. 670 */
    assert_int_equal(wsmsg_conn_recv(c, part + i, 1), 0);
    wsmsg_conn_tick(c, fake_now);
    assert_int_equal(wsmsg_conn_deadline(c), 700);
    assert_int_equal(r.closes, 0);
  }
  wsmsg_conn_tick(c, 699);
  assert_int_equal(r.closes, 0);
  wsmsg_conn_tick(c, 700);
  assert_int_equal(r.closes, 1);
  assert_int_equal(r.close.error, WSMSG_ERR_TIMEOUT);
  assert_int_equal(r.close.code, 1006);
  assert_true(wsmsg_conn_done(c));
  wsmsg_conn_free(c);
  wsmsg_endpoint_free(ep);
  free(r.last);
}

/* Receive timeouts and pings stop once the close handshake started. */
static void set_all(pair *p) {
  clocks(p);
  wsmsg_endpoint_set_receive_timeout(p->sep, 100);
  wsmsg_endpoint_on_timeout(p->sep, on_timeout);
  wsmsg_endpoint_set_ping_interval(p->sep, 100);
  wsmsg_endpoint_set_close_timeout(p->sep, 0);
}

static void test_no_timers_when_closing(void **s) {
  (void)s;
  fake_now = 0;
  timeouts_seen = 0;
  pair p;
  pair_open(&p, set_all);
  wsmsg_close(p.s, 1000, NULL);
  size_t n = wsmsg_conn_pending(p.s, NULL);
  assert_int_equal(wsmsg_conn_deadline(p.s), -1);
  wsmsg_conn_tick(p.s, 100000);
  assert_int_equal(timeouts_seen, 0);
  assert_int_equal(wsmsg_conn_pending(p.s, NULL), n);
  pair_free(&p);
}

/* ---- safe defaults: a host that sets no timer frees stuck peers ---- */

static void only_clocks(pair *p) {
  wsmsg_server_set_clock(p->srv, fake_clock, NULL);
  wsmsg_endpoint_set_clock(p->cep, fake_clock, NULL);
}

/* Keepalive by default: a ping after 20 s of silence, the connection
 * failed with 1011 when its pong is 20 s late. */
static void test_default_keepalive(void **s) {
  (void)s;
  fake_now = 0;
  pair p;
  pair_open(&p, only_clocks);
  assert_int_equal(wsmsg_conn_deadline(p.s), 20000);
  wsmsg_conn_tick(p.s, fake_now = 19999);
  assert_int_equal(wsmsg_conn_pending(p.s, NULL), 0);
  wsmsg_conn_tick(p.s, fake_now = 20000);
  size_t n = wsmsg_conn_pending(p.s, NULL);
  assert_true(n > 0); /* the ping; the peer reads it but never answers */
  wsmsg_conn_consume(p.s, n);
  assert_int_equal(wsmsg_conn_deadline(p.s), 40000);
  wsmsg_conn_tick(p.s, fake_now = 39999);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
  wsmsg_conn_tick(p.s, fake_now = 40000);
  assert_int_equal(pending_close_code(p.s), 1011);
  assert_int_equal(p.sr.close.error, WSMSG_ERR_TIMEOUT);
  pair_free(&p);
}

/* By default an unfinished message must complete within 60 s, however
 * lively the peer is otherwise (its pings keep the keepalive quiet). */
static void test_default_message_timeout(void **s) {
  (void)s;
  fake_now = 0;
  pair p;
  pair_open(&p, only_clocks);
  to_server(&p, 0, 0, 1, "part", 4);
  for (fake_now = 15000; fake_now < 60000; fake_now += 15000) {
    to_server(&p, 1, 0, 9, "x", 1); /* a ping: the peer is alive */
    wsmsg_conn_consume(p.s, wsmsg_conn_pending(p.s, NULL));
    wsmsg_conn_tick(p.s, fake_now);
    assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
  }
  wsmsg_conn_tick(p.s, 59999);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
  wsmsg_conn_tick(p.s, 60000);
  assert_int_equal(pending_close_code(p.s), 1008);
  assert_int_equal(p.sr.close.error, WSMSG_ERR_TIMEOUT);
  assert_string_equal(p.sr.close_detail,
                      "message not completed within 60000 ms");
  pair_free(&p);
}

/* By default output that makes no progress for 30 s aborts the
 * connection (the keepalive ping queued behind it is never answered
 * either, but the write timeout comes first). */
static void test_default_write_timeout(void **s) {
  (void)s;
  fake_now = 0;
  pair p;
  pair_open(&p, only_clocks);
  assert_int_equal(wsmsg_send_text(p.s, "unread", 6), 0);
  wsmsg_conn_tick(p.s, 29999);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
  wsmsg_conn_tick(p.s, 30000);
  assert_true(wsmsg_conn_done(p.s));
  assert_int_equal(p.sr.close.error, WSMSG_ERR_TIMEOUT);
  assert_non_null(strstr(p.sr.close_detail, "peer read nothing"));
  pair_free(&p);
}

/* Finding 1 of issue 20: EOF with output pending used to keep the
 * connection (and its output) as long as the host kept it, with no timer.
 * Now the close timeout is its drain deadline, also through a timer set. */
static void set_drain(pair *p) {
  only_clocks(p);
  wsmsg_endpoint_set_write_timeout(p->sep, 0); /* the drain deadline alone */
}

static void test_eof_drain_deadline(void **s) {
  (void)s;
  fake_now = 0;
  pair p;
  pair_open(&p, set_drain);
  wsmsg_timers *t = wsmsg_timers_new();
  wsmsg_timers_add(t, p.s);
  assert_int_equal(wsmsg_send_text(p.s, "unread", 6), 0);
  fake_now = 1000;
  wsmsg_conn_eof(p.s);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_CLOSED);
  assert_false(wsmsg_conn_done(p.s)); /* kept for a peer that still reads */
  assert_int_equal(wsmsg_conn_deadline(p.s), 11000);
  assert_int_equal(wsmsg_timers_next_ms(t, 1000), 10000);
  assert_null(wsmsg_timers_expire(t, 10999));
  assert_ptr_equal(wsmsg_timers_expire(t, 11000), p.s);
  assert_true(wsmsg_conn_done(p.s));
  assert_int_equal(wsmsg_conn_pending(p.s, NULL), 0);
  assert_int_equal(p.sr.closes, 1);
  assert_int_equal(p.sr.close.error, WSMSG_ERR_EOF);
  wsmsg_timers_free(t);
  pair_free(&p);
  /* EOF with nothing pending: done at once, no timer */
  pair_open(&p, set_drain);
  wsmsg_conn_eof(p.s);
  assert_true(wsmsg_conn_done(p.s));
  assert_int_equal(wsmsg_conn_deadline(p.s), -1);
  pair_free(&p);
}

/* The idle timeout: no data message either way for `ms` -> close 1001. */
static void set_idle(pair *p) {
  clocks(p);
  wsmsg_endpoint_set_idle_timeout(p->sep, 500);
}

static void test_idle_timeout(void **s) {
  (void)s;
  fake_now = 0;
  pair p;
  pair_init(&p, only_clocks);
  assert_int_equal(wsmsg_endpoint_set_idle_timeout(p.cep, 5),
                   WSMSG_ERR_STATE); /* frozen by its connection */
  assert_int_equal(wsmsg_endpoint_set_idle_timeout(NULL, 5),
                   WSMSG_ERR_INVALID_ARG);
  pair_free(&p);
  pair_open(&p, set_idle);
  assert_int_equal(wsmsg_conn_deadline(p.s), 500);
  fake_now = 100;
  wsmsg_send_text(p.c, "in", 2); /* received at 100 */
  pump(&p);
  assert_int_equal(wsmsg_conn_deadline(p.s), 600);
  fake_now = 300;
  wsmsg_send_text(p.s, "out", 3); /* sent at 300 */
  pump(&p);
  assert_int_equal(wsmsg_conn_deadline(p.s), 800);
  fake_now = 400;
  wsmsg_send_ping(p.c, "p", 1); /* control frames do not count */
  pump(&p);
  assert_int_equal(wsmsg_conn_deadline(p.s), 800);
  wsmsg_conn_tick(p.s, fake_now = 799);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
  wsmsg_conn_tick(p.s, fake_now = 800);
  pump(&p);
  assert_int_equal(p.cr.close.code, 1001);
  assert_string_equal(p.cr.close_reason, "idle timeout");
  assert_int_equal(p.sr.close.error, WSMSG_ERR_TIMEOUT);
  assert_true(wsmsg_conn_done(p.s));
  pair_free(&p);
}

/* ---- the timer set ---- */

static void set_rt(pair *p) {
  clocks(p);
  wsmsg_endpoint_set_receive_timeout(p->sep, 1000);
  wsmsg_endpoint_set_timeout_action(p->sep, WSMSG_ON_TIMEOUT_EVENT, NULL);
  wsmsg_endpoint_set_close_timeout(p->sep, 0);
}

static void test_timer_set(void **s) {
  (void)s;
  enum { N = 300 };
  fake_now = 0;
  wsmsg_endpoint *ep = wsmsg_endpoint_new();
  wsmsg_endpoint *cep = wsmsg_endpoint_new();
  wsmsg_server *srv = wsmsg_server_new();
  pair proto;
  memset(&proto, 0, sizeof(proto));
  proto.sep = ep;
  proto.cep = cep;
  proto.srv = srv;
  wsmsg_server_route(srv, "/ws", ep);
  set_rt(&proto);
  wsmsg_timers *t = wsmsg_timers_new();
  assert_int_equal(wsmsg_timers_next_ms(t, 0), -1);
  assert_null(wsmsg_timers_expire(t, 1000000));
  pair ps[N];
  for (int i = 0; i < N; i++) {
    /* connections open at scattered times: deadlines 1000 + perm(i) */
    fake_now = (uint64_t)((i * 7919) % N);
    memset(&ps[i], 0, sizeof(ps[i]));
    ps[i].sep = ep;
    ps[i].cep = cep;
    ps[i].srv = srv;
    ps[i].s = wsmsg_server_accept(srv, NULL);
    ps[i].c = wsmsg_client_new(cep, "h", "/ws", NULL);
    pump(&ps[i]);
    wsmsg_event open_ev; /* no callbacks: drop the OPEN events */
    assert_int_equal(wsmsg_conn_next_event(ps[i].s, &open_ev), 1);
    assert_int_equal(open_ev.type, WSMSG_EV_OPEN);
    assert_int_equal(wsmsg_timers_add(t, ps[i].s), 0);
    assert_int_equal(wsmsg_timers_add(t, ps[i].s), 0); /* idempotent */
  }
  assert_int_equal(wsmsg_timers_count(t), N);
  assert_int_equal(wsmsg_timers_next_ms(t, 0), 1000);
  /* activity on the first 50 moves their deadlines later (lazy) */
  fake_now = 500;
  for (int i = 0; i < 50; i++) {
    wsmsg_send_text(ps[i].c, "x", 1);
    pump(&ps[i]);
    wsmsg_event msg_ev;
    assert_int_equal(wsmsg_conn_next_event(ps[i].s, &msg_ev), 1);
    assert_int_equal(msg_ev.type, WSMSG_EV_TEXT);
  }
  /* expire everything due at 1000 + N: each returned once, in order */
  uint64_t last = 0;
  int fired = 0;
  wsmsg_conn *c;
  while ((c = wsmsg_timers_expire(t, 1000 + N)) != NULL) {
    fired++;
    assert_true(fired <= N);
    uint64_t opened = 0;
    for (int i = 0; i < N; i++)
      if (ps[i].s == c) {
        assert_true(i >= 50); /* the active ones are not due */
        opened = (uint64_t)((i * 7919) % N);
      }
    assert_true(opened + 1000 >= last);
    last = opened + 1000;
    wsmsg_event ev;
    assert_int_equal(wsmsg_conn_next_event(c, &ev), 1);
    assert_int_equal(ev.type, WSMSG_EV_TIMEOUT);
  }
  assert_int_equal(fired, N - 50);
  /* the 50 active ones fire at 1500 */
  assert_null(wsmsg_timers_expire(t, 1499));
  fired = 0;
  while ((c = wsmsg_timers_expire(t, 1500)) != NULL)
    fired++;
  assert_int_equal(fired, 50);
  /* removal and free with members still registered */
  wsmsg_timers_remove(ps[0].s);
  assert_int_equal(wsmsg_timers_count(t), N - 1);
  wsmsg_conn_free(ps[1].s);
  ps[1].s = NULL;
  assert_int_equal(wsmsg_timers_count(t), N - 2);
  wsmsg_timers_free(t);
  for (int i = 0; i < N; i++) {
    wsmsg_conn_free(ps[i].s); /* safe after the set is gone */
    wsmsg_conn_free(ps[i].c);
  }
  wsmsg_server_free(srv);
  wsmsg_endpoint_free(ep);
  wsmsg_endpoint_free(cep);
}

/* Regression: a connection joins the set while connecting (handshake
 * deadline); once the handshake completes, its earlier keepalive deadline
 * must be in the heap. */
static void test_timer_set_rekeys_after_handshake(void **s) {
  (void)s;
  fake_now = 0;
  pair p;
  pair_init(&p, set_keepalive);
  wsmsg_server_set_handshake_timeout(p.srv, 0); /* frozen: no effect */
  wsmsg_timers *t = wsmsg_timers_new();
  wsmsg_timers_add(t, p.s);
  assert_int_equal(wsmsg_timers_next_ms(t, 0), 10000); /* handshake */
  pump(&p);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
  assert_int_equal(wsmsg_timers_next_ms(t, 0), 500); /* ping interval */
  assert_ptr_equal(wsmsg_timers_expire(t, 500), p.s);
  assert_true(wsmsg_conn_pending(p.s, NULL) > 0);
  assert_null(wsmsg_timers_expire(t, 500));
  wsmsg_timers_free(t);
  pair_free(&p);
}

/* Found by fuzz_conn_server: a connection failed outside recv/tick (here a
 * send refused by the CLOSE backpressure policy) computed its deadline for
 * the timer set while still OPEN, so the heap never learnt of the close
 * timeout and the connection was never expired. */
static void set_bp_close(pair *p) {
  clocks(p);
  wsmsg_endpoint_set_close_timeout(p->sep, 250);
  wsmsg_endpoint_set_backpressure(p->sep, 300, 100, WSMSG_BACKPRESSURE_CLOSE);
}

static void test_timer_set_sees_failure_on_send(void **s) {
  (void)s;
  static const char big[200] = {0};
  fake_now = 0;
  pair p;
  pair_open(&p, set_bp_close);
  wsmsg_timers *t = wsmsg_timers_new();
  wsmsg_timers_add(t, p.s);
  assert_int_equal(wsmsg_timers_next_ms(t, 0), -1); /* nothing armed */
  fake_now = 100;
  assert_int_equal(wsmsg_send_binary(p.s, big, sizeof(big)), 0);
  assert_int_equal(wsmsg_send_binary(p.s, big, sizeof(big)),
                   WSMSG_ERR_BACKPRESSURE);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_CLOSED);
  assert_int_equal(wsmsg_conn_deadline(p.s), 350);
  assert_int_equal(wsmsg_timers_next_ms(t, 100), 250);
  assert_null(wsmsg_timers_expire(t, 349));
  assert_ptr_equal(wsmsg_timers_expire(t, 350), p.s);
  assert_true(wsmsg_conn_done(p.s));
  assert_int_equal(p.sr.close.error, WSMSG_ERR_BACKPRESSURE);
  wsmsg_timers_free(t);
  pair_free(&p);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_receive_timeout_boundary),
      cmocka_unit_test(test_default_keepalive),
      cmocka_unit_test(test_default_message_timeout),
      cmocka_unit_test(test_default_write_timeout),
      cmocka_unit_test(test_eof_drain_deadline),
      cmocka_unit_test(test_idle_timeout),
      cmocka_unit_test(test_timeout_actions),
      cmocka_unit_test(test_keepalive),
      cmocka_unit_test(test_ping_without_pong_timeout),
      cmocka_unit_test(test_message_timeout),
      cmocka_unit_test(test_close_timeout),
      cmocka_unit_test(test_write_timeout),
      cmocka_unit_test(test_write_timeout_from_handshake_output),
      cmocka_unit_test(test_handshake_timeout),
      cmocka_unit_test(test_client_handshake_timeout),
      cmocka_unit_test(test_no_timers_when_closing),
      cmocka_unit_test(test_timer_set),
      cmocka_unit_test(test_timer_set_rekeys_after_handshake),
      cmocka_unit_test(test_timer_set_sees_failure_on_send),
  };
  return unit_run("timer", tests, argc, argv);
}
