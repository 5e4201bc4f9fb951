/* Unit tests for common/text.c: exact fit, overflow, no holes after a piece that did not fit,
 * growth of an allocated buffer up to its bound. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_suite.h"
#include "text.h"

/* Writes the same pieces, raw and formatted, whatever the buffer. */
static void write_sample(struct wsb_text *t) {
  wsb_text_puts(t, "GET ");
  wsb_text_put(t, "/path?x", 5);
  wsb_text_printf(t, " %s/%d.%d\r\n", "HTTP", 1, 1);
  wsb_text_put(t, "", 0);
  wsb_text_printf(t, "%s", "");
  wsb_text_printf(t, "n=%05u;", 42u);
}
static const char sample[] = "GET /path HTTP/1.1\r\nn=00042;";

/* Every buffer size from 0 up: too small overflows, the exact size and more hold the text. Each
   buffer is malloc'd to its size, so a byte written past it is caught by ASan. */
START_TEST(test_every_size) {
  size_t n = strlen(sample);
  for (size_t cap = 0; cap <= n + 2; cap++) {
    char *b = malloc(cap ? cap : 1);
    struct wsb_text t;
    wsb_text_init(&t, cap ? b : NULL, cap);
    write_sample(&t);
    if (cap < n) {
      ck_assert(t.overflow);
      ck_assert_int_eq(wsb_text_length(&t), -ENOSPC);
      ck_assert_uint_le(t.len, cap);
      ck_assert_mem_eq(b, sample, t.len); /* what went in is a prefix, piece by piece */
    } else {
      ck_assert(!t.overflow);
      ck_assert_int_eq(wsb_text_length(&t), (ssize_t)n);
      ck_assert_mem_eq(b, sample, n);
    }
    free(b);
  }
}
END_TEST

/* A formatted piece that fills the buffer to its last byte fits, though vsnprintf wants a NUL. */
START_TEST(test_printf_exact_fit) {
  char b[11];
  memset(b, '#', sizeof(b));
  struct wsb_text t;
  wsb_text_init(&t, b, 10);
  wsb_text_puts(&t, "ab");
  wsb_text_printf(&t, "%s%d", "cdefg", 123);
  ck_assert_int_eq(wsb_text_length(&t), 10);
  ck_assert_mem_eq(b, "abcdefg123", 10);
  ck_assert_int_eq(b[10], '#'); /* nothing past cap */
  wsb_text_put(&t, "", 0);
  ck_assert_int_eq(wsb_text_length(&t), 10);
  wsb_text_printf(&t, "%c", 'x');
  ck_assert_int_eq(wsb_text_length(&t), -ENOSPC);
  ck_assert_int_eq(b[10], '#');
}
END_TEST

/* A piece that does not fit is not added in part, and nothing after it is, even what would fit. */
START_TEST(test_no_holes) {
  char b[8];
  struct wsb_text t;
  wsb_text_init(&t, b, sizeof(b));
  wsb_text_puts(&t, "abc");
  wsb_text_puts(&t, "defghi"); /* 6 > 5 left */
  ck_assert(t.overflow);
  ck_assert_uint_eq(t.len, 3);
  wsb_text_puts(&t, "de");
  wsb_text_printf(&t, "%d", 1);
  ck_assert_uint_eq(t.len, 3);
  ck_assert_mem_eq(b, "abc", 3);
  ck_assert_int_eq(wsb_text_length(&t), -ENOSPC);

  /* The same for a formatted piece: its cut-off part is never counted. */
  wsb_text_init(&t, b, sizeof(b));
  wsb_text_printf(&t, "%s", "123");
  wsb_text_printf(&t, "%s", "456789");
  ck_assert(t.overflow);
  ck_assert_uint_eq(t.len, 3);
  ck_assert_mem_eq(b, "123", 3);
}
END_TEST

/* An allocated text grows as pieces need, up to its bound and not a byte beyond. */
START_TEST(test_alloc_grows_to_max) {
  struct wsb_text t;
  ck_assert_int_eq(wsb_text_init_alloc(&t, 4, 1000), 0);
  char expect[1000];
  size_t n = 0;
  for (int i = 0; i < 100; i++) {
    wsb_text_printf(&t, "%d,", i);
    n += (size_t)snprintf(expect + n, sizeof(expect) - n, "%d,", i);
  }
  ck_assert_int_eq(wsb_text_length(&t), (ssize_t)n);
  ck_assert_mem_eq(t.buf, expect, n);
  ck_assert_uint_le(t.cap, 1000);
  /* Up to the bound exactly, with a raw piece and a formatted one. */
  size_t left = 1000 - n;
  char *fill = malloc(left);
  memset(fill, 'z', left);
  wsb_text_put(&t, fill, left - 3);
  wsb_text_printf(&t, "%s", "end");
  ck_assert_int_eq(wsb_text_length(&t), 1000);
  ck_assert_uint_eq(t.cap, 1000);
  ck_assert_mem_eq(t.buf + 997, "end", 3);
  wsb_text_put(&t, "!", 1);
  ck_assert_int_eq(wsb_text_length(&t), -ENOSPC);
  ck_assert_uint_eq(t.len, 1000);
  free(fill);
  wsb_text_free(&t);
  ck_assert_ptr_null(t.buf);

  /* One piece larger than twice the buffer grows it at once; one past the bound overflows. */
  ck_assert_int_eq(wsb_text_init_alloc(&t, 2, 64), 0);
  wsb_text_printf(&t, "%040d", 7);
  ck_assert_int_eq(wsb_text_length(&t), 40);
  ck_assert_int_eq(t.buf[39], '7');
  wsb_text_printf(&t, "%030d", 7);
  ck_assert_int_eq(wsb_text_length(&t), -ENOSPC);
  ck_assert_uint_eq(t.len, 40);
  wsb_text_free(&t);
}
END_TEST

int main(void) {
  Suite *s = suite_create("text");
  TCase *tc = tcase_create("text");
  tcase_add_test(tc, test_every_size);
  tcase_add_test(tc, test_printf_exact_fit);
  tcase_add_test(tc, test_no_holes);
  tcase_add_test(tc, test_alloc_grows_to_max);
  suite_add_tcase(s, tc);
  return wsb_run_suite(s);
}
