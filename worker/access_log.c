/* The access log: one JSON line per finished (and started) session, appended by its worker. */
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
#include "tls_leg.h"

/*
 * An open log file. Lines are written from libuv's thread pool, so a file may only be closed once
 * no write to it is pending: otherwise a late write could land in whatever reuses the descriptor.
 */
struct wsb_log_file {
  int fd;
  unsigned pending; /* writes in flight */
  bool retired;     /* replaced or closed: close fd after the last pending write */
};

static void release(struct wsb_log_file *f) {
  if (f->pending > 0)
    return;
  if (f->fd > STDERR_FILENO)
    close(f->fd);
  free(f);
}

void wsb_access_log_close(struct wsb_worker *w) {
  if (w->access_log == NULL)
    return;
  w->access_log->retired = true;
  release(w->access_log);
  w->access_log = NULL;
}

/*
 * Opens the path the table names (at start, when a reload changes it, on SIGUSR1). When the new
 * file cannot be opened, lines keep going to the one already open, as nginx does on a failed
 * reopen: losing them silently would be worse than writing them under the rotated name. The
 * failure is logged once per attempt and counted (wsbal_access_log_errors_total).
 */
int wsb_access_log_reopen(struct wsb_worker *w) {
  const char *path = w->table->settings.access_log;
  snprintf(w->access_path, sizeof(w->access_path), "%s", path);
  if (path[0] == '\0') {
    wsb_access_log_close(w);
    return 0;
  }
  /* O_APPEND: every worker writes whole lines to the same file without clobbering the others. */
  int fd = strcmp(path, "stderr") == 0
               ? STDERR_FILENO
               : open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  struct wsb_log_file *f = fd >= 0 ? calloc(1, sizeof(*f)) : NULL;
  if (f == NULL) {
    int err = fd < 0 ? errno : ENOMEM;
    if (fd > STDERR_FILENO)
      close(fd);
    wsb_shm_add(&w->stats->access_log_errors, 1);
    wsb_log_error("access log %s: %s%s", path, strerror(err),
                  w->access_log != NULL ? "; lines go on to the file open before" : "");
    return -err;
  }
  f->fd = fd;
  wsb_access_log_close(w);
  w->access_log = f;
  return 0;
}

struct log_write {
  uv_fs_t req;
  struct wsb_log_file *file;
  char *line;
};

static void on_log_written(uv_fs_t *req) {
  struct log_write *lw = req->data;
  uv_fs_req_cleanup(req);
  lw->file->pending--;
  if (lw->file->retired)
    release(lw->file);
  free(lw->line);
  free(lw);
}

static const char *closed_by_name(enum wsb_closed_by by) {
  switch (by) {
  case BY_CLIENT:
    return "client";
  case BY_BACKEND:
    return "backend";
  default:
    return "wsbal";
  }
}

/* A close code as words (RFC 6455 7.4.1 and IANA's registry), for a reader of the log. */
static const char *close_text(uint16_t code) {
  static const char *const names[] = {
      "normal closure",
      "going away",
      "protocol error",
      "unsupported data",
      NULL,
      "no status",
      "abnormal closure",
      "invalid payload data",
      "policy violation",
      "message too big",
      "mandatory extension",
      "internal error",
      "service restart",
      "try again later",
      "bad gateway",
      "TLS handshake failure",
  };
  if (code >= 1000 && code <= 1015 && names[code - 1000] != NULL)
    return names[code - 1000];
  if (code >= 3000 && code <= 3999)
    return "registered";
  if (code >= 4000 && code <= 4999)
    return "private";
  return "unknown";
}

/* Host and User-Agent are the client's to choose: a line keeps this much of each. */
#define HEADER_VALUE_MAX 512

static void put_head_value(struct wsb_json *j, const char *key, const struct wsb_session *s,
                           uint32_t off, uint16_t len) {
  const char *p = s->head + off;
  wsb_json_key(j, key);
  wsb_json_string(j, p, wsb_log_cut(p, len, HEADER_VALUE_MAX));
}

