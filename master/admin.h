/* The admin HTTP server in the master: JSON API, /metrics, /healthz, /readyz. */
#ifndef WSB_ADMIN_H
#define WSB_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "http.h"

/* An answer a route handler fills: status, content type and body. */
struct wsb_admin_reply {
  int status;
  const char *content_type; /* NULL = application/json */
  const char *allow;        /* for 405: the methods the path takes */
  const char *headers;      /* more header lines, each ending in CRLF, or NULL */
  char *body;               /* malloc'd, taken over by the server */
  size_t len;
};

struct wsb_admin_request {
  int method;        /* enum llhttp_method */
  const char *path;  /* NUL-terminated, without the query */
  const char *query; /* NUL-terminated, "" when none */
  const char *body;
  size_t body_len;
  uint64_t conn;           /* for wsb_admin_complete, when the handler defers its answer */
  const char *peer;        /* the client as "ADDR:PORT" ("[V6]:PORT"), for the log of changes */
  struct wsb_slice accept; /* the Accept header's value; {NULL, 0} without one */
};

/* Room for a peer: "[" INET6_ADDRSTRLEN "]:65535". */
#define WSB_ADMIN_PEER_MAX 64

/* Answers one request; the server does token checks, framing and keep-alive. A handler that
   leaves reply->status at 0 answers with wsb_admin_complete(req->conn), later or even before
   it returns. */
typedef void (*wsb_admin_route_fn)(void *ctx, const struct wsb_admin_request *req,
                                   struct wsb_admin_reply *reply);

struct wsb_admin {
  uv_loop_t *loop;
  uv_tcp_t listener;
  uv_tcp_t spare;               /* takes a connection that cannot be served, to close it */
  bool spare_busy;              /* spare is closing */
  bool refuse_pending;          /* a connection waits for spare to be free */
  int fd;                       /* bound before privileges are dropped, -1 when off */
  const struct wsb_config *cfg; /* the running configuration (token, timeouts): a reload
                                   rewrites it in place */
  wsb_admin_route_fn route;
  void *ctx;
  bool quiescing;       /* no more accepting: each request under way is answered, then closed */
  unsigned connections; /* open and not closing */
  void (*on_idle)(void *arg); /* wsb_admin_when_idle's callback, until it runs */
  void *idle_arg;
  uint64_t next_conn;
  struct admin_conn *conns; /* every connection until its handles are closed */
};

/* Binds hp (the master does this before dropping privileges). Returns the fd or -errno. */
int wsb_admin_bind(const struct wsb_hostport *hp, char *err, size_t errlen);

/* Serves on fd from now on, with cfg's [admin] token and timeouts as they are at each use. */
int wsb_admin_start(struct wsb_admin *a, uv_loop_t *loop, int fd, const struct wsb_config *cfg,
                    wsb_admin_route_fn route, void *ctx);

/* Stops accepting (the listening socket's queue is left to whoever else serves it: a binary
   upgrade's new master) and closes idle connections; a request under way is answered, with
   Connection: close, then its connection closes. */
void wsb_admin_quiesce(struct wsb_admin *a);

/* After wsb_admin_quiesce: cb(arg) runs once, when the last open connection has closed (from
   its close callback, never from inside this call). Returns true when armed; false, arming
   nothing, when no connection is open (or cb is NULL, which disarms). */
bool wsb_admin_when_idle(struct wsb_admin *a, void (*cb)(void *arg), void *arg);

/* Closes the listener and every connection. */
void wsb_admin_stop(struct wsb_admin *a);

/* Sends a deferred answer (takes reply->body); dropped when the client has gone meanwhile. */
void wsb_admin_complete(struct wsb_admin *a, uint64_t conn, struct wsb_admin_reply *reply);

/* Helpers for handlers: a JSON error {"error": msg} with status. */
void wsb_admin_error(struct wsb_admin_reply *reply, int status, const char *msg);

#endif
