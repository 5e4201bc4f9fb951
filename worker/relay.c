/* The relay: frames pass whole and untouched between the legs, checked on the way; keepalive. */
#include "relay.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "compress.h"
#include "errors.h"
#include "leg.h"
#include "log.h"
#include "replay.h"
#include "session.h"
#include "uring.h"

#define MAX_IOV           64
#define KEEPALIVE_PAYLOAD "wsbal-ka"
#define KEEPALIVE_LEN     (sizeof(KEEPALIVE_PAYLOAD) - 1)
/* A ping due while a frame from the leg's peer is half-way through to it cannot go in between:
   the timer looks again this much later. Arming it for the due time, already past, fired it again
   at once, and libuv runs such a timer over and over without polling: one client that stalled
   inside a frame held its worker at 100% CPU for good, and the worker outlived its master. */
#define PING_RETRY_MS 250

/* Frames to forward from one read, pointing into the read buffer until written. */
struct batch {
  uv_buf_t bufs[MAX_IOV];
  unsigned n;
};

static enum wsb_direction direction_from(const struct wsb_leg *l) {
  return l->is_client ? WSB_DIR_TO_BACKEND : WSB_DIR_TO_CLIENT;
}

static int flush(struct wsb_leg *to, struct batch *b) {
  int rc = b->n ? wsb__leg_write(to, b->bufs, b->n) : 0;
  b->n = 0;
  return rc;
}

static int add(struct wsb_leg *to, struct batch *b, const uint8_t *p, size_t len) {
  if (!to->is_client)
    to->s->backend_heard = true; /* whatever the backend does next may be its answer to this */
  b->bufs[b->n++] = wsb_write_buf(p, len);
  return b->n == MAX_IOV ? flush(to, b) : 0;
}

/* A peer broke the protocol: it gets the close code it earned, the other side 1001 or 1011. */
static void protocol_error(struct wsb_leg *l, int err) {
  struct wsb_session *s = l->s;
  wsb_log_debug("session %016llx: %s sent a bad frame: %s", (unsigned long long)s->id,
                l->is_client ? "client" : "backend", wsb_strerror(err));
  s->reason = err;
  s->closed_by = BY_WSBAL;
  wsb__leg_send_close(l, wsb_frame_error_close_code(err), wsb_strerror(err));
  wsb__leg_send_close(l->peer, l->is_client ? WSB_CLOSE_GOING_AWAY : WSB_CLOSE_INTERNAL,
                      l->is_client ? "client error" : "backend error");
  wsb__session_finish(s);
}

/* Copies a control payload out of the read buffer, unmasked. */
static void unmask_copy(uint8_t *out, const struct wsb_frame *f, const uint8_t *payload) {
  memcpy(out, payload, f->payload_len);
  if (f->masked)
    wsb_mask_apply(out, f->payload_len, f->mask, 0);
}

enum control_action { CONSUME, FORWARD, MOVE };

/* Looks at a control frame: forward it, consume it (wsbal's own), move the session, or WSB_E*. */
static int on_control(struct wsb_leg *l, const struct wsb_frame *f, const uint8_t *payload,
                      uint16_t *move_code) {
  struct wsb_session *s = l->s;
  uint8_t copy[WSB_CONTROL_PAYLOAD_MAX];
  unmask_copy(copy, f, payload);
  bool failing_over = s->state == S_FAILOVER;
  switch (f->opcode) {
  case WSB_OP_PONG:
    if (l->ping_outstanding && f->payload_len == KEEPALIVE_LEN &&
        memcmp(copy, KEEPALIVE_PAYLOAD, KEEPALIVE_LEN) == 0) {
      l->ping_outstanding = false;
      return CONSUME; /* the answer to wsbal's own keepalive */
    }
    return failing_over ? CONSUME : FORWARD;
  case WSB_OP_PING:
    if (!failing_over)
      return FORWARD; /* pings travel end to end */
    /* No backend to answer while the session moves: wsbal answers for it. Its pongs obey
       the high-water mark like relayed frames: a client that pings without reading is no
       longer read once they fill its queue (FAILOVER's on_writable reads it again). */
    wsb__leg_send_frame(l, WSB_OP_PONG, copy, f->payload_len);
    if (l->queued > LEG_QUEUE_HIGH_WATER)
      wsb__leg_pause(l);
    return CONSUME;
  case WSB_OP_CLOSE: {
    uint16_t code;
    const uint8_t *reason;
    size_t reason_len;
    int rc = wsb_close_parse(copy, f->payload_len, &code, &reason, &reason_len);
    if (rc != 0)
      return rc;
    if (!l->is_client && s->state == S_RELAY && wsb__session_failover_code(s, code)) {
      /* Its close is the backend's last word: it answers the oldest client message, as any
         message from it would. Then the session moves; the client must not notice. */
      wsb__replay_answered(s);
      *move_code = code;
      return MOVE;
    }
    l->close_received = true;
    wsb__session_note_close(s, code, reason, reason_len);
    if (s->closed_by == BY_NONE)
      s->closed_by = l->is_client ? BY_CLIENT : BY_BACKEND;
    if (failing_over) {
      /* The client leaves while its session moves: answer its close ourselves. */
      wsb__leg_send_frame(l, WSB_OP_CLOSE, copy, f->payload_len);
      l->close_sent = true;
      return CONSUME;
    }
    return FORWARD;
  }
  default:
    return FORWARD;
  }
}

