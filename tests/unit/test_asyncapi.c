/* AsyncAPI documents: YAML loading, validation against the official
 * schemas (../shared/data/asyncapi/schemas), $refs, serving channels with
 * discriminators, parameters and bindings, sending, describing a server. */
#include "pair.h"

#include <dirent.h>

#define SCHEMAS "../shared/data/asyncapi/schemas"
#define EXAMPLES "../shared/data/asyncapi/examples"

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *p = malloc((size_t)n + 1);
  size_t got = fread(p, 1, (size_t)n, f);
  fclose(f);
  p[got] = 0;
  *len = got;
  return p;
}

static json_t *yaml(const char *text) {
  char err[256];
  json_t *j = wsmsg_yaml_loads(text, strlen(text), err, sizeof(err));
  if (!j)
    fprintf(stderr, "yaml: %s\n", err);
  return j;
}

static void yaml_fails(const char *text, const char *needle) {
  char err[256] = "";
  json_t *j = wsmsg_yaml_loads(text, strlen(text), err, sizeof(err));
  assert_null(j);
  if (!strstr(err, needle))
    fail_msg("error \"%s\" lacks \"%s\"", err, needle);
}

/* ---- YAML ---- */

static void test_yaml_core_schema(void **state) {
  (void)state;
  json_t *j = yaml("a: '1.8.0'\n"
                   "b: 1.8.0\n"
                   "c: on\n"
                   "d: yes\n"
                   "e: 12\n"
                   "f: -1.5e3\n"
                   "g: ~\n"
                   "h: true\n"
                   "i: 0x1F\n"
                   "j: 0o17\n"
                   "k: \"true\"\n"
                   "l: !!str 12\n"
                   "m: 1.0\n"
                   "n:\n"
                   "o: NO\n"
                   "p: 12345678901234567890123\n"
                   "q: 010\n");
  assert_non_null(j);
  assert_string_equal(json_string_value(json_object_get(j, "a")), "1.8.0");
  assert_string_equal(json_string_value(json_object_get(j, "b")), "1.8.0");
  assert_string_equal(json_string_value(json_object_get(j, "c")), "on");
  assert_string_equal(json_string_value(json_object_get(j, "d")), "yes");
  assert_int_equal(json_integer_value(json_object_get(j, "e")), 12);
  assert_true(json_is_real(json_object_get(j, "f")));
  assert_true(json_real_value(json_object_get(j, "f")) == -1500.0);
  assert_true(json_is_null(json_object_get(j, "g")));
  assert_true(json_is_true(json_object_get(j, "h")));
  assert_int_equal(json_integer_value(json_object_get(j, "i")), 31);
  assert_int_equal(json_integer_value(json_object_get(j, "j")), 15);
  assert_string_equal(json_string_value(json_object_get(j, "k")), "true");
  assert_string_equal(json_string_value(json_object_get(j, "l")), "12");
  assert_true(json_is_real(json_object_get(j, "m")));
  assert_true(json_is_null(json_object_get(j, "n")));
  assert_string_equal(json_string_value(json_object_get(j, "o")), "NO");
  assert_true(json_is_real(json_object_get(j, "p")));
  assert_int_equal(json_integer_value(json_object_get(j, "q")), 10);
  json_decref(j);
}

static void test_yaml_blocks_anchors_merge(void **state) {
  (void)state;
  json_t *j = yaml("lit: |\n"
                   "  one\n"
                   "  two\n"
                   "fold: >\n"
                   "  one\n"
                   "  two\n"
                   "base: &b\n"
                   "  x: 1\n"
                   "  y: 2\n"
                   "other: &o {z: 3, x: 9}\n"
                   "derived:\n"
                   "  <<: [*b, *o]\n"
                   "  y: 20\n"
                   "alias: *b\n"
                   "list: [a, 'b', \"c\"]\n");
  assert_non_null(j);
  assert_string_equal(json_string_value(json_object_get(j, "lit")),
                      "one\ntwo\n");
  assert_string_equal(json_string_value(json_object_get(j, "fold")),
                      "one two\n");
  json_t *d = json_object_get(j, "derived");
  assert_int_equal(json_integer_value(json_object_get(d, "x")), 1);
  assert_int_equal(json_integer_value(json_object_get(d, "y")), 20);
  assert_int_equal(json_integer_value(json_object_get(d, "z")), 3);
  assert_null(json_object_get(d, "<<"));
  assert_int_equal(
      json_integer_value(json_object_get(json_object_get(j, "alias"), "y")), 2);
  assert_int_equal(json_array_size(json_object_get(j, "list")), 3);
  json_decref(j);
}

static void test_yaml_refused(void **state) {
  (void)state;
  yaml_fails("a: 1\na: 2\n", "duplicate key");
  yaml_fails("a: .inf\n", "not a JSON number");
  yaml_fails("a: *nope\n", "unknown anchor");
  yaml_fails("? [a]\n: 1\n", "keys must be scalars");
  yaml_fails("a: 1\n---\nb: 2\n", "more than one document");
  yaml_fails("a: [1, 2\n", "YAML line");
  yaml_fails("a: !!int x\n", "not a valid !!int");
  yaml_fails("a: <<\n<<: 3\n", "merge key");
  /* billion laughs: 10 levels of 10 aliases = 10^10 nodes once expanded */
  char big[4096];
  size_t n =
      (size_t)snprintf(big, sizeof(big), "l0: &l0 [x,x,x,x,x,x,x,x,x,x]\n");
  for (int i = 1; i < 10; i++)
    n += (size_t)snprintf(big + n, sizeof(big) - n,
                          "l%d: &l%d [*l%d,*l%d,*l%d,*l%d,*l%d,*l%d,*l%d,*l%d,"
                          "*l%d,*l%d]\n",
                          i, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1,
                          i - 1, i - 1, i - 1);
  yaml_fails(big, "too large");
  /* nesting */
  char deep[2100];
  memset(deep, '[', 2000);
  deep[2000] = 0;
  yaml_fails(deep, "nesting deeper");
  assert_null(wsmsg_yaml_loads(NULL, 0, NULL, 0));
  /* an empty stream is null */
  json_t *j = wsmsg_yaml_loads("", 0, NULL, 0);
  assert_true(json_is_null(j));
  json_decref(j);
}

