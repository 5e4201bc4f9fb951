/* Unit tests of the configuration loader: defaults, every key, every error with its line, the
 * environment. */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "config_keys.h"
#include "errors.h"
#include "route.h"
#include "run_suite.h"

#define ETC_DIR WSB_TEST_DATA_DIR "/../../../etc"

/* A configuration loaded from a temporary INI file, with its errors. */
struct fixture {
  char path[64];
  struct wsb_config cfg;
  struct wsb_config_errors errs;
  int rc;
};

static void write_file(char *path, const char *text) {
  strcpy(path, "/tmp/wsbal-test-XXXXXX");
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  size_t len = strlen(text);
  ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
  close(fd);
}

/* Loads text with the given environment (NULL-terminated, may be NULL). */
static void load(struct fixture *f, const char *text, char *const *envp) {
  memset(f, 0, sizeof(*f));
  write_file(f->path, text);
  f->rc = wsb_config_load(&f->cfg, f->path, envp, &f->errs);
  /* Gone before any assertion can fail; messages still name the path. */
  unlink(f->path);
}

static void fixture_done(struct fixture *f) {
  wsb_config_free(&f->cfg);
  wsb_config_errors_free(&f->errs);
}

static void dump_errors(const struct fixture *f) {
  for (size_t i = 0; i < f->errs.n; i++)
    fprintf(stderr, "  error %zu: %s\n", i, f->errs.lines[i]);
}

static void expect_ok(const struct fixture *f) {
  if (f->errs.n != 0)
    dump_errors(f);
  ck_assert_uint_eq(f->errs.n, 0);
  ck_assert_int_eq(f->rc, 0);
}

/* Expands each '@' followed by a digit to "FILE:" (the fixture's random path): "@3: x" is "FILE:3:
 * x". */
static void expand(const char *path, const char *want, char *out, size_t len) {
  size_t n = 0;
  for (; *want && n + 1 < len; want++) {
    if (want[0] == '@' && want[1] >= '0' && want[1] <= '9')
      n += (size_t)snprintf(out + n, len - n, "%s:", path);
    else
      out[n++] = *want;
  }
  out[n < len ? n : len - 1] = '\0';
}

/* Checks the exact error lines, in order. */
static void expect_errors(const struct fixture *f, const char *const *want, size_t n) {
  if (f->errs.n != n)
    dump_errors(f);
  ck_assert_uint_eq(f->errs.n, n);
  ck_assert_int_eq(f->rc, WSB_ECONFIG);
  for (size_t i = 0; i < n; i++) {
    char line[2048];
    expand(f->path, want[i], line, sizeof(line));
    ck_assert_str_eq(f->errs.lines[i], line);
  }
}

#define EXPECT_ERRORS(f, ...)                                  \
  do {                                                         \
    static const char *const want_[] = {__VA_ARGS__};          \
    expect_errors(f, want_, sizeof(want_) / sizeof(want_[0])); \
  } while (0)

/* One file, one expected error list. */
#define CHECK_FILE(text, ...)        \
  do {                               \
    struct fixture f_;               \
    load(&f_, text, NULL);           \
    EXPECT_ERRORS(&f_, __VA_ARGS__); \
    fixture_done(&f_);               \
  } while (0)

#define BACKEND "[backend:b]\nurl = ws://127.0.0.1:9001\n"

/* Defaults: SPEC.md's table, field by field. */

static void assert_defaults(const struct wsb_config *c) {
  ck_assert_uint_eq(c->wsbal.workers, 0);
  ck_assert_int_eq(c->wsbal.worker_balance, WSB_WORKER_SPREAD);
  ck_assert_ptr_null(c->wsbal.user);
  ck_assert_ptr_null(c->wsbal.group);
  ck_assert_int_eq(c->wsbal.log_level, WSB_LOG_INFO);
  ck_assert_int_eq(c->wsbal.log_format, WSB_LOG_TEXT);
  ck_assert_ptr_null(c->wsbal.access_log);
  ck_assert(!c->wsbal.access_log_start);
  ck_assert_uint_eq(c->wsbal.log_rate_limit, 10);
  ck_assert_uint_eq(c->wsbal.max_sessions, 100000);
  ck_assert_uint_eq(c->wsbal.shutdown_timeout_ms, 30000);

  ck_assert_uint_eq(c->listen.naddress, 1);
  ck_assert_str_eq(c->listen.address[0].host, "0.0.0.0");
  ck_assert_uint_eq(c->listen.address[0].port, 8080);
  ck_assert_uint_eq(c->listen.tls_cert.n, 0);
  ck_assert_ptr_null(c->listen.tls_cert.items);
  ck_assert_uint_eq(c->listen.tls_key.n, 0);
  ck_assert_uint_eq(c->listen.tls_min_version, 12);
  ck_assert_ptr_null(c->listen.path);
  ck_assert_uint_eq(c->listen.handshake_timeout_ms, 10000);
  ck_assert_uint_eq(c->listen.max_header_bytes, 16384);
  ck_assert_uint_eq(c->listen.max_message_bytes, 16777216);
  ck_assert_uint_eq(c->listen.idle_timeout_ms, 0);
  ck_assert_uint_eq(c->listen.ping_interval_ms, 30000);
  ck_assert(!c->listen.trust_forwarded.all && c->listen.trust_forwarded.n == 0);
  ck_assert_int_eq(c->listen.proxy_protocol, WSB_PP_OFF);
  ck_assert_int_eq(c->upstream.send_proxy_protocol, WSB_PP_OFF);
  ck_assert_uint_eq(c->listen.allowed_origins.n, 0);

  ck_assert_int_eq(c->upstream.algorithm, WSB_ALG_LEAST_CONN);
  ck_assert_int_eq(c->upstream.hash_key, WSB_HASH_IP);
  ck_assert_ptr_null(c->upstream.hash_key_name);
  ck_assert_uint_eq(c->upstream.connect_timeout_ms, 5000);
  ck_assert(c->upstream.failover);
  ck_assert_uint_eq(c->upstream.failover_codes.n, 6);
  static const uint16_t codes[] = {1001, 1006, 1011, 1012, 1013, 1014};
  for (size_t i = 0; i < 6; i++)
    ck_assert_uint_eq(c->upstream.failover_codes.codes[i], codes[i]);
  ck_assert_uint_eq(c->upstream.max_failovers, 5);
  ck_assert_uint_eq(c->upstream.failover_buffer, 1048576);
  ck_assert_uint_eq(c->upstream.failover_buffer_total, 64u << 20);
  ck_assert_str_eq(c->upstream.reconnect_header, "X-Balancer-Reconnect");
  ck_assert_uint_eq(c->upstream.pass_headers.n, 0);
  ck_assert_uint_eq(c->upstream.block_headers.n, 0);
  ck_assert(!c->upstream.preserve_host);
  ck_assert_uint_eq(c->upstream.ping_interval_ms, 30000);
  ck_assert_int_eq(c->upstream.health_check, WSB_HEALTH_TCP);
  ck_assert_str_eq(c->upstream.health_path, "/healthCheck");
  ck_assert_uint_eq(c->upstream.health_interval_ms, 5000);
  ck_assert_uint_eq(c->upstream.health_timeout_ms, 2000);
  ck_assert_uint_eq(c->upstream.health_rise, 2);
  ck_assert_uint_eq(c->upstream.health_fall, 3);
  ck_assert_uint_eq(c->upstream.breaker_threshold, 5);
  ck_assert_uint_eq(c->upstream.breaker_cooldown_ms, 10000);
  ck_assert_ptr_null(c->upstream.load_report_path);
  ck_assert_uint_eq(c->upstream.load_report_ttl_ms, 30000);
  ck_assert(c->upstream.tls_verify);
  ck_assert_ptr_null(c->upstream.tls_ca_file);
  ck_assert_ptr_null(c->upstream.tls_client_cert);
  ck_assert_ptr_null(c->upstream.tls_client_key);
  ck_assert_uint_eq(c->upstream.slow_start_ms, 30000);
  ck_assert_int_eq(c->listen.http, WSB_HTTP_OFF);
  ck_assert_uint_eq(c->listen.max_body_bytes, 100 * 1024 * 1024);
  ck_assert(!c->listen.compression && !c->listen.compression_context_takeover);
  ck_assert_uint_eq(c->listen.compression_level, 1);
  ck_assert_uint_eq(c->listen.compression_min_bytes, 256);
  ck_assert_uint_eq(c->upstream.http_keepalive, 32);
  ck_assert_uint_eq(c->upstream.http_timeout_ms, 60000);
  ck_assert_uint_eq(c->upstream.resolve_interval_ms, 0);

  ck_assert(c->admin.enabled);
  ck_assert_str_eq(c->admin.address.host, "127.0.0.1");
  ck_assert_uint_eq(c->admin.address.port, 8081);
  ck_assert_ptr_null(c->admin.token);
  ck_assert_uint_eq(c->admin.request_timeout_ms, 10000);
  ck_assert_uint_eq(c->admin.idle_timeout_ms, 30000);
}

START_TEST(defaults_match_spec) {
  struct wsb_config c;
  memset(&c, 0x5a, sizeof(c));
  wsb_config_defaults(&c);
  assert_defaults(&c);
  ck_assert_ptr_null(c.path);
  ck_assert_uint_eq(c.nbackends, 0);
  ck_assert_ptr_null(c.backends);
  ck_assert(wsb_close_codes_has(&c.upstream.failover_codes, 1006));
  ck_assert(wsb_close_codes_has(&c.upstream.failover_codes, 1014));
  ck_assert(!wsb_close_codes_has(&c.upstream.failover_codes, 1000));
  ck_assert(!wsb_close_codes_has(&c.upstream.failover_codes, 1002));
  wsb_config_free(&c);
  wsb_config_free(&c); /* harmless twice */
}
END_TEST

/* A file with one backend and nothing else leaves every other default alone. */
START_TEST(minimal_file_keeps_defaults) {
  struct fixture f;
  load(&f, BACKEND, NULL);
  expect_ok(&f);
  assert_defaults(&f.cfg);
  ck_assert_str_eq(f.cfg.path, f.path);
  ck_assert_uint_eq(f.cfg.nbackends, 1);
  const struct wsb_backend_config *b = &f.cfg.backends[0];
  ck_assert_str_eq(b->name, "b");
  ck_assert_str_eq(b->url_text, "ws://127.0.0.1:9001");
  ck_assert(!b->url.tls);
  ck_assert_str_eq(b->url.host, "127.0.0.1");
  ck_assert_uint_eq(b->url.port, 9001);
  ck_assert_str_eq(b->url.path, "");
  ck_assert_uint_eq(b->weight, 1);
  ck_assert_uint_eq(b->max_sessions, 0);
  ck_assert(b->enabled);
  ck_assert(!b->backup);
  ck_assert_int_eq(b->line, 1);
  fixture_done(&f);
}
END_TEST

