/* Unit tests for common/balance.c: the smooth weighted round-robin sequence and the slow-start
 * ramp. */
#include <check.h>
#include <stdlib.h>

#include "balance.h"
#include "run_suite.h"

/* nginx's documented example: weights 5, 1, 1 give a a b a c a a. */
START_TEST(swrr_nginx_example) {
  uint32_t w[] = {5, 1, 1};
  uint16_t out[7];
  ck_assert_uint_eq(wsb_swrr_period(w, 3), 7);
  ck_assert_uint_eq(wsb_swrr_sequence(w, 3, out), 7);
  uint16_t want[] = {0, 0, 1, 0, 2, 0, 0};
  for (int i = 0; i < 7; i++)
    ck_assert_uint_eq(out[i], want[i]);
}
END_TEST

START_TEST(swrr_equal_weights_rotate) {
  uint32_t w[] = {3, 3, 3};
  uint16_t out[3];
  ck_assert_uint_eq(wsb_swrr_sequence(w, 3, out), 3); /* the gcd divides the period */
  ck_assert_uint_eq(out[0], 0);
  ck_assert_uint_eq(out[1], 1);
  ck_assert_uint_eq(out[2], 2);
}
END_TEST

/* Every index appears exactly weight/gcd times per period, never twice in a row when it can
   be helped, and weight 0 never appears. */
START_TEST(swrr_counts_follow_weights) {
  uint32_t w[] = {2, 4, 6, 0};
  size_t period = wsb_swrr_period(w, 4);
  ck_assert_uint_eq(period, 6);
  uint16_t *out = calloc(period, sizeof(*out));
  ck_assert_uint_eq(wsb_swrr_sequence(w, 4, out), period);
  unsigned counts[4] = {0};
  for (size_t i = 0; i < period; i++)
    counts[out[i]]++;
  ck_assert_uint_eq(counts[0], 1);
  ck_assert_uint_eq(counts[1], 2);
  ck_assert_uint_eq(counts[2], 3);
  ck_assert_uint_eq(counts[3], 0);
  free(out);
}
END_TEST

START_TEST(swrr_nothing_to_pick) {
  uint32_t w[] = {0, 0};
  ck_assert_uint_eq(wsb_swrr_period(w, 2), 0);
  ck_assert_uint_eq(wsb_swrr_period(NULL, 0), 0);
}
END_TEST

START_TEST(ramp_grows_linearly) {
  ck_assert_uint_eq(wsb_ramp_weight(2, 1000, 1000, 10000), 1);
  ck_assert_uint_eq(wsb_ramp_weight(2, 1000, 3500, 10000), 2 * WSB_RAMP_SCALE / 4);
  ck_assert_uint_eq(wsb_ramp_weight(2, 1000, 6000, 10000), 2 * WSB_RAMP_SCALE / 2);
  ck_assert_uint_eq(wsb_ramp_weight(2, 1000, 11000, 10000), 2 * WSB_RAMP_SCALE);
  ck_assert_uint_eq(wsb_ramp_weight(2, 1000, 99000, 10000), 2 * WSB_RAMP_SCALE);
}
END_TEST

START_TEST(ramp_off_or_unset_is_full) {
  ck_assert_uint_eq(wsb_ramp_weight(5, 1000, 1000, 0), 5 * WSB_RAMP_SCALE);
  ck_assert_uint_eq(wsb_ramp_weight(5, 0, 1000, 30000), 5 * WSB_RAMP_SCALE);
  /* Another process's clock read a moment before the start: no time has passed. */
  ck_assert_uint_eq(wsb_ramp_weight(5, 1000, 990, 30000), 1);
}
END_TEST

int main(void) {
  Suite *s = suite_create("balance");
  TCase *tc = tcase_create("balance");
  tcase_add_test(tc, swrr_nginx_example);
  tcase_add_test(tc, swrr_equal_weights_rotate);
  tcase_add_test(tc, swrr_counts_follow_weights);
  tcase_add_test(tc, swrr_nothing_to_pick);
  tcase_add_test(tc, ramp_grows_linearly);
  tcase_add_test(tc, ramp_off_or_unset_is_full);
  suite_add_tcase(s, tc);
  return wsb_run_suite(s);
}
