/* permessage-deflate on the client leg: inflate what the client sends, deflate what it is sent. */
#include "compress.h"

#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "leg.h"
#include "pmd_codec.h"
#include "session.h"

#define BITS_MIN 9
#define BITS_N   7 /* window bits 9..15 */

/*
 * The worker's zlib streams, for sessions that keep no context between messages: one
 * decompressor, lent to a session only while one of its messages spans several reads, and one
 * compressor per window size, reset after every use.
 */
struct wsb_pmd_worker {
  struct wsb_inflater *inflater; /* NULL while lent out (or not made yet) */
  struct wsb_deflater deflaters[BITS_N];
  int levels[BITS_N]; /* the level each was made with: a reload may change it */
};

static struct wsb_pmd_worker *worker_state(struct wsb_worker *w) {
  if (w->pmd == NULL)
    w->pmd = calloc(1, sizeof(*w->pmd));
  return w->pmd;
}

static struct wsb_inflater *new_inflater(void) {
  struct wsb_inflater *d = malloc(sizeof(*d));
  if (d != NULL && wsb_inflater_init(d) != 0) {
    free(d);
    d = NULL;
  }
  return d;
}

static void free_inflater(struct wsb_inflater *d) {
  if (d != NULL) {
    wsb_inflater_free(d);
    free(d);
  }
}

/* The decompressor for the session's next frame: its own, or the worker's. */
static struct wsb_inflater *inflater_for(struct wsb_session *s) {
  if (s->inflater != NULL)
    return s->inflater;
  if (!s->pmd.client_no_takeover) /* the window lives as long as the session */
    return s->inflater = new_inflater();
  struct wsb_pmd_worker *pw = worker_state(s->w);
  if (pw == NULL)
    return NULL;
  if (pw->inflater == NULL)
    pw->inflater = new_inflater();
  return pw->inflater;
}

/* After a frame: a message left open keeps its stream with the session until it ends; a
   stream without context goes back to the worker once its message has. */
static void settle_inflater(struct wsb_session *s, struct wsb_inflater *d, bool fin, int rc) {
  struct wsb_pmd_worker *pw = s->w->pmd;
  bool lent = pw != NULL && d == pw->inflater;
  if (rc != 0) {
    wsb_inflater_reset(d); /* the session ends; the stream must serve the next one clean */
    if (!lent) {
      free_inflater(d);
      s->inflater = NULL;
    }
    return;
  }
  if (lent && !fin) {
    s->inflater = d;
    pw->inflater = NULL;
  } else if (!lent && fin && s->pmd.client_no_takeover) {
    s->inflater = NULL;
    if (pw != NULL && pw->inflater == NULL)
      pw->inflater = d;
    else
      free_inflater(d);
  }
}

static void count(struct wsb_session *s, enum wsb_direction dir, uint64_t wire, uint64_t payload) {
  wsb_shm_add(&s->w->stats->compression_bytes[dir][WSB_COMPRESSION_WIRE], wire);
  wsb_shm_add(&s->w->stats->compression_bytes[dir][WSB_COMPRESSION_PAYLOAD], payload);
}

int wsb__compress_inflate_frame(struct wsb_leg *l, const struct wsb_frame *f,
                                const uint8_t *payload, struct wsb_buf *out) {
  struct wsb_session *s = l->s;
  struct wsb_inflater *d = inflater_for(s);
  size_t len = (size_t)f->payload_len;
  uint8_t *plain = malloc(len ? len : 1);
  if (d == NULL || plain == NULL) {
    free(plain);
    return UV_ENOMEM;
  }
  memcpy(plain, payload, len);
  wsb_mask_apply(plain, len, f->mask, 0);
  struct wsb_buf inflated = {0};
  int rc = wsb_inflate(d, plain, len, f->fin, !s->pmd.client_no_takeover,
                       s->w->table->settings.max_message_bytes, &inflated);
  free(plain);
  settle_inflater(s, d, f->fin, rc);
  if (rc == -ENOMEM)
    rc = UV_ENOMEM;
  if (rc == 0) {
    uint8_t head[WSB_FRAME_HEADER_MAX];
    size_t hl = wsb_frame_header_write(head, f->fin, f->opcode, inflated.len, f->mask);
    if (wsb_buf_append(out, head, hl) != 0 ||
        (inflated.len > 0 && wsb_buf_append(out, wsb_buf_data(&inflated), inflated.len) != 0))
      rc = UV_ENOMEM;
    else
      wsb_mask_apply(out->p + out->off + hl, inflated.len, f->mask, 0);
    count(s, WSB_DIR_TO_BACKEND, len, inflated.len);
  }
  wsb_buf_free(&inflated);
  return rc;
}

