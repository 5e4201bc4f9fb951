/* Commands from the master (control socket): drain or close a backend's sessions, kill or move one. */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

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

static void describe(struct wsb_worker *w, const struct wsb_session *s,
                     struct wsb_session_info *e) {
  memset(e, 0, sizeof(*e));
  e->id = s->id;
  e->started_unix_ms = w->unix_offset_ms + s->started_ms;
  e->messages_in = s->messages[WSB_DIR_TO_BACKEND];
  e->messages_out = s->messages[WSB_DIR_TO_CLIENT];
  e->bytes_in = s->bytes[WSB_DIR_TO_BACKEND];
  e->bytes_out = s->bytes[WSB_DIR_TO_CLIENT];
  e->failovers = s->failovers;
  e->backend_slot = s->state == S_FAILOVER ? -1 : s->backend_slot;
  e->worker = (uint16_t)w->slot;
  if (s->client_family != 0)
    inet_ntop(s->client_family, s->client_addr, e->client, sizeof(e->client));
  size_t n = s->path_len < sizeof(e->path) - 1 ? s->path_len : sizeof(e->path) - 1;
  memcpy(e->path, s->head + s->path_off, n);
}

static void send_chunk(struct wsb_worker *w, struct wsb_sessions_chunk *c, bool last) {
  uv_os_fd_t fd;
  c->type = WSB_CTL_SESSIONS;
  c->last = last;
  c->len = (uint32_t)(offsetof(struct wsb_sessions_chunk, entries) +
                      c->count * sizeof(struct wsb_session_info));
  if (uv_fileno((uv_handle_t *)&w->control, &fd) != 0 ||
      send(fd, c, c->len, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)c->len)
    wsb_log_warn("session list: answer not sent: %s", strerror(errno));
  c->count = 0;
}

/* Sessions that have a 101 (a head kept), in chunks the master puts together. */
static void list_sessions(struct wsb_worker *w, const struct wsb_control_msg *m) {
  struct wsb_sessions_chunk *chunk = malloc(sizeof(*chunk)); /* 50 KiB: not for the stack */
  if (chunk == NULL)
    return; /* the master's request times out and says the answer is partial */
  chunk->request = m->request;
  chunk->count = 0;
  for (struct wsb_session *s = w->sessions; s != NULL; s = s->next) {
    if (s->head == NULL || s->state == S_CLOSED)
      continue;
    if ((m->one && s->id != m->session) || (m->slot >= 0 && s->backend_slot != m->slot))
      continue;
    describe(w, s, &chunk->entries[chunk->count++]);
    if (chunk->count == WSB_SESSIONS_PER_CHUNK)
      send_chunk(w, chunk, false);
  }
  send_chunk(w, chunk, true);
  free(chunk);
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
  case WSB_CTL_LIST_SESSIONS:
    list_sessions(w, m);
    break;
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
