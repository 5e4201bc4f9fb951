/* The admin API's backends: list, add, change, delete and drain, through the backends' verbs. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "control.h"
#include "errors.h"
#include "log.h"

/* ---- answers ---- */

/* "last_check": {"result", "reason", "age_ms"} of the last health check, or null before the
   first one and while checks are off: why a backend is down, as the operator will ask. */
static void last_check_json(struct master *m, struct wsb_json *j, uint32_t slot) {
  struct wsb_health_last last;
  wsb_json_key(j, "last_check");
  if (!wsb_health_last(m->health, slot, &last)) {
    wsb_json_null(j);
    return;
  }
  uint64_t now = wsb_shm_now_ms();
  wsb_json_object_begin(j);
  wsb_json_key(j, "result");
  wsb_json_cstring(j, wsb_probe_result_name(last.result));
  wsb_json_key(j, "reason");
  wsb_json_cstring(j, last.reason);
  wsb_json_key(j, "age_ms");
  wsb_json_uint(j, now > last.at_ms ? now - last.at_ms : 0);
  wsb_json_object_end(j);
}

static void backend_json(struct master *m, struct wsb_json *j, uint32_t slot) {
  const struct wsb_shm_backend *b = &m->table->backends[slot];
  char section[WSB_NAME_MAX];
  wsb_addrs_section(b->name, section, sizeof(section)); /* NAME#ADDR: its section's URL */
  const struct wsb_backend_config *bc = wsb_backends_find(&m->backends, section);
  wsb_json_object_begin(j);
  wsb_json_key(j, "name");
  wsb_json_cstring(j, b->name);
  wsb_json_key(j, "url");
  wsb_json_cstring(j, bc ? bc->url_text : "");
  wsb_json_key(j, "weight");
  wsb_json_uint(j, b->weight);
  wsb_json_key(j, "max_sessions");
  wsb_json_uint(j, b->max_sessions);
  wsb_json_key(j, "backup");
  wsb_json_bool(j, b->backup);
  wsb_json_key(j, "pool");
  wsb_json_cstring(j, b->pool < m->table->npools ? m->table->pools[b->pool].name : "");
  wsb_json_key(j, "enabled");
  wsb_json_bool(j, b->enabled);
  /* Disabled by a drain (the workers move its sessions away), not by a plain disable. */
  wsb_json_key(j, "draining");
  wsb_json_bool(j, !b->enabled && wsb_backends_draining(&m->backends, b->name));
  wsb_json_key(j, "up");
  wsb_json_bool(j, atomic_load(&m->shm->backend_up[slot]) != 0);
  wsb_json_key(j, "sessions");
  wsb_json_uint(j, wsb_shm_backend_live(m->shm, slot));
  wsb_json_key(j, "sessions_total");
  wsb_json_uint(j, API_SLOT_SUM(m, slot, sessions_total[slot], sessions_total));
  wsb_json_key(j, "failovers");
  uint64_t failovers = 0;
  for (int r = 0; r < WSB_FAILOVER_REASONS; r++)
    failovers += API_SLOT_SUM(m, slot, failovers[slot][r], failovers[r]);
  wsb_json_uint(j, failovers);
  static const char *const breaker[] = WSB_BREAKER_NAMES;
  uint32_t state = atomic_load(&m->shm->breaker_state[slot]);
  wsb_json_key(j, "failures");
  wsb_json_uint(j, atomic_load(&m->shm->breaker_failures[slot]));
  wsb_json_key(j, "breaker");
  wsb_json_cstring(j, state <= WSB_BREAKER_TRIAL ? breaker[state] : "?");
  last_check_json(m, j, slot);
  /* Messages and bytes each way, named as in the sessions API; the status page charts the keys
     its BACKEND_RATES lists. */
  static const char *const traffic[WSB_DIR_COUNT][2] = {
      [WSB_DIR_TO_BACKEND] = {"messages_in", "bytes_in"},
      [WSB_DIR_TO_CLIENT] = {"messages_out", "bytes_out"}};
  for (int d = 0; d < WSB_DIR_COUNT; d++) {
    wsb_json_key(j, traffic[d][0]);
    wsb_json_uint(j, API_SLOT_SUM(m, slot, backend_messages[slot][d], messages[d]));
    wsb_json_key(j, traffic[d][1]);
    wsb_json_uint(j, API_SLOT_SUM(m, slot, backend_bytes[slot][d], bytes[d]));
  }
  wsb_json_object_end(j);
}

