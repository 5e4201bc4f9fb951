/* Session hand-over in a binary upgrade: an old worker writes a session down and sends it with
 * both sockets; the new worker takes it up where it was. Design: common/session_state.h. */
#include "handover.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "errors.h"
#include "log.h"
#include "relay.h"
#include "replay.h"
#include "route.h"
#include "session.h"
#include "session_state.h"
#include "uring.h"

#define TICK_MS          20  /* how often an old worker looks again for sessions that can move */
#define IO_TIMEOUT_S     5   /* a new worker that takes longer than this is not taking it */
#define CONNECT_ATTEMPTS 250 /* one per tick: the new worker has 5 s to listen */
#define MAX_FDS_QUEUED   64  /* descriptors received and not yet matched with their message */
#define ANSWER_TAKEN     'T' /* the new worker runs the session now */
#define ANSWER_REFUSED   'R' /* it does not: the session stays */

/* A connection from an old worker, on the new worker's side. */
struct hconn {
  struct wsb_handover *h;
  struct hconn *next;
  int fd;
  uv_poll_t poll;
  uint8_t *buf;
  size_t len, cap;
  int fds[MAX_FDS_QUEUED];
  size_t nfds;
};

struct wsb_handover {
  struct wsb_worker *w;
  int listen_fd; /* new side: -1 when not listening */
  uv_poll_t listen_poll;
  struct hconn *conns;
  int out_fd; /* old side: to the new worker; -1 before, or after it failed */
  bool sending;
  bool gave_up; /* the new worker could not be reached, or failed: the rest drains */
  pid_t master; /* the new master, and which of its workers takes this one's sessions */
  unsigned target;
  unsigned attempts;
  uv_timer_t tick;
  bool tick_init;
  unsigned moved, kept, lost;
  uint64_t move_ns, longest_ns; /* time the moves took, in all and the longest one: a session
                                   is not relayed from its encoding to the new worker's answer */
};

/* What a session and its state message hold alike, field for field: copied either way. */
/* clang-format off */
#define SHARED_FIELDS(X)                                                                      \
  X(path_off) X(path_len) X(host_off) X(host_len) X(ua_off) X(ua_len) X(path_strip)         \
  X(messages) X(bytes) X(failovers) X(connect_ms) X(backend_proven) X(backend_heard)         \
  X(client_family) X(peer_family) X(local_family) X(peer_port) X(local_port) X(client_addr) \
  X(peer_addr) X(local_addr) X(pmd)
