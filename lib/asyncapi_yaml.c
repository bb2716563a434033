/* YAML -> jansson for AsyncAPI documents (libyaml's event parser).
 *
 * Plain scalars follow the YAML 1.2 core schema: null (~, null, empty),
 * booleans (true/false in three spellings only: "on", "yes" stay strings),
 * integers (decimal, 0o octal, 0x hex), floats (with .inf/.nan refused:
 * JSON has no such numbers); quoted and block scalars are strings ('1.8.0'
 * and 1.8.0 alike).  Tags !!str !!int !!float !!bool !!null are honoured.
 * Anchors and aliases share the value (json_incref); merge keys ("<<")
 * merge a mapping or a list of mappings, explicit keys winning.  Keys must
 * be scalars; duplicate keys are refused.  The expanded size (aliases
 * counted at their full size, every node YAML_NODE_COST plus the bytes of
 * its text, keys included) is capped, as is nesting, so a "billion laughs"
 * document is refused instead of exploding later: in nodes, and in text
 * (one long string behind a million aliases is gigabytes once serialized,
 * and a key alias is copied, not shared).  Only the first
 * document of a stream is read; a second one is an error.
 *
 * libyaml allocates with libc's malloc (it has no allocator hook); the
 * converter's own scratch memory goes through wsmsg_mem. */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define YAML_MAX_DEPTH 256
/* The expanded size: a node costs YAML_NODE_COST plus its text (a key's
 * text is charged to its mapping).  At most YAML_MAX_EXPANDED, or
 * YAML_EXPANDED_PER_BYTE times the input for a larger document without
 * aliases (a list of one-digit numbers costs 17 per 2 bytes of input).
 * 32 MiB is 2,000,000 small nodes. */
#define YAML_NODE_COST 16u
#define YAML_MAX_EXPANDED ((size_t)32 << 20)
#define YAML_EXPANDED_PER_BYTE 16u

typedef struct yframe {
  json_t *v;      /* object or array */
  char *key;      /* mapping: the pending key (NULL: next scalar is a key) */
  char *anchor;   /* to register when the collection ends */
  size_t size;    /* expanded size so far (see YAML_NODE_COST) */
  json_t *merges; /* array of merge sources, or NULL */
  bool merge_key; /* the pending key is "<<" */
} yframe;

typedef struct yanchor {
  char *name;
  json_t *v;
  size_t size;
} yanchor;

typedef struct yctx {
  const wsmsg_mem *mem;
  yframe st[YAML_MAX_DEPTH];
  size_t depth;
  yanchor *anchors;
  size_t nanchors, capanchors;
  size_t total, max_total; /* expanded size of the document, its cap */
  json_t *root;
  char *err;
  size_t errsz;
  bool failed;
} yctx;

static void yfail(yctx *c, const yaml_mark_t *m, const char *fmt, ...) {
  if (c->failed)
    return;
  c->failed = true;
  if (!c->err || !c->errsz)
    return;
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (m)
    snprintf(c->err, c->errsz, "YAML line %zu column %zu: %s", m->line + 1,
             m->column + 1, msg);
  else
    snprintf(c->err, c->errsz, "YAML: %s", msg);
  wsm_utf8_scrub(c->err);
}

static bool all_digits(const char *s, const char *digits) {
  if (!*s)
    return false;
  for (; *s; s++)
    if (!strchr(digits, *s))
      return false;
  return true;
}

