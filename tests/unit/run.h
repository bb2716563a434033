/* The main() of every unit binary: run all cases, or the ones a filter
 * names.  Header-only; include after <cmocka.h>.
 *
 *   .build/tests/test_conn                    every case
 *   .build/tests/test_conn test_pull_api      one case
 *   .build/tests/test_conn 'test_close_*'     the cases matching a pattern
 *   .build/tests/test_conn --list             the case names
 *
 * The pattern is cmocka_set_test_filter's: the whole name must match, '*'
 * matches any run of characters and '?' one character.  A pattern that
 * matches no case is an error (exit 1), so a typo cannot pass as "0 tests,
 * all passed". */
#ifndef WSMSG_TEST_RUN_H
#define WSMSG_TEST_RUN_H

#include <stdio.h>
#include <string.h>

/* The same matcher as cmocka's (c_strmatch in cmocka 1.1): cmocka runs the
 * cases this says match. */
static inline int unit_name_matches(const char *name, const char *pat) {
  for (;;) {
    if (*pat == '\0')
      return *name == '\0';
    if (*pat == '*') {
      while (*pat == '*')
        pat++;
      if (*pat == '\0')
        return 1;
      for (; *name; name++)
        if (unit_name_matches(name, pat))
          return 1;
      return 0;
    }
    if (*name == '\0' || (*pat != '?' && *pat != *name))
      return 0;
    name++;
    pat++;
  }
}

static inline int unit_main(const char *group, const struct CMUnitTest *tests,
                            size_t n, int argc, char **argv) {
  const char *arg = argc > 1 ? argv[1] : NULL;
  if (argc > 2 || (arg && (!strcmp(arg, "-h") || !strcmp(arg, "--help")))) {
    fprintf(stderr, "usage: %s [--list | PATTERN]\n", argv[0]);
    return argc > 2 ? 2 : 0;
  }
  if (arg && !strcmp(arg, "--list")) {
    for (size_t i = 0; i < n; i++)
      printf("%s\n", tests[i].name);
    return 0;
  }
  if (arg) {
    size_t hits = 0;
    for (size_t i = 0; i < n; i++)
      hits += (size_t)unit_name_matches(tests[i].name, arg);
    if (hits == 0) {
      fprintf(stderr, "%s: no case matches '%s' (--list shows them)\n", argv[0],
              arg);
      return 1;
    }
    cmocka_set_test_filter(arg);
  }
  return _cmocka_run_group_tests(group, tests, n, NULL, NULL);
}

/* return unit_run("conn", tests, argc, argv); as the end of main() */
#define unit_run(group, tests, argc, argv)                                     \
  unit_main((group), (tests), sizeof(tests) / sizeof((tests)[0]), (argc),      \
            (argv))

#endif
