/* Fuzz target for common/http.c, common/handshake.c and what reads an accepted upgrade
 * (common/proxy.c, common/hash_key.c): split-invariance, slice sanity, heads written back. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "errors.h"
#include "fuzz.h"
#include "handshake.h"
#include "hash_key.h"
#include "http.h"
#include "proxy.h"
#include "uri_path.h"

#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/*
 * Random bytes seldom make a whole head, so most inputs are spliced into a
 * valid request or response; the fuzzer's bytes then land among real headers
 * and reach the handshake checks.
 */
static const char request_template[] = "GET /chat?x=1 HTTP/1.1\r\n"
                                       "Host: a.example\r\n"
                                       "Upgrade: websocket\r\n"
                                       "Connection: keep-alive, Upgrade\r\n"
                                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                       "Sec-WebSocket-Protocol: chat, superchat\r\n"
                                       "Sec-WebSocket-Version: 13\r\n"
                                       "\r\n"
                                       "\x81\x80\x01\x02\x03\x04";
static const char response_template[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                        "Upgrade: websocket\r\n"
                                        "Connection: Upgrade\r\n"
                                        "Sec-WebSocket-Accept: " ACCEPT "\r\n"
                                        "Sec-WebSocket-Protocol: chat\r\n"
                                        "\r\n"
                                        "\x81\x00";

static void fail(const char *what, ssize_t a, ssize_t b) {
  fprintf(stderr, "fuzz_http: %s (%zd vs %zd)\n", what, a, b);
  abort();
}

static void expect(bool ok, const char *what) {
  if (!ok)
    fail(what, 0, 0);
}

static bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

static bool slice_inside(struct wsb_slice s, const char *buf, size_t len) {
  if (s.len == 0)
    return s.p == NULL || (s.p >= buf && s.p <= buf + len);
  return s.p >= buf && s.p + s.len <= buf + len;
}

static void check_head(const struct wsb_http_head *h, const char *buf, size_t head_len) {
  expect(h->complete && h->seen == head_len, "complete head length");
  expect(h->nheaders <= WSB_HTTP_MAX_HEADERS, "header count");
  expect(slice_inside(h->url, buf, head_len), "url inside head");
  expect(slice_inside(h->reason, buf, head_len), "reason inside head");
  for (size_t i = 0; i < h->nheaders; i++) {
    const struct wsb_header *hdr = &h->headers[i];
    expect(hdr->name.len > 0 && slice_inside(hdr->name, buf, head_len), "name inside head");
    expect(hdr->value.p != NULL && slice_inside(hdr->value, buf, head_len), "value inside head");
    expect(memchr(hdr->name.p, ':', hdr->name.len) == NULL, "colon in name");
    for (size_t j = 0; j < hdr->name.len; j++)
      expect(!is_ows(hdr->name.p[j]) && hdr->name.p[j] != '\r' && hdr->name.p[j] != '\n',
             "space in name");
    for (size_t j = 0; j < hdr->value.len; j++)
      expect(hdr->value.p[j] != '\r' && hdr->value.p[j] != '\n', "line break in value");
    if (hdr->value.len > 0)
      expect(!is_ows(hdr->value.p[0]) && !is_ows(hdr->value.p[hdr->value.len - 1]),
             "value not trimmed");
    (void)wsb_http_is_hop_by_hop(h, hdr);
    (void)wsb_handshake_header_is_own(hdr->name);
  }
}

/* How many headers of h are called name. */
static size_t count_named(const struct wsb_http_head *h, const char *name) {
  size_t n = 0;
  for (const struct wsb_header *x = wsb_http_find(h, name, NULL); x != NULL;
       x = wsb_http_find(h, name, x))
    n++;
  return n;
}

/* Options of the proxy's writers and key lookups, from the split byte's bits. */
#define P_PRESERVE_HOST 0x01
#define P_TRUST         0x02
#define P_TLS           0x04
#define P_FAILOVER      0x08
#define P_V6_BACKEND    0x10
#define P_STRIP         0x20 /* a route's strip_path takes the path's first segment */

static const char *const blocked = "cookie,x-secret";
static const char *const reconnect = "X-Wsbal-Reconnect";

/*
 * The backend's request written from an accepted upgrade is itself one whole, valid upgrade
 * head for the backend's prefix and the fresh key: nothing the client sent can end it early,
 * add a line, or smuggle a header the proxy drops or writes itself.
 */
static void check_proxy_request(const struct wsb_http_head *h, const struct wsb_upgrade_request *u,
                                unsigned opts) {
  static const char key[] = "AQIDBAUGBwgJCgsMDQ4PEA==";
  struct wsb_url backend = {.port = 9001};
  strcpy(backend.host, opts & P_V6_BACKEND ? "::1" : "127.0.0.1");
  strcpy(backend.path, opts & P_PRESERVE_HOST ? "" : "/pre");
  struct wsb_proxy_request pr = {
      .client = h,
      .upgrade = u,
      .backend = &backend,
      .key = key,
      .client_ip = opts & P_V6_BACKEND ? "2001:db8::7" : "203.0.113.7",
      .client_tls = opts & P_TLS,
      .preserve_host = opts & P_PRESERVE_HOST,
      .trust_forwarded = opts & P_TRUST,
      .block_headers = blocked,
      .reconnect_header = reconnect,
      .reconnect_value = opts & P_FAILOVER ? "00000000000000ab" : NULL,
  };
  if (opts & P_STRIP) {
    /* Routes match paths segment-wise, so what they strip ends at a '/' or '?' of the path. */
    const char *q = memchr(u->path.p, '?', u->path.len);
    size_t path_len = q != NULL ? (size_t)(q - u->path.p) : u->path.len;
    const char *next = memchr(u->path.p + 1, '/', path_len - 1);
    pr.strip = next != NULL ? (size_t)(next - u->path.p) : path_len;
  }
  size_t cap = 24 * 1024;
  char *out = malloc(cap);
  expect(out != NULL, "malloc");
  ssize_t n = wsb_proxy_request_write(out, cap, &pr);
  expect(n > 0 && (size_t)n <= cap, "request fits");
  char *text = malloc((size_t)n); /* exactly n bytes, for ASan */
  expect(text != NULL, "malloc");
  memcpy(text, out, (size_t)n);
  free(out);
  /* The proxy adds at most ten lines to the client's; the backend reads any number. */
  struct wsb_http_head *back = malloc(sizeof(*back));
  expect(back != NULL, "malloc");
  wsb_http_head_init(back, false, cap);
  ssize_t rc = wsb_http_feed(back, text, (size_t)n);
  if (rc == WSB_ETOO_MANY_HEADERS && h->nheaders + 10 > WSB_HTTP_MAX_HEADERS)
    goto done;
  if (rc != n)
    fail("written request is one whole head", rc, n);
  struct wsb_upgrade_request bu;
  expect(wsb_handshake_check_request(back, &bu) == 0, "written request is a valid upgrade");
  expect(bu.key.len == sizeof(key) - 1 && memcmp(bu.key.p, key, bu.key.len) == 0, "fresh key");
  size_t plen = strlen(backend.path);
  struct wsb_slice rest = {u->path.p + pr.strip, u->path.len - pr.strip};
  size_t slash = rest.len == 0 || rest.p[0] != '/' ? 1 : 0;
  expect(back->url.len == plen + slash + rest.len && memcmp(back->url.p, backend.path, plen) == 0 &&
             (slash == 0 || back->url.p[plen] == '/') &&
             memcmp(back->url.p + plen + slash, rest.p, rest.len) == 0,
         "target is the prefix and the normalised path, less what a route strips");
  wsb_upgrade_request_free(&bu);
  expect(count_named(back, "Host") == 1, "one Host");
  expect(count_named(back, "Sec-WebSocket-Key") == 1, "one key");
  expect(count_named(back, "X-Forwarded-For") == 1, "one X-Forwarded-For");
  expect(count_named(back, "Sec-WebSocket-Protocol") == (u->protocols.p != NULL),
         "protocols on one line");
  expect(count_named(back, "Content-Length") == 0 && count_named(back, "Cookie") == 0 &&
             count_named(back, "X-Secret") == 0,
         "no body header, no blocked header");
  expect(count_named(back, reconnect) == ((opts & P_FAILOVER) != 0), "reconnect header is ours");
  if (!(opts & P_TRUST)) {
    expect(count_named(back, "Forwarded") == 0 && count_named(back, "X-Real-IP") == 0,
           "untrusted forwarding dropped");
    expect(count_named(back, "X-Forwarded-Proto") == 1 &&
               count_named(back, "X-Forwarded-Host") == 1,
           "forwarded proto and host are ours");
    const struct wsb_header *xff = wsb_http_find(back, "X-Forwarded-For", NULL);
    expect(wsb_slice_eq(xff->value, pr.client_ip), "untrusted chain dropped");
  }
done:
  free(back);
  free(text);
}

/* The key each hash_key form takes lies in the request, its target or the client's address. */
static void check_hash_keys(const struct wsb_http_head *h, const struct wsb_upgrade_request *u,
                            const char *buf, size_t len) {
  static const struct {
    enum wsb_hash_key kind;
    const char *name;
  } keys[] = {{WSB_HASH_IP, NULL},       {WSB_HASH_PATH, NULL},    {WSB_HASH_HEADER, "X-Tenant"},
              {WSB_HASH_HEADER, "Host"}, {WSB_HASH_COOKIE, "sid"}, {WSB_HASH_COOKIE, "a"},
              {WSB_HASH_QUERY, "x"},     {WSB_HASH_QUERY, "room"}, {WSB_HASH_QUERY, ""}};
  static const char ip[] = "192.0.2.44";
  struct wsb_hash_key_source src = {.req = h, .target = u->path, .client_ip = ip};
  for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
    struct wsb_slice out;
    bool found = wsb_hash_key_get(keys[i].kind, keys[i].name, &src, &out);
    bool in_ip = out.p == ip && out.len == sizeof(ip) - 1;
    bool in_path = out.p >= u->path.p && out.p + out.len <= u->path.p + u->path.len;
    expect(in_ip || slice_inside(out, buf, len) || in_path, "hash key inside the request");
    expect(found ? out.len > 0 : in_ip, "fallback is the client address");
  }
}

