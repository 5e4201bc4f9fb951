/* Unit tests for common/handshake.c: request answers, keys and accepts, backend 101 checks. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "handshake.h"
#include "run_suite.h"

#define LIT(s) s, sizeof(s) - 1

#define KEY    "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static bool slice_is(struct wsb_slice s, const char *expected) {
  return s.p != NULL && s.len == strlen(expected) && memcmp(s.p, expected, s.len) == 0;
}

#define ck_assert_slice(s, expected)                                                        \
  ck_assert_msg(slice_is((s), (expected)), "slice \"%.*s\" != \"%s\"", (int)(s).len, (s).p, \
                (expected))

/* A parsed head whose bytes sit at the very end of an exact heap allocation. */
struct parsed {
  struct wsb_http_head h;
  char *buf;
};

static void parse(struct parsed *p, bool response, const char *text) {
  size_t len = strlen(text);
  p->buf = malloc(len);
  ck_assert_ptr_nonnull(p->buf);
  memcpy(p->buf, text, len);
  wsb_http_head_init(&p->h, response, 16384);
  ssize_t rc = wsb_http_feed(&p->h, p->buf, len);
  ck_assert_msg(rc == (ssize_t)len, "parse gave %zd for:\n%s", rc, text);
}

/* The slices in u point into p->buf, which the caller frees once done with them. */
static int check_request(struct parsed *p, const char *text, struct wsb_upgrade_request *u) {
  parse(p, false, text);
  return wsb_handshake_check_request(&p->h, u);
}

START_TEST(test_valid_request) {
  static const char req[] = "GET /chat?room=1 HTTP/1.1\r\n"
                            "Host: server.example.com\r\n"
                            "Upgrade: websocket\r\n"
                            "Connection: Upgrade\r\n"
                            "Sec-WebSocket-Key: " KEY "\r\n"
                            "Origin: http://example.com\r\n"
                            "Sec-WebSocket-Protocol: chat, superchat\r\n"
                            "Sec-WebSocket-Version: 13\r\n"
                            "\r\n";
  struct parsed p;
  struct wsb_upgrade_request u;
  parse(&p, false, req);
  ck_assert_int_eq(wsb_handshake_check_request(&p.h, &u), 0);
  ck_assert_slice(u.path, "/chat?room=1");
  ck_assert_slice(u.host, "server.example.com");
  ck_assert_slice(u.key, KEY);
  ck_assert_slice(u.origin, "http://example.com");
  ck_assert_slice(u.protocols, "chat, superchat");
  /* The slices point into the caller's buffer, not into copies. */
  ck_assert(u.key.p > p.buf && u.key.p < p.buf + sizeof(req) - 1);
  free(p.buf);

  /* Without Origin and Sec-WebSocket-Protocol those slices are NULL. */
  ck_assert_int_eq(check_request(&p,
                                 "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
                                 "Connection: upgrade\r\nSec-WebSocket-Key: " KEY "\r\n"
                                 "Sec-WebSocket-Version: 13\r\n\r\n",
                                 &u),
                   0);
  ck_assert_ptr_null(u.origin.p);
  ck_assert_ptr_null(u.protocols.p);
  ck_assert_slice(u.path, "/");
  free(p.buf);
}
END_TEST

