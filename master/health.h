/* Active health checks and load-report polls of every backend, from the master's loop. */
#ifndef WSB_HEALTH_H
#define WSB_HEALTH_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "probe.h"
#include "shm.h"

struct wsb_health;

/* Checks nothing until the first wsb_health_sync. NULL when out of memory. */
struct wsb_health *wsb_health_create(uv_loop_t *loop, struct wsb_shm *shm);

/*
 * Follows a newly published table t (kept until the next sync) and the configuration's
 * [upstream] health and load-report keys: backends new in a slot start up and get checked,
 * removed ones stop, a changed interval restarts the schedule. Call after every publish.
 */
void wsb_health_sync(struct wsb_health *h, const struct wsb_shm_table *t,
                     const struct wsb_config *cfg);

/* Cancels every probe and closes the timers; free once the loop has run their closes. */
void wsb_health_stop(struct wsb_health *h);
void wsb_health_free(struct wsb_health *h);

/* Counts since the backend in slot got it: health checks and load-report polls by result. */
uint64_t wsb_health_checks(const struct wsb_health *h, uint32_t slot, enum wsb_probe_result r);
uint64_t wsb_health_reports(const struct wsb_health *h, uint32_t slot, enum wsb_probe_result r);

/* The last health check of a backend, so the admin API can say why it is down. */
struct wsb_health_last {
  enum wsb_probe_result result;
  uint64_t at_ms;   /* wsb_shm_now_ms() when it ended */
  char reason[128]; /* "connection refused", "HTTP 503", ...; "" when it passed */
};

/* The last check of the backend in slot; false before its first one, and while checks are off
   (a result from before health_check = off would describe a state no longer watched). */
bool wsb_health_last(const struct wsb_health *h, uint32_t slot, struct wsb_health_last *out);

#endif
