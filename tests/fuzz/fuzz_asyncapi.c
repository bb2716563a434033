/* libFuzzer target: AsyncAPI documents (YAML and JSON) and the peer side
 * of a served one.
 *
 * Mode bit 1 clear: the input is a document.  wsmsg_yaml_loads never
 * crashes, leaks or hangs (aliases are capped once expanded, nesting is
 * bounded); what it returns serializes as JSON and a NULL comes with a
 * NUL-terminated message.  With bit 0 the document is also loaded whole
 * (wsmsg_asyncapi_load: validation against the official schema in
 * ../shared/data/asyncapi/schemas, $refs, message compilation) and, when
 * it loads, served: every failure is one of the documented codes with a
 * detail line.
 *
 * Mode bit 1 set: a fixed document (a templated address with an
 * x-pattern parameter, query and header bindings, two messages told apart
 * by trying each, a discriminated address) is served once, and the input
 * is "PATH\nHEADER\nMESSAGE": an upgrade request for PATH with X-Key:
 * HEADER, then MESSAGE as a text frame.  The handshake ends in 101, 400
 * (with a JSON body) or 404; an open connection answers the message or
 * not, and nothing crashes or leaks.
 *
 * Input: 1 mode byte, then the text. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <wsmsg.h>

#define SCHEMAS "../shared/data/asyncapi/schemas"

static const char DOC[] =
    "asyncapi: 3.0.0\n"
    "info: {title: fuzz, version: '1'}\n"
    "channels:\n"
    "  room:\n"
    "    address: '/r/{id}/x'\n"
    "    parameters: {id: {enum: [a, bb, 'c d'], x-pattern: '^[a-z ]+$'}}\n"
    "    bindings:\n"
    "      ws:\n"
    "        query: {type: object, properties: {n: {type: integer, "
    "maximum: 9}, b: {type: boolean}}}\n"
    "        headers: {type: object, properties: {X-Key: {type: string, "
    "maxLength: 8}}}\n"
    "    messages:\n"
    "      p: {payload: {type: object, required: [x], properties: {x: "
    "{type: number}}}}\n"
    "      q: {payload: {type: object, required: [y], properties: {y: "
    "{type: string, pattern: '^[a-z]+$'}}}}\n"
    "  ctl:\n"
    "    address: /ctl\n"
    "    messages:\n"
    "      a: {payload: {type: object, properties: {t: {const: a}, v: "
    "{type: integer}}, required: [t]}}\n"
    "      b: {payload: {type: object, properties: {t: {const: b}}, "
    "required: [t]}}\n"
    "operations:\n"
    "  r: {action: receive, channel: {$ref: '#/channels/room'}}\n"
    "  c: {action: receive, channel: {$ref: '#/channels/ctl'}}\n";

static wsmsg_asyncapi *served;
static wsmsg_server *srv;

static void on_op(wsmsg_conn *c, const char *op, const char *m, json_t *msg,
                  void *u) {
  (void)op;
  (void)m;
  (void)u;
  if (!json_is_object(msg))
    abort(); /* every message here is validated as an object */
  wsmsg_send_json(c, msg);
}

static void setup(void) {
  served = wsmsg_asyncapi_new(NULL);
  wsmsg_asyncapi_set_schema_dir(served, SCHEMAS);
  if (wsmsg_asyncapi_load(served, DOC, sizeof(DOC) - 1)) {
    fprintf(stderr, "fuzz_asyncapi: %s\n", wsmsg_asyncapi_detail(served));
    abort();
  }
  wsmsg_asyncapi_on_operation(served, NULL, on_op, NULL);
  srv = wsmsg_server_new();
  if (wsmsg_asyncapi_serve(served, srv, NULL))
    abort();
}

