/* The admin API's routes: status, backends, reload, health, and Prometheus metrics. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <llhttp.h>

#include "control.h"
#include "errors.h"
#include "values.h"
#include "frame.h"
#include "json.h"
#include "json_read.h"
#include "master_internal.h"

#define JSON_MAX (256 * 1024)

/* ---- replies ---- */

static void reply_json(struct wsb_admin_reply *r, int status, struct wsb_json *j) {
  size_t n = wsb_json_finish(j);
  if (n == 0) {
    free(j->buf);
    wsb_admin_error(r, 500, "answer too large");
    return;
  }
  j->buf[n++] = '\n';
  r->status = status;
  r->body = j->buf;
  r->len = n;
}

static bool json_begin_sized(struct wsb_json *j, struct wsb_admin_reply *r, size_t cap) {
  char *buf = malloc(cap);
  if (buf == NULL) {
    wsb_admin_error(r, 500, "out of memory");
    return false;
  }
  wsb_json_init(j, buf, cap - 1); /* room for reply_json's newline */
  return true;
}

static bool json_begin(struct wsb_json *j, struct wsb_admin_reply *r) {
  return json_begin_sized(j, r, JSON_MAX);
}

static void method_not_allowed(struct wsb_admin_reply *r, const char *allow) {
  wsb_admin_error(r, 405, "method not allowed");
  r->allow = allow;
}

/* ---- sums over the workers' counters in the segment ---- */

static uint64_t sum_worker(const struct wsb_shm *shm, size_t offset) {
  uint64_t total = 0;
  unsigned n = atomic_load(&shm->slots_used);
  for (unsigned w = 0; w < n; w++)
    total += atomic_load_explicit(
        (const _Atomic uint64_t *)((const char *)&shm->workers[w] + offset), memory_order_relaxed);
  return total;
}
#define SUM(shm, field) sum_worker((shm), offsetof(struct wsb_shm_worker, field))

static uint64_t backend_failovers(const struct wsb_shm *shm, uint32_t slot) {
  uint64_t n = 0;
  for (int r = 0; r < WSB_FAILOVER_REASONS; r++)
    n += SUM(shm, failovers[slot][r]);
  return n;
}

/* A slot's total since it got its current backend: the segment's sum less the slot's baseline
   (struct wsb_slot_base). Totals only grow, a dead worker's included. */
#define SLOT_SUM(m, s, field, base) (SUM((m)->shm, field) - (m)->slot_base[s].base)

void wsb_api_adopt_slots(struct master *m, const struct wsb_shm_table *next) {
  for (uint32_t s = 0; s < next->nslots; s++) {
    const struct wsb_shm_backend *b = &next->backends[s];
    const struct wsb_shm_backend *was =
        m->table != NULL && s < m->table->nslots ? &m->table->backends[s] : NULL;
    if (!b->in_use ||
        (was != NULL && (was->in_use || was->retired) && strcmp(was->name, b->name) == 0))
      continue;
    struct wsb_slot_base *base = &m->slot_base[s];
    base->sessions_total = SUM(m->shm, sessions_total[s]);
    for (int r = 0; r < WSB_FAILOVER_REASONS; r++)
      base->failovers[r] = SUM(m->shm, failovers[s][r]);
    for (int i = 0; i < WSB_CONNECT_BUCKETS; i++)
      base->connect_buckets[i] = SUM(m->shm, connect_buckets[s][i]);
    base->connect_us = SUM(m->shm, connect_us[s]);
    base->connect_count = SUM(m->shm, connect_count[s]);
  }
}

static const char *const handshake_labels[] = {
#define WSB_XX(name, label) label,
    WSB_HANDSHAKE_RESULTS(WSB_XX)
#undef WSB_XX
};

static bool backend_available(const struct master *m, uint32_t slot) {
  const struct wsb_shm_backend *b = &m->table->backends[slot];
  return b->in_use && b->enabled && atomic_load(&m->shm->backend_up[slot]);
}

/* ---- /healthz, /readyz ---- */

static void healthz(struct master *m, struct wsb_admin_reply *r) {
  struct wsb_json j;
  if (!json_begin(&j, r))
    return;
  wsb_json_object_begin(&j);
  wsb_json_key(&j, "status");
  wsb_json_cstring(&j, m->stopping ? "stopping" : "alive");
  wsb_json_object_end(&j);
  reply_json(r, 200, &j);
}

static void readyz(struct master *m, struct wsb_admin_reply *r) {
  bool backend = false;
  for (uint32_t s = 0; s < m->table->nslots; s++)
    backend = backend || backend_available(m, s);
  if (m->stopping)
    wsb_admin_error(r, 503, "stopping");
  else if (wsb_workers_current(&m->workers) == 0)
    wsb_admin_error(r, 503, "no worker is listening");
  else if (!backend)
    wsb_admin_error(r, 503, "no backend available");
  else {
    struct wsb_json j;
    if (!json_begin(&j, r))
      return;
    wsb_json_object_begin(&j);
    wsb_json_key(&j, "status");
    wsb_json_cstring(&j, "ready");
    wsb_json_object_end(&j);
    reply_json(r, 200, &j);
  }
}

/* ---- /api/v1/status ---- */

/* key: {"client_to_backend": N, "backend_to_client": M}, the direction names of the metrics. */
static void directions(struct wsb_json *j, const char *key, uint64_t to_backend,
                       uint64_t to_client) {
  wsb_json_key(j, key);
  wsb_json_object_begin(j);
  wsb_json_key(j, "client_to_backend");
  wsb_json_uint(j, to_backend);
  wsb_json_key(j, "backend_to_client");
  wsb_json_uint(j, to_client);
  wsb_json_object_end(j);
}

static void status(struct master *m, struct wsb_admin_reply *r) {
  struct wsb_json j;
  if (!json_begin(&j, r))
    return;
  const struct wsb_shm *shm = m->shm;
  wsb_json_object_begin(&j);
  wsb_json_key(&j, "version");
  wsb_json_cstring(&j, WSB_VERSION);
  wsb_json_key(&j, "uptime_s");
  wsb_json_uint(&j, (uv_now(&m->loop) - m->started_ms) / 1000);
  wsb_json_key(&j, "generation");
  wsb_json_uint(&j, wsb_shm_generation(shm));
  wsb_json_key(&j, "workers");
  wsb_json_array_begin(&j);
  for (unsigned s = 0; s < shm->nworkers; s++) {
    const struct wsb_worker_proc *w = &m->workers.procs[s];
    if (!w->in_use || w->pid == 0)
      continue;
    wsb_json_object_begin(&j);
    wsb_json_key(&j, "slot");
    wsb_json_uint(&j, s);
    wsb_json_key(&j, "pid");
    wsb_json_uint(&j, (uint64_t)w->pid);
    wsb_json_key(&j, "sessions");
    wsb_json_uint(&j, atomic_load(&shm->workers[s].live));
    wsb_json_key(&j, "draining");
    wsb_json_bool(&j, w->retiring);
    wsb_json_object_end(&j);
  }
  wsb_json_array_end(&j);
  wsb_json_key(&j, "totals");
  wsb_json_object_begin(&j);
  wsb_json_key(&j, "sessions");
  wsb_json_uint(&j, wsb_shm_live(shm));
  wsb_json_key(&j, "handshakes");
  wsb_json_object_begin(&j);
  for (int i = 0; i < WSB_HS_COUNT; i++) {
    wsb_json_key(&j, handshake_labels[i]);
    wsb_json_uint(&j, SUM(shm, handshakes[i]));
  }
  wsb_json_object_end(&j);
  directions(&j, "messages", SUM(shm, messages[WSB_DIR_TO_BACKEND]),
             SUM(shm, messages[WSB_DIR_TO_CLIENT]));
  directions(&j, "bytes", SUM(shm, bytes[WSB_DIR_TO_BACKEND]), SUM(shm, bytes[WSB_DIR_TO_CLIENT]));
  uint64_t failovers = 0;
  for (uint32_t s = 0; s < WSB_SHM_MAX_BACKENDS; s++)
    failovers += backend_failovers(shm, s);
  wsb_json_key(&j, "failovers");
  wsb_json_uint(&j, failovers);
  wsb_json_key(&j, "failover_failures");
  wsb_json_uint(&j, SUM(shm, failover_failures));
  wsb_json_key(&j, "reloads");
  wsb_json_object_begin(&j);
  wsb_json_key(&j, "ok");
  wsb_json_uint(&j, atomic_load(&shm->reloads_ok));
  wsb_json_key(&j, "error");
  wsb_json_uint(&j, atomic_load(&shm->reloads_error));
  wsb_json_object_end(&j);
  wsb_json_key(&j, "worker_restarts");
  wsb_json_uint(&j, atomic_load(&shm->worker_restarts));
  wsb_json_object_end(&j);
  wsb_json_object_end(&j);
  reply_json(r, 200, &j);
}

