/* wsbalctl's HTTP/1.1 exchange: one blocking request per connection, the answer read whole. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "ctl.h"
#include "errors.h"
#include "http.h"

#define CONNECT_TIMEOUT_MS 5000
/* Long enough for a reload or a session list that waits on every worker, and for an upgrade,
   which answers once the new master is ready or its 30 s are up. */
#define IO_TIMEOUT_S 40
#define HEAD_MAX     16384
#define REQUEST_HEAD 4096
#define BODY_MAX     (64u * 1024 * 1024)

static int addr_error(char *err, size_t errlen, const char *text, const char *why) {
  snprintf(err, errlen, "bad admin address \"%s\": %s", text, why);
  return WSB_EVALUE;
}

static bool port_is_valid(const char *p) {
  size_t n = strlen(p);
  if (n == 0 || n > 5)
    return false;
  unsigned long v = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9')
      return false;
    v = v * 10 + (unsigned long)(p[i] - '0');
  }
  return v >= 1 && v <= 65535;
}

int wsb_ctl_addr_parse(const char *text, struct wsb_ctl_addr *addr, char *err, size_t errlen) {
  char buf[300];
  const char *s = text;
  if (strncmp(s, "https://", 8) == 0)
    return addr_error(err, errlen, text, "the admin API speaks plain HTTP");
  if (strncmp(s, "http://", 7) == 0)
    s += 7;
  size_t n = strlen(s);
  if (n > 0 && s[n - 1] == '/')
    n--;
  if (n == 0 || n >= sizeof(buf))
    return addr_error(err, errlen, text, n == 0 ? "empty" : "too long");
  memcpy(buf, s, n);
  buf[n] = '\0';

  const char *host = buf, *port = WSB_CTL_DEFAULT_PORT;
  bool v6 = false;
  if (buf[0] == '[') {
    char *close = strchr(buf, ']');
    if (close == NULL || (close[1] != '\0' && close[1] != ':'))
      return addr_error(err, errlen, text, "expected [IPV6]:PORT");
    *close = '\0';
    host = buf + 1;
    if (close[1] == ':')
      port = close + 2;
    v6 = true;
  } else {
    char *colon = strrchr(buf, ':');
    if (colon != NULL && strchr(buf, ':') == colon) {
      *colon = '\0';
      port = colon + 1;
    } else if (colon != NULL) {
      v6 = true; /* several colons and no brackets: an IPv6 address without a port */
    }
  }
  if (host[0] == '\0')
    return addr_error(err, errlen, text, "no host");
  if (strchr(host, '/') != NULL || strchr(host, '@') != NULL)
    return addr_error(err, errlen, text, "expected HOST:PORT");
  if (!port_is_valid(port))
    return addr_error(err, errlen, text, "the port must be a number from 1 to 65535");
  if (strlen(host) >= sizeof(addr->host))
    return addr_error(err, errlen, text, "host name too long");
  /* Lengths were checked above; memcpy says so to the compiler, which snprintf would not. */
  memcpy(addr->host, host, strlen(host) + 1);
  snprintf(addr->port, sizeof(addr->port), "%s", port);
  snprintf(addr->display, sizeof(addr->display), v6 ? "[%s]:%s" : "%s:%s", host, port);
  return 0;
}

/* ---- connecting ---- */

/* A connect that gives up after CONNECT_TIMEOUT_MS. Returns 0 or -errno. */
static int connect_with_timeout(int fd, const struct sockaddr *sa, socklen_t salen) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
    return -errno;
  if (connect(fd, sa, salen) != 0) {
    if (errno != EINPROGRESS)
      return -errno;
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int r;
    do
      r = poll(&p, 1, CONNECT_TIMEOUT_MS);
    while (r < 0 && errno == EINTR);
    if (r < 0)
      return -errno;
    if (r == 0)
      return -ETIMEDOUT;
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
      return -errno;
    if (soerr != 0)
      return -soerr;
  }
  if (fcntl(fd, F_SETFL, flags) < 0)
    return -errno;
  struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)
    return -errno;
  return 0;
}

