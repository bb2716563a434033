/* JSON endpoints: parsing, validation with coercion and defaults, routing
 * by discriminator, invalid-message policies, the pull API, sending, FFI
 * wrappers and the event queue bound. */
#include "hostile_schemas.h"
#include "pair.h"

static const char MODEL[] =
    "{\"type\": \"object\", \"properties\": {"
    "\"user\": {\"type\": \"string\"}, \"content\": {\"type\": \"string\"},"
    "\"timestamp\": {\"type\": \"number\"},"
    "\"priority\": {\"type\": \"integer\", \"default\": 1}},"
    "\"required\": [\"user\", \"content\", \"timestamp\"]}";

static wsmsg_schema *compile(const char *text) {
  wsmsg_schema *s = NULL;
  char err[256];
  assert_int_equal(
      wsmsg_schema_compile(text, strlen(text), 0, &s, err, sizeof(err)), 0);
  return s;
}

static int jsons;
static json_t *last_json;
static void on_json(wsmsg_conn *c, json_t *msg, void *u) {
  (void)c;
  (void)u;
  jsons++;
  json_decref(last_json);
  last_json = json_incref(msg);
}

static int invalids;
static char invalid_text[256], invalid_type[64], invalid_msg[256];
static void on_invalid(wsmsg_conn *c, const wsmsg_verrors *e, const char *t,
                       size_t n, void *u) {
  (void)c;
  (void)u;
  invalids++;
  snprintf(invalid_text, sizeof(invalid_text), "%.*s", (int)n, t);
  snprintf(invalid_type, sizeof(invalid_type), "%s",
           wsmsg_verrors_count(e) ? wsmsg_verrors_type(e, 0) : "");
  snprintf(invalid_msg, sizeof(invalid_msg), "%s",
           wsmsg_verrors_count(e) ? wsmsg_verrors_msg(e, 0) : "");
}

static wsmsg_schema *model;
static int policy;

static void json_setup(pair *p) {
  wsmsg_endpoint_on_json(p->sep, on_json);
  wsmsg_endpoint_set_schema(p->sep, model);
  wsmsg_endpoint_set_invalid_policy(p->sep, policy);
}

static void reset(void) {
  jsons = invalids = 0;
  json_decref(last_json);
  last_json = NULL;
  invalid_text[0] = invalid_type[0] = '\0';
}

/* The client's last text message parsed as JSON. */
static json_t *client_got(pair *p) {
  return json_loadb((const char *)p->cr.last, p->cr.last_len, 0, NULL);
}

/* "type|loc[0]" of the first error in the client's last message (an error
 * reply). */
static const char *err_type(pair *p) {
  static char buf[128];
  json_t *r = client_got(p);
  json_t *e0 = json_array_get(json_object_get(r, "detail"), 0);
  snprintf(buf, sizeof(buf), "%s|%s",
           json_string_value(json_object_get(e0, "type")),
           json_string_value(json_array_get(json_object_get(e0, "loc"), 0)));
  json_decref(r);
  return buf;
}

/* A pair whose server endpoint validates against MODEL (json_setup and its
 * variants read `model` and `policy`), the counters reset. */
static void model_open(pair *p, int pol, void (*setup)(pair *)) {
  reset();
  model = compile(MODEL);
  policy = pol;
  pair_open(p, setup);
}

static void model_close(pair *p) {
  pair_free(p);
  wsmsg_schema_free(model);
}

/* The client sends `msg` as a text message; both sides run until idle. */
static void send_str(pair *p, const char *msg) {
  wsmsg_send_text(p->c, msg, strlen(msg));
  pump(p);
}

static void test_valid_coerced_defaults(void **s) {
  (void)s;
  pair p;
  model_open(&p, WSMSG_INVALID_REPLY, json_setup);
  send_str(&p, "{\"user\":\"ann\",\"content\":\"hi\",\"timestamp\":\"12.5\"}");
  assert_int_equal(jsons, 1);
  assert_int_equal(p.sr.texts, 0); /* JSON endpoints do not call on_text */
  /* coerced like Pydantic, default filled */
  assert_true(json_is_number(json_object_get(last_json, "timestamp")));
  assert_true(json_number_value(json_object_get(last_json, "timestamp")) ==
              12.5);
  assert_int_equal(json_integer_value(json_object_get(last_json, "priority")),
                   1);
  /* binary messages are not JSON's business */
  wsmsg_send_binary(p.c, "\x00\x01", 2);
  pump(&p);
  assert_int_equal(p.sr.binaries, 1);
  model_close(&p);
  reset();
}

static void strict_setup(pair *p) {
  json_setup(p);
  wsmsg_endpoint_set_validation(p->sep, WSMSG_VALIDATE_STRICT);
}

