/* wsbal-load's connections: connect, upgrade, masked frames out, checked frames in, closing. */
#include "load.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "errors.h"

#define CONNECT_TIMEOUT_NS (10ull * 1000000000ull)
#define CLOSE_TIMEOUT_NS   (3ull * 1000000000ull)
#define HEAD_MAX           4096 /* a 101 answer longer than this is refused */

static bool ctx_text(const struct wsb_load_conn *c) {
  return c->ctx->o.text;
}

/* xorshift64*: masks only need to be unpredictable enough that no proxy can rely on them. */
static uint32_t next_mask(struct wsb_load_ctx *ctx) {
  uint64_t x = ctx->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  ctx->rng = x;
  return (uint32_t)((x * 0x2545f4914f6cdd1dull) >> 32);
}

void wsb_load_conn_init(struct wsb_load_ctx *ctx, struct wsb_load_conn *c, uint32_t id) {
  memset(c, 0, sizeof(*c));
  c->ctx = ctx;
  c->id = id;
  c->state = C_IDLE;
}

void wsb_load_conn_free(struct wsb_load_conn *c) {
  wsb_load_tls_free(c);
  free(c->fill);
  free(c->wbuf);
  free(c->head_buf);
  c->fill = c->wbuf = NULL;
  c->head_buf = NULL;
}

/*
 * Room for everything one connection can have queued: the request head, the
 * messages it may have outstanding, and a few control frames. In echo mode
 * the closed loop bounds the messages by the depth; in rate mode a full
 * buffer simply makes the next due messages wait (and count as late).
 */
size_t wsb_load_conn_buffer_size(const struct wsb_load_opts *o) {
  size_t frame = (size_t)o->size + WSB_FRAME_HEADER_MAX;
  size_t control = 4 * (WSB_FRAME_HEADER_MAX + WSB_CONTROL_PAYLOAD_MAX);
  size_t head = 512 + WSB_HOST_MAX + WSB_PATH_MAX;
  size_t msgs;
  switch (o->mode) {
  case MODE_ECHO:
    msgs = (size_t)o->depth * frame;
    break;
  case MODE_RATE:
    msgs = frame * 4 > 65536 ? frame * 4 : 65536;
    break;
  case MODE_CONNECT:
    msgs = frame;
    break;
  default:
    msgs = 0;
    break;
  }
  return msgs + control + head;
}

static uint8_t *out_reserve(struct wsb_load_conn *c, size_t n) {
  if (c->fill_len + n > c->cap)
    return NULL;
  return c->fill + c->fill_len;
}

static void on_write_done(uv_write_t *req, int status);

/* Writes what the kernel takes at once: how much, or -1 once the connection is aborted. */
static ssize_t write_now(struct wsb_load_conn *c, uint8_t *p, size_t len) {
  uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
  int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (n == UV_EAGAIN)
    return 0;
  if (n < 0) {
    wsb_load_conn_abort(c, ERR_IO);
    return -1;
  }
  return n;
}

/* Queues the rest; p must stay untouched until on_write_done. */
static void write_later(struct wsb_load_conn *c, uint8_t *p, size_t len) {
  uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
  if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_write_done) != 0) {
    wsb_load_conn_abort(c, ERR_IO);
    return;
  }
  c->writing = true;
}

/* wss: fill is encrypted at once; the ciphertext leaves through wbuf, one write at a time. */
static void flush_tls(struct wsb_load_conn *c) {
  if (wsb_load_tls_encrypt(c) != 0) {
    wsb_load_conn_abort(c, ERR_IO);
    return;
  }
  while (!c->writing) {
    size_t len = wsb_load_tls_take(c, c->wbuf, c->cap);
    if (len == 0)
      return;
    ssize_t n = write_now(c, c->wbuf, len);
    if (n < 0)
      return;
    if ((size_t)n < len)
      write_later(c, c->wbuf + n, len - (size_t)n);
  }
}

