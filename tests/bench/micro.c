/* micro — in-process benchmarks of wsmsg's echo path, no sockets.
 *
 * A wsmsg server connection is opened with a real upgrade request; then
 * batches of masked client frames (built once) are fed to wsmsg_conn_recv
 * in 16 KiB pieces (what wsmsg_conn_io_fd reads per call), the on_text /
 * on_binary callbacks echo with wsmsg_send_*, and everything is taken out
 * with wsmsg_conn_pending / wsmsg_conn_consume.  The same bytes go through
 * the server side of a bare wslay_event context (recv callback reading from
 * memory, on_msg_recv queueing the echo, send callback appending to one
 * buffer): the floor.
 *
 * Memory is counted two ways:
 *  - wsmsg's own allocations through the allocator hook (wsmsg_server_new_mem
 *    / wsmsg_endpoint_new_mem);
 *  - every allocation of the process (wslay and jansson call plain malloc)
 *    by interposing malloc/calloc/realloc/free/memalign in this executable,
 *    forwarding to glibc's __libc_* functions.  Bytes are
 *    malloc_usable_size() of each block (what the heap hands out, without
 *    glibc's 8-byte chunk header); "wslay" = all - wsmsg hook.
 *  mallinfo2().uordblks deltas are printed as a cross-check (they include
 *  chunk headers).
 *
 *   micro [--quick] [--markdown]
 *
 * SPDX-License-Identifier: MIT
 */
#include <wsmsg.h>

#include "../../examples/common/message_model.h"
#include "../../examples/common/ws_frame.h"

#include <jansson.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wslay/wslay.h>

/* ---- malloc interposition ------------------------------------------------
 */

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

static struct {
  uint64_t allocs; /* malloc/calloc/realloc/memalign calls that allocated */
  uint64_t frees;
  int64_t live; /* usable bytes in use */
} all;

static void count_new(void *p) {
  if (p) {
    all.allocs++;
    all.live += (int64_t)malloc_usable_size(p);
  }
}

void *malloc(size_t n) {
  void *p = __libc_malloc(n);
  count_new(p);
  return p;
}

void *calloc(size_t a, size_t b) {
  void *p = __libc_calloc(a, b);
  count_new(p);
  return p;
}

void *realloc(void *old, size_t n) {
  int64_t before = old ? (int64_t)malloc_usable_size(old) : 0;
  void *p = __libc_realloc(old, n);
  if (p) {
    all.allocs++;
    if (old)
      all.frees++; /* the old block is gone (moved or resized) */
    all.live += (int64_t)malloc_usable_size(p) - before;
  } else if (n == 0 && old) {
    all.frees++;
    all.live -= before;
  }
  return p;
}

void free(void *p) {
  if (p) {
    all.frees++;
    all.live -= (int64_t)malloc_usable_size(p);
  }
  __libc_free(p);
}

void *memalign(size_t al, size_t n) {
  void *p = __libc_memalign(al, n);
  count_new(p);
  return p;
}

void *aligned_alloc(size_t al, size_t n) { return memalign(al, n); }

int posix_memalign(void **out, size_t al, size_t n) {
  void *p = memalign(al, n);
  if (!p)
    return 12; /* ENOMEM */
  *out = p;
  return 0;
}

/* ---- the wsmsg allocator hook ----------------------------------------------
 */

static struct {
  uint64_t allocs, frees;
  int64_t live;
} hook;

static void *h_malloc(size_t n, void *u) {
  (void)u;
  void *p = malloc(n);
  if (p) {
    hook.allocs++;
    hook.live += (int64_t)malloc_usable_size(p);
  }
  return p;
}

static void h_free(void *p, void *u) {
  (void)u;
  if (p) {
    hook.frees++;
    hook.live -= (int64_t)malloc_usable_size(p);
  }
  free(p);
}

static void *h_realloc(void *p, size_t n, void *u) {
  (void)u;
  int64_t before = p ? (int64_t)malloc_usable_size(p) : 0;
  void *q = realloc(p, n);
  if (q) {
    hook.allocs++;
    if (p)
      hook.frees++;
    hook.live += (int64_t)malloc_usable_size(q) - before;
  }
  return q;
}

static const wsmsg_mem counting_mem = {NULL, h_malloc, h_free, h_realloc};

