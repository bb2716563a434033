/* echo_client — a small wscat built on wsmsg.
 *
 *   echo_client [options] ws://host:port/path
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
 *
 * Exit status: 0 after a clean close (or --count reached), 1 otherwise.
 */
#include <wsmsg.h>

#include "common/log_escape.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
                     size_t psz, const char **path) {
  if (strncmp(url, "ws://", 5) != 0)
    return -1;
  const char *h = url + 5;
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
    snprintf(port, psz, "80");
  }
  return 0;
}

static int connect_to(const char *host, const char *port) {
  struct addrinfo hints, *res, *ai;
  memset(&hints, 0, sizeof(hints));
  hints.ai_socktype = SOCK_STREAM;
  int e = getaddrinfo(host, port, &hints, &res);
  if (e) {
    fprintf(stderr, "echo_client: %s: %s\n", host, gai_strerror(e));
    return -1;
  }
  int fd = -1;
  for (ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
      break;
    if (fd >= 0)
      close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
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
                  "[--deflate-window OURS,PEERS] ws://host:port/path\n");
}

int main(int argc, char **argv) {
  const char *url = NULL, *binary = NULL, *out = NULL;
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
    else if (a[0] != '-' && !url)
      url = a;
    else {
      usage();
      return 2;
    }
  }
  char host[256], port[16];
  const char *path;
  if (!url || parse_url(url, host, sizeof(host), port, sizeof(port), &path)) {
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

  long long deadline = now_ms() + timeout;
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
    if (wsmsg_conn_io_fd(c, fd) != 0)
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