static void test_strict_mode(void **s) {
  (void)s;
  pair p;
  model_open(&p, WSMSG_INVALID_REPLY, strict_setup);
  send_str(&p, "{\"user\":\"ann\",\"content\":\"hi\",\"timestamp\":\"12.5\"}");
  assert_int_equal(jsons, 0);
  json_t *r = client_got(&p);
  assert_string_equal(json_string_value(json_object_get(r, "error")),
                      "validation_error");
  json_decref(r);
  assert_string_equal(err_type(&p), "type_error.float|timestamp");
  model_close(&p);
}

static void test_invalid_reply(void **s) {
  (void)s;
  pair p;
  model_open(&p, WSMSG_INVALID_REPLY, json_setup);
  /* two errors: missing content, user of the wrong type (an array: the
   * number 5 would be coerced to "5") */
  send_str(&p, "{\"user\": [5], \"timestamp\": 1}");
  assert_int_equal(jsons, 0);
  json_t *r = client_got(&p);
  assert_non_null(r);
  json_t *detail = json_object_get(r, "detail");
  assert_int_equal(json_array_size(detail), 2); /* both, not the first */
  int saw_missing = 0, saw_type = 0;
  for (size_t i = 0; i < json_array_size(detail); i++) {
    json_t *e = json_array_get(detail, i);
    const char *type = json_string_value(json_object_get(e, "type"));
    const char *loc =
        json_string_value(json_array_get(json_object_get(e, "loc"), 0));
    assert_non_null(type);
    assert_non_null(loc);
    if (!strcmp(type, "value_error.missing")) {
      saw_missing++;
      assert_string_equal(json_string_value(json_object_get(e, "msg")),
                          "field required");
      assert_string_equal(loc, "content");
    } else {
      saw_type++;
      assert_string_equal(loc, "user");
      assert_non_null(strstr(type, "type_error"));
    }
  }
  assert_int_equal(saw_missing, 1);
  assert_int_equal(saw_type, 1);
  json_decref(r);
  /* the connection stays open */
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
  /* not JSON at all: jsondecode with jansson's position */
  send_str(&p, "{\"user\": ");
  r = client_got(&p);
  json_t *e0 = json_array_get(json_object_get(r, "detail"), 0);
  assert_string_equal(json_string_value(json_object_get(e0, "type")),
                      "value_error.jsondecode");
  assert_non_null(
      strstr(json_string_value(json_object_get(e0, "msg")), "line 1 column"));
  assert_string_equal(
      json_string_value(json_array_get(json_object_get(e0, "loc"), 0)),
      "__root__");
  /* the same shape as wsmsg_schema_validate_text's: the position in ctx */
  json_t *cx = json_object_get(e0, "ctx");
  assert_int_equal(json_integer_value(json_object_get(cx, "pos")), 9);
  assert_int_equal(json_integer_value(json_object_get(cx, "lineno")), 1);
  assert_true(json_is_integer(json_object_get(cx, "colno")));
  assert_true(json_is_string(json_object_get(cx, "msg")));
  json_decref(r);
  model_close(&p);
}

static void dup_setup(pair *p) {
  wsmsg_endpoint_on_json(p->sep, on_json);
  wsmsg_endpoint_on_invalid(p->sep, on_invalid);
  wsmsg_endpoint_set_invalid_policy(p->sep, WSMSG_INVALID_IGNORE);
}
static void dup_allow_setup(pair *p) {
  dup_setup(p);
  wsmsg_endpoint_allow_duplicate_keys(p->sep, 1);
}

static void test_parse_rules(void **s) {
  (void)s;
  reset();
  pair p;
  pair_open(&p, dup_setup);
  const char *dup = "{\"a\": 1, \"a\": 2}";
  wsmsg_send_text(p.c, dup, strlen(dup));
  /* deeply nested: jansson's depth limit, not a crash */
  char deep[5001];
  memset(deep, '[', 5000);
  deep[5000] = 0;
  wsmsg_send_text(p.c, deep, 5000);
  pump(&p);
  assert_int_equal(jsons, 0);
  assert_int_equal(invalids, 2);
  assert_string_equal(invalid_type, "value_error.jsondecode");
  assert_int_equal(p.cr.texts, 0); /* IGNORE: nothing sent back */
  /* "\u0000" in a string is valid JSON (JSON.stringify writes it): the
   * callback gets it with its length */
  const char *nul = "{\"a\": \"x\\u0000y\"}";
  send_str(&p, nul);
  assert_int_equal(jsons, 1);
  json_t *a = json_object_get(last_json, "a");
  assert_int_equal(json_string_length(a), 3);
  assert_memory_equal(json_string_value(a), "x\0y", 3);
  /* ... but jansson cannot hold it in a key: an error in wsmsg's words */
  const char *nulkey = "{\"x\\u0000y\": 1}";
  send_str(&p, nulkey);
  assert_int_equal(invalids, 3);
  assert_string_equal(invalid_type, "value_error.jsondecode");
  assert_string_equal(invalid_msg,
                      "an object key contains \\u0000 (U+0000), which is "
                      "not supported: line 1 column 11 (char 11)");
  jsons = 0;
  /* any JSON value is accepted without a schema */
  wsmsg_send_text(p.c, "[1, 2]", 6);
  send_str(&p, "42");
  assert_int_equal(jsons, 2);
  pair_free(&p);
  reset();
  pair_open(&p, dup_allow_setup);
  send_str(&p, dup);
  assert_int_equal(jsons, 1);
  assert_int_equal(json_integer_value(json_object_get(last_json, "a")), 2);
  pair_free(&p);
  reset();
}

