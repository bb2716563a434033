/* The allocator promise (wsmsg.h, wsmsg_mem): every allocation wsmsg's own
 * code makes goes through the allocator hook of the object it belongs to.
 *
 * This binary is linked with -Wl,--wrap=malloc,... (see UNIT_WRAP in the
 * Makefile): every call to a libc allocator from an object linked
 * statically -- libwsmsg.a's and this file's -- lands in a __wrap_ function
 * below, which counts it.  jansson, PCRE2, wslay and libc are shared
 * libraries: their own allocations are not seen (and not wsmsg's to route).
 * A counting hook is set on every object of a realistic session: handshake,
 * text, binary, JSON valid and invalid (every invalid path), routing, events,
 * timers, keepalive, streaming, broadcast, schema compilation and
 * validation, error lists, close.  The session must make zero direct libc
 * calls, and the hook must see every block freed.
 *
 * This file itself calls no allocator (it would be counted): everything it
 * records lives in static storage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <wsmsg.h>

#include "run.h"

/* ---- the libc side: calls that bypassed the hook ---- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t k);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__real_reallocarray(void *p, size_t n, size_t k);
void *__real_aligned_alloc(size_t a, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
int __real_vasprintf(char **s, const char *fmt, va_list ap);

static int direct;          /* libc allocator calls from wsmsg's objects */
static char first_call[32]; /* the first one's name */

static void saw(const char *what) {
  if (!direct++)
    snprintf(first_call, sizeof(first_call), "%s", what);
}

void *__wrap_malloc(size_t n);
void *__wrap_malloc(size_t n) {
  saw("malloc");
  return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t k);
void *__wrap_calloc(size_t n, size_t k) {
  saw("calloc");
  return __real_calloc(n, k);
}
void *__wrap_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n) {
  saw("realloc");
  return __real_realloc(p, n);
}
void __wrap_free(void *p);
void __wrap_free(void *p) {
  if (p)
    saw("free");
  __real_free(p);
}
char *__wrap_strdup(const char *s);
char *__wrap_strdup(const char *s) {
  saw("strdup");
  return __real_strdup(s);
}
char *__wrap_strndup(const char *s, size_t n);
char *__wrap_strndup(const char *s, size_t n) {
  saw("strndup");
  return __real_strndup(s, n);
}
void *__wrap_reallocarray(void *p, size_t n, size_t k);
void *__wrap_reallocarray(void *p, size_t n, size_t k) {
  saw("reallocarray");
  return __real_reallocarray(p, n, k);
}
void *__wrap_aligned_alloc(size_t a, size_t n);
void *__wrap_aligned_alloc(size_t a, size_t n) {
  saw("aligned_alloc");
  return __real_aligned_alloc(a, n);
}
int __wrap_posix_memalign(void **p, size_t a, size_t n);
int __wrap_posix_memalign(void **p, size_t a, size_t n) {
  saw("posix_memalign");
  return __real_posix_memalign(p, a, n);
}
int __wrap_vasprintf(char **s, const char *fmt, va_list ap);
int __wrap_vasprintf(char **s, const char *fmt, va_list ap) {
  saw("vasprintf");
  return __real_vasprintf(s, fmt, ap);
}
int __wrap_asprintf(char **s, const char *fmt, ...);
int __wrap_asprintf(char **s, const char *fmt, ...) {
  saw("asprintf");
  va_list ap;
  va_start(ap, fmt);
  int r = __real_vasprintf(s, fmt, ap);
  va_end(ap);
  return r;
}

/* ---- the hook side ---- */

static long hook_allocs, hook_frees, hook_live;

static void *hook_malloc(size_t n, void *u) {
  (void)u;
  void *p = __real_malloc(n);
  if (p) {
    hook_allocs++;
    hook_live++;
  }
  return p;
}
static void hook_free(void *p, void *u) {
  (void)u;
  if (p) {
    hook_frees++;
    hook_live--;
  }
  __real_free(p);
}
static void *hook_realloc(void *p, size_t n, void *u) {
  (void)u;
  void *q = __real_realloc(p, n);
  if (q && !p) {
    hook_allocs++;
    hook_live++;
  }
  return q;
}
static const wsmsg_mem hook = {NULL, hook_malloc, hook_free, hook_realloc};
/* the same without realloc: wsmsg then uses malloc + copy + free */
static const wsmsg_mem hook_norealloc = {NULL, hook_malloc, hook_free, NULL};

