/* wsbal-echo's frame engine: unmasks client frames in place and lays their echoes out in the same
 * buffer. */
#include "echo.h"

#include <string.h>

#include "errors.h"

/*
 * Where the output goes. Each echoed frame is no longer than the input it
 * answers (a server header is at least four bytes shorter than the masked
 * client header), so the output can trail the input through the buffer and
 * frames from one read end up contiguous, ready for a single write. The first
 * piece of a read is placed so that it ends where its input ended: a payload
 * then stays where it is and only its header moves into the bytes before it,
 * which at the start of a read is the headroom. Later pieces follow the
 * previous one, which moves small payloads by a few bytes.
 */
static void out_put(struct wsb_echo_out *o, uint8_t *in_end, const uint8_t *hdr, size_t hl,
                    const uint8_t *payload, size_t n) {
  uint8_t *dst = o->start == NULL ? in_end - (hl + n) : o->end;
  if (o->start == NULL)
    o->start = dst;
  memmove(dst + hl, payload, n);
  memcpy(dst, hdr, hl);
  o->end = dst + hl + n;
}

static void out_frame(struct wsb_echo_out *o, uint8_t *in_end, bool fin, uint8_t opcode,
                      const uint8_t *payload, size_t n) {
  uint8_t hdr[WSB_FRAME_HEADER_MAX];
  size_t hl = wsb_frame_header_write(hdr, fin, opcode, n, NULL);
  out_put(o, in_end, hdr, hl, payload, n);
}

/*
 * Ends the echo with a close frame of our own. The input after `at` is
 * abandoned, so the frame may overwrite it and spill into the tailroom.
 */
static int out_error_close(struct wsb_echo_ws *ws, struct wsb_echo_out *o, uint8_t *at,
                           uint16_t code, const char *reason) {
  uint8_t payload[WSB_CONTROL_PAYLOAD_MAX];
  size_t n = wsb_close_build(payload, code, reason, strlen(reason));
  if (o->start == NULL)
    o->start = o->end = at;
  out_frame(o, at, true, WSB_OP_CLOSE, payload, n);
  ws->close_code = code;
  return WSB_ECHO_CLOSED;
}

static int out_frame_error(struct wsb_echo_ws *ws, struct wsb_echo_out *o, uint8_t *at, int err) {
  return out_error_close(ws, o, at, wsb_frame_error_close_code(err), wsb_strerror(err));
}

/*
 * Echoes n payload bytes of the current data frame as one fragment. Text is
 * validated before it goes out, so a bad byte is never echoed and the close
 * 1007 follows complete frames.
 */
static int echo_payload(struct wsb_echo_ws *ws, uint8_t *payload, size_t n,
                        struct wsb_echo_out *o) {
  wsb_mask_apply(payload, n, ws->mask, ws->pos);
  ws->pos += n;
  ws->remaining -= n;
  bool msg_end = ws->remaining == 0 && ws->fin;
  if (ws->opcode == WSB_OP_TEXT &&
      (wsb_utf8_feed(&ws->utf8, payload, n) != 0 || (msg_end && !wsb_utf8_complete(&ws->utf8))))
    return out_frame_error(ws, o, payload, WSB_EUTF8);
  /* An empty fragment in the middle of a message says nothing; the last one carries FIN. */
  if (n == 0 && !msg_end)
    return 0;
  out_frame(o, payload + n, msg_end, ws->out_open ? WSB_OP_CONT : ws->opcode, payload, n);
  ws->out_open = !msg_end;
  return 0;
}

static void begin_data_frame(struct wsb_echo_ws *ws, const struct wsb_frame *f) {
  if (f->opcode != WSB_OP_CONT) {
    ws->opcode = f->opcode;
    ws->out_open = false;
    memset(&ws->utf8, 0, sizeof(ws->utf8));
  }
  ws->fin = f->fin;
  ws->remaining = f->payload_len;
  ws->pos = 0;
  memcpy(ws->mask, f->mask, sizeof(ws->mask));
}

/* A close is answered with its own code and reason, or 1000 when it had none. */
static int echo_close(struct wsb_echo_ws *ws, uint8_t *payload, size_t n, uint8_t *in_end,
                      struct wsb_echo_out *o) {
  uint16_t code;
  const uint8_t *reason;
  size_t reason_len;
  if (wsb_close_parse(payload, n, &code, &reason, &reason_len) != 0)
    return out_error_close(ws, o, in_end, WSB_CLOSE_PROTOCOL_ERROR, "invalid close payload");
  if (code == WSB_CLOSE_NO_STATUS) {
    uint8_t normal[2];
    size_t len = wsb_close_build(normal, WSB_CLOSE_NORMAL, "", 0);
    out_frame(o, in_end, true, WSB_OP_CLOSE, normal, len);
    ws->close_code = WSB_CLOSE_NORMAL;
  } else {
    out_frame(o, in_end, true, WSB_OP_CLOSE, payload, n);
    ws->close_code = code;
  }
  return WSB_ECHO_CLOSED;
}