/* The real client behind a trusted peer is the peer or an address of X-Forwarded-For. */
static void check_real_client(const struct wsb_http_head *h) {
  static char list[] = "10.0.0.0/8, 192.0.2.0/24, ::1/128, fd00::/8";
  struct wsb_cidr_set trusted;
  expect(wsb_cidr_set_parse(list, &trusted) == 0, "trusted list");
  uint8_t peer[16] = {10, 1, 2, 3}, family, addr[16];
  wsb_proxy_real_client(h, &trusted, AF_INET, peer, &family, addr);
  expect(family == AF_INET || family == AF_INET6, "real client family");
  struct wsb_slice origin = {"https://a.example", 17};
  (void)wsb_proxy_origin_allowed("https://a.example,http://b.example", origin);
}

/* The client's 101 written from an accepted backend answer is one valid 101 for its key. */
static void check_proxy_response(const struct wsb_http_head *h,
                                 const struct wsb_upgrade_response *r, struct wsb_slice offered) {
  static const char client_key[] = "x3JJHMbDL1EzLkh9GBhXDw==";
  struct wsb_slice key = {client_key, sizeof(client_key) - 1};
  size_t cap = 24 * 1024;
  char *out = malloc(cap);
  expect(out != NULL, "malloc");
  ssize_t n = wsb_proxy_response_write(out, cap, key, h, r, "Set-Cookie,Server,X-Trace,Connection");
  expect(n > 0 && (size_t)n <= cap, "101 fits");
  struct wsb_http_head *back = malloc(sizeof(*back));
  expect(back != NULL, "malloc");
  wsb_http_head_init(back, true, cap);
  ssize_t rc = wsb_http_feed(back, out, (size_t)n);
  if (rc != n)
    fail("written 101 is one whole head", rc, n);
  char accept[WSB_WS_ACCEPT_LEN + 1];
  wsb_ws_accept(key, accept);
  struct wsb_upgrade_response again;
  expect(wsb_handshake_check_response(back, accept, offered, &again) == 0, "written 101 is valid");
  expect(count_named(back, "Sec-WebSocket-Accept") == 1, "one accept");
  free(back);
  free(out);
}

