/* The configuration model of SPEC.md: every section and key, its default and its validation. */
#ifndef WSB_CONFIG_H
#define WSB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cidr.h"
#include "log.h"
#include "proxy_protocol.h"
#include "values.h"

#define WSB_SECTION_NAME_MAX 64 /* [backend:NAME] names: 1 to 63 letters, digits, - _ . */
/* Backend names in the table, including "NAME#ADDR" forms: a section name, '#', an IPv6
   address with its scope. */
#define WSB_NAME_MAX           128
#define WSB_MAX_LISTEN         16 /* addresses in [listen] address */
#define WSB_MAX_FAILOVER_CODES 32
#define WSB_MAX_POOLS          32 /* pools, "default" included */
#define WSB_DEFAULT_POOL       "default"

enum wsb_algorithm { WSB_ALG_LEAST_CONN, WSB_ALG_ROUND_ROBIN, WSB_ALG_RANDOM, WSB_ALG_HASH };
enum wsb_hash_key { WSB_HASH_IP, WSB_HASH_PATH, WSB_HASH_HEADER, WSB_HASH_COOKIE, WSB_HASH_QUERY };
enum wsb_health_check { WSB_HEALTH_OFF, WSB_HEALTH_TCP, WSB_HEALTH_HTTP };
/* [listen] http: what a request that is not an upgrade gets. */
enum wsb_http_mode { WSB_HTTP_OFF, WSB_HTTP_PROXY };
/* [wsbal] worker_balance: which workers new connections go to (common/worker_pack.h). */
enum wsb_worker_balance { WSB_WORKER_SPREAD, WSB_WORKER_PACK };

/* [upstream] failover_codes: one type in the configuration and in the segment, one lookup. */
struct wsb_close_codes {
  uint16_t codes[WSB_MAX_FAILOVER_CODES];
  uint32_t n;
};

/* True when code is one of list's. */
bool wsb_close_codes_has(const struct wsb_close_codes *list, uint16_t code);

/* A comma-separated value split into trimmed, non-empty items. */
struct wsb_strlist {
  char **items;
  size_t n;
};

/* Keys checked against the system after loading (files, users), for tls_where. */
enum {
  WSB_TLS_WHERE_CERT,
  WSB_TLS_WHERE_CA,
  WSB_TLS_WHERE_CLIENT,
  WSB_TLS_WHERE_VERIFY,
  WSB_WHERE_USER,
  WSB_WHERE_GROUP,
  WSB_WHERE_LISTEN,
  WSB_WHERE_ADMIN,
  WSB_TLS_WHERE_COUNT
};

struct wsb_backend_config {
  char name[WSB_NAME_MAX];
  char url_text[WSB_HOST_MAX + WSB_PATH_MAX + 16];
  struct wsb_url url;
  unsigned weight;       /* 1..1000 */
  unsigned max_sessions; /* 0 = no limit */
  bool enabled;
  bool draining; /* disabled by a drain (admin API), until enabled; never from the file */
  bool backup;
  char pool[WSB_SECTION_NAME_MAX]; /* the pool it belongs to, "default" unless set */
  int line; /* line of its section header, 0 when it came from WSBAL_BACKENDS */
};

/* The [upstream] keys: the defaults of every pool, which [pool:NAME] overrides key by key. */
struct wsb_upstream_config {
  enum wsb_algorithm algorithm;
  enum wsb_hash_key hash_key;
  char *hash_key_name; /* NAME of header:/cookie:/query:, else NULL */
  uint64_t connect_timeout_ms;
  bool failover;
  struct wsb_close_codes failover_codes;
  unsigned max_failovers;
  uint64_t failover_buffer;
  uint64_t failover_buffer_total; /* all replay windows of one worker together */
  char *reconnect_header;
  struct wsb_strlist pass_headers;
  struct wsb_strlist block_headers;
  bool preserve_host;
  enum wsb_pp_mode send_proxy_protocol; /* off, v1 or v2 towards backends */
  uint64_t ping_interval_ms;
  enum wsb_health_check health_check;
  char *health_path;
  uint64_t health_interval_ms;
  uint64_t health_timeout_ms;
  unsigned health_rise;
  unsigned health_fall;
  unsigned breaker_threshold;
  uint64_t breaker_cooldown_ms;
  char *load_report_path; /* NULL = off */
  uint64_t load_report_ttl_ms;
  bool tls_verify;
  char *tls_ca_file; /* NULL = system store */
  char *tls_client_cert;
  char *tls_client_key;
  uint64_t slow_start_ms;
  uint64_t resolve_interval_ms;
  unsigned http_keepalive;  /* idle plain HTTP connections kept per backend per worker */
  uint64_t http_timeout_ms; /* to a plain HTTP answer's first byte, and between bytes */
};

