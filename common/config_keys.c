/* Every configuration key of SPEC.md: its section, field, parser, bounds and error sentence. */
#include "config_keys.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "errors.h"
#include "route.h"
#include "uri_path.h"

/*
 * Bounds SPEC.md leaves open, chosen so a typo cannot ask for something
 * absurd: a worker per CPU of any real machine, a session cap a single host
 * can hold, request heads an HTTP server would accept, WebSocket payloads
 * whose 63-bit length is legal.
 */
#define MAX_WORKERS        1024
#define MAX_SESSIONS       10000000
#define MIN_HEADER_BYTES   1024
#define MAX_HEADER_BYTES   (1024 * 1024)
#define MAX_MESSAGE_BYTES  ((uint64_t)INT64_MAX)
#define MAX_FAILOVERS      1000
#define MAX_HEALTH_COUNT   100
#define MAX_BREAKER        1000
#define MAX_WEIGHT         1000
#define MAX_HTTP_KEEPALIVE 10000

enum kind {
  K_DURATION, /* uint64_t milliseconds */
  K_SIZE,     /* uint64_t bytes */
  K_BOOL,     /* bool */
  K_U32,      /* unsigned */
  K_U64,      /* uint64_t */
  K_STR,      /* char *, owned */
  K_LIST,     /* struct wsb_strlist, owned */
  K_WORD,     /* an enum: the index of the value in words */
  K_CUSTOM,   /* set() does the whole job */
};

struct cfg_key {
  const char *name;
  enum kind kind;
  size_t off;                   /* of the field in struct wsb_config or wsb_backend_config */
  uint64_t min, max;            /* for durations, sizes and numbers */
  bool optional;                /* K_STR, K_LIST: an empty value unsets the key */
  bool (*valid)(const char *s); /* K_STR, K_LIST (each item); NULL = anything */
  const char *const *words;     /* K_WORD: NULL-terminated, in the enum's order */
  int (*set)(void *base, const char *s); /* K_CUSTOM */
  const char *what;                      /* "bad <what> ..." */
  const char *expect;                    /* "(expected <expect>)" */
};

/* Validators of string values. */

static bool is_tchar(char c) {
  return isalnum((unsigned char)c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* An HTTP field name (RFC 9110 token), the only thing a header list may hold. */
static bool header_name_valid(const char *s) {
  if (*s == '\0')
    return false;
  for (; *s; s++)
    if (!is_tchar(*s))
      return false;
  return true;
}

/* Printable ASCII without spaces: tokens, user names, URL paths. */
static bool visible_valid(const char *s) {
  if (*s == '\0')
    return false;
  for (; *s; s++)
    if (*s < 0x21 || *s > 0x7e)
      return false;
  return true;
}

/* File names may hold spaces but no control characters. */
static bool file_name_valid(const char *s) {
  if (*s == '\0')
    return false;
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f)
      return false;
  return true;
}

/* A path wsbal sends in a request line: absolute, printable, no fragment. */
static bool request_path_valid(const char *s) {
  return s[0] == '/' && visible_valid(s) && strchr(s, '#') == NULL;
}

/* An Origin value as browsers send it: "scheme://host[:port]" without a path, or "null". */
static bool origin_valid(const char *s) {
  if (strcmp(s, "null") == 0)
    return true;
  if (!isalpha((unsigned char)*s))
    return false;
  while (isalnum((unsigned char)*s) || *s == '+' || *s == '-' || *s == '.')
    s++;
  if (strncmp(s, "://", 3) != 0 || s[3] == '\0')
    return false;
  for (s += 3; *s; s++)
    if (!(isalnum((unsigned char)*s) || strchr("-._:[]", *s) != NULL))
      return false;
  return true;
}

bool wsb_config_backend_name_valid(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n >= WSB_SECTION_NAME_MAX)
    return false;
  for (; *name; name++)
    if (!(isalnum((unsigned char)*name) || *name == '-' || *name == '_' || *name == '.'))
      return false;
  return true;
}

/* Setters of keys whose values are words or compound values. */

