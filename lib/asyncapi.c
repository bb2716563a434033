/* AsyncAPI 3.x documents as a validating WebSocket server (docs/asyncapi.md).
 *
 * Loading: JSON or YAML text (asyncapi_yaml.c) or a json_t, validated
 * against the official JSON Schema of its "asyncapi" version (read from the
 * schema directory the host sets), external "$ref"s mounted into the
 * document through the host's loader, every message of every channel
 * compiled from its payload (a wrapper schema {"$ref": "#<payload>"} over
 * the whole document, so refs into components resolve as written).
 *
 * Serving: one endpoint per distinct address (server pathname + channel
 * address) of the channels the chosen ws/wss servers carry; templates
 * route by their literal prefix and are matched, with their parameters
 * and the bindings.ws query/headers schemas, in on_handshake.  The
 * messages of the receive operations of an address are told apart by an
 * explicit discriminator, an inferred one (a property with a different
 * const / single enum in every message), or by trying each. */
#include "internal.h"
#include "schema_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AA_MAX_REF_HOPS 64
#define AA_MAX_EXTERNAL 256

typedef struct aa_msg {
  const json_t *obj;    /* the message object (inside a->doc) */
  char *ptr;            /* its JSON pointer, unescaped form "/a/b" escaped */
  char *name;           /* "name", else its key */
  wsmsg_schema *schema; /* NULL: no payload (anything goes) */
  char *unsupported;    /* why it cannot be compiled, or NULL */
} aa_msg;

typedef struct aa_op {
  char *id;
  bool send;
  const json_t *channel;
  size_t *msgs; /* indices into a->msgs */
  size_t nmsgs;
  size_t *reply; /* reply messages */
  size_t nreply;
  wsmsg_operation_cb cb;
  void *user;
} aa_op;

typedef struct aa_param {
  char *name;
  wsmsg_schema *schema;
} aa_param;

typedef struct aa_addr {
  struct wsmsg_asyncapi *a;
  char *path;  /* full address, maybe a template */
  char *route; /* what wsmsg_server_route got */
  bool templ;
  char *channel_id; /* the first channel on it */
  const json_t *channel;
  wsmsg_endpoint *ep;
  size_t *rx; /* receive messages (a->msgs indices), deduplicated */
  size_t nrx;
  char *field; /* discriminator, or NULL */
  char **values;
  aa_param *params;
  size_t nparams;
  wsmsg_schema *query, *headers;
  const json_t **chans; /* the channels on this address */
  size_t nchans;
} aa_addr;

struct wsmsg_asyncapi {
  wsmsg_mem mem;
  char *schema_dir;
  wsmsg_asyncapi_loader_cb loader;
  void *loader_user;
  json_t *doc;
  wsmsg_verrors *errors;
  char detail[512];
  wsm_sb notes;
  aa_msg *msgs;
  size_t nmsgs;
  aa_op *ops;
  size_t nops;
  aa_addr *addrs;
  size_t naddrs;
  wsmsg_operation_cb def_cb;
  void *def_user;
  wsmsg_asyncapi_endpoint_cb ep_cb;
  void *ep_user;
  unsigned vflags;
  bool loaded, served;
};

/* ---- small helpers ---- */

