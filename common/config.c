/* Loading the configuration: defaults, the INI file through inih, the environment, the checks. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <ini.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_keys.h"
#include "errors.h"
#include "route.h"
#include "tls_context.h"

/*
 * The INI dialect is Debian's libinih (r55) as built, whose options are
 * compile-time or library-wide globals we leave alone:
 * - comments are lines starting with ';' or '#'; inside a value only a ';'
 *   preceded by whitespace starts a comment ("a ;b" is "a", "a;b" and "a #b"
 *   stay whole);
 * - "key = value" or "key: value", spaces around both trimmed; the first '='
 *   or ':' splits, so keys never contain them;
 * - a line holds at most 199 characters (INI_MAX_LINE 200 minus the NUL);
 *   longer lines are reported, not split as inih would;
 * - a UTF-8 byte order mark on line 1 is skipped;
 * - inih's continuation lines (an indented line continues the previous
 *   value) are switched off here: the reader hands inih every line without
 *   its leading whitespace, so indented keys are ordinary keys;
 * - the handler gets no line number (INI_HANDLER_LINENO is 0), sections are
 *   cut to 49 characters and headers never reach the handler, so the reader
 *   below counts lines and reads section headers itself.
 * Section and key names are lower case and compared exactly; a global
 * section may appear more than once, its keys still only once.
 */

/* Where a value came from: a line of the file or an environment variable. */
struct origin {
  int line;        /* > 0: a file line */
  const char *env; /* else the variable's "NAME=value" entry, NULL for a default */
  size_t envlen;   /* length of NAME */
};

/* What the loader remembers of each backend beyond its config: for duplicates and messages. */
struct backend_state {
  int key_line[CFG_MAX_BACKEND_KEYS];
};

/*
 * A [pool:NAME] section as read: its keys' values, each checked at its line, are applied over
 * [upstream] once the file and the environment have set that, wherever [upstream] stood.
 */
struct pool_state {
  char name[WSB_SECTION_NAME_MAX];
  int line;
  int key_line[CFG_MAX_KEYS];
  char *value[CFG_MAX_KEYS]; /* NULL: not set, or rejected (and reported) */
};

/* Where each key of a route was given, for duplicates and for checks that name a line. */
struct route_state {
  int key_line[CFG_MAX_ROUTE_KEYS];
};

struct loader {
  struct wsb_config *cfg;
  struct wsb_config_errors *errs;
  const char *file;
  FILE *fp;
  char *buf;
  size_t cap;
  int line; /* the line being read; after the file, its last line */
  enum cfg_section sec;
  size_t backend;  /* index into cfg->backends while sec is CFG_SEC_BACKEND */
  size_t route;    /* index into cfg->routes while sec is CFG_SEC_ROUTE */
  char label[272]; /* "[listen]", "[backend:app1]": room for any header a line can hold */
  struct origin origin[CFG_SEC_BACKEND][CFG_MAX_KEYS];
  struct backend_state *bstate; /* parallel to cfg->backends */
  struct pool_state *pstate;    /* the [pool:NAME] sections, in file order */
  size_t npstate;
  size_t pool;                /* index into pstate while sec is CFG_SEC_POOL */
  struct route_state *rstate; /* parallel to cfg->routes */
  unsigned nunnamed;          /* WSBAL_BACKENDS items named env1, env2, ... so far */
};

/* Defaults, freeing, lookups. */

void wsb_config_defaults(struct wsb_config *cfg) {
  static const uint16_t failover_codes[] = {1001, 1006, 1011, 1012, 1013, 1014};
  memset(cfg, 0, sizeof(*cfg));
  cfg->wsbal.workers = 0;
  cfg->wsbal.log_level = WSB_LOG_INFO;
  cfg->wsbal.max_sessions = 100000;
  cfg->wsbal.shutdown_timeout_ms = 30000;
  cfg->wsbal.log_rate_limit = 10;

  snprintf(cfg->listen.address[0].host, sizeof(cfg->listen.address[0].host), "0.0.0.0");
  cfg->listen.address[0].port = 8080;
  cfg->listen.naddress = 1;
  cfg->listen.tls_min_version = 12;
  cfg->listen.tls_ticket_rotation_ms = 3600000;
  cfg->listen.handshake_timeout_ms = 10000;
  cfg->listen.max_header_bytes = 16 * 1024;
  cfg->listen.max_message_bytes = 16 * 1024 * 1024;
  cfg->listen.idle_timeout_ms = 0;
  cfg->listen.ping_interval_ms = 30000;
  cfg->listen.http = WSB_HTTP_OFF;
  cfg->listen.max_body_bytes = 100 * 1024 * 1024;
  cfg->listen.compression_level = 1;
  cfg->listen.compression_min_bytes = 256;

  cfg->upstream.algorithm = WSB_ALG_LEAST_CONN;
  cfg->upstream.hash_key = WSB_HASH_IP;
  cfg->upstream.connect_timeout_ms = 5000;
  cfg->upstream.failover = true;
  memcpy(cfg->upstream.failover_codes.codes, failover_codes, sizeof(failover_codes));
  cfg->upstream.failover_codes.n = sizeof(failover_codes) / sizeof(failover_codes[0]);
  cfg->upstream.max_failovers = 5;
  cfg->upstream.failover_buffer = 1024 * 1024;
  cfg->upstream.failover_buffer_total = 64 * 1024 * 1024;
  cfg->upstream.reconnect_header = wsb__cfg_strdup("X-Balancer-Reconnect");
  cfg->upstream.ping_interval_ms = 30000;
  cfg->upstream.health_check = WSB_HEALTH_TCP;
  cfg->upstream.health_path = wsb__cfg_strdup("/healthCheck");
  cfg->upstream.health_interval_ms = 5000;
  cfg->upstream.health_timeout_ms = 2000;
  cfg->upstream.health_rise = 2;
  cfg->upstream.health_fall = 3;
  cfg->upstream.breaker_threshold = 5;
  cfg->upstream.breaker_cooldown_ms = 10000;
  cfg->upstream.load_report_ttl_ms = 30000;
  cfg->upstream.tls_verify = true;
  cfg->upstream.slow_start_ms = 30000;
  cfg->upstream.resolve_interval_ms = 0;
  cfg->upstream.http_keepalive = 32;
  cfg->upstream.http_timeout_ms = 60000;

  cfg->admin.enabled = true;
  snprintf(cfg->admin.address.host, sizeof(cfg->admin.address.host), "127.0.0.1");
  cfg->admin.address.port = 8081;
  cfg->admin.request_timeout_ms = 10000;
  cfg->admin.idle_timeout_ms = 30000;
}