/* "k: &k <4000 bytes>" and a list of `copies` mappings keyed by *k, in
 * `t` (room for 20,000 copies). */
static const char *key_aliases(char *t, int copies) {
  size_t n = (size_t)sprintf(t, "k: &k ");
  memset(t + n, 'y', 4000);
  n += 4000;
  n += (size_t)sprintf(t + n, "\nl:\n");
  for (int i = 0; i < copies; i++)
    n += (size_t)sprintf(t + n, "- {*k : 1}\n");
  return t;
}

/* Text counts too: one long string behind a million aliases is a few KB
 * of YAML and gigabytes of JSON (fuzz_asyncapi's json_dumps ran out of
 * memory on it), and a key alias is copied, not shared. */
static void test_yaml_text_bombs(void **state) {
  (void)state;
  char *t = malloc(300000);
  assert_non_null(t);
  /* 3000 bytes x 10^6 aliases, 3.2 KB of input */
  size_t n = (size_t)sprintf(t, "a: &a ");
  memset(t + n, 'x', 3000);
  n += 3000;
  t[n++] = '\n';
  const char *names = "abcdefg";
  for (int i = 1; i < 7; i++) {
    n += (size_t)sprintf(t + n, "%c: &%c [", names[i], names[i]);
    for (int k = 0; k < 10; k++)
      n += (size_t)sprintf(t + n, "%s*%c", k ? "," : "", names[i - 1]);
    n += (size_t)sprintf(t + n, "]\n");
  }
  yaml_fails(t, "too large");
  /* 20,000 copies of a 4000-byte key: 80 MB of keys from 250 KB */
  yaml_fails(key_aliases(t, 20000), "too large");
  /* the same key behind 1,000 aliases is 4 MB: loaded */
  key_aliases(t, 1000);
  json_t *j = yaml(t);
  assert_int_equal(json_array_size(json_object_get(j, "l")), 1000);
  json_decref(j);
  free(t);
}

/* ---- loading ---- */

static wsmsg_asyncapi *load(const char *text, int expect) {
  wsmsg_asyncapi *a = wsmsg_asyncapi_new(NULL);
  assert_non_null(a);
  assert_int_equal(wsmsg_asyncapi_set_schema_dir(a, SCHEMAS), 0);
  int rc = wsmsg_asyncapi_load(a, text, strlen(text));
  if (rc != expect)
    fail_msg("load: %d (%s), expected %d", rc, wsmsg_asyncapi_detail(a),
             expect);
  return a;
}

/* A payload schema nested past the validation depth limit: the document
 * is refused for that, where it happens (it took 2.4 s and 730 MB to
 * refuse with an unrelated oneOf error; 800 levels: 1.5 GB). */
static void test_load_deep_payload(void **state) {
  (void)state;
  size_t cap = 300 * 10 + 512;
  char *t = malloc(cap);
  assert_non_null(t);
  size_t n = (size_t)snprintf(
      t, cap,
      "{\"asyncapi\": \"3.0.0\", \"info\": {\"title\": \"t\", "
      "\"version\": \"1\"}, \"channels\": {\"c\": {\"address\": \"/c\", "
      "\"messages\": {\"m\": {\"payload\": ");
  for (int i = 0; i < 300; i++)
    n += (size_t)snprintf(t + n, cap - n, "{\"items\": ");
  n += (size_t)snprintf(t + n, cap - n, "{}");
  memset(t + n, '}', 300);
  n += 300;
  snprintf(t + n, cap - n, "}}}}}");
  wsmsg_asyncapi *a = load(t, WSMSG_ERR_VALIDATION);
  const char *d = wsmsg_asyncapi_detail(a);
  if (!strstr(d, "nesting deeper than 1000 levels") ||
      !strstr(d, "\"payload\",\"items\",\"items\""))
    fail_msg("detail: %s", d);
  wsmsg_asyncapi_free(a);
  free(t);
}

static void test_load_examples(void **state) {
  (void)state;
  DIR *d = opendir(EXAMPLES);
  assert_non_null(d);
  int count = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strstr(e->d_name, ".yml"))
      continue;
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", EXAMPLES, e->d_name);
    size_t len;
    char *text = slurp(path, &len);
    assert_non_null(text);
    if (!strstr(text, "asyncapi: 3.")) {
      free(text);
      continue;
    }
    wsmsg_asyncapi *a = wsmsg_asyncapi_new(NULL);
    wsmsg_asyncapi_set_schema_dir(a, SCHEMAS);
    int rc = wsmsg_asyncapi_load(a, text, len);
    if (rc)
      fail_msg("%s: %d %s", e->d_name, rc, wsmsg_asyncapi_detail(a));
    assert_non_null(wsmsg_asyncapi_document(a));
    assert_int_equal(wsmsg_verrors_count(wsmsg_asyncapi_errors(a)), 0);
    /* and the same document as a json_t */
    wsmsg_asyncapi *b = wsmsg_asyncapi_new(NULL);
    wsmsg_asyncapi_set_schema_dir(b, SCHEMAS);
    assert_int_equal(wsmsg_asyncapi_load_json(b, wsmsg_asyncapi_document(a)),
                     0);
    wsmsg_asyncapi_free(b);
    wsmsg_asyncapi_free(a);
    free(text);
    count++;
  }
  closedir(d);
  assert_true(count >= 10);
}

