/* The replay window (replay.c): client frames a backend has not answered yet, resent on a move. */
#ifndef WSB_REPLAY_H
#define WSB_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wsb_session;
struct wsb_worker;

/* A whole client frame just forwarded (fin: it ends its message): kept until answered. */
void wsb__replay_keep(struct wsb_session *s, const uint8_t *frame, size_t len, bool fin);
/* A whole message from the backend answers the oldest client message of the window. */
void wsb__replay_answered(struct wsb_session *s);
/* Frames of the client's that arrived while the session moves: resent, never dropped. */
int wsb__replay_hold(struct wsb_session *s, const uint8_t *data, size_t len);
/* Lets go of the window: the session ended. */
void wsb__replay_drop(struct wsb_session *s);
/* May the client be read while the session moves (its window, the worker's windows and its own
   write queue, filled by wsbal's pongs, all below their bounds)? */
bool wsb__replay_client_may_read(const struct wsb_session *s);

/* For the move itself (failover.c). */
/* Drops the oldest whole message; false when the front message is not whole yet. */
bool wsb__replay_release_oldest(struct wsb_session *s);
/* After every change of s->replay: the worker's totals follow, and the window list. */
void wsb__replay_account(struct wsb_session *s);
/* Keeps the worker's windows within failover_buffer_total, giving the oldest up first. */
void wsb__replay_trim(struct wsb_worker *w);
/* The window went to a new backend: what the client sends next continues it. */
void wsb__replay_settle(struct wsb_session *s);

#endif
