/* The admin HTTP/1.1 server: small requests, JSON answers, bearer tokens, keep-alive. */
#include "admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "errors.h"
#include "list.h" /* wsb_container_of */
#include "values.h"
#include "http.h"
#include "json.h"
#include "listen.h"
#include "log.h"

#define HEAD_MAX (16 * 1024)
#define BODY_MAX (64 * 1024)
#ifndef ADMIN_MAX_CONNECTIONS /* the unit test sets a small one */
#define ADMIN_MAX_CONNECTIONS 256
#endif

/*
 * A connection serves one request at a time, as nginx does: nothing more is
 * read while a request is being answered, so a client that pipelines and
 * never reads holds at most one answer and its read buffer. Each state in
 * which the server waits on the client has a deadline; none while the route
 * is working on a deferred answer (it bounds its own wait).
 */
enum conn_state {
  CONN_NEW,     /* accepted, not yet serving */
  CONN_IDLE,    /* between requests, no byte of the next one yet: idle_timeout */
  CONN_READING, /* a request is arriving: request_timeout from its first byte */
  CONN_WAITING, /* the route answers later (wsb_admin_complete) */
  CONN_WRITING, /* its answer is going out: request_timeout for the client to take it */
  CONN_CLOSING, /* uv_close called on both handles */
};

static const char *const state_names[] = {"new",     "idle",    "reading",
                                          "waiting", "writing", "closing"};

struct admin_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  struct wsb_admin *a;
  struct admin_conn *prev;
  struct admin_conn *next;
  enum conn_state state;
  uint64_t since; /* loop time the state began: who has waited longest is evicted first */
  int handles;    /* open handles; the connection is freed with the last one */
  bool reading;
  struct wsb_http_head head;
  char buf[HEAD_MAX + BODY_MAX];
  size_t len;      /* bytes in buf */
  size_t fed;      /* bytes of buf the head parser has been given (it keeps its place) */
  size_t head_len; /* 0 until the head is complete */
  size_t body_len;
  uint64_t serial;               /* names the connection to a deferred answer */
  bool keep_alive;               /* of the request being answered */
  bool head_only;                /* the request being answered is a HEAD */
  bool close_after;              /* the answer going out is the last: Connection: close */
  char peer[WSB_ADMIN_PEER_MAX]; /* the client, for the handlers' log of changes */
};

struct admin_write {
  uv_write_t req;
  struct admin_conn *c;
  char data[];
};

/* The connection's client as "ADDR:PORT", "[V6]:PORT", or "?" when it cannot be known. */
static void peer_text(uv_tcp_t *tcp, char *out, size_t cap) {
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  char ip[INET6_ADDRSTRLEN];
  snprintf(out, cap, "?");
  if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) != 0)
    return;
  if (ss.ss_family == AF_INET) {
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
    if (inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip)) != NULL)
      snprintf(out, cap, "%s:%u", ip, (unsigned)ntohs(sin->sin_port));
  } else if (ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
    if (inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip)) != NULL)
      snprintf(out, cap, "[%s]:%u", ip, (unsigned)ntohs(sin6->sin6_port));
  }
}

int wsb_admin_bind(const struct wsb_hostport *hp, char *err, size_t errlen) {
  return wsb_listen_open(hp, false, err, errlen);
}

void wsb_admin_error(struct wsb_admin_reply *reply, int status, const char *msg) {
  char buf[512];
  struct wsb_json j;
  wsb_json_init(&j, buf, sizeof(buf));
  wsb_json_object_begin(&j);
  wsb_json_key(&j, "error");
  wsb_json_cstring(&j, msg);
  wsb_json_object_end(&j);
  size_t n = wsb_json_finish(&j);
  reply->status = status;
  reply->body = malloc(n + 1);
  if (reply->body != NULL) {
    memcpy(reply->body, buf, n);
    reply->body[n] = '\n';
    reply->len = n + 1;
  }
}

