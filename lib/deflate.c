/* permessage-deflate (RFC 7692) over zlib.
 *
 * Negotiation: the Sec-WebSocket-Extensions parser (offers and answers),
 * the server's choice among offers, the client's offer and its check of
 * the answer.  Data: compressing outgoing messages (whole, or a streamed
 * message fragment by fragment), inflating incoming ones with the inflated
 * size held to the message limit while it grows.
 *
 * Memory: a connection holds no zlib state until a message needs it.  With
 * no context takeover a stream goes back to the pool (per server, or per
 * endpoint for clients) after every message, reset, so an idle connection
 * holds none and a busy server allocates none per message; with context
 * takeover the connection keeps its stream (docs/compression.md measures
 * each setting).  zlib allocates through the wsmsg_mem hook. */
#include "internal.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* ---- parsing Sec-WebSocket-Extensions ----------------------------------- */

static bool tchar(char ch) {
  unsigned char c = (unsigned char)ch;
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
      (c >= 'A' && c <= 'Z'))
    return true;
  return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static const char *skip_ws(const char *s, const char *e) {
  while (s < e && (*s == ' ' || *s == '\t'))
    s++;
  return s;
}

static const char *scan_token(const char *s, const char *e) {
  while (s < e && tchar(*s))
    s++;
  return s;
}

const char *wsm_ext_next(const char *s, size_t *len) {
  while (*s == ' ' || *s == '\t' || *s == ',')
    s++;
  if (!*s)
    return NULL;
  const char *e = s;
  bool quoted = false;
  while (*e && (quoted || *e != ',')) {
    if (quoted && *e == '\\' && e[1])
      e++;
    else if (*e == '"')
      quoted = !quoted;
    e++;
  }
  const char *t = e;
  while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
    t--;
  *len = (size_t)(t - s);
  return s;
}

/* A window size: a decimal integer 8..15 without leading zeros. */
static uint8_t parse_wbits(const char *v, size_t n) {
  if (n == 1 && v[0] >= '8' && v[0] <= '9')
    return (uint8_t)(v[0] - '0');
  if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
    return (uint8_t)(10 + v[1] - '0');
  return 0;
}

static const char *const PARAMS[] = {
    "server_no_context_takeover", "client_no_context_takeover",
    "server_max_window_bits", "client_max_window_bits"};

int wsm_pmd_parse(const char *s, size_t n, wsm_pmd_params *p) {
  const char *e = s + n;
  memset(p, 0, sizeof(*p));
  s = skip_ws(s, e);
  const char *t = scan_token(s, e);
  if (t == s)
    return WSM_PMD_SYNTAX;
  bool pmd = t - s == 18 && strncasecmp(s, "permessage-deflate", 18) == 0;
  bool bad = false;
  unsigned seen = 0;
  s = skip_ws(t, e);
  while (s < e) {
    if (*s != ';')
      return WSM_PMD_SYNTAX;
    s = skip_ws(s + 1, e);
    const char *pn = s;
    s = scan_token(s, e);
    size_t pnl = (size_t)(s - pn);
    if (!pnl)
      return WSM_PMD_SYNTAX;
    s = skip_ws(s, e);
    char val[4]; /* enough for any valid value */
    size_t vl = 0;
    bool has_val = false, val_token = true;
    if (s < e && *s == '=') {
      has_val = true;
      s = skip_ws(s + 1, e);
      if (s < e && *s == '"') { /* quoted-string: its content must be a
                                   token once unescaped (RFC 6455 9.1) */
        for (s++; s < e && *s != '"'; s++, vl++) {
          if (*s == '\\' && ++s == e)
            return WSM_PMD_SYNTAX;
          if (!tchar(*s))
            val_token = false;
          if (vl < sizeof(val))
            val[vl] = *s;
        }
        if (s == e)
          return WSM_PMD_SYNTAX; /* unterminated */
        s++;
        if (vl == 0)
          val_token = false;
      } else {
        const char *vs = s;
        s = scan_token(s, e);
        vl = (size_t)(s - vs);
        if (!vl)
          return WSM_PMD_SYNTAX;
        memcpy(val, vs, vl < sizeof(val) ? vl : sizeof(val));
      }
      s = skip_ws(s, e);
    }
    if (!pmd)
      continue;
    int k = -1;
    for (int i = 0; i < 4; i++)
      if (strlen(PARAMS[i]) == pnl && strncasecmp(pn, PARAMS[i], pnl) == 0)
        k = i;
    if (k < 0 || (seen & (1u << k))) { /* unknown or repeated */
      bad = true;
      continue;
    }
    seen |= 1u << k;
    if (k < 2) { /* the no_context_takeover flags take no value */
      if (has_val)
        bad = true;
      else if (k == 0)
        p->server_no_ctx = true;
      else
        p->client_no_ctx = true;
      continue;
    }
    uint8_t wb = 0;
    if (has_val) {
      wb = val_token && vl <= sizeof(val) ? parse_wbits(val, vl) : 0;
      if (!wb)
        bad = true;
    } else if (k == 3) {
      wb = WSM_PMD_WB_NOVAL;
    } else {
      bad = true; /* server_max_window_bits needs a value */
    }
    if (k == 2)
      p->server_wbits = wb;
    else
      p->client_wbits = wb;
  }
  if (!pmd)
    return WSM_PMD_OTHER;
  return bad ? WSM_PMD_BAD : WSM_PMD_OK;
}

