/* HAProxy's PROXY protocol, versions 1 and 2: parsing the header in front of a connection, and
 * writing one in front of wsbal's own connections to backends. */
#include "proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "errors.h"

static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                   0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
static const char v1_sig[] = "PROXY ";
#define V1_SIG_LEN (sizeof(v1_sig) - 1)

const char *wsb_pp_error_name(enum wsb_pp_error e) {
  static const char *const names[] = {
#define WSB_XX(name, label) label,
      WSB_PP_ERRORS(WSB_XX)
#undef WSB_XX
  };
  return e < WSB_PP_ERR_COUNT ? names[e] : "?";
}

static ssize_t refuse(enum wsb_pp_error *why, enum wsb_pp_error e) {
  *why = e;
  return WSB_EPROXY;
}

/* Does buf[0..len) begin sig[0..siglen), or is it a prefix of it? */
static bool starts_like(const uint8_t *buf, size_t len, const void *sig, size_t siglen) {
  return memcmp(buf, sig, len < siglen ? len : siglen) == 0;
}

/* A decimal port: 1 to 5 digits, at most 65535. */
static bool parse_port(const char *s, size_t n, uint16_t *out) {
  if (n == 0 || n > 5)
    return false;
  unsigned v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  if (v > 65535)
    return false;
  *out = (uint16_t)v;
  return true;
}

/* One address of a v1 line, in the family its protocol word named. */
static bool parse_addr(const char *s, size_t n, int family, uint8_t *out) {
  char text[INET6_ADDRSTRLEN];
  if (n == 0 || n >= sizeof(text) || memchr(s, '\0', n) != NULL)
    return false;
  memcpy(text, s, n);
  text[n] = '\0';
  return inet_pton(family, text, out) == 1;
}

/* "PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\r\n", or "PROXY UNKNOWN...\r\n". */
static ssize_t parse_v1(const uint8_t *buf, size_t len, struct wsb_pp_header *out,
                        enum wsb_pp_error *why) {
  size_t scan = len < WSB_PP_V1_MAX ? len : WSB_PP_V1_MAX;
  const uint8_t *lf = memchr(buf, '\n', scan);
  if (lf == NULL)
    return len >= WSB_PP_V1_MAX ? refuse(why, WSB_PP_ERR_TOO_LONG) : WSB_PARTIAL;
  size_t line = (size_t)(lf - buf) + 1;
  if (line < V1_SIG_LEN + 2 || buf[line - 2] != '\r')
    return refuse(why, WSB_PP_ERR_MALFORMED);
  /* Fields between "PROXY " and CRLF, separated by single spaces. */
  const char *p = (const char *)buf + V1_SIG_LEN, *end = (const char *)buf + line - 2;
  const char *field[5];
  size_t flen[5], n = 0;
  while (p <= end && n < 5) {
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    const char *e = sp != NULL ? sp : end;
    field[n] = p;
    flen[n++] = (size_t)(e - p);
    p = e + 1;
    if (sp == NULL)
      break;
  }
  out->version = 1;
  if (n >= 1 && flen[0] == 7 && memcmp(field[0], "UNKNOWN", 7) == 0) {
    out->local = true; /* whatever follows is ignored, as the spec says */
    return (ssize_t)line;
  }
  int family;
  if (n >= 1 && flen[0] == 4 && memcmp(field[0], "TCP4", 4) == 0)
    family = AF_INET;
  else if (n >= 1 && flen[0] == 4 && memcmp(field[0], "TCP6", 4) == 0)
    family = AF_INET6;
  else
    return refuse(why, n >= 1 && flen[0] > 0 ? WSB_PP_ERR_UNSUPPORTED : WSB_PP_ERR_MALFORMED);
  /* Exactly five fields: a sixth would have left p short of the end. */
  if (n != 5 || p <= end || !parse_addr(field[1], flen[1], family, out->src) ||
      !parse_addr(field[2], flen[2], family, out->dst) ||
      !parse_port(field[3], flen[3], &out->src_port) ||
      !parse_port(field[4], flen[4], &out->dst_port))
    return refuse(why, WSB_PP_ERR_MALFORMED);
  out->family = (uint8_t)family;
  return (ssize_t)line;
}

/* The TLVs after the addresses must tile the rest exactly; their contents are not used. */
static bool tlvs_fit(const uint8_t *p, size_t n) {
  while (n > 0) {
    if (n < 3)
      return false;
    size_t l = 3 + ((size_t)p[1] << 8 | p[2]);
    if (l > n)
      return false;
    p += l;
    n -= l;
  }
  return true;
}

static ssize_t parse_v2(const uint8_t *buf, size_t len, struct wsb_pp_header *out,
                        enum wsb_pp_error *why) {
  if (len < WSB_PP_V2_FIXED)
    return WSB_PARTIAL;
  uint8_t ver = buf[12] >> 4, cmd = buf[12] & 0x0f, fam = buf[13] >> 4, proto = buf[13] & 0x0f;
  size_t body = (size_t)buf[14] << 8 | buf[15];
  if (ver != 2)
    return refuse(why, WSB_PP_ERR_VERSION);
  if (cmd > 1)
    return refuse(why, WSB_PP_ERR_MALFORMED);
  if (body > WSB_PP_V2_MAX_LEN)
    return refuse(why, WSB_PP_ERR_TOO_LONG);
  /* What cannot be taken is refused from the fixed part, before waiting for the rest. */
  bool local = cmd == 0 || fam == 0;
  if (!local && ((fam != 1 && fam != 2) || proto != 1))
    return refuse(why, WSB_PP_ERR_UNSUPPORTED);
  if (len < WSB_PP_V2_FIXED + body)
    return WSB_PARTIAL;
  const uint8_t *p = buf + WSB_PP_V2_FIXED;
  out->version = 2;
  /* LOCAL: the balancer speaks for itself; whatever its addresses say is not a client. */
  if (local) {
    out->local = true;
    return (ssize_t)(WSB_PP_V2_FIXED + body);
  }
  size_t alen = fam == 1 ? 4 : 16, need = 2 * alen + 4;
  if (body < need || !tlvs_fit(p + need, body - need))
    return refuse(why, WSB_PP_ERR_MALFORMED);
  out->family = fam == 1 ? AF_INET : AF_INET6;
  memcpy(out->src, p, alen);
  memcpy(out->dst, p + alen, alen);
  out->src_port = (uint16_t)(p[2 * alen] << 8 | p[2 * alen + 1]);
  out->dst_port = (uint16_t)(p[2 * alen + 2] << 8 | p[2 * alen + 3]);
  return (ssize_t)(WSB_PP_V2_FIXED + body);
}

