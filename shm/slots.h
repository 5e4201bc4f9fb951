/* A set of backend slots, one bit each: the backends a session tried, a choice excludes, or drain.
 */
#ifndef WSB_SLOTS_H
#define WSB_SLOTS_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "shm.h"

/* Zeroed, it is the empty set. */
struct wsb_slot_set {
  uint64_t bits[WSB_SHM_MAX_BACKENDS / 64];
};

_Static_assert(WSB_SHM_MAX_BACKENDS % 64 == 0, "a slot set holds whole words of slots");

/* A slot out of range is a caller's bug (a -1 "no backend" passed on), caught in debug builds. */
static inline void wsb_slot_set_add(struct wsb_slot_set *s, uint32_t slot) {
  assert(slot < WSB_SHM_MAX_BACKENDS);
  s->bits[slot / 64] |= UINT64_C(1) << (slot % 64);
}

static inline void wsb_slot_set_del(struct wsb_slot_set *s, uint32_t slot) {
  assert(slot < WSB_SHM_MAX_BACKENDS);
  s->bits[slot / 64] &= ~(UINT64_C(1) << (slot % 64));
}

static inline bool wsb_slot_set_has(const struct wsb_slot_set *s, uint32_t slot) {
  assert(slot < WSB_SHM_MAX_BACKENDS);
  return (s->bits[slot / 64] >> (slot % 64)) & 1;
}

static inline void wsb_slot_set_clear(struct wsb_slot_set *s) {
  memset(s, 0, sizeof(*s));
}

#endif
