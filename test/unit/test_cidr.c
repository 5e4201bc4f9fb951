/* Unit tests for common/cidr.c: trust_forwarded's lists, matching, X-Forwarded-For addresses. */
#include <arpa/inet.h>
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "cidr.h"
#include "errors.h"
#include "run_suite.h"

static bool has(const struct wsb_cidr_set *set, const char *ip) {
  uint8_t f, a[16];
  ck_assert_msg(wsb_ip_parse(ip, strlen(ip), &f, a), "%s parses", ip);
  return wsb_cidr_set_has(set, f, a);
}

START_TEST(booleans) {
  struct wsb_cidr_set s;
  ck_assert_int_eq(wsb_cidr_set_parse("on", &s), 0);
  ck_assert(s.all && has(&s, "203.0.113.1") && has(&s, "2001:db8::1"));
  ck_assert_int_eq(wsb_cidr_set_parse("yes", &s), 0);
  ck_assert(s.all);
  ck_assert_int_eq(wsb_cidr_set_parse("off", &s), 0);
  ck_assert(!s.all && s.n == 0 && !has(&s, "127.0.0.1"));
}
END_TEST

START_TEST(lists) {
  struct wsb_cidr_set s;
  ck_assert_int_eq(wsb_cidr_set_parse("10.0.0.0/8, 192.168.1.7 ,::1,fd00::/8, 172.16.5.9/12", &s),
                   0);
  ck_assert_uint_eq(s.n, 5);
  ck_assert(has(&s, "10.0.0.1") && has(&s, "10.255.255.255"));
  ck_assert(!has(&s, "11.0.0.0") && !has(&s, "9.255.255.255"));
  ck_assert(has(&s, "192.168.1.7") && !has(&s, "192.168.1.8"));
  ck_assert(has(&s, "::1") && !has(&s, "::2"));
  ck_assert(has(&s, "fd00::1") && has(&s, "fdff:ffff::1") && !has(&s, "fe00::1"));
  /* Host bits under the prefix are ignored: 172.16.5.9/12 is 172.16.0.0/12. */
  ck_assert(has(&s, "172.31.255.1") && !has(&s, "172.32.0.1"));
  /* A dual-stack listener's IPv4 client, mapped into IPv6. */
  ck_assert(has(&s, "::ffff:10.1.2.3") && !has(&s, "::ffff:11.1.2.3"));
  /* IPv4 networks never match IPv6 addresses that merely share bytes. */
  ck_assert(!has(&s, "a00::1"));
  /* Odd prefix lengths, /0 and /32. */
  ck_assert_int_eq(wsb_cidr_set_parse("198.51.100.128/25, 2001:db8::/33", &s), 0);
  ck_assert(has(&s, "198.51.100.200") && !has(&s, "198.51.100.127"));
  ck_assert(has(&s, "2001:db8:7fff::1") && !has(&s, "2001:db8:8000::1"));
  ck_assert_int_eq(wsb_cidr_set_parse("0.0.0.0/0", &s), 0);
  ck_assert(has(&s, "255.255.255.255") && !has(&s, "::1"));
  ck_assert_int_eq(wsb_cidr_set_parse("127.0.0.2/32", &s), 0);
  ck_assert(has(&s, "127.0.0.2") && !has(&s, "127.0.0.1"));
}
END_TEST

START_TEST(bad_lists) {
  static const char *const bad[] = {
      "",       "10.0.0.0/33", "::1/129", "10.0.0.0/",   "10.0.0.0/8/8", "10.0.0.300",
      "10.0.0", "localhost",   "1,,2",    "10.0.0.1, ",  "fd00::/-1",    "10.0.0.0/0x8",
      "[::1]",  "10.0.0.1:80", "maybe",   "10.0.0.0 /8", "::1/1000",     "1.2.3.4/8a",
  };
  struct wsb_cidr_set s = {.n = 7};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    ck_assert_msg(wsb_cidr_set_parse(bad[i], &s) == WSB_EVALUE, "\"%s\" refused", bad[i]);
    ck_assert_uint_eq(s.n, 7); /* untouched */
  }
  char many[65 * 16] = "";
  for (int i = 0; i < 65; i++)
    snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s10.0.0.%d", i ? "," : "", i);
  ck_assert_int_eq(wsb_cidr_set_parse(many, &s), WSB_ERANGE_VALUE);
  many[strrchr(many, ',') - many] = '\0';
  ck_assert_int_eq(wsb_cidr_set_parse(many, &s), 0);
  ck_assert_uint_eq(s.n, WSB_CIDR_MAX);
}
END_TEST

START_TEST(forwarded_addresses) {
  static const struct {
    const char *in;
    int family;
    const char *out;
  } ok[] = {
      {"192.0.2.1", AF_INET, "192.0.2.1"},
      {"192.0.2.1:5000", AF_INET, "192.0.2.1"},
      {"2001:db8::1", AF_INET6, "2001:db8::1"},
      {"[2001:db8::1]", AF_INET6, "2001:db8::1"},
      {"[2001:db8::1]:443", AF_INET6, "2001:db8::1"},
      {"::ffff:1.2.3.4", AF_INET6, "::ffff:1.2.3.4"},
  };
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    uint8_t f, a[16];
    char text[INET6_ADDRSTRLEN];
    ck_assert_msg(wsb_ip_parse(ok[i].in, strlen(ok[i].in), &f, a), "%s parses", ok[i].in);
    ck_assert_int_eq(f, ok[i].family);
    ck_assert_str_eq(inet_ntop(f, a, text, sizeof(text)), ok[i].out);
  }
  static const char *const bad[] = {"",          "unknown",  "192.0.2.1:", "192.0.2.1:99999",
                                    "[::1",      "[::1]x",   "[::1]:",     "[192.0.2.1]",
                                    "1.2.3.4.5", "::1:80:x", "_hidden",    "1.2.3.4 ",
                                    "[]",        "[::1]:8a", "::g",        "192.0.2.1:-1"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    uint8_t f, a[16];
    ck_assert_msg(!wsb_ip_parse(bad[i], strlen(bad[i]), &f, a), "\"%s\" refused", bad[i]);
  }
  /* Only len bytes are read: the rest of a header line is not part of the address. */
  uint8_t f, a[16];
  ck_assert(wsb_ip_parse("10.0.0.1, 10.0.0.2", 8, &f, a));
  ck_assert(!wsb_ip_parse("10.0.0.1, 10.0.0.2", 9, &f, a));
}
END_TEST

int main(void) {
  Suite *s = suite_create("cidr");
  TCase *tc = tcase_create("cidr");
  tcase_add_test(tc, booleans);
  tcase_add_test(tc, lists);
  tcase_add_test(tc, bad_lists);
  tcase_add_test(tc, forwarded_addresses);
  suite_add_tcase(s, tc);
  return wsb_run_suite(s);
}