static void test_load_invalid_document(void **state) {
  (void)state;
  /* info.version missing, and a channel address that is a number */
  wsmsg_asyncapi *a = load("asyncapi: 3.0.0\n"
                           "info:\n"
                           "  title: t\n"
                           "channels:\n"
                           "  c:\n"
                           "    address: /x\n",
                           WSMSG_ERR_VALIDATION);
  const wsmsg_verrors *e = wsmsg_asyncapi_errors(a);
  assert_true(wsmsg_verrors_count(e) > 0);
  /* an error points at info (loc ["info"]), its message says version */
  int found = 0;
  for (size_t i = 0; i < wsmsg_verrors_count(e); i++) {
    char loc[128];
    wsmsg_verrors_loc_dump(e, i, loc, sizeof(loc));
    if (strstr(loc, "[\"info\",\"version\"]") &&
        strstr(wsmsg_verrors_msg(e, i), "required"))
      found = 1;
  }
  if (!found)
    fail_msg("no error at info about version: %s", wsmsg_asyncapi_detail(a));
  assert_non_null(strstr(wsmsg_asyncapi_detail(a), "3.0.0"));
  /* one load per object */
  assert_int_equal(wsmsg_asyncapi_load(a, "{}", 2), WSMSG_ERR_STATE);
  wsmsg_asyncapi_free(a);

  a = load("asyncapi: 2.6.0\ninfo: {title: t, version: '1'}\n",
           WSMSG_ERR_UNSUPPORTED);
  wsmsg_asyncapi_free(a);
  a = load("asyncapi: 3.9.9\ninfo: {title: t, version: '1'}\n",
           WSMSG_ERR_UNSUPPORTED);
  wsmsg_asyncapi_free(a);
  a = load("asyncapi: '3.0.0/../../x'\n", WSMSG_ERR_UNSUPPORTED);
  wsmsg_asyncapi_free(a);
  a = load("[1, 2]", WSMSG_ERR_VALIDATION);
  wsmsg_asyncapi_free(a);
  a = load("{\"asyncapi\": ", WSMSG_ERR_JSON);
  assert_non_null(strstr(wsmsg_asyncapi_detail(a), "JSON"));
  wsmsg_asyncapi_free(a);
  a = load("a: [\n", WSMSG_ERR_JSON);
  assert_non_null(strstr(wsmsg_asyncapi_detail(a), "YAML"));
  wsmsg_asyncapi_free(a);

  /* no schema directory */
  a = wsmsg_asyncapi_new(NULL);
  assert_int_equal(wsmsg_asyncapi_load(a, "asyncapi: 3.0.0\n", 16),
                   WSMSG_ERR_STATE);
  wsmsg_asyncapi_free(a);
  assert_int_equal(wsmsg_asyncapi_load(NULL, "", 0), WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_asyncapi_load_json(NULL, NULL), WSMSG_ERR_INVALID_ARG);
  wsmsg_asyncapi_free(NULL);
}

#define HEAD                                                                   \
  "asyncapi: 3.0.0\n"                                                          \
  "info: {title: test, version: '1.0'}\n"

static void test_load_json_text_and_bad_ref(void **state) {
  (void)state;
  wsmsg_asyncapi *a =
      load("{\"asyncapi\": \"3.0.0\", \"info\": {\"title\": \"t\", "
           "\"version\": \"1\"}, \"channels\": {\"c\": {\"address\": \"/c\", "
           "\"messages\": {\"m\": {\"payload\": {\"type\": \"object\"}}}}}}",
           0);
  wsmsg_asyncapi_free(a);
  a = load(HEAD "channels:\n"
                "  c:\n"
                "    address: /c\n"
                "    messages:\n"
                "      m: {$ref: '#/components/messages/nope'}\n",
           WSMSG_ERR_SCHEMA);
  assert_non_null(strstr(wsmsg_asyncapi_detail(a), "nope"));
  wsmsg_asyncapi_free(a);
  /* a payload ref that does not resolve fails when compiled */
  a = load(HEAD "channels:\n"
                "  c:\n"
                "    address: /c\n"
                "    messages:\n"
                "      m:\n"
                "        payload: {$ref: '#/components/schemas/nope'}\n",
           WSMSG_ERR_SCHEMA);
  wsmsg_asyncapi_free(a);
  /* an operation that is itself a $ref to a channel (the official schema
   * takes it for a Reference Object): refused with a reason (found by
   * fuzz_asyncapi) */
  a = load(HEAD "channels:\n"
                "  c:\n"
                "    address: /c\n"
                "operations:\n"
                "  o:\n"
                "    action: send\n"
                "    channel:\n"
                "    $ref: '#/channels/c'\n",
           WSMSG_ERR_SCHEMA);
  assert_non_null(strstr(wsmsg_asyncapi_detail(a), "operation o"));
  wsmsg_asyncapi_free(a);
  /* a relative file without a loader */
  a = load(HEAD "channels:\n"
                "  c:\n"
                "    address: /c\n"
                "    messages:\n"
                "      m: {$ref: 'common.yaml#/components/messages/m'}\n",
           WSMSG_ERR_UNSUPPORTED);
  wsmsg_asyncapi_free(a);
}

static int loader_calls;
static json_t *loader(const char *uri, void *user) {
  (void)user;
  loader_calls++;
  if (!strcmp(uri, "common.yaml"))
    return yaml("components:\n"
                "  messages:\n"
                "    m:\n"
                "      payload: {$ref: '#/components/schemas/s'}\n"
                "    n:\n"
                "      payload: {$ref: 'more.yaml#/s'}\n"
                "  schemas:\n"
                "    s: {type: object, required: [id], properties: {id: "
                "{type: integer}}}\n");
  if (!strcmp(uri, "more.yaml"))
    return yaml("s: {type: string}\n");
  return NULL;
}

