/* JSON Schema compiler: text or json_t -> graph of immutable wsm_snode.
 *
 * Pass 1 walks every subschema at a known keyword location and records its
 * base URI and dialect, every schema resource ($id) and every anchor
 * ($anchor, $dynamicAnchor, draft-07 "$id": "#name").  Pass 2 compiles the
 * root (and $defs/definitions) recursively; "$ref"s are resolved afterwards
 * against the resources of the document, compiling their targets on demand,
 * so every subschema is compiled once and references may form cycles.
 * Finally, cycles that never descend into the instance (which would loop
 * forever at validation time) are rejected. */
#include "schema_internal.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- URIs (RFC 3986) ----------------------------------------------------- */

typedef struct uri_parts {
  const char *scheme, *auth, *path, *query, *frag;
  size_t scheme_len, auth_len, path_len, query_len, frag_len;
  bool has_scheme, has_auth, has_query, has_frag;
} uri_parts;

/* RFC 3986 appendix B:
 * ^(([^:/?#]+):)?(//([^/?#]*))?([^?#]*)(\?([^#]*))?(#(.*))? */
static void uri_split(const char *s, uri_parts *u) {
  memset(u, 0, sizeof(*u));
  const char *p = s;
  const char *q = p;
  while (*q && !strchr(":/?#", *q))
    q++;
  if (*q == ':' && q > p) {
    u->has_scheme = true;
    u->scheme = p;
    u->scheme_len = (size_t)(q - p);
    p = q + 1;
  }
  if (p[0] == '/' && p[1] == '/') {
    p += 2;
    q = p;
    while (*q && !strchr("/?#", *q))
      q++;
    u->has_auth = true;
    u->auth = p;
    u->auth_len = (size_t)(q - p);
    p = q;
  }
  q = p;
  while (*q && *q != '?' && *q != '#')
    q++;
  u->path = p;
  u->path_len = (size_t)(q - p);
  p = q;
  if (*p == '?') {
    p++;
    q = p;
    while (*q && *q != '#')
      q++;
    u->has_query = true;
    u->query = p;
    u->query_len = (size_t)(q - p);
    p = q;
  }
  if (*p == '#') {
    u->has_frag = true;
    u->frag = p + 1;
    u->frag_len = strlen(p + 1);
  }
}

/* RFC 3986 5.2.4: remove "." and ".." segments, appending to `out`. */
static void remove_dots(wsm_sb *out, const char *in, size_t n) {
  char *buf = wsm_malloc(out->mem, n + 1);
  if (!buf) {
    out->oom = true;
    return;
  }
  memcpy(buf, in, n);
  buf[n] = '\0';
  size_t start = out->n;
  char *p = buf;
  while (*p) {
    if (strncmp(p, "../", 3) == 0) {
      p += 3;
    } else if (strncmp(p, "./", 2) == 0) {
      p += 2;
    } else if (strncmp(p, "/./", 3) == 0) {
      p += 2;
    } else if (strcmp(p, "/.") == 0) {
      p += 1;
      *p = '/';
    } else if (strncmp(p, "/../", 4) == 0 || strcmp(p, "/..") == 0) {
      p += 2;
      *p = '/';
      while (out->n > start && out->p[out->n - 1] != '/')
        out->n--;
      if (out->n > start)
        out->n--;
    } else if (strcmp(p, ".") == 0 || strcmp(p, "..") == 0) {
      break;
    } else {
      const char *q = p + (*p == '/');
      while (*q && *q != '/')
        q++;
      wsm_sb_add(out, p, (size_t)(q - p));
      p += q - p;
    }
  }
  if (out->p)
    out->p[out->n] = '\0';
  wsm_free(out->mem, buf);
}

static void add_auth(wsm_sb *b, const uri_parts *u) {
  if (u->has_auth) {
    wsm_sb_adds(b, "//");
    wsm_sb_add(b, u->auth, u->auth_len);
  }
}

/* Resolve `ref` against `base` (RFC 3986 5.2.2); the result is allocated
 * from `mem`. */
static char *uri_resolve(const wsmsg_mem *mem, const char *base,
                         const char *ref) {
  uri_parts b, r;
  uri_split(base, &b);
  uri_split(ref, &r);
  wsm_sb o = {.mem = mem};
  /* which parts come from the reference and which from the base */
  bool own_auth = r.has_scheme || r.has_auth;
  const uri_parts *sch = r.has_scheme ? &r : &b;
  const uri_parts *q = own_auth || r.path_len || r.has_query ? &r : &b;
  if (sch->has_scheme) {
    wsm_sb_add(&o, sch->scheme, sch->scheme_len);
    wsm_sb_addc(&o, ':');
  }
  add_auth(&o, own_auth ? &r : &b);
  if (own_auth || (r.path_len && r.path[0] == '/')) {
    remove_dots(&o, r.path, r.path_len);
  } else if (r.path_len == 0) {
    wsm_sb_add(&o, b.path, b.path_len);
  } else { /* merge (5.2.3) */
    wsm_sb m = {.mem = mem};
    if (b.has_auth && b.path_len == 0) {
      wsm_sb_addc(&m, '/');
    } else {
      size_t k = b.path_len;
      while (k > 0 && b.path[k - 1] != '/')
        k--;
      wsm_sb_add(&m, b.path, k);
    }
    wsm_sb_add(&m, r.path, r.path_len);
    if (m.oom)
      o.oom = true;
    else if (m.p)
      remove_dots(&o, m.p, m.n);
    wsm_free(mem, m.p);
  }
  if (q->has_query) {
    wsm_sb_addc(&o, '?');
    wsm_sb_add(&o, q->query, q->query_len);
  }
  if (r.has_frag) {
    wsm_sb_addc(&o, '#');
    wsm_sb_add(&o, r.frag, r.frag_len);
  }
  return wsm_sb_finish(&o);
}

/* ---- pointer map: json_t * -> entry -------------------------------------- */

typedef struct ent {
  const json_t *json;
  const char *base; /* arena string */
  int dialect;
  bool scanned; /* seen by pass 1 (a known subschema location) */
  wsm_snode *node;
} ent;

static size_t phash(const void *p, size_t mask) {
  uint64_t x = (uint64_t)(uintptr_t)p;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return (size_t)x & mask;
}

/* An open-addressing hash map keyed by pointer, shared by the compiler's
 * maps: each entry is `esize` bytes and starts with its key (a pointer
 * member); new entries are zeroed.  Linear probing, capacity a power of
 * two kept at most half full. */
typedef struct ptrmap {
  const wsmsg_mem *mem;
  unsigned char *slots;
  size_t cap, n;
} ptrmap;

static const void *ptrmap_key(const unsigned char *slots, size_t esize,
                              size_t i) {
  const void *k;
  memcpy(&k, slots + i * esize, sizeof(k));
  return k;
}

