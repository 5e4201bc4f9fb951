/* Unit tests for common/session_state.c: every field, versions, truncation, size, format 2. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "run_suite.h"
#include "session_state.h"

static const char head[] = "GET /chat/room?x=1 HTTP/1.1\r\nHost: example.test\r\n"
                           "User-Agent: t/1\r\nUpgrade: websocket\r\n\r\n";

static struct wsb_state_bytes bytes(const char *s) {
  return (struct wsb_state_bytes){(const uint8_t *)s, (uint32_t)strlen(s)};
}

/* A state with no field at its zero value, each distinct from the others. */
static void full_state(struct wsb_state *st) {
  memset(st, 0, sizeof(*st));
  st->id = 0x0123456789abcdefull;
  st->pool = bytes("chat");
  st->backend = bytes("b2#127.0.0.1:9002");
  st->protocol = bytes("chat.v2");
  st->nused = 3;
  st->used[0] = bytes("b1");
  st->used[1] = bytes("b3");
  st->used[2] = bytes("b2#127.0.0.1:9002");
  st->head = bytes(head);
  st->path_off = 4;
  st->path_len = 14;
  st->host_off = 35;
  st->host_len = 12;
  st->ua_off = 61;
  st->ua_len = 3;
  st->path_strip = 5;
  st->started_ms = 1765000000123ull;
  st->backend_since_ms = 1765000001456ull;
  st->last_data_ms = 1765000002789ull;
  st->messages[0] = 11;
  st->messages[1] = 22;
  st->bytes[0] = 3300000000ull;
  st->bytes[1] = 4400000000ull;
  st->failovers = 2;
  st->connect_ms = 17;
  st->admitted = true;
  st->backend_proven = true;
  st->backend_heard = true;
  st->client_family = 10;
  st->peer_family = 2;
  st->local_family = 2;
  st->peer_port = 50123;
  st->local_port = 8080;
  for (int i = 0; i < 16; i++) {
    st->client_addr[i] = (uint8_t)(0x20 + i);
    st->peer_addr[i] = (uint8_t)(i < 4 ? 127 - i : 0);
    st->local_addr[i] = (uint8_t)(i < 4 ? 10 + i : 0);
  }
  st->replay = bytes("\x81\x85"
                     "abcd"
                     "12345"
                     "\x01\x83"
                     "efgh"
                     "678");
  st->replay_open = 9;
  st->replay_seen = 11;
  struct wsb_state_leg *c = &st->legs[WSB_STATE_CLIENT], *b = &st->legs[WSB_STATE_BACKEND];
  c->pending = bytes("\x80\x85"
                     "ab");
  c->queued = bytes("\x81\x02hi");
  c->msg_len = 3;
  c->open_opcode = 1;
  c->partial_out = true;
  c->ping_outstanding = true;
  c->last_rx_ms = 1765000003000ull;
  c->ping_sent_ms = 1765000003500ull;
  b->pending = bytes("\x82");
  b->queued = bytes("\x8a\x00");
  b->hold = bytes("\x02\x03xyz");
  b->msg_len = 3;
  b->open_opcode = 2;
  b->last_rx_ms = 1765000004000ull;
  st->pmd = (struct wsb_pmd_params){
      .on = true, .server_no_takeover = true, .client_no_takeover = true, .server_bits = 12};
  st->route = bytes("chat-route");
}

/* Bytes format 2 adds after the legs for full_state: pmd flags and bits, the route. */
#define TAIL_LEN (2 + 4 + 10)

