/* Commands from the master (control socket): drain or close a backend's sessions, kill or move one. */
#include <string.h>

#include "control.h"
#include "errors.h"
#include "log.h"
#include "session.h"

#define DRAIN_BATCH 50       /* sessions moved per tick while draining a backend */
#define DRAIN_TICK_MS 100    /* so 10,000 sessions move over ~10 s per worker, not all at once */

static struct wsb_session *find(struct wsb_worker *w, uint64_t id) {
  for (struct wsb_session *s = w->sessions; s != NULL; s = s->next)
    if (s->id == id)
      return s;
  return NULL;
}

static bool draining(const struct wsb_worker *w, int slot) {
  return (w->drain_slots[slot / 8] & (1u << (slot % 8))) != 0;
}

static void on_drain_tick(uv_timer_t *t) {
  struct wsb_worker *w = t->data;
  unsigned moved = 0, left = 0;
  struct wsb_session *next;
  for (struct wsb_session *s = w->sessions; s != NULL; s = next) {
    next = s->next;
    if (s->backend_slot < 0 || !draining(w, s->backend_slot) || s->state != S_RELAY)
      continue;
    if (moved == DRAIN_BATCH) {
      left++;
      continue;
    }
    failover_begin(s, WSB_EADMIN);
    moved++;
  }
  if (left == 0) {
    memset(w->drain_slots, 0, sizeof(w->drain_slots));
    uv_timer_stop(t);
  }
  if (moved > 0)
    wsb_log_info("drain: moved %u sessions, %u left", moved, left);
}

static void end_session(struct wsb_session *s, uint16_t code, const char *reason) {
  if (s->state != S_RELAY) {
    session_close(s, WSB_EADMIN);
    return;
  }
  s->closed_by = BY_WSBAL;
  s->reason = WSB_EADMIN;
  relay_send_close(&s->client, code, reason);
  relay_send_close(&s->backend, WSB_CLOSE_GOING_AWAY, reason);
  session_finish(s);
}

void wsb_worker_command(struct wsb_worker *w, const struct wsb_control_msg *m) {
  wsb_worker_refresh_table(w);
  switch (m->type) {
  case WSB_CTL_FAILOVER_BACKEND:
    if (m->slot < 0 || m->slot >= WSB_SHM_MAX_BACKENDS)
      return;
    w->drain_slots[m->slot / 8] |= (uint8_t)(1u << (m->slot % 8));
    if (!uv_is_active((uv_handle_t *)&w->drain_tick))
      uv_timer_start(&w->drain_tick, on_drain_tick, 0, DRAIN_TICK_MS);
    break;
  case WSB_CTL_CLOSE_BACKEND: {
    struct wsb_session *next;
    for (struct wsb_session *s = w->sessions; s != NULL; s = next) {
      next = s->next;
      if (s->backend_slot == m->slot && !s->finishing)
        end_session(s, WSB_CLOSE_GOING_AWAY, "backend removed");
    }
    break;
  }
  case WSB_CTL_KILL_SESSION: {
    struct wsb_session *s = find(w, m->session);
    if (s != NULL && !s->finishing)
      end_session(s, m->code, m->reason);
    break;
  }
  case WSB_CTL_FAILOVER_SESSION: {
    struct wsb_session *s = find(w, m->session);
    if (s != NULL && s->state == S_RELAY) {
      s->prefer_slot = m->slot;
      failover_begin(s, WSB_EADMIN);
    }
    break;
  }
  }
}
