/* Validation error lists (wsmsg_verrors): Pydantic v1 shaped
 * {loc, msg, type[, ctx]} entries, or v2 shaped {type, loc, msg, input[,
 * ctx]} (schema_v2.c rewrites them as they are added). */
#include "schema_internal.h"

#include <limits.h>
#include <string.h>

wsmsg_verrors *wsmsg_verrors_new_mem(const wsmsg_mem *mem) {
  wsmsg_mem m;
  wsm_mem_init(&m, mem);
  wsmsg_verrors *e = wsm_calloc(&m, sizeof(*e));
  if (e) {
    e->mem = m;
    e->max = WSMSG_VERRORS_DEFAULT_MAX;
  }
  return e;
}

wsmsg_verrors *wsmsg_verrors_new(void) { return wsmsg_verrors_new_mem(NULL); }

static void verr_free(const wsmsg_verrors *e, wsm_verr *v) {
  json_decref(v->loc);
  json_decref(v->ctx);
  json_decref(v->input);
  wsm_free(&e->mem, v->msg);
}

void wsm_verrors_truncate(wsmsg_verrors *e, size_t from) {
  while (e->n > from)
    verr_free(e, &e->v[--e->n]);
  if (e->n < e->max)
    e->truncated = false;
}

void wsmsg_verrors_clear(wsmsg_verrors *e) {
  if (!e)
    return;
  if (e->n)
    wsm_verrors_truncate(e, 0);
  e->truncated = false;
}

void wsmsg_verrors_free(wsmsg_verrors *e) {
  if (!e)
    return;
  wsmsg_verrors_clear(e);
  wsmsg_mem m = e->mem;
  wsm_free(&m, e->v);
  if (e->md)
    pcre2_match_data_free(e->md);
  wsm_free(&m, e);
}

int wsmsg_verrors_set_max(wsmsg_verrors *e, size_t max) {
  if (!e || max == 0)
    return WSMSG_ERR_INVALID_ARG;
  e->max = max;
  return 0;
}

size_t wsmsg_verrors_count(const wsmsg_verrors *e) { return e ? e->n : 0; }

int wsmsg_verrors_truncated(const wsmsg_verrors *e) {
  return e && e->truncated ? 1 : 0;
}

int wsm_verrors_add(wsmsg_verrors *e, json_t *loc, const char *type, char *msg,
                    json_t *ctx) {
  return wsm_verrors_add_in(e, loc, type, msg, ctx, NULL);
}

int wsm_verrors_add_in(wsmsg_verrors *e, json_t *loc, const char *type,
                       char *msg, json_t *ctx, const json_t *input) {
  int rc = 0;
  if (!loc || !msg) {
    rc = WSMSG_ERR_NOMEM;
    goto drop;
  }
  if (e->n >= e->max) {
    e->truncated = true;
    rc = 1;
    goto drop;
  }
  if (e->n == e->cap) {
    size_t cap = e->cap ? e->cap * 2 : 8;
    wsm_verr *v =
        wsm_realloc(&e->mem, e->v, e->cap * sizeof(*v), cap * sizeof(*v));
    if (!v) {
      rc = WSMSG_ERR_NOMEM;
      goto drop;
    }
    e->v = v;
    e->cap = cap;
  }
  if (e->v2) {
    wsm_v2_convert(&e->mem, &type, &msg, &ctx, input);
    /* v2 has no "__root__": the root is [] */
    json_t *l0 = json_array_get(loc, 0);
    if (json_array_size(loc) == 1 && json_is_string(l0) &&
        strcmp(json_string_value(l0), "__root__") == 0)
      json_array_clear(loc);
    /* a tagged union's errors are the union's, at its location (the
     * root, for wsmsg_endpoint_route_json) */
    if (strncmp(type, "union_tag_", 10) == 0)
      json_array_clear(loc);
  }
  e->v[e->n].loc = loc;
  e->v[e->n].msg = msg;
  e->v[e->n].type = type;
  e->v[e->n].ctx = ctx;
  e->v[e->n].input = e->v2 && input ? json_incref((json_t *)input) : NULL;
  e->n++;
  return 0;
drop:
  json_decref(loc);
  json_decref(ctx);
  wsm_free(&e->mem, msg);
  return rc;
}

static const wsm_verr *at(const wsmsg_verrors *e, size_t i) {
  return e && i < e->n ? &e->v[i] : NULL;
}

const char *wsmsg_verrors_msg(const wsmsg_verrors *e, size_t i) {
  const wsm_verr *v = at(e, i);
  return v ? v->msg : NULL;
}

const char *wsmsg_verrors_type(const wsmsg_verrors *e, size_t i) {
  const wsm_verr *v = at(e, i);
  return v ? v->type : NULL;
}

json_t *wsmsg_verrors_loc(const wsmsg_verrors *e, size_t i) {
  const wsm_verr *v = at(e, i);
  return v ? v->loc : NULL;
}

