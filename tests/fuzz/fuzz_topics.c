/* libFuzzer target: topics (lib/topic.c) and the server's registry
 * (lib/registry.c) against a model.  The input is a program over 6 server
 * connections and 4 topics: subscribe, unsubscribe, publish (text/binary,
 * sizes that cross a small backpressure mark: some subscribers are skipped
 * or closed with 1008 in the middle of a publish, and their on_close
 * unsubscribes another one), take a connection's output, close, abort,
 * free and replace, close_all, drain.  After every step the library must
 * agree with the model: who is subscribed to what, the subscriber counts,
 * the server's connection count; on_output comes once per connection per
 * publish at most; and the frames each connection writes stay well formed
 * (fz_wire). */
#include "fuzz_common.h"

#define NC 6
#define NT 4

static const char *const TOPIC[NT] = {"a", "b", "room:c", ""};
static const char REQ[] =
    "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";

typedef struct slot {
  wsmsg_conn *c;
  int sub[NT]; /* the model */
  int outputs; /* on_output calls in the current publish */
  int id;
} slot;

static slot S[NC];
static wsmsg_topics *T;
static wsmsg_server *SRV;
static int victim = -1; /* on_close unsubscribes it from every topic */
static int closing_cb;

static void on_output(wsmsg_conn *c, void *u) {
  (void)c;
  slot *s = u;
  s->outputs++;
}

static void model_drop(slot *s) {
  for (int t = 0; t < NT; t++)
    s->sub[t] = 0;
}

static void on_close(wsmsg_conn *c, const wsmsg_close_info *ci, void *u) {
  (void)ci;
  slot *s = u;
  /* topics are dropped after on_close: still there now */
  size_t n = 0;
  for (int t = 0; t < NT; t++)
    n += (size_t)s->sub[t];
  FZ_CHECK(wsmsg_conn_topic_count(c) == n);
  if (victim >= 0 && S[victim].c && &S[victim] != s && !closing_cb) {
    closing_cb = 1;
    for (int t = 0; t < NT; t++) {
      int r = wsmsg_topic_unsubscribe(T, S[victim].c, TOPIC[t]);
      FZ_CHECK(r == (S[victim].sub[t] ? 0 : WSMSG_ERR_NOT_FOUND));
      S[victim].sub[t] = 0;
      /* subscribing now may be refused (a publish runs) or work */
      r = wsmsg_topic_subscribe(T, S[victim].c, TOPIC[t]);
      FZ_CHECK(r == 0 || r == WSMSG_ERR_STATE || r == WSMSG_ERR_CLOSED);
      if (r == 0)
        S[victim].sub[t] = 1;
    }
    closing_cb = 0;
  }
  model_drop(s);
}

static void take(slot *s) {
  const void *p;
  size_t n = wsmsg_conn_pending(s->c, &p);
  wsmsg_conn_consume(s->c, n);
}

static void open_slot(slot *s) {
  s->c = wsmsg_server_accept(SRV, s);
  FZ_CHECK(s->c != NULL);
  FZ_CHECK(wsmsg_conn_recv(s->c, REQ, sizeof(REQ) - 1) == 0);
  FZ_CHECK(wsmsg_conn_state(s->c) == WSMSG_STATE_OPEN);
  take(s);
  model_drop(s);
}

static void free_slot(slot *s) {
  wsmsg_conn_free(s->c);
  s->c = NULL;
  model_drop(s);
}