/* {"backends": [...]} of n slots (every backend in use when slots is NULL). */
static void backends_json(struct master *m, const int *slots, size_t n, struct wsb_admin_reply *r) {
  struct wsb_json j;
  if (!wsb__api_json_begin(&j, r))
    return;
  wsb_json_object_begin(&j);
  wsb_json_key(&j, "backends");
  wsb_json_array_begin(&j);
  for (uint32_t s = 0; slots == NULL && s < m->table->nslots; s++)
    if (m->table->backends[s].in_use)
      backend_json(m, &j, s);
  for (size_t i = 0; slots != NULL && i < n; i++)
    backend_json(m, &j, (uint32_t)slots[i]);
  wsb_json_array_end(&j);
  wsb_json_object_end(&j);
  wsb__api_reply_json(r, 200, &j);
}

void wsb__api_backend_reply(struct master *m, int slot, int status, struct wsb_admin_reply *r) {
  struct wsb_json j;
  if (!wsb__api_json_begin(&j, r))
    return;
  backend_json(m, &j, (uint32_t)slot);
  wsb__api_reply_json(r, status, &j);
}

void wsb__api_backends_list(struct api_call *c) {
  backends_json(c->m, NULL, 0, c->r);
}

/* ---- what {name} names ---- */

/*
 * One backend of the table (a section with one address, or one address
 * NAME#ADDR of a section), or a section whose host has several addresses:
 * it stands for all of them. Slots are found before a change replaces the
 * table; a backend keeps its slot by name.
 */
struct target {
  char name[WSB_NAME_MAX];
  bool section;
  size_t n;
  int slots[WSB_SHM_MAX_BACKENDS];
};

/* False with 404 answered. */
static bool find_target(struct api_call *c, struct target *t) {
  struct master *m = c->m;
  t->n = 0;
  t->section = false;
  if (strlen(c->arg) < sizeof(t->name)) {
    snprintf(t->name, sizeof(t->name), "%s", c->arg);
    t->slots[0] = wsb__api_find_backend(m, t->name);
    t->n = t->slots[0] >= 0;
    t->section = t->n == 0 && wsb_backends_find(&m->backends, t->name) != NULL;
  }
  for (uint32_t s = 0; t->section && s < m->table->nslots; s++) {
    const char *name = m->table->backends[s].name;
    char sec[WSB_NAME_MAX];
    wsb_addrs_section(name, sec, sizeof(sec));
    if (m->table->backends[s].in_use && strchr(name, '#') != NULL && strcmp(sec, t->name) == 0)
      t->slots[t->n++] = (int)s;
  }
  if (t->n == 0)
    wsb_admin_error(c->r, 404, "no such backend");
  return t->n > 0;
}

/* The backend, or the section's list of addresses. */
static void target_json(struct master *m, const struct target *t, struct wsb_admin_reply *r) {
  if (t->section)
    backends_json(m, t->slots, t->n, r);
  else
    wsb__api_backend_reply(m, t->slots[0], 200, r);
}

/* Sends a command about each of t's slots to every worker; how many workers each reached. */
static unsigned to_workers(struct master *m, const struct target *t, uint32_t type) {
  unsigned reached = UINT_MAX;
  for (size_t i = 0; i < t->n; i++) {
    struct wsb_control_msg msg = {.type = type, .len = sizeof(msg), .slot = t->slots[i]};
    unsigned k = wsb_workers_send(&m->workers, -1, &msg);
    reached = k < reached ? k : reached;
  }
  return t->n > 0 ? reached : 0;
}