static void test_load_external_refs(void **state) {
  (void)state;
  const char *doc =
      HEAD "channels:\n"
           "  c:\n"
           "    address: /c\n"
           "    messages:\n"
           "      m: {$ref: 'common.yaml#/components/messages/m'}\n"
           "      n: {$ref: 'common.yaml#/components/messages/n'}\n"
           "  d:\n"
           "    address: /d\n"
           "    messages:\n"
           "      x: {$ref: 'missing.yaml#/x'}\n";
  wsmsg_asyncapi *a = wsmsg_asyncapi_new(NULL);
  wsmsg_asyncapi_set_schema_dir(a, SCHEMAS);
  wsmsg_asyncapi_set_loader(a, loader, NULL);
  assert_int_equal(wsmsg_asyncapi_load(a, doc, strlen(doc)),
                   WSMSG_ERR_NOT_FOUND);
  assert_non_null(strstr(wsmsg_asyncapi_detail(a), "missing.yaml"));
  wsmsg_asyncapi_free(a);

  /* without the missing file: both messages compile, each file once */
  const char *ok =
      HEAD "channels:\n"
           "  c:\n"
           "    address: /c\n"
           "    messages:\n"
           "      m: {$ref: 'common.yaml#/components/messages/m'}\n"
           "      n: {$ref: 'common.yaml#/components/messages/n'}\n"
           "operations:\n"
           "  out:\n"
           "    action: send\n"
           "    channel: {$ref: '#/channels/c'}\n"
           "    messages: [{$ref: '#/channels/c/messages/m'}]\n";
  loader_calls = 0;
  a = wsmsg_asyncapi_new(NULL);
  wsmsg_asyncapi_set_schema_dir(a, SCHEMAS);
  wsmsg_asyncapi_set_loader(a, loader, NULL);
  int rc = wsmsg_asyncapi_load(a, ok, strlen(ok));
  if (rc)
    fail_msg("%s", wsmsg_asyncapi_detail(a));
  assert_int_equal(loader_calls, 2);
  /* the external payload schema is enforced */
  json_t *good = json_pack("{s:i}", "id", 3);
  json_t *bad = json_pack("{s:s}", "id", "x");
  wsmsg_verrors *e = wsmsg_verrors_new();
  assert_int_equal(wsmsg_asyncapi_send(a, NULL, "out", good, e), 0);
  assert_int_equal(wsmsg_asyncapi_send(a, NULL, "out", bad, e),
                   WSMSG_ERR_VALIDATION);
  assert_true(wsmsg_verrors_count(e) > 0);
  assert_int_equal(wsmsg_asyncapi_send(a, NULL, "nope", bad, e),
                   WSMSG_ERR_NOT_FOUND);
  json_decref(good);
  json_decref(bad);
  wsmsg_verrors_free(e);
  wsmsg_asyncapi_free(a);
}

/* ---- serving ---- */

typedef struct served {
  wsmsg_asyncapi *a;
  wsmsg_server *srv;
  wsmsg_endpoint *cep;
  wsmsg_conn *s, *c;
  rec cr;
  char op[64], msg[64];
  json_t *got;
  int calls;
} served;

static void on_op(wsmsg_conn *c, const char *op, const char *m, json_t *msg,
                  void *user) {
  (void)c;
  served *sv = user;
  snprintf(sv->op, sizeof(sv->op), "%s", op);
  snprintf(sv->msg, sizeof(sv->msg), "%s", m);
  json_decref(sv->got);
  sv->got = json_incref(msg);
  sv->calls++;
}

static void serve_doc(served *sv, const char *doc, const char *server) {
  memset(sv, 0, sizeof(*sv));
  sv->a = load(doc, 0);
  sv->srv = wsmsg_server_new();
  assert_int_equal(wsmsg_asyncapi_on_operation(sv->a, NULL, on_op, sv), 0);
  int rc = wsmsg_asyncapi_serve(sv->a, sv->srv, server);
  if (rc)
    fail_msg("serve: %d %s", rc, wsmsg_asyncapi_detail(sv->a));
}

static void connect_to(served *sv, const char *path) {
  wsmsg_conn_free(sv->s);
  wsmsg_conn_free(sv->c);
  wsmsg_endpoint_free(sv->cep);
  free(sv->cr.last);
  memset(&sv->cr, 0, sizeof(sv->cr));
  sv->cep = wsmsg_endpoint_new();
  ep_callbacks(sv->cep);
  sv->s = wsmsg_server_accept(sv->srv, NULL);
  sv->c = wsmsg_client_new(sv->cep, "localhost:1", path, &sv->cr);
  pair p = {.s = sv->s, .c = sv->c};
  pump(&p);
}

static void exchange(served *sv, const char *text) {
  sv->calls = 0;
  sv->cr.texts = 0;
  assert_int_equal(wsmsg_send_text(sv->c, text, strlen(text)), 0);
  pair p = {.s = sv->s, .c = sv->c};
  pump(&p);
}

/* The peer sends `text`: the handler is called once, for message `msg` of
 * operation `op` (any operation if NULL). */
static void expect_handled(served *sv, const char *text, const char *op,
                           const char *msg) {
  exchange(sv, text);
  assert_int_equal(sv->calls, 1);
  if (op)
    assert_string_equal(sv->op, op);
  assert_string_equal(sv->msg, msg);
}

/* The peer sends `text`: no handler call, and one error reply holding
 * `what`. */
static void expect_refused(served *sv, const char *text, const char *what) {
  exchange(sv, text);
  assert_int_equal(sv->calls, 0);
  assert_int_equal(sv->cr.texts, 1);
  assert_non_null(strstr((char *)sv->cr.last, what));
}

static void served_free(served *sv) {
  wsmsg_conn_free(sv->s);
  wsmsg_conn_free(sv->c);
  wsmsg_server_free(sv->srv);
  wsmsg_endpoint_free(sv->cep);
  wsmsg_asyncapi_free(sv->a);
  json_decref(sv->got);
  free(sv->cr.last);
}

static const char *shared_doc =
    HEAD "servers:\n"
         "  ws: {host: 'localhost', protocol: ws, pathname: /api}\n"
         "  mq: {host: 'localhost', protocol: mqtt}\n"
         "channels:\n"
         "  control:\n"
         "    address: /control\n"
         "    messages:\n"
         "      ping: {$ref: '#/components/messages/ping'}\n"
         "      subscribe: {$ref: '#/components/messages/subscribe'}\n"
         "  control2:\n"
         "    address: /control\n"
         "    messages:\n"
         "      unsubscribe:\n"
         "        payload:\n"
         "          type: object\n"
         "          required: [event, channel]\n"
         "          properties:\n"
         "            event: {enum: [unsubscribe]}\n"
         "            channel: {type: string}\n"
         "  noaddr:\n"
         "    address: null\n"
         "operations:\n"
         "  receivePing:\n"
         "    action: receive\n"
         "    channel: {$ref: '#/channels/control'}\n"
         "    messages: [{$ref: '#/channels/control/messages/ping'}]\n"
         "  receiveSubscribe:\n"
         "    action: receive\n"
         "    channel: {$ref: '#/channels/control'}\n"
         "    messages: [{$ref: '#/channels/control/messages/subscribe'}]\n"
         "  receiveUnsubscribe:\n"
         "    action: receive\n"
         "    channel: {$ref: '#/channels/control2'}\n"
         "  sendPong:\n"
         "    action: send\n"
         "    channel: {$ref: '#/channels/control'}\n"
         "    messages: [{$ref: '#/channels/control/messages/ping'}]\n"
         "components:\n"
         "  messages:\n"
         "    ping:\n"
         "      name: Ping\n"
         "      payload:\n"
         "        type: object\n"
         "        required: [event]\n"
         "        properties:\n"
         "          event: {type: string, const: ping}\n"
         "          reqid: {type: integer}\n"
         "    subscribe:\n"
         "      payload:\n"
         "        type: object\n"
         "        required: [event, pair]\n"
         "        properties:\n"
         "          event: {type: string, const: subscribe}\n"
         "          pair: {type: array, items: {type: string}, minItems: 1}\n";

