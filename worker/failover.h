/* Failover (failover.c): a relaying session moves to a new backend without the client noticing. */
#ifndef WSB_FAILOVER_H
#define WSB_FAILOVER_H

#include <stddef.h>
#include <stdint.h>

#include "shm.h"

struct wsb_leg;
struct wsb_session;

/*
 * Moves a relaying session (RELAY's on_backend_lost, and the admin's commands): why is the
 * reason the metrics count, detail what goes with it: the close code for WSB_FO_CLOSE, the
 * connection's error (UV_ECONNRESET, ...) for WSB_FO_LOST and WSB_FO_TIMEOUT, 0 for
 * WSB_FO_ADMIN. A lost connection moves only when 1006 is in failover_codes; a session that
 * cannot move ends as a plain proxy's would, or with a close code to the client.
 */
void wsb__failover_begin(struct wsb_session *s, enum wsb_failover_reason why, int detail);

/* The FAILOVER state's handlers: the new backend answered 101 (early: what it sent behind
   it); none is left; the client's queue went down. */
void wsb__failover_done(struct wsb_session *s, const uint8_t *backend_early, size_t len);
void wsb__failover_no_backend(struct wsb_session *s);
void wsb__failover_client_writable(struct wsb_leg *l);

#endif
