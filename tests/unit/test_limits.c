/* Limits a hostile peer meets (issue 20): the server-wide memory budget.
 * Every refusal is checked with its close code, its error code, and what
 * the budget counts before and after. */
#include "pair.h"

/* ---- the memory budget ---- */

typedef struct budget_case {
  size_t bytes, share;
} budget_case;
static budget_case bc;

static void set_budget(pair *p) {
  assert_int_equal(wsmsg_server_set_memory_budget(p->srv, bc.bytes, bc.share),
                   0);
}

/* A server connection opened on `srv` (its own client on `cep`). */
static void open_on(pair *base, pair *p) {
  memset(p, 0, sizeof(*p));
  p->srv = base->srv;
  p->sep = base->sep;
  p->cep = base->cep;
  p->s = wsmsg_server_accept(p->srv, &p->sr);
  p->c = wsmsg_client_new(p->cep, "localhost:1", "/ws", &p->cr);
  pump(p);
  assert_int_equal(wsmsg_conn_state(p->s), WSMSG_STATE_OPEN);
}

static void close_on(pair *p) {
  wsmsg_conn_free(p->s);
  wsmsg_conn_free(p->c);
  free(p->sr.last);
  free(p->cr.last);
}

/* The start of a text frame announcing 1,000,000 bytes with its first
 * `n` (zero mask key: the payload as is); hold_more sends `n` more.  The
 * server buffers all of it, waiting for the rest. */
static void hold_more(pair *p, size_t n) {
  uint8_t *pl = malloc(n);
  memset(pl, 'a', n);
  wsmsg_conn_recv(p->s, pl, n);
  free(pl);
}

static void hold(pair *p, size_t n) {
  uint8_t h[14] = {0x81, 0x80 | 127};
  for (int i = 0; i < 8; i++)
    h[2 + i] = (uint8_t)((uint64_t)1000000 >> (56 - 8 * i));
  wsmsg_conn_recv(p->s, h, sizeof(h));
  hold_more(p, n);
}

/* Past the budget, a connection that needs more than its share is closed
 * with 1013 and gives its buffer back; a small client keeps working. */
static void test_budget_receive(void **s) {
  (void)s;
  bc = (budget_case){64 << 10, 16 << 10};
  pair base, a, b, c2;
  pair_init(&base, set_budget); /* base.s/base.c unused */
  wsmsg_conn_free(base.s);
  wsmsg_conn_free(base.c);
  base.s = base.c = NULL;
  assert_int_equal(wsmsg_server_memory_used(base.srv), 0);

  open_on(&base, &a);
  hold(&a, 60 << 10); /* 60 KiB of a message: a 64 KiB buffer */
  assert_int_equal(wsmsg_conn_state(a.s), WSMSG_STATE_OPEN);
  size_t used = wsmsg_server_memory_used(base.srv);
  assert_true(used >= (60u << 10) && used <= (64u << 10) + 4096);

  /* the budget is spent: B's small echo still fits its share */
  open_on(&base, &b);
  b.sr.echo = 1;
  assert_int_equal(wsmsg_send_text(b.c, "small", 5), 0);
  pump(&b);
  assert_int_equal(b.cr.texts, 1);
  assert_int_equal(wsmsg_conn_state(b.s), WSMSG_STATE_OPEN);

  /* C needs more than its share while the server is over the budget */
  open_on(&base, &c2);
  hold(&c2, 40 << 10);
  assert_int_equal(wsmsg_conn_state(c2.s), WSMSG_STATE_CLOSED);
  assert_int_equal(pending_close_code(c2.s), 1013);
  assert_int_equal(c2.sr.close.error, WSMSG_ERR_BUDGET);
  assert_string_equal(c2.sr.close_detail, "server memory budget exhausted");
  /* it gave its message buffer back: only its close frame is held */
  assert_true(wsmsg_server_memory_used(base.srv) <= used + 4096);

  /* A grows further: refused too, and its 64 KiB come back */
  hold_more(&a, 8 << 10); /* the same message grows */
  assert_int_equal(wsmsg_conn_state(a.s), WSMSG_STATE_CLOSED);
  assert_int_equal(a.sr.close.error, WSMSG_ERR_BUDGET);
  assert_true(wsmsg_server_memory_used(base.srv) < 16u << 10);

  close_on(&a);
  close_on(&b);
  close_on(&c2);
  assert_int_equal(wsmsg_server_memory_used(base.srv), 0);
  pair_free(&base);
}