/* ---- a session ---- */

static uint64_t now_ms = 1000;
static uint64_t fake_clock(void *u) {
  (void)u;
  return now_ms;
}

static int opened, texts, binaries, jsons, invalids, closes, pongs;
static void on_open(wsmsg_conn *c, void *u) {
  (void)c;
  (void)u;
  opened++;
}
static void on_text(wsmsg_conn *c, const char *d, size_t n, void *u) {
  (void)u;
  texts++;
  wsmsg_send_text(c, d, n); /* echo */
}
static void on_binary(wsmsg_conn *c, const uint8_t *d, size_t n, void *u) {
  (void)u;
  binaries++;
  wsmsg_send_binary(c, d, n);
}
static void on_close(wsmsg_conn *c, const wsmsg_close_info *ci, void *u) {
  (void)c;
  (void)ci;
  (void)u;
  closes++;
}
static void on_pong(wsmsg_conn *c, const uint8_t *d, size_t n, void *u) {
  (void)c;
  (void)d;
  (void)n;
  (void)u;
  pongs++;
}
static void on_json(wsmsg_conn *c, json_t *msg, void *u) {
  (void)u;
  jsons++;
  wsmsg_send_json(c, msg); /* echo, compact */
}
static void on_invalid(wsmsg_conn *c, const wsmsg_verrors *e, const char *t,
                       size_t n, void *u) {
  (void)c;
  (void)e;
  (void)t;
  (void)n;
  (void)u;
  invalids++;
}

/* Move bytes both ways until nothing moves (bounded). */
static void pump(wsmsg_conn *a, wsmsg_conn *b) {
  for (int i = 0; i < 100; i++) {
    size_t moved = 0;
    wsmsg_conn *from = a, *to = b;
    for (int k = 0; k < 2; k++) {
      const void *p;
      size_t n;
      while ((n = wsmsg_conn_pending(from, &p)) > 0) {
        if (wsmsg_conn_want_read(to))
          wsmsg_conn_recv(to, p, n);
        wsmsg_conn_consume(from, n);
        moved += n;
      }
      from = b;
      to = a;
    }
    if (!moved)
      break;
  }
}

static const char MODEL[] =
    "{\"type\": \"object\", \"properties\": {"
    "\"user\": {\"type\": \"string\", \"pattern\": \"^[a-z]+$\"},"
    "\"n\": {\"type\": \"integer\", \"default\": 1},"
    "\"tags\": {\"type\": \"array\", \"items\": {\"enum\": [\"a\", \"b\"]}},"
    "\"alt\": {\"oneOf\": [{\"type\": \"string\"}, {\"type\": \"integer\"}]},"
    "\"x\": {\"$ref\": \"#/$defs/pos\"},"
    "\"m\": {\"multipleOf\": 0.01}},"
    "\"required\": [\"user\"], \"$defs\": {\"pos\": {\"minimum\": 0}}}";

static void send_str(wsmsg_conn *c, const char *s) {
  assert_int_equal(wsmsg_send_text(c, s, strlen(s)), 0);
}

static int64_t stream_left;
static int64_t stream_src(wsmsg_conn *c, uint8_t *buf, size_t cap, int *eof,
                          void *u) {
  (void)c;
  (void)u;
  size_t n = cap < 1000 ? cap : 1000;
  if ((int64_t)n > stream_left)
    n = (size_t)stream_left;
  memset(buf, 'z', n);
  stream_left -= (int64_t)n;
  *eof = stream_left == 0;
  return (int64_t)n;
}

