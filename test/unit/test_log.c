/* Unit tests for common/log.c: text and JSON lines, fields, hostile input, bounds, journal
 * prefixes.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json_read.h"
#include "log.h"
#include "run_suite.h"
#include "utf8.h"

/* Parses line (without its newline) as one JSON object; returns the token count. */
static int parse(const char *line, size_t len, struct wsb_json_doc *doc,
                 struct wsb_json_token *tokens, size_t ntokens) {
  ck_assert_msg(len > 0 && line[len - 1] == '\n', "a line ends with a newline");
  ck_assert_msg(memchr(line, '\n', len - 1) == NULL, "one line: no newline inside");
  int n = wsb_json_parse(doc, line, len - 1, tokens, ntokens, 0);
  ck_assert_msg(n > 0, "valid JSON (error at %zu): %.*s", doc->err_off, (int)len, line);
  return n;
}

static void get_string(struct wsb_json_doc *doc, const char *key, char *buf, size_t cap) {
  ck_assert_int_eq(wsb_json_get_string(doc, wsb_json_member(doc, 0, key), buf, cap, NULL), 0);
}

static void expect_string(struct wsb_json_doc *doc, const char *key, const char *want) {
  char s[WSB_LOG_VALUE_MAX + 16];
  get_string(doc, key, s, sizeof(s));
  ck_assert_str_eq(s, want);
}

START_TEST(test_text_line) {
  char line[WSB_LOG_LINE_MAX];
  unsetenv("JOURNAL_STREAM");
  wsb_log_setup(WSB_LOG_INFO, WSB_LOG_TEXT, "worker", 3);
  size_t n = wsb_log_format_line(line, sizeof(line), WSB_LOG_WARN, "hello", 5, NULL, 0);
  /* 2026-12-05T18:00:00.123Z worker 3 warn: hello */
  ck_assert_uint_eq(n, 24 + strlen(" worker 3 warn: hello\n"));
  ck_assert_int_eq(line[10], 'T');
  ck_assert_int_eq(line[23], 'Z');
  ck_assert(memcmp(line + 24, " worker 3 warn: hello\n", n - 24) == 0);
  wsb_log_setup(WSB_LOG_INFO, WSB_LOG_TEXT, "master", -1);
  n = wsb_log_format_line(line, sizeof(line), WSB_LOG_INFO, "x", 1, NULL, 0);
  ck_assert(memcmp(line + 24, " master info: x\n", n - 24) == 0);
  /* A buffer too small gives nothing rather than a cut line. */
  ck_assert_uint_eq(wsb_log_format_line(line, 20, WSB_LOG_INFO, "x", 1, NULL, 0), 0);
}
END_TEST

START_TEST(test_json_line) {
  char line[WSB_LOG_LINE_MAX], s[64];
  struct wsb_json_token tokens[32];
  struct wsb_json_doc doc;
  unsetenv("JOURNAL_STREAM");
  wsb_log_setup(WSB_LOG_INFO, WSB_LOG_JSON, "worker", 3);
  size_t n = wsb_log_format_line(line, sizeof(line), WSB_LOG_ERROR, "backend a: down", 15, NULL, 0);
  ck_assert_int_eq(line[0], '{');
  parse(line, n, &doc, tokens, 32);
  get_string(&doc, "ts", s, sizeof(s));
  ck_assert_uint_eq(strlen(s), 24);
  ck_assert_int_eq(s[23], 'Z');
  get_string(&doc, "level", s, sizeof(s));
  ck_assert_str_eq(s, "error");
  get_string(&doc, "role", s, sizeof(s));
  ck_assert_str_eq(s, "worker");
  get_string(&doc, "msg", s, sizeof(s));
  ck_assert_str_eq(s, "backend a: down");
  uint64_t w = 0;
  ck_assert_int_eq(wsb_json_get_uint(&doc, wsb_json_member(&doc, 0, "worker"), 0, 1024, &w), 0);
  ck_assert_uint_eq(w, 3);

  wsb_log_setup(WSB_LOG_INFO, WSB_LOG_JSON, "master", -1);
  n = wsb_log_format_line(line, sizeof(line), WSB_LOG_DEBUG, "m", 1, NULL, 0);
  parse(line, n, &doc, tokens, 32);
  get_string(&doc, "role", s, sizeof(s));
  ck_assert_str_eq(s, "master");
  get_string(&doc, "level", s, sizeof(s));
  ck_assert_str_eq(s, "debug");
  ck_assert_int_lt(wsb_json_member(&doc, 0, "worker"), 0);
}
END_TEST

