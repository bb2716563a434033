/* JSON Schema validation over a compiled schema, with Pydantic v1 errors,
 * lax coercion and defaults.
 *
 * Everything here only reads the compiled schema; the per-call state lives in
 * a `vctx` on the caller's stack.  Two evaluation modes share one code path:
 * "collect" (record every error with its location, up to the cap) and
 * "quick" (stop at the first failure, record nothing), used when the caller
 * passed no error list and for conditional subschemas (not, if, contains,
 * the branches of anyOf/oneOf).
 *
 * Rewrites (COERCE, DEFAULTS) happen only along unconditional paths.
 * Conditional subschemas are judged on a scratch deep copy; the copy of the
 * anyOf/oneOf branch that wins is committed into the document. */
#include "schema_internal.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WSM_MAX_DEPTH 1000

/* ---- per-call state ------------------------------------------------------ */

typedef struct vpath {
  const char *key;
  size_t len;
  size_t idx;
  bool is_idx;
} vpath;

/* Annotations for unevaluatedProperties / unevaluatedItems: what the
 * successful keywords of a schema evaluated at one instance location. */
typedef struct annot {
  wsm_name *keys;
  size_t nkeys, capkeys;
  bool all_props;
  size_t prefix; /* items [0, prefix) evaluated */
  bool all_items;
  uint8_t *bits; /* items evaluated by contains */
  size_t nbits;
  bool model;      /* a schema with properties/patternProperties applied */
  wsm_name *rkeys; /* present keys named by "required" (EXTRA_*: declared) */
  size_t nrkeys, caprkeys;
} annot;

typedef struct vctx {
  const wsmsg_schema *s;
  const wsmsg_mem *mem; /* out's allocator (messages end there), else the
                           schema's */
  wsmsg_verrors *out;   /* where errors go (may be a scratch list) */
  bool collect;         /* record errors (else stop at the first failure) */
  bool coerce, defaults, format;
  uint8_t extra;   /* EXTRA_ALLOW, EXTRA_IGNORE, EXTRA_FORBID */
  bool v2;         /* Pydantic v2 errors (out->v2 says so too) */
  json_t **cur;    /* the instance being validated (v2 errors' "input") */
  bool coerced;    /* coercion replaced a value somewhere */
  bool stop;       /* the error cap was reached */
  size_t nerrs;    /* errors recorded in any list (root, branches' ctx) */
  size_t max_errs; /* ... at most (see ERR_BUDGET) */
  bool oom;
  int depth;
  pcre2_match_data *md;
  wsmsg_verrors *root_out; /* the caller's list (out may be a scratch one) */
  json_t **rootp;          /* the document (its size sizes the budget) */
  bool sized;              /* max_work counts the document's nodes */
  size_t work, max_work;   /* steps taken (schema applications and nodes
                              copied), allowed (see WORK_BASE) */
  const char *halt;        /* a limit was reached (HALT_DEEP, HALT_WORK): the
                              verdict, nothing more is looked at */
  json_t *halt_loc;        /* where (if errors are wanted) */
  json_t *halt_input;      /* the value there (v2's input), a reference */
  bool re_limit;           /* a pattern match hit a PCRE2 limit */
  bool re_limit_reported;  /* ... and an error in root_out says so */
  json_t *re_limit_loc;    /* where, if first hit in a quick evaluation */
  const char *re_limit_src;
  vpath *path;
  size_t npath, cappath;
  vpath *path_heap; /* non-NULL once the path outgrew the stack array */
  json_t **grave;   /* scratch copies still referenced by annotations */
  size_t ngrave, capgrave;
} vctx;

enum { SLOT_FIXED, SLOT_OWNED, SLOT_OBJ, SLOT_ARR };
enum { EXTRA_ALLOW, EXTRA_IGNORE, EXTRA_FORBID };

/* Where the current instance lives, so coercion can replace it. */
typedef struct vslot {
  uint8_t kind;
  json_t *parent;
  const char *key;
  size_t keylen;
  size_t index;
  json_t **own; /* SLOT_OWNED: the variable holding the value */
} vslot;

static bool v_node(vctx *c, const wsm_snode *n, json_t **ip, const vslot *sl,
                   annot *a);

static bool mutating(const vctx *c) {
  return c->coerce || c->defaults || c->extra == EXTRA_IGNORE;
}

static bool v_at(vctx *c, const wsm_snode *n, json_t **ip, const vslot *sl);

/* ---- path ---------------------------------------------------------------- */

static bool path_push(vctx *c, const char *key, size_t len, size_t idx,
                      bool is_idx) {
  if (c->npath == c->cappath) {
    size_t cap = c->cappath * 2;
    vpath *p = wsm_malloc(c->mem, cap * sizeof(*p));
    if (!p) {
      c->oom = true;
      return false;
    }
    memcpy(p, c->path, c->npath * sizeof(*p));
    wsm_free(c->mem, c->path_heap);
    c->path = c->path_heap = p;
    c->cappath = cap;
  }
  vpath *e = &c->path[c->npath++];
  e->key = key;
  e->len = len;
  e->idx = idx;
  e->is_idx = is_idx;
  return true;
}

static void path_pop(vctx *c) { c->npath--; }

/* ---- errors -------------------------------------------------------------- */

static json_t *path_json(const vctx *c, const vpath *extra) {
  json_t *a = json_array();
  for (size_t i = 0; a && i <= c->npath; i++) {
    const vpath *p = i < c->npath ? &c->path[i] : extra;
    if (!p)
      break;
    json_t *v = p->is_idx ? json_integer((json_int_t)p->idx)
                          : json_stringn(p->key, p->len);
    if (json_array_append_new(a, v) != 0) {
      json_decref(a);
      a = NULL;
    }
  }
  return a;
}

static void err_vin(vctx *c, const vpath *extra, const json_t *input,
                    const char *type, json_t *ctx, const char *fmt,
                    va_list ap) {
  if (c->stop || !c->out) {
    json_decref(ctx);
    return;
  }
  if (c->out != c->root_out) { /* a branch's list (branch_errors) */
    if (c->nerrs == c->max_errs) {
      /* the budget of the branches' lists is spent: what was left out
       * is marked on the caller's list */
      json_decref(ctx);
      c->stop = true;
      if (c->root_out)
        c->root_out->truncated = true;
      return;
    }
    c->nerrs++;
  }
  char *msg = wsm_vasprintf(c->mem, fmt, ap);
  int rc =
      wsm_verrors_add_in(c->out, path_json(c, extra), type, msg, ctx, input);
  if (rc == 1)
    c->stop = true;
  else if (rc < 0)
    c->oom = true;
}

