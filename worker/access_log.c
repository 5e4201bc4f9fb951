/* The access log: one JSON line per finished session, appended by the worker that ran it. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "log.h"
#include "session.h"

void wsb_access_log_reopen(struct wsb_worker *w) {
  const char *path = w->table->settings.access_log;
  if (w->access_fd > STDERR_FILENO)
    close(w->access_fd);
  w->access_fd = -1;
  snprintf(w->access_path, sizeof(w->access_path), "%s", path);
  if (path[0] == '\0')
    return;
  if (strcmp(path, "stderr") == 0) {
    w->access_fd = STDERR_FILENO;
    return;
  }
  /* O_APPEND: every worker writes whole lines to the same file without clobbering the others. */
  w->access_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (w->access_fd < 0)
    wsb_log_error("access log %s: %s", path, strerror(errno));
}

static const char *closed_by_name(enum closed_by by) {
  switch (by) {
  case BY_CLIENT:
    return "client";
  case BY_BACKEND:
    return "backend";
  default:
    return "wsbal";
  }
}

void wsb_access_log_session(struct wsb_worker *w, const struct wsb_session *s) {
  if (w->access_fd < 0 || s->head == NULL)
    return; /* off, or no WebSocket session ever started */
  char ts[64], id[17], client[INET6_ADDRSTRLEN] = "";
  struct timeval tv;
  struct tm tm;
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
  snprintf(id, sizeof(id), "%016llx", (unsigned long long)s->id);
  if (s->client_family != 0)
    inet_ntop(s->client_family, s->client_addr, client, sizeof(client));

  /* Escaping may turn a byte into six ("\u0001"): room for the worst case of the path and
     names, plus the fixed fields. */
  size_t cap = (size_t)s->path_len * 6 + (size_t)s->nused * (WSB_NAME_MAX * 6 + 4) + 1024;
  char *line = malloc(cap);
  if (line == NULL)
    return;
  struct wsb_json j;
  wsb_json_init(&j, line, cap - 1);
  wsb_json_object_begin(&j);
  wsb_json_key(&j, "ts");
  wsb_json_cstring(&j, ts);
  wsb_json_key(&j, "session");
  wsb_json_cstring(&j, id);
  wsb_json_key(&j, "client");
  wsb_json_cstring(&j, client);
  wsb_json_key(&j, "path");
  wsb_json_string(&j, s->head + s->path_off, s->path_len);
  wsb_json_key(&j, "backends");
  wsb_json_array_begin(&j);
  for (unsigned i = 0; i < s->nused; i++)
    wsb_json_cstring(&j, w->table->backends[s->used[i]].name);
  wsb_json_array_end(&j);
  wsb_json_key(&j, "duration_ms");
  wsb_json_uint(&j, uv_now(&w->loop) - s->started_ms);
  wsb_json_key(&j, "messages_in");
  wsb_json_uint(&j, s->messages[WSB_DIR_TO_BACKEND]);
  wsb_json_key(&j, "messages_out");
  wsb_json_uint(&j, s->messages[WSB_DIR_TO_CLIENT]);
  wsb_json_key(&j, "bytes_in");
  wsb_json_uint(&j, s->bytes[WSB_DIR_TO_BACKEND]);
  wsb_json_key(&j, "bytes_out");
  wsb_json_uint(&j, s->bytes[WSB_DIR_TO_CLIENT]);
  wsb_json_key(&j, "failovers");
  wsb_json_uint(&j, s->failovers);
  wsb_json_key(&j, "close_code");
  wsb_json_uint(&j, s->close_code ? s->close_code : 1006);
  wsb_json_key(&j, "closed_by");
  wsb_json_cstring(&j, closed_by_name(s->closed_by));
  wsb_json_object_end(&j);
  size_t n = wsb_json_finish(&j);
  if (n > 0) {
    line[n++] = '\n';
    ssize_t unused = write(w->access_fd, line, n);
    (void)unused;
  }
  free(line);
}
