/* Fuzz target for common/frame.c and common/utf8.c: parses a stream of frames and checks
 * invariants. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "fuzz.h"
#include "frame.h"
#include "utf8.h"

/* What one direction of a connection carries between frames. */
struct stream {
  struct wsb_msg_state msg;
  struct wsb_utf8 text; /* the open text message, when msg.open_opcode is TEXT */
  bool from_client;
  uint64_t max_message;
};

static bool is_parse_error(ssize_t r) {
  switch (r) {
  case WSB_ERSV:
  case WSB_EOPCODE:
  case WSB_ECTRL_LEN:
  case WSB_ECTRL_FRAG:
  case WSB_ELEN_ENCODING:
  case WSB_ELEN_MSB:
    return true;
  default:
    return false;
  }
}

/* A valid header has no prefix that is anything but WSB_PARTIAL, and re-encodes to itself. */
static void check_header(const struct wsb_frame *f, const uint8_t *buf, size_t header_len) {
  REQUIRE(header_len == f->header_len);
  REQUIRE(header_len >= 2 && header_len <= WSB_FRAME_HEADER_MAX);
  REQUIRE(!wsb_opcode_is_control(f->opcode) || (f->fin && f->payload_len <= 125));
  REQUIRE(f->payload_len <= 0x7fffffffffffffffull);
  for (size_t k = 0; k < header_len; k++) {
    struct wsb_frame g;
    REQUIRE(wsb_frame_parse(&g, buf, k) == WSB_PARTIAL);
  }
  uint8_t out[WSB_FRAME_HEADER_MAX];
  size_t n =
      wsb_frame_header_write(out, f->fin, f->opcode, f->payload_len, f->masked ? f->mask : NULL);
  REQUIRE(n == header_len);
  REQUIRE(memcmp(out, buf, n) == 0);
}

/* Unmasks in two pieces split at split and compares with a byte-by-byte reference. */
static void unmask(uint8_t *scratch, const uint8_t *payload, size_t len, const struct wsb_frame *f,
                   size_t split) {
  memcpy(scratch, payload, len);
  if (!f->masked)
    return;
  if (split > len)
    split = len;
  wsb_mask_apply(scratch, split, f->mask, 0);
  wsb_mask_apply(scratch + split, len - split, f->mask, split);
  for (size_t i = 0; i < len; i++)
    REQUIRE(scratch[i] == (payload[i] ^ f->mask[i % 4]));
}

static void check_close(const uint8_t *payload, size_t len) {
  uint16_t code;
  const uint8_t *reason;
  size_t reason_len;
  int r = wsb_close_parse(payload, len, &code, &reason, &reason_len);
  if (r != 0) {
    REQUIRE(r == WSB_ECLOSE_LEN || r == WSB_ECLOSE_CODE || r == WSB_EUTF8);
    REQUIRE(r != WSB_ECLOSE_LEN || len == 1);
    REQUIRE(wsb_frame_error_close_code(r) != WSB_CLOSE_INTERNAL);
    return;
  }
  if (len == 0) {
    REQUIRE(code == WSB_CLOSE_NO_STATUS && reason_len == 0);
    return;
  }
  REQUIRE(wsb_close_code_is_valid(code));
  REQUIRE(reason == payload + 2 && reason_len == len - 2);
  /* Rebuilding what was parsed gives the same bytes: the reason already fits. */
  uint8_t out[WSB_CONTROL_PAYLOAD_MAX];
  size_t n = wsb_close_build(out, code, (const char *)reason, reason_len);
  REQUIRE(n == len && memcmp(out, payload, n) == 0);
}

/* Feeds a text message's bytes; incremental and whole-buffer validation must agree. */
static void check_text(struct stream *s, const struct wsb_frame *f, const uint8_t *payload,
                       size_t len, bool whole_frame, uint8_t open_before) {
  bool text = f->opcode == WSB_OP_TEXT || (f->opcode == WSB_OP_CONT && open_before == WSB_OP_TEXT);
  if (!text)
    return;
  if (f->opcode == WSB_OP_TEXT)
    s->text = (struct wsb_utf8){0};
  int r = wsb_utf8_feed(&s->text, payload, len);
  REQUIRE(r == 0 || r == WSB_EUTF8);
  if (f->opcode == WSB_OP_TEXT && f->fin && whole_frame)
    REQUIRE((r == 0 && wsb_utf8_complete(&s->text)) == wsb_utf8_valid(payload, len));
}

