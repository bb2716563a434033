/* Pydantic v2 error shapes: the v1 errors the validator records, rewritten
 * as Pydantic v2 (FastAPI >= 0.100) reports them: {type, loc, msg, input,
 * ctx} with v2's type names, messages and ctx keys.  docs/schema.md has the
 * table. */
#include "schema_internal.h"

#include <stdio.h>
#include <string.h>

/* Python's str() of a number (ctx values in messages: 3, 2.5, 1e+16) */
static void num_str(wsm_sb *b, const json_t *v) {
  char buf[64];
  if (json_is_integer(v))
    snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
  else if (json_is_real(v))
    wsm_fmt_double(json_real_value(v), buf, sizeof(buf));
  else
    snprintf(buf, sizeof(buf), "?");
  wsm_sb_adds(b, buf);
}

/* 'a', 'b' or 'c' (Pydantic v2's "expected" for literals and enums) */
static void expected_list(wsm_sb *b, const json_t *values) {
  size_t n = json_array_size(values);
  for (size_t i = 0; i < n; i++) {
    if (i)
      wsm_sb_adds(b, i + 1 == n ? " or " : ", ");
    wsm_py_repr(b, json_array_get(values, i));
  }
}

static size_t container_size(const json_t *v) {
  if (json_is_array(v))
    return json_array_size(v);
  if (json_is_object(v))
    return json_object_size(v);
  return 0;
}

/* too_short / too_long: "List should have at least 2 items after
 * validation, not 1" */
static void length_error(wsm_sb *m, json_t **ctx, const char *field_type,
                         bool at_least, const json_t *limit, size_t actual) {
  json_int_t lim = json_integer_value(limit);
  wsm_sb_adds(m, field_type);
  wsm_sb_adds(m, at_least ? " should have at least " : " should have at most ");
  num_str(m, limit);
  wsm_sb_adds(m, lim == 1 ? " item" : " items");
  char buf[48];
  snprintf(buf, sizeof(buf), " after validation, not %zu", actual);
  wsm_sb_adds(m, buf);
  *ctx = json_object();
  json_object_set_new(*ctx, "field_type", json_string(field_type));
  json_object_set_new(*ctx, at_least ? "min_length" : "max_length",
                      json_integer(lim));
  json_object_set_new(*ctx, "actual_length", json_integer((json_int_t)actual));
}

static const struct {
  const char *v1, *v2, *msg;
} SIMPLE[] = {
    {"value_error.missing", "missing", "Field required"},
    {"value_error.extra", "extra_forbidden", "Extra inputs are not permitted"},
    {"type_error.str", "string_type", "Input should be a valid string"},
    {"type_error.list", "list_type", "Input should be a valid list"},
    {"type_error.dict", "dict_type", "Input should be a valid dictionary"},
    {"type_error.none.allowed", "none_required", "Input should be None"},
    {"value_error.ipv4address", "ip_v4_address",
     "Input is not a valid IPv4 address"},
    {"value_error.ipv6address", "ip_v6_address",
     "Input is not a valid IPv6 address"},
    {"value_error.datetime", "datetime_parsing",
     "Input should be a valid datetime, invalid datetime format"},
    {"type_error.uuid", "uuid_parsing",
     "Input should be a valid UUID, invalid format"},
    {"value_error.url", "url_parsing", "Input should be a valid URL"},
    {"value_error.email", "value_error", "value is not a valid email address"},
};

static const struct {
  const char *v1, *v2, *op, *key;
} NUMERIC[] = {
    {"value_error.number.not_ge", "greater_than_equal",
     "greater than or equal to", "ge"},
    {"value_error.number.not_gt", "greater_than", "greater than", "gt"},
    {"value_error.number.not_le", "less_than_equal", "less than or equal to",
     "le"},
    {"value_error.number.not_lt", "less_than", "less than", "lt"},
    {"value_error.number.not_multiple", "multiple_of", "a multiple of",
     "multiple_of"},
};

/* Types Pydantic v2 does not have (JSON Schema keywords it never
 * generates): the v1 name without its "value_error."/"type_error." prefix,
 * dots as underscores; static strings. */
static const struct {
  const char *v1, *v2;
} INVENTED[] = {
    {"value_error.str.regex_limit", "string_pattern_limit"},
    {"value_error.list.unique_items", "list_unique_items"},
    {"value_error.list.contains", "list_contains"},
    {"value_error.list.min_contains", "list_min_contains"},
    {"value_error.list.max_contains", "list_max_contains"},
    {"value_error.list.extra_items", "list_extra_items"},
    {"value_error.dependent_required", "dependent_required"},
    {"value_error.property_name", "property_name"},
    {"value_error.any_of", "any_of"},
    {"value_error.one_of.no_match", "one_of_no_match"},
    {"value_error.one_of.multiple_matches", "one_of_multiple_matches"},
    {"value_error.not", "not"},
    {"value_error.false_schema", "false_schema"},
    {"value_error.too_deep", "too_deep"},
    {"value_error.too_complex", "too_complex"},
};