/* clang-format on */
#define COPY_FIELD(f)                                                                        \
  _Static_assert(sizeof(((struct wsb_session *)0)->f) == sizeof(((struct wsb_state *)0)->f), \
                 #f " has one size in both");                                                \
  memcpy(&dst_->f, &src_->f, sizeof(dst_->f));
#define COPY_FIELDS(dst, src)   \
  do {                          \
    __typeof__(dst) dst_ = dst; \
    __typeof__(src) src_ = src; \
    SHARED_FIELDS(COPY_FIELD)   \
  } while (0)

static struct wsb_handover *handover(struct wsb_worker *w) {
  if (w->handover == NULL && (w->handover = calloc(1, sizeof(*w->handover))) != NULL) {
    w->handover->w = w;
    w->handover->listen_fd = -1;
    w->handover->out_fd = -1;
  }
  return w->handover;
}

socklen_t wsb_handover_socket_name(struct sockaddr_un *sa, pid_t master, unsigned slot) {
  memset(sa, 0, sizeof(*sa));
  sa->sun_family = AF_UNIX;
  /* Abstract: nothing in the file system to clean up after a crash. */
  int n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, "wsbal-handover-%ld-%u",
                   (long)master, slot);
  return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/* ---- the new worker: taking sessions up ---- */

static uint64_t loop_ms(const struct wsb_worker *w, uint64_t unix_ms) {
  return unix_ms > w->unix_offset_ms ? unix_ms - w->unix_offset_ms : 0;
}

static int slot_named(const struct wsb_worker *w, struct wsb_state_bytes name) {
  for (uint32_t i = 0; i < w->table->nslots; i++) {
    const struct wsb_shm_backend *b = &w->table->backends[i];
    if ((b->in_use || b->retired) && strlen(b->name) == name.len &&
        memcmp(b->name, name.p, name.len) == 0)
      return (int)i;
  }
  return -1;
}

static int pool_named(const struct wsb_worker *w, struct wsb_state_bytes name) {
  char text[WSB_STATE_NAME_MAX + 1];
  memcpy(text, name.p, name.len);
  text[name.len] = '\0';
  return wsb_shm_pool_find(w->table, text);
}

_Static_assert(WSB_STATE_ROUTE_MAX == WSB_ROUTE_NAME_MAX - 1, "a route name fits the message");

/* The request head with the route's name right after it, as upgrade.c keeps them. */
static char *copy_head(const struct wsb_state *st) {
  char *p = malloc(st->head.len + st->route.len);
  if (p != NULL) {
    memcpy(p, st->head.p, st->head.len);
    if (st->route.len > 0)
      memcpy(p + st->head.len, st->route.p, st->route.len);
  }
  return p;
}

/* A NUL-terminated copy. */
static void *copy_bytes(struct wsb_state_bytes b) {
  uint8_t *p = malloc(b.len + 1);
  if (p != NULL) {
    memcpy(p, b.p, b.len);
    p[b.len] = '\0';
  }
  return p;
}

static int restore_leg(struct wsb_session *s, struct wsb_leg *l, const struct wsb_state_leg *st,
                       int fd) {
  struct wsb_worker *w = s->w;
  uv_tcp_init(&w->loop, &l->tcp);
  l->tcp.data = s;
  l->open = true;
  s->handles++;
  int rc = uv_tcp_open(&l->tcp, fd);
  if (rc != 0) {
    close(fd); /* the handle did not take it */
    return rc;
  }
  if (st->pending.len > 0) {
    if ((l->pending = copy_bytes(st->pending)) == NULL)
      return UV_ENOMEM;
    l->pending_len = l->pending_cap = st->pending.len;
  }
  if (st->hold.len > 0) {
    if (wsb_buf_append(&l->hold, st->hold.p, st->hold.len) != 0)
      return UV_ENOMEM;
    wsb_shm_add(&w->stats->hold_bytes, st->hold.len);
  }
  l->msg.msg_len = st->msg_len;
  l->msg.open_opcode = st->open_opcode;
  l->partial_out = st->partial_out;
  l->ping_outstanding = st->ping_outstanding;
  l->last_rx_ms = loop_ms(w, st->last_rx_ms);
  l->ping_sent_ms = loop_ms(w, st->ping_sent_ms);
  /* Bytes the old worker had queued would go here first; it moves only sessions with none. */
  return st->queued.len == 0 ? 0 : UV_EINVAL;
}

/* Is fd a connected TCP socket (what a session's leg is), whoever sent it? */
static bool tcp_socket(int fd) {
  int type = 0, domain = 0;
  socklen_t len = sizeof(type);
  struct sockaddr_storage peer;
  socklen_t plen = sizeof(peer);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM)
    return false;
  len = sizeof(domain);
  return getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 &&
         (domain == AF_INET || domain == AF_INET6) &&
         getpeername(fd, (struct sockaddr *)&peer, &plen) == 0;
}

/* A session as the old worker had it, on the two sockets; 0, or why it was not taken (the
   descriptors are then closed here: the old worker still has its own). */
