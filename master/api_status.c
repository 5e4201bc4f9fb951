/* The admin API on the master itself: /healthz, /readyz, status, reload, and the status page. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "log.h"

static void status_word(struct wsb_admin_reply *r, const char *word) {
  struct wsb_json j;
  if (!wsb__api_json_begin(&j, r))
    return;
  wsb_json_object_begin(&j);
  wsb_json_key(&j, "status");
  wsb_json_cstring(&j, word);
  wsb_json_object_end(&j);
  wsb__api_reply_json(r, 200, &j);
}

void wsb__api_healthz(struct api_call *c) {
  status_word(c->r, c->m->stopping ? "stopping" : "alive");
}

void wsb__api_readyz(struct api_call *c) {
  struct master *m = c->m;
  bool backend = false;
  for (uint32_t s = 0; s < m->table->nslots; s++) {
    const struct wsb_shm_backend *b = &m->table->backends[s];
    backend = backend || (b->in_use && b->enabled && atomic_load(&m->shm->backend_up[s]));
  }
  if (m->stopping)
    wsb_admin_error(c->r, 503, "stopping");
  else if (wsb_workers_current(&m->workers) == 0)
    wsb_admin_error(c->r, 503, "no worker is listening");
  else if (!backend)
    wsb_admin_error(c->r, 503, "no backend available");
  else
    status_word(c->r, "ready");
}

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

static void workers(struct master *m, struct wsb_json *j) {
  const struct wsb_shm *shm = m->shm;
  wsb_json_key(j, "workers");
  wsb_json_array_begin(j);
  for (unsigned s = 0; s < shm->nworkers; s++) {
    const struct wsb_worker_proc *w = &m->workers.procs[s];
    if (!w->in_use || w->pid == 0)
      continue;
    wsb_json_object_begin(j);
    wsb_json_key(j, "slot");
    wsb_json_uint(j, s);
    wsb_json_key(j, "pid");
    wsb_json_uint(j, (uint64_t)w->pid);
    wsb_json_key(j, "sessions");
    wsb_json_uint(j, atomic_load(&shm->workers[s].live));
    wsb_json_key(j, "draining");
    wsb_json_bool(j, w->retiring);
    wsb_json_object_end(j);
  }
  wsb_json_array_end(j);
}

static void totals(struct master *m, struct wsb_json *j) {
  const struct wsb_shm *shm = m->shm;
  wsb_json_key(j, "totals");
  wsb_json_object_begin(j);
  wsb_json_key(j, "sessions");
  wsb_json_uint(j, wsb_shm_live(shm));
  wsb_json_key(j, "handshakes");
  wsb_json_object_begin(j);
  for (int i = 0; i < WSB_HS_COUNT; i++) {
    wsb_json_key(j, wsb__api_handshake_label(i));
    wsb_json_uint(j, WSB_SHM_SUM(shm, handshakes[i]));
  }
  wsb_json_object_end(j);
  directions(j, "messages", WSB_SHM_SUM(shm, messages[WSB_DIR_TO_BACKEND]),
             WSB_SHM_SUM(shm, messages[WSB_DIR_TO_CLIENT]));
  directions(j, "bytes", WSB_SHM_SUM(shm, bytes[WSB_DIR_TO_BACKEND]),
             WSB_SHM_SUM(shm, bytes[WSB_DIR_TO_CLIENT]));
  uint64_t failovers = 0;
  for (uint32_t s = 0; s < WSB_SHM_MAX_BACKENDS; s++)
    for (int r = 0; r < WSB_FAILOVER_REASONS; r++)
      failovers += WSB_SHM_SUM(shm, failovers[s][r]);
  wsb_json_key(j, "failovers");
  wsb_json_uint(j, failovers);
  /* Plain HTTP requests answered ([listen] http = proxy), by status class. */
  wsb_json_key(j, "http_requests");
  wsb_json_object_begin(j);
  for (int k = 1; k <= 5; k++) {
    char name[4] = {(char)('0' + k), 'x', 'x', '\0'};
    wsb_json_key(j, name);
    wsb_json_uint(j, WSB_SHM_SUM(shm, http_requests[k]));
  }
  wsb_json_object_end(j);
  wsb_json_key(j, "failover_failures");
  wsb_json_uint(j, WSB_SHM_SUM(shm, failover_failures));
  wsb_json_key(j, "reloads");
  wsb_json_object_begin(j);
  wsb_json_key(j, "ok");
  wsb_json_uint(j, atomic_load(&shm->reloads_ok));
  wsb_json_key(j, "error");
  wsb_json_uint(j, atomic_load(&shm->reloads_error));
  wsb_json_object_end(j);
  wsb_json_key(j, "worker_restarts");
  wsb_json_uint(j, atomic_load(&shm->worker_restarts));
  wsb_json_object_end(j);
}

