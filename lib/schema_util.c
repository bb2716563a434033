/* JSON Schema engine: arena, string builder, Python-style value rendering for
 * error messages, JSON Schema equality. */
#include "schema_internal.h"

#include <math.h> /* macros only: isnan, isinf */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ------------------------------------------------------------------
 */

struct wsm_arena_block {
  wsm_arena_block *next;
  size_t used, size;
  max_align_t data[]; /* aligned storage */
};

#define WSM_ARENA_CHUNK 8192u

void *wsm_arena_alloc(wsm_arena *a, size_t n) {
  const size_t align = sizeof(max_align_t);
  n = (n + align - 1) / align * align;
  if (n == 0)
    n = align;
  wsm_arena_block *b = a->head;
  if (!b || b->size - b->used < n) {
    size_t size = n > WSM_ARENA_CHUNK ? n : WSM_ARENA_CHUNK;
    b = wsm_malloc(a->mem, sizeof(*b) + size);
    if (!b)
      return NULL;
    b->size = size;
    b->used = 0;
    /* keep filling the bigger-room block first */
    if (a->head && n > WSM_ARENA_CHUNK) {
      b->next = a->head->next;
      a->head->next = b;
    } else {
      b->next = a->head;
      a->head = b;
    }
  }
  void *p = (char *)b->data + b->used;
  b->used += n;
  memset(p, 0, n);
  return p;
}

char *wsm_arena_strndup(wsm_arena *a, const char *s, size_t n) {
  char *p = wsm_arena_alloc(a, n + 1);
  if (p) {
    memcpy(p, s, n);
    p[n] = '\0';
  }
  return p;
}

void wsm_arena_free(wsm_arena *a) {
  wsm_arena_block *b = a->head;
  while (b) {
    wsm_arena_block *next = b->next;
    wsm_free(a->mem, b);
    b = next;
  }
  a->head = NULL;
}

/* ---- string builder ------------------------------------------------------ */

