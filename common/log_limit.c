/* The log lines' token bucket: integer thousandths of a line, a clock the caller gives. */
#include "log_limit.h"

#define MILLI 1000u

bool wsb_log_limit_take(struct wsb_log_limit *l, uint32_t rate, uint32_t burst, uint64_t now_ms,
                        uint64_t *dropped) {
  *dropped = 0;
  if (burst == 0)
    burst = 1;
  uint64_t full = (uint64_t)burst * MILLI;
  if (!l->started || l->rate != rate || l->burst != burst) {
    /* The first line, or new settings: a fresh start (no limit before) may spend a whole
       burst, a change of limit keeps what was left (a reload must not refill a bucket a flood
       is emptying). */
    l->tokens = !l->started || l->rate == 0 || l->tokens > full ? full : l->tokens;
    l->rate = rate;
    l->burst = burst;
    l->last_ms = now_ms;
    l->started = true;
  }
  if (rate == 0) {
    *dropped = l->dropped;
    l->dropped = 0;
    return true;
  }
  /* rate lines a second is rate thousandths of a line a millisecond. A clock that went back
     adds nothing; a long quiet spell fills the bucket, without overflowing the product. */
  uint64_t elapsed = now_ms > l->last_ms ? now_ms - l->last_ms : 0;
  uint64_t add = elapsed > full / rate ? full : elapsed * rate;
  l->tokens = l->tokens + add > full ? full : l->tokens + add;
  l->last_ms = now_ms;
  if (l->tokens < MILLI) {
    l->dropped++;
    return false;
  }
  l->tokens -= MILLI;
  *dropped = l->dropped;
  l->dropped = 0;
  return true;
}
