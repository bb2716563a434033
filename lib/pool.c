/* Pools of wslay frame parsers and buffers, shared by the connections of a
 * server (or the client connections of an endpoint).
 *
 * An idle connection holds neither: it borrows a frame parser and buffers
 * while it has bytes to parse or to write, and gives them back when it is
 * at a frame boundary with nothing pending.  Recycling them through a pool
 * (instead of malloc/free) keeps the steady-state message path free of
 * allocations.  A mutex makes the pool safe for connections driven from
 * different threads; it is taken a few times per wsmsg_conn_recv call, not
 * per message, and by a broadcast once per WSM_BUFCACHE_N recipients
 * (wsm_bufcache), not per recipient. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Buffers are pooled in power-of-two classes from 256 B to 2 MiB (a 1 MiB
 * message, the default limit, plus its frame header); at most this many
 * bytes of them wait in a pool, and this many parsers. */
#define MIN_CLASS 8
#define MAX_CLASS 21
#define MAX_POOLED_BYTES (8u << 20)
#define MAX_POOLED_SLOTS 1024u

void wsm_pool_init(wsm_pool *p, const wsmsg_mem *mem) {
  memset(p, 0, sizeof(*p));
  p->mem = mem;
  pthread_mutex_init(&p->mu, NULL);
}

void wsm_pool_destroy(wsm_pool *p) {
  wsm_pmd_pool_drain(p);
  for (wsm_slot *s = p->slots, *n; s; s = n) {
    n = s->next;
    wslay_frame_context_free(s->fr);
    wsm_free(p->mem, s);
  }
  for (int k = 0; k < WSM_POOL_CLASSES; k++) {
    for (size_t i = 0; i < p->bufs[k].n; i++)
      wsm_free(p->mem, p->bufs[k].b[i]);
    wsm_free(p->mem, p->bufs[k].b);
  }
  pthread_mutex_destroy(&p->mu);
  memset(p, 0, sizeof(*p));
}

wsm_slot *wsm_pool_get_slot(wsm_pool *p,
                            const struct wslay_frame_callbacks *cbs) {
  pthread_mutex_lock(&p->mu);
  wsm_slot *s = p->slots;
  if (s) {
    p->slots = s->next;
    p->nslots--;
  }
  pthread_mutex_unlock(&p->mu);
  if (s)
    return s;
  s = wsm_calloc(p->mem, sizeof(*s));
  if (!s)
    return NULL;
  /* the parser's user data is the slot, so a recycled parser can serve
   * another connection: only slot->conn changes */
  if (wslay_frame_context_init(&s->fr, cbs, s) != 0) {
    wsm_free(p->mem, s);
    return NULL;
  }
  return s;
}

void wsm_pool_put_slot(wsm_pool *p, wsm_slot *s, bool clean) {
  s->conn = NULL;
  if (clean) {
    pthread_mutex_lock(&p->mu);
    if (p->nslots < MAX_POOLED_SLOTS) {
      s->next = p->slots;
      p->slots = s;
      p->nslots++;
      s = NULL;
    }
    pthread_mutex_unlock(&p->mu);
  }
  if (s) {
    wslay_frame_context_free(s->fr);
    wsm_free(p->mem, s);
  }
}

static int class_of(size_t n) {
  int k = MIN_CLASS;
  while (k <= MAX_CLASS && ((size_t)1 << k) < n)
    k++;
  return k;
}

/* Buffers of a class are kept on a stack of pointers (taking a batch of
 * them reads the stack, not the buffers: no cache miss per buffer).  The
 * stack's room is made when a buffer is allocated, not when it comes
 * back: giving a buffer back never allocates, and out of memory is only
 * ever an allocation's error.  `live` counts the class's buffers that
 * exist (in use or pooled); the stack holds room for all of them, up to
 * what MAX_POOLED_BYTES can pool. */

/* Under the lock: room for one more live buffer of class k (false: out of
 * memory). */
