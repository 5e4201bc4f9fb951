/* Commands from the master (control socket): drain or close a backend's sessions, kill or move
   one, list a page of them. */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "handover.h"
#include "errors.h"
#include "failover.h"
#include "leg.h"
#include "log.h"
#include "route.h"
#include "session.h"

#define DRAIN_BATCH   50  /* sessions moved per tick while draining a backend */
#define DRAIN_TICK_MS 100 /* so 10,000 sessions move over ~10 s per worker, not all at once */

static struct wsb_session *find(struct wsb_worker *w, uint64_t id) {
  struct wsb_session *s;
  WSB_LIST_EACH (s, &w->sessions, link)
    if (s->id == id)
      return s;
  return NULL;
}

static void on_drain_tick(uv_timer_t *t) {
  struct wsb_worker *w = t->data;
  unsigned moved = 0, left = 0;
  struct wsb_session *s;
  WSB_LIST_EACH (s, &w->sessions, link) {
    if (s->backend_slot < 0 || !wsb_slot_set_has(&w->drain_slots, (uint32_t)s->backend_slot) ||
        s->state != S_RELAY)
      continue;
    if (moved == DRAIN_BATCH) {
      left++;
      continue;
    }
    wsb__failover_begin(s, WSB_FO_ADMIN, 0);
    moved++;
  }
  if (left == 0) {
    wsb_slot_set_clear(&w->drain_slots);
    uv_timer_stop(t);
  }
  if (moved > 0)
    wsb_log_info("drain: moved %u sessions, %u left", moved, left);
}

static void end_session(struct wsb_session *s, uint16_t code, const char *reason) {
  if (s->state != S_RELAY) {
    wsb__session_close(s, WSB_EADMIN);
    return;
  }
  s->closed_by = BY_WSBAL;
  s->reason = WSB_EADMIN;
  wsb__leg_send_close(&s->client, code, reason);
  wsb__leg_send_close(&s->backend, WSB_CLOSE_GOING_AWAY, reason);
  wsb__session_finish(s);
}

static void describe(const struct wsb_worker *w, const struct wsb_session *s,
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
  e->pool = (uint16_t)s->pool;
  if (s->client_family != 0)
    inet_ntop(s->client_family, s->client_addr, e->client, sizeof(e->client));
  size_t n = s->path_len < sizeof(e->path) - 1 ? s->path_len : sizeof(e->path) - 1;
  memcpy(e->path, s->head + s->path_off, n);
  /* Kept after the head, as the access log reads it (upgrade.c, handover.c). */
  _Static_assert(sizeof(e->route) == WSB_ROUTE_NAME_MAX, "a route name fits the list entry");
  n = s->route_len < sizeof(e->route) - 1 ? s->route_len : sizeof(e->route) - 1;
  memcpy(e->route, s->head + s->head_len, n);
}

/* A chunk of a session list on its way to the master: freed once written (or the socket gone). */
struct chunk_write {
  uv_write_t req;
  struct wsb_sessions_chunk chunk;
};

/* Past this much queued on the control socket (the master not reading) a list is refused rather
   than queued: a few pages, where one page is at most 8 chunks of 54 KiB. */
#define CONTROL_QUEUE_MAX (4u << 20)

static void on_chunk_written(uv_write_t *req, int status) {
  free(req->data);
}

/* Queues a chunk (libuv writes it when the socket has room: never dropped on EAGAIN). */
static void send_chunk(struct wsb_worker *w, struct chunk_write *cw) {
  struct wsb_sessions_chunk *c = &cw->chunk;
  c->type = WSB_CTL_SESSIONS;
  c->len = (uint32_t)(offsetof(struct wsb_sessions_chunk, entries) +
                      c->count * sizeof(struct wsb_session_info));
  uv_buf_t b = uv_buf_init((char *)c, c->len);
  cw->req.data = cw;
  int rc = uv_write(&cw->req, (uv_stream_t *)&w->control, &b, 1, on_chunk_written);
  if (rc != 0) {
    wsb_log_warn("session list: answer not sent: %s", uv_strerror(rc));
    free(cw);
  }
}

static struct chunk_write *new_chunk(uint64_t request) {
  struct chunk_write *cw = malloc(sizeof(*cw));
  if (cw != NULL) {
    memset(&cw->chunk, 0, offsetof(struct wsb_sessions_chunk, entries));
    cw->chunk.request = request;
  }
  return cw;
}

/* The last chunk alone, saying why there is no list; when even that cannot be allocated the
   master's wait for this worker times out and its answer says partial. */
