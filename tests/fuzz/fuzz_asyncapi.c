/* libFuzzer target: AsyncAPI document loading (YAML and JSON).
 *
 * wsmsg_yaml_loads never crashes, leaks or hangs (aliases are capped
 * once expanded, nesting is bounded); what it returns serializes as JSON
 * and a NULL comes with a NUL-terminated message.  Documents are also
 * loaded whole (wsmsg_asyncapi_load: official schema validation against
 * ../shared/data/asyncapi/schemas, $refs, message compilation) and, when
 * they load, served on a server: every failure is one of the documented
 * codes with a detail line.
 *
 * Input: 1 mode byte (bit 0: also load and serve), then the text. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <wsmsg.h>

#define SCHEMAS "../shared/data/asyncapi/schemas"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  unsigned mode = data[0];
  const char *text = (const char *)data + 1;
  size_t len = size - 1;
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
    wsmsg_server *srv = wsmsg_server_new();
    rc = wsmsg_asyncapi_serve(a, srv, NULL);
    if (rc && !wsmsg_asyncapi_detail(a)[0])
      abort();
    wsmsg_server_free(srv);
  }
  wsmsg_asyncapi_free(a);
  return 0;
}
