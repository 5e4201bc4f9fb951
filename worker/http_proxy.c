/* Plain HTTP: one request to a backend and its answer back, streamed, then the next request. */
#include "http_proxy.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "errors.h"
#include "hash_key.h"
#include "http1.h"
#include "http_pool.h"
#include "leg.h"
#include "log.h"
#include "proxy.h"
#include "proxy_header.h"
#include "session.h"
#include "tls_leg.h"
#include "upgrade.h"

#define RESPONSE_HEAD_MAX (16 * 1024) /* a backend's answer head may be this large */

/*
 * One request and its answer. The request head stays in the session's handshake state (hs),
 * which a retry sends again; the client's bytes behind the head wait in the client leg's
 * pending buffer while no backend takes them, and so does a pipelined next request.
 */
struct wsb_http_exchange {
  struct wsb_http1_request req;
  struct wsb_http_head resp;
  struct wsb_body resp_body;
  char *resp_buf; /* the answer's head, until it is whole */
  size_t resp_len;
  struct wsb_slot_set tried;
  uv_connect_t connect;
  uint64_t started_ns;  /* the request head was read whole */
  uint64_t deadline_ms; /* uv_now of the exchange's timeout, which the timer may come before */
  uint64_t bytes_in;    /* request body bytes sent on */
  uint64_t bytes_out;   /* answer bytes (head included) written to the client */
  size_t stall_queued;  /* the client's queue when the timer last found the backend paused */
  uint64_t stall_in;    /* bytes_in when the timer last found the request body under way */
  unsigned attempts;
  uint16_t status;   /* of the answer the client got; 0 before */
  uint8_t method;    /* enum llhttp_method */
  bool head_sent;    /* the request head went to the current backend */
  bool answered;     /* a byte of the final answer went to the client */
  bool resp_started; /* a byte of an answer came from the current backend */
  bool reusable;     /* the backend connection may carry another request afterwards */
  bool dechunk;      /* an HTTP/1.0 client reads a chunked answer's payload until the close */
  bool rechunk;      /* an HTTP/1.1 client reads an answer ending at the backend's close chunked */
  bool close_client; /* the client connection ends with this answer */
  bool ending;       /* the answer is complete; what comes now is for the next request */
  bool reused;       /* the backend connection served a request before */
  bool fresh_retry;  /* a reused connection failed once: the next try may use the same backend */
  bool client_eof;   /* the client shut its side after the whole request: answer, then close */
};

/* wsbal_http_requests_total and wsbal_http_request_seconds, and the access log line. */
static void account(struct wsb_session *s, int status) {
  static const uint64_t bounds[] = WSB_HTTP_BUCKET_US;
  struct wsb_http_exchange *hx = s->hx;
  struct wsb_handshake *hs = s->hs;
  struct wsb_shm_worker *stats = s->w->stats;
  uint64_t took_us = (uv_hrtime() - hx->started_ns) / 1000;
  if (status >= 100 && status <= 599) {
    wsb_shm_add(&stats->http_requests[status / 100], 1);
    wsb_shm_observe(stats->http_buckets, bounds, WSB_HTTP_BUCKETS, &stats->http_us,
                    &stats->http_count, took_us);
  }
  if (s->w->access_log == NULL)
    return;
  const struct wsb_header *host = wsb_http_find(&hs->req, "Host", NULL);
  const struct wsb_header *ua = wsb_http_find(&hs->req, "User-Agent", NULL);
  struct wsb_http_log e = {
      .method = llhttp_method_name((llhttp_method_t)hx->method),
      .path = hs->req.url,
      .status = status,
      .duration_ms = took_us / 1000,
      .bytes_in = hx->bytes_in,
      .bytes_out = hx->bytes_out,
      .backend_slot = s->backend_slot,
      .route = hs->route,
      .host = {"", 0},
      .user_agent = {"", 0},
  };
  if (host != NULL)
    e.host = host->value;
  if (ua != NULL)
    e.user_agent = ua->value;
  wsb_access_log_http(s->w, s, &e);
}

/*
 * Sets the exchange's timeout ms from now. A session timer already due sooner is left as it
 * is, and wsb__http_timer sets it again for what is left when it comes early: a request and
 * each read of its answer moving the timer in libuv's heap cost more than that rare wakeup.
 */
static void http_timer(struct wsb_session *s, uint64_t ms) {
  s->hx->deadline_ms = uv_now(&s->w->loop) + ms;
  if (uv_is_active((uv_handle_t *)&s->timer) && uv_timer_get_due_in(&s->timer) <= ms)
    return;
  wsb__session_timer_start(s, ms);
}

