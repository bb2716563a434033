/* JSON messages over jansson: parse, validate (lib/schema*.c), route by a
 * discriminator, deliver; send compactly; wrappers for FFI.  A JSON
 * endpoint's configuration (wsmsg_endpoint_on_json, route_json...) is
 * endpoint.c's. */
#include "internal.h"
#include "schema_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define SEND_STACK 4096

/* ---- receiving ---- */

/* A JSON value as text (jansson's default encoding, as json_dumps writes
 * it) in a string from `m`; NULL if out of memory. */
static char *dump_value(const wsmsg_mem *m, const json_t *v) {
  size_t n = json_dumpb(v, NULL, 0, JSON_ENCODE_ANY);
  char *s = n ? wsm_malloc(m, n + 1) : NULL;
  if (s) {
    json_dumpb(v, s, n, JSON_ENCODE_ANY);
    s[n] = '\0';
  }
  return s;
}

/* Errors made by this layer: loc is [key] (or ["__root__"]); `input` is
 * v2's (borrowed). */
static void add_error(wsmsg_verrors *e, const char *key, const char *type,
                      char *msg, json_t *ctx, const json_t *input) {
  (void)wsm_verrors_add_in(e, json_pack("[s]", key), type, msg, ctx, input);
}

/* Pydantic's repr of the allowed values: 'a', 'b' */
static char *allowed_values(const wsmsg_mem *m, const wsmsg_endpoint *ep) {
  size_t n = 1;
  for (size_t i = 0; i < ep->njroutes; i++)
    n += strlen(ep->jroutes[i].value) + 4;
  char *s = wsm_malloc(m, n);
  if (!s)
    return NULL;
  s[0] = '\0';
  for (size_t i = 0; i < ep->njroutes; i++) {
    strcat(s, i ? ", '" : "'");
    strcat(s, ep->jroutes[i].value);
    strcat(s, "'");
  }
  return s;
}

/* More than inv_max invalid messages within inv_window: close 1008 rather
 * than answer (each reply is larger than what it answers).  False if the
 * connection was failed. */
static bool invalid_admit(wsmsg_conn *c) {
  const wsmsg_endpoint *ep = c->ep;
  if (!ep->inv_max)
    return true;
  uint64_t now = wsm_now(c);
  if (c->inv_count == 0 || now - c->inv_start >= ep->inv_window) {
    c->inv_start = now;
    c->inv_count = 0;
  }
  if (++c->inv_count <= ep->inv_max)
    return true;
  char why[96];
  snprintf(why, sizeof(why), "too many invalid messages: over %u within %u ms",
           ep->inv_max, ep->inv_window);
  wsm_conn_fail(c, WSMSG_ERR_RATE_LIMIT, 1008, why);
  return false;
}

static void invalid_report(wsmsg_conn *c, wsmsg_verrors *errs, const char *text,
                           size_t len);

/* Report an invalid message, then empty the list: v2 errors hold
 * references to the document ("input"), which must not stay alive on an
 * idle connection. */
void wsm_json_invalid(wsmsg_conn *c, wsmsg_verrors *errs, const char *text,
                      size_t len) {
  invalid_report(c, errs, text, len);
  wsmsg_verrors_clear(errs);
}

static void invalid_report(wsmsg_conn *c, wsmsg_verrors *errs, const char *text,
                           size_t len) {
  const wsmsg_endpoint *ep = c->ep;
  if (!invalid_admit(c))
    return;
  if (ep->on_invalid) {
    ep->on_invalid(c, errs, text, len, c->user);
  } else if (!wsm_ep_push(ep)) {
    /* pull API: the event carries {"detail": [...]} and the text (a push
     * endpoint queues nothing: the invalid policy answers, or the message
     * is dropped) */
    wsm_evnode *n = wsm_ev_new(c, WSMSG_EV_INVALID, text, len, 0);
    if (n) {
      n->ev.json = wsmsg_verrors_to_json(errs);
      if (!wsm_ev_push(c, n))
        return;
    }
  }
  if (wsmsg_conn_state(c) != WSMSG_STATE_OPEN)
    return; /* the callback closed it */
  if (ep->invalid_policy == WSMSG_INVALID_REPLY) {
    json_t *body = wsmsg_verrors_to_json(errs);
    if (body && json_object_set_new(body, "error",
                                    json_string("validation_error")) == 0) {
      /* "error" first, as the reply format reads */
      json_t *reply = json_pack("{s:s, s:O}", "error", "validation_error",
                                "detail", json_object_get(body, "detail"));
      if (reply)
        wsmsg_send_json(c, reply);
      json_decref(reply);
    }
    json_decref(body);
  } else if (ep->invalid_policy == WSMSG_INVALID_CLOSE) {
    const char *m = wsmsg_verrors_count(errs) ? wsmsg_verrors_msg(errs, 0)
                                              : "invalid message";
    /* whole: wsmsg_close cuts it to 123 bytes on a character boundary (a
     * fixed buffer could end inside one, and the close would be refused) */
    char *reason = wsm_asprintf(c->mem, "invalid message: %s", m);
    wsmsg_close(c, 1008, reason ? reason : "invalid message");
    wsm_free(c->mem, reason);
  }
}

