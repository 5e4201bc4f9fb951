/* Unit tests for common/tls_tickets.c: which key a ticket finds across rotations. */
#include <check.h>
#include <string.h>

#include "run_suite.h"
#include "tls_tickets.h"

/* A key whose 80 bytes are all b: its name is 16 bytes of b. */
static void key_of(uint8_t k[WSB_TICKET_KEY_LEN], uint8_t b) {
  memset(k, b, WSB_TICKET_KEY_LEN);
}

START_TEST(first_key_only) {
  struct wsb_ticket_keys k;
  uint8_t a[WSB_TICKET_KEY_LEN], zero[WSB_TICKET_NAME_LEN] = {0};
  key_of(a, 0xa1);
  wsb_ticket_keys_init(&k, a);
  const uint8_t *key = NULL;
  ck_assert_int_eq(wsb_ticket_keys_find(&k, a, &key), WSB_TICKET_CURRENT);
  ck_assert_ptr_eq(key, k.current);
  ck_assert_mem_eq(key, a, WSB_TICKET_KEY_LEN);
  /* No previous key yet: its zeroed bytes must not match a ticket named with zeros. */
  ck_assert_int_eq(wsb_ticket_keys_find(&k, zero, &key), WSB_TICKET_UNKNOWN);
  ck_assert_ptr_null(key);
}
END_TEST

/* A ticket made under a key resumes through one rotation (asking for a new ticket) and not
   through two. */
START_TEST(one_rotation_resumes_two_do_not) {
  struct wsb_ticket_keys k;
  uint8_t a[WSB_TICKET_KEY_LEN], b[WSB_TICKET_KEY_LEN], c[WSB_TICKET_KEY_LEN];
  key_of(a, 0xa1);
  key_of(b, 0xb2);
  key_of(c, 0xc3);
  wsb_ticket_keys_init(&k, a);
  wsb_ticket_keys_rotate(&k, b);
  const uint8_t *key = NULL;
  ck_assert_int_eq(wsb_ticket_keys_find(&k, a, &key), WSB_TICKET_PREVIOUS);
  ck_assert_mem_eq(key, a, WSB_TICKET_KEY_LEN);
  ck_assert_int_eq(wsb_ticket_keys_find(&k, b, &key), WSB_TICKET_CURRENT);
  ck_assert_mem_eq(key, b, WSB_TICKET_KEY_LEN);
  wsb_ticket_keys_rotate(&k, c);
  ck_assert_int_eq(wsb_ticket_keys_find(&k, a, &key), WSB_TICKET_UNKNOWN);
  ck_assert_ptr_null(key);
  ck_assert_int_eq(wsb_ticket_keys_find(&k, b, NULL), WSB_TICKET_PREVIOUS);
  ck_assert_int_eq(wsb_ticket_keys_find(&k, c, NULL), WSB_TICKET_CURRENT);
  /* New tickets are made under the current key. */
  ck_assert_mem_eq(k.current, c, WSB_TICKET_KEY_LEN);
}
END_TEST

/* Only the 16-byte name decides: a ticket naming a key that differs in its last name byte is
   unknown, and a key's secret bytes play no part in the lookup. */
START_TEST(name_is_exact) {
  struct wsb_ticket_keys k;
  uint8_t a[WSB_TICKET_KEY_LEN];
  key_of(a, 0x11);
  wsb_ticket_keys_init(&k, a);
  uint8_t name[WSB_TICKET_NAME_LEN];
  memcpy(name, a, sizeof(name));
  name[WSB_TICKET_NAME_LEN - 1] ^= 1;
  ck_assert_int_eq(wsb_ticket_keys_find(&k, name, NULL), WSB_TICKET_UNKNOWN);
  uint8_t other_secret[WSB_TICKET_KEY_LEN];
  memcpy(other_secret, a, WSB_TICKET_NAME_LEN);
  memset(other_secret + WSB_TICKET_NAME_LEN, 0x77, WSB_TICKET_KEY_LEN - WSB_TICKET_NAME_LEN);
  ck_assert_int_eq(wsb_ticket_keys_find(&k, other_secret, NULL), WSB_TICKET_CURRENT);
}
END_TEST

int main(void) {
  Suite *s = suite_create("tls_tickets");
  TCase *tc = tcase_create("tls_tickets");
  tcase_add_test(tc, first_key_only);
  tcase_add_test(tc, one_rotation_resumes_two_do_not);
  tcase_add_test(tc, name_is_exact);
  suite_add_tcase(s, tc);
  return wsb_run_suite(s);
}
