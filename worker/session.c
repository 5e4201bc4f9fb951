/* Session life: accept, state changes, the write path with backpressure, and the one close. */
#include "session.h"

#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "tls_leg.h"

#define QUEUE_HIGH_WATER (256 * 1024) /* past this many queued bytes the other leg stops reading */
#define QUEUE_LOW_WATER (64 * 1024)   /* and starts again once the queue is below this */
#define HEAD_BUFFER_START 2048        /* a request head buffer grows from here to max_header_bytes */
#define CLOSING_TIMEOUT_MS 5000       /* time a peer gets to finish the close handshake */

static const char *const state_names[] = {"READ_REQUEST", "CONNECT_BACKEND", "RELAY",
                                          "FAILOVER",     "CLOSING",         "CLOSED"};

void session_set_state(struct wsb_session *s, enum session_state to) {
  static const bool allowed[6][6] = {
      /* to:            READ   CONN   RELAY  FAIL   CLOSING CLOSED */
      [S_READ_REQUEST] = {false, true, false, false, true, true},
      [S_CONNECT_BACKEND] = {false, true, true, false, true, true},
      [S_RELAY] = {false, false, false, true, true, true},
      [S_FAILOVER] = {false, false, true, false, true, true},
      [S_CLOSING] = {false, false, false, false, false, true},
      [S_CLOSED] = {false, false, false, false, false, false},
  };
  if (!allowed[s->state][to])
    wsb_fatal(70, "session %016llx: bad transition %s -> %s", (unsigned long long)s->id,
              state_names[s->state], state_names[to]);
  wsb_log_debug("session %016llx: %s -> %s", (unsigned long long)s->id, state_names[s->state],
                state_names[to]);
  s->state = to;
}

void session_hold_backend(struct wsb_session *s, int slot) {
  session_release_backend(s);
  s->backend_slot = slot;

  wsb_shm_add(&s->w->stats->sessions[slot], 1);
}

void session_note_backend(struct wsb_session *s) {
  size_t max = sizeof(s->used) / sizeof(s->used[0]);
  if (s->nused < max)
    s->nused++;
  s->used[s->nused - 1] = (uint16_t)s->backend_slot;
}

void session_release_backend(struct wsb_session *s) {
  if (s->backend_slot < 0)
    return;
  wsb_shm_sub(&s->w->stats->sessions[s->backend_slot], 1);
  s->backend_slot = -1;
}

void session_free_handshake(struct wsb_session *s) {
  if (s->hs == NULL)
    return;
  wsb_upgrade_request_free(&s->hs->upgrade);
  free(s->hs->req_buf);
  free(s->hs->resp_buf);
  free(s->hs);
  s->hs = NULL;
}

bool session_unref(struct wsb_session *s) {
  if (--s->handles > 0)
    return false;
  tls_leg_free(&s->client);
  tls_leg_free(&s->backend);
  free(s->client.pending);
  free(s->backend.pending);
  wsb_buf_free(&s->backend.hold);
  wsb_buf_free(&s->replay);
  free(s->head);
  free(s->protocol);
  session_free_handshake(s);
  free(s);
  return true;
}

static void on_handle_closed(uv_handle_t *h) { session_unref(h->data); }

void leg_lose(struct leg *l) {
  if (!l->open)
    return;
  tls_leg_close_notify(l);
  l->open = false;
  l->reading = false;
  uv_close((uv_handle_t *)&l->tcp, on_handle_closed);
}

void leg_reset(struct leg *l) {
  tls_leg_free(l);
  free(l->pending);
  wsb_buf_free(&l->hold);
  l->pending = NULL;
  l->pending_len = l->pending_cap = 0;
  l->paused = l->close_received = l->close_sent = l->ping_outstanding = false;
  l->reading = false; /* a new connection, not reading yet */
  l->partial_out = l->stream_fin = false;
  l->msg = (struct wsb_msg_state){0};
  l->stream_left = 0;
}


void session_close(struct wsb_session *s, int reason) {
  if (s->state == S_CLOSED)
    return;
  if (s->reason == 0)
    s->reason = reason;
  session_set_state(s, S_CLOSED);
  session_release_backend(s);
  wsb_shm_sub(&s->w->stats->live, 1);
  if (s->prev != NULL)
    s->prev->next = s->next;
  else
    s->w->sessions = s->next;
  if (s->next != NULL)
    s->next->prev = s->prev;
  wsb_log_debug("session %016llx closed: %s", (unsigned long long)s->id,
                s->reason ? wsb_strerror(s->reason) : "normal");
  wsb_access_log_session(s->w, s);
  leg_lose(&s->client);
  leg_lose(&s->backend);
  uv_close((uv_handle_t *)&s->timer, on_handle_closed);
  wsb_worker_session_ended(s->w);
}

static bool flushed(const struct wsb_session *s) {
  return (!s->client.open || s->client.queued == 0) &&
         (!s->backend.open || s->backend.queued == 0);
}