static void err_at(vctx *c, const vpath *extra, const char *type, json_t *ctx,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void err_in(vctx *c, const vpath *extra, const json_t *input,
                   const char *type, json_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Record an error at the current path (+ `extra`), taking `ctx`; its input
 * (v2) is the current instance: for a missing key, the object. */
static void err_at(vctx *c, const vpath *extra, const char *type, json_t *ctx,
                   const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  err_vin(c, extra, c->cur ? *c->cur : NULL, type, ctx, fmt, ap);
  va_end(ap);
}

/* The same with another input (an extra key's value). */
static void err_in(vctx *c, const vpath *extra, const json_t *input,
                   const char *type, json_t *ctx, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  err_vin(c, extra, input, type, ctx, fmt, ap);
  va_end(ap);
}

/* In quick mode any failure ends the evaluation of the schema; in collect
 * mode it is recorded and evaluation goes on (until the cap). */
#define REPORT(...)                                                            \
  do {                                                                         \
    ok = false;                                                                \
    if (!c->collect)                                                           \
      return false;                                                            \
    err_at(c, __VA_ARGS__);                                                    \
    if (c->stop)                                                               \
      return false;                                                            \
  } while (0)

/* A size limit (maxLength, minItems, maxProperties...) is broken: report
 * `type` with ctx {"limit_value": lim}; `fmt` formats lim (%zu). */
#define REPORT_LIMIT(type, lim, fmt)                                           \
  REPORT(NULL, type, wsm_obj1("limit_value", json_integer((json_int_t)(lim))), \
         fmt, (size_t)(lim))

/* A key no subschema allows (additionalProperties or
 * unevaluatedProperties false): reported at its own path, with its value
 * as the input. */
#define REPORT_EXTRA(key, klen, value)                                         \
  do {                                                                         \
    vpath extra_ = {.key = (key), .len = (klen)};                              \
    ok = false;                                                                \
    if (!c->collect)                                                           \
      return false;                                                            \
    err_in(c, &extra_, (value), "value_error.extra", NULL,                     \
           "extra fields not permitted");                                      \
    if (c->stop)                                                               \
      return false;                                                            \
  } while (0)

#define CHILD(expr)                                                            \
  do {                                                                         \
    if (!(expr)) {                                                             \
      ok = false;                                                              \
      if (!c->collect || c->stop || c->oom)                                    \
        return false;                                                          \
    }                                                                          \
  } while (0)

static json_t *num_json(const wsm_num *n) {
  return n->real ? json_real(n->d) : json_integer(n->i);
}

/* Python repr of a value into a new string (free it with c->mem). */
static char *repr(const vctx *c, const json_t *v) {
  wsm_sb b = {.mem = c->mem};
  wsm_py_repr(&b, v);
  return wsm_sb_finish(&b);
}

/* ---- annotations --------------------------------------------------------- */

static void name_push(vctx *c, wsm_name **v, size_t *n, size_t *capp,
                      const char *k, size_t len) {
  if (*n == *capp) {
    size_t cap = *capp ? *capp * 2 : 8;
    wsm_name *p = wsm_realloc(c->mem, *v, *capp * sizeof(*p), cap * sizeof(*p));
    if (!p) {
      c->oom = true;
      return;
    }
    *v = p;
    *capp = cap;
  }
  (*v)[*n].s = k;
  (*v)[*n].len = len;
  (*n)++;
}

static void annot_key(vctx *c, annot *a, const char *k, size_t len) {
  if (!a || a->all_props)
    return;
  name_push(c, &a->keys, &a->nkeys, &a->capkeys, k, len);
}

/* For EXTRA_*: a present key that "required" names is declared too (not an
 * annotation: unevaluatedProperties does not count it). */
static void annot_rkey(vctx *c, annot *a, const char *k, size_t len) {
  if (!a || a->all_props || c->extra == EXTRA_ALLOW)
    return;
  name_push(c, &a->rkeys, &a->nrkeys, &a->caprkeys, k, len);
}

static bool annot_has_rkey(const annot *a, const char *k, size_t len) {
  for (size_t i = 0; i < a->nrkeys; i++)
    if (a->rkeys[i].len == len && memcmp(a->rkeys[i].s, k, len) == 0)
      return true;
  return false;
}

static bool annot_has_key(const annot *a, const char *k, size_t len) {
  if (a->all_props)
    return true;
  for (size_t i = 0; i < a->nkeys; i++)
    if (a->keys[i].len == len && memcmp(a->keys[i].s, k, len) == 0)
      return true;
  return false;
}

static void annot_item(vctx *c, annot *a, size_t i, size_t size) {
  if (!a || a->all_items || i < a->prefix)
    return;
  if (!a->bits) {
    a->bits = wsm_calloc(c->mem, size ? size : 1);
    if (!a->bits) {
      c->oom = true;
      return;
    }
    a->nbits = size;
  }
  if (i < a->nbits)
    a->bits[i] = 1;
}

static bool annot_has_item(const annot *a, size_t i) {
  return a->all_items || i < a->prefix ||
         (a->bits && i < a->nbits && a->bits[i]);
}

static void annot_merge(vctx *c, annot *into, const annot *from) {
  if (!into)
    return;
  if (from->model)
    into->model = true;
  for (size_t i = 0; i < from->nrkeys; i++)
    annot_rkey(c, into, from->rkeys[i].s, from->rkeys[i].len);
  if (from->all_props) {
    into->all_props = true;
  } else {
    for (size_t i = 0; i < from->nkeys; i++)
      annot_key(c, into, from->keys[i].s, from->keys[i].len);
  }
  if (from->all_items)
    into->all_items = true;
  if (from->prefix > into->prefix)
    into->prefix = from->prefix;
  for (size_t i = 0; from->bits && i < from->nbits; i++)
    if (from->bits[i])
      annot_item(c, into, i, from->nbits);
}

static void annot_free(const vctx *c, annot *a) {
  wsm_free(c->mem, a->keys);
  wsm_free(c->mem, a->bits);
  wsm_free(c->mem, a->rkeys);
}

static void grave_add(vctx *c, json_t *j) {
  if (c->ngrave == c->capgrave) {
    size_t cap = c->capgrave ? c->capgrave * 2 : 8;
    json_t **p = wsm_realloc(c->mem, c->grave, c->capgrave * sizeof(*p),
                             cap * sizeof(*p));
    if (!p) {
      c->oom = true;
      json_decref(j); /* annotations may dangle, but the result is NOMEM */
      return;
    }
    c->grave = p;
    c->capgrave = cap;
  }
  c->grave[c->ngrave++] = j;
}

/* ---- replacing the instance ---------------------------------------------- */

/* Put `nv` (a new reference, stolen) where the instance is.  False if that is
 * impossible (the caller's root would have to change type). */
static bool slot_set(vctx *c, const vslot *sl, json_t **ip, json_t *nv) {
  if (!nv) {
    c->oom = true;
    return false;
  }
  switch (sl->kind) {
  case SLOT_OBJ:
    if (json_object_setn_new_nocheck(sl->parent, sl->key, sl->keylen, nv)) {
      c->oom = true;
      return false;
    }
    break;
  case SLOT_ARR:
    if (json_array_set_new(sl->parent, sl->index, nv)) {
      c->oom = true;
      return false;
    }
    break;
  case SLOT_OWNED:
    json_decref(*sl->own);
    *sl->own = nv;
    break;
  default: { /* SLOT_FIXED: only same-type in-place updates */
    json_t *cur = *ip;
    int r = -1;
    if (json_typeof(cur) == json_typeof(nv)) {
      switch (json_typeof(nv)) {
      case JSON_STRING:
        r = json_string_setn(cur, json_string_value(nv),
                             json_string_length(nv));
        break;
      case JSON_INTEGER:
        r = json_integer_set(cur, json_integer_value(nv));
        break;
      case JSON_REAL:
        r = json_real_set(cur, json_real_value(nv));
        break;
      default:
        r = 0; /* true/false/null are singletons */
        break;
      }
    }
    json_decref(nv);
    return r == 0;
  }
  }
  *ip = nv;
  return true;
}

/* Commit a scratch copy of the instance (a winning anyOf/oneOf branch).
 * Containers are updated in place so that their identity (and the keys
 * annotations point to) survive. */
static bool commit(vctx *c, const vslot *sl, json_t **ip, json_t *copy) {
  json_t *cur = *ip;
  if (json_is_object(cur) && json_is_object(copy)) {
    if (json_object_update(cur, copy)) {
      c->oom = true;
      return false;
    }
    return true;
  }
  if (json_is_array(cur) && json_is_array(copy) &&
      json_array_size(cur) == json_array_size(copy)) {
    for (size_t i = 0; i < json_array_size(copy); i++)
      if (json_array_set(cur, i, json_array_get(copy, i))) {
        c->oom = true;
        return false;
      }
    return true;
  }
  if (wsm_json_equal(cur, copy) && json_typeof(cur) == json_typeof(copy))
    return true;
  return slot_set(c, sl, ip, json_incref(copy));
}

/* ---- coercion (Pydantic v1 lax rules) ------------------------------------ */

static const char *skip_ws(const char *p, const char *e) {
  while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' ||
                   *p == '\f' || *p == '\v'))
    p++;
  return p;
}

/* Copy s[0..n) without surrounding whitespace and without '_' between
 * digits (Python's int()/float() syntax) into buf; false if malformed
 * underscores or too long. */
static bool py_numtext(const char *s, size_t n, char *buf, size_t size) {
  const char *p = skip_ws(s, s + n), *e = s + n;
  while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' ||
                   e[-1] == '\r' || e[-1] == '\f' || e[-1] == '\v'))
    e--;
  size_t o = 0;
  for (const char *q = p; q < e; q++) {
    if (*q == '_') {
      bool okd = q > p && q + 1 < e && q[-1] >= '0' && q[-1] <= '9' &&
                 q[1] >= '0' && q[1] <= '9';
      if (!okd)
        return false;
      continue;
    }
    if (*q == '\0' || o + 1 >= size)
      return false;
    buf[o++] = *q;
  }
  buf[o] = '\0';
  return o > 0;
}

