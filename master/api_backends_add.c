/* POST /api/v1/backends: a backend added at run time, its host looked up without blocking. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "log.h"

/* Backends added through the API whose host names are still being looked up, at most. libuv
   runs two lookups at once (half its pool of 4 threads) and queues the rest, DNS discovery's
   rounds included: past this, a POST is refused at once rather than queued. */
#define ADDS_MAX 4

/* A POST /api/v1/backends waiting for its host's addresses. It owns copies of all it needs:
   the request and its connection may be gone when the answer comes (the add goes on). */
struct add_op {
  uv_getaddrinfo_t req;
  struct add_op *next;
  struct master *m;
  uint64_t conn;
  char peer[WSB_ADMIN_PEER_MAX]; /* who asked, for the log line */
  struct wsb_backend_config b;
};

/* Adds b and publishes it; addrs are its host's addresses (NULL: a literal address, looked up
   at once). Fills r: 201 with the backend, or the error. */
static void add_publish(struct master *m, const struct wsb_backend_config *b,
                        const struct wsb_addrs *addrs, const char *peer,
                        struct wsb_admin_reply *r) {
  struct wsb_backends next;
  char err[512] = "out of memory";
  int rc = wsb_backends_copy(&next, &m->backends);
  if (rc == 0)
    rc = wsb_backends_add(&next, b);
  if (rc == -EEXIST)
    snprintf(err, sizeof(err), "a backend of that name exists");
  if (rc == 0 && addrs != NULL)
    rc = wsb_discovery_learn(&m->disc, b->name, b->url.host, b->url.port, addrs);
  if (rc == 0 && (rc = wsb_master_publish(m, &next, err, sizeof(err))) != 0) {
    if (addrs != NULL)
      wsb_discovery_unlearn(&m->disc, b->name);
    rc = -EINVAL; /* not resolvable, or no slot left: as if never asked */
  }
  wsb_backends_free(&next);
  if (rc != 0) {
    wsb_admin_error(r, rc == -EEXIST ? 409 : rc == -EINVAL ? 422 : 500, err);
    return;
  }
  wsb_log_info("admin %s: backend %s added (%s)", peer, b->name, b->url_text);
  wsb__api_backend_reply(m, wsb__api_find_backend(m, b->name), 201, r);
}

static void on_add_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  struct add_op *op = req->data;
  struct master *m = op->m;
  for (struct add_op **p = &m->adds; *p != NULL; p = &(*p)->next)
    if (*p == op) {
      *p = op->next;
      break;
    }
  m->nadds--;
  struct wsb_admin_reply r = {0};
  struct wsb_addrs addrs = {0};
  size_t dropped = status == 0 ? wsb_addrs_from_addrinfo(&addrs, res) : 0;
  char msg[WSB_HOST_MAX + WSB_NAME_MAX + 128];
  if (status == UV_EAI_CANCELED || m->stopping) {
    wsb_admin_error(&r, 503, "stopping");
  } else if (status < 0 || addrs.n == 0) {
    if (status < 0)
      snprintf(msg, sizeof(msg), "backend %s: cannot resolve %s: %s", op->b.name, op->b.url.host,
               uv_strerror(status));
    else
      snprintf(msg, sizeof(msg), "backend %s: %s has no IPv4 or IPv6 address", op->b.name,
               op->b.url.host);
    wsb_log_warn("admin: %s", msg);
    wsb_admin_error(&r, 422, msg);
  } else {
    wsb_discovery_log_addrs(op->b.name, op->b.url.host, &addrs, dropped);
    add_publish(m, &op->b, &addrs, op->peer, &r);
  }
  if (res != NULL)
    uv_freeaddrinfo(res);
  wsb_admin_complete(&m->admin, op->conn, &r); /* dropped if the client has gone */
  free(op);
}