START_TEST(test_json_hostile) {
  char line[WSB_LOG_LINE_MAX], s[128];
  struct wsb_json_token tokens[32];
  struct wsb_json_doc doc;
  unsetenv("JOURNAL_STREAM");
  wsb_log_setup(WSB_LOG_INFO, WSB_LOG_JSON, "master", -1);
  /* Quotes, a backslash, newlines, control bytes, a lone continuation byte, a cut sequence,
     an overlong encoding, a surrogate and a valid character. */
  static const char msg[] =
      "a \"q\" \\ b\nc\r\x01\x1f\x7f \x80 \xc3 \xc0\xaf \xed\xa0\x80 \xc3\xa9";
  size_t n = wsb_log_format_line(line, sizeof(line), WSB_LOG_INFO, msg, sizeof(msg) - 1, NULL, 0);
  ck_assert(wsb_utf8_valid((const uint8_t *)line, n));
  parse(line, n, &doc, tokens, 32);
  get_string(&doc, "msg", s, sizeof(s));
  ck_assert(strncmp(s, "a \"q\" \\ b\nc\r\x01\x1f\x7f \xef\xbf\xbd \xef\xbf\xbd ", 23) == 0);
  /* The writer replaces every byte >= 0x80 of a string that is not valid UTF-8 as a whole. */
  for (size_t i = 0; i < n; i++)
    ck_assert_uint_lt((unsigned char)line[i], 0x80);
  /* A valid one keeps its characters as they are. */
  n = wsb_log_format_line(line, sizeof(line), WSB_LOG_INFO, "caf\xc3\xa9 \xe2\x9c\x93", 9, NULL, 0);
  parse(line, n, &doc, tokens, 32);
  get_string(&doc, "msg", s, sizeof(s));
  ck_assert_str_eq(s, "caf\xc3\xa9 \xe2\x9c\x93");
  /* Even a NUL byte (no printf message has one, a %.*s could) stays inside the string. */
  n = wsb_log_format_line(line, sizeof(line), WSB_LOG_INFO, "a\0b", 3, NULL, 0);
  parse(line, n, &doc, tokens, 32);
}
END_TEST

