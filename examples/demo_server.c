/* demo_server — the four endpoints of the FastAPI WebSocket article wsmsg
 * follows, plus a plain echo, in one epoll server (examples/common/evloop).
 *
 *   /ws/chat           text: replies "[<ISO-8601 time>] Server received: <msg>"
 *   /ws/file-transfer  binary: each message is stored as a file under --dir
 *                      (upload-N.bin, N above every number already there)
 *                      and answered with the binary message "FILE_RECEIVED";
 *                      or, after a JSON header (the article's "small header
 *                      protocol", as the demo page speaks it):
 *                        client: {"name": "a.bin", "size": N,
 *                                 "sha256": "<64 hex>" (optional)}
 *                        server: {"status": "READY", "file": "upload-N.bin"}
 *                        client: binary messages, N bytes in all
 *                        server: {"status": "PROGRESS", "received": n}
 *                                after each, then {"status":
 *                                "FILE_RECEIVED", "file", "size",
 *                                "sha256": "<the server's SHA-256>"}
 *                        or {"status": "error", "error": CODE, "detail"}
 *                        (bad_header, size_exceeded, too_large,
 *                        sha256_mismatch; the partial file is removed);
 *                      limits: --max-file per file (1009), --max-files files
 *                      and --max-total bytes in the directory, --max-client
 *                      bytes per connection (1008 and the partial file
 *                      removed); files already in --dir count
 *   /ws/json-demo      JSON validated against MessageModel {user: string,
 *                      content: string, timestamp: number} (all required):
 *                      replies the message plus "status": "PROCESSED";
 *                      invalid input gets {"error": "validation_error",
 *                      "detail": [...]} (Pydantic-style) and stays open
 *   /ws/with-timeout   text echoed as "Echo: <msg>"; after --receive-timeout
 *                      ms (10 s) without a message the server sends the text
 *                      "HEARTBEAT"
 *   /ws/echo           text as text, binary as binary (benchmarks, tests)
 *   /ws/room           a chat room: each text message goes to everyone in
 *                      the room as {"text": <msg>, "members": <n>}
 *                      (wsmsg_broadcast_json; evloop writes to the members
 *                      through the server's on_output callback)
 *   GET /asyncapi.json the server described as an AsyncAPI 3.0 document
 *                      (wsmsg_server_asyncapi; plain HTTP, on_http)
 *
 * Plain HTTP on the same port (wsmsg_server_on_http): GET / is the demo
 * page, examples/web/index.html, and GET /<file> the static files beside
 * it (--web DIR; default: the "web" directory next to this binary), GET
 * /healthz answers 200 "ok" for load balancers.  With --tls-cert and
 * --tls-key the port speaks TLS: https:// for the page, wss:// for the
 * endpoints.
 *
 * Every endpoint has a message callback, so it is a push endpoint: a kind
 * of message it has no callback for (binary on /ws/chat, /ws/with-timeout
 * or /ws/json-demo) is refused with close 1003 "binary messages are not
 * accepted here" — the default unhandled policy, kept on purpose: a chat
 * client that sends binary is broken, and telling it beats dropping its
 * messages in silence.
 *
 *   demo_server [--host 127.0.0.1] [--port 8080] [--dir DIR]
 *               [--max-file BYTES] [--max-files N] [--max-total BYTES]
 *               [--max-client BYTES] [--receive-timeout MS]
 *               [--ping-interval MS] [--pong-timeout MS]
 *               [--handshake-timeout MS] [--close-timeout MS] [--quiet]
 *               [--no-deflate | --deflate on|low_memory|max_ratio]
 *               [--max-conns N] [--drain-timeout MS] [--web DIR]
 *               [--tls-cert FILE --tls-key FILE]
 *
 * One log line per connection event on stderr (unless --quiet).  Without
 * --dir, files go to a new /tmp/wsmsg-demo-XXXXXX, removed with what it
 * holds when the server exits (SIGINT/SIGTERM).
 */
