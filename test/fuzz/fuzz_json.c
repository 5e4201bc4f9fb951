/* Fuzz target for common/json_read.c: raw and generated texts, invariants, json.c round trip. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "fuzz.h"
#include "json.h"
#include "json_read.h"

_Static_assert(WSB_JSON_READ_DEPTH <= WSB_JSON_DEPTH, "the writer must nest as deep as the reader");

#define GEN_MAX_TOKENS 2048
#define GEN_MAX        16384

/* Byte 0 of an input: which top level is accepted, where the text comes from, how many tokens. */
#define F_ANY        0x01       /* WSB_JSON_ANY_VALUE */
#define F_GENERATE   0x02       /* the rest of the input steers a generator of valid texts */
#define F_MUTATE     0x04       /* then one edit, taken from the input's last bytes, spoils it */
#define TOKEN_CAP(b) ((b) >> 3) /* 0: room for any text, else a small array that may run out */

static bool is_parse_error(int r) {
  return r == WSB_EJSON || r == WSB_EUTF8 || r == WSB_EJSON_DEPTH || r == WSB_EJSON_DUP_KEY ||
         r == WSB_EJSON_TOO_MANY || r == WSB_EJSON_TYPE;
}

/* Nesting, counts and skips as the header promises; returns the index after the value at i. */
static int check_tree(const struct wsb_json_doc *d, int i, size_t lo, size_t hi, int depth) {
  REQUIRE(i < d->count);
  const struct wsb_json_token *t = &d->tokens[i];
  REQUIRE(t->start >= lo && t->end > t->start && t->end <= hi);
  bool object = t->type == WSB_JSON_OBJECT;
  if (!object && t->type != WSB_JSON_ARRAY) {
    REQUIRE(t->type >= WSB_JSON_STRING && t->type <= WSB_JSON_NULL);
    REQUIRE(t->children == 0 && t->next == i + 1);
    return i + 1;
  }
  REQUIRE(depth <= WSB_JSON_READ_DEPTH); /* containers in containers, this one included */
  REQUIRE(d->text[t->start] == (object ? '{' : '['));
  REQUIRE(d->text[t->end - 1] == (object ? '}' : ']'));
  int k = i + 1, seen = 0;
  size_t after = t->start + 1;
  for (int c = wsb_json_next_child(d, i, 0); c > 0; c = wsb_json_next_child(d, i, c)) {
    REQUIRE(c == k);
    if (object) {
      REQUIRE(d->tokens[k].type == WSB_JSON_STRING);
      k = check_tree(d, k, after, t->end - 1, depth + 1);
      after = d->tokens[k - 1].end;
    }
    k = check_tree(d, k, after, t->end - 1, depth + 1);
    after = d->tokens[k - 1].end;
    seen++;
  }
  REQUIRE(seen == t->children && t->next == k);
  return k;
}

/* A string token decoded. Decoding never lengthens a string, so the raw length always fits. */
static int decode(const struct wsb_json_doc *d, int i, char *buf, size_t *len) {
  const struct wsb_json_token *t = &d->tokens[i];
  int r = wsb_json_get_string(d, i, buf, t->end - t->start, len);
  REQUIRE(r == 0 || r == WSB_EVALUE);
  REQUIRE(*len <= t->end - t->start - 2 && buf[*len] == '\0');
  REQUIRE((r == WSB_EVALUE) == (memchr(buf, '\0', *len) != NULL));
  return r;
}