/* Loads path without an environment; it must load without an error. */
static void load_ok(struct wsb_config *c, const char *path) {
  struct wsb_config_errors errs = {0};
  int rc = wsb_config_load(c, path, NULL, &errs);
  for (size_t i = 0; i < errs.n; i++)
    fprintf(stderr, "  %s\n", errs.lines[i]);
  ck_assert_int_eq(rc, 0);
  ck_assert_uint_eq(errs.n, 0);
  wsb_config_errors_free(&errs);
}

/* Every key set to something else reads back (test/unit/data/full.ini). */
START_TEST(full_file_reads_every_key) {
  struct wsb_config c;
  load_ok(&c, WSB_TEST_DATA_DIR "/full.ini");

  ck_assert_uint_eq(c.wsbal.workers, 7);
  ck_assert_int_eq(c.wsbal.worker_balance, WSB_WORKER_PACK);
  ck_assert_str_eq(c.wsbal.user, "wsbal");
  ck_assert_str_eq(c.wsbal.group, "nogroup");
  ck_assert_int_eq(c.wsbal.log_level, WSB_LOG_DEBUG);
  ck_assert_int_eq(c.wsbal.log_format, WSB_LOG_JSON);
  ck_assert_str_eq(c.wsbal.access_log, "/var/log/wsbal/access.log");
  ck_assert(c.wsbal.access_log_start);
  ck_assert_uint_eq(c.wsbal.log_rate_limit, 25);
  ck_assert_uint_eq(c.wsbal.max_sessions, 2500);
  ck_assert_uint_eq(c.wsbal.shutdown_timeout_ms, 45000);

  ck_assert_uint_eq(c.listen.naddress, 2);
  ck_assert_str_eq(c.listen.address[0].host, "127.0.0.1");
  ck_assert_uint_eq(c.listen.address[0].port, 9443);
  ck_assert_str_eq(c.listen.address[1].host, "::1");
  ck_assert_uint_eq(c.listen.address[1].port, 9444);
  ck_assert_uint_eq(c.listen.tls_cert.n, 2);
  ck_assert_str_eq(c.listen.tls_cert.items[0], "/etc/wsbal/a.pem");
  ck_assert_str_eq(c.listen.tls_cert.items[1], "/etc/wsbal/b.pem");
  ck_assert_uint_eq(c.listen.tls_key.n, 2);
  ck_assert_str_eq(c.listen.tls_key.items[0], "/etc/wsbal/a.key");
  ck_assert_str_eq(c.listen.tls_key.items[1], "/etc/wsbal/b.key");
  ck_assert_uint_eq(c.listen.tls_min_version, 13);
  ck_assert_uint_eq(c.listen.tls_ticket_rotation_ms, 7200000);
  ck_assert_str_eq(c.listen.path, "/ws");
  ck_assert_uint_eq(c.listen.handshake_timeout_ms, 2500);
  ck_assert_uint_eq(c.listen.max_header_bytes, 32768);
  ck_assert_uint_eq(c.listen.max_message_bytes, 2097152);
  ck_assert_uint_eq(c.listen.idle_timeout_ms, 3600000);
  ck_assert_uint_eq(c.listen.ping_interval_ms, 15000);
  ck_assert(!c.listen.trust_forwarded.all);
  ck_assert_uint_eq(c.listen.trust_forwarded.n, 4);
  ck_assert_uint_eq(c.listen.trust_forwarded.nets[0].bits, 8);
  ck_assert_uint_eq(c.listen.trust_forwarded.nets[3].bits, 8);
  ck_assert_int_eq(c.listen.proxy_protocol, WSB_PP_ANY);
  ck_assert_int_eq(c.upstream.send_proxy_protocol, WSB_PP_V2);
  ck_assert_uint_eq(c.listen.allowed_origins.n, 2);
  ck_assert_str_eq(c.listen.allowed_origins.items[0], "https://example.com");
  ck_assert_str_eq(c.listen.allowed_origins.items[1], "http://localhost:3000");
  ck_assert_int_eq(c.listen.http, WSB_HTTP_PROXY);
  ck_assert_uint_eq(c.listen.max_body_bytes, 5 * 1024 * 1024);
  ck_assert(c.listen.compression && c.listen.compression_context_takeover);
  ck_assert_uint_eq(c.listen.compression_level, 6);
  ck_assert_uint_eq(c.listen.compression_min_bytes, 1024);

  ck_assert_int_eq(c.upstream.algorithm, WSB_ALG_HASH);
  ck_assert_int_eq(c.upstream.hash_key, WSB_HASH_HEADER);
  ck_assert_str_eq(c.upstream.hash_key_name, "X-User-Id");
  ck_assert_uint_eq(c.upstream.connect_timeout_ms, 3000);
  ck_assert(!c.upstream.failover);
  ck_assert_uint_eq(c.upstream.failover_codes.n, 3);
  ck_assert_uint_eq(c.upstream.failover_codes.codes[0], 1001);
  ck_assert_uint_eq(c.upstream.failover_codes.codes[1], 1011);
  ck_assert_uint_eq(c.upstream.failover_codes.codes[2], 4000);
  ck_assert(wsb_close_codes_has(&c.upstream.failover_codes, 4000));
  ck_assert(!wsb_close_codes_has(&c.upstream.failover_codes, 1006));
  ck_assert_uint_eq(c.upstream.max_failovers, 9);
  ck_assert_uint_eq(c.upstream.failover_buffer, 262144);
  ck_assert_uint_eq(c.upstream.failover_buffer_total, 32u << 20);
  ck_assert_str_eq(c.upstream.reconnect_header, "X-Reconnect-Session");
  ck_assert_uint_eq(c.upstream.pass_headers.n, 2);
  ck_assert_str_eq(c.upstream.pass_headers.items[0], "Set-Cookie");
  ck_assert_str_eq(c.upstream.pass_headers.items[1], "X-Trace");
  ck_assert_uint_eq(c.upstream.block_headers.n, 2);
  ck_assert_str_eq(c.upstream.block_headers.items[0], "Cookie");
  ck_assert_str_eq(c.upstream.block_headers.items[1], "Authorization");
  ck_assert(c.upstream.preserve_host);
  ck_assert_uint_eq(c.upstream.ping_interval_ms, 20000);
  ck_assert_int_eq(c.upstream.health_check, WSB_HEALTH_HTTP);
  ck_assert_str_eq(c.upstream.health_path, "/status?deep=1");
  ck_assert_uint_eq(c.upstream.health_interval_ms, 7000);
  ck_assert_uint_eq(c.upstream.health_timeout_ms, 1500);
  ck_assert_uint_eq(c.upstream.health_rise, 4);
  ck_assert_uint_eq(c.upstream.health_fall, 6);
  ck_assert_uint_eq(c.upstream.breaker_threshold, 8);
  ck_assert_uint_eq(c.upstream.breaker_cooldown_ms, 60000);
  ck_assert_str_eq(c.upstream.load_report_path, "/metric");
  ck_assert_uint_eq(c.upstream.load_report_ttl_ms, 45000);
  ck_assert(!c.upstream.tls_verify);
  ck_assert_str_eq(c.upstream.tls_ca_file, "/etc/ssl/private-ca.pem");
  ck_assert_str_eq(c.upstream.tls_client_cert, "/etc/wsbal/client.pem");
  ck_assert_str_eq(c.upstream.tls_client_key, "/etc/wsbal/client.key");
  ck_assert_uint_eq(c.upstream.slow_start_ms, 0);
  ck_assert_uint_eq(c.upstream.resolve_interval_ms, 120000);
  ck_assert_uint_eq(c.upstream.http_keepalive, 4);
  ck_assert_uint_eq(c.upstream.http_timeout_ms, 90000);

  ck_assert(c.admin.enabled);
  ck_assert_str_eq(c.admin.address.host, "::");
  ck_assert_uint_eq(c.admin.address.port, 9090);
  ck_assert_str_eq(c.admin.token, "s3cret-Token");
  ck_assert_uint_eq(c.admin.request_timeout_ms, 2000);
  ck_assert_uint_eq(c.admin.idle_timeout_ms, 300);

  ck_assert_uint_eq(c.nbackends, 2);
  const struct wsb_backend_config *b = &c.backends[0];
  ck_assert_str_eq(b->name, "app-1");
  ck_assert_str_eq(b->url_text, "wss://backend1.example.com:8443/socket/");
  ck_assert(b->url.tls);
  ck_assert_str_eq(b->url.host, "backend1.example.com");
  ck_assert_uint_eq(b->url.port, 8443);
  ck_assert_str_eq(b->url.path, "/socket");
  ck_assert_uint_eq(b->weight, 1000);
  ck_assert_uint_eq(b->max_sessions, 300);
  ck_assert(!b->enabled);
  ck_assert(b->backup);
  ck_assert_str_eq(b->pool, "chat");
  ck_assert_int_eq(b->line, 77);
  b = &c.backends[1];
  ck_assert_str_eq(b->name, "app_2.b");
  ck_assert_str_eq(b->url.host, "::1");
  ck_assert_uint_eq(b->url.port, 9002);
  ck_assert_uint_eq(b->weight, 1);
  ck_assert(b->enabled);
  ck_assert(!b->backup);
  ck_assert_str_eq(b->pool, "default");
  ck_assert_int_eq(b->line, 85);
  ck_assert_uint_eq(c.npools, 2);
  ck_assert_str_eq(c.pools[1].name, "chat");
  ck_assert_int_eq(c.pools[1].upstream.algorithm, WSB_ALG_ROUND_ROBIN);
  ck_assert_str_eq(c.pools[1].upstream.hash_key_name, "X-Chat");
  ck_assert_uint_eq(c.pools[1].upstream.failover_codes.n, 1);

  ck_assert_uint_eq(c.nroutes, 1);
  const struct wsb_route_config *r = &c.routes[0];
  ck_assert_str_eq(r->name, "chat");
  ck_assert_uint_eq(r->hosts.n, 2);
  ck_assert_str_eq(r->hosts.items[1], "*.chat.example.org");
  ck_assert_uint_eq(r->paths.n, 2);
  ck_assert_str_eq(r->paths.items[1], "/live/");
  ck_assert_str_eq(r->header, "X-Tenant: blue");
  ck_assert_str_eq(r->pool, "default");
  ck_assert(r->strip_path);
  ck_assert_int_eq(r->websocket, WSB_ROUTE_WS_ONLY);
  ck_assert_int_eq(r->line, 93);
  wsb_config_free(&c);
}
END_TEST

