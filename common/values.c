/* Parsers for configuration values: durations, sizes, booleans, numbers, HOST:PORT, ws/wss URLs. */
#include "values.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

#include "errors.h"

static bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

static bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/*
 * Reads the leading run of decimal digits of s into *value and returns how
 * many there were (0 = none). A number past UINT64_MAX is WSB_ERANGE_VALUE.
 */
static int parse_digits(const char *s, uint64_t *value, size_t *ndigits) {
  uint64_t v = 0;
  size_t i = 0;
  bool overflow = false;
  for (; is_digit(s[i]); i++) {
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10)
      overflow = true;
    else
      v = v * 10 + d;
  }
  *ndigits = i;
  *value = v;
  return overflow ? WSB_ERANGE_VALUE : 0;
}

/* A number followed by one suffix of the table; a bare number is multiplied by bare_factor. */
struct unit {
  const char *suffix;
  uint64_t factor;
};

static int parse_with_units(const char *s, const struct unit *units, size_t nunits,
                            uint64_t bare_factor, uint64_t *out) {
  uint64_t v;
  size_t n;
  int rc = parse_digits(s, &v, &n);
  if (n == 0)
    return WSB_EVALUE;
  const char *suffix = s + n;
  uint64_t factor = 0;
  if (*suffix == '\0') {
    factor = bare_factor;
  } else {
    for (size_t i = 0; i < nunits; i++)
      if (strcasecmp(suffix, units[i].suffix) == 0)
        factor = units[i].factor;
    if (factor == 0)
      return WSB_EVALUE;
  }
  /* A syntax error outranks an overflow: "99999999999999999999x" is bad, not too large. */
  if (rc < 0)
    return rc;
  if (v > UINT64_MAX / factor)
    return WSB_ERANGE_VALUE;
  *out = v * factor;
  return 0;
}

int wsb_parse_duration_ms(const char *s, uint64_t *ms) {
  static const struct unit units[] = {
      {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 60 * 60 * 1000}};
  return parse_with_units(s, units, sizeof(units) / sizeof(units[0]), 1000, ms);
}

int wsb_parse_size(const char *s, uint64_t *bytes) {
  static const struct unit units[] = {{"k", 1ull << 10}, {"m", 1ull << 20}, {"g", 1ull << 30}};
  return parse_with_units(s, units, sizeof(units) / sizeof(units[0]), 1, bytes);
}

int wsb_parse_bool(const char *s, bool *value) {
  static const char *const yes[] = {"on", "yes", "true", "1"};
  static const char *const no[] = {"off", "no", "false", "0"};
  for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
    if (strcasecmp(s, yes[i]) == 0) {
      *value = true;
      return 0;
    }
    if (strcasecmp(s, no[i]) == 0) {
      *value = false;
      return 0;
    }
  }
  return WSB_EVALUE;
}

int wsb_hex_digit(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static ssize_t decode_error(char *out, size_t cap, int err) {
  if (cap > 0)
    out[0] = '\0';
  return err;
}

ssize_t wsb_percent_decode(const char *in, size_t len, bool plus, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    if (o + 1 >= cap)
      return decode_error(out, cap, -E2BIG);
    char ch = plus && in[i] == '+' ? ' ' : in[i];
    if (in[i] == '%') {
      int hi = len - i >= 3 ? wsb_hex_digit((unsigned char)in[i + 1]) : -1;
      int lo = hi >= 0 ? wsb_hex_digit((unsigned char)in[i + 2]) : -1;
      if (lo < 0 || hi + lo == 0)
        return decode_error(out, cap, -EINVAL);
      ch = (char)(hi * 16 + lo);
      i += 2;
    }
    out[o++] = ch;
  }
  if (cap == 0)
    return -E2BIG;
  out[o] = '\0';
  return (ssize_t)o;
}

int wsb_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *value) {
  uint64_t v;
  size_t n;
  int rc = parse_digits(s, &v, &n);
  if (n == 0 || s[n] != '\0')
    return WSB_EVALUE;
  if (rc < 0 || v < min || v > max)
    return WSB_ERANGE_VALUE;
  *value = v;
  return 0;
}

/* A port is 1..65535 written in decimal; the caller has cut it out of its string. */
static int parse_port(const char *s, size_t len, uint16_t *port) {
  uint32_t v = 0;
  if (len == 0)
    return WSB_EVALUE;
  for (size_t i = 0; i < len; i++)
    if (!is_digit(s[i]))
      return WSB_EVALUE;
  for (size_t i = 0; i < len && v <= 65535; i++)
    v = v * 10 + (uint32_t)(s[i] - '0');
  if (v == 0 || v > 65535)
    return WSB_ERANGE_VALUE;
  *port = (uint16_t)v;
  return 0;
}

/*
 * A host name or IPv4 address as getaddrinfo will meet it: letters, digits,
 * '-', '_' (container runtimes hand out such names) and dots between non-empty
 * labels, with an optional final dot. All-numeric names must be real IPv4
 * addresses, so "999.1.1.1" fails here instead of at resolution time.
 */
