/* Unit tests for common/heap_trim.c: when freed heap is due to go back to the kernel. */
#include <check.h>
#include <malloc.h>
#include <stdlib.h>

#include "heap_trim.h"
#include "run_suite.h"

#define MIB (1024 * 1024)

START_TEST(test_quiet_never_trims) {
  struct wsb_heap_trim t = {0};
  /* Much free heap from the start (pages never touched, or trimmed before): nothing to do. */
  for (int i = 0; i < 100; i++)
    ck_assert(!wsb_heap_trim_due(&t, 40 * MIB));
  /* Small swings of everyday traffic stay under the slack. */
  for (int i = 0; i < 100; i++)
    ck_assert(!wsb_heap_trim_due(&t, 40 * MIB - (i % 2) * (WSB_HEAP_TRIM_SLACK - 1)));
}
END_TEST

START_TEST(test_burst_then_trim) {
  struct wsb_heap_trim t = {0};
  ck_assert(!wsb_heap_trim_due(&t, 3 * MIB));
  /* A burst takes the free heap and more, then frees it: due once it came back. */
  ck_assert(!wsb_heap_trim_due(&t, 0));
  ck_assert(!wsb_heap_trim_due(&t, WSB_HEAP_TRIM_SLACK - 1));
  ck_assert(wsb_heap_trim_due(&t, 6 * MIB));
  /* Trimmed pages still count as free: the same figure after the trim is not due again. */
  wsb_heap_trim_done(&t, 6 * MIB);
  ck_assert(!wsb_heap_trim_due(&t, 6 * MIB));
  ck_assert(!wsb_heap_trim_due(&t, 6 * MIB + WSB_HEAP_TRIM_SLACK - 1));
  /* The next burst reuses those pages (resident again) and frees them: due again. */
  ck_assert(!wsb_heap_trim_due(&t, 2 * MIB));
  ck_assert(wsb_heap_trim_due(&t, 6 * MIB));
  /* A trim that shrank the heap lowers the mark to what is left. */
  wsb_heap_trim_done(&t, MIB);
  ck_assert(!wsb_heap_trim_due(&t, MIB + WSB_HEAP_TRIM_SLACK - 1));
  ck_assert(wsb_heap_trim_due(&t, MIB + WSB_HEAP_TRIM_SLACK));
}
END_TEST

/* The real allocator: 4 MiB of small blocks freed below one still in use stay in the heap
   until a tick trims them, and a tick right after has nothing to do. Under ASan the allocator
   is not glibc's (mallinfo2 has no such figures): the tick must then just do no harm. */
START_TEST(test_tick_on_the_allocator) {
  struct wsb_heap_trim t = {0};
  wsb_heap_trim_tick(&t);
  enum { N = 4096 };
  void **blocks = malloc(N * sizeof(*blocks));
  ck_assert_ptr_nonnull(blocks);
  for (int i = 0; i < N; i++)
    ck_assert_ptr_nonnull(blocks[i] = malloc(1024));
  void *pin = malloc(1024); /* keeps the freed blocks off the heap's top */
  wsb_heap_trim_tick(&t);   /* the low point: the blocks in use */
  for (int i = 0; i < N; i++)
    free(blocks[i]);
  bool glibc = mallinfo2().fordblks >= 4 * MIB;
  ck_assert(wsb_heap_trim_tick(&t) == glibc);
  ck_assert(!wsb_heap_trim_tick(&t));
  free(pin);
  free(blocks);
}
END_TEST

static Suite *heap_trim_suite(void) {
  Suite *s = suite_create("heap_trim");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_quiet_never_trims);
  tcase_add_test(tc, test_burst_then_trim);
  tcase_add_test(tc, test_tick_on_the_allocator);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return wsb_run_suite(heap_trim_suite());
}