void wsb_config_free(struct wsb_config *cfg) {
  for (int i = 0; i < WSB_TLS_WHERE_COUNT; i++) {
    free(cfg->tls_where[i]);
    cfg->tls_where[i] = NULL;
  }
  char **strings[] = {
      &cfg->path,        &cfg->wsbal.user,  &cfg->wsbal.group, &cfg->wsbal.access_log,
      &cfg->listen.path, &cfg->admin.token,
  };
  for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
    free(*strings[i]);
  wsb__cfg_strlist_free(&cfg->listen.tls_cert);
  wsb__cfg_strlist_free(&cfg->listen.tls_key);
  wsb__cfg_strlist_free(&cfg->listen.allowed_origins);
  wsb_config_upstream_free(&cfg->upstream);
  for (size_t i = 0; i < cfg->npools; i++)
    wsb_config_upstream_free(&cfg->pools[i].upstream);
  free(cfg->pools);
  free(cfg->backends);
  for (size_t i = 0; i < cfg->nroutes; i++)
    wsb_config_route_free(&cfg->routes[i]);
  free(cfg->routes);
  /* Zeroed, a second free or a free after a failed load is harmless. */
  memset(cfg, 0, sizeof(*cfg));
}

/* The upstream settings' strings and lists: the ones a copy duplicates and a free releases. */
#define UPSTREAM_STRINGS(XX) \
  XX(hash_key_name)          \
  XX(reconnect_header)       \
  XX(health_path) XX(load_report_path) XX(tls_ca_file) XX(tls_client_cert) XX(tls_client_key)
#define UPSTREAM_LISTS(XX) XX(pass_headers) XX(block_headers)

void wsb_config_upstream_free(struct wsb_upstream_config *u) {
#define FREE_STRING(f) free(u->f);
#define FREE_LIST(f)   wsb__cfg_strlist_free(&u->f);
  UPSTREAM_STRINGS(FREE_STRING)
  UPSTREAM_LISTS(FREE_LIST)
#undef FREE_STRING
#undef FREE_LIST
  memset(u, 0, sizeof(*u));
}

static void copy_list(struct wsb_strlist *to, const struct wsb_strlist *from) {
  to->items = from->n > 0 ? wsb__cfg_must(calloc(from->n, sizeof(char *))) : NULL;
  for (size_t i = 0; i < from->n; i++)
    to->items[i] = wsb__cfg_strdup(from->items[i]);
  to->n = from->n;
}

void wsb_config_upstream_copy(struct wsb_upstream_config *to,
                              const struct wsb_upstream_config *from) {
  *to = *from;
#define COPY_STRING(f) to->f = from->f != NULL ? wsb__cfg_strdup(from->f) : NULL;
#define COPY_LIST(f)   copy_list(&to->f, &from->f);
  UPSTREAM_STRINGS(COPY_STRING)
  UPSTREAM_LISTS(COPY_LIST)
#undef COPY_STRING
#undef COPY_LIST
}

/* The index of pool name in cfg->pools, or -1. */
static int pool_index(const struct wsb_config *cfg, const char *name) {
  for (size_t i = 0; i < cfg->npools; i++)
    if (strcmp(cfg->pools[i].name, name) == 0)
      return (int)i;
  return -1;
}

const struct wsb_pool_config *wsb_config_pool(const struct wsb_config *cfg, const char *name) {
  int i = pool_index(cfg, name);
  return i >= 0 ? &cfg->pools[i] : NULL;
}

/* [upstream] keys that bound the whole process, not one pool's backends: a worker's replay
   windows together, and the one DNS discovery round. */
static bool global_only(const char *key) {
  return strcmp(key, "failover_buffer_total") == 0 || strcmp(key, "resolve_interval") == 0;
}

int wsb_config_pool_change(const struct wsb_config *cfg, const char *name, const char *const *keys,
                           const char *const *values, size_t n, struct wsb_upstream_config *out,
                           char *msg, size_t msglen) {
  const struct wsb_pool_config *p = wsb_config_pool(cfg, name);
  struct wsb_upstream_config u;
  char label[WSB_SECTION_NAME_MAX + 8];
  snprintf(label, sizeof(label), "[pool:%.63s]", name);
  wsb_config_upstream_copy(&u, p != NULL ? &p->upstream : &cfg->upstream);
  for (size_t i = 0; i < n; i++) {
    int idx = wsb__cfg_key_find(CFG_SEC_POOL, keys[i]);
    if (idx < 0)
      snprintf(msg, msglen, "unknown key \"%.64s\" in %s", keys[i], label);
    else if (global_only(keys[i]))
      snprintf(msg, msglen, "%s %s applies to every pool at once: set it in [upstream]", label,
               keys[i]);
    else if (strncmp(keys[i], "tls_", 4) == 0)
      snprintf(msg, msglen, "%s %s changes with a reload, which loads and checks its files", label,
               keys[i]);
    if (idx < 0 || global_only(keys[i]) || strncmp(keys[i], "tls_", 4) == 0 ||
        wsb__cfg_key_apply(CFG_SEC_POOL, idx, &u, label, values[i], msg, msglen) < 0) {
      wsb_config_upstream_free(&u);
      return WSB_EVALUE;
    }
  }
  *out = u;
  return 0;
}

int wsb_config_pool_swap(struct wsb_config *cfg, const char *name, struct wsb_upstream_config *u,
                         bool changed) {
  int i = pool_index(cfg, name);
  struct wsb_pool_config *p = i >= 0 ? &cfg->pools[i] : NULL;
  if (p != NULL) {
    struct wsb_upstream_config old = p->upstream;
    p->upstream = *u;
    *u = old;
    p->changed = changed;
    return 0;
  }
  if (cfg->npools >= WSB_MAX_POOLS)
    return -E2BIG;
  cfg->pools = wsb__cfg_must(realloc(cfg->pools, (cfg->npools + 1) * sizeof(*cfg->pools)));
  p = &cfg->pools[cfg->npools++];
  memset(p, 0, sizeof(*p));
  snprintf(p->name, sizeof(p->name), "%s", name);
  p->upstream = *u;
  p->changed = changed;
  memset(u, 0, sizeof(*u));
  return 1;
}

void wsb_config_pool_drop(struct wsb_config *cfg, const char *name) {
  int i = pool_index(cfg, name);
  if (i < 0)
    return;
  wsb_config_upstream_free(&cfg->pools[i].upstream);
  memmove(&cfg->pools[i], &cfg->pools[i + 1],
          (cfg->npools - (size_t)i - 1) * sizeof(cfg->pools[0]));
  cfg->npools--;
}

