/* The upgrade: read the client's request, pick and connect a backend, upgrade it, answer 101. */
#include "upgrade.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "errors.h"
#include "hash_key.h"
#include "http_pool.h"
#include "http_proxy.h"
#include "leg.h"
#include "log.h"
#include "pmd.h"
#include "proxy.h"
#include "proxy_header.h"
#include "session.h"
#include "tls_leg.h"
#include "uring.h"

#define BACKEND_HEAD_MAX (16 * 1024) /* a backend's answer head may be this large */
#define ERROR_BODY_MAX   (64 * 1024) /* bytes of a backend's non-101 body passed to the client */

/* wsbal_handshakes_total, and wsbal_handshake_seconds for a request whose head was read whole:
   from then to its answer (101 or error) queued. */
static void count_handshake(struct wsb_session *s, enum wsb_handshake_result r) {
  static const uint64_t bounds[] = WSB_HANDSHAKE_BUCKET_US;
  struct wsb_shm_worker *stats = s->w->stats;
  wsb_shm_add(&stats->handshakes[r], 1);
  if (s->hs != NULL && s->hs->request_ns != 0)
    wsb_shm_observe(stats->handshake_buckets, bounds, WSB_HANDSHAKE_BUCKETS, &stats->handshake_us,
                    &stats->handshake_count, (uv_hrtime() - s->hs->request_ns) / 1000);
}

/*
 * One info line (rate-limited) for an answer other than 101 (status), or for a connection that
 * ended without a request (status 0): what the client sent goes in as fields, which the log
 * escapes and bounds. why says more than the result's name when it is known (NULL otherwise).
 */
static void log_rejected(struct wsb_session *s, int status, enum wsb_handshake_result result,
                         const char *why, const char *msg) {
  static const char *const results[] = {
#define WSB_XX(name, label) label,
      WSB_HANDSHAKE_RESULTS(WSB_XX)
#undef WSB_XX
  };
  struct wsb_handshake *hs = s->hs;
  if (hs->client_ip[0] == '\0')
    wsb__upgrade_find_client_ip(s);
  char id[17];
  snprintf(id, sizeof(id), "%016llx", (unsigned long long)s->id);
  /* The method as sent: a head that failed to parse may have none llhttp knows. */
  size_t mlen = 0;
  while (mlen < hs->req_len && mlen < 16 && hs->req_buf[mlen] != ' ' && hs->req_buf[mlen] != '\r')
    mlen++;
  const struct wsb_header *host = wsb_http_find(&hs->req, "Host", NULL);
  const struct wsb_header *ua = wsb_http_find(&hs->req, "User-Agent", NULL);
  struct wsb_log_field f[12];
  size_t n = 0;
  if (status != 0)
    f[n++] = wsb_log_num("status", status);
  f[n++] = wsb_log_str("reason", results[result]);
  if (why != NULL)
    f[n++] = wsb_log_str("why", why);
  f[n++] = wsb_log_str("client", hs->client_ip);
  f[n++] = wsb_log_str("session", id);
  if (mlen > 0)
    f[n++] = wsb_log_strn("method", hs->req_buf, mlen);
  if (hs->req.url.p != NULL)
    f[n++] = wsb_log_strn("path", hs->req.url.p, hs->req.url.len);
  if (host != NULL)
    f[n++] = wsb_log_strn("host", host->value.p, host->value.len);
  if (ua != NULL)
    f[n++] = wsb_log_strn("user_agent", ua->value.p, ua->value.len);
  if (wsb__slot_valid(s->backend_slot))
    f[n++] = wsb_log_str("backend", s->w->table->backends[s->backend_slot].name);
  if (status == 0 || hs->attempts > 0)
    f[n++] = status == 0 ? wsb_log_num("bytes", (int64_t)hs->req_len)
                         : wsb_log_num("attempts", hs->attempts);
  wsb_worker_log_event(s->w, WSB_LOG_KIND_REJECTED, f, n, "%s", msg);
}

/* Answers the client with an error status and ends the session once the answer is written. */
static void reply_error(struct wsb_session *s, int status, enum wsb_handshake_result result,
                        const char *why) {
  log_rejected(s, status, result, why, "upgrade rejected");
  char buf[512];
  const char *extra = NULL;
  if (status == 426)
    extra = "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
  else if (status == 503)
    extra = "Retry-After: 5\r\n";
  size_t n = wsb_http_error_response(buf, sizeof(buf), status, extra);
  count_handshake(s, result);
  wsb__session_answer_last(s, buf, n);
}

