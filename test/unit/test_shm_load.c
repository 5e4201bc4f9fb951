/* Unit tests for shm/shm.c's sums over workers, backend-reported load (fresh, opened-since,
 * expiry, fallback) and its TLS ticket keys (published, rotated, a stuck writer). */
#include <check.h>

#include "run_suite.h"
#include "shm.h"

/* Sums read the workers given a slot so far and nothing beyond, whatever the field. */
START_TEST(sums_cover_used_slots) {
  struct wsb_shm *shm = wsb_shm_create(4);
  ck_assert_ptr_nonnull(shm);
  for (unsigned w = 0; w < 4; w++) {
    wsb_shm_add(&shm->workers[w].live, 1u << w);
    wsb_shm_add(&shm->workers[w].sessions[7], 10u << w);
    wsb_shm_add(&shm->workers[w].sessions_total[WSB_SHM_MAX_BACKENDS - 1], 100u << w);
    wsb_shm_add(&shm->workers[w].failovers[2][WSB_FO_ADMIN], 1000u << w);
    wsb_shm_add(&shm->workers[w].failover_buffer_bytes, 5);
  }
  /* No slot given yet: every sum is 0, though the counters hold values. */
  ck_assert_uint_eq(wsb_shm_live(shm), 0);
  ck_assert_uint_eq(WSB_SHM_SUM(shm, failover_buffer_bytes), 0);
  wsb_shm_slot_used(shm, 0);
  ck_assert_uint_eq(wsb_shm_live(shm), 1);
  ck_assert_uint_eq(wsb_shm_backend_live(shm, 7), 10);
  /* Slot 2 given: slots 0..2 count, slot 3 still does not. */
  wsb_shm_slot_used(shm, 2);
  ck_assert_uint_eq(wsb_shm_live(shm), 1 + 2 + 4);
  ck_assert_uint_eq(wsb_shm_backend_live(shm, 7), 10 + 20 + 40);
  ck_assert_uint_eq(wsb_shm_backend_live(shm, 6), 0);
  ck_assert_uint_eq(wsb_shm_backend_opened(shm, WSB_SHM_MAX_BACKENDS - 1), 100 + 200 + 400);
  ck_assert_uint_eq(WSB_SHM_SUM(shm, failovers[2][WSB_FO_ADMIN]), 1000 + 2000 + 4000);
  ck_assert_uint_eq(WSB_SHM_SUM(shm, failovers[2][WSB_FO_LOST]), 0);
  ck_assert_uint_eq(WSB_SHM_SUM(shm, failover_buffer_bytes), 15);
  /* A lower slot given later does not shrink the range. */
  wsb_shm_slot_used(shm, 1);
  ck_assert_uint_eq(wsb_shm_live(shm), 7);
  wsb_shm_slot_used(shm, 3);
  ck_assert_uint_eq(wsb_shm_live(shm), 15);
  ck_assert_uint_eq(WSB_SHM_SUM(shm, sessions[7]), 150);
  /* A dead worker's live counts go; its totals stay. */
  wsb_shm_worker_forget(shm, 1);
  ck_assert_uint_eq(wsb_shm_live(shm), 13);
  ck_assert_uint_eq(wsb_shm_backend_live(shm, 7), 130);
  ck_assert_uint_eq(wsb_shm_backend_opened(shm, WSB_SHM_MAX_BACKENDS - 1), 1500);
  wsb_shm_destroy(shm);
}
END_TEST