int wsm_json_deliver(wsmsg_conn *c, const char *text, size_t len) {
  const wsmsg_endpoint *ep = c->ep;
  if (!c->verrs) {
    c->verrs = wsmsg_verrors_new_mem(c->mem);
    if (!c->verrs)
      return WSMSG_ERR_NOMEM;
    wsmsg_verrors_set_max(c->verrs, ep->max_errors);
  }
  wsmsg_verrors *errs = c->verrs;
  wsmsg_verrors_clear(errs);
  errs->v2 = (ep->vflags & WSMSG_VALIDATE_PYDANTIC_V2) != 0;
  json_error_t jerr;
  /* any JSON value is a message (RFC 8259), not only objects and arrays;
   * "\u0000" inside strings is valid JSON (JSON.stringify makes it) */
  size_t pflags = JSON_DECODE_ANY | JSON_ALLOW_NUL |
                  (ep->allow_dups ? 0 : JSON_REJECT_DUPLICATES);
  json_t *doc = json_loadb(text, len, pflags, &jerr);
  if (!doc) {
    (void)wsm_verrors_add_jsondecode(errs, &jerr, text, len);
    wsm_json_invalid(c, errs, text, len);
    return 0;
  }
  wsmsg_json_cb cb = ep->on_json;
  /* the endpoint's schema first, then the route's: errors from both, in
   * that order (docs/schema.md, "Schemas and routes").  With routes, extra
   * ignore/forbid is the route schema's: the endpoint's runs with extra
   * allowed (it would drop what only the route declares). */
  bool ok = true;
  if (ep->schema) {
    unsigned fl = ep->vflags;
    if (ep->njroutes)
      fl &= ~(unsigned)(WSMSG_VALIDATE_EXTRA_IGNORE |
                        WSMSG_VALIDATE_EXTRA_FORBID);
    int r = wsmsg_schema_validate(ep->schema, doc, fl, errs);
    if (r && r != WSMSG_ERR_VALIDATION) {
      json_decref(doc);
      return r;
    }
    ok = r == 0;
  }
  if (ep->njroutes) {
    const char *f = ep->route_field;
    json_t *tag = json_is_object(doc) ? json_object_get(doc, f) : NULL;
    const wsm_jroute *route =
        json_is_string(tag)
            ? wsm_ep_find_route(ep, json_string_value(tag), NULL)
            : NULL;
    if (!json_is_object(doc)) {
      add_error(errs, "__root__", "type_error.dict",
                wsm_strdup(c->mem, "value is not a valid dict"), NULL, doc);
    } else if (!tag) {
      add_error(
          errs, f, "value_error.discriminated_union.missing_discriminator",
          wsm_asprintf(c->mem, "Discriminator '%s' is missing in value", f),
          json_pack("{s:s}", "discriminator_key", f), doc);
    } else if (!route) {
      char *allowed = allowed_values(c->mem, ep);
      char *val = json_is_string(tag) ? NULL : dump_value(c->mem, tag);
      const char *shown = val ? val : json_string_value(tag);
      add_error(errs, f,
                "value_error.discriminated_union.invalid_discriminator",
                wsm_asprintf(c->mem,
                             "No match for discriminator '%s' and value '%s' "
                             "(allowed values: %s)",
                             f, shown, allowed ? allowed : ""),
                json_pack("{s:s, s:s, s:s}", "discriminator_key", f,
                          "discriminator_value", shown, "allowed_values",
                          allowed ? allowed : ""),
                doc);
      wsm_free(c->mem, val);
      wsm_free(c->mem, allowed);
    }
    if (!route) {
      json_decref(doc);
      wsm_json_invalid(c, errs, text, len);
      return 0;
    }
    if (route->schema) {
      /* appends to the endpoint schema's errors */
      int r = wsm_schema_validate_more(route->schema, doc, ep->vflags, errs);
      if (r && r != WSMSG_ERR_VALIDATION) {
        json_decref(doc);
        return r;
      }
      ok = ok && r == 0;
    }
    if (route->cb)
      cb = route->cb;
  }
  if (!ok) {
    json_decref(doc);
    wsm_json_invalid(c, errs, text, len);
    return 0;
  }
  if (cb) {
    cb(c, doc, c->user);
    json_decref(doc);
    return 0;
  }
  if (wsm_ep_push(ep)) { /* a route without a callback on a push endpoint */
    json_decref(doc);
    wsm_rx_unhandled(c, "JSON messages without a handler");
    return 0;
  }
  wsm_evnode *n = wsm_ev_new(c, WSMSG_EV_JSON, text, len, 0);
  if (!n) {
    json_decref(doc);
    return WSMSG_ERR_NOMEM;
  }
  n->ev.json = doc; /* the event owns it */
  wsm_ev_push(c, n);
  return 0;
}

