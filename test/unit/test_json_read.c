/* Unit tests for common/json_read.c: JSON forms, strictness, error offsets, prefixes, getters. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "json_read.h"
#include "run_suite.h"

#define MAX_TOKENS 256

/* A parse of text copied into an allocation of exactly len bytes, so ASan sees any over-read. */
struct parsed {
  char *copy;
  struct wsb_json_token tokens[MAX_TOKENS];
  struct wsb_json_doc doc;
  int r;
};

static void parse_n(struct parsed *p, const char *text, size_t len, size_t ntokens,
                    unsigned flags) {
  p->copy = malloc(len ? len : 1);
  ck_assert_ptr_nonnull(p->copy);
  memcpy(p->copy, text, len);
  p->r = wsb_json_parse(&p->doc, p->copy, len, p->tokens, ntokens, flags);
}

static void parse(struct parsed *p, const char *text, unsigned flags) {
  parse_n(p, text, strlen(text), MAX_TOKENS, flags);
}

static void done(struct parsed *p) {
  free(p->copy);
}

/* Checks what the header promises of a token array: nesting, counts, skips, offsets. Returns the
   index after the value at i. */
static int check_tree(const struct wsb_json_doc *d, int i, size_t lo, size_t hi) {
  const struct wsb_json_token *t = &d->tokens[i];
  ck_assert_uint_ge(t->start, lo);
  ck_assert_uint_gt(t->end, t->start);
  ck_assert_uint_le(t->end, hi);
  if (t->type != WSB_JSON_OBJECT && t->type != WSB_JSON_ARRAY) {
    ck_assert_int_eq(t->children, 0);
    ck_assert_int_eq(t->next, i + 1);
    return i + 1;
  }
  ck_assert_int_eq(d->text[t->start], t->type == WSB_JSON_OBJECT ? '{' : '[');
  ck_assert_int_eq(d->text[t->end - 1], t->type == WSB_JSON_OBJECT ? '}' : ']');
  int k = i + 1;
  size_t after = t->start + 1;
  for (int c = 0; c < t->children; c++) {
    if (t->type == WSB_JSON_OBJECT) {
      ck_assert_int_eq(d->tokens[k].type, WSB_JSON_STRING);
      k = check_tree(d, k, after, t->end - 1);
      after = d->tokens[k - 1].end;
    }
    k = check_tree(d, k, after, t->end - 1);
    after = d->tokens[k - 1].end;
  }
  ck_assert_int_eq(t->next, k);
  return k;
}

/* One line per document: each token as a type letter and then its child count or its text. */
static void describe(const struct wsb_json_doc *d, char *out, size_t cap) {
  static const char letters[] = "?OASNBZ";
  size_t n = 0;
  out[0] = '\0';
  for (int i = 0; i < d->count && n < cap; i++) {
    const struct wsb_json_token *t = &d->tokens[i];
    const char *sep = i ? " " : "";
    if (t->type == WSB_JSON_OBJECT || t->type == WSB_JSON_ARRAY)
      n += (size_t)snprintf(out + n, cap - n, "%s%c%d", sep, letters[t->type], t->children);
    else
      n += (size_t)snprintf(out + n, cap - n, "%s%c%.*s", sep, letters[t->type],
                            (int)(t->end - t->start), d->text + t->start);
  }
}

struct valid_case {
  const char *text;
  unsigned flags;
  const char *tokens;
};

static const struct valid_case valid_cases[] = {
    {"{}", 0, "O0"},
    {" \t\r\n{ \t\r\n} \t\r\n", 0, "O0"},
    {"{\"a\":1}", 0, "O1 S\"a\" N1"},
    {"{ \"a\" : 1 , \"b\" : [ ] }", 0, "O2 S\"a\" N1 S\"b\" A0"},
    {"{\"a\":[1,-2.5e3,true,false,null,\"x\"],\"b\":{}}", 0,
     "O2 S\"a\" A6 N1 N-2.5e3 Btrue Bfalse Znull S\"x\" S\"b\" O0"},
    {"{\"n\":[0,-0,0.0,-0.0,1e0,1E0,1e+2,1e-2,1.5E+10,123456789012345678901234567890,"
     "9.9e999999]}",
     0,
     "O1 S\"n\" A11 N0 N-0 N0.0 N-0.0 N1e0 N1E0 N1e+2 N1e-2 N1.5E+10 "
     "N123456789012345678901234567890 N9.9e999999"},
    {"{\"\":\"\"}", 0, "O1 S\"\" S\"\""},
    {"{\"a\":{\"b\":{\"c\":[[],[{}]]}}}", 0, "O1 S\"a\" O1 S\"b\" O1 S\"c\" A2 A0 A1 O0"},
    {"{\"caf\xc3\xa9\":\"\xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf \x7f\"}", 0,
     "O1 S\"caf\xc3\xa9\" S\"\xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf \x7f\""},
    {"{\"e\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0000\\ud83d\\ude00\"}", 0,
     "O1 S\"e\" S\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0000\\ud83d\\ude00\""},
    {"{\"name\":\"b3\",\"url\":\"ws://127.0.0.1:9003\",\"weight\":2,\"max_sessions\":0,"
     "\"backup\":false}",
     0,
     "O5 S\"name\" S\"b3\" S\"url\" S\"ws://127.0.0.1:9003\" S\"weight\" N2 S\"max_sessions\" N0 "
     "S\"backup\" Bfalse"},
    /* Any value at the top level, with the flag. */
    {"1", WSB_JSON_ANY_VALUE, "N1"},
    {" -0.5e-10 ", WSB_JSON_ANY_VALUE, "N-0.5e-10"},
    {"\"x\"", WSB_JSON_ANY_VALUE, "S\"x\""},
    {"true", WSB_JSON_ANY_VALUE, "Btrue"},
    {"false", WSB_JSON_ANY_VALUE, "Bfalse"},
    {"null", WSB_JSON_ANY_VALUE, "Znull"},
    {"[]", WSB_JSON_ANY_VALUE, "A0"},
    {"[1,[2,[3]],{\"k\":[]}]", WSB_JSON_ANY_VALUE, "A3 N1 A2 N2 A1 N3 O1 S\"k\" A0"},
    {"{\"a\":1}", WSB_JSON_ANY_VALUE, "O1 S\"a\" N1"},
};