static int adopt(struct wsb_worker *w, const struct wsb_state *st, int cfd, int bfd) {
  wsb_worker_refresh_table(w);
  int slot = slot_named(w, st->backend), pool = pool_named(w, st->pool);
  int rc = slot < 0 ? WSB_ENOBACKEND : pool < 0 || w->draining ? UV_ECANCELED : 0;
  if (rc == 0 && (!tcp_socket(cfd) || !tcp_socket(bfd)))
    rc = UV_ENOTSOCK;
  if (rc != 0) {
    close(cfd);
    close(bfd);
    return rc;
  }
  struct wsb_session *s = calloc(1, sizeof(*s));
  if (s == NULL) {
    close(cfd);
    close(bfd);
    return UV_ENOMEM;
  }
  s->w = w;
  s->id = st->id;
  s->backend_slot = -1;
  s->prefer_slot = -1;
  s->kept_slot = -1;
  s->pool = (uint32_t)pool;
  s->client.s = s->backend.s = s;
  s->client.peer = &s->backend;
  s->backend.peer = &s->client;
  s->client.is_client = true;
  uv_timer_init(&w->loop, &s->timer);
  s->timer.data = s;
  s->handles = 1;
  s->state = S_RELAY;
  wsb_list_insert_head(&w->sessions, &s->link);
  wsb_shm_add(&w->stats->live, 1);
  s->started_ms = loop_ms(w, st->started_ms);
  s->backend_since_ms = loop_ms(w, st->backend_since_ms);
  s->last_data_ms = loop_ms(w, st->last_data_ms);
  rc = restore_leg(s, &s->client, &st->legs[WSB_STATE_CLIENT], cfd);
  int brc = restore_leg(s, &s->backend, &st->legs[WSB_STATE_BACKEND], bfd);
  rc = rc != 0 ? rc : brc;
  if (rc != 0) {
    /* Not a session of this worker yet: no close frame, no log line. */
    s->state = S_CLOSED;
    wsb_shm_sub(&w->stats->live, 1);
    wsb_list_remove(&w->sessions, &s->link);
    wsb__leg_close_now(&s->client);
    wsb__leg_close_now(&s->backend);
    uv_close((uv_handle_t *)&s->timer, wsb__session_handle_closed);
    return rc;
  }
  uv_tcp_nodelay(&s->client.tcp, 1);
  s->head = copy_head(st);
  s->head_len = st->head.len;
  s->route_len = (uint8_t)st->route.len;
  s->protocol = st->protocol.len > 0 ? copy_bytes(st->protocol) : NULL;
  COPY_FIELDS(s, st);
  /* Compression without context: the worker's streams serve it from its next message on. */
  s->client.msg.rsv1_ok = s->pmd.on;
  for (unsigned i = 0; i < st->nused; i++) {
    int used = slot_named(w, st->used[i]);
    if (used >= 0)
      s->used[s->nused++] = (uint16_t)used;
  }
  if (st->replay.len > 0 && wsb_buf_append(&s->replay, st->replay.p, st->replay.len) == 0) {
    s->replay_open = st->replay_open;
    s->replay_seen = st->replay_seen;
    wsb__replay_account(s);
  }
  /* Its counts: the old worker gives them back in its own segment when it forgets it. */
  wsb__session_hold_backend(s, slot);
  if (st->admitted) {
    s->admitted = true;
    wsb_shm_add(&w->stats->admitted, 1);
  }
  wsb_shm_add(&w->stats->upgraded, 1);
  if (s->head == NULL || (st->protocol.len > 0 && s->protocol == NULL) ||
      wsb__leg_start_reading(&s->client) != 0 || wsb__leg_start_reading(&s->backend) != 0) {
    wsb__session_close(s, UV_ENOMEM); /* ours now: it ends as any session does */
    return 0;
  }
  wsb__relay_arm_timer(s);
  return 0;
}

static void hconn_closed(uv_handle_t *h) {
  struct hconn *c = h->data;
  free(c->buf);
  free(c);
}

static void hconn_close(struct hconn *c) {
  struct wsb_handover *h = c->h;
  for (struct hconn **p = &h->conns; *p != NULL; p = &(*p)->next)
    if (*p == c) {
      *p = c->next;
      break;
    }
  for (size_t i = 0; i < c->nfds; i++)
    close(c->fds[i]);
  uv_poll_stop(&c->poll);
  close(c->fd);
  uv_close((uv_handle_t *)&c->poll, hconn_closed);
}

static void take_fds(struct hconn *c, struct msghdr *mh) {
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm != NULL; cm = CMSG_NXTHDR(mh, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
      continue;
    size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
      if (c->nfds < MAX_FDS_QUEUED)
        c->fds[c->nfds++] = fd;
      else
        close(fd);
    }
  }
}

/* Whole messages in the buffer, each with the two descriptors sent with it. Returns false when
   the peer broke the protocol (the connection is then closed). */
