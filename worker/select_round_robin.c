/* round_robin: nginx's smooth weighted round robin, one rotation shared by every worker. */
#include "select.h"

#include <errno.h>
#include <stdlib.h>

#include "balance.h"

/*
 * How the rotation is shared without a lock: the segment holds one ticket counter per pool and
 * tier (primaries, backups), and every selection takes the next ticket with an atomic add. Every
 * worker derives, from the same table generation, the same deterministic period of the smooth
 * weighted round-robin sequence (common/balance.c) over the tier's enabled backends, and maps
 * ticket t to entry t mod period. Tickets are unique, so sessions opened one after another,
 * through any workers, follow exactly the sequence a single nginx process would produce. A
 * worker dying after its add loses one ticket, nothing more. The counter is never reset: a new
 * generation just continues the new sequence at t mod its period.
 *
 * An entry whose backend cannot take the session (down, full, breaker, tried already by this
 * session) is skipped by taking another ticket rather than the next entry, so the others keep
 * their proportions to each other. A ramping backend (slow start) is taken with probability
 * weight_now / weight, else another ticket is taken, so its share grows with its ramp. After
 * MAX_TICKETS refusals (almost every backend unavailable or ramping) least_conn decides.
 */
#define MAX_TICKETS 16

/* One tier's period of the sequence, as backend slots. */
struct rr_state {
  size_t len;
  uint16_t slots[];
};

static void rr_release(void *state) {
  free(state);
}

static int rr_prepare(const struct wsb_shm_table *t, uint32_t pool, bool backups, void **state) {
  uint32_t weights[WSB_SHM_MAX_BACKENDS];
  uint16_t slot_of[WSB_SHM_MAX_BACKENDS];
  size_t n = 0;
  for (uint32_t slot = 0; slot < t->nslots; slot++) {
    const struct wsb_shm_backend *b = &t->backends[slot];
    if (b->in_use && b->enabled && b->pool == pool && b->backup == backups) {
      weights[n] = b->weight;
      slot_of[n++] = (uint16_t)slot;
    }
  }
  size_t period = wsb_swrr_period(weights, n);
  if (period == 0)
    return 0; /* no backend in this tier: select finds none */
  struct rr_state *rr = malloc(sizeof(*rr) + period * sizeof(rr->slots[0]));
  if (rr == NULL || wsb_swrr_sequence(weights, n, rr->slots) != period) {
    free(rr);
    return -ENOMEM;
  }
  for (size_t i = 0; i < period; i++)
    rr->slots[i] = slot_of[rr->slots[i]];
  rr->len = period;
  *state = rr;
  return 0;
}

static int rr_select(void *state, const struct wsb_pick *p) {
  const struct rr_state *rr = state;
  if (rr == NULL)
    return -1;
  for (int i = 0; i < MAX_TICKETS; i++) {
    uint64_t ticket = atomic_fetch_add_explicit(
        &p->shm->rr_tickets[p->pool % WSB_SHM_MAX_POOLS][p->backups], 1, memory_order_relaxed);
    uint32_t slot = rr->slots[ticket % rr->len];
    if (!wsb_select_available(p, slot))
      continue;
    uint64_t full = (uint64_t)p->table->backends[slot].weight * WSB_RAMP_SCALE;
    uint64_t now = wsb_select_weight(p, slot);
    if (now < full && wsb_select_random(p) % full >= now)
      continue;
    return (int)slot;
  }
  return wsb_balancer_least_conn.select(NULL, p);
}

const struct wsb_balancer wsb_balancer_round_robin = {
    .name = "round_robin",
    .prepare = rr_prepare,
    .release = rr_release,
    .select = rr_select,
};
