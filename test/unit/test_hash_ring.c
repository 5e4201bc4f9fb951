/* Unit tests for common/hash_ring.c: spread by weight, few keys moved by adding, refusing and
 * restoring a node. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "hash_ring.h"
#include "run_suite.h"

#define KEYS 100000

static const char *names[] = {"alpha", "bravo", "charlie", "delta",  "echo", "foxtrot",
                              "golf",  "hotel", "india",   "juliet", "kilo"};

static uint64_t key_hash(int i) {
  char key[32];
  int n = snprintf(key, sizeof(key), "10.0.%d.%d", i / 256, i % 256);
  return wsb_hash64(key, (size_t)n);
}

static void build(struct wsb_ring *r, size_t n, const uint32_t *weights) {
  struct wsb_ring_node nodes[11];
  for (size_t i = 0; i < n; i++)
    nodes[i] = (struct wsb_ring_node){names[i], weights != NULL ? weights[i] : 1, (uint32_t)i};
  ck_assert_int_eq(wsb_ring_build(r, nodes, n), 0);
}

static void count(const struct wsb_ring *r, unsigned *counts) {
  for (int i = 0; i < KEYS; i++) {
    int64_t id = wsb_ring_lookup(r, key_hash(i), NULL, NULL);
    ck_assert_int_ge(id, 0);
    counts[id]++;
  }
}

/* 160 points per weight unit leave each node's share within about 1/sqrt(160) = 8% (one
   standard deviation) of its due; 25% is three of them. */
START_TEST(spread_equal_weights) {
  struct wsb_ring r;
  build(&r, 10, NULL);
  ck_assert_uint_eq(r.n, 10 * WSB_RING_POINTS_PER_WEIGHT);
  unsigned counts[10] = {0};
  count(&r, counts);
  for (int i = 0; i < 10; i++) {
    ck_assert_uint_gt(counts[i], KEYS / 10 * 3 / 4);
    ck_assert_uint_lt(counts[i], KEYS / 10 * 5 / 4);
  }
  wsb_ring_free(&r);
}
END_TEST

/* Weights 1, 2, 3, 4 get 10%, 20%, 30%, 40% of the keys, each within 20% of its due. */
START_TEST(spread_follows_weights) {
  struct wsb_ring r;
  uint32_t weights[] = {1, 2, 3, 4};
  build(&r, 4, weights);
  unsigned counts[4] = {0};
  count(&r, counts);
  for (int i = 0; i < 4; i++) {
    unsigned due = KEYS / 10 * weights[i];
    ck_assert_uint_gt(counts[i], due * 4 / 5);
    ck_assert_uint_lt(counts[i], due * 6 / 5);
  }
  wsb_ring_free(&r);
}
END_TEST

/* Adding an 11th node moves about 1/11 (9.1%) of the keys, all of them to the new node. */
START_TEST(adding_moves_one_nth) {
  struct wsb_ring before, after;
  build(&before, 10, NULL);
  build(&after, 11, NULL);
  unsigned moved = 0;
  for (int i = 0; i < KEYS; i++) {
    int64_t a = wsb_ring_lookup(&before, key_hash(i), NULL, NULL);
    int64_t b = wsb_ring_lookup(&after, key_hash(i), NULL, NULL);
    if (a != b) {
      ck_assert_int_eq(b, 10);
      moved++;
    }
  }
  ck_assert_uint_gt(moved, KEYS * 6 / 100);
  ck_assert_uint_lt(moved, KEYS * 12 / 100);
  wsb_ring_free(&before);
  wsb_ring_free(&after);
}
END_TEST

static bool all_but(void *ctx, uint32_t id) {
  return id != *(uint32_t *)ctx;
}

/* A refused (down) node's keys, and only those, go to other nodes; accepted again, they come
   back to it. Its keys spread over several nodes, not all onto one neighbour. */