/* YAML 1.2 core schema resolution of a plain scalar. */
static json_t *core_scalar(yctx *c, const char *s, size_t n,
                           const yaml_mark_t *m) {
  if (n == 0 || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
      !strcmp(s, "NULL"))
    return json_null();
  if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
    return json_true();
  if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
    return json_false();
  if (strlen(s) != n) /* a NUL inside: a string */
    return json_stringn(s, n);
  const char *d = s;
  if (*d == '-' || *d == '+')
    d++;
  if (all_digits(d, "0123456789")) {
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE)
      return json_real(strtod(s, NULL));
    return json_integer(v);
  }
  if ((s[0] == '0' && s[1] == 'o' && all_digits(s + 2, "01234567")) ||
      (s[0] == '0' && s[1] == 'x' &&
       all_digits(s + 2, "0123456789abcdefABCDEF"))) {
    errno = 0;
    unsigned long long v = strtoull(s + 2, NULL, s[1] == 'o' ? 8 : 16);
    if (errno == ERANGE || v > (unsigned long long)INT64_MAX)
      return json_real((double)v);
    return json_integer((json_int_t)v);
  }
  if (!strcmp(d, ".inf") || !strcmp(d, ".Inf") || !strcmp(d, ".INF") ||
      !strcmp(s, ".nan") || !strcmp(s, ".NaN") || !strcmp(s, ".NAN")) {
    yfail(c, m, "%s is not a JSON number", s);
    return NULL;
  }
  /* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
  const char *p = d;
  size_t before = 0, after = 0;
  while (*p >= '0' && *p <= '9') {
    p++;
    before++;
  }
  bool dot = *p == '.';
  if (dot) {
    p++;
    while (*p >= '0' && *p <= '9') {
      p++;
      after++;
    }
  }
  bool num = before > 0 || after > 0;
  if (num && (*p == 'e' || *p == 'E')) {
    p++;
    if (*p == '-' || *p == '+')
      p++;
    size_t e = 0;
    while (*p >= '0' && *p <= '9') {
      p++;
      e++;
    }
    num = e > 0;
  }
  if (num && *p == '\0' && (dot || strpbrk(d, "eE"))) {
    double v = strtod(s, NULL);
    if (!isfinite(v)) {
      yfail(c, m, "%s is out of range for a JSON number", s);
      return NULL;
    }
    return json_real(v);
  }
  return json_stringn(s, n);
}

static json_t *tagged_scalar(yctx *c, const char *tag, const char *s, size_t n,
                             const yaml_mark_t *m) {
  const char *t = tag + strlen("tag:yaml.org,2002:");
  json_t *v = core_scalar(c, s, n, m);
  if (!v)
    return NULL;
  bool ok = (!strcmp(t, "int") && json_is_integer(v)) ||
            (!strcmp(t, "float") && json_is_number(v)) ||
            (!strcmp(t, "bool") && json_is_boolean(v)) ||
            (!strcmp(t, "null") && json_is_null(v));
  if (ok) {
    if (!strcmp(t, "float") && json_is_integer(v)) {
      json_t *r = json_real((double)json_integer_value(v));
      json_decref(v);
      return r;
    }
    return v;
  }
  json_decref(v);
  yfail(c, m, "\"%s\" is not a valid !!%s", s, t);
  return NULL;
}

static bool add_anchor(yctx *c, const char *name, json_t *v, size_t size) {
  if (c->nanchors == c->capanchors) {
    size_t cap = c->capanchors ? c->capanchors * 2 : 16;
    yanchor *a = wsm_realloc(c->mem, c->anchors, c->capanchors * sizeof(*a),
                             cap * sizeof(*a));
    if (!a)
      return false;
    c->anchors = a;
    c->capanchors = cap;
  }
  char *dup = wsm_strdup(c->mem, name);
  if (!dup)
    return false;
  c->anchors[c->nanchors++] = (yanchor){dup, json_incref(v), size};
  return true;
}

static const yanchor *find_anchor(const yctx *c, const char *name) {
  for (size_t i = c->nanchors; i-- > 0;) /* the latest definition wins */
    if (!strcmp(c->anchors[i].name, name))
      return &c->anchors[i];
  return NULL;
}

/* Charge `size` to the document (and to the open collection, if any),
 * or fail once the document is over its cap. */
static bool charge(yctx *c, size_t size, const yaml_mark_t *m) {
  c->total += size;
  if (size > c->max_total || c->total > c->max_total) {
    yfail(c, m,
          "document too large once aliases are expanded (over %zu bytes "
          "of nodes and text)",
          c->max_total);
    return false;
  }
  if (c->depth)
    c->st[c->depth - 1].size += size;
  return true;
}

