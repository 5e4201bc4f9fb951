/* Worker processes: one slot of the segment each, their own sockets, respawned until retired. */
#include "workers.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "control.h"
#include "listen.h"
#include "log.h"
#include "proc.h"

#define RESPAWN_DELAY_MIN_MS 100
#define RESPAWN_DELAY_MAX_MS 10000
#define CRASH_WINDOW_MS      1000 /* a worker dying sooner than this after its start is crashing */

void wsb_workers_init(struct wsb_workers *ws, uv_loop_t *loop, struct wsb_shm *shm) {
  ws->loop = loop;
  ws->shm = shm;
  for (unsigned s = 0; s < shm->nworkers; s++) {
    struct wsb_worker_proc *w = &ws->procs[s];
    w->ws = ws;
    w->slot = s;
    w->control_fd = -1;
    uv_timer_init(loop, &w->respawn_timer);
    w->respawn_timer.data = w;
  }
}

static void close_fds(int *fds, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (fds[i] >= 0)
      close(fds[i]);
}

int wsb_workers_bind(const struct wsb_config *cfg, unsigned n, int **out) {
  size_t total = (size_t)n * cfg->listen.naddress;
  int *fds = malloc(total * sizeof(int));
  if (fds == NULL)
    return -ENOMEM;
  char err[256];
  for (size_t i = 0; i < total; i++) {
    fds[i] =
        wsb_listen_open(&cfg->listen.address[i % cfg->listen.naddress], true, err, sizeof(err));
    if (fds[i] < 0) {
      int rc = fds[i];
      wsb_log_error("%s", err);
      close_fds(fds, i);
      free(fds);
      return rc;
    }
  }
  *out = fds;
  return 0;
}

/* In a freshly forked worker: drop what belongs to the master and to other slots. */
static void forget_others_in_child(struct wsb_workers *ws, unsigned slot) {
  ws->in_child(ws->arg);
  for (unsigned s = 0; s < ws->shm->nworkers; s++) {
    struct wsb_worker_proc *o = &ws->procs[s];
    if (o->control_fd >= 0)
      close(o->control_fd);
    if (s != slot && o->listen_fds != NULL)
      close_fds(o->listen_fds, o->nlisten);
  }
}

/*
 * Every descriptor the master holds at a fork, as (number, file) pairs: the admin listener and its
 * connections, health probes, other workers' control sockets, the loop's own descriptors, anything
 * inherited from whoever started wsbal. The child closes them all but its keep-list, so that no
 * worker holds a client's admin connection open, nor any other socket it never serves.
 */
struct fd_snapshot {
  size_t n;
  struct fd_entry {
    int fd;
    dev_t dev;
    ino_t ino;
  } * e;
};

/* Calls fn on every open descriptor but the directory's own, from /proc/self/fd. */
static int each_fd(void (*fn)(int fd, void *arg), void *arg) {
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL)
    return -errno;
  int own = dirfd(d);
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    char *end;
    long fd = strtol(e->d_name, &end, 10);
    if (e->d_name[0] != '.' && *end == '\0' && fd != own)
      fn((int)fd, arg);
  }
  closedir(d);
  return 0;
}

static void snapshot_one(int fd, void *arg) {
  struct fd_snapshot *s = arg;
  struct stat st;
  if (fstat(fd, &st) != 0)
    return;
  struct fd_entry *e = realloc(s->e, (s->n + 1) * sizeof(*e));
  if (e == NULL)
    return; /* the child then keeps that one: a leak, never a wrong close */
  s->e = e;
  s->e[s->n++] = (struct fd_entry){.fd = fd, .dev = st.st_dev, .ino = st.st_ino};
}

struct sweep {
  const struct fd_snapshot *snap;
  const int *keep;
  size_t nkeep;
};

static void sweep_one(int fd, void *arg) {
  const struct sweep *sw = arg;
  for (size_t i = 0; i < sw->nkeep; i++)
    if (sw->keep[i] == fd)
      return;
  struct stat st;
  if (fstat(fd, &st) != 0)
    return;
  for (size_t i = 0; i < sw->snap->n; i++) {
    const struct fd_entry *e = &sw->snap->e[i];
    if (e->fd == fd && e->dev == st.st_dev && e->ino == st.st_ino) {
      close(fd); /* the master's */
      return;
    }
  }
  /* Made since the snapshot. libuv's fork handler makes its signal lock pipe again in the child
     (a pipe the worker's own signal handles need); anything else is a descriptor a thread of
     the master (a lookup in libuv's pool) opened just before the fork. */
  if (!S_ISFIFO(st.st_mode))
    close(fd);
}

