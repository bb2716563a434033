/* libFuzzer target: fuzz_conn_server with the server endpoint made a JSON
 * endpoint (lib/json.c: parsing, schema validation with coercion and
 * defaults, routing by a "type" discriminator, the three invalid-message
 * policies, on_json/on_invalid or JSON/INVALID events).  Input: as
 * fuzz_conn_server plus a 9th config byte (JS_* in fuzz_conn.h). */
#define FZ_CLIENT 0
#define FZ_JSON 1
#include "fuzz_conn.h"
