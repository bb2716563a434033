/* Topics (publish/subscribe), the server's registry of connections and
 * graceful drain: lib/topic.c and lib/registry.c. */
#include <pthread.h>

#include "internal.h" /* the pool's buffers, directly */
#include "pair.h"

/* ---- many clients on one server ---- */

typedef struct peer {
  wsmsg_conn *s, *c;
  rec sr, cr;
} peer;

typedef struct hub {
  wsmsg_endpoint *sep, *cep;
  wsmsg_server *srv;
  peer *p;
  size_t n;
} hub;

/* Counting allocator for the server: how many allocations happen while a
 * publish runs. */
static _Thread_local size_t n_allocs;
static void *count_malloc(size_t n, void *u) {
  (void)u;
  n_allocs++;
  return malloc(n);
}
static void count_free(void *q, void *u) {
  (void)u;
  free(q);
}
static void *count_realloc(void *q, size_t n, void *u) {
  (void)u;
  n_allocs++;
  return realloc(q, n);
}
static const wsmsg_mem counting_mem = {NULL, count_malloc, count_free,
                                       count_realloc};

static void hub_init(hub *h, size_t n, void (*setup)(hub *)) {
  memset(h, 0, sizeof(*h));
  h->sep = wsmsg_endpoint_new();
  h->cep = wsmsg_endpoint_new();
  h->srv = wsmsg_server_new_mem(&counting_mem);
  assert_non_null(h->srv);
  ep_callbacks(h->sep);
  ep_callbacks(h->cep);
  assert_int_equal(wsmsg_server_route(h->srv, "/ws", h->sep), 0);
  if (setup)
    setup(h);
  h->p = calloc(n, sizeof(peer));
  h->n = n;
  for (size_t i = 0; i < n; i++) {
    peer *p = &h->p[i];
    p->s = wsmsg_server_accept(h->srv, &p->sr);
    p->c = wsmsg_client_new(h->cep, "localhost:1", "/ws", &p->cr);
    assert_non_null(p->s);
    assert_non_null(p->c);
    for (int k = 0; k < 10; k++)
      if (!pump1(p->c, p->s, 0) && !pump1(p->s, p->c, 0))
        break;
    assert_int_equal(wsmsg_conn_state(p->s), WSMSG_STATE_OPEN);
  }
}

/* Deliver what each server connection has pending to its client. */
static void hub_flush(hub *h) {
  for (size_t i = 0; i < h->n; i++) {
    peer *p = &h->p[i];
    for (int k = 0; k < 10; k++)
      if (!pump1(p->s, p->c, 0) && !pump1(p->c, p->s, 0))
        break;
  }
}

static void hub_free(hub *h) {
  for (size_t i = 0; i < h->n; i++) {
    wsmsg_conn_free(h->p[i].s);
    wsmsg_conn_free(h->p[i].c);
    free(h->p[i].sr.last);
    free(h->p[i].cr.last);
  }
  free(h->p);
  wsmsg_server_free(h->srv);
  wsmsg_endpoint_free(h->sep);
  wsmsg_endpoint_free(h->cep);
}

/* ---- topics ---- */

static void test_publish_reaches_subscribers_once(void **state) {
  (void)state;
  hub h;
  hub_init(&h, 10, NULL);
  wsmsg_topics *t = wsmsg_topics_new();
  assert_non_null(t);
  for (size_t i = 0; i < 10; i += 2) /* the even ones */
    assert_int_equal(wsmsg_topic_subscribe(t, h.p[i].s, "room"), 0);
  assert_int_equal(wsmsg_topic_subscribe(t, h.p[0].s, "room"), 1);
  assert_int_equal(wsmsg_topic_subscribe(t, h.p[1].s, "other"), 0);
  assert_int_equal(wsmsg_topic_subscribers(t, "room"), 5);
  assert_int_equal(wsmsg_topics_count(t), 2);
  assert_true(wsmsg_topic_is_subscribed(t, h.p[2].s, "room"));
  assert_false(wsmsg_topic_is_subscribed(t, h.p[3].s, "room"));
  assert_int_equal(wsmsg_topic_publish(t, "room", WSMSG_EV_TEXT, "hi", 2, 0),
                   5);
  assert_int_equal(wsmsg_topic_publish(t, "nobody", WSMSG_EV_TEXT, "x", 1, 0),
                   0);
  hub_flush(&h);
  for (size_t i = 0; i < 10; i++) {
    assert_int_equal(h.p[i].cr.texts, i % 2 == 0 ? 1 : 0);
    if (i % 2 == 0)
      assert_memory_equal(h.p[i].cr.last, "hi", 2);
  }
  /* binary, and unsubscribe */
  assert_int_equal(wsmsg_topic_unsubscribe(t, h.p[4].s, "room"), 0);
  assert_int_equal(wsmsg_topic_unsubscribe(t, h.p[4].s, "room"),
                   WSMSG_ERR_NOT_FOUND);
  assert_int_equal(wsmsg_topic_unsubscribe(t, h.p[4].s, "nope"),
                   WSMSG_ERR_NOT_FOUND);
  assert_int_equal(
      wsmsg_topic_publish(t, "room", WSMSG_EV_BINARY, "\x00\x01", 2, 0), 4);
  hub_flush(&h);
  for (size_t i = 0; i < 10; i += 2)
    assert_int_equal(h.p[i].cr.binaries, i == 4 ? 0 : 1);
  assert_int_equal(h.p[1].cr.binaries, 0);
  assert_int_equal(wsmsg_conn_topic_count(h.p[1].s), 1);
  assert_int_equal(wsmsg_conn_topic_count(h.p[4].s), 0);
  wsmsg_topics_free(t);
  assert_int_equal(wsmsg_conn_topic_count(h.p[1].s), 0);
  hub_free(&h);
}