#include "common/evloop.h"
#include "common/message_model.h"
#include "common/server_opts.h"
#include "common/upload_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char MESSAGE_MODEL[] = MESSAGE_MODEL_SCHEMA;

/* GET /asyncapi.json: the server's own description, made once routes are
 * set (wsmsg_server_asyncapi); served by on_http below. */
static char *asyncapi_json;

static char dir[4096];

/* /ws/file-transfer limits and what is used of them.  In-progress uploads
 * count as they arrive, so stalled uploads cannot exceed them either. */
static uint64_t max_total = 256ull << 20, max_client = 64ull << 20;
static uint64_t max_file = 16ull << 20;
static unsigned long max_files = 1000;
static uint64_t total_bytes;  /* in the directory: stored + in progress */
static unsigned long nfiles;  /* likewise */
static unsigned long next_no; /* the next upload-N.bin to try */

/* What a connection's evloop slot holds: an uploader (WebSocket) or a
 * file being sent (plain HTTP). */
enum { SLOT_UPLOADER = 1, SLOT_FILE = 2 };

/* /ws/file-transfer: one connection's uploads */
typedef struct uploader {
  int kind;      /* SLOT_UPLOADER */
  int fd;        /* the file being received, or -1 */
  uint64_t got;  /* its bytes so far */
  uint64_t used; /* bytes this connection stored (finished + current) */
  char path[4200];
  /* after a JSON header: the upload spans binary messages */
  int framed;        /* a header announced this upload */
  int skipping;      /* it failed: binary messages are dropped until the
                        next header */
  uint64_t expect;   /* its size */
  char want_sha[65]; /* the client's SHA-256, "" if none */
  struct sha256_ctx sha;
} uploader;

/* Stop the current upload; without `keep` its file goes, with its bytes. */
static void upload_end(uploader *up, int keep) {
  up->framed = 0;
  if (up->fd < 0)
    return;
  close(up->fd);
  up->fd = -1;
  if (!keep) {
    unlink(up->path);
    total_bytes -= up->got;
    up->used -= up->got;
    nfiles--;
  }
  up->got = 0;
}

/* Count what --dir already holds of ours (upload-N.bin): it counts toward
 * the quotas, and numbering goes on above the highest N, so a restart
 * never collides with an earlier run's files. */
static int upload_no(const char *name, unsigned long *n) {
  int end = 0;
  return sscanf(name, "upload-%lu.bin%n", n, &end) == 1 && name[end] == '\0' &&
         end != 0;
}

static int scan_dir(void) {
  return upload_dir_scan(dir, upload_no, &nfiles, &total_bytes, &next_no);
}

/* Remove a directory we created, with the uploads in it. */
static void remove_dir(void) {
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (!strncmp(e->d_name, "upload-", 7)) {
        char path[4400];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
      }
    }
    closedir(d);
  }
  if (rmdir(dir) != 0)
    fprintf(stderr, "demo_server: cannot remove %s: %s\n", dir,
            strerror(errno));
}

/* ---- shared ---- */

static void on_open(wsmsg_conn *c, void *u) {
  (void)u;
  evloop_log(c, "open %s%s%s", wsmsg_conn_path(c),
             *wsmsg_conn_query(c) ? "?" : "", wsmsg_conn_query(c));
}

static void on_close(wsmsg_conn *c, const wsmsg_close_info *ci, void *u) {
  (void)u;
  uploader **slot = (uploader **)evloop_app(c);
  if (*slot) { /* an upload cut short leaves no partial file */
    upload_end(*slot, 0);
    free(*slot);
    *slot = NULL;
  }
  evloop_log(c, "close %s code=%d clean=%d%s%s", wsmsg_conn_path(c),
             (int)ci->code, (int)ci->clean, ci->error ? " error: " : "",
             ci->error ? ci->detail : "");
}

static void common(wsmsg_endpoint *ep) {
  wsmsg_endpoint_on_open(ep, on_open);
  wsmsg_endpoint_on_close(ep, on_close);
}

/* ---- /ws/chat ---- */