/* Grows the head buffer; slices point into it, so the head is parsed again from the start. */
static int grow_head(struct wsb_http_head *head, char **buf, size_t *cap, size_t len,
                     size_t max_bytes, bool response) {
  size_t want = *cap * 2 > max_bytes + 1 ? max_bytes + 1 : *cap * 2;
  char *p = realloc(*buf, want);
  if (p == NULL)
    return UV_ENOMEM;
  *buf = p;
  *cap = want;
  wsb_http_head_init(head, response, max_bytes);
  ssize_t rc = wsb_http_feed(head, p, len);
  return rc == WSB_PARTIAL ? 0 : (int)rc;
}

void wsb__upgrade_find_client_ip(struct wsb_session *s) {
  struct wsb_handshake *hs = s->hs;
  if (hs->peer_ip[0] != '\0')
    return; /* a later request of the connection: the same ends (wsb__session_new_request) */
  hs->client_ip[0] = hs->peer_ip[0] = '\0';
  if (wsb__proxy_header_tcp_ends(s, false) != 0)
    return;
  if (s->client_family == 0)
    wsb_proxy_real_client(&hs->req, &s->w->table->settings.trust_forwarded, s->peer_family,
                          s->peer_addr, &s->client_family, s->client_addr);
  inet_ntop(s->peer_family, s->peer_addr, hs->peer_ip, sizeof(hs->peer_ip));
  wsb__session_client_text(s, hs->client_ip, sizeof(hs->client_ip));
}

/* Whether pool "default" has a backend in use. */
static bool default_pool_has_backends(const struct wsb_shm_table *t) {
  for (uint32_t i = 0; i < t->nslots; i++)
    if (t->backends[i].in_use && t->backends[i].pool == WSB_SHM_DEFAULT_POOL)
      return true;
  return false;
}

/*
 * The first route the request matches picks the session's pool, counted in
 * wsbal_route_matches_total, and what its strip_path removes from the path on every connect.
 * No route: pool default, unless routes exist and default has no backend, which is a 404.
 * With no route at all nothing changes. Returns 0 or the status to answer.
 */
int wsb__upgrade_pick_route(struct wsb_session *s, bool websocket) {
  struct wsb_handshake *hs = s->hs;
  const struct wsb_shm_table *t = s->w->table;
  struct wsb_route_request rq = {hs->upgrade.host, hs->upgrade.path, &hs->req, websocket};
  size_t strip = 0;
  int i = wsb_route_match(&t->routes, &rq, &strip);
  if (i < 0 && t->routes.nroutes > 0 && !default_pool_has_backends(t))
    return 404;
  const struct wsb_route *r = i >= 0 ? &t->routes.routes[i] : NULL;
  wsb_shm_add(&s->w->stats->route_matches[r != NULL ? r->slot : WSB_ROUTE_DEFAULT_SLOT], 1);
  if (r != NULL && r->pool_slot >= t->npools)
    return 503; /* the table always has the pools its routes name: a torn invariant */
  s->pool = r != NULL ? r->pool_slot : WSB_SHM_DEFAULT_POOL;
  s->path_strip = (uint16_t)strip;
  const char *name = r != NULL ? r->name : "default";
  size_t len = strnlen(name, sizeof(hs->route) - 1); /* a copy on every request: no snprintf */
  memcpy(hs->route, name, len);
  hs->route[len] = '\0';
  return 0;
}

int wsb__upgrade_admit(struct wsb_session *s) {
  uint64_t max = s->w->table->settings.max_sessions;
  if (s->admitted)
    return 0; /* a connection that carried plain requests upgrades within its place */
  /* Admitted sessions, not live ones: those counts include connections still sending their
     request, and in a storm of them every request would see the cap passed and get 503. */
  if (max > 0 && wsb_shm_admitted(s->w->shm) >= max)
    return 503;
  s->admitted = true;
  wsb_shm_add(&s->w->stats->admitted, 1);
  return 0;
}