static void test_topic_bad_args(void **state) {
  (void)state;
  pair p;
  pair_open(&p, NULL);
  wsmsg_topics *t = wsmsg_topics_new();
  assert_int_equal(wsmsg_topic_subscribe(NULL, p.s, "a"),
                   WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_topic_subscribe(t, NULL, "a"), WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_topic_subscribe(t, p.s, NULL), WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_topic_unsubscribe(t, p.s, NULL),
                   WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_topic_publish(t, "a", 99, "x", 1, 0),
                   WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_topic_publish(t, "a", WSMSG_EV_TEXT, NULL, 1, 0),
                   WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_topic_publish(t, "a", WSMSG_EV_TEXT, "x", 1, 4),
                   WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_topic_publish(t, NULL, WSMSG_EV_TEXT, "x", 1, 0),
                   WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_topic_publish(t, "a", WSMSG_EV_TEXT, "\xff", 1, 0),
                   WSMSG_ERR_UTF8);
  assert_int_equal(wsmsg_topic_publish_json(t, "a", NULL, 0),
                   WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_topics_on_publish(NULL, NULL, NULL),
                   WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_topic_subscribers(NULL, "a"), 0);
  assert_int_equal(wsmsg_topic_is_subscribed(t, NULL, "a"), 0);
  assert_int_equal(wsmsg_topics_count(NULL), 0);
  /* a client connection that is not open yet, and one that is closing */
  wsmsg_conn *fresh = wsmsg_client_new(p.cep, "h:1", "/ws", NULL);
  assert_int_equal(wsmsg_topic_subscribe(t, fresh, "a"), WSMSG_ERR_STATE);
  wsmsg_conn_free(fresh);
  assert_int_equal(wsmsg_close(p.s, 1000, "bye"), 0);
  assert_int_equal(wsmsg_topic_subscribe(t, p.s, "a"), WSMSG_ERR_CLOSED);
  assert_int_equal(wsmsg_topics_count(t), 0);
  wsmsg_topics_free(t);
  wsmsg_topics_free(NULL);
  pair_free(&p);
}

/* A connection leaves its topics when it closes (after on_close) and when
 * it is freed. */
static int topics_in_on_close = -1;
static void on_close_count_topics(wsmsg_conn *c, const wsmsg_close_info *ci,
                                  void *u) {
  topics_in_on_close = (int)wsmsg_conn_topic_count(c);
  cb_close(c, ci, u);
}
static void setup_count_close(hub *h) {
  wsmsg_endpoint_on_close(h->sep, on_close_count_topics);
}

static void test_close_and_free_drop_topics(void **state) {
  (void)state;
  hub h;
  hub_init(&h, 3, setup_count_close);
  wsmsg_topics *t = wsmsg_topics_new();
  for (size_t i = 0; i < 3; i++) {
    assert_int_equal(wsmsg_topic_subscribe(t, h.p[i].s, "a"), 0);
    assert_int_equal(wsmsg_topic_subscribe(t, h.p[i].s, "b"), 0);
  }
  /* the client of #0 closes: the server side leaves both topics */
  assert_int_equal(wsmsg_close(h.p[0].c, 1000, "bye"), 0);
  hub_flush(&h);
  assert_int_equal(h.p[0].sr.closes, 1);
  assert_int_equal(topics_in_on_close, 2); /* still there in on_close */
  assert_int_equal(wsmsg_conn_topic_count(h.p[0].s), 0);
  assert_int_equal(wsmsg_topic_subscribers(t, "a"), 2);
  /* #1 is freed while open */
  wsmsg_conn_free(h.p[1].s);
  h.p[1].s = NULL;
  assert_int_equal(wsmsg_topic_subscribers(t, "a"), 1);
  assert_int_equal(wsmsg_topic_subscribers(t, "b"), 1);
  /* #2 aborted: the topics go away with it */
  wsmsg_conn_abort(h.p[2].s);
  assert_int_equal(wsmsg_topic_subscribers(t, "a"), 0);
  assert_int_equal(wsmsg_topics_count(t), 0);
  assert_int_equal(wsmsg_topic_publish(t, "a", WSMSG_EV_TEXT, "x", 1, 0), 0);
  wsmsg_topics_free(t);
  hub_free(&h);
}

/* The publish hook sees local publishes once, never remote ones. */
typedef struct hook_rec {
  int calls;
  char topic[32];
  char data[64];
  size_t len;
  int type;
  int nested;
} hook_rec;
static void on_publish(wsmsg_topics *t, const char *topic, int type,
                       const void *data, size_t len, void *user) {
  hook_rec *r = user;
  r->calls++;
  snprintf(r->topic, sizeof(r->topic), "%s", topic);
  memcpy(r->data, data, len < sizeof(r->data) ? len : sizeof(r->data));
  r->len = len;
  r->type = type;
  /* publishing from the hook would loop: refused */
  r->nested = (int)wsmsg_topic_publish(t, topic, type, data, len, 0);
}

/* The hook may subscribe and unsubscribe (the publish's recipients are
 * settled by then): the documented rule, held. */
typedef struct sub_rec {
  wsmsg_conn *join, *leave;
  int sub, unsub;
} sub_rec;
static void on_publish_subscribes(wsmsg_topics *t, const char *topic, int type,
                                  const void *data, size_t len, void *user) {
  (void)type, (void)data, (void)len;
  sub_rec *r = user;
  r->sub = wsmsg_topic_subscribe(t, r->join, topic);
  r->unsub = wsmsg_topic_unsubscribe(t, r->leave, topic);
}

static void test_publish_hook_may_subscribe(void **state) {
  (void)state;
  hub h;
  hub_init(&h, 2, NULL);
  wsmsg_topics *t = wsmsg_topics_new();
  sub_rec r = {h.p[1].s, h.p[0].s, -99, -99};
  assert_int_equal(wsmsg_topics_on_publish(t, on_publish_subscribes, &r), 0);
  assert_int_equal(wsmsg_topic_subscribe(t, h.p[0].s, "news"), 0);
  assert_int_equal(wsmsg_topic_publish(t, "news", WSMSG_EV_TEXT, "a", 1, 0), 1);
  assert_int_equal(r.sub, 0);
  assert_int_equal(r.unsub, 0);
  assert_false(wsmsg_topic_is_subscribed(t, h.p[0].s, "news"));
  assert_true(wsmsg_topic_is_subscribed(t, h.p[1].s, "news"));
  /* the next publish reaches the one who joined, not the one who left */
  wsmsg_topics_on_publish(t, NULL, NULL);
  assert_int_equal(wsmsg_topic_publish(t, "news", WSMSG_EV_TEXT, "b", 1, 0), 1);
  hub_flush(&h);
  assert_int_equal(h.p[0].cr.texts, 1);
  assert_int_equal(h.p[1].cr.texts, 1);
  wsmsg_topics_free(t);
  hub_free(&h);
}