static void session(const wsmsg_mem *mem) {
  direct = 0;
  first_call[0] = '\0';
  opened = texts = binaries = jsons = invalids = closes = pongs = 0;

  /* schema compilation (with a pattern, a $ref, enum and oneOf) */
  wsmsg_schema *model = NULL;
  char err[256];
  assert_int_equal(wsmsg_schema_compile_mem(MODEL, strlen(MODEL),
                                            WSMSG_SCHEMA_NO_JIT, mem, &model,
                                            err, sizeof(err)),
                   0);
  json_t *sj = json_loads(MODEL, 0, NULL);
  wsmsg_schema *model2 = NULL;
  assert_int_equal(wsmsg_schema_compile_json_mem(sj, WSMSG_SCHEMA_NO_JIT, mem,
                                                 &model2, err, sizeof(err)),
                   0);
  json_decref(sj);
  /* a schema that does not compile */
  wsmsg_schema *bad = NULL;
  assert_int_equal(wsmsg_schema_compile_mem("{\"$ref\": \"#/nope\"}", 18, 0,
                                            mem, &bad, err, sizeof(err)),
                   WSMSG_ERR_SCHEMA);

  /* standalone validation into an error list */
  wsmsg_verrors *errs = wsmsg_verrors_new_mem(mem);
  assert_non_null(errs);
  const char *badmsg = "{\"user\": \"A1\", \"n\": \"x\", \"tags\": [\"c\"],"
                       " \"alt\": 1.5, \"x\": -1, \"m\": 1.005}";
  assert_int_equal(wsmsg_schema_validate_text(model, badmsg, strlen(badmsg),
                                              WSMSG_VALIDATE_COERCE, errs,
                                              NULL),
                   WSMSG_ERR_VALIDATION);
  assert_true(wsmsg_verrors_count(errs) >= 5);
  char small[16]; /* truncated dump */
  assert_true(wsmsg_verrors_dump(errs, small, sizeof(small)) > 16);
  assert_true(wsmsg_verrors_loc_dump(errs, 0, small, 2) > 0);
  assert_int_equal(
      wsmsg_schema_validate_text(model, "{\"user\":", 8, 0, errs, NULL),
      WSMSG_ERR_JSON);
  json_t *out = NULL;
  assert_int_equal(wsmsg_schema_validate_text(
                       model2, "{\"user\": \"ab\", \"n\": \"2\"}", 24,
                       WSMSG_VALIDATE_COERCE | WSMSG_VALIDATE_DEFAULTS, errs,
                       &out),
                   0);
  json_decref(out);

  /* a server with a plain endpoint, a JSON endpoint with callbacks, a
   * routed JSON endpoint on the pull API */
  wsmsg_server *srv = wsmsg_server_new_mem(mem);
  wsmsg_endpoint *plain = wsmsg_endpoint_new_mem(mem);
  wsmsg_endpoint *jep = wsmsg_endpoint_new_mem(mem);
  wsmsg_endpoint *rep = wsmsg_endpoint_new_mem(mem);
  wsmsg_endpoint *cep = wsmsg_endpoint_new_mem(mem);
  assert_non_null(srv);
  assert_non_null(cep);
  wsmsg_server_set_clock(srv, fake_clock, NULL);
  wsmsg_endpoint_set_clock(cep, fake_clock, NULL);
  wsmsg_endpoint_on_open(plain, on_open);
  wsmsg_endpoint_on_text(plain, on_text);
  wsmsg_endpoint_on_binary(plain, on_binary);
  wsmsg_endpoint_on_close(plain, on_close);
  wsmsg_endpoint_set_ping_interval(plain, 500);
  wsmsg_endpoint_set_pong_timeout(plain, 500);
  wsmsg_endpoint_add_subprotocol(plain, "chat");
  wsmsg_endpoint_allow_origin(plain, "http://a.example");
  wsmsg_endpoint_on_json(jep, on_json);
  wsmsg_endpoint_on_invalid(jep, on_invalid);
  wsmsg_endpoint_set_schema(jep, model);
  wsmsg_endpoint_set_invalid_policy(jep, WSMSG_INVALID_REPLY);
  wsmsg_endpoint_route_json(rep, "kind", "say", model2, NULL);
  wsmsg_endpoint_route_json(rep, "kind", "ping", NULL, NULL);
  wsmsg_endpoint_set_invalid_policy(rep, WSMSG_INVALID_CLOSE);
  wsmsg_endpoint_add_subprotocol(cep, "chat");
  wsmsg_endpoint_on_pong(cep, on_pong);
  assert_int_equal(wsmsg_server_route(srv, "/plain", plain), 0);
  assert_int_equal(wsmsg_server_route(srv, "/json", jep), 0);
  assert_int_equal(wsmsg_server_route(srv, "/routed*", rep), 0);

  wsmsg_timers *timers = wsmsg_timers_new_mem(mem);
  assert_non_null(timers);

  /* 1. plain: handshake with headers, echo text and binary, keepalive,
   *    broadcast, streaming, close */
  wsmsg_conn *s1 = wsmsg_server_accept(srv, NULL);
  wsmsg_conn *c1 = wsmsg_client_new(cep, "localhost:1", "/plain?q=1", NULL);
  assert_int_equal(wsmsg_client_add_header(c1, "Origin", "http://a.example"),
                   0);
  assert_int_equal(wsmsg_timers_add(timers, s1), 0);
  assert_int_equal(wsmsg_timers_add(timers, c1), 0);
  pump(c1, s1);
  assert_int_equal(opened, 1);
  assert_string_equal(wsmsg_conn_subprotocol(s1), "chat");
  send_str(c1, "hello");
  static uint8_t big[70000];
  memset(big, 7, sizeof(big));
  assert_int_equal(wsmsg_send_binary(c1, big, sizeof(big)), 0);
  pump(c1, s1);
  assert_int_equal(texts, 1);
  assert_int_equal(binaries, 1);
  now_ms += 600; /* the ping interval passes: the server pings */
  while (wsmsg_timers_expire(timers, now_ms))
    ;
  pump(c1, s1);
  wsmsg_conn *both[] = {s1, s1};
  assert_int_equal(wsmsg_broadcast(both, 2, WSMSG_EV_TEXT, "all", 3), 2);
  stream_left = 5000;
  assert_int_equal(wsmsg_send_stream(s1, WSMSG_EV_BINARY, stream_src, NULL), 0);
  pump(c1, s1);
  assert_int_equal(wsmsg_conn_streaming(s1), 0);
  /* the client's pull API: its events (text echo, broadcast, stream) */
  wsmsg_event ev;
  int nev = 0;
  while (nev < 100 && wsmsg_conn_next_event(c1, &ev) == 1)
    nev++;
  assert_true(nev >= 4);
  assert_int_equal(wsmsg_close(c1, 1000, "bye"), 0);
  pump(c1, s1);
  assert_int_equal(closes, 1);
  assert_true(wsmsg_conn_done(s1));

  /* 2. JSON with callbacks: valid (echoed with send_json: over the stack
   *    buffer), invalid JSON, schema violations (REPLY policy) */
  wsmsg_conn *s2 = wsmsg_server_accept(srv, NULL);
  wsmsg_conn *c2 = wsmsg_client_new(cep, "localhost:1", "/json", NULL);
  assert_int_equal(wsmsg_timers_add(timers, s2), 0);
  pump(c2, s2);
  static char longmsg[10300];
  int k = snprintf(longmsg, sizeof(longmsg), "{\"user\": \"ann\", \"pad\": \"");
  memset(longmsg + k, 'p', 10000);
  memcpy(longmsg + k + 10000, "\"}", 3);
  send_str(c2, longmsg);
  send_str(c2, "{\"user\": \"bob\", \"n\": \"7\"}");
  send_str(c2, "{\"user\": "); /* not JSON */
  send_str(c2, badmsg);        /* not valid */
  pump(c2, s2);
  assert_int_equal(jsons, 2);
  assert_int_equal(invalids, 2);
  assert_int_equal(wsmsg_send_jsonf(s2, "{s:i}", "n", 1), 0);
  pump(c2, s2);
  while (wsmsg_conn_next_event(c2, &ev) == 1)
    ;
  wsmsg_conn_abort(c2);
  wsmsg_conn_eof(s2);

  /* 3. routed JSON on the pull API: valid, each discriminator error (one
   *    per connection: the CLOSE policy ends it) */
  static const char *const routed[] = {
      "{\"kind\": \"say\", \"user\": \"ann\"}\n",
      "[1, 2]",
      "{\"user\": \"x\"}",
      "{\"kind\": \"shout\"}",
      "{\"kind\": {\"deep\": [1, 2, 3]}}",
      "{\"kind\": \"say\", \"user\": 5}",
      "{\"kind\": \"say\", \"user\": ",
  };
  for (size_t i = 0; i < sizeof(routed) / sizeof(routed[0]); i++) {
    wsmsg_conn *s3 = wsmsg_server_accept(srv, NULL);
    wsmsg_conn *c3 = wsmsg_client_new(cep, "localhost:1", "/routed/x", NULL);
    pump(c3, s3);
    assert_int_equal(wsmsg_conn_state(s3), WSMSG_STATE_OPEN);
    send_str(c3, "{\"kind\": \"ping\"}");
    send_str(c3, routed[i]);
    pump(c3, s3);
    int got = 0;
    while (got < 10 && wsmsg_conn_next_event(s3, &ev) == 1)
      got++;
    assert_true(got >= 2);
    while (wsmsg_conn_next_event(c3, &ev) == 1)
      ;
    wsmsg_conn_free(s3);
    wsmsg_conn_free(c3);
  }

  /* 4. rejected handshakes: unknown path, request too large, timeout */
  wsmsg_conn *s4 = wsmsg_server_accept(srv, NULL);
  wsmsg_conn *c4 = wsmsg_client_new(cep, "localhost:1", "/nowhere", NULL);
  pump(c4, s4);
  assert_int_equal(wsmsg_conn_http_status(s4), 404);
  assert_int_equal(wsmsg_conn_http_status(c4), 404);
  wsmsg_conn_free(s4);
  wsmsg_conn_free(c4);
  wsmsg_conn *s5 = wsmsg_server_accept(srv, NULL);
  assert_int_equal(wsmsg_timers_add(timers, s5), 0);
  wsmsg_conn_recv(s5, "GET / HTTP/1.1\r\n", 16);
  now_ms += 20000; /* the handshake timeout: 408 */
  while (wsmsg_timers_expire(timers, now_ms))
    ;
  assert_int_equal(wsmsg_conn_http_status(s5), 408);
  wsmsg_conn_free(s5);
  wsmsg_conn *s6 = wsmsg_server_accept(srv, NULL);
  for (int i = 0; i < 400 && wsmsg_conn_want_read(s6); i++)
    wsmsg_conn_recv(s6, "X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", 44);
  assert_int_equal(wsmsg_conn_http_status(s6), 431);
  wsmsg_conn_free(s6);

  wsmsg_timers_free(timers);
  wsmsg_conn_free(s1);
  wsmsg_conn_free(c1);
  wsmsg_conn_free(s2);
  wsmsg_conn_free(c2);
  wsmsg_verrors_free(errs);
  wsmsg_server_free(srv);
  wsmsg_endpoint_free(plain);
  wsmsg_endpoint_free(jep);
  wsmsg_endpoint_free(rep);
  wsmsg_endpoint_free(cep);
  wsmsg_schema_free(model);
  wsmsg_schema_free(model2);
}


