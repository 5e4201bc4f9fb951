/* Backend selection: weighted least connections over the segment's live counts, random tie-breaks. */
#include <string.h>

#include "worker.h"

static bool is_excluded(const uint8_t *excluded, uint32_t slot) {
  return excluded != NULL && (excluded[slot / 8] & (1u << (slot % 8))) != 0;
}

static bool is_available(const struct wsb_worker *w, const struct wsb_shm_backend *b,
                         uint32_t slot, uint64_t live) {
  if (!b->in_use || !b->enabled)
    return false;
  if (!atomic_load_explicit(&w->shm->backend_up[slot], memory_order_relaxed))
    return false;
  return b->max_sessions == 0 || live < b->max_sessions;
}

/*
 * One pass over primaries or backups. live/weight is compared by cross
 * multiplication, so weights need no division; ties are broken by reservoir
 * sampling so workers with equal views do not all pick the first backend.
 */
static int least_conn(struct wsb_worker *w, const uint8_t *excluded, bool backups) {
  const struct wsb_shm_table *t = w->table;
  int best = -1;
  uint64_t best_live = 0, best_weight = 1;
  unsigned ties = 0;
  for (uint32_t slot = 0; slot < t->nslots; slot++) {
    const struct wsb_shm_backend *b = &t->backends[slot];
    if (b->backup != backups || is_excluded(excluded, slot))
      continue;
    uint64_t live = wsb_shm_backend_live(w->shm, slot);
    if (!is_available(w, b, slot, live))
      continue;
    if (atomic_load(&w->shm->breaker_state[slot]) != WSB_BREAKER_CLOSED &&
        atomic_load(&w->shm->breaker_until_ms[slot]) > uv_now(&w->loop))
      continue; /* tripped: cooling down, or its trial is under way */
    uint64_t lhs = live * best_weight, rhs = best_live * b->weight;
    if (best < 0 || lhs < rhs) {
      best = (int)slot;
      best_live = live;
      best_weight = b->weight;
      ties = 1;
    } else if (lhs == rhs && wsb_worker_random(w) % ++ties == 0) {
      best = (int)slot;
      best_live = live;
      best_weight = b->weight;
    }
  }
  return best;
}

int wsb_select_backend(struct wsb_worker *w, const uint8_t *excluded) {
  wsb_worker_refresh_table(w);
  /* round_robin, random and hash come with the backends issue; until then every
     algorithm name is accepted by the configuration and balanced by least_conn. */
  int slot = least_conn(w, excluded, false);
  if (slot < 0)
    slot = least_conn(w, excluded, true);
  /* A tripped backend whose cooldown is over is chosen only by the one worker that wins its
     trial; the others choose again without it. */
  if (slot >= 0 && !wsb_breaker_allows(w, (uint32_t)slot)) {
    uint8_t without[(WSB_SHM_MAX_BACKENDS + 7) / 8] = {0};
    if (excluded != NULL)
      memcpy(without, excluded, sizeof(without));
    without[slot / 8] |= (uint8_t)(1u << (slot % 8));
    return wsb_select_backend(w, without);
  }
  return slot;
}
