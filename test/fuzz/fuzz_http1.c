/* Fuzz target for common/http1.c: plain request and response framing, chunked bodies in pieces. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "fuzz.h"
#include "http1.h"
#include "proxy.h"

/* Pieces of heads and chunked bodies; in the "words" modes each input byte picks one. */
static const char *const words[] = {
    "\r\n",
    "\r\n",
    "\n",
    "\r",
    ": ",
    ";",
    " ",
    "\t",
    ",",
    "0",
    "1",
    "5",
    "a",
    "F",
    "x",
    "hello",
    "Host: x\r\n",
    "Content-Length: ",
    "Transfer-Encoding: ",
    "chunked",
    "gzip",
    "Expect: 100-continue\r\n",
    "Connection: close\r\n",
    "POST / HTTP/1.1\r\n",
    "GET /a/../b HTTP/1.0\r\n",
    "HEAD / HTTP/1.1\r\n",
    "HTTP/1.1 200 OK\r\n",
    "HTTP/1.0 204 No Content\r\n",
    "HTTP/1.1 304 x\r\n",
    "X-T: 1\r\n",
    "0\r\n\r\n",
};
#define N_WORDS (sizeof(words) / sizeof(words[0]))

static char *build(bool use_words, const uint8_t *data, size_t size, size_t *len) {
  size_t n = 0;
  for (size_t i = 0; i < size; i++)
    n += use_words ? strlen(words[data[i] % N_WORDS]) : 1;
  char *buf = malloc(n ? n : 1);
  if (buf == NULL)
    return NULL;
  char *p = buf;
  for (size_t i = 0; i < size; i++) {
    if (!use_words) {
      *p++ = (char)data[i];
      continue;
    }
    const char *w = words[data[i] % N_WORDS];
    memcpy(p, w, strlen(w));
    p += strlen(w);
  }
  *len = n;
  return buf;
}

/* Feeds a body in pieces of at most step bytes; returns its length in buf, or the error. */
static ssize_t feed(struct wsb_body b, const char *buf, size_t len, size_t step,
                    uint64_t *payload) {
  size_t used = 0;
  *payload = 0;
  while (used < len && !b.done) {
    size_t piece = len - used < step ? len - used : step;
    bool data;
    ssize_t n = wsb_body_step(&b, buf + used, piece, &data);
    if (n < 0)
      return n;
    REQUIRE(n > 0 && (size_t)n <= piece);
    if (data)
      *payload += (uint64_t)n;
    used += (size_t)n;
  }
  REQUIRE(*payload == b.data);
  return b.done ? (ssize_t)used : WSB_PARTIAL;
}

/* A body's verdict and payload do not depend on how its bytes arrive. */
static void body_invariants(struct wsb_body b, const char *buf, size_t len, size_t step) {
  uint64_t whole_payload, step_payload, byte_payload;
  ssize_t whole = feed(b, buf, len, len ? len : 1, &whole_payload);
  REQUIRE(whole == WSB_PARTIAL || whole == WSB_ECHUNKED || whole == WSB_EBODY_TOO_LARGE ||
          (whole >= 0 && (size_t)whole <= len));
  REQUIRE(feed(b, buf, len, step, &step_payload) == whole);
  REQUIRE(feed(b, buf, len, 1, &byte_payload) == whole);
  if (whole >= 0)
    REQUIRE(whole_payload == step_payload && step_payload == byte_payload);
  struct wsb_body copy = b;
  ssize_t fed = wsb_body_feed(&copy, buf, len);
  REQUIRE(fed < 0 || (size_t)fed <= len);
}

static void head(bool response, const char *buf, size_t len, size_t step) {
  struct wsb_http_head h;
  wsb_http_head_init(&h, response, 16384);
  ssize_t rc = wsb_http_feed(&h, buf, len);
  if (rc < 0)
    return;
  const char *rest = buf + rc;
  size_t rest_len = len - (size_t)rc;
  struct wsb_body b;
  if (response) {
    bool reusable;
    int verdict =
        wsb_http1_check_response(&h, (uint8_t)(step & 1 ? HTTP_HEAD : HTTP_GET), &b, &reusable);
    REQUIRE(verdict == 0 || verdict == WSB_EHTTP);
    if (verdict != 0)
      return;
    REQUIRE(b.kind != WSB_BODY_CLOSE || !reusable);
    char out[20000];
    ssize_t n = wsb_http1_response_write(out, sizeof(out), &h, &b, (unsigned)(step >> 1) & 15);
    REQUIRE(n == -ENOSPC || (n > 0 && memcmp(out, "HTTP/1.1 ", 9) == 0));
    body_invariants(b, rest, rest_len, step);
    return;
  }
  struct wsb_upgrade_request u;
  struct wsb_http1_request r;
  int status = wsb_http1_check_request(&h, step, &u, &r);
  REQUIRE(status == 0 || status == 400 || status == 417 || status == 500 || status == 501 ||
          status == 505);
  if (status != 0)
    return;
  REQUIRE(r.body.kind != WSB_BODY_CLOSE);
  REQUIRE(!r.keep_alive || h.http_minor >= 1);
  REQUIRE(u.path.len > 0 && u.path.p[0] == '/');
  struct wsb_url backend = {.port = 80};
  strcpy(backend.host, "b");
  struct wsb_proxy_request pr = {
      .client = &h,
      .upgrade = &u,
      .backend = &backend,
      .client_ip = "192.0.2.1",
      .block_headers = "",
      .method = {buf, 1},
      .body = &r.body,
  };
  char out[40000];
  REQUIRE(wsb_proxy_request_write(out, sizeof(out), &pr) != 0);
  body_invariants(r.body, rest, rest_len, step);
  wsb_upgrade_request_free(&u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  /* Two control bytes: what the input is (request, response, bare chunked body; raw bytes or
     words) and how to split it. */
  uint8_t mode = data[0];
  size_t step = (size_t)data[1] % 64 + 1;
  size_t len;
  char *buf = build(mode & 1, data + 2, size - 2, &len);
  if (buf == NULL)
    return 0;
  switch ((mode >> 1) % 3) {
  case 0:
    head(false, buf, len, step);
    break;
  case 1:
    head(true, buf, len, step);
    break;
  default:
    body_invariants((struct wsb_body){.kind = WSB_BODY_CHUNKED, .max = mode >> 4}, buf, len, step);
    break;
  }
  free(buf);
  return 0;
}
