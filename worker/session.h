/* One proxied WebSocket session: two symmetric legs, a timer, the state machine joining them. */
#ifndef WSB_SESSION_H
#define WSB_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "buffer.h"
#include "frame.h"
#include "handshake.h"
#include "http.h"
#include "worker.h"

enum wsb_session_state {
  S_READ_REQUEST,
  S_CONNECT_BACKEND,
  S_RELAY,
  S_FAILOVER,
  S_CLOSING,
  S_CLOSED,
};

/* Who ended a session, for the access log and metrics. */
enum wsb_closed_by { BY_NONE, BY_CLIENT, BY_BACKEND, BY_WSBAL };

struct wsb_session;

struct wsb_tls_leg;

struct wsb_leg {
  uv_tcp_t tcp;
  struct wsb_tls_leg *tls; /* NULL for plain ws */
  struct wsb_session *s;
  struct wsb_leg *peer;
  bool is_client;
  bool open;             /* tcp initialised and not yet closed */
  bool reading;          /* uv_read_start is in effect */
  bool paused;           /* reading stopped because the peer's queue is full */
  bool close_received;   /* a close frame came from this leg */
  bool close_sent;       /* a close frame was written to this leg */
  bool ping_outstanding; /* wsbal's keepalive ping awaits its pong */
  bool partial_out;      /* part of a message from this leg went out that cannot be repeated:
                            the session cannot move to another backend until it ends */
  bool stream_fin;       /* the frame being streamed ends its message */
  bool read_done;        /* the peer sent EOF or its connection failed: nothing more comes */
  bool lingering;        /* closed by wsbal: write side shut, the peer's bytes read and dropped */
  struct wsb_msg_state msg; /* fragmentation state of frames read from this leg */
  uint64_t stream_left;     /* payload bytes still to pass of a frame too large to hold */
  struct wsb_buf hold;      /* backend leg: fragments of an open message, passed on when it ends */
  uint8_t *pending;         /* incomplete frame read from this leg (NULL while idle) */
  uint32_t pending_len;
  uint32_t pending_cap;
  size_t queued;       /* bytes written to this leg that the kernel has not taken */
  uint64_t last_rx_ms; /* when this leg last sent us anything */
  uint64_t ping_sent_ms;
};

/* Handshake-time state: allocated on accept, freed when relaying starts. */
struct wsb_handshake {
  struct wsb_http_head req;
  char *req_buf;
  size_t req_len;
  size_t req_cap;
  struct wsb_upgrade_request upgrade;
  struct wsb_http_head resp;
  char *resp_buf;
  size_t resp_len;
  size_t resp_cap;
  char key[WSB_WS_KEY_LEN + 1];       /* the key sent to the backend */
  char accept[WSB_WS_ACCEPT_LEN + 1]; /* what the backend must answer */
  char client_ip[64];
  size_t head_len;             /* bytes of req_buf that are the request head */
  unsigned attempts;           /* backends tried for this upgrade or failover */
  uint64_t connect_started_ms; /* of the current backend attempt */
  bool backoff;                /* the timer is a pause between failover attempts */
  int prefer;                  /* a backend slot the admin asked for, tried first; -1 for none */
  uv_connect_t connect;
  struct wsb_slot_set tried; /* backends tried for this session */
  bool relaying_error;       /* passing a backend's non-101 answer through to the client */
  uint64_t error_body_left;
};

struct wsb_session {
  struct wsb_worker *w;
  struct wsb_session *prev;
  struct wsb_session *next;
  uint64_t id;
  enum wsb_session_state state;
  struct wsb_leg client;
  struct wsb_leg backend;
  uv_timer_t timer;
  int handles;      /* open handles; the session is freed when the last one has closed */
  int backend_slot; /* the slot whose live count this session holds, or -1 */
  bool finishing;   /* close both connections once every queued byte is written */
  struct wsb_handshake *hs;
  char *head; /* the client's request head, to upgrade again on a failover */
  uint32_t head_len;
  char *protocol;          /* the subprotocol the client has, which a new backend must choose */
  struct wsb_buf replay;   /* client data frames the backend has not answered yet, and during a
                              failover the ones that arrive meanwhile: resent to the new backend */
  uint32_t replay_resent;  /* bytes at the front of replay already resent by a failover */
  uint32_t replay_open;    /* bytes at the end of replay of a client message not yet whole */
  uint32_t replay_counted; /* replay's allocation as counted in the worker's total */
  /* The worker's windows, oldest first (failover.c): under failover_buffer_total pressure the
     oldest give up first. Sessions moving to a new backend are not in it. */
  struct wsb_session *window_prev;
  struct wsb_session *window_next;
  bool window_listed;
  uint32_t replay_seen; /* bytes at the front of replay a backend lost before this one was
                           sent: what a failover resends, as against what came meanwhile */
  bool replay_unsent;   /* a failover has not sent replay to the new backend yet: nothing
                           that backend says can answer any of it */
  /* For the access log. */
  uint64_t messages[WSB_DIR_COUNT];
  uint64_t bytes[WSB_DIR_COUNT];
  uint8_t client_addr[16]; /* IPv4 (first 4 bytes) or IPv6 */
  uint8_t client_family;   /* AF_INET, AF_INET6, or 0 when unknown */
  uint8_t nused;           /* entries of used */
  uint16_t close_code;     /* of the first close frame either way; 0 while none */
  uint16_t used[8];        /* backend slots the session used, in order (the last one repeats) */
  uint32_t path_off;       /* the request target within head */
  uint32_t path_len;
  uint32_t failovers;
  uint64_t backend_since_ms; /* when the current backend answered 101 */
  bool backend_proven;       /* it has sent a message since: the breaker counts it healthy */
  bool backend_heard;        /* the client has sent it something since: a loss now may be its
                                answer to the client, not its own failure */
  int prefer_slot;           /* where the next failover should go first (admin API), or -1 */
  int failover_reason;
  uint64_t failover_started_ms;
  uint64_t started_ms;
  uint64_t last_data_ms; /* the last data frame either way, for idle_timeout */
  int reason;            /* why it ended: 0 or a negative code */
  enum wsb_closed_by closed_by;
  uint32_t lingered; /* bytes read and dropped after wsbal's own close (session.c) */
};