void wsb_config_route_free(struct wsb_route_config *r) {
  free(r->pool);
  free(r->header);
  wsb__cfg_strlist_free(&r->hosts);
  wsb__cfg_strlist_free(&r->paths);
  r->pool = r->header = NULL;
}

void wsb_config_route_copy(struct wsb_route_config *dst, const struct wsb_route_config *src) {
  *dst = *src;
  dst->pool = src->pool != NULL ? wsb__cfg_strdup(src->pool) : NULL;
  dst->header = src->header != NULL ? wsb__cfg_strdup(src->header) : NULL;
  copy_list(&dst->hosts, &src->hosts);
  copy_list(&dst->paths, &src->paths);
}

int wsb_config_route_set(struct wsb_route_config *r, const char *key, const char *value, char *msg,
                         size_t msglen) {
  int idx = wsb__cfg_key_find(CFG_SEC_ROUTE, key);
  if (value == NULL && idx >= 0 && (strcmp(key, "host") == 0 || strcmp(key, "path") == 0)) {
    wsb__cfg_strlist_free(key[0] == 'h' ? &r->hosts : &r->paths);
    return 0;
  }
  if (value == NULL && idx >= 0 && strcmp(key, "header") == 0) {
    free(r->header);
    r->header = NULL;
    return 0;
  }
  if (value == NULL && idx >= 0) {
    snprintf(msg, msglen, "route key \"%s\" cannot be unset", key);
    return WSB_EVALUE;
  }
  if (idx < 0) {
    snprintf(msg, msglen, "unknown key \"%s\" of a route", key);
    return -ENOENT;
  }
  char label[WSB_SECTION_NAME_MAX + 16];
  snprintf(label, sizeof(label), "[route:%s]", r->name);
  return wsb__cfg_key_apply(CFG_SEC_ROUTE, idx, r, label, value, msg, msglen) < 0 ? WSB_EVALUE : 0;
}

void wsb_config_errors_free(struct wsb_config_errors *errs) {
  for (size_t i = 0; i < errs->n; i++)
    free(errs->lines[i]);
  free(errs->lines);
  errs->lines = NULL;
  errs->n = 0;
}

bool wsb_close_codes_has(const struct wsb_close_codes *list, uint16_t code) {
  for (uint32_t i = 0; i < list->n; i++)
    if (list->codes[i] == code)
      return true;
  return false;
}

/* Error lines. */

static void __attribute__((format(printf, 3, 0)))
verror(struct loader *ld, const char *where, const char *fmt, va_list ap) {
  char msg[1024];
  vsnprintf(msg, sizeof(msg), fmt, ap);
  wsb__cfg_errors_add(ld->errs, "%s: %s", where, msg);
}

static void __attribute__((format(printf, 3, 4)))
error_at(struct loader *ld, int line, const char *fmt, ...) {
  char where[4096];
  va_list ap;
  snprintf(where, sizeof(where), "%s:%d", ld->file != NULL ? ld->file : "(no file)", line);
  va_start(ap, fmt);
  verror(ld, where, fmt, ap);
  va_end(ap);
}

static void __attribute__((format(printf, 4, 5)))
error_env(struct loader *ld, const char *var, size_t varlen, const char *fmt, ...) {
  char where[256];
  va_list ap;
  snprintf(where, sizeof(where), "env %.*s", (int)varlen, var);
  va_start(ap, fmt);
  verror(ld, where, fmt, ap);
  va_end(ap);
}

/* Reports at the line or the variable that set a value the whole-config checks reject. */
static void __attribute__((format(printf, 3, 4)))
error_origin(struct loader *ld, const struct origin *o, const char *fmt, ...) {
  char where[4096];
  va_list ap;
  if (o->env != NULL)
    snprintf(where, sizeof(where), "env %.*s", (int)o->envlen, o->env);
  else
    snprintf(where, sizeof(where), "%s:%d", ld->file != NULL ? ld->file : "(no file)", o->line);
  va_start(ap, fmt);
  verror(ld, where, fmt, ap);
  va_end(ap);
}

/* Backends. */

static struct wsb_backend_config *backend_find(struct wsb_config *cfg, const char *name) {
  for (size_t i = 0; i < cfg->nbackends; i++)
    if (strcmp(cfg->backends[i].name, name) == 0)
      return &cfg->backends[i];
  return NULL;
}

static struct wsb_backend_config *backend_add(struct loader *ld, const char *name, int line) {
  struct wsb_config *cfg = ld->cfg;
  size_t n = cfg->nbackends + 1;
  cfg->backends = wsb__cfg_must(realloc(cfg->backends, n * sizeof(*cfg->backends)));
  ld->bstate = wsb__cfg_must(realloc(ld->bstate, n * sizeof(*ld->bstate)));
  struct wsb_backend_config *b = &cfg->backends[n - 1];
  memset(b, 0, sizeof(*b));
  memset(&ld->bstate[n - 1], 0, sizeof(ld->bstate[n - 1]));
  snprintf(b->name, sizeof(b->name), "%s", name);
  b->weight = 1;
  b->max_sessions = 0;
  b->enabled = true;
  b->backup = false;
  snprintf(b->pool, sizeof(b->pool), "%s", WSB_DEFAULT_POOL);
  b->line = line;
  cfg->nbackends = n;
  return b;
}

/* Section headers. */

/* A [KIND:NAME] header's name: valid and not used by an earlier section of its kind (first is
   that section's line, 0 for none). Else reported, and the section's keys are skipped. */
static bool section_name_ok(struct loader *ld, const char *kind, const char *name, int first) {
  if (!wsb_config_backend_name_valid(name))
    error_at(ld, ld->line, "bad %s name \"%s\" (expected 1 to 63 letters, digits, '-', '_' or '.')",
             kind, name);
  else if (first > 0)
    error_at(ld, ld->line, "duplicate section [%s:%s] (first at line %d)", kind, name, first);
  else
    return true;
  ld->sec = CFG_SEC_SKIP;
  return false;
}

static void begin_backend(struct loader *ld, const char *name) {
  const struct wsb_backend_config *first = backend_find(ld->cfg, name);
  if (!section_name_ok(ld, "backend", name, first != NULL ? first->line : 0))
    return;
  backend_add(ld, name, ld->line);
  ld->sec = CFG_SEC_BACKEND;
  ld->backend = ld->cfg->nbackends - 1;
  snprintf(ld->label, sizeof(ld->label), "[backend:%s]", name);
}