/* The complete request head is here: validate it, then look for a backend. */
static void on_request(struct wsb_session *s, size_t head_len) {
  struct wsb_handshake *hs = s->hs;
  const struct wsb_shm_settings *cfg = &s->w->table->settings;
  hs->request_ns = uv_hrtime();
  int status = wsb_handshake_check_request(&hs->req, &hs->upgrade);
  if (status == 426 && cfg->http == WSB_HTTP_PROXY &&
      !wsb_http_has_token(&hs->req, "Upgrade", "websocket")) {
    wsb__http_begin(s, head_len); /* not an upgrade at all: plain HTTP */
    return;
  }
  if (status != 0) {
    reply_error(s, status, WSB_HS_BAD_REQUEST,
                status == 426   ? "not a WebSocket upgrade, or not version 13"
                : status == 400 ? "malformed upgrade request"
                                : NULL);
    return;
  }
  /* With compression off the header is ignored, as it always was (never forwarded). */
  if (cfg->compression &&
      wsb_pmd_negotiate(&hs->req, cfg->compression_context_takeover, &s->pmd) < 0) {
    reply_error(s, 400, WSB_HS_BAD_REQUEST, "malformed Sec-WebSocket-Extensions");
    return;
  }
  s->client.msg.rsv1_ok = s->pmd.on;
  if (!wsb_proxy_path_allowed(cfg->path, hs->upgrade.path)) {
    reply_error(s, 404, WSB_HS_NOT_FOUND, "path not served");
    return;
  }
  if (hs->upgrade.origin.p != NULL &&
      !wsb_proxy_origin_allowed(cfg->allowed_origins, hs->upgrade.origin)) {
    reply_error(s, 403, WSB_HS_FORBIDDEN, "origin not allowed");
    return;
  }
  status = wsb__upgrade_pick_route(s, true);
  if (status != 0) {
    reply_error(s, status, status == 404 ? WSB_HS_NOT_FOUND : WSB_HS_NO_BACKEND,
                status == 404 ? "no route matches and pool default has no backend"
                              : "the route's pool is not in the table");
    return;
  }
  if (wsb__upgrade_admit(s) != 0) {
    reply_error(s, 503, WSB_HS_LIMIT, "max_sessions reached");
    return;
  }
  /* Bytes the client sent after its head wait, as frames, until the relay starts. */
  size_t early = hs->req_len - head_len;
  if (early > 0) {
    s->client.pending = malloc(early);
    if (s->client.pending == NULL) {
      wsb__session_close(s, UV_ENOMEM);
      return;
    }
    memcpy(s->client.pending, hs->req_buf + head_len, early);
    s->client.pending_len = s->client.pending_cap = (uint32_t)early;
  }
  /* The client stays readable while its backend is found: it may not send frames before its
     101, but stopping and restarting the read would cost two epoll_ctl calls per session.
     Whatever it sends anyway is held, and reading paused, by wsb__leg_hold_early(). */
  hs->head_len = head_len;
  wsb__upgrade_find_client_ip(s);
  wsb__session_set_state(s, S_CONNECT_BACKEND);
  if (wsb_http_pool_keep(s))
    wsb__upgrade_retry_after_close(s); /* the plain requests' backend connection goes first */
  else
    wsb__upgrade_connect_next(s);
}

/* The client went away before finishing its request: nothing to answer. A connection that
   sent nothing (a TCP health check, a port scan) is not logged, as HAProxy's dontlognull does;
   one in the middle of its TLS handshake is, by the TLS leg. */
void wsb__upgrade_request_eof(struct wsb_leg *l, int status) {
  if (l->s->http_served && l->s->hs->req_len == 0) {
    wsb__session_close(l->s, 0); /* an idle keep-alive connection, closed between requests */
    return;
  }
  count_handshake(l->s, WSB_HS_BAD_REQUEST);
  if (l->s->hs->req_len > 0 && !wsb__tls_leg_handshaking(l))
    log_rejected(l->s, 0, WSB_HS_BAD_REQUEST, status == UV_EOF ? NULL : wsb_strerror(status),
                 "connection closed before a full request head");
  wsb__session_close(l->s, status);
}