static void test_publish_hook_local_only(void **state) {
  (void)state;
  hub h;
  hub_init(&h, 2, NULL);
  wsmsg_topics *t = wsmsg_topics_new();
  hook_rec r = {0};
  assert_int_equal(wsmsg_topics_on_publish(t, on_publish, &r), 0);
  assert_int_equal(wsmsg_topic_subscribe(t, h.p[0].s, "news"), 0);
  assert_int_equal(wsmsg_topic_publish(t, "news", WSMSG_EV_TEXT, "a", 1, 0), 1);
  assert_int_equal(r.calls, 1);
  assert_string_equal(r.topic, "news");
  assert_int_equal(r.type, WSMSG_EV_TEXT);
  assert_int_equal(r.nested, WSMSG_ERR_STATE);
  /* from the bus: delivered locally, not handed back to the hook */
  assert_int_equal(wsmsg_topic_publish(t, "news", WSMSG_EV_TEXT, "b", 1,
                                       WSMSG_PUBLISH_REMOTE),
                   1);
  assert_int_equal(r.calls, 1);
  /* a topic without local subscribers still goes to the bus */
  assert_int_equal(
      wsmsg_topic_publish(t, "elsewhere", WSMSG_EV_BINARY, "c", 1, 0), 0);
  assert_int_equal(r.calls, 2);
  assert_int_equal(r.type, WSMSG_EV_BINARY);
  /* JSON arrives serialized once, as text */
  json_t *j = json_pack("{s:s,s:i}", "type", "said", "id", 7);
  assert_int_equal(wsmsg_topic_publish_json(t, "news", j, 0), 1);
  assert_int_equal(r.calls, 3);
  assert_int_equal(r.type, WSMSG_EV_TEXT);
  assert_int_equal(r.len, strlen("{\"type\":\"said\",\"id\":7}"));
  assert_memory_equal(r.data, "{\"type\":\"said\",\"id\":7}", r.len);
  json_decref(j);
  hub_flush(&h);
  assert_int_equal(h.p[0].cr.texts, 3);
  assert_int_equal(h.p[1].cr.texts, 0);
  wsmsg_topics_free(t);
  hub_free(&h);
}

static void test_publish_json_large(void **state) {
  (void)state;
  hub h;
  hub_init(&h, 3, NULL);
  wsmsg_topics *t = wsmsg_topics_new();
  for (size_t i = 0; i < 3; i++)
    wsmsg_topic_subscribe(t, h.p[i].s, "big");
  char *s = malloc(10001);
  memset(s, 'x', 10000);
  s[10000] = 0;
  json_t *j = json_pack("{s:s}", "text", s);
  assert_int_equal(wsmsg_topic_publish_json(t, "big", j, 0), 3);
  hub_flush(&h);
  for (size_t i = 0; i < 3; i++) {
    assert_int_equal(h.p[i].cr.texts, 1);
    assert_int_equal(h.p[i].cr.last_len, 10000 + strlen("{\"text\":\"\"}"));
  }
  json_decref(j);
  free(s);
  wsmsg_topics_free(t);
  hub_free(&h);
}

/* No allocation per recipient: once the output buffers came back to the
 * server's pool, publishing to 200 subscribers allocates nothing. */
static void test_publish_allocates_nothing_per_recipient(void **state) {
  (void)state;
  hub h;
  hub_init(&h, 200, NULL);
  wsmsg_topics *t = wsmsg_topics_new();
  for (size_t i = 0; i < 200; i++)
    wsmsg_topic_subscribe(t, h.p[i].s, "all");
  char msg[100];
  memset(msg, 'm', sizeof(msg));
  assert_int_equal(
      wsmsg_topic_publish(t, "all", WSMSG_EV_TEXT, msg, sizeof(msg), 0), 200);
  hub_flush(&h);
  for (int round = 0; round < 3; round++) {
    n_allocs = 0;
    assert_int_equal(
        wsmsg_topic_publish(t, "all", WSMSG_EV_TEXT, msg, sizeof(msg), 0), 200);
    assert_int_equal(n_allocs, 0);
    hub_flush(&h);
  }
  for (size_t i = 0; i < 200; i++)
    assert_int_equal(h.p[i].cr.texts, 4);
  wsmsg_topics_free(t);
  hub_free(&h);
}

/* A publish takes its recipients' output buffers from the pool a batch at
 * a time: the batch's unused buffers go back to the pool (not freed, not
 * leaked), so the next publish still allocates nothing, and once every
 * connection is gone nothing the server allocated is left. */
static _Thread_local long n_live; /* blocks allocated and not freed */
static void *live_malloc(size_t n, void *u) {
  (void)u;
  n_allocs++;
  n_live++;
  return malloc(n);
}
static void live_free(void *q, void *u) {
  (void)u;
  if (q)
    n_live--;
  free(q);
}
static void *live_realloc(void *q, size_t n, void *u) {
  (void)u;
  n_allocs++;
  if (!q)
    n_live++;
  return realloc(q, n);
}
static const wsmsg_mem live_mem = {NULL, live_malloc, live_free, live_realloc};

static void test_publish_batch_returns_buffers(void **state) {
  (void)state;
  n_live = 0;
  hub h;
  memset(&h, 0, sizeof(h));
  /* hub_init with a server on the live-counting allocator */
  h.sep = wsmsg_endpoint_new();
  h.cep = wsmsg_endpoint_new();
  h.srv = wsmsg_server_new_mem(&live_mem);
  ep_callbacks(h.sep);
  ep_callbacks(h.cep);
  assert_int_equal(wsmsg_server_route(h.srv, "/ws", h.sep), 0);
  h.n = 40;
  h.p = calloc(h.n, sizeof(peer));
  for (size_t i = 0; i < h.n; i++) {
    peer *p = &h.p[i];
    p->s = wsmsg_server_accept(h.srv, &p->sr);
    p->c = wsmsg_client_new(h.cep, "localhost:1", "/ws", &p->cr);
    for (int k = 0; k < 10; k++)
      if (!pump1(p->c, p->s, 0) && !pump1(p->s, p->c, 0))
        break;
    assert_int_equal(wsmsg_conn_state(p->s), WSMSG_STATE_OPEN);
  }
  wsmsg_topics *t = wsmsg_topics_new();
  for (size_t i = 0; i < h.n; i++)
    wsmsg_topic_subscribe(t, h.p[i].s, "r");
  char msg[100];
  memset(msg, 'b', sizeof(msg));
  /* warm: 40 buffers come back to the pool */
  assert_int_equal(
      wsmsg_topic_publish(t, "r", WSMSG_EV_TEXT, msg, sizeof(msg), 0), 40);
  hub_flush(&h);
  /* every other subscriber is closing (can send nothing; its close frame
   * written, so its buffer is back in the pool too): the batch taken for
   * "the recipients left" has buffers the publish does not use */
  for (size_t i = 0; i < h.n; i += 2) {
    assert_int_equal(wsmsg_close(h.p[i].s, 1000, ""), 0);
    const void *q;
    wsmsg_conn_consume(h.p[i].s, wsmsg_conn_pending(h.p[i].s, &q));
  }
  long live0 = n_live; /* the pool's buffers are among them */
  for (int round = 0; round < 3; round++) {
    n_allocs = 0;
    assert_int_equal(
        wsmsg_topic_publish(t, "r", WSMSG_EV_TEXT, msg, sizeof(msg), 0), 20);
    assert_int_equal(n_allocs, 0);
    for (size_t i = 1; i < h.n; i += 2)
      pump1(h.p[i].s, h.p[i].c, 0);
    assert_int_equal(n_live, live0); /* none freed, none lost */
  }
  for (size_t i = 1; i < h.n; i += 2)
    assert_int_equal(h.p[i].cr.texts, 4);
  wsmsg_topics_free(t);
  hub_free(&h);
  assert_int_equal(n_live, 0);
}

