/* HTTP/1.1 message framing for the plain proxy: where bodies end, chunked, smuggling checks. */
#ifndef WSB_HTTP1_H
#define WSB_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "handshake.h"
#include "http.h"

/* How a message's body is delimited (RFC 9112 6.3). */
enum wsb_body_kind {
  WSB_BODY_NONE,    /* no body at all (HEAD, 1xx, 204, 304, a request without framing) */
  WSB_BODY_LENGTH,  /* Content-Length bytes, possibly 0 */
  WSB_BODY_CHUNKED, /* Transfer-Encoding: chunked, ending with its last chunk and trailers */
  WSB_BODY_CLOSE,   /* a response that ends when its connection does */
};

/* Where a body is. Starts zeroed but for kind, left (LENGTH) and max. */
struct wsb_body {
  uint8_t kind;   /* enum wsb_body_kind */
  uint8_t state;  /* private: the chunked parser's state */
  uint8_t digits; /* private: hex digits of the chunk size read so far */
  bool done;      /* the body ended: what follows is the next message */
  uint32_t line;  /* private: bytes of the current chunk extension or of the trailers */
  uint64_t left;  /* LENGTH: bytes still to come; CHUNKED: of the current chunk */
  uint64_t data;  /* payload bytes seen so far, without chunked framing */
  uint64_t max;   /* payload bytes allowed, WSB_EBODY_TOO_LARGE past them; 0 = no limit */
};

/* What wsb_http1_check_request() finds in a plain request. */
struct wsb_http1_request {
  struct wsb_body body;
  bool keep_alive;      /* the client may send another request on the connection */
  bool expect_continue; /* Expect: 100-continue from an HTTP/1.1 client */
};

/*
 * Checks a complete plain (not upgrade) request head before it is proxied. Returns 0 and fills
 * u (target, path without dot segments, host: as wsb_handshake_check_request() does; free it
 * with wsb_upgrade_request_free()) and r, or the status to answer: 400 for a malformed request
 * and every smuggling-prone one (Transfer-Encoding together with Content-Length, several
 * differing Content-Length values or one that is not digits, Transfer-Encoding in HTTP/1.0 or
 * not ending in chunked, no Host or several in HTTP/1.1, a target that is not origin or
 * absolute form, a path wsb_uri_path_check() refuses), 417 for an Expect other than
 * 100-continue, 501 for CONNECT or a transfer coding other than chunked, 505 for a version
 * other than 1.x, 500 when memory runs out. Obsolete line folding never gets here: the head
 * parser refuses it. r->body.max is max_body (0 = no limit); a Content-Length above it is left
 * for the caller to answer 413.
 */
int wsb_http1_check_request(const struct wsb_http_head *h, uint64_t max_body,
                            struct wsb_upgrade_request *u, struct wsb_http1_request *r);

/*
 * How the body of a backend's complete response head h to a request of method (enum
 * llhttp_method) is delimited, into b; *reusable is whether the backend connection may carry
 * another request once the body is done. Returns 0, or WSB_EHTTP for an answer a proxy must
 * not pass on: Transfer-Encoding together with Content-Length, differing or malformed
 * Content-Length values, a transfer coding other than chunked, a 101 nobody asked for.
 */
int wsb_http1_check_response(const struct wsb_http_head *h, uint8_t method, struct wsb_body *b,
                             bool *reusable);

/*
 * The next span of a body from buf: returns its length, with *data true when it is payload and
 * false when it is chunked framing (sizes, extensions, line ends, trailers); 0 once the body is
 * done (b->done) or when len is 0; WSB_ECHUNKED on a chunked encoding not exactly as RFC 9112 7.1
 * writes it (a size that is not 1 to 15 hex digits right before CRLF or ';', a missing CRLF
 * after data, a bare LF, a control byte in an extension, an extension or trailer section over
 * 4 KiB, folded trailer lines); WSB_EBODY_TOO_LARGE once the payload passes b->max. Spans
 * never cross the end of the body. Incremental: any split of the input gives the same spans'
 * bytes and the same verdict.
 */
ssize_t wsb_body_step(struct wsb_body *b, const char *buf, size_t len, bool *data);

/* How many bytes at the start of buf belong to the body (all spans, framing too), or the error
   of wsb_body_step(). */
ssize_t wsb_body_feed(struct wsb_body *b, const char *buf, size_t len);

/* How the client gets an answer: wsb_http1_response_write's how, or-ed. */
enum {
  WSB_HTTP1_DECHUNK = 1,    /* an HTTP/1.0 client: a chunked body's payload, read until the close */
  WSB_HTTP1_RECHUNK = 2,    /* an HTTP/1.1 client: a body ending at the backend's close, chunked */
  WSB_HTTP1_CLOSE = 4,      /* Connection: close */
  WSB_HTTP1_KEEP_ALIVE = 8, /* Connection: keep-alive, without which an HTTP/1.0 client closes */
};

/*
 * Writes the response head for the client from the backend's head h: its status and reason,
 * its end-to-end headers, the framing the client gets (Content-Length for a LENGTH body;
 * Transfer-Encoding: chunked for a CHUNKED one unless WSB_HTTP1_DECHUNK, where the client reads
 * until the close instead, and for a CLOSE one with WSB_HTTP1_RECHUNK), and the Connection
 * header how asks for. Returns its length or -ENOSPC.
 */
ssize_t wsb_http1_response_write(char *out, size_t cap, const struct wsb_http_head *h,
                                 const struct wsb_body *b, unsigned how);

/* The size line of a chunk of len bytes (hex digits, CRLF) into out; returns its length. */
#define WSB_HTTP1_CHUNK_HEAD_MAX 20
size_t wsb_http1_chunk_head(char out[WSB_HTTP1_CHUNK_HEAD_MAX], uint64_t len);

#endif
