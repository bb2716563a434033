/* The HTTP/1.1 upgrade handshake of RFC 6455 section 4, server and client.
 *
 * The head of the request (or response) is accumulated incrementally until
 * the blank line, then parsed in place: names and values are NUL-terminated
 * inside the buffer, so the request view handed to on_handshake needs no
 * copies. */
#include "internal.h"

#include <nettle/base64.h>
#include <nettle/sha1.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* ---- accumulating and parsing an HTTP head ------------------------------ */

int wsm_http_feed(wsm_http *h, const wsmsg_mem *m, const uint8_t *d, size_t n,
                  size_t *used, int *status) {
  *used = 0;
  *status = 0;
  size_t skip = 0; /* empty lines before the start line are ignored
                      (RFC 7230 3.5) */
  while (h->len == 0 && skip < n && (d[skip] == '\r' || d[skip] == '\n'))
    skip++;
  if (skip) {
    int r = wsm_http_feed(h, m, d + skip, n - skip, used, status);
    *used += skip;
    return r;
  }
  size_t room = h->limit - h->len;
  size_t take = n < room ? n : room;
  if (h->cap < h->len + take + 1) {
    size_t ncap = h->cap ? h->cap : 512;
    while (ncap < h->len + take + 1)
      ncap *= 2;
    if (ncap > h->limit + 1)
      ncap = h->limit + 1;
    char *p = wsm_realloc(m, h->buf, h->cap, ncap);
    if (!p)
      return WSMSG_ERR_NOMEM;
    h->buf = p;
    h->cap = ncap;
  }
  memcpy(h->buf + h->len, d, take);
  size_t old = h->len;
  h->len += take;
  /* look for CRLF CRLF, starting just before the new bytes */
  size_t i = h->scan;
  for (; i + 4 <= h->len; i++) {
    if (h->buf[i] == '\r' && h->buf[i + 1] == '\n' && h->buf[i + 2] == '\r' &&
        h->buf[i + 3] == '\n') {
      size_t end = i + 4;
      *used = end - old;
      h->len = end;
      h->buf[end] = '\0';
      return 1;
    }
  }
  h->scan = h->len >= 3 ? h->len - 3 : 0;
  *used = take;
  if (h->len >= h->limit)
    *status = 431;
  return 0;
}

/* RFC 7230 tchar */
static bool is_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
      (c >= 'A' && c <= 'Z'))
    return true;
  return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

bool wsm_http_is_token(const char *s) {
  if (!s || !*s)
    return false;
  for (; *s; s++)
    if (!is_tchar((unsigned char)*s))
      return false;
  return true;
}

static char *trim(char *s, char *e) {
  while (s < e && (*s == ' ' || *s == '\t'))
    s++;
  while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
    e--;
  *e = '\0';
  return s;
}

/* Split the complete head into start line and headers.  0, or an HTTP status
 * (400/431; 500: out of memory) with *why set to a static reason. */
static int http_parse(wsm_http *h, const wsmsg_mem *m, const char **why) {
  char *p = h->buf;
  char *end = h->buf + h->len; /* points after the final CRLF CRLF */
  /* start line: three parts separated by single spaces (the third of a
   * response, the reason phrase, may hold spaces) */
  char *eol = strstr(p, "\r\n");
  if (!eol || eol == p) {
    *why = "malformed start line";
    return 400;
  }
  *eol = '\0';
  char *sp1 = strchr(p, ' ');
  char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
  if (!sp1 || !sp2 || sp1 == p || sp2 == sp1 + 1) {
    *why = "malformed start line";
    return 400;
  }
  *sp1 = *sp2 = '\0';
  h->line[0] = p;
  h->line[1] = sp1 + 1;
  h->line[2] = sp2 + 1;
  for (char *q = p; q < eol; q++) {
    if ((unsigned char)*q < 0x20 && *q != '\0') {
      *why = "control character in start line";
      return 400;
    }
  }
  /* count lines to size the header array */
  size_t lines = 0;
  for (char *q = eol + 2; q + 2 <= end; q++)
    if (q[0] == '\r' && q[1] == '\n')
      lines++;
  if (lines)
    lines--; /* the empty line */
  if (lines > h->max_headers) {
    *why = "too many header lines";
    return 431;
  }
  h->hdrs = wsm_calloc(m, (lines ? lines : 1) * sizeof(wsm_header));
  if (!h->hdrs) {
    *why = "out of memory";
    return 500;
  }
  p = eol + 2;
  while (p < end - 2) {
    eol = strstr(p, "\r\n");
    if (!eol) {
      *why = "malformed header line";
      return 400;
    }
    if (*p == ' ' || *p == '\t') {
      *why = "obsolete line folding";
      return 400;
    }
    char *colon = p;
    while (colon < eol && is_tchar((unsigned char)*colon))
      colon++;
    if (colon == p || colon == eol || *colon != ':') {
      *why = "malformed header line";
      return 400;
    }
    for (char *q = colon + 1; q < eol; q++) {
      unsigned char c = (unsigned char)*q;
      if ((c < 0x20 && c != '\t') || c == 0x7f) {
        *why = "control character in header value";
        return 400;
      }
    }
    *colon = '\0';
    h->hdrs[h->nhdrs].name = p;
    h->hdrs[h->nhdrs].value = trim(colon + 1, eol);
    h->nhdrs++;
    p = eol + 2;
  }
  return 0;
}

