/* evloop — see evloop.h. */
#include "evloop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* How long a finished socket may linger for the peer's EOF. */
#define LINGER_MS 1000
/* How long shutdown waits for connections to finish their close. */
#define STOP_MS 2000

typedef struct client {
  void *app; /* first: evloop_app() */
  int fd;
  unsigned long id;
  uint32_t events;  /* epoll interest registered */
  wsmsg_conn *conn; /* NULL once lingering */
  uint64_t linger_until;
  struct client *prev, *next; /* all clients */
  struct client *lnext;       /* lingering queue, oldest first */
} client;

static struct {
  int ep;
  int verbose;
  const char *name;
  client *clients, *linger_head, *linger_tail;
  size_t nclients;
  unsigned long next_id;
  wsmsg_timers *timers;
} L;

void **evloop_app(wsmsg_conn *conn) {
  return &((client *)wsmsg_conn_user(conn))->app;
}

void evloop_log(wsmsg_conn *conn, const char *fmt, ...) {
  if (!L.verbose)
    return;
  client *cl = wsmsg_conn_user(conn);
  fprintf(stderr, "[%s #%lu] ", L.name, cl ? cl->id : 0ul);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

long evloop_ms_arg(const char *name, const char *s) {
  char *end;
  long v = strtol(s, &end, 10);
  if (!*s || *end || v < 0 || v > 86400000) {
    fprintf(stderr, "%s: bad milliseconds: %s\n", name, s);
    exit(2);
  }
  return v;
}

static void unlink_lingering(client *cl) {
  client **pp = &L.linger_head, *prev = NULL;
  while (*pp && *pp != cl) {
    prev = *pp;
    pp = &(*pp)->lnext;
  }
  if (*pp) {
    *pp = cl->lnext;
    if (L.linger_tail == cl)
      L.linger_tail = prev;
  }
}

static void drop(client *cl) {
  epoll_ctl(L.ep, EPOLL_CTL_DEL, cl->fd, NULL);
  close(cl->fd);
  if (cl->conn) {
    /* still open: let the application see the end (on_close) */
    wsmsg_conn_abort(cl->conn);
    wsmsg_conn_free(cl->conn);
  } else {
    unlink_lingering(cl);
  }
  if (cl->prev)
    cl->prev->next = cl->next;
  else
    L.clients = cl->next;
  if (cl->next)
    cl->next->prev = cl->prev;
  free(cl);
  L.nclients--;
}

/* Done and written: half-close, then wait for the peer's EOF. */
static void linger(client *cl) {
  wsmsg_conn_free(cl->conn);
  cl->conn = NULL;
  shutdown(cl->fd, SHUT_WR);
  cl->linger_until = wsmsg_now_ms() + LINGER_MS;
  cl->lnext = NULL;
  if (L.linger_tail)
    L.linger_tail->lnext = cl;
  else
    L.linger_head = cl;
  L.linger_tail = cl;
  if (cl->events != EPOLLIN) {
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = cl};
    epoll_ctl(L.ep, EPOLL_CTL_MOD, cl->fd, &ev);
    cl->events = EPOLLIN;
  }
}

/* Discard what a lingering peer still sends; drop it on EOF or error.  At
 * most 1 MiB per call, like wsmsg_conn_io_fd: the socket stays readable
 * and we come back.  (Dropping when the budget runs out would close with
 * unread input, and the reset destroys what we still had in flight to the
 * peer, such as our close frame.) */
static void discard(client *cl) {
  char sink[16384];
  for (int i = 0; i < 64; i++) {
    ssize_t n = read(cl->fd, sink, sizeof(sink));
    if (n > 0 || (n < 0 && errno == EINTR))
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return;
    drop(cl); /* EOF or error */
    return;
  }
}

/* Drop lingering sockets whose time is up; ms until the next, or -1. */
static int64_t expire_lingering(void) {
  uint64_t now = wsmsg_now_ms();
  while (L.linger_head && L.linger_head->linger_until <= now)
    drop(L.linger_head);
  return L.linger_head ? (int64_t)(L.linger_head->linger_until - now) : -1;
}

static void serve(client *cl) {
  if (!cl->conn) {
    discard(cl);
    return;
  }
  int r = wsmsg_conn_io_fd(cl->conn, cl->fd);
  if (r == 1) {
    linger(cl);
  } else if (r < 0) {
    drop(cl); /* socket error: nothing left to protect */
  } else {
    uint32_t want = EPOLLIN | (wsmsg_conn_want_write(cl->conn) ? EPOLLOUT : 0);
    if (want != cl->events) {
      struct epoll_event ev = {.events = want, .data.ptr = cl};
      epoll_ctl(L.ep, EPOLL_CTL_MOD, cl->fd, &ev);
      cl->events = want;
    }
  }
}

