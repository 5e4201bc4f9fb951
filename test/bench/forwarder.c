/* wsbal-bench-forwarder: the cheapest TCP relay compare can measure the proxies against.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * The reference row of test/bench/compare ("Where the limit is", issue 20): what relaying costs
 * on this machine with nothing a proxy adds. Each worker process has its own SO_REUSEPORT
 * listener and one level-triggered epoll set; an accepted client gets a backend connection
 * (round robin over the --backend ports on 127.0.0.1) and from then on every readable socket
 * gets one read and one write to its peer, with no parsing: the WebSocket upgrade and every
 * frame pass as bytes. What the peer does not take at once is kept (at most one read's worth,
 * BUF_MAX) and reading from that side stops until it is written. The first end of file or error
 * on either side closes both once what is owed to the other is written; close() alone takes a
 * descriptor out of the epoll set. SIGTERM ends the workers (the parent passes it on).
 */

#define BUF_MAX      16384
#define EVENTS_MAX   256
#define BACKENDS_MAX 16
#define WORKERS_MAX  16

struct conn {
  int fd;
  struct conn *peer; /* NULL once the other side is closed */
  size_t off, len;   /* bytes of pend still owed to this socket */
  bool closing;      /* close once pend is written */
  struct conn *next; /* on the list of closed connections freed after each batch */
  char pend[BUF_MAX];
};

static int ep;
static struct sockaddr_in backends[BACKENDS_MAX];
static int n_backends;
static unsigned next_backend;
static struct conn *dead;
static char buf[BUF_MAX];

static void conn_close(struct conn *c) {
  if (c->fd < 0)
    return;
  close(c->fd);
  c->fd = -1;
  c->next = dead;
  dead = c;
  struct conn *p = c->peer;
  c->peer = NULL;
  if (p == NULL)
    return;
  p->peer = NULL;
  if (p->len == p->off) {
    conn_close(p);
    return;
  }
  p->closing = true;
  struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = p}; /* nothing more is read from it */
  if (epoll_ctl(ep, EPOLL_CTL_MOD, p->fd, &ev) != 0)
    conn_close(p);
}

static void watch(struct conn *c, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
    conn_close(c);
}

/* One read from c, one write of it to c's peer; the rest waits in the peer's pend. */
static void relay(struct conn *c) {
  struct conn *p = c->peer;
  if (p == NULL) { /* the other side is gone: nothing more is read */
    conn_close(c);
    return;
  }
  ssize_t n = read(c->fd, buf, sizeof(buf));
  if (n <= 0) {
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      return;
    conn_close(c);
    return;
  }
  ssize_t w = write(p->fd, buf, (size_t)n);
  if (w < 0) {
    if (errno != EAGAIN && errno != EINTR) {
      conn_close(p);
      return;
    }
    w = 0;
  }
  if (w == n)
    return;
  memcpy(p->pend, buf + w, (size_t)(n - w));
  p->off = 0;
  p->len = (size_t)(n - w);
  watch(p, EPOLLIN | EPOLLOUT);
  if (c->fd >= 0)
    watch(c, 0);
}

/* c is writable: what is owed to it goes out; once all of it has, its peer is read again. */
static void flush(struct conn *c) {
  ssize_t w = write(c->fd, c->pend + c->off, c->len - c->off);
  if (w < 0) {
    if (errno != EAGAIN && errno != EINTR)
      conn_close(c);
    return;
  }
  c->off += (size_t)w;
  if (c->off < c->len)
    return;
  c->off = c->len = 0;
  if (c->closing) {
    conn_close(c);
    return;
  }
  watch(c, EPOLLIN);
  if (c->fd >= 0 && c->peer != NULL)
    watch(c->peer, EPOLLIN);
}

static struct conn *conn_new(int fd) {
  struct conn *c = malloc(sizeof(*c));
  if (c == NULL)
    return NULL;
  c->fd = fd;
  c->peer = NULL;
  c->off = c->len = 0;
  c->closing = false;
  c->next = NULL;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
    free(c);
    return NULL;
  }
  return c;
}