/* Every getter on every token: each accepts exactly its own type and answers consistently. */
static void check_getters(const struct wsb_json_doc *d, char *scratch) {
  for (int i = 0; i < d->count; i++) {
    enum wsb_json_type type = d->tokens[i].type;
    bool b;
    int r = wsb_json_get_bool(d, i, &b);
    REQUIRE(type == WSB_JSON_BOOL ? r == 0 && b == (d->text[d->tokens[i].start] == 't')
                                  : r == WSB_EJSON_TYPE);
    size_t len;
    if (type == WSB_JSON_STRING)
      decode(d, i, scratch, &len);
    else
      REQUIRE(wsb_json_get_string(d, i, scratch, 8, &len) == WSB_EJSON_TYPE);
    uint64_t u;
    int64_t s;
    int ru = wsb_json_get_uint(d, i, 0, UINT64_MAX, &u);
    int rs = wsb_json_get_int(d, i, INT64_MIN, INT64_MAX, &s);
    if (type != WSB_JSON_NUMBER) {
      REQUIRE(ru == WSB_EJSON_TYPE && rs == WSB_EJSON_TYPE);
      continue;
    }
    REQUIRE(ru == 0 || ru == WSB_EJSON_TYPE || ru == WSB_ERANGE_VALUE);
    REQUIRE(rs == 0 || rs == WSB_EJSON_TYPE || rs == WSB_ERANGE_VALUE);
    REQUIRE((ru == WSB_EJSON_TYPE) == (rs == WSB_EJSON_TYPE));
    if (ru == 0 && rs == 0)
      REQUIRE((uint64_t)s == u);
    if (ru == 0 && u > 1) {
      uint64_t v;
      REQUIRE(wsb_json_get_uint(d, i, u, u, &v) == 0 && v == u);
      REQUIRE(wsb_json_get_uint(d, i, 0, u - 1, &v) == WSB_ERANGE_VALUE);
      REQUIRE(wsb_json_get_uint(d, i, u + 1 > u ? u + 1 : u, UINT64_MAX, &v) ==
              (u == UINT64_MAX ? 0 : WSB_ERANGE_VALUE));
    }
  }
}

/* Every key of every object is found by name and known when listed; the first unlisted one is
   reported. Keys holding U+0000 cannot be named by a C string and are skipped. */
static void check_members(const struct wsb_json_doc *d, char *scratch, size_t scratch_size) {
  for (int o = 0; o < d->count; o++) {
    if (d->tokens[o].type != WSB_JSON_OBJECT)
      continue;
    const char *names[18]; /* up to 16 keys after the first, the first, NULL */
    size_t n = 0, used = 0;
    int first_key = 0;
    bool listable = true;
    for (int k = wsb_json_next_child(d, o, 0); k > 0; k = wsb_json_next_child(d, o, k)) {
      size_t len;
      char *key = scratch + used;
      REQUIRE(used + d->tokens[k].end - d->tokens[k].start <= scratch_size);
      if (decode(d, k, key, &len) != 0) {
        listable = false;
        continue;
      }
      REQUIRE(wsb_json_member(d, o, key) == k + 1);
      if (first_key == 0)
        first_key = k;
      else if (n < 16)
        names[n++] = key;
      else
        listable = false;
      used += len + 1;
    }
    names[n] = NULL;
    if (d->tokens[o].children == 0) {
      REQUIRE(wsb_json_unknown_key(d, o, names) == 0);
    } else if (listable) {
      /* The list lacks the first key only. */
      REQUIRE(wsb_json_unknown_key(d, o, names) == first_key);
      names[n] = scratch; /* the first key's decoded name, which starts the scratch */
      names[n + 1] = NULL;
      REQUIRE(wsb_json_unknown_key(d, o, names) == 0);
    }
  }
}

/* Writes the value at i with the JSON writer; numbers that are no 64-bit integer become 0.
   Returns the index after it, or -1 when a key holds U+0000 (the writer takes C-string keys). */
static int reserialise(const struct wsb_json_doc *d, int i, struct wsb_json *j, char *scratch) {
  const struct wsb_json_token *t = &d->tokens[i];
  size_t len;
  switch (t->type) {
  case WSB_JSON_OBJECT:
  case WSB_JSON_ARRAY:
    t->type == WSB_JSON_OBJECT ? wsb_json_object_begin(j) : wsb_json_array_begin(j);
    for (int c = wsb_json_next_child(d, i, 0); c > 0; c = wsb_json_next_child(d, i, c)) {
      int value = c;
      if (t->type == WSB_JSON_OBJECT) {
        if (decode(d, c, scratch, &len) != 0)
          return -1;
        wsb_json_key(j, scratch);
        value = c + 1;
      }
      if (reserialise(d, value, j, scratch) < 0)
        return -1;
    }
    t->type == WSB_JSON_OBJECT ? wsb_json_object_end(j) : wsb_json_array_end(j);
    return t->next;
  case WSB_JSON_STRING:
    decode(d, i, scratch, &len);
    wsb_json_string(j, scratch, len);
    return i + 1;
  case WSB_JSON_NUMBER: {
    int64_t s;
    uint64_t u;
    if (wsb_json_get_int(d, i, INT64_MIN, INT64_MAX, &s) == 0)
      wsb_json_int(j, s);
    else if (wsb_json_get_uint(d, i, 0, UINT64_MAX, &u) == 0)
      wsb_json_uint(j, u);
    else
      wsb_json_int(j, 0);
    return i + 1;
  }
  case WSB_JSON_BOOL:
    wsb_json_bool(j, d->text[t->start] == 't');
    return i + 1;
  case WSB_JSON_NULL:
    wsb_json_null(j);
    return i + 1;
  }
  abort();
}

