/* Logging to stderr with a level, as text or JSON lines, and wsb_fatal for start-up errors. */
#ifndef WSB_LOG_H
#define WSB_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum wsb_log_level {
  WSB_LOG_ERROR = 0,
  WSB_LOG_WARN = 1,
  WSB_LOG_INFO = 2,
  WSB_LOG_DEBUG = 3,
};

enum wsb_log_format {
  WSB_LOG_TEXT = 0, /* "2026-11-23T10:53:22.123Z master info: msg" */
  WSB_LOG_JSON = 1, /* {"ts":...,"level":...,"role":...,"worker":N,"msg":...} */
};

/* A message longer than this many bytes is cut at a UTF-8 boundary and ends with
   " [truncated N bytes]", N the bytes cut. */
#define WSB_LOG_MSG_MAX 2048

/* Sets the threshold, the format and who logs: role ("master", "worker", "wsbal-echo") and, for a
   worker, its slot (worker < 0: none). Text lines say "worker 3", JSON has "role" and "worker".
   Also looks whether stderr is the journal (JOURNAL_STREAM names its device and inode): then
   each line starts with its syslog priority, "<3>" for error to "<7>" for debug. */
void wsb_log_setup(enum wsb_log_level level, enum wsb_log_format format, const char *role,
                   int worker);
int wsb_log_enabled(enum wsb_log_level level);

void wsb_log(enum wsb_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define wsb_log_error(...) wsb_log(WSB_LOG_ERROR, __VA_ARGS__)
#define wsb_log_warn(...)  wsb_log(WSB_LOG_WARN, __VA_ARGS__)
#define wsb_log_info(...)  wsb_log(WSB_LOG_INFO, __VA_ARGS__)
#define wsb_log_debug(...)                 \
  do {                                     \
    if (wsb_log_enabled(WSB_LOG_DEBUG))    \
      wsb_log(WSB_LOG_DEBUG, __VA_ARGS__); \
  } while (0)

/*
 * A structured field of a line: a key the code names (letters, digits, '_'; never from input, and
 * none of ts, level, role, worker, msg, which the line has already: such a field is left out) and
 * a string of any bytes or a number. JSON lines put fields as top-level members; text lines
 * append them as key=value, the value in double quotes when it is empty or holds a space, '=',
 * a quote, a backslash, a control byte or bytes that are not UTF-8, escaped inside the quotes
 * (\" \\ \n \r \t \xHH) so that nothing a client sent can end a line or start another.
 * A value longer than WSB_LOG_VALUE_MAX bytes is cut where a character starts and ends with
 * "..."; fields past WSB_LOG_FIELDS_MAX are left out.
 */
struct wsb_log_field {
  const char *key;
  const char *str; /* the value's bytes when it is a string, else NULL */
  size_t len;
  int64_t num; /* the value when str is NULL */
};
#define WSB_LOG_VALUE_MAX  256
#define WSB_LOG_FIELDS_MAX 16

/* A string field: s (NULL is ""), or len bytes at p. */
static inline struct wsb_log_field wsb_log_str(const char *key, const char *s) {
  return (struct wsb_log_field){key, s != NULL ? s : "", s != NULL ? strlen(s) : 0, 0};
}
static inline struct wsb_log_field wsb_log_strn(const char *key, const char *p, size_t len) {
  return (struct wsb_log_field){key, p != NULL ? p : "", p != NULL ? len : 0, 0};
}
static inline struct wsb_log_field wsb_log_num(const char *key, int64_t v) {
  return (struct wsb_log_field){key, NULL, 0, v};
}

/* How many of len bytes at p to keep so that at most max remain, cut where a UTF-8 character
   starts (a cut in the middle of one would make the JSON writer replace the whole string's). */
size_t wsb_log_cut(const char *p, size_t len, size_t max);

/* A line with n fields after its message. */
void wsb_log_fields(enum wsb_log_level level, const struct wsb_log_field *fields, size_t n,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void wsb_log_fieldsv(enum wsb_log_level level, const struct wsb_log_field *fields, size_t n,
                     const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

/* Logs at error level and exits with status (SPEC.md: 1 config, 3 start-up). */
void wsb_fatal(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* The line wsb_log writes for msg (msg_len bytes, any bytes), into buf of cap bytes: what is
   written, in the current format, ending with a newline, with n fields. Returns its length, 0
   if cap is too small (WSB_LOG_LINE_MAX always suffices). Apart for the unit test. */
#define WSB_LOG_LINE_MAX \
  (6 * (WSB_LOG_MSG_MAX + 32) + 256 + WSB_LOG_FIELDS_MAX * (6 * (WSB_LOG_VALUE_MAX + 3) + 64))
size_t wsb_log_format_line(char *buf, size_t cap, enum wsb_log_level level, const char *msg,
                           size_t msg_len, const struct wsb_log_field *fields, size_t n);

#endif