/* Looks s up in a NULL-terminated word list; returns its index or -1. */
static int word_index(const char *s, const char *const *words) {
  for (int i = 0; words[i] != NULL; i++)
    if (strcasecmp(s, words[i]) == 0)
      return i;
  return -1;
}

#define MAX_LOG_RATE 1000000

/* Lines a second: "10/s", "10", or off (0, no limit). */
static int set_log_rate_limit(void *base, const char *s) {
  struct wsb_config *cfg = base;
  char num[32];
  size_t n = strlen(s);
  if (n > 2 && strcasecmp(s + n - 2, "/s") == 0)
    n -= 2;
  if (n >= sizeof(num))
    return WSB_EVALUE;
  memcpy(num, s, n);
  num[n] = '\0';
  uint64_t v = 0;
  int rc = strcasecmp(num, "off") == 0 ? 0 : wsb_parse_uint(num, 0, MAX_LOG_RATE, &v);
  if (rc == 0)
    cfg->wsbal.log_rate_limit = (uint32_t)v;
  return rc;
}

static int set_workers(void *base, const char *s) {
  struct wsb_config *cfg = base;
  uint64_t v;
  if (strcasecmp(s, "auto") == 0) {
    cfg->wsbal.workers = 0;
    return 0;
  }
  int rc = wsb_parse_uint(s, 1, MAX_WORKERS, &v);
  if (rc == 0)
    cfg->wsbal.workers = (unsigned)v;
  return rc;
}

static int set_access_log(void *base, const char *s) {
  struct wsb_config *cfg = base;
  if (!file_name_valid(s))
    return WSB_EVALUE;
  free(cfg->wsbal.access_log);
  if (strcasecmp(s, "off") == 0)
    cfg->wsbal.access_log = NULL;
  else
    cfg->wsbal.access_log = wsb__cfg_strdup(strcasecmp(s, "stderr") == 0 ? "stderr" : s);
  return 0;
}

static int set_listen_address(void *base, const char *s) {
  struct wsb_config *cfg = base;
  struct wsb_strlist list;
  struct wsb_hostport addr[WSB_MAX_LISTEN];
  int rc = 0;
  wsb__cfg_strlist_split(s, &list);
  if (list.n == 0)
    rc = WSB_EVALUE;
  for (size_t i = 0; rc == 0 && i < list.n; i++)
    rc = i < WSB_MAX_LISTEN ? wsb_parse_hostport(list.items[i], &addr[i]) : WSB_ERANGE_VALUE;
  if (rc == 0) {
    memcpy(cfg->listen.address, addr, list.n * sizeof(addr[0]));
    cfg->listen.naddress = list.n;
  }
  wsb__cfg_strlist_free(&list);
  return rc;
}

static int set_tls_min_version(void *base, const char *s) {
  struct wsb_config *cfg = base;
  if (strcmp(s, "1.2") == 0)
    cfg->listen.tls_min_version = 12;
  else if (strcmp(s, "1.3") == 0)
    cfg->listen.tls_min_version = 13;
  else
    return WSB_EVALUE;
  return 0;
}

/*
 * The accepted path prefix. Trailing slashes go, as with backend URL paths,
 * and "/" means every path, the same as no value at all. Requests are matched
 * once their dot segments are gone, so a prefix with one would match nothing.
 */
static int set_listen_path(void *base, const char *s) {
  struct wsb_config *cfg = base;
  if (*s != '\0' && (!request_path_valid(s) || strchr(s, '?') != NULL ||
                     wsb_uri_path_check((struct wsb_slice){s, strlen(s)}) != 0))
    return WSB_EVALUE;
  size_t n = strlen(s);
  while (n > 0 && s[n - 1] == '/')
    n--;
  free(cfg->listen.path);
  cfg->listen.path = n == 0 ? NULL : wsb__cfg_must(strndup(s, n));
  return 0;
}

/* A cookie or query parameter name: visible characters that cannot end or split a pair. */
static bool param_name_valid(const char *s) {
  return visible_valid(s) && strpbrk(s, "=;&,#?\"") == NULL;
}