int wsm_http_parse(wsm_http *h, const wsmsg_mem *m, const char **why) {
  if (!h->parsed) {
    h->pwhy = NULL;
    h->pstatus = http_parse(h, m, &h->pwhy);
    h->parsed = true;
  }
  *why = h->pwhy;
  return h->pstatus;
}

void wsm_http_reset(wsm_http *h, const wsmsg_mem *m) {
  wsm_free(m, h->buf);
  wsm_free(m, h->hdrs);
  size_t limit = h->limit;
  uint32_t max_headers = h->max_headers;
  struct wsm_http_resp *resp = h->resp; /* http.c's, kept */
  memset(h, 0, sizeof(*h));
  h->limit = limit;
  h->max_headers = max_headers;
  h->resp = resp;
}

void wsm_http_free(wsm_http *h, const wsmsg_mem *m) {
  if (!h)
    return;
  wsm_free(m, h->buf);
  wsm_free(m, h->hdrs);
  wsm_free(m, h);
}

static const char *http_header(const wsm_http *h, const char *name) {
  for (size_t i = 0; i < h->nhdrs; i++)
    if (strcasecmp(h->hdrs[i].name, name) == 0)
      return h->hdrs[i].value;
  return NULL;
}

static size_t header_count(const wsm_http *h, const char *name) {
  size_t n = 0;
  for (size_t i = 0; i < h->nhdrs; i++)
    if (strcasecmp(h->hdrs[i].name, name) == 0)
      n++;
  return n;
}

/* Iterate over the comma-separated elements of one header value. */
static const char *next_elem(const char *s, size_t *len) {
  while (*s == ' ' || *s == '\t' || *s == ',')
    s++;
  if (!*s)
    return NULL;
  const char *e = s;
  while (*e && *e != ',')
    e++;
  const char *t = e;
  while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
    t--;
  *len = (size_t)(t - s);
  return s;
}

/* 1 if a comma-separated header list (all lines named `name`) holds token
 * `tok`, case-insensitively. */
static bool http_has_token(const wsm_http *h, const char *name,
                           const char *tok) {
  size_t tl = strlen(tok);
  for (size_t i = 0; i < h->nhdrs; i++) {
    if (strcasecmp(h->hdrs[i].name, name) != 0)
      continue;
    const char *s = h->hdrs[i].value;
    size_t len;
    while ((s = next_elem(s, &len)) != NULL) {
      if (len == tl && strncasecmp(s, tok, tl) == 0)
        return true;
      s += len;
    }
  }
  return false;
}

const char *wsm_http_reason(int s) {
  switch (s) {
  case 101:
    return "Switching Protocols";
  case 200:
    return "OK";
  case 201:
    return "Created";
  case 202:
    return "Accepted";
  case 204:
    return "No Content";
  case 206:
    return "Partial Content";
  case 301:
    return "Moved Permanently";
  case 302:
    return "Found";
  case 303:
    return "See Other";
  case 304:
    return "Not Modified";
  case 307:
    return "Temporary Redirect";
  case 308:
    return "Permanent Redirect";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 408:
    return "Request Timeout";
  case 410:
    return "Gone";
  case 413:
    return "Content Too Large";
  case 414:
    return "URI Too Long";
  case 415:
    return "Unsupported Media Type";
  case 416:
    return "Range Not Satisfiable";
  case 426:
    return "Upgrade Required";
  case 429:
    return "Too Many Requests";
  case 431:
    return "Request Header Fields Too Large";
  case 500:
    return "Internal Server Error";
  case 501:
    return "Not Implemented";
  case 502:
    return "Bad Gateway";
  case 503:
    return "Service Unavailable";
  case 504:
    return "Gateway Timeout";
  default:
    return s < 300   ? "OK"
           : s < 400 ? "Redirection"
           : s < 500 ? "Client Error"
                     : "Server Error";
  }
}