static void accept_all(int lfd, wsmsg_server *srv) {
  for (int k = 0; k < 64; k++) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
      return;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    client *cl = calloc(1, sizeof(*cl));
    if (!cl || !(cl->conn = wsmsg_server_accept(srv, cl))) {
      free(cl);
      close(fd);
      continue;
    }
    cl->fd = fd;
    cl->id = ++L.next_id;
    cl->events = EPOLLIN;
    cl->next = L.clients;
    if (L.clients)
      L.clients->prev = cl;
    L.clients = cl;
    L.nclients++;
    wsmsg_timers_add(L.timers, cl->conn);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = cl};
    epoll_ctl(L.ep, EPOLL_CTL_ADD, fd, &ev);
  }
}

static int listen_on(const char *host, int port) {
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    fprintf(stderr, "%s: bad host %s (an IPv4 address)\n", L.name, host);
    return -1;
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
      listen(fd, 4096) < 0) {
    fprintf(stderr, "%s: %s:%d: %s\n", L.name, host, port, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

static int min_timeout(int64_t a, int64_t b) {
  int64_t m = a < 0 ? b : b < 0 ? a : a < b ? a : b;
  return m < 0 ? -1 : m > 60000 ? 60000 : (int)m;
}

int evloop_serve(wsmsg_server *srv, const char *host, int port,
                 const char *name, int verbose) {
  L.name = name;
  L.verbose = verbose;
  /* thousands of connections need thousands of descriptors */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
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
  L.ep = epoll_create1(EPOLL_CLOEXEC);
  L.timers = wsmsg_timers_new();
  static int listener_tag, signal_tag;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listener_tag};
  epoll_ctl(L.ep, EPOLL_CTL_ADD, lfd, &ev);
  ev.data.ptr = &signal_tag;
  epoll_ctl(L.ep, EPOLL_CTL_ADD, sfd, &ev);
  fprintf(stderr, "%s (wsmsg %s) listening on ws://%s:%d/\n", name,
          wsmsg_version(), host, port);

  int stopping = 0;
  uint64_t stop_at = 0;
  struct epoll_event evs[256];
  for (;;) {
    uint64_t now = wsmsg_now_ms();
    int timeout =
        min_timeout(wsmsg_timers_next_ms(L.timers, now), expire_lingering());
    if (stopping) {
      if (L.nclients == 0 || now >= stop_at)
        break;
      timeout = min_timeout(timeout, (int64_t)(stop_at - now));
    }
    int n = epoll_wait(L.ep, evs, 256, timeout);
    if (n < 0 && errno != EINTR) {
      perror("epoll_wait");
      break;
    }
    int signalled = 0;
    for (int i = 0; i < n; i++) {
      void *p = evs[i].data.ptr;
      if (p == &listener_tag) {
        if (!stopping)
          accept_all(lfd, srv);
      } else if (p == &signal_tag) {
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof(si)) == sizeof(si))
          ;
        signalled = 1;
      } else {
        serve(p);
      }
    }
    /* deadlines: pings to send, idle or silent peers to drop */
    wsmsg_conn *due;
    while ((due = wsmsg_timers_expire(L.timers, wsmsg_now_ms())) != NULL)
      serve(wsmsg_conn_user(due));
    /* after the batch, so no event above refers to a freed client */
    if (signalled && !stopping) {
      stopping = 1;
      stop_at = wsmsg_now_ms() + STOP_MS;
      fprintf(stderr, "%s: closing %zu connection(s)\n", name, L.nclients);
      epoll_ctl(L.ep, EPOLL_CTL_DEL, lfd, NULL);
      close(lfd);
      lfd = -1;
      for (client *cl = L.clients, *next; cl; cl = next) {
        next = cl->next;
        if (!cl->conn)
          continue;
        if (wsmsg_conn_state(cl->conn) == WSMSG_STATE_OPEN)
          wsmsg_close(cl->conn, 1001, "server shutting down");
        else if (wsmsg_conn_state(cl->conn) == WSMSG_STATE_CONNECTING)
          wsmsg_conn_abort(cl->conn);
        serve(cl);
      }
    }
  }
  while (L.clients)
    drop(L.clients);
  if (lfd >= 0)
    close(lfd);
  close(sfd);
  close(L.ep);
  wsmsg_timers_free(L.timers);
  fprintf(stderr, "%s: bye\n", name);
  return 0;
}