START_TEST(test_valid_forms) {
  const struct valid_case *c = &valid_cases[_i];
  struct parsed p;
  parse(&p, c->text, c->flags);
  ck_assert_msg(p.r > 0, "%s: %s at %zu", c->text, wsb_err_name(p.r), p.doc.err_off);
  ck_assert_int_eq(p.doc.count, p.r);
  ck_assert_ptr_eq(p.doc.text, p.copy);
  ck_assert_uint_eq(p.doc.len, strlen(c->text));
  char desc[1024];
  describe(&p.doc, desc, sizeof(desc));
  ck_assert_str_eq(desc, c->tokens);
  ck_assert_int_eq(check_tree(&p.doc, 0, 0, p.doc.len), p.r);
  done(&p);
}
END_TEST

START_TEST(test_reads_only_len_bytes) {
  struct wsb_json_token tok[4];
  struct wsb_json_doc doc;
  ck_assert_int_eq(wsb_json_parse(&doc, "{}garbage", 2, tok, 4, 0), 1);
  ck_assert_int_eq(wsb_json_parse(&doc, "{\"a\":1}", 6, tok, 4, 0), WSB_EJSON);
  ck_assert_uint_eq(doc.err_off, 6);
  ck_assert_int_eq(doc.count, 0);
  ck_assert_int_eq(wsb_json_parse(&doc, NULL, 0, tok, 4, 0), WSB_EJSON);
  ck_assert_uint_eq(doc.err_off, 0);
}
END_TEST

struct invalid_case {
  const char *text;
  size_t len; /* 0: strlen */
  unsigned flags;
  int err;
  size_t off;
};

#define A WSB_JSON_ANY_VALUE

