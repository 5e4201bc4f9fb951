/* least_conn: the fewest live sessions per unit of (slow-start) weight, random among equals. */
#include "select.h"

/* Ties are broken by reservoir sampling, so workers with equal views do not all pick the first. */
static int least_conn_select(void *state, const struct wsb_pick *p) {
  (void)state;
  int best = -1;
  uint64_t best_load = 0, best_weight = 1;
  unsigned ties = 0;
  for (uint32_t slot = 0; slot < p->table->nslots; slot++) {
    if (!wsb_select_available(p, slot))
      continue;
    uint64_t load = wsb_select_load(p, slot), weight = wsb_select_weight(p, slot);
    int cmp = best < 0 ? -1 : wsb_select_compare(load, weight, best_load, best_weight);
    if (cmp < 0)
      ties = 1;
    if (cmp < 0 || (cmp == 0 && wsb_select_random(p) % ++ties == 0)) {
      best = (int)slot;
      best_load = load;
      best_weight = weight;
    }
  }
  return best;
}

const struct wsb_balancer wsb_balancer_least_conn = {
    .name = "least_conn",
    .select = least_conn_select,
};
