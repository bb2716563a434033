/* asyncapi_mock — a mock WebSocket server from any AsyncAPI 3 document.
 *
 *   asyncapi_mock --port P --asyncapi FILE [--server NAME] [--emit MS]
 *                 [--host H] [--schemas DIR] [-q]
 *
 * Serves every WebSocket channel of the document (wsmsg_asyncapi_serve):
 * incoming messages are validated against the receive operations'
 * messages (an invalid one gets the standard error reply); a receive
 * operation with a `reply` answers with a message valid against the
 * reply's messages: the first `examples` entry's payload when there is
 * one, else an instance generated from the payload schema; either way
 * checked by the validator before it is sent (wsmsg_asyncapi_send), with
 * the correlation id (correlationId.location, "$message.payload#/reqid")
 * copied from the request.  --emit MS sends one generated message of each
 * send operation of a connection's channel on every open connection every
 * MS ms.  GET /asyncapi.json returns the loaded document.
 *
 * The generator (gen() below) respects type, required, properties,
 * const/enum, examples/default, minimum/maximum (exclusive too),
 * multipleOf, min/maxLength, simple patterns, formats, min/maxItems,
 * items, oneOf/anyOf (tries each option), allOf (merged) and $ref; see
 * docs/asyncapi.md for its limits. */
#include "common/evloop.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <wsmsg.h>

static wsmsg_asyncapi *A;
static json_t *DOC; /* borrowed from A */
static const char *DOC_DIR = ".";
static char *DOC_JSON; /* GET /asyncapi.json */
static size_t DOC_JSON_LEN;
static int VERBOSE = 1;
static long EMIT_MS = 0;
static unsigned long SENT, REFUSED;
static unsigned EMITTED; /* rotates the generator's choices */

/* ---- JSON pointers and $refs inside the document ---- */

static json_t *pointer(json_t *root, const char *p) {
  json_t *j = root;
  char seg[512];
  while (j && *p == '/') {
    p++;
    size_t n = 0;
    while (*p && *p != '/' && n + 1 < sizeof(seg)) {
      if (*p == '~' && (p[1] == '0' || p[1] == '1')) {
        seg[n++] = p[1] == '0' ? '~' : '/';
        p += 2;
      } else if (*p == '%' && p[1] && p[2]) {
        char hex[3] = {p[1], p[2], 0};
        seg[n++] = (char)strtol(hex, NULL, 16);
        p += 3;
      } else {
        seg[n++] = *p++;
      }
    }
    seg[n] = 0;
    if (json_is_object(j))
      j = json_object_get(j, seg);
    else if (json_is_array(j))
      j = json_array_get(j, (size_t)strtoul(seg, NULL, 10));
    else
      j = NULL;
  }
  return *p ? NULL : j;
}

static json_t *deref(json_t *j) {
  for (int i = 0; i < 32 && json_is_object(j); i++) {
    const char *r = json_string_value(json_object_get(j, "$ref"));
    if (!r || r[0] != '#')
      return j;
    j = pointer(DOC, r + 1);
  }
  return j;
}

/* ---- the generator ---- */

/* A string matching a simple regex: literals, escapes \d \w \s \. ...,
 * classes [a-z0-9_], groups (first alternative), quantifiers ? * + {n}
 * {n,m} (their minimum, at least 1 for + and {0,}... ) and anchors.
 * Returns 0 when the pattern uses something else (lookarounds,
 * backreferences); the validator has the last word anyway. */
