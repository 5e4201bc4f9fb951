/* The admin API files (api*.c): requests as handlers see them, shared replies (wsb__api_). */
#ifndef WSB_API_H
#define WSB_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json.h"
#include "json_read.h"
#include "master_internal.h"

/* One request matched to a route: the handler fills r (or defers it, status 0). */
struct api_call {
  struct master *m;
  const struct wsb_admin_request *req;
  struct wsb_admin_reply *r;
  const char *arg; /* the path segment the route's "{}" matched (NUL-terminated), or "" */
};

/* ---- replies (api.c) ---- */

#define API_JSON_MAX (256 * 1024)

/* A JSON answer of at most cap bytes (API_JSON_MAX for json_begin); false with a 500 set. */
bool wsb__api_json_begin_sized(struct wsb_json *j, struct wsb_admin_reply *r, size_t cap);
bool wsb__api_json_begin(struct wsb_json *j, struct wsb_admin_reply *r);
/* Hands j's buffer to r with status, or answers 500 when it did not fit. */
void wsb__api_reply_json(struct wsb_admin_reply *r, int status, struct wsb_json *j);
/* {"status": what, "workers": reached}, and "backends": names when n > 0: 202. */
void wsb__api_accepted(struct wsb_admin_reply *r, const char *what, unsigned reached,
                       const char *const *names, size_t n);

/* ---- request bodies and queries (api.c) ---- */

#define API_BODY_TOKENS 64

/* Parses a JSON object body and refuses keys outside known; false with the answer set. */
bool wsb__api_parse_body(const struct wsb_admin_request *req, struct wsb_json_doc *doc,
                         struct wsb_json_token *tokens, const char *const *known,
                         struct wsb_admin_reply *r);
/* The same with ntokens tokens, for bodies holding lists (a route's hosts and paths). */
bool wsb__api_parse_body_n(const struct wsb_admin_request *req, struct wsb_json_doc *doc,
                           struct wsb_json_token *tokens, size_t ntokens, const char *const *known,
                           struct wsb_admin_reply *r);
/* A typed member's check (rc of wsb_json_get_*): true when fine (absent too when optional),
   false with a 400 naming field and what it expects. */
bool wsb__api_field_ok(int rc, const char *field, const char *expected, bool optional,
                       struct wsb_admin_reply *r);
/* A query parameter's value, %XX and '+' decoded, NUL-terminated in out (len, when not NULL,
   gets its length). Returns 0, -ENOENT when absent, -E2BIG when it does not fit in cap, or
   -EINVAL for a bad escape or an encoded NUL; out is "" on errors. */
int wsb__api_query_value(const char *query, const char *key, char *out, size_t cap, size_t *len);
/* Whether the parameter is there; a value that is malformed or too long reads as "". */
bool wsb__api_query_get(const char *query, const char *key, char *out, size_t cap);

/* ---- the segment's counters (wsb__api_metrics.c) ---- */

/* A slot's total since it got its current backend: the sum less the slot's baseline. */
#define API_SLOT_SUM(m, s, field, base) (WSB_SHM_SUM((m)->shm, field) - (m)->slot_base[s].base)

/* wsbal_handshakes_total's result label of a handshake result (also in the status's totals). */
const char *wsb__api_handshake_label(int result);

/* The slot of the backend named name in the published table, or -1. */
int wsb__api_find_backend(const struct master *m, const char *name);
/* The backend in slot as the API shows it, answered with status (api_backends.c). */
void wsb__api_backend_reply(struct master *m, int slot, int status, struct wsb_admin_reply *r);

/* ---- handlers, one file per resource ---- */

void wsb__api_healthz(struct api_call *c); /* wsb__api_status.c */
void wsb__api_readyz(struct api_call *c);
void wsb__api_status(struct api_call *c);
void wsb__api_status_page(struct api_call *c);
void wsb__api_reload(struct api_call *c);
void wsb__api_upgrade(struct api_call *c);

void wsb__api_metrics(struct api_call *c); /* wsb__api_metrics.c */

void wsb__api_backends_list(struct api_call *c); /* api_backends.c */
void wsb__api_backend_get(struct api_call *c);
void wsb__api_backend_patch(struct api_call *c);
void wsb__api_backend_delete(struct api_call *c);
void wsb__api_backend_enable(struct api_call *c);
void wsb__api_backend_disable(struct api_call *c);
void wsb__api_backend_drain(struct api_call *c);
void wsb__api_backends_add(struct api_call *c); /* wsb__api_backends_add.c */

void wsb__api_routes_list(struct api_call *c); /* api_routes.c */
void wsb__api_routes_add(struct api_call *c);
void wsb__api_route_get(struct api_call *c);
void wsb__api_route_patch(struct api_call *c);
void wsb__api_route_delete(struct api_call *c);
/* Requests the route in slot took since it got the slot (WSB_ROUTE_DEFAULT_SLOT: no route). */
uint64_t wsb__api_route_matches(const struct master *m, uint32_t slot);

void wsb__api_sessions_list(struct api_call *c); /* api_sessions.c */
void wsb__api_session_get(struct api_call *c);
void wsb__api_session_close(struct api_call *c);
void wsb__api_session_failover(struct api_call *c);

void wsb__api_pools_list(struct api_call *c); /* api_pools.c */
void wsb__api_pool_get(struct api_call *c);
void wsb__api_pool_patch(struct api_call *c);

/* Before the loop ends: session lists answered as partial, lookups of adds canceled. */
void wsb__api_sessions_stop(struct master *m);
void wsb__api_backends_stop(struct master *m);

#endif