/* A pool of backends: a [pool:NAME] section, or a name only backends give (it then has
   [upstream]'s settings). upstream is [upstream] with the section's keys applied over it. */
struct wsb_pool_config {
  char name[WSB_SECTION_NAME_MAX];
  struct wsb_upstream_config upstream;
  int line;     /* of its section header; else of the first backend naming it; 0 for none */
  bool changed; /* through the admin API since the file was read (a reload discards it) */
};

enum wsb_route_websocket { WSB_ROUTE_WS_ANY, WSB_ROUTE_WS_ONLY, WSB_ROUTE_WS_NEVER };

/* One [route:NAME] section as written; route.c checks its items again and compiles them. */
struct wsb_route_config {
  char name[WSB_SECTION_NAME_MAX];
  char *pool;               /* required */
  struct wsb_strlist hosts; /* "example.com", "*.example.com"; none = any host */
  struct wsb_strlist paths; /* "/chat"; none = any path */
  char *header;             /* "Name: value" or "Name"; NULL = none */
  int websocket;            /* enum wsb_route_websocket */
  bool strip_path;
  int line; /* of its section header */
  /* Through the admin API until the next reload (never from the file): 1 added, 2 changed. */
  uint8_t api;
};

struct wsb_config {
  char *path; /* the file it was loaded from */

  struct {
    unsigned workers; /* 0 = auto: one per online CPU */
    enum wsb_worker_balance worker_balance;
    char *user; /* NULL = keep */
    char *group;
    enum wsb_log_level log_level;
    enum wsb_log_format log_format;
    char *access_log;        /* NULL = off, "stderr", or a path */
    bool access_log_start;   /* a line when a session starts, too */
    uint32_t log_rate_limit; /* lines a second per worker per kind of event line; 0 = no limit */
    uint64_t max_sessions;
    uint64_t shutdown_timeout_ms;
  } wsbal;

  struct {
    struct wsb_hostport address[WSB_MAX_LISTEN];
    size_t naddress;
    struct wsb_strlist tls_cert; /* pairs up with tls_key */
    struct wsb_strlist tls_key;
    unsigned tls_min_version;        /* 12 or 13 */
    uint64_t tls_ticket_rotation_ms; /* session ticket keys are replaced this often */
    char *path;                      /* NULL = every path */
    uint64_t handshake_timeout_ms;
    uint64_t max_header_bytes;
    uint64_t max_message_bytes;
    uint64_t idle_timeout_ms;            /* 0 = never */
    uint64_t ping_interval_ms;           /* 0 = no keepalive pings */
    struct wsb_cidr_set trust_forwarded; /* peers whose forwarding headers count */
    enum wsb_pp_mode proxy_protocol;     /* a PROXY header starts every connection */
    struct wsb_strlist allowed_origins;  /* empty = any */
    enum wsb_http_mode http;             /* off: 426 for plain requests; proxy: proxied */
    uint64_t max_body_bytes;             /* larger plain HTTP request bodies get 413 */
    bool compression;                    /* permessage-deflate with clients that offer it */
    unsigned compression_level;          /* zlib level 1..9 */
    uint64_t compression_min_bytes;      /* smaller messages to the client go uncompressed */
    bool compression_context_takeover;   /* a zlib stream per session instead of per message */
  } listen;

  struct wsb_upstream_config upstream;

  struct {
    bool enabled; /* false for address = off */
    struct wsb_hostport address;
    char *token;                 /* NULL = no authentication */
    uint64_t request_timeout_ms; /* a request's arrival, and its answer's departure */
    uint64_t idle_timeout_ms;    /* a keep-alive connection between requests */
  } admin;

  struct wsb_backend_config *backends;
  size_t nbackends;

  /* Every pool, "default" first (always there, maybe without backends), then the others in the
     order their section or first backend came. */
  struct wsb_pool_config *pools;
  size_t npools;

  struct wsb_route_config *routes; /* in file order: the first that matches a request wins */
  size_t nroutes;

  /* Where the TLS keys were set ("FILE:LINE", "env NAME", or FILE for a default), so a file
     that fails to load is reported at its key. */
  char *tls_where[WSB_TLS_WHERE_COUNT];
};