START_TEST(refused_node_keys_move_and_return) {
  struct wsb_ring r;
  build(&r, 10, NULL);
  uint32_t down = 3;
  unsigned went_to[10] = {0}, moved = 0;
  for (int i = 0; i < KEYS; i++) {
    uint64_t h = key_hash(i);
    int64_t normal = wsb_ring_lookup(&r, h, NULL, NULL);
    int64_t without = wsb_ring_lookup(&r, h, all_but, &down);
    if (normal == (int64_t)down) {
      ck_assert_int_ne(without, (int64_t)down);
      ck_assert_int_ge(without, 0);
      went_to[without]++;
      moved++;
    } else {
      ck_assert_int_eq(without, normal);
    }
    ck_assert_int_eq(wsb_ring_lookup(&r, h, NULL, NULL), normal);
  }
  ck_assert_uint_gt(moved, 0);
  unsigned receivers = 0;
  for (int i = 0; i < 10; i++)
    receivers += went_to[i] > 0;
  ck_assert_uint_ge(receivers, 5);
  wsb_ring_free(&r);
}
END_TEST

static bool none(void *ctx, uint32_t id) {
  (void)ctx;
  (void)id;
  return false;
}

START_TEST(empty_and_all_refused) {
  struct wsb_ring r;
  ck_assert_int_eq(wsb_ring_build(&r, NULL, 0), 0);
  ck_assert_int_eq(wsb_ring_lookup(&r, 42, NULL, NULL), -1);
  wsb_ring_free(&r);
  build(&r, 3, NULL);
  ck_assert_int_eq(wsb_ring_lookup(&r, 42, none, NULL), -1);
  wsb_ring_free(&r);
}
END_TEST

/* Workers build their rings independently: the order nodes come in must not matter. */
START_TEST(order_does_not_matter) {
  struct wsb_ring_node fwd[3] = {{"a", 1, 0}, {"b", 2, 1}, {"c", 1, 2}};
  struct wsb_ring_node rev[3] = {{"c", 1, 2}, {"b", 2, 1}, {"a", 1, 0}};
  struct wsb_ring x, y;
  ck_assert_int_eq(wsb_ring_build(&x, fwd, 3), 0);
  ck_assert_int_eq(wsb_ring_build(&y, rev, 3), 0);
  for (int i = 0; i < 1000; i++)
    ck_assert_int_eq(wsb_ring_lookup(&x, key_hash(i), NULL, NULL),
                     wsb_ring_lookup(&y, key_hash(i), NULL, NULL));
  wsb_ring_free(&x);
  wsb_ring_free(&y);
}
END_TEST

/* Huge weight sums get fewer points per unit, never more than the cap. */
START_TEST(point_count_is_capped) {
  struct wsb_ring_node nodes[2] = {{"a", 1000, 0}, {"b", 1000, 1}};
  struct wsb_ring r;
  ck_assert_int_eq(wsb_ring_build(&r, nodes, 2), 0);
  ck_assert_uint_le(r.n, WSB_RING_MAX_POINTS);
  ck_assert_uint_gt(r.n, 0);
  wsb_ring_free(&r);
}
END_TEST

START_TEST(hash_spreads_near_keys) {
  ck_assert(wsb_hash64("a", 1) != wsb_hash64("b", 1));
  ck_assert(wsb_hash64("", 0) != wsb_hash64("\0", 1));
  ck_assert_uint_eq(wsb_hash64("abc", 3), wsb_hash64("abc", 3));
}
END_TEST

int main(void) {
  Suite *s = suite_create("hash_ring");
  TCase *tc = tcase_create("ring");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, spread_equal_weights);
  tcase_add_test(tc, spread_follows_weights);
  tcase_add_test(tc, adding_moves_one_nth);
  tcase_add_test(tc, refused_node_keys_move_and_return);
  tcase_add_test(tc, empty_and_all_refused);
  tcase_add_test(tc, order_does_not_matter);
  tcase_add_test(tc, point_count_is_capped);
  tcase_add_test(tc, hash_spreads_near_keys);
  suite_add_tcase(s, tc);
  return wsb_run_suite(s);
}
