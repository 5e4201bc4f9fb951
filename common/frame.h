/* WebSocket frame codec (RFC 6455 section 5): pure, incremental, allocation-free. */
#ifndef WSB_FRAME_H
#define WSB_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum wsb_opcode {
  WSB_OP_CONT = 0x0,
  WSB_OP_TEXT = 0x1,
  WSB_OP_BINARY = 0x2,
  WSB_OP_CLOSE = 0x8,
  WSB_OP_PING = 0x9,
  WSB_OP_PONG = 0xA,
};

#define WSB_FRAME_HEADER_MAX    14 /* 2 + 8 bytes of length + 4 bytes of mask */
#define WSB_CONTROL_PAYLOAD_MAX 125
#define WSB_CLOSE_REASON_MAX    123 /* control payload minus the two code bytes */

/* Close codes wsbal itself sends. */
enum wsb_close_code {
  WSB_CLOSE_NORMAL = 1000,
  WSB_CLOSE_GOING_AWAY = 1001,
  WSB_CLOSE_PROTOCOL_ERROR = 1002,
  WSB_CLOSE_UNSUPPORTED = 1003,
  WSB_CLOSE_NO_STATUS = 1005, /* never on the wire: an empty close payload */
  WSB_CLOSE_ABNORMAL = 1006,  /* never on the wire: connection lost without a close */
  WSB_CLOSE_INVALID_DATA = 1007,
  WSB_CLOSE_POLICY = 1008,
  WSB_CLOSE_TOO_BIG = 1009,
  WSB_CLOSE_INTERNAL = 1011,
  WSB_CLOSE_RESTART = 1012,
  WSB_CLOSE_TRY_AGAIN = 1013,
};

/* One parsed frame header. */
struct wsb_frame {
  uint64_t payload_len;
  uint8_t mask[4];    /* valid when masked */
  uint8_t header_len; /* 2..14: bytes before the payload */
  uint8_t opcode;
  bool fin;
  bool masked;
  bool rsv1; /* only where permessage-deflate was negotiated (wsb_msg_state.rsv1_ok) */
};

static inline bool wsb_opcode_is_control(uint8_t opcode) {
  return (opcode & 0x8) != 0;
}

/*
 * Parses the frame header at buf. Returns the header length (> 0) and fills f,
 * WSB_PARTIAL when len is too short to hold the whole header, or a negative
 * WSB_E* code for a header that breaks a rule independent of who sent it:
 * reserved bits (RSV1 too: only wsb_frame_next reads it, where compression was negotiated),
 * unknown opcode, fragmented or over-long control frame, non-minimal or 63-bit-overflowing
 * length.
 * Each error is returned as soon as the bytes deciding it are present, in
 * header order: byte 0 gives WSB_ERSV, then WSB_EOPCODE, then WSB_ECTRL_FRAG;
 * byte 1 WSB_ECTRL_LEN; byte 2 WSB_ELEN_MSB; the end of the extended length
 * WSB_ELEN_ENCODING. f is written only when a header length is returned.
 * Stateless: call again with more bytes after WSB_PARTIAL.
 */
ssize_t wsb_frame_parse(struct wsb_frame *f, const uint8_t *buf, size_t len);

/* Fragmentation state of one direction of a connection; starts zeroed. */
struct wsb_msg_state {
  uint64_t msg_len;    /* payload bytes of the open data message so far */
  uint8_t open_opcode; /* WSB_OP_TEXT/BINARY while a fragmented message is open, else 0 */
  bool rsv1_ok;        /* set by the owner: permessage-deflate was negotiated (RFC 7692) */
  bool compressed;     /* the message of the last data frame taken has RSV1 on its first frame */
};

/*
 * Checks a parsed header against the rules that depend on the sender and on
 * the frames before it: masking (from_client frames must be masked, server
 * frames must not), continuation order, and message size (max_message bytes;
 * 0 = no limit). Updates st when the frame is accepted. RSV1 (only parsed with st->rsv1_ok)
 * may start a data message, never sit on a control or continuation frame (RFC 7692 6.1).
 * Returns 0 or WSB_E*.
 */
