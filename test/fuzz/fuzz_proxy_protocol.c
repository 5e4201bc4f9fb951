/* Fuzz target for common/proxy_protocol.c and common/cidr.c: verdicts that do not depend on how
 * the bytes arrive, headers that survive being written back, and addresses as text. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cidr.h"
#include "errors.h"
#include "fuzz.h"
#include "proxy_protocol.h"

static const uint8_t v2_sig[] = "\r\n\r\n\0\r\nQUIT\n";

/* Random bytes seldom begin with a signature: most inputs get one put in front, and for v2 a
   plausible version, command, family and length, so the fuzzer's bytes reach the addresses and
   TLVs. */
static uint8_t *build(uint8_t mode, const uint8_t *data, size_t size, size_t *len) {
  size_t pre = 0;
  uint8_t head[16];
  switch (mode & 3) {
  case 1:
    memcpy(head, "PROXY ", 6);
    pre = 6;
    break;
  case 2:
    memcpy(head, v2_sig, 12);
    head[12] = (mode & 4) ? 0x20 : 0x21;
    head[13] = (mode & 8) ? 0x21 : 0x11;
    head[14] = 0;
    head[15] = (uint8_t)(size < 255 ? size : 255);
    pre = 16;
    break;
  case 3:
    memcpy(head, v2_sig, 12);
    pre = 12;
    break;
  }
  *len = pre + size;
  uint8_t *buf = malloc(*len ? *len : 1);
  if (buf == NULL)
    return NULL;
  memcpy(buf, head, pre);
  memcpy(buf + pre, data, size);
  return buf;
}

static void check_header(const struct wsb_pp_header *h, enum wsb_pp_mode mode) {
  REQUIRE(h->version == 1 || h->version == 2);
  REQUIRE(mode == WSB_PP_ANY || (int)mode == h->version);
  REQUIRE(h->local ? h->family == 0 : (h->family == AF_INET || h->family == AF_INET6));
  if (h->local)
    return;
  /* Written back in its own version, it reads the same. */
  uint8_t out[WSB_PP_V1_MAX + 1];
  size_t n = wsb_pp_write(out, sizeof(out), h->version, h);
  REQUIRE(n > 0 && n <= sizeof(out));
  struct wsb_pp_header back;
  enum wsb_pp_error why;
  REQUIRE(wsb_pp_parse(out, n, WSB_PP_ANY, &back, &why) == (ssize_t)n);
  size_t alen = h->family == AF_INET ? 4 : 16;
  REQUIRE(back.family == h->family && memcmp(back.src, h->src, alen) == 0 &&
          memcmp(back.dst, h->dst, alen) == 0 && back.src_port == h->src_port &&
          back.dst_port == h->dst_port);
}

/* The verdict on the whole input, and on each prefix: a prefix is partial, or already the same
   refusal, or (past the header's end) the same header. */
static void run(const uint8_t *buf, size_t len, enum wsb_pp_mode mode) {
  struct wsb_pp_header h;
  enum wsb_pp_error why = WSB_PP_ERR_COUNT;
  ssize_t rc = wsb_pp_parse(buf, len, mode, &h, &why);
  REQUIRE(rc == WSB_PARTIAL || rc == WSB_EPROXY || (rc > 0 && (size_t)rc <= len));
  REQUIRE(rc != WSB_EPROXY || why < WSB_PP_ERR_TRUNCATED);
  REQUIRE(rc != WSB_PARTIAL || len < WSB_PP_MAX);
  if (rc > 0)
    check_header(&h, mode);
  for (size_t n = 0; n < len; n++) {
    uint8_t *p = malloc(n ? n : 1); /* exactly n bytes: reading past them is an ASan report */
    if (p == NULL)
      return;
    memcpy(p, buf, n);
    struct wsb_pp_header ph;
    enum wsb_pp_error pwhy = WSB_PP_ERR_COUNT;
    ssize_t prc = wsb_pp_parse(p, n, mode, &ph, &pwhy);
    free(p);
    if (rc > 0 && (size_t)rc <= n)
      REQUIRE(prc == rc);
    else
      REQUIRE(prc == WSB_PARTIAL || (rc == WSB_EPROXY && prc == rc && pwhy == why));
  }
  (void)wsb_pp_looks_like_http(buf, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 4096)
    return 0;
  size_t len;
  uint8_t *buf = build(data[0], data + 1, size - 1, &len);
  if (buf == NULL)
    return 0;
  for (int mode = WSB_PP_V1; mode <= WSB_PP_ANY; mode++)
    run(buf, len, (enum wsb_pp_mode)mode);
  /* The same bytes as an X-Forwarded-For element and as a trust_forwarded list. */
  uint8_t family, addr[16];
  if (wsb_ip_parse((const char *)data + 1, size - 1, &family, addr))
    REQUIRE(family == AF_INET || family == AF_INET6);
  char *text = malloc(size);
  if (text != NULL) {
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    struct wsb_cidr_set set;
    if (wsb_cidr_set_parse(text, &set) == 0 && !set.all)
      for (size_t i = 0; i < set.n; i++)
        REQUIRE(set.nets[i].bits <= (set.nets[i].family == AF_INET ? 32 : 128));
    free(text);
  }
  free(buf);
  return 0;
}
