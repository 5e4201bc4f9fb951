/* HTTP/1.1 request and response heads, parsed with llhttp into slices of the caller's buffer. */
#ifndef WSB_HTTP_H
#define WSB_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include <llhttp.h>

/* A piece of a buffer owned by someone else; not NUL-terminated. */
struct wsb_slice {
  const char *p;
  size_t len;
};

struct wsb_header {
  struct wsb_slice name;
  struct wsb_slice value;
};

#define WSB_HTTP_MAX_HEADERS 100

struct wsb_http_head {
  llhttp_t parser;
  size_t max_bytes;     /* WSB_EHEAD_TOO_LARGE past this many bytes of head */
  size_t seen;          /* bytes of head parsed so far; its length once complete */
  struct wsb_slice url; /* request target, for requests */
  struct wsb_slice reason;
  struct wsb_header headers[WSB_HTTP_MAX_HEADERS];
  size_t nheaders;
  uint16_t status; /* for responses */
  uint8_t method;  /* enum llhttp_method, for requests */
  uint8_t http_major;
  uint8_t http_minor;
  bool complete;  /* the blank line ending the head was seen */
  bool in_value;  /* private: the parser is inside a header value */
  uint8_t lines;  /* private: state of the line-syntax check llhttp leaves to us */
  size_t nlines;  /* private: header lines that check has seen begin */
  ssize_t result; /* private: the final verdict once complete or failed, else WSB_PARTIAL */
};

/*
 * Prepares h to parse a request (response = false) or a response head of at
 * most max_bytes bytes.
 */
void wsb_http_head_init(struct wsb_http_head *h, bool response, size_t max_bytes);

/*
 * Feeds the next bytes of the head. Every call must pass the bytes that
 * follow the previous call's, stored right after them in the same buffer, so
 * slices stay valid and contiguous. Returns, once the head is complete, how
 * many bytes of this call's buf belong to it (the rest is what follows the
 * head: WebSocket frames); WSB_PARTIAL while incomplete; WSB_EHTTP,
 * WSB_ETOO_MANY_HEADERS or WSB_EHEAD_TOO_LARGE on bad input. The verdict
 * does not depend on how the bytes were split between calls. Once the head
 * is complete or rejected, further calls parse nothing and return that same
 * result again; h->seen then holds the length of a complete head.
 */
ssize_t wsb_http_feed(struct wsb_http_head *h, const char *buf, size_t len);

/* Case-insensitive comparison of n bytes: header names and tokens are ASCII. */
bool wsb_mem_eq_nocase(const char *a, const char *b, size_t n);

/* Case-insensitive comparison of a slice with a NUL-terminated string. Inline: most callers
   name a literal, whose length the compiler knows, and most slices differ in length. */
static inline bool wsb_slice_eq(struct wsb_slice s, const char *str) {
  size_t n = strlen(str);
  return s.len == n && wsb_mem_eq_nocase(s.p, str, n);
}

/* s without the spaces and tabs around it. */
struct wsb_slice wsb_slice_trim(struct wsb_slice s);

/* The next item of a list separated by sep (untrimmed), advancing *rest past it and sep. */
struct wsb_slice wsb_slice_next_item(struct wsb_slice *rest, char sep);

/* The first header named name (case-insensitive) after `after` (NULL = from the start), or NULL. */
const struct wsb_header *wsb_http_find(const struct wsb_http_head *h, const char *name,
                                       const struct wsb_header *after);

/* True when the comma-separated list holds token (case-insensitive, spaces trimmed). */
bool wsb_token_list_has(struct wsb_slice list, const char *token);

/* True when any header named name holds token in its comma-separated value. */
bool wsb_http_has_token(const struct wsb_http_head *h, const char *name, const char *token);

/*
 * True for headers a proxy must not forward (RFC 9110 7.6.1): Connection,
 * Keep-Alive, Proxy-Connection, Proxy-Authenticate, Proxy-Authorization, TE,
 * Trailer, Transfer-Encoding, Upgrade, and every name the message's own
 * Connection header lists.
 */
bool wsb_http_is_hop_by_hop(const struct wsb_http_head *h, const struct wsb_header *hdr);

/* The standard reason phrase of a status ("Bad Request"), or "Unknown". */
const char *wsb_http_reason(int status);

/*
 * Writes a complete error answer: status line, Content-Type: text/plain,
 * Content-Length, Connection: close, extra_headers (each ending in CRLF, may
 * be NULL) and a short text body naming the status. Returns its length, or
 * 0 when it does not fit in cap.
 */
size_t wsb_http_error_response(char *out, size_t cap, int status, const char *extra_headers);

#endif