static void *ptrmap_find(const ptrmap *m, const void *key, size_t esize) {
  if (!m->cap)
    return NULL;
  for (size_t i = phash(key, m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
    const void *k = ptrmap_key(m->slots, esize, i);
    if (k == key)
      return m->slots + i * esize;
    if (!k)
      return NULL;
  }
}

static void *ptrmap_put(ptrmap *m, const void *key, size_t esize) {
  if ((m->n + 1) * 2 > m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 64;
    unsigned char *s = wsm_calloc(m->mem, cap * esize);
    if (!s)
      return NULL;
    for (size_t k = 0; k < m->cap; k++) {
      const void *old = ptrmap_key(m->slots, esize, k);
      if (!old)
        continue;
      size_t i = phash(old, cap - 1);
      while (ptrmap_key(s, esize, i))
        i = (i + 1) & (cap - 1);
      memcpy(s + i * esize, m->slots + k * esize, esize);
    }
    wsm_free(m->mem, m->slots);
    m->slots = s;
    m->cap = cap;
  }
  size_t i = phash(key, m->cap - 1);
  const void *k;
  while ((k = ptrmap_key(m->slots, esize, i)) != NULL && k != key)
    i = (i + 1) & (m->cap - 1);
  if (!k) {
    memcpy(m->slots + i * esize, &key, sizeof(key));
    m->n++;
  }
  return m->slots + i * esize;
}

/* json_t * -> ent */
typedef ptrmap pmap;

static ent *pmap_find(const pmap *m, const json_t *j) {
  return ptrmap_find(m, j, sizeof(ent));
}

static ent *pmap_put(pmap *m, const json_t *j) {
  return ptrmap_put(m, j, sizeof(ent));
}

/* ---- compile context ----------------------------------------------------- */

typedef struct named {
  const char *uri; /* arena */
  const json_t *json;
} named;

typedef struct pending {
  wsm_snode *node;
  char *target; /* malloc'd absolute URI with fragment */
  const char *where;
} pending;

typedef struct cctx {
  wsmsg_schema *s;
  const wsmsg_mem *mem; /* the schema's */
  pmap map;
  named *res, *anchors;
  size_t nres, capres, nanchors, capanchors;
  pending *refs;
  size_t nrefs, caprefs;
  char *err;
  size_t err_size;
  int rc;
  bool jit;
} cctx;

static int cfail(cctx *c, int rc, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int cfail(cctx *c, int rc, const char *where, const char *fmt, ...) {
  if (c->rc)
    return c->rc; /* keep the first error */
  c->rc = rc;
  if (c->err && c->err_size) {
    int k = 0;
    if (where)
      k = snprintf(c->err, c->err_size, "%s: ", *where ? where : "#");
    if (k < 0)
      k = 0;
    if ((size_t)k < c->err_size) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(c->err + k, c->err_size - (size_t)k, fmt, ap);
      va_end(ap);
    }
  }
  return rc;
}

static int nomem(cctx *c) {
  return cfail(c, WSMSG_ERR_NOMEM, NULL, "out of memory");
}

static void *aalloc(cctx *c, size_t n) {
  void *p = wsm_arena_alloc(&c->s->arena, n);
  if (!p)
    nomem(c);
  return p;
}

static const char *astr(cctx *c, const char *s) {
  char *p = wsm_arena_strndup(&c->s->arena, s, strlen(s));
  if (!p)
    nomem(c);
  return p;
}

static int add_named(cctx *c, named **arr, size_t *n, size_t *cap,
                     const char *uri, const json_t *json) {
  for (size_t i = 0; i < *n; i++)
    if (strcmp((*arr)[i].uri, uri) == 0)
      return 0; /* first definition wins */
  if (*n == *cap) {
    size_t nc = *cap ? *cap * 2 : 8;
    named *p = wsm_realloc(c->mem, *arr, *cap * sizeof(*p), nc * sizeof(*p));
    if (!p)
      return nomem(c);
    *arr = p;
    *cap = nc;
  }
  const char *u = astr(c, uri);
  if (!u)
    return c->rc;
  (*arr)[*n].uri = u;
  (*arr)[*n].json = json;
  (*n)++;
  return 0;
}

static const json_t *find_named(const named *arr, size_t n, const char *uri) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(arr[i].uri, uri) == 0)
      return arr[i].json;
  return NULL;
}

/* JSON pointer of a child: where + "/" + escaped(seg). Arena string. */
static const char *child_where(cctx *c, const char *where, const char *seg,
                               size_t seglen) {
  wsm_sb b = {.mem = c->mem};
  wsm_sb_adds(&b, where);
  wsm_sb_addc(&b, '/');
  for (size_t i = 0; i < seglen; i++) {
    if (seg[i] == '~')
      wsm_sb_adds(&b, "~0");
    else if (seg[i] == '/')
      wsm_sb_adds(&b, "~1");
    else
      wsm_sb_addc(&b, seg[i]);
  }
  char *s = wsm_sb_finish(&b);
  if (!s) {
    nomem(c);
    return NULL;
  }
  const char *r = astr(c, s);
  wsm_free(c->mem, s);
  return r;
}

static const char *index_where(cctx *c, const char *where, size_t i) {
  char buf[32];
  snprintf(buf, sizeof(buf), "%zu", i);
  return child_where(c, where, buf, strlen(buf));
}

/* ---- dialects ------------------------------------------------------------ */

static int parse_dialect(cctx *c, const json_t *v, const char *where,
                         int *dialect) {
  if (!json_is_string(v))
    return cfail(c, WSMSG_ERR_SCHEMA, where, "\"$schema\" must be a string");
  const char *s = json_string_value(v);
  size_t n = strlen(s);
  while (n > 0 && s[n - 1] == '#')
    n--;
  const char *p = s;
  if (strncmp(p, "https://", 8) == 0)
    p += 8;
  else if (strncmp(p, "http://", 7) == 0)
    p += 7;
  else
    goto unknown;
  n -= (size_t)(p - s);
  if (n == strlen("json-schema.org/draft/2020-12/schema") &&
      strncmp(p, "json-schema.org/draft/2020-12/schema", n) == 0) {
    *dialect = WSM_D2020;
    return 0;
  }
  if (n == strlen("json-schema.org/draft-07/schema") &&
      strncmp(p, "json-schema.org/draft-07/schema", n) == 0) {
    *dialect = WSM_D7;
    return 0;
  }
unknown:
  return cfail(c, WSMSG_ERR_UNSUPPORTED, where,
               "\"$schema\": \"%s\" is not supported (only draft 2020-12 and "
               "draft-07)",
               s);
}

/* ---- pass 1: identifiers ------------------------------------------------- */

enum { KW_SINGLE, KW_MAP, KW_ARRAY, KW_ITEMS7, KW_DEPS7 };

typedef struct subkw {
  const char *name;
  int kind;
  unsigned dialects; /* 1 << WSM_D* */
} subkw;

#define D20 (1u << WSM_D2020)
#define D7 (1u << WSM_D7)

static const subkw SUBKW[] = {
    {"$defs", KW_MAP, D20},
    {"definitions", KW_MAP, D7},
    {"properties", KW_MAP, D20 | D7},
    {"patternProperties", KW_MAP, D20 | D7},
    {"dependentSchemas", KW_MAP, D20},
    {"dependencies", KW_DEPS7, D20 | D7}, /* 2020-12: for compatibility */
    {"additionalProperties", KW_SINGLE, D20 | D7},
    {"propertyNames", KW_SINGLE, D20 | D7},
    {"items", KW_SINGLE, D20},
    {"items", KW_ITEMS7, D7},
    {"additionalItems", KW_SINGLE, D7},
    {"prefixItems", KW_ARRAY, D20},
    {"contains", KW_SINGLE, D20 | D7},
    {"not", KW_SINGLE, D20 | D7},
    {"if", KW_SINGLE, D20 | D7},
    {"then", KW_SINGLE, D20 | D7},
    {"else", KW_SINGLE, D20 | D7},
    {"unevaluatedItems", KW_SINGLE, D20},
    {"unevaluatedProperties", KW_SINGLE, D20},
    {"contentSchema", KW_SINGLE, D20},
    {"allOf", KW_ARRAY, D20 | D7},
    {"anyOf", KW_ARRAY, D20 | D7},
    {"oneOf", KW_ARRAY, D20 | D7},
};

static int scan(cctx *c, const json_t *j, const char *base, int dialect,
                const char *where, bool is_root);

static int scan_children(cctx *c, const json_t *j, const char *base,
                         int dialect, const char *where) {
  for (size_t k = 0; k < sizeof(SUBKW) / sizeof(SUBKW[0]); k++) {
    const subkw *kw = &SUBKW[k];
    if (!(kw->dialects & (1u << dialect)))
      continue;
    const json_t *v = json_object_get(j, kw->name);
    if (!v)
      continue;
    const char *w = child_where(c, where, kw->name, strlen(kw->name));
    if (!w)
      return c->rc;
    int kind = kw->kind;
    if (kind == KW_ITEMS7)
      kind = json_is_array(v) ? KW_ARRAY : KW_SINGLE;
    if (kind == KW_SINGLE) {
      if (scan(c, v, base, dialect, w, false))
        return c->rc;
    } else if (kind == KW_ARRAY) {
      for (size_t i = 0; json_is_array(v) && i < json_array_size(v); i++) {
        const char *wi = index_where(c, w, i);
        if (!wi || scan(c, json_array_get(v, i), base, dialect, wi, false))
          return c->rc;
      }
    } else if (json_is_object(v)) { /* KW_MAP, KW_DEPS7 */
      const char *key;
      size_t klen;
      json_t *sub;
      json_object_keylen_foreach((json_t *)v, key, klen, sub) {
        if (kind == KW_DEPS7 && json_is_array(sub))
          continue;
        const char *wk = child_where(c, w, key, klen);
        if (!wk || scan(c, sub, base, dialect, wk, false))
          return c->rc;
      }
    }
  }
  return 0;
}

