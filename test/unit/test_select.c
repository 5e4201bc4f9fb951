/* Unit tests for worker/select*.c: each balancer asked over a real segment and a published
 * table, as a worker asks it, with a seeded random generator so every count is reproducible. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balance.h"
#include "hash_ring.h"
#include "run_suite.h"
#include "select.h"

#define T0 1000000 /* the time tests start at, ms */

/* The master's side (a segment, the table it publishes) and one worker's (its private copy of
   the table, its selector, its random generator). */
struct world {
  struct wsb_shm *shm;
  struct wsb_shm_table *t;    /* what the master publishes */
  struct wsb_shm_table *copy; /* what a worker reads back */
  struct wsb_selector sel;
  uint64_t seed;
  struct wsb_pick pick;
};

/* splitmix64: a generator unlike the worker's, fixed by its seed. */
static uint64_t seeded_random(void *ctx) {
  uint64_t *s = ctx;
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void set_backend(struct world *w, uint32_t slot, const char *name, uint32_t weight) {
  struct wsb_shm_backend *b = &w->t->backends[slot];
  memset(b, 0, sizeof(*b));
  snprintf(b->name, sizeof(b->name), "%s", name);
  b->weight = weight;
  b->in_use = true;
  b->enabled = true;
  if (slot >= w->t->nslots)
    w->t->nslots = slot + 1;
  atomic_store(&w->shm->backend_up[slot], 1);
}

/* Publishes w->t, its settings those of pool "default" as the table build makes them (unless a
   test made pools itself), reads it back as a worker does and prepares the algorithm the
   picked pool names. */
static void publish(struct world *w) {
  if (w->t->npools <= 1) {
    w->t->npools = 1;
    w->t->pools[0].in_use = true;
    snprintf(w->t->pools[0].name, sizeof(w->t->pools[0].name), "default");
    w->t->pools[0].settings = w->t->settings;
  }
  wsb_shm_publish(w->shm, w->t);
  wsb_shm_read(w->shm, w->copy);
  wsb_selector_free(&w->sel);
  uint32_t algorithm = wsb_shm_pool_settings(w->copy, w->pick.pool)->algorithm;
  ck_assert_int_eq(wsb_selector_init(&w->sel, wsb_balancer_of(algorithm), w->copy, w->pick.pool),
                   0);
}

/* n primaries b0..b(n-1) of the weights given (NULL: 1 each), up, with no session, balanced
   by algorithm. */
static void world_open(struct world *w, enum wsb_algorithm algorithm, uint32_t n,
                       const uint32_t *weights) {
  memset(w, 0, sizeof(*w));
  w->shm = wsb_shm_create(2);
  w->t = calloc(1, sizeof(*w->t));
  w->copy = calloc(1, sizeof(*w->copy));
  ck_assert(w->shm != NULL && w->t != NULL && w->copy != NULL);
  wsb_shm_slot_used(w->shm, 1); /* both workers' counts are summed */
  w->t->settings.algorithm = algorithm;
  for (uint32_t slot = 0; slot < n; slot++) {
    char name[16];
    snprintf(name, sizeof(name), "b%u", slot);
    set_backend(w, slot, name, weights != NULL ? weights[slot] : 1);
  }
  publish(w);
  w->seed = 42;
  w->pick = (struct wsb_pick){.table = w->copy,
                              .shm = w->shm,
                              .now_ms = T0,
                              .random = seeded_random,
                              .random_ctx = &w->seed};
}

static void world_close(struct world *w) {
  wsb_selector_free(&w->sel);
  wsb_shm_destroy(w->shm);
  free(w->t);
  free(w->copy);
}

static int choose(struct world *w) {
  return wsb_selector_pick(&w->sel, &w->pick);
}

/* Live sessions on slot, split over the two workers (the load is their sum). */
static void set_live(struct world *w, uint32_t slot, uint64_t n) {
  atomic_store(&w->shm->workers[0].sessions[slot], n / 2);
  atomic_store(&w->shm->workers[1].sessions[slot], n - n / 2);
}

static uint64_t live(const struct world *w, uint32_t slot) {
  return wsb_shm_backend_live(w->shm, slot);
}

/* Picks n times; counts[slot] how often each slot came, counts[WSB_SHM_MAX_BACKENDS] no slot.
   With place, every pick opens a session there, as the worker's live count would. */
static void pick_many(struct world *w, unsigned n, bool place, unsigned *counts) {
  memset(counts, 0, (WSB_SHM_MAX_BACKENDS + 1) * sizeof(*counts));
  for (unsigned i = 0; i < n; i++) {
    int slot = choose(w);
    counts[slot < 0 ? WSB_SHM_MAX_BACKENDS : slot]++;
    if (place && slot >= 0)
      set_live(w, (uint32_t)slot, live(w, (uint32_t)slot) + 1);
  }
}

/* The rule every load comparison uses: (load + 1) / weight, cross-multiplied. */
START_TEST(compare_counts_the_new_session) {
  ck_assert_int_lt(wsb_select_compare(4, 3000, 1, 1000), 0); /* 5/3 < 2/1 */
  ck_assert_int_gt(wsb_select_compare(1, 1000, 4, 3000), 0);
  ck_assert_int_eq(wsb_select_compare(2, 3000, 0, 1000), 0); /* 3/3 = 1/1 */
  ck_assert_int_lt(wsb_select_compare(0, 3000, 0, 1000), 0); /* from empty, the heavier */
  ck_assert_int_gt(wsb_select_compare(0, 1, 5, 1000), 0);    /* ramping from almost nothing */
}
END_TEST

START_TEST(algorithm_table) {
  ck_assert_str_eq(wsb_balancer_of(WSB_ALG_LEAST_CONN)->name, "least_conn");
  ck_assert_str_eq(wsb_balancer_of(WSB_ALG_ROUND_ROBIN)->name, "round_robin");
  ck_assert_str_eq(wsb_balancer_of(WSB_ALG_RANDOM)->name, "random");
  ck_assert_str_eq(wsb_balancer_of(WSB_ALG_HASH)->name, "hash");
  ck_assert_ptr_eq(wsb_balancer_of(99), &wsb_balancer_least_conn);
}
END_TEST

START_TEST(least_conn_takes_the_least_loaded) {
  struct world w;
  world_open(&w, WSB_ALG_LEAST_CONN, 3, NULL);
  set_live(&w, 0, 5);
  set_live(&w, 1, 2);
  set_live(&w, 2, 7);
  ck_assert_int_eq(choose(&w), 1);
  set_live(&w, 1, 9);
  ck_assert_int_eq(choose(&w), 0);
  /* A backend's fresh report counts, plus what this instance opened since; a stale one not. */
  for (uint32_t i_ = 0; i_ < WSB_SHM_MAX_BACKENDS; i_++)
    atomic_store(&w.shm->load_report_ttl_ms[i_], 5000);
  wsb_shm_load_set(w.shm, 0, 20, T0);
  ck_assert_int_eq(choose(&w), 2);
  w.pick.now_ms = T0 + 5001;
  ck_assert_int_eq(choose(&w), 0);
  world_close(&w);
}
END_TEST

/* Weight 3 takes three sessions for each one of weight 1, from empty on. */
START_TEST(least_conn_weights) {
  struct world w;
  world_open(&w, WSB_ALG_LEAST_CONN, 2, (const uint32_t[]){3, 1});
  set_live(&w, 0, 4);
  set_live(&w, 1, 1);
  ck_assert_int_eq(choose(&w), 0); /* (4+1)/3 < (1+1)/1, where 4/3 > 1/1 */
  set_live(&w, 0, 0);
  set_live(&w, 1, 0);
  unsigned counts[WSB_SHM_MAX_BACKENDS + 1];
  for (unsigned n = 4; n <= 40; n += 4) {
    pick_many(&w, 4, true, counts);
    ck_assert_uint_eq(live(&w, 0), n * 3 / 4);
    ck_assert_uint_eq(live(&w, 1), n / 4);
  }
  world_close(&w);
}
END_TEST

/* Equal backends share the picks, rather than the first taking them all. */
START_TEST(least_conn_breaks_ties_at_random) {
  struct world w;
  world_open(&w, WSB_ALG_LEAST_CONN, 3, NULL);
  unsigned counts[WSB_SHM_MAX_BACKENDS + 1];
  pick_many(&w, 300, false, counts);
  for (uint32_t slot = 0; slot < 3; slot++)
    ck_assert_uint_gt(counts[slot], 60);
  world_close(&w);
}
END_TEST

/* A preferred slot (the backend a plain HTTP connection is kept to) wins its ties and a
   difference of one session plus a quarter of its load, and only that: from idle, a backend two
   sessions less loaded goes first; at 8 elsewhere, the preferred one keeps up to 12, not 13. */
START_TEST(least_conn_prefers_among_equals) {
  struct world w;
  world_open(&w, WSB_ALG_LEAST_CONN, 3, NULL);
  wsb_slot_set_add(&w.pick.preferred, 2);
  unsigned counts[WSB_SHM_MAX_BACKENDS + 1];
  pick_many(&w, 100, false, counts);
  ck_assert_uint_eq(counts[2], 100);
  set_live(&w, 2, 1);
  pick_many(&w, 100, false, counts);
  ck_assert_uint_eq(counts[2], 100);
  set_live(&w, 2, 2);
  pick_many(&w, 100, false, counts);
  ck_assert_uint_eq(counts[2], 0);
  ck_assert_uint_gt(counts[0], 20);
  ck_assert_uint_gt(counts[1], 20);
  set_live(&w, 0, 8);
  set_live(&w, 1, 8);
  set_live(&w, 2, 12);
  pick_many(&w, 100, false, counts);
  ck_assert_uint_eq(counts[2], 100);
  set_live(&w, 2, 13);
  pick_many(&w, 100, false, counts);
  ck_assert_uint_eq(counts[2], 0);
  world_close(&w);
}
END_TEST

/* Slots 0-5 each have one reason not to take a session, and no session; slot 6, the only one
   available, has many: any check that fails lets a wrong slot win. */
START_TEST(least_conn_skips_unavailable) {
  struct world w;
  world_open(&w, WSB_ALG_LEAST_CONN, 7, NULL);
  w.t->backends[0].enabled = false;
  atomic_store(&w.shm->backend_up[1], 0);
  atomic_store(&w.shm->breaker_state[2], WSB_BREAKER_OPEN);
  atomic_store(&w.shm->breaker_until_ms[2], T0 + 1);
  w.t->backends[3].max_sessions = 2;
  set_live(&w, 3, 2);
  wsb_slot_set_add(&w.pick.excluded, 4);
  w.t->backends[5].in_use = false;
  w.t->backends[5].retired = true;
  set_live(&w, 6, 50);
  publish(&w);
  ck_assert_int_eq(choose(&w), 6);
  /* max_sessions counts this instance's own sessions, whatever the backend reports. */
  for (uint32_t i_ = 0; i_ < WSB_SHM_MAX_BACKENDS; i_++)
    atomic_store(&w.shm->load_report_ttl_ms[i_], 5000);
  wsb_shm_load_set(w.shm, 3, 0, T0);
  ck_assert_int_eq(choose(&w), 6);
  /* Each comes back on its own. */
  set_live(&w, 3, 1);
  ck_assert_int_eq(choose(&w), 3);
  set_live(&w, 3, 2);
  wsb_slot_set_del(&w.pick.excluded, 4);
  ck_assert_int_eq(choose(&w), 4);
  wsb_slot_set_add(&w.pick.excluded, 4);
  w.pick.now_ms = T0 + 1; /* the cooldown is over: the trial is the worker's to claim */
  ck_assert_int_eq(choose(&w), 2);
  atomic_store(&w.shm->breaker_until_ms[2], T0 + 2);
  atomic_store(&w.shm->breaker_state[2], WSB_BREAKER_TRIAL); /* another worker's trial */
  ck_assert_int_eq(choose(&w), 6);
  atomic_store(&w.shm->backend_up[1], 1);
  ck_assert_int_eq(choose(&w), 1);
  world_close(&w);
}
END_TEST

/* Every algorithm chooses a backup only when no primary is available. */
START_TEST(backups_only_without_primary) {
  static const enum wsb_algorithm algs[] = {WSB_ALG_LEAST_CONN, WSB_ALG_ROUND_ROBIN, WSB_ALG_RANDOM,
                                            WSB_ALG_HASH};
  for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
    struct world w;
    world_open(&w, algs[i], 4, NULL);
    w.t->backends[2].backup = true;
    w.t->backends[3].backup = true;
    publish(&w);
    set_live(&w, 0, 30);
    set_live(&w, 1, 30);
    unsigned counts[WSB_SHM_MAX_BACKENDS + 1];
    for (uint64_t key = 0; key < 50; key++) {
      w.pick.key_hash = wsb_hash64(&key, sizeof(key));
      pick_many(&w, 2, false, counts);
      ck_assert_uint_eq(counts[0] + counts[1], 2);
    }
    atomic_store(&w.shm->backend_up[0], 0);
    w.t->backends[1].enabled = false;
    publish(&w);
    for (uint64_t key = 0; key < 50; key++) {
      w.pick.key_hash = wsb_hash64(&key, sizeof(key));
      pick_many(&w, 2, false, counts);
      ck_assert_uint_eq(counts[2] + counts[3], 2);
    }
    atomic_store(&w.shm->backend_up[2], 0);
    atomic_store(&w.shm->backend_up[3], 0);
    pick_many(&w, 5, false, counts);
    ck_assert_uint_eq(counts[WSB_SHM_MAX_BACKENDS], 5);
    world_close(&w);
  }
}
END_TEST

