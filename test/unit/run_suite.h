/* The end of every unit test's main: run the suite, exit 0 only when every check passed. */
#ifndef WSB_RUN_SUITE_H
#define WSB_RUN_SUITE_H

#include <check.h>
#include <stdlib.h>

static inline int wsb_run_suite(Suite *s) {
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