typedef struct snap {
  uint64_t all_allocs, hook_allocs, all_frees, hook_frees;
  int64_t all_live, hook_live;
  size_t mi_used;
} snap;

static snap take(void) {
  struct mallinfo2 mi = mallinfo2();
  snap s = {all.allocs,
            hook.allocs,
            all.frees,
            hook.frees,
            all.live,
            hook.live,
            mi.uordblks + mi.hblkhd};
  return s;
}

/* ---- helpers ----------------------------------------------------------------
 */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const uint8_t KEY[4] = {0x37, 0xfa, 0x21, 0x3d};

/* one masked client frame of n bytes with opcode op */
static size_t build_frame(uint8_t *out, int op, const uint8_t *payload,
                          size_t n) {
  size_t k = ws_frame_header(out, (uint8_t)(0x80 | op), n, KEY);
  if (n)
    memcpy(out + k, payload, n);
  ws_frame_mask(out + k, n, KEY);
  return k + n;
}

/* A batch of identical frames, about 256 KiB (at least one frame). */
typedef struct batch {
  uint8_t *bytes;
  size_t len;
  size_t frames;
  size_t size; /* payload bytes per frame */
} batch;

static batch make_batch(int op, size_t size) {
  batch b = {NULL, 0, 0, size};
  uint8_t *payload = malloc(size ? size : 1);
  for (size_t i = 0; i < size; i++)
    payload[i] = op == 1 ? (uint8_t)('a' + i % 26) : (uint8_t)(i * 131 + 7);
  size_t flen = size + 14;
  b.frames = (256u << 10) / flen;
  if (b.frames == 0)
    b.frames = 1;
  b.bytes = malloc(b.frames * flen);
  for (size_t i = 0; i < b.frames; i++)
    b.len += build_frame(b.bytes + b.len, op, payload, size);
  free(payload);
  return b;
}

#define CHUNK 16384 /* what wsmsg_conn_io_fd reads per call */

static const char UPGRADE[] = "GET /ws/echo HTTP/1.1\r\n"
                              "Host: bench\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n";

/* The work of a JSON validate-and-reply by hand with jansson: parse, check
 * the three MessageModel fields, add "status", serialize.  Exits if the
 * document is rejected (the benchmarks only send valid ones). */
static char *jansson_reply(const char *doc, size_t len) {
  json_t *d = json_loadb(doc, len, 0, NULL);
  if (!d || !json_is_string(json_object_get(d, "user")) ||
      !json_is_string(json_object_get(d, "content")) ||
      !json_is_number(json_object_get(d, "timestamp"))) {
    fprintf(stderr, "micro: jansson rejected the document\n");
    exit(1);
  }
  json_object_set_new(d, "status", json_string("PROCESSED"));
  char *out = json_dumps(d, JSON_COMPACT);
  json_decref(d);
  if (!out)
    exit(1);
  return out;
}

/* ---- wsmsg side -----------------------------------------------------------
 */

static uint64_t echoed;

static void w_text(wsmsg_conn *c, const char *d, size_t n, void *u) {
  (void)u;
  echoed++;
  wsmsg_send_text(c, d, n);
}

static void w_binary(wsmsg_conn *c, const uint8_t *d, size_t n, void *u) {
  (void)u;
  echoed++;
  wsmsg_send_binary(c, d, n);
}

static wsmsg_endpoint *w_ep;
static wsmsg_server *w_srv;

static void w_drain(wsmsg_conn *c) {
  const void *p;
  size_t n;
  for (int i = 0; i < 1000 && (n = wsmsg_conn_pending(c, &p)) > 0; i++)
    wsmsg_conn_consume(c, n);
}

static wsmsg_conn *w_open_on(wsmsg_server *srv) {
  wsmsg_conn *c = wsmsg_server_accept(srv, NULL);
  if (!c)
    return NULL;
  wsmsg_conn_recv(c, UPGRADE, sizeof(UPGRADE) - 1);
  w_drain(c);
  if (wsmsg_conn_state(c) != WSMSG_STATE_OPEN) {
    fprintf(stderr, "micro: wsmsg handshake failed: %s\n",
            wsmsg_conn_error_detail(c));
    exit(1);
  }
  return c;
}

