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
 * Like evloop (examples/common/evloop.h) it cannot spin and holds what
 * wsmsg accounts for: a socket is read (uv_read_start) only while
 * wsmsg_conn_want_read; at most one write request (of at most 256 KiB) is
 * in flight per connection, so output waits in wsmsg's queue, where the
 * backpressure limit sees it; a connection that no longer reads but has
 * output left gets --drain-timeout; --max-conns caps the connections
 * (clients beyond it are closed at once; at descriptor exhaustion libuv
 * does the same with its reserved descriptor).  Freed memory goes back to
 * the OS at quiet moments and log lines are escaped.  Connections a
 * broadcast gives output to are reported by the server's on_output
 * callback, listed, and written from a uv_idle handle before the loop
 * blocks (nothing may be freed while the broadcast runs).
 *
 *   uv_echo_server [--host 127.0.0.1] [--port 8080] [--max-message BYTES]
 *                  [--ping-interval MS] [--pong-timeout MS]
 *                  [--receive-timeout MS] [--handshake-timeout MS]
 *                  [--close-timeout MS] [--max-conns N] [--drain-timeout MS]
 *                  [--verbose] [--no-deflate | --deflate MODE]
 *
 * permessage-deflate is on (no context takeover) unless --no-deflate;
 * MODE: on, low_memory, max_ratio, off.
 * Timeouts in milliseconds, 0 turns one off; one not given keeps the
 * library's default.
 */
#include <wsmsg.h>

#include "common/log_escape.h"
#include "common/mem_return.h"
#include "common/server_opts.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define LINGER_MS 1000
/* at most this much output copied into the one write request in flight */
#define WRITE_CHUNK (256u << 10)

struct queue;

typedef struct client {
  uv_tcp_t tcp; /* first: the handle's address is the client's */
  wsmsg_conn *conn;
  int closing, lingering, eof, reading, writing;
  uv_shutdown_t shutdown;
  struct client *prev, *next;
  struct queue *q; /* the deadline queue it is in (linger, drain) or NULL */
  uint64_t until;
  struct client *qprev, *qnext;
  int wqueued; /* in the `writable` list */
  struct client *wprev, *wnext;
} client;

#include "common/deadline_queue.h" /* queue, q_push, q_remove */

typedef struct write_req {
  uv_write_t req;
  char data[]; /* the bytes being written, owned by the request */
} write_req;

static uv_loop_t *loop;
static uv_tcp_t listener;
static uv_timer_t timer;
static uv_idle_t writer; /* runs while `writable` is not empty */
static client *writable; /* clients a broadcast gave output (on_output) */
static uv_signal_t sigint, sigterm;
static wsmsg_server *srv;
static wsmsg_timers *timers;
static client *clients;
static size_t nclients;
static queue lingering, draining;
static int verbose, stopping;
static long max_conns, drain_ms = 10000;
static unsigned long refused;
static uint64_t refuse_logged;
static mem_return mem;

static void rearm_timer(void);