static void chat_text(wsmsg_conn *c, const char *msg, size_t len, void *u) {
  (void)u;
  char stamp[40];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  size_t k = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(stamp + k, sizeof(stamp) - k, ".%03ldZ", ts.tv_nsec / 1000000);
  size_t n = len + 64;
  char *out = malloc(n);
  if (!out)
    return;
  int w = snprintf(out, n, "[%s] Server received: %.*s", stamp, (int)len, msg);
  wsmsg_send_text(c, out, (size_t)w);
  free(out);
}

/* ---- /ws/room ---- */

static wsmsg_conn **room; /* the members, in no order */
static size_t nroom, caproom;

static void room_open(wsmsg_conn *c, void *u) {
  on_open(c, u);
  if (nroom == caproom) {
    size_t cap = caproom ? caproom * 2 : 16;
    wsmsg_conn **r = realloc(room, cap * sizeof(*r));
    if (!r) {
      wsmsg_close(c, 1011, "out of memory");
      return;
    }
    room = r;
    caproom = cap;
  }
  room[nroom++] = c;
}

static void room_close(wsmsg_conn *c, const wsmsg_close_info *ci, void *u) {
  on_close(c, ci, u);
  for (size_t i = 0; i < nroom; i++)
    if (room[i] == c) {
      room[i] = room[--nroom];
      break;
    }
}

static void room_text(wsmsg_conn *c, const char *d, size_t n, void *u) {
  (void)c;
  (void)u;
  json_t *m = json_pack("{s:s%, s:I}", "text", d, n, "members",
                        (json_int_t)nroom);
  if (m) /* serialized once, framed once, copied to each member */
    wsmsg_broadcast_json(room, nroom, m);
  json_decref(m);
}

/* ---- /ws/file-transfer ----
 * Each binary message is streamed into its own file as it arrives. */

/* A new file with a name no file has: O_EXCL, and on EEXIST (another
 * process writing into the same directory) the next number. */
static int upload_open(uploader *up) {
  for (int tries = 0; tries < 1000; tries++) {
    snprintf(up->path, sizeof(up->path), "%s/upload-%lu.bin", dir, ++next_no);
    int fd = open(up->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0 || errno != EEXIST)
      return fd;
  }
  return -1;
}

static uploader *uploader_of(wsmsg_conn *c) {
  uploader **slot = (uploader **)evloop_app(c);
  if (!*slot) {
    if (!(*slot = calloc(1, sizeof(**slot)))) {
      wsmsg_close(c, 1011, "out of memory");
      return NULL;
    }
    (*slot)->kind = SLOT_UPLOADER;
    (*slot)->fd = -1;
  }
  return *slot;
}

static void reply_json(wsmsg_conn *c, json_t *msg) {
  if (msg)
    wsmsg_send_json(c, msg);
  json_decref(msg);
}

/* A framed upload failed: its file goes; the connection stays. */
static void framed_error(wsmsg_conn *c, uploader *up, const char *code,
                         const char *detail) {
  evloop_log(c, "upload error %s: %s", code, detail);
  upload_end(up, 0);
  up->skipping = 1;
  reply_json(c, json_pack("{s:s, s:s, s:s}", "status", "error", "error", code,
                          "detail", detail));
}

/* A binary message of a framed upload ended: progress, or the end. */
static void framed_message_end(wsmsg_conn *c, uploader *up) {
  if (up->got < up->expect) {
    reply_json(c, json_pack("{s:s, s:I}", "status", "PROGRESS", "received",
                            (json_int_t)up->got));
    return;
  }
  uint8_t dig[SHA256_DIGEST_SIZE];
  char hex[2 * SHA256_DIGEST_SIZE + 1];
  sha256_digest(&up->sha, sizeof(dig), dig);
  for (size_t i = 0; i < sizeof(dig); i++)
    snprintf(hex + 2 * i, 3, "%02x", dig[i]);
  if (up->want_sha[0] && strcmp(up->want_sha, hex) != 0) {
    framed_error(c, up, "sha256_mismatch", hex);
    return;
  }
  const char *base = strrchr(up->path, '/');
  json_t *r = json_pack("{s:s, s:s, s:I, s:s}", "status", "FILE_RECEIVED",
                        "file", base ? base + 1 : up->path, "size",
                        (json_int_t)up->got, "sha256", hex);
  evloop_log(c, "stored %s: %llu bytes, sha256 %s", up->path,
             (unsigned long long)up->got, hex);
  upload_end(up, 1);
  reply_json(c, r);
}

