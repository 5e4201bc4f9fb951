/* Fuzz target for common/pmd.c and common/pmd_codec.c: extension offers and compressed data. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "fuzz.h"
#include "pmd.h"
#include "pmd_codec.h"

/*
 * Byte 0 of an input picks what the rest is (bits 0-1): a Sec-WebSocket-Extensions value
 * (bit 2: context takeover on); a client's compressed message, inflated in pieces of bits 2-7
 * bytes plus one under a limit of byte 1 times 64 (0: none); or a message compressed and
 * inflated again in pieces of that size (bit 2: keep the context, over two messages).
 */
#define M_KIND(m)     ((m)&3)
#define M_FLAG(m)     (((m) >> 2) & 1)
#define M_PIECE(m)    ((size_t)((m) >> 2) + 1)
#define ZIP_LIMIT_MAX (64 * 255)

static void negotiate(const uint8_t *data, size_t size, bool takeover) {
  char *copy = malloc(size ? size : 1); /* exactly size bytes, for ASan */
  REQUIRE(copy != NULL);
  memcpy(copy, data, size);
  struct wsb_pmd_params p, again;
  memset(&p, 0, sizeof(p));
  int rc = wsb_pmd_negotiate_value((struct wsb_slice){copy, size}, takeover, &p);
  REQUIRE(rc == 0 || rc == 1 || rc == WSB_EEXTENSIONS);
  if (rc == 1) {
    REQUIRE(p.on && p.server_bits >= 9 && p.server_bits <= 15);
    REQUIRE(takeover || (p.server_no_takeover && p.client_no_takeover));
    /* The answer is itself a valid offer that gets the same answer back. */
    char out[WSB_PMD_RESPONSE_MAX], out2[WSB_PMD_RESPONSE_MAX];
    size_t n = wsb_pmd_response(&p, out);
    REQUIRE(n > 0 && n < sizeof(out) && strlen(out) == n);
    REQUIRE(wsb_pmd_negotiate_value((struct wsb_slice){out, n}, takeover, &again) == 1);
    REQUIRE(wsb_pmd_response(&again, out2) == n && memcmp(out, out2, n) == 0);
  }
  free(copy);
}

static void inflate_pieces(const uint8_t *data, size_t size, size_t piece, uint64_t max) {
  struct wsb_inflater d;
  REQUIRE(wsb_inflater_init(&d) == 0);
  struct wsb_buf out = {0};
  int rc = 0;
  size_t at = 0;
  do {
    size_t n = size - at < piece ? size - at : piece;
    rc = wsb_inflate(&d, data + at, n, at + n == size, false, max, &out);
    at += n;
    REQUIRE(rc == 0 || rc == WSB_EINFLATE || rc == WSB_ETOO_BIG);
    REQUIRE(max == 0 || out.len <= max); /* the bound: never more than the limit held */
    REQUIRE(rc != WSB_ETOO_BIG || max > 0);
  } while (rc == 0 && at < size);
  wsb_buf_free(&out);
  wsb_inflater_free(&d);
}

static void round_trip(const uint8_t *data, size_t size, size_t piece, bool keep) {
  struct wsb_deflater c;
  struct wsb_inflater d;
  REQUIRE(wsb_deflater_init(&c, 1 + (int)(size % 9), 9 + (int)(piece % 7)) == 0);
  REQUIRE(wsb_inflater_init(&d) == 0);
  for (int round = 0; round < (keep ? 2 : 1); round++) {
    struct wsb_buf z = {0}, out = {0};
    size_t at = 0;
    do {
      size_t n = size - at < piece ? size - at : piece;
      REQUIRE(wsb_deflate(&c, data + at, n, at + n == size, keep, &z) == 0);
      at += n;
    } while (at < size);
    REQUIRE(z.len > 0);
    REQUIRE(wsb_inflate(&d, wsb_buf_data(&z), z.len, true, keep, 0, &out) == 0);
    REQUIRE(out.len == size && (size == 0 || memcmp(wsb_buf_data(&out), data, size) == 0));
    wsb_buf_free(&z);
    wsb_buf_free(&out);
  }
  wsb_deflater_free(&c);
  wsb_inflater_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  uint8_t mode = data[0];
  switch (M_KIND(mode)) {
  case 0:
  case 3:
    negotiate(data + 1, size - 1, M_FLAG(mode));
    break;
  case 1:
    inflate_pieces(data + 2, size - 2, M_PIECE(mode), (uint64_t)data[1] * 64);
    break;
  default:
    round_trip(data + 1, size - 1, M_PIECE(mode), M_FLAG(mode));
    break;
  }
  return 0;
}