/* More of the client's request head, read into its buffer already. */
void wsb__upgrade_request_read(struct wsb_leg *l, const uint8_t *data, size_t nread) {
  struct wsb_session *s = l->s;
  struct wsb_handshake *hs = s->hs;
  assert(l->is_client && hs != NULL && (const char *)data == hs->req_buf + hs->req_len);
  size_t before = hs->req_len;
  hs->req_len += nread;
  ssize_t rc = wsb_http_feed(&hs->req, hs->req_buf + before, nread);
  size_t max = (size_t)s->w->table->settings.max_header_bytes;
  if (rc == WSB_PARTIAL && hs->req_len == hs->req_cap && hs->req_cap <= max)
    rc = grow_head(&hs->req, &hs->req_buf, &hs->req_cap, hs->req_len, max, false);
  if (rc == WSB_PARTIAL || rc == 0)
    return;
  if (rc < 0) {
    bool large = rc == WSB_EHEAD_TOO_LARGE || rc == WSB_ETOO_MANY_HEADERS;
    reply_error(s, large ? 431 : 400, WSB_HS_BAD_REQUEST, wsb_strerror((int)rc));
    return;
  }
  on_request(s, before + (size_t)rc);
}

/* No backend left to try for a new session: a refused, failed or timed-out backend before
   makes it a 502, else a 503. */
void wsb__upgrade_no_backend(struct wsb_session *s) {
  if (s->reason != 0)
    reply_error(s, 502, WSB_HS_BACKEND_ERROR, wsb_strerror(s->reason));
  else
    reply_error(s, 503, WSB_HS_NO_BACKEND, "no backend available");
}

/* The client left while its backend was being found. */
void wsb__upgrade_client_gone(struct wsb_leg *l, int status) {
  wsb__session_close(l->s, status);
}

static void on_backend_closed_for_retry(uv_handle_t *h);

void wsb__upgrade_retry_after_close(struct wsb_session *s) {
  wsb_uring_close_socket(&s->backend); /* a leg on the ring: the ring closes the socket */
  s->backend.open = false;
  s->backend.reading = false;
  uv_close((uv_handle_t *)&s->backend.tcp, on_backend_closed_for_retry);
}

/*
 * Whether a failed attempt is the backend's own failure, which counts toward its breaker: it
 * refused, timed out, reset, or broke the upgrade (a malformed head, a wrong Accept, Upgrade or
 * extension, a subprotocol the client did not offer). An HTTP status other than 101 is an answer
 * to this request, which the client chose (its path, its credentials): the next backend is
 * tried, but nothing is counted, so no client can take a healthy backend out (as nginx and
 * HAProxy count statuses only when told to).
 */
static bool backend_at_fault(int reason) {
  return reason != WSB_EHTTP_STATUS;
}

/* This backend failed the upgrade: close its connection and try the next one. */
static void backend_failed(struct wsb_session *s, int reason) {
  assert(wsb__slot_valid(s->backend_slot)); /* held from the choice until this failure */
  const struct wsb_shm_backend *b = &s->w->table->backends[s->backend_slot];
  if (backend_at_fault(reason)) {
    wsb_breaker_failure(s->w, (uint32_t)s->backend_slot);
    wsb_log_warn("session %016llx: backend %s failed: %s", (unsigned long long)s->id, b->name,
                 wsb_strerror(reason));
  } else {
    wsb_breaker_no_verdict(s->w, (uint32_t)s->backend_slot);
    wsb_log_info("session %016llx: backend %s answered %u: trying the next one",
                 (unsigned long long)s->id, b->name, (unsigned)s->hs->resp.status);
  }
  wsb__session_release_backend(s);
  s->reason = reason;
  uv_timer_stop(&s->timer);
  wsb__upgrade_retry_after_close(s);
}

#define FAILOVER_BACKOFF_MS     50 /* pause before the second attempt, growing with each one */
#define FAILOVER_BACKOFF_MAX_MS 1000

static void on_backend_closed_for_retry(uv_handle_t *h) {
  struct wsb_session *s = h->data;
  if (wsb__session_unref(s) || s->state == S_CLOSED)
    return;
  if (s->state == S_FAILOVER && s->hs->attempts > 0) {
    /* A moving session pauses between attempts, so a pool restarting all at once is not
       hammered; the client notices nothing either way. */
    uint64_t pause = (uint64_t)FAILOVER_BACKOFF_MS * s->hs->attempts;
    s->hs->backoff = true;
    wsb__session_timer_start(s, pause < FAILOVER_BACKOFF_MAX_MS ? pause : FAILOVER_BACKOFF_MAX_MS);
    return;
  }
  wsb__upgrade_connect_next(s);
}