/* A client: a backend connection (non-blocking connect; the first write to it waits for it). */
static void accept_one(int cfd) {
  int one = 1;
  setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  int bfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (bfd < 0) {
    close(cfd);
    return;
  }
  setsockopt(bfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  const struct sockaddr_in *to = &backends[next_backend++ % (unsigned)n_backends];
  if (connect(bfd, (const struct sockaddr *)to, sizeof(*to)) != 0 && errno != EINPROGRESS) {
    close(bfd);
    close(cfd);
    return;
  }
  struct conn *c = conn_new(cfd);
  struct conn *b = c == NULL ? NULL : conn_new(bfd);
  if (b == NULL) {
    free(c);
    close(cfd);
    close(bfd);
    return;
  }
  c->peer = b;
  b->peer = c;
}

static int listen_on(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
      bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 1024) != 0) {
    perror("wsbal-bench-forwarder: listen");
    return -1;
  }
  return fd;
}

static int worker(int port) {
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  int lfd = listen_on(port);
  ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  if (lfd < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) != 0)
    return 3;
  struct epoll_event evs[EVENTS_MAX];
  for (;;) {
    int n = epoll_wait(ep, evs, EVENTS_MAX, -1);
    if (n < 0 && errno != EINTR)
      return 3;
    for (int i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      if (c == NULL) {
        int cfd;
        while ((cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
          accept_one(cfd);
        continue;
      }
      if (c->fd >= 0 && (evs[i].events & EPOLLOUT) && c->len > c->off)
        flush(c);
      if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c->closing)
        relay(c);
      else if (c->fd >= 0 && (evs[i].events & (EPOLLHUP | EPOLLERR)))
        conn_close(c);
    }
    while (dead != NULL) { /* no event of this batch refers to them any more */
      struct conn *d = dead;
      dead = d->next;
      free(d);
    }
  }
}

static void usage(void) {
  fprintf(stderr, "usage: wsbal-bench-forwarder --port P [--workers N] --backend PORT...\n"
                  "Relays 127.0.0.1:P to the backends on 127.0.0.1, round robin, N processes.\n");
  exit(2);
}

static pid_t kids[WORKERS_MAX];
static int n_kids;

static void on_term(int sig) {
  for (int i = 0; i < n_kids; i++)
    kill(kids[i], sig);
  _exit(0);
}

int main(int argc, char **argv) {
  int port = -1, workers = 1;
  for (int i = 1; i < argc; i += 2) { /* --option value pairs */
    if (i + 1 >= argc)
      usage();
    int v = atoi(argv[i + 1]);
    if (strcmp(argv[i], "--port") == 0 && v > 0 && v < 65536)
      port = v;
    else if (strcmp(argv[i], "--workers") == 0 && v > 0 && v <= WORKERS_MAX)
      workers = v;
    else if (strcmp(argv[i], "--backend") == 0 && v > 0 && v < 65536 && n_backends < BACKENDS_MAX) {
      backends[n_backends].sin_family = AF_INET;
      backends[n_backends].sin_port = htons((uint16_t)v);
      backends[n_backends].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      n_backends++;
    } else
      usage();
  }
  if (port < 0 || n_backends == 0)
    usage();
  signal(SIGPIPE, SIG_IGN);
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  for (int i = 0; i < workers; i++) {
    pid_t pid = fork();
    if (pid == 0) {
      signal(SIGTERM, SIG_DFL);
      signal(SIGINT, SIG_DFL);
      _exit(worker(port));
    }
    if (pid < 0) {
      perror("wsbal-bench-forwarder: fork");
      on_term(SIGTERM);
    }
    kids[n_kids++] = pid;
  }
  int status = 0;
  while (wait(&status) > 0) /* a worker that fails ends the forwarder */
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      on_term(SIGTERM);
  return 0;
}