static int scan(cctx *c, const json_t *j, const char *base, int dialect,
                const char *where, bool is_root) {
  if (!json_is_object(j)) {
    if (json_is_boolean(j)) {
      ent *e = pmap_put(&c->map, j);
      if (!e)
        return nomem(c);
      if (!e->scanned) {
        e->base = base;
        e->dialect = dialect;
        e->scanned = true;
      }
    }
    return 0; /* other types are reported by pass 2 if used as schemas */
  }
  ent *e = pmap_find(&c->map, j);
  if (e && e->scanned)
    return 0;
  const json_t *id = json_object_get(j, "$id");
  const json_t *ref = json_object_get(j, "$ref");
  /* draft-07: every sibling of "$ref" is ignored, $id included */
  bool ignore_siblings = dialect == WSM_D7 && ref != NULL;
  if ((is_root || (id && !ignore_siblings)) && json_object_get(j, "$schema")) {
    if (parse_dialect(c, json_object_get(j, "$schema"), where, &dialect))
      return c->rc;
    ignore_siblings = dialect == WSM_D7 && ref != NULL;
  }
  if (id && !ignore_siblings) {
    if (!json_is_string(id))
      return cfail(c, WSMSG_ERR_SCHEMA, where, "\"$id\" must be a string");
    char *abs = uri_resolve(c->mem, base, json_string_value(id));
    if (!abs)
      return nomem(c);
    char *hash = strchr(abs, '#');
    const char *frag = NULL;
    if (hash) {
      *hash = '\0';
      frag = hash + 1;
    }
    if (frag && *frag) {
      if (dialect != WSM_D7) {
        cfail(c, WSMSG_ERR_SCHEMA, where,
              "\"$id\" must not have a fragment (use \"$anchor\")");
        wsm_free(c->mem, abs);
        return c->rc;
      }
      /* draft-07 location-independent identifier */
      *hash = '#';
      int rc = add_named(c, &c->anchors, &c->nanchors, &c->capanchors, abs, j);
      *hash = '\0';
      if (rc) {
        wsm_free(c->mem, abs);
        return rc;
      }
    }
    if (!frag || !*frag || strcmp(abs, base) != 0) {
      const char *nb = astr(c, abs);
      if (!nb || add_named(c, &c->res, &c->nres, &c->capres, nb, j) != 0) {
        wsm_free(c->mem, abs);
        return c->rc ? c->rc : nomem(c);
      }
      base = nb;
    }
    wsm_free(c->mem, abs);
  }
  if (dialect == WSM_D2020) {
    static const char *const anchors[] = {"$anchor", "$dynamicAnchor"};
    for (size_t k = 0; k < 2; k++) {
      const json_t *a = json_object_get(j, anchors[k]);
      if (!a)
        continue;
      if (!json_is_string(a))
        return cfail(c, WSMSG_ERR_SCHEMA, where, "\"%s\" must be a string",
                     anchors[k]);
      wsm_sb b = {.mem = c->mem};
      wsm_sb_adds(&b, base);
      wsm_sb_addc(&b, '#');
      wsm_sb_adds(&b, json_string_value(a));
      char *u = wsm_sb_finish(&b);
      if (!u)
        return nomem(c);
      int rc = add_named(c, &c->anchors, &c->nanchors, &c->capanchors, u, j);
      wsm_free(c->mem, u);
      if (rc)
        return rc;
    }
  }
  e = pmap_put(&c->map, j);
  if (!e)
    return nomem(c);
  e->base = base;
  e->dialect = dialect;
  e->scanned = true;
  if (ignore_siblings)
    return 0;
  return scan_children(c, j, base, dialect, where);
}

/* ---- pass 2: keywords ---------------------------------------------------- */

static wsm_snode *compile_node(cctx *c, const json_t *j, const char *where,
                               const char *base, int dialect);

static bool get_nonneg(cctx *c, const json_t *j, const char *kw,
                       const char *where, size_t *out, bool *present) {
  const json_t *v = json_object_get(j, kw);
  *present = v != NULL;
  if (!v)
    return true;
  if (wsm_is_integral(v)) {
    double d =
        json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v);
    if (d >= 0) {
      *out = d >= 1.8e19 ? SIZE_MAX : (size_t)d;
      return true;
    }
  }
  cfail(c, WSMSG_ERR_SCHEMA, where, "\"%s\" must be a non-negative integer",
        kw);
  return false;
}

/* A size limit keyword (maxItems, minLength...): parse it and, if present,
 * set its flag in n->kw. */
static bool get_limit(cctx *c, const json_t *j, const char *kw,
                      const char *where, size_t *out, wsm_snode *n,
                      uint32_t flag) {
  bool has;
  if (!get_nonneg(c, j, kw, where, out, &has))
    return false;
  if (has)
    n->kw |= flag;
  return true;
}

static bool get_num(cctx *c, const json_t *j, const char *kw, const char *where,
                    wsm_num *out, bool *present) {
  const json_t *v = json_object_get(j, kw);
  *present = v != NULL;
  if (!v)
    return true;
  if (!json_is_number(v)) {
    cfail(c, WSMSG_ERR_SCHEMA, where, "\"%s\" must be a number", kw);
    return false;
  }
  if (json_is_integer(v)) {
    out->i = json_integer_value(v);
    out->d = (double)out->i;
    out->is_int = true;
    wsm_decimal_of_int(out->i, &out->dd, &out->de);
  } else {
    wsm_decimal_of_double(json_real_value(v), &out->dd, &out->de);
    out->d = json_real_value(v);
    out->is_int = false;
    out->real = true;
    if (wsm_is_integral(v) && out->d >= -9.2e18 && out->d <= 9.2e18) {
      out->i = (json_int_t)out->d;
      out->is_int = true;
    }
  }
  return true;
}

/* ---- ECMA-262 patterns -> PCRE2 ------------------------------------------ */

/* Unicode general categories by long name / alias (PropertyValueAliases)
 * -> the short names PCRE2 10.42 knows. */
static const char *const GC_ALIASES[][2] = {
    {"Other", "C"},
    {"Control", "Cc"},
    {"cntrl", "Cc"},
    {"Format", "Cf"},
    {"Unassigned", "Cn"},
    {"Private_Use", "Co"},
    {"Surrogate", "Cs"},
    {"Letter", "L"},
    {"Cased_Letter", "L&"},
    {"LC", "L&"},
    {"Lowercase_Letter", "Ll"},
    {"Modifier_Letter", "Lm"},
    {"Other_Letter", "Lo"},
    {"Titlecase_Letter", "Lt"},
    {"Uppercase_Letter", "Lu"},
    {"Mark", "M"},
    {"Combining_Mark", "M"},
    {"Spacing_Mark", "Mc"},
    {"Enclosing_Mark", "Me"},
    {"Nonspacing_Mark", "Mn"},
    {"Number", "N"},
    {"Decimal_Number", "Nd"},
    {"digit", "Nd"},
    {"Letter_Number", "Nl"},
    {"Other_Number", "No"},
    {"Punctuation", "P"},
    {"punct", "P"},
    {"Connector_Punctuation", "Pc"},
    {"Dash_Punctuation", "Pd"},
    {"Close_Punctuation", "Pe"},
    {"Final_Punctuation", "Pf"},
    {"Initial_Punctuation", "Pi"},
    {"Other_Punctuation", "Po"},
    {"Open_Punctuation", "Ps"},
    {"Symbol", "S"},
    {"Currency_Symbol", "Sc"},
    {"Modifier_Symbol", "Sk"},
    {"Math_Symbol", "Sm"},
    {"Other_Symbol", "So"},
    {"Separator", "Z"},
    {"Line_Separator", "Zl"},
    {"Paragraph_Separator", "Zp"},
    {"Space_Separator", "Zs"},
};

/* ECMA-262 WhiteSpace + LineTerminator, as class items (PCRE2_ALT_BSUX
 * syntax). */
#define ECMA_SPACE                                                             \
  "\\t\\n\\x0b\\f\\r "                                                         \
  "\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f"                  \
  "\\u3000\\ufeff"

/* Rewrite the ECMA-262 constructs PCRE2 reads differently: \p{Long_Name}
 * and \p{gc=..}/\p{sc=..} property forms, and \s / \S (Unicode
 * whitespace in ECMA-262, ASCII in PCRE2 without UCP).  \d and \w stay
 * ASCII in both. */
