/* wsbal-load's internal interfaces: options, the run context, connections, histogram, payloads. */
#ifndef WSB_LOAD_H
#define WSB_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "frame.h"
#include "list.h" /* wsb_container_of */
#include "handshake.h"
#include "http.h"
#include "values.h"

/* ---- latency histogram (load_hist.c) ---- */

/*
 * Log-linear buckets in the manner of HdrHistogram: values below 256 are
 * exact, and each power of two above is cut into 128 buckets, so any value
 * is known to within 1/128 (0.8 %) with no per-sample storage.
 */
#define WSB_LOAD_HIST_SUB_BITS 7
#define WSB_LOAD_HIST_SUB      (1u << WSB_LOAD_HIST_SUB_BITS)
#define WSB_LOAD_HIST_BUCKETS \
  ((64 - WSB_LOAD_HIST_SUB_BITS) * WSB_LOAD_HIST_SUB + WSB_LOAD_HIST_SUB)

struct wsb_load_hist {
  uint64_t count;
  uint64_t min;
  uint64_t max;
  double sum;
  uint64_t buckets[WSB_LOAD_HIST_BUCKETS];
};

void wsb_load_hist_reset(struct wsb_load_hist *h);
void wsb_load_hist_record(struct wsb_load_hist *h, uint64_t value);
/* The highest value that falls in the bucket holding the p-th percentile (0 < p <= 100), at most
 * max; 0 when empty. */
uint64_t wsb_load_hist_percentile(const struct wsb_load_hist *h, double p);
/* The bucket a value lands in, and the range of values the bucket stands for (for tests). */
size_t wsb_load_hist_bucket(uint64_t value);
uint64_t wsb_load_hist_bucket_low(size_t bucket);
uint64_t wsb_load_hist_bucket_high(size_t bucket);

/* ---- payloads (load_payload.c) ---- */

/*
 * Each payload starts with its sequence number and its send time (binary:
 * two little-endian 64-bit words; text: 32 lower-case hex digits), and the
 * rest is a pseudo-random pattern seeded by those two values and the
 * connection's number. Regenerating the pattern checks every byte of an echo,
 * and a damaged head changes the seed, so the pattern serves as checksum too.
 */
#define WSB_LOAD_HEAD_BINARY 16
#define WSB_LOAD_HEAD_TEXT   32

size_t wsb_load_payload_head_len(bool text);
void wsb_load_payload_fill(uint8_t *dst, size_t size, bool text, uint32_t conn, uint64_t seq,
                           uint64_t t);

/* Checks one echoed message as its bytes arrive, in pieces of any size. Starts zeroed. */
struct wsb_load_verify {
  uint64_t off; /* payload bytes seen */
  uint64_t seq; /* decoded from the head once it is complete */
  uint64_t t;
  uint64_t seed;
  bool have_head;
  bool bad;
  uint8_t head[WSB_LOAD_HEAD_TEXT];
};

void wsb_load_verify_feed(struct wsb_load_verify *v, bool text, uint32_t conn, size_t size,
                          const uint8_t *p, size_t n);
/* True when the message was exactly size bytes, all as they were sent. */
bool wsb_load_verify_ok(const struct wsb_load_verify *v, size_t size);

/* ---- /proc sampling of other processes (load_watch.c) ---- */

#define WSB_LOAD_WATCH_GROUPS 8
#define WSB_LOAD_WATCH_PIDS   64

struct wsb_load_watch_group {
  char label[32];
  int pids[WSB_LOAD_WATCH_PIDS];
  int npids;
};

/* One reading of every group and the machine. */
struct wsb_load_watch_sample {
  uint64_t t_ns;
  double cpu_s[WSB_LOAD_WATCH_GROUPS];   /* utime + stime of the group's processes */
  int64_t pss_kb[WSB_LOAD_WATCH_GROUPS]; /* -1 when a process could not be read */
  int alive[WSB_LOAD_WATCH_GROUPS];      /* processes that could be read */
  double self_cpu_s;
  /* /proc/stat's first line, in seconds: user nice system idle iowait irq softirq steal. */
  double machine[8];
};