static int from_regex(const char *re, char *out, size_t cap) {
  size_t o = 0;
  const char *p = re;
  if (*p == '^')
    p++;
  while (*p && o + 8 < cap) {
    char unit[64];
    size_t ulen = 0;
    if (*p == '$' && !p[1])
      break;
    if (*p == '(') {
      if (p[1] == '?' && p[2] != ':')
        return 0; /* lookaround, named group... */
      /* first alternative of the group, recursively */
      int depth = 0;
      const char *q = p;
      for (; *q; q++) {
        if (*q == '\\' && q[1]) {
          q++;
          continue;
        }
        if (*q == '(')
          depth++;
        else if (*q == ')' && --depth == 0)
          break;
      }
      if (!*q)
        return 0;
      char inner[256];
      const char *s = p + 1 + (p[1] == '?' ? 2 : 0);
      size_t n = (size_t)(q - s);
      if (n >= sizeof(inner))
        return 0;
      memcpy(inner, s, n);
      inner[n] = 0;
      /* cut at the first top-level '|' */
      int d = 0;
      for (size_t i = 0; i < n; i++) {
        if (inner[i] == '\\' && inner[i + 1]) {
          i++;
          continue;
        }
        if (inner[i] == '(')
          d++;
        else if (inner[i] == ')')
          d--;
        else if (inner[i] == '|' && d == 0) {
          inner[i] = 0;
          break;
        }
      }
      char sub[64];
      if (!from_regex(inner, sub, sizeof(sub)))
        return 0;
      ulen = strlen(sub);
      memcpy(unit, sub, ulen);
      p = q + 1;
    } else if (*p == '[') {
      const char *q = p + 1;
      int neg = *q == '^';
      if (neg)
        q++;
      char pick = 0;
      if (neg) {
        pick = 'x'; /* hope it is not excluded */
        while (*q && *q != ']')
          q++;
      } else {
        if (*q == '\\' && q[1]) {
          pick = q[1] == 'd'   ? '0'
                 : q[1] == 'w' ? 'a'
                 : q[1] == 's' ? ' '
                               : q[1];
        } else {
          pick = *q;
        }
        while (*q && !(*q == ']' && q > p + 1))
          q++;
      }
      if (!*q)
        return 0;
      unit[ulen++] = pick;
      p = q + 1;
    } else if (*p == '\\' && p[1]) {
      char c = p[1];
      unit[ulen++] = c == 'd' ? '0' : c == 'w' ? 'a' : c == 's' ? ' ' : c;
      if (c >= '1' && c <= '9')
        return 0; /* backreference */
      p += 2;
    } else if (*p == '.') {
      unit[ulen++] = 'a';
      p++;
    } else if (strchr("|)", *p)) {
      break;
    } else {
      unit[ulen++] = *p++;
    }
    long lo = 1;
    if (*p == '?' || *p == '*') {
      lo = 0;
      p++;
    } else if (*p == '+') {
      p++;
    } else if (*p == '{') {
      char *end;
      lo = strtol(p + 1, &end, 10);
      const char *q = strchr(p, '}');
      if (!q || lo < 0 || lo > 64)
        return 0;
      p = q + 1;
    }
    if (*p == '?' || *p == '+')
      p++; /* lazy / possessive */
    for (long k = 0; k < lo && o + ulen + 1 < cap; k++) {
      memcpy(out + o, unit, ulen);
      o += ulen;
    }
  }
  out[o] = 0;
  return 1;
}

static double num_at(json_t *s, const char *k, int *has) {
  json_t *v = json_object_get(s, k);
  *has = json_is_number(v);
  return *has ? json_number_value(v) : 0;
}

static json_t *gen(json_t *s, unsigned variant, int depth);

/* allOf: one schema with the members' keywords merged (properties and
 * required united, the rest: the first member that has it). */
static json_t *merge_all_of(json_t *s, int depth) {
  json_t *m = json_object();
  json_t *props = json_object();
  json_t *req = json_array();
  json_t *queue = json_array();
  json_array_append(queue, s);
  for (size_t qi = 0; qi < json_array_size(queue) && qi < 64; qi++) {
    json_t *x = deref(json_array_get(queue, qi));
    const char *k;
    json_t *v;
    json_object_foreach(x, k, v) {
      if (!strcmp(k, "allOf")) {
        size_t i;
        json_t *y;
        json_array_foreach(v, i, y) json_array_append(queue, y);
      } else if (!strcmp(k, "properties")) {
        json_object_update_missing(props, v);
      } else if (!strcmp(k, "required")) {
        json_array_extend(req, v);
      } else if (!json_object_get(m, k)) {
        json_object_set(m, k, v);
      }
    }
  }
  (void)depth;
  json_object_set_new(m, "properties", props);
  json_object_set_new(m, "required", req);
  json_decref(queue);
  return m;
}

