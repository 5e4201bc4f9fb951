/* A consistent hash ring with weighted virtual nodes, and the 64-bit hash it places keys with. */
#ifndef WSB_HASH_RING_H
#define WSB_HASH_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Virtual nodes per unit of weight (ketama's 160), while the ring stays under WSB_RING_MAX_POINTS.
 */
#define WSB_RING_POINTS_PER_WEIGHT 160
#define WSB_RING_MAX_POINTS        262144

struct wsb_ring_node {
  const char *name; /* a node's points depend only on its name and weight */
  uint32_t weight;  /* 0 = not on the ring */
  uint32_t id;      /* what lookups return for it (a backend slot) */
};

struct wsb_ring_point {
  uint64_t hash;
  uint32_t id;
};

struct wsb_ring {
  struct wsb_ring_point *points; /* sorted by hash */
  size_t n;
};

/* A well-mixed 64-bit hash of len bytes (FNV-1a, then a finaliser so near keys land far apart). */
uint64_t wsb_hash64(const void *p, size_t len);

/*
 * Builds r from n nodes: weight × WSB_RING_POINTS_PER_WEIGHT points each (fewer per weight
 * when the total would pass WSB_RING_MAX_POINTS). Point i of a node sits at a hash of its name
 * and i, so a node added or removed moves only the keys of its own points. 0 or -ENOMEM.
 */
int wsb_ring_build(struct wsb_ring *r, const struct wsb_ring_node *nodes, size_t n);
void wsb_ring_free(struct wsb_ring *r);

/* Decides, during a lookup, whether a node may take the key (up, enabled, not excluded...). */
typedef bool (*wsb_ring_accept_fn)(void *ctx, uint32_t id);

/*
 * The id of the first point clockwise from hash whose node accept takes (accept NULL takes
 * all); -1 when none does. A refused node's keys thus go to the next node on the ring, and
 * come back when it is accepted again.
 */
int64_t wsb_ring_lookup(const struct wsb_ring *r, uint64_t hash, wsb_ring_accept_fn accept,
                        void *ctx);

#endif
