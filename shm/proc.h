/* What the master hands a worker process it forks: the contract between master/ and worker/. */
#ifndef WSB_PROC_H
#define WSB_PROC_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "shm.h"

struct wsb_worker_start {
  unsigned slot;         /* index into shm->workers, and of its listening sockets */
  uint32_t incarnation;  /* how many times this slot was started before: keeps session ids unique */
  const int *listen_fds; /* the slot's listening sockets, already bound and listening */
  size_t nlisten;
  int control_fd; /* the worker's end of its socketpair with the master */
  struct wsb_shm *shm;
  enum wsb_log_level log_level;
  enum wsb_log_format log_format;
};

/* The signals a worker handles on its loop (stop, second stop, log reopen). The master forks it
   with them blocked, and the worker unblocks them once its handlers are in place. */
static inline void wsb_worker_signal_set(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGTERM);
  sigaddset(set, SIGINT);
  sigaddset(set, SIGUSR1);
}

/*
 * The worker role, run in the child right after fork. Creates its own loop,
 * serves until told to stop or until the master is gone, and returns the
 * process exit status. Implemented in worker/, called by master/.
 */
int wsb_worker_main(const struct wsb_worker_start *start);

#endif