/* ---- negotiation ----------------------------------------------------------
 */

static const char EXT_HEADER[] = "Sec-WebSocket-Extensions";

static void fmt_params(char *buf, size_t cap, bool snct, bool cnct,
                       unsigned swb, unsigned cwb, bool cwb_bare) {
  int n = snprintf(buf, cap, "permessage-deflate%s%s",
                   snct ? "; server_no_context_takeover" : "",
                   cnct ? "; client_no_context_takeover" : "");
  if (n < 0 || (size_t)n >= cap)
    return;
  if (swb)
    n += snprintf(buf + n, cap - (size_t)n, "; server_max_window_bits=%u",
                  swb);
  if (n < 0 || (size_t)n >= cap)
    return;
  if (cwb_bare)
    snprintf(buf + n, cap - (size_t)n, "; client_max_window_bits");
  else if (cwb)
    snprintf(buf + n, cap - (size_t)n, "; client_max_window_bits=%u", cwb);
}

static uint8_t min_u8(uint8_t a, uint8_t b) { return a < b ? a : b; }

/* The extension elements of every Sec-WebSocket-Extensions header, in
 * order (the offers a server reads, the answer a client checks). */
typedef struct ext_iter {
  const wsm_header *hdrs;
  size_t n, i;
  const char *s; /* where the next element starts; NULL: in hdrs[i] on */
} ext_iter;

/* Parse the next element into *p and set *verdict to wsm_pmd_parse's
 * (WSM_PMD_*); false after the last one. */
static bool ext_next(ext_iter *it, wsm_pmd_params *p, int *verdict) {
  for (;;) { /* each turn moves on by an element or a header */
    if (!it->s) {
      while (it->i < it->n && strcasecmp(it->hdrs[it->i].name, EXT_HEADER) != 0)
        it->i++;
      if (it->i >= it->n)
        return false;
      it->s = it->hdrs[it->i++].value;
    }
    size_t len;
    const char *e = wsm_ext_next(it->s, &len);
    if (!e) {
      it->s = NULL;
      continue;
    }
    *verdict = wsm_pmd_parse(e, len, p);
    it->s = e + len;
    return true;
  }
}

