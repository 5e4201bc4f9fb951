/* Unit tests for shm/slots.h: a set of backend slots, every slot of the table and no other. */
#include <check.h>

#include "run_suite.h"
#include "slots.h"

START_TEST(zeroed_is_empty) {
  struct wsb_slot_set s = {0};
  for (uint32_t slot = 0; slot < WSB_SHM_MAX_BACKENDS; slot++)
    ck_assert(!wsb_slot_set_has(&s, slot));
}
END_TEST

/* Each slot, at word edges too, is its own bit: adding one adds no other, deleting it deletes
   no other. */
START_TEST(each_slot_alone) {
  for (uint32_t slot = 0; slot < WSB_SHM_MAX_BACKENDS; slot++) {
    struct wsb_slot_set s = {0};
    wsb_slot_set_add(&s, slot);
    for (uint32_t other = 0; other < WSB_SHM_MAX_BACKENDS; other++)
      ck_assert(wsb_slot_set_has(&s, other) == (other == slot));
    wsb_slot_set_add(&s, slot); /* twice is once */
    wsb_slot_set_del(&s, slot);
    for (uint32_t other = 0; other < WSB_SHM_MAX_BACKENDS; other++)
      ck_assert(!wsb_slot_set_has(&s, other));
  }
}
END_TEST

START_TEST(del_and_clear) {
  struct wsb_slot_set s = {0};
  static const uint32_t in[] = {0, 7, 8, 63, 64, 65, 127, 128, 200, WSB_SHM_MAX_BACKENDS - 1};
  for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
    wsb_slot_set_add(&s, in[i]);
  wsb_slot_set_del(&s, 64);
  wsb_slot_set_del(&s, 5); /* not in the set: nothing changes */
  unsigned n = 0;
  for (uint32_t slot = 0; slot < WSB_SHM_MAX_BACKENDS; slot++)
    n += wsb_slot_set_has(&s, slot);
  ck_assert_uint_eq(n, sizeof(in) / sizeof(in[0]) - 1);
  ck_assert(!wsb_slot_set_has(&s, 64));
  ck_assert(wsb_slot_set_has(&s, 63) && wsb_slot_set_has(&s, 65));
  wsb_slot_set_clear(&s);
  for (uint32_t slot = 0; slot < WSB_SHM_MAX_BACKENDS; slot++)
    ck_assert(!wsb_slot_set_has(&s, slot));
}
END_TEST

int main(void) {
  Suite *s = suite_create("slots");
  TCase *tc = tcase_create("slots");
  tcase_add_test(tc, zeroed_is_empty);
  tcase_add_test(tc, each_slot_alone);
  tcase_add_test(tc, del_and_clear);
  suite_add_tcase(s, tc);
  return wsb_run_suite(s);
}