static int set_hash_key(void *base, const char *s) {
  static const struct {
    const char *prefix;
    enum wsb_hash_key key;
    bool (*valid)(const char *name);
  } named[] = {
      {"header:", WSB_HASH_HEADER, header_name_valid},
      {"cookie:", WSB_HASH_COOKIE, param_name_valid},
      {"query:", WSB_HASH_QUERY, param_name_valid},
  };
  struct wsb_upstream_config *u = base;
  if (strcasecmp(s, "ip") == 0 || strcasecmp(s, "path") == 0) {
    u->hash_key = tolower((unsigned char)s[0]) == 'i' ? WSB_HASH_IP : WSB_HASH_PATH;
    free(u->hash_key_name);
    u->hash_key_name = NULL;
    return 0;
  }
  for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
    size_t plen = strlen(named[i].prefix);
    if (strncasecmp(s, named[i].prefix, plen) == 0 && named[i].valid(s + plen)) {
      u->hash_key = named[i].key;
      free(u->hash_key_name);
      u->hash_key_name = wsb__cfg_strdup(s + plen);
      return 0;
    }
  }
  return WSB_EVALUE;
}

/* Codes 1000..4999: the registered range plus the private one; 1006 stands for a lost connection.
 */
static int set_failover_codes(void *base, const char *s) {
  struct wsb_upstream_config *u = base;
  struct wsb_strlist list;
  uint16_t codes[WSB_MAX_FAILOVER_CODES];
  int rc = 0;
  wsb__cfg_strlist_split(s, &list);
  for (size_t i = 0; rc == 0 && i < list.n; i++) {
    uint64_t v = 0;
    rc = i < WSB_MAX_FAILOVER_CODES ? wsb_parse_uint(list.items[i], 1000, 4999, &v)
                                    : WSB_ERANGE_VALUE;
    codes[i] = (uint16_t)v;
  }
  if (rc == 0) {
    memcpy(u->failover_codes.codes, codes, list.n * sizeof(codes[0]));
    u->failover_codes.n = (uint32_t)list.n;
  }
  wsb__cfg_strlist_free(&list);
  return rc;
}

static int set_admin_address(void *base, const char *s) {
  struct wsb_config *cfg = base;
  if (strcasecmp(s, "off") == 0) {
    cfg->admin.enabled = false;
    return 0;
  }
  int rc = wsb_parse_hostport(s, &cfg->admin.address);
  if (rc == 0)
    cfg->admin.enabled = true;
  return rc;
}

static int set_backend_url(void *base, const char *s) {
  struct wsb_backend_config *b = base;
  struct wsb_url url;
  if (strlen(s) >= sizeof(b->url_text))
    return WSB_EVALUE;
  int rc = wsb_parse_url(s, &url);
  if (rc < 0)
    return rc;
  b->url = url;
  snprintf(b->url_text, sizeof(b->url_text), "%s", s);
  return 0;
}

static int set_backend_pool(void *base, const char *s) {
  struct wsb_backend_config *b = base;
  if (!wsb_config_backend_name_valid(s))
    return WSB_EVALUE;
  snprintf(b->pool, sizeof(b->pool), "%s", s);
  return 0;
}

/* trust_forwarded: on, off, or the addresses and networks of the proxies trusted. */
static int set_trust_forwarded(void *base, const char *s) {
  struct wsb_config *cfg = base;
  return wsb_cidr_set_parse(s, &cfg->listen.trust_forwarded);
}

/* A route's host or path list: every item valid (route.c's rules), and at least one, since
   an empty list would read as "any" while the line says something was meant. */
static int set_route_list(struct wsb_strlist *field, const char *s, bool host) {
  struct wsb_strlist list;
  char item[WSB_ROUTE_ITEM_MAX];
  int rc = 0;
  wsb__cfg_strlist_split(s, &list);
  if (list.n == 0)
    rc = WSB_EVALUE;
  for (size_t i = 0; rc == 0 && i < list.n; i++) {
    if (host)
      rc = wsb_route_host_item(list.items[i], item, sizeof(item));
    else if (wsb_route_path_item(list.items[i], item, sizeof(item)) < 0)
      rc = WSB_EVALUE;
  }
  if (rc != 0) {
    wsb__cfg_strlist_free(&list);
    return rc;
  }
  wsb__cfg_strlist_free(field);
  *field = list;
  return 0;
}

