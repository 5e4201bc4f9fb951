/* The master process: binds, maps the segment, runs the worker pool, reloads and stops. */
#include "master.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "errors.h"
#include "health.h"
#include "listen.h"
#include "log.h"
#include "notify.h"
#include "privileges.h"
#include "reload.h"
#include "shm.h"
#include "workers.h"
#include "master_internal.h"

#define EXIT_STARTUP       3
#define STOP_GRACE_MS      6000 /* beyond shutdown_timeout: the close handshakes' 5 s, and a margin */
#define STOP_EXIT_MS       4000 /* systemd waits this long past our own SIGKILL, for the exit */
#define STATUS_INTERVAL_MS 5000
/* Worker slots in the segment: a reload may start a whole new pool while the old one drains. */
#define WORKER_SLOTS 2048

static const int handled_signals[] = {SIGTERM, SIGINT, SIGCHLD, SIGHUP, SIGUSR1};
#define NSIGNALS (sizeof(handled_signals) / sizeof(handled_signals[0]))

static unsigned worker_count(const struct wsb_config *cfg) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  return cfg->wsbal.workers ? cfg->wsbal.workers : (unsigned)(cpus > 0 ? cpus : 1);
}

/* libuv keeps signal handles in a process-wide table: a new worker stops the master's, so
   a signal sent to the worker never reaches the master's loop through an inherited pipe. */
static void forget_master_in_child(void *arg) {
  struct master *m = arg;
  for (size_t i = 0; i < NSIGNALS; i++)
    uv_signal_stop(&m->signals[i]);
}

static void close_handles(void *arg) {
  struct master *m = arg;
  wsb_api_stop(m);
  wsb_admin_stop(&m->admin);
  wsb_health_stop(m->health);
  wsb_tickets_close(&m->tickets);
  wsb_discovery_close(&m->disc);
  for (size_t i = 0; i < NSIGNALS; i++)
    uv_close((uv_handle_t *)&m->signals[i], NULL);
  wsb_workers_close(&m->workers);
  uv_close((uv_handle_t *)&m->stop_timer, NULL);
  uv_close((uv_handle_t *)&m->status_timer, NULL);
}

static void notify_status(struct master *m, const char *state) {
  wsb_notify("%sSTATUS=%llu sessions, %u workers, configuration generation %llu", state,
             (unsigned long long)wsb_shm_live(m->shm), wsb_workers_current(&m->workers),
             (unsigned long long)wsb_shm_generation(m->shm));
}

static void on_status_timer(uv_timer_t *t) {
  notify_status(t->data, "");
}

static void on_stop_timer(uv_timer_t *t) {
  struct master *m = t->data;
  wsb_log_warn("workers still running: killing them");
  wsb_workers_signal(&m->workers, SIGKILL);
}

/*
 * The first stop signal drains: workers stop accepting and let sessions end
 * for shutdown_timeout, then close the rest with 1001. A second one closes
 * every session at once. Workers that outlive either get SIGKILL.
 */
static void begin_stop(struct master *m, int signum) {
  if (m->stopping) {
    wsb_log_info("%s again: closing every session now", strsignal(signum));
    wsb_workers_signal(&m->workers, SIGINT);
    wsb_notify_extend(STOP_GRACE_MS + STOP_EXIT_MS);
    uv_timer_start(&m->stop_timer, on_stop_timer, STOP_GRACE_MS, 0);
    return;
  }
  m->stopping = true;
  wsb_notify("STOPPING=1");
  /* The unit's TimeoutStopSec may be shorter than the drain: systemd waits past our own kill. */
  wsb_notify_extend(m->cfg->wsbal.shutdown_timeout_ms + STOP_GRACE_MS + STOP_EXIT_MS);
  uv_timer_stop(&m->status_timer);
  wsb_log_info("%s: stopping; sessions have %llu ms to end", strsignal(signum),
               (unsigned long long)m->cfg->wsbal.shutdown_timeout_ms);
  uv_timer_start(&m->stop_timer, on_stop_timer, m->cfg->wsbal.shutdown_timeout_ms + STOP_GRACE_MS,
                 0);
  wsb_workers_stop(&m->workers);
}

