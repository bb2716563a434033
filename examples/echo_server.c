/* echo_server — a WebSocket echo server on epoll, built on wsmsg.
 *
 * Echoes text as text and binary as binary on any path.  Non-blocking,
 * level-triggered epoll, one wsmsg_conn per socket; SIGINT/SIGTERM close
 * every connection with 1001 and exit once they are done (or after 2 s).
 * Finished sockets are half-closed and drained until the peer's EOF (at
 * most 1 s) so that a peer still sending never gets a reset that destroys
 * our close frame.
 *
 *   echo_server [--host 127.0.0.1] [--port 8080] [--max-message BYTES]
 *               [--verbose]
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

/* After the last byte for a peer is written, the socket is not closed at
 * once: a peer still sending (an oversize message we refused, frames after
 * our close) would get a TCP reset, and a reset can destroy our close frame
 * or error response before the peer reads it.  We shut down our side,
 * discard what still comes, and close on the peer's EOF or after this. */
#define LINGER_MS 1000

typedef struct client {
  int fd;
  uint32_t events;  /* epoll interest currently registered */
  wsmsg_conn *conn; /* NULL once lingering */
  long long linger_until;
  struct client *prev, *next;
  struct client *lnext; /* lingering queue, oldest first */
} client;

static client *clients;
static client *linger_head, *linger_tail;
static int verbose;
static size_t nclients;

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
  close(cl->fd);
  wsmsg_conn_free(cl->conn);
  if (cl->conn == NULL) { /* lingering: unlink from the queue */
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
  if (cl->prev)
    cl->prev->next = cl->next;
  else
    clients = cl->next;
  if (cl->next)
    cl->next->prev = cl->prev;
  free(cl);
  nclients--;
}

/* The connection is done and everything was written: half-close and wait
 * for the peer's EOF (see LINGER_MS). */
static void linger(int ep, client *cl) {
  wsmsg_conn_free(cl->conn);
  cl->conn = NULL;
  shutdown(cl->fd, SHUT_WR);
  cl->linger_until = now_ms() + LINGER_MS;
  cl->lnext = NULL;
  if (linger_tail)
    linger_tail->lnext = cl;
  else
    linger_head = cl;
  linger_tail = cl;
  if (cl->events != EPOLLIN) {
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = cl};
    epoll_ctl(ep, EPOLL_CTL_MOD, cl->fd, &ev);
    cl->events = EPOLLIN;
  }
}

/* Discard what a lingering peer sends; drop it on EOF or error. */
static void discard(int ep, client *cl) {
  char sink[16384];
  for (int i = 0; i < 64; i++) {
    ssize_t n = read(cl->fd, sink, sizeof(sink));
    if (n > 0)
      continue;
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return;
    break; /* EOF or error */
  }
  drop(ep, cl);
}

/* Drop lingering connections whose time is up; return the ms until the
 * next one is, or -1. */
static int expire_lingering(int ep) {
  long long now = now_ms();
  while (linger_head && linger_head->linger_until <= now)
    drop(ep, linger_head);
  if (!linger_head)
    return -1;
  return (int)(linger_head->linger_until - now);
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
  if (cl->conn == NULL) {
    discard(ep, cl);
    return;
  }
  int r = wsmsg_conn_io_fd(cl->conn, cl->fd);
  if (r == 1)
    linger(ep, cl);
  else if (r < 0)
    drop(ep, cl); /* socket error: nothing left to protect */
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
  fprintf(stderr, "usage: echo_server [--host ADDR] [--port N] "
                  "[--max-message BYTES] [--verbose]\n");
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 8080;
  long long max_message = -1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--host") && i + 1 < argc)
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
  wsmsg_server_route(srv, "*", echo);

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

  int stopping = 0, stop_requested = 0;
  long long stop_at = 0;
  struct epoll_event evs[256];
  for (;;) {
    int timeout = expire_lingering(ep);
    if (stopping) {
      if (nclients == 0)
        break;
      long long left = stop_at - now_ms();
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
        /* shut down after this batch: closing connections here would free
         * clients whose events are still in evs[] */
        stop_requested = 1;
      } else {
        serve(ep, (client *)p);
      }
    }
    if (stop_requested && !stopping) {
      stopping = 1;
      fprintf(stderr, "echo_server: closing %zu connection(s)\n", nclients);
      epoll_ctl(ep, EPOLL_CTL_DEL, lfd, NULL);
      close(lfd);
      stop_at = now_ms() + 2000;
      client *cl = clients;
      while (cl) {
        client *next = cl->next;
        if (cl->conn) { /* lingering ones are done already */
          if (wsmsg_conn_state(cl->conn) == WSMSG_STATE_OPEN)
            wsmsg_close(cl->conn, 1001, "server shutting down");
          else if (wsmsg_conn_state(cl->conn) == WSMSG_STATE_CONNECTING)
            wsmsg_conn_abort(cl->conn);
          serve(ep, cl);
        }
        cl = next;
      }
    }
  }
  while (clients)
    drop(ep, clients);
  close(ep);
  close(sfd);
  if (!stopping)
    close(lfd);
  wsmsg_server_free(srv);
  wsmsg_endpoint_free(echo);
  fprintf(stderr, "echo_server: bye\n");
  return 0;
}
