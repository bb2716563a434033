/* Topics (publish/subscribe inside one event loop): a set of named topics,
 * each an array of subscribed connections that a publish hands to the
 * broadcast engine of send.c as is (framed once, the same bytes appended to
 * every subscriber's output, no allocation per recipient).
 *
 * Data structures, all from the set's allocator:
 *  - topics by name: a chained hash table (FNV-1a), O(1) expected;
 *  - subscriptions: one node per (topic, connection), in a second chained
 *    hash table keyed by the pair (O(1) subscribe/unsubscribe/lookup), in
 *    the connection's own list (so closing or freeing a connection drops
 *    its topics without a search), and at an index of its topic's arrays
 *    (swap-remove: O(1)).
 * While a topic is being published to (busy), removals leave NULL holes
 * (the broadcast skips NULL) and the arrays are compacted afterwards;
 * adding to it then fails with WSMSG_ERR_STATE, so the array the broadcast
 * walks never moves.
 *
 * A set belongs to one thread (one event loop), like its connections:
 * nothing here locks.  docs/scaling.md describes the thread model. */
#include "internal.h"

#include <string.h>

typedef struct wsm_topic {
  struct wsm_topic *hnext;
  uint64_t hash;
  wsmsg_conn **conns; /* the subscribers, as wsm_broadcast takes them */
  wsm_sub **subs;     /* subs[i] is conns[i]'s node */
  size_t n, cap;
  int busy;   /* a publish to it is running */
  bool holes; /* removals during that publish left NULLs */
  size_t len;
  char name[];
} wsm_topic;

struct wsm_sub {
  wsmsg_topics *set;
  wsm_topic *topic;
  wsmsg_conn *conn;
  size_t idx;                    /* in topic->conns */
  struct wsm_sub *cprev, *cnext; /* the connection's subscriptions */
  struct wsm_sub *hnext;         /* chain in set->sb */
};

struct wsmsg_topics {
  wsmsg_mem mem;
  wsm_topic **tb; /* topics by name */
  size_t tcap, ntopics;
  wsm_sub **sb; /* subscriptions by (topic, connection) */
  size_t scap, nsubs;
  wsmsg_publish_cb on_publish;
  void *pub_user;
  int busy; /* a publish runs: no nested publish */
  /* connections that left a topic during the publish after it had given
   * them output: wsm_broadcast no longer sees them to call on_output */
  wsmsg_conn *owed;
};

#define INITIAL_BUCKETS 16

static uint64_t hash_name(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ull;
  }
  return h;
}

static uint64_t hash_pair(const void *a, const void *b) {
  uint64_t x = (uint64_t)(uintptr_t)a * 0x9e3779b97f4a7c15ull;
  x ^= (uint64_t)(uintptr_t)b + 0x7f4a7c159e3779b9ull + (x << 6) + (x >> 2);
  x ^= x >> 31;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 29;
  return x;
}

/* ---- the set ---- */

wsmsg_topics *wsmsg_topics_new_mem(const wsmsg_mem *mem) {
  wsmsg_mem m;
  wsm_mem_init(&m, mem);
  wsmsg_topics *t = wsm_calloc(&m, sizeof(*t));
  if (!t)
    return NULL;
  t->mem = m;
  t->tb = wsm_calloc(&m, INITIAL_BUCKETS * sizeof(*t->tb));
  t->sb = wsm_calloc(&m, INITIAL_BUCKETS * sizeof(*t->sb));
  if (!t->tb || !t->sb) {
    wsm_free(&m, t->tb);
    wsm_free(&m, t->sb);
    wsm_free(&m, t);
    return NULL;
  }
  t->tcap = t->scap = INITIAL_BUCKETS;
  return t;
}

wsmsg_topics *wsmsg_topics_new(void) { return wsmsg_topics_new_mem(NULL); }

int wsmsg_topics_on_publish(wsmsg_topics *t, wsmsg_publish_cb cb, void *user) {
  if (!t)
    return WSMSG_ERR_INVALID_ARG;
  t->on_publish = cb;
  t->pub_user = user;
  return 0;
}

static wsm_topic *find_topic(const wsmsg_topics *t, const char *name,
                             size_t len, uint64_t h) {
  for (wsm_topic *tp = t->tb[h & (t->tcap - 1)]; tp; tp = tp->hnext)
    if (tp->hash == h && tp->len == len && !memcmp(tp->name, name, len))
      return tp;
  return NULL;
}