void wsb_load_conn_flush(struct wsb_load_conn *c) {
  if (c->ssl != NULL && !c->writing && c->state != C_SHUT && c->state != C_IDLE &&
      c->state != C_CONNECTING) {
    flush_tls(c);
    return;
  }
  if (c->writing || c->fill_len == 0 || c->state == C_SHUT || c->state == C_IDLE ||
      c->state == C_CONNECTING)
    return;
  ssize_t n = write_now(c, c->fill, c->fill_len);
  if (n < 0)
    return;
  if ((size_t)n == c->fill_len) {
    c->fill_len = 0;
    return;
  }
  /* The rest goes out from this buffer, so new frames go to the other one meanwhile. */
  uint8_t *rest = c->fill;
  size_t off = (size_t)n, len = c->fill_len - (size_t)n;
  c->fill = c->wbuf;
  c->wbuf = rest;
  c->fill_len = 0;
  write_later(c, rest + off, len);
}

static void on_write_done(uv_write_t *req, int status) {
  struct wsb_load_conn *c = wsb_container_of(req, struct wsb_load_conn, write_req);
  c->writing = false;
  if (status == UV_ECANCELED)
    return;
  if (status < 0) {
    wsb_load_conn_abort(c, ERR_IO);
    return;
  }
  struct wsb_load_ctx *ctx = c->ctx;
  /* Room was made: a rate schedule that had to wait catches up now. */
  if (ctx->o.mode == MODE_RATE && c->state == C_OPEN)
    wsb_load_conn_pump(c, ctx->sched.next_m, wsb_load_now_ns());
  wsb_load_conn_flush(c);
}

/* Masks payload in place under a fresh key and writes the header before it. */
static size_t frame_put(struct wsb_load_conn *c, uint8_t *dst, uint8_t opcode, size_t len) {
  uint32_t key = next_mask(c->ctx);
  uint8_t mask[4];
  memcpy(mask, &key, sizeof(mask));
  uint8_t hdr[WSB_FRAME_HEADER_MAX];
  size_t hl = wsb_frame_header_write(hdr, true, opcode, len, mask);
  memmove(dst + hl, dst, len);
  memcpy(dst, hdr, hl);
  wsb_mask_apply(dst + hl, len, mask, 0);
  return hl + len;
}

/*
 * Queues one data message. The payload is generated where the frame will
 * go, WSB_FRAME_HEADER_MAX bytes in, then moved right behind the real header
 * (at most ten bytes down).
 */
static bool send_message(struct wsb_load_conn *c, uint64_t seq, uint64_t t) {
  const struct wsb_load_opts *o = &c->ctx->o;
  uint8_t *dst = out_reserve(c, WSB_FRAME_HEADER_MAX + o->size);
  if (dst == NULL)
    return false;
  uint32_t key = next_mask(c->ctx);
  uint8_t mask[4];
  memcpy(mask, &key, sizeof(mask));
  size_t hl =
      wsb_frame_header_write(dst, true, o->text ? WSB_OP_TEXT : WSB_OP_BINARY, o->size, mask);
  wsb_load_payload_fill(dst + hl, o->size, o->text, c->id, seq, t);
  wsb_mask_apply(dst + hl, o->size, mask, 0);
  c->fill_len += hl + o->size;
  return true;
}

static bool send_control(struct wsb_load_conn *c, uint8_t opcode, const uint8_t *payload,
                         size_t len) {
  uint8_t *dst = out_reserve(c, WSB_FRAME_HEADER_MAX + len);
  if (dst == NULL)
    return false;
  memcpy(dst, payload, len);
  c->fill_len += frame_put(c, dst, opcode, len);
  return true;
}

static void send_close(struct wsb_load_conn *c, uint16_t code) {
  uint8_t payload[WSB_CONTROL_PAYLOAD_MAX];
  size_t n = wsb_close_build(payload, code, "", 0);
  send_control(c, WSB_OP_CLOSE, payload, n);
}

static void set_state(struct wsb_load_conn *c, enum wsb_load_conn_state next) {
  if (c->state == C_OPEN)
    c->ctx->open--;
  if (next == C_OPEN)
    c->ctx->open++;
  c->state = next;
}