/* Pydantic's extra: ignore drops undeclared properties before on_json,
 * forbid refuses the message, allow (the default) keeps them */
static int extra_policy;
static void extra_setup(pair *p) {
  json_setup(p);
  assert_int_equal(wsmsg_endpoint_set_extra(p->sep, extra_policy), 0);
}

static void test_extra_policy(void **s) {
  (void)s;
  model = compile(MODEL);
  policy = WSMSG_INVALID_REPLY;
  const char *msg = "{\"user\":\"ann\",\"content\":\"hi\",\"timestamp\":1,"
                    "\"spam\":\"x\"}";
  for (extra_policy = WSMSG_EXTRA_ALLOW; extra_policy <= WSMSG_EXTRA_FORBID;
       extra_policy++) {
    reset();
    pair p;
    pair_open(&p, extra_setup);
    send_str(&p, msg);
    if (extra_policy == WSMSG_EXTRA_FORBID) {
      assert_int_equal(jsons, 0);
      assert_string_equal(err_type(&p), "value_error.extra|spam");
    } else {
      assert_int_equal(jsons, 1);
      assert_int_equal(json_object_get(last_json, "spam") != NULL,
                       extra_policy == WSMSG_EXTRA_ALLOW);
      /* declared fields and defaults are untouched */
      assert_int_equal(
          json_integer_value(json_object_get(last_json, "priority")), 1);
    }
    pair_free(&p);
  }
  wsmsg_endpoint *ep = wsmsg_endpoint_new();
  assert_int_equal(wsmsg_endpoint_set_extra(ep, 3), WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_endpoint_set_extra(NULL, 0), WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_endpoint_set_validation(
                       ep, WSMSG_VALIDATE_COERCE | WSMSG_VALIDATE_EXTRA_IGNORE),
                   0);
  wsmsg_endpoint_free(ep);
  wsmsg_schema_free(model);
  reset();
}

static void test_invalid_close(void **s) {
  (void)s;
  pair p;
  model_open(&p, WSMSG_INVALID_CLOSE, json_setup);
  send_str(&p, "{}");
  assert_int_equal(p.cr.close.code, 1008);
  assert_non_null(strstr(p.cr.close_reason, "field required"));
  model_close(&p);
}

/* Found by fuzz_schema_validate: a message that is valid UTF-8 but not
 * JSON can make jansson's error quote end inside a character.  The error
 * message was then not UTF-8: the CLOSE policy's wsmsg_close refused the
 * reason (the connection stayed open) and the REPLY policy sent nothing. */
static void test_jsondecode_error_split_char(void **s) {
  (void)s;
  static const char text[] = "[\"\\u000\xc8\x84\"]";
  for (int pol = WSMSG_INVALID_REPLY; pol <= WSMSG_INVALID_CLOSE; pol++) {
    pair p;
    model_open(&p, pol, json_setup);
    assert_int_equal(wsmsg_send_text(p.c, text, sizeof(text) - 1), 0);
    pump(&p);
    if (pol == WSMSG_INVALID_CLOSE) {
      assert_int_equal(p.cr.close.code, 1008);
      assert_non_null(strstr(p.cr.close_reason, "invalid message"));
    } else {
      assert_string_equal(err_type(&p), "value_error.jsondecode|__root__");
      assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
    }
    model_close(&p);
  }
}

/* ---- routing ---- */

static int chats, joins;
static void on_chat(wsmsg_conn *c, json_t *m, void *u) {
  (void)c;
  (void)m;
  (void)u;
  chats++;
}
static void on_join(wsmsg_conn *c, json_t *m, void *u) {
  (void)c;
  (void)u;
  assert_string_equal(json_string_value(json_object_get(m, "room")), "lobby");
  joins++;
}
static wsmsg_schema *chat_s, *join_s;
/* the "chat" route's schema; the endpoint schema under the routes */
static const char CHAT_SCHEMA[] =
    "{\"properties\": {\"text\": {\"type\": \"string\"}},"
    "\"required\": [\"text\"]}";
static const char BASE_SCHEMA[] = "{\"type\": \"object\", \"properties\": {"
                                  "\"type\": {\"type\": \"string\"},"
                                  "\"id\": {\"type\": \"integer\"}},"
                                  "\"required\": [\"type\", \"id\"]}";

static void free_route_schemas(void) {
  wsmsg_schema_free(chat_s);
  wsmsg_schema_free(join_s);
  reset();
}

