/* HAProxy's PROXY protocol (versions 1 and 2): the header a balancer in front puts before a
 * connection's bytes, read and written. */
#ifndef WSB_PROXY_PROTOCOL_H
#define WSB_PROXY_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The values of [listen] proxy_protocol and [upstream] send_proxy_protocol, in this order. */
enum wsb_pp_mode { WSB_PP_OFF, WSB_PP_V1, WSB_PP_V2, WSB_PP_ANY };

#define WSB_PP_V1_MAX     107  /* a v1 line, "PROXY" to CRLF, is never longer (the spec's bound) */
#define WSB_PP_V2_FIXED   16   /* signature, version and command, family, length */
#define WSB_PP_V2_MAX_LEN 2048 /* wsbal's bound on a v2 header's addresses and TLVs */
#define WSB_PP_MAX        (WSB_PP_V2_FIXED + WSB_PP_V2_MAX_LEN)

/* Why a header was refused, in the order of wsbal_proxy_protocol_errors_total{reason}. The
   parser finds the first five; the worker adds a peer that closed or stalled inside one. */
#define WSB_PP_ERRORS(XX)        \
  XX(MISSING, "missing")         \
  XX(MALFORMED, "malformed")     \
  XX(VERSION, "version")         \
  XX(TOO_LONG, "too_long")       \
  XX(UNSUPPORTED, "unsupported") \
  XX(TRUNCATED, "truncated")     \
  XX(TIMEOUT, "timeout")

enum wsb_pp_error {
#define WSB_XX(name, label) WSB_PP_ERR_##name,
  WSB_PP_ERRORS(WSB_XX)
#undef WSB_XX
      WSB_PP_ERR_COUNT
};

/* The label of a reason ("missing", ...). */
const char *wsb_pp_error_name(enum wsb_pp_error e);

/* What a header says. */
struct wsb_pp_header {
  uint8_t version; /* 1 or 2 */
  /* v2 LOCAL, v1 UNKNOWN, v2 PROXY over AF_UNSPEC: no addresses, the connection's own stand
     (a balancer's own health check, or a client it could not describe). */
  bool local;
  uint8_t family; /* AF_INET or AF_INET6 when not local, else 0 */
  uint8_t src[16];
  uint8_t dst[16]; /* IPv4 in the first 4 bytes */
  uint16_t src_port;
  uint16_t dst_port;
};

/*
 * Parses the header at the start of buf[0..len), the bytes received so far, in the versions
 * mode allows (v1, v2 or any; not off). Pure, and from the start at every call. Returns the
 * header's length once it is whole (the bytes after it are the connection's own), WSB_PARTIAL
 * while more bytes are needed, or WSB_EPROXY with *why set: missing (the bytes are not a
 * header: "GET /", a TLS ClientHello), malformed, version (one mode does not allow, or a v2
 * version nibble other than 2), too_long (a v1 line past 107 bytes, a v2 length past
 * WSB_PP_V2_MAX_LEN), unsupported (v2 UNIX sockets or datagrams).
 */
ssize_t wsb_pp_parse(const uint8_t *buf, size_t len, enum wsb_pp_mode mode,
                     struct wsb_pp_header *out, enum wsb_pp_error *why);

/* Whether bytes refused as missing begin like an HTTP request line (an upper-case method and
   a space, or a prefix of one), which is answered 400 rather than closed. */
bool wsb_pp_looks_like_http(const uint8_t *buf, size_t len);

/* Fills h for wsb_pp_write: PROXY from src to dst, where an IPv4 end beside an IPv6 one is
   mapped into IPv6 (::ffff:a.b.c.d); LOCAL when either family is neither AF_INET nor AF_INET6. */
void wsb_pp_set_ends(struct wsb_pp_header *h, int src_family, const uint8_t *src, uint16_t src_port,
                     int dst_family, const uint8_t *dst, uint16_t dst_port);

/*
 * Writes a header of version 1 or 2 for h into out (at least WSB_PP_V1_MAX + 1 bytes, which
 * also holds every v2 header written here): PROXY with h's addresses, or, when h->local, v2 LOCAL
 * or v1 "PROXY UNKNOWN". Returns its length.
 */
size_t wsb_pp_write(uint8_t *out, size_t cap, int version, const struct wsb_pp_header *h);

#endif
