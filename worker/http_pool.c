/* The idle HTTP backend connections of a worker: descriptors (with their TLS state) per slot. */
#include "http_pool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "leg.h"
#include "session.h"
#include "tls_leg.h"

/* A connection parked this recently is handed out without a peek when the request may be sent
   again: under load connections come and go within milliseconds, while backends close idle
   ones after seconds (and a request that meets one closed anyway is retried). */
#define TRUST_MS 1000

struct pool_conn {
  int fd;
  struct wsb_tls_leg *tls; /* a TLS backend's connection state, NULL for a plain one */
  uint64_t parked_ms;      /* uv_now when it went idle */
};

/* Idle connections to one backend slot, newest last. */
struct pool_slot {
  struct pool_conn *conns;
  uint32_t n;
  uint32_t cap;
  struct sockaddr_storage addr; /* whom they are connected to: a slot may change its backend */
};

struct wsb_http_pool {
  struct pool_slot slots[WSB_SHM_MAX_BACKENDS];
};

static void conn_close(struct pool_conn *c) {
  close(c->fd);
  wsb__tls_conn_free(c->tls);
}

/* Closes the slot's idle connections, or only its TLS ones; the rest keep their order (oldest
   first). */
static void pool_close(struct pool_slot *p, bool tls_only) {
  uint32_t kept = 0;
  for (uint32_t i = 0; i < p->n; i++) {
    if (!tls_only || p->conns[i].tls != NULL)
      conn_close(&p->conns[i]);
    else
      p->conns[kept++] = p->conns[i];
  }
  p->n = kept;
}

static void pool_flush(struct pool_slot *p) {
  pool_close(p, false);
}

void wsb_http_pool_drop_tls(struct wsb_worker *w) {
  if (w->http_pool == NULL)
    return;
  for (size_t i = 0; i < WSB_SHM_MAX_BACKENDS; i++)
    pool_close(&w->http_pool->slots[i], true);
}

void wsb_http_pool_free(struct wsb_worker *w) {
  if (w->http_pool == NULL)
    return;
  for (size_t i = 0; i < WSB_SHM_MAX_BACKENDS; i++) {
    pool_flush(&w->http_pool->slots[i]);
    free(w->http_pool->slots[i].conns);
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
int wsb_http_pool_take(struct wsb_worker *w, int slot, bool retryable, struct wsb_tls_leg **tls) {
  *tls = NULL;
  if (w->http_pool == NULL)
    return -1;
  struct pool_slot *p = &w->http_pool->slots[slot];
  const struct wsb_shm_backend *b = &w->table->backends[slot];
  if (p->n > 0 && memcmp(&p->addr, &b->addr, b->addr_len) != 0)
    pool_flush(p); /* the slot now names another address */
  uint64_t now = uv_now(&w->loop);
  while (p->n > 0) {
    struct pool_conn c = p->conns[--p->n];
    if ((retryable && now - c.parked_ms < TRUST_MS) || wsb_http_pool_idle(c.fd)) {
      *tls = c.tls;
      return c.fd;
    }
    conn_close(&c);
  }
  return -1;
}

/* Keeps a duplicate of the backend connection's socket (and its TLS state, now the pool's)
   for the next request to slot; past http_keepalive the oldest one goes. */
static void pool_put(struct wsb_worker *w, int slot, uv_os_fd_t fd, struct wsb_tls_leg *tls) {
  uint32_t max = wsb_shm_pool_settings(w->table, w->table->backends[slot].pool)->http_keepalive;
  if (max == 0 ||
      (w->http_pool == NULL && (w->http_pool = calloc(1, sizeof(*w->http_pool))) == NULL)) {
    wsb__tls_conn_free(tls);
    return;
  }
  struct pool_slot *p = &w->http_pool->slots[slot];
  const struct wsb_shm_backend *b = &w->table->backends[slot];
  if (p->n > 0 && memcmp(&p->addr, &b->addr, b->addr_len) != 0)
    pool_flush(p);
  while (p->n > max) /* a reload lowered http_keepalive */
    conn_close(&p->conns[--p->n]);
  if (p->cap < max) { /* first use, or a reload raised it */
    struct pool_conn *conns = realloc(p->conns, sizeof(*conns) * max);
    if (conns != NULL) {
      p->conns = conns;
      p->cap = max;
    }
  }
  int dup_fd = p->cap >= max ? dup(fd) : -1;
  if (dup_fd < 0) {
    wsb__tls_conn_free(tls);
    return;
  }
  if (p->n == max) {
    conn_close(&p->conns[0]);
    memmove(p->conns, p->conns + 1, sizeof(*p->conns) * (p->n - 1));
    p->n--;
  }
  memcpy(&p->addr, &b->addr, b->addr_len);
  p->conns[p->n++] = (struct pool_conn){dup_fd, tls, uv_now(&w->loop)};
}

bool wsb_http_pool_keep(struct wsb_session *s) {
  int slot = s->kept_slot;
  s->kept_slot = -1;
  if (slot < 0 || !s->backend.open)
    return false;
  /* No peek here: the kept connection is read while idle, and one that ended or spoke is no
     longer read (wsb__http_kept_read). */
  uv_os_fd_t fd;
  if (s->backend.queued > 0 || !s->backend.reading ||
      uv_fileno((uv_handle_t *)&s->backend.tcp, &fd) != 0)
    return true;
  struct wsb_tls_leg *tls = wsb__tls_leg_detach(&s->backend);
  if (tls != NULL || s->backend.tls == NULL)
    pool_put(s->w, slot, fd, tls);
  return true;
}

void wsb_http_pool_park(struct wsb_session *s) {
  /* Closed at once, never shut down: a shutdown would end the pool's duplicate too. */
  if (wsb_http_pool_keep(s))
    wsb__leg_close_now(&s->backend);
}
