/* Unit tests for common/proxy_protocol.c: v1 and v2 headers read in every prefix, refused with
 * the right reason, and written back. */
#include <arpa/inet.h>
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "proxy_protocol.h"
#include "run_suite.h"

#define SIG "\r\n\r\n\0\r\nQUIT\n"

/* Parses buf whole, after checking every shorter prefix is partial (or already the same
   refusal, for refusals that show early); each in an allocation of exactly its length. */
static ssize_t parse_all(const void *buf, size_t len, enum wsb_pp_mode mode,
                         struct wsb_pp_header *h, enum wsb_pp_error *why) {
  uint8_t *copy = malloc(len ? len : 1);
  memcpy(copy, buf, len);
  ssize_t rc = wsb_pp_parse(copy, len, mode, h, why);
  for (size_t n = 0; n < len; n++) {
    uint8_t *p = malloc(n ? n : 1);
    memcpy(p, buf, n);
    struct wsb_pp_header ph;
    enum wsb_pp_error pwhy = WSB_PP_ERR_COUNT;
    ssize_t prc = wsb_pp_parse(p, n, mode, &ph, &pwhy);
    free(p);
    if (rc >= 0 && (size_t)rc <= n)
      break; /* past the header: the rest is the connection's */
    ck_assert_msg(prc == WSB_PARTIAL || (rc == WSB_EPROXY && prc == rc && pwhy == *why),
                  "prefix %zu of %zu: %zd", n, len, prc);
  }
  free(copy);
  return rc;
}

static void expect_addr(int family, const uint8_t *a, const char *text) {
  char out[INET6_ADDRSTRLEN];
  ck_assert_str_eq(inet_ntop(family, a, out, sizeof(out)), text);
}

/* The IPv4 example both versions carry: 192.0.2.1:51000 to 198.51.100.2:443. */
static void expect_example(const struct wsb_pp_header *h, int version) {
  ck_assert(!h->local && h->version == version && h->family == AF_INET);
  expect_addr(AF_INET, h->src, "192.0.2.1");
  expect_addr(AF_INET, h->dst, "198.51.100.2");
  ck_assert_uint_eq(h->src_port, 51000);
  ck_assert_uint_eq(h->dst_port, 443);
}

START_TEST(v1_tcp4_and_tcp6) {
  static const char h4[] = "PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\r\nGET / HTTP/1.1\r\n";
  struct wsb_pp_header h;
  enum wsb_pp_error why;
  ck_assert_int_eq(parse_all(h4, strlen(h4), WSB_PP_V1, &h, &why), 45);
  expect_example(&h, 1);
  static const char h6[] = "PROXY TCP6 2001:db8::1 ::1 65535 0\r\n\x16\x03\x01";
  ck_assert_int_eq(parse_all(h6, sizeof(h6) - 1, WSB_PP_ANY, &h, &why), 36);
  ck_assert(h.family == AF_INET6);
  expect_addr(AF_INET6, h.src, "2001:db8::1");
  expect_addr(AF_INET6, h.dst, "::1");
  ck_assert_uint_eq(h.src_port, 65535);
  ck_assert_uint_eq(h.dst_port, 0);
  static const char unknown[] = "PROXY UNKNOWN ffff::1 what ever\r\nrest";
  ck_assert_int_eq(parse_all(unknown, strlen(unknown), WSB_PP_ANY, &h, &why), 33);
  ck_assert(h.local && h.family == 0);
  ck_assert_int_eq(parse_all("PROXY UNKNOWN\r\n", 15, WSB_PP_V1, &h, &why), 15);
  ck_assert(h.local);
}
END_TEST

/* The longest legal v1 line is 107 bytes; 108 without its end is too long. */
START_TEST(v1_lengths) {
  char line[200] = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                   "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
  struct wsb_pp_header h;
  enum wsb_pp_error why;
  ck_assert_uint_eq(strlen(line), WSB_PP_V1_MAX);
  ck_assert_int_eq(parse_all(line, strlen(line), WSB_PP_V1, &h, &why), WSB_PP_V1_MAX);
  memset(line, 'x', sizeof(line));
  memcpy(line, "PROXY UNKNOWN ", 14);
  ck_assert_int_eq(parse_all(line, WSB_PP_V1_MAX, WSB_PP_V1, &h, &why), WSB_EPROXY);
  ck_assert_int_eq(why, WSB_PP_ERR_TOO_LONG);
  ck_assert_int_eq(wsb_pp_parse((uint8_t *)line, WSB_PP_V1_MAX - 1, WSB_PP_V1, &h, &why),
                   WSB_PARTIAL);
}
END_TEST

