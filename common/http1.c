/* HTTP/1.1 framing for the plain proxy: request and response checks, bodies, the client's head. */
#include "http1.h"

#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "text.h"
#include "uri_path.h"
#include "values.h"

#define CL_MAX         ((uint64_t)1 << 62) /* larger Content-Length values are refused */
#define CHUNK_DIGITS   15                  /* a chunk size stays below 2^60 */
#define CHUNK_LINE_MAX 4096 /* bytes of one chunk's extensions, and of the trailer section */

static bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

/*
 * Every Content-Length line and every element of its comma list must be the same number
 * (RFC 9112 6.3 step 5 lets a recipient take "5, 5" as 5): returns 0 and *n, 1 when there is
 * no Content-Length, -1 when the values are malformed, too large or differ.
 */
static int content_length(const struct wsb_http_head *h, uint64_t *n) {
  bool seen = false;
  for (const struct wsb_header *cl = wsb_http_find(h, "Content-Length", NULL); cl != NULL;
       cl = wsb_http_find(h, "Content-Length", cl)) {
    struct wsb_slice rest = cl->value;
    do {
      struct wsb_slice item = wsb_slice_trim(wsb_slice_next_item(&rest, ','));
      if (item.len == 0 || item.len > 19)
        return -1;
      uint64_t v = 0;
      for (size_t i = 0; i < item.len; i++) {
        if (!is_digit(item.p[i]))
          return -1;
        v = v * 10 + (uint64_t)(item.p[i] - '0');
      }
      if (v > CL_MAX || (seen && v != *n))
        return -1;
      *n = v;
      seen = true;
    } while (rest.len > 0);
  }
  return seen ? 0 : 1;
}

/*
 * The transfer codings of every Transfer-Encoding line, in order: 1 when there is none, 0 when
 * they are exactly "chunked", -1 when the last is not chunked (the length cannot be known),
 * -2 when chunked is last but other codings come before it or chunked appears twice.
 */
static int transfer_encoding(const struct wsb_http_head *h) {
  int codings = 0, chunked = 0;
  bool last_chunked = false;
  for (const struct wsb_header *te = wsb_http_find(h, "Transfer-Encoding", NULL); te != NULL;
       te = wsb_http_find(h, "Transfer-Encoding", te)) {
    struct wsb_slice rest = te->value;
    while (rest.len > 0) {
      struct wsb_slice item = wsb_slice_trim(wsb_slice_next_item(&rest, ','));
      if (item.len == 0)
        continue;
      codings++;
      last_chunked = wsb_slice_eq(item, "chunked");
      chunked += last_chunked;
    }
    if (te->value.len == 0)
      return -1; /* an empty coding names nothing a length can be read from */
  }
  if (codings == 0 && wsb_http_find(h, "Transfer-Encoding", NULL) == NULL)
    return 1;
  if (!last_chunked)
    return -1;
  return codings == 1 && chunked == 1 ? 0 : -2;
}

/* A body chunked, of a length n, or else of kind otherwise (none, or until the close). */
static void set_framing(struct wsb_body *b, bool chunked, bool length, uint64_t n,
                        enum wsb_body_kind otherwise) {
  b->kind = (uint8_t)(chunked ? WSB_BODY_CHUNKED : length ? WSB_BODY_LENGTH : otherwise);
  b->left = length ? n : 0;
  b->done = (length && n == 0) || b->kind == WSB_BODY_NONE;
}

/* The request's body: a Content-Length, chunked, or none (RFC 9112 6.3 steps 3 to 7). */
static int request_body(const struct wsb_http_head *h, struct wsb_body *b) {
  uint64_t n = 0;
  int cl = content_length(h, &n);
  int te = transfer_encoding(h);
  if (te != 1 && (cl != 1 || h->http_minor == 0))
    return 400; /* both framings, or chunked from a client that cannot know it */
  if (te == -1 || cl < 0)
    return 400;
  if (te == -2)
    return 501;
  set_framing(b, te == 0, cl == 0, n, WSB_BODY_NONE);
  return 0;
}

