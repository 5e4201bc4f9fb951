/* Unit tests of common/values.c: every parser on good values, bad values, boundaries and overflow.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "values.h"
#include "run_suite.h"

/* Each input sits at the very end of its own allocation, so ASan sees any read past the NUL. */
static char *exact(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  ck_assert_ptr_nonnull(p);
  memcpy(p, s, n);
  return p;
}

static int duration(const char *s, uint64_t *ms) {
  char *p = exact(s);
  int rc = wsb_parse_duration_ms(p, ms);
  free(p);
  return rc;
}

static int size(const char *s, uint64_t *bytes) {
  char *p = exact(s);
  int rc = wsb_parse_size(p, bytes);
  free(p);
  return rc;
}

static int boolean(const char *s, bool *v) {
  char *p = exact(s);
  int rc = wsb_parse_bool(p, v);
  free(p);
  return rc;
}

static int number(const char *s, uint64_t min, uint64_t max, uint64_t *v) {
  char *p = exact(s);
  int rc = wsb_parse_uint(p, min, max, v);
  free(p);
  return rc;
}

static int hostport(const char *s, struct wsb_hostport *hp) {
  char *p = exact(s);
  int rc = wsb_parse_hostport(p, hp);
  free(p);
  return rc;
}

static int url(const char *s, struct wsb_url *u) {
  char *p = exact(s);
  int rc = wsb_parse_url(p, u);
  free(p);
  return rc;
}

static bool loopback(const char *s) {
  char *p = exact(s);
  bool r = wsb_host_is_loopback(p);
  free(p);
  return r;
}

/* Durations. */

START_TEST(duration_good) {
  static const struct {
    const char *in;
    uint64_t ms;
  } cases[] = {
      {"0", 0},
      {"1", 1000},
      {"30", 30000},
      {"250ms", 250},
      {"0ms", 0},
      {"10s", 10000},
      {"5m", 300000},
      {"1h", 3600000},
      {"2H", 7200000},
      {"15MS", 15},
      {"010s", 10000},
      {"18446744073709551615ms", UINT64_MAX},
      {"18446744073709551s", 18446744073709551000ull},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    uint64_t ms = 12345;
    ck_assert_msg(duration(cases[i].in, &ms) == 0, "%s", cases[i].in);
    ck_assert_msg(ms == cases[i].ms, "%s gave %llu", cases[i].in, (unsigned long long)ms);
  }
}
END_TEST

START_TEST(duration_bad) {
  static const char *const bad[] = {"",
                                    "5 s",
                                    " 5s",
                                    "5s ",
                                    "1.5s",
                                    "10x",
                                    "-1",
                                    "+1",
                                    "ms",
                                    "s",
                                    "5sec",
                                    "5mss",
                                    "0x10",
                                    "1d",
                                    "5 ",
                                    "1e3",
                                    "5S5",
                                    "1,5s",
                                    "99999999999999999999x"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    uint64_t ms = 777;
    ck_assert_msg(duration(bad[i], &ms) == WSB_EVALUE, "%s", bad[i]);
    ck_assert_uint_eq(ms, 777);
  }
}
END_TEST

START_TEST(duration_overflow) {
  static const char *const big[] = {
      "18446744073709551616ms", /* UINT64_MAX + 1 */
      "18446744073709552s",     /* times 1000 overflows */
      "18446744073709552",      /* bare seconds: the same */
      "307445734561826m",       /* times 60000 overflows */
      "5124095576031h",         /* times 3600000 overflows */
      "99999999999999999999999999h",
  };
  for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
    uint64_t ms = 777;
    ck_assert_msg(duration(big[i], &ms) == WSB_ERANGE_VALUE, "%s", big[i]);
    ck_assert_uint_eq(ms, 777);
  }
  uint64_t ms;
  ck_assert_int_eq(duration("307445734561825m", &ms), 0);
  ck_assert_uint_eq(ms, 307445734561825ull * 60000);
  ck_assert_int_eq(duration("5124095576030h", &ms), 0);
  ck_assert_uint_eq(ms, 5124095576030ull * 3600000);
}
END_TEST

/* Sizes. */

