/* Writing the backend's upgrade request and the client's 101 from the heads the proxy has read. */
#include "proxy.h"

#include <string.h>
#include <strings.h>

#include "cidr.h"
#include "text.h"

static void put_slice(struct wsb_text *o, struct wsb_slice s) {
  wsb_text_put(o, s.p, s.len);
}

static void put_header(struct wsb_text *o, const char *name, struct wsb_slice value) {
  wsb_text_puts(o, name);
  wsb_text_put(o, ": ", 2);
  put_slice(o, value);
  wsb_text_put(o, "\r\n", 2);
}

static void put_raw_header(struct wsb_text *o, const struct wsb_header *hdr) {
  put_slice(o, hdr->name);
  wsb_text_put(o, ": ", 2);
  put_slice(o, hdr->value);
  wsb_text_put(o, "\r\n", 2);
}

/* ":port", the port in decimal. */
static void put_port(struct wsb_text *o, unsigned port) {
  char digits[8];
  size_t i = sizeof(digits);
  do {
    digits[--i] = (char)('0' + port % 10);
    port /= 10;
  } while (port > 0 && i > 1);
  digits[--i] = ':';
  wsb_text_put(o, digits + i, sizeof(digits) - i);
}

static struct wsb_slice cstr(const char *s) {
  return (struct wsb_slice){s, strlen(s)};
}

/* True when the comma list (no spaces: the config loader trimmed them) holds name, any case. */
static bool list_has_name(const char *list, struct wsb_slice name) {
  if (list == NULL || name.len == 0)
    return false;
  for (const char *item = list; *item != '\0';) {
    const char *end = strchr(item, ',');
    size_t len = end ? (size_t)(end - item) : strlen(item);
    if (len == name.len && strncasecmp(item, name.p, len) == 0)
      return true;
    item += len + (end ? 1 : 0);
  }
  return false;
}

/* Headers the proxy writes itself, so the client's copies are never forwarded. */
static bool is_rewritten(struct wsb_slice name) {
  return wsb_slice_eq(name, "Host") || wsb_slice_eq(name, "X-Forwarded-For") ||
         wsb_slice_eq(name, "Sec-WebSocket-Protocol");
}

/* The request wsbal sends has no body (wsb_handshake_check_request() refused one). */
static bool is_about_a_body(struct wsb_slice name) {
  return wsb_slice_eq(name, "Content-Length") || wsb_slice_eq(name, "Expect");
}

/*
 * What proxies in front say about the client: Forwarded (RFC 7239), X-Real-IP and every
 * X-Forwarded-* name. A client can write any of them, so they pass only with trust_forwarded.
 */
static bool is_forwarding(struct wsb_slice name) {
  static const char prefix[] = "X-Forwarded-";
  size_t n = sizeof(prefix) - 1;
  return wsb_slice_eq(name, "Forwarded") || wsb_slice_eq(name, "X-Real-IP") ||
         (name.len > n && wsb_slice_eq((struct wsb_slice){name.p, n}, prefix));
}

ssize_t wsb_proxy_request_write(char *buf, size_t cap, const struct wsb_proxy_request *r) {
  struct wsb_text o;
  wsb_text_init(&o, buf, cap);
  const struct wsb_http_head *h = r->client;

  bool plain = r->method.p != NULL;
  if (plain) {
    put_slice(&o, r->method);
    wsb_text_put(&o, " ", 1);
  } else {
    wsb_text_puts(&o, "GET ");
  }
  wsb_text_puts(&o, r->backend->path);
  struct wsb_slice path = r->upgrade->path;
  if (r->strip > 0 && r->strip <= path.len) {
    /* "/chat?q" without "/chat" is "/?q": the rest is a path again. */
    path.p += r->strip;
    path.len -= r->strip;
    if (path.len == 0 || path.p[0] != '/')
      wsb_text_puts(&o, "/");
  }
  put_slice(&o, path);
  wsb_text_puts(&o, " HTTP/1.1\r\n");

  if (r->preserve_host && r->upgrade->host.len > 0) {
    put_header(&o, "Host", r->upgrade->host);
  } else {
    /* Written piece by piece, not with snprintf: it goes into every request. */
    bool v6 = strchr(r->backend->host, ':') != NULL;
    wsb_text_puts(&o, v6 ? "Host: [" : "Host: ");
    wsb_text_puts(&o, r->backend->host);
    if (v6)
      wsb_text_put(&o, "]", 1);
    if (r->backend->port != (r->backend->tls ? 443 : 80))
      put_port(&o, r->backend->port);
    wsb_text_put(&o, "\r\n", 2);
  }
  if (plain) {
    if (r->body->kind == WSB_BODY_LENGTH)
      wsb_text_printf(&o, "Content-Length: %llu\r\n", (unsigned long long)r->body->left);
    else if (r->body->kind == WSB_BODY_CHUNKED)
      wsb_text_puts(&o, "Transfer-Encoding: chunked\r\n");
  } else {
    wsb_text_puts(&o, "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n");
    put_header(&o, "Sec-WebSocket-Key", cstr(r->key));
  }
  /* One line with the list wsbal checks the backend's choice against, however many came. */
  if (r->upgrade->protocols.p != NULL)
    put_header(&o, "Sec-WebSocket-Protocol", r->upgrade->protocols);

  bool client_proto = false, client_host = false;
  for (size_t i = 0; i < h->nheaders; i++) {
    const struct wsb_header *hdr = &h->headers[i];
    if (wsb_http_is_hop_by_hop(h, hdr) || wsb_handshake_header_is_own(hdr->name) ||
        is_rewritten(hdr->name) || is_about_a_body(hdr->name) ||
        (is_forwarding(hdr->name) && !r->trust_forwarded) ||
        list_has_name(r->block_headers, hdr->name) ||
        (r->reconnect_header != NULL && wsb_slice_eq(hdr->name, r->reconnect_header)))
      continue;
    client_proto |= wsb_slice_eq(hdr->name, "X-Forwarded-Proto");
    client_host |= wsb_slice_eq(hdr->name, "X-Forwarded-Host");
    put_raw_header(&o, hdr);
  }

  /* X-Forwarded-For: the client's own chain, combined, only when the operator trusts what is in
     front; empty lines add no empty element. */
  wsb_text_puts(&o, "X-Forwarded-For: ");
  for (const struct wsb_header *xff = r->trust_forwarded ? wsb_http_find(h, "X-Forwarded-For", NULL)
                                                         : NULL;
       xff != NULL; xff = wsb_http_find(h, "X-Forwarded-For", xff)) {
    if (xff->value.len == 0)
      continue;
    put_slice(&o, xff->value);
    wsb_text_put(&o, ", ", 2);
  }
  wsb_text_puts(&o, r->client_ip);
  wsb_text_put(&o, "\r\n", 2);
  /* A trusted front that terminated TLS or saw the public name knows better than wsbal. */
  if (!client_proto)
    wsb_text_puts(&o,
                  r->client_tls ? "X-Forwarded-Proto: https\r\n" : "X-Forwarded-Proto: http\r\n");
  if (!client_host && r->upgrade->host.len > 0)
    put_header(&o, "X-Forwarded-Host", r->upgrade->host);
  if (r->reconnect_value != NULL && r->reconnect_header != NULL)
    put_header(&o, r->reconnect_header, cstr(r->reconnect_value));
  wsb_text_put(&o, "\r\n", 2);
  return wsb_text_length(&o);
}

