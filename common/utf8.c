/* UTF-8 validation (RFC 3629) with a small DFA, usable across frame and read boundaries. */
#include "utf8.h"

#include <string.h>

#include "errors.h"

/*
 * Every byte falls in one of these classes. Classes split the continuation
 * range (80..BF) in three and single out the lead bytes whose second byte is
 * restricted, which is how overlongs (E0, F0), surrogates (ED) and code points
 * past U+10FFFF (F4) are refused at the second byte rather than at the end.
 */
enum byte_class {
  C_ASCII,    /* 00..7F */
  C_CONT_LO,  /* 80..8F */
  C_CONT_MID, /* 90..9F */
  C_CONT_HI,  /* A0..BF */
  C_BAD,      /* C0, C1 (always overlong), F5..FF (past U+10FFFF) */
  C_LEAD2,    /* C2..DF */
  C_LEAD3_E0, /* E0: second byte A0..BF, else overlong */
  C_LEAD3,    /* E1..EC, EE, EF */
  C_LEAD3_ED, /* ED: second byte 80..9F, else a surrogate */
  C_LEAD4_F0, /* F0: second byte 90..BF, else overlong */
  C_LEAD4,    /* F1..F3 */
  C_LEAD4_F4, /* F4: second byte 80..8F, else past U+10FFFF */
  N_CLASSES
};

/* States say what the rest of the current character must look like. */
enum utf8_state {
  S_ACCEPT, /* on a character boundary; zero so a zeroed struct is ready */
  S_NEED1,  /* one continuation byte of any kind */
  S_NEED2,  /* two continuation bytes */
  S_NEED3,  /* three continuation bytes */
  S_E0,     /* after E0: A0..BF, then one more */
  S_ED,     /* after ED: 80..9F, then one more */
  S_F0,     /* after F0: 90..BF, then two more */
  S_F4,     /* after F4: 80..8F, then two more */
  S_REJECT, /* sticky: no continuation can make the input valid again */
  N_STATES
};

static const uint8_t byte_classes[256] = {
    [0x00 ... 0x7F] = C_ASCII,   [0x80 ... 0x8F] = C_CONT_LO, [0x90 ... 0x9F] = C_CONT_MID,
    [0xA0 ... 0xBF] = C_CONT_HI, [0xC0 ... 0xC1] = C_BAD,     [0xC2 ... 0xDF] = C_LEAD2,
    [0xE0] = C_LEAD3_E0,         [0xE1 ... 0xEC] = C_LEAD3,   [0xED] = C_LEAD3_ED,
    [0xEE ... 0xEF] = C_LEAD3,   [0xF0] = C_LEAD4_F0,         [0xF1 ... 0xF3] = C_LEAD4,
    [0xF4] = C_LEAD4_F4,         [0xF5 ... 0xFF] = C_BAD,
};

/* clang-format off */
#define R S_REJECT
static const uint8_t transitions[N_STATES][N_CLASSES] = {
    /*             ASCII     LO        MID       HI        BAD LEAD2    E0    LEAD3    ED    F0    LEAD4    F4 */
    [S_ACCEPT] = {S_ACCEPT, R,        R,        R,        R,  S_NEED1, S_E0, S_NEED2, S_ED, S_F0, S_NEED3, S_F4},
    [S_NEED1]  = {R,        S_ACCEPT, S_ACCEPT, S_ACCEPT, R,  R,       R,    R,       R,    R,    R,       R},
    [S_NEED2]  = {R,        S_NEED1,  S_NEED1,  S_NEED1,  R,  R,       R,    R,       R,    R,    R,       R},
    [S_NEED3]  = {R,        S_NEED2,  S_NEED2,  S_NEED2,  R,  R,       R,    R,       R,    R,    R,       R},
    [S_E0]     = {R,        R,        R,        S_NEED1,  R,  R,       R,    R,       R,    R,    R,       R},
    [S_ED]     = {R,        S_NEED1,  S_NEED1,  R,        R,  R,       R,    R,       R,    R,    R,       R},
    [S_F0]     = {R,        R,        S_NEED2,  S_NEED2,  R,  R,       R,    R,       R,    R,    R,       R},
    [S_F4]     = {R,        S_NEED2,  R,        R,        R,  R,       R,    R,       R,    R,    R,       R},
    [S_REJECT] = {R,        R,        R,        R,        R,  R,       R,    R,       R,    R,    R,       R},
};
#undef R
/* clang-format on */

#define HIGH_BITS 0x8080808080808080ull

/* Text is mostly ASCII, so on a character boundary whole words of it are skipped at once. */
static size_t skip_ascii(const uint8_t *buf, size_t i, size_t len) {
  while (len - i >= 8) {
    uint64_t word;
    memcpy(&word, buf + i, sizeof(word));
    if ((word & HIGH_BITS) != 0)
      break;
    i += 8;
  }
  while (i < len && buf[i] < 0x80)
    i++;
  return i;
}

int wsb_utf8_feed(struct wsb_utf8 *v, const uint8_t *buf, size_t len) {
  uint32_t state = v->state;
  size_t i = 0;
  while (i < len && state != S_REJECT) {
    if (state == S_ACCEPT) {
      i = skip_ascii(buf, i, len);
      if (i == len)
        break;
    }
    state = transitions[state][byte_classes[buf[i]]];
    i++;
  }
  v->state = state;
  return state == S_REJECT ? WSB_EUTF8 : 0;
}

bool wsb_utf8_complete(const struct wsb_utf8 *v) {
  return v->state == S_ACCEPT;
}

bool wsb_utf8_valid(const uint8_t *buf, size_t len) {
  struct wsb_utf8 v = {0};
  return wsb_utf8_feed(&v, buf, len) == 0 && wsb_utf8_complete(&v);
}
