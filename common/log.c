/* Log lines on stderr, text or one JSON object each, one write a line, journal priorities. */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "text.h"

/*
 * The log threshold, format and who logs are this module's only state: every function of the
 * process logs, and passing a logger through each would buy nothing.
 */
static enum wsb_log_level log_level = WSB_LOG_INFO;
static enum wsb_log_format log_format = WSB_LOG_TEXT;
static int log_worker = -1;
static bool log_journal;
static char log_role[24] = "wsbal"; /* until set up */
static char log_who[32] = "wsbal";  /* the text prefix: the role, and a worker's slot */

static const char *const level_names[] = {"error", "warn", "info", "debug"};
/* syslog priorities (sd-daemon(3)): err, warning, info, debug */
static const char level_priorities[] = {'3', '4', '6', '7'};

/* systemd sets JOURNAL_STREAM=DEV:INO when it connects stderr to the journal; a child whose
   stderr was redirected elsewhere inherits the variable, hence the comparison with fstat. */
static bool stderr_is_journal(void) {
  const char *v = getenv("JOURNAL_STREAM");
  unsigned long long dev, ino;
  char end;
  if (v == NULL || sscanf(v, "%llu:%llu%c", &dev, &ino, &end) != 2)
    return false;
  struct stat st;
  if (fstat(STDERR_FILENO, &st) != 0)
    return false;
  return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void wsb_log_setup(enum wsb_log_level level, enum wsb_log_format format, const char *role,
                   int worker) {
  log_level = level;
  log_format = format;
  log_worker = worker;
  log_journal = stderr_is_journal();
  snprintf(log_role, sizeof(log_role), "%s", role);
  if (worker < 0)
    snprintf(log_who, sizeof(log_who), "%s", role);
  else
    snprintf(log_who, sizeof(log_who), "%s %d", role, worker);
}

int wsb_log_enabled(enum wsb_log_level level) {
  return level <= log_level;
}

/* msg holds msg_len bytes of a message of full_len (more when vsnprintf cut it). */
static size_t format_line(char *buf, size_t cap, enum wsb_log_level level, const char *msg,
                          size_t msg_len, size_t full_len) {
  char ts[96]; /* room for any int the format could print */
  struct timeval tv;
  struct tm tm;
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));

  /* Cut where a character starts, so a valid message stays valid; the marker says how much went. */
  char marker[40] = "";
  if (full_len > WSB_LOG_MSG_MAX) {
    size_t keep = WSB_LOG_MSG_MAX;
    for (int back = 0; back < 3 && keep > 0 && ((unsigned char)msg[keep] & 0xC0) == 0x80; back++)
      keep--;
    snprintf(marker, sizeof(marker), " [truncated %zu bytes]", full_len - keep);
    msg_len = keep;
  }

  /* Both formats write through the JSON writer's text: one bound, overflow checked once. */
  struct wsb_json j;
  wsb_json_init(&j, buf, cap);
  struct wsb_text *t = &j.text;
  if (log_journal) {
    char prio[3] = {'<', level_priorities[level], '>'};
    wsb_text_put(t, prio, sizeof(prio));
  }
  if (log_format == WSB_LOG_JSON) {
    wsb_json_object_begin(&j);
    wsb_json_key(&j, "ts");
    wsb_json_cstring(&j, ts);
    wsb_json_key(&j, "level");
    wsb_json_cstring(&j, level_names[level]);
    wsb_json_key(&j, "role");
    wsb_json_cstring(&j, log_role);
    if (log_worker >= 0) {
      wsb_json_key(&j, "worker");
      wsb_json_int(&j, log_worker);
    }
    wsb_json_key(&j, "msg");
    if (marker[0] == '\0') {
      wsb_json_string(&j, msg, msg_len);
    } else {
      /* The message and its marker as one string: the writer escapes the joined bytes. */
      char joined[WSB_LOG_MSG_MAX + sizeof(marker)];
      size_t mlen = strlen(marker);
      memcpy(joined, msg, msg_len);
      memcpy(joined + msg_len, marker, mlen);
      wsb_json_string(&j, joined, msg_len + mlen);
    }
    wsb_json_object_end(&j);
    if (wsb_json_finish(&j) == 0)
      return 0;
  } else {
    wsb_text_put(t, ts, strlen(ts));
    wsb_text_put(t, " ", 1);
    wsb_text_put(t, log_who, strlen(log_who));
    wsb_text_put(t, " ", 1);
    wsb_text_put(t, level_names[level], strlen(level_names[level]));
    wsb_text_put(t, ": ", 2);
    wsb_text_put(t, msg, msg_len);
    wsb_text_put(t, marker, strlen(marker));
  }
  wsb_text_put(t, "\n", 1);
  return t->overflow ? 0 : t->len;
}

size_t wsb_log_format_line(char *buf, size_t cap, enum wsb_log_level level, const char *msg,
                           size_t msg_len) {
  return format_line(buf, cap, level, msg, msg_len, msg_len);
}

__attribute__((format(printf, 2, 0))) static void log_line(enum wsb_log_level level,
                                                           const char *fmt, va_list ap) {
  /* Room past the bound, so that the cut can back up to where a character starts. */
  char msg[WSB_LOG_MSG_MAX + 4];
  char line[WSB_LOG_LINE_MAX];
  int m = vsnprintf(msg, sizeof(msg), fmt, ap);
  if (m < 0)
    return;
  size_t have = (size_t)m < sizeof(msg) ? (size_t)m : sizeof(msg) - 1;
  size_t len = format_line(line, sizeof(line), level, msg, have, (size_t)m);
  if (len == 0)
    return;
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