static json_t *gen_string(json_t *s) {
  const char *fmt = json_string_value(json_object_get(s, "format"));
  const char *pat = json_string_value(json_object_get(s, "pattern"));
  char buf[256] = "string";
  if (fmt && !strcmp(fmt, "date-time"))
    strcpy(buf, "2024-01-01T00:00:00Z");
  else if (fmt && !strcmp(fmt, "date"))
    strcpy(buf, "2024-01-01");
  else if (fmt && !strcmp(fmt, "time"))
    strcpy(buf, "00:00:00Z");
  else if (fmt && !strcmp(fmt, "email"))
    strcpy(buf, "user@example.com");
  else if (fmt && !strcmp(fmt, "uuid"))
    strcpy(buf, "123e4567-e89b-12d3-a456-426614174000");
  else if (fmt && (!strcmp(fmt, "uri") || !strcmp(fmt, "url")))
    strcpy(buf, "https://example.com/");
  else if (fmt && !strcmp(fmt, "ipv4"))
    strcpy(buf, "192.0.2.1");
  else if (fmt && !strcmp(fmt, "ipv6"))
    strcpy(buf, "2001:db8::1");
  else if (fmt && !strcmp(fmt, "hostname"))
    strcpy(buf, "example.com");
  else if (pat && !from_regex(pat, buf, sizeof(buf)))
    strcpy(buf, "string");
  int has;
  double minl = num_at(s, "minLength", &has);
  size_t n = strlen(buf);
  while (has && n < (size_t)minl && n + 1 < sizeof(buf))
    buf[n++] = 'x';
  buf[n] = 0;
  double maxl = num_at(s, "maxLength", &has);
  if (has && n > (size_t)maxl)
    buf[(size_t)maxl] = 0;
  return json_string(buf);
}

static json_t *gen_number(json_t *s, int integer) {
  int hmin, hmax, hxmin, hxmax, hmul;
  double min = num_at(s, "minimum", &hmin), max = num_at(s, "maximum", &hmax);
  double xmin = num_at(s, "exclusiveMinimum", &hxmin);
  double xmax = num_at(s, "exclusiveMaximum", &hxmax);
  double mul = num_at(s, "multipleOf", &hmul);
  double step = hmul && mul > 0 ? mul : 1;
  double lo = hmin            ? min
              : hxmin         ? xmin + (integer ? 1 : step)
              : hmax || hxmax ? -INFINITY
                              : 1;
  double hi = hmax ? max : hxmax ? xmax - (integer ? 1 : step) : INFINITY;
  double v = isinf(lo) ? (isinf(hi) ? 1 : hi) : lo;
  if (hmul && mul > 0)
    v = ceil(v / mul) * mul;
  if (integer)
    return json_integer((json_int_t)ceil(v));
  return json_real(v);
}

static const char *type_of(json_t *s, unsigned variant) {
  json_t *t = json_object_get(s, "type");
  if (json_is_string(t))
    return json_string_value(t);
  if (json_is_array(t) && json_array_size(t)) {
    /* the first non-null type, unless the variant asks for another */
    size_t n = json_array_size(t);
    for (size_t i = 0; i < n; i++) {
      const char *x = json_string_value(json_array_get(t, (i + variant) % n));
      if (x && strcmp(x, "null"))
        return x;
    }
    return "null";
  }
  if (json_object_get(s, "properties") || json_object_get(s, "required"))
    return "object";
  if (json_object_get(s, "items"))
    return "array";
  if (json_object_get(s, "pattern") || json_object_get(s, "format") ||
      json_object_get(s, "minLength"))
    return "string";
  if (json_object_get(s, "minimum") || json_object_get(s, "maximum"))
    return "number";
  return "object";
}

