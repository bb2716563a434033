/* wslay_echo_server — the floor for wsmsg's benchmarks.
 *
 * A bare wslay_event + epoll WebSocket echo server, written the way a
 * careful wslay user would: level-triggered epoll, everything readable is
 * read into one 64 KiB buffer and fed to wslay_event_recv from memory, and
 * whatever wslay_event_send produces in one readiness pass is coalesced into
 * one buffer and written with one send().  No wsmsg inside.
 *
 * Text is echoed as text, binary as binary, on any path.  With --json (or
 * on the path /ws/json-demo) a text message is parsed with jansson, the
 * three MessageModel fields are checked by hand (user: string, content:
 * string, timestamp: number), "status": "PROCESSED" is added and the object
 * is serialized back: the "hand-written validation" floor.  Invalid input
 * gets {"detail": [...]} in the shape FastAPI uses.
 *
 *   wslay_echo_server [--host 127.0.0.1] [--port 9002] [--json]
 *
 * SIGINT/SIGTERM stop it (connections are dropped).
 *
 * SPDX-License-Identifier: MIT
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nettle/base64.h>
#include <nettle/sha1.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

#define HS_MAX 8192
#define READ_BUF (64u << 10)
#define READ_BUDGET (1u << 20) /* bytes per connection per pass */
#define OUT_HIGH (4u << 20)    /* stop asking wslay for more above this */
#define MAX_MSG (64ull << 20)

typedef struct client {
  int fd;
  uint32_t events;
  bool json;
  wslay_event_context_ptr ws; /* NULL while handshaking */
  char *hs; /* request head being received (grows up to HS_MAX) */
  size_t hs_len, hs_cap;
  /* bytes being fed to wslay_event_recv */
  const uint8_t *in;
  size_t in_len;
  /* coalesced output */
  uint8_t *out;
  size_t out_off, out_len, out_cap;
} client;

static int epfd;
static bool json_all;
static uint8_t *rbuf;
static volatile sig_atomic_t stop;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

/* ---- output buffer ---- */

static int out_append(client *c, const uint8_t *d, size_t n) {
  if (c->out_off > 0 && c->out_off == c->out_len)
    c->out_off = c->out_len = 0;
  if (c->out_cap - c->out_len < n) {
    if (c->out_off > 0) {
      memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
      c->out_len -= c->out_off;
      c->out_off = 0;
    }
    if (c->out_cap - c->out_len < n) {
      size_t cap = c->out_cap ? c->out_cap : 4096;
      while (cap - c->out_len < n)
        cap *= 2;
      uint8_t *p = realloc(c->out, cap);
      if (!p)
        return -1;
      c->out = p;
      c->out_cap = cap;
    }
  }
  memcpy(c->out + c->out_len, d, n);
  c->out_len += n;
  return 0;
}

/* ---- wslay callbacks ---- */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                       int flags, void *ud) {
  (void)flags;
  client *c = ud;
  if (c->in_len == 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  size_t n = c->in_len < len ? c->in_len : len;
  memcpy(buf, c->in, n);
  c->in += n;
  c->in_len -= n;
  return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data,
                       size_t len, int flags, void *ud) {
  (void)flags;
  client *c = ud;
  if (c->out_len - c->out_off > OUT_HIGH || out_append(c, data, len) < 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  return (ssize_t)len;
}

/* {"detail": [{"loc": [field], "msg": ..., "type": ...}]} */
static void add_error(json_t *errs, const char *field, const char *msg,
                      const char *type) {
  json_t *e = json_object();
  json_object_set_new(e, "loc", json_pack("[s]", field));
  json_object_set_new(e, "msg", json_string(msg));
  json_object_set_new(e, "type", json_string(type));
  json_array_append_new(errs, e);
}

static void check_field(json_t *doc, json_t *errs, const char *name,
                        bool want_string) {
  json_t *v = json_object_get(doc, name);
  if (!v)
    add_error(errs, name, "field required", "value_error.missing");
  else if (want_string && !json_is_string(v))
    add_error(errs, name, "str type expected", "type_error.str");
  else if (!want_string && !json_is_number(v))
    add_error(errs, name, "value is not a valid float", "type_error.float");
}

static void reply_json(wslay_event_context_ptr ctx, const uint8_t *msg,
                       size_t len) {
  json_error_t jerr;
  json_t *doc = json_loadb((const char *)msg, len, 0, &jerr);
  json_t *reply;
  if (!doc) {
    json_t *errs = json_array();
    add_error(errs, "__root__", jerr.text, "value_error.jsondecode");
    reply = json_pack("{s:o}", "detail", errs);
  } else if (!json_is_object(doc)) {
    json_t *errs = json_array();
    add_error(errs, "__root__", "value is not a valid dict", "type_error.dict");
    reply = json_pack("{s:o}", "detail", errs);
    json_decref(doc);
  } else {
    json_t *errs = json_array();
    check_field(doc, errs, "user", true);
    check_field(doc, errs, "content", true);
    check_field(doc, errs, "timestamp", false);
    if (json_array_size(errs) == 0) {
      json_decref(errs);
      json_object_set_new(doc, "status", json_string("PROCESSED"));
      reply = doc;
    } else {
      reply = json_pack("{s:o}", "detail", errs);
      json_decref(doc);
    }
  }
  char *s = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
  json_decref(reply);
  if (!s)
    return;
  struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)s, strlen(s)};
  wslay_event_queue_msg(ctx, &m); /* copies */
  free(s);
}