static const struct invalid_case invalid_cases[] = {
    /* structure */
    {"", 0, 0, WSB_EJSON, 0},
    {" ", 0, 0, WSB_EJSON, 1},
    {"{", 0, 0, WSB_EJSON, 1},
    {"}", 0, 0, WSB_EJSON, 0},
    {"{]", 0, 0, WSB_EJSON, 1},
    {"[}", 0, A, WSB_EJSON, 1},
    {"{\"a\"}", 0, 0, WSB_EJSON, 4},
    {"{\"a\":}", 0, 0, WSB_EJSON, 5},
    {"{\"a\" 1}", 0, 0, WSB_EJSON, 5},
    {"{\"a\"::1}", 0, 0, WSB_EJSON, 5},
    {"{\"a\":1,}", 0, 0, WSB_EJSON, 7},
    {"{,}", 0, 0, WSB_EJSON, 1},
    {"{\"a\":1,,\"b\":2}", 0, 0, WSB_EJSON, 7},
    {"{\"a\":1 \"b\":2}", 0, 0, WSB_EJSON, 7},
    {"{\"a\":1;\"b\":2}", 0, 0, WSB_EJSON, 6},
    {"{a:1}", 0, 0, WSB_EJSON, 1},
    {"{'a':1}", 0, 0, WSB_EJSON, 1},
    {"{1:1}", 0, 0, WSB_EJSON, 1},
    {"{\"a\":1]", 0, 0, WSB_EJSON, 6},
    {"{\"a\":[1}", 0, 0, WSB_EJSON, 7},
    {"[1,]", 0, A, WSB_EJSON, 3},
    {"[,1]", 0, A, WSB_EJSON, 1},
    {"[1 2]", 0, A, WSB_EJSON, 3},
    {"[", 0, 0, WSB_EJSON, 1},
    {"1 2", 0, A, WSB_EJSON, 2},
    {"{}{}", 0, 0, WSB_EJSON, 2},
    {"{} x", 0, 0, WSB_EJSON, 3},
    {"{\"a\":1}\n}", 0, 0, WSB_EJSON, 8},
    {"{}\0", 3, 0, WSB_EJSON, 2},
    {"\0{}", 3, 0, WSB_EJSON, 0},
    {"\xef\xbb\xbf{}", 0, 0, WSB_EJSON, 0}, /* a byte order mark */
    {"{}\f", 0, 0, WSB_EJSON, 2},
    {"\v{}", 0, 0, WSB_EJSON, 0},
    {"{\"a\":1}/*c*/", 0, 0, WSB_EJSON, 7},
    /* literals */
    {"{\"a\":tru}", 0, 0, WSB_EJSON, 8},
    {"{\"a\":True}", 0, 0, WSB_EJSON, 5},
    {"{\"a\":truex}", 0, 0, WSB_EJSON, 9},
    {"{\"a\":nul", 0, 0, WSB_EJSON, 8},
    {"{\"a\":fals}", 0, 0, WSB_EJSON, 9},
    {"{\"a\":NaN}", 0, 0, WSB_EJSON, 5},
    {"{\"a\":Infinity}", 0, 0, WSB_EJSON, 5},
    {"{\"a\":undefined}", 0, 0, WSB_EJSON, 5},
    /* numbers */
    {"{\"a\":01}", 0, 0, WSB_EJSON, 6},
    {"{\"a\":00}", 0, 0, WSB_EJSON, 6},
    {"{\"a\":-01}", 0, 0, WSB_EJSON, 7},
    {"{\"a\":+1}", 0, 0, WSB_EJSON, 5},
    {"{\"a\":.5}", 0, 0, WSB_EJSON, 5},
    {"{\"a\":1.}", 0, 0, WSB_EJSON, 7},
    {"{\"a\":1.e3}", 0, 0, WSB_EJSON, 7},
    {"{\"a\":1e}", 0, 0, WSB_EJSON, 7},
    {"{\"a\":1e+}", 0, 0, WSB_EJSON, 8},
    {"{\"a\":1e5.5}", 0, 0, WSB_EJSON, 8},
    {"{\"a\":-}", 0, 0, WSB_EJSON, 6},
    {"{\"a\":--1}", 0, 0, WSB_EJSON, 6},
    {"{\"a\":- 1}", 0, 0, WSB_EJSON, 6},
    {"{\"a\":0x10}", 0, 0, WSB_EJSON, 6},
    {"{\"a\":1_000}", 0, 0, WSB_EJSON, 6},
    {"-", 0, A, WSB_EJSON, 1},
    {"1.", 0, A, WSB_EJSON, 2},
    {"1e-", 0, A, WSB_EJSON, 3},
    /* strings */
    {"{\"a\":\"x", 0, 0, WSB_EJSON, 7},
    {"{\"a\":\"x\ny\"}", 0, 0, WSB_EJSON, 7},
    {"{\"a\":\"x\ty\"}", 0, 0, WSB_EJSON, 7},
    {"{\"a\":\"x\x1fy\"}", 0, 0, WSB_EJSON, 7},
    {"{\"a\":\"x\0y\"}", 11, 0, WSB_EJSON, 7},
    {"{\"a\":'x'}", 0, 0, WSB_EJSON, 5},
    {"{\"a\":\"\\x\"}", 0, 0, WSB_EJSON, 7},
    {"{\"a\":\"\\a\"}", 0, 0, WSB_EJSON, 7},
    {"{\"a\":\"\\0\"}", 0, 0, WSB_EJSON, 7},
    {"{\"a\":\"\\U0041\"}", 0, 0, WSB_EJSON, 7},
    {"{\"a\":\"\\", 0, 0, WSB_EJSON, 7},
    {"{\"a\":\"\\u12\"}", 0, 0, WSB_EJSON, 10},
    {"{\"a\":\"\\u12G4\"}", 0, 0, WSB_EJSON, 10},
    {"{\"a\":\"\\u 123\"}", 0, 0, WSB_EJSON, 8},
    {"{\"a\":\"\\u00", 0, 0, WSB_EJSON, 10},
    {"{\"\\x\":1}", 0, 0, WSB_EJSON, 3},
    /* surrogates: a lone low one at its backslash, a high one where its partner should be */
    {"{\"a\":\"\\udc00\"}", 0, 0, WSB_EJSON, 6},
    {"{\"a\":\"\\uDFFF\"}", 0, 0, WSB_EJSON, 6},
    {"{\"a\":\"\\ud800\"}", 0, 0, WSB_EJSON, 12},
    {"{\"a\":\"\\ud800x\\udc00\"}", 0, 0, WSB_EJSON, 12},
    {"{\"a\":\"\\ud800\\n\"}", 0, 0, WSB_EJSON, 13},
    {"{\"a\":\"\\ud800\\ud800\"}", 0, 0, WSB_EJSON, 12},
    {"{\"a\":\"\\uDBFF\\u0041\"}", 0, 0, WSB_EJSON, 12},
    {"{\"a\":\"\\ud800\\uE000\"}", 0, 0, WSB_EJSON, 12},
    {"{\"a\":\"\\ud800\\udc0", 0, 0, WSB_EJSON, 17},
    {"{\"a\":\"\\ud800", 0, 0, WSB_EJSON, 12},
    {"{\"a\":\"\\udc00\\ud800\"}", 0, 0, WSB_EJSON, 6},
    /* raw UTF-8 */
    {"{\"a\":\"\x80\"}", 0, 0, WSB_EUTF8, 6},
    {"{\"a\":\"\xff\"}", 0, 0, WSB_EUTF8, 6},
    {"{\"a\":\"\xc0\x80\"}", 0, 0, WSB_EUTF8, 6},
    {"{\"a\":\"\xc1\xbf\"}", 0, 0, WSB_EUTF8, 6},
    {"{\"a\":\"\xc3(\"}", 0, 0, WSB_EUTF8, 7},
    {"{\"a\":\"\xe0\x80\x80\"}", 0, 0, WSB_EUTF8, 7},
    {"{\"a\":\"\xe0\x9f\xbf\"}", 0, 0, WSB_EUTF8, 7},
    {"{\"a\":\"\xed\xa0\x80\"}", 0, 0, WSB_EUTF8, 7},
    {"{\"a\":\"\xed\xbf\xbf\"}", 0, 0, WSB_EUTF8, 7},
    {"{\"a\":\"\xf0\x80\x80\x80\"}", 0, 0, WSB_EUTF8, 7},
    {"{\"a\":\"\xf4\x90\x80\x80\"}", 0, 0, WSB_EUTF8, 7},
    {"{\"a\":\"\xf5\x80\x80\x80\"}", 0, 0, WSB_EUTF8, 6},
    {"{\"a\":\"\xe2\x82\"}", 0, 0, WSB_EUTF8, 8},
    {"{\"a\":\"\xf0\x9f\x98\xc3\xa9\"}", 0, 0, WSB_EUTF8, 9},
    {"{\"a\":\"\xf0\x9f\x98", 0, 0, WSB_EJSON, 9},
    {"{\"\xff\":1}", 0, 0, WSB_EUTF8, 2},
    {"{\"a\":1,\"\xe2\x28\xa1\":2}", 0, 0, WSB_EUTF8, 9},
    /* a top-level value other than an object, without the flag */
    {"[]", 0, 0, WSB_EJSON_TYPE, 0},
    {" 1 ", 0, 0, WSB_EJSON_TYPE, 1},
    {"\"x\"", 0, 0, WSB_EJSON_TYPE, 0},
    {"null", 0, 0, WSB_EJSON_TYPE, 0},
    {"true", 0, 0, WSB_EJSON_TYPE, 0},
    /* duplicate keys, compared after unescaping, at the repeated key */
    {"{\"a\":1,\"a\":2}", 0, 0, WSB_EJSON_DUP_KEY, 7},
    {"{\"a\":1,\"b\":2,\"a\":3}", 0, 0, WSB_EJSON_DUP_KEY, 13},
    {"{\"a\":1,\"\\u0061\":2}", 0, 0, WSB_EJSON_DUP_KEY, 7},
    {"{\"\\/\":1,\"/\":2}", 0, 0, WSB_EJSON_DUP_KEY, 8},
    {"{\"\xf0\x9f\x98\x80\":1,\"\\ud83d\\ude00\":2}", 0, 0, WSB_EJSON_DUP_KEY, 10},
    {"{\"a\":{\"x\":1,\"y\":[{\"z\":1}],\"x\":2}}", 0, 0, WSB_EJSON_DUP_KEY, 26},
    {"{\"\":1,\"\":2}", 0, 0, WSB_EJSON_DUP_KEY, 6},
    {"[{\"a\":1,\"a\":1}]", 0, A, WSB_EJSON_DUP_KEY, 8},
};