START_TEST(size_good) {
  static const struct {
    const char *in;
    uint64_t bytes;
  } cases[] = {
      {"0", 0},
      {"512", 512},
      {"16k", 16384},
      {"16K", 16384},
      {"1m", 1048576},
      {"1M", 1048576},
      {"2g", 2147483648ull},
      {"2G", 2147483648ull},
      {"18446744073709551615", UINT64_MAX},
      {"17179869183g", 17179869183ull << 30},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    uint64_t b = 1;
    ck_assert_msg(size(cases[i].in, &b) == 0, "%s", cases[i].in);
    ck_assert_msg(b == cases[i].bytes, "%s gave %llu", cases[i].in, (unsigned long long)b);
  }
}
END_TEST

START_TEST(size_bad) {
  static const char *const bad[] = {"",   "k",    "16q", "16 k", "1.5m", "-1",
                                    "+1", "16kb", "1t",  " 1",   "1 ",   "16kk"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    uint64_t b = 9;
    ck_assert_msg(size(bad[i], &b) == WSB_EVALUE, "%s", bad[i]);
    ck_assert_uint_eq(b, 9);
  }
  static const char *const big[] = {"18446744073709551616", "17179869184g", "18014398509481984k",
                                    "17592186044416m"};
  for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
    uint64_t b = 9;
    ck_assert_msg(size(big[i], &b) == WSB_ERANGE_VALUE, "%s", big[i]);
    ck_assert_uint_eq(b, 9);
  }
}
END_TEST

/* Booleans. */

START_TEST(bool_values) {
  static const char *const yes[] = {"on", "yes", "true", "1", "ON", "Yes", "TRUE"};
  static const char *const no[] = {"off", "no", "false", "0", "OFF", "No", "False"};
  static const char *const bad[] = {"",  "y",     "n",   "2",   "onn",
                                    "o", "truee", " on", "on ", "enabled"};
  for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
    bool v = false;
    ck_assert_msg(boolean(yes[i], &v) == 0 && v, "%s", yes[i]);
  }
  for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
    bool v = true;
    ck_assert_msg(boolean(no[i], &v) == 0 && !v, "%s", no[i]);
  }
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    bool v = true;
    ck_assert_msg(boolean(bad[i], &v) == WSB_EVALUE && v, "%s", bad[i]);
  }
}
END_TEST

/* Bounded integers. */

START_TEST(uint_values) {
  uint64_t v = 0;
  ck_assert_int_eq(number("1", 1, 1000, &v), 0);
  ck_assert_uint_eq(v, 1);
  ck_assert_int_eq(number("1000", 1, 1000, &v), 0);
  ck_assert_uint_eq(v, 1000);
  ck_assert_int_eq(number("0042", 0, 100, &v), 0);
  ck_assert_uint_eq(v, 42);
  ck_assert_int_eq(number("18446744073709551615", 0, UINT64_MAX, &v), 0);
  ck_assert_uint_eq(v, UINT64_MAX);
  v = 5;
  ck_assert_int_eq(number("0", 1, 1000, &v), WSB_ERANGE_VALUE);
  ck_assert_int_eq(number("1001", 1, 1000, &v), WSB_ERANGE_VALUE);
  ck_assert_int_eq(number("18446744073709551616", 0, UINT64_MAX, &v), WSB_ERANGE_VALUE);
  ck_assert_int_eq(number("", 0, 10, &v), WSB_EVALUE);
  ck_assert_int_eq(number("-1", 0, 10, &v), WSB_EVALUE);
  ck_assert_int_eq(number("+1", 0, 10, &v), WSB_EVALUE);
  ck_assert_int_eq(number("1 ", 0, 10, &v), WSB_EVALUE);
  ck_assert_int_eq(number(" 1", 0, 10, &v), WSB_EVALUE);
  ck_assert_int_eq(number("1k", 0, 10000, &v), WSB_EVALUE);
  ck_assert_int_eq(number("0x1", 0, 10, &v), WSB_EVALUE);
  ck_assert_uint_eq(v, 5);
}
END_TEST

/* HOST:PORT. */