static void check_handshake(const struct wsb_http_head *h, bool response, unsigned opts,
                            const char *buf, size_t len) {
  if (!response) {
    struct wsb_upgrade_request u;
    int rc = wsb_handshake_check_request(h, &u);
    expect(rc == 0 || rc == 400 || rc == 426 || rc == 500, "request verdict");
    if (rc == 0) {
      expect(wsb_ws_key_valid(u.key), "accepted key is valid");
      expect(u.path.len > 0 && u.path.p[0] == '/', "path in origin form");
      expect(u.path.len <= u.target.len, "normalising never lengthens the path");
      expect(wsb_uri_path_check(u.path) == 0, "a normalised path has no dot segment left");
      expect(u.host.len > 0, "host present");
      char accept[WSB_WS_ACCEPT_LEN + 1];
      wsb_ws_accept(u.key, accept);
      expect(strlen(accept) == WSB_WS_ACCEPT_LEN, "accept length");
      (void)wsb_proxy_path_allowed("/chat/", u.path);
      check_proxy_request(h, &u, opts);
      check_hash_keys(h, &u, buf, len);
      check_real_client(h);
      wsb_upgrade_request_free(&u);
    }
    return;
  }
  static const char offered_text[] = "chat, superchat";
  struct wsb_slice offered = {offered_text, sizeof(offered_text) - 1};
  struct wsb_upgrade_response r;
  int rc = wsb_handshake_check_response(h, ACCEPT, offered, &r);
  expect(rc == 0 || rc == WSB_EHTTP_STATUS || rc == WSB_EHTTP_UPGRADE || rc == WSB_EHTTP_ACCEPT ||
             rc == WSB_EHTTP_PROTOCOL || rc == WSB_EHTTP_EXTENSION,
         "response verdict");
  if (rc == 0) {
    expect(h->status == 101, "101");
    expect(r.protocol.p == NULL || wsb_slice_eq(r.protocol, "chat") ||
               wsb_slice_eq(r.protocol, "superchat"),
           "chosen protocol was offered");
    check_proxy_response(h, &r, offered);
  }
  rc = wsb_handshake_check_response(h, ACCEPT, (struct wsb_slice){NULL, 0}, &r);
  expect(rc != 0 || r.protocol.p == NULL, "no protocol chosen when none offered");
}

