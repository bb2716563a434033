/* How long one PCRE2 match of a backtracking pattern takes at a given match
 * limit, with the JIT and with the interpreter: the measurement behind
 * WSMSG_REGEX_MATCH_LIMIT_DEFAULT (docs/schema.md, "Pattern cost").  The
 * subjects are 60 bytes that make each pattern backtrack exponentially.
 * Not part of make test; best of 5 runs per cell:
 *
 *   cc -O2 tests/bench/regex_limits.c -o /tmp/regex_limits -lpcre2-8
 *   /tmp/regex_limits
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(void) {
  static const char *const pats[] = {"^(a|aa)+$", "(a+)+$", "^(\\w+\\s?)*$",
                                     "^(a|a?)+$"};
  static const char last[] = {'b', 'b', '!', 'b'};
  static const unsigned limits[] = {10000000, 1000000, 300000,
                                    100000,   30000,   10000};
  for (int jit = 1; jit >= 0; jit--) {
    for (size_t p = 0; p < sizeof(pats) / sizeof(pats[0]); p++) {
      char subj[61];
      memset(subj, 'a', 59);
      subj[59] = last[p];
      subj[60] = '\0';
      int ec;
      PCRE2_SIZE eo;
      pcre2_code *re =
          pcre2_compile((PCRE2_SPTR)pats[p], PCRE2_ZERO_TERMINATED,
                        PCRE2_UTF | PCRE2_DOLLAR_ENDONLY, &ec, &eo, NULL);
      if (!re)
        return 1;
      if (jit)
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
      pcre2_match_data *md = pcre2_match_data_create(1, NULL);
      for (size_t l = 0; l < sizeof(limits) / sizeof(limits[0]); l++) {
        pcre2_match_context *mc = pcre2_match_context_create(NULL);
        pcre2_set_match_limit(mc, limits[l]);
        pcre2_set_depth_limit(mc, 10000);
        int rc = 0;
        double best = 1e9;
        for (int r = 0; r < 5; r++) {
          double t0 = now();
          rc = pcre2_match(re, (PCRE2_SPTR)subj, 60, 0, 0, md, mc);
          double dt = now() - t0;
          if (dt < best)
            best = dt;
        }
        printf("%-11s %-13s match limit %8u: rc %3d, %8.3f ms\n",
               jit ? "JIT" : "interpreter", pats[p], limits[l], rc, best * 1e3);
        pcre2_match_context_free(mc);
      }
      pcre2_match_data_free(md);
      pcre2_code_free(re);
    }
  }
  return 0;
}
