/* wsbalctl's human output: the admin API's JSON answers as aligned tables and key/value lists. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "errors.h"
#include "http.h"
#include "json_read.h"

/* Longest text a cell shows; longer strings are cut (paths can be long). */
#define CELL_MAX    512
#define MAX_COLUMNS 16

static const struct wsb_ctl_column backend_columns[] = {
    {"NAME", "name", false},          {"URL", "url", false},
    {"WEIGHT", "weight", true},       {"MAX", "max_sessions", true},
    {"BACKUP", "backup", false},      {"POOL", "pool", false},
    {"ENABLED", "enabled", false},    {"UP", "up", false},
    {"SESSIONS", "sessions", true},   {"TOTAL", "sessions_total", true},
    {"FAILOVERS", "failovers", true}, {"FAILURES", "failures", true},
    {"BREAKER", "breaker", false},
};

/* A key with a dot names a member of an object member ("settings.algorithm"). */
static const struct wsb_ctl_column pool_columns[] = {
    {"NAME", "name", false},
    {"ALGORITHM", "settings.algorithm", false},
    {"BACKENDS", "backends", false},
    {"AVAILABLE", "available", true},
    {"SESSIONS", "sessions", true},
    {"FAILOVER", "settings.failover", false},
    {"HEALTH", "settings.health_check", false},
};

static const struct wsb_ctl_column route_columns[] = {
    {"NAME", "name", false},        {"POOL", "pool", false},      {"HOST", "host", false},
    {"PATH", "path", false},        {"HEADER", "header", false},  {"WEBSOCKET", "websocket", false},
    {"STRIP", "strip_path", false}, {"MATCHES", "matches", true},
};

static const struct wsb_ctl_column worker_columns[] = {
    {"SLOT", "slot", true},
    {"PID", "pid", true},
    {"SESSIONS", "sessions", true},
    {"DRAINING", "draining", false},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- reading the answer ---- */

void wsb_ctl_unexpected(const char *why) {
  fprintf(stderr, "wsbalctl: the admin API's answer is not what wsbalctl expects: %s\n", why);
}

/* Parses the body; prints why not and returns false when it is not a JSON object. */
bool wsb_ctl_read_json(const struct wsb_ctl_answer *ans, struct wsb_ctl_reader *r, bool quiet) {
  /* Every token but the last takes at least two bytes of text (itself and a comma or colon). */
  size_t ntokens = ans->len / 2 + 2;
  r->tokens = malloc(ntokens * sizeof(*r->tokens));
  if (r->tokens == NULL) {
    if (!quiet)
      wsb_ctl_unexpected("out of memory");
    return false;
  }
  int n = wsb_json_parse(&r->doc, ans->body, ans->len, r->tokens, ntokens, 0);
  if (n < 0) {
    if (!quiet) {
      char why[128];
      snprintf(why, sizeof(why), "%s at byte %zu", wsb_strerror(n), r->doc.err_off);
      wsb_ctl_unexpected(why);
    }
    free(r->tokens);
    r->tokens = NULL;
    return false;
  }
  return true;
}

void wsb_ctl_reader_free(struct wsb_ctl_reader *r) {
  free(r->tokens);
}

enum wsb_json_type wsb_ctl_json_type(const struct wsb_json_doc *doc, int i) {
  return i >= 0 && i < doc->count ? doc->tokens[i].type : 0;
}

/* Control bytes from the server (a client's path, say) must not drive the terminal. */
static void make_printable(char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < ' ' || *s == 0x7f)
      *s = '?';
}

static void raw_text(const struct wsb_json_doc *doc, int i, char *buf, size_t cap) {
  size_t n = doc->tokens[i].end - doc->tokens[i].start;
  if (n >= cap)
    n = cap - 1;
  memcpy(buf, doc->text + doc->tokens[i].start, n);
  buf[n] = '\0';
  make_printable(buf);
}

/*
 * A scalar as a cell: strings unescaped, numbers as written, booleans yes/no, null, absent and
 * empty as "-". An object of scalars becomes "k=v k=v"; anything deeper stays JSON text.
 */
