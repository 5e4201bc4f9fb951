/* worker_balance = pack: the number of workers that take new connections, and its program. */
#include "worker_pack.h"

#include <stdbool.h>

unsigned wsb_pack_next(struct wsb_pack *p, const double *busy, unsigned n) {
  if (n == 0)
    return p->active = 0;
  if (p->active == 0 || p->active > n)
    p->active = p->active > n ? n : 1;
  double total = 0;
  bool hot = false;
  for (unsigned i = 0; i < n; i++) {
    total += busy[i];
    hot |= i < p->active && busy[i] > WSB_PACK_BUSY;
  }
  if (hot) {
    /* At least one more; as many as the whole pool's load asks for, in one step, so that a
       burst of new sessions spreads within one sample. */
    unsigned want = (unsigned)(total / WSB_PACK_BUSY);
    want += (double)want * WSB_PACK_BUSY < total; /* rounded up */
    unsigned grown = want > p->active + 1 ? want : p->active + 1;
    p->active = grown < n ? grown : n;
    p->calm = 0;
  } else if (p->active > 1 && total < WSB_PACK_IDLE * (double)(p->active - 1)) {
    if (++p->calm >= WSB_PACK_CALM_SAMPLES) {
      p->active--;
      p->calm = 0;
    }
  } else {
    p->calm = 0;
  }
  return p->active;
}

size_t wsb_pack_program(unsigned first, unsigned active,
                        struct sock_filter out[WSB_PACK_PROGRAM_MAX]) {
  if (active <= 1) {
    out[0] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, first);
    return 1;
  }
  /* A = a random number (the kernel's prandom); A %= active; return A. */
  out[0] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (__u32)(SKF_AD_OFF + SKF_AD_RANDOM));
  out[1] = (struct sock_filter)BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, active);
  out[2] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_A, 0);
  return 3;
}