/* The answer was cut short (the backend left, sent a broken body, or the client stopped
   reading): only closing the connection, after what is queued, can tell the client. */
static void cut(struct wsb_session *s, int reason) {
  account(s, s->hx->status);
  s->reason = reason;
  if (s->hx->dechunk) {
    /* An HTTP/1.0 client reads this answer until the close, so a clean close would pass the
       cut answer off as whole: the connection ends with a reset instead (SO_LINGER 0), and
       without the lingering close, whose FIN would read as the answer's end. */
    uv_os_fd_t fd;
    struct linger reset = {.l_onoff = 1, .l_linger = 0};
    if (uv_fileno((uv_handle_t *)&s->client.tcp, &fd) == 0)
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    s->client.read_done = true;
    wsb__session_close(s, reason);
    return;
  }
  wsb__session_finish(s);
}

/* Ends the connection after wsbal's own answer (an error status), once it is written. */
static void answer_error(struct wsb_session *s, int status) {
  struct wsb_http_exchange *hx = s->hx;
  if (hx->answered) {
    cut(s, WSB_EHTTP); /* part of an answer went out */
    return;
  }
  char buf[512];
  size_t n = wsb_http_error_response(buf, sizeof(buf), status,
                                     status == 503 ? "Retry-After: 5\r\n" : NULL);
  hx->answered = true;
  hx->status = (uint16_t)status;
  hx->bytes_out += n;
  account(s, status);
  wsb__session_release_backend(s);
  wsb__session_answer_last(s, buf, n);
}

/* Keeps client bytes no backend takes yet (the body before the backend is ready, a pipelined
   next request); the client is not read again until they are used. */
static void hold_client(struct wsb_session *s, const uint8_t *data, size_t len) {
  struct wsb_leg *c = &s->client;
  uint8_t *p = realloc(c->pending, c->pending_len + len);
  if (p == NULL) {
    wsb__session_close(s, UV_ENOMEM);
    return;
  }
  memcpy(p + c->pending_len, data, len);
  c->pending = p;
  c->pending_len = c->pending_cap = c->pending_len + (uint32_t)len;
  c->paused = false; /* not a backpressure pause: a drained queue must not resume it */
  wsb__leg_stop_reading(c);
}

/* Client bytes while the request is under way: its body goes on to the backend, anything
   after it waits. */
static void client_data(struct wsb_session *s, const uint8_t *data, size_t len) {
  struct wsb_http_exchange *hx = s->hx;
  if (!hx->head_sent || hx->ending || hx->req.body.done) {
    hold_client(s, data, len);
    return;
  }
  ssize_t n = wsb_body_feed(&hx->req.body, (const char *)data, len);
  if (n < 0) {
    answer_error(s, n == WSB_EBODY_TOO_LARGE ? 413 : 400);
    return;
  }
  hx->bytes_in += (uint64_t)n;
  uv_buf_t b = wsb_write_buf(data, (size_t)n);
  int rc = wsb__leg_write(&s->backend, &b, 1);
  if (rc != 0) {
    wsb__session_close(s, rc);
    return;
  }
  /* The answer's http_timeout runs from the request's end, not from the body's last pause. */
  if (hx->req.body.done && !hx->resp_started)
    http_timer(s, wsb__session_pool_settings(s)->http_timeout_ms);
  if ((size_t)n < len)
    hold_client(s, data + n, len - (size_t)n);
}

/* What the client sent while no backend could take it, passed on now. */
static void client_pending(struct wsb_session *s) {
  struct wsb_leg *c = &s->client;
  uint8_t *p = c->pending;
  uint32_t len = c->pending_len;
  if (p == NULL)
    return;
  c->pending = NULL;
  c->pending_len = c->pending_cap = 0;
  client_data(s, p, len);
  free(p);
}

void wsb__http_client_read(struct wsb_leg *l, const uint8_t *data, size_t len) {
  client_data(l->s, data, len);
}

/* The client left, or its connection broke: the exchange ends with it. A client that only
   shut its sending side after the whole request (a half-close) still gets its answer. */
void wsb__http_client_eof(struct wsb_leg *l, int status) {
  struct wsb_session *s = l->s;
  struct wsb_http_exchange *hx = s->hx;
  if (status == UV_EOF && hx->req.body.done && !hx->ending) {
    hx->client_eof = hx->close_client = true;
    wsb__leg_stop_reading(l);
    return;
  }
  s->closed_by = BY_CLIENT;
  if (!s->hx->ending)
    account(s, 499);
  wsb__session_close(s, status);
}

