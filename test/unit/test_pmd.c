/* Unit tests for common/pmd.c: permessage-deflate offers, RFC 7692 section 7's rules, answers. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "pmd.h"
#include "run_suite.h"

static int neg(const char *value, bool takeover, struct wsb_pmd_params *p) {
  memset(p, 0xA5, sizeof(*p)); /* untouched unless accepted */
  return wsb_pmd_negotiate_value((struct wsb_slice){value, strlen(value)}, takeover, p);
}

/* The answer header for value, or "" when declined; "400" for a grammar error. */
static const char *answer(const char *value, bool takeover) {
  static char out[WSB_PMD_RESPONSE_MAX];
  struct wsb_pmd_params p;
  int rc = neg(value, takeover, &p);
  if (rc == WSB_EEXTENSIONS)
    return "400";
  ck_assert_int_ge(rc, 0);
  if (rc == 0)
    return "";
  ck_assert(p.on);
  size_t n = wsb_pmd_response(&p, out);
  ck_assert_uint_eq(n, strlen(out));
  ck_assert_uint_lt(n, WSB_PMD_RESPONSE_MAX);
  return out;
}

#define BOTH_NO "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

START_TEST(plain_offers) {
  /* Context takeover off (the default): both directions reset per message, whatever came. */
  ck_assert_str_eq(answer("permessage-deflate", false), BOTH_NO);
  /* Chromium's and Firefox's offer. */
  ck_assert_str_eq(answer("permessage-deflate; client_max_window_bits", false), BOTH_NO);
  /* python3-websockets' default offer. */
  ck_assert_str_eq(
      answer("permessage-deflate; server_max_window_bits=12; client_max_window_bits=12", false),
      BOTH_NO "; server_max_window_bits=12");
  /* With takeover on, only what the client asked for. */
  ck_assert_str_eq(answer("permessage-deflate", true), "permessage-deflate");
  ck_assert_str_eq(answer("permessage-deflate; client_no_context_takeover", true),
                   "permessage-deflate; client_no_context_takeover");
  ck_assert_str_eq(answer("permessage-deflate;server_no_context_takeover", true),
                   "permessage-deflate; server_no_context_takeover");
  ck_assert_str_eq(answer("permessage-deflate; server_no_context_takeover; "
                          "client_no_context_takeover; server_max_window_bits=9; "
                          "client_max_window_bits=8",
                          true),
                   BOTH_NO "; server_max_window_bits=9");
  struct wsb_pmd_params p;
  ck_assert_int_eq(neg("permessage-deflate; server_max_window_bits=10", true, &p), 1);
  ck_assert(p.on && !p.server_no_takeover && !p.client_no_takeover && p.server_bits == 10);
  ck_assert_int_eq(neg("permessage-deflate", false, &p), 1);
  ck_assert(p.on && p.server_no_takeover && p.client_no_takeover && p.server_bits == 15);
}
END_TEST

START_TEST(values_and_spacing) {
  /* Quoted values unescape to tokens (RFC 6455 9.1); spaces and tabs around every separator. */
  ck_assert_str_eq(answer("permessage-deflate; server_max_window_bits=\"11\"", false),
                   BOTH_NO "; server_max_window_bits=11");
  ck_assert_str_eq(answer("permessage-deflate; server_max_window_bits=\"1\\1\"", false),
                   BOTH_NO "; server_max_window_bits=11");
  ck_assert_str_eq(answer("\t permessage-deflate \t;\t client_max_window_bits \t=\t 15 \t", false),
                   BOTH_NO);
  /* Names compare without case, as HTTP tokens do. */
  ck_assert_str_eq(answer("PerMessage-Deflate; Server_Max_Window_Bits=13", false),
                   BOTH_NO "; server_max_window_bits=13");
  /* 15 is the default: nothing to say. */
  ck_assert_str_eq(answer("permessage-deflate; server_max_window_bits=15", false), BOTH_NO);
}
END_TEST

START_TEST(declined_offers) {
  /* Each of these breaks section 7.1: the offer is declined, the upgrade goes on without it. */
  static const char *const declined[] = {
      "permessage-deflate; server_no_context_takeover=1",
      "permessage-deflate; client_no_context_takeover=\"x\"",
      "permessage-deflate; server_max_window_bits",
      "permessage-deflate; server_max_window_bits=7",
      "permessage-deflate; server_max_window_bits=16",
      "permessage-deflate; server_max_window_bits=08",
      "permessage-deflate; server_max_window_bits=0x9",
      "permessage-deflate; server_max_window_bits=-9",
      "permessage-deflate; server_max_window_bits=\"123456789012345678901234567890\"",
      "permessage-deflate; client_max_window_bits=7",
      "permessage-deflate; client_max_window_bits=abc",
      "permessage-deflate; client_max_window_bits=1500",
      "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
      "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
      "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
      "permessage-deflate; unknown_param",
      "permessage-deflate; x=1",
      /* zlib's raw deflate cannot keep to a 256-byte window. */
      "permessage-deflate; server_max_window_bits=8",
      /* Other extensions are not wsbal's to accept. */
      "x-webkit-deflate-frame",
      "deflate-frame; no_context_takeover",
      "permessage-foo",
      "",
      " , ,, ",
  };
  for (size_t i = 0; i < sizeof(declined) / sizeof(declined[0]); i++)
    ck_assert_msg(strcmp(answer(declined[i], false), "") == 0, "declines '%s'", declined[i]);
  /* A declined offer leaves *out alone. */
  struct wsb_pmd_params p;
  ck_assert_int_eq(neg("permessage-deflate; bogus", false, &p), 0);
  ck_assert_uint_eq(p.server_bits, 0xA5);
}
END_TEST

