/* A consistent hash ring with weighted virtual nodes (ketama's idea), and its 64-bit hash. */
#include "hash_ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* splitmix64's finaliser: every input bit affects every output bit. */
static uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

uint64_t wsb_hash64(const void *p, size_t len) {
  const unsigned char *b = p;
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < len; i++) {
    h ^= b[i];
    h *= 0x100000001b3ull;
  }
  return mix64(h ^ len);
}

static int by_hash(const void *a, const void *b) {
  const struct wsb_ring_point *x = a, *y = b;
  if (x->hash != y->hash)
    return x->hash < y->hash ? -1 : 1;
  return x->id < y->id ? -1 : x->id > y->id;
}

int wsb_ring_build(struct wsb_ring *r, const struct wsb_ring_node *nodes, size_t n) {
  r->points = NULL;
  r->n = 0;
  uint64_t total_weight = 0;
  for (size_t i = 0; i < n; i++)
    total_weight += nodes[i].weight;
  if (total_weight == 0)
    return 0;
  /* Points per weight unit stay constant while the ring is small, so adding a node does not
     reshuffle the others' points; only huge weight sums make each unit count for fewer. */
  uint64_t per = WSB_RING_POINTS_PER_WEIGHT;
  if (total_weight * per > WSB_RING_MAX_POINTS)
    per = WSB_RING_MAX_POINTS / total_weight > 0 ? WSB_RING_MAX_POINTS / total_weight : 1;
  r->points = malloc((size_t)(total_weight * per) * sizeof(*r->points));
  if (r->points == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    uint64_t seed = wsb_hash64(nodes[i].name, strlen(nodes[i].name));
    for (uint64_t v = 0; v < nodes[i].weight * per; v++)
      r->points[r->n++] =
          (struct wsb_ring_point){mix64(seed + v * 0x9e3779b97f4a7c15ull), nodes[i].id};
  }
  qsort(r->points, r->n, sizeof(*r->points), by_hash);
  return 0;
}

void wsb_ring_free(struct wsb_ring *r) {
  free(r->points);
  r->points = NULL;
  r->n = 0;
}

int64_t wsb_ring_lookup(const struct wsb_ring *r, uint64_t hash, wsb_ring_accept_fn accept,
                        void *ctx) {
  if (r->n == 0)
    return -1;
  /* The first point at or after hash; past the last one the ring wraps to the first. */
  size_t lo = 0, hi = r->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (r->points[mid].hash < hash)
      lo = mid + 1;
    else
      hi = mid;
  }
  /* Ids refused once are remembered, so a walk past many points of down nodes stays cheap. */
  uint64_t refused[4] = {0};
  for (size_t k = 0; k < r->n; k++) {
    uint32_t id = r->points[(lo + k) % r->n].id;
    if (id < 256 && (refused[id / 64] >> (id % 64) & 1))
      continue;
    if (accept == NULL || accept(ctx, id))
      return id;
    if (id < 256)
      refused[id / 64] |= 1ull << (id % 64);
  }
  return -1;
}
