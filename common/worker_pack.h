/* worker_balance = pack: how many workers take new connections, and the classic BPF program that
   steers a listener's SO_REUSEPORT group to them. Pure logic; master/pack.c applies it. */
#ifndef WSB_WORKER_PACK_H
#define WSB_WORKER_PACK_H

#include <linux/filter.h>
#include <stddef.h>

/*
 * Why: at a moderate message rate most of a worker's CPU goes to waking up (a wake per message
 * or two). Sessions packed onto fewer workers share wakes, so the same traffic costs less CPU
 * than when the kernel's hash spreads them over every worker. Packing stops where a worker gets
 * busy: more workers take new connections as soon as one that takes them uses more than
 * WSB_PACK_BUSY of a core, and one fewer once the pool as a whole could do with one fewer for
 * WSB_PACK_CALM_SAMPLES samples in a row. Sessions never move: only new ones are steered.
 */
#define WSB_PACK_SAMPLE_MS    200  /* how often the master samples the workers' CPU */
#define WSB_PACK_BUSY         0.5  /* share of a core above which a worker takes no more alone */
#define WSB_PACK_IDLE         0.25 /* per remaining worker: below it, the pool may shrink */
#define WSB_PACK_CALM_SAMPLES 10   /* 2 s of calm before one worker fewer takes new ones */

struct wsb_pack {
  unsigned active; /* the pool's first `active` workers take new connections; 0 before a sample */
  unsigned calm;   /* samples in a row the pool could have done with one worker fewer */
};

/* One sample: busy[i] is the share of a core the pool's worker i used since the last one (n
   workers, in the pool's order). Returns the new number of workers that take new connections,
   1..n, also kept in p->active. */
unsigned wsb_pack_next(struct wsb_pack *p, const double *busy, unsigned n);

#define WSB_PACK_PROGRAM_MAX 3

/* The program for SO_ATTACH_REUSEPORT_CBPF: every new connection to the group's socket `first`
   when active is 1, else to one of sockets 0..active-1 at random (first is then 0). Its value is
   an index into the group, which holds the sockets in the order they started listening; an
   index past the group's end falls back to the kernel's hash. Returns the program's length. */
size_t wsb_pack_program(unsigned first, unsigned active,
                        struct sock_filter out[WSB_PACK_PROGRAM_MAX]);

#endif
