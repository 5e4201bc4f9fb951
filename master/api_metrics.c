/* The admin API's /metrics (Prometheus text 0.0.4) and the sums of the segment's counters. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

uint64_t wsb__api_sum_worker(const struct wsb_shm *shm, size_t offset) {
  uint64_t total = 0;
  unsigned n = atomic_load(&shm->slots_used);
  for (unsigned w = 0; w < n; w++)
    total += atomic_load_explicit(
        (const _Atomic uint64_t *)((const char *)&shm->workers[w] + offset), memory_order_relaxed);
  return total;
}

void wsb_api_adopt_slots(struct master *m, const struct wsb_shm_table *next) {
  for (uint32_t s = 0; s < next->nslots; s++) {
    const struct wsb_shm_backend *b = &next->backends[s];
    const struct wsb_shm_backend *was =
        m->table != NULL && s < m->table->nslots ? &m->table->backends[s] : NULL;
    if (!b->in_use ||
        (was != NULL && (was->in_use || was->retired) && strcmp(was->name, b->name) == 0))
      continue;
    struct wsb_slot_base *base = &m->slot_base[s];
    base->sessions_total = API_SUM(m->shm, sessions_total[s]);
    for (int r = 0; r < WSB_FAILOVER_REASONS; r++)
      base->failovers[r] = API_SUM(m->shm, failovers[s][r]);
    for (int i = 0; i < WSB_CONNECT_BUCKETS; i++)
      base->connect_buckets[i] = API_SUM(m->shm, connect_buckets[s][i]);
    base->connect_us = API_SUM(m->shm, connect_us[s]);
    base->connect_count = API_SUM(m->shm, connect_count[s]);
  }
}

static const char *const handshake_labels[] = {
#define WSB_XX(name, label) label,
    WSB_HANDSHAKE_RESULTS(WSB_XX)
#undef WSB_XX
};

const char *wsb__api_handshake_label(int result) {
  return handshake_labels[result];
}

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

void wsb__api_metrics(struct api_call *c) {
  struct master *m = c->m;
  struct wsb_admin_reply *r = c->r;
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
          API_SLOT_SUM(m, s, sessions_total[s], sessions_total));
  family(&t, "wsbal_handshakes_total", "counter", "Client upgrade requests by result.");
  for (int i = 0; i < WSB_HS_COUNT; i++)
    out(&t, "wsbal_handshakes_total{result=\"%s\"} %" PRIu64 "\n", wsb__api_handshake_label(i),
        API_SUM(shm, handshakes[i]));
  static const char *const tls_sides[] = WSB_TLS_SIDE_NAMES;
  family(&t, "wsbal_tls_handshakes_total", "counter",
         "Completed TLS handshakes, by side (client: wss listeners, backend: wss backends) and "
         "whether the session was resumed.");
  for (int sd = 0; sd < WSB_TLS_SIDES; sd++)
    for (int res = 0; res < 2; res++)
      out(&t, "wsbal_tls_handshakes_total{side=\"%s\",resumed=\"%s\"} %" PRIu64 "\n", tls_sides[sd],
          res ? "true" : "false", API_SUM(shm, tls_handshakes[sd][res]));
  family(&t, "wsbal_tls_handshake_errors_total", "counter",
         "Failed TLS handshakes, by side and reason.");
  for (int sd = 0; sd < WSB_TLS_SIDES; sd++)
    for (int e = 0; e < WSB_TLS_ERR_COUNT; e++)
      out(&t, "wsbal_tls_handshake_errors_total{side=\"%s\",reason=\"%s\"} %" PRIu64 "\n",
          tls_sides[sd], tls_error_labels[e], API_SUM(shm, tls_errors[sd][e]));
  family(&t, "wsbal_failovers_total", "counter", "Sessions moved away from a backend, by reason.");
  for (uint32_t s = 0; s < m->table->nslots; s++)
    for (int i = 0; m->table->backends[s].in_use && i < WSB_FAILOVER_REASONS; i++)
      out(&t, "wsbal_failovers_total{backend=\"%s\",reason=\"%s\"} %" PRIu64 "\n",
          label(m->table->backends[s].name, b, sizeof(b)), reasons[i],
          API_SLOT_SUM(m, s, failovers[s][i], failovers[i]));
  family(&t, "wsbal_failover_failures_total", "counter",
         "Sessions closed with 1013 because no backend took them.");
  out(&t, "wsbal_failover_failures_total %" PRIu64 "\n", API_SUM(shm, failover_failures));
  family(&t, "wsbal_failover_buffer_bytes", "gauge",
         "Memory held in failover replay windows (client messages not answered yet).");
  out(&t, "wsbal_failover_buffer_bytes %" PRIu64 "\n", API_SUM(shm, failover_buffer_bytes));
  family(&t, "wsbal_messages_total", "counter", "Messages relayed, by direction.");
  for (int d = 0; d < WSB_DIR_COUNT; d++)
    out(&t, "wsbal_messages_total{direction=\"%s\"} %" PRIu64 "\n", dirs[d],
        API_SUM(shm, messages[d]));
  family(&t, "wsbal_bytes_total", "counter", "Bytes of frames relayed, by direction.");
  for (int d = 0; d < WSB_DIR_COUNT; d++)
    out(&t, "wsbal_bytes_total{direction=\"%s\"} %" PRIu64 "\n", dirs[d], API_SUM(shm, bytes[d]));
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
          connect_bounds[i] / 1000.0,
          API_SLOT_SUM(m, s, connect_buckets[s][i], connect_buckets[i]));
    out(&t, "wsbal_backend_connect_seconds_bucket{backend=\"%s\",le=\"+Inf\"} %" PRIu64 "\n", b,
        API_SLOT_SUM(m, s, connect_buckets[s][WSB_CONNECT_BUCKETS - 1],
                     connect_buckets[WSB_CONNECT_BUCKETS - 1]));
    out(&t, "wsbal_backend_connect_seconds_sum{backend=\"%s\"} %.6f\n", b,
        (double)API_SLOT_SUM(m, s, connect_us[s], connect_us) / 1e6);
    out(&t, "wsbal_backend_connect_seconds_count{backend=\"%s\"} %" PRIu64 "\n", b,
        API_SLOT_SUM(m, s, connect_count[s], connect_count));
  }
  family(&t, "wsbal_failover_seconds", "histogram", "Time from a backend's loss to the new 101.");
  static const uint64_t bounds[] = WSB_FAILOVER_BUCKET_MS;
  for (int i = 0; i < WSB_FAILOVER_BUCKETS; i++) {
    if (i < WSB_FAILOVER_BUCKETS - 1)
      out(&t, "wsbal_failover_seconds_bucket{le=\"%g\"} %" PRIu64 "\n", bounds[i] / 1000.0,
          API_SUM(shm, failover_buckets[i]));
    else
      out(&t, "wsbal_failover_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n",
          API_SUM(shm, failover_buckets[i]));
  }
  out(&t, "wsbal_failover_seconds_sum %.6f\n", (double)API_SUM(shm, failover_us) / 1e6);
  out(&t, "wsbal_failover_seconds_count %" PRIu64 "\n", API_SUM(shm, failover_count));
  family(&t, "wsbal_workers", "gauge", "Worker processes running the current configuration.");
  out(&t, "wsbal_workers %u\n", wsb_workers_current(&m->workers));
  family(&t, "wsbal_worker_restarts_total", "counter", "Workers respawned after dying.");
  out(&t, "wsbal_worker_restarts_total %" PRIu64 "\n", atomic_load(&shm->worker_restarts));
  family(&t, "wsbal_access_log_errors_total", "counter",
         "Access log opens that failed (start, reload, SIGUSR1); lines went on to the file "
         "open before, if any.");
  out(&t, "wsbal_access_log_errors_total %" PRIu64 "\n", API_SUM(shm, access_log_errors));
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