/* After a close frame has gone through: either wait for the answer or end. */
static void after_close(struct wsb_leg *l) {
  struct wsb_session *s = l->s;
  if (s->state == S_FAILOVER) {
    wsb__session_finish(s); /* its close was answered by wsbal; the move is abandoned */
    return;
  }
  l->peer->close_sent = true;
  if (l->peer->close_received) {
    wsb__session_finish(s);
    return;
  }
  if (s->state == S_RELAY) {
    wsb__session_set_state(s, S_CLOSING);
    wsb__session_timer_start(s, 5000);
  }
}

void wsb__relay_hold_free(struct wsb_leg *l) {
  wsb_shm_sub(&l->s->w->stats->hold_bytes, l->hold.len);
  wsb_buf_free(&l->hold);
}

/*
 * Writes a whole backend message (frames back to back) to a client that negotiated compression,
 * compressed unless it is too small. Returns 1 when it was not written: the caller passes it on
 * as it is. Written at once, so the batch never points at the compressed copy.
 */
static int send_compressed(struct wsb_leg *l, struct batch *b, const uint8_t *p, size_t len) {
  struct wsb_buf z = {0};
  int rc = wsb__compress_message(l->s, p, len, &z);
  if (rc == 0)
    rc = flush(l->peer, b);
  if (rc == 0) {
    uv_buf_t out = wsb_write_buf(wsb_buf_data(&z), z.len);
    rc = wsb__leg_write(l->peer, &out, 1);
  }
  wsb_buf_free(&z);
  return rc;
}

/* Passes a backend's held fragments on: their message is whole, or they cannot wait longer. */
static int release_hold(struct wsb_leg *l, struct batch *b, bool whole) {
  if (l->hold.len == 0)
    return 0;
  const uint8_t *p = wsb_buf_data(&l->hold);
  int rc = whole && l->s->pmd.on ? send_compressed(l, b, p, l->hold.len) : 1;
  if (rc == 1) {
    rc = flush(l->peer, b);
    uv_buf_t held = wsb_write_buf(p, l->hold.len);
    if (rc == 0)
      rc = wsb__leg_write(l->peer, &held, 1);
  }
  wsb__relay_hold_free(l);
  return rc;
}

/*
 * One data frame (or, streaming, the part of it in this read) on its way.
 * Client frames are forwarded and kept until answered; during a failover they
 * are only kept. Backend fragments are held until their message ends, so a
 * backend that dies mid-message never leaves half a message at the client.
 */
static int pass_data(struct wsb_leg *l, struct batch *b, const uint8_t *p, size_t take,
                     bool whole_frame, bool fin) {
  struct wsb_session *s = l->s;
  if (l->is_client) {
    if (s->state == S_FAILOVER)
      return wsb__replay_hold(s, p, take);
    int rc = add(l->peer, b, p, take);
    if (whole_frame)
      wsb__replay_keep(s, p, take, fin);
    else
      l->partial_out = true;
    return rc;
  }
  uint64_t bound = wsb__session_pool_settings(s)->failover_buffer;
  if (whole_frame && (!fin || l->hold.len > 0) && !l->partial_out && l->hold.len + take <= bound) {
    if (wsb_buf_append(&l->hold, p, take) != 0)
      return UV_ENOMEM;
    wsb_shm_add(&s->w->stats->hold_bytes, take);
    return fin ? release_hold(l, b, true) : 0;
  }
  /* A message in one frame may be compressed; one that streamed or outgrew the hold may not. */
  bool single = whole_frame && fin && l->hold.len == 0 && !l->partial_out;
  int rc = release_hold(l, b, false);
  if (rc == 0)
    rc = single && s->pmd.on ? send_compressed(l, b, p, take) : 1;
  if (rc == 1)
    rc = add(l->peer, b, p, take);
  if (!(whole_frame && fin))
    l->partial_out = true;
  return rc;
}