ssize_t wsb_pp_parse(const uint8_t *buf, size_t len, enum wsb_pp_mode mode,
                     struct wsb_pp_header *out, enum wsb_pp_error *why) {
  memset(out, 0, sizeof(*out));
  if (len == 0)
    return WSB_PARTIAL;
  bool v1 = starts_like(buf, len, v1_sig, V1_SIG_LEN);
  bool v2 = starts_like(buf, len, v2_sig, sizeof(v2_sig));
  if (!v1 && !v2)
    return refuse(why, WSB_PP_ERR_MISSING);
  bool v1_ok = mode == WSB_PP_V1 || mode == WSB_PP_ANY;
  bool v2_ok = mode == WSB_PP_V2 || mode == WSB_PP_ANY;
  /* A signature the mode does not take is named once it is whole, so that bytes merely
     beginning like one ("\r\n" then garbage) count as missing. */
  if (v1 && !v1_ok)
    return len < V1_SIG_LEN ? WSB_PARTIAL : refuse(why, WSB_PP_ERR_VERSION);
  if (v2 && !v2_ok)
    return len < sizeof(v2_sig) ? WSB_PARTIAL : refuse(why, WSB_PP_ERR_VERSION);
  if (v1)
    return len < V1_SIG_LEN ? WSB_PARTIAL : parse_v1(buf, len, out, why);
  return len < sizeof(v2_sig) ? WSB_PARTIAL : parse_v2(buf, len, out, why);
}

bool wsb_pp_looks_like_http(const uint8_t *buf, size_t len) {
  size_t i = 0;
  while (i < len && i < 16 && buf[i] >= 'A' && buf[i] <= 'Z')
    i++;
  return i > 0 && (i == len || buf[i] == ' ');
}

/* An IPv4 address as the IPv6 one that maps it (::ffff:a.b.c.d). */
static void map_v4(const uint8_t *v4, uint8_t *v6) {
  memset(v6, 0, 10);
  v6[10] = v6[11] = 0xff;
  memcpy(v6 + 12, v4, 4);
}

void wsb_pp_set_ends(struct wsb_pp_header *h, int src_family, const uint8_t *src, uint16_t src_port,
                     int dst_family, const uint8_t *dst, uint16_t dst_port) {
  memset(h, 0, sizeof(*h));
  if ((src_family != AF_INET && src_family != AF_INET6) ||
      (dst_family != AF_INET && dst_family != AF_INET6)) {
    h->local = true;
    return;
  }
  h->family = (uint8_t)(src_family == dst_family ? src_family : AF_INET6);
  if (src_family == h->family)
    memcpy(h->src, src, src_family == AF_INET ? 4 : 16);
  else
    map_v4(src, h->src);
  if (dst_family == h->family)
    memcpy(h->dst, dst, dst_family == AF_INET ? 4 : 16);
  else
    map_v4(dst, h->dst);
  h->src_port = src_port;
  h->dst_port = dst_port;
}

size_t wsb_pp_write(uint8_t *out, size_t cap, int version, const struct wsb_pp_header *h) {
  bool v4 = h->family == AF_INET;
  if (version == 1) {
    int n;
    if (h->local) {
      n = snprintf((char *)out, cap, "PROXY UNKNOWN\r\n");
    } else {
      char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
      inet_ntop(h->family, h->src, s, sizeof(s));
      inet_ntop(h->family, h->dst, d, sizeof(d));
      n = snprintf((char *)out, cap, "PROXY %s %s %s %u %u\r\n", v4 ? "TCP4" : "TCP6", s, d,
                   (unsigned)h->src_port, (unsigned)h->dst_port);
    }
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
  }
  size_t alen = v4 ? 4 : 16;
  size_t body = h->local ? 0 : 2 * alen + 4;
  if (cap < WSB_PP_V2_FIXED + body)
    return 0;
  memcpy(out, v2_sig, sizeof(v2_sig));
  out[12] = h->local ? 0x20 : 0x21;             /* version 2, LOCAL or PROXY */
  out[13] = h->local ? 0x00 : v4 ? 0x11 : 0x21; /* AF_INET(6) over STREAM */
  out[14] = 0;
  out[15] = (uint8_t)body;
  if (!h->local) {
    uint8_t *p = out + WSB_PP_V2_FIXED;
    memcpy(p, h->src, alen);
    memcpy(p + alen, h->dst, alen);
    p[2 * alen] = (uint8_t)(h->src_port >> 8);
    p[2 * alen + 1] = (uint8_t)h->src_port;
    p[2 * alen + 2] = (uint8_t)(h->dst_port >> 8);
    p[2 * alen + 3] = (uint8_t)h->dst_port;
  }
  return WSB_PP_V2_FIXED + body;
}