static void on_handle_closed(uv_handle_t *h) {
  struct wsb_load_conn *c = wsb_container_of((uv_tcp_t *)h, struct wsb_load_conn, tcp);
  c->state = C_IDLE;
  c->deadline = 0;
  c->ctx->live--;
  wsb_load_tls_free(c);
  free(c->head_buf);
  c->head_buf = NULL;
  wsb_load_on_conn_gone(c->ctx, c, c->before_upgrade);
}

void wsb_load_conn_abort(struct wsb_load_conn *c, enum wsb_load_err kind) {
  if (c->state == C_IDLE || c->state == C_SHUT || c->state == C_BACKOFF)
    return;
  bool before_upgrade = c->state == C_CONNECTING || c->state == C_HANDSHAKE;
  if (kind != ERR_COUNT)
    c->ctx->st.errors[kind]++;
  /* Dropping an attempt ourselves (the run is ending) is no failure of the server's. */
  if (before_upgrade && kind != ERR_COUNT)
    c->ctx->st.failed++;
  c->before_upgrade = before_upgrade;
  set_state(c, C_SHUT);
  c->cycle_ok = c->cycle_ok && kind == ERR_COUNT;
  uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct wsb_load_conn *c = wsb_container_of((uv_tcp_t *)h, struct wsb_load_conn, tcp);
  *buf = uv_buf_init((char *)c->ctx->rbuf, sizeof(c->ctx->rbuf));
}

static void send_request(struct wsb_load_conn *c) {
  const struct wsb_load_opts *o = &c->ctx->o;
  char key[WSB_WS_KEY_LEN + 1];
  if (wsb_ws_key_generate(key) != 0) {
    wsb_load_conn_abort(c, ERR_HANDSHAKE);
    return;
  }
  wsb_ws_accept((struct wsb_slice){key, WSB_WS_KEY_LEN}, c->accept);
  bool v6 = strchr(o->url.host, ':') != NULL;
  char *dst = (char *)out_reserve(c, 512 + WSB_HOST_MAX + WSB_PATH_MAX);
  int n = snprintf(dst, 512 + WSB_HOST_MAX + WSB_PATH_MAX,
                   "GET %s HTTP/1.1\r\nHost: %s%s%s:%u\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\nUser-Agent: wsbal-load\r\n%s\r\n",
                   o->url.path[0] != '\0' ? o->url.path : "/", v6 ? "[" : "", o->url.host,
                   v6 ? "]" : "", o->url.port, key,
                   o->deflate ? "Sec-WebSocket-Extensions: permessage-deflate\r\n" : "");
  c->fill_len += (size_t)n;
  set_state(c, C_HANDSHAKE);
  wsb_load_conn_flush(c);
}

static void on_connect(uv_connect_t *req, int status) {
  struct wsb_load_conn *c = wsb_container_of(req, struct wsb_load_conn, connect_req);
  if (status == UV_ECANCELED || c->state != C_CONNECTING)
    return;
  if (status < 0) {
    wsb_load_conn_abort(c, ERR_CONNECT);
    return;
  }
  /* Small messages must leave at once; Nagle would add the peer's delayed ACK to the latency. */
  uv_tcp_nodelay(&c->tcp, 1);
  int err = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (err != 0) {
    wsb_load_conn_abort(c, ERR_IO);
    return;
  }
  if (c->ctx->ssl_ctx != NULL && wsb_load_tls_start(c) != 0) {
    wsb_load_conn_abort(c, ERR_HANDSHAKE);
    return;
  }
  send_request(c); /* over wss it waits in fill until the TLS handshake is over */
}

static bool alloc_buffers(struct wsb_load_conn *c) {
  if (c->fill != NULL)
    return true;
  c->cap = wsb_load_conn_buffer_size(&c->ctx->o);
  c->fill = malloc(c->cap);
  c->wbuf = malloc(c->cap);
  return c->fill != NULL && c->wbuf != NULL;
}

