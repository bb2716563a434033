/* Time: the default clock, and timer sets (wsmsg_timers): a min-heap of
 * connections keyed by deadline.  What each connection's deadline is, and
 * what happens when it comes, is timeout.c's. */
#include "internal.h"

#include <time.h>

uint64_t wsm_default_clock(void *user) {
  (void)user;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t wsmsg_now_ms(void) { return wsm_default_clock(NULL); }

/* ---- the heap ----
 * heap[0] has the smallest key.  Each connection knows its index, so a key
 * can move in O(log n).  Keys may be earlier than the true deadline (moves
 * to later are lazy): such a connection is ticked for nothing and re-keyed.
 * Every registered connection is in the heap; NO_DEADLINE keys sort last. */

#define NO_DEADLINE UINT64_MAX

#define NOT_IN_HEAP SIZE_MAX

wsmsg_timers *wsmsg_timers_new_mem(const wsmsg_mem *mem) {
  wsmsg_mem m;
  wsm_mem_init(&m, mem);
  wsmsg_timers *t = wsm_calloc(&m, sizeof(*t));
  if (t)
    t->mem = m;
  return t;
}

wsmsg_timers *wsmsg_timers_new(void) { return wsmsg_timers_new_mem(NULL); }

static void place(wsmsg_timers *t, size_t i, wsmsg_conn *c) {
  t->heap[i] = c;
  c->heap_idx = i;
}

static void sift_up(wsmsg_timers *t, size_t i) {
  wsmsg_conn *c = t->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (t->heap[parent]->heap_key <= c->heap_key)
      break;
    place(t, i, t->heap[parent]);
    i = parent;
  }
  place(t, i, c);
}

static void sift_down(wsmsg_timers *t, size_t i) {
  wsmsg_conn *c = t->heap[i];
  for (;;) {
    size_t l = 2 * i + 1, m = i;
    uint64_t mk = c->heap_key;
    if (l < t->n && t->heap[l]->heap_key < mk) {
      m = l;
      mk = t->heap[l]->heap_key;
    }
    if (l + 1 < t->n && t->heap[l + 1]->heap_key < mk)
      m = l + 1;
    if (m == i)
      break;
    place(t, i, t->heap[m]);
    i = m;
  }
  place(t, i, c);
}

static int heap_insert(wsmsg_timers *t, wsmsg_conn *c, uint64_t key) {
  if (t->n == t->cap) {
    size_t ncap = t->cap ? t->cap * 2 : 64;
    wsmsg_conn **h =
        wsm_realloc(&t->mem, t->heap, t->cap * sizeof(*h), ncap * sizeof(*h));
    if (!h)
      return WSMSG_ERR_NOMEM;
    t->heap = h;
    t->cap = ncap;
  }
  c->heap_key = key;
  place(t, t->n++, c);
  sift_up(t, t->n - 1);
  return 0;
}

static void heap_delete(wsmsg_timers *t, wsmsg_conn *c) {
  size_t i = c->heap_idx;
  if (i == NOT_IN_HEAP)
    return;
  c->heap_idx = NOT_IN_HEAP;
  wsmsg_conn *last = t->heap[--t->n];
  if (i == t->n)
    return;
  place(t, i, last);
  sift_up(t, i);
  sift_down(t, last->heap_idx);
}

void wsm_timers_touch(wsmsg_conn *c) {
  wsmsg_timers *t = c->timers;
  if (!t)
    return;
  int64_t d = wsmsg_conn_deadline(c);
  if (d < 0)
    return; /* lazy: a stale key just fires for nothing */
  if ((uint64_t)d < c->heap_key) {
    c->heap_key = (uint64_t)d;
    sift_up(t, c->heap_idx);
  }
}

int wsmsg_timers_add(wsmsg_timers *t, wsmsg_conn *c) {
  if (!t || !c)
    return WSMSG_ERR_INVALID_ARG;
  if (c->timers == t)
    return 0;
  wsmsg_timers_remove(c);
  int64_t d = wsmsg_conn_deadline(c);
  int r = heap_insert(t, c, d < 0 ? NO_DEADLINE : (uint64_t)d);
  if (r)
    return r;
  c->timers = t;
  return 0;
}

void wsmsg_timers_remove(wsmsg_conn *c) {
  if (!c || !c->timers)
    return;
  heap_delete(c->timers, c);
  c->timers = NULL;
}

size_t wsmsg_timers_count(const wsmsg_timers *t) { return t ? t->n : 0; }

void wsmsg_timers_free(wsmsg_timers *t) {
  if (!t)
    return;
  for (size_t i = 0; i < t->n; i++) {
    t->heap[i]->timers = NULL;
    t->heap[i]->heap_idx = NOT_IN_HEAP;
  }
  wsmsg_mem m = t->mem;
  wsm_free(&m, t->heap);
  wsm_free(&m, t);
}

int64_t wsmsg_timers_next_ms(const wsmsg_timers *t, uint64_t now) {
  if (!t || t->n == 0 || t->heap[0]->heap_key == NO_DEADLINE)
    return -1;
  uint64_t k = t->heap[0]->heap_key;
  return k <= now ? 0 : (int64_t)(k - now);
}

wsmsg_conn *wsmsg_timers_expire(wsmsg_timers *t, uint64_t now) {
  if (!t)
    return NULL;
  /* bounded: every iteration re-keys one connection past `now` or removes
   * it from the heap */
  size_t budget = t->n + 1;
  while (t->n > 0 && t->heap[0]->heap_key <= now &&
         t->heap[0]->heap_key != NO_DEADLINE && budget-- > 0) {
    wsmsg_conn *c = t->heap[0];
    int fired = wsm_conn_tick_count(c, now);
    if (c->timers != t) {
      if (fired)
        return c; /* removed by a callback */
      continue;
    }
    int64_t d = wsmsg_conn_deadline(c);
    if (d < 0)
      c->heap_key = NO_DEADLINE;
    else
      c->heap_key = (uint64_t)d > now ? (uint64_t)d : now + 1;
    sift_down(t, c->heap_idx);
    if (fired)
      return c;
  }
  return NULL;
}