/* ---- changes ---- */

enum verb { VERB_NONE, VERB_ENABLE, VERB_DISABLE, VERB_DRAIN, VERB_REMOVE };

/* Runs the verbs on a copy of the desired state and publishes it, so the state changes only with
   its table. False with the error answered. */
static bool change(struct master *m, const char *name, unsigned weight, const char *pool,
                   enum verb verb, struct wsb_admin_reply *r) {
  static int (*const verbs[])(struct wsb_backends *, const char *) = {
      [VERB_ENABLE] = wsb_backends_enable,
      [VERB_DISABLE] = wsb_backends_disable,
      [VERB_DRAIN] = wsb_backends_drain,
      [VERB_REMOVE] = wsb_backends_remove,
  };
  struct wsb_backends next;
  char err[512] = "out of memory";
  int rc = wsb_backends_copy(&next, &m->backends);
  if (rc == 0 && weight > 0)
    rc = wsb_backends_set_weight(&next, name, weight);
  if (rc == 0 && pool != NULL)
    rc = wsb_backends_set_pool(&next, name, pool);
  if (rc == 0 && verb != VERB_NONE)
    rc = verbs[verb](&next, name);
  if (rc == -EPERM) /* the next lookup would bring it back */
    snprintf(err, sizeof(err), "%s",
             "an address found by DNS discovery cannot be deleted: disable or drain it, or "
             "delete its section");
  if (rc == 0)
    rc = wsb_master_publish(m, &next, err, sizeof(err));
  wsb_backends_free(&next);
  if (rc != 0)
    wsb_admin_error(r, rc == -EPERM ? 409 : 500, err);
  return rc == 0;
}

/* One info line per change, naming the client that made it (as HAProxy's and Traefik's
   operators audit theirs): "admin 127.0.0.1:53412: backend e1 disabled". */
static void log_change(const struct api_call *c, const struct target *t, const char *what,
                       const char *detail) {
  if (t->section)
    wsb_log_info("admin %s: backend %s (%zu addresses) %s%s", c->req->peer, t->name, t->n, what,
                 detail);
  else
    wsb_log_info("admin %s: backend %s %s%s", c->req->peer, t->name, what, detail);
}

/* PATCH {"weight"?, "enabled"?, "pool"?}. A new pool takes the backend's new sessions; its live
   ones stay in the pool they started in (as after a reload that moves it). */
void wsb__api_backend_patch(struct api_call *c) {
  static const char *const known[] = {"weight", "enabled", "pool", NULL};
  struct wsb_json_token tokens[API_BODY_TOKENS];
  struct wsb_json_doc doc;
  struct target t;
  if (!find_target(c, &t) || !wsb__api_parse_body(c->req, &doc, tokens, known, c->r))
    return;
  uint64_t weight = 0;
  bool enabled = false;
  char pool[WSB_SECTION_NAME_MAX];
  int wrc = wsb_json_get_uint(&doc, wsb_json_member(&doc, 0, "weight"), 1, 1000, &weight);
  int erc = wsb_json_get_bool(&doc, wsb_json_member(&doc, 0, "enabled"), &enabled);
  int prc = wsb_json_get_string(&doc, wsb_json_member(&doc, 0, "pool"), pool, sizeof(pool), NULL);
  if (prc == 0 && !wsb_config_backend_name_valid(pool))
    prc = WSB_EVALUE;
  if (!wsb__api_field_ok(wrc, "weight", "an integer from 1 to 1000", true, c->r) ||
      !wsb__api_field_ok(erc, "enabled", "true or false", true, c->r) ||
      !wsb__api_field_ok(prc, "pool", "a string of 1 to 63 letters, digits, '-', '_' or '.'", true,
                         c->r))
    return;
  if (prc == 0 && strchr(t.name, '#') != NULL) {
    wsb_admin_error(c->r, 400, "body: \"pool\" belongs to a backend section, not one address");
    return;
  }
  enum verb verb = erc != 0 ? VERB_NONE : enabled ? VERB_ENABLE : VERB_DISABLE;
  if (change(c->m, t.name, wrc == 0 ? (unsigned)weight : 0, prc == 0 ? pool : NULL, verb, c->r)) {
    char detail[160] = "";
    if (wrc == 0)
      snprintf(detail, sizeof(detail), ": weight %llu", (unsigned long long)weight);
    if (erc == 0)
      snprintf(detail + strlen(detail), sizeof(detail) - strlen(detail), "%s%s",
               wrc == 0 ? ", " : ": ", enabled ? "enabled" : "disabled");
    if (prc == 0)
      snprintf(detail + strlen(detail), sizeof(detail) - strlen(detail), "%spool %s",
               detail[0] != '\0' ? ", " : ": ", pool);
    log_change(c, &t, "changed", detail);
    target_json(c->m, &t, c->r);
  }
}