static void test_serve_inferred_discriminator(void **state) {
  (void)state;
  served sv;
  serve_doc(&sv, shared_doc, NULL);
  const char *notes = wsmsg_asyncapi_notes(sv.a);
  assert_non_null(strstr(notes, "noaddr"));
  assert_non_null(strstr(notes, "mqtt"));
  assert_non_null(strstr(notes, "\"event\" (inferred)"));
  connect_to(&sv, "/api/control");
  assert_int_equal(wsmsg_conn_state(sv.s), WSMSG_STATE_OPEN);
  assert_string_equal(wsmsg_asyncapi_conn_channel(sv.a, sv.s), "control");
  expect_handled(&sv, "{\"event\":\"ping\",\"reqid\":\"7\"}", "receivePing",
                 "Ping");
  assert_int_equal(json_integer_value(json_object_get(sv.got, "reqid")), 7);
  expect_handled(&sv, "{\"event\":\"subscribe\",\"pair\":[\"XBT/USD\"]}",
                 "receiveSubscribe", "subscribe");
  /* the other channel on the same address: operation without a list */
  expect_handled(&sv, "{\"event\":\"unsubscribe\",\"channel\":\"x\"}",
                 "receiveUnsubscribe", "unsubscribe");
  /* invalid: the route's errors come back, no handler call */
  expect_refused(&sv, "{\"event\":\"subscribe\",\"pair\":[]}",
                 "validation_error");
  assert_non_null(strstr((char *)sv.cr.last, "pair"));
  expect_refused(&sv, "{\"event\":\"nope\"}", "invalid_discriminator");
  /* a path of no channel */
  connect_to(&sv, "/control");
  assert_int_equal(wsmsg_conn_http_status(sv.c), 404);
  /* a handler per operation wins over the default */
  served other;
  memset(&other, 0, sizeof(other));
  assert_int_equal(
      wsmsg_asyncapi_on_operation(sv.a, "receivePing", on_op, &other), 0);
  assert_int_equal(wsmsg_asyncapi_on_operation(sv.a, "sendPong", on_op, NULL),
                   WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_asyncapi_on_operation(sv.a, "nope", on_op, NULL),
                   WSMSG_ERR_NOT_FOUND);
  connect_to(&sv, "/api/control");
  exchange(&sv, "{\"event\":\"ping\"}");
  assert_int_equal(sv.calls, 0);
  assert_int_equal(other.calls, 1);
  assert_string_equal(other.op, "receivePing");
  json_decref(other.got);
  /* sending: validated against the send operation's messages */
  wsmsg_verrors *e = wsmsg_verrors_new();
  json_t *pong = json_pack("{s:s}", "event", "ping");
  json_t *wrong = json_pack("{s:s}", "event", "pong");
  assert_int_equal(wsmsg_asyncapi_send(sv.a, sv.s, "sendPong", pong, e), 0);
  assert_int_equal(wsmsg_asyncapi_send(sv.a, sv.s, "sendPong", wrong, e),
                   WSMSG_ERR_VALIDATION);
  assert_true(wsmsg_verrors_count(e) > 0);
  assert_int_equal(wsmsg_asyncapi_send(sv.a, sv.s, "receivePing", pong, e),
                   WSMSG_ERR_INVALID_ARG);
  sv.cr.texts = 0;
  pair p = {.s = sv.s, .c = sv.c};
  pump(&p);
  assert_int_equal(sv.cr.texts, 1);
  assert_string_equal((char *)sv.cr.last, "{\"event\":\"ping\"}");
  json_decref(pong);
  json_decref(wrong);
  wsmsg_verrors_free(e);
  served_free(&sv);
}

static const char *explicit_doc =
    HEAD "channels:\n"
         "  c:\n"
         "    address: /c\n"
         "    messages:\n"
         "      Cat: {$ref: '#/components/messages/Cat'}\n"
         "      Dog: {$ref: '#/components/messages/Dog'}\n"
         "operations:\n"
         "  pets:\n"
         "    action: receive\n"
         "    channel: {$ref: '#/channels/c'}\n"
         "components:\n"
         "  messages:\n"
         "    Cat:\n"
         "      payload:\n"
         "        type: object\n"
         "        discriminator: kind\n"
         "        required: [kind, meows]\n"
         "        properties:\n"
         "          kind: {type: string}\n"
         "          meows: {type: boolean}\n"
         "    Dog:\n"
         "      payload:\n"
         "        type: object\n"
         "        discriminator: kind\n"
         "        required: [kind]\n"
         "        properties:\n"
         "          kind: {type: string}\n"
         "          barks: {type: integer}\n";

static void test_serve_explicit_discriminator(void **state) {
  (void)state;
  served sv;
  serve_doc(&sv, explicit_doc, NULL);
  assert_non_null(
      strstr(wsmsg_asyncapi_notes(sv.a), "\"kind\" (explicit discriminator)"));
  connect_to(&sv, "/c");
  expect_handled(&sv, "{\"kind\":\"Dog\",\"barks\":3}", NULL, "Dog");
  expect_handled(&sv, "{\"kind\":\"Cat\",\"meows\":true}", NULL, "Cat");
  expect_refused(&sv, "{\"kind\":\"Cat\"}", "meows");
  expect_refused(&sv, "{\"barks\":1}", "missing_discriminator");
  served_free(&sv);
}