/* Parses "LABEL:PID[,PID...]". Returns 0 or WSB_EVALUE. */
int wsb_load_watch_parse(const char *arg, struct wsb_load_watch_group *g);
void wsb_load_watch_take(const struct wsb_load_watch_group *groups, int ngroups,
                         struct wsb_load_watch_sample *s, uint64_t now_ns);

/* Parses --source: "A-B" or "A/N", IPv4 inside 127.0.0.0/8. Returns 0 or WSB_EVALUE. */
int wsb_load_parse_source(const char *arg, uint32_t *first, uint32_t *count);

/* ---- the run ---- */

enum wsb_load_mode { MODE_ECHO, MODE_RATE, MODE_IDLE, MODE_CONNECT, MODE_STORM };

/* Error kinds, in the order they are reported. */
#define WSB_LOAD_ERR_MAP(XX)                                                           \
  XX(CONNECT, "connect")     /* TCP connect failed */                                  \
  XX(HANDSHAKE, "handshake") /* no valid 101 */                                        \
  XX(REJECTED, "rejected")   /* a 503 instead of the 101 (max_sessions, no backend) */ \
  XX(TIMEOUT, "timeout")     /* connect, handshake or close took too long */           \
  XX(PROTOCOL, "protocol")   /* a frame breaking RFC 6455 */                           \
  XX(CLOSED, "closed")       /* the server closed a session we had not closed */       \
  XX(IO, "io")               /* read or write error (reset, ...) */                    \
  XX(STALLED, "stalled")     /* no answer for 5 s with messages outstanding */         \
  XX(LOST, "lost")           /* rate mode: never answered by the end of the drain */

enum wsb_load_err {
#define WSB_LOAD_XX(name, str) ERR_##name,
  WSB_LOAD_ERR_MAP(WSB_LOAD_XX)
#undef WSB_LOAD_XX
      ERR_COUNT
};

struct wsb_load_opts {
  enum wsb_load_mode mode;
  const char *url_text;
  struct wsb_url url;
  struct sockaddr_storage addr;
  uint32_t connections;
  uint32_t depth;
  uint32_t size;
  double duration_s;
  double warmup_s;
  double rate;
  double ping_interval_s;
  double ping_spread_s; /* a SIGUSR1 ping round is spread over this long */
  bool text;
  bool deflate; /* offer permessage-deflate (idle mode: the memory of compressed sessions) */
  bool json_only;
  uint32_t in_flight;    /* handshakes at once while the sessions open; 0 = no cap */
  uint32_t processes;    /* load processes the connections are split over (1: no fork) */
  uint32_t id_base;      /* this process's first connection over all processes */
  uint32_t source_first; /* --source: first address (host order) ... */
  uint32_t source_count; /* ... and how many; 0 = let the kernel choose */
  struct wsb_load_watch_group watch[WSB_LOAD_WATCH_GROUPS];
  int nwatch;
};

enum wsb_load_phase {
  PH_CONNECT, /* opening the sessions */
  PH_WARMUP,  /* load running, nothing recorded */
  PH_WINDOW,  /* load running and measured */
  PH_DRAIN,   /* rate mode: waiting for the answers to what was sent */
  PH_CLOSE,   /* close handshakes under way */
  PH_DONE,
};

enum wsb_load_conn_state {
  C_IDLE,       /* no socket */
  C_CONNECTING, /* TCP connect under way */
  C_HANDSHAKE,  /* request sent, waiting for the 101 */
  C_OPEN,
  C_CLOSING,    /* our close frame is queued; waiting for the server's */
  C_CLOSE_WAIT, /* close frames exchanged; waiting for the server's FIN */
  C_SHUT,       /* uv_close called; back to C_IDLE in its callback */
  C_BACKOFF,    /* connect mode: a failed cycle waits for the next tick */
};

/* What arrives from the server: frame header state and the message being checked. */
struct wsb_load_reader {
  struct wsb_msg_state msg;
  uint64_t remaining; /* payload bytes of the current data frame still to come */
  bool fin;
  bool in_message;
  uint8_t partial_len;
  uint8_t partial[WSB_FRAME_HEADER_MAX + WSB_CONTROL_PAYLOAD_MAX];
  struct wsb_load_verify verify;
};