static void ecma_to_pcre2(wsm_sb *o, const char *s, size_t n) {
  bool in_class = false;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    if (ch == '\\' && i + 1 < n) {
      char e = s[i + 1];
      if ((e == 'p' || e == 'P') && i + 2 < n && s[i + 2] == '{') {
        const char *end = memchr(s + i + 3, '}', n - i - 3);
        if (end) {
          const char *name = s + i + 3;
          size_t len = (size_t)(end - name);
          const char *eq = memchr(name, '=', len);
          bool script = false;
          if (eq) {
            size_t kl = (size_t)(eq - name);
            script =
                (kl == 6 && strncmp(name, "Script", 6) == 0) ||
                (kl == 2 && strncmp(name, "sc", 2) == 0) ||
                (kl == 18 && strncmp(name, "Script_Extensions", 17) == 0) ||
                (kl == 3 && strncmp(name, "scx", 3) == 0);
            len -= (size_t)(eq + 1 - name);
            name = eq + 1;
          }
          const char *mapped = NULL;
          for (size_t k = 0;
               !script && k < sizeof(GC_ALIASES) / sizeof(GC_ALIASES[0]); k++)
            if (strlen(GC_ALIASES[k][0]) == len &&
                strncmp(GC_ALIASES[k][0], name, len) == 0)
              mapped = GC_ALIASES[k][1];
          wsm_sb_addc(o, '\\');
          wsm_sb_addc(o, e);
          wsm_sb_addc(o, '{');
          if (mapped)
            wsm_sb_adds(o, mapped);
          else
            wsm_sb_add(o, name, len);
          wsm_sb_addc(o, '}');
          i = (size_t)(end - s);
          continue;
        }
      }
      if (e == 's' || (e == 'S' && !in_class)) {
        if (in_class)
          wsm_sb_adds(o, ECMA_SPACE);
        else
          wsm_sb_adds(o, e == 's' ? "[" ECMA_SPACE "]" : "[^" ECMA_SPACE "]");
        i++;
        continue;
      }
      wsm_sb_addc(o, ch);
      wsm_sb_addc(o, e);
      i++;
      continue;
    }
    if (ch == '[' && !in_class) {
      in_class = true;
      wsm_sb_addc(o, ch);
      if (i + 1 < n && s[i + 1] == '^') {
        wsm_sb_addc(o, '^');
        i++;
      }
      continue;
    }
    if (ch == ']' && in_class)
      in_class = false;
    wsm_sb_addc(o, ch);
  }
}

static wsm_regex *regex_new(cctx *c, const char *src, size_t len,
                            const char *where) {
  int code;
  PCRE2_SIZE off;
  pcre2_compile_context *cc = pcre2_compile_context_create(c->s->gctx);
  if (!cc) {
    nomem(c);
    return NULL;
  }
  pcre2_set_compile_extra_options(cc, PCRE2_EXTRA_ALT_BSUX);
  wsm_sb pat = {.mem = c->mem};
  ecma_to_pcre2(&pat, src, len);
  if (pat.oom) {
    wsm_free(c->mem, pat.p);
    pcre2_compile_context_free(cc);
    nomem(c);
    return NULL;
  }
  pcre2_code *re =
      pcre2_compile((PCRE2_SPTR)(pat.p ? pat.p : ""), pat.n,
                    PCRE2_UTF | PCRE2_ALT_BSUX | PCRE2_DOLLAR_ENDONLY |
                        PCRE2_ALLOW_EMPTY_CLASS,
                    &code, &off, cc);
  wsm_free(c->mem, pat.p);
  pcre2_compile_context_free(cc);
  if (!re) {
    PCRE2_UCHAR msg[160];
    pcre2_get_error_message(code, msg, sizeof(msg));
    cfail(c, WSMSG_ERR_SCHEMA, where,
          "invalid regular expression \"%.*s\": %s at offset %zu",
          (int)(len > 200 ? 200 : len), src, (const char *)msg, (size_t)off);
    return NULL;
  }
  if (c->jit)
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional speed-up */
  wsm_regex *r = aalloc(c, sizeof(*r));
  if (r) {
    wsm_regex **list =
        wsm_realloc(c->mem, c->s->regexes, c->s->nregexes * sizeof(*list),
                    (c->s->nregexes + 1) * sizeof(*list));
    if (list) {
      c->s->regexes = list;
      list[c->s->nregexes++] = r;
      r->code = re;
      r->src = wsm_arena_strndup(&c->s->arena, src, len);
      c->s->has_regex = true;
      if (r->src)
        return r;
      nomem(c);
      return NULL;
    }
    nomem(c);
  }
  pcre2_code_free(re);
  return NULL;
}

static wsm_snode *sub(cctx *c, const json_t *v, const char *where,
                      const char *seg, const char *base, int dialect) {
  const char *w = child_where(c, where, seg, strlen(seg));
  if (!w)
    return NULL;
  return compile_node(c, v, w, base, dialect);
}

static bool sub_array(cctx *c, const json_t *v, const char *where,
                      const char *kw, const char *base, int dialect,
                      bool nonempty, wsm_snode ***out, size_t *n) {
  if (!json_is_array(v) || (nonempty && json_array_size(v) == 0)) {
    cfail(c, WSMSG_ERR_SCHEMA, where, "\"%s\" must be a%s array of schemas", kw,
          nonempty ? " non-empty" : "n");
    return false;
  }
  const char *w = child_where(c, where, kw, strlen(kw));
  if (!w)
    return false;
  *n = json_array_size(v);
  *out = aalloc(c, (*n ? *n : 1) * sizeof(**out));
  if (!*out)
    return false;
  for (size_t i = 0; i < *n; i++) {
    const char *wi = index_where(c, w, i);
    if (!wi)
      return false;
    (*out)[i] = compile_node(c, json_array_get(v, i), wi, base, dialect);
    if (!(*out)[i])
      return false;
  }
  return true;
}

/* An optional keyword whose value is one subschema (not, if, contains,
 * additionalProperties...): compile it into *out and set `bit` in n->kw.
 * 0, or c->rc. */
static int kw_schema(cctx *c, wsm_snode *n, const json_t *j, const char *kw,
                     uint32_t bit, wsm_snode **out, const char *where,
                     const char *base, int dialect) {
  const json_t *v = json_object_get(j, kw);
  if (!v)
    return 0;
  if (!(*out = sub(c, v, where, kw, base, dialect)))
    return c->rc;
  n->kw |= bit;
  return 0;
}

/* An optional keyword whose value is a non-empty array of subschemas
 * (allOf, anyOf, oneOf, prefixItems).  0, or c->rc. */
static int kw_schemas(cctx *c, wsm_snode *n, const json_t *j, const char *kw,
                      uint32_t bit, wsm_snode ***out, size_t *nout,
                      const char *where, const char *base, int dialect) {
  const json_t *v = json_object_get(j, kw);
  if (!v)
    return 0;
  if (!sub_array(c, v, where, kw, base, dialect, true, out, nout))
    return c->rc;
  n->kw |= bit;
  return 0;
}

static bool name_list(cctx *c, const json_t *v, const char *where,
                      const char *kw, wsm_name **out, size_t *n) {
  if (!json_is_array(v)) {
    cfail(c, WSMSG_ERR_SCHEMA, where, "\"%s\" must be an array of strings", kw);
    return false;
  }
  *n = json_array_size(v);
  *out = aalloc(c, (*n ? *n : 1) * sizeof(**out));
  if (!*out)
    return false;
  for (size_t i = 0; i < *n; i++) {
    const json_t *s = json_array_get(v, i);
    if (!json_is_string(s)) {
      cfail(c, WSMSG_ERR_SCHEMA, where, "\"%s\" must be an array of strings",
            kw);
      return false;
    }
    (*out)[i].s = json_string_value(s);
    (*out)[i].len = json_string_length(s);
  }
  return true;
}

static uint32_t key_hash(const char *s, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 16777619u;
  }
  return h;
}

int32_t wsm_prop_find(const wsm_snode *n, const char *key, size_t len) {
  if (!n->ptab)
    return -1;
  for (size_t i = key_hash(key, len) & n->ptab_mask;;
       i = (i + 1) & n->ptab_mask) {
    int32_t k = n->ptab[i];
    if (k < 0)
      return -1;
    const wsm_prop *p = &n->props[k];
    if (p->len == len && memcmp(p->key, key, len) == 0)
      return k;
  }
}