static struct pool_state *pool_state_find(struct loader *ld, const char *name) {
  for (size_t i = 0; i < ld->npstate; i++)
    if (strcmp(ld->pstate[i].name, name) == 0)
      return &ld->pstate[i];
  return NULL;
}

static void begin_pool(struct loader *ld, const char *name) {
  const struct pool_state *first = pool_state_find(ld, name);
  if (!section_name_ok(ld, "pool", name, first != NULL ? first->line : 0))
    return;
  ld->pstate = wsb__cfg_must(realloc(ld->pstate, (ld->npstate + 1) * sizeof(*ld->pstate)));
  struct pool_state *p = &ld->pstate[ld->npstate];
  memset(p, 0, sizeof(*p));
  memcpy(p->name, name, strlen(name)); /* a valid name is shorter than p->name */
  p->line = ld->line;
  ld->pool = ld->npstate++;
  ld->sec = CFG_SEC_POOL;
  snprintf(ld->label, sizeof(ld->label), "[pool:%s]", name);
}

/* [route:NAME]: names as backends have them, each once, and not the fallback's. */
static void begin_route(struct loader *ld, const char *name) {
  struct wsb_config *cfg = ld->cfg;
  int first = 0;
  for (size_t i = 0; i < cfg->nroutes && first == 0; i++)
    if (strcmp(cfg->routes[i].name, name) == 0)
      first = cfg->routes[i].line;
  if (!section_name_ok(ld, "route", name, first))
    return;
  if (strcmp(name, "default") == 0) {
    error_at(ld, ld->line,
             "route name \"default\" is taken: it names the requests no route matches");
    ld->sec = CFG_SEC_SKIP;
    return;
  }
  size_t n = cfg->nroutes + 1;
  cfg->routes = wsb__cfg_must(realloc(cfg->routes, n * sizeof(*cfg->routes)));
  ld->rstate = wsb__cfg_must(realloc(ld->rstate, n * sizeof(*ld->rstate)));
  struct wsb_route_config *r = &cfg->routes[n - 1];
  memset(r, 0, sizeof(*r));
  memset(&ld->rstate[n - 1], 0, sizeof(ld->rstate[n - 1]));
  memcpy(r->name, name, strlen(name) + 1); /* valid names fit */
  r->websocket = WSB_ROUTE_WS_ANY;
  r->line = ld->line;
  cfg->nroutes = n;
  ld->route = n - 1;
  ld->sec = CFG_SEC_ROUTE;
  snprintf(ld->label, sizeof(ld->label), "[route:%s]", name);
}

/* s is a left-trimmed line starting with '['. Unknown sections are skipped whole, reported once. */
static void begin_section(struct loader *ld, const char *s) {
  const char *close = strchr(s, ']');
  ld->sec = CFG_SEC_SKIP;
  if (close == NULL) {
    error_at(ld, ld->line, "section header without ']'");
    return;
  }
  const char *after = close + 1;
  while (isspace((unsigned char)*after))
    after++;
  if (*after != '\0' && *after != ';' && *after != '#')
    error_at(ld, ld->line, "unexpected text after the section header: \"%s\"", after);
  const char *start = s + 1, *end = close;
  while (start < end && isspace((unsigned char)*start))
    start++;
  while (end > start && isspace((unsigned char)end[-1]))
    end--;
  char name[256]; /* a section header fits: lines are shorter than inih's 200 */
  snprintf(name, sizeof(name), "%.*s", (int)(end - start), start);
  if (strncmp(name, "backend:", 8) == 0) {
    begin_backend(ld, name + 8);
    return;
  }
  if (strncmp(name, "pool:", 5) == 0) {
    begin_pool(ld, name + 5);
    return;
  }
  if (strncmp(name, "route:", 6) == 0) {
    begin_route(ld, name + 6);
    return;
  }
  for (enum cfg_section sec = CFG_SEC_WSBAL; sec < CFG_SEC_BACKEND; sec++) {
    if (strcmp(name, wsb__cfg_section_name(sec)) == 0) {
      ld->sec = sec;
      snprintf(ld->label, sizeof(ld->label), "[%s]", name);
      return;
    }
  }
  error_at(ld, ld->line,
           "unknown section [%s] (expected [wsbal], [listen], [upstream], [admin], "
           "[backend:NAME], [pool:NAME] or [route:NAME])",
           name);
}

/* Reading the file. */

/* inih's rule: the first '=' or ':' before a ';' that follows whitespace. */
static bool has_separator(const char *s) {
  bool was_space = false;
  for (; *s; s++) {
    if (*s == '=' || *s == ':')
      return true;
    if (was_space && *s == ';')
      return false;
    was_space = isspace((unsigned char)*s);
  }
  return false;
}

/*
 * inih's line source (an fgets look-alike). It counts lines, reports what
 * inih would only count as "the first error line", and hands inih each line
 * without leading whitespace; a line it has reported goes to inih empty.
 */
static char *read_line(char *str, int num, void *stream) {
  struct loader *ld = stream;
  ssize_t len = getline(&ld->buf, &ld->cap, ld->fp);
  if (len < 0)
    return NULL;
  ld->line++;
  char *s = ld->buf;
  while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
    s[--len] = '\0';
  if (ld->line == 1 && strncmp(s, "\xef\xbb\xbf", 3) == 0) {
    s += 3;
    len -= 3;
  }
  str[0] = '\0';
  if (strlen(s) != (size_t)len) {
    error_at(ld, ld->line, "NUL byte in line");
    return str;
  }
  while (isspace((unsigned char)*s))
    s++;
  if (strlen(s) > (size_t)num - 1) {
    error_at(ld, ld->line, "line longer than %d characters", num - 1);
    if (*s == '[')
      ld->sec = CFG_SEC_SKIP;
    return str;
  }
  if (*s == '[')
    begin_section(ld, s);
  else if (*s != '\0' && *s != ';' && *s != '#' && !has_separator(s)) {
    error_at(ld, ld->line, "expected KEY = VALUE, a [section] or a comment");
    return str;
  }
  memcpy(str, s, strlen(s) + 1);
  return str;
}

/* Where a global section's keys are applied: [upstream]'s struct, or the whole. */
static void *section_base(struct wsb_config *cfg, enum cfg_section sec) {
  return sec == CFG_SEC_UPSTREAM ? (void *)&cfg->upstream : (void *)cfg;
}

