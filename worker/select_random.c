/* random: two backends drawn at random in proportion to their weights; the less loaded one wins. */
#include "select.h"

struct candidate {
  uint32_t slot;
  uint64_t weight;
};

/* Index of a candidate drawn with probability weight / total, skipping index skip. */
static size_t draw(const struct wsb_pick *p, const struct candidate *c, size_t n, uint64_t total,
                   size_t skip) {
  uint64_t r = wsb_select_random(p) % total;
  for (size_t i = 0; i < n; i++) {
    if (i == skip)
      continue;
    if (r < c[i].weight)
      return i;
    r -= c[i].weight;
  }
  return n - 1 == skip ? n - 2 : n - 1; /* not reached: the weights add up to total */
}

/*
 * The power of two choices: a single weighted draw already follows the weights on average,
 * but with long-lived sessions its imbalance grows like a random walk; comparing two draws'
 * loads keeps every backend close to its share, and unlike least_conn it needs no global
 * agreement on who is least loaded right now, so workers do not pile onto the same backend.
 */
static int random_select(void *state, const struct wsb_pick *p) {
  (void)state;
  struct candidate c[WSB_SHM_MAX_BACKENDS];
  size_t n = 0;
  uint64_t total = 0;
  for (uint32_t slot = 0; slot < p->table->nslots; slot++) {
    if (!wsb_select_available(p, slot))
      continue;
    c[n] = (struct candidate){slot, wsb_select_weight(p, slot)};
    total += c[n++].weight;
  }
  if (n == 0)
    return -1;
  if (n == 1)
    return (int)c[0].slot;
  size_t a = draw(p, c, n, total, n);
  size_t b = draw(p, c, n, total - c[a].weight, a);
  int cmp = wsb_select_compare(wsb_select_load(p, c[a].slot), c[a].weight,
                               wsb_select_load(p, c[b].slot), c[b].weight);
  if (cmp == 0)
    cmp = wsb_select_random(p) & 1 ? -1 : 1;
  return (int)(cmp < 0 ? c[a].slot : c[b].slot);
}

const struct wsb_balancer wsb_balancer_random = {
    .name = "random",
    .select = random_select,
};