/* A message from the backend reached the client: the client message it answers is done. */
static void message_delivered(struct wsb_leg *l) {
  struct wsb_session *s = l->s;
  l->partial_out = false;
  if (l->is_client)
    return;
  wsb__replay_answered(s);
  if (!s->backend_proven && wsb__slot_valid(s->backend_slot)) {
    s->backend_proven = true;
    wsb_breaker_success(s->w, (uint32_t)s->backend_slot);
  }
}

/* Forwards every complete frame of buf; returns how many bytes it used (the rest waits). */
static size_t forward_frames(struct wsb_leg *l, const uint8_t *buf, size_t n) {
  struct wsb_session *s = l->s;
  struct wsb_shm_worker *stats = s->w->stats;
  enum wsb_direction dir = direction_from(l);
  struct wsb_leg *to = l->peer;
  uint64_t max_message = l->is_client ? s->w->table->settings.max_message_bytes : 0;
  struct batch b = {.n = 0};
  size_t pos = 0;
  int rc = 0, bad = 0;
  bool closed = false, move = false;
  uint16_t move_code = 0;
  /* Counted locally and published once per read: one atomic add per read, not per frame. */
  uint64_t messages = 0, bytes = 0;

  while (pos < n && rc == 0) {
    if (l->stream_left > 0) {
      size_t take = n - pos < l->stream_left ? n - pos : (size_t)l->stream_left;
      l->stream_left -= take;
      bytes += take;
      rc = pass_data(l, &b, buf + pos, take, false, l->stream_fin);
      pos += take;
      if (l->stream_left == 0 && l->stream_fin)
        message_delivered(l);
      continue;
    }
    struct wsb_frame f;
    /* A frame that fits the read buffer waits until whole; a larger one streams. */
    ssize_t hl = wsb_frame_next(&l->msg, &f, buf + pos, n - pos, l->is_client, max_message,
                                WSB_READ_BUFFER_SIZE);
    if (hl == WSB_PARTIAL)
      break;
    if (hl < 0) {
      bad = (int)hl;
      break;
    }
    uint64_t total = (uint64_t)hl + f.payload_len;
    bool whole = total <= n - pos;
    if (wsb_opcode_is_control(f.opcode)) {
      int action = on_control(l, &f, buf + pos + hl, &move_code);
      if (action < 0) {
        bad = action;
        break;
      }
      if (action == MOVE) {
        move = true;
        break;
      }
      if (action == FORWARD)
        rc = add(to, &b, buf + pos, total);
      pos += total;
      if (f.opcode == WSB_OP_CLOSE) {
        closed = true; /* nothing a peer sends after its close is relayed */
        break;
      }
      continue;
    }
    s->last_data_ms = l->last_rx_ms;
    messages += f.fin;
    if (l->is_client && l->msg.compressed) {
      /* Taken whole (wsb_frame_next): inflated, it goes on as a plain frame. */
      struct wsb_buf plain = {0};
      int err = wsb__compress_inflate_frame(l, &f, buf + pos + hl, &plain);
      if (err == UV_ENOMEM) {
        rc = err;
      } else if (err != 0) {
        bad = err;
      } else {
        rc = flush(to, &b); /* nothing in the batch may outlive plain */
        if (rc == 0)
          rc = pass_data(l, &b, wsb_buf_data(&plain), plain.len, true, f.fin);
        if (rc == 0)
          rc = flush(to, &b);
      }
      wsb_buf_free(&plain);
      if (bad != 0)
        break;
      bytes += total;
      pos += total;
      if (rc == 0 && f.fin)
        message_delivered(l);
      continue;
    }
    size_t take = whole ? (size_t)total : n - pos;
    l->stream_left = total - take;
    l->stream_fin = f.fin;
    bytes += take;
    rc = pass_data(l, &b, buf + pos, take, whole, f.fin);
    pos += take;
    if (whole && f.fin)
      message_delivered(l);
  }
  if (rc == 0 && b.n > 0)
    rc = flush(to, &b);
  wsb_shm_add(&stats->messages[dir], messages);
  wsb_shm_add(&stats->bytes[dir], bytes);
  if (wsb__slot_valid(s->backend_slot)) { /* the backend these went to or came from */
    wsb_shm_add(&stats->backend_messages[s->backend_slot][dir], messages);
    wsb_shm_add(&stats->backend_bytes[s->backend_slot][dir], bytes);
  }
  s->messages[dir] += messages;
  s->bytes[dir] += bytes;
  if (rc != 0) {
    /* A write to the backend failed: that backend is lost, not the session. */
    if (to == &s->backend && s->state == S_RELAY)
      wsb__session_backend_lost(s, WSB_FO_LOST, rc);
    else
      wsb__session_close(s, rc);
    return n;
  }
  if (bad != 0) {
    /* The frames before the bad one went through; then each side gets its close. */
    protocol_error(l, bad);
    return n;
  }
  if (move) {
    wsb__session_backend_lost(s, WSB_FO_CLOSE, move_code);
    return n;
  }
  if (closed) {
    after_close(l);
    return n;
  }
  return pos;
}

