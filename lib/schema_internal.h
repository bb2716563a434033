/* Private declarations of the JSON Schema engine (schema_*.c).  Not
 * installed.
 *
 * A schema is compiled once into a graph of immutable `wsm_snode`s that live
 * in an arena owned by the wsmsg_schema; validation only reads that graph, so
 * one compiled schema can be used by any number of threads at once. */
#ifndef WSMSG_SCHEMA_INTERNAL_H
#define WSMSG_SCHEMA_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "internal.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- dialects ------------------------------------------------------------ */

enum { WSM_D2020 = 0, WSM_D7 = 1 };

/* ---- instance types (the "type" keyword) ----------------------------------
 */

enum {
  WSM_T_NULL = 1u << 0,
  WSM_T_BOOLEAN = 1u << 1,
  WSM_T_OBJECT = 1u << 2,
  WSM_T_ARRAY = 1u << 3,
  WSM_T_NUMBER = 1u << 4,
  WSM_T_STRING = 1u << 5,
  WSM_T_INTEGER = 1u << 6
};

/* ---- formats asserted with WSMSG_VALIDATE_FORMAT --------------------------
 */

enum {
  WSM_FMT_NONE = 0, /* no format, or one we only annotate */
  WSM_FMT_DATE_TIME,
  WSM_FMT_EMAIL,
  WSM_FMT_UUID,
  WSM_FMT_IPV4,
  WSM_FMT_IPV6,
  WSM_FMT_URI
};

/* 1 if the string s[0..n) is valid for the format (WSM_FMT_*). */
WSM_HIDDEN bool wsm_format_check(int fmt, const char *s, size_t n);
/* Name of a WSM_FMT_* as used in "format". */
WSM_HIDDEN const char *wsm_format_name(int fmt);

/* ---- keywords present in a node (wsm_snode.kw) ----------------------------
 */

enum {
  WSM_K_TYPE = 1u << 0,
  WSM_K_ENUM = 1u << 1,
  WSM_K_CONST = 1u << 2,
  WSM_K_MULTIPLE_OF = 1u << 3,
  WSM_K_MAXIMUM = 1u << 4,
  WSM_K_EXMAX = 1u << 5,
  WSM_K_MINIMUM = 1u << 6,
  WSM_K_EXMIN = 1u << 7,
  WSM_K_MAXLEN = 1u << 8,
  WSM_K_MINLEN = 1u << 9,
  WSM_K_PATTERN = 1u << 10,
  WSM_K_FORMAT = 1u << 11,
  WSM_K_MAXITEMS = 1u << 12,
  WSM_K_MINITEMS = 1u << 13,
  WSM_K_UNIQUE = 1u << 14,
  WSM_K_ITEMS = 1u << 15, /* prefixItems and/or items */
  WSM_K_CONTAINS = 1u << 16,
  WSM_K_MAXPROPS = 1u << 17,
  WSM_K_MINPROPS = 1u << 18,
  WSM_K_PROPS = 1u << 19, /* properties, required */
  WSM_K_EXTRA = 1u << 20, /* patternProperties and/or additionalProperties */
  WSM_K_DEPREQ = 1u << 21,
  WSM_K_PROPNAMES = 1u << 22,
  WSM_K_DEPSCHEMAS = 1u << 23,
  WSM_K_REF = 1u << 24,
  WSM_K_ALLOF = 1u << 25,
  WSM_K_ANYOF = 1u << 26,
  WSM_K_ONEOF = 1u << 27,
  WSM_K_NOT = 1u << 28,
  WSM_K_IF = 1u << 29,
  WSM_K_UNEVAL_PROPS = 1u << 30,
  WSM_K_UNEVAL_ITEMS = 1u << 31
};

#define WSM_K_NUMERIC                                                          \
  (WSM_K_MULTIPLE_OF | WSM_K_MAXIMUM | WSM_K_EXMAX | WSM_K_MINIMUM |           \
   WSM_K_EXMIN)
#define WSM_K_STRINGKW                                                         \
  (WSM_K_MAXLEN | WSM_K_MINLEN | WSM_K_PATTERN | WSM_K_FORMAT)