static void assert_same_bytes(struct wsb_state_bytes a, struct wsb_state_bytes b) {
  ck_assert_uint_eq(a.len, b.len);
  ck_assert(a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static void assert_same_leg(const struct wsb_state_leg *a, const struct wsb_state_leg *b) {
  assert_same_bytes(a->pending, b->pending);
  assert_same_bytes(a->queued, b->queued);
  assert_same_bytes(a->hold, b->hold);
  ck_assert_uint_eq(a->msg_len, b->msg_len);
  ck_assert_uint_eq(a->open_opcode, b->open_opcode);
  ck_assert(a->partial_out == b->partial_out);
  ck_assert(a->ping_outstanding == b->ping_outstanding);
  ck_assert_uint_eq(a->last_rx_ms, b->last_rx_ms);
  ck_assert_uint_eq(a->ping_sent_ms, b->ping_sent_ms);
}

static void assert_same(const struct wsb_state *a, const struct wsb_state *b) {
  ck_assert_uint_eq(a->id, b->id);
  assert_same_bytes(a->pool, b->pool);
  assert_same_bytes(a->backend, b->backend);
  assert_same_bytes(a->protocol, b->protocol);
  ck_assert_uint_eq(a->nused, b->nused);
  for (unsigned i = 0; i < a->nused; i++)
    assert_same_bytes(a->used[i], b->used[i]);
  assert_same_bytes(a->head, b->head);
  ck_assert_uint_eq(a->path_off, b->path_off);
  ck_assert_uint_eq(a->path_len, b->path_len);
  ck_assert_uint_eq(a->host_off, b->host_off);
  ck_assert_uint_eq(a->host_len, b->host_len);
  ck_assert_uint_eq(a->ua_off, b->ua_off);
  ck_assert_uint_eq(a->ua_len, b->ua_len);
  ck_assert_uint_eq(a->path_strip, b->path_strip);
  ck_assert_uint_eq(a->started_ms, b->started_ms);
  ck_assert_uint_eq(a->backend_since_ms, b->backend_since_ms);
  ck_assert_uint_eq(a->last_data_ms, b->last_data_ms);
  for (int d = 0; d < 2; d++) {
    ck_assert_uint_eq(a->messages[d], b->messages[d]);
    ck_assert_uint_eq(a->bytes[d], b->bytes[d]);
  }
  ck_assert_uint_eq(a->failovers, b->failovers);
  ck_assert_uint_eq(a->connect_ms, b->connect_ms);
  ck_assert(a->admitted == b->admitted);
  ck_assert(a->backend_proven == b->backend_proven);
  ck_assert(a->backend_heard == b->backend_heard);
  ck_assert_uint_eq(a->client_family, b->client_family);
  ck_assert_uint_eq(a->peer_family, b->peer_family);
  ck_assert_uint_eq(a->local_family, b->local_family);
  ck_assert_uint_eq(a->peer_port, b->peer_port);
  ck_assert_uint_eq(a->local_port, b->local_port);
  ck_assert(memcmp(a->client_addr, b->client_addr, 16) == 0);
  ck_assert(memcmp(a->peer_addr, b->peer_addr, 16) == 0);
  ck_assert(memcmp(a->local_addr, b->local_addr, 16) == 0);
  assert_same_bytes(a->replay, b->replay);
  ck_assert_uint_eq(a->replay_open, b->replay_open);
  ck_assert_uint_eq(a->replay_seen, b->replay_seen);
  for (int i = 0; i < WSB_STATE_LEGS; i++)
    assert_same_leg(&a->legs[i], &b->legs[i]);
  ck_assert(a->pmd.on == b->pmd.on);
  ck_assert(a->pmd.server_no_takeover == b->pmd.server_no_takeover);
  ck_assert(a->pmd.client_no_takeover == b->pmd.client_no_takeover);
  ck_assert_uint_eq(a->pmd.server_bits, b->pmd.server_bits);
  assert_same_bytes(a->route, b->route);
}

static size_t encode(const struct wsb_state *st, uint8_t *buf, size_t cap) {
  ssize_t n = wsb_session_state_encode(st, buf, cap);
  ck_assert_int_gt(n, WSB_STATE_HEADER_LEN);
  ck_assert_uint_eq((size_t)n, wsb_session_state_size(st));
  return (size_t)n;
}

START_TEST(every_field_round_trips) {
  struct wsb_state st, got;
  uint8_t buf[1024];
  full_state(&st);
  size_t n = encode(&st, buf, sizeof(buf));
  ck_assert_int_eq(wsb_session_state_peek(buf, n), (ssize_t)n);
  ck_assert_int_eq(wsb_session_state_decode(&got, buf, n), (ssize_t)n);
  assert_same(&st, &got);
  ck_assert_uint_eq(got.version, WSB_STATE_VERSION);
  ck_assert_uint_eq(buf[4], 2);
  /* Decoding points into the message: nothing was copied or allocated. */
  ck_assert(got.head.p > buf && got.head.p < buf + n);
  /* Bytes after the message belong to the next one and are not taken. */
  buf[n] = 0x55;
  ck_assert_int_eq(wsb_session_state_decode(&got, buf, n + 1), (ssize_t)n);
}
END_TEST

/* Each field really is carried: a state differing in any one field encodes differently. */
START_TEST(each_field_changes_the_message) {
  struct wsb_state a, b;
  uint8_t ba[1024], bb[1024];
  full_state(&a);
  size_t na = encode(&a, ba, sizeof(ba));
#define DIFFERS(stmt)                                          \
  do {                                                         \
    full_state(&b);                                            \
    stmt;                                                      \
    size_t nb = encode(&b, bb, sizeof(bb));                    \
    ck_assert_msg(nb != na || memcmp(ba, bb, na) != 0, #stmt); \
  } while (0)
  DIFFERS(b.id++);
  DIFFERS(b.pool = bytes("chaT"));
  DIFFERS(b.backend = bytes("b2#127.0.0.1:9003"));
  DIFFERS(b.protocol = bytes(""));
  DIFFERS(b.nused = 2);
  DIFFERS(b.used[0] = bytes("b0"));
  DIFFERS(b.path_off++);
  DIFFERS(b.path_len--);
  DIFFERS(b.host_off++);
  DIFFERS(b.host_len--);
  DIFFERS(b.ua_off--);
  DIFFERS(b.ua_len--);
  DIFFERS(b.path_strip = 0);
  DIFFERS(b.started_ms++);
  DIFFERS(b.backend_since_ms++);
  DIFFERS(b.last_data_ms++);
  DIFFERS(b.messages[0]++);
  DIFFERS(b.messages[1]++);
  DIFFERS(b.bytes[0]++);
  DIFFERS(b.bytes[1]++);
  DIFFERS(b.failovers++);
  DIFFERS(b.connect_ms++);
  DIFFERS(b.admitted = false);
  DIFFERS(b.backend_proven = false);
  DIFFERS(b.backend_heard = false);
  DIFFERS(b.client_family = 2);
  DIFFERS(b.peer_family = 10);
  DIFFERS(b.local_family = 0);
  DIFFERS(b.peer_port++);
  DIFFERS(b.local_port++);
  DIFFERS(b.client_addr[15]++);
  DIFFERS(b.peer_addr[3]++);
  DIFFERS(b.local_addr[0]++);
  DIFFERS(b.replay = bytes("\x81\x85"
                           "abcd"
                           "12345"
                           "\x01\x83"
                           "efgh"
                           "679"));
  DIFFERS(b.replay_open--);
  DIFFERS(b.replay_seen--);
  for (int i = 0; i < WSB_STATE_LEGS; i++) {
    struct wsb_state_leg *l = &b.legs[i];
    DIFFERS(l->pending = bytes("x"));
    DIFFERS(l->queued = bytes(""));
    DIFFERS(l->msg_len++);
    DIFFERS(l->open_opcode ^= 3);
    DIFFERS(l->partial_out = !l->partial_out);
    DIFFERS(l->ping_outstanding = !l->ping_outstanding);
    DIFFERS(l->last_rx_ms++);
    DIFFERS(l->ping_sent_ms++);
  }
  DIFFERS(b.legs[WSB_STATE_BACKEND].hold = bytes("\x02\x03xyZ"));
  DIFFERS(b.pmd = (struct wsb_pmd_params){0});
  DIFFERS(b.pmd.server_bits = 15);
  DIFFERS(b.route = bytes("chat-routE"));
  DIFFERS(b.route = bytes(""));
  /* The version field is the decoder's: the encoder writes its own whatever it says. */
  full_state(&b);
  b.version = 1;
  ck_assert(encode(&b, bb, sizeof(bb)) == na && memcmp(ba, bb, na) == 0);
#undef DIFFERS
}
END_TEST

START_TEST(another_version_is_refused) {
  struct wsb_state st, got;
  uint8_t buf[1024];
  full_state(&st);
  size_t n = encode(&st, buf, sizeof(buf));
  buf[4] = WSB_STATE_VERSION + 1;
  ck_assert_int_eq(wsb_session_state_peek(buf, n), WSB_ESTATE_VERSION);
  ck_assert_int_eq(wsb_session_state_decode(&got, buf, n), WSB_ESTATE_VERSION);
  buf[4] = 0; /* below the oldest format read */
  ck_assert_int_eq(wsb_session_state_peek(buf, n), WSB_ESTATE_VERSION);
  buf[4] = WSB_STATE_VERSION;
  buf[5] = 1; /* 258: the version is 16 bits */
  ck_assert_int_eq(wsb_session_state_decode(&got, buf, n), WSB_ESTATE_VERSION);
  buf[5] = 0;
  buf[4] = WSB_STATE_VERSION + 1;
  /* Whatever else a newer header says, the version is what the answer names. */
  buf[6] = 1;
  ck_assert_int_eq(wsb_session_state_decode(&got, buf, n), WSB_ESTATE_VERSION);
  buf[4] = WSB_STATE_VERSION;
  ck_assert_int_eq(wsb_session_state_decode(&got, buf, n), WSB_ESTATE);
  buf[6] = 0;
  buf[0] ^= 0x20; /* another magic: not a state message at all */
  ck_assert_int_eq(wsb_session_state_decode(&got, buf, n), WSB_ESTATE);
}
END_TEST

/* A format-1 message (what the release before format 2 writes): format 2's message for the same
   session without compression and route, less the 6 bytes those take, under a version 1 header.
   It is read (session_state.h "Versions"), with compression off and no route. */
static size_t format1(uint8_t *buf, size_t cap) {
  struct wsb_state st;
  full_state(&st);
  st.pmd = (struct wsb_pmd_params){0};
  st.route = bytes("");
  size_t n = encode(&st, buf, cap) - 6;
  buf[4] = 1;
  memcpy(buf + 8, &(uint32_t){(uint32_t)n}, 4);
  return n;
}

START_TEST(format_1_is_read) {
  struct wsb_state st, got;
  uint8_t buf[1024], again[1024];
  size_t n = format1(buf, sizeof(buf));
  ck_assert_int_eq(wsb_session_state_peek(buf, n), (ssize_t)n);
  ck_assert_int_eq(wsb_session_state_decode(&got, buf, n), (ssize_t)n);
  ck_assert_uint_eq(got.version, 1);
  full_state(&st);
  st.pmd = (struct wsb_pmd_params){0};
  st.route = bytes("");
  assert_same(&st, &got);
  /* Written again it is a format-2 message, the same session. */
  ck_assert_int_eq(wsb_session_state_encode(&got, again, sizeof(again)), (ssize_t)n + 6);
  ck_assert_uint_eq(again[4], WSB_STATE_VERSION);
  ck_assert(memcmp(again + WSB_STATE_HEADER_LEN, buf + WSB_STATE_HEADER_LEN,
                   n - WSB_STATE_HEADER_LEN) == 0);
  /* Every prefix asks for more; a header announcing less runs a field past the end. */
  for (size_t len = 0; len < n; len++)
    ck_assert_int_eq(wsb_session_state_decode(&got, buf, len), WSB_PARTIAL);
  memcpy(buf + 8, &(uint32_t){(uint32_t)n - 1}, 4);
  ck_assert_int_eq(wsb_session_state_decode(&got, buf, n), WSB_ESTATE);
  /* Format 2's fields under a version 1 header: bytes left over. */
  n = encode(&st, buf, sizeof(buf));
  buf[4] = 1;
  ck_assert_int_eq(wsb_session_state_decode(&got, buf, n), WSB_ESTATE);
  /* And format 1's under a version 2 header: a field past the end. */
  n = format1(buf, sizeof(buf));
  buf[4] = 2;
  ck_assert_int_eq(wsb_session_state_decode(&got, buf, n), WSB_ESTATE);
}
END_TEST

/* Format 2's new fields, their own rules (full_state sets them, so the truncation test cuts the
   message at every byte of them too). */
START_TEST(format_2_fields) {
  struct wsb_state st, got;
  uint8_t buf[1024], good[1024];
  full_state(&st);
  size_t n = encode(&st, good, sizeof(good));
  /* The pmd flags: an unknown bit; on with context takeover either way; window bits. */
  size_t flags = n - TAIL_LEN, bits = flags + 1;
  uint8_t bad_flags[] = {0x08, 0x80, 0x01, 0x03, 0x05, 0x06, 0x02};
  for (size_t i = 0; i < sizeof(bad_flags); i++) {
    memcpy(buf, good, n);
    buf[flags] = bad_flags[i];
    ck_assert_msg(wsb_session_state_decode(&got, buf, n) == WSB_ESTATE, "flags %#x", bad_flags[i]);
  }
  uint8_t bad_bits[] = {0, 8, 16, 255};
  for (size_t i = 0; i < sizeof(bad_bits); i++) {
    memcpy(buf, good, n);
    buf[bits] = bad_bits[i];
    ck_assert_msg(wsb_session_state_decode(&got, buf, n) == WSB_ESTATE, "bits %u", bad_bits[i]);
  }
  for (uint8_t b = 9; b <= 15; b++) {
    memcpy(buf, good, n);
    buf[bits] = b;
    ck_assert_int_eq(wsb_session_state_decode(&got, buf, n), (ssize_t)n);
    ck_assert_uint_eq(got.pmd.server_bits, b);
  }
  /* Compression off with anything else set. */
  memcpy(buf, good, n);
  buf[flags] = 0;
  ck_assert_int_eq(wsb_session_state_decode(&got, buf, n), WSB_ESTATE);
  buf[bits] = 0;
  ck_assert_int_eq(wsb_session_state_decode(&got, buf, n), (ssize_t)n);
  ck_assert(!got.pmd.on);
  /* A NUL in the route name. */
  memcpy(buf, good, n);
  buf[n - 1] = '\0';
  ck_assert_int_eq(wsb_session_state_decode(&got, buf, n), WSB_ESTATE);
}
END_TEST

/* A route name of a route's longest length moves; one byte more is refused both ways. */
START_TEST(route_name_length) {
  struct wsb_state st, got;
  uint8_t buf[1024];
  char name[WSB_STATE_ROUTE_MAX + 2];
  memset(name, 'r', sizeof(name) - 1);
  name[WSB_STATE_ROUTE_MAX] = '\0';
  full_state(&st);
  st.route = bytes(name);
  ck_assert_uint_eq(st.route.len, 63);
  size_t n = encode(&st, buf, sizeof(buf));
  ck_assert_int_eq(wsb_session_state_decode(&got, buf, n), (ssize_t)n);
  assert_same(&st, &got);
  name[WSB_STATE_ROUTE_MAX] = 'r';
  name[WSB_STATE_ROUTE_MAX + 1] = '\0';
  st.route = bytes(name);
  ck_assert_int_eq(wsb_session_state_encode(&st, buf, sizeof(buf)), WSB_ESTATE);
  /* The same 64 bytes written by hand after the 63-byte message: the decoder refuses them. */
  memcpy(buf + n - 63 - 4, &(uint32_t){64}, 4);
  buf[n] = 'r';
  memcpy(buf + 8, &(uint32_t){(uint32_t)n + 1}, 4);
  ck_assert_int_eq(wsb_session_state_decode(&got, buf, n + 1), WSB_ESTATE);
  /* A route name may be empty (a session from format 1 moves on without one). */
  st.route = bytes("");
  n = encode(&st, buf, sizeof(buf));
  ck_assert_int_eq(wsb_session_state_decode(&got, buf, n), (ssize_t)n);
  ck_assert_uint_eq(got.route.len, 0);
}
END_TEST

START_TEST(truncation) {
  struct wsb_state st, got;
  uint8_t buf[1024];
  full_state(&st);
  size_t n = encode(&st, buf, sizeof(buf));
  /* Every prefix asks for more, and its own copy (a guard of nothing after it) is never read
     past its end. */
  for (size_t len = 0; len < n; len++) {
    uint8_t *copy = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, buf, len);
    ck_assert_int_eq(wsb_session_state_decode(&got, copy, len), WSB_PARTIAL);
    free(copy);
  }
  /* A header announcing less than the fields take: a field runs past the end. */
  for (uint32_t total = WSB_STATE_HEADER_LEN; total < n; total++) {
    memcpy(buf + 8, &(uint32_t){total}, 4); /* the tests run on little-endian hosts */
    ck_assert_int_eq(wsb_session_state_decode(&got, buf, n), WSB_ESTATE);
  }
  /* Below the header's own length. */
  memcpy(buf + 8, &(uint32_t){WSB_STATE_HEADER_LEN - 1}, 4);
  ck_assert_int_eq(wsb_session_state_peek(buf, n), WSB_ESTATE);
  /* More than the fields take: bytes left over. */
  memcpy(buf + 8, &(uint32_t){(uint32_t)n + 1}, 4);
  ck_assert_int_eq(wsb_session_state_decode(&got, buf, n + 1), WSB_ESTATE);
}
END_TEST

START_TEST(oversize) {
  struct wsb_state st, got;
  uint8_t buf[1024];
  full_state(&st);
  size_t n = encode(&st, buf, sizeof(buf));
  memcpy(buf + 8, &(uint32_t){WSB_STATE_MAX_BYTES + 1}, 4);
  ck_assert_int_eq(wsb_session_state_peek(buf, n), -E2BIG);
  ck_assert_int_eq(wsb_session_state_decode(&got, buf, n), -E2BIG);
  /* Too much to move: the encoder says so before writing a byte. */
  uint8_t *big = calloc(1, WSB_STATE_MAX_BYTES);
  ck_assert_ptr_nonnull(big);
  st.legs[WSB_STATE_CLIENT].queued = (struct wsb_state_bytes){big, WSB_STATE_MAX_BYTES};
  ck_assert_uint_eq(wsb_session_state_size(&st), 0);
  ck_assert_int_eq(wsb_session_state_encode(&st, buf, sizeof(buf)), -E2BIG);
  free(big);
  /* Room for less than the message. */
  full_state(&st);
  ck_assert_int_eq(wsb_session_state_encode(&st, buf, n - 1), -E2BIG);
  ck_assert_int_eq(wsb_session_state_encode(&st, buf, n), (ssize_t)n);
}
END_TEST

/* States the taking worker could not use are refused at both ends. */
START_TEST(bad_states) {
  struct wsb_state st, got;
  uint8_t buf[1024], good[1024];
  full_state(&st);
  size_t n = encode(&st, good, sizeof(good));
#define REFUSED(stmt)                                                                    \
  do {                                                                                   \
    full_state(&st);                                                                     \
    stmt;                                                                                \
    ck_assert_msg(wsb_session_state_encode(&st, buf, sizeof(buf)) == WSB_ESTATE, #stmt); \
  } while (0)
  REFUSED(st.pool = bytes(""));
  REFUSED(st.backend = ((struct wsb_state_bytes){(const uint8_t *)"b\0c", 3}));
  REFUSED(st.backend.len = WSB_STATE_NAME_MAX + 1);
  REFUSED(st.nused = 0);
  REFUSED(st.nused = WSB_STATE_USED_MAX + 1);
  REFUSED(st.used[2] = bytes(""));
  REFUSED(st.head = bytes(""));
  REFUSED(st.path_off = st.head.len);
  REFUSED(st.host_len = 0xffff);
  REFUSED(st.ua_off = 0xffffffffu);
  REFUSED(st.path_strip = (uint16_t)(st.path_len + 1));
  REFUSED(st.client_family = 1);
  REFUSED(st.replay_open = st.replay.len + 1);
  REFUSED(st.replay_seen = st.replay.len + 1);
  REFUSED(st.legs[WSB_STATE_CLIENT].open_opcode = 3);
  REFUSED(st.legs[WSB_STATE_CLIENT].open_opcode = 0);
  REFUSED(st.legs[WSB_STATE_CLIENT].hold = bytes("x"));
  REFUSED(st.legs[WSB_STATE_BACKEND].open_opcode = 0);
  REFUSED(st.pmd.server_no_takeover = false);
  REFUSED(st.pmd.client_no_takeover = false);
  REFUSED(st.pmd.server_bits = 8);
  REFUSED(st.pmd.server_bits = 16);
  REFUSED(st.pmd.on = false);
  REFUSED(st.route = ((struct wsb_state_bytes){(const uint8_t *)"a\0b", 3}));
#undef REFUSED
  /* The same rules on decoding: a leg flag no writer sets is refused. */
  size_t leg_flags = n - TAIL_LEN - 17; /* the backend leg's: last_rx_ms and ping_sent_ms follow */
  memcpy(buf, good, n);
  buf[leg_flags] |= 0x80;
  ck_assert_int_eq(wsb_session_state_decode(&got, buf, n), WSB_ESTATE);
  memcpy(buf, good, n);
  buf[leg_flags] ^= 0x02; /* its ping flag: a known bit, still a valid state */
  ck_assert_int_eq(wsb_session_state_decode(&got, buf, n), (ssize_t)n);
  ck_assert(got.legs[WSB_STATE_BACKEND].ping_outstanding);
}
END_TEST

/* Any single byte changed: an error, or a state that writes back to exactly those bytes. */
START_TEST(every_byte_flipped) {
  struct wsb_state st, got;
  uint8_t buf[1024], again[1024];
  full_state(&st);
  size_t n = encode(&st, buf, sizeof(buf));
  for (size_t i = 0; i < n; i++) {
    for (unsigned bit = 0; bit < 8; bit++) {
      buf[i] ^= (uint8_t)(1u << bit);
      ssize_t rc = wsb_session_state_decode(&got, buf, n);
      if (rc >= 0) {
        ck_assert_int_eq(wsb_session_state_encode(&got, again, sizeof(again)), rc);
        ck_assert(memcmp(again, buf, (size_t)rc) == 0);
      } else {
        ck_assert(rc == WSB_ESTATE || rc == WSB_ESTATE_VERSION || rc == WSB_PARTIAL ||
                  rc == -E2BIG);
      }
      buf[i] ^= (uint8_t)(1u << bit);
    }
  }
}
END_TEST

int main(void) {
  Suite *s = suite_create("session_state");
  TCase *tc = tcase_create("session_state");
  tcase_add_test(tc, every_field_round_trips);
  tcase_add_test(tc, each_field_changes_the_message);
  tcase_add_test(tc, another_version_is_refused);
  tcase_add_test(tc, format_1_is_read);
  tcase_add_test(tc, format_2_fields);
  tcase_add_test(tc, route_name_length);
  tcase_add_test(tc, truncation);
  tcase_add_test(tc, oversize);
  tcase_add_test(tc, bad_states);
  tcase_add_test(tc, every_byte_flipped);
  suite_add_tcase(s, tc);
  return wsb_run_suite(s);
}
