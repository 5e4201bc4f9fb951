/* Unit tests for common/proxy.c: the backend's upgrade request, the client's 101, path and Origin
 * policy. */
#include <check.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "proxy.h"
#include "run_suite.h"

#define KEY    "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static const char client_request[] = "GET /room/7?user=ann HTTP/1.1\r\n"
                                     "Host: lb.example:8080\r\n"
                                     "Connection: keep-alive, Upgrade, X-Hop\r\n"
                                     "Upgrade: websocket\r\n"
                                     "Sec-WebSocket-Key: " KEY "\r\n"
                                     "Sec-WebSocket-Version: 13\r\n"
                                     "Sec-WebSocket-Extensions: permessage-deflate\r\n"
                                     "Sec-WebSocket-Protocol: chat, superchat\r\n"
                                     "Origin: https://app.example\r\n"
                                     "X-Hop: hop-by-hop by Connection\r\n"
                                     "Keep-Alive: 300\r\n"
                                     "X-Forwarded-For: 10.1.1.1\r\n"
                                     "X-Forwarded-For: 10.2.2.2\r\n"
                                     "X-Forwarded-Proto: https\r\n"
                                     "X-Secret: s\r\n"
                                     "X-Balancer-Reconnect: forged\r\n"
                                     "Cookie: a=1\r\n"
                                     "\r\n";

struct fixture {
  char *buf;
  struct wsb_http_head head;
  struct wsb_upgrade_request up;
  struct wsb_url backend;
  struct wsb_proxy_request req;
};

static void setup_request(struct fixture *f) {
  size_t len = strlen(client_request);
  f->buf = malloc(len);
  memcpy(f->buf, client_request, len);
  wsb_http_head_init(&f->head, false, 16384);
  ck_assert_int_eq(wsb_http_feed(&f->head, f->buf, len), (ssize_t)len);
  ck_assert_int_eq(wsb_handshake_check_request(&f->head, &f->up), 0);
  memset(&f->backend, 0, sizeof(f->backend));
  strcpy(f->backend.host, "10.0.0.5");
  f->backend.port = 9001;
  strcpy(f->backend.path, "/prefix");
  f->req = (struct wsb_proxy_request){
      .client = &f->head,
      .upgrade = &f->up,
      .backend = &f->backend,
      .key = "AAAAAAAAAAAAAAAAAAAAAA==",
      .client_ip = "192.0.2.7",
      .block_headers = "x-secret",
      .reconnect_header = "X-Balancer-Reconnect",
  };
}

static char *write_request(struct fixture *f) {
  static char out[4096];
  ssize_t n = wsb_proxy_request_write(out, sizeof(out) - 1, &f->req);
  ck_assert_int_gt(n, 0);
  out[n] = '\0';
  return out;
}

START_TEST(test_request_exact) {
  struct fixture f;
  setup_request(&f);
  const char *out = write_request(&f);
  static const char expected[] = "GET /prefix/room/7?user=ann HTTP/1.1\r\n"
                                 "Host: 10.0.0.5:9001\r\n"
                                 "Upgrade: websocket\r\n"
                                 "Connection: Upgrade\r\n"
                                 "Sec-WebSocket-Version: 13\r\n"
                                 "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"
                                 "Sec-WebSocket-Protocol: chat, superchat\r\n"
                                 "Origin: https://app.example\r\n"
                                 "Cookie: a=1\r\n"
                                 "X-Forwarded-For: 192.0.2.7\r\n"
                                 "X-Forwarded-Proto: http\r\n"
                                 "X-Forwarded-Host: lb.example:8080\r\n"
                                 "\r\n";
  ck_assert_str_eq(out, expected);
  free(f.buf);
}
END_TEST

START_TEST(test_request_options) {
  struct fixture f;
  setup_request(&f);
  f.req.preserve_host = true;
  f.req.trust_forwarded = true;
  f.req.client_tls = true;
  f.req.reconnect_value = "00000000000000ab";
  f.req.block_headers = "";
  const char *out = write_request(&f);
  ck_assert_ptr_nonnull(strstr(out, "\r\nHost: lb.example:8080\r\n"));
  ck_assert_ptr_nonnull(strstr(out, "\r\nX-Forwarded-For: 10.1.1.1, 10.2.2.2, 192.0.2.7\r\n"));
  ck_assert_ptr_nonnull(strstr(out, "\r\nX-Forwarded-Proto: https\r\n"));
  ck_assert_ptr_nonnull(strstr(out, "\r\nX-Secret: s\r\n"));
  /* The client's forged header is gone; wsbal's own carries the session id. */
  ck_assert_ptr_null(strstr(out, "forged"));
  ck_assert_ptr_nonnull(strstr(out, "\r\nX-Balancer-Reconnect: 00000000000000ab\r\n"));
  free(f.buf);
}
END_TEST