static void connect_next(struct wsb_session *s);
static void next_request(struct wsb_session *s);

/* The backend handle closed: a retry connects to the next backend, a finished exchange
   reads the next request. */
static void on_backend_closed(uv_handle_t *h) {
  struct wsb_session *s = h->data;
  if (wsb__session_unref(s) || s->state == S_CLOSED)
    return;
  if (s->hx->ending)
    next_request(s);
  else
    connect_next(s);
}

static void close_backend(struct wsb_session *s) {
  s->backend.open = false;
  s->backend.reading = false;
  uv_close((uv_handle_t *)&s->backend.tcp, on_backend_closed);
}

/* GET, HEAD and OPTIONS may go to another backend once sent, if no byte of an answer came. */
static bool idempotent(uint8_t method) {
  return method == HTTP_GET || method == HTTP_HEAD || method == HTTP_OPTIONS;
}

/*
 * The current backend failed the request (refused, timed out, reset, a broken answer). A
 * request none of whose bytes it got, or an idempotent one without a body and without a byte
 * of answer yet, goes to the next backend; any other gets 502.
 */
static void backend_failed(struct wsb_session *s, int reason) {
  struct wsb_http_exchange *hx = s->hx;
  assert(wsb__slot_valid(s->backend_slot));
  const struct wsb_shm_backend *b = &s->w->table->backends[s->backend_slot];
  bool again = !hx->head_sent || (idempotent(hx->method) && hx->req.body.data == 0 &&
                                  hx->bytes_in == 0 && !hx->resp_started);
  if (again && hx->reused && !hx->fresh_retry && !hx->resp_started) {
    /* An idle connection the backend closed just as the request went out (its keep-alive
       timeout): no fault of the backend's, and a new connection to it may take the request. */
    hx->fresh_retry = true;
    wsb_slot_set_del(&hx->tried, (uint32_t)s->backend_slot);
    wsb_log_debug("session %016llx: reused connection to %s failed: %s", (unsigned long long)s->id,
                  b->name, wsb_strerror(reason));
  } else {
    wsb_breaker_failure(s->w, (uint32_t)s->backend_slot);
    wsb_log_warn("session %016llx: backend %s failed an HTTP request: %s",
                 (unsigned long long)s->id, b->name, wsb_strerror(reason));
  }
  s->reason = reason;
  if (!again || hx->answered) {
    answer_error(s, reason == UV_ETIMEDOUT && hx->head_sent ? 504 : 502);
    return;
  }
  wsb__session_release_backend(s);
  uv_timer_stop(&s->timer);
  close_backend(s);
}

static void send_request(struct wsb_session *s) {
  struct wsb_http_exchange *hx = s->hx;
  const struct wsb_shm_settings *cfg = wsb__session_pool_settings(s);
  const char *method = llhttp_method_name((llhttp_method_t)hx->method);
  struct wsb_proxy_request pr = {.method = {method, strlen(method)}, .body = &hx->req.body};
  int rc = wsb__upgrade_send_request(s, &pr);
  if (rc < 0) {
    backend_failed(s, rc);
    return;
  }
  hx->head_sent = true;
  http_timer(s, cfg->http_timeout_ms);
  /* wsbal takes the body itself, so it says go on once a backend is there to stream it to. */
  if (hx->req.expect_continue && !hx->req.body.done && !hx->answered) {
    static const char go_on[] = "HTTP/1.1 100 Continue\r\n\r\n";
    uv_buf_t b = wsb_write_buf(go_on, sizeof(go_on) - 1);
    if ((rc = wsb__leg_write(&s->client, &b, 1)) != 0) {
      wsb__session_close(s, rc);
      return;
    }
  }
  client_pending(s);
  if (s->state == S_HTTP && !hx->req.body.done && s->client.pending == NULL &&
      (rc = wsb__leg_start_reading(&s->client)) != 0)
    wsb__session_close(s, rc);
}

static void on_backend_connected(uv_connect_t *req, int status) {
  struct wsb_session *s = req->handle->data;
  if (s->state == S_CLOSED || !s->backend.open)
    return;
  if (status < 0) {
    backend_failed(s, status);
    return;
  }
  uv_tcp_nodelay(&s->backend.tcp, 1);
  int rc = wsb__proxy_header_send(s);
  if (rc == 0 && s->w->table->backends[s->backend_slot].url.tls)
    rc = wsb__tls_leg_connect(&s->backend);
  if (rc != 0) {
    backend_failed(s, rc);
    return;
  }
  send_request(s);
}

