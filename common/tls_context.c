/* TLS contexts built from PEM files: the listeners' (SNI, ALPN, ciphers) and the backends'
 * (verification). */
#include "tls_context.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

/* TLS 1.2 suites with forward secrecy and AEAD only, strongest first (TLS 1.3 suites are all fine).
 */
#define TLS12_CIPHERS                                                                        \
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:" \
  "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define SESSION_CONTEXT "wsbal"

/* The other certificates of a listener, hung on its default context and freed with it. */
struct sni_set {
  size_t n;
  SSL_CTX *ctx[];
};

/* OpenSSL's ex_data index for sni_set: allocated once per process, never changes after. */
static int sni_index = -1;

static void free_sni_set(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                         void *argp) {
  struct sni_set *set = ptr;
  if (set == NULL)
    return;
  for (size_t i = 1; i < set->n; i++)
    SSL_CTX_free(set->ctx[i]);
  free(set);
}

static void openssl_reason(char *err, size_t errlen, const char *what, const char *path) {
  unsigned long e = ERR_peek_last_error();
  const char *why = e != 0 ? ERR_reason_error_string(e) : NULL;
  snprintf(err, errlen, "%s %s: %s", what, path, why != NULL ? why : "rejected by OpenSSL");
  ERR_clear_error();
}

/* fopen first: "No such file or directory" says more than OpenSSL's "system lib". */
static bool readable(const char *path, const char *what, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    snprintf(err, errlen, "cannot open %s %s: %s", what, path, strerror(errno));
    return false;
  }
  fclose(f);
  return true;
}

static int load_pair(SSL_CTX *ctx, const char *cert, const char *key, char *err, size_t errlen) {
  if (!readable(cert, "certificate", err, errlen) || !readable(key, "key", err, errlen))
    return -1;
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
    openssl_reason(err, errlen, "cannot load certificate chain", cert);
    return -1;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
    openssl_reason(err, errlen, "cannot load private key", key);
    return -1;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    snprintf(err, errlen, "private key %s does not match certificate %s", key, cert);
    return -1;
  }
  return 0;
}

/* ALPN: http/1.1 is all wsbal speaks; a client offering only others goes on without ALPN. */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg) {
  static const unsigned char ours[] = "\x08http/1.1";
  unsigned char *chosen;
  if (SSL_select_next_proto(&chosen, outlen, ours, sizeof(ours) - 1, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

/* SNI: the first certificate whose names match; the default one when none does. */
static int on_servername(SSL *ssl, int *alert, void *arg) {
  struct sni_set *set = arg;
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == NULL)
    return SSL_TLSEXT_ERR_NOACK;
  for (size_t i = 0; i < set->n; i++) {
    X509 *x = SSL_CTX_get0_certificate(set->ctx[i]);
    if (x != NULL && X509_check_host(x, name, 0, 0, NULL) == 1) {
      if (i > 0)
        SSL_set_SSL_CTX(ssl, set->ctx[i]);
      return SSL_TLSEXT_ERR_OK;
    }
  }
  return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *server_one(const char *cert, const char *key, unsigned min_version, char *err,
                           size_t errlen) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL) {
    openssl_reason(err, errlen, "cannot create a TLS context for", cert);
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS);
  /* Idle sessions give their record buffers back (DESIGN.md: memory per idle session). */
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  /* A per-process cache would miss whenever another worker accepts: tickets only. */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 1);
  SSL_CTX_set_session_id_context(ctx, (const unsigned char *)SESSION_CONTEXT,
                                 sizeof(SESSION_CONTEXT) - 1);
  SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
  if (load_pair(ctx, cert, key, err, errlen) != 0) {
    SSL_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

SSL_CTX *wsb_tls_server_ctx(char *const *certs, char *const *keys, size_t n, unsigned min_version,
                            char *err, size_t errlen) {
  if (n == 0) {
    snprintf(err, errlen, "no certificate");
    return NULL;
  }
  if (sni_index < 0 &&
      (sni_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_sni_set)) < 0) {
    snprintf(err, errlen, "OpenSSL has no room for SNI data");
    return NULL;
  }
  struct sni_set *set = calloc(1, sizeof(*set) + n * sizeof(SSL_CTX *));
  if (set == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    set->ctx[i] = server_one(certs[i], keys[i], min_version, err, errlen);
    if (set->ctx[i] == NULL) {
      for (size_t j = 0; j < i; j++)
        SSL_CTX_free(set->ctx[j]);
      free(set);
      return NULL;
    }
    set->n = i + 1;
  }
  SSL_CTX *ctx = set->ctx[0];
  SSL_CTX_set_ex_data(ctx, sni_index, set); /* freed with ctx: contexts in use outlive a reload */
  if (n > 1) {
    SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
    SSL_CTX_set_tlsext_servername_arg(ctx, set);
  }
  return ctx;
}

void wsb_tls_server_ctx_each(SSL_CTX *ctx, void (*fn)(SSL_CTX *ctx, void *arg), void *arg) {
  struct sni_set *set = sni_index >= 0 ? SSL_CTX_get_ex_data(ctx, sni_index) : NULL;
  if (set == NULL) {
    fn(ctx, arg);
    return;
  }
  for (size_t i = 0; i < set->n; i++)
    fn(set->ctx[i], arg);
}

SSL_CTX *wsb_tls_client_ctx(bool verify, const char *ca_file, const char *cert, const char *key,
                            char *err, size_t errlen) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == NULL) {
    openssl_reason(err, errlen, "cannot create a TLS context for", "backends");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  /* Sessions are kept per backend by the worker (its new-session callback), not in ctx. */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  if (ca_file != NULL) {
    if (!readable(ca_file, "CA file", err, errlen))
      goto fail;
    if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
      openssl_reason(err, errlen, "cannot load CA file", ca_file);
      goto fail;
    }
  } else if (verify && SSL_CTX_set_default_verify_paths(ctx) != 1) {
    openssl_reason(err, errlen, "cannot load", "the system CA store");
    goto fail;
  }
  SSL_CTX_set_verify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
  if (cert != NULL && key != NULL && load_pair(ctx, cert, key, err, errlen) != 0)
    goto fail;
  return ctx;
fail:
  SSL_CTX_free(ctx);
  return NULL;
}

static bool is_ip_literal(const char *host) {
  unsigned char addr[16];
  return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

int wsb_tls_client_prepare(SSL *ssl, const char *host, bool verify) {
  bool ip = is_ip_literal(host);
  /* SSL_set_tlsext_host_name's macro casts the name to void * (OpenSSL copies it): spelled out
     through uintptr_t, so that clang's -Wcast-qual has nothing to say. */
  if (!ip && SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                      (void *)(uintptr_t)host) != 1)
    return -1;
  if (verify) {
    int ok =
        ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) : SSL_set1_host(ssl, host);
    if (ok != 1)
      return -1;
  }
  static const unsigned char alpn[] = "\x08http/1.1";
  /* 0 is success for this one */
  return SSL_set_alpn_protos(ssl, alpn, sizeof(alpn) - 1) == 0 ? 0 : -1;
}
