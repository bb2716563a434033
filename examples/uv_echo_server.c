/* uv_echo_server — the echo server on libuv: wsmsg linked into an existing
 * event loop.
 *
 * libuv owns the sockets (uv_tcp_t) and the loop; wsmsg gets the bytes from
 * the read callback and gives back bytes to write.  One uv_timer, re-armed
 * from wsmsg_timers_next_ms after every pass, drives all connections'
 * deadlines.  Same options and behaviour as echo_server, including the
 * lingering close: a finished socket is half-closed (uv_shutdown) and
 * drained until the peer's EOF, at most 1 s, so a peer still sending never
 * gets a reset that destroys our close frame.
 *
 *   uv_echo_server [--host 127.0.0.1] [--port 8080] [--max-message BYTES]
 *                  [--ping-interval MS] [--pong-timeout MS]
 *                  [--receive-timeout MS] [--handshake-timeout MS]
 *                  [--close-timeout MS] [--verbose]
 */
#include <wsmsg.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define LINGER_MS 1000

typedef struct client {
  uv_tcp_t tcp; /* first: the handle's address is the client's */
  wsmsg_conn *conn;
  int closing, lingering, eof;
  uint64_t linger_until;
  uv_shutdown_t shutdown;
  struct client *prev, *next;
  struct client *lnext; /* lingering queue, oldest first */
} client;

typedef struct write_req {
  uv_write_t req;
  char data[]; /* the bytes being written, owned by the request */
} write_req;

static uv_loop_t *loop;
static uv_tcp_t listener;
static uv_timer_t timer;
static uv_signal_t sigint, sigterm;
static wsmsg_server *srv;
static wsmsg_timers *timers;
static client *clients;
static client *linger_head, *linger_tail;
static int verbose, stopping;

static void rearm_timer(void);

static void on_text(wsmsg_conn *c, const char *data, size_t len, void *u) {
  (void)u;
  wsmsg_send_text(c, data, len);
}

static void on_binary(wsmsg_conn *c, const uint8_t *data, size_t len, void *u) {
  (void)u;
  wsmsg_send_binary(c, data, len);
}

static void on_close(wsmsg_conn *c, const wsmsg_close_info *ci, void *u) {
  (void)c;
  (void)u;
  if (verbose)
    fprintf(stderr, "close code=%d clean=%d%s%s\n", (int)ci->code,
            (int)ci->clean, ci->error ? " error: " : "",
            ci->error ? ci->detail : "");
}

static void on_closed(uv_handle_t *h) {
  client *cl = (client *)h;
  if (cl->prev)
    cl->prev->next = cl->next;
  else
    clients = cl->next;
  if (cl->next)
    cl->next->prev = cl->prev;
  wsmsg_conn_free(cl->conn);
  free(cl);
  if (stopping && !clients)
    uv_stop(loop);
}

static void unlink_lingering(client *cl) {
  client **pp = &linger_head, *prev = NULL;
  while (*pp && *pp != cl) {
    prev = *pp;
    pp = &(*pp)->lnext;
  }
  if (*pp) {
    *pp = cl->lnext;
    if (linger_tail == cl)
      linger_tail = prev;
  }
}

static void drop(client *cl) {
  if (cl->closing)
    return;
  cl->closing = 1;
  if (cl->lingering)
    unlink_lingering(cl);
  wsmsg_timers_remove(cl->conn);
  uv_read_stop((uv_stream_t *)&cl->tcp);
  uv_close((uv_handle_t *)&cl->tcp, on_closed);
}

/* Everything is written: half-close and wait for the peer's EOF. */
static void linger(client *cl) {
  if (cl->lingering || cl->closing)
    return;
  if (cl->eof) { /* the peer is gone already: nothing to wait for */
    drop(cl);
    return;
  }
  cl->lingering = 1;
  wsmsg_timers_remove(cl->conn);
  cl->linger_until = wsmsg_now_ms() + LINGER_MS;
  cl->lnext = NULL;
  if (linger_tail)
    linger_tail->lnext = cl;
  else
    linger_head = cl;
  linger_tail = cl;
  if (uv_shutdown(&cl->shutdown, (uv_stream_t *)&cl->tcp, NULL) != 0)
    drop(cl);
}

static void on_written(uv_write_t *req, int status) {
  client *cl = req->data;
  free(req);
  if (status < 0) {
    wsmsg_conn_abort(cl->conn);
    drop(cl);
  } else if (wsmsg_conn_done(cl->conn) &&
             uv_stream_get_write_queue_size((uv_stream_t *)&cl->tcp) == 0) {
    linger(cl);
  }
}