/* True when path's section sec ("[listen]", or any "[backend:NAME]") sets key. */
static bool file_sets(const char *path, enum cfg_section sec, const char *key) {
  FILE *fp = fopen(path, "r");
  ck_assert_ptr_nonnull(fp);
  char line[256], section[64] = "";
  bool found = false;
  while (!found && fgets(line, sizeof(line), fp) != NULL) {
    size_t klen = strlen(key);
    if (line[0] == '[')
      sscanf(line, "[%63[a-z]", section);
    else if (strcmp(section, wsb__cfg_section_name(sec)) == 0 && strncmp(line, key, klen) == 0 &&
             strncmp(line + klen, " = ", 3) == 0)
      found = true;
  }
  fclose(fp);
  return found;
}

/* The parser's keys can be listed section by section (the man page check does), each is found
   by its name, and full.ini, which the test above reads back, sets every one of them. */
START_TEST(every_key_is_listed) {
  static const size_t want[] = {
      [CFG_SEC_WSBAL] = 11, [CFG_SEC_LISTEN] = 20, [CFG_SEC_UPSTREAM] = 32,
      [CFG_SEC_ADMIN] = 4,  [CFG_SEC_BACKEND] = 6, [CFG_SEC_ROUTE] = 6,
  };
  size_t total = 0;
  for (enum cfg_section sec = CFG_SEC_WSBAL; sec < CFG_SEC_NONE; sec++) {
    if (sec == CFG_SEC_POOL)
      continue; /* [upstream]'s table: checked below */
    size_t n = wsb__cfg_key_count(sec);
    ck_assert_uint_eq(n, want[sec]);
    for (size_t i = 0; i < n; i++) {
      const char *name = wsb__cfg_key_name(sec, i);
      ck_assert_ptr_nonnull(name);
      ck_assert_int_eq(wsb__cfg_key_find(sec, name), (int)i);
      if (!file_sets(WSB_TEST_DATA_DIR "/full.ini", sec, name))
        ck_abort_msg("full.ini does not set [%s] %s", wsb__cfg_section_name(sec), name);
    }
    ck_assert_ptr_null(wsb__cfg_key_name(sec, n));
    total += n;
  }
  ck_assert_uint_eq(total, 79);
  /* A pool takes [upstream]'s keys, the very same table. */
  ck_assert_uint_eq(wsb__cfg_key_count(CFG_SEC_POOL), wsb__cfg_key_count(CFG_SEC_UPSTREAM));
  ck_assert_str_eq(wsb__cfg_section_name(CFG_SEC_POOL), "pool");
  ck_assert_str_eq(wsb__cfg_key_name(CFG_SEC_LISTEN, 0), "address");
  ck_assert_str_eq(wsb__cfg_key_name(CFG_SEC_UPSTREAM, 29), "resolve_interval");
  ck_assert_str_eq(wsb__cfg_key_name(CFG_SEC_BACKEND, 0), "url");
  ck_assert_uint_eq(wsb__cfg_key_count(CFG_SEC_NONE), 0);
  ck_assert_uint_eq(wsb__cfg_key_count(CFG_SEC_SKIP), 0);
  ck_assert_ptr_null(wsb__cfg_key_name(CFG_SEC_NONE, 0));
}
END_TEST

/* Pools: "default" always first, then the sections, then names only backends give; each is
   [upstream] (wherever it stood, environment included) with its own keys over it. */
START_TEST(pools) {
  struct fixture f;
  load(&f, BACKEND, NULL);
  expect_ok(&f);
  ck_assert_uint_eq(f.cfg.npools, 1);
  ck_assert_str_eq(f.cfg.pools[0].name, "default");
  ck_assert_int_eq(f.cfg.pools[0].line, 0);
  ck_assert_str_eq(f.cfg.backends[0].pool, "default");
  ck_assert_str_eq(f.cfg.pools[0].upstream.reconnect_header, "X-Balancer-Reconnect");
  fixture_done(&f);

  static char *const env[] = {"WSBAL_UPSTREAM_MAX_FAILOVERS=7", NULL};
  load(&f,
       "[pool:chat]\n"             /* 1 */
       "algorithm = hash\n"        /* 2 */
       "pass_headers = X-A, X-B\n" /* 3 */
       "[upstream]\n"              /* 4 */
       "hash_key = cookie:sid\n"   /* 5 */
       "connect_timeout = 2s\n"    /* 6 */
       "[backend:c1]\n"            /* 7 */
       "url = ws://127.0.0.1:1\n"  /* 8 */
       "pool = chat\n"             /* 9 */
       "[backend:o1]\n"            /* 10 */
       "url = ws://127.0.0.1:2\n"  /* 11 */
       "pool = ocpp\n"             /* 12 */
       "[pool:default]\n"          /* 13 */
       "connect_timeout = 1s\n"    /* 14 */
       "[pool:empty]\n",           /* 15 */
       env);
  expect_ok(&f);
  const struct wsb_config *c = &f.cfg;
  ck_assert_uint_eq(c->npools, 4);
  const char *names[] = {"default", "chat", "empty", "ocpp"};
  const int lines[] = {13, 1, 15, 10};
  for (size_t i = 0; i < 4; i++) {
    ck_assert_str_eq(c->pools[i].name, names[i]);
    ck_assert_int_eq(c->pools[i].line, lines[i]);
    ck_assert_ptr_eq(wsb_config_pool(c, names[i]), &c->pools[i]);
    ck_assert_uint_eq(c->pools[i].upstream.max_failovers, 7); /* the environment's */
  }
  ck_assert_ptr_null(wsb_config_pool(c, "nope"));
  ck_assert_uint_eq(c->upstream.connect_timeout_ms, 2000);
  ck_assert_uint_eq(c->pools[0].upstream.connect_timeout_ms, 1000);
  ck_assert_uint_eq(c->pools[1].upstream.connect_timeout_ms, 2000);
  ck_assert_int_eq(c->pools[1].upstream.algorithm, WSB_ALG_HASH);
  ck_assert_int_eq(c->upstream.algorithm, WSB_ALG_LEAST_CONN);
  ck_assert_int_eq(c->pools[1].upstream.hash_key, WSB_HASH_COOKIE);
  ck_assert_str_eq(c->pools[1].upstream.hash_key_name, "sid");
  ck_assert_uint_eq(c->pools[1].upstream.pass_headers.n, 2);
  ck_assert_str_eq(c->pools[1].upstream.pass_headers.items[1], "X-B");
  ck_assert_uint_eq(c->upstream.pass_headers.n, 0);
  /* Deep copies: each pool's strings are its own. */
  ck_assert_ptr_ne(c->pools[3].upstream.hash_key_name, c->upstream.hash_key_name);
  ck_assert_str_eq(c->pools[3].upstream.hash_key_name, "sid");
  fixture_done(&f);
}
END_TEST