/* The pool keeps its buffers on a stack whose room is made when a buffer
 * is allocated: giving buffers back never allocates (so never fails), a
 * failed allocation of that room is the buffer's own allocation failing,
 * the pool holds at most 8 MiB, and destroying it frees everything. */
static long pfail_after = -1; /* allocations left before they fail; -1: off */
static void *pfail_malloc(size_t n, void *u) {
  if (pfail_after == 0)
    return NULL;
  if (pfail_after > 0)
    pfail_after--;
  return live_malloc(n, u);
}
static void *pfail_realloc(void *q, size_t n, void *u) {
  if (pfail_after == 0)
    return NULL;
  if (pfail_after > 0)
    pfail_after--;
  return live_realloc(q, n, u);
}
static const wsmsg_mem pfail_mem = {NULL, pfail_malloc, live_free,
                                    pfail_realloc};

static void test_pool_put_never_allocates(void **state) {
  (void)state;
  enum { N = 40000 }; /* 40,000 x 256 B: more than the pool keeps */
  n_live = 0;
  wsm_pool pool;
  wsm_pool_init(&pool, &pfail_mem);
  wsm_buf *b = calloc(N, sizeof(*b));
  for (size_t i = 0; i < N; i++)
    assert_int_equal(wsm_pbuf_reserve(&b[i], &pool, 100), 0);
  assert_int_equal(b[0].cap, 256);
  n_allocs = 0;
  for (size_t i = 0; i < N; i++)
    wsm_pbuf_release(&b[i], &pool);
  assert_int_equal(n_allocs, 0);
  assert_int_equal(pool.pooled_bytes, 8u << 20); /* the rest was freed */
  /* taken again: from the pool, then new ones */
  n_allocs = 0;
  for (size_t i = 0; i < 100; i++)
    assert_int_equal(wsm_pbuf_reserve(&b[i], &pool, 100), 0);
  assert_int_equal(n_allocs, 0);
  for (size_t i = 0; i < 100; i++)
    wsm_pbuf_release(&b[i], &pool);
  /* every allocation failing in turn: reserve fails cleanly or works */
  for (long k = 0; k < 4; k++) {
    wsm_pool q;
    wsm_pool_init(&q, &pfail_mem);
    pfail_after = k;
    wsm_buf x = {0};
    int r = wsm_pbuf_reserve(&x, &q, 100);
    pfail_after = -1;
    if (r) {
      assert_int_equal(r, WSMSG_ERR_NOMEM);
      assert_null(x.p);
    } else {
      assert_true(k >= 2); /* the stack's room, then the buffer */
    }
    wsm_pbuf_release(&x, &q);
    wsm_pool_destroy(&q);
  }
  wsm_pool_destroy(&pool);
  free(b);
  assert_int_equal(n_live, 0);
}

/* The memory budget holds inside one publish: the recipients' growth is
 * counted in batches, and each admission sees what the publish already
 * took.  Budget 80 KiB + 512 B, share 256 B, a 600-byte message (a 1 KiB
 * output buffer each): exactly 80 of 100 subscribers get it, the other 20
 * are closed with 1013, and the server's count is exact afterwards. */
static void setup_budget(hub *h) {
  assert_int_equal(wsmsg_server_set_memory_budget(h->srv, 80 * 1024 + 512, 256),
                   0);
}

static void test_publish_within_budget(void **state) {
  (void)state;
  hub h;
  hub_init(&h, 100, setup_budget);
  wsmsg_topics *t = wsmsg_topics_new();
  for (size_t i = 0; i < h.n; i++)
    wsmsg_topic_subscribe(t, h.p[i].s, "r");
  assert_int_equal(wsmsg_server_memory_used(h.srv), 0);
  char msg[600];
  memset(msg, 'q', sizeof(msg));
  assert_int_equal(
      wsmsg_topic_publish(t, "r", WSMSG_EV_TEXT, msg, sizeof(msg), 0), 80);
  /* what the 80 hold is counted (none of it left in a batch) */
  assert_true(wsmsg_server_memory_used(h.srv) >= 80 * 1024);
  size_t refused = 0;
  for (size_t i = 0; i < h.n; i++)
    if (h.p[i].sr.closes) {
      refused++;
      assert_int_equal(h.p[i].sr.close.error, WSMSG_ERR_BUDGET);
      assert_int_equal(pending_close_code(h.p[i].s), 1013);
    }
  assert_int_equal(refused, 20);
  assert_int_equal(wsmsg_topic_subscribers(t, "r"), 80);
  hub_flush(&h);
  size_t got = 0;
  for (size_t i = 0; i < h.n; i++)
    got += (size_t)h.p[i].cr.texts;
  assert_int_equal(got, 80);
  /* all output taken: nothing held, nothing counted */
  assert_int_equal(wsmsg_server_memory_used(h.srv), 0);
  /* the next publish fits again */
  assert_int_equal(
      wsmsg_topic_publish(t, "r", WSMSG_EV_TEXT, msg, sizeof(msg), 0), 80);
  hub_flush(&h);
  assert_int_equal(wsmsg_server_memory_used(h.srv), 0);
  wsmsg_topics_free(t);
  hub_free(&h);
}

