/* A worker process's context and what its modules share: breaker, selection, access log. */
#ifndef WSB_WORKER_H
#define WSB_WORKER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "frame.h"
#include "heap_trim.h"
#include "http.h"
#include "list.h"
#include "log.h"
#include "log_limit.h"
#include "proc.h"
#include "select.h"
#include "shm.h"
#include "slots.h"

#define WSB_READ_BUFFER_SIZE (64 * 1024)
#define WSB_MAX_LISTENERS    16

struct wsb_session;
struct wsb_hash_key_source;
struct wsb_tls_worker;
struct wsb_uring;

struct wsb_worker {
  uv_loop_t loop;
  unsigned slot;
  uint32_t incarnation;
  struct wsb_shm *shm;
  struct wsb_shm_worker *stats; /* this worker's counters in the segment */
  struct wsb_shm_table *table;  /* private copy of the published table */
  uint64_t table_generation;
  /* Per pool slot: its algorithm and its tables, of balancer_generation. */
  struct wsb_selector selectors[WSB_SHM_MAX_POOLS];
  uint64_t balancer_generation[WSB_SHM_MAX_POOLS];
  uv_tcp_t listeners[WSB_MAX_LISTENERS];
  size_t nlisten;
  uv_pipe_t control;
  uv_signal_t sigterm;
  uv_signal_t sigint;
  uv_timer_t drain_timer; /* shutdown_timeout of a graceful stop */
  uv_signal_t sigusr1;    /* reopen the access log */
  uv_timer_t drain_tick;  /* paces moving a drained backend's sessions */
  uv_timer_t trim_timer;  /* gives the heap a burst freed back to the kernel */
  struct wsb_heap_trim heap_trim;
  struct wsb_slot_set drain_slots;
  struct wsb_log_file *access_log;                /* NULL when off */
  struct wsb_log_limit log_limits[WSB_LOG_KINDS]; /* log_rate_limit's buckets (log_event.c) */
  char access_path[WSB_PATH_MAX];
  bool draining;                   /* no longer accepting; exits when the last session ends */
  bool closing;                    /* every handle of the worker is closing */
  uint64_t next_session;           /* sequence for session ids */
  uint64_t rng;                    /* xorshift state: tie-breaks and masking keys */
  uint64_t unix_offset_ms;         /* wall clock minus loop time at start: stable start times */
  struct wsb_tls_worker *tls;      /* TLS contexts and buffers (tls_worker.c) */
  struct wsb_http_pool *http_pool; /* idle plain HTTP backend connections (http_proxy.c) */
  struct wsb_handover *handover;   /* binary upgrade: sessions in or out (handover.c) */
  struct wsb_pmd_worker *pmd;      /* shared zlib streams of compression (compress.c) */
  struct wsb_uring *uring;         /* plain sessions' io_uring (uring.c); NULL: epoll */
  struct wsb_list sessions;        /* every live session (link), newest first: stop, admin API */
  /* Failover replay windows (failover.c): bytes allocated to them all, and the sessions that
     hold one (window_link), oldest first, for failover_buffer_total. */
  uint64_t replay_bytes;
  struct wsb_list windows;
  /* A connection the listener had ready when no session could be allocated is accepted here
     and closed, or libuv would stop watching the listener for good (session.c). */
  uv_tcp_t spare;
  bool spare_busy;                     /* spare is closing */
  bool accept_owed[WSB_MAX_LISTENERS]; /* a listener waits for spare to be free */
  unsigned fail_accepts;               /* debug builds: WSB_TEST_FAIL_ACCEPT */
  /* Every read lands here first; only what a peer did not take is copied. */
  uint8_t read_buffer[WSB_READ_BUFFER_SIZE];
};

/* uv_buf_t has no const form; libuv only reads what it is given to write. */
static inline uv_buf_t wsb_write_buf(const void *p, size_t len) {
  return uv_buf_init((char *)(uintptr_t)p, (unsigned)len);
}

/* Refreshes w->table when the master published a new generation. */
void wsb_worker_refresh_table(struct wsb_worker *w);

/* A fast non-cryptographic random number (tie-breaks, masking keys: RFC 6455 10.3 wants them
   unpredictable to scripts, not to the kernel). */
uint64_t wsb_worker_random(struct wsb_worker *w);

/* The breaker (breaker.c): may a new connection go to slot (claims the trial when it is due)?
   And the outcome of a connect and upgrade. */
bool wsb_breaker_allows(struct wsb_worker *w, uint32_t slot);
void wsb_breaker_failure(struct wsb_worker *w, uint32_t slot);
void wsb_breaker_success(struct wsb_worker *w, uint32_t slot);
/* The backend answered a request with an HTTP status: no verdict either way (breaker.c). */
void wsb_breaker_no_verdict(struct wsb_worker *w, uint32_t slot);

/* Chooses a backend slot of pool (a pool slot of the table) by the pool's algorithm among those
   not in excluded; -1 when none is available. src is the request the hash algorithm takes its
   key from. The handshake asks it for the pool its route picked (WSB_SHM_DEFAULT_POOL without
   routes), a failover for the session's pool. */
int wsb_select_backend(struct wsb_worker *w, uint32_t pool, const struct wsb_hash_key_source *src,
                       const struct wsb_slot_set *excluded);
/* The same, least_conn choosing kept (a slot, or -1) among equally loaded backends. */
int wsb_select_backend_near(struct wsb_worker *w, uint32_t pool,
                            const struct wsb_hash_key_source *src,
                            const struct wsb_slot_set *excluded, int kept);
/* Frees the algorithm's tables (at exit). */
void wsb_select_release(struct wsb_worker *w);

/* The access log (access_log.c): opened per the table's settings, one line per session.
   Returns 0, or a negative errno when the file could not be opened (the one open before, if
   any, stays in use). */
int wsb_access_log_reopen(struct wsb_worker *w);
/* Lets go of the open log file; it closes once its last pending write is done. */
void wsb_access_log_close(struct wsb_worker *w);
void wsb_access_log_session(struct wsb_worker *w, const struct wsb_session *s);

/* One plain HTTP request, for its access log line. */
struct wsb_http_log {
  const char *method;
  struct wsb_slice path, host, user_agent;
  int status; /* 499: the client left before its answer was complete */
  uint64_t duration_ms;
  uint64_t bytes_in; /* request body bytes, as framed on the wire */
  uint64_t bytes_out;
  int backend_slot;  /* -1: none (wsbal answered itself) */
  const char *route; /* the route it took, "default" for none; "" when refused before */
};
void wsb_access_log_http(struct wsb_worker *w, const struct wsb_session *s,
                         const struct wsb_http_log *e);

/* The access log's line when a session has its 101 (access_log_start). */
void wsb_access_log_start(struct wsb_worker *w, const struct wsb_session *s);

/* An info line of a kind a peer can cause at will (log_event.c), under log_rate_limit: dropped
   past it and counted; the next line let through says how many went before it. */
void wsb_worker_log_event(struct wsb_worker *w, enum wsb_log_kind kind,
                          const struct wsb_log_field *fields, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

struct wsb_control_msg;
/* Carries out one command of the master (commands.c). */
void wsb_worker_command(struct wsb_worker *w, const struct wsb_control_msg *m);

/* Called by the session code after a session has left w->sessions. */
void wsb_worker_session_ended(struct wsb_worker *w);

/* Session entry points (session.c). */
void wsb_session_accept(struct wsb_worker *w, uv_stream_t *listener);
/* Ends every session now: close 1001 to both sides of relaying ones, then their TCP connections. */
void wsb_session_close_all(struct wsb_worker *w);

#endif