/* Ends the session once everything queued has been written (an error answer, a close frame). */
void session_finish(struct wsb_session *s) {
  s->finishing = true;
  if (s->state != S_CLOSING && s->state != S_CLOSED)
    session_set_state(s, S_CLOSING);
  if (flushed(s)) {
    session_close(s, 0);
    return;
  }
  /* Stop reading: nothing more is relayed, and a peer that never reads cannot hold us. */
  leg_stop_reading(&s->client);
  leg_stop_reading(&s->backend);
  session_timer_start(s, CLOSING_TIMEOUT_MS);
}

struct write_req {
  uv_write_t req;
  struct leg *leg;
  size_t len;
  uint8_t data[];
};

static void on_write(uv_write_t *req, int status) {
  struct write_req *wr = (struct write_req *)req;
  struct leg *l = wr->leg;
  struct wsb_session *s = l->s;
  l->queued -= wr->len;
  free(wr);
  if (s->state == S_CLOSED)
    return;
  if (status < 0 && l->open) {
    if (!l->is_client && s->state == S_RELAY)
      failover_lost(s, status); /* the backend is lost, not the session */
    else
      session_close(s, status);
    return;
  }
  if (s->finishing) {
    if (flushed(s))
      session_close(s, 0);
    return;
  }
  if (l->queued <= QUEUE_LOW_WATER && l->peer->paused)
    leg_resume(l->peer);
}

int leg_write(struct leg *l, const uv_buf_t *bufs, unsigned nbufs) {
  if (l->tls != NULL)
    return tls_leg_write(l, bufs, nbufs);
  return leg_write_raw(l, bufs, nbufs);
}

int leg_write_raw(struct leg *l, const uv_buf_t *bufs, unsigned nbufs) {
  if (!l->open)
    return UV_EPIPE;
  size_t total = 0;
  for (unsigned i = 0; i < nbufs; i++)
    total += bufs[i].len;
  if (total == 0)
    return 0;
  /* uv_try_write refuses (UV_EAGAIN) while earlier writes are queued, which keeps order. */
  int n = uv_try_write((uv_stream_t *)&l->tcp, bufs, nbufs);
  if (n == UV_EAGAIN)
    n = 0;
  if (n < 0)
    return n;
  if ((size_t)n == total)
    return 0;

  size_t rest = total - (size_t)n;
  struct write_req *wr = malloc(sizeof(*wr) + rest);
  if (wr == NULL)
    return UV_ENOMEM;
  wr->leg = l;
  wr->len = rest;
  size_t skip = (size_t)n, used = 0;
  for (unsigned i = 0; i < nbufs; i++) {
    size_t len = bufs[i].len;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    memcpy(wr->data + used, bufs[i].base + skip, len - skip);
    used += len - skip;
    skip = 0;
  }
  uv_buf_t buf = uv_buf_init((char *)wr->data, (unsigned)rest);
  int rc = uv_write(&wr->req, (uv_stream_t *)&l->tcp, &buf, 1, on_write);
  if (rc != 0) {
    free(wr);
    return rc;
  }
  l->queued += rest;
  if (l->queued > QUEUE_HIGH_WATER)
    leg_pause(l->peer);
  return 0;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

void leg_stop_reading(struct leg *l) {
  if (l->open && l->reading) {
    l->reading = false;
    uv_read_stop((uv_stream_t *)&l->tcp);
  }
}

void leg_pause(struct leg *l) {
  if (l->open && !l->paused) {
    l->paused = true;
    leg_stop_reading(l);
  }
}

void leg_resume(struct leg *l) {
  if (l->open && l->paused && !l->s->finishing)
    leg_start_reading(l);
}

/* A TLS leg reads ciphertext into the worker's TLS buffer; its plaintext goes where a plain
   leg's bytes would. */
void leg_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct leg *l = leg_of(h);
  if (l->tls != NULL)
    *buf = tls_leg_read_buf(l);
  else
    leg_plain_buf(l, buf);
}

/* During the handshake a leg reads straight into its head buffer; afterwards into the loop's buffer. */
void leg_plain_buf(struct leg *l, uv_buf_t *buf) {
  struct wsb_session *s = l->s;
  struct handshake *hs = s->hs;
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

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  struct leg *l = leg_of((uv_handle_t *)stream);
  if (nread == 0 || l->s->state == S_CLOSED)
    return;
  if (l->tls != NULL && nread > 0) {
    tls_leg_on_read(l, (const uint8_t *)buf->base, (size_t)nread);
    return;
  }
  if (tls_leg_handshaking(l))
    tls_leg_count_error(l, WSB_TLS_ERR_CLOSED); /* gone in the middle of the handshake */
  leg_dispatch(l, nread, buf);
}

