/* Log lines on stderr, text or one JSON object each, one write a line, journal priorities. */
#include "log.h"

#include <inttypes.h>
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
#include "utf8.h"

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

/* The keys every JSON line has already: a field by one of these names would repeat a key. */
static bool field_key_ok(const char *key) {
  static const char *const taken[] = {"ts", "level", "role", "worker", "msg"};
  if (key == NULL || key[0] == '\0')
    return false;
  for (const char *p = key; *p != '\0'; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
      return false;
  for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++)
    if (strcmp(key, taken[i]) == 0)
      return false;
  return true;
}

size_t wsb_log_cut(const char *p, size_t len, size_t max) {
  if (len <= max)
    return len;
  size_t keep = max;
  for (int back = 0; back < 3 && keep > 0 && ((unsigned char)p[keep] & 0xC0) == 0x80; back++)
    keep--;
  return keep;
}

static bool is_control(unsigned char c) {
  return c < 0x20 || c == 0x7f;
}

/*
 * Text bytes with every control byte escaped (\n, \r, \t, \xHH), so none ends a line; in_quotes
 * also escapes the quote and the backslash, and high bytes when the value is not UTF-8 (a
 * terminal or a log viewer could read some of those as controls too).
 */
static void put_escaped(struct wsb_text *t, const char *p, size_t len, bool in_quotes,
                        bool escape_high) {
  static const char hex[] = "0123456789abcdef";
  size_t run = 0; /* bytes before i that go out as they are */
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)p[i];
    bool esc =
        is_control(c) || (in_quotes && (c == '"' || c == '\\')) || (escape_high && c >= 0x80);
    if (!esc)
      continue;
    wsb_text_put(t, p + run, i - run);
    run = i + 1;
    char e[4] = {'\\', (char)c, 0, 0};
    size_t n = 2;
    if (c == '\n')
      e[1] = 'n';
    else if (c == '\r')
      e[1] = 'r';
    else if (c == '\t')
      e[1] = 't';
    else if (c != '"' && c != '\\') {
      e[1] = 'x';
      e[2] = hex[c >> 4];
      e[3] = hex[c & 15];
      n = 4;
    }
    wsb_text_put(t, e, n);
  }
  wsb_text_put(t, p + run, len - run);
}

/* key=value, quoted when the value holds what would make the pair ambiguous. */
static void put_text_field(struct wsb_text *t, const struct wsb_log_field *f, const char *v,
                           size_t len, bool cut) {
  wsb_text_put(t, " ", 1);
  wsb_text_puts(t, f->key);
  wsb_text_put(t, "=", 1);
  if (f->str == NULL) {
    wsb_text_printf(t, "%" PRId64, f->num);
    return;
  }
  bool utf8 = wsb_utf8_valid((const uint8_t *)v, len);
  bool quote = len == 0 || !utf8 || cut;
  for (size_t i = 0; i < len && !quote; i++) {
    unsigned char c = (unsigned char)v[i];
    quote = is_control(c) || c == ' ' || c == '"' || c == '\\' || c == '=';
  }
  if (!quote) {
    wsb_text_put(t, v, len);
    return;
  }
  wsb_text_put(t, "\"", 1);
  put_escaped(t, v, len, true, !utf8);
  if (cut)
    wsb_text_put(t, "...", 3);
  wsb_text_put(t, "\"", 1);
}

static void put_json_field(struct wsb_json *j, const struct wsb_log_field *f, const char *v,
                           size_t len, bool cut) {
  wsb_json_key(j, f->key);
  if (f->str == NULL) {
    wsb_json_int(j, f->num);
  } else if (!cut) {
    wsb_json_string(j, v, len);
  } else {
    char joined[WSB_LOG_VALUE_MAX + 3];
    memcpy(joined, v, len);
    memcpy(joined + len, "...", 3);
    wsb_json_string(j, joined, len + 3);
  }
}

static void put_fields(struct wsb_json *j, const struct wsb_log_field *fields, size_t n) {
  if (n > WSB_LOG_FIELDS_MAX)
    n = WSB_LOG_FIELDS_MAX;
  for (size_t i = 0; i < n; i++) {
    const struct wsb_log_field *f = &fields[i];
    if (!field_key_ok(f->key))
      continue;
    size_t len = f->str != NULL ? wsb_log_cut(f->str, f->len, WSB_LOG_VALUE_MAX) : 0;
    bool cut = f->str != NULL && len < f->len;
    if (log_format == WSB_LOG_JSON)
      put_json_field(j, f, f->str, len, cut);
    else
      put_text_field(&j->text, f, f->str, len, cut);
  }
}

/* msg holds msg_len bytes of a message of full_len (more when vsnprintf cut it). */
static size_t format_line(char *buf, size_t cap, enum wsb_log_level level, const char *msg,
                          size_t msg_len, size_t full_len, const struct wsb_log_field *fields,
                          size_t nfields) {
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
    size_t keep = wsb_log_cut(msg, full_len, WSB_LOG_MSG_MAX);
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
    put_fields(&j, fields, nfields);
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
    put_escaped(t, msg, msg_len, false, false);
    wsb_text_put(t, marker, strlen(marker));
    put_fields(&j, fields, nfields);
  }
  wsb_text_put(t, "\n", 1);
  return t->overflow ? 0 : t->len;
}

size_t wsb_log_format_line(char *buf, size_t cap, enum wsb_log_level level, const char *msg,
                           size_t msg_len, const struct wsb_log_field *fields, size_t n) {
  return format_line(buf, cap, level, msg, msg_len, msg_len, fields, n);
}

__attribute__((format(printf, 4, 0))) static void log_line(enum wsb_log_level level,
                                                           const struct wsb_log_field *fields,
                                                           size_t n, const char *fmt, va_list ap) {
  /* Room past the bound, so that the cut can back up to where a character starts. */
  char msg[WSB_LOG_MSG_MAX + 4];
  char line[WSB_LOG_LINE_MAX];
  int m = vsnprintf(msg, sizeof(msg), fmt, ap);
  if (m < 0)
    return;
  size_t have = (size_t)m < sizeof(msg) ? (size_t)m : sizeof(msg) - 1;
  size_t len = format_line(line, sizeof(line), level, msg, have, (size_t)m, fields, n);
  if (len == 0)
    return;
  /* One write per line, so lines of several processes sharing stderr never interleave. */
  ssize_t unused = write(STDERR_FILENO, line, len);
  (void)unused;
}

void wsb_log_fieldsv(enum wsb_log_level level, const struct wsb_log_field *fields, size_t n,
                     const char *fmt, va_list ap) {
  if (wsb_log_enabled(level))
    log_line(level, fields, n, fmt, ap);
}

void wsb_log_fields(enum wsb_log_level level, const struct wsb_log_field *fields, size_t n,
                    const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  wsb_log_fieldsv(level, fields, n, fmt, ap);
  va_end(ap);
}

void wsb_log(enum wsb_log_level level, const char *fmt, ...) {
  if (!wsb_log_enabled(level))
    return;
  va_list ap;
  va_start(ap, fmt);
  log_line(level, NULL, 0, fmt, ap);
  va_end(ap);
}

void wsb_fatal(int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  log_line(WSB_LOG_ERROR, NULL, 0, fmt, ap);
  va_end(ap);
  exit(status);
}
