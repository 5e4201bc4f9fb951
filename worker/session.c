/* Session life: accept, checked state changes, events to the state table, and the one close. */
#include "session.h"

#include <arpa/inet.h>
#include <assert.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "compress.h"
#include "errors.h"
#include "http_pool.h"
#include "http_proxy.h"
#include "log.h"
#include "proxy_header.h"
#include "relay.h"
#include "replay.h"
#include "tls_leg.h"
#include "tls_worker.h"
#include "uring.h"

#define HEAD_BUFFER_START  2048 /* a request head buffer grows from here to max_header_bytes */
#define CLOSING_TIMEOUT_MS 5000 /* time a peer gets to finish the close handshake */
#define LINGER_MS          2000 /* after wsbal's own close the peers are drained this long */
#define LINGER_MAX_BYTES   (16u << 20) /* and this much at most: a flood cannot hold a worker */

static const char *const state_names[] = {"READ_REQUEST", "CONNECT_BACKEND", "RELAY", "FAILOVER",
                                          "HTTP",         "CLOSING",         "CLOSED"};
_Static_assert(sizeof(state_names) / sizeof(state_names[0]) == S_COUNT, "a name per state");

void wsb__session_set_state(struct wsb_session *s, enum wsb_session_state to) {
  static const bool allowed[S_COUNT][S_COUNT] = {
      /* to:            READ   CONN   RELAY  FAIL   HTTP   CLOSING CLOSED */
      [S_READ_REQUEST] = {false, true, false, false, true, true, true},
      [S_CONNECT_BACKEND] = {false, true, true, false, false, true, true},
      [S_RELAY] = {false, false, false, true, false, true, true},
      [S_FAILOVER] = {false, false, true, false, false, true, true},
      [S_HTTP] = {true, false, false, false, false, true, true},
      [S_CLOSING] = {false, false, false, false, false, false, true},
      [S_CLOSED] = {false, false, false, false, false, false, false},
  };
  if (!allowed[s->state][to])
    wsb_fatal(70, "session %016llx: bad transition %s -> %s", (unsigned long long)s->id,
              state_names[s->state], state_names[to]);
  /* RELAY never has a handshake alive (a move starts only from RELAY, never inside another
     one); the upgrade and a move always have one. */
  assert(to != S_RELAY || s->hs == NULL);
  assert((to != S_CONNECT_BACKEND && to != S_FAILOVER) || s->hs != NULL);
  wsb_log_debug("session %016llx: %s -> %s", (unsigned long long)s->id, state_names[s->state],
                state_names[to]);
  s->state = to;
}

bool wsb__session_failover_code(const struct wsb_session *s, uint16_t code) {
  const struct wsb_shm_settings *cfg = wsb__session_pool_settings(s);
  if (!cfg->failover)
    return false;
  return wsb_close_codes_has(&cfg->failover_codes, code);
}

void wsb__session_hold_backend(struct wsb_session *s, int slot) {
  assert(wsb__slot_valid(slot));
  wsb__session_release_backend(s);
  s->backend_slot = slot;

  wsb_shm_add(&s->w->stats->sessions[slot], 1);
  wsb_shm_add(&s->w->stats->pool_sessions[s->pool % WSB_SHM_MAX_POOLS], 1);
}

void wsb__session_note_backend(struct wsb_session *s) {
  assert(wsb__slot_valid(s->backend_slot));
  size_t max = sizeof(s->used) / sizeof(s->used[0]);
  if (s->nused < max)
    s->nused++;
  s->used[s->nused - 1] = (uint16_t)s->backend_slot;
}

void wsb__session_release_backend(struct wsb_session *s) {
  if (!wsb__slot_valid(s->backend_slot)) {
    assert(s->backend_slot == -1); /* none held */
    return;
  }
  wsb_shm_sub(&s->w->stats->sessions[s->backend_slot], 1);
  wsb_shm_sub(&s->w->stats->pool_sessions[s->pool % WSB_SHM_MAX_POOLS], 1);
  s->backend_slot = -1;
}

