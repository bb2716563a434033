/* Endpoints (callbacks, limits, protocol options) and servers (routing). */
#include "internal.h"

#include <string.h>

#define DEFAULT_MAX_MESSAGE (1u << 20)
#define DEFAULT_MAX_FRAGMENTS 4096u
#define DEFAULT_MAX_REQUEST 8192u
#define DEFAULT_MAX_HEADERS 64u
#define MIN_MAX_REQUEST 64u /* the smallest limits a setter accepts */
#define MIN_MAX_HEADERS 4u
#define DEFAULT_TIMEOUT 10000u
/* Safe defaults (docs/reliability.md, "Defaults"): a silent or stuck peer
 * is freed without any setting.  Keepalive as python-websockets (20 s
 * ping interval, 20 s to answer); an unfinished message must complete
 * within 60 s (1 MiB at ~17 KB/s); pending output must make progress
 * within 30 s (about five doubling TCP retransmission timeouts). */
#define DEFAULT_PING 20000u
#define DEFAULT_PONG 20000u
#define DEFAULT_MESSAGE_TIMEOUT 60000u
#define DEFAULT_WRITE_TIMEOUT 30000u
#define DEFAULT_BP_HIGH (8u << 20)
#define DEFAULT_BP_LOW (2u << 20)
#define DEFAULT_MAX_EVENTS 4096u
#define DEFAULT_MAX_EVENT_BYTES (16u << 20)
#define DEFAULT_VALIDATION (WSMSG_VALIDATE_COERCE | WSMSG_VALIDATE_DEFAULTS)
#define DEFAULT_MAX_ERRORS 32u
/* JSON endpoints: jansson parses a pathological 64 KiB document
 * ([{},{},...], 22k objects) in 2.0-2.6 ms, 256 KiB in 25-34 ms, 1 MiB in
 * 90-150 ms (docs/reliability.md, "Defaults").  Low milliseconds per
 * message: 64 KiB, unless the application sets a size itself. */
#define DEFAULT_JSON_MAX_MESSAGE (64u << 10)
/* JSON endpoints answer an invalid message with a larger error reply:
 * more than 32 within 10 s close the connection. */
#define DEFAULT_INVALID_MAX 32u
#define DEFAULT_INVALID_WINDOW 10000u
/* The server's memory budget (budget.c, docs/reliability.md "Memory
 * budget"): 2,600 hostile connections stay under 512 MiB RSS with these
 * (at most budget + connections x share). */
#define DEFAULT_MEM_BUDGET ((size_t)256 << 20)
#define DEFAULT_MEM_SHARE ((size_t)64 << 10)

/* ---- endpoints ---- */

wsmsg_endpoint *wsmsg_endpoint_new_mem(const wsmsg_mem *mem) {
  wsmsg_mem m;
  wsm_mem_init(&m, mem);
  wsmsg_endpoint *ep = wsm_calloc(&m, sizeof(*ep));
  if (!ep)
    return NULL;
  ep->mem = m;
  wsm_pool_init(&ep->pool, &ep->mem);
  atomic_init(&ep->frozen, 0);
  ep->max_message = DEFAULT_MAX_MESSAGE;
  ep->max_fragments = DEFAULT_MAX_FRAGMENTS;
  ep->inv_max = DEFAULT_INVALID_MAX;
  ep->inv_window = DEFAULT_INVALID_WINDOW;
  ep->t_close = DEFAULT_TIMEOUT;
  ep->t_ping = DEFAULT_PING;
  ep->t_pong = DEFAULT_PONG;
  ep->t_message = DEFAULT_MESSAGE_TIMEOUT;
  ep->t_write = DEFAULT_WRITE_TIMEOUT;
  ep->bp_high = DEFAULT_BP_HIGH;
  ep->vflags = DEFAULT_VALIDATION;
  ep->max_events = DEFAULT_MAX_EVENTS;
  ep->max_event_bytes = DEFAULT_MAX_EVENT_BYTES;
  ep->bp_low = DEFAULT_BP_LOW;
  ep->t_handshake = DEFAULT_TIMEOUT;
  ep->clock = wsm_default_clock;
  (void)wsmsg_endpoint_set_deflate(ep, WSMSG_DEFLATE_OFF);
  return ep;
}