/* The admin API's changes: checked as the file's, all or none, swapped in and back. */
START_TEST(pool_changes) {
  struct fixture f;
  load(&f, BACKEND "[pool:chat]\nalgorithm = hash\n", NULL);
  expect_ok(&f);
  struct wsb_upstream_config u;
  char msg[256];
  const char *keys[] = {"max_failovers", "algorithm"}, *values[] = {"7", "random"};
  ck_assert_int_eq(wsb_config_pool_change(&f.cfg, "chat", keys, values, 2, &u, msg, sizeof(msg)),
                   0);
  ck_assert_uint_eq(u.max_failovers, 7);
  ck_assert_int_eq(u.algorithm, WSB_ALG_RANDOM);
  ck_assert_int_eq(wsb_config_pool_swap(&f.cfg, "chat", &u, true), 0);
  ck_assert_int_eq(u.algorithm, WSB_ALG_HASH); /* what the pool had */
  ck_assert(wsb_config_pool(&f.cfg, "chat")->changed);
  ck_assert_int_eq(wsb_config_pool(&f.cfg, "chat")->upstream.algorithm, WSB_ALG_RANDOM);
  ck_assert_int_eq(wsb_config_pool_swap(&f.cfg, "chat", &u, false), 0);
  ck_assert_int_eq(wsb_config_pool(&f.cfg, "chat")->upstream.algorithm, WSB_ALG_HASH);
  ck_assert(!wsb_config_pool(&f.cfg, "chat")->changed);
  wsb_config_upstream_free(&u);
  /* A new pool starts from [upstream]; dropped, it is gone. */
  ck_assert_int_eq(wsb_config_pool_change(&f.cfg, "new", keys, values, 1, &u, msg, sizeof(msg)), 0);
  ck_assert_int_eq(u.algorithm, WSB_ALG_LEAST_CONN);
  ck_assert_int_eq(wsb_config_pool_swap(&f.cfg, "new", &u, true), 1);
  ck_assert_uint_eq(f.cfg.npools, 3);
  ck_assert_uint_eq(wsb_config_pool(&f.cfg, "new")->upstream.max_failovers, 7);
  wsb_config_pool_drop(&f.cfg, "new");
  ck_assert_uint_eq(f.cfg.npools, 2);
  ck_assert_ptr_null(wsb_config_pool(&f.cfg, "new"));
  /* Refusals leave everything as it was. */
  static const struct {
    const char *key, *value, *msg;
  } bad[] = {
      {"colour", "red", "unknown key \"colour\" in [pool:chat]"},
      {"max_failovers", "lots",
       "bad number \"lots\" for [pool:chat] max_failovers (expected 0..1000)"},
      {"resolve_interval", "1m",
       "[pool:chat] resolve_interval applies to every pool at once: set it in [upstream]"},
      {"tls_ca_file", "/x.pem",
       "[pool:chat] tls_ca_file changes with a reload, which loads and checks its files"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    const char *k[] = {"algorithm", bad[i].key}, *v[] = {"random", bad[i].value};
    ck_assert_int_eq(wsb_config_pool_change(&f.cfg, "chat", k, v, 2, &u, msg, sizeof(msg)),
                     WSB_EVALUE);
    ck_assert_str_eq(msg, bad[i].msg);
  }
  ck_assert_int_eq(wsb_config_pool(&f.cfg, "chat")->upstream.algorithm, WSB_ALG_HASH);
  fixture_done(&f);
}
END_TEST

START_TEST(pool_errors) {
  CHECK_FILE(BACKEND "[pool:bad name]\nalgorithm = hash\n[pool:a]\n[pool:a]\n",
             "@3: bad pool name \"bad name\" (expected 1 to 63 letters, digits, '-', '_' or '.')",
             "@6: duplicate section [pool:a] (first at line 5)");
  CHECK_FILE(BACKEND "[pool:a]\ncolour = red\nalgorithm = fastest\nalgorithm = hash\n"
                     "algorithm = random\n",
             "@4: unknown key \"colour\" in [pool:a]",
             "@5: bad value \"fastest\" for [pool:a] algorithm (expected least_conn, round_robin, "
             "random or hash)",
             "@6: [pool:a] algorithm given twice (first at line 5)",
             "@7: [pool:a] algorithm given twice (first at line 5)");
  CHECK_FILE(BACKEND "[pool:a]\nresolve_interval = 1m\nfailover_buffer_total = 1m\n",
             "@4: [pool:a] resolve_interval applies to every pool at once: set it in [upstream]",
             "@5: [pool:a] failover_buffer_total applies to every pool at once: set it in "
             "[upstream]");
  CHECK_FILE(BACKEND "pool = no way\n",
             "@3: bad pool name \"no way\" for [backend:b] pool (expected 1 to 63 letters, "
             "digits, '-', '_' or '.', e.g. chat)");
  CHECK_FILE(BACKEND "[pool:a]\ntls_client_cert = /c.pem\n",
             "@4: [pool:a] tls_client_cert and tls_client_key come together: one is not set");
  /* [upstream] gives the pair, the pool its own certificate over it: a pair still. */
  struct fixture f;
  load(&f,
       BACKEND "[pool:a]\ntls_client_cert = /c.pem\n[upstream]\ntls_client_cert = /u.pem\n"
               "tls_client_key = /k.pem\n",
       NULL);
  expect_ok(&f);
  fixture_done(&f);
  /* A pool's own TLS files are loaded as its backends' connections will load them, and a
     failure is reported at its section. */
  load(&f, BACKEND "[pool:a]\ntls_ca_file = /nonexistent/ca.pem\n", NULL);
  expect_ok(&f);
  struct wsb_config_errors tls = {0};
  ck_assert_int_eq(wsb_config_check_tls(&f.cfg, &tls), WSB_ECONFIG);
  ck_assert_uint_eq(tls.n, 1);
  char want[256];
  snprintf(want, sizeof(want), "%s:3: [pool:a] TLS to its backends: ", f.path);
  ck_assert_msg(strncmp(tls.lines[0], want, strlen(want)) == 0, "%s", tls.lines[0]);
  wsb_config_errors_free(&tls);
  fixture_done(&f);
  /* One pool too many, reported where it is named. */
  char text[8192];
  size_t n = 0;
  for (int i = 0; i < WSB_MAX_POOLS; i++)
    n += (size_t)snprintf(text + n, sizeof(text) - n, "[backend:b%d]\nurl = ws://h:1\npool = p%d\n",
                          i, i);
  load(&f, text, NULL);
  EXPECT_ERRORS(&f, "@94: pool p31 is one more than the 32 pools wsbal holds");
  fixture_done(&f);
}
END_TEST

/* The other spellings of the word-valued keys. */
START_TEST(word_values) {
  static const struct {
    const char *text;
    int field; /* which value to check, see below */
    int want;
  } cases[] = {
      {"[wsbal]\nworkers = auto\n", 0, 0},
      {"[wsbal]\nworkers = 1024\n", 0, 1024},
      {"[wsbal]\nlog_level = error\n", 1, 0},
      {"[wsbal]\nlog_level = WARN\n", 1, 1},
      {"[upstream]\nalgorithm = round_robin\n", 2, WSB_ALG_ROUND_ROBIN},
      {"[upstream]\nalgorithm = random\n", 2, WSB_ALG_RANDOM},
      {"[upstream]\nhash_key = path\n", 3, WSB_HASH_PATH},
      {"[upstream]\nhash_key = cookie:sid\n", 3, WSB_HASH_COOKIE},
      {"[upstream]\nhash_key = query:user\n", 3, WSB_HASH_QUERY},
      {"[upstream]\nhealth_check = off\n", 4, WSB_HEALTH_OFF},
      {"[admin]\naddress = off\n", 5, 0},
      {"[admin]\naddress = [::1]:9\n", 5, 1},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char text[256];
    struct fixture f;
    snprintf(text, sizeof(text), "%s" BACKEND, cases[i].text);
    load(&f, text, NULL);
    expect_ok(&f);
    int got[] = {(int)f.cfg.wsbal.workers,         (int)f.cfg.wsbal.log_level,
                 (int)f.cfg.upstream.algorithm,    (int)f.cfg.upstream.hash_key,
                 (int)f.cfg.upstream.health_check, (int)f.cfg.admin.enabled};
    ck_assert_msg(got[cases[i].field] == cases[i].want, "%s", cases[i].text);
    fixture_done(&f);
  }
  struct fixture f;
  load(&f, "[upstream]\nhash_key = cookie:sid\n" BACKEND, NULL);
  expect_ok(&f);
  ck_assert_str_eq(f.cfg.upstream.hash_key_name, "sid");
  fixture_done(&f);
  load(&f, "[wsbal]\naccess_log = STDERR\n[listen]\npath = /\n" BACKEND, NULL);
  expect_ok(&f);
  ck_assert_str_eq(f.cfg.wsbal.access_log, "stderr");
  ck_assert_ptr_null(f.cfg.listen.path);
  fixture_done(&f);
  /* log_rate_limit: "N/s", "N", off. */
  static const struct {
    const char *value;
    uint32_t want;
  } rates[] = {{"off", 0}, {"0", 0}, {"7", 7}, {"100/s", 100}, {"3/S", 3}};
  for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
    char text[128];
    snprintf(text, sizeof(text), "[wsbal]\nlog_rate_limit = %s\n" BACKEND, rates[i].value);
    load(&f, text, NULL);
    expect_ok(&f);
    ck_assert_uint_eq(f.cfg.wsbal.log_rate_limit, rates[i].want);
    fixture_done(&f);
  }
  CHECK_FILE("[wsbal]\nlog_rate_limit = 10/m\n" BACKEND,
             "@2: bad value \"10/m\" for [wsbal] log_rate_limit (expected lines a second per "
             "worker, e.g. 10/s, or off (0))");
  CHECK_FILE("[wsbal]\nlog_rate_limit = 2000000/s\n" BACKEND,
             "@2: value \"2000000/s\" for [wsbal] log_rate_limit is out of range (expected lines a "
             "second per worker, e.g. 10/s, or off (0))");
  load(&f, "[wsbal]\naccess_log = off\n[upstream]\nfailover_codes =\n" BACKEND, NULL);
  expect_ok(&f);
  ck_assert_ptr_null(f.cfg.wsbal.access_log);
  ck_assert_uint_eq(f.cfg.upstream.failover_codes.n, 0);
  fixture_done(&f);
}
END_TEST

/* The INI dialect inih gives, with continuation lines switched off. */
START_TEST(ini_dialect) {
  struct fixture f;
  load(&f,
       "\xef\xbb\xbf; comment\r\n"
       "# another comment\r\n"
       "[admin] ; trailing comment\r\n"
       "   token = abc;def   ; an inline comment\r\n"
       "[listen]\r\n"
       "  address: 127.0.0.1:1\r\n"
       "\tpath = /x\r\n"
       "\r\n"
       "[backend:b]\n"
       "url=ws://h:1/a=b\n",
       NULL);
  expect_ok(&f);
  ck_assert_str_eq(f.cfg.admin.token, "abc;def");
  ck_assert_str_eq(f.cfg.listen.address[0].host, "127.0.0.1");
  ck_assert_str_eq(f.cfg.listen.path, "/x");
  ck_assert_str_eq(f.cfg.backends[0].url.path, "/a=b");
  ck_assert_int_eq(f.cfg.backends[0].line, 9);
  fixture_done(&f);

  /* '#' only starts a comment at the start of a line: here it is part of the value. */
  CHECK_FILE("[listen]\naddress = 127.0.0.1:1 # public\n" BACKEND,
             "@2: bad address \"127.0.0.1:1 # public\" for [listen] address (expected a comma list "
             "of up to 16 HOST:PORT, e.g. 0.0.0.0:8080, [::]:8080)");
}
END_TEST

/* Errors, one kind at a time, with their exact text and line. */

START_TEST(error_sections) {
  CHECK_FILE(BACKEND "[foo]\nx = 1\ny = 2\n[Listen]\n",
             "@3: unknown section [foo] (expected [wsbal], [listen], [upstream], [admin], "
             "[backend:NAME], [pool:NAME] or [route:NAME])",
             "@6: unknown section [Listen] (expected [wsbal], [listen], [upstream], [admin], "
             "[backend:NAME], [pool:NAME] or [route:NAME])");
  CHECK_FILE(BACKEND "[listen\naddress = x\n", "@3: section header without ']'");
  CHECK_FILE(BACKEND "[listen] x\n", "@3: unexpected text after the section header: \"x\"");
  CHECK_FILE(
      "[backend:bad name]\nurl = ws://h:1\n[backend:]\n" BACKEND,
      "@1: bad backend name \"bad name\" (expected 1 to 63 letters, digits, '-', '_' or '.')",
      "@3: bad backend name \"\" (expected 1 to 63 letters, digits, '-', '_' or '.')");
  CHECK_FILE("[backend:"
             "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcd]\nurl = ws://h:1\n",
             "@1: bad backend name "
             "\"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcd\" (expected 1 to "
             "63 letters, digits, '-', '_' or '.')",
             "@2: no backend defined: add a [backend:NAME] section or WSBAL_BACKENDS");
  /* 63 characters is the longest name, longer than inih's 49-character sections. */
  char text[128];
  char name[64];
  memset(name, 'n', 63);
  name[63] = '\0';
  snprintf(text, sizeof(text), "[backend:%s]\nurl = ws://h:1\n", name);
  struct fixture f;
  load(&f, text, NULL);
  expect_ok(&f);
  ck_assert_str_eq(f.cfg.backends[0].name, name);
  fixture_done(&f);
}
END_TEST

