/* Pure balancing arithmetic: the smooth weighted round-robin sequence and the slow-start ramp. */
#ifndef WSB_BALANCE_H
#define WSB_BALANCE_H

#include <stddef.h>
#include <stdint.h>

/* Length of one period of the smooth weighted round-robin sequence: sum of weights / their gcd. */
size_t wsb_swrr_period(const uint32_t *weights, size_t n);

/*
 * Writes one period of nginx's smooth weighted round robin over weights (indexes into weights;
 * 0-weight entries never appear) into out, which must hold wsb_swrr_period() entries. Each step
 * adds every weight to its current value, picks the largest (the lowest index on a tie) and
 * takes the total off it: the result interleaves, e.g. 5,1,1 gives a a b a c a a. Deterministic,
 * so every process derives the same sequence from the same weights. Returns the length.
 */
size_t wsb_swrr_sequence(const uint32_t *weights, size_t n, uint16_t *out);

/* Effective weights are in 1/WSB_RAMP_SCALE units of a configured weight. */
#define WSB_RAMP_SCALE 1000u

/*
 * A backend's weight during slow start, in 1/WSB_RAMP_SCALE units: it grows linearly from
 * almost nothing at since_ms to weight × WSB_RAMP_SCALE at since_ms + slow_start_ms, and is
 * never 0. since_ms 0 (no start recorded) or slow_start_ms 0 (off) give the full weight; a
 * now_ms before since_ms (another process's clock read a moment earlier) counts as no time.
 */
uint64_t wsb_ramp_weight(uint32_t weight, uint64_t since_ms, uint64_t now_ms,
                         uint64_t slow_start_ms);

#endif