/* ---- Sec-WebSocket-Key / Accept ---------------------------------------- */

static bool key_valid(const char *key) {
  /* 16 bytes in base64: 22 significant characters and "==" */
  if (!key || strlen(key) != 24 || key[22] != '=' || key[23] != '=')
    return false;
  for (int i = 0; i < 22; i++) {
    char c = key[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
          (c >= '0' && c <= '9') || c == '+' || c == '/'))
      return false;
  }
  struct base64_decode_ctx b;
  uint8_t raw[BASE64_DECODE_LENGTH(24)];
  size_t n = 0;
  base64_decode_init(&b);
  if (!base64_decode_update(&b, &n, raw, 24, key) || !base64_decode_final(&b))
    return false;
  return n == 16;
}

int wsmsg_accept_key(const char *key, char *out, size_t out_size) {
  if (!key || !out || out_size < 29)
    return WSMSG_ERR_INVALID_ARG;
  struct sha1_ctx s;
  uint8_t dig[SHA1_DIGEST_SIZE];
  sha1_init(&s);
  sha1_update(&s, strlen(key), (const uint8_t *)key);
  sha1_update(&s, sizeof(WS_GUID) - 1, (const uint8_t *)WS_GUID);
  sha1_digest(&s, sizeof(dig), dig);
  base64_encode_raw(out, sizeof(dig), dig);
  out[BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE)] = '\0';
  return 0;
}

/* ---- server side ----------------------------------------------------------
 */

static void deny(wsm_hs_verdict *v, int status, const char *why) {
  v->status = status;
  v->why = why;
}

/* Append an HTTP head (or any text) to the output buffer. */
static int put(wsm_buf *out, wsm_pool *pool, const char *s) {
  return wsm_pbuf_append(out, pool, s, strlen(s));
}

/* printf an HTTP head into the output buffer: 0, WSMSG_ERR_NOMEM, or
 * WSMSG_ERR_INVALID_ARG if it would exceed 512 bytes. */
