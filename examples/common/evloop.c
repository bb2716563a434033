/* evloop — see evloop.h. */
#include "evloop.h"
#include "log_escape.h"
#include "mem_return.h"
#include "server_opts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
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
/* How long the listener rests when accept runs out of descriptors. */
#define ACCEPT_BACKOFF_MS 100
/* At most this many accepts per wake-up (then the other sockets get a turn;
 * the listener is level-triggered and wakes us again). */
#define ACCEPT_BATCH 256

struct queue;

typedef struct client {
  void *app; /* first: evloop_app() */
  int fd;
  unsigned long id;
  uint32_t events;  /* epoll interest registered */
  wsmsg_conn *conn; /* NULL once lingering */
  struct queue *q;  /* the deadline queue it is in, or NULL */
  uint64_t until;   /* its deadline there */
  struct client *qprev, *qnext;
  struct client *prev, *next; /* all clients */
  SSL *ssl;                   /* TLS, or NULL */
  uint8_t tls_want;           /* what OpenSSL waits for: TW_READ/TW_WRITE */
  uint8_t tls_up;             /* the TLS handshake is done */
  uint8_t tls_ready;          /* decrypted bytes wait inside OpenSSL */
} client;

enum { TW_READ = 1, TW_WRITE = 2 };

#include "deadline_queue.h" /* queue, q_push, q_remove */

static struct {
  int ep;
  evloop_opts o;
  client *clients;
  size_t nclients;
  unsigned long next_id;
  wsmsg_timers *timers;
  queue linger, drain;
  int lfd, listening; /* listening: lfd is registered with epoll */
  uint64_t resume_at; /* when !listening: when to listen again */
  int spare;          /* reserved descriptor for EMFILE, or -1 */
  unsigned long refused;
  uint64_t refuse_logged;
  mem_return mem;
  SSL_CTX *tls;      /* TLS, or NULL */
  size_t tls_nready; /* clients with tls_ready set */
} L;

void **evloop_app(wsmsg_conn *conn) {
  return &((client *)wsmsg_conn_user(conn))->app;
}

static void log_line(unsigned long id, const char *fmt, va_list ap) {
  char safe[4096];
  log_vformat(safe, sizeof(safe), fmt, ap);
  if (id)
    fprintf(stderr, "[%s #%lu] %s\n", L.o.name, id, safe);
  else
    fprintf(stderr, "[%s] %s\n", L.o.name, safe);
}

void evloop_log(wsmsg_conn *conn, const char *fmt, ...) {
  if (!L.o.verbose)
    return;
  client *cl = wsmsg_conn_user(conn);
  va_list ap;
  va_start(ap, fmt);
  log_line(cl ? cl->id : 0ul, fmt, ap);
  va_end(ap);
}

static void client_log(client *cl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void client_log(client *cl, const char *fmt, ...) {
  if (!L.o.verbose)
    return;
  va_list ap;
  va_start(ap, fmt);
  log_line(cl->id, fmt, ap);
  va_end(ap);
}

long evloop_ms_arg(const char *name, const char *s) {
  return server_opts_ms(name, s);
}

int evloop_arg(evloop_opts *o, int argc, char **argv, int *i) {
  const char *a = argv[*i];
  if (*i + 1 >= argc)
    return 0;
  if (!strcmp(a, "--max-conns")) {
    char *end;
    const char *s = argv[++*i];
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 0) {
      fprintf(stderr, "%s: bad --max-conns: %s\n", o->name, s);
      exit(2);
    }
    o->max_conns = v;
    return 1;
  }
  if (!strcmp(a, "--drain-timeout")) {
    o->drain_ms = evloop_ms_arg(o->name, argv[++*i]);
    return 1;
  }
  if (!strcmp(a, "--tls-cert")) {
    o->tls_cert = argv[++*i];
    return 1;
  }
  if (!strcmp(a, "--tls-key")) {
    o->tls_key = argv[++*i];
    return 1;
  }
  return 0;
}

