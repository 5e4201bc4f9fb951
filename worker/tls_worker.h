/* A worker's TLS state (tls_worker.c): contexts, ticket keys, backend sessions to resume. */
#ifndef WSB_TLS_WORKER_H
#define WSB_TLS_WORKER_H

#include <stdbool.h>

#include <openssl/ssl.h>

struct wsb_tls_leg;
struct wsb_worker;

int wsb_tls_worker_start(struct wsb_worker *w);
/* Loads the certificates again when a reload bumped the serial; on failure the old ones stay. */
void wsb_tls_worker_refresh(struct wsb_worker *w);
void wsb_tls_worker_close(struct wsb_worker *w);
void wsb_tls_worker_free(struct wsb_worker *w);
/* The listeners speak wss (whether or not the certificates could be loaded). */
bool wsb_tls_worker_listens_tls(const struct wsb_worker *w);

/* For tls_leg.c. */
/* The client context for backends of pool (a pool slot), made on first use (tls_worker.c). NULL
   when it cannot be. */
SSL_CTX *wsb__tls_worker_client_ctx(struct wsb_worker *w, uint32_t pool);
void wsb__tls_worker_drain_add(struct wsb_worker *w, struct wsb_tls_leg *t);
void wsb__tls_worker_drain_remove(struct wsb_worker *w, struct wsb_tls_leg *t);

#endif
