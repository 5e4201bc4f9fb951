/* Project error codes beside libuv's UV_E* codes: one table that also yields their names. */
#ifndef WSB_ERRORS_H
#define WSB_ERRORS_H

/*
 * XX(NAME, value, message). Values sit far below -4096 so they never collide
 * with -errno or libuv's UV_E* codes, which functions here also return.
 * Groups: parsers, WebSocket framing, HTTP/handshake, configuration, runtime.
 */
#define WSB_ERRNO_MAP(XX)                                                                     \
  XX(PARTIAL, -20000, "more input needed")                                                    \
  /* WebSocket framing (RFC 6455 section 5); the close code each earns is in frame.c */       \
  XX(ERSV, -20100, "reserved bits set without a negotiated extension")                        \
  XX(EOPCODE, -20101, "unknown opcode")                                                       \
  XX(EUNMASKED, -20102, "client frame not masked")                                            \
  XX(EMASKED, -20103, "server frame masked")                                                  \
  XX(ECTRL_LEN, -20104, "control frame payload longer than 125 bytes")                        \
  XX(ECTRL_FRAG, -20105, "fragmented control frame")                                          \
  XX(ELEN_ENCODING, -20106, "payload length not minimally encoded")                           \
  XX(ELEN_MSB, -20107, "64-bit payload length with the most significant bit set")             \
  XX(ECONT, -20108, "continuation frame without a message to continue")                       \
  XX(ENOT_CONT, -20109, "new data frame inside a fragmented message")                         \
  XX(ETOO_BIG, -20110, "message larger than the limit")                                       \
  XX(EUTF8, -20111, "invalid UTF-8")                                                          \
  XX(ECLOSE_LEN, -20112, "close frame payload of one byte")                                   \
  XX(ECLOSE_CODE, -20113, "close code not allowed on the wire")                               \
  XX(EINFLATE, -20114, "compressed message does not inflate")                                 \
  /* HTTP and the upgrade handshake */                                                        \
  XX(EHTTP, -20200, "malformed HTTP message")                                                 \
  XX(EHEAD_TOO_LARGE, -20201, "HTTP head larger than the limit")                              \
  XX(ETOO_MANY_HEADERS, -20202, "too many header fields")                                     \
  XX(EHTTP_STATUS, -20203, "backend answered with a status other than 101")                   \
  XX(EHTTP_ACCEPT, -20204, "backend's Sec-WebSocket-Accept does not match")                   \
  XX(EHTTP_UPGRADE, -20205, "backend's 101 lacks Upgrade: websocket or Connection: upgrade")  \
  XX(EHTTP_PROTOCOL, -20206, "backend chose a subprotocol the client did not offer")          \
  XX(EHTTP_EXTENSION, -20207, "backend chose an extension nobody offered")                    \
  XX(EPATH, -20208, "request path refused (dot segments above the root, encoded separators)") \
  XX(EPROXY, -20209, "no valid PROXY protocol header")                                        \
  XX(ECHUNKED, -20210, "malformed chunked body")                                              \
  XX(EBODY_TOO_LARGE, -20211, "HTTP body larger than the limit")                              \
  XX(EEXTENSIONS, -20212, "malformed Sec-WebSocket-Extensions")                               \
  /* configuration */                                                                         \
  XX(ECONFIG, -20300, "configuration error")                                                  \
  XX(EVALUE, -20301, "bad value")                                                             \
  XX(ERANGE_VALUE, -20302, "value out of range")                                              \
  /* JSON request bodies (json_read.c); parse errors also give a byte offset */               \
  XX(EJSON, -20500, "malformed JSON")                                                         \
  XX(EJSON_DEPTH, -20501, "JSON nested too deeply")                                           \
  XX(EJSON_DUP_KEY, -20502, "duplicate key in a JSON object")                                 \
  XX(EJSON_TOO_MANY, -20503, "JSON text has too many values")                                 \
  XX(EJSON_TYPE, -20504, "JSON value of the wrong type")                                      \
  XX(EJSON_ABSENT, -20505, "JSON member absent")                                              \
  /* runtime */                                                                               \
  XX(ENOBACKEND, -20400, "no backend available")                                              \
  XX(ELIMIT, -20401, "session limit reached")                                                 \
  XX(EADMIN, -20402, "moved or closed through the admin API")                                 \
  XX(ETLS, -20403, "TLS handshake failed")                                                    \
  XX(ETLS_RECORD, -20404, "TLS error after the handshake")                                    \
  XX(ESTATE, -20405, "malformed session state message")                                       \
  XX(ESTATE_VERSION, -20406, "session state message of another format version")

enum wsb_errno {
#define WSB_XX(name, value, msg) WSB_##name = (value),
  WSB_ERRNO_MAP(WSB_XX)
#undef WSB_XX
};

/* The symbolic name ("WSB_EUTF8", "ECONNREFUSED", ...) of any code this project returns. */
const char *wsb_err_name(int err);
/* A human sentence for any code: project codes, UV_E* codes and -errno values. */
const char *wsb_strerror(int err);

#endif
