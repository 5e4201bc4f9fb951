/* Unit tests for common/uri_path.c: dot segments removed, odd spellings refused, the query
 * untouched. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "proxy.h"
#include "run_suite.h"
#include "uri_path.h"

/* The input sits at the very end of an exact heap allocation, so a read past it is caught. */
static char *exact_copy(const char *text) {
  size_t len = strlen(text);
  char *p = malloc(len > 0 ? len : 1);
  ck_assert_ptr_nonnull(p);
  memcpy(p, text, len);
  return p;
}

/* expected == NULL: refused with WSB_EPATH. */
static const struct {
  const char *in;
  const char *expected;
} cases[] = {
    /* already canonical: 0 from the check, the same bytes out */
    {"/", "/"},
    {"/ws", "/ws"},
    {"/ws/", "/ws/"},
    {"/ws/a/b", "/ws/a/b"},
    {"/ws//a", "/ws//a"},
    {"//", "//"},
    {"/ws?x=1", "/ws?x=1"},
    {"/ws/...", "/ws/..."},
    {"/ws/.a", "/ws/.a"},
    {"/ws/a.", "/ws/a."},
    {"/ws/..a", "/ws/..a"},
    {"/ws/a..b", "/ws/a..b"},
    {"/ws/%2e%2e%2e", "/ws/%2e%2e%2e"},
    {"/ws/%2ea", "/ws/%2ea"},
    {"/ws/file%2Ejson", "/ws/file%2Ejson"},
    {"/ws/%41%7e", "/ws/%41%7e"},
    {"/ws/a;b", "/ws/a;b"},
    {"/ws/...;x", "/ws/...;x"},
    {"/ws/%252e%252e/x", "/ws/%252e%252e/x"},
    {"/ws/%25", "/ws/%25"},
    /* the query is never looked at nor changed, whatever it holds */
    {"/ws?../..", "/ws?../.."},
    {"/ws?a=%2f%00%5c\\", "/ws?a=%2f%00%5c\\"},
    {"/ws/./a?b/../c", "/ws/a?b/../c"},
    {"/?", "/?"},
    {"/ws/.?", "/ws/?"},
    /* dot segments removed (RFC 3986 5.2.4) */
    {"/.", "/"},
    {"/./", "/"},
    {"/ws/.", "/ws/"},
    {"/ws/./a", "/ws/a"},
    {"/ws/././a", "/ws/a"},
    {"/ws/a/..", "/ws/"},
    {"/ws/a/../", "/ws/"},
    {"/ws/a/../b", "/ws/b"},
    {"/ws/..", "/"},
    {"/ws/../", "/"},
    {"/ws/../admin", "/admin"},
    {"/ws/../ws/a", "/ws/a"},
    {"/ws/a/b/../../c", "/ws/c"},
    {"/ws/a/./../b/./c/.", "/ws/b/c/"},
    {"/ws//..", "/ws/"},
    {"/ws//../a", "/ws/a"},
    {"/a/b/c/./../../g", "/a/g"},
    {"/ws/../admin?q=1", "/admin?q=1"},
    /* the same with %2e and %2E for dots */
    {"/ws/%2e/a", "/ws/a"},
    {"/ws/%2E/a", "/ws/a"},
    {"/ws/%2e%2e/admin", "/admin"},
    {"/ws/%2E%2E/admin", "/admin"},
    {"/ws/.%2e/admin", "/admin"},
    {"/ws/%2e./admin", "/admin"},
    {"/ws/a/%2e%2E", "/ws/"},
    {"/ws/%2e", "/ws/"},
    /* refused: above the root */
    {"/..", NULL},
    {"/../", NULL},
    {"/../ws", NULL},
    {"/ws/../..", NULL},
    {"/ws/../../admin", NULL},
    {"/ws/a/../../../x", NULL},
    {"/./..", NULL},
    {"/%2e%2e", NULL},
    {"/%2e%2e/ws", NULL},
    {"/ws/%2e%2e/%2e%2e/etc/passwd", NULL},
    /* refused: bytes a backend could read as something else */
    {"/ws\\..\\admin", NULL},
    {"/ws/a\\b", NULL},
    {"/ws/%5c", NULL},
    {"/ws/%5C", NULL},
    {"/ws/..%2fadmin", NULL},
    {"/ws%2F..%2Fadmin", NULL},
    {"/ws/%2f", NULL},
    {"/ws/a%00", NULL},
    {"/ws/%00/x", NULL},
    {"/ws/%", NULL},
    {"/ws/%2", NULL},
    {"/ws/%zz", NULL},
    {"/ws/%g0", NULL},
    {"/ws/%2e%", NULL},
    {"/ws#x", NULL},
    {"/ws?a#x", NULL},
    {"/ws/..;/admin", NULL},
    {"/ws/.;x/a", NULL},
    {"/ws/%2e%2e;jsessionid=1/admin", NULL},
    {"/ws/..;", NULL},
    /* refused: not a path at all */
    {"", NULL},
    {"?x", NULL},
    {"ws", NULL},
    {"*", NULL},
};

#define N_CASES (int)(sizeof(cases) / sizeof(cases[0]))

