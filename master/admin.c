/* The admin HTTP/1.1 server: small requests, JSON answers, bearer tokens, keep-alive. */
#include "admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "errors.h"
#include "http.h"
#include "json.h"
#include "listen.h"
#include "log.h"

#define HEAD_MAX (16 * 1024)
#define BODY_MAX (64 * 1024)
#define MAX_CONNECTIONS 256

struct admin_conn {
  uv_tcp_t tcp;
  struct wsb_admin *a;
  struct admin_conn *prev;
  struct admin_conn *next;
  struct wsb_http_head head;
  char buf[HEAD_MAX + BODY_MAX];
  size_t len;       /* bytes in buf */
  size_t head_len;  /* 0 until the head is complete */
  size_t body_len;
  uint64_t serial;     /* names the connection to a deferred answer */
  bool waiting;        /* a deferred answer is pending: later requests wait */
  bool keep_alive;     /* of the request being answered */
  bool head_only;      /* the request being answered is a HEAD */
  size_t request_len;  /* head and body of the request being answered */
  bool finished;  /* no more requests are read: an answer with Connection: close is going out */
  bool closed;    /* uv_close called */
};

struct admin_write {
  uv_write_t req;
  struct admin_conn *c;
  bool close_after;
  char data[];
};

int wsb_admin_bind(const struct wsb_hostport *hp, char *err, size_t errlen) {
  return wsb_listen_open(hp, false, err, errlen);
}

void wsb_admin_error(struct wsb_admin_reply *reply, int status, const char *msg) {
  char buf[512];
  struct wsb_json j;
  wsb_json_init(&j, buf, sizeof(buf));
  wsb_json_object_begin(&j);
  wsb_json_key(&j, "error");
  wsb_json_cstring(&j, msg);
  wsb_json_object_end(&j);
  size_t n = wsb_json_finish(&j);
  reply->status = status;
  reply->body = malloc(n + 1);
  if (reply->body != NULL) {
    memcpy(reply->body, buf, n);
    reply->body[n] = '\n';
    reply->len = n + 1;
  }
}

static void on_closed(uv_handle_t *h) {
  struct admin_conn *c = (struct admin_conn *)h;
  struct wsb_admin *a = c->a;
  if (c->prev)
    c->prev->next = c->next;
  else
    a->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  a->connections--;
  free(c);
}

static void close_conn(struct admin_conn *c) {
  if (c->closed)
    return;
  c->closed = c->finished = true;
  uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_written(uv_write_t *req, int status) {
  struct admin_write *w = (struct admin_write *)req;
  if (w->close_after || status < 0)
    close_conn(w->c);
  free(w);
}

/* A HEAD request's answer carries the head only, Content-Length included (RFC 9110 9.3.2). */
static void send_reply(struct admin_conn *c, const struct wsb_admin_reply *r, bool keep_alive) {
  size_t body_len = c->head_only ? 0 : r->len;
  char head[512];
  int n = snprintf(head, sizeof(head),
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Cache-Control: no-store\r\n%s%s%sConnection: %s\r\n\r\n",
                   r->status, wsb_http_reason(r->status),
                   r->content_type ? r->content_type : "application/json", r->len,
                   r->allow ? "Allow: " : "", r->allow ? r->allow : "", r->allow ? "\r\n" : "",
                   keep_alive ? "keep-alive" : "close");
  struct admin_write *w = malloc(sizeof(*w) + (size_t)n + body_len);
  if (w == NULL || n < 0) {
    free(w);
    close_conn(c);
    return;
  }
  w->c = c;
  w->close_after = !keep_alive;
  memcpy(w->data, head, (size_t)n);
  if (body_len)
    memcpy(w->data + n, r->body, body_len);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)((size_t)n + body_len));
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
    free(w);
    close_conn(c);
  }
}

static void reply_error_and_close(struct admin_conn *c, int status, const char *msg) {
  struct wsb_admin_reply r = {0};
  wsb_admin_error(&r, status, msg);
  send_reply(c, &r, false);
  free(r.body);
  c->finished = true; /* read nothing more; on_written closes it */
  uv_read_stop((uv_stream_t *)&c->tcp);
}

/* The token compared in constant time, so its bytes cannot be found by timing. */
static bool authorized(const struct wsb_admin *a, const struct wsb_http_head *h) {
  const char *token = *a->token;
  if (token == NULL)
    return true;
  const struct wsb_header *auth = wsb_http_find(h, "Authorization", NULL);
  size_t tlen = strlen(token);
  if (auth == NULL || auth->value.len != 7 + tlen || strncasecmp(auth->value.p, "Bearer ", 7))
    return false;
  return CRYPTO_memcmp(auth->value.p + 7, token, tlen) == 0;
}

static bool needs_token(const char *path) {
  return strncmp(path, "/api/", 5) == 0 || strcmp(path, "/api") == 0 ||
         strcmp(path, "/metrics") == 0;
}

static void answer(struct admin_conn *c, struct wsb_admin_reply *r);

static int hex_value(char ch) {
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
    return (ch | 0x20) - 'a' + 10;
  return -1;
}

/* Decodes %XX in place; refuses a truncated escape and %00. */
static int percent_decode(char *s) {
  char *out = s;
  for (; *s; s++) {
    if (*s != '%') {
      *out++ = *s;
      continue;
    }
    int hi = hex_value(s[1]), lo = hi < 0 ? -1 : hex_value(s[2]);
    if (lo < 0 || (hi == 0 && lo == 0))
      return -1;
    *out++ = (char)(hi * 16 + lo);
    s += 2;
  }
  *out = '\0';
  return 0;
}

