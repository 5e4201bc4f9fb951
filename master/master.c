/* The master process: binds, maps the segment, forks the workers and keeps them running. */
#include "master.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "errors.h"
#include "inactive.h"
#include "listen.h"
#include "notify.h"
#include "privileges.h"
#include "reload.h"
#include "log.h"
#include "proc.h"
#include "shm.h"

#define EXIT_STARTUP 3
#define RESPAWN_DELAY_MIN_MS 100
#define RESPAWN_DELAY_MAX_MS 10000
#define CRASH_WINDOW_MS 1000 /* a worker dying sooner than this after its start is crashing */
#define STOP_GRACE_MS 6000   /* beyond shutdown_timeout: the close handshakes' 5 s, and a margin */

struct master;

struct worker_proc {
  struct master *m;
  unsigned slot;
  pid_t pid;            /* 0 while not running */
  int control_fd;       /* the master's end of the socketpair, -1 while not running */
  uint32_t incarnation; /* starts so far */
  uint64_t started_ms;
  unsigned crash_streak;
  uv_timer_t respawn_timer;
};

struct master {
  uv_loop_t loop;
  struct wsb_config *cfg;       /* the running configuration; a reload replaces its contents */
  const char *path;
  int workers_override;         /* -w, or -1 */
  struct wsb_shm_table *table;  /* what was last published, for slots kept by name */
  struct wsb_shm *shm;
  unsigned nworkers;
  size_t nlisten;   /* addresses; each worker slot has one socket per address */
  int *listen_fds;  /* [slot * nlisten + address] */
  struct worker_proc *workers;
  uv_signal_t signals[5];
  uv_timer_t stop_timer;
  uv_timer_t status_timer;  /* refreshes systemd's STATUS= line */
  bool stopping;
  unsigned running;
};

static const int handled_signals[] = {SIGTERM, SIGINT, SIGCHLD, SIGHUP, SIGUSR1};

static void spawn_worker(struct worker_proc *w);

/* In a freshly forked worker: drop what belongs to the master and to other slots. */
static void forget_master_in_child(struct master *m, unsigned slot) {
  /* libuv keeps signal handles in a process-wide table: stop ours so a signal
     sent to the worker never reaches the master's loop through an inherited pipe. */
  for (size_t i = 0; i < sizeof(handled_signals) / sizeof(handled_signals[0]); i++)
    uv_signal_stop(&m->signals[i]);
  for (unsigned s = 0; s < m->nworkers; s++) {
    if (m->workers[s].control_fd >= 0)
      close(m->workers[s].control_fd);
    if (s == slot)
      continue;
    for (size_t a = 0; a < m->nlisten; a++)
      close(m->listen_fds[s * m->nlisten + a]);
  }
}

static void spawn_worker(struct worker_proc *w) {
  struct master *m = w->m;
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    wsb_log_error("worker %u: socketpair: %s", w->slot, strerror(errno));
    uv_timer_start(&w->respawn_timer, NULL, RESPAWN_DELAY_MAX_MS, 0);
    return;
  }
  /* The child inherits stop signals blocked, and unblocks them once its own handlers are in
     place: a SIGTERM sent to a worker that is still starting must not kill it half-way. */
  sigset_t stop_signals, previous;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigprocmask(SIG_BLOCK, &stop_signals, &previous);
  pid_t pid = fork();
  if (pid != 0)
    sigprocmask(SIG_SETMASK, &previous, NULL);
  if (pid < 0) {
    wsb_log_error("worker %u: fork: %s", w->slot, strerror(errno));
    close(pair[0]);
    close(pair[1]);
    return;
  }
  if (pid == 0) {
    close(pair[0]);
    forget_master_in_child(m, w->slot);
    struct wsb_worker_start start = {
        .slot = w->slot,
        .incarnation = w->incarnation,
        .listen_fds = &m->listen_fds[w->slot * m->nlisten],
        .nlisten = m->nlisten,
        .control_fd = pair[1],
        .shm = m->shm,
        .log_level = m->cfg->wsbal.log_level,
    };
    exit(wsb_worker_main(&start));
  }
  close(pair[1]);
  w->pid = pid;
  w->control_fd = pair[0];
  w->incarnation++;
  w->started_ms = uv_now(&m->loop);
  m->running++;
  wsb_log_debug("worker %u started, pid %d", w->slot, (int)pid);
}

