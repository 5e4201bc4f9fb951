/* A worker's TLS state: contexts reloaded by serial, shared ticket keys, backend sessions, the BIO.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "http_pool.h"
#include "log.h"
#include "session.h"
#include "tls_context.h"
#include "tls_internal.h"
#include "tls_tickets.h"
#include "tls_worker.h"

#define MAX_PAIRS 64

/*
 * Session tickets with the master's keys, read from the segment at each ticket (the same in
 * every worker, so a resumed session works whichever worker accepts it, and every worker
 * rotates at once): AES-256-CBC and HMAC-SHA256, as OpenSSL's own tickets. New tickets use the
 * current key; one under the previous key resumes and is replaced; any other name means a full
 * handshake.
 */
static int on_ticket_key(SSL *ssl, unsigned char name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
                         EVP_CIPHER_CTX *cipher, EVP_MAC_CTX *mac, int enc) {
  struct wsb_leg *l = SSL_get_app_data(ssl);
  struct wsb_ticket_keys keys;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                         OSSL_PARAM_construct_end()};
  int rc = 0; /* no ticket made, or a full handshake */
  if (wsb_shm_tickets_get(l->s->w->shm, &keys)) {
    const uint8_t *key = keys.current;
    enum wsb_ticket_match m = WSB_TICKET_CURRENT;
    if (enc) {
      memcpy(name, key, WSB_TICKET_NAME_LEN);
      rc = RAND_bytes(iv, 16) == 1 &&
                   EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), NULL, key + 16, iv) == 1 &&
                   EVP_MAC_init(mac, key + 48, 32, params) == 1
               ? 1
               : -1;
    } else if ((m = wsb_ticket_keys_find(&keys, name, &key)) != WSB_TICKET_UNKNOWN) {
      rc = EVP_MAC_init(mac, key + 48, 32, params) == 1 &&
                   EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), NULL, key + 16, iv) == 1
               ? (m == WSB_TICKET_PREVIOUS ? 2 : 1)
               : -1;
    }
  }
  OPENSSL_cleanse(&keys, sizeof(keys));
  return rc;
}

static void set_ticket_cb(SSL_CTX *ctx, void *arg) {
  SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket_key);
}

/* A backend's new session (TLS 1.3 sends it after the handshake): kept for its slot. */
static int on_new_session(SSL *ssl, SSL_SESSION *session) {
  struct wsb_leg *l = SSL_get_app_data(ssl);
  struct wsb_session *s = l->s;
  if (!wsb__slot_valid(s->backend_slot))
    return 0;
  struct tls_resume *r = &s->w->tls->resume[s->backend_slot];
  const struct wsb_url *url = &s->w->table->backends[s->backend_slot].url;
  SSL_SESSION_free(r->session);
  r->session = session;
  r->port = url->port;
  snprintf(r->host, sizeof(r->host), "%s", url->host);
  return 1; /* the reference is ours */
}

/* Splits a comma list in place into at most max items. */
static size_t split(char *list, char **items, size_t max) {
  size_t n = 0;
  for (char *save = NULL, *p = strtok_r(list, ",", &save); p != NULL && n < max;
       p = strtok_r(NULL, ",", &save))
    items[n++] = p;
  return n;
}

static void load(struct wsb_worker *w) {
  struct wsb_tls_worker *t = w->tls;
  const struct wsb_shm_settings *cfg = &w->table->settings;
  t->serial = cfg->tls_serial;
  t->listens_tls = cfg->tls_cert[0] != '\0';
  /* The backends' context is made again on first use, with the new files; sessions made
     under the old settings (perhaps without verification) are not resumed under the new. */
  for (size_t i = 0; i < WSB_SHM_MAX_POOLS; i++) {
    SSL_CTX_free(t->client[i]);
    t->client[i] = NULL;
  }
  for (size_t i = 0; i < WSB_SHM_MAX_BACKENDS; i++) {
    SSL_SESSION_free(t->resume[i].session);
    t->resume[i].session = NULL;
  }
  if (!t->listens_tls) {
    SSL_CTX_free(t->server);
    t->server = NULL;
    return;
  }
  char certs[WSB_SHM_LIST_MAX], keys[WSB_SHM_LIST_MAX], err[1024];
  char *cert_items[MAX_PAIRS], *key_items[MAX_PAIRS];
  memcpy(certs, cfg->tls_cert, sizeof(certs));
  memcpy(keys, cfg->tls_key, sizeof(keys));
  size_t n = split(certs, cert_items, MAX_PAIRS);
  size_t nk = split(keys, key_items, MAX_PAIRS);
  SSL_CTX *ctx =
      n == nk ? wsb_tls_server_ctx(cert_items, key_items, n, cfg->tls_min_version, err, sizeof(err))
              : NULL;
  if (ctx == NULL) {
    /* The master loaded the same files a moment ago; keep serving what we have. */
    wsb_log_error("TLS certificates not loaded: %s%s", n == nk ? err : "unpaired lists",
                  t->server != NULL ? " (the previous ones stay)" : "");
    return;
  }
  wsb_tls_server_ctx_each(ctx, set_ticket_cb, NULL);
  SSL_CTX_free(t->server); /* sessions using it keep their own reference */
  t->server = ctx;
}