static void on_closed(uv_handle_t *h) {
  struct admin_conn *c = h->data;
  if (--c->handles > 0)
    return;
  struct wsb_admin *a = c->a;
  if (c->prev)
    c->prev->next = c->next;
  else
    a->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  free(c);
  if (a->connections == 0 && a->on_idle != NULL) {
    void (*cb)(void *) = a->on_idle;
    a->on_idle = NULL; /* once: cb may close the server, or serve again */
    cb(a->idle_arg);
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_timeout(uv_timer_t *t);

/* A failed uv_read_start leaves the connection to its deadline. */
static void set_reading(struct admin_conn *c, bool on) {
  if (on && !c->reading)
    c->reading = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0;
  else if (!on && c->reading) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
  }
}

static bool transition_ok(enum conn_state from, enum conn_state to) {
  switch (to) {
  case CONN_IDLE:
    return from == CONN_NEW || from == CONN_WRITING;
  case CONN_READING:
    return from == CONN_IDLE || from == CONN_WRITING;
  case CONN_WAITING:
    return from == CONN_READING;
  case CONN_WRITING:
    return from == CONN_READING || from == CONN_WAITING;
  case CONN_CLOSING:
    return from != CONN_CLOSING;
  default:
    return false;
  }
}

/* Every state change: reading on or off, and the deadline of the new state. */
static void set_state(struct admin_conn *c, enum conn_state to) {
  if (!transition_ok(c->state, to))
    wsb_fatal(3, "admin: connection %" PRIu64 " cannot go from %s to %s", c->serial,
              state_names[c->state], state_names[to]);
  wsb_log_debug("admin: connection %" PRIu64 ": %s -> %s", c->serial, state_names[c->state],
                state_names[to]);
  struct wsb_admin *a = c->a;
  c->state = to;
  c->since = uv_now(a->loop);
  switch (to) {
  case CONN_IDLE:
    set_reading(c, true);
    uv_timer_start(&c->timer, on_timeout, a->cfg->admin.idle_timeout_ms, 0);
    break;
  case CONN_READING:
    set_reading(c, true);
    uv_timer_start(&c->timer, on_timeout, a->cfg->admin.request_timeout_ms, 0);
    break;
  case CONN_WAITING:
    set_reading(c, false);
    uv_timer_stop(&c->timer);
    break;
  case CONN_WRITING:
    set_reading(c, false);
    uv_timer_start(&c->timer, on_timeout, a->cfg->admin.request_timeout_ms, 0);
    break;
  case CONN_CLOSING:
    a->connections--;
    uv_close((uv_handle_t *)&c->timer, on_closed);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    break;
  default:
    break;
  }
}

static void close_conn(struct admin_conn *c) {
  if (c->state != CONN_CLOSING)
    set_state(c, CONN_CLOSING);
}

static void process(struct admin_conn *c);

/* The write request is freed first: a write cancelled by a close still runs this. */
static void on_written(uv_write_t *req, int status) {
  struct admin_write *w = (struct admin_write *)req;
  struct admin_conn *c = w->c;
  free(w);
  if (c->state != CONN_WRITING)
    return;
  if (status < 0 || c->close_after || c->a->quiescing) {
    close_conn(c);
    return;
  }
  set_state(c, c->len > 0 ? CONN_READING : CONN_IDLE);
  process(c);
}

/* A HEAD request's answer carries the head only, Content-Length included (RFC 9110 9.3.2). */
static void send_reply(struct admin_conn *c, const struct wsb_admin_reply *r, bool keep_alive) {
  size_t body_len = c->head_only ? 0 : r->len;
  char head[1024];
  int n = snprintf(head, sizeof(head),
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Cache-Control: no-store\r\n%s%s%s%sConnection: %s\r\n\r\n",
                   r->status, wsb_http_reason(r->status),
                   r->content_type ? r->content_type : "application/json", r->len,
                   r->allow ? "Allow: " : "", r->allow ? r->allow : "", r->allow ? "\r\n" : "",
                   r->headers ? r->headers : "", keep_alive ? "keep-alive" : "close");
  bool fits = n >= 0 && (size_t)n < sizeof(head);
  struct admin_write *w = fits ? malloc(sizeof(*w) + (size_t)n + body_len) : NULL;
  if (w == NULL) {
    close_conn(c);
    return;
  }
  w->c = c;
  c->close_after = !keep_alive;
  c->head_only = false;
  memcpy(w->data, head, (size_t)n);
  if (body_len)
    memcpy(w->data + n, r->body, body_len);
  set_state(c, CONN_WRITING);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)((size_t)n + body_len));
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
    free(w);
    close_conn(c);
  }
}