/*
 * With --source each connection leaves from the next address of the range, so
 * the (source, destination) pairs, not one address's ephemeral ports, bound
 * how many sessions can be open. IP_BIND_ADDRESS_NO_PORT leaves the port's
 * choice to connect(), which may reuse a port towards another destination.
 */
static int bind_source(struct wsb_load_conn *c) {
  const struct wsb_load_opts *o = &c->ctx->o;
  if (o->source_count == 0)
    return 0;
  struct sockaddr_in sa = {.sin_family = AF_INET};
  uint32_t k = (uint32_t)(((uint64_t)o->id_base + c->id) % o->source_count);
  sa.sin_addr.s_addr = htonl(o->source_first + k);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  int one = 1;
  setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
  int err = uv_tcp_open(&c->tcp, fd);
  if (err != 0) {
    close(fd);
    return err;
  }
  return uv_tcp_bind(&c->tcp, (const struct sockaddr *)&sa, 0);
}

void wsb_load_conn_start(struct wsb_load_conn *c) {
  struct wsb_load_ctx *ctx = c->ctx;
  uint64_t now = wsb_load_now_ns();
  uint32_t id = c->id, slot = c->slot;
  uint8_t *fill = c->fill, *wbuf = c->wbuf;
  size_t cap = c->cap;
  /* Everything but the identity and the buffers starts afresh for each connection. */
  *c = (struct wsb_load_conn){
      .ctx = ctx, .id = id, .slot = slot, .fill = fill, .wbuf = wbuf, .cap = cap};
  c->t_start = now;
  c->last_recv = now;
  c->deadline = now + CONNECT_TIMEOUT_NS;
  if (!alloc_buffers(c)) {
    ctx->st.errors[ERR_CONNECT]++;
    ctx->st.failed++;
    wsb_load_on_conn_gone(ctx, c, true);
    return;
  }
  uv_tcp_init(&ctx->loop, &c->tcp);
  ctx->live++;
  c->state = C_CONNECTING;
  int err = bind_source(c);
  if (err == 0)
    err =
        uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&ctx->o.addr, on_connect);
  if (err != 0)
    wsb_load_conn_abort(c, ERR_CONNECT);
}

void wsb_load_conn_stop(struct wsb_load_conn *c) {
  switch (c->state) {
  case C_CONNECTING:
  case C_HANDSHAKE:
    wsb_load_conn_abort(c, ERR_COUNT);
    break;
  case C_OPEN:
    send_close(c, WSB_CLOSE_NORMAL);
    set_state(c, C_CLOSING);
    /* At the run's end every session closes at once: each may wait as long as the phase. */
    c->deadline = wsb_load_now_ns() + CLOSE_TIMEOUT_NS;
    if (c->ctx->close_deadline > c->deadline)
      c->deadline = c->ctx->close_deadline;
    wsb_load_conn_flush(c);
    break;
  default:
    break;
  }
}

bool wsb_load_conn_send(struct wsb_load_conn *c, uint64_t now) {
  if (!send_message(c, c->send_seq, now - c->ctx->t0))
    return false;
  c->send_seq++;
  return true;
}

void wsb_load_conn_ping(struct wsb_load_conn *c, uint64_t now) {
  if (c->state != C_OPEN)
    return;
  uint8_t payload[8];
  uint64_t t = now - c->ctx->t0;
  memcpy(payload, &t, sizeof(t));
  send_control(c, WSB_OP_PING, payload, sizeof(payload));
}

void wsb_load_conn_pump(struct wsb_load_conn *c, uint64_t due, uint64_t now) {
  struct wsb_load_ctx *ctx = c->ctx;
  uint64_t want = wsb_load_sched_due_k(ctx, c, due);
  while (c->send_seq < want) {
    uint64_t t = wsb_load_sched_time(ctx, c, c->send_seq);
    if (!send_message(c, c->send_seq, t - ctx->t0))
      break;
    if (t >= ctx->win_start && t < ctx->win_end) {
      ctx->st.sent++;
      uint64_t lag = now > t ? now - t : 0;
      if (lag > 1000000)
        ctx->st.late_sends++;
      if (lag > ctx->st.send_lag_max)
        ctx->st.send_lag_max = lag;
    }
    c->send_seq++;
  }
}

