/* Takes the hash algorithm's key (ip, path, header, cookie, query parameter) out of a request. */
#include "hash_key.h"

#include <string.h>

/* In "a=1<sep>b=2", the value of the first pair named name (case-sensitive, as cookies and
   query parameters are). */
static bool find_pair(struct wsb_slice list, char sep, const char *name, struct wsb_slice *out) {
  size_t nlen = strlen(name);
  while (list.len > 0) {
    struct wsb_slice item = wsb_slice_trim(wsb_slice_next_item(&list, sep));
    const char *eq = memchr(item.p, '=', item.len);
    if (eq == NULL)
      continue;
    struct wsb_slice key = wsb_slice_trim((struct wsb_slice){item.p, (size_t)(eq - item.p)});
    if (key.len == nlen && memcmp(key.p, name, nlen) == 0) {
      *out = wsb_slice_trim((struct wsb_slice){eq + 1, (size_t)(item.p + item.len - (eq + 1))});
      return true;
    }
  }
  return false;
}

static struct wsb_slice ip_key(const struct wsb_hash_key_source *src) {
  return (struct wsb_slice){src->client_ip, strlen(src->client_ip)};
}

static bool find_key(enum wsb_hash_key kind, const char *name,
                     const struct wsb_hash_key_source *src, struct wsb_slice *out) {
  struct wsb_slice t = src->target;
  const char *q = memchr(t.p, '?', t.len);
  switch (kind) {
  case WSB_HASH_PATH:
    *out = (struct wsb_slice){t.p, q != NULL ? (size_t)(q - t.p) : t.len};
    return true;
  case WSB_HASH_HEADER: {
    const struct wsb_header *h = wsb_http_find(src->req, name, NULL);
    if (h == NULL)
      return false;
    *out = wsb_slice_trim(h->value);
    return true;
  }
  case WSB_HASH_COOKIE:
    for (const struct wsb_header *h = wsb_http_find(src->req, "Cookie", NULL); h != NULL;
         h = wsb_http_find(src->req, "Cookie", h))
      if (find_pair(h->value, ';', name, out))
        return true;
    return false;
  case WSB_HASH_QUERY:
    if (q == NULL)
      return false;
    return find_pair((struct wsb_slice){q + 1, t.len - (size_t)(q + 1 - t.p)}, '&', name, out);
  case WSB_HASH_IP:
  default:
    *out = ip_key(src);
    return true;
  }
}

bool wsb_hash_key_get(enum wsb_hash_key kind, const char *name,
                      const struct wsb_hash_key_source *src, struct wsb_slice *out) {
  bool named = kind == WSB_HASH_HEADER || kind == WSB_HASH_COOKIE || kind == WSB_HASH_QUERY;
  if ((!named || (name != NULL && name[0] != '\0')) && find_key(kind, name, src, out) &&
      out->len > 0)
    return true;
  *out = ip_key(src);
  return false;
}
