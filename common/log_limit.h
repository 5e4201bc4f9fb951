/* A token bucket for log lines: a flood of one kind of line cannot fill a disk. */
#ifndef WSB_LOG_LIMIT_H
#define WSB_LOG_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

/*
 * rate lines a second on average, up to burst at once after a quiet spell. Zeroed, it starts
 * full at the first take. The clock is the caller's (milliseconds of any monotonic clock), so
 * tests drive it.
 */
struct wsb_log_limit {
  uint32_t rate;    /* lines per second; 0 = no limit */
  uint32_t burst;   /* the bucket's size, in lines */
  uint64_t tokens;  /* thousandths of a line */
  uint64_t last_ms; /* when tokens was last topped up */
  uint64_t dropped; /* lines refused since the last one let through */
  bool started;
};

/* The burst wsbal gives a rate: five seconds' worth, at least one line. */
static inline uint32_t wsb_log_limit_burst(uint32_t rate) {
  return rate == 0 ? 1 : rate > UINT32_MAX / 5 ? UINT32_MAX : rate * 5;
}

/*
 * May a line go out at now_ms, under rate and burst (a change of either, a reload, applies at
 * once; tokens above the new burst go)? When it may, *dropped is the number of lines refused
 * since the last one let through, and that count starts again; when not, the line is counted
 * as dropped.
 */
bool wsb_log_limit_take(struct wsb_log_limit *l, uint32_t rate, uint32_t burst, uint64_t now_ms,
                        uint64_t *dropped);

#endif
