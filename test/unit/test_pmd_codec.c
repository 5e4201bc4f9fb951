/* Unit tests for common/pmd_codec.c: RFC 7692's examples, pieces, contexts, the inflate bound. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "errors.h"
#include "pmd_codec.h"
#include "run_suite.h"

/* JSON-like text that compresses as real traffic does: repeated keys, varying values. */
static uint8_t *sample(size_t len, unsigned seed) {
  uint8_t *p = malloc(len ? len : 1);
  size_t n = 0;
  while (n < len) {
    char item[96];
    int k = snprintf(item, sizeof(item), "{\"id\":%u,\"user\":\"u%u\",\"temp\":%u.%u},", seed,
                     seed * 7 % 1000, seed % 40, seed % 10);
    seed = seed * 1103515245u + 12345u;
    for (int i = 0; i < k && n < len; i++)
      p[n++] = (uint8_t)item[i];
  }
  return p;
}

static void expect_bytes(const struct wsb_buf *b, const uint8_t *want, size_t len) {
  ck_assert_uint_eq(b->len, len);
  ck_assert(len == 0 || memcmp(wsb_buf_data(b), want, len) == 0);
}

START_TEST(rfc_examples) {
  /* RFC 7692 7.2.3.1: "Hello" in one compressed block, without the tail. */
  static const uint8_t hello[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
  /* 7.2.3.3: the same with BFINAL set; 7.2.3.4: two blocks, the first a stored one. */
  static const uint8_t final[] = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00};
  static const uint8_t stored[] = {0x00, 0x05, 0x00, 0xfa, 0xff, 0x48,
                                   0x65, 0x6c, 0x6c, 0x6f, 0x00};
  struct wsb_inflater d;
  ck_assert_int_eq(wsb_inflater_init(&d), 0);
  struct wsb_buf out = {0};
  ck_assert_int_eq(wsb_inflate(&d, hello, sizeof(hello), true, false, 0, &out), 0);
  expect_bytes(&out, (const uint8_t *)"Hello", 5);
  wsb_buf_free(&out);
  ck_assert_int_eq(wsb_inflate(&d, final, sizeof(final) - 1, true, true, 0, &out), 0);
  expect_bytes(&out, (const uint8_t *)"Hello", 5);
  wsb_buf_free(&out);
  ck_assert_int_eq(wsb_inflate(&d, stored, sizeof(stored), true, false, 0, &out), 0);
  expect_bytes(&out, (const uint8_t *)"Hello", 5);
  wsb_buf_free(&out);
  /* 7.2.3.2: with context takeover the second "Hello" refers back to the first. */
  static const uint8_t again[] = {0xf2, 0x00, 0x11, 0x00, 0x00};
  ck_assert_int_eq(wsb_inflate(&d, hello, sizeof(hello), true, true, 0, &out), 0);
  ck_assert_int_eq(wsb_inflate(&d, again, sizeof(again), true, true, 0, &out), 0);
  expect_bytes(&out, (const uint8_t *)"HelloHello", 10);
  wsb_buf_free(&out);
  /* Without it, the back reference points at nothing. */
  ck_assert_int_eq(wsb_inflate(&d, hello, sizeof(hello), true, false, 0, &out), 0);
  ck_assert_int_eq(wsb_inflate(&d, again, sizeof(again), true, false, 0, &out), WSB_EINFLATE);
  wsb_buf_free(&out);
  wsb_inflater_reset(&d);
  /* The same after a final block: the window is handed over by hand. */
  ck_assert_int_eq(wsb_inflate(&d, final, sizeof(final) - 1, true, true, 0, &out), 0);
  ck_assert_int_eq(wsb_inflate(&d, again, sizeof(again), true, true, 0, &out), 0);
  expect_bytes(&out, (const uint8_t *)"HelloHello", 10);
  wsb_buf_free(&out);
  /* An empty message compresses to one 0x00 (7.2.3.6); none at all also reads as empty. */
  ck_assert_int_eq(wsb_inflate(&d, (const uint8_t *)"\0", 1, true, false, 0, &out), 0);
  ck_assert_int_eq(wsb_inflate(&d, NULL, 0, true, false, 0, &out), 0);
  ck_assert_uint_eq(out.len, 0);
  wsb_inflater_free(&d);
}
END_TEST

