/* The admin API's routes: list, add, change, delete, and their match counts across reloads. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "errors.h"
#include "log.h"
#include "reload.h"

#define DELETED_MAX (sizeof(((struct master *)0)->routes_deleted) / WSB_SECTION_NAME_MAX)

/*
 * A route's body may list many hosts and paths (a file line cannot, the API and the environment
 * can): up to ROUTE_BODY_TOKENS JSON tokens, which is the object, its eight keys and values and
 * about 4,080 list items, more than the table's 8,192 items leave to one route in practice.
 * They take 160 KiB of the heap while one request is read; the admin server's 64 KiB body cap
 * bounds the text first when items are long.
 */
#define ROUTE_BODY_TOKENS 4096

/* A parsed route body: its tokens and room for one member's text (a list joined by commas is
   never longer than its JSON). */
struct route_body {
  struct wsb_json_doc doc;
  struct wsb_json_token *tokens;
  char *text;
  size_t text_cap;
};

static void route_body_free(struct route_body *b) {
  free(b->tokens);
  free(b->text);
}

/* False with the answer set (400 for the body, 500 without memory). */
static bool route_body_parse(struct api_call *c, struct route_body *b, const char *const *known) {
  b->text_cap = c->req->body_len + 1;
  b->tokens = malloc(ROUTE_BODY_TOKENS * sizeof(*b->tokens));
  b->text = malloc(b->text_cap);
  if (b->tokens == NULL || b->text == NULL) {
    route_body_free(b);
    wsb_admin_error(c->r, 500, "out of memory");
    return false;
  }
  if (!wsb__api_parse_body_n(c->req, &b->doc, b->tokens, ROUTE_BODY_TOKENS, known, c->r)) {
    route_body_free(b);
    return false;
  }
  return true;
}

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

static int route_index(const struct wsb_config *cfg, const char *name);