static void value_text(const struct wsb_json_doc *doc, int i, char *buf, size_t cap) {
  switch (wsb_ctl_json_type(doc, i)) {
  case WSB_JSON_STRING:
    /* A string too long or holding U+0000 still shows what was decoded. */
    wsb_json_get_string(doc, i, buf, cap, NULL);
    make_printable(buf);
    if (buf[0] == '\0')
      snprintf(buf, cap, "-");
    return;
  case WSB_JSON_NUMBER:
    raw_text(doc, i, buf, cap);
    return;
  case WSB_JSON_BOOL: {
    bool v = false;
    wsb_json_get_bool(doc, i, &v);
    snprintf(buf, cap, "%s", v ? "yes" : "no");
    return;
  }
  case WSB_JSON_OBJECT: {
    size_t len = 0;
    buf[0] = '\0';
    for (int k = wsb_json_next_child(doc, i, 0); k > 0; k = wsb_json_next_child(doc, i, k)) {
      enum wsb_json_type t = wsb_ctl_json_type(doc, k + 1);
      if (t == WSB_JSON_OBJECT || t == WSB_JSON_ARRAY) {
        raw_text(doc, i, buf, cap);
        return;
      }
      char key[64], val[128];
      wsb_json_get_string(doc, k, key, sizeof(key), NULL);
      make_printable(key);
      value_text(doc, k + 1, val, sizeof(val));
      int n = snprintf(buf + len, cap - len, "%s%s=%s", len ? " " : "", key, val);
      if (n < 0 || (size_t)n >= cap - len)
        return;
      len += (size_t)n;
    }
    return;
  }
  case WSB_JSON_ARRAY: {
    /* Scalars joined with commas (a pool's backends); anything deeper stays JSON text. */
    size_t len = 0;
    buf[0] = '\0';
    for (int k = wsb_json_next_child(doc, i, 0); k > 0; k = wsb_json_next_child(doc, i, k)) {
      enum wsb_json_type t = wsb_ctl_json_type(doc, k);
      if (t == WSB_JSON_OBJECT || t == WSB_JSON_ARRAY) {
        raw_text(doc, i, buf, cap);
        return;
      }
      char val[128];
      value_text(doc, k, val, sizeof(val));
      int n = snprintf(buf + len, cap - len, "%s%s", len ? "," : "", val);
      if (n < 0 || (size_t)n >= cap - len)
        return;
      len += (size_t)n;
    }
    if (len == 0)
      snprintf(buf, cap, "-");
    return;
  }
  default:
    snprintf(buf, cap, "-");
  }
}

/* ---- tables ---- */

void wsb_ctl_table_header(struct wsb_ctl_table *t, const struct wsb_ctl_column *cols, size_t ncols,
                          bool *right) {
  for (size_t c = 0; c < ncols; c++) {
    right[c] = cols[c].right;
    wsb_ctl_table_add(t, cols[c].title);
  }
}

/* The member of obj that key names, through objects at each '.'; -1 when absent. */
static int member_path(const struct wsb_json_doc *doc, int obj, const char *key) {
  const char *dot = strchr(key, '.');
  while (dot != NULL && obj >= 0) {
    char part[64];
    snprintf(part, sizeof(part), "%.*s", (int)(dot - key), key);
    obj = wsb_json_member(doc, obj, part);
    key = dot + 1;
    dot = strchr(key, '.');
  }
  return obj >= 0 && wsb_ctl_json_type(doc, obj) == WSB_JSON_OBJECT ? wsb_json_member(doc, obj, key)
                                                                    : -1;
}

void wsb_ctl_table_row(struct wsb_ctl_table *t, const struct wsb_json_doc *doc, int obj,
                       const struct wsb_ctl_column *cols, size_t ncols) {
  char cell[CELL_MAX];
  for (size_t c = 0; c < ncols; c++) {
    value_text(doc, member_path(doc, obj, cols[c].key), cell, sizeof(cell));
    wsb_ctl_table_add(t, cell);
  }
}

void wsb_ctl_print_body(const struct wsb_ctl_answer *ans) {
  fwrite(ans->body, 1, ans->len, stdout);
  if (ans->len > 0 && ans->body[ans->len - 1] != '\n')
    fputc('\n', stdout);
}

int wsb_ctl_table_finish(struct wsb_ctl_table *t) {
  if (wsb_ctl_table_print(t, stdout) != 0) {
    fprintf(stderr, "wsbalctl: out of memory\n");
    return WSB_CTL_EXIT_ERROR;
  }
  return WSB_CTL_EXIT_OK;
}