static wsmsg_conn *w_open(void) { return w_open_on(w_srv); }

/* feed one batch the way wsmsg_conn_io_fd would: 16 KiB recv calls, then
 * write everything out */
static void w_feed(wsmsg_conn *c, const batch *b) {
  for (size_t off = 0; off < b->len; off += CHUNK) {
    size_t n = b->len - off < CHUNK ? b->len - off : CHUNK;
    wsmsg_conn_recv(c, b->bytes + off, n);
  }
  w_drain(c);
}

/* ---- bare wslay_event side ------------------------------------------------
 */

typedef struct wl {
  wslay_event_context_ptr ctx;
  const uint8_t *in;
  size_t in_len;
  uint8_t *out;
  size_t out_len, out_cap;
} wl;

static ssize_t wl_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                       int flags, void *ud) {
  (void)flags;
  wl *w = ud;
  if (w->in_len == 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  size_t n = w->in_len < len ? w->in_len : len;
  memcpy(buf, w->in, n);
  w->in += n;
  w->in_len -= n;
  return (ssize_t)n;
}

static ssize_t wl_send(wslay_event_context_ptr ctx, const uint8_t *d,
                       size_t len, int flags, void *ud) {
  (void)flags;
  wl *w = ud;
  if (w->out_cap - w->out_len < len) {
    size_t cap = w->out_cap ? w->out_cap : 4096;
    while (cap - w->out_len < len)
      cap *= 2;
    uint8_t *p = realloc(w->out, cap);
    if (!p) {
      wslay_event_set_error(ctx, WSLAY_ERR_NOMEM);
      return -1;
    }
    w->out = p;
    w->out_cap = cap;
  }
  memcpy(w->out + w->out_len, d, len);
  w->out_len += len;
  return (ssize_t)len;
}

static bool wl_json; /* the floor's JSON validate-and-reply instead of echo */

/* what tests/bench/wslay_echo_server.c does for a valid MessageModel */
static void wl_reply_json(wslay_event_context_ptr ctx, const uint8_t *msg,
                          size_t len) {
  char *out = jansson_reply((const char *)msg, len);
  struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)out,
                              strlen(out)};
  wslay_event_queue_msg(ctx, &m); /* copies */
  free(out);
}

static void wl_msg(wslay_event_context_ptr ctx,
                   const struct wslay_event_on_msg_recv_arg *arg, void *ud) {
  (void)ud;
  if (wslay_is_ctrl_frame(arg->opcode))
    return;
  echoed++;
  if (wl_json) {
    wl_reply_json(ctx, arg->msg, arg->msg_length);
    return;
  }
  struct wslay_event_msg m = {arg->opcode, arg->msg, arg->msg_length};
  wslay_event_queue_msg(ctx, &m);
}

static const struct wslay_event_callbacks wl_cbs = {
    wl_recv, wl_send, NULL, NULL, NULL, NULL, wl_msg};

static wl *wl_open(void) {
  wl *w = calloc(1, sizeof(*w));
  if (!w || wslay_event_context_server_init(&w->ctx, &wl_cbs, w) != 0)
    exit(1);
  wslay_event_config_set_max_recv_msg_length(w->ctx, 64u << 20);
  return w;
}

static void wl_close(wl *w) {
  wslay_event_context_free(w->ctx);
  free(w->out);
  free(w);
}

static void wl_feed(wl *w, const batch *b) {
  for (size_t off = 0; off < b->len; off += CHUNK) {
    size_t n = b->len - off < CHUNK ? b->len - off : CHUNK;
    w->in = b->bytes + off;
    w->in_len = n;
    wslay_event_recv(w->ctx);
  }
  wslay_event_send(w->ctx);
  w->out_len = 0; /* "written" */
}

/* ---- measurements
 * ------------------------------------------------------------
 */

static double budget_s = 0.4;
static int failed; /* a path did not answer every message: exit status 1 */

typedef struct result {
  double msgs_per_s, gb_per_s, allocs_per_msg;
} result;

