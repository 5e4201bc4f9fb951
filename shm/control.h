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
};

struct wsb_control_msg {
  uint32_t type;
  uint32_t len;      /* bytes of the whole message, this header included */
  uint64_t session;  /* KILL_SESSION, FAILOVER_SESSION */
  int32_t slot;      /* *_BACKEND: the backend; FAILOVER_SESSION: the target, or -1 */
  uint16_t code;     /* KILL_SESSION: the close code */
  char reason[124];  /* KILL_SESSION: the close reason, NUL-terminated */
};

/* Sends one message on fd without blocking. Returns 0 or -errno. */
int wsb_control_send(int fd, const struct wsb_control_msg *msg);

/* Checks a received message: known type and exact size. Returns 0 or -EPROTO. */
int wsb_control_check(const void *data, size_t len);

#endif