void wsb_api_routes_discarded(struct master *m, const struct wsb_config *next,
                              struct wsb_config_errors *out) {
  for (size_t i = 0; i < m->cfg->nroutes; i++) {
    const struct wsb_route_config *r = &m->cfg->routes[i];
    bool in_file = route_index(next, r->name) >= 0;
    if (r->api == 1 && !in_file)
      wsb_reload_note(out, "route %s: removed (added through the API)", r->name);
    else if (r->api != 0 && in_file)
      wsb_reload_note(out, "route %s: as the file has it (%s through the API)", r->name,
                      r->api == 1 ? "added" : "changed");
  }
  for (unsigned i = 0; i < m->nroutes_deleted && i < DELETED_MAX; i++)
    if (route_index(next, m->routes_deleted[i]) >= 0 &&
        route_index(m->cfg, m->routes_deleted[i]) < 0)
      wsb_reload_note(out, "route %s: back (deleted through the API)", m->routes_deleted[i]);
  if (m->nroutes_deleted > DELETED_MAX)
    wsb_reload_note(out, "and %u more routes deleted through the API",
                    m->nroutes_deleted - (unsigned)DELETED_MAX);
  m->nroutes_deleted = 0;
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

static const char *const websocket_words[] = {"any", "only", "never"};

/* One route as the file gives it, with its match count (slot: its counter in the table). */
static void route_json(struct master *m, struct wsb_json *j, const struct wsb_route_config *r,
                       uint32_t slot) {
  wsb_json_object_begin(j);
  wsb_json_key(j, "name");
  wsb_json_cstring(j, r->name);
  wsb_json_key(j, "pool");
  wsb_json_cstring(j, r->pool != NULL ? r->pool : "");
  list_json(j, "host", &r->hosts);
  list_json(j, "path", &r->paths);
  wsb_json_key(j, "header");
  if (r->header != NULL)
    wsb_json_cstring(j, r->header);
  else
    wsb_json_null(j);
  wsb_json_key(j, "websocket");
  wsb_json_cstring(j, websocket_words[r->websocket]);
  wsb_json_key(j, "strip_path");
  wsb_json_bool(j, r->strip_path);
  wsb_json_key(j, "matches");
  wsb_json_uint(j, wsb__api_route_matches(m, slot));
  wsb_json_object_end(j);
}

/* Room for a route's JSON: its text twice over (escapes), plus the rest. */
static size_t route_json_size(const struct wsb_route_config *r) {
  size_t n = 512 + (r->header != NULL ? 2 * strlen(r->header) : 0);
  for (size_t k = 0; k < r->hosts.n; k++)
    n += 2 * strlen(r->hosts.items[k]) + 8;
  for (size_t k = 0; k < r->paths.n; k++)
    n += 2 * strlen(r->paths.items[k]) + 8;
  return n;
}

/*
 * {"routes": [...], "default": {...}}: each route as the file gives it, in its order (the
 * order of matching), with its match count; "default" is the fallback of the requests no
 * route took. The table the workers match is built from the same configuration, in the same
 * order, so route i of both is the same route.
 */
void wsb__api_routes_list(struct api_call *c) {
  const struct wsb_config *cfg = c->m->cfg;
  const struct wsb_route_table *t = &c->m->table->routes;
  size_t cap = 4096;
  for (size_t i = 0; i < cfg->nroutes; i++)
    cap += route_json_size(&cfg->routes[i]);
  struct wsb_json j;
  if (!wsb__api_json_begin_sized(&j, c->r, cap))
    return;
  wsb_json_object_begin(&j);
  wsb_json_key(&j, "routes");
  wsb_json_array_begin(&j);
  for (size_t i = 0; i < cfg->nroutes && i < t->nroutes; i++)
    route_json(c->m, &j, &cfg->routes[i], t->routes[i].slot);
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

/* ---- one route ---- */

static int route_index(const struct wsb_config *cfg, const char *name) {
  for (size_t i = 0; i < cfg->nroutes; i++)
    if (strcmp(cfg->routes[i].name, name) == 0)
      return (int)i;
  return -1;
}

/* Route i of the running configuration, answered with status. */
static void route_reply(struct master *m, int i, int status, struct wsb_admin_reply *r) {
  struct wsb_json j;
  if (!wsb__api_json_begin_sized(&j, r, route_json_size(&m->cfg->routes[i])))
    return;
  route_json(m, &j, &m->cfg->routes[i], m->table->routes.routes[i].slot);
  wsb__api_reply_json(r, status, &j);
}

void wsb__api_route_get(struct api_call *c) {
  int i = route_index(c->m->cfg, c->arg);
  if (i < 0)
    wsb_admin_error(c->r, 404, "no such route");
  else
    route_reply(c->m, i, 200, c->r);
}

static void free_routes(struct wsb_route_config *routes, size_t n) {
  for (size_t i = 0; i < n; i++)
    wsb_config_route_free(&routes[i]);
  free(routes);
}

/*
 * Makes routes (n of them, owned) the running ones and publishes them, as a reload would; on
 * failure (the table would not fit) the running ones stay and routes are freed. Until the next
 * reload, which reads the file again.
 */
static int publish_routes(struct master *m, struct wsb_route_config *routes, size_t n, char *err,
                          size_t errlen) {
  struct wsb_route_config *old = m->cfg->routes;
  size_t nold = m->cfg->nroutes;
  m->cfg->routes = routes;
  m->cfg->nroutes = n;
  int rc = wsb_master_publish(m, &m->backends, err, errlen);
  if (rc != 0) {
    m->cfg->routes = old;
    m->cfg->nroutes = nold;
    free_routes(routes, n);
    return rc;
  }
  free_routes(old, nold);
  return 0;
}

/* A copy of the running routes with room for one more. */
static struct wsb_route_config *copy_routes(const struct wsb_config *cfg) {
  struct wsb_route_config *out = calloc(cfg->nroutes + 1, sizeof(*out));
  for (size_t i = 0; out != NULL && i < cfg->nroutes; i++)
    wsb_config_route_copy(&out[i], &cfg->routes[i]);
  return out;
}

/* A body member as the text of a [route:NAME] line: a list's strings joined with commas. */
static bool member_text(const struct wsb_json_doc *doc, int i, char *out, size_t cap) {
  if (i < 0 || i >= doc->count)
    return false;
  if (doc->tokens[i].type == WSB_JSON_BOOL) {
    bool v;
    wsb_json_get_bool(doc, i, &v);
    snprintf(out, cap, "%s", v ? "on" : "off");
    return true;
  }
  if (doc->tokens[i].type == WSB_JSON_STRING)
    return wsb_json_get_string(doc, i, out, cap, NULL) == 0 && strchr(out, '\n') == NULL;
  if (doc->tokens[i].type != WSB_JSON_ARRAY)
    return false;
  size_t len = 0;
  out[0] = '\0';
  for (int k = wsb_json_next_child(doc, i, 0); k > 0; k = wsb_json_next_child(doc, i, k)) {
    if (len > 0 && len + 2 >= cap)
      return false;
    if (len > 0)
      out[len++] = ',';
    size_t n;
    /* An item holding a comma would read as two. */
    if (wsb_json_get_string(doc, k, out + len, cap - len, &n) != 0 ||
        memchr(out + len, ',', n) != NULL)
      return false;
    len += n;
  }
  return true;
}

/*
 * The body's members applied to r, each as its line in a [route:NAME] section would be (null
 * unsets host, path and header); false with the 400 answered. The name and "before" are read
 * by the caller.
 */
static bool apply_body(const struct route_body *b, struct wsb_route_config *r,
                       struct wsb_admin_reply *reply) {
  const struct wsb_json_doc *doc = &b->doc;
  static const char *const keys[] = {"pool", "host", "path", "header", "websocket", "strip_path"};
  static const char *const expect[] = {"a string",
                                       "a list of strings, a comma list or null",
                                       "a list of strings, a comma list or null",
                                       "a string or null",
                                       "a string",
                                       "true or false"};
  for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
    int i = wsb_json_member(doc, 0, keys[k]);
    if (i == WSB_EJSON_ABSENT)
      continue;
    char msg[512];
    bool unset = i >= 0 && doc->tokens[i].type == WSB_JSON_NULL && k >= 1 && k <= 3;
    if (!unset && !member_text(doc, i, b->text, b->text_cap)) {
      snprintf(msg, sizeof(msg), "body: \"%s\" must be %s", keys[k], expect[k]);
      wsb_admin_error(reply, 400, msg);
      return false;
    }
    if (wsb_config_route_set(r, keys[k], unset ? NULL : b->text, msg, sizeof(msg)) != 0) {
      char full[600];
      snprintf(full, sizeof(full), "body: %s", msg);
      wsb_admin_error(reply, 400, full);
      return false;
    }
  }
  if (r->pool == NULL) {
    wsb_admin_error(reply, 400, "body: \"pool\" is required");
    return false;
  }
  return true;
}

/* Publishes routes with the change made and answers with route name (status) or the error. */
static void change_routes(struct api_call *c, struct wsb_route_config *routes, size_t n,
                          const char *name, int status, const char *what) {
  char err[512];
  if (publish_routes(c->m, routes, n, err, sizeof(err)) != 0) {
    wsb_admin_error(c->r, 422, err);
    return;
  }
  wsb_log_info("admin %s: route %s %s", c->req->peer, name, what);
  int i = route_index(c->m->cfg, name);
  if (i >= 0)
    route_reply(c->m, i, status, c->r);
}

/* The route a POST body describes, checked, added and published, with its answer. */
static void add_route(struct api_call *c, const struct route_body *body) {
  struct master *m = c->m;
  const struct wsb_json_doc *doc = &body->doc;
  struct wsb_route_config r = {.websocket = WSB_ROUTE_WS_ANY};
  char before[WSB_SECTION_NAME_MAX + 1] = "";
  if (!wsb__api_field_ok(
          wsb_json_get_string(doc, wsb_json_member(doc, 0, "name"), r.name, sizeof(r.name), NULL),
          "name", "a string of 1 to 63 letters, digits, '-', '_' or '.'", false, c->r) ||
      !wsb__api_field_ok(
          wsb_json_get_string(doc, wsb_json_member(doc, 0, "before"), before, sizeof(before), NULL),
          "before", "the name of a route", true, c->r))
    return;
  if (!wsb_config_backend_name_valid(r.name) || strcmp(r.name, "default") == 0) {
    wsb_admin_error(c->r, 400,
                    "body: \"name\" must be 1 to 63 letters, digits, '-', '_' or '.', and not "
                    "\"default\"");
    return;
  }
  if (route_index(m->cfg, r.name) >= 0) {
    wsb_admin_error(c->r, 409, "a route of that name exists");
    return;
  }
  int at = before[0] != '\0' ? route_index(m->cfg, before) : (int)m->cfg->nroutes;
  if (at < 0) {
    wsb_admin_error(c->r, 400, "body: \"before\" names no route");
    return;
  }
  if (!apply_body(body, &r, c->r)) {
    wsb_config_route_free(&r);
    return;
  }
  if (!wsb_config_pool_known(m->cfg, r.pool)) {
    wsb_config_route_free(&r);
    wsb_admin_error(c->r, 400, "body: \"pool\" names no pool");
    return;
  }
  struct wsb_route_config *routes = copy_routes(m->cfg);
  if (routes == NULL) {
    wsb_config_route_free(&r);
    wsb_admin_error(c->r, 500, "out of memory");
    return;
  }
  size_t n = m->cfg->nroutes;
  memmove(&routes[at + 1], &routes[at], (n - (size_t)at) * sizeof(*routes));
  r.api = 1;
  routes[at] = r;
  change_routes(c, routes, n + 1, r.name, 201, "added");
}

/* POST /api/v1/routes: {"name", "pool", "host"?, "path"?, "header"?, "websocket"?,
   "strip_path"?, "before"?}: added before the route "before" names, else last. */
void wsb__api_routes_add(struct api_call *c) {
  static const char *const known[] = {"name",      "pool",       "host",   "path", "header",
                                      "websocket", "strip_path", "before", NULL};
  struct route_body body;
  if (!route_body_parse(c, &body, known))
    return;
  add_route(c, &body);
  route_body_free(&body);
}

/* PATCH /api/v1/routes/{name}: the keys given replace the route's (null unsets host, path,
   header); its place and its count stay. */
void wsb__api_route_patch(struct api_call *c) {
  static const char *const known[] = {"pool",      "host",       "path", "header",
                                      "websocket", "strip_path", NULL};
  struct master *m = c->m;
  int i = route_index(m->cfg, c->arg);
  if (i < 0) {
    wsb_admin_error(c->r, 404, "no such route");
    return;
  }
  struct route_body body;
  if (!route_body_parse(c, &body, known))
    return;
  struct wsb_route_config *routes = copy_routes(m->cfg);
  if (routes == NULL) {
    route_body_free(&body);
    wsb_admin_error(c->r, 500, "out of memory");
    return;
  }
  bool ok = apply_body(&body, &routes[i], c->r);
  route_body_free(&body);
  if (!ok) {
    free_routes(routes, m->cfg->nroutes);
    return;
  }
  if (routes[i].api == 0)
    routes[i].api = 2;
  if (!wsb_config_pool_known(m->cfg, routes[i].pool)) {
    free_routes(routes, m->cfg->nroutes);
    wsb_admin_error(c->r, 400, "body: \"pool\" names no pool");
    return;
  }
  change_routes(c, routes, m->cfg->nroutes, c->arg, 200, "changed");
}

/* DELETE /api/v1/routes/{name}: its requests take the next route that matches them. */
void wsb__api_route_delete(struct api_call *c) {
  struct master *m = c->m;
  int i = route_index(m->cfg, c->arg);
  if (i < 0) {
    wsb_admin_error(c->r, 404, "no such route");
    return;
  }
  struct wsb_route_config *routes = copy_routes(m->cfg);
  if (routes == NULL) {
    wsb_admin_error(c->r, 500, "out of memory");
    return;
  }
  size_t n = m->cfg->nroutes;
  wsb_config_route_free(&routes[i]);
  memmove(&routes[i], &routes[i + 1], (n - (size_t)i - 1) * sizeof(*routes));
  char name[WSB_SECTION_NAME_MAX];
  snprintf(name, sizeof(name), "%s", c->arg);
  char err[512];
  if (publish_routes(m, routes, n - 1, err, sizeof(err)) != 0) {
    wsb_admin_error(c->r, 422, err);
    return;
  }
  wsb_log_info("admin %s: route %s deleted", c->req->peer, name);
  if (m->nroutes_deleted < DELETED_MAX)
    snprintf(m->routes_deleted[m->nroutes_deleted], WSB_SECTION_NAME_MAX, "%s", name);
  m->nroutes_deleted++;
  struct wsb_json j;
  if (!wsb__api_json_begin(&j, c->r))
    return;
  wsb_json_object_begin(&j);
  wsb_json_key(&j, "deleted");
  wsb_json_cstring(&j, name);
  wsb_json_object_end(&j);
  wsb__api_reply_json(c->r, 200, &j);
}