/* For a request that cannot be read to its end: nothing after it is read. */
static void reply_error_and_close(struct admin_conn *c, int status, const char *msg) {
  struct wsb_admin_reply r = {0};
  wsb_admin_error(&r, status, msg);
  if (r.body == NULL)
    close_conn(c);
  else
    send_reply(c, &r, false);
  free(r.body);
}

/* The token compared in constant time, so its bytes cannot be found by timing. */
static bool authorized(const char *token, const struct wsb_http_head *h) {
  if (token == NULL)
    return true;
  const struct wsb_header *auth = wsb_http_find(h, "Authorization", NULL);
  size_t tlen = strlen(token);
  if (auth == NULL || auth->value.len != 7 + tlen || strncasecmp(auth->value.p, "Bearer ", 7))
    return false;
  return CRYPTO_memcmp(auth->value.p + 7, token, tlen) == 0;
}

static bool needs_token(const char *path) {
  return strncmp(path, "/api/", 5) == 0 || strcmp(path, "/api") == 0 ||
         strcmp(path, "/metrics") == 0;
}

static bool all_digits(const char *p, const char *end) {
  if (p == end || end - p > 5)
    return false;
  for (; p < end; p++) {
    if (*p < '0' || *p > '9')
      return false;
  }
  return true;
}

/*
 * A Host a browser sends for an address, not a name: an IP literal (IPv6 in
 * brackets) or localhost, each with an optional port. Any port, since an SSH
 * tunnel or a port forward changes it. A DNS rebinding attack needs a name
 * of its own, so it cannot pass.
 */
static bool host_is_address(struct wsb_slice host) {
  const char *p = host.p, *end = host.p + host.len;
  const char *name = p, *name_end, *port = NULL;
  if (p < end && *p == '[') {
    name = p + 1;
    name_end = memchr(name, ']', (size_t)(end - name));
    if (name_end == NULL)
      return false;
    if (name_end + 1 < end) {
      if (name_end[1] != ':')
        return false;
      port = name_end + 2;
    }
  } else {
    name_end = memchr(p, ':', host.len);
    if (name_end == NULL)
      name_end = end;
    else
      port = name_end + 1;
  }
  if (port != NULL && !all_digits(port, end))
    return false;
  char text[64];
  size_t n = (size_t)(name_end - name);
  if (n == 0 || n >= sizeof(text))
    return false;
  memcpy(text, name, n);
  text[n] = '\0';
  unsigned char addr[sizeof(struct in6_addr)];
  if (*p == '[')
    return inet_pton(AF_INET6, text, addr) == 1;
  return inet_pton(AF_INET, text, addr) == 1 || strcasecmp(text, "localhost") == 0;
}

/* Origin (RFC 6454) names scheme, host and port; the admin server speaks plain http. */
static bool origin_matches(struct wsb_slice origin, const struct wsb_header *host) {
  static const char scheme[] = "http://";
  size_t sl = sizeof(scheme) - 1;
  return host != NULL && origin.len == sl + host->value.len &&
         strncasecmp(origin.p, scheme, sl) == 0 &&
         strncasecmp(origin.p + sl, host->value.p, host->value.len) == 0;
}

/* Media types compare without parameters ("application/json; charset=utf-8" is JSON). */
static bool is_json(struct wsb_slice type) {
  size_t n = 0;
  while (n < type.len && type.p[n] != ';' && type.p[n] != ' ' && type.p[n] != '\t')
    n++;
  return wsb_slice_eq((struct wsb_slice){type.p, n}, "application/json");
}