/* ---- what the server sends ---- */

static void on_message(struct wsb_load_conn *c, uint64_t now) {
  struct wsb_load_ctx *ctx = c->ctx;
  const struct wsb_load_verify *v = &c->rd.verify;
  bool ok = wsb_load_verify_ok(v, ctx->o.size) && v->seq == c->recv_seq;
  if (!ok)
    ctx->st.mismatches++;
  c->recv_seq++;
  c->last_recv = now;
  uint64_t sent_at = ctx->t0 + v->t;
  switch (ctx->o.mode) {
  case MODE_ECHO:
    if (ctx->phase == PH_WINDOW) {
      ctx->st.messages++;
      if (ok)
        wsb_load_hist_record(&ctx->lat, now - sent_at);
    }
    /* Closed loop: every answer sends the next message, until the close phase. */
    if (c->state == C_OPEN && ctx->phase <= PH_WINDOW)
      wsb_load_conn_send(c, now);
    break;
  case MODE_RATE:
    /* Counted by when it was due, so a late answer still lands in the right window. */
    if (ok && sent_at >= ctx->win_start && sent_at < ctx->win_end) {
      ctx->st.messages++;
      wsb_load_hist_record(&ctx->lat, now > sent_at ? now - sent_at : 0);
    }
    break;
  case MODE_CONNECT:
    if (ok && c->state == C_OPEN) {
      c->cycle_ok = true;
      wsb_load_conn_stop(c);
    } else {
      wsb_load_conn_abort(c, ERR_COUNT);
    }
    break;
  default:
    break;
  }
}

static void on_close_frame(struct wsb_load_conn *c, const uint8_t *payload, size_t n) {
  uint16_t code;
  const uint8_t *reason;
  size_t reason_len;
  bool valid = wsb_close_parse(payload, n, &code, &reason, &reason_len) == 0;
  if (c->state == C_OPEN) {
    /* The server ended a session we wanted open; answering lets it finish cleanly. */
    c->ctx->st.errors[ERR_CLOSED]++;
    c->cycle_ok = false;
    send_close(c, valid && code != WSB_CLOSE_NO_STATUS ? code : WSB_CLOSE_NORMAL);
  } else if (!valid) {
    c->ctx->st.errors[ERR_PROTOCOL]++;
  }
  set_state(c, C_CLOSE_WAIT);
  c->deadline = wsb_load_now_ns() + CLOSE_TIMEOUT_NS;
}

static void on_control(struct wsb_load_conn *c, uint8_t opcode, const uint8_t *payload, size_t n,
                       uint64_t now) {
  struct wsb_load_ctx *ctx = c->ctx;
  switch (opcode) {
  case WSB_OP_PING:
    /* A proxy's keepalive must be answered, or it would take the session for dead. */
    if (c->state == C_OPEN)
      send_control(c, WSB_OP_PONG, payload, n);
    break;
  case WSB_OP_PONG:
    if (n == 8) {
      uint64_t t;
      memcpy(&t, payload, sizeof(t));
      ctx->st.pongs++;
      if (ctx->phase == PH_WINDOW && ctx->t0 + t <= now)
        wsb_load_hist_record(&ctx->lat, now - (ctx->t0 + t));
    }
    break;
  case WSB_OP_CLOSE:
    on_close_frame(c, payload, n);
    break;
  default:
    break;
  }
}

/* The next frame at p, checked as a server's: data streams, control frames are taken whole. */
static ssize_t next_frame(struct wsb_load_conn *c, struct wsb_frame *f, const uint8_t *p,
                          size_t n) {
  return wsb_frame_next(&c->rd.msg, f, p, n, false, 0, 0);
}

