/* The admin API's /metrics (Prometheus text 0.0.4) and the sums of the segment's counters. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "api.h"
#include "process_stats.h"
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
    for (int d = 0; d < WSB_DIR_COUNT; d++) {
      base->messages[d] = WSB_SHM_SUM(m->shm, backend_messages[s][d]);
      base->bytes[d] = WSB_SHM_SUM(m->shm, backend_bytes[s][d]);
    }
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

/* The reply being written is OpenMetrics 1.0 (Accept asked for it), not Prometheus text 0.0.4.
   The master writes one reply at a time, on its loop. */
static bool openmetrics;

/* A family's HELP and TYPE. OpenMetrics names a counter's family without the _total its samples
   carry. */
static void family(struct wsb_text *t, const char *name, const char *type, const char *help) {
  size_t n = strlen(name);
  if (openmetrics && strcmp(type, "counter") == 0 && n > 6 && strcmp(name + n - 6, "_total") == 0)
    n -= 6;
  wsb_text_printf(t, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)n, name, help, (int)n, name, type);
}

/* Whether a media range's parameters [p, end) hold a zero weight (q=0, q=0.0, ...): "not
   acceptable" (RFC 9110 12.4.2). */
static bool zero_weight(const char *p, const char *end) {
  for (; p + 2 < end; p++) {
    if ((p[0] != 'q' && p[0] != 'Q') || p[1] != '=' || (p[-1] != ';' && p[-1] != ' '))
      continue;
    const char *v = p + 2;
    if (*v != '0')
      return false;
    while (v < end && (*v == '0' || *v == '.'))
      v++;
    return v == end || *v == ';' || *v == ' ' || *v == '\t';
  }
  return false;
}

/* Whether an Accept value lists application/openmetrics-text (media types are
   case-insensitive) with a weight above zero. */