static const char *try_doc =
    HEAD "channels:\n"
         "  c:\n"
         "    address: c\n"
         "    messages:\n"
         "      point:\n"
         "        payload:\n"
         "          type: object\n"
         "          required: [x, y]\n"
         "          properties: {x: {type: number}, y: {type: number}}\n"
         "      label:\n"
         "        payload:\n"
         "          type: object\n"
         "          required: [text]\n"
         "          properties: {text: {type: string, maxLength: 5}}\n"
         "operations:\n"
         "  draw:\n"
         "    action: receive\n"
         "    channel: {$ref: '#/channels/c'}\n";

static void test_serve_try_each(void **state) {
  (void)state;
  served sv;
  serve_doc(&sv, try_doc, NULL);
  assert_non_null(strstr(wsmsg_asyncapi_notes(sv.a), "each is tried"));
  connect_to(&sv, "/c");
  expect_handled(&sv, "{\"x\":1,\"y\":2}", "draw", "point");
  expect_handled(&sv, "{\"text\":\"hi\"}", NULL, "label");
  /* none matches: the closest (label: one error) is reported */
  expect_refused(&sv, "{\"text\":\"too long\"}", "text");
  assert_null(strstr((char *)sv.cr.last, "\"x\""));
  /* both match: ambiguous */
  expect_refused(&sv, "{\"text\":\"a\",\"x\":1,\"y\":2}",
                 "more than one message");
  expect_refused(&sv, "not json", "jsondecode");
  served_free(&sv);
}

static const char *param_doc = HEAD
    "servers:\n"
    "  s: {host: 'localhost', protocol: wss}\n"
    "channels:\n"
    "  md:\n"
    "    address: '/v1/marketdata/{symbol}'\n"
    "    parameters:\n"
    "      symbol: {enum: [btcusd, ethusd, 'x y'], x-pattern: '^[a-z]+$'}\n"
    "    bindings:\n"
    "      ws:\n"
    "        query:\n"
    "          type: object\n"
    "          properties:\n"
    "            heartbeat: {type: boolean}\n"
    "            depth: {type: integer, maximum: 10}\n"
    "        headers:\n"
    "          type: object\n"
    "          required: [X-Token]\n"
    "          properties:\n"
    "            X-Token: {type: string, minLength: 3}\n"
    "  plain:\n"
    "    address: '/v1/plain'\n";

static void test_serve_parameters_and_bindings(void **state) {
  (void)state;
  served sv;
  serve_doc(&sv, param_doc, "s");
  sv.cep = NULL;
  /* the header binding needs X-Token: add it on the client */
  struct {
    const char *path;
    const char *token;
    int status;
    const char *body;
  } cases[] = {
      {"/v1/marketdata/btcusd", "abcd", 101, NULL},
      {"/v1/marketdata/btcusd?heartbeat=true&depth=3", "abcd", 101, NULL},
      {"/v1/marketdata/dogeusd", "abcd", 400, "[\"path\",\"symbol\"]"},
      {"/v1/marketdata/btcusd/x", "abcd", 404, NULL},
      {"/v1/marketdata/", "abcd", 404, NULL},
      {"/v1/marketdata/btcusd?depth=11", "abcd", 400, "[\"query\",\"depth\"]"},
      {"/v1/marketdata/btcusd?heartbeat=maybe", "abcd", 400, "heartbeat"},
      {"/v1/marketdata/btcusd", "ab", 400, "[\"header\",\"X-Token\"]"},
      {"/v1/marketdata/btcusd", NULL, 400, "X-Token"},
      {"/v1/marketdata/%65thusd", "abcd", 101, NULL},
      {"/v1/marketdata/x%20y", "abcd", 400, "pattern"},
      {"/v1/plain", NULL, 101, NULL},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    wsmsg_conn_free(sv.s);
    wsmsg_conn_free(sv.c);
    wsmsg_endpoint_free(sv.cep);
    sv.cep = wsmsg_endpoint_new();
    sv.s = wsmsg_server_accept(sv.srv, NULL);
    sv.c = wsmsg_client_new(sv.cep, "localhost:1", cases[i].path, &sv.cr);
    if (cases[i].token)
      wsmsg_client_add_header(sv.c, "X-Token", cases[i].token);
    /* read the server's raw answer */
    const void *out;
    size_t n = wsmsg_conn_pending(sv.c, &out);
    wsmsg_conn_recv(sv.s, out, n);
    wsmsg_conn_consume(sv.c, n);
    n = wsmsg_conn_pending(sv.s, &out);
    char resp[2048];
    snprintf(resp, sizeof(resp), "%.*s", (int)n, (const char *)out);
    char want[32];
    snprintf(want, sizeof(want), "HTTP/1.1 %d", cases[i].status);
    if (strncmp(resp, want, strlen(want)))
      fail_msg("%s: %s", cases[i].path, resp);
    if (cases[i].body && !strstr(resp, cases[i].body))
      fail_msg("%s: body lacks %s: %s", cases[i].path, cases[i].body, resp);
  }
  served_free(&sv);
}