/* One row per object of the array member `key` of the top-level object. */
static int print_rows(const struct wsb_json_doc *doc, const char *key,
                      const struct wsb_ctl_column *cols, size_t ncols) {
  int array = wsb_json_member(doc, 0, key);
  if (wsb_ctl_json_type(doc, array) != WSB_JSON_ARRAY) {
    char why[96];
    snprintf(why, sizeof(why), "no \"%s\" array", key);
    wsb_ctl_unexpected(why);
    return WSB_CTL_EXIT_ERROR;
  }
  bool right[MAX_COLUMNS];
  struct wsb_ctl_table t;
  wsb_ctl_table_init(&t, ncols, right);
  wsb_ctl_table_header(&t, cols, ncols, right);
  for (int e = wsb_json_next_child(doc, array, 0); e > 0; e = wsb_json_next_child(doc, array, e)) {
    if (wsb_ctl_json_type(doc, e) != WSB_JSON_OBJECT) {
      wsb_ctl_table_free(&t);
      wsb_ctl_unexpected("a list element is not an object");
      return WSB_CTL_EXIT_ERROR;
    }
    wsb_ctl_table_row(&t, doc, e, cols, ncols);
  }
  return wsb_ctl_table_finish(&t);
}

/* "key  value" lines for the members of obj, except arrays and the keys in skip. */
static void add_fields(struct wsb_ctl_table *t, const struct wsb_json_doc *doc, int obj,
                       const char *const *skip) {
  char key[128], val[CELL_MAX];
  for (int k = wsb_json_next_child(doc, obj, 0); k > 0; k = wsb_json_next_child(doc, obj, k)) {
    wsb_json_get_string(doc, k, key, sizeof(key), NULL);
    bool skipped = wsb_ctl_json_type(doc, k + 1) == WSB_JSON_ARRAY;
    for (size_t s = 0; skip != NULL && skip[s] != NULL && !skipped; s++)
      skipped = strcmp(key, skip[s]) == 0;
    if (skipped)
      continue;
    make_printable(key);
    value_text(doc, k + 1, val, sizeof(val));
    wsb_ctl_table_add(t, key);
    wsb_ctl_table_add(t, val);
  }
}

/* ---- printers ---- */

int wsb_ctl_print_status(const struct wsb_ctl_answer *ans) {
  struct wsb_ctl_reader r;
  if (!wsb_ctl_read_json(ans, &r, false))
    return WSB_CTL_EXIT_ERROR;
  static const char *const skip[] = {"totals", "workers", NULL};
  struct wsb_ctl_table t;
  wsb_ctl_table_init(&t, 2, NULL);
  add_fields(&t, &r.doc, 0, skip);
  int totals = wsb_json_member(&r.doc, 0, "totals");
  if (wsb_ctl_json_type(&r.doc, totals) == WSB_JSON_OBJECT)
    add_fields(&t, &r.doc, totals, NULL);
  int rc = wsb_ctl_table_finish(&t);
  if (rc == WSB_CTL_EXIT_OK) {
    fputc('\n', stdout);
    rc = print_rows(&r.doc, "workers", worker_columns, COUNT(worker_columns));
  }
  wsb_ctl_reader_free(&r);
  return rc;
}

/* The answer's array member key, one row per object, under its columns. */
static int print_list(const struct wsb_ctl_answer *ans, const char *key,
                      const struct wsb_ctl_column *cols, size_t ncols) {
  struct wsb_ctl_reader r;
  if (!wsb_ctl_read_json(ans, &r, false))
    return WSB_CTL_EXIT_ERROR;
  int rc = print_rows(&r.doc, key, cols, ncols);
  wsb_ctl_reader_free(&r);
  return rc;
}

/* The answer's top-level object as one row under its columns. */
static int print_one(const struct wsb_json_doc *doc, const struct wsb_ctl_column *cols,
                     size_t ncols) {
  bool right[MAX_COLUMNS] = {false}; /* add_header sets them; the table keeps the pointer */
  struct wsb_ctl_table t;
  wsb_ctl_table_init(&t, ncols, right);
  wsb_ctl_table_header(&t, cols, ncols, right);
  wsb_ctl_table_row(&t, doc, 0, cols, ncols);
  return wsb_ctl_table_finish(&t);
}

int wsb_ctl_print_backends(const struct wsb_ctl_answer *ans) {
  return print_list(ans, "backends", backend_columns, COUNT(backend_columns));
}

