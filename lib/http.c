/* Plain HTTP beside the WebSocket upgrade (wsmsg_server_on_http).
 *
 * A server connection's request head is received and parsed by the
 * handshake code as always (handshake.c: same limits, same timeout, same
 * parser).  Once it is complete, conn.c offers it here first: the host's
 * on_http hook may answer it with a response of its own (a page, a file, a
 * health check, a 401 for an upgrade it refuses) or let it through to the
 * WebSocket checks.  An answered request leaves the connection CONNECTING
 * and ready for the next head (HTTP/1.1 keep-alive) or CLOSED once the
 * response is written; once the server drains (wsmsg_server_drain) every
 * response says Connection: close and is the connection's last.
 *
 * Responses go one at a time: while one is being written (its bytes pending,
 * or its body still being pulled from the host's read callback), the
 * connection reads nothing (wsmsg_conn_want_read is 0) and pipelined bytes
 * fed anyway are kept in a stash, bounded by the maximum request size.  The
 * stash is answered from wsmsg_conn_pending once the output drained, so a
 * flood of pipelined requests cannot make the output grow without bound. */
#include "internal.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define BODY_CHUNK 16384 /* bytes pulled from a body source per call */
#define BODY_LOW 65536   /* pull while less than this is pending */

enum { CB_NONE = 0, CB_HTTP = 1, CB_HANDSHAKE = 2 };

typedef struct wsm_http_resp {
  bool responded; /* the current request was answered */
  bool served;    /* some request on this connection was answered */
  bool keep;      /* keep-alive after the current response */
  bool overflow;  /* pipelined bytes overflowed the stash: close after */
  bool last;      /* close after the current (or stashed) request */
  int status;
  /* streamed body */
  wsmsg_read_cb cb;
  void *user;
  bool paused;
  bool chunked;
  int64_t left; /* bytes still due, or -1 if unknown (chunked/close) */
  uint8_t *chunk;
  /* pipelined bytes, answered once the output drained */
  uint8_t *stash;
  size_t stash_len, stash_cap;
} wsm_http_resp;

/* ---- the hook ---- */

int wsmsg_server_on_http(wsmsg_server *srv, wsmsg_http_cb cb) {
  if (!srv)
    return WSMSG_ERR_INVALID_ARG;
  if (atomic_load(&srv->frozen))
    return WSMSG_ERR_STATE;
  srv->on_http = cb;
  return 0;
}

const char *wsmsg_request_method(const wsmsg_request *req) {
  return req && req->http && req->http->line[0] ? req->http->line[0] : "";
}

/* 10 for HTTP/1.0, 11 for HTTP/1.1 and higher minor versions, else 0. */
static int req_version(const char *v) {
  if (strncmp(v, "HTTP/1.", 7) != 0 || !v[7])
    return 0;
  unsigned long minor = 0;
  for (const char *p = v + 7; *p; p++) {
    if (*p < '0' || *p > '9' || minor > 1000)
      return 0;
    minor = minor * 10 + (unsigned long)(*p - '0');
  }
  return minor ? 11 : 10;
}

/* Does the request announce a body?  (Transfer-Encoding, or a
 * Content-Length other than 0.)  Bodies are not read: such a request is
 * left to the handshake checks, which answer 400 and close. */
static bool has_body(const wsm_http *h) {
  if (wsm_http_get(h, "Transfer-Encoding"))
    return true;
  size_t n = wsm_http_count(h, "Content-Length");
  if (n == 0)
    return false;
  if (n > 1)
    return true;
  const char *v = wsm_http_get(h, "Content-Length");
  if (!*v)
    return true;
  for (; *v; v++)
    if (*v != '0')
      return true;
  return false;
}

/* The state lives in the request head's struct (wsm_http), which exists
 * while the connection is CONNECTING (or closed without opening): an open
 * connection pays nothing for it. */
static wsm_http_resp *hr_of(const wsmsg_conn *c) {
  return c->hs ? c->hs->resp : NULL;
}

