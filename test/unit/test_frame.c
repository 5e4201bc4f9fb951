/* Unit tests for common/frame.c: header parsing and writing, framing rules and the step that
 * joins them, masking, close. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "frame.h"
#include "run_suite.h"

#define MAX63 0x7fffffffffffffffull

/* Parses a heap copy of exactly len bytes, so ASan sees any read past the end. */
static ssize_t parse_copy(struct wsb_frame *f, const uint8_t *bytes, size_t len) {
  uint8_t *copy = malloc(len);
  ck_assert(copy != NULL || len == 0);
  if (len > 0)
    memcpy(copy, bytes, len);
  ssize_t r = wsb_frame_parse(f, copy, len);
  free(copy);
  return r;
}

/* Filled with a pattern so a test can see that a refused or partial parse left f alone. */
static void poison(struct wsb_frame *f) {
  memset(f, 0xa5, sizeof(*f));
}

static bool is_poisoned(const struct wsb_frame *f) {
  struct wsb_frame p;
  poison(&p);
  return memcmp(f, &p, sizeof(p)) == 0;
}

/*
 * Checks a complete, valid header: every shorter prefix is WSB_PARTIAL and
 * leaves f alone, the whole header (alone or followed by payload) parses to
 * the expected fields.
 */
static void expect_header(const uint8_t *bytes, size_t len, bool fin, uint8_t opcode,
                          uint64_t payload_len, const uint8_t *mask) {
  struct wsb_frame f;
  for (size_t k = 0; k < len; k++) {
    poison(&f);
    ck_assert_msg(parse_copy(&f, bytes, k) == WSB_PARTIAL, "prefix %zu of %zu", k, len);
    ck_assert(is_poisoned(&f));
  }
  uint8_t with_payload[WSB_FRAME_HEADER_MAX + 3];
  memcpy(with_payload, bytes, len);
  memset(with_payload + len, 0xff, 3);
  for (size_t extra = 0; extra <= 3; extra++) {
    poison(&f);
    ck_assert_int_eq(parse_copy(&f, with_payload, len + extra), (ssize_t)len);
    ck_assert_uint_eq(f.header_len, len);
    ck_assert_uint_eq(f.payload_len, payload_len);
    ck_assert_uint_eq(f.opcode, opcode);
    ck_assert(f.fin == fin);
    ck_assert(f.masked == (mask != NULL));
    if (mask != NULL)
      ck_assert_mem_eq(f.mask, mask, 4);
  }
}

/* Prefixes shorter than decided_at are WSB_PARTIAL; from decided_at on the answer is err. */
static void expect_error(const uint8_t *bytes, size_t len, size_t decided_at, int err) {
  struct wsb_frame f;
  for (size_t k = 0; k <= len; k++) {
    poison(&f);
    ssize_t r = parse_copy(&f, bytes, k);
    int want = k < decided_at ? WSB_PARTIAL : err;
    ck_assert_msg(r == want, "prefix %zu of %02x %02x...: got %zd (%s), want %d (%s)", k, bytes[0],
                  len > 1 ? bytes[1] : 0, r, wsb_err_name((int)r), want, wsb_err_name(want));
    ck_assert(is_poisoned(&f));
  }
}

#define EXPECT_HEADER(lit, fin, op, plen, mask) \
  expect_header((const uint8_t *)(lit), sizeof(lit) - 1, fin, op, plen, mask)
#define EXPECT_ERROR(lit, at, err) expect_error((const uint8_t *)(lit), sizeof(lit) - 1, at, err)

static const uint8_t KEY[4] = {0x37, 0xfa, 0x21, 0x3d};

START_TEST(parse_length_boundaries) {
  EXPECT_HEADER("\x81\x00", true, WSB_OP_TEXT, 0, NULL);
  EXPECT_HEADER("\x82\x01", true, WSB_OP_BINARY, 1, NULL);
  EXPECT_HEADER("\x02\x7d", false, WSB_OP_BINARY, 125, NULL);
  EXPECT_HEADER("\x82\x7e\x00\x7e", true, WSB_OP_BINARY, 126, NULL);
  EXPECT_HEADER("\x80\x7e\x00\x7f", true, WSB_OP_CONT, 127, NULL);
  EXPECT_HEADER("\x01\x7e\xff\xff", false, WSB_OP_TEXT, 65535, NULL);
  EXPECT_HEADER("\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", true, WSB_OP_BINARY, 65536, NULL);
  EXPECT_HEADER("\x82\x7f\x00\x00\x00\x01\x00\x00\x00\x00", true, WSB_OP_BINARY, 1ull << 32, NULL);
  EXPECT_HEADER("\x00\x7f\x7f\xff\xff\xff\xff\xff\xff\xff", false, WSB_OP_CONT, MAX63, NULL);

  EXPECT_HEADER("\x81\x80\x37\xfa\x21\x3d", true, WSB_OP_TEXT, 0, KEY);
  EXPECT_HEADER("\x81\xfd\x37\xfa\x21\x3d", true, WSB_OP_TEXT, 125, KEY);
  EXPECT_HEADER("\x82\xfe\x00\x7e\x37\xfa\x21\x3d", true, WSB_OP_BINARY, 126, KEY);
  EXPECT_HEADER("\x82\xfe\xff\xff\x37\xfa\x21\x3d", true, WSB_OP_BINARY, 65535, KEY);
  EXPECT_HEADER("\x02\xff\x00\x00\x00\x00\x00\x01\x00\x00\x37\xfa\x21\x3d", false, WSB_OP_BINARY,
                65536, KEY);
  EXPECT_HEADER("\x80\xff\x7f\xff\xff\xff\xff\xff\xff\xff\x37\xfa\x21\x3d", true, WSB_OP_CONT,
                MAX63, KEY);
}
END_TEST

START_TEST(parse_control_frames) {
  EXPECT_HEADER("\x89\x00", true, WSB_OP_PING, 0, NULL);
  EXPECT_HEADER("\x8a\x7d", true, WSB_OP_PONG, 125, NULL);
  EXPECT_HEADER("\x88\x02", true, WSB_OP_CLOSE, 2, NULL);
  EXPECT_HEADER("\x88\xfd\x37\xfa\x21\x3d", true, WSB_OP_CLOSE, 125, KEY);
  EXPECT_HEADER("\x89\x85\x00\x00\x00\x00", true, WSB_OP_PING, 5, (const uint8_t *)"\0\0\0\0");
}
END_TEST