/* nginx's example, 5 1 1 gives a a b a c a a, through two workers taking turns: the rotation
   is the segment's, not a worker's. */
START_TEST(round_robin_rotation_is_shared) {
  struct world w;
  world_open(&w, WSB_ALG_ROUND_ROBIN, 3, (const uint32_t[]){5, 1, 1});
  struct wsb_selector other;
  ck_assert_int_eq(wsb_selector_init(&other, &wsb_balancer_round_robin, w.copy, 0), 0);
  static const int want[] = {0, 0, 1, 0, 2, 0, 0};
  for (int i = 0; i < 21; i++) {
    const struct wsb_selector *s = i % 2 ? &other : &w.sel;
    ck_assert_int_eq(wsb_selector_pick(s, &w.pick), want[i % 7]);
  }
  wsb_selector_free(&other);
  world_close(&w);
}
END_TEST

/* An entry whose backend cannot take the session is skipped by taking another ticket: the
   others keep their turns. A disabled backend is out of the rotation altogether. */
START_TEST(round_robin_skips_unavailable) {
  struct world w;
  world_open(&w, WSB_ALG_ROUND_ROBIN, 4, NULL);
  w.t->backends[3].enabled = false;
  publish(&w);
  atomic_store(&w.shm->backend_up[1], 0);
  unsigned counts[WSB_SHM_MAX_BACKENDS + 1];
  for (int i = 0; i < 50; i++) {
    int a = choose(&w), b = choose(&w);
    ck_assert_int_ne(a, b);
    ck_assert(a == 0 || a == 2);
    ck_assert(b == 0 || b == 2);
  }
  atomic_store(&w.shm->backend_up[1], 1);
  pick_many(&w, 300, false, counts);
  ck_assert_uint_eq(counts[0], 100);
  ck_assert_uint_eq(counts[1], 100);
  ck_assert_uint_eq(counts[2], 100);
  /* However heavy, a disabled backend takes no turn that would have to be refused (enough
     refusals in a row would hand the choice to least_conn: slot 2, the least loaded). */
  w.t->backends[3].weight = 60;
  publish(&w);
  set_live(&w, 0, 10);
  set_live(&w, 1, 10);
  pick_many(&w, 300, false, counts);
  ck_assert_uint_eq(counts[2], 100);
  world_close(&w);
}
END_TEST

