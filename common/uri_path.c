/* Removes dot segments from a request path and refuses the spellings a backend could read
 * otherwise. */
#include "uri_path.h"

#include <string.h>

#include "errors.h"
#include "values.h"

enum segment_kind { SEG_NAME, SEG_DOT, SEG_DOTDOT };

/*
 * Counts the dots of a segment spelled only with '.', "%2e" and "%2E" (0 when anything else is
 * in it), so "%2e%2E" is as much ".." as ".." is: RFC 3986 6.2.2.2 makes an encoded unreserved
 * character the same as the character, and backends decode it.
 */
static size_t dots_in(const char *p, size_t len) {
  size_t dots = 0;
  for (size_t i = 0; i < len; dots++) {
    if (p[i] == '.')
      i++;
    else if (len - i >= 3 && p[i] == '%' && p[i + 1] == '2' && (p[i + 2] | 0x20) == 'e')
      i += 3;
    else
      return 0;
  }
  return dots;
}

/*
 * Bytes no backend may read differently from wsbal: a backslash and an encoded '/' or '\' are
 * separators to some servers and not to others, a NUL ends a string early in C, and a broken
 * escape is decoded each its own way. Returns 0 or WSB_EPATH.
 */
static int check_bytes(const char *p, size_t len) {
  for (size_t i = 0; i < len; i++) {
    if (p[i] == '\\' || p[i] == '#')
      return WSB_EPATH;
    if (p[i] != '%')
      continue;
    if (len - i < 3 || wsb_hex_digit(p[i + 1]) < 0 || wsb_hex_digit(p[i + 2]) < 0)
      return WSB_EPATH;
    int byte = wsb_hex_digit(p[i + 1]) * 16 + wsb_hex_digit(p[i + 2]);
    if (byte == '/' || byte == '\\' || byte == '\0')
      return WSB_EPATH;
    i += 2;
  }
  return 0;
}

/*
 * Classifies one segment. Servers that cut ';' parameters off a segment before they look at
 * it (Tomcat, Jetty, Spring) read "..;x" as "..", which nothing here would: refused.
 */
static int classify(const char *p, size_t len, enum segment_kind *kind) {
  const char *semi = memchr(p, ';', len);
  size_t dots = dots_in(p, semi != NULL ? (size_t)(semi - p) : len);
  if (semi != NULL && (dots == 1 || dots == 2))
    return WSB_EPATH;
  *kind = dots == 1 ? SEG_DOT : dots == 2 ? SEG_DOTDOT : SEG_NAME;
  return 0;
}

/*
 * One walk serves both entry points: the output is written only when out is not NULL, while
 * depth (segments kept so far) decides a ".." at the root either way. Returns the output's
 * length, or WSB_EPATH; *changed says whether any dot segment was seen.
 */
static ssize_t walk(struct wsb_slice target, char *out, int *changed) {
  const char *q = memchr(target.p, '?', target.len);
  size_t path_len = q != NULL ? (size_t)(q - target.p) : target.len;
  *changed = 0;
  if (path_len == 0 || target.p[0] != '/' || memchr(target.p, '#', target.len) != NULL)
    return WSB_EPATH;
  int rc = check_bytes(target.p, path_len);
  if (rc < 0)
    return rc;
  size_t depth = 0, out_len = 0;
  for (size_t start = 1;;) {
    const char *slash = memchr(target.p + start, '/', path_len - start);
    size_t end = slash != NULL ? (size_t)(slash - target.p) : path_len;
    bool last = slash == NULL;
    enum segment_kind kind;
    if ((rc = classify(target.p + start, end - start, &kind)) < 0)
      return rc;
    if (kind == SEG_NAME) {
      depth++;
      if (out != NULL) {
        out[out_len++] = '/';
        memcpy(out + out_len, target.p + start, end - start);
      }
      out_len += end - start;
    } else {
      *changed = 1;
      if (kind == SEG_DOTDOT) {
        /* nginx answers 400 to a path that climbs above the root; RFC 3986 would stop there. */
        if (depth == 0)
          return WSB_EPATH;
        depth--;
        while (out != NULL && out_len > 0 && out[--out_len] != '/')
          ;
      }
      /* A dot segment at the end names the directory it leaves: "/a/b/.." is "/a/". */
      if (last && out != NULL)
        out[out_len] = '/';
      out_len += last ? 1 : 0;
    }
    if (last)
      break;
    start = end + 1;
  }
  if (out != NULL)
    memcpy(out + out_len, target.p + path_len, target.len - path_len);
  return (ssize_t)(out_len + target.len - path_len);
}

int wsb_uri_path_check(struct wsb_slice target) {
  int changed;
  ssize_t n = walk(target, NULL, &changed);
  return n < 0 ? (int)n : changed;
}

ssize_t wsb_uri_path_normalize(struct wsb_slice target, char *out) {
  int changed;
  return walk(target, out, &changed);
}