static void peer(const char *in, size_t n) {
  const char *nl1 = memchr(in, '\n', n);
  const char *nl2 =
      nl1 ? memchr(nl1 + 1, '\n', n - (size_t)(nl1 + 1 - in)) : NULL;
  size_t plen = nl1 ? (size_t)(nl1 - in) : n;
  size_t hlen = nl1 ? (nl2 ? (size_t)(nl2 - nl1 - 1) : n - plen - 1) : 0;
  const char *msg = nl2 ? nl2 + 1 : "";
  size_t mlen = nl2 ? n - (size_t)(msg - in) : 0;
  if (plen > 2000 || hlen > 2000 || mlen > 60000)
    return;
  char req[4400];
  int rl = snprintf(req, sizeof(req),
                    "GET %.*s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Version: 13\r\nX-Key: %.*s\r\n\r\n",
                    (int)plen, in, (int)hlen, nl1 ? nl1 + 1 : "");
  wsmsg_conn *c = wsmsg_server_accept(srv, NULL);
  if (!c)
    return;
  wsmsg_conn_recv(c, req, (size_t)rl);
  const void *out;
  size_t on = wsmsg_conn_pending(c, &out);
  if (on >= 12) {
    int status = atoi((const char *)out + 9);
    if (status != 101 && status != 400 && status != 404 && status != 431)
      abort();
    if (status == 400 && wsmsg_conn_state(c) == WSMSG_STATE_OPEN)
      abort();
  }
  wsmsg_conn_consume(c, on);
  if (wsmsg_conn_state(c) == WSMSG_STATE_OPEN) {
    uint8_t *f = malloc(mlen + 14);
    size_t h = 0;
    f[h++] = 0x81;
    if (mlen < 126) {
      f[h++] = (uint8_t)(0x80 | mlen);
    } else {
      f[h++] = 0x80 | 126;
      f[h++] = (uint8_t)(mlen >> 8);
      f[h++] = (uint8_t)mlen;
    }
    memset(f + h, 0, 4); /* mask 0: the payload as is */
    h += 4;
    memcpy(f + h, msg, mlen);
    wsmsg_conn_recv(c, f, h + mlen);
    free(f);
    while ((on = wsmsg_conn_pending(c, &out)) > 0)
      wsmsg_conn_consume(c, on);
  }
  wsmsg_conn_free(c);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  setup(); /* once: what it allocates lives as long as the process */
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  unsigned mode = data[0];
  const char *text = (const char *)data + 1;
  size_t len = size - 1;
  if (mode & 2) {
    peer(text, len);
    return 0;
  }
  char err[128];
  memset(err, 'x', sizeof(err));
  json_t *j = wsmsg_yaml_loads(text, len, err, sizeof(err));
  if (!j) {
    if (!memchr(err, '\0', sizeof(err)))
      abort();
  } else {
    char *s = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!s)
      abort(); /* every value must serialize (no NaN, no cycles) */
    free(s);
    json_decref(j);
  }
  if (!(mode & 1))
    return 0;
  wsmsg_asyncapi *a = wsmsg_asyncapi_new(NULL);
  if (!a)
    return 0;
  wsmsg_asyncapi_set_schema_dir(a, SCHEMAS);
  int rc = wsmsg_asyncapi_load(a, text, len);
  if (rc) {
    if (rc != WSMSG_ERR_JSON && rc != WSMSG_ERR_VALIDATION &&
        rc != WSMSG_ERR_UNSUPPORTED && rc != WSMSG_ERR_SCHEMA &&
        rc != WSMSG_ERR_NOT_FOUND && rc != WSMSG_ERR_STATE &&
        rc != WSMSG_ERR_NOMEM)
      abort();
    if (!wsmsg_asyncapi_detail(a)[0])
      abort();
  } else {
    wsmsg_server *s2 = wsmsg_server_new();
    rc = wsmsg_asyncapi_serve(a, s2, NULL);
    if (rc && !wsmsg_asyncapi_detail(a)[0])
      abort();
    wsmsg_server_free(s2);
  }
  wsmsg_asyncapi_free(a);
  return 0;
}
