/* Fuzz target for common/probe.c: backends' answers to health checks and load-report polls. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "fuzz.h"
#include "probe.h"

/*
 * Byte 0 of an input: whether the peer has closed (bit 0) and how the answer is built from the
 * rest (bits 1-2): as it is; after a 200 head with its Content-Length; after a 200 head and
 * sent chunked, each chunk as long as bits 3-7 say; or after a head the fuzzer writes, up to
 * its first empty line, with the rest as a Content-Length body. A backend's health and load
 * endpoints answer JSON, so most inputs are bodies behind a valid head.
 */
#define M_EOF      0x01
#define M_KIND(m)  (((m) >> 1) & 3)
#define M_CHUNK(m) ((size_t)((m) >> 3) + 1)

static char *build(uint8_t mode, const char *data, size_t size, size_t *len) {
  size_t cap = 8 * size + 256; /* a chunk of one byte takes six */
  char *buf = malloc(cap);
  REQUIRE(buf != NULL);
  size_t n = 0;
  switch (M_KIND(mode)) {
  case 0:
    memcpy(buf, data, size);
    n = size;
    break;
  case 1:
    n = (size_t)snprintf(buf, cap, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", size);
    memcpy(buf + n, data, size);
    n += size;
    break;
  case 2: {
    n = (size_t)snprintf(buf, cap, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (size_t at = 0; at < size;) {
      size_t c = size - at < M_CHUNK(mode) ? size - at : M_CHUNK(mode);
      n += (size_t)snprintf(buf + n, cap - n, "%zx\r\n", c);
      memcpy(buf + n, data + at, c);
      n += c;
      memcpy(buf + n, "\r\n", 2);
      n += 2;
      at += c;
    }
    memcpy(buf + n, "0\r\n\r\n", 5);
    n += 5;
    break;
  }
  default: {
    const char *end = memmem(data, size, "\r\n\r\n", 4);
    size_t head = end != NULL ? (size_t)(end - data) : size;
    memcpy(buf, data, head);
    n = head;
    size_t body = end != NULL ? size - head - 4 : 0;
    n += (size_t)snprintf(buf + n, cap - n, "\r\nContent-Length: %zu\r\n\r\n", body);
    memcpy(buf + n, data + size - body, body);
    n += body;
    break;
  }
  }
  *len = n;
  return buf;
}

static void check_verdicts(const struct wsb_probe_response *r) {
  char why[64];
  memset(why, 'x', sizeof(why));
  why[0] = '\0';
  enum wsb_probe_result h = wsb_probe_health(r, why, sizeof(why));
  REQUIRE(h == WSB_PROBE_OK || h == WSB_PROBE_BAD_STATUS);
  REQUIRE(memchr(why, '\0', sizeof(why)) != NULL);
  REQUIRE(h == WSB_PROBE_OK || why[0] != '\0');
  REQUIRE((r->status >= 200 && r->status <= 299) || h == WSB_PROBE_BAD_STATUS);
  REQUIRE(wsb_probe_health(r, NULL, 0) == h);
  uint64_t count = UINT64_MAX;
  enum wsb_probe_result l = wsb_probe_load(r, &count);
  REQUIRE(l == WSB_PROBE_OK || l == WSB_PROBE_BAD_STATUS || l == WSB_PROBE_BAD_BODY);
  REQUIRE((l == WSB_PROBE_BAD_STATUS) == (r->status < 200 || r->status > 299));
  REQUIRE(l != WSB_PROBE_OK || count != UINT64_MAX || r->body_len >= 20);
  REQUIRE(wsb_probe_result_name(h) != NULL && wsb_probe_result_name(l) != NULL);
}

/* The parse of buf[0, len): its verdict in range, and a complete answer that stays complete. */
static int parse(const char *buf, size_t len, bool eof, struct wsb_probe_response *r) {
  char *copy = malloc(len ? len : 1); /* exactly len bytes, for ASan */
  REQUIRE(copy != NULL);
  memcpy(copy, buf, len);
  int rc = wsb_probe_parse(copy, len, eof, r);
  free(copy);
  REQUIRE(rc == 0 || rc == WSB_PARTIAL || rc == WSB_EHTTP || rc == WSB_ETOO_BIG);
  REQUIRE(rc != WSB_ETOO_BIG || len >= WSB_PROBE_MAX_RESPONSE);
  REQUIRE(rc != WSB_PARTIAL || !eof);
  if (rc == 0) {
    REQUIRE(r->status >= 200 && r->status <= 999);
    REQUIRE(r->body_len <= len);
  }
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  uint8_t mode = data[0];
  size_t len;
  char *buf = build(mode, (const char *)data + 1, size - 1, &len);
  bool eof = mode & M_EOF;
  struct wsb_probe_response *whole = malloc(sizeof(*whole)), *part = malloc(sizeof(*part));
  REQUIRE(whole != NULL && part != NULL);
  int rc = parse(buf, len, eof, whole);
  if (rc == 0)
    check_verdicts(whole);
  /* More bytes never undo an answer already complete, nor mend a broken one. */
  size_t step = len <= 16 ? 1 : len / 8;
  for (size_t n = 0; n < len; n += step) {
    int prc = parse(buf, n, false, part);
    if (prc == 0 && len <= WSB_PROBE_MAX_RESPONSE) {
      REQUIRE(parse(buf, len, false, whole) == 0);
      REQUIRE(part->status == whole->status && part->body_len == whole->body_len &&
              memcmp(part->body, whole->body, part->body_len) == 0);
    }
    if (prc == WSB_EHTTP)
      REQUIRE(rc == WSB_EHTTP || rc == WSB_ETOO_BIG);
  }
  free(part);
  free(whole);
  free(buf);
  return 0;
}