/* enable/disable: published as a new generation at once; answers the backend (or section). */
static void set_enabled(struct api_call *c, bool enabled) {
  struct target t;
  if (find_target(c, &t) &&
      change(c->m, t.name, 0, NULL, enabled ? VERB_ENABLE : VERB_DISABLE, c->r)) {
    log_change(c, &t, enabled ? "enabled" : "disabled", "");
    target_json(c->m, &t, c->r);
  }
}

void wsb__api_backend_enable(struct api_call *c) {
  set_enabled(c, true);
}

void wsb__api_backend_disable(struct api_call *c) {
  set_enabled(c, false);
}

/* Drain: no new sessions, then every worker moves the live ones over, paced. One answer for a
   backend and a section alike: 202 {"status": "draining", "workers", "backends": [names]}. */
void wsb__api_backend_drain(struct api_call *c) {
  struct target t;
  if (!find_target(c, &t) || !change(c->m, t.name, 0, NULL, VERB_DRAIN, c->r))
    return;
  const char *names[WSB_SHM_MAX_BACKENDS];
  for (size_t i = 0; i < t.n; i++)
    names[i] = c->m->table->backends[t.slots[i]].name;
  log_change(c, &t, "draining", "");
  wsb__api_accepted(c->r, "draining", to_workers(c->m, &t, WSB_CTL_FAILOVER_BACKEND), names, t.n);
}

/* DELETE ?sessions=keep|failover|close (keep when absent): removes a backend, or a section and
   each of its addresses; the sessions of each get the command. */
void wsb__api_backend_delete(struct api_call *c) {
  char mode[16] = "keep";
  struct target t;
  if (!find_target(c, &t))
    return;
  if (c->req->query[0] && wsb__api_query_get(c->req->query, "sessions", mode, sizeof(mode)) &&
      strcmp(mode, "keep") && strcmp(mode, "failover") && strcmp(mode, "close")) {
    wsb_admin_error(c->r, 400, "sessions= takes keep, failover or close");
    return;
  }
  if (!change(c->m, t.name, 0, NULL, VERB_REMOVE, c->r))
    return;
  unsigned reached = 0;
  if (strcmp(mode, "keep") != 0)
    reached = to_workers(
        c->m, &t, strcmp(mode, "failover") == 0 ? WSB_CTL_FAILOVER_BACKEND : WSB_CTL_CLOSE_BACKEND);
  log_change(c, &t, "deleted, its sessions: ", mode);
  struct wsb_json j;
  if (!wsb__api_json_begin(&j, c->r))
    return;
  wsb_json_object_begin(&j);
  wsb_json_key(&j, "deleted");
  wsb_json_cstring(&j, t.name);
  wsb_json_key(&j, "sessions");
  wsb_json_cstring(&j, mode);
  wsb_json_key(&j, "workers");
  wsb_json_uint(&j, reached);
  wsb_json_object_end(&j);
  wsb__api_reply_json(c->r, 200, &j);
}

void wsb__api_backend_get(struct api_call *c) {
  struct target t;
  if (find_target(c, &t))
    target_json(c->m, &t, c->r);
}
