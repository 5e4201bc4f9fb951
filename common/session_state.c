/* The session state message (session_state.h): one field list, walked to size, write and read. */
#include "session_state.h"

#include <errno.h>
#include <string.h>

#include "errors.h"

#define STATE_FLAG_ADMITTED  0x01u
#define STATE_FLAG_PROVEN    0x02u
#define STATE_FLAG_HEARD     0x04u
#define LEG_FLAG_PARTIAL_OUT 0x01u
#define LEG_FLAG_PING        0x02u
#define PMD_FLAG_ON          0x01u
#define PMD_FLAG_SERVER_NO   0x02u /* server_no_context_takeover */
#define PMD_FLAG_CLIENT_NO   0x04u /* client_no_context_takeover */
#define PMD_BITS_MIN         9     /* zlib's raw deflate makes no 8-bit window (pmd.h) */
#define PMD_BITS_MAX         15
#define FAMILY_INET          2
#define FAMILY_INET6         10
#define STATE_KNOWN_FLAGS    (STATE_FLAG_ADMITTED | STATE_FLAG_PROVEN | STATE_FLAG_HEARD)
#define LEG_KNOWN_FLAGS      (LEG_FLAG_PARTIAL_OUT | LEG_FLAG_PING)
#define PMD_KNOWN_FLAGS      (PMD_FLAG_ON | PMD_FLAG_SERVER_NO | PMD_FLAG_CLIENT_NO)

/*
 * One walk over the fields serves all three directions, so the writer and the reader cannot
 * disagree on the order: counting (out == NULL, in == NULL), writing (out) and reading (in).
 * Reading past the end sets bad; the first problem sticks.
 */
struct walk {
  uint8_t *out;
  const uint8_t *in;
  size_t len;       /* bytes written, read or counted so far */
  size_t cap;       /* for reading: bytes the message has */
  unsigned version; /* the format walked: fields newer than it are not there */
  bool bad;
};

static void put_raw(struct walk *w, void *v, size_t n) {
  if (w->in != NULL) {
    if (w->bad || n > w->cap - w->len) {
      w->bad = true;
      memset(v, 0, n);
      return;
    }
    memcpy(v, w->in + w->len, n);
  } else if (w->out != NULL) {
    memcpy(w->out + w->len, v, n);
  }
  w->len += n;
}

/* Integers travel little-endian whatever the host is. */
static void field_uint(struct walk *w, void *v, size_t size) {
  uint8_t b[8];
  uint64_t x = 0;
  if (w->in == NULL) {
    switch (size) {
    case 1:
      x = *(uint8_t *)v;
      break;
    case 2:
      x = *(uint16_t *)v;
      break;
    case 4:
      x = *(uint32_t *)v;
      break;
    default:
      x = *(uint64_t *)v;
      break;
    }
    for (size_t i = 0; i < size; i++)
      b[i] = (uint8_t)(x >> (8 * i));
  }
  put_raw(w, b, size);
  if (w->in == NULL)
    return;
  for (size_t i = 0; i < size; i++)
    x |= (uint64_t)b[i] << (8 * i);
  switch (size) {
  case 1:
    *(uint8_t *)v = (uint8_t)x;
    break;
  case 2:
    *(uint16_t *)v = (uint16_t)x;
    break;
  case 4:
    *(uint32_t *)v = (uint32_t)x;
    break;
  default:
    *(uint64_t *)v = x;
    break;
  }
}

#define FIELD(w, v) field_uint((w), &(v), sizeof(v))

static void field_bytes(struct walk *w, struct wsb_state_bytes *b) {
  FIELD(w, b->len);
  if (w->in != NULL) {
    if (w->bad || b->len > w->cap - w->len) {
      w->bad = true;
      b->p = NULL;
      b->len = 0;
      return;
    }
    b->p = w->in + w->len;
  } else if (w->out != NULL && b->len > 0) {
    memcpy(w->out + w->len, b->p, b->len);
  }
  w->len += b->len;
}

static void walk_leg(struct walk *w, struct wsb_state_leg *l) {
  field_bytes(w, &l->pending);
  field_bytes(w, &l->queued);
  field_bytes(w, &l->hold);
  FIELD(w, l->msg_len);
  FIELD(w, l->open_opcode);
  uint8_t flags =
      (l->partial_out ? LEG_FLAG_PARTIAL_OUT : 0) | (l->ping_outstanding ? LEG_FLAG_PING : 0);
  FIELD(w, flags);
  if (w->in != NULL) {
    l->partial_out = flags & LEG_FLAG_PARTIAL_OUT;
    l->ping_outstanding = flags & LEG_FLAG_PING;
    w->bad |= (flags & ~LEG_KNOWN_FLAGS) != 0;
  }
  FIELD(w, l->last_rx_ms);
  FIELD(w, l->ping_sent_ms);
}