void wsb__session_free_handshake(struct wsb_session *s) {
  if (s->hs == NULL)
    return;
  wsb_upgrade_request_free(&s->hs->upgrade);
  free(s->hs->req_buf);
  free(s->hs->resp_buf);
  free(s->hs->pp_buf);
  free(s->hs);
  s->hs = NULL;
}

int wsb__session_new_request(struct wsb_session *s) {
  size_t max_head = (size_t)s->w->table->settings.max_header_bytes;
  struct wsb_handshake *hs = s->hs;
  if (hs != NULL && hs->req_buf != NULL) {
    /* The next plain request of a kept-alive connection: the head buffer is reused. */
    char *buf = hs->req_buf;
    size_t cap = hs->req_cap;
    wsb_upgrade_request_free(&hs->upgrade);
    free(hs->resp_buf);
    free(hs->pp_buf);
    /* The connection's ends stay what they were: no inet_ntop per request. */
    char client_ip[sizeof(hs->client_ip)], peer_ip[sizeof(hs->peer_ip)];
    memcpy(client_ip, hs->client_ip, sizeof(client_ip));
    memcpy(peer_ip, hs->peer_ip, sizeof(peer_ip));
    /* Cleared but for the two heads, which wsb_http_head_init sets up without their 3 KiB
       header tables: zeroing those for every request showed in profiles. */
    size_t req_end = offsetof(struct wsb_handshake, req) + sizeof(hs->req);
    size_t resp = offsetof(struct wsb_handshake, resp), resp_end = resp + sizeof(hs->resp);
    memset(hs, 0, offsetof(struct wsb_handshake, req));
    memset((char *)hs + req_end, 0, resp - req_end);
    memset((char *)hs + resp_end, 0, sizeof(*hs) - resp_end);
    wsb_http_head_init(&hs->resp, true, 0);
    hs->req_buf = buf;
    hs->req_cap = cap;
    hs->prefer = -1;
    memcpy(hs->client_ip, client_ip, sizeof(client_ip));
    memcpy(hs->peer_ip, peer_ip, sizeof(peer_ip));
    wsb_http_head_init(&hs->req, false, max_head);
    return 0;
  }
  if (hs == NULL && (s->hs = hs = calloc(1, sizeof(*s->hs))) == NULL)
    return UV_ENOMEM;
  hs->prefer = -1;
  hs->req_cap = max_head < HEAD_BUFFER_START ? max_head + 1 : HEAD_BUFFER_START;
  hs->req_buf = malloc(hs->req_cap);
  if (hs->req_buf == NULL)
    return UV_ENOMEM;
  wsb_http_head_init(&hs->req, false, max_head);
  return 0;
}

void wsb__session_note_close(struct wsb_session *s, uint16_t code, const void *reason, size_t len) {
  if (s->close_code != 0)
    return;
  s->close_code = code;
  /* Only the access log reads it: without memory it goes without. */
  if (len > 0 && (s->close_reason = malloc(len + 1)) != NULL) {
    memcpy(s->close_reason, reason, len);
    s->close_reason[len] = '\0';
  }
}

void wsb__session_client_text(struct wsb_session *s, char *buf, size_t cap) {
  buf[0] = '\0';
  /* Until the request head names the real client (upgrade.c), the peer stands for it: after a
     PROXY header the address it announced. */
  if (s->client_family != 0)
    inet_ntop(s->client_family, s->client_addr, buf, (socklen_t)cap);
  else if (wsb__proxy_header_tcp_ends(s, false) == 0)
    inet_ntop(s->peer_family, s->peer_addr, buf, (socklen_t)cap);
}

bool wsb__session_unref(struct wsb_session *s) {
  assert(s->handles > 0);
  if (--s->handles > 0)
    return false;
  assert(s->state == S_CLOSED && !s->window_listed); /* handles close only after the close */
  wsb__tls_leg_free(&s->client);
  wsb__tls_leg_free(&s->backend);
  free(s->client.pending);
  free(s->backend.pending);
  wsb__relay_hold_free(&s->backend);
  wsb_buf_free(&s->replay);
  wsb__compress_session_free(s);
  free(s->head);
  free(s->protocol);
  free(s->close_reason);
  wsb__session_free_handshake(s);
  wsb__http_free(s);
  free(s);
  return true;
}

