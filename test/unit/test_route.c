/* Unit tests for common/route.c: items, file order, each condition, strip_path, slots, limits. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "route.h"
#include "run_suite.h"

/* Routes written as "name|pool|hosts|paths|header|websocket|strip", lists comma-separated. */
#define MAX_TEST_ROUTES 1100

static struct wsb_route_config rc[MAX_TEST_ROUTES];
static void *owned[MAX_TEST_ROUTES * 8];
static size_t nowned;

static void *keep(void *s) {
  owned[nowned++] = s;
  return s;
}

static char **split(char *s, size_t *n) {
  char **items = keep(calloc(64, sizeof(char *)));
  *n = 0;
  for (char *tok = strtok(s, ","); tok != NULL; tok = strtok(NULL, ","))
    items[(*n)++] = tok;
  return items;
}

static void parse_route(struct wsb_route_config *r, const char *spec) {
  char *s = keep(strdup(spec));
  char *f[7] = {0};
  for (int i = 0; i < 7; i++)
    f[i] = strsep(&s, "|");
  memset(r, 0, sizeof(*r));
  snprintf(r->name, sizeof(r->name), "%s", f[0]);
  r->pool = f[1];
  r->hosts.items = split(keep(strdup(f[2] != NULL ? f[2] : "")), &r->hosts.n);
  r->paths.items = split(keep(strdup(f[3] != NULL ? f[3] : "")), &r->paths.n);
  r->header = f[4] != NULL && *f[4] != '\0' ? f[4] : NULL;
  r->websocket = f[5] == NULL || *f[5] == '\0' ? WSB_ROUTE_WS_ANY
                 : strcmp(f[5], "only") == 0   ? WSB_ROUTE_WS_ONLY
                                               : WSB_ROUTE_WS_NEVER;
  r->strip_path = f[6] != NULL && strcmp(f[6], "strip") == 0;
}

static void release(void) {
  for (size_t i = 0; i < nowned; i++)
    free(owned[i]);
  nowned = 0;
}

static struct wsb_route_table *build(const char *const *specs, size_t n,
                                     const struct wsb_route_table *prev) {
  struct wsb_route_table *t = malloc(sizeof(*t));
  ck_assert_ptr_nonnull(t);
  for (size_t i = 0; i < n; i++)
    parse_route(&rc[i], specs[i]);
  size_t bad;
  char err[256];
  ck_assert_int_eq(wsb_route_table_build(t, rc, n, prev, &bad, err, sizeof(err)), 0);
  release();
  return t;
}

static const char *head_text;
static struct wsb_http_head head;

/* The name of the route a request takes ("" for none), and its strip length in *strip. */
static const char *route_of(const struct wsb_route_table *t, const char *host, const char *path,
                            bool websocket, const char *headers, size_t *strip) {
  static char buf[4096];
  snprintf(buf, sizeof(buf), "GET %s HTTP/1.1\r\n%s\r\n", path, headers != NULL ? headers : "");
  head_text = buf;
  wsb_http_head_init(&head, false, sizeof(buf));
  ck_assert_int_gt(wsb_http_feed(&head, buf, strlen(buf)), 0);
  struct wsb_route_request r = {
      .host = host != NULL ? (struct wsb_slice){host, strlen(host)} : (struct wsb_slice){0},
      .path = {path, strlen(path)},
      .head = &head,
      .websocket = websocket,
  };
  size_t dummy;
  int i = wsb_route_match(t, &r, strip != NULL ? strip : &dummy);
  return i < 0 ? "" : t->routes[i].name;
}

#define ROUTE(t, host, path) route_of(t, host, path, true, NULL, NULL)

