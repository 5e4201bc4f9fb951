/* What tls_leg.c and tls_worker.c share: the worker's TLS state and a leg's. */
#ifndef WSB_TLS_INTERNAL_H
#define WSB_TLS_INTERNAL_H

#include <openssl/ssl.h>

#include "buffer.h"
#include "tls_leg.h"
#include "worker.h"

/* The last session of each backend slot, so a reconnect (a failover) resumes instead. */
struct tls_resume {
  SSL_SESSION *session;
  uint16_t port;
  char host[WSB_HOST_MAX];
};

struct wsb_tls_leg {
  SSL *ssl;
  struct wsb_leg *leg;
  const uint8_t *in; /* ciphertext being fed to OpenSSL, during one call */
  size_t in_len;
  uint8_t *saved; /* ciphertext not read yet when the leg paused (NULL while idle) */
  size_t saved_len;
  struct wsb_buf early; /* plaintext written before the handshake ended */
  struct wsb_list_node drain_link;
  bool draining; /* on the worker's drain list */
  bool done;     /* handshake complete */
  bool heard;    /* some ciphertext came: a connection closed before is not logged */
  bool failed;
};

struct wsb_tls_worker {
  SSL_CTX *server; /* NULL: plain listeners, or certificates that failed to load */
  /* Per pool slot (its tls_verify, CA file and client certificate), made when a wss backend
     of the pool is first needed, for the pool named client_pool. */
  SSL_CTX *client[WSB_SHM_MAX_POOLS];
  char client_pool[WSB_SHM_MAX_POOLS][WSB_SECTION_NAME_MAX];
  bool listens_tls;
  uint64_t serial;
  BIO_METHOD *bio_method;
  uint8_t *out; /* ciphertext OpenSSL produced, written out after each call */
  size_t out_len;
  size_t out_cap;
  uv_idle_t drain;            /* passes on what paused legs hold once they read again */
  struct wsb_list drain_list; /* the legs draining (drain_link) */
  struct tls_resume resume[WSB_SHM_MAX_BACKENDS];
  uint8_t cipher_in[WSB_READ_BUFFER_SIZE];
};

#endif
