/* echo_client — a small wscat built on wsmsg.
 *
 *   echo_client [options] ws://host:port/path
 *   echo_client [options] [--ca FILE | --insecure] wss://host:port/path
 *
 * Sends each line of stdin as a text message (or, with --binary FILE, the
 * file as one binary message) and prints what comes back: text messages as
 * lines, binary ones as "<binary N bytes>" (or their bytes into --out FILE).
 *
 *   --binary FILE     send FILE as one binary message instead of stdin lines
 *   --out FILE        write received binary messages to FILE
 *   --count N         stop after N messages were received
 *   --close           close (1000) at the end of input / after --count
 *   --code N          close code to use (default 1000)
 *   --subprotocol P   offer subprotocol P (repeatable)
 *   --header 'K: V'   add a request header (repeatable)
 *   --timeout MS      give up after MS milliseconds (default 30000)
 *   --deflate MODE    offer permessage-deflate: on, low_memory, max_ratio
 *                     (says "echo_client: permessage-deflate" on stderr
 *                     when the server agreed)
 *   --deflate-window OURS,PEERS  window bits (8-15) with --deflate
 *   --quiet           print nothing but errors
 *   --ca FILE         wss://: trust the CA certificates in FILE (PEM)
 *                     instead of the system's
 *   --insecure        wss://: do not verify the server's certificate
 *
 * wss:// runs TLS (OpenSSL) between the socket and wsmsg: wsmsg sees only
 * plaintext (docs/tls.md).  The server's certificate must be valid for the
 * URL's host name or IP address.
 *
 * Exit status: 0 after a clean close (or --count reached), 1 otherwise.
 */
#include <wsmsg.h>

#include "common/log_escape.h"
#include "common/tcp_connect.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static long received;
static long want_count = -1;
static int quiet;
static FILE *out_file;

static void on_open(wsmsg_conn *c, void *u) {
  (void)u;
  if (wsmsg_conn_deflate(c))
    fprintf(stderr, "echo_client: permessage-deflate\n");
}

