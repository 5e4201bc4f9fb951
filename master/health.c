/* Active health checks and load-report polls of every backend, from the master's loop. */
#include "health.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "probe_client.h"

/* What the checks of one backend follow: its pool's [upstream] keys. */
struct health_params {
  enum wsb_health_check mode;
  uint64_t interval_ms;
  uint64_t timeout_ms;
  unsigned rise;
  unsigned fall;
  char health_path[WSB_PATH_MAX];
  char load_path[WSB_PATH_MAX]; /* "" = no load reports */
};

struct health_slot {
  struct wsb_health *h;
  struct health_params p; /* of the pool the backend is in */
  uint32_t slot;
  bool watched; /* holds the backend named below */
  char name[WSB_NAME_MAX];
  struct sockaddr_storage addr;
  uv_timer_t timer;
  bool timer_ready;                /* initialised, closed by wsb_health_stop */
  struct wsb_probe_client *check;  /* in flight, or NULL */
  struct wsb_probe_client *report; /* in flight, or NULL */
  bool up;
  bool confirmed;  /* a check has answered since the backend got the slot */
  unsigned passes; /* consecutive, while down */
  unsigned fails;  /* consecutive, while up */
  bool reports_failing;
  uint64_t checks[WSB_PROBE_RESULT_COUNT];
  uint64_t reports[WSB_PROBE_RESULT_COUNT];
  bool checked; /* last holds a check of this backend */
  struct wsb_health_last last;
};

struct wsb_health {
  uv_loop_t *loop;
  struct wsb_shm *shm;
  const struct wsb_shm_table *table;
  bool stopped;
  /* For wss:// backends, per pool slot: the workers' settings of the pool (tls_verify,
     tls_ca_file, tls_client_cert and key), made on first use and again after each reload
     (tls.serial) or when the slot holds another pool, as the workers do. */
  SSL_CTX *tls[WSB_SHM_MAX_POOLS];
  char tls_pool[WSB_SHM_MAX_POOLS][WSB_SECTION_NAME_MAX];
  bool tls_failed[WSB_SHM_MAX_POOLS]; /* the files would not load: said once per serial */
  uint64_t tls_serial;
  struct health_slot slots[WSB_SHM_MAX_BACKENDS];
};

static const char *const check_names[] = {"off", "tcp", "http"};

struct wsb_health *wsb_health_create(uv_loop_t *loop, struct wsb_shm *shm) {
  struct wsb_health *h = calloc(1, sizeof(*h));
  if (h == NULL)
    return NULL;
  h->loop = loop;
  h->shm = shm;
  for (uint32_t s = 0; s < WSB_SHM_MAX_BACKENDS; s++) {
    h->slots[s].h = h;
    h->slots[s].slot = s;
  }
  return h;
}

/* Through the segment's helper: a backend coming up starts its slow start there. */
static void set_up(struct health_slot *s, bool up) {
  s->up = up;
  wsb_shm_backend_set_up(s->h->shm, s->slot, up, wsb_shm_now_ms());
}