json_t *wsmsg_verrors_ctx(const wsmsg_verrors *e, size_t i) {
  const wsm_verr *v = at(e, i);
  return v ? v->ctx : NULL;
}

json_t *wsmsg_verrors_input(const wsmsg_verrors *e, size_t i) {
  const wsm_verr *v = at(e, i);
  return v ? v->input : NULL;
}

static json_t *verr_json(const wsmsg_verrors *e, const wsm_verr *v) {
  json_t *o = json_object();
  if (!o)
    return NULL;
  int bad = 0;
  if (e->v2) { /* Pydantic v2's key order: type, loc, msg, input, ctx */
    bad |= json_object_set_new(o, "type", json_string(v->type));
    bad |= json_object_set(o, "loc", v->loc);
    bad |= json_object_set_new(o, "msg", json_string(v->msg));
    if (v->input)
      bad |= json_object_set(o, "input", v->input);
  } else {
    bad |= json_object_set(o, "loc", v->loc);
    bad |= json_object_set_new(o, "msg", json_string(v->msg));
    bad |= json_object_set_new(o, "type", json_string(v->type));
  }
  if (v->ctx)
    bad |= json_object_set(o, "ctx", v->ctx);
  if (bad) {
    json_decref(o);
    return NULL;
  }
  return o;
}

static json_t *range_json(const wsmsg_verrors *e, size_t from) {
  json_t *a = json_array();
  for (size_t i = from; a && i < e->n; i++) {
    if (json_array_append_new(a, verr_json(e, &e->v[i])) != 0) {
      json_decref(a);
      a = NULL;
    }
  }
  return a;
}

json_t *wsm_verrors_take(wsmsg_verrors *e, size_t from) {
  json_t *a = range_json(e, from);
  wsm_verrors_truncate(e, from);
  return a;
}

json_t *wsmsg_verrors_to_json(const wsmsg_verrors *e) {
  if (!e)
    return NULL;
  json_t *a = range_json(e, 0);
  if (!a)
    return NULL;
  json_t *o = json_object();
  if (!o || json_object_set_new(o, "detail", a) != 0) {
    json_decref(o);
    return NULL;
  }
  return o;
}

/* json_dumpb into buf, snprintf style: one pass when the text fits. */
static int dump_into(const wsmsg_mem *m, const json_t *j, char *buf,
                     size_t size) {
  if (!j)
    return WSMSG_ERR_NOMEM;
  const size_t flags = JSON_COMPACT;
  size_t need = json_dumpb(j, buf && size ? buf : NULL, buf ? size : 0, flags);
  if (need == 0)
    return WSMSG_ERR_NOMEM;
  if (need > INT_MAX - 1)
    return WSMSG_ERR_TOO_BIG;
  if (buf && size > 0) {
    if (need < size) {
      buf[need] = '\0';
    } else { /* truncated: json_dumpb leaves the buffer undefined */
      char *tmp = wsm_malloc(m, need);
      if (!tmp)
        return WSMSG_ERR_NOMEM;
      json_dumpb(j, tmp, need, flags);
      memcpy(buf, tmp, size - 1);
      buf[size - 1] = '\0';
      wsm_free(m, tmp);
    }
  }
  return (int)need;
}

int wsmsg_verrors_loc_dump(const wsmsg_verrors *e, size_t i, char *buf,
                           size_t size) {
  const wsm_verr *v = at(e, i);
  if (!v)
    return WSMSG_ERR_INVALID_ARG;
  return dump_into(&e->mem, v->loc, buf, size);
}

int wsmsg_verrors_dump(const wsmsg_verrors *e, char *buf, size_t size) {
  if (!e)
    return WSMSG_ERR_INVALID_ARG;
  json_t *j = wsmsg_verrors_to_json(e);
  int rc = dump_into(&e->mem, j, buf, size);
  json_decref(j);
  return rc;
}

int wsm_verrors_add_jsondecode(wsmsg_verrors *e, json_error_t *je,
                               const char *text, size_t len) {
  wsm_jerr_text(je); /* UTF-8, and wsmsg's words for a NUL in a key */
  json_t *ctx =
      json_pack("{s:s, s:i, s:i, s:i}", "msg", je->text, "pos", je->position,
                "lineno", je->line, "colno", je->column);
  char *msg = wsm_asprintf(&e->mem, "%s: line %d column %d (char %d)", je->text,
                           je->line, je->column, je->position);
  /* v2's input: the text, when it is a string at all (UTF-8) */
  json_t *in = e->v2 && wsmsg_utf8_valid(text, len)
                   ? json_stringn_nocheck(text, len)
                   : NULL;
  int rc = wsm_verrors_add_in(e, json_pack("[s]", "__root__"),
                              "value_error.jsondecode", msg, ctx, in);
  json_decref(in);
  return rc < 0 ? rc : 0;
}
