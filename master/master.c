/* The master process: binds, maps the segment, runs the worker pool, reloads and stops. */
#include "master.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "control.h"
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
#define READY_PROBE_MS     10 /* how often a starting master looks whether its workers accept */
/* Worker slots in the segment: a reload may start a whole new pool while the old one drains. */
#define WORKER_SLOTS 2048

static const int handled_signals[] = {SIGTERM, SIGINT, SIGCHLD, SIGHUP, SIGUSR1, SIGUSR2};
#define NSIGNALS (sizeof(handled_signals) / sizeof(handled_signals[0]))

static bool packs(const struct wsb_config *cfg) {
  return cfg->wsbal.worker_balance == WSB_WORKER_PACK;
}

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

static void close_handles(void *arg);

/* Past [admin] request_timeout, the time for the 408 of a request that ran out of it to go. */
#define ADMIN_WAIT_MARGIN_MS 100

/* The admin requests a master that handed over had accepted have ended (its last connection
   closed), or their time is up: it exits now. */
static void admin_wait_over(void *arg) {
  struct master *m = arg;
  bool closed = m->admin.connections == 0;
  uv_timer_stop(&m->stop_timer);
  wsb_admin_when_idle(&m->admin, NULL, NULL);
  m->admin_wait = ADMIN_WAIT_OVER;
  wsb_log_info("handed over: %s", closed ? "the admin requests under way have been answered"
                                         : "admin requests still under way: closing them");
  close_handles(m);
}

static void on_admin_wait_timeout(uv_timer_t *t) {
  admin_wait_over(t->data);
}

static void close_handles(void *arg) {
  struct master *m = arg;
  /* After a hand-over the admin port is the new master's, but a request this one had accepted
     is answered before it exits: it waits until the admin server's last connection closes, at
     most [admin] request_timeout (past that the connection has had its 408 and closed). */
  if (m->up.handed_to > 0 && m->admin_wait == ADMIN_WAIT_NONE) {
    unsigned n = m->admin.connections;
    if (wsb_admin_when_idle(&m->admin, admin_wait_over, m)) {
      m->admin_wait = ADMIN_WAITING;
      uv_timer_start(&m->stop_timer, on_admin_wait_timeout,
                     m->cfg->admin.request_timeout_ms + ADMIN_WAIT_MARGIN_MS, 0);
      wsb_log_info("handed over: waiting up to %llu ms for %u admin request%s under way",
                   (unsigned long long)m->cfg->admin.request_timeout_ms, n, n == 1 ? "" : "s");
      return;
    }
  }
  if (m->admin_wait == ADMIN_WAITING)
    return; /* admin_wait_over comes back here */
  /* systemd follows the new master from now on. Not sooner: until this master's last worker
     is gone it may have to serve again (wsb_master_take_back), as the service's main process
     (NotifyAccess=main would ignore it otherwise). */
  if (m->up.handed_to > 0)
    wsb_notify("MAINPID=%ld", (long)m->up.handed_to);
  wsb_api_stop(m);
  wsb_admin_stop(&m->admin);
  wsb_health_stop(m->health);
  wsb_tickets_close(&m->tickets);
  wsb_discovery_close(&m->disc);
  wsb_upgrade_close(&m->up);
  for (size_t i = 0; i < NSIGNALS; i++)
    uv_close((uv_handle_t *)&m->signals[i], NULL);
  wsb_workers_close(&m->workers);
  wsb_pack_close(&m->pack);
  uv_close((uv_handle_t *)&m->stop_timer, NULL);
  uv_close((uv_handle_t *)&m->status_timer, NULL);
}

static void notify_status(struct master *m, const char *state) {
  wsb_notify("%sSTATUS=%llu sessions, %u workers, configuration generation %llu", state,
             (unsigned long long)wsb_shm_live(m->shm), wsb_workers_current(&m->workers),
             (unsigned long long)wsb_shm_generation(m->shm));
}

static void on_status_timer(uv_timer_t *t);

/*
 * READY (to systemd, and to the old master of a binary upgrade) once every worker accepts on
 * its hand-over socket, which it opens after its listeners: forked is not ready, and an old
 * master hands sessions over the moment it reads READY. A worker that never gets there (its
 * socket failed: it logged why) does not hold the start up past the upgrade's own deadline.
 */
