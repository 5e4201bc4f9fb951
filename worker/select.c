/* Backend selection: the algorithm table, availability, slow-start weights, backups and the
 * breaker's trial. */
#include "select.h"

#include <errno.h>
#include <string.h>

#include "balance.h"
#include "hash_key.h"
#include "hash_ring.h"
#include "log.h"

static const struct wsb_balancer *const balancers[] = {
    [WSB_ALG_LEAST_CONN] = &wsb_balancer_least_conn,
    [WSB_ALG_ROUND_ROBIN] = &wsb_balancer_round_robin,
    [WSB_ALG_RANDOM] = &wsb_balancer_random,
    [WSB_ALG_HASH] = &wsb_balancer_hash,
};

static bool is_excluded(const uint8_t *excluded, uint32_t slot) {
  return excluded != NULL && (excluded[slot / 8] & (1u << (slot % 8))) != 0;
}

bool wsb_select_available(struct wsb_worker *w, uint32_t slot, const struct wsb_pick *p) {
  const struct wsb_shm_backend *b = &w->table->backends[slot];
  if (slot >= w->table->nslots || !b->in_use || !b->enabled || b->backup != p->backups ||
      is_excluded(p->excluded, slot))
    return false;
  if (!atomic_load_explicit(&w->shm->backend_up[slot], memory_order_relaxed))
    return false;
  if (atomic_load(&w->shm->breaker_state[slot]) != WSB_BREAKER_CLOSED &&
      atomic_load(&w->shm->breaker_until_ms[slot]) > uv_now(&w->loop))
    return false; /* tripped: cooling down, or its trial is under way */
  /* max_sessions limits this instance's own sessions, whatever the backend reports. */
  return b->max_sessions == 0 || wsb_shm_backend_live(w->shm, slot) < b->max_sessions;
}

uint64_t wsb_select_load(const struct wsb_worker *w, uint32_t slot) {
  return wsb_shm_backend_load(w->shm, slot, wsb_shm_now_ms()); /* a fresh report, if any */
}

uint64_t wsb_select_weight(const struct wsb_worker *w, uint32_t slot, const struct wsb_pick *p) {
  uint64_t since = atomic_load_explicit(&w->shm->ramp_since_ms[slot], memory_order_relaxed);
  return wsb_ramp_weight(w->table->backends[slot].weight, since, p->now_ms,
                         w->table->settings.slow_start_ms);
}

int wsb_select_compare(uint64_t load_a, uint64_t weight_a, uint64_t load_b, uint64_t weight_b) {
  /* Cross multiplication: no division; loads and scaled weights stay far below 2^32. */
  unsigned __int128 lhs = (unsigned __int128)(load_a + 1) * weight_b;
  unsigned __int128 rhs = (unsigned __int128)(load_b + 1) * weight_a;
  return lhs < rhs ? -1 : lhs > rhs;
}

void wsb_select_release(struct wsb_worker *w) {
  const struct wsb_balancer *b = w->balancer;
  if (b != NULL && b->release != NULL && w->balancer_state != NULL)
    b->release(w->balancer_state);
  w->balancer = NULL;
  w->balancer_state = NULL;
}

/* The algorithm's state follows the table: rebuilt once per generation, never per selection. */
static const struct wsb_balancer *balancer_of(struct wsb_worker *w) {
  if (w->balancer != NULL && w->balancer_generation == w->table_generation)
    return w->balancer;
  wsb_select_release(w);
  uint32_t alg = w->table->settings.algorithm;
  const struct wsb_balancer *b = alg < sizeof(balancers) / sizeof(balancers[0]) && balancers[alg]
                                     ? balancers[alg]
                                     : &wsb_balancer_least_conn;
  void *state = NULL;
  if (b->prepare != NULL && b->prepare(w, &state) != 0) {
    wsb_log_error("%s: out of memory for its tables; balancing by least_conn until the next "
                  "change",
                  b->name);
    b = &wsb_balancer_least_conn;
    state = NULL;
  }
  w->balancer = b;
  w->balancer_state = state;
  w->balancer_generation = w->table_generation;
  return b;
}

static uint64_t key_hash(const struct wsb_worker *w, const struct wsb_hash_key_source *src) {
  if (src == NULL || src->req == NULL)
    return 0;
  const struct wsb_shm_settings *cfg = &w->table->settings;
  struct wsb_slice key;
  wsb_hash_key_get((enum wsb_hash_key)cfg->hash_key, cfg->hash_key_name, src, &key);
  return wsb_hash64(key.p, key.len);
}

int wsb_select_backend(struct wsb_worker *w, const struct wsb_hash_key_source *src,
                       const uint8_t *excluded) {
  wsb_worker_refresh_table(w);
  const struct wsb_balancer *b = balancer_of(w);
  struct wsb_pick p = {.excluded = excluded, .backups = false, .now_ms = wsb_shm_now_ms()};
  if (b == &wsb_balancer_hash)
    p.key_hash = key_hash(w, src);
  int slot = b->select(w, w->balancer_state, &p);
  if (slot < 0) {
    p.backups = true; /* backups only when no primary is available */
    slot = b->select(w, w->balancer_state, &p);
  }
  /* A tripped backend whose cooldown is over is chosen only by the one worker that wins its
     trial; the others choose again without it. */
  if (slot >= 0 && !wsb_breaker_allows(w, (uint32_t)slot)) {
    uint8_t without[(WSB_SHM_MAX_BACKENDS + 7) / 8] = {0};
    if (excluded != NULL)
      memcpy(without, excluded, sizeof(without));
    without[slot / 8] |= (uint8_t)(1u << (slot % 8));
    return wsb_select_backend(w, src, without);
  }
  return slot;
}