static json_t *str_to_int(const char *s, size_t n) {
  char buf[64];
  if (!py_numtext(s, n, buf, sizeof(buf)))
    return NULL;
  const char *p = buf;
  if (*p == '+' || *p == '-')
    p++;
  if (!*p)
    return NULL;
  for (const char *q = p; *q; q++)
    if (*q < '0' || *q > '9')
      return NULL;
  errno = 0;
  char *end;
  long long v = strtoll(buf, &end, 10);
  if (errno || *end)
    return NULL;
  return json_integer((json_int_t)v);
}

static json_t *str_to_number(const char *s, size_t n) {
  json_t *i = str_to_int(s, n);
  if (i)
    return i;
  char buf[128];
  if (!py_numtext(s, n, buf, sizeof(buf)))
    return NULL;
  /* decimal syntax only: no hex floats, inf or nan */
  bool digit = false;
  for (const char *q = buf; *q; q++) {
    if (*q >= '0' && *q <= '9')
      digit = true;
    else if (!strchr("+-.eE", *q))
      return NULL;
  }
  if (!digit)
    return NULL;
  char *end;
  double d = strtod(buf, &end);
  if (*end || (isnan(d) || isinf(d)))
    return NULL;
  return json_real(d);
}

static json_t *str_to_bool(const char *s, size_t n) {
  static const char *const t[] = {"1", "on", "t", "true", "y", "yes"};
  static const char *const f[] = {"0", "off", "f", "false", "n", "no"};
  char low[8];
  if (n >= sizeof(low))
    return NULL;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    low[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
  }
  low[n] = '\0';
  if (memchr(s, '\0', n))
    return NULL;
  for (size_t i = 0; i < 6; i++) {
    if (strcmp(low, t[i]) == 0)
      return json_true();
    if (strcmp(low, f[i]) == 0)
      return json_false();
  }
  return NULL;
}

/* A coerced copy of `v` matching one of `types`, or NULL. */
static json_t *coerce(uint8_t types, const json_t *v) {
  json_t *r = NULL;
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (!r && (types & WSM_T_INTEGER) && !(types & WSM_T_NUMBER))
      r = str_to_int(s, n);
    if (!r && (types & WSM_T_NUMBER))
      r = str_to_number(s, n);
    if (!r && (types & WSM_T_BOOLEAN))
      r = str_to_bool(s, n);
  } else if (json_is_number(v)) {
    double d = json_number_value(v);
    if ((types & WSM_T_BOOLEAN) && (d == 0 || d == 1))
      r = d == 1 ? json_true() : json_false();
    if (!r && (types & WSM_T_INTEGER) && !(types & WSM_T_NUMBER) &&
        json_is_real(v) && wsm_is_integral(v) && d > -9.2e18 && d < 9.2e18)
      r = json_integer((json_int_t)d);
    if (!r && (types & WSM_T_STRING)) {
      char buf[64];
      if (json_is_integer(v))
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
      else
        wsm_fmt_double(d, buf, sizeof(buf));
      r = json_string(buf);
    }
  }
  return r;
}

/* ---- type ---------------------------------------------------------------- */

static bool type_ok(uint8_t types, const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    return types & WSM_T_OBJECT;
  case JSON_ARRAY:
    return types & WSM_T_ARRAY;
  case JSON_STRING:
    return types & WSM_T_STRING;
  case JSON_INTEGER:
    return types & WSM_T_INTEGER;
  case JSON_REAL:
    return (types & WSM_T_NUMBER) ||
           ((types & WSM_T_INTEGER) && wsm_is_integral(v));
  case JSON_TRUE:
  case JSON_FALSE:
    return types & WSM_T_BOOLEAN;
  default:
    return types & WSM_T_NULL;
  }
}

static void type_errors(vctx *c, uint8_t types, const json_t *v) {
  /* v2 reports a null like any other wrong type (int_type, ...) */
  if (json_is_null(v) && !c->v2) {
    err_at(c, NULL, "type_error.none.not_allowed", NULL,
           "none is not an allowed value");
    return;
  }
  if (types & WSM_T_NUMBER)
    err_at(c, NULL, "type_error.float", NULL, "value is not a valid float");
  else if (types & WSM_T_INTEGER)
    err_at(c, NULL, "type_error.integer", NULL, "value is not a valid integer");
  if (types & WSM_T_STRING)
    err_at(c, NULL, "type_error.str", NULL, "str type expected");
  if (types & WSM_T_BOOLEAN)
    err_at(c, NULL, "type_error.bool", NULL,
           "value could not be parsed to a boolean");
  if (types & WSM_T_ARRAY)
    err_at(c, NULL, "type_error.list", NULL, "value is not a valid list");
  if (types & WSM_T_OBJECT)
    err_at(c, NULL, "type_error.dict", NULL, "value is not a valid dict");
  if (types == WSM_T_NULL)
    err_at(c, NULL, "type_error.none.allowed", NULL, "value is not none");
}

/* ---- numbers ------------------------------------------------------------- */

/* -1, 0, 1 comparing the instance with a schema number */
static int num_cmp(const json_t *v, const wsm_num *lim) {
  if (json_is_integer(v) && lim->is_int) {
    json_int_t x = json_integer_value(v);
    return x < lim->i ? -1 : x > lim->i;
  }
  double x = json_number_value(v);
  return x < lim->d ? -1 : x > lim->d;
}

/* Exact: on the decimal texts, never a floating-point division (which
 * accepted 999999000000.25 as a multiple of 0.5). */
static bool is_multiple(const json_t *v, const wsm_num *m) {
  if (json_is_integer(v) && m->is_int && m->i > 0)
    return json_integer_value(v) % m->i == 0;
  uint64_t xd;
  int xe;
  if (json_is_integer(v))
    wsm_decimal_of_int(json_integer_value(v), &xd, &xe);
  else
    wsm_decimal_of_double(json_real_value(v), &xd, &xe);
  return wsm_decimal_multiple(xd, xe, m->dd, m->de);
}

/* Record a numeric limit error ("... %s" with the limit's repr). */
static void num_err(vctx *c, const char *type, const char *ctxkey,
                    const wsm_num *lim, const char *what) {
  json_t *l = num_json(lim);
  char *r = l ? repr(c, l) : NULL;
  err_at(c, NULL, type, wsm_obj1(ctxkey, l), "ensure this value is %s %s", what,
         r ? r : "?");
  wsm_free(c->mem, r);
}

static bool v_number(vctx *c, const wsm_snode *n, const json_t *v) {
  bool ok = true;
  uint32_t kw = n->kw;
  static const struct {
    uint32_t bit;
    size_t off;
    int bad_min, bad_max; /* num_cmp results that fail */
    const char *type, *what;
  } lims[] = {
      {WSM_K_MAXIMUM, offsetof(wsm_snode, maximum), 1, 1,
       "value_error.number.not_le", "less than or equal to"},
      {WSM_K_EXMAX, offsetof(wsm_snode, exmax), 0, 1,
       "value_error.number.not_lt", "less than"},
      {WSM_K_MINIMUM, offsetof(wsm_snode, minimum), -1, -1,
       "value_error.number.not_ge", "greater than or equal to"},
      {WSM_K_EXMIN, offsetof(wsm_snode, exmin), -1, 0,
       "value_error.number.not_gt", "greater than"},
  };
  for (size_t i = 0; i < sizeof(lims) / sizeof(lims[0]); i++) {
    if (!(kw & lims[i].bit))
      continue;
    const wsm_num *lim = (const wsm_num *)((const char *)n + lims[i].off);
    int cmp = num_cmp(v, lim);
    if (cmp < lims[i].bad_min || cmp > lims[i].bad_max)
      continue;
    ok = false;
    if (!c->collect)
      return false;
    num_err(c, lims[i].type, "limit_value", lim, lims[i].what);
    if (c->stop)
      return false;
  }
  if ((kw & WSM_K_MULTIPLE_OF) && !is_multiple(v, &n->multiple_of)) {
    ok = false;
    if (!c->collect)
      return false;
    num_err(c, "value_error.number.not_multiple", "multiple_of",
            &n->multiple_of, "a multiple of");
  }
  return ok;
}

/* ---- strings ------------------------------------------------------------- */

static size_t utf8_len(const char *s, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    k += ((unsigned char)s[i] & 0xC0) != 0x80;
  return k;
}