/* In a freshly forked worker: every descriptor of the master's goes, but stdin, stdout, stderr,
   its own listening sockets and its control socket. */
static void sweep_in_child(const struct fd_snapshot *snap, const struct wsb_worker_proc *w,
                           int control_fd) {
  size_t nkeep = 4 + w->nlisten;
  int keep[nkeep];
  keep[0] = STDIN_FILENO;
  keep[1] = STDOUT_FILENO;
  keep[2] = STDERR_FILENO;
  keep[3] = control_fd;
  memcpy(keep + 4, w->listen_fds, w->nlisten * sizeof(int));
  struct sweep sw = {.snap = snap, .keep = keep, .nkeep = nkeep};
  if (snap->n > 0)
    each_fd(sweep_one, &sw);
}

static void on_respawn_timer(uv_timer_t *t);

static void ctl_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct wsb_worker_proc *w = h->data;
  buf->base = (char *)w->ws->rbuf;
  buf->len = sizeof(*w->ws->rbuf);
}

static void on_ctl_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  struct wsb_worker_proc *w = stream->data;
  if (nread <= 0)
    return; /* end of file: the worker is gone, which SIGCHLD tells us properly */
  /* A worker's answer that does not parse is dropped with a word; the request times out. */
  if (wsb_control_check_chunk(buf->base, (size_t)nread) != 0) {
    wsb_log_error("worker %u: malformed answer of %zd bytes", w->slot, nread);
    return;
  }
  w->ws->on_chunk(w->ws->arg, (const struct wsb_sessions_chunk *)(const void *)buf->base);
}

static void on_ctl_closed(uv_handle_t *h) {
  free(h);
}

/* Opens the master's end of a new worker's socketpair for its answers. */
static void open_ctl(struct wsb_worker_proc *w, int fd) {
  w->control_fd = fd;
  w->ctl = malloc(sizeof(*w->ctl));
  if (w->ctl == NULL || uv_pipe_init(w->ws->loop, w->ctl, 0) != 0) {
    free(w->ctl);
    w->ctl = NULL;
    return; /* commands still go out; answers will not come */
  }
  w->ctl->data = w;
  if (uv_pipe_open(w->ctl, fd) != 0) {
    uv_close((uv_handle_t *)w->ctl, on_ctl_closed); /* fd is not the handle's: it stays open */
    w->ctl = NULL;
    return;
  }
  if (uv_read_start((uv_stream_t *)w->ctl, ctl_alloc, on_ctl_read) != 0)
    wsb_log_error("worker %u: its answers cannot be read", w->slot);
}

static void close_ctl(struct wsb_worker_proc *w) {
  if (w->ctl != NULL) {
    uv_close((uv_handle_t *)w->ctl, on_ctl_closed); /* closes control_fd too */
    w->ctl = NULL;
  } else if (w->control_fd >= 0) {
    close(w->control_fd);
  }
  w->control_fd = -1;
}