/* Fields as JSON members: strings escaped, numbers, long values cut, bad or taken keys left out. */
START_TEST(test_json_fields) {
  char line[WSB_LOG_LINE_MAX], s[WSB_LOG_VALUE_MAX + 16];
  struct wsb_json_token tokens[64];
  struct wsb_json_doc doc;
  unsetenv("JOURNAL_STREAM");
  wsb_log_setup(WSB_LOG_INFO, WSB_LOG_JSON, "worker", 1);
  char longv[600];
  memset(longv, 'a', sizeof(longv));
  memcpy(longv + WSB_LOG_VALUE_MAX - 1, "\xc3\xa9", 2); /* the bound falls inside a character */
  const struct wsb_log_field f[] = {
      wsb_log_num("status", 403),
      wsb_log_num("neg", -7),
      wsb_log_str("path", "/a\"b\\c\nd\r\x01\x7f"),
      wsb_log_strn("ua", "x\xff\xc3y", 4),
      wsb_log_strn("long", longv, sizeof(longv)),
      wsb_log_str("empty", NULL),
      wsb_log_str("msg", "forged"),
      wsb_log_str("level", "error"),
      wsb_log_str("Bad-Key", "v"),
      wsb_log_str("", "v"),
  };
  size_t n = wsb_log_format_line(line, sizeof(line), WSB_LOG_INFO, "upgrade rejected", 16, f,
                                 sizeof(f) / sizeof(f[0]));
  ck_assert(wsb_utf8_valid((const uint8_t *)line, n));
  parse(line, n, &doc, tokens, 64);
  uint64_t v = 0;
  ck_assert_int_eq(wsb_json_get_uint(&doc, wsb_json_member(&doc, 0, "status"), 0, 1000, &v), 0);
  ck_assert_uint_eq(v, 403);
  ck_assert_ptr_nonnull(strstr(line, "\"neg\":-7"));
  expect_string(&doc, "path", "/a\"b\\c\nd\r\x01\x7f");
  expect_string(&doc, "ua", "x\xef\xbf\xbd\xef\xbf\xbdy");
  get_string(&doc, "long", s, sizeof(s));
  ck_assert_uint_eq(strlen(s), WSB_LOG_VALUE_MAX - 1 + 3);
  ck_assert_str_eq(s + WSB_LOG_VALUE_MAX - 1, "...");
  expect_string(&doc, "empty", "");
  /* The line's own keys keep their values; keys that are not [a-z0-9_]+ are left out. */
  expect_string(&doc, "msg", "upgrade rejected");
  expect_string(&doc, "level", "info");
  ck_assert_ptr_null(strstr(line, "forged"));
  ck_assert_ptr_null(strstr(line, "Bad-Key"));
  ck_assert_ptr_null(strstr(line, "\"\":"));

  /* At most WSB_LOG_FIELDS_MAX fields. */
  struct wsb_log_field many[WSB_LOG_FIELDS_MAX + 4];
  static const char *const names[] = {"f0",  "f1",  "f2",  "f3",  "f4",  "f5",  "f6",
                                      "f7",  "f8",  "f9",  "f10", "f11", "f12", "f13",
                                      "f14", "f15", "f16", "f17", "f18", "f19"};
  for (size_t i = 0; i < WSB_LOG_FIELDS_MAX + 4; i++)
    many[i] = wsb_log_num(names[i], (int64_t)i);
  n = wsb_log_format_line(line, sizeof(line), WSB_LOG_INFO, "m", 1, many, WSB_LOG_FIELDS_MAX + 4);
  parse(line, n, &doc, tokens, 64);
  ck_assert_int_ge(wsb_json_member(&doc, 0, "f15"), 0);
  ck_assert_int_lt(wsb_json_member(&doc, 0, "f16"), 0);
}
END_TEST

/* Text lines: key=value, quoted and escaped where a value could end the line or fake a pair. */
START_TEST(test_text_fields) {
  char line[WSB_LOG_LINE_MAX];
  unsetenv("JOURNAL_STREAM");
  wsb_log_setup(WSB_LOG_INFO, WSB_LOG_TEXT, "worker", 2);
  const struct wsb_log_field f[] = {
      wsb_log_num("status", 400),
      wsb_log_str("reason", "bad_request"),
      wsb_log_str("why", "origin not allowed"),
      wsb_log_str("path", "/x\ny=\"1\" \\ \x01\t"),
      wsb_log_strn("ua", "a\xff", 2),
      wsb_log_str("host", "h\xc3\xa9"),
      wsb_log_str("eq", "a=b"),
      wsb_log_str("empty", ""),
  };
  size_t n = wsb_log_format_line(line, sizeof(line), WSB_LOG_INFO, "rejected\nfake 1", 15, f,
                                 sizeof(f) / sizeof(f[0]));
  ck_assert_uint_gt(n, 24);
  static const char want[] =
      " worker 2 info: rejected\\nfake 1 status=400 reason=bad_request why=\"origin not allowed\" "
      "path=\"/x\\ny=\\\"1\\\" \\\\ \\x01\\t\" ua=\"a\\xff\" host=h\xc3\xa9 eq=\"a=b\" "
      "empty=\"\"\n";
  ck_assert_uint_eq(n - 24, strlen(want));
  ck_assert_msg(memcmp(line + 24, want, n - 24) == 0, "%.*s", (int)n, line);
  /* No byte below 0x20 but the final newline. */
  for (size_t i = 0; i + 1 < n; i++)
    ck_assert_uint_ge((unsigned char)line[i], 0x20);

  /* A cut value is quoted, ends with "...", and is cut where a character starts. */
  char longv[400];
  memset(longv, 'b', sizeof(longv));
  memcpy(longv + WSB_LOG_VALUE_MAX - 1, "\xc3\xa9", 2);
  struct wsb_log_field lf = wsb_log_strn("v", longv, sizeof(longv));
  n = wsb_log_format_line(line, sizeof(line), WSB_LOG_INFO, "m", 1, &lf, 1);
  line[n - 1] = '\0';
  const char *v = strstr(line, " v=\"");
  ck_assert_ptr_nonnull(v);
  ck_assert_uint_eq(strlen(v), 4 + WSB_LOG_VALUE_MAX - 1 + 4);
  ck_assert_str_eq(v + 4 + WSB_LOG_VALUE_MAX - 1, "...\"");
}
END_TEST

