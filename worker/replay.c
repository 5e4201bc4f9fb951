/* The replay window: client frames a backend has not answered yet, resent when the session moves.
 */
#include "replay.h"

#include <assert.h>

#include "leg.h"
#include "log.h"
#include "session.h"

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
  assert(s->window_listed);
  wsb_list_remove(&w->windows, &s->window_link);
  s->window_listed = false;
}

static void window_append(struct wsb_session *s) {
  struct wsb_worker *w = s->w;
  assert(!s->window_listed && s->window_link.prev == NULL && s->window_link.next == NULL);
  wsb_list_insert_tail(&w->windows, &s->window_link);
  s->window_listed = true;
}

/* After every change of s->replay: the worker's total and the segment's gauge follow its
   allocation, and it is listed while it holds one, unless the session is moving. */
void wsb__replay_account(struct wsb_session *s) {
  struct wsb_worker *w = s->w;
  uint32_t now = s->replay.cap;
  if (now >= s->replay_counted) {
    w->replay_bytes += now - s->replay_counted;
    wsb_shm_add(&w->stats->failover_buffer_bytes, now - s->replay_counted);
  } else {
    assert(w->replay_bytes >= s->replay_counted - now);
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
  wsb__replay_account(s);
}

/* Keeps the worker's windows within failover_buffer_total, giving the oldest up first. */
void wsb__replay_trim(struct wsb_worker *w) {
  uint64_t total = w->table->settings.failover_buffer_total;
  while (w->replay_bytes > total && !wsb_list_empty(&w->windows))
    window_give_up(WSB_LIST_FIRST(&w->windows, struct wsb_session, window_link));
}

bool wsb__replay_release_oldest(struct wsb_session *s) {
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
      wsb__replay_account(s);
      return true;
    }
  }
  return false; /* the message at the front is still open */
}

void wsb__replay_answered(struct wsb_session *s) {
  /* A backend that has not been sent the window yet cannot have answered any of it. */
  if (s->replay.len > s->replay_open && !s->replay_unsent)
    wsb__replay_release_oldest(s);
}

void wsb__replay_keep(struct wsb_session *s, const uint8_t *frame, size_t len, bool fin) {
  const struct wsb_shm_settings *cfg = wsb__session_pool_settings(s);
  if (!cfg->failover)
    return;
  /* A message one frame of which could not be kept stays out of the window until it ends. */
  if (s->client.partial_out)
    return;
  while (s->replay.len + len > cfg->failover_buffer && s->replay.len > s->replay_open &&
         wsb__replay_release_oldest(s))
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
  wsb__replay_account(s);
  wsb__replay_trim(s->w);
}

bool wsb__replay_client_may_read(const struct wsb_session *s) {
  return s->replay.len <= wsb__session_pool_settings(s)->failover_buffer &&
         s->w->replay_bytes <= s->w->table->settings.failover_buffer_total &&
         s->client.queued <= LEG_QUEUE_HIGH_WATER;
}

int wsb__replay_hold(struct wsb_session *s, const uint8_t *data, size_t len) {
  if (wsb_buf_append(&s->replay, data, len) != 0)
    return UV_ENOMEM;
  wsb__replay_account(s);
  wsb__replay_trim(s->w); /* older windows make room; this one, not listed while moving, stays */
  if (!wsb__replay_client_may_read(s))
    wsb__leg_pause(
        &s->client); /* never dropped: the client waits until the new backend takes them */
  return 0;
}

void wsb__replay_drop(struct wsb_session *s) {
  wsb_buf_free(&s->replay);
  s->replay_open = s->replay_resent = s->replay_seen = 0;
  wsb__replay_account(s);
}

/* Once the window is resent to a new backend, what comes next from the client continues it.
   Frames that arrived meanwhile may end inside a message, even inside a frame still streaming:
   whole frames of an open message stay as its kept part, a cut frame cannot be repeated. */
void wsb__replay_settle(struct wsb_session *s) {
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