static int backend_connected(struct wsb_session *s);

/*
 * Connects to the backend and sends what goes first without waiting for the connect to finish.
 * On loopback and near backends the connection is up by the time connect() returns, so the
 * request leaves at once and the socket is registered once, for reading: libuv's uv_tcp_connect
 * would cost a loop iteration for POLLOUT, a getsockopt(SO_ERROR) and an epoll_ctl dropping
 * POLLOUT (3 system calls of about 27 per handshake). Otherwise the write waits in libuv's queue
 * until the socket is writable (a connecting socket's write is EAGAIN), and a refused or failed
 * connect arrives as the read error of the socket's POLLERR, which fails over like any other.
 */
static int connect_and_send(struct wsb_session *s, const struct sockaddr *addr) {
  socklen_t len =
      addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
      (connect(fd, addr, len) != 0 && errno != EINPROGRESS)) {
    int rc = -errno;
    close(fd);
    return rc;
  }
  int rc = uv_tcp_open(&s->backend.tcp, fd);
  if (rc != 0) {
    close(fd);
    return rc;
  }
  /* A plain backend's handshake goes through the ring already (where there is one): its
     socket never enters libuv's epoll set. A TLS one stays on libuv (the ring relays no TLS). */
  if (!s->w->table->backends[s->backend_slot].url.tls)
    wsb_uring_adopt_new(&s->backend);
  rc = wsb__leg_start_reading(&s->backend);
  return rc != 0 ? rc : backend_connected(s);
}

void wsb__upgrade_connect_next(struct wsb_session *s) {
  struct wsb_worker *w = s->w;
  struct wsb_handshake *hs = s->hs;
  assert(s->state == S_CONNECT_BACKEND || s->state == S_FAILOVER);
  struct wsb_hash_key_source key = {&hs->req, hs->upgrade.path, hs->client_ip};
  /* The admin's choice is tried once, and only inside the session's pool; then the algorithm
     picks. */
  int slot = hs->prefer >= 0 && (uint32_t)hs->prefer < w->table->nslots &&
                     w->table->backends[hs->prefer].pool == s->pool
                 ? hs->prefer
                 : wsb_select_backend(w, s->pool, &key, &hs->tried);
  hs->prefer = -1;
  if (slot >= 0 && wsb_slot_set_has(&hs->tried, (uint32_t)slot))
    slot = wsb_select_backend(w, s->pool, &key, &hs->tried);
  if (slot < 0) {
    wsb__session_ops(s)->on_backend_none(s);
    return;
  }
  wsb_slot_set_add(&hs->tried, (uint32_t)slot);
  hs->attempts++;
  hs->connect_started_ms = uv_now(&w->loop);
  wsb__session_hold_backend(s, slot);
  const struct wsb_shm_backend *b = &w->table->backends[slot];
  wsb__leg_reset(&s->backend);
  uv_tcp_init(&w->loop, &s->backend.tcp);
  s->backend.tcp.data = s;
  s->backend.open = true;
  s->handles++;
  hs->resp_len = 0;
  hs->relaying_error = false;
  wsb__session_timer_start(s, wsb__session_pool_settings(s)->connect_timeout_ms);
  if (hs->resp_buf == NULL) {
    hs->resp_cap = 2048;
    hs->resp_buf = malloc(hs->resp_cap);
    if (hs->resp_buf == NULL) {
      backend_failed(s, UV_ENOMEM);
      return;
    }
  }
  wsb_http_head_init(&hs->resp, true, BACKEND_HEAD_MAX);
  int rc = connect_and_send(s, (const struct sockaddr *)&b->addr);
  if (rc != 0)
    backend_failed(s, rc);
}

