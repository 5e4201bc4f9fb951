/* permessage-deflate on the client leg (compress.c): client frames inflated, backend messages
 * deflated. */
#ifndef WSB_COMPRESS_H
#define WSB_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "buffer.h"
#include "frame.h"

struct wsb_leg;
struct wsb_session;
struct wsb_worker;

/*
 * Inflates one whole frame of a client's compressed message (payload still masked) into a plain
 * frame for the backend, masked with the client's key, in out. The message's inflated size is
 * held to max_message_bytes. Returns 0, WSB_EINFLATE (1007), WSB_ETOO_BIG (1009) or UV_ENOMEM.
 */
int wsb__compress_inflate_frame(struct wsb_leg *l, const struct wsb_frame *f,
                                const uint8_t *payload, struct wsb_buf *out);

/*
 * A whole backend message (its data frames back to back, as the backend sent them) for a client
 * that negotiated compression: its frames compressed into out, the first with RSV1. Returns 0,
 * 1 when the message goes as it is (under compression_min_bytes), or UV_ENOMEM.
 */
int wsb__compress_message(struct wsb_session *s, const uint8_t *frames, size_t len,
                          struct wsb_buf *out);

/* The session ends: its own zlib streams go (context takeover, or a message cut short). */
void wsb__compress_session_free(struct wsb_session *s);
/* The worker ends: its shared streams go. */
void wsb_compress_worker_free(struct wsb_worker *w);

#endif
