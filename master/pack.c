/* worker_balance = pack: the master samples its workers' CPU and gives each listener's
   SO_REUSEPORT group the program that sends new connections to the first of them
   (common/worker_pack.h says when, and why it pays). */
#include "pack.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A process's CPU time (all its threads, user and system) in ns: 0 when it cannot be read. */
static uint64_t cpu_ns_of(pid_t pid) {
  clockid_t clock;
  struct timespec ts;
  if (pid <= 0 || clock_getcpuclockid(pid, &clock) != 0 || clock_gettime(clock, &ts) != 0)
    return 0;
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The current pool in its order (a pool keeps its slots until it retires). */
static unsigned current_pool(struct wsb_pack_ctl *c, struct wsb_worker_proc **pool) {
  return wsb_workers_pool(c->ws, pool, c->npool);
}

/* Gives every group of the pool its program: new connections to the sockets at the positions
   in set, or to any (the kernel's hash) when m is 0. Any socket of a group reaches the group's
   program; the pool's first worker keeps its sockets in the master while it is respawned.
   Returns 0 or the first error. */
static int steer(struct wsb_pack_ctl *c, struct wsb_worker_proc *first_worker, const unsigned *set,
                 unsigned m) {
  struct sock_filter code[WSB_PACK_PROGRAM_MAX(c->npool)];
  struct sock_fprog prog = {.filter = code};
  if (m > 0)
    prog.len = (unsigned short)wsb_pack_program(set, m, code);
  int rc = 0;
  for (size_t a = 0; a < first_worker->nlisten; a++) {
    int fd = first_worker->listen_fds[a], none = 0;
    int r = m > 0 ? setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof(prog))
                  : setsockopt(fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &none, sizeof(none));
    if (r != 0 && !(m == 0 && errno == ENOENT) && rc == 0) /* ENOENT: there was none */
      rc = -errno;
  }
  memcpy(c->set, set, m * sizeof(*set));
  c->nset = m;
  c->steered_known = rc == 0;
  return rc;
}

/* Chooses the workers that take new connections from the last sample and what the pool is
   now (running, sessions), and gives the groups their program when that changed. */
static void apply(struct wsb_pack_ctl *c) {
  struct wsb_worker_proc *pool[c->npool > 0 ? c->npool : 1];
  unsigned set[c->npool > 0 ? c->npool : 1];
  unsigned n = current_pool(c, pool), m = 0;
  if (n == 0)
    return;
  for (unsigned i = 0; i < n; i++) {
    c->w[i].running = pool[i]->pid > 0;
    c->w[i].sessions = atomic_load(&c->ws->shm->workers[pool[i]->slot].live);
  }
  if (c->pack && c->own_groups && n >= 2)
    m = wsb_pack_choose(c->state.active, c->w, n, c->session_cap, set);
  for (unsigned i = 0; i < n; i++)
    c->w[i].taking = m == 0;
  for (unsigned j = 0; j < m; j++)
    c->w[set[j]].taking = true;
  if (c->steered_known && m == c->nset && memcmp(set, c->set, m * sizeof(*set)) == 0)
    return;
  int rc = steer(c, pool[0], set, m);
  if (rc != 0 && m > 0) {
    wsb_log_warn("worker_balance: the listeners cannot be steered (%s): new connections spread "
                 "over every worker",
                 strerror(-rc));
    c->own_groups = false;
    uv_timer_stop(&c->timer);
    rc = steer(c, pool[0], set, 0);
  }
  if (rc != 0)
    wsb_log_warn("worker_balance: the listeners' program could not be removed: %s", strerror(-rc));
  else if (m > 0)
    wsb_log_debug("worker_balance: new connections go to %u of %u workers (from %u)", m, n, set[0]);
  else
    wsb_log_debug("worker_balance: new connections go to any of %u workers", n);
}

/* Connections waiting in a worker's accept queues (TCP_INFO's tcpi_unacked of a listener). */
static uint32_t queued_of(const struct wsb_worker_proc *w) {
  uint32_t n = 0;
  for (size_t a = 0; a < w->nlisten; a++) {
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    if (getsockopt(w->listen_fds[a], IPPROTO_TCP, TCP_INFO, &ti, &len) == 0)
      n += ti.tcpi_unacked;
  }
  return n;
}

