/* worker_balance = pack: which workers take new connections, and the classic BPF program that
   steers a listener's SO_REUSEPORT group to them. Pure logic; master/pack.c applies it. */
#ifndef WSB_WORKER_PACK_H
#define WSB_WORKER_PACK_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Why: at a moderate message rate most of a worker's CPU goes to waking up (a wake per message
 * or two). Sessions packed onto fewer workers share wakes, so the same traffic costs less CPU
 * than when the kernel's hash spreads them over every worker. Packing stops where a worker gets
 * busy or full: one more worker takes new connections as soon as one that takes them uses more
 * than WSB_PACK_BUSY of a core (as many more as the whole pool's load asks for, at once), and
 * one fewer once the pool could have done with one fewer for WSB_PACK_CALM_SAMPLES samples in a
 * row. A worker that holds its share of sessions (see wsb_pack_session_cap), is not running or
 * leaves connections in its accept queue takes none: the next one does. Sessions never move:
 * only new ones are steered.
 */
#define WSB_PACK_SAMPLE_MS    200  /* how often the master samples the workers */
#define WSB_PACK_BUSY         0.5  /* share of a core above which a worker takes no more alone */
#define WSB_PACK_IDLE         0.25 /* per remaining worker: below it, the pool may shrink */
#define WSB_PACK_CALM_SAMPLES 10   /* 2 s of calm before one worker fewer takes new ones */

struct wsb_pack {
  unsigned active; /* how many workers should take new connections; 0 before a sample */
  unsigned calm;   /* samples in a row the pool could have done with one worker fewer */
};

/* One worker of the pool as the master sees it at a sample. */
struct wsb_pack_worker {
  double busy;       /* share of a core used since the last sample */
  uint64_t sessions; /* live sessions */
  bool running;
  bool taking;  /* it took new connections since the last sample */
  bool stalled; /* connections waited in its accept queue at two samples in a row: a worker
                   that is stopped or hung, which would leave every new one waiting */
};

/* Sessions a worker takes while packing: half of what its descriptors allow (two a session),
   so that a burst arriving between two samples still fits. */
uint64_t wsb_pack_session_cap(uint64_t max_fds);

/* One sample of the n workers, in the pool's order: returns the new number of workers that
   should take new connections, 1..n, also kept in p->active. */
unsigned wsb_pack_next(struct wsb_pack *p, const struct wsb_pack_worker *w, unsigned n);

/* Which workers take them: the first `active` of those running, not stalled and below
   session_cap, their positions into set (room for n). Returns how many, or 0 when all n do or none
   can (the kernel's hash over every worker). */
unsigned wsb_pack_choose(unsigned active, const struct wsb_pack_worker *w, unsigned n,
                         uint64_t session_cap, unsigned *set);

/* The longest program wsb_pack_program writes for a pool of n workers. */
#define WSB_PACK_PROGRAM_MAX(n) (2 * (size_t)(n) + 1)

/* The program for SO_ATTACH_REUSEPORT_CBPF that gives each new connection to one of the m
   (1 or more) sockets set names, at random. Its value is an index into the group, which holds
   the sockets in the order they started listening; an index past the group's end falls back
   to the kernel's hash. Returns the program's length. */
size_t wsb_pack_program(const unsigned *set, unsigned m, struct sock_filter *out);

#endif
