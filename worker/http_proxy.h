/* Plain HTTP ([listen] http = proxy): a request that is not an upgrade, proxied as HTTP/1.1. */
#ifndef WSB_HTTP_PROXY_H
#define WSB_HTTP_PROXY_H

#include <stddef.h>
#include <stdint.h>

struct wsb_leg;
struct wsb_session;
struct wsb_worker;

/* The complete head (head_len bytes of s->hs->req_buf) is a plain request: answer it or send
   it to a backend (upgrade.c calls this instead of answering 426). */
void wsb__http_begin(struct wsb_session *s, size_t head_len);

/* The S_HTTP state's handlers. */
void wsb__http_client_read(struct wsb_leg *l, const uint8_t *data, size_t len);
void wsb__http_client_eof(struct wsb_leg *l, int status);
void wsb__http_backend_read(struct wsb_leg *l, const uint8_t *data, size_t len);
void wsb__http_backend_eof(struct wsb_leg *l, int status);
void wsb__http_timer(struct wsb_session *s);
/* READ_REQUEST's backend handlers: the connection kept from the previous request (read while
   idle) sent bytes or ended; it is not used again. */
void wsb__http_kept_read(struct wsb_leg *l, const uint8_t *data, size_t len);
void wsb__http_kept_eof(struct wsb_leg *l, int status);

/* Frees the exchange of a session (with its last handle). */
void wsb__http_free(struct wsb_session *s);

/* A stopping worker: closes the client connections idle between plain requests (nginx closes
   its idle keep-alive connections the same way) and the idle backend connections. */
void wsb_http_close_idle(struct wsb_worker *w);

#endif