static int set_route_host(void *base, const char *s) {
  return set_route_list(&((struct wsb_route_config *)base)->hosts, s, true);
}

static int set_route_path(void *base, const char *s) {
  return set_route_list(&((struct wsb_route_config *)base)->paths, s, false);
}

static int set_route_header(void *base, const char *s) {
  struct wsb_route_config *r = base;
  if (wsb_route_header_item(s) != 0)
    return WSB_EVALUE;
  free(r->header);
  r->header = wsb__cfg_strdup(s);
  return 0;
}

static bool pool_name_valid(const char *s) {
  return wsb_config_backend_name_valid(s);
}

/* The tables, one per section, keys in SPEC.md's order. */

/* The words of the K_WORD keys, each in its enum's order; the enums are stored as int. */
static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const log_formats[] = {"text", "json", NULL};
static const char *const algorithms[] = {"least_conn", "round_robin", "random", "hash", NULL};
static const char *const health_checks[] = {"off", "tcp", "http", NULL};
static const char *const pp_modes[] = {"off", "v1", "v2", "any", NULL};
static const char *const pp_send_modes[] = {"off", "v1", "v2", NULL};
static const char *const route_websocket[] = {"any", "only", "never", NULL};
static const char *const http_modes[] = {"off", "proxy", NULL};
static const char *const worker_balances[] = {"spread", "pack", NULL};
_Static_assert(sizeof(enum wsb_log_level) == sizeof(int) &&
                   sizeof(enum wsb_log_format) == sizeof(int) &&
                   sizeof(enum wsb_algorithm) == sizeof(int) &&
                   sizeof(enum wsb_health_check) == sizeof(int) &&
                   sizeof(enum wsb_pp_mode) == sizeof(int) &&
                   sizeof(enum wsb_http_mode) == sizeof(int) &&
                   sizeof(enum wsb_worker_balance) == sizeof(int),
               "K_WORD stores an int");

#define OFF(field) offsetof(struct wsb_config, field)
#define DURATION(key, field, lo) \
  { .name = key, .kind = K_DURATION, .off = OFF(field), .min = lo, .max = UINT64_MAX }
#define SIZE(key, field, lo, hi, exp) \
  { .name = key, .kind = K_SIZE, .off = OFF(field), .min = lo, .max = hi, .expect = exp }
#define BOOL(key, field) \
  { .name = key, .kind = K_BOOL, .off = OFF(field) }
#define U32(key, field, lo, hi) \
  { .name = key, .kind = K_U32, .off = OFF(field), .min = lo, .max = hi }
#define U64(key, field, lo, hi) \
  { .name = key, .kind = K_U64, .off = OFF(field), .min = lo, .max = hi }
#define STR(key, field, opt, check, wh, exp)                                                    \
  {                                                                                             \
    .name = key, .kind = K_STR, .off = OFF(field), .optional = opt, .valid = check, .what = wh, \
    .expect = exp                                                                               \
  }
#define LIST(key, field, check, wh, exp)                                                          \
  {                                                                                               \
    .name = key, .kind = K_LIST, .off = OFF(field), .optional = true, .valid = check, .what = wh, \
    .expect = exp                                                                                 \
  }
#define WORD(key, field, list, exp) \
  { .name = key, .kind = K_WORD, .off = OFF(field), .words = list, .what = "value", .expect = exp }
#define CUSTOM(key, fn, wh, exp) \
  { .name = key, .kind = K_CUSTOM, .set = fn, .what = wh, .expect = exp }