/* What Chrome and Firefox send: keep-alive beside Upgrade, lower-case names, capitalised values. */
START_TEST(test_browser_request) {
  struct parsed p;
  struct wsb_upgrade_request u;
  ck_assert_int_eq(check_request(&p,
                                 "GET /socket HTTP/1.1\r\n"
                                 "Host: localhost:8080\r\n"
                                 "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0)\r\n"
                                 "Accept: */*\r\n"
                                 "Accept-Language: en-US,en;q=0.5\r\n"
                                 "Accept-Encoding: gzip, deflate, br\r\n"
                                 "Sec-WebSocket-Version: 13\r\n"
                                 "Origin: http://localhost:8080\r\n"
                                 "Sec-WebSocket-Extensions: permessage-deflate\r\n"
                                 "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
                                 "Connection: keep-alive, Upgrade\r\n"
                                 "Sec-Fetch-Mode: websocket\r\n"
                                 "Pragma: no-cache\r\n"
                                 "Cache-Control: no-cache\r\n"
                                 "Upgrade: websocket\r\n"
                                 "\r\n",
                                 &u),
                   0);
  ck_assert_slice(u.key, "x3JJHMbDL1EzLkh9GBhXDw==");
  free(p.buf);
  ck_assert_int_eq(check_request(&p,
                                 "GET / HTTP/1.1\r\n"
                                 "host: a\r\n"
                                 "upgrade: WebSocket\r\n"
                                 "connection: keep-alive\r\n"
                                 "CONNECTION: UPGRADE\r\n"
                                 "sec-websocket-key: " KEY "\r\n"
                                 "SEC-WEBSOCKET-VERSION: 13\r\n"
                                 "\r\n",
                                 &u),
                   0);
  ck_assert_slice(u.host, "a");
  free(p.buf);
  /* Absolute-form targets (RFC 9112 3.2.2) give their path and query. */
  ck_assert_int_eq(
      check_request(&p,
                    "GET ws://a:1/x/y?q=1 HTTP/1.1\r\nHost: a:1\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: " KEY "\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n",
                    &u),
      0);
  ck_assert_slice(u.path, "/x/y?q=1");
  free(p.buf);
}
END_TEST

/*
 * Each case is the valid request with its request line or one header
 * replaced, doubled or dropped.
 */
struct request_case {
  const char *name;
  const char *line;    /* request line */
  const char *headers; /* header lines, each ending in CRLF */
  int status;
};

#define GOOD_LINE "GET /chat HTTP/1.1\r\n"
#define H_HOST    "Host: a.example\r\n"
#define H_UPGRADE "Upgrade: websocket\r\n"
#define H_CONN    "Connection: Upgrade\r\n"
#define H_KEY     "Sec-WebSocket-Key: " KEY "\r\n"
#define H_VERSION "Sec-WebSocket-Version: 13\r\n"

