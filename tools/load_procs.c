/* wsbal-load over several processes (--processes) and client source ranges (--source). */
#include "load.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "errors.h"
#include "log.h"

#define LOOPBACK_NET  0x7f000000u
#define LOOPBACK_MASK 0xff000000u

static int parse_ip4(const char *s, size_t n, uint32_t *out) {
  char buf[INET_ADDRSTRLEN];
  struct in_addr a;
  if (n == 0 || n >= sizeof(buf))
    return WSB_EVALUE;
  memcpy(buf, s, n);
  buf[n] = '\0';
  if (inet_pton(AF_INET, buf, &a) != 1)
    return WSB_EVALUE;
  *out = ntohl(a.s_addr);
  return 0;
}

int wsb_load_parse_source(const char *arg, uint32_t *first, uint32_t *count) {
  const char *dash = strchr(arg, '-'), *slash = strchr(arg, '/');
  uint32_t lo, hi;
  if (dash != NULL && slash == NULL) {
    if (parse_ip4(arg, (size_t)(dash - arg), &lo) != 0 ||
        parse_ip4(dash + 1, strlen(dash + 1), &hi) != 0 || hi < lo)
      return WSB_EVALUE;
  } else if (slash != NULL && dash == NULL) {
    uint64_t bits;
    if (parse_ip4(arg, (size_t)(slash - arg), &lo) != 0 ||
        wsb_parse_uint(slash + 1, 8, 32, &bits) != 0)
      return WSB_EVALUE;
    uint32_t host = bits == 32 ? 0 : 0xffffffffu >> bits;
    lo &= ~host;
    hi = lo | host;
  } else if (dash == NULL && slash == NULL) {
    if (parse_ip4(arg, strlen(arg), &lo) != 0)
      return WSB_EVALUE;
    hi = lo;
  } else {
    return WSB_EVALUE;
  }
  /* Only loopback sources: the load never leaves this machine. */
  if ((lo & LOOPBACK_MASK) != LOOPBACK_NET || (hi & LOOPBACK_MASK) != LOOPBACK_NET)
    return WSB_EVALUE;
  *first = lo;
  *count = hi - lo + 1;
  return 0;
}

/* ---- --processes: children run the ordinary loop on their share; the parent merges ---- */

/* What a child hands back, in memory shared with the parent. */
struct wsb_load_result {
  int done;
  _Atomic int connected; /* storm mode: this child's sessions are all up (or failed) */
  uint32_t open_at_start;
  uint32_t open_at_end;
  uint64_t win_start;
  uint64_t win_end;
  uint64_t t_connected;
  struct wsb_load_stats st;
  struct wsb_load_hist lat;
  struct wsb_load_hist hs_lat;
  struct wsb_load_watch_sample watch[3];
};

static pid_t children[WSB_LOAD_MAX_PROCESSES];
static uint32_t nchildren;
/* Every child's result, seen from each child too (storm mode waits for the others). */
static struct wsb_load_result *results;
static uint32_t nresults;

/* The run's signals (end early, ping now) are meant for every process of it. */
static void forward(int sig) {
  int saved = errno;
  for (uint32_t i = 0; i < nchildren; i++)
    if (children[i] > 0)
      kill(children[i], sig);
  errno = saved;
}

static const int run_signals[] = {SIGINT, SIGTERM, SIGUSR1};

static void run_signal_mask(int how) {
  sigset_t set;
  sigemptyset(&set);
  for (size_t i = 0; i < sizeof(run_signals) / sizeof(run_signals[0]); i++)
    sigaddset(&set, run_signals[i]);
  sigprocmask(how, &set, NULL);
}

void wsb_load_procs_child_ready(void) {
  run_signal_mask(SIG_UNBLOCK);
}

bool wsb_load_procs_all_connected(struct wsb_load_result *mine) {
  if (mine == NULL)
    return true;
  atomic_store(&mine->connected, 1);
  for (uint32_t i = 0; i < nresults; i++)
    if (atomic_load(&results[i].connected) == 0)
      return false;
  return true;
}

void wsb_load_result_save(const struct wsb_load_ctx *ctx, struct wsb_load_result *r) {
  r->open_at_start = ctx->open_at_start;
  r->open_at_end = ctx->open_at_end;
  r->win_start = ctx->win_start;
  r->win_end = ctx->win_end;
  r->t_connected = ctx->t_connected;
  r->st = ctx->st;
  r->lat = ctx->lat;
  r->hs_lat = ctx->hs_lat;
  r->watch[0] = ctx->watch_before;
  r->watch[1] = ctx->watch_start;
  r->watch[2] = ctx->watch_end;
  r->done = 1;
}