/* The same tokens, the same decoded strings, the same integers and booleans. */
static void check_same_values(const struct wsb_json_doc *a, const struct wsb_json_doc *b, char *sa,
                              char *sb) {
  REQUIRE(a->count == b->count);
  for (int i = 0; i < a->count; i++) {
    const struct wsb_json_token *ta = &a->tokens[i], *tb = &b->tokens[i];
    REQUIRE(ta->type == tb->type && ta->children == tb->children && ta->next == tb->next);
    if (ta->type == WSB_JSON_STRING) {
      size_t la, lb;
      decode(a, i, sa, &la);
      decode(b, i, sb, &lb);
      REQUIRE(la == lb && memcmp(sa, sb, la) == 0);
    } else if (ta->type == WSB_JSON_NUMBER) {
      int64_t va, vb;
      if (wsb_json_get_int(a, i, INT64_MIN, INT64_MAX, &va) == 0)
        REQUIRE(wsb_json_get_int(b, i, INT64_MIN, INT64_MAX, &vb) == 0 && va == vb);
    } else if (ta->type == WSB_JSON_BOOL) {
      REQUIRE(a->text[ta->start] == b->text[tb->start]);
    }
  }
}

static void check_round_trip(const struct wsb_json_doc *d, unsigned flags, char *sa, char *sb) {
  size_t cap = 6 * d->len + 16; /* a raw DEL becomes \u007f, six times its size */
  char *out = malloc(cap);
  REQUIRE(out != NULL);
  struct wsb_json j;
  wsb_json_init(&j, out, cap);
  if (reserialise(d, 0, &j, sa) >= 0) {
    size_t n = wsb_json_finish(&j);
    REQUIRE(n > 0);
    char *text = malloc(n); /* exactly n bytes, for ASan */
    REQUIRE(text != NULL);
    memcpy(text, out, n);
    struct wsb_json_token *tok = malloc((size_t)d->count * sizeof(*tok));
    REQUIRE(tok != NULL);
    struct wsb_json_doc again;
    int r = wsb_json_parse(&again, text, n, tok, (size_t)d->count, flags);
    REQUIRE(r == d->count);
    check_same_values(d, &again, sa, sb);
    free(tok);
    free(text);
  }
  free(out);
}

static bool only_whitespace(const char *s, size_t len) {
  for (size_t k = 0; k < len; k++)
    if (s[k] != ' ' && s[k] != '\t' && s[k] != '\n' && s[k] != '\r')
      return false;
  return true;
}

/* Not incremental: a proper prefix of a valid text fails where it stops, unless only whitespace
   was cut or a top-level number was shortened ("12" to "1"). Long texts are cut at a few places
   only, to keep the run short. */
static void check_prefixes(const char *text, size_t len, unsigned flags, bool number_top,
                           struct wsb_json_token *tok, size_t room) {
  size_t step = len <= 64 ? 1 : len / 16;
  for (size_t n = 0; n < len; n += step) {
    struct wsb_json_doc d;
    int r = wsb_json_parse(&d, text, n, tok, room, flags);
    if (r > 0)
      REQUIRE(only_whitespace(text + n, len - n) || number_top);
    else
      REQUIRE(r == WSB_EJSON && d.err_off == n);
  }
}

/* Everything before an error offset could start a valid text: parsing just that much stops
   early, or is already whole when what follows was trailing garbage (a top-level value other
   than an object then being the first complaint, when only objects are accepted). */
