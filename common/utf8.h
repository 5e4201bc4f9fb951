/* UTF-8 validation (RFC 3629), whole buffers or incrementally across frames. */
#ifndef WSB_UTF8_H
#define WSB_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Incremental validator state; starts zeroed. */
struct wsb_utf8 {
  uint32_t state;
};

/* Feeds more bytes. Returns 0, or WSB_EUTF8 once the input can no longer be valid UTF-8. */
int wsb_utf8_feed(struct wsb_utf8 *v, const uint8_t *buf, size_t len);

/* True when everything fed so far ends on a character boundary (the message may end here). */
bool wsb_utf8_complete(const struct wsb_utf8 *v);

/* True when buf is complete, valid UTF-8. */
bool wsb_utf8_valid(const uint8_t *buf, size_t len);

#endif