static void log_line(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static void log_line(const char *fmt, ...) {
  char safe[4096];
  va_list ap;
  va_start(ap, fmt);
  log_vformat(safe, sizeof(safe), fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s\n", safe);
}

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
    log_line("close code=%d clean=%d%s%s", (int)ci->code, (int)ci->clean,
             ci->error ? " error: " : "", ci->error ? ci->detail : "");
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
  nclients--;
  mem_return_closed(&mem, wsmsg_now_ms());
  rearm_timer();
  if (stopping && !clients)
    uv_stop(loop);
}

static void unlist_writable(client *cl) {
  if (!cl->wqueued)
    return;
  if (cl->wprev)
    cl->wprev->wnext = cl->wnext;
  else
    writable = cl->wnext;
  if (cl->wnext)
    cl->wnext->wprev = cl->wprev;
  cl->wqueued = 0;
  cl->wprev = cl->wnext = NULL;
}

static void drop(client *cl) {
  if (cl->closing)
    return;
  cl->closing = 1;
  unlist_writable(cl);
  q_remove(cl);
  wsmsg_timers_remove(cl->conn);
  uv_read_stop((uv_stream_t *)&cl->tcp);
  uv_close((uv_handle_t *)&cl->tcp, on_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h;
  (void)hint;
  static char slab[65536]; /* single-threaded loop: one read at a time */
  *buf = uv_buf_init(slab, sizeof(slab));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void set_reading(client *cl, int on) {
  if (on == cl->reading)
    return;
  cl->reading = on;
  if (on)
    uv_read_start((uv_stream_t *)&cl->tcp, on_alloc, on_read);
  else
    uv_read_stop((uv_stream_t *)&cl->tcp);
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
  q_push(&lingering, cl, wsmsg_now_ms() + LINGER_MS);
  set_reading(cl, 1); /* discard until EOF */
  if (uv_shutdown(&cl->shutdown, (uv_stream_t *)&cl->tcp, NULL) != 0)
    drop(cl);
}

static void flush(client *cl);

static void on_written(uv_write_t *req, int status) {
  client *cl = req->data;
  free(req);
  cl->writing = 0;
  if (status < 0) {
    wsmsg_conn_abort(cl->conn);
    drop(cl);
    return;
  }
  flush(cl);
  rearm_timer();
}

/* Write what wsmsg has pending: try a direct write first; what would block
 * goes into one write request (a copy of at most WRITE_CHUNK bytes, since
 * the pending pointer is only valid until the next call into the
 * connection), and the rest waits in wsmsg until that one is done.  Then
 * poll for exactly what the connection wants. */
static void flush(client *cl) {
  if (cl->closing || cl->lingering)
    return;
  const void *p;
  size_t n;
  while (!cl->writing && (n = wsmsg_conn_pending(cl->conn, &p)) > 0) {
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    int w = uv_try_write((uv_stream_t *)&cl->tcp, &b, 1);
    if (w > 0) {
      wsmsg_conn_consume(cl->conn, (size_t)w);
      continue;
    }
    if (w < 0 && w != UV_EAGAIN) {
      wsmsg_conn_abort(cl->conn);
      drop(cl);
      return;
    }
    size_t m = n < WRITE_CHUNK ? n : WRITE_CHUNK;
    write_req *r = malloc(sizeof(*r) + m);
    if (!r) {
      wsmsg_conn_abort(cl->conn);
      drop(cl);
      return;
    }
    memcpy(r->data, p, m);
    wsmsg_conn_consume(cl->conn, m);
    r->req.data = cl;
    uv_buf_t qb = uv_buf_init(r->data, (unsigned)m);
    if (uv_write(&r->req, (uv_stream_t *)&cl->tcp, &qb, 1, on_written) < 0) {
      free(r);
      wsmsg_conn_abort(cl->conn);
      drop(cl);
      return;
    }
    cl->writing = 1;
  }
  if (!cl->writing && wsmsg_conn_done(cl->conn)) {
    linger(cl);
    return;
  }
  int reading = wsmsg_conn_want_read(cl->conn);
  set_reading(cl, reading);
  /* No longer reading, output left: wsmsg runs no deadline for a
   * connection the peer half-closed, so we give it drain_ms. */
  if (!reading && cl->q != &draining && drain_ms > 0)
    q_push(&draining, cl, wsmsg_now_ms() + (uint64_t)drain_ms);
}

/* The idle handle: write what broadcasts gave the listed clients. */
static void on_writer(uv_idle_t *h) {
  (void)h;
  while (writable) {
    client *cl = writable;
    unlist_writable(cl);
    flush(cl);
  }
  uv_idle_stop(&writer);
  rearm_timer();
}

/* The server's on_output: a broadcast gave this connection output while it
 * had none pending.  Nothing may be freed while the broadcast runs, so
 * list it and write it from the idle handle, before the loop blocks. */
static void on_output(wsmsg_conn *c, void *u) {
  (void)c;
  client *cl = u;
  if (!cl || cl->wqueued || cl->closing || cl->lingering)
    return;
  cl->wqueued = 1;
  cl->wprev = NULL;
  cl->wnext = writable;
  if (writable)
    writable->wprev = cl;
  writable = cl;
  uv_idle_start(&writer, on_writer);
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
    cl->reading = 0; /* libuv stopped reading at EOF */
    wsmsg_conn_eof(cl->conn);
  } else if (n < 0)
    wsmsg_conn_abort(cl->conn);
  flush(cl);
  rearm_timer();
}

static void note_refused(const char *why) {
  refused++;
  uint64_t now = wsmsg_now_ms();
  if (now - refuse_logged >= 1000) {
    refuse_logged = now;
    fprintf(stderr, "uv_echo_server: refusing clients: %s (%lu so far)\n", why,
            refused);
  }
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) {
    /* UV_EMFILE/UV_ENFILE: libuv has accepted the client on its reserved
     * descriptor and closed it; nothing to do but say so */
    note_refused(uv_strerror(status));
    return;
  }
  client *cl = calloc(1, sizeof(*cl));
  if (!cl) {
    uv_tcp_t *t = malloc(sizeof(*t)); /* accept, or libuv stops listening */
    if (t && uv_tcp_init(loop, t) == 0) {
      (void)uv_accept(server, (uv_stream_t *)t);
      uv_close((uv_handle_t *)t, (uv_close_cb)free);
    } else {
      free(t);
    }
    return;
  }
  uv_tcp_init(loop, &cl->tcp);
  if (uv_accept(server, (uv_stream_t *)&cl->tcp) != 0 || stopping ||
      (max_conns > 0 && nclients >= (size_t)max_conns) ||
      !(cl->conn = wsmsg_server_accept(srv, cl))) {
    if (!stopping && max_conns > 0 && nclients >= (size_t)max_conns)
      note_refused("--max-conns reached");
    uv_close((uv_handle_t *)&cl->tcp, (uv_close_cb)free);
    return;
  }
  uv_tcp_nodelay(&cl->tcp, 1);
  cl->next = clients;
  if (clients)
    clients->prev = cl;
  clients = cl;
  nclients++;
  wsmsg_timers_add(timers, cl->conn);
  set_reading(cl, 1);
  rearm_timer();
}

static int64_t q_expire(queue *q, uint64_t now) {
  while (q->head && q->head->until <= now) {
    client *cl = q->head;
    q_remove(cl);
    if (!cl->lingering) {
      if (verbose)
        log_line("drain timeout: dropped with output unsent");
      wsmsg_conn_abort(cl->conn);
    }
    drop(cl);
  }
  return q->head ? (int64_t)(q->head->until - now) : -1;
}

static int64_t min_ms(int64_t a, int64_t b) {
  return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

static void on_timer(uv_timer_t *t) {
  (void)t;
  wsmsg_conn *due;
  while ((due = wsmsg_timers_expire(timers, wsmsg_now_ms())) != NULL)
    flush(wsmsg_conn_user(due));
  rearm_timer();
}

static void rearm_timer(void) {
  if (stopping)
    return; /* the timer is the shutdown bound now */
  uint64_t now = wsmsg_now_ms();
  mem_return_run(&mem, now);
  int64_t ms = wsmsg_timers_next_ms(timers, now);
  ms = min_ms(ms, q_expire(&lingering, now));
  ms = min_ms(ms, q_expire(&draining, now));
  uint64_t trim = mem_return_due(&mem);
  if (trim)
    ms = min_ms(ms, trim > now ? (int64_t)(trim - now) : 0);
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
  fprintf(stderr, "uv_echo_server: closing connections\n");
  uv_close((uv_handle_t *)&listener, NULL);
  /* the library's registry: 1001 "going away" to every open connection,
   * handshakes in progress ended, later upgrades 503 */
  wsmsg_server_drain(srv);
  for (client *cl = clients, *next; cl; cl = next) {
    next = cl->next;
    if (cl->closing || cl->lingering)
      continue;
    flush(cl);
  }
  stopping = 1;
  if (!clients)
    uv_stop(loop);
  uv_timer_start(&timer, on_stop_timeout, 2000, 0); /* bounded */
}

int main(int argc, char **argv) {
  server_opts so = SERVER_OPTS(8080);
  long long max_message = -1; /* -1: not given, the library's default */
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int more = i + 1 < argc;
    int known = server_opts_arg(&so, "uv_echo_server", argc, argv, &i);
    if (known > 0)
      continue; /* < 0: a --deflate value it does not know: the usage */
    if (known == 0 && !strcmp(a, "--max-message") && more)
      max_message = atoll(argv[++i]);
    else if (!strcmp(a, "--max-conns") && more)
      max_conns = atol(argv[++i]);
    else if (!strcmp(a, "--drain-timeout") && more)
      drain_ms = server_opts_ms("uv_echo_server", argv[++i]);
    else if (!strcmp(a, "--verbose") || !strcmp(a, "-v"))
      verbose = 1;
    else {
      fprintf(stderr,
              "usage: uv_echo_server [--host ADDR] [--port N] "
              "[--max-message BYTES] [--ping-interval MS]\n"
              "       [--pong-timeout MS] [--receive-timeout MS] "
              "[--handshake-timeout MS] [--close-timeout MS] [--verbose]\n"
              "       [--max-conns N] [--drain-timeout MS] "
              "[--no-deflate | --deflate on|low_memory|max_ratio]\n");
      return strcmp(a, "--help") ? 2 : 0;
    }
  }
  signal(SIGPIPE, SIG_IGN); /* a write to a reset socket: an error, not death */
  mem_return_init();
  loop = uv_default_loop();
  wsmsg_endpoint *ep = wsmsg_endpoint_new();
  srv = wsmsg_server_new();
  timers = wsmsg_timers_new();
  wsmsg_endpoint_on_text(ep, on_text);
  wsmsg_endpoint_on_binary(ep, on_binary);
  wsmsg_endpoint_on_close(ep, on_close);
  if (max_message >= 0)
    wsmsg_endpoint_set_max_message_size(ep, (uint64_t)max_message);
  server_opts_apply(&so, ep);
  wsmsg_endpoint_set_timeout_action(ep, WSMSG_ON_TIMEOUT_PING, NULL);
  server_opts_apply_server(&so, srv);
  wsmsg_server_route(srv, "*", ep);
  wsmsg_server_on_output(srv, on_output); /* broadcasts' recipients */

  struct sockaddr_in addr;
  if (uv_ip4_addr(so.host, so.port, &addr) != 0) {
    fprintf(stderr, "uv_echo_server: bad host %s\n", so.host);
    return 1;
  }
  uv_tcp_init(loop, &listener);
  int r = uv_tcp_bind(&listener, (const struct sockaddr *)&addr, 0);
  if (!r)
    r = uv_listen((uv_stream_t *)&listener, 4096, on_connection);
  if (r) {
    fprintf(stderr, "uv_echo_server: %s:%d: %s\n", so.host, so.port,
            uv_strerror(r));
    return 1;
  }
  uv_timer_init(loop, &timer);
  uv_idle_init(loop, &writer);
  uv_signal_init(loop, &sigint);
  uv_signal_init(loop, &sigterm);
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  fprintf(stderr,
          "uv_echo_server (wsmsg %s, libuv %s) listening on ws://%s:%d/\n",
          wsmsg_version(), uv_version_string(), so.host, so.port);
  uv_run(loop, UV_RUN_DEFAULT);

  /* close what is left and let libuv finish the close callbacks */
  for (client *cl = clients; cl; cl = cl->next)
    drop(cl);
  uv_close((uv_handle_t *)&timer, NULL);
  uv_close((uv_handle_t *)&writer, NULL);
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
