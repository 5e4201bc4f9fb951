/* Typed, size-checked messages on the master's socketpair with each worker (STYLE.md rule 10). */
#ifndef WSB_CONTROL_H
#define WSB_CONTROL_H

#include <stddef.h>
#include <stdint.h>

enum wsb_control_type {
  WSB_CTL_FAILOVER_BACKEND = 1, /* move every session of a backend slot, paced (drain) */
  WSB_CTL_CLOSE_BACKEND = 2,    /* close every session of a backend slot with 1001 */
  WSB_CTL_KILL_SESSION = 3,     /* close one session with a code and reason */
  WSB_CTL_FAILOVER_SESSION = 4, /* move one session, to a given backend or by the algorithm */
  WSB_CTL_LIST_SESSIONS = 5,    /* describe a page of live sessions (of one backend, or one) */
  WSB_CTL_SESSIONS = 6,         /* worker to master: a chunk of the answer to LIST_SESSIONS */
  WSB_CTL_HANDOVER = 7,         /* binary upgrade: hand sessions to the new master (session,
                                   its pid) with slot workers */
};

struct wsb_control_msg {
  uint32_t type;
  uint32_t len;     /* bytes of the whole message, this header included */
  uint64_t request; /* LIST_SESSIONS: echoed in the answer */
  uint64_t session; /* KILL_SESSION, FAILOVER_SESSION; LIST_SESSIONS with one set; HANDOVER */
  uint32_t one;     /* LIST_SESSIONS: only the session named by session */
  int32_t slot;     /* *_BACKEND: the backend; FAILOVER_SESSION: the target, or -1;
                       LIST_SESSIONS: only this backend's, or -1 */
  int32_t pool;     /* LIST_SESSIONS: only the sessions placed in this pool slot, or -1 */
  uint32_t skip;    /* LIST_SESSIONS: matching sessions passed over first, in id order */
  uint32_t limit;   /* LIST_SESSIONS: at most this many described after them */
  uint32_t cursor;  /* LIST_SESSIONS: pass over the matching sessions whose id is after or less
                       first, before skip */
  uint64_t after;
  uint16_t code;    /* KILL_SESSION: the close code */
  char reason[124]; /* KILL_SESSION: the close reason, NUL-terminated */
};

/* One live session as the admin API lists it. */
struct wsb_session_info {
  uint64_t id;
  uint64_t started_unix_ms;
  uint64_t messages_in;
  uint64_t messages_out;
  uint64_t bytes_in;
  uint64_t bytes_out;
  uint32_t failovers;
  int32_t backend_slot; /* -1 while it moves */
  uint16_t worker;
  uint16_t pool; /* the pool slot it was placed in */
  char client[46];
  char path[256]; /* cut to fit */
  char route[64]; /* the route it took, "default" for none; "" when not known (moved by a binary
                     upgrade from a build whose state message did not carry it) */
};

#define WSB_SESSIONS_PER_CHUNK 128

/* The answer to LIST_SESSIONS, in chunks in id order (so a page is at most a few of them); the
   last has last = 1 and says how many sessions matched. The worker queues them on its control
   socket and never drops one when the socket is full. */
struct wsb_sessions_chunk {
  uint32_t type; /* WSB_CTL_SESSIONS */
  uint32_t len;  /* header plus count entries */
  uint64_t request;
  uint32_t count;
  uint32_t last;
  uint64_t matched;   /* last chunk: the worker's sessions matching the filter, skipped included */
  int32_t error;      /* last chunk: 0, or why the worker could not list (-ENOMEM, -EBUSY) */
  uint32_t described; /* last chunk: entries in all the chunks of this answer, so that a lost
                         chunk shows as a partial list rather than a silently short one */
  struct wsb_session_info entries[WSB_SESSIONS_PER_CHUNK];
};

/* Checks a worker's answer: type, count and size agree. Returns 0 or -EPROTO. */
int wsb_control_check_chunk(const void *data, size_t len);

/* Sends one message on fd without blocking. Returns 0 or -errno. */
int wsb_control_send(int fd, const struct wsb_control_msg *msg);

/* Checks a received message: known type and exact size. Returns 0 or -EPROTO. */
int wsb_control_check(const void *data, size_t len);

#endif
