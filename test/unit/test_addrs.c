/* Unit tests for common/addrs.c: sorted address sets, NAME#ADDR names, diffs for the log. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <string.h>

#include "addrs.h"
#include "run_suite.h"

/* A getaddrinfo-like list from text addresses, all on one port. */
static struct addrinfo *chain(const char *const *texts, size_t n, struct addrinfo *ai,
                              union wsb_addr *storage) {
  for (size_t i = 0; i < n; i++) {
    memset(&storage[i], 0, sizeof(storage[i]));
    memset(&ai[i], 0, sizeof(ai[i]));
    if (strchr(texts[i], ':') != NULL) {
      storage[i].in6.sin6_family = AF_INET6;
      storage[i].in6.sin6_port = htons(8080);
      ck_assert_int_eq(inet_pton(AF_INET6, texts[i], &storage[i].in6.sin6_addr), 1);
      ai[i].ai_addrlen = sizeof(storage[i].in6);
    } else {
      storage[i].in.sin_family = AF_INET;
      storage[i].in.sin_port = htons(8080);
      ck_assert_int_eq(inet_pton(AF_INET, texts[i], &storage[i].in.sin_addr), 1);
      ai[i].ai_addrlen = sizeof(storage[i].in);
    }
    ai[i].ai_family = storage[i].sa.sa_family;
    ai[i].ai_addr = &storage[i].sa;
    ai[i].ai_next = i + 1 < n ? &ai[i + 1] : NULL;
  }
  return n ? &ai[0] : NULL;
}

static void set_of(struct wsb_addrs *s, const char *const *texts, size_t n) {
  struct addrinfo ai[16];
  union wsb_addr storage[16];
  ck_assert_uint_eq(wsb_addrs_from_addrinfo(s, chain(texts, n, ai, storage)), 0);
}