static int compile_object_kws(cctx *c, wsm_snode *n, const json_t *j,
                              const char *where, const char *base,
                              int dialect) {
  const json_t *v;
  if (!get_limit(c, j, "maxProperties", where, &n->max_props, n,
                 WSM_K_MAXPROPS) ||
      !get_limit(c, j, "minProperties", where, &n->min_props, n,
                 WSM_K_MINPROPS))
    return c->rc;

  const json_t *props = json_object_get(j, "properties");
  const json_t *req = json_object_get(j, "required");
  wsm_name *reqs = NULL;
  size_t nreq = 0;
  if (req && !name_list(c, req, where, "required", &reqs, &nreq))
    return c->rc;
  if (props) {
    if (!json_is_object(props)) {
      cfail(c, WSMSG_ERR_SCHEMA, where, "\"properties\" must be an object");
      return c->rc;
    }
    const char *w = child_where(c, where, "properties", 10);
    if (!w)
      return c->rc;
    n->nprops = json_object_size(props);
    n->props = aalloc(c, (n->nprops ? n->nprops : 1) * sizeof(*n->props));
    size_t cap = 4;
    while (cap < n->nprops * 2)
      cap *= 2;
    n->ptab = aalloc(c, cap * sizeof(*n->ptab));
    if (!n->props || !n->ptab)
      return c->rc;
    n->ptab_mask = cap - 1;
    for (size_t i = 0; i < cap; i++)
      n->ptab[i] = -1;
    const char *key;
    size_t klen;
    json_t *sv;
    size_t i = 0;
    json_object_keylen_foreach((json_t *)props, key, klen, sv) {
      wsm_prop *p = &n->props[i];
      p->key = key;
      p->len = klen;
      const char *wk = child_where(c, w, key, klen);
      if (!wk)
        return c->rc;
      p->s = compile_node(c, sv, wk, base, dialect);
      if (!p->s)
        return c->rc;
      if (json_is_object(sv) && json_object_get(sv, "default")) {
        p->dflt = json_object_get(sv, "default");
        n->ndefaults++;
      }
      size_t h = key_hash(key, klen) & n->ptab_mask;
      while (n->ptab[h] >= 0)
        h = (h + 1) & n->ptab_mask;
      n->ptab[h] = (int32_t)i;
      i++;
    }
    n->kw |= WSM_K_PROPS;
  }
  if (req) {
    /* required names that are properties are checked with them */
    n->required = aalloc(c, (nreq ? nreq : 1) * sizeof(*n->required));
    if (!n->required)
      return c->rc;
    for (size_t i = 0; i < nreq; i++) {
      int32_t k = wsm_prop_find(n, reqs[i].s, reqs[i].len);
      if (k >= 0)
        n->props[k].required = true;
      else
        n->required[n->nrequired++] = reqs[i];
    }
    if (nreq)
      n->kw |= WSM_K_PROPS;
  }

  if ((v = json_object_get(j, "patternProperties"))) {
    if (!json_is_object(v)) {
      cfail(c, WSMSG_ERR_SCHEMA, where,
            "\"patternProperties\" must be an object");
      return c->rc;
    }
    const char *w = child_where(c, where, "patternProperties", 17);
    if (!w)
      return c->rc;
    n->npatprops = json_object_size(v);
    n->patprops =
        aalloc(c, (n->npatprops ? n->npatprops : 1) * sizeof(*n->patprops));
    if (!n->patprops)
      return c->rc;
    const char *key;
    size_t klen;
    json_t *sv;
    size_t i = 0;
    json_object_keylen_foreach((json_t *)v, key, klen, sv) {
      const char *wk = child_where(c, w, key, klen);
      if (!wk)
        return c->rc;
      n->patprops[i].re = regex_new(c, key, klen, wk);
      if (!n->patprops[i].re)
        return c->rc;
      n->patprops[i].s = compile_node(c, sv, wk, base, dialect);
      if (!n->patprops[i].s)
        return c->rc;
      i++;
    }
    if (n->npatprops)
      n->kw |= WSM_K_EXTRA;
  }
  if (kw_schema(c, n, j, "additionalProperties", WSM_K_EXTRA, &n->additional,
                where, base, dialect) ||
      kw_schema(c, n, j, "propertyNames", WSM_K_PROPNAMES, &n->propnames, where,
                base, dialect))
    return c->rc;

  /* dependentRequired / dependentSchemas (draft-07: dependencies) */
  const json_t *dr = NULL, *ds = NULL, *deps = NULL;
  if (dialect == WSM_D2020) {
    dr = json_object_get(j, "dependentRequired");
    ds = json_object_get(j, "dependentSchemas");
  }
  /* draft-07's keyword, also honoured in 2020-12 for compatibility */
  deps = json_object_get(j, "dependencies");
  if ((dr && !json_is_object(dr)) || (ds && !json_is_object(ds)) ||
      (deps && !json_is_object(deps))) {
    cfail(c, WSMSG_ERR_SCHEMA, where, "dependencies must be an object");
    return c->rc;
  }
  size_t ndr = json_object_size(dr) + json_object_size(deps);
  size_t nds = json_object_size(ds) + json_object_size(deps);
  if (ndr) {
    n->depreq = aalloc(c, ndr * sizeof(*n->depreq));
    if (!n->depreq)
      return c->rc;
  }
  if (nds) {
    n->depschemas = aalloc(c, nds * sizeof(*n->depschemas));
    if (!n->depschemas)
      return c->rc;
  }
  const json_t *srcs[3] = {dr, ds, deps};
  const char *names[3] = {"dependentRequired", "dependentSchemas",
                          "dependencies"};
  for (int s = 0; s < 3; s++) {
    if (!srcs[s])
      continue;
    const char *w = child_where(c, where, names[s], strlen(names[s]));
    if (!w)
      return c->rc;
    const char *key;
    size_t klen;
    json_t *sv;
    json_object_keylen_foreach((json_t *)srcs[s], key, klen, sv) {
      bool as_req = s == 0 || (s == 2 && json_is_array(sv));
      if (as_req) {
        wsm_depreq *d = &n->depreq[n->ndepreq++];
        d->key.s = key;
        d->key.len = klen;
        if (!name_list(c, sv, w, names[s], &d->req, &d->n))
          return c->rc;
        n->kw |= WSM_K_DEPREQ;
      } else {
        wsm_depschema *d = &n->depschemas[n->ndepschemas++];
        d->key.s = key;
        d->key.len = klen;
        const char *wk = child_where(c, w, key, klen);
        if (!wk)
          return c->rc;
        d->s = compile_node(c, sv, wk, base, dialect);
        if (!d->s)
          return c->rc;
        n->kw |= WSM_K_DEPSCHEMAS;
      }
    }
  }
  if (dialect == WSM_D2020 &&
      kw_schema(c, n, j, "unevaluatedProperties", WSM_K_UNEVAL_PROPS,
                &n->uneval_props, where, base, dialect))
    return c->rc;
  n->annot = n->annot || n->uneval_props;
  return 0;
}

