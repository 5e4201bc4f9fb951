/* random: two backends drawn at random in proportion to their weights; the less loaded one wins. */
#include "select.h"

struct candidate {
  uint32_t slot;
  uint64_t weight;
};

/* Index of a candidate drawn with probability weight / total, skipping index skip. */
static size_t draw(struct wsb_worker *w, const struct candidate *c, size_t n, uint64_t total,
                   size_t skip) {
  uint64_t r = wsb_worker_random(w) % total;
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
static int random_select(struct wsb_worker *w, void *state, const struct wsb_pick *p) {
  (void)state;
  struct candidate c[WSB_SHM_MAX_BACKENDS];
  size_t n = 0;
  uint64_t total = 0;
  for (uint32_t slot = 0; slot < w->table->nslots; slot++) {
    if (!wsb_select_available(w, slot, p))
      continue;
    c[n] = (struct candidate){slot, wsb_select_weight(w, slot, p)};
    total += c[n++].weight;
  }
  if (n == 0)
    return -1;
  if (n == 1)
    return (int)c[0].slot;
  size_t a = draw(w, c, n, total, n);
  size_t b = draw(w, c, n, total - c[a].weight, a);
  int cmp = wsb_select_compare(wsb_select_load(w, c[a].slot), c[a].weight,
                               wsb_select_load(w, c[b].slot), c[b].weight);
  if (cmp == 0)
    cmp = wsb_worker_random(w) & 1 ? -1 : 1;
  return (int)(cmp < 0 ? c[a].slot : c[b].slot);
}

const struct wsb_balancer wsb_balancer_random = {
    .name = "random",
    .select = random_select,
};