/* ---- sending ---- */

int wsmsg_send_json(wsmsg_conn *c, const json_t *msg) {
  int r = wsm_can_send(c);
  if (r)
    return r;
  if (!msg)
    return WSMSG_ERR_INVALID_ARG;
  char stack[SEND_STACK];
  size_t n =
      json_dumpb(msg, stack, sizeof(stack), JSON_COMPACT | JSON_ENCODE_ANY);
  if (n == 0)
    return WSMSG_ERR_INVALID_ARG;
  if (n <= sizeof(stack)) /* jansson output is valid UTF-8: no re-check */
    return wsm_send_data(c, WSLAY_TEXT_FRAME, (const uint8_t *)stack, n);
  char *heap = wsm_malloc(c->mem, n);
  if (!heap)
    return WSMSG_ERR_NOMEM;
  size_t m = json_dumpb(msg, heap, n, JSON_COMPACT | JSON_ENCODE_ANY);
  r = m == n ? wsm_send_data(c, WSLAY_TEXT_FRAME, (const uint8_t *)heap, n)
             : WSMSG_ERR_INVALID_ARG;
  wsm_free(c->mem, heap);
  return r;
}

int64_t wsmsg_broadcast_json(wsmsg_conn *const *conns, size_t n,
                             const json_t *msg) {
  if ((!conns && n) || !msg)
    return WSMSG_ERR_INVALID_ARG;
  char stack[SEND_STACK];
  size_t len =
      json_dumpb(msg, stack, sizeof(stack), JSON_COMPACT | JSON_ENCODE_ANY);
  if (len == 0)
    return WSMSG_ERR_INVALID_ARG;
  /* jansson writes valid UTF-8: no second check */
  if (len <= sizeof(stack))
    return wsm_broadcast(conns, n, WSLAY_TEXT_FRAME, stack, len);
  const wsmsg_mem *m = NULL; /* the first recipient's allocator */
  for (size_t i = 0; i < n && !m; i++)
    if (conns[i])
      m = conns[i]->mem;
  if (!m)
    return 0; /* nobody to send to */
  char *heap = wsm_malloc(m, len);
  if (!heap)
    return WSMSG_ERR_NOMEM;
  int64_t r =
      json_dumpb(msg, heap, len, JSON_COMPACT | JSON_ENCODE_ANY) == len
          ? wsm_broadcast(conns, n, WSLAY_TEXT_FRAME, heap, len)
          : WSMSG_ERR_INVALID_ARG;
  wsm_free(m, heap);
  return r;
}

int wsmsg_send_jsonf(wsmsg_conn *c, const char *fmt, ...) {
  if (!c || !fmt)
    return WSMSG_ERR_INVALID_ARG;
  va_list ap;
  va_start(ap, fmt);
  json_error_t err;
  json_t *doc = json_vpack_ex(&err, 0, fmt, ap);
  va_end(ap);
  if (!doc)
    return WSMSG_ERR_INVALID_ARG;
  int r = wsmsg_send_json(c, doc);
  json_decref(doc);
  return r;
}

/* ---- FFI wrappers ---- */

json_t *wsmsg_json_incref(json_t *j) { return json_incref(j); }

void wsmsg_json_decref(json_t *j) { json_decref(j); }

json_t *wsmsg_json_loads(const char *text, size_t len) {
  if (!text)
    return NULL;
  return json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
}

int64_t wsmsg_json_dumpb(const json_t *j, char *buf, size_t size) {
  if (!j || (!buf && size))
    return WSMSG_ERR_INVALID_ARG;
  size_t n = json_dumpb(j, buf, size, JSON_COMPACT | JSON_ENCODE_ANY);
  if (n == 0)
    return WSMSG_ERR_INVALID_ARG;
  if (n < size)
    buf[n] = '\0';
  return (int64_t)n;
}