ssize_t wsb_proxy_response_write(char *buf, size_t cap, struct wsb_slice client_key,
                                 const struct wsb_http_head *backend,
                                 const struct wsb_upgrade_response *chosen,
                                 const char *pass_headers) {
  struct wsb_text o;
  wsb_text_init(&o, buf, cap);
  char accept[WSB_WS_ACCEPT_LEN + 1];
  wsb_ws_accept(client_key, accept);
  wsb_text_puts(
      &o, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
  put_header(&o, "Sec-WebSocket-Accept", cstr(accept));
  if (chosen->protocol.p != NULL)
    put_header(&o, "Sec-WebSocket-Protocol", chosen->protocol);
  for (size_t i = 0; i < backend->nheaders; i++) {
    const struct wsb_header *hdr = &backend->headers[i];
    if (list_has_name(pass_headers, hdr->name) && !wsb_http_is_hop_by_hop(backend, hdr) &&
        !wsb_handshake_header_is_own(hdr->name) &&
        !wsb_slice_eq(hdr->name, "Sec-WebSocket-Protocol"))
      put_raw_header(&o, hdr);
  }
  wsb_text_put(&o, "\r\n", 2);
  return wsb_text_length(&o);
}

bool wsb_proxy_path_allowed(const char *prefix, struct wsb_slice path) {
  size_t n = prefix != NULL ? strlen(prefix) : 0;
  /* A prefix ending in '/' already marks the boundary itself. */
  while (n > 0 && prefix[n - 1] == '/')
    n--;
  if (n == 0)
    return true;
  if (path.len < n || memcmp(path.p, prefix, n) != 0)
    return false;
  return path.len == n || path.p[n] == '/' || path.p[n] == '?';
}

bool wsb_proxy_origin_allowed(const char *allowed, struct wsb_slice origin) {
  if (allowed == NULL || allowed[0] == '\0')
    return true;
  return list_has_name(allowed, origin);
}

/*
 * nginx's real_ip_recursive over the X-Forwarded-For elements followed by the peer: the real
 * client is the rightmost address not trusted. One pass left to right finds it without holding
 * the list: the last untrusted element seen so far is the candidate, and an element that is not
 * an address to the right of it means the chain cannot be followed that far.
 */
void wsb_proxy_real_client(const struct wsb_http_head *h, const struct wsb_cidr_set *trusted,
                           int peer_family, const uint8_t *peer, uint8_t *family, uint8_t *addr) {
  uint8_t cand_family = 0, cand[16] = {0}, first_family = 0, first[16] = {0};
  bool garbage = false;
  *family = (uint8_t)peer_family;
  memcpy(addr, peer, 16);
  if (!wsb_cidr_set_has(trusted, peer_family, peer))
    return; /* an untrusted peer's word about others counts for nothing */
  for (const struct wsb_header *xff = wsb_http_find(h, "X-Forwarded-For", NULL); xff != NULL;
       xff = wsb_http_find(h, "X-Forwarded-For", xff)) {
    struct wsb_slice rest = xff->value;
    while (rest.len > 0) {
      struct wsb_slice item = wsb_slice_trim(wsb_slice_next_item(&rest, ','));
      if (item.len == 0)
        continue; /* empty elements are skipped, as the forwarded list skips them */
      uint8_t f, a[16];
      if (!wsb_ip_parse(item.p, item.len, &f, a)) {
        garbage = true;
        continue;
      }
      if (first_family == 0) {
        first_family = f;
        memcpy(first, a, 16);
      }
      if (!wsb_cidr_set_has(trusted, f, a)) {
        cand_family = f;
        memcpy(cand, a, 16);
        garbage = false;
      }
    }
  }
  if (garbage)
    return;
  if (cand_family != 0) {
    *family = cand_family;
    memcpy(addr, cand, 16);
  } else if (first_family != 0) {
    *family = first_family; /* every hop trusted: the leftmost is the client */
    memcpy(addr, first, 16);
  }
}