int wsb_ctl_print_pools(const struct wsb_ctl_answer *ans) {
  return print_list(ans, "pools", pool_columns, COUNT(pool_columns));
}

int wsb_ctl_print_pool(const struct wsb_ctl_answer *ans) {
  struct wsb_ctl_reader r;
  if (!wsb_ctl_read_json(ans, &r, false))
    return WSB_CTL_EXIT_ERROR;
  int rc = print_one(&r.doc, pool_columns, COUNT(pool_columns));
  wsb_ctl_reader_free(&r);
  return rc;
}

/* The routes in matching order, then what no route takes: "(default)" and its count. */
int wsb_ctl_print_routes(const struct wsb_ctl_answer *ans) {
  struct wsb_ctl_reader r;
  if (!wsb_ctl_read_json(ans, &r, false))
    return WSB_CTL_EXIT_ERROR;
  const struct wsb_json_doc *doc = &r.doc;
  int list = wsb_json_member(doc, 0, "routes"), fallback = wsb_json_member(doc, 0, "default");
  if (wsb_ctl_json_type(doc, list) != WSB_JSON_ARRAY ||
      wsb_ctl_json_type(doc, fallback) != WSB_JSON_OBJECT) {
    wsb_ctl_reader_free(&r);
    wsb_ctl_unexpected("no \"routes\" array or \"default\" object");
    return WSB_CTL_EXIT_ERROR;
  }
  bool right[MAX_COLUMNS];
  struct wsb_ctl_table t;
  wsb_ctl_table_init(&t, COUNT(route_columns), right);
  wsb_ctl_table_header(&t, route_columns, COUNT(route_columns), right);
  for (int e = wsb_json_next_child(doc, list, 0); e > 0; e = wsb_json_next_child(doc, list, e))
    wsb_ctl_table_row(&t, doc, e, route_columns, COUNT(route_columns));
  char cell[CELL_MAX];
  for (size_t c = 0; c < COUNT(route_columns); c++) {
    const char *key = route_columns[c].key;
    if (strcmp(key, "name") == 0)
      snprintf(cell, sizeof(cell), "(default)");
    else
      value_text(doc, wsb_json_member(doc, fallback, key), cell, sizeof(cell));
    wsb_ctl_table_add(&t, cell);
  }
  wsb_ctl_reader_free(&r);
  return wsb_ctl_table_finish(&t);
}

int wsb_ctl_print_backend(const struct wsb_ctl_answer *ans) {
  struct wsb_ctl_reader r;
  if (!wsb_ctl_read_json(ans, &r, false))
    return WSB_CTL_EXIT_ERROR;
  int rc;
  if (wsb_ctl_json_type(&r.doc, wsb_json_member(&r.doc, 0, "backends")) == WSB_JSON_ARRAY) {
    wsb_ctl_reader_free(&r);
    return wsb_ctl_print_backends(ans); /* a section of several addresses */
  }
  if (wsb_json_member(&r.doc, 0, "name") < 0) {
    wsb_ctl_reader_free(&r);
    return wsb_ctl_print_fields(ans); /* some other acknowledgement */
  }
  rc = print_one(&r.doc, backend_columns, COUNT(backend_columns));
  wsb_ctl_reader_free(&r);
  return rc;
}

int wsb_ctl_sessions_left(const struct wsb_ctl_answer *ans, uint64_t *left) {
  struct wsb_ctl_reader r;
  if (!wsb_ctl_read_json(ans, &r, false))
    return WSB_CTL_EXIT_ERROR;
  const struct wsb_json_doc *doc = &r.doc;
  int list = wsb_json_member(doc, 0, "backends");
  bool ok = true;
  *left = 0;
  if (wsb_ctl_json_type(doc, list) == WSB_JSON_ARRAY) {
    for (int e = wsb_json_next_child(doc, list, 0); ok && e > 0;
         e = wsb_json_next_child(doc, list, e)) {
      uint64_t n = 0;
      ok = wsb_json_get_uint(doc, wsb_json_member(doc, e, "sessions"), 0, UINT64_MAX, &n) == 0;
      *left += n;
    }
  } else {
    ok = wsb_json_get_uint(doc, wsb_json_member(doc, 0, "sessions"), 0, UINT64_MAX, left) == 0;
  }
  wsb_ctl_reader_free(&r);
  if (!ok)
    wsb_ctl_unexpected("a backend without a \"sessions\" count");
  return ok ? WSB_CTL_EXIT_OK : WSB_CTL_EXIT_ERROR;
}