/* The path without dot segments, copied only when it has some (as for an upgrade). */
static int request_path(struct wsb_upgrade_request *u) {
  int dots = wsb_uri_path_check(u->target);
  u->path = u->target;
  if (dots < 0)
    return 400;
  if (dots == 0)
    return 0;
  u->store = malloc(u->target.len);
  if (u->store == NULL)
    return 500;
  ssize_t n = wsb_uri_path_normalize(u->target, u->store);
  if (n < 0)
    return 400;
  u->path = (struct wsb_slice){u->store, (size_t)n};
  return 0;
}

int wsb_http1_check_request(const struct wsb_http_head *h, uint64_t max_body,
                            struct wsb_upgrade_request *u, struct wsb_http1_request *r) {
  memset(u, 0, sizeof(*u));
  memset(r, 0, sizeof(*r));
  if (h->http_major != 1)
    return 505;
  if (h->method == HTTP_CONNECT)
    return 501;
  if (!wsb_handshake_target_path(h->url, &u->target))
    return 400;
  /* RFC 9112 3.2: an HTTP/1.1 request has exactly one Host; HTTP/1.0 may have none. */
  const struct wsb_header *host = wsb_http_find(h, "Host", NULL);
  if (host != NULL && wsb_http_find(h, "Host", host) != NULL)
    return 400;
  if (h->http_minor >= 1 && (host == NULL || host->value.len == 0))
    return 400;
  if (host != NULL)
    u->host = host->value;
  int status = request_body(h, &r->body);
  if (status != 0)
    return status;
  r->body.max = max_body;
  /* RFC 9110 10.1.1: a server ignores 100-continue from HTTP/1.0 and may refuse other hopes. */
  const struct wsb_header *expect = wsb_http_find(h, "Expect", NULL);
  if (expect != NULL && h->http_minor >= 1) {
    if (wsb_http_find(h, "Expect", expect) != NULL || !wsb_slice_eq(expect->value, "100-continue"))
      return 417;
    r->expect_continue = true;
  }
  /* HTTP/1.0 keeps the connection only when asked to (RFC 9112 9.3). */
  r->keep_alive = h->http_minor >= 1 ? !wsb_http_has_token(h, "Connection", "close")
                                     : wsb_http_has_token(h, "Connection", "keep-alive");
  status = request_path(u);
  if (status != 0)
    wsb_upgrade_request_free(u);
  return status;
}

int wsb_http1_check_response(const struct wsb_http_head *h, uint8_t method, struct wsb_body *b,
                             bool *reusable) {
  memset(b, 0, sizeof(*b));
  *reusable =
      h->http_major == 1 && h->http_minor >= 1 && !wsb_http_has_token(h, "Connection", "close");
  if (h->status == 101)
    return WSB_EHTTP; /* wsbal never asks a backend to switch a plain request's protocol */
  if (method == HTTP_HEAD || h->status < 200 || h->status == 204 || h->status == 304) {
    b->kind = WSB_BODY_NONE;
    b->done = true;
    return 0;
  }
  uint64_t n = 0;
  int cl = content_length(h, &n);
  int te = transfer_encoding(h);
  if ((te != 1 && cl != 1) || cl < 0 || te < 0 || (te == 0 && h->http_minor == 0))
    return WSB_EHTTP;
  set_framing(b, te == 0, cl == 0, n, WSB_BODY_CLOSE);
  if (b->kind == WSB_BODY_CLOSE)
    *reusable = false;
  return 0;
}

/* The chunked parser's states (RFC 9112 7.1). */
enum chunk_state {
  CH_SIZE = 0, /* hex digits of the size */
  CH_EXT,      /* after ';': extensions up to the CR */
  CH_SIZE_LF,
  CH_DATA,
  CH_DATA_CR,
  CH_DATA_LF,
  CH_TRAILER_START, /* at the start of a trailer line or of the final empty line */
  CH_TRAILER,
  CH_TRAILER_LF,
  CH_END_LF,
};

