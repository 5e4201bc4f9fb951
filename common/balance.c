/* Pure balancing arithmetic: the smooth weighted round-robin sequence and the slow-start ramp. */
#include "balance.h"

#include <stdbool.h>
#include <stdlib.h>

static uint64_t gcd(uint64_t a, uint64_t b) {
  while (b != 0) {
    uint64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

static uint64_t weights_gcd(const uint32_t *weights, size_t n) {
  uint64_t g = 0;
  for (size_t i = 0; i < n; i++)
    g = gcd(g, weights[i]);
  return g;
}

size_t wsb_swrr_period(const uint32_t *weights, size_t n) {
  uint64_t g = weights_gcd(weights, n), total = 0;
  if (g == 0)
    return 0;
  for (size_t i = 0; i < n; i++)
    total += weights[i] / g;
  return (size_t)total;
}

size_t wsb_swrr_sequence(const uint32_t *weights, size_t n, uint16_t *out) {
  size_t period = wsb_swrr_period(weights, n);
  if (period == 0)
    return 0;
  uint64_t g = weights_gcd(weights, n);
  int64_t *current = calloc(n, sizeof(*current));
  if (current == NULL)
    return 0;
  for (size_t step = 0; step < period; step++) {
    size_t best = 0;
    bool found = false;
    for (size_t i = 0; i < n; i++) {
      if (weights[i] == 0)
        continue;
      current[i] += weights[i] / g;
      if (!found || current[i] > current[best]) {
        best = i;
        found = true;
      }
    }
    current[best] -= (int64_t)period;
    out[step] = (uint16_t)best;
  }
  free(current);
  return period;
}

uint64_t wsb_ramp_weight(uint32_t weight, uint64_t since_ms, uint64_t now_ms,
                         uint64_t slow_start_ms) {
  uint64_t full = (uint64_t)weight * WSB_RAMP_SCALE;
  if (slow_start_ms == 0 || since_ms == 0)
    return full;
  uint64_t elapsed = now_ms > since_ms ? now_ms - since_ms : 0;
  if (elapsed >= slow_start_ms)
    return full;
  uint64_t w = full * elapsed / slow_start_ms;
  return w > 0 ? w : 1;
}