static int fail(wsmsg_asyncapi *a, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(wsmsg_asyncapi *a, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(a->detail, sizeof(a->detail), fmt, ap);
  va_end(ap);
  wsm_utf8_scrub(a->detail);
  return rc;
}

static void note(wsmsg_asyncapi *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void note(wsmsg_asyncapi *a, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  wsm_utf8_scrub(line);
  wsm_sb_add(&a->notes, line, strlen(line));
  wsm_sb_add(&a->notes, "\n", 1);
}

static bool sb_put(wsm_sb *b, const char *s, size_t n) {
  wsm_sb_add(b, s, n);
  return !b->oom;
}

/* JSON pointer escaping of one key into sb ("~" -> "~0", "/" -> "~1"). */
static bool ptr_add_key(wsm_sb *sb, const char *k) {
  bool ok = sb_put(sb, "/", 1);
  for (; *k && ok; k++) {
    if (*k == '~')
      ok = sb_put(sb, "~0", 2);
    else if (*k == '/')
      ok = sb_put(sb, "~1", 2);
    else
      ok = sb_put(sb, k, 1);
  }
  return ok;
}

static char *ptr_join(const wsmsg_mem *m, const char *base, const char *key) {
  wsm_sb sb = {m, NULL, 0, 0, false};
  if (!sb_put(&sb, base, strlen(base)) || !ptr_add_key(&sb, key)) {
    wsm_free(m, sb.p);
    return NULL;
  }
  return wsm_sb_finish(&sb);
}

/* Resolve a JSON pointer (URI fragment form: percent-decoded here) from
 * `root`. */
static json_t *ptr_get(const wsmsg_mem *m, json_t *root, const char *frag) {
  char *p = wsm_strdup(m, frag);
  if (!p)
    return NULL;
  size_t o = wsm_pct_decode(p);
  json_t *j = root;
  size_t i = 0;
  if (o && p[0] != '/') {
    wsm_free(m, p);
    return NULL;
  }
  while (j && i < o) {
    size_t s = i + 1, k = s;
    while (k < o && p[k] != '/')
      k++;
    bool oom = false;
    j = wsm_json_ptr_step(m, j, p + s, k - s, &oom);
    i = k;
  }
  wsm_free(m, p);
  return j;
}

/* Follow {"$ref": "#..."} from `node`; *ptr (owned, may be replaced) is
 * the node's pointer.  NULL (and a detail) when a ref does not resolve. */
static json_t *deref(wsmsg_asyncapi *a, json_t *node, char **ptr) {
  for (int hop = 0; hop < AA_MAX_REF_HOPS; hop++) {
    json_t *ref = json_is_object(node) ? json_object_get(node, "$ref") : NULL;
    if (!json_is_string(ref))
      return node;
    const char *r = json_string_value(ref);
    if (r[0] != '#') {
      fail(a, WSMSG_ERR_SCHEMA, "\"$ref\": \"%s\" is not resolved", r);
      return NULL;
    }
    json_t *t = ptr_get(&a->mem, a->doc, r + 1);
    if (!t) {
      fail(a, WSMSG_ERR_SCHEMA, "\"$ref\": \"%s\" does not resolve", r);
      return NULL;
    }
    if (ptr) {
      /* keep the pointer in its escaped, percent-decoded form */
      char *np = wsm_strdup(&a->mem, r + 1);
      if (!np) {
        fail(a, WSMSG_ERR_NOMEM, "out of memory");
        return NULL;
      }
      wsm_free(&a->mem, *ptr);
      *ptr = np;
    }
    node = t;
  }
  fail(a, WSMSG_ERR_SCHEMA, "\"$ref\" chain longer than %d hops (a cycle?)",
       AA_MAX_REF_HOPS);
  return NULL;
}

/* ---- life cycle ---- */

wsmsg_asyncapi *wsmsg_asyncapi_new(const wsmsg_mem *mem) {
  wsmsg_mem m;
  wsm_mem_init(&m, mem);
  wsmsg_asyncapi *a = wsm_calloc(&m, sizeof(*a));
  if (!a)
    return NULL;
  a->mem = m;
  a->notes.mem = &a->mem;
  a->vflags = WSMSG_VALIDATE_COERCE | WSMSG_VALIDATE_DEFAULTS;
  a->errors = wsmsg_verrors_new_mem(&a->mem);
  if (!a->errors) {
    wsm_free(&m, a);
    return NULL;
  }
  return a;
}

static void free_addr(wsmsg_asyncapi *a, aa_addr *d) {
  const wsmsg_mem *m = &a->mem;
  wsm_free(m, d->path);
  wsm_free(m, d->route);
  wsm_free(m, d->channel_id);
  wsmsg_endpoint_free(d->ep);
  if (d->values)
    for (size_t i = 0; i < d->nrx; i++)
      wsm_free(m, d->values[i]);
  wsm_free(m, d->values);
  wsm_free(m, d->rx);
  wsm_free(m, d->field);
  for (size_t i = 0; i < d->nparams; i++) {
    wsm_free(m, d->params[i].name);
    wsmsg_schema_free(d->params[i].schema);
  }
  wsm_free(m, d->params);
  wsmsg_schema_free(d->query);
  wsmsg_schema_free(d->headers);
  wsm_free(m, d->chans);
}

void wsmsg_asyncapi_free(wsmsg_asyncapi *a) {
  if (!a)
    return;
  const wsmsg_mem *m = &a->mem;
  for (size_t i = 0; i < a->naddrs; i++)
    free_addr(a, &a->addrs[i]);
  wsm_free(m, a->addrs);
  for (size_t i = 0; i < a->nmsgs; i++) {
    wsm_free(m, a->msgs[i].ptr);
    wsm_free(m, a->msgs[i].name);
    wsm_free(m, a->msgs[i].unsupported);
    wsmsg_schema_free(a->msgs[i].schema);
  }
  wsm_free(m, a->msgs);
  for (size_t i = 0; i < a->nops; i++) {
    wsm_free(m, a->ops[i].id);
    wsm_free(m, a->ops[i].msgs);
    wsm_free(m, a->ops[i].reply);
  }
  wsm_free(m, a->ops);
  json_decref(a->doc);
  wsmsg_verrors_free(a->errors);
  wsm_free(m, a->schema_dir);
  wsm_free(m, a->notes.p);
  wsmsg_mem mm = a->mem;
  wsm_free(&mm, a);
}

int wsmsg_asyncapi_set_schema_dir(wsmsg_asyncapi *a, const char *dir) {
  if (!a || !dir)
    return WSMSG_ERR_INVALID_ARG;
  if (a->loaded)
    return WSMSG_ERR_STATE;
  char *d = wsm_strdup(&a->mem, dir);
  if (!d)
    return WSMSG_ERR_NOMEM;
  wsm_free(&a->mem, a->schema_dir);
  a->schema_dir = d;
  return 0;
}

int wsmsg_asyncapi_set_loader(wsmsg_asyncapi *a, wsmsg_asyncapi_loader_cb cb,
                              void *user) {
  if (!a)
    return WSMSG_ERR_INVALID_ARG;
  if (a->loaded)
    return WSMSG_ERR_STATE;
  a->loader = cb;
  a->loader_user = user;
  return 0;
}

int wsmsg_asyncapi_set_validation(wsmsg_asyncapi *a, unsigned flags) {
  if (!a)
    return WSMSG_ERR_INVALID_ARG;
  unsigned all = WSMSG_VALIDATE_COERCE | WSMSG_VALIDATE_DEFAULTS |
                 WSMSG_VALIDATE_FORMAT | WSMSG_VALIDATE_EXTRA_IGNORE |
                 WSMSG_VALIDATE_EXTRA_FORBID | WSMSG_VALIDATE_PYDANTIC_V2;
  if (flags & ~all)
    return WSMSG_ERR_INVALID_ARG;
  if (a->served)
    return WSMSG_ERR_STATE;
  a->vflags = flags;
  return 0;
}

const wsmsg_verrors *wsmsg_asyncapi_errors(const wsmsg_asyncapi *a) {
  return a ? a->errors : NULL;
}

const char *wsmsg_asyncapi_detail(const wsmsg_asyncapi *a) {
  return a ? a->detail : "";
}

const char *wsmsg_asyncapi_notes(const wsmsg_asyncapi *a) {
  return a && a->notes.p ? a->notes.p : "";
}

json_t *wsmsg_asyncapi_document(const wsmsg_asyncapi *a) {
  return a ? a->doc : NULL;
}

/* ---- the official schema ---- */

static int official_schema(wsmsg_asyncapi *a, const char *version,
                           wsmsg_schema **out) {
  *out = NULL;
  if (!a->schema_dir)
    return fail(a, WSMSG_ERR_STATE,
                "no schema directory: call wsmsg_asyncapi_set_schema_dir "
                "(the official AsyncAPI JSON Schemas, <version>.json)");
  for (const char *p = version; *p; p++)
    if (!strchr("0123456789.", *p))
      return fail(a, WSMSG_ERR_UNSUPPORTED,
                  "asyncapi: \"%s\" is not a version number", version);
  char *path = wsm_asprintf(&a->mem, "%s/%s.json", a->schema_dir, version);
  if (!path)
    return fail(a, WSMSG_ERR_NOMEM, "out of memory");
  FILE *f = fopen(path, "rb");
  if (!f) {
    fail(a, WSMSG_ERR_UNSUPPORTED,
         "asyncapi %s: no official schema %s (3.0.0 and 3.1.0 are known)",
         version, path);
    wsm_free(&a->mem, path);
    return WSMSG_ERR_UNSUPPORTED;
  }
  wsm_sb sb = {&a->mem, NULL, 0, 0, false};
  char buf[8192];
  size_t n;
  int rc = 0;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
    if (!sb_put(&sb, buf, n)) {
      rc = fail(a, WSMSG_ERR_NOMEM, "out of memory");
      break;
    }
  fclose(f);
  if (!rc) {
    char err[256];
    rc = wsmsg_schema_compile_mem(sb.p ? sb.p : "", sb.n, WSMSG_SCHEMA_DRAFT7,
                                  &a->mem, out, err, sizeof(err));
    if (rc)
      fail(a, rc, "%s: %s", path, err);
  }
  wsm_free(&a->mem, sb.p);
  wsm_free(&a->mem, path);
  return rc;
}

static int validate_document(wsmsg_asyncapi *a) {
  json_t *v = json_object_get(a->doc, "asyncapi");
  if (!json_is_string(v))
    return fail(a, WSMSG_ERR_VALIDATION,
                "not an AsyncAPI document: no \"asyncapi\" version string");
  const char *ver = json_string_value(v);
  if (strncmp(ver, "3.", 2) != 0)
    return fail(a, WSMSG_ERR_UNSUPPORTED,
                "asyncapi %s: only AsyncAPI 3.x documents are read", ver);
  wsmsg_schema *s;
  int rc = official_schema(a, ver, &s);
  if (rc)
    return rc;
  rc = wsmsg_schema_validate(s, a->doc, WSMSG_VALIDATE_STRICT, a->errors);
  wsmsg_schema_free(s);
  if (rc == WSMSG_ERR_VALIDATION) {
    char loc[256] = "";
    if (wsmsg_verrors_count(a->errors))
      (void)wsmsg_verrors_loc_dump(a->errors, 0, loc, sizeof(loc));
    return fail(a, rc,
                "the document does not match the AsyncAPI %s schema (%zu "
                "errors; first at %s: %s)",
                ver, wsmsg_verrors_count(a->errors), loc,
                wsmsg_verrors_count(a->errors) ? wsmsg_verrors_msg(a->errors, 0)
                                               : "?");
  }
  if (rc)
    return fail(a, rc, "validating the document: %s", wsmsg_strerror(rc));
  return 0;
}

/* ---- external references ---- */

typedef struct ext_file {
  char *uri;
  size_t index;
} ext_file;

typedef struct ext_ctx {
  wsmsg_asyncapi *a;
  json_t *mounts; /* array at doc["x-wsmsg-external"] */
  ext_file files[AA_MAX_EXTERNAL];
  size_t nfiles;
} ext_ctx;

static int ext_walk(ext_ctx *x, json_t *j, size_t file, int depth);

/* The mount index of `uri` (loaded and rewritten on first use). */
static int ext_mount(ext_ctx *x, const char *uri, size_t *index, int depth) {
  wsmsg_asyncapi *a = x->a;
  for (size_t i = 0; i < x->nfiles; i++)
    if (!strcmp(x->files[i].uri, uri)) {
      *index = x->files[i].index;
      return 0;
    }
  if (!a->loader)
    return fail(a, WSMSG_ERR_UNSUPPORTED,
                "\"$ref\" to \"%s\": no loader (wsmsg_asyncapi_set_loader)",
                uri);
  if (x->nfiles == AA_MAX_EXTERNAL)
    return fail(a, WSMSG_ERR_UNSUPPORTED, "more than %d referenced files",
                AA_MAX_EXTERNAL);
  json_t *doc = a->loader(uri, a->loader_user);
  if (!doc)
    return fail(a, WSMSG_ERR_NOT_FOUND, "the loader could not load \"%s\"",
                uri);
  char *dup = wsm_strdup(&a->mem, uri);
  if (!dup || json_array_append_new(x->mounts, doc)) {
    wsm_free(&a->mem, dup);
    return fail(a, WSMSG_ERR_NOMEM, "out of memory");
  }
  *index = json_array_size(x->mounts) - 1;
  x->files[x->nfiles++] = (ext_file){dup, *index};
  return ext_walk(x, doc, *index + 1, depth + 1);
}

/* Rewrite the refs inside `j` (from mounted file `file`, 0: the document)
 * to point into the document. */
static int ext_walk(ext_ctx *x, json_t *j, size_t file, int depth) {
  if (depth > 64)
    return fail(x->a, WSMSG_ERR_SCHEMA, "document nested too deep");
  if (json_is_array(j)) {
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v) {
      int rc = ext_walk(x, v, file, depth + 1);
      if (rc)
        return rc;
    }
    return 0;
  }
  if (!json_is_object(j))
    return 0;
  json_t *ref = json_object_get(j, "$ref");
  if (json_is_string(ref)) {
    const char *r = json_string_value(ref);
    const char *hash = strchr(r, '#');
    char *nr = NULL;
    if (r[0] == '#') {
      if (file)
        nr = wsm_asprintf(&x->a->mem, "#/x-wsmsg-external/%zu%s", file - 1,
                          r + 1);
    } else {
      char *uri =
          wsm_strndup(&x->a->mem, r, hash ? (size_t)(hash - r) : strlen(r));
      if (!uri)
        return fail(x->a, WSMSG_ERR_NOMEM, "out of memory");
      size_t idx = 0;
      int rc = ext_mount(x, uri, &idx, depth);
      wsm_free(&x->a->mem, uri);
      if (rc)
        return rc;
      nr = wsm_asprintf(&x->a->mem, "#/x-wsmsg-external/%zu%s", idx,
                        hash ? hash + 1 : "");
    }
    if (nr) {
      int rc = json_object_set_new(j, "$ref", json_string(nr));
      wsm_free(&x->a->mem, nr);
      if (rc)
        return fail(x->a, WSMSG_ERR_NOMEM, "out of memory");
    }
    return 0;
  }
  const char *k;
  json_t *v;
  json_object_foreach(j, k, v) {
    if (depth == 0 && !strcmp(k, "x-wsmsg-external"))
      continue;
    int rc = ext_walk(x, v, file, depth + 1);
    if (rc)
      return rc;
  }
  return 0;
}

static bool has_external(const json_t *j, int depth) {
  if (depth > 64)
    return false;
  if (json_is_array(j)) {
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v) if (has_external(v, depth + 1)) return true;
    return false;
  }
  if (!json_is_object(j))
    return false;
  json_t *ref = json_object_get(j, "$ref");
  if (json_is_string(ref) && json_string_value(ref)[0] != '#')
    return true;
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)j, k,
                      v) if (has_external(v, depth + 1)) return true;
  return false;
}