/* Handles a whole control frame whose payload (still masked) is at payload. */
static int echo_control(struct wsb_echo_ws *ws, const struct wsb_frame *f, uint8_t *payload,
                        uint8_t *in_end, struct wsb_echo_out *o) {
  size_t n = (size_t)f->payload_len;
  wsb_mask_apply(payload, n, f->mask, 0);
  switch (f->opcode) {
  case WSB_OP_PING:
    out_frame(o, in_end, true, WSB_OP_PONG, payload, n);
    return 0;
  case WSB_OP_CLOSE:
    return echo_close(ws, payload, n, in_end, o);
  default: /* pongs answer nothing we sent */
    return 0;
  }
}

static void save_partial(struct wsb_echo_ws *ws, const uint8_t *p, size_t n) {
  memcpy(ws->partial + ws->partial_len, p, n);
  ws->partial_len = (uint8_t)(ws->partial_len + n);
}

/*
 * Completes the frame whose first bytes the previous read left in
 * ws->partial, taking what it needs from *pp. Only a header or a control
 * frame (at most 139 bytes) is ever saved, so that is all that gets copied.
 */
static int feed_partial(struct wsb_echo_ws *ws, uint8_t **pp, uint8_t *end, uint64_t max_message,
                        struct wsb_echo_out *o) {
  size_t old = ws->partial_len;
  size_t room = sizeof(ws->partial) - old;
  size_t take = (size_t)(end - *pp) < room ? (size_t)(end - *pp) : room;
  memcpy(ws->partial + old, *pp, take);
  size_t have = old + take;

  struct wsb_frame f;
  ssize_t hl = wsb_frame_next(&ws->msg, &f, ws->partial, have, true, max_message, 0);
  if (hl == WSB_PARTIAL) {
    ws->partial_len = (uint8_t)have;
    *pp += take;
    return 0;
  }
  if (hl < 0)
    return out_frame_error(ws, o, *pp, (int)hl);
  ws->partial_len = 0;
  if (wsb_opcode_is_control(f.opcode)) {
    *pp += (size_t)hl + f.payload_len - old;
    return echo_control(ws, &f, ws->partial + hl, *pp, o);
  }
  /* A data header was saved only while incomplete, so part of it is in this read. */
  *pp += (size_t)hl - old;
  begin_data_frame(ws, &f);
  return f.payload_len == 0 ? echo_payload(ws, *pp, 0, o) : 0;
}

/* Handles the frame starting at *pp, or saves its beginning when it is cut off. */
static int feed_frame(struct wsb_echo_ws *ws, uint8_t **pp, uint8_t *end, uint64_t max_message,
                      struct wsb_echo_out *o) {
  uint8_t *p = *pp;
  size_t avail = (size_t)(end - p);
  struct wsb_frame f;
  ssize_t hl = wsb_frame_next(&ws->msg, &f, p, avail, true, max_message, 0);
  if (hl == WSB_PARTIAL) {
    save_partial(ws, p, avail);
    *pp = end;
    return 0;
  }
  if (hl < 0)
    return out_frame_error(ws, o, p, (int)hl);
  if (wsb_opcode_is_control(f.opcode)) {
    *pp = p + hl + f.payload_len;
    return echo_control(ws, &f, p + hl, *pp, o);
  }
  *pp = p + hl;
  begin_data_frame(ws, &f);
  return f.payload_len == 0 ? echo_payload(ws, *pp, 0, o) : 0;
}

int wsb_echo_ws_feed(struct wsb_echo_ws *ws, uint8_t *buf, size_t len, uint64_t max_message,
                     struct wsb_echo_out *out) {
  uint8_t *p = buf;
  uint8_t *end = buf + len;
  int r = 0;
  out->start = out->end = NULL;
  if (ws->partial_len > 0)
    r = feed_partial(ws, &p, end, max_message, out);
  while (r == 0 && p < end) {
    if (ws->remaining > 0) {
      size_t n = (size_t)(end - p) < ws->remaining ? (size_t)(end - p) : (size_t)ws->remaining;
      r = echo_payload(ws, p, n, out);
      p += n;
    } else {
      r = feed_frame(ws, &p, end, max_message, out);
    }
  }
  return r;
}
