/* The HTTP/1.1 upgrade handshake of RFC 6455 section 4, server and client.
 *
 * The head of the request (or response) is accumulated incrementally until
 * the blank line, then parsed in place: names and values are NUL-terminated
 * inside the buffer, so the request view handed to on_handshake needs no
 * copies. */
#include "internal.h"

#include <nettle/base64.h>
#include <nettle/sha1.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* ---- accumulating and parsing an HTTP head ------------------------------ */

int wsm_http_feed(wsm_http *h, const wsmsg_mem *m, const uint8_t *d, size_t n,
                  size_t *used) {
  *used = 0;
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
    return 431;
  return 0;
}

static bool is_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
      (c >= 'A' && c <= 'Z'))
    return true;
  return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static char *trim(char *s, char *e) {
  while (s < e && (*s == ' ' || *s == '\t'))
    s++;
  while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
    e--;
  *e = '\0';
  return s;
}

int wsm_http_parse(wsm_http *h, const wsmsg_mem *m, const char **why) {
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

void wsm_http_free(wsm_http *h, const wsmsg_mem *m) {
  if (!h)
    return;
  wsm_free(m, h->buf);
  wsm_free(m, h->hdrs);
  wsm_free(m, h);
}

const char *wsm_http_header(const wsm_http *h, const char *name) {
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

bool wsm_http_has_token(const wsm_http *h, const char *name, const char *tok) {
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

const char *wsm_http_reason(int status) {
  switch (status) {
  case 101:
    return "Switching Protocols";
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
  case 426:
    return "Upgrade Required";
  case 429:
    return "Too Many Requests";
  case 431:
    return "Request Header Fields Too Large";
  case 500:
    return "Internal Server Error";
  case 503:
    return "Service Unavailable";
  default:
    return status >= 500 ? "Server Error" : "Client Error";
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

static int queue_str(wsmsg_conn *c, const char *s) {
  return wsm_pbuf_append(&c->out, c->pool, s, strlen(s));
}

/* Queue an error response; the connection ends once it is written. */
static int reject(wsmsg_conn *c, int status, const char *why) {
  char head[512];
  int n = snprintf(head, sizeof(head),
                   "HTTP/1.1 %d %s\r\n"
                   "Content-Type: text/plain; charset=utf-8\r\n"
                   "Content-Length: %zu\r\n"
                   "%s"
                   "Connection: close\r\n\r\n%s\n",
                   status, wsm_http_reason(status), strlen(why) + 1,
                   status == 426 ? "Sec-WebSocket-Version: 13\r\n" : "", why);
  if (n > 0 && (size_t)n < sizeof(head))
    (void)queue_str(c, head);
  c->http_status = status;
  char detail[160];
  snprintf(detail, sizeof(detail), "handshake rejected with %d: %s", status,
           why);
  wsm_conn_set_error(c, WSMSG_ERR_HANDSHAKE, detail);
  c->state = WSMSG_STATE_CLOSED;
  return status;
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
static const char *pick_subprotocol(const wsmsg_endpoint *ep, const wsm_http *h,
                                    bool *offered) {
  *offered = header_count(h, "Sec-WebSocket-Protocol") > 0;
  for (size_t k = 0; k < ep->nsubprotocols; k++)
    if (wsm_http_has_token(h, "Sec-WebSocket-Protocol", ep->subprotocols[k]))
      return ep->subprotocols[k];
  return NULL;
}

static int store_names(wsmsg_conn *c, const char *path, size_t plen,
                       const char *query, const char *sub) {
  size_t ql = strlen(query), sl = sub ? strlen(sub) : 0;
  char *d = wsm_malloc(c->mem, plen + ql + sl + 3);
  if (!d)
    return WSMSG_ERR_NOMEM;
  memcpy(d, path, plen);
  d[plen] = '\0';
  memcpy(d + plen + 1, query, ql + 1);
  if (sub)
    memcpy(d + plen + ql + 2, sub, sl + 1);
  wsm_free(c->mem, c->path);
  c->path = d;
  c->query = d + plen + 1;
  c->subprotocol = sub ? d + plen + ql + 2 : NULL;
  return 0;
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

int wsm_hs_server_respond(wsmsg_conn *c) {
  wsm_http *h = c->hs;
  const char *why = NULL;
  int st = wsm_http_parse(h, c->mem, &why);
  if (st)
    return reject(c, st, why);
  if (strcmp(h->line[0], "GET") != 0)
    return reject(c, 400, "method must be GET");
  if (!http_11_or_higher(h->line[2]))
    return reject(c, 400, "HTTP/1.1 or higher required");
  const char *target = origin_form(h->line[1]);
  if (!target)
    return reject(c, 400, "request target must be a path or an http(s) URI");
  if (header_count(h, "Host") != 1 || !*wsm_http_header(h, "Host"))
    return reject(c, 400, "exactly one Host header required");
  if (!wsm_http_has_token(h, "Upgrade", "websocket"))
    return reject(c, 400, "Upgrade: websocket required");
  if (!wsm_http_has_token(h, "Connection", "upgrade"))
    return reject(c, 400, "Connection: Upgrade required");
  const char *ver = wsm_http_header(h, "Sec-WebSocket-Version");
  if (header_count(h, "Sec-WebSocket-Version") != 1 || strcmp(ver, "13") != 0)
    return reject(c, 426, "Sec-WebSocket-Version 13 required");
  const char *key = wsm_http_header(h, "Sec-WebSocket-Key");
  if (header_count(h, "Sec-WebSocket-Key") != 1 || !key_valid(key))
    return reject(c, 400, "Sec-WebSocket-Key must be 16 bytes in base64");

  const char *q = strchr(target, '?');
  size_t plen = q ? (size_t)(q - target) : strlen(target);
  const char *query = q ? q + 1 : "";
  if (plen == 0) { /* "http://host" or "http://host?x": the root */
    target = "/";
    plen = 1;
  }
  wsmsg_endpoint *ep = wsm_server_lookup(c->srv, target, plen);
  if (!ep)
    return reject(c, 404, "no WebSocket endpoint at this path");
  atomic_store(&ep->frozen, 1);
  c->ep = ep;
  if (header_count(h, "Origin") > 1 ||
      !origin_allowed(ep, wsm_http_header(h, "Origin")))
    return reject(c, 403, "origin not allowed");
  bool offered;
  const char *sub = pick_subprotocol(ep, h, &offered);
  if (!sub && ep->require_subprotocol)
    return reject(c, 400, "no supported subprotocol offered");
  if (store_names(c, target, plen, query, sub))
    return reject(c, 500, "out of memory");
  if (ep->on_handshake) {
    wsmsg_request req = {h, c->path, c->query};
    int r = ep->on_handshake(c, &req, c->user);
    if (r != 0) {
      if (r < 400 || r > 599)
        r = 500;
      return reject(c, r, "rejected by the application");
    }
  }
  char accept[32];
  wsmsg_accept_key(key, accept, sizeof(accept));
  char head[256];
  int n = snprintf(head, sizeof(head),
                   "HTTP/1.1 101 Switching Protocols\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: %s\r\n"
                   "%s%s%s\r\n",
                   accept, sub ? "Sec-WebSocket-Protocol: " : "",
                   sub ? sub : "", sub ? "\r\n" : "");
  if (n <= 0 || (size_t)n >= sizeof(head) || queue_str(c, head))
    return reject(c, 500, "out of memory");
  c->http_status = 101;
  return wsm_conn_opened(c);
}

/* ---- client side --------------------------------------------------------- */

int wsm_hs_client_request(wsmsg_conn *c) {
  wsm_client_hs *ch = c->chs;
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
    r = queue_str(c, parts[i]);
  const wsmsg_endpoint *ep = c->ep;
  for (size_t i = 0; i < ep->nsubprotocols && !r; i++) {
    r = queue_str(c, i == 0 ? "Sec-WebSocket-Protocol: " : ", ");
    if (!r)
      r = queue_str(c, ep->subprotocols[i]);
    if (!r && i + 1 == ep->nsubprotocols)
      r = queue_str(c, "\r\n");
  }
  for (size_t i = 0; i < ch->nextra && !r; i++) {
    r = queue_str(c, ch->extra[i].name);
    if (!r)
      r = queue_str(c, ": ");
    if (!r)
      r = queue_str(c, ch->extra[i].value);
    if (!r)
      r = queue_str(c, "\r\n");
  }
  if (!r)
    r = queue_str(c, "\r\n");
  return r;
}

static int client_fail(wsmsg_conn *c, const char *fmt, const char *arg) {
  char detail[200];
  snprintf(detail, sizeof(detail), fmt, arg);
  wsm_conn_set_error(c, WSMSG_ERR_HANDSHAKE, detail);
  return WSMSG_ERR_HANDSHAKE;
}

int wsm_hs_client_verify(wsmsg_conn *c) {
  wsm_http *h = c->hs;
  const char *why = NULL;
  if (wsm_http_parse(h, c->mem, &why))
    return client_fail(c, "malformed handshake response: %s", why);
  if (strncmp(h->line[0], "HTTP/1.", 7) != 0 || strlen(h->line[1]) != 3)
    return client_fail(c, "malformed status line: %s", h->line[0]);
  c->http_status = atoi(h->line[1]);
  if (c->http_status != 101) {
    char st[64];
    snprintf(st, sizeof(st), "%d %.40s", c->http_status, h->line[2]);
    return client_fail(c, "server answered %s instead of 101", st);
  }
  if (!wsm_http_has_token(h, "Upgrade", "websocket"))
    return client_fail(c, "%s", "response lacks Upgrade: websocket");
  if (!wsm_http_has_token(h, "Connection", "upgrade"))
    return client_fail(c, "%s", "response lacks Connection: Upgrade");
  const char *acc = wsm_http_header(h, "Sec-WebSocket-Accept");
  if (!acc || header_count(h, "Sec-WebSocket-Accept") != 1 ||
      strcmp(acc, c->chs->accept) != 0)
    return client_fail(c, "%s", "Sec-WebSocket-Accept does not match our key");
  if (wsm_http_header(h, "Sec-WebSocket-Extensions"))
    return client_fail(c, "%s", "server chose an extension we did not offer");
  const char *sub = wsm_http_header(h, "Sec-WebSocket-Protocol");
  if (sub) {
    bool ok = header_count(h, "Sec-WebSocket-Protocol") == 1;
    bool found = false;
    for (size_t i = 0; ok && i < c->ep->nsubprotocols; i++)
      if (strcmp(c->ep->subprotocols[i], sub) == 0)
        found = true;
    if (!ok || !found)
      return client_fail(c, "server chose subprotocol '%.64s' we did not offer",
                         sub);
  }
  const char *target = c->chs->target;
  const char *q = strchr(target, '?');
  size_t plen = q ? (size_t)(q - target) : strlen(target);
  if (store_names(c, target, plen, q ? q + 1 : "", sub))
    return WSMSG_ERR_NOMEM;
  return 0;
}

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
  return wsm_http_header(req->http, name);
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
