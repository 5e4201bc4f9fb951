/* Unit tests for common/utf8.c: classic cases, early rejection, incremental feeding, exhaustive. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "utf8.h"
#include "run_suite.h"

/*
 * One case: the bytes, whether they are complete valid UTF-8, and for invalid
 * ones the index of the byte at which no continuation could make them valid
 * (-1 when every prefix stays viable, i.e. the input is only truncated).
 */
struct utf8_case {
  const char *name;
  const char *bytes;
  size_t len;
  bool valid;
  int reject_at;
};

#define CASE(name, lit, valid, reject_at) \
  { name, lit, sizeof(lit) - 1, valid, reject_at }

static const struct utf8_case cases[] = {
    CASE("empty", "", true, -1),
    CASE("ascii", "Hello, world", true, -1),
    CASE("nul and del", "\x00\x7f", true, -1),
    CASE("U+0080 first 2-byte", "\xc2\x80", true, -1),
    CASE("U+07FF last 2-byte", "\xdf\xbf", true, -1),
    CASE("U+0800 first 3-byte", "\xe0\xa0\x80", true, -1),
    CASE("U+D7FF before surrogates", "\xed\x9f\xbf", true, -1),
    CASE("U+E000 after surrogates", "\xee\x80\x80", true, -1),
    CASE("U+FFFD replacement", "\xef\xbf\xbd", true, -1),
    CASE("U+FFFF last 3-byte", "\xef\xbf\xbf", true, -1),
    CASE("U+10000 first 4-byte", "\xf0\x90\x80\x80", true, -1),
    CASE("U+3FFFF via F0", "\xf0\xbf\xbf\xbf", true, -1),
    CASE("U+40000 via F1", "\xf1\x80\x80\x80", true, -1),
    CASE("U+FFFFF via F3", "\xf3\xbf\xbf\xbf", true, -1),
    CASE("U+10FFFF last", "\xf4\x8f\xbf\xbf", true, -1),
    CASE("greek kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", true, -1),
    CASE("mixed", "a\xc3\xa9z\xe2\x82\xac!\xf0\x9f\x98\x80.", true, -1),
    CASE("overlong C0 80", "\xc0\x80", false, 0),
    CASE("overlong C1 BF", "\xc1\xbf", false, 0),
    CASE("overlong E0 80 80", "\xe0\x80\x80", false, 1),
    CASE("overlong E0 9F BF", "\xe0\x9f\xbf", false, 1),
    CASE("overlong F0 80 80 80", "\xf0\x80\x80\x80", false, 1),
    CASE("overlong F0 8F BF BF", "\xf0\x8f\xbf\xbf", false, 1),
    CASE("surrogate D800", "\xed\xa0\x80", false, 1),
    CASE("surrogate DBFF", "\xed\xaf\xbf", false, 1),
    CASE("surrogate DC00", "\xed\xb0\x80", false, 1),
    CASE("surrogate DFFF", "\xed\xbf\xbf", false, 1),
    CASE("surrogate pair", "\xed\xa0\xbd\xed\xb8\x80", false, 1),
    CASE("U+110000", "\xf4\x90\x80\x80", false, 1),
    CASE("F4 BF", "\xf4\xbf\xbf\xbf", false, 1),
    CASE("F5 lead", "\xf5\x80\x80\x80", false, 0),
    CASE("F8 lead", "\xf8\x88\x80\x80\x80", false, 0),
    CASE("FE", "\xfe", false, 0),
    CASE("FF", "\xff", false, 0),
    CASE("lone continuation 80", "\x80", false, 0),
    CASE("lone continuation BF", "\xbf", false, 0),
    CASE("continuation after ascii", "ab\x80", false, 2),
    CASE("extra continuation", "\xc2\x80\x80", false, 2),
    CASE("2-byte lead then ascii", "\xc2\x41", false, 1),
    CASE("3-byte lead then ascii", "\xe2\x82\x41", false, 2),
    CASE("4-byte lead then lead", "\xf0\x9f\xf0\x9f\x98\x80", false, 2),
    CASE("truncated 2-byte", "\xc2", false, -1),
    CASE("truncated 3-byte", "\xe2\x82", false, -1),
    CASE("truncated 3-byte after E0", "\xe0\xa0", false, -1),
    CASE("truncated 4-byte", "\xf0\x9f\x98", false, -1),
    CASE("truncated after text", "text\xf4\x8f", false, -1),
    CASE("invalid in the middle", "hello\xc0\xafworld", false, 5),
};