/* Tries every address the name resolves to. Returns a connected socket or a negative code. */
static int open_connection(const struct wsb_ctl_addr *addr, char *err, size_t errlen) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  struct addrinfo *list;
  int gai = getaddrinfo(addr->host, addr->port, &hints, &list);
  if (gai != 0) {
    snprintf(err, errlen, "cannot reach the admin API at %s: %s", addr->display,
             gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
    return WSB_EVALUE;
  }
  int rc = -EADDRNOTAVAIL;
  for (struct addrinfo *ai = list; ai != NULL; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      rc = -errno;
      continue;
    }
    rc = connect_with_timeout(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc == 0) {
      freeaddrinfo(list);
      return fd;
    }
    close(fd);
  }
  freeaddrinfo(list);
  snprintf(err, errlen, "cannot reach the admin API at %s: %s", addr->display, strerror(-rc));
  return rc;
}

/* ---- the exchange ---- */

static int send_all(int fd, const char *p, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return errno == EAGAIN ? -ETIMEDOUT : -errno;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* recv that reports a timeout as -ETIMEDOUT. Returns bytes read (0 at EOF) or -errno. */
static ssize_t recv_some(int fd, char *buf, size_t cap) {
  ssize_t n;
  do
    n = recv(fd, buf, cap, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return errno == EAGAIN ? -ETIMEDOUT : -errno;
  return n;
}

/* A header value must not be able to end the header: no CR, LF or other control byte. */
static bool header_value_is_safe(const char *v) {
  for (; *v; v++)
    if ((unsigned char)*v < ' ' || *v == 0x7f)
      return false;
  return true;
}

static int send_request(int fd, const struct wsb_ctl_addr *addr, const struct wsb_ctl_request *rq,
                        char *err, size_t errlen) {
  char head[REQUEST_HEAD];
  bool token = rq->token != NULL && rq->token[0] != '\0';
  if (token && !header_value_is_safe(rq->token)) {
    snprintf(err, errlen, "the token holds a control character");
    return WSB_EVALUE;
  }
  int n =
      snprintf(head, sizeof(head),
               "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: wsbalctl/%s\r\n"
               "Accept: application/json\r\n%s%s%s%sContent-Length: %zu\r\n"
               "Connection: close\r\n\r\n",
               rq->method, rq->target, addr->display, WSB_VERSION,
               token ? "Authorization: Bearer " : "", token ? rq->token : "", token ? "\r\n" : "",
               rq->body != NULL ? "Content-Type: application/json\r\n" : "",
               rq->body != NULL ? rq->body_len : 0);
  if (n < 0 || (size_t)n >= sizeof(head)) {
    snprintf(err, errlen, "the request is too long");
    return WSB_EVALUE;
  }
  int rc = send_all(fd, head, (size_t)n);
  if (rc == 0 && rq->body != NULL)
    rc = send_all(fd, rq->body, rq->body_len);
  if (rc != 0)
    snprintf(err, errlen, "cannot send to the admin API at %s: %s", addr->display, strerror(-rc));
  return rc;
}

/* The body's length from Content-Length: -1 when absent (read to EOF), WSB_EHTTP when bad. */
static long long body_length(const struct wsb_http_head *h) {
  const struct wsb_header *cl = wsb_http_find(h, "Content-Length", NULL);
  if (cl == NULL)
    return -1;
  if (cl->value.len == 0)
    return WSB_EHTTP;
  long long v = 0;
  for (size_t i = 0; i < cl->value.len; i++) {
    char c = cl->value.p[i];
    if (c < '0' || c > '9' || v > BODY_MAX)
      return WSB_EHTTP;
    v = v * 10 + (c - '0');
  }
  return v;
}

/* Reads the head into head[]; on success *head_len is its length and *got what was read. */
static int read_head(int fd, struct wsb_http_head *h, char *head, size_t *head_len, size_t *got,
                     const struct wsb_ctl_addr *addr, char *err, size_t errlen) {
  size_t len = 0;
  wsb_http_head_init(h, true, HEAD_MAX);
  for (;;) {
    ssize_t n = recv_some(fd, head + len, HEAD_MAX - len);
    if (n < 0) {
      snprintf(err, errlen, "no answer from the admin API at %s: %s", addr->display,
               strerror((int)-n));
      return (int)n;
    }
    if (n == 0) {
      snprintf(err, errlen, "the admin API at %s closed the connection %s", addr->display,
               len == 0 ? "without answering" : "in the middle of its answer");
      return -ECONNRESET;
    }
    ssize_t rc = wsb_http_feed(h, head + len, (size_t)n);
    len += (size_t)n;
    if (rc >= 0) {
      *head_len = h->seen;
      *got = len;
      return 0;
    }
    if (rc != WSB_PARTIAL || len == HEAD_MAX) {
      snprintf(err, errlen, "the admin API at %s sent a malformed answer: %s", addr->display,
               wsb_strerror(rc == WSB_PARTIAL ? WSB_EHEAD_TOO_LARGE : (int)rc));
      return rc == WSB_PARTIAL ? WSB_EHEAD_TOO_LARGE : (int)rc;
    }
  }
}

/* Reads the body: exactly want bytes, or until EOF when want is -1. */
static int read_body(int fd, long long want, const char *first, size_t nfirst,
                     struct wsb_ctl_answer *ans, const struct wsb_ctl_addr *addr, char *err,
                     size_t errlen) {
  size_t cap = want >= 0 ? (size_t)want + 1 : nfirst + 4096;
  if (want >= 0 && nfirst > (size_t)want)
    nfirst = (size_t)want; /* bytes past the body: the server broke Connection: close */
  char *body = malloc(cap);
  if (body == NULL) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  memcpy(body, first, nfirst);
  size_t len = nfirst;
  while (want < 0 || len < (size_t)want) {
    if (want < 0 && len + 1 >= cap) {
      char *p = cap * 2 > BODY_MAX ? NULL : realloc(body, cap * 2);
      if (p == NULL) {
        free(body);
        snprintf(err, errlen, "the admin API's answer is too large");
        return -ENOMEM;
      }
      body = p;
      cap *= 2;
    }
    ssize_t n = recv_some(fd, body + len, cap - 1 - len);
    if (n == 0 && want < 0)
      break;
    if (n <= 0) {
      free(body);
      snprintf(err, errlen, "the admin API at %s %s", addr->display,
               n == 0 ? "closed the connection in the middle of its answer"
                      : "stopped answering midway");
      return n == 0 ? -ECONNRESET : (int)n;
    }
    len += (size_t)n;
  }
  body[len] = '\0';
  ans->body = body;
  ans->len = len;
  return 0;
}

static int exchange(int fd, const struct wsb_ctl_addr *addr, const struct wsb_ctl_request *rq,
                    struct wsb_ctl_answer *ans, char *err, size_t errlen) {
  int rc = send_request(fd, addr, rq, err, errlen);
  if (rc != 0)
    return rc;
  char *head = malloc(HEAD_MAX);
  struct wsb_http_head *h = malloc(sizeof(*h));
  size_t head_len = 0, got = 0;
  if (head == NULL || h == NULL) {
    snprintf(err, errlen, "out of memory");
    rc = -ENOMEM;
  } else {
    rc = read_head(fd, h, head, &head_len, &got, addr, err, errlen);
  }
  if (rc == 0) {
    long long want = body_length(h);
    if (wsb_http_find(h, "Transfer-Encoding", NULL) != NULL || want == WSB_EHTTP) {
      snprintf(err, errlen,
               "the admin API at %s sent a body wsbalctl cannot read "
               "(chunked or a bad Content-Length)",
               addr->display);
      rc = WSB_EHTTP;
    } else {
      ans->status = h->status;
      rc = read_body(fd, want, head + head_len, got - head_len, ans, addr, err, errlen);
    }
  }
  free(h);
  free(head);
  return rc;
}

int wsb_ctl_call(const struct wsb_ctl_addr *addr, const struct wsb_ctl_request *rq,
                 struct wsb_ctl_answer *ans, char *err, size_t errlen) {
  *ans = (struct wsb_ctl_answer){0};
  int fd = open_connection(addr, err, errlen);
  if (fd < 0)
    return fd;
  int rc = exchange(fd, addr, rq, ans, err, errlen);
  close(fd);
  return rc;
}
