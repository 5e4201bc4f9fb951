/* One health check or load-report poll in flight: a TCP connect, and for HTTP a GET read whole
 * (over TLS for wss:// backends). */
#include "probe_client.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "errors.h"
#include "proxy_protocol.h"
#include "tls_context.h"

#define CIPHER_READ 4096 /* ciphertext read per callback; OpenSSL's memory BIO holds the rest */

struct wsb_probe_client {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_connect_t connect;
  uv_write_t write;
  wsb_probe_cb cb; /* NULL once called or cancelled */
  void *arg;
  uint64_t timeout_ms;
  char *request;
  int open_handles; /* freed when both have closed */
  /* TLS: OpenSSL reads ciphertext from rbio (fed from the socket) and writes it to wbio (sent
     from there), so the probe stays on the loop like the plain one. */
  SSL *ssl;
  BIO *rbio;
  BIO *wbio;
  bool sent; /* the request went into the TLS stream */
  size_t len;
  uv_write_t pp_write;
  uint8_t pp[WSB_PP_V2_FIXED]; /* the PROXY header, sent before anything else */
  size_t pp_len;
  /* From here on not zeroed at start: */
  char cipher[CIPHER_READ];
  char buf[WSB_PROBE_MAX_RESPONSE];
  struct wsb_probe_response response;
};

/* Ciphertext on its way to the socket: freed by its write callback, which libuv runs (cancelled)
   before the close callbacks even when the probe ends first. */
struct tls_write {
  uv_write_t req;
  char data[];
};

static void on_close(uv_handle_t *h) {
  struct wsb_probe_client *p = h->data;
  if (--p->open_handles == 0) {
    SSL_free(p->ssl); /* and its BIOs */
    free(p->request);
    free(p);
  }
}

/* Closing the socket cancels its pending connect, write and read: their callbacks still run,
   see cb NULL and return, before the close callbacks free the probe. */
static void close_all(struct wsb_probe_client *p) {
  p->cb = NULL;
  uv_close((uv_handle_t *)&p->tcp, on_close);
  uv_close((uv_handle_t *)&p->timer, on_close);
}

/* Calls back once (unless cancelled) and closes. */
static void finish(struct wsb_probe_client *p, enum wsb_probe_result result,
                   const struct wsb_probe_response *r, const char *why) {
  wsb_probe_cb cb = p->cb;
  if (cb == NULL)
    return;
  close_all(p);
  cb(p->arg, result, r, why);
}

static void fail(struct wsb_probe_client *p, int err) {
  finish(p, err == UV_ECONNREFUSED ? WSB_PROBE_REFUSED : WSB_PROBE_ERROR, NULL, wsb_strerror(err));
}

/* A TLS failure, named the way the workers log a backend's: a refused certificate says why. */
static void fail_tls(struct wsb_probe_client *p, const char *when) {
  char why[256];
  long verify = SSL_get_verify_result(p->ssl);
  unsigned long e = ERR_peek_last_error();
  /* With tls_verify = off the result is still computed, but nothing was refused for it. */
  if (verify != X509_V_OK && SSL_get_verify_mode(p->ssl) != SSL_VERIFY_NONE)
    snprintf(why, sizeof(why), "TLS: certificate not accepted: %s",
             X509_verify_cert_error_string(verify));
  else if (e != 0)
    snprintf(why, sizeof(why), "TLS %s failed: %s", when, ERR_reason_error_string(e));
  else
    snprintf(why, sizeof(why), "TLS %s failed: connection closed", when);
  ERR_clear_error();
  finish(p, WSB_PROBE_ERROR, NULL, why);
}

static void on_timeout(uv_timer_t *t) {
  struct wsb_probe_client *p = t->data;
  char why[64];
  snprintf(why, sizeof(why), "no answer within %llu ms", (unsigned long long)p->timeout_ms);
  finish(p, WSB_PROBE_TIMEOUT, NULL, why);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct wsb_probe_client *p = h->data;
  (void)suggested;
  if (p->ssl != NULL) {
    *buf = uv_buf_init(p->cipher, sizeof(p->cipher));
    return;
  }
  /* Never full here: a full buffer without a complete answer has already failed the probe. */
  *buf = uv_buf_init(p->buf + p->len, (unsigned)(sizeof(p->buf) - p->len));
}

