/* Unit tests for common/tls_context.c: file errors named, SNI choosing a certificate, ALPN. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "run_suite.h"
#include "tls_context.h"

#define DIR_TEMPLATE "/tmp/wsbal-tls-unit-XXXXXX"
static char dir[] = DIR_TEMPLATE;

static char *file(const char *name) {
  static char paths[8][256];
  static int next;
  char *p = paths[next++ % 8];
  snprintf(p, 256, "%s/%s", dir, name);
  return p;
}

/* A self-signed P-256 certificate for dns (a SAN) with the given serial, and its key. */
static void make_cert(const char *name, const char *dns, long serial) {
  EVP_PKEY *key = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  ck_assert_ptr_nonnull(key);
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                             (const unsigned char *)dns, -1, -1, 0);
  X509_set_issuer_name(x, X509_get_subject_name(x));
  char san[128];
  snprintf(san, sizeof(san), "DNS:%s", dns);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  ck_assert_int_gt(X509_sign(x, key, EVP_sha256()), 0);
  char path[256];
  snprintf(path, sizeof(path), "%s/%s.pem", dir, name);
  FILE *f = fopen(path, "w");
  PEM_write_X509(f, x);
  fclose(f);
  snprintf(path, sizeof(path), "%s/%s.key", dir, name);
  f = fopen(path, "w");
  PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
  fclose(f);
  X509_free(x);
  EVP_PKEY_free(key);
}

static void setup(void) {
  memcpy(dir, DIR_TEMPLATE, sizeof(DIR_TEMPLATE)); /* mkdtemp fills the template in */
  ck_assert_ptr_nonnull(mkdtemp(dir));
  make_cert("a", "a.test", 1);
  make_cert("b", "b.test", 2);
  FILE *f = fopen(file("junk.pem"), "w");
  fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", f);
  fclose(f);
}

static void teardown(void) {
  const char *names[] = {"a.pem", "a.key", "b.pem", "b.key", "junk.pem"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    unlink(file(names[i]));
  rmdir(dir);
}

static SSL_CTX *server(const char *c1, const char *k1, const char *c2, const char *k2, char *err) {
  char *certs[2] = {strdup(file(c1)), c2 ? strdup(file(c2)) : NULL};
  char *keys[2] = {strdup(file(k1)), k2 ? strdup(file(k2)) : NULL};
  SSL_CTX *ctx = wsb_tls_server_ctx(certs, keys, c2 ? 2 : 1, 12, err, 512);
  for (int i = 0; i < 2; i++) {
    free(certs[i]);
    free(keys[i]);
  }
  return ctx;
}

START_TEST(test_file_errors_are_named) {
  char err[512];
  ck_assert_ptr_null(server("missing.pem", "a.key", NULL, NULL, err));
  ck_assert_ptr_nonnull(strstr(err, "cannot open certificate"));
  ck_assert_ptr_nonnull(strstr(err, "missing.pem: No such file"));
  ck_assert_ptr_null(server("junk.pem", "a.key", NULL, NULL, err));
  ck_assert_ptr_nonnull(strstr(err, "cannot load certificate chain"));
  ck_assert_ptr_nonnull(strstr(err, "junk.pem"));
  ck_assert_ptr_null(server("a.pem", "b.key", NULL, NULL, err));
  ck_assert_msg(strstr(err, "mismatch") != NULL || strstr(err, "does not match") != NULL, "%s",
                err);
  /* The second pair is checked as well as the first. */
  ck_assert_ptr_null(server("a.pem", "a.key", "b.pem", "missing.key", err));
  ck_assert_ptr_nonnull(strstr(err, "cannot open key"));
  ck_assert_ptr_null(wsb_tls_client_ctx(true, file("missing-ca.pem"), NULL, NULL, err, 512));
  ck_assert_ptr_nonnull(strstr(err, "CA file"));
  SSL_CTX *c = wsb_tls_client_ctx(true, file("a.pem"), file("b.pem"), file("b.key"), err, 512);
  ck_assert_ptr_nonnull(c);
  SSL_CTX_free(c);
}
END_TEST

static void count(SSL_CTX *ctx, void *arg) {
  (*(int *)arg)++;
}

/* A whole handshake in memory; returns the serial of the certificate the server chose. */
static long handshake(SSL_CTX *sctx, const char *sni, const char **alpn) {
  SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
  SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
  BIO *cb, *sb;
  ck_assert_int_eq(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
  SSL_set_bio(c, cb, cb);
  SSL_set_bio(s, sb, sb);
  char name[256]; /* the macro casts its name to void *: a copy that is not const */
  if (sni != NULL) {
    snprintf(name, sizeof(name), "%s", sni);
    SSL_set_tlsext_host_name(c, name);
  }
  SSL_set_alpn_protos(c, (const unsigned char *)"\x02h2\x08http/1.1", 12);
  SSL_set_connect_state(c);
  SSL_set_accept_state(s);
  int done = 0;
  for (int i = 0; i < 20 && done != 3; i++) {
    if (!(done & 1) && SSL_do_handshake(c) == 1)
      done |= 1;
    if (!(done & 2) && SSL_do_handshake(s) == 1)
      done |= 2;
  }
  ck_assert_int_eq(done, 3);
  X509 *peer = SSL_get1_peer_certificate(c);
  long serial = ASN1_INTEGER_get(X509_get0_serialNumber(peer));
  const unsigned char *proto;
  unsigned len;
  SSL_get0_alpn_selected(c, &proto, &len);
  *alpn = len == 8 && memcmp(proto, "http/1.1", 8) == 0 ? "http/1.1" : "other";
  X509_free(peer);
  SSL_free(c);
  SSL_free(s);
  SSL_CTX_free(cctx);
  return serial;
}

START_TEST(test_sni_and_alpn) {
  char err[512];
  SSL_CTX *ctx = server("a.pem", "a.key", "b.pem", "b.key", err);
  ck_assert_msg(ctx != NULL, "%s", err);
  int n = 0;
  wsb_tls_server_ctx_each(ctx, count, &n);
  ck_assert_int_eq(n, 2);
  const char *alpn;
  ck_assert_int_eq(handshake(ctx, NULL, &alpn), 1); /* no SNI: the first */
  ck_assert_str_eq(alpn, "http/1.1");
  ck_assert_int_eq(handshake(ctx, "b.test", &alpn), 2);
  ck_assert_int_eq(handshake(ctx, "B.TEST", &alpn), 2); /* names compare without case */
  ck_assert_int_eq(handshake(ctx, "a.test", &alpn), 1);
  ck_assert_int_eq(handshake(ctx, "unknown.test", &alpn), 1);
  SSL_CTX_free(ctx);
}
END_TEST

int main(void) {
  Suite *s = suite_create("tls_context");
  TCase *tc = tcase_create("tls_context");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_file_errors_are_named);
  tcase_add_test(tc, test_sni_and_alpn);
  suite_add_tcase(s, tc);
  return wsb_run_suite(s);
}