bool wsm_pmd_negotiate(const wsm_header *hdrs, size_t n,
                       const wsm_pmd_cfg *cfg, wsm_pmd *agreed, char *answer,
                       size_t cap) {
  memset(agreed, 0, sizeof(*agreed));
  if (!cfg->on)
    return false;
  ext_iter it = {hdrs, n, 0, NULL};
  wsm_pmd_params o;
  int v;
  while (ext_next(&it, &o, &v)) {
    if (v != WSM_PMD_OK)
      continue; /* another extension, or an offer we decline */
    /* our direction: the window the client allows us (a smaller one
     * than asked is always allowed), reset if either side wants it */
    uint8_t tx = cfg->tx_wbits;
    if (o.server_wbits)
      tx = min_u8(tx, o.server_wbits);
    /* the client's direction: a window can be asked only if the offer
     * says the client supports client_max_window_bits */
    uint8_t rx = 15;
    if (o.client_wbits) {
      rx = cfg->rx_wbits;
      if (o.client_wbits != WSM_PMD_WB_NOVAL)
        rx = min_u8(rx, o.client_wbits);
    }
    agreed->on = true;
    agreed->tx_wbits = tx;
    agreed->rx_wbits = rx;
    agreed->tx_no_ctx = o.server_no_ctx || cfg->tx_no_ctx;
    agreed->rx_no_ctx = o.client_no_ctx || cfg->rx_no_ctx;
    fmt_params(answer, cap, agreed->tx_no_ctx, agreed->rx_no_ctx,
               tx < 15 || o.server_wbits ? tx : 0u,
               o.client_wbits && (rx < 15 || o.client_wbits != WSM_PMD_WB_NOVAL)
                   ? rx
                   : 0u,
               false);
    return true;
  }
  return false;
}

void wsm_pmd_offer(const wsm_pmd_cfg *cfg, char *buf, size_t cap) {
  fmt_params(buf, cap, cfg->rx_no_ctx, cfg->tx_no_ctx,
             cfg->rx_wbits < 15 ? cfg->rx_wbits : 0u,
             cfg->tx_wbits < 15 ? cfg->tx_wbits : 0u, cfg->tx_wbits >= 15);
}

int wsm_pmd_check_answer(const wsm_header *hdrs, size_t n,
                         const wsm_pmd_cfg *cfg, wsm_pmd *agreed,
                         const char **why) {
  memset(agreed, 0, sizeof(*agreed));
  size_t count = 0;
  ext_iter it = {hdrs, n, 0, NULL};
  wsm_pmd_params a;
  int v;
  while (ext_next(&it, &a, &v)) {
    if (++count > 1) {
      *why = "server chose more than one extension";
      return -1;
    }
    if (v == WSM_PMD_SYNTAX) {
      *why = "malformed Sec-WebSocket-Extensions in the response";
      return -1;
    }
    if (v == WSM_PMD_OTHER || !cfg->on) {
      *why = "server chose an extension we did not offer";
      return -1;
    }
    if (v == WSM_PMD_BAD || a.client_wbits == WSM_PMD_WB_NOVAL) {
      *why = "server answered permessage-deflate with invalid parameters";
      return -1;
    }
    if (cfg->rx_no_ctx && !a.server_no_ctx) {
      *why = "server ignored our server_no_context_takeover";
      return -1;
    }
    if (cfg->rx_wbits < 15 &&
        (!a.server_wbits || a.server_wbits > cfg->rx_wbits)) {
      *why = "server_max_window_bits in the answer over our offer";
      return -1;
    }
    if (a.client_wbits && cfg->tx_wbits < 15 &&
        a.client_wbits > cfg->tx_wbits) {
      *why = "client_max_window_bits in the answer over our offer";
      return -1;
    }
    agreed->on = true;
    agreed->rx_wbits = a.server_wbits ? a.server_wbits : 15;
    agreed->tx_wbits =
        a.client_wbits ? min_u8(a.client_wbits, cfg->tx_wbits) : cfg->tx_wbits;
    agreed->rx_no_ctx = a.server_no_ctx;
    agreed->tx_no_ctx = a.client_no_ctx || cfg->tx_no_ctx;
  }
  return 0;
}

/* ---- zlib streams and their pool ----------------------------------------- */

#define ZS_POOL_MAX 8 /* idle streams a pool keeps */
#define INFLATE_CHUNK 16384

typedef struct wsm_zs {
  z_stream z;
  struct wsm_zs *next;
  const wsmsg_mem *mem;
  size_t bytes; /* what zlib allocated for it (it frees only at the end) */
  bool inflate;
  uint8_t wbits, mem_level, level;
} wsm_zs;

static voidpf z_alloc(voidpf opaque, uInt items, uInt size) {
  wsm_zs *s = opaque;
  if (size && items > SIZE_MAX / size)
    return Z_NULL;
  void *p = wsm_malloc(s->mem, (size_t)items * size);
  if (p)
    s->bytes += (size_t)items * size;
  return p;
}