/* ---- /api/v1/backends ---- */

static void backend_json(struct master *m, struct wsb_json *j, uint32_t slot) {
  const struct wsb_shm_backend *b = &m->table->backends[slot];
  const struct wsb_backend_config *bc = NULL;
  char section[WSB_NAME_MAX];
  wsb_addrs_section(b->name, section, sizeof(section)); /* NAME#ADDR: its section's URL */
  for (size_t i = 0; i < m->cfg->nbackends; i++)
    if (strcmp(m->cfg->backends[i].name, section) == 0)
      bc = &m->cfg->backends[i];
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
  wsb_json_key(j, "enabled");
  wsb_json_bool(j, b->enabled);
  wsb_json_key(j, "up");
  wsb_json_bool(j, atomic_load(&m->shm->backend_up[slot]) != 0);
  wsb_json_key(j, "sessions");
  wsb_json_uint(j, wsb_shm_backend_live(m->shm, slot));
  wsb_json_key(j, "sessions_total");
  wsb_json_uint(j, SLOT_SUM(m, slot, sessions_total[slot], sessions_total));
  wsb_json_key(j, "failovers");
  uint64_t failovers = 0;
  for (int r = 0; r < WSB_FAILOVER_REASONS; r++)
    failovers += SLOT_SUM(m, slot, failovers[slot][r], failovers[r]);
  wsb_json_uint(j, failovers);
  static const char *const breaker[] = WSB_BREAKER_NAMES;
  uint32_t state = atomic_load(&m->shm->breaker_state[slot]);
  wsb_json_key(j, "failures");
  wsb_json_uint(j, atomic_load(&m->shm->breaker_failures[slot]));
  wsb_json_key(j, "breaker");
  wsb_json_cstring(j, state <= WSB_BREAKER_TRIAL ? breaker[state] : "?");
  wsb_json_object_end(j);
}

static int find_backend(struct master *m, const char *name) {
  for (uint32_t s = 0; s < m->table->nslots; s++)
    if (m->table->backends[s].in_use && strcmp(m->table->backends[s].name, name) == 0)
      return (int)s;
  return -1;
}

static void backends_list(struct master *m, struct wsb_admin_reply *r) {
  struct wsb_json j;
  if (!json_begin(&j, r))
    return;
  wsb_json_object_begin(&j);
  wsb_json_key(&j, "backends");
  wsb_json_array_begin(&j);
  for (uint32_t s = 0; s < m->table->nslots; s++)
    if (m->table->backends[s].in_use)
      backend_json(m, &j, s);
  wsb_json_array_end(&j);
  wsb_json_object_end(&j);
  reply_json(r, 200, &j);
}

static void backend_one(struct master *m, int slot, struct wsb_admin_reply *r) {
  struct wsb_json j;
  if (!json_begin(&j, r))
    return;
  backend_json(m, &j, (uint32_t)slot);
  reply_json(r, 200, &j);
}

/* ---- request bodies ---- */

#define BODY_TOKENS 64

/* Parses a JSON object body and refuses keys outside known; false with the answer set. */
static bool parse_body(const struct wsb_admin_request *req, struct wsb_json_doc *doc,
                       struct wsb_json_token *tokens, const char *const *known,
                       struct wsb_admin_reply *r) {
  char msg[160];
  int rc = wsb_json_parse(doc, req->body, req->body_len, tokens, BODY_TOKENS, 0);
  if (rc < 0) {
    snprintf(msg, sizeof(msg), "body: %s at byte %zu", wsb_strerror(rc), doc->err_off);
    wsb_admin_error(r, 400, msg);
    return false;
  }
  int unknown = wsb_json_unknown_key(doc, 0, known);
  if (unknown > 0) {
    char key[64];
    wsb_json_get_string(doc, unknown, key, sizeof(key), NULL);
    snprintf(msg, sizeof(msg), "body: unknown field \"%s\"", key);
    wsb_admin_error(r, 400, msg);
    return false;
  }
  return true;
}

/* A typed member check: 0 (absent is fine when optional), or false with the answer set. */
static bool field_ok(int rc, const char *field, const char *expected, bool optional,
                     struct wsb_admin_reply *r) {
  if (rc == 0 || (optional && rc == WSB_EJSON_ABSENT))
    return true;
  char msg[160];
  snprintf(msg, sizeof(msg),
           rc == WSB_EJSON_ABSENT ? "body: \"%s\" is required (%s)" : "body: \"%s\" must be %s",
           field, expected);
  wsb_admin_error(r, 400, msg);
  return false;
}

/* A query parameter's value, %XX and '+' decoded, NUL-terminated in out (len, when not NULL,
   gets its length). Returns 0, -ENOENT when absent, -E2BIG when it does not fit in cap, or
   -EINVAL for a bad escape or an encoded NUL; out is "" on errors. */
static int query_value(const char *query, const char *key, char *out, size_t cap, size_t *len) {
  size_t klen = strlen(key);
  out[0] = '\0';
  for (const char *p = query; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
    if (strncmp(p, key, klen) != 0 || p[klen] != '=')
      continue;
    size_t o = 0;
    for (const char *v = p + klen + 1; *v && *v != '&'; v++) {
      if (o + 1 >= cap) {
        out[0] = '\0';
        return -E2BIG;
      }
      char ch = *v == '+' ? ' ' : *v;
      if (*v == '%') {
        int hi = wsb_hex_digit((unsigned char)v[1]),
            lo = hi < 0 ? -1 : wsb_hex_digit((unsigned char)v[2]);
        if (lo < 0 || hi + lo == 0) {
          out[0] = '\0';
          return -EINVAL;
        }
        ch = (char)(hi * 16 + lo);
        v += 2;
      }
      out[o++] = ch;
    }
    out[o] = '\0';
    if (len != NULL)
      *len = o;
    return 0;
  }
  return -ENOENT;
}

/* Whether the parameter is there; a value that is malformed or too long reads as "". */
static bool query_get(const char *query, const char *key, char *out, size_t cap) {
  return query_value(query, key, out, cap, NULL) != -ENOENT;
}

static void accepted(struct wsb_admin_reply *r, const char *what, unsigned workers) {
  struct wsb_json j;
  if (!json_begin(&j, r))
    return;
  wsb_json_object_begin(&j);
  wsb_json_key(&j, "status");
  wsb_json_cstring(&j, what);
  wsb_json_key(&j, "workers");
  wsb_json_uint(&j, workers);
  wsb_json_object_end(&j);
  reply_json(r, 202, &j);
}

/* A PATCH body {"weight"?, "enabled"?}: weight 0 and enabled -1 stand for "unchanged".
   False once an error is answered. */
static bool read_patch(const struct wsb_admin_request *req, unsigned *weight, int *enabled,
                       struct wsb_admin_reply *r) {
  static const char *const known[] = {"weight", "enabled", NULL};
  struct wsb_json_token tokens[BODY_TOKENS];
  struct wsb_json_doc doc;
  if (!parse_body(req, &doc, tokens, known, r))
    return false;
  uint64_t w = 0;
  bool e = false;
  int wrc = wsb_json_get_uint(&doc, wsb_json_member(&doc, 0, "weight"), 1, 1000, &w);
  int erc = wsb_json_get_bool(&doc, wsb_json_member(&doc, 0, "enabled"), &e);
  if (!field_ok(wrc, "weight", "an integer from 1 to 1000", true, r) ||
      !field_ok(erc, "enabled", "true or false", true, r))
    return false;
  *weight = wrc == 0 ? (unsigned)w : 0;
  *enabled = erc == 0 ? e : -1;
  return true;
}

/* DELETE's ?sessions=keep|failover|close (keep when absent). False once a 400 is answered. */
static bool read_sessions_mode(const struct wsb_admin_request *req, char *mode, size_t len,
                               struct wsb_admin_reply *r) {
  snprintf(mode, len, "keep");
  if (req->query[0] && query_get(req->query, "sessions", mode, len) && strcmp(mode, "keep") &&
      strcmp(mode, "failover") && strcmp(mode, "close")) {
    wsb_admin_error(r, 400, "sessions= takes keep, failover or close");
    return false;
  }
  return true;
}

