/* JSON Schema Test Suite runner for wsmsg_schema_*.
 *
 *   suite_runner [-v] [--no-jit] [--only PATTERN] [SUITE_DIR]
 *     (default SUITE_DIR: ../shared/data/json-schema-test-suite)
 *
 * --only runs the files whose "draft/file" path matches PATTERN (fnmatch:
 * '*' also matches '/'), e.g. --only draft7/ref.json or --only '*items.json';
 * a pattern that matches no file is an error.
 *
 * Runs draft2020-12/ and draft7/ (including optional/ and optional/format/),
 * prints one row per file (passed, failed, skipped + reason) and exits
 * non-zero on any failure.  Every skip is listed below with its reason; a
 * test group that fails to compile and is not listed is a failure.  Every
 * test is validated twice (with and without an error list: the two verdicts
 * must agree, and an invalid verdict must come with errors) and the document
 * must come out unchanged (strict mode never rewrites). */
#include <dirent.h>
#include <fnmatch.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wsmsg.h>

typedef struct skip {
  const char *draft; /* "draft2020-12", "draft7" or NULL for both */
  const char *file;  /* relative to the draft directory */
  const char *group; /* test group description, NULL = whole file */
  const char *reason;
} skip;

#define REMOTE "remote $ref (outside the schema document) is unsupported"
#define DYNREF "$dynamicRef is unsupported"
#define METASCHEMA                                                             \
  "needs the meta-schema (a remote $ref); meta-schemas are not bundled"

static const skip SKIPS[] = {
    /* whole files */
    {NULL, "refRemote.json", NULL, REMOTE},
    {"draft2020-12", "dynamicRef.json", NULL, DYNREF},
    {"draft2020-12", "optional/dynamicRef.json", NULL, DYNREF},
    {"draft2020-12", "vocabulary.json", NULL,
     "$vocabulary needs custom meta-schemas (remote)"},
    {"draft2020-12", "optional/format-assertion.json", NULL,
     "format-assertion vocabulary needs custom meta-schemas (remote)"},
    {NULL, "optional/cross-draft.json", NULL,
     "mixes drafts through remote $refs (2019-09 is not supported)"},
    {NULL, "optional/bignum.json", NULL,
     "jansson integers are 64-bit: the file does not even parse"},
    {NULL, "optional/content.json", NULL,
     "contentEncoding/contentMediaType are annotations only"},
    /* groups that use unsupported features */
    {"draft2020-12", "defs.json", "validate definition against metaschema",
     METASCHEMA},
    {"draft7", "definitions.json", "validate definition against metaschema",
     METASCHEMA},
    {NULL, "ref.json", "remote ref, containing refs itself", METASCHEMA},
    {"draft2020-12", "unevaluatedItems.json",
     "unevaluatedItems with $dynamicRef", DYNREF},
    {"draft2020-12", "unevaluatedProperties.json",
     "unevaluatedProperties with $dynamicRef", DYNREF},
};

/* Format files run with WSMSG_VALIDATE_FORMAT: the asserted formats, and
 * unknown.json (unknown formats must be ignored even then). */
static const char *const ASSERTED[] = {"date-time", "email", "uuid",   "ipv4",
                                       "ipv6",      "uri",   "unknown"};

static int verbose;
static const char *only; /* --only PATTERN, or NULL */
static int files_run;
static unsigned no_jit;

typedef struct counts {
  int pass, fail, skip;
} counts;

static const skip *find_skip(const char *draft, const char *file,
                             const char *group) {
  for (size_t i = 0; i < sizeof(SKIPS) / sizeof(SKIPS[0]); i++) {
    const skip *s = &SKIPS[i];
    if (s->draft && strcmp(s->draft, draft) != 0)
      continue;
    if (strcmp(s->file, file) != 0)
      continue;
    if (!s->group && !group)
      return s;
    if (s->group && group && strcmp(s->group, group) == 0)
      return s;
  }
  return NULL;
}

