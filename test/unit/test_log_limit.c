/* Unit tests for common/log_limit.c: the burst, the rate, the dropped count, reloads, the clock. */
#include <check.h>
#include <stdlib.h>

#include "log_limit.h"
#include "run_suite.h"

/* Takes n lines at now_ms; returns how many were let through, *dropped summed over them. */
static unsigned take_n(struct wsb_log_limit *l, uint32_t rate, unsigned n, uint64_t now_ms,
                       uint64_t *dropped) {
  unsigned passed = 0;
  *dropped = 0;
  for (unsigned i = 0; i < n; i++) {
    uint64_t d;
    if (wsb_log_limit_take(l, rate, wsb_log_limit_burst(rate), now_ms, &d)) {
      passed++;
      *dropped += d;
    } else {
      ck_assert_uint_eq(d, 0);
    }
  }
  return passed;
}

START_TEST(test_burst_then_rate) {
  struct wsb_log_limit l = {0};
  uint64_t d;
  /* 10/s: a burst of 50 at once, then nothing until time passes. */
  ck_assert_uint_eq(wsb_log_limit_burst(10), 50);
  ck_assert_uint_eq(take_n(&l, 10, 500, 1000, &d), 50);
  ck_assert_uint_eq(d, 0);
  ck_assert_uint_eq(l.dropped, 450);
  /* 99 ms later: not a whole line yet. */
  ck_assert_uint_eq(take_n(&l, 10, 1, 1099, &d), 0);
  ck_assert_uint_eq(l.dropped, 451);
  /* At 100 ms one line, and it carries the count of those refused. */
  ck_assert(wsb_log_limit_take(&l, 10, 50, 1100, &d));
  ck_assert_uint_eq(d, 451);
  ck_assert_uint_eq(l.dropped, 0);
  ck_assert(!wsb_log_limit_take(&l, 10, 50, 1100, &d));
  /* A second of flood: ten lines, whatever the number offered. */
  unsigned passed = 0;
  for (uint64_t t = 1101; t <= 2100; t++)
    passed += take_n(&l, 10, 7, t, &d);
  ck_assert_uint_eq(passed, 10);
  /* A long quiet spell fills the bucket to its burst, no more. */
  ck_assert_uint_eq(take_n(&l, 10, 200, 1000000, &d), 50);
}
END_TEST

START_TEST(test_unlimited_and_changes) {
  struct wsb_log_limit l = {0};
  uint64_t d;
  ck_assert_uint_eq(take_n(&l, 0, 10000, 5, &d), 10000);
  /* Limited from now on (a reload): a full bucket to start with. */
  ck_assert_uint_eq(take_n(&l, 2, 100, 5, &d), 10);
  ck_assert_uint_eq(l.dropped, 90);
  /* A smaller rate keeps at most its own burst, and nothing is refilled by the change. */
  ck_assert_uint_eq(take_n(&l, 1, 10, 5, &d), 0);
  ck_assert_uint_eq(l.dropped, 100);
  /* Back to unlimited: the next line says how many went before it. */
  ck_assert(wsb_log_limit_take(&l, 0, 1, 5, &d));
  ck_assert_uint_eq(d, 100);
  ck_assert_uint_eq(l.dropped, 0);
}
END_TEST

START_TEST(test_clock_and_extremes) {
  struct wsb_log_limit l = {0};
  uint64_t d;
  ck_assert_uint_eq(take_n(&l, 1, 5, 10000, &d), 5);
  /* A clock that goes back adds nothing, and time counts from there afterwards. */
  ck_assert_uint_eq(take_n(&l, 1, 5, 500, &d), 0);
  ck_assert_uint_eq(take_n(&l, 1, 5, 1499, &d), 0);
  ck_assert_uint_eq(take_n(&l, 1, 5, 1500, &d), 1);
  ck_assert_uint_eq(d, 10);
  /* The largest rate and a clock near its end: no overflow, the burst is the cap. */
  struct wsb_log_limit big = {0};
  ck_assert_uint_eq(wsb_log_limit_burst(UINT32_MAX), UINT32_MAX);
  ck_assert(wsb_log_limit_take(&big, UINT32_MAX, UINT32_MAX, 0, &d));
  ck_assert(wsb_log_limit_take(&big, UINT32_MAX, UINT32_MAX, UINT64_MAX, &d));
  ck_assert_uint_le(big.tokens, (uint64_t)UINT32_MAX * 1000);
  /* A burst of 0 still lets one line through now and then. */
  struct wsb_log_limit one = {0};
  ck_assert(wsb_log_limit_take(&one, 1, 0, 0, &d));
  ck_assert(!wsb_log_limit_take(&one, 1, 0, 999, &d));
  ck_assert(wsb_log_limit_take(&one, 1, 0, 1999, &d));
  ck_assert_uint_eq(d, 1);
}
END_TEST

static Suite *log_limit_suite(void) {
  Suite *s = suite_create("log_limit");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_burst_then_rate);
  tcase_add_test(tc, test_unlimited_and_changes);
  tcase_add_test(tc, test_clock_and_extremes);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return wsb_run_suite(log_limit_suite());
}