wsmsg_endpoint *wsmsg_endpoint_new(void) {
  return wsmsg_endpoint_new_mem(NULL);
}

static void free_list(const wsmsg_mem *m, char **v, size_t n) {
  for (size_t i = 0; i < n; i++)
    wsm_free(m, v[i]);
  wsm_free(m, v);
}

void wsmsg_endpoint_free(wsmsg_endpoint *ep) {
  if (!ep)
    return;
  wsmsg_mem m = ep->mem;
  free_list(&m, ep->subprotocols, ep->nsubprotocols);
  free_list(&m, ep->origins, ep->norigins);
  wsm_free(&m, ep->heartbeat);
  for (size_t i = 0; i < ep->njroutes; i++)
    wsm_free(&m, ep->jroutes[i].value);
  wsm_free(&m, ep->jroutes);
  wsm_free(&m, ep->route_field);
  wsm_pool_destroy(&ep->pool);
  wsm_free(&m, ep);
}

/* The one "still writable?" check of every endpoint setter: 0 if the
 * endpoint may still be configured, else WSMSG_ERR_INVALID_ARG (NULL) or
 * WSMSG_ERR_STATE (a connection uses it). */
static int ep_writable(const wsmsg_endpoint *ep) {
  if (!ep)
    return WSMSG_ERR_INVALID_ARG;
  if (atomic_load(&ep->frozen))
    return WSMSG_ERR_STATE;
  return 0;
}

#define SETTER(fn, field, type)                                                \
  int fn(wsmsg_endpoint *ep, type v) {                                         \
    int r = ep_writable(ep);                                                   \
    if (r)                                                                     \
      return r;                                                                \
    ep->field = v;                                                             \
    return 0;                                                                  \
  }

SETTER(wsmsg_endpoint_on_open, on_open, wsmsg_open_cb)
SETTER(wsmsg_endpoint_on_text, on_text, wsmsg_text_cb)
SETTER(wsmsg_endpoint_on_binary, on_binary, wsmsg_binary_cb)
SETTER(wsmsg_endpoint_on_close, on_close, wsmsg_close_cb)
SETTER(wsmsg_endpoint_on_pong, on_pong, wsmsg_pong_cb)
SETTER(wsmsg_endpoint_on_handshake, on_handshake, wsmsg_handshake_cb)
int wsmsg_endpoint_set_max_message_size(wsmsg_endpoint *ep, uint64_t v) {
  int r = ep_writable(ep);
  if (r)
    return r;
  ep->max_message = v;
  ep->max_message_set = true;
  return 0;
}
SETTER(wsmsg_endpoint_set_max_fragments, max_fragments, uint32_t)
SETTER(wsmsg_endpoint_on_timeout, on_timeout, wsmsg_timeout_cb)
SETTER(wsmsg_endpoint_on_drain, on_drain, wsmsg_drain_cb)

int wsmsg_endpoint_set_backpressure(wsmsg_endpoint *ep, size_t high, size_t low,
                                    int policy) {
  int r = ep_writable(ep);
  if (r)
    return r;
  if ((high && low > high) ||
      (policy != WSMSG_BACKPRESSURE_FAIL && policy != WSMSG_BACKPRESSURE_CLOSE))
    return WSMSG_ERR_INVALID_ARG;
  ep->bp_high = high;
  ep->bp_low = low;
  ep->bp_policy = policy;
  return 0;
}

/* ---- permessage-deflate (used by deflate.c) ---- */

