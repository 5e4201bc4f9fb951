/* The master's context, shared by its own files (master.c, api*.c); private to master/. */
#ifndef WSB_MASTER_INTERNAL_H
#define WSB_MASTER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "admin.h"
#include "backends.h"
#include "config.h"
#include "health.h"
#include "heap_trim.h"
#include "pack.h"
#include "discovery.h"
#include "shm.h"
#include "tickets.h"
#include "upgrade.h"
#include "workers.h"

/* What the segment's per-slot totals held when the slot got its current backend: the API and
   the metrics count from there, so a backend given a slot another one used starts from zero. */
struct wsb_slot_base {
  uint64_t sessions_total;
  uint64_t failovers[WSB_FAILOVER_REASONS];
  uint64_t connect_buckets[WSB_CONNECT_BUCKETS];
  uint64_t connect_us;
  uint64_t connect_count;
  uint64_t messages[WSB_DIR_COUNT];
  uint64_t bytes[WSB_DIR_COUNT];
};

struct master {
  uv_loop_t loop;
  struct wsb_config *cfg; /* the running configuration; a reload replaces its contents */
  const char *path;
  int workers_override;         /* -w, or -1 */
  struct wsb_shm_table *table;  /* what was last published, for slots kept by name */
  struct wsb_backends backends; /* what m->table was built from; cfg keeps no backend */
  struct wsb_shm *shm;
  struct wsb_discovery disc; /* the addresses m->table was built from */
  struct wsb_workers workers;
  struct wsb_pack_ctl pack;   /* worker_balance = pack: which workers take new connections */
  struct wsb_health *health;  /* health checks and load reports of the backends */
  struct wsb_tickets tickets; /* TLS session ticket keys, rotated on a timer */
  uv_signal_t signals[6];
  uv_timer_t stop_timer;
  /* After a hand-over: waiting (master.c) for the admin requests under way to end. */
  enum { ADMIN_WAIT_NONE, ADMIN_WAITING, ADMIN_WAIT_OVER } admin_wait;
  uv_timer_t status_timer; /* refreshes systemd's STATUS= line, trims the heap */
  struct wsb_heap_trim heap_trim;
  bool stopping;
  bool ready;              /* READY sent: each worker of the pool accepts on its hand-over socket */
  uint64_t ready_probe_ms; /* when the probe for it began */
  struct wsb_admin admin;
  int admin_fd;          /* bound at start, -1 when [admin] address = off */
  struct list_op *lists; /* session lists waiting for the workers' answers (api_sessions.c) */
  struct add_op *adds;   /* POST /api/v1/backends waiting for their host's addresses */
  unsigned nadds;
  uint64_t next_request;
  char allow[48]; /* the Allow line of a 405 (api.c), written out before the next request */
  uint64_t started_ms;
  struct wsb_slot_base slot_base[WSB_SHM_MAX_BACKENDS];
  uint64_t route_base[WSB_ROUTE_MAX]; /* route_matches when each route slot got its route */
  /* Routes of the file deleted through the API since the last reload, for its discarded list
     (the first 16 of them). */
  char routes_deleted[16][WSB_SECTION_NAME_MAX];
  unsigned nroutes_deleted;
  struct wsb_upgrade up; /* binary upgrade (upgrade.c) */
};

/* An upgrade's new master (pid) is ready: this one stops serving and drains (master.c). */
void wsb_master_handed_over(struct master *m, pid_t pid);

/* The new master died (why) while this one drained after handing over: this one serves again
   with a new pool of workers on its copies of the listeners; the old workers drain on. */
void wsb_master_take_back(struct master *m, const char *why);

/* Reloads the file; error lines go to errs, and the runtime changes it discarded to discarded
   ("backend e1: enabled (disabled through the API)"), when they are not NULL. Returns 0 or an
   error. */
int wsb_master_reload(struct master *m, struct wsb_config_errors *errs,
                      struct wsb_config_errors *discarded);

/*
 * The one publish path: builds the table of bs's backends with m->cfg's
 * settings (a section that is new looks its host up now, blocking), publishes
 * it and makes bs the running state; bs is m->backends itself (discovery's new
 * addresses) or a changed copy of it (the admin API), swapped with it then, so
 * the caller frees the previous state. Returns 0, or an error with err set and
 * nothing changed. Reload takes the same two steps with its new configuration.
 */
int wsb_master_publish(struct master *m, struct wsb_backends *bs, char *err, size_t errlen);

/* A chunk of a session list from a worker (api_sessions.c). */
void wsb_api_on_chunk(void *ctx, const struct wsb_sessions_chunk *chunk);
/* Answers the session lists still waiting, as partial, before the loop ends, and cancels the
   lookups of backends being added (api.c). */
void wsb_api_stop(struct master *m);

/* Before next is published: every slot next gives to another backend than the running table
   had there counts its totals from now (wsb__api_metrics.c; wsb_shm_publish resets its breaker). */
void wsb_api_adopt_slots(struct master *m, const struct wsb_shm_table *next);
/* The same for the route slots next gives to another route (api_routes.c). */
void wsb_api_adopt_routes(struct master *m, const struct wsb_shm_table *next);
/* A reload to next: the route changes made through the API that it drops, into out; the API's
   record of them starts again. */
void wsb_api_routes_discarded(struct master *m, const struct wsb_config *next,
                              struct wsb_config_errors *out);

/* The admin API's router: the route table (api.c). */
void wsb_api_route(void *ctx, const struct wsb_admin_request *req, struct wsb_admin_reply *reply);

#endif
