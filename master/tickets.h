/* TLS session ticket keys: made by the master, rotated on a timer, published through the segment.
 */
#ifndef WSB_TICKETS_H
#define WSB_TICKETS_H

#include <stdint.h>
#include <uv.h>

#include "shm.h"
#include "tls_tickets.h"

struct wsb_tickets {
  struct wsb_shm *shm;
  struct wsb_ticket_keys keys; /* what the segment holds */
  uv_timer_t timer;
  bool timer_ready;
  uint64_t interval_ms;
};

/* Makes the first key and publishes it, before any worker starts. Returns 0 or -EIO. */
int wsb_tickets_init(struct wsb_tickets *t, struct wsb_shm *shm);

/* Rotates every interval_ms from now on; called again (a reload) with another interval, the
   next rotation is interval_ms from then. */
void wsb_tickets_schedule(struct wsb_tickets *t, uv_loop_t *loop, uint64_t interval_ms);

/* Closes the timer (at stop) and wipes the keys of the master's memory. */
void wsb_tickets_close(struct wsb_tickets *t);

#endif
