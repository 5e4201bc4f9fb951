/* TLS contexts built from PEM files: the listeners' (SNI, ALPN, ciphers) and the backends'
 * (verification). */
#ifndef WSB_TLS_CONTEXT_H
#define WSB_TLS_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

/*
 * The context of a wss listener: one certificate chain and key per pair, the
 * first the default, another chosen when the client's SNI matches its names.
 * min_version is 12 or 13. Returns NULL with a message in err naming the file.
 * The master calls it to check files before workers load them the same way.
 */
SSL_CTX *wsb_tls_server_ctx(char *const *certs, char *const *keys, size_t n, unsigned min_version,
                            char *err, size_t errlen);

/* Calls fn on every context of a listener's SNI set (the default one and the others). */
void wsb_tls_server_ctx_each(SSL_CTX *ctx, void (*fn)(SSL_CTX *ctx, void *arg), void *arg);

/*
 * The context for wss backends: peer verification against ca_file (NULL: the
 * system store) when verify is on, and an optional client certificate.
 */
SSL_CTX *wsb_tls_client_ctx(bool verify, const char *ca_file, const char *cert, const char *key,
                            char *err, size_t errlen);

/*
 * Prepares one connection to a backend whose URL names host (a name or an IP literal): SNI with
 * the name (never an address, RFC 6066), and when verify is on the certificate must be for that
 * name (SAN DNS) or address (SAN IP); ALPN http/1.1. The workers' backend legs and the master's
 * health checks and load-report polls go through it. Returns 0, or -1 when OpenSSL refuses host.
 */
int wsb_tls_client_prepare(SSL *ssl, const char *host, bool verify);

#endif
