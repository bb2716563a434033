/* Schema validation throughput, to compare with bench_pydantic.py.
 *
 *   bench_schema [MODELS_JSON] [SECONDS_PER_CASE]
 *
 * MODELS_JSON (default tests/bench/bench_models.json) holds, per model, a
 * JSON Schema and a valid and an invalid document; bench_pydantic.py reads
 * the same documents.  Prints "case<TAB>messages per second" lines:
 *   <model>/validate/<mode>        pre-parsed document (json_t)
 *   <model>/parse+validate/<mode>  JSON text -> validated document
 *   <model>/invalid/<mode>         JSON text -> errors -> FastAPI 422 body text
 * mode: strict (plain JSON Schema) or lax (COERCE|DEFAULTS, what Pydantic
 * does by default). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wsmsg.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct job {
  const wsmsg_schema *s;
  json_t *doc;
  const char *text;
  size_t len;
  unsigned flags;
  wsmsg_verrors *errs;
  char *body; /* 422 body buffer */
  size_t body_size;
  int kind; /* 0 validate, 1 parse+validate, 2 invalid */
} job;

static volatile int sink;

static int once(job *j) {
  switch (j->kind) {
  case 0:
    return wsmsg_schema_validate(j->s, j->doc, j->flags, j->errs);
  case 1: {
    json_t *doc = NULL;
    int rc = wsmsg_schema_validate_text(j->s, j->text, j->len, j->flags,
                                        j->errs, &doc);
    json_decref(doc);
    return rc;
  }
  default: {
    int rc = wsmsg_schema_validate_text(j->s, j->text, j->len, j->flags,
                                        j->errs, NULL);
    return rc + wsmsg_verrors_dump(j->errs, j->body, j->body_size);
  }
  }
}

/* Messages per second: the best of 5 runs of about secs/5 seconds each
 * (the machine may be shared; the best run is the least disturbed). */
static double measure(job *j, double secs) {
  double slice = secs / 5, best = 0;
  long n = 64;
  for (;;) { /* calibrate */
    double t0 = now();
    for (long i = 0; i < n; i++)
      sink += once(j);
    double dt = now() - t0;
    if (dt >= slice / 4)
      break;
    n *= 4;
  }
  for (int r = 0; r < 5; r++) {
    double t0 = now();
    long k = 0;
    double dt;
    do {
      for (long i = 0; i < n; i++)
        sink += once(j);
      k += n;
      dt = now() - t0;
    } while (dt < slice);
    if ((double)k / dt > best)
      best = (double)k / dt;
  }
  return best;
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "tests/bench/bench_models.json";
  double secs = argc > 2 ? atof(argv[2]) : 1.0;
  json_error_t je;
  json_t *models = json_load_file(path, 0, &je);
  if (!models) {
    fprintf(stderr, "bench_schema: %s: %s\n", path, je.text);
    return 2;
  }
  const char *name;
  json_t *m;
  char body[8192];
  wsmsg_verrors *errs = wsmsg_verrors_new();
  json_object_foreach(models, name, m) {
    char err[256];
    wsmsg_schema *s = NULL;
    if (wsmsg_schema_compile_json(json_object_get(m, "schema"), 0, &s, err,
                                  sizeof(err)) != 0) {
      fprintf(stderr, "bench_schema: %s: %s\n", name, err);
      return 2;
    }
    char *valid = json_dumps(json_object_get(m, "valid"), JSON_COMPACT);
    char *invalid = json_dumps(json_object_get(m, "invalid"), JSON_COMPACT);
    static const struct {
      const char *name;
      unsigned flags;
    } modes[] = {{"strict", 0},
                 {"lax", WSMSG_VALIDATE_COERCE | WSMSG_VALIDATE_DEFAULTS}};
    for (int k = 0; k < 3; k++) {
      for (size_t md = 0; md < 2; md++) {
        job j = {0};
        j.s = s;
        j.flags = modes[md].flags;
        j.errs = errs;
        j.kind = k;
        j.body = body;
        j.body_size = sizeof(body);
        j.text = k == 2 ? invalid : valid;
        j.len = strlen(j.text);
        j.doc = json_deep_copy(json_object_get(m, "valid"));
        int rc = once(&j); /* sanity: valid documents validate */
        if (k < 2 && rc != 0) {
          wsmsg_verrors_dump(errs, body, sizeof(body));
          fprintf(stderr, "bench_schema: %s is not valid: %s\n", name, body);
          return 2;
        }
        static const char *const kinds[] = {"validate", "parse+validate",
                                            "invalid"};
        printf("%s/%s/%s\t%.0f\n", name, kinds[k], modes[md].name,
               measure(&j, secs));
        fflush(stdout);
        json_decref(j.doc);
      }
    }
    free(valid);
    free(invalid);
    wsmsg_schema_free(s);
  }
  wsmsg_verrors_free(errs);
  json_decref(models);
  return 0;
}
