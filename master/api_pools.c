/* The admin API's pools: each with its settings, its backends and its live sessions. */
#include <stdio.h>
#include <string.h>

#include "api.h"

static const char *const algorithms[] = {"least_conn", "round_robin", "random", "hash"};
static const char *const hash_keys[] = {"ip", "path", "header:", "cookie:", "query:"};
static const char *const health_checks[] = {"off", "tcp", "http"};
static const char *const pp_modes[] = {"off", "v1", "v2", "any"};

/* names[v], or "?" for a value past the table. */
#define NAME_OF(names, v) ((v) < sizeof(names) / sizeof(names[0]) ? names[v] : "?")

static void key_string(struct wsb_json *j, const char *key, const char *value) {
  wsb_json_key(j, key);
  if (value != NULL && value[0] != '\0')
    wsb_json_cstring(j, value);
  else
    wsb_json_null(j);
}

static void key_uint(struct wsb_json *j, const char *key, uint64_t v) {
  wsb_json_key(j, key);
  wsb_json_uint(j, v);
}

static void key_bool(struct wsb_json *j, const char *key, bool v) {
  wsb_json_key(j, key);
  wsb_json_bool(j, v);
}

/* The pool's [upstream] keys as its sessions and checks follow them, named as in the file
   (durations in milliseconds, with _ms). u gives the keys only the master reads. */
static void settings_json(struct wsb_json *j, const struct wsb_shm_settings *s,
                          const struct wsb_upstream_config *u) {
  char hash_key[WSB_SHM_HEADER_NAME_MAX + 16];
  snprintf(hash_key, sizeof(hash_key), "%s%s", NAME_OF(hash_keys, s->hash_key),
           s->hash_key >= WSB_HASH_HEADER ? s->hash_key_name : "");
  wsb_json_key(j, "settings");
  wsb_json_object_begin(j);
  key_string(j, "algorithm", NAME_OF(algorithms, s->algorithm));
  key_string(j, "hash_key", hash_key);
  key_uint(j, "connect_timeout_ms", s->connect_timeout_ms);
  key_bool(j, "failover", s->failover);
  wsb_json_key(j, "failover_codes");
  wsb_json_array_begin(j);
  for (uint32_t i = 0; i < s->failover_codes.n; i++)
    wsb_json_uint(j, s->failover_codes.codes[i]);
  wsb_json_array_end(j);
  key_uint(j, "max_failovers", s->max_failovers);
  key_uint(j, "failover_buffer", s->failover_buffer);
  key_string(j, "reconnect_header", s->reconnect_header);
  key_string(j, "pass_headers", s->pass_headers);
  key_string(j, "block_headers", s->block_headers);
  key_bool(j, "preserve_host", s->preserve_host);
  key_string(j, "send_proxy_protocol", NAME_OF(pp_modes, s->send_proxy_protocol));
  key_uint(j, "ping_interval_ms", s->upstream_ping_interval_ms);
  key_string(j, "health_check", NAME_OF(health_checks, (unsigned)u->health_check));
  key_string(j, "health_path", u->health_path);
  key_uint(j, "health_interval_ms", u->health_interval_ms);
  key_uint(j, "health_timeout_ms", u->health_timeout_ms);
  key_uint(j, "health_rise", u->health_rise);
  key_uint(j, "health_fall", u->health_fall);
  key_uint(j, "breaker_threshold", s->breaker_threshold);
  key_uint(j, "breaker_cooldown_ms", s->breaker_cooldown_ms);
  key_string(j, "load_report_path", u->load_report_path);
  key_uint(j, "load_report_ttl_ms", u->load_report_ttl_ms);
  key_bool(j, "tls_verify", s->tls_verify);
  key_string(j, "tls_ca_file", s->tls_ca_file);
  key_string(j, "tls_client_cert", s->tls_client_cert);
  key_uint(j, "slow_start_ms", s->slow_start_ms);
  wsb_json_object_end(j);
}

static void pool_json(struct master *m, struct wsb_json *j, uint32_t pool) {
  const struct wsb_shm_table *t = m->table;
  const struct wsb_shm_pool *p = &t->pools[pool];
  const struct wsb_pool_config *pc = wsb_config_pool(m->cfg, p->name);
  wsb_json_object_begin(j);
  key_string(j, "name", p->name);
  /* false for a pool only backends name (added through the API): [upstream]'s settings. */
  key_bool(j, "configured", pc != NULL);
  wsb_json_key(j, "backends");
  wsb_json_array_begin(j);
  unsigned available = 0;
  for (uint32_t s = 0; s < t->nslots; s++) {
    const struct wsb_shm_backend *b = &t->backends[s];
    if (!b->in_use || b->pool != pool)
      continue;
    wsb_json_cstring(j, b->name);
    available += b->enabled && atomic_load(&m->shm->backend_up[s]) != 0;
  }
  wsb_json_array_end(j);
  key_uint(j, "available", available);
  key_uint(j, "sessions", WSB_SHM_SUM(m->shm, pool_sessions[pool]));
  settings_json(j, &p->settings, pc != NULL ? &pc->upstream : &m->cfg->upstream);
  wsb_json_object_end(j);
}

void wsb__api_pools_list(struct api_call *c) {
  struct master *m = c->m;
  struct wsb_json j;
  if (!wsb__api_json_begin(&j, c->r))
    return;
  wsb_json_object_begin(&j);
  wsb_json_key(&j, "pools");
  wsb_json_array_begin(&j);
  for (uint32_t p = 0; p < m->table->npools; p++)
    if (m->table->pools[p].in_use)
      pool_json(m, &j, p);
  wsb_json_array_end(&j);
  wsb_json_object_end(&j);
  wsb__api_reply_json(c->r, 200, &j);
}

void wsb__api_pool_get(struct api_call *c) {
  struct master *m = c->m;
  int pool = wsb_shm_pool_find(m->table, c->arg);
  if (pool < 0) {
    wsb_admin_error(c->r, 404, "no such pool");
    return;
  }
  struct wsb_json j;
  if (!wsb__api_json_begin(&j, c->r))
    return;
  pool_json(m, &j, (uint32_t)pool);
  wsb__api_reply_json(c->r, 200, &j);
}