static void spawn(struct wsb_worker_proc *w) {
  struct wsb_workers *ws = w->ws;
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    wsb_log_error("worker %u: socketpair: %s; trying again", w->slot, strerror(errno));
    uv_timer_start(&w->respawn_timer, on_respawn_timer, RESPAWN_DELAY_MAX_MS, 0);
    return;
  }
  /* The child inherits stop signals blocked, and unblocks them once its own handlers are in
     place: a SIGTERM sent to a worker that is still starting must not kill it half-way. */
  sigset_t stop_signals, previous;
  wsb_worker_signal_set(&stop_signals);
  struct fd_snapshot snap = {0};
  int rc = each_fd(snapshot_one, &snap);
  if (rc != 0 && !ws->warned_fds) {
    ws->warned_fds = true;
    wsb_log_warn("/proc/self/fd: %s: workers inherit every descriptor of the master's",
                 strerror(-rc));
  }
  sigprocmask(SIG_BLOCK, &stop_signals, &previous);
  pid_t pid = fork();
  if (pid != 0) {
    sigprocmask(SIG_SETMASK, &previous, NULL);
    free(snap.e);
  }
  if (pid < 0) {
    wsb_log_error("worker %u: fork: %s; trying again", w->slot, strerror(errno));
    close(pair[0]);
    close(pair[1]);
    uv_timer_start(&w->respawn_timer, on_respawn_timer, RESPAWN_DELAY_MAX_MS, 0);
    return;
  }
  if (pid == 0) {
    close(pair[0]);
    forget_others_in_child(ws, w->slot);
    sweep_in_child(&snap, w, pair[1]);
    free(snap.e);
    struct wsb_worker_start start = {
        .slot = w->slot,
        .incarnation = w->incarnation,
        .listen_fds = w->listen_fds,
        .nlisten = w->nlisten,
        .control_fd = pair[1],
        .shm = ws->shm,
        .log_level = ws->log_level,
        .log_format = ws->log_format,
    };
    exit(wsb_worker_main(&start));
  }
  close(pair[1]);
  w->pid = pid;
  open_ctl(w, pair[0]);
  w->incarnation++;
  w->started_ms = uv_now(ws->loop);
  ws->running++;
  wsb_log_debug("worker %u started, pid %d", w->slot, (int)pid);
}

static void on_respawn_timer(uv_timer_t *t) {
  struct wsb_worker_proc *w = t->data;
  if (!w->ws->stopping && !w->retiring && w->in_use && w->pid == 0)
    spawn(w);
}

int wsb_workers_start(struct wsb_workers *ws, unsigned n, int *fds, size_t nlisten) {
  unsigned free_slots = 0;
  for (unsigned s = 0; s < ws->shm->nworkers; s++)
    free_slots += !ws->procs[s].in_use;
  if (free_slots < n) {
    wsb_log_error("%u workers wanted but only %u slots are free", n, free_slots);
    close_fds(fds, (size_t)n * nlisten);
    free(fds);
    return -ENOSPC;
  }
  ws->generation++;
  /* Every slot gets its sockets before any child is forked, so that each child can close
     the sockets of all the others. */
  struct wsb_worker_proc *pool[n];
  unsigned given = 0;
  for (unsigned s = 0; s < ws->shm->nworkers && given < n; s++) {
    struct wsb_worker_proc *w = &ws->procs[s];
    if (w->in_use)
      continue;
    w->listen_fds = malloc(nlisten * sizeof(int));
    if (w->listen_fds == NULL)
      wsb_fatal(3, "out of memory");
    memcpy(w->listen_fds, &fds[(size_t)given * nlisten], nlisten * sizeof(int));
    w->nlisten = nlisten;
    w->in_use = true;
    w->retiring = false;
    w->generation = ws->generation;
    w->crash_streak = 0;
    wsb_shm_slot_used(ws->shm, s);
    pool[given++] = w;
  }
  free(fds);
  for (unsigned i = 0; i < n; i++)
    spawn(pool[i]);
  return 0;
}

static void release_sockets(struct wsb_worker_proc *w) {
  if (w->listen_fds == NULL)
    return;
  close_fds(w->listen_fds, w->nlisten);
  free(w->listen_fds);
  w->listen_fds = NULL;
  w->nlisten = 0;
}

void wsb_workers_retire_old(struct wsb_workers *ws) {
  for (unsigned s = 0; s < ws->shm->nworkers; s++) {
    struct wsb_worker_proc *w = &ws->procs[s];
    if (!w->in_use || w->generation == ws->generation || w->retiring)
      continue;
    w->retiring = true;
    uv_timer_stop(&w->respawn_timer);
    /* The master's copies go at once; the worker closes its own when it starts draining. */
    release_sockets(w);
    if (w->pid > 0)
      kill(w->pid, SIGTERM);
    else
      w->in_use = false;
  }
}