START_TEST(load_follows_reports) {
  struct wsb_shm *shm = wsb_shm_create(2);
  ck_assert_ptr_nonnull(shm);
  wsb_shm_slot_used(shm, 1);
  for (uint32_t i_ = 0; i_ < WSB_SHM_MAX_BACKENDS; i_++)
    atomic_store(&shm->load_report_ttl_ms[i_], 1000);
  /* No report: this instance's live sessions. */
  wsb_shm_add(&shm->workers[0].sessions[3], 2);
  wsb_shm_add(&shm->workers[1].sessions[3], 1);
  wsb_shm_add(&shm->workers[0].sessions_total[3], 5);
  wsb_shm_add(&shm->workers[1].sessions_total[3], 4);
  ck_assert_uint_eq(wsb_shm_backend_load(shm, 3, 5000), 3);
  ck_assert_uint_eq(wsb_shm_backend_opened(shm, 3), 9);
  /* A report of 40 at t=5000: 40, then 40 + the sessions opened since. */
  wsb_shm_load_set(shm, 3, 40, 5000);
  ck_assert_uint_eq(wsb_shm_backend_load(shm, 3, 5000), 40);
  wsb_shm_add(&shm->workers[1].sessions_total[3], 2);
  wsb_shm_add(&shm->workers[1].sessions[3], 2);
  ck_assert_uint_eq(wsb_shm_backend_load(shm, 3, 5500), 42);
  ck_assert_uint_eq(wsb_shm_backend_load(shm, 3, 6000), 42);
  /* Older than the ttl: live counts again. */
  ck_assert_uint_eq(wsb_shm_backend_load(shm, 3, 6001), 5);
  /* Other slots are untouched; a withdrawn report falls back at once. */
  ck_assert_uint_eq(wsb_shm_backend_load(shm, 4, 5000), 0);
  wsb_shm_load_set(shm, 3, 0, 5600);
  ck_assert_uint_eq(wsb_shm_backend_load(shm, 3, 5600), 0);
  wsb_shm_load_clear(shm, 3);
  ck_assert_uint_eq(wsb_shm_backend_load(shm, 3, 5600), 5);
  /* A writer stuck mid-update (odd sequence) makes readers give up, not spin. */
  wsb_shm_load_set(shm, 3, 100, 5600);
  atomic_fetch_add(&shm->load[3].seq, 1);
  ck_assert_uint_eq(wsb_shm_backend_load(shm, 3, 5600), 5);
  ck_assert_uint_gt(wsb_shm_now_ms(), 0);
  wsb_shm_destroy(shm);
}
END_TEST

/* The ticket keys as the master publishes them and a worker reads them. */
START_TEST(ticket_keys_round_trip) {
  struct wsb_shm *shm = wsb_shm_create(1);
  ck_assert_ptr_nonnull(shm);
  struct wsb_ticket_keys k, got;
  ck_assert(!wsb_shm_tickets_get(shm, &got)); /* nothing published yet */
  uint8_t a[WSB_TICKET_KEY_LEN], b[WSB_TICKET_KEY_LEN];
  for (int i = 0; i < WSB_TICKET_KEY_LEN; i++) {
    a[i] = (uint8_t)i;
    b[i] = (uint8_t)(200 - i);
  }
  wsb_ticket_keys_init(&k, a);
  wsb_shm_tickets_set(shm, &k);
  ck_assert(wsb_shm_tickets_get(shm, &got));
  ck_assert_mem_eq(got.current, a, WSB_TICKET_KEY_LEN);
  ck_assert(!got.has_previous);
  wsb_ticket_keys_rotate(&k, b);
  wsb_shm_tickets_set(shm, &k);
  ck_assert(wsb_shm_tickets_get(shm, &got));
  ck_assert_mem_eq(got.current, b, WSB_TICKET_KEY_LEN);
  ck_assert_mem_eq(got.previous, a, WSB_TICKET_KEY_LEN);
  ck_assert(got.has_previous);
  /* A master that died mid-write: readers give up instead of spinning or reading half keys. */
  atomic_fetch_add(&shm->tickets.seq, 1);
  ck_assert(!wsb_shm_tickets_get(shm, &got));
  ck_assert(!got.has_previous);
  wsb_shm_destroy(shm);
}
END_TEST

int main(void) {
  Suite *s = suite_create("shm_load");
  TCase *tc = tcase_create("shm_load");
  tcase_add_test(tc, sums_cover_used_slots);
  tcase_add_test(tc, load_follows_reports);
  tcase_add_test(tc, ticket_keys_round_trip);
  suite_add_tcase(s, tc);
  return wsb_run_suite(s);
}
