/* The timers of one connection: when each is armed and due (one rule per
 * timer, in timer_due), what happens when it fires, and the deadline the
 * host (or a wsmsg_timers set) waits for.  See docs/timeouts.md. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

/* Every timer of a connection, in the order they are judged when several
 * are due at once. */
enum {
  T_WRITE,     /* output pending, the peer reads nothing */
  T_HANDSHAKE, /* the opening handshake is not complete */
  T_PONG,      /* our keepalive ping is not answered */
  T_MESSAGE,   /* a message in progress is not complete */
  T_PING,      /* time for a keepalive ping */
  T_RECEIVE,   /* no message from the peer */
  T_IDLE,      /* no data message either way */
  T_CLOSE,     /* the closing handshake is not complete */
  T_COUNT
};

/* The one place that says when timer `k` is armed: false if it is not,
 * else true with its due time in *due. */
static bool timer_due(const wsmsg_conn *c, int k, uint64_t *due) {
  const wsmsg_endpoint *ep = c->ep;
  bool open = c->opened && c->state == WSMSG_STATE_OPEN && !c->close_sent;
  switch (k) {
  case T_WRITE:
    if (!ep || !ep->t_write || c->out.len == c->out.off)
      return false;
    *due = c->t_write_progress + ep->t_write;
    return true;
  case T_HANDSHAKE:
    if (c->opened || !c->t_handshake || wsm_http_body_pending(c))
      return false;
    *due = c->t_created + c->t_handshake;
    return true;
  case T_PONG:
    if (!open || !ep->t_pong || !c->ping_outstanding)
      return false;
    *due = c->t_ping_sent + ep->t_pong;
    return true;
  case T_MESSAGE:
    if (!open || !ep->t_message || !c->msg_op)
      return false;
    *due = c->t_msg_start + ep->t_message;
    return true;
  case T_PING:
    if (!open || !ep->t_ping || c->ping_outstanding)
      return false;
    *due = c->t_last_rx + ep->t_ping;
    return true;
  case T_RECEIVE:
    if (!open || !ep->t_receive)
      return false;
    *due = c->t_last_msg + ep->t_receive;
    return true;
  case T_IDLE:
    if (!open || !ep->t_idle)
      return false;
    *due = (c->t_last_msg > c->t_last_tx ? c->t_last_msg : c->t_last_tx) +
           ep->t_idle;
    return true;
  case T_CLOSE:
    if (!c->opened || open || !c->closing_timed)
      return false;
    *due = c->t_close_start + ep->t_close;
    return true;
  default:
    return false;
  }
}

int64_t wsmsg_conn_deadline(const wsmsg_conn *c) {
  if (!c || c->aborted || wsmsg_conn_done(c))
    return -1;
  uint64_t best = UINT64_MAX, due;
  for (int k = 0; k < T_COUNT; k++)
    if (timer_due(c, k, &due) && due < best)
      best = due;
  return best == UINT64_MAX ? -1 : (int64_t)best;
}

int64_t wsmsg_conn_next_deadline(const wsmsg_conn *c) {
  int64_t d = wsmsg_conn_deadline(c);
  if (d < 0)
    return -1;
  uint64_t now = wsm_now(c);
  return (uint64_t)d <= now ? 0 : (int64_t)((uint64_t)d - now);
}

int64_t wsmsg_conn_rtt_ms(const wsmsg_conn *c) { return c ? c->rtt : -1; }

void wsm_conn_closing_starts(wsmsg_conn *c) {
  if (!c->closing_timed && c->ep && c->ep->t_close) {
    c->closing_timed = true;
    c->t_close_start = wsm_now(c);
    wsm_timers_touch(c);
  }
}

/* ---- firing ---- */

static void send_keepalive_ping(wsmsg_conn *c, uint64_t now) {
  uint8_t p[8];
  c->ping_seq++;
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(c->ping_seq >> (56 - 8 * i));
  c->t_ping_sent = now;
  (void)wsm_queue_frame(c, WSLAY_PING, p, sizeof(p));
}