static void route_setup(pair *p) {
  assert_int_equal(
      wsmsg_endpoint_route_json(p->sep, "type", "join", join_s, on_join), 0);
  assert_int_equal(
      wsmsg_endpoint_route_json(p->sep, "type", "chat", chat_s, on_chat), 0);
  assert_int_equal(wsmsg_endpoint_route_json(p->sep, "kind", "x", NULL, NULL),
                   WSMSG_ERR_INVALID_ARG);
  assert_int_equal(
      wsmsg_endpoint_route_json(p->sep, "type", "chat", NULL, NULL),
      WSMSG_ERR_STATE);
  /* a route without schema or callback: on_json */
  assert_int_equal(wsmsg_endpoint_route_json(p->sep, "type", "any", NULL, NULL),
                   0);
  wsmsg_endpoint_on_json(p->sep, on_json);
}

static void test_routing(void **s) {
  (void)s;
  reset();
  chats = joins = 0;
  chat_s = compile(CHAT_SCHEMA);
  join_s = compile("{\"properties\": {\"room\": {\"type\": \"string\","
                   "\"default\": \"lobby\"}}}");
  pair p;
  pair_open(&p, route_setup);
  const char *m1 = "{\"type\": \"chat\", \"text\": \"hello\"}";
  const char *m2 = "{\"type\": \"join\"}"; /* default room */
  const char *m3 = "{\"type\": \"any\", \"x\": 1}";
  wsmsg_send_text(p.c, m1, strlen(m1));
  wsmsg_send_text(p.c, m2, strlen(m2));
  send_str(&p, m3);
  assert_int_equal(chats, 1);
  assert_int_equal(joins, 1);
  assert_int_equal(jsons, 1);
  /* the chat schema applies to chat messages */
  send_str(&p, "{\"type\": \"chat\"}");
  assert_string_equal(err_type(&p), "value_error.missing|text");
  /* missing and unknown discriminators */
  send_str(&p, "{\"text\": \"x\"}");
  assert_string_equal(
      err_type(&p),
      "value_error.discriminated_union.missing_discriminator|type");
  send_str(&p, "{\"type\": \"nope\"}");
  assert_string_equal(
      err_type(&p),
      "value_error.discriminated_union.invalid_discriminator|type");
  json_t *r = client_got(&p);
  const char *msg = json_string_value(
      json_object_get(json_array_get(json_object_get(r, "detail"), 0), "msg"));
  assert_non_null(strstr(msg, "'any', 'chat', 'join'"));
  json_decref(r);
  send_str(&p, "[1]");
  assert_string_equal(err_type(&p), "type_error.dict|__root__");
  assert_int_equal(chats, 1);
  pair_free(&p);
  free_route_schemas();
}

/* ---- schema and routes together ---- */

static wsmsg_schema *base_s;
static int pings;
static void on_ping(wsmsg_conn *c, json_t *m, void *u) {
  (void)c;
  (void)u;
  assert_int_equal(json_integer_value(json_object_get(m, "id")), 3);
  pings++;
}
static void base_route_setup(pair *p) {
  assert_int_equal(wsmsg_endpoint_set_schema(p->sep, base_s), 0);
  assert_int_equal(
      wsmsg_endpoint_route_json(p->sep, "type", "ping", NULL, on_ping), 0);
  assert_int_equal(
      wsmsg_endpoint_route_json(p->sep, "type", "chat", chat_s, on_chat), 0);
  wsmsg_endpoint_set_invalid_policy(p->sep, WSMSG_INVALID_REPLY);
}

/* The endpoint's schema was silently not applied once routes existed:
 * {"type":"ping","id":"nope"} passed a base schema requiring an integer
 * id.  Now the base schema runs first, then the route's, and the errors of
 * both are reported in that order. */
static void test_schema_and_routes(void **s) {
  (void)s;
  reset();
  chats = pings = 0;
  base_s = compile(BASE_SCHEMA);
  chat_s = compile(CHAT_SCHEMA);
  pair p;
  pair_open(&p, base_route_setup);
  const char *bad = "{\"type\":\"ping\",\"id\":\"nope\"}";
  send_str(&p, bad);
  assert_int_equal(pings, 0);
  assert_string_equal(err_type(&p), "type_error.integer|id");
  /* both schemas' errors, the endpoint's first */
  const char *two = "{\"type\":\"chat\",\"id\":\"x\"}";
  send_str(&p, two);
  assert_int_equal(chats, 0);
  json_t *r = client_got(&p);
  json_t *d = json_object_get(r, "detail");
  assert_int_equal(json_array_size(d), 2);
  assert_string_equal(json_string_value(json_array_get(
                          json_object_get(json_array_get(d, 0), "loc"), 0)),
                      "id");
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(d, 1), "type")),
      "value_error.missing");
  assert_string_equal(json_string_value(json_array_get(
                          json_object_get(json_array_get(d, 1), "loc"), 0)),
                      "text");
  json_decref(r);
  /* valid for both (the id coerced by the base schema) */
  const char *ok = "{\"type\":\"chat\",\"id\":\"7\",\"text\":\"hi\"}";
  wsmsg_send_text(p.c, ok, strlen(ok));
  send_str(&p, "{\"type\":\"ping\",\"id\":3}");
  assert_int_equal(chats, 1);
  assert_int_equal(pings, 1);
  pair_free(&p);
  wsmsg_schema_free(base_s);
  wsmsg_schema_free(chat_s);
  reset();
}