static bool stack_reserve(wsm_pool *p, int k) {
  struct wsm_pool_stack *st = &p->bufs[k - MIN_CLASS];
  size_t max = MAX_POOLED_BYTES >> k;
  if (st->live < st->cap || st->cap >= max)
    return true;
  size_t ncap = st->cap ? st->cap * 2 : 64;
  if (ncap > max)
    ncap = max;
  void **nb = wsm_realloc(p->mem, st->b, st->cap * sizeof(void *),
                          ncap * sizeof(void *));
  if (!nb)
    return false;
  st->b = nb;
  st->cap = ncap;
  return true;
}

/* A new buffer of class k, its place on the stack made first. */
static void *new_buf(wsm_pool *p, int k) {
  struct wsm_pool_stack *st = &p->bufs[k - MIN_CLASS];
  pthread_mutex_lock(&p->mu);
  bool ok = stack_reserve(p, k);
  if (ok)
    st->live++;
  pthread_mutex_unlock(&p->mu);
  if (!ok)
    return NULL;
  void *b = wsm_malloc(p->mem, (size_t)1 << k);
  if (!b) {
    pthread_mutex_lock(&p->mu);
    st->live--;
    pthread_mutex_unlock(&p->mu);
  }
  return b;
}

/* Under the lock: pool a buffer of class k, or false (the pool is full:
 * the caller frees it and counts it gone). */
static bool stack_push(wsm_pool *p, int k, void *b) {
  struct wsm_pool_stack *st = &p->bufs[k - MIN_CLASS];
  size_t cap = (size_t)1 << k;
  if (st->n >= st->cap || p->pooled_bytes + cap > MAX_POOLED_BYTES)
    return false;
  st->b[st->n++] = b;
  p->pooled_bytes += cap;
  return true;
}

/* Under the lock: `n` buffers of class k are freed. */
static void bufs_gone(wsm_pool *p, int k, size_t n) {
  struct wsm_pool_stack *st = &p->bufs[k - MIN_CLASS];
  st->live -= n < st->live ? n : st->live;
}

static void *pool_get_buf(wsm_pool *p, size_t need, size_t *cap) {
  int k = class_of(need);
  if (k > MAX_CLASS) { /* too big to pool: exact allocation */
    *cap = need;
    return wsm_malloc(p->mem, need);
  }
  void *b = NULL;
  struct wsm_pool_stack *st = &p->bufs[k - MIN_CLASS];
  pthread_mutex_lock(&p->mu);
  if (st->n) {
    b = st->b[--st->n];
    p->pooled_bytes -= (size_t)1 << k;
  }
  pthread_mutex_unlock(&p->mu);
  *cap = (size_t)1 << k;
  return b ? b : new_buf(p, k);
}

/* ---- a broadcast's batch of buffers ----
 * A publish to many connections takes their output buffers from the pool a
 * batch at a time (one lock for up to WSM_BUFCACHE_N recipients, never more
 * buffers than recipients left) and gives back what it did not use. */

static void *cache_get_buf(wsm_bufcache *bc, wsm_pool *p, size_t need,
                           size_t *cap) {
  int k = class_of(need);
  if (k > MAX_CLASS)
    return pool_get_buf(p, need, cap);
  if (bc->n && (bc->pool != p || bc->k != k))
    wsm_bufcache_flush(bc); /* another pool or size: give those back */
  *cap = (size_t)1 << k;
  if (!bc->n) {
    size_t want = bc->want < WSM_BUFCACHE_N ? bc->want : WSM_BUFCACHE_N;
    if (want == 0)
      want = 1;
    bc->pool = p;
    bc->k = k;
    struct wsm_pool_stack *st = &p->bufs[k - MIN_CLASS];
    pthread_mutex_lock(&p->mu);
    /* a loop, not memcpy: a few pointers (one for one recipient) */
    while (bc->n < want && st->n)
      bc->b[bc->n++] = st->b[--st->n];
    p->pooled_bytes -= (size_t)bc->n << k;
    pthread_mutex_unlock(&p->mu);
    if (!bc->n) /* the pool has none: a new one */
      return new_buf(p, k);
  }
  return bc->b[--bc->n];
}

