/* Shared by the JSON Schema targets: checks on a validation result and on
 * an error list, and the validation of one document under one set of
 * flags with the invariants docs/schema.md promises. */
#ifndef WSMSG_FUZZ_SCHEMA_COMMON_H
#define WSMSG_FUZZ_SCHEMA_COMMON_H

#include "fuzz_common.h"

#include <jansson.h>

#define ALL_FLAGS                                                              \
  (WSMSG_VALIDATE_COERCE | WSMSG_VALIDATE_DEFAULTS | WSMSG_VALIDATE_FORMAT)

/* Everything an error list says must hang together. */
static inline void check_verrors(const wsmsg_verrors *e, size_t cap) {
  size_t n = wsmsg_verrors_count(e);
  FZ_CHECK(n <= cap);
  if (wsmsg_verrors_truncated(e))
    FZ_CHECK(n == cap);
  FZ_CHECK(wsmsg_verrors_msg(e, n) == NULL);
  FZ_CHECK(wsmsg_verrors_type(e, n) == NULL);
  FZ_CHECK(wsmsg_verrors_loc(e, n) == NULL);
  FZ_CHECK(wsmsg_verrors_loc_dump(e, n, NULL, 0) == WSMSG_ERR_INVALID_ARG);
  for (size_t i = 0; i < n; i++) {
    const char *msg = wsmsg_verrors_msg(e, i), *type = wsmsg_verrors_type(e, i);
    FZ_CHECK(msg && type && *type);
    json_t *loc = wsmsg_verrors_loc(e, i);
    FZ_CHECK(json_is_array(loc));
    for (size_t k = 0; k < json_array_size(loc); k++) {
      json_t *it = json_array_get(loc, k);
      FZ_CHECK(json_is_string(it) || json_is_integer(it));
    }
    json_t *ctx = wsmsg_verrors_ctx(e, i);
    FZ_CHECK(ctx == NULL || json_is_object(ctx));
    int len = wsmsg_verrors_loc_dump(e, i, NULL, 0);
    FZ_CHECK(len >= 2);
    char *buf = malloc((size_t)len + 1);
    FZ_CHECK(buf != NULL);
    FZ_CHECK(wsmsg_verrors_loc_dump(e, i, buf, (size_t)len + 1) == len);
    FZ_CHECK(strlen(buf) == (size_t)len);
    json_t *back = json_loads(buf, JSON_ALLOW_NUL, NULL);
    FZ_CHECK(back != NULL && json_equal(back, loc));
    json_decref(back);
    /* truncation: always NUL-terminated, same full length */
    char small[4];
    FZ_CHECK(wsmsg_verrors_loc_dump(e, i, small, sizeof(small)) == len);
    FZ_CHECK(strlen(small) < sizeof(small));
    free(buf);
  }
  json_t *all = wsmsg_verrors_to_json(e);
  FZ_CHECK(all != NULL);
  json_t *detail = json_object_get(all, "detail");
  FZ_CHECK(json_is_array(detail) && json_array_size(detail) == n);
  int len = wsmsg_verrors_dump(e, NULL, 0);
  FZ_CHECK(len > 0);
  char *buf = malloc((size_t)len + 1);
  FZ_CHECK(buf != NULL);
  FZ_CHECK(wsmsg_verrors_dump(e, buf, (size_t)len + 1) == len);
  json_t *back = json_loads(buf, JSON_ALLOW_NUL, NULL);
  FZ_CHECK(back != NULL && json_equal(back, all));
  json_decref(back);
  json_decref(all);
  free(buf);
}

#define REWRITING_FLAGS                                                        \
  (WSMSG_VALIDATE_COERCE | WSMSG_VALIDATE_DEFAULTS |                           \
   WSMSG_VALIDATE_EXTRA_IGNORE)

/* Whether validating `doc` with `s` hits a pattern's match limit (with a
 * large error list, so that no cap hides it).  The JIT and the interpreter
 * count their limits differently (docs/schema.md, "Pattern cost"), so
 * they may disagree exactly then. */
static inline int hits_regex_limit(const wsmsg_schema *s, const json_t *doc,
                                   unsigned flags) {
  wsmsg_verrors *big = wsmsg_verrors_new();
  FZ_CHECK(big != NULL);
  FZ_CHECK(wsmsg_verrors_set_max(big, 100000) == 0);
  json_t *c = json_deep_copy(doc);
  FZ_CHECK(c != NULL);
  wsmsg_schema_validate(s, c, flags, big);
  json_decref(c);
  int len = wsmsg_verrors_dump(big, NULL, 0);
  FZ_CHECK(len > 0);
  char *buf = malloc((size_t)len + 1);
  FZ_CHECK(buf != NULL);
  wsmsg_verrors_dump(big, buf, (size_t)len + 1);
  int hit = strstr(buf, "regex_limit") || strstr(buf, "string_pattern_limit");
  free(buf);
  wsmsg_verrors_free(big);
  return hit;
}

