/* Unit tests for common/http1.c: plain request checks (smuggling cases), response framing,
 * bodies fed in every split, the client's response head and the backend's plain request. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "errors.h"
#include "http1.h"
#include "proxy.h"
#include "run_suite.h"

/* The copies heads are parsed from: their slices are used until the test ends (freed then). */
static char *copies[512];
static size_t ncopies;

/* Parses text as a head into h over a heap copy of exactly its length. Returns what the head
   parser says. */
static ssize_t try_parse(struct wsb_http_head *h, bool response, const char *text) {
  size_t len = strlen(text);
  ck_assert_uint_lt(ncopies, sizeof(copies) / sizeof(copies[0]));
  char *buf = copies[ncopies++] = malloc(len);
  memcpy(buf, text, len);
  wsb_http_head_init(h, response, 16384);
  return wsb_http_feed(h, buf, len);
}

static void parse(struct wsb_http_head *h, bool response, const char *text) {
  ck_assert_int_eq(try_parse(h, response, text), (ssize_t)strlen(text));
}

/*
 * The status a request earns. llhttp already refuses some smuggling cases in the head (both
 * framings, a repeated or non-numeric Content-Length), which the proxy answers with 400 as it
 * does any malformed head; http1.c checks them again, so neither alone is relied on.
 */
static int check_req(const char *text, struct wsb_http1_request *r) {
  struct wsb_http_head h;
  struct wsb_upgrade_request u;
  ssize_t parsed = try_parse(&h, false, text);
  if (parsed == WSB_EHTTP)
    return 400;
  ck_assert_int_eq(parsed, (ssize_t)strlen(text));
  int rc = wsb_http1_check_request(&h, 0, &u, r);
  if (rc == 0)
    wsb_upgrade_request_free(&u);
  return rc;
}

START_TEST(request_plain_get) {
  struct wsb_http_head h;
  struct wsb_upgrade_request u;
  struct wsb_http1_request r;
  parse(&h, false, "GET /a/./b/../c?q=1 HTTP/1.1\r\nHost: x.example\r\n\r\n");
  ck_assert_int_eq(wsb_http1_check_request(&h, 0, &u, &r), 0);
  ck_assert_int_eq(r.body.kind, WSB_BODY_NONE);
  ck_assert(r.body.done && r.keep_alive && !r.expect_continue);
  ck_assert(wsb_slice_eq(u.path, "/a/c?q=1"));
  ck_assert(wsb_slice_eq(u.host, "x.example"));
  wsb_upgrade_request_free(&u);
}
END_TEST

START_TEST(request_framing) {
  struct wsb_http1_request r;
  ck_assert_int_eq(check_req("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n", &r), 0);
  ck_assert_int_eq(r.body.kind, WSB_BODY_LENGTH);
  ck_assert_uint_eq(r.body.left, 12);
  ck_assert(!r.body.done);
  /* Even repeated identical values are refused, as nginx does (RFC 9112 6.3 allows either). */
  ck_assert_int_eq(
      check_req("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", &r),
      400);
  ck_assert_int_eq(check_req("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", &r), 0);
  ck_assert(r.body.kind == WSB_BODY_LENGTH && r.body.done);
  ck_assert_int_eq(
      check_req("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n", &r), 0);
  ck_assert_int_eq(r.body.kind, WSB_BODY_CHUNKED);
  ck_assert_int_eq(check_req("GET / HTTP/1.0\r\n\r\n", &r), 0);
  ck_assert(!r.keep_alive);
  ck_assert_int_eq(check_req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &r), 0);
  ck_assert(r.keep_alive); /* HTTP/1.0 stays only when it asks to */
  ck_assert_int_eq(check_req("GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n", &r), 0);
  ck_assert(!r.keep_alive);
  ck_assert_int_eq(
      check_req("PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n",
                &r),
      0);
  ck_assert(r.expect_continue);
  /* HTTP/1.0 clients do not know 100-continue: ignored. */
  ck_assert_int_eq(check_req("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", &r), 0);
  ck_assert(!r.expect_continue);
}
END_TEST