/* strip_path: the route's prefix goes, and what is left is a path again. */
START_TEST(test_request_strip) {
  struct fixture f;
  setup_request(&f); /* GET /room/7?user=ann */
  f.req.strip = 5;
  ck_assert(strncmp(write_request(&f), "GET /prefix/7?user=ann HTTP/1.1\r\n",
                    strlen("GET /prefix/7?user=ann HTTP/1.1\r\n")) == 0);
  f.req.strip = 7;
  ck_assert(strncmp(write_request(&f), "GET /prefix/?user=ann HTTP/1.1\r\n",
                    strlen("GET /prefix/?user=ann HTTP/1.1\r\n")) == 0);
  strcpy(f.backend.path, "");
  ck_assert(strncmp(write_request(&f), "GET /?user=ann HTTP/1.1\r\n",
                    strlen("GET /?user=ann HTTP/1.1\r\n")) == 0);
  f.req.strip = 16; /* the whole target */
  ck_assert(strncmp(write_request(&f), "GET / HTTP/1.1\r\n", strlen("GET / HTTP/1.1\r\n")) == 0);
  free(f.buf);
}
END_TEST

START_TEST(test_request_host_forms) {
  struct fixture f;
  setup_request(&f);
  f.backend.port = 80;
  strcpy(f.backend.path, "");
  ck_assert_ptr_nonnull(
      strstr(write_request(&f), "GET /room/7?user=ann HTTP/1.1\r\nHost: 10.0.0.5\r\n"));
  strcpy(f.backend.host, "::1");
  f.backend.port = 9000;
  ck_assert_ptr_nonnull(strstr(write_request(&f), "\r\nHost: [::1]:9000\r\n"));
  f.backend.tls = true;
  f.backend.port = 443;
  ck_assert_ptr_nonnull(strstr(write_request(&f), "\r\nHost: [::1]\r\n"));
  free(f.buf);
}
END_TEST

START_TEST(test_request_no_room) {
  struct fixture f;
  setup_request(&f);
  char small[64];
  ck_assert_int_eq(wsb_proxy_request_write(small, sizeof(small), &f.req), -ENOSPC);
  /* Every size short of the whole answer is refused, never cut. */
  char full[4096];
  ssize_t n = wsb_proxy_request_write(full, sizeof(full), &f.req);
  ck_assert_int_gt(n, 0);
  for (size_t cap = 0; cap < (size_t)n; cap++) {
    char *b = malloc(cap ? cap : 1);
    ck_assert_int_eq(wsb_proxy_request_write(b, cap, &f.req), -ENOSPC);
    free(b);
  }
  char *exact = malloc((size_t)n);
  ck_assert_int_eq(wsb_proxy_request_write(exact, (size_t)n, &f.req), n);
  free(exact);
  free(f.buf);
}
END_TEST

/* A request with what a client can forge about proxies, repeated fields and dot segments. */
static const char forging_request[] = "GET /ws/./a/../b?q=/../x HTTP/1.1\r\n"
                                      "Host: lb.example\r\n"
                                      "Upgrade: websocket\r\n"
                                      "Connection: Upgrade\r\n"
                                      "Sec-WebSocket-Key: " KEY "\r\n"
                                      "Sec-WebSocket-Version: 13\r\n"
                                      "Sec-WebSocket-Protocol: chat\r\n"
                                      "X-Forwarded-For:\r\n"
                                      "X-Forwarded-For: 10.1.1.1\r\n"
                                      "Forwarded: for=10.9.9.9;proto=https\r\n"
                                      "X-Real-IP: 10.8.8.8\r\n"
                                      "X-Forwarded-Port: 8443\r\n"
                                      "x-forwarded-proto: https\r\n"
                                      "X-Forwarded-Host: public.example\r\n"
                                      "X-Forwarded-Prefix: /evil\r\n"
                                      "Sec-WebSocket-Protocol: superchat\r\n"
                                      "Content-Length: 0\r\n"
                                      "Expect: 100-continue\r\n"
                                      "X-Forwarded: nope\r\n"
                                      "\r\n";

