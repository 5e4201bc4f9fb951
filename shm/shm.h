/* The shared-memory segment: the generation-published backend table and per-worker counters. */
#ifndef WSB_SHM_H
#define WSB_SHM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/types.h>

#include "addrs.h"
#include "config.h"
#include "route.h"
#include "tls_tickets.h"

#define WSB_SHM_MAX_BACKENDS    256
#define WSB_SHM_LIST_MAX        1024 /* comma lists copied from the configuration */
#define WSB_SHM_HEADER_NAME_MAX 128
#define WSB_SHM_MAX_POOLS       WSB_MAX_POOLS
#define WSB_SHM_DEFAULT_POOL    0 /* "default" always has pool slot 0 */

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
  uint32_t pool; /* its pool's slot in the table's pools */
};

/*
 * Every setting workers see, declared once: XX(copy, type, section, prefix, key, suffix).
 *
 * A setting has one name, its INI key's, with its unit where the key has none (suffix: _ms for
 * durations; hash_key's NAME part is hash_key_name). The configuration's field is
 * cfg->section.<key><suffix>, the segment's is <prefix><key><suffix>: the segment is flat, so the
 * one key two sections share (ping_interval) takes its section as prefix there. The names are
 * pasted together, so they cannot drift apart.
 *
 * copy says how wsb_shm_table_build copies the value into the segment, and type what the segment
 * holds:
 *   VAL   assigned: numbers, booleans, enums (as uint32_t) and struct wsb_close_codes;
 *   STR   a char * of the configuration (NULL = "") into char[type], refused when too long;
 *   LIST  a struct wsb_strlist joined with commas into char[type], refused when too long.
 * The configuration's own fields are declared in config.h, not generated from this list: the
 * loader, the master's checks and wsbal -t need what the parser makes (a string that may be
 * absent, a list of items to validate and to load TLS files from), while workers need fixed-size
 * flat copies they can read from the segment by value. This list is where the two meet, and
 * test_table checks that every entry carries a value from an INI file into the segment.
 */
#define WSB_WORKER_SETTINGS(XX)                                    \
  XX(VAL, uint32_t, wsbal, , log_level, )                          \
  XX(VAL, uint32_t, wsbal, , log_format, )                         \
  XX(STR, WSB_PATH_MAX, wsbal, , access_log, )                     \
  XX(VAL, bool, wsbal, , access_log_start, )                       \
  XX(VAL, uint32_t, wsbal, , log_rate_limit, )                     \
  XX(VAL, uint64_t, wsbal, , max_sessions, )                       \
  XX(VAL, uint64_t, wsbal, , shutdown_timeout, _ms)                \
  XX(LIST, WSB_SHM_LIST_MAX, listen, , tls_cert, )                 \
  XX(LIST, WSB_SHM_LIST_MAX, listen, , tls_key, )                  \
  XX(VAL, uint32_t, listen, , tls_min_version, )                   \
  XX(STR, WSB_PATH_MAX, listen, , path, )                          \
  XX(VAL, uint64_t, listen, , handshake_timeout, _ms)              \
  XX(VAL, uint64_t, listen, , max_header_bytes, )                  \
  XX(VAL, uint64_t, listen, , max_message_bytes, )                 \
  XX(VAL, uint64_t, listen, , idle_timeout, _ms)                   \
  XX(VAL, uint64_t, listen, listen_, ping_interval, _ms)           \
  XX(VAL, struct wsb_cidr_set, listen, , trust_forwarded, )        \
  XX(VAL, uint32_t, listen, , proxy_protocol, )                    \
  XX(LIST, WSB_SHM_LIST_MAX, listen, , allowed_origins, )          \
  XX(VAL, uint32_t, listen, , http, )                              \
  XX(VAL, uint64_t, listen, , max_body_bytes, )                    \
  XX(VAL, bool, listen, , compression, )                           \
  XX(VAL, uint32_t, listen, , compression_level, )                 \
  XX(VAL, uint64_t, listen, , compression_min_bytes, )             \
  XX(VAL, bool, listen, , compression_context_takeover, )          \
  XX(VAL, uint32_t, upstream, , algorithm, )                       \
  XX(VAL, uint32_t, upstream, , hash_key, )                        \
  XX(STR, WSB_SHM_HEADER_NAME_MAX, upstream, , hash_key, _name)    \
  XX(VAL, uint64_t, upstream, , connect_timeout, _ms)              \
  XX(VAL, bool, upstream, , failover, )                            \
  XX(VAL, struct wsb_close_codes, upstream, , failover_codes, )    \
  XX(VAL, uint32_t, upstream, , max_failovers, )                   \
  XX(VAL, uint64_t, upstream, , failover_buffer, )                 \
  XX(VAL, uint64_t, upstream, , failover_buffer_total, )           \
  XX(STR, WSB_SHM_HEADER_NAME_MAX, upstream, , reconnect_header, ) \
  XX(LIST, WSB_SHM_LIST_MAX, upstream, , pass_headers, )           \
  XX(LIST, WSB_SHM_LIST_MAX, upstream, , block_headers, )          \
  XX(VAL, bool, upstream, , preserve_host, )                       \
  XX(VAL, uint32_t, upstream, , send_proxy_protocol, )             \
  XX(VAL, uint64_t, upstream, upstream_, ping_interval, _ms)       \
  XX(VAL, uint32_t, upstream, , breaker_threshold, )               \
  XX(VAL, uint64_t, upstream, , breaker_cooldown, _ms)             \
  XX(VAL, bool, upstream, , tls_verify, )                          \
  XX(STR, WSB_PATH_MAX, upstream, , tls_ca_file, )                 \
  XX(STR, WSB_PATH_MAX, upstream, , tls_client_cert, )             \
  XX(STR, WSB_PATH_MAX, upstream, , tls_client_key, )              \
  XX(VAL, uint64_t, upstream, , slow_start, _ms)                   \
  XX(VAL, uint32_t, upstream, , http_keepalive, )                  \
  XX(VAL, uint64_t, upstream, , http_timeout, _ms)