/* A ramping backend takes its turn with probability weight_now / weight; once ramped, its
   whole share. When every turn is refused, least_conn decides rather than nobody. */
START_TEST(round_robin_slow_start) {
  struct world w;
  world_open(&w, WSB_ALG_ROUND_ROBIN, 2, NULL);
  w.t->settings.slow_start_ms = 10000;
  publish(&w);
  atomic_store(&w.shm->ramp_since_ms[0], T0 - 1000); /* 10% of its weight */
  unsigned counts[WSB_SHM_MAX_BACKENDS + 1];
  pick_many(&w, 1000, false, counts);
  /* About 0.5 × 0.1 / (0.5 × 0.1 + 0.5) = 9%. */
  ck_assert_uint_gt(counts[0], 40);
  ck_assert_uint_lt(counts[0], 150);
  ck_assert_uint_eq(counts[0] + counts[1], 1000);
  w.pick.now_ms = T0 + 9000;
  pick_many(&w, 1000, false, counts);
  ck_assert_uint_eq(counts[0], 500);
  /* Alone and barely started (1/1000 of its weight): refused almost every turn, yet chosen. */
  atomic_store(&w.shm->ramp_since_ms[0], w.pick.now_ms);
  atomic_store(&w.shm->backend_up[1], 0);
  pick_many(&w, 100, false, counts);
  ck_assert_uint_eq(counts[0], 100);
  world_close(&w);
}
END_TEST

