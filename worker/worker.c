/* A worker process: its own loop, its slot's listening sockets, control socket and sessions. */
#include "worker.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "compress.h"
#include "control.h"
#include "handover.h"
#include "http_pool.h"
#include "http_proxy.h"
#include "errors.h"
#include "log.h"
#include "tls_worker.h"
#include "uring.h"

#define TRIM_INTERVAL_MS 5000

static void log_setup(const struct wsb_worker *w) {
  wsb_log_setup((enum wsb_log_level)w->table->settings.log_level,
                (enum wsb_log_format)w->table->settings.log_format, "worker", (int)w->slot);
}

void wsb_worker_refresh_table(struct wsb_worker *w) {
  if (wsb_shm_generation(w->shm) == w->table_generation)
    return;
  w->table_generation = wsb_shm_read(w->shm, w->table);
  log_setup(w);
  if (strcmp(w->access_path, w->table->settings.access_log) != 0)
    wsb_access_log_reopen(w);
  wsb_tls_worker_refresh(w);
}

uint64_t wsb_worker_random(struct wsb_worker *w) {
  uint64_t x = w->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return w->rng = x;
}

static void on_connection(uv_stream_t *listener, int status) {
  struct wsb_worker *w = listener->data;
  if (status < 0) {
    wsb_log_warn("accept: %s", wsb_strerror(status));
    return;
  }
  wsb_session_accept(w, listener);
}

static void close_listeners(struct wsb_worker *w) {
  for (size_t i = 0; i < w->nlisten; i++)
    if (!uv_is_closing((uv_handle_t *)&w->listeners[i]))
      uv_close((uv_handle_t *)&w->listeners[i], NULL);
}