static void z_free(voidpf opaque, voidpf p) {
  wsm_free(((wsm_zs *)opaque)->mem, p);
}

/* What a stream will hold once it has run (zlib's formulas, docs of
 * deflateInit2/inflateInit2, plus its state structs), for the budget. */
static size_t zs_estimate(bool inflate, unsigned wbits, unsigned mem_level) {
  if (inflate)
    return ((size_t)1 << wbits) + 7168;
  return ((size_t)1 << (wbits + 2)) + ((size_t)1 << (mem_level + 9)) + 5888;
}

size_t wsm_pmd_held(const wsmsg_conn *c) {
  return (c->pmd.def ? sizeof(wsm_zs) + c->pmd.def->bytes : 0) +
         (c->pmd.inf ? sizeof(wsm_zs) + c->pmd.inf->bytes : 0);
}

static void zs_destroy(const wsmsg_mem *m, wsm_zs *s) {
  if (s->inflate)
    inflateEnd(&s->z);
  else
    deflateEnd(&s->z);
  wsm_free(m, s);
}

/* A reset stream with these parameters: from the pool, or new (NULL when
 * out of memory). */
static wsm_zs *zs_get(wsm_pool *p, bool inflate, uint8_t wbits,
                      uint8_t mem_level, uint8_t level) {
  if (inflate)
    mem_level = level = 0;
  pthread_mutex_lock(&p->mu);
  wsm_zs **pp = &p->zs, *s = NULL;
  for (; *pp; pp = &(*pp)->next) {
    wsm_zs *q = *pp;
    if (q->inflate == inflate && q->wbits == wbits &&
        q->mem_level == mem_level && q->level == level) {
      *pp = q->next;
      p->nzs--;
      s = q;
      break;
    }
  }
  pthread_mutex_unlock(&p->mu);
  if (s)
    return s;
  s = wsm_calloc(p->mem, sizeof(*s));
  if (!s)
    return NULL;
  s->inflate = inflate;
  s->wbits = wbits;
  s->mem_level = mem_level;
  s->level = level;
  s->mem = p->mem;
  s->z.zalloc = z_alloc;
  s->z.zfree = z_free;
  s->z.opaque = s;
  int zr = inflate ? inflateInit2(&s->z, -(int)wbits)
                   : deflateInit2(&s->z, level, Z_DEFLATED, -(int)wbits,
                                  mem_level, Z_DEFAULT_STRATEGY);
  if (zr != Z_OK) {
    wsm_free(p->mem, s);
    return NULL;
  }
  return s;
}

static void zs_put(wsm_pool *p, wsm_zs *s) {
  if (!s)
    return;
  int zr = s->inflate ? inflateReset(&s->z) : deflateReset(&s->z);
  if (zr == Z_OK) {
    pthread_mutex_lock(&p->mu);
    if (p->nzs < ZS_POOL_MAX) {
      s->next = p->zs;
      p->zs = s;
      p->nzs++;
      s = NULL;
    }
    pthread_mutex_unlock(&p->mu);
  }
  if (s)
    zs_destroy(p->mem, s);
}

void wsm_pmd_pool_drain(wsm_pool *p) {
  for (wsm_zs *s = p->zs, *n; s; s = n) {
    n = s->next;
    zs_destroy(p->mem, s);
  }
  p->zs = NULL;
  p->nzs = 0;
}

void wsm_pmd_release(wsmsg_conn *c) {
  if (!c->pmd.def && !c->pmd.inf)
    return;
  zs_put(c->pool, c->pmd.def);
  zs_put(c->pool, c->pmd.inf);
  c->pmd.def = c->pmd.inf = NULL;
  c->pmd.rx_ended = false;
  wsm_mem_account(c);
}

/* ---- compressing ------------------------------------------------------------
 */

uint32_t wsm_pmd_share_key(const wsmsg_conn *c, size_t len) {
  if (!wsm_pmd_tx(c, len))
    return 0;
  if (!c->pmd.tx_no_ctx)
    return UINT32_MAX;
  const wsm_pmd_cfg *g = &c->ep->pmd;
  return 1u | (uint32_t)c->pmd.tx_wbits << 8 | (uint32_t)g->mem_level << 16 |
         (uint32_t)g->level << 24;
}

