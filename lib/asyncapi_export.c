/* A configured server described as an AsyncAPI 3.0.0 document
 * (wsmsg_server_asyncapi; docs/asyncapi.md, "Describing a server").
 *
 * Every route is a channel (a prefix route's rest becomes the parameter
 * {path}); its endpoint's messages are the channel's messages: one per
 * discriminator route (the endpoint's schema, the route's and the
 * discriminator's const, under allOf), else the endpoint's schema (JSON
 * endpoints) or a string (text).  Schemas are embedded in the message
 * payloads with their "#..." refs rewritten to point at where they now
 * live; a 2020-12 schema makes its payload a Multi Format Schema Object. */
#include "internal.h"
#include "schema_internal.h"

#include <stdio.h>
#include <string.h>

/* A key the AsyncAPI schema accepts ([A-Za-z0-9_-]), unique in `in`. */
static char *key_for(const wsmsg_mem *m, const char *raw, const json_t *in) {
  size_t n = strlen(raw);
  char *k = wsm_malloc(m, n + 16);
  if (!k)
    return NULL;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    char ch = raw[i];
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
    if (ok)
      k[o++] = ch;
    else if (o && k[o - 1] != '_')
      k[o++] = '_';
  }
  while (o && k[o - 1] == '_')
    o--;
  if (!o) {
    memcpy(k, "root", 4);
    o = 4;
  }
  k[o] = '\0';
  for (int i = 2; json_object_get(in, k) && i < 1000000; i++)
    snprintf(k + o, 16, "_%d", i);
  return k;
}

/* Rewrite "#..." refs in `j` to `base` + the fragment. */
static bool rewrite_refs(const wsmsg_mem *m, json_t *j, const char *base,
                         int depth) {
  if (depth > 128)
    return true;
  if (json_is_array(j)) {
    size_t i;
    json_t *v;
    json_array_foreach(
        j, i, v) if (!rewrite_refs(m, v, base, depth + 1)) return false;
    return true;
  }
  if (!json_is_object(j))
    return true;
  const char *k;
  json_t *v;
  json_object_foreach(j, k, v) {
    if (!strcmp(k, "const") || !strcmp(k, "enum") || !strcmp(k, "default") ||
        !strcmp(k, "examples"))
      continue; /* values, not schemas */
    if (!strcmp(k, "$ref") && json_is_string(v) &&
        json_string_value(v)[0] == '#') {
      char *r = wsm_asprintf(m, "%s%s", base, json_string_value(v) + 1);
      if (!r || json_string_set(v, r)) {
        wsm_free(m, r);
        return false;
      }
      wsm_free(m, r);
    } else if (!rewrite_refs(m, v, base, depth + 1)) {
      return false;
    }
  }
  return true;
}

/* JSON pointer escaping of a key ("~" "/"), percent-encoding '%'. */
static void ptr_key(wsm_sb *sb, const char *k) {
  wsm_sb_addc(sb, '/');
  for (; *k; k++) {
    if (*k == '~')
      wsm_sb_adds(sb, "~0");
    else if (*k == '/')
      wsm_sb_adds(sb, "~1");
    else if (*k == '%')
      wsm_sb_adds(sb, "%25");
    else
      wsm_sb_addc(sb, *k);
  }
}

typedef struct part {
  const wsmsg_schema *s; /* or NULL: the discriminator's const */
} part;

/* The payload of a message at #/channels/<ch>/messages/<msg>. */
static json_t *payload(const wsmsg_mem *m, const char *ch, const char *msg,
                       const wsmsg_schema *const *schemas, size_t ns,
                       const char *field, const char *value) {
  bool v2020 = false;
  for (size_t i = 0; i < ns; i++)
    if (schemas[i]->dialect == WSM_D2020)
      v2020 = true;
  size_t nparts = ns + (field ? 1 : 0);
  if (!nparts)
    return json_object(); /* anything */
  wsm_sb sb = {m, NULL, 0, 0, false};
  wsm_sb_adds(&sb, "#/channels");
  ptr_key(&sb, ch);
  wsm_sb_adds(&sb, "/messages");
  ptr_key(&sb, msg);
  wsm_sb_adds(&sb, v2020 ? "/payload/schema" : "/payload");
  size_t base_len = sb.n;
  json_t *all = json_array();
  for (size_t i = 0; all && i < ns; i++) {
    json_t *c = json_deep_copy(schemas[i]->doc);
    if (!c)
      break;
    if (json_is_object(c)) {
      json_object_del(c, "$schema");
      json_object_del(c, "$id");
    }
    sb.n = base_len;
    if (nparts > 1) {
      char ix[32];
      snprintf(ix, sizeof(ix), "/allOf/%zu", i);
      wsm_sb_adds(&sb, ix);
    }
    if (sb.oom || !rewrite_refs(m, c, sb.p, 0)) {
      json_decref(c);
      break;
    }
    json_array_append_new(all, c);
  }
  wsm_free(m, sb.p);
  if (!all || json_array_size(all) != ns) {
    json_decref(all);
    return NULL;
  }
  if (field) {
    json_t *props = json_object();
    json_t *c = json_pack("{s:s, s:[s], s:o}", "type", "object", "required",
                          field, "properties", props);
    if (!c || json_object_set_new(
                  props, field,
                  json_pack("{s:s, s:s}", "type", "string", "const", value))) {
      json_decref(c);
      json_decref(all);
      return NULL;
    }
    json_array_append_new(all, c);
  }
  json_t *schema;
  if (json_array_size(all) == 1)
    schema = json_incref(json_array_get(all, 0));
  else
    schema = json_pack("{s:O}", "allOf", all);
  json_decref(all);
  if (!schema || !v2020)
    return schema;
  return json_pack("{s:s, s:o}", "schemaFormat",
                   "application/schema+json;version=2020-12", "schema", schema);
}

