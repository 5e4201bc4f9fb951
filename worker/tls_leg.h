/* TLS on a leg: OpenSSL over a BIO of wsbal's own, so TLS and plain legs share the relay path. */
#ifndef WSB_TLS_LEG_H
#define WSB_TLS_LEG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "shm.h"

struct wsb_leg;

/* Each returns 0 or a negative code. */
int wsb__tls_leg_accept(struct wsb_leg *l);
int wsb__tls_leg_connect(struct wsb_leg *l);
/* Ciphertext read from the socket (NULL, 0 to go on with what is already held). */
void wsb__tls_leg_on_read(struct wsb_leg *l, const uint8_t *data, size_t n);
int wsb__tls_leg_write(struct wsb_leg *l, const uv_buf_t *bufs, unsigned nbufs);
/* Reading starts again: what the leg holds already is passed on from the loop's idle phase. */
void wsb__tls_leg_resume(struct wsb_leg *l);
/* Sends close_notify if it can go out at once; the connection closes right after. */
void wsb__tls_leg_close_notify(struct wsb_leg *l);
void wsb__tls_leg_free(struct wsb_leg *l);
/* A backend connection's TLS state travels with it to the idle pool between requests
   (http_pool.c): detach takes it from the leg, or returns NULL (and leaves it) when the
   connection cannot carry another request; attach gives it to the leg that takes the
   connection; a pooled one that is dropped is freed with wsb__tls_conn_free. */
struct wsb_tls_leg *wsb__tls_leg_detach(struct wsb_leg *l);
void wsb__tls_leg_attach(struct wsb_leg *l, struct wsb_tls_leg *tl);
void wsb__tls_conn_free(struct wsb_tls_leg *tl);
bool wsb__tls_leg_handshaking(const struct wsb_leg *l);
/* Counts a failed handshake of the leg, and logs it (see tls_leg.c). */
void wsb__tls_leg_count_error(struct wsb_leg *l, enum wsb_tls_error e);
/* For the access log: the leg's TLS version once its handshake is done ("TLSv1.3") and the
   server name the client asked for; "" for none (a plain leg, no SNI). */
const char *wsb__tls_leg_version(const struct wsb_leg *l);
const char *wsb__tls_leg_sni(const struct wsb_leg *l);
/* Where the socket's ciphertext is read to. */
uv_buf_t wsb__tls_leg_read_buf(struct wsb_leg *l);

#endif
