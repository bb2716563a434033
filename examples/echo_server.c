/* echo_server — a WebSocket echo server on epoll, built on wsmsg.
 *
 * Echoes text as text and binary as binary on any path.  Non-blocking,
 * level-triggered epoll, one wsmsg_conn per socket, every connection's
 * deadlines in one wsmsg_timers heap (epoll_wait sleeps until the earliest);
 * SIGINT/SIGTERM close every connection with 1001 and exit once they are
 * done (or after 2 s).
 *
 *   echo_server [--host 127.0.0.1] [--port 8080] [--max-message BYTES]
 *               [--ping-interval MS] [--pong-timeout MS]
 *               [--receive-timeout MS] [--timeout-action ping|heartbeat|close]
 *               [--handshake-timeout MS] [--close-timeout MS] [--verbose]
 *
 * Timeouts are in milliseconds, 0 turns one off.
 */
#include <wsmsg.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct client {
  int fd;
  uint32_t events; /* epoll interest currently registered */
  wsmsg_conn *conn;
  struct client *prev, *next;
} client;

static client *clients;
static wsmsg_timers *timers;
static int verbose;
static size_t nclients;

static void on_text(wsmsg_conn *c, const char *data, size_t len, void *u) {
  (void)u;
  wsmsg_send_text(c, data, len);
}

static void on_binary(wsmsg_conn *c, const uint8_t *data, size_t len, void *u) {
  (void)u;
  wsmsg_send_binary(c, data, len);
}

static void on_open(wsmsg_conn *c, void *u) {
  client *cl = u;
  if (verbose)
    fprintf(stderr, "[fd %d] open %s%s%s\n", cl->fd, wsmsg_conn_path(c),
            *wsmsg_conn_query(c) ? "?" : "", wsmsg_conn_query(c));
}

static void on_close(wsmsg_conn *c, const wsmsg_close_info *ci, void *u) {
  (void)c;
  client *cl = u;
  if (verbose)
    fprintf(stderr, "[fd %d] close code=%d clean=%d%s%s\n", cl->fd,
            (int)ci->code, (int)ci->clean, ci->error ? " error: " : "",
            ci->error ? ci->detail : "");
}

static void drop(int ep, client *cl) {
  epoll_ctl(ep, EPOLL_CTL_DEL, cl->fd, NULL);
  /* read what is left so that close() does not turn into a reset that could
   * destroy our close frame in flight */
  char sink[4096];
  while (read(cl->fd, sink, sizeof(sink)) > 0)
    ;
  shutdown(cl->fd, SHUT_WR);
  close(cl->fd);
  wsmsg_conn_free(cl->conn);
  if (cl->prev)
    cl->prev->next = cl->next;
  else
    clients = cl->next;
  if (cl->next)
    cl->next->prev = cl->prev;
  free(cl);
  nclients--;
}

static void update(int ep, client *cl) {
  uint32_t want = EPOLLIN | (wsmsg_conn_want_write(cl->conn) ? EPOLLOUT : 0);
  if (want != cl->events) {
    struct epoll_event ev = {.events = want, .data.ptr = cl};
    epoll_ctl(ep, EPOLL_CTL_MOD, cl->fd, &ev);
    cl->events = want;
  }
}

static void serve(int ep, client *cl) {
  int r = wsmsg_conn_io_fd(cl->conn, cl->fd);
  if (r != 0)
    drop(ep, cl);
  else
    update(ep, cl);
}