static void file_chunk(wsmsg_conn *c, int type, const uint8_t *d, size_t n,
                       int first, int final, void *u) {
  (void)type;
  (void)u;
  uploader *up = uploader_of(c);
  if (!up || up->skipping)
    return;
  if (first && !up->framed) {
    if (nfiles >= max_files) {
      evloop_log(c, "refused: %lu files stored, the limit", nfiles);
      wsmsg_close(c, 1008, "file count limit reached");
      return;
    }
    up->fd = upload_open(up);
    if (up->fd < 0) {
      evloop_log(c, "cannot create a file in %s: %s", dir, strerror(errno));
      wsmsg_close(c, 1011, "cannot store the file");
      return;
    }
    up->got = 0;
    nfiles++;
    evloop_log(c, "storing %s", up->path);
  }
  if (up->fd < 0)
    return;
  const char *over = total_bytes + n > max_total ? "storage quota exceeded"
                     : up->used + n > max_client ? "per-client quota exceeded"
                                                 : NULL;
  if (over) {
    evloop_log(c, "%s: %s", over, up->path);
    upload_end(up, 0);
    wsmsg_close(c, 1008, over);
    return;
  }
  if (up->framed && up->got + n > up->expect) {
    framed_error(c, up, "too_large", "more bytes than the header announced");
    return;
  }
  for (size_t off = 0; off < n;) {
    ssize_t w = write(up->fd, d + off, n - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      upload_end(up, 0);
      wsmsg_close(c, 1011, "cannot store the file");
      return;
    }
    off += (size_t)w;
    up->got += (size_t)w;
    up->used += (size_t)w;
    total_bytes += (size_t)w;
  }
  if (up->framed) {
    sha256_update(&up->sha, n, d);
    if (final)
      framed_message_end(c, up);
    return;
  }
  if (final) {
    upload_end(up, 1);
    wsmsg_send_binary(c, "FILE_RECEIVED", 13);
  }
}

static void file_text(wsmsg_conn *c, const char *d, size_t n, void *u) {
  (void)u;
  json_t *h = json_loadb(d, n, 0, NULL);
  if (!json_is_object(h)) { /* not a header */
    json_decref(h);
    wsmsg_send_text(c, "send files as binary messages", 29);
    return;
  }
  uploader *up = uploader_of(c);
  if (!up) {
    json_decref(h);
    return;
  }
  json_t *name = json_object_get(h, "name"), *size = json_object_get(h, "size");
  json_t *sha = json_object_get(h, "sha256");
  const char *bad = NULL;
  if (up->fd >= 0)
    bad = "an upload is in progress";
  else if (!json_is_string(name) || !json_is_integer(size) ||
           json_integer_value(size) < 0)
    bad = "need {\"name\": string, \"size\": integer >= 0}";
  else if (sha && (!json_is_string(sha) || json_string_length(sha) != 64 ||
                   strspn(json_string_value(sha), "0123456789abcdef") != 64))
    bad = "sha256 must be 64 lowercase hex digits";
  if (bad) {
    json_decref(h);
    reply_json(c, json_pack("{s:s, s:s, s:s}", "status", "error", "error",
                            "bad_header", "detail", bad));
    return;
  }
  uint64_t want = (uint64_t)json_integer_value(size);
  snprintf(up->want_sha, sizeof(up->want_sha), "%s",
           sha ? json_string_value(sha) : "");
  json_decref(h);
  if (want > max_file) {
    reply_json(c,
               json_pack("{s:s, s:s, s:s}", "status", "error", "error",
                         "size_exceeded", "detail", "larger than --max-file"));
    return;
  }
  if (nfiles >= max_files) {
    wsmsg_close(c, 1008, "file count limit reached");
    return;
  }
  up->fd = upload_open(up);
  if (up->fd < 0) {
    wsmsg_close(c, 1011, "cannot store the file");
    return;
  }
  up->got = 0;
  up->skipping = 0;
  up->framed = 1;
  up->expect = want;
  sha256_init(&up->sha);
  nfiles++;
  evloop_log(c, "storing %s (%llu bytes announced)", up->path,
             (unsigned long long)want);
  const char *base = strrchr(up->path, '/');
  reply_json(c, json_pack("{s:s, s:s}", "status", "READY", "file",
                          base ? base + 1 : up->path));
  if (want == 0)
    framed_message_end(c, up);
}

