/* Unit tests for common/http.c: incremental head parsing, limits, strict line syntax, lookups. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "http.h"
#include "run_suite.h"

#define LIT(s) s, sizeof(s) - 1

static const char upgrade_request[] = "GET /chat?room=1 HTTP/1.1\r\n"
                                      "Host: server.example.com\r\n"
                                      "Upgrade: websocket\r\n"
                                      "Connection: Upgrade\r\n"
                                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                      "Origin: http://example.com\r\n"
                                      "Sec-WebSocket-Protocol: chat, superchat\r\n"
                                      "Sec-WebSocket-Version: 13\r\n"
                                      "\r\n";

static const char upgrade_response[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                       "Upgrade: websocket\r\n"
                                       "Connection: Upgrade\r\n"
                                       "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                                       "Sec-WebSocket-Protocol: chat\r\n"
                                       "\r\n";

/* A masked text frame "Hello" (RFC 6455 5.7), the kind of bytes that follow a head. */
static const char frame[] = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";

/* A heap copy of exactly len bytes, so ASan sees any read past the end. */
static char *copy_exact(const char *s, size_t len) {
  char *p = malloc(len ? len : 1);
  ck_assert_ptr_nonnull(p);
  memcpy(p, s, len);
  return p;
}

/* The head a then b, stored back to back in one exact allocation. */
static char *concat_exact(const char *a, size_t alen, const char *b, size_t blen) {
  char *p = malloc(alen + blen);
  ck_assert_ptr_nonnull(p);
  memcpy(p, a, alen);
  memcpy(p + alen, b, blen);
  return p;
}

static bool slice_is(struct wsb_slice s, const char *expected) {
  return s.p != NULL && s.len == strlen(expected) && memcmp(s.p, expected, s.len) == 0;
}

#define ck_assert_slice(s, expected)                                                        \
  ck_assert_msg(slice_is((s), (expected)), "slice \"%.*s\" != \"%s\"", (int)(s).len, (s).p, \
                (expected))

/* Parses text whole from the end of an exact heap buffer; *buf must be freed by the caller. */
static ssize_t parse_whole(struct wsb_http_head *h, bool response, size_t max, const char *text,
                           size_t len, char **buf) {
  *buf = copy_exact(text, len);
  wsb_http_head_init(h, response, max);
  return wsb_http_feed(h, *buf, len);
}

/* Feeds buf one byte at a time; returns the first non-partial result and where it came. */
static ssize_t feed_bytewise(struct wsb_http_head *h, const char *buf, size_t len, size_t *at) {
  for (size_t i = 0; i < len; i++) {
    ssize_t rc = wsb_http_feed(h, buf + i, 1);
    if (rc != WSB_PARTIAL) {
      *at = i;
      return rc;
    }
  }
  *at = len;
  return WSB_PARTIAL;
}

static void assert_same_head(const struct wsb_http_head *a, const struct wsb_http_head *b) {
  ck_assert(a->complete && b->complete);
  ck_assert_uint_eq(a->seen, b->seen);
  ck_assert_ptr_eq(a->url.p, b->url.p);
  ck_assert_uint_eq(a->url.len, b->url.len);
  ck_assert_ptr_eq(a->reason.p, b->reason.p);
  ck_assert_uint_eq(a->reason.len, b->reason.len);
  ck_assert_uint_eq(a->status, b->status);
  ck_assert_uint_eq(a->method, b->method);
  ck_assert_uint_eq(a->http_major, b->http_major);
  ck_assert_uint_eq(a->http_minor, b->http_minor);
  ck_assert_uint_eq(a->nheaders, b->nheaders);
  for (size_t i = 0; i < a->nheaders; i++) {
    ck_assert_ptr_eq(a->headers[i].name.p, b->headers[i].name.p);
    ck_assert_uint_eq(a->headers[i].name.len, b->headers[i].name.len);
    ck_assert_ptr_eq(a->headers[i].value.p, b->headers[i].value.p);
    ck_assert_uint_eq(a->headers[i].value.len, b->headers[i].value.len);
  }
}