static void test_serve_refusals(void **state) {
  (void)state;
  wsmsg_asyncapi *a = load(param_doc, 0);
  wsmsg_server *srv = wsmsg_server_new();
  assert_int_equal(wsmsg_asyncapi_serve(a, srv, "nope"), WSMSG_ERR_NOT_FOUND);
  assert_int_equal(wsmsg_asyncapi_serve(a, srv, "s"), WSMSG_ERR_STATE);
  wsmsg_server_free(srv);
  wsmsg_asyncapi_free(a);
  /* an mqtt-only document */
  a = load(HEAD "servers:\n  m: {host: h, protocol: mqtt}\n", 0);
  srv = wsmsg_server_new();
  assert_int_equal(wsmsg_asyncapi_serve(a, srv, NULL), WSMSG_ERR_NOT_FOUND);
  wsmsg_server_free(srv);
  wsmsg_asyncapi_free(a);
  a = load(HEAD "servers:\n  m: {host: h, protocol: mqtt}\n", 0);
  srv = wsmsg_server_new();
  assert_int_equal(wsmsg_asyncapi_serve(a, srv, "m"), WSMSG_ERR_UNSUPPORTED);
  wsmsg_server_free(srv);
  wsmsg_asyncapi_free(a);
  /* an Avro payload on a received message */
  a = load(HEAD
           "channels:\n"
           "  c:\n"
           "    address: /c\n"
           "    messages:\n"
           "      m:\n"
           "        payload:\n"
           "          schemaFormat: application/vnd.apache.avro;version=1.9.0\n"
           "          schema: {type: record, name: x, fields: []}\n"
           "operations:\n"
           "  r: {action: receive, channel: {$ref: '#/channels/c'}}\n",
           0);
  assert_non_null(strstr(wsmsg_asyncapi_notes(a), "avro"));
  srv = wsmsg_server_new();
  assert_int_equal(wsmsg_asyncapi_serve(a, srv, NULL), WSMSG_ERR_UNSUPPORTED);
  assert_non_null(strstr(wsmsg_asyncapi_detail(a), "schemaFormat"));
  wsmsg_server_free(srv);
  wsmsg_asyncapi_free(a);
  /* two templates with one literal prefix */
  a = load(HEAD "channels:\n"
                "  a: {address: '/r/{x}'}\n"
                "  b: {address: '/r/{x}/y'}\n",
           0);
  srv = wsmsg_server_new();
  assert_int_equal(wsmsg_asyncapi_serve(a, srv, NULL), WSMSG_ERR_UNSUPPORTED);
  wsmsg_server_free(srv);
  wsmsg_asyncapi_free(a);
  a = wsmsg_asyncapi_new(NULL);
  srv = wsmsg_server_new();
  assert_int_equal(wsmsg_asyncapi_serve(a, srv, NULL), WSMSG_ERR_STATE);
  assert_int_equal(wsmsg_asyncapi_serve(NULL, srv, NULL),
                   WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_asyncapi_set_validation(a, 1u << 20),
                   WSMSG_ERR_INVALID_ARG);
  wsmsg_server_free(srv);
  wsmsg_asyncapi_free(a);
}

static void test_gemini_example(void **state) {
  (void)state;
  size_t len;
  char *text = slurp(EXAMPLES "/websocket-gemini-asyncapi.yml", &len);
  assert_non_null(text);
  served sv;
  serve_doc(&sv, text, NULL);
  free(text);
  connect_to(&sv, "/v1/marketdata/btcusd?heartbeat=true");
  assert_int_equal(wsmsg_conn_state(sv.s), WSMSG_STATE_OPEN);
  /* the document sends market data: check the examples validate */
  json_t *doc = wsmsg_asyncapi_document(sv.a);
  json_t *ex = json_object_get(
      json_object_get(json_object_get(doc, "components"), "messages"),
      "marketData");
  size_t i;
  json_t *x;
  wsmsg_verrors *e = wsmsg_verrors_new();
  json_array_foreach(json_object_get(ex, "examples"), i, x) {
    int rc = wsmsg_asyncapi_send(sv.a, sv.s, "sendMarketData",
                                 json_object_get(x, "payload"), e);
    if (rc) {
      char buf[1024];
      wsmsg_verrors_dump(e, buf, sizeof(buf));
      fail_msg("example %zu: %d %s", i, rc, buf);
    }
  }
  json_t *bad = json_pack("{s:s}", "type", "update");
  assert_int_equal(wsmsg_asyncapi_send(sv.a, sv.s, "sendMarketData", bad, e),
                   WSMSG_ERR_VALIDATION);
  json_decref(bad);
  wsmsg_verrors_free(e);
  connect_to(&sv, "/v1/marketdata/nope");
  assert_int_equal(wsmsg_conn_http_status(sv.c), 400);
  served_free(&sv);
}

/* ---- describing a server ---- */

static const char *ROUTE_A =
    "{\"$schema\": \"http://json-schema.org/draft-07/schema#\", "
    "\"type\": \"object\", \"required\": [\"n\"], "
    "\"properties\": {\"n\": {\"$ref\": \"#/definitions/pos\"}}, "
    "\"definitions\": {\"pos\": {\"type\": \"integer\", \"minimum\": 0}}}";
static const char *MODEL2020 =
    "{\"type\": \"object\", \"required\": [\"user\"], "
    "\"properties\": {\"user\": {\"$ref\": \"#/$defs/name\"}}, "
    "\"$defs\": {\"name\": {\"type\": \"string\", \"minLength\": 1}}}";

static wsmsg_schema *compile(const char *text) {
  wsmsg_schema *s = NULL;
  char err[256];
  if (wsmsg_schema_compile(text, strlen(text), 0, &s, err, sizeof(err)))
    fail_msg("%s", err);
  return s;
}

