/* The bounded text writer behind the JSON writer and the heads the proxy writes. */
#include "text.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void wsb_text_init(struct wsb_text *t, char *buf, size_t cap) {
  *t = (struct wsb_text){.buf = buf, .cap = cap};
}

int wsb_text_init_alloc(struct wsb_text *t, size_t cap, size_t max) {
  *t = (struct wsb_text){.buf = malloc(cap), .cap = cap, .max = max > cap ? max : cap};
  return t->buf != NULL ? 0 : -ENOMEM;
}

void wsb_text_free(struct wsb_text *t) {
  if (t->max != 0)
    free(t->buf);
  t->buf = NULL;
  t->cap = t->len = 0;
}

/* Makes room for n more bytes: true when they fit, growing an allocated buffer if need be. */
static bool room_for(struct wsb_text *t, size_t n) {
  if (t->overflow)
    return false;
  if (n <= t->cap - t->len)
    return true;
  if (t->max == 0 || n > t->max - t->len) {
    t->overflow = true;
    return false;
  }
  /* Doubling keeps the copies linear in the text's final size. */
  size_t cap = t->cap < t->max / 2 ? t->cap * 2 : t->max;
  if (cap < t->len + n)
    cap = t->len + n;
  char *p = realloc(t->buf, cap);
  if (p == NULL) {
    t->overflow = true;
    return false;
  }
  t->buf = p;
  t->cap = cap;
  return true;
}

void wsb_text_put_slow(struct wsb_text *t, const void *s, size_t n) {
  if (!room_for(t, n) || n == 0)
    return;
  memcpy(t->buf + t->len, s, n);
  t->len += n;
}

void wsb_text_printf(struct wsb_text *t, const char *fmt, ...) {
  if (t->overflow)
    return;
  va_list ap;
  va_start(ap, fmt);
  size_t room = t->cap - t->len;
  int n = vsnprintf(room > 0 ? t->buf + t->len : NULL, room, fmt, ap);
  va_end(ap);
  if (n >= 0 && (size_t)n < room) {
    t->len += (size_t)n;
    return;
  }
  if (n < 0 || !room_for(t, (size_t)n)) {
    t->overflow = true;
    return;
  }
  /* It fits, but vsnprintf also wants a byte for its NUL: format it aside when the piece fills
     the buffer exactly, in place otherwise. */
  char *p = (size_t)n < t->cap - t->len ? t->buf + t->len : malloc((size_t)n + 1);
  if (p == NULL) {
    t->overflow = true;
    return;
  }
  va_start(ap, fmt);
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  va_end(ap);
  if (p != t->buf + t->len) {
    memcpy(t->buf + t->len, p, (size_t)n);
    free(p);
  }
  t->len += (size_t)n;
}

ssize_t wsb_text_length(const struct wsb_text *t) {
  return t->overflow ? -ENOSPC : (ssize_t)t->len;
}
