/* The admin API's routes: GET /api/v1/routes, and their match counts across reloads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

void wsb_api_adopt_routes(struct master *m, const struct wsb_shm_table *next) {
  const struct wsb_route_table *was = m->table != NULL ? &m->table->routes : NULL;
  for (uint32_t i = 0; i < next->routes.nroutes; i++) {
    const struct wsb_route *r = &next->routes.routes[i];
    bool kept = false;
    for (uint32_t k = 0; was != NULL && k < was->nroutes && !kept; k++)
      kept = was->routes[k].slot == r->slot && strcmp(was->routes[k].name, r->name) == 0;
    if (!kept)
      m->route_base[r->slot] = WSB_SHM_SUM(m->shm, route_matches[r->slot]);
  }
}

uint64_t wsb__api_route_matches(const struct master *m, uint32_t slot) {
  uint64_t base = slot < WSB_ROUTE_MAX ? m->route_base[slot] : 0;
  return WSB_SHM_SUM(m->shm, route_matches[slot]) - base;
}

static void list_json(struct wsb_json *j, const char *key, const struct wsb_strlist *l) {
  wsb_json_key(j, key);
  wsb_json_array_begin(j);
  for (size_t i = 0; i < l->n; i++)
    wsb_json_cstring(j, l->items[i]);
  wsb_json_array_end(j);
}

/*
 * {"routes": [...], "default": {...}}: each route as the file gives it, in its order (the
 * order of matching), with its match count; "default" is the fallback of the requests no
 * route took. The table the workers match is built from the same configuration, in the same
 * order, so route i of both is the same route.
 */
void wsb__api_routes_list(struct api_call *c) {
  static const char *const websocket[] = {"any", "only", "never"};
  const struct wsb_config *cfg = c->m->cfg;
  const struct wsb_route_table *t = &c->m->table->routes;
  size_t cap = 4096;
  for (size_t i = 0; i < cfg->nroutes; i++) {
    const struct wsb_route_config *r = &cfg->routes[i];
    cap += 512 + (r->header != NULL ? 2 * strlen(r->header) : 0);
    for (size_t k = 0; k < r->hosts.n; k++)
      cap += 2 * strlen(r->hosts.items[k]) + 8;
    for (size_t k = 0; k < r->paths.n; k++)
      cap += 2 * strlen(r->paths.items[k]) + 8;
  }
  struct wsb_json j;
  if (!wsb__api_json_begin_sized(&j, c->r, cap))
    return;
  wsb_json_object_begin(&j);
  wsb_json_key(&j, "routes");
  wsb_json_array_begin(&j);
  for (size_t i = 0; i < cfg->nroutes && i < t->nroutes; i++) {
    const struct wsb_route_config *r = &cfg->routes[i];
    wsb_json_object_begin(&j);
    wsb_json_key(&j, "name");
    wsb_json_cstring(&j, r->name);
    wsb_json_key(&j, "pool");
    wsb_json_cstring(&j, r->pool != NULL ? r->pool : "");
    list_json(&j, "host", &r->hosts);
    list_json(&j, "path", &r->paths);
    wsb_json_key(&j, "header");
    if (r->header != NULL)
      wsb_json_cstring(&j, r->header);
    else
      wsb_json_null(&j);
    wsb_json_key(&j, "websocket");
    wsb_json_cstring(&j, websocket[r->websocket]);
    wsb_json_key(&j, "strip_path");
    wsb_json_bool(&j, r->strip_path);
    wsb_json_key(&j, "matches");
    wsb_json_uint(&j, wsb__api_route_matches(c->m, t->routes[i].slot));
    wsb_json_object_end(&j);
  }
  wsb_json_array_end(&j);
  wsb_json_key(&j, "default");
  wsb_json_object_begin(&j);
  wsb_json_key(&j, "pool");
  wsb_json_cstring(&j, "default");
  wsb_json_key(&j, "matches");
  wsb_json_uint(&j, wsb__api_route_matches(c->m, WSB_ROUTE_DEFAULT_SLOT));
  wsb_json_object_end(&j);
  wsb_json_object_end(&j);
  wsb__api_reply_json(c->r, 200, &j);
}
