/* echo_server — a WebSocket echo server on epoll, built on wsmsg.
 *
 * Echoes text as text and binary as binary on any path.  The epoll loop is
 * examples/common/evloop.c: non-blocking, level-triggered, one wsmsg_conn
 * per socket, every connection's deadlines in one wsmsg_timers heap,
 * lingering close, and SIGINT/SIGTERM close every connection with 1001.
 *
 *   echo_server [--host 127.0.0.1] [--port 8080] [--max-message BYTES]
 *               [--ping-interval MS] [--pong-timeout MS]
 *               [--receive-timeout MS] [--timeout-action ping|heartbeat|close]
 *               [--handshake-timeout MS] [--close-timeout MS]
 *               [--max-conns N] [--drain-timeout MS] [--verbose]
 *
 * Timeouts are in milliseconds, 0 turns one off; one not given keeps the
 * library's default (docs/timeouts.md).  A peer that does not read
 * its echoes is closed with 1008 once 8 MiB are queued for it.  --max-conns
 * caps the connections (0, the default: the descriptor limit); a peer that
 * half-closes without reading what is left gets --drain-timeout (10 s).
 */
#include "common/evloop.h"
#include "common/server_opts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_text(wsmsg_conn *c, const char *data, size_t len, void *u) {
  (void)u;
  wsmsg_send_text(c, data, len);
}

static void on_binary(wsmsg_conn *c, const uint8_t *data, size_t len, void *u) {
  (void)u;
  wsmsg_send_binary(c, data, len);
}

static void on_open(wsmsg_conn *c, void *u) {
  (void)u;
  evloop_log(c, "open %s%s%s", wsmsg_conn_path(c),
             *wsmsg_conn_query(c) ? "?" : "", wsmsg_conn_query(c));
}

static void on_close(wsmsg_conn *c, const wsmsg_close_info *ci, void *u) {
  (void)u;
  evloop_log(c, "close code=%d clean=%d%s%s", (int)ci->code, (int)ci->clean,
             ci->error ? " error: " : "", ci->error ? ci->detail : "");
}

static void usage(void) {
  fprintf(
      stderr,
      "usage: echo_server [--host ADDR] [--port N] [--max-message BYTES]\n"
      "                   [--ping-interval MS] [--pong-timeout MS]\n"
      "                   [--receive-timeout MS] "
      "[--timeout-action ping|heartbeat|close]\n"
      "                   [--handshake-timeout MS] [--close-timeout MS] "
      "[--verbose]\n"
      "                   [--no-deflate | --deflate on|low_memory|max_ratio]\n"
      "                   " EVLOOP_USAGE "\n"
      "Timeouts in milliseconds; 0 turns one off; not given: the library's "
      "default.\n"
      "permessage-deflate is on (no context takeover) unless --no-deflate "
      "says otherwise.\n");
}

int main(int argc, char **argv) {
  server_opts so = SERVER_OPTS(8080);
  evloop_opts lo = EVLOOP_OPTS("echo_server");
  long long max_message = -1; /* -1: not given, the library's default */
  int action = WSMSG_ON_TIMEOUT_PING;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int more = i + 1 < argc;
    if (evloop_arg(&lo, argc, argv, &i))
      continue;
    int r = server_opts_arg(&so, "echo_server", argc, argv, &i);
    if (r < 0) {
      usage();
      return 2;
    }
    if (r)
      continue;
    if (!strcmp(a, "--max-message") && more)
      max_message = atoll(argv[++i]);
    else if (!strcmp(a, "--timeout-action") && more) {
      const char *v = argv[++i];
      action = !strcmp(v, "ping")        ? WSMSG_ON_TIMEOUT_PING
               : !strcmp(v, "heartbeat") ? WSMSG_ON_TIMEOUT_HEARTBEAT
               : !strcmp(v, "close")     ? WSMSG_ON_TIMEOUT_CLOSE_1001
                                         : -1;
      if (action < 0) {
        usage();
        return 2;
      }
    } else if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) {
      lo.verbose = 1;
    } else {
      usage();
      return !strcmp(a, "--help") ? 0 : 2;
    }
  }
  wsmsg_endpoint *echo = wsmsg_endpoint_new();
  wsmsg_server *srv = wsmsg_server_new();
  if (!echo || !srv)
    return 1;
  wsmsg_endpoint_on_text(echo, on_text);
  wsmsg_endpoint_on_binary(echo, on_binary);
  wsmsg_endpoint_on_open(echo, on_open);
  wsmsg_endpoint_on_close(echo, on_close);
  if (max_message >= 0)
    wsmsg_endpoint_set_max_message_size(echo, (uint64_t)max_message);
  server_opts_apply(&so, echo);
  wsmsg_endpoint_set_timeout_action(echo, action, NULL);
  wsmsg_endpoint_set_backpressure(echo, 8u << 20, 2u << 20,
                                  WSMSG_BACKPRESSURE_CLOSE);
  server_opts_apply_server(&so, srv);
  wsmsg_server_route(srv, "*", echo);
  int r = evloop_serve(srv, so.host, so.port, &lo);
  wsmsg_server_free(srv);
  wsmsg_endpoint_free(echo);
  return r;
}
