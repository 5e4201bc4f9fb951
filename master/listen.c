/* Binding the listening sockets that workers share through SO_REUSEPORT. */
#include "listen.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LISTEN_BACKLOG 1024

static int open_one(const struct addrinfo *ai, bool reuseport) {
  int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
  if (fd < 0)
    return -errno;
  int on = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
      (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0) ||
      (ai->ai_family == AF_INET6 &&
       setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) != 0) ||
      /* Accepted sockets are cloned from the listener when their handshake completes, so they
         have TCP_NODELAY without a system call each (the worker sets none), also the ones that
         wait in the queue before a worker runs. */
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) != 0 ||
      bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
    int rc = -errno;
    close(fd);
    return rc;
  }
  return fd;
}

/* The addresses HOST:PORT binds to; what names the address in err comes from what. */
static int lookup(const struct wsb_hostport *hp, const char *what, struct addrinfo **res, char *err,
                  size_t errlen) {
  struct addrinfo hints = {
      .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
  char port[8];
  snprintf(port, sizeof(port), "%u", (unsigned)hp->port);
  int rc = getaddrinfo(hp->host, port, &hints, res);
  if (rc != 0) {
    snprintf(err, errlen, "cannot resolve %s%s: %s", what, hp->host, gai_strerror(rc));
    return -EADDRNOTAVAIL;
  }
  return 0;
}

int wsb_listen_resolve(const struct wsb_hostport *hp, char *err, size_t errlen) {
  struct addrinfo *res = NULL;
  int rc = lookup(hp, "", &res, err, errlen);
  if (rc == 0)
    freeaddrinfo(res);
  return rc;
}

int wsb_listen_open(const struct wsb_hostport *hp, bool reuseport, char *err, size_t errlen) {
  struct addrinfo *res = NULL;
  int rc = lookup(hp, "listen address ", &res, err, errlen);
  if (rc != 0)
    return rc;
  int fd = open_one(res, reuseport);
  freeaddrinfo(res);
  if (fd < 0)
    snprintf(err, errlen, "cannot listen on %s%s%s:%u: %s", strchr(hp->host, ':') ? "[" : "",
             hp->host, strchr(hp->host, ':') ? "]" : "", (unsigned)hp->port, strerror(-fd));
  return fd;
}