/* Besides the caller's list (capped by its max), one validation records
 * at most ERR_BUDGET times that cap of errors in the lists of anyOf/oneOf
 * branches (ctx), however deeply nested: that bounds the memory of an
 * error report and how often a branch is validated again to explain its
 * failure. */
#define ERR_BUDGET 4u

/* Limits that end a validation with one error where they were reached
 * (validate_impl): nesting, and work.  A validation may take WORK_BASE
 * steps plus WORK_PER_NODE per node of the document (a step: a schema
 * applied to a value, or a value copied for a scratch evaluation); a
 * schema whose anyOf/oneOf branches recurse into the same value (or that
 * rewrites it: coercion and defaults evaluate each branch on a copy) can
 * otherwise take time cubic or exponential in the document's depth: 2 KB
 * of nested objects took 0.8-4.7 s. */
#define HALT_DEEP "value_error.too_deep"
#define HALT_WORK "value_error.too_complex"
#define TOO_DEEP_MSG "document or schema nesting deeper than %d levels"
#define TOO_COMPLEX_MSG                                                        \
  "document too costly to validate against this schema (over %zu steps)"
#define WORK_BASE ((size_t)100000)
#define WORK_PER_NODE ((size_t)100)
#define REGEX_LIMIT_TYPE "value_error.str.regex_limit"
#define REGEX_LIMIT_MSG                                                        \
  "string could not be checked against regex \"%s\" within the schema's "      \
  "match limits"

/* 1: match, 0: no match, -1: a PCRE2 limit (match, depth, heap, JIT stack)
 * stopped it, so there is no verdict: recorded in c->re_limit, and as an
 * error at the current path (+ extra) when collecting. */
static int re_match(vctx *c, const wsm_regex *re, const char *s, size_t n,
                    const vpath *extra) {
  int rc = pcre2_match(re->code, (PCRE2_SPTR)s, n, 0, 0, c->md, c->s->mctx);
  if (rc >= 0)
    return 1;
  if (rc == PCRE2_ERROR_NOMATCH)
    return 0;
  if (rc == PCRE2_ERROR_NOMEMORY) {
    c->oom = true;
    return 0;
  }
  c->re_limit = true;
  if (c->collect) {
    if (c->out == c->root_out && !c->stop)
      c->re_limit_reported = true;
    err_at(c, extra, REGEX_LIMIT_TYPE,
           wsm_obj1("pattern", json_string(re->src)), REGEX_LIMIT_MSG, re->src);
  } else if (!c->re_limit_loc && c->root_out) {
    c->re_limit_loc = path_json(c, extra);
    c->re_limit_src = re->src;
  }
  return -1;
}

static bool v_string(vctx *c, const wsm_snode *n, const json_t *v) {
  bool ok = true;
  uint32_t kw = n->kw;
  const char *s = json_string_value(v);
  size_t len = json_string_length(v);
  if (kw & (WSM_K_MAXLEN | WSM_K_MINLEN)) {
    /* len/4 <= code points <= len: count only when the bytes do not tell */
    bool need = ((kw & WSM_K_MAXLEN) && len > n->max_len) ||
                ((kw & WSM_K_MINLEN) && len >= n->min_len &&
                 (len + 3) / 4 < n->min_len);
    size_t k = need ? utf8_len(s, len) : len;
    if ((kw & WSM_K_MAXLEN) && k > n->max_len)
      REPORT_LIMIT("value_error.any_str.max_length", n->max_len,
                   "ensure this value has at most %zu characters");
    if ((kw & WSM_K_MINLEN) && k < n->min_len)
      REPORT_LIMIT("value_error.any_str.min_length", n->min_len,
                   "ensure this value has at least %zu characters");
  }
  if (kw & WSM_K_PATTERN) {
    int m = re_match(c, n->pattern, s, len, NULL);
    if (m < 0 || c->oom) {
      ok = false;
      if (!c->collect || c->stop || c->oom)
        return false;
    } else if (!m) {
      REPORT(NULL, "value_error.str.regex",
             wsm_obj1("pattern", json_string(n->pattern->src)),
             "string does not match regex \"%s\"", n->pattern->src);
    }
  }
  if ((kw & WSM_K_FORMAT) && c->format &&
      !wsm_format_check(n->format, s, len)) {
    static const char *const types[] = {"",
                                        "value_error.datetime",
                                        "value_error.email",
                                        "type_error.uuid",
                                        "value_error.ipv4address",
                                        "value_error.ipv6address",
                                        "value_error.url"};
    static const char *const msgs[] = {"",
                                       "invalid datetime format",
                                       "value is not a valid email address",
                                       "value is not a valid uuid",
                                       "value is not a valid IPv4 address",
                                       "value is not a valid IPv6 address",
                                       "value is not a valid URI"};
    REPORT(NULL, types[n->format],
           wsm_obj1("format", json_string(wsm_format_name(n->format))), "%s",
           msgs[n->format]);
  }
  return ok;
}

/* ---- limits ------------------------------------------------------------- */

/* A limit was reached at the instance `ip`: the validation's verdict. */
static void halt(vctx *c, json_t *const *ip, const char *type) {
  c->halt = type;
  if (c->root_out) {
    c->halt_loc = path_json(c, NULL);
    c->halt_input = json_incref(*ip);
  }
}

/* The nodes of `v`, counted up to `limit` (a larger count stops there). */
static size_t count_nodes(json_t *v, size_t limit, int depth) {
  size_t n = 1;
  if (depth >= WSM_MAX_DEPTH)
    return n;
  if (json_is_object(v)) {
    for (void *it = json_object_iter(v); it && n < limit;
         it = json_object_iter_next(v, it))
      n += count_nodes(json_object_iter_value(it), limit - n, depth + 1);
  } else if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v) && n < limit; i++)
      n += count_nodes(json_array_get(v, i), limit - n, depth + 1);
  }
  return n;
}

/* Take `steps` more steps: false once the budget is spent.  The budget
 * starts at WORK_BASE and grows by the document's size the first time it
 * would be exceeded, so the usual validation never walks the document to
 * count it. */
static bool spend(vctx *c, size_t steps) {
  if (steps <= c->max_work - c->work) {
    c->work += steps;
    return true;
  }
  if (c->sized)
    return false;
  c->sized = true;
  size_t nodes =
      count_nodes(*c->rootp, (SIZE_MAX - WORK_BASE) / WORK_PER_NODE, 0);
  c->max_work = WORK_BASE + WORK_PER_NODE * nodes;
  return spend(c, steps);
}

/* A deep copy of the instance for a scratch evaluation, its nodes charged
 * to the work budget.  NULL: out of memory (c->oom) or of budget
 * (c->halt). */
static json_t *scratch_copy(vctx *c, json_t **ip) {
  if (c->halt)
    return NULL;
  /* counted up to what the whole document's budget allows */
  size_t most = c->sized ? c->max_work - c->work : SIZE_MAX - 1;
  size_t n = count_nodes(*ip, most + 1, 0);
  if (!spend(c, n)) {
    halt(c, ip, HALT_WORK);
    return NULL;
  }
  json_t *copy = json_deep_copy(*ip);
  if (!copy)
    c->oom = true;
  return copy;
}

/* ---- scratch evaluation (conditional subschemas) ------------------------- */

/* Evaluate `n` against the instance without recording errors and without
 * touching the document: in mutating modes on a deep copy.  Annotations go
 * to `a` only if valid.  With `keep` (mutating modes only), a valid copy is
 * returned in *keep for the caller to commit (new reference). */
static bool v_try(vctx *c, const wsm_snode *n, json_t **ip, const vslot *sl,
                  annot *a, json_t **keep) {
  bool saved = c->collect;
  c->collect = false;
  bool ok;
  annot local = {0};
  annot *la = a ? &local : NULL;
  if (mutating(c) && !n->boolean) {
    json_t *copy = scratch_copy(c, ip);
    if (!copy) {
      c->collect = saved;
      return false;
    }
    vslot own = {.kind = SLOT_OWNED, .own = &copy};
    ok = v_node(c, n, &copy, &own, la);
    if (ok && keep) {
      *keep = json_incref(copy);
    }
    if (ok && la && (la->nkeys || la->bits || la->nrkeys))
      grave_add(c, copy); /* annotations point into the copy */
    else
      json_decref(copy);
  } else {
    ok = v_node(c, n, ip, sl, la);
  }
  if (ok && la)
    annot_merge(c, a, la);
  annot_free(c, &local);
  c->collect = saved;
  return ok;
}