/* The send side: a peer that reads nothing makes its output grow until the
 * budget refuses a send (WSMSG_ERR_BUDGET, close 1013). */
static void test_budget_send(void **s) {
  (void)s;
  bc = (budget_case){64 << 10, 16 << 10};
  pair p;
  pair_open(&p, set_budget);
  static char chunk[10 << 10];
  memset(chunk, 'x', sizeof(chunk));
  int r = 0, sent = 0;
  for (int i = 0; i < 100 && r == 0; i++)
    if ((r = wsmsg_send_binary(p.s, chunk, sizeof(chunk))) == 0)
      sent++;
  assert_int_equal(r, WSMSG_ERR_BUDGET);
  assert_true(sent >= 3 && sent <= 6); /* 64 KiB of buffer at most */
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_CLOSED);
  assert_int_equal(pending_close_code(p.s), 1013);
  assert_int_equal(p.sr.close.error, WSMSG_ERR_BUDGET);
  assert_true(wsmsg_server_memory_used(p.srv) <= 64u << 10);
  /* the peer reads it all: the counter follows the output down */
  pump(&p);
  assert_int_equal(p.cr.binaries, sent);
  assert_int_equal(p.cr.close.code, 1013);
  assert_int_equal(wsmsg_server_memory_used(p.srv), 0);
  pair_free(&p);
}

/* Budget 0 is off; the setters check their arguments and the state. */
static void test_budget_setters(void **s) {
  (void)s;
  wsmsg_server *srv = wsmsg_server_new();
  assert_int_equal(wsmsg_server_set_memory_budget(NULL, 1, 1),
                   WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_server_set_memory_budget(srv, 100, 200),
                   WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_server_set_memory_budget(srv, 0, 200), 0);
  assert_int_equal(wsmsg_server_memory_used(NULL), 0);
  wsmsg_conn *c = wsmsg_server_accept(srv, NULL);
  assert_int_equal(wsmsg_server_set_memory_budget(srv, 1 << 20, 1 << 10),
                   WSMSG_ERR_STATE);
  wsmsg_conn_free(c);
  wsmsg_server_free(srv);
  /* off: nothing is refused */
  bc = (budget_case){0, 0};
  pair p;
  pair_open(&p, set_budget);
  static char chunk[64 << 10];
  for (int i = 0; i < 8; i++)
    assert_int_equal(wsmsg_send_binary(p.s, chunk, sizeof(chunk)), 0);
  assert_true(wsmsg_server_memory_used(p.srv) >= 8u * sizeof(chunk));
  pair_free(&p);
}

/* ---- rate limits (fake clock) ---- */

static uint64_t fake_now;
static uint64_t fake_clock(void *u) {
  (void)u;
  return fake_now;
}

static uint32_t rl_msgs;
static uint64_t rl_bytes;
static int rl_policy;

static void set_rate(pair *p) {
  wsmsg_server_set_clock(p->srv, fake_clock, NULL);
  wsmsg_endpoint_set_clock(p->cep, fake_clock, NULL);
  assert_int_equal(
      wsmsg_endpoint_set_rate_limit(p->sep, rl_msgs, rl_bytes, rl_policy), 0);
}