START_TEST(random_stays_within_available) {
  struct world w;
  world_open(&w, WSB_ALG_RANDOM, 6, NULL);
  atomic_store(&w.shm->backend_up[1], 0);
  wsb_slot_set_add(&w.pick.excluded, 3);
  w.t->backends[5].enabled = false;
  publish(&w);
  unsigned counts[WSB_SHM_MAX_BACKENDS + 1];
  pick_many(&w, 900, false, counts);
  ck_assert_uint_eq(counts[0] + counts[2] + counts[4], 900);
  for (uint32_t slot = 0; slot < 6; slot += 2)
    ck_assert_uint_gt(counts[slot], 200); /* 300 each on average */
  /* One available: that one; none: no slot. */
  atomic_store(&w.shm->backend_up[0], 0);
  atomic_store(&w.shm->backend_up[2], 0);
  pick_many(&w, 10, false, counts);
  ck_assert_uint_eq(counts[4], 10);
  atomic_store(&w.shm->backend_up[4], 0);
  ck_assert_int_eq(choose(&w), -1);
  world_close(&w);
}
END_TEST

/*
 * The two candidates are drawn in proportion to weight. Loads 0, 1, 3 on weights 1, 2, 4 make
 * every comparison a tie (a coin decides), so what shows is the draw alone: slot i comes with
 * half the chance that it is one of the two drawn, 41/210, 75/210 and 94/210 here (uniform
 * draws would give a third each).
 */