/* The errors of `n` at the instance, as a JSON array (for ctx). */
static json_t *branch_errors(vctx *c, const wsm_snode *n, json_t **ip,
                             const vslot *sl) {
  /* Validating a branch again to say why it failed is what makes errors
   * of nested anyOf/oneOf costly (each level re-runs the levels below):
   * once the error budget is spent, a branch says nothing more. */
  if (c->nerrs == c->max_errs) {
    if (c->root_out)
      c->root_out->truncated = true;
    return json_array();
  }
  wsmsg_verrors tmp;
  memset(&tmp, 0, sizeof(tmp));
  tmp.mem = *c->mem; /* err_at allocates its messages from c->mem */
  tmp.max = c->out ? c->out->max : WSMSG_VERRORS_DEFAULT_MAX;
  tmp.v2 = c->v2;
  wsmsg_verrors *saved_out = c->out;
  bool saved_collect = c->collect, saved_stop = c->stop;
  c->out = &tmp;
  c->collect = true;
  c->stop = false;
  if (mutating(c)) {
    json_t *copy = scratch_copy(c, ip);
    if (copy) {
      vslot own = {.kind = SLOT_OWNED, .own = &copy};
      v_node(c, n, &copy, &own, NULL);
      json_decref(copy);
    }
  } else {
    v_node(c, n, ip, sl, NULL);
  }
  json_t *arr = wsm_verrors_take(&tmp, 0);
  wsm_free(c->mem, tmp.v);
  c->out = saved_out;
  c->collect = saved_collect;
  c->stop = saved_stop;
  return arr;
}

static json_t *all_branch_errors(vctx *c, wsm_snode *const *br, size_t nbr,
                                 json_t **ip, const vslot *sl) {
  json_t *all = json_array();
  for (size_t i = 0; all && i < nbr; i++)
    json_array_append_new(all, branch_errors(c, br[i], ip, sl));
  return wsm_obj1("errors", all);
}

/* ---- arrays -------------------------------------------------------------- */

static bool v_array(vctx *c, const wsm_snode *n, json_t *v, annot *a) {
  bool ok = true;
  uint32_t kw = n->kw;
  size_t size = json_array_size(v);
  if ((kw & WSM_K_MAXITEMS) && size > n->max_items)
    REPORT_LIMIT("value_error.list.max_items", n->max_items,
                 "ensure this value has at most %zu items");
  if ((kw & WSM_K_MINITEMS) && size < n->min_items)
    REPORT_LIMIT("value_error.list.min_items", n->min_items,
                 "ensure this value has at least %zu items");
  if (kw & WSM_K_ITEMS) {
    size_t np = n->nprefix < size ? n->nprefix : size;
    for (size_t i = 0; i < np; i++) {
      json_t *e = json_array_get(v, i);
      vslot sl = {.kind = SLOT_ARR, .parent = v, .index = i};
      if (!path_push(c, NULL, 0, i, true))
        return false;
      bool r = v_at(c, n->prefix[i], &e, &sl);
      path_pop(c);
      CHILD(r);
    }
    if (a && np > a->prefix)
      a->prefix = np;
    if (n->items && size > n->nprefix) {
      if (n->items_tuple) {
        if (!c->collect)
          return false;
        json_t *cx = json_object();
        json_object_set_new(cx, "actual_length",
                            json_integer((json_int_t)size));
        json_object_set_new(cx, "expected_length",
                            json_integer((json_int_t)n->nprefix));
        REPORT(NULL, "value_error.tuple.length", cx,
               "wrong tuple length %zu, expected %zu", size, n->nprefix);
      } else {
        for (size_t i = n->nprefix; i < size; i++) {
          json_t *e = json_array_get(v, i);
          vslot sl = {.kind = SLOT_ARR, .parent = v, .index = i};
          if (!path_push(c, NULL, 0, i, true))
            return false;
          bool r = v_at(c, n->items, &e, &sl);
          path_pop(c);
          CHILD(r);
        }
      }
      if (a)
        a->all_items = true;
    }
  }
  /* after the item keywords: with coercion, uniqueness is judged on the
   * coerced items ("0" and false are the same boolean), as Pydantic does */
  if (kw & WSM_K_UNIQUE) {
    bool dup = false;
    for (size_t i = 0; !dup && i < size; i++)
      for (size_t j = i + 1; !dup && j < size; j++)
        dup = wsm_json_equal(json_array_get(v, i), json_array_get(v, j));
    if (dup)
      REPORT(NULL, "value_error.list.unique_items", NULL,
             "the list has duplicated items");
  }
  if (kw & WSM_K_CONTAINS) {
    size_t count = 0;
    for (size_t i = 0; i < size; i++) {
      json_t *e = json_array_get(v, i);
      vslot sl = {.kind = SLOT_ARR, .parent = v, .index = i};
      if (!path_push(c, NULL, 0, i, true))
        return false;
      bool r = v_try(c, n->contains, &e, &sl, NULL, NULL);
      path_pop(c);
      if (c->oom)
        return false;
      if (r) {
        count++;
        annot_item(c, a, i, size);
        if (!a && count >= n->min_contains && n->max_contains == SIZE_MAX)
          break;
      }
    }
    if (count < n->min_contains) {
      if (!n->has_min_contains)
        REPORT(NULL, "value_error.list.contains", NULL,
               "the list has no item matching \"contains\"");
      else
        REPORT(
            NULL, "value_error.list.min_contains",
            wsm_obj1("limit_value", json_integer((json_int_t)n->min_contains)),
            "ensure the list has at least %zu items matching "
            "\"contains\"",
            n->min_contains);
    }
    if (count > n->max_contains)
      REPORT(NULL, "value_error.list.max_contains",
             wsm_obj1("limit_value", json_integer((json_int_t)n->max_contains)),
             "ensure the list has at most %zu items matching \"contains\"",
             n->max_contains);
  }
  return ok;
}

/* ---- objects ------------------------------------------------------------- */

static bool v_propname(vctx *c, const wsm_snode *n, const char *key,
                       size_t klen) {
  bool ok = true;
  json_t *k = json_stringn(key, klen);
  if (!k) {
    c->oom = true;
    return false;
  }
  bool saved_coerce = c->coerce, saved_defaults = c->defaults;
  c->coerce = c->defaults = false; /* property names cannot be rewritten */
  vslot own = {.kind = SLOT_OWNED, .own = &k};
  vpath extra = {.key = key, .len = klen};
  bool r = v_try(c, n->propnames, &k, &own, NULL, NULL);
  if (!r && c->collect && !c->oom) {
    if (!path_push(c, key, klen, 0, false)) {
      json_decref(k);
      return false;
    }
    json_t *errs = branch_errors(c, n->propnames, &k, &own);
    path_pop(c);
    const char *why = "";
    json_t *first = json_array_get(errs, 0);
    if (first && json_string_value(json_object_get(first, "msg")))
      why = json_string_value(json_object_get(first, "msg"));
    err_at(c, &extra, "value_error.property_name", wsm_obj1("errors", errs),
           "invalid property name%s%s", *why ? ": " : "", why);
  }
  c->coerce = saved_coerce;
  c->defaults = saved_defaults;
  json_decref(k);
  if (!r)
    ok = false;
  return ok;
}

