/* The control messages' framing: one fixed-size record per SEQPACKET datagram. */
#include "control.h"

#include <errno.h>
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
      msg.type > WSB_CTL_FAILOVER_SESSION)
    return -EPROTO;
  if (msg.reason[sizeof(msg.reason) - 1] != '\0')
    return -EPROTO;
  return 0;
}