static void check_model(void) {
  size_t live = 0;
  for (int i = 0; i < NC; i++) {
    if (!S[i].c)
      continue;
    live++;
    size_t n = 0;
    for (int t = 0; t < NT; t++) {
      FZ_CHECK(wsmsg_topic_is_subscribed(T, S[i].c, TOPIC[t]) == S[i].sub[t]);
      n += (size_t)S[i].sub[t];
    }
    FZ_CHECK(wsmsg_conn_topic_count(S[i].c) == n);
  }
  size_t ntopics = 0;
  for (int t = 0; t < NT; t++) {
    size_t k = 0;
    for (int i = 0; i < NC; i++)
      k += S[i].c && S[i].sub[t];
    FZ_CHECK(wsmsg_topic_subscribers(T, TOPIC[t]) == k);
    ntopics += k > 0;
  }
  FZ_CHECK(wsmsg_topics_count(T) == ntopics);
  FZ_CHECK(wsmsg_server_conn_count(SRV) == live);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  fz in = {data, size};
  fz_rng_reset(fz_u8(&in));
  uint8_t flags = fz_u8(&in);
  wsmsg_endpoint *ep = wsmsg_endpoint_new();
  SRV = wsmsg_server_new();
  T = wsmsg_topics_new();
  FZ_CHECK(ep && SRV && T);
  wsmsg_endpoint_on_close(ep, on_close);
  wsmsg_endpoint_on_text(ep, NULL);
  FZ_CHECK(wsmsg_endpoint_set_backpressure(ep, 2048, 512,
                                           flags & 1
                                               ? WSMSG_BACKPRESSURE_CLOSE
                                               : WSMSG_BACKPRESSURE_FAIL) == 0);
  FZ_CHECK(wsmsg_server_route(SRV, "/ws", ep) == 0);
  FZ_CHECK(wsmsg_server_on_output(SRV, on_output) == 0);
  victim = flags & 2 ? (flags >> 2) % NC : -1;
  for (int i = 0; i < NC; i++) {
    S[i].id = i;
    open_slot(&S[i]);
  }
  static uint8_t payload[4096];
  for (int steps = 0; steps < 400 && in.n > 0; steps++) {
    uint8_t op = fz_u8(&in);
    int i = (op >> 3) % NC, t = (op >> 6) % NT;
    slot *s = &S[i];
    switch (op & 7) {
    case 0: { /* subscribe */
      if (!s->c)
        break;
      int r = wsmsg_topic_subscribe(T, s->c, TOPIC[t]);
      int open = wsmsg_conn_state(s->c) == WSMSG_STATE_OPEN;
      if (r == 0 || r == 1) {
        FZ_CHECK(r == (s->sub[t] ? 1 : 0));
        s->sub[t] = 1;
      } else {
        FZ_CHECK(!open && r == WSMSG_ERR_CLOSED);
      }
      break;
    }
    case 1: { /* unsubscribe */
      if (!s->c)
        break;
      int r = wsmsg_topic_unsubscribe(T, s->c, TOPIC[t]);
      FZ_CHECK(r == (s->sub[t] ? 0 : WSMSG_ERR_NOT_FOUND));
      s->sub[t] = 0;
      break;
    }
    case 2: { /* publish */
      size_t len = (size_t)fz_u16(&in) % sizeof(payload);
      memset(payload, 'a' + (op & 15), len);
      int type = op & 8 ? WSMSG_EV_BINARY : WSMSG_EV_TEXT;
      int64_t subs = 0;
      for (int k = 0; k < NC; k++) {
        S[k].outputs = 0;
        subs += S[k].c && S[k].sub[t];
      }
      int64_t r = wsmsg_topic_publish(T, TOPIC[t], type, payload, len, 0);
      FZ_CHECK(r >= 0 && r <= subs);
      for (int k = 0; k < NC; k++)
        FZ_CHECK(S[k].outputs <= 1);
      break;
    }
    case 3: /* take the output */
      if (s->c)
        take(s);
      break;
    case 4: /* close */
      if (s->c)
        (void)wsmsg_close(s->c, 1000, "bye");
      break;
    case 5: /* abort, or free and replace */
      if (!s->c)
        open_slot(s);
      else if (op & 8)
        wsmsg_conn_abort(s->c); /* on_close dropped the model's topics */
      else
        free_slot(s);
      break;
    case 6: /* done ones are freed, empty slots refilled */
      if (s->c && wsmsg_conn_done(s->c))
        free_slot(s);
      else if (!s->c)
        open_slot(s);
      break;
    case 7: { /* close_all, or drain (then nothing new can upgrade) */
      int64_t r = op & 8 ? wsmsg_server_close_all(SRV, 4000, "x")
                         : wsmsg_server_drain(SRV);
      FZ_CHECK(r >= 0 && r <= NC);
      if (!(op & 8)) { /* drained: end the run here */
        check_model();
        in.n = 0;
      }
      break;
    }
    }
    check_model();
  }
  for (int i = 0; i < NC; i++)
    if (S[i].c)
      free_slot(&S[i]);
  FZ_CHECK(wsmsg_server_conn_count(SRV) == 0);
  wsmsg_topics_free(T);
  wsmsg_server_free(SRV);
  wsmsg_endpoint_free(ep);
  return 0;
}