static void test_describe_server(void **state) {
  (void)state;
  wsmsg_schema *ra = compile(ROUTE_A), *model = compile(MODEL2020);
  wsmsg_endpoint *routed = wsmsg_endpoint_new(), *json = wsmsg_endpoint_new(),
                 *text = wsmsg_endpoint_new();
  assert_int_equal(wsmsg_endpoint_route_json(routed, "type", "count", ra, NULL),
                   0);
  assert_int_equal(
      wsmsg_endpoint_route_json(routed, "type", "hello world", NULL, NULL), 0);
  assert_int_equal(wsmsg_endpoint_set_schema(json, model), 0);
  wsmsg_endpoint_on_text(text, cb_text);
  wsmsg_server *srv = wsmsg_server_new();
  assert_int_equal(wsmsg_server_route(srv, "/ws/routed", routed), 0);
  assert_int_equal(wsmsg_server_route(srv, "/ws/json-demo", json), 0);
  assert_int_equal(wsmsg_server_route(srv, "/ws/chat", text), 0);
  assert_int_equal(wsmsg_server_route(srv, "/files/*", text), 0);
  json_t *info = json_pack("{s:s, s:s}", "title", "demo", "version", "1.0");
  json_t *doc = wsmsg_server_asyncapi(srv, info);
  assert_non_null(doc);
  json_decref(info);
  assert_null(wsmsg_server_asyncapi(NULL, NULL));

  /* valid against the official 3.0.0 schema, by wsmsg's own validator */
  size_t len;
  char *official = slurp(SCHEMAS "/3.0.0.json", &len);
  assert_non_null(official);
  wsmsg_schema *s = NULL;
  char err[256];
  assert_int_equal(wsmsg_schema_compile(official, len, WSMSG_SCHEMA_DRAFT7, &s,
                                        err, sizeof(err)),
                   0);
  free(official);
  wsmsg_verrors *e = wsmsg_verrors_new();
  int rc = wsmsg_schema_validate(s, doc, WSMSG_VALIDATE_STRICT, e);
  if (rc) {
    char buf[2048];
    wsmsg_verrors_dump(e, buf, sizeof(buf));
    char *d = json_dumps(doc, JSON_INDENT(1));
    fail_msg("export invalid: %s\n%s", buf, d);
  }
  wsmsg_schema_free(s);
  wsmsg_verrors_free(e);
  /* shape: channels, their messages with the discriminator's const */
  json_t *chans = json_object_get(doc, "channels");
  assert_int_equal(json_object_size(chans), 4);
  json_t *rc_ch = json_object_get(chans, "ws_routed");
  assert_non_null(rc_ch);
  assert_string_equal(json_string_value(json_object_get(rc_ch, "address")),
                      "/ws/routed");
  json_t *msgs = json_object_get(rc_ch, "messages");
  assert_non_null(json_object_get(msgs, "count"));
  assert_non_null(json_object_get(msgs, "hello_world"));
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(msgs, "hello_world"), "name")),
                      "hello world");
  json_t *files = json_object_get(chans, "files_path");
  assert_non_null(files);
  assert_string_equal(json_string_value(json_object_get(files, "address")),
                      "/files/{path}");
  json_t *jd = json_object_get(
      json_object_get(json_object_get(chans, "ws_json-demo"), "messages"),
      "message");
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(jd, "payload"), "schemaFormat")),
                      "application/schema+json;version=2020-12");
  assert_non_null(
      json_object_get(json_object_get(doc, "operations"), "receive_ws_routed"));

  /* and back: the description loads and serves, routes told apart by the
   * inferred discriminator, refs into $defs/definitions rewritten */
  served sv;
  memset(&sv, 0, sizeof(sv));
  sv.a = wsmsg_asyncapi_new(NULL);
  wsmsg_asyncapi_set_schema_dir(sv.a, SCHEMAS);
  rc = wsmsg_asyncapi_load_json(sv.a, doc);
  if (rc)
    fail_msg("reload: %s", wsmsg_asyncapi_detail(sv.a));
  sv.srv = wsmsg_server_new();
  wsmsg_asyncapi_on_operation(sv.a, NULL, on_op, &sv);
  assert_int_equal(wsmsg_asyncapi_serve(sv.a, sv.srv, NULL), 0);
  assert_non_null(strstr(wsmsg_asyncapi_notes(sv.a), "\"type\" (inferred)"));
  connect_to(&sv, "/ws/routed");
  expect_handled(&sv, "{\"type\":\"count\",\"n\":3}", NULL, "count");
  expect_refused(&sv, "{\"type\":\"count\",\"n\":-1}", "\"n\"");
  connect_to(&sv, "/ws/json-demo");
  expect_refused(&sv, "{\"user\":\"\"}", "user");
  exchange(&sv, "{\"user\":\"ann\"}");
  assert_int_equal(sv.calls, 1);
  connect_to(&sv, "/files/a");
  assert_int_equal(wsmsg_conn_state(sv.s), WSMSG_STATE_OPEN);
  served_free(&sv);

  json_decref(doc);
  wsmsg_server_free(srv);
  wsmsg_endpoint_free(routed);
  wsmsg_endpoint_free(json);
  wsmsg_endpoint_free(text);
  wsmsg_schema_free(ra);
  wsmsg_schema_free(model);
}

/* Every allocation of a load and a serve goes through the hook; each
 * failing allocation makes the call fail cleanly (no leak: ASan). */
static void test_asyncapi_alloc_failures(void **state) {
  (void)state;
  int failed = 0, ok = 0;
  for (int n = 1; n < 10000000 && !ok; n += n < 40 ? 1 : n / 2) {
    fail_countdown = n;
    wsmsg_asyncapi *a = wsmsg_asyncapi_new(&failing_mem);
    if (!a) {
      failed++;
      continue;
    }
    wsmsg_asyncapi_set_schema_dir(a, SCHEMAS);
    int rc = wsmsg_asyncapi_load(a, shared_doc, strlen(shared_doc));
    wsmsg_server *srv = wsmsg_server_new();
    if (!rc)
      rc = wsmsg_asyncapi_serve(a, srv, NULL);
    if (rc)
      failed++;
    else if (fail_countdown > 0)
      ok = 1; /* the whole run needed fewer than n allocations */
    fail_countdown = 0;
    wsmsg_server_free(srv);
    wsmsg_asyncapi_free(a);
  }
  assert_true(failed > 10);
  assert_true(ok);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_yaml_core_schema),
      cmocka_unit_test(test_yaml_blocks_anchors_merge),
      cmocka_unit_test(test_yaml_refused),
      cmocka_unit_test(test_yaml_text_bombs),
      cmocka_unit_test(test_load_deep_payload),
      cmocka_unit_test(test_load_examples),
      cmocka_unit_test(test_load_invalid_document),
      cmocka_unit_test(test_load_json_text_and_bad_ref),
      cmocka_unit_test(test_load_external_refs),
      cmocka_unit_test(test_serve_inferred_discriminator),
      cmocka_unit_test(test_serve_explicit_discriminator),
      cmocka_unit_test(test_serve_try_each),
      cmocka_unit_test(test_serve_parameters_and_bindings),
      cmocka_unit_test(test_serve_refusals),
      cmocka_unit_test(test_gemini_example),
      cmocka_unit_test(test_describe_server),
      cmocka_unit_test(test_asyncapi_alloc_failures),
  };
  return unit_run("asyncapi", tests, argc, argv);
}
