/* A leg's I/O: the write path with its high-water marks, reading, and wsbal's own frames. */
#include "leg.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_header.h"
#include "relay.h"
#include "session.h"
#include "tls_leg.h"
#include "uring.h"

struct write_req {
  uv_write_t req;
  struct wsb_leg *leg;
  size_t len;
  uint8_t data[];
};

static void on_write(uv_write_t *req, int status) {
  struct write_req *wr = (struct write_req *)req;
  struct wsb_leg *l = wr->leg;
  assert(l->queued >= wr->len);
  l->queued -= wr->len;
  free(wr);
  wsb__session_written(l, status);
}

int wsb__leg_write(struct wsb_leg *l, const uv_buf_t *bufs, unsigned nbufs) {
  if (l->tls != NULL)
    return wsb__tls_leg_write(l, bufs, nbufs);
  return wsb__leg_write_raw(l, bufs, nbufs);
}

int wsb__leg_write_raw(struct wsb_leg *l, const uv_buf_t *bufs, unsigned nbufs) {
  if (!l->open)
    return UV_EPIPE;
  size_t total = 0;
  for (unsigned i = 0; i < nbufs; i++)
    total += bufs[i].len;
  if (total == 0)
    return 0;
  if (l->io != NULL) {
    int rc = wsb_uring_write(l, bufs, nbufs);
    if (rc != 0)
      return rc;
    l->queued += total;
    if (l->queued > LEG_QUEUE_HIGH_WATER)
      wsb__leg_pause(l->peer);
    return 0;
  }
  /* uv_try_write refuses (UV_EAGAIN) while earlier writes are queued, which keeps order. */
  int n = uv_try_write((uv_stream_t *)&l->tcp, bufs, nbufs);
  if (n == UV_EAGAIN)
    n = 0;
  if (n < 0)
    return n;
  if ((size_t)n == total)
    return 0;

  size_t rest = total - (size_t)n;
  struct write_req *wr = malloc(sizeof(*wr) + rest);
  if (wr == NULL)
    return UV_ENOMEM;
  wr->leg = l;
  wr->len = rest;
  size_t skip = (size_t)n, used = 0;
  for (unsigned i = 0; i < nbufs; i++) {
    size_t len = bufs[i].len;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    memcpy(wr->data + used, bufs[i].base + skip, len - skip);
    used += len - skip;
    skip = 0;
  }
  uv_buf_t buf = uv_buf_init((char *)wr->data, (unsigned)rest);
  int rc = uv_write(&wr->req, (uv_stream_t *)&l->tcp, &buf, 1, on_write);
  if (rc != 0) {
    free(wr);
    return rc;
  }
  l->queued += rest;
  if (l->queued > LEG_QUEUE_HIGH_WATER)
    wsb__leg_pause(l->peer);
  return 0;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

void wsb__leg_stop_reading(struct wsb_leg *l) {
  if (l->open && l->reading) {
    l->reading = false;
    if (l->io != NULL)
      wsb_uring_read_stop(l);
    else
      uv_read_stop((uv_stream_t *)&l->tcp);
  }
}

void wsb__leg_pause(struct wsb_leg *l) {
  if (l->open && !l->paused) {
    l->paused = true;
    wsb__leg_stop_reading(l);
  }
}

void wsb__leg_resume(struct wsb_leg *l) {
  if (l->open && l->paused && !l->s->finishing)
    wsb__leg_start_reading(l);
}

/* A TLS leg reads ciphertext into the worker's TLS buffer; its plaintext goes where a plain
   leg's bytes would. A PROXY header is read before either. */
static void leg_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct wsb_leg *l = wsb__leg_of(h);
  if (wsb__proxy_header_waiting(l))
    *buf = wsb__proxy_header_buf(l);
  else if (l->tls != NULL)
    *buf = wsb__tls_leg_read_buf(l);
  else
    wsb__session_read_buf(l, buf);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  struct wsb_leg *l = wsb__leg_of((uv_handle_t *)stream);
  if (nread == 0 || l->s->state == S_CLOSED)
    return;
  if (wsb__proxy_header_waiting(l)) {
    wsb__proxy_header_read(l, nread); /* below TLS: the header comes first */
    return;
  }
  if (l->tls != NULL && nread > 0) {
    wsb__tls_leg_on_read(l, (const uint8_t *)buf->base, (size_t)nread);
    return;
  }
  if (wsb__tls_leg_handshaking(l))
    wsb__tls_leg_count_error(l, WSB_TLS_ERR_CLOSED); /* gone in the middle of the handshake */
  wsb__session_dispatch(l, nread, buf);
}

