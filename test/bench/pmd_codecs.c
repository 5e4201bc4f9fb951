/* zlib against libdeflate for permessage-deflate's case: 1 KiB JSON-like messages, one at a time.
 */
/*
 * Not built by meson (libdeflate is no dependency of wsbal); see test/bench/README.md:
 *   cc -O2 -Icommon test/bench/pmd_codecs.c common/pmd_codec.c common/buffer.c \
 *      -lz -ldeflate -o /tmp/pmd_codecs && /tmp/pmd_codecs
 * Each codec compresses and decompresses the same deterministic messages, each message on its
 * own (no context takeover, as wsbal's default); zlib through wsbal's own wsb_deflate and
 * wsb_inflate, with the tail handling they do. Prints bytes per message and ns per message.
 */
#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pmd_codec.h"

#define MESSAGES 20000
#define MSG_LEN  1024

static unsigned next(unsigned *seed) {
  *seed = *seed * 1103515245u + 12345u;
  return *seed >> 8;
}

/* A telemetry/chat-like JSON object of exactly MSG_LEN bytes. */
static void message(char *out, unsigned i) {
  static const char *const users[] = {"alice", "bob", "carol", "dave", "erin", "frank"};
  static const char *const words[] = {"ok",  "temperature", "pressure", "hello",  "update",
                                      "ack", "sensor",      "room",     "status", "value"};
  unsigned seed = i * 2654435761u;
  int n = snprintf(out, MSG_LEN, "{\"seq\":%u,\"ts\":%u,\"user\":\"%s\",\"readings\":[", i,
                   1700000000u + i * 7, users[next(&seed) % 6]);
  while (n < MSG_LEN - 120) {
    n += snprintf(out + n, (size_t)(MSG_LEN - n), "{\"k\":\"%s\",\"v\":%u.%02u,\"ok\":%s},",
                  words[next(&seed) % 10], next(&seed) % 1000, next(&seed) % 100,
                  next(&seed) % 2 ? "true" : "false");
  }
  n += snprintf(out + n, (size_t)(MSG_LEN - n), "{}],\"text\":\"");
  while (n < MSG_LEN - 2)
    out[n++] = "abcdefghij klmnop"[next(&seed) % 17];
  out[n++] = '"';
  out[n++] = '}';
}

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(void) {
  char *msgs = malloc((size_t)MESSAGES * MSG_LEN);
  for (unsigned i = 0; i < MESSAGES; i++)
    message(msgs + (size_t)i * MSG_LEN, i);
  for (int level = 1; level <= 6; level += 5) {
    /* zlib through wsbal's codec. */
    struct wsb_deflater c;
    struct wsb_inflater d;
    wsb_deflater_init(&c, level, 15);
    wsb_inflater_init(&d);
    size_t zbytes = 0;
    double tc = 0, td = 0;
    for (unsigned i = 0; i < MESSAGES; i++) {
      struct wsb_buf z = {0}, out = {0};
      double t0 = now_ns();
      wsb_deflate(&c, (const uint8_t *)msgs + (size_t)i * MSG_LEN, MSG_LEN, true, false, &z);
      double t1 = now_ns();
      if (wsb_inflate(&d, wsb_buf_data(&z), z.len, true, false, 1 << 20, &out) != 0 ||
          out.len != MSG_LEN)
        abort();
      td += now_ns() - t1;
      tc += t1 - t0;
      zbytes += z.len;
      wsb_buf_free(&z);
      wsb_buf_free(&out);
    }
    printf("zlib %s level %d: %.1f bytes/msg, deflate %.0f ns/msg, inflate %.0f ns/msg\n",
           zlibVersion(), level, (double)zbytes / MESSAGES, tc / MESSAGES, td / MESSAGES);
    wsb_deflater_free(&c);
    wsb_inflater_free(&d);

    /* libdeflate: whole buffers only; the tail is added and removed by hand. */
    struct libdeflate_compressor *lc = libdeflate_alloc_compressor(level);
    struct libdeflate_decompressor *ld = libdeflate_alloc_decompressor();
    uint8_t zbuf[2 * MSG_LEN], back[MSG_LEN];
    zbytes = 0;
    tc = td = 0;
    for (unsigned i = 0; i < MESSAGES; i++) {
      double t0 = now_ns();
      size_t zn =
          libdeflate_deflate_compress(lc, msgs + (size_t)i * MSG_LEN, MSG_LEN, zbuf, sizeof(zbuf));
      double t1 = now_ns();
      size_t got = 0;
      /* Its output ends in a final block: a receiver needs nothing appended. */
      if (zn == 0 ||
          libdeflate_deflate_decompress(ld, zbuf, zn, back, sizeof(back), &got) !=
              LIBDEFLATE_SUCCESS ||
          got != MSG_LEN)
        abort();
      td += now_ns() - t1;
      tc += t1 - t0;
      zbytes += zn;
    }
    printf("libdeflate level %d: %.1f bytes/msg, deflate %.0f ns/msg, inflate %.0f ns/msg\n", level,
           (double)zbytes / MESSAGES, tc / MESSAGES, td / MESSAGES);
    libdeflate_free_compressor(lc);
    libdeflate_free_decompressor(ld);
  }
  free(msgs);
  return 0;
}