START_TEST(test_request_fields) {
  struct wsb_http_head h;
  char *buf;
  size_t len = sizeof(upgrade_request) - 1;
  ck_assert_int_eq(parse_whole(&h, false, 16384, upgrade_request, len, &buf), (ssize_t)len);
  ck_assert(h.complete);
  ck_assert_uint_eq(h.seen, len);
  ck_assert_uint_eq(h.method, HTTP_GET);
  ck_assert_uint_eq(h.http_major, 1);
  ck_assert_uint_eq(h.http_minor, 1);
  ck_assert_slice(h.url, "/chat?room=1");
  ck_assert_uint_eq(h.nheaders, 7);
  static const char *const names[] = {"Host",
                                      "Upgrade",
                                      "Connection",
                                      "Sec-WebSocket-Key",
                                      "Origin",
                                      "Sec-WebSocket-Protocol",
                                      "Sec-WebSocket-Version"};
  static const char *const values[] = {
      "server.example.com", "websocket",       "Upgrade", "dGhlIHNhbXBsZSBub25jZQ==",
      "http://example.com", "chat, superchat", "13"};
  for (size_t i = 0; i < 7; i++) {
    ck_assert_slice(h.headers[i].name, names[i]);
    ck_assert_slice(h.headers[i].value, values[i]);
  }
  free(buf);
}
END_TEST

/* A head parsed again into the same struct (a keep-alive connection's next request), with its
   names arriving a byte at a time: nothing of the earlier head's header table shows through
   (wsb_http_head_init leaves the table and clears each slot as it is reached). */
START_TEST(test_reused_head_fresh_names) {
  struct wsb_http_head h;
  char *first;
  size_t len = sizeof(upgrade_request) - 1;
  ck_assert_int_eq(parse_whole(&h, false, 16384, upgrade_request, len, &first), (ssize_t)len);
  ck_assert_uint_eq(h.nheaders, 7);
  static const char next[] = "GET /b HTTP/1.1\r\nA: 1\r\nBc: 2\r\nX-Y: \r\n\r\n";
  char *buf = copy_exact(next, sizeof(next) - 1);
  wsb_http_head_init(&h, false, 16384);
  size_t at;
  ck_assert_int_gt(feed_bytewise(&h, buf, sizeof(next) - 1, &at), 0);
  ck_assert(h.complete);
  ck_assert_uint_eq(h.seen, sizeof(next) - 1);
  ck_assert_uint_eq(h.nheaders, 3);
  ck_assert_slice(h.headers[0].name, "A");
  ck_assert_slice(h.headers[0].value, "1");
  ck_assert_slice(h.headers[1].name, "Bc");
  ck_assert_slice(h.headers[1].value, "2");
  ck_assert_slice(h.headers[2].name, "X-Y");
  ck_assert_slice(h.headers[2].value, "");
  ck_assert_ptr_null(wsb_http_find(&h, "Host", NULL));
  free(buf);
  free(first);
}
END_TEST