static json_t *gen(json_t *s, unsigned variant, int depth) {
  s = deref(s);
  if (depth > 16 || json_is_true(s) || !json_is_object(s))
    return json_null();
  json_t *v;
  if ((v = json_object_get(s, "const")))
    return json_deep_copy(v);
  if ((v = json_object_get(s, "enum")) && json_array_size(v))
    return json_deep_copy(json_array_get(v, variant % json_array_size(v)));
  if ((v = json_object_get(s, "examples")) && json_array_size(v) &&
      !(variant & 8))
    return json_deep_copy(json_array_get(v, 0));
  if ((v = json_object_get(s, "default")) && !(variant & 8))
    return json_deep_copy(v);
  if ((v = json_object_get(s, "allOf")) && json_is_array(v)) {
    json_t *m = merge_all_of(s, depth);
    json_object_del(m, "allOf");
    json_t *r = gen(m, variant, depth + 1);
    json_decref(m);
    return r;
  }
  json_t *alts = json_object_get(s, "oneOf");
  if (!json_array_size(alts))
    alts = json_object_get(s, "anyOf");
  if (json_array_size(alts)) {
    /* the option the variant picks, with the outer keywords (a "type:
     * object" beside the oneOf, shared properties) merged in */
    size_t na = json_array_size(alts);
    json_t *opt = deref(json_array_get(alts, variant % na));
    json_t *outer = json_object();
    json_object_update(outer, s);
    json_object_del(outer, "oneOf");
    json_object_del(outer, "anyOf");
    json_t *all = json_pack("{s:[o, o]}", "allOf", outer,
                            opt ? json_incref(opt) : json_object());
    json_t *r = all ? gen(all, variant / (unsigned)na, depth + 1) : json_null();
    json_decref(all);
    return r;
  }
  const char *t = type_of(s, variant);
  if (!strcmp(t, "object")) {
    json_t *o = json_object();
    json_t *props = json_object_get(s, "properties");
    json_t *req = json_object_get(s, "required");
    const char *k;
    json_object_foreach(props, k, v) {
      int required = 0;
      size_t i;
      json_t *r;
      json_array_foreach(req, i, r) if (json_is_string(r) &&
                                        !strcmp(json_string_value(r), k))
          required = 1;
      if (!required && (variant & 4))
        continue; /* optional properties only in some variants */
      json_object_set_new(o, k, gen(v, variant, depth + 1));
    }
    size_t i;
    json_t *r;
    json_array_foreach(req, i, r) {
      const char *name = json_string_value(r);
      if (name && !json_object_get(o, name))
        json_object_set_new(o, name, json_string("string"));
    }
    return o;
  }
  if (!strcmp(t, "array")) {
    json_t *a = json_array();
    json_t *items = json_object_get(s, "items");
    int has;
    double mn = num_at(s, "minItems", &has);
    double mx;
    int hasmx;
    mx = num_at(s, "maxItems", &hasmx);
    size_t n = has ? (size_t)mn : 1;
    if (hasmx && n > (size_t)mx)
      n = (size_t)mx;
    if (json_is_array(items)) {
      size_t i;
      json_array_foreach(items, i, v)
          json_array_append_new(a, gen(v, variant, depth + 1));
      return a;
    }
    for (size_t i = 0; i < n && i < 64; i++)
      json_array_append_new(a, gen(items, variant + (unsigned)i, depth + 1));
    return a;
  }
  if (!strcmp(t, "string"))
    return gen_string(s);
  if (!strcmp(t, "integer"))
    return gen_number(s, 1);
  if (!strcmp(t, "number"))
    return gen_number(s, 0);
  if (!strcmp(t, "boolean"))
    return json_true();
  return json_null();
}

/* The payload schema of a message object (a Multi Format Schema Object's
 * schema, or the payload itself). */
static json_t *payload_schema(json_t *msg) {
  json_t *pl = deref(json_object_get(msg, "payload"));
  if (json_is_string(json_object_get(pl, "schemaFormat")))
    pl = deref(json_object_get(pl, "schema"));
  return pl;
}

/* ---- correlation ids ---- */

/* "$message.payload#/a/b" -> "/a/b" (NULL for header locations). */
static const char *corr_pointer(json_t *msg) {
  json_t *c = deref(json_object_get(msg, "correlationId"));
  const char *loc = json_string_value(json_object_get(c, "location"));
  const char *pfx = "$message.payload#";
  if (!loc || strncmp(loc, pfx, strlen(pfx)))
    return NULL;
  return loc + strlen(pfx);
}