/* Makes room for size bytes of incomplete frame in l->pending, keeping what is there. */
static int reserve_pending(struct wsb_leg *l, size_t size) {
  if (size <= l->pending_cap)
    return 0;
  uint8_t *p = realloc(l->pending, size);
  if (p == NULL)
    return UV_ENOMEM;
  l->pending = p;
  l->pending_cap = (uint32_t)size;
  return 0;
}

void wsb__relay_read(struct wsb_leg *l, const uint8_t *data, size_t len) {
  struct wsb_session *s = l->s;
  assert(s->state != S_RELAY || s->hs == NULL);
  if (l->close_received)
    return; /* RFC 6455 5.5.1: nothing follows a close */
  const uint8_t *buf = data;
  size_t n = len;
  if (l->pending_len > 0) {
    /* Complete the waiting frame: its bytes must be contiguous to parse and forward. */
    size_t need = l->pending_len + len;
    if (reserve_pending(l, need) != 0) {
      wsb__session_close(s, UV_ENOMEM);
      return;
    }
    memcpy(l->pending + l->pending_len, data, len);
    l->pending_len = (uint32_t)need;
    buf = l->pending;
    n = need;
  }
  size_t used = forward_frames(l, buf, n);
  if (s->state == S_CLOSED)
    return;
  size_t rest = n - used;
  if (rest == 0) {
    /* Idle sessions hold no read buffer at all. */
    free(l->pending);
    l->pending = NULL;
    l->pending_len = l->pending_cap = 0;
    return;
  }
  if (buf == l->pending) {
    memmove(l->pending, l->pending + used, rest);
  } else {
    if (reserve_pending(l, rest) != 0) {
      wsb__session_close(s, UV_ENOMEM);
      return;
    }
    memcpy(l->pending, buf + used, rest);
  }
  l->pending_len = (uint32_t)rest;
}

/* A leg is gone: it sent EOF, its connection failed (why WSB_FO_LOST), or it did not answer
   a ping (WSB_FO_TIMEOUT). */
static void leg_gone(struct wsb_leg *l, enum wsb_failover_reason why, int status) {
  struct wsb_session *s = l->s;
  if (!l->is_client && !l->close_received && s->state == S_RELAY) {
    /* Lost without a close frame (1006): the session moves if it can. */
    wsb__session_backend_lost(s, why, status == UV_EOF ? UV_ECONNRESET : status);
    return;
  }
  if (!l->close_received) {
    /* The client left without a close frame: its backend hears 1001. */
    s->reason = status == UV_EOF ? UV_ECONNRESET : status;
    if (s->closed_by == BY_NONE)
      s->closed_by = l->is_client ? BY_CLIENT : BY_BACKEND;
    if (l->is_client)
      wsb__leg_send_close(l->peer, WSB_CLOSE_GOING_AWAY, "client gone");
    else if (l->peer->close_received)
      /* The backend went before answering the client's close: wsbal answers it with the
         client's own code, as an endpoint would, rather than leave it a 1006. */
      wsb__leg_send_close(l->peer, s->close_code, "");
  }
  if (l->is_client && s->state == S_FAILOVER) {
    wsb__session_close(s, s->reason); /* nobody left to move the session for */
    return;
  }
  wsb__leg_lose(l);
  wsb__session_finish(s);
}

void wsb__relay_eof(struct wsb_leg *l, int status) {
  leg_gone(l, WSB_FO_LOST, status);
}

static uint64_t ping_interval(const struct wsb_leg *l) {
  return l->is_client ? l->s->w->table->settings.listen_ping_interval_ms
                      : wsb__session_pool_settings(l->s)->upstream_ping_interval_ms;
}