/* The one byte a state accepts, which leads to next. */
static int expect_byte(struct wsb_body *b, unsigned char c, unsigned char want,
                       enum chunk_state next) {
  if (c != want)
    return WSB_ECHUNKED;
  b->state = (uint8_t)next;
  return 0;
}

/* One byte of framing. Returns 0, or WSB_ECHUNKED. */
static int chunk_byte(struct wsb_body *b, unsigned char c) {
  switch ((enum chunk_state)b->state) {
  case CH_SIZE: {
    int v = wsb_hex_digit(c);
    if (v >= 0 && b->digits < CHUNK_DIGITS) {
      b->left = b->left * 16 + (uint64_t)v;
      b->digits++;
      return 0;
    }
    if (b->digits == 0 || (c != '\r' && c != ';'))
      return WSB_ECHUNKED;
    b->state = c == '\r' ? CH_SIZE_LF : CH_EXT;
    b->line = 0;
    return 0;
  }
  case CH_EXT:
    if (c == '\r')
      return expect_byte(b, c, '\r', CH_SIZE_LF);
    if ((c < 0x20 && c != '\t') || c == 0x7f || ++b->line > CHUNK_LINE_MAX)
      return WSB_ECHUNKED;
    return 0;
  case CH_SIZE_LF:
    if (c != '\n')
      return WSB_ECHUNKED;
    b->digits = 0;
    b->line = 0;
    b->state = b->left > 0 ? CH_DATA : CH_TRAILER_START;
    return 0;
  case CH_DATA_CR:
    return expect_byte(b, c, '\r', CH_DATA_LF);
  case CH_DATA_LF:
    return expect_byte(b, c, '\n', CH_SIZE);
  case CH_TRAILER_START:
    /* A space here would fold the line before; a colon, an empty name. */
    if (c == '\r')
      return expect_byte(b, c, '\r', CH_END_LF);
    if (c == ' ' || c == '\t' || c == ':' || c == '\n')
      return WSB_ECHUNKED;
    b->state = CH_TRAILER;
    return ++b->line > CHUNK_LINE_MAX ? WSB_ECHUNKED : 0;
  case CH_TRAILER:
    if (c == '\r')
      return expect_byte(b, c, '\r', CH_TRAILER_LF);
    if (c == '\n' || c == 0 || ++b->line > CHUNK_LINE_MAX)
      return WSB_ECHUNKED;
    return 0;
  case CH_TRAILER_LF:
    return expect_byte(b, c, '\n', CH_TRAILER_START);
  case CH_END_LF:
    b->done = c == '\n';
    return b->done ? 0 : WSB_ECHUNKED;
  default:
    return WSB_ECHUNKED;
  }
}

/* Payload bytes of the current span, counted against the limit. */
static ssize_t payload(struct wsb_body *b, size_t n, bool *data) {
  b->data += n;
  if (b->max > 0 && b->data > b->max)
    return WSB_EBODY_TOO_LARGE;
  *data = true;
  return (ssize_t)n;
}

ssize_t wsb_body_step(struct wsb_body *b, const char *buf, size_t len, bool *data) {
  *data = false;
  if (b->done || len == 0)
    return 0;
  switch ((enum wsb_body_kind)b->kind) {
  case WSB_BODY_NONE:
    b->done = true;
    return 0;
  case WSB_BODY_LENGTH: {
    size_t n = len < b->left ? len : (size_t)b->left;
    b->left -= n;
    b->done = b->left == 0;
    return payload(b, n, data);
  }
  case WSB_BODY_CLOSE:
    return payload(b, len, data);
  case WSB_BODY_CHUNKED:
    break;
  }
  if (b->state == CH_DATA) {
    size_t n = len < b->left ? len : (size_t)b->left;
    b->left -= n;
    if (b->left == 0)
      b->state = CH_DATA_CR;
    return payload(b, n, data);
  }
  size_t i = 0;
  while (i < len && b->state != CH_DATA && !b->done) {
    int rc = chunk_byte(b, (unsigned char)buf[i++]);
    if (rc < 0)
      return rc;
  }
  return (ssize_t)i;
}