int wsmsg_endpoint_set_deflate(wsmsg_endpoint *ep, int mode) {
  int r = ep_writable(ep);
  if (r)
    return r;
  if (mode < WSMSG_DEFLATE_OFF || mode > WSMSG_DEFLATE_MAX_RATIO)
    return WSMSG_ERR_INVALID_ARG;
  bool take = mode >= WSMSG_DEFLATE_LOW_MEMORY;
  bool small = mode == WSMSG_DEFLATE_LOW_MEMORY;
  ep->pmd = (wsm_pmd_cfg){.on = mode != WSMSG_DEFLATE_OFF,
                          .level = 6,
                          .mem_level = small ? 4 : 8,
                          .tx_wbits = small ? 11 : 15,
                          .rx_wbits = small ? 11 : 15,
                          .tx_no_ctx = !take,
                          .rx_no_ctx = !take,
                          /* with takeover even short messages shrink */
                          .threshold = take ? 16 : 128};
  return 0;
}

int wsmsg_endpoint_set_deflate_level(wsmsg_endpoint *ep, int level,
                                     int mem_level) {
  int r = ep_writable(ep);
  if (r)
    return r;
  if (level < 1 || level > 9 || mem_level < 1 || mem_level > 9)
    return WSMSG_ERR_INVALID_ARG;
  ep->pmd.level = (uint8_t)level;
  ep->pmd.mem_level = (uint8_t)mem_level;
  return 0;
}

int wsmsg_endpoint_set_deflate_window(wsmsg_endpoint *ep, int ours,
                                      int peers) {
  int r = ep_writable(ep);
  if (r)
    return r;
  if (ours < 8 || ours > 15 || peers < 8 || peers > 15)
    return WSMSG_ERR_INVALID_ARG;
  ep->pmd.tx_wbits = (uint8_t)ours;
  ep->pmd.rx_wbits = (uint8_t)peers;
  return 0;
}

int wsmsg_endpoint_set_deflate_takeover(wsmsg_endpoint *ep, int ours,
                                        int peers) {
  int r = ep_writable(ep);
  if (r)
    return r;
  ep->pmd.tx_no_ctx = !ours;
  ep->pmd.rx_no_ctx = !peers;
  return 0;
}

int wsmsg_endpoint_set_deflate_threshold(wsmsg_endpoint *ep, size_t bytes) {
  int r = ep_writable(ep);
  if (r)
    return r;
  if (bytes > UINT32_MAX)
    return WSMSG_ERR_INVALID_ARG;
  ep->pmd.threshold = (uint32_t)bytes;
  return 0;
}

int wsmsg_endpoint_set_rate_limit(wsmsg_endpoint *ep, uint32_t messages_per_s,
                                  uint64_t bytes_per_s, int policy) {
  int r = ep_writable(ep);
  if (r)
    return r;
  if (policy != WSMSG_LIMIT_CLOSE && policy != WSMSG_LIMIT_DROP)
    return WSMSG_ERR_INVALID_ARG;
  if (bytes_per_s > UINT64_MAX / 2000) /* thousandths of a 2 s refill */
    bytes_per_s = UINT64_MAX / 2000;
  ep->rate_msgs = messages_per_s;
  ep->rate_bytes = bytes_per_s;
  ep->rate_policy = policy;
  return 0;
}

int wsmsg_endpoint_set_invalid_limit(wsmsg_endpoint *ep, uint32_t count,
                                     uint32_t window_ms) {
  int r = ep_writable(ep);
  if (r)
    return r;
  if (count && !window_ms)
    return WSMSG_ERR_INVALID_ARG;
  ep->inv_max = count;
  ep->inv_window = window_ms;
  return 0;
}

int wsmsg_endpoint_on_chunk(wsmsg_endpoint *ep, wsmsg_chunk_cb cb,
                            unsigned kinds) {
  int r = ep_writable(ep);
  if (r)
    return r;
  if (kinds & ~(unsigned)(WSMSG_STREAM_BINARY | WSMSG_STREAM_TEXT))
    return WSMSG_ERR_INVALID_ARG;
  ep->on_chunk = cb;
  ep->stream_kinds = cb ? kinds : 0;
  return 0;
}
SETTER(wsmsg_endpoint_set_receive_timeout, t_receive, uint32_t)
SETTER(wsmsg_endpoint_set_ping_interval, t_ping, uint32_t)
SETTER(wsmsg_endpoint_set_pong_timeout, t_pong, uint32_t)
SETTER(wsmsg_endpoint_set_message_timeout, t_message, uint32_t)
SETTER(wsmsg_endpoint_set_close_timeout, t_close, uint32_t)
SETTER(wsmsg_endpoint_set_write_timeout, t_write, uint32_t)
SETTER(wsmsg_endpoint_set_handshake_timeout, t_handshake, uint32_t)
SETTER(wsmsg_endpoint_set_idle_timeout, t_idle, uint32_t)