static bool v_object(vctx *c, const wsm_snode *n, json_t *v, annot *a) {
  bool ok = true;
  uint32_t kw = n->kw;
  if (a && (n->nprops || n->npatprops))
    a->model = true; /* declares properties: a model, for EXTRA_* */
  if (kw & (WSM_K_MAXPROPS | WSM_K_MINPROPS)) {
    size_t size = json_object_size(v);
    if ((kw & WSM_K_MAXPROPS) && size > n->max_props)
      REPORT_LIMIT("value_error.dict.max_properties", n->max_props,
                   "ensure this value has at most %zu properties");
    if ((kw & WSM_K_MINPROPS) && size < n->min_props)
      REPORT_LIMIT("value_error.dict.min_properties", n->min_props,
                   "ensure this value has at least %zu properties");
  }
  size_t found = 0; /* instance keys that are declared properties */
  if (kw & WSM_K_PROPS) {
    for (size_t i = 0; i < n->nprops; i++) {
      const wsm_prop *p = &n->props[i];
      json_t *e = json_object_getn(v, p->key, p->len);
      if (e)
        found++;
      if (!e) {
        if (p->required) {
          vpath extra = {.key = p->key, .len = p->len};
          REPORT(&extra, "value_error.missing", NULL, "field required");
        }
        continue;
      }
      vslot sl = {
          .kind = SLOT_OBJ, .parent = v, .key = p->key, .keylen = p->len};
      if (!path_push(c, p->key, p->len, 0, false))
        return false;
      bool r = v_at(c, p->s, &e, &sl);
      path_pop(c);
      CHILD(r);
      annot_key(c, a, p->key, p->len);
    }
    for (size_t i = 0; i < n->nrequired; i++) {
      const wsm_name *r = &n->required[i];
      if (!json_object_getn(v, r->s, r->len)) {
        vpath extra = {.key = r->s, .len = r->len};
        REPORT(&extra, "value_error.missing", NULL, "field required");
      } else {
        annot_rkey(c, a, r->s, r->len);
      }
    }
  }
  if (kw & WSM_K_DEPREQ) {
    for (size_t i = 0; i < n->ndepreq; i++) {
      const wsm_depreq *d = &n->depreq[i];
      if (!json_object_getn(v, d->key.s, d->key.len))
        continue;
      for (size_t k = 0; k < d->n; k++) {
        if (json_object_getn(v, d->req[k].s, d->req[k].len))
          continue;
        vpath extra = {.key = d->req[k].s, .len = d->req[k].len};
        REPORT(&extra, "value_error.dependent_required",
               wsm_obj1("dependent_on", json_stringn(d->key.s, d->key.len)),
               "field required when \"%.*s\" is present", (int)d->key.len,
               d->key.s);
      }
    }
  }
  /* every key declared: patternProperties/additionalProperties see none */
  if ((kw & WSM_K_EXTRA) && !(kw & WSM_K_PROPNAMES) && !n->npatprops &&
      found == json_object_size(v))
    kw &= ~WSM_K_EXTRA;
  if (kw & (WSM_K_EXTRA | WSM_K_PROPNAMES)) {
    const char *key;
    size_t klen;
    json_t *e;
    void *it = json_object_iter(v);
    while (it) {
      key = json_object_iter_key(it);
      klen = json_object_iter_key_len(it);
      e = json_object_iter_value(it);
      if (kw & WSM_K_PROPNAMES)
        CHILD(v_propname(c, n, key, klen));
      if (kw & WSM_K_EXTRA) {
        bool matched = wsm_prop_find(n, key, klen) >= 0;
        vslot sl = {.kind = SLOT_OBJ, .parent = v, .key = key, .keylen = klen};
        for (size_t p = 0; p < n->npatprops; p++) {
          vpath kp = {.key = key, .len = klen};
          int m = re_match(c, n->patprops[p].re, key, klen, &kp);
          if (m < 0 || c->oom) {
            matched = true; /* no verdict: not "additional" either */
            ok = false;
            if (!c->collect || c->stop || c->oom)
              return false;
            continue;
          }
          if (!m)
            continue;
          matched = true;
          if (!path_push(c, key, klen, 0, false))
            return false;
          bool r = v_at(c, n->patprops[p].s, &e, &sl);
          path_pop(c);
          CHILD(r);
          annot_key(c, a, key, klen);
        }
        if (!matched && n->additional) {
          if (n->additional->boolean == WSM_BOOL_FALSE) {
            REPORT_EXTRA(key, klen, e);
          } else {
            if (!path_push(c, key, klen, 0, false))
              return false;
            bool r = v_at(c, n->additional, &e, &sl);
            path_pop(c);
            CHILD(r);
          }
        }
      }
      it = json_object_iter_next(v, it);
    }
    if (n->additional && a)
      a->all_props = true;
  }
  return ok;
}

/* ---- in-place applicators ------------------------------------------------ */

/* anyOf / oneOf.  Without rewrites every branch is judged on the instance.
 * With rewrites, pass 1 judges the branches with coercion off (an exact
 * match wins, like Pydantic's smart_union), pass 2 with coercion on; the
 * scratch copy of the selected branch is committed. */
static bool v_choice(vctx *c, const wsm_snode *n, bool one, json_t **ip,
                     const vslot *sl, annot *a) {
  wsm_snode *const *br = one ? n->oneof : n->anyof;
  size_t nbr = one ? n->noneof : n->anyof ? n->nanyof : 0;
  size_t nmatch = 0;
  json_t *matches = NULL; /* indexes, for the oneOf error */
  int passes = mutating(c) && c->coerce ? 2 : 1;
  bool saved_coerce = c->coerce;
  for (int pass = 0; pass < passes && nmatch == 0; pass++) {
    if (passes == 2)
      c->coerce = pass == 1;
    json_t *winner = NULL;
    for (size_t i = 0; i < nbr; i++) {
      json_t *keep = NULL;
      bool r = v_try(c, br[i], ip, sl, a, mutating(c) ? &keep : NULL);
      if (c->oom) {
        json_decref(keep);
        json_decref(winner);
        json_decref(matches);
        c->coerce = saved_coerce;
        return false;
      }
      if (!r)
        continue;
      nmatch++;
      if (one) {
        if (!matches)
          matches = json_array();
        json_array_append_new(matches, json_integer((json_int_t)i));
      }
      if (!winner)
        winner = keep;
      else
        json_decref(keep);
      /* without annotations to collect, the verdict is known */
      if (!a && (!one || nmatch > 1))
        break;
    }
    c->coerce = saved_coerce;
    if (winner) {
      if ((!one || nmatch == 1) && !commit(c, sl, ip, winner))
        nmatch = 0; /* cannot rewrite the root: no usable match */
      json_decref(winner);
    }
  }
  c->coerce = saved_coerce;
  if (nmatch == 1 || (!one && nmatch > 1)) {
    json_decref(matches);
    return true;
  }
  if (!c->collect) {
    json_decref(matches);
    return false;
  }
  if (nmatch == 0) {
    json_decref(matches);
    json_t *cx = all_branch_errors(c, br, nbr, ip, sl);
    if (one)
      err_at(c, NULL, "value_error.one_of.no_match", cx,
             "value does not match any of the schemas in \"oneOf\"");
    else
      err_at(c, NULL, "value_error.any_of", cx,
             "value does not match any of the schemas in \"anyOf\"");
  } else {
    err_at(c, NULL, "value_error.one_of.multiple_matches",
           wsm_obj1("matches", matches),
           "value matches more than one of the schemas in \"oneOf\"");
  }
  return false;
}

static bool v_inplace(vctx *c, const wsm_snode *n, json_t **ip, const vslot *sl,
                      annot *a) {
  bool ok = true;
  uint32_t kw = n->kw;
  if (kw & WSM_K_REF)
    CHILD(v_node(c, n->ref, ip, sl, a));
  if (kw & WSM_K_ALLOF)
    for (size_t i = 0; i < n->nallof; i++)
      CHILD(v_node(c, n->allof[i], ip, sl, a));
  if (kw & WSM_K_ANYOF)
    CHILD(v_choice(c, n, false, ip, sl, a));
  if (kw & WSM_K_ONEOF)
    CHILD(v_choice(c, n, true, ip, sl, a));
  if (kw & WSM_K_NOT) {
    bool r = v_try(c, n->not_, ip, sl, NULL, NULL);
    if (c->oom)
      return false;
    if (r)
      REPORT(NULL, "value_error.not", NULL,
             "value must not match the schema in \"not\"");
  }
  if (kw & WSM_K_IF) {
    bool r = v_try(c, n->if_, ip, sl, a, NULL);
    if (c->oom)
      return false;
    const wsm_snode *next = r ? n->then_ : n->else_;
    if (next)
      CHILD(v_node(c, next, ip, sl, a));
  }
  if ((kw & WSM_K_DEPSCHEMAS) && json_is_object(*ip)) {
    for (size_t i = 0; i < n->ndepschemas; i++) {
      const wsm_depschema *d = &n->depschemas[i];
      if (json_object_getn(*ip, d->key.s, d->key.len))
        CHILD(v_node(c, d->s, ip, sl, a));
    }
  }
  return ok;
}

/* ---- unevaluated* -------------------------------------------------------- */

