/* Logging to stderr with a level, and wsb_fatal for start-up errors and broken invariants. */
#ifndef WSB_LOG_H
#define WSB_LOG_H

enum wsb_log_level {
  WSB_LOG_ERROR = 0,
  WSB_LOG_WARN = 1,
  WSB_LOG_INFO = 2,
  WSB_LOG_DEBUG = 3,
};

/* Sets the threshold and the prefix ("master", "worker 3") of this process's lines. */
void wsb_log_setup(enum wsb_log_level level, const char *who);
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

#endif