/* The workers' command for a deleted backend's sessions, or -1 to keep them. */
static int sessions_command(const char *mode) {
  if (strcmp(mode, "keep") == 0)
    return -1;
  return strcmp(mode, "failover") == 0 ? WSB_CTL_FAILOVER_BACKEND : WSB_CTL_CLOSE_BACKEND;
}

/* Removes a backend from the running configuration; the next table no longer has it. */
static int remove_backend(struct master *m, const char *name, char *err, size_t errlen) {
  for (size_t i = 0; i < m->cfg->nbackends; i++) {
    if (strcmp(m->cfg->backends[i].name, name) != 0)
      continue;
    memmove(&m->cfg->backends[i], &m->cfg->backends[i + 1],
            (m->cfg->nbackends - i - 1) * sizeof(m->cfg->backends[0]));
    m->cfg->nbackends--;
    return wsb_master_publish(m, err, errlen);
  }
  snprintf(err, errlen, "no such backend");
  return -ENOENT;
}

static void backend_delete(struct master *m, int slot, const struct wsb_admin_request *req,
                           struct wsb_admin_reply *r) {
  char mode[16], name[WSB_NAME_MAX], err[512];
  if (!read_sessions_mode(req, mode, sizeof(mode), r))
    return;
  snprintf(name, sizeof(name), "%s", m->table->backends[slot].name);
  if (strchr(name, '#') != NULL) {
    /* The next lookup would bring it back: an address is disabled or drained, its section goes. */
    wsb_admin_error(r, 409,
                    "an address found by DNS discovery cannot be deleted: disable or "
                    "drain it, or delete its section");
    return;
  }
  if (remove_backend(m, name, err, sizeof(err)) != 0) {
    wsb_admin_error(r, 500, err);
    return;
  }
  unsigned reached = 0;
  int type = sessions_command(mode);
  if (type >= 0) {
    struct wsb_control_msg msg = {.type = (uint32_t)type, .len = sizeof(msg), .slot = slot};
    reached = wsb_workers_send(&m->workers, -1, &msg);
  }
  wsb_log_info("admin: backend %s deleted, its sessions: %s", name, mode);
  struct wsb_json j;
  if (!json_begin(&j, r))
    return;
  wsb_json_object_begin(&j);
  wsb_json_key(&j, "deleted");
  wsb_json_cstring(&j, name);
  wsb_json_key(&j, "sessions");
  wsb_json_cstring(&j, mode);
  wsb_json_key(&j, "workers");
  wsb_json_uint(&j, reached);
  wsb_json_object_end(&j);
  reply_json(r, 200, &j);
}

/* Backends added through the API whose host names are still being looked up, at most. libuv
   runs two lookups at once (half its pool of 4 threads) and queues the rest, DNS discovery's
   rounds included: past this, a POST is refused at once rather than queued. */
#define ADDS_MAX 4

/* A POST /api/v1/backends waiting for its host's addresses. It owns copies of all it needs:
   the request and its connection may be gone when the answer comes (the add goes on). */
struct add_op {
  uv_getaddrinfo_t req;
  struct add_op *next;
  struct master *m;
  uint64_t conn;
  struct wsb_backend_config b;
};

/* Adds b to the running configuration and publishes it; addrs are its host's addresses (NULL:
   a literal address, looked up at once). Fills r: 201 with the backend, or the error. */
static void add_publish(struct master *m, const struct wsb_backend_config *b,
                        const struct wsb_addrs *addrs, struct wsb_admin_reply *r) {
  for (size_t i = 0; i < m->cfg->nbackends; i++)
    if (strcmp(m->cfg->backends[i].name, b->name) == 0) {
      wsb_admin_error(r, 409, "a backend of that name exists");
      return;
    }
  struct wsb_backend_config *grown =
      realloc(m->cfg->backends, (m->cfg->nbackends + 1) * sizeof(*grown));
  if (grown == NULL || (addrs != NULL && wsb_discovery_learn(&m->disc, b->name, b->url.host,
                                                             b->url.port, addrs) != 0)) {
    if (grown != NULL)
      m->cfg->backends = grown;
    wsb_admin_error(r, 500, "out of memory");
    return;
  }
  m->cfg->backends = grown;
  m->cfg->backends[m->cfg->nbackends++] = *b;
  char err[512];
  if (wsb_master_publish(m, err, sizeof(err)) != 0) {
    m->cfg->nbackends--; /* not resolvable, or no slot left: as if never added */
    wsb_discovery_unlearn(&m->disc, b->name);
    wsb_admin_error(r, 422, err);
    return;
  }
  wsb_log_info("admin: backend %s added (%s)", b->name, b->url_text);
  backend_one(m, find_backend(m, b->name), r);
  r->status = 201;
}

static void on_add_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  struct add_op *op = req->data;
  struct master *m = op->m;
  for (struct add_op **p = &m->adds; *p != NULL; p = &(*p)->next)
    if (*p == op) {
      *p = op->next;
      break;
    }
  m->nadds--;
  struct wsb_admin_reply r = {0};
  struct wsb_addrs addrs = {0};
  size_t dropped = status == 0 ? wsb_addrs_from_addrinfo(&addrs, res) : 0;
  char msg[WSB_HOST_MAX + WSB_NAME_MAX + 128];
  if (status == UV_EAI_CANCELED || m->stopping) {
    wsb_admin_error(&r, 503, "stopping");
  } else if (status < 0 || addrs.n == 0) {
    if (status < 0)
      snprintf(msg, sizeof(msg), "backend %s: cannot resolve %s: %s", op->b.name, op->b.url.host,
               uv_strerror(status));
    else
      snprintf(msg, sizeof(msg), "backend %s: %s has no IPv4 or IPv6 address", op->b.name,
               op->b.url.host);
    wsb_log_warn("admin: %s", msg);
    wsb_admin_error(&r, 422, msg);
  } else {
    wsb_discovery_log_addrs(op->b.name, op->b.url.host, &addrs, dropped);
    add_publish(m, &op->b, &addrs, &r);
  }
  if (res != NULL)
    uv_freeaddrinfo(res);
  wsb_admin_complete(&m->admin, op->conn, &r); /* dropped if the client has gone */
  free(op);
}

/* POST /api/v1/backends: a backend added at run time, published like a reload. A host name is
   looked up without blocking the master (uv_getaddrinfo); the answer waits for it. */
static void backend_add(struct master *m, const struct wsb_admin_request *req,
                        struct wsb_admin_reply *r) {
  static const char *const known[] = {"name", "url", "weight", "max_sessions", "backup", NULL};
  struct wsb_json_token tokens[BODY_TOKENS];
  struct wsb_json_doc doc;
  if (!parse_body(req, &doc, tokens, known, r))
    return;
  struct wsb_backend_config b = {.weight = 1, .enabled = true};
  char url[sizeof(b.url_text)];
  uint64_t weight = 1, max_sessions = 0;
  bool backup = false;
  if (!field_ok(
          wsb_json_get_string(&doc, wsb_json_member(&doc, 0, "name"), b.name, sizeof(b.name), NULL),
          "name", "a string of 1 to 63 letters, digits, '-', '_' or '.'", false, r) ||
      !field_ok(wsb_json_get_string(&doc, wsb_json_member(&doc, 0, "url"), url, sizeof(url), NULL),
                "url", "a ws:// or wss:// URL", false, r) ||
      !field_ok(wsb_json_get_uint(&doc, wsb_json_member(&doc, 0, "weight"), 1, 1000, &weight),
                "weight", "an integer from 1 to 1000", true, r) ||
      !field_ok(wsb_json_get_uint(&doc, wsb_json_member(&doc, 0, "max_sessions"), 0, 10000000,
                                  &max_sessions),
                "max_sessions", "an integer from 0 to 10000000", true, r) ||
      !field_ok(wsb_json_get_bool(&doc, wsb_json_member(&doc, 0, "backup"), &backup), "backup",
                "true or false", true, r))
    return;
  if (!wsb_config_backend_name_valid(b.name)) {
    wsb_admin_error(r, 400, "body: \"name\" must be 1 to 63 letters, digits, '-', '_' or '.'");
    return;
  }
  if (wsb_parse_url(url, &b.url) != 0) {
    wsb_admin_error(r, 400, "body: \"url\" must be a ws:// or wss:// URL without query");
    return;
  }
  for (size_t i = 0; i < m->cfg->nbackends; i++)
    if (strcmp(m->cfg->backends[i].name, b.name) == 0) {
      wsb_admin_error(r, 409, "a backend of that name exists");
      return;
    }
  for (const struct add_op *op = m->adds; op != NULL; op = op->next)
    if (strcmp(op->b.name, b.name) == 0) {
      wsb_admin_error(r, 409, "a backend of that name is being added");
      return;
    }
  snprintf(b.url_text, sizeof(b.url_text), "%s", url);
  b.weight = (unsigned)weight;
  b.max_sessions = (unsigned)max_sessions;
  b.backup = backup;
  if (wsb_addrs_is_literal(b.url.host)) {
    add_publish(m, &b, NULL, r); /* nothing to wait for */
    return;
  }
  if (m->nadds >= ADDS_MAX) {
    wsb_admin_error(r, 503, "too many backends waiting for their host's addresses; try again");
    return;
  }
  struct add_op *op = calloc(1, sizeof(*op));
  if (op == NULL) {
    wsb_admin_error(r, 500, "out of memory");
    return;
  }
  op->m = m;
  op->conn = req->conn;
  op->b = b;
  op->req.data = op;
  static const struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  char port[8];
  snprintf(port, sizeof(port), "%u", (unsigned)b.url.port);
  int rc = uv_getaddrinfo(&m->loop, &op->req, on_add_resolved, op->b.url.host, port, &hints);
  if (rc != 0) {
    char msg[WSB_HOST_MAX + WSB_NAME_MAX + 128];
    snprintf(msg, sizeof(msg), "backend %s: cannot resolve %s: %s", b.name, b.url.host,
             uv_strerror(rc));
    free(op);
    wsb_admin_error(r, 422, msg);
    return;
  }
  op->next = m->adds;
  m->adds = op;
  m->nadds++;
  wsb_log_info("admin: backend %s: looking %s up", b.name, b.url.host);
  r->status = 0; /* answered when the lookup ends */
}