static void send_n(pair *p, int n, size_t len) {
  static char buf[4096];
  memset(buf, 'm', sizeof(buf));
  for (int i = 0; i < n; i++)
    wsmsg_send_text(p->c, buf, len);
  pump(p);
}

static void test_rate_limit_close(void **s) {
  (void)s;
  fake_now = 1000;
  rl_msgs = 5, rl_bytes = 0, rl_policy = WSMSG_LIMIT_CLOSE;
  pair p;
  pair_open(&p, set_rate);
  send_n(&p, 5, 10); /* a burst of one second's worth */
  assert_int_equal(p.sr.texts, 5);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
  send_n(&p, 1, 10);
  assert_int_equal(p.sr.texts, 5);
  assert_int_equal(p.cr.close.code, 1008);
  assert_int_equal(p.sr.close.error, WSMSG_ERR_RATE_LIMIT);
  assert_non_null(strstr(p.sr.close_detail, "rate limit exceeded"));
  pair_free(&p);
}

static void test_rate_limit_drop_refill(void **s) {
  (void)s;
  fake_now = 1000;
  rl_msgs = 2, rl_bytes = 0, rl_policy = WSMSG_LIMIT_DROP;
  pair p;
  pair_open(&p, set_rate);
  send_n(&p, 3, 10);
  assert_int_equal(p.sr.texts, 2); /* the third dropped */
  fake_now = 1499;
  send_n(&p, 1, 10);
  assert_int_equal(p.sr.texts, 2); /* 0.998 of a message refilled */
  fake_now = 1500;                 /* 1 refilled since 1000 (1 ms kept) */
  send_n(&p, 2, 10);
  assert_int_equal(p.sr.texts, 3);
  fake_now = 5000; /* full again, not more than full */
  send_n(&p, 3, 10);
  assert_int_equal(p.sr.texts, 5);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
  pair_free(&p);
}

static void test_rate_limit_bytes(void **s) {
  (void)s;
  fake_now = 1000;
  rl_msgs = 0, rl_bytes = 1000, rl_policy = WSMSG_LIMIT_CLOSE;
  pair p;
  pair_open(&p, set_rate);
  send_n(&p, 1, 2000); /* bigger than a second's worth: a full bucket */
  assert_int_equal(p.sr.texts, 1);
  fake_now = 1600; /* 600 bytes refilled */
  send_n(&p, 1, 600);
  assert_int_equal(p.sr.texts, 2);
  send_n(&p, 1, 1);
  assert_int_equal(p.sr.texts, 2);
  assert_int_equal(p.cr.close.code, 1008);
  assert_int_equal(p.sr.close.error, WSMSG_ERR_RATE_LIMIT);
  pair_free(&p);
  /* the setter checks the policy and the state */
  wsmsg_endpoint *ep = wsmsg_endpoint_new();
  assert_int_equal(wsmsg_endpoint_set_rate_limit(ep, 1, 1, 7),
                   WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_endpoint_set_rate_limit(NULL, 1, 1, 0),
                   WSMSG_ERR_INVALID_ARG);
  wsmsg_endpoint_free(ep);
}

/* ---- JSON endpoints: invalid-message limit, default size ---- */

static int jsons;
static void on_json(wsmsg_conn *c, json_t *doc, void *u) {
  (void)c, (void)doc, (void)u;
  jsons++;
}

static uint32_t inv_count, inv_window;
static void set_json_inv(pair *p) {
  wsmsg_endpoint_on_json(p->sep, on_json);
  wsmsg_server_set_clock(p->srv, fake_clock, NULL);
  wsmsg_endpoint_set_clock(p->cep, fake_clock, NULL);
  assert_int_equal(wsmsg_endpoint_set_json(p->sep, 1), 0);
  assert_int_equal(
      wsmsg_endpoint_set_invalid_limit(p->sep, inv_count, inv_window), 0);
}

static void send_str(pair *p, const char *s) {
  wsmsg_send_text(p->c, s, strlen(s));
  pump(p);
}