static void set_pointer(json_t *root, const char *p, json_t *val) {
  /* parent must exist; the last segment is set */
  const char *last = strrchr(p, '/');
  if (!last) {
    json_decref(val);
    return;
  }
  char parent[512];
  size_t n = (size_t)(last - p);
  if (n >= sizeof(parent)) {
    json_decref(val);
    return;
  }
  memcpy(parent, p, n);
  parent[n] = 0;
  json_t *obj = n ? pointer(root, parent) : root;
  if (json_is_object(obj))
    json_object_set_new(obj, last + 1, val);
  else
    json_decref(val);
}

/* ---- replies and emissions ---- */

static void log_refusal(wsmsg_conn *c, const char *op, const wsmsg_verrors *e) {
  char buf[512];
  wsmsg_verrors_dump(e, buf, sizeof(buf));
  fprintf(stderr,
          "asyncapi_mock: %s: a generated message failed validation, "
          "not sent: %s\n",
          op, buf);
  (void)c;
  REFUSED++;
}

/* Build a message for `msg` (an example, else generated) that passes
 * operation `op`'s send validation; NULL if none did. */
static json_t *instance_for(const char *op, json_t *msg, json_t *req,
                            const char *req_corr, int use_example,
                            unsigned first, wsmsg_verrors *e) {
  json_t *ex = json_object_get(msg, "examples");
  const char *cp = corr_pointer(msg);
  json_t *corr = req && req_corr ? pointer(req, req_corr) : NULL;
  for (unsigned k = 0; k < 24; k++) {
    unsigned variant = first + k;
    json_t *inst;
    if (use_example && k == 0 && json_array_size(ex) &&
        json_object_get(json_array_get(ex, 0), "payload"))
      inst = json_deep_copy(json_object_get(json_array_get(ex, 0), "payload"));
    else
      inst = gen(payload_schema(msg), variant, 0);
    if (!inst)
      continue;
    if (corr && cp)
      set_pointer(inst, cp, json_deep_copy(corr));
    if (wsmsg_asyncapi_send(A, NULL, op, inst, e) == 0)
      return inst;
    json_decref(inst);
  }
  return NULL;
}

static void on_message(wsmsg_conn *c, const char *op, const char *name,
                       json_t *msg, void *user) {
  (void)user;
  evloop_log(c, "received %s (operation %s)", name, op);
  json_t *o = deref(json_object_get(json_object_get(DOC, "operations"), op));
  json_t *reply = deref(json_object_get(o, "reply"));
  if (!reply)
    return;
  /* the request's correlation id: the received message's definition */
  const char *req_corr = NULL;
  size_t i;
  json_t *m;
  json_array_foreach(json_object_get(o, "messages"), i, m) {
    json_t *md = deref(m);
    json_t *nm = json_object_get(md, "name");
    if (req_corr == NULL ||
        (json_is_string(nm) && !strcmp(json_string_value(nm), name)))
      req_corr = corr_pointer(md) ? corr_pointer(md) : req_corr;
  }
  json_t *list = json_object_get(reply, "messages");
  if (!json_array_size(list)) {
    json_t *ch = deref(json_object_get(reply, "channel"));
    if (!ch)
      ch = deref(json_object_get(o, "channel"));
    list = json_array();
    const char *k;
    json_object_foreach(json_object_get(ch, "messages"), k, m)
        json_array_append(list, m);
  } else {
    json_incref(list);
  }
  wsmsg_verrors *e = wsmsg_verrors_new();
  json_t *out = NULL;
  json_array_foreach(list, i, m) {
    json_t *md = deref(m);
    if (!req_corr)
      req_corr = corr_pointer(md);
    out = instance_for(op, md, msg, req_corr, 1, 0, e);
    if (out)
      break;
  }
  if (out) {
    if (wsmsg_send_json(c, out) == 0)
      SENT++;
    json_decref(out);
  } else {
    log_refusal(c, op, e);
  }
  json_decref(list);
  wsmsg_verrors_free(e);
}

/* ---- connections (for --emit) ---- */

static wsmsg_conn **OPEN;
static size_t NOPEN, CAPOPEN;

static void on_open(wsmsg_conn *c, void *u) {
  (void)u;
  if (NOPEN == CAPOPEN) {
    size_t cap = CAPOPEN ? CAPOPEN * 2 : 64;
    wsmsg_conn **p = realloc(OPEN, cap * sizeof(*p));
    if (!p)
      return;
    OPEN = p;
    CAPOPEN = cap;
  }
  OPEN[NOPEN++] = c;
  evloop_log(c, "open on channel %s", wsmsg_asyncapi_conn_channel(A, c));
}