static void walk_address(struct walk *w, uint8_t *family, uint8_t addr[16]) {
  FIELD(w, *family);
  put_raw(w, addr, 16);
}

static void walk_pmd(struct walk *w, struct wsb_pmd_params *p) {
  uint8_t flags = (p->on ? PMD_FLAG_ON : 0) | (p->server_no_takeover ? PMD_FLAG_SERVER_NO : 0) |
                  (p->client_no_takeover ? PMD_FLAG_CLIENT_NO : 0);
  FIELD(w, flags);
  FIELD(w, p->server_bits);
  if (w->in != NULL) {
    p->on = flags & PMD_FLAG_ON;
    p->server_no_takeover = flags & PMD_FLAG_SERVER_NO;
    p->client_no_takeover = flags & PMD_FLAG_CLIENT_NO;
    w->bad |= (flags & ~PMD_KNOWN_FLAGS) != 0;
  }
}

static void walk_state(struct walk *w, struct wsb_state *st) {
  FIELD(w, st->id);
  field_bytes(w, &st->pool);
  field_bytes(w, &st->backend);
  field_bytes(w, &st->protocol);
  FIELD(w, st->nused);
  if (st->nused > WSB_STATE_USED_MAX) {
    w->bad = true;
    return;
  }
  for (unsigned i = 0; i < st->nused; i++)
    field_bytes(w, &st->used[i]);
  field_bytes(w, &st->head);
  FIELD(w, st->path_off);
  FIELD(w, st->path_len);
  FIELD(w, st->host_off);
  FIELD(w, st->ua_off);
  FIELD(w, st->host_len);
  FIELD(w, st->ua_len);
  FIELD(w, st->path_strip);
  FIELD(w, st->started_ms);
  FIELD(w, st->backend_since_ms);
  FIELD(w, st->last_data_ms);
  for (int d = 0; d < 2; d++) {
    FIELD(w, st->messages[d]);
    FIELD(w, st->bytes[d]);
  }
  FIELD(w, st->failovers);
  FIELD(w, st->connect_ms);
  uint8_t flags = (st->admitted ? STATE_FLAG_ADMITTED : 0) |
                  (st->backend_proven ? STATE_FLAG_PROVEN : 0) |
                  (st->backend_heard ? STATE_FLAG_HEARD : 0);
  FIELD(w, flags);
  if (w->in != NULL) {
    st->admitted = flags & STATE_FLAG_ADMITTED;
    st->backend_proven = flags & STATE_FLAG_PROVEN;
    st->backend_heard = flags & STATE_FLAG_HEARD;
    w->bad |= (flags & ~STATE_KNOWN_FLAGS) != 0;
  }
  walk_address(w, &st->client_family, st->client_addr);
  walk_address(w, &st->peer_family, st->peer_addr);
  FIELD(w, st->peer_port);
  walk_address(w, &st->local_family, st->local_addr);
  FIELD(w, st->local_port);
  field_bytes(w, &st->replay);
  FIELD(w, st->replay_open);
  FIELD(w, st->replay_seen);
  for (int i = 0; i < WSB_STATE_LEGS; i++)
    walk_leg(w, &st->legs[i]);
  if (w->version < 2)
    return;
  walk_pmd(w, &st->pmd);
  field_bytes(w, &st->route);
}

static bool name_ok(const struct wsb_state_bytes *b) {
  return b->len >= 1 && b->len <= WSB_STATE_NAME_MAX && memchr(b->p, '\0', b->len) == NULL;
}

static bool within(uint64_t off, uint64_t len, uint64_t total) {
  return off + len <= total;
}

static bool family_ok(uint8_t f) {
  return f == 0 || f == FAMILY_INET || f == FAMILY_INET6;
}

static bool leg_ok(const struct wsb_state_leg *l, bool backend) {
  if (l->open_opcode > 2 || (l->open_opcode == 0 && (l->msg_len != 0 || l->partial_out)))
    return false;
  /* Only the backend leg holds fragments back, and only of an open message. */
  return l->hold.len == 0 || (backend && l->open_opcode != 0);
}

/* Compression off says nothing else; on carries no zlib stream, so only a session needing none
   (no context takeover either way) can be written down (session_state.h "Compression"). */
static bool pmd_ok(const struct wsb_pmd_params *p) {
  if (!p->on)
    return !p->server_no_takeover && !p->client_no_takeover && p->server_bits == 0;
  return p->server_no_takeover && p->client_no_takeover && p->server_bits >= PMD_BITS_MIN &&
         p->server_bits <= PMD_BITS_MAX;
}

