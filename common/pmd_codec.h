/* permessage-deflate's codec (RFC 7692 7.2): raw deflate per message with zlib, inflate bounded. */
#ifndef WSB_PMD_CODEC_H
#define WSB_PMD_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#include "buffer.h"

/* A decompressor for one direction's messages; zeroed = not set up. */
struct wsb_inflater {
  z_stream z;
  bool ready; /* inflateInit2 has run */
  bool ended; /* this message's deflate data had a final block: only the tail may follow */
  uint64_t n; /* bytes this message has inflated to so far */
};

/* A compressor; zeroed = not set up. */
struct wsb_deflater {
  z_stream z;
  bool ready;
};

/* Sets up d (a 32 KiB window takes any client's). Returns 0 or -ENOMEM. */
int wsb_inflater_init(struct wsb_inflater *d);
void wsb_inflater_free(struct wsb_inflater *d);
/* Forgets the message under way and the window: the next message starts afresh. */
void wsb_inflater_reset(struct wsb_inflater *d);

/*
 * Inflates the next piece of a message's payload (unmasked), appending what it gives to out.
 * fin: the piece ends the message, so the 00 00 ff ff the sender removed is put back; then the
 * window is kept for the next message when keep_context, else the stream is reset. Inflation
 * stops as soon as the message passes max bytes (0 = no limit): out never gets more than max
 * bytes of a message and zlib never makes more than max + 1, so a zip bomb costs the limit.
 * Returns 0, WSB_ETOO_BIG, WSB_EINFLATE (not deflate data, or data after a final block) or
 * -ENOMEM; after an error the message is lost: call wsb_inflater_reset before reusing d.
 */
int wsb_inflate(struct wsb_inflater *d, const uint8_t *in, size_t len, bool fin, bool keep_context,
                uint64_t max, struct wsb_buf *out);

/* Sets up c: zlib level 1..9, LZ77 window 2^bits (9..15). Returns 0, -ENOMEM or -EINVAL. */
int wsb_deflater_init(struct wsb_deflater *c, int level, int bits);
void wsb_deflater_free(struct wsb_deflater *c);

/*
 * Compresses the next piece of a message, appending to out. Each piece ends on a byte boundary
 * (a sync flush), so it may go out as a fragment at once; the message's last piece (fin) drops
 * the 00 00 ff ff tail, as section 7.2.1 asks. Without keep_context the stream is reset after
 * every piece: the pieces are then runs of non-final blocks with no reference to each other,
 * which together still make one valid message, and c holds nothing of it between calls (so one
 * compressor can serve every session of a worker). Returns 0 or -ENOMEM.
 */
int wsb_deflate(struct wsb_deflater *c, const uint8_t *in, size_t len, bool fin, bool keep_context,
                struct wsb_buf *out);

#endif