#define N_CASES (sizeof(cases) / sizeof(cases[0]))

/* Feeds a heap copy of exactly len bytes, so ASan sees any read past the end. */
static int feed_copy(struct wsb_utf8 *v, const uint8_t *bytes, size_t len) {
  uint8_t *copy = malloc(len);
  ck_assert(copy != NULL || len == 0);
  if (len > 0)
    memcpy(copy, bytes, len);
  int r = wsb_utf8_feed(v, copy, len);
  free(copy);
  return r;
}

static bool valid_copy(const uint8_t *bytes, size_t len) {
  uint8_t *copy = malloc(len);
  if (len > 0)
    memcpy(copy, bytes, len);
  bool ok = wsb_utf8_valid(copy, len);
  free(copy);
  return ok;
}

/* Verdict of feeding bytes in pieces cut at the given points (ascending). */
static bool verdict_split(const uint8_t *bytes, size_t len, const size_t *cuts, size_t n_cuts) {
  struct wsb_utf8 v = {0};
  size_t start = 0;
  int r = 0;
  for (size_t i = 0; i <= n_cuts; i++) {
    size_t end = i < n_cuts ? cuts[i] : len;
    r = feed_copy(&v, bytes + start, end - start);
    start = end;
  }
  return r == 0 && wsb_utf8_complete(&v);
}

START_TEST(classic_cases) {
  for (size_t i = 0; i < N_CASES; i++) {
    const struct utf8_case *c = &cases[i];
    ck_assert_msg(valid_copy((const uint8_t *)c->bytes, c->len) == c->valid, "case %s", c->name);
    struct wsb_utf8 v = {0};
    int r = feed_copy(&v, (const uint8_t *)c->bytes, c->len);
    ck_assert_msg(r == (c->reject_at >= 0 ? WSB_EUTF8 : 0), "case %s: feed gave %d", c->name, r);
    ck_assert_msg(wsb_utf8_complete(&v) == c->valid, "case %s", c->name);
  }
}
END_TEST

/* A prefix is refused exactly when it includes the byte that rules out every continuation. */
START_TEST(rejects_as_soon_as_prefix_is_hopeless) {
  for (size_t i = 0; i < N_CASES; i++) {
    const struct utf8_case *c = &cases[i];
    for (size_t k = 0; k <= c->len; k++) {
      struct wsb_utf8 v = {0};
      int r = feed_copy(&v, (const uint8_t *)c->bytes, k);
      bool hopeless = c->reject_at >= 0 && k > (size_t)c->reject_at;
      ck_assert_msg(r == (hopeless ? WSB_EUTF8 : 0), "case %s prefix %zu: %d", c->name, k, r);
      ck_assert(!wsb_utf8_complete(&v) || !hopeless);
    }
  }
}
END_TEST

/* Padding with ASCII moves each case across the 8-byte fast path at every offset. */
static size_t padded(uint8_t *out, const struct utf8_case *c, size_t before, size_t after) {
  memset(out, 'a', before);
  memcpy(out + before, c->bytes, c->len);
  memset(out + before + c->len, 'z', after);
  return before + c->len + after;
}

