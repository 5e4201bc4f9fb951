/* Binary upgrade, the masters' half: exec the new program with the listeners, hear it is ready. */
#ifndef WSB_UPGRADE_H
#define WSB_UPGRADE_H

/*
 * The whole design is in common/session_state.h. Here: the old master (SIGUSR2, POST
 * /api/v1/upgrade) execs the program file at its own path, with its arguments (read back from
 * /proc/self/cmdline) and environment plus
 *
 *   WSBAL_UPGRADE="state=V ready=3 admin=4,PORT,HOST listen=5,WORKER,PORT,HOST ..."
 *
 * naming the descriptors the new master finds open: the ready pipe's write end, the admin
 * listener, and each worker's listener of each address. The new master (wsb_upgrade_inherit)
 * takes the ones its configuration still has, writes "READY PID" (wsb_upgrade_ready) or
 * "REFUSE WHY", and the old master either hands over (the new pid becomes systemd's MAINPID,
 * its workers stop accepting and drain, it exits after them) or logs why and goes on as before.
 */

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "workers.h"

#include "config.h"

#define WSB_UPGRADE_TIMEOUT_MS 30000
#define WSB_UPGRADE_ENV        "WSBAL_UPGRADE"

struct master;

struct wsb_upgrade {
  char exe[PATH_MAX]; /* the program file, as it was when this master started */
  pid_t child;        /* the new master while it starts; 0 otherwise */
  bool reaped;        /* the child's exit status is in status */
  int status;
  bool pipe_open;
  uv_pipe_t ready; /* the read end of the ready pipe */
  uv_timer_t timer;
  char line[256]; /* what the new master wrote so far */
  size_t len;
  bool waiting_api; /* an admin request waits for the outcome (conn) */
  uint64_t conn;
  pid_t handed_to;      /* the new master this one handed over to; 0 before */
  unsigned new_workers; /* its worker count: old worker i hands to its worker i mod this */
  int ready_fd;         /* the new master's side: where READY goes once it is; -1 */
  int *kept_fds;        /* the old master's side, once handed over: copies of the listeners
                           (worker by worker, address by address) and of the admin listener,
                           to serve again should the new master die while this one drains */
  unsigned kept_workers;
  size_t kept_naddr;
  int kept_admin;       /* -1 when none */
  pid_t old_master;     /* the new master's side: the master that started it; 0 when none */
  uint32_t incarnation; /* the new master's side: where its workers' incarnations start, past
                           every one of the old master's, so that session ids stay unique */
};

/* At start: where the program file is, and the new master's inherited descriptors are taken
   out of the environment (handles live on loop once wsb_upgrade_start runs). */
void wsb_upgrade_init(struct wsb_upgrade *u);

/*
 * The new master's start: when WSBAL_UPGRADE names inherited listeners, the ones matching cfg
 * (n workers, each of cfg's addresses; the admin address) are taken instead of bound, in
 * *fds and *admin_fd as wsb_workers_bind and wsb_admin_bind would give them, and the rest is
 * closed. Returns 1 when it did so, 0 when this is no upgrade (bind as usual), or a negative
 * code after writing REFUSE (a state format this build does not read, a malformed variable).
 */
int wsb_upgrade_inherit(struct wsb_upgrade *u, const struct wsb_config *cfg, unsigned n, int **fds,
                        int *admin_fd);

/* Whether each worker of the current pool accepts on its hand-over socket (a worker opens it
   after its listeners): what READY waits for. */
bool wsb_upgrade_workers_accept(const struct wsb_workers *ws);

/* The new master is serving with nworkers workers: "READY PID N" to the old one. */
void wsb_upgrade_ready(struct wsb_upgrade *u, unsigned nworkers);

/* The new master could not start after all: REFUSE why, so the old one logs it. */
void wsb_upgrade_refuse(struct wsb_upgrade *u, const char *why);

/* Starts an upgrade; conn is an admin request to answer with the outcome, or 0. Returns 0, or
   -EBUSY (one runs: logged, refused), -ECANCELED (stopping) or an error, with why set. */
int wsb_upgrade_start(struct master *m, uint64_t conn, bool from_api, char *why, size_t cap);

/* A child that is not a worker exited (the workers' reap collects every child). */
void wsb_upgrade_child_exited(struct master *m, pid_t pid, int status);

/* The old master hands over: keeps copies of its listeners (wsb_upgrade_take_back). */
void wsb_upgrade_keep(struct master *m);

/* This master stops: an upgrade under way is given up (its new master killed). */
void wsb_upgrade_abort(struct master *m);

/* Closes the handles (the master's loop ends). */
void wsb_upgrade_close(struct wsb_upgrade *u);

#endif