START_TEST(hostport_good) {
  static const struct {
    const char *in, *host;
    unsigned port;
  } cases[] = {
      {"0.0.0.0:8080", "0.0.0.0", 8080},
      {"127.0.0.1:1", "127.0.0.1", 1},
      {"[::]:8080", "::", 8080},
      {"[::1]:9000", "::1", 9000},
      {"[2001:db8::42]:65535", "2001:db8::42", 65535},
      {"[::ffff:10.0.0.1]:80", "::ffff:10.0.0.1", 80},
      {"localhost:80", "localhost", 80},
      {"backend-1.example.com:443", "backend-1.example.com", 443},
      {"my_service:9001", "my_service", 9001},
      {"example.com.:80", "example.com.", 80},
      {"h:0000000000000000000080", "h", 80},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct wsb_hostport hp;
    memset(&hp, 'x', sizeof(hp));
    ck_assert_msg(hostport(cases[i].in, &hp) == 0, "%s", cases[i].in);
    ck_assert_str_eq(hp.host, cases[i].host);
    ck_assert_uint_eq(hp.port, cases[i].port);
  }
}
END_TEST

START_TEST(hostport_bad) {
  static const struct {
    const char *in;
    int rc;
  } cases[] = {
      {"", WSB_EVALUE},
      {"127.0.0.1", WSB_EVALUE},
      {"127.0.0.1:", WSB_EVALUE},
      {":8080", WSB_EVALUE},
      {"::1:8080", WSB_EVALUE},
      {"::8080", WSB_EVALUE},
      {"2001:db8::1:80", WSB_EVALUE},
      {"[::1]", WSB_EVALUE},
      {"[::1]:", WSB_EVALUE},
      {"[::1]8080", WSB_EVALUE},
      {"[::1:8080", WSB_EVALUE},
      {"[]:80", WSB_EVALUE},
      {"[127.0.0.1]:80", WSB_EVALUE},
      {"[fe80::1%eth0]:80", WSB_EVALUE},
      {"host:80:90", WSB_EVALUE},
      {"host:http", WSB_EVALUE},
      {"host:-1", WSB_EVALUE},
      {"host:+80", WSB_EVALUE},
      {"ho st:80", WSB_EVALUE},
      {"host!:80", WSB_EVALUE},
      {"a..b:80", WSB_EVALUE},
      {".a:80", WSB_EVALUE},
      {"999.1.1.1:80", WSB_EVALUE},
      {"1.2.3:80", WSB_EVALUE},
      {"user@host:80", WSB_EVALUE},
      {"*:80", WSB_EVALUE},
      {"host:0", WSB_ERANGE_VALUE},
      {"host:65536", WSB_ERANGE_VALUE},
      {"host:99999", WSB_ERANGE_VALUE},
      {"host:1234567", WSB_ERANGE_VALUE},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct wsb_hostport hp = {.host = "keep", .port = 7};
    ck_assert_msg(hostport(cases[i].in, &hp) == cases[i].rc, "%s", cases[i].in);
    ck_assert_str_eq(hp.host, "keep");
    ck_assert_uint_eq(hp.port, 7);
  }
}
END_TEST

START_TEST(hostport_long_host) {
  char s[WSB_HOST_MAX + 16];
  memset(s, 'a', WSB_HOST_MAX - 1);
  strcpy(s + WSB_HOST_MAX - 1, ":80");
  struct wsb_hostport hp;
  ck_assert_int_eq(hostport(s, &hp), 0);
  ck_assert_uint_eq(strlen(hp.host), WSB_HOST_MAX - 1);
  memset(s, 'a', WSB_HOST_MAX);
  strcpy(s + WSB_HOST_MAX, ":80");
  ck_assert_int_eq(hostport(s, &hp), WSB_EVALUE);
}
END_TEST

START_TEST(loopback_hosts) {
  static const char *const yes[] = {
      "127.0.0.1", "127.0.0.0", "127.255.255.255",  "127.1.2.3",      "::1",
      "localhost", "LocalHost", "::ffff:127.0.0.1", "0:0:0:0:0:0:0:1"};
  static const char *const no[] = {"0.0.0.0",
                                   "::",
                                   "128.0.0.1",
                                   "126.255.255.255",
                                   "10.0.0.1",
                                   "example.com",
                                   "localhost.example",
                                   "127.0.0.1.nip.io",
                                   "::2",
                                   "",
                                   "::ffff:10.0.0.1",
                                   "127"};
  for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
    ck_assert_msg(loopback(yes[i]), "%s", yes[i]);
  for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
    ck_assert_msg(!loopback(no[i]), "%s", no[i]);
}
END_TEST

/* URLs. */