static void set_key_from_file(struct loader *ld, const char *name, const char *value) {
  int idx = wsb__cfg_key_find(ld->sec, name);
  if (idx < 0) {
    error_at(ld, ld->line, "unknown key \"%s\" in %s", name, ld->label);
    return;
  }
  int *first;
  void *base;
  struct wsb_upstream_config scratch = {0};
  if (ld->sec == CFG_SEC_BACKEND) {
    first = &ld->bstate[ld->backend].key_line[idx];
    base = &ld->cfg->backends[ld->backend];
  } else if (ld->sec == CFG_SEC_POOL) {
    if (global_only(name)) {
      error_at(ld, ld->line, "%s %s applies to every pool at once: set it in [upstream]", ld->label,
               name);
      return;
    }
    first = &ld->pstate[ld->pool].key_line[idx];
    base = &scratch; /* checked here, applied over [upstream] at the end (pools_build) */
  } else if (ld->sec == CFG_SEC_ROUTE) {
    first = &ld->rstate[ld->route].key_line[idx];
    base = &ld->cfg->routes[ld->route];
  } else {
    first = &ld->origin[ld->sec][idx].line;
    base = section_base(ld->cfg, ld->sec);
  }
  if (*first > 0) {
    error_at(ld, ld->line, "%s %s given twice (first at line %d)", ld->label, name, *first);
    return;
  }
  *first = ld->line;
  char msg[512];
  if (wsb__cfg_key_apply(ld->sec, idx, base, ld->label, value, msg, sizeof(msg)) < 0)
    error_at(ld, ld->line, "%s", msg);
  else if (ld->sec == CFG_SEC_POOL)
    ld->pstate[ld->pool].value[idx] = wsb__cfg_strdup(value);
  wsb_config_upstream_free(&scratch);
}

static int on_key(void *user, const char *section, const char *name, const char *value) {
  struct loader *ld = user;
  (void)section; /* cut to 49 characters by inih; the reader tracks sections itself */
  if (ld->sec == CFG_SEC_SKIP)
    return 1;
  if (*name == '\0')
    error_at(ld, ld->line, "missing key name before '='");
  else if (ld->sec == CFG_SEC_NONE)
    error_at(ld, ld->line, "key \"%s\" outside any section", name);
  else
    set_key_from_file(ld, name, value);
  return 1;
}

static bool error_reported_at(const struct loader *ld, size_t first, int line) {
  char prefix[4096];
  int n = snprintf(prefix, sizeof(prefix), "%s:%d: ", ld->file, line);
  for (size_t i = first; i < ld->errs->n; i++)
    if (strncmp(ld->errs->lines[i], prefix, (size_t)n) == 0)
      return true;
  return false;
}

/* Returns -1 when the file could not be opened or read, 0 when it was read (with or without
 * errors). */
static int read_file(struct loader *ld) {
  ld->fp = fopen(ld->file, "r");
  if (ld->fp == NULL) {
    error_at(ld, 0, "cannot open: %s", strerror(errno));
    return -1;
  }
  size_t first = ld->errs->n;
  ld->sec = CFG_SEC_NONE;
  int rc = ini_parse_stream(read_line, ld, on_key, ld);
  bool unreadable = ferror(ld->fp);
  if (unreadable)
    error_at(ld, ld->line, "cannot read: %s", strerror(errno));
  /* The reader reports every syntax error inih knows of; this only guards against a gap. */
  else if (rc > 0 && !error_reported_at(ld, first, rc))
    error_at(ld, rc, "syntax error");
  fclose(ld->fp);
  ld->fp = NULL;
  free(ld->buf);
  ld->buf = NULL;
  return unreadable ? -1 : 0;
}

/* The environment. */

/*
 * "WSBAL_<SECTION>_<KEY>" for the four global sections. Other WSBAL_ names
 * (wsbalctl's WSBAL_ADMIN and WSBAL_TOKEN, the test scripts' own) are not
 * ours and are left alone; backends cannot be changed key by key.
 */
static void env_key(struct loader *ld, const char *entry, size_t namelen, const char *value) {
  if (strncmp(entry, "WSBAL_BACKEND_", 14) == 0) {
    error_env(ld, entry, namelen,
              "[backend:NAME] keys cannot be set from the environment (use WSBAL_BACKENDS)");
    return;
  }
  if (strncmp(entry, "WSBAL_POOL_", 11) == 0) {
    error_env(ld, entry, namelen,
              "[pool:NAME] keys cannot be set from the environment (WSBAL_UPSTREAM_* sets "
              "every pool's defaults)");
    return;
  }
  if (strncmp(entry, "WSBAL_ROUTE_", 12) == 0) {
    error_env(ld, entry, namelen, "[route:NAME] keys cannot be set from the environment");
    return;
  }
  for (enum cfg_section sec = CFG_SEC_WSBAL; sec < CFG_SEC_BACKEND; sec++) {
    char prefix[32], key[64], label[32];
    const char *sname = wsb__cfg_section_name(sec);
    size_t plen = (size_t)snprintf(prefix, sizeof(prefix), "WSBAL_%s_", sname);
    for (size_t i = 0; i < plen; i++)
      prefix[i] = (char)toupper((unsigned char)prefix[i]);
    if (namelen <= plen || strncmp(entry, prefix, plen) != 0)
      continue;
    size_t klen = namelen - plen;
    snprintf(key, sizeof(key), "%.*s", (int)klen, entry + plen);
    bool upper = klen < sizeof(key);
    for (char *k = key; *k; k++) {
      upper = upper && !islower((unsigned char)*k);
      *k = (char)tolower((unsigned char)*k);
    }
    snprintf(label, sizeof(label), "[%s]", sname);
    int idx = upper ? wsb__cfg_key_find(sec, key) : -1;
    if (idx < 0) {
      error_env(ld, entry, namelen, "unknown key \"%.*s\" in %s", (int)klen, entry + plen, label);
      return;
    }
    char msg[512];
    if (wsb__cfg_key_apply(sec, idx, section_base(ld->cfg, sec), label, value, msg, sizeof(msg)) <
        0) {
      error_env(ld, entry, namelen, "%s", msg);
      return;
    }
    ld->origin[sec][idx] = (struct origin){.env = entry, .envlen = namelen};
    return;
  }
}

static bool is_ws_url(const char *s) {
  return strncasecmp(s, "ws://", 5) == 0 || strncasecmp(s, "wss://", 6) == 0;
}