int wsmsg_endpoint_set_clock(wsmsg_endpoint *ep, wsmsg_clock_cb cb,
                             void *user) {
  int r = ep_writable(ep);
  if (r)
    return r;
  ep->clock = cb ? cb : wsm_default_clock;
  ep->clock_user = cb ? user : NULL;
  return 0;
}

int wsmsg_endpoint_set_timeout_action(wsmsg_endpoint *ep, int action,
                                      const char *heartbeat) {
  int r = ep_writable(ep);
  if (r)
    return r;
  if (action < WSMSG_ON_TIMEOUT_EVENT || action > WSMSG_ON_TIMEOUT_CLOSE_1011)
    return WSMSG_ERR_INVALID_ARG;
  char *hb = NULL;
  if (heartbeat) {
    size_t n = strlen(heartbeat);
    if (n > 125 || !wsmsg_utf8_valid(heartbeat, n))
      return WSMSG_ERR_INVALID_ARG;
    if (!(hb = wsm_strdup(&ep->mem, heartbeat)))
      return WSMSG_ERR_NOMEM;
  }
  wsm_free(&ep->mem, ep->heartbeat);
  ep->heartbeat = hb;
  ep->timeout_action = action;
  return 0;
}

SETTER(wsmsg_endpoint_set_pong_events, pong_events, int)
SETTER(wsmsg_endpoint_require_subprotocol, require_subprotocol, int)

static int push_str(const wsmsg_mem *m, char ***v, size_t *n, const char *s) {
  char *d = wsm_strdup(m, s);
  if (!d)
    return WSMSG_ERR_NOMEM;
  char **nv =
      wsm_realloc(m, *v, *n * sizeof(char *), (*n + 1) * sizeof(char *));
  if (!nv) {
    wsm_free(m, d);
    return WSMSG_ERR_NOMEM;
  }
  nv[(*n)++] = d;
  *v = nv;
  return 0;
}

int wsmsg_endpoint_add_subprotocol(wsmsg_endpoint *ep, const char *name) {
  int r = ep_writable(ep);
  if (r)
    return r;
  if (!wsm_http_is_token(name))
    return WSMSG_ERR_INVALID_ARG;
  for (size_t i = 0; i < ep->nsubprotocols; i++)
    if (strcmp(ep->subprotocols[i], name) == 0)
      return 0;
  return push_str(&ep->mem, &ep->subprotocols, &ep->nsubprotocols, name);
}

int wsmsg_endpoint_allow_origin(wsmsg_endpoint *ep, const char *origin) {
  int r = ep_writable(ep);
  if (r)
    return r;
  if (!origin || !*origin || strpbrk(origin, "\r\n"))
    return WSMSG_ERR_INVALID_ARG;
  if (strcmp(origin, "*") == 0) {
    ep->any_origin = true;
    return 0;
  }
  return push_str(&ep->mem, &ep->origins, &ep->norigins, origin);
}

/* ---- JSON endpoints (the messages themselves are json.c's) ---- */

static void json_defaults(wsmsg_endpoint *ep) {
  if (!ep->json) {
    ep->json = true;
    if (!ep->max_errors)
      ep->max_errors = DEFAULT_MAX_ERRORS;
    if (!ep->max_message_set)
      ep->max_message = DEFAULT_JSON_MAX_MESSAGE;
  }
}

int wsmsg_endpoint_on_json(wsmsg_endpoint *ep, wsmsg_json_cb cb) {
  int r = ep_writable(ep);
  if (r)
    return r;
  json_defaults(ep);
  ep->on_json = cb;
  return 0;
}

