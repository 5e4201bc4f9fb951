/* JSON text in: a strict, non-recursive tokenizer into a caller's array; getters that validate. */
#include "json_read.h"

#include <limits.h>
#include <string.h>

#include "errors.h"
#include "values.h"

struct parser {
  const unsigned char *s;
  size_t len;
  size_t pos;
  struct wsb_json_token *tok;
  int cap;
  int n;
  int stack[WSB_JSON_READ_DEPTH]; /* open containers, innermost last */
  int depth;
  size_t err_off;
};

/* What the parser expects at pos. The FIRST states also accept the closing bracket. */
enum expect {
  EXPECT_VALUE,
  EXPECT_FIRST_VALUE,
  EXPECT_KEY,
  EXPECT_FIRST_KEY,
  EXPECT_AFTER_VALUE,
};

static int fail(struct parser *p, size_t off, int err) {
  p->err_off = off;
  return err;
}

/* The offset of a syntax error at i: len when the text simply stopped there. */
static int fail_at(struct parser *p, size_t i) {
  return fail(p, i < p->len ? i : p->len, WSB_EJSON);
}

static void skip_ws(struct parser *p) {
  while (p->pos < p->len) {
    unsigned char c = p->s[p->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
      return;
    p->pos++;
  }
}

static bool at(const struct parser *p, size_t i, unsigned char c) {
  return i < p->len && p->s[i] == c;
}

static bool is_digit_at(const struct parser *p, size_t i) {
  return i < p->len && p->s[i] >= '0' && p->s[i] <= '9';
}

/* The four hex digits at i, or an error at the first one that is missing or not hex. */
static int scan_hex4(struct parser *p, size_t i, unsigned *cp) {
  *cp = 0;
  for (size_t k = 0; k < 4; k++) {
    int h = i + k < p->len ? wsb_hex_digit((unsigned char)p->s[i + k]) : -1;
    if (h < 0)
      return fail_at(p, i + k);
    *cp = *cp << 4 | (unsigned)h;
  }
  return 0;
}

static bool is_high_surrogate(unsigned cp) {
  return cp >= 0xd800 && cp <= 0xdbff;
}
static bool is_low_surrogate(unsigned cp) {
  return cp >= 0xdc00 && cp <= 0xdfff;
}

/* A \u escape at *i (the backslash); a high surrogate must be followed by an escaped low one. */
static int scan_unicode_escape(struct parser *p, size_t *i) {
  unsigned cp;
  int r = scan_hex4(p, *i + 2, &cp);
  if (r < 0)
    return r;
  if (is_low_surrogate(cp))
    return fail(p, *i, WSB_EJSON);
  size_t j = *i + 6;
  if (is_high_surrogate(cp)) {
    if (!at(p, j, '\\'))
      return fail_at(p, j);
    if (!at(p, j + 1, 'u'))
      return fail_at(p, j + 1);
    if ((r = scan_hex4(p, j + 2, &cp)) < 0)
      return r;
    if (!is_low_surrogate(cp))
      return fail(p, j, WSB_EJSON);
    j += 6;
  }
  *i = j;
  return 0;
}

static int scan_escape(struct parser *p, size_t *i) {
  if (*i + 1 >= p->len)
    return fail_at(p, *i + 1);
  switch (p->s[*i + 1]) {
  case '"':
  case '\\':
  case '/':
  case 'b':
  case 'f':
  case 'n':
  case 'r':
  case 't':
    *i += 2;
    return 0;
  case 'u':
    return scan_unicode_escape(p, i);
  default:
    return fail(p, *i + 1, WSB_EJSON);
  }
}

/* One multi-byte UTF-8 character at *i, as RFC 3629's table allows: no overlong forms, no
   surrogates, nothing above U+10FFFF. Only the first continuation byte's range varies. */
static int scan_utf8(struct parser *p, size_t *i) {
  unsigned char c = p->s[*i];
  unsigned char lo = 0x80, hi = 0xbf;
  size_t more;
  if (c >= 0xc2 && c <= 0xdf) {
    more = 1;
  } else if (c >= 0xe0 && c <= 0xef) {
    more = 2;
    lo = c == 0xe0 ? 0xa0 : 0x80;
    hi = c == 0xed ? 0x9f : 0xbf;
  } else if (c >= 0xf0 && c <= 0xf4) {
    more = 3;
    lo = c == 0xf0 ? 0x90 : 0x80;
    hi = c == 0xf4 ? 0x8f : 0xbf;
  } else {
    return fail(p, *i, WSB_EUTF8);
  }
  for (size_t k = 1; k <= more; k++) {
    if (*i + k >= p->len)
      return fail_at(p, *i + k);
    unsigned char b = p->s[*i + k];
    if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xbf))
      return fail(p, *i + k, WSB_EUTF8);
  }
  *i += more + 1;
  return 0;
}