static bool v_unevaluated(vctx *c, const wsm_snode *n, json_t *v, annot *a) {
  bool ok = true;
  if (n->uneval_props && json_is_object(v)) {
    void *it = json_object_iter(v);
    while (it) {
      const char *key = json_object_iter_key(it);
      size_t klen = json_object_iter_key_len(it);
      json_t *e = json_object_iter_value(it);
      if (!annot_has_key(a, key, klen)) {
        if (n->uneval_props->boolean == WSM_BOOL_FALSE) {
          REPORT_EXTRA(key, klen, e);
        } else {
          vslot sl = {
              .kind = SLOT_OBJ, .parent = v, .key = key, .keylen = klen};
          if (!path_push(c, key, klen, 0, false))
            return false;
          bool r = v_at(c, n->uneval_props, &e, &sl);
          path_pop(c);
          CHILD(r);
        }
      }
      it = json_object_iter_next(v, it);
    }
    a->all_props = true;
  }
  if (n->uneval_items && json_is_array(v)) {
    size_t size = json_array_size(v);
    for (size_t i = 0; i < size; i++) {
      if (annot_has_item(a, i))
        continue;
      if (n->uneval_items->boolean == WSM_BOOL_FALSE) {
        vpath extra = {.idx = i, .is_idx = true};
        REPORT(&extra, "value_error.list.extra_items", NULL,
               "extra items not permitted");
      } else {
        json_t *e = json_array_get(v, i);
        vslot sl = {.kind = SLOT_ARR, .parent = v, .index = i};
        if (!path_push(c, NULL, 0, i, true))
          return false;
        bool r = v_at(c, n->uneval_items, &e, &sl);
        path_pop(c);
        CHILD(r);
      }
    }
    a->all_items = true;
  }
  return ok;
}

/* ---- one schema node ----------------------------------------------------- */

static bool v_keywords(vctx *c, const wsm_snode *n, json_t **ip,
                       const vslot *sl, annot *a) {
  bool ok = true;
  uint32_t kw = n->kw;
  if (kw & WSM_K_TYPE) {
    if (!type_ok(n->types, *ip)) {
      json_t *nv = c->coerce ? coerce(n->types, *ip) : NULL;
      if (nv)
        c->coerced = true;
      if (!nv || !slot_set(c, sl, ip, nv)) {
        if (c->oom)
          return false;
        ok = false;
        if (c->collect)
          type_errors(c, n->types, *ip);
        return false; /* other keywords would only repeat the problem */
      }
    } else if (c->coerce && json_is_real(*ip) && !(n->types & WSM_T_NUMBER)) {
      /* lax mode normalises 5.0 to 5 where only integers are allowed */
      json_t *nv = coerce(WSM_T_INTEGER, *ip);
      if (nv)
        c->coerced = true;
      if (nv && !slot_set(c, sl, ip, nv) && c->oom)
        return false;
    }
  }
  json_t *v = *ip;
  if (c->defaults && n->ndefaults && json_is_object(v)) {
    for (size_t i = 0; i < n->nprops; i++) {
      const wsm_prop *p = &n->props[i];
      if (p->dflt && !json_object_getn(v, p->key, p->len) &&
          json_object_setn_new_nocheck(v, p->key, p->len,
                                       json_deep_copy(p->dflt))) {
        c->oom = true;
        return false;
      }
    }
  }
  if ((kw & WSM_K_ENUM)) {
    bool found = false;
    for (size_t i = 0; !found && i < json_array_size(n->enumv); i++)
      found = wsm_json_equal(v, json_array_get(n->enumv, i));
    if (!found) {
      if (!c->collect)
        return false;
      wsm_sb b = {.mem = c->mem};
      for (size_t i = 0; i < json_array_size(n->enumv); i++) {
        if (i)
          wsm_sb_adds(&b, ", ");
        wsm_py_repr(&b, json_array_get(n->enumv, i));
      }
      char *list = wsm_sb_finish(&b);
      ok = false;
      err_at(c, NULL, "type_error.enum",
             wsm_obj1("enum_values", json_deep_copy(n->enumv)),
             "value is not a valid enumeration member; permitted: %s",
             list ? list : "?");
      wsm_free(c->mem, list);
      if (c->stop)
        return false;
    }
  }
  if ((kw & WSM_K_CONST) && !wsm_json_equal(v, n->constv)) {
    if (!c->collect)
      return false;
    char *r = repr(c, n->constv);
    json_t *cx = json_object();
    json_object_set_new(cx, "given", json_deep_copy(v));
    json_t *perm = json_array();
    json_array_append_new(perm, json_deep_copy(n->constv));
    json_object_set_new(cx, "permitted", perm);
    ok = false;
    err_at(c, NULL, "value_error.const", cx, "unexpected value; permitted: %s",
           r ? r : "?");
    wsm_free(c->mem, r);
    if (c->stop)
      return false;
  }
  switch (json_typeof(v)) {
  case JSON_INTEGER:
  case JSON_REAL:
    if (kw & WSM_K_NUMERIC)
      CHILD(v_number(c, n, v));
    break;
  case JSON_STRING:
    if (kw & WSM_K_STRINGKW)
      CHILD(v_string(c, n, v));
    break;
  case JSON_ARRAY:
    if (kw & (WSM_K_ARRAYKW & ~WSM_K_UNEVAL_ITEMS))
      CHILD(v_array(c, n, v, a));
    break;
  case JSON_OBJECT:
    if (kw & (WSM_K_OBJECTKW & ~WSM_K_UNEVAL_PROPS))
      CHILD(v_object(c, n, v, a));
    break;
  default:
    break;
  }
  if (kw & WSM_K_INPLACE)
    CHILD(v_inplace(c, n, ip, sl, a));
  if (kw & (WSM_K_UNEVAL_PROPS | WSM_K_UNEVAL_ITEMS))
    CHILD(v_unevaluated(c, n, *ip, a));
  return ok;
}

static bool v_node(vctx *c, const wsm_snode *n, json_t **ip, const vslot *sl,
                   annot *a) {
  if (n->boolean) {
    if (n->boolean == WSM_BOOL_TRUE)
      return true;
    if (c->collect)
      err_at(c, NULL, "value_error.false_schema", NULL,
             "no value is allowed here");
    return false;
  }
  if (c->halt)
    return false; /* the verdict is in: nothing more is looked at */
  /* A limit is not a verdict on this branch: nothing else is tried (each
   * alternative walked down to it again, and collecting every branch's
   * errors on the way up made that exponential: 300 nested "items" in an
   * AsyncAPI payload took 1.5 GB), and the validation ends with this one
   * error (validate_impl). */
  if (c->depth >= WSM_MAX_DEPTH) {
    halt(c, ip, HALT_DEEP);
    return false;
  }
  if (!spend(c, 1)) {
    halt(c, ip, HALT_WORK);
    return false;
  }
  c->depth++;
  json_t **saved_cur = c->cur;
  c->cur = ip;
  bool ok;
  if (n->annot) {
    annot local = {0};
    ok = v_keywords(c, n, ip, sl, &local);
    if (ok && a)
      annot_merge(c, a, &local);
    annot_free(c, &local);
  } else {
    ok = v_keywords(c, n, ip, sl, a);
  }
  c->depth--;
  c->cur = saved_cur;
  return ok;
}

/* ---- a new instance location ------------------------------------------- */

/* Validate the value at a new instance location (the root, a property, an
 * item) against `n`.  With EXTRA_IGNORE / EXTRA_FORBID, an object there
 * that a model-like schema applied to (one with "properties" or
 * "patternProperties", also through $ref, allOf, the matching anyOf/oneOf
 * branch, if/then/else, dependentSchemas) has its undeclared keys dropped
 * / reported: declared means named in "properties" or matched by
 * "patternProperties" of any of them; "additionalProperties" or
 * "unevaluatedProperties" (any schema, false included: the schema then
 * decides) declares every key.  The annotations of unevaluatedProperties
 * say exactly that. */
