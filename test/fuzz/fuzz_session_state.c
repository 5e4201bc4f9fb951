/* Fuzz target for common/session_state.c: the session state message a new worker reads during a
 * binary upgrade, decoded, checked against its rules and written back byte for byte. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "fuzz.h"
#include "session_state.h"

static bool inside(const struct wsb_state_bytes *b, const uint8_t *msg, size_t len) {
  return b->len == 0 || (b->p >= msg && b->len <= len && b->p - msg <= (ptrdiff_t)(len - b->len));
}

static void check_decoded(const struct wsb_state *st, const uint8_t *msg, size_t len) {
  /* Everything the taking worker relies on without looking again. */
  REQUIRE(st->nused >= 1 && st->nused <= WSB_STATE_USED_MAX);
  REQUIRE(st->pool.len >= 1 && st->pool.len <= WSB_STATE_NAME_MAX && inside(&st->pool, msg, len));
  REQUIRE(st->backend.len >= 1 && st->backend.len <= WSB_STATE_NAME_MAX);
  REQUIRE(inside(&st->backend, msg, len) && inside(&st->protocol, msg, len));
  for (unsigned i = 0; i < st->nused; i++)
    REQUIRE(st->used[i].len >= 1 && inside(&st->used[i], msg, len));
  REQUIRE(inside(&st->head, msg, len) && st->head.len > 0);
  REQUIRE((uint64_t)st->path_off + st->path_len <= st->head.len);
  REQUIRE((uint64_t)st->host_off + st->host_len <= st->head.len);
  REQUIRE((uint64_t)st->ua_off + st->ua_len <= st->head.len);
  REQUIRE(st->path_strip <= st->path_len);
  REQUIRE(inside(&st->replay, msg, len) && st->replay_open <= st->replay.len &&
          st->replay_seen <= st->replay.len);
  for (int i = 0; i < WSB_STATE_LEGS; i++) {
    const struct wsb_state_leg *l = &st->legs[i];
    REQUIRE(inside(&l->pending, msg, len) && inside(&l->queued, msg, len) &&
            inside(&l->hold, msg, len));
    REQUIRE(l->open_opcode <= 2);
    REQUIRE(l->hold.len == 0 || (i == WSB_STATE_BACKEND && l->open_opcode != 0));
  }
  /* Format 2: compression only without a zlib stream, a route name of a route's length. */
  REQUIRE(!st->pmd.on || (st->pmd.server_no_takeover && st->pmd.client_no_takeover &&
                          st->pmd.server_bits >= 9 && st->pmd.server_bits <= 15));
  REQUIRE(inside(&st->route, msg, len) && st->route.len <= WSB_STATE_ROUTE_MAX);
  REQUIRE(st->version >= WSB_STATE_VERSION_MIN && st->version <= WSB_STATE_VERSION);
  REQUIRE(st->version >= 2 || (!st->pmd.on && st->route.len == 0));
}

/*
 * Byte 0, bit 0: the rest is the message as it is; else a header of the current version announcing
 * exactly the rest is put before it, so the fuzzer spends its time on the fields.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 1 << 20)
    return 0;
  size_t len = size - 1;
  uint8_t *msg = malloc(len + WSB_STATE_HEADER_LEN + 1);
  REQUIRE(msg != NULL);
  if (data[0] & 1) {
    memcpy(msg, data + 1, len);
  } else {
    uint32_t total = (uint32_t)(len + WSB_STATE_HEADER_LEN);
    const uint8_t header[WSB_STATE_HEADER_LEN] = {'W',
                                                  'S',
                                                  'B',
                                                  'S',
                                                  WSB_STATE_VERSION,
                                                  0,
                                                  0,
                                                  0,
                                                  (uint8_t)total,
                                                  (uint8_t)(total >> 8),
                                                  (uint8_t)(total >> 16),
                                                  (uint8_t)(total >> 24)};
    memcpy(msg, header, WSB_STATE_HEADER_LEN);
    memcpy(msg + WSB_STATE_HEADER_LEN, data + 1, len);
    len = total;
  }
  struct wsb_state st;
  ssize_t peek = wsb_session_state_peek(msg, len);
  ssize_t rc = wsb_session_state_decode(&st, msg, len);
  REQUIRE(rc == WSB_PARTIAL || rc == WSB_ESTATE || rc == WSB_ESTATE_VERSION || rc == -E2BIG ||
          (rc >= WSB_STATE_HEADER_LEN && (size_t)rc <= len));
  /* The decoder agrees with the header it peeked at. */
  REQUIRE(peek < 0 ? rc == peek : (rc == WSB_PARTIAL) == ((size_t)peek > len));
  if (rc >= 0) {
    REQUIRE(rc == peek);
    check_decoded(&st, msg, (size_t)rc);
    /* Written back (in the current format, which an older message's fields all fit), it is the
       same bytes: no field is read but dropped. */
    size_t n = wsb_session_state_size(&st);
    uint8_t *again = malloc(n);
    REQUIRE(n > 0 && again != NULL);
    REQUIRE(wsb_session_state_encode(&st, again, n) == (ssize_t)n);
    if (st.version == WSB_STATE_VERSION) {
      REQUIRE(n == (size_t)rc && memcmp(again, msg, n) == 0);
    } else { /* format 1: the same fields, then compression off and no route */
      static const uint8_t none[6]; /* pmd flags, window bits, the route's length */
      REQUIRE(n == (size_t)rc + sizeof(none) && memcmp(again + n - 6, none, 6) == 0);
      REQUIRE(memcmp(again + WSB_STATE_HEADER_LEN, msg + WSB_STATE_HEADER_LEN,
                     (size_t)rc - WSB_STATE_HEADER_LEN) == 0);
    }
    free(again);
  }
  free(msg);
  return 0;
}