static void begin_data(struct wsb_load_conn *c, const struct wsb_frame *f) {
  struct wsb_load_reader *rd = &c->rd;
  if (f->opcode != WSB_OP_CONT) {
    memset(&rd->verify, 0, sizeof(rd->verify));
    rd->in_message = true;
    /* The echo must keep the opcode it was sent with. */
    if (f->opcode != (c->ctx->o.text ? WSB_OP_TEXT : WSB_OP_BINARY))
      rd->verify.bad = true;
  }
  rd->fin = f->fin;
  rd->remaining = f->payload_len;
}

static void data_bytes(struct wsb_load_conn *c, const uint8_t *p, size_t n, uint64_t now) {
  struct wsb_load_reader *rd = &c->rd;
  wsb_load_verify_feed(&rd->verify, ctx_text(c), c->id, c->ctx->o.size, p, n);
  rd->remaining -= n;
  if (rd->remaining == 0 && rd->fin) {
    rd->in_message = false;
    on_message(c, now);
  }
}

/*
 * Completes the frame whose beginning the previous read left in partial:
 * only a header, or a whole control frame (at most 139 bytes), is ever saved.
 * Returns the bytes of p it used, or -1 when the connection was dropped.
 */
static ssize_t feed_partial(struct wsb_load_conn *c, const uint8_t *p, size_t n, uint64_t now) {
  struct wsb_load_reader *rd = &c->rd;
  size_t old = rd->partial_len;
  size_t room = sizeof(rd->partial) - old;
  size_t take = n < room ? n : room;
  memcpy(rd->partial + old, p, take);
  size_t have = old + take;
  struct wsb_frame f;
  ssize_t hl = next_frame(c, &f, rd->partial, have);
  if (hl == WSB_PARTIAL) {
    rd->partial_len = (uint8_t)have;
    return (ssize_t)take;
  }
  if (hl < 0) {
    wsb_load_conn_abort(c, ERR_PROTOCOL);
    return -1;
  }
  rd->partial_len = 0;
  if (wsb_opcode_is_control(f.opcode)) {
    on_control(c, f.opcode, rd->partial + hl, (size_t)f.payload_len, now);
    return (ssize_t)((size_t)hl + f.payload_len - old);
  }
  begin_data(c, &f);
  if (f.payload_len == 0)
    data_bytes(c, NULL, 0, now);
  return (ssize_t)((size_t)hl - old);
}

static void feed_frames(struct wsb_load_conn *c, const uint8_t *p, size_t n, uint64_t now) {
  struct wsb_load_reader *rd = &c->rd;
  const uint8_t *end = p + n;
  if (rd->partial_len > 0) {
    ssize_t used = feed_partial(c, p, n, now);
    if (used < 0)
      return;
    p += used;
  }
  while (p < end && c->state != C_SHUT) {
    size_t avail = (size_t)(end - p);
    if (rd->remaining > 0) {
      size_t take = avail < rd->remaining ? avail : (size_t)rd->remaining;
      data_bytes(c, p, take, now);
      p += take;
      continue;
    }
    struct wsb_frame f;
    ssize_t hl = next_frame(c, &f, p, avail);
    if (hl == WSB_PARTIAL) {
      memcpy(rd->partial, p, avail);
      rd->partial_len = (uint8_t)avail;
      return;
    }
    if (hl < 0) {
      wsb_load_conn_abort(c, ERR_PROTOCOL);
      return;
    }
    if (wsb_opcode_is_control(f.opcode)) {
      on_control(c, f.opcode, p + hl, (size_t)f.payload_len, now);
      p += (size_t)hl + f.payload_len;
      continue;
    }
    p += hl;
    begin_data(c, &f);
    if (f.payload_len == 0)
      data_bytes(c, NULL, 0, now);
  }
}

/* ---- the 101 ---- */

static void upgraded(struct wsb_load_conn *c, uint64_t now) {
  free(c->head_buf);
  c->head_buf = NULL;
  /* A connect cycle waits for one echo; other modes have the stall check instead. */
  c->deadline = c->ctx->o.mode == MODE_CONNECT ? now + CONNECT_TIMEOUT_NS : 0;
  set_state(c, C_OPEN);
  c->ctx->st.established++;
  wsb_load_on_open(c->ctx, c, now);
}

