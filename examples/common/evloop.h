/* evloop — the small epoll server loop the example servers share.
 *
 * Listens on host:port, accepts, gives each socket a wsmsg_conn from `srv`,
 * drives it with wsmsg_conn_io_fd, keeps every connection's deadlines in
 * one wsmsg_timers heap, and on SIGINT/SIGTERM closes every connection with
 * 1001 and returns once they are done (or after 2 s).  Finished sockets are
 * half-closed and drained until the peer's EOF (at most 1 s), so a peer
 * still sending never gets a TCP reset that destroys our close frame.
 *
 * The connection's user pointer belongs to evloop; an application keeps
 * its own per-connection state in the slot evloop_app() returns (NULL at
 * first).  Clean it up in on_close: evloop aborts connections it has to
 * drop while they are open, so on_close always runs for opened ones. */
#ifndef WSMSG_EXAMPLE_EVLOOP_H
#define WSMSG_EXAMPLE_EVLOOP_H

#include <wsmsg.h>

/* Serve until SIGINT/SIGTERM.  `name` prefixes log lines; `verbose` logs
 * one line per connection event.  Returns 0, or 1 if it cannot listen. */
int evloop_serve(wsmsg_server *srv, const char *host, int port,
                 const char *name, int verbose);

/* The application's per-connection slot. */
void **evloop_app(wsmsg_conn *conn);

/* Log a line prefixed with the connection's id (when verbose). */
void evloop_log(wsmsg_conn *conn, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Parse a millisecond option value (0..86400000) or exit(2). */
long evloop_ms_arg(const char *name, const char *s);

#endif