/*
 * What a browser could be made to send, refused before any route sees it
 * (CSRF, DNS rebinding): without a token, a Host that is not an address;
 * a state-changing request from another origin, or with a body that is not
 * JSON, which no HTML form can send without a CORS preflight. Returns 0 or
 * the status to answer, with *why.
 */
static int refuse_cross_site(const struct wsb_admin *a, const struct wsb_http_head *h,
                             size_t body_len, const char **why) {
  const struct wsb_header *host = wsb_http_find(h, "Host", NULL);
  if (host != NULL ? wsb_http_find(h, "Host", host) != NULL
                   : h->http_major == 1 && h->http_minor == 1) {
    *why = "an HTTP/1.1 request needs exactly one Host header";
    return 400;
  }
  if (a->cfg->admin.token == NULL && host != NULL && !host_is_address(host->value)) {
    *why = "Host must be an IP address or localhost (the admin API has no token)";
    return 421;
  }
  const struct wsb_header *origin = wsb_http_find(h, "Origin", NULL);
  bool safe = h->method == HTTP_GET || h->method == HTTP_HEAD || h->method == HTTP_OPTIONS;
  if (!safe && origin != NULL && !origin_matches(origin->value, host)) {
    *why = "cross-origin request refused: Origin does not match Host";
    return 403;
  }
  const struct wsb_header *type = wsb_http_find(h, "Content-Type", NULL);
  if (!safe && (type != NULL || body_len > 0) && (type == NULL || !is_json(type->value))) {
    *why = "send the body as Content-Type: application/json";
    return 415;
  }
  return 0;
}

/* Sends the answer to the current request; what followed it in buf waits for the next turn. */
static void answer(struct admin_conn *c, struct wsb_admin_reply *r) {
  size_t used = c->head_len + c->body_len;
  memmove(c->buf, c->buf + used, c->len - used);
  c->len -= used;
  wsb_http_head_init(&c->head, false, HEAD_MAX);
  c->fed = c->head_len = c->body_len = 0;
  send_reply(c, r, c->keep_alive && !c->a->quiescing);
  free(r->body);
  r->body = NULL;
}

/* Handles one complete request: answered now, or later (wsb_admin_complete). */
static void dispatch(struct admin_conn *c) {
  struct wsb_http_head *h = &c->head;
  char target[2048];
  if (h->url.len >= sizeof(target)) {
    reply_error_and_close(c, 414, "request target too long");
    return;
  }
  memcpy(target, h->url.p, h->url.len);
  target[h->url.len] = '\0';
  char *query = strchr(target, '?');
  if (query != NULL)
    *query++ = '\0';
  /* Names in paths may be percent-encoded ("b%231" for the backend "b#1"). */
  if (wsb_percent_decode(target, strlen(target), false, target, sizeof(target)) < 0) {
    reply_error_and_close(c, 400, "bad percent-encoding in the path");
    return;
  }
  c->head_only = h->method == HTTP_HEAD;
  c->keep_alive = h->http_major == 1 && h->http_minor == 1
                      ? !wsb_http_has_token(h, "Connection", "close")
                      : wsb_http_has_token(h, "Connection", "keep-alive");
  struct wsb_admin_reply r = {0};
  const char *why = NULL;
  int refused = refuse_cross_site(c->a, h, c->body_len, &why);
  if (refused != 0) {
    wsb_admin_error(&r, refused, why);
  } else if (needs_token(target) && !authorized(c->a->cfg->admin.token, h)) {
    wsb_admin_error(&r, 401, "missing or wrong bearer token");
  } else {
    const struct wsb_header *accept = wsb_http_find(h, "Accept", NULL);
    struct wsb_admin_request req = {
        .accept = accept != NULL ? accept->value : (struct wsb_slice){NULL, 0},
        .method = h->method,
        .path = target,
        .query = query ? query : "",
        .body = c->buf + c->head_len,
        .body_len = c->body_len,
        .conn = c->serial,
        .peer = c->peer,
    };
    /* Waiting already, so a handler may also complete before it returns (no worker to ask). */
    set_state(c, CONN_WAITING);
    c->a->route(c->a->ctx, &req, &r);
    if (r.status == 0)
      return;
  }
  answer(c, &r);
}

