/* Unit tests for common/buffer.c: appends, consumes, reuse of the front, no memory while empty. */
#include <check.h>
#include <string.h>

#include "buffer.h"
#include "run_suite.h"

START_TEST(test_append_consume) {
  struct wsb_buf b = {0};
  ck_assert_ptr_null(b.p);
  ck_assert_int_eq(wsb_buf_append(&b, "hello ", 6), 0);
  ck_assert_int_eq(wsb_buf_append(&b, "world", 5), 0);
  ck_assert_int_eq(b.len, 11);
  ck_assert_mem_eq(wsb_buf_data(&b), "hello world", 11);
  wsb_buf_consume(&b, 6);
  ck_assert_int_eq(b.len, 5);
  ck_assert_mem_eq(wsb_buf_data(&b), "world", 5);
  wsb_buf_consume(&b, 5);
  ck_assert_ptr_null(b.p); /* empty means no memory held */
  ck_assert_int_eq(b.len, 0);
  ck_assert_int_eq(wsb_buf_append(&b, "", 0), 0);
  ck_assert_ptr_null(b.p);
}
END_TEST

START_TEST(test_order_kept_through_growth_and_reuse) {
  struct wsb_buf b = {0};
  uint8_t expect[10000];
  size_t head = 0, tail = 0;
  /* Append and consume in uneven steps: the bytes must come out in order whatever the
     buffer does underneath (grow, move the front back). */
  for (int round = 0; round < 200; round++) {
    uint8_t chunk[97];
    size_t n = (size_t)(round * 37 % 97);
    for (size_t i = 0; i < n; i++)
      chunk[i] = (uint8_t)(tail + i);
    ck_assert_int_eq(wsb_buf_append(&b, chunk, n), 0);
    for (size_t i = 0; i < n; i++)
      expect[(tail + i) % sizeof(expect)] = (uint8_t)(tail + i);
    tail += n;
    size_t take = (size_t)(round * 53 % 61);
    if (take > tail - head)
      take = tail - head;
    for (size_t i = 0; i < b.len && i < 10; i++)
      ck_assert_int_eq(wsb_buf_data(&b)[i], expect[(head + i) % sizeof(expect)]);
    wsb_buf_consume(&b, take);
    head += take;
    ck_assert_int_eq(b.len, tail - head);
  }
  wsb_buf_free(&b);
}
END_TEST

START_TEST(test_drop_tail) {
  struct wsb_buf b = {0};
  ck_assert_int_eq(wsb_buf_append(&b, "answered open", 13), 0);
  wsb_buf_consume(&b, 1);
  wsb_buf_drop_tail(&b, 5); /* "open" and the space before it */
  ck_assert_int_eq(b.len, 7);
  ck_assert_mem_eq(wsb_buf_data(&b), "nswered", 7);
  ck_assert_int_eq(wsb_buf_append(&b, "!", 1), 0); /* appends go where the tail was */
  ck_assert_mem_eq(wsb_buf_data(&b), "nswered!", 8);
  wsb_buf_drop_tail(&b, 8);
  ck_assert_ptr_null(b.p); /* empty means no memory held */
  ck_assert_int_eq(b.len, 0);
  ck_assert_int_eq(b.cap, 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("buffer");
  TCase *tc = tcase_create("buffer");
  tcase_add_test(tc, test_append_consume);
  tcase_add_test(tc, test_order_kept_through_growth_and_reuse);
  tcase_add_test(tc, test_drop_tail);
  suite_add_tcase(s, tc);
  return wsb_run_suite(s);
}