START_TEST(hosts) {
  static const char *const specs[] = {
      "exact|p|example.com,Other.Example.COM.|||",
      "wild|p|*.example.com|||",
      "v6|p|[::1]|||",
      "rest|p||||",
  };
  struct wsb_route_table *t = build(specs, 4, NULL);
  ck_assert_str_eq(ROUTE(t, "example.com", "/"), "exact");
  ck_assert_str_eq(ROUTE(t, "EXAMPLE.com:8080", "/"), "exact");
  ck_assert_str_eq(ROUTE(t, "example.com.", "/"), "exact");
  ck_assert_str_eq(ROUTE(t, "other.example.com", "/"), "exact"); /* listed first */
  ck_assert_str_eq(ROUTE(t, "a.example.com", "/"), "wild");
  ck_assert_str_eq(ROUTE(t, "a.b.Example.COM:1", "/"), "wild");
  ck_assert_str_eq(ROUTE(t, "badexample.com", "/"), "rest");
  ck_assert_str_eq(ROUTE(t, ".example.com", "/"), "rest");
  ck_assert_str_eq(ROUTE(t, "example.com.evil", "/"), "rest");
  ck_assert_str_eq(ROUTE(t, "[::1]:8080", "/"), "v6");
  ck_assert_str_eq(ROUTE(t, "[::1]", "/"), "v6");
  ck_assert_str_eq(ROUTE(t, NULL, "/"), "rest");
  ck_assert_str_eq(ROUTE(t, "", "/"), "rest");
  ck_assert_str_eq(ROUTE(t, ":80", "/"), "rest");
  char longhost[600];
  memset(longhost, 'a', sizeof(longhost) - 1);
  longhost[sizeof(longhost) - 1] = '\0';
  ck_assert_str_eq(ROUTE(t, longhost, "/"), "rest");
  free(t);
}
END_TEST

START_TEST(paths) {
  static const char *const specs[] = {
      "chat|p||/chat||",         "deep|p||/api/v2/,/ws/x||", "tilde|p||/~u,/a%3fb,/sp%20c||",
      "root|p||/other,/||never", "none|p||||only",
  };
  struct wsb_route_table *t = build(specs, 5, NULL);
  ck_assert_str_eq(ROUTE(t, "h", "/chat"), "chat");
  ck_assert_str_eq(ROUTE(t, "h", "/chat/"), "chat");
  ck_assert_str_eq(ROUTE(t, "h", "/chat/room/1"), "chat");
  ck_assert_str_eq(ROUTE(t, "h", "/chat?x=/api/v2"), "chat");
  ck_assert_str_eq(ROUTE(t, "h", "/chatty"), "none");
  ck_assert_str_eq(ROUTE(t, "h", "/cha"), "none");
  ck_assert_str_eq(ROUTE(t, "h", "/ch%61t/x"), "chat"); /* RFC 3986 6.2.2.2 */
  ck_assert_str_eq(ROUTE(t, "h", "/CHAT"), "none");     /* paths are case-sensitive */
  ck_assert_str_eq(ROUTE(t, "h", "/api/v2"), "deep");
  ck_assert_str_eq(ROUTE(t, "h", "/api/v2/x"), "deep");
  ck_assert_str_eq(ROUTE(t, "h", "/api/v3"), "none");
  ck_assert_str_eq(ROUTE(t, "h", "/api"), "none");
  ck_assert_str_eq(ROUTE(t, "h", "/ws/x?"), "deep");
  ck_assert_str_eq(ROUTE(t, "h", "/%7Eu"), "tilde");
  ck_assert_str_eq(ROUTE(t, "h", "/%7eu/a"), "tilde");
  ck_assert_str_eq(ROUTE(t, "h", "/a%3Fb"), "tilde");
  ck_assert_str_eq(ROUTE(t, "h", "/sp%20c"), "tilde");
  ck_assert_str_eq(route_of(t, "h", "/anything", false, NULL, NULL), "root");
  ck_assert_str_eq(route_of(t, "h", "/chatty", false, NULL, NULL), "root");
  free(t);
}
END_TEST