/* Write what wsmsg has pending: try a direct write first, queue the rest
 * with uv_write (copied, since the pending pointer is only valid until the
 * next call into the connection). */
static void flush(client *cl) {
  if (cl->closing || cl->lingering)
    return;
  const void *p;
  size_t n;
  while ((n = wsmsg_conn_pending(cl->conn, &p)) > 0) {
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    int w = 0;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&cl->tcp) == 0)
      w = uv_try_write((uv_stream_t *)&cl->tcp, &b, 1);
    if (w > 0) {
      wsmsg_conn_consume(cl->conn, (size_t)w);
      continue;
    }
    if (w < 0 && w != UV_EAGAIN) {
      wsmsg_conn_abort(cl->conn);
      drop(cl);
      return;
    }
    write_req *r = malloc(sizeof(*r) + n);
    if (!r) {
      wsmsg_conn_abort(cl->conn);
      drop(cl);
      return;
    }
    memcpy(r->data, p, n);
    wsmsg_conn_consume(cl->conn, n);
    r->req.data = cl;
    uv_buf_t qb = uv_buf_init(r->data, (unsigned)n);
    if (uv_write(&r->req, (uv_stream_t *)&cl->tcp, &qb, 1, on_written) < 0) {
      free(r);
      wsmsg_conn_abort(cl->conn);
      drop(cl);
      return;
    }
  }
  if (wsmsg_conn_done(cl->conn) &&
      uv_stream_get_write_queue_size((uv_stream_t *)&cl->tcp) == 0)
    linger(cl);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h;
  (void)hint;
  static char slab[65536]; /* single-threaded loop: one read at a time */
  *buf = uv_buf_init(slab, sizeof(slab));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  client *cl = (client *)s;
  if (cl->lingering) { /* discard until EOF */
    if (n < 0)
      drop(cl);
    return;
  }
  if (n > 0)
    wsmsg_conn_recv(cl->conn, buf->base, (size_t)n);
  else if (n == UV_EOF) {
    cl->eof = 1;
    wsmsg_conn_eof(cl->conn);
  } else if (n < 0)
    wsmsg_conn_abort(cl->conn);
  flush(cl);
  rearm_timer();
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0 || stopping)
    return;
  client *cl = calloc(1, sizeof(*cl));
  if (!cl)
    return;
  uv_tcp_init(loop, &cl->tcp);
  if (uv_accept(server, (uv_stream_t *)&cl->tcp) != 0 ||
      !(cl->conn = wsmsg_server_accept(srv, cl))) {
    uv_close((uv_handle_t *)&cl->tcp, (uv_close_cb)free);
    return;
  }
  uv_tcp_nodelay(&cl->tcp, 1);
  cl->next = clients;
  if (clients)
    clients->prev = cl;
  clients = cl;
  wsmsg_timers_add(timers, cl->conn);
  uv_read_start((uv_stream_t *)&cl->tcp, on_alloc, on_read);
  rearm_timer();
}

static void on_timer(uv_timer_t *t) {
  (void)t;
  uint64_t now = wsmsg_now_ms();
  while (linger_head && linger_head->linger_until <= now)
    drop(linger_head);
  wsmsg_conn *due;
  while ((due = wsmsg_timers_expire(timers, wsmsg_now_ms())) != NULL)
    flush(wsmsg_conn_user(due));
  rearm_timer();
}

static void rearm_timer(void) {
  uint64_t now = wsmsg_now_ms();
  int64_t ms = wsmsg_timers_next_ms(timers, now);
  if (linger_head) {
    int64_t l = linger_head->linger_until > now
                    ? (int64_t)(linger_head->linger_until - now)
                    : 0;
    if (ms < 0 || l < ms)
      ms = l;
  }
  if (ms < 0)
    uv_timer_stop(&timer);
  else
    uv_timer_start(&timer, on_timer, (uint64_t)ms, 0);
}

static void on_stop_timeout(uv_timer_t *t) {
  (void)t;
  uv_stop(loop);
}

static void on_signal(uv_signal_t *s, int signum) {
  (void)s;
  (void)signum;
  if (stopping)
    return;
  stopping = 1;
  fprintf(stderr, "uv_echo_server: closing connections\n");
  uv_close((uv_handle_t *)&listener, NULL);
  for (client *cl = clients, *next; cl; cl = next) {
    next = cl->next;
    if (wsmsg_conn_state(cl->conn) == WSMSG_STATE_OPEN)
      wsmsg_close(cl->conn, 1001, "server shutting down");
    else if (wsmsg_conn_state(cl->conn) == WSMSG_STATE_CONNECTING)
      wsmsg_conn_abort(cl->conn);
    flush(cl);
  }
  if (!clients)
    uv_stop(loop);
  uv_timer_start(&timer, on_stop_timeout, 2000, 0); /* bounded */
}