void wsb__session_handle_closed(uv_handle_t *h) {
  wsb__session_unref(h->data);
}

/*
 * The lingering close (SPEC.md), for connections wsbal ends itself: closing a
 * socket with unread bytes in it makes the kernel answer with a reset, and a
 * reset destroys what the peer has not read yet, our close frame or error
 * answer included. So the write side is shut once the queue is written, and
 * whatever the peer still sends is read and dropped until it closes too, for
 * at most LINGER_MS and LINGER_MAX_BYTES (what nginx's lingering_close does).
 * The session is closed already; only its handles and memory remain.
 */
static void linger_end(struct wsb_leg *l) {
  struct wsb_session *s = l->s;
  if (!l->lingering)
    return;
  wsb__leg_close_now(l);
  if (!s->client.lingering && !s->backend.lingering)
    uv_close((uv_handle_t *)&s->timer, wsb__session_handle_closed);
}

static void linger_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct wsb_leg *l = wsb__leg_of(h);
  buf->base = (char *)l->s->w->read_buffer;
  buf->len = sizeof(l->s->w->read_buffer);
}

static void linger_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  struct wsb_leg *l = wsb__leg_of((uv_handle_t *)stream);
  struct wsb_session *s = l->s;
  if (nread < 0) {
    linger_end(l); /* the peer closed too (or its connection broke): nothing left to protect */
    return;
  }
  s->lingered += (uint32_t)nread;
  if (s->lingered > LINGER_MAX_BYTES)
    linger_end(l);
}

static void linger_shut(uv_shutdown_t *req, int status) {
  struct wsb_leg *l = wsb__leg_of((uv_handle_t *)req->handle);
  free(req);
  if (status < 0)
    linger_end(l); /* a broken connection, or the linger already ended (UV_ECANCELED) */
}

static void linger_timeout(uv_timer_t *t) {
  struct wsb_session *s = t->data;
  linger_end(&s->client);
  linger_end(&s->backend);
}

/* Starts the lingering close of a leg; returns whether it lingers (otherwise it is closed). */
static bool leg_linger(struct wsb_leg *l) {
  if (!l->open)
    return false;
  if (l->read_done) {
    wsb__leg_lose(l); /* the peer sends nothing more: no reset can happen */
    return false;
  }
  wsb__tls_leg_close_notify(l);
  wsb_uring_release(l); /* the socket goes back to libuv to linger */
  uv_shutdown_t *req = malloc(sizeof(*req));
  if (req == NULL || uv_shutdown(req, (uv_stream_t *)&l->tcp, linger_shut) != 0) {
    free(req);
    wsb__leg_close_now(l);
    return false;
  }
  wsb__leg_stop_reading(l);
  l->lingering = true;
  if (uv_read_start((uv_stream_t *)&l->tcp, linger_alloc, linger_read) != 0) {
    wsb__leg_close_now(l); /* the shutdown is cancelled with the handle */
    return false;
  }
  return true;
}

/* Did wsbal end the session with something for the peers to read (a close frame of its own,
   an error answer, a backend's error answer it passes on)? Those connections linger. */
static bool wsbal_spoke_last(const struct wsb_session *s) {
  return s->closed_by == BY_WSBAL || (s->hs != NULL && s->hs->relaying_error);
}

/* wsbal_session_seconds: a session that got its 101 (it keeps its request head since), from
   accept to close as the access log's duration. */
static void count_session_time(struct wsb_session *s) {
  static const uint64_t bounds[] = WSB_SESSION_BUCKET_US;
  struct wsb_shm_worker *stats = s->w->stats;
  if (s->head != NULL)
    wsb_shm_observe(stats->session_buckets, bounds, WSB_SESSION_BUCKETS, &stats->session_us,
                    &stats->session_count, (uv_now(&s->w->loop) - s->started_ms) * 1000);
}