static wsm_http_resp *resp_of(wsmsg_conn *c) {
  if (!c->hs)
    return NULL;
  if (!c->hs->resp)
    c->hs->resp = wsm_calloc(c->mem, sizeof(wsm_http_resp));
  return c->hs->resp;
}

/* wsmsg_server_drain was called on the connection's server. */
static bool draining(const wsmsg_conn *c) {
  return c->srv && atomic_load(&c->srv->draining);
}

/* The response is complete (all of it queued): ready the connection for
 * the next request, or let it close once the output is written. */
static void finish(wsmsg_conn *c) {
  wsm_http_resp *hr = hr_of(c);
  hr->responded = false;
  hr->served = true;
  c->t_created = wsm_now(c); /* the next head's (or the drain's) period */
  /* A response being written when the server closed all (drain) was
   * queued as keep-alive: close after it all the same, so a balancer's or
   * a browser's connection cannot keep a draining process alive.  A request
   * already pipelined behind it is answered first (with Connection: close,
   * see respond) and is then the last. */
  if (!hr->keep || hr->overflow || (hr->last && !hr->stash_len) ||
      c->state != WSMSG_STATE_CONNECTING) {
    c->state = WSMSG_STATE_CLOSED;
    wsm_free(c->mem, hr->stash);
    hr->stash = NULL;
    hr->stash_len = hr->stash_cap = 0;
  } else {
    wsm_http_reset(c->hs, c->mem);
  }
  wsm_timers_touch(c);
}

static void end_body(wsmsg_conn *c) {
  wsm_http_resp *hr = hr_of(c);
  hr->cb = NULL;
  hr->user = NULL;
  hr->paused = false;
  wsm_free(c->mem, hr->chunk);
  hr->chunk = NULL;
}

static void body_failed(wsmsg_conn *c, const char *why) {
  end_body(c);
  /* the response cannot be framed any more: cut it off */
  wsm_conn_abort_err(c, WSMSG_ERR_ABORTED, why);
}

int wsm_http_offer(wsmsg_conn *c) {
  const wsmsg_server *srv = c->srv;
  wsm_http *h = c->hs;
  const char *why;
  if (!srv || !srv->on_http || wsm_http_parse(h, c->mem, &why))
    return 1;
  const char *method = h->line[0];
  int ver = req_version(h->line[2]);
  const char *t = wsm_http_target(h->line[1]);
  if (!ver || !t || !wsm_http_is_token(method) || has_body(h) ||
      (ver == 11 && wsm_http_count(h, "Host") != 1))
    return 1;
  wsm_http_resp *hr = resp_of(c);
  if (!hr) {
    wsm_conn_abort_err(c, WSMSG_ERR_NOMEM, "out of memory for a request");
    return WSMSG_ERR_NOMEM;
  }
  /* path and query, NUL-terminated in place for the hook's view (the '?'
   * is put back for the handshake checks) */
  char *q = (char *)strchr(t, '?');
  if (q)
    *q = '\0';
  wsmsg_request req = {h, *t ? t : "/", q ? q + 1 : ""};
  hr->responded = false;
  c->http_cb = CB_HTTP;
  int st = srv->on_http(c, &req, c->user);
  c->http_cb = CB_NONE;
  if (q)
    *q = '?';
  if (c->aborted || c->state == WSMSG_STATE_CLOSED)
    return c->error ? c->error : WSMSG_ERR_CLOSED;
  if (hr->responded) {
    if (!hr->cb)
      finish(c);
    return 0;
  }
  if (st == 0)
    return 1; /* declined: the upgrade checks (or today's 400/404) */
  if (st < 400 || st > 599)
    st = 500;
  return wsm_conn_reject(c, st, wsm_http_reason(st), WSMSG_ERR_HANDSHAKE, NULL);
}