/* The write timeout: a publish reads the clock once (not once per
 * recipient) and arms every recipient's write timeout from then; output
 * taken to the end disarms it, and the next publish arms it afresh; a
 * partial write moves it. */
static uint64_t fake_now;
static unsigned clock_reads;
static uint64_t fake_clock(void *u) {
  (void)u;
  clock_reads++;
  return fake_now;
}
static void setup_fake_clock(hub *h) {
  wsmsg_server_set_clock(h->srv, fake_clock, NULL);
  wsmsg_endpoint_set_clock(h->cep, fake_clock, NULL);
  wsmsg_endpoint_set_write_timeout(h->sep, 5000);
}

static void test_publish_arms_write_timeout(void **state) {
  (void)state;
  fake_now = 1000;
  hub h;
  hub_init(&h, 50, setup_fake_clock);
  wsmsg_topics *t = wsmsg_topics_new();
  for (size_t i = 0; i < h.n; i++)
    wsmsg_topic_subscribe(t, h.p[i].s, "r");
  fake_now = 2000;
  clock_reads = 0;
  assert_int_equal(wsmsg_topic_publish(t, "r", WSMSG_EV_TEXT, "a", 1, 0), 50);
  assert_int_equal(clock_reads, 1);
  for (size_t i = 0; i < h.n; i++)
    assert_int_equal(wsmsg_conn_deadline(h.p[i].s), 2000 + 5000);
  /* all taken: the write timeout is off; a publish at 4000 arms it from
   * 4000 (not from 2000) */
  hub_flush(&h);
  fake_now = 4000;
  clock_reads = 0;
  assert_int_equal(wsmsg_topic_publish(t, "r", WSMSG_EV_TEXT, "b", 1, 0), 50);
  assert_int_equal(clock_reads, 1);
  assert_int_equal(wsmsg_conn_deadline(h.p[7].s), 4000 + 5000);
  /* #0 writes part of its frame at 5000: the timeout runs from there */
  fake_now = 5000;
  const void *q;
  assert_true(wsmsg_conn_pending(h.p[0].s, &q) > 1);
  wsmsg_conn_consume(h.p[0].s, 1);
  assert_int_equal(wsmsg_conn_deadline(h.p[0].s), 5000 + 5000);
  /* at 9000 the others, which wrote nothing since 4000, time out */
  assert_int_equal(wsmsg_conn_tick(h.p[7].s, 8999), 0);
  assert_int_equal(wsmsg_conn_state(h.p[7].s), WSMSG_STATE_OPEN);
  assert_int_equal(wsmsg_conn_tick(h.p[7].s, 9000), 0);
  assert_int_equal(wsmsg_conn_state(h.p[7].s), WSMSG_STATE_CLOSED);
  assert_int_equal(h.p[7].sr.close.error, WSMSG_ERR_TIMEOUT);
  assert_int_equal(wsmsg_conn_tick(h.p[0].s, 9000), 0);
  assert_int_equal(wsmsg_conn_state(h.p[0].s), WSMSG_STATE_OPEN);
  wsmsg_topics_free(t);
  hub_free(&h);
}

/* Recipients on different clocks (two servers) in one broadcast: each is
 * stamped by its own clock. */
static uint64_t clock_a(void *u) {
  (void)u;
  return 1000;
}
static uint64_t clock_b(void *u) {
  (void)u;
  return 50000;
}
static void setup_clock_a(pair *p) {
  wsmsg_server_set_clock(p->srv, clock_a, NULL);
  wsmsg_endpoint_set_write_timeout(p->sep, 5000);
}
static void setup_clock_b(pair *p) {
  wsmsg_server_set_clock(p->srv, clock_b, NULL);
  wsmsg_endpoint_set_write_timeout(p->sep, 5000);
}

static void test_broadcast_clock_per_connection(void **state) {
  (void)state;
  pair a, b;
  pair_open(&a, setup_clock_a);
  pair_open(&b, setup_clock_b);
  wsmsg_conn *both[3] = {a.s, b.s, a.s};
  assert_int_equal(wsmsg_broadcast(both, 3, WSMSG_EV_TEXT, "hi", 2), 3);
  assert_int_equal(wsmsg_conn_deadline(a.s), 1000 + 5000);
  assert_int_equal(wsmsg_conn_deadline(b.s), 50000 + 5000);
  pump(&a);
  pump(&b);
  assert_int_equal(a.cr.texts, 2);
  assert_int_equal(b.cr.texts, 1);
  pair_free(&a);
  pair_free(&b);
}

/* Backpressure per recipient: a subscriber that does not read is skipped
 * (FAIL) while the others get everything; its output stays bounded. */
static void setup_bp_fail(hub *h) {
  wsmsg_endpoint_set_backpressure(h->sep, 4096, 1024, WSMSG_BACKPRESSURE_FAIL);
}
static void setup_bp_close(hub *h) {
  wsmsg_endpoint_set_backpressure(h->sep, 4096, 1024, WSMSG_BACKPRESSURE_CLOSE);
}

static void test_slow_subscriber_skipped(void **state) {
  (void)state;
  hub h;
  hub_init(&h, 3, setup_bp_fail);
  wsmsg_topics *t = wsmsg_topics_new();
  for (size_t i = 0; i < 3; i++)
    wsmsg_topic_subscribe(t, h.p[i].s, "r");
  char msg[500];
  memset(msg, 'z', sizeof(msg));
  int64_t total = 0;
  for (int k = 0; k < 100; k++) {
    total += wsmsg_topic_publish(t, "r", WSMSG_EV_TEXT, msg, sizeof(msg), 0);
    /* #1 and #2 read; #0 never does */
    for (size_t i = 1; i < 3; i++)
      pump1(h.p[i].s, h.p[i].c, 0);
  }
  assert_true(wsmsg_conn_buffered_amount(h.p[0].s) <= 4096 + 600);
  assert_int_equal(h.p[1].cr.texts, 100);
  assert_int_equal(h.p[2].cr.texts, 100);
  assert_true(total < 300);
  assert_int_equal(wsmsg_conn_state(h.p[0].s), WSMSG_STATE_OPEN);
  wsmsg_topics_free(t);
  hub_free(&h);
}