static int cmpstr(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted *.json names in dir (malloc'd array of malloc'd strings). */
static char **list_json(const char *dir, size_t *n) {
  *n = 0;
  DIR *d = opendir(dir);
  if (!d)
    return NULL;
  char **v = NULL;
  size_t cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t len = strlen(e->d_name);
    if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
      continue;
    if (*n == cap) {
      cap = cap ? cap * 2 : 64;
      v = realloc(v, cap * sizeof(*v));
    }
    v[(*n)++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(v, *n, sizeof(*v), cmpstr);
  return v;
}

static void row(const char *draft, const char *file, const counts *c,
                const char *reason) {
  printf("| %-13s | %-42s | %6d | %6d | %7d | %s\n", draft, file, c->pass,
         c->fail, c->skip, reason ? reason : "");
}

static void run_file(const char *root, const char *draft, const char *rel,
                     unsigned options, counts *total, int *files_failed) {
  counts c = {0, 0, 0};
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s/%s", root, draft, rel);
  const skip *fs = find_skip(draft, rel, NULL);
  unsigned flags = WSMSG_VALIDATE_STRICT;
  const char *file_reason = NULL;
  if (strncmp(rel, "optional/format/", 16) == 0) {
    char name[1024];
    snprintf(name, sizeof(name), "%s", rel + 16);
    name[strlen(name) - 5] = '\0';
    bool asserted = false;
    for (size_t i = 0; i < sizeof(ASSERTED) / sizeof(ASSERTED[0]); i++)
      asserted |= strcmp(ASSERTED[i], name) == 0;
    if (asserted)
      flags |= WSMSG_VALIDATE_FORMAT;
    else
      file_reason = "format not asserted (annotation only)";
  }
  if (fs)
    file_reason = fs->reason;
  json_error_t je;
  json_t *groups = json_load_file(path, JSON_ALLOW_NUL, &je);
  if (!groups) {
    if (file_reason) {
      c.skip = 1;
      row(draft, rel, &c, file_reason);
      total->skip += c.skip;
      return;
    }
    fprintf(stderr, "%s: %s (line %d)\n", path, je.text, je.line);
    c.fail = 1;
    row(draft, rel, &c, "cannot load the file");
    total->fail++;
    (*files_failed)++;
    return;
  }
  const char *reason = file_reason;
  wsmsg_verrors *errs = wsmsg_verrors_new();
  size_t gi;
  json_t *g;
  json_array_foreach(groups, gi, g) {
    const char *gdesc = json_string_value(json_object_get(g, "description"));
    json_t *tests = json_object_get(g, "tests");
    if (file_reason) {
      c.skip += (int)json_array_size(tests);
      continue;
    }
    const skip *gs = find_skip(draft, rel, gdesc);
    char err[512];
    wsmsg_schema *s = NULL;
    int rc = wsmsg_schema_compile_json(json_object_get(g, "schema"),
                                       options | no_jit, &s, err, sizeof(err));
    if (rc != 0) {
      if (gs && rc == WSMSG_ERR_UNSUPPORTED) {
        c.skip += (int)json_array_size(tests);
        reason = gs->reason;
        if (verbose)
          printf("  skip %s: %s [%s]\n", gdesc, gs->reason, err);
        continue;
      }
      printf("  FAIL %s/%s: \"%s\": compile: %s (%s)\n", draft, rel, gdesc, err,
             wsmsg_strerror(rc));
      c.fail += (int)json_array_size(tests);
      continue;
    }
    if (gs)
      printf("  note %s/%s: \"%s\" listed as skipped but compiles\n", draft,
             rel, gdesc);
    size_t ti;
    json_t *t;
    json_array_foreach(tests, ti, t) {
      const char *tdesc = json_string_value(json_object_get(t, "description"));
      bool expect = json_is_true(json_object_get(t, "valid"));
      json_t *data = json_object_get(t, "data");
      json_t *copy = json_deep_copy(data);
      int r1 = wsmsg_schema_validate(s, copy, flags, errs);
      int r2 = wsmsg_schema_validate(s, copy, flags, NULL);
      bool ok = true;
      const char *why = "";
      if ((r1 == 0) != expect) {
        ok = false;
        why = expect ? "rejected a valid instance" : "accepted an invalid one";
      } else if ((r1 == 0) != (r2 == 0)) {
        ok = false;
        why = "verdict differs without an error list";
      } else if (r1 != 0 && (r1 != WSMSG_ERR_VALIDATION ||
                             wsmsg_verrors_count(errs) == 0)) {
        ok = false;
        why = "invalid without errors";
      } else if (!json_equal(copy, data)) {
        ok = false;
        why = "strict validation modified the document";
      }
      if (ok) {
        c.pass++;
      } else {
        c.fail++;
        char *d = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
        printf("  FAIL %s/%s: \"%s\" / \"%s\": %s (data %s)\n", draft, rel,
               gdesc, tdesc, why, d ? d : "?");
        if (wsmsg_verrors_count(errs)) {
          char buf[1024];
          wsmsg_verrors_dump(errs, buf, sizeof(buf));
          printf("       errors: %s\n", buf);
        }
        free(d);
      }
      json_decref(copy);
    }
    wsmsg_schema_free(s);
  }
  wsmsg_verrors_free(errs);
  json_decref(groups);
  row(draft, rel, &c, c.skip ? reason : NULL);
  total->pass += c.pass;
  total->fail += c.fail;
  total->skip += c.skip;
  if (c.fail)
    (*files_failed)++;
}

/* Runs every file of one directory; returns how many files it had (0 for
 * a missing or empty directory). */
static size_t run_dir(const char *root, const char *draft, const char *sub,
                      unsigned options, counts *total, int *files_failed) {
  char dir[4096];
  snprintf(dir, sizeof(dir), "%s/%s%s%s", root, draft, *sub ? "/" : "", sub);
  size_t n;
  char **names = list_json(dir, &n);
  for (size_t i = 0; i < n; i++) {
    char rel[1024];
    snprintf(rel, sizeof(rel), "%s%s%s", sub, *sub ? "/" : "", names[i]);
    char path[1100];
    snprintf(path, sizeof(path), "%s/%s", draft, rel);
    if (!only || fnmatch(only, path, 0) == 0) {
      files_run++;
      run_file(root, draft, rel, options, total, files_failed);
    }
    free(names[i]);
  }
  free(names);
  return n;
}

int main(int argc, char **argv) {
  const char *root = "../shared/data/json-schema-test-suite";
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-v") == 0)
      verbose = 1;
    else if (strcmp(argv[i], "--no-jit") == 0)
      no_jit = WSMSG_SCHEMA_NO_JIT;
    else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
      only = argv[++i];
    else
      root = argv[i];
  }
  /* min_pass: the tests each draft is known to pass; fewer (a missing or
   * emptied directory, a test newly skipped) fails the run, so that a
   * green run cannot be one that ran nothing.  Raise it when more pass. */
  static const struct {
    const char *dir;
    unsigned options;
    int min_pass;
  } drafts[] = {{"draft2020-12", WSMSG_SCHEMA_DRAFT2020_12, 1581},
                {"draft7", WSMSG_SCHEMA_DRAFT7, 1186}};
  char probe[4096];
  snprintf(probe, sizeof(probe), "%s/draft2020-12", root);
  DIR *d = opendir(probe);
  if (!d) {
    fprintf(stderr, "suite_runner: no test suite at %s\n", root);
    return 2;
  }
  closedir(d);
  printf("| %-13s | %-42s | %6s | %6s | %7s | %s\n", "draft", "file", "passed",
         "failed", "skipped", "reason");
  printf(
      "|---------------|--------------------------------------------|--------"
      "|--------|---------|-------\n");
  int files_failed = 0, too_few = 0;
  for (size_t k = 0; k < 2; k++) {
    counts total = {0, 0, 0};
    if (run_dir(root, drafts[k].dir, "", drafts[k].options, &total,
                &files_failed) == 0) {
      printf("schema-suite: FAIL: no test file in %s/%s\n", root,
             drafts[k].dir);
      too_few++;
    }
    run_dir(root, drafts[k].dir, "optional", drafts[k].options, &total,
            &files_failed);
    run_dir(root, drafts[k].dir, "optional/format", drafts[k].options, &total,
            &files_failed);
    printf("| %-13s | %-42s | %6d | %6d | %7d |\n", drafts[k].dir, "TOTAL",
           total.pass, total.fail, total.skip);
    if (!only && total.pass < drafts[k].min_pass) { /* --only: a subset */
      printf("schema-suite: FAIL: %s: %d tests passed, at least %d expected\n",
             drafts[k].dir, total.pass, drafts[k].min_pass);
      too_few++;
    }
  }
  if (too_few) {
    printf("schema-suite: FAILED (too few tests ran)\n");
    return 1;
  }
  if (only && files_run == 0) {
    fprintf(stderr, "suite_runner: no file matches --only '%s'\n", only);
    return 1;
  }
  if (files_failed) {
    printf("schema-suite: FAILED (%d files with failures)\n", files_failed);
    return 1;
  }
  printf("schema-suite: all run tests passed\n");
  return 0;
}
