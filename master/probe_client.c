/* One health check or load-report poll in flight: a TCP connect, and for HTTP a GET read whole. */
#include "probe_client.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

struct wsb_probe_client {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_connect_t connect;
  uv_write_t write;
  wsb_probe_cb cb; /* NULL once called or cancelled */
  void *arg;
  uint64_t timeout_ms;
  char *request;
  int open_handles; /* freed when both have closed */
  size_t len;
  char buf[WSB_PROBE_MAX_RESPONSE];
  struct wsb_probe_response response;
};

static void on_close(uv_handle_t *h) {
  struct wsb_probe_client *p = h->data;
  if (--p->open_handles == 0) {
    free(p->request);
    free(p);
  }
}

/* Closing the socket cancels its pending connect, write and read: their callbacks still run,
   see cb NULL and return, before the close callbacks free the probe. */
static void close_all(struct wsb_probe_client *p) {
  p->cb = NULL;
  uv_close((uv_handle_t *)&p->tcp, on_close);
  uv_close((uv_handle_t *)&p->timer, on_close);
}

/* Calls back once (unless cancelled) and closes. */
static void finish(struct wsb_probe_client *p, enum wsb_probe_result result,
                   const struct wsb_probe_response *r, const char *why) {
  wsb_probe_cb cb = p->cb;
  if (cb == NULL)
    return;
  close_all(p);
  cb(p->arg, result, r, why);
}

static void fail(struct wsb_probe_client *p, int err) {
  finish(p, err == UV_ECONNREFUSED ? WSB_PROBE_REFUSED : WSB_PROBE_ERROR, NULL, wsb_strerror(err));
}

static void on_timeout(uv_timer_t *t) {
  struct wsb_probe_client *p = t->data;
  char why[64];
  snprintf(why, sizeof(why), "no answer within %llu ms", (unsigned long long)p->timeout_ms);
  finish(p, WSB_PROBE_TIMEOUT, NULL, why);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct wsb_probe_client *p = h->data;
  (void)suggested;
  /* Never full here: a full buffer without a complete answer has already failed the probe. */
  *buf = uv_buf_init(p->buf + p->len, (unsigned)(sizeof(p->buf) - p->len));
}

static void parse(struct wsb_probe_client *p, bool eof) {
  int rc = wsb_probe_parse(p->buf, p->len, eof, &p->response);
  if (rc == 0)
    finish(p, WSB_PROBE_OK, &p->response, "");
  else if (rc != WSB_PARTIAL)
    finish(p, WSB_PROBE_ERROR, NULL, wsb_strerror(rc));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct wsb_probe_client *p = s->data;
  (void)buf;
  if (p->cb == NULL)
    return;
  if (n == UV_EOF) {
    parse(p, true);
  } else if (n < 0) {
    fail(p, (int)n);
  } else if (n > 0) {
    p->len += (size_t)n;
    parse(p, false);
  }
}

static void on_write(uv_write_t *w, int status) {
  struct wsb_probe_client *p = w->data;
  if (p->cb != NULL && status < 0)
    fail(p, status);
}

static void on_connect(uv_connect_t *c, int status) {
  struct wsb_probe_client *p = c->data;
  if (p->cb == NULL)
    return;
  if (status < 0) {
    fail(p, status);
    return;
  }
  if (p->request == NULL) {
    finish(p, WSB_PROBE_OK, NULL, "");
    return;
  }
  uv_buf_t b = uv_buf_init(p->request, (unsigned)strlen(p->request));
  p->write.data = p;
  int rc = uv_write(&p->write, (uv_stream_t *)&p->tcp, &b, 1, on_write);
  if (rc == 0)
    rc = uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_read);
  if (rc != 0)
    fail(p, rc);
}

struct wsb_probe_client *wsb_probe_start(uv_loop_t *loop, const struct sockaddr *addr,
                                         const char *request, uint64_t timeout_ms, wsb_probe_cb cb,
                                         void *arg) {
  struct wsb_probe_client *p = malloc(sizeof(*p));
  if (p == NULL)
    return NULL;
  memset(p, 0, offsetof(struct wsb_probe_client, buf));
  p->cb = cb;
  p->arg = arg;
  p->timeout_ms = timeout_ms;
  if (request != NULL && (p->request = strdup(request)) == NULL) {
    free(p);
    return NULL;
  }
  if (uv_tcp_init(loop, &p->tcp) != 0) {
    free(p->request);
    free(p);
    return NULL;
  }
  uv_timer_init(loop, &p->timer);
  p->tcp.data = p->timer.data = p->connect.data = p;
  p->open_handles = 2;
  uv_timer_start(&p->timer, on_timeout, timeout_ms, 0);
  int rc = uv_tcp_connect(&p->connect, &p->tcp, addr, on_connect);
  if (rc != 0) {
    close_all(p);
    return NULL;
  }
  return p;
}

void wsb_probe_cancel(struct wsb_probe_client *p) {
  if (p->cb != NULL)
    close_all(p);
}