/* The compressor for a message to the client: the session's own, or the worker's. */
static struct wsb_deflater *deflater_for(struct wsb_session *s) {
  int level = (int)s->w->table->settings.compression_level;
  int bits = s->pmd.server_bits;
  if (!s->pmd.server_no_takeover) {
    if (s->deflater == NULL) {
      s->deflater = malloc(sizeof(*s->deflater));
      if (s->deflater != NULL && wsb_deflater_init(s->deflater, level, bits) != 0) {
        free(s->deflater);
        s->deflater = NULL;
      }
    }
    return s->deflater;
  }
  struct wsb_pmd_worker *pw = worker_state(s->w);
  if (pw == NULL)
    return NULL;
  struct wsb_deflater *c = &pw->deflaters[bits - BITS_MIN];
  if (c->ready && pw->levels[bits - BITS_MIN] != level)
    wsb_deflater_free(c);
  if (!c->ready) {
    if (wsb_deflater_init(c, level, bits) != 0)
      return NULL;
    pw->levels[bits - BITS_MIN] = level;
  }
  return c;
}

int wsb__compress_message(struct wsb_session *s, const uint8_t *frames, size_t len,
                          struct wsb_buf *out) {
  uint64_t payload = 0;
  struct wsb_frame f;
  for (size_t at = 0; at < len; at += (size_t)f.payload_len) {
    at += (size_t)wsb_frame_parse(&f, frames + at, len - at); /* checked on the way in */
    payload += f.payload_len;
  }
  if (payload < s->w->table->settings.compression_min_bytes)
    return 1;
  struct wsb_deflater *c = deflater_for(s);
  if (c == NULL)
    return UV_ENOMEM;
  bool keep = !s->pmd.server_no_takeover;
  uint64_t wire = 0;
  for (size_t at = 0; at < len; at += (size_t)f.payload_len) {
    bool first = at == 0;
    at += (size_t)wsb_frame_parse(&f, frames + at, len - at);
    struct wsb_buf z = {0};
    int rc = wsb_deflate(c, frames + at, (size_t)f.payload_len, f.fin, keep, &z);
    uint8_t head[WSB_FRAME_HEADER_MAX];
    size_t hl = wsb_frame_header_write(head, f.fin, f.opcode, z.len, NULL);
    if (first)
      head[0] |= 0x40; /* RSV1: the message is compressed (RFC 7692 6) */
    if (rc == 0 && (wsb_buf_append(out, head, hl) != 0 ||
                    (z.len > 0 && wsb_buf_append(out, wsb_buf_data(&z), z.len) != 0)))
      rc = UV_ENOMEM;
    wire += z.len;
    wsb_buf_free(&z);
    if (rc != 0)
      return UV_ENOMEM;
  }
  count(s, WSB_DIR_TO_CLIENT, wire, payload);
  return 0;
}

void wsb__compress_session_free(struct wsb_session *s) {
  free_inflater(s->inflater);
  s->inflater = NULL;
  if (s->deflater != NULL) {
    wsb_deflater_free(s->deflater);
    free(s->deflater);
    s->deflater = NULL;
  }
}

void wsb_compress_worker_free(struct wsb_worker *w) {
  if (w->pmd == NULL)
    return;
  free_inflater(w->pmd->inflater);
  for (int i = 0; i < BITS_N; i++)
    wsb_deflater_free(&w->pmd->deflaters[i]);
  free(w->pmd);
  w->pmd = NULL;
}
