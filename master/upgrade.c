/* Binary upgrade, the masters' half (upgrade.h; the design is in common/session_state.h). */
#include "upgrade.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../worker/handover.h"
#include "admin.h"
#include "listen.h"
#include "log.h"
#include "session_state.h"
#include "master_internal.h"

extern char **environ;

#define CMDLINE_MAX    (64 * 1024)
#define SPEC_MAX       (32 * 1024)
#define FIRST_CHILD_FD 3

/* ---- the new master's side ---- */

void wsb_upgrade_init(struct wsb_upgrade *u) {
  u->ready_fd = -1;
  u->kept_admin = -1;
  ssize_t n = readlink("/proc/self/exe", u->exe, sizeof(u->exe) - 1);
  u->exe[n > 0 ? n : 0] = '\0';
}

struct inherited {
  int fd;
  unsigned worker; /* its worker in the old pool; UINT32_MAX for the admin listener */
  unsigned port;
  bool taken;
  char host[WSB_HOST_MAX];
};

/* An inherited descriptor's number, or -1 when it is none this process has open. */
static int open_fd(int fd) {
  return fd >= FIRST_CHILD_FD && fcntl(fd, F_GETFD) >= 0 ? fd : -1;
}

static int refuse(struct wsb_upgrade *u, int rc, const char *why) {
  wsb_log_error("upgrade: %s", why);
  wsb_upgrade_refuse(u, why);
  return rc;
}

static int take(struct inherited *in, size_t nin, unsigned worker, const struct wsb_hostport *hp) {
  for (size_t i = 0; i < nin; i++)
    if (!in[i].taken && in[i].worker == worker && in[i].port == hp->port &&
        strcmp(in[i].host, hp->host) == 0) {
      in[i].taken = true;
      fcntl(in[i].fd, F_SETFD, FD_CLOEXEC); /* exec cleared it; workers are forked */
      return in[i].fd;
    }
  return -1;
}

int wsb_upgrade_inherit(struct wsb_upgrade *u, const struct wsb_config *cfg, unsigned n, int **fds,
                        int *admin_fd) {
  const char *env = getenv(WSB_UPGRADE_ENV);
  if (env == NULL)
    return 0;
  char *spec = strdup(env);
  /* Workers, and a later upgrade of this master, must not see it. */
  unsetenv(WSB_UPGRADE_ENV);
  u->old_master = getppid();
  if (spec == NULL)
    return -ENOMEM;
  size_t max = 1, nin = 0;
  for (const char *p = spec; *p != '\0'; p++)
    max += *p == ' ';
  struct inherited *in = calloc(max, sizeof(*in));
  int rc = in == NULL ? -ENOMEM : 0;
  char why[320];
  long state = -1;
  char *save = NULL;
  for (char *item = strtok_r(spec, " ", &save); item != NULL && rc == 0;
       item = strtok_r(NULL, " ", &save)) {
    struct inherited *e = &in[nin];
    int fd = -1;
    _Static_assert(WSB_HOST_MAX == 256, "the widths below");
    if (sscanf(item, "state=%ld", &state) == 1 ||
        sscanf(item, "incarnation=%" SCNu32, &u->incarnation) == 1) {
      continue;
    } else if (sscanf(item, "ready=%d", &fd) == 1 && (u->ready_fd = open_fd(fd)) >= 0) {
      fcntl(u->ready_fd, F_SETFD, FD_CLOEXEC);
    } else if (nin < max && sscanf(item, "admin=%d,%u,%255s", &e->fd, &e->port, e->host) == 3) {
      e->worker = UINT32_MAX;
      e->fd = open_fd(e->fd);
      nin++;
    } else if (nin < max &&
               sscanf(item, "listen=%d,%u,%u,%255s", &e->fd, &e->worker, &e->port, e->host) == 4) {
      e->fd = open_fd(e->fd);
      nin++;
    } else {
      snprintf(why, sizeof(why), "malformed " WSB_UPGRADE_ENV " item \"%.200s\"", item);
      rc = refuse(u, -EINVAL, why);
    }
    if (rc == 0 && nin > 0 && in[nin - 1].fd < 0) {
      snprintf(why, sizeof(why), WSB_UPGRADE_ENV " names a descriptor that is not open");
      rc = refuse(u, -EBADF, why);
      nin--;
    }
  }
  /* The sessions the old workers hand over are written in their build's format: a build that
     cannot read it refuses the whole upgrade rather than leave every session to drain. */
  if (rc == 0 && (state < WSB_STATE_VERSION_MIN || state > WSB_STATE_VERSION)) {
    snprintf(why, sizeof(why),
             "the old master writes session state format %ld; this build reads %d to %d", state,
             WSB_STATE_VERSION_MIN, WSB_STATE_VERSION);
    rc = refuse(u, -EPROTO, why);
  }
  size_t total = (size_t)n * cfg->listen.naddress;
  int *out = rc == 0 ? malloc(total * sizeof(int)) : NULL;
  if (rc == 0 && out == NULL)
    rc = -ENOMEM;
  char err[256];
  size_t bound = 0;
  for (size_t i = 0; rc == 0 && i < total; i++) {
    const struct wsb_hostport *hp = &cfg->listen.address[i % cfg->listen.naddress];
    out[i] = take(in, nin, (unsigned)(i / cfg->listen.naddress), hp);
    if (out[i] < 0 && ++bound && (out[i] = wsb_listen_open(hp, true, err, sizeof(err))) < 0) {
      rc = out[i];
      wsb_log_error("%s", err);
      for (size_t j = 0; j < i; j++)
        close(out[j]);
    }
  }
  if (rc == 0 && cfg->admin.enabled)
    *admin_fd = take(in, nin, UINT32_MAX, &cfg->admin.address);
  /* What the new configuration no longer has: its queued connections go with it. */
  for (size_t i = 0; i < nin; i++)
    if (!in[i].taken && in[i].fd >= 0)
      close(in[i].fd);
  free(spec);
  free(in);
  if (rc != 0) {
    free(out);
    return rc;
  }
  *fds = out;
  wsb_log_info("upgrade: took the old master's listeners; %zu bound anew", bound);
  return 1;
}