void wsb__session_close(struct wsb_session *s, int reason) {
  if (s->state == S_CLOSED)
    return;
  if (s->reason == 0)
    s->reason = reason;
  wsb__session_set_state(s, S_CLOSED);
  wsb__session_release_backend(s);
  wsb_shm_sub(&s->w->stats->live, 1);
  if (s->admitted)
    wsb_shm_sub(&s->w->stats->admitted, 1);
  wsb_list_remove(&s->w->sessions, &s->link);
  wsb_log_debug("session %016llx closed: %s", (unsigned long long)s->id,
                s->reason ? wsb_strerror(s->reason) : "normal");
  wsb_access_log_session(s->w, s);
  count_session_time(s);
  wsb__replay_drop(s);
  assert(!s->window_listed);
  wsb_http_pool_park(s); /* a backend connection kept between plain requests serves others */
  bool lingers = false;
  if (wsbal_spoke_last(s)) {
    lingers = leg_linger(&s->client);
    lingers = leg_linger(&s->backend) || lingers;
  }
  wsb__leg_lose(&s->client);
  wsb__leg_lose(&s->backend);
  if (lingers)
    uv_timer_start(&s->timer, linger_timeout, LINGER_MS, 0);
  else
    uv_close((uv_handle_t *)&s->timer, wsb__session_handle_closed);
  wsb_worker_session_ended(s->w);
}

static bool flushed(const struct wsb_session *s) {
  return (!s->client.open || s->client.queued == 0) && (!s->backend.open || s->backend.queued == 0);
}

/* Ends the session once everything queued has been written (an error answer, a close frame). */
void wsb__session_finish(struct wsb_session *s) {
  s->finishing = true;
  if (s->state != S_CLOSING && s->state != S_CLOSED)
    wsb__session_set_state(s, S_CLOSING);
  if (flushed(s)) {
    wsb__session_close(s, 0);
    return;
  }
  /* Stop reading: nothing more is relayed, and a peer that never reads cannot hold us. */
  wsb__leg_stop_reading(&s->client);
  wsb__leg_stop_reading(&s->backend);
  wsb__session_timer_start(s, CLOSING_TIMEOUT_MS);
}

void wsb__session_answer_last(struct wsb_session *s, const char *answer, size_t n) {
  uv_buf_t b = wsb_write_buf(answer, n);
  if (n == 0 || wsb__leg_write(&s->client, &b, 1) != 0) {
    wsb__session_close(s, WSB_EHTTP);
    return;
  }
  s->closed_by = BY_WSBAL;
  wsb__session_finish(s);
}

/* A queued write ended: an error ends the session, or loses its backend where the state moves
   the session instead; a finishing session ends once both queues are written; a queue that
   drained lets the reader it paused go on. */
void wsb__session_written(struct wsb_leg *l, int status) {
  struct wsb_session *s = l->s;
  if (s->state == S_CLOSED)
    return;
  const struct wsb_session_ops *ops = wsb__session_ops(s);
  if (status < 0 && l->open) {
    if (!l->is_client && ops->on_backend_lost != NULL)
      ops->on_backend_lost(s, WSB_FO_LOST, status); /* the backend is lost, not the session */
    else if (!l->is_client && s->state == S_CLOSING)
      ops->backend.on_eof(l, status); /* as if it had ended: a client's close is answered */
    else
      wsb__session_close(s, status);
    return;
  }
  if (s->finishing) {
    if (flushed(s))
      wsb__session_close(s, 0);
    return;
  }
  if (l->queued <= LEG_QUEUE_LOW_WATER && l->peer->paused)
    wsb__leg_resume(l->peer);
  if (ops->on_writable != NULL)
    ops->on_writable(l);
}

bool wsb__session_awaits_written(const struct wsb_leg *l) {
  const struct wsb_session *s = l->s;
  return s->state != S_CLOSED &&
         (s->finishing || l->peer->paused || wsb__session_ops(s)->on_writable != NULL);
}

