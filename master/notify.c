/* sd_notify written directly: a datagram with "KEY=value" lines to the socket systemd names. */
#include "notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int wsb_notify(const char *fmt, ...) {
  const char *path = getenv("NOTIFY_SOCKET");
  if (path == NULL || path[0] == '\0')
    return 0;
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  size_t len = strlen(path);
  if (len >= sizeof(addr.sun_path) || (path[0] != '/' && path[0] != '@'))
    return -EINVAL;
  memcpy(addr.sun_path, path, len);
  if (path[0] == '@')
    addr.sun_path[0] = '\0'; /* an abstract socket */

  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof(msg))
    return -EMSGSIZE;

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  ssize_t sent = sendto(fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&addr,
                        (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
  int rc = sent == n ? 0 : -errno;
  close(fd);
  return rc;
}

int wsb_notify_extend(uint64_t ms) {
  return wsb_notify("EXTEND_TIMEOUT_USEC=%llu", (unsigned long long)ms * 1000ULL);
}