/* SPEC.md "Plain HTTP": each smuggling-prone request is refused with 400. */
START_TEST(request_smuggling) {
  static const char *const bad[] = {
      /* both framings */
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
      /* several differing lengths, in one line or several */
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\n",
      /* lengths that are not plain digits */
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x3\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3 3\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3,\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
      /* a coding after chunked, or chunked from HTTP/1.0 */
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunkedx\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\n\r\n",
      "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
      /* Host missing or repeated */
      "GET / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
      /* targets that are not origin or absolute form */
      "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET x.example:80 HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /a/%2e%2e/%2e%2e/etc HTTP/1.1\r\nHost: x\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct wsb_http1_request r;
    ck_assert_msg(check_req(bad[i], &r) == 400, "case %zu", i);
  }
  struct wsb_http1_request r;
  ck_assert_int_eq(
      check_req("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", &r), 501);
  ck_assert_int_eq(check_req("CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n", &r), 501);
  ck_assert_int_eq(check_req("GET / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n", &r), 417);
  /* Obsolete line folding never reaches the check: the head parser refuses it. */
  struct wsb_http_head h;
  const char fold[] = "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  2\r\n\r\n";
  wsb_http_head_init(&h, false, 16384);
  ck_assert_int_eq(wsb_http_feed(&h, fold, sizeof(fold) - 1), WSB_EHTTP);
}
END_TEST

static int check_resp(const char *text, uint8_t method, struct wsb_body *b, bool *reuse) {
  struct wsb_http_head h;
  ssize_t parsed = try_parse(&h, true, text);
  if (parsed == WSB_EHTTP)
    return WSB_EHTTP;
  ck_assert_int_eq(parsed, (ssize_t)strlen(text));
  return wsb_http1_check_response(&h, method, b, reuse);
}

START_TEST(response_framing) {
  struct wsb_body b;
  bool reuse;
  ck_assert_int_eq(check_resp("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", HTTP_GET, &b, &reuse),
                   0);
  ck_assert(b.kind == WSB_BODY_LENGTH && b.left == 7 && reuse);
  ck_assert_int_eq(
      check_resp("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", HTTP_HEAD, &b, &reuse), 0);
  ck_assert(b.kind == WSB_BODY_NONE && b.done && reuse);
  ck_assert_int_eq(check_resp("HTTP/1.1 204 No Content\r\n\r\n", HTTP_GET, &b, &reuse), 0);
  ck_assert(b.kind == WSB_BODY_NONE);
  ck_assert_int_eq(
      check_resp("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", HTTP_GET, &b, &reuse),
      0);
  ck_assert(b.kind == WSB_BODY_NONE);
  ck_assert_int_eq(check_resp("HTTP/1.1 100 Continue\r\n\r\n", HTTP_POST, &b, &reuse), 0);
  ck_assert(b.kind == WSB_BODY_NONE);
  ck_assert_int_eq(
      check_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_GET, &b, &reuse), 0);
  ck_assert(b.kind == WSB_BODY_CHUNKED && reuse);
  ck_assert_int_eq(check_resp("HTTP/1.1 200 OK\r\n\r\n", HTTP_GET, &b, &reuse), 0);
  ck_assert(b.kind == WSB_BODY_CLOSE && !reuse);
  ck_assert_int_eq(check_resp("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", HTTP_GET, &b, &reuse),
                   0);
  ck_assert(!reuse);
  ck_assert_int_eq(check_resp("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
                              HTTP_GET, &b, &reuse),
                   0);
  ck_assert(!reuse);
  static const char *const bad[] = {
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
      "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    ck_assert_msg(check_resp(bad[i], HTTP_GET, &b, &reuse) == WSB_EHTTP, "case %zu", i);
}
END_TEST

/*
 * Feeds text to a chunked body in two pieces cut at cut, or byte by byte (cut = SIZE_MAX),
 * each piece placed right before a guard page so a read past it faults. Returns the bytes of
 * the body or the error; *payload gets the data spans joined.
 */