static int resolve_external(wsmsg_asyncapi *a) {
  if (!has_external(a->doc, 0))
    return 0;
  ext_ctx *x = wsm_calloc(&a->mem, sizeof(*x));
  if (!x)
    return fail(a, WSMSG_ERR_NOMEM, "out of memory");
  x->a = a;
  x->mounts = json_array();
  int rc =
      x->mounts && json_object_set(a->doc, "x-wsmsg-external", x->mounts) == 0
          ? ext_walk(x, a->doc, 0, 0)
          : fail(a, WSMSG_ERR_NOMEM, "out of memory");
  json_decref(x->mounts);
  for (size_t i = 0; i < x->nfiles; i++)
    wsm_free(&a->mem, x->files[i].uri);
  wsm_free(&a->mem, x);
  return rc;
}

/* ---- messages ---- */

/* "#<ptr>" percent-encoded for the schema compiler's URI handling. */
static char *ref_uri(const wsmsg_mem *m, const char *ptr, const char *tail) {
  wsm_sb sb = {m, NULL, 0, 0, false};
  bool ok = sb_put(&sb, "#", 1);
  const char *parts[2] = {ptr, tail};
  for (int p = 0; p < 2 && ok; p++)
    for (const unsigned char *s = (const unsigned char *)parts[p]; *s && ok;
         s++) {
      if ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
          (*s >= '0' && *s <= '9') || strchr("-._~/!$&'()*+,;=:@", *s)) {
        ok = sb_put(&sb, (const char *)s, 1);
      } else {
        char e[4];
        snprintf(e, sizeof(e), "%%%02X", *s);
        ok = sb_put(&sb, e, 3);
      }
    }
  if (!ok) {
    wsm_free(m, sb.p);
    return NULL;
  }
  return wsm_sb_finish(&sb);
}

/* Compile the schema at pointer `ptr` + `tail` of the document (draft-07
 * unless `dialect` says otherwise). */
static int compile_at(wsmsg_asyncapi *a, const char *ptr, const char *tail,
                      unsigned dialect, wsmsg_schema **out) {
  *out = NULL;
  json_t *w = json_object();
  char *uri = ref_uri(&a->mem, ptr, tail);
  int rc = WSMSG_ERR_NOMEM;
  if (w && uri && json_object_update(w, a->doc) == 0 &&
      json_object_set_new(w, "$ref", json_string(uri)) == 0) {
    json_object_del(w, "$schema");
    json_object_del(w, "$id");
    char err[256];
    rc = wsmsg_schema_compile_json_mem(w, dialect, &a->mem, out, err,
                                       sizeof(err));
    if (rc)
      fail(a, rc, "the schema at %s%s: %s", ptr, tail, err);
  } else {
    fail(a, rc, "out of memory");
  }
  json_decref(w);
  wsm_free(&a->mem, uri);
  return rc;
}

static const char *last_key(const char *ptr) {
  const char *s = strrchr(ptr, '/');
  return s ? s + 1 : ptr;
}

static int schema_dialect(const char *fmt, unsigned *dialect) {
  static const char *const d7[] = {
      "application/vnd.aai.asyncapi",
      "application/vnd.aai.asyncapi+json",
      "application/vnd.aai.asyncapi+yaml",
      "application/schema+json;version=draft-07",
      "application/schema+yaml;version=draft-07",
  };
  for (size_t i = 0; i < sizeof(d7) / sizeof(d7[0]); i++) {
    size_t n = strlen(d7[i]);
    if (!strncmp(fmt, d7[i], n) &&
        (fmt[n] == '\0' || !strncmp(fmt + n, ";version=", 9))) {
      *dialect = WSMSG_SCHEMA_DRAFT7;
      return 0;
    }
  }
  if (!strcmp(fmt, "application/schema+json;version=2020-12") ||
      !strcmp(fmt, "application/schema+yaml;version=2020-12")) {
    *dialect = WSMSG_SCHEMA_DRAFT2020_12;
    return 0;
  }
  return WSMSG_ERR_UNSUPPORTED;
}

/* The index of the message at `node` (a $ref or inline at `ptr`),
 * compiling it on first sight. */