/* One "URL" or "NAME=URL" item of WSBAL_BACKENDS. */
static void env_backend(struct loader *ld, const char *entry, size_t namelen, const char *item) {
  char name[WSB_SECTION_NAME_MAX + 1];
  const char *url = item;
  if (is_ws_url(item)) {
    snprintf(name, sizeof(name), "env%u", ++ld->nunnamed);
  } else {
    const char *eq = strchr(item, '=');
    if (eq == NULL) {
      error_env(ld, entry, namelen, "bad item \"%s\" (expected URL or NAME=URL)", item);
      return;
    }
    size_t len = (size_t)(eq - item);
    while (len > 0 && isspace((unsigned char)item[len - 1]))
      len--;
    url = eq + 1;
    while (isspace((unsigned char)*url))
      url++;
    /* One byte more than a valid name can hold, so a long name fails the check below. */
    snprintf(name, sizeof(name), "%.*s", (int)len, item);
    if (!wsb_config_backend_name_valid(name)) {
      error_env(ld, entry, namelen,
                "bad backend name \"%.*s\" (expected 1 to 63 letters, digits, '-', '_' or '.')",
                (int)len, item);
      return;
    }
  }
  const struct wsb_backend_config *old = backend_find(ld->cfg, name);
  if (old != NULL) {
    if (old->line > 0)
      error_env(ld, entry, namelen, "backend name \"%s\" is already used by [backend:%s] at %s:%d",
                name, name, ld->file, old->line);
    else
      error_env(ld, entry, namelen, "backend name \"%s\" is used twice", name);
    return;
  }
  struct wsb_backend_config b = {0};
  char label[WSB_NAME_MAX + 16], msg[512];
  int url_key = wsb__cfg_key_find(CFG_SEC_BACKEND, "url");
  snprintf(label, sizeof(label), "[backend:%s]", name);
  if (wsb__cfg_key_apply(CFG_SEC_BACKEND, url_key, &b, label, url, msg, sizeof(msg)) < 0) {
    error_env(ld, entry, namelen, "%s", msg);
    return;
  }
  struct wsb_backend_config *nb = backend_add(ld, name, 0);
  nb->url = b.url;
  memcpy(nb->url_text, b.url_text, sizeof(nb->url_text));
  /* Not a line: it marks the url as given for check_backends. */
  ld->bstate[ld->cfg->nbackends - 1].key_line[url_key] = -1;
}

static void env_backends(struct loader *ld, const char *entry, size_t namelen, const char *value) {
  struct wsb_strlist items;
  wsb__cfg_strlist_split(value, &items);
  for (size_t i = 0; i < items.n; i++)
    env_backend(ld, entry, namelen, items.items[i]);
  wsb__cfg_strlist_free(&items);
}

static void apply_env(struct loader *ld, char *const *envp) {
  for (; envp != NULL && *envp != NULL; envp++) {
    const char *entry = *envp;
    const char *eq = strchr(entry, '=');
    if (eq == NULL || strncmp(entry, "WSBAL_", 6) != 0)
      continue;
    size_t namelen = (size_t)(eq - entry);
    if (namelen == 14 && strncmp(entry, "WSBAL_BACKENDS", 14) == 0)
      env_backends(ld, entry, namelen, eq + 1);
    else
      env_key(ld, entry, namelen, eq + 1);
  }
}

/* Checks of the whole, after the file and the environment. */

static void check_backends(struct loader *ld) {
  int url = wsb__cfg_key_find(CFG_SEC_BACKEND, "url");
  for (size_t i = 0; i < ld->cfg->nbackends; i++) {
    const struct wsb_backend_config *b = &ld->cfg->backends[i];
    /* A url given but rejected has been reported already. */
    if (ld->bstate[i].key_line[url] == 0)
      error_at(ld, b->line, "[backend:%s] has no url", b->name);
  }
  if (ld->cfg->nbackends > 0)
    return;
  if (ld->file != NULL)
    error_at(ld, ld->line, "no backend defined: add a [backend:NAME] section or WSBAL_BACKENDS");
  else
    error_env(ld, "WSBAL_BACKENDS", 14,
              "no backend defined: add a [backend:NAME] section or WSBAL_BACKENDS");
}

/* Pools a route may name: [pool:NAME] sections, the pools backends name, and default. */
bool wsb_config_pool_known(const struct wsb_config *cfg, const char *name) {
  return wsb_config_pool(cfg, name) != NULL;
}

/* Each route names a known pool, and all of them fit in the table workers match against. */
static void check_routes(struct loader *ld) {
  const struct wsb_config *cfg = ld->cfg;
  int pool = wsb__cfg_key_find(CFG_SEC_ROUTE, "pool");
  for (size_t i = 0; i < cfg->nroutes; i++) {
    const struct wsb_route_config *r = &cfg->routes[i];
    if (r->pool == NULL && ld->rstate[i].key_line[pool] == 0)
      error_at(ld, r->line, "[route:%s] has no pool", r->name);
    else if (r->pool != NULL && !wsb_config_pool_known(cfg, r->pool))
      error_at(ld, ld->rstate[i].key_line[pool], "[route:%s] pool \"%s\" is not defined", r->name,
               r->pool);
  }
  if (cfg->nroutes == 0)
    return;
  struct wsb_route_table *t = wsb__cfg_must(malloc(sizeof(*t)));
  char err[512];
  size_t bad;
  if (wsb_route_table_build(t, cfg->routes, cfg->nroutes, NULL, &bad, err, sizeof(err)) != 0)
    error_at(ld, bad < cfg->nroutes ? cfg->routes[bad].line : ld->line, "%s", err);
  free(t);
}

static const struct origin *origin_of(const struct loader *ld, enum cfg_section sec,
                                      const char *key) {
  return &ld->origin[sec][wsb__cfg_key_find(sec, key)];
}

/* A certificate and its key come together; lists of them pair up one to one. */
static void check_pair(struct loader *ld, enum cfg_section sec, const char *cert_key, size_t ncert,
                       const char *key_key, size_t nkey) {
  const char *s = wsb__cfg_section_name(sec);
  if (ncert > 0 && nkey == 0)
    error_origin(ld, origin_of(ld, sec, cert_key), "[%s] %s is set but %s is not", s, cert_key,
                 key_key);
  else if (nkey > 0 && ncert == 0)
    error_origin(ld, origin_of(ld, sec, key_key), "[%s] %s is set but %s is not", s, key_key,
                 cert_key);
  else if (ncert != nkey)
    error_origin(ld, origin_of(ld, sec, key_key),
                 "[%s] %s lists %zu file%s but %s lists %zu (they pair up in order)", s, key_key,
                 nkey, nkey == 1 ? "" : "s", cert_key, ncert);
}

static void format_hostport(const struct wsb_hostport *hp, char *out, size_t len) {
  if (strchr(hp->host, ':') != NULL)
    snprintf(out, len, "[%s]:%u", hp->host, hp->port);
  else
    snprintf(out, len, "%s:%u", hp->host, hp->port);
}