static result run_echo(bool use_wsmsg, int op, size_t size) {
  batch b = make_batch(op, size);
  wsmsg_conn *c = use_wsmsg ? w_open() : NULL;
  wl *w = use_wsmsg ? NULL : wl_open();
  /* warm up: buffers reach their steady size */
  for (int i = 0; i < 3; i++)
    use_wsmsg ? w_feed(c, &b) : wl_feed(w, &b);
  echoed = 0;
  uint64_t a0 = all.allocs;
  double t0 = now_s(), t1 = t0;
  uint64_t rounds = 0;
  for (; rounds < 100000000ull; rounds++) {
    use_wsmsg ? w_feed(c, &b) : wl_feed(w, &b);
    if ((rounds & 3) == 3 && (t1 = now_s()) - t0 >= budget_s)
      break;
  }
  t1 = now_s();
  result r;
  uint64_t msgs = (rounds + 1) * b.frames;
  if (echoed != msgs) {
    failed = 1;
    fprintf(stderr, "micro: %llu echoed for %llu fed\n",
            (unsigned long long)echoed, (unsigned long long)msgs);
  }
  r.msgs_per_s = (double)msgs / (t1 - t0);
  r.gb_per_s = r.msgs_per_s * (double)size / 1e9;
  r.allocs_per_msg = (double)(all.allocs - a0) / (double)msgs;
  if (use_wsmsg)
    wsmsg_conn_free(c);
  else
    wl_close(w);
  free(b.bytes);
  return r;
}

typedef struct memres {
  double all_bytes, hook_bytes, all_blocks, hook_blocks, mi_bytes;
} memres;

static memres per_conn(snap a, snap b, int n) {
  memres m;
  m.all_bytes = (double)(b.all_live - a.all_live) / n;
  m.hook_bytes = (double)(b.hook_live - a.hook_live) / n;
  /* live blocks: allocations minus frees (a realloc is one of each) */
  m.all_blocks = ((double)(b.all_allocs - a.all_allocs) -
                  (double)(b.all_frees - a.all_frees)) /
                 n;
  m.hook_blocks = ((double)(b.hook_allocs - a.hook_allocs) -
                   (double)(b.hook_frees - a.hook_frees)) /
                  n;
  m.mi_bytes = ((double)b.mi_used - (double)a.mi_used) / n;
  return m;
}

#define NCONN 256

/* heap per idle connection (after the handshake) and per connection in the
 * middle of a 64 KiB message, wsmsg and bare wslay */
static void run_memory(memres *w_idle, memres *w_mid, memres *l_idle,
                       memres *l_mid) {
  static wsmsg_conn *wc[NCONN];
  static wl *lc[NCONN];
  /* half of a 64 KiB binary frame */
  size_t size = 65536;
  uint8_t *payload = malloc(size);
  memset(payload, 'x', size);
  uint8_t *fr = malloc(size + 14);
  size_t flen = build_frame(fr, 2, payload, size);
  size_t half = flen / 2;

  snap s0 = take();
  for (int i = 0; i < NCONN; i++)
    wc[i] = w_open();
  snap s1 = take();
  for (int i = 0; i < NCONN; i++) {
    for (size_t off = 0; off < half; off += CHUNK)
      wsmsg_conn_recv(wc[i], fr + off, half - off < CHUNK ? half - off : CHUNK);
    w_drain(wc[i]);
  }
  snap s2 = take();
  for (int i = 0; i < NCONN; i++)
    wsmsg_conn_free(wc[i]);
  *w_idle = per_conn(s0, s1, NCONN);
  *w_mid = per_conn(s0, s2, NCONN);

  s0 = take();
  for (int i = 0; i < NCONN; i++)
    lc[i] = wl_open();
  s1 = take();
  for (int i = 0; i < NCONN; i++) {
    for (size_t off = 0; off < half; off += CHUNK) {
      lc[i]->in = fr + off;
      lc[i]->in_len = half - off < CHUNK ? half - off : CHUNK;
      wslay_event_recv(lc[i]->ctx);
    }
  }
  s2 = take();
  for (int i = 0; i < NCONN; i++)
    wl_close(lc[i]);
  *l_idle = per_conn(s0, s1, NCONN);
  *l_mid = per_conn(s0, s2, NCONN);
  free(fr);
  free(payload);
}

/* jansson: the work of a JSON validate-and-reply, no WebSocket at all */
static const char JDOC[] =
    "{\"user\": \"wsbench\", \"content\": \"abcdefghijklmnopqrstuvwxyzabcdef"
    "ghijklmnopqrstuvwxyzabcdefghijklm\", \"timestamp\": 1700000000.5}";