static wsm_sub *find_sub(const wsmsg_topics *t, const wsm_topic *tp,
                         const wsmsg_conn *c) {
  for (wsm_sub *s = t->sb[hash_pair(tp, c) & (t->scap - 1)]; s; s = s->hnext)
    if (s->topic == tp && s->conn == c)
      return s;
  return NULL;
}

/* Double a chained table when it holds more entries than buckets (best
 * effort: out of memory leaves longer chains, never an error). */
static void grow_topics(wsmsg_topics *t) {
  if (t->ntopics <= t->tcap)
    return;
  size_t ncap = t->tcap * 2;
  wsm_topic **nb = wsm_calloc(&t->mem, ncap * sizeof(*nb));
  if (!nb)
    return;
  for (size_t i = 0; i < t->tcap; i++)
    for (wsm_topic *tp = t->tb[i], *next; tp; tp = next) {
      next = tp->hnext;
      tp->hnext = nb[tp->hash & (ncap - 1)];
      nb[tp->hash & (ncap - 1)] = tp;
    }
  wsm_free(&t->mem, t->tb);
  t->tb = nb;
  t->tcap = ncap;
}

static void grow_subs(wsmsg_topics *t) {
  if (t->nsubs <= t->scap)
    return;
  size_t ncap = t->scap * 2;
  wsm_sub **nb = wsm_calloc(&t->mem, ncap * sizeof(*nb));
  if (!nb)
    return;
  for (size_t i = 0; i < t->scap; i++)
    for (wsm_sub *s = t->sb[i], *next; s; s = next) {
      next = s->hnext;
      size_t b = hash_pair(s->topic, s->conn) & (ncap - 1);
      s->hnext = nb[b];
      nb[b] = s;
    }
  wsm_free(&t->mem, t->sb);
  t->sb = nb;
  t->scap = ncap;
}

static void free_topic(wsmsg_topics *t, wsm_topic *tp) {
  wsm_topic **pp = &t->tb[tp->hash & (t->tcap - 1)];
  while (*pp != tp)
    pp = &(*pp)->hnext;
  *pp = tp->hnext;
  t->ntopics--;
  wsm_free(&t->mem, tp->conns);
  wsm_free(&t->mem, tp->subs);
  wsm_free(&t->mem, tp);
}

/* Close the holes a publish left, then free the topic if it is empty. */
static void settle_topic(wsmsg_topics *t, wsm_topic *tp) {
  if (tp->busy)
    return;
  if (tp->holes) {
    size_t k = 0;
    for (size_t i = 0; i < tp->n; i++)
      if (tp->subs[i]) {
        tp->subs[k] = tp->subs[i];
        tp->conns[k] = tp->conns[i];
        tp->subs[k]->idx = k;
        k++;
      }
    tp->n = k;
    tp->holes = false;
  }
  if (tp->n == 0)
    free_topic(t, tp);
}

/* Remove a subscription everywhere and free its node. */
static void drop_sub(wsm_sub *s) {
  wsmsg_topics *t = s->set;
  wsm_topic *tp = s->topic;
  /* the (topic, connection) table */
  wsm_sub **pp = &t->sb[hash_pair(tp, s->conn) & (t->scap - 1)];
  while (*pp != s)
    pp = &(*pp)->hnext;
  *pp = s->hnext;
  t->nsubs--;
  /* the connection's list */
  if (s->cprev)
    s->cprev->cnext = s->cnext;
  else
    s->conn->subs = s->cnext;
  if (s->cnext)
    s->cnext->cprev = s->cprev;
  /* the topic's arrays */
  if (tp->busy) {
    if (s->conn->out_notify && !s->conn->notify_next && t->owed != s->conn) {
      s->conn->notify_next = t->owed ? t->owed : s->conn; /* self: last */
      t->owed = s->conn;
    }
    tp->conns[s->idx] = NULL;
    tp->subs[s->idx] = NULL;
    tp->holes = true;
  } else {
    size_t last = tp->n - 1;
    if (s->idx != last) {
      tp->conns[s->idx] = tp->conns[last];
      tp->subs[s->idx] = tp->subs[last];
      tp->subs[s->idx]->idx = s->idx;
    }
    tp->n = last;
  }
  wsm_free(&t->mem, s);
  settle_topic(t, tp);
}