/* During the handshake a leg reads straight into its head buffer, afterwards into the loop's. */
void wsb__session_read_buf(struct wsb_leg *l, uv_buf_t *buf) {
  struct wsb_session *s = l->s;
  struct wsb_handshake *hs = s->hs;
  if (hs != NULL && l->is_client && s->state == S_READ_REQUEST) {
    buf->base = hs->req_buf + hs->req_len;
    buf->len = hs->req_cap - hs->req_len;
  } else if (hs != NULL && !l->is_client &&
             (s->state == S_CONNECT_BACKEND || s->state == S_FAILOVER) && !hs->relaying_error) {
    buf->base = hs->resp_buf + hs->resp_len;
    buf->len = hs->resp_cap - hs->resp_len;
  } else {
    buf->base = (char *)s->w->read_buffer;
    buf->len = sizeof(s->w->read_buffer);
  }
}

void wsb__session_dispatch(struct wsb_leg *l, ssize_t nread, const uv_buf_t *buf) {
  struct wsb_session *s = l->s;
  assert(l == &s->client || l == &s->backend);
  if (nread < 0)
    l->read_done = true;
  if (s->state == S_CLOSED)
    return;
  l->last_rx_ms = uv_now(&s->w->loop);
  const struct wsb_session_ops *ops = wsb__session_ops(s);
  const struct wsb_leg_ops *leg = l->is_client ? &ops->client : &ops->backend;
  if (nread < 0) {
    assert(leg->on_eof != NULL);
    leg->on_eof(l, (int)nread);
  } else {
    assert(leg->on_read != NULL);
    leg->on_read(l, (const uint8_t *)buf->base, (size_t)nread);
  }
}

void wsb__session_backend_lost(struct wsb_session *s, enum wsb_failover_reason why, int detail) {
  const struct wsb_session_ops *ops = wsb__session_ops(s);
  assert(ops->on_backend_lost != NULL);
  ops->on_backend_lost(s, why, detail);
}

static void on_timer(uv_timer_t *t) {
  struct wsb_session *s = t->data;
  if (s->state == S_CLOSED)
    return;
  const struct wsb_session_ops *ops = wsb__session_ops(s);
  assert(ops->on_timer != NULL);
  ops->on_timer(s);
}

void wsb__session_closing_timeout(struct wsb_session *s) {
  wsb__session_close(s, UV_ETIMEDOUT); /* a peer did not finish the close handshake in time */
}

void wsb__session_timer_start(struct wsb_session *s, uint64_t ms) {
  uv_timer_start(&s->timer, on_timer, ms, 0);
}

static void drop_connection(struct wsb_worker *w, uv_stream_t *listener);

static void on_spare_closed(uv_handle_t *h) {
  struct wsb_worker *w = h->data;
  w->spare_busy = false;
  for (size_t i = 0; i < w->nlisten; i++)
    if (w->accept_owed[i]) {
      w->accept_owed[i] = false;
      drop_connection(w, (uv_stream_t *)&w->listeners[i]);
      return;
    }
}

/*
 * No session for a waiting connection: it is accepted into the spare handle
 * and closed. A listener whose connection callback accepts nothing is no
 * longer watched by libuv until something is accepted from it, so without
 * this one failed allocation would end the worker's accepting for good.
 */
static void drop_connection(struct wsb_worker *w, uv_stream_t *listener) {
  if (uv_is_closing((uv_handle_t *)listener))
    return;
  if (w->spare_busy) {
    w->accept_owed[(uv_tcp_t *)listener - w->listeners] = true; /* when the spare is free */
    return;
  }
  uv_tcp_init(&w->loop, &w->spare);
  w->spare.data = w;
  w->spare_busy = true;
  uv_accept(listener, (uv_stream_t *)&w->spare);
  uv_close((uv_handle_t *)&w->spare, on_spare_closed);
}

/* Debug builds: WSB_TEST_FAIL_ACCEPT=N makes the first N session allocations of each worker
   fail, so the tests can reach the path above (worker.c reads it). */