static void hist_add(struct wsb_load_hist *to, const struct wsb_load_hist *from) {
  if (from->count == 0)
    return;
  if (to->count == 0 || from->min < to->min)
    to->min = from->min;
  if (from->max > to->max)
    to->max = from->max;
  to->count += from->count;
  to->sum += from->sum;
  for (size_t b = 0; b < WSB_LOAD_HIST_BUCKETS; b++)
    to->buckets[b] += from->buckets[b];
}

static void merge(struct wsb_load_ctx *ctx, const struct wsb_load_result *r, bool first) {
  uint64_t *to = (uint64_t *)&ctx->st;
  const uint64_t *from = (const uint64_t *)&r->st;
  /* Every field of the stats is a count, except the largest send lag. */
  for (size_t i = 0; i < sizeof(r->st) / sizeof(uint64_t); i++)
    to[i] += from[i];
  ctx->st.send_lag_max -= r->st.send_lag_max;
  if (r->st.send_lag_max > ctx->st.send_lag_max)
    ctx->st.send_lag_max = r->st.send_lag_max;
  hist_add(&ctx->lat, &r->lat);
  hist_add(&ctx->hs_lat, &r->hs_lat);
  ctx->open_at_start += r->open_at_start;
  ctx->open_at_end += r->open_at_end;
  /* The window spans all of them: from the first to start to the last to end. */
  if (first || r->win_start < ctx->win_start)
    ctx->win_start = r->win_start;
  if (r->win_end > ctx->win_end)
    ctx->win_end = r->win_end;
  if (r->t_connected > ctx->t_connected)
    ctx->t_connected = r->t_connected;
  if (first) {
    ctx->watch_before = r->watch[0];
    ctx->watch_start = r->watch[1];
    ctx->watch_end = r->watch[2];
  } else {
    /* The load's own CPU is every child's, each over its own window, so that the machine's
       busy time less the watched processes' leaves only the load nothing here accounts for. */
    ctx->watch_end.self_cpu_s += r->watch[2].self_cpu_s - r->watch[1].self_cpu_s;
  }
}

int wsb_load_procs_run(struct wsb_load_ctx *ctx, struct wsb_load_result **slot) {
  uint32_t n = ctx->o.processes, total = ctx->o.connections;
  size_t size = sizeof(struct wsb_load_result) * n;
  struct wsb_load_result *res =
      mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (res == MAP_FAILED)
    wsb_fatal(3, "mmap: %s", strerror(errno));
  memset(res, 0, size);
  results = res;
  nresults = n;
  fflush(NULL);
  /* Blocked until each child's loop listens for them, so none is lost or kills a child. */
  run_signal_mask(SIG_BLOCK);
  ctx->t0 = wsb_load_now_ns();
  uint32_t base = 0;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t share = total / n + (i < total % n ? 1 : 0);
    pid_t pid = fork();
    if (pid < 0) {
      wsb_log_error("fork: %s", strerror(errno));
      break;
    }
    if (pid == 0) {
      /* A Ctrl-C reaches the parent alone, which passes it on once; the parent's death ends the
       * child's run as a SIGTERM would. */
      setpgid(0, 0);
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      ctx->o.connections = share;
      ctx->o.id_base = base;
      ctx->o.processes = 1;
      /* Only the first child samples --watch: the others would read the same processes. */
      if (i > 0)
        ctx->o.nwatch = 0;
      *slot = &res[i];
      return -1;
    }
    children[nchildren++] = pid;
    base += share;
  }
  struct sigaction sa = {.sa_handler = forward};
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < sizeof(run_signals) / sizeof(run_signals[0]); i++)
    sigaction(run_signals[i], &sa, NULL);
  run_signal_mask(SIG_UNBLOCK);

  bool failed = nchildren < n;
  for (uint32_t i = 0; i < nchildren; i++) {
    int status = 0;
    pid_t got;
    while ((got = waitpid(children[i], &status, 0)) < 0 && errno == EINTR) {
    }
    if (got < 0 || !WIFEXITED(status) || WEXITSTATUS(status) > 1 || !res[i].done) {
      wsb_log_error("load process %u (pid %d) failed", i, (int)children[i]);
      failed = true;
    }
    children[i] = 0;
  }
  bool first = true;
  for (uint32_t i = 0; i < nchildren; i++)
    if (res[i].done) {
      merge(ctx, &res[i], first);
      first = false;
    }
  munmap(res, size);
  return failed ? 3 : 0;
}