/* A string from the opening quote at pos; leaves pos after the closing quote. */
static int scan_string(struct parser *p) {
  size_t i = p->pos + 1;
  for (;;) {
    if (i >= p->len)
      return fail_at(p, i);
    unsigned char c = p->s[i];
    int r = 0;
    if (c == '"') {
      p->pos = i + 1;
      return 0;
    }
    if (c < 0x20)
      return fail(p, i, WSB_EJSON);
    if (c == '\\')
      r = scan_escape(p, &i);
    else if (c >= 0x80)
      r = scan_utf8(p, &i);
    else
      i++;
    if (r < 0)
      return r;
  }
}

static size_t skip_digits(const struct parser *p, size_t i) {
  while (is_digit_at(p, i))
    i++;
  return i;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?  A leading zero ends the number, so "01" fails
   where the "1" stands, like any other byte after a value. */
static int scan_number(struct parser *p) {
  size_t i = p->pos;
  if (at(p, i, '-'))
    i++;
  if (at(p, i, '0'))
    i++;
  else if (is_digit_at(p, i))
    i = skip_digits(p, i);
  else
    return fail_at(p, i);
  if (at(p, i, '.')) {
    if (!is_digit_at(p, ++i))
      return fail_at(p, i);
    i = skip_digits(p, i);
  }
  if (at(p, i, 'e') || at(p, i, 'E')) {
    i++;
    if (at(p, i, '+') || at(p, i, '-'))
      i++;
    if (!is_digit_at(p, i))
      return fail_at(p, i);
    i = skip_digits(p, i);
  }
  p->pos = i;
  return 0;
}

static int scan_literal(struct parser *p, const char *word) {
  for (size_t k = 0; word[k] != '\0'; k++)
    if (!at(p, p->pos + k, (unsigned char)word[k]))
      return fail_at(p, p->pos + k);
  p->pos += strlen(word);
  return 0;
}

/* A new token starting at pos. An array counts its values as children, an object its keys. */
static int add_token(struct parser *p, enum wsb_json_type type, bool key) {
  if (p->n == p->cap)
    return fail(p, p->pos, WSB_EJSON_TOO_MANY);
  int i = p->n++;
  p->tok[i] = (struct wsb_json_token){.type = type, .start = p->pos, .next = i + 1};
  if (p->depth > 0) {
    struct wsb_json_token *parent = &p->tok[p->stack[p->depth - 1]];
    if (key || parent->type == WSB_JSON_ARRAY)
      parent->children++;
  }
  return i;
}

/* The type of the value a byte starts, or 0 when no value starts with it. */
static enum wsb_json_type type_started_by(unsigned char c) {
  switch (c) {
  case '{':
    return WSB_JSON_OBJECT;
  case '[':
    return WSB_JSON_ARRAY;
  case '"':
    return WSB_JSON_STRING;
  case 't':
  case 'f':
    return WSB_JSON_BOOL;
  case 'n':
    return WSB_JSON_NULL;
  default:
    return c == '-' || (c >= '0' && c <= '9') ? WSB_JSON_NUMBER : 0;
  }
}

static int scan_scalar(struct parser *p) {
  switch (p->s[p->pos]) {
  case '"':
    return scan_string(p);
  case 't':
    return scan_literal(p, "true");
  case 'f':
    return scan_literal(p, "false");
  case 'n':
    return scan_literal(p, "null");
  default:
    return scan_number(p);
  }
}

/* A value at pos. A scalar is consumed whole; a container is opened and left on the stack.
   Returns what to expect next. */
static int begin_value(struct parser *p) {
  if (p->pos >= p->len)
    return fail_at(p, p->pos);
  enum wsb_json_type type = type_started_by(p->s[p->pos]);
  if (type == 0)
    return fail(p, p->pos, WSB_EJSON);
  bool container = type == WSB_JSON_OBJECT || type == WSB_JSON_ARRAY;
  if (container && p->depth == WSB_JSON_READ_DEPTH)
    return fail(p, p->pos, WSB_EJSON_DEPTH);
  int i = add_token(p, type, false);
  if (i < 0)
    return i;
  if (container) {
    p->stack[p->depth++] = i;
    p->pos++;
    return type == WSB_JSON_OBJECT ? EXPECT_FIRST_KEY : EXPECT_FIRST_VALUE;
  }
  int r = scan_scalar(p);
  if (r < 0)
    return r;
  p->tok[i].end = p->pos;
  return EXPECT_AFTER_VALUE;
}

static void close_container(struct parser *p) {
  struct wsb_json_token *t = &p->tok[p->stack[--p->depth]];
  p->pos++;
  t->end = p->pos;
  t->next = p->n;
}

/*
 * Yields the bytes of a validated string's contents with escapes decoded, one at a time, so
 * keys can be compared and strings copied without a buffer of their own.
 */
struct unescaper {
  const unsigned char *p;
  const unsigned char *end;
  unsigned char pending[4];
  unsigned char npending;
  unsigned char next;
};

static unsigned hex4(const unsigned char *s) {
  unsigned cp = 0;
  for (int k = 0; k < 4; k++)
    cp = cp << 4 | (unsigned)wsb_hex_digit((unsigned char)s[k]);
  return cp;
}

static unsigned char utf8_encode(unsigned cp, unsigned char out[4]) {
  if (cp < 0x80) {
    out[0] = (unsigned char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (unsigned char)(0xc0 | cp >> 6);
    out[1] = (unsigned char)(0x80 | (cp & 0x3f));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (unsigned char)(0xe0 | cp >> 12);
    out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
    out[2] = (unsigned char)(0x80 | (cp & 0x3f));
    return 3;
  }
  out[0] = (unsigned char)(0xf0 | cp >> 18);
  out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
  out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
  out[3] = (unsigned char)(0x80 | (cp & 0x3f));
  return 4;
}

/* Decodes the escape at u->p into pending; the parser already proved it well formed. */
static void unescape_one(struct unescaper *u) {
  static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
  unsigned char e = u->p[1];
  if (e != 'u') {
    u->pending[0] = (unsigned char)to[strchr(from, e) - from];
    u->npending = 1;
    u->p += 2;
    return;
  }
  unsigned cp = hex4(u->p + 2);
  u->p += 6;
  if (is_high_surrogate(cp)) {
    cp = 0x10000 + ((cp - 0xd800) << 10) + (hex4(u->p + 2) - 0xdc00);
    u->p += 6;
  }
  u->npending = utf8_encode(cp, u->pending);
}

static struct unescaper unescaper_of(const struct wsb_json_doc *doc,
                                     const struct wsb_json_token *t) {
  const unsigned char *s = (const unsigned char *)doc->text;
  return (struct unescaper){.p = s + t->start + 1, .end = s + t->end - 1};
}

/* The next byte of the decoded string, or -1 at its end. */
static int unescape_byte(struct unescaper *u) {
  if (u->next == u->npending) {
    if (u->p == u->end)
      return -1;
    u->next = 0;
    if (*u->p == '\\') {
      unescape_one(u);
    } else {
      u->pending[0] = *u->p++;
      u->npending = 1;
    }
  }
  return u->pending[u->next++];
}

static bool same_string(const struct wsb_json_doc *doc, int a, int b) {
  const struct wsb_json_token *ta = &doc->tokens[a], *tb = &doc->tokens[b];
  const char *sa = doc->text + ta->start, *sb = doc->text + tb->start;
  size_t la = ta->end - ta->start, lb = tb->end - tb->start;
  if (memchr(sa, '\\', la) == NULL && memchr(sb, '\\', lb) == NULL)
    return la == lb && memcmp(sa, sb, la) == 0;
  struct unescaper ua = unescaper_of(doc, ta), ub = unescaper_of(doc, tb);
  for (;;) {
    int ca = unescape_byte(&ua), cb = unescape_byte(&ub);
    if (ca != cb)
      return false;
    if (ca < 0)
      return true;
  }
}

static bool string_equals(const struct wsb_json_doc *doc, int i, const char *s) {
  struct unescaper u = unescaper_of(doc, &doc->tokens[i]);
  for (;; s++) {
    int c = unescape_byte(&u);
    if (c < 0)
      return *s == '\0';
    if (*s == '\0' || c != (unsigned char)*s)
      return false;
  }
}

static struct wsb_json_doc doc_of(const struct parser *p) {
  return (struct wsb_json_doc){
      .text = (const char *)p->s, .len = p->len, .tokens = p->tok, .count = p->n};
}

/* Keys are compared decoded, so "a" and "\u0061" are the same key. Quadratic, and bodies small. */
static int check_new_key(struct parser *p, int obj, int key) {
  struct wsb_json_doc doc = doc_of(p);
  for (int k = obj + 1; k < key; k = p->tok[k + 1].next)
    if (same_string(&doc, k, key))
      return fail(p, p->tok[key].start, WSB_EJSON_DUP_KEY);
  return 0;
}

/* A key, its colon, and the whitespace before both. */
static int parse_key(struct parser *p) {
  skip_ws(p);
  if (!at(p, p->pos, '"'))
    return fail_at(p, p->pos);
  int key = add_token(p, WSB_JSON_STRING, true);
  if (key < 0)
    return key;
  int r = scan_string(p);
  if (r < 0)
    return r;
  p->tok[key].end = p->pos;
  if ((r = check_new_key(p, p->stack[p->depth - 1], key)) < 0)
    return r;
  skip_ws(p);
  if (!at(p, p->pos, ':'))
    return fail_at(p, p->pos);
  p->pos++;
  return EXPECT_VALUE;
}

/* After a value: a comma, the innermost container's closing bracket, or the end of the text. */
static int after_value(struct parser *p) {
  skip_ws(p);
  if (p->depth == 0)
    return p->pos == p->len ? EXPECT_AFTER_VALUE : fail(p, p->pos, WSB_EJSON);
  bool object = p->tok[p->stack[p->depth - 1]].type == WSB_JSON_OBJECT;
  if (at(p, p->pos, ',')) {
    p->pos++;
    return object ? EXPECT_KEY : EXPECT_VALUE;
  }
  if (at(p, p->pos, object ? '}' : ']')) {
    close_container(p);
    return EXPECT_AFTER_VALUE;
  }
  return fail_at(p, p->pos);
}

static int parse_text(struct parser *p) {
  int e = EXPECT_VALUE;
  for (;;) {
    switch (e) {
    case EXPECT_FIRST_VALUE:
    case EXPECT_FIRST_KEY:
      skip_ws(p);
      if (at(p, p->pos, e == EXPECT_FIRST_KEY ? '}' : ']')) {
        close_container(p);
        e = EXPECT_AFTER_VALUE;
      } else {
        e = e == EXPECT_FIRST_KEY ? parse_key(p) : begin_value(p);
      }
      break;
    case EXPECT_VALUE:
      skip_ws(p);
      e = begin_value(p);
      break;
    case EXPECT_KEY:
      e = parse_key(p);
      break;
    case EXPECT_AFTER_VALUE:
      if (p->depth == 0 && p->pos == p->len)
        return p->n;
      e = after_value(p);
      break;
    default:
      return e; /* an error */
    }
  }
}

int wsb_json_parse(struct wsb_json_doc *doc, const char *text, size_t len,
                   struct wsb_json_token *tokens, size_t ntokens, unsigned flags) {
  struct parser p = {
      .s = (const unsigned char *)text,
      .len = len,
      .tok = tokens,
      .cap = ntokens > INT_MAX ? INT_MAX : (int)ntokens,
  };
  int r = parse_text(&p);
  if (r > 0 && !(flags & WSB_JSON_ANY_VALUE) && tokens[0].type != WSB_JSON_OBJECT)
    r = fail(&p, tokens[0].start, WSB_EJSON_TYPE);
  *doc = doc_of(&p);
  doc->err_off = p.err_off;
  if (r < 0)
    doc->count = 0;
  return r;
}

/* Negative indexes pass through; an index past the last token, or of the wrong type, is a type
 * error. */
static int check_index(const struct wsb_json_doc *doc, int i, enum wsb_json_type type) {
  if (i < 0)
    return i;
  if (i >= doc->count || doc->tokens[i].type != type)
    return WSB_EJSON_TYPE;
  return 0;
}

int wsb_json_member(const struct wsb_json_doc *doc, int obj, const char *key) {
  int r = check_index(doc, obj, WSB_JSON_OBJECT);
  if (r < 0)
    return r;
  for (int k = obj + 1; k < doc->tokens[obj].next; k = doc->tokens[k + 1].next)
    if (string_equals(doc, k, key))
      return k + 1;
  return WSB_EJSON_ABSENT;
}

int wsb_json_next_child(const struct wsb_json_doc *doc, int obj, int prev) {
  int r = check_index(doc, obj, WSB_JSON_OBJECT);
  if (r == WSB_EJSON_TYPE)
    r = check_index(doc, obj, WSB_JSON_ARRAY);
  if (r < 0)
    return r;
  int next;
  if (prev <= obj)
    next = obj + 1;
  else if (doc->tokens[obj].type == WSB_JSON_OBJECT)
    next = doc->tokens[prev + 1].next;
  else
    next = doc->tokens[prev].next;
  return next < doc->tokens[obj].next ? next : 0;
}

int wsb_json_unknown_key(const struct wsb_json_doc *doc, int obj, const char *const *known) {
  int r = check_index(doc, obj, WSB_JSON_OBJECT);
  if (r < 0)
    return r;
  for (int k = wsb_json_next_child(doc, obj, 0); k > 0; k = wsb_json_next_child(doc, obj, k)) {
    const char *const *name = known;
    while (*name != NULL && !string_equals(doc, k, *name))
      name++;
    if (*name == NULL)
      return k;
  }
  return 0;
}

/* Drops the bytes of a character cut short at the end of buf[0..n). */
static size_t trim_partial_char(const char *buf, size_t n, int next_byte) {
  if ((next_byte & 0xc0) != 0x80)
    return n;
  while (n > 0 && ((unsigned char)buf[n - 1] & 0xc0) == 0x80)
    n--;
  return n > 0 ? n - 1 : 0;
}

int wsb_json_get_string(const struct wsb_json_doc *doc, int i, char *buf, size_t cap, size_t *len) {
  int r = check_index(doc, i, WSB_JSON_STRING);
  if (r < 0)
    return r;
  if (cap == 0) {
    if (len != NULL)
      *len = 0;
    return WSB_ERANGE_VALUE;
  }
  struct unescaper u = unescaper_of(doc, &doc->tokens[i]);
  size_t n = 0;
  bool nul = false;
  int c;
  while ((c = unescape_byte(&u)) >= 0 && n + 1 < cap) {
    nul |= c == 0;
    buf[n++] = (char)c;
  }
  if (c >= 0) {
    n = trim_partial_char(buf, n, c);
    r = WSB_ERANGE_VALUE;
  } else if (nul) {
    r = WSB_EVALUE;
  }
  buf[n] = '\0';
  if (len != NULL)
    *len = n;
  return r;
}

/* The magnitude of an integer token, refusing a fraction or exponent. */
static int integer_of(const struct wsb_json_doc *doc, int i, bool *negative, uint64_t *magnitude) {
  int r = check_index(doc, i, WSB_JSON_NUMBER);
  if (r < 0)
    return r;
  const struct wsb_json_token *t = &doc->tokens[i];
  const char *s = doc->text + t->start, *end = doc->text + t->end;
  *negative = *s == '-';
  if (*negative)
    s++;
  uint64_t v = 0;
  for (; s < end; s++) {
    if (*s < '0' || *s > '9')
      return WSB_EJSON_TYPE;
    unsigned d = (unsigned)(*s - '0');
    if (v > (UINT64_MAX - d) / 10)
      r = WSB_ERANGE_VALUE; /* keep going: a later '.' makes it a type error */
    v = v * 10 + d;
  }
  *magnitude = v;
  return r;
}

int wsb_json_get_uint(const struct wsb_json_doc *doc, int i, uint64_t min, uint64_t max,
                      uint64_t *value) {
  bool negative;
  uint64_t v;
  int r = integer_of(doc, i, &negative, &v);
  if (r < 0)
    return r;
  if (negative || v < min || v > max)
    return WSB_ERANGE_VALUE;
  *value = v;
  return 0;
}

int wsb_json_get_int(const struct wsb_json_doc *doc, int i, int64_t min, int64_t max,
                     int64_t *value) {
  bool negative;
  uint64_t m;
  int r = integer_of(doc, i, &negative, &m);
  if (r < 0)
    return r;
  if (m > (negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX))
    return WSB_ERANGE_VALUE;
  /* Negated in a way that never overflows, INT64_MIN included. */
  int64_t v = !negative ? (int64_t)m : m == 0 ? 0 : -(int64_t)(m - 1) - 1;
  if (v < min || v > max)
    return WSB_ERANGE_VALUE;
  *value = v;
  return 0;
}

int wsb_json_get_bool(const struct wsb_json_doc *doc, int i, bool *value) {
  int r = check_index(doc, i, WSB_JSON_BOOL);
  if (r < 0)
    return r;
  *value = doc->text[doc->tokens[i].start] == 't';
  return 0;
}
