/* Backend selection: the algorithm table, availability, loads, slow-start weights, and backups
 * after primaries. */
#include "select.h"

#include <errno.h>

#include "balance.h"

static const struct wsb_balancer *const balancers[] = {
    [WSB_ALG_LEAST_CONN] = &wsb_balancer_least_conn,
    [WSB_ALG_ROUND_ROBIN] = &wsb_balancer_round_robin,
    [WSB_ALG_RANDOM] = &wsb_balancer_random,
    [WSB_ALG_HASH] = &wsb_balancer_hash,
};

const struct wsb_balancer *wsb_balancer_of(uint32_t algorithm) {
  if (algorithm < sizeof(balancers) / sizeof(balancers[0]) && balancers[algorithm] != NULL)
    return balancers[algorithm];
  return &wsb_balancer_least_conn;
}

int wsb_selector_init(struct wsb_selector *s, const struct wsb_balancer *b,
                      const struct wsb_shm_table *t, uint32_t pool) {
  *s = (struct wsb_selector){.balancer = b};
  for (int tier = 0; tier < 2 && b->prepare != NULL; tier++) {
    if (b->prepare(t, pool, tier == 1, &s->state[tier]) != 0) {
      wsb_selector_free(s);
      return -ENOMEM;
    }
  }
  return 0;
}

void wsb_selector_free(struct wsb_selector *s) {
  for (int tier = 0; tier < 2; tier++)
    if (s->state[tier] != NULL)
      s->balancer->release(s->state[tier]);
  *s = (struct wsb_selector){0};
}

int wsb_selector_pick(const struct wsb_selector *s, const struct wsb_pick *p) {
  struct wsb_pick tier = *p;
  tier.backups = false;
  int slot = s->balancer->select(s->state[0], &tier);
  if (slot < 0) {
    tier.backups = true; /* backups only when no primary is available */
    slot = s->balancer->select(s->state[1], &tier);
  }
  return slot;
}

bool wsb_select_available(const struct wsb_pick *p, uint32_t slot) {
  if (slot >= p->table->nslots)
    return false;
  const struct wsb_shm_backend *b = &p->table->backends[slot];
  if (!b->in_use || !b->enabled || b->pool != p->pool || b->backup != p->backups ||
      wsb_slot_set_has(&p->excluded, slot))
    return false;
  if (!atomic_load_explicit(&p->shm->backend_up[slot], memory_order_relaxed))
    return false;
  if (atomic_load(&p->shm->breaker_state[slot]) != WSB_BREAKER_CLOSED &&
      atomic_load(&p->shm->breaker_until_ms[slot]) > p->now_ms)
    return false; /* tripped: cooling down, or its trial is under way */
  /* max_sessions limits this instance's own sessions, whatever the backend reports. */
  return b->max_sessions == 0 || wsb_shm_backend_live(p->shm, slot) < b->max_sessions;
}

uint64_t wsb_select_load(const struct wsb_pick *p, uint32_t slot) {
  return wsb_shm_backend_load(p->shm, slot, p->now_ms); /* a fresh report, if any */
}

uint64_t wsb_select_weight(const struct wsb_pick *p, uint32_t slot) {
  uint64_t since = atomic_load_explicit(&p->shm->ramp_since_ms[slot], memory_order_relaxed);
  return wsb_ramp_weight(p->table->backends[slot].weight, since, p->now_ms,
                         wsb_shm_pool_settings(p->table, p->pool)->slow_start_ms);
}

int wsb_select_compare(uint64_t load_a, uint64_t weight_a, uint64_t load_b, uint64_t weight_b) {
  /* Cross multiplication: no division; loads and scaled weights stay far below 2^32. */
  unsigned __int128 lhs = (unsigned __int128)(load_a + 1) * weight_b;
  unsigned __int128 rhs = (unsigned __int128)(load_b + 1) * weight_a;
  return lhs < rhs ? -1 : lhs > rhs;
}
