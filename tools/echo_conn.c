/* wsbal-echo's connections: the request head, plain HTTP answers, the upgrade, writes and closing.
 */
#include "echo.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "handshake.h"
#include "log.h"

enum conn_state {
  CONN_HANDSHAKE, /* reading the request head */
  CONN_OPEN,      /* echoing frames */
  CONN_CLOSING,   /* our last bytes are queued; waiting for them to go and for the peer's EOF */
  CONN_CLOSED,    /* handles are closing; freed in the last close callback */
};

/* A request head that did not arrive in one read is gathered here; freed at the upgrade. */
struct head_buf {
  struct wsb_http_head head;
  size_t len;
  char buf[WSB_ECHO_HEAD_MAX];
};

struct wsb_echo_conn {
  uv_tcp_t tcp;
  uv_timer_t timer; /* the handshake timeout, then the linger after our last frame */
  struct wsb_echo_server *srv;
  struct wsb_list_node link; /* on srv->conns */
  struct head_buf *hb;
  size_t queued; /* bytes handed to uv_write and not yet written */
  uint8_t state;
  uint8_t open_handles;
  bool paused; /* reading stopped because too much output is queued */
  struct wsb_echo_ws ws;
};

/* Only what the kernel did not take is copied, together with its request. */
struct write_req {
  uv_write_t req;
  struct wsb_echo_conn *conn;
  size_t len;
  uint8_t data[];
};

static const char *const state_names[] = {"handshake", "open", "closing", "closed"};

static void on_handle_closed(uv_handle_t *handle) {
  struct wsb_echo_conn *c = handle->data;
  if (--c->open_handles > 0)
    return;
  wsb_list_remove(&c->srv->conns, &c->link);
  free(c->hb);
  free(c);
}

/* Leaving the open state, in whichever way, ends the session for /metric. */
static void set_state(struct wsb_echo_conn *c, enum conn_state next) {
  if (c->state == CONN_OPEN)
    c->srv->sessions--;
  if (next == CONN_OPEN)
    c->srv->sessions++;
  c->state = next;
}

/* Ends the connection now; everything still queued is dropped. Safe to call twice. */
static void conn_close(struct wsb_echo_conn *c, int reason) {
  if (c->state == CONN_CLOSED)
    return;
  wsb_log_debug("connection %p closed in state %s: %s (close code %u)", (void *)c,
                state_names[c->state], wsb_err_name(reason), c->ws.close_code);
  set_state(c, CONN_CLOSED);
  uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void resume_reading(struct wsb_echo_conn *c);

static void on_write_done(uv_write_t *req, int status) {
  struct write_req *wr = wsb_container_of(req, struct write_req, req);
  struct wsb_echo_conn *c = wr->conn;
  c->queued -= wr->len;
  free(wr);
  if (status < 0)
    conn_close(c, status);
  else if (c->paused && c->state == CONN_OPEN && c->queued <= WSB_ECHO_LOW_WATER)
    resume_reading(c);
}

static void queue_write(struct wsb_echo_conn *c, const uint8_t *data, size_t len) {
  struct write_req *wr = malloc(sizeof(*wr) + len);
  if (wr == NULL) {
    conn_close(c, UV_ENOMEM);
    return;
  }
  wr->conn = c;
  wr->len = len;
  memcpy(wr->data, data, len);
  uv_buf_t buf = uv_buf_init((char *)wr->data, (unsigned)len);
  int err = uv_write(&wr->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write_done);
  if (err != 0) {
    free(wr);
    conn_close(c, err);
    return;
  }
  c->queued += len;
  /* A client that does not read must not make us hold more than this for it. */
  if (c->queued > WSB_ECHO_HIGH_WATER && !c->paused && c->state == CONN_OPEN) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->paused = true;
  }
}

