/* One health check or load-report poll in flight: a TCP connect, and for HTTP a GET read whole
 * (over TLS for wss:// backends). */
#ifndef WSB_PROBE_CLIENT_H
#define WSB_PROBE_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include <openssl/ssl.h>

#include "probe.h"

struct wsb_probe_client;

/*
 * The end of a probe, called once unless it was cancelled: result is WSB_PROBE_OK with r the
 * answer (NULL for a TCP-only probe), or REFUSED, TIMEOUT or ERROR with r NULL and why a short
 * reason ("connection refused", "no answer within 200 ms", "malformed HTTP message"...).
 */
typedef void (*wsb_probe_cb)(void *arg, enum wsb_probe_result result,
                             const struct wsb_probe_response *r, const char *why);

/* TLS for a probe of a wss:// backend: the context of wsb_tls_client_ctx (the settings the
   workers use), the URL's host for SNI and verification, and whether to verify. */
struct wsb_probe_tls {
  SSL_CTX *ctx;
  const char *host;
  bool verify;
};

/*
 * Connects to addr and, when request is not NULL, sends it (a whole HTTP/1.1 request that
 * asks for Connection: close) and reads the answer; all within timeout_ms. With tls (not NULL)
 * the request goes over TLS (a TCP-only probe ignores it); a handshake that fails, a
 * certificate refused included, ends the probe as WSB_PROBE_ERROR with the reason. With
 * proxy_version 1 or 2 (send_proxy_protocol) a request is preceded by a PROXY header that
 * speaks for wsbal itself (v1 UNKNOWN, v2 LOCAL), before TLS. Returns the probe, or NULL when
 * it could not even start (cb is then not called).
 */
struct wsb_probe_client *wsb_probe_start(uv_loop_t *loop, const struct sockaddr *addr,
                                         const char *request, const struct wsb_probe_tls *tls,
                                         int proxy_version, uint64_t timeout_ms, wsb_probe_cb cb,
                                         void *arg);

/* Stops a probe whose callback has not run yet: it never runs; the handles close and free it. */
void wsb_probe_cancel(struct wsb_probe_client *p);

#endif