START_TEST(parse_reserved_bits) {
  EXPECT_ERROR("\xc1\x00", 1, WSB_ERSV);
  EXPECT_ERROR("\xa1\x00", 1, WSB_ERSV);
  EXPECT_ERROR("\x91\x00", 1, WSB_ERSV);
  EXPECT_ERROR("\xf1\x00", 1, WSB_ERSV);
  EXPECT_ERROR("\x42\x80\x00\x00\x00\x00", 1, WSB_ERSV);
  EXPECT_ERROR("\x70\x7e\x00\x00", 1, WSB_ERSV);
  EXPECT_ERROR("\xc9\x00", 1, WSB_ERSV);
  /* Reserved bits are checked before the opcode and the control-frame rules. */
  EXPECT_ERROR("\xf3\x00", 1, WSB_ERSV);
  EXPECT_ERROR("\x59\x7e", 1, WSB_ERSV);
}
END_TEST

START_TEST(parse_unknown_opcodes) {
  static const uint8_t bad[] = {0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf};
  for (size_t i = 0; i < sizeof(bad); i++) {
    for (int fin = 0; fin <= 1; fin++) {
      uint8_t h[2] = {(uint8_t)(bad[i] | (fin ? 0x80 : 0)), 0x00};
      expect_error(h, 2, 1, WSB_EOPCODE);
      h[1] = 0xff; /* the opcode is decided before any length rule */
      expect_error(h, 2, 1, WSB_EOPCODE);
    }
  }
}
END_TEST

START_TEST(parse_fragmented_control) {
  EXPECT_ERROR("\x08\x00", 1, WSB_ECTRL_FRAG);
  EXPECT_ERROR("\x09\x80\x00\x00\x00\x00", 1, WSB_ECTRL_FRAG);
  EXPECT_ERROR("\x0a\x05", 1, WSB_ECTRL_FRAG);
  /* Fragmentation is reported before the length that follows it. */
  EXPECT_ERROR("\x09\x7e\x01\x00", 1, WSB_ECTRL_FRAG);
}
END_TEST

