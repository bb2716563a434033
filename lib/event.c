/* The event queue of a connection (the pull API): nodes that carry their
 * payload, the queue bound, wsmsg_conn_next_event, and the blocking
 * wsmsg_conn_wait_event convenience built on it. */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <string.h>

/* A node with `extra` bytes of payload room (zeroed header). */
static wsm_evnode *ev_alloc(wsmsg_conn *c, int type, size_t extra) {
  size_t size = sizeof(wsm_evnode) + extra;
  wsm_evnode *n = wsm_malloc(c->mem, size);
  if (!n)
    return NULL;
  memset(n, 0, sizeof(*n));
  n->size = size;
  n->ev.type = type;
  return n;
}

wsm_evnode *wsm_ev_new(wsmsg_conn *c, int type, const void *d, size_t len,
                       size_t extra) {
  wsm_evnode *n = ev_alloc(c, type, len + 1 + extra);
  if (!n)
    return NULL;
  if (len)
    memcpy(n->data, d, len);
  n->data[len] = '\0';
  n->ev.data = n->data;
  n->ev.len = len;
  return n;
}

static void ev_free(wsmsg_conn *c, wsm_evnode *n) {
  if (!n)
    return;
  json_decref(n->ev.json);
  wsm_free(c->mem, n);
}

static void ev_link(wsmsg_conn *c, wsm_evnode *n) {
  c->ev_bytes += n->size;
  if (c->ev_tail)
    c->ev_tail->next = n;
  else
    c->ev_head = n;
  c->ev_tail = n;
  c->nev++;
}

/* Queue an event, unless the application is not reading its events: then
 * the connection fails (a peer must not grow memory through a kind of
 * message nobody handles). */
bool wsm_ev_push(wsmsg_conn *c, wsm_evnode *n) {
  const wsmsg_endpoint *ep = c->ep;
  if (ep &&
      ((ep->max_events && c->nev >= ep->max_events) ||
       (ep->max_event_bytes && c->ev_bytes + n->size > ep->max_event_bytes))) {
    ev_free(c, n);
    wsm_conn_fail(c, WSMSG_ERR_BACKPRESSURE, 1008,
                  "event queue full: the application is not reading events");
    return false;
  }
  ev_link(c, n);
  return true;
}

int wsm_ev_queue(wsmsg_conn *c, int type, const void *d, size_t len) {
  wsm_evnode *n = wsm_ev_new(c, type, d, len, 0);
  if (!n)
    return WSMSG_ERR_NOMEM;
  return wsm_ev_push(c, n) ? 0 : WSMSG_ERR_BACKPRESSURE;
}

void wsm_ev_close(wsmsg_conn *c, const wsmsg_close_info *ci) {
  size_t dl = strlen(ci->detail);
  wsm_evnode *n =
      wsm_ev_new(c, WSMSG_EV_CLOSE, ci->reason, ci->reason_len, dl + 1);
  if (!n)
    return;
  char *detail = (char *)n->data + ci->reason_len + 1;
  memcpy(detail, ci->detail, dl + 1);
  n->ev.code = ci->code;
  n->ev.clean = ci->clean;
  n->ev.error = ci->error;
  n->ev.detail = detail;
  ev_link(c, n); /* the last event: never refused */
}

void wsm_ev_clear(wsmsg_conn *c) {
  wsm_evnode *n = c->ev_head;
  while (n) {
    wsm_evnode *nx = n->next;
    ev_free(c, n);
    n = nx;
  }
  ev_free(c, c->ev_cur);
  c->ev_head = c->ev_tail = c->ev_cur = NULL;
  c->nev = c->ev_bytes = 0;
}

int wsmsg_conn_next_event(wsmsg_conn *c, wsmsg_event *ev) {
  if (!c || !ev)
    return WSMSG_ERR_INVALID_ARG;
  ev_free(c, c->ev_cur);
  c->ev_cur = NULL;
  wsm_evnode *n = c->ev_head;
  if (!n) {
    memset(ev, 0, sizeof(*ev));
    return 0;
  }
  c->ev_head = n->next;
  if (!c->ev_head)
    c->ev_tail = NULL;
  c->nev--;
  c->ev_bytes -= n->size;
  c->ev_cur = n;
  *ev = n->ev;
  if (!ev->detail)
    ev->detail = "";
  return 1;
}

size_t wsmsg_conn_event_count(const wsmsg_conn *c) { return c ? c->nev : 0; }

/* ---- blocking convenience ---- */

int wsmsg_conn_wait_event(wsmsg_conn *c, int fd, wsmsg_event *ev,
                          int timeout_ms) {
  if (!c || !ev || fd < 0)
    return WSMSG_ERR_INVALID_ARG;
  uint64_t start = wsm_now(c);
  for (;;) {
    if (wsmsg_conn_next_event(c, ev) == 1)
      return 1;
    if (wsmsg_conn_want_write(c)) {
      int r = wsmsg_conn_io_fd(c, fd);
      if (r < 0)
        return wsmsg_conn_next_event(c, ev) == 1 ? 1 : r;
      if (wsmsg_conn_next_event(c, ev) == 1)
        return 1;
    }
    if (wsmsg_conn_done(c))
      return WSMSG_ERR_CLOSED;
    uint64_t now = wsm_now(c);
    int64_t wait = -1;
    if (timeout_ms >= 0) {
      uint64_t end = start + (uint64_t)timeout_ms;
      if (now >= end)
        return 0;
      wait = (int64_t)(end - now);
    }
    int64_t d = wsmsg_conn_next_deadline(c);
    if (d >= 0 && (wait < 0 || d < wait))
      wait = d;
    if (wait > 60000)
      wait = 60000;
    struct pollfd p = {fd, POLLIN, 0};
    if (wsmsg_conn_want_write(c))
      p.events |= POLLOUT;
    int pr = poll(&p, 1, (int)wait);
    if (pr < 0 && errno != EINTR)
      return WSMSG_ERR_IO;
    if (pr > 0) {
      int r = wsmsg_conn_io_fd(c, fd);
      if (r < 0)
        return wsmsg_conn_next_event(c, ev) == 1 ? 1 : r;
    }
    wsmsg_conn_tick(c, wsm_now(c));
  }
}