START_TEST(test_invalid) {
  const struct invalid_case *c = &invalid_cases[_i];
  struct parsed p;
  parse_n(&p, c->text, c->len ? c->len : strlen(c->text), MAX_TOKENS, c->flags);
  ck_assert_msg(p.r == c->err && p.doc.err_off == c->off,
                "case %d \"%s\": got %s at %zu, want %s at %zu", _i, c->text, wsb_err_name(p.r),
                p.doc.err_off, wsb_err_name(c->err), c->off);
  ck_assert_int_eq(p.doc.count, 0);
  done(&p);
}
END_TEST

/* Keys that only look alike are different keys. */
START_TEST(test_near_duplicates_allowed) {
  static const char *const texts[] = {
      "{\"a\":1,\"A\":2,\"ab\":3,\"a "
      "\":4,\"\\u0000\":5,\"a\\u0000\":6,\"b\":{\"a\":7},\"c\":[{\"a\":8},{\"a\":9}]}",
      "{\"\xc3\xa9\":1,\"e\\u0301\":2,\"\\u00e8\":3}",
  };
  for (size_t k = 0; k < sizeof(texts) / sizeof(texts[0]); k++) {
    struct parsed p;
    parse(&p, texts[k], 0);
    ck_assert_msg(p.r > 0, "%s: %s at %zu", texts[k], wsb_err_name(p.r), p.doc.err_off);
    done(&p);
  }
}
END_TEST

/* Not incremental: every proper prefix of a valid text is an error where the text stops. */
START_TEST(test_every_prefix_fails) {
  static const char *const texts[] = {
      "{\"name\":\"b3\",\"url\":\"ws://127.0.0.1:9003\",\"weight\":2,\"max_sessions\":0,"
      "\"backup\":false}",
      "{\"a\":[1,-2.5e+3,true,false,null,\"x\",{},[]],\"b\":{\"c\":-0.0E-0}}",
      "{ \"e\" : \"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00 caf\xc3\xa9 \xf0\x9f\x98\x80\" "
      "}",
      "{\"weight\":5,\"enabled\":false}",
      "{\"backend\":\"name\"}",
  };
  for (size_t k = 0; k < sizeof(texts) / sizeof(texts[0]); k++) {
    size_t len = strlen(texts[k]);
    struct parsed p;
    parse_n(&p, texts[k], len, MAX_TOKENS, 0);
    ck_assert_int_gt(p.r, 0);
    int whole = p.r;
    done(&p);
    for (size_t n = 0; n < len; n++) {
      parse_n(&p, texts[k], n, MAX_TOKENS, 0);
      ck_assert_msg(p.r == WSB_EJSON && p.doc.err_off == n, "%s, prefix %zu: %s at %zu", texts[k],
                    n, wsb_err_name(p.r), p.doc.err_off);
      done(&p);
    }
    /* The same with the top-level flag, where no prefix is a complete value either. */
    for (size_t n = 0; n < len; n++) {
      parse_n(&p, texts[k], n, MAX_TOKENS, WSB_JSON_ANY_VALUE);
      ck_assert_int_eq(p.r, WSB_EJSON);
      done(&p);
    }
    /* And exactly as many tokens as it needs. */
    parse_n(&p, texts[k], len, (size_t)whole, 0);
    ck_assert_int_eq(p.r, whole);
    done(&p);
  }
}
END_TEST

/* Nesting up to the limit is fine; one more level fails at its bracket. */
START_TEST(test_depth_limit) {
  char text[256];
  for (int depth = 1; depth <= WSB_JSON_READ_DEPTH + 1; depth++) {
    size_t n = 0;
    for (int d = 0; d < depth; d++)
      n += (size_t)snprintf(text + n, sizeof(text) - n, "%s", d ? "[" : "{\"a\":");
    text[n++] = '1';
    for (int d = depth - 1; d >= 0; d--)
      text[n++] = d ? ']' : '}';
    text[n] = '\0';
    struct parsed p;
    parse(&p, text, 0);
    if (depth <= WSB_JSON_READ_DEPTH) {
      ck_assert_int_eq(p.r, depth + 2); /* containers, the key, the 1 */
      check_tree(&p.doc, 0, 0, p.doc.len);
    } else {
      ck_assert_int_eq(p.r, WSB_EJSON_DEPTH);
      ck_assert_uint_eq(p.doc.err_off, 5 + WSB_JSON_READ_DEPTH - 1);
    }
    done(&p);
  }
  /* Objects inside objects count the same, and closing a level makes room again:
     {"a":{"a":...{}...},"b":[[]]} with depth containers on the way down. */
  for (int depth = WSB_JSON_READ_DEPTH; depth <= WSB_JSON_READ_DEPTH + 1; depth++) {
    size_t n = 0;
    for (int d = 0; d < depth - 1; d++)
      n += (size_t)snprintf(text + n, sizeof(text) - n, "{\"a\":");
    n += (size_t)snprintf(text + n, sizeof(text) - n, "{}");
    for (int d = 0; d < depth - 2; d++)
      text[n++] = '}';
    snprintf(text + n, sizeof(text) - n, ",\"b\":[[]]}");
    struct parsed p;
    parse(&p, text, 0);
    if (depth <= WSB_JSON_READ_DEPTH) {
      ck_assert_int_eq(p.r, 2 * (depth - 1) + 1 + 3);
      check_tree(&p.doc, 0, 0, p.doc.len);
    } else {
      ck_assert_int_eq(p.r, WSB_EJSON_DEPTH);
      ck_assert_uint_eq(p.doc.err_off, 5 * (depth - 1));
    }
    done(&p);
  }
}
END_TEST