static bool take_messages(struct hconn *c) {
  struct wsb_worker *w = c->h->w;
  for (;;) {
    ssize_t total = wsb_session_state_peek(c->buf, c->len);
    if (total == WSB_PARTIAL || (total > 0 && (size_t)total > c->len)) {
      size_t want = total > 0 ? (size_t)total : WSB_STATE_HEADER_LEN;
      if (want > c->cap) {
        uint8_t *p = realloc(c->buf, want);
        if (p == NULL)
          return false;
        c->buf = p;
        c->cap = want;
      }
      return true;
    }
    struct wsb_state st;
    int rc = total < 0 ? (int)total : (int)wsb_session_state_decode(&st, c->buf, c->len);
    char answer = ANSWER_REFUSED;
    if (rc >= 0 && c->nfds >= 2) {
#ifdef WSB_FAULT_INJECTION
      /* Tests: WSB_TEST_HANDOVER_DIE_AFTER=N: a new worker dies as the session after its Nth
         comes in, unanswered (test_upgrade.py: a crash loses at most the session in flight). */
      const char *die = getenv("WSB_TEST_HANDOVER_DIE_AFTER");
      if (die != NULL && atomic_load(&w->stats->upgraded) >= strtoull(die, NULL, 10))
        raise(SIGKILL);
#endif
      int cfd = c->fds[0], bfd = c->fds[1];
      c->nfds -= 2;
      memmove(c->fds, c->fds + 2, c->nfds * sizeof(int));
      rc = adopt(w, &st, cfd, bfd);
      answer = rc == 0 ? ANSWER_TAKEN : ANSWER_REFUSED;
      if (rc != 0)
        wsb_log_warn("handover: session %016llx not taken: %s", (unsigned long long)st.id,
                     wsb_strerror(rc));
    } else {
      wsb_log_warn("handover: a session state refused: %s",
                   rc < 0 ? wsb_strerror(rc) : "its sockets did not come with it");
    }
    if (write(c->fd, &answer, 1) != 1 || rc == WSB_ESTATE || rc == -E2BIG)
      return false; /* after a malformed message nothing after it can be framed */
    if (total < 0)
      return false; /* no length to skip it by */
    memmove(c->buf, c->buf + total, c->len - (size_t)total);
    c->len -= (size_t)total;
  }
}

static void on_hconn(uv_poll_t *p, int status, int events) {
  struct hconn *c = p->data;
  if (status < 0) {
    hconn_close(c);
    return;
  }
  for (;;) {
    if (c->len == c->cap) {
      size_t cap = c->cap ? c->cap * 2 : 4096;
      uint8_t *b = cap <= WSB_STATE_MAX_BYTES ? realloc(c->buf, cap) : NULL;
      if (b == NULL) {
        hconn_close(c);
        return;
      }
      c->buf = b;
      c->cap = cap;
    }
    union {
      struct cmsghdr align;
      char buf[CMSG_SPACE(sizeof(int) * 8)];
    } control;
    struct iovec iov = {c->buf + c->len, c->cap - c->len};
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = control.buf,
                        .msg_controllen = sizeof(control.buf)};
    ssize_t n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      return;
    if (n <= 0) {
      hconn_close(c); /* the old worker is done, or gone */
      return;
    }
    take_fds(c, &mh);
    c->len += (size_t)n;
    if (!take_messages(c)) {
      hconn_close(c);
      return;
    }
  }
}

static void on_handover_connection(uv_poll_t *p, int status, int events) {
  struct wsb_handover *h = p->data;
  int fd = accept4(h->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0)
    return;
  /* Only wsbal's own processes may hand sessions in: a socket of the same user. */
  struct ucred cred;
  socklen_t len = sizeof(cred);
  struct hconn *c = NULL;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != geteuid() ||
      (c = calloc(1, sizeof(*c))) == NULL) {
    close(fd);
    return;
  }
  c->h = h;
  c->fd = fd;
  uv_poll_init(&h->w->loop, &c->poll, fd);
  c->poll.data = c;
  c->next = h->conns;
  h->conns = c;
  uv_poll_start(&c->poll, UV_READABLE, on_hconn);
}

