/* Backend selection inside a worker: the table of balancing algorithms and what they share. */
#ifndef WSB_SELECT_H
#define WSB_SELECT_H

#include <stdbool.h>
#include <stdint.h>

#include "worker.h"

/* One selection, as every algorithm is asked it. */
struct wsb_pick {
  const uint8_t *excluded; /* bitset of slots tried already for this session, or NULL */
  bool backups;            /* choose among backups: no primary is available */
  uint64_t key_hash;       /* hash: the hash of the request's key */
  uint64_t now_ms;         /* wsb_shm_now_ms(), for slow start */
};

/* A balancing algorithm (STYLE.md rule 8): private state per table generation, and select. */
struct wsb_balancer {
  const char *name;
  /* Builds the state select reads from w->table; NULL when none is needed. 0 or -ENOMEM. */
  int (*prepare)(struct wsb_worker *w, void **state);
  void (*release)(void *state);
  /* An available slot of p's tier (primaries or backups), or -1 when there is none. */
  int (*select)(struct wsb_worker *w, void *state, const struct wsb_pick *p);
};

extern const struct wsb_balancer wsb_balancer_least_conn;
extern const struct wsb_balancer wsb_balancer_round_robin;
extern const struct wsb_balancer wsb_balancer_random;
extern const struct wsb_balancer wsb_balancer_hash;

/* May slot take a new session now: in p's tier, in use, enabled, up, below its max_sessions,
   its breaker not cooling down, and not excluded. */
bool wsb_select_available(struct wsb_worker *w, uint32_t slot, const struct wsb_pick *p);

/* The load least_conn and random compare: the backend's fresh load report plus the sessions this
   instance opened since (load_report_path), else the slot's live sessions over all workers. */
uint64_t wsb_select_load(const struct wsb_worker *w, uint32_t slot);

/* The slot's weight now, in 1/WSB_RAMP_SCALE units, slow start applied. */
uint64_t wsb_select_weight(const struct wsb_worker *w, uint32_t slot, const struct wsb_pick *p);

/* Compares (load + 1) / weight of two backends, counting the session being placed, so a
   backend of weight 3 takes three sessions for each one of weight 1 even from empty, and a
   ramping backend with no session does not win every pick. <0, 0 or >0 as a is less loaded. */
int wsb_select_compare(uint64_t load_a, uint64_t weight_a, uint64_t load_b, uint64_t weight_b);

#endif