/* CLOSE policy: the slow one is closed with 1008 in the middle of a
 * publish; its on_close leaves the topic (and unsubscribes another
 * member) while the array is being walked; everyone else still gets the
 * message and the topic is consistent afterwards. */
static wsmsg_topics *close_topics;
static wsmsg_conn *also_drop;
static void on_close_unsub(wsmsg_conn *c, const wsmsg_close_info *ci, void *u) {
  cb_close(c, ci, u);
  if (also_drop) {
    assert_int_equal(wsmsg_topic_unsubscribe(close_topics, also_drop, "r"), 0);
    /* adding to the topic being published to is refused */
    assert_int_equal(wsmsg_topic_subscribe(close_topics, also_drop, "r"),
                     WSMSG_ERR_STATE);
    also_drop = NULL;
  }
}
static void setup_bp_close_unsub(hub *h) {
  setup_bp_close(h);
  wsmsg_endpoint_on_close(h->sep, on_close_unsub);
}

static void test_slow_subscriber_closed_mid_publish(void **state) {
  (void)state;
  hub h;
  hub_init(&h, 5, setup_bp_close_unsub);
  wsmsg_topics *t = wsmsg_topics_new();
  close_topics = t;
  for (size_t i = 0; i < 5; i++)
    wsmsg_topic_subscribe(t, h.p[i].s, "r");
  char msg[500];
  memset(msg, 'z', sizeof(msg));
  also_drop = h.p[4].s;
  int closed_at = -1;
  for (int k = 0; k < 20 && closed_at < 0; k++) {
    wsmsg_topic_publish(t, "r", WSMSG_EV_TEXT, msg, sizeof(msg), 0);
    for (size_t i = 1; i < 5; i++)
      pump1(h.p[i].s, h.p[i].c, 0);
    if (h.p[0].sr.closes)
      closed_at = k;
  }
  assert_true(closed_at >= 0);
  assert_int_equal(h.p[0].sr.close.error, WSMSG_ERR_BACKPRESSURE);
  assert_int_equal(pending_close_code(h.p[0].s), 1008);
  assert_null(also_drop);
  assert_int_equal(wsmsg_topic_subscribers(t, "r"), 3); /* #1..#3 */
  assert_false(wsmsg_topic_is_subscribed(t, h.p[0].s, "r"));
  assert_false(wsmsg_topic_is_subscribed(t, h.p[4].s, "r"));
  /* the walk went on past the holes: #1..#3 got every message */
  assert_int_equal(h.p[1].cr.texts, closed_at + 1);
  assert_int_equal(h.p[3].cr.texts, closed_at + 1);
  /* #4 left during that publish, before the walk reached it */
  hub_flush(&h);
  assert_int_equal(h.p[4].cr.texts, closed_at);
  assert_int_equal(
      wsmsg_topic_publish(t, "r", WSMSG_EV_TEXT, msg, sizeof(msg), 0), 3);
  wsmsg_topics_free(t);
  hub_free(&h);
}

/* The host learns which connections a publish or close_all gave output to
 * through the server's on_output, once per empty-to-pending transition,
 * also for a subscriber that left the topic in the middle of the publish
 * after it got the message. */
static int outputs[8];
static hub *out_hub;
static void on_output_rec(wsmsg_conn *c, void *u) {
  (void)u;
  for (size_t i = 0; i < out_hub->n; i++)
    if (out_hub->p[i].s == c)
      outputs[i]++;
}
static wsmsg_conn *leaver;
static void on_close_leaver(wsmsg_conn *c, const wsmsg_close_info *ci,
                            void *u) {
  cb_close(c, ci, u);
  if (leaver) {
    assert_int_equal(wsmsg_topic_unsubscribe(close_topics, leaver, "r"), 0);
    leaver = NULL;
  }
}
static void setup_output(hub *h) {
  setup_bp_close(h);
  wsmsg_endpoint_on_close(h->sep, on_close_leaver);
  wsmsg_server_on_output(h->srv, on_output_rec);
}

static void test_publish_reports_output(void **state) {
  (void)state;
  hub h;
  out_hub = &h;
  memset(outputs, 0, sizeof(outputs));
  hub_init(&h, 3, setup_output);
  wsmsg_topics *t = wsmsg_topics_new();
  close_topics = t;
  for (size_t i = 0; i < 3; i++)
    wsmsg_topic_subscribe(t, h.p[i].s, "r");
  assert_int_equal(wsmsg_topic_publish(t, "r", WSMSG_EV_TEXT, "a", 1, 0), 3);
  for (size_t i = 0; i < 3; i++)
    assert_int_equal(outputs[i], 1);
  /* still pending: no second report */
  assert_int_equal(wsmsg_topic_publish(t, "r", WSMSG_EV_TEXT, "b", 1, 0), 3);
  for (size_t i = 0; i < 3; i++)
    assert_int_equal(outputs[i], 1);
  hub_flush(&h);
  memset(outputs, 0, sizeof(outputs));
  /* #2 stops reading and gets closed (1008) by a publish; its on_close
   * makes #0, which already has that message, leave the topic */
  char msg[500];
  memset(msg, 'z', sizeof(msg));
  leaver = h.p[0].s;
  for (int k = 0; k < 20 && !h.p[2].sr.closes; k++) {
    memset(outputs, 0, sizeof(outputs));
    wsmsg_topic_publish(t, "r", WSMSG_EV_TEXT, msg, sizeof(msg), 0);
    assert_int_equal(outputs[0], 1);
    assert_int_equal(outputs[1], 1);
    pump1(h.p[0].s, h.p[0].c, 0);
    pump1(h.p[1].s, h.p[1].c, 0);
  }
  assert_int_equal(h.p[2].sr.closes, 1);
  assert_null(leaver);
  assert_false(wsmsg_topic_is_subscribed(t, h.p[0].s, "r"));
  /* close_all reports the open ones whose output was empty */
  memset(outputs, 0, sizeof(outputs));
  assert_int_equal(wsmsg_server_close_all(h.srv, 1001, "bye"), 2);
  assert_int_equal(outputs[0], 1);
  assert_int_equal(outputs[1], 1);
  assert_int_equal(outputs[2], 0); /* closed already */
  wsmsg_topics_free(t);
  hub_free(&h);
}

/* Many topics and subscriptions: the hash tables grow, swap-removes keep
 * every index right. */