static const struct cfg_key wsbal_keys[] = {
    CUSTOM("workers", set_workers, "value", "auto or 1..1024"),
    WORD("worker_balance", wsbal.worker_balance, worker_balances, "spread or pack"),
    STR("user", wsbal.user, true, visible_valid, "user", "a user name"),
    STR("group", wsbal.group, true, visible_valid, "group", "a group name"),
    WORD("log_level", wsbal.log_level, log_levels, "error, warn, info or debug"),
    WORD("log_format", wsbal.log_format, log_formats, "text or json"),
    CUSTOM("access_log", set_access_log, "value", "off, stderr or a file path"),
    BOOL("access_log_start", wsbal.access_log_start),
    CUSTOM("log_rate_limit", set_log_rate_limit, "value",
           "lines a second per worker, e.g. 10/s, or off (0)"),
    U64("max_sessions", wsbal.max_sessions, 1, MAX_SESSIONS),
    DURATION("shutdown_timeout", wsbal.shutdown_timeout_ms, 0),
};

static const struct cfg_key listen_keys[] = {
    CUSTOM("address", set_listen_address, "address",
           "a comma list of up to 16 HOST:PORT, e.g. 0.0.0.0:8080, [::]:8080"),
    LIST("tls_cert", listen.tls_cert, file_name_valid, "file list", "a comma list of PEM files"),
    LIST("tls_key", listen.tls_key, file_name_valid, "file list", "a comma list of PEM files"),
    CUSTOM("tls_min_version", set_tls_min_version, "value", "1.2 or 1.3"),
    {.name = "tls_ticket_rotation",
     .kind = K_DURATION,
     .off = OFF(listen.tls_ticket_rotation_ms),
     .min = 1000,
     .max = UINT64_MAX,
     .expect = "1s or more, e.g. 1h"},
    CUSTOM("path", set_listen_path, "path",
           "an absolute path without query, dot segments or encoded separators, e.g. /ws"),
    DURATION("handshake_timeout", listen.handshake_timeout_ms, 1),
    SIZE("max_header_bytes", listen.max_header_bytes, MIN_HEADER_BYTES, MAX_HEADER_BYTES,
         "1k..1m, e.g. 16k"),
    SIZE("max_message_bytes", listen.max_message_bytes, 1, MAX_MESSAGE_BYTES,
         "at least 1, e.g. 64k, 16m"),
    DURATION("idle_timeout", listen.idle_timeout_ms, 0),
    DURATION("ping_interval", listen.ping_interval_ms, 0),
    CUSTOM("trust_forwarded", set_trust_forwarded, "value",
           "on, off, or a comma list of up to 64 addresses and networks, e.g. 10.0.0.0/8, ::1"),
    WORD("proxy_protocol", listen.proxy_protocol, pp_modes, "off, v1, v2 or any"),
    LIST("allowed_origins", listen.allowed_origins, origin_valid, "origin list",
         "a comma list of origins, e.g. https://example.com"),
    WORD("http", listen.http, http_modes, "off or proxy"),
    SIZE("max_body_bytes", listen.max_body_bytes, 0, MAX_MESSAGE_BYTES,
         "e.g. 1m, 100m; 0 = no limit"),
    BOOL("compression", listen.compression),
    U32("compression_level", listen.compression_level, 1, 9),
    SIZE("compression_min_bytes", listen.compression_min_bytes, 0, MAX_MESSAGE_BYTES,
         "e.g. 0, 256, 1k"),
    BOOL("compression_context_takeover", listen.compression_context_takeover),
};

#undef OFF
#define OFF(field) offsetof(struct wsb_upstream_config, field)