/* ---- /ws/json-demo ---- */

static void json_msg(wsmsg_conn *c, json_t *msg, void *u) {
  (void)u;
  json_object_set_new(msg, "status", json_string("PROCESSED"));
  wsmsg_send_json(c, msg);
}

static void json_invalid(wsmsg_conn *c, const wsmsg_verrors *e, const char *t,
                         size_t n, void *u) {
  (void)t;
  (void)n;
  (void)u;
  evloop_log(c, "invalid message: %zu error(s), first %s: %s",
             wsmsg_verrors_count(e),
             wsmsg_verrors_count(e) ? wsmsg_verrors_type(e, 0) : "-",
             wsmsg_verrors_count(e) ? wsmsg_verrors_msg(e, 0) : "-");
}

/* ---- /ws/with-timeout and /ws/echo ---- */

static void timeout_text(wsmsg_conn *c, const char *d, size_t n, void *u) {
  (void)u;
  char *out = malloc(n + 6);
  if (!out)
    return;
  memcpy(out, "Echo: ", 6);
  memcpy(out + 6, d, n);
  wsmsg_send_text(c, out, n + 6);
  free(out);
}

static void echo_text(wsmsg_conn *c, const char *d, size_t n, void *u) {
  (void)u;
  wsmsg_send_text(c, d, n);
}

static void echo_binary(wsmsg_conn *c, const uint8_t *d, size_t n, void *u) {
  (void)u;
  wsmsg_send_binary(c, d, n);
}

/* ---- plain HTTP: the demo page, its files, /healthz ---- */

static char web_dir[4096];

typedef struct sending { /* a file being sent, in the evloop slot */
  int kind;              /* SLOT_FILE */
  int fd;
  uint64_t left;
} sending;

static void slot_free(void *app) {
  if (*(int *)app == SLOT_FILE) {
    close(((sending *)app)->fd);
  } else {
    upload_end(app, 0);
  }
  free(app);
}

static int64_t file_read(wsmsg_conn *c, uint8_t *buf, size_t len, int *eof,
                         void *u) {
  sending *f = u;
  if (len > f->left)
    len = (size_t)f->left;
  ssize_t n;
  do
    n = read(f->fd, buf, len);
  while (n < 0 && errno == EINTR);
  if (n <= 0) { /* an error, or the file shrank: the response is cut */
    slot_free(f);
    *evloop_app(c) = NULL;
    return -1;
  }
  f->left -= (uint64_t)n;
  if (f->left == 0) { /* all of it: wsmsg asks no more */
    *eof = 1;
    slot_free(f);
    *evloop_app(c) = NULL;
  }
  return n;
}

static const char *content_type(const char *path) {
  static const char *const types[][2] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".txt", "text/plain; charset=utf-8"},
  };
  const char *dot = strrchr(path, '.');
  for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
    if (!strcmp(dot, types[i][0]))
      return types[i][1];
  return "application/octet-stream";
}

/* Only plain names under the web directory: letters, digits, '-', '_',
 * '.', '/' separating segments that do not start with '.' (no "..", no
 * hidden files, no encoded characters). */