START_TEST(websocket_and_header) {
  static const char *const specs[] = {
      "blue|p|||X-Tenant: blue||",
      "present|p|||X-Debug|only|",
      "ws|p||||only|",
      "http|p||||never|",
  };
  struct wsb_route_table *t = build(specs, 4, NULL);
  ck_assert_str_eq(route_of(t, "h", "/", true, "X-Tenant:  blue \r\n", NULL), "blue");
  ck_assert_str_eq(route_of(t, "h", "/", false, "x-tenant: blue\r\n", NULL), "blue");
  ck_assert_str_eq(route_of(t, "h", "/", true, "X-Tenant: Blue\r\n", NULL), "ws");
  ck_assert_str_eq(route_of(t, "h", "/", true, "X-Tenant: red\r\nX-Tenant: blue\r\n", NULL),
                   "blue");
  ck_assert_str_eq(route_of(t, "h", "/", true, "X-Tenant: blue, red\r\n", NULL), "ws");
  ck_assert_str_eq(route_of(t, "h", "/", true, "X-Debug: \r\n", NULL), "present");
  ck_assert_str_eq(route_of(t, "h", "/", false, "X-Debug: 1\r\n", NULL), "http");
  ck_assert_str_eq(route_of(t, "h", "/", true, NULL, NULL), "ws");
  ck_assert_str_eq(route_of(t, "h", "/", false, NULL, NULL), "http");
  free(t);
}
END_TEST

START_TEST(every_condition_and_file_order) {
  static const char *const specs[] = {
      "all|a|*.example.com|/chat|X-A: 1|only|",
      "hostpath|b|chat.example.com|/chat|||",
      "host|c|chat.example.com||||",
  };
  struct wsb_route_table *t = build(specs, 3, NULL);
  ck_assert_str_eq(route_of(t, "chat.example.com", "/chat", true, "X-A: 1\r\n", NULL), "all");
  ck_assert_str_eq(route_of(t, "chat.example.com", "/chat", false, "X-A: 1\r\n", NULL), "hostpath");
  ck_assert_str_eq(route_of(t, "chat.example.com", "/chat", true, NULL, NULL), "hostpath");
  ck_assert_str_eq(route_of(t, "chat.example.com", "/x", true, "X-A: 1\r\n", NULL), "host");
  ck_assert_str_eq(route_of(t, "x.example.com", "/x", true, "X-A: 1\r\n", NULL), "");
  ck_assert_str_eq(t->routes[1].pool, "b");
  free(t);
}
END_TEST

START_TEST(strip_lengths) {
  static const char *const specs[] = {
      "s|p||/a,/a/b,/chat|||strip",
      "keep|p||/k|||",
      "slash|p||/|||strip",
  };
  struct wsb_route_table *t = build(specs, 3, NULL);
  size_t strip;
  ck_assert_str_eq(route_of(t, "h", "/chat/x?y", true, NULL, &strip), "s");
  ck_assert_uint_eq(strip, 5);
  ck_assert_str_eq(route_of(t, "h", "/chat", true, NULL, &strip), "s");
  ck_assert_uint_eq(strip, 5);
  ck_assert_str_eq(route_of(t, "h", "/chat?q", true, NULL, &strip), "s");
  ck_assert_uint_eq(strip, 5);
  ck_assert_str_eq(route_of(t, "h", "/a/b/c", true, NULL, &strip), "s");
  ck_assert_uint_eq(strip, 4); /* the longest of the route's prefixes */
  ck_assert_str_eq(route_of(t, "h", "/a/bc", true, NULL, &strip), "s");
  ck_assert_uint_eq(strip, 2);
  ck_assert_str_eq(route_of(t, "h", "/ch%61t/x", true, NULL, &strip), "s");
  ck_assert_uint_eq(strip, 7); /* in the bytes the client sent */
  ck_assert_str_eq(route_of(t, "h", "/k/x", true, NULL, &strip), "keep");
  ck_assert_uint_eq(strip, 0);
  ck_assert_str_eq(route_of(t, "h", "/z/x", true, NULL, &strip), "slash");
  ck_assert_uint_eq(strip, 0);
  free(t);
}
END_TEST