void wsm_v2_convert(const wsmsg_mem *mem, const char **type, char **msg,
                    json_t **ctx, const json_t *input) {
  const char *t = *type;
  const json_t *c1 = *ctx;
  wsm_sb m = {.mem = mem};
  json_t *c2 = NULL;
  const char *t2 = NULL;
  for (size_t i = 0; !t2 && i < sizeof(SIMPLE) / sizeof(SIMPLE[0]); i++)
    if (strcmp(t, SIMPLE[i].v1) == 0) {
      t2 = SIMPLE[i].v2;
      wsm_sb_adds(&m, SIMPLE[i].msg);
      c2 = json_incref((json_t *)c1); /* format: {"format": ...} */
      if (strcmp(t2, "missing") == 0 || strcmp(t2, "extra_forbidden") == 0 ||
          strncmp(t2, "ip_v", 4) == 0 || strcmp(t2, "none_required") == 0 ||
          strcmp(t2, "string_type") == 0 || strcmp(t2, "list_type") == 0 ||
          strcmp(t2, "dict_type") == 0) {
        json_decref(c2);
        c2 = NULL;
      }
    }
  for (size_t i = 0; !t2 && i < sizeof(NUMERIC) / sizeof(NUMERIC[0]); i++)
    if (strcmp(t, NUMERIC[i].v1) == 0) {
      const char *k1 = strcmp(NUMERIC[i].key, "multiple_of") == 0
                           ? "multiple_of"
                           : "limit_value";
      const json_t *lim = json_object_get(c1, k1);
      t2 = NUMERIC[i].v2;
      wsm_sb_adds(&m, "Input should be ");
      wsm_sb_adds(&m, NUMERIC[i].op);
      wsm_sb_addc(&m, ' ');
      num_str(&m, lim);
      c2 = wsm_obj1(NUMERIC[i].key, json_deep_copy(lim));
    }
  if (t2) {
    /* done */
  } else if (strcmp(t, "type_error.integer") == 0) {
    if (json_is_string(input)) {
      t2 = "int_parsing";
      wsm_sb_adds(&m, "Input should be a valid integer, unable to parse "
                      "string as an integer");
    } else if (json_is_real(input)) {
      t2 = "int_from_float";
      wsm_sb_adds(&m, "Input should be a valid integer, got a number with a "
                      "fractional part");
    } else {
      t2 = "int_type";
      wsm_sb_adds(&m, "Input should be a valid integer");
    }
  } else if (strcmp(t, "type_error.float") == 0) {
    t2 = json_is_string(input) ? "float_parsing" : "float_type";
    wsm_sb_adds(&m, json_is_string(input)
                        ? "Input should be a valid number, unable to parse "
                          "string as a number"
                        : "Input should be a valid number");
  } else if (strcmp(t, "type_error.bool") == 0) {
    bool parse = json_is_string(input) || json_is_number(input);
    t2 = parse ? "bool_parsing" : "bool_type";
    wsm_sb_adds(&m, parse ? "Input should be a valid boolean, unable to "
                            "interpret input"
                          : "Input should be a valid boolean");
  } else if (strcmp(t, "type_error.none.not_allowed") == 0) {
    /* only from paths that know no expected type */
    t2 = "none_forbidden";
    wsm_sb_adds(&m, "Input should not be None");
  } else if (strcmp(t, "type_error.enum") == 0 ||
             strcmp(t, "value_error.const") == 0) {
    const json_t *values = json_object_get(c1, "enum_values");
    if (!values)
      values = json_object_get(c1, "permitted");
    t2 = "literal_error";
    wsm_sb e = {.mem = mem};
    expected_list(&e, values);
    char *exp = wsm_sb_finish(&e);
    wsm_sb_adds(&m, "Input should be ");
    wsm_sb_adds(&m, exp ? exp : "?");
    c2 = wsm_obj1("expected", json_string(exp ? exp : "?"));
    wsm_free(mem, exp);
  } else if (strcmp(t, "value_error.any_str.max_length") == 0 ||
             strcmp(t, "value_error.any_str.min_length") == 0) {
    bool min = strstr(t, "min_") != NULL;
    const json_t *lim = json_object_get(c1, "limit_value");
    t2 = min ? "string_too_short" : "string_too_long";
    wsm_sb_adds(&m, min ? "String should have at least "
                        : "String should have at most ");
    num_str(&m, lim);
    wsm_sb_adds(&m,
                json_integer_value(lim) == 1 ? " character" : " characters");
    c2 = wsm_obj1(min ? "min_length" : "max_length", json_deep_copy(lim));
  } else if (strcmp(t, "value_error.str.regex") == 0) {
    const json_t *p = json_object_get(c1, "pattern");
    t2 = "string_pattern_mismatch";
    wsm_sb_adds(&m, "String should match pattern '");
    wsm_sb_adds(&m, json_string_value(p) ? json_string_value(p) : "");
    wsm_sb_addc(&m, '\'');
    c2 = json_incref((json_t *)c1);
  } else if (strcmp(t, "value_error.list.max_items") == 0 ||
             strcmp(t, "value_error.list.min_items") == 0 ||
             strcmp(t, "value_error.dict.max_properties") == 0 ||
             strcmp(t, "value_error.dict.min_properties") == 0) {
    bool min = strstr(t, ".min_") != NULL;
    bool list = strncmp(t, "value_error.list", 16) == 0;
    t2 = min ? "too_short" : "too_long";
    length_error(&m, &c2, list ? "List" : "Dictionary", min,
                 json_object_get(c1, "limit_value"), container_size(input));
  } else if (strcmp(t, "value_error.tuple.length") == 0) {
    t2 = "too_long";
    length_error(&m, &c2, "Tuple", false,
                 json_object_get(c1, "expected_length"), container_size(input));
  } else if (strcmp(t,
                    "value_error.discriminated_union.missing_discriminator") ==
             0) {
    const char *k = json_string_value(json_object_get(c1, "discriminator_key"));
    char *disc = wsm_asprintf(mem, "'%s'", k ? k : "");
    t2 = "union_tag_not_found";
    wsm_sb_adds(&m, "Unable to extract tag using discriminator ");
    wsm_sb_adds(&m, disc ? disc : "?");
    c2 = wsm_obj1("discriminator", json_string(disc ? disc : "?"));
    wsm_free(mem, disc);
  } else if (strcmp(t,
                    "value_error.discriminated_union.invalid_discriminator") ==
             0) {
    const char *k = json_string_value(json_object_get(c1, "discriminator_key"));
    const char *v =
        json_string_value(json_object_get(c1, "discriminator_value"));
    const char *allowed =
        json_string_value(json_object_get(c1, "allowed_values"));
    char *disc = wsm_asprintf(mem, "'%s'", k ? k : "");
    t2 = "union_tag_invalid";
    wsm_sb_adds(&m, "Input tag '");
    wsm_sb_adds(&m, v ? v : "");
    wsm_sb_adds(&m, "' found using ");
    wsm_sb_adds(&m, disc ? disc : "?");
    wsm_sb_adds(&m, " does not match any of the expected tags: ");
    wsm_sb_adds(&m, allowed ? allowed : "");
    c2 = json_object();
    json_object_set_new(c2, "discriminator", json_string(disc ? disc : "?"));
    json_object_set_new(c2, "tag", json_string(v ? v : ""));
    json_object_set_new(c2, "expected_tags",
                        json_string(allowed ? allowed : ""));
    wsm_free(mem, disc);
  } else if (strcmp(t, "value_error.jsondecode") == 0) {
    t2 = "json_invalid";
    wsm_sb_adds(&m, "Invalid JSON: ");
    wsm_sb_adds(&m, *msg);
    c2 = wsm_obj1("error", json_string(*msg));
  } else if (strcmp(t, "value_error") == 0) {
    t2 = "value_error";
    wsm_sb_adds(&m, "Value error, ");
    wsm_sb_adds(&m, *msg);
  } else {
    for (size_t i = 0; !t2 && i < sizeof(INVENTED) / sizeof(INVENTED[0]); i++)
      if (strcmp(t, INVENTED[i].v1) == 0)
        t2 = INVENTED[i].v2;
    if (!t2)
      return; /* unknown: keep v1 */
    /* v1's message, capitalised as v2's are */
    wsm_sb_adds(&m, *msg);
    if (m.p && m.p[0] >= 'a' && m.p[0] <= 'z')
      m.p[0] = (char)(m.p[0] - 'a' + 'A');
    c2 = json_incref((json_t *)c1);
  }
  char *nm = wsm_sb_finish(&m);
  if (!nm) {
    json_decref(c2);
    return; /* out of memory: keep v1 */
  }
  wsm_free(mem, *msg);
  *msg = nm;
  json_decref(*ctx);
  *ctx = c2;
  *type = t2;
}
