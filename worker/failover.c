/* Failover: a lost backend is replaced under a live session without the client noticing. */
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "session.h"

bool wsb__failover_code(const struct wsb_session *s, uint16_t code) {
  const struct wsb_shm_settings *cfg = &s->w->table->settings;
  if (!cfg->failover)
    return false;
  return wsb_close_codes_has(&cfg->failover_codes, code);
}

/*
 * The replay window: client data frames the backend has not answered yet.
 * Each whole message the backend sends answers the oldest one (request and
 * response, as echo, OCPP and most RPC-style protocols pair them), so what is
 * left when a backend dies is what it may never have processed; it is sent
 * to the new backend first. Bounded by failover_buffer: past it the oldest
 * answered-looking messages are dropped from the window (they could be lost
 * in a failover, never duplicated). A window only ever holds whole messages
 * and, at its end, whole frames of the message the client is sending.
 *
 * Bounded per worker too, by failover_buffer_total: a backend that never
 * answers (telemetry) would otherwise leave every session holding its full
 * window for life. Past the total the oldest windows (non-empty the longest:
 * the sessions whose backend answers least) are given up whole, which frees
 * their memory and leaves their messages unprotected, as above.
 */

static void window_unlink(struct wsb_session *s) {
  struct wsb_worker *w = s->w;
  if (s->window_prev != NULL)
    s->window_prev->window_next = s->window_next;
  else
    w->windows_oldest = s->window_next;
  if (s->window_next != NULL)
    s->window_next->window_prev = s->window_prev;
  else
    w->windows_newest = s->window_prev;
  s->window_prev = s->window_next = NULL;
  s->window_listed = false;
}

static void window_append(struct wsb_session *s) {
  struct wsb_worker *w = s->w;
  s->window_prev = w->windows_newest;
  s->window_next = NULL;
  if (w->windows_newest != NULL)
    w->windows_newest->window_next = s;
  else
    w->windows_oldest = s;
  w->windows_newest = s;
  s->window_listed = true;
}

/* After every change of s->replay: the worker's total and the segment's gauge follow its
   allocation, and it is listed while it holds one, unless the session is moving. */
static void replay_account(struct wsb_session *s) {
  struct wsb_worker *w = s->w;
  uint32_t now = s->replay.cap;
  if (now >= s->replay_counted) {
    w->replay_bytes += now - s->replay_counted;
    wsb_shm_add(&w->stats->failover_buffer_bytes, now - s->replay_counted);
  } else {
    w->replay_bytes -= s->replay_counted - now;
    wsb_shm_sub(&w->stats->failover_buffer_bytes, s->replay_counted - now);
  }
  s->replay_counted = now;
  bool listed = now > 0 && s->state != S_FAILOVER;
  if (listed && !s->window_listed)
    window_append(s);
  else if (!listed && s->window_listed)
    window_unlink(s);
}

/* Drops n bytes from the window's end; the marks into it stay within it. */
static void replay_drop_tail(struct wsb_session *s, size_t n) {
  wsb_buf_drop_tail(&s->replay, n);
  if (s->replay_resent > s->replay.len)
    s->replay_resent = s->replay.len;
  if (s->replay_seen > s->replay.len)
    s->replay_seen = s->replay.len;
}

/* The frames of a message not yet whole leave the window's end: resent without the rest, they
   would corrupt the new backend's stream. The session cannot move until that message ends. */
static void replay_cut_open(struct wsb_session *s) {
  replay_drop_tail(s, s->replay_open);
  s->replay_open = 0;
  s->client.partial_out = true;
}

static void window_give_up(struct wsb_session *s) {
  wsb_log_debug("session %016llx: failover_buffer_total reached: its replay window of %u bytes "
                "is given up",
                (unsigned long long)s->id, s->replay.len);
  if (s->replay_open > 0)
    s->client.partial_out = true; /* the start of the open message is gone with the window */
  s->replay_open = s->replay_resent = s->replay_seen = 0;
  wsb_buf_free(&s->replay);
  replay_account(s);
}