static void test_many_topics(void **state) {
  (void)state;
  hub h;
  hub_init(&h, 40, NULL);
  wsmsg_topics *t = wsmsg_topics_new();
  char name[32];
  for (size_t i = 0; i < 40; i++)
    for (int k = 0; k < 30; k++) {
      snprintf(name, sizeof(name), "t%d", k);
      assert_int_equal(wsmsg_topic_subscribe(t, h.p[i].s, name), 0);
    }
  assert_int_equal(wsmsg_topics_count(t), 30);
  for (size_t i = 0; i < 40; i += 3)
    for (int k = 0; k < 30; k += 2) {
      snprintf(name, sizeof(name), "t%d", k);
      assert_int_equal(wsmsg_topic_unsubscribe(t, h.p[i].s, name), 0);
    }
  for (int k = 0; k < 30; k++) {
    snprintf(name, sizeof(name), "t%d", k);
    size_t want = k % 2 ? 40 : 40 - 14;
    assert_int_equal(wsmsg_topic_subscribers(t, name), want);
    assert_int_equal(wsmsg_topic_publish(t, name, WSMSG_EV_TEXT, "x", 1, 0),
                     (int64_t)want);
  }
  hub_flush(&h);
  assert_int_equal(h.p[0].cr.texts, 15);
  assert_int_equal(h.p[1].cr.texts, 30);
  assert_int_equal(wsmsg_conn_topic_count(h.p[0].s), 15);
  wsmsg_topics_free(t);
  hub_free(&h);
}

/* Out of memory while subscribing changes nothing. */
static void test_subscribe_oom(void **state) {
  (void)state;
  pair p;
  pair_open(&p, NULL);
  for (int n = 1; n <= 4; n++) {
    wsmsg_topics *t = wsmsg_topics_new_mem(&failing_mem);
    assert_non_null(t);
    fail_countdown = n;
    int r = wsmsg_topic_subscribe(t, p.s, "room");
    fail_countdown = 0;
    if (r == 0) {
      assert_int_equal(wsmsg_topic_subscribers(t, "room"), 1);
    } else {
      assert_int_equal(r, WSMSG_ERR_NOMEM);
      assert_int_equal(wsmsg_topics_count(t), 0);
      assert_int_equal(wsmsg_conn_topic_count(p.s), 0);
    }
    wsmsg_topics_free(t);
    assert_int_equal(wsmsg_conn_topic_count(p.s), 0);
  }
  pair_free(&p);
}

/* ---- threads: one loop, one server and one topic set per thread ---- */

typedef struct worker {
  int id;
  int ok;
} worker;

static void *worker_main(void *arg) {
  worker *w = arg;
  hub h;
  hub_init(&h, 20, NULL);
  wsmsg_topics *t = wsmsg_topics_new();
  for (size_t i = 0; i < 20; i++)
    wsmsg_topic_subscribe(t, h.p[i].s, i % 2 ? "odd" : "even");
  int ok = 1;
  for (int k = 0; k < 300; k++) {
    ok &= wsmsg_topic_publish(t, k % 2 ? "odd" : "even", WSMSG_EV_TEXT, "m", 1,
                              0) == 10;
    if (k % 10 == 9)
      hub_flush(&h);
  }
  hub_flush(&h);
  for (size_t i = 0; i < 20; i++)
    ok &= h.p[i].cr.texts == 150;
  wsmsg_topics_free(t);
  hub_free(&h);
  w->ok = ok;
  return NULL;
}

static void test_topics_per_thread(void **state) {
  (void)state;
  pthread_t th[4];
  worker w[4];
  for (int i = 0; i < 4; i++) {
    w[i].id = i;
    w[i].ok = 0;
    assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(w[i].ok, 1);
  }
}

/* A server shared by threads (docs/scaling.md allows it), each thread with
 * its own connections and topic set, publishing at the same time: the
 * pool's buffers (taken by each publish in batches) and the memory budget's
 * count (batched per publish) stay consistent: every message arrives, and
 * once all output is taken the server counts 0 bytes held. */
typedef struct shared_worker {
  wsmsg_server *srv;
  wsmsg_endpoint *cep;
  int ok;
} shared_worker;

static void *shared_worker_main(void *arg) {
  shared_worker *w = arg;
  enum { N = 40 };
  peer *ps = calloc(N, sizeof(peer));
  hub h = {.srv = w->srv, .p = ps, .n = N};
  int ok = 1;
  wsmsg_topics *t = wsmsg_topics_new();
  for (size_t i = 0; i < N; i++) {
    ps[i].s = wsmsg_server_accept(w->srv, &ps[i].sr);
    ps[i].c = wsmsg_client_new(w->cep, "localhost:1", "/ws", &ps[i].cr);
    for (int k = 0; k < 10; k++)
      if (!pump1(ps[i].c, ps[i].s, 0) && !pump1(ps[i].s, ps[i].c, 0))
        break;
    ok &= wsmsg_topic_subscribe(t, ps[i].s, "r") == 0;
  }
  char msg[300];
  memset(msg, 's', sizeof(msg));
  for (int k = 0; k < 200; k++) {
    ok &= wsmsg_topic_publish(t, "r", WSMSG_EV_TEXT, msg, sizeof(msg), 0) == N;
    if (k % 3 == 2)
      hub_flush(&h);
  }
  hub_flush(&h);
  for (size_t i = 0; i < N; i++)
    ok &= ps[i].cr.texts == 200;
  wsmsg_topics_free(t);
  for (size_t i = 0; i < N; i++) {
    wsmsg_conn_free(ps[i].s);
    wsmsg_conn_free(ps[i].c);
    free(ps[i].sr.last);
    free(ps[i].cr.last);
  }
  free(ps);
  w->ok = ok;
  return NULL;
}

static void test_shared_server_threads(void **state) {
  (void)state;
  wsmsg_endpoint *sep = wsmsg_endpoint_new();
  wsmsg_endpoint *cep = wsmsg_endpoint_new();
  wsmsg_server *srv = wsmsg_server_new();
  ep_callbacks(sep);
  ep_callbacks(cep);
  assert_int_equal(wsmsg_server_route(srv, "/ws", sep), 0);
  assert_int_equal(wsmsg_server_set_memory_budget(srv, 64u << 20, 64u << 10),
                   0);
  pthread_t th[2];
  shared_worker w[2];
  for (int i = 0; i < 2; i++) {
    w[i] = (shared_worker){srv, cep, 0};
    assert_int_equal(pthread_create(&th[i], NULL, shared_worker_main, &w[i]),
                     0);
  }
  for (int i = 0; i < 2; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(w[i].ok, 1);
  }
  assert_int_equal(wsmsg_server_memory_used(srv), 0);
  wsmsg_server_free(srv);
  wsmsg_endpoint_free(sep);
  wsmsg_endpoint_free(cep);
}