static int compile_array_kws(cctx *c, wsm_snode *n, const json_t *j,
                             const char *where, const char *base, int dialect) {
  const json_t *v;
  bool has;
  if (!get_limit(c, j, "maxItems", where, &n->max_items, n, WSM_K_MAXITEMS) ||
      !get_limit(c, j, "minItems", where, &n->min_items, n, WSM_K_MINITEMS))
    return c->rc;
  if ((v = json_object_get(j, "uniqueItems"))) {
    if (!json_is_boolean(v)) {
      cfail(c, WSMSG_ERR_SCHEMA, where, "\"uniqueItems\" must be a boolean");
      return c->rc;
    }
    if (json_is_true(v)) {

      n->kw |= WSM_K_UNIQUE;
    }
  }
  const json_t *items = json_object_get(j, "items");
  if (dialect == WSM_D2020) {
    if (kw_schemas(c, n, j, "prefixItems", WSM_K_ITEMS, &n->prefix, &n->nprefix,
                   where, base, dialect))
      return c->rc;
    if (items) {
      if (json_is_array(items)) {
        cfail(c, WSMSG_ERR_SCHEMA, where,
              "\"items\" must be a schema in draft 2020-12 (an array of "
              "schemas is \"prefixItems\")");
        return c->rc;
      }
      n->items = sub(c, items, where, "items", base, dialect);
      if (!n->items)
        return c->rc;
      n->kw |= WSM_K_ITEMS;
    }
  } else if (items) {
    if (json_is_array(items)) {
      if (!sub_array(c, items, where, "items", base, dialect, false, &n->prefix,
                     &n->nprefix))
        return c->rc;
      if (kw_schema(c, n, j, "additionalItems", 0, &n->items, where, base,
                    dialect))
        return c->rc;
    } else {
      n->items = sub(c, items, where, "items", base, dialect);
      if (!n->items)
        return c->rc;
    }
    n->kw |= WSM_K_ITEMS;
  }
  n->items_tuple = n->items && n->items->boolean == WSM_BOOL_FALSE;
  if (kw_schema(c, n, j, "contains", WSM_K_CONTAINS, &n->contains, where, base,
                dialect))
    return c->rc;
  if (n->contains) {
    n->min_contains = 1;
    n->max_contains = SIZE_MAX;
    if (dialect == WSM_D2020) {
      if (!get_nonneg(c, j, "minContains", where, &n->min_contains,
                      &n->has_min_contains))
        return c->rc;
      if (!n->has_min_contains)
        n->min_contains = 1;
      if (!get_nonneg(c, j, "maxContains", where, &n->max_contains, &has))
        return c->rc;
      if (!has)
        n->max_contains = SIZE_MAX;
    }
  }
  if (dialect == WSM_D2020 &&
      kw_schema(c, n, j, "unevaluatedItems", WSM_K_UNEVAL_ITEMS,
                &n->uneval_items, where, base, dialect))
    return c->rc;
  n->annot = n->annot || n->uneval_items;
  return 0;
}

static const struct {
  const char *name;
  uint8_t bit;
} TYPES[] = {{"null", WSM_T_NULL},      {"boolean", WSM_T_BOOLEAN},
             {"object", WSM_T_OBJECT},  {"array", WSM_T_ARRAY},
             {"number", WSM_T_NUMBER},  {"string", WSM_T_STRING},
             {"integer", WSM_T_INTEGER}};

static bool type_bit(const json_t *v, uint8_t *bits) {
  if (!json_is_string(v))
    return false;
  for (size_t i = 0; i < sizeof(TYPES) / sizeof(TYPES[0]); i++) {
    if (strcmp(json_string_value(v), TYPES[i].name) == 0) {
      *bits |= TYPES[i].bit;
      return true;
    }
  }
  return false;
}

static int compile_generic_kws(cctx *c, wsm_snode *n, const json_t *j,
                               const char *where) {
  const json_t *v;
  bool has;
  if ((v = json_object_get(j, "type"))) {
    bool ok = true;
    if (json_is_array(v)) {
      for (size_t i = 0; ok && i < json_array_size(v); i++)
        ok = type_bit(json_array_get(v, i), &n->types);
    } else {
      ok = type_bit(v, &n->types);
    }
    if (!ok) {
      cfail(c, WSMSG_ERR_SCHEMA, where,
            "\"type\" must be a type name or an array of type names");
      return c->rc;
    }
    /* "number" includes "integer" */
    if (n->types & WSM_T_NUMBER)
      n->types |= WSM_T_INTEGER;
    n->kw |= WSM_K_TYPE;
  }
  if ((v = json_object_get(j, "enum"))) {
    if (!json_is_array(v)) {
      cfail(c, WSMSG_ERR_SCHEMA, where, "\"enum\" must be an array");
      return c->rc;
    }
    n->enumv = v;
    n->kw |= WSM_K_ENUM;
  }
  if ((v = json_object_get(j, "const"))) {
    n->constv = v;
    n->kw |= WSM_K_CONST;
  }
  if (!get_num(c, j, "multipleOf", where, &n->multiple_of, &has))
    return c->rc;
  if (has) {
    if (n->multiple_of.d <= 0) {
      cfail(c, WSMSG_ERR_SCHEMA, where, "\"multipleOf\" must be > 0");
      return c->rc;
    }
    n->kw |= WSM_K_MULTIPLE_OF;
  }
  static const struct {
    const char *name;
    size_t off;
    uint32_t bit;
  } nums[] = {
      {"maximum", offsetof(wsm_snode, maximum), WSM_K_MAXIMUM},
      {"exclusiveMaximum", offsetof(wsm_snode, exmax), WSM_K_EXMAX},
      {"minimum", offsetof(wsm_snode, minimum), WSM_K_MINIMUM},
      {"exclusiveMinimum", offsetof(wsm_snode, exmin), WSM_K_EXMIN},
  };
  for (size_t i = 0; i < 4; i++) {
    if (!get_num(c, j, nums[i].name, where,
                 (wsm_num *)((char *)n + nums[i].off), &has))
      return c->rc;
    if (has)
      n->kw |= nums[i].bit;
  }
  if (!get_limit(c, j, "maxLength", where, &n->max_len, n, WSM_K_MAXLEN) ||
      !get_limit(c, j, "minLength", where, &n->min_len, n, WSM_K_MINLEN))
    return c->rc;
  if ((v = json_object_get(j, "pattern"))) {
    if (!json_is_string(v)) {
      cfail(c, WSMSG_ERR_SCHEMA, where, "\"pattern\" must be a string");
      return c->rc;
    }
    const char *w = child_where(c, where, "pattern", 7);
    if (!w)
      return c->rc;
    n->pattern = regex_new(c, json_string_value(v), json_string_length(v), w);
    if (!n->pattern)
      return c->rc;
    n->kw |= WSM_K_PATTERN;
  }
  if ((v = json_object_get(j, "format"))) {
    if (!json_is_string(v)) {
      cfail(c, WSMSG_ERR_SCHEMA, where, "\"format\" must be a string");
      return c->rc;
    }
    for (int f = WSM_FMT_DATE_TIME; f <= WSM_FMT_URI; f++) {
      if (strcmp(json_string_value(v), wsm_format_name(f)) == 0) {
        n->format = (uint8_t)f;
        n->kw |= WSM_K_FORMAT;
      }
    }
  }
  return 0;
}

static int compile_applicators(cctx *c, wsm_snode *n, const json_t *j,
                               const char *where, const char *base,
                               int dialect) {
  if (kw_schemas(c, n, j, "allOf", WSM_K_ALLOF, &n->allof, &n->nallof, where,
                 base, dialect) ||
      kw_schemas(c, n, j, "anyOf", WSM_K_ANYOF, &n->anyof, &n->nanyof, where,
                 base, dialect) ||
      kw_schemas(c, n, j, "oneOf", WSM_K_ONEOF, &n->oneof, &n->noneof, where,
                 base, dialect) ||
      kw_schema(c, n, j, "not", WSM_K_NOT, &n->not_, where, base, dialect) ||
      kw_schema(c, n, j, "if", WSM_K_IF, &n->if_, where, base, dialect) ||
      /* then/else are compiled even without "if" ($ref may point at them) */
      kw_schema(c, n, j, "then", 0, &n->then_, where, base, dialect) ||
      kw_schema(c, n, j, "else", 0, &n->else_, where, base, dialect))
    return c->rc;
  return 0;
}

static bool add_ref(cctx *c, wsm_snode *n, const json_t *ref, const char *where,
                    const char *base) {
  if (!json_is_string(ref)) {
    cfail(c, WSMSG_ERR_SCHEMA, where, "\"$ref\" must be a string");
    return false;
  }
  char *target = uri_resolve(c->mem, base, json_string_value(ref));
  if (!target) {
    nomem(c);
    return false;
  }
  if (c->nrefs == c->caprefs) {
    size_t cap = c->caprefs ? c->caprefs * 2 : 16;
    pending *p =
        wsm_realloc(c->mem, c->refs, c->caprefs * sizeof(*p), cap * sizeof(*p));
    if (!p) {
      wsm_free(c->mem, target);
      nomem(c);
      return false;
    }
    c->refs = p;
    c->caprefs = cap;
  }
  c->refs[c->nrefs].node = n;
  c->refs[c->nrefs].target = target;
  c->refs[c->nrefs].where = where;
  c->nrefs++;
  n->kw |= WSM_K_REF;
  return true;
}