static void write_line(struct wsb_upgrade *u, const char *line) {
  if (u->ready_fd < 0)
    return;
  size_t len = strlen(line);
  /* A pipe takes a short line whole; the old master may be gone (EPIPE): nothing to tell. */
  if (write(u->ready_fd, line, len) != (ssize_t)len)
    wsb_log_warn("upgrade: the old master did not take the answer: %s", strerror(errno));
  close(u->ready_fd);
  u->ready_fd = -1;
}

bool wsb_upgrade_workers_accept(const struct wsb_workers *ws) {
  for (unsigned slot = 0; slot < ws->shm->nworkers; slot++) {
    const struct wsb_worker_proc *w = &ws->procs[slot];
    if (!w->in_use || w->retiring || w->generation != ws->generation)
      continue;
    struct sockaddr_un sa;
    socklen_t len = wsb_handover_socket_name(&sa, getpid(), slot);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    /* A listening Unix socket completes a connect at once (the worker then reads end of file). */
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, len) == 0;
    if (fd >= 0)
      close(fd);
    if (!ok)
      return false;
  }
  return true;
}

void wsb_upgrade_ready(struct wsb_upgrade *u, unsigned nworkers) {
  char line[64];
  snprintf(line, sizeof(line), "READY %ld %u\n", (long)getpid(), nworkers);
  write_line(u, line);
}

void wsb_upgrade_refuse(struct wsb_upgrade *u, const char *why) {
  char line[256];
  snprintf(line, sizeof(line), "REFUSE %.200s\n", why);
  for (char *p = line + 7; *p != '\n'; p++)
    if (*p == '\r' || *p == '\n')
      *p = ' ';
  write_line(u, line);
}

/* ---- the old master's side ---- */