static bool same_listeners(const struct wsb_config *a, const struct wsb_config *b) {
  if (worker_count(a) != worker_count(b) || a->listen.naddress != b->listen.naddress)
    return false;
  for (size_t i = 0; i < a->listen.naddress; i++)
    if (a->listen.address[i].port != b->listen.address[i].port ||
        strcmp(a->listen.address[i].host, b->listen.address[i].host) != 0)
      return false;
  return true;
}

/* A copy of cfg's backends as the file gave them (NULL when out of memory). */
static struct wsb_backend_config *copy_backends(const struct wsb_config *cfg) {
  struct wsb_backend_config *copy = malloc((cfg->nbackends ? cfg->nbackends : 1) * sizeof(*copy));
  if (copy != NULL && cfg->nbackends > 0)
    memcpy(copy, cfg->backends, cfg->nbackends * sizeof(*copy));
  return copy;
}

/* Returns 0 once next is running, or an error with the running configuration untouched. */
static int reload_apply(struct master *m, struct wsb_config_errors *errs,
                        struct wsb_config_errors *discarded) {
  struct wsb_config next;
  struct wsb_addrs *next_addrs = NULL;
  struct wsb_shm_table *next_table = malloc(sizeof(*next_table));
  if (next_table == NULL)
    return -ENOMEM;
  if (wsb_reload_prepare(m->path, m->workers_override, m->table, m->shm, &m->disc, &next,
                         next_table, &next_addrs, errs) != 0) {
    free(next_table);
    return WSB_ECONFIG;
  }
  next_table->settings.tls_serial++; /* workers load the certificates again */
  struct wsb_backend_config *file_backends = copy_backends(&next);
  /* New addresses or another worker count take a new pool: its sockets are bound before the
     old pool stops accepting, so the port never refuses a connection in between. */
  int *fds = NULL;
  bool new_pool = !same_listeners(&next, m->cfg);
  int rc = file_backends == NULL ? -ENOMEM : 0;
  if (rc == 0 && new_pool)
    rc = wsb_workers_bind(&next, worker_count(&next), &fds);
  if (rc != 0) {
    wsb_config_free(&next);
    free(next_table);
    free(next_addrs);
    free(file_backends);
    return rc;
  }
  /* SPEC.md: runtime changes last until the next reload, which reads the file again. Said
     aloud, so that an operator who disabled a backend through the API sees it come back. */
  struct wsb_config_errors gone = {0};
  wsb_reload_discarded(m->file_backends, m->nfile_backends, m->cfg->backends, m->cfg->nbackends,
                       &next, next_table, &m->disc, &gone);
  for (size_t i = 0; i < gone.n; i++)
    wsb_log_warn("reload: discards a runtime change: %s", gone.lines[i]);
  if (discarded != NULL)
    *discarded = gone;
  else
    wsb_config_errors_free(&gone);
  free(m->file_backends);
  m->file_backends = file_backends;
  m->nfile_backends = next.nbackends;
  wsb_api_adopt_slots(m, next_table);
  wsb_shm_publish(m->shm, next_table);
  /* A reload starts from the file: admin changes to single addresses go like any other. */
  wsb_discovery_forget(&m->disc, NULL);
  if (wsb_discovery_commit(&m->disc, &next, next_addrs) != 0)
    wsb_log_error("discovery: out of memory: the next lookups compare with older addresses");
  free(next_addrs);
  free(m->table);
  m->table = next_table;
  wsb_config_free(m->cfg);
  *m->cfg = next;
  wsb_health_sync(m->health, m->table, m->cfg);
  wsb_tickets_schedule(&m->tickets, &m->loop, m->cfg->listen.tls_ticket_rotation_ms);
  wsb_log_setup(m->cfg->wsbal.log_level, "master");
  m->workers.log_level = m->cfg->wsbal.log_level;
  /* Known hosts kept their addresses above without a lookup; now every name is looked up again,
     without blocking, and a change is published when the answers are in. */
  wsb_discovery_start(&m->disc, &m->loop, m->cfg->upstream.resolve_interval_ms);
  wsb_discovery_refresh(&m->disc);
  if (new_pool &&
      wsb_workers_start(&m->workers, worker_count(m->cfg), fds, m->cfg->listen.naddress) == 0) {
    wsb_log_info("new listeners or worker count: %u new workers; the old ones drain",
                 worker_count(m->cfg));
    wsb_workers_retire_old(&m->workers);
  }
  return 0;
}