START_TEST(items) {
  char out[WSB_ROUTE_ITEM_MAX];
  static const char *const good_hosts[] = {"example.com", "*.example.com", "a-b_c.d",   "localhost",
                                           "127.0.0.1",   "[::1]",         "[fe80::1]", "x."};
  static const char *const bad_hosts[] = {
      "",    "*",        "*.",    "a.*.com", "*a.com", "**.a.com",     "a..b", ".a",
      "a b", "a.com:80", "*.*.a", "[::1",    "[zz]",   "http://a.com", "a/b",  "."};
  for (size_t i = 0; i < sizeof(good_hosts) / sizeof(good_hosts[0]); i++)
    ck_assert_msg(wsb_route_host_item(good_hosts[i], out, sizeof(out)) == 0, "%s", good_hosts[i]);
  for (size_t i = 0; i < sizeof(bad_hosts) / sizeof(bad_hosts[0]); i++)
    ck_assert_msg(wsb_route_host_item(bad_hosts[i], out, sizeof(out)) == WSB_EVALUE, "%s",
                  bad_hosts[i]);
  ck_assert_int_eq(wsb_route_host_item("*.Example.COM.", out, sizeof(out)), 0);
  ck_assert_str_eq(out, "*.example.com");

  ck_assert_int_eq(wsb_route_path_item("/chat/", out, sizeof(out)), 5);
  ck_assert_str_eq(out, "/chat");
  ck_assert_int_eq(wsb_route_path_item("/", out, sizeof(out)), 0);
  ck_assert_int_eq(wsb_route_path_item("/%7e%3f%41", out, sizeof(out)), 6);
  ck_assert_str_eq(out, "/~%3FA");
  static const char *const bad_paths[] = {"",    "chat", "/a?x", "/a#b", "/a/../b", "/a/.",
                                          "/..", "/%zz", "/%2",  "/a b", "/a\\b",   "/%2e%2E"};
  for (size_t i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++)
    ck_assert_msg(wsb_route_path_item(bad_paths[i], out, sizeof(out)) == WSB_EVALUE, "%s",
                  bad_paths[i]);

  static const char *const good_headers[] = {"X-A: b", "X-A", "X-A:b c", "x-a:  v "};
  static const char *const bad_headers[] = {
      "", "X A", "X-A:", "X-A:  ", ": b", "X-A b", "X-A: \x01"};
  for (size_t i = 0; i < sizeof(good_headers) / sizeof(good_headers[0]); i++)
    ck_assert_msg(wsb_route_header_item(good_headers[i]) == 0, "%s", good_headers[i]);
  for (size_t i = 0; i < sizeof(bad_headers) / sizeof(bad_headers[0]); i++)
    ck_assert_msg(wsb_route_header_item(bad_headers[i]) == WSB_EVALUE, "%s", bad_headers[i]);
}
END_TEST

START_TEST(slots_follow_names) {
  static const char *const first[] = {"a|p||||", "b|p||||", "c|p||||"};
  static const char *const second[] = {"new|p||||", "c|p||||", "a|p||||"};
  struct wsb_route_table *t1 = build(first, 3, NULL);
  ck_assert_uint_eq(t1->routes[0].slot, 0);
  ck_assert_uint_eq(t1->routes[2].slot, 2);
  struct wsb_route_table *t2 = build(second, 3, t1);
  ck_assert_uint_eq(t2->routes[1].slot, 2); /* c */
  ck_assert_uint_eq(t2->routes[2].slot, 0); /* a */
  ck_assert_uint_eq(t2->routes[0].slot, 3); /* not b's 1: its count is b's */
  free(t1);
  free(t2);
}
END_TEST

/* A thousand routes, one host each, and the paths of the last: every lookup still finds its
   route, and a request no route takes walks only its own host and path. */
START_TEST(thousand_routes) {
  static char specs_text[1000][96];
  static const char *specs[1000];
  for (int i = 0; i < 1000; i++) {
    snprintf(specs_text[i], sizeof(specs_text[i]), "r%d|p|h%d.example.com,*.w%d.example|/p%d||", i,
             i, i, i);
    specs[i] = specs_text[i];
  }
  struct wsb_route_table *t = build(specs, 1000, NULL);
  ck_assert_uint_eq(t->nkeys, 3000);
  ck_assert_str_eq(ROUTE(t, "h0.example.com", "/p0/x"), "r0");
  ck_assert_str_eq(ROUTE(t, "h999.example.com", "/p999"), "r999");
  ck_assert_str_eq(ROUTE(t, "a.b.w517.example", "/p517"), "r517");
  ck_assert_str_eq(ROUTE(t, "h999.example.com", "/p998"), "");
  ck_assert_str_eq(ROUTE(t, "nobody", "/"), "");
  free(t);
}
END_TEST