static long ms_arg(const char *s) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*end || v < 0 || v > 86400000) {
    fprintf(stderr, "uv_echo_server: bad milliseconds: %s\n", s);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 8080;
  long long max_message = -1;
  long ping = 0, pong = 0, recv_to = 0, hs_to = 10000, close_to = 10000;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int more = i + 1 < argc;
    if (!strcmp(a, "--host") && more)
      host = argv[++i];
    else if (!strcmp(a, "--port") && more)
      port = atoi(argv[++i]);
    else if (!strcmp(a, "--max-message") && more)
      max_message = atoll(argv[++i]);
    else if (!strcmp(a, "--ping-interval") && more)
      ping = ms_arg(argv[++i]);
    else if (!strcmp(a, "--pong-timeout") && more)
      pong = ms_arg(argv[++i]);
    else if (!strcmp(a, "--receive-timeout") && more)
      recv_to = ms_arg(argv[++i]);
    else if (!strcmp(a, "--handshake-timeout") && more)
      hs_to = ms_arg(argv[++i]);
    else if (!strcmp(a, "--close-timeout") && more)
      close_to = ms_arg(argv[++i]);
    else if (!strcmp(a, "--verbose") || !strcmp(a, "-v"))
      verbose = 1;
    else {
      fprintf(stderr,
              "usage: uv_echo_server [--host ADDR] [--port N] "
              "[--max-message BYTES] [--ping-interval MS]\n"
              "       [--pong-timeout MS] [--receive-timeout MS] "
              "[--handshake-timeout MS] [--close-timeout MS] [--verbose]\n");
      return strcmp(a, "--help") ? 2 : 0;
    }
  }
  loop = uv_default_loop();
  wsmsg_endpoint *ep = wsmsg_endpoint_new();
  srv = wsmsg_server_new();
  timers = wsmsg_timers_new();
  wsmsg_endpoint_on_text(ep, on_text);
  wsmsg_endpoint_on_binary(ep, on_binary);
  wsmsg_endpoint_on_close(ep, on_close);
  if (max_message >= 0)
    wsmsg_endpoint_set_max_message_size(ep, (uint64_t)max_message);
  wsmsg_endpoint_set_ping_interval(ep, (uint32_t)ping);
  wsmsg_endpoint_set_pong_timeout(ep, (uint32_t)pong);
  wsmsg_endpoint_set_receive_timeout(ep, (uint32_t)recv_to);
  wsmsg_endpoint_set_timeout_action(ep, WSMSG_ON_TIMEOUT_PING, NULL);
  wsmsg_endpoint_set_close_timeout(ep, (uint32_t)close_to);
  wsmsg_server_set_handshake_timeout(srv, (uint32_t)hs_to);
  wsmsg_server_route(srv, "*", ep);

  struct sockaddr_in addr;
  if (uv_ip4_addr(host, port, &addr) != 0) {
    fprintf(stderr, "uv_echo_server: bad host %s\n", host);
    return 1;
  }
  uv_tcp_init(loop, &listener);
  int r = uv_tcp_bind(&listener, (const struct sockaddr *)&addr, 0);
  if (!r)
    r = uv_listen((uv_stream_t *)&listener, 4096, on_connection);
  if (r) {
    fprintf(stderr, "uv_echo_server: %s:%d: %s\n", host, port, uv_strerror(r));
    return 1;
  }
  uv_timer_init(loop, &timer);
  uv_signal_init(loop, &sigint);
  uv_signal_init(loop, &sigterm);
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  fprintf(stderr,
          "uv_echo_server (wsmsg %s, libuv %s) listening on ws://%s:%d/\n",
          wsmsg_version(), uv_version_string(), host, port);
  uv_run(loop, UV_RUN_DEFAULT);

  /* close what is left and let libuv finish the close callbacks */
  for (client *cl = clients; cl; cl = cl->next)
    drop(cl);
  uv_close((uv_handle_t *)&timer, NULL);
  uv_close((uv_handle_t *)&sigint, NULL);
  uv_close((uv_handle_t *)&sigterm, NULL);
  if (!uv_is_closing((uv_handle_t *)&listener))
    uv_close((uv_handle_t *)&listener, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  wsmsg_timers_free(timers);
  wsmsg_server_free(srv);
  wsmsg_endpoint_free(ep);
  fprintf(stderr, "uv_echo_server: bye\n");
  return 0;
}
