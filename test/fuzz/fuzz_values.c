/* Fuzz target for common/values.c: configuration values (the file, the environment and the admin
 * API's bodies) and percent-decoding (admin paths and queries), against plain references. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "errors.h"
#include "fuzz.h"
#include "values.h"

struct unit {
  const char *suffix;
  uint64_t factor;
};

/* A number and an optional suffix, as the header describes it, in 128-bit arithmetic. */
static int ref_units(const char *s, const struct unit *units, size_t nunits, uint64_t bare,
                     uint64_t *out) {
  size_t n = strspn(s, "0123456789");
  if (n == 0)
    return WSB_EVALUE;
  uint64_t factor = 0;
  if (s[n] == '\0')
    factor = bare;
  for (size_t i = 0; i < nunits && s[n] != '\0'; i++)
    if (strcasecmp(s + n, units[i].suffix) == 0)
      factor = units[i].factor;
  if (factor == 0)
    return WSB_EVALUE;
  unsigned __int128 v = 0;
  for (size_t i = 0; i < n; i++) {
    v = v * 10 + (unsigned)(s[i] - '0');
    if (v > UINT64_MAX)
      return WSB_ERANGE_VALUE;
  }
  v *= factor;
  if (v > UINT64_MAX)
    return WSB_ERANGE_VALUE;
  *out = (uint64_t)v;
  return 0;
}

static void check_numbers(const char *s, uint64_t lo, uint64_t hi) {
  static const struct unit durations[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
  static const struct unit sizes[] = {{"k", 1ull << 10}, {"m", 1ull << 20}, {"g", 1ull << 30}};
  uint64_t got = 0, want = 0;
  int rc = wsb_parse_duration_ms(s, &got);
  REQUIRE(rc == ref_units(s, durations, 4, 1000, &want) && (rc != 0 || got == want));
  rc = wsb_parse_size(s, &got);
  REQUIRE(rc == ref_units(s, sizes, 3, 1, &want) && (rc != 0 || got == want));
  /* A bare number in [lo, hi]. */
  rc = wsb_parse_uint(s, lo, hi, &got);
  int ref = ref_units(s, NULL, 0, 1, &want);
  if (ref == 0 && (want < lo || want > hi))
    ref = WSB_ERANGE_VALUE;
  REQUIRE(rc == ref && (rc != 0 || got == want));
  bool b;
  static const char *const words[] = {"on", "yes", "true", "1", "off", "no", "false", "0"};
  int known = -1;
  for (int i = 0; i < 8; i++)
    if (strcasecmp(s, words[i]) == 0)
      known = i;
  rc = wsb_parse_bool(s, &b);
  REQUIRE(known < 0 ? rc == WSB_EVALUE : rc == 0 && b == (known < 4));
}

static int hex(char c) {
  static const char digits[] = "0123456789abcdef0123456789ABCDEF";
  const char *p = memchr(digits, c, 32);
  return p != NULL ? (int)(p - digits) % 16 : -1;
}

/* The decoded text, or -EINVAL; cap does not limit it. */
static ssize_t ref_decode(const char *in, size_t len, bool plus, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    if (in[i] != '%') {
      out[o++] = plus && in[i] == '+' ? ' ' : in[i];
      continue;
    }
    if (i + 2 >= len)
      return -EINVAL;
    int h = hex(in[i + 1]), l = h >= 0 ? hex(in[i + 2]) : -1;
    if (l < 0 || (h == 0 && l == 0))
      return -EINVAL;
    out[o++] = (char)(h * 16 + l);
    i += 2;
  }
  return (ssize_t)o;
}