static void msg_cb(wslay_event_context_ptr ctx,
                   const struct wslay_event_on_msg_recv_arg *arg, void *ud) {
  client *c = ud;
  if (wslay_is_ctrl_frame(arg->opcode))
    return; /* wslay answers pings and closes itself */
  if (c->json && arg->opcode == WSLAY_TEXT_FRAME) {
    reply_json(ctx, arg->msg, arg->msg_length);
    return;
  }
  struct wslay_event_msg m = {arg->opcode, arg->msg, arg->msg_length};
  wslay_event_queue_msg(ctx, &m);
}

static const struct wslay_event_callbacks callbacks = {
    recv_cb, send_cb, NULL, NULL, NULL, NULL, msg_cb};

/* ---- handshake ---- */

static const char *header(char *head, const char *name) {
  size_t nl = strlen(name);
  for (char *line = strstr(head, "\r\n"); line && line[2] != '\r';
       line = strstr(line + 2, "\r\n")) {
    char *l = line + 2;
    if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
      char *v = l + nl + 1;
      while (*v == ' ' || *v == '\t')
        v++;
      return v;
    }
  }
  return NULL;
}

/* 1: open, 0: need more, -1: rejected (response queued) or error */
static int handshake(client *c, const uint8_t *d, size_t n, size_t *used) {
  if (c->hs_cap - c->hs_len < n + 1 && c->hs_cap < HS_MAX + 1) {
    size_t cap = c->hs_cap ? c->hs_cap : 512;
    while (cap < c->hs_len + n + 1 && cap < HS_MAX + 1)
      cap *= 2;
    if (cap > HS_MAX + 1)
      cap = HS_MAX + 1;
    char *p = realloc(c->hs, cap);
    if (!p)
      return -1;
    c->hs = p;
    c->hs_cap = cap;
  }
  size_t room = c->hs_cap - 1 - c->hs_len;
  size_t k = n < room ? n : room;
  memcpy(c->hs + c->hs_len, d, k);
  size_t old = c->hs_len;
  c->hs_len += k;
  c->hs[c->hs_len] = '\0';
  char *end = strstr(c->hs, "\r\n\r\n");
  if (!end) {
    *used = k;
    return c->hs_len >= HS_MAX ? -1 : 0;
  }
  (void)room;
  size_t head = (size_t)(end + 4 - c->hs);
  *used = head - old;
  end[2] = '\0';
  const char *key = header(c->hs, "Sec-WebSocket-Key");
  if (strncmp(c->hs, "GET ", 4) != 0 || !key) {
    static const char bad[] = "HTTP/1.1 400 Bad Request\r\n"
                              "Content-Length: 0\r\nConnection: close\r\n\r\n";
    out_append(c, (const uint8_t *)bad, sizeof(bad) - 1);
    return -1;
  }
  size_t kl = strcspn(key, " \t\r\n");
  struct sha1_ctx sha;
  uint8_t digest[SHA1_DIGEST_SIZE];
  static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  sha1_init(&sha);
  sha1_update(&sha, kl, (const uint8_t *)key);
  sha1_update(&sha, sizeof(guid) - 1, (const uint8_t *)guid);
  sha1_digest(&sha, SHA1_DIGEST_SIZE, digest);
  char accept[BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE) + 1];
  base64_encode_raw((char *)accept, SHA1_DIGEST_SIZE, digest);
  accept[BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE)] = '\0';
  const char *path = c->hs + 4;
  size_t pl = strcspn(path, " ?");
  c->json = json_all || (pl == 13 && strncmp(path, "/ws/json-demo", 13) == 0);
  char resp[256];
  int rl = snprintf(resp, sizeof(resp),
                    "HTTP/1.1 101 Switching Protocols\r\n"
                    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Accept: %s\r\n\r\n",
                    accept);
  if (out_append(c, (const uint8_t *)resp, (size_t)rl) < 0)
    return -1;
  if (wslay_event_context_server_init(&c->ws, &callbacks, c) != 0)
    return -1;
  wslay_event_config_set_max_recv_msg_length(c->ws, MAX_MSG);
  free(c->hs);
  c->hs = NULL;
  return 1;
}