/* stderr goes to a temporary file while fn logs; returns what was written (malloc'd). */
static char *capture(void (*fn)(void), size_t *len) {
  FILE *f = tmpfile();
  ck_assert_ptr_nonnull(f);
  int saved = dup(STDERR_FILENO);
  ck_assert_int_ge(saved, 0);
  ck_assert_int_eq(dup2(fileno(f), STDERR_FILENO), STDERR_FILENO);
  fn();
  ck_assert_int_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);
  close(saved);
  long size = ftell(f);
  ck_assert_int_ge(size, 0);
  char *out = calloc(1, (size_t)size + 1);
  rewind(f);
  ck_assert_uint_eq(fread(out, 1, (size_t)size, f), (size_t)size);
  fclose(f);
  *len = (size_t)size;
  return out;
}

static char long_msg[5000];

static void log_long(void) {
  wsb_log_setup(WSB_LOG_INFO, WSB_LOG_JSON, "worker", 0);
  wsb_log_info("%s", long_msg);
}

static void log_long_text(void) {
  wsb_log_setup(WSB_LOG_INFO, WSB_LOG_TEXT, "worker", 0);
  wsb_log_info("%s", long_msg);
}

START_TEST(test_long_message) {
  unsetenv("JOURNAL_STREAM");
  /* "x" then "é" (2 bytes) repeated: the bound falls in the middle of a character. */
  long_msg[0] = 'x';
  for (size_t i = 1; i + 2 < sizeof(long_msg); i += 2)
    memcpy(long_msg + i, "\xc3\xa9", 2);
  size_t full = strlen(long_msg);
  ck_assert_uint_gt(full, WSB_LOG_MSG_MAX);
  ck_assert_uint_eq(WSB_LOG_MSG_MAX % 2, 0); /* so byte MSG_MAX is a continuation byte */

  size_t n;
  char *out = capture(log_long, &n);
  struct wsb_json_token tokens[32];
  struct wsb_json_doc doc;
  parse(out, n, &doc, tokens, 32);
  ck_assert(wsb_utf8_valid((const uint8_t *)out, n));
  static char s[WSB_LOG_MSG_MAX + 64];
  get_string(&doc, "msg", s, sizeof(s));
  /* Kept: 'x' and whole characters, up to 2047 bytes; then the marker says how many went. */
  char marker[64];
  snprintf(marker, sizeof(marker), " [truncated %zu bytes]", full - (WSB_LOG_MSG_MAX - 1));
  ck_assert_uint_eq(strlen(s), WSB_LOG_MSG_MAX - 1 + strlen(marker));
  ck_assert_str_eq(s + WSB_LOG_MSG_MAX - 1, marker);
  ck_assert(memcmp(s, long_msg, WSB_LOG_MSG_MAX - 1) == 0);
  free(out);

  out = capture(log_long_text, &n);
  ck_assert(wsb_utf8_valid((const uint8_t *)out, n));
  ck_assert_int_eq(out[n - 1], '\n');
  *strchr(marker, ']') = '\0';
  ck_assert_ptr_nonnull(strstr(out, marker));
  ck_assert_uint_lt(n, WSB_LOG_MSG_MAX + 100);
  free(out);
}
END_TEST

