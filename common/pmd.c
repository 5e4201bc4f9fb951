/* permessage-deflate negotiation (RFC 7692 section 7) over RFC 6455 9.1's extension grammar. */
#include "pmd.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "errors.h"

#define VALUE_MAX 16 /* a window-bits value is two digits: anything longer is declined anyway */

/* The four parameters of section 7.1, one bit each, to find one given twice. */
enum { P_SERVER_NO = 1, P_CLIENT_NO = 2, P_SERVER_BITS = 4, P_CLIENT_BITS = 8 };

/* One offer as it is read: which parameters came, whether it must be declined. */
struct offer {
  bool pmd;      /* its name is permessage-deflate */
  bool decline;  /* a parameter broke section 7.1's rules, or asks what wsbal cannot do */
  unsigned seen; /* P_* bits */
  uint8_t server_bits;
};

struct scan {
  const char *p;
  size_t len;
  size_t pos;
};

/* RFC 9110 5.6.2's tchar. */
static bool is_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
    return true;
  return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool at(const struct scan *sc, char c) {
  return sc->pos < sc->len && sc->p[sc->pos] == c;
}

static void skip_ows(struct scan *sc) {
  while (sc->pos < sc->len && (sc->p[sc->pos] == ' ' || sc->p[sc->pos] == '\t'))
    sc->pos++;
}

static struct wsb_slice token(struct scan *sc) {
  size_t start = sc->pos;
  while (sc->pos < sc->len && is_tchar((unsigned char)sc->p[sc->pos]))
    sc->pos++;
  return (struct wsb_slice){sc->p + start, sc->pos - start};
}

/*
 * A quoted-string, unescaped into buf (cap VALUE_MAX). RFC 6455 9.1 wants the unescaped value to
 * be a token, so anything else is a grammar error; a token too long for buf is returned cut,
 * flagged by *cut, since no parameter of section 7.1 can take it.
 */
static int quoted(struct scan *sc, char *buf, struct wsb_slice *v, bool *cut) {
  size_t n = 0;
  *cut = false;
  sc->pos++; /* the opening quote */
  for (;;) {
    if (sc->pos >= sc->len)
      return WSB_EEXTENSIONS;
    char c = sc->p[sc->pos++];
    if (c == '"')
      break;
    if (c == '\\') {
      if (sc->pos >= sc->len)
        return WSB_EEXTENSIONS;
      c = sc->p[sc->pos++];
    }
    if (!is_tchar((unsigned char)c))
      return WSB_EEXTENSIONS;
    if (n < VALUE_MAX)
      buf[n++] = c;
    else
      *cut = true;
  }
  if (n == 0)
    return WSB_EEXTENSIONS;
  *v = (struct wsb_slice){buf, n};
  return 0;
}

/* Window bits as section 7.1.2 writes them: 1*DIGIT, 8..15, no leading zero; else 0. */
static uint8_t window_bits(struct wsb_slice v) {
  if (v.len == 0 || v.len > 2 || v.p[0] == '0')
    return 0;
  unsigned n = 0;
  for (size_t i = 0; i < v.len; i++) {
    if (v.p[i] < '0' || v.p[i] > '9')
      return 0;
    n = n * 10 + (unsigned)(v.p[i] - '0');
  }
  return n >= 8 && n <= 15 ? (uint8_t)n : 0;
}

/* Applies one parameter of a permessage-deflate offer (has_value: "=value" came). */
static void offer_param(struct offer *o, struct wsb_slice name, bool has_value,
                        struct wsb_slice value) {
  unsigned bit;
  if (wsb_slice_eq(name, "server_no_context_takeover"))
    bit = P_SERVER_NO;
  else if (wsb_slice_eq(name, "client_no_context_takeover"))
    bit = P_CLIENT_NO;
  else if (wsb_slice_eq(name, "server_max_window_bits"))
    bit = P_SERVER_BITS;
  else if (wsb_slice_eq(name, "client_max_window_bits"))
    bit = P_CLIENT_BITS;
  else
    bit = 0;
  if (bit == 0 || (o->seen & bit) != 0) {
    o->decline = true;
    return;
  }
  o->seen |= bit;
  if (bit == P_SERVER_NO || bit == P_CLIENT_NO) {
    o->decline |= has_value;
  } else if (bit == P_SERVER_BITS) {
    o->server_bits = has_value ? window_bits(value) : 0;
    /* zlib's raw deflate has no 256-byte window: a client asking for one is declined. */
    o->decline |= o->server_bits < 9;
  } else if (has_value) {
    o->decline |= window_bits(value) == 0;
  }
}

