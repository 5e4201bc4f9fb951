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
struct hash_state {
  struct wsb_ring ring[2]; /* index = backups */
};

static void hash_release(void *state) {
  struct hash_state *h = state;
  wsb_ring_free(&h->ring[0]);
  wsb_ring_free(&h->ring[1]);
  free(h);
}

static int hash_prepare(struct wsb_worker *w, void **state) {
  struct hash_state *h = calloc(1, sizeof(*h));
  if (h == NULL)
    return -ENOMEM;
  for (int tier = 0; tier < 2; tier++) {
    struct wsb_ring_node nodes[WSB_SHM_MAX_BACKENDS];
    size_t n = 0;
    for (uint32_t slot = 0; slot < w->table->nslots; slot++) {
      const struct wsb_shm_backend *b = &w->table->backends[slot];
      if (b->in_use && b->backup == (tier == 1))
        nodes[n++] = (struct wsb_ring_node){b->name, b->weight, slot};
    }
    if (wsb_ring_build(&h->ring[tier], nodes, n) != 0) {
      hash_release(h);
      return -ENOMEM;
    }
  }
  *state = h;
  return 0;
}

struct lookup {
  struct wsb_worker *w;
  const struct wsb_pick *p;
};

static bool takes_key(void *ctx, uint32_t slot) {
  struct lookup *l = ctx;
  return wsb_select_available(l->w, slot, l->p);
}

static int hash_select(struct wsb_worker *w, void *state, const struct wsb_pick *p) {
  struct hash_state *h = state;
  struct lookup l = {w, p};
  return (int)wsb_ring_lookup(&h->ring[p->backups ? 1 : 0], p->key_hash, takes_key, &l);
}

const struct wsb_balancer wsb_balancer_hash = {
    .name = "hash",
    .prepare = hash_prepare,
    .release = hash_release,
    .select = hash_select,
};