/* This process's arguments as it was started: same arguments for the new program. */
static char **read_cmdline(char **buf) {
  *buf = malloc(CMDLINE_MAX);
  int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 && *buf != NULL ? read(fd, *buf, CMDLINE_MAX - 1) : -1;
  if (fd >= 0)
    close(fd);
  if (n <= 0) {
    free(*buf);
    return NULL;
  }
  (*buf)[n] = '\0';
  size_t argc = 0;
  for (ssize_t i = 0; i < n; i++)
    argc += (*buf)[i] == '\0';
  char **argv = calloc(argc + 1, sizeof(char *));
  if (argv == NULL)
    return NULL;
  size_t k = 0;
  for (char *p = *buf; p < *buf + n && k < argc; p += strlen(p) + 1)
    argv[k++] = p;
  return argv;
}

/* The environment with WSBAL_UPGRADE set to spec (and no older one). */
static char **child_environ(char *spec) {
  size_t n = 0;
  while (environ[n] != NULL)
    n++;
  char **env = calloc(n + 2, sizeof(char *));
  if (env == NULL)
    return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], WSB_UPGRADE_ENV "=", sizeof(WSB_UPGRADE_ENV)) != 0)
      env[k++] = environ[i];
  env[k] = spec;
  return env;
}

/* In the forked child: the k descriptors of pass at 3, 4, ..., nothing else open above 2. */
static void exec_child(const char *exe, char **argv, char **env, const int *pass, size_t k) {
  int tmp[2 + WSB_MAX_LISTEN * 1024];
  for (size_t i = 0; i < k; i++)
    if ((tmp[i] = fcntl(pass[i], F_DUPFD_CLOEXEC, (int)(FIRST_CHILD_FD + k))) < 0)
      _exit(127);
  for (size_t i = 0; i < k; i++)
    if (dup2(tmp[i], (int)(FIRST_CHILD_FD + i)) < 0) /* the copy has no FD_CLOEXEC */
      _exit(127);
  close_range((unsigned)(FIRST_CHILD_FD + k), ~0u, 0);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  execve(exe, argv, env);
  _exit(127);
}

