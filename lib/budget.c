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
 * See docs/reliability.md, "Memory budget". */
#include "internal.h"

static size_t held_now(const wsmsg_conn *c) {
  /* zlib streams (permessage-deflate) count while a connection holds one */
  return c->msg.cap + c->out.cap + c->deferred.cap + wsm_pmd_held(c);
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

bool wsm_budget_admit(const wsmsg_conn *c, size_t grow) {
  const wsmsg_server *srv = c->srv;
  if (!srv || !srv->mem_budget || grow == 0)
    return true;
  size_t h = held_now(c);
  if (h + grow <= srv->mem_share)
    return true;
  size_t used = atomic_load_explicit(&srv->mem_used, memory_order_relaxed);
  return used + grow <= srv->mem_budget;
}

int wsm_budget_reserve(wsmsg_conn *c, wsm_buf *b, size_t extra,
                       size_t min_cap) {
  if (b->cap - b->len >= extra)
    return 0;
  if (!wsm_budget_admit(c, wsm_pbuf_growth(b, extra, min_cap)))
    return WSMSG_ERR_BUDGET;
  int r = wsm_pbuf_reserve_min(b, c->pool, extra, min_cap);
  wsm_mem_account(c);
  return r;
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