/* The rules both ends hold a state to: what the worker taking it relies on without checking. */
static bool state_ok(const struct wsb_state *st) {
  if (!name_ok(&st->pool) || !name_ok(&st->backend) || st->protocol.len > WSB_STATE_PROTO_MAX)
    return false;
  if (st->protocol.len > 0 && memchr(st->protocol.p, '\0', st->protocol.len) != NULL)
    return false;
  if (st->nused < 1 || st->nused > WSB_STATE_USED_MAX)
    return false;
  for (unsigned i = 0; i < st->nused; i++)
    if (!name_ok(&st->used[i]))
      return false;
  uint32_t hl = st->head.len;
  if (hl == 0 || !within(st->path_off, st->path_len, hl) ||
      !within(st->host_off, st->host_len, hl) || !within(st->ua_off, st->ua_len, hl) ||
      st->path_strip > st->path_len)
    return false;
  if (!family_ok(st->client_family) || !family_ok(st->peer_family) || !family_ok(st->local_family))
    return false;
  if (st->replay_open > st->replay.len || st->replay_seen > st->replay.len)
    return false;
  if (!pmd_ok(&st->pmd) || st->route.len > WSB_STATE_ROUTE_MAX ||
      (st->route.len > 0 && memchr(st->route.p, '\0', st->route.len) != NULL))
    return false;
  return leg_ok(&st->legs[WSB_STATE_CLIENT], false) && leg_ok(&st->legs[WSB_STATE_BACKEND], true);
}

static void walk_header(struct walk *w, uint32_t *magic, uint16_t *version, uint16_t *flags,
                        uint32_t *total, uint32_t *reserved) {
  FIELD(w, *magic);
  FIELD(w, *version);
  FIELD(w, *flags);
  FIELD(w, *total);
  FIELD(w, *reserved);
}

size_t wsb_session_state_size(const struct wsb_state *st) {
  struct walk w = {.version = WSB_STATE_VERSION};
  uint32_t magic = 0, total = 0, reserved = 0;
  uint16_t version = 0, flags = 0;
  walk_header(&w, &magic, &version, &flags, &total, &reserved);
  /* The walk only reads st while counting. */
  walk_state(&w, (struct wsb_state *)(uintptr_t)st);
  return w.bad || w.len > WSB_STATE_MAX_BYTES ? 0 : w.len;
}

ssize_t wsb_session_state_encode(const struct wsb_state *st, uint8_t *out, size_t cap) {
  if (!state_ok(st))
    return WSB_ESTATE;
  size_t n = wsb_session_state_size(st);
  if (n == 0 || n > cap)
    return -E2BIG;
  struct walk w = {.out = out, .version = WSB_STATE_VERSION};
  uint32_t magic = WSB_STATE_MAGIC, total = (uint32_t)n, reserved = 0;
  uint16_t version = WSB_STATE_VERSION, flags = 0;
  walk_header(&w, &magic, &version, &flags, &total, &reserved);
  walk_state(&w, (struct wsb_state *)(uintptr_t)st);
  return (ssize_t)w.len;
}

ssize_t wsb_session_state_peek(const uint8_t *buf, size_t len) {
  if (len < WSB_STATE_HEADER_LEN)
    return WSB_PARTIAL;
  struct walk w = {.in = buf, .cap = WSB_STATE_HEADER_LEN};
  uint32_t magic = 0, total = 0, reserved = 0;
  uint16_t version = 0, flags = 0;
  walk_header(&w, &magic, &version, &flags, &total, &reserved);
  if (magic != WSB_STATE_MAGIC)
    return WSB_ESTATE;
  /* The version before anything else: a newer format may use flags and reserved. */
  if (version < WSB_STATE_VERSION_MIN || version > WSB_STATE_VERSION)
    return WSB_ESTATE_VERSION;
  if (flags != 0 || reserved != 0 || total < WSB_STATE_HEADER_LEN)
    return WSB_ESTATE;
  if (total > WSB_STATE_MAX_BYTES)
    return -E2BIG;
  return (ssize_t)total;
}

ssize_t wsb_session_state_decode(struct wsb_state *st, const uint8_t *buf, size_t len) {
  ssize_t total = wsb_session_state_peek(buf, len);
  if (total < 0)
    return total;
  if ((size_t)total > len)
    return WSB_PARTIAL;
  memset(st, 0, sizeof(*st));
  st->version = (uint16_t)(buf[4] | buf[5] << 8); /* peek read it: one it knows */
  struct walk w = {
      .in = buf, .cap = (size_t)total, .len = WSB_STATE_HEADER_LEN, .version = st->version};
  walk_state(&w, st);
  /* A field past the announced end, or bytes left over after the last: not this format. */
  if (w.bad || w.len != (size_t)total || !state_ok(st))
    return WSB_ESTATE;
  return total;
}