/*
 * A runtime change of weight (0: none) or enabled (-1: none), published as a
 * new generation. A section's change reaches every address it has; a change
 * to one discovered address (NAME#ADDR) is kept by discovery for as long as
 * the address exists, since a section has no place for it.
 */
static int change(struct master *m, const char *name, unsigned weight, int enabled, char *err,
                  size_t errlen) {
  if (strchr(name, '#') != NULL) {
    if (wsb_discovery_override(&m->disc, name, weight, enabled) != 0) {
      snprintf(err, errlen, "out of memory");
      return -ENOMEM;
    }
  } else {
    for (size_t i = 0; i < m->cfg->nbackends; i++) {
      if (strcmp(m->cfg->backends[i].name, name) != 0)
        continue;
      if (weight > 0)
        m->cfg->backends[i].weight = weight;
      if (enabled >= 0)
        m->cfg->backends[i].enabled = enabled != 0;
    }
    wsb_discovery_forget(&m->disc, name); /* the section's word is the last */
  }
  return wsb_master_publish(m, err, errlen);
}

/* PATCH /api/v1/backends/{name}: weight and enabled. */
static void backend_patch(struct master *m, int slot, const struct wsb_admin_request *req,
                          struct wsb_admin_reply *r) {
  unsigned weight;
  int enabled;
  if (!read_patch(req, &weight, &enabled, r))
    return;
  char name[WSB_NAME_MAX];
  snprintf(name, sizeof(name), "%s", m->table->backends[slot].name);
  char err[512];
  if (change(m, name, weight, enabled, err, sizeof(err)) != 0) {
    wsb_admin_error(r, 500, err);
    return;
  }
  wsb_log_info("admin: backend %s changed", name);
  backend_one(m, slot, r);
}

/* enable/disable: a runtime change, published as a new generation like a reload. */
static void backend_set_enabled(struct master *m, int slot, bool enabled,
                                struct wsb_admin_reply *r) {
  char name[WSB_NAME_MAX];
  /* A copy: publishing replaces the table the slot's name lives in. */
  snprintf(name, sizeof(name), "%s", m->table->backends[slot].name);
  char err[512];
  if (change(m, name, 0, enabled, err, sizeof(err)) != 0) {
    wsb_admin_error(r, 500, err);
    return;
  }
  wsb_log_info("admin: backend %s %s", name, enabled ? "enabled" : "disabled");
  backend_one(m, slot, r);
}

/* ---- a section that DNS discovery expanded into NAME#ADDR backends ---- */

static bool section_of_addresses(struct master *m, const char *name) {
  char sec[WSB_NAME_MAX];
  for (uint32_t s = 0; s < m->table->nslots; s++) {
    if (!m->table->backends[s].in_use || strchr(m->table->backends[s].name, '#') == NULL)
      continue;
    wsb_addrs_section(m->table->backends[s].name, sec, sizeof(sec));
    if (strcmp(sec, name) == 0)
      return true;
  }
  return false;
}

/* The slots of a section's addresses, found before a change replaces the table. */
static size_t section_slots(struct master *m, const char *name, int *slots) {
  char sec[WSB_NAME_MAX];
  size_t n = 0;
  for (uint32_t s = 0; s < m->table->nslots; s++) {
    if (!m->table->backends[s].in_use)
      continue;
    wsb_addrs_section(m->table->backends[s].name, sec, sizeof(sec));
    if (strcmp(sec, name) == 0 && strchr(m->table->backends[s].name, '#') != NULL)
      slots[n++] = (int)s;
  }
  return n;
}

static void section_list(struct master *m, const char *name, struct wsb_admin_reply *r) {
  int slots[WSB_SHM_MAX_BACKENDS];
  size_t n = section_slots(m, name, slots);
  struct wsb_json j;
  if (!json_begin(&j, r))
    return;
  wsb_json_object_begin(&j);
  wsb_json_key(&j, "backends");
  wsb_json_array_begin(&j);
  for (size_t i = 0; i < n; i++)
    backend_json(m, &j, (uint32_t)slots[i]);
  wsb_json_array_end(&j);
  wsb_json_object_end(&j);
  reply_json(r, 200, &j);
}

/*
 * /api/v1/backends/NAME where NAME's host resolved to several addresses: the
 * section stands for all of them. GET lists them; PATCH, enable, disable and
 * drain change the section (and forget changes made to single addresses);
 * DELETE removes the section, applying ?sessions= to every address.
 */
static void section_route(struct master *m, const char *name, const char *action,
                          const struct wsb_admin_request *req, struct wsb_admin_reply *r) {
  int slots[WSB_SHM_MAX_BACKENDS];
  size_t n = section_slots(m, name, slots);
  char err[512], mode[16];
  int rc = 0;
  int type = -1; /* a command for the workers, per address */
  if (action == NULL && req->method == HTTP_GET) {
    section_list(m, name, r);
    return;
  } else if (action == NULL && req->method == HTTP_PATCH) {
    unsigned weight;
    int enabled;
    if (!read_patch(req, &weight, &enabled, r))
      return;
    rc = change(m, name, weight, enabled, err, sizeof(err));
  } else if (action == NULL && req->method == HTTP_DELETE) {
    if (!read_sessions_mode(req, mode, sizeof(mode), r))
      return;
    rc = remove_backend(m, name, err, sizeof(err));
    type = sessions_command(mode);
  } else if (action == NULL) {
    method_not_allowed(r, "GET, PATCH, DELETE");
    return;
  } else if (strcmp(action, "/enable") && strcmp(action, "/disable") && strcmp(action, "/drain")) {
    wsb_admin_error(r, 404, "no such path");
    return;
  } else if (req->method != HTTP_POST) {
    method_not_allowed(r, "POST");
    return;
  } else {
    rc = change(m, name, 0, strcmp(action, "/enable") == 0, err, sizeof(err));
    if (strcmp(action, "/drain") == 0)
      type = WSB_CTL_FAILOVER_BACKEND;
  }
  if (rc != 0) {
    wsb_admin_error(r, 500, err);
    return;
  }
  for (size_t i = 0; type >= 0 && i < n; i++) {
    struct wsb_control_msg msg = {.type = (uint32_t)type, .len = sizeof(msg), .slot = slots[i]};
    wsb_workers_send(&m->workers, -1, &msg);
  }
  wsb_log_info("admin: backend %s (%zu addresses) changed: %s%s", name, n,
               action ? action + 1 : llhttp_method_name((llhttp_method_t)req->method),
               action == NULL && req->method == HTTP_DELETE ? mode : "");
  if (action == NULL && req->method == HTTP_DELETE) {
    struct wsb_json j;
    if (!json_begin(&j, r))
      return;
    wsb_json_object_begin(&j);
    wsb_json_key(&j, "deleted");
    wsb_json_cstring(&j, name);
    wsb_json_key(&j, "sessions");
    wsb_json_cstring(&j, mode);
    wsb_json_object_end(&j);
    reply_json(r, 200, &j);
  } else {
    section_list(m, name, r);
  }
}