START_TEST(error_duplicates) {
  CHECK_FILE(
      "[listen]\naddress = 127.0.0.1:1\n[upstream]\n[listen]\naddress = 127.0.0.1:2\n" BACKEND,
      "@5: [listen] address given twice (first at line 2)");
  CHECK_FILE(BACKEND "weight = 2\nweight = 3\n",
             "@4: [backend:b] weight given twice (first at line 3)");
  /* The keys of a duplicate section, good or bad, are not reported again. */
  CHECK_FILE(BACKEND "[backend:b]\nurl = http://x\ncolour = red\n",
             "@3: duplicate section [backend:b] (first at line 1)");
}
END_TEST

START_TEST(error_syntax) {
  CHECK_FILE("address = 1\n" BACKEND, "@1: key \"address\" outside any section");
  CHECK_FILE(BACKEND "just words\n", "@3: expected KEY = VALUE, a [section] or a comment");
  CHECK_FILE(BACKEND "key ;= x\n", "@3: expected KEY = VALUE, a [section] or a comment");
  CHECK_FILE(BACKEND "= ws://h:1\n", "@3: missing key name before '='");
  char text[512];
  snprintf(text, sizeof(text), BACKEND "weight = 1%0200d\n", 0);
  CHECK_FILE(text, "@3: line longer than 199 characters");
  /* 199 characters is still one line. */
  snprintf(text, sizeof(text), BACKEND "weight = %0190d\n", 5);
  struct fixture f;
  load(&f, text, NULL);
  expect_ok(&f);
  ck_assert_uint_eq(f.cfg.backends[0].weight, 5);
  fixture_done(&f);
}
END_TEST

START_TEST(error_keys_and_values) {
  CHECK_FILE("[listen]\ncolour = blue\n" BACKEND "max_session = 1\n",
             "@2: unknown key \"colour\" in [listen]",
             "@5: unknown key \"max_session\" in [backend:b]");
  CHECK_FILE("[listen]\nhandshake_timeout = 10x\nidle_timeout = -1\n" BACKEND,
             "@2: bad duration \"10x\" for [listen] handshake_timeout (expected more than 0, e.g. "
             "500ms, 10s, 5m)",
             "@3: bad duration \"-1\" for [listen] idle_timeout (expected e.g. 500ms, 10s, 5m)");
  CHECK_FILE("[upstream]\nconnect_timeout = 0\nslow_start = 99999999999999999999h\n" BACKEND,
             "@2: duration \"0\" for [upstream] connect_timeout is out of range (expected more "
             "than 0, e.g. 500ms, 10s, 5m)",
             "@3: duration \"99999999999999999999h\" for [upstream] slow_start is out of range "
             "(expected e.g. 500ms, 10s, 5m)");
  CHECK_FILE("[listen]\nmax_header_bytes = 16q\nmax_message_bytes = 0\n[upstream]\n"
             "failover_buffer = 1.5m\n" BACKEND,
             "@2: bad size \"16q\" for [listen] max_header_bytes (expected 1k..1m, e.g. 16k)",
             "@3: size \"0\" for [listen] max_message_bytes is out of range (expected at least 1, "
             "e.g. 64k, 16m)",
             "@5: bad size \"1.5m\" for [upstream] failover_buffer (expected e.g. 64k, 1m)");
  CHECK_FILE("[listen]\nhttp = on\nmax_body_bytes = 1x\n[upstream]\nhttp_keepalive = 10001\n"
             "http_timeout = 0\n" BACKEND,
             "@2: bad value \"on\" for [listen] http (expected off or proxy)",
             "@3: bad size \"1x\" for [listen] max_body_bytes (expected e.g. 1m, 100m; 0 = no "
             "limit)",
             "@5: number \"10001\" for [upstream] http_keepalive is out of range (expected "
             "0..10000)",
             "@6: duration \"0\" for [upstream] http_timeout is out of range (expected more than "
             "0, e.g. 500ms, 10s, 5m)");
  CHECK_FILE("[listen]\ncompression = gzip\ncompression_level = 0\n"
             "compression_min_bytes = -1\ncompression_context_takeover = 2\n" BACKEND,
             "@2: bad boolean \"gzip\" for [listen] compression (expected on, off, yes, no, "
             "true, false, 1 or 0)",
             "@3: number \"0\" for [listen] compression_level is out of range (expected 1..9)",
             "@4: bad size \"-1\" for [listen] compression_min_bytes (expected e.g. 0, 256, 1k)",
             "@5: bad boolean \"2\" for [listen] compression_context_takeover (expected on, off, "
             "yes, no, true, false, 1 or 0)");
  CHECK_FILE("[listen]\ncompression_level = 10\n" BACKEND,
             "@2: number \"10\" for [listen] compression_level is out of range (expected 1..9)");
  CHECK_FILE("[upstream]\nfailover_buffer_total = lots\n" BACKEND,
             "@2: bad size \"lots\" for [upstream] failover_buffer_total (expected e.g. 64m, 1g)");
  CHECK_FILE("[listen]\nmax_header_bytes = 1023\n" BACKEND,
             "@2: size \"1023\" for [listen] max_header_bytes is out of range (expected 1k..1m, "
             "e.g. 16k)");
  CHECK_FILE("[upstream]\nfailover = maybe\n" BACKEND,
             "@2: bad boolean \"maybe\" for [upstream] failover (expected on, off, yes, no, true, "
             "false, 1 or 0)");
  CHECK_FILE("[wsbal]\nworkers = many\n[wsbal]\nmax_sessions = 0\n" BACKEND,
             "@2: bad value \"many\" for [wsbal] workers (expected auto or 1..1024)",
             "@4: number \"0\" for [wsbal] max_sessions is out of range (expected 1..10000000)");
  CHECK_FILE("[wsbal]\nworkers = 0\n" BACKEND,
             "@2: value \"0\" for [wsbal] workers is out of range (expected auto or 1..1024)");
  CHECK_FILE("[wsbal]\nworker_balance = fill\n" BACKEND,
             "@2: bad value \"fill\" for [wsbal] worker_balance (expected spread or pack)");
  CHECK_FILE(
      "[wsbal]\nworkers = 1025\nlog_level = verbose\n" BACKEND,
      "@2: value \"1025\" for [wsbal] workers is out of range (expected auto or 1..1024)",
      "@3: bad value \"verbose\" for [wsbal] log_level (expected error, warn, info or debug)");
  CHECK_FILE(BACKEND "weight = 0\n[backend:c]\nurl = ws://h:2\nweight = 1001\nmax_sessions = x\n",
             "@3: number \"0\" for [backend:b] weight is out of range (expected 1..1000)",
             "@6: number \"1001\" for [backend:c] weight is out of range (expected 1..1000)",
             "@7: bad number \"x\" for [backend:c] max_sessions (expected 0..10000000)");
  CHECK_FILE("[listen]\ntls_min_version = 1.1\npath = ws\nallowed_origins = example.com\n" BACKEND,
             "@2: bad value \"1.1\" for [listen] tls_min_version (expected 1.2 or 1.3)",
             "@3: bad path \"ws\" for [listen] path (expected an absolute path without query, dot "
             "segments or encoded separators, e.g. /ws)",
             "@4: bad origin list \"example.com\" for [listen] allowed_origins (expected a comma "
             "list of origins, e.g. https://example.com)");
  CHECK_FILE("[listen]\npath = /ws/../admin\n" BACKEND,
             "@2: bad path \"/ws/../admin\" for [listen] path (expected an absolute path without "
             "query, dot segments or encoded separators, e.g. /ws)");
  CHECK_FILE("[listen]\npath = /ws/%2e\n" BACKEND,
             "@2: bad path \"/ws/%2e\" for [listen] path (expected an absolute path without "
             "query, dot segments or encoded separators, e.g. /ws)");
  CHECK_FILE("[upstream]\nalgorithm = fastest\nhash_key = header:\nhealth_check = udp\n" BACKEND,
             "@2: bad value \"fastest\" for [upstream] algorithm (expected least_conn, "
             "round_robin, random or hash)",
             "@3: bad value \"header:\" for [upstream] hash_key (expected ip, path, header:NAME, "
             "cookie:NAME or query:NAME)",
             "@4: bad value \"udp\" for [upstream] health_check (expected off, tcp or http)");
  CHECK_FILE("[listen]\ntrust_forwarded = 10.0.0.0/8, 10.0.0.300\nproxy_protocol = v3\n"
             "[upstream]\nsend_proxy_protocol = any\n" BACKEND,
             "@2: bad value \"10.0.0.0/8, 10.0.0.300\" for [listen] trust_forwarded (expected on, "
             "off, or a comma list of up to 64 addresses and networks, e.g. 10.0.0.0/8, ::1)",
             "@3: bad value \"v3\" for [listen] proxy_protocol (expected off, v1, v2 or any)",
             "@5: bad value \"any\" for [upstream] send_proxy_protocol (expected off, v1 or v2)");
  CHECK_FILE("[upstream]\nfailover_codes = 1001, 999\n" BACKEND,
             "@2: code list \"1001, 999\" for [upstream] failover_codes is out of range (expected "
             "a comma list of up to 32 close codes in 1000..4999)");
  CHECK_FILE("[upstream]\nfailover_codes = 5000\n" BACKEND,
             "@2: code list \"5000\" for [upstream] failover_codes is out of range (expected a "
             "comma list of up to 32 close codes in 1000..4999)");
  CHECK_FILE("[upstream]\nfailover_codes = 1001,x\n" BACKEND,
             "@2: bad code list \"1001,x\" for [upstream] failover_codes (expected a comma list of "
             "up to 32 close codes in 1000..4999)");
  CHECK_FILE("[upstream]\npass_headers = X-A, Bad Header\nreconnect_header = X:Y\n"
             "health_path = healthCheck\n" BACKEND,
             "@2: bad header list \"X-A, Bad Header\" for [upstream] pass_headers (expected a "
             "comma list of HTTP header names)",
             "@3: bad header name \"X:Y\" for [upstream] reconnect_header (expected an HTTP header "
             "name)",
             "@4: bad path \"healthCheck\" for [upstream] health_path (expected an absolute path, "
             "e.g. /healthCheck)");
  CHECK_FILE("[upstream]\nreconnect_header =\n" BACKEND,
             "@2: bad header name \"\" for [upstream] reconnect_header (expected an HTTP header "
             "name)");
  CHECK_FILE("[admin]\nrequest_timeout = 0\nidle_timeout = soon\n" BACKEND,
             "@2: duration \"0\" for [admin] request_timeout is out of range (expected more "
             "than 0, e.g. 500ms, 10s, 5m)",
             "@3: bad duration \"soon\" for [admin] idle_timeout (expected more than 0, e.g. "
             "500ms, 10s, 5m)");
  CHECK_FILE("[admin]\naddress = localhost\ntoken = a b\n" BACKEND,
             "@2: bad address \"localhost\" for [admin] address (expected off or HOST:PORT, e.g. "
             "127.0.0.1:8081)",
             "@3: bad token \"a b\" for [admin] token (expected printable characters without "
             "spaces)");
  CHECK_FILE("[backend:a]\nurl = http://127.0.0.1:1\n" BACKEND,
             "@2: bad URL \"http://127.0.0.1:1\" for [backend:a] url (expected "
             "ws://HOST[:PORT][/PATH] or wss://...)");
  CHECK_FILE("[backend:a]\nurl = ws://h:0\n" BACKEND,
             "@2: URL \"ws://h:0\" for [backend:a] url is out of range (expected "
             "ws://HOST[:PORT][/PATH] or wss://...)");
}
END_TEST