static bool host_name_valid(const char *host, size_t len) {
  if (len == 0 || len >= WSB_HOST_MAX || host[0] == '.')
    return false;
  bool numeric = true;
  for (size_t i = 0; i < len; i++) {
    char c = host[i];
    if (c == '.') {
      if (i + 1 < len && host[i + 1] == '.')
        return false;
    } else if (is_alpha(c) || c == '-' || c == '_') {
      numeric = false;
    } else if (!is_digit(c)) {
      return false;
    }
  }
  if (numeric) {
    char buf[WSB_HOST_MAX];
    struct in_addr a;
    memcpy(buf, host, len);
    buf[len] = '\0';
    return inet_pton(AF_INET, buf, &a) == 1;
  }
  return true;
}

/* The text inside "[...]": an IPv6 address; zone ids ("%eth0") are not supported. */
static bool host_ipv6_valid(const char *host, size_t len) {
  char buf[INET6_ADDRSTRLEN + 1];
  struct in6_addr a;
  if (len == 0 || len >= sizeof(buf))
    return false;
  memcpy(buf, host, len);
  buf[len] = '\0';
  return inet_pton(AF_INET6, buf, &a) == 1;
}

/*
 * Splits "host", "[v6]" (with the brackets) from the front of s, stopping at
 * the first character of stop after the host. Returns the length consumed, or
 * WSB_EVALUE. The host is copied to out without brackets.
 */
static int split_host(const char *s, const char *stop, char out[WSB_HOST_MAX]) {
  const char *host = s;
  size_t hlen, used;
  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    if (close == NULL)
      return WSB_EVALUE;
    host = s + 1;
    hlen = (size_t)(close - host);
    used = hlen + 2;
    if (!host_ipv6_valid(host, hlen))
      return WSB_EVALUE;
  } else {
    hlen = strcspn(s, stop);
    used = hlen;
    if (!host_name_valid(host, hlen))
      return WSB_EVALUE;
  }
  memcpy(out, host, hlen);
  out[hlen] = '\0';
  return (int)used;
}

int wsb_parse_hostport(const char *s, struct wsb_hostport *hp) {
  struct wsb_hostport tmp;
  int used = split_host(s, ":", tmp.host);
  if (used < 0)
    return used;
  /* A bare IPv6 address ("::1:80") stops at its first ':' and leaves a colon in the port. */
  if (s[used] != ':')
    return WSB_EVALUE;
  const char *port = s + used + 1;
  if (strchr(port, ':') != NULL)
    return WSB_EVALUE;
  int rc = parse_port(port, strlen(port), &tmp.port);
  if (rc < 0)
    return rc;
  *hp = tmp;
  return 0;
}

bool wsb_host_is_loopback(const char *host) {
  struct in_addr a4;
  struct in6_addr a6;
  if (strcasecmp(host, "localhost") == 0)
    return true;
  if (inet_pton(AF_INET, host, &a4) == 1)
    return (ntohl(a4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, host, &a6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&a6))
      return true;
    /* ::ffff:127.0.0.1 is the IPv4 loopback seen through a dual-stack socket. */
    return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
  }
  return false;
}

/* RFC 3986 pchar minus what a path prefix has no use for: unreserved, sub-delims, ':', '@', '%XX'.
 */
static bool path_valid(const char *p, size_t len) {
  for (size_t i = 0; i < len; i++) {
    char c = p[i];
    if (c == '%') {
      if (i + 2 >= len || !is_hex(p[i + 1]) || !is_hex(p[i + 2]))
        return false;
      i += 2;
    } else if (!(is_alpha(c) || is_digit(c) || strchr("-._~!$&'()*+,;=:@/", c) != NULL)) {
      return false;
    }
  }
  return true;
}

/* Reads "ws://" or "wss://" in any case; returns its length or 0. */
static size_t parse_scheme(const char *s, bool *tls) {
  if (strncasecmp(s, "ws://", 5) == 0) {
    *tls = false;
    return 5;
  }
  if (strncasecmp(s, "wss://", 6) == 0) {
    *tls = true;
    return 6;
  }
  return 0;
}

int wsb_parse_url(const char *s, struct wsb_url *url) {
  struct wsb_url tmp;
  size_t n = parse_scheme(s, &tmp.tls);
  if (n == 0)
    return WSB_EVALUE;
  const char *auth = s + n;
  size_t alen = strcspn(auth, "/?#");
  /* Userinfo ("user:pw@host") would leak credentials into logs; it is not accepted. */
  if (memchr(auth, '@', alen) != NULL)
    return WSB_EVALUE;
  int used = split_host(auth, ":/?#", tmp.host);
  if (used < 0)
    return used;
  tmp.port = tmp.tls ? 443 : 80;
  if ((size_t)used < alen) {
    if (auth[used] != ':')
      return WSB_EVALUE;
    int rc = parse_port(auth + used + 1, alen - (size_t)used - 1, &tmp.port);
    if (rc < 0)
      return rc;
  }
  const char *path = auth + alen;
  if (*path == '?' || *path == '#')
    return WSB_EVALUE;
  size_t plen = strlen(path);
  if (!path_valid(path, plen))
    return WSB_EVALUE;
  /* The path is a prefix put before the client's path, so "/a/" and "/a" mean the same. */
  while (plen > 0 && path[plen - 1] == '/')
    plen--;
  if (plen >= WSB_PATH_MAX)
    return WSB_EVALUE;
  memcpy(tmp.path, path, plen);
  tmp.path[plen] = '\0';
  *url = tmp;
  return 0;
}
