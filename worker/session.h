/* One proxied WebSocket session: two legs, a timer, and the state machine joining them. */
#ifndef WSB_SESSION_H
#define WSB_SESSION_H

/*
 * How the session code is layered. Each module names only those below it:
 *
 *   commands.c, worker.c      the worker: accepts, stops, carries out the master's commands
 *   states.c                  the state table: which module handles what in each state
 *   failover.c                moving a session to a new backend (uses upgrade.c and relay.c)
 *   http_proxy.c              a plain HTTP request and its answer (uses upgrade.c's connector
 *                             helpers), then the next request on the connection
 *   upgrade.c   relay.c       the handshake and backend connector; frames between the legs
 *   session.c leg.c replay.c  the core: life and close, the legs' I/O, the replay window,
 *   tls_leg.c tls_worker.c    and TLS under a leg's bytes
 *   breaker.c select*.c access_log.c http_pool.c   worker-wide services any of the above may use
 *
 * The core never names a module above it: what happens on an event depends on the state, and
 * the core asks the state's entry in wsb__session_states (struct wsb_session_ops). How a
 * backend's end of file travels while relaying, for example:
 *
 *   libuv -> leg.c on_read -> session.c wsb__session_dispatch -> states[RELAY].backend.on_eof
 *   = relay.c wsb__relay_eof (no close frame came: the backend is lost)
 *   -> session.c wsb__session_backend_lost -> states[RELAY].on_backend_lost
 *   = failover.c wsb__failover_begin (reason WSB_FO_LOST, error UV_ECONNRESET), which closes
 *   the old connection and asks upgrade.c for the next backend; once that one has answered
 *   101, upgrade.c hands the session to states[FAILOVER].on_backend_ready = wsb__failover_done.
 *
 * Events a lower module raises for a state it does not own (the connector's outcome, a backend
 * lost under the relay) go through the table in the same way.
 */

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "buffer.h"
#include "frame.h"
#include "handshake.h"
#include "http.h"
#include "leg.h"
#include "pmd.h"
#include "worker.h"

enum wsb_session_state {
  S_READ_REQUEST,
  S_CONNECT_BACKEND,
  S_RELAY,
  S_FAILOVER,
  S_HTTP, /* a plain HTTP request and its answer (http_proxy.c) */
  S_CLOSING,
  S_CLOSED,
  S_COUNT
};

/* Who ended a session, for the access log and metrics. */
enum wsb_closed_by { BY_NONE, BY_CLIENT, BY_BACKEND, BY_WSBAL };

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
  char client_ip[64];                 /* the real client (trust_forwarded), for hash_key = ip */
  char peer_ip[64];                   /* the connection's peer, appended to X-Forwarded-For */
  uint8_t *pp_buf;                    /* the PROXY header read so far (proxy_header.c) */
  uint16_t pp_len;
  uint16_t pp_cap;
  bool pp_wait;                /* [listen] proxy_protocol: the header has not come yet */
  size_t head_len;             /* bytes of req_buf that are the request head */
  unsigned attempts;           /* backends tried for this upgrade or failover */
  uint64_t connect_started_ms; /* of the current backend attempt */
  uint64_t request_ns;         /* uv_hrtime() when the request head was read whole; 0 before */
  bool backoff;                /* the timer is a pause between failover attempts */
  int prefer;                  /* a backend slot the admin asked for, tried first; -1 for none */
  struct wsb_slot_set tried;   /* backends tried for this session */
  bool relaying_error;         /* passing a backend's non-101 answer through to the client */
  uint64_t error_body_left;
  /* The route the request took, "default" for none; "" while it has not been matched. */
  char route[WSB_SECTION_NAME_MAX];
};