/* A request that may meet a connection the backend closed as it went out: one that goes to a
   new connection if that fails (backend_failed), once. */
static bool retryable(const struct wsb_http_exchange *hx) {
  return idempotent(hx->method) && hx->req.body.kind == WSB_BODY_NONE && !hx->fresh_retry;
}

/*
 * Sends the request on the connection the session kept from its previous request when it
 * goes to the same backend: no system call but the write. The kept connection is read while
 * idle (wsb__http_kept_read), so one the backend closed is gone already, unless its end came
 * in this very turn of the loop: a request that may be sent again (GET without a body...)
 * takes that chance and is retried on a new connection if it fails; any other is sent only
 * after a peek finds the connection still idle. Otherwise the kept connection goes to the
 * pool, and its handle closes before the next one is opened (on_backend_closed comes back to
 * connect_next).
 */
static void reuse_kept(struct wsb_session *s, int slot) {
  struct wsb_http_exchange *hx = s->hx;
  uv_os_fd_t fd;
  if (slot == s->kept_slot && s->backend.reading &&
      uv_fileno((uv_handle_t *)&s->backend.tcp, &fd) == 0 &&
      (retryable(hx) || wsb_http_pool_idle(fd))) {
    s->kept_slot = -1;
    wsb_slot_set_add(&hx->tried, (uint32_t)slot);
    hx->attempts++;
    hx->reused = true;
    hx->head_sent = hx->resp_started = false;
    hx->resp_len = 0;
    wsb__session_hold_backend(s, slot);
    wsb_http_head_init(&hx->resp, true, RESPONSE_HEAD_MAX);
    send_request(s);
    return;
  }
  wsb_http_pool_keep(s);
  close_backend(s);
}

/* Opens the backend leg on the session's kept connection, an idle one of the pool, or a new
   one. */
static void connect_next(struct wsb_session *s) {
  struct wsb_worker *w = s->w;
  struct wsb_http_exchange *hx = s->hx;
  struct wsb_handshake *hs = s->hs;
  struct wsb_hash_key_source key = {&hs->req, hs->upgrade.path, hs->client_ip};
  /* Among equally loaded backends the one the kept connection goes to: switching connections
     costs five system calls (the kept one parked and closed, a pooled one opened). */
  int slot = wsb_select_backend_near(w, s->pool, &key, &hx->tried, s->kept_slot);
  if (slot < 0) {
    answer_error(s, hx->attempts > 0 ? 502 : 503);
    return;
  }
  if (s->kept_slot >= 0) {
    reuse_kept(s, slot);
    return;
  }
  wsb_slot_set_add(&hx->tried, (uint32_t)slot);
  hx->attempts++;
  hx->head_sent = hx->resp_started = false;
  hx->resp_len = 0;
  wsb__session_hold_backend(s, slot);
  wsb__leg_reset(&s->backend);
  uv_tcp_init(&w->loop, &s->backend.tcp);
  s->backend.tcp.data = s;
  s->backend.open = true;
  s->handles++;
  wsb_http_head_init(&hx->resp, true, RESPONSE_HEAD_MAX);
  const struct wsb_shm_backend *b = &w->table->backends[slot];
  struct wsb_tls_leg *tls;
  int fd = wsb_http_pool_take(w, slot, retryable(hx), &tls);
  hx->reused = fd >= 0;
  if (hx->reused) {
    int rc = uv_tcp_open(&s->backend.tcp, fd);
    if (tls != NULL)
      wsb__tls_leg_attach(&s->backend, tls); /* freed with the leg from here on */
    if (rc == 0)
      rc = wsb__leg_start_reading(&s->backend);
    if (rc != 0) {
      if (uv_fileno((uv_handle_t *)&s->backend.tcp, &(uv_os_fd_t){0}) != 0)
        close(fd); /* the handle never took it */
      backend_failed(s, rc);
      return;
    }
    send_request(s);
    return;
  }
  http_timer(s, wsb__session_pool_settings(s)->connect_timeout_ms);
  int rc = uv_tcp_connect(&hx->connect, &s->backend.tcp, (const struct sockaddr *)&b->addr,
                          on_backend_connected);
  if (rc == 0)
    rc = wsb__leg_start_reading(&s->backend);
  if (rc != 0)
    backend_failed(s, rc);
}

