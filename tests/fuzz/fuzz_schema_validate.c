/* libFuzzer target: wsmsg_schema_validate / _validate_text on arbitrary
 * documents.
 *
 * The schema is one of a seed set (realistic message schemas exercising
 * every keyword group: see SCHEMAS) or, with bit 6 of the first byte, taken
 * from the input.  The document is the rest of the input, validated under
 * the fuzzer's flags (strict, coerce, defaults, format) and then under all
 * eight combinations, with the invariants of fuzz_schema_common.h (JIT and
 * interpreted patterns agree, error lists are well-formed and bounded by
 * their cap, strict mode never writes, a valid rewrite is a fixed point,
 * determinism).  wsmsg_schema_validate_text must agree with parsing plus
 * wsmsg_schema_validate, and report invalid JSON as one jsondecode error.
 *
 * Input: byte 0: bits 0-2 flags, bits 4-5 error cap (default, 1, 3, 1000),
 * bit 6 schema from the input, bit 7 draft-07 default dialect; byte 1:
 * seed schema index, or with bit 6 bytes 1-2 the schema's length; then the
 * schema (bit 6) and the document. */
#include "fuzz_schema_common.h"

static const char *const SCHEMAS[] = {
    /* the chat message of the guide, with defaults */
    "{\"type\": \"object\", \"properties\": {\"user\": {\"type\": \"string\", "
    "\"minLength\": 1}, \"content\": {\"type\": \"string\", \"maxLength\": "
    "20}, \"timestamp\": {\"type\": \"number\"}, \"room\": {\"type\": "
    "\"string\", \"default\": \"lobby\"}}, \"required\": [\"user\", "
    "\"content\", \"timestamp\"], \"additionalProperties\": false}",
    /* numbers */
    "{\"type\": [\"integer\", \"null\"], \"minimum\": -5, "
    "\"exclusiveMaximum\": 1000, \"multipleOf\": 3}",
    "{\"type\": \"number\", \"multipleOf\": 0.01, \"maximum\": 1e300}",
    /* strings, patterns, formats */
    "{\"type\": \"string\", \"pattern\": \"^[a-z]+\\\\d{2,}$\", "
    "\"minLength\": 3}",
    "{\"anyOf\": [{\"format\": \"email\"}, {\"format\": \"uuid\"}, "
    "{\"format\": \"date-time\"}, {\"format\": \"ipv4\"}, {\"format\": "
    "\"ipv6\"}, {\"format\": \"uri\"}], \"type\": \"string\"}",
    "{\"type\": \"object\", \"patternProperties\": {\"^x-\": {\"type\": "
    "\"integer\"}, \"\\\\p{Lu}\": {\"type\": \"boolean\"}}, "
    "\"propertyNames\": {\"maxLength\": 8, \"pattern\": \"^[^ ]*$\"}}",
    /* arrays */
    "{\"type\": \"array\", \"prefixItems\": [{\"type\": \"integer\"}, "
    "{\"type\": \"string\"}], \"items\": {\"type\": \"boolean\"}, "
    "\"maxItems\": 5, \"uniqueItems\": true}",
    "{\"type\": \"array\", \"contains\": {\"const\": 1}, \"minContains\": "
    "2, \"maxContains\": 3, \"unevaluatedItems\": false}",
    /* applicators and discriminated unions */
    "{\"oneOf\": [{\"type\": \"object\", \"properties\": {\"type\": "
    "{\"const\": \"chat\"}, \"text\": {\"type\": \"string\"}}, "
    "\"required\": [\"type\", \"text\"]}, {\"type\": \"object\", "
    "\"properties\": {\"type\": {\"const\": \"join\"}, \"room\": {\"type\": "
    "\"string\", \"default\": \"lobby\"}}, \"required\": [\"type\"]}]}",
    "{\"if\": {\"properties\": {\"n\": {\"type\": \"integer\"}}}, \"then\": "
    "{\"required\": [\"m\"]}, \"else\": {\"not\": {\"required\": "
    "[\"m\"]}}, \"dependentRequired\": {\"card\": [\"cvv\"]}}",
    "{\"allOf\": [{\"$ref\": \"#/$defs/pos\"}, {\"enum\": [1, 2, 3, \"4\", "
    "null, [1], {\"a\": 1}]}], \"$defs\": {\"pos\": {\"type\": "
    "\"integer\", \"exclusiveMinimum\": 0}}}",
    /* recursion */
    "{\"$defs\": {\"node\": {\"type\": \"object\", \"properties\": "
    "{\"v\": {\"type\": \"integer\"}, \"kids\": {\"type\": \"array\", "
    "\"items\": {\"$ref\": \"#/$defs/node\"}}}, \"unevaluatedProperties\": "
    "false}}, \"$ref\": \"#/$defs/node\"}",
    /* draft-07 */
    "{\"$schema\": \"http://json-schema.org/draft-07/schema#\", \"type\": "
    "\"array\", \"items\": [{\"type\": \"string\"}, {\"type\": "
    "\"number\"}], \"additionalItems\": false, \"dependencies\": {}}",
    "{\"$schema\": \"http://json-schema.org/draft-07/schema#\", "
    "\"definitions\": {\"b\": {\"type\": \"boolean\", \"default\": true}}, "
    "\"type\": \"object\", \"properties\": {\"flag\": {\"$ref\": "
    "\"#/definitions/b\"}, \"on\": {\"type\": \"boolean\", \"default\": "
    "\"yes\"}}, \"dependencies\": {\"a\": [\"b\"], \"c\": {\"required\": "
    "[\"d\"]}}}",
    /* booleans */
    "true",
    "{\"properties\": {\"a\": false}, \"additionalProperties\": {\"type\": "
    "[\"string\", \"integer\"], \"maxLength\": 4}}",
};
#define NSCHEMAS FZ_ARRAY_LEN(SCHEMAS)