START_TEST(random_draws_follow_weights) {
  struct world w;
  world_open(&w, WSB_ALG_RANDOM, 3, (const uint32_t[]){1, 2, 4});
  set_live(&w, 1, 1);
  set_live(&w, 2, 3);
  unsigned counts[WSB_SHM_MAX_BACKENDS + 1];
  pick_many(&w, 3000, false, counts); /* expected 586, 1071, 1343; sd < 28 */
  ck_assert_uint_gt(counts[0], 480);
  ck_assert_uint_lt(counts[0], 700);
  ck_assert_uint_gt(counts[1], 930);
  ck_assert_uint_lt(counts[1], 1210);
  ck_assert_uint_gt(counts[2], 1200);
  ck_assert_uint_lt(counts[2], 1490);
  world_close(&w);
}
END_TEST

/* Of the two drawn, the less loaded wins: the most loaded backend is never chosen, and placed
   sessions keep to the weights. */
START_TEST(random_prefers_the_less_loaded) {
  struct world w;
  world_open(&w, WSB_ALG_RANDOM, 3, NULL);
  set_live(&w, 0, 100);
  unsigned counts[WSB_SHM_MAX_BACKENDS + 1];
  pick_many(&w, 500, false, counts);
  ck_assert_uint_eq(counts[0], 0);
  set_live(&w, 0, 0);
  w.t->backends[2].weight = 2;
  publish(&w);
  pick_many(&w, 400, true, counts);
  /* 100, 100, 200 at the end, within a few sessions */
  ck_assert_uint_ge(live(&w, 0), 95);
  ck_assert_uint_le(live(&w, 0), 105);
  ck_assert_uint_ge(live(&w, 2), 190);
  ck_assert_uint_le(live(&w, 2), 210);
  world_close(&w);
}
END_TEST

#define KEYS 2000

static void map_keys(struct world *w, int *slots) {
  for (uint64_t key = 0; key < KEYS; key++) {
    w->pick.key_hash = wsb_hash64(&key, sizeof(key));
    slots[key] = choose(w);
  }
}