/* The strings of an answer's array member key, one indented line each after prefix. */
static void print_lines(const struct wsb_json_doc *doc, const char *key, const char *prefix,
                        FILE *out) {
  int list = wsb_json_member(doc, 0, key);
  char line[CELL_MAX];
  for (int e = wsb_json_next_child(doc, list, 0); e > 0; e = wsb_json_next_child(doc, list, e)) {
    value_text(doc, e, line, sizeof(line));
    fprintf(out, "  %s%s\n", prefix, line);
  }
}

/* The "errors" strings of an answer, one indented line each. */
static void print_error_lines(const struct wsb_json_doc *doc, FILE *out) {
  print_lines(doc, "errors", "", out);
}

int wsb_ctl_print_reload(const struct wsb_ctl_answer *ans) {
  struct wsb_ctl_reader r;
  if (!wsb_ctl_read_json(ans, &r, false))
    return WSB_CTL_EXIT_ERROR;
  char result[64], generation[32];
  value_text(&r.doc, wsb_json_member(&r.doc, 0, "result"), result, sizeof(result));
  value_text(&r.doc, wsb_json_member(&r.doc, 0, "generation"), generation, sizeof(generation));
  printf("reload %s: configuration generation %s\n", result, generation);
  print_error_lines(&r.doc, stdout);
  /* Runtime changes the file did not make, gone with the reload. */
  print_lines(&r.doc, "discarded", "discarded: ", stdout);
  wsb_ctl_reader_free(&r);
  return WSB_CTL_EXIT_OK;
}

int wsb_ctl_print_fields(const struct wsb_ctl_answer *ans) {
  struct wsb_ctl_reader r;
  if (!wsb_ctl_read_json(ans, &r, false))
    return WSB_CTL_EXIT_ERROR;
  struct wsb_ctl_table t;
  wsb_ctl_table_init(&t, 2, NULL);
  add_fields(&t, &r.doc, 0, NULL);
  int rc = wsb_ctl_table_finish(&t);
  wsb_ctl_reader_free(&r);
  return rc;
}

/* The first line of a body that is not JSON, trimmed and cut short. */
static void first_line(const char *body, size_t len, char *buf, size_t cap) {
  while (len > 0 && (*body == ' ' || *body == '\r' || *body == '\n')) {
    body++;
    len--;
  }
  size_t n = 0;
  while (n < len && body[n] != '\n' && body[n] != '\r' && n + 1 < cap)
    n++;
  memcpy(buf, body, n);
  buf[n] = '\0';
  make_printable(buf);
}

bool wsb_ctl_error_starts(const struct wsb_ctl_answer *ans, const char *prefix) {
  char msg[CELL_MAX] = "";
  struct wsb_ctl_reader r;
  if (ans->len == 0 || !wsb_ctl_read_json(ans, &r, true))
    return false;
  int i = wsb_json_member(&r.doc, 0, "error");
  if (wsb_ctl_json_type(&r.doc, i) == WSB_JSON_STRING)
    value_text(&r.doc, i, msg, sizeof(msg));
  wsb_ctl_reader_free(&r);
  return strncmp(msg, prefix, strlen(prefix)) == 0;
}

void wsb_ctl_print_error(const struct wsb_ctl_answer *ans) {
  char msg[CELL_MAX] = "";
  struct wsb_ctl_reader r;
  bool json = ans->len > 0 && wsb_ctl_read_json(ans, &r, true);
  if (ans->status == 401) {
    snprintf(msg, sizeof(msg), "missing or wrong bearer token (set WSBAL_TOKEN or -T)");
  } else if (json &&
             wsb_ctl_json_type(&r.doc, wsb_json_member(&r.doc, 0, "error")) == WSB_JSON_STRING) {
    value_text(&r.doc, wsb_json_member(&r.doc, 0, "error"), msg, sizeof(msg));
  } else if (!json) {
    first_line(ans->body ? ans->body : "", ans->len, msg, sizeof(msg));
  }
  if (msg[0] == '\0')
    snprintf(msg, sizeof(msg), "%s", wsb_http_reason(ans->status));
  fprintf(stderr, "wsbalctl: %d: %s\n", ans->status, msg);
  if (json) {
    print_error_lines(&r.doc, stderr);
    wsb_ctl_reader_free(&r);
  }
}
