/* evloop — the small epoll server loop the example servers share.
 *
 * Listens on host:port, accepts the pending clients (up to 256 per wake-up,
 * so the other sockets get their turn; the rest on the next one), gives
 * each socket a wsmsg_conn from `srv`, drives it with wsmsg_conn_io_fd,
 * keeps every connection's deadlines in one wsmsg_timers heap, and on
 * SIGINT/SIGTERM stops listening and drains (wsmsg_server_drain: 1001
 * "going away" to every connection, 503 to late upgrades), returning once they
 * are done (or after 2 s).  Finished sockets are half-closed and drained
 * until the peer's EOF (at most 1 s), so a peer still sending never gets a
 * TCP reset that destroys our close frame.
 *
 * Connections a broadcast (wsmsg_broadcast, wsmsg_broadcast_json) gives
 * output to are polled for EPOLLOUT through the server's on_output
 * callback, which evloop_serve installs (wsmsg_server_on_output).
 *
 * It cannot spin: a socket is polled for EPOLLIN only while wsmsg wants to
 * read (wsmsg_conn_want_read) and for EPOLLOUT only while it has output
 * (wsmsg_conn_want_write), so a peer that stops reading, or keeps sending
 * to a connection that failed, costs nothing while it waits.  A connection
 * that no longer reads but still has output (the peer half-closed and does
 * not read) gets --drain-timeout to take it, then it is dropped.  When
 * accept fails for lack of descriptors (EMFILE/ENFILE) the pending client
 * is accepted on a reserved descriptor and closed at once, and the
 * listener rests until a connection closes or 100 ms pass.  --max-conns
 * caps the connections: clients beyond it are accepted and closed at once.
 * Freed heap memory goes back to the OS at quiet moments (mem_return.h),
 * and log lines are escaped (log_escape.h).
 *
 * The connection's user pointer belongs to evloop; an application keeps
 * its own per-connection state in the slot evloop_app() returns (NULL at
 * first).  Clean it up in on_close: evloop aborts connections it has to
 * drop while they are open, so on_close always runs for opened ones.
 * Connections that never open (plain HTTP requests, see
 * wsmsg_server_on_http) have no on_close: set app_free to release what the
 * slot still holds when evloop frees the connection.
 *
 * TLS (--tls-cert FILE --tls-key FILE): the same port then speaks only TLS
 * (wss://, and https:// for plain HTTP).  Each socket gets an OpenSSL SSL
 * object driven non-blocking over the socket; wsmsg sees plaintext only
 * (docs/tls.md): SSL_read's plaintext goes to wsmsg_conn_recv, what
 * wsmsg_conn_pending returns goes to SSL_write.  The socket is polled for
 * what OpenSSL asks (a read may need a write and the other way round), and
 * a connection with decrypted bytes waiting inside OpenSSL (SSL_pending) is
 * served again without waiting for epoll, which cannot see them.
 * Renegotiation is off, TLS 1.2 is the minimum, close_notify is sent when a
 * connection is done.  SIGHUP reloads the certificate and key (new
 * connections get them; a bad pair is logged and the old one kept). */
#ifndef WSMSG_EXAMPLE_EVLOOP_H
#define WSMSG_EXAMPLE_EVLOOP_H

#include <wsmsg.h>

typedef struct evloop_opts {
  const char *name; /* prefixes log lines */
  int verbose;      /* one log line per connection event */
  long max_conns;   /* 0: no cap but the descriptor limit */
  long drain_ms;    /* after the peer stops being read: time to write what
                       is left (0: no limit); default 10000 */
  long tick_ms;     /* > 0: call tick(tick_user) every tick_ms from the
                       loop (connections it gives output through
                       wsmsg_broadcast* are written) */
  void (*tick)(void *user);
  void *tick_user;
  const char *tls_cert, *tls_key; /* PEM files: serve TLS (both or none) */
  void (*app_free)(void *app);    /* the slot of a connection being freed,
                                     if not NULL (see above) */
} evloop_opts;

/* The defaults: no cap, 10 s drain. */
#define EVLOOP_OPTS(n)                                                         \
  {                                                                            \
    .name = (n), .verbose = 0, .max_conns = 0, .drain_ms = 10000,              \
    .tls_cert = NULL, .tls_key = NULL, .app_free = NULL                        \
  }

/* The usage text of the options evloop_arg parses. */
#define EVLOOP_USAGE                                                           \
  "[--max-conns N] [--drain-timeout MS] [--tls-cert FILE --tls-key FILE]"

/* If argv[*i] is an evloop option (--max-conns N, --drain-timeout MS,
 * --tls-cert FILE, --tls-key FILE), store it, advance *i past its value and
 * return 1; else return 0.  A bad value exits with status 2. */
int evloop_arg(evloop_opts *o, int argc, char **argv, int *i);

/* Serve until SIGINT/SIGTERM.  Returns 0, or 1 if it cannot listen (or
 * load the TLS certificate and key). */
int evloop_serve(wsmsg_server *srv, const char *host, int port,
                 const evloop_opts *o);

/* The application's per-connection slot. */
void **evloop_app(wsmsg_conn *conn);

/* Log a line prefixed with the connection's id (when verbose); the line is
 * escaped (log_escape.h), so peer-controlled text in it is harmless. */
void evloop_log(wsmsg_conn *conn, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Parse a millisecond option value (0..86400000) or exit(2). */
long evloop_ms_arg(const char *name, const char *s);

#endif