/*
 * Exchanges whose request is over, kept for the next requests of the worker (one process, one
 * loop: a file's static is the worker's). Allocating and freeing an exchange and its 16 KiB
 * answer buffer per request made malloc grow and trim the heap (brk, whose page unmapping
 * costs a TLB flush on every CPU), while keeping each on its idle keep-alive connection would
 * cost those connections 20 KiB each.
 */
#define SPARE_EXCHANGES 64
static struct wsb_http_exchange *spare[SPARE_EXCHANGES];
static unsigned nspare;

static struct wsb_http_exchange *exchange_get(void) {
  if (nspare > 0) {
    struct wsb_http_exchange *hx = spare[--nspare];
    char *resp_buf = hx->resp_buf;
    /* Cleared but for the answer's head, which wsb_http_head_init sets up before each
       attempt without its 3 KiB header table. */
    size_t resp = offsetof(struct wsb_http_exchange, resp), resp_end = resp + sizeof(hx->resp);
    memset(hx, 0, resp);
    memset((char *)hx + resp_end, 0, sizeof(*hx) - resp_end);
    wsb_http_head_init(&hx->resp, true, RESPONSE_HEAD_MAX);
    hx->resp_buf = resp_buf;
    return hx;
  }
  struct wsb_http_exchange *hx = calloc(1, sizeof(*hx));
  if (hx != NULL && (hx->resp_buf = malloc(RESPONSE_HEAD_MAX)) == NULL) {
    free(hx);
    hx = NULL;
  }
  return hx;
}

/* A draining worker keeps none: wsb_http_close_idle freed the spares, and it will exit. */
static void exchange_put(struct wsb_worker *w, struct wsb_http_exchange *hx) {
  if (nspare < SPARE_EXCHANGES && !w->draining) {
    spare[nspare++] = hx;
    return;
  }
  free(hx->resp_buf);
  free(hx);
}

void wsb__http_begin(struct wsb_session *s, size_t head_len) {
  struct wsb_handshake *hs = s->hs;
  const struct wsb_shm_settings *cfg = &s->w->table->settings;
  struct wsb_http_exchange *hx = exchange_get();
  if (hx == NULL) {
    wsb__session_close(s, UV_ENOMEM);
    return;
  }
  s->hx = hx;
  s->http_served = true;
  hx->started_ns = hs->request_ns;
  hx->method = hs->req.method;
  wsb__session_set_state(s, S_HTTP);
  hs->head_len = head_len;
  wsb__upgrade_find_client_ip(s);
  /* What followed the head (a body, a pipelined request) waits until a backend is there.
     Otherwise the client stays readable: most send nothing until they have their answer, and
     stopping and restarting the read would cost two epoll_ctl calls per request. What comes
     anyway is held (client_data), and a half-close is noted (wsb__http_client_eof). */
  if (hs->req_len > head_len)
    hold_client(s, (const uint8_t *)hs->req_buf + head_len, hs->req_len - head_len);
  if (s->state == S_CLOSED)
    return;
  int status = wsb_http1_check_request(&hs->req, cfg->max_body_bytes, &hs->upgrade, &hx->req);
  if (status == 0 && !wsb_proxy_path_allowed(cfg->path, hs->upgrade.path))
    status = 404;
  if (status == 0 && hx->req.body.kind == WSB_BODY_LENGTH && cfg->max_body_bytes > 0 &&
      hx->req.body.left > cfg->max_body_bytes)
    status = 413;
  if (status == 0)
    status = wsb__upgrade_pick_route(s, false);
  if (status == 0)
    status = wsb__upgrade_admit(s);
  if (status != 0) {
    answer_error(s, status);
    return;
  }
  connect_next(s);
}

/* The answer is complete: the backend connection goes back to the pool or closes, then the
   client's next request is read, or its connection ends. */
static void exchange_done(struct wsb_session *s) {
  struct wsb_http_exchange *hx = s->hx;
  account(s, hx->status);
  uv_timer_stop(&s->timer);
  hx->ending = true;
  int slot = s->backend_slot;
  wsb__session_release_backend(s);
  /* A connection good for another request stays with the session, unread until then: its
     next request most often goes to the same backend. The pool gets it when the session ends
     or goes elsewhere. */
  /* Not a connection the request's body has not all gone through: the backend would read the
     next request as the rest of it. */
  bool keep =
      hx->reusable && hx->req.body.done && s->backend.open && s->backend.queued == 0 &&
      wsb__slot_valid(slot) &&
      wsb_shm_pool_settings(s->w->table, s->w->table->backends[slot].pool)->http_keepalive > 0;
  /* A kept connection stays read, so its end or unexpected bytes are seen while it is idle
     (wsb__http_kept_read), without an epoll_ctl call per request. */
  if (keep)
    s->kept_slot = (int16_t)slot;
  else
    wsb__leg_stop_reading(&s->backend);
  if (hx->close_client) {
    s->closed_by = BY_WSBAL;
    wsb__session_finish(s);
    return;
  }
  if (keep || !s->backend.open)
    next_request(s);
  else
    close_backend(s);
}