int wsm_http_denied(const wsmsg_conn *c) {
  const wsm_http_resp *hr = hr_of(c);
  return hr && hr->responded ? hr->status : 0;
}

/* ---- responses ---- */

static bool tchar(unsigned char ch) {
  return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
         (ch >= 'A' && ch <= 'Z') ||
         (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* Check the host's header lines; *close if one says "Connection: close". */
static int check_headers(const char *s, bool *close) {
  *close = false;
  if (!s)
    return 0;
  while (*s) {
    const char *eol = strstr(s, "\r\n");
    if (!eol)
      return WSMSG_ERR_INVALID_ARG;
    const char *colon = s;
    while (colon < eol && tchar((unsigned char)*colon))
      colon++;
    if (colon == s || colon == eol || *colon != ':')
      return WSMSG_ERR_INVALID_ARG;
    for (const char *p = colon + 1; p < eol; p++) {
      unsigned char ch = (unsigned char)*p;
      if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
        return WSMSG_ERR_INVALID_ARG;
    }
    size_t nl = (size_t)(colon - s);
    if ((nl == 14 && !strncasecmp(s, "Content-Length", nl)) ||
        (nl == 17 && !strncasecmp(s, "Transfer-Encoding", nl)))
      return WSMSG_ERR_INVALID_ARG;
    if (nl == 10 && !strncasecmp(s, "Connection", nl)) {
      const char *v = colon + 1, *e = eol;
      while (v < e && (*v == ' ' || *v == '\t'))
        v++;
      while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
      if (e - v != 5 || strncasecmp(v, "close", 5) != 0)
        return WSMSG_ERR_INVALID_ARG;
      *close = true;
    }
    s = eol + 2;
  }
  return 0;
}

static int put(wsmsg_conn *c, const void *d, size_t n) {
  if (!n)
    return 0;
  bool was_empty = c->out.off == c->out.len;
  int r = wsm_pbuf_append(&c->out, c->pool, d, n);
  if (!r && was_empty)
    wsm_write_started(c); /* the write timeout runs from now */
  return r;
}

/* Queue the response head (and a fixed body); set up a streamed one. */
static int respond(wsmsg_conn *c, int status, const char *headers,
                   const void *body, size_t len, bool stream, int64_t length,
                   wsmsg_read_cb cb, void *user) {
  if (!c || c->client)
    return WSMSG_ERR_INVALID_ARG;
  if (c->http_cb == CB_NONE || c->state != WSMSG_STATE_CONNECTING || !c->hs ||
      (hr_of(c) && hr_of(c)->responded))
    return WSMSG_ERR_STATE;
  bool nobody = status == 204 || status == 304;
  bool close = false;
  if (status < 200 || status > 599 || (nobody && (len || stream)) ||
      check_headers(headers, &close))
    return WSMSG_ERR_INVALID_ARG;
  wsm_http_resp *hr = resp_of(c);
  if (!hr)
    return WSMSG_ERR_NOMEM;
  const wsm_http *h = c->hs;
  bool head = strcmp(h->line[0], "HEAD") == 0;
  bool v10 = req_version(h->line[2]) == 10;
  bool keep = v10 ? wsm_http_has(h, "Connection", "keep-alive") &&
                        !wsm_http_has(h, "Connection", "close")
                  : !wsm_http_has(h, "Connection", "close");
  /* a draining server (wsmsg_server_drain) answers, then closes */
  if (close || c->http_cb == CB_HANDSHAKE || hr->overflow || hr->last ||
      draining(c))
    keep = false;
  bool chunked = false;
  char framing[64] = "";
  if (nobody) {
    /* no body, no Content-Length */
  } else if (!stream || length >= 0) {
    snprintf(framing, sizeof(framing), "Content-Length: %llu\r\n",
             stream ? (unsigned long long)length : (unsigned long long)len);
  } else if (!v10) {
    if (!head)
      snprintf(framing, sizeof(framing), "Transfer-Encoding: chunked\r\n");
    chunked = !head;
  } else {
    keep = false; /* close-delimited */
  }
  char line[96];
  snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status,
           wsm_http_reason(status));
  const char *conn_hdr = !keep ? (close ? "" : "Connection: close\r\n")
                         : v10 ? "Connection: keep-alive\r\n"
                               : "";
  int r = put(c, line, strlen(line));
  if (!r && headers)
    r = put(c, headers, strlen(headers));
  if (!r)
    r = put(c, framing, strlen(framing));
  if (!r)
    r = put(c, conn_hdr, strlen(conn_hdr));
  if (!r)
    r = put(c, "\r\n", 2);
  if (!r && !stream && !head && !nobody)
    r = put(c, body, len);
  if (!r && stream && !head && length != 0) {
    hr->chunk = wsm_malloc(c->mem, BODY_CHUNK);
    if (!hr->chunk)
      r = WSMSG_ERR_NOMEM;
  }
  if (r) {
    wsm_conn_abort_err(c, WSMSG_ERR_NOMEM, "out of memory for a response");
    return WSMSG_ERR_NOMEM;
  }
  if (stream && !head && length != 0) {
    hr->cb = cb;
    hr->user = user;
    hr->paused = false;
    hr->chunked = chunked;
    hr->left = length;
  }
  hr->responded = true;
  hr->keep = keep;
  hr->status = status;
  c->http_status = status;
  return 0;
}

int wsmsg_http_respond(wsmsg_conn *c, int status, const char *headers,
                       const void *body, size_t len) {
  if (!body && len)
    return WSMSG_ERR_INVALID_ARG;
  return respond(c, status, headers, body, len, false, 0, NULL, NULL);
}

int wsmsg_http_respond_stream(wsmsg_conn *c, int status, const char *headers,
                              int64_t length, wsmsg_read_cb cb, void *user) {
  if (!cb || length < -1)
    return WSMSG_ERR_INVALID_ARG;
  return respond(c, status, headers, NULL, 0, true, length, cb, user);
}

/* ---- the body and pipelined requests, pulled by wsmsg_conn_pending ---- */

static void pull_body(wsmsg_conn *c) {
  wsm_http_resp *hr = hr_of(c);
  for (int guard = 0; guard < 64; guard++) {
    if (!hr->cb || hr->paused)
      return;
    if (c->aborted) {
      end_body(c);
      return;
    }
    if (c->out.len - c->out.off >= BODY_LOW)
      return;
    size_t want = BODY_CHUNK;
    if (hr->left >= 0 && (uint64_t)hr->left < want)
      want = (size_t)hr->left;
    int eof = 0;
    int64_t n = hr->cb(c, hr->chunk, want, &eof, hr->user);
    if (n < 0 || (uint64_t)n > want)
      return body_failed(c, "HTTP body source failed");
    if (n == 0 && !eof) {
      hr->paused = true;
      return;
    }
    int r = 0;
    if (hr->chunked && n > 0) {
      char sz[24];
      int k = snprintf(sz, sizeof(sz), "%llx\r\n", (unsigned long long)n);
      r = put(c, sz, (size_t)k);
      if (!r)
        r = put(c, hr->chunk, (size_t)n);
      if (!r)
        r = put(c, "\r\n", 2);
    } else {
      r = put(c, hr->chunk, (size_t)n);
    }
    if (r)
      return body_failed(c, "out of memory for a response");
    if (hr->left >= 0) {
      hr->left -= n;
      if (eof && hr->left > 0)
        return body_failed(c, "HTTP body source ended before its length");
      if (hr->left == 0)
        eof = 1;
    }
    if (eof) {
      if (hr->chunked && put(c, "0\r\n\r\n", 5))
        return body_failed(c, "out of memory for a response");
      end_body(c);
      finish(c);
      return;
    }
  }
}

void wsm_http_pull(wsmsg_conn *c) {
  wsm_http_resp *hr = hr_of(c);
  if (!hr)
    return;
  pull_body(c);
  if (hr->cb || c->out.len != c->out.off || !hr->stash_len ||
      c->state != WSMSG_STATE_CONNECTING || c->aborted)
    return;
  /* the output drained: answer the next pipelined request */
  uint8_t *d = hr->stash;
  size_t n = hr->stash_len;
  hr->stash = NULL;
  hr->stash_len = hr->stash_cap = 0;
  (void)wsmsg_conn_recv(c, d, n); /* what follows it is stashed again */
  wsm_free(c->mem, d);
  if (hr_of(c)) /* (gone if the request was an upgrade) */
    pull_body(c);
}

int wsm_http_stash(wsmsg_conn *c, const uint8_t *d, size_t n) {
  wsm_http_resp *hr = hr_of(c);
  if (!n || hr->overflow)
    return 0;
  size_t limit = c->srv ? c->srv->max_request : 8192;
  if (hr->stash_len + n > limit) {
    /* more than one request head's worth: answer no more of them */
    hr->overflow = true;
    wsm_free(c->mem, hr->stash);
    hr->stash = NULL;
    hr->stash_len = hr->stash_cap = 0;
    if (!hr->responded && !hr->cb) /* the last response is queued whole */
      c->state = WSMSG_STATE_CLOSED;
    return 0;
  }
  if (hr->stash_len + n > hr->stash_cap) {
    size_t cap = hr->stash_len + n;
    uint8_t *p = wsm_realloc(c->mem, hr->stash, hr->stash_cap, cap);
    if (!p) {
      wsm_conn_abort_err(c, WSMSG_ERR_NOMEM, "out of memory for a request");
      return WSMSG_ERR_NOMEM;
    }
    hr->stash = p;
    hr->stash_cap = cap;
  }
  memcpy(hr->stash + hr->stash_len, d, n);
  hr->stash_len += n;
  return 0;
}

bool wsm_http_busy(const wsmsg_conn *c) {
  const wsm_http_resp *hr = hr_of(c);
  return hr && c->state == WSMSG_STATE_CONNECTING &&
         (hr->cb || hr->stash_len || c->out.len != c->out.off);
}

bool wsm_http_want_write(const wsmsg_conn *c) {
  const wsm_http_resp *hr = hr_of(c);
  return hr && !c->aborted &&
         ((hr->cb && !hr->paused) ||
          (hr->stash_len && c->out.len == c->out.off &&
           c->state == WSMSG_STATE_CONNECTING));
}

bool wsm_http_body_pending(const wsmsg_conn *c) {
  const wsm_http_resp *hr = hr_of(c);
  return hr && hr->cb && !c->aborted;
}

bool wsm_http_served(const wsmsg_conn *c) {
  const wsm_http_resp *hr = hr_of(c);
  return hr && (hr->served || hr->cb);
}

int wsm_http_resume(wsmsg_conn *c) {
  wsm_http_resp *hr = hr_of(c);
  if (!hr || !hr->cb)
    return WSMSG_ERR_STATE;
  hr->paused = false;
  return 0;
}

void wsm_http_last(wsmsg_conn *c) {
  wsm_http_resp *hr = hr_of(c);
  if (!hr || c->aborted || c->state != WSMSG_STATE_CONNECTING)
    return;
  hr->last = true;
  /* the whole answer is queued already: closed once it is written (a
   * streamed body, or a request the hook is answering now, ends in
   * finish; a stashed request is answered first) */
  if (!hr->responded && !hr->cb && !hr->stash_len)
    c->state = WSMSG_STATE_CLOSED;
}

void wsm_http_free_resp(wsmsg_conn *c) {
  wsm_http_resp *hr = hr_of(c);
  if (!hr)
    return;
  wsm_free(c->mem, hr->chunk);
  wsm_free(c->mem, hr->stash);
  wsm_free(c->mem, hr);
  c->hs->resp = NULL;
}
