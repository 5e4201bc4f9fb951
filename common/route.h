/* [route:NAME] sections compiled into one flat table that a request is matched against. */
#ifndef WSB_ROUTE_H
#define WSB_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "http.h"

/*
 * Bounds of one table. Every item a route lists (a host, a wildcard, a path prefix) is one key;
 * routes naming the same item share its key. A configuration line is under 200 characters, so
 * no item is longer than WSB_ROUTE_ITEM_MAX.
 */
#define WSB_ROUTE_MAX       1024
#define WSB_ROUTE_NAME_MAX  WSB_SECTION_NAME_MAX /* route and pool names: as backend names */
#define WSB_ROUTE_KEYS_MAX  4096
#define WSB_ROUTE_REFS_MAX  8192 /* items of all routes together */
#define WSB_ROUTE_CHARS_MAX 65536
#define WSB_ROUTE_ITEM_MAX  256
#define WSB_ROUTE_WORDS     (WSB_ROUTE_MAX / 64)
#define WSB_ROUTE_BUCKETS   (2 * WSB_ROUTE_KEYS_MAX) /* a power of two: the index is a mask */

/* A route as workers see it. Strings sit in the table's chars. */
struct wsb_route {
  char name[WSB_ROUTE_NAME_MAX];
  char pool[WSB_ROUTE_NAME_MAX];
  uint32_t header_off; /* the header's name, then its value */
  uint16_t header_name_len;
  uint16_t header_value_len;
  bool has_header;
  bool header_has_value; /* "Name: value" rather than "Name" (present) */
  bool strip_path;
  uint8_t websocket;
  uint16_t slot;      /* its match counter: kept by name from one table to the next */
  uint16_t pool_slot; /* its pool's slot, filled by the segment's table; UINT16_MAX: none */
};

/* A host, a wildcard's suffix or a path prefix, and the routes that list it. */
struct wsb_route_key {
  uint64_t hash;
  uint32_t off; /* text in chars */
  uint16_t len;
  uint8_t kind;
  uint32_t refs_off; /* route indexes in refs */
  uint32_t nrefs;
};

/*
 * The compiled table, flat (no pointer) so it can be copied into the shared segment as it is.
 * Matching does a few hash lookups (the Host, each of its parent domains, each segment-wise
 * prefix of the path up to the longest prefix listed) into bit sets of routes, so its cost does
 * not grow with the number of routes; the first route in file order whose bits are all set and
 * whose header matches wins.
 */
struct wsb_route_table {
  uint32_t nroutes;
  uint32_t nkeys;
  uint32_t nrefs;
  uint32_t nchars;
  uint32_t max_path;                    /* the longest path prefix listed */
  uint64_t any_host[WSB_ROUTE_WORDS];   /* routes without host */
  uint64_t any_path[WSB_ROUTE_WORDS];   /* routes without path (or with "/") */
  uint64_t kind_ok[2][WSB_ROUTE_WORDS]; /* [0]: plain requests, [1]: upgrades */
  uint16_t buckets[WSB_ROUTE_BUCKETS];  /* key index + 1, 0 = empty; open addressing */
  struct wsb_route routes[WSB_ROUTE_MAX];
  struct wsb_route_key keys[WSB_ROUTE_KEYS_MAX];
  uint16_t refs[WSB_ROUTE_REFS_MAX];
  char chars[WSB_ROUTE_CHARS_MAX];
};

/* What of a request routes look at. */
struct wsb_route_request {
  struct wsb_slice host;            /* the Host value as sent (port allowed); p == NULL: none */
  struct wsb_slice path;            /* the target without dot segments; its query is ignored */
  const struct wsb_http_head *head; /* for header conditions; may be NULL */
  bool websocket;                   /* an upgrade request */
};

/*
 * Checks one host item of a route and writes its canonical form to out (cap >= WSB_ROUTE_ITEM_MAX):
 * lower case, no trailing dot. Returns 0, or WSB_EVALUE for anything but a host name, an IP
 * literal ("[::1]") or "*." followed by a host name.
 */
int wsb_route_host_item(const char *item, char *out, size_t cap);

/*
 * Checks one path item: absolute, printable, no query, fragment or dot segment. Writes it
 * without trailing slashes and with its percent-encodings canonical (RFC 3986 6.2.2: unreserved
 * characters decoded, hex digits in upper case) to out (cap >= WSB_ROUTE_ITEM_MAX); "/" becomes
 * "" (every path). Returns its length or WSB_EVALUE.
 */
ssize_t wsb_route_path_item(const char *item, char *out, size_t cap);

/* Checks a header item: an HTTP field name, optionally ": value" (visible characters). */
int wsb_route_header_item(const char *item);

/*
 * Compiles routes (n of them, in file order, each item valid) into t. A route keeps its
 * counter slot from prev (NULL at start) when its name is there; a new name gets a slot that
 * neither table uses, so a count is never carried over to another route. Returns 0, or
 * WSB_ERANGE_VALUE with *bad the index of the route that does not fit and a sentence in err.
 */
int wsb_route_table_build(struct wsb_route_table *t, const struct wsb_route_config *routes,
                          size_t n, const struct wsb_route_table *prev, size_t *bad, char *err,
                          size_t errlen);

/*
 * The first route r matches, or -1. *strip is then how many bytes of r->path strip_path
 * removes: the longest of the route's prefixes that matched (0 without strip_path). No
 * allocation; the cost depends on the request's host and path (each bounded by what routes
 * list), not on how many routes there are.
 */
int wsb_route_match(const struct wsb_route_table *t, const struct wsb_route_request *r,
                    size_t *strip);

#endif
