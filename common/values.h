/* Parsers for configuration values: durations, sizes, booleans, numbers, HOST:PORT, ws/wss URLs. */
#ifndef WSB_VALUES_H
#define WSB_VALUES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define WSB_HOST_MAX 256
#define WSB_PATH_MAX 1024

/* Every parser takes a NUL-terminated string, trims no spaces (inih already did) and returns 0 or
 * WSB_EVALUE / WSB_ERANGE_VALUE. */

/* "250ms", "10s", "5m", "1h", or a bare number of seconds; "0" is zero. */
int wsb_parse_duration_ms(const char *s, uint64_t *ms);
/* "512", "16k", "1m", "2g" (powers of 1024; upper case accepted). */
int wsb_parse_size(const char *s, uint64_t *bytes);
/* on/off/yes/no/true/false/1/0, case-insensitive. */
int wsb_parse_bool(const char *s, bool *value);
/* A decimal integer in [min, max]. */
int wsb_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *value);
/* The value of one hexadecimal digit (either case), or -1: for %XX and \uXXXX escapes. */
int wsb_hex_digit(int c);

/*
 * Decodes the %XX escapes of in[0, len), and '+' to a space when plus (query values), into out:
 * cap bytes with a NUL after the text; out may be in (decoding never gets ahead of reading).
 * Returns the decoded length, -E2BIG when it does not fit, or -EINVAL for an escape without two
 * hex digits or an encoded NUL; out is "" on errors (when cap > 0).
 */
ssize_t wsb_percent_decode(const char *in, size_t len, bool plus, char *out, size_t cap);

struct wsb_hostport {
  char host[WSB_HOST_MAX]; /* without brackets; "" never */
  uint16_t port;           /* 1..65535 */
};

/* "127.0.0.1:8080", "[::]:8080", "[::1]:9", "localhost:80". The port is required. */
int wsb_parse_hostport(const char *s, struct wsb_hostport *hp);

/* True for 127.0.0.0/8, ::1 and "localhost". */
bool wsb_host_is_loopback(const char *host);

struct wsb_url {
  bool tls;                /* wss:// */
  char host[WSB_HOST_MAX]; /* without brackets */
  uint16_t port;           /* explicit, or 80 / 443 */
  char path[WSB_PATH_MAX]; /* "" or "/prefix" without a trailing slash, query not allowed */
};

/* "ws://host[:port][/path]" or "wss://...". Anything else (http://, userinfo, fragment, query,
 * empty host) is WSB_EVALUE. */
int wsb_parse_url(const char *s, struct wsb_url *url);

#endif
