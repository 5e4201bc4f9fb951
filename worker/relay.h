/* The relay (relay.c): whole frames between the legs, checked on the way; keepalive; idleness. */
#ifndef WSB_RELAY_H
#define WSB_RELAY_H

#include <stddef.h>
#include <stdint.h>

struct wsb_leg;
struct wsb_session;

/* The state handlers (RELAY, CLOSING, and the client's side of FAILOVER). */
void wsb__relay_read(struct wsb_leg *l, const uint8_t *data, size_t backend_early_len);
void wsb__relay_eof(struct wsb_leg *l, int status);
void wsb__relay_timer(struct wsb_session *s);
/* The upgrade is done: relaying starts, with what the backend sent right behind its 101. */
void wsb__relay_start(struct wsb_session *s, const uint8_t *backend_early,
                      size_t backend_early_len);
/* Sets the timer for the next keepalive ping, overdue pong or idle_timeout. */
void wsb__relay_arm_timer(struct wsb_session *s);
/* Drops the fragments a backend leg holds, and their bytes from wsbal_failover_hold_bytes. */
void wsb__relay_hold_free(struct wsb_leg *l);

#endif