static int safe_path(const char *p) {
  if (p[0] != '/' || strlen(p) > 200)
    return 0;
  for (const char *q = p; *q; q++) {
    if (*q == '/') {
      if (q[1] == '/' || q[1] == '.' || q[1] == '\0')
        return 0;
      continue;
    }
    if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
          (*q >= '0' && *q <= '9') || *q == '-' || *q == '_' || *q == '.'))
      return 0;
  }
  return 1;
}

static int text_reply(wsmsg_conn *c, int status, const char *extra,
                      const char *body) {
  char hdrs[256];
  snprintf(hdrs, sizeof(hdrs),
           "Content-Type: text/plain; charset=utf-8\r\n"
           "Cache-Control: no-store\r\n%s",
           extra);
  return wsmsg_http_respond(c, status, hdrs, body, strlen(body));
}

static int on_http(wsmsg_conn *c, const wsmsg_request *req, void *u) {
  (void)u;
  const char *path = wsmsg_request_path(req);
  const char *method = wsmsg_request_method(req);
  if (!strncmp(path, "/ws/", 4))
    return 0; /* the WebSocket endpoints: the upgrade goes on */
  int head = !strcmp(method, "HEAD");
  if (strcmp(method, "GET") != 0 && !head) {
    evloop_log(c, "HTTP %s %s: 405", method, path);
    return text_reply(c, 405, "Allow: GET, HEAD\r\n", "method not allowed\n");
  }
  if (!strcmp(path, "/healthz"))
    return text_reply(c, 200, "", "ok\n");
  if (!strcmp(path, "/asyncapi.json") && asyncapi_json)
    return wsmsg_http_respond(c, 200,
                              "Content-Type: application/json\r\n"
                              "Cache-Control: no-store\r\n",
                              asyncapi_json, strlen(asyncapi_json));
  if (!strcmp(path, "/"))
    path = "/index.html";
  char file[4400];
  int fd = -1;
  struct stat st;
  if (safe_path(path) && web_dir[0]) {
    snprintf(file, sizeof(file), "%s%s", web_dir, path);
    fd = open(file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
      close(fd);
      fd = -1;
    }
  }
  if (fd < 0) {
    evloop_log(c, "HTTP %s %s: 404", method, path);
    return text_reply(c, 404, "", "not found\n");
  }
  evloop_log(c, "HTTP %s %s: 200, %lld bytes", method, path,
             (long long)st.st_size);
  char hdrs[256];
  snprintf(hdrs, sizeof(hdrs),
           "Content-Type: %s\r\nCache-Control: no-cache\r\n"
           "X-Content-Type-Options: nosniff\r\n",
           content_type(path));
  sending *f = NULL;
  if (!head && st.st_size > 0) /* else wsmsg asks for no bytes */
    f = malloc(sizeof(*f));
  if (f) {
    f->kind = SLOT_FILE;
    f->fd = fd;
    f->left = (uint64_t)st.st_size;
    *evloop_app(c) = f;
  } else {
    close(fd);
    if (!head && st.st_size > 0)
      return 500;
  }
  int r = wsmsg_http_respond_stream(c, 200, hdrs, (int64_t)st.st_size,
                                    file_read, f);
  if (r && f) {
    slot_free(f);
    *evloop_app(c) = NULL;
  }
  return r ? 500 : 0;
}

/* The "web" directory next to this binary (examples/web for examples/
 * demo_server), if there is one. */
static void default_web_dir(void) {
  char exe[4000];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0)
    return;
  exe[n] = '\0';
  char *slash = strrchr(exe, '/');
  if (!slash)
    return;
  *slash = '\0';
  snprintf(web_dir, sizeof(web_dir), "%s/web", exe);
  struct stat st;
  if (stat(web_dir, &st) != 0 || !S_ISDIR(st.st_mode))
    web_dir[0] = '\0';
}