int wsb_handover_listen(struct wsb_worker *w) {
  struct wsb_handover *h = handover(w);
  if (h == NULL)
    return -ENOMEM;
  struct sockaddr_un sa;
  socklen_t len = wsb_handover_socket_name(&sa, getppid(), w->slot);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  if (bind(fd, (struct sockaddr *)&sa, len) != 0 || listen(fd, 16) != 0) {
    int rc = -errno;
    close(fd);
    return rc;
  }
  h->listen_fd = fd;
  uv_poll_init(&w->loop, &h->listen_poll, fd);
  h->listen_poll.data = h;
  uv_poll_start(&h->listen_poll, UV_READABLE, on_handover_connection);
  return 0;
}

/* ---- the old worker: handing sessions over ---- */

/* Between frames both ways, nothing queued, plain TCP, relaying: what the state message holds
   is then the whole session. */
static bool movable(const struct wsb_session *s) {
  const struct wsb_leg *legs[2] = {&s->client, &s->backend};
  if (s->state != S_RELAY || s->finishing || s->handover_refused || s->hs != NULL ||
      s->hx != NULL || s->head == NULL || s->replay_unsent || !wsb__slot_valid(s->backend_slot))
    return false;
  /* Compression moves as its parameters: not with a zlib stream of its own (context takeover),
     nor while a compressed client message is open (a stream lent to it until its end). */
  if (s->pmd.on &&
      (!s->pmd.server_no_takeover || !s->pmd.client_no_takeover || s->inflater != NULL ||
       s->deflater != NULL || (s->client.msg.open_opcode != 0 && s->client.msg.compressed)))
    return false;
  for (int i = 0; i < 2; i++) {
    const struct wsb_leg *l = legs[i];
    if (!l->open || l->tls != NULL || l->read_done || l->lingering || l->close_received ||
        l->close_sent || l->stream_left != 0 || l->queued != 0 || l->paused)
      return false;
  }
  return true;
}

static uint64_t unix_ms(const struct wsb_worker *w, uint64_t loop) {
  return loop + w->unix_offset_ms;
}

static struct wsb_state_bytes name_bytes(const char *name) {
  return (struct wsb_state_bytes){(const uint8_t *)name, (uint32_t)strlen(name)};
}

static void describe_leg(const struct wsb_worker *w, const struct wsb_leg *l,
                         struct wsb_state_leg *st) {
  st->pending = (struct wsb_state_bytes){l->pending, l->pending_len};
  st->hold = (struct wsb_state_bytes){wsb_buf_data(&l->hold), l->hold.len};
  st->msg_len = l->msg.msg_len;
  st->open_opcode = l->msg.open_opcode;
  st->partial_out = l->partial_out;
  st->ping_outstanding = l->ping_outstanding;
  st->last_rx_ms = unix_ms(w, l->last_rx_ms);
  st->ping_sent_ms = l->ping_outstanding ? unix_ms(w, l->ping_sent_ms) : 0;
}

static void describe(const struct wsb_session *s, struct wsb_state *st) {
  const struct wsb_worker *w = s->w;
  memset(st, 0, sizeof(*st));
  st->id = s->id;
  st->pool = name_bytes(w->table->pools[s->pool % WSB_SHM_MAX_POOLS].name);
  st->backend = name_bytes(w->table->backends[s->backend_slot].name);
  st->protocol = name_bytes(s->protocol != NULL ? s->protocol : "");
  for (unsigned i = 0; i < s->nused && i < WSB_STATE_USED_MAX; i++)
    st->used[st->nused++] = name_bytes(w->table->backends[s->used[i]].name);
  if (st->nused == 0)
    st->used[st->nused++] = st->backend;
  st->head = (struct wsb_state_bytes){(const uint8_t *)s->head, s->head_len};
  st->route = (struct wsb_state_bytes){(const uint8_t *)s->head + s->head_len, s->route_len};
  COPY_FIELDS(st, s);
  st->admitted = s->admitted;
  st->replay = (struct wsb_state_bytes){wsb_buf_data(&s->replay), s->replay.len};
  st->replay_open = s->replay_open;
  st->replay_seen = s->replay_seen;
  describe_leg(w, &s->client, &st->legs[WSB_STATE_CLIENT]);
  describe_leg(w, &s->backend, &st->legs[WSB_STATE_BACKEND]);
}

