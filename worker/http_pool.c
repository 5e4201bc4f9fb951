/* The idle plain HTTP backend connections of a worker: descriptors kept per backend slot. */
#include "http_pool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "leg.h"
#include "session.h"

/* Idle connections to one backend slot, newest last. */
struct pool_slot {
  int *fds;
  uint32_t n;
  struct sockaddr_storage addr; /* whom they are connected to: a slot may change its backend */
};

struct wsb_http_pool {
  struct pool_slot slots[WSB_SHM_MAX_BACKENDS];
};

static void pool_flush(struct pool_slot *p) {
  for (uint32_t i = 0; i < p->n; i++)
    close(p->fds[i]);
  p->n = 0;
}

void wsb_http_pool_free(struct wsb_worker *w) {
  if (w->http_pool == NULL)
    return;
  for (size_t i = 0; i < WSB_SHM_MAX_BACKENDS; i++) {
    pool_flush(&w->http_pool->slots[i]);
    free(w->http_pool->slots[i].fds);
  }
  free(w->http_pool);
  w->http_pool = NULL;
}

/* A connection the backend has not closed, reset or written to while idle: a peek finds
   nothing to read yet. */
bool wsb_http_pool_idle(int fd) {
  char c;
  ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* The newest idle connection to slot that is still good, or -1. */
int wsb_http_pool_take(struct wsb_worker *w, int slot) {
  if (w->http_pool == NULL)
    return -1;
  struct pool_slot *p = &w->http_pool->slots[slot];
  const struct wsb_shm_backend *b = &w->table->backends[slot];
  if (p->n > 0 && memcmp(&p->addr, &b->addr, b->addr_len) != 0)
    pool_flush(p); /* the slot now names another address */
  while (p->n > 0) {
    int fd = p->fds[--p->n];
    if (wsb_http_pool_idle(fd))
      return fd;
    close(fd);
  }
  return -1;
}

/* Keeps a duplicate of the backend connection's socket for the next request to slot; past
   http_keepalive the oldest one goes. */
void wsb_http_pool_put(struct wsb_worker *w, int slot, uv_os_fd_t fd) {
  uint32_t max = wsb_shm_pool_settings(w->table, w->table->backends[slot].pool)->http_keepalive;
  if (max == 0)
    return;
  if (w->http_pool == NULL && (w->http_pool = calloc(1, sizeof(*w->http_pool))) == NULL)
    return;
  struct pool_slot *p = &w->http_pool->slots[slot];
  const struct wsb_shm_backend *b = &w->table->backends[slot];
  if (p->n > 0 && memcmp(&p->addr, &b->addr, b->addr_len) != 0)
    pool_flush(p);
  if (p->fds == NULL || p->n > max) {
    int *fds = realloc(p->fds, sizeof(*fds) * (max + 1));
    if (fds == NULL)
      return;
    p->fds = fds;
    while (p->n > max)
      close(p->fds[--p->n]);
  }
  int dup_fd = dup(fd);
  if (dup_fd < 0)
    return;
  if (p->n == max) {
    close(p->fds[0]);
    memmove(p->fds, p->fds + 1, sizeof(*p->fds) * (p->n - 1));
    p->n--;
  }
  memcpy(&p->addr, &b->addr, b->addr_len);
  p->fds[p->n++] = dup_fd;
}

bool wsb_http_pool_keep(struct wsb_session *s) {
  int slot = s->kept_slot;
  s->kept_slot = -1;
  if (slot < 0 || !s->backend.open)
    return false;
  /* No peek here: the kept connection was read while idle, and wsb_http_pool_take peeks at
     every connection before it hands one out. */
  uv_os_fd_t fd;
  if (s->backend.tls == NULL && s->backend.queued == 0 &&
      uv_fileno((uv_handle_t *)&s->backend.tcp, &fd) == 0)
    wsb_http_pool_put(s->w, slot, fd);
  return true;
}

void wsb_http_pool_park(struct wsb_session *s) {
  /* Closed at once, never shut down: a shutdown would end the pool's duplicate too. */
  if (wsb_http_pool_keep(s))
    wsb__leg_close_now(&s->backend);
}