static int message_index(wsmsg_asyncapi *a, json_t *node, const char *ptr,
                         size_t *idx) {
  char *p = wsm_strdup(&a->mem, ptr);
  if (!p)
    return fail(a, WSMSG_ERR_NOMEM, "out of memory");
  json_t *m = deref(a, node, &p);
  if (!m || !json_is_object(m)) {
    wsm_free(&a->mem, p);
    return a->detail[0]
               ? WSMSG_ERR_SCHEMA
               : fail(a, WSMSG_ERR_SCHEMA, "%s is not a message object", ptr);
  }
  for (size_t i = 0; i < a->nmsgs; i++)
    if (a->msgs[i].obj == m) {
      wsm_free(&a->mem, p);
      *idx = i;
      return 0;
    }
  aa_msg *arr = wsm_realloc(&a->mem, a->msgs, a->nmsgs * sizeof(*arr),
                            (a->nmsgs + 1) * sizeof(*arr));
  if (!arr) {
    wsm_free(&a->mem, p);
    return fail(a, WSMSG_ERR_NOMEM, "out of memory");
  }
  a->msgs = arr;
  aa_msg *msg = &a->msgs[a->nmsgs++];
  memset(msg, 0, sizeof(*msg));
  msg->obj = m;
  msg->ptr = p;
  *idx = a->nmsgs - 1;
  json_t *name = json_object_get(m, "name");
  const char *key = last_key(p);
  msg->name = json_is_string(name)
                  ? wsm_strdup(&a->mem, json_string_value(name))
                  : wsm_ptr_unescape(&a->mem, key, strlen(key), NULL);
  if (!msg->name)
    return fail(a, WSMSG_ERR_NOMEM, "out of memory");
  json_t *payload = json_object_get(m, "payload");
  if (!payload)
    return 0;
  char *pp = ptr_join(&a->mem, p, "payload");
  if (!pp)
    return fail(a, WSMSG_ERR_NOMEM, "out of memory");
  json_t *pl = deref(a, payload, &pp);
  int rc = 0;
  if (!pl) {
    rc = a->detail[0] ? WSMSG_ERR_SCHEMA
                      : fail(a, WSMSG_ERR_SCHEMA, "%s: no payload", p);
  } else {
    unsigned dialect = WSMSG_SCHEMA_DRAFT7;
    const char *tail = "";
    json_t *fmt = json_object_get(pl, "schemaFormat");
    if (json_is_string(fmt) && json_object_get(pl, "schema")) {
      tail = "/schema";
      if (schema_dialect(json_string_value(fmt), &dialect)) {
        msg->unsupported =
            wsm_asprintf(&a->mem,
                         "message %s: schemaFormat \"%s\" is not "
                         "supported (JSON Schema and AsyncAPI "
                         "schemas only)",
                         p, json_string_value(fmt));
        note(a, "%s", msg->unsupported ? msg->unsupported : "?");
        wsm_free(&a->mem, pp);
        return msg->unsupported ? 0 : fail(a, WSMSG_ERR_NOMEM, "oom");
      }
    }
    rc = compile_at(a, pp, tail, dialect, &msg->schema);
  }
  wsm_free(&a->mem, pp);
  return rc;
}

static json_t *channel_messages(json_t *ch) {
  json_t *m = json_object_get(ch, "messages");
  return json_is_object(m) ? m : NULL;
}

/* The key of channel object `ch` in doc.channels, or NULL. */
static const char *channel_key(wsmsg_asyncapi *a, const json_t *ch) {
  const char *k;
  json_t *v;
  json_t *chans = json_object_get(a->doc, "channels");
  json_object_foreach(chans, k, v) {
    json_t *r = deref(a, v, NULL);
    if (r == ch)
      return k;
  }
  return NULL;
}

static int op_messages(wsmsg_asyncapi *a, json_t *list, const char *base,
                       json_t *ch, const char *chptr, size_t **out,
                       size_t *nout) {
  *out = NULL;
  *nout = 0;
  size_t n = json_is_array(list) ? json_array_size(list)
                                 : json_object_size(channel_messages(ch));
  if (!n)
    return 0;
  *out = wsm_calloc(&a->mem, n * sizeof(size_t));
  if (!*out)
    return fail(a, WSMSG_ERR_NOMEM, "out of memory");
  if (json_is_array(list)) {
    for (size_t i = 0; i < n; i++) {
      char ib[32];
      snprintf(ib, sizeof(ib), "%zu", i);
      char *p = ptr_join(&a->mem, base, ib);
      if (!p)
        return fail(a, WSMSG_ERR_NOMEM, "out of memory");
      int rc = message_index(a, json_array_get(list, i), p, &(*out)[i]);
      wsm_free(&a->mem, p);
      if (rc)
        return rc;
      (*nout)++;
    }
    return 0;
  }
  const char *k;
  json_t *v;
  json_object_foreach(channel_messages(ch), k, v) {
    char *mp = ptr_join(&a->mem, chptr, "messages");
    char *p = mp ? ptr_join(&a->mem, mp, k) : NULL;
    wsm_free(&a->mem, mp);
    if (!p)
      return fail(a, WSMSG_ERR_NOMEM, "out of memory");
    int rc = message_index(a, v, p, &(*out)[*nout]);
    wsm_free(&a->mem, p);
    if (rc)
      return rc;
    (*nout)++;
  }
  return 0;
}

static int read_operations(wsmsg_asyncapi *a) {
  /* every channel's messages first: they are what operations point at */
  json_t *chans = json_object_get(a->doc, "channels");
  const char *k;
  json_t *v;
  json_object_foreach(chans, k, v) {
    char *cp = ptr_join(&a->mem, "/channels", k);
    if (!cp)
      return fail(a, WSMSG_ERR_NOMEM, "out of memory");
    json_t *ch = deref(a, v, &cp);
    json_t *msgs = ch ? channel_messages(ch) : NULL;
    const char *mk;
    json_t *mv;
    int rc = ch ? 0 : WSMSG_ERR_SCHEMA;
    json_object_foreach(msgs, mk, mv) {
      char *mp = ptr_join(&a->mem, cp, "messages");
      char *p = mp ? ptr_join(&a->mem, mp, mk) : NULL;
      wsm_free(&a->mem, mp);
      size_t idx = 0;
      rc = p ? message_index(a, mv, p, &idx)
             : fail(a, WSMSG_ERR_NOMEM, "out of memory");
      wsm_free(&a->mem, p);
      if (rc)
        break;
    }
    wsm_free(&a->mem, cp);
    if (rc)
      return rc;
  }
  json_t *ops = json_object_get(a->doc, "operations");
  size_t n = json_object_size(ops);
  if (!n)
    return 0;
  a->ops = wsm_calloc(&a->mem, n * sizeof(*a->ops));
  if (!a->ops)
    return fail(a, WSMSG_ERR_NOMEM, "out of memory");
  json_object_foreach(ops, k, v) {
    aa_op *op = &a->ops[a->nops++];
    op->id = wsm_strdup(&a->mem, k);
    char *opp = ptr_join(&a->mem, "/operations", k);
    if (!op->id || !opp) {
      wsm_free(&a->mem, opp);
      return fail(a, WSMSG_ERR_NOMEM, "out of memory");
    }
    json_t *o = deref(a, v, &opp);
    int rc = o ? 0 : WSMSG_ERR_SCHEMA;
    if (!rc) {
      op->send = !strcmp(json_string_value(json_object_get(o, "action"))
                             ? json_string_value(json_object_get(o, "action"))
                             : "",
                         "send");
      char *chp = wsm_strdup(&a->mem, "");
      json_t *ch = chp ? deref(a, json_object_get(o, "channel"), &chp) : NULL;
      char *mlp = ptr_join(&a->mem, opp, "messages");
      if (!ch && !chp)
        rc = fail(a, WSMSG_ERR_NOMEM, "out of memory");
      else if (!ch || !json_is_object(ch))
        rc = a->detail[0]
                 ? WSMSG_ERR_SCHEMA
                 : fail(a, WSMSG_ERR_SCHEMA,
                        "operation %s: \"channel\" is not a channel", k);
      else if (!mlp)
        rc = WSMSG_ERR_NOMEM;
      else
        rc = op_messages(a, json_object_get(o, "messages"), mlp, ch, chp,
                         &op->msgs, &op->nmsgs);
      op->channel = ch;
      wsm_free(&a->mem, mlp);
      wsm_free(&a->mem, chp);
      json_t *reply = rc ? NULL : json_object_get(o, "reply");
      if (reply) {
        char *rp = ptr_join(&a->mem, opp, "reply");
        json_t *r = rp ? deref(a, reply, &rp) : NULL;
        json_t *rch = NULL;
        char *rchp = NULL;
        if (r && json_object_get(r, "channel")) {
          rchp = wsm_strdup(&a->mem, "");
          rch = rchp ? deref(a, json_object_get(r, "channel"), &rchp) : NULL;
        }
        char *rmp = rp ? ptr_join(&a->mem, rp, "messages") : NULL;
        if (!r || !rmp)
          rc = a->detail[0]
                   ? WSMSG_ERR_SCHEMA
                   : fail(a, WSMSG_ERR_SCHEMA,
                          "operation %s: its reply does not resolve", k);
        else
          rc = op_messages(a, json_object_get(r, "messages"), rmp,
                           rch ? rch : ch, rch ? rchp : "", &op->reply,
                           &op->nreply);
        wsm_free(&a->mem, rmp);
        wsm_free(&a->mem, rchp);
        wsm_free(&a->mem, rp);
      }
    }
    wsm_free(&a->mem, opp);
    if (rc)
      return rc;
  }
  return 0;
}

/* ---- loading ---- */

