/* The WebSocket opening handshake (RFC 6455 section 4) on both sides of the proxy. */
#ifndef WSB_HANDSHAKE_H
#define WSB_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>

#include "http.h"

#define WSB_WS_NONCE_LEN  16
#define WSB_WS_KEY_LEN    24 /* base64 of the 16-byte nonce */
#define WSB_WS_ACCEPT_LEN 28 /* base64 of a SHA-1 digest */

/*
 * What a valid client upgrade request carries, as slices of its head or of store. A header a
 * request may repeat is read as RFC 9110 5.3 combines it: every field line's list, in order,
 * joined with ", " (README "Request headers").
 */
struct wsb_upgrade_request {
  struct wsb_slice target; /* path and query as the client sent them (in the head) */
  struct wsb_slice path;   /* target without dot segments: what is matched, hashed, forwarded */
  struct wsb_slice host;
  struct wsb_slice key;
  struct wsb_slice origin;    /* p == NULL when absent */
  struct wsb_slice protocols; /* every Sec-WebSocket-Protocol list combined; p == NULL: none */
  char *store;                /* private: path and protocols when they are not in the head */
};

/*
 * Checks a complete request head against RFC 6455 4.2.1 as SPEC.md "The
 * handshake" reads it. Returns 0 and fills u for a valid upgrade; otherwise
 * the HTTP status to answer: 426 for a request that is no upgrade at all (no
 * Upgrade: websocket) or asks for a version other than 13 (the answer then
 * carries Sec-WebSocket-Version: 13), 400 for a malformed upgrade (not GET,
 * not HTTP/1.1, no Host, Connection without the upgrade token, missing or
 * invalid key, missing version, a repeated Host, Sec-WebSocket-Key,
 * Sec-WebSocket-Version or Origin, a body announced by Content-Length or
 * Transfer-Encoding, a path wsb_uri_path_check() refuses), 500 when memory
 * runs out. u must not hold an earlier result; wsb_upgrade_request_free()
 * releases what a successful call allocated (nothing on the common path).
 */
int wsb_handshake_check_request(const struct wsb_http_head *h, struct wsb_upgrade_request *u);

/*
 * The path and query of a request target: origin-form ("/chat?x=1") as it is, absolute-form
 * ("ws://host/chat", RFC 9112 3.2.2) cut after its authority. False for anything else
 * (authority-form, "*", an absolute URL without a path).
 */
bool wsb_handshake_target_path(struct wsb_slice target, struct wsb_slice *path);

/* Frees what wsb_handshake_check_request() allocated in u; its slices are void afterwards. */
void wsb_upgrade_request_free(struct wsb_upgrade_request *u);

/* True when key is base64 of exactly 16 bytes (24 characters, "==" padded). */
bool wsb_ws_key_valid(struct wsb_slice key);

/* Writes the Sec-WebSocket-Accept value for key: base64(SHA-1(key + GUID)), NUL-terminated. */
void wsb_ws_accept(struct wsb_slice key, char out[WSB_WS_ACCEPT_LEN + 1]);

/* Writes the key of a 16-byte nonce (its base64), NUL-terminated. */
void wsb_ws_key_encode(const uint8_t nonce[WSB_WS_NONCE_LEN], char out[WSB_WS_KEY_LEN + 1]);

/* Writes a fresh random key (OpenSSL RAND_bytes), NUL-terminated. Returns 0, or -EIO when no
 * randomness. */
int wsb_ws_key_generate(char out[WSB_WS_KEY_LEN + 1]);

/* True for handshake headers wsbal writes itself instead of forwarding. */
bool wsb_handshake_header_is_own(struct wsb_slice name);

/* What a valid backend 101 answer carries. */
struct wsb_upgrade_response {
  struct wsb_slice protocol; /* chosen subprotocol; p == NULL when none */
};

/*
 * Checks a complete backend response head to an upgrade request sent with
 * the key whose accept value is expected_accept, offering the comma list
 * offered_protocols (p == NULL for none). Returns 0 and fills r, or
 * WSB_EHTTP_STATUS (not 101: h->status says which), WSB_EHTTP_UPGRADE,
 * WSB_EHTTP_ACCEPT, WSB_EHTTP_PROTOCOL or WSB_EHTTP_EXTENSION.
 */
int wsb_handshake_check_response(const struct wsb_http_head *h, const char *expected_accept,
                                 struct wsb_slice offered_protocols,
                                 struct wsb_upgrade_response *r);

#endif