#define WSM_K_ARRAYKW                                                          \
  (WSM_K_MAXITEMS | WSM_K_MINITEMS | WSM_K_UNIQUE | WSM_K_ITEMS |              \
   WSM_K_CONTAINS | WSM_K_UNEVAL_ITEMS)
#define WSM_K_OBJECTKW                                                         \
  (WSM_K_MAXPROPS | WSM_K_MINPROPS | WSM_K_PROPS | WSM_K_EXTRA |               \
   WSM_K_DEPREQ | WSM_K_PROPNAMES | WSM_K_DEPSCHEMAS | WSM_K_UNEVAL_PROPS)
#define WSM_K_INPLACE                                                          \
  (WSM_K_REF | WSM_K_ALLOF | WSM_K_ANYOF | WSM_K_ONEOF | WSM_K_NOT |           \
   WSM_K_IF | WSM_K_DEPSCHEMAS)

/* ---- compiled schema nodes --------------------------------------------------
 */

/* A number from the schema, kept both ways for exact integer comparisons,
 * and as a decimal (dd x 10^de, from its shortest round-trip text) for
 * multipleOf. */
typedef struct wsm_num {
  double d;
  json_int_t i;
  uint64_t dd;
  int de;
  bool is_int; /* the literal is an integer (or a real with no fraction that
                  fits json_int_t) */
  bool real;   /* the literal was written as a real (3.0) */
} wsm_num;

typedef struct wsm_regex {
  pcre2_code *code;
  const char *src; /* the pattern as written in the schema */
} wsm_regex;

typedef struct wsm_snode wsm_snode;

typedef struct wsm_prop {
  const char *key;
  size_t len;
  wsm_snode *s;
  const json_t *dflt; /* "default" of the subschema, or NULL */
  bool required;
} wsm_prop;

typedef struct wsm_patprop {
  wsm_regex *re;
  wsm_snode *s;
} wsm_patprop;

typedef struct wsm_name {
  const char *s;
  size_t len;
} wsm_name;

typedef struct wsm_depreq {
  wsm_name key;
  wsm_name *req;
  size_t n;
} wsm_depreq;

typedef struct wsm_depschema {
  wsm_name key;
  wsm_snode *s;
} wsm_depschema;

enum { WSM_BOOL_NONE = 0, WSM_BOOL_TRUE = 1, WSM_BOOL_FALSE = 2 };

struct wsm_snode {
  uint32_t kw;      /* WSM_K_* present */
  uint8_t boolean;  /* WSM_BOOL_*: a boolean schema */
  uint8_t types;    /* WSM_T_* allowed by "type" */
  uint8_t format;   /* WSM_FMT_* (asserted only with the FORMAT flag) */
  bool annot;       /* has unevaluated*: collect annotations */
  bool items_tuple; /* "items": false after a prefix reports tuple length */
  bool has_min_contains;
  const char *where;   /* JSON pointer of this schema in the document */
  const json_t *enumv; /* array */
  const json_t *constv;
  wsm_num multiple_of, maximum, exmax, minimum, exmin;
  size_t max_len, min_len, max_items, min_items, max_props, min_props;
  size_t min_contains, max_contains;
  wsm_regex *pattern;
  wsm_snode **prefix; /* prefixItems (draft 7: items as an array) */
  size_t nprefix;
  wsm_snode *items; /* items (draft 7: additionalItems, or items schema) */
  wsm_snode *contains;
  wsm_prop *props;
  size_t nprops;
  int32_t *ptab; /* open-addressing index of props by key, -1 = empty */
  size_t ptab_mask;
  wsm_name *required; /* required names that are not in props */
  size_t nrequired;
  size_t ndefaults; /* props with a default */
  wsm_patprop *patprops;
  size_t npatprops;
  wsm_snode *additional;
  wsm_snode *propnames;
  wsm_depreq *depreq;
  size_t ndepreq;
  wsm_depschema *depschemas;
  size_t ndepschemas;
  wsm_snode *ref;
  wsm_snode **allof, **anyof, **oneof;
  size_t nallof, nanyof, noneof;
  wsm_snode *not_, *if_, *then_, *else_;
  wsm_snode *uneval_props, *uneval_items;
};