/* ---- connections ---- */

static void drop(client *c) {
  epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  if (c->ws)
    wslay_event_context_free(c->ws);
  free(c->hs);
  free(c->out);
  free(c);
}

static void set_events(client *c) {
  uint32_t want = EPOLLIN | (c->out_len > c->out_off ? EPOLLOUT : 0);
  if (want != c->events) {
    struct epoll_event ev = {.events = want, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = want;
  }
}

/* One readiness pass: read everything (bounded), let wslay produce its
 * output, write it with one send(). */
static void serve(client *c) {
  size_t budget = READ_BUDGET;
  bool eof = false, failed = false;
  for (int pass = 0; pass < 64 && budget > 0 && !failed; pass++) {
    if (c->ws && !wslay_event_want_read(c->ws))
      break;
    ssize_t n = read(c->fd, rbuf, READ_BUF);
    if (n == 0) {
      eof = true;
      break;
    }
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        failed = true;
      break;
    }
    budget = (size_t)n >= budget ? 0 : budget - (size_t)n;
    const uint8_t *d = rbuf;
    size_t len = (size_t)n;
    if (!c->ws) {
      size_t used = 0;
      int r = handshake(c, d, len, &used);
      if (r < 0) {
        failed = true;
        break;
      }
      d += used;
      len -= used;
      if (r == 0 || len == 0)
        continue;
    }
    c->in = d;
    c->in_len = len;
    if (wslay_event_recv(c->ws) != 0)
      failed = true;
    c->in_len = 0;
    if ((size_t)n < READ_BUF)
      break;
  }
  if (c->ws && !failed && wslay_event_send(c->ws) != 0)
    failed = true;
  if (c->out_len > c->out_off) {
    ssize_t w =
        send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (w > 0)
      c->out_off += (size_t)w;
    else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      failed = true;
    if (c->out_off == c->out_len)
      c->out_off = c->out_len = 0;
  }
  bool done = c->ws && !wslay_event_want_read(c->ws) &&
              !wslay_event_want_write(c->ws) && c->out_len == c->out_off;
  if (eof || failed || done) {
    drop(c);
    return;
  }
  set_events(c);
}

static int listen_on(const char *host, int port) {
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
    return -1;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
      listen(fd, 4096) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 9002;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--host") && i + 1 < argc)
      host = argv[++i];
    else if (!strcmp(argv[i], "--port") && i + 1 < argc)
      port = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--json"))
      json_all = true;
    else {
      fprintf(stderr, "usage: wslay_echo_server [--host ADDR] [--port N] "
                      "[--json]\n");
      return 2;
    }
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  int lfd = listen_on(host, port);
  if (lfd < 0) {
    fprintf(stderr, "wslay_echo_server: cannot listen on %s:%d: %s\n", host,
            port, strerror(errno));
    return 1;
  }
  rbuf = malloc(READ_BUF);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
  fprintf(stderr, "wslay_echo_server (jansson %s) on ws://%s:%d/%s\n",
          JANSSON_VERSION, host, port, json_all ? " (JSON on every path)" : "");
  struct epoll_event evs[256];
  while (!stop) {
    int n = epoll_wait(epfd, evs, 256, 500);
    if (n < 0 && errno != EINTR)
      break;
    for (int i = 0; i < n; i++) {
      if (evs[i].data.ptr) {
        serve(evs[i].data.ptr);
        continue;
      }
      for (int k = 0; k < 64; k++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
          break;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        client *c = calloc(1, sizeof(*c));
        if (!c) {
          close(fd);
          continue;
        }
        c->fd = fd;
        c->events = EPOLLIN;
        struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &cev);
      }
    }
  }
  close(lfd);
  close(epfd);
  free(rbuf);
  return 0;
}