static void on_close(wsmsg_conn *c, const wsmsg_close_info *ci, void *u) {
  (void)ci;
  (void)u;
  for (size_t i = 0; i < NOPEN; i++)
    if (OPEN[i] == c) {
      OPEN[i] = OPEN[--NOPEN];
      break;
    }
}

static void on_endpoint(wsmsg_endpoint *ep, const char *path, void *u) {
  (void)u;
  (void)path;
  wsmsg_endpoint_on_open(ep, on_open);
  wsmsg_endpoint_on_close(ep, on_close);
}

static void emit(void *u) {
  (void)u;
  json_t *ops = json_object_get(DOC, "operations");
  json_t *chans = json_object_get(DOC, "channels");
  wsmsg_verrors *e = wsmsg_verrors_new();
  for (size_t i = 0; i < NOPEN; i++) {
    wsmsg_conn *c = OPEN[i];
    const char *cid = wsmsg_asyncapi_conn_channel(A, c);
    json_t *mine = deref(json_object_get(chans, cid ? cid : ""));
    const char *addr = json_string_value(json_object_get(mine, "address"));
    const char *k;
    json_t *ov;
    json_object_foreach(ops, k, ov) {
      json_t *o = deref(ov);
      const char *action = json_string_value(json_object_get(o, "action"));
      json_t *ch = deref(json_object_get(o, "channel"));
      const char *ca = json_string_value(json_object_get(ch, "address"));
      if (!action || strcmp(action, "send") || !ch || !addr || !ca ||
          strcmp(ca, addr))
        continue;
      json_t *list = json_object_get(o, "messages");
      json_t *first =
          json_array_size(list) ? deref(json_array_get(list, 0)) : NULL;
      if (!first) {
        const char *mk;
        json_t *mv;
        json_object_foreach(json_object_get(ch, "messages"), mk, mv) {
          first = deref(mv);
          break;
        }
      }
      if (!first)
        continue;
      json_t *inst = instance_for(k, first, NULL, NULL, 0, EMITTED++, e);
      if (!inst) {
        log_refusal(c, k, e);
        continue;
      }
      if (wsmsg_broadcast_json(&c, 1, inst) == 1)
        SENT++;
      json_decref(inst);
    }
  }
  wsmsg_verrors_free(e);
}

/* ---- HTTP: the document ---- */

static int on_http(wsmsg_conn *c, const wsmsg_request *req, void *u) {
  (void)u;
  const char *m = wsmsg_request_method(req);
  if (strcmp(wsmsg_request_path(req), "/asyncapi.json") ||
      (strcmp(m, "GET") && strcmp(m, "HEAD")))
    return 0;
  wsmsg_http_respond(c, 200, "Content-Type: application/json\r\n", DOC_JSON,
                     DOC_JSON_LEN);
  return 0;
}

/* ---- files ---- */

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  size_t cap = 65536, n = 0;
  char *p = malloc(cap);
  size_t got;
  while (p && (got = fread(p + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) {
      char *q = realloc(p, cap *= 2);
      if (!q) {
        free(p);
        p = NULL;
      }
      p = q;
    }
  }
  fclose(f);
  if (p)
    *len = n;
  return p;
}

/* Relative $refs: files beside the document, JSON or YAML. */
static json_t *loader(const char *uri, void *u) {
  (void)u;
  if (strstr(uri, "://") || strstr(uri, ".."))
    return NULL; /* local files beside the document only */
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s", DOC_DIR, uri);
  size_t len;
  char *text = slurp(path, &len);
  if (!text)
    return NULL;
  char err[256];
  json_t *j = wsmsg_yaml_loads(text, len, err, sizeof(err));
  if (!j)
    fprintf(stderr, "asyncapi_mock: %s: %s\n", path, err);
  free(text);
  return j;
}