static json_t *messages_of(const wsmsg_mem *m, const wsmsg_endpoint *ep,
                           const char *ch) {
  json_t *msgs = json_object();
  if (!msgs)
    return NULL;
  if (!ep->json) {
    json_t *msg = json_pack("{s:s, s:{s:s}}", "contentType", "text/plain",
                            "payload", "type", "string");
    if (!msg || json_object_set_new(msgs, "text", msg)) {
      json_decref(msgs);
      return NULL;
    }
    return msgs;
  }
  size_t n = ep->njroutes ? ep->njroutes : 1;
  for (size_t i = 0; i < n; i++) {
    const wsm_jroute *r = ep->njroutes ? &ep->jroutes[i] : NULL;
    char *key = key_for(m, r ? r->value : "message", msgs);
    const wsmsg_schema *schemas[2];
    size_t ns = 0;
    if (ep->schema)
      schemas[ns++] = ep->schema;
    if (r && r->schema)
      schemas[ns++] = r->schema;
    json_t *pl = key ? payload(m, ch, key, schemas, ns,
                               r ? ep->route_field : NULL, r ? r->value : NULL)
                     : NULL;
    json_t *msg = pl ? json_pack("{s:s, s:o}", "contentType",
                                 "application/json", "payload", pl)
                     : NULL;
    if (msg && r)
      json_object_set_new(msg, "name", json_string(r->value));
    if (!msg || json_object_set_new(msgs, key, msg)) {
      wsm_free(m, key);
      json_decref(msgs);
      return NULL;
    }
    wsm_free(m, key);
  }
  return msgs;
}

json_t *wsmsg_server_asyncapi(const wsmsg_server *srv, const json_t *info) {
  if (!srv)
    return NULL;
  const wsmsg_mem *m = &srv->mem;
  json_t *inf = json_is_object(info)
                    ? json_deep_copy(info)
                    : json_pack("{s:s, s:s}", "title", "wsmsg server",
                                "version", WSMSG_VERSION_STRING);
  json_t *doc = inf ? json_pack("{s:s, s:o, s:{}, s:{}}", "asyncapi", "3.0.0",
                                "info", inf, "channels", "operations")
                    : NULL;
  if (!doc)
    return NULL;
  json_t *chans = json_object_get(doc, "channels");
  json_t *ops = json_object_get(doc, "operations");
  for (size_t i = 0; i < srv->nroutes; i++) {
    const wsm_route *r = &srv->routes[i];
    char *addr = r->prefix ? wsm_asprintf(m, "%.*s{path}", (int)r->len, r->path)
                           : wsm_strdup(m, r->path);
    char *ck = addr ? key_for(m, r->prefix ? addr : r->path, chans) : NULL;
    json_t *msgs = ck ? messages_of(m, r->ep, ck) : NULL;
    json_t *ch =
        msgs ? json_pack("{s:s, s:o}", "address", addr, "messages", msgs)
             : NULL;
    bool ok = ch != NULL;
    if (ok && r->prefix)
      ok = json_object_set_new(ch, "parameters",
                               json_pack("{s:{s:s}}", "path", "description",
                                         "the rest of the request path")) == 0;
    if (ok)
      ok = json_object_set_new(chans, ck, ch) == 0;
    else
      json_decref(ch);
    /* one receive operation with every message of the channel */
    json_t *list = ok ? json_array() : NULL;
    const char *mk;
    json_t *mv;
    json_object_foreach(msgs, mk, mv) {
      wsm_sb sb = {m, NULL, 0, 0, false};
      wsm_sb_adds(&sb, "#/channels");
      ptr_key(&sb, ck);
      wsm_sb_adds(&sb, "/messages");
      ptr_key(&sb, mk);
      char *ref = wsm_sb_finish(&sb);
      if (!ref || !list ||
          json_array_append_new(list, json_pack("{s:s}", "$ref", ref)))
        ok = false;
      wsm_free(m, ref);
    }
    char *chref = ck ? wsm_asprintf(m, "#/channels/%s", ck) : NULL;
    char *opk = ck ? wsm_asprintf(m, "receive_%s", ck) : NULL;
    json_t *op = ok && chref && opk
                     ? json_pack("{s:s, s:{s:s}, s:o}", "action", "receive",
                                 "channel", "$ref", chref, "messages", list)
                     : NULL;
    if (!op)
      json_decref(list);
    if (!op || json_object_set_new(ops, opk, op))
      ok = false;
    wsm_free(m, chref);
    wsm_free(m, opk);
    wsm_free(m, ck);
    wsm_free(m, addr);
    if (!ok) {
      json_decref(doc);
      return NULL;
    }
  }
  return doc;
}