static void check_error(const char *text, size_t len, unsigned flags, size_t ntokens, int r,
                        size_t off, struct wsb_json_token *tok) {
  REQUIRE(is_parse_error(r));
  REQUIRE(off <= len);
  struct wsb_json_doc d;
  int again = wsb_json_parse(&d, text, off, tok, ntokens, flags);
  if (again > 0 || again == WSB_EJSON_TYPE) {
    REQUIRE(r == WSB_EJSON && off < len);
    REQUIRE(again > 0 || !(flags & WSB_JSON_ANY_VALUE));
    REQUIRE(wsb_json_parse(&d, text, off, tok, ntokens, flags | WSB_JSON_ANY_VALUE) > 0);
    return;
  }
  REQUIRE(again == WSB_EJSON && d.err_off == off);
  if (r == WSB_EJSON_TYPE) {
    REQUIRE(!(flags & WSB_JSON_ANY_VALUE));
    REQUIRE(wsb_json_parse(&d, text, len, tok, ntokens, WSB_JSON_ANY_VALUE) > 0);
  }
}

/* A text built from the input's bytes: valid JSON in many forms, keys unique per object. */
struct gen {
  const uint8_t *in;
  size_t n;
  size_t pos;
  char out[GEN_MAX];
  size_t len;
  bool full;
  int tokens;
};

static unsigned pick(struct gen *g, unsigned choices) {
  return g->pos < g->n ? g->in[g->pos++] % choices : 0;
}

static void emit(struct gen *g, const char *s) {
  size_t l = strlen(s);
  if (l > GEN_MAX - g->len) {
    g->full = true;
    return;
  }
  memcpy(g->out + g->len, s, l);
  g->len += l;
}

static void gen_ws(struct gen *g) {
  static const char *const ws[] = {"", "", "", " ", "\n", "\t", "\r\n  "};
  emit(g, ws[pick(g, sizeof(ws) / sizeof(ws[0]))]);
}

static void gen_string(struct gen *g) {
  static const char *const parts[] = {
      "a",
      "hello",
      "\\n",
      "\\\"",
      "\\\\",
      "\\/",
      "\\b\\f\\r\\t",
      "\\u0000",
      "\\u0041",
      "\\u00e9",
      "\\u20AC",
      "\\ud83d\\ude00",
      "\\uDBFF\\uDFFF",
      "caf\xc3\xa9",
      "\xf0\x9f\x98\x80",
      "\xe2\x82\xac",
      "\x7f",
      " ",
  };
  emit(g, "\"");
  for (unsigned k = pick(g, 4); k > 0; k--)
    emit(g, parts[pick(g, sizeof(parts) / sizeof(parts[0]))]);
  emit(g, "\"");
}

static void gen_number(struct gen *g) {
  static const char *const forms[] = {
      "0",
      "-0",
      "1",
      "-1",
      "42",
      "-42",
      "1.5",
      "-0.0",
      "1e3",
      "1E-3",
      "2.5e+10",
      "18446744073709551615",
      "18446744073709551616",
      "-9223372036854775808",
      "-9223372036854775809",
      "123456789012345678901234567890",
      "1e400",
  };
  emit(g, forms[pick(g, sizeof(forms) / sizeof(forms[0]))]);
}

static void gen_value(struct gen *g, int depth, bool object_only);

static void gen_container(struct gen *g, int depth, bool object) {
  emit(g, object ? "{" : "[");
  unsigned n = pick(g, 6);
  for (unsigned k = 0; k < n && g->pos < g->n; k++) {
    if (k > 0)
      emit(g, ",");
    gen_ws(g);
    if (object) {
      char key[32];
      /* Keys differ by their number; an escaped "k" changes nothing of that. */
      snprintf(key, sizeof(key), pick(g, 2) ? "\"\\u006b%u\"" : "\"k%u\"", k);
      emit(g, key);
      g->tokens++;
      gen_ws(g);
      emit(g, ":");
      gen_ws(g);
    }
    gen_value(g, depth + 1, false);
    gen_ws(g);
  }
  emit(g, object ? "}" : "]");
}