/* "[listen]\naddress = h:1,h:2,...,h:N\n" and a backend. */
static void listen_file(char *text, size_t len, int n) {
  snprintf(text, len, "[listen]\naddress = ");
  for (int i = 0; i < n; i++)
    snprintf(text + strlen(text), len - strlen(text), "%sh:%d", i ? "," : "", i + 1);
  snprintf(text + strlen(text), len - strlen(text), "\n" BACKEND);
}

START_TEST(error_listen_addresses) {
  CHECK_FILE("[listen]\naddress = \n" BACKEND,
             "@2: bad address \"\" for [listen] address (expected a comma list of up to 16 "
             "HOST:PORT, e.g. 0.0.0.0:8080, [::]:8080)");
  char text[1024];
  struct fixture f;
  listen_file(text, sizeof(text), 17);
  load(&f, text, NULL);
  EXPECT_ERRORS(&f, "@2: address \"h:1,h:2,h:3,h:4,h:5,h:6,h:7,h:8,h:9,h:10,h:11,h:12,h:13,h:14,"
                    "h:15,h:16,h:17\" for [listen] address is out of range (expected a comma list "
                    "of up to 16 HOST:PORT, e.g. 0.0.0.0:8080, [::]:8080)");
  ck_assert_uint_eq(f.cfg.listen.naddress, 1); /* unchanged */
  fixture_done(&f);
  listen_file(text, sizeof(text), 16);
  load(&f, text, NULL);
  expect_ok(&f);
  ck_assert_uint_eq(f.cfg.listen.naddress, 16);
  ck_assert_str_eq(f.cfg.listen.address[15].host, "h");
  ck_assert_uint_eq(f.cfg.listen.address[15].port, 16);
  fixture_done(&f);
}
END_TEST

START_TEST(error_whole_config) {
  CHECK_FILE("[backend:a]\nweight = 2\n" BACKEND, "@1: [backend:a] has no url");
  CHECK_FILE("[listen]\naddress = 127.0.0.1:1\n",
             "@2: no backend defined: add a [backend:NAME] section or WSBAL_BACKENDS");
  CHECK_FILE("", "@0: no backend defined: add a [backend:NAME] section or WSBAL_BACKENDS");
  CHECK_FILE("[listen]\ntls_cert = a.pem\n" BACKEND,
             "@2: [listen] tls_cert is set but tls_key is not");
  CHECK_FILE("[listen]\n\ntls_key = a.key\n" BACKEND,
             "@3: [listen] tls_key is set but tls_cert is not");
  CHECK_FILE("[listen]\ntls_cert = a.pem, b.pem\ntls_key = a.key\n" BACKEND,
             "@3: [listen] tls_key lists 1 file but tls_cert lists 2 (they pair up in order)");
  CHECK_FILE("[upstream]\ntls_client_cert = c.pem\n" BACKEND,
             "@2: [upstream] tls_client_cert is set but tls_client_key is not");
  CHECK_FILE("[upstream]\ntls_client_key = c.key\n" BACKEND,
             "@2: [upstream] tls_client_key is set but tls_client_cert is not");
  CHECK_FILE("[listen]\naddress = 0.0.0.0:8081\n" BACKEND,
             "@2: [admin] address 127.0.0.1:8081 collides with [listen] address 0.0.0.0:8081");
  CHECK_FILE("[listen]\naddress = 127.0.0.1:9, [::1]:7\n[admin]\naddress = [::1]:7\n" BACKEND,
             "@4: [admin] address [::1]:7 collides with [listen] address [::1]:7");
  struct fixture f;
  load(&f, "[listen]\naddress = 127.0.0.1:9\n[admin]\naddress = 127.0.0.2:9\n" BACKEND, NULL);
  expect_ok(&f);
  fixture_done(&f);
}
END_TEST

START_TEST(admin_token_rule) {
  CHECK_FILE("[admin]\n\naddress = 0.0.0.0:8081\n" BACKEND,
             "@3: [admin] address 0.0.0.0:8081 is not a loopback address: set [admin] token or use "
             "127.0.0.1");
  CHECK_FILE("[admin]\naddress = [::]:9\n" BACKEND,
             "@2: [admin] address [::]:9 is not a loopback address: set [admin] token or use "
             "127.0.0.1");
  static const char *const ok[] = {
      "[admin]\naddress = 127.0.0.1:9999\n",
      "[admin]\naddress = 127.3.2.1:9999\n",
      "[admin]\naddress = [::1]:9999\n",
      "[admin]\naddress = localhost:9999\n",
      "[admin]\naddress = off\n",
      "[admin]\naddress = 0.0.0.0:8081\ntoken = t\n",
      "[admin]\ntoken = t\naddress = [::]:8081\n",
  };
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    char text[256];
    struct fixture f;
    snprintf(text, sizeof(text), "%s" BACKEND, ok[i]);
    load(&f, text, NULL);
    expect_ok(&f);
    fixture_done(&f);
  }
}
END_TEST

/* Several mistakes in one file: every one reported, in file order, the load going on. */
START_TEST(error_many_at_once) {
  CHECK_FILE(
      "[wsbal]\n"
      "workers = many\n"
      "colour = blue\n"
      "[listen]\n"
      "address = 127.0.0.1\n"
      "handshake_timeout = 10x\n"
      "max_header_bytes = 16q\n"
      "[nosuchsection]\n"
      "key = value\n"
      "[upstream]\n"
      "algorithm = fastest\n"
      "failover = maybe\n"
      "[admin]\n"
      "address = 0.0.0.0:8081\n"
      "[backend:a]\n"
      "url = http://127.0.0.1:1\n"
      "[backend:b]\n"
      "url = ws://127.0.0.1:2\n"
      "weight = 5000\n"
      "[backend:b]\n"
      "url = ws://127.0.0.1:3\n",
      "@2: bad value \"many\" for [wsbal] workers (expected auto or 1..1024)",
      "@3: unknown key \"colour\" in [wsbal]",
      "@5: bad address \"127.0.0.1\" for [listen] address (expected a comma list of up to "
      "16 HOST:PORT, e.g. 0.0.0.0:8080, [::]:8080)",
      "@6: bad duration \"10x\" for [listen] handshake_timeout (expected more than 0, e.g. "
      "500ms, 10s, 5m)",
      "@7: bad size \"16q\" for [listen] max_header_bytes (expected 1k..1m, e.g. 16k)",
      "@8: unknown section [nosuchsection] (expected [wsbal], [listen], [upstream], [admin], "
      "[backend:NAME], [pool:NAME] or [route:NAME])",
      "@11: bad value \"fastest\" for [upstream] algorithm (expected least_conn, "
      "round_robin, random or hash)",
      "@12: bad boolean \"maybe\" for [upstream] failover (expected on, off, yes, no, true, "
      "false, 1 or 0)",
      "@16: bad URL \"http://127.0.0.1:1\" for [backend:a] url (expected "
      "ws://HOST[:PORT][/PATH] or wss://...)",
      "@19: number \"5000\" for [backend:b] weight is out of range (expected 1..1000)",
      "@20: duplicate section [backend:b] (first at line 17)",
      "@14: [admin] address 0.0.0.0:8081 is not a loopback address: set [admin] token or "
      "use 127.0.0.1");
}
END_TEST

START_TEST(error_cannot_open) {
  struct wsb_config c;
  struct wsb_config_errors errs = {0};
  char *env[] = {"WSBAL_BACKENDS=ws://h:1", NULL};
  ck_assert_int_eq(wsb_config_load(&c, "/nonexistent/wsbal.ini", env, &errs), WSB_ECONFIG);
  ck_assert_uint_eq(errs.n, 1);
  ck_assert_str_eq(errs.lines[0],
                   "/nonexistent/wsbal.ini:0: cannot open: No such file or directory");
  wsb_config_free(&c);
  wsb_config_errors_free(&errs);
  ck_assert_int_eq(wsb_config_load(&c, "/tmp", NULL, &errs), WSB_ECONFIG);
  ck_assert_uint_eq(errs.n, 1);
  ck_assert_str_eq(errs.lines[0], "/tmp:0: cannot read: Is a directory");
  wsb_config_free(&c);
  wsb_config_errors_free(&errs);
}
END_TEST

/* The environment. */