/* Writes at once what the kernel takes and queues the rest behind earlier writes. */
static void conn_send(struct wsb_echo_conn *c, uint8_t *data, size_t len) {
  if (c->state == CONN_CLOSED || len == 0)
    return;
  size_t done = 0;
  if (c->queued == 0) {
    uv_buf_t buf = uv_buf_init((char *)data, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
    if (n < 0 && n != UV_EAGAIN) {
      conn_close(c, n);
      return;
    }
    done = n > 0 ? (size_t)n : 0;
  }
  if (done < len)
    queue_write(c, data + done, len - done);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  struct wsb_echo_server *srv = handle->loop->data;
  *buf = uv_buf_init((char *)srv->rbuf + WSB_ECHO_HEADROOM, WSB_ECHO_READ_SIZE);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void resume_reading(struct wsb_echo_conn *c) {
  c->paused = false;
  int err = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (err != 0)
    conn_close(c, err);
}

static void on_timeout(uv_timer_t *timer) {
  struct wsb_echo_conn *c = timer->data;
  conn_close(c, UV_ETIMEDOUT);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  struct wsb_echo_conn *c = req->data;
  free(req);
  if (status < 0)
    conn_close(c, status);
}

/*
 * Ends the connection after what was sent: the FIN follows the queued bytes,
 * and reading goes on (discarding) until the peer's EOF, so a client still
 * sending never gets a reset that could destroy our last frame before it reads
 * it. The linger timer bounds the wait.
 */
static void conn_finish(struct wsb_echo_conn *c) {
  if (c->state == CONN_CLOSED || c->state == CONN_CLOSING)
    return;
  set_state(c, CONN_CLOSING);
  if (c->paused)
    resume_reading(c);
  if (c->state == CONN_CLOSED)
    return;
  uv_timer_start(&c->timer, on_timeout, WSB_ECHO_LINGER_MS, 0);
  uv_shutdown_t *req = malloc(sizeof(*req));
  if (req == NULL) {
    conn_close(c, UV_ENOMEM);
    return;
  }
  req->data = c;
  int err = uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown);
  if (err != 0) {
    free(req);
    conn_close(c, err);
  }
}

static void send_text(struct wsb_echo_conn *c, char *text, size_t len) {
  conn_send(c, (uint8_t *)text, len);
}

static void answer_error(struct wsb_echo_conn *c, int status) {
  char out[512];
  const char *extra = status == 426 ? "Sec-WebSocket-Version: 13\r\n" : NULL;
  send_text(c, out, wsb_http_error_response(out, sizeof(out), status, extra));
  conn_finish(c);
}

/* The answers to plain requests are JSON for the balancer's health checks and load polling. */
static void answer_plain(struct wsb_echo_conn *c, const struct wsb_http_head *h) {
  if (h->method != HTTP_GET) {
    char out[512];
    send_text(c, out, wsb_http_error_response(out, sizeof(out), 405, "Allow: GET\r\n"));
    conn_finish(c);
    return;
  }
  struct wsb_slice path = h->url;
  const char *query = memchr(path.p, '?', path.len);
  if (query != NULL)
    path.len = (size_t)(query - path.p);

  char body[64];
  int status = 200;
  if (path.len == 12 && memcmp(path.p, "/healthCheck", 12) == 0) {
    snprintf(body, sizeof(body), "{\"status\":\"200\"}");
  } else if (path.len == 7 && memcmp(path.p, "/metric", 7) == 0) {
    snprintf(body, sizeof(body), "{\"agentsConnections\":%" PRIu64 "}", c->srv->sessions);
  } else {
    status = 404;
    snprintf(body, sizeof(body), "{\"error\":\"not found\"}");
  }
  char out[256];
  int n = snprintf(out, sizeof(out),
                   "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n%s",
                   status, wsb_http_reason(status), strlen(body), body);
  send_text(c, out, (size_t)n);
  conn_finish(c);
}

/* The first subprotocol of a comma list, spaces trimmed; len == 0 when there is none. */
static struct wsb_slice first_token(struct wsb_slice list) {
  struct wsb_slice t = {list.p, 0};
  if (list.p == NULL)
    return t;
  size_t i = 0;
  while (i < list.len && (list.p[i] == ' ' || list.p[i] == '\t'))
    i++;
  t.p = list.p + i;
  while (i + t.len < list.len && list.p[i + t.len] != ',' && list.p[i + t.len] != ' ' &&
         list.p[i + t.len] != '\t')
    t.len++;
  return t;
}

/* Subprotocol names longer than this are not chosen; no real one comes close. */
#define PROTOCOL_MAX 256

static void send_upgrade(struct wsb_echo_conn *c, const struct wsb_upgrade_request *u) {
  char accept[WSB_WS_ACCEPT_LEN + 1];
  wsb_ws_accept(u->key, accept);
  struct wsb_slice protocol = first_token(u->protocols);
  if (protocol.len > PROTOCOL_MAX)
    protocol.len = 0;

  char out[512 + WSB_ECHO_ID_MAX + PROTOCOL_MAX];
  int n =
      snprintf(out, sizeof(out),
               "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Accept: %s\r\nX-Backend-Id: %s\r\n",
               accept, c->srv->id);
  if (protocol.len > 0)
    n += snprintf(out + n, sizeof(out) - (size_t)n, "Sec-WebSocket-Protocol: %.*s\r\n",
                  (int)protocol.len, protocol.p);
  n += snprintf(out + n, sizeof(out) - (size_t)n, "\r\n");
  send_text(c, out, (size_t)n);
}

static void on_frames(struct wsb_echo_conn *c, uint8_t *buf, size_t len) {
  struct wsb_echo_out out;
  int r = wsb_echo_ws_feed(&c->ws, buf, len, c->srv->max_message, &out);
  if (out.start != NULL)
    conn_send(c, out.start, (size_t)(out.end - out.start));
  if (r == WSB_ECHO_CLOSED)
    conn_finish(c);
}

/* Anything that speaks of WebSocket is judged as an upgrade; the rest is plain HTTP. */
static bool wants_websocket(const struct wsb_http_head *h) {
  return wsb_http_find(h, "Upgrade", NULL) != NULL ||
         wsb_http_find(h, "Sec-WebSocket-Key", NULL) != NULL ||
         wsb_http_find(h, "Sec-WebSocket-Version", NULL) != NULL ||
         wsb_http_has_token(h, "Connection", "upgrade");
}

/* rest/rest_len: the bytes of this read after the head (frames a client sent early). */
static void on_request(struct wsb_echo_conn *c, const struct wsb_http_head *h, uint8_t *rest,
                       size_t rest_len) {
  if (!wants_websocket(h)) {
    answer_plain(c, h);
    return;
  }
  struct wsb_upgrade_request u;
  int status = wsb_handshake_check_request(h, &u);
  if (status != 0) {
    answer_error(c, status);
    return;
  }
  send_upgrade(c, &u);
  wsb_upgrade_request_free(&u);
  if (c->state == CONN_CLOSED)
    return;
  free(c->hb);
  c->hb = NULL;
  uv_timer_stop(&c->timer);
  set_state(c, CONN_OPEN);
  if (rest_len > 0)
    on_frames(c, rest, rest_len);
}

/*
 * Feeds the head parser. A head that comes in one read (the usual case) is
 * parsed where it lies; otherwise it is gathered in a head_buf, because the
 * parser's slices need the whole head contiguous. Returns how many bytes of
 * buf belong to the head, WSB_PARTIAL or a WSB_E* code; *hp is the parser used.
 */
static ssize_t feed_head(struct wsb_echo_conn *c, uint8_t *buf, size_t len,
                         struct wsb_http_head **hp) {
  struct head_buf *hb = c->hb;
  if (hb == NULL) {
    *hp = &c->srv->head;
    wsb_http_head_init(*hp, false, WSB_ECHO_HEAD_MAX);
    ssize_t r = wsb_http_feed(*hp, (const char *)buf, len);
    if (r != WSB_PARTIAL)
      return r;
    if (len >= sizeof(hb->buf))
      return WSB_EHEAD_TOO_LARGE;
    hb = c->hb = malloc(sizeof(*hb));
    if (hb == NULL)
      return UV_ENOMEM;
    memcpy(hb->buf, buf, len);
    hb->len = len;
    wsb_http_head_init(&hb->head, false, WSB_ECHO_HEAD_MAX);
    *hp = &hb->head;
    return wsb_http_feed(&hb->head, hb->buf, len);
  }
  /* What follows the head in this read stays in buf, at the same offset as in the copy. */
  size_t take = len < sizeof(hb->buf) - hb->len ? len : sizeof(hb->buf) - hb->len;
  memcpy(hb->buf + hb->len, buf, take);
  *hp = &hb->head;
  ssize_t r = wsb_http_feed(&hb->head, hb->buf + hb->len, take);
  hb->len += take;
  if (r == WSB_PARTIAL && hb->len == sizeof(hb->buf))
    return WSB_EHEAD_TOO_LARGE;
  return r;
}

static void on_head_bytes(struct wsb_echo_conn *c, uint8_t *buf, size_t len) {
  struct wsb_http_head *h;
  ssize_t r = feed_head(c, buf, len, &h);
  if (r == WSB_PARTIAL)
    return;
  if (r == UV_ENOMEM) {
    conn_close(c, UV_ENOMEM);
    return;
  }
  if (r < 0) {
    answer_error(c, r == WSB_EHTTP ? 400 : 431);
    return;
  }
  on_request(c, h, buf + r, len - (size_t)r);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  struct wsb_echo_conn *c = wsb_container_of(stream, struct wsb_echo_conn, tcp);
  if (nread == 0)
    return;
  if (nread < 0) {
    conn_close(c, (int)nread);
    return;
  }
  switch (c->state) {
  case CONN_HANDSHAKE:
    on_head_bytes(c, (uint8_t *)buf->base, (size_t)nread);
    break;
  case CONN_OPEN:
    on_frames(c, (uint8_t *)buf->base, (size_t)nread);
    break;
  default: /* closing: the peer's last bytes are not for us */
    break;
  }
}

void wsb_echo_conn_accept(struct wsb_echo_server *srv) {
  struct wsb_echo_conn *c = calloc(1, sizeof(*c));
  if (c == NULL) {
    wsb_log_error("out of memory accepting a connection");
    return;
  }
  c->srv = srv;
  c->tcp.data = c;
  c->timer.data = c;
  uv_tcp_init(&srv->loop, &c->tcp);
  uv_timer_init(&srv->loop, &c->timer);
  c->open_handles = 2;
  wsb_list_insert_head(&srv->conns, &c->link);

  int err = uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)&c->tcp);
  if (err != 0) {
    wsb_log_warn("accept: %s", uv_strerror(err));
    conn_close(c, err);
    return;
  }
  /* Echoes are small and must not wait for Nagle's timer. */
  uv_tcp_nodelay(&c->tcp, 1);
  uv_timer_start(&c->timer, on_timeout, WSB_ECHO_HANDSHAKE_TIMEOUT_MS, 0);
  err = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (err != 0)
    conn_close(c, err);
}

void wsb_echo_conn_close_all(struct wsb_echo_server *srv) {
  struct wsb_echo_conn *c;
  WSB_LIST_EACH (c, &srv->conns, link)
    conn_close(c, UV_ECANCELED);
}