static void parse(struct wsb_probe_client *p, bool eof) {
  int rc = wsb_probe_parse(p->buf, p->len, eof, &p->response);
  if (rc == 0)
    finish(p, WSB_PROBE_OK, &p->response, "");
  else if (rc != WSB_PARTIAL)
    finish(p, WSB_PROBE_ERROR, NULL, wsb_strerror(rc));
}

static void on_tls_written(uv_write_t *w, int status) {
  struct wsb_probe_client *p = w->data;
  free(w);
  if (p->cb != NULL && status < 0)
    fail(p, status);
}

/* Sends what OpenSSL wrote to wbio. Returns 0 or a libuv error. */
static int flush_tls(struct wsb_probe_client *p) {
  size_t n = BIO_ctrl_pending(p->wbio);
  if (n == 0)
    return 0;
  struct tls_write *tw = malloc(sizeof(*tw) + n);
  if (tw == NULL)
    return UV_ENOMEM;
  int got = BIO_read(p->wbio, tw->data, (int)n);
  if (got <= 0) {
    free(tw);
    return UV_EIO;
  }
  tw->req.data = p;
  uv_buf_t b = uv_buf_init(tw->data, (unsigned)got);
  int rc = uv_write(&tw->req, (uv_stream_t *)&p->tcp, &b, 1, on_tls_written);
  if (rc != 0)
    free(tw);
  return rc;
}

/*
 * Moves the TLS exchange on as far as the bytes fed so far allow: handshake, the request once,
 * then every byte of the answer into buf. eof: the socket has ended.
 */
static void advance_tls(struct wsb_probe_client *p, bool eof) {
  ERR_clear_error();
  if (!SSL_is_init_finished(p->ssl)) {
    int rc = SSL_do_handshake(p->ssl);
    if (rc != 1 && (SSL_get_error(p->ssl, rc) != SSL_ERROR_WANT_READ || eof)) {
      fail_tls(p, "handshake");
      return;
    }
  }
  if (SSL_is_init_finished(p->ssl) && !p->sent) {
    /* A memory BIO takes it whole: no partial write to resume. */
    if (SSL_write(p->ssl, p->request, (int)strlen(p->request)) <= 0) {
      fail_tls(p, "write");
      return;
    }
    p->sent = true;
  }
  int rc = flush_tls(p);
  if (rc != 0) {
    fail(p, rc);
    return;
  }
  if (!p->sent)
    return;
  /* parse() fails a full buffer without a complete answer, so there is always room here. */
  for (;;) {
    int n = SSL_read(p->ssl, p->buf + p->len, (int)(sizeof(p->buf) - p->len));
    if (n > 0) {
      p->len += (size_t)n;
      parse(p, false);
      if (p->cb == NULL)
        return;
      continue;
    }
    int err = SSL_get_error(p->ssl, n);
    if (err == SSL_ERROR_WANT_READ && !eof)
      return;
    /* close_notify, or the socket's end: an answer without a length ends here (a peer that
       skips close_notify is common and harmless for a GET answered in full). */
    if (err == SSL_ERROR_ZERO_RETURN || err == SSL_ERROR_WANT_READ)
      parse(p, true);
    else
      fail_tls(p, "read");
    return;
  }
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct wsb_probe_client *p = s->data;
  (void)buf;
  if (p->cb == NULL)
    return;
  if (n < 0 && n != UV_EOF) {
    fail(p, (int)n);
  } else if (p->ssl != NULL) {
    if (n > 0 && BIO_write(p->rbio, p->cipher, (int)n) != (int)n) {
      fail(p, UV_ENOMEM);
      return;
    }
    if (n != 0)
      advance_tls(p, n == UV_EOF);
  } else if (n == UV_EOF) {
    parse(p, true);
  } else if (n > 0) {
    p->len += (size_t)n;
    parse(p, false);
  }
}

static void on_write(uv_write_t *w, int status) {
  struct wsb_probe_client *p = w->data;
  if (p->cb != NULL && status < 0)
    fail(p, status);
}