/* The last step: once no session is left, closing these ends the loop. */
static void close_worker_handles(struct wsb_worker *w) {
  if (w->closing)
    return;
  w->closing = true;
  /* Closing the signal handles restores the default actions, under which a late stop signal
     (a second stop, or the master's stop reaching a retired worker) would turn this clean exit
     into a death by signal. Held blocked until they are ignored, none can land in between. */
  sigset_t stop_signals;
  wsb_worker_signal_set(&stop_signals);
  sigprocmask(SIG_BLOCK, &stop_signals, NULL);
  close_listeners(w);
  wsb_handover_close(w);
  uv_close((uv_handle_t *)&w->control, NULL);
  uv_close((uv_handle_t *)&w->sigterm, NULL);
  uv_close((uv_handle_t *)&w->sigint, NULL);
  uv_close((uv_handle_t *)&w->sigusr1, NULL);
  uv_close((uv_handle_t *)&w->drain_tick, NULL);
  uv_close((uv_handle_t *)&w->trim_timer, NULL);
  wsb_tls_worker_close(w);
  wsb_uring_close(w);
  wsb_access_log_close(w);
  uv_close((uv_handle_t *)&w->drain_timer, NULL);
  signal(SIGTERM, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  signal(SIGUSR1, SIG_IGN);
  sigprocmask(SIG_UNBLOCK, &stop_signals, NULL);
}

void wsb_worker_session_ended(struct wsb_worker *w) {
  if (w->draining && wsb_list_empty(&w->sessions))
    close_worker_handles(w);
}

/* A burst (a killed worker's sessions reconnecting here) frees megabytes of handshake buffers
   within seconds, which glibc keeps resident: see common/heap_trim.c. */
static void on_trim_timer(uv_timer_t *t) {
  struct wsb_worker *w = t->data;
  wsb_heap_trim_tick(&w->heap_trim);
}

static void on_drain_timeout(uv_timer_t *t) {
  struct wsb_worker *w = t->data;
  wsb_log_info("shutdown_timeout reached: closing the remaining sessions with 1001");
  wsb_session_close_all(w);
}

/* Stops accepting; sessions go on until they end, or until shutdown_timeout when graceful. */
static void drain(struct wsb_worker *w, bool graceful, const char *why) {
  if (!w->draining) {
    w->draining = true;
    close_listeners(w);
    wsb_worker_refresh_table(w); /* shutdown_timeout as of the latest reload */
    wsb_log_debug("%s: %s", why, graceful ? "draining" : "closing every session");
  }
  if (!graceful)
    wsb_session_close_all(w);
  else
    wsb_http_close_idle(w);
  if (graceful && !wsb_list_empty(&w->sessions) && !uv_is_active((uv_handle_t *)&w->drain_timer))
    uv_timer_start(&w->drain_timer, on_drain_timeout, w->table->settings.shutdown_timeout_ms, 0);
  wsb_worker_session_ended(w);
}

static void on_reopen(uv_signal_t *h, int signum) {
  struct wsb_worker *w = h->data;
  /* An idle worker has not read the latest reload yet: its log format and access log path. */
  wsb_worker_refresh_table(w);
  if (wsb_access_log_reopen(w) == 0)
    wsb_log_info("access log reopened%s%s", w->access_path[0] ? ": " : " (off)", w->access_path);
}

/* SIGTERM drains gracefully (the master's stop); SIGINT (a second stop, or Ctrl-C) closes now. */
static void on_signal(uv_signal_t *h, int signum) {
  drain(h->data, signum == SIGTERM, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void control_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct wsb_worker *w = h->data;
  buf->base = (char *)w->read_buffer;
  buf->len = sizeof(w->read_buffer);
}

static void on_control_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  struct wsb_worker *w = stream->data;
  if (nread < 0) {
    /* EOF on the control socket: the master is gone, and nobody supervises us. */
    wsb_log_error("master gone: draining");
    uv_read_stop(stream);
    drain(w, true, "master gone");
    return;
  }
  if (nread == 0)
    return;
  /* One record per datagram; anything else means master and worker disagree: fatal. */
  if (wsb_control_check(buf->base, (size_t)nread) != 0)
    wsb_fatal(70, "control socket: malformed message of %zd bytes", nread);
  struct wsb_control_msg msg;
  memcpy(&msg, buf->base, sizeof(msg));
  wsb_worker_command(w, &msg);
}

/* The master forks us with SIGTERM and SIGINT blocked; they are ours once handled. */
static void unblock_stop_signals(void) {
  sigset_t stop_signals;
  wsb_worker_signal_set(&stop_signals);
  sigprocmask(SIG_UNBLOCK, &stop_signals, NULL);
}

static int open_listeners(struct wsb_worker *w, const struct wsb_worker_start *start) {
  size_t n = start->nlisten < WSB_MAX_LISTENERS ? start->nlisten : WSB_MAX_LISTENERS;
  for (size_t i = 0; i < n; i++) {
    uv_tcp_t *t = &w->listeners[i];
    uv_tcp_init(&w->loop, t);
    t->data = w;
    w->nlisten = i + 1; /* counts initialised handles, so a failure here closes only those */
    int rc = uv_tcp_open(t, start->listen_fds[i]);
    /* The sockets it accepts inherit TCP_NODELAY from it (the master sets it before listen):
       one system call here instead of one per connection. Set here again for a listener an
       older master handed over, whose queue may hold a few connections without it. */
    if (rc == 0)
      rc = uv_tcp_nodelay(t, 1);
    if (rc == 0)
      rc = uv_listen((uv_stream_t *)t, 1024, on_connection);
    if (rc != 0) {
      wsb_log_error("listener %zu: %s", i, wsb_strerror(rc));
      return rc;
    }
  }
  return 0;
}

int wsb_worker_main(const struct wsb_worker_start *start) {
  wsb_log_setup(start->log_level, start->log_format, "worker", (int)start->slot);
  signal(SIGPIPE, SIG_IGN);

  struct wsb_worker *w = calloc(1, sizeof(*w));
  if (w == NULL)
    return 3;
  w->table = malloc(sizeof(*w->table));
  if (w->table == NULL || uv_loop_init(&w->loop) != 0) {
    free(w->table);
    free(w);
    return 3;
  }
  w->slot = start->slot;
  w->incarnation = start->incarnation;
  w->shm = start->shm;
  w->stats = &start->shm->workers[start->slot];
  atomic_store_explicit(&w->stats->pid, (int32_t)getpid(), memory_order_relaxed);
  if (RAND_bytes((unsigned char *)&w->rng, sizeof(w->rng)) != 1 || w->rng == 0)
    w->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
  w->table_generation = wsb_shm_read(w->shm, w->table);
  log_setup(w); /* a reload may have come between the fork and this read */
  struct timeval tv;
  gettimeofday(&tv, NULL);
  w->unix_offset_ms = (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000 - uv_now(&w->loop);
  wsb_access_log_reopen(w);
#ifdef WSB_FAULT_INJECTION
  const char *fail = getenv("WSB_TEST_FAIL_ACCEPT");
  w->fail_accepts = fail != NULL ? (unsigned)strtoul(fail, NULL, 10) : 0;
#endif

  int status = 0;
  if (wsb_tls_worker_start(w) != 0) {
    wsb_log_error("cannot set up TLS");
    status = 3;
  }
  if (status == 0)
    wsb_uring_start(w);
  if (status == 0 && open_listeners(w, start) != 0)
    status = 3;
#ifdef WSB_FAULT_INJECTION
  /* Tests: a worker started while the file WSB_TEST_SLOW_HANDOVER names exists opens its
     hand-over socket as many ms late as the file says (test_upgrade.py: READY waits for it). */
  const char *slow = getenv("WSB_TEST_SLOW_HANDOVER");
  FILE *slow_f = slow != NULL ? fopen(slow, "r") : NULL;
  unsigned slow_ms = 0;
  if (slow_f != NULL && fscanf(slow_f, "%u", &slow_ms) == 1)
    nanosleep(&(struct timespec){slow_ms / 1000, (long)(slow_ms % 1000) * 1000000}, NULL);
  if (slow_f != NULL)
    fclose(slow_f);
#endif
  /* A later binary upgrade's old workers hand their sessions in here. */
  if (status == 0 && wsb_handover_listen(w) != 0)
    wsb_log_warn("handover socket: sessions of an older wsbal cannot come to this worker");
  uv_pipe_init(&w->loop, &w->control, 0);
  w->control.data = w;
  uv_signal_init(&w->loop, &w->sigterm);
  uv_signal_init(&w->loop, &w->sigint);
  uv_timer_init(&w->loop, &w->drain_timer);
  uv_signal_init(&w->loop, &w->sigusr1);
  uv_timer_init(&w->loop, &w->drain_tick);
  uv_timer_init(&w->loop, &w->trim_timer);
  w->trim_timer.data = w;
  uv_timer_start(&w->trim_timer, on_trim_timer, TRIM_INTERVAL_MS, TRIM_INTERVAL_MS);
  w->drain_tick.data = w;
  w->sigterm.data = w->sigint.data = w->drain_timer.data = w->sigusr1.data = w;
  if (status == 0 && uv_pipe_open(&w->control, start->control_fd) == 0) {
    uv_read_start((uv_stream_t *)&w->control, control_alloc, on_control_read);
    uv_signal_start(&w->sigterm, on_signal, SIGTERM);
    uv_signal_start(&w->sigint, on_signal, SIGINT);
    uv_signal_start(&w->sigusr1, on_reopen, SIGUSR1);
    unblock_stop_signals();
    wsb_log_debug("started");
    if (wsb_uring_run(w) != 0)
      uv_run(&w->loop, UV_RUN_DEFAULT);
  } else {
    status = 3;
    unblock_stop_signals();
    close_worker_handles(w);
    uv_run(&w->loop, UV_RUN_DEFAULT);
  }
  if (uv_loop_close(&w->loop) != 0)
    wsb_log_error("event loop closed with handles still open");
  wsb_select_release(w);
  wsb_http_pool_free(w);
  wsb_compress_worker_free(w);
  wsb_tls_worker_free(w);
  wsb_uring_free(w);
  free(w->handover);
  free(w->table);
  free(w);
  return status;
}