static void expect_refused(const void *buf, size_t len, enum wsb_pp_mode mode,
                           enum wsb_pp_error want) {
  struct wsb_pp_header h;
  enum wsb_pp_error why = WSB_PP_ERR_COUNT;
  ssize_t rc = parse_all(buf, len, mode, &h, &why);
  ck_assert_msg(rc == WSB_EPROXY && why == want, "\"%.*s\": %zd, %s instead of %s", (int)len,
                (const char *)buf, rc, wsb_pp_error_name(why), wsb_pp_error_name(want));
}

START_TEST(v1_refused) {
  static const struct {
    const char *line;
    enum wsb_pp_error why;
  } bad[] = {
      {"PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\n", WSB_PP_ERR_MALFORMED},
      {"PROXY TCP4 192.0.2.1 198.51.100.2 51000\r\n", WSB_PP_ERR_MALFORMED},
      {"PROXY TCP4 192.0.2.1 198.51.100.2 51000 443 7\r\n", WSB_PP_ERR_MALFORMED},
      {"PROXY TCP4 192.0.2.1  198.51.100.2 51000 443\r\n", WSB_PP_ERR_MALFORMED},
      {"PROXY TCP4 192.0.2.1 198.51.100.2 51000 443 \r\n", WSB_PP_ERR_MALFORMED},
      {"PROXY TCP4 ::1 198.51.100.2 51000 443\r\n", WSB_PP_ERR_MALFORMED},
      {"PROXY TCP6 192.0.2.1 ::1 51000 443\r\n", WSB_PP_ERR_MALFORMED},
      {"PROXY TCP4 192.0.2.1 198.51.100.2 65536 443\r\n", WSB_PP_ERR_MALFORMED},
      {"PROXY TCP4 192.0.2.1 198.51.100.2 -1 443\r\n", WSB_PP_ERR_MALFORMED},
      {"PROXY TCP4 192.0.2.1 198.51.100.2 0x10 443\r\n", WSB_PP_ERR_MALFORMED},
      {"PROXY TCP4 192.0.2.1 198.51.100.2 123456 443\r\n", WSB_PP_ERR_MALFORMED},
      {"PROXY TCP4 1.2.3 198.51.100.2 1 2\r\n", WSB_PP_ERR_MALFORMED},
      {"PROXY \r\n", WSB_PP_ERR_MALFORMED},
      {"PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n", WSB_PP_ERR_UNSUPPORTED},
      {"PROXY tcp4 192.0.2.1 198.51.100.2 1 2\r\n", WSB_PP_ERR_UNSUPPORTED},
      {"GET / HTTP/1.1\r\n", WSB_PP_ERR_MISSING},
      {"PROXX TCP4", WSB_PP_ERR_MISSING},
      {"proxy TCP4", WSB_PP_ERR_MISSING},
      {"\x16\x03\x01\x02\x00", WSB_PP_ERR_MISSING},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    expect_refused(bad[i].line, strlen(bad[i].line), WSB_PP_ANY, bad[i].why);
  /* A NUL inside the line is no address. */
  static const char nul[] = "PROXY TCP4 192.0.2.1\0 198.51.100.2 1 2\r\n";
  expect_refused(nul, sizeof(nul) - 1, WSB_PP_V1, WSB_PP_ERR_MALFORMED);
  /* v1 where only v2 is taken, and the other way round. */
  expect_refused("PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r\n", 39, WSB_PP_V2, WSB_PP_ERR_VERSION);
  expect_refused(SIG "\x21\x11\x00\x0c", 16, WSB_PP_V1, WSB_PP_ERR_VERSION);
  /* Beginning like a v2 signature is not being one. */
  expect_refused("\r\n\r\nGET", 7, WSB_PP_V1, WSB_PP_ERR_MISSING);
}
END_TEST

START_TEST(v2_proxy) {
  static const uint8_t v4[] = {'\r', '\n', '\r', '\n', 0,    '\r', '\n', 'Q', 'U', 'I', 'T',
                               '\n', 0x21, 0x11, 0x00, 0x0c, 192,  0,    2,   1,   198, 51,
                               100,  2,    0xc7, 0x38, 0x01, 0xbb, 'G',  'E', 'T'};
  struct wsb_pp_header h;
  enum wsb_pp_error why;
  ck_assert_int_eq(parse_all(v4, sizeof(v4), WSB_PP_V2, &h, &why), 28);
  expect_example(&h, 2);

  /* IPv6 with two TLVs (an ALPN, an empty NOOP) that are skipped. */
  uint8_t v6[16 + 36 + 7 + 3] = SIG "\x21\x21";
  v6[14] = 0;
  v6[15] = 36 + 10;
  inet_pton(AF_INET6, "2001:db8::1", v6 + 16);
  inet_pton(AF_INET6, "2001:db8::2", v6 + 32);
  memcpy(v6 + 48, "\x00\x50\x1f\x90", 4);
  memcpy(v6 + 52, "\x01\x00\x04h2c!", 7);
  memcpy(v6 + 59, "\x04\x00\x00", 3);
  ck_assert_int_eq(parse_all(v6, sizeof(v6), WSB_PP_ANY, &h, &why), (ssize_t)sizeof(v6));
  ck_assert(h.family == AF_INET6);
  expect_addr(AF_INET6, h.src, "2001:db8::1");
  expect_addr(AF_INET6, h.dst, "2001:db8::2");
  ck_assert_uint_eq(h.src_port, 80);
  ck_assert_uint_eq(h.dst_port, 8080);
}
END_TEST

START_TEST(v2_local_and_unspec) {
  struct wsb_pp_header h;
  enum wsb_pp_error why;
  /* LOCAL, with addresses that must be ignored. */
  static const uint8_t local[] = SIG "\x20\x11\x00\x0c\x0a\x00\x00\x01\x0a\x00\x00\x02\x00\x01\x00"
                                     "\x02";
  ck_assert_int_eq(parse_all(local, 28, WSB_PP_V2, &h, &why), 28);
  ck_assert(h.local && h.family == 0);
  ck_assert_int_eq(parse_all(SIG "\x20\x00\x00\x00", 16, WSB_PP_ANY, &h, &why), 16);
  ck_assert(h.local);
  /* PROXY over AF_UNSPEC: nothing to say about the client either. */
  ck_assert_int_eq(parse_all(SIG "\x21\x00\x00\x00", 16, WSB_PP_ANY, &h, &why), 16);
  ck_assert(h.local);
}
END_TEST

START_TEST(v2_refused) {
  expect_refused(SIG "\x11\x11\x00\x0c", 16, WSB_PP_V2, WSB_PP_ERR_VERSION);
  expect_refused(SIG "\x31\x11\x00\x0c", 16, WSB_PP_ANY, WSB_PP_ERR_VERSION);
  expect_refused(SIG "\x22\x11\x00\x0c", 16, WSB_PP_V2, WSB_PP_ERR_MALFORMED);
  expect_refused(SIG "\x21\x31\x00\x6c", 16, WSB_PP_V2, WSB_PP_ERR_UNSUPPORTED); /* UNIX */
  expect_refused(SIG "\x21\x12\x00\x0c", 16, WSB_PP_V2, WSB_PP_ERR_UNSUPPORTED); /* UDP */
  expect_refused(SIG "\x21\x41\x00\x0c", 16, WSB_PP_V2, WSB_PP_ERR_UNSUPPORTED);
  /* Too short for its addresses; a TLV running past the end. */
  static const uint8_t short_v4[] = SIG "\x21\x11\x00\x08\x01\x02\x03\x04\x05\x06\x07\x08";
  expect_refused(short_v4, 24, WSB_PP_V2, WSB_PP_ERR_MALFORMED);
  static const uint8_t bad_tlv[] = SIG "\x21\x11\x00\x10\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01"
                                       "\x00\x02\x01\x00\x09\x00";
  expect_refused(bad_tlv, 32, WSB_PP_V2, WSB_PP_ERR_MALFORMED);
  /* A length past wsbal's bound is refused from the fixed part alone. */
  expect_refused(SIG "\x21\x11\x08\x01", 16, WSB_PP_V2, WSB_PP_ERR_TOO_LONG);
  expect_refused(SIG "\x21\x11\xff\xff", 16, WSB_PP_ANY, WSB_PP_ERR_TOO_LONG);
  /* The bound itself is fine (all of it one TLV). */
  size_t len = WSB_PP_V2_FIXED + WSB_PP_V2_MAX_LEN;
  uint8_t *big = calloc(1, len);
  memcpy(big, SIG "\x21\x11", 14);
  big[14] = WSB_PP_V2_MAX_LEN >> 8;
  big[15] = WSB_PP_V2_MAX_LEN & 0xff;
  big[28] = 0x04;
  big[29] = (WSB_PP_V2_MAX_LEN - 15) >> 8;
  big[30] = (WSB_PP_V2_MAX_LEN - 15) & 0xff;
  struct wsb_pp_header h;
  enum wsb_pp_error why;
  ck_assert_int_eq(wsb_pp_parse(big, len, WSB_PP_V2, &h, &why), (ssize_t)len);
  ck_assert_int_eq(wsb_pp_parse(big, len - 1, WSB_PP_V2, &h, &why), WSB_PARTIAL);
  free(big);
}
END_TEST

START_TEST(http_detection) {
  ck_assert(wsb_pp_looks_like_http((const uint8_t *)"GET / HTTP/1.1", 14));
  ck_assert(wsb_pp_looks_like_http((const uint8_t *)"G", 1));
  ck_assert(wsb_pp_looks_like_http((const uint8_t *)"OPTIONS ", 8));
  ck_assert(!wsb_pp_looks_like_http((const uint8_t *)"\x16\x03\x01", 3));
  ck_assert(!wsb_pp_looks_like_http((const uint8_t *)"get /", 5));
  ck_assert(!wsb_pp_looks_like_http((const uint8_t *)"GET/", 4));
  ck_assert(!wsb_pp_looks_like_http((const uint8_t *)"", 0));
}
END_TEST

/* What wsbal writes, read back by its own parser, and byte for byte where it is short. */
START_TEST(write_and_read_back) {
  uint8_t out[WSB_PP_V1_MAX + 1], a4[4], b4[4], a6[16];
  struct wsb_pp_header h, back;
  enum wsb_pp_error why;
  inet_pton(AF_INET, "192.0.2.1", a4);
  inet_pton(AF_INET, "127.0.0.1", b4);
  inet_pton(AF_INET6, "2001:db8::9", a6);
  wsb_pp_set_ends(&h, AF_INET, a4, 40000, AF_INET, b4, 8080);
  size_t n = wsb_pp_write(out, sizeof(out), 1, &h);
  ck_assert_uint_eq(n, 43);
  ck_assert(memcmp(out, "PROXY TCP4 192.0.2.1 127.0.0.1 40000 8080\r\n", n) == 0);
  n = wsb_pp_write(out, sizeof(out), 2, &h);
  ck_assert_uint_eq(n, 28);
  ck_assert_int_eq(wsb_pp_parse(out, n, WSB_PP_V2, &back, &why), 28);
  ck_assert(back.family == AF_INET && memcmp(back.src, a4, 4) == 0 && back.src_port == 40000 &&
            memcmp(back.dst, b4, 4) == 0 && back.dst_port == 8080);
  /* An IPv6 client on an IPv4 listener: both ends go out as IPv6. */
  wsb_pp_set_ends(&h, AF_INET6, a6, 1, AF_INET, b4, 2);
  n = wsb_pp_write(out, sizeof(out), 1, &h);
  ck_assert(memcmp(out, "PROXY TCP6 2001:db8::9 ::ffff:127.0.0.1 1 2\r\n", n) == 0);
  n = wsb_pp_write(out, sizeof(out), 2, &h);
  ck_assert_uint_eq(n, 52);
  ck_assert_int_eq(wsb_pp_parse(out, n, WSB_PP_ANY, &back, &why), 52);
  expect_addr(AF_INET6, back.dst, "::ffff:127.0.0.1");
  /* LOCAL: what health checks send. */
  wsb_pp_set_ends(&h, 0, a4, 0, AF_INET, b4, 0);
  ck_assert(h.local);
  n = wsb_pp_write(out, sizeof(out), 1, &h);
  ck_assert(n == 15 && memcmp(out, "PROXY UNKNOWN\r\n", 15) == 0);
  n = wsb_pp_write(out, sizeof(out), 2, &h);
  ck_assert(n == 16 && memcmp(out, SIG "\x20\x00\x00\x00", 16) == 0);
  /* No room: nothing written. */
  ck_assert_uint_eq(wsb_pp_write(out, 10, 2, &h), 0);
  ck_assert_uint_eq(wsb_pp_write(out, 10, 1, &h), 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("proxy_protocol");
  TCase *tc = tcase_create("proxy_protocol");
  tcase_add_test(tc, v1_tcp4_and_tcp6);
  tcase_add_test(tc, v1_lengths);
  tcase_add_test(tc, v1_refused);
  tcase_add_test(tc, v2_proxy);
  tcase_add_test(tc, v2_local_and_unspec);
  tcase_add_test(tc, v2_refused);
  tcase_add_test(tc, http_detection);
  tcase_add_test(tc, write_and_read_back);
  suite_add_tcase(s, tc);
  return wsb_run_suite(s);
}
