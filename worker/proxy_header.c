/* The PROXY protocol on a session: reading the client's header before anything else (TLS
 * included), and writing one towards each backend connection. */
#include "proxy_header.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "proxy_protocol.h"
#include "tls_leg.h"

#define PP_BUF_START 256 /* a v1 line and most v2 headers; one with large TLVs grows it */

int wsb__proxy_header_expect(struct wsb_session *s) {
  struct wsb_handshake *hs = s->hs;
  if (s->w->table->settings.proxy_protocol == WSB_PP_OFF)
    return 0;
  hs->pp_buf = malloc(PP_BUF_START);
  if (hs->pp_buf == NULL)
    return UV_ENOMEM;
  hs->pp_cap = PP_BUF_START;
  hs->pp_wait = true;
  return 0;
}

uv_buf_t wsb__proxy_header_buf(struct wsb_leg *l) {
  struct wsb_handshake *hs = l->s->hs;
  return uv_buf_init((char *)hs->pp_buf + hs->pp_len, (unsigned)(hs->pp_cap - hs->pp_len));
}

static void addr_from(const struct sockaddr_storage *ss, uint8_t *family, uint8_t *addr,
                      uint16_t *port) {
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
    memcpy(addr, &in->sin_addr, 4);
    *port = ntohs(in->sin_port);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    memcpy(addr, &in6->sin6_addr, 16);
    *port = ntohs(in6->sin6_port);
  } else {
    return;
  }
  *family = (uint8_t)ss->ss_family;
}

int wsb__proxy_header_tcp_ends(struct wsb_session *s, bool local) {
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  if (s->peer_family == 0) {
    int rc = uv_tcp_getpeername(&s->client.tcp, (struct sockaddr *)&ss, &len);
    if (rc != 0)
      return rc;
    addr_from(&ss, &s->peer_family, s->peer_addr, &s->peer_port);
  }
  len = sizeof(ss);
  if (local && s->local_family == 0 &&
      uv_tcp_getsockname(&s->client.tcp, (struct sockaddr *)&ss, &len) == 0)
    addr_from(&ss, &s->local_family, s->local_addr, &s->local_port);
  return s->peer_family != 0 ? 0 : UV_EAFNOSUPPORT;
}

/* One line per refused header, whatever the reason, rate-limited with the rejected upgrades
   (log_rate_limit): a peer can cause it at will. */
static void refused(struct wsb_session *s, enum wsb_pp_error why) {
  char peer[INET6_ADDRSTRLEN] = "", id[17];
  wsb_shm_add(&s->w->stats->proxy_protocol_errors[why], 1);
  wsb__session_client_text(s, peer, sizeof(peer));
  snprintf(id, sizeof(id), "%016llx", (unsigned long long)s->id);
  struct wsb_log_field f[] = {wsb_log_str("reason", wsb_pp_error_name(why)),
                              wsb_log_str("client", peer), wsb_log_str("session", id)};
  wsb_worker_log_event(s->w, WSB_LOG_KIND_REJECTED, f, sizeof(f) / sizeof(f[0]),
                       "PROXY protocol header refused");
}

void wsb__proxy_header_timed_out(struct wsb_session *s) {
  refused(s, WSB_PP_ERR_TIMEOUT);
}

/* A bad header: a request that came without one is told why (400), anything else is closed. */
static void refuse(struct wsb_session *s, enum wsb_pp_error why) {
  struct wsb_handshake *hs = s->hs;
  refused(s, why);
  wsb_shm_add(&s->w->stats->handshakes[WSB_HS_BAD_REQUEST], 1);
  s->closed_by = BY_WSBAL;
  char answer[256];
  size_t n = why == WSB_PP_ERR_MISSING && wsb_pp_looks_like_http(hs->pp_buf, hs->pp_len)
                 ? wsb_http_error_response(answer, sizeof(answer), 400, NULL)
                 : 0;
  uv_buf_t b = uv_buf_init(answer, (unsigned)n);
  /* Plain text even on a wss listener: no TLS was ever spoken on this connection. */
  if (n > 0 && wsb__leg_write_raw(&s->client, &b, 1) == 0)
    wsb__session_finish(s);
  else
    wsb__session_close(s, WSB_EPROXY);
}

