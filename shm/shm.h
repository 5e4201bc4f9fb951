/* The shared-memory segment: the generation-published backend table and per-worker counters. */
#ifndef WSB_SHM_H
#define WSB_SHM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "addrs.h"
#include "config.h"
#include "tls_tickets.h"

#define WSB_SHM_MAX_BACKENDS    256
#define WSB_SHM_LIST_MAX        1024 /* comma lists copied from the configuration */
#define WSB_SHM_HEADER_NAME_MAX 128

/* One backend as workers see it. A backend keeps its slot while its name exists. */
struct wsb_shm_backend {
  char name[WSB_NAME_MAX];
  struct wsb_url url;
  struct sockaddr_storage addr; /* resolved by the master: workers never resolve names */
  socklen_t addr_len;
  uint32_t weight;
  uint32_t max_sessions; /* 0 = no limit */
  bool in_use;           /* the slot holds a backend in this generation */
  /* A removed backend whose slot is held until its last session ends (in_use is false): its
     name stays, for the logs of those sessions and for the name coming back to its slot. */
  bool retired;
  bool enabled;
  bool backup;
};

/* TLS as workers need it: file paths they load themselves, at start and when serial changes. */
struct wsb_shm_tls {
  char cert[WSB_SHM_LIST_MAX]; /* comma list, "" = the listeners speak plain ws */
  char key[WSB_SHM_LIST_MAX];
  uint32_t min_version;       /* 12 or 13 */
  bool verify;                /* [upstream] tls_verify */
  char ca_file[WSB_PATH_MAX]; /* "" = the system store */
  char client_cert[WSB_PATH_MAX];
  char client_key[WSB_PATH_MAX];
  uint64_t serial; /* bumped by every reload: workers load the files again */
};

/* What workers need of the configuration; published with the table so reloads reach them. */
struct wsb_shm_settings {
  uint64_t max_sessions;
  uint64_t handshake_timeout_ms;
  uint64_t max_header_bytes;
  uint64_t max_message_bytes;
  uint64_t idle_timeout_ms;
  uint64_t client_ping_ms;
  uint64_t connect_timeout_ms;
  uint64_t backend_ping_ms;
  uint64_t shutdown_timeout_ms;
  uint32_t algorithm;                          /* enum wsb_algorithm */
  uint32_t hash_key;                           /* enum wsb_hash_key */
  char hash_key_name[WSB_SHM_HEADER_NAME_MAX]; /* NAME of header:, cookie:, query: */
  uint64_t slow_start_ms;                      /* 0 = off */
  uint32_t log_level;                          /* enum wsb_log_level of the workers */
  bool failover;
  uint32_t breaker_threshold;
  uint64_t breaker_cooldown_ms;
  uint32_t max_failovers;
  uint64_t failover_buffer;
  uint64_t failover_buffer_total; /* per worker */
  uint16_t failover_codes[WSB_MAX_FAILOVER_CODES];
  uint32_t nfailover_codes;
  bool trust_forwarded;
  bool preserve_host;
  char path[WSB_PATH_MAX];                /* "" = every path */
  char allowed_origins[WSB_SHM_LIST_MAX]; /* comma list, "" = any */
  char pass_headers[WSB_SHM_LIST_MAX];    /* comma list */
  char block_headers[WSB_SHM_LIST_MAX];   /* comma list */
  char reconnect_header[WSB_SHM_HEADER_NAME_MAX];
  char access_log[WSB_PATH_MAX]; /* "" = off, "stderr", or a file path */
  struct wsb_shm_tls tls;
};

struct wsb_shm_table {
  struct wsb_shm_settings settings;
  uint32_t nslots; /* slots [0, nslots) may be in use */
  struct wsb_shm_backend backends[WSB_SHM_MAX_BACKENDS];
};

enum wsb_breaker_state { WSB_BREAKER_CLOSED, WSB_BREAKER_OPEN, WSB_BREAKER_TRIAL };
#define WSB_BREAKER_NAMES \
  { "closed", "open", "half_open" }