struct wsb_load_ctx;

struct wsb_load_conn {
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  uv_write_t write_req;
  struct wsb_load_ctx *ctx;
  uint32_t id;   /* index in ctx->conns, part of every payload's seed */
  uint32_t slot; /* rate mode: position in the schedule */
  uint8_t state;
  bool writing;        /* write_req is in flight over wbuf */
  bool cycle_ok;       /* connect mode: the echo came back and the close handshake is under way */
  bool stalled;        /* already counted as stalled */
  bool before_upgrade; /* closed before its upgrade */
  uint64_t deadline;   /* when the current connect/handshake/close wait times out; 0 = none */
  uint64_t t_start;    /* when the connect began */
  uint64_t last_recv;
  uint64_t send_seq; /* messages sent */
  uint64_t recv_seq; /* messages answered */
  /* Output is gathered in fill and written at the end of each event; wbuf is what libuv writes. */
  uint8_t *fill;
  uint8_t *wbuf;
  size_t fill_len;
  size_t cap;
  char *head_buf; /* a 101 answer split over reads is gathered here */
  size_t head_len;
  char accept[WSB_WS_ACCEPT_LEN + 1];
  struct wsb_load_reader rd;
  SSL *ssl;      /* wss:// only */
  bool tls_done; /* its handshake is over */
};

struct wsb_load_stats {
  uint64_t messages; /* answered and counted in the window */
  uint64_t sent;     /* sent and counted in the window */
  uint64_t cycles;   /* connect mode: whole cycles ended in the window */
  uint64_t mismatches;
  uint64_t errors[ERR_COUNT];
  uint64_t established; /* upgrades */
  uint64_t failed;      /* attempts that never reached the upgrade */
  uint64_t pongs;
  uint64_t late_sends; /* rate mode: sent more than 1 ms after their scheduled time */
  uint64_t send_lag_max;
};

/* Rate mode: message m (over all connections) goes out at the first tick at or after m / rate. */
struct wsb_load_sched {
  uv_poll_t poll;
  int timerfd;
  bool armed;
  uint64_t start;
  uint64_t period;  /* ns between ticks */
  uint64_t next_m;  /* first message index not yet handed to its connection */
  uint64_t m_limit; /* first index scheduled at or after the window's end */
  uint32_t n;       /* connections in the schedule */
  struct wsb_load_conn **list;
};

struct wsb_load_ctx {
  uv_loop_t loop;
  struct wsb_load_opts o;
  struct wsb_load_conn *conns;
  uint32_t nconns;
  uint32_t next_to_start; /* connect phase: the next connection to open */
  uint32_t pending;       /* connect phase: connections between connect and upgrade */
  uint32_t live;          /* connections with a socket */
  uint32_t open;          /* connections in C_OPEN */
  uint32_t open_at_start;
  uint32_t open_at_end;
  enum wsb_load_phase phase;
  uint64_t t0;
  uint64_t connect_deadline;
  uint64_t win_start;
  uint64_t win_end;
  uint64_t next_ping;
  uint64_t drain_deadline;
  uint64_t t_connected;      /* when the connect phase ended */
  bool ping_requested;       /* SIGUSR1 came before the window */
  uint64_t ping_round_start; /* a SIGUSR1 round under way since; 0 = none */
  uint32_t ping_round_next;  /* its next connection */
  uint64_t close_deadline;
  uint64_t rng;
  uv_timer_t tick;
  uv_timer_t phase_timer;
  uv_idle_t spread; /* storm: more connections to open at the next turn of the loop */
  uv_signal_t sigint;
  uv_signal_t sigterm;
  uv_signal_t sigusr1;
  struct wsb_load_sched sched;
  struct wsb_load_stats st;
  struct wsb_load_hist lat;
  struct wsb_load_hist hs_lat;    /* connect and storm modes: connect start to verified 101 */
  struct wsb_load_result *result; /* a child of --processes: where its results go */
  struct wsb_load_watch_sample watch_before;
  struct wsb_load_watch_sample watch_start;
  struct wsb_load_watch_sample watch_end;
  struct wsb_http_head head; /* for 101 answers that arrive in one read */
  uint8_t rbuf[65536];
  SSL_CTX *ssl_ctx;     /* wss:// only */
  uint8_t plain[65536]; /* what TLS decrypted from rbuf */
};