/* The message with both sockets attached to its first byte, then the rest. Blocking, with the
   socket's timeouts: the old worker is leaving, and a session must not change meanwhile. */
static int send_session(int fd, const uint8_t *msg, size_t len, int cfd, int bfd, bool *sent) {
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(2 * sizeof(int))];
  } control;
  memset(&control, 0, sizeof(control));
  struct iovec iov = {(void *)(uintptr_t)msg, len};
  struct msghdr mh = {.msg_iov = &iov,
                      .msg_iovlen = 1,
                      .msg_control = control.buf,
                      .msg_controllen = sizeof(control.buf)};
  struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(2 * sizeof(int));
  int fds[2] = {cfd, bfd};
  memcpy(CMSG_DATA(cm), fds, sizeof(fds));
  size_t off = 0;
  while (off < len) {
    ssize_t n =
        off == 0 ? sendmsg(fd, &mh, MSG_NOSIGNAL) : send(fd, msg + off, len - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return n < 0 ? -errno : -EPIPE;
    off += (size_t)n;
  }
  *sent = true;
  char answer;
  ssize_t n;
  while ((n = recv(fd, &answer, 1, 0)) < 0 && errno == EINTR)
    ;
  if (n != 1)
    return n < 0 ? -errno : -EPIPE;
  return answer == ANSWER_TAKEN ? 0 : -EREMOTEIO;
}

/* The session runs in the new worker now: this one lets go of it without a word to either
   peer, a log line or a count of an ending; its descriptors close in this process only. */
static void forget(struct wsb_session *s) {
  struct wsb_worker *w = s->w;
  wsb__session_set_state(s, S_CLOSED);
  wsb__session_release_backend(s);
  wsb_shm_sub(&w->stats->live, 1);
  if (s->admitted)
    wsb_shm_sub(&w->stats->admitted, 1);
  wsb_list_remove(&w->sessions, &s->link);
  wsb__replay_drop(s);
  wsb__leg_stop_reading(&s->client);
  wsb__leg_stop_reading(&s->backend);
  wsb__leg_close_now(&s->client);
  wsb__leg_close_now(&s->backend);
  uv_close((uv_handle_t *)&s->timer, wsb__session_handle_closed);
}

/* Sends one session; *sent says whether all of it went out (the answer may then be lost). */
static int move_one(struct wsb_handover *h, struct wsb_session *s, bool *sent) {
  /* Its sockets leave io_uring first, or a receive still armed could take bytes meant for the
     new worker. */
  int rc = wsb_uring_quiesce(&s->client);
  if (rc == 0)
    rc = wsb_uring_quiesce(&s->backend);
  if (rc != 0)
    return rc == UV_EAGAIN ? rc : WSB_ESTATE;
  struct wsb_state st;
  describe(s, &st);
  size_t size = wsb_session_state_size(&st);
  uint8_t *msg = size > 0 ? malloc(size) : NULL;
  if (msg == NULL)
    return size == 0 ? -E2BIG : -ENOMEM;
  ssize_t n = wsb_session_state_encode(&st, msg, size);
  uv_os_fd_t cfd, bfd;
  rc = n < 0 ? (int)n : uv_fileno((uv_handle_t *)&s->client.tcp, &cfd);
  if (rc == 0)
    rc = uv_fileno((uv_handle_t *)&s->backend.tcp, &bfd);
  if (rc == 0)
    rc = send_session(h->out_fd, msg, (size_t)n, cfd, bfd, sent);
  free(msg);
  return rc;
}

static void give_up(struct wsb_handover *h, int rc) {
  wsb_log_warn("handover: %s: the remaining sessions drain here", wsb_strerror(rc));
  close(h->out_fd);
  h->out_fd = -1;
  h->gave_up = true;
}

