/* The admin API's routes as a table, and the replies, bodies and queries its handlers share. */
#include "api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>

#include "errors.h"
#include "values.h"

/* ---- replies ---- */

void wsb__api_reply_json(struct wsb_admin_reply *r, int status, struct wsb_json *j) {
  size_t n = wsb_json_finish(j);
  if (n == 0) {
    free(j->text.buf);
    wsb_admin_error(r, 500, "answer too large");
    return;
  }
  j->text.buf[n++] = '\n';
  r->status = status;
  r->body = j->text.buf;
  r->len = n;
}

bool wsb__api_json_begin_sized(struct wsb_json *j, struct wsb_admin_reply *r, size_t cap) {
  char *buf = malloc(cap);
  if (buf == NULL) {
    wsb_admin_error(r, 500, "out of memory");
    return false;
  }
  wsb_json_init(j, buf, cap - 1); /* room for wsb__api_reply_json's newline */
  return true;
}

bool wsb__api_json_begin(struct wsb_json *j, struct wsb_admin_reply *r) {
  return wsb__api_json_begin_sized(j, r, API_JSON_MAX);
}

void wsb__api_accepted(struct wsb_admin_reply *r, const char *what, unsigned reached,
                       const char *const *names, size_t n) {
  struct wsb_json j;
  if (!wsb__api_json_begin(&j, r))
    return;
  wsb_json_object_begin(&j);
  wsb_json_key(&j, "status");
  wsb_json_cstring(&j, what);
  wsb_json_key(&j, "workers");
  wsb_json_uint(&j, reached);
  if (n > 0) {
    wsb_json_key(&j, "backends");
    wsb_json_array_begin(&j);
    for (size_t i = 0; i < n; i++)
      wsb_json_cstring(&j, names[i]);
    wsb_json_array_end(&j);
  }
  wsb_json_object_end(&j);
  wsb__api_reply_json(r, 202, &j);
}

int wsb__api_find_backend(const struct master *m, const char *name) {
  for (uint32_t s = 0; s < m->table->nslots; s++)
    if (m->table->backends[s].in_use && strcmp(m->table->backends[s].name, name) == 0)
      return (int)s;
  return -1;
}

/* ---- request bodies and queries ---- */

bool wsb__api_parse_body(const struct wsb_admin_request *req, struct wsb_json_doc *doc,
                         struct wsb_json_token *tokens, const char *const *known,
                         struct wsb_admin_reply *r) {
  return wsb__api_parse_body_n(req, doc, tokens, API_BODY_TOKENS, known, r);
}