static void append(char *spec, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void append(char *spec, size_t *used, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(spec + *used, SPEC_MAX - *used, fmt, ap);
  va_end(ap);
  if (n > 0)
    *used = *used + (size_t)n < SPEC_MAX ? *used + (size_t)n : SPEC_MAX - 1;
}

/* WSBAL_UPGRADE for the descriptors of the current pool, and those descriptors, in order. */
static size_t describe(struct master *m, int ready_fd, char *spec, int *pass, size_t max) {
  size_t used = 0, k = 0;
  append(spec, &used, WSB_UPGRADE_ENV "=state=%d ready=%zu", WSB_STATE_VERSION, FIRST_CHILD_FD + k);
  pass[k++] = ready_fd;
  if (m->admin.fd >= 0) {
    append(spec, &used, " admin=%zu,%u,%s", FIRST_CHILD_FD + k,
           (unsigned)m->cfg->admin.address.port, m->cfg->admin.address.host);
    pass[k++] = m->admin.fd;
  }
  /* The new workers' session ids must differ from those of the sessions they take in: their
     incarnations start past every one of this master's (a session id holds slot, incarnation
     and a sequence; worker/session.c). */
  uint32_t incarnation = 0;
  for (unsigned s = 0; s < m->shm->nworkers; s++)
    if (m->workers.procs[s].incarnation > incarnation)
      incarnation = m->workers.procs[s].incarnation;
  append(spec, &used, " incarnation=%" PRIu32, incarnation);
  unsigned worker = 0;
  for (unsigned s = 0; s < m->shm->nworkers; s++) {
    const struct wsb_worker_proc *w = &m->workers.procs[s];
    if (!w->in_use || w->retiring || w->generation != m->workers.generation ||
        w->listen_fds == NULL)
      continue;
    for (size_t a = 0; a < w->nlisten && a < m->cfg->listen.naddress && k < max; a++) {
      const struct wsb_hostport *hp = &m->cfg->listen.address[a];
      append(spec, &used, " listen=%zu,%u,%u,%s", FIRST_CHILD_FD + k, worker, (unsigned)hp->port,
             hp->host);
      pass[k++] = w->listen_fds[a];
    }
    worker++;
  }
  return k;
}

static const char *describe_exit(int status, char *buf, size_t cap) {
  if (WIFEXITED(status))
    snprintf(buf, cap, "it exited with status %d%s", WEXITSTATUS(status),
             WEXITSTATUS(status) == 1     ? " (configuration error)"
             : WEXITSTATUS(status) == 3   ? " (start-up failure)"
             : WEXITSTATUS(status) == 127 ? " (the program could not be run)"
                                          : "");
  else if (WIFSIGNALED(status))
    snprintf(buf, cap, "it was killed by signal %d (%s)", WTERMSIG(status),
             strsignal(WTERMSIG(status)));
  else
    snprintf(buf, cap, "it stopped");
  return buf;
}

static void on_pipe_closed(uv_handle_t *h) {
  (void)h;
}

/* The outcome: handed over (pid > 0), or refused with why (status: the API's answer). */
static void finish(struct master *m, pid_t pid, int status, const char *why) {
  struct wsb_upgrade *u = &m->up;
  uv_timer_stop(&u->timer);
  if (u->pipe_open) {
    u->pipe_open = false;
    uv_close((uv_handle_t *)&u->ready, on_pipe_closed);
  }
  if (pid <= 0) {
    wsb_log_error("upgrade refused: %s; this master goes on", why);
    if (u->child > 0 && !u->reaped)
      kill(u->child, SIGKILL); /* a hang; its exit is collected like any child's */
    else
      u->child = 0;
  } else {
    wsb_log_info("upgrade: the new master (pid %ld, %s) is ready: handing over to it", (long)pid,
                 u->exe);
  }
  if (u->waiting_api) {
    u->waiting_api = false;
    struct wsb_admin_reply r = {0};
    char body[512];
    if (pid > 0) {
      int n = snprintf(body, sizeof(body), "{\"result\":\"ok\",\"pid\":%ld}\n", (long)pid);
      r.status = 200;
      r.body = malloc((size_t)n);
      if (r.body != NULL) {
        memcpy(r.body, body, (size_t)n);
        r.len = (size_t)n;
      }
    } else {
      snprintf(body, sizeof(body), "upgrade refused: %s", why);
      wsb_admin_error(&r, status, body);
    }
    wsb_admin_complete(&m->admin, u->conn, &r);
  }
  if (pid > 0) {
    u->handed_to = pid;
    wsb_master_handed_over(m, pid);
  }
}

static uint64_t timeout_ms(void) {
#ifdef WSB_FAULT_INJECTION
  const char *t = getenv("WSB_TEST_UPGRADE_TIMEOUT_MS");
  if (t != NULL && atoi(t) > 0)
    return (uint64_t)atoi(t);
#endif
  return WSB_UPGRADE_TIMEOUT_MS;
}

static void on_timeout(uv_timer_t *t) {
  struct master *m = t->data;
  char why[96];
  snprintf(why, sizeof(why), "the new master (pid %ld) was not ready within %llu ms: killed",
           (long)m->up.child, (unsigned long long)timeout_ms());
  finish(m, 0, 500, why);
}

/* Called with the child's exit; a refusal line has the last word when there was one. */
static void exited_before_ready(struct master *m) {
  struct wsb_upgrade *u = &m->up;
  char buf[128], why[320];
  snprintf(why, sizeof(why), "the new master (pid %ld) ended before it was ready: %s",
           (long)u->child, describe_exit(u->status, buf, sizeof(buf)));
  bool config = WIFEXITED(u->status) && WEXITSTATUS(u->status) == 1;
  finish(m, 0, config ? 422 : 500, why);
}

static void on_line(struct master *m, char *line) {
  struct wsb_upgrade *u = &m->up;
  long pid = 0;
  unsigned n = 0;
  if (sscanf(line, "READY %ld %u", &pid, &n) == 2 && pid == (long)u->child && n > 0) {
    u->new_workers = n;
    finish(m, (pid_t)pid, 200, NULL);
    return;
  }
  char why[320];
  if (strncmp(line, "REFUSE ", 7) == 0)
    snprintf(why, sizeof(why), "the new master refused: %.250s", line + 7);
  else
    snprintf(why, sizeof(why), "the new master answered \"%.200s\"", line);
  finish(m, 0, 422, why);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct master *m = h->data;
  struct wsb_upgrade *u = &m->up;
  *buf = uv_buf_init(u->line + u->len, (unsigned)(sizeof(u->line) - 1 - u->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct master *m = s->data;
  struct wsb_upgrade *u = &m->up;
  if (nread > 0) {
    u->len += (size_t)nread;
    u->line[u->len] = '\0';
    char *nl = strchr(u->line, '\n');
    if (nl != NULL || u->len == sizeof(u->line) - 1) {
      if (nl != NULL)
        *nl = '\0';
      on_line(m, u->line);
    }
    return;
  }
  if (nread == 0)
    return;
  /* End of file with no line: it died, or closed the pipe. Its exit status says more. */
  uv_read_stop(s);
  if (u->reaped)
    exited_before_ready(m);
  else if (waitpid(u->child, &u->status, WNOHANG) == u->child) {
    u->reaped = true;
    exited_before_ready(m);
  }
  /* else: SIGCHLD brings the status (wsb_upgrade_child_exited). */
}

void wsb_upgrade_child_exited(struct master *m, pid_t pid, int status) {
  struct wsb_upgrade *u = &m->up;
  if (pid != u->child || u->child <= 0)
    return;
  if (u->handed_to == pid) {
    /* The new master died while this one still drains: the listeners would be nobody's. A
       clean exit is an operator's stop, which this master does not undo. */
    char buf[128];
    u->child = u->handed_to = 0;
    uv_timer_stop(&u->timer);
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
      wsb_master_take_back(m, describe_exit(status, buf, sizeof(buf)));
    return;
  }
  u->reaped = true;
  u->status = status;
  if (u->pipe_open && !uv_is_active((uv_handle_t *)&u->ready))
    exited_before_ready(m); /* the pipe had ended first */
  else if (!u->pipe_open && u->handed_to == 0)
    u->child = 0; /* a refused one, killed: now collected */
}

int wsb_upgrade_start(struct master *m, uint64_t conn, bool from_api, char *why, size_t cap) {
  struct wsb_upgrade *u = &m->up;
  const char *by = from_api ? "POST /api/v1/upgrade" : "SIGUSR2";
  if (u->child > 0) {
    snprintf(why, cap, "an upgrade is already under way (new master pid %ld)", (long)u->child);
    wsb_log_warn("%s refused: %s", by, why);
    return -EBUSY;
  }
  if (m->stopping) {
    snprintf(why, cap, "this master is stopping");
    wsb_log_warn("%s refused: %s", by, why);
    return -ECANCELED;
  }
  int p[2];
  char *cmd = NULL, *spec = malloc(SPEC_MAX);
  int pass[2 + WSB_MAX_LISTEN * 1024];
  char **argv = read_cmdline(&cmd);
  char **env = spec != NULL ? child_environ(spec) : NULL;
  int rc = 0;
  if (argv == NULL || env == NULL || u->exe[0] == '\0') {
    snprintf(why, cap, "cannot read this process's program file or arguments");
    rc = -EIO;
  } else if (pipe2(p, O_CLOEXEC) != 0) {
    rc = -errno;
    snprintf(why, cap, "pipe: %s", strerror(errno));
  }
  pid_t pid = -1;
  if (rc == 0) {
    size_t k = describe(m, p[1], spec, pass, sizeof(pass) / sizeof(pass[0]));
    pid = fork();
    if (pid == 0)
      exec_child(u->exe, argv, env, pass, k);
    close(p[1]);
    if (pid < 0) {
      rc = -errno;
      snprintf(why, cap, "fork: %s", strerror(errno));
      close(p[0]);
    }
  }
  free(argv);
  free(cmd);
  free(env);
  free(spec);
  if (rc != 0) {
    wsb_log_error("%s: upgrade refused: %s", by, why);
    return rc;
  }
  if (u->timer.loop == NULL) {
    uv_timer_init(&m->loop, &u->timer);
    u->timer.data = m;
  }
  uv_pipe_init(&m->loop, &u->ready, 0);
  u->ready.data = m;
  u->pipe_open = true;
  uv_pipe_open(&u->ready, p[0]);
  uv_read_start((uv_stream_t *)&u->ready, on_alloc, on_read);
  u->child = pid;
  u->reaped = false;
  u->len = 0;
  u->waiting_api = from_api;
  u->conn = conn;
  uv_timer_start(&u->timer, on_timeout, timeout_ms(), 0);
  wsb_log_info("%s: starting %s (pid %ld); it has %llu ms to be ready", by, u->exe, (long)pid,
               (unsigned long long)timeout_ms());
  return 0;
}

static void drop_kept(struct wsb_upgrade *u) {
  for (size_t i = 0; u->kept_fds != NULL && i < (size_t)u->kept_workers * u->kept_naddr; i++)
    close(u->kept_fds[i]);
  free(u->kept_fds);
  u->kept_fds = NULL;
  if (u->kept_admin >= 0)
    close(u->kept_admin);
  u->kept_admin = -1;
}

/* The hand-over is long done: a listener kept after the new master closed its own (a reload to
   other addresses) would take connections into its queue that nobody accepts. */
static void on_keep_timeout(uv_timer_t *t) {
  struct master *m = t->data;
  drop_kept(&m->up);
}

void wsb_upgrade_keep(struct master *m) {
  struct wsb_upgrade *u = &m->up;
  size_t naddr = m->cfg->listen.naddress, k = 0;
  unsigned n = 0;
  for (unsigned s = 0; s < m->shm->nworkers; s++) {
    const struct wsb_worker_proc *w = &m->workers.procs[s];
    n += w->in_use && !w->retiring && w->generation == m->workers.generation &&
         w->listen_fds != NULL && w->nlisten == naddr;
  }
  uv_timer_start(&u->timer, on_keep_timeout, WSB_UPGRADE_TIMEOUT_MS, 0);
  u->kept_fds = malloc((size_t)n * naddr * sizeof(int));
  for (unsigned s = 0; s < m->shm->nworkers && u->kept_fds != NULL && k < (size_t)n * naddr; s++) {
    const struct wsb_worker_proc *w = &m->workers.procs[s];
    if (!w->in_use || w->retiring || w->generation != m->workers.generation ||
        w->listen_fds == NULL || w->nlisten != naddr)
      continue;
    for (size_t a = 0; a < naddr; a++)
      if ((u->kept_fds[k] = fcntl(w->listen_fds[a], F_DUPFD_CLOEXEC, FIRST_CHILD_FD)) >= 0)
        k++;
  }
  if (u->kept_fds != NULL && k != (size_t)n * naddr) {
    wsb_log_warn("upgrade: cannot keep copies of the listeners: should the new master die, "
                 "nobody serves them");
    for (size_t i = 0; i < k; i++)
      close(u->kept_fds[i]);
    free(u->kept_fds);
    u->kept_fds = NULL;
  }
  u->kept_workers = u->kept_fds != NULL ? n : 0;
  u->kept_naddr = naddr;
  if (m->admin.fd >= 0)
    u->kept_admin = fcntl(m->admin.fd, F_DUPFD_CLOEXEC, FIRST_CHILD_FD);
}

void wsb_upgrade_abort(struct master *m) {
  if (m->up.child > 0 && m->up.handed_to == 0 && m->up.pipe_open)
    finish(m, 0, 503, "this master is stopping");
}

void wsb_upgrade_close(struct wsb_upgrade *u) {
  if (u->pipe_open) {
    u->pipe_open = false;
    uv_close((uv_handle_t *)&u->ready, on_pipe_closed);
  }
  if (u->timer.loop != NULL && !uv_is_closing((uv_handle_t *)&u->timer))
    uv_close((uv_handle_t *)&u->timer, NULL);
  if (u->ready_fd >= 0) {
    close(u->ready_fd);
    u->ready_fd = -1;
  }
  drop_kept(u);
}