static void ready_probe(struct master *m) {
  unsigned n = worker_count(m->cfg);
  bool late = uv_now(&m->loop) - m->ready_probe_ms >= WSB_UPGRADE_TIMEOUT_MS;
  if (!wsb_upgrade_workers_accept(&m->workers) && !late)
    return;
  if (late)
    wsb_log_warn("not every worker accepts on its hand-over socket: ready without it (a later "
                 "binary upgrade drains their sessions)");
  m->ready = true;
  notify_status(m, "READY=1\n");
  wsb_upgrade_ready(&m->up, n);
  uv_timer_start(&m->status_timer, on_status_timer, STATUS_INTERVAL_MS, STATUS_INTERVAL_MS);
}

static void on_status_timer(uv_timer_t *t) {
  struct master *m = t->data;
  if (!m->ready) {
    ready_probe(m);
    return;
  }
  /* While the old master of an upgrade lives it is the service's main process, and systemd
     would log each message of this one as one it does not take (NotifyAccess=main). */
  if (m->up.old_master <= 0 || getppid() != m->up.old_master)
    notify_status(m, "");
  /* Reloads and session lists free megabytes that glibc would keep: see common/heap_trim.c. */
  wsb_heap_trim_tick(&m->heap_trim);
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
static void drain(struct master *m);

static void begin_stop(struct master *m, int signum) {
  if (m->stopping) {
    wsb_log_info("%s again: closing every session now", strsignal(signum));
    wsb_workers_signal(&m->workers, SIGINT);
    wsb_notify_extend(STOP_GRACE_MS + STOP_EXIT_MS);
    uv_timer_start(&m->stop_timer, on_stop_timer, STOP_GRACE_MS, 0);
    return;
  }
  wsb_upgrade_abort(m);
  wsb_notify("STOPPING=1");
  /* The unit's TimeoutStopSec may be shorter than the drain: systemd waits past our own kill. */
  wsb_notify_extend(m->cfg->wsbal.shutdown_timeout_ms + STOP_GRACE_MS + STOP_EXIT_MS);
  wsb_log_info("%s: stopping; sessions have %llu ms to end", strsignal(signum),
               (unsigned long long)m->cfg->wsbal.shutdown_timeout_ms);
  drain(m);
}

void wsb_master_handed_over(struct master *m, pid_t pid) {
  wsb_upgrade_keep(m);
  wsb_admin_quiesce(&m->admin);
  /* Each worker hands its sessions to the new master's worker of its slot (modulo their
     count); what cannot move drains as below. */
  struct wsb_control_msg msg = {.type = WSB_CTL_HANDOVER,
                                .len = sizeof(msg),
                                .session = (uint64_t)pid,
                                .slot = (int32_t)m->up.new_workers};
  wsb_workers_send(&m->workers, -1, &msg);
  wsb_log_info("handed over to pid %ld: the workers stop accepting; sessions have %llu ms to end",
               (long)pid, (unsigned long long)m->cfg->wsbal.shutdown_timeout_ms);
  wsb_pack_release(&m->pack);
  drain(m);
}

void wsb_master_take_back(struct master *m, const char *why) {
  struct wsb_upgrade *u = &m->up;
  wsb_log_error("upgrade: the new master died during the hand-over (%s): this master serves "
                "again; the sessions its old workers kept end as in a graceful stop",
                why);
  if (u->kept_fds == NULL) {
    wsb_log_error("upgrade: no copies of the listeners were kept: nobody serves them");
    return;
  }
  m->stopping = false;
  uv_timer_stop(&m->stop_timer); /* the draining workers end on their own shutdown_timeout */
  /* It may have been waiting for its admin requests to exit: it does not now, and a later
     hand-over waits for its own the whole time again. */
  wsb_admin_when_idle(&m->admin, NULL, NULL);
  m->admin_wait = ADMIN_WAIT_NONE;
  wsb_workers_resume(&m->workers);
  int *fds = u->kept_fds;
  u->kept_fds = NULL; /* the pool owns them now */
  wsb_workers_start(&m->workers, u->kept_workers, fds, u->kept_naddr);
  /* The kept sockets sat in their groups beside the new master's: their places are not known. */
  wsb_pack_pool_started(&m->pack, false, packs(m->cfg));
  if (u->kept_admin >= 0 &&
      wsb_admin_start(&m->admin, &m->loop, u->kept_admin, m->cfg, wsb_api_route, m) != 0)
    wsb_log_error("admin server could not start again");
  u->kept_admin = -1;
  m->ready = false; /* READY=1 again once the new pool accepts */
  m->ready_probe_ms = uv_now(&m->loop);
  uv_timer_start(&m->status_timer, on_status_timer, 0, READY_PROBE_MS);
}

/* Stop accepting, let sessions end for shutdown_timeout, kill what outlives it. */
static void drain(struct master *m) {
  m->stopping = true;
  uv_timer_stop(&m->status_timer);
  wsb_pack_stop(&m->pack);
  uv_timer_start(&m->stop_timer, on_stop_timer, m->cfg->wsbal.shutdown_timeout_ms + STOP_GRACE_MS,
                 0);
  wsb_workers_stop(&m->workers);
}

static bool same_address(const struct wsb_hostport *a, const struct wsb_hostport *b) {
  return a->port == b->port && strcmp(a->host, b->host) == 0;
}

/* Whether a new pool for b would bind an address a's pool listens on: its sockets would join
   the same SO_REUSEPORT groups, after the old ones. */
static bool shares_an_address(const struct wsb_config *a, const struct wsb_config *b) {
  for (size_t i = 0; i < a->listen.naddress; i++)
    for (size_t j = 0; j < b->listen.naddress; j++)
      if (same_address(&a->listen.address[i], &b->listen.address[j]))
        return true;
  return false;
}

static bool same_listeners(const struct wsb_config *a, const struct wsb_config *b) {
  if (worker_count(a) != worker_count(b) || a->listen.naddress != b->listen.naddress)
    return false;
  for (size_t i = 0; i < a->listen.naddress; i++)
    if (!same_address(&a->listen.address[i], &b->listen.address[i]))
      return false;
  return true;
}

/* A table built and not published yet, with the addresses of the sections it was built from. */
struct next_table {
  struct wsb_shm_table *table;
  struct wsb_addrs *addrs; /* in the order of the sections */
};

static void next_free(struct next_table *n) {
  free(n->table);
  free(n->addrs);
  *n = (struct next_table){0};
}

/* cfg with bs's sections in place of its own (it has none once bs took them): what the table
   and discovery read. A view for reading, never freed. */
static struct wsb_config with_sections(const struct wsb_config *cfg,
                                       const struct wsb_backends *bs) {
  struct wsb_config v = *cfg;
  v.backends = bs->sections;
  v.nbackends = bs->n;
  return v;
}

/*
 * The first half of the one publish path (start-up, reload, admin changes,
 * discovery): the next table from cfg's settings and bs's backends, each
 * section with the addresses discovery knows for its host (a new host is
 * looked up now, blocking), backends keeping their slots by name, and bs's
 * changes to single addresses applied. Returns 0, or an error with err set.
 */
static int build(struct master *m, const struct wsb_config *cfg, struct wsb_backends *bs,
                 struct next_table *n, char *err, size_t errlen) {
  struct wsb_config v = with_sections(cfg, bs);
  *n = (struct next_table){.table = malloc(sizeof(*n->table))};
  int rc = n->table == NULL ? -ENOMEM : wsb_discovery_lookup(&m->disc, &v, &n->addrs, err, errlen);
  if (rc == 0)
    rc = wsb_shm_table_build(n->table, &v, n->addrs, m->table, m->table ? m->shm : NULL, err,
                             errlen);
  if (rc != 0) {
    if (rc == -ENOMEM)
      snprintf(err, errlen, "out of memory");
    next_free(n);
    return rc;
  }
  wsb_backends_apply(bs, n->table);
  return 0;
}

/* The second half: publishes n (built with cfg and bs) and makes bs the running desired state.
   When bs is not m's own the two are swapped: bs gets the previous state, for the caller to
   free. */
static void publish(struct master *m, const struct wsb_config *cfg, struct wsb_backends *bs,
                    struct next_table *n) {
  struct wsb_config v = with_sections(cfg, bs);
  if (wsb_discovery_commit(&m->disc, &v, n->addrs) != 0)
    wsb_log_error("discovery: out of memory: the next lookups compare with older addresses");
  wsb_api_adopt_slots(m, n->table);
  wsb_api_adopt_routes(m, n->table);
  wsb_shm_publish(m->shm, n->table);
  free(m->table);
  m->table = n->table;
  n->table = NULL;
  next_free(n);
  if (bs != &m->backends)
    wsb_backends_swap(&m->backends, bs);
  if (m->health != NULL) /* NULL at start-up: the checks start with the loop */
    wsb_health_sync(m->health, m->table, cfg);
}

int wsb_master_publish(struct master *m, struct wsb_backends *bs, char *err, size_t errlen) {
  struct next_table n;
  int rc = build(m, m->cfg, bs, &n, err, errlen);
  if (rc == 0)
    publish(m, m->cfg, bs, &n);
  return rc;
}

/* Returns 0 once next is running, or an error with the running configuration untouched. */
static int reload_apply(struct master *m, struct wsb_config_errors *errs,
                        struct wsb_config_errors *discarded) {
  struct wsb_config next;
  if (wsb_reload_load(m->path, m->workers_override, &next, errs) != 0)
    return WSB_ECONFIG;
  /* A reload starts from the file: the runtime changes go, the ones to single addresses too. */
  struct wsb_backends bs;
  struct next_table n = {0};
  char err[512];
  int rc = wsb_backends_from_config(&bs, &next);
  if (rc == 0 && (rc = build(m, &next, &bs, &n, err, sizeof(err))) != 0) {
    wsb_log_error("reload: %s", err);
    wsb_reload_note(errs, "%s", err);
    wsb_backends_free(&bs);
    rc = WSB_ECONFIG;
  }
  if (rc != 0) {
    wsb_config_free(&next);
    return rc;
  }
  n.table->settings.tls_serial++; /* workers load the certificates again */
  /* New addresses or another worker count take a new pool: its sockets are bound before the
     old pool stops accepting, so the port never refuses a connection in between. */
  int *fds = NULL;
  bool new_pool = !same_listeners(&next, m->cfg);
  bool shared_groups = shares_an_address(&next, m->cfg);
  if (new_pool && (rc = wsb_workers_bind(&next, worker_count(&next), &fds)) != 0) {
    next_free(&n);
    wsb_backends_free(&bs);
    wsb_config_free(&next);
    return rc;
  }
  /* SPEC.md: runtime changes last until the next reload, which reads the file again. Said
     aloud, so that an operator who disabled a backend through the API sees it come back. */
  struct wsb_config_errors gone = {0};
  wsb_backends_discarded(&m->backends, &bs, n.table, &gone);
  for (size_t i = 0; i < m->cfg->npools; i++)
    if (m->cfg->pools[i].changed)
      wsb_reload_note(&gone, "pool %s: the file's settings (changed through the API)",
                      m->cfg->pools[i].name);
  wsb_api_routes_discarded(m, &next, &gone);
  for (size_t i = 0; i < gone.n; i++)
    wsb_log_warn("reload: discards a runtime change: %s", gone.lines[i]);
  if (discarded != NULL)
    *discarded = gone;
  else
    wsb_config_errors_free(&gone);
  publish(m, &next, &bs, &n);
  wsb_backends_free(&bs); /* the state before the reload */
  wsb_config_free(m->cfg);
  *m->cfg = next;
  wsb_tickets_schedule(&m->tickets, &m->loop, m->cfg->listen.tls_ticket_rotation_ms);
  wsb_log_setup(m->cfg->wsbal.log_level, m->cfg->wsbal.log_format, "master", -1);
  m->workers.log_level = m->cfg->wsbal.log_level;
  m->workers.log_format = m->cfg->wsbal.log_format;
  /* Known hosts kept their addresses above without a lookup; now every name is looked up again,
     without blocking, and a change is published when the answers are in. */
  wsb_discovery_start(&m->disc, &m->loop, m->cfg->upstream.resolve_interval_ms);
  wsb_discovery_refresh(&m->disc);
  if (new_pool &&
      wsb_workers_start(&m->workers, worker_count(m->cfg), fds, m->cfg->listen.naddress) == 0) {
    wsb_log_info("new listeners or worker count: %u new workers; the old ones drain",
                 worker_count(m->cfg));
    wsb_pack_pool_started(&m->pack, !shared_groups, packs(m->cfg));
    wsb_workers_retire_old(&m->workers);
  } else if (!new_pool) {
    wsb_pack_configure(&m->pack, packs(m->cfg));
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
                 (unsigned long long)wsb_shm_generation(m->shm), m->backends.n,
                 m->backends.n == 1 ? "" : "s");
  }
  notify_status(m, "READY=1\n");
  return rc;
}