/* Session life (session.c). */
void wsb__session_set_state(struct wsb_session *s, enum wsb_session_state to);
void wsb__session_close(struct wsb_session *s, int reason);
void wsb__session_finish(struct wsb_session *s);
void wsb__session_timer_start(struct wsb_session *s, uint64_t ms);
/* Drops one handle reference; frees the session with the last. Returns true when it was freed. */
bool wsb__session_unref(struct wsb_session *s);
void wsb__session_free_handshake(struct wsb_session *s);
void wsb__session_hold_backend(struct wsb_session *s, int slot);
void wsb__session_release_backend(struct wsb_session *s);
/* Adds the backend now serving the session to the list the access log shows. */
void wsb__session_note_backend(struct wsb_session *s);

/* Writing to a leg: try at once, queue only what the kernel did not take (session.c).
   wsb__leg_write encrypts first on a TLS leg; wsb__leg_write_raw puts bytes on the socket as they
   are. */
int wsb__leg_write(struct wsb_leg *l, const uv_buf_t *bufs, unsigned nbufs);
int wsb__leg_write_raw(struct wsb_leg *l, const uv_buf_t *bufs, unsigned nbufs);
void wsb__leg_stop_reading(struct wsb_leg *l);
/* Bytes queued to a leg past which wsbal stops reading what fills that queue. */
#define LEG_QUEUE_HIGH_WATER (256 * 1024)
#define LEG_QUEUE_LOW_WATER  (64 * 1024)
/* What a leg read (plaintext on a TLS leg), or an error or UV_EOF, to the state's handler. */
void wsb__leg_dispatch(struct wsb_leg *l, ssize_t nread, const uv_buf_t *buf);
/* Where a leg's next plaintext goes: the head buffers during the upgrade, else the loop's. */
void wsb__leg_plain_buf(struct wsb_leg *l, uv_buf_t *buf);
void wsb__leg_pause(struct wsb_leg *l);
void wsb__leg_resume(struct wsb_leg *l);
void wsb__leg_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
void wsb__leg_hold_early(struct wsb_leg *l, const uint8_t *data, size_t len);
int wsb__leg_start_reading(struct wsb_leg *l);

/* The upgrade (upgrade.c). */
void wsb__upgrade_on_client_read(struct wsb_leg *l, ssize_t nread);
void wsb__upgrade_on_backend_read(struct wsb_leg *l, ssize_t nread, const uv_buf_t *buf);
void wsb__upgrade_on_timeout(struct wsb_session *s);

/* Failover (failover.c). */
/* A close frame with a failover code, or an admin request: move the session if it can. */
void wsb__failover_begin(struct wsb_session *s, int reason);
/* The backend connection is lost (EOF, reset, write error, no pong): move if 1006 says so. */
void wsb__failover_lost(struct wsb_session *s, int reason);
void wsb__failover_done(struct wsb_session *s, const uint8_t *backend_early, size_t len);
void wsb__failover_give_up(struct wsb_session *s, uint16_t code, const char *why);
bool wsb__failover_code(const struct wsb_session *s, uint16_t code);
void wsb__replay_keep(struct wsb_session *s, const uint8_t *frame, size_t len, bool fin);
void wsb__replay_answered(struct wsb_session *s);
/* Frames of the client's that arrived while the session moves: resent, never dropped. */
int wsb__replay_hold(struct wsb_session *s, const uint8_t *data, size_t len);
/* Lets go of the window: the session ended. */
void wsb__replay_drop(struct wsb_session *s);
/* May the client be read while the session moves (its window, the worker's windows and its own
   write queue, filled by wsbal's pongs, all below their bounds)? */
bool wsb__failover_client_may_read(const struct wsb_session *s);

/* Upgrade pieces a failover reuses (upgrade.c). */
void wsb__upgrade_find_client_ip(struct wsb_session *s);
void wsb__upgrade_connect_next(struct wsb_session *s);
void wsb__upgrade_retry_after_close(struct wsb_session *s);

/* Clears a backend leg's relay state before a new connection uses it (session.c). */
void wsb__leg_reset(struct wsb_leg *l);
/* Closes one leg at once, its unwritten bytes lost with it: the peer behind it is gone. */
void wsb__leg_lose(struct wsb_leg *l);

/* The relay (relay.c). */
void wsb__relay_on_read(struct wsb_leg *l, const uint8_t *data, size_t len);
void wsb__relay_on_eof(struct wsb_leg *l, int status);
void wsb__relay_start(struct wsb_session *s, const uint8_t *backend_early,
                      size_t backend_early_len);
void wsb__relay_on_timer(struct wsb_session *s);
void wsb__relay_send_close(struct wsb_leg *l, uint16_t code, const char *reason);
int wsb__relay_send_frame(struct wsb_leg *to, uint8_t opcode, const uint8_t *payload, size_t len);
void wsb__relay_arm_timer(struct wsb_session *s);

static inline struct wsb_leg *wsb__leg_of(uv_handle_t *h) {
  return (struct wsb_leg *)h;
}

#endif