START_TEST(test_cases) {
  const char *in = cases[_i].in;
  char *buf = exact_copy(in);
  struct wsb_slice target = {buf, strlen(in)};
  char *out = malloc(target.len > 0 ? target.len : 1);
  ck_assert_ptr_nonnull(out);
  int check = wsb_uri_path_check(target);
  ssize_t n = wsb_uri_path_normalize(target, out);
  if (cases[_i].expected == NULL) {
    ck_assert_msg(check == WSB_EPATH, "check of \"%s\" gave %d, not refused", in, check);
    ck_assert_msg(n == WSB_EPATH, "\"%s\" normalised to %zd bytes, not refused", in, n);
  } else {
    const char *exp = cases[_i].expected;
    ck_assert_msg(n == (ssize_t)strlen(exp) && memcmp(out, exp, strlen(exp)) == 0,
                  "\"%s\" gave \"%.*s\", expected \"%s\"", in, n > 0 ? (int)n : 0, out, exp);
    ck_assert_msg(check == (strcmp(in, exp) != 0), "check of \"%s\" gave %d", in, check);
    /* Canonical output stays itself. */
    struct wsb_slice again = {out, (size_t)n};
    ck_assert_int_eq(wsb_uri_path_check(again), 0);
  }
  free(out);
  free(buf);
}
END_TEST

/* Every prefix of every case is judged without reading past its end (ASan watches). */
START_TEST(test_prefixes) {
  for (int i = 0; i < N_CASES; i++) {
    size_t len = strlen(cases[i].in);
    for (size_t cut = 0; cut <= len; cut++) {
      char *buf = malloc(cut > 0 ? cut : 1);
      memcpy(buf, cases[i].in, cut);
      char *out = malloc(cut > 0 ? cut : 1);
      struct wsb_slice target = {buf, cut};
      int check = wsb_uri_path_check(target);
      ssize_t n = wsb_uri_path_normalize(target, out);
      ck_assert(check == 0 || check == 1 || check == WSB_EPATH);
      ck_assert(n == WSB_EPATH ? check == WSB_EPATH : check >= 0 && (size_t)n <= cut);
      free(out);
      free(buf);
    }
  }
}
END_TEST

/*
 * Every path over a small alphabet of the pieces that matter, up to 4 pieces: the result is
 * never longer, canonical, and starts with '/'; a refusal by one entry point is one by both.
 */
START_TEST(test_exhaustive_small) {
  static const char *const pieces[] = {"/", ".", "..", "%2e", "a", ";", "?", "%2f"};
  enum { NP = sizeof(pieces) / sizeof(pieces[0]) };
  char text[64], out[64];
  for (int count = 1; count <= 4; count++) {
    int total = 1;
    for (int k = 0; k < count; k++)
      total *= NP;
    for (int code = 0; code < total; code++) {
      size_t len = 1;
      text[0] = '/';
      for (int k = 0, c = code; k < count; k++, c /= NP) {
        size_t pl = strlen(pieces[c % NP]);
        memcpy(text + len, pieces[c % NP], pl);
        len += pl;
      }
      struct wsb_slice target = {text, len};
      int check = wsb_uri_path_check(target);
      ssize_t n = wsb_uri_path_normalize(target, out);
      ck_assert(n == WSB_EPATH ? check == WSB_EPATH : check >= 0);
      if (n < 0)
        continue;
      ck_assert((size_t)n <= len && n > 0 && out[0] == '/');
      ck_assert_int_eq(wsb_uri_path_check((struct wsb_slice){out, (size_t)n}), 0);
      if (check == 0)
        ck_assert(n == (ssize_t)len && memcmp(out, text, len) == 0);
    }
  }
}
END_TEST

/*
 * The [listen] path rule on normalised paths: segment-wise, so "/ws" takes "/ws", "/ws/..."
 * and "/ws?..." but not "/wsx"; what climbed out of the prefix no longer matches it.
 */
START_TEST(test_prefix_match_after_normalising) {
  static const struct {
    const char *in;
    int allowed; /* -1: refused before any match */
  } m[] = {
      {"/ws", 1},
      {"/ws/", 1},
      {"/ws/a", 1},
      {"/ws?x", 1},
      {"/wsx", 0},
      {"/ws.", 0},
      {"/w", 0},
      {"/", 0},
      {"/ws/./a", 1},
      {"/ws/a/..", 1},
      {"/ws/..", 0},
      {"/ws/../admin", 0},
      {"/ws/%2e%2e/admin", 0},
      {"/ws/../ws/a", 1},
      {"/x/../ws", 1},
      {"/ws/../../a", -1},
      {"/ws/..%2fadmin", -1},
      {"/ws%2f", -1},
      {"/WS", 0},
      {"/%77s", 0},
      {"//ws", 0},
      {"/ws;a", 0},
      {"/ws/.?../admin", 1},
      {"/ws/..;/admin", -1},
  };
  for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
    char *buf = exact_copy(m[i].in);
    struct wsb_slice target = {buf, strlen(m[i].in)};
    char out[64];
    ssize_t n = wsb_uri_path_normalize(target, out);
    if (m[i].allowed < 0) {
      ck_assert_msg(n == WSB_EPATH, "%s not refused", m[i].in);
    } else {
      ck_assert_msg(n > 0, "%s refused", m[i].in);
      bool ok = wsb_proxy_path_allowed("/ws", (struct wsb_slice){out, (size_t)n});
      ck_assert_msg(ok == (m[i].allowed == 1), "%s: allowed %d", m[i].in, ok);
      /* A configured trailing '/' is the same prefix. */
      ck_assert(wsb_proxy_path_allowed("/ws/", (struct wsb_slice){out, (size_t)n}) == ok);
    }
    free(buf);
  }
}
END_TEST

static Suite *uri_path_suite(void) {
  Suite *s = suite_create("uri_path");
  TCase *tc = tcase_create("core");
  tcase_add_loop_test(tc, test_cases, 0, N_CASES);
  tcase_add_test(tc, test_prefixes);
  tcase_add_test(tc, test_exhaustive_small);
  tcase_add_test(tc, test_prefix_match_after_normalising);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return wsb_run_suite(uri_path_suite());
}