/* Hands a line to libuv's thread pool: a slow disk never stalls the sessions of this loop.
   O_APPEND keeps each line whole; lines of different sessions may land in any order. */
static void write_line(struct wsb_worker *w, char *line, size_t n) {
  struct log_write *lw = malloc(sizeof(*lw));
  if (lw == NULL) {
    free(line);
    return;
  }
  lw->line = line;
  lw->file = w->access_log;
  lw->req.data = lw;
  uv_buf_t b = uv_buf_init(line, (unsigned)n);
  if (uv_fs_write(&w->loop, &lw->req, lw->file->fd, &b, 1, -1, on_log_written) != 0) {
    free(line);
    free(lw);
    return;
  }
  lw->file->pending++;
}

/* Closes the object of line (allocated with one byte more than j holds) and writes it. */
static void end_line(struct wsb_worker *w, struct wsb_json *j, char *line) {
  wsb_json_object_end(j);
  size_t n = wsb_json_finish(j);
  if (n == 0) {
    free(line);
    return;
  }
  line[n++] = '\n';
  write_line(w, line, n);
}

/*
 * A line of cap bytes (NULL without memory) whose object j has begun with what every line
 * starts with: ts (now, UTC with milliseconds), type, session and client (the real client).
 */
static char *begin_line(const struct wsb_session *s, size_t cap, const char *type,
                        struct wsb_json *j) {
  char ts[64], id[17], client[INET6_ADDRSTRLEN] = "";
  struct timeval tv;
  struct tm tm;
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
  snprintf(id, sizeof(id), "%016llx", (unsigned long long)s->id);
  if (s->client_family != 0)
    inet_ntop(s->client_family, s->client_addr, client, sizeof(client));
  char *line = malloc(cap);
  if (line == NULL)
    return NULL;
  wsb_json_init(j, line, cap - 1);
  wsb_json_object_begin(j);
  wsb_json_key(j, "ts");
  wsb_json_cstring(j, ts);
  wsb_json_key(j, "type");
  wsb_json_cstring(j, type);
  wsb_json_key(j, "session");
  wsb_json_cstring(j, id);
  wsb_json_key(j, "client");
  wsb_json_cstring(j, client);
  return line;
}

/* One line, start or end. The keys SPEC.md names come first and stay as they are; the rest are
   wsbal(8)'s. */
static void log_session(struct wsb_worker *w, const struct wsb_session *s, bool start) {
  if (w->access_log == NULL || s->head == NULL)
    return; /* off, or no WebSocket session ever started */
  const char *sni = wsb__tls_leg_sni(&s->client);

  /* Escaping may turn a byte into six ("\u0001"): room for the worst case of the path, names
     and values, plus the fixed fields. */
  size_t cap =
      ((size_t)s->path_len + (size_t)s->nused * (WSB_NAME_MAX + 4) + 2 * HEADER_VALUE_MAX +
       strlen(sni) + WSB_CLOSE_REASON_MAX + (s->protocol != NULL ? strlen(s->protocol) : 0)) *
          6 +
      1024;
  struct wsb_json j;
  char *line = begin_line(s, cap, "ws", &j);
  if (line == NULL)
    return;
  wsb_json_key(&j, "path");
  wsb_json_string(&j, s->head + s->path_off, s->path_len);
  if (start) {
    wsb_json_key(&j, "backend");
    wsb_json_cstring(&j, s->nused > 0 ? w->table->backends[s->used[s->nused - 1]].name : "");
  } else {
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
    uint16_t code = s->close_code ? s->close_code : 1006;
    wsb_json_key(&j, "close_code");
    wsb_json_uint(&j, code);
    wsb_json_key(&j, "closed_by");
    wsb_json_cstring(&j, closed_by_name(s->closed_by));
    wsb_json_key(&j, "close_text");
    wsb_json_cstring(&j, close_text(code));
    wsb_json_key(&j, "close_reason");
    wsb_json_cstring(&j, s->close_reason != NULL ? s->close_reason : "");
  }
  wsb_json_key(&j, "event");
  wsb_json_cstring(&j, start ? "start" : "end");
  put_head_value(&j, "host", s, s->host_off, s->host_len);
  put_head_value(&j, "user_agent", s, s->ua_off, s->ua_len);
  wsb_json_key(&j, "subprotocol");
  wsb_json_cstring(&j, s->protocol != NULL ? s->protocol : "");
  wsb_json_key(&j, "tls_version");
  wsb_json_cstring(&j, wsb__tls_leg_version(&s->client));
  wsb_json_key(&j, "sni");
  wsb_json_cstring(&j, sni);
  wsb_json_key(&j, "connect_ms");
  wsb_json_uint(&j, s->connect_ms);
  wsb_json_key(&j, "pool");
  wsb_json_cstring(&j, w->table->pools[s->pool % WSB_SHM_MAX_POOLS].name);
  if (s->route_len > 0) {
    wsb_json_key(&j, "route");
    wsb_json_string(&j, s->head + s->head_len, s->route_len);
  }
  wsb_json_key(&j, "worker");
  wsb_json_uint(&j, w->slot);
  end_line(w, &j, line);
}