static void check_decode(const char *in, size_t len, bool plus, size_t cap) {
  char *want = malloc(len + 1), *out = malloc(cap ? cap : 1), *same = malloc(len + 1);
  REQUIRE(want != NULL && out != NULL && same != NULL);
  ssize_t ref = ref_decode(in, len, plus, want);
  ssize_t n = wsb_percent_decode(in, len, plus, cap ? out : NULL, cap);
  if (ref >= 0 && (size_t)ref < cap) {
    REQUIRE(n == ref && memcmp(out, want, (size_t)n) == 0 && out[n] == '\0');
  } else {
    /* Too long, or a bad escape: which of the two is found first depends on where. */
    REQUIRE(n == -E2BIG || (n == -EINVAL && ref == -EINVAL));
    REQUIRE(cap == 0 || out[0] == '\0');
  }
  /* In place, as the admin server decodes its paths. */
  memcpy(same, in, len);
  same[len] = '\0';
  ssize_t m = wsb_percent_decode(same, len, plus, same, len + 1);
  REQUIRE(m == (ref >= 0 ? ref : -EINVAL));
  if (m >= 0)
    REQUIRE(memcmp(same, want, (size_t)m) == 0 && same[m] == '\0');
  free(want);
  free(out);
  free(same);
}

static void check_hostport(const char *s) {
  struct wsb_hostport hp, again;
  int rc = wsb_parse_hostport(s, &hp);
  REQUIRE(rc == 0 || rc == WSB_EVALUE || rc == WSB_ERANGE_VALUE);
  if (rc != 0)
    return;
  size_t hl = strnlen(hp.host, sizeof(hp.host));
  REQUIRE(hl > 0 && hl < sizeof(hp.host) && hp.port >= 1);
  REQUIRE(strchr(hp.host, '[') == NULL && strchr(hp.host, ']') == NULL);
  char text[WSB_HOST_MAX + 16];
  bool v6 = strchr(hp.host, ':') != NULL;
  snprintf(text, sizeof(text), v6 ? "[%s]:%u" : "%s:%u", hp.host, (unsigned)hp.port);
  REQUIRE(wsb_parse_hostport(text, &again) == 0);
  REQUIRE(strcmp(again.host, hp.host) == 0 && again.port == hp.port);
  (void)wsb_host_is_loopback(hp.host);
}

static void check_url(const char *s) {
  struct wsb_url *u = malloc(sizeof(*u)), *again = malloc(sizeof(*again));
  REQUIRE(u != NULL && again != NULL);
  int rc = wsb_parse_url(s, u);
  REQUIRE(rc == 0 || rc == WSB_EVALUE || rc == WSB_ERANGE_VALUE);
  if (rc == 0) {
    size_t hl = strnlen(u->host, sizeof(u->host)), pl = strnlen(u->path, sizeof(u->path));
    REQUIRE(hl > 0 && hl < sizeof(u->host) && pl < sizeof(u->path) && u->port >= 1);
    REQUIRE(pl == 0 || (u->path[0] == '/' && u->path[pl - 1] != '/'));
    REQUIRE(strpbrk(u->path, "?# \r\n") == NULL && strpbrk(u->host, "/?#@ \r\n") == NULL);
    /* Written back, it reads the same. */
    char *text = malloc(WSB_HOST_MAX + WSB_PATH_MAX + 32);
    REQUIRE(text != NULL);
    bool v6 = strchr(u->host, ':') != NULL;
    sprintf(text, v6 ? "%s://[%s]:%u%s" : "%s://%s:%u%s", u->tls ? "wss" : "ws", u->host,
            (unsigned)u->port, u->path);
    REQUIRE(wsb_parse_url(text, again) == 0);
    REQUIRE(again->tls == u->tls && again->port == u->port && strcmp(again->host, u->host) == 0 &&
            strcmp(again->path, u->path) == 0);
    free(text);
  }
  free(u);
  free(again);
}

/*
 * Byte 0: '+' decoding (bit 0) and the decoder's room (the rest: 0 means plenty); byte 1 and 2:
 * the bounds of the number check. The rest is the value, as the configuration or an admin
 * request has it: NUL-terminated for the parsers, counted for the decoder.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3 || size > 4096)
    return 0;
  uint8_t mode = data[0];
  uint64_t lo = data[1], hi = (uint64_t)data[2] * data[2] * 1000;
  const char *in = (const char *)data + 3;
  size_t len = size - 3;
  char *s = malloc(len + 1);
  REQUIRE(s != NULL);
  memcpy(s, in, len);
  s[len] = '\0';
  check_numbers(s, lo, hi);
  check_hostport(s);
  check_url(s);
  size_t cap = (mode >> 1) == 0 ? len + 1 : (size_t)(mode >> 1) - 1;
  check_decode(in, len, mode & 1, cap);
  free(s);
  return 0;
}