START_TEST(split_anywhere_same_verdict) {
  uint8_t buf[64];
  for (size_t i = 0; i < N_CASES; i++) {
    const struct utf8_case *c = &cases[i];
    for (size_t before = 0; before <= 17; before++) {
      for (size_t after = 0; after <= 9; after += 3) {
        size_t len = padded(buf, c, before, after);
        bool expect = c->valid;
        ck_assert_msg(valid_copy(buf, len) == expect, "case %s before %zu after %zu", c->name,
                      before, after);
        for (size_t cut = 0; cut <= len; cut++)
          ck_assert_msg(verdict_split(buf, len, &cut, 1) == expect, "case %s cut %zu", c->name,
                        cut);
        /* Two cuts anywhere in and around the case itself: the padding adds nothing new. */
        size_t lo = before > 0 ? before - 1 : 0, hi = before + c->len + 1;
        for (size_t a = lo; a <= hi && a <= len; a++)
          for (size_t b = a; b <= hi && b <= len; b++) {
            size_t cuts[2] = {a, b};
            ck_assert_msg(verdict_split(buf, len, cuts, 2) == expect, "case %s cuts %zu %zu",
                          c->name, a, b);
          }
      }
    }
  }
}
END_TEST

START_TEST(byte_at_a_time) {
  for (size_t i = 0; i < N_CASES; i++) {
    const struct utf8_case *c = &cases[i];
    struct wsb_utf8 v = {0};
    int r = 0;
    for (size_t k = 0; k < c->len; k++) {
      r = feed_copy(&v, (const uint8_t *)c->bytes + k, 1);
      bool hopeless = c->reject_at >= 0 && k >= (size_t)c->reject_at;
      ck_assert_msg(r == (hopeless ? WSB_EUTF8 : 0), "case %s byte %zu", c->name, k);
    }
    ck_assert_msg((r == 0 && wsb_utf8_complete(&v)) == c->valid, "case %s", c->name);
  }
}
END_TEST

START_TEST(rejection_is_sticky) {
  struct wsb_utf8 v = {0};
  ck_assert_int_eq(feed_copy(&v, (const uint8_t *)"\xff", 1), WSB_EUTF8);
  ck_assert_int_eq(feed_copy(&v, (const uint8_t *)"abc", 3), WSB_EUTF8);
  ck_assert_int_eq(feed_copy(&v, (const uint8_t *)"", 0), WSB_EUTF8);
  ck_assert(!wsb_utf8_complete(&v));
}
END_TEST

START_TEST(long_ascii_and_text) {
  enum { N = 4096 + 13 };
  uint8_t *buf = malloc(N);
  for (size_t i = 0; i < N; i++)
    buf[i] = (uint8_t)(i % 127 + 1);
  ck_assert(valid_copy(buf, N));
  /* A bad byte anywhere in a long ASCII run is found, including inside fast-path words. */
  for (size_t at = 0; at < 80; at++) {
    uint8_t saved = buf[N - 1 - at];
    buf[N - 1 - at] = 0x80;
    ck_assert_msg(!valid_copy(buf, N), "bad byte %zu from the end", at);
    buf[N - 1 - at] = saved;
    buf[at] = 0xc3;
    ck_assert_msg(!valid_copy(buf, N), "lead without continuation at %zu", at);
    buf[at] = (uint8_t)(at % 127 + 1);
  }
  free(buf);
}
END_TEST

/* An independent decoder: build the code point, then check range, overlong and surrogates. */
static bool ref_valid(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t b = s[i++];
    size_t need;
    uint32_t cp, min;
    if (b < 0x80)
      continue;
    if (b >= 0xc0 && b < 0xe0) {
      need = 1, cp = b & 0x1f, min = 0x80;
    } else if (b >= 0xe0 && b < 0xf0) {
      need = 2, cp = b & 0x0f, min = 0x800;
    } else if (b >= 0xf0 && b < 0xf8) {
      need = 3, cp = b & 0x07, min = 0x10000;
    } else {
      return false;
    }
    for (size_t k = 0; k < need; k++, i++) {
      if (i >= n || (s[i] & 0xc0) != 0x80)
        return false;
      cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
  }
  return true;
}