/* A key goes to the same backend every time, and keys spread over all of them. */
START_TEST(hash_same_key_same_slot) {
  struct world w;
  world_open(&w, WSB_ALG_HASH, 4, NULL);
  static int first[KEYS], again[KEYS];
  map_keys(&w, first);
  set_live(&w, 0, 1000); /* load does not move keys */
  map_keys(&w, again);
  unsigned per_slot[4] = {0};
  for (int k = 0; k < KEYS; k++) {
    ck_assert_int_eq(again[k], first[k]);
    ck_assert(first[k] >= 0 && first[k] < 4);
    per_slot[first[k]]++;
  }
  for (int slot = 0; slot < 4; slot++)
    ck_assert_uint_gt(per_slot[slot], KEYS / 8); /* 500 each on average */
  world_close(&w);
}
END_TEST

/* Taking a backend away, whichever way, moves its keys and only those, all the same way; they
   come back with it. Moving backends to other slots moves no key: points follow names. */
START_TEST(hash_moves_only_the_removed_keys) {
  struct world w;
  world_open(&w, WSB_ALG_HASH, 4, NULL);
  static int before[KEYS], down[KEYS], other[KEYS];
  map_keys(&w, before);
  atomic_store(&w.shm->backend_up[2], 0);
  map_keys(&w, down);
  unsigned moved = 0;
  for (int k = 0; k < KEYS; k++) {
    if (before[k] == 2) {
      ck_assert(down[k] >= 0 && down[k] != 2);
      moved++;
    } else {
      ck_assert_int_eq(down[k], before[k]);
    }
  }
  ck_assert_uint_gt(moved, KEYS / 8);
  atomic_store(&w.shm->backend_up[2], 1);
  map_keys(&w, other);
  ck_assert_mem_eq(other, before, sizeof(before));
  wsb_slot_set_add(&w.pick.excluded, 2); /* tried already */
  map_keys(&w, other);
  ck_assert_mem_eq(other, down, sizeof(down));
  wsb_slot_set_clear(&w.pick.excluded);
  w.t->backends[2].in_use = false; /* removed by a reload: a ring without it */
  publish(&w);
  map_keys(&w, other);
  ck_assert_mem_eq(other, down, sizeof(down));
  /* b3 b2 b1 b0 in slots 0-3: each key goes to the backend of the same name. */
  for (uint32_t slot = 0; slot < 4; slot++) {
    char name[16];
    snprintf(name, sizeof(name), "b%u", 3 - slot);
    set_backend(&w, slot, name, 1);
  }
  publish(&w);
  map_keys(&w, other);
  for (int k = 0; k < KEYS; k++)
    ck_assert_int_eq(other[k], 3 - before[k]);
  world_close(&w);
}
END_TEST

/* A ramping backend's weight grows with now_ms, and least_conn weighs its load by it. */
START_TEST(slow_start_ramps_with_time) {
  struct world w;
  world_open(&w, WSB_ALG_LEAST_CONN, 2, (const uint32_t[]){2, 1});
  w.t->settings.slow_start_ms = 10000;
  publish(&w);
  atomic_store(&w.shm->ramp_since_ms[0], T0);
  ck_assert_uint_eq(wsb_select_weight(&w.pick, 0), 1); /* never 0 */
  ck_assert_uint_eq(wsb_select_weight(&w.pick, 1), WSB_RAMP_SCALE);
  set_live(&w, 1, 3);
  /* Empty slot 0 against slot 1's 3 sessions: 1 / (2 × ramp) against 4 / 1, so slot 0 is
     chosen once past an eighth of the ramp. */
  w.pick.now_ms = T0 + 1000;
  ck_assert_uint_eq(wsb_select_weight(&w.pick, 0), 2 * WSB_RAMP_SCALE / 10);
  ck_assert_int_eq(choose(&w), 1);
  w.pick.now_ms = T0 + 1200;
  ck_assert_int_eq(choose(&w), 1);
  w.pick.now_ms = T0 + 1300;
  ck_assert_int_eq(choose(&w), 0);
  w.pick.now_ms = T0 + 10000;
  ck_assert_uint_eq(wsb_select_weight(&w.pick, 0), 2 * WSB_RAMP_SCALE);
  world_close(&w);
}
END_TEST