/* Finding 6: a flood of small invalid messages was answered message for
 * message, each reply ~30 times the input. */
static void test_invalid_limit(void **s) {
  (void)s;
  fake_now = 0;
  inv_count = 3, inv_window = 1000;
  pair p;
  pair_open(&p, set_json_inv);
  for (int i = 0; i < 3; i++)
    send_str(&p, "{");
  assert_int_equal(p.cr.texts, 3); /* three error replies */
  fake_now = 999;
  send_str(&p, "{");
  assert_int_equal(p.cr.texts, 3); /* the fourth is not answered */
  assert_int_equal(p.cr.close.code, 1008);
  assert_int_equal(p.sr.close.error, WSMSG_ERR_RATE_LIMIT);
  assert_non_null(strstr(p.cr.close_reason, "too many invalid messages"));
  pair_free(&p);
  /* a new window starts afresh; valid messages do not count */
  fake_now = 0;
  pair_open(&p, set_json_inv);
  for (int i = 0; i < 3; i++)
    send_str(&p, "[");
  send_str(&p, "{}");
  fake_now = 1000;
  for (int i = 0; i < 3; i++)
    send_str(&p, "[");
  assert_int_equal(p.cr.texts, 6);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
  pair_free(&p);
  /* the setter */
  wsmsg_endpoint *ep = wsmsg_endpoint_new();
  assert_int_equal(wsmsg_endpoint_set_invalid_limit(ep, 1, 0),
                   WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_endpoint_set_invalid_limit(ep, 0, 0), 0);
  wsmsg_endpoint_free(ep);
}

static void test_invalid_limit_default(void **s) {
  (void)s;
  pair p;
  pair_init(&p, NULL);
  wsmsg_endpoint_on_json(p.sep, on_json);
  pump(&p);
  for (int i = 0; i < 32; i++)
    send_str(&p, "x");
  assert_int_equal(p.cr.texts, 32);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
  send_str(&p, "x");
  assert_int_equal(p.cr.close.code, 1008);
  pair_free(&p);
}

/* JSON endpoints take 64 KiB messages by default (one worst-case parse in
 * low milliseconds); a size the application set stays. */
static size_t json_max;
static void set_json_size(pair *p) {
  wsmsg_endpoint_on_json(p->sep, on_json);
  if (json_max)
    wsmsg_endpoint_set_max_message_size(p->sep, json_max);
  wsmsg_endpoint_set_json(p->sep, 1);
}

static void test_json_default_size(void **s) {
  (void)s;
  size_t n = (64u << 10) + 1;
  char *big = malloc(n + 1);
  memset(big, ' ', n);
  big[0] = '[';
  big[n - 1] = ']';
  big[n] = 0;
  pair p;
  json_max = 0;
  jsons = 0;
  pair_open(&p, set_json_size);
  send_str(&p, big);
  assert_int_equal(p.cr.close.code, 1009);
  pair_free(&p);
  json_max = 1 << 20; /* set before the endpoint became a JSON one */
  pair_open(&p, set_json_size);
  send_str(&p, big);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
  assert_int_equal(jsons, 1);
  pair_free(&p);
  /* 64 KiB exactly passes */
  big[n - 2] = ']';
  big[n - 1] = 0;
  json_max = 0;
  pair_open(&p, set_json_size);
  send_str(&p, big);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
  pair_free(&p);
  free(big);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_budget_receive),
      cmocka_unit_test(test_budget_send),
      cmocka_unit_test(test_budget_setters),
      cmocka_unit_test(test_rate_limit_close),
      cmocka_unit_test(test_rate_limit_drop_refill),
      cmocka_unit_test(test_rate_limit_bytes),
      cmocka_unit_test(test_invalid_limit),
      cmocka_unit_test(test_invalid_limit_default),
      cmocka_unit_test(test_json_default_size),
  };
  return unit_run("limits", tests, argc, argv);
}