/* Keeps the worker's windows within failover_buffer_total, giving the oldest up first. */
static void windows_trim(struct wsb_worker *w) {
  uint64_t total = w->table->settings.failover_buffer_total;
  while (w->replay_bytes > total && w->windows_oldest != NULL)
    window_give_up(w->windows_oldest);
}

static bool release_oldest_message(struct wsb_session *s) {
  const uint8_t *p = wsb_buf_data(&s->replay);
  size_t len = s->replay.len, off = 0;
  while (off < len) {
    struct wsb_frame f;
    ssize_t hl = wsb_frame_parse(&f, p + off, len - off);
    if (hl < 0 || f.payload_len > len - off - (size_t)hl)
      return false; /* a frame still arriving during a failover */
    off += (size_t)hl + f.payload_len;
    if (f.fin) {
      wsb_buf_consume(&s->replay, off);
      s->replay_resent = s->replay_resent > off ? s->replay_resent - (uint32_t)off : 0;
      s->replay_seen = s->replay_seen > off ? s->replay_seen - (uint32_t)off : 0;
      replay_account(s);
      return true;
    }
  }
  return false; /* the message at the front is still open */
}

void wsb__replay_answered(struct wsb_session *s) {
  /* A backend that has not been sent the window yet cannot have answered any of it. */
  if (s->replay.len > s->replay_open && !s->replay_unsent)
    release_oldest_message(s);
}

void wsb__replay_keep(struct wsb_session *s, const uint8_t *frame, size_t len, bool fin) {
  const struct wsb_shm_settings *cfg = &s->w->table->settings;
  if (!cfg->failover)
    return;
  /* A message one frame of which could not be kept stays out of the window until it ends. */
  if (s->client.partial_out)
    return;
  while (s->replay.len + len > cfg->failover_buffer && s->replay.len > s->replay_open &&
         release_oldest_message(s))
    ;
  if (s->replay.len + len > cfg->failover_buffer || wsb_buf_append(&s->replay, frame, len) != 0) {
    /* Not kept: a whole message is merely unprotected, a fragment pins the session. */
    if (s->replay_open > 0)
      replay_cut_open(s);
    if (!fin)
      s->client.partial_out = true;
  } else {
    s->replay_open = fin ? 0 : s->replay_open + (uint32_t)len;
  }
  replay_account(s);
  windows_trim(s->w);
}

bool wsb__failover_client_may_read(const struct wsb_session *s) {
  const struct wsb_shm_settings *cfg = &s->w->table->settings;
  return s->replay.len <= cfg->failover_buffer &&
         s->w->replay_bytes <= cfg->failover_buffer_total &&
         s->client.queued <= LEG_QUEUE_HIGH_WATER;
}

int wsb__replay_hold(struct wsb_session *s, const uint8_t *data, size_t len) {
  if (wsb_buf_append(&s->replay, data, len) != 0)
    return UV_ENOMEM;
  replay_account(s);
  windows_trim(s->w); /* older windows make room; this one, not listed while moving, stays */
  if (!wsb__failover_client_may_read(s))
    wsb__leg_pause(
        &s->client); /* never dropped: the client waits until the new backend takes them */
  return 0;
}

void wsb__replay_drop(struct wsb_session *s) {
  wsb_buf_free(&s->replay);
  s->replay_open = s->replay_resent = s->replay_seen = 0;
  replay_account(s);
}

/* Once the window is resent to a new backend, what comes next from the client continues it.
   Frames that arrived meanwhile may end inside a message, even inside a frame still streaming:
   whole frames of an open message stay as its kept part, a cut frame cannot be repeated. */
static void replay_settle(struct wsb_session *s) {
  const uint8_t *p = wsb_buf_data(&s->replay);
  size_t len = s->replay.len, off = 0, whole_end = 0;
  while (off < len) {
    struct wsb_frame f;
    ssize_t hl = wsb_frame_parse(&f, p + off, len - off);
    if (hl < 0 || f.payload_len > len - off - (size_t)hl)
      break;
    off += (size_t)hl + f.payload_len;
    if (f.fin)
      whole_end = off;
  }
  s->replay_open = (uint32_t)(off - whole_end);
  if (off < len) {
    replay_drop_tail(s, len - whole_end);
    s->replay_open = 0;
    s->client.partial_out = true;
  }
}

