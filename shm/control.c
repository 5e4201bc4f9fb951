/* The control messages' framing: one fixed-size record per SEQPACKET datagram. */
#include "control.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

int wsb_control_send(int fd, const struct wsb_control_msg *msg) {
  ssize_t n = send(fd, msg, sizeof(*msg), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n < 0)
    return -errno;
  return n == (ssize_t)sizeof(*msg) ? 0 : -EMSGSIZE;
}

int wsb_control_check(const void *data, size_t len) {
  struct wsb_control_msg msg;
  if (len != sizeof(msg))
    return -EPROTO;
  memcpy(&msg, data, sizeof(msg));
  if (msg.len != sizeof(msg) || msg.type < WSB_CTL_FAILOVER_BACKEND ||
      (msg.type > WSB_CTL_LIST_SESSIONS && msg.type != WSB_CTL_HANDOVER))
    return -EPROTO;
  if (msg.reason[sizeof(msg.reason) - 1] != '\0')
    return -EPROTO;
  return 0;
}

int wsb_control_check_chunk(const void *data, size_t len) {
  const size_t head = offsetof(struct wsb_sessions_chunk, entries);
  struct wsb_sessions_chunk c;
  if (len < head || len > sizeof(c))
    return -EPROTO;
  memcpy(&c, data, head);
  if (c.type != WSB_CTL_SESSIONS || c.len != len || c.count > WSB_SESSIONS_PER_CHUNK ||
      len != head + c.count * sizeof(struct wsb_session_info) || c.last > 1 || c.error > 0 ||
      (c.error < 0 && (c.count > 0 || !c.last)))
    return -EPROTO;
  return 0;
}