START_TEST(test_token_limit) {
  static const char text[] = "{\"a\":[1,2]}";
  struct parsed p;
  parse_n(&p, text, strlen(text), 5, 0);
  ck_assert_int_eq(p.r, 5);
  done(&p);
  static const size_t at[] = {0, 1, 5, 6, 8}; /* where token n would start */
  for (size_t n = 0; n < 5; n++) {
    parse_n(&p, text, strlen(text), n, 0);
    ck_assert_int_eq(p.r, WSB_EJSON_TOO_MANY);
    ck_assert_uint_eq(p.doc.err_off, at[n]);
    done(&p);
  }
}
END_TEST

/* A string's value, decoded into a buffer of cap bytes. */
static int get_string(const char *text, char *buf, size_t cap, size_t *len) {
  struct parsed p;
  parse(&p, text, WSB_JSON_ANY_VALUE);
  ck_assert_int_gt(p.r, 0);
  int r = wsb_json_get_string(&p.doc, p.r - 1, buf, cap, len);
  done(&p);
  return r;
}

START_TEST(test_escapes) {
  char buf[64];
  size_t len;
  ck_assert_int_eq(get_string("\"\\n\\\"\\\\\\/\\b\\f\\r\\t\"", buf, sizeof(buf), &len), 0);
  ck_assert_uint_eq(len, 8);
  ck_assert_str_eq(buf, "\n\"\\/\b\f\r\t");
  ck_assert_int_eq(
      get_string("\"\\u0041\\u00e9\\u00E9\\u20ac\\u007f\\uffff\\uFFFD\"", buf, sizeof(buf), &len),
      0);
  ck_assert_str_eq(buf, "A\xc3\xa9\xc3\xa9\xe2\x82\xac\x7f\xef\xbf\xbf\xef\xbf\xbd");
  ck_assert_uint_eq(len, 15);
  /* Surrogate pairs, the first, the last and one in the middle, any case. */
  ck_assert_int_eq(get_string("\"\\ud800\\udc00|\\uDBFF\\uDFFF|\\ud83d\\ude00|\\uD83D\\uDE00\"",
                              buf, sizeof(buf), &len),
                   0);
  ck_assert_str_eq(buf, "\xf0\x90\x80\x80|\xf4\x8f\xbf\xbf|\xf0\x9f\x98\x80|\xf0\x9f\x98\x80");
  ck_assert_uint_eq(len, 19);
  /* Raw UTF-8 and the escape-free fast path. */
  ck_assert_int_eq(get_string("\"caf\xc3\xa9 \xf0\x9f\x98\x80\"", buf, sizeof(buf), &len), 0);
  ck_assert_str_eq(buf, "caf\xc3\xa9 \xf0\x9f\x98\x80");
  ck_assert_int_eq(get_string("\"\"", buf, sizeof(buf), &len), 0);
  ck_assert_str_eq(buf, "");
  ck_assert_uint_eq(len, 0);
  /* U+0000 is refused, but what was decoded is there for an error message. */
  ck_assert_int_eq(get_string("\"a\\u0000b\"", buf, sizeof(buf), &len), WSB_EVALUE);
  ck_assert_uint_eq(len, 3);
  ck_assert_int_eq(memcmp(buf, "a\0b", 4), 0);
  /* Lone or broken surrogates never reach a getter: the parse refuses them (see test_invalid). */
  struct parsed p;
  parse(&p, "\"\\ude00\\ud83d\"", WSB_JSON_ANY_VALUE);
  ck_assert_int_eq(p.r, WSB_EJSON);
  done(&p);
}
END_TEST

START_TEST(test_string_buffer) {
  char buf[16];
  size_t len = 99;
  /* "h\u00e9llo" is 6 bytes: it needs a buffer of 7. */
  ck_assert_int_eq(get_string("\"h\\u00e9llo\"", buf, 7, &len), 0);
  ck_assert_str_eq(buf, "h\xc3\xa9llo");
  ck_assert_int_eq(get_string("\"h\\u00e9llo\"", buf, 7, NULL), 0);
  /* Shorter buffers keep whole characters only. */
  static const struct {
    size_t cap;
    const char *kept;
  } cuts[] = {{6, "h\xc3\xa9ll"}, {5, "h\xc3\xa9l"}, {4, "h\xc3\xa9"}, {3, "h"}, {2, "h"}, {1, ""}};
  for (size_t k = 0; k < sizeof(cuts) / sizeof(cuts[0]); k++) {
    memset(buf, 'X', sizeof(buf));
    ck_assert_int_eq(get_string("\"h\\u00e9llo\"", buf, cuts[k].cap, &len), WSB_ERANGE_VALUE);
    ck_assert_str_eq(buf, cuts[k].kept);
    ck_assert_uint_eq(len, strlen(cuts[k].kept));
    ck_assert_int_eq(buf[cuts[k].cap], 'X'); /* nothing written past cap */
  }
  memset(buf, 'X', sizeof(buf));
  ck_assert_int_eq(get_string("\"\"", buf, 0, &len), WSB_ERANGE_VALUE);
  ck_assert_uint_eq(len, 0);
  ck_assert_int_eq(buf[0], 'X');
  ck_assert_int_eq(get_string("\"\xf0\x9f\x98\x80!\"", buf, 4, &len), WSB_ERANGE_VALUE);
  ck_assert_str_eq(buf, "");
  ck_assert_int_eq(get_string("\"\xf0\x9f\x98\x80!\"", buf, 5, &len), WSB_ERANGE_VALUE);
  ck_assert_str_eq(buf, "\xf0\x9f\x98\x80");
  ck_assert_int_eq(get_string("\"\\ud83d\\ude00!\"", buf, 3, &len), WSB_ERANGE_VALUE);
  ck_assert_str_eq(buf, "");
  /* Too long wins over U+0000 when both apply. */
  ck_assert_int_eq(get_string("\"\\u0000abc\"", buf, 3, &len), WSB_ERANGE_VALUE);
}
END_TEST