/* Arena: blocks freed all at once with the schema. */
typedef struct wsm_arena_block wsm_arena_block;
typedef struct wsm_arena {
  const wsmsg_mem *mem; /* the schema's */
  wsm_arena_block *head;
} wsm_arena;

WSM_HIDDEN void *wsm_arena_alloc(wsm_arena *a, size_t n);
WSM_HIDDEN char *wsm_arena_strndup(wsm_arena *a, const char *s, size_t n);
WSM_HIDDEN void wsm_arena_free(wsm_arena *a);

struct wsmsg_schema {
  wsmsg_mem mem; /* the schema, its arena, compile-time scratch */
  json_t *doc;   /* our own deep copy of the schema document */
  wsm_snode *root;
  wsm_arena arena;
  wsm_regex **regexes; /* to free */
  size_t nregexes;
  int dialect; /* of the root */
  bool has_regex;
  pcre2_general_context *gctx; /* PCRE2's allocations through mem */
  pcre2_match_context *mctx;   /* match and depth limits (read-only) */
  uint32_t match_limit, depth_limit;
};

/* A PCRE2 general context allocating through `mem` (which must outlive
 * it); NULL if out of memory. */
WSM_HIDDEN pcre2_general_context *wsm_pcre2_gctx(const wsmsg_mem *mem);

/* Lookup of a property by name in a node's props (index or -1). */
WSM_HIDDEN int32_t wsm_prop_find(const wsm_snode *n, const char *key,
                                 size_t len);

/* ---- errors -------------------------------------------------------------- */

typedef struct wsm_verr {
  json_t *loc;
  char *msg;
  const char *type; /* static string */
  json_t *ctx;      /* or NULL */
  json_t *input;    /* v2 lists only: the value at loc (a reference) */
} wsm_verr;

struct wsmsg_verrors {
  wsmsg_mem mem; /* msg strings, the array, scratch of validate calls */
  wsm_verr *v;
  size_t n, cap, max;
  bool truncated;
  bool v2;              /* Pydantic v2 shapes (set per validate call) */
  pcre2_match_data *md; /* cached for the regexes of validate calls */
};

/* Append an error, taking ownership of loc, msg (allocated from e->mem)
 * and ctx (freed if the error is dropped).  Returns 0, 1 if the list is full
 * (error dropped, truncated set) or WSMSG_ERR_NOMEM. */
WSM_HIDDEN int wsm_verrors_add(wsmsg_verrors *e, json_t *loc, const char *type,
                               char *msg, json_t *ctx);
/* The same with the value at loc (borrowed; a v2 list keeps a reference,
 * and the error is rewritten to Pydantic v2's shape with it). */
WSM_HIDDEN int wsm_verrors_add_in(wsmsg_verrors *e, json_t *loc,
                                  const char *type, char *msg, json_t *ctx,
                                  const json_t *input);
/* Rewrite a v1 error (type, msg from `mem`, ctx) as Pydantic v2 reports it
 * (schema_v2.c); unchanged for types it does not know or out of memory. */
WSM_HIDDEN void wsm_v2_convert(const wsmsg_mem *mem, const char **type,
                               char **msg, json_t **ctx, const json_t *input);
/* Append the error for text[0..len) that is not JSON (jansson's error,
 * which it rewrites into wsmsg's words): loc ["__root__"], type
 * value_error.jsondecode, ctx {msg, pos, lineno, colno}; a v2 list's input
 * is the text (if it is UTF-8).  The one shape of this error, for
 * wsmsg_schema_validate_text and JSON endpoints alike.  0 or
 * WSMSG_ERR_NOMEM. */
WSM_HIDDEN int wsm_verrors_add_jsondecode(wsmsg_verrors *e, json_error_t *je,
                                          const char *text, size_t len);
/* Move errors [from, n) into a new JSON array (new reference, or NULL on
 * allocation failure) and drop them from the list. */