static void on_respawn_timer(uv_timer_t *t) {
  struct worker_proc *w = t->data;
  if (!w->m->stopping && w->pid == 0)
    spawn_worker(w);
}

static void close_handles(struct master *m) {
  for (size_t i = 0; i < sizeof(handled_signals) / sizeof(handled_signals[0]); i++)
    uv_close((uv_handle_t *)&m->signals[i], NULL);
  for (unsigned s = 0; s < m->nworkers; s++)
    uv_close((uv_handle_t *)&m->workers[s].respawn_timer, NULL);
  uv_close((uv_handle_t *)&m->stop_timer, NULL);
  uv_close((uv_handle_t *)&m->status_timer, NULL);
}

static void on_worker_exit(struct master *m, struct worker_proc *w, int status) {
  uint64_t lived = uv_now(&m->loop) - w->started_ms;
  if (WIFSIGNALED(status))
    wsb_log(m->stopping ? WSB_LOG_INFO : WSB_LOG_ERROR, "worker %u (pid %d) killed by signal %d",
            w->slot, (int)w->pid, WTERMSIG(status));
  else
    wsb_log(m->stopping || WEXITSTATUS(status) == 0 ? WSB_LOG_INFO : WSB_LOG_ERROR,
            "worker %u (pid %d) exited with status %d", w->slot, (int)w->pid, WEXITSTATUS(status));
  /* Its live sessions are gone with it: their least-connection counts must go too. */
  wsb_shm_worker_forget(m->shm, w->slot);
  close(w->control_fd);
  w->control_fd = -1;
  w->pid = 0;
  m->running--;
  if (m->stopping) {
    if (m->running == 0)
      close_handles(m);
    return;
  }
  /* Respawn at once after a long life; back off while it keeps crashing. */
  w->crash_streak = lived < CRASH_WINDOW_MS ? w->crash_streak + 1 : 0;
  uint64_t delay = 0;
  if (w->crash_streak > 0) {
    delay = (uint64_t)RESPAWN_DELAY_MIN_MS << (w->crash_streak < 8 ? w->crash_streak - 1 : 7);
    if (delay > RESPAWN_DELAY_MAX_MS)
      delay = RESPAWN_DELAY_MAX_MS;
  }
  atomic_fetch_add(&m->shm->worker_restarts, 1);
  wsb_log_info("respawning worker %u in %llu ms", w->slot, (unsigned long long)delay);
  uv_timer_start(&w->respawn_timer, on_respawn_timer, delay, 0);
}

static void reap_children(struct master *m) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    for (unsigned s = 0; s < m->nworkers; s++)
      if (m->workers[s].pid == pid)
        on_worker_exit(m, &m->workers[s], status);
  }
}

static void signal_workers(struct master *m, int sig) {
  for (unsigned s = 0; s < m->nworkers; s++)
    if (m->workers[s].pid > 0)
      kill(m->workers[s].pid, sig);
}

static void on_stop_timer(uv_timer_t *t) {
  struct master *m = t->data;
  wsb_log_warn("workers still running: killing them");
  signal_workers(m, SIGKILL);
}

/*
 * The first stop signal drains: workers stop accepting and let sessions end
 * for shutdown_timeout, then close the rest with 1001. A second one closes
 * every session at once. Workers that outlive either get SIGKILL.
 */