/* The value of the only member of {"v":...}. */
struct member {
  struct parsed p;
  int v;
};

static void parse_member(struct member *m, const char *value) {
  char text[256];
  snprintf(text, sizeof(text), "{\"v\":%s}", value);
  parse(&m->p, text, 0);
  ck_assert_msg(m->p.r >= 3, "%s: %s", text, wsb_err_name(m->p.r));
  m->v = wsb_json_member(&m->p.doc, 0, "v");
  ck_assert_int_eq(m->v, 2);
}

static int get_uint(const char *value, uint64_t min, uint64_t max, uint64_t *out) {
  struct member m;
  parse_member(&m, value);
  *out = 12345;
  int r = wsb_json_get_uint(&m.p.doc, m.v, min, max, out);
  if (r != 0)
    ck_assert_uint_eq(*out, 12345); /* untouched on error */
  done(&m.p);
  return r;
}

static int get_int(const char *value, int64_t min, int64_t max, int64_t *out) {
  struct member m;
  parse_member(&m, value);
  *out = 12345;
  int r = wsb_json_get_int(&m.p.doc, m.v, min, max, out);
  if (r != 0)
    ck_assert_int_eq(*out, 12345);
  done(&m.p);
  return r;
}

START_TEST(test_get_uint) {
  uint64_t v;
  ck_assert_int_eq(get_uint("5", 0, 10, &v), 0);
  ck_assert_uint_eq(v, 5);
  ck_assert_int_eq(get_uint("0", 0, 10, &v), 0);
  ck_assert_uint_eq(v, 0);
  ck_assert_int_eq(get_uint("10", 0, 10, &v), 0);
  ck_assert_uint_eq(v, 10);
  ck_assert_int_eq(get_uint("11", 0, 10, &v), WSB_ERANGE_VALUE);
  ck_assert_int_eq(get_uint("5", 6, 10, &v), WSB_ERANGE_VALUE);
  ck_assert_int_eq(get_uint("18446744073709551615", 0, UINT64_MAX, &v), 0);
  ck_assert_uint_eq(v, UINT64_MAX);
  ck_assert_int_eq(get_uint("18446744073709551616", 0, UINT64_MAX, &v), WSB_ERANGE_VALUE);
  ck_assert_int_eq(get_uint("99999999999999999999999", 0, UINT64_MAX, &v), WSB_ERANGE_VALUE);
  ck_assert_int_eq(get_uint("-1", 0, 10, &v), WSB_ERANGE_VALUE);
  ck_assert_int_eq(get_uint("-0", 0, 10, &v), WSB_ERANGE_VALUE);
  /* Integers only, even when the fraction or exponent changes nothing. */
  ck_assert_int_eq(get_uint("1.0", 0, 10, &v), WSB_EJSON_TYPE);
  ck_assert_int_eq(get_uint("1e3", 0, 10000, &v), WSB_EJSON_TYPE);
  ck_assert_int_eq(get_uint("1E0", 0, 10, &v), WSB_EJSON_TYPE);
  ck_assert_int_eq(get_uint("0.5", 0, 10, &v), WSB_EJSON_TYPE);
  ck_assert_int_eq(get_uint("123456789012345678901234.5", 0, UINT64_MAX, &v), WSB_EJSON_TYPE);
  ck_assert_int_eq(get_uint("-1.5", 0, 10, &v), WSB_EJSON_TYPE);
  /* Other types. */
  ck_assert_int_eq(get_uint("\"5\"", 0, 10, &v), WSB_EJSON_TYPE);
  ck_assert_int_eq(get_uint("true", 0, 10, &v), WSB_EJSON_TYPE);
  ck_assert_int_eq(get_uint("null", 0, 10, &v), WSB_EJSON_TYPE);
  ck_assert_int_eq(get_uint("[5]", 0, 10, &v), WSB_EJSON_TYPE);
  ck_assert_int_eq(get_uint("{}", 0, 10, &v), WSB_EJSON_TYPE);
}
END_TEST

START_TEST(test_get_int) {
  int64_t v;
  ck_assert_int_eq(get_int("-5", -10, 10, &v), 0);
  ck_assert_int_eq(v, -5);
  ck_assert_int_eq(get_int("-0", -10, 10, &v), 0);
  ck_assert_int_eq(v, 0);
  ck_assert_int_eq(get_int("-0", 0, 10, &v), 0);
  ck_assert_int_eq(v, 0);
  ck_assert_int_eq(get_int("7", -10, 10, &v), 0);
  ck_assert_int_eq(v, 7);
  ck_assert_int_eq(get_int("-11", -10, 10, &v), WSB_ERANGE_VALUE);
  ck_assert_int_eq(get_int("11", -10, 10, &v), WSB_ERANGE_VALUE);
  ck_assert_int_eq(get_int("-9223372036854775808", INT64_MIN, INT64_MAX, &v), 0);
  ck_assert_int_eq(v, INT64_MIN);
  ck_assert_int_eq(get_int("9223372036854775807", INT64_MIN, INT64_MAX, &v), 0);
  ck_assert_int_eq(v, INT64_MAX);
  ck_assert_int_eq(get_int("-9223372036854775809", INT64_MIN, INT64_MAX, &v), WSB_ERANGE_VALUE);
  ck_assert_int_eq(get_int("9223372036854775808", INT64_MIN, INT64_MAX, &v), WSB_ERANGE_VALUE);
  ck_assert_int_eq(get_int("-18446744073709551616", INT64_MIN, INT64_MAX, &v), WSB_ERANGE_VALUE);
  ck_assert_int_eq(get_int("-1.0", -10, 10, &v), WSB_EJSON_TYPE);
  ck_assert_int_eq(get_int("-1e0", -10, 10, &v), WSB_EJSON_TYPE);
  ck_assert_int_eq(get_int("false", -10, 10, &v), WSB_EJSON_TYPE);
}
END_TEST

