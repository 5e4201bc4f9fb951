/* Byte queues that cost nothing while empty: idle sessions must stay small. */
#include "buffer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int wsb_buf_append(struct wsb_buf *b, const void *data, size_t n) {
  if (n == 0)
    return 0;
  if ((uint64_t)b->len + n > UINT32_MAX / 2)
    return -ENOMEM;
  size_t need = b->len + n;
  if (b->off + need > b->cap) {
    if (need <= b->cap && b->off > 0) {
      /* Room enough once the consumed front is reclaimed. */
      memmove(b->p, b->p + b->off, b->len);
    } else {
      size_t cap = b->cap ? b->cap : 256;
      while (cap < need)
        cap *= 2;
      uint8_t *p = malloc(cap);
      if (p == NULL)
        return -ENOMEM;
      if (b->len)
        memcpy(p, b->p + b->off, b->len);
      free(b->p);
      b->p = p;
      b->cap = (uint32_t)cap;
    }
    b->off = 0;
  }
  memcpy(b->p + b->off + b->len, data, n);
  b->len += (uint32_t)n;
  return 0;
}

void wsb_buf_consume(struct wsb_buf *b, size_t n) {
  if (n >= b->len) {
    wsb_buf_free(b);
    return;
  }
  b->off += (uint32_t)n;
  b->len -= (uint32_t)n;
}

void wsb_buf_drop_tail(struct wsb_buf *b, size_t n) {
  if (n >= b->len) {
    wsb_buf_free(b);
    return;
  }
  b->len -= (uint32_t)n;
}

void wsb_buf_free(struct wsb_buf *b) {
  free(b->p);
  *b = (struct wsb_buf){0};
}