static void begin_stop(struct master *m, int signum) {
  if (m->stopping) {
    wsb_log_info("%s again: closing every session now", strsignal(signum));
    signal_workers(m, SIGINT);
    uv_timer_start(&m->stop_timer, on_stop_timer, STOP_GRACE_MS, 0);
    return;
  }
  m->stopping = true;
  wsb_notify("STOPPING=1");
  uv_timer_stop(&m->status_timer);
  wsb_log_info("%s: stopping; sessions have %llu ms to end", strsignal(signum),
               (unsigned long long)m->cfg->wsbal.shutdown_timeout_ms);
  /* Our copies of the listening sockets go now, so that once the workers have closed
     theirs, new connections are refused instead of waiting in a queue nobody serves. */
  for (size_t i = 0; i < m->nworkers * m->nlisten; i++) {
    if (m->listen_fds[i] >= 0)
      close(m->listen_fds[i]);
    m->listen_fds[i] = -1;
  }
  for (unsigned s = 0; s < m->nworkers; s++)
    uv_timer_stop(&m->workers[s].respawn_timer);
  if (m->running == 0) {
    close_handles(m);
    return;
  }
  signal_workers(m, SIGTERM);
  uv_timer_start(&m->stop_timer, on_stop_timer, m->cfg->wsbal.shutdown_timeout_ms + STOP_GRACE_MS,
                 0);
}

#define STATUS_INTERVAL_MS 5000

static void notify_status(struct master *m, const char *state) {
  wsb_notify("%sSTATUS=%llu sessions, %u workers, configuration generation %llu", state,
             (unsigned long long)wsb_shm_live(m->shm), m->running,
             (unsigned long long)wsb_shm_generation(m->shm));
}

static void on_status_timer(uv_timer_t *t) { notify_status(t->data, ""); }

static void reload_apply(struct master *m);

static void reload(struct master *m) {
  if (m->stopping)
    return;
  wsb_notify("RELOADING=1");
  reload_apply(m);
  notify_status(m, "READY=1\n");
}

static void reload_apply(struct master *m) {
  struct wsb_config next;
  struct wsb_shm_table *next_table = malloc(sizeof(*next_table));
  if (next_table == NULL) {
    wsb_log_error("reload: out of memory");
    return;
  }
  if (wsb_reload_prepare(m->path, m->workers_override, m->cfg, m->table, m->shm, &next,
                         next_table) != 0) {
    atomic_fetch_add(&m->shm->reloads_error, 1);
    wsb_log_error("reload failed: the running configuration stays");
    free(next_table);
    return;
  }
  wsb_shm_publish(m->shm, next_table);
  free(m->table);
  m->table = next_table;
  wsb_config_free(m->cfg);
  *m->cfg = next;
  wsb_log_setup(m->cfg->wsbal.log_level, "master");
  atomic_fetch_add(&m->shm->reloads_ok, 1);
  wsb_log_info("reloaded %s: generation %llu, %zu backend%s", m->path,
               (unsigned long long)wsb_shm_generation(m->shm), m->cfg->nbackends,
               m->cfg->nbackends == 1 ? "" : "s");
  wsb_warn_inactive_keys(m->cfg);
}

static void on_signal(uv_signal_t *h, int signum) {
  struct master *m = h->data;
  switch (signum) {
  case SIGTERM:
  case SIGINT:
    begin_stop(m, signum);
    break;
  case SIGCHLD:
    reap_children(m);
    break;
  case SIGHUP:
    reload(m);
    break;
  case SIGUSR1:
    wsb_log_info("SIGUSR1: no access log file to reopen yet");
    break;
  }
}

static int bind_listeners(struct master *m) {
  char err[256];
  for (unsigned s = 0; s < m->nworkers; s++)
    for (size_t a = 0; a < m->nlisten; a++) {
      int fd = wsb_listen_open(&m->cfg->listen.address[a], err, sizeof(err));
      if (fd < 0) {
        wsb_log_error("%s", err);
        return fd;
      }
      m->listen_fds[s * m->nlisten + a] = fd;
    }
  return 0;
}

static void log_listening(const struct master *m) {
  char addrs[1024] = "";
  size_t used = 0;
  for (size_t a = 0; a < m->nlisten && used < sizeof(addrs); a++) {
    const struct wsb_hostport *hp = &m->cfg->listen.address[a];
    bool v6 = strchr(hp->host, ':') != NULL;
    int n = snprintf(addrs + used, sizeof(addrs) - used, "%s%s%s%s:%u", a ? ", " : "",
                     v6 ? "[" : "", hp->host, v6 ? "]" : "", (unsigned)hp->port);
    if (n > 0)
      used += (size_t)n;
  }
  wsb_log_info("wsbal %s listening on %s with %u worker%s", WSB_VERSION, addrs, m->nworkers,
               m->nworkers == 1 ? "" : "s");
}

