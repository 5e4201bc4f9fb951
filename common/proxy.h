/* The two heads wsbal writes while proxying an upgrade: the request to the backend and the client's
 * 101. */
#ifndef WSB_PROXY_H
#define WSB_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "cidr.h"
#include "handshake.h"
#include "http.h"
#include "http1.h"
#include "values.h"

struct wsb_proxy_request {
  const struct wsb_http_head *client;        /* the client's request head */
  const struct wsb_upgrade_request *upgrade; /* what wsb_handshake_check_request found in it */
  const struct wsb_url *backend;
  const char *key;              /* the fresh Sec-WebSocket-Key for the backend */
  const char *client_ip;        /* the client connection's peer (after a PROXY header, the
                                   address it announced): appended to X-Forwarded-For */
  bool client_tls;              /* X-Forwarded-Proto: https when the client came over TLS */
  bool preserve_host;           /* forward the client's Host instead of the backend's */
  bool trust_forwarded;         /* the peer is trusted (trust_forwarded): keep the client's
                                   Forwarded family, extend X-Forwarded-For */
  const char *block_headers;    /* comma list of header names never forwarded; may be "" */
  const char *reconnect_header; /* name of the failover header; a client-sent one is dropped */
  const char *reconnect_value;  /* session id on failover reconnects; NULL on the first connect */
  size_t strip;                 /* bytes of upgrade->path a route's strip_path removes */
  struct wsb_slice method;      /* plain HTTP: the client's method; p == NULL for an upgrade */
  const struct wsb_body *body;  /* plain HTTP: the framing of the client's body */
};

/*
 * Writes the backend's upgrade request: GET backend path prefix + the client's
 * path without dot segments (upgrade->path; without its first strip bytes, then
 * starting with '/' in any case), Host, the WebSocket headers with
 * the fresh key and the client's subprotocols combined on one line, the
 * client's end-to-end headers (minus hop-by-hop, wsbal's own handshake headers,
 * Sec-WebSocket-Extensions, Content-Length, Expect, blocked ones, a client-sent
 * reconnect header, and Forwarded, X-Real-IP and X-Forwarded-* unless
 * trust_forwarded), then X-Forwarded-For (with trust_forwarded the client's
 * chain, combined, before the client address), X-Forwarded-Proto and
 * X-Forwarded-Host (unless a trusted client sent its own) and, on a failover,
 * the reconnect header. Returns its length or -ENOSPC.
 *
 * With a method (plain HTTP), the request line carries it, there are no WebSocket headers
 * (key is unused), and the body's framing follows: Content-Length for a LENGTH body,
 * Transfer-Encoding: chunked for a CHUNKED one (passed on as the client encoded it).
 */
ssize_t wsb_proxy_request_write(char *out, size_t cap, const struct wsb_proxy_request *r);

/*
 * Writes the client's 101: Upgrade, Connection, Sec-WebSocket-Accept for the
 * client's key, the backend's chosen subprotocol, and the backend's headers
 * named in the comma list pass_headers. Returns its length or -ENOSPC.
 */
ssize_t wsb_proxy_response_write(char *out, size_t cap, struct wsb_slice client_key,
                                 const struct wsb_http_head *backend,
                                 const struct wsb_upgrade_response *chosen,
                                 const char *pass_headers);

/* True when path starts with prefix at a segment boundary ("/ws" takes "/ws", "/ws/a", "/ws?x"). */
bool wsb_proxy_path_allowed(const char *prefix, struct wsb_slice path);

/* True when origin is in the comma list allowed (case-insensitive), or allowed is empty. */
bool wsb_proxy_origin_allowed(const char *allowed, struct wsb_slice origin);

/*
 * The real client of a request from peer (16 bytes, IPv4 in the first 4), into *family and
 * addr: the peer itself unless trusted holds it; for a trusted peer, the rightmost address of
 * the X-Forwarded-For lines combined that trusted does not hold, or the leftmost when every one
 * is trusted (trust_forwarded = on), or the peer when there are none. An element that is not an
 * address, right of the one chosen, makes it the peer: the chain cannot be followed past it.
 */
void wsb_proxy_real_client(const struct wsb_http_head *h, const struct wsb_cidr_set *trusted,
                           int peer_family, const uint8_t *peer, uint8_t *family, uint8_t *addr);

#endif