/* The segment's field of one setting of WSB_WORKER_SETTINGS. */
#define WSB_SHM_SETTING_FIELD(copy, type, section, prefix, key, suffix) \
  WSB_SHM_SETTING_##copy(type, prefix##key##suffix)
#define WSB_SHM_SETTING_VAL(type, name)  type name;
#define WSB_SHM_SETTING_STR(size, name)  char name[size];
#define WSB_SHM_SETTING_LIST(size, name) char name[size];

/* What workers need of the configuration; published with the table so reloads reach them. */
struct wsb_shm_settings {
  WSB_WORKER_SETTINGS(WSB_SHM_SETTING_FIELD)
  /* Not a setting: bumped by every reload, so workers load the TLS files again. */
  uint64_t tls_serial;
};

/*
 * A pool as workers see it. A pool keeps its slot while its name exists, as a backend does, so
 * a live session's pool (a slot) means the same pool across reloads; "default" is slot 0.
 */
struct wsb_shm_pool {
  char name[WSB_SECTION_NAME_MAX];
  bool in_use;
  /* The table's settings with the pool's [upstream] keys: what a session of the pool reads
     (tls_serial aside: the table's is the one bumped by a reload). */
  struct wsb_shm_settings settings;
};

struct wsb_shm_table {
  struct wsb_shm_settings settings; /* [upstream]'s, and the process-wide keys */
  uint32_t nslots;                  /* slots [0, nslots) may be in use */
  uint32_t npools;                  /* pool slots [0, npools) may be in use */
  struct wsb_shm_backend backends[WSB_SHM_MAX_BACKENDS];
  struct wsb_shm_pool pools[WSB_SHM_MAX_POOLS];
  struct wsb_route_table routes; /* [route:NAME], compiled */
};

/* The settings a session of pool reads; the default pool's for a slot not in use. */
static inline const struct wsb_shm_settings *wsb_shm_pool_settings(const struct wsb_shm_table *t,
                                                                   uint32_t pool) {
  if (pool >= t->npools || !t->pools[pool].in_use)
    pool = WSB_SHM_DEFAULT_POOL;
  return &t->pools[pool].settings;
}

/* The pool slot named name in t, or -1. */
int wsb_shm_pool_find(const struct wsb_shm_table *t, const char *name);

/* wsbal_route_matches_total's counter of requests no route took (route="default"). */
#define WSB_ROUTE_DEFAULT_SLOT WSB_ROUTE_MAX

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