static int put_head(wsm_buf *out, wsm_pool *pool, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int put_head(wsm_buf *out, wsm_pool *pool, const char *fmt, ...) {
  char head[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(head, sizeof(head), fmt, ap);
  va_end(ap);
  if (n <= 0 || (size_t)n >= sizeof(head))
    return WSMSG_ERR_INVALID_ARG;
  return wsm_pbuf_append(out, pool, head, (size_t)n);
}

void wsm_hs_error_head(wsm_buf *out, wsm_pool *pool, int status,
                       const char *why) {
  /* best effort: the connection ends anyway */
  (void)put_head(out, pool,
                 "HTTP/1.1 %d %s\r\n"
                 "Content-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: %zu\r\n"
                 "%s"
                 "Connection: close\r\n\r\n%s\n",
                 status, wsm_http_reason(status), strlen(why) + 1,
                 status == 426 ? "Sec-WebSocket-Version: 13\r\n" : "", why);
}

int wsm_hs_accept_head(wsm_buf *out, wsm_pool *pool, const char *accept,
                       const char *sub, const char *ext) {
  return put_head(out, pool,
                  "HTTP/1.1 101 Switching Protocols\r\n"
                  "Upgrade: websocket\r\n"
                  "Connection: Upgrade\r\n"
                  "Sec-WebSocket-Accept: %s\r\n"
                  "%s%s%s%s%s%s\r\n",
                  accept, sub ? "Sec-WebSocket-Protocol: " : "", sub ? sub : "",
                  sub ? "\r\n" : "", ext ? "Sec-WebSocket-Extensions: " : "",
                  ext ? ext : "", ext ? "\r\n" : "");
}

static bool origin_allowed(const wsmsg_endpoint *ep, const char *origin) {
  if (ep->any_origin || ep->norigins == 0 || !origin)
    return true;
  for (size_t i = 0; i < ep->norigins; i++)
    if (strcasecmp(ep->origins[i], origin) == 0)
      return true;
  return false;
}

/* The endpoint's most preferred subprotocol among those offered. */
static const char *pick_subprotocol(const wsmsg_endpoint *ep,
                                    const wsm_http *h) {
  for (size_t k = 0; k < ep->nsubprotocols; k++)
    if (http_has_token(h, "Sec-WebSocket-Protocol", ep->subprotocols[k]))
      return ep->subprotocols[k];
  return NULL;
}

/* "HTTP/1.1 or higher" (RFC 6455 4.2.1): HTTP/1.x with x >= 1, a higher
 * minor version being processed as 1.1 (RFC 7230 2.6). */
static bool http_11_or_higher(const char *v) {
  if (strncmp(v, "HTTP/1.", 7) != 0 || !v[7])
    return false;
  unsigned long minor = 0;
  for (const char *p = v + 7; *p; p++) {
    if (*p < '0' || *p > '9' || minor > 1000)
      return false;
    minor = minor * 10 + (unsigned long)(*p - '0');
  }
  return minor >= 1;
}

/* The path-and-query of a request target: origin-form ("/chat?x") as is,
 * absolute-form ("http://host/chat?x", RFC 6455 4.2.1 and RFC 7230 5.3.2:
 * a server MUST accept it) from its path on ("/" if it has none); NULL for
 * anything else.  An absolute-form target without a path yields "", which
 * callers read as "/". */
static const char *origin_form(const char *t) {
  if (t[0] == '/')
    return t;
  static const char *const schemes[] = {"http://", "https://", "ws://",
                                        "wss://"};
  for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
    size_t n = strlen(schemes[i]);
    if (strncasecmp(t, schemes[i], n) != 0)
      continue;
    const char *auth = t + n;
    const char *end = auth + strcspn(auth, "/?");
    if (end == auth)
      return NULL; /* no host */
    return *end == '/' ? end : *end == '?' ? end : "";
  }
  return NULL;
}

/* An upgrade request has no body (RFC 6455 4.1 describes a GET whose
 * bytes after the head are frames; RFC 7230 3.3 says a request has a body
 * when it carries Content-Length or Transfer-Encoding).  A body would be
 * parsed as WebSocket frames, and a proxy in front may see the next
 * request where we see frames (smuggling): refuse it.  "Content-Length: 0"
 * is allowed (some clients send it). */
static bool has_body(const wsm_http *h) {
  for (size_t i = 0; i < h->nhdrs; i++) {
    if (strcasecmp(h->hdrs[i].name, "Transfer-Encoding") == 0)
      return true;
    if (strcasecmp(h->hdrs[i].name, "Content-Length") == 0) {
      const char *s = h->hdrs[i].value;
      if (!*s)
        return true;
      for (; *s; s++)
        if (*s != '0')
          return true;
    }
  }
  return false;
}

void wsm_hs_server_check(wsm_http *h, const wsmsg_mem *m,
                         const wsmsg_server *srv, wsm_hs_verdict *v) {
  memset(v, 0, sizeof(*v));
  const char *why = NULL;
  int st = wsm_http_parse(h, m, &why);
  if (st)
    return deny(v, st, why);
  if (strcmp(h->line[0], "GET") != 0)
    return deny(v, 400, "method must be GET");
  if (has_body(h))
    return deny(v, 400, "an upgrade request has no body");
  if (!http_11_or_higher(h->line[2]))
    return deny(v, 400, "HTTP/1.1 or higher required");
  const char *target = origin_form(h->line[1]);
  if (!target)
    return deny(v, 400, "request target must be a path or an http(s) URI");
  if (header_count(h, "Host") != 1 || !*http_header(h, "Host"))
    return deny(v, 400, "exactly one Host header required");
  if (!http_has_token(h, "Upgrade", "websocket"))
    return deny(v, 400, "Upgrade: websocket required");
  if (!http_has_token(h, "Connection", "upgrade"))
    return deny(v, 400, "Connection: Upgrade required");
  const char *ver = http_header(h, "Sec-WebSocket-Version");
  if (header_count(h, "Sec-WebSocket-Version") != 1 || strcmp(ver, "13") != 0)
    return deny(v, 426, "Sec-WebSocket-Version 13 required");
  const char *key = http_header(h, "Sec-WebSocket-Key");
  if (header_count(h, "Sec-WebSocket-Key") != 1 || !key_valid(key))
    return deny(v, 400, "Sec-WebSocket-Key must be 16 bytes in base64");

  const char *q = strchr(target, '?');
  size_t plen = q ? (size_t)(q - target) : strlen(target);
  v->query = q ? q + 1 : "";
  if (plen == 0) { /* "http://host" or "http://host?x": the root */
    target = "/";
    plen = 1;
  }
  v->path = target;
  v->path_len = plen;
  v->ep = wsm_server_lookup(srv, target, plen);
  if (!v->ep)
    return deny(v, 404, "no WebSocket endpoint at this path");
  if (header_count(h, "Origin") > 1 ||
      !origin_allowed(v->ep, http_header(h, "Origin")))
    return deny(v, 403, "origin not allowed");
  v->subprotocol = pick_subprotocol(v->ep, h);
  if (!v->subprotocol && v->ep->require_subprotocol)
    return deny(v, 400, "no supported subprotocol offered");
  wsmsg_accept_key(key, v->accept, sizeof(v->accept));
  wsm_pmd_negotiate(h->hdrs, h->nhdrs, &v->ep->pmd, &v->pmd, v->ext,
                    sizeof(v->ext));
  v->status = 101;
}

/* ---- client side --------------------------------------------------------- */

int wsm_hs_client_request(wsm_buf *out, wsm_pool *pool, wsm_client_hs *ch,
                          const wsmsg_endpoint *ep) {
  uint8_t raw[16];
  char key[32];
  if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
    return WSMSG_ERR_IO;
  base64_encode_raw(key, sizeof(raw), raw);
  key[24] = '\0';
  wsmsg_accept_key(key, ch->accept, sizeof(ch->accept));
  int r = 0;
  const char *parts[] = {"GET ",
                         ch->target,
                         " HTTP/1.1\r\nHost: ",
                         ch->host,
                         "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: ",
                         key,
                         "\r\nSec-WebSocket-Version: 13\r\n"};
  for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]) && !r; i++)
    r = put(out, pool, parts[i]);
  for (size_t i = 0; i < ep->nsubprotocols && !r; i++) {
    r = put(out, pool, i == 0 ? "Sec-WebSocket-Protocol: " : ", ");
    if (!r)
      r = put(out, pool, ep->subprotocols[i]);
    if (!r && i + 1 == ep->nsubprotocols)
      r = put(out, pool, "\r\n");
  }
  if (ep->pmd.on && !r) {
    char offer[160];
    wsm_pmd_offer(&ep->pmd, offer, sizeof(offer));
    r = put(out, pool, "Sec-WebSocket-Extensions: ");
    if (!r)
      r = put(out, pool, offer);
    if (!r)
      r = put(out, pool, "\r\n");
  }
  for (size_t i = 0; i < ch->nextra && !r; i++) {
    r = put(out, pool, ch->extra[i].name);
    if (!r)
      r = put(out, pool, ": ");
    if (!r)
      r = put(out, pool, ch->extra[i].value);
    if (!r)
      r = put(out, pool, "\r\n");
  }
  if (!r)
    r = put(out, pool, "\r\n");
  return r;
}