static void base_route_forbid_setup(pair *p) {
  base_route_setup(p);
  assert_int_equal(wsmsg_endpoint_set_extra(p->sep, WSMSG_EXTRA_FORBID), 0);
}

/* With routes, extra=forbid/ignore is the route schema's: the endpoint's
 * schema runs with extras allowed, or it would refuse (or drop) a field
 * only the route declares ("text" here). */
static void test_schema_and_routes_extra(void **s) {
  (void)s;
  reset();
  chats = pings = 0;
  base_s = compile(BASE_SCHEMA);
  chat_s = compile("{\"properties\": {\"type\": {}, \"id\": {},"
                   "\"text\": {\"type\": \"string\"}},"
                   "\"required\": [\"text\"]}");
  pair p;
  pair_open(&p, base_route_forbid_setup);
  const char *ok = "{\"type\":\"chat\",\"id\":7,\"text\":\"hi\"}";
  send_str(&p, ok);
  assert_int_equal(chats, 1);
  /* the route's schema still forbids what it does not declare */
  const char *extra = "{\"type\":\"chat\",\"id\":7,\"text\":\"hi\",\"x\":1}";
  send_str(&p, extra);
  assert_int_equal(chats, 1);
  assert_string_equal(err_type(&p), "value_error.extra|x");
  pair_free(&p);
  wsmsg_schema_free(base_s);
  wsmsg_schema_free(chat_s);
  reset();
}

/* ---- push JSON endpoints queue nothing ---- */

static int push_policy;
static void push_setup(pair *p) {
  wsmsg_endpoint_on_text(p->sep, NULL);
  wsmsg_endpoint_on_binary(p->sep, NULL);
  /* routes with a callback and one without; no on_json, no on_invalid */
  assert_int_equal(
      wsmsg_endpoint_route_json(p->sep, "type", "chat", NULL, on_chat), 0);
  assert_int_equal(
      wsmsg_endpoint_route_json(p->sep, "type", "other", NULL, NULL), 0);
  wsmsg_endpoint_set_invalid_policy(p->sep, push_policy);
  /* 5000 invalid messages: above the default invalid-message limit */
  wsmsg_endpoint_set_invalid_limit(p->sep, 0, 0);
}

/* Invalid JSON on an endpoint with routes but no on_invalid was queued as
 * a WSMSG_EV_INVALID event nobody reads (after the reply), and so was a
 * valid message of a route without a callback. */
static void test_push_json_queues_nothing(void **s) {
  (void)s;
  static const int pols[] = {WSMSG_INVALID_REPLY, WSMSG_INVALID_IGNORE};
  for (size_t k = 0; k < 2; k++) {
    reset();
    chats = 0;
    push_policy = pols[k];
    pair p;
    pair_open(&p, push_setup);
    for (int i = 0; i < 5000; i++)
      wsmsg_send_text(p.c, "{bad", 4);
    send_str(&p, "{\"type\":\"chat\"}");
    assert_int_equal(wsmsg_conn_event_count(p.s), 0);
    assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
    assert_int_equal(chats, 1);
    if (pols[k] == WSMSG_INVALID_REPLY)
      assert_int_equal(p.cr.texts, 5000);
    else
      assert_int_equal(p.cr.texts, 0);
    /* a route without a callback: the unhandled policy (close 1003) */
    send_str(&p, "{\"type\":\"other\"}");
    assert_int_equal(wsmsg_conn_event_count(p.s), 0);
    assert_int_equal(p.cr.close.code, 1003);
    assert_string_equal(p.cr.close_reason,
                        "JSON messages without a handler are not accepted "
                        "here");
    pair_free(&p);
  }
  reset();
}

/* ---- pull API ---- */

static void pull_setup(pair *p) {
  wsmsg_endpoint_on_open(p->sep, NULL);
  wsmsg_endpoint_on_text(p->sep, NULL);
  wsmsg_endpoint_on_binary(p->sep, NULL); /* no message callback: pull */
  wsmsg_endpoint_set_json(p->sep, 1);
  wsmsg_endpoint_set_schema(p->sep, model);
}

/* Found reviewing the JSON layer's error paths after fuzz_schema_validate's
 * jsondecode finding (the same class of bug): the CLOSE policy built
 * its reason in a 124-byte buffer, so a long first error message could be
 * cut inside a character; wsmsg_close then refused the reason as invalid
 * UTF-8 and the connection stayed open.  The discriminator value is the
 * peer's, so any peer could dodge the policy. */
