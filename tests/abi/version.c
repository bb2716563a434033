/* Compiled as C11 and as C++ by tests/abi/check_header.sh, with
 * -Wall -Wextra -pedantic -Werror under gcc/g++ and clang/clang++.
 * wsmsg.h comes first: it must be self-contained.  Checks that the version
 * macros agree with each other and with the linked library; ALL_FUNCTIONS
 * (generated from the header) takes the address of every public function,
 * so linking proves that each one has C linkage (extern "C") and is
 * exported. */
#include <wsmsg.h>

#include <stdio.h>
#include <string.h>

#ifdef __cplusplus
#define FN(f) reinterpret_cast<void (*)(void)>(&f)
#else
#define FN(f) (void (*)(void))(&f)
#endif

#include "all_functions.h" /* #define ALL_FUNCTIONS FN(wsmsg_a), FN(...) */

int main(void) {
  static void (*const fns[])(void) = {ALL_FUNCTIONS};
  char numbers[48];
  int bad = 0;
  snprintf(numbers, sizeof(numbers), "%d.%d.%d", WSMSG_VERSION_MAJOR,
           WSMSG_VERSION_MINOR, WSMSG_VERSION_PATCH);
  if (strcmp(WSMSG_VERSION_STRING, numbers) != 0) {
    fprintf(stderr, "WSMSG_VERSION_STRING is %s, the version macros say %s\n",
            WSMSG_VERSION_STRING, numbers);
    bad = 1;
  }
  if (WSMSG_VERSION_NUMBER != WSMSG_VERSION_MAJOR * 10000 +
                                  WSMSG_VERSION_MINOR * 100 +
                                  WSMSG_VERSION_PATCH) {
    fprintf(stderr, "WSMSG_VERSION_NUMBER disagrees with its parts\n");
    bad = 1;
  }
  if (strcmp(wsmsg_version(), WSMSG_VERSION_STRING) != 0) {
    fprintf(stderr, "wsmsg_version() is %s, the header says %s\n",
            wsmsg_version(), WSMSG_VERSION_STRING);
    bad = 1;
  }
  if (wsmsg_version_number() != WSMSG_VERSION_NUMBER) {
    fprintf(stderr, "wsmsg_version_number() is %d, the header says %d\n",
            wsmsg_version_number(), WSMSG_VERSION_NUMBER);
    bad = 1;
  }
  for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++)
    if (!fns[i])
      bad = 1;
  if (!bad)
    printf("%s %zu functions\n", wsmsg_version(), sizeof(fns) / sizeof(fns[0]));
  return bad;
}