/* ---- an AsyncAPI document: load (YAML), serve, handshake, messages ---- */

static const char AAPI[] =
    "asyncapi: 3.0.0\n"
    "info: {title: t, version: '1'}\n"
    "servers:\n"
    "  s: {host: localhost, protocol: ws}\n"
    "channels:\n"
    "  c:\n"
    "    address: '/room/{id}'\n"
    "    parameters: {id: {enum: [a, b]}}\n"
    "    bindings: {ws: {query: {type: object, properties: "
    "{n: {type: integer}}}}}\n"
    "    messages:\n"
    "      p: &p\n"
    "        payload: {type: object, required: [x], properties: {x: {type: "
    "integer}}}\n"
    "      q:\n"
    "        <<: *p\n"
    "        payload: {type: object, required: [y], properties: {y: {type: "
    "string, pattern: '^[a-z]+$'}}}\n"
    "operations:\n"
    "  r: {action: receive, channel: {$ref: '#/channels/c'}}\n"
    "  s: {action: send, channel: {$ref: '#/channels/c'}, messages: "
    "[{$ref: '#/channels/c/messages/p'}]}\n";

static void aapi_op(wsmsg_conn *c, const char *op, const char *m, json_t *msg,
                    void *u) {
  (void)op;
  (void)m;
  (void)u;
  jsons++;
  wsmsg_send_json(c, msg);
}