START_TEST(several_offers) {
  /* The first acceptable one wins, the ones before it are declined. */
  ck_assert_str_eq(answer("permessage-deflate; server_max_window_bits=8, permessage-deflate; "
                          "server_max_window_bits=10, permessage-deflate",
                          false),
                   BOTH_NO "; server_max_window_bits=10");
  ck_assert_str_eq(answer("foo; a=1, permessage-deflate; bogus, , permessage-deflate", true),
                   "permessage-deflate");
  ck_assert_str_eq(answer("permessage-deflate; server_max_window_bits=9, permessage-deflate", true),
                   "permessage-deflate; server_max_window_bits=9");
  ck_assert_str_eq(answer("permessage-deflate; x, permessage-deflate; y", true), "");
}
END_TEST

START_TEST(grammar_errors) {
  /* A header that is not RFC 6455 9.1's grammar is a bad request, wherever the error sits. */
  static const char *const bad[] = {
      ";",
      "permessage-deflate;",
      "permessage-deflate; ;",
      "permessage-deflate; =9",
      "permessage-deflate; server_max_window_bits=",
      "permessage-deflate; server_max_window_bits=\"\"",
      "permessage-deflate; server_max_window_bits=\"10",
      "permessage-deflate; server_max_window_bits=\"1 0\"",
      "permessage-deflate; server_max_window_bits=\"10\\",
      "permessage-deflate; server_max_window_bits=1 0",
      "permessage-deflate server_no_context_takeover",
      "permessage-deflate; a b",
      "permessage deflate",
      "\"permessage-deflate\"",
      "permessage-deflate, ;x",
      "permessage-deflate, permessage-deflate; =",
      "permessage-deflate; a=(b)",
      "permessage-deflate; a=\"b,c\"",
      "permessage-deflate\r\n",
      "permessage-deflate; a=b=c",
      "@",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    ck_assert_msg(strcmp(answer(bad[i], false), "400") == 0, "refuses '%s'", bad[i]);
  /* Even behind an accepted offer. */
  struct wsb_pmd_params p;
  ck_assert_int_eq(neg("permessage-deflate, x;", false, &p), WSB_EEXTENSIONS);
}
END_TEST

/* A request head with the given extension headers (NULL-terminated). */
static void head(struct wsb_http_head *h, char *buf, size_t cap, const char *const *values) {
  size_t n = (size_t)snprintf(buf, cap, "GET / HTTP/1.1\r\nHost: x\r\n");
  for (size_t i = 0; values[i] != NULL; i++)
    n += (size_t)snprintf(buf + n, cap - n, "Sec-WebSocket-Extensions: %s\r\n", values[i]);
  n += (size_t)snprintf(buf + n, cap - n, "\r\n");
  wsb_http_head_init(h, false, cap);
  ck_assert_int_eq(wsb_http_feed(h, buf, n), (ssize_t)n);
}

START_TEST(several_headers) {
  static struct wsb_http_head h;
  char buf[1024];
  struct wsb_pmd_params p = {.on = false};
  /* No header at all: nothing negotiated, nothing written. */
  head(&h, buf, sizeof(buf), (const char *const[]){NULL});
  ck_assert_int_eq(wsb_pmd_negotiate(&h, false, &p), 0);
  ck_assert(!p.on);
  /* The offers of several headers are one list, in order. */
  head(&h, buf, sizeof(buf),
       (const char *const[]){"foo", "permessage-deflate; server_max_window_bits=11",
                             "permessage-deflate", NULL});
  ck_assert_int_eq(wsb_pmd_negotiate(&h, false, &p), 1);
  ck_assert(p.on && p.server_bits == 11);
  /* A grammar error in a later header still makes the request bad. */
  head(&h, buf, sizeof(buf), (const char *const[]){"permessage-deflate", "a;;", NULL});
  ck_assert_int_eq(wsb_pmd_negotiate(&h, false, &p), WSB_EEXTENSIONS);
  head(&h, buf, sizeof(buf), (const char *const[]){"permessage-deflate; nope", "", NULL});
  ck_assert_int_eq(wsb_pmd_negotiate(&h, false, &p), 0);
}
END_TEST

START_TEST(every_prefix) {
  /* No prefix of a valid header reads past its end or crashes; each gets some verdict. */
  const char *full = "foo; a=\"b\\c\", permessage-deflate; server_max_window_bits=\"10\"; "
                     "client_max_window_bits, permessage-deflate";
  size_t len = strlen(full);
  for (size_t n = 0; n <= len; n++) {
    char *copy = malloc(n ? n : 1);
    memcpy(copy, full, n);
    struct wsb_pmd_params p;
    int rc = wsb_pmd_negotiate_value((struct wsb_slice){copy, n}, false, &p);
    ck_assert(rc == 0 || rc == 1 || rc == WSB_EEXTENSIONS);
    free(copy);
  }
  ck_assert_str_eq(answer(full, false), BOTH_NO "; server_max_window_bits=10");
}
END_TEST

int main(void) {
  Suite *s = suite_create("pmd");
  TCase *tc = tcase_create("negotiate");
  tcase_add_test(tc, plain_offers);
  tcase_add_test(tc, values_and_spacing);
  tcase_add_test(tc, declined_offers);
  tcase_add_test(tc, several_offers);
  tcase_add_test(tc, grammar_errors);
  tcase_add_test(tc, several_headers);
  tcase_add_test(tc, every_prefix);
  suite_add_tcase(s, tc);
  return wsb_run_suite(s);
}