/* A request target of thousands of segments costs no more than the longest prefix listed. */
START_TEST(hostile_requests) {
  static const char *const specs[] = {"deep|p||/a/a/a|||strip", "x|p|*.a||||"};
  struct wsb_route_table *t = build(specs, 2, NULL);
  static char path[3001];
  for (int i = 0; i < 1500; i++)
    memcpy(path + 2 * i, "/a", 2);
  path[3000] = '\0';
  struct wsb_route_request r = {.path = {path, strlen(path)}, .websocket = true};
  size_t strip;
  ck_assert_int_eq(wsb_route_match(t, &r, &strip), 0);
  ck_assert_uint_eq(strip, 6);
  memset(path, '/', 3000);
  ck_assert_int_eq(wsb_route_match(t, &r, &strip), -1);
  static char host[200];
  for (int i = 0; i < 99; i++)
    memcpy(host + 2 * i, "a.", 2);
  host[198] = 'a';
  r.host = (struct wsb_slice){host, strlen(host)};
  ck_assert_int_eq(wsb_route_match(t, &r, &strip), 1);
  r.path = (struct wsb_slice){"/%", 2};
  ck_assert_int_eq(wsb_route_match(t, &r, &strip), 1);
  free(t);
}
END_TEST

START_TEST(limits) {
  struct wsb_route_table *t = malloc(sizeof(*t));
  static struct wsb_route_config many[WSB_ROUTE_MAX + 1];
  size_t bad;
  char err[256];
  for (size_t i = 0; i < WSB_ROUTE_MAX + 1; i++) {
    memset(&many[i], 0, sizeof(many[i]));
    snprintf(many[i].name, sizeof(many[i].name), "r%zu", i);
    many[i].pool = "default";
  }
  ck_assert_int_eq(wsb_route_table_build(t, many, WSB_ROUTE_MAX, NULL, &bad, err, sizeof(err)), 0);
  ck_assert_int_eq(wsb_route_table_build(t, many, WSB_ROUTE_MAX + 1, NULL, &bad, err, sizeof(err)),
                   WSB_ERANGE_VALUE);
  ck_assert_uint_eq(bad, WSB_ROUTE_MAX);
  /* Too many items: the route that overflows is named. */
  static char text[WSB_ROUTE_MAX][20];
  static char *lists[WSB_ROUTE_MAX][9];
  for (size_t i = 0; i < WSB_ROUTE_MAX; i++) {
    for (int k = 0; k < 9; k++) {
      lists[i][k] = text[i];
    }
    snprintf(text[i], sizeof(text[i]), "/p%zu", i);
    many[i].paths.items = lists[i];
    many[i].paths.n = 9;
  }
  ck_assert_int_eq(wsb_route_table_build(t, many, WSB_ROUTE_MAX, NULL, &bad, err, sizeof(err)),
                   WSB_ERANGE_VALUE);
  ck_assert_uint_eq(bad, WSB_ROUTE_REFS_MAX / 9);
  ck_assert_ptr_nonnull(strstr(err, "does not fit"));
  free(t);
}
END_TEST

/* ---- a differential test: the indexed matcher against the rules written out plainly ---- */

static unsigned seed = 12345;

static unsigned rnd(unsigned n) {
  seed = seed * 1103515245u + 12345u;
  return (seed >> 16) % n;
}

static const char *const labels[] = {"a", "b", "ab", "x"};
static const char *const segments[] = {"a", "b", "ab", "~u"};
static const char *const spelled[] = {"a", "%61", "b", "ab", "%61b", "~u", "%7eu", "%7Eu"};

/* The request path with its encodings decoded, as routes compare it ("%61" is "a"), up to its
   query; ends[i] is where its byte i came from in the request. */
static size_t ref_canonical(const char *path, char *out, size_t *ends) {
  size_t n = 0, i = 0;
  while (path[i] != '\0' && path[i] != '?') {
    if (path[i] == '%') {
      char c = path[i + 1] == '6' ? 'a' : '~';
      out[n] = c;
      i += 3;
    } else {
      out[n] = path[i++];
    }
    ends[n++] = i;
  }
  out[n] = '\0';
  return n;
}