/* Kinds of error-log lines a peer can cause at will, each under its own log_rate_limit. */
enum wsb_log_kind { WSB_LOG_KIND_REJECTED, WSB_LOG_KIND_TLS, WSB_LOG_KINDS };
#define WSB_LOG_KIND_NAMES \
  { "rejected", "tls" }

enum wsb_direction { WSB_DIR_TO_BACKEND = 0, WSB_DIR_TO_CLIENT = 1, WSB_DIR_COUNT };
/* wsbal_compression_bytes_total's stage: compressed payload on the client leg, or inflated. */
enum wsb_compression_stage {
  WSB_COMPRESSION_WIRE,
  WSB_COMPRESSION_PAYLOAD,
  WSB_COMPRESSION_STAGES
};

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

/*
 * The histograms' bucket upper bounds, in microseconds; each has one more bucket, +Inf. Buckets
 * are cumulative, as Prometheus has them: wsb_shm_observe adds to every bucket a value fits.
 */
/* wsbal_failover_seconds: 5 ms to 10 s */
#define WSB_FAILOVER_BUCKET_US \
  { 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000 }
#define WSB_FAILOVER_BUCKETS 12
/* wsbal_backend_connect_seconds: 1 ms to 5 s */
#define WSB_CONNECT_BUCKET_US \
  { 1000, 5000, 10000, 25000, 50000, 100000, 250000, 1000000, 5000000 }
#define WSB_CONNECT_BUCKETS 10
/* wsbal_handshake_seconds: 100 us to 10 s; an answer wsbal gives itself takes microseconds, one
   that waits for a backend's 101 about a connect's time. */
#define WSB_HANDSHAKE_BUCKET_US                                                             \
  {                                                                                         \
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000, 2500000, \
        10000000                                                                            \
  }
#define WSB_HANDSHAKE_BUCKETS 15
/* wsbal_session_seconds: 0.1 s to a day, for sessions refused at once and for long-lived ones. */
#define WSB_SESSION_BUCKET_US                                                            \
  {                                                                                      \
    100000, 1000000, 10000000, 60000000, 300000000, 1800000000, 3600000000, 21600000000, \
        86400000000                                                                      \
  }
#define WSB_SESSION_BUCKETS 10
/* wsbal_http_request_seconds: 1 ms to 60 s, from a plain request's head read to its answer's
   end. */
#define WSB_HTTP_BUCKET_US \
  { 1000, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 10000000, 60000000 }
#define WSB_HTTP_BUCKETS 13

/*
 * One worker's counters. Every field has a single writer, that worker, so
 * relaxed atomic adds suffice and a worker dying mid-update breaks nothing.
 */
