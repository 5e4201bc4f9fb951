/* The upgrade (upgrade.c): the client's request, the backend connector, the 101 both ways. */
#ifndef WSB_UPGRADE_H
#define WSB_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wsb_leg;
struct wsb_proxy_request;
struct wsb_session;

/* The state handlers: the client's request head (READ_REQUEST), the client leaving while its
   backend is found, a backend's answer (CONNECT_BACKEND and FAILOVER), the deadlines of all
   three, and no backend left for a new session. */
void wsb__upgrade_request_read(struct wsb_leg *l, const uint8_t *data, size_t nread);
void wsb__upgrade_request_eof(struct wsb_leg *l, int status);
void wsb__upgrade_client_gone(struct wsb_leg *l, int status);
void wsb__upgrade_response_read(struct wsb_leg *l, const uint8_t *data, size_t nread);
void wsb__upgrade_response_eof(struct wsb_leg *l, int status);
void wsb__upgrade_timeout(struct wsb_session *s);
void wsb__upgrade_no_backend(struct wsb_session *s);

/* The connector, which a failover reuses. Its outcome goes to the state's on_backend_ready or
   on_backend_none. */
/* Fills s->hs->client_ip and peer_ip (and the session's ends and real client, once). */
void wsb__upgrade_find_client_ip(struct wsb_session *s);
/* Chooses the next backend not tried yet and connects to it. */
void wsb__upgrade_connect_next(struct wsb_session *s);
/* Writes the client's request to the backend: pr gives the key and reconnect value of an
   upgrade, or the method and body of a plain request; the rest comes from the session and
   the settings. Returns 0 or an error. */
int wsb__upgrade_send_request(struct wsb_session *s, struct wsb_proxy_request *pr);
/* The route of the request (an upgrade, or plain HTTP when websocket is false) picks the
   session's pool and path_strip; 0, or the status to answer. */
int wsb__upgrade_pick_route(struct wsb_session *s, bool websocket);
/* [wsbal] max_sessions counts connections, as HAProxy's maxconn does: a WebSocket session, or a
   client connection from its first plain request until it closes (an upgrade on it later
   takes no second place). 0 once counted, or 503 at the cap. */
int wsb__upgrade_admit(struct wsb_session *s);
/* Closes the backend connection, then connects to the next one (after a pause in a failover). */
void wsb__upgrade_retry_after_close(struct wsb_session *s);

#endif