START_TEST(exhaustive_up_to_three_bytes) {
  uint8_t s[3];
  for (unsigned a = 0; a < 256; a++) {
    s[0] = (uint8_t)a;
    ck_assert_msg(wsb_utf8_valid(s, 1) == ref_valid(s, 1), "%02x", a);
    for (unsigned b = 0; b < 256; b++) {
      s[1] = (uint8_t)b;
      ck_assert_msg(wsb_utf8_valid(s, 2) == ref_valid(s, 2), "%02x %02x", a, b);
      for (unsigned c = 0; c < 256; c++) {
        s[2] = (uint8_t)c;
        if (wsb_utf8_valid(s, 3) != ref_valid(s, 3))
          ck_abort_msg("%02x %02x %02x", a, b, c);
      }
    }
  }
}
END_TEST

START_TEST(exhaustive_four_byte_leads) {
  uint8_t s[4];
  for (unsigned a = 0xe0; a < 256; a++) {
    s[0] = (uint8_t)a;
    for (unsigned b = 0x7e; b < 0xc2; b++)
      for (unsigned c = 0x7e; c < 0xc2; c++)
        for (unsigned d = 0x7e; d < 0xc2; d++) {
          s[1] = (uint8_t)b, s[2] = (uint8_t)c, s[3] = (uint8_t)d;
          if (wsb_utf8_valid(s, 4) != ref_valid(s, 4))
            ck_abort_msg("%02x %02x %02x %02x", a, b, c, d);
        }
  }
}
END_TEST

/*
 * Early rejection against the reference: a prefix is refused exactly when no
 * completion of up to three continuation bytes makes it valid. One byte from
 * each continuation class (80, 90, A0) witnesses every completion.
 */
static bool ref_viable(const uint8_t *s, size_t n) {
  static const uint8_t cont[] = {0x80, 0x90, 0xa0};
  uint8_t buf[8];
  memcpy(buf, s, n);
  if (ref_valid(buf, n))
    return true;
  for (size_t k = 1; k <= 3; k++) {
    size_t combos = 1;
    for (size_t j = 0; j < k; j++)
      combos *= 3;
    for (size_t x = 0; x < combos; x++) {
      size_t y = x;
      for (size_t j = 0; j < k; j++, y /= 3)
        buf[n + j] = cont[y % 3];
      if (ref_valid(buf, n + k))
        return true;
    }
  }
  return false;
}

START_TEST(early_rejection_matches_reference) {
  static const uint8_t reps[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf,
                                 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee,
                                 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xf8, 0xff};
  enum { R = sizeof(reps) };
  uint8_t s[4];
  for (size_t a = 0; a < R; a++)
    for (size_t b = 0; b < R; b++)
      for (size_t c = 0; c < R; c++)
        for (size_t d = 0; d < R; d++) {
          s[0] = reps[a], s[1] = reps[b], s[2] = reps[c], s[3] = reps[d];
          struct wsb_utf8 v = {0};
          bool accepted = wsb_utf8_feed(&v, s, 4) == 0;
          if (accepted != ref_viable(s, 4))
            ck_abort_msg("%02x %02x %02x %02x", s[0], s[1], s[2], s[3]);
          if (wsb_utf8_complete(&v) != ref_valid(s, 4))
            ck_abort_msg("complete %02x %02x %02x %02x", s[0], s[1], s[2], s[3]);
        }
}
END_TEST

int main(void) {
  Suite *s = suite_create("utf8");
  TCase *tc = tcase_create("cases");
  tcase_add_test(tc, classic_cases);
  tcase_add_test(tc, rejects_as_soon_as_prefix_is_hopeless);
  tcase_add_test(tc, split_anywhere_same_verdict);
  tcase_add_test(tc, byte_at_a_time);
  tcase_add_test(tc, rejection_is_sticky);
  tcase_add_test(tc, long_ascii_and_text);
  suite_add_tcase(s, tc);
  TCase *ex = tcase_create("exhaustive");
  tcase_set_timeout(ex, 60);
  tcase_add_test(ex, exhaustive_up_to_three_bytes);
  tcase_add_test(ex, exhaustive_four_byte_leads);
  tcase_add_test(ex, early_rejection_matches_reference);
  suite_add_tcase(s, ex);

  return wsb_run_suite(s);
}
