/* The admin API's /metrics (Prometheus text 0.0.4) and the sums of the segment's counters. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "text.h"

/* Far more than every series of 256 backends needs; a longer text is a 500, not endless growth. */
#define METRICS_MAX (64u << 20)

void wsb_api_adopt_slots(struct master *m, const struct wsb_shm_table *next) {
  for (uint32_t s = 0; s < next->nslots; s++) {
    const struct wsb_shm_backend *b = &next->backends[s];
    const struct wsb_shm_backend *was =
        m->table != NULL && s < m->table->nslots ? &m->table->backends[s] : NULL;
    if (!b->in_use ||
        (was != NULL && (was->in_use || was->retired) && strcmp(was->name, b->name) == 0))
      continue;
    struct wsb_slot_base *base = &m->slot_base[s];
    base->sessions_total = WSB_SHM_SUM(m->shm, sessions_total[s]);
    for (int r = 0; r < WSB_FAILOVER_REASONS; r++)
      base->failovers[r] = WSB_SHM_SUM(m->shm, failovers[s][r]);
    for (int i = 0; i < WSB_CONNECT_BUCKETS; i++)
      base->connect_buckets[i] = WSB_SHM_SUM(m->shm, connect_buckets[s][i]);
    base->connect_us = WSB_SHM_SUM(m->shm, connect_us[s]);
    base->connect_count = WSB_SHM_SUM(m->shm, connect_count[s]);
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

static void family(struct wsb_text *t, const char *name, const char *type, const char *help) {
  wsb_text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
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
  struct wsb_text t;
  if (wsb_text_init_alloc(&t, 16384, METRICS_MAX) != 0) {
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
      wsb_text_printf(&t, "wsbal_sessions{backend=\"%s\"} %" PRIu64 "\n",
                      label(m->table->backends[s].name, b, sizeof(b)),
                      wsb_shm_backend_live(shm, s));
  family(&t, "wsbal_sessions_total", "counter", "Sessions started per backend.");
  for (uint32_t s = 0; s < m->table->nslots; s++)
    if (m->table->backends[s].in_use)
      wsb_text_printf(&t, "wsbal_sessions_total{backend=\"%s\"} %" PRIu64 "\n",
                      label(m->table->backends[s].name, b, sizeof(b)),
                      API_SLOT_SUM(m, s, sessions_total[s], sessions_total));
  family(&t, "wsbal_handshakes_total", "counter", "Client upgrade requests by result.");
  for (int i = 0; i < WSB_HS_COUNT; i++)
    wsb_text_printf(&t, "wsbal_handshakes_total{result=\"%s\"} %" PRIu64 "\n",
                    wsb__api_handshake_label(i), WSB_SHM_SUM(shm, handshakes[i]));
  static const char *const tls_sides[] = WSB_TLS_SIDE_NAMES;
  family(&t, "wsbal_tls_handshakes_total", "counter",
         "Completed TLS handshakes, by side (client: wss listeners, backend: wss backends) and "
         "whether the session was resumed.");
  for (int sd = 0; sd < WSB_TLS_SIDES; sd++)
    for (int res = 0; res < 2; res++)
      wsb_text_printf(&t, "wsbal_tls_handshakes_total{side=\"%s\",resumed=\"%s\"} %" PRIu64 "\n",
                      tls_sides[sd], res ? "true" : "false",
                      WSB_SHM_SUM(shm, tls_handshakes[sd][res]));
  family(&t, "wsbal_tls_handshake_errors_total", "counter",
         "Failed TLS handshakes, by side and reason.");
  for (int sd = 0; sd < WSB_TLS_SIDES; sd++)
    for (int e = 0; e < WSB_TLS_ERR_COUNT; e++)
      wsb_text_printf(&t,
                      "wsbal_tls_handshake_errors_total{side=\"%s\",reason=\"%s\"} %" PRIu64 "\n",
                      tls_sides[sd], tls_error_labels[e], WSB_SHM_SUM(shm, tls_errors[sd][e]));
  family(&t, "wsbal_failovers_total", "counter", "Sessions moved away from a backend, by reason.");
  for (uint32_t s = 0; s < m->table->nslots; s++)
    for (int i = 0; m->table->backends[s].in_use && i < WSB_FAILOVER_REASONS; i++)
      wsb_text_printf(&t, "wsbal_failovers_total{backend=\"%s\",reason=\"%s\"} %" PRIu64 "\n",
                      label(m->table->backends[s].name, b, sizeof(b)), reasons[i],
                      API_SLOT_SUM(m, s, failovers[s][i], failovers[i]));
  family(&t, "wsbal_failover_failures_total", "counter",
         "Sessions closed with 1013 because no backend took them.");
  wsb_text_printf(&t, "wsbal_failover_failures_total %" PRIu64 "\n",
                  WSB_SHM_SUM(shm, failover_failures));
  family(&t, "wsbal_failover_buffer_bytes", "gauge",
         "Memory held in failover replay windows (client messages not answered yet).");
  wsb_text_printf(&t, "wsbal_failover_buffer_bytes %" PRIu64 "\n",
                  WSB_SHM_SUM(shm, failover_buffer_bytes));
  family(&t, "wsbal_messages_total", "counter", "Messages relayed, by direction.");
  for (int d = 0; d < WSB_DIR_COUNT; d++)
    wsb_text_printf(&t, "wsbal_messages_total{direction=\"%s\"} %" PRIu64 "\n", dirs[d],
                    WSB_SHM_SUM(shm, messages[d]));
  family(&t, "wsbal_bytes_total", "counter", "Bytes of frames relayed, by direction.");
  for (int d = 0; d < WSB_DIR_COUNT; d++)
    wsb_text_printf(&t, "wsbal_bytes_total{direction=\"%s\"} %" PRIu64 "\n", dirs[d],
                    WSB_SHM_SUM(shm, bytes[d]));
  family(&t, "wsbal_backend_up", "gauge", "1 when the backend is considered up.");
  family(&t, "wsbal_backend_enabled", "gauge", "1 when the backend takes new sessions.");
  for (uint32_t s = 0; s < m->table->nslots; s++) {
    if (!m->table->backends[s].in_use)
      continue;
    label(m->table->backends[s].name, b, sizeof(b));
    wsb_text_printf(&t, "wsbal_backend_up{backend=\"%s\"} %d\n", b,
                    atomic_load(&shm->backend_up[s]) ? 1 : 0);
    wsb_text_printf(&t, "wsbal_backend_enabled{backend=\"%s\"} %d\n", b,
                    m->table->backends[s].enabled ? 1 : 0);
  }
  family(&t, "wsbal_backend_health_checks_total", "counter", "Health checks by result.");
  for (uint32_t s = 0; s < m->table->nslots; s++)
    for (int i = 0; m->table->backends[s].in_use && i < WSB_PROBE_BAD_BODY; i++)
      wsb_text_printf(
          &t, "wsbal_backend_health_checks_total{backend=\"%s\",result=\"%s\"} %" PRIu64 "\n",
          label(m->table->backends[s].name, b, sizeof(b)), wsb_probe_result_name(i),
          wsb_health_checks(m->health, s, i));
  family(&t, "wsbal_backend_load_reports_total", "counter",
         "Polls of the backends' load reports (load_report_path) by result.");
  for (uint32_t s = 0; s < m->table->nslots; s++)
    for (int i = 0; m->table->backends[s].in_use && i < WSB_PROBE_RESULT_COUNT; i++)
      wsb_text_printf(
          &t, "wsbal_backend_load_reports_total{backend=\"%s\",result=\"%s\"} %" PRIu64 "\n",
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
      wsb_text_printf(
          &t, "wsbal_backend_connect_seconds_bucket{backend=\"%s\",le=\"%g\"} %" PRIu64 "\n", b,
          connect_bounds[i] / 1000.0,
          API_SLOT_SUM(m, s, connect_buckets[s][i], connect_buckets[i]));
    wsb_text_printf(
        &t, "wsbal_backend_connect_seconds_bucket{backend=\"%s\",le=\"+Inf\"} %" PRIu64 "\n", b,
        API_SLOT_SUM(m, s, connect_buckets[s][WSB_CONNECT_BUCKETS - 1],
                     connect_buckets[WSB_CONNECT_BUCKETS - 1]));
    wsb_text_printf(&t, "wsbal_backend_connect_seconds_sum{backend=\"%s\"} %.6f\n", b,
                    (double)API_SLOT_SUM(m, s, connect_us[s], connect_us) / 1e6);
    wsb_text_printf(&t, "wsbal_backend_connect_seconds_count{backend=\"%s\"} %" PRIu64 "\n", b,
                    API_SLOT_SUM(m, s, connect_count[s], connect_count));
  }
  family(&t, "wsbal_failover_seconds", "histogram", "Time from a backend's loss to the new 101.");
  static const uint64_t bounds[] = WSB_FAILOVER_BUCKET_MS;
  for (int i = 0; i < WSB_FAILOVER_BUCKETS; i++) {
    if (i < WSB_FAILOVER_BUCKETS - 1)
      wsb_text_printf(&t, "wsbal_failover_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                      bounds[i] / 1000.0, WSB_SHM_SUM(shm, failover_buckets[i]));
    else
      wsb_text_printf(&t, "wsbal_failover_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n",
                      WSB_SHM_SUM(shm, failover_buckets[i]));
  }
  wsb_text_printf(&t, "wsbal_failover_seconds_sum %.6f\n",
                  (double)WSB_SHM_SUM(shm, failover_us) / 1e6);
  wsb_text_printf(&t, "wsbal_failover_seconds_count %" PRIu64 "\n",
                  WSB_SHM_SUM(shm, failover_count));
  family(&t, "wsbal_workers", "gauge", "Worker processes running the current configuration.");
  wsb_text_printf(&t, "wsbal_workers %u\n", wsb_workers_current(&m->workers));
  family(&t, "wsbal_worker_restarts_total", "counter", "Workers respawned after dying.");
  wsb_text_printf(&t, "wsbal_worker_restarts_total %" PRIu64 "\n",
                  atomic_load(&shm->worker_restarts));
  family(&t, "wsbal_access_log_errors_total", "counter",
         "Access log opens that failed (start, reload, SIGUSR1); lines went on to the file "
         "open before, if any.");
  wsb_text_printf(&t, "wsbal_access_log_errors_total %" PRIu64 "\n",
                  WSB_SHM_SUM(shm, access_log_errors));
  family(&t, "wsbal_config_reloads_total", "counter", "Reloads by result.");
  wsb_text_printf(&t, "wsbal_config_reloads_total{result=\"ok\"} %" PRIu64 "\n",
                  atomic_load(&shm->reloads_ok));
  wsb_text_printf(&t, "wsbal_config_reloads_total{result=\"error\"} %" PRIu64 "\n",
                  atomic_load(&shm->reloads_error));
  family(&t, "wsbal_resolves_total", "counter",
         "Background lookups of backend host names (resolve_interval, reload), any result.");
  wsb_text_printf(&t, "wsbal_resolves_total %" PRIu64 "\n", m->disc.lookups);
  family(&t, "wsbal_resolve_errors_total", "counter",
         "Background lookups that failed; the backend kept its previous addresses.");
  wsb_text_printf(&t, "wsbal_resolve_errors_total %" PRIu64 "\n", m->disc.errors);
  family(&t, "wsbal_config_generation", "gauge", "Generation of the published backend table.");
  wsb_text_printf(&t, "wsbal_config_generation %" PRIu64 "\n", wsb_shm_generation(shm));
  family(&t, "wsbal_build_info", "gauge", "The running version.");
  wsb_text_printf(&t, "wsbal_build_info{version=\"%s\"} 1\n", WSB_VERSION);
  if (t.overflow) {
    wsb_text_free(&t);
    wsb_admin_error(r, 500, "out of memory");
    return;
  }
  r->status = 200;
  r->content_type = "text/plain; version=0.0.4; charset=utf-8";
  r->body = t.buf;
  r->len = t.len;
}
