/* Logging to stderr with a level, as text or JSON lines, and wsb_fatal for start-up errors. */
#ifndef WSB_LOG_H
#define WSB_LOG_H

#include <stddef.h>

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

/* Logs at error level and exits with status (SPEC.md: 1 config, 3 start-up). */
void wsb_fatal(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* The line wsb_log writes for msg (msg_len bytes, any bytes), into buf of cap bytes: what is
   written, in the current format, ending with a newline. Returns its length, 0 if cap is too
   small (WSB_LOG_LINE_MAX always suffices). Apart for the unit test. */
#define WSB_LOG_LINE_MAX (6 * (WSB_LOG_MSG_MAX + 32) + 256)
size_t wsb_log_format_line(char *buf, size_t cap, enum wsb_log_level level, const char *msg,
                           size_t msg_len);

#endif