/* Offsets into struct wsb_upstream_config: [upstream]'s and each [pool:NAME]'s. */
static const struct cfg_key upstream_keys[] = {
    WORD("algorithm", algorithm, algorithms, "least_conn, round_robin, random or hash"),
    CUSTOM("hash_key", set_hash_key, "value", "ip, path, header:NAME, cookie:NAME or query:NAME"),
    DURATION("connect_timeout", connect_timeout_ms, 1),
    BOOL("failover", failover),
    CUSTOM("failover_codes", set_failover_codes, "code list",
           "a comma list of up to 32 close codes in 1000..4999"),
    U32("max_failovers", max_failovers, 0, MAX_FAILOVERS),
    SIZE("failover_buffer", failover_buffer, 0, MAX_MESSAGE_BYTES, "e.g. 64k, 1m"),
    SIZE("failover_buffer_total", failover_buffer_total, 0, MAX_MESSAGE_BYTES, "e.g. 64m, 1g"),
    STR("reconnect_header", reconnect_header, false, header_name_valid, "header name",
        "an HTTP header name"),
    LIST("pass_headers", pass_headers, header_name_valid, "header list",
         "a comma list of HTTP header names"),
    LIST("block_headers", block_headers, header_name_valid, "header list",
         "a comma list of HTTP header names"),
    BOOL("preserve_host", preserve_host),
    WORD("send_proxy_protocol", send_proxy_protocol, pp_send_modes, "off, v1 or v2"),
    DURATION("ping_interval", ping_interval_ms, 0),
    WORD("health_check", health_check, health_checks, "off, tcp or http"),
    STR("health_path", health_path, false, request_path_valid, "path",
        "an absolute path, e.g. /healthCheck"),
    DURATION("health_interval", health_interval_ms, 1),
    DURATION("health_timeout", health_timeout_ms, 1),
    U32("health_rise", health_rise, 1, MAX_HEALTH_COUNT),
    U32("health_fall", health_fall, 1, MAX_HEALTH_COUNT),
    U32("breaker_threshold", breaker_threshold, 1, MAX_BREAKER),
    DURATION("breaker_cooldown", breaker_cooldown_ms, 1),
    STR("load_report_path", load_report_path, true, request_path_valid, "path",
        "an absolute path, e.g. /metric"),
    DURATION("load_report_ttl", load_report_ttl_ms, 1),
    BOOL("tls_verify", tls_verify),
    STR("tls_ca_file", tls_ca_file, true, file_name_valid, "file", "a PEM file"),
    STR("tls_client_cert", tls_client_cert, true, file_name_valid, "file", "a PEM file"),
    STR("tls_client_key", tls_client_key, true, file_name_valid, "file", "a PEM file"),
    DURATION("slow_start", slow_start_ms, 0),
    DURATION("resolve_interval", resolve_interval_ms, 0),
    U32("http_keepalive", http_keepalive, 0, MAX_HTTP_KEEPALIVE),
    DURATION("http_timeout", http_timeout_ms, 1),
};

#undef OFF
#define OFF(field) offsetof(struct wsb_config, field)

static const struct cfg_key admin_keys[] = {
    CUSTOM("address", set_admin_address, "address", "off or HOST:PORT, e.g. 127.0.0.1:8081"),
    STR("token", admin.token, true, visible_valid, "token", "printable characters without spaces"),
    DURATION("request_timeout", admin.request_timeout_ms, 1),
    DURATION("idle_timeout", admin.idle_timeout_ms, 1),
};

#undef OFF
#define OFF(field) offsetof(struct wsb_backend_config, field)

static const struct cfg_key backend_keys[] = {
    CUSTOM("url", set_backend_url, "URL", "ws://HOST[:PORT][/PATH] or wss://..."),
    U32("weight", weight, 1, MAX_WEIGHT),
    U32("max_sessions", max_sessions, 0, MAX_SESSIONS),
    BOOL("enabled", enabled),
    BOOL("backup", backup),
    CUSTOM("pool", set_backend_pool, "pool name",
           "1 to 63 letters, digits, '-', '_' or '.', e.g. chat"),
};

#undef OFF
#define OFF(field) offsetof(struct wsb_route_config, field)

static const struct cfg_key route_keys[] = {
    CUSTOM(
        "host", set_route_host, "host list",
        "a comma list of host names or *.DOMAIN wildcards, e.g. chat.example.com, *.example.com"),
    CUSTOM(
        "path", set_route_path, "path list",
        "a comma list of absolute path prefixes without query or dot segments, e.g. /chat, /api"),
    CUSTOM("header", set_route_header, "header", "Name: value or Name, e.g. X-Tenant: blue"),
    STR("pool", pool, false, pool_name_valid, "pool name",
        "1 to 63 letters, digits, '-', '_' or '.'"),
    BOOL("strip_path", strip_path),
    WORD("websocket", websocket, route_websocket, "any, only or never"),
};

#define NKEYS(t) (sizeof(t) / sizeof((t)[0]))