/* Add a finished value (stolen) of expanded size `size` to the parent. */
static void add_value(yctx *c, json_t *v, size_t size, const yaml_mark_t *m) {
  if (c->failed || !charge(c, size, m)) {
    json_decref(v);
    return;
  }
  if (c->depth == 0) {
    if (c->root) {
      json_decref(v);
      yfail(c, m, "more than one root value");
      return;
    }
    c->root = v;
    return;
  }
  yframe *f = &c->st[c->depth - 1];
  if (json_is_array(f->v)) {
    if (json_array_append_new(f->v, v))
      yfail(c, m, "out of memory");
    return;
  }
  if (!f->key) {
    json_decref(v);
    yfail(c, m, "mapping keys must be scalars");
    return;
  }
  if (f->merge_key) {
    f->merge_key = false;
    wsm_free(c->mem, f->key);
    f->key = NULL;
    if (!f->merges && !(f->merges = json_array())) {
      json_decref(v);
      yfail(c, m, "out of memory");
      return;
    }
    if (json_is_object(v)) {
      json_array_append_new(f->merges, v);
    } else if (json_is_array(v)) {
      size_t i;
      json_t *x;
      json_array_foreach(v, i, x) {
        if (!json_is_object(x)) {
          json_decref(v);
          yfail(c, m, "a merge key (<<) takes a mapping or a list of them");
          return;
        }
        json_array_append(f->merges, x);
      }
      json_decref(v);
    } else {
      json_decref(v);
      yfail(c, m, "a merge key (<<) takes a mapping or a list of them");
    }
    return;
  }
  if (json_object_get(f->v, f->key)) {
    yfail(c, m, "duplicate key \"%s\"", f->key);
    json_decref(v);
  } else if (json_object_set_new(f->v, f->key, v)) {
    yfail(c, m, "out of memory (or a key that is not UTF-8)");
  }
  wsm_free(c->mem, f->key);
  f->key = NULL;
}

static void on_scalar(yctx *c, const yaml_event_t *ev) {
  const char *s = (const char *)ev->data.scalar.value;
  size_t n = ev->data.scalar.length;
  const yaml_mark_t *m = &ev->start_mark;
  yframe *f = c->depth ? &c->st[c->depth - 1] : NULL;
  if (f && json_is_object(f->v) && !f->key) { /* a key */
    f->key = wsm_strndup(c->mem, s, n);
    if (!f->key) {
      yfail(c, m, "out of memory");
      return;
    }
    f->merge_key = ev->data.scalar.plain_implicit && !strcmp(f->key, "<<");
    if (strlen(f->key) != n)
      yfail(c, m, "a key contains a NUL character");
    charge(c, YAML_NODE_COST + n, m);
    return;
  }
  json_t *v;
  const char *tag = (const char *)ev->data.scalar.tag;
  if (tag && !strcmp(tag, "tag:yaml.org,2002:str"))
    v = json_stringn(s, n);
  else if (tag && !strncmp(tag, "tag:yaml.org,2002:", 18))
    v = tagged_scalar(c, tag, s, n, m);
  else if (ev->data.scalar.plain_implicit && !tag)
    v = core_scalar(c, s, n, m);
  else
    v = json_stringn(s, n);
  if (!v) {
    yfail(c, m, "invalid scalar (not UTF-8?) or out of memory");
    return;
  }
  if (ev->data.scalar.anchor &&
      !add_anchor(c, (const char *)ev->data.scalar.anchor, v,
                  YAML_NODE_COST + n)) {
    json_decref(v);
    yfail(c, m, "out of memory");
    return;
  }
  add_value(c, v, YAML_NODE_COST + n, m);
}

static void push(yctx *c, json_t *v, const yaml_char_t *anchor,
                 const yaml_mark_t *m) {
  if (!v) {
    yfail(c, m, "out of memory");
    return;
  }
  if (c->depth == YAML_MAX_DEPTH) {
    json_decref(v);
    yfail(c, m, "nesting deeper than %d", YAML_MAX_DEPTH);
    return;
  }
  yframe *f = &c->st[c->depth];
  memset(f, 0, sizeof(*f));
  f->v = v;
  f->size = YAML_NODE_COST;
  if (anchor && !(f->anchor = wsm_strdup(c->mem, (const char *)anchor))) {
    json_decref(v);
    yfail(c, m, "out of memory");
    return;
  }
  c->depth++;
}

