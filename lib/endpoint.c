/* Endpoints (callbacks, limits, protocol options) and servers (routing). */
#include "internal.h"

#include <string.h>

#define DEFAULT_MAX_MESSAGE (1u << 20)
#define DEFAULT_MAX_FRAGMENTS 4096u
#define DEFAULT_MAX_REQUEST 8192u
#define DEFAULT_MAX_HEADERS 64u
#define DEFAULT_TIMEOUT 10000u
#define DEFAULT_BP_HIGH (8u << 20)
#define DEFAULT_BP_LOW (2u << 20)

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
  ep->t_close = DEFAULT_TIMEOUT;
  ep->bp_high = DEFAULT_BP_HIGH;
  ep->vflags = WSMSG_VALIDATE_COERCE | WSMSG_VALIDATE_DEFAULTS;
  ep->max_events = 4096;
  ep->max_event_bytes = 16u << 20;
  ep->bp_low = DEFAULT_BP_LOW;
  ep->t_handshake = DEFAULT_TIMEOUT;
  ep->clock = wsm_default_clock;
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
  wsm_json_endpoint_free(ep);
  wsm_pool_destroy(&ep->pool);
  wsm_free(&m, ep);
}

int wsm_ep_writable(const wsmsg_endpoint *ep) {
  if (!ep)
    return WSMSG_ERR_INVALID_ARG;
  if (atomic_load(&ep->frozen))
    return WSMSG_ERR_STATE;
  return 0;
}

#define SETTER(fn, field, type)                                                \
  int fn(wsmsg_endpoint *ep, type v) {                                         \
    int r = wsm_ep_writable(ep);                                               \
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
SETTER(wsmsg_endpoint_set_max_message_size, max_message, uint64_t)
SETTER(wsmsg_endpoint_set_max_fragments, max_fragments, uint32_t)
SETTER(wsmsg_endpoint_on_timeout, on_timeout, wsmsg_timeout_cb)
SETTER(wsmsg_endpoint_on_drain, on_drain, wsmsg_drain_cb)

int wsmsg_endpoint_set_backpressure(wsmsg_endpoint *ep, size_t high, size_t low,
                                    int policy) {
  int r = wsm_ep_writable(ep);
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

int wsmsg_endpoint_on_chunk(wsmsg_endpoint *ep, wsmsg_chunk_cb cb,
                            unsigned kinds) {
  int r = wsm_ep_writable(ep);
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

int wsmsg_endpoint_set_clock(wsmsg_endpoint *ep, wsmsg_clock_cb cb,
                             void *user) {
  int r = wsm_ep_writable(ep);
  if (r)
    return r;
  ep->clock = cb ? cb : wsm_default_clock;
  ep->clock_user = cb ? user : NULL;
  return 0;
}

int wsmsg_endpoint_set_timeout_action(wsmsg_endpoint *ep, int action,
                                      const char *heartbeat) {
  int r = wsm_ep_writable(ep);
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

int wsmsg_endpoint_set_pong_events(wsmsg_endpoint *ep, int on) {
  int r = wsm_ep_writable(ep);
  if (!r)
    ep->pong_events = on != 0;
  return r;
}

int wsmsg_endpoint_require_subprotocol(wsmsg_endpoint *ep, int on) {
  int r = wsm_ep_writable(ep);
  if (!r)
    ep->require_subprotocol = on != 0;
  return r;
}

/* RFC 7230 tchar */
static bool is_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
      (c >= 'A' && c <= 'Z'))
    return true;
  return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_token(const char *s) {
  if (!s || !*s)
    return false;
  for (; *s; s++)
    if (!is_tchar((unsigned char)*s))
      return false;
  return true;
}

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
  int r = wsm_ep_writable(ep);
  if (r)
    return r;
  if (!is_token(name))
    return WSMSG_ERR_INVALID_ARG;
  for (size_t i = 0; i < ep->nsubprotocols; i++)
    if (strcmp(ep->subprotocols[i], name) == 0)
      return 0;
  return push_str(&ep->mem, &ep->subprotocols, &ep->nsubprotocols, name);
}

int wsmsg_endpoint_allow_origin(wsmsg_endpoint *ep, const char *origin) {
  int r = wsm_ep_writable(ep);
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

/* ---- servers ---- */

wsmsg_server *wsmsg_server_new_mem(const wsmsg_mem *mem) {
  wsmsg_mem m;
  wsm_mem_init(&m, mem);
  wsmsg_server *srv = wsm_calloc(&m, sizeof(*srv));
  if (!srv)
    return NULL;
  srv->mem = m;
  wsm_pool_init(&srv->pool, &srv->mem);
  atomic_init(&srv->frozen, 0);
  srv->max_request = DEFAULT_MAX_REQUEST;
  srv->max_headers = DEFAULT_MAX_HEADERS;
  srv->t_handshake = DEFAULT_TIMEOUT;
  srv->clock = wsm_default_clock;
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
  wsm_free(&m, srv);
}

int wsmsg_server_route(wsmsg_server *srv, const char *path,
                       wsmsg_endpoint *ep) {
  if (!srv || !path || !ep)
    return WSMSG_ERR_INVALID_ARG;
  if (atomic_load(&srv->frozen))
    return WSMSG_ERR_STATE;
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

int wsmsg_server_set_max_request_size(wsmsg_server *srv, size_t bytes) {
  if (!srv || bytes < 64)
    return WSMSG_ERR_INVALID_ARG;
  if (atomic_load(&srv->frozen))
    return WSMSG_ERR_STATE;
  srv->max_request = bytes;
  return 0;
}

int wsmsg_server_set_max_headers(wsmsg_server *srv, uint32_t count) {
  if (!srv || count < 4)
    return WSMSG_ERR_INVALID_ARG;
  if (atomic_load(&srv->frozen))
    return WSMSG_ERR_STATE;
  srv->max_headers = count;
  return 0;
}

int wsmsg_server_set_handshake_timeout(wsmsg_server *srv, uint32_t ms) {
  if (!srv)
    return WSMSG_ERR_INVALID_ARG;
  if (atomic_load(&srv->frozen))
    return WSMSG_ERR_STATE;
  srv->t_handshake = ms;
  return 0;
}

int wsmsg_server_set_clock(wsmsg_server *srv, wsmsg_clock_cb cb, void *user) {
  if (!srv)
    return WSMSG_ERR_INVALID_ARG;
  if (atomic_load(&srv->frozen))
    return WSMSG_ERR_STATE;
  srv->clock = cb ? cb : wsm_default_clock;
  srv->clock_user = cb ? user : NULL;
  return 0;
}