int wsb_frame_check(struct wsb_msg_state *st, const struct wsb_frame *f, bool from_client,
                    uint64_t max_message);

/*
 * The step every reader of a frame stream takes: wsb_frame_parse, then wsb_frame_check against st,
 * each error returned as soon as the header shows it. A control frame, and any frame of at most
 * whole_max bytes with its header, is taken only once all of it is in buf (WSB_PARTIAL until
 * then; 0 streams every data frame from its header on); so is every frame of a compressed
 * message, which is inflated whole. With st->rsv1_ok, RSV1 is read rather than refused.
 * st changes only when the frame is taken,
 * so a caller that gets WSB_PARTIAL calls again with more bytes and the frame counts once.
 * Returns the header length with f filled, WSB_PARTIAL, or the WSB_E* code of either step.
 */
ssize_t wsb_frame_next(struct wsb_msg_state *st, struct wsb_frame *f, const uint8_t *buf,
                       size_t len, bool from_client, uint64_t max_message, uint64_t whole_max);

/* The close code a peer earns for a WSB_E* framing error (1002, 1007 or 1009); 1011 for others. */
uint16_t wsb_frame_error_close_code(int err);

/*
 * Writes a frame header to out (at least WSB_FRAME_HEADER_MAX bytes) using
 * the minimal length encoding; mask may be NULL for an unmasked frame.
 * Returns the header length.
 */
size_t wsb_frame_header_write(uint8_t *out, bool fin, uint8_t opcode, uint64_t payload_len,
                              const uint8_t *mask);

/*
 * XORs data with the masking key, word at a time. pos is the offset of data[0]
 * within the frame's payload, so a payload may be (un)masked in pieces.
 */
void wsb_mask_apply(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t pos);

/* True for a close code that may appear in a close frame (1000-1003, 1007-1014, 3000-4999). */
bool wsb_close_code_is_valid(uint16_t code);

/*
 * True for a code wsbal may put in a close frame it sends as an endpoint, the set SPEC.md gives
 * for DELETE /api/v1/sessions/{id}: 1000-1003, 1007-1009, 1011-1014, 3000-4999. Unlike
 * wsb_close_code_is_valid it leaves out 1010, which only a client sends (an extension the server
 * did not agree to), and takes any number so that a value from outside cannot wrap into the set.
 */
bool wsb_close_code_sendable(unsigned long code);

/*
 * Reads a close code asked for as text (the admin API's ?code=): 1 to 5 decimal digits, nothing
 * else, naming a sendable code. Returns 0 with *code set, or WSB_ECLOSE_CODE.
 */
int wsb_close_code_from_text(const char *s, size_t len, uint16_t *code);

/*
 * Checks a close reason asked for (already percent-decoded): valid UTF-8 without NUL bytes, and at
 * most WSB_CLOSE_REASON_MAX bytes so the close payload fits in 125. Returns 0, -E2BIG when
 * too long, WSB_EUTF8 when not UTF-8, -EINVAL for a NUL byte.
 */
int wsb_close_reason_check(const char *s, size_t len);

/*
 * Parses an unmasked close payload. An empty payload gives code 1005 and an
 * empty reason. Returns 0, WSB_ECLOSE_LEN, WSB_ECLOSE_CODE or WSB_EUTF8 (reason);
 * the outputs are written only on success, and reason points into payload.
 */
int wsb_close_parse(const uint8_t *payload, size_t len, uint16_t *code, const uint8_t **reason,
                    size_t *reason_len);

/*
 * Builds a close payload (code, then the reason cut to WSB_CLOSE_REASON_MAX
 * bytes at a UTF-8 character boundary) into out (at least
 * WSB_CONTROL_PAYLOAD_MAX bytes). Returns its length. Code 1005 builds the
 * empty payload it stands for; reason must be UTF-8 and may be NULL when
 * reason_len is 0.
 */
size_t wsb_close_build(uint8_t *out, uint16_t code, const char *reason, size_t reason_len);

#endif
