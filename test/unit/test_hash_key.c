/* Unit tests for common/hash_key.c: each hash_key kind, and the fallback to the client's address
 * (which X-Forwarded-For address that is: test_proxy.c's real_client tests). */
#include <check.h>
#include <string.h>

#include "hash_key.h"
#include "run_suite.h"

static const char request[] = "GET /room/7?user=ann&x=&team=blue HTTP/1.1\r\n"
                              "Host: lb.example\r\n"
                              "X-Tenant:  acme \r\n"
                              "Cookie: theme=dark; sid=s-42\r\n"
                              "Cookie: other=1\r\n"
                              "X-Forwarded-For: 203.0.113.9, 10.0.0.1\r\n"
                              "\r\n";

static struct wsb_http_head head;
static struct wsb_hash_key_source src;

static void setup(void) {
  wsb_http_head_init(&head, false, sizeof(request));
  ck_assert_int_eq(wsb_http_feed(&head, request, strlen(request)), (ssize_t)strlen(request));
  src = (struct wsb_hash_key_source){&head, head.url, "192.0.2.1"};
}

static void expect(enum wsb_hash_key kind, const char *name, bool found, const char *want) {
  struct wsb_slice out;
  ck_assert_int_eq(wsb_hash_key_get(kind, name, &src, &out), found);
  ck_assert_uint_eq(out.len, strlen(want));
  ck_assert(memcmp(out.p, want, out.len) == 0);
}

START_TEST(each_kind) {
  setup();
  expect(WSB_HASH_IP, NULL, true, "192.0.2.1");
  expect(WSB_HASH_PATH, NULL, true, "/room/7");
  expect(WSB_HASH_HEADER, "x-tenant", true, "acme");
  expect(WSB_HASH_COOKIE, "sid", true, "s-42");
  expect(WSB_HASH_COOKIE, "other", true, "1");
  expect(WSB_HASH_QUERY, "user", true, "ann");
  expect(WSB_HASH_QUERY, "team", true, "blue");
}
END_TEST

START_TEST(missing_falls_back_to_ip) {
  setup();
  expect(WSB_HASH_HEADER, "X-Nope", false, "192.0.2.1");
  expect(WSB_HASH_COOKIE, "Sid", false, "192.0.2.1"); /* cookie names are case-sensitive */
  expect(WSB_HASH_QUERY, "us", false, "192.0.2.1");
  expect(WSB_HASH_QUERY, "x", false, "192.0.2.1"); /* empty value */
  expect(WSB_HASH_QUERY, NULL, false, "192.0.2.1");
}
END_TEST

START_TEST(path_without_query) {
  static const char plain[] = "GET /a/b HTTP/1.1\r\nHost: h\r\n\r\n";
  wsb_http_head_init(&head, false, sizeof(plain));
  ck_assert_int_eq(wsb_http_feed(&head, plain, strlen(plain)), (ssize_t)strlen(plain));
  src = (struct wsb_hash_key_source){&head, head.url, "::1"};
  expect(WSB_HASH_PATH, NULL, true, "/a/b");
  expect(WSB_HASH_QUERY, "a", false, "::1");
  expect(WSB_HASH_IP, NULL, true, "::1");
}
END_TEST

int main(void) {
  Suite *s = suite_create("hash_key");
  TCase *tc = tcase_create("hash_key");
  tcase_add_test(tc, each_kind);
  tcase_add_test(tc, missing_falls_back_to_ip);
  tcase_add_test(tc, path_without_query);
  suite_add_tcase(s, tc);
  return wsb_run_suite(s);
}