static bool same_state(const struct wsb_msg_state *a, const struct wsb_msg_state *b) {
  return a->open_opcode == b->open_opcode && a->msg_len == b->msg_len;
}

/* Handles one frame at buf; returns the bytes it spans, or 0 when the stream must stop. */
static size_t one_frame(struct stream *s, const uint8_t *buf, size_t len, uint8_t *scratch) {
  /* The joined step, with the limit as whole_max too, must agree with the two steps below. */
  struct wsb_msg_state joined = s->msg;
  struct wsb_frame g;
  ssize_t n = wsb_frame_next(&joined, &g, buf, len, s->from_client, s->max_message, s->max_message);
  struct wsb_frame f;
  ssize_t r = wsb_frame_parse(&f, buf, len);
  REQUIRE(r != 0);
  if (r < 0)
    REQUIRE(n == r && same_state(&joined, &s->msg));
  if (r == WSB_PARTIAL)
    return 0;
  if (r < 0) {
    REQUIRE(is_parse_error(r));
    REQUIRE(wsb_frame_error_close_code((int)r) == WSB_CLOSE_PROTOCOL_ERROR);
    return 0;
  }
  size_t header_len = (size_t)r;
  REQUIRE(header_len <= len);
  check_header(&f, buf, header_len);

  struct wsb_msg_state before = s->msg;
  int c = wsb_frame_check(&s->msg, &f, s->from_client, s->max_message);
  uint64_t total = header_len + f.payload_len;
  bool waits = total > len && (wsb_opcode_is_control(f.opcode) || total <= s->max_message);
  if (c != 0)
    REQUIRE(n == c);
  else if (waits)
    REQUIRE(n == WSB_PARTIAL);
  else
    REQUIRE(n == r && g.payload_len == f.payload_len);
  struct wsb_msg_state taken = c == 0 && !waits ? s->msg : before;
  REQUIRE(same_state(&joined, &taken));
  if (c != 0) {
    uint16_t code = wsb_frame_error_close_code(c);
    REQUIRE(code == WSB_CLOSE_PROTOCOL_ERROR || (c == WSB_ETOO_BIG && code == WSB_CLOSE_TOO_BIG));
    REQUIRE(s->msg.open_opcode == before.open_opcode && s->msg.msg_len == before.msg_len);
    return 0;
  }
  REQUIRE(s->msg.open_opcode == 0 || s->msg.open_opcode == WSB_OP_TEXT ||
          s->msg.open_opcode == WSB_OP_BINARY);
  REQUIRE(s->max_message == 0 || s->msg.msg_len <= s->max_message);
  if (wsb_opcode_is_control(f.opcode))
    REQUIRE(s->msg.open_opcode == before.open_opcode && s->msg.msg_len == before.msg_len);

  size_t avail = len - header_len;
  bool whole = f.payload_len <= avail;
  size_t plen = whole ? (size_t)f.payload_len : avail;
  const uint8_t *payload = buf + header_len;
  unmask(scratch, payload, plen, &f, f.mask[0] % (plen + 1));
  if (f.opcode == WSB_OP_CLOSE && whole)
    check_close(scratch, plen);
  check_text(s, &f, scratch, plen, whole, before.open_opcode);
  return whole ? header_len + plen : 0;
}

/*
 * Byte 0 picks the sender (bit 0) and the message limit (the rest: 0 means
 * none, else a multiple of 16), so both masking rules and the size check are
 * reached; the remaining bytes are frames back to back.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  struct stream s = {.from_client = (data[0] & 1) != 0,
                     .max_message = (uint64_t)(data[0] >> 1) * 16};
  size_t off = 1;
  uint8_t *scratch = malloc(size);
  REQUIRE(scratch != NULL);
  while (off < size) {
    size_t used = one_frame(&s, data + off, size - off, scratch);
    if (used == 0)
      break;
    REQUIRE(used <= size - off);
    off += used;
  }
  free(scratch);
  return 0;
}