static bool v_at(vctx *c, const wsm_snode *n, json_t **ip, const vslot *sl) {
  if (c->extra == EXTRA_ALLOW || n->boolean || !json_is_object(*ip))
    return v_node(c, n, ip, sl, NULL);
  annot a = {0};
  bool ok = v_node(c, n, ip, sl, &a);
  json_t *v = *ip;
  if (c->oom || !a.model || a.all_props || !json_is_object(v)) {
    annot_free(c, &a);
    return ok;
  }
  const char **drop = NULL;
  size_t ndrop = 0, cap = 0;
  void *it = json_object_iter(v);
  while (it) {
    const char *key = json_object_iter_key(it);
    size_t klen = json_object_iter_key_len(it);
    if (!annot_has_key(&a, key, klen) && !annot_has_rkey(&a, key, klen)) {
      if (c->extra == EXTRA_FORBID) {
        ok = false;
        if (!c->collect)
          break;
        vpath extra = {.key = key, .len = klen};
        err_in(c, &extra, json_object_iter_value(it), "value_error.extra", NULL,
               "extra fields not permitted");
        if (c->stop)
          break;
      } else {
        if (ndrop == cap) {
          size_t ncap = cap ? cap * 2 : 8;
          const char **p =
              wsm_realloc(c->mem, drop, cap * sizeof(*p), ncap * sizeof(*p));
          if (!p) {
            c->oom = true;
            break;
          }
          drop = p;
          cap = ncap;
        }
        drop[ndrop++] = key;
      }
    }
    it = json_object_iter_next(v, it);
  }
  annot_free(c, &a);
  /* keys are NUL-free (jansson), so json_object_del finds them */
  for (size_t i = ndrop; i-- > 0;)
    json_object_del(v, drop[i]);
  wsm_free(c->mem, drop);
  return ok && !c->oom;
}

/* ---- public API ---------------------------------------------------------- */

static int validate_impl(const wsmsg_schema *s, json_t **rootp, bool owned,
                         unsigned flags, wsmsg_verrors *out, bool append) {
  if (out && !append)
    wsmsg_verrors_clear(out);
  size_t first = out ? out->n : 0; /* this validation's first error */
  vpath stack_path[32];
  vctx c;
  memset(&c, 0, sizeof(c));
  c.s = s;
  c.mem = out ? &out->mem : &s->mem;
  c.out = out;
  c.collect = out != NULL;
  c.coerce = (flags & WSMSG_VALIDATE_COERCE) != 0;
  c.defaults = (flags & WSMSG_VALIDATE_DEFAULTS) != 0;
  c.format = (flags & WSMSG_VALIDATE_FORMAT) != 0;
  c.v2 = (flags & WSMSG_VALIDATE_PYDANTIC_V2) != 0;
  if (out)
    out->v2 = c.v2;
  c.extra = (flags & WSMSG_VALIDATE_EXTRA_FORBID)   ? EXTRA_FORBID
            : (flags & WSMSG_VALIDATE_EXTRA_IGNORE) ? EXTRA_IGNORE
                                                    : EXTRA_ALLOW;
  c.path = stack_path;
  c.cappath = sizeof(stack_path) / sizeof(stack_path[0]);
  c.root_out = out;
  c.max_work = WORK_BASE;
  size_t cap = out ? out->max : WSMSG_VERRORS_DEFAULT_MAX;
  c.max_errs = cap > SIZE_MAX / ERR_BUDGET ? SIZE_MAX : cap * ERR_BUDGET;
  pcre2_match_data *own_md = NULL;
  if (s->has_regex) {
    if (out) {
      if (!out->md) {
        /* through the list's allocator: it may outlive the schema */
        pcre2_general_context *g = wsm_pcre2_gctx(&out->mem);
        if (g)
          out->md = pcre2_match_data_create(1, g);
        pcre2_general_context_free(g);
      }
      c.md = out->md;
    } else {
      c.md = own_md = pcre2_match_data_create(1, s->gctx);
    }
    if (!c.md)
      return WSMSG_ERR_NOMEM;
  }
  json_t *inst = *rootp;
  vslot root = owned ? (vslot){.kind = SLOT_OWNED, .own = rootp}
                     : (vslot){.kind = SLOT_FIXED};
  c.rootp = owned ? rootp : &inst; /* a coerced root replaces *rootp */
  bool ok = v_at(&c, s->root, owned ? rootp : &inst, &root);
  if (ok && c.coerced && !c.oom) {
    /* Subschemas that apply to the same value (allOf, overlapping
     * patternProperties...) may each have accepted it in a different form:
     * one as it was, one after coercing it.  The rewritten document must
     * still be valid, so check a copy of it once more (coercion still
     * judging, nothing written back, no defaults) and report what that
     * finds.  Only documents that were coerced pay for this. */
    json_t *copy = json_deep_copy(owned ? *rootp : inst);
    if (!copy) {
      c.oom = true;
      ok = false;
    } else {
      c.defaults = false;
      vslot own = {.kind = SLOT_OWNED, .own = &copy};
      ok = v_at(&c, s->root, &copy, &own);
      json_decref(copy);
    }
  }
  if (c.re_limit && !c.oom) {
    /* a pattern without a verdict (even inside "not", "if" or a branch of
     * "anyOf"): the document is neither valid nor plainly invalid */
    ok = false;
    if (out && !c.re_limit_reported && !out->truncated) {
      c.npath = 0;
      json_t *loc = c.re_limit_loc ? json_incref(c.re_limit_loc) : json_array();
      const char *src = c.re_limit_src ? c.re_limit_src : "";
      char *msg = wsm_asprintf(&out->mem, REGEX_LIMIT_MSG, src);
      if (wsm_verrors_add(out, loc, REGEX_LIMIT_TYPE, msg,
                          wsm_obj1("pattern", json_string(src))) < 0)
        c.oom = true;
    }
  }
  json_decref(c.re_limit_loc);
  if (c.halt && !c.oom) {
    /* one error, where the limit was reached: what the branches above it
     * said on the way out is noise */
    ok = false;
    if (out) {
      wsm_verrors_truncate(out, first);
      json_t *loc = c.halt_loc ? c.halt_loc : json_array();
      c.halt_loc = NULL;
      char *msg = !strcmp(c.halt, HALT_DEEP)
                      ? wsm_asprintf(&out->mem, TOO_DEEP_MSG, WSM_MAX_DEPTH)
                      : wsm_asprintf(&out->mem, TOO_COMPLEX_MSG, c.max_work);
      if (wsm_verrors_add_in(out, loc, c.halt, msg, NULL, c.halt_input) < 0)
        c.oom = true;
    }
  }
  json_decref(c.halt_loc);
  json_decref(c.halt_input);
  if (!ok && out && out->n == first && !c.oom)
    err_at(&c, NULL, "value_error", NULL, "invalid value");
  for (size_t i = 0; i < c.ngrave; i++)
    json_decref(c.grave[i]);
  wsm_free(c.mem, c.grave);
  wsm_free(c.mem, c.path_heap);
  if (own_md)
    pcre2_match_data_free(own_md);
  if (c.oom)
    return WSMSG_ERR_NOMEM;
  return ok ? 0 : WSMSG_ERR_VALIDATION;
}

int wsmsg_schema_validate(const wsmsg_schema *s, json_t *doc, unsigned flags,
                          wsmsg_verrors *out) {
  if (!s || !doc) {
    wsmsg_verrors_clear(out);
    return WSMSG_ERR_INVALID_ARG;
  }
  return validate_impl(s, &doc, false, flags, out, false);
}

int wsm_schema_validate_more(const wsmsg_schema *s, json_t *doc, unsigned flags,
                             wsmsg_verrors *out) {
  return validate_impl(s, &doc, false, flags, out, true);
}

int wsmsg_schema_validate_text(const wsmsg_schema *s, const char *text,
                               size_t len, unsigned flags, wsmsg_verrors *out,
                               json_t **doc_out) {
  if (doc_out)
    *doc_out = NULL;
  if (out)
    wsmsg_verrors_clear(out);
  if (!s || (!text && len))
    return WSMSG_ERR_INVALID_ARG;
  json_error_t je;
  json_t *doc =
      json_loadb(text ? text : "", len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
  if (!doc) {
    if (out) {
      out->v2 = (flags & WSMSG_VALIDATE_PYDANTIC_V2) != 0;
      if (wsm_verrors_add_jsondecode(out, &je, text ? text : "", len) < 0)
        return WSMSG_ERR_NOMEM;
    }
    return WSMSG_ERR_JSON;
  }
  int rc = validate_impl(s, &doc, true, flags, out, false); /* clears out */
  if (doc_out)
    *doc_out = doc;
  else
    json_decref(doc);
  return rc;
}