static int start(struct master *m) {
  int rc = bind_listeners(m);
  if (rc != 0)
    return rc;
  m->shm = wsb_shm_create(m->nworkers);
  if (m->shm == NULL) {
    wsb_log_error("cannot map the shared segment: %s", strerror(errno));
    return -ENOMEM;
  }
  /* Bound and mapped: root is no longer needed, by the master or the workers it forks. */
  char why[256];
  rc = wsb_privileges_drop(m->cfg->wsbal.user, m->cfg->wsbal.group, why, sizeof(why));
  if (rc != 0) {
    wsb_log_error("%s", why);
    return rc;
  }
  m->table = malloc(sizeof(*m->table));
  if (m->table == NULL)
    return -ENOMEM;
  char err[512];
  rc = wsb_shm_table_build(m->table, m->cfg, NULL, NULL, err, sizeof(err));
  if (rc == 0)
    wsb_shm_publish(m->shm, m->table);
  else
    wsb_log_error("%s", err);
  return rc;
}

int wsb_master_run(struct wsb_config *cfg, const char *path, int workers_override) {
  wsb_log_setup(cfg->wsbal.log_level, "master");
  signal(SIGPIPE, SIG_IGN);
  wsb_warn_inactive_keys(cfg);

  struct master m = {.cfg = cfg,
                     .path = path,
                     .workers_override = workers_override,
                     .nlisten = cfg->listen.naddress};
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  m.nworkers = cfg->wsbal.workers ? cfg->wsbal.workers : (unsigned)(cpus > 0 ? cpus : 1);
  m.listen_fds = malloc(m.nworkers * m.nlisten * sizeof(int));
  m.workers = calloc(m.nworkers, sizeof(*m.workers));
  if (m.listen_fds == NULL || m.workers == NULL)
    wsb_fatal(EXIT_STARTUP, "out of memory");
  for (size_t i = 0; i < m.nworkers * m.nlisten; i++)
    m.listen_fds[i] = -1;

  int status = 0;
  if (start(&m) != 0) {
    status = EXIT_STARTUP;
    goto out;
  }
  if (uv_loop_init(&m.loop) != 0)
    wsb_fatal(EXIT_STARTUP, "cannot create the event loop");
  for (size_t i = 0; i < sizeof(handled_signals) / sizeof(handled_signals[0]); i++) {
    uv_signal_init(&m.loop, &m.signals[i]);
    m.signals[i].data = &m;
    uv_signal_start(&m.signals[i], on_signal, handled_signals[i]);
  }
  uv_timer_init(&m.loop, &m.stop_timer);
  m.stop_timer.data = &m;
  uv_timer_init(&m.loop, &m.status_timer);
  m.status_timer.data = &m;
  for (unsigned s = 0; s < m.nworkers; s++) {
    struct worker_proc *w = &m.workers[s];
    w->m = &m;
    w->slot = s;
    w->control_fd = -1;
    uv_timer_init(&m.loop, &w->respawn_timer);
    w->respawn_timer.data = w;
  }
  for (unsigned s = 0; s < m.nworkers; s++)
    spawn_worker(&m.workers[s]);
  log_listening(&m);
  notify_status(&m, "READY=1\n");
  uv_timer_start(&m.status_timer, on_status_timer, STATUS_INTERVAL_MS, STATUS_INTERVAL_MS);

  uv_run(&m.loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&m.loop) != 0)
    wsb_log_error("event loop closed with handles still open");
  wsb_log_info("stopped");

out:
  for (size_t i = 0; i < m.nworkers * m.nlisten; i++)
    if (m.listen_fds[i] >= 0)
      close(m.listen_fds[i]);
  wsb_shm_destroy(m.shm);
  free(m.table);
  free(m.listen_fds);
  free(m.workers);
  return status;
}