START_TEST(parse_control_too_long) {
  EXPECT_ERROR("\x89\x7e\x00\x7e", 2, WSB_ECTRL_LEN);
  EXPECT_ERROR("\x8a\xfe\x01\x00\x37\xfa\x21\x3d", 2, WSB_ECTRL_LEN);
  EXPECT_ERROR("\x88\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 2, WSB_ECTRL_LEN);
  /* A control frame's 16-bit form is refused even for a short (non-minimal) length. */
  EXPECT_ERROR("\x89\x7e\x00\x10", 2, WSB_ECTRL_LEN);
  EXPECT_ERROR("\x88\x7f\x80\x00\x00\x00\x00\x00\x00\x00", 2, WSB_ECTRL_LEN);
}
END_TEST

START_TEST(parse_non_minimal_length) {
  EXPECT_ERROR("\x82\x7e\x00\x00", 4, WSB_ELEN_ENCODING);
  EXPECT_ERROR("\x82\x7e\x00\x01", 4, WSB_ELEN_ENCODING);
  EXPECT_ERROR("\x81\xfe\x00\x7d\x37\xfa\x21\x3d", 4, WSB_ELEN_ENCODING);
  /* A 64-bit length below 65536 is known once the top six bytes are all zero. */
  EXPECT_ERROR("\x82\x7f\x00\x00\x00\x00\x00\x00\x00\x00", 8, WSB_ELEN_ENCODING);
  EXPECT_ERROR("\x82\x7f\x00\x00\x00\x00\x00\x00\x00\x7d", 8, WSB_ELEN_ENCODING);
  EXPECT_ERROR("\x82\x7f\x00\x00\x00\x00\x00\x00\x00\x7e", 8, WSB_ELEN_ENCODING);
  EXPECT_ERROR("\x02\xff\x00\x00\x00\x00\x00\x00\xff\xff\x37\xfa\x21\x3d", 8, WSB_ELEN_ENCODING);
}
END_TEST

START_TEST(parse_length_msb) {
  EXPECT_ERROR("\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x00", 3, WSB_ELEN_MSB);
  EXPECT_ERROR("\x82\xff\xff\xff\xff\xff\xff\xff\xff\xff\x37\xfa\x21\x3d", 3, WSB_ELEN_MSB);
  EXPECT_ERROR("\x00\x7f\x80\x00\x00\x00\x00\x00\x00\x01", 3, WSB_ELEN_MSB);
}
END_TEST

static const uint64_t round_trip_lengths[] = {
    0,     1,     124,      125, 126,        127,        255,       256,  65535,
    65536, 65537, 1u << 24, ~0u, 1ull << 32, 1ull << 48, MAX63 - 1, MAX63};

static size_t expected_header_len(uint64_t n, bool masked) {
  return (n < 126 ? 2 : n < 65536 ? 4 : 10) + (masked ? 4 : 0);
}

START_TEST(write_parse_round_trip) {
  static const uint8_t opcodes[] = {WSB_OP_CONT,  WSB_OP_TEXT, WSB_OP_BINARY,
                                    WSB_OP_CLOSE, WSB_OP_PING, WSB_OP_PONG};
  for (size_t o = 0; o < sizeof(opcodes); o++) {
    for (size_t l = 0; l < sizeof(round_trip_lengths) / sizeof(round_trip_lengths[0]); l++) {
      uint64_t n = round_trip_lengths[l];
      bool control = wsb_opcode_is_control(opcodes[o]);
      if (control && n > 125)
        continue;
      for (int fin = control ? 1 : 0; fin <= 1; fin++) {
        for (int m = 0; m <= 1; m++) {
          uint8_t h[WSB_FRAME_HEADER_MAX + 2];
          memset(h, 0xee, sizeof(h));
          size_t hl = wsb_frame_header_write(h, fin, opcodes[o], n, m ? KEY : NULL);
          ck_assert_uint_eq(hl, expected_header_len(n, m));
          ck_assert_uint_eq(h[WSB_FRAME_HEADER_MAX], 0xee);
          expect_header(h, hl, fin, opcodes[o], n, m ? KEY : NULL);
        }
      }
    }
  }
}
END_TEST

START_TEST(write_exact_bytes) {
  uint8_t h[WSB_FRAME_HEADER_MAX];
  ck_assert_uint_eq(wsb_frame_header_write(h, true, WSB_OP_TEXT, 5, NULL), 2);
  ck_assert_mem_eq(h, "\x81\x05", 2);
  ck_assert_uint_eq(wsb_frame_header_write(h, false, WSB_OP_BINARY, 125, KEY), 6);
  ck_assert_mem_eq(h, "\x02\xfd\x37\xfa\x21\x3d", 6);
  ck_assert_uint_eq(wsb_frame_header_write(h, true, WSB_OP_BINARY, 126, NULL), 4);
  ck_assert_mem_eq(h, "\x82\x7e\x00\x7e", 4);
  ck_assert_uint_eq(wsb_frame_header_write(h, true, WSB_OP_CONT, 65535, KEY), 8);
  ck_assert_mem_eq(h, "\x80\xfe\xff\xff\x37\xfa\x21\x3d", 8);
  ck_assert_uint_eq(wsb_frame_header_write(h, true, WSB_OP_BINARY, 65536, NULL), 10);
  ck_assert_mem_eq(h, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
  ck_assert_uint_eq(wsb_frame_header_write(h, false, WSB_OP_TEXT, 0x0102030405060708ull, KEY), 14);
  ck_assert_mem_eq(h, "\x01\xff\x01\x02\x03\x04\x05\x06\x07\x08\x37\xfa\x21\x3d", 14);
  ck_assert_uint_eq(wsb_frame_header_write(h, true, WSB_OP_CLOSE, 0, NULL), 2);
  ck_assert_mem_eq(h, "\x88\x00", 2);
}
END_TEST

static void mask_reference(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t pos) {
  for (size_t i = 0; i < len; i++)
    data[i] ^= mask[(pos + i) % 4];
}

START_TEST(mask_matches_byte_loop) {
  enum { GUARD = 16, MAXLEN = 67 };
  uint8_t orig[GUARD + 8 + MAXLEN + GUARD];
  uint8_t want[sizeof(orig)], got[sizeof(orig)] __attribute__((aligned(16)));
  for (size_t i = 0; i < sizeof(orig); i++)
    orig[i] = (uint8_t)(i * 151 + 7);
  for (size_t len = 0; len <= MAXLEN; len++)
    for (uint64_t pos = 0; pos <= 7; pos++)
      for (size_t start = 0; start <= 7; start++) {
        memcpy(want, orig, sizeof(orig));
        memcpy(got, orig, sizeof(orig));
        mask_reference(want + GUARD + start, len, KEY, pos);
        wsb_mask_apply(got + GUARD + start, len, KEY, pos);
        ck_assert_msg(memcmp(want, got, sizeof(got)) == 0, "len %zu pos %llu start %zu", len,
                      (unsigned long long)pos, start);
      }
}
END_TEST

START_TEST(mask_large_pos_and_heap_end) {
  /* pos past 2^32 still selects the key byte by pos % 4. */
  uint8_t a[40], b[40];
  memset(a, 0x5c, sizeof(a));
  memcpy(b, a, sizeof(a));
  wsb_mask_apply(a, sizeof(a), KEY, (1ull << 40) + 3);
  mask_reference(b, sizeof(b), KEY, 3);
  ck_assert_mem_eq(a, b, sizeof(a));

  /* Exact heap allocations: ASan sees any word access past the end. */
  for (size_t len = 0; len <= 40; len++) {
    uint8_t *p = malloc(len);
    uint8_t ref[40];
    for (size_t i = 0; i < len; i++)
      p[i] = ref[i] = (uint8_t)i;
    wsb_mask_apply(p, len, KEY, len);
    mask_reference(ref, len, KEY, len);
    ck_assert(len == 0 || memcmp(p, ref, len) == 0);
    free(p);
  }
}
END_TEST

START_TEST(mask_in_pieces) {
  enum { N = 300 };
  uint8_t whole[N], pieces[N];
  for (size_t i = 0; i < N; i++)
    whole[i] = pieces[i] = (uint8_t)(i ^ 0x5a);
  wsb_mask_apply(whole, N, KEY, 0);
  /* Uneven piece sizes, each continuing at its offset within the payload. */
  size_t off = 0;
  for (size_t step = 1; off < N; step = step * 3 % 37 + 1) {
    size_t n = step < N - off ? step : N - off;
    wsb_mask_apply(pieces + off, n, KEY, off);
    off += n;
  }
  ck_assert_mem_eq(whole, pieces, N);
  /* Masking is its own inverse. */
  wsb_mask_apply(whole, N, KEY, 0);
  for (size_t i = 0; i < N; i++)
    ck_assert_uint_eq(whole[i], (uint8_t)(i ^ 0x5a));
}
END_TEST

static struct wsb_frame frame(uint8_t opcode, bool fin, uint64_t len, bool masked) {
  struct wsb_frame f = {.payload_len = len, .opcode = opcode, .fin = fin, .masked = masked};
  f.header_len = (uint8_t)expected_header_len(len, masked);
  if (masked)
    memcpy(f.mask, KEY, 4);
  return f;
}

/* Checks a frame and, for a refused one, that the state did not move. */
static int check(struct wsb_msg_state *st, uint8_t opcode, bool fin, uint64_t len, bool from_client,
                 uint64_t max) {
  struct wsb_frame f = frame(opcode, fin, len, from_client);
  struct wsb_msg_state before = *st;
  int r = wsb_frame_check(st, &f, from_client, max);
  if (r != 0) {
    ck_assert_uint_eq(st->open_opcode, before.open_opcode);
    ck_assert_uint_eq(st->msg_len, before.msg_len);
  }
  return r;
}

START_TEST(check_masking_by_sender) {
  static const uint8_t opcodes[] = {WSB_OP_TEXT, WSB_OP_BINARY, WSB_OP_CLOSE, WSB_OP_PING,
                                    WSB_OP_PONG};
  for (size_t i = 0; i < sizeof(opcodes); i++) {
    struct wsb_msg_state st = {0};
    struct wsb_frame f = frame(opcodes[i], true, 3, false);
    ck_assert_int_eq(wsb_frame_check(&st, &f, true, 0), WSB_EUNMASKED);
    ck_assert_int_eq(wsb_frame_check(&st, &f, false, 0), 0);
    f = frame(opcodes[i], true, 3, true);
    ck_assert_int_eq(wsb_frame_check(&st, &f, false, 0), WSB_EMASKED);
    ck_assert_int_eq(wsb_frame_check(&st, &f, true, 0), 0);
    ck_assert_uint_eq(st.open_opcode, 0);
    ck_assert_uint_eq(st.msg_len, 0);
  }
  /* Masking is checked before continuation order. */
  struct wsb_msg_state st = {0};
  struct wsb_frame f = frame(WSB_OP_CONT, true, 3, false);
  ck_assert_int_eq(wsb_frame_check(&st, &f, true, 0), WSB_EUNMASKED);
  ck_assert_int_eq(wsb_frame_check(&st, &f, false, 0), WSB_ECONT);
}
END_TEST

START_TEST(check_fragmentation_with_control_frames) {
  for (int client = 0; client <= 1; client++) {
    struct wsb_msg_state st = {0};
    ck_assert_int_eq(check(&st, WSB_OP_TEXT, false, 10, client, 0), 0);
    ck_assert_uint_eq(st.open_opcode, WSB_OP_TEXT);
    ck_assert_uint_eq(st.msg_len, 10);
    ck_assert_int_eq(check(&st, WSB_OP_PING, true, 4, client, 0), 0);
    ck_assert_uint_eq(st.open_opcode, WSB_OP_TEXT);
    ck_assert_uint_eq(st.msg_len, 10);
    ck_assert_int_eq(check(&st, WSB_OP_CONT, false, 5, client, 0), 0);
    ck_assert_uint_eq(st.msg_len, 15);
    ck_assert_int_eq(check(&st, WSB_OP_PONG, true, 0, client, 0), 0);
    ck_assert_int_eq(check(&st, WSB_OP_CONT, false, 0, client, 0), 0);
    ck_assert_int_eq(check(&st, WSB_OP_CLOSE, true, 2, client, 0), 0);
    ck_assert_uint_eq(st.open_opcode, WSB_OP_TEXT);
    ck_assert_uint_eq(st.msg_len, 15);
    ck_assert_int_eq(check(&st, WSB_OP_CONT, true, 7, client, 0), 0);
    ck_assert_uint_eq(st.open_opcode, 0);
    ck_assert_uint_eq(st.msg_len, 0);
    /* The next message may start, and a single-frame one leaves nothing open. */
    ck_assert_int_eq(check(&st, WSB_OP_BINARY, true, 100, client, 0), 0);
    ck_assert_uint_eq(st.open_opcode, 0);
    ck_assert_uint_eq(st.msg_len, 0);
    ck_assert_int_eq(check(&st, WSB_OP_BINARY, false, 1, client, 0), 0);
    ck_assert_uint_eq(st.open_opcode, WSB_OP_BINARY);
    ck_assert_int_eq(check(&st, WSB_OP_CONT, true, 1, client, 0), 0);
    ck_assert_uint_eq(st.open_opcode, 0);
  }
}
END_TEST

START_TEST(check_continuation_order) {
  struct wsb_msg_state st = {0};
  ck_assert_int_eq(check(&st, WSB_OP_CONT, true, 1, true, 0), WSB_ECONT);
  ck_assert_int_eq(check(&st, WSB_OP_CONT, false, 1, true, 0), WSB_ECONT);
  ck_assert_int_eq(check(&st, WSB_OP_BINARY, false, 3, true, 0), 0);
  ck_assert_int_eq(check(&st, WSB_OP_TEXT, true, 1, true, 0), WSB_ENOT_CONT);
  ck_assert_int_eq(check(&st, WSB_OP_BINARY, false, 1, true, 0), WSB_ENOT_CONT);
  ck_assert_int_eq(check(&st, WSB_OP_BINARY, true, 1, true, 0), WSB_ENOT_CONT);
  ck_assert_uint_eq(st.open_opcode, WSB_OP_BINARY);
  ck_assert_uint_eq(st.msg_len, 3);
  ck_assert_int_eq(check(&st, WSB_OP_CONT, true, 1, true, 0), 0);
  /* Once closed by FIN, another continuation has nothing to continue. */
  ck_assert_int_eq(check(&st, WSB_OP_CONT, true, 1, true, 0), WSB_ECONT);
}
END_TEST

START_TEST(check_message_size_limit) {
  struct wsb_msg_state st = {0};
  ck_assert_int_eq(check(&st, WSB_OP_TEXT, true, 100, true, 100), 0);
  ck_assert_int_eq(check(&st, WSB_OP_TEXT, true, 101, true, 100), WSB_ETOO_BIG);
  ck_assert_int_eq(check(&st, WSB_OP_TEXT, false, 101, true, 100), WSB_ETOO_BIG);
  ck_assert_uint_eq(st.open_opcode, 0);

  /* The limit counts the whole message across fragments, not single frames. */
  ck_assert_int_eq(check(&st, WSB_OP_BINARY, false, 60, true, 100), 0);
  ck_assert_int_eq(check(&st, WSB_OP_PING, true, 125, true, 100), 0);
  ck_assert_int_eq(check(&st, WSB_OP_CONT, false, 40, true, 100), 0);
  ck_assert_uint_eq(st.msg_len, 100);
  ck_assert_int_eq(check(&st, WSB_OP_CONT, true, 1, true, 100), WSB_ETOO_BIG);
  ck_assert_int_eq(check(&st, WSB_OP_CONT, false, MAX63, true, 100), WSB_ETOO_BIG);
  ck_assert_uint_eq(st.msg_len, 100);
  ck_assert_int_eq(check(&st, WSB_OP_CONT, true, 0, true, 100), 0);
  ck_assert_uint_eq(st.open_opcode, 0);
  ck_assert_uint_eq(st.msg_len, 0);

  /* Control frames are not messages and never count. */
  ck_assert_int_eq(check(&st, WSB_OP_CLOSE, true, 125, true, 1), 0);

  /* No limit: the largest lengths pass and the running total does not wrap. */
  ck_assert_int_eq(check(&st, WSB_OP_BINARY, false, MAX63, true, 0), 0);
  ck_assert_int_eq(check(&st, WSB_OP_CONT, false, MAX63, true, 0), 0);
  ck_assert_uint_eq(st.msg_len, 2 * MAX63);
  ck_assert_int_eq(check(&st, WSB_OP_CONT, false, MAX63, true, 0), 0);
  ck_assert_uint_eq(st.msg_len, UINT64_MAX);
  ck_assert_int_eq(check(&st, WSB_OP_CONT, true, 1, true, 0), 0);

  /* A limit near UINT64_MAX is compared without overflow. */
  st = (struct wsb_msg_state){0};
  ck_assert_int_eq(check(&st, WSB_OP_BINARY, false, MAX63, true, UINT64_MAX - 1), 0);
  ck_assert_int_eq(check(&st, WSB_OP_CONT, false, MAX63, true, UINT64_MAX - 1), 0);
  ck_assert_int_eq(check(&st, WSB_OP_CONT, false, 1, true, UINT64_MAX - 1), WSB_ETOO_BIG);
  ck_assert_int_eq(check(&st, WSB_OP_CONT, true, 0, true, UINT64_MAX - 1), 0);
}
END_TEST

/* Appends a frame (masked with KEY when masked) of len payload bytes to out; returns its size. */
static size_t put_frame(uint8_t *out, uint8_t opcode, bool fin, size_t len, bool masked) {
  size_t hl = wsb_frame_header_write(out, fin, opcode, len, masked ? KEY : NULL);
  memset(out + hl, 'x', len);
  return hl + len;
}

/* wsb_frame_next on a heap copy of exactly len bytes, so ASan sees any read past the end. */
static ssize_t next_copy(struct wsb_msg_state *st, struct wsb_frame *f, const uint8_t *bytes,
                         size_t len, bool from_client, uint64_t max, uint64_t whole_max) {
  uint8_t *copy = malloc(len ? len : 1);
  memcpy(copy, bytes, len);
  ssize_t r = wsb_frame_next(st, f, copy, len, from_client, max, whole_max);
  free(copy);
  return r;
}

/*
 * Feeds every prefix of the frame at bytes (size bytes) to wsb_frame_next: prefixes that cannot
 * be taken are WSB_PARTIAL and leave st alone; from taken_at on the header length comes back and
 * st moves, once.
 */
static void expect_taken_at(struct wsb_msg_state *st, const uint8_t *bytes, size_t size,
                            size_t taken_at, bool from_client, uint64_t max, uint64_t whole_max) {
  struct wsb_msg_state before = *st, after = {0};
  for (size_t k = 0; k <= size; k++) {
    if (k > taken_at + 16 && k + 1 < size)
      k = size - 1; /* longer prefixes answer as these do: skip to the last two */
    struct wsb_msg_state s = before;
    struct wsb_frame f;
    ssize_t r = next_copy(&s, &f, bytes, k, from_client, max, whole_max);
    if (k < taken_at) {
      ck_assert_msg(r == WSB_PARTIAL, "prefix %zu of %zu: %zd", k, size, r);
      ck_assert_mem_eq(&s, &before, sizeof(s));
    } else {
      ck_assert_msg(r > 0 && (size_t)r <= taken_at, "prefix %zu of %zu: %zd", k, size, r);
      ck_assert_uint_eq(f.payload_len, size - (size_t)r);
      if (k == taken_at)
        after = s;
      ck_assert_mem_eq(&s, &after, sizeof(s));
    }
  }
  *st = after;
}

START_TEST(next_takes_each_frame_once) {
  static uint8_t b[70100];
  for (int client = 0; client <= 1; client++) {
    struct wsb_msg_state st = {0};
    size_t hm = client ? 4 : 0; /* mask bytes */
    /* Streamed (whole_max 0): a data frame is taken at its header, a control frame when whole. */
    size_t n = put_frame(b, WSB_OP_TEXT, false, 10, client);
    expect_taken_at(&st, b, n, 2 + hm, client, 0, 0);
    ck_assert_uint_eq(st.open_opcode, WSB_OP_TEXT);
    ck_assert_uint_eq(st.msg_len, 10);
    n = put_frame(b, WSB_OP_PING, true, 125, client);
    expect_taken_at(&st, b, n, n, client, 0, 0);
    n = put_frame(b, WSB_OP_CONT, false, 300, client);
    expect_taken_at(&st, b, n, 4 + hm, client, 0, 0);
    ck_assert_uint_eq(st.msg_len, 310);
    /* Whole up to whole_max: smaller frames wait for their last byte, larger ones stream. */
    n = put_frame(b, WSB_OP_CONT, false, 1000, client);
    expect_taken_at(&st, b, n, n, client, 0, n);
    ck_assert_uint_eq(st.msg_len, 1310);
    n = put_frame(b, WSB_OP_CONT, false, 1000, client);
    expect_taken_at(&st, b, n, 4 + hm, client, 0, n - 1);
    ck_assert_uint_eq(st.msg_len, 2310);
    n = put_frame(b, WSB_OP_CONT, true, 70000, client); /* a 64-bit length */
    expect_taken_at(&st, b, n, 10 + hm, client, 0, 65536);
    ck_assert_uint_eq(st.open_opcode, 0);
    ck_assert_uint_eq(st.msg_len, 0);
    n = put_frame(b, WSB_OP_CLOSE, true, 2, client);
    expect_taken_at(&st, b, n, n, client, 0, 0);
  }
  /* Counted once: a 100-byte fragment that waited, then 50 more, fit a 150-byte limit. */
  struct wsb_msg_state st = {0};
  size_t n = put_frame(b, WSB_OP_BINARY, false, 100, true);
  expect_taken_at(&st, b, n, n, true, 150, 65536);
  n = put_frame(b, WSB_OP_CONT, true, 50, true);
  expect_taken_at(&st, b, n, n, true, 150, 65536);
}
END_TEST

/* Prefixes shorter than decided_at are WSB_PARTIAL, longer ones err; st never moves. */
static void expect_next_error(const uint8_t *bytes, size_t size, size_t decided_at, int err,
                              const struct wsb_msg_state *st, bool from_client, uint64_t max) {
  for (size_t k = 0; k <= size; k++) {
    struct wsb_msg_state s = *st;
    struct wsb_frame f;
    ssize_t r = next_copy(&s, &f, bytes, k, from_client, max, UINT64_MAX);
    int want = k < decided_at ? WSB_PARTIAL : err;
    ck_assert_msg(r == want, "prefix %zu of %zu: got %zd (%s), want %d (%s)", k, size, r,
                  wsb_err_name((int)r), want, wsb_err_name(want));
    ck_assert_mem_eq(&s, st, sizeof(s));
  }
}

/* Both steps' errors, each as soon as the header shows it, even for a frame that would wait. */
START_TEST(next_errors_as_parse_and_check) {
  static const struct wsb_msg_state idle = {0}, open = {.open_opcode = WSB_OP_TEXT, .msg_len = 90};
  static const struct {
    uint8_t opcode;
    bool fin;
    size_t len;
    bool masked, rsv; /* the frame */
    const struct wsb_msg_state *st;
    bool from_client;
    uint64_t max;
    size_t decided_at; /* bytes of the frame that decide err */
    int err;
  } cases[] = {
      {WSB_OP_TEXT, true, 200, true, true, &idle, true, 0, 1, WSB_ERSV},
      {WSB_OP_TEXT, true, 200, false, false, &idle, true, 0, 4, WSB_EUNMASKED},
      {WSB_OP_PING, true, 5, true, false, &idle, false, 0, 6, WSB_EMASKED},
      {WSB_OP_CONT, true, 200, true, false, &idle, true, 0, 8, WSB_ECONT},
      {WSB_OP_BINARY, true, 20, true, false, &open, true, 0, 6, WSB_ENOT_CONT},
      {WSB_OP_CONT, false, 11, true, false, &open, true, 100, 6, WSB_ETOO_BIG},
  };
  uint8_t b[300];
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    size_t n = put_frame(b, cases[i].opcode, cases[i].fin, cases[i].len, cases[i].masked);
    if (cases[i].rsv)
      b[0] |= 0x40;
    expect_next_error(b, n, cases[i].decided_at, cases[i].err, cases[i].st, cases[i].from_client,
                      cases[i].max);
  }
  /* Up to the limit exactly is no error. */
  size_t n = put_frame(b, WSB_OP_CONT, false, 10, true);
  struct wsb_msg_state st = open;
  struct wsb_frame f;
  ck_assert_int_eq(next_copy(&st, &f, b, n, true, 100, 0), 6);
  ck_assert_uint_eq(st.msg_len, 100);
}
END_TEST

START_TEST(error_close_codes) {
  static const struct {
    int err;
    uint16_t code;
  } table[] = {
      {WSB_ERSV, 1002},
      {WSB_EOPCODE, 1002},
      {WSB_EUNMASKED, 1002},
      {WSB_EMASKED, 1002},
      {WSB_ECTRL_LEN, 1002},
      {WSB_ECTRL_FRAG, 1002},
      {WSB_ELEN_ENCODING, 1002},
      {WSB_ELEN_MSB, 1002},
      {WSB_ECONT, 1002},
      {WSB_ENOT_CONT, 1002},
      {WSB_ECLOSE_LEN, 1002},
      {WSB_ECLOSE_CODE, 1002},
      {WSB_EUTF8, 1007},
      {WSB_ETOO_BIG, 1009},
      {WSB_PARTIAL, 1011},
      {WSB_EHTTP, 1011},
      {WSB_ENOBACKEND, 1011},
      {0, 1011},
      {-12, 1011},
  };
  for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
    ck_assert_msg(wsb_frame_error_close_code(table[i].err) == table[i].code, "%s",
                  wsb_err_name(table[i].err));
}
END_TEST

START_TEST(close_code_validity) {
  static const uint16_t valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                   1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
  static const uint16_t invalid[] = {0,    1,    999,  1004, 1005, 1006, 1015, 1016,
                                     1999, 2000, 2999, 5000, 6000, 9999, 65535};
  for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
    ck_assert_msg(wsb_close_code_is_valid(valid[i]), "%u", valid[i]);
  for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
    ck_assert_msg(!wsb_close_code_is_valid(invalid[i]), "%u", invalid[i]);
  /* 4 + 8 + 2000 valid codes in the whole range, no more. */
  unsigned n = 0;
  for (unsigned c = 0; c <= 65535; c++)
    n += wsb_close_code_is_valid((uint16_t)c);
  ck_assert_uint_eq(n, 2012);
}
END_TEST

/* SPEC.md's list for DELETE /api/v1/sessions/{id}, written out on its own: "1000-1003, 1007-1009,
   1011-1014, 3000-4999". */
static bool spec_sendable(unsigned long c) {
  static const unsigned long ranges[][2] = {{1000, 1003}, {1007, 1009}, {1011, 1014}, {3000, 4999}};
  for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
    if (c >= ranges[i][0] && c <= ranges[i][1])
      return true;
  return false;
}

START_TEST(close_code_sendable_whole_range) {
  unsigned n = 0;
  for (unsigned long c = 0; c <= 65535; c++) {
    ck_assert_msg(wsb_close_code_sendable(c) == spec_sendable(c), "%lu", c);
    n += wsb_close_code_sendable(c);
  }
  ck_assert_uint_eq(n, 4 + 3 + 4 + 2000);
  /* Values past 16 bits never wrap into the set. */
  ck_assert(!wsb_close_code_sendable(65536 + 1000));
  ck_assert(!wsb_close_code_sendable(4294967296ul + 1000));
  ck_assert(!wsb_close_code_sendable(1010)); /* a client's code */
}
END_TEST

START_TEST(close_code_from_text) {
  char text[16];
  for (unsigned long c = 0; c <= 99999; c++) {
    uint16_t code = 0;
    int len = snprintf(text, sizeof(text), "%lu", c);
    int rc = wsb_close_code_from_text(text, (size_t)len, &code);
    ck_assert_msg(rc == (spec_sendable(c) ? 0 : WSB_ECLOSE_CODE), "%lu", c);
    ck_assert_msg(rc != 0 || code == c, "%lu gave %u", c, code);
  }
  static const char *const bad[] = {"",      "+1000",  "-1000",   " 1000",    "1000 ",
                                    "1e3",   "0x3e8",  "10 0",    "1000a",    "65536",
                                    "66536", "100000", "0001000", "４０００", "1008\n"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    uint16_t code = 7;
    ck_assert_msg(wsb_close_code_from_text(bad[i], strlen(bad[i]), &code) == WSB_ECLOSE_CODE,
                  "\"%s\"", bad[i]);
    ck_assert_uint_eq(code, 7);
  }
  uint16_t code = 0;
  ck_assert_int_eq(wsb_close_code_from_text("01008", 5, &code), 0); /* leading zeros: decimal */
  ck_assert_uint_eq(code, 1008);
  ck_assert_int_eq(wsb_close_code_from_text("1008", 3, &code), WSB_ECLOSE_CODE); /* "100" */
}
END_TEST

START_TEST(close_reason_check) {
  char r[WSB_CLOSE_REASON_MAX + 2];
  memset(r, 'r', sizeof(r));
  ck_assert_int_eq(wsb_close_reason_check(r, 0), 0);
  ck_assert_int_eq(wsb_close_reason_check(r, WSB_CLOSE_REASON_MAX), 0);
  ck_assert_int_eq(wsb_close_reason_check(r, WSB_CLOSE_REASON_MAX + 1), -E2BIG);
  /* 41 three-byte characters are 123 bytes; one byte more is too long, not cut. */
  char euro[41 * 3 + 1];
  for (int i = 0; i < 41; i++)
    memcpy(euro + i * 3, "\xe2\x82\xac", 3);
  ck_assert_int_eq(wsb_close_reason_check(euro, 123), 0);
  euro[123] = 'x';
  ck_assert_int_eq(wsb_close_reason_check(euro, 124), -E2BIG);
  ck_assert_int_eq(wsb_close_reason_check(euro, 122), WSB_EUTF8); /* a cut character */
  ck_assert_int_eq(wsb_close_reason_check("\xff", 1), WSB_EUTF8);
  ck_assert_int_eq(wsb_close_reason_check("\xc0\xaf", 2), WSB_EUTF8);     /* overlong '/' */
  ck_assert_int_eq(wsb_close_reason_check("\xed\xa0\x80", 3), WSB_EUTF8); /* a surrogate */
  ck_assert_int_eq(wsb_close_reason_check("a\0b", 3), -EINVAL);
  ck_assert_int_eq(wsb_close_reason_check("caf\xc3\xa9", 5), 0);
}
END_TEST

static int close_parse_copy(const char *lit, size_t len, uint16_t *code, size_t *reason_len,
                            char *reason_out) {
  uint8_t *copy = malloc(len);
  if (len > 0)
    memcpy(copy, lit, len);
  const uint8_t *reason = NULL;
  int r = wsb_close_parse(copy, len, code, &reason, reason_len);
  if (r == 0) {
    ck_assert(*reason_len == 0 || (reason == copy + 2 && *reason_len == len - 2));
    memcpy(reason_out, reason, *reason_len);
  }
  free(copy);
  return r;
}

#define CLOSE_PARSE(lit, code, rlen, out) close_parse_copy(lit, sizeof(lit) - 1, code, rlen, out)

START_TEST(close_parse) {
  uint16_t code = 0;
  size_t rlen = 99;
  char reason[WSB_CONTROL_PAYLOAD_MAX];
  ck_assert_int_eq(CLOSE_PARSE("", &code, &rlen, reason), 0);
  ck_assert_uint_eq(code, 1005);
  ck_assert_uint_eq(rlen, 0);
  ck_assert_int_eq(CLOSE_PARSE("\x03", &code, &rlen, reason), WSB_ECLOSE_LEN);
  ck_assert_int_eq(CLOSE_PARSE("\x03\xe8", &code, &rlen, reason), 0);
  ck_assert_uint_eq(code, 1000);
  ck_assert_uint_eq(rlen, 0);
  ck_assert_int_eq(CLOSE_PARSE("\x03\xe9going", &code, &rlen, reason), 0);
  ck_assert_uint_eq(code, 1001);
  ck_assert_uint_eq(rlen, 5);
  ck_assert_mem_eq(reason, "going", 5);
  ck_assert_int_eq(CLOSE_PARSE("\x0f\xa0\xce\xba\xe1\xbd\xb9", &code, &rlen, reason), 0);
  ck_assert_uint_eq(code, 4000);
  ck_assert_uint_eq(rlen, 5);
  ck_assert_int_eq(CLOSE_PARSE("\x0b\xb8", &code, &rlen, reason), 0);
  ck_assert_uint_eq(code, 3000);

  code = 7;
  ck_assert_int_eq(CLOSE_PARSE("\x03\xed", &code, &rlen, reason), WSB_ECLOSE_CODE);  /* 1005 */
  ck_assert_int_eq(CLOSE_PARSE("\x03\xee", &code, &rlen, reason), WSB_ECLOSE_CODE);  /* 1006 */
  ck_assert_int_eq(CLOSE_PARSE("\x03\xec", &code, &rlen, reason), WSB_ECLOSE_CODE);  /* 1004 */
  ck_assert_int_eq(CLOSE_PARSE("\x03\xf7", &code, &rlen, reason), WSB_ECLOSE_CODE);  /* 1015 */
  ck_assert_int_eq(CLOSE_PARSE("\x03\xe7x", &code, &rlen, reason), WSB_ECLOSE_CODE); /* 999 */
  ck_assert_int_eq(CLOSE_PARSE("\x00\x00", &code, &rlen, reason), WSB_ECLOSE_CODE);
  ck_assert_int_eq(CLOSE_PARSE("\x13\x88", &code, &rlen, reason), WSB_ECLOSE_CODE); /* 5000 */
  ck_assert_int_eq(CLOSE_PARSE("\x03\xe8\xc0\x80", &code, &rlen, reason), WSB_EUTF8);
  ck_assert_int_eq(CLOSE_PARSE("\x03\xe8ok\xe2\x82", &code, &rlen, reason), WSB_EUTF8);
  ck_assert_int_eq(CLOSE_PARSE("\x03\xe8\xed\xa0\x80", &code, &rlen, reason), WSB_EUTF8);
  /* A bad code is reported before a bad reason, and failures write nothing. */
  ck_assert_int_eq(CLOSE_PARSE("\x03\xed\xff", &code, &rlen, reason), WSB_ECLOSE_CODE);
  ck_assert_uint_eq(code, 7);
}
END_TEST

static void expect_build(uint16_t code, const char *reason, size_t reason_len, size_t want_reason) {
  uint8_t out[WSB_CONTROL_PAYLOAD_MAX + 8];
  memset(out, 0xee, sizeof(out));
  size_t n = wsb_close_build(out, code, reason, reason_len);
  ck_assert_uint_eq(n, 2 + want_reason);
  ck_assert_uint_le(n, WSB_CONTROL_PAYLOAD_MAX);
  ck_assert_uint_eq(out[n], 0xee);
  ck_assert_uint_eq(out[0], code >> 8);
  ck_assert_uint_eq(out[1], code & 0xff);
  if (want_reason > 0)
    ck_assert_mem_eq(out + 2, reason, want_reason);
  /* What is built parses back to the same code and reason. */
  uint16_t parsed;
  const uint8_t *r;
  size_t rl;
  ck_assert_int_eq(wsb_close_parse(out, n, &parsed, &r, &rl), 0);
  ck_assert_uint_eq(parsed, code);
  ck_assert_uint_eq(rl, want_reason);
}

START_TEST(close_build) {
  char reason[200];
  expect_build(1000, NULL, 0, 0);
  expect_build(1001, "bye", 3, 3);
  expect_build(4999, "", 0, 0);
  memset(reason, 'r', sizeof(reason));
  expect_build(1011, reason, 122, 122);
  expect_build(1011, reason, 123, 123);
  expect_build(1011, reason, 124, 123);
  expect_build(1011, reason, 200, 123);

  /* A character that would straddle byte 123 is dropped whole. */
  memcpy(reason + 122, "\xc3\xa9", 2); /* bytes 122-123 */
  expect_build(1002, reason, 124, 122);
  memset(reason, 'r', sizeof(reason));
  memcpy(reason + 121, "\xe2\x82\xac", 3); /* bytes 121-123 */
  expect_build(1002, reason, 130, 121);
  memset(reason, 'r', sizeof(reason));
  memcpy(reason + 120, "\xf0\x9f\x98\x80", 4); /* bytes 120-123 */
  expect_build(1002, reason, 124, 120);
  memset(reason, 'r', sizeof(reason));
  memcpy(reason + 119, "\xf0\x9f\x98\x80", 4); /* ends exactly at 123 */
  expect_build(1002, reason, 124, 123);
  memset(reason, 'r', sizeof(reason));
  memcpy(reason + 121, "\xc3\xa9", 2); /* ends exactly at 123 */
  expect_build(1002, reason, 123, 123);
  /* Only multibyte characters: the cut lands on a character start. */
  for (size_t i = 0; i + 3 <= sizeof(reason); i += 3)
    memcpy(reason + i, "\xe2\x82\xac", 3);
  expect_build(1000, reason, 198, 123);
  expect_build(1000, reason, 126, 123);
  for (size_t i = 0; i + 2 <= sizeof(reason); i += 2)
    memcpy(reason + i, "\xc3\xa9", 2);
  expect_build(1000, reason, 200, 122);

  /* 1005 stands for the empty payload and is never written. */
  uint8_t out[WSB_CONTROL_PAYLOAD_MAX];
  ck_assert_uint_eq(wsb_close_build(out, WSB_CLOSE_NO_STATUS, "x", 1), 0);
}
END_TEST

/* permessage-deflate's RSV1 (RFC 7692 6): read only when negotiated, and only to start a data
   message; its frames are taken whole, however large. */
START_TEST(rsv1_when_negotiated) {
  uint8_t buf[300];
  struct wsb_frame f;
  struct wsb_msg_state st = {.rsv1_ok = false};
  size_t n = put_frame(buf, WSB_OP_TEXT, false, 10, true);
  buf[0] |= 0x40;
  ck_assert_int_eq(next_copy(&st, &f, buf, n, true, 0, 0), WSB_ERSV);
  ck_assert_int_eq(wsb_frame_parse(&f, buf, n), WSB_ERSV); /* the plain parser never reads it */
  st.rsv1_ok = true;
  ck_assert_int_eq(next_copy(&st, &f, buf, n, true, 0, 0), 6);
  ck_assert(f.rsv1 && st.compressed && st.open_opcode == WSB_OP_TEXT);
  /* A ping inside the message, then RSV1 on a continuation or a control frame. */
  n = put_frame(buf, WSB_OP_PING, true, 1, true);
  ck_assert_int_eq(next_copy(&st, &f, buf, n, true, 0, 0), 6);
  ck_assert(!f.rsv1 && st.compressed);
  buf[0] |= 0x40;
  ck_assert_int_eq(next_copy(&st, &f, buf, n, true, 0, 0), WSB_ERSV);
  n = put_frame(buf, WSB_OP_CONT, true, 10, true);
  buf[0] |= 0x40;
  ck_assert_int_eq(next_copy(&st, &f, buf, n, true, 0, 0), WSB_ERSV);
  /* RSV2 and RSV3 stay errors. */
  n = put_frame(buf, WSB_OP_BINARY, true, 1, true);
  buf[0] |= 0x20;
  ck_assert_int_eq(next_copy(&st, &f, buf, n, true, 0, 0), WSB_ERSV);
  /* The continuation of a compressed message waits until whole even past whole_max, and its
     message's size still counts against the limit. */
  n = put_frame(buf, WSB_OP_CONT, true, 200, true);
  ck_assert_int_eq(next_copy(&st, &f, buf, n - 1, true, 0, 16), WSB_PARTIAL);
  ck_assert_int_eq(next_copy(&st, &f, buf, n, true, 0, 16), 8);
  ck_assert(st.compressed && st.open_opcode == 0);
  /* A plain message after it is not compressed, and streams as before. */
  n = put_frame(buf, WSB_OP_TEXT, true, 200, true);
  ck_assert_int_eq(next_copy(&st, &f, buf, 20, true, 0, 16), 8);
  ck_assert(!f.rsv1 && !st.compressed);
  n = put_frame(buf, WSB_OP_TEXT, true, 200, true);
  buf[0] |= 0x40;
  ck_assert_int_eq(next_copy(&st, &f, buf, n, true, 100, 16), WSB_ETOO_BIG);
}
END_TEST

int main(void) {
  Suite *s = suite_create("frame");
  TCase *parse = tcase_create("parse");
  tcase_add_test(parse, parse_length_boundaries);
  tcase_add_test(parse, parse_control_frames);
  tcase_add_test(parse, parse_reserved_bits);
  tcase_add_test(parse, parse_unknown_opcodes);
  tcase_add_test(parse, parse_fragmented_control);
  tcase_add_test(parse, parse_control_too_long);
  tcase_add_test(parse, parse_non_minimal_length);
  tcase_add_test(parse, parse_length_msb);
  tcase_add_test(parse, write_parse_round_trip);
  tcase_add_test(parse, write_exact_bytes);
  suite_add_tcase(s, parse);

  TCase *mask = tcase_create("mask");
  tcase_add_test(mask, mask_matches_byte_loop);
  tcase_add_test(mask, mask_large_pos_and_heap_end);
  tcase_add_test(mask, mask_in_pieces);
  suite_add_tcase(s, mask);

  TCase *rules = tcase_create("check");
  tcase_add_test(rules, check_masking_by_sender);
  tcase_add_test(rules, check_fragmentation_with_control_frames);
  tcase_add_test(rules, check_continuation_order);
  tcase_add_test(rules, check_message_size_limit);
  tcase_add_test(rules, error_close_codes);
  tcase_add_test(rules, next_takes_each_frame_once);
  tcase_add_test(rules, next_errors_as_parse_and_check);
  suite_add_tcase(s, rules);

  tcase_add_test(rules, rsv1_when_negotiated);
  TCase *close = tcase_create("close");
  tcase_add_test(close, close_code_validity);
  tcase_add_test(close, close_code_sendable_whole_range);
  tcase_add_test(close, close_code_from_text);
  tcase_add_test(close, close_reason_check);
  tcase_add_test(close, close_parse);
  tcase_add_test(close, close_build);
  suite_add_tcase(s, close);

  return wsb_run_suite(s);
}