int wsb_master_reload(struct master *m, struct wsb_config_errors *errs,
                      struct wsb_config_errors *discarded) {
  if (m->stopping)
    return -ECANCELED;
  wsb_notify("RELOADING=1");
  int rc = reload_apply(m, errs, discarded);
  if (rc != 0) {
    atomic_fetch_add(&m->shm->reloads_error, 1);
    wsb_log_error("reload failed: the running configuration stays");
  } else {
    atomic_fetch_add(&m->shm->reloads_ok, 1);
    wsb_log_info("reloaded %s: generation %llu, %zu backend%s", m->path,
                 (unsigned long long)wsb_shm_generation(m->shm), m->cfg->nbackends,
                 m->cfg->nbackends == 1 ? "" : "s");
  }
  notify_status(m, "READY=1\n");
  return rc;
}

/* Builds a table from m->cfg and the addresses of its sections (looking new hosts up now, blocking)
   with the admin changes to single addresses, and publishes it. prev is NULL at start-up. */
static int build_and_publish(struct master *m, const struct wsb_shm_table *prev, char *err,
                             size_t errlen) {
  struct wsb_addrs *addrs = NULL;
  struct wsb_shm_table *next = malloc(sizeof(*next));
  int rc = next == NULL ? -ENOMEM : wsb_discovery_lookup(&m->disc, m->cfg, &addrs, err, errlen);
  if (rc == 0)
    rc = wsb_shm_table_build(next, m->cfg, addrs, prev, prev ? m->shm : NULL, err, errlen);
  if (rc == 0)
    rc = wsb_discovery_commit(&m->disc, m->cfg, addrs);
  free(addrs);
  if (rc != 0) {
    if (rc == -ENOMEM)
      snprintf(err, errlen, "out of memory");
    free(next);
    return rc;
  }
  wsb_discovery_apply(&m->disc, next);
  wsb_api_adopt_slots(m, next);
  wsb_shm_publish(m->shm, next);
  free(m->table);
  m->table = next;
  if (m->health != NULL) /* NULL at start-up: the checks start with the loop */
    wsb_health_sync(m->health, m->table, m->cfg);
  return 0;
}

int wsb_master_publish(struct master *m, char *err, size_t errlen) {
  return build_and_publish(m, m->table, err, errlen);
}

/* A discovery round found other addresses: they replace the old ones like a reload would. */
static int on_discovered(void *arg) {
  struct master *m = arg;
  char err[512];
  int rc = wsb_master_publish(m, err, sizeof(err));
  if (rc != 0)
    wsb_log_error("discovery: the new addresses are not published: %s", err);
  else
    wsb_log_info("discovery: published generation %llu",
                 (unsigned long long)wsb_shm_generation(m->shm));
  return rc;
}

static void on_signal(uv_signal_t *h, int signum) {
  struct master *m = h->data;
  switch (signum) {
  case SIGTERM:
  case SIGINT:
    begin_stop(m, signum);
    break;
  case SIGCHLD:
    wsb_workers_reap(&m->workers);
    break;
  case SIGHUP:
    wsb_master_reload(m, NULL, NULL);
    break;
  case SIGUSR1:
    /* logrotate moved the file: every worker opens the path again. */
    wsb_log_info("SIGUSR1: workers reopen the access log");
    wsb_workers_signal(&m->workers, SIGUSR1);
    break;
  }
}