static void backends_route(struct master *m, const struct wsb_admin_request *req,
                           struct wsb_admin_reply *r) {
  const char *rest = req->path + strlen("/api/v1/backends");
  if (*rest == '\0') {
    if (req->method == HTTP_GET)
      backends_list(m, r);
    else if (req->method == HTTP_POST)
      backend_add(m, req, r);
    else
      method_not_allowed(r, "GET, POST");
    return;
  }
  if (*rest != '/') {
    wsb_admin_error(r, 404, "no such path");
    return;
  }
  char name[WSB_NAME_MAX + 1];
  const char *action = strchr(rest + 1, '/');
  size_t len = action ? (size_t)(action - rest - 1) : strlen(rest + 1);
  if (len == 0 || len >= sizeof(name)) {
    wsb_admin_error(r, 404, "no such backend");
    return;
  }
  memcpy(name, rest + 1, len);
  name[len] = '\0';
  int slot = find_backend(m, name);
  if (slot < 0 && section_of_addresses(m, name)) {
    section_route(m, name, action, req, r);
    return;
  }
  if (slot < 0) {
    wsb_admin_error(r, 404, "no such backend");
    return;
  }
  if (action == NULL) {
    if (req->method == HTTP_GET)
      backend_one(m, slot, r);
    else if (req->method == HTTP_DELETE)
      backend_delete(m, slot, req, r);
    else if (req->method == HTTP_PATCH)
      backend_patch(m, slot, req, r);
    else
      method_not_allowed(r, "GET, PATCH, DELETE");
    return;
  }
  bool enable = strcmp(action, "/enable") == 0, disable = strcmp(action, "/disable") == 0;
  if (!enable && !disable && strcmp(action, "/drain") != 0) {
    wsb_admin_error(r, 404, "no such path");
    return;
  }
  if (req->method != HTTP_POST)
    method_not_allowed(r, "POST");
  else if (enable || disable)
    backend_set_enabled(m, slot, enable, r);
  else {
    /* Drain: no new sessions, then the workers move the live ones over, paced. */
    backend_set_enabled(m, slot, false, r);
    if (r->status != 200)
      return;
    free(r->body);
    *r = (struct wsb_admin_reply){0};
    struct wsb_control_msg msg = {
        .type = WSB_CTL_FAILOVER_BACKEND, .len = sizeof(msg), .slot = slot};
    wsb_log_info("admin: draining backend %s", m->table->backends[slot].name);
    accepted(r, "draining", wsb_workers_send(&m->workers, -1, &msg));
  }
}

/* ---- session lists: one page, asked of each worker in turn ---- */

/* Pages are bounded so that listing 100,000 sessions costs the master a page at a time: ?limit=
   above PAGE_MAX gets PAGE_MAX, and the lists being put together may hold at most LIST_BUDGET
   sessions between them (about 1.5 MiB, plus one page of JSON while it is written); a request
   past that is answered 503 at once. A worker that has not answered within STEP_TIMEOUT_MS makes
   the list partial and the next worker is asked. */
#define PAGE_MAX        1000
#define LIST_BUDGET     4000
#define STEP_TIMEOUT_MS 1000

/* The longest one session's JSON can be: every string byte escaped as \u00XX, numbers at 20
   digits, keys and punctuation well under 256 bytes. */
#define SESSION_JSON_MAX                                               \
  (256 +                                                               \
   6 * (sizeof(((struct wsb_session_info *)0)->client) +               \
        sizeof(((struct wsb_session_info *)0)->path) + WSB_NAME_MAX) + \
   7 * 20 + 32)

struct list_op {
  struct list_op *next;
  struct master *m;
  uint64_t request; /* of the step waiting for its worker's answer */
  uint64_t conn;
  bool one;        /* GET /api/v1/sessions/{id} */
  bool partial;    /* a worker did not answer, or could not */
  uint64_t id;     /* one: the session */
  int32_t slot;    /* only this backend's sessions, or -1 */
  unsigned worker; /* the worker slot asked now; sessions are listed in id order, and a
                      session's id starts with its worker's slot */
  uint64_t skip;   /* matching sessions of the workers still to ask to pass over */
  uint64_t offset;
  uint64_t limit;
  uint64_t total; /* matching sessions of the workers asked so far */
  size_t n;
  size_t cap;    /* entries reserved: limit, or 1 for one */
  size_t step_n; /* entries the worker asked now has sent so far */
  uv_timer_t timer;
  struct wsb_session_info entries[];
};

static void session_json(struct master *m, struct wsb_json *j, const struct wsb_session_info *e) {
  char id[17], ts[96];
  snprintf(id, sizeof(id), "%016llx", (unsigned long long)e->id);
  time_t secs = (time_t)(e->started_unix_ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(e->started_unix_ms % 1000));
  wsb_json_object_begin(j);
  wsb_json_key(j, "id");
  wsb_json_cstring(j, id);
  wsb_json_key(j, "worker");
  wsb_json_uint(j, e->worker);
  wsb_json_key(j, "client");
  wsb_json_string(j, e->client, strnlen(e->client, sizeof(e->client)));
  wsb_json_key(j, "path");
  wsb_json_string(j, e->path, strnlen(e->path, sizeof(e->path)));
  wsb_json_key(j, "backend");
  if (e->backend_slot >= 0 && e->backend_slot < WSB_SHM_MAX_BACKENDS &&
      m->table->backends[e->backend_slot].in_use)
    wsb_json_cstring(j, m->table->backends[e->backend_slot].name);
  else
    wsb_json_null(j); /* moving to another backend right now, or its backend was removed */
  wsb_json_key(j, "started");
  wsb_json_cstring(j, ts);
  wsb_json_key(j, "messages_in");
  wsb_json_uint(j, e->messages_in);
  wsb_json_key(j, "messages_out");
  wsb_json_uint(j, e->messages_out);
  wsb_json_key(j, "bytes_in");
  wsb_json_uint(j, e->bytes_in);
  wsb_json_key(j, "bytes_out");
  wsb_json_uint(j, e->bytes_out);
  wsb_json_key(j, "failovers");
  wsb_json_uint(j, e->failovers);
  wsb_json_object_end(j);
}

static void on_list_timer_closed(uv_handle_t *h) {
  free(h->data);
}

static void on_list_timeout(uv_timer_t *t);

/* Takes op off the master's lists; it is freed once its timer has closed. */
static void list_end(struct list_op *op) {
  for (struct list_op **p = &op->m->lists; *p != NULL; p = &(*p)->next)
    if (*p == op) {
      *p = op->next;
      break;
    }
  uv_close((uv_handle_t *)&op->timer, on_list_timer_closed);
}

static void list_answer(struct list_op *op, struct wsb_admin_reply *r) {
  struct master *m = op->m;
  struct wsb_json j;
  if (op->one && op->n == 0) {
    wsb_admin_error(r, op->partial ? 504 : 404,
                    op->partial ? "its worker did not answer in time" : "no such session");
  } else if (json_begin_sized(&j, r, 1024 + op->n * SESSION_JSON_MAX)) {
    if (op->one) {
      session_json(m, &j, &op->entries[0]);
    } else {
      wsb_json_object_begin(&j);
      wsb_json_key(&j, "total");
      wsb_json_uint(&j, op->total);
      wsb_json_key(&j, "partial");
      wsb_json_bool(&j, op->partial);
      wsb_json_key(&j, "offset");
      wsb_json_uint(&j, op->offset);
      wsb_json_key(&j, "limit");
      wsb_json_uint(&j, op->limit);
      /* Where the next page starts, or null after the last one (or an empty page). */
      wsb_json_key(&j, "next_offset");
      if (op->n > 0 && op->offset + op->n < op->total)
        wsb_json_uint(&j, op->offset + op->n);
      else
        wsb_json_null(&j);
      wsb_json_key(&j, "sessions");
      wsb_json_array_begin(&j);
      for (size_t i = 0; i < op->n; i++)
        session_json(m, &j, &op->entries[i]);
      wsb_json_array_end(&j);
      wsb_json_object_end(&j);
    }
    reply_json(r, 200, &j);
  }
}

static void finish_list(struct list_op *op) {
  struct wsb_admin_reply r = {0};
  list_answer(op, &r);
  list_end(op);
  wsb_admin_complete(&op->m->admin, op->conn, &r);
}