static void usage(void) {
  fprintf(stderr,
          "usage: demo_server [--host ADDR] [--port N] [--dir DIR] "
          "[--max-file BYTES]\n"
          "                   [--max-files N] [--max-total BYTES] "
          "[--max-client BYTES]\n"
          "                   [--receive-timeout MS] [--ping-interval MS] "
          "[--pong-timeout MS]\n"
          "                   [--handshake-timeout MS] [--close-timeout MS] "
          "[--quiet]\n"
          "                   [--no-deflate | --deflate "
          "on|low_memory|max_ratio] [--web DIR]\n"
          "                   " EVLOOP_USAGE "\n\n"
          "endpoints: /ws/chat /ws/file-transfer /ws/json-demo "
          "/ws/with-timeout /ws/echo /ws/room; GET /asyncapi.json\n"
          "timeouts in milliseconds (0 = off; not given: the library's "
          "default);\n--receive-timeout is the\n"
          "HEARTBEAT period of /ws/with-timeout (default 10000)\n"
          "/ws/file-transfer limits: --max-file 16 MiB per file, --max-files "
          "1000 and\n"
          "--max-total 256 MiB in the directory (files already there count),\n"
          "--max-client 64 MiB per connection; without --dir, a temporary\n"
          "directory removed at exit\n"
          "permessage-deflate (no context takeover) is on for every endpoint "
          "but\n/ws/file-transfer unless --no-deflate\n"
          "plain HTTP: GET / (the demo page) and the files of --web DIR\n"
          "(default: the web directory next to this binary), GET /healthz;\n"
          "--tls-cert/--tls-key: https:// and wss:// on the same port\n");
}

