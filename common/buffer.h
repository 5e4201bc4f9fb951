/* A growable byte queue: append at the end, consume from the front, no memory while empty. */
#ifndef WSB_BUFFER_H
#define WSB_BUFFER_H

#include <stddef.h>
#include <stdint.h>

struct wsb_buf {
  uint8_t *p;   /* NULL while empty */
  uint32_t off; /* consumed bytes at the front */
  uint32_t len; /* bytes after off */
  uint32_t cap;
};

static inline const uint8_t *wsb_buf_data(const struct wsb_buf *b) {
  return b->p + b->off;
}

/* Appends n bytes. Returns 0 or -ENOMEM (the buffer is unchanged then). */
int wsb_buf_append(struct wsb_buf *b, const void *data, size_t n);

/* Drops n bytes from the front; frees the memory when nothing is left. */
void wsb_buf_consume(struct wsb_buf *b, size_t n);

/* Drops n bytes from the end; frees the memory when nothing is left. */
void wsb_buf_drop_tail(struct wsb_buf *b, size_t n);

void wsb_buf_free(struct wsb_buf *b);

#endif