START_TEST(bad_data) {
  struct wsb_inflater d;
  ck_assert_int_eq(wsb_inflater_init(&d), 0);
  struct wsb_buf out = {0};
  /* Block type 3 does not exist. */
  ck_assert_int_eq(wsb_inflate(&d, (const uint8_t *)"\xff\xff", 2, true, false, 0, &out),
                   WSB_EINFLATE);
  wsb_inflater_reset(&d);
  /* Bytes after a final block. */
  static const uint8_t final_more[] = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x41};
  ck_assert_int_eq(wsb_inflate(&d, final_more, sizeof(final_more), true, false, 0, &out),
                   WSB_EINFLATE);
  wsb_inflater_reset(&d);
  /* A stored block whose length check fails. */
  static const uint8_t stored_bad[] = {0x00, 0x05, 0x00, 0xfb, 0xff, 'H', 'e', 'l', 'l', 'o'};
  ck_assert_int_eq(wsb_inflate(&d, stored_bad, sizeof(stored_bad), true, false, 0, &out),
                   WSB_EINFLATE);
  wsb_inflater_reset(&d);
  /* A message cut short stays an error at its end (the tail cannot complete it). */
  static const uint8_t cut[] = {0x00, 0x05, 0x00, 0xfa, 0xff, 'H', 'e'};
  ck_assert_int_eq(wsb_inflate(&d, cut, sizeof(cut), true, false, 0, &out), WSB_EINFLATE);
  wsb_inflater_reset(&d);
  /* After a reset the inflater works again. */
  wsb_buf_free(&out);
  static const uint8_t hello[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
  ck_assert_int_eq(wsb_inflate(&d, hello, sizeof(hello), true, false, 0, &out), 0);
  expect_bytes(&out, (const uint8_t *)"Hello", 5);
  wsb_buf_free(&out);
  wsb_inflater_free(&d);
}
END_TEST

/* Compresses msg in pieces of step bytes, then inflates the result in pieces of istep. */
static void round_trip(struct wsb_deflater *c, struct wsb_inflater *d, const uint8_t *msg,
                       size_t len, size_t step, size_t istep, bool keep) {
  struct wsb_buf z = {0}, out = {0};
  size_t at = 0;
  do {
    size_t n = len - at < step ? len - at : step;
    ck_assert_int_eq(wsb_deflate(c, msg + at, n, at + n == len, keep, &z), 0);
    at += n;
  } while (at < len);
  ck_assert(z.len < 4 || memcmp(wsb_buf_data(&z) + z.len - 4, "\0\0\xff\xff", 4) != 0);
  at = 0;
  do {
    size_t n = z.len - at < istep ? z.len - at : istep;
    ck_assert_int_eq(wsb_inflate(d, wsb_buf_data(&z) + at, n, at + n == z.len, keep, 0, &out), 0);
    at += n;
  } while (at < z.len);
  expect_bytes(&out, msg, len);
  wsb_buf_free(&z);
  wsb_buf_free(&out);
}

START_TEST(round_trips) {
  static const size_t sizes[] = {0, 1, 255, 1024, 70000, 1 << 20};
  struct wsb_deflater c;
  struct wsb_inflater d;
  for (int bits = 9; bits <= 15; bits += 3) {
    for (int keep = 0; keep <= 1; keep++) {
      ck_assert_int_eq(wsb_deflater_init(&c, 1 + bits % 9, bits), 0);
      ck_assert_int_eq(wsb_inflater_init(&d), 0);
      for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint8_t *msg = sample(sizes[i], (unsigned)i);
        round_trip(&c, &d, msg, sizes[i], sizes[i] + 1, sizes[i] + 8, keep);
        /* Pieces as fragments or streamed reads would give them, and one byte at a time. */
        round_trip(&c, &d, msg, sizes[i], 1000, 7, keep);
        if (sizes[i] <= 1024)
          round_trip(&c, &d, msg, sizes[i], 1, 1, keep);
        free(msg);
      }
      wsb_deflater_free(&c);
      wsb_inflater_free(&d);
    }
  }
  ck_assert_int_eq(wsb_deflater_init(&c, 0, 15), -EINVAL);
  ck_assert_int_eq(wsb_deflater_init(&c, 1, 8), -EINVAL);
}
END_TEST