void wsb_admin_complete(struct wsb_admin *a, uint64_t conn, struct wsb_admin_reply *reply) {
  struct admin_conn *c = a->conns;
  while (c != NULL && c->serial != conn)
    c = c->next;
  if (c == NULL || c->state != CONN_WAITING) {
    free(reply->body);
    return;
  }
  answer(c, reply);
}

/*
 * Parses what has arrived of the current request and dispatches it once
 * whole. The head parser keeps its place (c->fed), so a head arriving a byte
 * at a time is parsed once, not again from its start on every read.
 */
static void process(struct admin_conn *c) {
  if (c->len == 0 || (c->state != CONN_IDLE && c->state != CONN_READING))
    return;
  if (c->state == CONN_IDLE)
    set_state(c, CONN_READING);
  if (c->head_len == 0) {
    ssize_t rc = wsb_http_feed(&c->head, c->buf + c->fed, c->len - c->fed);
    if (rc == WSB_PARTIAL) {
      c->fed = c->len;
      return;
    }
    if (rc < 0) {
      reply_error_and_close(c, rc == WSB_EHEAD_TOO_LARGE ? 431 : 400, wsb_strerror((int)rc));
      return;
    }
    c->head_len = c->fed + (size_t)rc;
    c->fed = c->head_len;
    if (wsb_http_find(&c->head, "Transfer-Encoding", NULL) != NULL) {
      reply_error_and_close(c, 411, "send a Content-Length, not a chunked body");
      return;
    }
    /* llhttp let through only digits, and one value however many headers repeat it. */
    const struct wsb_header *cl = wsb_http_find(&c->head, "Content-Length", NULL);
    for (size_t i = 0; cl != NULL && i < cl->value.len; i++) {
      c->body_len = c->body_len * 10 + (size_t)(cl->value.p[i] - '0');
      if (c->body_len > BODY_MAX) {
        reply_error_and_close(c, 413, "request body larger than 64 KiB");
        return;
      }
    }
  }
  if (c->len >= c->head_len + c->body_len)
    dispatch(c);
}

/* A request is at most HEAD_MAX + BODY_MAX and nothing is read while one is answered, so the
   buffer always has room while reading is on. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct admin_conn *c = h->data;
  buf->base = c->buf + c->len;
  buf->len = sizeof(c->buf) - c->len;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct admin_conn *c = s->data;
  if (nread < 0) {
    close_conn(c);
    return;
  }
  c->len += (size_t)nread;
  process(c);
}

/* A client that stalls mid-request hears why (as HAProxy's 408); an idle or non-reading one
   is just closed. */
static void on_timeout(uv_timer_t *t) {
  struct admin_conn *c = wsb_container_of(t, struct admin_conn, timer);
  wsb_log_debug("admin: connection %" PRIu64 ": timed out %s", c->serial, state_names[c->state]);
  if (c->state == CONN_READING)
    reply_error_and_close(c, 408, "request not complete within [admin] request_timeout");
  else
    close_conn(c);
}

static void on_spare_closed(uv_handle_t *h);

/*
 * A connection that will not be served is still accepted, into the spare
 * handle, and closed: libuv stops watching a listener whose callback leaves
 * a connection unaccepted, and would never accept again. Needs no memory,
 * so it works when allocation has just failed.
 */
static void refuse(struct wsb_admin *a) {
  if (a->spare_busy) {
    a->refuse_pending = true; /* the listener waits for on_spare_closed */
    return;
  }
  uv_tcp_init(a->loop, &a->spare);
  a->spare_busy = true;
  uv_accept((uv_stream_t *)&a->listener, (uv_stream_t *)&a->spare);
  uv_close((uv_handle_t *)&a->spare, on_spare_closed);
}