static wsmsg_schema *seed[NSCHEMAS][2];

static void compile_seeds(void) {
  if (seed[0][0])
    return;
  for (size_t i = 0; i < NSCHEMAS; i++) {
    for (int j = 0; j < 2; j++) {
      char err[256];
      int r = wsmsg_schema_compile(SCHEMAS[i], strlen(SCHEMAS[i]),
                                   j ? WSMSG_SCHEMA_NO_JIT : 0, &seed[i][j],
                                   err, sizeof(err));
      if (r) {
        fprintf(stderr, "seed schema %zu: %s\n", i, err);
        abort();
      }
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const size_t CAPS[4] = {WSMSG_VERRORS_DEFAULT_MAX, 1, 3, 1000};
  if (size < 2)
    return 0;
  compile_seeds();
  fz in = {data, size};
  unsigned b0 = fz_u8(&in);
  unsigned flags = b0 & 7;
  size_t cap = CAPS[(b0 >> 4) & 3];
  const wsmsg_schema *s, *alt;
  wsmsg_schema *own = NULL, *own2 = NULL;
  if (b0 & 0x40) {
    fz st = fz_sub(&in, fz_u16(&in));
    unsigned dialect = b0 & 0x80 ? WSMSG_SCHEMA_DRAFT7 : 0;
    if (wsmsg_schema_compile((const char *)st.p, st.n, dialect, &own, NULL,
                             0) != 0)
      return 0;
    FZ_CHECK(wsmsg_schema_compile((const char *)st.p, st.n,
                                  dialect | WSMSG_SCHEMA_NO_JIT, &own2, NULL,
                                  0) == 0);
    s = own;
    alt = own2;
  } else {
    size_t k = fz_u8(&in) % NSCHEMAS;
    s = seed[k][0];
    alt = seed[k][1];
  }
  const char *text = (const char *)in.p;
  size_t len = in.n;

  wsmsg_verrors *e = wsmsg_verrors_new();
  FZ_CHECK(e != NULL);
  FZ_CHECK(wsmsg_verrors_set_max(e, 0) == WSMSG_ERR_INVALID_ARG);
  FZ_CHECK(wsmsg_verrors_set_max(e, cap) == 0);

  json_t *doc_out = (json_t *)e; /* must be overwritten */
  int rt = wsmsg_schema_validate_text(s, text, len, flags, e, &doc_out);
  json_error_t je;
  json_t *doc = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
  if (!doc) {
    FZ_CHECK(rt == WSMSG_ERR_JSON);
    FZ_CHECK(doc_out == NULL);
    FZ_CHECK(wsmsg_verrors_count(e) == 1);
    FZ_CHECK(!strcmp(wsmsg_verrors_type(e, 0), "value_error.jsondecode"));
    check_verrors(e, cap);
  } else {
    FZ_CHECK(rt == 0 || rt == WSMSG_ERR_VALIDATION);
    FZ_CHECK(doc_out != NULL);
    char *dt = dump_verrors(e);
    int r = validate_checked(s, alt, doc, flags, e, cap);
    if (!(flags & WSMSG_VALIDATE_COERCE)) {
      /* only coercion can change the root's type, which validate_text
       * can do and validate cannot */
      FZ_CHECK(r == rt);
      char *dv = dump_verrors(e);
      FZ_CHECK(!strcmp(dt, dv));
      free(dv);
      if (r == 0) {
        json_t *c = json_deep_copy(doc);
        wsmsg_schema_validate(s, c, flags, NULL);
        FZ_CHECK(json_equal(c, doc_out));
        json_decref(c);
      }
    }
    free(dt);
    json_decref(doc_out);
    validate_all_flags(s, alt, doc, e, cap);
    json_decref(doc);
  }
  FZ_CHECK(wsmsg_schema_validate(NULL, NULL, 0, e) == WSMSG_ERR_INVALID_ARG);
  wsmsg_verrors_free(e);
  wsmsg_schema_free(own);
  wsmsg_schema_free(own2);
  return 0;
}