struct wsb_session {
  struct wsb_worker *w;
  struct wsb_list_node link; /* on w->sessions */
  uint64_t id;
  enum wsb_session_state state;
  struct wsb_leg client;
  struct wsb_leg backend;
  uv_timer_t timer;
  int handles;      /* open handles; the session is freed when the last one has closed */
  int backend_slot; /* the slot whose live count this session holds, or -1 */
  /* Its pool's slot: selection and failover stay among its backends. Set before the first
     backend is held (its live count in the pool goes with the backend's), never changed. */
  uint32_t pool;
  bool finishing; /* close both connections once every queued byte is written */
  bool admitted;  /* counted in the worker's admitted sessions ([wsbal] max_sessions) */
  /* Bytes at the start of the path its route's strip_path removes, on every connect. */
  uint16_t path_strip;
  struct wsb_handshake *hs;
  struct wsb_http_exchange *hx; /* the plain HTTP request under way (S_HTTP), else NULL */
  bool http_served;             /* the connection carried a plain HTTP request: it may then
                                   close idle between requests without anything being wrong */
  int16_t kept_slot;            /* the backend slot the backend leg stays connected to between
                                   plain requests (http_pool.c), or -1 */
  char *head;                   /* the client's request head, to upgrade again on a failover */
  uint32_t head_len;
  /* Its route's name for the access log, kept at head + head_len; 0 after a hand-over from a
     build whose state message (format 1) did not carry it. */
  uint8_t route_len;
  char *protocol;            /* the subprotocol the client has, which a new backend must choose */
  struct wsb_pmd_params pmd; /* permessage-deflate with the client, if negotiated */
  struct wsb_inflater *inflater; /* its own zlib streams (compress.c): with context takeover, */
  struct wsb_deflater *deflater; /* or a client message spanning reads; NULL while idle */
  struct wsb_buf replay;   /* client data frames the backend has not answered yet, and during a
                              failover the ones that arrive meanwhile: resent to the new backend */
  uint32_t replay_resent;  /* bytes at the front of replay already resent by a failover */
  uint32_t replay_open;    /* bytes at the end of replay of a client message not yet whole */
  uint32_t replay_counted; /* replay's allocation as counted in the worker's total */
  /* The worker's windows, oldest first (failover.c): under failover_buffer_total pressure the
     oldest give up first. Sessions moving to a new backend are not in it. */
  struct wsb_list_node window_link;
  bool window_listed;
  uint32_t replay_seen; /* bytes at the front of replay a backend lost before this one was
                           sent: what a failover resends, as against what came meanwhile */
  bool replay_unsent;   /* a failover has not sent replay to the new backend yet: nothing
                           that backend says can answer any of it */
  /* For the access log. */
  uint64_t messages[WSB_DIR_COUNT];
  uint64_t bytes[WSB_DIR_COUNT];
  uint8_t client_addr[16]; /* the real client (trust_forwarded): IPv4 (first 4 bytes) or IPv6 */
  uint8_t client_family;   /* AF_INET, AF_INET6, or 0 when unknown */
  /* The connection's ends, as a PROXY header announced them or else as TCP has them: the peer
     the trust rule starts from, and both for send_proxy_protocol. Families 0 until known. */
  uint8_t peer_family;
  uint8_t local_family;
  uint16_t peer_port;
  uint16_t local_port;
  uint8_t peer_addr[16];
  uint8_t local_addr[16];
  uint8_t nused;       /* entries of used */
  uint16_t close_code; /* of the first close frame either way; 0 while none */
  uint16_t used[8];    /* backend slots the session used, in order (the last one repeats) */
  uint32_t path_off;   /* the request target within head */
  uint32_t path_len;
  uint32_t host_off; /* the Host and User-Agent values within head (len 0: none), their */
  uint32_t ua_off;   /* lengths capped, for the access log cuts them shorter anyway */
  uint16_t host_len;
  uint16_t ua_len;
  uint32_t connect_ms; /* connect, TLS and upgrade of the first backend, for the access log */
  uint32_t failovers;
  char *close_reason;        /* the reason of the first close frame, when it had one */
  uint64_t backend_since_ms; /* when the current backend answered 101 */
  bool backend_proven;       /* it has sent a message since: the breaker counts it healthy */
  bool backend_heard;        /* the client has sent it something since: a loss now may be its
                                answer to the client, not its own failure */
  int prefer_slot;           /* where the next failover should go first (admin API), or -1 */
  uint64_t failover_started_ms;
  uint64_t started_ms;
  uint64_t last_data_ms; /* the last data frame either way, for idle_timeout */
  int reason;            /* why it ended: 0 or a negative code */
  enum wsb_closed_by closed_by;
  uint32_t lingered; /* bytes read and dropped after wsbal's own close (session.c) */
  /* A binary upgrade's new worker did not take it: it drains here (handover.c). */
  bool handover_refused;
};

/* What one leg's events do in a state. */
struct wsb_leg_ops {
  /* Plaintext read from the leg (during the upgrade it is already in the head buffer). */
  void (*on_read)(struct wsb_leg *l, const uint8_t *data, size_t len);
  /* The peer sent EOF, or its connection or TLS failed (status < 0): nothing more comes. */
  void (*on_eof)(struct wsb_leg *l, int status);
};

/*
 * A state's handlers (relayd's protocol hooks), one entry per state in wsb__session_states
 * (states.c). A NULL handler is an event that cannot happen in that state (asserted).
 */