static void test_asyncapi_no_direct_libc_calls(void **st) {
  (void)st;
  hook_allocs = hook_frees = hook_live = 0;
  direct = 0;
  first_call[0] = '\0';
  jsons = 0;
  wsmsg_asyncapi *a = wsmsg_asyncapi_new(&hook);
  assert_non_null(a);
  assert_int_equal(
      wsmsg_asyncapi_set_schema_dir(a, "../shared/data/asyncapi/schemas"), 0);
  assert_int_equal(wsmsg_asyncapi_load(a, AAPI, strlen(AAPI)), 0);
  assert_int_equal(wsmsg_asyncapi_on_operation(a, NULL, aapi_op, NULL), 0);
  wsmsg_server *srv = wsmsg_server_new_mem(&hook);
  assert_int_equal(wsmsg_asyncapi_serve(a, srv, NULL), 0);
  wsmsg_endpoint *cep = wsmsg_endpoint_new_mem(&hook);
  wsmsg_conn *s = wsmsg_server_accept(srv, NULL);
  wsmsg_conn *c = wsmsg_client_new(cep, "localhost:1", "/room/a?n=3", NULL);
  pump(c, s);
  assert_int_equal(wsmsg_conn_state(s), WSMSG_STATE_OPEN);
  send_str(c, "{\"x\": 1}");   /* try each: p */
  send_str(c, "{\"y\": \"a\"}"); /* q */
  send_str(c, "{\"y\": 1}");   /* neither: q's errors */
  send_str(c, "nope");
  pump(c, s);
  assert_int_equal(jsons, 2);
  wsmsg_verrors *e = wsmsg_verrors_new_mem(&hook);
  json_t *bad = json_pack("{s:s}", "x", "1");
  assert_int_equal(wsmsg_asyncapi_send(a, s, "s", bad, e),
                   WSMSG_ERR_VALIDATION);
  json_decref(bad);
  wsmsg_verrors_free(e);
  wsmsg_conn *s2 = wsmsg_server_accept(srv, NULL);
  wsmsg_conn *c2 = wsmsg_client_new(cep, "localhost:1", "/room/z?n=x", NULL);
  pump(c2, s2);
  assert_int_equal(wsmsg_conn_http_status(s2), 400);
  json_t *info = json_pack("{s:s, s:s}", "title", "t", "version", "1");
  json_t *doc = wsmsg_server_asyncapi(srv, info);
  json_decref(doc);
  json_decref(info);
  wsmsg_conn_free(s);
  wsmsg_conn_free(c);
  wsmsg_conn_free(s2);
  wsmsg_conn_free(c2);
  wsmsg_server_free(srv);
  wsmsg_endpoint_free(cep);
  wsmsg_asyncapi_free(a);
  if (direct)
    fprintf(stderr, "%d direct libc allocator calls, the first: %s\n", direct,
            first_call);
  assert_int_equal(direct, 0);
  assert_true(hook_allocs > 100);
  assert_int_equal(hook_live, 0);
}