/* A session can move only between whole frames and messages on both legs. */
static const char *unmovable_because(const struct wsb_session *s) {
  if (s->client.stream_left > 0 || s->client.partial_out)
    return "a client message too large to repeat was partly sent";
  if (s->backend.stream_left > 0 || s->backend.partial_out)
    return "a backend message too large to hold was partly delivered";
  return NULL;
}

void wsb__failover_give_up(struct wsb_session *s, uint16_t code, const char *why) {
  wsb_log_warn("session %016llx: cannot fail over (%s): closing the client with %u",
               (unsigned long long)s->id, why, (unsigned)code);
  if (code == WSB_CLOSE_TRY_AGAIN)
    wsb_shm_add(&s->w->stats->failover_failures, 1);
  s->closed_by = BY_WSBAL;
  if (s->reason == 0)
    s->reason = WSB_ENOBACKEND;
  if (s->backend.open)
    wsb__leg_lose(&s->backend);
  wsb__relay_send_close(&s->client, code, why);
  wsb__session_finish(s);
}

/* Without failover, as a plain proxy would: the client's connection ends once what came is
   delivered, and the client sees 1006. */
static void end_with_backend(struct wsb_session *s, int reason) {
  s->reason = reason;
  if (s->closed_by == BY_NONE)
    s->closed_by = BY_BACKEND;
  wsb__leg_lose(&s->backend);
  wsb__session_finish(s);
}

void wsb__failover_lost(struct wsb_session *s, int reason) {
  /* 1006 in failover_codes stands for a connection lost without a close frame. */
  if (wsb__failover_code(s, WSB_CLOSE_ABNORMAL))
    wsb__failover_begin(s, reason);
  else
    end_with_backend(s, reason);
}

#define EARLY_LOSS_MS 1000 /* a backend lost this soon after its 101, silent so far, failed */

void wsb__failover_begin(struct wsb_session *s, int reason) {
  /* The one way into a failover, and only from RELAY, which never has a handshake alive
     (upgrade.c frees it before relaying a byte): a move cannot start inside another one. */
  if (s->state != S_RELAY || s->hs != NULL)
    return;
  const struct wsb_shm_settings *cfg = &s->w->table->settings;
  const char *name = s->backend_slot >= 0 ? s->w->table->backends[s->backend_slot].name : "?";
  /* Lost soon after its 101, before it said or heard anything: the backend's own failure. Once
     the client has spoken, the loss may be the backend's answer to it (a message it refuses by
     closing with 1011 or dropping the connection), which must not count against it. */
  if (s->backend_slot >= 0 && !s->backend_proven && !s->backend_heard && reason != WSB_EADMIN &&
      uv_now(&s->w->loop) - s->backend_since_ms < EARLY_LOSS_MS)
    wsb_breaker_failure(s->w, (uint32_t)s->backend_slot);
  if (!cfg->failover) {
    end_with_backend(s, reason);
    return;
  }
  const char *stuck = unmovable_because(s);
  if (stuck != NULL) {
    wsb__failover_give_up(s, WSB_CLOSE_INTERNAL, stuck);
    return;
  }
  if (s->failovers >= cfg->max_failovers) {
    wsb__failover_give_up(s, WSB_CLOSE_TRY_AGAIN, "max_failovers reached");
    return;
  }
  struct wsb_handshake *hs = calloc(1, sizeof(*hs));
  char *head = malloc(s->head_len);
  if (hs == NULL || head == NULL) {
    free(hs);
    free(head);
    wsb__session_close(s, UV_ENOMEM);
    return;
  }
  wsb_log_info("session %016llx: backend %s lost (%s): failing over", (unsigned long long)s->id,
               name, wsb_strerror(reason));
  /* A message already resent once whose new backend died too before answering it may be
     what kills them: it is not sent a third time. */
  if (s->replay_resent > 0 && release_oldest_message(s))
    wsb_log_warn("session %016llx: dropped a message that preceded two backend losses",
                 (unsigned long long)s->id);
  /* What the lost backend was sent (unless it was lost before its window went out). */
  if (!s->replay_unsent)
    s->replay_seen = s->replay.len;
  s->replay_resent = 0;
  s->replay_unsent = true;
  s->failovers++;
  s->failover_reason = reason;
  s->failover_started_ms = uv_now(&s->w->loop);
  enum wsb_failover_reason why = reason == WSB_ECLOSE_CODE ? WSB_FO_CLOSE
                                 : reason == UV_ETIMEDOUT  ? WSB_FO_TIMEOUT
                                 : reason == WSB_EADMIN    ? WSB_FO_ADMIN
                                                           : WSB_FO_LOST;
  wsb_shm_add(&s->w->stats->failovers[s->backend_slot][why], 1);

  /* The original request, parsed again, is what the next backend is asked for. */
  memcpy(head, s->head, s->head_len);
  hs->req_buf = head;
  hs->req_len = hs->req_cap = hs->head_len = s->head_len;
  wsb_http_head_init(&hs->req, false, s->head_len);
  if (wsb_http_feed(&hs->req, head, s->head_len) != (ssize_t)s->head_len ||
      wsb_handshake_check_request(&hs->req, &hs->upgrade) != 0) {
    free(head);
    free(hs);
    wsb__session_close(s, WSB_EHTTP); /* cannot happen: it was valid when the session began */
    return;
  }
  s->hs = hs;
  hs->prefer = s->prefer_slot;
  s->prefer_slot = -1;
  wsb__upgrade_find_client_ip(s);
  wsb_slot_set_add(&hs->tried, (uint32_t)s->backend_slot);
  /* The count moves exactly once: off the lost backend now, onto the next when chosen. */
  wsb__session_release_backend(s);
  wsb__session_set_state(s, S_FAILOVER);
  replay_account(s); /* a moving session's window is not given up: it is about to be resent */
  uv_timer_stop(&s->timer);
  /* Frames the dead backend would never take are dropped with its connection. */
  if (s->client.paused && wsb__failover_client_may_read(s))
    wsb__leg_resume(&s->client);
  if (s->backend.open)
    wsb__upgrade_retry_after_close(s);
  else
    wsb__upgrade_connect_next(s);
}