int wsb__upgrade_send_request(struct wsb_session *s, struct wsb_proxy_request *pr) {
  struct wsb_handshake *hs = s->hs;
  const struct wsb_shm_settings *cfg = wsb__session_pool_settings(s);
  pr->client = &hs->req;
  pr->upgrade = &hs->upgrade;
  pr->backend = &s->w->table->backends[s->backend_slot].url;
  pr->client_ip = hs->peer_ip;
  pr->client_tls = s->client.tls != NULL;
  pr->preserve_host = cfg->preserve_host;
  pr->trust_forwarded =
      wsb_cidr_set_has(&s->w->table->settings.trust_forwarded, s->peer_family, s->peer_addr);
  pr->block_headers = cfg->block_headers;
  pr->reconnect_header = cfg->reconnect_header;
  pr->strip = s->path_strip;
  /* The client's head, plus what wsbal adds, always fits in twice its size and a bit. */
  size_t cap = s->hs->req_len * 2 + 2048 + WSB_PATH_MAX;
  char stack[16 * 1024]; /* most heads: no allocation per request */
  char *out = cap <= sizeof(stack) ? stack : malloc(cap);
  if (out == NULL)
    return UV_ENOMEM;
  ssize_t n = wsb_proxy_request_write(out, cap, pr);
  int rc = (int)n;
  if (n > 0) {
    uv_buf_t b = uv_buf_init(out, (unsigned)n);
    rc = wsb__leg_write(&s->backend, &b, 1);
  }
  if (out != stack)
    free(out);
  return rc;
}

/* The backend's socket is open: the PROXY header, TLS's first flight, the upgrade request. */
static int backend_connected(struct wsb_session *s) {
  struct wsb_handshake *hs = s->hs;
  assert(wsb__slot_valid(s->backend_slot));
  /* The PROXY header goes first, before TLS; the request below waits inside the TLS leg until
     the handshake is done. */
  int rc = wsb__proxy_header_send(s);
  if (rc != 0)
    return rc;
  if (s->w->table->backends[s->backend_slot].url.tls &&
      (rc = wsb__tls_leg_connect(&s->backend)) != 0)
    return rc;
  /* The key only proves that the backend speaks WebSocket (RFC 6455 1.3): the worker's
     generator, seeded from OpenSSL, is random enough and costs no system call (RAND_bytes asks
     getpid() each time, about 2.2 us of a handshake). */
  uint64_t nonce[2] = {wsb_worker_random(s->w), wsb_worker_random(s->w)};
  wsb_ws_key_encode((const uint8_t *)nonce, hs->key);
  wsb_ws_accept((struct wsb_slice){hs->key, WSB_WS_KEY_LEN}, hs->accept);

  struct wsb_proxy_request pr = {.key = hs->key};
  char id[17];
  if (s->state == S_FAILOVER) {
    snprintf(id, sizeof(id), "%016llx", (unsigned long long)s->id);
    pr.reconnect_value = id;
  }
  return wsb__upgrade_send_request(s, &pr);
}

static uint64_t content_length(const struct wsb_http_head *h) {
  const struct wsb_header *cl = wsb_http_find(h, "Content-Length", NULL);
  if (cl == NULL)
    return ERROR_BODY_MAX; /* no length: pass what comes until the backend closes */
  uint64_t n = 0;
  for (size_t i = 0; i < cl->value.len && n <= ERROR_BODY_MAX; i++)
    n = n * 10 + (uint64_t)(cl->value.p[i] - '0');
  return n < ERROR_BODY_MAX ? n : ERROR_BODY_MAX;
}

/* A backend's answer other than 101 and below 500 reaches the client unchanged. */
static void relay_backend_error(struct wsb_session *s, size_t head_len) {
  struct wsb_handshake *hs = s->hs;
  count_handshake(s, WSB_HS_BACKEND_ERROR);
  assert(wsb__slot_valid(s->backend_slot));
  log_rejected(s, hs->resp.status, WSB_HS_BACKEND_ERROR, "the backend's answer, passed on",
               "upgrade rejected");
  wsb_breaker_no_verdict(s->w, (uint32_t)s->backend_slot);
  s->closed_by = BY_BACKEND;
  hs->relaying_error = true;
  hs->error_body_left = content_length(&hs->resp);
  size_t body = hs->resp_len - head_len;
  if (body > hs->error_body_left)
    body = hs->error_body_left;
  hs->error_body_left -= body;
  uv_buf_t b = uv_buf_init(hs->resp_buf, (unsigned)(head_len + body));
  if (wsb__leg_write(&s->client, &b, 1) != 0 || hs->error_body_left == 0)
    wsb__session_finish(s);
}

/* wsbal_backend_connect_seconds: TCP connect and upgrade of the backend that answered 101.
   Returns that time in milliseconds. */
