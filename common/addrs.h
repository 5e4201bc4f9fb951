/* The addresses a backend's host name resolved to, their order, and the NAME#ADDR names they get.
 */
#ifndef WSB_ADDRS_H
#define WSB_ADDRS_H

#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define WSB_ADDRS_MAX 64 /* addresses kept per backend section; more are dropped with a warning */

union wsb_addr {
  struct sockaddr sa;
  struct sockaddr_in in;
  struct sockaddr_in6 in6;
};

/* A sorted set: IPv4 before IPv6, then by address bytes; no duplicates. */
struct wsb_addrs {
  size_t n;
  union wsb_addr a[WSB_ADDRS_MAX];
};

/* The length to pass to connect() for one address. */
socklen_t wsb_addr_len(const union wsb_addr *a);

/* Orders two addresses (family, then bytes, then port): <0, 0, >0. */
int wsb_addr_cmp(const union wsb_addr *x, const union wsb_addr *y);

/* Adds one address keeping the set sorted; returns 1 if added, 0 if already there, -ENOSPC. */
int wsb_addrs_add(struct wsb_addrs *s, const struct sockaddr *sa, socklen_t len);

/* Builds a set from getaddrinfo's list (IPv4 and IPv6 entries only). Returns how many were
   dropped for lack of room (0 normally). */
size_t wsb_addrs_from_addrinfo(struct wsb_addrs *s, const struct addrinfo *ai);

bool wsb_addrs_equal(const struct wsb_addrs *x, const struct wsb_addrs *y);

/* The numeric address without port or brackets ("10.0.0.7", "fd00::7"). Returns 0 or -ENOSPC. */
int wsb_addr_format(const union wsb_addr *a, char *out, size_t cap);

/* The backend name of address i of a section: the section's own name when it resolved to one
   address, else "NAME#ADDR". Returns 0 or -ENAMETOOLONG. */
int wsb_addrs_backend_name(const char *section, const struct wsb_addrs *s, size_t i, char *out,
                           size_t cap);

/* "+ADDR -ADDR ..." for a log line: what to adds and what it lost against from. */
void wsb_addrs_diff(const struct wsb_addrs *from, const struct wsb_addrs *to, char *out,
                    size_t cap);

/* The section name of a backend name ("web" for "web#10.0.0.7" and for "web") into out. */
void wsb_addrs_section(const char *name, char *out, size_t cap);

/* True for a host written as an IP address, which no lookup can change. */
bool wsb_addrs_is_literal(const char *host);

#endif