/* Drop errors [from, n). */
WSM_HIDDEN void wsm_verrors_truncate(wsmsg_verrors *e, size_t from);
WSM_HIDDEN json_t *wsm_verrors_take(wsmsg_verrors *e, size_t from);
/* wsmsg_schema_validate that appends to `out` instead of clearing it (a
 * JSON endpoint's base schema, then its route's). */
WSM_HIDDEN int wsm_schema_validate_more(const wsmsg_schema *s, json_t *doc,
                                        unsigned flags, wsmsg_verrors *out);

/* ---- small string builder ------------------------------------------------ */

typedef struct wsm_sb {
  const wsmsg_mem *mem; /* where the string is allocated */
  char *p;
  size_t n, cap;
  bool oom;
} wsm_sb;

WSM_HIDDEN void wsm_sb_add(wsm_sb *b, const char *s, size_t n);
WSM_HIDDEN void wsm_sb_adds(wsm_sb *b, const char *s);
WSM_HIDDEN void wsm_sb_addc(wsm_sb *b, char c);
/* The NUL-terminated string (the caller frees it with b->mem), or NULL
 * after an allocation failure. */
WSM_HIDDEN char *wsm_sb_finish(wsm_sb *b);

/* A double as Python's repr() writes it ("1.0", "0.1", "1e+16"). */
WSM_HIDDEN void wsm_fmt_double(double d, char *buf, size_t size);
/* {k: v} (takes v, also on failure); NULL if out of memory. */
WSM_HIDDEN json_t *wsm_obj1(const char *k, json_t *v);
/* A JSON value as Python's repr() of the decoded value ('a', 1, True, None,
 * [1, 'x'], {'k': 1.5}). */
WSM_HIDDEN void wsm_py_repr(wsm_sb *b, const json_t *v);

/* ---- exact decimals (schema_num.c) -------------------------------------- */

/* A number as digits x 10^exp (digits without trailing zeros; 0 for zero;
 * the sign dropped), a double from its shortest round-trip text. */
WSM_HIDDEN void wsm_decimal_of_double(double v, uint64_t *digits, int *exp);
WSM_HIDDEN void wsm_decimal_of_int(json_int_t v, uint64_t *digits, int *exp);
/* 1 if xd x 10^xe is an integer multiple of md x 10^me (exact). */
WSM_HIDDEN bool wsm_decimal_multiple(uint64_t xd, int xe, uint64_t md, int me);

/* ---- parse errors -------------------------------------------------------- */

/* Make jansson's error text fit for a peer: valid UTF-8, and in wsmsg's own
 * words where jansson's would confuse (a NUL in an object key). */
WSM_HIDDEN void wsm_jerr_text(json_error_t *e);

/* ---- numbers and equality ------------------------------------------------ */

/* JSON Schema equality: 1 and 1.0 are equal, objects compare by content. */
WSM_HIDDEN bool wsm_json_equal(const json_t *a, const json_t *b);
/* The instance is an integer in the JSON Schema sense (1 and 1.0). */
WSM_HIDDEN bool wsm_is_integral(const json_t *v);

/* ---- JSON pointers and URI fragments (schema_compile.c) ------------------ */

/* Percent-decode the NUL-terminated s in place (a '%' not followed by two
 * hex digits stays as it is); returns the new length. */
WSM_HIDDEN size_t wsm_pct_decode(char *s);
/* A reference token tok[0..len) of a JSON pointer with "~1" and "~0"
 * unescaped: a new NUL-terminated string (wsm_free) and its length in
 * *out_len (if not NULL), or NULL when out of memory. */
WSM_HIDDEN char *wsm_ptr_unescape(const wsmsg_mem *m, const char *tok,
                                  size_t len, size_t *out_len);
/* One step of a JSON pointer (RFC 6901): the child of `j` that the reference
 * token tok[0..len) ("~0" and "~1" still escaped) names, an object's member
 * or an array's element (a decimal index without leading zeros); NULL if
 * there is none, or when out of memory (then *nomem is set). */
WSM_HIDDEN json_t *wsm_json_ptr_step(const wsmsg_mem *m, const json_t *j,
                                     const char *tok, size_t len, bool *nomem);

#endif /* WSMSG_SCHEMA_INTERNAL_H */