int wsmsg_asyncapi_load_json(wsmsg_asyncapi *a, const json_t *doc) {
  if (!a || !doc)
    return WSMSG_ERR_INVALID_ARG;
  if (a->loaded)
    return WSMSG_ERR_STATE;
  a->loaded = true;
  a->detail[0] = '\0';
  wsmsg_verrors_clear(a->errors);
  if (!json_is_object(doc))
    return fail(a, WSMSG_ERR_VALIDATION,
                "not an AsyncAPI document: not an object");
  a->doc = json_deep_copy(doc);
  if (!a->doc)
    return fail(a, WSMSG_ERR_NOMEM, "out of memory");
  int rc = validate_document(a);
  if (!rc)
    rc = resolve_external(a);
  if (!rc)
    rc = read_operations(a);
  if (rc && !a->detail[0]) /* every failure says why */
    fail(a, rc, "%s", wsmsg_strerror(rc));
  return rc;
}

int wsmsg_asyncapi_load(wsmsg_asyncapi *a, const char *text, size_t len) {
  if (!a || (!text && len))
    return WSMSG_ERR_INVALID_ARG;
  if (a->loaded)
    return WSMSG_ERR_STATE;
  if (!text)
    text = "";
  size_t i = 0;
  if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3))
    i = 3;
  while (i < len && strchr(" \t\r\n", text[i]))
    i++;
  json_t *doc;
  char err[320];
  if (i < len && text[i] == '{') {
    json_error_t je;
    doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc)
      snprintf(err, sizeof(err), "JSON line %d column %d: %s", je.line,
               je.column, je.text);
  } else {
    doc = wsm_yaml_load(&a->mem, text, len, err, sizeof(err));
  }
  if (!doc) {
    a->loaded = true;
    return fail(a, WSMSG_ERR_JSON, "%s", err[0] ? err : "out of memory");
  }
  int rc = wsmsg_asyncapi_load_json(a, doc);
  json_decref(doc);
  return rc;
}

/* ---- handlers ---- */

int wsmsg_asyncapi_on_operation(wsmsg_asyncapi *a, const char *operation,
                                wsmsg_operation_cb cb, void *user) {
  if (!a)
    return WSMSG_ERR_INVALID_ARG;
  if (!operation) {
    a->def_cb = cb;
    a->def_user = user;
    return 0;
  }
  if (!a->loaded || !a->doc)
    return WSMSG_ERR_STATE;
  for (size_t i = 0; i < a->nops; i++)
    if (!strcmp(a->ops[i].id, operation)) {
      if (a->ops[i].send)
        return WSMSG_ERR_INVALID_ARG;
      a->ops[i].cb = cb;
      a->ops[i].user = user;
      return 0;
    }
  return WSMSG_ERR_NOT_FOUND;
}

int wsmsg_asyncapi_on_endpoint(wsmsg_asyncapi *a, wsmsg_asyncapi_endpoint_cb cb,
                               void *user) {
  if (!a)
    return WSMSG_ERR_INVALID_ARG;
  if (a->served)
    return WSMSG_ERR_STATE;
  a->ep_cb = cb;
  a->ep_user = user;
  return 0;
}

static aa_addr *conn_addr(const wsmsg_conn *c) {
  wsmsg_endpoint *ep = wsmsg_conn_endpoint(c);
  return ep ? (aa_addr *)ep->owner : NULL;
}

const char *wsmsg_asyncapi_conn_channel(const wsmsg_asyncapi *a,
                                        const wsmsg_conn *conn) {
  if (!a || !conn)
    return NULL;
  aa_addr *d = conn_addr(conn);
  return d && d->a == a ? d->channel_id : NULL;
}

static bool addr_has_channel(const aa_addr *d, const json_t *ch) {
  for (size_t i = 0; i < d->nchans; i++)
    if (d->chans[i] == ch)
      return true;
  return false;
}

static void dispatch(wsmsg_conn *c, aa_addr *d, size_t mi, json_t *msg) {
  wsmsg_asyncapi *a = d->a;
  const aa_op *first = NULL;
  for (size_t i = 0; i < a->nops; i++) {
    const aa_op *op = &a->ops[i];
    if (op->send)
      continue;
    for (size_t k = 0; k < op->nmsgs; k++)
      if (op->msgs[k] == mi && addr_has_channel(d, op->channel)) {
        if (!first)
          first = op;
        if (op->cb) {
          op->cb(c, op->id, a->msgs[mi].name, msg, op->user);
          return;
        }
      }
  }
  if (a->def_cb)
    a->def_cb(c, first ? first->id : "", a->msgs[mi].name, msg, a->def_user);
}

