/* permessage-deflate: memory per connection, allocations per message and
 * compression ratio for each setting, in memory (a wsmsg client and a
 * wsmsg server wired together).  Counts, not times: the numbers are the
 * same on every machine.  Run by tests/bench/run.sh (make bench);
 * docs/compression.md quotes them.
 *
 *   deflate_mem [--quick] [--markdown]
 */
#include <wsmsg.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct counter {
  size_t live, allocs;
} counter;

static void *c_malloc(size_t n, void *u) {
  counter *k = u;
  size_t *p = malloc(n + 16);
  if (!p)
    return NULL;
  p[0] = n;
  k->live += n;
  k->allocs++;
  return (char *)p + 16;
}

static void c_free(void *q, void *u) {
  if (!q)
    return;
  counter *k = u;
  size_t *p = (size_t *)((char *)q - 16);
  k->live -= p[0];
  free(p);
}

static counter cnt;
static const wsmsg_mem counting = {&cnt, c_malloc, c_free, NULL};

static size_t wire; /* server -> client bytes */
static long echoed;

static void on_text(wsmsg_conn *c, const char *d, size_t n, void *u) {
  (void)u;
  if (!wsmsg_conn_is_client(c))
    wsmsg_send_text(c, d, n);
  else
    echoed++;
}

static size_t pump1(wsmsg_conn *from, wsmsg_conn *to) {
  const void *p;
  size_t n, total = 0;
  while ((n = wsmsg_conn_pending(from, &p)) > 0) {
    wsmsg_conn_recv(to, p, n);
    wsmsg_conn_consume(from, n);
    total += n;
  }
  return total;
}

static void pump(wsmsg_conn *c, wsmsg_conn *s) {
  for (int i = 0; i < 100; i++) {
    size_t a = pump1(c, s);
    size_t b = pump1(s, c);
    wire += b;
    if (!a && !b)
      break;
  }
}

/* A message of the demo's shape (examples/common/message_model.h) with
 * varied content, as its chat produces them. */
static size_t demo_json(char *buf, size_t cap, int i) {
  static const char *users[] = {"alice", "bob", "carol", "dave", "erin"};
  static const char *words[] = {"hello", "world", "how", "are", "you",
                                "today", "the", "build", "is", "green",
                                "lunch", "at", "noon", "?", "ok", "thanks"};
  char content[160];
  size_t k = 0;
  unsigned x = (unsigned)i * 2654435761u + 7u;
  int nw = 3 + (int)(x % 9);
  for (int w = 0; w < nw; w++) {
    x = x * 1103515245u + 12345u;
    k += (size_t)snprintf(content + k, sizeof(content) - k, "%s%s",
                          w ? " " : "", words[(x >> 16) % 16]);
  }
  return (size_t)snprintf(
      buf, cap, "{\"user\":\"%s\",\"content\":\"%s\",\"timestamp\":%.3f}",
      users[i % 5], content, 1733400000.0 + i * 0.731);
}

/* Realistic text of n bytes (JSON records with prose). */
static size_t text_msg(char *buf, size_t n, int i) {
  size_t k = 0;
  while (k + 200 < n) {
    char one[200];
    size_t m = demo_json(one, sizeof(one), i++);
    memcpy(buf + k, one, m);
    k += m;
    buf[k++] = '\n';
  }
  while (k < n)
    buf[k++] = ' ';
  return n;
}

typedef struct setting {
  const char *name;
  int mode;      /* -1: no extension */
  int wbits;     /* 0: the preset's */
  int mem_level; /* 0: the preset's */
} setting;

typedef struct result {
  size_t idle;         /* server heap for the connection, pools excluded */
  double allocs_msg;   /* server allocations per message, warmed up */
  double ratio_demo;   /* wire / raw, demo JSON */
  double ratio_1k;     /* wire / raw, 1 KiB text */
} result;

/* Demo JSON then 1 KiB text over one connection; fills the ratios and
 * the allocations per message (second half of the demo messages). */
static void traffic(wsmsg_conn *c, wsmsg_conn *s, int msgs, result *r) {
  char *buf = malloc(16384 + 1);
  size_t raw = 0;
  wire = 0;
  echoed = 0;
  size_t a0 = 0;
  for (int i = 0; i < msgs; i++) {
    if (i == msgs / 2)
      a0 = cnt.allocs;
    size_t n = demo_json(buf, 16384, i);
    raw += n;
    wsmsg_send_text(c, buf, n);
    pump(c, s);
  }
  r->allocs_msg = (double)(cnt.allocs - a0) / (msgs - msgs / 2);
  /* payload bytes: the frame headers are 2 bytes each */
  r->ratio_demo = (double)(wire - (size_t)echoed * 2) / (double)raw;
  raw = wire = 0;
  long e0 = echoed;
  for (int i = 0; i < msgs / 4 + 1; i++) {
    size_t n = text_msg(buf, 1024, i);
    raw += n;
    wsmsg_send_text(c, buf, n);
    pump(c, s);
  }
  r->ratio_1k = (double)(wire - (size_t)(echoed - e0) * 4) / (double)raw;
  free(buf);
}

