/* minimal_server: an echo server on ws://127.0.0.1:PORT/ws/chat in one
 * epoll loop; SIGTERM drains it.  Usage: minimal_server [PORT [PING_MS]]
 * (8080, 20000) */
#include <wsmsg.h> /* cc app.c $(pkg-config --cflags --libs wsmsg) */

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

struct client {
  int fd;
  uint32_t events; /* what epoll watches for it */
  wsmsg_conn *conn;
};

static int efd;

static void on_text(wsmsg_conn *c, const char *s, size_t n, void *user) {
  (void)user;
  wsmsg_send_text(c, s, n); /* echo it back */
}

/* A broadcast, a topic publish or the drain gave this connection output
 * (or ended it) while nothing was pending: watch for EPOLLOUT so serve()
 * writes it.  (This echo server does not broadcast; a chat room does.) */
static void on_output(wsmsg_conn *c, void *user) {
  (void)c;
  struct client *cl = user;
  struct epoll_event ev = {.events = cl->events | EPOLLOUT, .data.ptr = cl};
  epoll_ctl(efd, EPOLL_CTL_MOD, cl->fd, &ev);
  cl->events = ev.events;
}

/* Read, parse, write; then watch for exactly what the connection wants:
 * EPOLLIN only while it reads, EPOLLOUT only while it has output (anything
 * more and level-triggered epoll wakes us every turn for nothing). */
static void serve(struct client *cl, uint32_t revents) {
  int r = wsmsg_conn_io_fd(cl->conn, cl->fd);
  int reading = wsmsg_conn_want_read(cl->conn);
  if (r != 0 || ((revents & (EPOLLERR | EPOLLHUP)) && !reading)) {
    close(cl->fd);             /* done, or the peer is gone */
    wsmsg_conn_free(cl->conn); /* also leaves the timer set */
    free(cl);
    return;
  }
  uint32_t want = (reading ? EPOLLIN : 0u) |
                  (wsmsg_conn_want_write(cl->conn) ? EPOLLOUT : 0u);
  if (want != cl->events) {
    struct epoll_event ev = {.events = want, .data.ptr = cl};
    epoll_ctl(efd, EPOLL_CTL_MOD, cl->fd, &ev);
    cl->events = want;
  }
}

int main(int argc, char **argv) {
  int port = argc > 1 ? atoi(argv[1]) : 8080;
  int ping = argc > 2 ? atoi(argv[2]) : 20000;
  wsmsg_endpoint *ep = wsmsg_endpoint_new();
  wsmsg_endpoint_on_text(ep, on_text);
  /* keepalive: a ping every PING_MS; a peer that does not answer goes */
  wsmsg_endpoint_set_ping_interval(ep, (uint32_t)ping);
  wsmsg_endpoint_set_pong_timeout(ep, (uint32_t)ping);
  wsmsg_server *srv = wsmsg_server_new();
  wsmsg_server_route(srv, "/ws/chat", ep);   /* other paths get 404 */
  wsmsg_server_on_output(srv, on_output);    /* broadcasts' recipients */
  wsmsg_timers *timers = wsmsg_timers_new(); /* every connection's deadlines */

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 512)) {
    perror("minimal_server");
    return 1;
  }
  efd = epoll_create1(0);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(efd, EPOLL_CTL_ADD, lfd, &lev);
  uint64_t resume = 0; /* out of descriptors: listen again at this time */
  /* SIGTERM/SIGINT arrive as a readable descriptor (epoll tag &sfd) */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigprocmask(SIG_BLOCK, &sigs, NULL);
  static int sfd;
  sfd = signalfd(-1, &sigs, SFD_NONBLOCK);
  struct epoll_event sev = {.events = EPOLLIN, .data.ptr = &sfd};
  epoll_ctl(efd, EPOLL_CTL_ADD, sfd, &sev);
  uint64_t stop_at = 0; /* draining: exit when all are gone, or then */
  printf("listening on ws://127.0.0.1:%d/ws/chat\n", port);
  fflush(stdout);

  for (;;) {
    uint64_t now = wsmsg_now_ms();
    if (stop_at && (wsmsg_server_conn_count(srv) == 0 || now >= stop_at))
      break; /* every close handshake finished, or 2 s passed */
    if (resume && now >= resume && !stop_at) {
      epoll_ctl(efd, EPOLL_CTL_ADD, lfd, &lev);
      resume = 0;
    }
    int64_t wait = wsmsg_timers_next_ms(timers, now); /* -1: none */
    if (resume && (wait < 0 || (uint64_t)wait > resume - now))
      wait = (int64_t)(resume - now);
    if (stop_at && (wait < 0 || (uint64_t)wait > stop_at - now))
      wait = (int64_t)(stop_at - now);
    struct epoll_event ev[64];
    int n =
        epoll_wait(efd, ev, 64, wait < 0 || wait > 60000 ? 60000 : (int)wait);
    for (int i = 0; i < n; i++) {
      if (ev[i].data.ptr == &sfd) { /* drain: stop listening, tell every */
        struct signalfd_siginfo si; /* client 1001 "going away" (on_output */
        if (read(sfd, &si, sizeof(si)) > 0 && !stop_at) { /* marks them) */
          epoll_ctl(efd, EPOLL_CTL_DEL, lfd, NULL);
          close(lfd);
          wsmsg_server_drain(srv);
          stop_at = wsmsg_now_ms() + 2000;
        }
        continue;
      }
      if (ev[i].data.ptr) {
        serve(ev[i].data.ptr, ev[i].events);
        continue;
      }
      for (;;) { /* the listener: accept every pending client */
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
        if (fd < 0) {
          if (errno == EMFILE || errno == ENFILE) {   /* rest 100 ms, */
            epoll_ctl(efd, EPOLL_CTL_DEL, lfd, NULL); /* do not spin */
            resume = wsmsg_now_ms() + 100;
          }
          break; /* EAGAIN: none left */
        }
        struct client *cl = calloc(1, sizeof(*cl));
        if (!cl || !(cl->conn = wsmsg_server_accept(srv, cl))) {
          free(cl);
          close(fd);
          continue;
        }
        cl->fd = fd;
        cl->events = EPOLLIN;
        wsmsg_timers_add(timers, cl->conn);
        struct epoll_event cev = {.events = EPOLLIN, .data.ptr = cl};
        epoll_ctl(efd, EPOLL_CTL_ADD, fd, &cev);
      }
    }
    wsmsg_conn *due; /* handshake, ping, pong and close deadlines */
    while ((due = wsmsg_timers_expire(timers, wsmsg_now_ms())) != NULL)
      serve(wsmsg_conn_user(due), 0);
  }
  if (wsmsg_server_conn_count(srv) == 0) { /* else the OS takes what is left */
    wsmsg_timers_free(timers);
    wsmsg_server_free(srv);
    wsmsg_endpoint_free(ep);
  }
  return 0;
}