/* Handshake results, in the order of SPEC.md's wsbal_handshakes_total{result}. */
#define WSB_HANDSHAKE_RESULTS(XX)    \
  XX(OK, "ok")                       \
  XX(BAD_REQUEST, "bad_request")     \
  XX(FORBIDDEN, "forbidden")         \
  XX(NOT_FOUND, "not_found")         \
  XX(NO_BACKEND, "no_backend")       \
  XX(BACKEND_ERROR, "backend_error") \
  XX(TIMEOUT, "timeout")             \
  XX(LIMIT, "limit")

enum wsb_handshake_result {
#define WSB_XX(name, label) WSB_HS_##name,
  WSB_HANDSHAKE_RESULTS(WSB_XX)
#undef WSB_XX
      WSB_HS_COUNT
};

/* Why a TLS handshake failed, for wsbal_tls_handshake_errors_total{side,reason}. */
#define WSB_TLS_ERRORS(XX)       \
  XX(HTTP, "http_request")       \
  XX(PROTOCOL, "protocol")       \
  XX(VERSION, "version")         \
  XX(CIPHER, "no_shared_cipher") \
  XX(CERTIFICATE, "certificate") \
  XX(ALERT, "alert")             \
  XX(CLOSED, "closed")           \
  XX(TIMEOUT, "timeout")         \
  XX(OTHER, "other")

enum wsb_tls_error {
#define WSB_XX(name, label) WSB_TLS_ERR_##name,
  WSB_TLS_ERRORS(WSB_XX)
#undef WSB_XX
      WSB_TLS_ERR_COUNT
};

/* The two sides of wsbal a TLS handshake happens on. */
enum wsb_tls_side { WSB_TLS_CLIENT_SIDE, WSB_TLS_BACKEND_SIDE, WSB_TLS_SIDES };
#define WSB_TLS_SIDE_NAMES \
  { "client", "backend" }

enum wsb_direction { WSB_DIR_TO_BACKEND = 0, WSB_DIR_TO_CLIENT = 1, WSB_DIR_COUNT };

/* Why a session left its backend: a close frame with a failover code, a lost connection, no pong.
 */
enum wsb_failover_reason {
  WSB_FO_CLOSE,
  WSB_FO_LOST,
  WSB_FO_TIMEOUT,
  WSB_FO_ADMIN,
  WSB_FAILOVER_REASONS
};
#define WSB_FAILOVER_REASON_NAMES \
  { "close", "lost", "timeout", "admin" }

/* Upper bounds of wsbal_failover_seconds's buckets, in milliseconds (the last is +Inf). */
#define WSB_FAILOVER_BUCKET_MS \
  { 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000 }
#define WSB_FAILOVER_BUCKETS 12

/* Upper bounds of wsbal_backend_connect_seconds's buckets, in milliseconds (the last is +Inf). */
#define WSB_CONNECT_BUCKET_MS \
  { 1, 5, 10, 25, 50, 100, 250, 1000, 5000 }
#define WSB_CONNECT_BUCKETS 10

/*
 * One worker's counters. Every field has a single writer, that worker, so
 * relaxed atomic adds suffice and a worker dying mid-update breaks nothing.
 */
struct wsb_shm_worker {
  _Atomic int32_t pid;
  _Atomic uint64_t live;                           /* live sessions of this worker, all backends */
  _Atomic uint64_t sessions[WSB_SHM_MAX_BACKENDS]; /* live, per backend slot */
  _Atomic uint64_t sessions_total[WSB_SHM_MAX_BACKENDS]; /* started, per backend slot */
  _Atomic uint64_t handshakes[WSB_HS_COUNT];
  _Atomic uint64_t messages[WSB_DIR_COUNT];
  _Atomic uint64_t bytes[WSB_DIR_COUNT];
  _Atomic uint64_t failovers[WSB_SHM_MAX_BACKENDS][WSB_FAILOVER_REASONS]; /* moves away */
  _Atomic uint64_t failover_failures;                      /* sessions closed with 1013 */
  _Atomic uint64_t failover_buckets[WSB_FAILOVER_BUCKETS]; /* moves that took <= each bound */
  _Atomic uint64_t failover_us;                            /* their total time */
  _Atomic uint64_t failover_count;
  /* connect + upgrade of a backend, successful ones, per slot */
  _Atomic uint64_t connect_buckets[WSB_SHM_MAX_BACKENDS][WSB_CONNECT_BUCKETS];
  _Atomic uint64_t connect_us[WSB_SHM_MAX_BACKENDS];
  _Atomic uint64_t connect_count[WSB_SHM_MAX_BACKENDS];
  _Atomic uint64_t tls_handshakes[WSB_TLS_SIDES][2]; /* completed: [side][resumed] */
  _Atomic uint64_t tls_errors[WSB_TLS_SIDES][WSB_TLS_ERR_COUNT];
  _Atomic uint64_t access_log_errors;     /* opens of the access log that failed */
  _Atomic uint64_t failover_buffer_bytes; /* gauge: allocated to its replay windows now */
};