static bool is_wildcard(const char *host) {
  return strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0;
}

static void check_admin(struct loader *ld) {
  const struct wsb_config *cfg = ld->cfg;
  const struct origin *o = origin_of(ld, CFG_SEC_ADMIN, "address");
  /* With the default admin address, a collision is the listen address's doing. */
  if (o->line == 0 && o->env == NULL)
    o = origin_of(ld, CFG_SEC_LISTEN, "address");
  char addr[WSB_HOST_MAX + 16];
  if (!cfg->admin.enabled)
    return;
  format_hostport(&cfg->admin.address, addr, sizeof(addr));
  if (cfg->admin.token == NULL && !wsb_host_is_loopback(cfg->admin.address.host))
    error_origin(ld, o,
                 "[admin] address %s is not a loopback address: set [admin] token or use "
                 "127.0.0.1",
                 addr);
  for (size_t i = 0; i < cfg->listen.naddress; i++) {
    const struct wsb_hostport *l = &cfg->listen.address[i];
    if (l->port == cfg->admin.address.port &&
        (strcmp(l->host, cfg->admin.address.host) == 0 || is_wildcard(l->host) ||
         is_wildcard(cfg->admin.address.host))) {
      char laddr[WSB_HOST_MAX + 16];
      format_hostport(l, laddr, sizeof(laddr));
      error_origin(ld, o, "[admin] address %s collides with [listen] address %s", addr, laddr);
      return;
    }
  }
}

/* Remembers where the TLS file keys and the users were set, for the checks against the system
   (wsb_config_check_tls, wsb_config_check_users). */
static void note_tls_origins(struct loader *ld) {
  static const struct {
    enum cfg_section sec;
    const char *key;
  } keys[WSB_TLS_WHERE_COUNT] = {{CFG_SEC_LISTEN, "tls_cert"},
                                 {CFG_SEC_UPSTREAM, "tls_ca_file"},
                                 {CFG_SEC_UPSTREAM, "tls_client_cert"},
                                 {CFG_SEC_UPSTREAM, "tls_verify"},
                                 {CFG_SEC_WSBAL, "user"},
                                 {CFG_SEC_WSBAL, "group"},
                                 {CFG_SEC_LISTEN, "address"},
                                 {CFG_SEC_ADMIN, "address"}};
  for (int i = 0; i < WSB_TLS_WHERE_COUNT; i++) {
    const struct origin *o = origin_of(ld, keys[i].sec, keys[i].key);
    char where[4096];
    if (o->env != NULL)
      snprintf(where, sizeof(where), "env %.*s", (int)o->envlen, o->env);
    else if (o->line > 0)
      snprintf(where, sizeof(where), "%s:%d", ld->file != NULL ? ld->file : "(no file)", o->line);
    else
      snprintf(where, sizeof(where), "%s", ld->file != NULL ? ld->file : "(no file)");
    free(ld->cfg->tls_where[i]);
    ld->cfg->tls_where[i] = wsb__cfg_strdup(where);
  }
}

static const char *tls_where(const struct wsb_config *cfg, int k) {
  return cfg->tls_where[k] != NULL ? cfg->tls_where[k] : "(no file)";
}

const char *wsb_config_where(const struct wsb_config *cfg, int key) {
  return tls_where(cfg, key);
}