START_TEST(test_get_bool) {
  struct member m;
  bool b = false;
  parse_member(&m, "true");
  ck_assert_int_eq(wsb_json_get_bool(&m.p.doc, m.v, &b), 0);
  ck_assert(b);
  done(&m.p);
  parse_member(&m, "false");
  ck_assert_int_eq(wsb_json_get_bool(&m.p.doc, m.v, &b), 0);
  ck_assert(!b);
  done(&m.p);
  static const char *const not_bools[] = {"1", "0", "null", "\"true\"", "[]", "{}"};
  for (size_t k = 0; k < sizeof(not_bools) / sizeof(not_bools[0]); k++) {
    parse_member(&m, not_bools[k]);
    b = true;
    ck_assert_int_eq(wsb_json_get_bool(&m.p.doc, m.v, &b), WSB_EJSON_TYPE);
    ck_assert(b);
    done(&m.p);
  }
}
END_TEST

/* Getters pass a negative index through and refuse one past the tokens or of another type. */
START_TEST(test_index_checks) {
  struct parsed p;
  parse(&p, "{\"s\":\"x\",\"o\":{}}", 0);
  ck_assert_int_eq(p.r, 5);
  char buf[8];
  uint64_t u;
  int64_t i;
  bool b;
  ck_assert_int_eq(wsb_json_get_string(&p.doc, WSB_EJSON_ABSENT, buf, sizeof(buf), NULL),
                   WSB_EJSON_ABSENT);
  ck_assert_int_eq(wsb_json_get_uint(&p.doc, WSB_EJSON_TYPE, 0, 1, &u), WSB_EJSON_TYPE);
  ck_assert_int_eq(wsb_json_get_int(&p.doc, WSB_EJSON_ABSENT, 0, 1, &i), WSB_EJSON_ABSENT);
  ck_assert_int_eq(wsb_json_get_bool(&p.doc, WSB_EJSON_ABSENT, &b), WSB_EJSON_ABSENT);
  ck_assert_int_eq(wsb_json_member(&p.doc, WSB_EJSON_ABSENT, "s"), WSB_EJSON_ABSENT);
  ck_assert_int_eq(wsb_json_next_child(&p.doc, WSB_EJSON_ABSENT, 0), WSB_EJSON_ABSENT);
  ck_assert_int_eq(wsb_json_unknown_key(&p.doc, WSB_EJSON_ABSENT, NULL), WSB_EJSON_ABSENT);
  ck_assert_int_eq(wsb_json_get_string(&p.doc, 5, buf, sizeof(buf), NULL), WSB_EJSON_TYPE);
  ck_assert_int_eq(wsb_json_get_bool(&p.doc, 1000, &b), WSB_EJSON_TYPE);
  ck_assert_int_eq(wsb_json_member(&p.doc, 5, "s"), WSB_EJSON_TYPE);
  /* Keys are strings: a handler may read one. */
  ck_assert_int_eq(wsb_json_get_string(&p.doc, 1, buf, sizeof(buf), NULL), 0);
  ck_assert_str_eq(buf, "s");
  ck_assert_int_eq(wsb_json_get_string(&p.doc, 0, buf, sizeof(buf), NULL), WSB_EJSON_TYPE);
  ck_assert_int_eq(wsb_json_member(&p.doc, 2, "s"), WSB_EJSON_TYPE);
  ck_assert_int_eq(wsb_json_next_child(&p.doc, 2, 0), WSB_EJSON_TYPE);
  static const char *const none[] = {NULL};
  ck_assert_int_eq(wsb_json_unknown_key(&p.doc, 2, none), WSB_EJSON_TYPE);
  done(&p);
}
END_TEST

START_TEST(test_member_lookup) {
  struct parsed p;
  parse(&p, "{\"n\\u0061me\":\"x\",\"nam\":1,\"names\":2,\"o\":{\"name\":3},\"\":4,\"\\u0000\":5}",
        0);
  ck_assert_int_gt(p.r, 0);
  ck_assert_int_eq(wsb_json_member(&p.doc, 0, "name"), 2);
  ck_assert_int_eq(wsb_json_member(&p.doc, 0, "nam"), 4);
  ck_assert_int_eq(wsb_json_member(&p.doc, 0, "names"), 6);
  ck_assert_int_eq(wsb_json_member(&p.doc, 0, "na"), WSB_EJSON_ABSENT);
  ck_assert_int_eq(wsb_json_member(&p.doc, 0, "namess"), WSB_EJSON_ABSENT);
  ck_assert_int_eq(wsb_json_member(&p.doc, 0, "Name"), WSB_EJSON_ABSENT);
  ck_assert_int_eq(wsb_json_member(&p.doc, 0, ""), 12);
  int o = wsb_json_member(&p.doc, 0, "o");
  ck_assert_int_eq(o, 8);
  ck_assert_int_eq(wsb_json_member(&p.doc, o, "name"), 10);
  ck_assert_int_eq(wsb_json_member(&p.doc, o, "o"), WSB_EJSON_ABSENT);
  uint64_t v;
  ck_assert_int_eq(wsb_json_get_uint(&p.doc, wsb_json_member(&p.doc, o, "name"), 0, 9, &v), 0);
  ck_assert_uint_eq(v, 3);
  done(&p);
}
END_TEST