static void test_no_direct_libc_calls(void **st) {
  (void)st;
  hook_allocs = hook_frees = hook_live = 0;
  session(&hook);
  if (direct)
    fprintf(stderr, "%d direct libc allocator calls, the first: %s\n", direct,
            first_call);
  assert_int_equal(direct, 0);
  assert_true(hook_allocs > 100); /* the hook did see the session */
  assert_int_equal(hook_live, 0); /* and every block came back */
}

static void test_no_direct_libc_calls_without_realloc(void **st) {
  (void)st;
  hook_allocs = hook_frees = hook_live = 0;
  session(&hook_norealloc);
  assert_int_equal(direct, 0);
  assert_true(hook_allocs > 100);
  assert_int_equal(hook_live, 0);
}

/* The probe itself: a default-allocator object does call libc (else the
 * test above could not fail). */
static void test_probe_sees_libc(void **st) {
  (void)st;
  direct = 0;
  wsmsg_endpoint *ep = wsmsg_endpoint_new();
  wsmsg_endpoint_free(ep);
  assert_int_equal(direct, 2);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_probe_sees_libc),
      cmocka_unit_test(test_no_direct_libc_calls),
      cmocka_unit_test(test_no_direct_libc_calls_without_realloc),
      cmocka_unit_test(test_asyncapi_no_direct_libc_calls),
  };
  return unit_run("alloc", tests, argc, argv);
}
