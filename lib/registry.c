/* The registry of a server's connections and graceful drain.
 *
 * Every connection wsmsg_server_accept creates is linked into its server's
 * list (intrusive: no allocation) until wsmsg_conn_free unlinks it, so the
 * server can count its connections and close them all, e.g. with 1001
 * "going away" when the host drains on SIGTERM.  A server may be shared by
 * threads (accept and free then run on several), so the list has a mutex;
 * closing connections touches them, so wsmsg_server_close_all belongs to
 * the thread that runs them (docs/scaling.md: one server per loop thread).
 * The draining flag is atomic: any thread may read it. */
#include "internal.h"

#include <string.h>

int wsm_registry_init(wsmsg_server *srv) {
  pthread_mutexattr_t a;
  if (pthread_mutexattr_init(&a))
    return WSMSG_ERR_NOMEM;
  int r = pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE) ||
          pthread_mutex_init(&srv->reg_mu, &a);
  pthread_mutexattr_destroy(&a);
  atomic_init(&srv->draining, 0);
  return r ? WSMSG_ERR_NOMEM : 0;
}

void wsm_registry_destroy(wsmsg_server *srv) {
  pthread_mutex_destroy(&srv->reg_mu);
}

void wsm_registry_add(wsmsg_conn *c) {
  wsmsg_server *srv = c->srv;
  pthread_mutex_lock(&srv->reg_mu);
  c->reg_prev = NULL;
  c->reg_next = srv->reg_head;
  if (srv->reg_head)
    srv->reg_head->reg_prev = c;
  srv->reg_head = c;
  srv->reg_count++;
  c->registered = true;
  pthread_mutex_unlock(&srv->reg_mu);
}

void wsm_registry_remove(wsmsg_conn *c) {
  if (!c->registered)
    return;
  wsmsg_server *srv = c->srv;
  pthread_mutex_lock(&srv->reg_mu);
  if (c->reg_prev)
    c->reg_prev->reg_next = c->reg_next;
  else
    srv->reg_head = c->reg_next;
  if (c->reg_next)
    c->reg_next->reg_prev = c->reg_prev;
  srv->reg_count--;
  c->registered = false;
  pthread_mutex_unlock(&srv->reg_mu);
}

size_t wsmsg_server_conn_count(const wsmsg_server *srv) {
  if (!srv)
    return 0;
  wsmsg_server *s = (wsmsg_server *)srv; /* the lock is not the state */
  pthread_mutex_lock(&s->reg_mu);
  size_t n = s->reg_count;
  pthread_mutex_unlock(&s->reg_mu);
  return n;
}

int64_t wsmsg_server_close_all(wsmsg_server *srv, int code,
                               const char *reason) {
  if (!srv)
    return WSMSG_ERR_INVALID_ARG;
  if (code != 0 && !(code >= 1000 && code <= 4999 &&
                     wsm_close_code_valid_wire((unsigned)code)))
    return WSMSG_ERR_CLOSE_CODE;
  if (!reason || code == 0)
    reason = "";
  if (!wsmsg_utf8_valid(reason, strlen(reason)))
    return WSMSG_ERR_UTF8;
  int64_t closed = 0;
  pthread_mutex_lock(&srv->reg_mu);
  for (wsmsg_conn *c = srv->reg_head; c; c = c->reg_next) {
    /* the host hears of every connection this changes (on_output), as
     * after a broadcast: it writes the close frame, or frees what ended */
    bool idle = !wsmsg_conn_want_write(c);
    bool changed = false;
    if (c->state == WSMSG_STATE_CONNECTING) {
      /* no WebSocket yet: end it unless it is writing an HTTP answer (a
       * streamed body the host paused is one too: a download is finished,
       * not cut off, and the host's drain timeout bounds it) */
      bool answering = !idle || wsm_http_body_pending(c);
      if (!answering && !c->aborted) {
        wsm_conn_abort_err(c, WSMSG_ERR_ABORTED, "the server is shutting down");
        changed = true;
      } else if (answering) {
        wsm_http_last(c); /* its answer is written, then it closes */
      }
    } else if (wsmsg_close(c, code, reason) == 0) {
      closed++;
      changed = idle;
    }
    if (changed && srv->on_output)
      srv->on_output(c, c->user);
  }
  pthread_mutex_unlock(&srv->reg_mu);
  return closed;
}

int64_t wsmsg_server_drain(wsmsg_server *srv) {
  if (!srv)
    return WSMSG_ERR_INVALID_ARG;
  atomic_store(&srv->draining, 1);
  return wsmsg_server_close_all(srv, 1001, "going away");
}

int wsmsg_server_draining(const wsmsg_server *srv) {
  return srv ? atomic_load(&((wsmsg_server *)srv)->draining) : 0;
}