/* A discovery round found other addresses: they replace the old ones like a reload would. */
static int on_discovered(void *arg) {
  struct master *m = arg;
  char err[512];
  int rc = wsb_master_publish(m, &m->backends, err, sizeof(err));
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
    wsb_pack_workers_changed(&m->pack);
    break;
  case SIGHUP:
    wsb_master_reload(m, NULL, NULL);
    break;
  case SIGUSR2: {
    char why[256];
    wsb_upgrade_start(m, 0, false, why, sizeof(why));
    break;
  }
  case SIGUSR1:
    /* logrotate moved the file: every worker opens the path again. */
    wsb_log_info("SIGUSR1: workers reopen the access log");
    wsb_workers_signal(&m->workers, SIGUSR1);
    break;
  }
}

/* Not while an upgrade's new master starts or serves: it took the groups over (and gave them
   back to the kernel's hash) at its start. */
static bool may_steer(void *arg) {
  const struct master *m = arg;
  return !m->stopping && m->up.child == 0 && m->up.handed_to == 0;
}

static void other_exited(void *arg, pid_t pid, int status) {
  wsb_upgrade_child_exited(arg, pid, status);
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
  /* An upgrade's new master takes the old one's listeners (upgrade.c) and binds the rest. */
  int rc = wsb_upgrade_inherit(&m->up, m->cfg, worker_count(m->cfg), fds, &m->admin_fd);
  if (rc == 0)
    rc = wsb_workers_bind(m->cfg, worker_count(m->cfg), fds);
  if (rc < 0)
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
  if (m->cfg->admin.enabled && m->admin_fd < 0) {
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
  rc = wsb_backends_from_config(&m->backends, m->cfg);
  if (rc == 0)
    rc = wsb_master_publish(m, &m->backends, err, sizeof(err));
  else
    snprintf(err, sizeof(err), "out of memory");
  if (rc != 0)
    wsb_log_error("%s", err);
  return rc;
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
      wsb_reload_note(errs, "%s", line);
    }
  }
  struct wsb_addrs *addrs = calloc(cfg->nbackends ? cfg->nbackends : 1, sizeof(*addrs));
  struct wsb_shm_table *t = malloc(sizeof(*t));
  if (addrs == NULL || t == NULL) {
    wsb_reload_note(errs, "out of memory");
  } else {
    size_t unresolved = 0;
    for (size_t i = 0; i < cfg->nbackends; i++)
      if (wsb_discovery_resolve(cfg, i, &addrs[i], err, sizeof(err)) != 0) {
        wsb_reload_note(errs, "%s", err);
        unresolved++;
      }
    /* The start's own table, to its limits (lists, names, 256 backends once hosts expand). */
    if (unresolved == 0 && wsb_shm_table_build(t, cfg, addrs, NULL, NULL, err, sizeof(err)) != 0) {
      snprintf(line, sizeof(line), "%s:0: %s", cfg->path ? cfg->path : "(no file)", err);
      wsb_reload_note(errs, "%s", line);
    }
  }
  free(addrs);
  free(t);
  return errs->n > before ? WSB_ECONFIG : 0;
}

