/* Failover: a lost backend is replaced under a live session without the client noticing. */
#include "failover.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "leg.h"
#include "log.h"
#include "relay.h"
#include "replay.h"
#include "session.h"
#include "upgrade.h"

/* A session can move only between whole frames and messages on both legs. */
static const char *unmovable_because(const struct wsb_session *s) {
  if (s->client.stream_left > 0 || s->client.partial_out)
    return "a client message too large to repeat was partly sent";
  if (s->backend.stream_left > 0 || s->backend.partial_out)
    return "a backend message too large to hold was partly delivered";
  return NULL;
}

static void give_up(struct wsb_session *s, uint16_t code, const char *why) {
  wsb_log_warn("session %016llx: cannot fail over (%s): closing the client with %u",
               (unsigned long long)s->id, why, (unsigned)code);
  if (code == WSB_CLOSE_TRY_AGAIN)
    wsb_shm_add(&s->w->stats->failover_failures, 1);
  s->closed_by = BY_WSBAL;
  if (s->reason == 0)
    s->reason = WSB_ENOBACKEND;
  if (s->backend.open)
    wsb__leg_lose(&s->backend);
  wsb__leg_send_close(&s->client, code, why);
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

/* No backend is left to move to: the client is told to come back later. */
void wsb__failover_no_backend(struct wsb_session *s) {
  give_up(s, WSB_CLOSE_TRY_AGAIN, "no backend left");
}

/* The one log line of a move, naming why and the detail that goes with it. */
static void log_move(const struct wsb_session *s, const char *name, enum wsb_failover_reason why,
                     int detail) {
  unsigned long long id = (unsigned long long)s->id;
  switch (why) {
  case WSB_FO_CLOSE:
    wsb_log_info("session %016llx: backend %s closed with %d: failing over", id, name, detail);
    break;
  case WSB_FO_LOST:
    wsb_log_info("session %016llx: backend %s lost (%s): failing over", id, name,
                 wsb_strerror(detail));
    break;
  case WSB_FO_TIMEOUT:
    wsb_log_info("session %016llx: backend %s lost (no pong): failing over", id, name);
    break;
  case WSB_FO_ADMIN:
  case WSB_FAILOVER_REASONS:
    wsb_log_info("session %016llx: backend %s left through the admin API: failing over", id, name);
    break;
  }
}

#define EARLY_LOSS_MS 1000 /* a backend lost this soon after its 101, silent so far, failed */

void wsb__failover_begin(struct wsb_session *s, enum wsb_failover_reason why, int detail) {
  assert(why < WSB_FAILOVER_REASONS);
  /* The one way into a failover, and only from RELAY, which never has a handshake alive
     (upgrade.c frees it before relaying a byte): a move cannot start inside another one. */
  if (s->state != S_RELAY || s->hs != NULL)
    return;
  /* What the session records as its end if it does not move: the connection's error, or the
     admin's request (a close code in failover_codes always moves, failover being on). */
  int reason = why == WSB_FO_ADMIN ? WSB_EADMIN : why == WSB_FO_CLOSE ? 0 : detail;
  /* 1006 in failover_codes stands for a connection lost without a close frame. */
  if ((why == WSB_FO_LOST || why == WSB_FO_TIMEOUT) &&
      !wsb__session_failover_code(s, WSB_CLOSE_ABNORMAL)) {
    end_with_backend(s, reason);
    return;
  }
  const struct wsb_shm_settings *cfg = wsb__session_pool_settings(s);
  bool held = wsb__slot_valid(s->backend_slot);
  assert(held); /* RELAY holds its backend's slot */
  const char *name = held ? s->w->table->backends[s->backend_slot].name : "?";
  /* Lost soon after its 101, before it said or heard anything: the backend's own failure. Once
     the client has spoken, the loss may be the backend's answer to it (a message it refuses by
     closing with 1011 or dropping the connection), which must not count against it. */
  if (held && !s->backend_proven && !s->backend_heard && why != WSB_FO_ADMIN &&
      uv_now(&s->w->loop) - s->backend_since_ms < EARLY_LOSS_MS)
    wsb_breaker_failure(s->w, (uint32_t)s->backend_slot);
  if (!cfg->failover) {
    assert(why != WSB_FO_CLOSE);
    end_with_backend(s, reason);
    return;
  }
  const char *stuck = unmovable_because(s);
  if (stuck != NULL) {
    give_up(s, WSB_CLOSE_INTERNAL, stuck);
    return;
  }
  if (s->failovers >= cfg->max_failovers) {
    give_up(s, WSB_CLOSE_TRY_AGAIN, "max_failovers reached");
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
  log_move(s, name, why, detail);
  /* A message already resent once whose new backend died too before answering it may be
     what kills them: it is not sent a third time. */
  if (s->replay_resent > 0 && wsb__replay_release_oldest(s))
    wsb_log_warn("session %016llx: dropped a message that preceded two backend losses",
                 (unsigned long long)s->id);
  /* What the lost backend was sent (unless it was lost before its window went out). */
  if (!s->replay_unsent)
    s->replay_seen = s->replay.len;
  s->replay_resent = 0;
  s->replay_unsent = true;
  s->failovers++;
  s->failover_started_ms = uv_now(&s->w->loop);
  if (held)
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
  if (held)
    wsb_slot_set_add(&hs->tried, (uint32_t)s->backend_slot);
  /* The count moves exactly once: off the lost backend now, onto the next when chosen. */
  wsb__session_release_backend(s);
  wsb__session_set_state(s, S_FAILOVER);
  wsb__replay_account(s); /* a moving session's window is not given up: it is about to be resent */
  uv_timer_stop(&s->timer);
  /* Frames the dead backend would never take are dropped with its connection. */
  if (s->client.paused && wsb__replay_client_may_read(s))
    wsb__leg_resume(&s->client);
  if (s->backend.open)
    wsb__upgrade_retry_after_close(s);
  else
    wsb__upgrade_connect_next(s);
}

void wsb__failover_done(struct wsb_session *s, const uint8_t *backend_early, size_t len) {
  assert(s->state == S_FAILOVER && s->hs == NULL && wsb__slot_valid(s->backend_slot));
  uint64_t took = uv_now(&s->w->loop) - s->failover_started_ms;
  static const uint64_t bounds[] = WSB_FAILOVER_BUCKET_US;
  struct wsb_shm_worker *stats = s->w->stats;
  wsb_shm_observe(stats->failover_buckets, bounds, WSB_FAILOVER_BUCKETS, &stats->failover_us,
                  &stats->failover_count, took * 1000);
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
    wsb__relay_read(&s->backend, backend_early, len);
  if (s->state != S_RELAY)
    return; /* closed, closing, or moving on */
  /* Then what the old backend never answered and what came meanwhile, in order. */
  s->replay_unsent = false;
  if (s->replay.len > 0) {
    uv_buf_t b = wsb_write_buf(wsb_buf_data(&s->replay), s->replay.len);
    s->backend_heard = true;
    int rc = wsb__leg_write(&s->backend, &b, 1);
    wsb__replay_settle(s);
    s->replay_resent = s->replay_seen; /* not the messages that came during the move */
    if (rc != 0) {
      wsb__failover_begin(s, WSB_FO_LOST, rc);
      return;
    }
  }
  wsb__replay_account(s);
  wsb__replay_trim(s->w);
  if (s->client.paused)
    wsb__leg_resume(&s->client);
  wsb__relay_arm_timer(s);
}

/* A moving session's client, paused for the pongs wsbal queued to it, may go on. */
void wsb__failover_client_writable(struct wsb_leg *l) {
  if (l->is_client && l->paused && wsb__replay_client_may_read(l->s))
    wsb__leg_resume(l);
}