/* TLS over the connected socket: OpenSSL between two memory BIOs, the ClientHello goes out. */
static int start_tls(struct wsb_probe_client *p, const struct wsb_probe_tls *tls) {
  p->ssl = SSL_new(tls->ctx);
  if (p->ssl == NULL)
    return UV_ENOMEM;
  p->rbio = BIO_new(BIO_s_mem());
  p->wbio = BIO_new(BIO_s_mem());
  if (p->rbio == NULL || p->wbio == NULL) {
    BIO_free(p->rbio);
    BIO_free(p->wbio);
    return UV_ENOMEM;
  }
  BIO_set_mem_eof_return(p->rbio, -1); /* empty means "wait for more", not end of stream */
  SSL_set_bio(p->ssl, p->rbio, p->wbio);
  if (wsb_tls_client_prepare(p->ssl, tls->host, tls->verify) != 0)
    return UV_EINVAL;
  SSL_set_connect_state(p->ssl);
  return 0;
}

static void on_connect(uv_connect_t *c, int status) {
  struct wsb_probe_client *p = c->data;
  if (p->cb == NULL)
    return;
  if (status < 0) {
    fail(p, status);
    return;
  }
  if (p->request == NULL) {
    finish(p, WSB_PROBE_OK, NULL, "");
    return;
  }
  int rc = 0;
  if (p->pp_len > 0) {
    uv_buf_t b = uv_buf_init((char *)p->pp, (unsigned)p->pp_len);
    p->pp_write.data = p;
    rc = uv_write(&p->pp_write, (uv_stream_t *)&p->tcp, &b, 1, on_write);
  }
  if (rc == 0 && p->ssl != NULL) {
    rc = uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_read);
    if (rc == 0)
      advance_tls(p, false); /* the ClientHello */
  } else if (rc == 0) {
    uv_buf_t b = uv_buf_init(p->request, (unsigned)strlen(p->request));
    p->write.data = p;
    rc = uv_write(&p->write, (uv_stream_t *)&p->tcp, &b, 1, on_write);
    if (rc == 0)
      rc = uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_read);
  }
  if (rc != 0)
    fail(p, rc);
}

static void free_unstarted(struct wsb_probe_client *p) {
  SSL_free(p->ssl);
  free(p->request);
  free(p);
}

struct wsb_probe_client *wsb_probe_start(uv_loop_t *loop, const struct sockaddr *addr,
                                         const char *request, const struct wsb_probe_tls *tls,
                                         int proxy_version, uint64_t timeout_ms, wsb_probe_cb cb,
                                         void *arg) {
  struct wsb_probe_client *p = malloc(sizeof(*p));
  if (p == NULL)
    return NULL;
  memset(p, 0, offsetof(struct wsb_probe_client, cipher));
  p->cb = cb;
  p->arg = arg;
  p->timeout_ms = timeout_ms;
  if (request != NULL && proxy_version != WSB_PP_OFF) {
    struct wsb_pp_header local;
    wsb_pp_set_ends(&local, 0, NULL, 0, 0, NULL, 0);
    p->pp_len = wsb_pp_write(p->pp, sizeof(p->pp), proxy_version, &local);
  }
  if (request != NULL && (p->request = strdup(request)) == NULL) {
    free(p);
    return NULL;
  }
  if (request != NULL && tls != NULL && start_tls(p, tls) != 0) {
    ERR_clear_error();
    free_unstarted(p);
    return NULL;
  }
  if (uv_tcp_init(loop, &p->tcp) != 0) {
    free_unstarted(p);
    return NULL;
  }
  uv_timer_init(loop, &p->timer);
  p->tcp.data = p->timer.data = p->connect.data = p;
  p->open_handles = 2;
  uv_timer_start(&p->timer, on_timeout, timeout_ms, 0);
  int rc = uv_tcp_connect(&p->connect, &p->tcp, addr, on_connect);
  if (rc != 0) {
    close_all(p);
    return NULL;
  }
  return p;
}

void wsb_probe_cancel(struct wsb_probe_client *p) {
  if (p->cb != NULL)
    close_all(p);
}