int wsb_master_run(struct wsb_config *cfg, const char *path, int workers_override) {
  wsb_log_setup(cfg->wsbal.log_level, cfg->wsbal.log_format, "master", -1);
  signal(SIGPIPE, SIG_IGN);

  struct master m = {.cfg = cfg,
                     .path = path,
                     .workers_override = workers_override,
                     .admin_fd = -1,
                     .admin = {.fd = -1}};
  wsb_upgrade_init(&m.up);
  int *fds = NULL;
  if (start(&m, &fds) != 0) {
    wsb_upgrade_refuse(&m.up, "its start failed: see its log");
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
    wsb_backends_free(&m.backends);
    wsb_discovery_free(&m.disc);
    return EXIT_STARTUP;
  }
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
  m.workers.log_format = cfg->wsbal.log_format;
  m.workers.in_child = forget_master_in_child;
  m.workers.all_exited = close_handles;
  m.workers.on_chunk = wsb_api_on_chunk;
  m.workers.rbuf = malloc(sizeof(*m.workers.rbuf));
  if (m.workers.rbuf == NULL)
    wsb_fatal(EXIT_STARTUP, "out of memory");
  m.workers.other_exited = other_exited;
  m.workers.arg = &m;
  for (unsigned s = 0; s < m.shm->nworkers; s++)
    m.workers.procs[s].incarnation = m.up.incarnation;
  wsb_workers_start(&m.workers, worker_count(cfg), fds, cfg->listen.naddress);
  wsb_pack_init(&m.pack, &m.loop, &m.workers, may_steer, &m);
  /* An upgrade's listeners come with their places in their groups unknown to this master. */
  wsb_pack_pool_started(&m.pack, m.up.old_master == 0, packs(cfg));
  m.started_ms = uv_now(&m.loop);
  if (m.admin_fd >= 0 &&
      wsb_admin_start(&m.admin, &m.loop, m.admin_fd, m.cfg, wsb_api_route, &m) != 0)
    wsb_log_error("admin server could not start");
  log_listening(&m);
  m.ready_probe_ms = m.started_ms;
  uv_timer_start(&m.status_timer, on_status_timer, 0, READY_PROBE_MS);

  uv_run(&m.loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&m.loop) != 0)
    wsb_log_error("event loop closed with handles still open");
  wsb_log_info("stopped");
  wsb_health_free(m.health);
  wsb_shm_destroy(m.shm);
  free(m.workers.procs);
  free(m.workers.rbuf);
  free(m.table);
  wsb_backends_free(&m.backends);
  wsb_discovery_free(&m.disc);
  return 0;
}