static void pop(yctx *c, const yaml_mark_t *m) {
  if (!c->depth)
    return;
  yframe f = c->st[--c->depth];
  wsm_free(c->mem, f.key);
  if (f.merges) {
    /* earlier sources win over later ones, explicit keys over all */
    size_t i;
    json_t *src;
    json_array_foreach(f.merges, i, src) {
      const char *k;
      json_t *x;
      json_object_foreach(src, k, x) {
        if (!json_object_get(f.v, k))
          json_object_set(f.v, k, x);
      }
    }
    json_decref(f.merges);
  }
  if (f.anchor) {
    if (!c->failed && !add_anchor(c, f.anchor, f.v, f.size))
      yfail(c, m, "out of memory");
    wsm_free(c->mem, f.anchor);
  }
  /* the children (and keys) were charged as they were added */
  c->total -= f.size - YAML_NODE_COST;
  add_value(c, f.v, f.size, m);
}

json_t *wsm_yaml_load(const wsmsg_mem *mem, const char *text, size_t len,
                      char *err, size_t errsz) {
  if (err && errsz)
    err[0] = '\0';
  yaml_parser_t p;
  if (!yaml_parser_initialize(&p)) {
    if (err && errsz)
      snprintf(err, errsz, "YAML: out of memory");
    return NULL;
  }
  yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
  yctx *c = wsm_calloc(mem, sizeof(*c));
  if (!c) {
    yaml_parser_delete(&p);
    return NULL;
  }
  c->mem = mem;
  c->err = err;
  c->errsz = errsz;
  c->max_total = len > YAML_MAX_EXPANDED / YAML_EXPANDED_PER_BYTE
                     ? len * YAML_EXPANDED_PER_BYTE
                     : YAML_MAX_EXPANDED;
  int docs = 0;
  bool done = false;
  while (!done && !c->failed) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&p, &ev)) {
      yfail(c, &p.problem_mark, "%s%s%s", p.problem ? p.problem : "error",
            p.context ? " " : "", p.context ? p.context : "");
      break;
    }
    const yaml_mark_t *m = &ev.start_mark;
    switch (ev.type) {
    case YAML_STREAM_END_EVENT:
      done = true;
      break;
    case YAML_DOCUMENT_START_EVENT:
      if (++docs > 1)
        yfail(c, m, "more than one document in the stream");
      break;
    case YAML_SCALAR_EVENT:
      on_scalar(c, &ev);
      break;
    case YAML_SEQUENCE_START_EVENT:
      push(c, json_array(), ev.data.sequence_start.anchor, m);
      break;
    case YAML_MAPPING_START_EVENT:
      push(c, json_object(), ev.data.mapping_start.anchor, m);
      break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
      pop(c, m);
      break;
    case YAML_ALIAS_EVENT: {
      const yanchor *a = find_anchor(c, (const char *)ev.data.alias.anchor);
      if (!a) {
        yfail(c, m, "unknown anchor \"%s\"",
              (const char *)ev.data.alias.anchor);
        break;
      }
      yframe *f = c->depth ? &c->st[c->depth - 1] : NULL;
      if (f && json_is_object(f->v) && !f->key) {
        if (!json_is_string(a->v)) {
          yfail(c, m, "mapping keys must be scalars");
          break;
        }
        /* a key is copied: charge its text each time */
        if (!charge(c, YAML_NODE_COST + json_string_length(a->v), m))
          break;
        f->key = wsm_strdup(mem, json_string_value(a->v));
        if (!f->key)
          yfail(c, m, "out of memory");
        break;
      }
      add_value(c, json_incref(a->v), a->size, m);
      break;
    }
    default:
      break;
    }
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&p);
  while (c->depth) {
    yframe *f = &c->st[--c->depth];
    json_decref(f->v);
    json_decref(f->merges);
    wsm_free(mem, f->key);
    wsm_free(mem, f->anchor);
  }
  for (size_t i = 0; i < c->nanchors; i++) {
    wsm_free(mem, c->anchors[i].name);
    json_decref(c->anchors[i].v);
  }
  wsm_free(mem, c->anchors);
  json_t *root = c->root;
  if (c->failed) {
    json_decref(root);
    root = NULL;
  } else if (!root) {
    root = json_null(); /* an empty stream */
  }
  wsm_free(mem, c);
  return root;
}

json_t *wsmsg_yaml_loads(const char *text, size_t len, char *err,
                         size_t err_size) {
  if (!text) {
    if (err && err_size)
      snprintf(err, err_size, "no text");
    return NULL;
  }
  wsmsg_mem mem;
  wsm_mem_init(&mem, NULL);
  return wsm_yaml_load(&mem, text, len, err, err_size);
}