static result measure(const setting *st, int msgs) {
  result r = {0};
  memset(&cnt, 0, sizeof(cnt));
  wsmsg_endpoint *sep = wsmsg_endpoint_new_mem(&counting);
  wsmsg_endpoint *cep = wsmsg_endpoint_new();
  wsmsg_server *srv = wsmsg_server_new_mem(&counting);
  wsmsg_endpoint_on_text(sep, on_text);
  wsmsg_endpoint_on_text(cep, on_text);
  wsmsg_endpoint *both[] = {sep, cep};
  for (int i = 0; i < 2; i++) {
    if (st->mode < 0)
      continue;
    wsmsg_endpoint_set_deflate(both[i], st->mode);
    if (st->wbits)
      wsmsg_endpoint_set_deflate_window(both[i], st->wbits, st->wbits);
    if (st->mem_level)
      wsmsg_endpoint_set_deflate_level(both[i], 6, st->mem_level);
  }
  wsmsg_server_route(srv, "/", sep);
  /* the server's pools (frame parsers, buffers, idle zlib streams) are
   * shared by its connections: a first connection warms them, and the
   * second one's cost is what one more connection adds */
  result warm;
  wsmsg_conn *s1 = wsmsg_server_accept(srv, NULL);
  wsmsg_conn *c1 = wsmsg_client_new(cep, "h:1", "/", NULL);
  pump(c1, s1);
  traffic(c1, s1, msgs, &warm);
  size_t before = cnt.live;
  wsmsg_conn *s = wsmsg_server_accept(srv, NULL);
  wsmsg_conn *c = wsmsg_client_new(cep, "h:1", "/", NULL);
  pump(c, s);
  traffic(c, s, msgs, &r);
  r.idle = cnt.live - before;
  wsmsg_conn_free(s);
  wsmsg_conn_free(c);
  wsmsg_conn_free(s1);
  wsmsg_conn_free(c1);
  wsmsg_server_free(srv);
  wsmsg_endpoint_free(sep);
  wsmsg_endpoint_free(cep);
  return r;
}

int main(int argc, char **argv) {
  bool quick = argc > 1 && !strcmp(argv[1], "--quick");
  int msgs = quick ? 200 : 2000;
  static const setting settings[] = {
      {"no extension", -1, 0, 0},
      {"ON (no context takeover)", WSMSG_DEFLATE_ON, 0, 0},
      {"takeover, window 9, memLevel 1", WSMSG_DEFLATE_LOW_MEMORY, 9, 1},
      {"takeover, window 10, memLevel 2", WSMSG_DEFLATE_LOW_MEMORY, 10, 2},
      {"LOW_MEMORY: takeover, window 11, memLevel 4",
       WSMSG_DEFLATE_LOW_MEMORY, 0, 0},
      {"takeover, window 12, memLevel 5 (python-websockets)",
       WSMSG_DEFLATE_LOW_MEMORY, 12, 5},
      {"takeover, window 13, memLevel 6", WSMSG_DEFLATE_LOW_MEMORY, 13, 6},
      {"takeover, window 15, memLevel 4", WSMSG_DEFLATE_LOW_MEMORY, 15, 4},
      {"MAX_RATIO: takeover, window 15, memLevel 8",
       WSMSG_DEFLATE_MAX_RATIO, 0, 0},
      {"takeover, window 15, memLevel 9", WSMSG_DEFLATE_MAX_RATIO, 15, 9},
  };
  printf("| setting | bytes held per connection | allocations per message "
         "(warm) | wire/raw, demo JSON | wire/raw, 1 KiB text |\n");
  printf("|---|---:|---:|---:|---:|\n");
  size_t base = 0;
  for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
    result r = measure(&settings[i], msgs);
    if (i == 0)
      base = r.idle;
    printf("| %s | %zu (%+ld) | %.2f | %.3f | %.3f |\n", settings[i].name,
           r.idle, (long)r.idle - (long)base, r.allocs_msg, r.ratio_demo,
           r.ratio_1k);
    if (echoed <= 0) {
      fprintf(stderr, "deflate_mem: no echo came back\n");
      return 1;
    }
  }
  return 0;
}
