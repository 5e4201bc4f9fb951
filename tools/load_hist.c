/* wsbal-load's latency histogram: log-linear buckets, constant memory, percentiles on demand. */
#include "load.h"

#include <string.h>

/*
 * Bucket b < 2 * SUB holds the value b itself. Above, a value with its
 * highest set bit at h is shifted right by h - SUB_BITS, which leaves a top
 * part in [SUB, 2 * SUB); the bucket is shift * SUB + top, so the buckets of
 * consecutive powers of two follow each other with no gap.
 */
size_t wsb_load_hist_bucket(uint64_t value) {
  if (value < 2 * WSB_LOAD_HIST_SUB)
    return (size_t)value;
  unsigned shift = (unsigned)(63 - __builtin_clzll(value)) - WSB_LOAD_HIST_SUB_BITS;
  return (size_t)shift * WSB_LOAD_HIST_SUB + (size_t)(value >> shift);
}

uint64_t wsb_load_hist_bucket_low(size_t bucket) {
  if (bucket < 2 * WSB_LOAD_HIST_SUB)
    return bucket;
  unsigned shift = (unsigned)(bucket / WSB_LOAD_HIST_SUB) - 1;
  uint64_t top = bucket - (uint64_t)shift * WSB_LOAD_HIST_SUB;
  return top << shift;
}

uint64_t wsb_load_hist_bucket_high(size_t bucket) {
  if (bucket < 2 * WSB_LOAD_HIST_SUB)
    return bucket;
  unsigned shift = (unsigned)(bucket / WSB_LOAD_HIST_SUB) - 1;
  uint64_t top = bucket - (uint64_t)shift * WSB_LOAD_HIST_SUB;
  /* For the last bucket (top + 1) << shift wraps to 0, and 0 - 1 is its true end, UINT64_MAX. */
  return ((top + 1) << shift) - 1;
}

void wsb_load_hist_reset(struct wsb_load_hist *h) {
  memset(h, 0, sizeof(*h));
  h->min = UINT64_MAX;
}

void wsb_load_hist_record(struct wsb_load_hist *h, uint64_t value) {
  h->buckets[wsb_load_hist_bucket(value)]++;
  h->count++;
  h->sum += (double)value;
  if (value < h->min)
    h->min = value;
  if (value > h->max)
    h->max = value;
}

/*
 * The rank is rounded up, as HdrHistogram does, so p99 of 100 samples is the
 * 99th smallest and p100 the largest; reporting the bucket's highest value
 * errs on the slow side.
 */
uint64_t wsb_load_hist_percentile(const struct wsb_load_hist *h, double p) {
  if (h->count == 0)
    return 0;
  double want = p / 100.0 * (double)h->count;
  uint64_t rank = (uint64_t)want;
  if ((double)rank < want)
    rank++;
  if (rank == 0)
    rank = 1;
  uint64_t seen = 0;
  for (size_t b = 0; b < WSB_LOAD_HIST_BUCKETS; b++) {
    seen += h->buckets[b];
    if (seen >= rank) {
      uint64_t high = wsb_load_hist_bucket_high(b);
      return high < h->max ? high : h->max;
    }
  }
  return h->max;
}