/* Asks the next running worker for its part of the page; false when none is left. */
static bool list_ask(struct list_op *op) {
  struct master *m = op->m;
  for (; op->worker < m->shm->nworkers; op->worker++) {
    const struct wsb_worker_proc *w = &m->workers.procs[op->worker];
    if ((op->one && op->worker != (op->id >> 52)) || w->pid == 0 || w->control_fd < 0)
      continue; /* a worker not running has no sessions */
    struct wsb_control_msg msg = {
        .type = WSB_CTL_LIST_SESSIONS,
        .len = sizeof(msg),
        .request = ++m->next_request,
        .session = op->id,
        .one = op->one,
        .slot = op->slot,
        .skip = op->skip < UINT32_MAX ? (uint32_t)op->skip : UINT32_MAX,
        .limit = (uint32_t)(op->cap - op->n),
    };
    if (wsb_workers_send(&m->workers, (int)op->worker, &msg) == 1) {
      op->request = msg.request;
      op->step_n = 0;
      uv_timer_start(&op->timer, on_list_timeout, STEP_TIMEOUT_MS, 0);
      return true;
    }
    op->partial = true;
  }
  return false;
}

static void list_step(struct list_op *op) {
  if (!list_ask(op))
    finish_list(op);
}

static void on_list_timeout(uv_timer_t *t) {
  struct list_op *op = t->data;
  wsb_log_warn("session list: worker %u did not answer in time", op->worker);
  op->partial = true;
  op->request = 0; /* what it still sends is dropped */
  op->worker++;
  list_step(op);
}

void wsb_api_on_chunk(void *ctx, const struct wsb_sessions_chunk *chunk) {
  struct master *m = ctx;
  struct list_op *op = m->lists;
  while (op != NULL && (op->request == 0 || op->request != chunk->request))
    op = op->next;
  if (op == NULL)
    return; /* an answer after its request timed out */
  size_t take = chunk->count < op->cap - op->n ? chunk->count : op->cap - op->n;
  memcpy(&op->entries[op->n], chunk->entries, take * sizeof(chunk->entries[0]));
  op->n += take;
  op->step_n += chunk->count;
  if (!chunk->last)
    return;
  if (chunk->error != 0) {
    wsb_log_warn("session list: worker %u could not list: %s", op->worker,
                 wsb_strerror(chunk->error));
    op->partial = true;
  } else if (op->step_n != chunk->described || op->step_n > op->cap) {
    wsb_log_error("session list: worker %u described %u sessions, %zu arrived", op->worker,
                  chunk->described, op->step_n);
    op->partial = true;
  }
  op->total += chunk->matched;
  op->skip -= op->skip < chunk->matched ? op->skip : chunk->matched;
  op->worker++;
  list_step(op);
}

void wsb_api_stop(struct master *m) {
  while (m->lists != NULL) {
    m->lists->partial = true;
    finish_list(m->lists);
  }
  /* A lookup not started yet calls back at once with UV_EAI_CANCELED; a running one cannot be
     stopped, and the loop waits for it (the resolver's own timeout bounds it). */
  for (struct add_op *op = m->adds; op != NULL; op = op->next)
    uv_cancel((uv_req_t *)&op->req);
}

static bool query_uint(const char *query, const char *key, uint64_t *v) {
  char buf[24], *end;
  int rc = query_value(query, key, buf, sizeof(buf), NULL);
  if (rc == -ENOENT)
    return true; /* absent: the default stays */
  errno = 0;
  *v = strtoull(buf, &end, 10);
  return rc == 0 && buf[0] >= '0' && buf[0] <= '9' && *end == '\0' && errno == 0;
}

/* GET /api/v1/sessions[?backend=&limit=&offset=] or one session: asks the workers in turn. */
static void list_sessions(struct master *m, const struct wsb_admin_request *req, bool one,
                          uint64_t id, struct wsb_admin_reply *r) {
  uint64_t limit = PAGE_MAX, offset = 0;
  int slot = -1;
  char name[WSB_NAME_MAX + 1];
  if (!query_uint(req->query, "limit", &limit) || !query_uint(req->query, "offset", &offset)) {
    wsb_admin_error(r, 400, "limit= and offset= take whole numbers");
    return;
  }
  if (query_get(req->query, "backend", name, sizeof(name)) && (slot = find_backend(m, name)) < 0) {
    wsb_admin_error(r, 404, "no such backend");
    return;
  }
  limit = limit < PAGE_MAX ? limit : PAGE_MAX;
  size_t cap = one ? 1 : (size_t)limit, held = 0;
  for (const struct list_op *o = m->lists; o != NULL; o = o->next)
    held += o->cap > 0 ? o->cap : 1;
  if (held + (cap > 0 ? cap : 1) > LIST_BUDGET) {
    wsb_admin_error(r, 503, "too many session lists at once: try again");
    return;
  }
  struct list_op *op = malloc(sizeof(*op) + cap * sizeof(op->entries[0]));
  if (op == NULL) {
    wsb_admin_error(r, 500, "out of memory");
    return;
  }
  *op = (struct list_op){.m = m,
                         .conn = req->conn,
                         .one = one,
                         .id = id,
                         .slot = slot,
                         .skip = one ? 0 : offset,
                         .offset = one ? 0 : offset,
                         .limit = limit,
                         .cap = cap};
  op->next = m->lists;
  m->lists = op;
  uv_timer_init(&m->loop, &op->timer);
  op->timer.data = op;
  if (list_ask(op)) {
    r->status = 0; /* answered once the last worker has, each within STEP_TIMEOUT_MS */
    return;
  }
  list_answer(op, r); /* no worker to ask: answered now, not deferred */
  list_end(op);
}

/* DELETE's ?code= (1000 when absent) and ?reason= (percent-decoded) into msg. False once a 400
   is answered: a code SPEC.md does not list, or a reason that would not fit a close frame. */
static bool read_close(const struct wsb_admin_request *req, struct wsb_control_msg *msg,
                       struct wsb_admin_reply *r) {
  char code[8];
  size_t len = 0;
  int rc = query_value(req->query, "code", code, sizeof(code), &len);
  msg->code = WSB_CLOSE_NORMAL;
  if (rc != -ENOENT && (rc != 0 || wsb_close_code_from_text(code, len, &msg->code) != 0)) {
    wsb_admin_error(r, 400, "code= takes 1000-1003, 1007-1009, 1011-1014 or 3000-4999");
    return false;
  }
  /* Room for one byte more than a reason may have, so a long one is told apart from a bad one. */
  char reason[WSB_CLOSE_REASON_MAX + 2];
  rc = query_value(req->query, "reason", reason, sizeof(reason), &len);
  if (rc == -ENOENT)
    return true;
  if (rc == 0)
    rc = wsb_close_reason_check(reason, len);
  if (rc != 0) {
    wsb_admin_error(r, 400,
                    rc == -E2BIG      ? "reason= is at most 123 bytes once decoded"
                    : rc == WSB_EUTF8 ? "reason= must be UTF-8"
                                      : "reason= has a bad %-escape or a NUL byte");
    return false;
  }
  _Static_assert(sizeof(msg->reason) > WSB_CLOSE_REASON_MAX, "a reason fits the command");
  memcpy(msg->reason, reason, len + 1);
  return true;
}

/* /api/v1/sessions/{id} and /api/v1/sessions/{id}/failover: commands to the session's worker,
   found from the id alone. The worker acts if the session still exists: answered 202. */
static void sessions_route(struct master *m, const struct wsb_admin_request *req,
                           struct wsb_admin_reply *r) {
  const char *rest = req->path + strlen("/api/v1/sessions");
  if (*rest == '\0') {
    if (req->method == HTTP_GET)
      list_sessions(m, req, false, 0, r);
    else
      method_not_allowed(r, "GET");
    return;
  }
  char *end;
  errno = 0;
  uint64_t id = strtoull(rest + 1, &end, 16);
  if (*rest != '/' || end != rest + 17 || errno != 0 ||
      (*end != '\0' && strcmp(end, "/failover"))) {
    wsb_admin_error(r, 404, "no such session: ids are 16 hex digits");
    return;
  }
  struct wsb_control_msg msg = {.len = sizeof(msg), .session = id, .slot = -1};
  int worker = (int)(id >> 52);
  if (*end == '\0') {
    if (req->method == HTTP_GET) {
      list_sessions(m, req, true, id, r);
      return;
    }
    if (req->method != HTTP_DELETE) {
      method_not_allowed(r, "GET, DELETE");
      return;
    }
    if (!read_close(req, &msg, r))
      return;
    msg.type = WSB_CTL_KILL_SESSION;
  } else {
    if (req->method != HTTP_POST) {
      method_not_allowed(r, "POST");
      return;
    }
    char target[WSB_NAME_MAX + 1];
    bool named = query_get(req->query, "backend", target, sizeof(target));
    if (req->body_len > 0) {
      static const char *const known[] = {"backend", NULL};
      struct wsb_json_token tokens[BODY_TOKENS];
      struct wsb_json_doc doc;
      if (!parse_body(req, &doc, tokens, known, r))
        return;
      int rc = wsb_json_get_string(&doc, wsb_json_member(&doc, 0, "backend"), target,
                                   sizeof(target), NULL);
      if (!field_ok(rc, "backend", "a backend name", true, r))
        return;
      named = named || rc == 0;
    }
    if (named) {
      msg.slot = find_backend(m, target);
      if (msg.slot < 0) {
        wsb_admin_error(r, 404, "no such backend");
        return;
      }
    }
    msg.type = WSB_CTL_FAILOVER_SESSION;
  }
  unsigned reached = wsb_workers_send(&m->workers, worker, &msg);
  if (reached == 0)
    wsb_admin_error(r, 404, "no such session: its worker is not running");
  else
    accepted(r, msg.type == WSB_CTL_KILL_SESSION ? "closing" : "moving", reached);
}

