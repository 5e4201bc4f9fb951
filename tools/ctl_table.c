/* wsbalctl's text tables: columns as wide as their widest cell, numbers aligned right. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

void wsb_ctl_table_init(struct wsb_ctl_table *t, size_t ncols, const bool *right) {
  *t = (struct wsb_ctl_table){.ncols = ncols, .right = right};
}

void wsb_ctl_table_add(struct wsb_ctl_table *t, const char *cell) {
  if (t->failed)
    return;
  if (t->ncells == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 64;
    char **cells = realloc(t->cells, cap * sizeof(*cells));
    if (cells == NULL) {
      t->failed = true;
      return;
    }
    t->cells = cells;
    t->cap = cap;
  }
  char *copy = strdup(cell);
  if (copy == NULL) {
    t->failed = true;
    return;
  }
  t->cells[t->ncells++] = copy;
}

/* Display width: UTF-8 continuation bytes take no column of their own. */
static size_t width_of(const char *s) {
  size_t w = 0;
  for (; *s; s++)
    w += ((unsigned char)*s & 0xC0) != 0x80;
  return w;
}

static void pad(FILE *out, size_t n) {
  while (n-- > 0)
    fputc(' ', out);
}

int wsb_ctl_table_print(struct wsb_ctl_table *t, FILE *out) {
  if (t->failed) {
    wsb_ctl_table_free(t);
    return -ENOMEM;
  }
  size_t *width = calloc(t->ncols, sizeof(*width));
  if (width == NULL) {
    wsb_ctl_table_free(t);
    return -ENOMEM;
  }
  for (size_t i = 0; i < t->ncells; i++) {
    size_t w = width_of(t->cells[i]);
    if (w > width[i % t->ncols])
      width[i % t->ncols] = w;
  }
  for (size_t i = 0; i < t->ncells; i++) {
    size_t col = i % t->ncols, gap = width[col] - width_of(t->cells[i]);
    bool last = col == t->ncols - 1 || i == t->ncells - 1;
    if (col > 0)
      fputs("  ", out);
    if (t->right != NULL && t->right[col])
      pad(out, gap);
    fputs(t->cells[i], out);
    if ((t->right == NULL || !t->right[col]) && !last)
      pad(out, gap);
    if (last)
      fputc('\n', out);
  }
  free(width);
  wsb_ctl_table_free(t);
  return 0;
}

void wsb_ctl_table_free(struct wsb_ctl_table *t) {
  for (size_t i = 0; i < t->ncells; i++)
    free(t->cells[i]);
  free(t->cells);
  t->cells = NULL;
  t->ncells = t->cap = 0;
}
