/* libFuzzer target: wsmsg_schema_compile on arbitrary text.
 *
 * Compiling never crashes or leaks; it fails only with the documented
 * codes, with a NUL-terminated message that fits the caller's buffer;
 * compiling from text and from the parsed json_t agree, and so do the JIT
 * and interpreted builds.  A schema that compiles validates a few fixed
 * documents (and its own "default", "const", "enum" and "examples" values)
 * under every flag combination with the invariants of
 * fuzz_schema_common.h.
 *
 * Input: 1 option byte (bit 0 draft-07 default dialect, bits 2-4 size of
 * the error buffer), then the schema text. */
#include "fuzz_schema_common.h"

static const char *const DOCS[] = {
    "null",
    "0",
    "-1",
    "1.5",
    "\"\"",
    "\"12\"",
    "\"a@b.cd\"",
    "true",
    "[]",
    "[1, \"a\", [2]]",
    "{}",
    "{\"a\": 1, \"b\": \"x\", \"c\": [null]}",
    "{\"type\": \"chat\", \"user\": \"ann\", \"n\": \"3\"}"};

static void collect(json_t *v, json_t *into, int depth) {
  if (!v || depth > 8 || json_array_size(into) > 16)
    return;
  if (json_is_object(v)) {
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) {
      if (!strcmp(k, "default") || !strcmp(k, "const"))
        json_array_append(into, x);
      else if ((!strcmp(k, "enum") || !strcmp(k, "examples")) &&
               json_is_array(x)) {
        size_t i;
        json_t *y;
        json_array_foreach(x, i, y) json_array_append(into, y);
      }
      collect(x, into, depth + 1);
    }
  } else if (json_is_array(v)) {
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) collect(x, into, depth + 1);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const size_t ERRSZ[8] = {256, 1, 2, 8, 40, 100, 1000, 256};
  if (size < 1)
    return 0;
  unsigned opt = data[0];
  const char *text = (const char *)data + 1;
  size_t len = size - 1;
  unsigned dialect = opt & 1 ? WSMSG_SCHEMA_DRAFT7 : WSMSG_SCHEMA_DRAFT2020_12;
  size_t errsz = ERRSZ[(opt >> 2) & 7];
  char err[1001];
  memset(err, 'x', sizeof(err));
  wsmsg_schema *s = (wsmsg_schema *)&err; /* must become NULL on failure */
  int r = wsmsg_schema_compile(text, len, dialect, &s, err, errsz);
  FZ_CHECK(r == 0 || r == WSMSG_ERR_JSON || r == WSMSG_ERR_SCHEMA ||
           r == WSMSG_ERR_UNSUPPORTED);
  if (r) {
    FZ_CHECK(s == NULL);
    FZ_CHECK(memchr(err, '\0', errsz) != NULL);
    FZ_CHECK(errsz == 1 || err[0] != '\0');
    FZ_CHECK(err[errsz] == 'x'); /* nothing written past the buffer */
  } else {
    FZ_CHECK(s != NULL);
    int d = wsmsg_schema_dialect(s);
    FZ_CHECK(d == 202012 || d == 7);
  }
  /* interpreted patterns: the same verdict */
  wsmsg_schema *s2 = NULL;
  int r2 = wsmsg_schema_compile(text, len, dialect | WSMSG_SCHEMA_NO_JIT, &s2,
                                NULL, 0);
  FZ_CHECK(r2 == r);
  /* from the parsed value: the same verdict (never WSMSG_ERR_JSON) */
  json_t *js = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  FZ_CHECK((js == NULL) == (r == WSMSG_ERR_JSON));
  if (js) {
    wsmsg_schema *s3 = NULL;
    json_t *before = json_deep_copy(js);
    int r3 = wsmsg_schema_compile_json(js, dialect, &s3, err, sizeof(err));
    FZ_CHECK(r3 == r);
    FZ_CHECK(json_equal(js, before)); /* the caller's value is not touched */
    json_decref(before);
    wsmsg_schema_free(s3);
  }
  if (s) {
    wsmsg_verrors *e = wsmsg_verrors_new();
    FZ_CHECK(e != NULL);
    json_t *docs = json_array();
    for (size_t i = 0; i < FZ_ARRAY_LEN(DOCS); i++)
      json_array_append_new(docs, json_loads(DOCS[i], JSON_DECODE_ANY, NULL));
    collect(js, docs, 0);
    size_t i;
    json_t *doc;
    json_array_foreach(docs, i, doc) {
      validate_all_flags(s, s2, doc, e, WSMSG_VERRORS_DEFAULT_MAX);
    }
    json_decref(docs);
    wsmsg_verrors_free(e);
  }
  json_decref(js);
  wsmsg_schema_free(s);
  wsmsg_schema_free(s2);
  return 0;
}