/* ---- /api/v1/reload ---- */

/* Discarded runtime changes listed in the answer at most (each line names a backend and at most
   two URLs: 64 of them stay well inside JSON_MAX). */
#define DISCARDED_MAX 64

static void reload_route(struct master *m, const struct wsb_admin_request *req,
                         struct wsb_admin_reply *r) {
  if (req->method != HTTP_POST) {
    method_not_allowed(r, "POST");
    return;
  }
  struct wsb_config_errors errs = {0}, discarded = {0};
  int rc = wsb_master_reload(m, &errs, &discarded);
  struct wsb_json j;
  if (json_begin(&j, r)) {
    wsb_json_object_begin(&j);
    if (rc != 0) {
      wsb_json_key(&j, "error");
      wsb_json_cstring(&j, "reload failed: the running configuration stays");
    }
    wsb_json_key(&j, "result");
    wsb_json_cstring(&j, rc == 0 ? "ok" : "error");
    wsb_json_key(&j, "generation");
    wsb_json_uint(&j, wsb_shm_generation(m->shm));
    wsb_json_key(&j, "errors");
    wsb_json_array_begin(&j);
    for (size_t i = 0; i < errs.n; i++)
      wsb_json_cstring(&j, errs.lines[i]);
    wsb_json_array_end(&j);
    /* Runtime changes (admin API) the file did not have, gone with this reload. */
    wsb_json_key(&j, "discarded");
    wsb_json_array_begin(&j);
    /* Bounded, so a successful reload is never answered "too large": the log has them all. */
    for (size_t i = 0; i < discarded.n && i < DISCARDED_MAX; i++)
      wsb_json_cstring(&j, discarded.lines[i]);
    if (discarded.n > DISCARDED_MAX) {
      char more[64];
      snprintf(more, sizeof(more), "and %zu more: see the log", discarded.n - DISCARDED_MAX);
      wsb_json_cstring(&j, more);
    }
    wsb_json_array_end(&j);
    wsb_json_object_end(&j);
    reply_json(r, rc == 0 ? 200 : 422, &j);
  }
  wsb_config_errors_free(&errs);
  wsb_config_errors_free(&discarded);
}

/* ---- /metrics: Prometheus text format 0.0.4 ---- */

struct text {
  char *p;
  size_t len;
  size_t cap;
  bool failed;
};

__attribute__((format(printf, 2, 3))) static void out(struct text *t, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = t->failed ? 0 : vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (t->failed || n < 0)
      return;
    if ((size_t)n < t->cap - t->len) {
      t->len += (size_t)n;
      return;
    }
    char *p = realloc(t->p, t->cap * 2 + (size_t)n);
    if (p == NULL) {
      t->failed = true;
      return;
    }
    t->p = p;
    t->cap = t->cap * 2 + (size_t)n;
  }
}

