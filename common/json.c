/* JSON text out: commas and escaping handled in one place, overflow reported once at the end. */
#include "json.h"

#include <inttypes.h>
#include <string.h>

#include "utf8.h"

void wsb_json_init(struct wsb_json *j, char *buf, size_t cap) {
  memset(j, 0, sizeof(*j));
  wsb_text_init(&j->text, buf, cap);
}

static void put(struct wsb_json *j, const char *s, size_t n) {
  wsb_text_put(&j->text, s, n);
}

/* Before any value or key: the comma that separates it from the previous item. */
static void before_item(struct wsb_json *j) {
  if (j->after_key) {
    j->after_key = false;
    return;
  }
  if (j->has_items[j->depth])
    put(j, ",", 1);
  j->has_items[j->depth] = true;
}

static void open_(struct wsb_json *j, char c) {
  before_item(j);
  put(j, &c, 1);
  if (j->depth == WSB_JSON_DEPTH) {
    j->text.overflow = true;
    return;
  }
  j->has_items[++j->depth] = false;
}

static void close_(struct wsb_json *j, char c) {
  put(j, &c, 1);
  if (j->depth > 0)
    j->depth--;
}

void wsb_json_object_begin(struct wsb_json *j) {
  open_(j, '{');
}
void wsb_json_object_end(struct wsb_json *j) {
  close_(j, '}');
}
void wsb_json_array_begin(struct wsb_json *j) {
  open_(j, '[');
}
void wsb_json_array_end(struct wsb_json *j) {
  close_(j, ']');
}

static void put_escaped(struct wsb_json *j, const char *s, size_t len) {
  bool valid = wsb_utf8_valid((const uint8_t *)s, len);
  put(j, "\"", 1);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      char esc[2] = {'\\', (char)c};
      put(j, esc, 2);
    } else if (c < 0x20 || c == 0x7f) {
      wsb_text_printf(&j->text, "\\u%04x", c);
    } else if (c >= 0x80 && !valid) {
      put(j, "\\ufffd", 6);
    } else {
      put(j, (const char *)&s[i], 1);
    }
  }
  put(j, "\"", 1);
}

void wsb_json_key(struct wsb_json *j, const char *name) {
  before_item(j);
  put_escaped(j, name, strlen(name));
  put(j, ":", 1);
  j->after_key = true;
}

void wsb_json_string(struct wsb_json *j, const char *s, size_t len) {
  before_item(j);
  put_escaped(j, s, len);
}

void wsb_json_cstring(struct wsb_json *j, const char *s) {
  wsb_json_string(j, s, strlen(s));
}

void wsb_json_uint(struct wsb_json *j, uint64_t v) {
  before_item(j);
  wsb_text_printf(&j->text, "%" PRIu64, v);
}

void wsb_json_int(struct wsb_json *j, int64_t v) {
  before_item(j);
  wsb_text_printf(&j->text, "%" PRId64, v);
}

void wsb_json_bool(struct wsb_json *j, bool v) {
  before_item(j);
  put(j, v ? "true" : "false", v ? 4 : 5);
}

void wsb_json_null(struct wsb_json *j) {
  before_item(j);
  put(j, "null", 4);
}

size_t wsb_json_finish(struct wsb_json *j) {
  return j->text.overflow || j->depth != 0 || j->after_key ? 0 : j->text.len;
}