struct wsb_session_ops {
  struct wsb_leg_ops client;
  struct wsb_leg_ops backend;
  /* The session's timer went off: a deadline of the state, or its keepalive. */
  void (*on_timer)(struct wsb_session *s);
  /* A queued write to l completed and the backpressure step is done (optional). */
  void (*on_writable)(struct wsb_leg *l);
  /* The connector (upgrade.c): the backend answered 101 and may be relayed to, early holding
     what it sent right behind; or no backend is left to try. */
  void (*on_backend_ready)(struct wsb_session *s, const uint8_t *early, size_t len);
  void (*on_backend_none)(struct wsb_session *s);
  /* The backend went away under a relaying session: why, and the errno-style error (a close
     code for WSB_FO_CLOSE). */
  void (*on_backend_lost)(struct wsb_session *s, enum wsb_failover_reason why, int detail);
};

extern const struct wsb_session_ops wsb__session_states[S_COUNT];

static inline const struct wsb_session_ops *wsb__session_ops(const struct wsb_session *s) {
  assert(s->state < S_COUNT);
  return &wsb__session_states[s->state];
}

/* The settings of the session's pool: every [upstream] key it reads. */
static inline const struct wsb_shm_settings *
wsb__session_pool_settings(const struct wsb_session *s) {
  return wsb_shm_pool_settings(s->w->table, s->pool);
}

/* Is slot a slot of the segment's table (a backend_slot of -1 is none)? */
static inline bool wsb__slot_valid(int slot) {
  return slot >= 0 && slot < WSB_SHM_MAX_BACKENDS;
}

/* Session life (session.c). */
void wsb__session_set_state(struct wsb_session *s, enum wsb_session_state to);
/* The one close: unlinks the session, records why, closes (or lingers) both legs. */
void wsb__session_close(struct wsb_session *s, int reason);
/* Ends the session once everything queued has been written (an error answer, a close frame). */
void wsb__session_finish(struct wsb_session *s);
/* Writes wsbal's own last answer to the client (n bytes; 0 when it could not be made) and
   ends the session once it is written, or at once when it cannot be. */
void wsb__session_answer_last(struct wsb_session *s, const char *answer, size_t n);
void wsb__session_timer_start(struct wsb_session *s, uint64_t ms);
/* The CLOSING state's deadline: a peer did not finish the close handshake in time. */
void wsb__session_closing_timeout(struct wsb_session *s);
/* Drops one handle reference; frees the session with the last. Returns true when it was freed. */
bool wsb__session_unref(struct wsb_session *s);
/* The close callback of every handle of a session. */
void wsb__session_handle_closed(uv_handle_t *h);
void wsb__session_free_handshake(struct wsb_session *s);
/* Prepares s->hs (allocated when NULL) to read a request head from its start; the caller starts
   the handshake timer and reading. Returns 0 or UV_ENOMEM. */
int wsb__session_new_request(struct wsb_session *s);
void wsb__session_hold_backend(struct wsb_session *s, int slot);
void wsb__session_release_backend(struct wsb_session *s);
/* Adds the backend now serving the session to the list the access log shows. */
void wsb__session_note_backend(struct wsb_session *s);
/* The first close frame of the session either way (any later one is not recorded): its code,
   and its reason for the access log. */
void wsb__session_note_close(struct wsb_session *s, uint16_t code, const void *reason, size_t len);
/* The client's address as text (cap >= INET6_ADDRSTRLEN): the real client once the request
   head named it, the connection's peer before; "" when it cannot be known. */
void wsb__session_client_text(struct wsb_session *s, char *buf, size_t cap);
/* Does a close frame with this code from the backend move the session (failover_codes)? */
bool wsb__session_failover_code(const struct wsb_session *s, uint16_t code);

/* Events from the legs, to the state's handlers. */
/* What a leg read (plaintext on a TLS leg), or an error or UV_EOF. */
void wsb__session_dispatch(struct wsb_leg *l, ssize_t nread, const uv_buf_t *buf);
/* Where a leg's next plaintext goes: the head buffers during the upgrade, else the loop's. */
void wsb__session_read_buf(struct wsb_leg *l, uv_buf_t *buf);
/* A queued write to l ended with status. */
void wsb__session_written(struct wsb_leg *l, int status);
/* Whether a successful write's end would do anything now (see wsb__session_written): the ring
   learns of some sends' ends only after its next wake, and must not sleep on one that matters. */
bool wsb__session_awaits_written(const struct wsb_leg *l);
/* The backend is gone under the relay (relay.c): to the state's on_backend_lost. */
void wsb__session_backend_lost(struct wsb_session *s, enum wsb_failover_reason why, int detail);

#endif