bool wsb__api_parse_body_n(const struct wsb_admin_request *req, struct wsb_json_doc *doc,
                           struct wsb_json_token *tokens, size_t ntokens, const char *const *known,
                           struct wsb_admin_reply *r) {
  char msg[160];
  int rc = wsb_json_parse(doc, req->body, req->body_len, tokens, ntokens, 0);
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

bool wsb__api_field_ok(int rc, const char *field, const char *expected, bool optional,
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

int wsb__api_query_value(const char *query, const char *key, char *out, size_t cap, size_t *len) {
  size_t klen = strlen(key);
  out[0] = '\0';
  for (const char *p = query; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
    if (strncmp(p, key, klen) != 0 || p[klen] != '=')
      continue;
    const char *v = p + klen + 1;
    ssize_t n = wsb_percent_decode(v, strcspn(v, "&"), true, out, cap);
    if (n < 0)
      return (int)n;
    if (len != NULL)
      *len = (size_t)n;
    return 0;
  }
  return -ENOENT;
}

bool wsb__api_query_get(const char *query, const char *key, char *out, size_t cap) {
  return wsb__api_query_value(query, key, out, cap, NULL) != -ENOENT;
}

void wsb_api_stop(struct master *m) {
  wsb__api_sessions_stop(m);
  wsb__api_backends_stop(m);
}

/* ---- the route table ---- */

/* Methods as bits, in the order Allow lists them. */
enum { GET = 1, HEAD = 2, POST = 4, PATCH = 8, DELETE = 16, METHODS = 5 };

static const struct {
  int method; /* enum llhttp_method */
  const char *name;
} method_names[METHODS] = {{HTTP_GET, "GET"},
                           {HTTP_HEAD, "HEAD"},
                           {HTTP_POST, "POST"},
                           {HTTP_PATCH, "PATCH"},
                           {HTTP_DELETE, "DELETE"}};

/*
 * Matched in order: a path takes the first route whose pattern and method fit.
 * "{}" stands for one non-empty path segment, handed to the handler as its
 * arg. A path some route's pattern fits, with none of its methods, gets 405
 * and Allow; a path no pattern fits, 404.
 */
static const struct route {
  unsigned methods;
  const char *pattern;
  void (*handler)(struct api_call *c);
} routes[] = {
    {GET | HEAD, "/", wsb__api_status_page},
    {GET | HEAD, "/healthz", wsb__api_healthz},
    {GET | HEAD, "/readyz", wsb__api_readyz},
    {GET | HEAD, "/metrics", wsb__api_metrics},
    {GET | HEAD, "/api/v1/status", wsb__api_status},
    {POST, "/api/v1/reload", wsb__api_reload},
    {POST, "/api/v1/upgrade", wsb__api_upgrade},
    {GET, "/api/v1/backends", wsb__api_backends_list},
    {POST, "/api/v1/backends", wsb__api_backends_add},
    {GET, "/api/v1/backends/{}", wsb__api_backend_get},
    {PATCH, "/api/v1/backends/{}", wsb__api_backend_patch},
    {DELETE, "/api/v1/backends/{}", wsb__api_backend_delete},
    {POST, "/api/v1/backends/{}/enable", wsb__api_backend_enable},
    {POST, "/api/v1/backends/{}/disable", wsb__api_backend_disable},
    /* A drain answers 202 whether {} is one backend or a section of several addresses. */
    {POST, "/api/v1/backends/{}/drain", wsb__api_backend_drain},
    {GET, "/api/v1/routes", wsb__api_routes_list},
    {POST, "/api/v1/routes", wsb__api_routes_add},
    {GET, "/api/v1/routes/{}", wsb__api_route_get},
    {PATCH, "/api/v1/routes/{}", wsb__api_route_patch},
    {DELETE, "/api/v1/routes/{}", wsb__api_route_delete},
    {GET, "/api/v1/sessions", wsb__api_sessions_list},
    {GET, "/api/v1/sessions/{}", wsb__api_session_get},
    {DELETE, "/api/v1/sessions/{}", wsb__api_session_close},
    {POST, "/api/v1/sessions/{}/failover", wsb__api_session_failover},
    {GET, "/api/v1/pools", wsb__api_pools_list},
    {GET, "/api/v1/pools/{}", wsb__api_pool_get},
    {PATCH, "/api/v1/pools/{}", wsb__api_pool_patch},
};

/* Whether path fits pattern; arg gets what "{}" matched (at most cap - 1 bytes, else no fit). */
static bool fits(const char *pattern, const char *path, char *arg, size_t cap) {
  arg[0] = '\0';
  while (*pattern != '\0') {
    if (strncmp(pattern, "{}", 2) == 0) {
      size_t n = strcspn(path, "/");
      if (n == 0 || n >= cap)
        return false;
      memcpy(arg, path, n);
      arg[n] = '\0';
      path += n;
      pattern += 2;
    } else if (*pattern++ != *path++) {
      return false;
    }
  }
  return *path == '\0';
}

/* The Allow text of a set of methods into out. */
static const char *allow_text(unsigned methods, char *out, size_t cap) {
  size_t used = 0;
  out[0] = '\0';
  for (int i = 0; i < METHODS; i++)
    if (methods & (1u << i)) {
      int n = snprintf(out + used, cap - used, "%s%s", used ? ", " : "", method_names[i].name);
      used += n > 0 && (size_t)n < cap - used ? (size_t)n : 0;
    }
  return out;
}

void wsb_api_route(void *ctx, const struct wsb_admin_request *req, struct wsb_admin_reply *r) {
  struct master *m = ctx;
  unsigned method = 0, allowed = 0;
  for (int i = 0; i < METHODS; i++)
    if (req->method == method_names[i].method)
      method = 1u << i;
  /* Twice a backend name's room: a name too long still reaches its handler (404 "no such
     backend"); a segment longer than this fits no route (404 "no such path"). */
  char arg[2 * WSB_NAME_MAX];
  for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
    if (!fits(routes[i].pattern, req->path, arg, sizeof(arg)))
      continue;
    if ((routes[i].methods & method) == 0) {
      allowed |= routes[i].methods;
      continue;
    }
    struct api_call c = {.m = m, .req = req, .r = r, .arg = arg};
    routes[i].handler(&c);
    return;
  }
  if (allowed != 0) {
    wsb_admin_error(r, 405, "method not allowed");
    r->allow = allow_text(allowed, m->allow, sizeof(m->allow)); /* sent before the next request */
  } else {
    wsb_admin_error(r, 404, "no such path");
  }
}
