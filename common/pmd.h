/* permessage-deflate (RFC 7692): reading a client's offers, choosing one, writing the answer. */
#ifndef WSB_PMD_H
#define WSB_PMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "http.h"

/*
 * What a session agreed with its client: the one small struct a session carries (and that a
 * session-state message hands on). Zeroed = nothing negotiated.
 */
struct wsb_pmd_params {
  bool on;                 /* permessage-deflate is in effect on the client leg */
  bool server_no_takeover; /* wsbal's compressor starts afresh for every message */
  bool client_no_takeover; /* so does the client's: wsbal's decompressor may too */
  uint8_t server_bits;     /* wsbal's LZ77 window, 9..15 (server_max_window_bits) */
};

/* The value of the answer header, at most this long (NUL included). */
#define WSB_PMD_RESPONSE_MAX 128

/*
 * Reads every Sec-WebSocket-Extensions header of a request and picks the first
 * permessage-deflate offer wsbal can accept (RFC 7692 7.1): no parameter other than the
 * four of section 7.1, none twice, no_context_takeover ones without a value, window bits
 * 8..15 in plain digits (server_max_window_bits needs one, client_max_window_bits may have
 * one). An offer breaking those is declined and the next one looked at, as the RFC asks;
 * so is server_max_window_bits=8, which zlib's raw deflate cannot produce. Other extensions
 * are ignored. With context_takeover off, both directions start afresh for every message.
 * Returns 1 with *out filled when an offer was accepted, 0 when none was (or none came), or
 * WSB_EEXTENSIONS when a header breaks RFC 6455 9.1's grammar (the upgrade gets 400).
 */
int wsb_pmd_negotiate(const struct wsb_http_head *req, bool context_takeover,
                      struct wsb_pmd_params *out);

/* The same for one header value (the fuzz target's and the tests' entry). */
int wsb_pmd_negotiate_value(struct wsb_slice value, bool context_takeover,
                            struct wsb_pmd_params *out);

/*
 * Writes the answer's Sec-WebSocket-Extensions value for p (NUL-terminated, at most
 * WSB_PMD_RESPONSE_MAX bytes with the NUL) and returns its length.
 */
size_t wsb_pmd_response(const struct wsb_pmd_params *p, char *out);

/* Adds the Sec-WebSocket-Extensions line for p to the len-byte response head in out (cap bytes),
   before its empty line. Returns the new length, or -ENOSPC. */
ssize_t wsb_pmd_response_insert(const struct wsb_pmd_params *p, char *out, size_t cap, size_t len);

#endif