static uint64_t count_connect_time(struct wsb_session *s) {
  static const uint64_t bounds[] = WSB_CONNECT_BUCKET_US;
  struct wsb_shm_worker *stats = s->w->stats;
  uint64_t took = uv_now(&s->w->loop) - s->hs->connect_started_ms;
  assert(wsb__slot_valid(s->backend_slot));
  /* A 101 is not yet health: a backend that drops every session right after it must trip the
     breaker too. Its first message settles it (relay.c); an early loss counts as a failure. */
  s->backend_since_ms = uv_now(&s->w->loop);
  s->backend_proven = false;
  s->backend_heard = false;
  int slot = s->backend_slot;
  wsb_shm_observe(stats->connect_buckets[slot], bounds, WSB_CONNECT_BUCKETS,
                  &stats->connect_us[slot], &stats->connect_count[slot], took * 1000);
  return took;
}

static bool same_protocol(const char *have, struct wsb_slice chosen) {
  if (have == NULL || chosen.p == NULL)
    return have == NULL && chosen.p == NULL;
  return strlen(have) == chosen.len && memcmp(have, chosen.p, chosen.len) == 0;
}

/* What a failover needs later: the request to send again, the subprotocol to insist on. */
static int remember_for_failover(struct wsb_session *s, struct wsb_slice protocol) {
  struct wsb_handshake *hs = s->hs;
  size_t route_len = strlen(hs->route);
  s->head = malloc(hs->head_len + route_len);
  if (s->head == NULL)
    return UV_ENOMEM;
  memcpy(s->head, hs->req_buf, hs->head_len);
  s->head_len = (uint32_t)hs->head_len;
  memcpy(s->head + hs->head_len, hs->route, route_len); /* the access log's, after the head */
  s->route_len = (uint8_t)route_len;
  s->path_off = (uint32_t)(hs->upgrade.target.p - hs->req_buf);
  s->path_len = (uint32_t)hs->upgrade.target.len;
  /* The access log's Host and User-Agent: where they are in the head kept, not a copy. */
  const struct wsb_header *ua = wsb_http_find(&hs->req, "User-Agent", NULL);
  s->host_off = (uint32_t)(hs->upgrade.host.p - hs->req_buf);
  s->host_len = (uint16_t)(hs->upgrade.host.len < UINT16_MAX ? hs->upgrade.host.len : UINT16_MAX);
  if (ua != NULL) {
    s->ua_off = (uint32_t)(ua->value.p - hs->req_buf);
    s->ua_len = (uint16_t)(ua->value.len < UINT16_MAX ? ua->value.len : UINT16_MAX);
  }
  if (protocol.p != NULL && (s->protocol = strndup(protocol.p, protocol.len)) == NULL)
    return UV_ENOMEM;
  return 0;
}

/*
 * The upgrade is over: its state is freed before a byte is relayed, so that RELAY never has a
 * handshake alive. What the backend sent behind its 101 (a close with a failover code, say) may
 * start the next failover at once, which then begins from a plain RELAY like any other.
 */
static void relay_from_101(struct wsb_session *s, size_t head_len) {
  struct wsb_handshake *hs = s->hs;
  char *early = hs->resp_buf;
  size_t len = hs->resp_len - head_len;
  hs->resp_buf = NULL;
  wsb__session_free_handshake(s);
  wsb__session_ops(s)->on_backend_ready(s, (const uint8_t *)early + head_len, len);
  free(early);
}