static void refuse_list(struct wsb_worker *w, uint64_t request, int err) {
  struct chunk_write *cw = new_chunk(request);
  if (cw == NULL)
    return;
  cw->chunk.last = 1;
  cw->chunk.error = err;
  send_chunk(w, cw);
}

/* Sessions that have a 101 (a head kept) and pass the request's filter. */
static bool listed(const struct wsb_session *s, const struct wsb_control_msg *m) {
  return s->head != NULL && s->state != S_CLOSED && (!m->one || s->id == m->session) &&
         (m->slot < 0 || s->backend_slot == m->slot) &&
         (m->pool < 0 || s->pool == (uint32_t)m->pool);
}

static int by_id(const void *a, const void *b) {
  uint64_t x = (*(struct wsb_session *const *)a)->id, y = (*(struct wsb_session *const *)b)->id;
  return x < y ? -1 : x > y;
}

/* One page of the matching sessions in id order: skip, then up to limit, in chunks the master
   puts together. The last chunk carries how many matched, so the master can page over workers. */
static void list_sessions(struct wsb_worker *w, const struct wsb_control_msg *m) {
  if (uv_stream_get_write_queue_size((uv_stream_t *)&w->control) > CONTROL_QUEUE_MAX) {
    refuse_list(w, m->request, -EBUSY);
    return;
  }
  size_t matched = 0, before = 0; /* before: at or below m->after, which a cursor passed */
  struct wsb_session *s;
  WSB_LIST_EACH (s, &w->sessions, link)
    if (listed(s, m)) {
      matched++;
      before += m->cursor && s->id <= m->after;
    }
  size_t first = m->skip < matched - before ? before + m->skip : matched;
  size_t n = matched - first < m->limit ? matched - first : m->limit;
  /* Sessions are added at the head with growing ids, so the list is normally newest first;
     the page is picked from a sorted copy of the pointers rather than trusting that order. */
  struct wsb_session **all = n > 0 ? malloc(matched * sizeof(*all)) : NULL;
  struct chunk_write *cw = new_chunk(m->request);
  if ((n > 0 && all == NULL) || cw == NULL) {
    free(all);
    free(cw);
    refuse_list(w, m->request, -ENOMEM);
    return;
  }
  if (n > 0) {
    size_t i = matched;
    bool ascending = true;
    WSB_LIST_EACH (s, &w->sessions, link)
      if (listed(s, m)) {
        all[--i] = s;
        ascending = ascending && (i + 1 == matched || s->id < all[i + 1]->id);
      }
    if (!ascending)
      qsort(all, matched, sizeof(*all), by_id);
  }
  for (size_t i = first; i < first + n; i++) {
    describe(w, all[i], &cw->chunk.entries[cw->chunk.count++]);
    if (cw->chunk.count == WSB_SESSIONS_PER_CHUNK && i + 1 < first + n) {
      send_chunk(w, cw);
      if ((cw = new_chunk(m->request)) == NULL) {
        free(all);
        refuse_list(w, m->request, -ENOMEM); /* the master's answer says partial */
        return;
      }
    }
  }
  free(all);
  cw->chunk.last = 1;
  cw->chunk.matched = matched;
  cw->chunk.described = (uint32_t)n;
  send_chunk(w, cw);
}

void wsb_worker_command(struct wsb_worker *w, const struct wsb_control_msg *m) {
  wsb_worker_refresh_table(w);
  switch (m->type) {
  case WSB_CTL_FAILOVER_BACKEND:
    if (m->slot < 0 || m->slot >= WSB_SHM_MAX_BACKENDS)
      return;
    wsb_slot_set_add(&w->drain_slots, (uint32_t)m->slot);
    if (!uv_is_active((uv_handle_t *)&w->drain_tick))
      uv_timer_start(&w->drain_tick, on_drain_tick, 0, DRAIN_TICK_MS);
    break;
  case WSB_CTL_CLOSE_BACKEND: {
    struct wsb_session *s;
    WSB_LIST_EACH (s, &w->sessions, link) {
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
  case WSB_CTL_HANDOVER:
    wsb_handover_begin(w, (pid_t)m->session, (uint32_t)m->slot);
    break;
  case WSB_CTL_FAILOVER_SESSION: {
    struct wsb_session *s = find(w, m->session);
    if (s != NULL && s->state == S_RELAY) {
      s->prefer_slot = m->slot;
      wsb__failover_begin(s, WSB_FO_ADMIN, 0);
    }
    break;
  }
  }
}