/*
 * Loads the TLS files as workers will (listener certificates and keys, the
 * backends' CA file and client certificate) and appends a "FILE:LINE: ..."
 * line to errs for each that fails. Called after wsb_config_load, at start
 * (and by -t) and on a reload, which then keeps the running configuration.
 * Returns 0 or WSB_ECONFIG.
 */
struct wsb_config_errors;
int wsb_config_check_tls(const struct wsb_config *cfg, struct wsb_config_errors *errs);

/* "FILE:LINE" or "env NAME" where one of those keys was set (FILE when it was not). */
const char *wsb_config_where(const struct wsb_config *cfg, int key);

/*
 * Checks that [wsbal] user and group name a user and a group of this system
 * (a group may be a number), as the start will need them, and appends a
 * "FILE:LINE: ..." line to errs for each that does not. For wsbal -t, which
 * must find what a start would. Returns 0 or WSB_ECONFIG.
 */
int wsb_config_check_users(const struct wsb_config *cfg, struct wsb_config_errors *errs);

/* Every problem found while loading, each "FILE:LINE: message", in the order found. */
struct wsb_config_errors {
  char **lines;
  size_t n;
};

/* Fills cfg with SPEC.md's defaults and no backend. */
void wsb_config_defaults(struct wsb_config *cfg);

/*
 * Loads path over the defaults, then applies WSBAL_<SECTION>_<KEY> and
 * WSBAL_BACKENDS from envp (NULL-terminated "NAME=value" strings; may be
 * NULL), then checks the whole (no backend, duplicate names, admin without
 * token, unpaired TLS files, ...). Every problem is appended to errs; the
 * load goes on after each so all are reported at once. Returns 0, or
 * WSB_ECONFIG when errs is not empty. Overrides name their variable in place
 * of FILE:LINE ("env WSBAL_LISTEN_ADDRESS: ...").
 */
int wsb_config_load(struct wsb_config *cfg, const char *path, char *const *envp,
                    struct wsb_config_errors *errs);

/* Whether a route may name pool name: "default" always exists. */
bool wsb_config_pool_known(const struct wsb_config *cfg, const char *name);

/*
 * Sets key of route r from text, as a [route:NAME] line would (the admin API's changes); a NULL
 * value unsets host, path or header. Returns 0, or WSB_EVALUE (-ENOENT for an unknown key)
 * with a sentence in msg.
 */
int wsb_config_route_set(struct wsb_route_config *r, const char *key, const char *value, char *msg,
                         size_t msglen);

/* A deep copy of src into dst, and the release of what a route owns. */
void wsb_config_route_copy(struct wsb_route_config *dst, const struct wsb_route_config *src);
void wsb_config_route_free(struct wsb_route_config *r);

/* True for a backend name of 1 to 63 letters, digits, '-', '_' or '.'. */
bool wsb_config_backend_name_valid(const char *name);

/* The pool named name, or NULL. */
const struct wsb_pool_config *wsb_config_pool(const struct wsb_config *cfg, const char *name);

/*
 * The admin API's change to pool name: into out, the pool's settings (or [upstream]'s for a
 * pool cfg has not) with keys[i] set to values[i] (n of them), each checked as the file's would
 * be. Returns 0, or WSB_EVALUE with out untouched and a sentence in msg: an unknown key, a bad
 * value, a key that bounds every pool (failover_buffer_total, resolve_interval), or a TLS key
 * (its files are loaded and checked by a reload, not here).
 */
int wsb_config_pool_change(const struct wsb_config *cfg, const char *name, const char *const *keys,
                           const char *const *values, size_t n, struct wsb_upstream_config *out,
                           char *msg, size_t msglen);

/*
 * Swaps *u with pool name's settings, adding the pool when cfg has none, and sets its changed
 * mark: *u then holds what the pool had, to swap back (with the mark it had), and the result
 * says whether the pool was added (1) or not (0); -E2BIG past WSB_MAX_POOLS, u untouched.
 * wsb_config_pool_drop undoes an add.
 */
int wsb_config_pool_swap(struct wsb_config *cfg, const char *name, struct wsb_upstream_config *u,
                         bool changed);
void wsb_config_pool_drop(struct wsb_config *cfg, const char *name);

/* A deep copy of from into to, and the release of one. */
void wsb_config_upstream_copy(struct wsb_upstream_config *to,
                              const struct wsb_upstream_config *from);
void wsb_config_upstream_free(struct wsb_upstream_config *u);

void wsb_config_free(struct wsb_config *cfg);
void wsb_config_errors_free(struct wsb_config_errors *errs);

#endif
