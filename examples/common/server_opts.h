/* server_opts — the command-line options the example echo servers share
 * (echo_server and demo_server on evloop, uv_echo_server on libuv): where
 * to listen, the timeouts and permessage-deflate, and applying them to an
 * endpoint and a server.  A timeout not given (-1) keeps the library's
 * default (docs/timeouts.md). */
#ifndef WSMSG_EXAMPLE_SERVER_OPTS_H
#define WSMSG_EXAMPLE_SERVER_OPTS_H

#include <wsmsg.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct server_opts {
  const char *host;
  int port;
  long ping, pong, recv_to, hs_to, close_to; /* ms; -1: not given */
  int deflate;                               /* WSMSG_DEFLATE_* */
} server_opts;

/* 127.0.0.1:port, no timeout given, permessage-deflate on (browsers offer
 * it). */
#define SERVER_OPTS(port_)                                                     \
  {                                                                            \
    .host = "127.0.0.1", .port = (port_), .ping = -1, .pong = -1,              \
    .recv_to = -1, .hs_to = -1, .close_to = -1, .deflate = WSMSG_DEFLATE_ON    \
  }

/* Parse a millisecond option value (0..86400000) or exit(2), the message
 * prefixed with the program's `name`. */
static inline long server_opts_ms(const char *name, const char *s) {
  char *end;
  long v = strtol(s, &end, 10);
  if (!*s || *end || v < 0 || v > 86400000) {
    fprintf(stderr, "%s: bad milliseconds: %s\n", name, s);
    exit(2);
  }
  return v;
}

/* If argv[*i] is --host ADDR, --port N, --ping-interval MS, --pong-timeout
 * MS, --receive-timeout MS, --handshake-timeout MS, --close-timeout MS,
 * --no-deflate or --deflate on|low_memory|max_ratio|off, store it, advance
 * *i past its value and return 1.  Return 0 if it is none of them (or its
 * value is missing), -1 for a --deflate value it does not know (the caller
 * prints its usage).  A bad millisecond value exits with status 2. */
static inline int server_opts_arg(server_opts *o, const char *name, int argc,
                                  char **argv, int *i) {
  const char *a = argv[*i];
  if (!strcmp(a, "--no-deflate")) {
    o->deflate = WSMSG_DEFLATE_OFF;
    return 1;
  }
  if (*i + 1 >= argc)
    return 0;
  const char *v = argv[*i + 1];
  long *ms = !strcmp(a, "--ping-interval")       ? &o->ping
             : !strcmp(a, "--pong-timeout")      ? &o->pong
             : !strcmp(a, "--receive-timeout")   ? &o->recv_to
             : !strcmp(a, "--handshake-timeout") ? &o->hs_to
             : !strcmp(a, "--close-timeout")     ? &o->close_to
                                                 : NULL;
  if (ms)
    *ms = server_opts_ms(name, v);
  else if (!strcmp(a, "--host"))
    o->host = v;
  else if (!strcmp(a, "--port"))
    o->port = atoi(v);
  else if (!strcmp(a, "--deflate")) {
    int d = !strcmp(v, "on")           ? WSMSG_DEFLATE_ON
            : !strcmp(v, "low_memory") ? WSMSG_DEFLATE_LOW_MEMORY
            : !strcmp(v, "max_ratio")  ? WSMSG_DEFLATE_MAX_RATIO
            : !strcmp(v, "off")        ? WSMSG_DEFLATE_OFF
                                       : -1;
    if (d < 0)
      return -1;
    o->deflate = d;
  } else
    return 0;
  ++*i;
  return 1;
}

/* Set permessage-deflate and the timeouts given (ping interval, pong,
 * receive and close timeouts) on `ep`. */
static inline void server_opts_apply(const server_opts *o, wsmsg_endpoint *ep) {
  wsmsg_endpoint_set_deflate(ep, o->deflate);
  if (o->ping >= 0)
    wsmsg_endpoint_set_ping_interval(ep, (uint32_t)o->ping);
  if (o->pong >= 0)
    wsmsg_endpoint_set_pong_timeout(ep, (uint32_t)o->pong);
  if (o->recv_to >= 0)
    wsmsg_endpoint_set_receive_timeout(ep, (uint32_t)o->recv_to);
  if (o->close_to >= 0)
    wsmsg_endpoint_set_close_timeout(ep, (uint32_t)o->close_to);
}

/* Set the handshake timeout, if given, on `srv`. */
static inline void server_opts_apply_server(const server_opts *o,
                                            wsmsg_server *srv) {
  if (o->hs_to >= 0)
    wsmsg_server_set_handshake_timeout(srv, (uint32_t)o->hs_to);
}

#endif
