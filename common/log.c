/* Log lines "2026-11-23T10:53:22.123Z master info: ..." on stderr, one write each. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/*
 * The log threshold and prefix are this module's only state: every function
 * of the process logs, and passing a logger through each would buy nothing.
 */
static enum wsb_log_level log_level = WSB_LOG_INFO;
static char log_who[32] = "wsbal";

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void wsb_log_setup(enum wsb_log_level level, const char *who) {
  log_level = level;
  snprintf(log_who, sizeof(log_who), "%s", who);
}

int wsb_log_enabled(enum wsb_log_level level) {
  return level <= log_level;
}

__attribute__((format(printf, 2, 0))) static void log_line(enum wsb_log_level level,
                                                           const char *fmt, va_list ap) {
  char line[2048];
  struct timeval tv;
  struct tm tm;
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  int n =
      snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s %s: ", tm.tm_year + 1900,
               tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
               (int)(tv.tv_usec / 1000), log_who, level_names[level]);
  if (n < 0)
    return;
  int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
  size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
  if (len > sizeof(line) - 2)
    len = sizeof(line) - 2;
  line[len++] = '\n';
  /* One write per line, so lines of several processes sharing stderr never interleave. */
  ssize_t unused = write(STDERR_FILENO, line, len);
  (void)unused;
}

void wsb_log(enum wsb_log_level level, const char *fmt, ...) {
  if (!wsb_log_enabled(level))
    return;
  va_list ap;
  va_start(ap, fmt);
  log_line(level, fmt, ap);
  va_end(ap);
}

void wsb_fatal(int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  log_line(WSB_LOG_ERROR, fmt, ap);
  va_end(ap);
  exit(status);
}