static void on_worker_exit(struct wsb_workers *ws, struct wsb_worker_proc *w, int status) {
  bool expected = ws->stopping || w->retiring;
  uint64_t lived = uv_now(ws->loop) - w->started_ms;
  if (WIFSIGNALED(status))
    wsb_log(expected ? WSB_LOG_INFO : WSB_LOG_ERROR, "worker %u (pid %d) killed by signal %d",
            w->slot, (int)w->pid, WTERMSIG(status));
  else
    wsb_log(expected || WEXITSTATUS(status) == 0 ? WSB_LOG_INFO : WSB_LOG_ERROR,
            "worker %u (pid %d) exited with status %d", w->slot, (int)w->pid, WEXITSTATUS(status));
  /* Its live sessions are gone with it: their least-connection counts must go too. */
  wsb_shm_worker_forget(ws->shm, w->slot);
  close_ctl(w);
  w->pid = 0;
  ws->running--;
  if (ws->stopping) {
    if (ws->running == 0)
      ws->all_exited(ws->arg);
    return;
  }
  if (w->retiring) {
    w->in_use = false; /* the slot is free for a later pool */
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
  atomic_fetch_add(&ws->shm->worker_restarts, 1);
  wsb_log_info("respawning worker %u in %llu ms", w->slot, (unsigned long long)delay);
  uv_timer_start(&w->respawn_timer, on_respawn_timer, delay, 0);
}

void wsb_workers_reap(struct wsb_workers *ws) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    bool worker = false;
    for (unsigned s = 0; s < ws->shm->nworkers; s++)
      if (ws->procs[s].pid == pid) {
        worker = true;
        on_worker_exit(ws, &ws->procs[s], status);
      }
    if (!worker && ws->other_exited != NULL)
      ws->other_exited(ws->arg, pid, status);
  }
}

void wsb_workers_signal(struct wsb_workers *ws, int sig) {
  for (unsigned s = 0; s < ws->shm->nworkers; s++)
    if (ws->procs[s].pid > 0)
      kill(ws->procs[s].pid, sig);
}

void wsb_workers_stop(struct wsb_workers *ws) {
  ws->stopping = true;
  for (unsigned s = 0; s < ws->shm->nworkers; s++) {
    uv_timer_stop(&ws->procs[s].respawn_timer);
    /* Once the workers have closed theirs too, new connections are refused instead of
       waiting in a queue nobody serves. */
    release_sockets(&ws->procs[s]);
  }
  if (ws->running == 0)
    ws->all_exited(ws->arg);
  else
    wsb_workers_signal(ws, SIGTERM);
}

void wsb_workers_resume(struct wsb_workers *ws) {
  ws->stopping = false;
  for (unsigned s = 0; s < ws->shm->nworkers; s++) {
    struct wsb_worker_proc *w = &ws->procs[s];
    w->retiring = w->in_use;
    if (w->pid == 0)
      w->in_use = false;
  }
}

void wsb_workers_close(struct wsb_workers *ws) {
  for (unsigned s = 0; s < ws->shm->nworkers; s++) {
    uv_close((uv_handle_t *)&ws->procs[s].respawn_timer, NULL);
    close_ctl(&ws->procs[s]);
    release_sockets(&ws->procs[s]);
  }
}

unsigned wsb_workers_current(const struct wsb_workers *ws) {
  unsigned n = 0;
  for (unsigned s = 0; s < ws->shm->nworkers; s++)
    n += ws->procs[s].in_use && !ws->procs[s].retiring && ws->procs[s].pid > 0;
  return n;
}

unsigned wsb_workers_pool(struct wsb_workers *ws, struct wsb_worker_proc **out, unsigned max) {
  /* wsb_workers_start hands a pool's sockets to free slots in ascending order. */
  unsigned n = 0;
  for (unsigned s = 0; s < ws->shm->nworkers && n < max; s++) {
    struct wsb_worker_proc *w = &ws->procs[s];
    if (w->in_use && !w->retiring && w->generation == ws->generation) {
      if (out != NULL)
        out[n] = w;
      n++;
    }
  }
  return n;
}

unsigned wsb_workers_send(struct wsb_workers *ws, int slot, const struct wsb_control_msg *msg) {
  unsigned reached = 0;
  for (unsigned s = 0; s < ws->shm->nworkers; s++) {
    const struct wsb_worker_proc *w = &ws->procs[s];
    if ((slot >= 0 && (unsigned)slot != s) || w->pid == 0 || w->control_fd < 0)
      continue;
    int rc = wsb_control_send(w->control_fd, msg);
    if (rc == 0)
      reached++;
    else
      wsb_log_error("worker %u: command not sent: %s", s, strerror(-rc));
  }
  return reached;
}
