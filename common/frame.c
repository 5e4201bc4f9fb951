/* WebSocket frame codec (RFC 6455 sections 5 and 7.4): headers, framing rules, masking, close. */
#include "frame.h"

#include <errno.h>
#include <string.h>

#include "errors.h"
#include "utf8.h"

#define FIN_BIT       0x80
#define RSV_BITS      0x70
#define RSV1_BIT      0x40 /* permessage-deflate's "compressed" (RFC 7692 6) */
#define OPCODE_BITS   0x0f
#define MASK_BIT      0x80
#define LEN7_BITS     0x7f
#define LEN7_16BIT    126 /* the 7-bit field's marker for a 16-bit length */
#define LEN7_64BIT    127 /* ... and for a 64-bit length */
#define LEN_16BIT_MIN 126
#define LEN_64BIT_MIN 65536

static bool opcode_is_known(uint8_t opcode) {
  switch (opcode) {
  case WSB_OP_CONT:
  case WSB_OP_TEXT:
  case WSB_OP_BINARY:
  case WSB_OP_CLOSE:
  case WSB_OP_PING:
  case WSB_OP_PONG:
    return true;
  default:
    return false;
  }
}

static uint64_t read_be(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++)
    v = v << 8 | p[i];
  return v;
}

static void write_be(uint8_t *p, uint64_t v, size_t n) {
  for (size_t i = n; i-- > 0; v >>= 8)
    p[i] = (uint8_t)v;
}

/* Everything wrong with byte 0 is reported before byte 1 arrives. */
static int check_first_byte(uint8_t b0, bool rsv1_ok) {
  uint8_t opcode = b0 & OPCODE_BITS;
  if ((b0 & (rsv1_ok ? RSV_BITS & ~RSV1_BIT : RSV_BITS)) != 0)
    return WSB_ERSV;
  if (!opcode_is_known(opcode))
    return WSB_EOPCODE;
  if (wsb_opcode_is_control(opcode) && (b0 & FIN_BIT) == 0)
    return WSB_ECTRL_FRAG;
  return 0;
}

/*
 * Checks the extended length with whatever of it is present. The 64-bit MSB
 * sits in byte 2; a 64-bit length below 65536 has its top six bytes zero, which
 * is certain at byte 7 whatever the last two say. A 16-bit length needs both bytes.
 */
static int check_extended_length(const uint8_t *buf, size_t len, uint8_t len7) {
  if (len7 == LEN7_16BIT) {
    if (len >= 4 && read_be(buf + 2, 2) < LEN_16BIT_MIN)
      return WSB_ELEN_ENCODING;
  } else if (len7 == LEN7_64BIT) {
    if (len >= 3 && (buf[2] & 0x80) != 0)
      return WSB_ELEN_MSB;
    if (len >= 8 && read_be(buf + 2, 6) == 0)
      return WSB_ELEN_ENCODING;
  }
  return 0;
}

static size_t extended_length_size(uint8_t len7) {
  return len7 == LEN7_16BIT ? 2 : len7 == LEN7_64BIT ? 8 : 0;
}

/*
 * Errors come out in header order, each as soon as the bytes that decide it
 * are present, so a bad frame is refused without waiting for the rest:
 * byte 0: WSB_ERSV, WSB_EOPCODE, WSB_ECTRL_FRAG; byte 1: WSB_ECTRL_LEN (a
 * control frame's 126/127 marker already means > 125 or non-minimal); byte 2:
 * WSB_ELEN_MSB; byte 3 (16-bit) or byte 7 (64-bit): WSB_ELEN_ENCODING.
 */
static ssize_t parse(struct wsb_frame *f, const uint8_t *buf, size_t len, bool rsv1_ok) {
  if (len < 1)
    return WSB_PARTIAL;
  int err = check_first_byte(buf[0], rsv1_ok);
  if (err != 0)
    return err;
  if (len < 2)
    return WSB_PARTIAL;

  uint8_t opcode = buf[0] & OPCODE_BITS;
  uint8_t len7 = buf[1] & LEN7_BITS;
  bool masked = (buf[1] & MASK_BIT) != 0;
  if (wsb_opcode_is_control(opcode) && len7 > WSB_CONTROL_PAYLOAD_MAX)
    return WSB_ECTRL_LEN;
  err = check_extended_length(buf, len, len7);
  if (err != 0)
    return err;

  size_t ext = extended_length_size(len7);
  size_t header_len = 2 + ext + (masked ? 4 : 0);
  if (len < header_len)
    return WSB_PARTIAL;

  f->payload_len = ext != 0 ? read_be(buf + 2, ext) : len7;
  if (masked)
    memcpy(f->mask, buf + 2 + ext, 4);
  else
    memset(f->mask, 0, 4);
  f->header_len = (uint8_t)header_len;
  f->opcode = opcode;
  f->fin = (buf[0] & FIN_BIT) != 0;
  f->masked = masked;
  f->rsv1 = (buf[0] & RSV1_BIT) != 0;
  return (ssize_t)header_len;
}

