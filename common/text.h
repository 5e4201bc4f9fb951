/* A bounded append-only text writer: pieces go in whole or not at all, overflow checked once. */
#ifndef WSB_TEXT_H
#define WSB_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/types.h>

/*
 * The text is buf[0, len). A piece that does not fit sets overflow and is not added, and nothing
 * after it is either (the text would have a hole), so a writer appends without checking and
 * looks once at the end. Bytes of buf past len are scratch (printf formats in place).
 */
struct wsb_text {
  char *buf;
  size_t cap;    /* bytes buf holds */
  size_t len;    /* bytes of text */
  size_t max;    /* 0: buf is the caller's, cap is the bound; else buf is malloc'd, grows to max */
  bool overflow; /* something did not fit (or memory ran out): the text is unusable */
};

/* Writes into the caller's buf of cap bytes; the text may fill it exactly (no NUL is kept). */
void wsb_text_init(struct wsb_text *t, char *buf, size_t cap);

/* Writes into a malloc'd buffer of cap bytes that grows as pieces need, up to max bytes (max >=
   cap > 0). Returns 0 or -ENOMEM; wsb_text_free releases it. */
int wsb_text_init_alloc(struct wsb_text *t, size_t cap, size_t max);
void wsb_text_free(struct wsb_text *t);

/* The rare path of wsb_text_put: growing the buffer, or overflow. */
void wsb_text_put_slow(struct wsb_text *t, const void *s, size_t n);

/* Inline, since writers put a byte or a few at a time. */
static inline void wsb_text_put(struct wsb_text *t, const void *s, size_t n) {
  if (t->overflow || n > t->cap - t->len) {
    wsb_text_put_slow(t, s, n);
  } else if (n > 0) {
    memcpy(t->buf + t->len, s, n);
    t->len += n;
  }
}

/* Inline too: the length of a literal is known where it is written. */
static inline void wsb_text_puts(struct wsb_text *t, const char *s) {
  wsb_text_put(t, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) void wsb_text_printf(struct wsb_text *t, const char *fmt,
                                                           ...);

/* The text's length, or -ENOSPC when something did not fit. */
ssize_t wsb_text_length(const struct wsb_text *t);

#endif
