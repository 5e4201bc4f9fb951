/* wsbal-load's payloads: a sequence number, a send time and a pattern that checks every byte. */
#include "load.h"

#include <string.h>

/* splitmix64's finalizer: cheap, and every input bit reaches every output bit. */
static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t payload_seed(uint32_t conn, uint64_t seq, uint64_t t) {
  return mix64(seq * 0x9e3779b97f4a7c15ull ^ mix64(t) ^
               ((uint64_t)conn + 1) * 0xd1b54a32d192ed03ull);
}

/* The pattern's 8-byte word number w (counted from the payload's start); text keeps to ASCII. */
static uint64_t pattern_word(uint64_t seed, uint64_t w, bool text) {
  uint64_t v = mix64(seed + w * 0x9e3779b97f4a7c15ull);
  return text ? (v & 0x3f3f3f3f3f3f3f3full) | 0x4040404040404040ull : v;
}

static void put_le(uint8_t *dst, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; i++)
    dst[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static void put_hex64(uint8_t *dst, uint64_t v) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 15; i >= 0; i--) {
    dst[i] = (uint8_t)digits[v & 15];
    v >>= 4;
  }
}

/* Only the lower-case digits put_hex64 writes are accepted, so a changed case is caught too. */
static bool get_hex64(const uint8_t *p, uint64_t *out) {
  uint64_t v = 0;
  for (int i = 0; i < 16; i++) {
    uint8_t c = p[i];
    unsigned d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else
      return false;
    v = v << 4 | d;
  }
  *out = v;
  return true;
}

size_t wsb_load_payload_head_len(bool text) {
  return text ? WSB_LOAD_HEAD_TEXT : WSB_LOAD_HEAD_BINARY;
}

void wsb_load_payload_fill(uint8_t *dst, size_t size, bool text, uint32_t conn, uint64_t seq,
                           uint64_t t) {
  size_t hl = wsb_load_payload_head_len(text);
  if (text) {
    put_hex64(dst, seq);
    put_hex64(dst + 16, t);
  } else {
    put_le(dst, seq, 8);
    put_le(dst + 8, t, 8);
  }
  uint64_t seed = payload_seed(conn, seq, t);
  for (size_t off = hl; off < size; off += 8) {
    size_t n = size - off < 8 ? size - off : 8;
    put_le(dst + off, pattern_word(seed, off / 8, text), n);
  }
}

static void decode_head(struct wsb_load_verify *v, bool text, uint32_t conn) {
  v->have_head = true;
  if (text) {
    if (!get_hex64(v->head, &v->seq) || !get_hex64(v->head + 16, &v->t))
      v->bad = true;
  } else {
    v->seq = get_le64(v->head);
    v->t = get_le64(v->head + 8);
  }
  v->seed = payload_seed(conn, v->seq, v->t);
}

/* Compares n pattern bytes starting at payload offset off; whole words take the fast path. */
static bool pattern_matches(uint64_t seed, bool text, uint64_t off, const uint8_t *p, size_t n) {
  while (n > 0) {
    uint64_t word = pattern_word(seed, off / 8, text);
    size_t in_word = (size_t)(off % 8);
    if (in_word == 0 && n >= 8) {
      if (get_le64(p) != word)
        return false;
      p += 8;
      off += 8;
      n -= 8;
      continue;
    }
    size_t take = 8 - in_word < n ? 8 - in_word : n;
    for (size_t i = 0; i < take; i++)
      if (p[i] != (uint8_t)(word >> (8 * (in_word + i))))
        return false;
    p += take;
    off += take;
    n -= take;
  }
  return true;
}

void wsb_load_verify_feed(struct wsb_load_verify *v, bool text, uint32_t conn, size_t size,
                          const uint8_t *p, size_t n) {
  size_t hl = wsb_load_payload_head_len(text);
  if (v->off + n > size) {
    /* Longer than what was sent: the excess need not be looked at. */
    v->bad = true;
    v->off += n;
    return;
  }
  if (v->off < hl) {
    size_t take = hl - (size_t)v->off < n ? hl - (size_t)v->off : n;
    memcpy(v->head + v->off, p, take);
    v->off += take;
    p += take;
    n -= take;
    if (v->off == hl)
      decode_head(v, text, conn);
  }
  if (n > 0 && !v->bad && !pattern_matches(v->seed, text, v->off, p, n))
    v->bad = true;
  v->off += n;
}

bool wsb_load_verify_ok(const struct wsb_load_verify *v, size_t size) {
  return !v->bad && v->have_head && v->off == size;
}
