/* Unit tests for common/worker_pack.c: when more or fewer workers take new connections, which
   ones, and the programs, run by a small classic BPF interpreter of the instructions they use. */
#include <check.h>
#include <stdlib.h>

#include "run_suite.h"
#include "worker_pack.h"

/* n workers, all running, taking new connections as the first `taking` do, with these loads. */
static unsigned sample(struct wsb_pack *p, unsigned n, unsigned taking, double b0, double b1,
                       double b2, double b3) {
  double busy[4] = {b0, b1, b2, b3};
  struct wsb_pack_worker w[4];
  for (unsigned i = 0; i < 4; i++)
    w[i] = (struct wsb_pack_worker){.busy = busy[i], .running = true, .taking = i < taking};
  return wsb_pack_next(p, w, n);
}

START_TEST(test_starts_with_one_and_grows_when_busy) {
  struct wsb_pack p = {0};
  ck_assert_uint_eq(sample(&p, 4, 0, 0, 0, 0, 0), 1);
  /* Light load on the one worker: it keeps taking them alone. */
  ck_assert_uint_eq(sample(&p, 4, 1, 0.45, 0, 0, 0), 1);
  /* Past half a core: one more (the load asks for 2). */
  ck_assert_uint_eq(sample(&p, 4, 1, 0.6, 0, 0, 0), 2);
  /* Busy, and enough load for 4 at once: a burst spreads within one sample. */
  ck_assert_uint_eq(sample(&p, 4, 2, 0.9, 0.9, 0.1, 0), 4);
  /* Never more than the pool. */
  ck_assert_uint_eq(sample(&p, 4, 4, 1, 1, 1, 1), 4);
}
END_TEST

START_TEST(test_busy_outside_the_taking_ones_does_not_grow) {
  struct wsb_pack p = {0};
  ck_assert_uint_eq(sample(&p, 4, 0, 0.1, 0, 0, 0), 1);
  /* Worker 2 holds busy sessions from before: new ones still go to one worker alone. */
  ck_assert_uint_eq(sample(&p, 4, 1, 0.2, 0, 0.95, 0), 1);
}
END_TEST

START_TEST(test_shrinks_after_calm_samples_only) {
  struct wsb_pack p = {0};
  sample(&p, 3, 0, 0, 0, 0, 0);
  ck_assert_uint_eq(sample(&p, 3, 1, 0.8, 0.7, 0, 0), 3);
  /* Calm, but one busier sample in between starts the count again. */
  for (unsigned i = 0; i + 1 < WSB_PACK_CALM_SAMPLES; i++)
    ck_assert_uint_eq(sample(&p, 3, 3, 0.1, 0.1, 0, 0), 3);
  ck_assert_uint_eq(sample(&p, 3, 3, 0.4, 0.2, 0.1, 0), 3);
  for (unsigned i = 0; i + 1 < WSB_PACK_CALM_SAMPLES; i++)
    ck_assert_uint_eq(sample(&p, 3, 3, 0.1, 0.1, 0, 0), 3);
  ck_assert_uint_eq(sample(&p, 3, 3, 0.1, 0.1, 0, 0), 2);
  /* 0.3 in all is more than 2 - 1 workers' worth of calm (0.25): 2 stay. */
  for (unsigned i = 0; i < 3 * WSB_PACK_CALM_SAMPLES; i++)
    ck_assert_uint_eq(sample(&p, 3, 2, 0.2, 0.1, 0, 0), 2);
  for (unsigned i = 0; i < WSB_PACK_CALM_SAMPLES; i++)
    sample(&p, 3, 2, 0.1, 0.05, 0, 0);
  ck_assert_uint_eq(p.active, 1);
  /* One worker: nothing below it. */
  for (unsigned i = 0; i < 3 * WSB_PACK_CALM_SAMPLES; i++)
    ck_assert_uint_eq(sample(&p, 3, 1, 0, 0, 0, 0), 1);
}
END_TEST

START_TEST(test_a_smaller_pool_clamps) {
  struct wsb_pack p = {0};
  sample(&p, 4, 1, 0.9, 0.9, 0.9, 0);
  ck_assert_uint_eq(p.active, 4);
  ck_assert_uint_eq(sample(&p, 2, 2, 0.1, 0.1, 0, 0), 2);
  ck_assert_uint_eq(sample(&p, 0, 0, 0, 0, 0, 0), 0);
}
END_TEST