_Static_assert(NKEYS(upstream_keys) <= CFG_MAX_KEYS, "CFG_MAX_KEYS too small");
_Static_assert(NKEYS(backend_keys) <= CFG_MAX_BACKEND_KEYS, "CFG_MAX_BACKEND_KEYS too small");
_Static_assert(NKEYS(route_keys) <= CFG_MAX_ROUTE_KEYS, "CFG_MAX_ROUTE_KEYS too small");

static const struct {
  const char *name;
  const struct cfg_key *keys;
  size_t n;
} sections[] = {
    [CFG_SEC_WSBAL] = {"wsbal", wsbal_keys, NKEYS(wsbal_keys)},
    [CFG_SEC_LISTEN] = {"listen", listen_keys, NKEYS(listen_keys)},
    [CFG_SEC_UPSTREAM] = {"upstream", upstream_keys, NKEYS(upstream_keys)},
    [CFG_SEC_ADMIN] = {"admin", admin_keys, NKEYS(admin_keys)},
    [CFG_SEC_BACKEND] = {"backend", backend_keys, NKEYS(backend_keys)},
    [CFG_SEC_POOL] = {"pool", upstream_keys, NKEYS(upstream_keys)},
    [CFG_SEC_ROUTE] = {"route", route_keys, NKEYS(route_keys)},
};

const char *wsb__cfg_section_name(enum cfg_section sec) {
  return sec < CFG_SEC_NONE ? sections[sec].name : "";
}

size_t wsb__cfg_key_count(enum cfg_section sec) {
  return sec < CFG_SEC_NONE ? sections[sec].n : 0;
}

const char *wsb__cfg_key_name(enum cfg_section sec, size_t i) {
  return i < wsb__cfg_key_count(sec) ? sections[sec].keys[i].name : NULL;
}

int wsb__cfg_key_find(enum cfg_section sec, const char *name) {
  if (sec >= CFG_SEC_NONE)
    return -1;
  for (size_t i = 0; i < sections[sec].n; i++)
    if (strcmp(sections[sec].keys[i].name, name) == 0)
      return (int)i;
  return -1;
}

/* Applying a value. */

static int apply_string(const struct cfg_key *k, char **field, const char *s) {
  if (*s == '\0' && k->optional) {
    free(*field);
    *field = NULL;
    return 0;
  }
  if (k->valid != NULL && !k->valid(s))
    return WSB_EVALUE;
  free(*field);
  *field = wsb__cfg_strdup(s);
  return 0;
}

static int apply_list(const struct cfg_key *k, struct wsb_strlist *field, const char *s) {
  struct wsb_strlist list;
  wsb__cfg_strlist_split(s, &list);
  for (size_t i = 0; i < list.n; i++) {
    if (k->valid != NULL && !k->valid(list.items[i])) {
      wsb__cfg_strlist_free(&list);
      return WSB_EVALUE;
    }
  }
  wsb__cfg_strlist_free(field);
  *field = list;
  return 0;
}

static int apply_number(const struct cfg_key *k, void *field, const char *s) {
  uint64_t v;
  int rc;
  switch (k->kind) {
  case K_DURATION:
    rc = wsb_parse_duration_ms(s, &v);
    break;
  case K_SIZE:
    rc = wsb_parse_size(s, &v);
    break;
  default:
    rc = wsb_parse_uint(s, 0, UINT64_MAX, &v);
    break;
  }
  if (rc == 0 && (v < k->min || v > k->max))
    rc = WSB_ERANGE_VALUE;
  if (rc < 0)
    return rc;
  if (k->kind == K_U32)
    *(unsigned *)field = (unsigned)v;
  else
    *(uint64_t *)field = v;
  return 0;
}

static int apply(const struct cfg_key *k, void *base, const char *s) {
  void *field = (char *)base + k->off;
  switch (k->kind) {
  case K_BOOL:
    return wsb_parse_bool(s, field);
  case K_STR:
    return apply_string(k, field, s);
  case K_LIST:
    return apply_list(k, field, s);
  case K_WORD: {
    int i = word_index(s, k->words);
    if (i < 0)
      return WSB_EVALUE;
    *(int *)field = i;
    return 0;
  }
  case K_CUSTOM:
    return k->set(base, s);
  default:
    return apply_number(k, field, s);
  }
}