static void on_text(wsmsg_conn *c, const char *data, size_t len, void *u) {
  (void)c;
  (void)u;
  if (!quiet) {
    fwrite(data, 1, len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
  }
  received++;
}

static void on_binary(wsmsg_conn *c, const uint8_t *data, size_t len, void *u) {
  (void)c;
  (void)u;
  if (out_file)
    fwrite(data, 1, len, out_file);
  if (!quiet) {
    printf("<binary %zu bytes>\n", len);
    fflush(stdout);
  }
  received++;
}

static int closed_clean = -1;

static void on_close(wsmsg_conn *c, const wsmsg_close_info *ci, void *u) {
  (void)c;
  (void)u;
  closed_clean = ci->clean;
  /* the reason and the detail come from the peer: escaped for the terminal */
  char reason[4 * 125 + 4], detail[1024];
  log_escape(reason, sizeof(reason), ci->reason, ci->reason_len);
  log_escape(detail, sizeof(detail), ci->detail, strlen(ci->detail));
  if (!quiet || !ci->clean)
    fprintf(stderr, "closed: code %d%s%s%s clean=%d%s%s\n", (int)ci->code,
            ci->reason_len ? " reason '" : "", reason,
            ci->reason_len ? "'" : "", (int)ci->clean,
            ci->error ? " error: " : "", ci->error ? detail : "");
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int parse_url(const char *url, char *host, size_t hsz, char *port,
                     size_t psz, const char **path, int *tls) {
  *tls = strncmp(url, "wss://", 6) == 0;
  if (!*tls && strncmp(url, "ws://", 5) != 0)
    return -1;
  const char *h = url + (*tls ? 6 : 5);
  const char *slash = strchr(h, '/');
  *path = slash ? slash : "/";
  size_t hl = slash ? (size_t)(slash - h) : strlen(h);
  const char *colon = memchr(h, ':', hl);
  size_t namel = colon ? (size_t)(colon - h) : hl;
  if (namel == 0 || namel >= hsz)
    return -1;
  memcpy(host, h, namel);
  host[namel] = '\0';
  if (colon) {
    size_t pl = hl - namel - 1;
    if (pl == 0 || pl >= psz)
      return -1;
    memcpy(port, colon + 1, pl);
    port[pl] = '\0';
  } else {
    snprintf(port, psz, *tls ? "443" : "80");
  }
  return 0;
}

/* ---- TLS: OpenSSL between the socket and wsmsg (docs/tls.md) ---- */

static SSL_CTX *tls_ctx;
static SSL *tls;
static short tls_want; /* POLLIN/POLLOUT that OpenSSL waits for */

static void tls_errors(const char *what) {
  unsigned long e = ERR_get_error();
  char buf[256] = "";
  if (e)
    ERR_error_string_n(e, buf, sizeof(buf));
  long v = tls ? SSL_get_verify_result(tls) : X509_V_OK;
  fprintf(stderr, "echo_client: %s: %s%s%s\n", what, buf[0] ? buf : "failed",
          v != X509_V_OK ? ": " : "",
          v != X509_V_OK ? X509_verify_cert_error_string(v) : "");
  ERR_clear_error();
}

/* Connect TLS over the non-blocking socket before `deadline`: 0 or -1. */
static int tls_connect(int fd, const char *host, const char *ca, int insecure,
                       long long deadline) {
  tls_ctx = SSL_CTX_new(TLS_client_method());
  if (!tls_ctx)
    return -1;
  SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (insecure) {
    SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
  } else {
    SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER, NULL);
    if ((ca ? SSL_CTX_load_verify_locations(tls_ctx, ca, NULL)
            : SSL_CTX_set_default_verify_paths(tls_ctx)) != 1) {
      tls_errors(ca ? ca : "the system's CA certificates");
      return -1;
    }
  }
  static const unsigned char alpn[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(tls_ctx, alpn, sizeof(alpn) - 1);
  tls = SSL_new(tls_ctx);
  if (!tls || SSL_set_fd(tls, fd) != 1)
    return -1;
  unsigned char ip[16];
  int is_ip =
      inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
  if (!is_ip) /* SNI names hosts, never addresses */
    SSL_set_tlsext_host_name(tls, host);
  if (!insecure) { /* the certificate must be for this host */
    X509_VERIFY_PARAM *vp = SSL_get0_param(tls);
    if ((is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, host)
               : X509_VERIFY_PARAM_set1_host(vp, host, 0)) != 1)
      return -1;
  }
  for (;;) {
    ERR_clear_error();
    int r = SSL_connect(tls);
    if (r == 1)
      return 0;
    int e = SSL_get_error(tls, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
      tls_errors("TLS handshake");
      return -1;
    }
    long long left = deadline - now_ms();
    if (left <= 0) {
      fprintf(stderr, "echo_client: timeout in the TLS handshake\n");
      return -1;
    }
    struct pollfd p = {fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, 0};
    if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
      return -1;
  }
}

/* wsmsg_conn_io_fd over TLS: 1 when done, 0 to go on, <0 on an error. */
static int tls_io(wsmsg_conn *c) {
  tls_want = 0;
  uint8_t buf[16384];
  while (wsmsg_conn_want_read(c)) {
    size_t n = 0;
    ERR_clear_error();
    if (SSL_read_ex(tls, buf, sizeof(buf), &n) == 1) {
      (void)wsmsg_conn_recv(c, buf, n);
      continue;
    }
    int e = SSL_get_error(tls, 0);
    if (e == SSL_ERROR_WANT_READ)
      break;
    if (e == SSL_ERROR_WANT_WRITE) { /* a read may need a write */
      tls_want |= POLLOUT;
      break;
    }
    if (e == SSL_ERROR_ZERO_RETURN ||
        (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
      wsmsg_conn_eof(c); /* close_notify, or EOF without it */
      break;
    }
    tls_errors("TLS read");
    wsmsg_conn_abort(c);
    return -1;
  }
  const void *p;
  size_t len;
  while ((len = wsmsg_conn_pending(c, &p)) > 0) {
    size_t w = 0;
    ERR_clear_error();
    if (SSL_write_ex(tls, p, len, &w) == 1) {
      wsmsg_conn_consume(c, w);
      continue;
    }
    int e = SSL_get_error(tls, 0);
    if (e == SSL_ERROR_WANT_WRITE) {
      tls_want |= POLLOUT;
      break;
    }
    if (e == SSL_ERROR_WANT_READ) {
      tls_want |= POLLIN;
      break;
    }
    tls_errors("TLS write");
    wsmsg_conn_abort(c);
    return -1;
  }
  if (wsmsg_conn_done(c)) {
    ERR_clear_error();
    (void)SSL_shutdown(tls); /* close_notify, best effort */
    return 1;
  }
  return 0;
}

static int connect_to(const char *host, const char *port) {
  int e;
  int fd = tcp_connect(host, port, &e);
  if (e) {
    fprintf(stderr, "echo_client: %s: %s\n", host, gai_strerror(e));
    return -1;
  }
  if (fd < 0) {
    fprintf(stderr, "echo_client: cannot connect to %s:%s: %s\n", host, port,
            strerror(errno));
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  struct stat st;
  if (fstat(fileno(f), &st) != 0) {
    fclose(f);
    return NULL;
  }
  char *buf = malloc((size_t)st.st_size + 1);
  if (buf)
    *len = fread(buf, 1, (size_t)st.st_size, f);
  fclose(f);
  return buf;
}

/* Release everything before exiting (also on the early error paths, so a
 * leak checker stays quiet). */
static int finish(int status, wsmsg_conn *c, wsmsg_endpoint *ep, int fd) {
  wsmsg_conn_free(c);
  wsmsg_endpoint_free(ep);
  SSL_free(tls);
  SSL_CTX_free(tls_ctx);
  if (fd >= 0)
    close(fd);
  if (out_file)
    fclose(out_file);
  return status;
}

static void usage(void) {
  fprintf(stderr, "usage: echo_client [--binary FILE] [--out FILE] [--count N] "
                  "[--close] [--code N]\n"
                  "                   [--subprotocol P] [--header 'K: V'] "
                  "[--timeout MS] [--quiet]\n"
                  "                   [--deflate on|low_memory|max_ratio] "
                  "[--deflate-window OURS,PEERS] ws://host:port/path\n"
                  "                   [--ca FILE | --insecure] "
                  "wss://host:port/path\n");
}

int main(int argc, char **argv) {
  const char *url = NULL, *binary = NULL, *out = NULL, *ca = NULL;
  int insecure = 0, use_tls = 0;
  int do_close = 0, code = 1000;
  long long timeout = 30000;
  const char *subs[16], *hdrs[16];
  int nsubs = 0, nhdrs = 0;
  int deflate = WSMSG_DEFLATE_OFF, w_ours = 0, w_peers = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int more = i + 1 < argc;
    if (!strcmp(a, "--binary") && more)
      binary = argv[++i];
    else if (!strcmp(a, "--out") && more)
      out = argv[++i];
    else if (!strcmp(a, "--count") && more)
      want_count = atol(argv[++i]);
    else if (!strcmp(a, "--close"))
      do_close = 1;
    else if (!strcmp(a, "--code") && more)
      code = atoi(argv[++i]);
    else if (!strcmp(a, "--subprotocol") && more && nsubs < 16)
      subs[nsubs++] = argv[++i];
    else if (!strcmp(a, "--header") && more && nhdrs < 16)
      hdrs[nhdrs++] = argv[++i];
    else if (!strcmp(a, "--timeout") && more)
      timeout = atoll(argv[++i]);
    else if (!strcmp(a, "--quiet") || !strcmp(a, "-q"))
      quiet = 1;
    else if (!strcmp(a, "--deflate") && more) {
      const char *v = argv[++i];
      deflate = !strcmp(v, "on")           ? WSMSG_DEFLATE_ON
                : !strcmp(v, "low_memory") ? WSMSG_DEFLATE_LOW_MEMORY
                : !strcmp(v, "max_ratio")  ? WSMSG_DEFLATE_MAX_RATIO
                                           : -1;
      if (deflate < 0) {
        usage();
        return 2;
      }
    } else if (!strcmp(a, "--deflate-window") && more &&
               sscanf(argv[i + 1], "%d,%d", &w_ours, &w_peers) == 2)
      i++;
    else if (!strcmp(a, "--ca") && more)
      ca = argv[++i];
    else if (!strcmp(a, "--insecure"))
      insecure = 1;
    else if (a[0] != '-' && !url)
      url = a;
    else {
      usage();
      return 2;
    }
  }
  char host[256], port[16];
  const char *path;
  if (!url ||
      parse_url(url, host, sizeof(host), port, sizeof(port), &path, &use_tls)) {
    usage();
    return 2;
  }
  if (out && !(out_file = fopen(out, "wb"))) {
    perror(out);
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);

  wsmsg_endpoint *ep = wsmsg_endpoint_new();
  wsmsg_endpoint_on_text(ep, on_text);
  wsmsg_endpoint_on_binary(ep, on_binary);
  wsmsg_endpoint_on_close(ep, on_close);
  wsmsg_endpoint_on_open(ep, on_open);
  if (wsmsg_endpoint_set_deflate(ep, deflate) != 0 ||
      (w_ours && wsmsg_endpoint_set_deflate_window(ep, w_ours, w_peers) != 0)) {
    fprintf(stderr, "echo_client: bad --deflate-window\n");
    return finish(2, NULL, ep, -1);
  }
  for (int i = 0; i < nsubs; i++)
    if (wsmsg_endpoint_add_subprotocol(ep, subs[i]) != 0) {
      fprintf(stderr, "echo_client: bad subprotocol %s\n", subs[i]);
      return finish(2, NULL, ep, -1);
    }
  char hostport[300];
  snprintf(hostport, sizeof(hostport), "%s:%s", host, port);
  int fd = connect_to(host, port);
  if (fd < 0)
    return finish(1, NULL, ep, -1);
  long long deadline = now_ms() + timeout;
  if (use_tls && tls_connect(fd, host, ca, insecure, deadline) != 0)
    return finish(1, NULL, ep, fd);
  wsmsg_conn *c = wsmsg_client_new(ep, hostport, path, NULL);
  if (!c) {
    fprintf(stderr, "echo_client: invalid URL\n");
    return finish(2, NULL, ep, fd);
  }
  for (int i = 0; i < nhdrs; i++) {
    char name[128];
    const char *colon = strchr(hdrs[i], ':');
    size_t nl = colon ? (size_t)(colon - hdrs[i]) : 0;
    if (!colon || nl == 0 || nl >= sizeof(name)) {
      fprintf(stderr, "echo_client: bad header %s\n", hdrs[i]);
      return finish(2, c, ep, fd);
    }
    memcpy(name, hdrs[i], nl);
    name[nl] = '\0';
    const char *v = colon + 1;
    while (*v == ' ')
      v++;
    if (wsmsg_client_add_header(c, name, v) != 0) {
      fprintf(stderr, "echo_client: header not allowed: %s\n", name);
      return finish(2, c, ep, fd);
    }
  }

  int input_done = 0, sent_binary = 0, close_requested = 0, status = 1;
  /* stdin is read with read(2) into our own buffer: stdio buffering would
   * hide lines from poll */
  char *inbuf = malloc(1 << 16);
  size_t inlen = 0, incap = 1 << 16;
  int in = binary ? 0 : 1;
  for (;;) {
    int st = wsmsg_conn_state(c);
    if (st == WSMSG_STATE_OPEN) {
      if (binary && !sent_binary) {
        size_t len = 0;
        char *data = read_file(binary, &len);
        if (!data) {
          perror(binary);
          break;
        }
        wsmsg_send_binary(c, data, len);
        free(data);
        sent_binary = 1;
        input_done = 1;
      }
      int reached = want_count >= 0 && received >= want_count;
      if (!close_requested &&
          (reached || (do_close && input_done && want_count < 0))) {
        if (do_close || reached)
          wsmsg_close(c, code, "bye");
        close_requested = 1;
      }
    }
    if ((tls ? tls_io(c) : wsmsg_conn_io_fd(c, fd)) != 0)
      break;
    if (wsmsg_conn_state(c) == WSMSG_STATE_CLOSED && !wsmsg_conn_want_write(c))
      break;
    /* io_fd may just have opened the connection (the file is to be sent)
     * or delivered the last awaited message (time to close): act before
     * sleeping in poll, which nothing might wake up */
    if (wsmsg_conn_state(c) == WSMSG_STATE_OPEN && !close_requested &&
        ((binary && !sent_binary) ||
         (want_count >= 0 && received >= want_count) ||
         (do_close && input_done && want_count < 0)))
      continue;
    long long left = deadline - now_ms();
    if (left <= 0) {
      fprintf(stderr, "echo_client: timeout\n");
      break;
    }
    /* poll for exactly what the connection wants: POLLIN while it reads,
     * POLLOUT while it has output (anything else would wake us at once,
     * again and again), and wake up for its next deadline */
    struct pollfd p[2] = {{fd, 0, 0}, {0, POLLIN, 0}};
    if (wsmsg_conn_want_read(c))
      p[0].events |= POLLIN;
    if (wsmsg_conn_want_write(c))
      p[0].events |= POLLOUT;
    p[0].events |= tls_want;
    if (tls && wsmsg_conn_want_read(c) && SSL_pending(tls) > 0)
      left = 0; /* decrypted bytes wait inside OpenSSL: poll cannot see them */
    int np =
        (in && !input_done && wsmsg_conn_state(c) == WSMSG_STATE_OPEN) ? 2 : 1;
    int64_t next = wsmsg_conn_next_deadline(c);
    if (next >= 0 && next < left)
      left = next;
    if (poll(p, (nfds_t)np, (int)left) < 0 && errno != EINTR)
      break;
    wsmsg_conn_tick(c, wsmsg_now_ms());
    if ((p[0].revents & (POLLERR | POLLHUP)) && !wsmsg_conn_want_read(c)) {
      wsmsg_conn_abort(c); /* reset or hung up while we no longer read */
      break;
    }
    if (np == 2 && p[1].revents) {
      if (inlen == incap) {
        incap *= 2;
        inbuf = realloc(inbuf, incap);
      }
      ssize_t n = read(0, inbuf + inlen, incap - inlen);
      if (n <= 0) {
        if (inlen > 0) /* a last line without newline */
          wsmsg_send_text(c, inbuf, inlen);
        inlen = 0;
        input_done = 1;
      } else {
        inlen += (size_t)n;
      }
      char *nl;
      while ((nl = memchr(inbuf, '\n', inlen)) != NULL) {
        size_t ll = (size_t)(nl - inbuf);
        if (wsmsg_send_text(c, inbuf, ll) != 0)
          fprintf(stderr, "echo_client: line is not valid UTF-8\n");
        memmove(inbuf, nl + 1, inlen - ll - 1);
        inlen -= ll + 1;
      }
    }
  }
  if (closed_clean == 1 || (want_count >= 0 && received >= want_count))
    status = 0;
  if (wsmsg_conn_error(c) == WSMSG_ERR_HANDSHAKE) {
    char detail[1024];
    const char *d = wsmsg_conn_error_detail(c);
    fprintf(stderr, "echo_client: %s\n",
            log_escape(detail, sizeof(detail), d, strlen(d)));
  }
  free(inbuf);
  return finish(status, c, ep, fd);
}