void wsm_sb_add(wsm_sb *b, const char *s, size_t n) {
  if (b->oom)
    return;
  if (b->cap - b->n < n + 1) {
    size_t cap = b->cap ? b->cap * 2 : 64;
    while (cap - b->n < n + 1)
      cap *= 2;
    char *p = wsm_realloc(b->mem, b->p, b->cap, cap);
    if (!p) {
      b->oom = true;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
}

void wsm_sb_adds(wsm_sb *b, const char *s) { wsm_sb_add(b, s, strlen(s)); }

void wsm_sb_addc(wsm_sb *b, char c) { wsm_sb_add(b, &c, 1); }

char *wsm_sb_finish(wsm_sb *b) {
  if (b->oom) {
    wsm_free(b->mem, b->p);
    b->p = NULL;
    return NULL;
  }
  if (!b->p)
    wsm_sb_add(b, "", 0);
  char *p = b->p;
  b->p = NULL;
  return p;
}

/* ---- small JSON values ---- */

json_t *wsm_obj1(const char *k, json_t *v) {
  json_t *o = json_object();
  if (o && json_object_set_new(o, k, v) != 0) {
    json_decref(o);
    return NULL;
  }
  if (!o)
    json_decref(v);
  return o;
}

/* ---- jansson's parse errors --------------------------------------------- */

void wsm_jerr_text(json_error_t *e) {
  if (json_error_code(e) == json_error_null_byte_in_key) {
    /* jansson keeps object keys as C strings, so it cannot represent a
     * key containing U+0000 at all (strings are fine: they carry their
     * length).  Say so without jansson's wording. */
    snprintf(e->text, sizeof(e->text),
             "an object key contains \\u0000 (U+0000), which is not "
             "supported");
    return;
  }
  wsm_utf8_scrub(e->text); /* its quote of the input may cut a char */
}

/* ---- Python-style rendering ---------------------------------------------- */

/* A bounded writer into a caller's buffer: the text of a double is short
 * (a sign, 17 digits, "0.000" or an exponent), so it needs no heap. */
typedef struct fixbuf {
  char *p;
  size_t n, cap;
} fixbuf;

static void fb_add(fixbuf *b, const char *s, size_t n) {
  for (size_t i = 0; i < n && b->n + 1 < b->cap; i++)
    b->p[b->n++] = s[i];
}
static void fb_adds(fixbuf *b, const char *s) { fb_add(b, s, strlen(s)); }
static void fb_addc(fixbuf *b, char c) { fb_add(b, &c, 1); }

void wsm_fmt_double(double d, char *buf, size_t size) {
  if (size == 0)
    return;
  if (isnan(d)) {
    snprintf(buf, size, "nan");
    return;
  }
  if (isinf(d)) {
    snprintf(buf, size, d < 0 ? "-inf" : "inf");
    return;
  }
  /* shortest %e representation that reads back as the same double */
  char e[40];
  int prec = 0;
  for (; prec < 17; prec++) {
    snprintf(e, sizeof(e), "%.*e", prec, d);
    if (strtod(e, NULL) == d)
      break;
  }
  /* e = [-]D[.DDD]e(+|-)XX */
  const char *p = e;
  bool neg = false;
  if (*p == '-') {
    neg = true;
    p++;
  }
  char digits[24];
  size_t nd = 0;
  for (; *p && *p != 'e'; p++)
    if (*p >= '0' && *p <= '9' && nd < sizeof(digits) - 1)
      digits[nd++] = *p;
  while (nd > 1 && digits[nd - 1] == '0')
    nd--;
  digits[nd] = '\0';
  int exp = *p == 'e' ? atoi(p + 1) : 0;
  fixbuf b = {buf, 0, size};
  if (neg)
    fb_addc(&b, '-');
  if (exp >= -4 && exp < 16) {
    if (exp >= 0) {
      size_t ip = (size_t)exp + 1;
      for (size_t i = 0; i < ip; i++)
        fb_addc(&b, i < nd ? digits[i] : '0');
      fb_addc(&b, '.');
      if (nd > ip)
        fb_add(&b, digits + ip, nd - ip);
      else
        fb_addc(&b, '0');
    } else {
      fb_adds(&b, "0.");
      for (int i = 0; i < -exp - 1; i++)
        fb_addc(&b, '0');
      fb_add(&b, digits, nd);
    }
  } else {
    fb_addc(&b, digits[0]);
    if (nd > 1) {
      fb_addc(&b, '.');
      fb_add(&b, digits + 1, nd - 1);
    }
    char x[16];
    snprintf(x, sizeof(x), "e%c%02d", exp < 0 ? '-' : '+',
             exp < 0 ? -exp : exp);
    fb_adds(&b, x);
  }
  buf[b.n] = '\0';
}

static void py_repr_str(wsm_sb *b, const char *s, size_t n) {
  bool has_sq = memchr(s, '\'', n) != NULL;
  bool has_dq = memchr(s, '"', n) != NULL;
  char q = has_sq && !has_dq ? '"' : '\'';
  wsm_sb_addc(b, q);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char x[8];
    if (c == '\\' || c == (unsigned char)q) {
      wsm_sb_addc(b, '\\');
      wsm_sb_addc(b, (char)c);
    } else if (c == '\n') {
      wsm_sb_adds(b, "\\n");
    } else if (c == '\r') {
      wsm_sb_adds(b, "\\r");
    } else if (c == '\t') {
      wsm_sb_adds(b, "\\t");
    } else if (c < 0x20 || c == 0x7f) {
      snprintf(x, sizeof(x), "\\x%02x", c);
      wsm_sb_adds(b, x);
    } else {
      wsm_sb_addc(b, (char)c);
    }
  }
  wsm_sb_addc(b, q);
}

void wsm_py_repr(wsm_sb *b, const json_t *v) {
  char buf[64];
  switch (json_typeof(v)) {
  case JSON_STRING:
    py_repr_str(b, json_string_value(v), json_string_length(v));
    break;
  case JSON_INTEGER:
    snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    wsm_sb_adds(b, buf);
    break;
  case JSON_REAL:
    wsm_fmt_double(json_real_value(v), buf, sizeof(buf));
    wsm_sb_adds(b, buf);
    break;
  case JSON_TRUE:
    wsm_sb_adds(b, "True");
    break;
  case JSON_FALSE:
    wsm_sb_adds(b, "False");
    break;
  case JSON_NULL:
    wsm_sb_adds(b, "None");
    break;
  case JSON_ARRAY: {
    wsm_sb_addc(b, '[');
    for (size_t i = 0; i < json_array_size(v); i++) {
      if (i)
        wsm_sb_adds(b, ", ");
      wsm_py_repr(b, json_array_get(v, i));
    }
    wsm_sb_addc(b, ']');
    break;
  }
  case JSON_OBJECT: {
    wsm_sb_addc(b, '{');
    const char *key;
    json_t *val;
    size_t klen;
    bool first = true;
    json_object_keylen_foreach((json_t *)v, key, klen, val) {
      if (!first)
        wsm_sb_adds(b, ", ");
      first = false;
      py_repr_str(b, key, klen);
      wsm_sb_adds(b, ": ");
      wsm_py_repr(b, val);
    }
    wsm_sb_addc(b, '}');
    break;
  }
  }
}

/* ---- equality ------------------------------------------------------------ */

/* No libm: the library links without -lm. */
static bool double_integral(double d) {
  if (isnan(d) || isinf(d))
    return false;
  if (d <= -4503599627370496.0 || d >= 4503599627370496.0)
    return true;
  return (double)(int64_t)d == d;
}

bool wsm_is_integral(const json_t *v) {
  if (json_is_integer(v))
    return true;
  if (!json_is_real(v))
    return false;
  double d = json_real_value(v);
  return double_integral(d);
}

static bool num_equal(const json_t *a, const json_t *b) {
  if (json_is_integer(a) && json_is_integer(b))
    return json_integer_value(a) == json_integer_value(b);
  if (json_is_real(a) && json_is_real(b))
    return json_real_value(a) == json_real_value(b);
  const json_t *i = json_is_integer(a) ? a : b;
  const json_t *r = json_is_integer(a) ? b : a;
  double d = json_real_value(r);
  json_int_t iv = json_integer_value(i);
  /* exact when the real is integral and within range */
  if (double_integral(d) && d >= -9223372036854775808.0 &&
      d < 9223372036854775808.0)
    return (json_int_t)d == iv;
  return false;
}

bool wsm_json_equal(const json_t *a, const json_t *b) {
  if (a == b)
    return true;
  if (json_is_number(a) && json_is_number(b))
    return num_equal(a, b);
  if (json_typeof(a) != json_typeof(b))
    return false;
  switch (json_typeof(a)) {
  case JSON_STRING:
    return json_string_length(a) == json_string_length(b) &&
           memcmp(json_string_value(a), json_string_value(b),
                  json_string_length(a)) == 0;
  case JSON_ARRAY: {
    size_t n = json_array_size(a);
    if (n != json_array_size(b))
      return false;
    for (size_t i = 0; i < n; i++)
      if (!wsm_json_equal(json_array_get(a, i), json_array_get(b, i)))
        return false;
    return true;
  }
  case JSON_OBJECT: {
    if (json_object_size(a) != json_object_size(b))
      return false;
    const char *key;
    size_t klen;
    json_t *va;
    json_object_keylen_foreach((json_t *)a, key, klen, va) {
      json_t *vb = json_object_getn(b, key, klen);
      if (!vb || !wsm_json_equal(va, vb))
        return false;
    }
    return true;
  }
  default: /* true, false, null: same type */
    return true;
  }
}