/*
 * Copies value for a message: at most 80 bytes, control characters as '?',
 * so a stray newline from the environment cannot split an error line.
 */
static void quote(const char *value, char *out, size_t outlen) {
  size_t n = 0;
  for (; value[n] != '\0' && n < 80 && n + 4 < outlen; n++)
    out[n] = ((unsigned char)value[n] < 0x20 || value[n] == 0x7f) ? '?' : value[n];
  out[n] = '\0';
  if (value[n] != '\0' && n + 4 <= outlen)
    strcpy(out + n, "...");
}

/* "what" and "expected" for the kinds that do not spell their own. */
static void describe(const struct cfg_key *k, const char **what, char *expect, size_t len) {
  static const char *const whats[] = {[K_DURATION] = "duration",
                                      [K_SIZE] = "size",
                                      [K_BOOL] = "boolean",
                                      [K_U32] = "number",
                                      [K_U64] = "number"};
  *what = k->what != NULL ? k->what : whats[k->kind];
  if (k->expect != NULL)
    snprintf(expect, len, "%s", k->expect);
  else if (k->kind == K_DURATION)
    snprintf(expect, len, "%se.g. 500ms, 10s, 5m", k->min > 0 ? "more than 0, " : "");
  else if (k->kind == K_BOOL)
    snprintf(expect, len, "on, off, yes, no, true, false, 1 or 0");
  else
    snprintf(expect, len, "%llu..%llu", (unsigned long long)k->min, (unsigned long long)k->max);
}

int wsb__cfg_key_apply(enum cfg_section sec, int idx, void *base, const char *label,
                       const char *value, char *msg, size_t msglen) {
  const struct cfg_key *k = &sections[sec].keys[idx];
  int rc = apply(k, base, value);
  if (rc == 0)
    return 0;
  const char *what;
  char expect[128], q[96];
  describe(k, &what, expect, sizeof(expect));
  quote(value, q, sizeof(q));
  if (rc == WSB_ERANGE_VALUE)
    snprintf(msg, msglen, "%s \"%s\" for %s %s is out of range (expected %s)", what, q, label,
             k->name, expect);
  else
    snprintf(msg, msglen, "bad %s \"%s\" for %s %s (expected %s)", what, q, label, k->name, expect);
  return rc == WSB_ERANGE_VALUE ? rc : WSB_EVALUE;
}

/* Small helpers the loader shares. */

void *wsb__cfg_must(void *p) {
  if (p == NULL)
    wsb_fatal(3, "out of memory while loading the configuration");
  return p;
}

char *wsb__cfg_strdup(const char *s) {
  return wsb__cfg_must(strdup(s));
}

void wsb__cfg_strlist_split(const char *value, struct wsb_strlist *list) {
  list->items = NULL;
  list->n = 0;
  const char *p = value;
  for (;;) {
    size_t len = strcspn(p, ",");
    const char *start = p, *end = p + len;
    while (start < end && isspace((unsigned char)*start))
      start++;
    while (end > start && isspace((unsigned char)end[-1]))
      end--;
    if (end > start) {
      list->items = wsb__cfg_must(realloc(list->items, (list->n + 1) * sizeof(char *)));
      list->items[list->n++] = wsb__cfg_must(strndup(start, (size_t)(end - start)));
    }
    if (p[len] == '\0')
      break;
    p += len + 1;
  }
}

void wsb__cfg_strlist_free(struct wsb_strlist *list) {
  for (size_t i = 0; i < list->n; i++)
    free(list->items[i]);
  free(list->items);
  list->items = NULL;
  list->n = 0;
}

void wsb__cfg_errors_add(struct wsb_config_errors *errs, const char *fmt, ...) {
  va_list ap;
  char *line;
  va_start(ap, fmt);
  int rc = vasprintf(&line, fmt, ap);
  va_end(ap);
  if (rc < 0)
    wsb__cfg_must(NULL);
  errs->lines = wsb__cfg_must(realloc(errs->lines, (errs->n + 1) * sizeof(char *)));
  errs->lines[errs->n++] = line;
}