int wsm_pmd_compress(wsmsg_conn *c, const uint8_t *d, size_t n, bool final,
                     wsm_buf *out) {
  wsm_pmd *m = &c->pmd;
  const wsm_pmd_cfg *g = &c->ep->pmd;
  if (!m->def) {
    /* over the server's memory budget the caller sends plain */
    if (!wsm_budget_admit(c, zs_estimate(false, m->tx_wbits, g->mem_level)))
      return WSMSG_ERR_BUDGET;
    m->def = zs_get(c->pool, false, m->tx_wbits, g->mem_level, g->level);
    if (!m->def)
      return WSMSG_ERR_NOMEM;
    wsm_mem_account(c);
  }
  z_stream *z = &m->def->z;
  z->next_in = (Bytef *)(uintptr_t)d;
  int flush = final ? Z_SYNC_FLUSH : Z_NO_FLUSH;
  size_t left = n;
  int r = 0;
  for (int guard = 0;; guard++) {
    size_t room = left / 2 + 64; /* output space per round: JSON and text
                                    shrink at least that much, usually */
    if ((r = wsm_pbuf_reserve(out, c->pool, room)) != 0)
      break;
    uInt give = left > (1u << 30) ? 1u << 30 : (uInt)left;
    z->avail_in = give;
    size_t avail = out->cap - out->len;
    z->next_out = out->p + out->len;
    z->avail_out = avail > (1u << 30) ? 1u << 30 : (uInt)avail;
    uInt before_out = z->avail_out;
    int zr = deflate(z, flush);
    left -= give - z->avail_in;
    out->len += before_out - z->avail_out;
    if (zr != Z_OK && zr != Z_BUF_ERROR) {
      r = WSMSG_ERR_NOMEM; /* zlib fails only for want of memory here */
      break;
    }
    if (left == 0 && z->avail_in == 0 && z->avail_out != 0)
      break; /* all consumed, all flushed */
    if (guard > 1000000) { /* cannot happen: progress every round */
      r = WSMSG_ERR_NOMEM;
      break;
    }
  }
  z->next_in = NULL;
  z->avail_in = 0;
  if (!r && final) {
    /* a sync flush ends with an empty stored block: 00 00 ff ff (RFC
     * 7692 7.2.1 removes it) */
    if (out->len >= 4 && memcmp(out->p + out->len - 4, "\0\0\xff\xff", 4) == 0)
      out->len -= 4;
    else if (out->len == 0) /* nothing to flush (zlib wrote nothing):
                               an empty stored block, RFC 7692 7.2.3.6 */
      r = wsm_pbuf_append(out, c->pool, "", 1);
  }
  if (r || (final && m->tx_no_ctx)) {
    /* after an error the stream's state is unknown: never reuse it */
    if (r) {
      zs_destroy(c->pool->mem, m->def);
    } else {
      zs_put(c->pool, m->def);
    }
    m->def = NULL;
    wsm_mem_account(c);
  }
  return r;
}

/* ---- inflating --------------------------------------------------------------
 */

static int inflate_failed(wsmsg_conn *c, const char *what) {
  char why[96];
  snprintf(why, sizeof(why), "invalid compressed data: %s",
           what ? what : "inflate failed");
  return wsm_conn_fail(c, WSMSG_ERR_PROTOCOL, 1007, why);
}

/* The message's deflate data ended early (BFINAL): start a new stream for
 * the next message, keeping the window when the context is taken over. */
static int restart_inflate(wsmsg_conn *c) {
  wsm_zs *s = c->pmd.inf;
  c->pmd.rx_ended = false;
  if (c->pmd.rx_no_ctx)
    return 0; /* released below */
  uInt dl = 0;
  size_t cap = (size_t)1 << s->wbits;
  uint8_t *dict = wsm_malloc(c->mem, cap);
  if (!dict)
    return WSMSG_ERR_NOMEM;
  int zr = inflateGetDictionary(&s->z, dict, &dl);
  if (zr == Z_OK)
    zr = inflateReset(&s->z);
  if (zr == Z_OK && dl)
    zr = inflateSetDictionary(&s->z, dict, dl);
  wsm_free(c->mem, dict);
  return zr == Z_OK ? 0 : WSMSG_ERR_NOMEM;
}