static bool ref_host(const struct wsb_route_config *r, const char *host) {
  if (r->hosts.n == 0)
    return true;
  for (size_t i = 0; i < r->hosts.n; i++) {
    const char *item = r->hosts.items[i];
    size_t hl = strlen(host), il = strlen(item);
    if (strncmp(item, "*.", 2) == 0) {
      if (hl > il - 1 && strcmp(host + hl - (il - 1), item + 1) == 0)
        return true;
    } else if (strcmp(item, host) == 0) {
      return true;
    }
  }
  return false;
}

/* The length of the longest of the route's prefixes the path has, or -1 (0: "/" or no path). */
static int ref_path(const struct wsb_route_config *r, const char *canon) {
  int best = r->paths.n == 0 ? 0 : -1;
  for (size_t i = 0; i < r->paths.n; i++) {
    size_t pl = strlen(r->paths.items[i]);
    while (pl > 0 && r->paths.items[i][pl - 1] == '/')
      pl--;
    if (strncmp(canon, r->paths.items[i], pl) == 0 && (canon[pl] == '\0' || canon[pl] == '/') &&
        (int)pl > best)
      best = (int)pl;
  }
  return best;
}

static int ref_match(const struct wsb_route_config *routes, size_t n, const char *host,
                     const char *path, bool ws, const char *tenant, size_t *strip) {
  char canon[256];
  size_t ends[256];
  ref_canonical(path, canon, ends);
  *strip = 0;
  for (size_t i = 0; i < n; i++) {
    const struct wsb_route_config *r = &routes[i];
    int len = ref_path(r, canon);
    if (!ref_host(r, host) || len < 0 || (r->websocket == WSB_ROUTE_WS_ONLY && !ws) ||
        (r->websocket == WSB_ROUTE_WS_NEVER && ws))
      continue;
    if (r->header != NULL && (tenant == NULL || strcmp(r->header + strlen("X-T: "), tenant) != 0))
      continue;
    if (r->strip_path && len > 0)
      *strip = ends[len - 1];
    return (int)i;
  }
  return -1;
}

static void random_host(char *out, size_t cap, bool wild) {
  snprintf(out, cap, "%s%s.%s", wild ? "*." : "", labels[rnd(4)], rnd(2) ? "t" : "u");
  if (rnd(3) == 0) {
    char more[64];
    snprintf(more, sizeof(more), "%s.%s", labels[rnd(4)], out + (wild ? 2 : 0));
    snprintf(out, cap, "%s%s", wild ? "*." : "", more);
  }
}

static void random_path(char *out, size_t cap, const char *const *words, size_t nwords) {
  size_t n = 0, depth = 1 + rnd(3);
  for (size_t d = 0; d < depth; d++)
    n += (size_t)snprintf(out + n, cap - n, "/%s", words[rnd((unsigned)nwords)]);
  if (rnd(4) == 0)
    snprintf(out + n, cap - n, "/");
}

