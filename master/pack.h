/* [wsbal] worker_balance = pack, the master's half: samples the current pool's CPU and steers each
   listener's SO_REUSEPORT group to the workers that take new connections (common/worker_pack.h). */
#ifndef WSB_PACK_H
#define WSB_PACK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "worker_pack.h"
#include "workers.h"

/* The raw readings of one worker at the last sample, from which the next one's figures come. */
struct wsb_pack_reading {
  pid_t pid;       /* the process read */
  uint64_t cpu_ns; /* its CPU time */
  uint32_t queued; /* connections its accept queues held */
};

struct wsb_pack_ctl {
  struct wsb_workers *ws;
  uv_timer_t timer;
  bool pack;       /* worker_balance = pack */
  bool own_groups; /* the pool's listeners are alone in their groups, in the pool's order */
  bool paused;     /* may_steer said no at the last sample: steer anew once it says yes */
  /* Whether this master may steer now (not while an upgrade's new master is starting or has
     taken over: that one steers its groups). */
  bool (*may_steer)(void *arg);
  void *arg;
  struct wsb_pack state;
  uint64_t session_cap;          /* wsb_pack_session_cap of the workers' descriptor limit */
  unsigned npool;                /* workers in the current pool; per position: */
  struct wsb_pack_worker *w;     /* what the last sample made of them, */
  struct wsb_pack_reading *read; /* and what it read */
  uint64_t sampled_ns;           /* when */
  /* What the groups were last given: the positions in set (nset of them), or the kernel's
     hash when nset is 0; steered_known false when nobody knows (nothing given yet, or someone
     else may have). */
  unsigned *set;
  unsigned nset;
  bool steered_known;
};

void wsb_pack_init(struct wsb_pack_ctl *c, uv_loop_t *loop, struct wsb_workers *ws,
                   bool (*may_steer)(void *arg), void *arg);

/* A new pool started (wsb_workers_start). own_groups: its sockets were bound while no other
   pool's listened on the same addresses, so their order in each group is the pool's. Otherwise
   (an upgrade's inherited listeners, a reload that kept an address) the groups are left to the
   kernel's hash: the program steers by place in the group, and that place is not known. */
void wsb_pack_pool_started(struct wsb_pack_ctl *c, bool own_groups, bool pack);

/* A reload that kept the pool: worker_balance may have changed. */
void wsb_pack_configure(struct wsb_pack_ctl *c, bool pack);

/* After workers exited: new connections stop going to a worker that is not running. */
void wsb_pack_workers_changed(struct wsb_pack_ctl *c);

/* How many workers of the current pool take new connections now (all the running ones but
   while packing). */
unsigned wsb_pack_taking_new(const struct wsb_pack_ctl *c);

/* A binary upgrade handed over: the groups go back to the kernel's hash (the new master
   spreads over the listeners it inherited, and a build from before worker_balance would keep
   this one's program for good), and this master steers no more. */
void wsb_pack_release(struct wsb_pack_ctl *c);

/* Stops sampling (a stop); nothing is given back to the groups. */
void wsb_pack_stop(struct wsb_pack_ctl *c);

void wsb_pack_close(struct wsb_pack_ctl *c);

#endif
