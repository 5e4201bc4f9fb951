/* One health check or load-report poll in flight: a TCP connect, and for HTTP a GET read whole. */
#ifndef WSB_PROBE_CLIENT_H
#define WSB_PROBE_CLIENT_H

#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "probe.h"

struct wsb_probe_client;

/*
 * The end of a probe, called once unless it was cancelled: result is WSB_PROBE_OK with r the
 * answer (NULL for a TCP-only probe), or REFUSED, TIMEOUT or ERROR with r NULL and why a short
 * reason ("connection refused", "no answer within 200 ms", "malformed HTTP message"...).
 */
typedef void (*wsb_probe_cb)(void *arg, enum wsb_probe_result result,
                             const struct wsb_probe_response *r, const char *why);

/*
 * Connects to addr and, when request is not NULL, sends it (a whole HTTP/1.1 request that
 * asks for Connection: close) and reads the answer; all within timeout_ms. Returns the probe,
 * or NULL when it could not even start (cb is then not called).
 */
struct wsb_probe_client *wsb_probe_start(uv_loop_t *loop, const struct sockaddr *addr,
                                         const char *request, uint64_t timeout_ms, wsb_probe_cb cb,
                                         void *arg);

/* Stops a probe whose callback has not run yet: it never runs; the handles close and free it. */
void wsb_probe_cancel(struct wsb_probe_client *p);

#endif