static ssize_t feed_chunked(const char *text, size_t len, size_t cut, uint64_t max, char *payload,
                            size_t *plen) {
  long page = sysconf(_SC_PAGESIZE);
  size_t span = ((len + (size_t)page - 1) / (size_t)page + 1) * (size_t)page;
  char *map =
      mmap(NULL, span + (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ck_assert(map != MAP_FAILED);
  ck_assert_int_eq(mprotect(map + span, (size_t)page, PROT_NONE), 0);
  struct wsb_body b = {.kind = WSB_BODY_CHUNKED, .max = max};
  size_t used = 0;
  *plen = 0;
  ssize_t result = 0;
  while (used < len && !b.done) {
    size_t piece = cut == SIZE_MAX ? 1 : used < cut ? cut - used : len - used;
    char *at = map + span - piece;
    memcpy(at, text + used, piece);
    size_t off = 0;
    while (off < piece && !b.done) {
      bool data;
      ssize_t n = wsb_body_step(&b, at + off, piece - off, &data);
      if (n < 0) {
        result = n;
        goto out;
      }
      ck_assert(n > 0);
      if (data) {
        memcpy(payload + *plen, at + off, (size_t)n);
        *plen += (size_t)n;
      }
      off += (size_t)n;
    }
    used += off;
  }
  result = b.done ? (ssize_t)used : WSB_PARTIAL;
out:
  munmap(map, span + (size_t)page);
  return result;
}

/* Every cut gives the same verdict and payload as the whole. */
static ssize_t chunked_all_ways(const char *text, uint64_t max, const char *want_payload) {
  size_t len = strlen(text);
  char payload[4096];
  size_t plen;
  ssize_t whole = feed_chunked(text, len, len, max, payload, &plen);
  if (whole > 0 && want_payload != NULL) {
    ck_assert_uint_eq(plen, strlen(want_payload));
    ck_assert(memcmp(payload, want_payload, plen) == 0);
  }
  for (size_t cut = 0; cut <= len; cut++) {
    char p2[4096];
    size_t l2;
    ck_assert_int_eq(feed_chunked(text, len, cut, max, p2, &l2), whole);
    if (whole > 0)
      ck_assert(l2 == plen && memcmp(p2, payload, plen) == 0);
  }
  char p3[4096];
  size_t l3;
  ck_assert_int_eq(feed_chunked(text, len, SIZE_MAX, max, p3, &l3), whole);
  return whole;
}

START_TEST(chunked_good) {
  const char *t = "5\r\nhello\r\n1;ext=\"a b\"\r\n \r\nA\r\n0123456789\r\n0\r\n\r\n";
  ck_assert_int_eq(chunked_all_ways(t, 0, "hello 0123456789"), (ssize_t)strlen(t));
  t = "000a\r\n0123456789\r\n0\r\nX-Sum: 1\r\nX-T: 2\r\n\r\nGET / HTTP/1.1\r\n";
  ck_assert_int_eq(chunked_all_ways(t, 0, "0123456789"),
                   (ssize_t)(strlen(t) - strlen("GET / HTTP/1.1\r\n")));
  /* A body past max is refused when its payload passes it, not before. */
  ck_assert_int_eq(chunked_all_ways("5\r\nhello\r\n0\r\n\r\n", 5, "hello"), 15);
  ck_assert_int_eq(chunked_all_ways("5\r\nhello\r\n0\r\n\r\n", 4, NULL), WSB_EBODY_TOO_LARGE);
  ck_assert_int_eq(chunked_all_ways("5\r\nhel", 0, NULL), WSB_PARTIAL);
}
END_TEST

START_TEST(chunked_bad) {
  static const char *const bad[] = {
      "\r\n",                      /* no size */
      "5 \r\nhello\r\n0\r\n\r\n",  /* whitespace after the size */
      " 5\r\nhello\r\n0\r\n\r\n",  /* before it */
      "+5\r\nhello\r\n0\r\n\r\n",  /* a sign */
      "0x5\r\nhello\r\n0\r\n\r\n", /* a prefix */
      "5\nhello\r\n0\r\n\r\n",     /* a bare LF */
      "5\r\nhelloX\r\n0\r\n\r\n",  /* data longer than its size */
      "5\r\nhello\n0\r\n\r\n",     /* no CR after the data */
      "1000000000000000\r\n",      /* 16 digits */
      "1;a\x01\r\nx\r\n0\r\n\r\n", /* a control byte in an extension */
      "0\r\n folded: x\r\n\r\n",   /* a folded trailer */
      "0\r\n: empty name\r\n\r\n", /* an empty trailer name */
      "0\r\nX: 1\n\r\n",           /* a bare LF in the trailers */
      "0\r\n\r\r",                 /* no LF at the end */
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    ck_assert_msg(chunked_all_ways(bad[i], 0, NULL) == WSB_ECHUNKED, "case %zu", i);
  /* Extensions and trailers are bounded. */
  char big[6000];
  snprintf(big, sizeof(big), "1;%s\r\n", "");
  memset(big + 2, 'e', 4200);
  strcpy(big + 4202, "\r\nx\r\n0\r\n\r\n");
  ck_assert_int_eq(chunked_all_ways(big, 0, NULL), WSB_ECHUNKED);
}
END_TEST

START_TEST(length_and_close_bodies) {
  struct wsb_body b = {.kind = WSB_BODY_LENGTH, .left = 4};
  ck_assert_int_eq(wsb_body_feed(&b, "ab", 2), 2);
  ck_assert(!b.done);
  ck_assert_int_eq(wsb_body_feed(&b, "cdGET", 5), 2);
  ck_assert(b.done);
  ck_assert_int_eq(wsb_body_feed(&b, "GET", 3), 0);
  b = (struct wsb_body){.kind = WSB_BODY_LENGTH, .left = 10, .max = 3};
  ck_assert_int_eq(wsb_body_feed(&b, "abcd", 4), WSB_EBODY_TOO_LARGE);
  b = (struct wsb_body){.kind = WSB_BODY_CLOSE};
  ck_assert_int_eq(wsb_body_feed(&b, "abcd", 4), 4);
  ck_assert(!b.done && b.data == 4);
  b = (struct wsb_body){.kind = WSB_BODY_NONE};
  ck_assert_int_eq(wsb_body_feed(&b, "abcd", 4), 0);
  ck_assert(b.done);
}
END_TEST

START_TEST(response_head) {
  struct wsb_http_head h;
  parse(&h, true,
        "HTTP/1.1 200 Fine\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\n"
        "Content-Length: 3\r\nSet-Cookie: a=1\r\n\r\n");
  struct wsb_body b;
  bool reuse;
  ck_assert_int_eq(wsb_http1_check_response(&h, HTTP_GET, &b, &reuse), 0);
  char out[512];
  ssize_t n = wsb_http1_response_write(out, sizeof(out), &h, &b, 0);
  ck_assert_int_gt(n, 0);
  out[n] = '\0';
  ck_assert_str_eq(out, "HTTP/1.1 200 Fine\r\nSet-Cookie: a=1\r\nContent-Length: 3\r\n\r\n");
  parse(&h, true, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
  ck_assert_int_eq(wsb_http1_check_response(&h, HTTP_GET, &b, &reuse), 0);
  n = wsb_http1_response_write(out, sizeof(out), &h, &b, WSB_HTTP1_CLOSE);
  out[n] = '\0';
  ck_assert_str_eq(out,
                   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
  n = wsb_http1_response_write(out, sizeof(out), &h, &b, WSB_HTTP1_DECHUNK | WSB_HTTP1_CLOSE);
  out[n] = '\0';
  ck_assert_str_eq(out, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
  /* A HEAD answer's length describes the resource: passed as it is. */
  parse(&h, true, "HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n");
  ck_assert_int_eq(wsb_http1_check_response(&h, HTTP_HEAD, &b, &reuse), 0);
  n = wsb_http1_response_write(out, sizeof(out), &h, &b, 0);
  out[n] = '\0';
  ck_assert_str_eq(out, "HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n");
  ck_assert_int_eq(wsb_http1_response_write(out, 20, &h, &b, 0), -ENOSPC);
  /* An answer ending at the backend's close: chunked for an HTTP/1.1 client kept alive. */
  parse(&h, true, "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\r\n");
  ck_assert_int_eq(wsb_http1_check_response(&h, HTTP_GET, &b, &reuse), 0);
  ck_assert_int_eq(b.kind, WSB_BODY_CLOSE);
  n = wsb_http1_response_write(out, sizeof(out), &h, &b, WSB_HTTP1_RECHUNK);
  out[n] = '\0';
  ck_assert_str_eq(out, "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n");
  n = wsb_http1_response_write(out, sizeof(out), &h, &b, WSB_HTTP1_CLOSE);
  out[n] = '\0';
  ck_assert_str_eq(out, "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                        "Connection: close\r\n\r\n");
  /* An HTTP/1.0 client kept alive is told so; a length of 0 and large ones are written whole. */
  parse(&h, true, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  ck_assert_int_eq(wsb_http1_check_response(&h, HTTP_GET, &b, &reuse), 0);
  n = wsb_http1_response_write(out, sizeof(out), &h, &b, WSB_HTTP1_KEEP_ALIVE);
  out[n] = '\0';
  ck_assert_str_eq(out, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n");
  parse(&h, true, "HTTP/1.1 599 X\r\nContent-Length: 18446744073709551615\r\n\r\n");
  if (wsb_http1_check_response(&h, HTTP_GET, &b, &reuse) == 0) {
    n = wsb_http1_response_write(out, sizeof(out), &h, &b, 0);
    out[n] = '\0';
    ck_assert_str_eq(out, "HTTP/1.1 599 X\r\nContent-Length: 18446744073709551615\r\n\r\n");
  }
}
END_TEST

START_TEST(chunk_heads) {
  char out[WSB_HTTP1_CHUNK_HEAD_MAX];
  ck_assert_uint_eq(wsb_http1_chunk_head(out, 0), 3);
  ck_assert_int_eq(memcmp(out, "0\r\n", 3), 0);
  ck_assert_uint_eq(wsb_http1_chunk_head(out, 65536), 7);
  ck_assert_int_eq(memcmp(out, "10000\r\n", 7), 0);
  ck_assert_uint_eq(wsb_http1_chunk_head(out, UINT64_MAX), 18);
  ck_assert_int_eq(memcmp(out, "ffffffffffffffff\r\n", 18), 0);
}
END_TEST

START_TEST(backend_request) {
  struct wsb_http_head h;
  struct wsb_upgrade_request u;
  struct wsb_http1_request r;
  parse(&h, false,
        "POST /api/x HTTP/1.1\r\nHost: lb.example\r\nConnection: keep-alive, X-Hop\r\n"
        "X-Hop: 1\r\nTE: trailers\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n"
        "X-Forwarded-For: 6.6.6.6\r\nAccept: */*\r\n\r\n");
  ck_assert_int_eq(wsb_http1_check_request(&h, 0, &u, &r), 0);
  struct wsb_url backend = {.port = 9000};
  strcpy(backend.host, "127.0.0.1");
  strcpy(backend.path, "/v1");
  struct wsb_proxy_request pr = {
      .client = &h,
      .upgrade = &u,
      .backend = &backend,
      .client_ip = "192.0.2.1",
      .block_headers = "",
      .method = {"POST", 4},
      .body = &r.body,
  };
  char out[1024];
  ssize_t n = wsb_proxy_request_write(out, sizeof(out), &pr);
  ck_assert_int_gt(n, 0);
  out[n] = '\0';
  ck_assert_str_eq(out, "POST /v1/api/x HTTP/1.1\r\n"
                        "Host: 127.0.0.1:9000\r\n"
                        "Transfer-Encoding: chunked\r\n"
                        "Accept: */*\r\n"
                        "X-Forwarded-For: 192.0.2.1\r\n"
                        "X-Forwarded-Proto: http\r\n"
                        "X-Forwarded-Host: lb.example\r\n"
                        "\r\n");
  wsb_upgrade_request_free(&u);
  /* HTTP/1.0 without Host: the backend's host, and no X-Forwarded-Host. */
  parse(&h, false, "PUT /f HTTP/1.0\r\nContent-Length: 3\r\n\r\n");
  ck_assert_int_eq(wsb_http1_check_request(&h, 0, &u, &r), 0);
  pr.method = (struct wsb_slice){"PUT", 3};
  pr.preserve_host = true;
  pr.body = &r.body;
  n = wsb_proxy_request_write(out, sizeof(out), &pr);
  out[n] = '\0';
  ck_assert_str_eq(out, "PUT /v1/f HTTP/1.1\r\n"
                        "Host: 127.0.0.1:9000\r\n"
                        "Content-Length: 3\r\n"
                        "X-Forwarded-For: 192.0.2.1\r\n"
                        "X-Forwarded-Proto: http\r\n"
                        "\r\n");
  wsb_upgrade_request_free(&u);
}
END_TEST

static Suite *http1_suite(void) {
  Suite *s = suite_create("http1");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, request_plain_get);
  tcase_add_test(tc, request_framing);
  tcase_add_test(tc, request_smuggling);
  tcase_add_test(tc, response_framing);
  tcase_add_test(tc, chunked_good);
  tcase_add_test(tc, chunked_bad);
  tcase_add_test(tc, length_and_close_bodies);
  tcase_add_test(tc, response_head);
  tcase_add_test(tc, chunk_heads);
  tcase_add_test(tc, backend_request);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  int rc = wsb_run_suite(http1_suite());
  while (ncopies > 0)
    free(copies[--ncopies]);
  return rc;
}