/* ---- TLS (docs/tls.md) ---- */

static void tls_log_errors(const char *what) {
  unsigned long e;
  char buf[256];
  int any = 0;
  while ((e = ERR_get_error()) != 0) {
    ERR_error_string_n(e, buf, sizeof(buf));
    fprintf(stderr, "[%s] %s: %s\n", L.o.name, what, buf);
    any = 1;
  }
  if (!any)
    fprintf(stderr, "[%s] %s\n", L.o.name, what);
}

/* Browsers offer h2 and http/1.1 over https://; WebSocket and our pages
 * are HTTP/1.1. */
static int tls_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                    const unsigned char *in, unsigned int inlen, void *arg) {
  (void)ssl;
  (void)arg;
  static const unsigned char h11[] = "\x08http/1.1";
  unsigned char *o;
  if (SSL_select_next_proto(&o, outlen, h11, sizeof(h11) - 1, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = o;
  return SSL_TLSEXT_ERR_OK;
}

/* A server context for the certificate chain and key in PEM files. */
static SSL_CTX *tls_ctx_new(const char *cert, const char *key) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx)
    return NULL;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  /* renegotiation (TLS 1.2) would let a peer make us do a handshake's work
   * at will, and makes SSL_write wait for reads: off */
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
  /* SSL_write may take part of wsmsg's output (PARTIAL_WRITE) and be
   * retried with wsmsg's buffer at another address after it grew
   * (ACCEPT_MOVING_WRITE_BUFFER); idle connections give their record
   * buffers back (RELEASE_BUFFERS) */
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_alpn_select_cb(ctx, tls_alpn, NULL);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    SSL_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

/* SIGHUP: new connections get the files' current certificate and key;
 * connections already up keep theirs (each SSL holds a reference). */
static void tls_reload(void) {
  if (!L.tls)
    return;
  SSL_CTX *ctx = tls_ctx_new(L.o.tls_cert, L.o.tls_key);
  if (!ctx) {
    tls_log_errors("TLS reload failed, keeping the old certificate");
    return;
  }
  SSL_CTX_free(L.tls);
  L.tls = ctx;
  fprintf(stderr, "[%s] TLS certificate reloaded from %s\n", L.o.name,
          L.o.tls_cert);
}

static void tls_set_ready(client *cl, int ready) {
  if (cl->tls_ready == (uint8_t)ready)
    return;
  cl->tls_ready = (uint8_t)ready;
  if (ready)
    L.tls_nready++;
  else
    L.tls_nready--;
}

/* wsmsg_conn_io_fd for a TLS socket: 1 when the connection is done, 0 to
 * go on, -1 to drop it.  Sets tls_want to what OpenSSL waits for. */
static int tls_io(client *cl) {
  SSL *s = cl->ssl;
  wsmsg_conn *c = cl->conn;
  cl->tls_want = 0;
  if (!cl->tls_up) {
    if (wsmsg_conn_state(c) == WSMSG_STATE_CLOSED)
      return -1; /* timed out (or shut down) before TLS was up */
    ERR_clear_error();
    int r = SSL_do_handshake(s);
    if (r != 1) {
      int e = SSL_get_error(s, r);
      if (e == SSL_ERROR_WANT_READ) {
        cl->tls_want = TW_READ;
        return 0;
      }
      if (e == SSL_ERROR_WANT_WRITE) {
        cl->tls_want = TW_WRITE;
        return 0;
      }
      if (L.o.verbose)
        tls_log_errors("TLS handshake failed");
      ERR_clear_error();
      return -1;
    }
    cl->tls_up = 1;
  }
  uint8_t buf[16384];
  size_t budget = 1u << 20; /* as wsmsg_conn_io_fd: others get a turn */
  while (wsmsg_conn_want_read(c) && budget > 0) {
    ERR_clear_error();
    size_t n = 0;
    if (SSL_read_ex(s, buf, sizeof(buf), &n) == 1) {
      (void)wsmsg_conn_recv(c, buf, n);
      budget = n >= budget ? 0 : budget - n;
      continue;
    }
    int e = SSL_get_error(s, 0);
    if (e == SSL_ERROR_WANT_READ)
      break;                         /* epoll tells when more comes */
    if (e == SSL_ERROR_WANT_WRITE) { /* a read may need a write */
      cl->tls_want |= TW_WRITE;
      break;
    }
    if (e == SSL_ERROR_ZERO_RETURN ||
        (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
      /* close_notify, or TCP EOF without it (a truncation: wsmsg's own
       * close handshake says whether anything was lost) */
      wsmsg_conn_eof(c);
      break;
    }
    if (L.o.verbose)
      tls_log_errors("TLS read failed");
    ERR_clear_error();
    wsmsg_conn_abort(c);
    return -1;
  }
  const void *p;
  size_t len;
  while ((len = wsmsg_conn_pending(c, &p)) > 0) {
    ERR_clear_error();
    size_t w = 0;
    if (SSL_write_ex(s, p, len, &w) == 1) {
      wsmsg_conn_consume(c, w);
      continue;
    }
    int e = SSL_get_error(s, 0);
    if (e == SSL_ERROR_WANT_WRITE) {
      cl->tls_want |= TW_WRITE;
      break;
    }
    if (e == SSL_ERROR_WANT_READ) {
      cl->tls_want |= TW_READ;
      break;
    }
    ERR_clear_error();
    wsmsg_conn_abort(c);
    return -1;
  }
  /* plaintext OpenSSL already decrypted is invisible to epoll: if wsmsg
   * wants it, serve this connection again without waiting */
  tls_set_ready(cl, wsmsg_conn_want_read(c) && SSL_pending(s) > 0);
  if (wsmsg_conn_done(c)) {
    ERR_clear_error();
    (void)SSL_shutdown(s); /* close_notify, best effort */
    return 1;
  }
  return 0;
}

/* ---- deadline queues (deadline_queue.h) ---- */

static void listen_again(void);

/* Free the connection, and what the application's slot still holds. */
static void conn_free(client *cl) {
  wsmsg_conn_free(cl->conn);
  cl->conn = NULL;
  if (cl->app && L.o.app_free)
    L.o.app_free(cl->app);
  cl->app = NULL;
}

static void drop(client *cl) {
  epoll_ctl(L.ep, EPOLL_CTL_DEL, cl->fd, NULL);
  close(cl->fd);
  if (cl->conn) {
    /* still open: let the application see the end (on_close) */
    wsmsg_conn_abort(cl->conn);
    conn_free(cl);
  }
  tls_set_ready(cl, 0);
  SSL_free(cl->ssl);
  q_remove(cl);
  if (cl->prev)
    cl->prev->next = cl->next;
  else
    L.clients = cl->next;
  if (cl->next)
    cl->next->prev = cl->prev;
  free(cl);
  L.nclients--;
  mem_return_closed(&L.mem, wsmsg_now_ms());
  listen_again(); /* a descriptor is free again */
}

/* Drop the clients of `q` whose time is up; ms until the next, or -1. */
static int64_t q_expire(queue *q, uint64_t now) {
  while (q->head && q->head->until <= now) {
    client *cl = q->head;
    if (cl->conn) {
      const void *p;
      client_log(cl, "drain timeout: dropped with %zu byte(s) unsent",
                 wsmsg_conn_pending(cl->conn, &p));
    }
    drop(cl);
  }
  return q->head ? (int64_t)(q->head->until - now) : -1;
}

static void set_interest(client *cl, uint32_t want) {
  if (want == cl->events)
    return;
  struct epoll_event ev = {.events = want, .data.ptr = cl};
  epoll_ctl(L.ep, EPOLL_CTL_MOD, cl->fd, &ev);
  cl->events = want;
}

/* Done and written: half-close, then wait for the peer's EOF. */
static void linger(client *cl) {
  conn_free(cl);
  tls_set_ready(cl, 0);
  shutdown(cl->fd, SHUT_WR);
  q_push(&L.linger, cl, wsmsg_now_ms() + LINGER_MS);
  set_interest(cl, EPOLLIN);
}

/* Discard what a lingering peer still sends; drop it on EOF or error.  At
 * most 1 MiB per call (discarding parses nothing; wsmsg_conn_io_fd stops
 * at 256 KiB): the socket stays readable
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

/* Drive one connection; `revents` is what epoll reported (0 for a timer).
 * Afterwards the socket is polled for exactly what the connection wants:
 * EPOLLIN while it reads, EPOLLOUT while it has output.  Level-triggered
 * polling for anything else would wake us every turn for nothing. */
static void serve(client *cl, uint32_t revents) {
  if (!cl->conn) {
    discard(cl);
    return;
  }
  int r = cl->ssl ? tls_io(cl) : wsmsg_conn_io_fd(cl->conn, cl->fd);
  if (r == 1) {
    linger(cl);
    return;
  }
  if (r < 0) {
    drop(cl); /* socket error: nothing left to protect */
    return;
  }
  int reading = wsmsg_conn_want_read(cl->conn);
  if ((revents & (EPOLLERR | EPOLLHUP)) && !reading) {
    /* reset or hung up, and we read no more: epoll reports these whether
     * asked or not, so keeping the socket would wake us every turn */
    client_log(cl, "peer gone while we were not reading");
    drop(cl);
    return;
  }
  uint32_t want = (reading ? EPOLLIN : 0u) |
                  (wsmsg_conn_want_write(cl->conn) ? EPOLLOUT : 0u);
  if (cl->ssl) { /* what OpenSSL waits for, too */
    if (cl->tls_ready)
      want &= ~(uint32_t)EPOLLIN; /* served again from the ready pass */
    want |= (cl->tls_want & TW_READ ? EPOLLIN : 0u) |
            (cl->tls_want & TW_WRITE ? EPOLLOUT : 0u);
    if (!cl->tls_up)
      want = cl->tls_want & TW_WRITE ? EPOLLOUT : EPOLLIN;
  }
  set_interest(cl, want);
  /* No longer reading, output left: wsmsg runs no deadline for a
   * connection the peer half-closed, so evloop gives it drain_ms.  An
   * HTTP response (the connection still CONNECTING) pauses reading only
   * while it is written: its drain time runs from its last progress, and
   * it ends when reading resumes. */
  int http = wsmsg_conn_state(cl->conn) == WSMSG_STATE_CONNECTING;
  if (reading && cl->q == &L.drain)
    q_remove(cl);
  else if (!reading && L.o.drain_ms > 0 &&
           (cl->q != &L.drain || (http && (revents & EPOLLOUT))))
    q_push(&L.drain, cl, wsmsg_now_ms() + (uint64_t)L.o.drain_ms);
}

/* A broadcast gave this connection output while nothing was pending (the
 * server's on_output): watch for EPOLLOUT, and serve() writes it.  Without
 * this, a room member that is not sending would get its messages only
 * when it next became readable. */
static void on_output(wsmsg_conn *conn, void *user) {
  (void)conn;
  client *cl = user;
  if (cl && cl->conn)
    set_interest(cl, cl->events | EPOLLOUT);
}

/* ---- the listener ---- */

static void stop_listening(uint64_t until) {
  if (L.listening)
    epoll_ctl(L.ep, EPOLL_CTL_DEL, L.lfd, NULL);
  L.listening = 0;
  L.resume_at = until;
}

static void listen_again(void) {
  if (L.listening || L.lfd < 0)
    return;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (epoll_ctl(L.ep, EPOLL_CTL_ADD, L.lfd, &ev) == 0)
    L.listening = 1;
}

static void note_refused(const char *why) {
  L.refused++;
  uint64_t now = wsmsg_now_ms();
  if (now - L.refuse_logged >= 1000) {
    L.refuse_logged = now;
    fprintf(stderr, "[%s] refusing clients: %s (%lu refused so far)\n",
            L.o.name, why, L.refused);
  }
}

/* Out of descriptors: accept one pending client on the reserved descriptor
 * and close it at once (it learns now, instead of waiting in the backlog
 * until it times out).  Returns 1 if one was refused so. */
static int refuse_with_spare(void) {
  if (L.spare < 0)
    return 0;
  close(L.spare);
  L.spare = -1;
  int fd = accept4(L.lfd, NULL, NULL, SOCK_CLOEXEC);
  if (fd >= 0)
    close(fd);
  L.spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
  return fd >= 0;
}

static void accept_all(wsmsg_server *srv) {
  for (int k = 0; k < ACCEPT_BATCH; k++) {
    int fd = accept4(L.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
          errno == ENOMEM) {
        note_refused(strerror(errno));
        if (refuse_with_spare())
          continue;
        /* rest until a connection closes (drop) or the backoff passes */
        stop_listening(wsmsg_now_ms() + ACCEPT_BACKOFF_MS);
      }
      return; /* EAGAIN: none left */
    }
    if (L.o.max_conns > 0 && L.nclients >= (size_t)L.o.max_conns) {
      close(fd);
      note_refused("--max-conns reached");
      continue;
    }
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
    if (L.tls) {
      cl->ssl = SSL_new(L.tls);
      if (!cl->ssl || SSL_set_fd(cl->ssl, fd) != 1) {
        SSL_free(cl->ssl);
        wsmsg_conn_free(cl->conn);
        free(cl);
        close(fd);
        continue;
      }
      SSL_set_accept_state(cl->ssl);
    }
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
    fprintf(stderr, "%s: bad host %s (an IPv4 address)\n", L.o.name, host);
    return -1;
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
      listen(fd, 4096) < 0) {
    fprintf(stderr, "%s: %s:%d: %s\n", L.o.name, host, port, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

/* the earlier of two "ms from now" values, -1 meaning none */
static int64_t min_ms(int64_t a, int64_t b) {
  return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

static int64_t ms_until(uint64_t at, uint64_t now) {
  return at > now ? (int64_t)(at - now) : 0;
}

int evloop_serve(wsmsg_server *srv, const char *host, int port,
                 const evloop_opts *o) {
  memset(&L, 0, sizeof(L));
  L.o = *o;
  L.lfd = L.spare = -1;
  mem_return_init();
  /* thousands of connections need thousands of descriptors */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (wsmsg_server_on_output(srv, on_output) != 0) {
    fprintf(stderr, "%s: the server is already in use\n", o->name);
    return 1;
  }
  if (!o->tls_cert != !o->tls_key) {
    fprintf(stderr, "%s: --tls-cert and --tls-key go together\n", L.o.name);
    return 1;
  }
  if (o->tls_cert && !(L.tls = tls_ctx_new(o->tls_cert, o->tls_key))) {
    tls_log_errors("cannot load the TLS certificate and key");
    return 1;
  }
  L.lfd = listen_on(host, port);
  if (L.lfd < 0) {
    SSL_CTX_free(L.tls);
    return 1;
  }
  L.spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGHUP); /* TLS: reload the certificate */
  sigprocmask(SIG_BLOCK, &mask, NULL);
  signal(SIGPIPE, SIG_IGN);
  int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  L.ep = epoll_create1(EPOLL_CLOEXEC);
  L.timers = wsmsg_timers_new();
  static int signal_tag; /* the listener's tag is NULL */
  listen_again();
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &signal_tag};
  epoll_ctl(L.ep, EPOLL_CTL_ADD, sfd, &ev);
  fprintf(stderr, "%s (wsmsg %s) listening on %s://%s:%d/\n", L.o.name,
          wsmsg_version(), L.tls ? "wss" : "ws", host, port);

  int stopping = 0;
  uint64_t stop_at = 0;
  uint64_t next_tick = L.o.tick && L.o.tick_ms > 0
                           ? wsmsg_now_ms() + (uint64_t)L.o.tick_ms
                           : 0;
  struct epoll_event evs[256];
  for (;;) {
    uint64_t now = wsmsg_now_ms();
    if (!L.listening && L.lfd >= 0 && now >= L.resume_at)
      listen_again();
    if (mem_return_run(&L.mem, now) && L.o.verbose)
      fprintf(stderr,
              "[%s] returned freed memory to the OS (%zu open, %llu us)\n",
              L.o.name, L.nclients, (unsigned long long)L.mem.last_us);
    int64_t wait = wsmsg_timers_next_ms(L.timers, now);
    wait = min_ms(wait, q_expire(&L.linger, now));
    wait = min_ms(wait, q_expire(&L.drain, now));
    if (!L.listening && L.lfd >= 0)
      wait = min_ms(wait, ms_until(L.resume_at, now));
    if (next_tick && !stopping) {
      if (now >= next_tick) {
        L.o.tick(L.o.tick_user);
        next_tick = now + (uint64_t)L.o.tick_ms;
      }
      wait = min_ms(wait, ms_until(next_tick, now));
    }
    uint64_t trim = mem_return_due(&L.mem);
    if (trim)
      wait = min_ms(wait, ms_until(trim, now));
    if (stopping) {
      if (L.nclients == 0 || now >= stop_at)
        break;
      wait = min_ms(wait, (int64_t)(stop_at - now));
    }
    if (L.tls_nready)
      wait = 0; /* plaintext waits inside OpenSSL */
    int timeout = wait < 0 ? -1 : wait > 60000 ? 60000 : (int)wait;
    int n = epoll_wait(L.ep, evs, 256, timeout);
    if (n < 0 && errno != EINTR) {
      perror("epoll_wait");
      break;
    }
    int signalled = 0;
    for (int i = 0; i < n; i++) {
      void *p = evs[i].data.ptr;
      if (!p) {
        if (!stopping && L.listening)
          accept_all(srv);
      } else if (p == &signal_tag) {
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
          if (si.ssi_signo == SIGHUP)
            tls_reload();
          else
            signalled = 1;
        }
      } else {
        serve(p, evs[i].events);
      }
    }
    /* TLS: connections with decrypted bytes epoll cannot see */
    if (L.tls_nready) {
      for (client *cl = L.clients, *next; cl; cl = next) {
        next = cl->next;
        if (cl->tls_ready)
          serve(cl, 0);
      }
    }
    /* deadlines: pings to send, idle or silent peers to drop */
    wsmsg_conn *due;
    while ((due = wsmsg_timers_expire(L.timers, wsmsg_now_ms())) != NULL)
      serve(wsmsg_conn_user(due), 0);
    /* after the batch, so no event above refers to a freed client */
    if (signalled && !stopping) {
      stopping = 1;
      stop_at = wsmsg_now_ms() + STOP_MS;
      fprintf(stderr, "%s: closing %zu connection(s)\n", L.o.name, L.nclients);
      stop_listening(0);
      close(L.lfd);
      L.lfd = -1;
      /* the library's registry: 1001 "going away" to every open
       * connection, handshakes in progress ended, later upgrades 503;
       * on_output marked each one it changed for writing */
      wsmsg_server_drain(srv);
      for (client *cl = L.clients, *next; cl; cl = next) {
        next = cl->next;
        if (cl->conn)
          serve(cl, 0);
      }
    }
  }
  while (L.clients)
    drop(L.clients);
  if (L.lfd >= 0)
    close(L.lfd);
  if (L.spare >= 0)
    close(L.spare);
  close(sfd);
  close(L.ep);
  wsmsg_timers_free(L.timers);
  SSL_CTX_free(L.tls);
  fprintf(stderr, "%s: bye\n", L.o.name);
  return 0;
}