static void move_all(struct wsb_handover *h) {
  struct wsb_worker *w = h->w;
  struct wsb_session *s;
  unsigned before = h->moved;
  WSB_LIST_EACH (s, &w->sessions, link) {
    if (h->out_fd < 0)
      break;
    if (!movable(s))
      continue;
    bool sent = false;
    uint64_t t0 = uv_hrtime();
    int rc = move_one(h, s, &sent);
    uint64_t took = uv_hrtime() - t0;
    h->move_ns += took;
    if (took > h->longest_ns)
      h->longest_ns = took;
    if (rc == 0) {
      h->moved++;
      forget(s);
      wsb_worker_session_ended(w);
    } else if (rc == UV_EAGAIN) {
      continue; /* bytes its io_uring read are handled first: a later tick */
    } else if (rc == -EREMOTEIO || rc == -E2BIG || rc == WSB_ESTATE) {
      s->handover_refused = true; /* it stays here, and drains */
      h->kept++;
    } else if (rc == -ENOMEM) {
      return; /* the next tick tries again */
    } else if (!sent) {
      give_up(h, rc); /* the new worker is gone or stuck before it had this one */
    } else {
      /* Sent whole, no answer: the new worker may run it, so this one must not. Lost if it
         does not: the one session in flight. */
      wsb_log_warn("handover: session %016llx sent, no answer: let go of",
                   (unsigned long long)s->id);
      h->lost++;
      forget(s);
      give_up(h, rc);
      wsb_worker_session_ended(w);
    }
  }
  /* Its time stamp is that of the last session moved so far (the upgrade's figure). */
  if (h->moved > before)
    wsb_log_info("handover: moved %u sessions (%u in all; longest pause %.2f ms, mean %.3f ms)",
                 h->moved - before, h->moved, (double)h->longest_ns / 1e6,
                 (double)h->move_ns / 1e6 / h->moved);
}

/* Connects to the new worker; false while it is not listening yet (it starts after its master
   said READY) or cannot be reached. */
static bool connect_new(struct wsb_handover *h) {
  struct sockaddr_un sa;
  socklen_t len = wsb_handover_socket_name(&sa, h->master, h->target);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
      connect(fd, (struct sockaddr *)&sa, len) != 0) {
    if (++h->attempts == CONNECT_ATTEMPTS) {
      h->gave_up = true;
      wsb_log_warn("handover: cannot reach the new worker %u of pid %ld: %s; sessions drain here",
                   h->target, (long)h->master, strerror(errno));
    }
    if (fd >= 0)
      close(fd);
    return false;
  }
  h->out_fd = fd;
  wsb_log_info("handover: moving sessions to the new worker %u of pid %ld", h->target,
               (long)h->master);
  return true;
}

static void on_tick(uv_timer_t *t) {
  struct wsb_handover *h = t->data;
  if (h->out_fd >= 0 || (!h->gave_up && connect_new(h)))
    move_all(h);
  if (h->gave_up || (h->w->draining && wsb_list_empty(&h->w->sessions)))
    uv_timer_stop(t);
}

void wsb_handover_begin(struct wsb_worker *w, pid_t master, uint32_t nworkers) {
  struct wsb_handover *h = handover(w);
  if (h == NULL || h->sending || nworkers == 0)
    return;
  h->sending = true;
  h->master = master;
  h->target = w->slot % nworkers;
  /* Sessions inside a frame move at a later tick, and so do those accepted until the worker
     stops accepting. */
  uv_timer_init(&w->loop, &h->tick);
  h->tick_init = true;
  h->tick.data = h;
  uv_timer_start(&h->tick, on_tick, 0, TICK_MS);
}

void wsb_handover_close(struct wsb_worker *w) {
  struct wsb_handover *h = w->handover;
  if (h == NULL)
    return;
  if (h->sending)
    wsb_log_info("handover: %u sessions moved, %u refused, %u lost in flight", h->moved, h->kept,
                 h->lost);
  if (h->listen_fd >= 0) {
    uv_poll_stop(&h->listen_poll);
    close(h->listen_fd);
    h->listen_fd = -1;
    uv_close((uv_handle_t *)&h->listen_poll, NULL);
  }
  while (h->conns != NULL)
    hconn_close(h->conns);
  if (h->out_fd >= 0) {
    close(h->out_fd);
    h->out_fd = -1;
  }
  if (h->tick_init) {
    h->tick_init = false;
    uv_close((uv_handle_t *)&h->tick, NULL);
  }
}
