/* The admin API's pools: each with its settings, its backends and its live sessions. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "json_read.h"
#include "log.h"

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
  key_bool(j, "changed", pc != NULL && pc->changed); /* through PATCH, until the next reload */
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

/* The most keys one PATCH sets: each takes a key and a value token. */
#define PATCH_KEYS ((API_BODY_TOKENS - 1) / 2)

/* A member's value as the file would spell it: a string as is, a number as written, a boolean
   as on/off. false when it is none of those (an object, an array, null). */
static bool value_text(const struct wsb_json_doc *doc, int i, char *buf, size_t cap) {
  const struct wsb_json_token *t = &doc->tokens[i];
  bool b;
  switch (t->type) {
  case WSB_JSON_STRING:
    return wsb_json_get_string(doc, i, buf, cap, NULL) == 0;
  case WSB_JSON_NUMBER:
    if (t->end - t->start >= cap)
      return false;
    memcpy(buf, doc->text + t->start, t->end - t->start);
    buf[t->end - t->start] = '\0';
    return true;
  case WSB_JSON_BOOL:
    wsb_json_get_bool(doc, i, &b);
    snprintf(buf, cap, "%s", b ? "on" : "off");
    return true;
  default:
    return false;
  }
}

/*
 * PATCH {"KEY": VALUE, ...}: sets [upstream] keys of one pool as a [pool:NAME] section would (a
 * pool no file names is made), all or none, and publishes them at once; the answer is the
 * pool. A reload reads the file again and discards the change (it says so).
 */
void wsb__api_pool_patch(struct api_call *c) {
  struct master *m = c->m;
  if (!wsb_config_backend_name_valid(c->arg)) {
    wsb_admin_error(c->r, 400, "a pool name is 1 to 63 letters, digits, '-', '_' or '.'");
    return;
  }
  struct wsb_json_token tokens[API_BODY_TOKENS];
  struct wsb_json_doc doc;
  static const char *const any[] = {NULL};
  int rc = wsb_json_parse(&doc, c->req->body, c->req->body_len, tokens, API_BODY_TOKENS, 0);
  if (rc < 0 || doc.tokens[0].children == 0) {
    wsb__api_parse_body(c->req, &doc, tokens, any, c->r); /* answers the parse error */
    if (rc >= 0)
      wsb_admin_error(c->r, 400, "body: an object of [upstream] keys and their values");
    return;
  }
  char keys[PATCH_KEYS][64], values[PATCH_KEYS][WSB_PATH_MAX];
  const char *kp[PATCH_KEYS], *vp[PATCH_KEYS];
  size_t n = 0;
  for (int k = wsb_json_next_child(&doc, 0, 0); k > 0 && n < PATCH_KEYS;
       k = wsb_json_next_child(&doc, 0, k), n++) {
    if (wsb_json_get_string(&doc, k, keys[n], sizeof(keys[n]), NULL) != 0 ||
        !value_text(&doc, k + 1, values[n], sizeof(values[n]))) {
      char msg[160];
      snprintf(msg, sizeof(msg), "body: \"%.64s\" must be a string, a number or a boolean",
               keys[n]);
      wsb_admin_error(c->r, 400, msg);
      return;
    }
    kp[n] = keys[n];
    vp[n] = values[n];
  }
  struct wsb_upstream_config u;
  char err[512];
  if (wsb_config_pool_change(m->cfg, c->arg, kp, vp, n, &u, err, sizeof(err)) != 0) {
    wsb_admin_error(c->r, 400, err);
    return;
  }
  const struct wsb_pool_config *before = wsb_config_pool(m->cfg, c->arg);
  bool was_changed = before != NULL && before->changed;
  int added = wsb_config_pool_swap(m->cfg, c->arg, &u, true); /* u: what the pool had */
  rc = added < 0 ? added : wsb_master_publish(m, &m->backends, err, sizeof(err));
  if (rc != 0) {
    if (added == 1)
      wsb_config_pool_drop(m->cfg, c->arg);
    else if (added == 0)
      wsb_config_pool_swap(m->cfg, c->arg, &u, was_changed);
    wsb_config_upstream_free(&u);
    wsb_admin_error(c->r, rc == -E2BIG ? 409 : 500,
                    rc == -E2BIG ? "no room for another pool" : err);
    return;
  }
  wsb_config_upstream_free(&u);
  wsb_log_info("admin %s: pool %s: %zu setting%s changed", c->req->peer, c->arg, n,
               n == 1 ? "" : "s");
  wsb__api_pool_get(c);
}
