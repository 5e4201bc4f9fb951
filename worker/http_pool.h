/* The idle HTTP connections to backends a worker keeps (http_keepalive per backend). */
#ifndef WSB_HTTP_POOL_H
#define WSB_HTTP_POOL_H

#include <stdbool.h>
#include <uv.h>

struct wsb_session;
struct wsb_tls_leg;
struct wsb_worker;

/* True when the connection's peer has not closed, reset or written to it: a peek finds
   nothing to read yet. */
bool wsb_http_pool_idle(int fd);

/* The newest idle connection to slot that is still good (its descriptor, now the caller's,
   and for a TLS backend its TLS state in *tls, to attach to the leg), or -1. For a request
   that may be sent again (retryable), one parked less than a second ago is taken without a
   peek. */
int wsb_http_pool_take(struct wsb_worker *w, int slot, bool retryable, struct wsb_tls_leg **tls);

/* A session's backend leg kept connected between its plain requests (s->kept_slot) goes to
   the pool (when still idle; a TLS one with its TLS state) and stops being kept; the caller
   closes the leg's handle.
   Returns false when none was kept. */
bool wsb_http_pool_keep(struct wsb_session *s);

/* The same, closing the leg's handle at once (without a shutdown, which would end the pool's
   duplicate of the connection too). */
void wsb_http_pool_park(struct wsb_session *s);

/* A reload made the TLS settings new: the pooled TLS connections, made under the old ones (a
   CA, verification, a client certificate), are closed, so that every request from then on
   goes over a connection the new settings allowed. Plain ones stay. */
void wsb_http_pool_drop_tls(struct wsb_worker *w);

/* Closes every idle connection and frees the pool (a stopping worker, exit). */
void wsb_http_pool_free(struct wsb_worker *w);

#endif
