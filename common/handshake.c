/* The WebSocket opening handshake: request and 101 checks, keys and accept values. */
#include "handshake.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "errors.h"
#include "uri_path.h"

/* RFC 6455 1.3: appended to the key before hashing, so only a WebSocket server can answer. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* The single header named name: 0 and *out when there is one, 1 when none, -1 when several. */
static int find_single(const struct wsb_http_head *h, const char *name,
                       const struct wsb_header **out) {
  const struct wsb_header *first = wsb_http_find(h, name, NULL);
  *out = first;
  if (first == NULL)
    return 1;
  return wsb_http_find(h, name, first) == NULL ? 0 : -1;
}

static bool has_prefix_nocase(struct wsb_slice s, const char *prefix) {
  size_t n = strlen(prefix);
  return s.len >= n && wsb_slice_eq((struct wsb_slice){s.p, n}, prefix);
}

/*
 * The path and query of a request target. Origin-form ("/chat?x=1") is used
 * as it is; absolute-form ("ws://host/chat", RFC 9112 3.2.2) is cut after
 * its authority. Anything else (authority-form, "*", an absolute URL without
 * a path) names no resource a WebSocket can live at.
 */
bool wsb_handshake_target_path(struct wsb_slice target, struct wsb_slice *path) {
  if (target.len > 0 && target.p[0] == '/') {
    *path = target;
    return true;
  }
  static const char *const schemes[] = {"http://", "https://", "ws://", "wss://"};
  for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
    size_t skip = strlen(schemes[i]);
    if (!has_prefix_nocase(target, schemes[i]))
      continue;
    for (size_t j = skip; j < target.len; j++) {
      if (target.p[j] == '?' || target.p[j] == '#')
        return false;
      if (target.p[j] == '/') {
        path->p = target.p + j;
        path->len = target.len - j;
        return j > skip;
      }
    }
    return false;
  }
  return false;
}

/* At most one header named name: RFC 9110 5.3 forbids repeating a field that is not a list. */
static bool at_most_once(const struct wsb_http_head *h, const char *name) {
  const struct wsb_header *hdr;
  return find_single(h, name, &hdr) >= 0;
}

/*
 * A WebSocket request has no body (RFC 9110 9.3.1 gives a GET body no meaning), and wsbal reads
 * whatever follows the head as frames. A backend that honoured a Content-Length would read those
 * frames as a body, or wait for it until the connect timeout blamed the backend: only a length
 * of zero is taken, and any Transfer-Encoding is refused.
 */
static bool no_body(const struct wsb_http_head *h) {
  if (wsb_http_find(h, "Transfer-Encoding", NULL) != NULL)
    return false;
  for (const struct wsb_header *cl = wsb_http_find(h, "Content-Length", NULL); cl != NULL;
       cl = wsb_http_find(h, "Content-Length", cl)) {
    if (cl->value.len == 0)
      return false;
    for (size_t i = 0; i < cl->value.len; i++)
      if (cl->value.p[i] != '0')
        return false;
  }
  return true;
}

/* Checks every RFC 6455 4.2.1 requirement except the version's value, which earns 426. */
static bool request_well_formed(const struct wsb_http_head *h, struct wsb_upgrade_request *u) {
  const struct wsb_header *host, *key, *version;
  if (h->method != HTTP_GET || h->http_major != 1 || h->http_minor != 1)
    return false;
  if (!wsb_handshake_target_path(h->url, &u->target) || wsb_uri_path_check(u->target) < 0)
    return false;
  /* RFC 9112 3.2: no Host, several, or an empty one (RFC 6455 4.1 needs a host) is a 400. */
  if (find_single(h, "Host", &host) != 0 || host->value.len == 0)
    return false;
  if (!wsb_http_has_token(h, "Connection", "upgrade"))
    return false;
  /* RFC 6455 11.3.1 and 11.3.5: the key and the version appear once in a request. */
  if (find_single(h, "Sec-WebSocket-Key", &key) != 0 || !wsb_ws_key_valid(key->value))
    return false;
  if (find_single(h, "Sec-WebSocket-Version", &version) != 0)
    return false;
  /* RFC 6454 7.3: one Origin. Two would let allowed_origins judge one and a backend the other. */
  if (!at_most_once(h, "Origin") || !no_body(h))
    return false;
  u->host = host->value;
  u->key = key->value;
  return true;
}

