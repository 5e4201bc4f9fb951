/* wsbal-load over wss://: OpenSSL with memory BIOs between the socket and the frame code. */
#include "load.h"

#include <string.h>

#include <openssl/err.h>

#include "tls_context.h"

/*
 * A benchmark against a proxy on loopback: the server's certificate is not
 * verified (the proxies under test use a throwaway one) and every connection
 * makes a full handshake, so connect mode measures handshakes at their cost.
 */
int wsb_load_tls_init(struct wsb_load_ctx *ctx) {
  ctx->ssl_ctx = SSL_CTX_new(TLS_client_method());
  if (ctx->ssl_ctx == NULL)
    return -1;
  SSL_CTX_set_min_proto_version(ctx->ssl_ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx->ssl_ctx, SSL_VERIFY_NONE, NULL);
  SSL_CTX_set_session_cache_mode(ctx->ssl_ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx->ssl_ctx, SSL_OP_NO_TICKET);
  static const unsigned char alpn[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(ctx->ssl_ctx, alpn, sizeof(alpn) - 1);
  return 0;
}

void wsb_load_tls_free_ctx(struct wsb_load_ctx *ctx) {
  SSL_CTX_free(ctx->ssl_ctx);
  ctx->ssl_ctx = NULL;
}

void wsb_load_tls_free(struct wsb_load_conn *c) {
  SSL_free(c->ssl); /* frees both BIOs */
  c->ssl = NULL;
  c->tls_done = false;
}

int wsb_load_tls_start(struct wsb_load_conn *c) {
  struct wsb_load_ctx *ctx = c->ctx;
  c->ssl = SSL_new(ctx->ssl_ctx);
  BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
  if (c->ssl == NULL || in == NULL || out == NULL) {
    BIO_free(in);
    BIO_free(out);
    return -1;
  }
  SSL_set_bio(c->ssl, in, out);
  /* SNI unless the host is an address, ALPN http/1.1, no verification: as a worker's backend
     leg with tls_verify off. */
  if (wsb_tls_client_prepare(c->ssl, ctx->o.url.host, false) != 0) {
    ERR_clear_error();
    return -1;
  }
  SSL_set_connect_state(c->ssl);
  int rc = SSL_do_handshake(c->ssl);
  if (rc != 1 && SSL_get_error(c->ssl, rc) != SSL_ERROR_WANT_READ) {
    ERR_clear_error();
    return -1;
  }
  return 0;
}

int wsb_load_tls_encrypt(struct wsb_load_conn *c) {
  if (!c->tls_done || c->fill_len == 0)
    return 0;
  if (SSL_write(c->ssl, c->fill, (int)c->fill_len) <= 0) {
    ERR_clear_error();
    return -1;
  }
  c->fill_len = 0;
  return 0;
}

size_t wsb_load_tls_take(struct wsb_load_conn *c, uint8_t *out, size_t cap) {
  int n = BIO_read(SSL_get_wbio(c->ssl), out, (int)cap);
  return n > 0 ? (size_t)n : 0;
}

int wsb_load_tls_read(struct wsb_load_conn *c, const uint8_t *data, size_t n,
                      void (*plain)(struct wsb_load_conn *c, const uint8_t *p, size_t n)) {
  if (BIO_write(SSL_get_rbio(c->ssl), data, (int)n) != (int)n)
    return -1;
  if (!c->tls_done) {
    int rc = SSL_do_handshake(c->ssl);
    if (rc != 1) {
      if (SSL_get_error(c->ssl, rc) == SSL_ERROR_WANT_READ)
        return 0;
      ERR_clear_error();
      return -1;
    }
    c->tls_done = true;
  }
  uint8_t *buf = c->ctx->plain;
  for (;;) {
    int rc = SSL_read(c->ssl, buf, (int)sizeof(c->ctx->plain));
    if (rc > 0) {
      plain(c, buf, (size_t)rc);
      if (c->ssl == NULL || c->state == C_SHUT || c->state == C_IDLE)
        return 0;
      continue;
    }
    int err = SSL_get_error(c->ssl, rc);
    if (err == SSL_ERROR_WANT_READ)
      return 0;
    ERR_clear_error();
    return err == SSL_ERROR_ZERO_RETURN ? 1 : -1;
  }
}