uint64_t wsb_load_now_ns(void);

/* load_procs.c: --processes. */
#define WSB_LOAD_MAX_PROCESSES 64
struct wsb_load_result;
/* Forks o.processes children, each with its share of the connections. In a child returns -1 with
 * *slot set (the child runs, then saves its results there); in the parent waits for them all,
 * merges their results into ctx and returns 0, or 3 when one failed. */
int wsb_load_procs_run(struct wsb_load_ctx *ctx, struct wsb_load_result **slot);
/* A child's loop is ready for the run's signals. */
void wsb_load_procs_child_ready(void);
/* Storm mode: this process has all its sessions up (or failed); true once every process of the
 * run has (at once without --processes). */
bool wsb_load_procs_all_connected(struct wsb_load_result *mine);
void wsb_load_result_save(const struct wsb_load_ctx *ctx, struct wsb_load_result *r);

/* load_tls.c: wss://. Each returns 0 or -1 unless said otherwise. */
int wsb_load_tls_init(struct wsb_load_ctx *ctx);
void wsb_load_tls_free_ctx(struct wsb_load_ctx *ctx);
int wsb_load_tls_start(struct wsb_load_conn *c);
void wsb_load_tls_free(struct wsb_load_conn *c);
/* Encrypts what fill holds (once the handshake is over) and empties fill. */
int wsb_load_tls_encrypt(struct wsb_load_conn *c);
/* Moves up to cap bytes of ciphertext to out; returns how many. */
size_t wsb_load_tls_take(struct wsb_load_conn *c, uint8_t *out, size_t cap);
/* Ciphertext from the socket: plaintext goes to plain. 1 when the server sent close_notify. */
int wsb_load_tls_read(struct wsb_load_conn *c, const uint8_t *data, size_t n,
                      void (*plain)(struct wsb_load_conn *c, const uint8_t *p, size_t n));

/* load_conn.c */
/* Bytes of each of a connection's two output buffers. */
size_t wsb_load_conn_buffer_size(const struct wsb_load_opts *o);
void wsb_load_conn_init(struct wsb_load_ctx *ctx, struct wsb_load_conn *c, uint32_t id);
/* Opens the connection (connect, upgrade); failures are counted and end in C_IDLE. */
void wsb_load_conn_start(struct wsb_load_conn *c);
/* Starts the close handshake of an open session, or drops one still connecting. */
void wsb_load_conn_stop(struct wsb_load_conn *c);
/* Drops the socket at once, counting kind unless it is ERR_COUNT. */
void wsb_load_conn_abort(struct wsb_load_conn *c, enum wsb_load_err kind);
/* Sends the messages due by schedule index `due` (rate mode) as far as the buffer allows. */
void wsb_load_conn_pump(struct wsb_load_conn *c, uint64_t due, uint64_t now);
/* Queues the connection's next message, stamped with now. False when the buffer is full. */
bool wsb_load_conn_send(struct wsb_load_conn *c, uint64_t now);
/* Queues a ping carrying the current time (idle mode). */
void wsb_load_conn_ping(struct wsb_load_conn *c, uint64_t now);
/* Writes what was gathered: uv_try_write first, uv_write for the rest. */
void wsb_load_conn_flush(struct wsb_load_conn *c);
void wsb_load_conn_free(struct wsb_load_conn *c);

/* load.c: the run reacts to connection events. */
void wsb_load_on_open(struct wsb_load_ctx *ctx, struct wsb_load_conn *c, uint64_t now);
void wsb_load_on_conn_gone(struct wsb_load_ctx *ctx, struct wsb_load_conn *c, bool before_upgrade);
uint64_t wsb_load_sched_time(const struct wsb_load_ctx *ctx, const struct wsb_load_conn *c,
                             uint64_t k);
uint64_t wsb_load_sched_due_k(const struct wsb_load_ctx *ctx, const struct wsb_load_conn *c,
                              uint64_t due);

#endif
