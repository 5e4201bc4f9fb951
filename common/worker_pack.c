/* worker_balance = pack: which workers take new connections, and its program. */
#include "worker_pack.h"

uint64_t wsb_pack_session_cap(uint64_t max_fds) {
  const uint64_t reserved = 64; /* listeners, control socket, log, ring, health: a margin */
  return max_fds > reserved ? (max_fds - reserved) / 4 : 1;
}

unsigned wsb_pack_next(struct wsb_pack *p, const struct wsb_pack_worker *w, unsigned n) {
  if (n == 0)
    return p->active = 0;
  if (p->active == 0 || p->active > n)
    p->active = p->active > n ? n : 1;
  double total = 0;
  bool hot = false;
  for (unsigned i = 0; i < n; i++) {
    total += w[i].busy;
    hot |= w[i].taking && w[i].busy > WSB_PACK_BUSY;
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

unsigned wsb_pack_choose(unsigned active, const struct wsb_pack_worker *w, unsigned n,
                         uint64_t session_cap, unsigned *set) {
  unsigned m = 0;
  for (unsigned i = 0; i < n && m < active; i++)
    if (w[i].running && !w[i].stalled && w[i].sessions < session_cap)
      set[m++] = i;
  return m == n ? 0 : m;
}

size_t wsb_pack_program(const unsigned *set, unsigned m, struct sock_filter *out) {
  if (m <= 1) {
    out[0] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, m == 1 ? set[0] : 0);
    return 1;
  }
  /* A = a random number (the kernel's prandom) % m; then index set[A]. */
  size_t len = 0;
  out[len++] =
      (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (__u32)(SKF_AD_OFF + SKF_AD_RANDOM));
  out[len++] = (struct sock_filter)BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, m);
  bool from_zero = true;
  for (unsigned j = 0; j < m; j++)
    from_zero &= set[j] == j;
  if (from_zero) {
    out[len++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_A, 0);
    return len;
  }
  for (unsigned j = 0; j + 1 < m; j++) {
    /* A == j: the next instruction returns set[j]; else skip it. */
    out[len++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, j, 0, 1);
    out[len++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, set[j]);
  }
  out[len++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, set[m - 1]);
  return len;
}
