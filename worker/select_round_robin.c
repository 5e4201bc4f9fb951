/* round_robin: nginx's smooth weighted round robin, one rotation shared by every worker. */
#include "select.h"

#include <errno.h>
#include <stdlib.h>

#include "balance.h"

/*
 * How the rotation is shared without a lock: the segment holds one ticket counter per tier
 * (primaries, backups), and every selection takes the next ticket with an atomic add. Every
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

struct rr_state {
  uint16_t *slots[2]; /* the period of the sequence, as backend slots; index = backups */
  size_t len[2];
};

static void rr_release(void *state) {
  struct rr_state *rr = state;
  free(rr->slots[0]);
  free(rr->slots[1]);
  free(rr);
}

static int rr_prepare(struct wsb_worker *w, void **state) {
  struct rr_state *rr = calloc(1, sizeof(*rr));
  if (rr == NULL)
    return -ENOMEM;
  for (int tier = 0; tier < 2; tier++) {
    uint32_t weights[WSB_SHM_MAX_BACKENDS];
    uint16_t slot_of[WSB_SHM_MAX_BACKENDS];
    size_t n = 0;
    for (uint32_t slot = 0; slot < w->table->nslots; slot++) {
      const struct wsb_shm_backend *b = &w->table->backends[slot];
      if (b->in_use && b->enabled && b->backup == (tier == 1)) {
        weights[n] = b->weight;
        slot_of[n++] = (uint16_t)slot;
      }
    }
    size_t period = wsb_swrr_period(weights, n);
    if (period == 0)
      continue;
    rr->slots[tier] = malloc(period * sizeof(uint16_t));
    if (rr->slots[tier] == NULL || wsb_swrr_sequence(weights, n, rr->slots[tier]) != period) {
      rr_release(rr);
      return -ENOMEM;
    }
    for (size_t i = 0; i < period; i++)
      rr->slots[tier][i] = slot_of[rr->slots[tier][i]];
    rr->len[tier] = period;
  }
  *state = rr;
  return 0;
}

static int rr_select(struct wsb_worker *w, void *state, const struct wsb_pick *p) {
  struct rr_state *rr = state;
  int tier = p->backups ? 1 : 0;
  if (rr->len[tier] == 0)
    return -1;
  for (int i = 0; i < MAX_TICKETS; i++) {
    uint64_t ticket = atomic_fetch_add_explicit(&w->shm->rr_tickets[tier], 1, memory_order_relaxed);
    uint32_t slot = rr->slots[tier][ticket % rr->len[tier]];
    if (!wsb_select_available(w, slot, p))
      continue;
    uint64_t full = (uint64_t)w->table->backends[slot].weight * WSB_RAMP_SCALE;
    uint64_t now = wsb_select_weight(w, slot, p);
    if (now < full && wsb_worker_random(w) % full >= now)
      continue;
    return (int)slot;
  }
  return wsb_balancer_least_conn.select(w, NULL, p);
}

const struct wsb_balancer wsb_balancer_round_robin = {
    .name = "round_robin",
    .prepare = rr_prepare,
    .release = rr_release,
    .select = rr_select,
};