/*
 * The connection count a backend last reported (load_report_path). Written by the master only,
 * as a sequence lock: seq is odd while it writes, and a reader whose seq changed reads again.
 * Readers never hold it, so no worker can die holding anything.
 */
struct wsb_shm_load_report {
  _Atomic uint64_t seq;
  _Atomic uint64_t count;  /* connections the backend reported */
  _Atomic uint64_t at_ms;  /* wsb_shm_now_ms() when it arrived; 0 = no report */
  _Atomic uint64_t opened; /* this instance's sessions_total on the slot at that time */
};

/*
 * The TLS session ticket keys (current and previous) every worker encrypts and decrypts
 * tickets with, so a session resumes whichever worker accepts it and every worker rotates at
 * the same moment. Written by the master only (master/tickets.c), as a sequence lock of atomic
 * words like the load reports; read by the workers at each ticket.
 */
#define WSB_SHM_TICKET_WORDS ((2 * WSB_TICKET_KEY_LEN) / 8 + 1) /* both keys, has_previous */
struct wsb_shm_tickets {
  _Atomic uint64_t seq;
  _Atomic uint64_t words[WSB_SHM_TICKET_WORDS];
};

struct wsb_shm {
  uint32_t magic;
  uint32_t nworkers;           /* worker slots mapped */
  _Atomic uint32_t slots_used; /* slots [0, slots_used) have been given to a worker */
  _Atomic uint64_t generation; /* tables[generation & 1] is the published one */
  struct wsb_shm_table tables[2];
  _Atomic uint8_t backend_up[WSB_SHM_MAX_BACKENDS]; /* written by the master's health checks */
  /* The passive breaker of each backend slot. Any worker updates these with atomic operations
     only (no lock a dying worker could hold): see worker/breaker.c. */
  _Atomic uint32_t breaker_failures[WSB_SHM_MAX_BACKENDS]; /* consecutive connect failures */
  _Atomic uint32_t breaker_state[WSB_SHM_MAX_BACKENDS];    /* enum wsb_breaker_state */
  _Atomic uint64_t breaker_until_ms[WSB_SHM_MAX_BACKENDS]; /* end of the cooldown or trial */
  /* When each slot's slow start began (wsb_shm_now_ms): the master sets it when a backend is
     added or enabled, or comes up (wsb_shm_backend_set_up); a worker, when it closes a breaker.
     0 = never, full weight. Plain stores of a time: a writer dying leaves nothing half done. */
  _Atomic uint64_t ramp_since_ms[WSB_SHM_MAX_BACKENDS];
  /* round_robin's shared tickets, primaries and backups: see worker/select_round_robin.c. */
  _Atomic uint64_t rr_tickets[2];
  _Atomic uint64_t reloads_ok; /* written by the master */
  _Atomic uint64_t worker_restarts;
  _Atomic uint64_t reloads_error;
  struct wsb_shm_load_report load[WSB_SHM_MAX_BACKENDS]; /* master/health.c writes them */
  _Atomic uint64_t load_report_ttl_ms;                   /* reports older than this are ignored */
  struct wsb_shm_tickets tickets;
  struct wsb_shm_worker workers[];
};

/* Maps a segment with nworkers worker slots, shared with every process forked afterwards. NULL on
 * failure. */