/*
 * Sec-WebSocket-Protocol may be repeated (RFC 6455 11.3.4) and means the one list of all its
 * lines; empty lines add nothing. Sets u->protocols when one line has a list, else returns the
 * bytes the lines need once joined (0 when there is no list at all).
 */
static size_t protocols_single(const struct wsb_http_head *h, struct wsb_upgrade_request *u) {
  size_t need = 0, lines = 0;
  const struct wsb_header *only = NULL;
  for (const struct wsb_header *p = wsb_http_find(h, "Sec-WebSocket-Protocol", NULL); p != NULL;
       p = wsb_http_find(h, "Sec-WebSocket-Protocol", p)) {
    if (p->value.len == 0)
      continue;
    need += (lines++ > 0 ? 2 : 0) + p->value.len;
    only = p;
  }
  if (lines == 1)
    u->protocols = only->value;
  return lines > 1 ? need : 0;
}

/* Joins the lines protocols_single() measured into out, with ", " between them. */
static size_t protocols_join(const struct wsb_http_head *h, char *out) {
  size_t len = 0;
  for (const struct wsb_header *p = wsb_http_find(h, "Sec-WebSocket-Protocol", NULL); p != NULL;
       p = wsb_http_find(h, "Sec-WebSocket-Protocol", p)) {
    if (p->value.len == 0)
      continue;
    if (len > 0) {
      memcpy(out + len, ", ", 2);
      len += 2;
    }
    memcpy(out + len, p->value.p, p->value.len);
    len += p->value.len;
  }
  return len;
}

/* A malformed upgrade gets 400 even when it also names another version: 426 would invite a retry.
 */
int wsb_handshake_check_request(const struct wsb_http_head *h, struct wsb_upgrade_request *u) {
  memset(u, 0, sizeof(*u));
  if (!wsb_http_has_token(h, "Upgrade", "websocket"))
    return 426;
  if (!request_well_formed(h, u))
    return 400;
  const struct wsb_header *version = wsb_http_find(h, "Sec-WebSocket-Version", NULL);
  if (version->value.len != 2 || memcmp(version->value.p, "13", 2) != 0)
    return 426;
  const struct wsb_header *origin = wsb_http_find(h, "Origin", NULL);
  if (origin != NULL)
    u->origin = origin->value;
  /* Copies are made only for a path with dot segments and a repeated protocol header. */
  bool dots = wsb_uri_path_check(u->target) == 1;
  size_t joined = protocols_single(h, u);
  u->path = u->target;
  if (!dots && joined == 0)
    return 0;
  u->store = malloc((dots ? u->target.len : 0) + joined);
  if (u->store == NULL)
    return 500;
  size_t used = 0;
  if (dots) {
    ssize_t n = wsb_uri_path_normalize(u->target, u->store);
    if (n < 0) { /* cannot happen: the same walk accepted it above */
      wsb_upgrade_request_free(u);
      return 400;
    }
    u->path = (struct wsb_slice){u->store, (size_t)n};
    used = (size_t)n;
  }
  if (joined > 0)
    u->protocols = (struct wsb_slice){u->store + used, protocols_join(h, u->store + used)};
  return 0;
}

void wsb_upgrade_request_free(struct wsb_upgrade_request *u) {
  free(u->store);
  u->store = NULL;
}

static bool is_base64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

/*
 * 16 bytes are 128 bits: 21 full characters carry 126 of them and the 22nd
 * the last 2, so its 4 low bits must be zero (A, Q, g or w) for the text to
 * decode to exactly those 16 bytes, and "==" pads the group.
 */
bool wsb_ws_key_valid(struct wsb_slice key) {
  if (key.len != WSB_WS_KEY_LEN)
    return false;
  for (size_t i = 0; i < 21; i++) {
    if (!is_base64_char(key.p[i]))
      return false;
  }
  return strchr("AQgw", key.p[21]) != NULL && key.p[21] != '\0' && key.p[22] == '=' &&
         key.p[23] == '=';
}