static bool same_string(const char *a, const char *b) {
  return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* The backends' TLS of each pool whose keys differ from [upstream]'s (checked on its own):
   reported at the pool's section, which set them. */
static void check_pool_tls(const struct wsb_config *cfg, struct wsb_config_errors *errs) {
  const struct wsb_upstream_config *up = &cfg->upstream;
  for (size_t i = 0; i < cfg->npools; i++) {
    const struct wsb_upstream_config *u = &cfg->pools[i].upstream;
    if (u->tls_verify == up->tls_verify && same_string(u->tls_ca_file, up->tls_ca_file) &&
        same_string(u->tls_client_cert, up->tls_client_cert) &&
        same_string(u->tls_client_key, up->tls_client_key))
      continue;
    if ((u->tls_client_cert != NULL) != (u->tls_client_key != NULL))
      continue; /* reported at load */
    char err[1024];
    SSL_CTX *ctx = wsb_tls_client_ctx(u->tls_verify, u->tls_ca_file, u->tls_client_cert,
                                      u->tls_client_key, err, sizeof(err));
    if (ctx == NULL)
      wsb__cfg_errors_add(errs, "%s:%d: [pool:%s] TLS to its backends: %s",
                          cfg->path != NULL ? cfg->path : "(no file)", cfg->pools[i].line,
                          cfg->pools[i].name, err);
    SSL_CTX_free(ctx);
  }
}

int wsb_config_check_tls(const struct wsb_config *cfg, struct wsb_config_errors *errs) {
  char err[1024];
  size_t before = errs->n;
  size_t n = cfg->listen.tls_cert.n;
  if (n > 0 && n == cfg->listen.tls_key.n) {
    SSL_CTX *ctx = wsb_tls_server_ctx(cfg->listen.tls_cert.items, cfg->listen.tls_key.items, n,
                                      cfg->listen.tls_min_version, err, sizeof(err));
    if (ctx == NULL)
      wsb__cfg_errors_add(errs, "%s: [listen] tls_cert: %s", tls_where(cfg, WSB_TLS_WHERE_CERT),
                          err);
    SSL_CTX_free(ctx);
  }
  bool wss = cfg->upstream.tls_ca_file != NULL || cfg->upstream.tls_client_cert != NULL;
  for (size_t i = 0; i < cfg->nbackends; i++)
    wss = wss || cfg->backends[i].url.tls;
  if (wss && (cfg->upstream.tls_client_cert != NULL) == (cfg->upstream.tls_client_key != NULL)) {
    SSL_CTX *ctx = wsb_tls_client_ctx(cfg->upstream.tls_verify, cfg->upstream.tls_ca_file,
                                      cfg->upstream.tls_client_cert, cfg->upstream.tls_client_key,
                                      err, sizeof(err));
    if (ctx == NULL) {
      int k = cfg->upstream.tls_ca_file != NULL && strstr(err, "CA file") != NULL ? WSB_TLS_WHERE_CA
              : cfg->upstream.tls_client_cert != NULL ? WSB_TLS_WHERE_CLIENT
                                                      : WSB_TLS_WHERE_VERIFY;
      static const char *const names[] = {"tls_cert", "tls_ca_file", "tls_client_cert",
                                          "tls_verify"};
      wsb__cfg_errors_add(errs, "%s: [upstream] %s: %s", tls_where(cfg, k), names[k], err);
    }
    SSL_CTX_free(ctx);
  }
  check_pool_tls(cfg, errs);
  return errs->n > before ? WSB_ECONFIG : 0;
}

int wsb_config_check_users(const struct wsb_config *cfg, struct wsb_config_errors *errs) {
  size_t before = errs->n;
  const char *user = cfg->wsbal.user, *group = cfg->wsbal.group;
  if (user != NULL && getpwnam(user) == NULL)
    wsb__cfg_errors_add(errs, "%s: [wsbal] user %s: no such user", tls_where(cfg, WSB_WHERE_USER),
                        user);
  char *end = NULL;
  if (group != NULL && getgrnam(group) == NULL) /* else a number will do, as at the start */
    strtoul(group, &end, 10);
  if (group != NULL && end != NULL && (end == group || *end != '\0'))
    wsb__cfg_errors_add(errs, "%s: [wsbal] group %s: no such group",
                        tls_where(cfg, WSB_WHERE_GROUP), group);
  return errs->n > before ? WSB_ECONFIG : 0;
}

/*
 * [wsbal] group without user would change only the group ids: the process would go on as
 * uid 0 with every capability while the file reads as if privileges were dropped. Refused,
 * rather than guessing a user (nginx's and HAProxy's rules differ here).
 */
static void check_privileges(struct loader *ld) {
  if (ld->cfg->wsbal.group != NULL && ld->cfg->wsbal.user == NULL)
    error_origin(ld, origin_of(ld, CFG_SEC_WSBAL, "group"),
                 "[wsbal] group is set but user is not: the processes would keep running as "
                 "root; set [wsbal] user too");
}

static struct wsb_pool_config *pool_add(struct loader *ld, const char *name, int line) {
  struct wsb_config *cfg = ld->cfg;
  cfg->pools = wsb__cfg_must(realloc(cfg->pools, (cfg->npools + 1) * sizeof(*cfg->pools)));
  struct wsb_pool_config *p = &cfg->pools[cfg->npools++];
  memset(p, 0, sizeof(*p));
  snprintf(p->name, sizeof(p->name), "%s", name);
  p->line = line;
  wsb_config_upstream_copy(&p->upstream, &cfg->upstream);
  return p;
}

/*
 * The pools: "default" first, then each [pool:NAME] in file order, then the names only backends
 * give, each [upstream] with its section's keys over it. Every key was checked at its line.
 */
static void pools_build(struct loader *ld) {
  struct wsb_config *cfg = ld->cfg;
  const struct pool_state *def = pool_state_find(ld, WSB_DEFAULT_POOL);
  pool_add(ld, WSB_DEFAULT_POOL, def != NULL ? def->line : 0);
  for (size_t i = 0; i < ld->npstate; i++)
    if (wsb_config_pool(cfg, ld->pstate[i].name) == NULL)
      pool_add(ld, ld->pstate[i].name, ld->pstate[i].line);
  for (size_t i = 0; i < cfg->nbackends; i++)
    if (wsb_config_pool(cfg, cfg->backends[i].pool) == NULL)
      pool_add(ld, cfg->backends[i].pool, cfg->backends[i].line);
  for (size_t i = 0; i < cfg->npools; i++) {
    struct wsb_pool_config *p = &cfg->pools[i];
    const struct pool_state *ps = pool_state_find(ld, p->name);
    if (i == WSB_MAX_POOLS)
      error_at(ld, p->line, "pool %s is one more than the %d pools wsbal holds", p->name,
               WSB_MAX_POOLS);
    for (int k = 0; ps != NULL && k < CFG_MAX_KEYS; k++) {
      char label[WSB_SECTION_NAME_MAX + 8], msg[512];
      snprintf(label, sizeof(label), "[pool:%s]", p->name);
      if (ps->value[k] != NULL && wsb__cfg_key_apply(CFG_SEC_POOL, k, &p->upstream, label,
                                                     ps->value[k], msg, sizeof(msg)) < 0)
        error_at(ld, ps->key_line[k], "%s", msg); /* checked at its line already */
    }
    /* A client certificate and its key come together, in a pool as in [upstream]. */
    int cert = wsb__cfg_key_find(CFG_SEC_POOL, "tls_client_cert");
    int key = wsb__cfg_key_find(CFG_SEC_POOL, "tls_client_key");
    if (ps != NULL && (ps->value[cert] != NULL || ps->value[key] != NULL) &&
        (p->upstream.tls_client_cert != NULL) != (p->upstream.tls_client_key != NULL))
      error_at(ld, ps->key_line[ps->value[cert] != NULL ? cert : key],
               "[pool:%s] tls_client_cert and tls_client_key come together: one is not set",
               p->name);
  }
}

static void pool_states_free(struct loader *ld) {
  for (size_t i = 0; i < ld->npstate; i++)
    for (int k = 0; k < CFG_MAX_KEYS; k++)
      free(ld->pstate[i].value[k]);
  free(ld->pstate);
}

static void check_all(struct loader *ld) {
  const struct wsb_config *cfg = ld->cfg;
  pools_build(ld);
  check_backends(ld);
  check_routes(ld);
  check_privileges(ld);
  check_pair(ld, CFG_SEC_LISTEN, "tls_cert", cfg->listen.tls_cert.n, "tls_key",
             cfg->listen.tls_key.n);
  check_pair(ld, CFG_SEC_UPSTREAM, "tls_client_cert", cfg->upstream.tls_client_cert != NULL,
             "tls_client_key", cfg->upstream.tls_client_key != NULL);
  note_tls_origins(ld);
  check_admin(ld);
}

int wsb_config_load(struct wsb_config *cfg, const char *path, char *const *envp,
                    struct wsb_config_errors *errs) {
  wsb_config_defaults(cfg);
  size_t before = errs->n;
  struct loader *ld = wsb__cfg_must(calloc(1, sizeof(*ld)));
  ld->cfg = cfg;
  ld->errs = errs;
  ld->file = path;
  int rc = 0;
  if (path != NULL) {
    cfg->path = wsb__cfg_strdup(path);
    rc = read_file(ld);
  }
  /* A file that cannot be read would only add "no backend" noise to the one line that matters. */
  if (rc == 0) {
    apply_env(ld, envp);
    check_all(ld);
  }
  free(ld->bstate);
  pool_states_free(ld);
  free(ld->rstate);
  free(ld);
  return errs->n > before ? WSB_ECONFIG : 0;
}
