/* permessage-deflate's codec (RFC 7692 7.2): raw deflate streams, the removed tail, the bound. */
#include "pmd_codec.h"

#include <errno.h>
#include <string.h>

#include "errors.h"

#define CHUNK      (16 * 1024) /* output produced per zlib call */
#define WINDOW_MAX 32768       /* the largest LZ77 window, 2^15 */

static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};

int wsb_inflater_init(struct wsb_inflater *d) {
  memset(d, 0, sizeof(*d));
  /* Negative bits: raw deflate, no zlib header or checksum (section 7.2.2). */
  if (inflateInit2(&d->z, -15) != Z_OK)
    return -ENOMEM;
  d->ready = true;
  return 0;
}

void wsb_inflater_free(struct wsb_inflater *d) {
  if (d->ready)
    inflateEnd(&d->z);
  memset(d, 0, sizeof(*d));
}

void wsb_inflater_reset(struct wsb_inflater *d) {
  inflateReset(&d->z);
  d->ended = false;
  d->n = 0;
}

/*
 * A final block ended the stream (section 7.2.3.3 lets a sender use one). zlib must be reset to
 * read on; keeping the context then means handing the window over by hand.
 */
static int restart_after_final(struct wsb_inflater *d, bool keep_context) {
  if (!keep_context) {
    inflateReset(&d->z);
    return 0;
  }
  uint8_t window[WINDOW_MAX];
  uInt len = sizeof(window);
  if (inflateGetDictionary(&d->z, window, &len) != Z_OK)
    return WSB_EINFLATE;
  inflateReset(&d->z);
  return inflateSetDictionary(&d->z, window, len) == Z_OK ? 0 : WSB_EINFLATE;
}

/* Runs in through d until it is used up, appending output, bounded by max. */
static int run(struct wsb_inflater *d, const uint8_t *in, size_t len, uint64_t max,
               struct wsb_buf *out) {
  uint8_t chunk[CHUNK];
  d->z.next_in = (Bytef *)(uintptr_t)in; /* zlib does not write input; its type lacks const */
  d->z.avail_in = (uInt)len;
  while (d->z.avail_in > 0) {
    if (d->ended)
      return WSB_EINFLATE; /* bytes after the final block */
    /* One byte past the limit is enough to know the message is too big. */
    uint64_t room = max == 0 ? CHUNK : max + 1 - d->n;
    d->z.next_out = chunk;
    d->z.avail_out = (uInt)(room < CHUNK ? room : CHUNK);
    uInt before = d->z.avail_out;
    int zr = inflate(&d->z, Z_SYNC_FLUSH);
    size_t got = before - d->z.avail_out;
    if (zr == Z_STREAM_END)
      d->ended = true;
    else if (zr == Z_BUF_ERROR && got == 0 && d->z.avail_in > 0 && d->z.avail_out > 0)
      return WSB_EINFLATE;
    else if (zr != Z_OK && zr != Z_BUF_ERROR)
      return zr == Z_MEM_ERROR ? -ENOMEM : WSB_EINFLATE;
    d->n += got;
    if (max != 0 && d->n > max)
      return WSB_ETOO_BIG;
    if (got > 0 && wsb_buf_append(out, chunk, got) != 0)
      return -ENOMEM;
  }
  return 0;
}

int wsb_inflate(struct wsb_inflater *d, const uint8_t *in, size_t len, bool fin, bool keep_context,
                uint64_t max, struct wsb_buf *out) {
  /* zlib counts in uInt: a piece larger than that goes in several runs. */
  while (len > 0) {
    size_t part = len > (1u << 30) ? (1u << 30) : len;
    int rc = run(d, in, part, max, out);
    if (rc != 0)
      return rc;
    in += part;
    len -= part;
  }
  if (!fin)
    return 0;
  int rc = 0;
  if (!d->ended)
    rc = run(d, tail, sizeof(tail), max, out);
  /* Everything given was consumed: any output zlib still holds back fits no bound but max. */
  if (rc == 0 && d->ended)
    rc = restart_after_final(d, keep_context);
  else if (rc == 0 && !keep_context)
    inflateReset(&d->z);
  d->ended = false;
  d->n = 0;
  return rc;
}

int wsb_deflater_init(struct wsb_deflater *c, int level, int bits) {
  memset(c, 0, sizeof(*c));
  if (level < 1 || level > 9 || bits < 9 || bits > 15)
    return -EINVAL;
  if (deflateInit2(&c->z, level, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return -ENOMEM;
  c->ready = true;
  return 0;
}

void wsb_deflater_free(struct wsb_deflater *c) {
  if (c->ready)
    deflateEnd(&c->z);
  memset(c, 0, sizeof(*c));
}

int wsb_deflate(struct wsb_deflater *c, const uint8_t *in, size_t len, bool fin, bool keep_context,
                struct wsb_buf *out) {
  uint8_t chunk[CHUNK];
  size_t start = out->len;
  int rc = 0;
  c->z.next_in = (Bytef *)(uintptr_t)in;
  c->z.avail_in = 0;
  /* A sync flush ends once avail_out is left non-zero with all the input taken. */
  for (;;) {
    if (c->z.avail_in == 0 && len > 0) {
      size_t part = len > (1u << 30) ? (1u << 30) : len;
      c->z.avail_in = (uInt)part;
      len -= part;
    }
    c->z.next_out = chunk;
    c->z.avail_out = CHUNK;
    int zr = deflate(&c->z, len > 0 ? Z_NO_FLUSH : Z_SYNC_FLUSH);
    size_t got = CHUNK - c->z.avail_out;
    if (zr != Z_OK && zr != Z_BUF_ERROR) {
      rc = -ENOMEM;
      break;
    }
    if (got > 0 && wsb_buf_append(out, chunk, got) != 0) {
      rc = -ENOMEM;
      break;
    }
    if (len == 0 && c->z.avail_in == 0 && c->z.avail_out > 0)
      break;
  }
  if (rc == 0 && fin) {
    if (out->len - start >= sizeof(tail) &&
        memcmp(wsb_buf_data(out) + out->len - sizeof(tail), tail, sizeof(tail)) == 0)
      wsb_buf_drop_tail(out, sizeof(tail));
    else if (out->len == start && wsb_buf_append(out, tail, 1) != 0)
      /* Nothing new since the last flush, so zlib wrote nothing: the receiver appends the tail
         anyway, and only a 0x00 in front of it makes that an empty stored block (7.2.3.6). */
      rc = -ENOMEM;
  }
  if (rc != 0 || !keep_context)
    deflateReset(&c->z);
  return rc;
}