static int refuse(wsm_hs_verdict *v, const char *fmt, const char *arg) {
  snprintf(v->detail, sizeof(v->detail), fmt, arg);
  v->why = v->detail;
  return WSMSG_ERR_HANDSHAKE;
}

int wsm_hs_client_check(wsm_http *h, const wsmsg_mem *m,
                        const wsm_client_hs *ch, const wsmsg_endpoint *ep,
                        wsm_hs_verdict *v) {
  memset(v, 0, sizeof(*v));
  const char *why = NULL;
  if (http_parse(h, m, &why))
    return refuse(v, "malformed handshake response: %s", why);
  if (strncmp(h->line[0], "HTTP/1.", 7) != 0 || strlen(h->line[1]) != 3)
    return refuse(v, "malformed status line: %s", h->line[0]);
  v->status = atoi(h->line[1]);
  if (v->status != 101) {
    char st[64];
    snprintf(st, sizeof(st), "%d %.40s", v->status, h->line[2]);
    return refuse(v, "server answered %s instead of 101", st);
  }
  if (!http_has_token(h, "Upgrade", "websocket"))
    return refuse(v, "%s", "response lacks Upgrade: websocket");
  if (!http_has_token(h, "Connection", "upgrade"))
    return refuse(v, "%s", "response lacks Connection: Upgrade");
  const char *acc = http_header(h, "Sec-WebSocket-Accept");
  if (!acc || header_count(h, "Sec-WebSocket-Accept") != 1 ||
      strcmp(acc, ch->accept) != 0)
    return refuse(v, "%s", "Sec-WebSocket-Accept does not match our key");
  const char *ext_why = NULL;
  if (wsm_pmd_check_answer(h->hdrs, h->nhdrs, &ep->pmd, &v->pmd, &ext_why))
    return refuse(v, "%s", ext_why);
  const char *sub = http_header(h, "Sec-WebSocket-Protocol");
  if (sub) {
    bool ok = header_count(h, "Sec-WebSocket-Protocol") == 1;
    bool found = false;
    for (size_t i = 0; ok && i < ep->nsubprotocols; i++)
      if (strcmp(ep->subprotocols[i], sub) == 0)
        found = true;
    if (!ok || !found)
      return refuse(v, "server chose subprotocol '%.64s' we did not offer",
                    sub);
  }
  v->subprotocol = sub;
  return 0;
}