ssize_t wsb_body_feed(struct wsb_body *b, const char *buf, size_t len) {
  size_t used = 0;
  bool data;
  while (used < len) {
    ssize_t n = wsb_body_step(b, buf + used, len - used, &data);
    if (n < 0)
      return n;
    if (n == 0)
      break;
    used += (size_t)n;
  }
  return (ssize_t)used;
}

/* The decimal digits of v, written backwards to end (20 bytes are room for any), without
   printf's cost per answer; returns where they start. */
static const char *decimal(char *end, uint64_t v) {
  char *p = end;
  do {
    *--p = (char)('0' + v % 10);
    v /= 10;
  } while (v > 0);
  return p;
}

size_t wsb_http1_chunk_head(char out[WSB_HTTP1_CHUNK_HEAD_MAX], uint64_t len) {
  static const char hex[] = "0123456789abcdef";
  char digits[16];
  size_t n = 0;
  do {
    digits[n++] = hex[len & 15];
    len >>= 4;
  } while (len > 0);
  for (size_t i = 0; i < n; i++)
    out[i] = digits[n - 1 - i];
  out[n] = '\r';
  out[n + 1] = '\n';
  return n + 2;
}

ssize_t wsb_http1_response_write(char *out, size_t cap, const struct wsb_http_head *h,
                                 const struct wsb_body *b, unsigned how) {
  struct wsb_text o;
  char num[24];
  char *end = num + sizeof(num);
  wsb_text_init(&o, out, cap);
  wsb_text_puts(&o, "HTTP/1.1 ");
  const char *status = decimal(end, h->status);
  wsb_text_put(&o, status, (size_t)(end - status));
  wsb_text_put(&o, " ", 1);
  wsb_text_put(&o, h->reason.p, h->reason.len);
  wsb_text_put(&o, "\r\n", 2);
  /* Without a body the length describes the resource (HEAD, 304) and passes as it is. */
  bool own_length = b->kind != WSB_BODY_NONE;
  for (size_t i = 0; i < h->nheaders; i++) {
    const struct wsb_header *hdr = &h->headers[i];
    if (wsb_http_is_hop_by_hop(h, hdr) || (own_length && wsb_slice_eq(hdr->name, "Content-Length")))
      continue;
    wsb_text_put(&o, hdr->name.p, hdr->name.len);
    wsb_text_put(&o, ": ", 2);
    wsb_text_put(&o, hdr->value.p, hdr->value.len);
    wsb_text_put(&o, "\r\n", 2);
  }
  if (b->kind == WSB_BODY_LENGTH) {
    const char *length = decimal(end, b->left);
    wsb_text_puts(&o, "Content-Length: ");
    wsb_text_put(&o, length, (size_t)(end - length));
    wsb_text_put(&o, "\r\n", 2);
  } else if ((b->kind == WSB_BODY_CHUNKED && !(how & WSB_HTTP1_DECHUNK)) ||
             (b->kind == WSB_BODY_CLOSE && (how & WSB_HTTP1_RECHUNK))) {
    wsb_text_puts(&o, "Transfer-Encoding: chunked\r\n");
  }
  if (how & WSB_HTTP1_CLOSE)
    wsb_text_puts(&o, "Connection: close\r\n");
  else if (how & WSB_HTTP1_KEEP_ALIVE)
    wsb_text_puts(&o, "Connection: keep-alive\r\n");
  wsb_text_put(&o, "\r\n", 2);
  return wsb_text_length(&o);
}
