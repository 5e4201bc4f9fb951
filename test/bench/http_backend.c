/* wsbal-bench-http: a small keep-alive HTTP/1.1 backend answering every GET at once, for compare.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

/*
 * What the HTTP scenario of test/bench/compare needs from a backend, and no more: one loop in
 * one process (like wsbal-echo), connections kept alive, pipelined requests answered in order
 * with one write per read, no allocation per request. Every request head gets the same 200
 * with a 13-byte body. A request announcing a body (Content-Length other than 0, or
 * Transfer-Encoding) is not something the benchmark sends: it gets 400 and the connection
 * closes, as does a head larger than HEAD_MAX or "Connection: close".
 */

#define HEAD_MAX    8192
#define READ_MAX    (64 * 1024)
#define ANSWERS_MAX 64 /* answers gathered from one read; more wait for the next read's turn */

static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
                             "\r\nHello, world\n";
static const char bad[] =
    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

struct conn {
  uv_tcp_t tcp;
  size_t held;         /* bytes of an unfinished head kept in head */
  bool closing;        /* answered last; closes once written */
  char head[HEAD_MAX]; /* the start of a head that did not arrive in one read */
};

static char read_buf[READ_MAX];
static char out_buf[ANSWERS_MAX * sizeof(answer)];
static uv_loop_t *loop;

static void on_closed(uv_handle_t *h) {
  free(h->data);
}

static void conn_close(struct conn *c) {
  if (!uv_is_closing((uv_handle_t *)&c->tcp))
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_written(uv_write_t *req, int status) {
  struct conn *c = req->data;
  free(req);
  if (status < 0 || c->closing)
    conn_close(c);
}

/* Sends len bytes of buf: what the kernel does not take at once is copied and queued. */
static void send_bytes(struct conn *c, char *buf, size_t len) {
  uv_buf_t b = uv_buf_init(buf, (unsigned)len);
  int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (n == UV_EAGAIN)
    n = 0;
  if (n < 0) {
    conn_close(c);
    return;
  }
  if ((size_t)n == len) {
    if (c->closing)
      conn_close(c);
    return;
  }
  uv_write_t *req = malloc(sizeof(*req) + len - (size_t)n);
  if (req == NULL) {
    conn_close(c);
    return;
  }
  memcpy(req + 1, buf + n, len - (size_t)n);
  req->data = c;
  b = uv_buf_init((char *)(req + 1), (unsigned)(len - (size_t)n));
  if (uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
    free(req);
    conn_close(c);
  }
}

/* The value of header name in the head [p, end), or NULL; *len is its length. */
static const char *header(const char *p, const char *end, const char *name, size_t *len) {
  size_t n = strlen(name);
  for (const char *line = memchr(p, '\n', (size_t)(end - p)); line != NULL && line + 1 < end;
       line = memchr(line + 1, '\n', (size_t)(end - line - 1))) {
    const char *h = line + 1;
    if ((size_t)(end - h) > n && h[n] == ':' && strncasecmp(h, name, n) == 0) {
      const char *v = h + n + 1, *e = memchr(v, '\r', (size_t)(end - v));
      while (v < e && (*v == ' ' || *v == '\t'))
        v++;
      *len = (size_t)(e - v);
      return v;
    }
  }
  return NULL;
}

/* Judges one whole head [p, end): true when it may be answered and the connection kept. */
static bool head_ok(struct conn *c, const char *p, const char *end) {
  size_t len;
  const char *v = header(p, end, "Content-Length", &len);
  if ((v != NULL && !(len == 1 && *v == '0')) || header(p, end, "Transfer-Encoding", &len))
    return false;
  v = header(p, end, "Connection", &len);
  if (v != NULL && len == 5 && strncasecmp(v, "close", 5) == 0)
    c->closing = true;
  return true;
}

/* The heads in [p, p + len): returns how many bytes of whole heads were answered (or -1 when the
   connection ends); the rest is the start of the next head. */
static long answer_heads(struct conn *c, const char *p, size_t len) {
  size_t used = 0, out = 0;
  while (!c->closing) {
    const char *e = NULL;
    for (const char *q = p + used; (q = memchr(q, '\n', len - (size_t)(q - p))) != NULL; q++) {
      if (q + 2 < p + len && q[1] == '\r' && q[2] == '\n') {
        e = q + 3;
        break;
      }
    }
    if (e == NULL)
      break;
    if (!head_ok(c, p + used, e)) {
      c->closing = true;
      memcpy(out_buf + out, bad, sizeof(bad) - 1);
      out += sizeof(bad) - 1;
      break;
    }
    memcpy(out_buf + out, answer, sizeof(answer) - 1);
    out += sizeof(answer) - 1;
    used = (size_t)(e - p);
    if (out + sizeof(answer) > sizeof(out_buf) - sizeof(bad)) {
      send_bytes(c, out_buf, out);
      out = 0;
    }
  }
  if (out > 0)
    send_bytes(c, out_buf, out);
  return c->closing ? -1 : (long)used;
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)h;
  (void)hint;
  *b = uv_buf_init(read_buf, sizeof(read_buf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  struct conn *c = s->data;
  if (nread < 0) {
    conn_close(c);
    return;
  }
  if (nread == 0 || c->closing)
    return;
  const char *p = b->base;
  size_t len = (size_t)nread;
  if (c->held > 0) {
    /* A head split over reads: gathered with what came now (heads are small here). */
    if (c->held + len > HEAD_MAX) {
      conn_close(c);
      return;
    }
    memcpy(c->head + c->held, p, len);
    p = c->head;
    len += c->held;
  }
  long used = answer_heads(c, p, len);
  if (used < 0) {
    uv_read_stop(s);
    return;
  }
  size_t rest = len - (size_t)used;
  if (rest > HEAD_MAX) {
    conn_close(c);
    return;
  }
  memmove(c->head, p + used, rest);
  c->held = rest;
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0)
    return;
  struct conn *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return;
  uv_tcp_init(loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
      uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read) != 0) {
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
}

static void on_signal(uv_signal_t *h, int signum) {
  (void)signum;
  uv_stop(h->loop);
}

int main(int argc, char **argv) {
  int port = argc == 3 && strcmp(argv[1], "--port") == 0 ? atoi(argv[2]) : -1;
  if (port < 0 || port > 65535) {
    fprintf(stderr, "usage: wsbal-bench-http --port P (0 picks a free one)\n"
                    "Prints \"listening on 127.0.0.1:PORT\" once ready.\n");
    return 2;
  }
  loop = uv_default_loop();
  uv_tcp_t server;
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", port, &addr);
  uv_tcp_init(loop, &server);
  int rc = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&server, 1024, on_connection);
  if (rc != 0) {
    fprintf(stderr, "wsbal-bench-http: cannot listen on port %d: %s\n", port, uv_strerror(rc));
    return 3;
  }
  struct sockaddr_storage bound;
  int blen = sizeof(bound);
  uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &blen);
  printf("listening on 127.0.0.1:%d\n", ntohs(((struct sockaddr_in *)&bound)->sin_port));
  fflush(stdout);
  uv_signal_t sigterm, sigint;
  uv_signal_init(loop, &sigterm);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  uv_signal_init(loop, &sigint);
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_run(loop, UV_RUN_DEFAULT);
  return 0;
}