void wsb_access_log_session(struct wsb_worker *w, const struct wsb_session *s) {
  log_session(w, s, false);
}

void wsb_access_log_start(struct wsb_worker *w, const struct wsb_session *s) {
  log_session(w, s, true);
}

/* One line per plain HTTP request: SPEC.md's keys first, then the connection's. */
void wsb_access_log_http(struct wsb_worker *w, const struct wsb_session *s,
                         const struct wsb_http_log *e) {
  if (w->access_log == NULL)
    return;
  size_t cap = (e->path.len + 2 * HEADER_VALUE_MAX + WSB_NAME_MAX) * 6 + 1024;
  struct wsb_json j;
  char *line = begin_line(s, cap, "http", &j);
  if (line == NULL)
    return;
  wsb_json_key(&j, "method");
  wsb_json_cstring(&j, e->method);
  wsb_json_key(&j, "path");
  wsb_json_string(&j, e->path.p, e->path.len);
  wsb_json_key(&j, "status");
  wsb_json_uint(&j, (uint64_t)e->status);
  wsb_json_key(&j, "duration_ms");
  wsb_json_uint(&j, e->duration_ms);
  wsb_json_key(&j, "bytes_in");
  wsb_json_uint(&j, e->bytes_in);
  wsb_json_key(&j, "bytes_out");
  wsb_json_uint(&j, e->bytes_out);
  wsb_json_key(&j, "backend");
  wsb_json_cstring(&j, e->backend_slot >= 0 ? w->table->backends[e->backend_slot].name : "");
  wsb_json_key(&j, "host");
  wsb_json_string(&j, e->host.p, wsb_log_cut(e->host.p, e->host.len, HEADER_VALUE_MAX));
  wsb_json_key(&j, "user_agent");
  wsb_json_string(&j, e->user_agent.p,
                  wsb_log_cut(e->user_agent.p, e->user_agent.len, HEADER_VALUE_MAX));
  wsb_json_key(&j, "tls_version");
  wsb_json_cstring(&j, wsb__tls_leg_version(&s->client));
  if (e->route != NULL && e->route[0] != '\0') {
    wsb_json_key(&j, "pool");
    wsb_json_cstring(&j, w->table->pools[s->pool % WSB_SHM_MAX_POOLS].name);
    wsb_json_key(&j, "route");
    wsb_json_cstring(&j, e->route);
  }
  wsb_json_key(&j, "worker");
  wsb_json_uint(&j, w->slot);
  end_line(w, &j, line);
}