void wsmsg_topics_free(wsmsg_topics *t) {
  if (!t)
    return;
  for (size_t i = 0; i < t->scap; i++)
    while (t->sb[i])
      drop_sub(t->sb[i]); /* the last one of a topic frees it */
  wsm_free(&t->mem, t->tb);
  wsm_free(&t->mem, t->sb);
  wsmsg_mem m = t->mem;
  wsm_free(&m, t);
}

/* ---- subscriptions ---- */

int wsmsg_topic_subscribe(wsmsg_topics *t, wsmsg_conn *c, const char *topic) {
  if (!t || !c || !topic)
    return WSMSG_ERR_INVALID_ARG;
  if (c->state != WSMSG_STATE_OPEN || c->close_sent || c->aborted)
    return c->state == WSMSG_STATE_CONNECTING ? WSMSG_ERR_STATE
                                              : WSMSG_ERR_CLOSED;
  size_t len = strlen(topic);
  uint64_t h = hash_name(topic, len);
  wsm_topic *tp = find_topic(t, topic, len, h);
  if (tp && find_sub(t, tp, c))
    return 1;
  if (tp && tp->busy)
    return WSMSG_ERR_STATE; /* its array is being walked */
  bool fresh = false;
  if (!tp) {
    tp = wsm_calloc(&t->mem, sizeof(*tp) + len + 1);
    if (!tp)
      return WSMSG_ERR_NOMEM;
    memcpy(tp->name, topic, len + 1);
    tp->len = len;
    tp->hash = h;
    tp->hnext = t->tb[h & (t->tcap - 1)];
    t->tb[h & (t->tcap - 1)] = tp;
    t->ntopics++;
    fresh = true;
  }
  wsm_sub *s = NULL;
  if (tp->n == tp->cap) {
    size_t ncap = tp->cap ? tp->cap * 2 : 4;
    wsmsg_conn **nc = wsm_realloc(&t->mem, tp->conns, tp->cap * sizeof(*nc),
                                  ncap * sizeof(*nc));
    if (nc)
      tp->conns = nc;
    wsm_sub **ns = nc ? wsm_realloc(&t->mem, tp->subs, tp->cap * sizeof(*ns),
                                    ncap * sizeof(*ns))
                      : NULL;
    if (ns)
      tp->subs = ns;
    if (!nc || !ns)
      goto nomem;
    tp->cap = ncap;
  }
  s = wsm_calloc(&t->mem, sizeof(*s));
  if (!s)
    goto nomem;
  s->set = t;
  s->topic = tp;
  s->conn = c;
  s->idx = tp->n;
  tp->conns[tp->n] = c;
  tp->subs[tp->n] = s;
  tp->n++;
  size_t b = hash_pair(tp, c) & (t->scap - 1);
  s->hnext = t->sb[b];
  t->sb[b] = s;
  t->nsubs++;
  s->cnext = c->subs;
  if (c->subs)
    c->subs->cprev = s;
  c->subs = s;
  grow_topics(t);
  grow_subs(t);
  return 0;
nomem:
  if (fresh)
    free_topic(t, tp);
  return WSMSG_ERR_NOMEM;
}

int wsmsg_topic_unsubscribe(wsmsg_topics *t, wsmsg_conn *c, const char *topic) {
  if (!t || !c || !topic)
    return WSMSG_ERR_INVALID_ARG;
  size_t len = strlen(topic);
  wsm_topic *tp = find_topic(t, topic, len, hash_name(topic, len));
  wsm_sub *s = tp ? find_sub(t, tp, c) : NULL;
  if (!s)
    return WSMSG_ERR_NOT_FOUND;
  drop_sub(s);
  return 0;
}

int wsmsg_topic_is_subscribed(const wsmsg_topics *t, const wsmsg_conn *c,
                              const char *topic) {
  if (!t || !c || !topic)
    return 0;
  size_t len = strlen(topic);
  const wsm_topic *tp = find_topic(t, topic, len, hash_name(topic, len));
  return tp && find_sub(t, tp, c) != NULL;
}