struct wsb_shm *wsb_shm_create(unsigned nworkers);
void wsb_shm_destroy(struct wsb_shm *shm);

/* Master: copies t into the inactive table, then flips the generation (release). */
void wsb_shm_publish(struct wsb_shm *shm, const struct wsb_shm_table *t);

/* The published generation (acquire); a reader whose copy is of an older one reads again. */
uint64_t wsb_shm_generation(const struct wsb_shm *shm);

/* Reader: copies the published table into out, retrying a torn read. Returns its generation. */
uint64_t wsb_shm_read(const struct wsb_shm *shm, struct wsb_shm_table *out);

/* Live sessions on one backend slot, summed over workers. */
uint64_t wsb_shm_backend_live(const struct wsb_shm *shm, uint32_t slot);

/* Sessions ever started on one backend slot by this instance, summed over workers. */
uint64_t wsb_shm_backend_opened(const struct wsb_shm *shm, uint32_t slot);

/*
 * The load to balance a backend slot by: the connections it last reported plus the sessions
 * this instance opened on it since, when that report is younger than load_report_ttl_ms at
 * now_ms (wsb_shm_now_ms()); otherwise this instance's live sessions on it.
 */
uint64_t wsb_shm_backend_load(const struct wsb_shm *shm, uint32_t slot, uint64_t now_ms);

/* Master: records a report of count connections received at now_ms, or withdraws it. */
void wsb_shm_load_set(struct wsb_shm *shm, uint32_t slot, uint64_t count, uint64_t now_ms);
void wsb_shm_load_clear(struct wsb_shm *shm, uint32_t slot);

/* Master: publishes the ticket keys every worker uses from now on. */
void wsb_shm_tickets_set(struct wsb_shm *shm, const struct wsb_ticket_keys *k);

/* Worker: the published ticket keys. false (out zeroed: no key matches, no ticket is made)
   when none is published or a writer died mid-write. */
bool wsb_shm_tickets_get(const struct wsb_shm *shm, struct wsb_ticket_keys *out);

/* Live sessions of every worker together. */
uint64_t wsb_shm_live(const struct wsb_shm *shm);

/* Milliseconds of CLOCK_MONOTONIC: one clock for every process on the host (libuv's uv_now
   is the same clock, possibly coarse and cached per loop turn). Never 0. */
uint64_t wsb_shm_now_ms(void);

/* Master (health checks): publishes whether a slot is up; a 0 -> 1 change starts its slow
   start at now_ms (wsb_shm_now_ms()). */
void wsb_shm_backend_set_up(struct wsb_shm *shm, uint32_t slot, bool up, uint64_t now_ms);

/* Master, after a worker died: its live counts go to zero; its totals stay. */
void wsb_shm_worker_forget(struct wsb_shm *shm, unsigned worker);

/* Master, before giving a slot to a worker: readers sum counters up to the highest slot used. */
void wsb_shm_slot_used(struct wsb_shm *shm, unsigned worker);

/* Relaxed single-writer counter updates, for the worker that owns w. */
static inline void wsb_shm_add(_Atomic uint64_t *counter, uint64_t n) {
  atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}
static inline void wsb_shm_sub(_Atomic uint64_t *counter, uint64_t n) {
  atomic_fetch_sub_explicit(counter, n, memory_order_relaxed);
}

/*
 * Builds a table from a configuration and the addresses each of its backends
 * resolved to (addrs[i] for cfg->backends[i]; the master resolves, this never
 * does): one backend per address, named NAME for a single address and
 * NAME#ADDR for several. Keeps each backend in the slot its name has in prev
 * (NULL at start-up), in use or retired. A slot no backend of t takes but
 * that has live sessions in shm is held (retired, with the name prev gave
 * it), however many generations ago its backend went; a slot prev had in use
 * is given to another backend only when no other slot is free. Returns 0, or
 * a negative code with a message in err naming the backend.
 */
int wsb_shm_table_build(struct wsb_shm_table *t, const struct wsb_config *cfg,
                        const struct wsb_addrs *addrs, const struct wsb_shm_table *prev,
                        const struct wsb_shm *shm, char *err, size_t errlen);

#endif