START_TEST(against_the_rules) {
  enum { NROUTES = 40, ROUNDS = 300, REQUESTS = 200 };
  static char text[NROUTES][8][64];
  static char *host_items[NROUTES][3], *path_items[NROUTES][3];
  static char header[NROUTES][32];
  static struct wsb_route_config routes[NROUTES];
  struct wsb_route_table *t = malloc(sizeof(*t));
  size_t checked = 0, matched = 0;
  for (int round = 0; round < ROUNDS; round++) {
    size_t n = 1 + rnd(NROUTES);
    for (size_t i = 0; i < n; i++) {
      struct wsb_route_config *r = &routes[i];
      memset(r, 0, sizeof(*r));
      snprintf(r->name, sizeof(r->name), "r%zu", i);
      r->pool = "default";
      r->hosts = (struct wsb_strlist){host_items[i], rnd(3) == 0 ? 0 : 1 + rnd(2)};
      for (size_t k = 0; k < r->hosts.n; k++) {
        random_host(text[i][k], sizeof(text[i][k]), rnd(2));
        host_items[i][k] = text[i][k];
      }
      r->paths = (struct wsb_strlist){path_items[i], rnd(3) == 0 ? 0 : 1 + rnd(3)};
      for (size_t k = 0; k < r->paths.n; k++) {
        random_path(text[i][3 + k], sizeof(text[i][3 + k]), segments, 4);
        if (rnd(8) == 0)
          snprintf(text[i][3 + k], sizeof(text[i][3 + k]), "/");
        path_items[i][k] = text[i][3 + k];
      }
      if (rnd(4) == 0) {
        snprintf(header[i], sizeof(header[i]), "X-T: %s", labels[rnd(2)]);
        r->header = header[i];
      }
      r->websocket = (int)rnd(3);
      r->strip_path = rnd(2);
    }
    size_t bad;
    char err[256];
    ck_assert_int_eq(wsb_route_table_build(t, routes, n, NULL, &bad, err, sizeof(err)), 0);
    for (int q = 0; q < REQUESTS; q++) {
      char host[80], path[96], headers[64] = "";
      random_host(host, sizeof(host), false);
      random_path(path, sizeof(path) - 8, spelled, 8);
      if (rnd(3) == 0)
        strcat(path, "?q=/a");
      const char *tenant = rnd(2) ? labels[rnd(2)] : NULL;
      if (tenant != NULL)
        snprintf(headers, sizeof(headers), "X-T: %s\r\n", tenant);
      bool ws = rnd(2);
      size_t want_strip, strip;
      int want = ref_match(routes, n, host, path, ws, tenant, &want_strip);
      const char *got = route_of(t, host, path, ws, headers, &strip);
      ck_assert_msg(strcmp(got, want < 0 ? "" : routes[want].name) == 0,
                    "round %d: %s%s (ws %d, tenant %s) took \"%s\", the rules say \"%s\"", round,
                    host, path, ws, tenant ? tenant : "-", got, want < 0 ? "" : routes[want].name);
      ck_assert_msg(strip == want_strip, "round %d: %s strip %zu, the rules say %zu", round, path,
                    strip, want_strip);
      checked++;
      matched += want >= 0;
    }
  }
  /* Both outcomes were exercised, or the comparison proved little. */
  ck_assert_uint_gt(matched, checked / 10);
  ck_assert_uint_lt(matched, checked - checked / 10);
  free(t);
}
END_TEST

/* Any bytes as Host and path: no read outside them (ASan), and a strip length that ends the
   path at a segment boundary of what was sent. */
START_TEST(random_bytes) {
  static const char *const specs[] = {
      "w|p|*.a,[::1]|/a%20,/a/b,/~|||strip",
      "x|p||/%41/b,/a|X-A: 1||strip",
  };
  struct wsb_route_table *t = build(specs, 2, NULL);
  static const char alphabet[] = "/a.%~:[]2fAb?#\x01\xff ";
  for (int round = 0; round < 100000; round++) {
    size_t hl = rnd(12), pl = rnd(24);
    char *host = malloc(hl + 1), *path = malloc(pl + 1);
    for (size_t i = 0; i < hl; i++)
      host[i] = alphabet[rnd(sizeof(alphabet) - 1)];
    for (size_t i = 0; i < pl; i++)
      path[i] = alphabet[rnd(sizeof(alphabet) - 1)];
    /* Exactly hl and pl bytes: ASan sees a read past either. */
    struct wsb_route_request r = {{host, hl}, {path, pl}, NULL, rnd(2)};
    size_t strip;
    int i = wsb_route_match(t, &r, &strip);
    ck_assert(i >= -1 && i < 2);
    ck_assert(strip <= pl);
    ck_assert_msg(strip == 0 || strip == pl || path[strip] == '/' || path[strip] == '?' ||
                      path[strip] == '#',
                  "strip %zu of %.*s", strip, (int)pl, path);
    free(host);
    free(path);
  }
  free(t);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("route");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, hosts);
  tcase_add_test(tc, paths);
  tcase_add_test(tc, websocket_and_header);
  tcase_add_test(tc, every_condition_and_file_order);
  tcase_add_test(tc, strip_lengths);
  tcase_add_test(tc, items);
  tcase_add_test(tc, slots_follow_names);
  tcase_add_test(tc, thousand_routes);
  tcase_add_test(tc, hostile_requests);
  tcase_add_test(tc, limits);
  tcase_add_test(tc, against_the_rules);
  tcase_add_test(tc, random_bytes);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return wsb_run_suite(suite());
}