struct wsb_shm_worker {
  _Atomic int32_t pid;
  /* Sessions an old worker handed to this one (binary upgrade). */
  _Atomic uint64_t upgraded;
  _Atomic uint64_t live;                           /* live sessions of this worker, all backends */
  _Atomic uint64_t sessions[WSB_SHM_MAX_BACKENDS]; /* live, per backend slot */
  _Atomic uint64_t sessions_total[WSB_SHM_MAX_BACKENDS]; /* started, per backend slot */
  /* live, per pool slot: a session counts in the pool it was placed in, wherever its backend
     has moved since */
  _Atomic uint64_t pool_sessions[WSB_SHM_MAX_POOLS];
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
  _Atomic uint64_t hold_bytes; /* gauge: backend fragments held until their message ends */
  /* payload bytes of compressed messages, by direction: as compressed and as inflated */
  _Atomic uint64_t compression_bytes[WSB_DIR_COUNT][WSB_COMPRESSION_STAGES];
  /* sessions that got their 101, when they end: from accept to close */
  _Atomic uint64_t session_buckets[WSB_SESSION_BUCKETS];
  _Atomic uint64_t session_us;
  _Atomic uint64_t session_count;
  /* client handshakes, from the request head read to the answer (101 or error) queued */
  _Atomic uint64_t handshake_buckets[WSB_HANDSHAKE_BUCKETS];
  _Atomic uint64_t handshake_us;
  _Atomic uint64_t handshake_count;
  /* messages and bytes relayed to and from each backend slot, by direction */
  _Atomic uint64_t backend_messages[WSB_SHM_MAX_BACKENDS][WSB_DIR_COUNT];
  _Atomic uint64_t backend_bytes[WSB_SHM_MAX_BACKENDS][WSB_DIR_COUNT];
  _Atomic uint64_t log_suppressed[WSB_LOG_KINDS]; /* lines log_rate_limit dropped */
  /* Client connections refused for their PROXY protocol header, by reason. */
  _Atomic uint64_t proxy_protocol_errors[WSB_PP_ERR_COUNT];
  /* Requests each route took, by the route's slot; WSB_ROUTE_DEFAULT_SLOT: no route did. */
  _Atomic uint64_t route_matches[WSB_ROUTE_MAX + 1];
  /* Sessions [wsbal] max_sessions admitted (request read, not refused), until they close. */
  _Atomic uint64_t admitted;
  /* plain HTTP requests answered, by status class: [1] 1xx .. [5] 5xx ([0] unused) */
  _Atomic uint64_t http_requests[6];
  _Atomic uint64_t http_buckets[WSB_HTTP_BUCKETS];
  _Atomic uint64_t http_us;
  _Atomic uint64_t http_count;
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
  /* round_robin's shared tickets per pool, primaries and backups: see
     worker/select_round_robin.c. */
  _Atomic uint64_t rr_tickets[WSB_SHM_MAX_POOLS][2];
  _Atomic uint64_t reloads_ok; /* written by the master */
  _Atomic uint64_t worker_restarts;
  _Atomic uint64_t reloads_error;
  struct wsb_shm_load_report load[WSB_SHM_MAX_BACKENDS]; /* master/health.c writes them */
  /* Per slot, its pool's load_report_ttl: reports older than this are ignored. */
  _Atomic uint64_t load_report_ttl_ms[WSB_SHM_MAX_BACKENDS];
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

/*
 * One per-worker counter summed over the workers given a slot so far ([0, slots_used)): offset
 * is the counter's place in struct wsb_shm_worker, as WSB_SHM_SUM computes it. Every sum over
 * workers goes through here.
 */
uint64_t wsb_shm_sum(const struct wsb_shm *shm, size_t offset);
#define WSB_SHM_SUM(shm, field) wsb_shm_sum((shm), offsetof(struct wsb_shm_worker, field))

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
/* Sessions every worker together admitted against [wsbal] max_sessions: live ones less those
   still sending their request head. */
uint64_t wsb_shm_admitted(const struct wsb_shm *shm);

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

/* One value (microseconds) into a histogram of n buckets whose first n - 1 bounds are bounds
   (the last is +Inf), its sum and its count: every histogram of the segment is kept this way. */
static inline void wsb_shm_observe(_Atomic uint64_t *buckets, const uint64_t *bounds, size_t n,
                                   _Atomic uint64_t *sum_us, _Atomic uint64_t *count, uint64_t us) {
  for (size_t i = 0; i < n; i++)
    if (i == n - 1 || us <= bounds[i])
      wsb_shm_add(&buckets[i], 1);
  wsb_shm_add(sum_us, us);
  wsb_shm_add(count, 1);
}

/*
 * Builds a table from a configuration and the addresses each of its backends
 * resolved to (addrs[i] for cfg->backends[i]; the master resolves, this never
 * does): one backend per address, named NAME for a single address and
 * NAME#ADDR for several, and its pools: cfg's, then any other a backend names
 * (with [upstream]'s settings), each keeping the slot its name has in prev.
 * Keeps each backend in the slot its name has in prev
 * (NULL at start-up), in use or retired. A slot no backend of t takes but
 * that has live sessions in shm is held (retired, with the name prev gave
 * it), however many generations ago its backend went; a slot prev had in use
 * is given to another backend only when no other slot is free. Returns 0, or
 * a negative code with a message in err naming the backend.
 */
int wsb_shm_table_build(struct wsb_shm_table *t, const struct wsb_config *cfg,
                        const struct wsb_addrs *addrs, const struct wsb_shm_table *prev,
                        const struct wsb_shm *shm, char *err, size_t errlen);

/*
 * The TLS context for wss backends from the settings (verification, CA file,
 * client certificate; an empty path is unset), so the workers' data path and
 * the master's health checks trust the same peers. NULL with a message in err.
 */
SSL_CTX *wsb_shm_tls_client_ctx(const struct wsb_shm_settings *s, char *err, size_t errlen);

#endif