/* Handles one complete request: answered now, or later (c->waiting). */
static void dispatch(struct admin_conn *c) {
  struct wsb_http_head *h = &c->head;
  char target[2048];
  if (h->url.len >= sizeof(target)) {
    reply_error_and_close(c, 414, "request target too long");
    return;
  }
  memcpy(target, h->url.p, h->url.len);
  target[h->url.len] = '\0';
  char *query = strchr(target, '?');
  if (query != NULL)
    *query++ = '\0';
  /* Names in paths may be percent-encoded ("b%231" for the backend "b#1"). */
  if (percent_decode(target) != 0) {
    reply_error_and_close(c, 400, "bad percent-encoding in the path");
    return;
  }
  c->head_only = h->method == HTTP_HEAD;
  c->keep_alive = h->http_major == 1 && h->http_minor == 1
                      ? !wsb_http_has_token(h, "Connection", "close")
                      : wsb_http_has_token(h, "Connection", "keep-alive");
  struct wsb_admin_reply r = {0};
  if (needs_token(target) && !authorized(c->a, h)) {
    wsb_admin_error(&r, 401, "missing or wrong bearer token");
  } else {
    struct wsb_admin_request req = {
        .method = h->method,
        .path = target,
        .query = query ? query : "",
        .body = c->buf + c->head_len,
        .body_len = c->body_len,
        .conn = c->serial,
    };
    c->a->route(c->a->ctx, &req, &r);
    if (r.status == 0) {
      c->waiting = true;
      return;
    }
  }
  answer(c, &r);
}

static void process(struct admin_conn *c);

/* Sends the answer to the current request, then goes on with what came after it. */
static void answer(struct admin_conn *c, struct wsb_admin_reply *r) {
  send_reply(c, r, c->keep_alive);
  c->head_only = false;
  free(r->body);
  r->body = NULL;
  if (!c->keep_alive) {
    c->finished = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    return;
  }
  memmove(c->buf, c->buf + c->request_len, c->len - c->request_len);
  c->len -= c->request_len;
  c->head_len = 0;
  c->waiting = false;
}

void wsb_admin_complete(struct wsb_admin *a, uint64_t conn, struct wsb_admin_reply *reply) {
  struct admin_conn *c = a->conns;
  while (c != NULL && c->serial != conn)
    c = c->next;
  if (c == NULL || c->closed || !c->waiting) {
    free(reply->body);
    return;
  }
  answer(c, reply);
  process(c);
}

/* Parses what has arrived; answers each complete request in turn (pipelining included). */
static void process(struct admin_conn *c) {
  while (!c->finished && !c->waiting) {
    if (c->head_len == 0) {
      wsb_http_head_init(&c->head, false, HEAD_MAX);
      ssize_t rc = wsb_http_feed(&c->head, c->buf, c->len);
      if (rc == WSB_PARTIAL) {
        if (c->len >= HEAD_MAX)
          reply_error_and_close(c, 431, "request head too large");
        return;
      }
      if (rc < 0) {
        reply_error_and_close(c, rc == WSB_EHEAD_TOO_LARGE ? 431 : 400, wsb_strerror((int)rc));
        return;
      }
      c->head_len = (size_t)rc;
      const struct wsb_header *cl = wsb_http_find(&c->head, "Content-Length", NULL);
      c->body_len = 0;
      if (wsb_http_find(&c->head, "Transfer-Encoding", NULL) != NULL) {
        reply_error_and_close(c, 411, "send a Content-Length, not a chunked body");
        return;
      }
      for (size_t i = 0; cl != NULL && i < cl->value.len; i++) {
        c->body_len = c->body_len * 10 + (size_t)(cl->value.p[i] - '0');
        if (c->body_len > BODY_MAX) {
          reply_error_and_close(c, 413, "request body larger than 64 KiB");
          return;
        }
      }
    }
    if (c->len < c->head_len + c->body_len)
      return; /* the body is still coming */
    c->request_len = c->head_len + c->body_len;
    dispatch(c);
    if (c->len == 0)
      return;
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct admin_conn *c = (struct admin_conn *)h;
  buf->base = c->buf + c->len;
  buf->len = sizeof(c->buf) - c->len;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct admin_conn *c = (struct admin_conn *)s;
  if (nread < 0) {
    close_conn(c);
    return;
  }
  c->len += (size_t)nread;
  process(c);
}

static void on_connection(uv_stream_t *listener, int status) {
  struct wsb_admin *a = listener->data;
  if (status < 0)
    return;
  struct admin_conn *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return;
  c->a = a;
  c->serial = ++a->next_conn;
  uv_tcp_init(a->loop, &c->tcp);
  c->next = a->conns;
  if (a->conns)
    a->conns->prev = c;
  a->conns = c;
  a->connections++;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 || a->connections > MAX_CONNECTIONS) {
    close_conn(c);
    return;
  }
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

int wsb_admin_start(struct wsb_admin *a, uv_loop_t *loop, int fd, char *const *token,
                    wsb_admin_route_fn route, void *ctx) {
  a->loop = loop;
  a->fd = fd;
  a->token = token;
  a->route = route;
  a->ctx = ctx;
  uv_tcp_init(loop, &a->listener);
  a->listener.data = a;
  int rc = uv_tcp_open(&a->listener, fd);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&a->listener, 128, on_connection);
  return rc;
}

void wsb_admin_stop(struct wsb_admin *a) {
  if (a->fd < 0)
    return;
  a->fd = -1;
  uv_close((uv_handle_t *)&a->listener, NULL);
  for (struct admin_conn *c = a->conns; c != NULL; c = c->next)
    close_conn(c);
}
