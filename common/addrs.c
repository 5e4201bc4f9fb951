/* Resolved backend addresses as a sorted set, so two lookups compare and name their backends alike.
 */
#include "addrs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

socklen_t wsb_addr_len(const union wsb_addr *a) {
  return a->sa.sa_family == AF_INET6 ? sizeof(a->in6) : sizeof(a->in);
}

int wsb_addr_cmp(const union wsb_addr *x, const union wsb_addr *y) {
  if (x->sa.sa_family != y->sa.sa_family)
    return x->sa.sa_family == AF_INET ? -1 : 1;
  int c;
  if (x->sa.sa_family == AF_INET6) {
    c = memcmp(&x->in6.sin6_addr, &y->in6.sin6_addr, sizeof(x->in6.sin6_addr));
    if (c == 0 && x->in6.sin6_scope_id != y->in6.sin6_scope_id)
      c = x->in6.sin6_scope_id < y->in6.sin6_scope_id ? -1 : 1;
    if (c == 0)
      c = (int)ntohs(x->in6.sin6_port) - (int)ntohs(y->in6.sin6_port);
  } else {
    c = memcmp(&x->in.sin_addr, &y->in.sin_addr, sizeof(x->in.sin_addr));
    if (c == 0)
      c = (int)ntohs(x->in.sin_port) - (int)ntohs(y->in.sin_port);
  }
  return c;
}

int wsb_addrs_add(struct wsb_addrs *s, const struct sockaddr *sa, socklen_t len) {
  union wsb_addr a;
  memset(&a, 0, sizeof(a));
  if (sa->sa_family == AF_INET && len >= sizeof(a.in))
    memcpy(&a.in, sa, sizeof(a.in));
  else if (sa->sa_family == AF_INET6 && len >= sizeof(a.in6))
    memcpy(&a.in6, sa, sizeof(a.in6));
  else
    return -EAFNOSUPPORT;
  size_t at = 0;
  while (at < s->n && wsb_addr_cmp(&s->a[at], &a) < 0)
    at++;
  if (at < s->n && wsb_addr_cmp(&s->a[at], &a) == 0)
    return 0;
  if (s->n == WSB_ADDRS_MAX)
    return -ENOSPC;
  memmove(&s->a[at + 1], &s->a[at], (s->n - at) * sizeof(s->a[0]));
  s->a[at] = a;
  s->n++;
  return 1;
}

size_t wsb_addrs_from_addrinfo(struct wsb_addrs *s, const struct addrinfo *ai) {
  size_t dropped = 0;
  s->n = 0;
  for (; ai != NULL; ai = ai->ai_next)
    if (ai->ai_addr != NULL && wsb_addrs_add(s, ai->ai_addr, ai->ai_addrlen) == -ENOSPC)
      dropped++;
  return dropped;
}

bool wsb_addrs_equal(const struct wsb_addrs *x, const struct wsb_addrs *y) {
  if (x->n != y->n)
    return false;
  for (size_t i = 0; i < x->n; i++)
    if (wsb_addr_cmp(&x->a[i], &y->a[i]) != 0)
      return false;
  return true;
}

int wsb_addr_format(const union wsb_addr *a, char *out, size_t cap) {
  char host[INET6_ADDRSTRLEN];
  const void *bytes =
      a->sa.sa_family == AF_INET6 ? (const void *)&a->in6.sin6_addr : (const void *)&a->in.sin_addr;
  if (inet_ntop(a->sa.sa_family, bytes, host, sizeof(host)) == NULL)
    return -EAFNOSUPPORT;
  int n;
  /* A link-local address is only meaningful with its interface: keep it in the name. */
  if (a->sa.sa_family == AF_INET6 && a->in6.sin6_scope_id != 0)
    n = snprintf(out, cap, "%s%%%u", host, (unsigned)a->in6.sin6_scope_id);
  else
    n = snprintf(out, cap, "%s", host);
  return n < 0 || (size_t)n >= cap ? -ENOSPC : 0;
}

int wsb_addrs_backend_name(const char *section, const struct wsb_addrs *s, size_t i, char *out,
                           size_t cap) {
  if (s->n <= 1) {
    int n = snprintf(out, cap, "%s", section);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
  }
  char addr[INET6_ADDRSTRLEN + 16];
  if (wsb_addr_format(&s->a[i], addr, sizeof(addr)) != 0)
    return -ENAMETOOLONG;
  int n = snprintf(out, cap, "%s#%s", section, addr);
  return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static void append(char *out, size_t cap, size_t *used, char sign, const union wsb_addr *a) {
  char addr[INET6_ADDRSTRLEN + 16];
  if (wsb_addr_format(a, addr, sizeof(addr)) != 0 || *used >= cap)
    return;
  int n = snprintf(out + *used, cap - *used, "%s%c%s", *used ? " " : "", sign, addr);
  if (n > 0)
    *used = (size_t)n >= cap - *used ? cap - 1 : *used + (size_t)n;
}

void wsb_addrs_diff(const struct wsb_addrs *from, const struct wsb_addrs *to, char *out,
                    size_t cap) {
  size_t used = 0, i = 0, j = 0;
  if (cap == 0)
    return;
  out[0] = '\0';
  /* Both are sorted: one merge pass finds what only one side has. */
  while (i < from->n || j < to->n) {
    int c = i == from->n ? 1 : j == to->n ? -1 : wsb_addr_cmp(&from->a[i], &to->a[j]);
    if (c < 0)
      append(out, cap, &used, '-', &from->a[i++]);
    else if (c > 0)
      append(out, cap, &used, '+', &to->a[j++]);
    else
      i++, j++;
  }
}

bool wsb_addrs_is_literal(const char *host) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

void wsb_addrs_section(const char *name, char *out, size_t cap) {
  const char *hash = strchr(name, '#');
  size_t len = hash != NULL ? (size_t)(hash - name) : strlen(name);
  snprintf(out, cap, "%.*s", (int)len, name);
}
