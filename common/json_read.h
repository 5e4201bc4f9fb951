/* A strict JSON reader (RFC 8259) for request bodies: tokens in a caller's array, typed getters. */
#ifndef WSB_JSON_READ_H
#define WSB_JSON_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Containers nested in each other, the top-level one included; one more is WSB_EJSON_DEPTH. */
#define WSB_JSON_READ_DEPTH 16

/* wsb_json_parse flag: accept any value at the top level, not only an object. */
#define WSB_JSON_ANY_VALUE 1u

enum wsb_json_type {
  WSB_JSON_OBJECT = 1,
  WSB_JSON_ARRAY,
  WSB_JSON_STRING, /* object keys are strings too */
  WSB_JSON_NUMBER,
  WSB_JSON_BOOL,
  WSB_JSON_NULL,
};

/*
 * One value or object key. Tokens are in document order: a container is followed by its
 * children, an object's as key, value, key, value...; `next` skips a token and everything
 * inside it, so token 0 is the top-level value and its `next` is the token count.
 */
struct wsb_json_token {
  enum wsb_json_type type;
  size_t start; /* byte offset of its first byte: a bracket, quote, sign, digit or letter */
  size_t end;   /* one past its last byte */
  int children; /* members of an object, elements of an array, else 0 */
  int next;     /* index of the first token after this one and its descendants */
};

/* A parsed text: what every getter reads. It points into text and tokens, which must outlive it. */
struct wsb_json_doc {
  const char *text;
  size_t len;
  const struct wsb_json_token *tokens;
  int count;
  size_t err_off; /* after a failed parse: byte offset of the first error */
};

/*
 * Parses a complete JSON text of len bytes (not incremental: a prefix of a valid text is an
 * error) into tokens[0..ntokens). Strict: one object at the top level unless flags has
 * WSB_JSON_ANY_VALUE; whitespace around it but nothing else after it (no BOM); no duplicate keys
 * in an object (compared after unescaping); no control characters, invalid UTF-8 or lone
 * surrogates (raw or escaped) in strings; numbers exactly as the RFC's grammar (no leading zero,
 * "+", ".5", "1." or NaN). Allocates nothing and never recurses. Finding duplicates is quadratic
 * in one object's keys, so size tokens for the bodies expected (a few dozen), not for the worst.
 *
 * Returns the token count, or an error with doc->count 0 and doc->err_off set: WSB_EJSON
 * (syntax: at the first byte no valid text could have there, len when the text stops early; an
 * escaped surrogate without its partner at its backslash or where the partner should start),
 * WSB_EUTF8 (at the offending byte), WSB_EJSON_DEPTH (at the bracket too deep),
 * WSB_EJSON_DUP_KEY (at the repeated key's opening quote), WSB_EJSON_TOO_MANY (at the value that
 * found no free token) or WSB_EJSON_TYPE (a top-level value other than an object, at its start;
 * reported only when the text is otherwise valid). Everything before err_off is a prefix of
 * some valid text.
 */
int wsb_json_parse(struct wsb_json_doc *doc, const char *text, size_t len,
                   struct wsb_json_token *tokens, size_t ntokens, unsigned flags);

/*
 * Every function below takes a token index and, given a negative one, returns it unchanged, so
 * a lookup feeds a getter directly:
 *   r = wsb_json_get_uint(&doc, wsb_json_member(&doc, 0, "weight"), 1, 256, &w);
 * and r is WSB_EJSON_ABSENT when the member is missing. An index of another type than the
 * function wants, or past the last token, is WSB_EJSON_TYPE.
 */

/* The value of member key in object obj: its token index, WSB_EJSON_ABSENT or WSB_EJSON_TYPE.
   Keys are compared unescaped, so "n\u0061me" is "name"; one holding U+0000 matches nothing. */
int wsb_json_member(const struct wsb_json_doc *doc, int obj, const char *key);

/*
 * Walks the children of an object or array: prev 0 gives the first, then pass the last answer.
 * For an object each answer is a key's index, and its value is the next token (answer + 1).
 * Returns 0 after the last child, WSB_EJSON_TYPE when obj is neither object nor array.
 */
int wsb_json_next_child(const struct wsb_json_doc *doc, int obj, int prev);

/*
 * The index (> 0) of the first key of object obj that is not in known (NULL-terminated), 0 when
 * every key is known, or WSB_EJSON_TYPE. Name it in an error with wsb_json_get_string.
 */
int wsb_json_unknown_key(const struct wsb_json_doc *doc, int obj, const char *const *known);

/*
 * A string (value or key) unescaped into buf as NUL-terminated UTF-8; *len (may be NULL) gets
 * its length. Returns 0, WSB_EJSON_TYPE, WSB_EVALUE when it holds U+0000, or WSB_ERANGE_VALUE
 * when it needs more than cap - 1 bytes. After those two errors buf still holds what was decoded
 * (whole characters, cut to fit), good for an error message, not as the value.
 */
int wsb_json_get_string(const struct wsb_json_doc *doc, int i, char *buf, size_t cap, size_t *len);

/* An integer in [min, max]: no fraction or exponent even when they are zero ("1.0", "1e3") and,
   for the unsigned getter, no minus sign ("-0"). Returns 0, WSB_EJSON_TYPE or WSB_ERANGE_VALUE. */
int wsb_json_get_uint(const struct wsb_json_doc *doc, int i, uint64_t min, uint64_t max,
                      uint64_t *value);
int wsb_json_get_int(const struct wsb_json_doc *doc, int i, int64_t min, int64_t max,
                     int64_t *value);

/* true or false. Returns 0 or WSB_EJSON_TYPE. */
int wsb_json_get_bool(const struct wsb_json_doc *doc, int i, bool *value);

#endif