START_TEST(test_sorted_and_deduplicated) {
  static const char *const texts[] = {"::1", "10.0.0.9", "10.0.0.10", "::1", "10.0.0.9", "fd00::2"};
  struct wsb_addrs s;
  set_of(&s, texts, 6);
  ck_assert_uint_eq(s.n, 4);
  static const char *const want[] = {"10.0.0.9", "10.0.0.10", "::1", "fd00::2"};
  for (size_t i = 0; i < 4; i++) {
    char text[64];
    ck_assert_int_eq(wsb_addr_format(&s.a[i], text, sizeof(text)), 0);
    ck_assert_str_eq(text, want[i]);
    ck_assert_uint_eq(wsb_addr_len(&s.a[i]),
                      i < 2 ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
  }
  ck_assert_uint_eq(ntohs(s.a[2].in6.sin6_port), 8080);
}
END_TEST

START_TEST(test_equal_ignores_answer_order) {
  static const char *const a[] = {"10.0.0.1", "::1", "10.0.0.2"};
  static const char *const b[] = {"::1", "10.0.0.2", "10.0.0.1", "10.0.0.1"};
  static const char *const c[] = {"::1", "10.0.0.2"};
  struct wsb_addrs x, y, z;
  set_of(&x, a, 3);
  set_of(&y, b, 4);
  set_of(&z, c, 2);
  ck_assert(wsb_addrs_equal(&x, &y));
  ck_assert(!wsb_addrs_equal(&x, &z));
  ck_assert(!wsb_addrs_equal(&z, &x));
}
END_TEST

START_TEST(test_names) {
  static const char *const one[] = {"10.0.0.1"};
  static const char *const two[] = {"::1", "127.0.0.1"};
  struct wsb_addrs s;
  char name[128];
  set_of(&s, one, 1);
  ck_assert_int_eq(wsb_addrs_backend_name("web", &s, 0, name, sizeof(name)), 0);
  ck_assert_str_eq(name, "web"); /* one address: the configured name, as before discovery */
  set_of(&s, two, 2);
  ck_assert_int_eq(wsb_addrs_backend_name("web", &s, 0, name, sizeof(name)), 0);
  ck_assert_str_eq(name, "web#127.0.0.1");
  ck_assert_int_eq(wsb_addrs_backend_name("web", &s, 1, name, sizeof(name)), 0);
  ck_assert_str_eq(name, "web#::1");
  ck_assert_int_eq(wsb_addrs_backend_name("web", &s, 1, name, 7), -ENAMETOOLONG);
  ck_assert_int_eq(wsb_addrs_backend_name("web", &s, 1, name, 8), 0);
  /* The longest section name and the longest IPv6 text with a scope fit WSB_NAME_MAX (128). */
  char section[64];
  memset(section, 'a', 63);
  section[63] = '\0';
  struct wsb_addrs v6 = {0};
  union wsb_addr a = {0};
  a.in6.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", &a.in6.sin6_addr);
  a.in6.sin6_scope_id = 4294967295u;
  ck_assert_int_eq(wsb_addrs_add(&v6, &a.sa, sizeof(a.in6)), 1);
  ck_assert_int_eq(wsb_addrs_add(&v6, &a.sa, sizeof(a.in6)), 0); /* already there */
  a.in6.sin6_scope_id = 1;
  ck_assert_int_eq(wsb_addrs_add(&v6, &a.sa, sizeof(a.in6)), 1); /* another interface */
  ck_assert_int_eq(wsb_addrs_backend_name(section, &v6, 1, name, sizeof(name)), 0);
  ck_assert_ptr_nonnull(strstr(name, "%4294967295"));
  char sec[64];
  wsb_addrs_section(name, sec, sizeof(sec));
  ck_assert_str_eq(sec, section);
  wsb_addrs_section("web", sec, sizeof(sec));
  ck_assert_str_eq(sec, "web");
}
END_TEST

START_TEST(test_diff) {
  static const char *const before[] = {"10.0.0.1", "10.0.0.2", "fd00::1"};
  static const char *const after[] = {"10.0.0.2", "10.0.0.3", "fd00::1", "fd00::9"};
  struct wsb_addrs x, y;
  char out[128];
  set_of(&x, before, 3);
  set_of(&y, after, 4);
  wsb_addrs_diff(&x, &y, out, sizeof(out));
  ck_assert_str_eq(out, "-10.0.0.1 +10.0.0.3 +fd00::9");
  wsb_addrs_diff(&y, &x, out, sizeof(out));
  ck_assert_str_eq(out, "+10.0.0.1 -10.0.0.3 -fd00::9");
  wsb_addrs_diff(&x, &x, out, sizeof(out));
  ck_assert_str_eq(out, "");
  wsb_addrs_diff(&x, &y, out, 12); /* cut, never overrun */
  ck_assert_uint_lt(strlen(out), 12);
}
END_TEST

START_TEST(test_full_set_drops) {
  struct wsb_addrs s = {0};
  union wsb_addr a = {0};
  a.in.sin_family = AF_INET;
  for (unsigned i = 0; i < WSB_ADDRS_MAX; i++) {
    a.in.sin_addr.s_addr = htonl(0x0a000000u + i);
    ck_assert_int_eq(wsb_addrs_add(&s, &a.sa, sizeof(a.in)), 1);
  }
  a.in.sin_addr.s_addr = htonl(0x0b000000u);
  ck_assert_int_eq(wsb_addrs_add(&s, &a.sa, sizeof(a.in)), -ENOSPC);
  a.in.sin_addr.s_addr = htonl(0x0a000000u);
  ck_assert_int_eq(wsb_addrs_add(&s, &a.sa, sizeof(a.in)), 0);
  struct sockaddr unix_like = {.sa_family = AF_UNIX};
  ck_assert_int_eq(wsb_addrs_add(&s, &unix_like, sizeof(unix_like)), -EAFNOSUPPORT);
  ck_assert_uint_eq(s.n, WSB_ADDRS_MAX);
}
END_TEST

START_TEST(test_literal) {
  ck_assert(wsb_addrs_is_literal("127.0.0.1"));
  ck_assert(wsb_addrs_is_literal("::1"));
  ck_assert(!wsb_addrs_is_literal("localhost"));
  ck_assert(!wsb_addrs_is_literal("web.default.svc.cluster.local"));
  ck_assert(!wsb_addrs_is_literal("[::1]"));
}
END_TEST

int main(void) {
  Suite *s = suite_create("addrs");
  TCase *tc = tcase_create("addrs");
  tcase_add_test(tc, test_sorted_and_deduplicated);
  tcase_add_test(tc, test_equal_ignores_answer_order);
  tcase_add_test(tc, test_names);
  tcase_add_test(tc, test_diff);
  tcase_add_test(tc, test_full_set_drops);
  tcase_add_test(tc, test_literal);
  suite_add_tcase(s, tc);
  return wsb_run_suite(s);
}