static void close_route_setup(pair *p) {
  assert_int_equal(
      wsmsg_endpoint_route_json(p->sep, "type", "chat", NULL, NULL), 0);
  wsmsg_endpoint_on_json(p->sep, on_json);
  wsmsg_endpoint_set_invalid_policy(p->sep, WSMSG_INVALID_CLOSE);
}

static void test_invalid_close_long_reason(void **s) {
  (void)s;
  reset();
  pair p;
  pair_open(&p, close_route_setup);
  char msg[400];
  int n = snprintf(msg, sizeof(msg), "{\"type\": \"");
  for (int i = 0; i < 60; i++)
    n += snprintf(msg + n, sizeof(msg) - (size_t)n, "\xc3\xa9");
  n += snprintf(msg + n, sizeof(msg) - (size_t)n, "\"}");
  assert_int_equal(wsmsg_send_text(p.c, msg, (size_t)n), 0);
  pump(&p);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_CLOSED);
  assert_int_equal(p.cr.close.code, 1008);
  assert_true(strlen(p.cr.close_reason) <= 123);
  assert_non_null(strstr(p.cr.close_reason, "invalid message: No match"));
  pair_free(&p);
}

static void test_pull_json_events(void **s) {
  (void)s;
  model = compile(MODEL);
  pair p;
  pair_init(&p, pull_setup);
  pump(&p);
  wsmsg_event ev;
  assert_int_equal(wsmsg_conn_next_event(p.s, &ev), 1);
  assert_int_equal(ev.type, WSMSG_EV_OPEN);
  const char *ok = "{\"user\":\"a\",\"content\":\"b\",\"timestamp\":3}";
  wsmsg_send_text(p.c, ok, strlen(ok));
  send_str(&p, "{}");
  assert_int_equal(wsmsg_conn_next_event(p.s, &ev), 1);
  assert_int_equal(ev.type, WSMSG_EV_JSON);
  assert_string_equal((const char *)ev.data, ok);
  assert_int_equal(json_integer_value(json_object_get(ev.json, "priority")), 1);
  json_t *kept = wsmsg_json_incref(ev.json); /* keep it past the next call */
  assert_int_equal(wsmsg_conn_next_event(p.s, &ev), 1);
  assert_int_equal(ev.type, WSMSG_EV_INVALID);
  assert_string_equal((const char *)ev.data, "{}");
  assert_true(json_array_size(json_object_get(ev.json, "detail")) == 3);
  assert_string_equal(json_string_value(json_object_get(kept, "user")), "a");
  wsmsg_json_decref(kept);
  /* queued events with documents are released on free (valgrind) */
  send_str(&p, ok);
  pair_free(&p);
  wsmsg_schema_free(model);
}

/* ---- sending and FFI ---- */

static void test_send_json(void **s) {
  (void)s;
  pair p;
  pair_open(&p, NULL);
  json_t *doc =
      json_pack("{s:s, s:[i,i], s:{s:b}}", "a", "x", "b", 1, 2, "c", "d", 1);
  assert_int_equal(wsmsg_send_json(p.s, doc), 0);
  pump(&p);
  assert_string_equal((char *)p.cr.last,
                      "{\"a\":\"x\",\"b\":[1,2],\"c\":{\"d\":true}}");
  /* bigger than the stack buffer */
  json_t *big = json_array();
  for (int i = 0; i < 3000; i++)
    json_array_append_new(big, json_integer(i));
  assert_int_equal(wsmsg_send_json(p.s, big), 0);
  pump(&p);
  json_t *back = client_got(&p);
  assert_true(json_equal(back, big));
  json_decref(back);
  assert_int_equal(wsmsg_send_jsonf(p.s, "{s:s, s:i}", "status", "ok", "n", 3),
                   0);
  pump(&p);
  assert_string_equal((char *)p.cr.last, "{\"status\":\"ok\",\"n\":3}");
  assert_int_equal(wsmsg_send_jsonf(p.s, "{s:", "bad"), WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_send_json(p.s, NULL), WSMSG_ERR_INVALID_ARG);
  /* FFI wrappers */
  char buf[8];
  assert_int_equal(wsmsg_json_dumpb(doc, buf, sizeof(buf)), 34);
  char full[64];
  assert_int_equal(wsmsg_json_dumpb(doc, full, sizeof(full)), 34);
  assert_string_equal(full, "{\"a\":\"x\",\"b\":[1,2],\"c\":{\"d\":true}}");
  json_t *l = wsmsg_json_loads("[true]", 6);
  assert_true(json_is_array(l));
  wsmsg_json_decref(l);
  assert_null(wsmsg_json_loads("[tru", 4));
  json_decref(doc);
  json_decref(big);
  wsmsg_close(p.s, 1000, NULL);
  assert_int_equal(wsmsg_send_json(p.s, json_true()), WSMSG_ERR_CLOSED);
  pair_free(&p);
}

/* ---- event queue bound ---- */

static void queue_setup(pair *p) {
  /* no message callback (a pull endpoint): binary goes to the queue */
  wsmsg_endpoint_on_text(p->sep, NULL);
  wsmsg_endpoint_on_binary(p->sep, NULL);
  wsmsg_endpoint_set_max_queued(p->sep, 10, 0);
}