static void gen_value(struct gen *g, int depth, bool object_only) {
  unsigned kind = object_only ? 5 : pick(g, 7);
  g->tokens++;
  if (kind >= 5 && (depth >= WSB_JSON_READ_DEPTH || g->tokens > GEN_MAX_TOKENS))
    kind = 0;
  switch (kind) {
  case 0:
    gen_number(g);
    break;
  case 1:
    gen_string(g);
    break;
  case 2:
    emit(g, "true");
    break;
  case 3:
    emit(g, "false");
    break;
  case 4:
    emit(g, "null");
    break;
  default:
    gen_container(g, depth, kind == 5);
    break;
  }
}

/* One edit taken from the last three bytes of the input: replace, delete, insert or cut. */
static size_t mutate(char *text, size_t len, const uint8_t *data, size_t size) {
  static const char interesting[] = "{}[]\":,\\u0e.-+ \x80\xff\x01\x1f";
  if (size < 4 || len == 0)
    return len;
  size_t at = (data[size - 1] | (size_t)data[size - 2] << 8) % len;
  char c = interesting[data[size - 3] % (sizeof(interesting) - 1)];
  switch (data[size - 3] >> 6) {
  case 0:
    text[at] = c;
    return len;
  case 1:
    memmove(text + at, text + at + 1, len - at - 1);
    return len - 1;
  case 2:
    if (len == GEN_MAX)
      return len;
    memmove(text + at + 1, text + at, len - at);
    text[at] = c;
    return len + 1;
  default:
    return at;
  }
}

/* Every token starts at a byte of its own, so len + 1 tokens hold any text of len bytes. */
static void check_text(const char *text, size_t len, unsigned mode, bool must_parse) {
  unsigned flags = mode & F_ANY ? WSB_JSON_ANY_VALUE : 0;
  size_t room = len + 1;
  size_t ntokens = TOKEN_CAP(mode) && TOKEN_CAP(mode) < room ? TOKEN_CAP(mode) : room;
  /* Two token arrays: the one under test, and one for the checks' own parses. */
  struct wsb_json_token *tok = malloc(2 * room * sizeof(*tok)), *spare = tok + room;
  REQUIRE(tok != NULL);
  struct wsb_json_doc d;
  int r = wsb_json_parse(&d, text, len, tok, ntokens, flags);
  if (r <= 0) {
    REQUIRE(!must_parse || (r == WSB_EJSON_TOO_MANY && ntokens < room));
    REQUIRE(d.count == 0);
    check_error(text, len, flags, ntokens, r, d.err_off, spare);
    free(tok);
    return;
  }
  REQUIRE(r == d.count && (size_t)r <= ntokens && d.text == text && d.len == len);
  REQUIRE(flags & F_ANY || tok[0].type == WSB_JSON_OBJECT);
  REQUIRE(check_tree(&d, 0, 0, len, 1) == r);
  /* One token fewer is not enough. */
  struct wsb_json_doc short_doc;
  REQUIRE(wsb_json_parse(&short_doc, text, len, spare, (size_t)r - 1, flags) == WSB_EJSON_TOO_MANY);
  char *sa = malloc(len + 1), *sb = malloc(6 * len + 16);
  REQUIRE(sa != NULL && sb != NULL);
  check_getters(&d, sa);
  check_members(&d, sa, len + 1);
  check_round_trip(&d, flags, sa, sb);
  free(sa);
  free(sb);
  check_prefixes(text, len, flags, tok[0].type == WSB_JSON_NUMBER, spare, room);
  free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  unsigned mode = data[0];
  const char *text = (const char *)data + 1;
  size_t len = size - 1;
  char *copy = NULL;
  bool must_parse = false;
  if (mode & F_GENERATE) {
    struct gen *g = calloc(1, sizeof(*g));
    REQUIRE(g != NULL);
    g->in = data + 1;
    g->n = size - 1;
    gen_ws(g);
    gen_value(g, 0, !(mode & F_ANY));
    gen_ws(g);
    len = g->len;
    must_parse = !g->full;
    if (mode & F_MUTATE) {
      len = mutate(g->out, len, data, size);
      must_parse = false;
    }
    copy = malloc(len ? len : 1); /* exactly len bytes, for ASan */
    REQUIRE(copy != NULL);
    memcpy(copy, g->out, len);
    text = copy;
    free(g);
  }
  check_text(text, len, mode, must_parse);
  free(copy);
  return 0;
}