START_TEST(env_overrides_win) {
  char *env[] = {
      "HOME=/root",
      "WSBAL_LISTEN_ADDRESS=0.0.0.0:9000,[::]:9000",
      "WSBAL_UPSTREAM_CONNECT_TIMEOUT=2s",
      "WSBAL_WSBAL_WORKERS=3",
      "WSBAL_ADMIN_TOKEN=",
      "WSBAL_LISTEN_TRUST_FORWARDED=on",
      "WSBAL_UPSTREAM_PASS_HEADERS=X-A,X-B",
      /* Not configuration keys: wsbalctl's variables and anything else not shaped like one. */
      "WSBAL_ADMIN=127.0.0.1:8081",
      "WSBAL_TOKEN=xyz",
      "WSBAL_SOURCE_ROOT=/src",
      "WSBAL_=1",
      "WSBAL_LISTEN=1",
      "NOT_WSBAL_LISTEN_ADDRESS=nowhere",
      NULL,
  };
  struct fixture f;
  load(&f,
       "[listen]\naddress = 127.0.0.1:1\n[upstream]\nconnect_timeout = 9s\n"
       "[wsbal]\nworkers = 5\n[admin]\ntoken = fromfile\n" BACKEND,
       env);
  expect_ok(&f);
  ck_assert_uint_eq(f.cfg.listen.naddress, 2);
  ck_assert_str_eq(f.cfg.listen.address[0].host, "0.0.0.0");
  ck_assert_uint_eq(f.cfg.listen.address[0].port, 9000);
  ck_assert_str_eq(f.cfg.listen.address[1].host, "::");
  ck_assert_uint_eq(f.cfg.upstream.connect_timeout_ms, 2000);
  ck_assert_uint_eq(f.cfg.wsbal.workers, 3);
  ck_assert_ptr_null(f.cfg.admin.token);
  ck_assert(f.cfg.listen.trust_forwarded.all);
  ck_assert_uint_eq(f.cfg.upstream.pass_headers.n, 2);
  ck_assert_str_eq(f.cfg.upstream.pass_headers.items[1], "X-B");
  fixture_done(&f);
}
END_TEST

START_TEST(env_errors) {
  char *env[] = {
      "WSBAL_LISTEN_ADDRESS=nowhere",      "WSBAL_LISTEN_NOPE=1",
      "WSBAL_UPSTREAM_connect_timeout=1s", "WSBAL_WSBAL_SHUTDOWN_TIMEOUT=soon",
      "WSBAL_BACKEND_B_WEIGHT=3",          "WSBAL_POOL_CHAT_ALGORITHM=hash",
      "WSBAL_ADMIN_TOKEN=two words",       NULL,
  };
  struct fixture f;
  load(&f, BACKEND, env);
  EXPECT_ERRORS(&f,
                "env WSBAL_LISTEN_ADDRESS: bad address \"nowhere\" for [listen] address (expected "
                "a comma list of up to 16 HOST:PORT, e.g. 0.0.0.0:8080, [::]:8080)",
                "env WSBAL_LISTEN_NOPE: unknown key \"NOPE\" in [listen]",
                "env WSBAL_UPSTREAM_connect_timeout: unknown key \"connect_timeout\" in [upstream]",
                "env WSBAL_WSBAL_SHUTDOWN_TIMEOUT: bad duration \"soon\" for [wsbal] "
                "shutdown_timeout (expected e.g. 500ms, 10s, 5m)",
                "env WSBAL_BACKEND_B_WEIGHT: [backend:NAME] keys cannot be set from the "
                "environment (use WSBAL_BACKENDS)",
                "env WSBAL_POOL_CHAT_ALGORITHM: [pool:NAME] keys cannot be set from the "
                "environment (WSBAL_UPSTREAM_* sets every pool's defaults)",
                "env WSBAL_ADMIN_TOKEN: bad token \"two words\" for [admin] token (expected "
                "printable characters without spaces)");
  /* A rejected override leaves the file's value. */
  ck_assert_str_eq(f.cfg.listen.address[0].host, "0.0.0.0");
  fixture_done(&f);
}
END_TEST

START_TEST(env_cross_checks) {
  char *open_admin[] = {"WSBAL_ADMIN_ADDRESS=0.0.0.0:8081", NULL};
  struct fixture f;
  load(&f, BACKEND, open_admin);
  EXPECT_ERRORS(&f, "env WSBAL_ADMIN_ADDRESS: [admin] address 0.0.0.0:8081 is not a loopback "
                    "address: set [admin] token or use 127.0.0.1");
  fixture_done(&f);
  char *with_token[] = {"WSBAL_ADMIN_ADDRESS=0.0.0.0:8081", "WSBAL_ADMIN_TOKEN=s3cret", NULL};
  load(&f, BACKEND, with_token);
  expect_ok(&f);
  ck_assert_str_eq(f.cfg.admin.token, "s3cret");
  fixture_done(&f);
  /* The token the file set, removed by the environment: the error is at the address line. */
  char *no_token[] = {"WSBAL_ADMIN_TOKEN=", NULL};
  load(&f, "[admin]\naddress = 10.0.0.1:8081\ntoken = t\n" BACKEND, no_token);
  EXPECT_ERRORS(&f, "@2: [admin] address 10.0.0.1:8081 is not a loopback address: set [admin] "
                    "token or use 127.0.0.1");
  fixture_done(&f);
  char *cert[] = {"WSBAL_LISTEN_TLS_CERT=a.pem", NULL};
  load(&f, BACKEND, cert);
  EXPECT_ERRORS(&f, "env WSBAL_LISTEN_TLS_CERT: [listen] tls_cert is set but tls_key is not");
  fixture_done(&f);
}
END_TEST

START_TEST(env_backends) {
  char *env[] = {"WSBAL_BACKENDS=ws://h1:1/a/, name2=ws://h2:2 ,wss://[::1],,x.y=WS://h4", NULL};
  struct fixture f;
  load(&f, BACKEND, env);
  expect_ok(&f);
  ck_assert_uint_eq(f.cfg.nbackends, 5);
  const struct wsb_backend_config *b = f.cfg.backends;
  ck_assert_str_eq(b[0].name, "b");
  ck_assert_str_eq(b[1].name, "env1");
  ck_assert_str_eq(b[1].url_text, "ws://h1:1/a/");
  ck_assert_str_eq(b[1].url.host, "h1");
  ck_assert_uint_eq(b[1].url.port, 1);
  ck_assert_str_eq(b[1].url.path, "/a");
  ck_assert_int_eq(b[1].line, 0);
  ck_assert_uint_eq(b[1].weight, 1);
  ck_assert(b[1].enabled);
  ck_assert(!b[1].backup);
  ck_assert_str_eq(b[2].name, "name2");
  ck_assert_str_eq(b[2].url.host, "h2");
  ck_assert_uint_eq(b[2].url.port, 2);
  ck_assert_str_eq(b[3].name, "env2");
  ck_assert(b[3].url.tls);
  ck_assert_str_eq(b[3].url.host, "::1");
  ck_assert_uint_eq(b[3].url.port, 443);
  ck_assert_str_eq(b[4].name, "x.y");
  ck_assert_uint_eq(b[4].url.port, 80);
  fixture_done(&f);

  /* Only the environment: no backend section needed. */
  char *only[] = {"WSBAL_BACKENDS=ws://127.0.0.1:1", NULL};
  load(&f, "[listen]\naddress = 127.0.0.1:2\n", only);
  expect_ok(&f);
  ck_assert_uint_eq(f.cfg.nbackends, 1);
  ck_assert_str_eq(f.cfg.backends[0].name, "env1");
  fixture_done(&f);
}
END_TEST

START_TEST(env_backend_errors) {
  char *env[] = {
      "WSBAL_BACKENDS=b=ws://h:1,ws://h:2,env1=ws://h:3,nourl,bad name=ws://h:4,c=http://h,"
      "ws://h:0,d=ws://h:5",
      NULL,
  };
  struct fixture f;
  load(&f, "\n" BACKEND, env);
  EXPECT_ERRORS(
      &f, "env WSBAL_BACKENDS: backend name \"b\" is already used by [backend:b] at @2",
      "env WSBAL_BACKENDS: backend name \"env1\" is used twice",
      "env WSBAL_BACKENDS: bad item \"nourl\" (expected URL or NAME=URL)",
      "env WSBAL_BACKENDS: bad backend name \"bad name\" (expected 1 to 63 letters, digits, '-', "
      "'_' or '.')",
      "env WSBAL_BACKENDS: bad URL \"http://h\" for [backend:c] url (expected "
      "ws://HOST[:PORT][/PATH] or wss://...)",
      "env WSBAL_BACKENDS: URL \"ws://h:0\" for [backend:env2] url is out of range (expected "
      "ws://HOST[:PORT][/PATH] or wss://...)");
  fixture_done(&f);
}
END_TEST

/* A reload loads the same file into a second struct while the first is in use. */
START_TEST(loads_are_independent) {
  char path[64];
  write_file(path, "[admin]\ntoken = t1\n[upstream]\npass_headers = A, B\n" BACKEND
                   "[backend:c]\nurl = ws://h:2\n");
  struct wsb_config a, b;
  struct wsb_config_errors ea = {0}, eb = {0};
  ck_assert_int_eq(wsb_config_load(&a, path, NULL, &ea), 0);
  ck_assert_int_eq(wsb_config_load(&b, path, NULL, &eb), 0);
  ck_assert_ptr_ne(a.admin.token, b.admin.token);
  ck_assert_ptr_ne(a.backends, b.backends);
  ck_assert_ptr_ne(a.upstream.pass_headers.items, b.upstream.pass_headers.items);
  wsb_config_free(&a);
  ck_assert_str_eq(b.admin.token, "t1");
  ck_assert_str_eq(b.upstream.pass_headers.items[1], "B");
  ck_assert_str_eq(b.backends[1].name, "c");
  ck_assert_str_eq(b.path, path);
  wsb_config_free(&b);
  unlink(path);
}
END_TEST

/* The shipped files. */

START_TEST(reference_config_loads) {
  struct wsb_config c;
  load_ok(&c, ETC_DIR "/wsbal.ini");
  /* It sets every key to its default, so only the example backend differs from the defaults. */
  assert_defaults(&c);
  ck_assert_uint_eq(c.nbackends, 1);
  ck_assert_str_eq(c.backends[0].name, "app1");
  ck_assert_str_eq(c.backends[0].url_text, "ws://127.0.0.1:9001");
  ck_assert_uint_eq(c.backends[0].weight, 1);
  ck_assert_uint_eq(c.backends[0].max_sessions, 0);
  ck_assert(c.backends[0].enabled);
  ck_assert(!c.backends[0].backup);
  ck_assert_str_eq(c.backends[0].pool, "default");
  ck_assert_uint_eq(c.npools, 1);
  wsb_config_free(&c);
}
END_TEST

