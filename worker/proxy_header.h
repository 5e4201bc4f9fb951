/* The PROXY protocol on a session's connections: the header in front of a client's bytes
 * ([listen] proxy_protocol) and the one wsbal puts in front of a backend's
 * ([upstream] send_proxy_protocol). */
#ifndef WSB_PROXY_HEADER_H
#define WSB_PROXY_HEADER_H

#include <stdbool.h>
#include <sys/types.h>
#include <uv.h>

#include "session.h"

/* On accept: with proxy_protocol on, the client's first bytes must be a header. Returns 0 or
   UV_ENOMEM. */
int wsb__proxy_header_expect(struct wsb_session *s);

/* Is the leg still reading a header? Its bytes then go to the two below, under TLS too: the
   header comes before the ClientHello. */
static inline bool wsb__proxy_header_waiting(const struct wsb_leg *l) {
  return l->is_client && l->s->hs != NULL && l->s->hs->pp_wait;
}
uv_buf_t wsb__proxy_header_buf(struct wsb_leg *l);
/* nread bytes (or an error, UV_EOF) arrived in the buffer above. Once the header is whole, the
   bytes behind it go on as if just read: into the request head, or into TLS. */
void wsb__proxy_header_read(struct wsb_leg *l, ssize_t nread);

/* handshake_timeout went off inside the header: counted and logged (upgrade.c closes). */
void wsb__proxy_header_timed_out(struct wsb_session *s);

/* Connected to a backend, before TLS and the upgrade request: the header of the real client
   and the address it connected to, when send_proxy_protocol is on. Returns 0 or an error. */
int wsb__proxy_header_send(struct wsb_session *s);

/* Fills the session's peer end (and with local its local end: a system call more, made only
   for send_proxy_protocol) from the socket where no header announced them. */
int wsb__proxy_header_tcp_ends(struct wsb_session *s, bool local);

#endif