static bool wants_openmetrics(struct wsb_slice accept) {
  static const char type[] = "application/openmetrics-text";
  const size_t n = sizeof(type) - 1;
  const char *p = accept.p, *end = accept.p + accept.len;
  while (p < end) {
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *item_end = comma != NULL ? comma : end;
    while (p < item_end && (*p == ' ' || *p == '\t'))
      p++;
    if ((size_t)(item_end - p) >= n && strncasecmp(p, type, n) == 0 &&
        (p + n == item_end || p[n] == ';' || p[n] == ' ' || p[n] == '\t') &&
        !zero_weight(p + n, item_end))
      return true;
    p = item_end + (comma != NULL);
  }
  return false;
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

/*
 * One histogram's series: n cumulative buckets (the last +Inf) whose first n - 1 upper bounds
 * are bounds, in microseconds as the segment keeps them, and the sum in microseconds. labels
 * is "" or the series' other labels ("backend=\"e1\"").
 */
static void histogram(struct wsb_text *t, const char *name, const char *labels,
                      const uint64_t *bounds, size_t n, const uint64_t *buckets, uint64_t sum_us,
                      uint64_t count) {
  const char *sep = *labels ? "," : "";
  for (size_t i = 0; i + 1 < n; i++)
    wsb_text_printf(t, "%s_bucket{%s%sle=\"%g\"} %" PRIu64 "\n", name, labels, sep, bounds[i] / 1e6,
                    buckets[i]);
  wsb_text_printf(t, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, sep, buckets[n - 1]);
  const char *open = *labels ? "{" : "", *close = *labels ? "}" : "";
  wsb_text_printf(t, "%s_sum%s%s%s %.6f\n", name, open, labels, close, (double)sum_us / 1e6);
  wsb_text_printf(t, "%s_count%s%s%s %" PRIu64 "\n", name, open, labels, close, count);
}

#define HISTOGRAM_MAX_BUCKETS 16

/* A histogram of the workers' slots with no labels: <field>_buckets, _us and _count summed. */
static void shm_histogram(struct wsb_text *t, const struct wsb_shm *shm, const char *name,
                          const uint64_t *bounds, size_t n, size_t buckets, size_t sum_us,
                          size_t count) {
  uint64_t v[HISTOGRAM_MAX_BUCKETS];
  for (size_t i = 0; i < n; i++)
    v[i] = wsb_shm_sum(shm, buckets + i * sizeof(_Atomic uint64_t));
  histogram(t, name, "", bounds, n, v, wsb_shm_sum(shm, sum_us), wsb_shm_sum(shm, count));
}
#define SHM_HISTOGRAM(t, shm, name, bounds, field)                                    \
  shm_histogram((t), (shm), (name), (bounds), sizeof(bounds) / sizeof(bounds[0]) + 1, \
                offsetof(struct wsb_shm_worker, field##_buckets),                     \
                offsetof(struct wsb_shm_worker, field##_us),                          \
                offsetof(struct wsb_shm_worker, field##_count))
_Static_assert(WSB_FAILOVER_BUCKETS <= HISTOGRAM_MAX_BUCKETS &&
                   WSB_CONNECT_BUCKETS <= HISTOGRAM_MAX_BUCKETS &&
                   WSB_SESSION_BUCKETS <= HISTOGRAM_MAX_BUCKETS &&
                   WSB_HANDSHAKE_BUCKETS <= HISTOGRAM_MAX_BUCKETS,
               "a histogram has more buckets than shm_histogram holds");

/* process_*: the master ({role="master"}) and each running worker ({role="worker",worker=
   "SLOT"}: the slot stays across respawns, the pid does not). */
static void processes(struct wsb_text *t, const struct master *m) {
  unsigned n = 0, *slots = calloc(m->shm->nworkers + 1, sizeof(*slots));
  struct wsb_process_stats *st = calloc(m->shm->nworkers + 1, sizeof(*st));
  if (slots == NULL || st == NULL || wsb_process_stats_read(getpid(), &st[0]) != 0) {
    free(slots);
    free(st);
    return;
  }
  for (unsigned s = 0; s < m->shm->nworkers; s++)
    if (m->workers.procs[s].pid > 0 &&
        wsb_process_stats_read(m->workers.procs[s].pid, &st[n + 1]) == 0)
      slots[n++] = s;
  static const struct {
    const char *name, *type, *help;
  } families[] = {
      {"process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds."},
      {"process_resident_memory_bytes", "gauge", "Resident memory size, in bytes."},
      {"process_virtual_memory_bytes", "gauge", "Virtual memory size, in bytes."},
      {"process_open_fds", "gauge", "Open file descriptors."},
      {"process_max_fds", "gauge", "The limit of open file descriptors (soft RLIMIT_NOFILE)."},
      {"process_start_time_seconds", "gauge", "Start time since the epoch, in seconds."},
  };
  for (size_t f = 0; f < sizeof(families) / sizeof(families[0]); f++) {
    family(t, families[f].name, families[f].type, families[f].help);
    for (unsigned i = 0; i <= n; i++) {
      const struct wsb_process_stats *p = &st[i];
      double v[] = {p->cpu_seconds,      (double)p->resident_bytes, (double)p->virtual_bytes,
                    (double)p->open_fds, (double)p->max_fds,        p->start_time};
      if ((f == 3 && !p->have_open_fds) || (f == 4 && !p->have_max_fds))
        continue;
      if (i == 0)
        wsb_text_printf(t, "%s{role=\"master\"} %.15g\n", families[f].name, v[f]);
      else
        wsb_text_printf(t, "%s{role=\"worker\",worker=\"%u\"} %.15g\n", families[f].name,
                        slots[i - 1], v[f]);
    }
  }
  free(slots);
  free(st);
}

/* What backend_gauge shows of each backend. */
enum backend_gauge { BG_LIVE, BG_UP, BG_ENABLED, BG_BREAKER };

/* A gauge family with one series per backend in use, {backend="NAME"}. */
static void backend_gauge(struct wsb_text *t, const struct master *m, const char *name,
                          const char *help, enum backend_gauge what) {
  char b[WSB_NAME_MAX * 2 + 1];
  family(t, name, "gauge", help);
  for (uint32_t s = 0; s < m->table->nslots; s++) {
    if (!m->table->backends[s].in_use)
      continue;
    uint64_t v = what == BG_LIVE      ? wsb_shm_backend_live(m->shm, s)
                 : what == BG_UP      ? atomic_load(&m->shm->backend_up[s]) != 0
                 : what == BG_ENABLED ? m->table->backends[s].enabled
                                      : atomic_load(&m->shm->breaker_state[s]);
    wsb_text_printf(t, "%s{backend=\"%s\"} %" PRIu64 "\n", name,
                    label(m->table->backends[s].name, b, sizeof(b)), v);
  }
}

static const char *const dirs[] = {"client_to_backend", "backend_to_client"};

/* wsbal_backend_messages_total or (of_bytes) wsbal_backend_bytes_total, {backend,direction}. */
static void backend_directions(struct wsb_text *t, struct master *m, const char *name,
                               const char *help, bool of_bytes) {
  char b[WSB_NAME_MAX * 2 + 1];
  family(t, name, "counter", help);
  for (uint32_t s = 0; s < m->table->nslots; s++) {
    if (!m->table->backends[s].in_use)
      continue;
    label(m->table->backends[s].name, b, sizeof(b));
    for (int d = 0; d < WSB_DIR_COUNT; d++)
      wsb_text_printf(t, "%s{backend=\"%s\",direction=\"%s\"} %" PRIu64 "\n", name, b, dirs[d],
                      of_bytes ? API_SLOT_SUM(m, s, backend_bytes[s][d], bytes[d])
                               : API_SLOT_SUM(m, s, backend_messages[s][d], messages[d]));
  }
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
  openmetrics = wants_openmetrics(c->req->accept);
  const struct wsb_shm *shm = m->shm;
  char b[WSB_NAME_MAX * 2 + 1];
  static const char *const reasons[] = WSB_FAILOVER_REASON_NAMES;

  /* The same values under two names: wsbal_sessions is SPEC.md's, and OpenMetrics reads it as
     the family of the counter wsbal_sessions_total, so an OpenMetrics parser wants the other. */
  if (!openmetrics)
    backend_gauge(&t, m, "wsbal_sessions",
                  "Live sessions per backend (kept for compatibility: wsbal_sessions_active is the "
                  "same and does not collide with wsbal_sessions_total under OpenMetrics).",
                  BG_LIVE);
  backend_gauge(&t, m, "wsbal_sessions_active", "Live sessions per backend.", BG_LIVE);
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
  family(&t, "wsbal_proxy_protocol_errors_total", "counter",
         "Client connections closed for their PROXY protocol header, by reason.");
  for (int e = 0; e < WSB_PP_ERR_COUNT; e++)
    wsb_text_printf(&t, "wsbal_proxy_protocol_errors_total{reason=\"%s\"} %" PRIu64 "\n",
                    wsb_pp_error_name(e), WSB_SHM_SUM(shm, proxy_protocol_errors[e]));
  family(&t, "wsbal_failovers_total", "counter", "Sessions moved away from a backend, by reason.");
  for (uint32_t s = 0; s < m->table->nslots; s++)
    for (int i = 0; m->table->backends[s].in_use && i < WSB_FAILOVER_REASONS; i++)
      wsb_text_printf(&t, "wsbal_failovers_total{backend=\"%s\",reason=\"%s\"} %" PRIu64 "\n",
                      label(m->table->backends[s].name, b, sizeof(b)), reasons[i],
                      API_SLOT_SUM(m, s, failovers[s][i], failovers[i]));
  family(&t, "wsbal_route_matches_total", "counter",
         "Requests each [route:NAME] took; route=\"default\": those no route took.");
  for (uint32_t i = 0; i < m->table->routes.nroutes; i++)
    wsb_text_printf(&t, "wsbal_route_matches_total{route=\"%s\"} %" PRIu64 "\n",
                    label(m->table->routes.routes[i].name, b, sizeof(b)),
                    wsb__api_route_matches(m, m->table->routes.routes[i].slot));
  wsb_text_printf(&t, "wsbal_route_matches_total{route=\"default\"} %" PRIu64 "\n",
                  wsb__api_route_matches(m, WSB_ROUTE_DEFAULT_SLOT));
  family(&t, "wsbal_failover_failures_total", "counter",
         "Sessions closed with 1013 because no backend took them.");
  wsb_text_printf(&t, "wsbal_failover_failures_total %" PRIu64 "\n",
                  WSB_SHM_SUM(shm, failover_failures));
  family(&t, "wsbal_failover_buffer_bytes", "gauge",
         "Memory held in failover replay windows (client messages not answered yet).");
  wsb_text_printf(&t, "wsbal_failover_buffer_bytes %" PRIu64 "\n",
                  WSB_SHM_SUM(shm, failover_buffer_bytes));
  family(&t, "wsbal_failover_hold_bytes", "gauge",
         "Bytes of backend messages held until their last fragment, so that a backend lost "
         "mid-message leaves no half message at the client.");
  wsb_text_printf(&t, "wsbal_failover_hold_bytes %" PRIu64 "\n", WSB_SHM_SUM(shm, hold_bytes));
  family(&t, "wsbal_messages_total", "counter", "Messages relayed, by direction.");
  for (int d = 0; d < WSB_DIR_COUNT; d++)
    wsb_text_printf(&t, "wsbal_messages_total{direction=\"%s\"} %" PRIu64 "\n", dirs[d],
                    WSB_SHM_SUM(shm, messages[d]));
  family(&t, "wsbal_bytes_total", "counter", "Bytes of frames relayed, by direction.");
  for (int d = 0; d < WSB_DIR_COUNT; d++)
    wsb_text_printf(&t, "wsbal_bytes_total{direction=\"%s\"} %" PRIu64 "\n", dirs[d],
                    WSB_SHM_SUM(shm, bytes[d]));
  family(&t, "wsbal_compression_bytes_total", "counter",
         "Payload bytes of permessage-deflate messages on the client leg, by direction: as "
         "compressed (wire) and as inflated (payload).");
  for (int d = 0; d < WSB_DIR_COUNT; d++)
    for (int g = 0; g < WSB_COMPRESSION_STAGES; g++)
      wsb_text_printf(&t,
                      "wsbal_compression_bytes_total{direction=\"%s\",stage=\"%s\"} %" PRIu64 "\n",
                      dirs[d], g == WSB_COMPRESSION_WIRE ? "wire" : "payload",
                      WSB_SHM_SUM(shm, compression_bytes[d][g]));
  backend_directions(&t, m, "wsbal_backend_messages_total",
                     "Messages relayed to and from each backend, by direction.", false);
  backend_directions(&t, m, "wsbal_backend_bytes_total",
                     "Bytes of frames relayed to and from each backend, by direction.", true);
  backend_gauge(&t, m, "wsbal_backend_up", "1 when the backend is considered up.", BG_UP);
  backend_gauge(&t, m, "wsbal_backend_enabled", "1 when the backend takes new sessions.",
                BG_ENABLED);
  backend_gauge(&t, m, "wsbal_backend_breaker_state",
                "The backend's circuit breaker: 0 closed, 1 open (no new sessions until its "
                "cooldown ends), 2 half-open (one trial connection at a time).",
                BG_BREAKER);
  family(&t, "wsbal_pool_sessions", "gauge",
         "Live sessions by the pool they were placed in (their backend may have moved since).");
  for (uint32_t p = 0; p < m->table->npools; p++)
    if (m->table->pools[p].in_use)
      wsb_text_printf(&t, "wsbal_pool_sessions{pool=\"%s\"} %" PRIu64 "\n",
                      label(m->table->pools[p].name, b, sizeof(b)),
                      WSB_SHM_SUM(m->shm, pool_sessions[p]));
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
  static const uint64_t connect_bounds[] = WSB_CONNECT_BUCKET_US;
  for (uint32_t s = 0; s < m->table->nslots; s++) {
    if (!m->table->backends[s].in_use)
      continue;
    char labels[sizeof(b) + 16];
    snprintf(labels, sizeof(labels), "backend=\"%s\"",
             label(m->table->backends[s].name, b, sizeof(b)));
    uint64_t v[WSB_CONNECT_BUCKETS];
    for (int i = 0; i < WSB_CONNECT_BUCKETS; i++)
      v[i] = API_SLOT_SUM(m, s, connect_buckets[s][i], connect_buckets[i]);
    histogram(&t, "wsbal_backend_connect_seconds", labels, connect_bounds, WSB_CONNECT_BUCKETS, v,
              API_SLOT_SUM(m, s, connect_us[s], connect_us),
              API_SLOT_SUM(m, s, connect_count[s], connect_count));
  }
  family(&t, "wsbal_failover_seconds", "histogram", "Time from a backend's loss to the new 101.");
  static const uint64_t failover_bounds[] = WSB_FAILOVER_BUCKET_US;
  SHM_HISTOGRAM(&t, shm, "wsbal_failover_seconds", failover_bounds, failover);
  family(&t, "wsbal_session_seconds", "histogram",
         "Duration of the sessions that got their 101, from accept to close, observed at close.");
  static const uint64_t session_bounds[] = WSB_SESSION_BUCKET_US;
  SHM_HISTOGRAM(&t, shm, "wsbal_session_seconds", session_bounds, session);
  family(&t, "wsbal_handshake_seconds", "histogram",
         "Time from a client's upgrade request read whole to its answer (101 or error) queued.");
  static const uint64_t handshake_bounds[] = WSB_HANDSHAKE_BUCKET_US;
  SHM_HISTOGRAM(&t, shm, "wsbal_handshake_seconds", handshake_bounds, handshake);
  /* Until pools exist every backend is in pool "default". */
  family(&t, "wsbal_http_requests_total", "counter",
         "Plain HTTP requests answered ([listen] http = proxy), by pool and status class.");
  for (int k = 1; k <= 5; k++)
    wsb_text_printf(&t, "wsbal_http_requests_total{pool=\"default\",code=\"%dxx\"} %" PRIu64 "\n",
                    k, WSB_SHM_SUM(shm, http_requests[k]));
  family(&t, "wsbal_http_request_seconds", "histogram",
         "Time from a plain HTTP request's head read whole to the end of its answer.");
  static const uint64_t http_bounds[] = WSB_HTTP_BUCKET_US;
  uint64_t http_v[WSB_HTTP_BUCKETS];
  for (size_t i = 0; i < WSB_HTTP_BUCKETS; i++)
    http_v[i] = WSB_SHM_SUM(shm, http_buckets[i]);
  histogram(&t, "wsbal_http_request_seconds", "pool=\"default\"", http_bounds, WSB_HTTP_BUCKETS,
            http_v, WSB_SHM_SUM(shm, http_us), WSB_SHM_SUM(shm, http_count));
  family(&t, "wsbal_workers", "gauge", "Worker processes running the current configuration.");
  wsb_text_printf(&t, "wsbal_workers %u\n", wsb_workers_current(&m->workers));
  family(&t, "wsbal_workers_taking_new_sessions", "gauge",
         "Workers new connections go to: all of them, or fewer with worker_balance = pack.");
  wsb_text_printf(&t, "wsbal_workers_taking_new_sessions %u\n", wsb_pack_taking_new(&m->pack));
  family(&t, "wsbal_worker_restarts_total", "counter", "Workers respawned after dying.");
  wsb_text_printf(&t, "wsbal_worker_restarts_total %" PRIu64 "\n",
                  atomic_load(&shm->worker_restarts));
  family(&t, "wsbal_access_log_errors_total", "counter",
         "Access log opens that failed (start, reload, SIGUSR1); lines went on to the file "
         "open before, if any.");
  wsb_text_printf(&t, "wsbal_access_log_errors_total %" PRIu64 "\n",
                  WSB_SHM_SUM(shm, access_log_errors));
  static const char *const log_kinds[] = WSB_LOG_KIND_NAMES;
  family(&t, "wsbal_log_lines_suppressed_total", "counter",
         "Error-log lines log_rate_limit dropped, by kind (rejected upgrades, failed TLS "
         "handshakes).");
  for (int k = 0; k < WSB_LOG_KINDS; k++)
    wsb_text_printf(&t, "wsbal_log_lines_suppressed_total{kind=\"%s\"} %" PRIu64 "\n", log_kinds[k],
                    WSB_SHM_SUM(shm, log_suppressed[k]));
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
  processes(&t, m);
  if (openmetrics)
    wsb_text_puts(&t, "# EOF\n");
  if (t.overflow) {
    wsb_text_free(&t);
    wsb_admin_error(r, 500, "out of memory");
    return;
  }
  r->status = 200;
  r->content_type = openmetrics ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                                : "text/plain; version=0.0.4; charset=utf-8";
  r->headers = "Vary: Accept\r\n"; /* the same URL answers in two formats: caches must tell */
  r->body = t.buf;
  r->len = t.len;
}
