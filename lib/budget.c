/* The server-wide memory budget: bytes held in unfinished messages and
 * output queues across all connections of a server.
 *
 * Every connection counts what its message buffer and output buffers hold
 * (their capacity: that is what the allocator gave) into one atomic
 * counter of its server.  A connection may always hold its share
 * (wsmsg_server_set_memory_budget's `per_conn`) whatever the others hold,
 * so a normal client keeps working while the budget is spent; beyond its
 * share a buffer grows only while the server is under the budget.  A
 * connection that asks for more past the budget is closed with 1013 "Try
 * Again Later" (it is by definition one of the big holders): only the
 * connection itself is touched, by the thread that runs it, so no lock
 * and no registry of connections are needed.  Bound: budget + (number of
 * connections) x share, plus what threads admitted at the same instant.
 * A broadcast counts its recipients' growth in batches (wsm_batch): its
 * own admissions see the batch, other threads see it within
 * BATCH_MAX_PENDING bytes.
 * See docs/reliability.md, "Memory budget". */
#include "internal.h"

/* A broadcast's pending growth is counted into mem_used at least this
 * often: what another thread's admission may not see yet is bounded. */
#define BATCH_MAX_PENDING ((size_t)64 << 10)

static size_t held_now(const wsmsg_conn *c) {
  /* zlib streams (permessage-deflate) count while a connection holds one */
  return c->msg.cap + c->out.cap + c->deferred.cap +
         (c->pmd.def || c->pmd.inf ? wsm_pmd_held(c) : 0);
}

void wsm_mem_account(wsmsg_conn *c) {
  if (!c->srv)
    return;
  size_t now = held_now(c);
  if (now == c->mem_held)
    return;
  if (now > c->mem_held)
    atomic_fetch_add_explicit(&c->srv->mem_used, now - c->mem_held,
                              memory_order_relaxed);
  else
    atomic_fetch_sub_explicit(&c->srv->mem_used, c->mem_held - now,
                              memory_order_relaxed);
  c->mem_held = now;
}

void wsm_batch_flush_mem(wsm_batch *bt) {
  if (bt->pending)
    atomic_fetch_add_explicit(&bt->srv->mem_used, bt->pending,
                              memory_order_relaxed);
  bt->pending = 0;
}

/* wsm_mem_account, with growth added to the batch (shrinking, rare in a
 * broadcast, is counted at once). */
static void account_batch(wsmsg_conn *c, wsm_batch *bt) {
  size_t now = held_now(c);
  if (!bt || !c->srv || now <= c->mem_held) {
    wsm_mem_account(c);
    return;
  }
  if (bt->srv != c->srv) {
    wsm_batch_flush_mem(bt);
    bt->srv = c->srv;
  }
  bt->pending += now - c->mem_held;
  c->mem_held = now;
  if (bt->pending >= BATCH_MAX_PENDING)
    wsm_batch_flush_mem(bt);
}

/* wsm_budget_admit, counting a batch's pending bytes as used. */
static bool admit_batch(const wsmsg_conn *c, size_t grow, const wsm_batch *bt) {
  const wsmsg_server *srv = c->srv;
  if (!srv || !srv->mem_budget || grow == 0)
    return true;
  size_t h = held_now(c);
  if (h + grow <= srv->mem_share)
    return true;
  size_t used = atomic_load_explicit(&srv->mem_used, memory_order_relaxed);
  if (bt && bt->srv == srv)
    used += bt->pending;
  return used + grow <= srv->mem_budget;
}

bool wsm_budget_admit(const wsmsg_conn *c, size_t grow) {
  return admit_batch(c, grow, NULL);
}

int wsm_budget_reserve_batch(wsmsg_conn *c, wsm_buf *b, size_t extra,
                             size_t min_cap, wsm_batch *bt) {
  if (b->cap - b->len >= extra)
    return 0;
  if (!admit_batch(c, wsm_pbuf_growth(b, extra, min_cap), bt))
    return WSMSG_ERR_BUDGET;
  int r = wsm_pbuf_reserve_cached(b, c->pool, extra, min_cap,
                                  bt ? &bt->bufs : NULL);
  account_batch(c, bt);
  return r;
}

int wsm_budget_reserve(wsmsg_conn *c, wsm_buf *b, size_t extra,
                       size_t min_cap) {
  return wsm_budget_reserve_batch(c, b, extra, min_cap, NULL);
}

void wsm_conn_trim(wsmsg_conn *c) {
  if (c->msg.cap && !c->in_recv &&
      (!c->msg_op || c->failed || c->state == WSMSG_STATE_CLOSED))
    wsm_pbuf_release(&c->msg, c->pool);
  if (!c->in_recv && (c->failed || c->state == WSMSG_STATE_CLOSED))
    wsm_pmd_release(c); /* no message will be compressed or inflated */
  if (c->aborted && c->out.cap && c->out.len == c->out.off)
    wsm_pbuf_release(&c->out, c->pool);
  wsm_mem_account(c);
}

size_t wsmsg_server_memory_used(const wsmsg_server *srv) {
  return srv ? atomic_load(&srv->mem_used) : 0;
}
