/* Unit tests for common/json.c: structure, commas, escaping, invalid UTF-8, overflow. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "run_suite.h"

START_TEST(test_structure) {
  char buf[256];
  struct wsb_json j;
  wsb_json_init(&j, buf, sizeof(buf));
  wsb_json_object_begin(&j);
  wsb_json_key(&j, "a");
  wsb_json_uint(&j, 18446744073709551615ull);
  wsb_json_key(&j, "b");
  wsb_json_array_begin(&j);
  wsb_json_int(&j, -5);
  wsb_json_bool(&j, true);
  wsb_json_null(&j);
  wsb_json_object_begin(&j);
  wsb_json_object_end(&j);
  wsb_json_array_begin(&j);
  wsb_json_array_end(&j);
  wsb_json_array_end(&j);
  wsb_json_key(&j, "c");
  wsb_json_cstring(&j, "x");
  wsb_json_object_end(&j);
  size_t n = wsb_json_finish(&j);
  ck_assert_int_gt(n, 0);
  buf[n] = '\0';
  ck_assert_str_eq(buf, "{\"a\":18446744073709551615,\"b\":[-5,true,null,{},[]],\"c\":\"x\"}");
}
END_TEST

START_TEST(test_escaping) {
  char buf[256];
  struct wsb_json j;
  wsb_json_init(&j, buf, sizeof(buf));
  wsb_json_array_begin(&j);
  wsb_json_string(&j, "q\"b\\n\n\t\x01\x7f", 9);
  wsb_json_cstring(&j, "caf\xc3\xa9");  /* valid UTF-8 passes */
  wsb_json_cstring(&j, "bad\xff\xc3("); /* invalid: each high byte becomes U+FFFD */
  wsb_json_string(&j, "nul\0x", 5);
  wsb_json_array_end(&j);
  size_t n = wsb_json_finish(&j);
  buf[n] = '\0';
  ck_assert_str_eq(buf, "[\"q\\\"b\\\\n\\u000a\\u0009\\u0001\\u007f\",\"caf\xc3\xa9\","
                        "\"bad\\ufffd\\ufffd(\",\"nul\\u0000x\"]");
  /* Object keys are escaped the same way. */
  wsb_json_init(&j, buf, sizeof(buf));
  wsb_json_object_begin(&j);
  wsb_json_key(&j, "k\"");
  wsb_json_uint(&j, 1);
  wsb_json_object_end(&j);
  n = wsb_json_finish(&j);
  buf[n] = '\0';
  ck_assert_str_eq(buf, "{\"k\\\"\":1}");
}
END_TEST

START_TEST(test_overflow_and_balance) {
  /* Every buffer size short of the full text is reported, never cut silently. */
  char full[64];
  struct wsb_json j;
  wsb_json_init(&j, full, sizeof(full));
  wsb_json_object_begin(&j);
  wsb_json_key(&j, "name");
  wsb_json_cstring(&j, "value");
  wsb_json_object_end(&j);
  size_t n = wsb_json_finish(&j);
  ck_assert_int_eq(n, strlen("{\"name\":\"value\"}"));
  for (size_t cap = 0; cap < n; cap++) {
    char *b = malloc(cap ? cap : 1);
    wsb_json_init(&j, b, cap);
    wsb_json_object_begin(&j);
    wsb_json_key(&j, "name");
    wsb_json_cstring(&j, "value");
    wsb_json_object_end(&j);
    ck_assert_int_eq(wsb_json_finish(&j), 0);
    free(b);
  }
  wsb_json_init(&j, full, sizeof(full));
  wsb_json_object_begin(&j);
  ck_assert_int_eq(wsb_json_finish(&j), 0); /* unbalanced */
  wsb_json_key(&j, "dangling");
  wsb_json_object_end(&j);
  ck_assert_int_eq(wsb_json_finish(&j), 0); /* a key without a value */
}
END_TEST

int main(void) {
  Suite *s = suite_create("json");
  TCase *tc = tcase_create("json");
  tcase_add_test(tc, test_structure);
  tcase_add_test(tc, test_escaping);
  tcase_add_test(tc, test_overflow_and_balance);
  suite_add_tcase(s, tc);
  return wsb_run_suite(s);
}