/* Answer bytes ending at the backend's close, to an HTTP/1.1 client: one chunk per read (the
   last chunk goes when the backend closes, wsb__http_backend_eof). */
static void response_rechunk(struct wsb_session *s, const char *data, size_t len,
                             const uv_buf_t *head) {
  struct wsb_http_exchange *hx = s->hx;
  char size[WSB_HTTP1_CHUNK_HEAD_MAX];
  uv_buf_t bufs[4];
  unsigned n = 0;
  if (head != NULL)
    bufs[n++] = *head;
  if (len > 0) {
    bufs[n++] = wsb_write_buf(size, wsb_http1_chunk_head(size, len));
    bufs[n++] = wsb_write_buf(data, len);
    bufs[n++] = wsb_write_buf("\r\n", 2);
    hx->bytes_out += bufs[n - 3].len + len + 2;
  }
  int rc = wsb__leg_write(&s->client, bufs, n);
  if (rc != 0)
    wsb__session_close(s, rc);
}

/* Answer bytes after the head: passed on as they are, or without the chunked framing for an
   HTTP/1.0 client. */
static void response_body(struct wsb_session *s, const char *data, size_t len,
                          const uv_buf_t *head) {
  struct wsb_http_exchange *hx = s->hx;
  if (hx->rechunk) {
    response_rechunk(s, data, len, head);
    return;
  }
  size_t used = 0;
  uv_buf_t bufs[16];
  unsigned n = 0;
  if (head != NULL)
    bufs[n++] = *head; /* the answer's head goes out with its first body bytes */
  int rc = 0;
  while (used < len && !hx->resp_body.done) {
    bool payload;
    ssize_t step = wsb_body_step(&hx->resp_body, data + used, len - used, &payload);
    if (step < 0) {
      if (n > 0)
        wsb__leg_write(&s->client, bufs, n); /* what came before the break is good */
      cut(s, (int)step);                     /* a broken chunked answer */
      return;
    }
    if (step == 0)
      break;
    if (payload || !hx->dechunk) {
      if (n > 0 && bufs[n - 1].base + bufs[n - 1].len == data + used)
        bufs[n - 1].len += (size_t)step;
      else
        bufs[n++] = wsb_write_buf(data + used, (size_t)step);
      hx->bytes_out += (uint64_t)step;
    }
    used += (size_t)step;
    if (n == sizeof(bufs) / sizeof(bufs[0])) {
      rc = wsb__leg_write(&s->client, bufs, n);
      n = 0;
      if (rc != 0)
        break;
    }
  }
  if (rc == 0 && n > 0)
    rc = wsb__leg_write(&s->client, bufs, n);
  if (rc != 0) {
    wsb__session_close(s, rc);
    return;
  }
  if (!hx->resp_body.done)
    return;
  if (used < len)
    hx->reusable = false; /* the backend said more than its answer: its next bytes are suspect */
  exchange_done(s);
}

static void backend_bytes(struct wsb_session *s, const char *data, size_t len);

/* The answer's head is whole (head_len bytes of resp_buf): a 1xx goes to the client (an
   HTTP/1.1 one) and the next head is read from what followed it; a final one is checked and
   passed on, and what followed it is the body. */