START_TEST(test_next_child) {
  struct parsed p;
  parse(&p, "{\"a\":[1,[2,3],{\"x\":[]},4],\"b\":{},\"c\":[]}", 0);
  ck_assert_int_eq(p.r, 15);
  int keys[4], n = 0;
  for (int k = wsb_json_next_child(&p.doc, 0, 0); k > 0; k = wsb_json_next_child(&p.doc, 0, k))
    keys[n++] = k;
  ck_assert_int_eq(n, 3);
  ck_assert_int_eq(keys[0], 1);
  ck_assert_int_eq(keys[1], 11);
  ck_assert_int_eq(keys[2], 13);
  int elems[5];
  n = 0;
  for (int k = wsb_json_next_child(&p.doc, 2, 0); k > 0; k = wsb_json_next_child(&p.doc, 2, k))
    elems[n++] = k;
  ck_assert_int_eq(n, 4);
  ck_assert_int_eq(elems[0], 3);
  ck_assert_int_eq(elems[1], 4);
  ck_assert_int_eq(elems[2], 7);
  ck_assert_int_eq(elems[3], 10);
  ck_assert_int_eq(wsb_json_next_child(&p.doc, 12, 0), 0); /* {} */
  ck_assert_int_eq(wsb_json_next_child(&p.doc, 14, 0), 0); /* [] */
  ck_assert_int_eq(wsb_json_next_child(&p.doc, 3, 0), WSB_EJSON_TYPE);
  done(&p);
}
END_TEST

/* What an admin handler does with POST /api/v1/backends. */
START_TEST(test_handler_flow) {
  static const char *const fields[] = {"name", "url", "weight", "max_sessions", "backup", NULL};
  struct parsed p;
  parse(&p,
        "{\"name\":\"b3\",\"url\":\"ws://127.0.0.1:9003\",\"weight\":2,\"max_sessions\":0,"
        "\"backup\":false}",
        0);
  ck_assert_int_eq(p.r, 11);
  ck_assert_int_eq(wsb_json_unknown_key(&p.doc, 0, fields), 0);
  char name[16], url[64];
  uint64_t weight, max_sessions;
  bool backup = true;
  ck_assert_int_eq(
      wsb_json_get_string(&p.doc, wsb_json_member(&p.doc, 0, "name"), name, sizeof(name), NULL), 0);
  ck_assert_str_eq(name, "b3");
  ck_assert_int_eq(
      wsb_json_get_string(&p.doc, wsb_json_member(&p.doc, 0, "url"), url, sizeof(url), NULL), 0);
  ck_assert_str_eq(url, "ws://127.0.0.1:9003");
  ck_assert_int_eq(wsb_json_get_uint(&p.doc, wsb_json_member(&p.doc, 0, "weight"), 1, 256, &weight),
                   0);
  ck_assert_uint_eq(weight, 2);
  ck_assert_int_eq(wsb_json_get_uint(&p.doc, wsb_json_member(&p.doc, 0, "max_sessions"), 0,
                                     UINT32_MAX, &max_sessions),
                   0);
  ck_assert_uint_eq(max_sessions, 0);
  ck_assert_int_eq(wsb_json_get_bool(&p.doc, wsb_json_member(&p.doc, 0, "backup"), &backup), 0);
  ck_assert(!backup);
  done(&p);

  /* An unknown field is named precisely; a missing optional one says so. */
  parse(&p, "{\"weight\":5,\"colour\":\"red\",\"enabled\":false,\"c\\u006flor\":1}", 0);
  ck_assert_int_gt(p.r, 0);
  static const char *const patch[] = {"weight", "enabled", NULL};
  int bad = wsb_json_unknown_key(&p.doc, 0, patch);
  ck_assert_int_eq(bad, 3);
  char key[32];
  ck_assert_int_eq(wsb_json_get_string(&p.doc, bad, key, sizeof(key), NULL), 0);
  ck_assert_str_eq(key, "colour");
  ck_assert_int_eq(wsb_json_unknown_key(&p.doc, 0, fields), 3);
  static const char *const all[] = {"weight", "enabled", "colour", "color", NULL};
  ck_assert_int_eq(wsb_json_unknown_key(&p.doc, 0, all), 0);
  static const char *const none[] = {NULL};
  ck_assert_int_eq(wsb_json_unknown_key(&p.doc, 0, none), 1);
  ck_assert_int_eq(
      wsb_json_get_uint(&p.doc, wsb_json_member(&p.doc, 0, "max_sessions"), 0, 9, &max_sessions),
      WSB_EJSON_ABSENT);
  done(&p);

  parse(&p, "{}", 0);
  ck_assert_int_eq(wsb_json_unknown_key(&p.doc, 0, none), 0);
  ck_assert_int_eq(wsb_json_member(&p.doc, 0, "backend"), WSB_EJSON_ABSENT);
  done(&p);
}
END_TEST

START_TEST(test_error_names) {
  ck_assert_str_eq(wsb_err_name(WSB_EJSON), "WSB_EJSON");
  ck_assert_str_eq(wsb_strerror(WSB_EJSON), "malformed JSON");
  ck_assert_str_eq(wsb_err_name(WSB_EJSON_DUP_KEY), "WSB_EJSON_DUP_KEY");
  ck_assert_str_eq(wsb_err_name(WSB_EJSON_ABSENT), "WSB_EJSON_ABSENT");
}
END_TEST

int main(void) {
  Suite *s = suite_create("json_read");
  TCase *tc = tcase_create("json_read");
  tcase_add_loop_test(tc, test_valid_forms, 0, sizeof(valid_cases) / sizeof(valid_cases[0]));
  tcase_add_test(tc, test_reads_only_len_bytes);
  tcase_add_loop_test(tc, test_invalid, 0, sizeof(invalid_cases) / sizeof(invalid_cases[0]));
  tcase_add_test(tc, test_near_duplicates_allowed);
  tcase_add_test(tc, test_every_prefix_fails);
  tcase_add_test(tc, test_depth_limit);
  tcase_add_test(tc, test_token_limit);
  tcase_add_test(tc, test_escapes);
  tcase_add_test(tc, test_string_buffer);
  tcase_add_test(tc, test_get_uint);
  tcase_add_test(tc, test_get_int);
  tcase_add_test(tc, test_get_bool);
  tcase_add_test(tc, test_index_checks);
  tcase_add_test(tc, test_member_lookup);
  tcase_add_test(tc, test_next_child);
  tcase_add_test(tc, test_handler_flow);
  tcase_add_test(tc, test_error_names);
  suite_add_tcase(s, tc);
  return wsb_run_suite(s);
}