static void log_listening(const struct master *m) {
  char addrs[1024] = "";
  size_t used = 0;
  for (size_t a = 0; a < m->cfg->listen.naddress && used < sizeof(addrs); a++) {
    const struct wsb_hostport *hp = &m->cfg->listen.address[a];
    bool v6 = strchr(hp->host, ':') != NULL;
    int n = snprintf(addrs + used, sizeof(addrs) - used, "%s%s%s%s:%u", a ? ", " : "",
                     v6 ? "[" : "", hp->host, v6 ? "]" : "", (unsigned)hp->port);
    if (n > 0)
      used += (size_t)n;
  }
  unsigned n = worker_count(m->cfg);
  wsb_log_info("wsbal %s listening on %s with %u worker%s", WSB_VERSION, addrs, n,
               n == 1 ? "" : "s");
}

/* STYLE.md's start order: bind, map the segment, drop privileges; the workers come after. */
static int start(struct master *m, int **fds) {
  int rc = wsb_workers_bind(m->cfg, worker_count(m->cfg), fds);
  if (rc != 0)
    return rc;
  m->shm = wsb_shm_create(WORKER_SLOTS);
  m->workers.procs = calloc(WORKER_SLOTS, sizeof(*m->workers.procs));
  if (m->shm == NULL || m->workers.procs == NULL) {
    wsb_log_error("cannot map the shared segment: %s", strerror(errno));
    return -ENOMEM;
  }
  /* One set of ticket keys for every worker (a session resumes whichever worker accepts it). */
  if (wsb_tickets_init(&m->tickets, m->shm) != 0) {
    wsb_log_error("cannot make TLS session ticket keys");
    return -EIO;
  }
  /* The admin port may be privileged too: bound now, served once the loop runs. */
  if (m->cfg->admin.enabled) {
    char aerr[256];
    m->admin_fd = wsb_admin_bind(&m->cfg->admin.address, aerr, sizeof(aerr));
    if (m->admin_fd < 0) {
      wsb_log_error("admin: %s", aerr);
      return m->admin_fd;
    }
  }
  char why[256];
  rc = wsb_privileges_drop(m->cfg->wsbal.user, m->cfg->wsbal.group, why, sizeof(why));
  if (rc != 0) {
    wsb_log_error("%s", why);
    return rc;
  }
  /* Start-up looks every host up, blocking: a name that does not resolve stops it, FILE:LINE. */
  char err[512];
  rc = build_and_publish(m, NULL, err, sizeof(err));
  if (rc != 0)
    wsb_log_error("%s", err);
  return rc;
}

static void add_line(struct wsb_config_errors *errs, const char *line) {
  char **lines = realloc(errs->lines, (errs->n + 1) * sizeof(*lines));
  if (lines == NULL)
    return;
  errs->lines = lines;
  if ((lines[errs->n] = strdup(line)) != NULL)
    errs->n++;
}

int wsb_master_check(const struct wsb_config *cfg, struct wsb_config_errors *errs) {
  size_t before = errs->n;
  wsb_config_check_users(cfg, errs);
  char err[1024], line[2048];
  /* Listening addresses may be host names: the start looks them up before binding. */
  for (size_t i = 0; i <= cfg->listen.naddress; i++) {
    bool admin = i == cfg->listen.naddress;
    if (admin && !cfg->admin.enabled)
      continue;
    if (wsb_listen_resolve(admin ? &cfg->admin.address : &cfg->listen.address[i], err,
                           sizeof(err)) != 0) {
      snprintf(line, sizeof(line), "%s: [%s] address: %s",
               wsb_config_where(cfg, admin ? WSB_WHERE_ADMIN : WSB_WHERE_LISTEN),
               admin ? "admin" : "listen", err);
      add_line(errs, line);
    }
  }
  struct wsb_addrs *addrs = calloc(cfg->nbackends ? cfg->nbackends : 1, sizeof(*addrs));
  struct wsb_shm_table *t = malloc(sizeof(*t));
  if (addrs == NULL || t == NULL) {
    add_line(errs, "out of memory");
  } else {
    size_t unresolved = 0;
    for (size_t i = 0; i < cfg->nbackends; i++)
      if (wsb_discovery_resolve(cfg, i, &addrs[i], err, sizeof(err)) != 0) {
        add_line(errs, err);
        unresolved++;
      }
    /* The start's own table, to its limits (lists, names, 256 backends once hosts expand). */
    if (unresolved == 0 && wsb_shm_table_build(t, cfg, addrs, NULL, NULL, err, sizeof(err)) != 0) {
      snprintf(line, sizeof(line), "%s:0: %s", cfg->path ? cfg->path : "(no file)", err);
      add_line(errs, line);
    }
  }
  free(addrs);
  free(t);
  return errs->n > before ? WSB_ECONFIG : 0;
}

