/* TLS on a leg: ciphertext in from the socket, plaintext into the same path plain legs use, and
 * back. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "errors.h"
#include "leg.h"
#include "log.h"
#include "session.h"
#include "tls_context.h"
#include "tls_internal.h"
#include "tls_worker.h"

#define WRITE_CHUNK (16 * 1024) /* small frames are gathered into records of up to this */
#define OUT_FLUSH   (64 * 1024) /* ciphertext is handed to the socket at least this often */

static struct wsb_tls_worker *tls_of(const struct wsb_leg *l) {
  return l->s->w->tls;
}

static enum wsb_tls_side side_of(const struct wsb_leg *l) {
  return l->is_client ? WSB_TLS_CLIENT_SIDE : WSB_TLS_BACKEND_SIDE;
}

/*
 * A failed handshake: counted, and logged. The client side's line is an event line
 * (log_rate_limit, kind tls), at info like a rejected upgrade's, except for a client that closed
 * before sending a byte (a TCP health check, a port scan), as HAProxy's dontlognull leaves out.
 * The backend side's is a warning, as the backend's failure (upgrade.c) that follows, and only
 * where OpenSSL has more to say (detail): a backend that closed or timed out is said there.
 */
static void note_failure(struct wsb_leg *l, enum wsb_tls_error e, const char *detail) {
  static const char *const reasons[] = {
#define WSB_XX(name, label) label,
      WSB_TLS_ERRORS(WSB_XX)
#undef WSB_XX
  };
  struct wsb_session *s = l->s;
  wsb_shm_add(&s->w->stats->tls_errors[side_of(l)][e], 1);
  char id[17], client[64];
  snprintf(id, sizeof(id), "%016llx", (unsigned long long)s->id);
  struct wsb_log_field f[6];
  size_t n = 0;
  f[n++] = wsb_log_str("side", l->is_client ? "client" : "backend");
  f[n++] = wsb_log_str("reason", reasons[e]);
  if (detail != NULL)
    f[n++] = wsb_log_str("detail", detail);
  f[n++] = wsb_log_str("session", id);
  if (!l->is_client) {
    if (detail == NULL || !wsb__slot_valid(s->backend_slot))
      return;
    const char *name = s->w->table->backends[s->backend_slot].name;
    f[n++] = wsb_log_str("backend", name);
    wsb_log_fields(WSB_LOG_WARN, f, n, "session %s: backend %s: TLS handshake failed: %s", id, name,
                   detail);
    return;
  }
  if (e == WSB_TLS_ERR_CLOSED && (l->tls == NULL || !l->tls->heard))
    return;
  wsb__session_client_text(s, client, sizeof(client));
  f[n++] = wsb_log_str("client", client);
  const char *sni = wsb__tls_leg_sni(l);
  if (sni[0] != '\0')
    f[n++] = wsb_log_str("sni", sni);
  wsb_worker_log_event(s->w, WSB_LOG_KIND_TLS, f, n, "TLS handshake failed");
}

void wsb__tls_leg_count_error(struct wsb_leg *l, enum wsb_tls_error e) {
  note_failure(l, e, NULL);
}

const char *wsb__tls_leg_version(const struct wsb_leg *l) {
  return l->tls != NULL && l->tls->done ? SSL_get_version(l->tls->ssl) : "";
}

