/* ft_server — receive big files over WebSocket without holding them in
 * memory (the "transfer big files in chunks with a header protocol" of the
 * article wsmsg follows).
 *
 * Protocol on /upload (any path, in fact):
 *   client → {"name": "report.pdf", "size": 1234, "sha256": "<64 hex>"}
 *   server → {"status": "READY", "file": "<stored name>"}
 *   client → the file's bytes as binary messages (one streamed message or
 *            several), exactly `size` bytes in all
 *   server → {"status": "FILE_RECEIVED", "file": ..., "size": ...,
 *             "sha256": ...}
 *         or {"status": "error", "error": "<code>", "detail": "..."}
 * Error codes: bad_header, upload_in_progress, no_header, size_exceeded,
 * too_large, quota_exceeded, sha256_mismatch, io_error.  After FILE_RECEIVED or
 * an error the next header starts a new upload on the same connection.
 *
 * Binary messages arrive through on_chunk: each piece is written to disk
 * and hashed (nettle SHA-256) as it comes, so the server's memory does not
 * grow with the file.  Files are written as "<safe name>.<n>.part" under
 * --dir and renamed when complete and verified; <n> goes on above every
 * number already in --dir, so a restart never reuses a name.
 *
 * Quotas: a header's size is reserved when the upload starts (and given
 * back if it fails), so stalled uploads count too: --max-total bytes and
 * --max-files files in --dir (what is already there counts), --max-client
 * bytes per connection; over one, the header gets quota_exceeded.
 *
 *   ft_server [--host 127.0.0.1] [--port 8090] [--dir DIR]
 *             [--max-size BYTES] [--max-total BYTES] [--max-files N]
 *             [--max-client BYTES] [--verbose] [--max-conns N]
 *             [--drain-timeout MS]
 */
#include "../common/evloop.h"
#include "../common/upload_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct upload {
  int fd; /* -1: no upload in progress */
  uint64_t size, got;
  struct sha256_ctx sha;
  char expect[65];
  char path[4200], final_path[4100], file[300];
  int skipping;      /* binary data without a header: error sent once */
  int counted;       /* the current upload is counted in the quotas */
  uint64_t reserved; /* with its size */
  uint64_t used;     /* this connection's bytes: stored + reserved */
} upload;

static const char *dir = ".";
static uint64_t max_size = 4ull << 30;
static uint64_t max_total = 8ull << 30, max_client = 4ull << 30;
static unsigned long max_files = 1000;
static uint64_t total_bytes; /* in --dir: stored + reserved */
static unsigned long nfiles; /* likewise */
static unsigned long counter;

static void reply(wsmsg_conn *c, json_t *msg) {
  if (msg)
    wsmsg_send_json(c, msg);
  json_decref(msg);
}

static void reply_error(wsmsg_conn *c, const char *code, const char *detail) {
  evloop_log(c, "error %s: %s", code, detail);
  reply(c, json_pack("{s:s, s:s, s:s}", "status", "error", "error", code,
                     "detail", detail));
}

/* Give back the current upload's share of the quotas (its file is gone). */
static void release(upload *u) {
  if (!u->counted)
    return;
  total_bytes -= u->reserved;
  u->used -= u->reserved;
  u->reserved = 0;
  u->counted = 0;
  nfiles--;
}

static void abandon(upload *u) {
  if (u->fd >= 0) {
    close(u->fd);
    unlink(u->path);
    release(u);
    u->fd = -1;
  }
}

/* What --dir already holds of ours ("<n>-<name>", finished or .part)
 * counts toward the quotas, and numbering goes on above the highest n. */
static int stored_no(const char *name, unsigned long *n) {
  int end = 0;
  return sscanf(name, "%lu-%n", n, &end) == 1 && end != 0 && name[0] >= '0' &&
         name[0] <= '9';
}

static int scan_dir(void) {
  return upload_dir_scan(dir, stored_no, &nfiles, &total_bytes, &counter);
}

static upload *state(wsmsg_conn *c) {
  void **slot = evloop_app(c);
  if (!*slot) {
    upload *u = calloc(1, sizeof(*u));
    if (!u)
      return NULL;
    u->fd = -1;
    *slot = u;
  }
  return *slot;
}