static void family(struct text *t, const char *name, const char *type, const char *help) {
  out(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Label values escaped as the text format wants: backslash, double quote, newline. */
static const char *label(const char *v, char *buf, size_t cap) {
  size_t o = 0;
  for (; *v && o + 2 < cap; v++) {
    if (*v == '\\' || *v == '"' || *v == '\n')
      buf[o++] = '\\';
    buf[o++] = *v == '\n' ? 'n' : *v;
  }
  buf[o] = '\0';
  return buf;
}

static const char *const tls_error_labels[] = {
#define WSB_XX(name, label) label,
    WSB_TLS_ERRORS(WSB_XX)
#undef WSB_XX
};

static void metrics(struct master *m, struct wsb_admin_reply *r) {
  struct text t = {.p = malloc(16384), .cap = 16384};
  if (t.p == NULL) {
    wsb_admin_error(r, 500, "out of memory");
    return;
  }
  const struct wsb_shm *shm = m->shm;
  char b[WSB_NAME_MAX * 2 + 1];
  static const char *const reasons[] = WSB_FAILOVER_REASON_NAMES;
  static const char *const dirs[] = {"client_to_backend", "backend_to_client"};

  family(&t, "wsbal_sessions", "gauge", "Live sessions per backend.");
  for (uint32_t s = 0; s < m->table->nslots; s++)
    if (m->table->backends[s].in_use)
      out(&t, "wsbal_sessions{backend=\"%s\"} %" PRIu64 "\n",
          label(m->table->backends[s].name, b, sizeof(b)), wsb_shm_backend_live(shm, s));
  family(&t, "wsbal_sessions_total", "counter", "Sessions started per backend.");
  for (uint32_t s = 0; s < m->table->nslots; s++)
    if (m->table->backends[s].in_use)
      out(&t, "wsbal_sessions_total{backend=\"%s\"} %" PRIu64 "\n",
          label(m->table->backends[s].name, b, sizeof(b)),
          SLOT_SUM(m, s, sessions_total[s], sessions_total));
  family(&t, "wsbal_handshakes_total", "counter", "Client upgrade requests by result.");
  for (int i = 0; i < WSB_HS_COUNT; i++)
    out(&t, "wsbal_handshakes_total{result=\"%s\"} %" PRIu64 "\n", handshake_labels[i],
        SUM(shm, handshakes[i]));
  static const char *const tls_sides[] = WSB_TLS_SIDE_NAMES;
  family(&t, "wsbal_tls_handshakes_total", "counter",
         "Completed TLS handshakes, by side (client: wss listeners, backend: wss backends) and "
         "whether the session was resumed.");
  for (int sd = 0; sd < WSB_TLS_SIDES; sd++)
    for (int res = 0; res < 2; res++)
      out(&t, "wsbal_tls_handshakes_total{side=\"%s\",resumed=\"%s\"} %" PRIu64 "\n", tls_sides[sd],
          res ? "true" : "false", SUM(shm, tls_handshakes[sd][res]));
  family(&t, "wsbal_tls_handshake_errors_total", "counter",
         "Failed TLS handshakes, by side and reason.");
  for (int sd = 0; sd < WSB_TLS_SIDES; sd++)
    for (int e = 0; e < WSB_TLS_ERR_COUNT; e++)
      out(&t, "wsbal_tls_handshake_errors_total{side=\"%s\",reason=\"%s\"} %" PRIu64 "\n",
          tls_sides[sd], tls_error_labels[e], SUM(shm, tls_errors[sd][e]));
  family(&t, "wsbal_failovers_total", "counter", "Sessions moved away from a backend, by reason.");
  for (uint32_t s = 0; s < m->table->nslots; s++)
    for (int i = 0; m->table->backends[s].in_use && i < WSB_FAILOVER_REASONS; i++)
      out(&t, "wsbal_failovers_total{backend=\"%s\",reason=\"%s\"} %" PRIu64 "\n",
          label(m->table->backends[s].name, b, sizeof(b)), reasons[i],
          SLOT_SUM(m, s, failovers[s][i], failovers[i]));
  family(&t, "wsbal_failover_failures_total", "counter",
         "Sessions closed with 1013 because no backend took them.");
  out(&t, "wsbal_failover_failures_total %" PRIu64 "\n", SUM(shm, failover_failures));
  family(&t, "wsbal_failover_buffer_bytes", "gauge",
         "Memory held in failover replay windows (client messages not answered yet).");
  out(&t, "wsbal_failover_buffer_bytes %" PRIu64 "\n", SUM(shm, failover_buffer_bytes));
  family(&t, "wsbal_messages_total", "counter", "Messages relayed, by direction.");
  for (int d = 0; d < WSB_DIR_COUNT; d++)
    out(&t, "wsbal_messages_total{direction=\"%s\"} %" PRIu64 "\n", dirs[d], SUM(shm, messages[d]));
  family(&t, "wsbal_bytes_total", "counter", "Bytes of frames relayed, by direction.");
  for (int d = 0; d < WSB_DIR_COUNT; d++)
    out(&t, "wsbal_bytes_total{direction=\"%s\"} %" PRIu64 "\n", dirs[d], SUM(shm, bytes[d]));
  family(&t, "wsbal_backend_up", "gauge", "1 when the backend is considered up.");
  family(&t, "wsbal_backend_enabled", "gauge", "1 when the backend takes new sessions.");
  for (uint32_t s = 0; s < m->table->nslots; s++) {
    if (!m->table->backends[s].in_use)
      continue;
    label(m->table->backends[s].name, b, sizeof(b));
    out(&t, "wsbal_backend_up{backend=\"%s\"} %d\n", b, atomic_load(&shm->backend_up[s]) ? 1 : 0);
    out(&t, "wsbal_backend_enabled{backend=\"%s\"} %d\n", b, m->table->backends[s].enabled ? 1 : 0);
  }
  family(&t, "wsbal_backend_health_checks_total", "counter", "Health checks by result.");
  for (uint32_t s = 0; s < m->table->nslots; s++)
    for (int i = 0; m->table->backends[s].in_use && i < WSB_PROBE_BAD_BODY; i++)
      out(&t, "wsbal_backend_health_checks_total{backend=\"%s\",result=\"%s\"} %" PRIu64 "\n",
          label(m->table->backends[s].name, b, sizeof(b)), wsb_probe_result_name(i),
          wsb_health_checks(m->health, s, i));
  family(&t, "wsbal_backend_load_reports_total", "counter",
         "Polls of the backends' load reports (load_report_path) by result.");
  for (uint32_t s = 0; s < m->table->nslots; s++)
    for (int i = 0; m->table->backends[s].in_use && i < WSB_PROBE_RESULT_COUNT; i++)
      out(&t, "wsbal_backend_load_reports_total{backend=\"%s\",result=\"%s\"} %" PRIu64 "\n",
          label(m->table->backends[s].name, b, sizeof(b)), wsb_probe_result_name(i),
          wsb_health_reports(m->health, s, i));
  family(&t, "wsbal_backend_connect_seconds", "histogram",
         "Time to connect and upgrade a backend, for the connections that got their 101.");
  static const uint64_t connect_bounds[] = WSB_CONNECT_BUCKET_MS;
  for (uint32_t s = 0; s < m->table->nslots; s++) {
    if (!m->table->backends[s].in_use)
      continue;
    label(m->table->backends[s].name, b, sizeof(b));
    for (int i = 0; i < WSB_CONNECT_BUCKETS - 1; i++)
      out(&t, "wsbal_backend_connect_seconds_bucket{backend=\"%s\",le=\"%g\"} %" PRIu64 "\n", b,
          connect_bounds[i] / 1000.0, SLOT_SUM(m, s, connect_buckets[s][i], connect_buckets[i]));
    out(&t, "wsbal_backend_connect_seconds_bucket{backend=\"%s\",le=\"+Inf\"} %" PRIu64 "\n", b,
        SLOT_SUM(m, s, connect_buckets[s][WSB_CONNECT_BUCKETS - 1],
                 connect_buckets[WSB_CONNECT_BUCKETS - 1]));
    out(&t, "wsbal_backend_connect_seconds_sum{backend=\"%s\"} %.6f\n", b,
        (double)SLOT_SUM(m, s, connect_us[s], connect_us) / 1e6);
    out(&t, "wsbal_backend_connect_seconds_count{backend=\"%s\"} %" PRIu64 "\n", b,
        SLOT_SUM(m, s, connect_count[s], connect_count));
  }
  family(&t, "wsbal_failover_seconds", "histogram", "Time from a backend's loss to the new 101.");
  static const uint64_t bounds[] = WSB_FAILOVER_BUCKET_MS;
  for (int i = 0; i < WSB_FAILOVER_BUCKETS; i++) {
    if (i < WSB_FAILOVER_BUCKETS - 1)
      out(&t, "wsbal_failover_seconds_bucket{le=\"%g\"} %" PRIu64 "\n", bounds[i] / 1000.0,
          SUM(shm, failover_buckets[i]));
    else
      out(&t, "wsbal_failover_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n",
          SUM(shm, failover_buckets[i]));
  }
  out(&t, "wsbal_failover_seconds_sum %.6f\n", (double)SUM(shm, failover_us) / 1e6);
  out(&t, "wsbal_failover_seconds_count %" PRIu64 "\n", SUM(shm, failover_count));
  family(&t, "wsbal_workers", "gauge", "Worker processes running the current configuration.");
  out(&t, "wsbal_workers %u\n", wsb_workers_current(&m->workers));
  family(&t, "wsbal_worker_restarts_total", "counter", "Workers respawned after dying.");
  out(&t, "wsbal_worker_restarts_total %" PRIu64 "\n", atomic_load(&shm->worker_restarts));
  family(&t, "wsbal_access_log_errors_total", "counter",
         "Access log opens that failed (start, reload, SIGUSR1); lines went on to the file "
         "open before, if any.");
  out(&t, "wsbal_access_log_errors_total %" PRIu64 "\n", SUM(shm, access_log_errors));
  family(&t, "wsbal_config_reloads_total", "counter", "Reloads by result.");
  out(&t, "wsbal_config_reloads_total{result=\"ok\"} %" PRIu64 "\n", atomic_load(&shm->reloads_ok));
  out(&t, "wsbal_config_reloads_total{result=\"error\"} %" PRIu64 "\n",
      atomic_load(&shm->reloads_error));
  family(&t, "wsbal_resolves_total", "counter",
         "Background lookups of backend host names (resolve_interval, reload), any result.");
  out(&t, "wsbal_resolves_total %" PRIu64 "\n", m->disc.lookups);
  family(&t, "wsbal_resolve_errors_total", "counter",
         "Background lookups that failed; the backend kept its previous addresses.");
  out(&t, "wsbal_resolve_errors_total %" PRIu64 "\n", m->disc.errors);
  family(&t, "wsbal_config_generation", "gauge", "Generation of the published backend table.");
  out(&t, "wsbal_config_generation %" PRIu64 "\n", wsb_shm_generation(shm));
  family(&t, "wsbal_build_info", "gauge", "The running version.");
  out(&t, "wsbal_build_info{version=\"%s\"} 1\n", WSB_VERSION);
  if (t.failed) {
    free(t.p);
    wsb_admin_error(r, 500, "out of memory");
    return;
  }
  r->status = 200;
  r->content_type = "text/plain; version=0.0.4; charset=utf-8";
  r->body = t.p;
  r->len = t.len;
}

/* ---- / : the status page, built in from master/status_page.html ---- */

extern const char wsb_status_page[];
extern const unsigned long wsb_status_page_len;

static void status_page(struct wsb_admin_reply *r) {
  char *body = malloc(wsb_status_page_len);
  if (body == NULL) {
    wsb_admin_error(r, 500, "out of memory");
    return;
  }
  memcpy(body, wsb_status_page, wsb_status_page_len);
  r->status = 200;
  r->content_type = "text/html; charset=utf-8";
  r->body = body;
  r->len = wsb_status_page_len;
}

/* ---- routing ---- */

void wsb_api_route(void *ctx, const struct wsb_admin_request *req, struct wsb_admin_reply *r) {
  struct master *m = ctx;
  const char *p = req->path;
  bool get = req->method == HTTP_GET || req->method == HTTP_HEAD;
  if (strcmp(p, "/healthz") == 0 || strcmp(p, "/readyz") == 0 || strcmp(p, "/metrics") == 0 ||
      strcmp(p, "/api/v1/status") == 0) {
    if (!get)
      method_not_allowed(r, "GET, HEAD");
    else if (p[1] == 'h')
      healthz(m, r);
    else if (p[1] == 'r')
      readyz(m, r);
    else if (p[1] == 'm')
      metrics(m, r);
    else
      status(m, r);
  } else if (strcmp(p, "/") == 0) {
    if (!get)
      method_not_allowed(r, "GET, HEAD");
    else
      status_page(r);
  } else if (strncmp(p, "/api/v1/backends", 16) == 0) {
    backends_route(m, req, r);
  } else if (strcmp(p, "/api/v1/reload") == 0) {
    reload_route(m, req, r);
  } else if (strncmp(p, "/api/v1/sessions", 16) == 0) {
    sessions_route(m, req, r);
  } else {
    wsb_admin_error(r, 404, "no such path");
  }
}