static wsm_snode *compile_node(cctx *c, const json_t *j, const char *where,
                               const char *base, int dialect) {
  if (c->rc)
    return NULL;
  if (!json_is_object(j) && !json_is_boolean(j)) {
    cfail(c, WSMSG_ERR_SCHEMA, where,
          "a schema must be an object or a boolean");
    return NULL;
  }
  ent *e = pmap_put(&c->map, j);
  if (!e) {
    nomem(c);
    return NULL;
  }
  if (e->node)
    return e->node;
  if (e->scanned) {
    base = e->base;
    dialect = e->dialect;
  } else {
    e->base = base;
    e->dialect = dialect;
  }
  wsm_snode *n = aalloc(c, sizeof(*n));
  if (!n)
    return NULL;
  e->node = n; /* before the children: references may cycle */
  n->where = where;
  if (json_is_boolean(j)) {
    n->boolean = json_is_true(j) ? WSM_BOOL_TRUE : WSM_BOOL_FALSE;
    return n;
  }
  static const char *const unsupported[] = {"$dynamicRef", "$recursiveRef"};
  for (size_t i = 0; i < 2; i++) {
    if (json_object_get(j, unsupported[i])) {
      cfail(c, WSMSG_ERR_UNSUPPORTED, where, "\"%s\" is not supported",
            unsupported[i]);
      return NULL;
    }
  }
  const json_t *ref = json_object_get(j, "$ref");
  if (ref && !add_ref(c, n, ref, where, base))
    return NULL;
  if (ref && dialect == WSM_D7)
    return n; /* draft-07: siblings of $ref are ignored */
  if (compile_generic_kws(c, n, j, where) ||
      compile_object_kws(c, n, j, where, base, dialect) ||
      compile_array_kws(c, n, j, where, base, dialect) ||
      compile_applicators(c, n, j, where, base, dialect))
    return NULL;
  /* compile the definitions too, so that errors in them are reported */
  const char *defs = dialect == WSM_D2020 ? "$defs" : "definitions";
  const json_t *d = json_object_get(j, defs);
  if (json_is_object(d)) {
    const char *w = child_where(c, where, defs, strlen(defs));
    if (!w)
      return NULL;
    const char *key;
    size_t klen;
    json_t *sv;
    json_object_keylen_foreach((json_t *)d, key, klen, sv) {
      const char *wk = child_where(c, w, key, klen);
      if (!wk || !compile_node(c, sv, wk, base, dialect))
        return NULL;
    }
  } else if (d) {
    cfail(c, WSMSG_ERR_SCHEMA, where, "\"%s\" must be an object", defs);
    return NULL;
  }
  return n;
}

/* ---- $ref resolution ----------------------------------------------------- */

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