START_TEST(context_takeover_helps) {
  /* The same 1 KiB twice: with the context the second costs a few bytes, without it all again. */
  uint8_t *msg = sample(1024, 5);
  size_t second[2];
  for (int keep = 0; keep <= 1; keep++) {
    struct wsb_deflater c;
    ck_assert_int_eq(wsb_deflater_init(&c, 1, 15), 0);
    struct wsb_buf z = {0};
    ck_assert_int_eq(wsb_deflate(&c, msg, 1024, true, keep, &z), 0);
    size_t first = z.len;
    ck_assert_int_eq(wsb_deflate(&c, msg, 1024, true, keep, &z), 0);
    second[keep] = z.len - first;
    ck_assert_uint_lt(first, 1024 / 2);
    wsb_buf_free(&z);
    wsb_deflater_free(&c);
  }
  ck_assert_uint_lt(second[1], 32);
  ck_assert_uint_gt(second[0], 64);
  free(msg);
}
END_TEST

/* Deflate data of n zero bytes, at level 9: about 1000 to 1. */
static struct wsb_buf bomb(size_t n) {
  z_stream z;
  memset(&z, 0, sizeof(z));
  ck_assert_int_eq(deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), Z_OK);
  uint8_t zeros[65536] = {0};
  struct wsb_buf out = {0};
  uint8_t chunk[65536];
  for (size_t done = 0; done < n;) {
    size_t k = n - done < sizeof(zeros) ? n - done : sizeof(zeros);
    done += k;
    z.next_in = zeros;
    z.avail_in = (uInt)k;
    do {
      z.next_out = chunk;
      z.avail_out = sizeof(chunk);
      deflate(&z, done == n ? Z_SYNC_FLUSH : Z_NO_FLUSH);
      wsb_buf_append(&out, chunk, sizeof(chunk) - z.avail_out);
    } while (z.avail_out == 0);
  }
  deflateEnd(&z);
  return out;
}

START_TEST(zip_bomb_is_bounded) {
  struct wsb_buf z = bomb((size_t)64 << 20); /* 64 MiB of zeros in ~64 KiB */
  ck_assert_uint_lt(z.len, 80 * 1024);
  struct wsb_inflater d;
  ck_assert_int_eq(wsb_inflater_init(&d), 0);
  static const uint64_t limits[] = {1, 1000, 16384, 1 << 20};
  for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
    struct wsb_buf out = {0};
    ck_assert_int_eq(wsb_inflate(&d, wsb_buf_data(&z), z.len, true, false, limits[i], &out),
                     WSB_ETOO_BIG);
    /* Never more than the limit was kept. */
    ck_assert_uint_le(out.len, limits[i]);
    wsb_buf_free(&out);
    wsb_inflater_reset(&d);
  }
  /* Over several pieces the limit counts for the whole message. */
  struct wsb_buf out = {0};
  int rc = 0;
  size_t at = 0;
  while (rc == 0 && at < z.len) {
    size_t n = z.len - at < 100 ? z.len - at : 100;
    rc = wsb_inflate(&d, wsb_buf_data(&z) + at, n, at + n == z.len, false, 50000, &out);
    at += n;
  }
  ck_assert_int_eq(rc, WSB_ETOO_BIG);
  ck_assert_uint_le(out.len, 50000);
  wsb_buf_free(&out);
  wsb_inflater_reset(&d);
  /* Exactly at the limit is fine; the count starts again with the next message. */
  uint8_t *msg = sample(3000, 1);
  struct wsb_deflater c;
  ck_assert_int_eq(wsb_deflater_init(&c, 6, 15), 0);
  struct wsb_buf mz = {0};
  ck_assert_int_eq(wsb_deflate(&c, msg, 3000, true, false, &mz), 0);
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(wsb_inflate(&d, wsb_buf_data(&mz), mz.len, true, false, 3000, &out), 0);
    expect_bytes(&out, msg, 3000);
    wsb_buf_free(&out);
  }
  ck_assert_int_eq(wsb_inflate(&d, wsb_buf_data(&mz), mz.len, true, false, 2999, &out),
                   WSB_ETOO_BIG);
  wsb_buf_free(&out);
  wsb_buf_free(&mz);
  wsb_deflater_free(&c);
  free(msg);
  wsb_inflater_free(&d);
  wsb_buf_free(&z);
}
END_TEST

int main(void) {
  Suite *s = suite_create("pmd_codec");
  TCase *tc = tcase_create("codec");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, rfc_examples);
  tcase_add_test(tc, bad_data);
  tcase_add_test(tc, round_trips);
  tcase_add_test(tc, context_takeover_helps);
  tcase_add_test(tc, zip_bomb_is_bounded);
  suite_add_tcase(s, tc);
  return wsb_run_suite(s);
}