/* The head's length once complete, else the error; the same for every way of feeding it. */
static ssize_t feed_split(struct wsb_http_head *h, bool response, size_t max, const char *buf,
                          size_t len, size_t cut) {
  wsb_http_head_init(h, response, max);
  ssize_t rc = wsb_http_feed(h, buf, cut);
  if (rc != WSB_PARTIAL)
    return rc;
  rc = wsb_http_feed(h, buf + cut, len - cut);
  return rc >= 0 ? (ssize_t)cut + rc : rc;
}

static ssize_t feed_bytewise(struct wsb_http_head *h, bool response, size_t max, const char *buf,
                             size_t len) {
  wsb_http_head_init(h, response, max);
  for (size_t i = 0; i < len; i++) {
    ssize_t rc = wsb_http_feed(h, buf + i, 1);
    if (rc != WSB_PARTIAL)
      return rc >= 0 ? (ssize_t)i + rc : rc;
  }
  return WSB_PARTIAL;
}

static void same_head(const struct wsb_http_head *a, const struct wsb_http_head *b) {
  expect(a->url.p == b->url.p && a->url.len == b->url.len, "same url");
  expect(a->reason.p == b->reason.p && a->reason.len == b->reason.len, "same reason");
  expect(a->status == b->status && a->method == b->method, "same status and method");
  expect(a->http_major == b->http_major && a->http_minor == b->http_minor, "same version");
  expect(a->nheaders == b->nheaders, "same header count");
  for (size_t i = 0; i < a->nheaders; i++) {
    expect(a->headers[i].name.p == b->headers[i].name.p &&
               a->headers[i].name.len == b->headers[i].name.len,
           "same name");
    expect(a->headers[i].value.p == b->headers[i].value.p &&
               a->headers[i].value.len == b->headers[i].value.len,
           "same value");
  }
}