static void response_head(struct wsb_session *s, size_t head_len) {
  struct wsb_http_exchange *hx = s->hx;
  struct wsb_http_head *h = &hx->resp;
  bool reusable;
  if (wsb_http1_check_response(h, hx->method, &hx->resp_body, &reusable) != 0) {
    backend_failed(s, WSB_EHTTP);
    return;
  }
  bool client_11 = s->hs->req.http_minor >= 1;
  bool final = h->status >= 200;
  if (final) {
    wsb_breaker_success(s->w, (uint32_t)s->backend_slot);
    hx->reusable = reusable;
    hx->status = h->status;
    hx->dechunk = !client_11 && hx->resp_body.kind == WSB_BODY_CHUNKED;
    /* As nginx does: the client's connection outlives a backend's that ends its answer. */
    hx->rechunk = client_11 && hx->resp_body.kind == WSB_BODY_CLOSE;
    /* A request body the backend did not wait for would be read as the next request. */
    hx->close_client = !hx->req.keep_alive ||
                       (hx->resp_body.kind == WSB_BODY_CLOSE && !hx->rechunk) || hx->dechunk ||
                       !hx->req.body.done || s->w->draining || hx->client_eof;
  }
  unsigned how = (hx->dechunk ? WSB_HTTP1_DECHUNK : 0) | (hx->rechunk ? WSB_HTTP1_RECHUNK : 0);
  if (final && hx->close_client)
    how |= WSB_HTTP1_CLOSE;
  else if (final && !client_11)
    how |= WSB_HTTP1_KEEP_ALIVE; /* an HTTP/1.0 client that asked for it */
  char head[RESPONSE_HEAD_MAX + 256];
  ssize_t n = wsb_http1_response_write(head, sizeof(head), h, &hx->resp_body, how);
  if (n < 0) {
    backend_failed(s, (int)n);
    return;
  }
  uv_buf_t b = uv_buf_init(head, (unsigned)n);
  size_t rest = hx->resp_len - head_len;
  if (final) {
    hx->answered = true;
    hx->bytes_out += (uint64_t)n;
    hx->resp_len = head_len;
    response_body(s, hx->resp_buf + head_len, rest, &b);
    return;
  }
  int rc = client_11 ? wsb__leg_write(&s->client, &b, 1) : 0;
  if (rc != 0) {
    wsb__session_close(s, rc);
    return;
  }
  /* The final head follows the 1xx: read it from the start of the buffer. */
  memmove(hx->resp_buf, hx->resp_buf + head_len, rest);
  hx->resp_len = 0;
  wsb_http_head_init(h, true, RESPONSE_HEAD_MAX);
  backend_bytes(s, hx->resp_buf, rest);
}

/* Bytes of the answer: its head gathers in resp_buf, contiguous as the head parser wants it;
   the body passes on from where it was read. */
static void backend_bytes(struct wsb_session *s, const char *data, size_t len) {
  struct wsb_http_exchange *hx = s->hx;
  while (len > 0 && s->state == S_HTTP && !hx->ending) {
    if (hx->answered) {
      response_body(s, data, len, NULL);
      return;
    }
    size_t n = RESPONSE_HEAD_MAX - hx->resp_len;
    if (n > len)
      n = len;
    if (data != hx->resp_buf + hx->resp_len)
      memmove(hx->resp_buf + hx->resp_len, data, n);
    size_t before = hx->resp_len;
    hx->resp_len += n;
    data += n;
    len -= n;
    ssize_t rc = wsb_http_feed(&hx->resp, hx->resp_buf + before, n);
    if (rc == WSB_PARTIAL && hx->resp_len == RESPONSE_HEAD_MAX)
      rc = WSB_EHEAD_TOO_LARGE;
    if (rc == WSB_PARTIAL)
      continue;
    if (rc < 0) {
      backend_failed(s, (int)rc);
      return;
    }
    response_head(s, before + (size_t)rc);
  }
}

void wsb__http_backend_read(struct wsb_leg *l, const uint8_t *data, size_t len) {
  struct wsb_session *s = l->s;
  if (s->hx->ending)
    return; /* the answer is complete; what else comes is dropped with the connection */
  s->hx->resp_started = true;
  http_timer(s, wsb__session_pool_settings(s)->http_timeout_ms);
  backend_bytes(s, (const char *)data, len);
}

void wsb__http_backend_eof(struct wsb_leg *l, int status) {
  struct wsb_session *s = l->s;
  struct wsb_http_exchange *hx = s->hx;
  if (hx->ending)
    return;
  if (hx->answered && hx->resp_body.kind == WSB_BODY_CLOSE && (!hx->rechunk || status == UV_EOF)) {
    hx->resp_body.done = true; /* the close is the answer's end */
    wsb__leg_lose(&s->backend);
    if (hx->rechunk) {
      /* A reset instead is no end: the client sees the cut (below) by the missing last chunk. */
      static const char last[] = "0\r\n\r\n";
      uv_buf_t b = wsb_write_buf(last, sizeof(last) - 1);
      int rc = wsb__leg_write(&s->client, &b, 1);
      if (rc != 0) {
        wsb__session_close(s, rc);
        return;
      }
      hx->bytes_out += sizeof(last) - 1;
    }
    exchange_done(s);
    return;
  }
  if (hx->answered) {
    s->closed_by = BY_BACKEND;
    cut(s, status == UV_EOF ? UV_ECONNRESET : status);
    return;
  }
  backend_failed(s, status == UV_EOF ? UV_ECONNRESET : status);
}