/* ---- for http.c ------------------------------------------------------------
 */

const char *wsm_http_get(const wsm_http *h, const char *name) {
  return http_header(h, name);
}

size_t wsm_http_count(const wsm_http *h, const char *name) {
  return header_count(h, name);
}

bool wsm_http_has(const wsm_http *h, const char *name, const char *tok) {
  return http_has_token(h, name, tok);
}

const char *wsm_http_target(const char *t) { return origin_form(t); }

/* ---- request view ---------------------------------------------------------
 */

const char *wsmsg_request_path(const wsmsg_request *req) {
  return req && req->path ? req->path : "";
}

const char *wsmsg_request_query(const wsmsg_request *req) {
  return req && req->query ? req->query : "";
}

const char *wsmsg_request_header(const wsmsg_request *req, const char *name) {
  if (!req || !name)
    return NULL;
  return http_header(req->http, name);
}

size_t wsmsg_request_header_count(const wsmsg_request *req) {
  return req ? req->http->nhdrs : 0;
}

const char *wsmsg_request_header_name(const wsmsg_request *req, size_t i) {
  if (!req || i >= req->http->nhdrs)
    return NULL;
  return req->http->hdrs[i].name;
}

const char *wsmsg_request_header_value(const wsmsg_request *req, size_t i) {
  if (!req || i >= req->http->nhdrs)
    return NULL;
  return req->http->hdrs[i].value;
}

int wsmsg_request_cookie(const wsmsg_request *req, const char *name, char *out,
                         size_t out_size) {
  if (!req || !name || !*name || !out || !out_size)
    return WSMSG_ERR_INVALID_ARG;
  size_t nl = strlen(name);
  const wsm_http *h = req->http;
  for (size_t i = 0; i < h->nhdrs; i++) {
    if (strcasecmp(h->hdrs[i].name, "Cookie") != 0)
      continue;
    /* cookie-string: name=value pairs separated by "; " */
    const char *s = h->hdrs[i].value;
    while (*s) {
      while (*s == ' ' || *s == ';')
        s++;
      const char *eq = strchr(s, '=');
      const char *semi = strchr(s, ';');
      if (!semi)
        semi = s + strlen(s);
      if (eq && eq < semi && (size_t)(eq - s) == nl &&
          memcmp(s, name, nl) == 0) {
        const char *v = eq + 1, *ve = semi;
        if (ve - v >= 2 && *v == '"' && ve[-1] == '"') {
          v++;
          ve--;
        }
        size_t vl = (size_t)(ve - v);
        if (vl + 1 > out_size)
          return WSMSG_ERR_INVALID_ARG;
        memcpy(out, v, vl);
        out[vl] = '\0';
        return (int)vl;
      }
      s = semi;
    }
  }
  return WSMSG_ERR_NOT_FOUND;
}
