/* A JSON writer into a caller's buffer: escaping done once, here, for every string. */
#ifndef WSB_JSON_H
#define WSB_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "text.h"

#define WSB_JSON_DEPTH 16

struct wsb_json {
  struct wsb_text text; /* where the JSON goes; its overflow makes wsb_json_finish say 0 */
  int depth;
  bool has_items[WSB_JSON_DEPTH + 1]; /* per nesting level: a comma goes before the next item */
  bool after_key;
};

void wsb_json_init(struct wsb_json *j, char *buf, size_t cap);
void wsb_json_object_begin(struct wsb_json *j);
void wsb_json_object_end(struct wsb_json *j);
void wsb_json_array_begin(struct wsb_json *j);
void wsb_json_array_end(struct wsb_json *j);
/* An object member's name; the next value call is its value. */
void wsb_json_key(struct wsb_json *j, const char *name);
/* A string of len bytes: quotes, backslashes and control characters escaped; bytes that are not
   valid UTF-8 become U+FFFD, so the output is always valid JSON text. */
void wsb_json_string(struct wsb_json *j, const char *s, size_t len);
void wsb_json_cstring(struct wsb_json *j, const char *s);
void wsb_json_uint(struct wsb_json *j, uint64_t v);
void wsb_json_int(struct wsb_json *j, int64_t v);
void wsb_json_bool(struct wsb_json *j, bool v);
void wsb_json_null(struct wsb_json *j);

/* The text's length, or 0 when it overflowed or is not complete (unbalanced). */
size_t wsb_json_finish(struct wsb_json *j);

#endif
