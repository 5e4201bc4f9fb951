/* The worker processes the master runs: slots, their sockets, spawn, respawn, retirement. */
#ifndef WSB_WORKERS_H
#define WSB_WORKERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "config.h"
#include "control.h"
#include "shm.h"

struct wsb_workers;

struct wsb_worker_proc {
  struct wsb_workers *ws;
  unsigned slot;   /* its counters in the segment */
  int *listen_fds; /* its own listening sockets, one per address; kept for respawns */
  size_t nlisten;
  pid_t pid;            /* 0 while not running */
  int control_fd;       /* the master's end of the socketpair, -1 while not running */
  uv_pipe_t *ctl;       /* reads the worker's answers on control_fd; NULL while not running */
  uint32_t incarnation; /* starts so far in this slot */
  uint32_t generation;  /* which start of the pool it belongs to */
  uint64_t started_ms;
  unsigned crash_streak;
  bool in_use;   /* the slot belongs to a current or a retiring worker */
  bool retiring; /* replaced by a reload: drains, exits, and is not respawned */
  uv_timer_t respawn_timer;
};

struct wsb_workers {
  uv_loop_t *loop;
  struct wsb_shm *shm;
  struct wsb_worker_proc *procs; /* shm->nworkers of them */
  uint32_t generation;           /* of the newest pool */
  unsigned running;              /* processes alive */
  bool stopping;
  bool warned_fds;              /* said once that workers cannot close what they inherit */
  enum wsb_log_level log_level; /* handed to workers started from now on */
  enum wsb_log_format log_format;
  void (*in_child)(void *arg);   /* run in each new worker: drop the master's own handles */
  void (*all_exited)(void *arg); /* run once stopping and the last worker has exited */
  /* run for each chunk of a session list a worker sends back */
  void (*on_chunk)(void *arg, const struct wsb_sessions_chunk *chunk);
  struct wsb_sessions_chunk *rbuf; /* where answers are read */
  /* run for a child that is not a worker (an upgrade's new master), with its wait status */
  void (*other_exited)(void *arg, pid_t pid, int status);
  void *arg;
};

/* Prepares the table for the segment's slots; timers live on loop. */
void wsb_workers_init(struct wsb_workers *ws, uv_loop_t *loop, struct wsb_shm *shm);

/*
 * Binds the listening sockets of n workers for cfg's addresses (n * naddress
 * descriptors in *fds, worker-major). Returns 0, or a negative errno with
 * nothing left open; the error is logged.
 */
int wsb_workers_bind(const struct wsb_config *cfg, unsigned n, int **fds);

/*
 * Starts a new pool of n workers on fds (from wsb_workers_bind, taken over)
 * in free slots. Returns 0, or -ENOSPC (fds closed) when the segment has too
 * few free slots. Older pools keep running until wsb_workers_retire_old.
 */
int wsb_workers_start(struct wsb_workers *ws, unsigned n, int *fds, size_t nlisten);

/* Every worker of an older pool drains (SIGTERM) and its sockets close in the master. */
void wsb_workers_retire_old(struct wsb_workers *ws);

/* Collects exited children: respawns current ones (with backoff), frees retired slots. */
void wsb_workers_reap(struct wsb_workers *ws);

void wsb_workers_signal(struct wsb_workers *ws, int sig);

struct wsb_control_msg;
/* Sends a command to the worker in slot (or every running worker when slot < 0). Returns how
   many workers it reached. */
unsigned wsb_workers_send(struct wsb_workers *ws, int slot, const struct wsb_control_msg *msg);

/* Stop: no more respawns, the master's copies of the sockets closed, SIGTERM to every worker. */
void wsb_workers_stop(struct wsb_workers *ws);

/* After wsb_workers_stop: the workers it stopped go on draining as retired ones, so that a new
   pool may start (a binary upgrade whose new master died: upgrade.c). */
void wsb_workers_resume(struct wsb_workers *ws);

/* Closes the table's handles (after the loop's last use of them) and its sockets. */
void wsb_workers_close(struct wsb_workers *ws);

/* The newest pool's slots in the pool's order (the order its listeners were bound in), at most
   max of them into out (or only counted when out is NULL); returns how many. Running or not. */
unsigned wsb_workers_pool(struct wsb_workers *ws, struct wsb_worker_proc **out, unsigned max);

/* Workers of the newest pool that are running. */
unsigned wsb_workers_current(const struct wsb_workers *ws);

#endif