/* Two pools: each selection stays among its pool's backends, backups included, with the pool's
   own algorithm and its own round-robin rotation; a pool with nothing left gives no backend
   even while the other has some. */
START_TEST(pools_never_mix) {
  struct world w;
  world_open(&w, WSB_ALG_LEAST_CONN, 6, NULL);
  w.t->npools = 2;
  w.t->pools[0] = (struct wsb_shm_pool){.name = "default", .in_use = true};
  w.t->pools[0].settings = w.t->settings;
  w.t->pools[1] = (struct wsb_shm_pool){.name = "chat", .in_use = true};
  w.t->pools[1].settings = w.t->settings;
  w.t->pools[1].settings.algorithm = WSB_ALG_ROUND_ROBIN;
  for (uint32_t slot = 2; slot < 6; slot++)
    w.t->backends[slot].pool = 1;
  w.t->backends[1].backup = true; /* default: b0, backup b1; chat: b2 b3 b4, backup b5 */
  w.t->backends[5].backup = true;
  unsigned counts[WSB_SHM_MAX_BACKENDS + 1];
  publish(&w);
  ck_assert_ptr_eq(w.sel.balancer, &wsb_balancer_least_conn);
  pick_many(&w, 50, true, counts);
  ck_assert_uint_eq(counts[0], 50);

  w.pick.pool = 1;
  publish(&w);
  ck_assert_ptr_eq(w.sel.balancer, &wsb_balancer_round_robin);
  ck_assert_str_eq(wsb_shm_pool_settings(w.copy, 1)->reconnect_header, "");
  pick_many(&w, 60, false, counts);
  ck_assert_uint_eq(counts[2] + counts[3] + counts[4], 60);
  ck_assert_uint_eq(counts[2], 20); /* the rotation is the pool's own */
  ck_assert_uint_eq(counts[4], 20);
  /* The pool's primaries gone: its backup, never the other pool's backends. */
  for (uint32_t slot = 2; slot <= 4; slot++)
    wsb_slot_set_add(&w.pick.excluded, slot);
  ck_assert_int_eq(choose(&w), 5);
  wsb_slot_set_add(&w.pick.excluded, 5);
  ck_assert_int_eq(choose(&w), -1);
  ck_assert(!wsb_select_available(&w.pick, 0));

  /* A pool slot no backend has (a removed pool): nothing, whatever the others hold. */
  w.pick = (struct wsb_pick){.table = w.copy,
                             .shm = w.shm,
                             .now_ms = T0,
                             .pool = 7,
                             .random = seeded_random,
                             .random_ctx = &w.seed};
  publish(&w);
  ck_assert_int_eq(choose(&w), -1);
  /* Its settings are the default pool's. */
  ck_assert_ptr_eq(wsb_shm_pool_settings(w.copy, 7), &w.copy->pools[0].settings);
  world_close(&w);
}
END_TEST

int main(void) {
  Suite *s = suite_create("select");
  TCase *tc = tcase_create("select");
  tcase_add_test(tc, compare_counts_the_new_session);
  tcase_add_test(tc, algorithm_table);
  tcase_add_test(tc, least_conn_takes_the_least_loaded);
  tcase_add_test(tc, least_conn_weights);
  tcase_add_test(tc, least_conn_breaks_ties_at_random);
  tcase_add_test(tc, least_conn_prefers_among_equals);
  tcase_add_test(tc, least_conn_skips_unavailable);
  tcase_add_test(tc, backups_only_without_primary);
  tcase_add_test(tc, round_robin_rotation_is_shared);
  tcase_add_test(tc, round_robin_skips_unavailable);
  tcase_add_test(tc, round_robin_slow_start);
  tcase_add_test(tc, random_stays_within_available);
  tcase_add_test(tc, random_draws_follow_weights);
  tcase_add_test(tc, random_prefers_the_less_loaded);
  tcase_add_test(tc, hash_same_key_same_slot);
  tcase_add_test(tc, hash_moves_only_the_removed_keys);
  tcase_add_test(tc, slow_start_ramps_with_time);
  tcase_add_test(tc, pools_never_mix);
  suite_add_tcase(s, tc);
  return wsb_run_suite(s);
}
