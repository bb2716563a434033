/* Schemas that make a validator work hard on a short, deep document,
 * shared by the unit tests of the validation limits (test_schema.c) and
 * of a JSON endpoint under attack (test_json.c).  Header-only. */
#ifndef WSMSG_TEST_HOSTILE_SCHEMAS_H
#define WSMSG_TEST_HOSTILE_SCHEMAS_H

/* Two recursive schemas applied to each level (allOf of a base and an
 * extension, as AsyncAPI's Schema Object extends draft-07's), each with
 * an anyOf. */
static const char RECURSIVE_EXT[] =
    "{\"$defs\": {"
    "\"base\": {\"type\": [\"object\", \"boolean\"], \"properties\": "
    "{\"items\": {\"anyOf\": [{\"$ref\": \"#/$defs/base\"}, {\"type\": "
    "\"array\"}]}}},"
    "\"ext\": {\"allOf\": [{\"$ref\": \"#/$defs/base\"}, {\"properties\": "
    "{\"items\": {\"anyOf\": [{\"$ref\": \"#/$defs/ext\"}, {\"type\": "
    "\"array\", \"items\": {\"$ref\": \"#/$defs/ext\"}}]}}}]}},"
    "\"$ref\": \"#/$defs/ext\"}";

/* Two anyOf branches that both recurse into the same value: 2^depth tries
 * for a document that fails deep down (43 bytes, 20 levels: 21 s before
 * the work budget). */
static const char TWO_WAY[] =
    "{\"$defs\": {\"n\": {\"anyOf\": ["
    "{\"type\": \"array\", \"items\": {\"$ref\": \"#/$defs/n\"}},"
    "{\"type\": \"array\", \"items\": {\"$ref\": \"#/$defs/n\"}, "
    "\"minItems\": 1}]}}, \"$ref\": \"#/$defs/n\"}";

#endif
