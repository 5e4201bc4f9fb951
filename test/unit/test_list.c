/* Unit tests for common/list.h: both ends, the middle, removal while iterating, emptiness. */
#include <check.h>
#include <stdlib.h>

#include "list.h"
#include "run_suite.h"

/* The node is not the first member, so container_of must subtract a real offset. */
struct item {
  int id;
  struct wsb_list_node link;
};

/* Checks l holds exactly ids[0..n) in order, walking forwards and backwards. */
static void expect(const struct wsb_list *l, const int *ids, size_t n) {
  size_t i = 0;
  struct item *it;
  WSB_LIST_EACH (it, l, link) {
    ck_assert_uint_lt(i, n);
    ck_assert_int_eq(it->id, ids[i]);
    i++;
  }
  ck_assert_uint_eq(i, n);
  for (struct wsb_list_node *node = l->last; node != NULL; node = node->prev) {
    ck_assert_uint_gt(i, 0);
    ck_assert_int_eq(wsb_container_of(node, struct item, link)->id, ids[--i]);
  }
  ck_assert_uint_eq(i, 0);
  ck_assert(wsb_list_empty(l) == (n == 0));
  ck_assert((l->first == NULL) == (l->last == NULL));
}

START_TEST(test_empty) {
  struct wsb_list l = {0};
  ck_assert(wsb_list_empty(&l));
  ck_assert_ptr_null(WSB_LIST_FIRST(&l, struct item, link));
  struct item *it;
  WSB_LIST_EACH (it, &l, link) {
    ck_abort_msg("an empty list has no owner");
  }
  expect(&l, NULL, 0);
}
END_TEST

START_TEST(test_insert_remove_ends) {
  struct wsb_list l = {0};
  struct item a = {.id = 1}, b = {.id = 2}, c = {.id = 3};
  wsb_list_insert_tail(&l, &b.link);
  expect(&l, (int[]){2}, 1);
  wsb_list_insert_head(&l, &a.link);
  wsb_list_insert_tail(&l, &c.link);
  expect(&l, (int[]){1, 2, 3}, 3);
  ck_assert_ptr_eq(WSB_LIST_FIRST(&l, struct item, link), &a);
  wsb_list_remove(&l, &a.link); /* the first */
  ck_assert_ptr_null(a.link.prev);
  ck_assert_ptr_null(a.link.next);
  expect(&l, (int[]){2, 3}, 2);
  wsb_list_remove(&l, &c.link); /* the last */
  expect(&l, (int[]){2}, 1);
  wsb_list_remove(&l, &b.link); /* the only one */
  expect(&l, NULL, 0);
  /* A removed node can join again, at either end. */
  wsb_list_insert_head(&l, &c.link);
  wsb_list_insert_head(&l, &b.link);
  expect(&l, (int[]){2, 3}, 2);
}
END_TEST

START_TEST(test_remove_middle) {
  struct wsb_list l = {0};
  struct item it[5];
  for (int i = 0; i < 5; i++) {
    it[i].id = i;
    wsb_list_insert_tail(&l, &it[i].link);
  }
  wsb_list_remove(&l, &it[2].link);
  expect(&l, (int[]){0, 1, 3, 4}, 4);
  wsb_list_remove(&l, &it[1].link);
  expect(&l, (int[]){0, 3, 4}, 3);
  wsb_list_remove(&l, &it[3].link);
  expect(&l, (int[]){0, 4}, 2);
  ck_assert_ptr_eq(it[0].link.next, &it[4].link);
  ck_assert_ptr_eq(it[4].link.prev, &it[0].link);
}
END_TEST

/* The pattern of the callers: each owner may be unlinked and freed by the body. */
START_TEST(test_remove_while_iterating) {
  struct wsb_list l = {0};
  for (int i = 0; i < 6; i++) {
    struct item *n = malloc(sizeof(*n));
    ck_assert_ptr_nonnull(n);
    n->id = i;
    wsb_list_insert_tail(&l, &n->link);
  }
  int seen = 0;
  struct item *it;
  WSB_LIST_EACH (it, &l, link) {
    ck_assert_int_eq(it->id, seen++);
    if (it->id % 2 == 0) {
      wsb_list_remove(&l, &it->link);
      free(it); /* ASan would catch a read of it after this */
    }
  }
  ck_assert_int_eq(seen, 6);
  expect(&l, (int[]){1, 3, 5}, 3);
  /* Emptying the whole list from inside the loop. */
  seen = 0;
  WSB_LIST_EACH (it, &l, link) {
    seen++;
    wsb_list_remove(&l, &it->link);
    free(it);
  }
  ck_assert_int_eq(seen, 3);
  expect(&l, NULL, 0);
}
END_TEST

/* break leaves the loop at once (no hidden inner loop swallows it). */
START_TEST(test_break) {
  struct wsb_list l = {0};
  struct item it[3] = {{.id = 0}, {.id = 1}, {.id = 2}};
  for (int i = 0; i < 3; i++)
    wsb_list_insert_tail(&l, &it[i].link);
  int seen = 0;
  struct item *x;
  WSB_LIST_EACH (x, &l, link) {
    seen++;
    if (x->id == 1)
      break;
  }
  ck_assert_int_eq(seen, 2);
  ck_assert_ptr_eq(x, &it[1]);
}
END_TEST

int main(void) {
  Suite *s = suite_create("list");
  TCase *tc = tcase_create("list");
  tcase_add_test(tc, test_empty);
  tcase_add_test(tc, test_insert_remove_ends);
  tcase_add_test(tc, test_remove_middle);
  tcase_add_test(tc, test_remove_while_iterating);
  tcase_add_test(tc, test_break);
  suite_add_tcase(s, tc);
  return wsb_run_suite(s);
}