void wsb__http_timer(struct wsb_session *s) {
  struct wsb_http_exchange *hx = s->hx;
  uint64_t now = uv_now(&s->w->loop);
  if (now < hx->deadline_ms) {
    wsb__session_timer_start(s, hx->deadline_ms - now); /* an earlier timer's (http_timer) */
    return;
  }
  if (hx->answered && s->backend.paused) {
    /* The backend waits for the client to read, which is no fault of the backend's; a client
       that took nothing in a whole http_timeout is given up on, as nginx's send_timeout does. */
    if (s->client.queued == hx->stall_queued) {
      s->closed_by = BY_WSBAL;
      cut(s, UV_ETIMEDOUT);
      return;
    }
    hx->stall_queued = s->client.queued;
    http_timer(s, wsb__session_pool_settings(s)->http_timeout_ms);
    return;
  }
  if (!hx->head_sent) {
    backend_failed(s, UV_ETIMEDOUT); /* the connect took too long */
    return;
  }
  if (!hx->req.body.done && !hx->resp_started) {
    /* http_timeout is the longest pause between bytes: a body still coming is waited for. */
    if (hx->bytes_in != hx->stall_in) {
      hx->stall_in = hx->bytes_in;
      http_timer(s, wsb__session_pool_settings(s)->http_timeout_ms);
      return;
    }
    /* Bytes of the body still wait for the backend (the client is paused, or was until
       just now): the backend stopped reading it. Otherwise the client stopped sending. */
    answer_error(s, s->client.paused || s->backend.queued > 0 ? 504 : 408);
    return;
  }
  wsb_log_warn("session %016llx: backend %s: no answer within http_timeout",
               (unsigned long long)s->id, s->w->table->backends[s->backend_slot].name);
  answer_error(s, 504);
}

/* The previous exchange is over and the client connection stays: back to reading a head,
   starting with what the client already sent behind the last request. */
static void next_request(struct wsb_session *s) {
  wsb__http_free(s);
  int rc = wsb__session_new_request(s); /* reuses the handshake state's memory */
  if (rc != 0) {
    wsb__session_close(s, rc);
    return;
  }
  wsb__session_set_state(s, S_READ_REQUEST);
  wsb__session_timer_start(s, s->w->table->settings.handshake_timeout_ms);
  if ((rc = wsb__leg_start_reading(&s->client)) != 0) {
    wsb__session_close(s, rc);
    return;
  }
  struct wsb_leg *c = &s->client;
  if (c->pending == NULL)
    return;
  struct wsb_handshake *hs = s->hs;
  if (c->pending_len > hs->req_cap) {
    char *p = realloc(hs->req_buf, c->pending_len);
    if (p == NULL) {
      wsb__session_close(s, UV_ENOMEM);
      return;
    }
    hs->req_buf = p;
    hs->req_cap = c->pending_len;
  }
  uint32_t len = c->pending_len;
  memcpy(hs->req_buf, c->pending, len);
  free(c->pending);
  c->pending = NULL;
  c->pending_len = c->pending_cap = 0;
  wsb__upgrade_request_read(c, (const uint8_t *)hs->req_buf, len);
}

/* The backend connection a session keeps between its requests said something or ended while
   idle: it can carry no request now. It is no longer read, which marks it (reuse_kept and the
   pool leave it), and closes when the session next needs its backend leg or ends: closing it
   now could race a request read in the same turn of the loop, whose backend connection would
   take the handle while it closes. */
static void drop_kept(struct wsb_session *s) {
  wsb__leg_stop_reading(&s->backend);
}

void wsb__http_kept_read(struct wsb_leg *l, const uint8_t *data, size_t len) {
  drop_kept(l->s);
}

void wsb__http_kept_eof(struct wsb_leg *l, int status) {
  drop_kept(l->s);
}

void wsb_http_close_idle(struct wsb_worker *w) {
  struct wsb_session *s;
  WSB_LIST_EACH (s, &w->sessions, link) {
    if (s->state == S_READ_REQUEST && s->http_served && s->hs->req_len == 0)
      wsb__session_close(s, 0);
  }
  wsb_http_pool_free(w);
  while (nspare > 0) {
    struct wsb_http_exchange *hx = spare[--nspare];
    free(hx->resp_buf);
    free(hx);
  }
}

void wsb__http_free(struct wsb_session *s) {
  if (s->hx == NULL)
    return;
  exchange_put(s->w, s->hx);
  s->hx = NULL;
}