int wsmsg_endpoint_set_json(wsmsg_endpoint *ep, int on) {
  int r = ep_writable(ep);
  if (r)
    return r;
  if (on) {
    json_defaults(ep);
  } else {
    ep->json = false;
    if (!ep->max_message_set)
      ep->max_message = DEFAULT_MAX_MESSAGE;
  }
  return 0;
}

SETTER(wsmsg_endpoint_on_invalid, on_invalid, wsmsg_invalid_cb)

int wsmsg_endpoint_set_schema(wsmsg_endpoint *ep, const wsmsg_schema *schema) {
  int r = ep_writable(ep);
  if (r)
    return r;
  json_defaults(ep);
  ep->schema = schema;
  return 0;
}

int wsmsg_endpoint_set_validation(wsmsg_endpoint *ep, unsigned flags) {
  int r = ep_writable(ep);
  if (r)
    return r;
  if (flags & ~(unsigned)(WSMSG_VALIDATE_COERCE | WSMSG_VALIDATE_DEFAULTS |
                          WSMSG_VALIDATE_FORMAT | WSMSG_VALIDATE_EXTRA_IGNORE |
                          WSMSG_VALIDATE_EXTRA_FORBID |
                          WSMSG_VALIDATE_PYDANTIC_V2))
    return WSMSG_ERR_INVALID_ARG;
  ep->vflags = flags;
  return 0;
}

int wsmsg_endpoint_set_extra(wsmsg_endpoint *ep, int policy) {
  int r = ep_writable(ep);
  if (r)
    return r;
  if (policy < WSMSG_EXTRA_ALLOW || policy > WSMSG_EXTRA_FORBID)
    return WSMSG_ERR_INVALID_ARG;
  ep->vflags &=
      ~(unsigned)(WSMSG_VALIDATE_EXTRA_IGNORE | WSMSG_VALIDATE_EXTRA_FORBID);
  if (policy == WSMSG_EXTRA_IGNORE)
    ep->vflags |= WSMSG_VALIDATE_EXTRA_IGNORE;
  else if (policy == WSMSG_EXTRA_FORBID)
    ep->vflags |= WSMSG_VALIDATE_EXTRA_FORBID;
  return 0;
}

int wsmsg_endpoint_set_error_style(wsmsg_endpoint *ep, int style) {
  int r = ep_writable(ep);
  if (r)
    return r;
  if (style != WSMSG_ERRORS_PYDANTIC_V1 && style != WSMSG_ERRORS_PYDANTIC_V2)
    return WSMSG_ERR_INVALID_ARG;
  if (style == WSMSG_ERRORS_PYDANTIC_V2)
    ep->vflags |= WSMSG_VALIDATE_PYDANTIC_V2;
  else
    ep->vflags &= ~(unsigned)WSMSG_VALIDATE_PYDANTIC_V2;
  return 0;
}

int wsmsg_endpoint_set_unhandled(wsmsg_endpoint *ep, int policy) {
  int r = ep_writable(ep);
  if (r)
    return r;
  if (policy != WSMSG_UNHANDLED_CLOSE && policy != WSMSG_UNHANDLED_IGNORE)
    return WSMSG_ERR_INVALID_ARG;
  ep->unhandled = policy;
  return 0;
}

int wsmsg_endpoint_set_invalid_policy(wsmsg_endpoint *ep, int policy) {
  int r = ep_writable(ep);
  if (r)
    return r;
  if (policy < WSMSG_INVALID_REPLY || policy > WSMSG_INVALID_IGNORE)
    return WSMSG_ERR_INVALID_ARG;
  ep->invalid_policy = policy;
  return 0;
}

SETTER(wsmsg_endpoint_allow_duplicate_keys, allow_dups, int)

int wsmsg_endpoint_set_max_errors(wsmsg_endpoint *ep, size_t n) {
  int r = ep_writable(ep);
  if (r)
    return r;
  if (n == 0)
    return WSMSG_ERR_INVALID_ARG;
  ep->max_errors = n;
  return 0;
}

