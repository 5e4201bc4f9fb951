/* Sets of IP networks (trust_forwarded) and the addresses proxies write in X-Forwarded-For. */
#include "cidr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "errors.h"
#include "http.h"
#include "values.h"

static bool parse_plain(const char *s, size_t len, int family, uint8_t *addr) {
  char text[INET6_ADDRSTRLEN];
  if (len == 0 || len >= sizeof(text))
    return false;
  memcpy(text, s, len);
  text[len] = '\0';
  return inet_pton(family, text, addr) == 1;
}

static bool port_valid(const char *s, size_t len) {
  if (len == 0 || len > 5)
    return false;
  unsigned v = 0;
  for (size_t i = 0; i < len; i++) {
    if (!isdigit((unsigned char)s[i]))
      return false;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  return v <= 65535;
}

bool wsb_ip_parse(const char *s, size_t len, uint8_t *family, uint8_t *addr) {
  memset(addr, 0, 16);
  if (len > 0 && s[0] == '[') {
    const char *close = memchr(s, ']', len);
    if (close == NULL)
      return false;
    size_t rest = len - (size_t)(close + 1 - s);
    if (rest > 0 && (close[1] != ':' || !port_valid(close + 2, rest - 1)))
      return false;
    *family = AF_INET6;
    return parse_plain(s + 1, (size_t)(close - s - 1), AF_INET6, addr);
  }
  const char *colon = memchr(s, ':', len);
  int fam = AF_INET;
  if (colon != NULL && memchr(colon + 1, ':', len - (size_t)(colon + 1 - s)) == NULL) {
    /* One colon: IPv4 with a port (an IPv6 address has at least two). */
    if (!port_valid(colon + 1, len - (size_t)(colon + 1 - s)))
      return false;
    len = (size_t)(colon - s);
  } else if (colon != NULL) {
    fam = AF_INET6;
  }
  *family = (uint8_t)fam;
  return parse_plain(s, len, fam, addr);
}

/* One item: an address, or an address and a prefix length. */
static bool parse_net(const char *s, struct wsb_cidr *out) {
  const char *slash = strchr(s, '/');
  size_t alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
  int family = memchr(s, ':', alen) != NULL ? AF_INET6 : AF_INET;
  unsigned max = family == AF_INET ? 32 : 128, bits = max;
  memset(out, 0, sizeof(*out));
  if (!parse_plain(s, alen, family, out->addr))
    return false;
  if (slash != NULL) {
    const char *p = slash + 1;
    if (*p == '\0' || strlen(p) > 3)
      return false;
    bits = 0;
    for (; *p; p++) {
      if (!isdigit((unsigned char)*p))
        return false;
      bits = bits * 10 + (unsigned)(*p - '0');
    }
    if (bits > max)
      return false;
  }
  out->family = (uint8_t)family;
  out->bits = (uint8_t)bits;
  return true;
}

int wsb_cidr_set_parse(const char *s, struct wsb_cidr_set *out) {
  struct wsb_cidr_set set = {0};
  if (wsb_parse_bool(s, &set.all) == 0) {
    *out = set;
    return 0;
  }
  char item[INET6_ADDRSTRLEN + 8];
  struct wsb_slice rest = {s, strlen(s)};
  do {
    struct wsb_slice one = wsb_slice_trim(wsb_slice_next_item(&rest, ','));
    if (one.len == 0 || one.len >= sizeof(item))
      return WSB_EVALUE;
    if (set.n == WSB_CIDR_MAX)
      return WSB_ERANGE_VALUE;
    memcpy(item, one.p, one.len);
    item[one.len] = '\0';
    if (!parse_net(item, &set.nets[set.n++]))
      return WSB_EVALUE;
  } while (rest.len > 0);
  *out = set;
  return 0;
}

static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits) {
  unsigned whole = bits / 8, rest = bits % 8;
  if (memcmp(a, b, whole) != 0)
    return false;
  if (rest == 0)
    return true;
  uint8_t mask = (uint8_t)(0xff << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

bool wsb_cidr_set_has(const struct wsb_cidr_set *set, int family, const uint8_t *addr) {
  static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (set->all)
    return true;
  if (family == AF_INET6 && memcmp(addr, mapped, sizeof(mapped)) == 0) {
    family = AF_INET;
    addr += sizeof(mapped);
  }
  for (size_t i = 0; i < set->n; i++)
    if (set->nets[i].family == family && prefix_equal(set->nets[i].addr, addr, set->nets[i].bits))
      return true;
  return false;
}