void wsb__failover_done(struct wsb_session *s, const uint8_t *backend_early, size_t len) {
  uint64_t took = uv_now(&s->w->loop) - s->failover_started_ms;
  static const uint64_t bounds[] = WSB_FAILOVER_BUCKET_MS;
  struct wsb_shm_worker *stats = s->w->stats;
  for (size_t i = 0; i < WSB_FAILOVER_BUCKETS; i++)
    if (i == WSB_FAILOVER_BUCKETS - 1 || took <= bounds[i])
      wsb_shm_add(&stats->failover_buckets[i], 1);
  wsb_shm_add(&stats->failover_us, took * 1000);
  wsb_shm_add(&stats->failover_count, 1);
  wsb_log_info("session %016llx: moved to %s in %llu ms, %u bytes resent",
               (unsigned long long)s->id, s->w->table->backends[s->backend_slot].name,
               (unsigned long long)took, s->replay.len);
  wsb__session_set_state(s, S_RELAY);
  wsb__session_note_backend(s);
  uint64_t now = uv_now(&s->w->loop);
  s->backend.last_rx_ms = s->last_data_ms = now;
  /* What the backend sent with its 101 it sent before hearing anything: it goes to the client
     first and answers none of the window. A close in it may move the session on at once. */
  if (len > 0)
    wsb__relay_on_read(&s->backend, backend_early, len);
  if (s->state != S_RELAY)
    return; /* closed, closing, or moving on */
  /* Then what the old backend never answered and what came meanwhile, in order. */
  s->replay_unsent = false;
  if (s->replay.len > 0) {
    uv_buf_t b = wsb_write_buf(wsb_buf_data(&s->replay), s->replay.len);
    s->backend_heard = true;
    int rc = wsb__leg_write(&s->backend, &b, 1);
    replay_settle(s);
    s->replay_resent = s->replay_seen; /* not the messages that came during the move */
    if (rc != 0) {
      wsb__failover_lost(s, rc);
      return;
    }
  }
  replay_account(s);
  windows_trim(s->w);
  if (s->client.paused)
    wsb__leg_resume(&s->client);
  wsb__relay_arm_timer(s);
}
