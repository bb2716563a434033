/* The cost of wsmsg_timers with N open connections (default 10k and 100k):
 *  - expire: µs per due connection (tick + re-key in the heap);
 *  - deadline moved later by activity (lazy: no heap work);
 *  - deadline moved earlier (a fragmented message starts its timer:
 *    O(log n) sift-up), measured as the extra cost of wsmsg_conn_recv;
 *  - wsmsg_timers_next_ms.
 * And wsmsg_broadcast of one message to all of them (cost per recipient).
 * Connections are real server connections opened with a raw request; the
 * clock is fake, so nothing sleeps.  Prints a markdown table.
 *
 *   bench_timers [N ...]
 */
#include <wsmsg.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t fake_now;
static uint64_t fake_clock(void *u) {
  (void)u;
  return fake_now;
}

static void on_timeout(wsmsg_conn *c, int kind, void *u) {
  (void)c;
  (void)kind;
  (void)u;
}
static void on_open(wsmsg_conn *c, void *u) {
  (void)c;
  (void)u;
}
static void on_text(wsmsg_conn *c, const char *d, size_t n, void *u) {
  (void)c;
  (void)d;
  (void)n;
  (void)u;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char REQ[] =
    "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: "
    "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: "
    "13\r\n\r\n";

/* a masked client frame with payload "x": op 1 (text) or 0 (continuation) */
static size_t frame(uint8_t *b, int fin, int op) {
  b[0] = (uint8_t)((fin ? 0x80 : 0) | op);
  b[1] = 0x80 | 1;
  b[2] = b[3] = b[4] = b[5] = 0;
  b[6] = 'x';
  return 7;
}

static void run(size_t n) {
  wsmsg_endpoint *ep = wsmsg_endpoint_new();
  wsmsg_server *srv = wsmsg_server_new();
  wsmsg_server_set_clock(srv, fake_clock, NULL);
  wsmsg_endpoint_set_receive_timeout(ep, 60000);
  wsmsg_endpoint_set_message_timeout(ep, 1000);
  wsmsg_endpoint_on_timeout(ep, on_timeout);
  wsmsg_endpoint_on_text(ep, on_text);
  wsmsg_endpoint_on_open(ep, on_open);
  wsmsg_server_route(srv, "/ws", ep);
  wsmsg_timers *t = wsmsg_timers_new();
  wsmsg_conn **cs = malloc(n * sizeof(*cs));
  for (size_t i = 0; i < n; i++) {
    fake_now = (uint64_t)(i * 2654435761u % 1000000u); /* scattered opens */
    cs[i] = wsmsg_server_accept(srv, NULL);
    wsmsg_conn_recv(cs[i], REQ, sizeof(REQ) - 1);
    wsmsg_conn_consume(cs[i], wsmsg_conn_pending(cs[i], NULL));
  }
  uint8_t fin[8], part[8], cont[8];
  size_t nf = frame(fin, 1, 1), np = frame(part, 0, 1), nc = frame(cont, 1, 0);

  /* baseline: the same access pattern before the connections join the set
   * (cache-cold connections either way) */
  size_t reps = n < 100000 ? n : 100000;
  fake_now = 1500000;
  for (size_t i = 0; i < n; i++) /* warm: first-message buffers */
    wsmsg_conn_recv(cs[i], fin, nf);
  double t0 = now_s();
  for (size_t i = 0; i < reps; i++)
    wsmsg_conn_recv(cs[i * 7919 % n], fin, nf);
  double base = (now_s() - t0) / (double)reps;
  /* and a fragment (which needs a message buffer) outside the set, then
   * complete those messages again */
  double base_frag = 0;
  for (int round = 0; round < 2; round++) { /* the first one warms memory */
    t0 = now_s();
    for (size_t i = 0; i < reps; i++)
      wsmsg_conn_recv(cs[i * 7919 % n], part, np);
    base_frag = (now_s() - t0) / (double)reps;
    for (size_t i = 0; i < reps; i++) /* complete them: a continuation */
      wsmsg_conn_recv(cs[i * 7919 % n], cont, nc);
  }
  for (size_t i = 0; i < n; i++)
    wsmsg_timers_add(t, cs[i]);

  /* later move: a message re-arms the receive timeout (lazy) */
  fake_now = 2000000;
  t0 = now_s();
  for (size_t i = 0; i < reps; i++)
    wsmsg_conn_recv(cs[i * 7919 % n], fin, nf);
  double later = (now_s() - t0) / (double)reps;

  /* earlier move: a fragment starts the 1 s message timer (sift-up) */
  t0 = now_s();
  for (size_t i = 0; i < reps; i++)
    wsmsg_conn_recv(cs[i * 7919 % n], part, np);
  double earlier = (now_s() - t0) / (double)reps;
  for (size_t i = 0; i < reps; i++) /* complete them again */
    wsmsg_conn_recv(cs[i * 7919 % n], cont, nc);
  for (size_t i = 0; i < n; i++)
    if (wsmsg_conn_state(cs[i]) != WSMSG_STATE_OPEN) {
      fprintf(stderr, "bench_timers: connection %zu is not open\n", i);
      exit(1);
    }

  /* next_ms */
  volatile int64_t sink = 0;
  t0 = now_s();
  for (size_t i = 0; i < 1000000; i++)
    sink += wsmsg_timers_next_ms(t, fake_now);
  double next = (now_s() - t0) / 1e6;

  /* broadcast one 64-byte text to every connection, then drain */
  char msg[64];
  memset(msg, 'b', sizeof(msg));
  t0 = now_s();
  int64_t got = wsmsg_broadcast(cs, n, WSMSG_EV_TEXT, msg, sizeof(msg));
  double bcast = (now_s() - t0) / (double)n;
  if (got != (int64_t)n)
    fprintf(stderr, "broadcast reached %lld of %zu\n", (long long)got, n);
  for (size_t i = 0; i < n; i++)
    wsmsg_conn_consume(cs[i], wsmsg_conn_pending(cs[i], NULL));

  /* expire: every connection is due (receive timeouts + stale keys) */
  fake_now = 10000000;
  size_t fired = 0;
  t0 = now_s();
  while (wsmsg_timers_expire(t, fake_now) != NULL)
    fired++;
  double exp = (now_s() - t0) / (double)(fired ? fired : 1);

  printf("| %zu | %.3f | %.3f | %.3f | %.4f | %.3f (%zu due) | %.3f |\n", n,
         base * 1e6, (later - base) * 1e6, (earlier - base_frag) * 1e6,
         next * 1e6, exp * 1e6, fired, bcast * 1e6);
  (void)sink;
  wsmsg_timers_free(t);
  for (size_t i = 0; i < n; i++)
    wsmsg_conn_free(cs[i]);
  free(cs);
  wsmsg_server_free(srv);
  wsmsg_endpoint_free(ep);
}

int main(int argc, char **argv) {
  printf(
      "| connections | recv of 1 message, not in a timer set (µs) | extra: "
      "deadline moved later (µs) | extra: deadline moved earlier, vs the same "
      "fragment outside a set (µs) | "
      "timers_next_ms (µs) | expire per due connection (µs) | "
      "wsmsg_broadcast of 64 B, per recipient (µs) |\n");
  printf("|---|---|---|---|---|---|---|\n");
  if (argc > 1) {
    for (int i = 1; i < argc; i++)
      run((size_t)strtoul(argv[i], NULL, 10));
  } else {
    run(10000);
    run(100000);
  }
  return 0;
}
