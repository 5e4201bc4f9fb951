/* Sets of IP networks ([listen] trust_forwarded's list) and addresses as proxies write them. */
#ifndef WSB_CIDR_H
#define WSB_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WSB_CIDR_MAX 64 /* networks in one list */

struct wsb_cidr {
  uint8_t family; /* AF_INET or AF_INET6 */
  uint8_t bits;   /* prefix length: 0..32 or 0..128 */
  uint8_t addr[16];
};

/* One type in the configuration and in the segment: flat, so workers copy it by value. */
struct wsb_cidr_set {
  bool all; /* "on": every address */
  uint8_t n;
  struct wsb_cidr nets[WSB_CIDR_MAX];
};

/*
 * Parses a boolean ("off", "on", "yes"...: nobody, or every address) or a comma list of addresses
 * and networks ("10.0.0.0/8, 192.168.1.7,
 * ::1, fd00::/8"; an address is a network of one). Host bits set below the prefix are
 * ignored, as in 10.1.2.3/8. Returns 0, WSB_EVALUE for an item that is neither, or
 * WSB_ERANGE_VALUE past WSB_CIDR_MAX items; out is untouched on failure.
 */
int wsb_cidr_set_parse(const char *s, struct wsb_cidr_set *out);

/* Is the address in the set? An IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a dual-stack
   listener reports for IPv4 clients) matches as the IPv4 address it maps. */
bool wsb_cidr_set_has(const struct wsb_cidr_set *set, int family, const uint8_t *addr);

/*
 * Parses one address as proxies write it in X-Forwarded-For: "192.0.2.1", "2001:db8::1",
 * and also with a port, "192.0.2.1:5000", "[2001:db8::1]" or "[2001:db8::1]:5000".
 * Spaces around it are the caller's to trim. Returns true with *family and addr (16 bytes,
 * IPv4 in the first 4) set.
 */
bool wsb_ip_parse(const char *s, size_t len, uint8_t *family, uint8_t *addr);

#endif