/* The announced ends replace the connection's; LOCAL and UNKNOWN keep the connection's. */
static void adopt(struct wsb_session *s, const struct wsb_pp_header *h) {
  if (h->local)
    return;
  size_t alen = h->family == AF_INET ? 4 : 16;
  s->peer_family = s->local_family = h->family;
  memcpy(s->peer_addr, h->src, alen);
  memcpy(s->local_addr, h->dst, alen);
  s->peer_port = h->src_port;
  s->local_port = h->dst_port;
}

/* The bytes after the header, delivered as a read of the leg would deliver them. */
static void pass_on(struct wsb_leg *l, const uint8_t *p, size_t len) {
  struct wsb_session *s = l->s;
  if (len == 0)
    return;
  if (l->tls != NULL) {
    wsb__tls_leg_on_read(l, p, len); /* it keeps what it does not consume */
    return;
  }
  while (len > 0 && s->state != S_CLOSED && l->reading) {
    uv_buf_t b;
    wsb__session_read_buf(l, &b);
    size_t n = len < b.len ? len : b.len;
    if (n == 0)
      break;
    memcpy(b.base, p, n);
    wsb__session_dispatch(l, (ssize_t)n, &b);
    p += n;
    len -= n;
  }
}

void wsb__proxy_header_read(struct wsb_leg *l, ssize_t nread) {
  struct wsb_session *s = l->s;
  struct wsb_handshake *hs = s->hs;
  if (nread < 0) {
    if (hs->pp_len > 0)
      refused(s, WSB_PP_ERR_TRUNCATED);
    wsb__session_dispatch(l, nread, NULL);
    return;
  }
  hs->pp_len += (uint16_t)nread;
  struct wsb_pp_header h;
  enum wsb_pp_error why;
  ssize_t rc = wsb_pp_parse(hs->pp_buf, hs->pp_len,
                            (enum wsb_pp_mode)s->w->table->settings.proxy_protocol, &h, &why);
  if (rc == WSB_PARTIAL) {
    /* Only a v2 header with TLVs gets here, and the parser bounds its length. */
    if (hs->pp_len == hs->pp_cap) {
      uint8_t *p = realloc(hs->pp_buf, WSB_PP_MAX);
      if (p == NULL) {
        wsb__session_close(s, UV_ENOMEM);
        return;
      }
      hs->pp_buf = p;
      hs->pp_cap = WSB_PP_MAX;
    }
    return;
  }
  if (rc < 0) {
    refuse(s, why);
    return;
  }
  adopt(s, &h);
  hs->pp_wait = false;
  uint8_t *buf = hs->pp_buf;
  hs->pp_buf = NULL;
  pass_on(l, buf + rc, hs->pp_len - (size_t)rc);
  free(buf);
}

int wsb__proxy_header_send(struct wsb_session *s) {
  int version = (int)wsb__session_pool_settings(s)->send_proxy_protocol;
  if (version == WSB_PP_OFF)
    return 0;
  int rc = wsb__proxy_header_tcp_ends(s, true);
  if (rc != 0)
    return rc;
  /* The real client's port is known only when it is the connection's peer. */
  bool peer_is_client = s->client_family == s->peer_family &&
                        memcmp(s->client_addr, s->peer_addr, sizeof(s->peer_addr)) == 0;
  struct wsb_pp_header h;
  wsb_pp_set_ends(&h, s->client_family, s->client_addr, peer_is_client ? s->peer_port : 0,
                  s->local_family, s->local_addr, s->local_port);
  uint8_t out[WSB_PP_V1_MAX + 1];
  size_t n = wsb_pp_write(out, sizeof(out), version, &h);
  uv_buf_t b = uv_buf_init((char *)out, (unsigned)n);
  return n > 0 ? wsb__leg_write_raw(&s->backend, &b, 1) : WSB_EPROXY;
}
