/* Backend selection: the balancing algorithms, as functions of a table, a segment and a time. */
#ifndef WSB_SELECT_H
#define WSB_SELECT_H

#include <stdbool.h>
#include <stdint.h>

#include "shm.h"
#include "slots.h"

/*
 * One selection: everything an algorithm reads, so that a worker and a unit test ask it the same
 * way. Nothing here is the worker's: the table is the published one (a worker's private copy),
 * and the segment holds the live counts, load reports, breakers, health and rotation every
 * worker shares.
 */
struct wsb_pick {
  const struct wsb_shm_table *table;
  struct wsb_shm *shm;
  uint64_t now_ms; /* wsb_shm_now_ms(): load reports' age, slow start, breaker cooldowns */
  /* Random numbers for tie-breaks and draws: the worker's generator, a seeded one in tests. */
  uint64_t (*random)(void *ctx);
  void *random_ctx;
  uint32_t pool;                /* the session's pool slot: only its backends are candidates */
  struct wsb_slot_set excluded; /* slots tried already for this session */
  bool backups;                 /* choose among backups: no primary is available */
  uint64_t key_hash;            /* hash: the hash of the request's key */
  /* least_conn: among equally loaded slots, one of these wins (the backend a plain HTTP client
     connection keeps an idle connection to: no switch of connections for nothing). */
  struct wsb_slot_set preferred;
};

/*
 * A balancing algorithm (STYLE.md rule 8). Its state is built once per table generation, pool
 * and tier (primaries, backups), never per selection: those never mix, so each has its own.
 */
struct wsb_balancer {
  const char *name;
  /* Builds the state select reads for the backups or primaries of t's pool into *state, which
     is NULL on entry and may stay so (no backend in the tier, or nothing to build). 0 or
     -ENOMEM. */
  int (*prepare)(const struct wsb_shm_table *t, uint32_t pool, bool backups, void **state);
  void (*release)(void *state);
  /* An available slot of p's tier, or -1 when there is none. state is that tier's. */
  int (*select)(void *state, const struct wsb_pick *p);
};

extern const struct wsb_balancer wsb_balancer_least_conn;
extern const struct wsb_balancer wsb_balancer_round_robin;
extern const struct wsb_balancer wsb_balancer_random;
extern const struct wsb_balancer wsb_balancer_hash;

/* The balancer of an enum wsb_algorithm; least_conn for a value it does not know. */
const struct wsb_balancer *wsb_balancer_of(uint32_t algorithm);

/* A balancer with its state for both tiers of one pool, for one table generation. Zeroed, it
   is unset. */
struct wsb_selector {
  const struct wsb_balancer *balancer;
  void *state[2]; /* index = backups */
};

/* Prepares b over t's pool. 0, or -ENOMEM with s unset. */
int wsb_selector_init(struct wsb_selector *s, const struct wsb_balancer *b,
                      const struct wsb_shm_table *t, uint32_t pool);
void wsb_selector_free(struct wsb_selector *s);

/* A primary chosen by s's algorithm, else a backup (backups only when no primary is available;
   p->backups is not read); -1 when no backend is available. */
int wsb_selector_pick(const struct wsb_selector *s, const struct wsb_pick *p);

/* May slot take a new session now: in p's pool and tier, in use, enabled, up, below its
   max_sessions, its breaker not cooling down, and not excluded. */
bool wsb_select_available(const struct wsb_pick *p, uint32_t slot);

/* The load least_conn and random compare: the backend's fresh load report plus the sessions this
   instance opened since (load_report_path), else the slot's live sessions over all workers. */
uint64_t wsb_select_load(const struct wsb_pick *p, uint32_t slot);

/* The slot's weight now, in 1/WSB_RAMP_SCALE units, its pool's slow start applied. */
uint64_t wsb_select_weight(const struct wsb_pick *p, uint32_t slot);

/* The pick's next random number. */
static inline uint64_t wsb_select_random(const struct wsb_pick *p) {
  return p->random(p->random_ctx);
}

/* Compares (load + 1) / weight of two backends, counting the session being placed, so a
   backend of weight 3 takes three sessions for each one of weight 1 even from empty, and a
   ramping backend with no session does not win every pick. <0, 0 or >0 as a is less loaded. */
int wsb_select_compare(uint64_t load_a, uint64_t weight_a, uint64_t load_b, uint64_t weight_b);

#endif