START_TEST(demo_config_loads) {
  struct wsb_config c;
  load_ok(&c, ETC_DIR "/wsbal-demo.ini");
  ck_assert_uint_eq(c.wsbal.workers, 2);
  ck_assert_str_eq(c.wsbal.access_log, "stderr");
  ck_assert_uint_eq(c.listen.naddress, 1);
  ck_assert_str_eq(c.listen.address[0].host, "127.0.0.1");
  ck_assert_uint_eq(c.listen.address[0].port, 8080);
  ck_assert(c.admin.enabled);
  ck_assert_str_eq(c.admin.address.host, "127.0.0.1");
  ck_assert_uint_eq(c.admin.address.port, 8081);
  ck_assert_int_eq(c.upstream.health_check, WSB_HEALTH_TCP);
  ck_assert_uint_eq(c.nbackends, 2);
  ck_assert_str_eq(c.backends[0].name, "echo1");
  ck_assert_str_eq(c.backends[0].url.host, "127.0.0.1");
  ck_assert_uint_eq(c.backends[0].url.port, 9001);
  ck_assert_str_eq(c.backends[1].name, "echo2");
  ck_assert_uint_eq(c.backends[1].url.port, 9002);
  wsb_config_free(&c);
}
END_TEST

/*
 * Issue 12 item 13: [wsbal] group without user would keep uid 0 and every capability while the
 * file reads as a privilege drop: refused at the group's line (or variable), naming both keys.
 */
START_TEST(group_needs_user) {
  CHECK_FILE("[wsbal]\nworkers = 1\ngroup = nogroup\n" BACKEND,
             "@3: [wsbal] group is set but user is not: the processes would keep running as root; "
             "set [wsbal] user too");
  struct fixture f;
  load(&f, "[wsbal]\nuser = nobody\ngroup = nogroup\n" BACKEND, NULL);
  expect_ok(&f);
  fixture_done(&f);
  load(&f, "[wsbal]\nuser = nobody\n" BACKEND, NULL);
  expect_ok(&f);
  fixture_done(&f);
  char *env_group[] = {"WSBAL_WSBAL_GROUP=nogroup", NULL};
  load(&f, BACKEND, env_group);
  EXPECT_ERRORS(&f, "env WSBAL_WSBAL_GROUP: [wsbal] group is set but user is not: the processes "
                    "would keep running as root; set [wsbal] user too");
  fixture_done(&f);
  /* The file's user, unset by the environment: the group is refused again. */
  char *no_user[] = {"WSBAL_WSBAL_USER=", NULL};
  load(&f, "[wsbal]\nuser = nobody\ngroup = nogroup\n" BACKEND, no_user);
  EXPECT_ERRORS(&f, "@3: [wsbal] group is set but user is not: the processes would keep running "
                    "as root; set [wsbal] user too");
  fixture_done(&f);
}
END_TEST

/* wsbal -t looks the user and group up as the start will (a group may be a number). */
START_TEST(users_checked_against_the_system) {
  struct fixture f;
  load(&f, "[wsbal]\nuser = root\ngroup = 0\n" BACKEND, NULL);
  expect_ok(&f);
  ck_assert_int_eq(wsb_config_check_users(&f.cfg, &f.errs), 0);
  fixture_done(&f);
  load(&f, "[wsbal]\nuser = root\ngroup = root\n" BACKEND, NULL);
  ck_assert_int_eq(wsb_config_check_users(&f.cfg, &f.errs), 0);
  fixture_done(&f);
  load(&f,
       "[wsbal]\nworkers = 1\nuser = no-such-user-wsbal\n\ngroup = no-such-group-wsbal\n" BACKEND,
       NULL);
  expect_ok(&f);
  f.rc = wsb_config_check_users(&f.cfg, &f.errs);
  EXPECT_ERRORS(&f, "@3: [wsbal] user no-such-user-wsbal: no such user",
                "@5: [wsbal] group no-such-group-wsbal: no such group");
  fixture_done(&f);
}
END_TEST

/* [route:NAME]: its keys, and each mistake named at its line. */
START_TEST(routes) {
  struct fixture f;
  load(&f,
       BACKEND "[route:a]\npool = default\n[route:b]\npool = default\nwebsocket = NEVER\n"
               "host = Example.COM\npath = /\n",
       NULL);
  expect_ok(&f);
  ck_assert_uint_eq(f.cfg.nroutes, 2);
  ck_assert_uint_eq(f.cfg.routes[0].hosts.n, 0);
  ck_assert(!f.cfg.routes[0].strip_path);
  ck_assert_int_eq(f.cfg.routes[0].websocket, WSB_ROUTE_WS_ANY);
  ck_assert_int_eq(f.cfg.routes[1].websocket, WSB_ROUTE_WS_NEVER);
  ck_assert_int_eq(f.cfg.routes[1].line, 5);
  fixture_done(&f);

  CHECK_FILE(BACKEND "[route:a]\npool = default\n[route:a]\npool = default\n",
             "@5: duplicate section [route:a] (first at line 3)");
  CHECK_FILE(BACKEND "[route:a b]\npool = default\n[route:]\n",
             "@3: bad route name \"a b\" (expected 1 to 63 letters, digits, '-', '_' or '.')",
             "@5: bad route name \"\" (expected 1 to 63 letters, digits, '-', '_' or '.')");
  CHECK_FILE(BACKEND "[route:a]\npath = /x\n", "@3: [route:a] has no pool");
  CHECK_FILE(BACKEND "[route:default]\npool = default\n",
             "@3: route name \"default\" is taken: it names the requests no route matches");
  CHECK_FILE(BACKEND "[route:a]\npool = chat\n", "@4: [route:a] pool \"chat\" is not defined");
  CHECK_FILE(BACKEND "[route:a]\npool = default\nhost = a.*.com\n",
             "@5: bad host list \"a.*.com\" for [route:a] host (expected a comma list of host "
             "names or *.DOMAIN wildcards, e.g. chat.example.com, *.example.com)");
  CHECK_FILE(BACKEND "[route:a]\npool = default\nhost = *\n",
             "@5: bad host list \"*\" for [route:a] host (expected a comma list of host "
             "names or *.DOMAIN wildcards, e.g. chat.example.com, *.example.com)");
  CHECK_FILE(BACKEND "[route:a]\npool = default\nhost = ,\npath =\n",
             "@5: bad host list \",\" for [route:a] host (expected a comma list of host "
             "names or *.DOMAIN wildcards, e.g. chat.example.com, *.example.com)",
             "@6: bad path list \"\" for [route:a] path (expected a comma list of absolute path "
             "prefixes without query or dot segments, e.g. /chat, /api)");
  CHECK_FILE(BACKEND "[route:a]\npool = default\npath = /a/../b\nheader = X A\n",
             "@5: bad path list \"/a/../b\" for [route:a] path (expected a comma list of absolute "
             "path prefixes without query or dot segments, e.g. /chat, /api)",
             "@6: bad header \"X A\" for [route:a] header (expected Name: value or Name, e.g. "
             "X-Tenant: blue)");
  CHECK_FILE(BACKEND "[route:a]\npool = default\nwebsocket = sometimes\npool = default\n",
             "@5: bad value \"sometimes\" for [route:a] websocket (expected any, only or never)",
             "@6: [route:a] pool given twice (first at line 4)");
  CHECK_FILE(BACKEND "[route:a]\npool =\n",
             "@4: bad pool name \"\" for [route:a] pool (expected 1 to 63 letters, digits, '-', "
             "'_' or '.')");
  static char *const env[] = {"WSBAL_ROUTE_A_POOL=x", NULL};
  load(&f, BACKEND, env);
  EXPECT_ERRORS(&f, "env WSBAL_ROUTE_A_POOL: [route:NAME] keys cannot be set from the environment");
  fixture_done(&f);
}
END_TEST

/* More routes than a table holds: the first that does not fit is named. */
START_TEST(too_many_routes) {
  size_t cap = 64 + (WSB_ROUTE_MAX + 1) * 40;
  char *text = malloc(cap);
  size_t n = (size_t)snprintf(text, cap, "%s", BACKEND);
  for (int i = 0; i <= WSB_ROUTE_MAX; i++)
    n += (size_t)snprintf(text + n, cap - n, "[route:r%d]\npool = default\n", i);
  struct fixture f;
  load(&f, text, NULL);
  char want[64];
  snprintf(want, sizeof(want), "@%d: more than %d routes", 3 + 2 * WSB_ROUTE_MAX, WSB_ROUTE_MAX);
  const char *const w[] = {want};
  expect_errors(&f, w, 1);
  fixture_done(&f);
  free(text);
}
END_TEST

static Suite *config_suite(void) {
  Suite *s = suite_create("config");
  TCase *tc = tcase_create("load");
  tcase_add_test(tc, defaults_match_spec);
  tcase_add_test(tc, minimal_file_keeps_defaults);
  tcase_add_test(tc, full_file_reads_every_key);
  tcase_add_test(tc, every_key_is_listed);
  tcase_add_test(tc, word_values);
  tcase_add_test(tc, pools);
  tcase_add_test(tc, pool_errors);
  tcase_add_test(tc, pool_changes);
  tcase_add_test(tc, ini_dialect);
  tcase_add_test(tc, error_sections);
  tcase_add_test(tc, error_duplicates);
  tcase_add_test(tc, error_syntax);
  tcase_add_test(tc, error_keys_and_values);
  tcase_add_test(tc, error_listen_addresses);
  tcase_add_test(tc, error_whole_config);
  tcase_add_test(tc, admin_token_rule);
  tcase_add_test(tc, error_many_at_once);
  tcase_add_test(tc, error_cannot_open);
  tcase_add_test(tc, env_overrides_win);
  tcase_add_test(tc, env_errors);
  tcase_add_test(tc, env_cross_checks);
  tcase_add_test(tc, env_backends);
  tcase_add_test(tc, env_backend_errors);
  tcase_add_test(tc, loads_are_independent);
  tcase_add_test(tc, reference_config_loads);
  tcase_add_test(tc, demo_config_loads);
  tcase_add_test(tc, group_needs_user);
  tcase_add_test(tc, users_checked_against_the_system);
  tcase_add_test(tc, routes);
  tcase_add_test(tc, too_many_routes);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return wsb_run_suite(config_suite());
}