static void test_event_queue_bound(void **s) {
  (void)s;
  pair p;
  pair_open(&p, queue_setup);
  for (int i = 0; i < 10; i++)
    wsmsg_send_binary(p.c, "x", 1);
  pump(&p);
  assert_int_equal(wsmsg_conn_event_count(p.s), 10);
  assert_int_equal(wsmsg_conn_state(p.s), WSMSG_STATE_OPEN);
  wsmsg_send_binary(p.c, "x", 1);
  pump(&p);
  assert_int_equal(p.cr.close.code, 1008);
  assert_int_equal(p.sr.close.error, WSMSG_ERR_BACKPRESSURE);
  pair_free(&p);
}

/* Pydantic v2's shapes on an endpoint: schema errors, invalid JSON and the
 * discriminator's errors, in the reply and the close reason */
static void v2_setup(pair *p) {
  route_setup(p);
  assert_int_equal(
      wsmsg_endpoint_set_error_style(p->sep, WSMSG_ERRORS_PYDANTIC_V2), 0);
  wsmsg_endpoint_set_invalid_policy(p->sep, policy);
}

/* A pair with v2_setup's endpoint (routes "chat" and "join"), the REPLY
 * policy; free_route_schemas frees the routes' schemas once it is freed. */
static void v2_open(pair *p) {
  reset();
  chat_s = compile(CHAT_SCHEMA);
  join_s = compile("{\"properties\": {\"room\": {\"type\": \"string\"}}}");
  policy = WSMSG_INVALID_REPLY;
  pair_open(p, v2_setup);
}

static void expect_reply(pair *p, const char *send, const char *detail) {
  send_str(p, send);
  char want[1024];
  snprintf(want, sizeof(want), "{\"error\":\"validation_error\",\"detail\":%s}",
           detail);
  assert_int_equal(p->cr.last_len, strlen(want));
  assert_memory_equal(p->cr.last, want, strlen(want));
}

static void test_pydantic_v2_endpoint(void **s) {
  (void)s;
  pair p;
  v2_open(&p);
  expect_reply(&p, "{\"type\": \"chat\"}",
               "[{\"type\":\"missing\",\"loc\":[\"text\"],\"msg\":\"Field "
               "required\",\"input\":{\"type\":\"chat\"}}]");
  expect_reply(&p, "{\"text\": 1}",
               "[{\"type\":\"union_tag_not_found\",\"loc\":[],\"msg\":"
               "\"Unable to extract tag using discriminator 'type'\",\"input\":"
               "{\"text\":1},\"ctx\":{\"discriminator\":\"'type'\"}}]");
  expect_reply(&p, "{\"type\": \"nope\"}",
               "[{\"type\":\"union_tag_invalid\",\"loc\":[],\"msg\":\"Input "
               "tag 'nope' found using 'type' does not match any of the "
               "expected tags: 'any', 'chat', 'join'\",\"input\":{\"type\":"
               "\"nope\"},\"ctx\":{\"discriminator\":\"'type'\",\"tag\":"
               "\"nope\",\"expected_tags\":\"'any', 'chat', 'join'\"}}]");
  expect_reply(&p, "{x",
               "[{\"type\":\"json_invalid\",\"loc\":[],\"msg\":\"Invalid "
               "JSON: string or '}' expected near 'x': line 1 column 2 (char "
               "2)\",\"input\":\"{x\",\"ctx\":{\"error\":\"string or '}' "
               "expected near 'x': line 1 column 2 (char 2)\"}}]");
  pair_free(&p);
  /* the close policy sends v2's message */
  policy = WSMSG_INVALID_CLOSE;
  pair_open(&p, v2_setup);
  send_str(&p, "{\"type\": \"chat\"}");
  assert_int_equal(p.cr.close.code, 1008);
  assert_string_equal(p.cr.close_reason, "invalid message: Field required");
  pair_free(&p);
  wsmsg_endpoint *ep = wsmsg_endpoint_new();
  assert_int_equal(wsmsg_endpoint_set_error_style(ep, 2),
                   WSMSG_ERR_INVALID_ARG);
  assert_int_equal(wsmsg_endpoint_set_error_style(NULL, 0),
                   WSMSG_ERR_INVALID_ARG);
  wsmsg_endpoint_free(ep);
  free_route_schemas();
}

/* jansson's allocations: live ones, and all since the last reset */
static long jansson_live, jansson_total;
static void *jcount_malloc(size_t n) {
  jansson_live++;
  jansson_total++;
  return malloc(n);
}
static void jcount_free(void *p) {
  if (p)
    jansson_live--;
  free(p);
}

/* v2 errors reference the document ("input"): once the invalid message is
 * answered nothing of it stays alive on the connection */