int main(int argc, char **argv) {
  server_opts so = SERVER_OPTS(8080);
  so.recv_to = 10000; /* the HEARTBEAT period */
  const char *dir_arg = NULL;
  evloop_opts lo = EVLOOP_OPTS("demo_server");
  lo.verbose = 1;
  lo.app_free = slot_free;
  default_web_dir();
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int more = i + 1 < argc;
    if (evloop_arg(&lo, argc, argv, &i))
      continue;
    int known = server_opts_arg(&so, "demo_server", argc, argv, &i);
    if (known > 0)
      continue; /* < 0: a --deflate value it does not know: the usage */
    if (known == 0 && !strcmp(a, "--dir") && more)
      dir_arg = argv[++i];
    else if (!strcmp(a, "--web") && more)
      snprintf(web_dir, sizeof(web_dir), "%s", argv[++i]);
    else if (!strcmp(a, "--max-file") && more)
      max_file = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(a, "--max-files") && more)
      max_files = strtoul(argv[++i], NULL, 10);
    else if (!strcmp(a, "--max-total") && more)
      max_total = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(a, "--max-client") && more)
      max_client = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(a, "--quiet") || !strcmp(a, "-q"))
      lo.verbose = 0;
    else {
      usage();
      return !strcmp(a, "--help") || !strcmp(a, "-h") ? 0 : 2;
    }
  }
  if (dir_arg) {
    snprintf(dir, sizeof(dir), "%s", dir_arg);
  } else {
    snprintf(dir, sizeof(dir), "/tmp/wsmsg-demo-XXXXXX");
    if (!mkdtemp(dir)) {
      perror("mkdtemp");
      return 1;
    }
  }
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || scan_dir() != 0) {
    fprintf(stderr, "demo_server: %s is not a directory\n", dir);
    return 1;
  }
  if (nfiles)
    fprintf(stderr,
            "demo_server: %s holds %lu upload(s), %llu bytes; new ones "
            "start at upload-%lu.bin\n",
            dir, nfiles, (unsigned long long)total_bytes, next_no + 1);

  char err[256];
  wsmsg_schema *model = NULL;
  if (wsmsg_schema_compile(MESSAGE_MODEL, sizeof(MESSAGE_MODEL) - 1, 0, &model,
                           err, sizeof(err)) != 0) {
    fprintf(stderr, "demo_server: schema: %s\n", err);
    if (!dir_arg)
      remove_dir();
    return 1;
  }
  wsmsg_endpoint *chat = wsmsg_endpoint_new(), *file = wsmsg_endpoint_new(),
                 *json = wsmsg_endpoint_new(), *tmo = wsmsg_endpoint_new(),
                 *echo = wsmsg_endpoint_new(), *roomep = wsmsg_endpoint_new();
  wsmsg_endpoint *all[] = {chat, file, json, tmo, echo, roomep};
  for (size_t i = 0; i < 6; i++) {
    common(all[i]);
    if (so.ping >= 0)
      wsmsg_endpoint_set_ping_interval(all[i], (uint32_t)so.ping);
    if (so.pong >= 0)
      wsmsg_endpoint_set_pong_timeout(all[i], (uint32_t)so.pong);
    if (so.close_to >= 0)
      wsmsg_endpoint_set_close_timeout(all[i], (uint32_t)so.close_to);
    /* uploads are often compressed already, and chunks arrive streamed:
     * the file endpoint stays plain */
    if (all[i] != file)
      wsmsg_endpoint_set_deflate(all[i], so.deflate);
  }
  wsmsg_endpoint_on_text(chat, chat_text);
  wsmsg_endpoint_on_chunk(file, file_chunk, WSMSG_STREAM_BINARY);
  wsmsg_endpoint_on_text(file, file_text);
  wsmsg_endpoint_set_max_message_size(file, max_file);
  wsmsg_endpoint_on_json(json, json_msg);
  wsmsg_endpoint_on_invalid(json, json_invalid);
  wsmsg_endpoint_set_schema(json, model);
  wsmsg_endpoint_set_extra(json, WSMSG_EXTRA_IGNORE); /* message.dict() */
  wsmsg_endpoint_on_text(tmo, timeout_text);
  wsmsg_endpoint_set_receive_timeout(tmo, (uint32_t)so.recv_to);
  wsmsg_endpoint_set_timeout_action(tmo, WSMSG_ON_TIMEOUT_HEARTBEAT,
                                    "HEARTBEAT");
  wsmsg_endpoint_on_text(echo, echo_text);
  wsmsg_endpoint_on_binary(echo, echo_binary);
  wsmsg_endpoint_on_open(roomep, room_open);
  wsmsg_endpoint_on_close(roomep, room_close);
  wsmsg_endpoint_on_text(roomep, room_text);

  wsmsg_server *srv = wsmsg_server_new();
  server_opts_apply_server(&so, srv);
  wsmsg_server_route(srv, "/ws/chat", chat);
  wsmsg_server_route(srv, "/ws/file-transfer", file);
  wsmsg_server_route(srv, "/ws/json-demo", json);
  wsmsg_server_route(srv, "/ws/with-timeout", tmo);
  wsmsg_server_route(srv, "/ws/echo", echo);
  wsmsg_server_route(srv, "/ws/room", roomep);
  json_t *info = json_pack(
      "{s:s, s:s, s:s}", "title", "wsmsg demo_server", "version",
      wsmsg_version(), "description",
      "The endpoints of the FastAPI WebSocket article, described by "
      "wsmsg_server_asyncapi.");
  json_t *described = wsmsg_server_asyncapi(srv, info);
  asyncapi_json = described ? json_dumps(described, JSON_INDENT(2)) : NULL;
  json_decref(described);
  json_decref(info);
  wsmsg_server_on_http(srv, on_http);
  fprintf(stderr, "demo_server: files go to %s\n", dir);
  if (web_dir[0])
    fprintf(stderr, "demo_server: the demo page is http%s://%s:%d/ (from %s)\n",
            lo.tls_cert ? "s" : "", so.host, so.port, web_dir);
  else
    fprintf(stderr, "demo_server: no web directory: GET / answers 404 "
                    "(--web DIR)\n");
  int r = evloop_serve(srv, so.host, so.port, &lo);
  wsmsg_server_free(srv);
  free(asyncapi_json);
  for (size_t i = 0; i < 6; i++)
    wsmsg_endpoint_free(all[i]);
  free(room);
  wsmsg_schema_free(model);
  if (!dir_arg) /* ours: leave nothing behind */
    remove_dir();
  return r;
}