int wsb_master_run(struct wsb_config *cfg, const char *path, int workers_override) {
  wsb_log_setup(cfg->wsbal.log_level, "master");
  signal(SIGPIPE, SIG_IGN);

  struct master m = {.cfg = cfg,
                     .path = path,
                     .workers_override = workers_override,
                     .admin_fd = -1,
                     .admin = {.fd = -1}};
  int *fds = NULL;
  if (start(&m, &fds) != 0) {
    if (fds != NULL) {
      for (size_t i = 0; i < (size_t)worker_count(cfg) * cfg->listen.naddress; i++)
        close(fds[i]);
      free(fds);
    }
    if (m.admin_fd >= 0)
      close(m.admin_fd);
    wsb_shm_destroy(m.shm);
    free(m.workers.procs);
    free(m.table);
    wsb_discovery_free(&m.disc);
    return EXIT_STARTUP;
  }
  m.file_backends = copy_backends(cfg);
  m.nfile_backends = cfg->nbackends;
  if (m.file_backends == NULL)
    wsb_fatal(EXIT_STARTUP, "out of memory");
  if (uv_loop_init(&m.loop) != 0)
    wsb_fatal(EXIT_STARTUP, "cannot create the event loop");
  for (size_t i = 0; i < NSIGNALS; i++) {
    uv_signal_init(&m.loop, &m.signals[i]);
    m.signals[i].data = &m;
    uv_signal_start(&m.signals[i], on_signal, handled_signals[i]);
  }
  uv_timer_init(&m.loop, &m.stop_timer);
  m.stop_timer.data = &m;
  uv_timer_init(&m.loop, &m.status_timer);
  m.status_timer.data = &m;
  m.health = wsb_health_create(&m.loop, m.shm);
  if (m.health == NULL)
    wsb_fatal(EXIT_STARTUP, "out of memory");
  wsb_health_sync(m.health, m.table, m.cfg);
  wsb_tickets_schedule(&m.tickets, &m.loop, cfg->listen.tls_ticket_rotation_ms);
  m.disc.on_change = on_discovered;
  m.disc.arg = &m;
  wsb_discovery_start(&m.disc, &m.loop, cfg->upstream.resolve_interval_ms);
  wsb_workers_init(&m.workers, &m.loop, m.shm);
  m.workers.log_level = cfg->wsbal.log_level;
  m.workers.in_child = forget_master_in_child;
  m.workers.all_exited = close_handles;
  m.workers.on_chunk = wsb_api_on_chunk;
  m.workers.rbuf = malloc(sizeof(*m.workers.rbuf));
  if (m.workers.rbuf == NULL)
    wsb_fatal(EXIT_STARTUP, "out of memory");
  m.workers.arg = &m;
  wsb_workers_start(&m.workers, worker_count(cfg), fds, cfg->listen.naddress);
  m.started_ms = uv_now(&m.loop);
  if (m.admin_fd >= 0 &&
      wsb_admin_start(&m.admin, &m.loop, m.admin_fd, m.cfg, wsb_api_route, &m) != 0)
    wsb_log_error("admin server could not start");
  log_listening(&m);
  notify_status(&m, "READY=1\n");
  uv_timer_start(&m.status_timer, on_status_timer, STATUS_INTERVAL_MS, STATUS_INTERVAL_MS);

  uv_run(&m.loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&m.loop) != 0)
    wsb_log_error("event loop closed with handles still open");
  wsb_log_info("stopped");
  wsb_health_free(m.health);
  wsb_shm_destroy(m.shm);
  free(m.workers.procs);
  free(m.workers.rbuf);
  free(m.table);
  free(m.file_backends);
  wsb_discovery_free(&m.disc);
  return 0;
}