static void on_spare_closed(uv_handle_t *h) {
  struct wsb_admin *a = wsb_container_of(h, struct wsb_admin, spare);
  a->spare_busy = false;
  if (a->refuse_pending && a->fd >= 0) {
    a->refuse_pending = false;
    refuse(a);
  }
}

/* Who makes way first: idle, then a request still arriving, then an answer the client is slow
   to take. A connection whose answer the master is still working on is never closed for this. */
static int eviction_rank(enum conn_state state) {
  switch (state) {
  case CONN_IDLE:
    return 1;
  case CONN_READING:
    return 2;
  case CONN_WRITING:
    return 3;
  default:
    return 0;
  }
}

/*
 * At the cap a new connection takes the place of the one that has waited
 * longest in the first rank that has any (nginx reuses idle keep-alive
 * connections the same way), so idle, slow or non-reading clients cannot
 * lock out /healthz.
 */
static bool evict_one(struct wsb_admin *a) {
  struct admin_conn *victim = NULL;
  int best = 0;
  for (struct admin_conn *c = a->conns; c != NULL; c = c->next) {
    int rank = eviction_rank(c->state);
    if (rank == 0)
      continue;
    if (victim == NULL || rank < best ||
        (rank == best &&
         (c->since < victim->since || (c->since == victim->since && c->serial < victim->serial)))) {
      victim = c;
      best = rank;
    }
  }
  if (victim == NULL)
    return false;
  wsb_log_debug("admin: %u connections: closing connection %" PRIu64 " (%s)", a->connections,
                victim->serial, state_names[victim->state]);
  close_conn(victim);
  return true;
}

static void on_connection(uv_stream_t *listener, int status) {
  struct wsb_admin *a = listener->data;
  if (status < 0)
    return;
  if (a->connections >= ADMIN_MAX_CONNECTIONS && !evict_one(a)) {
    refuse(a);
    return;
  }
  struct admin_conn *c = calloc(1, sizeof(*c));
  if (c == NULL) {
    refuse(a);
    return;
  }
  c->a = a;
  c->serial = ++a->next_conn;
  uv_tcp_init(a->loop, &c->tcp);
  uv_timer_init(a->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles = 2;
  wsb_http_head_init(&c->head, false, HEAD_MAX);
  c->next = a->conns;
  if (a->conns)
    a->conns->prev = c;
  a->conns = c;
  a->connections++;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
    close_conn(c);
    return;
  }
  peer_text(&c->tcp, c->peer, sizeof(c->peer));
  set_state(c, CONN_IDLE);
}

int wsb_admin_start(struct wsb_admin *a, uv_loop_t *loop, int fd, const struct wsb_config *cfg,
                    wsb_admin_route_fn route, void *ctx) {
  a->loop = loop;
  a->fd = fd;
  a->cfg = cfg;
  a->route = route;
  a->ctx = ctx;
  a->quiescing = false;
  uv_tcp_init(loop, &a->listener);
  a->listener.data = a;
  int rc = uv_tcp_open(&a->listener, fd);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&a->listener, 128, on_connection);
  return rc;
}

void wsb_admin_quiesce(struct wsb_admin *a) {
  if (a->fd >= 0)
    uv_close((uv_handle_t *)&a->listener, NULL);
  a->fd = -1;
  a->quiescing = true;
  for (struct admin_conn *c = a->conns; c != NULL; c = c->next)
    if (c->state == CONN_NEW || c->state == CONN_IDLE)
      close_conn(c);
}

bool wsb_admin_when_idle(struct wsb_admin *a, void (*cb)(void *arg), void *arg) {
  a->on_idle = a->connections > 0 ? cb : NULL;
  a->idle_arg = arg;
  return a->on_idle != NULL;
}

void wsb_admin_stop(struct wsb_admin *a) {
  wsb_admin_quiesce(a);
  for (struct admin_conn *c = a->conns; c != NULL; c = c->next)
    close_conn(c);
}