size_t wsm_pct_decode(char *s) {
  size_t o = 0;
  for (size_t i = 0; s[i]; i++) {
    if (s[i] == '%' && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
      s[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
      i += 2;
    } else {
      s[o++] = s[i];
    }
  }
  s[o] = '\0';
  return o;
}

char *wsm_ptr_unescape(const wsmsg_mem *m, const char *tok, size_t len,
                       size_t *out_len) {
  char *seg = wsm_malloc(m, len + 1);
  if (!seg)
    return NULL;
  size_t n = 0;
  for (size_t x = 0; x < len; x++) {
    if (tok[x] == '~' && x + 1 < len &&
        (tok[x + 1] == '0' || tok[x + 1] == '1')) {
      seg[n++] = tok[x + 1] == '0' ? '~' : '/';
      x++;
    } else {
      seg[n++] = tok[x];
    }
  }
  seg[n] = '\0';
  if (out_len)
    *out_len = n;
  return seg;
}

json_t *wsm_json_ptr_step(const wsmsg_mem *m, const json_t *j, const char *tok,
                          size_t len, bool *nomem) {
  size_t n;
  char *seg = wsm_ptr_unescape(m, tok, len, &n);
  if (!seg) {
    *nomem = true;
    return NULL;
  }
  json_t *child = NULL;
  if (json_is_object(j)) {
    child = json_object_getn(j, seg, n);
  } else if (json_is_array(j)) {
    char *end;
    unsigned long long idx = strtoull(seg, &end, 10);
    bool ok = n > 0 && *end == '\0' && (seg[0] != '0' || n == 1) &&
              seg[0] >= '0' && seg[0] <= '9';
    child = ok ? json_array_get(j, (size_t)idx) : NULL;
  }
  wsm_free(m, seg);
  return child;
}

/* Walk the JSON pointer `ptr` (decoded, starting with '/') from `j`,
 * tracking the base URI and dialect of the nodes crossed. */
static const json_t *walk_pointer(cctx *c, const json_t *j, char *ptr,
                                  size_t len, const char **base, int *dialect) {
  size_t i = 0;
  while (j && i < len) {
    /* ptr[i] == '/' */
    size_t s = i + 1, k = s;
    while (k < len && ptr[k] != '/')
      k++;
    bool oom = false;
    j = wsm_json_ptr_step(c->mem, j, ptr + s, k - s, &oom);
    if (oom) {
      nomem(c);
      return NULL;
    }
    if (j) {
      ent *e = pmap_find(&c->map, j);
      if (e && e->scanned) {
        *base = e->base;
        *dialect = e->dialect;
      }
    }
    i = k;
  }
  return j;
}

static int resolve_refs(cctx *c) {
  for (size_t r = 0; r < c->nrefs && !c->rc; r++) {
    pending *p = &c->refs[r];
    char *target = p->target;
    char *hash = strchr(target, '#');
    char *frag = NULL;
    if (hash) {
      *hash = '\0';
      frag = hash + 1;
    }
    const json_t *res = find_named(c->res, c->nres, target);
    if (!res) {
      if (hash)
        *hash = '#';
      return cfail(c, WSMSG_ERR_UNSUPPORTED, p->where,
                   "remote \"$ref\": \"%s\" is not supported (only targets "
                   "inside this schema)",
                   p->target);
    }
    const json_t *j = res;
    ent *e = pmap_find(&c->map, res);
    const char *base = e ? e->base : target;
    int dialect = e ? e->dialect : c->s->dialect;
    if (frag && *frag) {
      if (frag[0] == '/') {
        size_t n = wsm_pct_decode(frag);
        j = walk_pointer(c, res, frag, n, &base, &dialect);
      } else {
        *hash = '#';
        j = find_named(c->anchors, c->nanchors, p->target);
        *hash = '\0';
        if (j) {
          ent *ea = pmap_find(&c->map, j);
          if (ea) {
            base = ea->base;
            dialect = ea->dialect;
          }
        }
      }
    }
    if (hash)
      *hash = '#';
    if (c->rc)
      return c->rc;
    if (!j)
      return cfail(c, WSMSG_ERR_SCHEMA, p->where,
                   "\"$ref\": \"%s\" does not resolve", p->target);
    const char *w = astr(c, p->target);
    if (!w)
      return c->rc;
    e = pmap_find(&c->map, j);
    if (e && e->node)
      w = e->node->where;
    /* may append to c->refs (realloc): re-read p afterwards */
    wsm_snode *t = compile_node(c, j, w, base, dialect);
    if (!t)
      return c->rc;
    c->refs[r].node->ref = t;
  }
  return c->rc;
}

/* ---- cycles that do not consume the instance ----------------------------- */

typedef struct visit {
  const wsm_snode *n;
  uint8_t state; /* 1 on the stack, 2 done */
} visit;

/* wsm_snode * -> visit */
typedef ptrmap vmap;

static visit *vmap_get(vmap *m, const wsm_snode *n) {
  return ptrmap_put(m, n, sizeof(visit));
}

static int check_cycles(cctx *c, vmap *m, const wsm_snode *n, int depth) {
  if (!n || n->boolean)
    return 0;
  if (depth > 10000)
    return cfail(c, WSMSG_ERR_SCHEMA, n->where, "schema nesting too deep");
  visit *v = vmap_get(m, n);
  if (!v)
    return nomem(c);
  if (v->state == 2)
    return 0;
  if (v->state == 1)
    return cfail(c, WSMSG_ERR_SCHEMA, n->where,
                 "\"$ref\" cycle that never descends into the instance "
                 "(validation would not terminate)");
  v->state = 1;
  const wsm_snode *single[] = {n->ref, n->not_, n->if_, n->then_, n->else_};
  for (size_t i = 0; i < 5; i++)
    if (check_cycles(c, m, single[i], depth + 1))
      return c->rc;
  wsm_snode *const *lists[] = {n->allof, n->anyof, n->oneof};
  size_t counts[] = {n->nallof, n->nanyof, n->noneof};
  for (size_t l = 0; l < 3; l++)
    for (size_t i = 0; i < counts[l]; i++)
      if (check_cycles(c, m, lists[l][i], depth + 1))
        return c->rc;
  for (size_t i = 0; i < n->ndepschemas; i++)
    if (check_cycles(c, m, n->depschemas[i].s, depth + 1))
      return c->rc;
  v = vmap_get(m, n); /* the map may have grown */
  if (!v)
    return nomem(c);
  v->state = 2;
  return 0;
}

/* ---- public API ---------------------------------------------------------- */

/* PCRE2 allocates through wsmsg's allocator hook */
static void *pcre2_hook_malloc(PCRE2_SIZE n, void *u) {
  return wsm_malloc((const wsmsg_mem *)u, n);
}
static void pcre2_hook_free(void *p, void *u) {
  wsm_free((const wsmsg_mem *)u, p);
}

pcre2_general_context *wsm_pcre2_gctx(const wsmsg_mem *mem) {
  return pcre2_general_context_create(pcre2_hook_malloc, pcre2_hook_free,
                                      (void *)mem);
}

static int apply_regex_limits(wsmsg_schema *s) {
  if (!s->mctx)
    return 0; /* no patterns: nothing to bound */
  pcre2_set_match_limit(s->mctx, s->match_limit);
  pcre2_set_depth_limit(s->mctx, s->depth_limit);
  return 0;
}

int wsmsg_schema_set_regex_limits(wsmsg_schema *s, uint32_t match_limit,
                                  uint32_t depth_limit) {
  if (!s)
    return WSMSG_ERR_INVALID_ARG;
  s->match_limit = match_limit ? match_limit : WSMSG_REGEX_MATCH_LIMIT_DEFAULT;
  s->depth_limit = depth_limit ? depth_limit : WSMSG_REGEX_DEPTH_LIMIT_DEFAULT;
  return apply_regex_limits(s);
}

void wsmsg_schema_free(wsmsg_schema *s) {
  if (!s)
    return;
  pcre2_match_context_free(s->mctx);
  pcre2_general_context_free(s->gctx);
  for (size_t i = 0; i < s->nregexes; i++)
    pcre2_code_free(s->regexes[i]->code);
  wsmsg_mem m = s->mem;
  wsm_free(&m, s->regexes);
  wsm_arena_free(&s->arena);
  json_decref(s->doc);
  wsm_free(&m, s);
}

int wsmsg_schema_dialect(const wsmsg_schema *s) {
  if (!s)
    return WSMSG_ERR_INVALID_ARG;
  return s->dialect == WSM_D7 ? 7 : 202012;
}

static int compile_doc(wsmsg_schema *s, unsigned options, char *err,
                       size_t err_size) {
  cctx c;
  memset(&c, 0, sizeof(c));
  c.s = s;
  c.mem = &s->mem;
  c.map.mem = c.mem;
  c.err = err;
  c.err_size = err_size;
  c.jit = !(options & WSMSG_SCHEMA_NO_JIT);
  s->gctx = wsm_pcre2_gctx(&s->mem);
  if (!s->gctx)
    return nomem(&c);
  s->match_limit = WSMSG_REGEX_MATCH_LIMIT_DEFAULT;
  s->depth_limit = WSMSG_REGEX_DEPTH_LIMIT_DEFAULT;
  s->dialect = (options & WSMSG_SCHEMA_DRAFT7) ? WSM_D7 : WSM_D2020;
  const json_t *root = s->doc;
  if (json_is_object(root) && json_object_get(root, "$schema"))
    parse_dialect(&c, json_object_get(root, "$schema"), "", &s->dialect);
  if (!c.rc && json_is_object(root)) {
    /* the root is a resource even without $id */
    add_named(&c, &c.res, &c.nres, &c.capres, "", root);
    scan(&c, root, "", s->dialect, "", true);
  }
  if (!c.rc)
    s->root = compile_node(&c, root, "", "", s->dialect);
  if (!c.rc)
    resolve_refs(&c);
  if (!c.rc) {
    vmap m = {.mem = c.mem};
    check_cycles(&c, &m, s->root, 0);
    /* every compiled node is a potential entry point through $ref */
    for (size_t i = 0; !c.rc && i < c.map.cap; i++)
      if (((ent *)c.map.slots)[i].node)
        check_cycles(&c, &m, ((ent *)c.map.slots)[i].node, 0);
    wsm_free(c.mem, m.slots);
  }
  if (!c.rc && s->has_regex) {
    s->mctx = pcre2_match_context_create(s->gctx);
    if (!s->mctx)
      nomem(&c);
    else
      apply_regex_limits(s);
  }
  for (size_t i = 0; i < c.nrefs; i++)
    wsm_free(c.mem, c.refs[i].target);
  wsm_free(c.mem, c.refs);
  wsm_free(c.mem, c.map.slots);
  wsm_free(c.mem, c.res);
  wsm_free(c.mem, c.anchors);
  return c.rc;
}

/* An empty schema whose allocations (arena, lists, scratch) go to `mem`. */
static wsmsg_schema *schema_new(const wsmsg_mem *mem) {
  wsmsg_mem m;
  wsm_mem_init(&m, mem);
  wsmsg_schema *s = wsm_calloc(&m, sizeof(*s));
  if (s) {
    s->mem = m;
    s->arena.mem = &s->mem;
  }
  return s;
}

/* What both compile entry points check first: clear err and *out, refuse
 * a NULL output or input (`missing` says which). */
static int compile_begin(wsmsg_schema **out, char *err, size_t err_size,
                         const void *input, const char *missing) {
  if (err && err_size)
    err[0] = '\0';
  if (!out)
    return WSMSG_ERR_INVALID_ARG;
  *out = NULL;
  if (!input) {
    if (err && err_size)
      snprintf(err, err_size, "%s", missing);
    return WSMSG_ERR_INVALID_ARG;
  }
  return 0;
}

/* Compile `doc`, which the schema takes (freed on failure; NULL: out of
 * memory). */
static int compile_owned(json_t *doc, unsigned options, const wsmsg_mem *mem,
                         wsmsg_schema **out, char *err, size_t err_size) {
  wsmsg_schema *s = doc ? schema_new(mem) : NULL;
  if (!s) {
    json_decref(doc);
    if (err && err_size)
      snprintf(err, err_size, "out of memory");
    return WSMSG_ERR_NOMEM;
  }
  s->doc = doc;
  int rc = compile_doc(s, options, err, err_size);
  if (rc) {
    wsmsg_schema_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

int wsmsg_schema_compile_json_mem(const json_t *schema, unsigned options,
                                  const wsmsg_mem *mem, wsmsg_schema **out,
                                  char *err, size_t err_size) {
  int rc = compile_begin(out, err, err_size, schema, "no schema");
  if (rc)
    return rc;
  /* our own copy: the caller may change or free its document */
  return compile_owned(json_deep_copy(schema), options, mem, out, err,
                       err_size);
}

int wsmsg_schema_compile_json(const json_t *schema, unsigned options,
                              wsmsg_schema **out, char *err, size_t err_size) {
  return wsmsg_schema_compile_json_mem(schema, options, NULL, out, err,
                                       err_size);
}

int wsmsg_schema_compile_mem(const char *text, size_t len, unsigned options,
                             const wsmsg_mem *mem, wsmsg_schema **out,
                             char *err, size_t err_size) {
  int rc = compile_begin(out, err, err_size, text, "no schema text");
  if (rc)
    return rc;
  json_error_t je;
  json_t *doc = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
  if (!doc) {
    if (err && err_size)
      snprintf(err, err_size, "invalid JSON at line %d column %d: %s", je.line,
               je.column, je.text);
    return WSMSG_ERR_JSON;
  }
  return compile_owned(doc, options, mem, out, err, err_size);
}

int wsmsg_schema_compile(const char *text, size_t len, unsigned options,
                         wsmsg_schema **out, char *err, size_t err_size) {
  return wsmsg_schema_compile_mem(text, len, options, NULL, out, err, err_size);
}