/* ---- the registry and graceful drain ---- */

static void test_registry_counts(void **state) {
  (void)state;
  hub h;
  hub_init(&h, 4, NULL);
  assert_int_equal(wsmsg_server_conn_count(h.srv), 4);
  assert_int_equal(wsmsg_server_conn_count(NULL), 0);
  wsmsg_conn_free(h.p[2].s);
  h.p[2].s = NULL;
  assert_int_equal(wsmsg_server_conn_count(h.srv), 3);
  wsmsg_conn *extra = wsmsg_server_accept(h.srv, NULL);
  assert_int_equal(wsmsg_server_conn_count(h.srv), 4);
  wsmsg_conn_free(extra);
  assert_int_equal(wsmsg_server_conn_count(h.srv), 3);
  hub_free(&h);
}

static void test_close_all(void **state) {
  (void)state;
  hub h;
  hub_init(&h, 3, NULL);
  assert_int_equal(wsmsg_server_close_all(NULL, 1001, ""),
                   WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_server_close_all(h.srv, 1005, ""),
                   WSMSG_ERR_CLOSE_CODE);
  assert_int_equal(wsmsg_server_close_all(h.srv, 1001, "\xff"), WSMSG_ERR_UTF8);
  assert_int_equal(wsmsg_close(h.p[1].s, 1000, "already"), 0);
  assert_int_equal(wsmsg_server_close_all(h.srv, 4000, "maintenance"), 2);
  hub_flush(&h);
  assert_int_equal(h.p[0].cr.close.code, 4000);
  assert_string_equal(h.p[0].cr.close_reason, "maintenance");
  assert_int_equal(h.p[1].cr.close.code, 1000);
  assert_true(wsmsg_conn_done(h.p[0].s));
  assert_false(wsmsg_server_draining(h.srv));
  hub_free(&h);
}

static void test_drain(void **state) {
  (void)state;
  hub h;
  hub_init(&h, 3, NULL);
  wsmsg_topics *t = wsmsg_topics_new();
  for (size_t i = 0; i < 3; i++)
    wsmsg_topic_subscribe(t, h.p[i].s, "room");
  /* one connection still in its handshake, having sent nothing */
  wsmsg_conn *early = wsmsg_server_accept(h.srv, NULL);
  /* one accepted now that will ask to upgrade after the drain started */
  wsmsg_conn *late_s = wsmsg_server_accept(h.srv, NULL);
  assert_int_equal(wsmsg_server_conn_count(h.srv), 5);
  assert_false(wsmsg_server_draining(NULL));
  assert_int_equal(wsmsg_server_drain(NULL), WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_server_drain(h.srv), 3);
  assert_true(wsmsg_server_draining(h.srv));
  /* the idle handshake was ended at once */
  assert_true(wsmsg_conn_done(early));
  assert_int_equal(wsmsg_conn_error(early), WSMSG_ERR_ABORTED);
  /* late_s was ended too (it had sent nothing): a new one asking now gets
   * 503 */
  wsmsg_conn_free(late_s);
  late_s = wsmsg_server_accept(h.srv, NULL);
  rec lcr = {0};
  wsmsg_conn *late_c = wsmsg_client_new(h.cep, "localhost:1", "/ws", &lcr);
  for (int k = 0; k < 10; k++)
    if (!pump1(late_c, late_s, 0) && !pump1(late_s, late_c, 0))
      break;
  assert_int_equal(wsmsg_conn_http_status(late_s), 503);
  assert_int_equal(wsmsg_conn_http_status(late_c), 503);
  assert_int_equal(wsmsg_conn_state(late_c), WSMSG_STATE_CLOSED);
  /* every open client sees 1001 going away, answers, and the server side
   * is done: the topics emptied themselves */
  hub_flush(&h);
  for (size_t i = 0; i < 3; i++) {
    assert_int_equal(h.p[i].cr.closes, 1);
    assert_int_equal(h.p[i].cr.close.code, 1001);
    assert_string_equal(h.p[i].cr.close_reason, "going away");
    assert_true(wsmsg_conn_done(h.p[i].s));
  }
  assert_int_equal(wsmsg_topics_count(t), 0);
  /* the host frees them; the count reaches 0 */
  wsmsg_conn_free(early);
  wsmsg_conn_free(late_s);
  wsmsg_conn_free(late_c);
  free(lcr.last);
  for (size_t i = 0; i < 3; i++) {
    wsmsg_conn_free(h.p[i].s);
    h.p[i].s = NULL;
  }
  assert_int_equal(wsmsg_server_conn_count(h.srv), 0);
  /* draining again is harmless */
  assert_int_equal(wsmsg_server_drain(h.srv), 0);
  wsmsg_topics_free(t);
  hub_free(&h);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_publish_reaches_subscribers_once),
      cmocka_unit_test(test_topic_bad_args),
      cmocka_unit_test(test_close_and_free_drop_topics),
      cmocka_unit_test(test_publish_hook_local_only),
      cmocka_unit_test(test_publish_hook_may_subscribe),
      cmocka_unit_test(test_publish_json_large),
      cmocka_unit_test(test_publish_allocates_nothing_per_recipient),
      cmocka_unit_test(test_publish_batch_returns_buffers),
      cmocka_unit_test(test_pool_put_never_allocates),
      cmocka_unit_test(test_publish_within_budget),
      cmocka_unit_test(test_publish_arms_write_timeout),
      cmocka_unit_test(test_broadcast_clock_per_connection),
      cmocka_unit_test(test_slow_subscriber_skipped),
      cmocka_unit_test(test_slow_subscriber_closed_mid_publish),
      cmocka_unit_test(test_publish_reports_output),
      cmocka_unit_test(test_many_topics),
      cmocka_unit_test(test_subscribe_oom),
      cmocka_unit_test(test_topics_per_thread),
      cmocka_unit_test(test_shared_server_threads),
      cmocka_unit_test(test_registry_counts),
      cmocka_unit_test(test_close_all),
      cmocka_unit_test(test_drain),
  };
  return unit_run("topic", tests, argc, argv);
}