/* The parameters after an extension's name; applied to o when it is permessage-deflate. */
static int params(struct scan *sc, struct offer *o) {
  for (;;) {
    skip_ows(sc);
    if (!at(sc, ';'))
      return 0;
    sc->pos++;
    skip_ows(sc);
    struct wsb_slice name = token(sc);
    if (name.len == 0)
      return WSB_EEXTENSIONS;
    skip_ows(sc);
    struct wsb_slice value = {NULL, 0};
    char buf[VALUE_MAX];
    bool has_value = at(sc, '='), cut = false;
    if (has_value) {
      sc->pos++;
      skip_ows(sc);
      if (at(sc, '"')) {
        int rc = quoted(sc, buf, &value, &cut);
        if (rc != 0)
          return rc;
      } else {
        value = token(sc);
        if (value.len == 0)
          return WSB_EEXTENSIONS;
      }
    }
    if (o->pmd) {
      offer_param(o, name, has_value, value);
      o->decline |= cut;
    }
  }
}

int wsb_pmd_negotiate_value(struct wsb_slice value, bool context_takeover,
                            struct wsb_pmd_params *out) {
  struct scan sc = {value.p, value.len, 0};
  int accepted = 0;
  for (;;) {
    skip_ows(&sc);
    if (sc.pos >= sc.len)
      return accepted;
    if (at(&sc, ',')) { /* RFC 9110 5.6.1: empty list elements are accepted and ignored */
      sc.pos++;
      continue;
    }
    struct wsb_slice name = token(&sc);
    if (name.len == 0)
      return WSB_EEXTENSIONS;
    struct offer o = {.pmd = wsb_slice_eq(name, "permessage-deflate")};
    int rc = params(&sc, &o);
    if (rc != 0)
      return rc;
    skip_ows(&sc);
    if (sc.pos < sc.len && !at(&sc, ','))
      return WSB_EEXTENSIONS;
    /* The rest is still read: a later grammar error makes the whole request bad. */
    if (!o.pmd || o.decline || accepted)
      continue;
    accepted = 1;
    *out = (struct wsb_pmd_params){
        .on = true,
        .server_no_takeover = !context_takeover || (o.seen & P_SERVER_NO) != 0,
        .client_no_takeover = !context_takeover || (o.seen & P_CLIENT_NO) != 0,
        .server_bits = (o.seen & P_SERVER_BITS) != 0 ? o.server_bits : 15,
    };
  }
}

int wsb_pmd_negotiate(const struct wsb_http_head *req, bool context_takeover,
                      struct wsb_pmd_params *out) {
  int accepted = 0;
  struct wsb_pmd_params first = {.on = false};
  for (const struct wsb_header *h = wsb_http_find(req, "Sec-WebSocket-Extensions", NULL); h != NULL;
       h = wsb_http_find(req, "Sec-WebSocket-Extensions", h)) {
    struct wsb_pmd_params p;
    int rc = wsb_pmd_negotiate_value(h->value, context_takeover, &p);
    if (rc < 0)
      return rc;
    if (rc == 1 && !accepted) {
      accepted = 1;
      first = p;
    }
  }
  if (accepted)
    *out = first;
  return accepted;
}

size_t wsb_pmd_response(const struct wsb_pmd_params *p, char *out) {
  int n = snprintf(out, WSB_PMD_RESPONSE_MAX, "permessage-deflate%s%s",
                   p->server_no_takeover ? "; server_no_context_takeover" : "",
                   p->client_no_takeover ? "; client_no_context_takeover" : "");
  if (p->server_bits < 15)
    n += snprintf(out + n, WSB_PMD_RESPONSE_MAX - (size_t)n, "; server_max_window_bits=%u",
                  (unsigned)p->server_bits);
  return (size_t)n;
}

ssize_t wsb_pmd_response_insert(const struct wsb_pmd_params *p, char *out, size_t cap, size_t len) {
  char value[WSB_PMD_RESPONSE_MAX];
  size_t vlen = wsb_pmd_response(p, value);
  static const char name[] = "Sec-WebSocket-Extensions: ";
  size_t line = sizeof(name) - 1 + vlen + 2;
  if (len < 2 || len + line > cap)
    return -ENOSPC;
  char *at = out + len - 2; /* the final CRLF */
  memmove(at + line, at, 2);
  memcpy(at, name, sizeof(name) - 1);
  memcpy(at + sizeof(name) - 1, value, vlen);
  memcpy(at + line - 2, "\r\n", 2);
  return (ssize_t)(len + line);
}