int wsm_pmd_inflate(wsmsg_conn *c, const uint8_t *d, size_t n, bool final,
                    wsm_pmd_sink sink) {
  static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
  wsm_pmd *m = &c->pmd;
  if (!m->inf) {
    /* a peer that claims window 8 may deflate with 9 (zlib does): a
     * larger window than the peer's is always safe */
    uint8_t wb = m->rx_wbits < 9 ? 9 : m->rx_wbits;
    /* an unfinished compressed message holds an inflater: it counts in
     * the server's memory budget like the message buffer (budget.c) */
    if (!wsm_budget_admit(c, zs_estimate(true, wb, 0)))
      return wsm_conn_fail(c, WSMSG_ERR_BUDGET, 1013,
                           "server memory budget exhausted");
    m->inf = zs_get(c->pool, true, wb, 0, 0);
    if (!m->inf)
      return wsm_conn_fail(c, WSMSG_ERR_NOMEM, 1011, "out of memory");
  }
  wsm_buf tmp = {0};
  if (wsm_pbuf_reserve(&tmp, c->pool, INFLATE_CHUNK))
    return wsm_conn_fail(c, WSMSG_ERR_NOMEM, 1011, "out of memory");
  const wsmsg_endpoint *ep = c->ep;
  z_stream *z = &m->inf->z;
  bool in_tail = false;
  const uint8_t *in = d;
  size_t left = n;
  int r = 0;
  for (;;) {
    if (left == 0 && final && !in_tail && c->msg_total == 0) {
      in_tail = true; /* an empty payload is an empty message (some peers
                         send one instead of 0x00): nothing to inflate */
    } else if (left == 0 && final && !in_tail) {
      in_tail = true;
      in = tail;
      left = sizeof(tail);
    }
    size_t got = 0;
    bool full = false;
    if (m->rx_ended) {
      left = 0; /* anything after the final block is ignored */
    } else {
      uInt give = left > (1u << 30) ? 1u << 30 : (uInt)left;
      z->next_in = (Bytef *)(uintptr_t)in;
      z->avail_in = give;
      z->next_out = tmp.p;
      z->avail_out = (uInt)INFLATE_CHUNK;
      int zr = inflate(z, Z_SYNC_FLUSH);
      size_t used = give - z->avail_in;
      in += used;
      left -= used;
      got = INFLATE_CHUNK - z->avail_out;
      full = z->avail_out == 0;
      if (zr == Z_STREAM_END) {
        m->rx_ended = true;
      } else if (zr == Z_MEM_ERROR) {
        r = wsm_conn_fail(c, WSMSG_ERR_NOMEM, 1011, "out of memory");
        break;
      } else if ((zr != Z_OK && zr != Z_BUF_ERROR) ||
                 (used == 0 && got == 0 && left)) { /* no progress */
        r = inflate_failed(c, z->msg);
        break;
      }
    }
    m->rx_total += got;
    if ((ep->max_message && m->rx_total > ep->max_message) ||
        (!c->msg_stream && m->rx_total >= SIZE_MAX / 2)) {
      char why[96];
      snprintf(why, sizeof(why),
               "message inflates to %llu+ bytes, over the limit of %llu",
               (unsigned long long)m->rx_total,
               (unsigned long long)ep->max_message);
      r = wsm_conn_fail(c, WSMSG_ERR_TOO_BIG, 1009, why);
      break;
    }
    bool last = final && in_tail && left == 0 && !full;
    if ((got || last) && (r = sink(c, tmp.p, got, last)) != 0)
      break;
    if (c->failed || c->state == WSMSG_STATE_CLOSED)
      break;
    if (last || (left == 0 && !full && !final))
      break;
  }
  wsm_pbuf_release(&tmp, c->pool);
  if (r == 0 && final && !c->failed) {
    m->rx_total = 0;
    if (m->rx_ended && (r = restart_inflate(c)) != 0)
      return wsm_conn_fail(c, r, 1011, "out of memory");
    if (m->rx_no_ctx) {
      zs_put(c->pool, m->inf);
      m->inf = NULL;
    }
  }
  wsm_mem_account(c); /* the inflater's window is allocated on first use */
  return r;
}