static void sample(struct wsb_pack_ctl *c) {
  struct wsb_worker_proc *pool[c->npool > 0 ? c->npool : 1];
  unsigned n = current_pool(c, pool);
  uint64_t now = now_ns(), elapsed = now - c->sampled_ns;
  for (unsigned i = 0; i < n; i++) {
    uint64_t cpu = cpu_ns_of(pool[i]->pid);
    uint32_t queued = queued_of(pool[i]);
    /* A worker started since the last sample (or not running) is counted from now. */
    struct wsb_pack_reading *last = &c->read[i];
    bool same = pool[i]->pid > 0 && pool[i]->pid == last->pid && cpu >= last->cpu_ns;
    c->w[i].busy = same && elapsed > 0 ? (double)(cpu - last->cpu_ns) / (double)elapsed : 0;
    /* A worker drains its queue within a loop pass; one that left connections there at two
       samples in a row is not accepting (stopped, hung), whatever its CPU says. */
    bool stalled = same && queued > 0 && last->queued > 0;
    if (stalled && !c->w[i].stalled)
      wsb_log_warn("worker %u (pid %d): connections waited in its accept queue for %d ms (%u "
                   "now: stopped, hung or swamped): new ones go to other workers while they do",
                   pool[i]->slot, (int)pool[i]->pid, WSB_PACK_SAMPLE_MS, queued);
    c->w[i].stalled = stalled;
    *last = (struct wsb_pack_reading){pool[i]->pid, cpu, queued};
  }
  c->sampled_ns = now;
  wsb_pack_next(&c->state, c->w, n);
}

static void on_timer(uv_timer_t *t) {
  struct wsb_pack_ctl *c = t->data;
  if (c->may_steer != NULL && !c->may_steer(c->arg)) {
    c->paused = true;
    return;
  }
  if (c->paused) /* an upgrade's new master may have changed the groups meanwhile */
    c->steered_known = c->paused = false;
  sample(c);
  apply(c);
}

void wsb_pack_init(struct wsb_pack_ctl *c, uv_loop_t *loop, struct wsb_workers *ws,
                   bool (*may_steer)(void *arg), void *arg) {
  memset(c, 0, sizeof(*c));
  c->ws = ws;
  c->may_steer = may_steer;
  c->arg = arg;
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
}

static void restart(struct wsb_pack_ctl *c) {
  uv_timer_stop(&c->timer);
  c->state = (struct wsb_pack){.active = 1}; /* a new pool starts packed: no sessions yet */
  c->sampled_ns = now_ns();
  for (unsigned i = 0; i < c->npool; i++) {
    c->read[i] = (struct wsb_pack_reading){0};
    c->w[i] = (struct wsb_pack_worker){0};
  }
  if (c->pack && !c->own_groups)
    wsb_log_info("worker_balance = pack: these workers' listeners share their groups with "
                 "sockets of earlier workers, so new connections spread over every worker until "
                 "the next start");
  apply(c);
  if (c->pack && c->own_groups && c->npool >= 2)
    uv_timer_start(&c->timer, on_timer, WSB_PACK_SAMPLE_MS, WSB_PACK_SAMPLE_MS);
}

/* The per-position arrays, for a pool of n (none when n is 0). */
static void size_arrays(struct wsb_pack_ctl *c, unsigned n) {
  free(c->w);
  free(c->read);
  free(c->set);
  c->w = n ? calloc(n, sizeof(*c->w)) : NULL;
  c->read = n ? calloc(n, sizeof(*c->read)) : NULL;
  c->set = n ? calloc(n, sizeof(*c->set)) : NULL;
  if (n > 0 && (c->w == NULL || c->read == NULL || c->set == NULL))
    wsb_fatal(3, "out of memory");
}

void wsb_pack_pool_started(struct wsb_pack_ctl *c, bool own_groups, bool pack) {
  unsigned n = wsb_workers_pool(c->ws, NULL, UINT_MAX);
  size_arrays(c, n);
  c->npool = n;
  c->pack = pack;
  c->own_groups = own_groups;
  c->paused = false;
  struct rlimit fds;
  c->session_cap = getrlimit(RLIMIT_NOFILE, &fds) == 0 && fds.rlim_cur != RLIM_INFINITY
                       ? wsb_pack_session_cap(fds.rlim_cur)
                       : UINT64_MAX; /* workers inherit the master's limit */
  /* Whatever an earlier pool or master gave the groups is not this pool's. */
  c->steered_known = false;
  restart(c);
}

void wsb_pack_configure(struct wsb_pack_ctl *c, bool pack) {
  if (pack == c->pack)
    return;
  c->pack = pack;
  restart(c);
}

void wsb_pack_workers_changed(struct wsb_pack_ctl *c) {
  if (uv_is_active((uv_handle_t *)&c->timer) && !c->paused)
    apply(c);
}

unsigned wsb_pack_taking_new(const struct wsb_pack_ctl *c) {
  unsigned running = wsb_workers_current(c->ws);
  return c->steered_known && c->nset > 0 && c->nset < running ? c->nset : running;
}

void wsb_pack_release(struct wsb_pack_ctl *c) {
  uv_timer_stop(&c->timer);
  c->own_groups = false;
  c->steered_known = false; /* removed even if this master never gave one */
  apply(c);
}

void wsb_pack_stop(struct wsb_pack_ctl *c) {
  uv_timer_stop(&c->timer);
}

void wsb_pack_close(struct wsb_pack_ctl *c) {
  uv_close((uv_handle_t *)&c->timer, NULL);
  size_arrays(c, 0);
}
