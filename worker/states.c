/* The session's state table: what each state does with each event, and which module does it. */
#include "failover.h"
#include "http_proxy.h"
#include "leg.h"
#include "relay.h"
#include "session.h"
#include "upgrade.h"

/*
 * READ_REQUEST -> CONNECT_BACKEND -> RELAY <-> FAILOVER -> CLOSING -> CLOSED (the checked
 * transitions are wsb__session_set_state's). Reading this table top to bottom is reading a
 * session's life: the upgrade owns the first two states, the relay RELAY and CLOSING, failover
 * FAILOVER, where the client's frames still pass through the relay (which holds them for the
 * new backend) while the new backend's answer goes through the upgrade.
 */
const struct wsb_session_ops wsb__session_states[S_COUNT] = {
    [S_READ_REQUEST] =
        {
            .client = {wsb__upgrade_request_read, wsb__upgrade_request_eof},
            .backend = {wsb__http_kept_read, wsb__http_kept_eof}, /* kept between requests */
            .on_timer = wsb__upgrade_timeout,
        },
    [S_CONNECT_BACKEND] =
        {
            /* The client may not send frames before its 101: they wait, and its reading
               pauses, until the relay starts. */
            .client = {wsb__leg_hold_early, wsb__upgrade_client_gone},
            .backend = {wsb__upgrade_response_read, wsb__upgrade_response_eof},
            .on_timer = wsb__upgrade_timeout,
            .on_backend_ready = wsb__relay_start,
            .on_backend_none = wsb__upgrade_no_backend,
        },
    [S_RELAY] =
        {
            .client = {wsb__relay_read, wsb__relay_eof},
            .backend = {wsb__relay_read, wsb__relay_eof},
            .on_timer = wsb__relay_timer,
            .on_backend_lost = wsb__failover_begin,
        },
    [S_FAILOVER] =
        {
            .client = {wsb__relay_read, wsb__relay_eof},
            .backend = {wsb__upgrade_response_read, wsb__upgrade_response_eof},
            .on_timer = wsb__upgrade_timeout,
            .on_writable = wsb__failover_client_writable,
            .on_backend_ready = wsb__failover_done,
            .on_backend_none = wsb__failover_no_backend,
        },
    /* A plain HTTP request and its answer; then READ_REQUEST again for the next request. */
    [S_HTTP] =
        {
            .client = {wsb__http_client_read, wsb__http_client_eof},
            .backend = {wsb__http_backend_read, wsb__http_backend_eof},
            .on_timer = wsb__http_timer,
        },
    /* Waiting for the answer to a close frame: the relay goes on until it comes. */
    [S_CLOSING] =
        {
            .client = {wsb__relay_read, wsb__relay_eof},
            .backend = {wsb__relay_read, wsb__relay_eof},
            .on_timer = wsb__session_closing_timeout,
        },
    /* S_CLOSED: nothing; a closed session's handles only finish closing. */
};