START_TEST(test_choose_skips_stopped_and_full_workers) {
  struct wsb_pack_worker w[4] = {
      {.running = true}, {.running = true}, {.running = true}, {.running = true}};
  unsigned set[4];
  ck_assert_uint_eq(wsb_pack_choose(1, w, 4, 100, set), 1);
  ck_assert_uint_eq(set[0], 0);
  ck_assert_uint_eq(wsb_pack_choose(2, w, 4, 100, set), 2);
  ck_assert_uint_eq(set[1], 1);
  /* All of them: the kernel's hash. */
  ck_assert_uint_eq(wsb_pack_choose(4, w, 4, 100, set), 0);
  /* The first worker is respawning, the second holds its share: the third and fourth. */
  w[0].running = false;
  w[1].sessions = 100;
  ck_assert_uint_eq(wsb_pack_choose(1, w, 4, 100, set), 1);
  ck_assert_uint_eq(set[0], 2);
  ck_assert_uint_eq(wsb_pack_choose(3, w, 4, 100, set), 2);
  ck_assert_uint_eq(set[0], 2);
  ck_assert_uint_eq(set[1], 3);
  /* The third one left connections in its accept queue for two samples: stopped or hung. */
  w[2].stalled = true;
  ck_assert_uint_eq(wsb_pack_choose(1, w, 4, 100, set), 1);
  ck_assert_uint_eq(set[0], 3);
  w[2].stalled = false;
  /* None can: every worker, rather than none. */
  w[2].sessions = w[3].sessions = 150;
  ck_assert_uint_eq(wsb_pack_choose(1, w, 4, 100, set), 0);
}
END_TEST

START_TEST(test_session_cap) {
  /* Two descriptors a session, half of them for packing, past a margin. */
  ck_assert_uint_eq(wsb_pack_session_cap(20000), (20000 - 64) / 4);
  ck_assert_uint_eq(wsb_pack_session_cap(1048576), (1048576 - 64) / 4);
  ck_assert_uint_eq(wsb_pack_session_cap(10), 1);
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
    case BPF_JMP | BPF_JEQ | BPF_K:
      pc += a == f[pc].k ? f[pc].jt : f[pc].jf;
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

/* Runs the program of set over many random numbers: each index it returns is in set, and each
   of set is returned. */
static void check_program(const unsigned *set, unsigned m, size_t want_len) {
  struct sock_filter f[WSB_PACK_PROGRAM_MAX(8)];
  size_t len = wsb_pack_program(set, m, f);
  ck_assert_uint_eq(len, want_len);
  ck_assert_uint_le(len, WSB_PACK_PROGRAM_MAX(8));
  unsigned seen[8] = {0};
  for (unsigned r = 0; r < 1000; r++) {
    unsigned i = run(f, len, r * 2654435761u), j = 0;
    while (j < m && set[j] != i)
      j++;
    ck_assert_msg(j < m, "index %u is not in the set", i);
    seen[j]++;
  }
  for (unsigned j = 0; j < m; j++)
    ck_assert_msg(seen[j] > 0, "set[%u] never chosen", j);
}

START_TEST(test_programs) {
  check_program((unsigned[]){0}, 1, 1);
  check_program((unsigned[]){3}, 1, 1);
  /* The first three: a random number modulo 3. */
  check_program((unsigned[]){0, 1, 2}, 3, 3);
  /* Any others: a comparison per index. */
  check_program((unsigned[]){2, 3}, 2, 5);
  check_program((unsigned[]){1, 4, 6, 7}, 4, 9);
  check_program((unsigned[]){0, 2, 3, 4, 5, 6, 7}, 7, 15);
}
END_TEST

static Suite *worker_pack_suite(void) {
  Suite *s = suite_create("worker_pack");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_starts_with_one_and_grows_when_busy);
  tcase_add_test(tc, test_busy_outside_the_taking_ones_does_not_grow);
  tcase_add_test(tc, test_shrinks_after_calm_samples_only);
  tcase_add_test(tc, test_a_smaller_pool_clamps);
  tcase_add_test(tc, test_choose_skips_stopped_and_full_workers);
  tcase_add_test(tc, test_session_cap);
  tcase_add_test(tc, test_programs);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return wsb_run_suite(worker_pack_suite());
}