static void answer_client(struct wsb_session *s, size_t head_len) {
  struct wsb_handshake *hs = s->hs;
  struct wsb_upgrade_response chosen;
  int rc = wsb_handshake_check_response(&hs->resp, hs->accept, hs->upgrade.protocols, &chosen);
  if (s->state == S_FAILOVER) {
    /* The client already has its 101: a new backend must agree with it, or it is skipped. */
    if (rc == 0 && !same_protocol(s->protocol, chosen.protocol))
      rc = WSB_EHTTP_PROTOCOL;
    if (rc != 0) {
      backend_failed(s, rc);
      return;
    }
    count_connect_time(s);
    relay_from_101(s, head_len);
    return;
  }
  if (rc == WSB_EHTTP_STATUS && hs->resp.status < 500) {
    relay_backend_error(s, head_len);
    return;
  }
  if (rc != 0) {
    backend_failed(s, rc);
    return;
  }
  char head[8192];
  ssize_t n = wsb_proxy_response_write(head, sizeof(head), hs->upgrade.key, &hs->resp, &chosen,
                                       wsb__session_pool_settings(s)->pass_headers);
  if (n >= 0 && s->pmd.on) /* the extension's answer goes before the head's empty line */
    n = wsb_pmd_response_insert(&s->pmd, head, sizeof(head), (size_t)n);
  if (n < 0) {
    backend_failed(s, (int)n);
    return;
  }
  uv_buf_t b = uv_buf_init(head, (unsigned)n);
  rc = wsb__leg_write(&s->client, &b, 1);
  if (rc == 0)
    rc = remember_for_failover(s, chosen.protocol);
  if (rc != 0) {
    wsb__session_close(s, rc);
    return;
  }
  count_handshake(s, WSB_HS_OK);
  uint64_t took = count_connect_time(s);
  s->connect_ms = took < UINT32_MAX ? (uint32_t)took : UINT32_MAX;
  wsb_shm_add(&s->w->stats->sessions_total[s->backend_slot], 1);
  wsb__session_note_backend(s);
  if (s->w->table->settings.access_log_start)
    wsb_access_log_start(s->w, s);
  relay_from_101(s, head_len);
}

/* The backend's connection ended while it was being upgraded, or while its error answer was
   passed on. */
void wsb__upgrade_response_eof(struct wsb_leg *l, int status) {
  struct wsb_session *s = l->s;
  if (s->hs->relaying_error)
    wsb__session_finish(s);
  else
    backend_failed(s, status == UV_EOF ? UV_ECONNRESET : status);
}

/* More of the backend's answer: its head (read into the head buffer already), or the body of
   an error answer passed on to the client. */
void wsb__upgrade_response_read(struct wsb_leg *l, const uint8_t *data, size_t nread) {
  struct wsb_session *s = l->s;
  struct wsb_handshake *hs = s->hs;
  assert(!l->is_client && hs != NULL);
  if (hs->relaying_error) {
    size_t n = nread < hs->error_body_left ? nread : hs->error_body_left;
    hs->error_body_left -= n;
    uv_buf_t b = wsb_write_buf(data, n);
    if (wsb__leg_write(&s->client, &b, 1) != 0 || hs->error_body_left == 0)
      wsb__session_finish(s);
    return;
  }
  assert((const char *)data == hs->resp_buf + hs->resp_len);
  size_t before = hs->resp_len;
  hs->resp_len += nread;
  ssize_t rc = wsb_http_feed(&hs->resp, hs->resp_buf + before, nread);
  if (rc == WSB_PARTIAL && hs->resp_len == hs->resp_cap && hs->resp_cap <= BACKEND_HEAD_MAX)
    rc = grow_head(&hs->resp, &hs->resp_buf, &hs->resp_cap, hs->resp_len, BACKEND_HEAD_MAX, true);
  if (rc == WSB_PARTIAL || rc == 0)
    return;
  if (rc < 0) {
    backend_failed(s, (int)rc);
    return;
  }
  answer_client(s, before + (size_t)rc);
}

void wsb__upgrade_timeout(struct wsb_session *s) {
  if (s->state == S_READ_REQUEST && s->http_served && s->hs->req_len == 0) {
    s->closed_by = BY_WSBAL; /* keep-alive between plain requests: idle as long as a head may be */
    wsb__session_close(s, 0);
  } else if (s->state == S_READ_REQUEST) {
    /* SPEC.md: a request too slow to arrive gets its connection closed, no answer. */
    count_handshake(s, WSB_HS_TIMEOUT);
    if (wsb__proxy_header_waiting(&s->client))
      wsb__proxy_header_timed_out(s);
    else if (wsb__tls_leg_handshaking(&s->client))
      wsb__tls_leg_count_error(&s->client, WSB_TLS_ERR_TIMEOUT);
    else
      log_rejected(s, 0, WSB_HS_TIMEOUT, NULL, "no full request head within handshake_timeout");
    s->closed_by = BY_WSBAL;
    wsb__session_close(s, UV_ETIMEDOUT);
  } else if (s->hs->relaying_error) {
    wsb__session_finish(s);
  } else if (s->hs->backoff) {
    s->hs->backoff = false;
    wsb__upgrade_connect_next(s);
  } else {
    backend_failed(s, UV_ETIMEDOUT);
  }
}
