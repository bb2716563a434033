/* ft_client — send a file to ft_server (see ft_server.c for the protocol).
 *
 *   ft_client [--name NAME] [--timeout MS] FILE ws://host:port/upload
 *
 * Hashes the file (SHA-256, nettle), sends the JSON header, waits for
 * READY, then streams the file as one binary message with wsmsg_send_stream
 * (64 KiB fragments pulled from the file as the socket drains) and prints
 * the server's final JSON answer.  It drives the connection with the
 * blocking wsmsg_conn_wait_event, the pull API simple clients and FFI use.
 * Exit status 0 when the server answered FILE_RECEIVED.
 */
#include <wsmsg.h>

#include "../common/log_escape.h"
#include "../common/tcp_connect.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <nettle/sha2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct source {
  int fd;
  uint64_t left; /* bytes still to send */
} source;

/* wsmsg_read_cb: the next piece of the file; eof with the last one. */
static int64_t read_file(wsmsg_conn *c, uint8_t *buf, size_t len, int *eof,
                         void *user) {
  (void)c;
  source *src = user;
  if (len > src->left)
    len = (size_t)src->left;
  ssize_t n;
  do
    n = read(src->fd, buf, len);
  while (n < 0 && errno == EINTR);
  if (n < 0 || (n == 0 && len > 0))
    return -1; /* read error, or the file shrank */
  src->left -= (uint64_t)n;
  *eof = src->left == 0;
  return n;
}

static int connect_url(const char *url, char *hostport, size_t hsz,
                       const char **path) {
  if (strncmp(url, "ws://", 5) != 0)
    return -1;
  const char *h = url + 5, *slash = strchr(h, '/');
  *path = slash ? slash : "/";
  size_t hl = slash ? (size_t)(slash - h) : strlen(h);
  if (hl == 0 || hl >= hsz)
    return -1;
  memcpy(hostport, h, hl);
  hostport[hl] = '\0';
  char host[256], port[16] = "80";
  const char *colon = strrchr(hostport, ':');
  size_t nl = colon ? (size_t)(colon - hostport) : hl;
  if (nl >= sizeof(host))
    return -1;
  memcpy(host, hostport, nl);
  host[nl] = '\0';
  if (colon)
    snprintf(port, sizeof(port), "%s", colon + 1);
  int gai_err;
  return tcp_connect(host, port, &gai_err);
}

/* Wait for the next text message and parse it (NULL on error/close). */
static json_t *next_json(wsmsg_conn *c, int fd, int timeout_ms) {
  wsmsg_event ev;
  for (;;) {
    int r = wsmsg_conn_wait_event(c, fd, &ev, timeout_ms);
    if (r == 0) {
      fprintf(stderr, "ft_client: timeout\n");
      return NULL;
    }
    if (r < 0) {
      fprintf(stderr, "ft_client: %s (%s)\n", wsmsg_strerror(r),
              wsmsg_conn_error_detail(c));
      return NULL;
    }
    if (ev.type == WSMSG_EV_TEXT) {
      printf("%s\n", (const char *)ev.data);
      fflush(stdout);
      return json_loadb((const char *)ev.data, ev.len, 0, NULL);
    }
    if (ev.type == WSMSG_EV_CLOSE) {
      char reason[512], detail[1024]; /* from the peer: escaped */
      log_escape(reason, sizeof(reason), (const char *)ev.data, ev.len);
      log_escape(detail, sizeof(detail), ev.detail, strlen(ev.detail));
      fprintf(stderr, "ft_client: closed: code %d %s%s\n", ev.code, reason,
              detail);
      return NULL;
    }
  }
}

int main(int argc, char **argv) {
  const char *name = NULL, *file = NULL, *url = NULL;
  int timeout = 600000;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--name") && i + 1 < argc)
      name = argv[++i];
    else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
      timeout = atoi(argv[++i]);
    else if (!file)
      file = argv[i];
    else if (!url)
      url = argv[i];
    else
      file = NULL;
  }
  if (!file || !url) {
    fprintf(stderr, "usage: ft_client [--name NAME] [--timeout MS] FILE "
                    "ws://host:port/upload\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  int in = open(file, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (in < 0 || fstat(in, &st) != 0) {
    perror(file);
    return 1;
  }
  /* hash first: the header announces size and digest */
  struct sha256_ctx sha;
  sha256_init(&sha);
  static uint8_t buf[1 << 16];
  ssize_t n;
  while ((n = read(in, buf, sizeof(buf))) > 0)
    sha256_update(&sha, (size_t)n, buf);
  uint8_t dig[SHA256_DIGEST_SIZE];
  char hex[65];
  sha256_digest(&sha, sizeof(dig), dig);
  for (int i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", dig[i]);
  lseek(in, 0, SEEK_SET);

  char hostport[300];
  const char *path;
  int fd = connect_url(url, hostport, sizeof(hostport), &path);
  if (fd < 0) {
    fprintf(stderr, "ft_client: cannot connect to %s\n", url);
    return 1;
  }
  wsmsg_endpoint *ep = wsmsg_endpoint_new();
  wsmsg_conn *c = wsmsg_client_new(ep, hostport, path, NULL);
  int status = 1;
  wsmsg_event ev;
  if (wsmsg_conn_wait_event(c, fd, &ev, timeout) != 1 ||
      ev.type != WSMSG_EV_OPEN) {
    char detail[1024];
    const char *d = wsmsg_conn_error_detail(c);
    fprintf(stderr, "ft_client: handshake failed: %s\n",
            log_escape(detail, sizeof(detail), d, strlen(d)));
    goto out;
  }
  const char *base = strrchr(file, '/');
  json_t *hdr = json_pack("{s:s, s:I, s:s}", "name",
                          name   ? name
                          : base ? base + 1
                                 : file,
                          "size", (json_int_t)st.st_size, "sha256", hex);
  char *hs = json_dumps(hdr, JSON_COMPACT);
  wsmsg_send_text(c, hs, strlen(hs));
  free(hs);
  json_decref(hdr);
  json_t *ready = next_json(c, fd, timeout);
  const char *s =
      ready ? json_string_value(json_object_get(ready, "status")) : NULL;
  if (!s || strcmp(s, "READY") != 0) {
    json_decref(ready);
    goto out;
  }
  json_decref(ready);
  source src = {in, (uint64_t)st.st_size};
  if (st.st_size > 0)
    wsmsg_send_stream(c, WSMSG_EV_BINARY, read_file, &src);
  json_t *done = next_json(c, fd, timeout);
  s = done ? json_string_value(json_object_get(done, "status")) : NULL;
  if (s && strcmp(s, "FILE_RECEIVED") == 0)
    status = 0;
  json_decref(done);
  wsmsg_close(c, 1000, "done");
  while (wsmsg_conn_wait_event(c, fd, &ev, 5000) == 1 &&
         ev.type != WSMSG_EV_CLOSE)
    ;
out:
  close(fd);
  close(in);
  wsmsg_conn_free(c);
  wsmsg_endpoint_free(ep);
  return status;
}
