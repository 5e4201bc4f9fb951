/* hash: a consistent hash ring of the tier's backends; a key goes to the first available one
 * clockwise. */
#include "select.h"

#include <errno.h>
#include <stdlib.h>

#include "hash_ring.h"

/*
 * Every in-use backend is on the ring, disabled ones too: being disabled, down, full, tripped
 * or tried already only makes a lookup walk past its points, so exactly its keys go to the
 * next backends clockwise and come back when it can take sessions again, without a rebuild.
 * Points are placed by backend name, so a reload that moves slots moves no key. Slow start
 * does not apply: a key's backend is fixed by the ring, not by load.
 */
static void hash_release(void *state) {
  wsb_ring_free(state);
  free(state);
}

static int hash_prepare(const struct wsb_shm_table *t, uint32_t pool, bool backups, void **state) {
  struct wsb_ring *ring = calloc(1, sizeof(*ring));
  if (ring == NULL)
    return -ENOMEM;
  struct wsb_ring_node nodes[WSB_SHM_MAX_BACKENDS];
  size_t n = 0;
  for (uint32_t slot = 0; slot < t->nslots; slot++) {
    const struct wsb_shm_backend *b = &t->backends[slot];
    if (b->in_use && b->pool == pool && b->backup == backups)
      nodes[n++] = (struct wsb_ring_node){b->name, b->weight, slot};
  }
  if (wsb_ring_build(ring, nodes, n) != 0) {
    free(ring);
    return -ENOMEM;
  }
  *state = ring;
  return 0;
}

static bool takes_key(void *ctx, uint32_t slot) {
  const struct wsb_pick *const *p = ctx;
  return wsb_select_available(*p, slot);
}

static int hash_select(void *state, const struct wsb_pick *p) {
  return (int)wsb_ring_lookup(state, p->key_hash, takes_key, &p);
}

const struct wsb_balancer wsb_balancer_hash = {
    .name = "hash",
    .prepare = hash_prepare,
    .release = hash_release,
    .select = hash_select,
};