static void setup_forging(struct fixture *f) {
  setup_request(f);
  free(f->buf);
  size_t len = strlen(forging_request);
  f->buf = malloc(len);
  memcpy(f->buf, forging_request, len);
  wsb_http_head_init(&f->head, false, 16384);
  ck_assert_int_eq(wsb_http_feed(&f->head, f->buf, len), (ssize_t)len);
  ck_assert_int_eq(wsb_handshake_check_request(&f->head, &f->up), 0);
}

static int count_lines(const char *out, const char *prefix) {
  int n = 0;
  for (const char *p = out; (p = strstr(p, prefix)) != NULL; p++)
    n++;
  return n;
}

/*
 * Without trust_forwarded nothing the client says about proxies reaches the backend: the whole
 * family goes, and wsbal's own three lines stand alone (issue 12 item 9).
 */
START_TEST(test_forwarded_family_untrusted) {
  struct fixture f;
  setup_forging(&f);
  const char *out = write_request(&f);
  static const char expected[] = "GET /prefix/ws/b?q=/../x HTTP/1.1\r\n"
                                 "Host: 10.0.0.5:9001\r\n"
                                 "Upgrade: websocket\r\n"
                                 "Connection: Upgrade\r\n"
                                 "Sec-WebSocket-Version: 13\r\n"
                                 "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"
                                 "Sec-WebSocket-Protocol: chat, superchat\r\n"
                                 "X-Forwarded: nope\r\n"
                                 "X-Forwarded-For: 192.0.2.7\r\n"
                                 "X-Forwarded-Proto: http\r\n"
                                 "X-Forwarded-Host: lb.example\r\n"
                                 "\r\n";
  ck_assert_str_eq(out, expected);
  wsb_upgrade_request_free(&f.up);
  free(f.buf);
}
END_TEST

/* With it, the front's lines pass as they came and X-Forwarded-For is extended. */
START_TEST(test_forwarded_family_trusted) {
  struct fixture f;
  setup_forging(&f);
  f.req.trust_forwarded = true;
  const char *out = write_request(&f);
  ck_assert_ptr_nonnull(strstr(out, "\r\nX-Forwarded-For: 10.1.1.1, 192.0.2.7\r\n"));
  ck_assert_int_eq(count_lines(out, "X-Forwarded-For:"), 1);
  ck_assert_ptr_nonnull(strstr(out, "\r\nForwarded: for=10.9.9.9;proto=https\r\n"));
  ck_assert_ptr_nonnull(strstr(out, "\r\nX-Real-IP: 10.8.8.8\r\n"));
  ck_assert_ptr_nonnull(strstr(out, "\r\nX-Forwarded-Port: 8443\r\n"));
  ck_assert_ptr_nonnull(strstr(out, "\r\nx-forwarded-proto: https\r\n"));
  ck_assert_ptr_nonnull(strstr(out, "\r\nX-Forwarded-Host: public.example\r\n"));
  ck_assert_ptr_nonnull(strstr(out, "\r\nX-Forwarded-Prefix: /evil\r\n"));
  /* The front's Proto and Host, not a second pair of wsbal's. */
  ck_assert_int_eq(count_lines(out, "X-Forwarded-Proto:") + count_lines(out, "x-forwarded-proto:"),
                   1);
  ck_assert_int_eq(count_lines(out, "X-Forwarded-Host:"), 1);
  /* Still one subprotocol line, no body fields, the normalised path. */
  ck_assert_int_eq(count_lines(out, "Sec-WebSocket-Protocol:"), 1);
  ck_assert_ptr_null(strstr(out, "Content-Length"));
  ck_assert_ptr_null(strstr(out, "Expect"));
  ck_assert_ptr_nonnull(strstr(out, "GET /prefix/ws/b?q=/../x HTTP/1.1\r\n"));
  wsb_upgrade_request_free(&f.up);
  free(f.buf);

  /* A trusted client without the family gets wsbal's own lines. */
  setup_request(&f);
  f.req.trust_forwarded = true;
  out = write_request(&f);
  ck_assert_ptr_nonnull(strstr(out, "\r\nX-Forwarded-Proto: https\r\n")); /* the client's */
  ck_assert_ptr_nonnull(strstr(out, "\r\nX-Forwarded-Host: lb.example:8080\r\n"));
  free(f.buf);
}
END_TEST