/* Bytes a client sent before its 101 wait with the rest of its early data until the relay
   starts; reading pauses meanwhile, so an impatient client cannot make us hold more. */
void wsb__leg_hold_early(struct wsb_leg *l, const uint8_t *data, size_t len) {
  uint8_t *p = realloc(l->pending, l->pending_len + len);
  if (p == NULL) {
    wsb__session_close(l->s, UV_ENOMEM);
    return;
  }
  memcpy(p + l->pending_len, data, len);
  l->pending = p;
  l->pending_len = l->pending_cap = l->pending_len + (uint32_t)len;
  wsb__leg_pause(l);
}

int wsb__leg_start_reading(struct wsb_leg *l) {
  l->paused = false;
  if (l->reading)
    return 0;
  if (l->io != NULL) {
    l->reading = true;
    wsb_uring_read_start(l);
    return 0;
  }
  int rc = uv_read_start((uv_stream_t *)&l->tcp, leg_alloc, on_read);
  if (rc == 0) {
    l->reading = true;
    wsb__tls_leg_resume(l); /* what the TLS leg holds already goes on as well */
  }
  return rc;
}

void wsb__leg_reset(struct wsb_leg *l) {
  wsb_uring_release(l); /* a new connection starts on libuv, or the ring adopts it anew */
  wsb__tls_leg_free(l);
  free(l->pending);
  wsb__relay_hold_free(l);
  l->pending = NULL;
  l->pending_len = l->pending_cap = 0;
  l->paused = l->close_received = l->close_sent = l->ping_outstanding = false;
  l->reading = false; /* a new connection, not reading yet */
  l->partial_out = l->stream_fin = l->read_done = false;
  l->msg = (struct wsb_msg_state){0};
  l->stream_left = 0;
}

void wsb__leg_close_now(struct wsb_leg *l) {
  wsb_uring_close_socket(l);
  l->open = false;
  l->reading = false;
  l->lingering = false;
  uv_close((uv_handle_t *)&l->tcp, wsb__session_handle_closed);
}

void wsb__leg_lose(struct wsb_leg *l) {
  if (!l->open || l->lingering)
    return;
  wsb__tls_leg_close_notify(l);
  wsb__leg_close_now(l);
}

/* Frames towards a backend are masked, as a client's must be (RFC 6455 5.3). */
int wsb__leg_send_frame(struct wsb_leg *to, uint8_t opcode, const uint8_t *payload, size_t len) {
  uint8_t frame[WSB_FRAME_HEADER_MAX + WSB_CONTROL_PAYLOAD_MAX];
  uint8_t mask[4];
  bool masked = !to->is_client;
  if (masked) {
    uint64_t r = wsb_worker_random(to->s->w);
    memcpy(mask, &r, sizeof(mask));
  }
  size_t hl = wsb_frame_header_write(frame, true, opcode, len, masked ? mask : NULL);
  memcpy(frame + hl, payload, len);
  if (masked)
    wsb_mask_apply(frame + hl, len, mask, 0);
  uv_buf_t b = uv_buf_init((char *)frame, (unsigned)(hl + len));
  return wsb__leg_write(to, &b, 1);
}

/* A frame may go into a leg only between frames of the stream already flowing into it. */
bool wsb__leg_can_inject(const struct wsb_leg *to) {
  return to->open && to->peer->stream_left == 0;
}

void wsb__leg_send_close(struct wsb_leg *to, uint16_t code, const char *reason) {
  if (to->close_sent || !wsb__leg_can_inject(to))
    return;
  uint8_t payload[WSB_CONTROL_PAYLOAD_MAX];
  size_t len = wsb_close_build(payload, code, reason, strlen(reason));
  to->close_sent = true;
  if (to->is_client)
    wsb__session_note_close(to->s, code, reason, strlen(reason));
  wsb__leg_send_frame(to, WSB_OP_CLOSE, payload, len);
}