static bool accept_alloc_fails(struct wsb_worker *w) {
#ifdef WSB_FAULT_INJECTION
  if (w->fail_accepts > 0) {
    w->fail_accepts--;
    return true;
  }
#endif
  return false;
}

void wsb_session_accept(struct wsb_worker *w, uv_stream_t *listener) {
  struct wsb_session *s = NULL;
  struct wsb_handshake *hs = NULL;
  if (!accept_alloc_fails(w)) {
    s = calloc(1, sizeof(*s));
    hs = calloc(1, sizeof(*hs));
  }
  if (s == NULL || hs == NULL) {
    free(s);
    free(hs);
    wsb_log_warn("accept: %s: connection dropped", wsb_strerror(UV_ENOMEM));
    drop_connection(w, listener);
    return;
  }
  s->w = w;
  s->hs = hs;
  s->backend_slot = -1;
  s->pool = WSB_SHM_DEFAULT_POOL; /* until the request picks one */
  s->prefer_slot = -1;
  s->kept_slot = -1;
  hs->prefer = -1;
  s->state = S_READ_REQUEST;
  s->started_ms = uv_now(&w->loop);
  /* Ids stay unique across respawns: slot (12 bits, so the master can route a command to
     the worker from the id alone), incarnation (12 bits), then a 40-bit sequence. */
  s->id = ((uint64_t)(w->slot & 0xfff) << 52) | ((uint64_t)(w->incarnation & 0xfff) << 40) |
          (w->next_session++ & 0xffffffffffull);
  s->client.s = s->backend.s = s;
  s->client.peer = &s->backend;
  s->backend.peer = &s->client;
  s->client.is_client = true;

  uv_tcp_init(&w->loop, &s->client.tcp);
  s->client.tcp.data = s;
  s->client.open = true;
  uv_timer_init(&w->loop, &s->timer);
  s->timer.data = s;
  s->handles = 2;
  wsb_list_insert_head(&w->sessions, &s->link);
  wsb_shm_add(&w->stats->live, 1);

  if (uv_accept(listener, (uv_stream_t *)&s->client.tcp) != 0) {
    wsb__session_close(s, UV_ECONNABORTED);
    return;
  }
  wsb_worker_refresh_table(w); /* TCP_NODELAY came from the listener (open_listeners) */
  if (wsb_tls_worker_listens_tls(w)) {
    int trc = wsb__tls_leg_accept(&s->client);
    if (trc != 0) {
      wsb__session_close(s, trc);
      return;
    }
  }
  int rc = wsb__session_new_request(s);
  if (rc == 0)
    rc = wsb__proxy_header_expect(s);
  if (rc != 0) {
    wsb__session_close(s, rc);
    return;
  }
  /* One deadline for the PROXY header, the TLS handshake and the request head together. */
  wsb__session_timer_start(s, w->table->settings.handshake_timeout_ms);
  /* A plain WebSocket client reads its handshake through the ring already (where there is
     one), so its socket never enters libuv's epoll set: 2 epoll_ctl fewer per session. Plain
     HTTP clients (http = proxy) stay on libuv until they upgrade. */
  if (w->table->settings.http != WSB_HTTP_PROXY)
    wsb_uring_adopt_new(&s->client);
  rc = wsb__leg_start_reading(&s->client);
  if (rc != 0)
    wsb__session_close(s, rc);
}

void wsb_session_close_all(struct wsb_worker *w) {
  struct wsb_session *s;
  WSB_LIST_EACH (s, &w->sessions, link) {
    if (s->finishing)
      continue; /* already closing, within its own deadline */
    if (s->state != S_RELAY) {
      wsb__session_close(s, UV_ECANCELED); /* nothing relayed yet: nobody to say goodbye to */
      continue;
    }
    s->closed_by = BY_WSBAL;
    wsb__leg_send_close(&s->client, WSB_CLOSE_GOING_AWAY, "wsbal stopping");
    wsb__leg_send_close(&s->backend, WSB_CLOSE_GOING_AWAY, "wsbal stopping");
    wsb__session_finish(s);
  }
}