static void log_levels(void) {
  wsb_log_setup(WSB_LOG_DEBUG, WSB_LOG_TEXT, "master", -1);
  wsb_log_error("e");
  wsb_log_warn("w");
  wsb_log_info("i");
  wsb_log_debug("d");
  wsb_log_setup(WSB_LOG_WARN, WSB_LOG_JSON, "master", -1);
  wsb_log_warn("j");
  wsb_log_info("not shown");
}

/* Each of the four lines, and the JSON one, begins with its syslog priority. */
static void expect_prefixes(const char *out, bool prefixed) {
  static const char *const want[] = {"<3>", "<4>", "<6>", "<7>", "<4>{"};
  const char *p = out;
  for (size_t i = 0; i < 5; i++) {
    ck_assert_ptr_nonnull(p);
    if (prefixed)
      ck_assert_msg(strncmp(p, want[i], strlen(want[i])) == 0, "line %zu: %s", i, p);
    else
      ck_assert_msg(p[0] != '<', "line %zu: %s", i, p);
    p = strchr(p, '\n');
    ck_assert_ptr_nonnull(p);
    p++;
  }
  ck_assert_str_eq(p, "");
}

START_TEST(test_journal) {
  /* The test's own stderr file is "the journal": JOURNAL_STREAM names it after dup2, so it is
     read in the capture; a file descriptor's dev:ino does not depend on which fd it is. */
  FILE *f = tmpfile();
  struct stat st;
  ck_assert_int_eq(fstat(fileno(f), &st), 0);
  fclose(f);
  size_t n;
  char v[64];

  unsetenv("JOURNAL_STREAM");
  char *out = capture(log_levels, &n);
  expect_prefixes(out, false);
  free(out);

  /* A wrong inode (stderr was redirected away from the journal): no prefix. */
  snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
           (unsigned long long)st.st_ino + 1);
  setenv("JOURNAL_STREAM", v, 1);
  out = capture(log_levels, &n);
  expect_prefixes(out, false);
  free(out);
  setenv("JOURNAL_STREAM", "garbage", 1);
  out = capture(log_levels, &n);
  expect_prefixes(out, false);
  free(out);
  unsetenv("JOURNAL_STREAM");
}
END_TEST

/* The right dev:ino must be that of the file capture() puts on stderr: set it from inside. */
static void log_levels_as_journal(void) {
  struct stat st;
  ck_assert_int_eq(fstat(STDERR_FILENO, &st), 0);
  char v[64];
  snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
  setenv("JOURNAL_STREAM", v, 1);
  log_levels();
}

START_TEST(test_journal_match) {
  size_t n;
  char *out = capture(log_levels_as_journal, &n);
  expect_prefixes(out, true);
  free(out);
  unsetenv("JOURNAL_STREAM");
  /* Once stderr is elsewhere again, a new setup sees it. */
  wsb_log_setup(WSB_LOG_INFO, WSB_LOG_TEXT, "master", -1);
  char line[WSB_LOG_LINE_MAX];
  n = wsb_log_format_line(line, sizeof(line), WSB_LOG_INFO, "x", 1, NULL, 0);
  ck_assert_int_ne(line[0], '<');
}
END_TEST

static Suite *log_suite(void) {
  Suite *s = suite_create("log");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_text_line);
  tcase_add_test(tc, test_json_line);
  tcase_add_test(tc, test_json_hostile);
  tcase_add_test(tc, test_json_fields);
  tcase_add_test(tc, test_text_fields);
  tcase_add_test(tc, test_long_message);
  tcase_add_test(tc, test_journal);
  tcase_add_test(tc, test_journal_match);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return wsb_run_suite(log_suite());
}