static void test_pydantic_v2_releases_document(void **s) {
  (void)s;
  pair p;
  v2_open(&p);
  json_set_alloc_funcs(jcount_malloc, jcount_free);
  jansson_live = 0;
  const char *m = "{\"type\": \"chat\", \"a\": [1, 2, {\"b\": \"c\"}]}";
  send_str(&p, m);
  json_set_alloc_funcs(malloc, free);
  assert_true(p.cr.texts > 0);
  assert_int_equal(jansson_live, 0);
  pair_free(&p);
  free_route_schemas();
}

/* A hostile message against a recursive schema that another extends with
 * allOf (as AsyncAPI's Schema Object extends draft-07's), on an endpoint
 * that coerces and fills defaults (each anyOf branch is tried on a copy):
 * 300 or 200 levels deep.  Copies inside copies made it cubic: a 3 KB
 * message cost 1.5-4.7 s.  The peer now gets "too costly" once the
 * validation's work budget is spent; a shallow one gets its errors. */

static void deep_setup(pair *p) {
  wsmsg_endpoint_on_json(p->sep, on_json);
  wsmsg_endpoint_set_schema(p->sep, model);
  wsmsg_endpoint_set_invalid_policy(p->sep, WSMSG_INVALID_REPLY);
}

static void deep_strict_setup(pair *p) {
  deep_setup(p);
  wsmsg_endpoint_set_validation(p->sep, WSMSG_VALIDATE_STRICT);
}

static void test_deep_message_bounded(void **s) {
  (void)s;
  static const struct {
    const char *schema;
    int strict, depth;
    const char *open, *leaf, *close, *type;
  } cases[] = {
      /* coercing: past the budget */
      {RECURSIVE_EXT, 0, 300, "{\"items\":", "{}", "}",
       "value_error.too_complex"},
      {RECURSIVE_EXT, 0, 200, "{\"items\":", "1", "}",
       "value_error.too_complex"},
      /* shallow: judged, with its errors */
      {RECURSIVE_EXT, 0, 20, "{\"items\":", "\"s\"", "}", "value_error.any_of"},
      /* strict: 200 levels explained within the branches' error budget */
      {RECURSIVE_EXT, 1, 200, "{\"items\":", "1", "}", "value_error.any_of"},
      /* exponential: 16 levels are 0.75 s without the work budget */
      {TWO_WAY, 1, 16, "[", "\"x\"", "]", "value_error.too_complex"},
  };
  for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
    pair p;
    reset();
    model = compile(cases[k].schema);
    pair_open(&p, cases[k].strict ? deep_strict_setup : deep_setup);
    size_t cap = (size_t)cases[k].depth * 10 + 8;
    char *m = malloc(cap);
    size_t n = 0;
    for (int i = 0; i < cases[k].depth; i++)
      n += (size_t)sprintf(m + n, "%s", cases[k].open);
    n += (size_t)sprintf(m + n, "%s", cases[k].leaf);
    for (int i = 0; i < cases[k].depth; i++)
      n += (size_t)sprintf(m + n, "%s", cases[k].close);
    json_set_alloc_funcs(jcount_malloc, jcount_free);
    jansson_total = jansson_live = 0;
    send_str(&p, m);
    json_set_alloc_funcs(malloc, free);
    assert_int_equal(jsons, 0);
    assert_true(p.cr.texts > 0);
    json_t *r = client_got(&p);
    json_t *e0 = json_array_get(json_object_get(r, "detail"), 0);
    const char *type = json_string_value(json_object_get(e0, "type"));
    if (!type || strcmp(type, cases[k].type))
      fail_msg("case %zu: %s, expected %s", k, type ? type : "(none)",
               cases[k].type);
    json_decref(r);
    /* the work budget (100,000 steps and 100 a node; a step is a schema
     * applied or a value copied, a few allocations) bounds it: up to 516 k
     * here, 13 M for the first before; and nothing is left behind */
    assert_true(jansson_total < 800000);
    assert_int_equal(jansson_live, 0);
    free(m);
    model_close(&p);
  }
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_coerced_defaults),
      cmocka_unit_test(test_strict_mode),
      cmocka_unit_test(test_invalid_reply),
      cmocka_unit_test(test_parse_rules),
      cmocka_unit_test(test_extra_policy),
      cmocka_unit_test(test_pydantic_v2_endpoint),
      cmocka_unit_test(test_pydantic_v2_releases_document),
      cmocka_unit_test(test_invalid_close),
      cmocka_unit_test(test_jsondecode_error_split_char),
      cmocka_unit_test(test_invalid_close_long_reason),
      cmocka_unit_test(test_routing),
      cmocka_unit_test(test_schema_and_routes),
      cmocka_unit_test(test_schema_and_routes_extra),
      cmocka_unit_test(test_push_json_queues_nothing),
      cmocka_unit_test(test_pull_json_events),
      cmocka_unit_test(test_send_json),
      cmocka_unit_test(test_event_queue_bound),
      cmocka_unit_test(test_deep_message_bounded),
  };
  return unit_run("json", tests, argc, argv);
}