static const char backend_101[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                  "Upgrade: websocket\r\n"
                                  "Connection: Upgrade\r\n"
                                  "Sec-WebSocket-Accept: xxxxxxxxxxxxxxxxxxxxxxxxxxx=\r\n"
                                  "Sec-WebSocket-Protocol: superchat\r\n"
                                  "X-Backend-Id: b1\r\n"
                                  "Set-Cookie: s=1\r\n"
                                  "\r\n";

START_TEST(test_response) {
  size_t len = strlen(backend_101);
  char *buf = malloc(len);
  memcpy(buf, backend_101, len);
  struct wsb_http_head h;
  wsb_http_head_init(&h, true, 16384);
  ck_assert_int_eq(wsb_http_feed(&h, buf, len), (ssize_t)len);
  struct wsb_upgrade_response chosen = {.protocol = {"superchat", 9}};
  char out[1024];
  ssize_t n = wsb_proxy_response_write(out, sizeof(out) - 1, (struct wsb_slice){KEY, 24}, &h,
                                       &chosen, "x-backend-id,Sec-WebSocket-Accept,Connection");
  ck_assert_int_gt(n, 0);
  out[n] = '\0';
  ck_assert_str_eq(out, "HTTP/1.1 101 Switching Protocols\r\n"
                        "Upgrade: websocket\r\n"
                        "Connection: Upgrade\r\n"
                        "Sec-WebSocket-Accept: " ACCEPT "\r\n"
                        "Sec-WebSocket-Protocol: superchat\r\n"
                        "X-Backend-Id: b1\r\n"
                        "\r\n");
  chosen.protocol.p = NULL;
  n = wsb_proxy_response_write(out, sizeof(out) - 1, (struct wsb_slice){KEY, 24}, &h, &chosen, "");
  out[n] = '\0';
  ck_assert_ptr_null(strstr(out, "Sec-WebSocket-Protocol"));
  ck_assert_ptr_null(strstr(out, "X-Backend-Id"));
  ck_assert_int_eq(wsb_proxy_response_write(out, 40, (struct wsb_slice){KEY, 24}, &h, &chosen, ""),
                   -ENOSPC);
  free(buf);
}
END_TEST

static struct wsb_slice sl(const char *s) {
  return (struct wsb_slice){s, strlen(s)};
}

START_TEST(test_path_policy) {
  ck_assert(wsb_proxy_path_allowed(NULL, sl("/anything")));
  ck_assert(wsb_proxy_path_allowed("", sl("/anything")));
  ck_assert(wsb_proxy_path_allowed("/", sl("/anything")));
  ck_assert(wsb_proxy_path_allowed("/ws", sl("/ws")));
  ck_assert(wsb_proxy_path_allowed("/ws", sl("/ws/room")));
  ck_assert(wsb_proxy_path_allowed("/ws", sl("/ws?x=1")));
  ck_assert(wsb_proxy_path_allowed("/ws/", sl("/ws/room")));
  ck_assert(!wsb_proxy_path_allowed("/ws", sl("/wsx")));
  ck_assert(!wsb_proxy_path_allowed("/ws", sl("/w")));
  ck_assert(!wsb_proxy_path_allowed("/ws", sl("/other/ws")));
  ck_assert(!wsb_proxy_path_allowed("/ws", sl("")));
}
END_TEST

START_TEST(test_origin_policy) {
  ck_assert(wsb_proxy_origin_allowed("", sl("https://any.example")));
  ck_assert(wsb_proxy_origin_allowed(NULL, sl("https://any.example")));
  ck_assert(
      wsb_proxy_origin_allowed("https://a.example,https://b.example", sl("https://b.example")));
  ck_assert(wsb_proxy_origin_allowed("https://a.example", sl("HTTPS://A.EXAMPLE")));
  ck_assert(!wsb_proxy_origin_allowed("https://a.example", sl("https://a.example.evil")));
  ck_assert(!wsb_proxy_origin_allowed("https://a.example", sl("https://a.exampl")));
  ck_assert(!wsb_proxy_origin_allowed("https://a.example", sl("null")));
}
END_TEST

/* The real client of a request with these X-Forwarded-For lines from peer, as text. */
static const char *real_client(const char *xff_lines, const char *trusted, const char *peer) {
  static char req[1024], out[INET6_ADDRSTRLEN];
  snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: h\r\n%s\r\n", xff_lines);
  struct wsb_http_head h;
  wsb_http_head_init(&h, false, sizeof(req));
  ck_assert_int_eq(wsb_http_feed(&h, req, strlen(req)), (ssize_t)strlen(req));
  struct wsb_cidr_set set;
  ck_assert_int_eq(wsb_cidr_set_parse(trusted, &set), 0);
  uint8_t pf, pa[16], f, a[16];
  ck_assert(wsb_ip_parse(peer, strlen(peer), &pf, pa));
  wsb_proxy_real_client(&h, &set, pf, pa, &f, a);
  ck_assert_ptr_nonnull(inet_ntop(f, a, out, sizeof(out)));
  return out;
}

/* nginx's real_ip_recursive: the rightmost address that is not trusted. */
START_TEST(test_real_client) {
  static const char chain[] = "X-Forwarded-For: 203.0.113.9, 198.51.100.4\r\n"
                              "X-Forwarded-For: 10.0.0.1\r\n";
  /* An untrusted peer's headers count for nothing. */
  ck_assert_str_eq(real_client(chain, "off", "192.0.2.1"), "192.0.2.1");
  ck_assert_str_eq(real_client(chain, "10.0.0.0/8", "192.0.2.1"), "192.0.2.1");
  /* on: everyone is trusted, the leftmost is the client (as before trusted networks). */
  ck_assert_str_eq(real_client(chain, "on", "192.0.2.1"), "203.0.113.9");
  /* The peer and 10.0.0.1 are trusted, 198.51.100.4 is not: it is the client, whatever it
     claims further left. */
  ck_assert_str_eq(real_client(chain, "192.0.2.0/24, 10.0.0.0/8", "192.0.2.1"), "198.51.100.4");
  ck_assert_str_eq(real_client(chain, "192.0.2.1, 10.0.0.0/8, 198.51.100.0/24", "192.0.2.1"),
                   "203.0.113.9");
  /* Every hop trusted: the leftmost. No header: the peer. */
  ck_assert_str_eq(real_client(chain, "0.0.0.0/0", "192.0.2.1"), "203.0.113.9");
  ck_assert_str_eq(real_client("", "on", "192.0.2.1"), "192.0.2.1");
  /* Empty lines and elements are skipped; ports and brackets are how some proxies write. */
  ck_assert_str_eq(real_client("X-Forwarded-For:\r\nX-Forwarded-For: , ,\r\n"
                               "X-Forwarded-For:  , 198.51.100.4:5000, 10.0.0.1\r\n",
                               "on", "::1"),
                   "198.51.100.4");
  ck_assert_str_eq(
      real_client("X-Forwarded-For: [2001:db8::7]:443, fd00::1\r\n", "::1, fd00::/8", "::1"),
      "2001:db8::7");
  /* An IPv4 client behind a dual-stack listener is ::ffff:a.b.c.d and matches IPv4 networks. */
  ck_assert_str_eq(
      real_client("X-Forwarded-For: 198.51.100.4\r\n", "127.0.0.0/8", "::ffff:127.0.0.2"),
      "198.51.100.4");
  /* Garbage right of the client: the chain cannot be followed, the peer it is. Left of an
     untrusted address it does not matter. */
  ck_assert_str_eq(real_client("X-Forwarded-For: 198.51.100.4, <script>\r\n", "on", "10.9.9.9"),
                   "10.9.9.9");
  ck_assert_str_eq(
      real_client("X-Forwarded-For: junk, 198.51.100.4, 10.0.0.1\r\n", "10.0.0.0/8", "10.9.9.9"),
      "198.51.100.4");
  ck_assert_str_eq(
      real_client("X-Forwarded-For: 1.2.3.4.5, 999.1.1.1, [::1, :::, 1.2.3.4:99999\r\n", "on",
                  "10.9.9.9"),
      "10.9.9.9");
}
END_TEST

int main(void) {
  Suite *s = suite_create("proxy");
  TCase *tc = tcase_create("proxy");
  tcase_add_test(tc, test_request_exact);
  tcase_add_test(tc, test_request_options);
  tcase_add_test(tc, test_request_strip);
  tcase_add_test(tc, test_request_host_forms);
  tcase_add_test(tc, test_request_no_room);
  tcase_add_test(tc, test_forwarded_family_untrusted);
  tcase_add_test(tc, test_forwarded_family_trusted);
  tcase_add_test(tc, test_response);
  tcase_add_test(tc, test_path_policy);
  tcase_add_test(tc, test_origin_policy);
  tcase_add_test(tc, test_real_client);
  suite_add_tcase(s, tc);
  return wsb_run_suite(s);
}