const wsm_jroute *wsm_ep_find_route(const wsmsg_endpoint *ep, const char *v,
                                    size_t *pos) {
  size_t lo = 0, hi = ep->njroutes;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(ep->jroutes[mid].value, v);
    if (c == 0)
      return &ep->jroutes[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (pos)
    *pos = lo;
  return NULL;
}

int wsmsg_endpoint_route_json(wsmsg_endpoint *ep, const char *field,
                              const char *value, const wsmsg_schema *schema,
                              wsmsg_json_cb cb) {
  int r = ep_writable(ep);
  if (r)
    return r;
  if (!field || !*field || !value)
    return WSMSG_ERR_INVALID_ARG;
  if (ep->route_field && strcmp(ep->route_field, field) != 0)
    return WSMSG_ERR_INVALID_ARG;
  size_t pos = 0;
  if (wsm_ep_find_route(ep, value, &pos))
    return WSMSG_ERR_STATE;
  if (!ep->route_field && !(ep->route_field = wsm_strdup(&ep->mem, field)))
    return WSMSG_ERR_NOMEM;
  char *v = wsm_strdup(&ep->mem, value);
  wsm_jroute *nr =
      v ? wsm_realloc(&ep->mem, ep->jroutes, ep->njroutes * sizeof(wsm_jroute),
                      (ep->njroutes + 1) * sizeof(wsm_jroute))
        : NULL;
  if (!nr) {
    wsm_free(&ep->mem, v);
    return WSMSG_ERR_NOMEM;
  }
  memmove(nr + pos + 1, nr + pos, (ep->njroutes - pos) * sizeof(wsm_jroute));
  nr[pos] = (wsm_jroute){v, schema, cb};
  if (cb)
    ep->route_cb = true;
  ep->jroutes = nr;
  ep->njroutes++;
  json_defaults(ep);
  return 0;
}

int wsmsg_endpoint_set_max_queued(wsmsg_endpoint *ep, size_t count,
                                  size_t bytes) {
  int r = ep_writable(ep);
  if (r)
    return r;
  ep->max_events = count;
  ep->max_event_bytes = bytes;
  return 0;
}

/* ---- servers ---- */

wsmsg_server *wsmsg_server_new_mem(const wsmsg_mem *mem) {
  wsmsg_mem m;
  wsm_mem_init(&m, mem);
  wsmsg_server *srv = wsm_calloc(&m, sizeof(*srv));
  if (!srv)
    return NULL;
  srv->mem = m;
  if (wsm_registry_init(srv)) {
    wsm_free(&m, srv);
    return NULL;
  }
  wsm_pool_init(&srv->pool, &srv->mem);
  atomic_init(&srv->frozen, 0);
  srv->max_request = DEFAULT_MAX_REQUEST;
  srv->max_headers = DEFAULT_MAX_HEADERS;
  srv->t_handshake = DEFAULT_TIMEOUT;
  srv->clock = wsm_default_clock;
  srv->mem_budget = DEFAULT_MEM_BUDGET;
  srv->mem_share = DEFAULT_MEM_SHARE;
  atomic_init(&srv->mem_used, 0);
  return srv;
}

wsmsg_server *wsmsg_server_new(void) { return wsmsg_server_new_mem(NULL); }

void wsmsg_server_free(wsmsg_server *srv) {
  if (!srv)
    return;
  wsmsg_mem m = srv->mem;
  for (size_t i = 0; i < srv->nroutes; i++)
    wsm_free(&m, srv->routes[i].path);
  wsm_free(&m, srv->routes);
  wsm_pool_destroy(&srv->pool);
  wsm_registry_destroy(srv);
  wsm_free(&m, srv);
}

/* 0 if the server may still be configured (no connection accepted yet),
 * else WSMSG_ERR_INVALID_ARG (NULL) or WSMSG_ERR_STATE. */
static int srv_writable(const wsmsg_server *srv) {
  if (!srv)
    return WSMSG_ERR_INVALID_ARG;
  if (atomic_load(&srv->frozen))
    return WSMSG_ERR_STATE;
  return 0;
}

int wsmsg_server_route(wsmsg_server *srv, const char *path,
                       wsmsg_endpoint *ep) {
  int r = srv_writable(srv);
  if (r)
    return r;
  if (!path || !ep)
    return WSMSG_ERR_INVALID_ARG;
  size_t len = strlen(path);
  if (!(path[0] == '/' || strcmp(path, "*") == 0))
    return WSMSG_ERR_INVALID_ARG;
  for (const char *p = path; *p; p++)
    if ((unsigned char)*p <= ' ' || *p == '?' || *p == 0x7f)
      return WSMSG_ERR_INVALID_ARG;
  bool prefix = path[len - 1] == '*';
  if (prefix)
    len--;
  for (size_t i = 0; i < srv->nroutes; i++)
    if (srv->routes[i].prefix == prefix && srv->routes[i].len == len &&
        memcmp(srv->routes[i].path, path, len) == 0)
      return WSMSG_ERR_STATE;
  char *d = wsm_strndup(&srv->mem, path, len);
  if (!d)
    return WSMSG_ERR_NOMEM;
  wsm_route *nr =
      wsm_realloc(&srv->mem, srv->routes, srv->nroutes * sizeof(wsm_route),
                  (srv->nroutes + 1) * sizeof(wsm_route));
  if (!nr) {
    wsm_free(&srv->mem, d);
    return WSMSG_ERR_NOMEM;
  }
  nr[srv->nroutes++] = (wsm_route){d, len, prefix, ep};
  srv->routes = nr;
  return 0;
}

wsmsg_endpoint *wsm_server_lookup(const wsmsg_server *srv, const char *path,
                                  size_t len) {
  const wsm_route *best = NULL;
  for (size_t i = 0; i < srv->nroutes; i++) {
    const wsm_route *r = &srv->routes[i];
    if (!r->prefix) {
      if (r->len == len && memcmp(r->path, path, len) == 0)
        return r->ep;
    } else if (r->len <= len && memcmp(r->path, path, r->len) == 0) {
      if (!best || r->len > best->len)
        best = r;
    }
  }
  return best ? best->ep : NULL;
}

int wsmsg_server_set_memory_budget(wsmsg_server *srv, size_t bytes,
                                   size_t per_conn) {
  int r = srv_writable(srv);
  if (r)
    return r;
  if (bytes && per_conn > bytes)
    return WSMSG_ERR_INVALID_ARG;
  srv->mem_budget = bytes;
  srv->mem_share = per_conn;
  return 0;
}

int wsmsg_server_set_max_request_size(wsmsg_server *srv, size_t bytes) {
  int r = srv_writable(srv);
  if (r)
    return r;
  if (bytes < MIN_MAX_REQUEST)
    return WSMSG_ERR_INVALID_ARG;
  srv->max_request = bytes;
  return 0;
}

int wsmsg_server_on_output(wsmsg_server *srv, wsmsg_output_cb cb) {
  int r = srv_writable(srv);
  if (r)
    return r;
  srv->on_output = cb;
  return 0;
}

int wsmsg_server_set_max_headers(wsmsg_server *srv, uint32_t count) {
  int r = srv_writable(srv);
  if (r)
    return r;
  if (count < MIN_MAX_HEADERS)
    return WSMSG_ERR_INVALID_ARG;
  srv->max_headers = count;
  return 0;
}

int wsmsg_server_set_handshake_timeout(wsmsg_server *srv, uint32_t ms) {
  int r = srv_writable(srv);
  if (r)
    return r;
  srv->t_handshake = ms;
  return 0;
}

int wsmsg_server_set_clock(wsmsg_server *srv, wsmsg_clock_cb cb, void *user) {
  int r = srv_writable(srv);
  if (r)
    return r;
  srv->clock = cb ? cb : wsm_default_clock;
  srv->clock_user = cb ? user : NULL;
  return 0;
}