/* The dump of an error list, for comparing two runs (malloc'd). */
static inline char *dump_verrors(const wsmsg_verrors *e) {
  int len = wsmsg_verrors_dump(e, NULL, 0);
  FZ_CHECK(len > 0);
  char *buf = malloc((size_t)len + 1);
  FZ_CHECK(buf != NULL);
  FZ_CHECK(wsmsg_verrors_dump(e, buf, (size_t)len + 1) == len);
  return buf;
}

/* Validate `doc` (not modified) against `s` with `flags` and check what
 * docs/schema.md promises:
 *  - the verdict is 0 or WSMSG_ERR_VALIDATION, with errors iff invalid;
 *  - the same verdict without an error list, and (when valid) the same
 *    rewrite;
 *  - without COERCE/DEFAULTS/EXTRA_IGNORE the document is not touched;
 *  - a valid rewrite is a fixed point: validating it again with the same
 *    flags is valid and changes nothing;
 *  - `alt` (the same schema compiled the other way: JIT or not) agrees,
 *    error for error, unless a pattern hit its match limit in either (the
 *    two count differently).
 * Returns the verdict. */
static inline int validate_checked(const wsmsg_schema *s,
                                   const wsmsg_schema *alt, const json_t *doc,
                                   unsigned flags, wsmsg_verrors *e,
                                   size_t cap) {
  json_t *a = json_deep_copy(doc), *b = json_deep_copy(doc);
  FZ_CHECK(a && b);
  int r = wsmsg_schema_validate(s, a, flags, e);
  FZ_CHECK(r == 0 || r == WSMSG_ERR_VALIDATION);
  FZ_CHECK((r == 0) == (wsmsg_verrors_count(e) == 0));
  check_verrors(e, cap);
  int r2 = wsmsg_schema_validate(s, b, flags, NULL);
  FZ_CHECK(r2 == r);
  if (r == 0)
    FZ_CHECK(json_equal(a, b));
  if (!(flags & REWRITING_FLAGS))
    FZ_CHECK(json_equal(a, doc));
  char *d1 = dump_verrors(e);
  if (alt) {
    json_t *c = json_deep_copy(doc);
    int ra = wsmsg_schema_validate(alt, c, flags, e);
    char *d2 = dump_verrors(e);
    if (ra != r || strcmp(d1, d2) != 0 || (r == 0 && !json_equal(a, c)))
      FZ_CHECK(hits_regex_limit(s, doc, flags) ||
               hits_regex_limit(alt, doc, flags));
    free(d2);
    json_decref(c);
  }
  /* a valid coerced rewrite is a fixed point; with defaults it need not be:
   * defaults filled in by the branch of a oneOf/anyOf that matched can make
   * another branch match when the result is validated again (JSON Schema's
   * oneOf is not idempotent under defaults; docs/schema.md) */
  if (r == 0 && (flags & WSMSG_VALIDATE_COERCE) &&
      !(flags & (WSMSG_VALIDATE_DEFAULTS | WSMSG_VALIDATE_EXTRA_IGNORE))) {
    json_t *again = json_deep_copy(a);
    FZ_CHECK(again != NULL);
    FZ_CHECK(wsmsg_schema_validate(s, again, flags, e) == 0);
    FZ_CHECK(json_equal(again, a));
    json_decref(again);
  }
  /* the same again: validation is deterministic */
  json_t *c = json_deep_copy(doc);
  FZ_CHECK(wsmsg_schema_validate(s, c, flags, e) == r);
  char *d3 = dump_verrors(e);
  FZ_CHECK(strcmp(d1, d3) == 0);
  free(d3);
  json_decref(c);
  free(d1);
  json_decref(a);
  json_decref(b);
  return r;
}

/* All combinations of the basic flags, and the others with a few (no
 * monotonicity between them: "format" or a coercion inside "not" or "oneOf" can
 * turn a verdict either way). */
static inline void validate_all_flags(const wsmsg_schema *s,
                                      const wsmsg_schema *alt,
                                      const json_t *doc, wsmsg_verrors *e,
                                      size_t cap) {
  for (unsigned f = 0; f < 8; f++)
    validate_checked(s, alt, doc, f, e, cap);
  /* Pydantic's extra and v2 error shapes, with the usual lax flags */
  static const unsigned MORE[] = {
      WSMSG_VALIDATE_EXTRA_IGNORE,
      WSMSG_VALIDATE_EXTRA_IGNORE | WSMSG_VALIDATE_COERCE |
          WSMSG_VALIDATE_DEFAULTS,
      WSMSG_VALIDATE_EXTRA_FORBID | WSMSG_VALIDATE_COERCE,
      WSMSG_VALIDATE_PYDANTIC_V2,
      WSMSG_VALIDATE_PYDANTIC_V2 | WSMSG_VALIDATE_COERCE |
          WSMSG_VALIDATE_DEFAULTS | WSMSG_VALIDATE_EXTRA_IGNORE};
  for (size_t i = 0; i < sizeof(MORE) / sizeof(MORE[0]); i++)
    validate_checked(s, alt, doc, MORE[i], e, cap);
}

#endif