static void on_json(wsmsg_conn *c, json_t *msg, void *user) {
  (void)user;
  aa_addr *d = conn_addr(c);
  if (!d || !d->nrx)
    return;
  if (d->field) {
    const char *v = json_string_value(json_object_get(msg, d->field));
    for (size_t i = 0; v && i < d->nrx; i++)
      if (!strcmp(d->values[i], v)) {
        dispatch(c, d, d->rx[i], msg);
        return;
      }
    return;
  }
  if (d->nrx == 1) {
    dispatch(c, d, d->rx[0], msg);
    return;
  }
  /* try each: exactly one must match; else the closest one's errors */
  wsmsg_verrors *errs = c->verrs;
  unsigned fl = c->ep->vflags;
  size_t match = SIZE_MAX, nmatch = 0, best = 0, best_n = SIZE_MAX;
  json_t *winner = NULL;
  for (size_t i = 0; i < d->nrx; i++) {
    const aa_msg *m = &d->a->msgs[d->rx[i]];
    json_t *copy = json_deep_copy(msg);
    if (!copy)
      return;
    int r = m->schema ? wsmsg_schema_validate(m->schema, copy, fl, errs) : 0;
    if (r == 0) {
      if (!nmatch++) {
        match = i;
        winner = copy;
        continue;
      }
    } else if (r == WSMSG_ERR_VALIDATION &&
               wsmsg_verrors_count(errs) < best_n) {
      best_n = wsmsg_verrors_count(errs);
      best = i;
    }
    json_decref(copy);
  }
  if (nmatch == 1) {
    wsmsg_verrors_clear(errs);
    dispatch(c, d, d->rx[match], winner);
    json_decref(winner);
    return;
  }
  json_decref(winner);
  wsmsg_verrors_clear(errs);
  if (nmatch > 1) {
    char *names = NULL;
    wsm_sb sb = {c->mem, NULL, 0, 0, false};
    for (size_t i = 0; i < d->nrx; i++) {
      const aa_msg *m = &d->a->msgs[d->rx[i]];
      json_t *copy = json_deep_copy(msg);
      int r = m->schema && copy
                  ? wsmsg_schema_validate(m->schema, copy, fl, NULL)
                  : 0;
      json_decref(copy);
      if (r == 0) {
        if (sb.n)
          wsm_sb_add(&sb, ", ", 2);
        wsm_sb_add(&sb, m->name, strlen(m->name));
      }
    }
    names = wsm_sb_finish(&sb);
    (void)wsm_verrors_add_in(
        errs, json_pack("[s]", "__root__"), "value_error.ambiguous",
        wsm_asprintf(c->mem, "value matches more than one message (%s)",
                     names ? names : ""),
        NULL, msg);
    wsm_free(c->mem, names);
  } else {
    json_t *copy = json_deep_copy(msg);
    if (copy)
      (void)wsmsg_schema_validate(d->a->msgs[d->rx[best]].schema, copy, fl,
                                  errs);
    json_decref(copy);
  }
  size_t n = json_dumpb(msg, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
  char *text = wsm_malloc(c->mem, n + 1);
  if (text) {
    json_dumpb(msg, text, n, JSON_COMPACT | JSON_ENCODE_ANY);
    text[n] = '\0';
  }
  wsm_json_invalid(c, errs, text ? text : "", text ? n : 0);
  wsm_free(c->mem, text);
}

/* ---- the handshake: template, parameters, bindings.ws ---- */

/* Match `path` against template `t`; on success the values of the
 * parameters (in template order) are appended to vals (decoded). */
static bool match_template(const wsmsg_mem *m, const char *t, const char *p,
                           json_t *vals) {
  while (*t) {
    if (*t == '{') {
      const char *end = strchr(t, '}');
      if (!end)
        return false;
      char stop = end[1];
      const char *s = p;
      while (*p && *p != '/' && *p != stop)
        p++;
      if (p == s)
        return false;
      char *v = wsm_strndup(m, s, (size_t)(p - s));
      if (!v)
        return false;
      size_t o = wsm_pct_decode(v);
      json_t *js = json_stringn(v, o); /* NULL if not UTF-8 */
      wsm_free(m, v);
      if (!js || json_array_append_new(vals, js))
        return false;
      t = end + 1;
      continue;
    }
    if (*t != *p)
      return false;
    t++;
    p++;
  }
  return *p == '\0';
}

static void qs_decode(char *v) {
  /* '+' first: a "%2B" stays a '+' */
  for (char *q = v; *q; q++)
    if (*q == '+')
      *q = ' ';
  wsm_pct_decode(v);
}

/* "a=1&b=x" -> {"a": "1", "b": "x"} (the last of repeated keys wins;
 * pairs that are not UTF-8 are dropped). */
static json_t *parse_query(const wsmsg_mem *m, const char *q) {
  json_t *o = json_object();
  while (o && q && *q) {
    const char *amp = strchr(q, '&');
    size_t n = amp ? (size_t)(amp - q) : strlen(q);
    char *pair = wsm_strndup(m, q, n);
    if (!pair) {
      json_decref(o);
      return NULL;
    }
    char *eq = strchr(pair, '=');
    const char *val = "";
    if (eq) {
      *eq = '\0';
      val = eq + 1;
    }
    qs_decode(pair);
    if (eq)
      qs_decode(eq + 1);
    if (pair[0])
      json_object_set_new(o, pair, json_string(val));
    wsm_free(m, pair);
    q = amp ? amp + 1 : NULL;
  }
  return o;
}

/* Validate `inst` against `s`, appending errors with loc [where, ...] to
 * `detail`. */
static void hs_check(const wsmsg_schema *s, json_t *inst, const char *where,
                     unsigned flags, wsmsg_verrors *e, json_t *detail) {
  if (wsmsg_schema_validate(s, inst, flags, e) != WSMSG_ERR_VALIDATION)
    return;
  json_t *list = wsmsg_verrors_to_json(e);
  size_t i;
  json_t *item;
  json_array_foreach(json_object_get(list, "detail"), i, item) {
    json_t *loc = json_object_get(item, "loc");
    json_t *nl = json_pack("[s]", where);
    if (nl && json_is_array(loc))
      json_array_extend(nl, loc);
    if (nl)
      json_object_set_new(item, "loc", nl);
    json_array_append(detail, item);
  }
  json_decref(list);
}

static int on_handshake(wsmsg_conn *c, const wsmsg_request *req, void *user) {
  (void)user;
  aa_addr *d = conn_addr(c);
  if (!d)
    return 0;
  const wsmsg_mem *m = &d->a->mem;
  json_t *vals = json_array();
  json_t *detail = json_array();
  wsmsg_verrors *e = wsmsg_verrors_new_mem(m);
  int status = 500;
  if (!vals || !detail || !e)
    goto out;
  const char *path = wsmsg_request_path(req);
  if (d->templ && (!path || !match_template(m, d->path, path, vals))) {
    status = 404;
    goto out;
  }
  unsigned fl = (d->a->vflags & WSMSG_VALIDATE_PYDANTIC_V2) |
                WSMSG_VALIDATE_COERCE | WSMSG_VALIDATE_DEFAULTS;
  for (size_t i = 0; i < d->nparams && i < json_array_size(vals); i++) {
    json_t *v = json_array_get(vals, i);
    if (!d->params[i].schema ||
        wsmsg_schema_validate(d->params[i].schema, v, fl, e) !=
            WSMSG_ERR_VALIDATION)
      continue;
    json_t *list = wsmsg_verrors_to_json(e);
    size_t k;
    json_t *item;
    json_array_foreach(json_object_get(list, "detail"), k, item) {
      json_object_set_new(item, "loc",
                          json_pack("[ss]", "path", d->params[i].name));
      json_array_append(detail, item);
    }
    json_decref(list);
  }
  if (d->query) {
    json_t *q = parse_query(m, wsmsg_request_query(req));
    if (q)
      hs_check(d->query, q, "query", fl, e, detail);
    json_decref(q);
  }
  if (d->headers) {
    json_t *h = json_object();
    /* the header names the schema declares (its root properties) */
    json_t *decl = d->headers->doc;
    const char *ref = json_string_value(json_object_get(decl, "$ref"));
    json_t *hs = ref ? ptr_get(m, decl, ref + 1) : decl;
    json_t *hp = json_object_get(hs, "properties");
    const char *k;
    json_t *v;
    json_object_foreach(hp, k, v) {
      const char *val = wsmsg_request_header(req, k);
      if (val && h)
        json_object_set_new(h, k, json_string(val));
    }
    if (h)
      hs_check(d->headers, h, "header", fl, e, detail);
    json_decref(h);
  }
  status = json_array_size(detail) ? 400 : 0;
  if (status) {
    json_t *body =
        json_pack("{s:s, s:O}", "error", "validation_error", "detail", detail);
    char buf[4096];
    size_t n = body ? json_dumpb(body, buf, sizeof(buf), JSON_COMPACT) : 0;
    if (n && n <= sizeof(buf))
      (void)wsmsg_http_respond(c, 400, "Content-Type: application/json\r\n",
                               buf, n);
    json_decref(body);
  }
out:
  json_decref(vals);
  json_decref(detail);
  wsmsg_verrors_free(e);
  return status;
}

/* ---- serving ---- */

static const char *str_at(const json_t *o, const char *k) {
  return json_string_value(json_object_get(o, k));
}

static bool ws_protocol(const json_t *server) {
  const char *p = str_at(server, "protocol");
  return p && (!strcmp(p, "ws") || !strcmp(p, "wss"));
}

static char *join_path(const wsmsg_mem *m, const char *pathname,
                       const char *address) {
  wsm_sb sb = {m, NULL, 0, 0, false};
  size_t pn = pathname ? strlen(pathname) : 0;
  while (pn && pathname[pn - 1] == '/')
    pn--;
  if (pn && pathname[0] != '/')
    wsm_sb_add(&sb, "/", 1);
  wsm_sb_add(&sb, pathname ? pathname : "", pn);
  if (address[0] != '/')
    wsm_sb_add(&sb, "/", 1);
  wsm_sb_add(&sb, address, strlen(address));
  return wsm_sb_finish(&sb);
}

static aa_addr *addr_for(wsmsg_asyncapi *a, const char *path) {
  for (size_t i = 0; i < a->naddrs; i++)
    if (!strcmp(a->addrs[i].path, path))
      return &a->addrs[i];
  aa_addr *arr = wsm_realloc(&a->mem, a->addrs, a->naddrs * sizeof(*arr),
                             (a->naddrs + 1) * sizeof(*arr));
  if (!arr)
    return NULL;
  a->addrs = arr;
  aa_addr *d = &a->addrs[a->naddrs];
  memset(d, 0, sizeof(*d));
  d->a = a;
  d->path = wsm_strdup(&a->mem, path);
  if (!d->path)
    return NULL;
  a->naddrs++;
  return d;
}

static bool push_size(const wsmsg_mem *m, size_t **arr, size_t *n, size_t v) {
  for (size_t i = 0; i < *n; i++)
    if ((*arr)[i] == v)
      return true;
  size_t *p =
      wsm_realloc(m, *arr, *n * sizeof(size_t), (*n + 1) * sizeof(size_t));
  if (!p)
    return false;
  p[(*n)++] = v;
  *arr = p;
  return true;
}

static bool channel_on_server(wsmsg_asyncapi *a, json_t *ch,
                              const json_t *server) {
  json_t *list = json_object_get(ch, "servers");
  if (!json_is_array(list) || !json_array_size(list))
    return true;
  size_t i;
  json_t *v;
  json_array_foreach(list, i, v) if (deref(a, v, NULL) == server) return true;
  return false;
}

/* The payload of message `m` with refs followed (NULL if none). */
static json_t *payload_of(wsmsg_asyncapi *a, const aa_msg *m) {
  json_t *pl = deref(a, json_object_get(m->obj, "payload"), NULL);
  if (json_is_string(json_object_get(pl, "schemaFormat")))
    pl = deref(a, json_object_get(pl, "schema"), NULL);
  return json_is_object(pl) ? pl : NULL;
}

/* The string a property schema pins (const, or an enum of one). */
static const char *pinned(wsmsg_asyncapi *a, json_t *prop) {
  prop = deref(a, prop, NULL);
  json_t *c = json_object_get(prop, "const");
  if (json_is_string(c))
    return json_string_value(c);
  json_t *e = json_object_get(prop, "enum");
  if (json_is_array(e) && json_array_size(e) == 1 &&
      json_is_string(json_array_get(e, 0)))
    return json_string_value(json_array_get(e, 0));
  return NULL;
}

/* The property schema of `field` in payload `pl` (its "properties", or
 * those of its allOf members). */
static json_t *prop_of(wsmsg_asyncapi *a, json_t *pl, const char *field,
                       int depth) {
  if (!pl || depth > 8)
    return NULL;
  json_t *p = json_object_get(json_object_get(pl, "properties"), field);
  if (p)
    return p;
  size_t i;
  json_t *s;
  json_array_foreach(json_object_get(pl, "allOf"), i, s) {
    p = prop_of(a, deref(a, s, NULL), field, depth + 1);
    if (p)
      return p;
  }
  return NULL;
}

/* Values of `field` for every receive message of d (all pinned and
 * distinct), else false.  explicit_: use the message name when the
 * property is not pinned. */
static bool field_values(wsmsg_asyncapi *a, aa_addr *d, const char *field,
                         bool explicit_, const char **vals) {
  for (size_t i = 0; i < d->nrx; i++) {
    const aa_msg *m = &a->msgs[d->rx[i]];
    json_t *pl = payload_of(a, m);
    const char *v = pinned(a, prop_of(a, pl, field, 0));
    if (!v && explicit_)
      v = m->name;
    if (!v)
      return false;
    for (size_t k = 0; k < i; k++)
      if (!strcmp(vals[k], v))
        return false;
    vals[i] = v;
  }
  return true;
}

/* Choose how the receive messages of d are told apart. */
static int discriminate(wsmsg_asyncapi *a, aa_addr *d) {
  const char **vals = wsm_calloc(&a->mem, d->nrx * sizeof(char *));
  if (!vals)
    return fail(a, WSMSG_ERR_NOMEM, "out of memory");
  const char *field = NULL;
  /* explicit: every payload names the same "discriminator" */
  const char *ex = NULL;
  bool all = true;
  for (size_t i = 0; i < d->nrx && all; i++) {
    const char *f = str_at(payload_of(a, &a->msgs[d->rx[i]]), "discriminator");
    if (!f || (ex && strcmp(ex, f)))
      all = false;
    ex = f;
  }
  if (all && ex && field_values(a, d, ex, true, vals)) {
    field = ex;
  } else {
    json_t *pl0 = payload_of(a, &a->msgs[d->rx[0]]);
    json_t *props = json_object_get(pl0, "properties");
    const char *k;
    json_t *v;
    json_object_foreach(props, k, v) {
      if (field_values(a, d, k, false, vals)) {
        field = k;
        break;
      }
    }
    if (!field) {
      /* inside allOf members */
      size_t i;
      json_t *s;
      json_array_foreach(json_object_get(pl0, "allOf"), i, s) {
        json_object_foreach(json_object_get(deref(a, s, NULL), "properties"), k,
                            v) {
          if (field_values(a, d, k, false, vals)) {
            field = k;
            break;
          }
        }
        if (field)
          break;
      }
    }
  }
  int rc = 0;
  if (field) {
    d->field = wsm_strdup(&a->mem, field);
    d->values = wsm_calloc(&a->mem, d->nrx * sizeof(char *));
    if (!d->field || !d->values)
      rc = fail(a, WSMSG_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < d->nrx; i++)
      if (!(d->values[i] = wsm_strdup(&a->mem, vals[i])))
        rc = fail(a, WSMSG_ERR_NOMEM, "out of memory");
    if (!rc)
      note(a, "%s: %zu messages told apart by \"%s\"%s", d->path, d->nrx, field,
           field == ex ? " (explicit discriminator)" : " (inferred)");
  } else {
    note(a, "%s: %zu messages without a discriminator: each is tried", d->path,
         d->nrx);
  }
  wsm_free(&a->mem, vals);
  return rc;
}

static int build_params(wsmsg_asyncapi *a, aa_addr *d, const char *chptr) {
  /* the parameter names, in template order */
  for (const char *t = strchr(d->path, '{'); t; t = strchr(t + 1, '{')) {
    const char *end = strchr(t, '}');
    if (!end)
      return fail(a, WSMSG_ERR_SCHEMA, "%s: unterminated {parameter}", d->path);
    aa_param *p = wsm_realloc(&a->mem, d->params, d->nparams * sizeof(*p),
                              (d->nparams + 1) * sizeof(*p));
    if (!p)
      return fail(a, WSMSG_ERR_NOMEM, "out of memory");
    d->params = p;
    aa_param *pr = &d->params[d->nparams++];
    memset(pr, 0, sizeof(*pr));
    pr->name = wsm_strndup(&a->mem, t + 1, (size_t)(end - t - 1));
    if (!pr->name)
      return fail(a, WSMSG_ERR_NOMEM, "out of memory");
    json_t *def = deref(
        a, json_object_get(json_object_get(d->channel, "parameters"), pr->name),
        NULL);
    json_t *s = json_pack("{s:s}", "type", "string");
    if (!s)
      return fail(a, WSMSG_ERR_NOMEM, "out of memory");
    if (json_object_get(def, "enum"))
      json_object_set(s, "enum", json_object_get(def, "enum"));
    /* AsyncAPI 3 parameters have no "pattern": the extension x-pattern */
    json_t *pat = json_object_get(def, "x-pattern");
    if (json_is_string(pat))
      json_object_set(s, "pattern", pat);
    char err[256];
    int rc = wsmsg_schema_compile_json_mem(s, WSMSG_SCHEMA_DRAFT7, &a->mem,
                                           &pr->schema, err, sizeof(err));
    json_decref(s);
    if (rc)
      return fail(a, rc, "%s/parameters/%s: %s", chptr, pr->name, err);
  }
  return 0;
}

static int build_addr(wsmsg_asyncapi *a, aa_addr *d, wsmsg_server *srv) {
  const char *chk = channel_key(a, d->channel);
  d->channel_id = wsm_strdup(&a->mem, chk ? chk : "");
  char *chptr = ptr_join(&a->mem, "/channels", chk ? chk : "");
  if (!d->channel_id || !chptr) {
    wsm_free(&a->mem, chptr);
    return fail(a, WSMSG_ERR_NOMEM, "out of memory");
  }
  int rc = 0;
  /* receive messages of every channel on this address */
  for (size_t i = 0; !rc && i < a->nops; i++) {
    const aa_op *op = &a->ops[i];
    if (op->send || !addr_has_channel(d, op->channel))
      continue;
    for (size_t k = 0; !rc && k < op->nmsgs; k++) {
      const aa_msg *m = &a->msgs[op->msgs[k]];
      if (m->unsupported)
        rc = fail(a, WSMSG_ERR_UNSUPPORTED, "%s", m->unsupported);
      else if (!push_size(&a->mem, &d->rx, &d->nrx, op->msgs[k]))
        rc = fail(a, WSMSG_ERR_NOMEM, "out of memory");
    }
  }
  d->templ = strchr(d->path, '{') != NULL;
  if (!rc && d->templ)
    rc = build_params(a, d, chptr);
  if (!rc) {
    size_t n = d->templ ? (size_t)(strchr(d->path, '{') - d->path) : 0;
    d->route = d->templ ? wsm_asprintf(&a->mem, "%.*s*", (int)n, d->path)
                        : wsm_strdup(&a->mem, d->path);
    if (!d->route)
      rc = fail(a, WSMSG_ERR_NOMEM, "out of memory");
  }
  /* bindings.ws */
  json_t *ws =
      deref(a,
            json_object_get(
                deref(a, json_object_get(d->channel, "bindings"), NULL), "ws"),
            NULL);
  if (!rc && json_object_get(ws, "query")) {
    char *bp = wsm_asprintf(&a->mem, "%s/bindings/ws", chptr);
    rc = bp ? compile_at(a, bp, "/query", WSMSG_SCHEMA_DRAFT7, &d->query)
            : fail(a, WSMSG_ERR_NOMEM, "out of memory");
    wsm_free(&a->mem, bp);
  }
  if (!rc && json_object_get(ws, "headers")) {
    char *bp = wsm_asprintf(&a->mem, "%s/bindings/ws", chptr);
    rc = bp ? compile_at(a, bp, "/headers", WSMSG_SCHEMA_DRAFT7, &d->headers)
            : fail(a, WSMSG_ERR_NOMEM, "out of memory");
    wsm_free(&a->mem, bp);
  }
  wsm_free(&a->mem, chptr);
  if (rc)
    return rc;
  if (d->nrx > 1)
    rc = discriminate(a, d);
  if (rc)
    return rc;
  if (!d->nrx)
    note(a, "%s: no receive operation: incoming messages are dropped", d->path);
  d->ep = wsmsg_endpoint_new_mem(&a->mem);
  if (!d->ep)
    return fail(a, WSMSG_ERR_NOMEM, "out of memory");
  d->ep->owner = d;
  wsmsg_endpoint *ep = d->ep;
  rc = wsmsg_endpoint_on_json(ep, on_json);
  if (!rc)
    rc = wsmsg_endpoint_set_validation(ep, a->vflags);
  if (!rc && d->nrx == 1 && a->msgs[d->rx[0]].schema)
    rc = wsmsg_endpoint_set_schema(ep, a->msgs[d->rx[0]].schema);
  for (size_t i = 0; !rc && d->field && i < d->nrx; i++)
    rc = wsmsg_endpoint_route_json(ep, d->field, d->values[i],
                                   a->msgs[d->rx[i]].schema, on_json);
  if (!rc && (d->templ || d->query || d->headers))
    rc = wsmsg_endpoint_on_handshake(ep, on_handshake);
  if (rc)
    return fail(a, rc, "%s: configuring its endpoint: %s", d->path,
                wsmsg_strerror(rc));
  if (a->ep_cb)
    a->ep_cb(ep, d->path, a->ep_user);
  for (size_t i = 0; i < a->naddrs && &a->addrs[i] != d; i++)
    if (a->addrs[i].route && !strcmp(a->addrs[i].route, d->route))
      return fail(a, WSMSG_ERR_UNSUPPORTED,
                  "%s and %s route to the same prefix %s (templates that "
                  "share their literal prefix are not supported)",
                  a->addrs[i].path, d->path, d->route);
  rc = wsmsg_server_route(srv, d->route, ep);
  if (rc)
    return fail(a, rc, "routing %s: %s", d->route, wsmsg_strerror(rc));
  return 0;
}

static int serve_impl(wsmsg_asyncapi *a, wsmsg_server *srv,
                      const char *server_name);

int wsmsg_asyncapi_serve(wsmsg_asyncapi *a, wsmsg_server *srv,
                         const char *server_name) {
  if (!a || !srv)
    return WSMSG_ERR_INVALID_ARG;
  if (!a->loaded || !a->doc || a->served)
    return WSMSG_ERR_STATE;
  a->served = true;
  a->detail[0] = '\0';
  int rc = serve_impl(a, srv, server_name);
  if (rc && !a->detail[0]) /* every failure says why */
    fail(a, rc, "%s", wsmsg_strerror(rc));
  return rc;
}

static int serve_impl(wsmsg_asyncapi *a, wsmsg_server *srv,
                      const char *server_name) {
  json_t *servers = json_object_get(a->doc, "servers");
  const json_t *chosen[64];
  size_t nchosen = 0;
  if (server_name) {
    json_t *s = deref(a, json_object_get(servers, server_name), NULL);
    if (!s)
      return fail(a, WSMSG_ERR_NOT_FOUND, "no server \"%s\"", server_name);
    if (!ws_protocol(s))
      return fail(a, WSMSG_ERR_UNSUPPORTED,
                  "server \"%s\" speaks %s, not ws or wss", server_name,
                  str_at(s, "protocol") ? str_at(s, "protocol") : "?");
    chosen[nchosen++] = s;
  } else {
    const char *k;
    json_t *v;
    json_object_foreach(servers, k, v) {
      json_t *s = deref(a, v, NULL);
      if (s && ws_protocol(s) && nchosen < 64)
        chosen[nchosen++] = s;
      else if (s)
        note(a, "server %s: protocol %s is not ws/wss: not served", k,
             str_at(s, "protocol") ? str_at(s, "protocol") : "?");
    }
    if (json_object_size(servers) && !nchosen)
      return fail(a, WSMSG_ERR_NOT_FOUND,
                  "the document has no ws or wss server");
    if (!nchosen)
      note(a, "the document has no servers: every channel is served");
  }
  size_t passes = nchosen ? nchosen : 1;
  json_t *chans = json_object_get(a->doc, "channels");
  const char *k;
  json_t *v;
  json_object_foreach(chans, k, v) {
    json_t *ch = deref(a, v, NULL);
    if (!ch)
      return a->detail[0]
                 ? WSMSG_ERR_SCHEMA
                 : fail(a, WSMSG_ERR_SCHEMA, "channel %s: not a channel", k);
    const char *address = str_at(ch, "address");
    if (!address) {
      note(a, "channel %s: no address: skipped", k);
      continue;
    }
    for (size_t s = 0; s < passes; s++) {
      const json_t *server = nchosen ? chosen[s] : NULL;
      if (server && !channel_on_server(a, ch, server))
        continue;
      char *path = join_path(
          &a->mem, server ? str_at(server, "pathname") : NULL, address);
      aa_addr *d = path ? addr_for(a, path) : NULL;
      wsm_free(&a->mem, path);
      if (!d)
        return fail(a, WSMSG_ERR_NOMEM, "out of memory");
      if (!d->channel)
        d->channel = ch;
      const json_t **cl =
          wsm_realloc(&a->mem, d->chans, d->nchans * sizeof(*cl),
                      (d->nchans + 1) * sizeof(*cl));
      if (!cl)
        return fail(a, WSMSG_ERR_NOMEM, "out of memory");
      d->chans = cl;
      d->chans[d->nchans++] = ch;
    }
  }
  for (size_t i = 0; i < a->naddrs; i++) {
    int rc = build_addr(a, &a->addrs[i], srv);
    if (rc)
      return rc;
  }
  if (!a->naddrs)
    note(a, "no channel is served");
  return 0;
}

/* ---- sending ---- */

int wsmsg_asyncapi_send(wsmsg_asyncapi *a, wsmsg_conn *conn,
                        const char *operation, const json_t *msg,
                        wsmsg_verrors *errors) {
  if (errors)
    wsmsg_verrors_clear(errors);
  if (!a || !operation || !msg)
    return WSMSG_ERR_INVALID_ARG;
  const aa_op *op = NULL;
  for (size_t i = 0; i < a->nops && !op; i++)
    if (!strcmp(a->ops[i].id, operation))
      op = &a->ops[i];
  if (!op)
    return WSMSG_ERR_NOT_FOUND;
  const size_t *list = op->send ? op->msgs : op->reply;
  size_t n = op->send ? op->nmsgs : op->nreply;
  if (!op->send && !op->reply)
    return WSMSG_ERR_INVALID_ARG;
  bool ok = n == 0;
  size_t best = SIZE_MAX, best_n = SIZE_MAX;
  for (size_t i = 0; i < n && !ok; i++) {
    const aa_msg *m = &a->msgs[list[i]];
    if (!m->schema) {
      ok = true;
      break;
    }
    json_t *copy = json_deep_copy(msg);
    if (!copy)
      return WSMSG_ERR_NOMEM;
    int r =
        wsmsg_schema_validate(m->schema, copy, WSMSG_VALIDATE_STRICT, errors);
    json_decref(copy);
    if (r == 0)
      ok = true;
    else if (r != WSMSG_ERR_VALIDATION)
      return r;
    else if (errors && wsmsg_verrors_count(errors) < best_n) {
      best_n = wsmsg_verrors_count(errors);
      best = i;
    }
  }
  if (!ok) {
    if (errors && best != SIZE_MAX && best + 1 != n) {
      json_t *copy = json_deep_copy(msg);
      if (copy)
        (void)wsmsg_schema_validate(a->msgs[list[best]].schema, copy,
                                    WSMSG_VALIDATE_STRICT, errors);
      json_decref(copy);
    }
    return WSMSG_ERR_VALIDATION;
  }
  if (errors)
    wsmsg_verrors_clear(errors);
  return conn ? wsmsg_send_json(conn, msg) : 0;
}
