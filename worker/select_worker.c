/* A worker's choice of backend: its balancer per table generation, the request's key, and the
 * breaker's trial. */
#include "hash_key.h"
#include "hash_ring.h"
#include "log.h"
#include "select.h"
#include "worker.h"

void wsb_select_release(struct wsb_worker *w) {
  for (uint32_t i = 0; i < WSB_SHM_MAX_POOLS; i++)
    wsb_selector_free(&w->selectors[i]);
}

/* A pool's algorithm state follows the table: rebuilt once per generation, on the pool's first
   selection in it, never per selection. */
static const struct wsb_selector *selector_of(struct wsb_worker *w, uint32_t pool) {
  struct wsb_selector *sel = &w->selectors[pool];
  if (sel->balancer != NULL && w->balancer_generation[pool] == w->table_generation)
    return sel;
  wsb_selector_free(sel);
  const struct wsb_balancer *b = wsb_balancer_of(wsb_shm_pool_settings(w->table, pool)->algorithm);
  if (wsb_selector_init(sel, b, w->table, pool) != 0) {
    wsb_log_error("%s: out of memory for its tables; balancing by least_conn until the next "
                  "change",
                  b->name);
    wsb_selector_init(sel, &wsb_balancer_least_conn, w->table, pool); /* needs no memory */
  }
  w->balancer_generation[pool] = w->table_generation;
  return sel;
}

static uint64_t key_hash(const struct wsb_worker *w, uint32_t pool,
                         const struct wsb_hash_key_source *src) {
  if (src == NULL || src->req == NULL)
    return 0;
  const struct wsb_shm_settings *cfg = wsb_shm_pool_settings(w->table, pool);
  struct wsb_slice key;
  wsb_hash_key_get((enum wsb_hash_key)cfg->hash_key, cfg->hash_key_name, src, &key);
  return wsb_hash64(key.p, key.len);
}

static uint64_t worker_random(void *w) {
  return wsb_worker_random(w);
}

int wsb_select_backend(struct wsb_worker *w, uint32_t pool, const struct wsb_hash_key_source *src,
                       const struct wsb_slot_set *excluded) {
  return wsb_select_backend_near(w, pool, src, excluded, -1);
}

int wsb_select_backend_near(struct wsb_worker *w, uint32_t pool,
                            const struct wsb_hash_key_source *src,
                            const struct wsb_slot_set *excluded, int kept) {
  wsb_worker_refresh_table(w);
  if (pool >= WSB_SHM_MAX_POOLS)
    return -1;
  const struct wsb_selector *s = selector_of(w, pool);
  struct wsb_pick p = {.table = w->table,
                       .shm = w->shm,
                       .now_ms = wsb_shm_now_ms(),
                       .random = worker_random,
                       .random_ctx = w,
                       .pool = pool,
                       .excluded = *excluded};
  if (s->balancer == &wsb_balancer_hash)
    p.key_hash = key_hash(w, pool, src);
  if (kept >= 0)
    wsb_slot_set_add(&p.preferred, (uint32_t)kept);
  for (;;) {
    int slot = wsb_selector_pick(s, &p);
    if (slot < 0 || wsb_breaker_allows(w, (uint32_t)slot))
      return slot;
    /* A tripped backend whose cooldown is over is chosen only by the one worker that wins its
       trial; the others choose again without it. Each turn excludes one more slot. */
    wsb_slot_set_add(&p.excluded, (uint32_t)slot);
  }
}