static const struct request_case request_cases[] = {
    {"valid", GOOD_LINE, H_HOST H_UPGRADE H_CONN H_KEY H_VERSION, 0},
    {"plain GET", GOOD_LINE, H_HOST, 426},
    {"plain GET with Connection: upgrade", GOOD_LINE, H_HOST H_CONN H_KEY H_VERSION, 426},
    {"upgrade to h2c", GOOD_LINE, H_HOST "Upgrade: h2c\r\n" H_CONN H_KEY H_VERSION, 426},
    {"upgrade list with websocket", GOOD_LINE,
     H_HOST "Upgrade: foo/2, websocket\r\n" H_CONN H_KEY H_VERSION, 0},
    {"POST", "POST /chat HTTP/1.1\r\n", H_HOST H_UPGRADE H_CONN H_KEY H_VERSION, 400},
    {"HEAD", "HEAD /chat HTTP/1.1\r\n", H_HOST H_UPGRADE H_CONN H_KEY H_VERSION, 400},
    {"HTTP/1.0", "GET /chat HTTP/1.0\r\n", H_HOST H_UPGRADE H_CONN H_KEY H_VERSION, 400},
    {"HTTP/2.0", "GET /chat HTTP/2.0\r\n", H_HOST H_UPGRADE H_CONN H_KEY H_VERSION, 400},
    {"HTTP/0.9 style", "GET /chat\r\n", H_HOST H_UPGRADE H_CONN H_KEY H_VERSION, 400},
    {"asterisk target", "GET * HTTP/1.1\r\n", H_HOST H_UPGRADE H_CONN H_KEY H_VERSION, 400},
    {"absolute URL without path", "GET http://a.example HTTP/1.1\r\n",
     H_HOST H_UPGRADE H_CONN H_KEY H_VERSION, 400},
    {"no Host", GOOD_LINE, H_UPGRADE H_CONN H_KEY H_VERSION, 400},
    {"empty Host", GOOD_LINE, "Host:\r\n" H_UPGRADE H_CONN H_KEY H_VERSION, 400},
    {"two Hosts", GOOD_LINE, H_HOST H_HOST H_UPGRADE H_CONN H_KEY H_VERSION, 400},
    {"no Connection", GOOD_LINE, H_HOST H_UPGRADE H_KEY H_VERSION, 400},
    {"Connection without upgrade", GOOD_LINE,
     H_HOST H_UPGRADE "Connection: keep-alive\r\n" H_KEY H_VERSION, 400},
    {"Connection: upgrades", GOOD_LINE, H_HOST H_UPGRADE "Connection: upgrades\r\n" H_KEY H_VERSION,
     400},
    {"no key", GOOD_LINE, H_HOST H_UPGRADE H_CONN H_VERSION, 400},
    {"empty key", GOOD_LINE, H_HOST H_UPGRADE H_CONN "Sec-WebSocket-Key:\r\n" H_VERSION, 400},
    {"short key", GOOD_LINE,
     H_HOST H_UPGRADE H_CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\n" H_VERSION, 400},
    {"key of 17 bytes", GOOD_LINE,
     H_HOST H_UPGRADE H_CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZXg=\r\n" H_VERSION, 400},
    {"key not base64", GOOD_LINE,
     H_HOST H_UPGRADE H_CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j*Q==\r\n" H_VERSION, 400},
    {"two keys", GOOD_LINE, H_HOST H_UPGRADE H_CONN H_KEY H_KEY H_VERSION, 400},
    {"no version", GOOD_LINE, H_HOST H_UPGRADE H_CONN H_KEY, 400},
    {"version 8", GOOD_LINE, H_HOST H_UPGRADE H_CONN H_KEY "Sec-WebSocket-Version: 8\r\n", 426},
    {"version 14", GOOD_LINE, H_HOST H_UPGRADE H_CONN H_KEY "Sec-WebSocket-Version: 14\r\n", 426},
    {"version 013", GOOD_LINE, H_HOST H_UPGRADE H_CONN H_KEY "Sec-WebSocket-Version: 013\r\n", 426},
    {"version list", GOOD_LINE, H_HOST H_UPGRADE H_CONN H_KEY "Sec-WebSocket-Version: 13, 8\r\n",
     426},
    {"empty version", GOOD_LINE, H_HOST H_UPGRADE H_CONN H_KEY "Sec-WebSocket-Version:\r\n", 426},
    {"two versions", GOOD_LINE, H_HOST H_UPGRADE H_CONN H_KEY H_VERSION H_VERSION, 400},
    {"version 8 and no Host", GOOD_LINE, H_UPGRADE H_CONN H_KEY "Sec-WebSocket-Version: 8\r\n",
     400},
    {"POST without upgrade", "POST /chat HTTP/1.1\r\n", H_HOST, 426},
    /* Fields that may not repeat (README "Request headers"), even with the same value. */
    {"two Hosts, same value", GOOD_LINE, H_HOST H_HOST H_UPGRADE H_CONN H_KEY H_VERSION, 400},
    {"two Hosts, different", GOOD_LINE,
     H_HOST "Host: b.example\r\n" H_UPGRADE H_CONN H_KEY H_VERSION, 400},
    {"one Origin", GOOD_LINE, H_HOST H_UPGRADE H_CONN H_KEY H_VERSION "Origin: https://a\r\n", 0},
    {"two Origins", GOOD_LINE,
     H_HOST H_UPGRADE H_CONN H_KEY H_VERSION "Origin: https://a\r\nOrigin: https://evil\r\n", 400},
    {"two Origins, same value", GOOD_LINE,
     H_HOST H_UPGRADE H_CONN H_KEY H_VERSION "Origin: https://a\r\nOrigin: https://a\r\n", 400},
    {"two keys, same value", GOOD_LINE, H_HOST H_UPGRADE H_CONN H_KEY H_KEY H_VERSION, 400},
    /* List fields are one list over all their lines. */
    {"Upgrade over two lines", GOOD_LINE,
     H_HOST "Upgrade: h2c\r\nUpgrade: websocket\r\n" H_CONN H_KEY H_VERSION, 0},
    {"Connection over two lines", GOOD_LINE,
     H_HOST H_UPGRADE "Connection: keep-alive\r\nConnection: Upgrade\r\n" H_KEY H_VERSION, 0},
    {"two protocol lines", GOOD_LINE,
     H_HOST H_UPGRADE H_CONN H_KEY H_VERSION
     "Sec-WebSocket-Protocol: a\r\nSec-WebSocket-Protocol: b\r\n",
     0},
    /* No body: wsbal reads what follows the head as frames. */
    {"Content-Length: 0", GOOD_LINE,
     H_HOST H_UPGRADE H_CONN H_KEY H_VERSION "Content-Length: 0\r\n", 0},
    {"Content-Length: 000", GOOD_LINE,
     H_HOST H_UPGRADE H_CONN H_KEY H_VERSION "Content-Length: 000\r\n", 0},
    {"Content-Length: 5", GOOD_LINE,
     H_HOST H_UPGRADE H_CONN H_KEY H_VERSION "Content-Length: 5\r\n", 400},
    {"Content-Length: 10", GOOD_LINE,
     H_HOST H_UPGRADE H_CONN H_KEY H_VERSION "Content-Length: 10\r\n", 400},
    {"Transfer-Encoding: chunked", GOOD_LINE,
     H_HOST H_UPGRADE H_CONN H_KEY H_VERSION "Transfer-Encoding: chunked\r\n", 400},
    /* Paths (uri_path.c has every case; these show the verdicts reach the answer). */
    {"dot segments", "GET /chat/./a/../b HTTP/1.1\r\n", H_HOST H_UPGRADE H_CONN H_KEY H_VERSION, 0},
    {"above the root", "GET /chat/../../x HTTP/1.1\r\n", H_HOST H_UPGRADE H_CONN H_KEY H_VERSION,
     400},
    {"encoded dots above the root", "GET /%2e%2e/x HTTP/1.1\r\n",
     H_HOST H_UPGRADE H_CONN H_KEY H_VERSION, 400},
    {"encoded slash", "GET /chat/..%2fx HTTP/1.1\r\n", H_HOST H_UPGRADE H_CONN H_KEY H_VERSION,
     400},
    {"encoded NUL", "GET /chat%00 HTTP/1.1\r\n", H_HOST H_UPGRADE H_CONN H_KEY H_VERSION, 400},
    {"backslash", "GET /chat\\..\\x HTTP/1.1\r\n", H_HOST H_UPGRADE H_CONN H_KEY H_VERSION, 400},
    {"absolute form above the root", "GET ws://a/../x HTTP/1.1\r\n",
     H_HOST H_UPGRADE H_CONN H_KEY H_VERSION, 400},
};

#define N_REQUEST_CASES (sizeof(request_cases) / sizeof(request_cases[0]))

START_TEST(test_request_answers) {
  const struct request_case *c = &request_cases[_i];
  char text[1024];
  int n = snprintf(text, sizeof(text), "%s%s\r\n", c->line, c->headers);
  ck_assert(n > 0 && (size_t)n < sizeof(text));
  struct parsed p;
  struct wsb_upgrade_request u;
  int rc = check_request(&p, text, &u);
  ck_assert_msg(rc == c->status, "%s: got %d, want %d", c->name, rc, c->status);
  if (rc == 0)
    ck_assert_slice(u.key, KEY);
  wsb_upgrade_request_free(&u);
  free(p.buf);
}
END_TEST

/*
 * Several Sec-WebSocket-Protocol lines are one list, and that list is what a backend's choice
 * is checked against: a backend that answers from the second line is right (issue 12 item 2).
 */
START_TEST(test_combined_protocols_and_path) {
  struct parsed p;
  struct wsb_upgrade_request u;
  ck_assert_int_eq(
      check_request(&p,
                    "GET /a/./b/../c?x=/../ HTTP/1.1\r\n" H_HOST H_UPGRADE H_CONN H_KEY H_VERSION
                    "Sec-WebSocket-Protocol: chat\r\n"
                    "Sec-WebSocket-Protocol:\r\n"
                    "Sec-WebSocket-Protocol: superchat, v2\r\n\r\n",
                    &u),
      0);
  ck_assert_slice(u.protocols, "chat, superchat, v2");
  ck_assert_slice(u.path, "/a/c?x=/../");
  ck_assert_slice(u.target, "/a/./b/../c?x=/../");
  ck_assert(u.target.p > p.buf && u.target.p < p.buf + strlen("GET /a"));

  static const char answer[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\nSec-WebSocket-Accept: " ACCEPT "\r\n"
                               "Sec-WebSocket-Protocol: v2\r\n\r\n";
  struct parsed r;
  parse(&r, true, answer);
  struct wsb_upgrade_response chosen;
  ck_assert_int_eq(wsb_handshake_check_response(&r.h, ACCEPT, u.protocols, &chosen), 0);
  ck_assert_slice(chosen.protocol, "v2");
  free(r.buf);
  wsb_upgrade_request_free(&u);
  ck_assert_ptr_null(u.store);
  free(p.buf);

  /* One line is used where it lies; empty lines alone offer nothing. */
  ck_assert_int_eq(check_request(&p,
                                 GOOD_LINE H_HOST H_UPGRADE H_CONN H_KEY H_VERSION
                                 "Sec-WebSocket-Protocol:\r\n"
                                 "Sec-WebSocket-Protocol: only\r\n\r\n",
                                 &u),
                   0);
  ck_assert_slice(u.protocols, "only");
  ck_assert_ptr_null(u.store);
  ck_assert(u.path.p == u.target.p);
  free(p.buf);
  ck_assert_int_eq(check_request(&p,
                                 GOOD_LINE H_HOST H_UPGRADE H_CONN H_KEY H_VERSION
                                 "Sec-WebSocket-Protocol:\r\n\r\n",
                                 &u),
                   0);
  ck_assert_ptr_null(u.protocols.p);
  free(p.buf);
}
END_TEST

START_TEST(test_key_valid) {
  static const struct {
    const char *key;
    bool valid;
  } cases[] = {
      {KEY, true},
      {"x3JJHMbDL1EzLkh9GBhXDw==", true},
      {"AAAAAAAAAAAAAAAAAAAAAA==", true},
      {"/////////////////////w==", true},
      {"+++++++++++++++++++++g==", true},
      {"abcdefghijklmnopqrstuQ==", true},
      {"0123456789+/0123456789A=", false}, /* 17 bytes */
      {"dGhlIHNhbXBsZSBub25jZR==", false}, /* low bits set in the last character */
      {"dGhlIHNhbXBsZSBub25jZB==", false},
      {"dGhlIHNhbXBsZSBub25jZ/==", false},
      {"dGhlIHNhbXBsZSBub25jZQ=", false},
      {"dGhlIHNhbXBsZSBub25jZQ===", false},
      {"dGhlIHNhbXBsZSBub25jZQ", false},
      {"dGhlIHNhbXBsZSBub25jZQAA", false},
      {"dGhlIHNhbXBsZSBub25j-Q==", false}, /* base64url is not base64 */
      {"dGhlIHNhbXBsZSBub25j_Q==", false},
      {"dGhlIHNhbXBsZSBub25j Q==", false},
      {"=GhlIHNhbXBsZSBub25jZQ==", false},
      {"dGhlIHNhbXBsZSBub25jZ===", false},
      {"", false},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    size_t len = strlen(cases[i].key);
    char *copy = malloc(len ? len : 1);
    memcpy(copy, cases[i].key, len);
    struct wsb_slice key = {copy, len};
    ck_assert_msg(wsb_ws_key_valid(key) == cases[i].valid, "key \"%s\"", cases[i].key);
    free(copy);
  }
  /* Every possible 22nd character: exactly the four with zero low bits are allowed. */
  char key[] = "dGhlIHNhbXBsZSBub25jZQ==";
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  int allowed = 0;
  for (size_t i = 0; i < 64; i++) {
    key[21] = alphabet[i];
    if (wsb_ws_key_valid((struct wsb_slice){key, 24}))
      allowed++;
  }
  ck_assert_int_eq(allowed, 4);
}
END_TEST

START_TEST(test_accept) {
  char out[WSB_WS_ACCEPT_LEN + 1];
  memset(out, 'x', sizeof(out));
  char *key = malloc(24);
  memcpy(key, KEY, 24);
  wsb_ws_accept((struct wsb_slice){key, 24}, out);
  ck_assert_str_eq(out, ACCEPT);
  free(key);
  /* The second example many implementations test with (from the hybi drafts). */
  wsb_ws_accept((struct wsb_slice){"x3JJHMbDL1EzLkh9GBhXDw==", 24}, out);
  ck_assert_str_eq(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}
END_TEST

START_TEST(test_key_generate) {
  char a[WSB_WS_KEY_LEN + 1], b[WSB_WS_KEY_LEN + 1];
  ck_assert_int_eq(wsb_ws_key_generate(a), 0);
  ck_assert_int_eq(wsb_ws_key_generate(b), 0);
  ck_assert_uint_eq(strlen(a), WSB_WS_KEY_LEN);
  ck_assert(wsb_ws_key_valid((struct wsb_slice){a, strlen(a)}));
  ck_assert(wsb_ws_key_valid((struct wsb_slice){b, strlen(b)}));
  ck_assert_str_ne(a, b);
}
END_TEST

/* RFC 6455 4.1's example: the nonce "the sample nonce" is the key dGhlIHNhbXBsZSBub25jZQ==. */
START_TEST(test_key_encode) {
  char key[WSB_WS_KEY_LEN + 1];
  wsb_ws_key_encode((const uint8_t *)"the sample nonce", key);
  ck_assert_str_eq(key, "dGhlIHNhbXBsZSBub25jZQ==");
  ck_assert(wsb_ws_key_valid((struct wsb_slice){key, strlen(key)}));
}
END_TEST

START_TEST(test_header_is_own) {
  static const struct {
    const char *name;
    bool own;
  } cases[] = {
      {"Sec-WebSocket-Key", true},
      {"sec-websocket-key", true},
      {"Sec-WebSocket-Accept", true},
      {"SEC-WEBSOCKET-VERSION", true},
      {"Sec-WebSocket-Extensions", true},
      {"Sec-WebSocket-Protocol", false},
      {"Sec-WebSocket-Keys", false},
      {"Sec-WebSocket", false},
      {"Origin", false},
      {"Host", false},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct wsb_slice name = {cases[i].name, strlen(cases[i].name)};
    ck_assert_msg(wsb_handshake_header_is_own(name) == cases[i].own, "%s", cases[i].name);
  }
}
END_TEST

struct response_case {
  const char *name;
  const char *text;
  const char *offered; /* NULL: no subprotocol offered */
  int rc;
  const char *protocol; /* expected choice when rc == 0, NULL for none */
};

#define R101      "HTTP/1.1 101 Switching Protocols\r\n"
#define R_UPGRADE "Upgrade: websocket\r\n"
#define R_CONN    "Connection: Upgrade\r\n"
#define R_ACCEPT  "Sec-WebSocket-Accept: " ACCEPT "\r\n"

static const struct response_case response_cases[] = {
    {"valid", R101 R_UPGRADE R_CONN R_ACCEPT "\r\n", NULL, 0, NULL},
    {"valid, protocols offered, none chosen", R101 R_UPGRADE R_CONN R_ACCEPT "\r\n",
     "chat, superchat", 0, NULL},
    {"protocol chosen", R101 R_UPGRADE R_CONN R_ACCEPT "Sec-WebSocket-Protocol: superchat\r\n\r\n",
     "chat, superchat", 0, "superchat"},
    {"protocol chosen, other case",
     R101 R_UPGRADE R_CONN R_ACCEPT "Sec-WebSocket-Protocol: Chat\r\n\r\n", "chat", 0, "Chat"},
    {"mixed case names and values",
     R101 "upgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\n"
          "sec-websocket-accept: " ACCEPT "\r\n\r\n",
     NULL, 0, NULL},
    {"with a backend's own headers", R101 R_UPGRADE R_CONN R_ACCEPT "X-Backend-Id: b1\r\n\r\n",
     NULL, 0, NULL},
    {"200", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", NULL, WSB_EHTTP_STATUS, NULL},
    {"403", "HTTP/1.1 403 Forbidden\r\n" R_UPGRADE R_CONN R_ACCEPT "\r\n", NULL, WSB_EHTTP_STATUS,
     NULL},
    {"no Upgrade", R101 R_CONN R_ACCEPT "\r\n", NULL, WSB_EHTTP_UPGRADE, NULL},
    {"Upgrade: h2c", R101 "Upgrade: h2c\r\n" R_CONN R_ACCEPT "\r\n", NULL, WSB_EHTTP_UPGRADE, NULL},
    {"no Connection", R101 R_UPGRADE R_ACCEPT "\r\n", NULL, WSB_EHTTP_UPGRADE, NULL},
    {"Connection: close", R101 R_UPGRADE "Connection: close\r\n" R_ACCEPT "\r\n", NULL,
     WSB_EHTTP_UPGRADE, NULL},
    {"no Accept", R101 R_UPGRADE R_CONN "\r\n", NULL, WSB_EHTTP_ACCEPT, NULL},
    {"wrong Accept",
     R101 R_UPGRADE R_CONN "Sec-WebSocket-Accept: HSmrc0sMlYUkAGmm5OPpG2HaGWk=\r\n\r\n", NULL,
     WSB_EHTTP_ACCEPT, NULL},
    {"Accept in other case",
     R101 R_UPGRADE R_CONN "Sec-WebSocket-Accept: S3PPLMBITXAQ9KYGZZHZRBK+XOO=\r\n\r\n", NULL,
     WSB_EHTTP_ACCEPT, NULL},
    {"Accept truncated",
     R101 R_UPGRADE R_CONN "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo\r\n\r\n", NULL,
     WSB_EHTTP_ACCEPT, NULL},
    {"empty Accept", R101 R_UPGRADE R_CONN "Sec-WebSocket-Accept:\r\n\r\n", NULL, WSB_EHTTP_ACCEPT,
     NULL},
    {"two Accepts", R101 R_UPGRADE R_CONN R_ACCEPT R_ACCEPT "\r\n", NULL, WSB_EHTTP_ACCEPT, NULL},
    {"protocol not offered", R101 R_UPGRADE R_CONN R_ACCEPT "Sec-WebSocket-Protocol: mqtt\r\n\r\n",
     "chat, superchat", WSB_EHTTP_PROTOCOL, NULL},
    {"protocol when none offered",
     R101 R_UPGRADE R_CONN R_ACCEPT "Sec-WebSocket-Protocol: chat\r\n\r\n", NULL,
     WSB_EHTTP_PROTOCOL, NULL},
    {"protocol list chosen",
     R101 R_UPGRADE R_CONN R_ACCEPT "Sec-WebSocket-Protocol: chat, superchat\r\n\r\n",
     "chat, superchat", WSB_EHTTP_PROTOCOL, NULL},
    {"two protocols chosen",
     R101 R_UPGRADE R_CONN R_ACCEPT
     "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
     "chat, superchat", WSB_EHTTP_PROTOCOL, NULL},
    {"empty protocol", R101 R_UPGRADE R_CONN R_ACCEPT "Sec-WebSocket-Protocol:\r\n\r\n", "chat",
     WSB_EHTTP_PROTOCOL, NULL},
    {"protocol prefix of offered",
     R101 R_UPGRADE R_CONN R_ACCEPT "Sec-WebSocket-Protocol: cha\r\n\r\n", "chat",
     WSB_EHTTP_PROTOCOL, NULL},
    {"extension chosen",
     R101 R_UPGRADE R_CONN R_ACCEPT "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n", NULL,
     WSB_EHTTP_EXTENSION, NULL},
    {"empty extensions header", R101 R_UPGRADE R_CONN R_ACCEPT "Sec-WebSocket-Extensions:\r\n\r\n",
     NULL, WSB_EHTTP_EXTENSION, NULL},
};

#define N_RESPONSE_CASES (sizeof(response_cases) / sizeof(response_cases[0]))

START_TEST(test_response_checks) {
  const struct response_case *c = &response_cases[_i];
  struct parsed p;
  parse(&p, true, c->text);
  struct wsb_slice offered = {c->offered, c->offered ? strlen(c->offered) : 0};
  struct wsb_upgrade_response r;
  int rc = wsb_handshake_check_response(&p.h, ACCEPT, offered, &r);
  ck_assert_msg(rc == c->rc, "%s: got %s, want %s", c->name, wsb_err_name(rc), wsb_err_name(c->rc));
  if (rc == 0 && c->protocol == NULL)
    ck_assert_ptr_null(r.protocol.p);
  if (rc == 0 && c->protocol != NULL)
    ck_assert_slice(r.protocol, c->protocol);
  if (rc == WSB_EHTTP_STATUS)
    ck_assert_uint_ne(p.h.status, 101);
  free(p.buf);
}
END_TEST

/* wsbal's own key and its accept, end to end. */
START_TEST(test_generated_key_round_trip) {
  char key[WSB_WS_KEY_LEN + 1], accept[WSB_WS_ACCEPT_LEN + 1];
  ck_assert_int_eq(wsb_ws_key_generate(key), 0);
  wsb_ws_accept((struct wsb_slice){key, strlen(key)}, accept);
  ck_assert_uint_eq(strlen(accept), WSB_WS_ACCEPT_LEN);
  char text[256];
  snprintf(text, sizeof(text), R101 R_UPGRADE R_CONN "Sec-WebSocket-Accept: %s\r\n\r\n", accept);
  struct parsed p;
  parse(&p, true, text);
  struct wsb_upgrade_response r;
  ck_assert_int_eq(wsb_handshake_check_response(&p.h, accept, (struct wsb_slice){NULL, 0}, &r), 0);
  ck_assert_int_eq(wsb_handshake_check_response(&p.h, ACCEPT, (struct wsb_slice){NULL, 0}, &r),
                   WSB_EHTTP_ACCEPT);
  free(p.buf);
}
END_TEST

static Suite *handshake_suite(void) {
  Suite *s = suite_create("handshake");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_valid_request);
  tcase_add_test(tc, test_browser_request);
  tcase_add_loop_test(tc, test_request_answers, 0, N_REQUEST_CASES);
  tcase_add_test(tc, test_combined_protocols_and_path);
  tcase_add_test(tc, test_key_valid);
  tcase_add_test(tc, test_accept);
  tcase_add_test(tc, test_key_generate);
  tcase_add_test(tc, test_key_encode);
  tcase_add_test(tc, test_header_is_own);
  tcase_add_loop_test(tc, test_response_checks, 0, N_RESPONSE_CASES);
  tcase_add_test(tc, test_generated_key_round_trip);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return wsb_run_suite(handshake_suite());
}