void wsb__api_status(struct api_call *c) {
  struct master *m = c->m;
  struct wsb_json j;
  if (!wsb__api_json_begin(&j, c->r))
    return;
  wsb_json_object_begin(&j);
  wsb_json_key(&j, "version");
  wsb_json_cstring(&j, WSB_VERSION);
  wsb_json_key(&j, "pid");
  wsb_json_uint(&j, (uint64_t)getpid());
  wsb_json_key(&j, "upgraded_sessions");
  wsb_json_uint(&j, WSB_SHM_SUM(m->shm, upgraded));
  wsb_json_key(&j, "uptime_s");
  wsb_json_uint(&j, (uv_now(&m->loop) - m->started_ms) / 1000);
  wsb_json_key(&j, "generation");
  wsb_json_uint(&j, wsb_shm_generation(m->shm));
  wsb_json_key(&j, "worker_balance");
  wsb_json_cstring(&j, m->cfg->wsbal.worker_balance == WSB_WORKER_PACK ? "pack" : "spread");
  wsb_json_key(&j, "workers_taking_new_sessions");
  wsb_json_uint(&j, wsb_pack_taking_new(&m->pack));
  workers(m, &j);
  totals(m, &j);
  wsb_json_object_end(&j);
  wsb__api_reply_json(c->r, 200, &j);
}

/* Discarded runtime changes listed in the answer at most (each line names a backend and at most
   two URLs: 64 of them stay well inside API_JSON_MAX). */
#define DISCARDED_MAX 64

static void lines(struct wsb_json *j, const char *key, const struct wsb_config_errors *e,
                  size_t most) {
  wsb_json_key(j, key);
  wsb_json_array_begin(j);
  for (size_t i = 0; i < e->n && i < most; i++)
    wsb_json_cstring(j, e->lines[i]);
  if (e->n > most) {
    char more[64];
    snprintf(more, sizeof(more), "and %zu more: see the log", e->n - most);
    wsb_json_cstring(j, more);
  }
  wsb_json_array_end(j);
}

void wsb__api_reload(struct api_call *c) {
  struct wsb_config_errors errs = {0}, discarded = {0};
  int rc = wsb_master_reload(c->m, &errs, &discarded);
  wsb_log_info("admin %s: reload %s, configuration generation %llu", c->req->peer,
               rc == 0 ? "done" : "failed", (unsigned long long)wsb_shm_generation(c->m->shm));
  struct wsb_json j;
  if (wsb__api_json_begin(&j, c->r)) {
    wsb_json_object_begin(&j);
    if (rc != 0) {
      wsb_json_key(&j, "error");
      wsb_json_cstring(&j, "reload failed: the running configuration stays");
    }
    wsb_json_key(&j, "result");
    wsb_json_cstring(&j, rc == 0 ? "ok" : "error");
    wsb_json_key(&j, "generation");
    wsb_json_uint(&j, wsb_shm_generation(c->m->shm));
    lines(&j, "errors", &errs, SIZE_MAX);
    /* Runtime changes (admin API) the file did not have, gone with this reload; bounded, so a
       successful reload is never answered "too large": the log has them all. */
    lines(&j, "discarded", &discarded, DISCARDED_MAX);
    wsb_json_object_end(&j);
    wsb__api_reply_json(c->r, rc == 0 ? 200 : 422, &j);
  }
  wsb_config_errors_free(&errs);
  wsb_config_errors_free(&discarded);
}

/* Answered when the new master is ready or has refused (upgrade.c). */
void wsb__api_upgrade(struct api_call *c) {
  char why[256];
  int rc = wsb_upgrade_start(c->m, c->req->conn, true, why, sizeof(why));
  if (rc != 0)
    wsb_admin_error(c->r, rc == -EBUSY ? 409 : rc == -ECANCELED ? 503 : 500, why);
}

/* Built in from master/status_page.html. */
extern const char wsb_status_page[];
extern const unsigned long wsb_status_page_len;

void wsb__api_status_page(struct api_call *c) {
  char *body = malloc(wsb_status_page_len);
  if (body == NULL) {
    wsb_admin_error(c->r, 500, "out of memory");
    return;
  }
  memcpy(body, wsb_status_page, wsb_status_page_len);
  c->r->status = 200;
  c->r->content_type = "text/html; charset=utf-8";
  /* The page's own <meta> policy, and what only a header can say: no other site may frame it
     (its buttons would be clicked through a page on top), no referrer leaves with a link. */
  c->r->headers =
      "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; "
      "style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
      "frame-ancestors 'none'\r\n"
      "X-Frame-Options: DENY\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: "
      "no-referrer\r\n";
  c->r->body = body;
  c->r->len = wsb_status_page_len;
}