ssize_t wsb_frame_parse(struct wsb_frame *f, const uint8_t *buf, size_t len) {
  return parse(f, buf, len, false);
}

static int check_masking(const struct wsb_frame *f, bool from_client) {
  if (from_client && !f->masked)
    return WSB_EUNMASKED;
  if (!from_client && f->masked)
    return WSB_EMASKED;
  return 0;
}

/* Compared by subtraction so a message near UINT64_MAX cannot wrap past the limit. */
static bool exceeds_limit(uint64_t so_far, uint64_t more, uint64_t max_message) {
  return max_message != 0 && (so_far > max_message || more > max_message - so_far);
}

/* Without a limit the running total saturates instead of wrapping. */
static uint64_t add_saturating(uint64_t a, uint64_t b) {
  return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

int wsb_frame_check(struct wsb_msg_state *st, const struct wsb_frame *f, bool from_client,
                    uint64_t max_message) {
  int err = check_masking(f, from_client);
  if (err != 0)
    return err;
  if (f->rsv1 && (!st->rsv1_ok || f->opcode == WSB_OP_CONT || wsb_opcode_is_control(f->opcode)))
    return WSB_ERSV;
  if (wsb_opcode_is_control(f->opcode))
    return 0;

  uint64_t so_far;
  uint8_t opcode;
  if (f->opcode == WSB_OP_CONT) {
    if (st->open_opcode == 0)
      return WSB_ECONT;
    so_far = st->msg_len;
    opcode = st->open_opcode;
  } else if (f->opcode == WSB_OP_TEXT || f->opcode == WSB_OP_BINARY) {
    if (st->open_opcode != 0)
      return WSB_ENOT_CONT;
    so_far = 0;
    opcode = f->opcode;
  } else {
    return WSB_EOPCODE;
  }
  if (exceeds_limit(so_far, f->payload_len, max_message))
    return WSB_ETOO_BIG;

  if (f->opcode != WSB_OP_CONT)
    st->compressed = f->rsv1;
  if (f->fin) {
    st->open_opcode = 0;
    st->msg_len = 0;
  } else {
    st->open_opcode = opcode;
    st->msg_len = add_saturating(so_far, f->payload_len);
  }
  return 0;
}

ssize_t wsb_frame_next(struct wsb_msg_state *st, struct wsb_frame *f, const uint8_t *buf,
                       size_t len, bool from_client, uint64_t max_message, uint64_t whole_max) {
  ssize_t hl = parse(f, buf, len, st->rsv1_ok);
  if (hl < 0)
    return hl;
  uint64_t total = (uint64_t)hl + f->payload_len;
  bool compressed = f->rsv1 || (f->opcode == WSB_OP_CONT && st->open_opcode != 0 && st->compressed);
  bool waits =
      total > len && (wsb_opcode_is_control(f->opcode) || total <= whole_max || compressed);
  if (!waits) {
    int err = wsb_frame_check(st, f, from_client, max_message);
    return err != 0 ? err : hl;
  }
  /* Checked on a copy, so that it counts once: when it is whole. */
  struct wsb_msg_state scratch = *st;
  int err = wsb_frame_check(&scratch, f, from_client, max_message);
  return err != 0 ? err : WSB_PARTIAL;
}

uint16_t wsb_frame_error_close_code(int err) {
  switch (err) {
  case WSB_ERSV:
  case WSB_EOPCODE:
  case WSB_EUNMASKED:
  case WSB_EMASKED:
  case WSB_ECTRL_LEN:
  case WSB_ECTRL_FRAG:
  case WSB_ELEN_ENCODING:
  case WSB_ELEN_MSB:
  case WSB_ECONT:
  case WSB_ENOT_CONT:
  case WSB_ECLOSE_LEN:
  case WSB_ECLOSE_CODE:
    return WSB_CLOSE_PROTOCOL_ERROR;
  case WSB_EUTF8:
  case WSB_EINFLATE:
    return WSB_CLOSE_INVALID_DATA;
  case WSB_ETOO_BIG:
    return WSB_CLOSE_TOO_BIG;
  default:
    return WSB_CLOSE_INTERNAL;
  }
}

size_t wsb_frame_header_write(uint8_t *out, bool fin, uint8_t opcode, uint64_t payload_len,
                              const uint8_t *mask) {
  size_t n = 2;
  out[0] = (uint8_t)((fin ? FIN_BIT : 0) | (opcode & OPCODE_BITS));
  out[1] = mask != NULL ? MASK_BIT : 0;
  if (payload_len < LEN_16BIT_MIN) {
    out[1] |= (uint8_t)payload_len;
  } else if (payload_len < LEN_64BIT_MIN) {
    out[1] |= LEN7_16BIT;
    write_be(out + 2, payload_len, 2);
    n += 2;
  } else {
    out[1] |= LEN7_64BIT;
    write_be(out + 2, payload_len, 8);
    n += 8;
  }
  if (mask != NULL) {
    memcpy(out + n, mask, 4);
    n += 4;
  }
  return n;
}

/*
 * The head is masked byte by byte up to an 8-byte boundary, then whole words
 * with the key repeated twice (rotated to the phase reached), then the tail.
 * memcpy keeps the word loads free of alignment and aliasing trouble; compilers
 * turn it into plain loads.
 */
void wsb_mask_apply(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t pos) {
  size_t phase = (size_t)(pos & 3);
  size_t head = (8 - ((uintptr_t)data & 7)) & 7;
  size_t i = 0;
  if (head > len)
    head = len;
  for (; i < head; i++)
    data[i] ^= mask[(phase + i) & 3];

  if (len - i >= 8) {
    uint8_t key8[8];
    uint64_t key;
    for (size_t j = 0; j < 8; j++)
      key8[j] = mask[(phase + i + j) & 3];
    memcpy(&key, key8, sizeof(key));
    for (; len - i >= 8; i += 8) {
      uint64_t word;
      memcpy(&word, data + i, sizeof(word));
      word ^= key;
      memcpy(data + i, &word, sizeof(word));
    }
  }

  for (; i < len; i++)
    data[i] ^= mask[(phase + i) & 3];
}

bool wsb_close_code_is_valid(uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

bool wsb_close_code_sendable(unsigned long code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1009) ||
         (code >= 1011 && code <= 1014) || (code >= 3000 && code <= 4999);
}

int wsb_close_code_from_text(const char *s, size_t len, uint16_t *code) {
  unsigned long v = 0;
  if (len == 0 || len > 5)
    return WSB_ECLOSE_CODE;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return WSB_ECLOSE_CODE;
    v = v * 10 + (unsigned long)(s[i] - '0');
  }
  if (!wsb_close_code_sendable(v))
    return WSB_ECLOSE_CODE;
  *code = (uint16_t)v;
  return 0;
}