START_TEST(url_good) {
  static const struct {
    const char *in;
    bool tls;
    const char *host;
    unsigned port;
    const char *path;
  } cases[] = {
      {"ws://127.0.0.1:9001", false, "127.0.0.1", 9001, ""},
      {"ws://example.com", false, "example.com", 80, ""},
      {"wss://example.com", true, "example.com", 443, ""},
      {"WS://Example.com", false, "Example.com", 80, ""},
      {"WsS://h:8443", true, "h", 8443, ""},
      {"ws://h/", false, "h", 80, ""},
      {"ws://h:1/", false, "h", 1, ""},
      {"ws://h/a", false, "h", 80, "/a"},
      {"ws://h/a/", false, "h", 80, "/a"},
      {"ws://h/a/b//", false, "h", 80, "/a/b"},
      {"ws://h///", false, "h", 80, ""},
      {"ws://[::1]:9000/chat", false, "::1", 9000, "/chat"},
      {"wss://[2001:db8::1]", true, "2001:db8::1", 443, ""},
      {"ws://h:65535/a%20b", false, "h", 65535, "/a%20b"},
      {"ws://h/a:b@c;d=e,f~g", false, "h", 80, "/a:b@c;d=e,f~g"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct wsb_url u;
    memset(&u, 'x', sizeof(u));
    ck_assert_msg(url(cases[i].in, &u) == 0, "%s", cases[i].in);
    ck_assert_msg(u.tls == cases[i].tls, "%s", cases[i].in);
    ck_assert_str_eq(u.host, cases[i].host);
    ck_assert_uint_eq(u.port, cases[i].port);
    ck_assert_str_eq(u.path, cases[i].path);
  }
}
END_TEST

START_TEST(url_bad) {
  static const struct {
    const char *in;
    int rc;
  } cases[] = {
      {"", WSB_EVALUE},
      {"http://h", WSB_EVALUE},
      {"https://h", WSB_EVALUE},
      {"wsx://h", WSB_EVALUE},
      {"ws:/h", WSB_EVALUE},
      {"ws//h", WSB_EVALUE},
      {"h:80", WSB_EVALUE},
      {"ws://", WSB_EVALUE},
      {"ws:///a", WSB_EVALUE},
      {"ws://:80", WSB_EVALUE},
      {"ws://h:", WSB_EVALUE},
      {"ws://h:/a", WSB_EVALUE},
      {"ws://h:x", WSB_EVALUE},
      {"ws://h:80x", WSB_EVALUE},
      {"ws://h:0", WSB_ERANGE_VALUE},
      {"ws://h:65536", WSB_ERANGE_VALUE},
      {"ws://user@h", WSB_EVALUE},
      {"ws://user:pw@h:80/a", WSB_EVALUE},
      {"ws://h?x=1", WSB_EVALUE},
      {"ws://h/a?x=1", WSB_EVALUE},
      {"ws://h#f", WSB_EVALUE},
      {"ws://h/a#f", WSB_EVALUE},
      {"ws://::1/a", WSB_EVALUE},
      {"ws://[::1/a", WSB_EVALUE},
      {"ws://[::1]x/a", WSB_EVALUE},
      {"ws://[::1]:/a", WSB_EVALUE},
      {"ws://h /a", WSB_EVALUE},
      {"ws://h/a b", WSB_EVALUE},
      {"ws://h/a%2", WSB_EVALUE},
      {"ws://h/a%zz", WSB_EVALUE},
      {"ws://h/a\"b", WSB_EVALUE},
      {" ws://h", WSB_EVALUE},
      {"ws://h ", WSB_EVALUE},
      {"ws://999.0.0.1", WSB_EVALUE},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct wsb_url u = {.tls = true, .host = "keep", .port = 7, .path = "/keep"};
    ck_assert_msg(url(cases[i].in, &u) == cases[i].rc, "%s", cases[i].in);
    ck_assert_str_eq(u.host, "keep");
    ck_assert_uint_eq(u.port, 7);
    ck_assert_str_eq(u.path, "/keep");
  }
}
END_TEST

/* Every byte: exactly 0-9, a-f and A-F have a value, and it is theirs. */
START_TEST(hex_digit_every_byte) {
  const char *digits = "0123456789abcdef";
  for (int c = -1; c < 256; c++) {
    const char *lower = c > 0 ? strchr(digits, c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c) : NULL;
    int want = lower != NULL ? (int)(lower - digits) : -1;
    ck_assert_int_eq(wsb_hex_digit(c), want);
  }
}
END_TEST

/* Decodes s (its whole length) into a heap buffer of exactly cap bytes, so ASan sees overruns. */
static ssize_t decode(const char *s, bool plus, size_t cap, char *got) {
  char *out = malloc(cap ? cap : 1);
  if (cap > 0)
    memset(out, '#', cap);
  ssize_t r = wsb_percent_decode(s, strlen(s), plus, cap ? out : NULL, cap);
  if (cap > 0)
    strcpy(got, out);
  free(out);
  return r;
}

START_TEST(percent_decode) {
  char got[64];
  ck_assert_int_eq(decode("a%20b%2Fc%c3%A9", false, 64, got), 7);
  ck_assert_str_eq(got, "a b/c\xc3\xa9");
  ck_assert_int_eq(decode("a+b%2B", true, 64, got), 4);
  ck_assert_str_eq(got, "a b+");
  ck_assert_int_eq(decode("a+b", false, 64, got), 3);
  ck_assert_str_eq(got, "a+b");
  ck_assert_int_eq(decode("", false, 1, got), 0);
  ck_assert_str_eq(got, "");
  ck_assert_int_eq(decode("", false, 0, got), -E2BIG);
  /* Exact fit needs a byte for the NUL; one less is too small, and leaves "". */
  ck_assert_int_eq(decode("ab%41", false, 4, got), 3);
  ck_assert_str_eq(got, "abA");
  ck_assert_int_eq(decode("ab%41", false, 3, got), -E2BIG);
  ck_assert_str_eq(got, "");
  /* Broken escapes, at the end too, and %00: refused, output "". */
  static const char *const bad[] = {"%", "a%", "a%4", "%4g", "%g4", "x%00y", "%%41", "% 41"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    ck_assert_msg(decode(bad[i], true, 64, got) == -EINVAL, "%s", bad[i]);
    ck_assert_str_eq(got, "");
  }
  /* A truncated escape at the end of len is not completed from the bytes after it. */
  char out[8];
  ck_assert_int_eq(wsb_percent_decode("ab%41", 4, false, out, sizeof(out)), -EINVAL);
  /* In place, as a path decoded where it lies. */
  char s[] = "%2Fa%2fb+";
  ck_assert_int_eq(wsb_percent_decode(s, strlen(s), false, s, sizeof(s)), 5);
  ck_assert_str_eq(s, "/a/b+");
}
END_TEST

START_TEST(url_long_path) {
  char s[WSB_PATH_MAX + 32];
  strcpy(s, "ws://h");
  size_t base = strlen(s);
  memset(s + base, 'a', WSB_PATH_MAX - 1);
  s[base] = '/';
  s[base + WSB_PATH_MAX - 1] = '\0';
  struct wsb_url u;
  ck_assert_int_eq(url(s, &u), 0);
  ck_assert_uint_eq(strlen(u.path), WSB_PATH_MAX - 1);
  /* Trailing slashes do not count against the limit: they are dropped. */
  strcat(s, "///");
  ck_assert_int_eq(url(s, &u), 0);
  s[base + WSB_PATH_MAX - 1] = 'a';
  s[base + WSB_PATH_MAX] = '\0';
  ck_assert_int_eq(url(s, &u), WSB_EVALUE);
}
END_TEST

static Suite *values_suite(void) {
  Suite *s = suite_create("values");
  TCase *tc = tcase_create("parsers");
  tcase_add_test(tc, duration_good);
  tcase_add_test(tc, duration_bad);
  tcase_add_test(tc, duration_overflow);
  tcase_add_test(tc, size_good);
  tcase_add_test(tc, size_bad);
  tcase_add_test(tc, bool_values);
  tcase_add_test(tc, uint_values);
  tcase_add_test(tc, hostport_good);
  tcase_add_test(tc, hostport_bad);
  tcase_add_test(tc, hostport_long_host);
  tcase_add_test(tc, loopback_hosts);
  tcase_add_test(tc, url_good);
  tcase_add_test(tc, url_bad);
  tcase_add_test(tc, url_long_path);
  tcase_add_test(tc, hex_digit_every_byte);
  tcase_add_test(tc, percent_decode);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return wsb_run_suite(values_suite());
}