static void run(bool response, size_t max, const char *buf, size_t len, size_t cut, unsigned opts) {
  struct wsb_http_head whole, split, bytes;
  wsb_http_head_init(&whole, response, max);
  ssize_t rc = wsb_http_feed(&whole, buf, len);
  expect(rc == WSB_PARTIAL || rc == WSB_EHTTP || rc == WSB_ETOO_MANY_HEADERS ||
             rc == WSB_EHEAD_TOO_LARGE || (rc > 0 && (size_t)rc <= len && (size_t)rc <= max),
         "verdict in range");
  /* A finished parse keeps its verdict; a partial one would be fed the same bytes again. */
  expect(rc == WSB_PARTIAL || wsb_http_feed(&whole, buf, len) == rc, "verdict repeats");

  ssize_t rc_split = feed_split(&split, response, max, buf, len, cut);
  if (rc_split != rc)
    fail("split verdict differs", rc, rc_split);
  ssize_t rc_bytes = feed_bytewise(&bytes, response, max, buf, len);
  if (rc_bytes != rc)
    fail("bytewise verdict differs", rc, rc_bytes);
  if (rc < 0)
    return;
  check_head(&whole, buf, (size_t)rc);
  same_head(&whole, &split);
  same_head(&whole, &bytes);
  check_handshake(&whole, response, opts, buf, len);
}

/* Pieces of handshake heads; in the "words" mode each input byte picks one. */
static const char *const words[] = {
    "\r\n",
    "\r\n",
    ": ",
    ":",
    " ",
    "\t",
    ",",
    ", ",
    "\n",
    "\r",
    "x",
    "Host",
    "a.example",
    "Upgrade",
    "upgrade",
    "websocket",
    "WebSocket",
    "Connection",
    "keep-alive",
    "close",
    "Sec-WebSocket-Key",
    "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version",
    "13",
    "8",
    "Sec-WebSocket-Accept",
    ACCEPT,
    "Sec-WebSocket-Protocol",
    "chat",
    "superchat",
    "Sec-WebSocket-Extensions",
    "permessage-deflate",
    "Origin",
    "TE",
    "X-Forwarded-For",
    "Content-Length",
    "0",
    "Transfer-Encoding",
    "chunked",
    "GET",
    "/",
    "HTTP/1.1",
    "HTTP/1.0",
    "101",
    "200",
    "\x81\x80",
};
#define N_WORDS (sizeof(words) / sizeof(words[0]))

/* Where the n-th line of t starts (its end when t has fewer lines). */
static size_t line_start(const char *t, size_t tlen, unsigned n) {
  size_t at = 0;
  for (unsigned i = 0; i < n; i++) {
    const char *nl = memchr(t + at, '\n', tlen - at);
    if (nl == NULL)
      break;
    at = (size_t)(nl - t) + 1;
  }
  return at;
}

/*
 * Builds the input in one exact heap allocation: the raw bytes, or a
 * template with the bytes (or the words they pick) spliced in.
 */
static char *build(uint8_t mode, const uint8_t *data, size_t size, size_t *len) {
  bool response = mode & 1;
  const char *t = response ? response_template : request_template;
  size_t tlen = response ? sizeof(response_template) - 1 : sizeof(request_template) - 1;
  unsigned kind = (mode >> 1) & 3, pos = mode >> 3;
  size_t at = 0, insert = size;
  if (kind == 0) {
    t = "";
    tlen = 0;
  } else if (kind == 2) {
    at = (size_t)pos * 7 % (tlen + 1);
  } else {
    at = line_start(t, tlen, pos % 8);
  }
  if (kind == 3) {
    insert = 0;
    for (size_t i = 0; i < size; i++)
      insert += strlen(words[data[i] % N_WORDS]);
  }
  *len = tlen + insert;
  char *buf = malloc(*len ? *len : 1);
  if (buf == NULL)
    return NULL;
  memcpy(buf, t, at);
  if (kind == 3) {
    char *p = buf + at;
    for (size_t i = 0; i < size; i++) {
      const char *w = words[data[i] % N_WORDS];
      memcpy(p, w, strlen(w));
      p += strlen(w);
    }
  } else {
    memcpy(buf + at, data, size);
  }
  memcpy(buf + at + insert, t + at, tlen - at);
  return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  /* Two control bytes: how to build the input, and where to split it (its bits also pick the
     proxy options of check_proxy_request). */
  uint8_t mode = data[0], where = data[1];
  size_t len;
  char *buf = build(mode, data + 2, size - 2, &len);
  if (buf == NULL)
    return 0;
  bool response = mode & 1;
  size_t cut = (size_t)where * 131 % (len + 1);
  /* A roomy limit, and one the head may run into. */
  run(response, 16384, buf, len, cut, where);
  run(response, (size_t)where * 2, buf, len, cut, where);
  free(buf);
  return 0;
}