static void run_jansson(double *ns_per_msg, double *allocs_per_msg) {
  const char *doc = JDOC;
  uint64_t a0 = all.allocs, n = 0;
  double t0 = now_s(), t1 = t0;
  for (; n < 100000000ull; n++) {
    free(jansson_reply(doc, sizeof(JDOC) - 1));
    if ((n & 255) == 255 && (t1 = now_s()) - t0 >= budget_s)
      break;
  }
  t1 = now_s();
  n++;
  *ns_per_msg = (t1 - t0) / (double)n * 1e9;
  *allocs_per_msg = (double)(all.allocs - a0) / (double)n;
}

/* wsmsg: the demo's /ws/json-demo endpoint (examples/demo_server.c), fed
 * the same batches of masked frames as the echo path */
static const char MESSAGE_MODEL[] = MESSAGE_MODEL_SCHEMA;

static void w_json(wsmsg_conn *c, json_t *msg, void *u) {
  (void)u;
  echoed++;
  json_object_set_new(msg, "status", json_string("PROCESSED"));
  wsmsg_send_json(c, msg);
}

static uint64_t invalid;
static double json_hook_per_msg; /* wsmsg's own allocations per message */

static void w_invalid(wsmsg_conn *c, const wsmsg_verrors *e, const char *t,
                      size_t n, void *u) {
  (void)c, (void)e, (void)t, (void)n, (void)u;
  invalid++;
}

/* JSON validate-and-reply in memory: msgs/s and allocations per message
 * (every malloc in the process, jansson's included) */
static result run_json(bool use_wsmsg, wsmsg_server *jsrv) {
  batch b = {NULL, 0, 0, sizeof(JDOC) - 1};
  size_t flen = sizeof(JDOC) - 1 + 14;
  b.frames = (256u << 10) / flen;
  b.bytes = malloc(b.frames * flen);
  for (size_t i = 0; i < b.frames; i++)
    b.len += build_frame(b.bytes + b.len, 1, (const uint8_t *)JDOC,
                         sizeof(JDOC) - 1);
  wl_json = !use_wsmsg;
  wsmsg_conn *c = use_wsmsg ? w_open_on(jsrv) : NULL;
  wl *w = use_wsmsg ? NULL : wl_open();
  for (int i = 0; i < 2; i++)
    use_wsmsg ? w_feed(c, &b) : wl_feed(w, &b);
  echoed = 0;
  invalid = 0;
  uint64_t a0 = all.allocs, h0 = hook.allocs;
  double t0 = now_s(), t1 = t0;
  uint64_t rounds = 0;
  for (; rounds < 100000000ull; rounds++) {
    use_wsmsg ? w_feed(c, &b) : wl_feed(w, &b);
    if ((t1 = now_s()) - t0 >= budget_s)
      break;
  }
  t1 = now_s();
  uint64_t msgs = (rounds + 1) * b.frames;
  if (echoed != msgs || invalid) {
    failed = 1;
    fprintf(stderr, "micro: JSON: %llu replied, %llu invalid for %llu fed\n",
            (unsigned long long)echoed, (unsigned long long)invalid,
            (unsigned long long)msgs);
  }
  result r;
  r.msgs_per_s = (double)msgs / (t1 - t0);
  r.gb_per_s = r.msgs_per_s * (double)b.size / 1e9;
  r.allocs_per_msg = (double)(all.allocs - a0) / (double)msgs;
  if (use_wsmsg)
    json_hook_per_msg = (double)(hook.allocs - h0) / (double)msgs;
  if (use_wsmsg)
    wsmsg_conn_free(c);
  else
    wl_close(w);
  wl_json = false;
  free(b.bytes);
  return r;
}

static void fmt_rate(char *out, size_t n, double v) {
  if (v >= 1e6)
    snprintf(out, n, "%.2f M", v / 1e6);
  else if (v >= 1e3)
    snprintf(out, n, "%.1f k", v / 1e3);
  else
    snprintf(out, n, "%.0f", v);
}

/* --profile wsmsg|wslay text|binary SIZE BATCHES: just that echo loop, for
 * perf / callgrind (a fixed amount of work, no timing) */