void wsm_bufcache_flush(wsm_bufcache *bc) {
  if (!bc->n)
    return;
  wsm_pool *p = bc->pool;
  pthread_mutex_lock(&p->mu);
  while (bc->n && stack_push(p, bc->k, bc->b[bc->n - 1]))
    bc->n--;
  bufs_gone(p, bc->k, bc->n); /* the pool filled up meanwhile */
  pthread_mutex_unlock(&p->mu);
  while (bc->n)
    wsm_free(p->mem, bc->b[--bc->n]);
}

static void pool_put_buf(wsm_pool *p, void *b, size_t cap) {
  if (!b)
    return;
  int k = class_of(cap);
  if (k <= MAX_CLASS && ((size_t)1 << k) == cap) {
    pthread_mutex_lock(&p->mu);
    if (stack_push(p, k, b))
      b = NULL;
    else
      bufs_gone(p, k, 1);
    pthread_mutex_unlock(&p->mu);
  }
  if (b)
    wsm_free(p->mem, b);
}

/* ---- pool-backed wsm_buf ---- */

int wsm_pbuf_reserve(wsm_buf *b, wsm_pool *p, size_t extra) {
  return wsm_pbuf_reserve_min(b, p, extra, 0);
}

int wsm_pbuf_reserve_min(wsm_buf *b, wsm_pool *p, size_t extra,
                         size_t min_cap) {
  return wsm_pbuf_reserve_cached(b, p, extra, min_cap, NULL);
}

int wsm_pbuf_reserve_cached(wsm_buf *b, wsm_pool *p, size_t extra,
                            size_t min_cap, wsm_bufcache *bc) {
  if (b->cap - b->len >= extra)
    return 0;
  if (b->off > 0) {
    memmove(b->p, b->p + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
    if (b->cap - b->len >= extra)
      return 0;
  }
  if (extra > SIZE_MAX / 4 - b->len)
    return WSMSG_ERR_NOMEM;
  size_t need = b->len + extra;
  if (b->cap && need < 2 * b->cap)
    need = 2 * b->cap; /* grow geometrically */
  if (need < min_cap)
    need = min_cap;
  size_t cap;
  uint8_t *n =
      bc ? cache_get_buf(bc, p, need, &cap) : pool_get_buf(p, need, &cap);
  if (!n)
    return WSMSG_ERR_NOMEM;
  if (b->len)
    memcpy(n, b->p, b->len);
  pool_put_buf(p, b->p, b->cap);
  b->p = n;
  b->cap = cap;
  return 0;
}

size_t wsm_pbuf_growth(const wsm_buf *b, size_t extra, size_t min_cap) {
  /* the same steps as wsm_pbuf_reserve_min, without doing them */
  if (b->cap - b->len + b->off >= extra)
    return 0;
  size_t len = b->len - b->off;
  if (extra > SIZE_MAX / 4 - len)
    return SIZE_MAX / 4;
  size_t need = len + extra;
  if (b->cap && need < 2 * b->cap)
    need = 2 * b->cap;
  if (need < min_cap)
    need = min_cap;
  int k = class_of(need);
  size_t cap = k > MAX_CLASS ? need : (size_t)1 << k;
  return cap > b->cap ? cap - b->cap : 0;
}

int wsm_pbuf_append(wsm_buf *b, wsm_pool *p, const void *d, size_t n) {
  if (n == 0)
    return 0;
  int r = wsm_pbuf_reserve(b, p, n);
  if (r)
    return r;
  memcpy(b->p + b->len, d, n);
  b->len += n;
  return 0;
}

void wsm_pbuf_release(wsm_buf *b, wsm_pool *p) {
  pool_put_buf(p, b->p, b->cap);
  memset(b, 0, sizeof(*b));
}