const char *wsb__tls_leg_sni(const struct wsb_leg *l) {
  const char *sni =
      l->tls != NULL ? SSL_get_servername(l->tls->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
  return sni != NULL ? sni : "";
}

bool wsb__tls_leg_handshaking(const struct wsb_leg *l) {
  return l->tls != NULL && !l->tls->done;
}

uv_buf_t wsb__tls_leg_read_buf(struct wsb_leg *l) {
  struct wsb_tls_worker *t = tls_of(l);
  return uv_buf_init((char *)t->cipher_in, sizeof(t->cipher_in));
}

/* Hands what OpenSSL produced to the socket, through the plain write path. */
static int flush_out(struct wsb_leg *l) {
  struct wsb_tls_worker *t = tls_of(l);
  if (t->out_len == 0)
    return 0;
  uv_buf_t b = uv_buf_init((char *)t->out, (unsigned)t->out_len);
  t->out_len = 0;
  int rc = wsb__leg_write_raw(l, &b, 1);
  if (t->out_cap > 4 * OUT_FLUSH) {
    /* A burst made it large: an idle worker does not keep it. */
    free(t->out);
    t->out = NULL;
    t->out_cap = 0;
  }
  return rc;
}

static struct wsb_tls_leg *leg_new(struct wsb_leg *l, SSL_CTX *ctx) {
  struct wsb_tls_leg *tl = calloc(1, sizeof(*tl));
  if (tl == NULL)
    return NULL;
  tl->leg = l;
  tl->ssl = SSL_new(ctx);
  BIO *bio = tl->ssl != NULL ? BIO_new(tls_of(l)->bio_method) : NULL;
  if (bio == NULL) {
    SSL_free(tl->ssl);
    free(tl);
    return NULL;
  }
  BIO_set_data(bio, tl);
  SSL_set_bio(tl->ssl, bio, bio);
  SSL_set_app_data(tl->ssl, l);
  l->tls = tl;
  return tl;
}

int wsb__tls_leg_accept(struct wsb_leg *l) {
  struct wsb_tls_worker *t = tls_of(l);
  if (t->server == NULL)
    return WSB_ETLS; /* a wss listener whose certificates failed to load: nothing to offer */
  struct wsb_tls_leg *tl = leg_new(l, t->server);
  if (tl == NULL)
    return UV_ENOMEM;
  SSL_set_accept_state(tl->ssl);
  return 0;
}

int wsb__tls_leg_connect(struct wsb_leg *l) {
  struct wsb_session *s = l->s;
  struct wsb_worker *w = s->w;
  SSL_CTX *ctx = wsb__tls_worker_client_ctx(w, s->pool);
  if (ctx == NULL)
    return WSB_ETLS;
  assert(!l->is_client && wsb__slot_valid(s->backend_slot)); /* connecting to a chosen backend */
  struct wsb_tls_leg *tl = leg_new(l, ctx);
  if (tl == NULL)
    return UV_ENOMEM;
  const struct wsb_url *url = &w->table->backends[s->backend_slot].url;
  /* SNI and the name to verify both come from the URL's host; an address is checked as one. */
  if (wsb_tls_client_prepare(tl->ssl, url->host, wsb__session_pool_settings(s)->tls_verify) != 0)
    return WSB_ETLS;
  struct tls_resume *r = &tls_of(l)->resume[s->backend_slot];
  if (r->session != NULL && r->port == url->port && strcmp(r->host, url->host) == 0)
    SSL_set_session(tl->ssl, r->session);
  SSL_set_connect_state(tl->ssl);
  ERR_clear_error();
  int rc = SSL_do_handshake(tl->ssl); /* the ClientHello */
  if (rc != 1 && SSL_get_error(tl->ssl, rc) != SSL_ERROR_WANT_READ) {
    ERR_clear_error();
    return WSB_ETLS;
  }
  return flush_out(l);
}

/* Why a handshake failed, from OpenSSL's error queue. */
static enum wsb_tls_error classify(int ssl_error) {
  unsigned long e = ERR_peek_last_error();
  if (e == 0)
    return ssl_error == SSL_ERROR_SYSCALL ? WSB_TLS_ERR_CLOSED : WSB_TLS_ERR_OTHER;
  if (ERR_GET_LIB(e) != ERR_LIB_SSL)
    return WSB_TLS_ERR_OTHER;
  switch (ERR_GET_REASON(e)) {
  case SSL_R_HTTP_REQUEST:
  case SSL_R_HTTPS_PROXY_REQUEST:
    return WSB_TLS_ERR_HTTP;
  case SSL_R_UNSUPPORTED_PROTOCOL:
  case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
  case SSL_R_UNKNOWN_PROTOCOL:
    return WSB_TLS_ERR_VERSION;
  case SSL_R_NO_SHARED_CIPHER:
  case SSL_R_NO_CIPHERS_AVAILABLE:
  case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
    return WSB_TLS_ERR_CIPHER;
  case SSL_R_CERTIFICATE_VERIFY_FAILED:
  case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
  case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
  case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
  case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
  case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
  case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    return WSB_TLS_ERR_CERTIFICATE;
  default:
    return ERR_GET_REASON(e) >= SSL_AD_REASON_OFFSET ? WSB_TLS_ERR_ALERT : WSB_TLS_ERR_PROTOCOL;
  }
}

static void handshake_failed(struct wsb_leg *l, int ssl_error) {
  struct wsb_tls_leg *tl = l->tls;
  enum wsb_tls_error why = classify(ssl_error);
  /* OpenSSL's reason ("no shared cipher", "http request"), or the certificate's fault. */
  char detail[256];
  unsigned long e = ERR_peek_last_error();
  const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
  long verify = SSL_get_verify_result(tl->ssl);
  if (!l->is_client && verify != X509_V_OK)
    snprintf(detail, sizeof(detail), "certificate not accepted: %s",
             X509_verify_cert_error_string(verify));
  else if (reason != NULL)
    snprintf(detail, sizeof(detail), "%s", reason);
  else if (e != 0)
    ERR_error_string_n(e, detail, sizeof(detail));
  else
    snprintf(detail, sizeof(detail), "connection closed");
  ERR_clear_error();
  tl->failed = true;
  note_failure(l, why, detail);
  wsb__session_dispatch(l, WSB_ETLS, NULL);
}

/* The handshake is over: count it, then send what was written while it ran. */
static int handshake_done(struct wsb_leg *l) {
  struct wsb_tls_leg *tl = l->tls;
  tl->done = true;
  wsb_shm_add(&l->s->w->stats->tls_handshakes[side_of(l)][SSL_session_reused(tl->ssl) ? 1 : 0], 1);
  if (tl->early.len == 0)
    return 0;
  uv_buf_t b = wsb_write_buf(wsb_buf_data(&tl->early), tl->early.len);
  int rc = wsb__tls_leg_write(l, &b, 1);
  wsb_buf_free(&tl->early);
  return rc;
}

/* Ciphertext not consumed yet waits in tl->saved: the loop's buffer is reused by the next read. */
static int keep_rest(struct wsb_tls_leg *tl) {
  if (tl->in_len == 0) {
    free(tl->saved);
    tl->saved = NULL;
    tl->saved_len = 0;
    return 0;
  }
  if (tl->saved != NULL && tl->in >= tl->saved && tl->in < tl->saved + tl->saved_len) {
    memmove(tl->saved, tl->in, tl->in_len);
    tl->saved_len = tl->in_len;
  } else {
    uint8_t *p = realloc(tl->saved, tl->in_len);
    if (p == NULL)
      return UV_ENOMEM;
    memcpy(p, tl->in, tl->in_len);
    tl->saved = p;
    tl->saved_len = tl->in_len;
  }
  tl->in = NULL;
  tl->in_len = 0;
  return 0;
}

/* Still the same leg, open and reading: the loop below may go on. */
static bool may_go_on(const struct wsb_leg *l, const struct wsb_tls_leg *tl) {
  return l->tls == tl && l->open && l->reading && l->s->state != S_CLOSED && !tl->failed;
}

void wsb__tls_leg_on_read(struct wsb_leg *l, const uint8_t *data, size_t n) {
  struct wsb_tls_leg *tl = l->tls;
  if (tl == NULL || tl->failed)
    return;
  tl->heard = tl->heard || n > 0;
  /* New ciphertext goes behind what an earlier read left over. */
  if (tl->saved != NULL && n > 0) {
    uint8_t *p = realloc(tl->saved, tl->saved_len + n);
    if (p == NULL) {
      wsb__session_dispatch(l, UV_ENOMEM, NULL);
      return;
    }
    memcpy(p + tl->saved_len, data, n);
    tl->saved = p;
    tl->saved_len += n;
    tl->in = p;
    tl->in_len = tl->saved_len;
  } else if (tl->saved != NULL) {
    tl->in = tl->saved;
    tl->in_len = tl->saved_len;
  } else {
    tl->in = data;
    tl->in_len = n;
  }
  ERR_clear_error();
  while (may_go_on(l, tl)) {
    if (!tl->done) {
      int rc = SSL_do_handshake(tl->ssl);
      int err = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(tl->ssl, rc);
      int wrc = flush_out(l); /* the handshake's own messages, or an alert */
      if (err != SSL_ERROR_NONE && err != SSL_ERROR_WANT_READ) {
        handshake_failed(l, err);
        return;
      }
      if (wrc != 0) {
        tl->failed = true;
        wsb__session_dispatch(l, wrc, NULL);
        return;
      }
      if (err == SSL_ERROR_WANT_READ)
        break;
      if ((wrc = handshake_done(l)) != 0) {
        tl->failed = true;
        wsb__session_dispatch(l, wrc, NULL);
        return;
      }
      continue;
    }
    /* Nothing left to decrypt: stop rather than have SSL_read set up its record buffer only
       to find the BIO empty. */
    if (tl->in_len == 0 && SSL_pending(tl->ssl) == 0 && !SSL_has_pending(tl->ssl))
      break;
    uv_buf_t buf;
    wsb__session_read_buf(l, &buf);
    if (buf.len == 0)
      break;
    int rc = SSL_read(tl->ssl, buf.base, (int)(buf.len > INT32_MAX ? INT32_MAX : buf.len));
    int err = rc > 0 ? SSL_ERROR_NONE : SSL_get_error(tl->ssl, rc);
    int wrc = flush_out(l); /* key updates, alerts */
    if (rc > 0) {
      wsb__session_dispatch(l, rc, &buf);
      continue;
    }
    if (err == SSL_ERROR_WANT_READ && wrc == 0)
      break;
    tl->failed = true;
    if (err == SSL_ERROR_ZERO_RETURN) {
      wsb__session_dispatch(l, UV_EOF, NULL); /* close_notify: the peer is done */
    } else {
      wsb_log_debug("session %016llx: TLS error from the %s", (unsigned long long)l->s->id,
                    l->is_client ? "client" : "backend");
      ERR_clear_error();
      wsb__session_dispatch(l, wrc != 0 ? wrc : WSB_ETLS_RECORD, NULL);
    }
    return;
  }
  if (l->tls != tl)
    return;
  if (keep_rest(tl) != 0) {
    wsb__session_dispatch(l, UV_ENOMEM, NULL);
    return;
  }
  /* An idle leg gives OpenSSL's record buffers back (it refuses while they hold a record). */
  if (tl->done)
    SSL_free_buffers(tl->ssl);
}

void wsb__tls_leg_resume(struct wsb_leg *l) {
  struct wsb_tls_leg *tl = l->tls;
  if (tl != NULL && !tl->failed &&
      (tl->saved != NULL || SSL_pending(tl->ssl) > 0 || SSL_has_pending(tl->ssl)))
    wsb__tls_worker_drain_add(l->s->w, tl);
}

/* Encrypts len bytes; the records go to the socket once enough have gathered. */
static int ssl_write(struct wsb_leg *l, const uint8_t *p, size_t len) {
  if (SSL_write(l->tls->ssl, p, (int)len) <= 0) {
    ERR_clear_error();
    return WSB_ETLS_RECORD;
  }
  return tls_of(l)->out_len >= OUT_FLUSH ? flush_out(l) : 0;
}

int wsb__tls_leg_write(struct wsb_leg *l, const uv_buf_t *bufs, unsigned nbufs) {
  struct wsb_tls_leg *tl = l->tls;
  if (!l->open || tl->failed)
    return UV_EPIPE;
  if (!tl->done) {
    /* Before the handshake ends (our request to a backend): sent once it has. */
    for (unsigned i = 0; i < nbufs; i++)
      if (wsb_buf_append(&tl->early, bufs[i].base, bufs[i].len) != 0)
        return UV_ENOMEM;
    return 0;
  }
  ERR_clear_error();
  /* Small pieces (the frames of one read) are gathered to share records; order is kept. */
  uint8_t chunk[WRITE_CHUNK];
  size_t used = 0;
  int rc = 0;
  for (unsigned i = 0; i < nbufs && rc == 0; i++) {
    const uint8_t *p = (const uint8_t *)bufs[i].base;
    size_t len = bufs[i].len;
    if (len < WRITE_CHUNK / 4) {
      if (used + len > sizeof(chunk)) {
        rc = ssl_write(l, chunk, used);
        used = 0;
      }
      memcpy(chunk + used, p, len);
      used += len;
      continue;
    }
    if (used > 0)
      rc = ssl_write(l, chunk, used);
    used = 0;
    while (rc == 0 && len > 0) {
      size_t take = len < OUT_FLUSH ? len : OUT_FLUSH;
      rc = ssl_write(l, p, take);
      p += take;
      len -= take;
    }
  }
  if (rc == 0 && used > 0)
    rc = ssl_write(l, chunk, used);
  int wrc = flush_out(l);
  return rc != 0 ? rc : wrc;
}

void wsb__tls_leg_close_notify(struct wsb_leg *l) {
  struct wsb_tls_leg *tl = l->tls;
  struct wsb_tls_worker *t = tls_of(l);
  if (tl == NULL || !tl->done || tl->failed || l->queued > 0)
    return;
  ERR_clear_error();
  SSL_shutdown(tl->ssl);
  ERR_clear_error();
  if (t->out_len > 0) {
    uv_buf_t b = uv_buf_init((char *)t->out, (unsigned)t->out_len);
    uv_try_write((uv_stream_t *)&l->tcp, &b, 1); /* best effort: the connection closes now */
    t->out_len = 0;
  }
}

void wsb__tls_conn_free(struct wsb_tls_leg *tl) {
  if (tl == NULL)
    return;
  SSL_free(tl->ssl);
  free(tl->saved);
  wsb_buf_free(&tl->early);
  free(tl);
}

void wsb__tls_leg_free(struct wsb_leg *l) {
  struct wsb_tls_leg *tl = l->tls;
  if (tl == NULL)
    return;
  wsb__tls_worker_drain_remove(l->s->w, tl);
  wsb__tls_conn_free(tl);
  l->tls = NULL;
}

/* Only a connection whose handshake is over and that holds nothing (no ciphertext read and not
   yet decrypted, no plaintext waiting) may carry another request: anything held would be read
   as the start of the next answer. */
struct wsb_tls_leg *wsb__tls_leg_detach(struct wsb_leg *l) {
  struct wsb_tls_leg *tl = l->tls;
  if (tl == NULL || !tl->done || tl->failed || tl->draining || tl->saved != NULL ||
      tl->early.len > 0 || SSL_pending(tl->ssl) > 0 || SSL_has_pending(tl->ssl))
    return NULL;
  tl->leg = NULL;
  SSL_set_app_data(tl->ssl, NULL);
  l->tls = NULL;
  return tl;
}

void wsb__tls_leg_attach(struct wsb_leg *l, struct wsb_tls_leg *tl) {
  tl->leg = l;
  SSL_set_app_data(tl->ssl, l);
  l->tls = tl;
}