static int profile_case(const char *impl, const char *type, size_t size,
                        long batches) {
  bool use_wsmsg = !strcmp(impl, "wsmsg");
  int op = !strcmp(type, "text") ? 1 : 2;
  batch b = make_batch(op, size);
  wsmsg_conn *c = use_wsmsg ? w_open() : NULL;
  wl *w = use_wsmsg ? NULL : wl_open();
  echoed = 0;
  for (long i = 0; i < batches; i++)
    use_wsmsg ? w_feed(c, &b) : wl_feed(w, &b);
  printf("%s %s %zu B: %llu messages echoed\n", impl, type, size,
         (unsigned long long)echoed);
  if (use_wsmsg)
    wsmsg_conn_free(c);
  else
    wl_close(w);
  free(b.bytes);
  return 0;
}

int main(int argc, char **argv) {
  w_ep = wsmsg_endpoint_new_mem(&counting_mem);
  w_srv = wsmsg_server_new_mem(&counting_mem);
  if (!w_ep || !w_srv)
    return 1;
  wsmsg_endpoint_on_text(w_ep, w_text);
  wsmsg_endpoint_on_binary(w_ep, w_binary);
  wsmsg_endpoint_set_max_message_size(w_ep, 16u << 20);
  wsmsg_server_route(w_srv, "*", w_ep);
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick")) {
      budget_s = 0.08;
    } else if (!strcmp(argv[i], "--profile") && i + 4 < argc) {
      int r = profile_case(argv[i + 1], argv[i + 2],
                           (size_t)strtoul(argv[i + 3], NULL, 10),
                           strtol(argv[i + 4], NULL, 10));
      wsmsg_server_free(w_srv);
      wsmsg_endpoint_free(w_ep);
      return r;
    } else {
      fprintf(stderr, "usage: micro [--quick] | --profile wsmsg|wslay "
                      "text|binary SIZE BATCHES\n");
      return 2;
    }
  }

  static const size_t sizes[] = {16, 64, 1024, 65536, 1048576};
  static const char *names[] = {"16 B", "64 B", "1 KiB", "64 KiB", "1 MiB"};
  printf("#### Echo path, in memory (server side: recv -> callback -> send -> "
         "pending)\n\n");
  printf("Input fed in %d-byte `wsmsg_conn_recv` calls (as "
         "`wsmsg_conn_io_fd` reads), output drained once per ~256 KiB batch; "
         "%.2f s per cell, one core.  GB/s = payload bytes echoed per second "
         "(1 GB = 1e9 B).\n\n",
         CHUNK, budget_s);
  printf("| size | type | wsmsg msgs/s | wsmsg GB/s | wsmsg allocs/msg | "
         "wslay_event msgs/s | wslay_event GB/s | wslay_event allocs/msg | "
         "wsmsg / wslay |\n");
  printf("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
  for (int t = 0; t < 2; t++) {
    int op = t == 0 ? 1 : 2;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
      result w = run_echo(true, op, sizes[i]);
      result l = run_echo(false, op, sizes[i]);
      char a[32], b[32];
      fmt_rate(a, sizeof(a), w.msgs_per_s);
      fmt_rate(b, sizeof(b), l.msgs_per_s);
      printf("| %s | %s | %s | %.3f | %.2f | %s | %.3f | %.2f | %.2fx |\n",
             names[i], op == 1 ? "text" : "binary", a, w.gb_per_s,
             w.allocs_per_msg, b, l.gb_per_s, l.allocs_per_msg,
             w.msgs_per_s / l.msgs_per_s);
      fflush(stdout);
    }
  }

  memres wi, wm, li, lm;
  run_memory(&wi, &wm, &li, &lm);
  printf("\n#### Heap per connection (average of %d server connections)\n\n",
         NCONN);
  printf("Bytes are `malloc_usable_size` of live blocks (glibc adds 8 B of "
         "chunk header to each); \"wsmsg hook\" = through the `wsmsg_mem` "
         "hook, \"all\" = every malloc in the process (interposed), so "
         "all - hook = wslay's own.  mallinfo2 = `uordblks + hblkhd` delta, "
         "headers included.\n\n");
  printf("| state | wsmsg: all bytes | of which wsmsg hook | of which wslay | "
         "live blocks (hook / all) | mallinfo2 | bare wslay_event: bytes | "
         "live blocks "
         "| mallinfo2 |\n");
  printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  printf("| idle, after handshake | %.0f | %.0f | %.0f | %.1f / %.1f | %.0f "
         "| %.0f | %.1f | %.0f |\n",
         wi.all_bytes, wi.hook_bytes, wi.all_bytes - wi.hook_bytes,
         wi.hook_blocks, wi.all_blocks, wi.mi_bytes, li.all_bytes,
         li.all_blocks, li.mi_bytes);
  printf("| middle of a 64 KiB binary message | %.0f | %.0f | %.0f | %.1f / "
         "%.1f | %.0f | %.0f | %.1f | %.0f |\n",
         wm.all_bytes, wm.hook_bytes, wm.all_bytes - wm.hook_bytes,
         wm.hook_blocks, wm.all_blocks, wm.mi_bytes, lm.all_bytes,
         lm.all_blocks, lm.mi_bytes);
  printf("\n(wslay_event needs no handshake; wsmsg's handshake buffers are "
         "freed once the connection is open.)\n");

  double jns, jallocs;
  run_jansson(&jns, &jallocs);
  printf("\n#### JSON work alone (jansson %s)\n\n", JANSSON_VERSION);
  printf("`json_loadb` + three hand checks + `json_object_set_new(status)` + "
         "`json_dumps(JSON_COMPACT)` of a %zu B MessageModel document: "
         "**%.2f us** and %.1f allocations per message (%.0f k msgs/s on "
         "one core before any WebSocket work).\n",
         sizeof(JDOC) - 1, jns / 1e3, jallocs, 1e6 / jns);

  /* the demo's JSON endpoint against the floor's hand checks */
  char err[256];
  wsmsg_schema *model = NULL;
  wsmsg_endpoint *jep = wsmsg_endpoint_new_mem(&counting_mem);
  wsmsg_server *jsrv = wsmsg_server_new_mem(&counting_mem);
  if (!jep || !jsrv ||
      wsmsg_schema_compile(MESSAGE_MODEL, sizeof(MESSAGE_MODEL) - 1, 0, &model,
                           err, sizeof(err)) != 0) {
    fprintf(stderr, "micro: JSON endpoint: %s\n", model ? "" : err);
    return 1;
  }
  wsmsg_endpoint_on_json(jep, w_json);
  wsmsg_endpoint_on_invalid(jep, w_invalid);
  wsmsg_endpoint_set_schema(jep, model);
  wsmsg_server_route(jsrv, "*", jep);
  result jw = run_json(true, jsrv);
  result jl = run_json(false, jsrv);
  char ra[32], rb[32];
  fmt_rate(ra, sizeof(ra), jw.msgs_per_s);
  fmt_rate(rb, sizeof(rb), jl.msgs_per_s);
  printf("\n#### JSON validate-and-reply, in memory\n\n");
  printf("The same %zu B MessageModel document in masked text frames, fed "
         "like the echo path.  wsmsg: the demo's `/ws/json-demo` endpoint "
         "(jansson parse, compiled JSON Schema, `on_json` adds `status`, "
         "`wsmsg_send_json`).  Floor: bare wslay_event with the three "
         "fields checked by hand, `json_dumps`, `wslay_event_queue_msg` (as "
         "`tests/bench/wslay_echo_server.c`).  Allocations count every "
         "malloc in the process, jansson's included; of these, wsmsg's own "
         "(through its allocator hook): %.2f per message.\n\n",
         sizeof(JDOC) - 1, json_hook_per_msg);
  printf("| | msgs/s | allocs/msg |\n|---|---:|---:|\n");
  printf("| wsmsg JSON endpoint | %s | %.1f |\n", ra, jw.allocs_per_msg);
  printf("| floor: wslay_event + hand checks | %s | %.1f |\n", rb,
         jl.allocs_per_msg);
  printf("| wsmsg / floor | %.2fx | |\n", jw.msgs_per_s / jl.msgs_per_s);
  wsmsg_server_free(jsrv);
  wsmsg_endpoint_free(jep);
  wsmsg_schema_free(model);
  wsmsg_server_free(w_srv);
  wsmsg_endpoint_free(w_ep);
  return failed;
}