static void usage(void) {
  fprintf(stderr,
          "usage: asyncapi_mock --asyncapi FILE [--port P] [--host H] "
          "[--server NAME] [--emit MS] [--schemas DIR] [-q] " EVLOOP_USAGE
          "\n");
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1", *file = NULL, *server = NULL;
  const char *schemas = getenv("WSMSG_ASYNCAPI_SCHEMAS");
  if (!schemas)
    schemas = "../shared/data/asyncapi/schemas";
  int port = 8080;
  evloop_opts lo = EVLOOP_OPTS("asyncapi_mock");
  lo.verbose = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int more = i + 1 < argc;
    if (evloop_arg(&lo, argc, argv, &i))
      continue;
    if (!strcmp(a, "--port") && more)
      port = atoi(argv[++i]);
    else if (!strcmp(a, "--host") && more)
      host = argv[++i];
    else if (!strcmp(a, "--asyncapi") && more)
      file = argv[++i];
    else if (!strcmp(a, "--server") && more)
      server = argv[++i];
    else if (!strcmp(a, "--emit") && more)
      EMIT_MS = evloop_ms_arg("asyncapi_mock", argv[++i]);
    else if (!strcmp(a, "--schemas") && more)
      schemas = argv[++i];
    else if (!strcmp(a, "-q") || !strcmp(a, "--quiet"))
      lo.verbose = VERBOSE = 0;
    else {
      usage();
      return !strcmp(a, "--help") || !strcmp(a, "-h") ? 0 : 2;
    }
  }
  if (!file || port < 0 || port > 65535) {
    usage();
    return 2;
  }
  size_t len;
  char *text = slurp(file, &len);
  if (!text) {
    fprintf(stderr, "asyncapi_mock: cannot read %s: %s\n", file,
            strerror(errno));
    return 1;
  }
  static char dir[4096];
  snprintf(dir, sizeof(dir), "%s", file);
  char *slash = strrchr(dir, '/');
  if (slash) {
    *slash = 0;
    DOC_DIR = dir;
  }
  A = wsmsg_asyncapi_new(NULL);
  wsmsg_asyncapi_set_schema_dir(A, schemas);
  wsmsg_asyncapi_set_loader(A, loader, NULL);
  int rc = wsmsg_asyncapi_load(A, text, len);
  free(text);
  if (rc) {
    fprintf(stderr, "asyncapi_mock: %s: %s\n", file, wsmsg_asyncapi_detail(A));
    const wsmsg_verrors *e = wsmsg_asyncapi_errors(A);
    for (size_t i = 0; i < wsmsg_verrors_count(e) && i < 10; i++) {
      char loc[256];
      wsmsg_verrors_loc_dump(e, i, loc, sizeof(loc));
      fprintf(stderr, "  at %s: %s\n", loc, wsmsg_verrors_msg(e, i));
    }
    wsmsg_asyncapi_free(A);
    return 1;
  }
  DOC = wsmsg_asyncapi_document(A);
  DOC_JSON = json_dumps(DOC, JSON_INDENT(2));
  DOC_JSON_LEN = DOC_JSON ? strlen(DOC_JSON) : 0;
  wsmsg_asyncapi_on_operation(A, NULL, on_message, NULL);
  wsmsg_asyncapi_on_endpoint(A, on_endpoint, NULL);
  wsmsg_server *srv = wsmsg_server_new();
  wsmsg_server_on_http(srv, on_http);
  rc = wsmsg_asyncapi_serve(A, srv, server);
  const char *notes = wsmsg_asyncapi_notes(A);
  if (notes[0])
    fprintf(stderr, "%s", notes);
  if (rc) {
    fprintf(stderr, "asyncapi_mock: %s\n", wsmsg_asyncapi_detail(A));
    wsmsg_server_free(srv);
    wsmsg_asyncapi_free(A);
    free(DOC_JSON);
    return 1;
  }
  if (EMIT_MS > 0) {
    lo.tick_ms = EMIT_MS;
    lo.tick = emit;
  }
  int r = evloop_serve(srv, host, port, &lo);
  fprintf(stderr, "asyncapi_mock: %lu sent, %lu generated messages refused\n",
          SENT, REFUSED);
  wsmsg_server_free(srv);
  wsmsg_asyncapi_free(A);
  free(DOC_JSON);
  free(OPEN);
  return r;
}