/* An OpenSSL failure (out of memory) leaves the empty string, which no answer matches. */
void wsb_ws_accept(struct wsb_slice key, char out[WSB_WS_ACCEPT_LEN + 1]) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  out[0] = '\0';
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (ctx == NULL)
    return;
  bool ok = EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
            EVP_DigestUpdate(ctx, key.p, key.len) == 1 &&
            EVP_DigestUpdate(ctx, ws_guid, sizeof(ws_guid) - 1) == 1 &&
            EVP_DigestFinal_ex(ctx, digest, &digest_len) == 1 && digest_len == 20;
  EVP_MD_CTX_free(ctx);
  if (ok)
    EVP_EncodeBlock((unsigned char *)out, digest, 20);
}

void wsb_ws_key_encode(const uint8_t nonce[WSB_WS_NONCE_LEN], char out[WSB_WS_KEY_LEN + 1]) {
  EVP_EncodeBlock((unsigned char *)out, nonce, WSB_WS_NONCE_LEN);
}

int wsb_ws_key_generate(char out[WSB_WS_KEY_LEN + 1]) {
  unsigned char nonce[WSB_WS_NONCE_LEN];
  out[0] = '\0';
  if (RAND_bytes(nonce, sizeof(nonce)) != 1)
    return -EIO;
  wsb_ws_key_encode(nonce, out);
  return 0;
}

bool wsb_handshake_header_is_own(struct wsb_slice name) {
  return wsb_slice_eq(name, "Sec-WebSocket-Key") || wsb_slice_eq(name, "Sec-WebSocket-Accept") ||
         wsb_slice_eq(name, "Sec-WebSocket-Version") ||
         wsb_slice_eq(name, "Sec-WebSocket-Extensions");
}

/* RFC 6455 4.1: the answer picks at most one of the offered subprotocols, as a single token. */
static int check_protocol(const struct wsb_http_head *h, struct wsb_slice offered,
                          struct wsb_upgrade_response *r) {
  const struct wsb_header *proto;
  int found = find_single(h, "Sec-WebSocket-Protocol", &proto);
  if (found == 1)
    return 0;
  if (found < 0 || offered.p == NULL || proto->value.len == 0)
    return WSB_EHTTP_PROTOCOL;
  if (memchr(proto->value.p, ',', proto->value.len) != NULL)
    return WSB_EHTTP_PROTOCOL;
  /* The list lookup takes a C string; no sane subprotocol name comes near this size. */
  char token[256];
  if (proto->value.len >= sizeof(token))
    return WSB_EHTTP_PROTOCOL;
  memcpy(token, proto->value.p, proto->value.len);
  token[proto->value.len] = '\0';
  if (strlen(token) != proto->value.len || !wsb_token_list_has(offered, token))
    return WSB_EHTTP_PROTOCOL;
  r->protocol = proto->value;
  return 0;
}

int wsb_handshake_check_response(const struct wsb_http_head *h, const char *expected_accept,
                                 struct wsb_slice offered_protocols,
                                 struct wsb_upgrade_response *r) {
  memset(r, 0, sizeof(*r));
  if (h->status != 101)
    return WSB_EHTTP_STATUS;
  if (!wsb_http_has_token(h, "Upgrade", "websocket") ||
      !wsb_http_has_token(h, "Connection", "upgrade"))
    return WSB_EHTTP_UPGRADE;
  const struct wsb_header *accept;
  size_t expected_len = strlen(expected_accept);
  if (find_single(h, "Sec-WebSocket-Accept", &accept) != 0 || expected_len == 0 ||
      accept->value.len != expected_len ||
      memcmp(accept->value.p, expected_accept, expected_len) != 0)
    return WSB_EHTTP_ACCEPT;
  /* wsbal offers no extension, so the header at all, even empty, breaks RFC 6455 4.1. */
  if (wsb_http_find(h, "Sec-WebSocket-Extensions", NULL) != NULL)
    return WSB_EHTTP_EXTENSION;
  return check_protocol(h, offered_protocols, r);
}