/* A GET of path with the Host the backend's URL names; the answer is read until it ends. */
static int build_request(const struct wsb_shm_backend *b, const char *path, char *buf, size_t cap) {
  bool v6 = strchr(b->url.host, ':') != NULL;
  char port[8] = "";
  if (b->url.port != (b->url.tls ? 443 : 80))
    snprintf(port, sizeof(port), ":%u", (unsigned)b->url.port);
  int n = snprintf(buf, cap,
                   "GET %s HTTP/1.1\r\nHost: %s%s%s%s\r\nUser-Agent: wsbal/%s\r\n"
                   "Accept: application/json\r\nConnection: close\r\n\r\n",
                   path, v6 ? "[" : "", b->url.host, v6 ? "]" : "", port, WSB_VERSION);
  return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* Consecutive results flip the state; the first answer of a backend decides alone (HAProxy's
   way: nothing waits fall checks to learn that a backend was dead from the start). */
static void record(struct health_slot *s, enum wsb_probe_result result, const char *why) {
  bool ok = result == WSB_PROBE_OK;
  s->checks[result]++;
  s->checked = true;
  s->last.result = result;
  s->last.at_ms = wsb_shm_now_ms();
  snprintf(s->last.reason, sizeof(s->last.reason), "%s", ok ? "" : why);
  bool first = !s->confirmed;
  s->confirmed = true;
  if (ok) {
    s->fails = 0;
    if (!s->up && ++s->passes >= s->p.rise) {
      s->passes = 0;
      set_up(s, true);
      wsb_log_info("backend %s is up: %u %s check%s passed", s->name, s->p.rise,
                   check_names[s->p.mode], s->p.rise == 1 ? "" : "s");
    }
    return;
  }
  s->passes = 0;
  if (s->up && (first || ++s->fails >= s->p.fall)) {
    s->fails = 0;
    set_up(s, false);
    char count[48] = "its first check";
    if (!first)
      snprintf(count, sizeof(count), "%u check%s in a row", s->p.fall, s->p.fall == 1 ? "" : "s");
    wsb_log_warn("backend %s is down: %s (%s)", s->name, why, count);
  }
}

static void on_check(void *arg, enum wsb_probe_result result, const struct wsb_probe_response *r,
                     const char *why) {
  struct health_slot *s = arg;
  s->check = NULL;
  char reason[128];
  snprintf(reason, sizeof(reason), "%s", why);
  if (result == WSB_PROBE_OK && r != NULL)
    result = wsb_probe_health(r, reason, sizeof(reason));
  record(s, result, reason);
}

static void on_report(void *arg, enum wsb_probe_result result, const struct wsb_probe_response *r,
                      const char *why) {
  struct health_slot *s = arg;
  s->report = NULL;
  uint64_t count = 0;
  if (result == WSB_PROBE_OK)
    result = r != NULL ? wsb_probe_load(r, &count) : WSB_PROBE_BAD_BODY;
  s->reports[result]++;
  if (result == WSB_PROBE_OK) {
    wsb_shm_load_set(s->h->shm, s->slot, count, wsb_shm_now_ms());
    if (s->reports_failing)
      wsb_log_info("backend %s reports its load again", s->name);
    s->reports_failing = false;
    return;
  }
  /* The last good report stays until load_report_ttl; selection then counts locally. */
  if (!s->reports_failing)
    wsb_log_warn("backend %s: no load report from %s: %s%s%s", s->name, s->p.load_path,
                 wsb_probe_result_name(result), *why ? ", " : "", why);
  s->reports_failing = true;
}

/* The TLS of a probe to b: NULL for ws://; for wss:// the settings of the data path, so a
   backend whose certificate the workers refuse fails its checks too. */
static const struct wsb_probe_tls *probe_tls(struct wsb_health *h, const struct wsb_shm_backend *b,
                                             struct wsb_probe_tls *out) {
  if (!b->url.tls)
    return NULL;
  uint32_t pool = b->pool < WSB_SHM_MAX_POOLS ? b->pool : WSB_SHM_DEFAULT_POOL;
  const struct wsb_shm_settings *cfg = wsb_shm_pool_settings(h->table, pool);
  const char *name = h->table->pools[pool].name;
  if (h->tls_serial != h->table->settings.tls_serial) {
    for (uint32_t i = 0; i < WSB_SHM_MAX_POOLS; i++) {
      SSL_CTX_free(h->tls[i]); /* probes in flight hold their own reference */
      h->tls[i] = NULL;
      h->tls_failed[i] = false;
    }
    h->tls_serial = h->table->settings.tls_serial;
  }
  if (strcmp(h->tls_pool[pool], name) != 0) {
    SSL_CTX_free(h->tls[pool]);
    h->tls[pool] = NULL;
    h->tls_failed[pool] = false;
    snprintf(h->tls_pool[pool], sizeof(h->tls_pool[pool]), "%s", name);
  }
  if (h->tls[pool] == NULL && !h->tls_failed[pool]) {
    char err[1024];
    h->tls[pool] = wsb_shm_tls_client_ctx(cfg, err, sizeof(err));
    if (h->tls[pool] == NULL) {
      h->tls_failed[pool] = true;
      wsb_log_error("health checks of wss backends of pool %s: %s", name, err);
    }
  }
  *out =
      (struct wsb_probe_tls){.ctx = h->tls[pool], .host = b->url.host, .verify = cfg->tls_verify};
  return out;
}

/* Starts one probe; NULL when it could not start (no socket, no TLS context). */
static struct wsb_probe_client *probe(struct health_slot *s, const struct wsb_shm_backend *b,
                                      const char *req, wsb_probe_cb cb) {
  struct wsb_health *h = s->h;
  struct wsb_probe_tls tls_buf;
  const struct wsb_probe_tls *tls = req != NULL ? probe_tls(h, b, &tls_buf) : NULL;
  if (tls != NULL && tls->ctx == NULL)
    return NULL;
  return wsb_probe_start(h->loop, (const struct sockaddr *)&b->addr, req, tls,
                         (int)wsb_shm_pool_settings(h->table, b->pool)->send_proxy_protocol,
                         s->p.timeout_ms, cb, s);
}

static void on_tick(uv_timer_t *t) {
  struct health_slot *s = t->data;
  struct wsb_health *h = s->h;
  const struct wsb_shm_backend *b = &h->table->backends[s->slot];
  char req[WSB_PATH_MAX + WSB_HOST_MAX + 160];
  /* A check still running (timeout above the interval) lets this round go by. */
  if (s->p.mode != WSB_HEALTH_OFF && s->check == NULL) {
    bool http = s->p.mode == WSB_HEALTH_HTTP;
    if (http && build_request(b, s->p.health_path, req, sizeof(req)) != 0) {
      record(s, WSB_PROBE_ERROR, "request too long");
    } else {
      s->check = probe(s, b, http ? req : NULL, on_check);
      if (s->check == NULL)
        record(s, WSB_PROBE_ERROR, "cannot start a check (no socket, or no TLS context)");
    }
  }
  if (s->p.load_path[0] != '\0' && s->report == NULL &&
      build_request(b, s->p.load_path, req, sizeof(req)) == 0) {
    s->report = probe(s, b, req, on_report);
    if (s->report == NULL)
      s->reports[WSB_PROBE_ERROR]++;
  }
}

static void cancel(struct wsb_probe_client **p) {
  if (*p != NULL)
    wsb_probe_cancel(*p);
  *p = NULL;
}

static void forget(struct health_slot *s) {
  cancel(&s->check);
  cancel(&s->report);
  if (s->timer_ready)
    uv_timer_stop(&s->timer);
  s->watched = false;
}

/* A backend new in its slot: up until its checks say otherwise, no report yet. */
static void adopt(struct health_slot *s, const struct wsb_shm_backend *b) {
  if (strcmp(s->name, b->name) != 0) {
    memset(s->checks, 0, sizeof(s->checks));
    memset(s->reports, 0, sizeof(s->reports));
  }
  s->watched = true;
  s->checked = false;
  snprintf(s->name, sizeof(s->name), "%s", b->name);
  memcpy(&s->addr, &b->addr, sizeof(s->addr));
  s->confirmed = false;
  s->passes = s->fails = 0;
  s->reports_failing = false;
  set_up(s, true);
  wsb_shm_load_clear(s->h->shm, s->slot);
}

static void copy_path(char *dst, const char *src) {
  snprintf(dst, WSB_PATH_MAX, "%s", src != NULL ? src : "");
}

/* The [upstream] keys of pool slot pool of t: its section's, else [upstream]'s (a pool only the
   admin API named). */
static const struct wsb_upstream_config *pool_keys(const struct wsb_config *cfg,
                                                   const struct wsb_shm_table *t, uint32_t pool) {
  const struct wsb_pool_config *p =
      pool < t->npools ? wsb_config_pool(cfg, t->pools[pool].name) : NULL;
  return p != NULL ? &p->upstream : &cfg->upstream;
}

static void params_of(struct health_params *p, const struct wsb_upstream_config *u) {
  p->mode = u->health_check;
  p->interval_ms = u->health_interval_ms;
  p->timeout_ms = u->health_timeout_ms;
  p->rise = u->health_rise;
  p->fall = u->health_fall;
  copy_path(p->health_path, u->health_path);
  copy_path(p->load_path, u->load_report_path);
}

void wsb_health_sync(struct wsb_health *h, const struct wsb_shm_table *t,
                     const struct wsb_config *cfg) {
  if (h->stopped)
    return;
  h->table = t;
  bool warned[WSB_SHM_MAX_POOLS] = {false};
  for (uint32_t i = 0; i < WSB_SHM_MAX_BACKENDS; i++) {
    struct health_slot *s = &h->slots[i];
    const struct wsb_shm_backend *b = i < t->nslots ? &t->backends[i] : NULL;
    bool wanted = b != NULL && b->in_use;
    bool same = wanted && s->watched && strcmp(s->name, b->name) == 0 &&
                memcmp(&s->addr, &b->addr, sizeof(s->addr)) == 0;
    if (!same)
      forget(s);
    if (!wanted)
      continue;
    uint32_t pool = b->pool < WSB_SHM_MAX_POOLS ? b->pool : WSB_SHM_DEFAULT_POOL;
    const struct wsb_upstream_config *u = pool_keys(cfg, t, pool);
    struct health_params p;
    params_of(&p, u);
    bool retime = p.interval_ms != s->p.interval_ms || p.mode != s->p.mode ||
                  (p.load_path[0] != '\0') != (s->p.load_path[0] != '\0');
    s->p = p;
    atomic_store(&h->shm->load_report_ttl_ms[i], u->load_report_ttl_ms);
    if (p.load_path[0] != '\0' && u->load_report_ttl_ms <= p.interval_ms && !warned[pool]) {
      warned[pool] = true;
      wsb_log_warn("pool %s: load_report_ttl (%llu ms) is not above health_interval (%llu ms): "
                   "reports expire before the next poll",
                   t->pools[pool].name, (unsigned long long)u->load_report_ttl_ms,
                   (unsigned long long)p.interval_ms);
    }
    bool polling = p.mode != WSB_HEALTH_OFF || p.load_path[0] != '\0';
    if (!same)
      adopt(s, b);
    if (p.mode == WSB_HEALTH_OFF) {
      cancel(&s->check);
      s->checked = false;
      if (!s->up)
        wsb_log_info("backend %s counts as up: health_check = off", s->name);
      set_up(s, true);
    }
    if (p.load_path[0] == '\0') {
      cancel(&s->report);
      wsb_shm_load_clear(h->shm, i);
    }
    if (!polling) {
      if (s->timer_ready)
        uv_timer_stop(&s->timer);
      continue;
    }
    if (!s->timer_ready) {
      uv_timer_init(h->loop, &s->timer);
      s->timer.data = s;
      s->timer_ready = true;
    }
    /* Each backend's first round at its own share of the interval: no thundering herd. */
    if (!same || retime || !uv_is_active((uv_handle_t *)&s->timer))
      uv_timer_start(&s->timer, on_tick, p.interval_ms * i / t->nslots, p.interval_ms);
  }
}

void wsb_health_stop(struct wsb_health *h) {
  if (h == NULL || h->stopped)
    return;
  h->stopped = true;
  for (uint32_t i = 0; i < WSB_SHM_MAX_BACKENDS; i++) {
    struct health_slot *s = &h->slots[i];
    cancel(&s->check);
    cancel(&s->report);
    if (s->timer_ready)
      uv_close((uv_handle_t *)&s->timer, NULL);
    s->timer_ready = false;
  }
}

void wsb_health_free(struct wsb_health *h) {
  for (uint32_t i = 0; h != NULL && i < WSB_SHM_MAX_POOLS; i++)
    SSL_CTX_free(h->tls[i]);
  free(h);
}

uint64_t wsb_health_checks(const struct wsb_health *h, uint32_t slot, enum wsb_probe_result r) {
  return h != NULL && slot < WSB_SHM_MAX_BACKENDS ? h->slots[slot].checks[r] : 0;
}

uint64_t wsb_health_reports(const struct wsb_health *h, uint32_t slot, enum wsb_probe_result r) {
  return h != NULL && slot < WSB_SHM_MAX_BACKENDS ? h->slots[slot].reports[r] : 0;
}

bool wsb_health_last(const struct wsb_health *h, uint32_t slot, struct wsb_health_last *out) {
  if (h == NULL || slot >= WSB_SHM_MAX_BACKENDS || !h->slots[slot].checked)
    return false;
  *out = h->slots[slot].last;
  return true;
}