static int listen_on(const char *host, int port) {
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    fprintf(stderr, "echo_server: bad host %s (an IPv4 address)\n", host);
    return -1;
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
      listen(fd, 4096) < 0) {
    fprintf(stderr, "echo_server: %s:%d: %s\n", host, port, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

static void usage(void) {
  fprintf(stderr,
          "usage: echo_server [--host ADDR] [--port N] [--max-message BYTES]\n"
          "                   [--ping-interval MS] [--pong-timeout MS]\n"
          "                   [--receive-timeout MS] "
          "[--timeout-action ping|heartbeat|close]\n"
          "                   [--handshake-timeout MS] [--close-timeout MS] "
          "[--verbose]\n"
          "Timeouts in milliseconds; 0 turns one off.\n");
}

static long ms_arg(const char *s) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*end || v < 0 || v > 86400000) {
    fprintf(stderr, "echo_server: bad milliseconds: %s\n", s);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 8080;
  long long max_message = -1;
  long ping = 0, pong = 0, recv_to = 0, hs_to = 10000, close_to = 10000;
  int action = WSMSG_ON_TIMEOUT_PING;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--ping-interval") && i + 1 < argc)
      ping = ms_arg(argv[++i]);
    else if (!strcmp(argv[i], "--pong-timeout") && i + 1 < argc)
      pong = ms_arg(argv[++i]);
    else if (!strcmp(argv[i], "--receive-timeout") && i + 1 < argc)
      recv_to = ms_arg(argv[++i]);
    else if (!strcmp(argv[i], "--handshake-timeout") && i + 1 < argc)
      hs_to = ms_arg(argv[++i]);
    else if (!strcmp(argv[i], "--close-timeout") && i + 1 < argc)
      close_to = ms_arg(argv[++i]);
    else if (!strcmp(argv[i], "--timeout-action") && i + 1 < argc) {
      const char *a = argv[++i];
      action = !strcmp(a, "ping")        ? WSMSG_ON_TIMEOUT_PING
               : !strcmp(a, "heartbeat") ? WSMSG_ON_TIMEOUT_HEARTBEAT
               : !strcmp(a, "close")     ? WSMSG_ON_TIMEOUT_CLOSE_1001
                                         : -1;
      if (action < 0) {
        usage();
        return 2;
      }
    } else if (!strcmp(argv[i], "--host") && i + 1 < argc)
      host = argv[++i];
    else if (!strcmp(argv[i], "--port") && i + 1 < argc)
      port = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--max-message") && i + 1 < argc)
      max_message = atoll(argv[++i]);
    else if (!strcmp(argv[i], "--verbose") || !strcmp(argv[i], "-v"))
      verbose = 1;
    else {
      usage();
      return !strcmp(argv[i], "--help") ? 0 : 2;
    }
  }
  /* thousands of connections need thousands of descriptors */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
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
  wsmsg_endpoint_set_ping_interval(echo, (uint32_t)ping);
  wsmsg_endpoint_set_pong_timeout(echo, (uint32_t)pong);
  wsmsg_endpoint_set_receive_timeout(echo, (uint32_t)recv_to);
  wsmsg_endpoint_set_timeout_action(echo, action, NULL);
  wsmsg_endpoint_set_close_timeout(echo, (uint32_t)close_to);
  wsmsg_server_set_handshake_timeout(srv, (uint32_t)hs_to);
  wsmsg_server_route(srv, "*", echo);
  timers = wsmsg_timers_new();

  int lfd = listen_on(host, port);
  if (lfd < 0)
    return 1;
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  signal(SIGPIPE, SIG_IGN);
  int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  ev.data.ptr = &sfd;
  epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
  fprintf(stderr, "echo_server (wsmsg %s) listening on ws://%s:%d/\n",
          wsmsg_version(), host, port);

  int stopping = 0;
  struct timespec stop_at = {0, 0};
  struct epoll_event evs[256];
  for (;;) {
    int64_t due_in = wsmsg_timers_next_ms(timers, wsmsg_now_ms());
    int timeout = due_in < 0 ? -1 : due_in > 60000 ? 60000 : (int)due_in;
    if (stopping) {
      if (nclients == 0)
        break;
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      long left = (stop_at.tv_sec - now.tv_sec) * 1000 +
                  (stop_at.tv_nsec - now.tv_nsec) / 1000000;
      if (left <= 0)
        break;
      if (timeout < 0 || left < timeout)
        timeout = (int)left;
    }
    int n = epoll_wait(ep, evs, 256, timeout);
    if (n < 0 && errno != EINTR) {
      perror("epoll_wait");
      break;
    }
    for (int i = 0; i < n; i++) {
      void *p = evs[i].data.ptr;
      if (p == NULL) { /* listener */
        for (int k = 0; k < 64 && !stopping; k++) {
          int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0)
            break;
          int one = 1;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
          client *cl = calloc(1, sizeof(*cl));
          if (!cl || !(cl->conn = wsmsg_server_accept(srv, cl))) {
            free(cl);
            close(fd);
            continue;
          }
          cl->fd = fd;
          cl->events = EPOLLIN;
          wsmsg_timers_add(timers, cl->conn);
          cl->next = clients;
          if (clients)
            clients->prev = cl;
          clients = cl;
          nclients++;
          struct epoll_event cev = {.events = EPOLLIN, .data.ptr = cl};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
        }
      } else if (p == &sfd) {
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof(si)) == sizeof(si))
          ;
        if (!stopping) {
          stopping = 1;
          fprintf(stderr, "echo_server: closing %zu connection(s)\n", nclients);
          epoll_ctl(ep, EPOLL_CTL_DEL, lfd, NULL);
          close(lfd);
          clock_gettime(CLOCK_MONOTONIC, &stop_at);
          stop_at.tv_sec += 2;
          client *cl = clients;
          while (cl) {
            client *next = cl->next;
            if (wsmsg_conn_state(cl->conn) == WSMSG_STATE_OPEN)
              wsmsg_close(cl->conn, 1001, "server shutting down");
            else if (wsmsg_conn_state(cl->conn) == WSMSG_STATE_CONNECTING)
              wsmsg_conn_abort(cl->conn);
            serve(ep, cl);
            cl = next;
          }
        }
      } else {
        serve(ep, (client *)p);
      }
    }
    /* deadlines: pings to send, idle or silent peers to drop */
    uint64_t now = wsmsg_now_ms();
    wsmsg_conn *due;
    while ((due = wsmsg_timers_expire(timers, now)) != NULL)
      serve(ep, wsmsg_conn_user(due));
  }
  while (clients)
    drop(ep, clients);
  close(ep);
  close(sfd);
  if (!stopping)
    close(lfd);
  wsmsg_timers_free(timers);
  wsmsg_server_free(srv);
  wsmsg_endpoint_free(echo);
  fprintf(stderr, "echo_server: bye\n");
  return 0;
}