START_TEST(test_response_fields) {
  struct wsb_http_head h;
  char *buf;
  size_t len = sizeof(upgrade_response) - 1;
  ck_assert_int_eq(parse_whole(&h, true, 16384, upgrade_response, len, &buf), (ssize_t)len);
  ck_assert_uint_eq(h.status, 101);
  ck_assert_slice(h.reason, "Switching Protocols");
  ck_assert_uint_eq(h.nheaders, 4);
  ck_assert_slice(h.headers[2].name, "Sec-WebSocket-Accept");
  ck_assert_slice(h.headers[2].value, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  free(buf);

  /* A status line without a reason phrase is common and harmless. */
  ck_assert_int_eq(
      parse_whole(&h, true, 100, LIT("HTTP/1.1 101\r\nUpgrade: websocket\r\n\r\n"), &buf), 36);
  ck_assert_uint_eq(h.status, 101);
  ck_assert_uint_eq(h.reason.len, 0);
  free(buf);

  ck_assert_int_eq(
      parse_whole(&h, true, 100, LIT("HTTP/1.1 503 Service Unavailable\r\n\r\n"), &buf), 36);
  ck_assert_uint_eq(h.status, 503);
  ck_assert_uint_eq(h.nheaders, 0);
  free(buf);
}
END_TEST

/* Every strict prefix is partial; the whole is complete, at the end of an exact buffer. */
static void check_prefixes(bool response, const char *text, size_t len) {
  for (size_t k = 0; k < len; k++) {
    struct wsb_http_head h;
    char *buf;
    ck_assert_int_eq(parse_whole(&h, response, 16384, text, k, &buf), WSB_PARTIAL);
    ck_assert(!h.complete);
    ck_assert_uint_eq(h.seen, k);
    free(buf);
  }
  /* Then the rest after each prefix, in the same buffer: the second call consumes len - k. */
  char *buf = copy_exact(text, len);
  struct wsb_http_head whole;
  wsb_http_head_init(&whole, response, 16384);
  ck_assert_int_eq(wsb_http_feed(&whole, buf, len), (ssize_t)len);
  for (size_t k = 0; k < len; k++) {
    struct wsb_http_head h;
    wsb_http_head_init(&h, response, 16384);
    ck_assert_int_eq(wsb_http_feed(&h, buf, k), WSB_PARTIAL);
    ck_assert_int_eq(wsb_http_feed(&h, buf + k, len - k), (ssize_t)(len - k));
    assert_same_head(&whole, &h);
  }
  free(buf);
}

START_TEST(test_request_prefixes) {
  check_prefixes(false, LIT(upgrade_request));
}
END_TEST

START_TEST(test_response_prefixes) {
  check_prefixes(true, LIT(upgrade_response));
}
END_TEST

static void check_bytewise(bool response, const char *text, size_t len) {
  char *buf = copy_exact(text, len);
  struct wsb_http_head whole, h;
  wsb_http_head_init(&whole, response, 16384);
  ck_assert_int_eq(wsb_http_feed(&whole, buf, len), (ssize_t)len);
  wsb_http_head_init(&h, response, 16384);
  size_t at;
  ck_assert_int_eq(feed_bytewise(&h, buf, len, &at), 1);
  ck_assert_uint_eq(at, len - 1);
  assert_same_head(&whole, &h);
  free(buf);
}

START_TEST(test_bytewise_same_slices) {
  check_bytewise(false, LIT(upgrade_request));
  check_bytewise(true, LIT(upgrade_response));
  /* Values with inner and trailing whitespace, split everywhere. */
  check_bytewise(false, LIT("GET / HTTP/1.1\r\nX-A:  a b \t \r\nX-B:\r\nX-C:\t\tc\r\n\r\n"));
}
END_TEST

/* WebSocket frames sent right behind the head are not the head's. */
START_TEST(test_bytes_after_head_not_consumed) {
  size_t hlen = sizeof(upgrade_request) - 1, flen = sizeof(frame) - 1;
  char *buf = concat_exact(upgrade_request, hlen, frame, flen);
  struct wsb_http_head h;
  wsb_http_head_init(&h, false, 16384);
  ck_assert_int_eq(wsb_http_feed(&h, buf, hlen + flen), (ssize_t)hlen);
  ck_assert_uint_eq(h.seen, hlen);
  /* Split anywhere inside the head: the second call consumes only the head's remainder. */
  for (size_t k = 0; k < hlen; k++) {
    wsb_http_head_init(&h, false, 16384);
    ck_assert_int_eq(wsb_http_feed(&h, buf, k), WSB_PARTIAL);
    ck_assert_int_eq(wsb_http_feed(&h, buf + k, hlen + flen - k), (ssize_t)(hlen - k));
  }
  free(buf);

  size_t rlen = sizeof(upgrade_response) - 1;
  buf = concat_exact(upgrade_response, rlen, frame, flen);
  wsb_http_head_init(&h, true, 16384);
  ck_assert_int_eq(wsb_http_feed(&h, buf, rlen + flen), (ssize_t)rlen);
  free(buf);

  /* A second request pipelined behind a plain one is not swallowed either. */
  static const char two[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
  buf = copy_exact(LIT(two));
  wsb_http_head_init(&h, false, 16384);
  ck_assert_int_eq(wsb_http_feed(&h, buf, sizeof(two) - 1), 28);
  ck_assert_slice(h.url, "/a");
  free(buf);
}
END_TEST

/* A request with a body, or none at all, still completes at the end of its head. */
START_TEST(test_plain_requests_complete_at_head) {
  struct wsb_http_head h;
  char *buf;
  ck_assert_int_eq(
      parse_whole(&h, false, 100, LIT("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"), &buf), 34);
  ck_assert(h.complete);
  free(buf);
  static const char post[] = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
  ck_assert_int_eq(parse_whole(&h, false, 100, LIT(post), &buf), (ssize_t)sizeof(post) - 1 - 5);
  ck_assert_uint_eq(h.method, HTTP_POST);
  free(buf);
  /* Empty lines before a request line are tolerated (RFC 9112 2.2). */
  ck_assert_int_eq(parse_whole(&h, false, 100, LIT("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), &buf),
                   29);
  ck_assert_slice(h.url, "/");
  free(buf);
  /* HTTP/1.0 parses; refusing it is the handshake check's business. */
  ck_assert_int_eq(parse_whole(&h, false, 100, LIT("GET / HTTP/1.0\r\n\r\n"), &buf), 18);
  ck_assert_uint_eq(h.http_minor, 0);
  free(buf);
}
END_TEST

START_TEST(test_value_whitespace_trimmed) {
  static const char req[] = "GET / HTTP/1.1\r\n"
                            "X-A: a \t \r\n"
                            "X-B:   \r\n"
                            "X-C:\tin  side\t\r\n"
                            "X-D:\r\n"
                            "\r\n";
  struct wsb_http_head h;
  char *buf;
  ck_assert_int_eq(parse_whole(&h, false, 200, LIT(req), &buf), (ssize_t)sizeof(req) - 1);
  ck_assert_uint_eq(h.nheaders, 4);
  ck_assert_slice(h.headers[0].value, "a");
  ck_assert_slice(h.headers[1].value, "");
  ck_assert_slice(h.headers[2].value, "in  side");
  ck_assert_slice(h.headers[3].value, "");
  /* An empty value still points into the buffer, so it reads as present. */
  ck_assert_ptr_nonnull(h.headers[3].value.p);
  ck_assert(h.headers[3].value.p >= buf && h.headers[3].value.p <= buf + sizeof(req) - 1);
  free(buf);
}
END_TEST

START_TEST(test_max_bytes_boundary) {
  size_t len = sizeof(upgrade_request) - 1, flen = sizeof(frame) - 1;
  struct wsb_http_head h;
  char *buf;
  ck_assert_int_eq(parse_whole(&h, false, len, upgrade_request, len, &buf), (ssize_t)len);
  free(buf);
  ck_assert_int_eq(parse_whole(&h, false, len - 1, upgrade_request, len, &buf),
                   WSB_EHEAD_TOO_LARGE);
  free(buf);

  /* Exactly at the limit with frames behind it: the frames do not count against it. */
  buf = concat_exact(upgrade_request, len, frame, flen);
  wsb_http_head_init(&h, false, len);
  ck_assert_int_eq(wsb_http_feed(&h, buf, len + flen), (ssize_t)len);
  wsb_http_head_init(&h, false, len - 1);
  ck_assert_int_eq(wsb_http_feed(&h, buf, len + flen), WSB_EHEAD_TOO_LARGE);
  free(buf);

  /* Byte by byte, the limit trips at the first byte past it, not at a line end. */
  buf = copy_exact(upgrade_request, len);
  size_t at;
  wsb_http_head_init(&h, false, len);
  ck_assert_int_eq(feed_bytewise(&h, buf, len, &at), 1);
  ck_assert_uint_eq(at, len - 1);
  for (size_t max = 0; max < len; max++) {
    wsb_http_head_init(&h, false, max);
    ck_assert_int_eq(feed_bytewise(&h, buf, len, &at), WSB_EHEAD_TOO_LARGE);
    ck_assert_uint_eq(at, max);
  }
  free(buf);

  /* Mid-line: a long value that never ends is stopped as soon as it passes the limit. */
  char big[300];
  memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
  memset(big + 19, 'v', sizeof(big) - 19);
  ck_assert_int_eq(parse_whole(&h, false, 100, big, 100, &buf), WSB_PARTIAL);
  free(buf);
  ck_assert_int_eq(parse_whole(&h, false, 100, big, 101, &buf), WSB_EHEAD_TOO_LARGE);
  free(buf);
}
END_TEST

/* A request with n headers "X-<i>: v", in an exact heap buffer. */
static char *many_headers(size_t n, size_t *len) {
  size_t cap = 32 + n * 16;
  char *text = malloc(cap);
  ck_assert_ptr_nonnull(text);
  size_t off = (size_t)snprintf(text, cap, "GET / HTTP/1.1\r\n");
  for (size_t i = 0; i < n; i++)
    off += (size_t)snprintf(text + off, cap - off, "X-%zu: v\r\n", i);
  off += (size_t)snprintf(text + off, cap - off, "\r\n");
  char *exact = copy_exact(text, off);
  free(text);
  *len = off;
  return exact;
}

START_TEST(test_too_many_headers) {
  size_t len, at;
  struct wsb_http_head h;
  char *buf = many_headers(WSB_HTTP_MAX_HEADERS, &len);
  wsb_http_head_init(&h, false, 1 << 20);
  ck_assert_int_eq(wsb_http_feed(&h, buf, len), (ssize_t)len);
  ck_assert_uint_eq(h.nheaders, WSB_HTTP_MAX_HEADERS);
  ck_assert_slice(h.headers[WSB_HTTP_MAX_HEADERS - 1].name, "X-99");
  free(buf);

  buf = many_headers(WSB_HTTP_MAX_HEADERS + 1, &len);
  wsb_http_head_init(&h, false, 1 << 20);
  ck_assert_int_eq(wsb_http_feed(&h, buf, len), WSB_ETOO_MANY_HEADERS);
  ck_assert_int_eq(wsb_http_feed(&h, buf, len), WSB_ETOO_MANY_HEADERS);
  wsb_http_head_init(&h, false, 1 << 20);
  ck_assert_int_eq(feed_bytewise(&h, buf, len, &at), WSB_ETOO_MANY_HEADERS);
  /* The verdict comes at the first byte of the 101st header line. */
  ck_assert_int_eq(buf[at], 'X');
  ck_assert_int_eq(buf[at - 1], '\n');
  free(buf);
}
END_TEST

struct bad_case {
  const char *name;
  bool response;
  const char *text;
  size_t len;
};

#define BAD(name, response, lit) \
  { name, response, lit, sizeof(lit) - 1 }

static const struct bad_case bad_cases[] = {
    BAD("space before colon", false, "GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
    BAD("tab before colon", false, "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"),
    BAD("empty name", false, "GET / HTTP/1.1\r\n: a\r\n\r\n"),
    BAD("name without colon", false, "GET / HTTP/1.1\r\nHost\r\n\r\n"),
    BAD("bare LF after request line", false, "GET / HTTP/1.1\nHost: a\r\n\r\n"),
    BAD("bare LF after header", false, "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n"),
    BAD("bare LF ending head", false, "GET / HTTP/1.1\r\nHost: a\r\n\n"),
    BAD("all bare LF", false, "GET / HTTP/1.1\nHost: a\n\n"),
    BAD("bare LF before request line", false, "\nGET / HTTP/1.1\r\n\r\n"),
    BAD("bare CR in value", false, "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"),
    BAD("CR then garbage at end", false, "GET / HTTP/1.1\r\nHost: a\r\n\rX"),
    BAD("paren in name", false, "GET / HTTP/1.1\r\nHo(st: a\r\n\r\n"),
    BAD("slash in name", false, "GET / HTTP/1.1\r\nHo/st: a\r\n\r\n"),
    BAD("space in name", false, "GET / HTTP/1.1\r\nHo st: a\r\n\r\n"),
    BAD("nul in name", false, "GET / HTTP/1.1\r\nHo\0st: a\r\n\r\n"),
    BAD("obs-fold with space", false, "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n"),
    BAD("obs-fold with tab", false, "GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n"),
    BAD("obs-fold after empty value", false, "GET / HTTP/1.1\r\nX:\r\n b\r\n\r\n"),
    BAD("first header folded", false, "GET / HTTP/1.1\r\n Host: a\r\n\r\n"),
    BAD("control char in value", false, "GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n"),
    BAD("DEL in value", false, "GET / HTTP/1.1\r\nX: a\x7fz\r\n\r\n"),
    BAD("nul in value", false, "GET / HTTP/1.1\r\nX: a\0z\r\n\r\n"),
    BAD("double space in request line", false, "GET  / HTTP/1.1\r\nHost: a\r\n\r\n"),
    BAD("space before version end", false, "GET / HTTP/1.1 \r\nHost: a\r\n\r\n"),
    BAD("leading space", false, " GET / HTTP/1.1\r\n\r\n"),
    BAD("lowercase method", false, "get / HTTP/1.1\r\n\r\n"),
    BAD("unknown method", false, "FROB / HTTP/1.1\r\n\r\n"),
    BAD("control char in target", false, "GET /a\x01 HTTP/1.1\r\n\r\n"),
    BAD("bad version", false, "GET / HTTP/x.1\r\n\r\n"),
    BAD("h2 preface", false, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    BAD("TE and CL", false,
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
    BAD("duplicate CL", false, "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"),
    BAD("binary garbage", false, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
    BAD("response bare LF", true, "HTTP/1.1 101 OK\nUpgrade: websocket\r\n\r\n"),
    BAD("response bare LF end", true, "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n\n"),
    BAD("response space before colon", true, "HTTP/1.1 101 OK\r\nUpgrade : websocket\r\n\r\n"),
    BAD("response obs-fold", true, "HTTP/1.1 101 OK\r\nX: a\r\n  b\r\n\r\n"),
    BAD("response 4-digit status", true, "HTTP/1.1 1000 OK\r\n\r\n"),
    BAD("response not HTTP", true, "HTTX/1.1 101 OK\r\n\r\n"),
    BAD("request to response parser", true, "GET / HTTP/1.1\r\n\r\n"),
    BAD("response to request parser", false, "HTTP/1.1 101 OK\r\n\r\n"),
};

#define N_BAD (sizeof(bad_cases) / sizeof(bad_cases[0]))

START_TEST(test_malformed) {
  const struct bad_case *c = &bad_cases[_i];
  struct wsb_http_head h;
  char *buf;
  ck_assert_msg(parse_whole(&h, c->response, 16384, c->text, c->len, &buf) == WSB_EHTTP,
                "whole: %s", c->name);
  /* Once rejected, always rejected. */
  ck_assert_int_eq(wsb_http_feed(&h, buf, c->len), WSB_EHTTP);
  ck_assert(!h.complete);
  size_t at;
  wsb_http_head_init(&h, c->response, 16384);
  ck_assert_msg(feed_bytewise(&h, buf, c->len, &at) == WSB_EHTTP, "bytewise: %s", c->name);
  free(buf);
}
END_TEST

START_TEST(test_feed_after_complete) {
  size_t len = sizeof(upgrade_request) - 1, flen = sizeof(frame) - 1;
  char *buf = concat_exact(upgrade_request, len, frame, flen);
  struct wsb_http_head h;
  wsb_http_head_init(&h, false, 16384);
  ck_assert_int_eq(wsb_http_feed(&h, buf, 10), WSB_PARTIAL);
  ck_assert_int_eq(wsb_http_feed(&h, buf + 10, len + flen - 10), (ssize_t)(len - 10));
  /* Nothing more is parsed: the same verdict, the same head. */
  ck_assert_int_eq(wsb_http_feed(&h, buf + len, flen), (ssize_t)(len - 10));
  ck_assert_uint_eq(h.seen, len);
  ck_assert_uint_eq(h.nheaders, 7);
  free(buf);
}
END_TEST

START_TEST(test_slice_eq_and_find) {
  struct wsb_slice s = {"Upgrade", 7};
  ck_assert(wsb_slice_eq(s, "upgrade"));
  ck_assert(wsb_slice_eq(s, "UPGRADE"));
  ck_assert(!wsb_slice_eq(s, "upgrad"));
  ck_assert(!wsb_slice_eq(s, "upgrades"));
  struct wsb_slice empty = {NULL, 0};
  ck_assert(wsb_slice_eq(empty, ""));
  ck_assert(!wsb_slice_eq(empty, "a"));

  static const char req[] = "GET / HTTP/1.1\r\nX-A: 1\r\nx-b: 2\r\nX-a: 3\r\n\r\n";
  struct wsb_http_head h;
  char *buf;
  ck_assert_int_eq(parse_whole(&h, false, 200, LIT(req), &buf), (ssize_t)sizeof(req) - 1);
  const struct wsb_header *a = wsb_http_find(&h, "x-a", NULL);
  ck_assert_ptr_eq(a, &h.headers[0]);
  const struct wsb_header *a2 = wsb_http_find(&h, "X-A", a);
  ck_assert_ptr_eq(a2, &h.headers[2]);
  ck_assert_ptr_null(wsb_http_find(&h, "X-A", a2));
  ck_assert_ptr_eq(wsb_http_find(&h, "X-B", NULL), &h.headers[1]);
  ck_assert_ptr_null(wsb_http_find(&h, "X-C", NULL));
  ck_assert_ptr_null(wsb_http_find(&h, "X", NULL));
  free(buf);
}
END_TEST

START_TEST(test_token_lists) {
  static const struct {
    const char *list;
    const char *token;
    bool has;
  } cases[] = {
      {"Upgrade", "upgrade", true},
      {"keep-alive, Upgrade", "upgrade", true},
      {"keep-alive,Upgrade", "upgrade", true},
      {" \tUpgrade\t ", "upgrade", true},
      {",,Upgrade,,", "upgrade", true},
      {"keep-alive, UPGRADE ,close", "upgrade", true},
      {"upgrades", "upgrade", false},
      {"upgrade-x", "upgrade", false},
      {"x-upgrade", "upgrade", false},
      {"up grade", "upgrade", false},
      {"", "upgrade", false},
      {", ,", "upgrade", false},
      {"keep-alive", "upgrade", false},
      {"a, b", "", false},
      {"websocket", "WebSocket", true},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct wsb_slice list = {cases[i].list, strlen(cases[i].list)};
    ck_assert_msg(wsb_token_list_has(list, cases[i].token) == cases[i].has, "\"%s\" has \"%s\"",
                  cases[i].list, cases[i].token);
  }
  /* The list is a slice: bytes after it do not count. */
  struct wsb_slice cut = {"keep-alive, upgrade", 11};
  ck_assert(!wsb_token_list_has(cut, "upgrade"));
}
END_TEST

START_TEST(test_has_token_across_headers) {
  static const char req[] = "GET / HTTP/1.1\r\n"
                            "Connection: keep-alive\r\n"
                            "Upgrade: websocket\r\n"
                            "connection: Upgrade\r\n"
                            "\r\n";
  struct wsb_http_head h;
  char *buf;
  ck_assert_int_eq(parse_whole(&h, false, 200, LIT(req), &buf), (ssize_t)sizeof(req) - 1);
  ck_assert(wsb_http_has_token(&h, "Connection", "upgrade"));
  ck_assert(wsb_http_has_token(&h, "Connection", "keep-alive"));
  ck_assert(!wsb_http_has_token(&h, "Connection", "close"));
  ck_assert(wsb_http_has_token(&h, "upgrade", "WEBSOCKET"));
  ck_assert(!wsb_http_has_token(&h, "X-Missing", "upgrade"));
  free(buf);
}
END_TEST

START_TEST(test_hop_by_hop) {
  static const char req[] = "GET / HTTP/1.1\r\n"
                            "Host: a\r\n"
                            "Connection: keep-alive, X-Private\r\n"
                            "connection: upgrade , x-other\r\n"
                            "Keep-Alive: 5\r\n"
                            "Proxy-Connection: x\r\n"
                            "Proxy-Authenticate: x\r\n"
                            "Proxy-Authorization: x\r\n"
                            "te: trailers\r\n"
                            "Trailer: x\r\n"
                            "TRANSFER-ENCODING: chunked\r\n"
                            "Upgrade: websocket\r\n"
                            "X-Private: secret\r\n"
                            "X-OTHER: 1\r\n"
                            "X-Public: 1\r\n"
                            "Cookie: a=b\r\n"
                            "\r\n";
  static const bool hop[] = {false, true, true, true, true, true,  true, true,
                             true,  true, true, true, true, false, false};
  struct wsb_http_head h;
  char *buf;
  ck_assert_int_eq(parse_whole(&h, false, 1000, LIT(req), &buf), (ssize_t)sizeof(req) - 1);
  ck_assert_uint_eq(h.nheaders, sizeof(hop) / sizeof(hop[0]));
  for (size_t i = 0; i < h.nheaders; i++)
    ck_assert_msg(wsb_http_is_hop_by_hop(&h, &h.headers[i]) == hop[i], "header %zu (%.*s)", i,
                  (int)h.headers[i].name.len, h.headers[i].name.p);
  free(buf);
}
END_TEST

START_TEST(test_reason) {
  ck_assert_str_eq(wsb_http_reason(101), "Switching Protocols");
  ck_assert_str_eq(wsb_http_reason(400), "Bad Request");
  ck_assert_str_eq(wsb_http_reason(403), "Forbidden");
  ck_assert_str_eq(wsb_http_reason(404), "Not Found");
  ck_assert_str_eq(wsb_http_reason(426), "Upgrade Required");
  ck_assert_str_eq(wsb_http_reason(431), "Request Header Fields Too Large");
  ck_assert_str_eq(wsb_http_reason(502), "Bad Gateway");
  ck_assert_str_eq(wsb_http_reason(503), "Service Unavailable");
  ck_assert_str_eq(wsb_http_reason(799), "Unknown");
}
END_TEST

START_TEST(test_error_response) {
  static const char expected_400[] = "HTTP/1.1 400 Bad Request\r\n"
                                     "Content-Type: text/plain\r\n"
                                     "Content-Length: 16\r\n"
                                     "Connection: close\r\n"
                                     "\r\n"
                                     "400 Bad Request\n";
  char out[512];
  size_t n = wsb_http_error_response(out, sizeof(out), 400, NULL);
  ck_assert_uint_eq(n, sizeof(expected_400) - 1);
  ck_assert_mem_eq(out, expected_400, n);

  static const char expected_426[] = "HTTP/1.1 426 Upgrade Required\r\n"
                                     "Content-Type: text/plain\r\n"
                                     "Content-Length: 21\r\n"
                                     "Connection: close\r\n"
                                     "Sec-WebSocket-Version: 13\r\n"
                                     "\r\n"
                                     "426 Upgrade Required\n";
  n = wsb_http_error_response(out, sizeof(out), 426, "Sec-WebSocket-Version: 13\r\n");
  ck_assert_uint_eq(n, sizeof(expected_426) - 1);
  ck_assert_mem_eq(out, expected_426, n);

  static const char expected_503[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                     "Content-Type: text/plain\r\n"
                                     "Content-Length: 24\r\n"
                                     "Connection: close\r\n"
                                     "Retry-After: 5\r\n"
                                     "\r\n"
                                     "503 Service Unavailable\n";
  n = wsb_http_error_response(out, sizeof(out), 503, "Retry-After: 5\r\n");
  ck_assert_uint_eq(n, sizeof(expected_503) - 1);
  ck_assert_mem_eq(out, expected_503, n);

  /* It must fit with its NUL: one byte short is 0, and the buffer is not overrun. */
  size_t need = sizeof(expected_400) - 1;
  char *exact = malloc(need + 1);
  ck_assert_uint_eq(wsb_http_error_response(exact, need + 1, 400, NULL), need);
  ck_assert_mem_eq(exact, expected_400, need);
  ck_assert_uint_eq(wsb_http_error_response(exact, need, 400, NULL), 0);
  ck_assert_uint_eq(wsb_http_error_response(exact, 0, 400, NULL), 0);
  free(exact);
}
END_TEST

/* A value split across two feeds is one slice of the caller's buffer. */
START_TEST(test_split_value_extends_in_place) {
  static const char req[] = "GET /long/path HTTP/1.1\r\nX-Long: abcdefghij\r\n\r\n";
  char *buf = copy_exact(LIT(req));
  const char *value = strstr(buf, "abc");
  for (size_t k = 0; k < 10; k++) {
    struct wsb_http_head h;
    wsb_http_head_init(&h, false, 200);
    size_t cut = (size_t)(value - buf) + k;
    ck_assert_int_eq(wsb_http_feed(&h, buf, cut), WSB_PARTIAL);
    ck_assert_int_eq(wsb_http_feed(&h, buf + cut, sizeof(req) - 1 - cut),
                     (ssize_t)(sizeof(req) - 1 - cut));
    ck_assert_ptr_eq(h.headers[0].value.p, value);
    ck_assert_slice(h.headers[0].value, "abcdefghij");
    ck_assert_slice(h.url, "/long/path");
  }
  free(buf);
}
END_TEST

static Suite *http_suite(void) {
  Suite *s = suite_create("http");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_request_fields);
  tcase_add_test(tc, test_reused_head_fresh_names);
  tcase_add_test(tc, test_response_fields);
  tcase_add_test(tc, test_request_prefixes);
  tcase_add_test(tc, test_response_prefixes);
  tcase_add_test(tc, test_bytewise_same_slices);
  tcase_add_test(tc, test_bytes_after_head_not_consumed);
  tcase_add_test(tc, test_plain_requests_complete_at_head);
  tcase_add_test(tc, test_value_whitespace_trimmed);
  tcase_add_test(tc, test_max_bytes_boundary);
  tcase_add_test(tc, test_too_many_headers);
  tcase_add_loop_test(tc, test_malformed, 0, N_BAD);
  tcase_add_test(tc, test_feed_after_complete);
  tcase_add_test(tc, test_slice_eq_and_find);
  tcase_add_test(tc, test_token_lists);
  tcase_add_test(tc, test_has_token_across_headers);
  tcase_add_test(tc, test_hop_by_hop);
  tcase_add_test(tc, test_reason);
  tcase_add_test(tc, test_error_response);
  tcase_add_test(tc, test_split_value_extends_in_place);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return wsb_run_suite(http_suite());
}