/* The body's backend into b; false with a 400 answered. */
static bool read_backend(const struct wsb_admin_request *req, struct wsb_backend_config *b,
                         struct wsb_admin_reply *r) {
  static const char *const known[] = {"name",   "url",  "weight", "max_sessions",
                                      "backup", "pool", NULL};
  struct wsb_json_token tokens[API_BODY_TOKENS];
  struct wsb_json_doc doc;
  if (!wsb__api_parse_body(req, &doc, tokens, known, r))
    return false;
  *b = (struct wsb_backend_config){.weight = 1, .enabled = true, .pool = WSB_DEFAULT_POOL};
  char url[sizeof(b->url_text)];
  uint64_t weight = 1, max_sessions = 0;
  if (!wsb__api_field_ok(wsb_json_get_string(&doc, wsb_json_member(&doc, 0, "name"), b->name,
                                             sizeof(b->name), NULL),
                         "name", "a string of 1 to 63 letters, digits, '-', '_' or '.'", false,
                         r) ||
      !wsb__api_field_ok(
          wsb_json_get_string(&doc, wsb_json_member(&doc, 0, "url"), url, sizeof(url), NULL), "url",
          "a ws:// or wss:// URL", false, r) ||
      !wsb__api_field_ok(
          wsb_json_get_uint(&doc, wsb_json_member(&doc, 0, "weight"), 1, 1000, &weight), "weight",
          "an integer from 1 to 1000", true, r) ||
      !wsb__api_field_ok(wsb_json_get_uint(&doc, wsb_json_member(&doc, 0, "max_sessions"), 0,
                                           10000000, &max_sessions),
                         "max_sessions", "an integer from 0 to 10000000", true, r) ||
      !wsb__api_field_ok(wsb_json_get_bool(&doc, wsb_json_member(&doc, 0, "backup"), &b->backup),
                         "backup", "true or false", true, r) ||
      !wsb__api_field_ok(wsb_json_get_string(&doc, wsb_json_member(&doc, 0, "pool"), b->pool,
                                             sizeof(b->pool), NULL),
                         "pool", "a string of 1 to 63 letters, digits, '-', '_' or '.'", true, r))
    return false;
  if (!wsb_config_backend_name_valid(b->pool)) {
    wsb_admin_error(r, 400, "body: \"pool\" must be 1 to 63 letters, digits, '-', '_' or '.'");
    return false;
  }
  if (!wsb_config_backend_name_valid(b->name)) {
    wsb_admin_error(r, 400, "body: \"name\" must be 1 to 63 letters, digits, '-', '_' or '.'");
    return false;
  }
  if (wsb_parse_url(url, &b->url) != 0) {
    wsb_admin_error(r, 400, "body: \"url\" must be a ws:// or wss:// URL without query");
    return false;
  }
  snprintf(b->url_text, sizeof(b->url_text), "%s", url);
  b->weight = (unsigned)weight;
  b->max_sessions = (unsigned)max_sessions;
  return true;
}

/* A backend added at run time, published like a reload. A host name is looked up without
   blocking the master (uv_getaddrinfo); the answer waits for it. */
void wsb__api_backends_add(struct api_call *c) {
  struct master *m = c->m;
  struct wsb_backend_config b;
  if (!read_backend(c->req, &b, c->r))
    return;
  if (wsb_backends_find(&m->backends, b.name) != NULL) {
    wsb_admin_error(c->r, 409, "a backend of that name exists");
    return;
  }
  for (const struct add_op *op = m->adds; op != NULL; op = op->next)
    if (strcmp(op->b.name, b.name) == 0) {
      wsb_admin_error(c->r, 409, "a backend of that name is being added");
      return;
    }
  if (wsb_addrs_is_literal(b.url.host)) {
    add_publish(m, &b, NULL, c->req->peer, c->r); /* nothing to wait for */
    return;
  }
  if (m->nadds >= ADDS_MAX) {
    wsb_admin_error(c->r, 503, "too many backends waiting for their host's addresses; try again");
    return;
  }
  struct add_op *op = calloc(1, sizeof(*op));
  if (op == NULL) {
    wsb_admin_error(c->r, 500, "out of memory");
    return;
  }
  *op = (struct add_op){.m = m, .conn = c->req->conn, .b = b};
  snprintf(op->peer, sizeof(op->peer), "%s", c->req->peer);
  op->req.data = op;
  static const struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  char port[8];
  snprintf(port, sizeof(port), "%u", (unsigned)b.url.port);
  int rc = uv_getaddrinfo(&m->loop, &op->req, on_add_resolved, op->b.url.host, port, &hints);
  if (rc != 0) {
    char msg[WSB_HOST_MAX + WSB_NAME_MAX + 128];
    snprintf(msg, sizeof(msg), "backend %s: cannot resolve %s: %s", b.name, b.url.host,
             uv_strerror(rc));
    free(op);
    wsb_admin_error(c->r, 422, msg);
    return;
  }
  op->next = m->adds;
  m->adds = op;
  m->nadds++;
  wsb_log_info("admin: backend %s: looking %s up", b.name, b.url.host);
  c->r->status = 0; /* answered when the lookup ends */
}

void wsb__api_backends_stop(struct master *m) {
  /* A lookup not started yet calls back at once with UV_EAI_CANCELED; a running one cannot be
     stopped, and the loop waits for it (the resolver's own timeout bounds it). */
  for (struct add_op *op = m->adds; op != NULL; op = op->next)
    uv_cancel((uv_req_t *)&op->req);
}
