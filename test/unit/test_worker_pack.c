/* Unit tests for common/worker_pack.c: when more or fewer workers take new connections, and the
   programs, run by a small classic BPF interpreter of the three instructions they use. */
#include <check.h>
#include <stdlib.h>

#include "run_suite.h"
#include "worker_pack.h"

static unsigned sample(struct wsb_pack *p, unsigned n, double b0, double b1, double b2, double b3) {
  double busy[4] = {b0, b1, b2, b3};
  return wsb_pack_next(p, busy, n);
}

START_TEST(test_starts_with_one_and_grows_when_busy) {
  struct wsb_pack p = {0};
  ck_assert_uint_eq(sample(&p, 4, 0, 0, 0, 0), 1);
  /* Light load on the one worker: it keeps taking them alone. */
  ck_assert_uint_eq(sample(&p, 4, 0.45, 0, 0, 0), 1);
  /* Past half a core: one more (the load asks for 2). */
  ck_assert_uint_eq(sample(&p, 4, 0.6, 0, 0, 0), 2);
  /* Busy, and enough load for 4 at once: a burst spreads within one sample. */
  ck_assert_uint_eq(sample(&p, 4, 0.9, 0.9, 0.1, 0), 4);
  /* Never more than the pool. */
  ck_assert_uint_eq(sample(&p, 4, 1, 1, 1, 1), 4);
}
END_TEST

START_TEST(test_busy_outside_the_active_ones_does_not_grow) {
  struct wsb_pack p = {0};
  ck_assert_uint_eq(sample(&p, 4, 0.1, 0, 0, 0), 1);
  /* Worker 2 holds busy sessions from before: new ones still go to worker 0 alone. */
  ck_assert_uint_eq(sample(&p, 4, 0.2, 0, 0.95, 0), 1);
}
END_TEST

START_TEST(test_shrinks_after_calm_samples_only) {
  struct wsb_pack p = {0};
  sample(&p, 3, 0, 0, 0, 0);
  ck_assert_uint_eq(sample(&p, 3, 0.8, 0.7, 0, 0), 3);
  /* Calm, but one busy sample in between starts the count again. */
  for (unsigned i = 0; i + 1 < WSB_PACK_CALM_SAMPLES; i++)
    ck_assert_uint_eq(sample(&p, 3, 0.1, 0.1, 0, 0), 3);
  ck_assert_uint_eq(sample(&p, 3, 0.4, 0.2, 0.1, 0), 3);
  for (unsigned i = 0; i + 1 < WSB_PACK_CALM_SAMPLES; i++)
    ck_assert_uint_eq(sample(&p, 3, 0.1, 0.1, 0, 0), 3);
  ck_assert_uint_eq(sample(&p, 3, 0.1, 0.1, 0, 0), 2);
  /* 0.3 in all is more than 2 - 1 workers' worth of calm (0.25): 2 stay. */
  for (unsigned i = 0; i < 3 * WSB_PACK_CALM_SAMPLES; i++)
    ck_assert_uint_eq(sample(&p, 3, 0.2, 0.1, 0, 0), 2);
  for (unsigned i = 0; i < WSB_PACK_CALM_SAMPLES; i++)
    sample(&p, 3, 0.1, 0.05, 0, 0);
  ck_assert_uint_eq(p.active, 1);
  /* One worker: nothing below it. */
  for (unsigned i = 0; i < 3 * WSB_PACK_CALM_SAMPLES; i++)
    ck_assert_uint_eq(sample(&p, 3, 0, 0, 0, 0), 1);
}
END_TEST

START_TEST(test_a_smaller_pool_clamps) {
  struct wsb_pack p = {0};
  sample(&p, 4, 0.9, 0.9, 0.9, 0);
  ck_assert_uint_eq(p.active, 4);
  ck_assert_uint_eq(sample(&p, 2, 0.1, 0.1, 0, 0), 2);
  ck_assert_uint_eq(sample(&p, 0, 0, 0, 0, 0), 0);
}
END_TEST

/* What the kernel computes for a program: only the instructions wsb_pack_program writes. */
static unsigned run(const struct sock_filter *f, size_t len, unsigned random) {
  unsigned a = 0;
  for (size_t pc = 0; pc < len; pc++) {
    switch (f[pc].code) {
    case BPF_LD | BPF_W | BPF_ABS:
      ck_assert_uint_eq(f[pc].k, (__u32)(SKF_AD_OFF + SKF_AD_RANDOM));
      a = random;
      break;
    case BPF_ALU | BPF_MOD | BPF_K:
      ck_assert_uint_ne(f[pc].k, 0);
      a %= f[pc].k;
      break;
    case BPF_RET | BPF_A:
      return a;
    case BPF_RET | BPF_K:
      return f[pc].k;
    default:
      ck_abort_msg("instruction %u", f[pc].code);
    }
  }
  ck_abort_msg("no return");
  return 0;
}

START_TEST(test_programs) {
  struct sock_filter f[WSB_PACK_PROGRAM_MAX];
  size_t len = wsb_pack_program(0, 1, f);
  for (unsigned r = 0; r < 100; r++)
    ck_assert_uint_eq(run(f, len, r * 7919u), 0);
  len = wsb_pack_program(3, 1, f);
  ck_assert_uint_eq(run(f, len, 12345), 3);
  /* Three of them: each one of 0..2 is reached, and nothing else. */
  len = wsb_pack_program(0, 3, f);
  unsigned seen[4] = {0};
  for (unsigned r = 0; r < 300; r++) {
    unsigned i = run(f, len, r * 2654435761u);
    ck_assert_uint_lt(i, 3);
    seen[i]++;
  }
  ck_assert(seen[0] > 0 && seen[1] > 0 && seen[2] > 0);
}
END_TEST

static Suite *worker_pack_suite(void) {
  Suite *s = suite_create("worker_pack");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_starts_with_one_and_grows_when_busy);
  tcase_add_test(tc, test_busy_outside_the_active_ones_does_not_grow);
  tcase_add_test(tc, test_shrinks_after_calm_samples_only);
  tcase_add_test(tc, test_a_smaller_pool_clamps);
  tcase_add_test(tc, test_programs);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return wsb_run_suite(worker_pack_suite());
}