/* When the timer must next look at this session: a ping to send, a pong overdue, idleness. */
void wsb__relay_arm_timer(struct wsb_session *s) {
  const struct wsb_shm_settings *cfg = &s->w->table->settings;
  uint64_t now = uv_now(&s->w->loop), next = UINT64_MAX;
  struct wsb_leg *legs[2] = {&s->client, &s->backend};
  for (int i = 0; i < 2; i++) {
    uint64_t every = ping_interval(legs[i]);
    if (every == 0)
      continue;
    uint64_t at = (legs[i]->ping_outstanding ? legs[i]->ping_sent_ms : legs[i]->last_rx_ms) + every;
    if (!legs[i]->ping_outstanding && at <= now && !wsb__leg_can_inject(legs[i]))
      at = now + PING_RETRY_MS;
    if (at < next)
      next = at;
  }
  if (cfg->idle_timeout_ms > 0 && s->last_data_ms + cfg->idle_timeout_ms < next)
    next = s->last_data_ms + cfg->idle_timeout_ms;
  if (next == UINT64_MAX)
    uv_timer_stop(&s->timer);
  else
    wsb__session_timer_start(s, next > now ? next - now : 0);
}

void wsb__relay_timer(struct wsb_session *s) {
  const struct wsb_shm_settings *cfg = &s->w->table->settings;
  uint64_t now = uv_now(&s->w->loop);
  struct wsb_leg *legs[2] = {&s->client, &s->backend};
  for (int i = 0; i < 2; i++) {
    struct wsb_leg *l = legs[i];
    uint64_t every = ping_interval(l);
    if (every == 0)
      continue;
    if (l->ping_outstanding && l->last_rx_ms > l->ping_sent_ms)
      l->ping_outstanding = false; /* it spoke since: alive, whatever it said */
    if (l->ping_outstanding && now >= l->ping_sent_ms + every) {
      wsb_log_info("session %016llx: %s did not answer a ping in %llu ms",
                   (unsigned long long)s->id, l->is_client ? "client" : "backend",
                   (unsigned long long)every);
      leg_gone(l, WSB_FO_TIMEOUT, UV_ETIMEDOUT);
      return;
    }
    if (!l->ping_outstanding && now >= l->last_rx_ms + every && wsb__leg_can_inject(l)) {
      l->ping_outstanding = true;
      l->ping_sent_ms = now;
      wsb__leg_send_frame(l, WSB_OP_PING, (const uint8_t *)KEEPALIVE_PAYLOAD, KEEPALIVE_LEN);
    }
  }
  if (cfg->idle_timeout_ms > 0 && now >= s->last_data_ms + cfg->idle_timeout_ms) {
    s->closed_by = BY_WSBAL;
    s->reason = UV_ETIMEDOUT;
    wsb__leg_send_close(&s->client, WSB_CLOSE_GOING_AWAY, "idle timeout");
    wsb__leg_send_close(&s->backend, WSB_CLOSE_GOING_AWAY, "idle timeout");
    wsb__session_finish(s);
    return;
  }
  if (s->state == S_RELAY)
    wsb__relay_arm_timer(s);
}

void wsb__relay_start(struct wsb_session *s, const uint8_t *backend_early,
                      size_t backend_early_len) {
  wsb__session_set_state(s, S_RELAY);
  wsb_uring_adopt(&s->client); /* where it can, relaying goes through io_uring */
  wsb_uring_adopt(&s->backend);
  uint64_t now = uv_now(&s->w->loop);
  s->client.last_rx_ms = s->backend.last_rx_ms = s->last_data_ms = now;
  /* Frames the backend sent right behind its 101 follow the client's 101. */
  if (backend_early_len > 0)
    wsb__relay_read(&s->backend, backend_early, backend_early_len);
  if (s->state == S_CLOSED)
    return;
  /* Frames the client sent before its 101 (it should not have) now go on. */
  if (s->client.pending_len > 0) {
    uint8_t *early = s->client.pending;
    size_t len = s->client.pending_len;
    s->client.pending = NULL;
    s->client.pending_len = s->client.pending_cap = 0;
    wsb__relay_read(&s->client, early, len);
    free(early);
    if (s->state == S_CLOSED)
      return;
  }
  /* The client was read all along, unless it sent frames early and was paused for it. */
  wsb__leg_resume(&s->client);
  if (s->state == S_RELAY)
    wsb__relay_arm_timer(s);
}