/*
 * Checks the answer once its head is complete. A head that arrives in one
 * read (the usual case) is parsed where it lies; otherwise its pieces are
 * gathered in head_buf and parsed again from the start, since the parser's
 * slices need the head in one piece.
 */
static void feed_head(struct wsb_load_conn *c, const uint8_t *p, size_t n, uint64_t now) {
  struct wsb_http_head *h = &c->ctx->head;
  const char *text = (const char *)p;
  size_t len = n, before = 0;
  if (c->head_buf != NULL) {
    size_t take = n < HEAD_MAX - c->head_len ? n : HEAD_MAX - c->head_len;
    memcpy(c->head_buf + c->head_len, p, take);
    before = c->head_len;
    c->head_len += take;
    text = c->head_buf;
    len = c->head_len;
  }
  wsb_http_head_init(h, true, HEAD_MAX);
  ssize_t r = wsb_http_feed(h, text, len);
  if (r == WSB_PARTIAL) {
    if (c->head_buf == NULL) {
      c->head_buf = malloc(HEAD_MAX);
      if (c->head_buf == NULL || n >= HEAD_MAX) {
        wsb_load_conn_abort(c, ERR_HANDSHAKE);
        return;
      }
      memcpy(c->head_buf, p, n);
      c->head_len = n;
    } else if (c->head_len == HEAD_MAX) {
      wsb_load_conn_abort(c, ERR_HANDSHAKE);
    }
    return;
  }
  struct wsb_upgrade_response resp;
  int bad = r < 0 ? (int)r
                  : wsb_handshake_check_response(h, c->accept, (struct wsb_slice){NULL, 0}, &resp);
  /* With --deflate the answer may accept the offer; idle sessions never send a message. */
  if (bad == WSB_EHTTP_EXTENSION && c->ctx->o.deflate)
    bad = 0;
  if (bad != 0) {
    /* A full answer refusing the upgrade for now (max_sessions, no backend) is its own kind. */
    wsb_load_conn_abort(c, r >= 0 && h->status == 503 ? ERR_REJECTED : ERR_HANDSHAKE);
    return;
  }
  /* r counts the head's bytes in what was parsed; the rest of this read is frames. */
  size_t used = (size_t)r - before;
  upgraded(c, now);
  if (c->state == C_OPEN && used < n)
    feed_frames(c, p + used, n - used, now);
}

static void on_eof(struct wsb_load_conn *c, ssize_t err) {
  switch (c->state) {
  case C_CLOSE_WAIT:
    /* The server closed after the close handshake, as RFC 6455 7.1.1 wants. */
    wsb_load_conn_abort(c, err == UV_EOF ? ERR_COUNT : ERR_IO);
    break;
  case C_HANDSHAKE:
    wsb_load_conn_abort(c, ERR_HANDSHAKE);
    break;
  default:
    wsb_load_conn_abort(c, err == UV_EOF ? ERR_CLOSED : ERR_IO);
    break;
  }
}

static void on_plain(struct wsb_load_conn *c, const uint8_t *p, size_t n) {
  uint64_t now = wsb_load_now_ns();
  if (c->state == C_HANDSHAKE)
    feed_head(c, p, n, now);
  else if (c->state == C_OPEN || c->state == C_CLOSING || c->state == C_CLOSE_WAIT)
    feed_frames(c, p, n, now);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct wsb_load_conn *c = wsb_container_of((uv_tcp_t *)s, struct wsb_load_conn, tcp);
  if (nread == 0)
    return;
  if (nread < 0) {
    on_eof(c, nread);
    return;
  }
  const uint8_t *p = (const uint8_t *)buf->base;
  if (c->ssl != NULL) {
    int rc = wsb_load_tls_read(c, p, (size_t)nread, on_plain);
    if (rc != 0) {
      on_eof(c, rc > 0 ? UV_EOF : UV_EPROTO);
      return;
    }
  } else {
    on_plain(c, p, (size_t)nread);
  }
  wsb_load_conn_flush(c);
}