static void fire_receive_timeout(wsmsg_conn *c, uint64_t now) {
  const wsmsg_endpoint *ep = c->ep;
  c->t_last_msg = now; /* re-arm: one call per idle period */
  if (ep->on_timeout) {
    ep->on_timeout(c, WSMSG_TIMEOUT_RECEIVE, c->user);
    return;
  }
  switch (ep->timeout_action) {
  case WSMSG_ON_TIMEOUT_PING:
    send_keepalive_ping(c, now);
    break;
  case WSMSG_ON_TIMEOUT_HEARTBEAT: {
    const char *hb = ep->heartbeat ? ep->heartbeat : "HEARTBEAT";
    (void)wsm_queue_frame(c, WSLAY_TEXT_FRAME, (const uint8_t *)hb, strlen(hb));
    break;
  }
  case WSMSG_ON_TIMEOUT_CLOSE_1001:
  case WSMSG_ON_TIMEOUT_CLOSE_1011:
    (void)wsm_queue_close_frame(
        c, ep->timeout_action == WSMSG_ON_TIMEOUT_CLOSE_1001 ? 1001 : 1011,
        "receive timeout", 15);
    break;
  default: {
    wsm_evnode *n = wsm_ev_new(c, WSMSG_EV_TIMEOUT, NULL, 0, 0);
    if (n) {
      n->ev.code = WSMSG_TIMEOUT_RECEIVE;
      wsm_ev_push(c, n);
    }
  }
  }
}

static void timeout_abort(wsmsg_conn *c, const char *what, uint32_t ms) {
  char why[96];
  snprintf(why, sizeof(why), "%s within %u ms", what, ms);
  wsm_conn_set_error(c, WSMSG_ERR_TIMEOUT, why); /* also when closed */
  wsm_conn_abort_err(c, WSMSG_ERR_TIMEOUT, why);
}

static void fire(wsmsg_conn *c, int k, uint64_t now) {
  const wsmsg_endpoint *ep = c->ep;
  char why[96];
  switch (k) {
  case T_WRITE:
    timeout_abort(c, "peer read nothing", ep->t_write);
    break;
  case T_HANDSHAKE:
    if (c->client || c->state == WSMSG_STATE_CLOSED || wsm_http_served(c)) {
      timeout_abort(c, "opening handshake not completed", c->t_handshake);
      break;
    }
    /* server: answer 408, then give the answer one more period to drain */
    snprintf(why, sizeof(why), "upgrade request not complete within %u ms",
             c->t_handshake);
    wsm_conn_reject(c, 408, "request timeout", WSMSG_ERR_TIMEOUT, why);
    c->t_created = now;
    break;
  case T_PONG:
    snprintf(why, sizeof(why), "keepalive timeout: no pong within %u ms",
             ep->t_pong);
    wsm_conn_fail(c, WSMSG_ERR_TIMEOUT, 1011, why);
    break;
  case T_MESSAGE:
    snprintf(why, sizeof(why), "message not completed within %u ms",
             ep->t_message);
    wsm_conn_fail(c, WSMSG_ERR_TIMEOUT, 1008, why);
    break;
  case T_PING:
    send_keepalive_ping(c, now);
    if (ep->t_pong)
      c->ping_outstanding = true;
    else
      c->t_last_rx = now; /* next ping one interval later */
    break;
  case T_RECEIVE:
    fire_receive_timeout(c, now);
    break;
  case T_IDLE:
    snprintf(why, sizeof(why), "idle timeout: no message within %u ms",
             ep->t_idle);
    wsm_conn_set_error(c, WSMSG_ERR_TIMEOUT, why);
    (void)wsm_queue_close_frame(c, 1001, "idle timeout", 12);
    break;
  case T_CLOSE:
    timeout_abort(c, "closing handshake not completed", ep->t_close);
    break;
  }
}

/* Fire the first due timer; returns 1 if one fired. */
static int fire_one(wsmsg_conn *c, uint64_t now) {
  uint64_t due;
  for (int k = 0; k < T_COUNT; k++) {
    if (timer_due(c, k, &due) && now >= due) {
      fire(c, k, now);
      return 1;
    }
  }
  return 0;
}

int wsm_conn_tick_count(wsmsg_conn *c, uint64_t now) {
  int fired = 0;
  for (int guard = 0; guard < 16; guard++) {
    int64_t d = wsmsg_conn_deadline(c);
    if (d < 0 || (uint64_t)d > now || !fire_one(c, now))
      break;
    fired++;
  }
  return fired;
}

int wsmsg_conn_tick(wsmsg_conn *c, uint64_t now) {
  if (!c)
    return WSMSG_ERR_INVALID_ARG;
  wsm_conn_tick_count(c, now);
  wsm_conn_trim(c); /* a timed-out message or aborted output goes back */
  wsm_timers_touch(c);
  return 0;
}
