/* Fan-out benchmark (make bench; issue 16): one wsmsg_topic_publish of a
 * 64-byte text message to N local subscribers, in process, no sockets: the
 * subscribers are server connections opened by feeding them an upgrade
 * request, and "writing" a recipient is taking its output
 * (wsmsg_conn_pending + wsmsg_conn_consume) for the connections on_output
 * reported, as an epoll host would.  fanout_node.js and fanout_python.py
 * do the same with node ws (a loop of send) and python-websockets
 * (broadcast()) over sockets that discard what is written.
 *
 *   fanout N [SECONDS]     prints one JSON line (SECONDS of CPU time;
 *   deliveries per CPU second):
 *   {"impl":"wsmsg","subscribers":N,"deliveries_per_s":...,
 *    "alloc_bytes_per_delivery":...,"allocs_per_delivery":...}
 *
 * Allocation is counted by the server's allocator hook (wsmsg_mem) over
 * the timed publishes, after one warm-up publish. */
#include <wsmsg.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CPU time of this process, in ms: on a busy machine wall time measures
 * the neighbours too */
static uint64_t cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static size_t n_allocs, n_bytes;
static void *cmalloc(size_t n, void *u) {
  (void)u;
  n_allocs++;
  n_bytes += n;
  return malloc(n);
}
static void cfree(void *p, void *u) {
  (void)u;
  free(p);
}
static void *crealloc(void *p, size_t n, void *u) {
  (void)u;
  n_allocs++;
  n_bytes += n;
  return realloc(p, n);
}

static wsmsg_conn **ready;
static size_t nready;
static void on_output(wsmsg_conn *c, void *u) {
  (void)u;
  ready[nready++] = c;
}

static const char REQ[] = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\n"
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n";

static void take(wsmsg_conn *c) {
  const void *p;
  size_t n = wsmsg_conn_pending(c, &p);
  wsmsg_conn_consume(c, n);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: fanout N [SECONDS]\n");
    return 2;
  }
  size_t n = (size_t)strtoul(argv[1], NULL, 10);
  double secs = argc > 2 ? atof(argv[2]) : 1.0;
  wsmsg_mem mem = {NULL, cmalloc, cfree, crealloc};
  wsmsg_server *srv = wsmsg_server_new_mem(&mem);
  wsmsg_endpoint *ep = wsmsg_endpoint_new();
  wsmsg_endpoint_on_text(ep, NULL);
  wsmsg_server_route(srv, "/", ep);
  wsmsg_server_on_output(srv, on_output);
  wsmsg_topics *t = wsmsg_topics_new_mem(&mem);
  wsmsg_conn **conns = calloc(n, sizeof(*conns));
  ready = calloc(n, sizeof(*ready));
  for (size_t i = 0; i < n; i++) {
    conns[i] = wsmsg_server_accept(srv, NULL);
    wsmsg_conn_recv(conns[i], REQ, sizeof(REQ) - 1);
    take(conns[i]); /* the 101 */
    if (wsmsg_topic_subscribe(t, conns[i], "room") != 0) {
      fprintf(stderr, "fanout: subscribe failed\n");
      return 1;
    }
  }
  char msg[64];
  memset(msg, 'x', sizeof(msg));
  /* warm-up: pooled buffers and parsers exist afterwards */
  wsmsg_topic_publish(t, "room", WSMSG_EV_TEXT, msg, sizeof(msg), 0);
  for (size_t i = 0; i < nready; i++)
    take(ready[i]);
  nready = 0;
  n_allocs = n_bytes = 0;
  uint64_t t0 = cpu_ms(), t1 = t0;
  uint64_t deliveries = 0;
  unsigned long rounds = 0;
  while (t1 - t0 < (uint64_t)(secs * 1000)) {
    for (int k = 0; k < 16; k++) {
      int64_t r =
          wsmsg_topic_publish(t, "room", WSMSG_EV_TEXT, msg, sizeof(msg), 0);
      if (r != (int64_t)n) {
        fprintf(stderr, "fanout: publish reached %lld of %zu\n", (long long)r,
                n);
        return 1;
      }
      deliveries += (uint64_t)r;
      for (size_t i = 0; i < nready; i++)
        take(ready[i]);
      nready = 0;
      rounds++;
    }
    t1 = cpu_ms();
  }
  double el = (double)(t1 - t0) / 1000.0;
  printf("{\"impl\":\"wsmsg\",\"subscribers\":%zu,\"publishes\":%lu,"
         "\"deliveries_per_s\":%.0f,\"alloc_bytes_per_delivery\":%.3f,"
         "\"allocs_per_delivery\":%.5f}\n",
         n, rounds, (double)deliveries / el,
         (double)n_bytes / (double)deliveries,
         (double)n_allocs / (double)deliveries);
  for (size_t i = 0; i < n; i++)
    wsmsg_conn_free(conns[i]);
  wsmsg_topics_free(t);
  wsmsg_server_free(srv);
  wsmsg_endpoint_free(ep);
  free(conns);
  free(ready);
  return 0;
}