void leg_dispatch(struct leg *l, ssize_t nread, const uv_buf_t *buf) {
  struct wsb_session *s = l->s;
  if (s->state == S_CLOSED)
    return;
  l->last_rx_ms = uv_now(&s->w->loop);
  /* A backend being upgraded, at the start or while the session moves. */
  if (!l->is_client && (s->state == S_CONNECT_BACKEND || s->state == S_FAILOVER)) {
    upgrade_on_backend_read(l, nread, buf);
    return;
  }
  if (s->state == S_READ_REQUEST || s->state == S_CONNECT_BACKEND) {
    if (l->is_client && s->state == S_READ_REQUEST)
      upgrade_on_client_read(l, nread);
    else if (nread < 0)
      session_close(s, (int)nread); /* the client left while we were connecting */
    else
      leg_hold_early(l, (const uint8_t *)buf->base, (size_t)nread);
    return;
  }
  if (nread < 0)
    relay_on_eof(l, (int)nread);
  else
    relay_on_read(l, (const uint8_t *)buf->base, (size_t)nread);
}

/* Bytes a client sent before its 101 wait with the rest of its early data until the relay
   starts; reading pauses meanwhile, so an impatient client cannot make us hold more. */
void leg_hold_early(struct leg *l, const uint8_t *data, size_t len) {
  uint8_t *p = realloc(l->pending, l->pending_len + len);
  if (p == NULL) {
    session_close(l->s, UV_ENOMEM);
    return;
  }
  memcpy(p + l->pending_len, data, len);
  l->pending = p;
  l->pending_len = l->pending_cap = l->pending_len + (uint32_t)len;
  leg_pause(l);
}

int leg_start_reading(struct leg *l) {
  l->paused = false;
  if (l->reading)
    return 0;
  int rc = uv_read_start((uv_stream_t *)&l->tcp, leg_alloc, on_read);
  if (rc == 0) {
    l->reading = true;
    tls_leg_resume(l); /* what the TLS leg holds already goes on as well */
  }
  return rc;
}

static void on_timer(uv_timer_t *t) {
  struct wsb_session *s = t->data;
  switch (s->state) {
  case S_READ_REQUEST:
  case S_CONNECT_BACKEND:
  case S_FAILOVER:
    upgrade_on_timeout(s);
    break;
  case S_RELAY:
    relay_on_timer(s);
    break;
  case S_CLOSING:
    session_close(s, UV_ETIMEDOUT); /* a peer did not finish the close handshake in time */
    break;
  case S_CLOSED:
    break;
  }
}

void session_timer_start(struct wsb_session *s, uint64_t ms) {
  uv_timer_start(&s->timer, on_timer, ms, 0);
}

void wsb_session_accept(struct wsb_worker *w, uv_stream_t *listener) {
  struct wsb_session *s = calloc(1, sizeof(*s));
  struct handshake *hs = calloc(1, sizeof(*hs));
  if (s == NULL || hs == NULL) {
    free(s);
    free(hs);
    return;
  }
  s->w = w;
  s->hs = hs;
  s->backend_slot = -1;
  s->prefer_slot = -1;
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
  s->next = w->sessions;
  if (w->sessions != NULL)
    w->sessions->prev = s;
  w->sessions = s;
  wsb_shm_add(&w->stats->live, 1);

  if (uv_accept(listener, (uv_stream_t *)&s->client.tcp) != 0) {
    session_close(s, UV_ECONNABORTED);
    return;
  }
  uv_tcp_nodelay(&s->client.tcp, 1);
  wsb_worker_refresh_table(w);
  if (wsb_tls_worker_listens_tls(w)) {
    int trc = tls_leg_accept(&s->client);
    if (trc != 0) {
      session_close(s, trc);
      return;
    }
  }
  size_t max_head = (size_t)w->table->settings.max_header_bytes;
  hs->req_cap = max_head < HEAD_BUFFER_START ? max_head + 1 : HEAD_BUFFER_START;
  hs->req_buf = malloc(hs->req_cap);
  if (hs->req_buf == NULL) {
    session_close(s, UV_ENOMEM);
    return;
  }
  wsb_http_head_init(&hs->req, false, max_head);
  session_timer_start(s, w->table->settings.handshake_timeout_ms);
  int rc = leg_start_reading(&s->client);
  if (rc != 0)
    session_close(s, rc);
}

void wsb_session_close_all(struct wsb_worker *w) {
  struct wsb_session *next;
  for (struct wsb_session *s = w->sessions; s != NULL; s = next) {
    next = s->next;
    if (s->finishing)
      continue; /* already closing, within its own deadline */
    if (s->state != S_RELAY) {
      session_close(s, UV_ECANCELED); /* nothing relayed yet: nobody to say goodbye to */
      continue;
    }
    s->closed_by = BY_WSBAL;
    relay_send_close(&s->client, WSB_CLOSE_GOING_AWAY, "wsbal stopping");
    relay_send_close(&s->backend, WSB_CLOSE_GOING_AWAY, "wsbal stopping");
    session_finish(s);
  }
}