size_t wsmsg_topic_subscribers(const wsmsg_topics *t, const char *topic) {
  if (!t || !topic)
    return 0;
  size_t len = strlen(topic);
  const wsm_topic *tp = find_topic(t, topic, len, hash_name(topic, len));
  if (!tp)
    return 0;
  if (!tp->holes)
    return tp->n;
  size_t k = 0;
  for (size_t i = 0; i < tp->n; i++)
    k += tp->subs[i] != NULL;
  return k;
}

size_t wsmsg_topics_count(const wsmsg_topics *t) { return t ? t->ntopics : 0; }

size_t wsmsg_conn_topic_count(const wsmsg_conn *c) {
  size_t k = 0;
  for (const wsm_sub *s = c ? c->subs : NULL; s; s = s->cnext)
    k++;
  return k;
}

void wsm_topics_conn_gone(wsmsg_conn *c) {
  while (c->subs)
    drop_sub(c->subs);
}

/* ---- publishing ---- */

/* op is WSLAY_TEXT_FRAME (UTF-8 already checked) or WSLAY_BINARY_FRAME. */
static int64_t publish(wsmsg_topics *t, const char *topic, uint8_t op,
                       const void *data, size_t len, int flags) {
  if (t->busy)
    return WSMSG_ERR_STATE;
  size_t nlen = strlen(topic);
  wsm_topic *tp = find_topic(t, topic, nlen, hash_name(topic, nlen));
  int64_t sent = 0;
  t->busy = 1;
  if (tp && tp->n) {
    /* permessage-deflate: when negotiated, the broadcast engine frames
     * once per compression parameter set; topics need nothing else */
    tp->busy++;
    sent = wsm_broadcast(tp->conns, tp->n, op, data, len);
    tp->busy--;
    settle_topic(t, tp); /* tp may be gone now */
    while (t->owed) {
      wsmsg_conn *c = t->owed;
      t->owed = c->notify_next == c ? NULL : c->notify_next;
      c->notify_next = NULL;
      if (c->out_notify) {
        c->out_notify = false;
        if (c->srv && c->srv->on_output)
          c->srv->on_output(c, c->user);
      }
    }
  }
  if (!(flags & WSMSG_PUBLISH_REMOTE) && t->on_publish)
    t->on_publish(t, topic,
                  op == WSLAY_TEXT_FRAME ? WSMSG_EV_TEXT : WSMSG_EV_BINARY,
                  data, len, t->pub_user);
  t->busy = 0;
  return sent;
}

int64_t wsmsg_topic_publish(wsmsg_topics *t, const char *topic, int type,
                            const void *data, size_t len, int flags) {
  if (!t || !topic || (!data && len) ||
      (type != WSMSG_EV_TEXT && type != WSMSG_EV_BINARY) ||
      (flags & ~WSMSG_PUBLISH_REMOTE))
    return WSMSG_ERR_INVALID_ARG;
  if (type == WSMSG_EV_TEXT && !wsmsg_utf8_valid(data, len))
    return WSMSG_ERR_UTF8;
  return publish(t, topic,
                 type == WSMSG_EV_TEXT ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME,
                 data ? data : "", len, flags);
}

int64_t wsmsg_topic_publish_json(wsmsg_topics *t, const char *topic,
                                 const json_t *msg, int flags) {
  if (!t || !topic || !msg || (flags & ~WSMSG_PUBLISH_REMOTE))
    return WSMSG_ERR_INVALID_ARG;
  char stack[4096];
  size_t len =
      json_dumpb(msg, stack, sizeof(stack), JSON_COMPACT | JSON_ENCODE_ANY);
  if (len == 0)
    return WSMSG_ERR_INVALID_ARG;
  /* jansson writes valid UTF-8: no second check */
  if (len <= sizeof(stack))
    return publish(t, topic, WSLAY_TEXT_FRAME, stack, len, flags);
  char *heap = wsm_malloc(&t->mem, len);
  if (!heap)
    return WSMSG_ERR_NOMEM;
  int64_t r = json_dumpb(msg, heap, len, JSON_COMPACT | JSON_ENCODE_ANY) == len
                  ? publish(t, topic, WSLAY_TEXT_FRAME, heap, len, flags)
                  : WSMSG_ERR_INVALID_ARG;
  wsm_free(&t->mem, heap);
  return r;
}