int wsb_close_reason_check(const char *s, size_t len) {
  if (len > WSB_CLOSE_REASON_MAX)
    return -E2BIG;
  if (memchr(s, '\0', len) != NULL)
    return -EINVAL;
  return wsb_utf8_valid((const uint8_t *)s, len) ? 0 : WSB_EUTF8;
}

int wsb_close_parse(const uint8_t *payload, size_t len, uint16_t *code, const uint8_t **reason,
                    size_t *reason_len) {
  if (len == 0) {
    *code = WSB_CLOSE_NO_STATUS;
    *reason = payload;
    *reason_len = 0;
    return 0;
  }
  if (len == 1)
    return WSB_ECLOSE_LEN;
  uint16_t c = (uint16_t)read_be(payload, 2);
  if (!wsb_close_code_is_valid(c))
    return WSB_ECLOSE_CODE;
  if (!wsb_utf8_valid(payload + 2, len - 2))
    return WSB_EUTF8;
  *code = c;
  *reason = payload + 2;
  *reason_len = len - 2;
  return 0;
}

/* Backs up over continuation bytes so the cut never splits a character. */
static size_t utf8_cut(const uint8_t *s, size_t len, size_t max) {
  if (len <= max)
    return len;
  size_t cut = max;
  while (cut > 0 && (s[cut] & 0xC0) == 0x80)
    cut--;
  return cut;
}

size_t wsb_close_build(uint8_t *out, uint16_t code, const char *reason, size_t reason_len) {
  if (code == WSB_CLOSE_NO_STATUS)
    return 0;
  write_be(out, code, 2);
  if (reason_len == 0)
    return 2;
  size_t n = utf8_cut((const uint8_t *)reason, reason_len, WSB_CLOSE_REASON_MAX);
  memcpy(out + 2, reason, n);
  return 2 + n;
}