/* Keep [A-Za-z0-9._-] of the base name; never empty, never hidden. */
static void safe_name(const char *name, char *out, size_t size) {
  const char *base = strrchr(name, '/');
  base = base ? base + 1 : name;
  size_t k = 0;
  for (const char *p = base; *p && k + 1 < size && k < 100; p++) {
    char ch = *p;
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
        (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_')
      out[k++] = ch;
  }
  out[k] = '\0';
  while (out[0] == '.')
    memmove(out, out + 1, strlen(out));
  if (!out[0])
    snprintf(out, size, "upload");
}

static int is_hex64(const char *s) {
  if (strlen(s) != 64)
    return 0;
  for (; *s; s++)
    if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
      return 0;
  return 1;
}

static void finish(wsmsg_conn *c, upload *u);

static void on_text(wsmsg_conn *c, const char *data, size_t len, void *u_) {
  (void)u_;
  upload *u = state(c);
  if (!u) {
    wsmsg_close(c, 1011, "out of memory");
    return;
  }
  if (u->fd >= 0) {
    reply_error(c, "upload_in_progress", "finish the current file first");
    return;
  }
  json_error_t err;
  json_t *h = json_loadb(data, len, JSON_REJECT_DUPLICATES, &err);
  const char *name = NULL, *sha = NULL;
  json_int_t size = -1;
  if (!h ||
      json_unpack(h, "{s:s, s:I, s:s}", "name", &name, "size", &size, "sha256",
                  &sha) != 0 ||
      size < 0 || !is_hex64(sha)) {
    reply_error(c, "bad_header",
                "expected {\"name\": string, \"size\": integer >= 0, "
                "\"sha256\": 64 lowercase hex digits}");
    json_decref(h);
    return;
  }
  if ((uint64_t)size > max_size) {
    char d[96];
    snprintf(d, sizeof(d), "size %lld over the limit of %llu", (long long)size,
             (unsigned long long)max_size);
    reply_error(c, "too_large", d);
    json_decref(h);
    return;
  }
  const char *over =
      nfiles >= max_files                        ? "file count limit reached"
      : total_bytes + (uint64_t)size > max_total ? "storage quota exceeded"
      : u->used + (uint64_t)size > max_client    ? "per-client quota exceeded"
                                                 : NULL;
  if (over) {
    reply_error(c, "quota_exceeded", over);
    json_decref(h);
    return;
  }
  char safe[128];
  safe_name(name, safe, sizeof(safe));
  /* "<n>-<name>.part", created with O_EXCL; a name that exists (an
   * earlier run's file in the same --dir) moves on to the next n */
  u->fd = -1;
  errno = EEXIST;
  for (int tries = 0; tries < 1000 && u->fd < 0 && errno == EEXIST; tries++) {
    unsigned long n = ++counter;
    snprintf(u->file, sizeof(u->file), "%lu-%s", n, safe);
    if (snprintf(u->final_path, sizeof(u->final_path), "%.3700s/%s", dir,
                 u->file) < 0 ||
        snprintf(u->path, sizeof(u->path), "%s.part", u->final_path) < 0) {
      json_decref(h);
      return;
    }
    struct stat st;
    if (stat(u->final_path, &st) == 0) { /* a finished file of that name */
      errno = EEXIST;
      continue;
    }
    u->fd = open(u->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  }
  if (u->fd < 0) {
    reply_error(c, "io_error", strerror(errno));
    json_decref(h);
    return;
  }
  u->size = (uint64_t)size;
  u->counted = 1;
  u->reserved = u->size;
  u->used += u->size;
  total_bytes += u->size;
  nfiles++;
  u->got = 0;
  u->skipping = 0;
  memcpy(u->expect, sha, 65);
  sha256_init(&u->sha);
  json_decref(h);
  evloop_log(c, "upload %s: %llu bytes", u->file, (unsigned long long)size);
  reply(c, json_pack("{s:s, s:s}", "status", "READY", "file", u->file));
  if (u->size == 0) /* nothing to wait for */
    finish(c, u);
}

static void finish(wsmsg_conn *c, upload *u) {
  uint8_t dig[SHA256_DIGEST_SIZE];
  char hex[65];
  sha256_digest(&u->sha, sizeof(dig), dig);
  for (int i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", dig[i]);
  if (close(u->fd) != 0) {
    u->fd = -1;
    unlink(u->path);
    release(u);
    reply_error(c, "io_error", strerror(errno));
    return;
  }
  u->fd = -1;
  if (strcmp(hex, u->expect) != 0) {
    unlink(u->path);
    release(u);
    char d[200];
    snprintf(d, sizeof(d), "expected %s, got %s", u->expect, hex);
    reply_error(c, "sha256_mismatch", d);
    return;
  }
  if (rename(u->path, u->final_path) != 0) {
    unlink(u->path);
    release(u);
    reply_error(c, "io_error", strerror(errno));
    return;
  }
  u->counted = 0; /* stored: its bytes stay in the quotas */
  u->reserved = 0;
  evloop_log(c, "received %s", u->file);
  reply(c, json_pack("{s:s, s:s, s:I, s:s}", "status", "FILE_RECEIVED", "file",
                     u->file, "size", (json_int_t)u->size, "sha256", hex));
}

static void on_chunk(wsmsg_conn *c, int type, const uint8_t *d, size_t n,
                     int first, int final, void *u_) {
  (void)type;
  (void) final;
  (void)u_;
  upload *u = state(c);
  if (!u)
    return;
  if (u->fd < 0) {
    if (first && !u->skipping) {
      u->skipping = 1;
      reply_error(c, "no_header", "send the JSON header first");
    }
    return;
  }
  if (n > u->size - u->got) {
    abandon(u);
    u->skipping = 1;
    reply_error(c, "size_exceeded", "more bytes than the header announced");
    return;
  }
  size_t off = 0;
  while (off < n) {
    ssize_t w = write(u->fd, d + off, n - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      abandon(u);
      u->skipping = 1;
      reply_error(c, "io_error", strerror(errno));
      return;
    }
    off += (size_t)w;
  }
  sha256_update(&u->sha, n, d);
  u->got += n;
  if (u->got == u->size)
    finish(c, u);
}

static void on_close(wsmsg_conn *c, const wsmsg_close_info *ci, void *u_) {
  (void)u_;
  void **slot = evloop_app(c);
  upload *u = *slot;
  if (u) {
    if (u->fd >= 0)
      evloop_log(c, "dropping unfinished %s", u->file);
    abandon(u);
    free(u);
    *slot = NULL;
  }
  evloop_log(c, "close code=%d clean=%d%s%s", (int)ci->code, (int)ci->clean,
             ci->error ? " error: " : "", ci->error ? ci->detail : "");
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 8090;
  evloop_opts lo = EVLOOP_OPTS("ft_server");
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int more = i + 1 < argc;
    if (evloop_arg(&lo, argc, argv, &i))
      continue;
    if (!strcmp(a, "--host") && more)
      host = argv[++i];
    else if (!strcmp(a, "--port") && more)
      port = atoi(argv[++i]);
    else if (!strcmp(a, "--dir") && more)
      dir = argv[++i];
    else if (!strcmp(a, "--max-size") && more)
      max_size = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(a, "--max-total") && more)
      max_total = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(a, "--max-files") && more)
      max_files = strtoul(argv[++i], NULL, 10);
    else if (!strcmp(a, "--max-client") && more)
      max_client = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(a, "--verbose") || !strcmp(a, "-v"))
      lo.verbose = 1;
    else {
      fprintf(stderr, "usage: ft_server [--host ADDR] [--port N] [--dir DIR] "
                      "[--max-size BYTES] [--verbose]\n"
                      "                 [--max-total BYTES] [--max-files N] "
                      "[--max-client BYTES]\n"
                      "                 " EVLOOP_USAGE "\n"
                      "defaults: --max-size 4 GiB per file, --max-total 8 GiB "
                      "and --max-files 1000\nin --dir (files already there "
                      "count), --max-client 4 GiB per connection\n");
      return strcmp(a, "--help") ? 2 : 0;
    }
  }
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || scan_dir() != 0) {
    fprintf(stderr, "ft_server: %s is not a directory\n", dir);
    return 1;
  }
  wsmsg_endpoint *ep = wsmsg_endpoint_new();
  wsmsg_server *srv = wsmsg_server_new();
  wsmsg_endpoint_on_text(ep, on_text);
  wsmsg_endpoint_on_chunk(ep, on_chunk, WSMSG_STREAM_BINARY);
  wsmsg_endpoint_on_close(ep, on_close);
  wsmsg_endpoint_set_max_message_size(ep, 0); /* streamed: no limit */
  wsmsg_endpoint_set_max_fragments(ep, 0);
  wsmsg_endpoint_set_receive_timeout(ep, 0);
  wsmsg_endpoint_set_ping_interval(ep, 20000); /* notice dead peers */
  wsmsg_endpoint_set_pong_timeout(ep, 20000);
  wsmsg_server_route(srv, "*", ep);
  int r = evloop_serve(srv, host, port, &lo);
  wsmsg_server_free(srv);
  wsmsg_endpoint_free(ep);
  return r;
}