SSL_CTX *wsb__tls_worker_client_ctx(struct wsb_worker *w, uint32_t pool) {
  struct wsb_tls_worker *t = w->tls;
  if (pool >= WSB_SHM_MAX_POOLS)
    pool = WSB_SHM_DEFAULT_POOL;
  const char *name = w->table->pools[pool].name;
  /* The admin API may give a removed pool's slot to another pool between reloads. */
  if (t->client[pool] != NULL && strcmp(t->client_pool[pool], name) == 0)
    return t->client[pool];
  SSL_CTX_free(t->client[pool]); /* connections made with it keep their own reference */
  char err[1024];
  t->client[pool] = wsb_shm_tls_client_ctx(wsb_shm_pool_settings(w->table, pool), err, sizeof(err));
  if (t->client[pool] == NULL) {
    wsb_log_error("TLS to backends of pool %s: %s", name, err);
    return NULL;
  }
  snprintf(t->client_pool[pool], sizeof(t->client_pool[pool]), "%s", name);
  SSL_CTX_sess_set_new_cb(t->client[pool], on_new_session);
  return t->client[pool];
}

static void on_drain(uv_idle_t *h) {
  struct wsb_worker *w = h->data;
  struct wsb_tls_worker *t = w->tls;
  /* As many as wait now: a leg added meanwhile may wait for the next turn of the loop. */
  size_t n = 0;
  struct wsb_tls_leg *tl;
  WSB_LIST_EACH (tl, &t->drain_list, drain_link)
    n++;
  while (n-- > 0 && !wsb_list_empty(&t->drain_list)) {
    tl = WSB_LIST_FIRST(&t->drain_list, struct wsb_tls_leg, drain_link);
    wsb__tls_worker_drain_remove(w, tl);
    wsb__tls_leg_on_read(tl->leg, NULL, 0);
  }
  if (wsb_list_empty(&t->drain_list))
    uv_idle_stop(&t->drain);
}

void wsb__tls_worker_drain_add(struct wsb_worker *w, struct wsb_tls_leg *tl) {
  struct wsb_tls_worker *t = w->tls;
  if (tl->draining)
    return;
  tl->draining = true;
  wsb_list_insert_head(&t->drain_list, &tl->drain_link);
  if (!w->closing)
    uv_idle_start(&t->drain, on_drain);
}

void wsb__tls_worker_drain_remove(struct wsb_worker *w, struct wsb_tls_leg *tl) {
  struct wsb_tls_worker *t = w->tls;
  if (!tl->draining)
    return;
  wsb_list_remove(&t->drain_list, &tl->drain_link);
  tl->draining = false;
}

/* Our BIO: reads come from the ciphertext being fed, writes go to the worker's out buffer. */
static int bio_write(BIO *b, const char *data, int len) {
  struct wsb_tls_leg *tl = BIO_get_data(b);
  struct wsb_tls_worker *t = tl->leg->s->w->tls;
  BIO_clear_retry_flags(b);
  size_t need = t->out_len + (size_t)len;
  if (need > t->out_cap) {
    size_t cap = t->out_cap ? t->out_cap : 16384;
    while (cap < need)
      cap *= 2;
    uint8_t *p = realloc(t->out, cap);
    if (p == NULL)
      return -1;
    t->out = p;
    t->out_cap = cap;
  }
  memcpy(t->out + t->out_len, data, (size_t)len);
  t->out_len = need;
  return len;
}

static int bio_read(BIO *b, char *out, int len) {
  struct wsb_tls_leg *tl = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (tl->in_len == 0) {
    BIO_set_retry_read(b);
    return -1;
  }
  size_t n = tl->in_len < (size_t)len ? tl->in_len : (size_t)len;
  memcpy(out, tl->in, n);
  tl->in += n;
  tl->in_len -= n;
  return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

bool wsb_tls_worker_listens_tls(const struct wsb_worker *w) {
  return w->tls->listens_tls;
}

int wsb_tls_worker_start(struct wsb_worker *w) {
  struct wsb_tls_worker *t = calloc(1, sizeof(*t));
  if (t == NULL)
    return UV_ENOMEM;
  w->tls = t;
  uv_idle_init(&w->loop, &t->drain);
  t->drain.data = w;
  t->bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "wsbal leg");
  if (t->bio_method == NULL || BIO_meth_set_write(t->bio_method, bio_write) != 1 ||
      BIO_meth_set_read(t->bio_method, bio_read) != 1 ||
      BIO_meth_set_ctrl(t->bio_method, bio_ctrl) != 1 ||
      BIO_meth_set_create(t->bio_method, bio_create) != 1)
    return UV_ENOMEM;
  load(w);
  return 0;
}

void wsb_tls_worker_refresh(struct wsb_worker *w) {
  if (w->tls != NULL && w->tls->serial != w->table->settings.tls_serial) {
    load(w);
    wsb_http_pool_drop_tls(w);
    wsb_log_info("TLS certificates loaded again (reload %llu)", (unsigned long long)w->tls->serial);
  }
}

void wsb_tls_worker_close(struct wsb_worker *w) {
  if (w->tls != NULL)
    uv_close((uv_handle_t *)&w->tls->drain, NULL);
}

void wsb_tls_worker_free(struct wsb_worker *w) {
  struct wsb_tls_worker *t = w->tls;
  if (t == NULL)
    return;
  SSL_CTX_free(t->server);
  for (size_t i = 0; i < WSB_SHM_MAX_POOLS; i++)
    SSL_CTX_free(t->client[i]);
  for (size_t i = 0; i < WSB_SHM_MAX_BACKENDS; i++)
    SSL_SESSION_free(t->resume[i].session);
  BIO_meth_free(t->bio_method);
  free(t->out);
  free(t);
  w->tls = NULL;
}
