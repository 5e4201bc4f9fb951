/* What the hash algorithm hashes: the key SPEC.md's [upstream] hash_key names, taken from a
 * request. */
#ifndef WSB_HASH_KEY_H
#define WSB_HASH_KEY_H

#include <stdbool.h>

#include "config.h"
#include "http.h"

struct wsb_hash_key_source {
  const struct wsb_http_head *req; /* the client's request head */
  struct wsb_slice target;         /* its path (dot segments removed) and query */
  const char *client_ip;           /* the real client's address as text (wsb_proxy_real_client) */
};

/*
 * Sets *out to the bytes to hash, a slice of the request or of client_ip:
 *  - ip: the real client's address, which trust_forwarded may have taken from X-Forwarded-For;
 *  - path: the path without its query;
 *  - header:NAME: the first NAME header's value, spaces trimmed (a client that repeats it
 *    could as well send the value it wants: it only picks a backend);
 *  - cookie:NAME: the value of cookie NAME in the Cookie headers;
 *  - query:NAME: the raw (not percent-decoded) value of the first NAME parameter.
 * A key that is absent or empty falls back to the ip key, so such clients still stick to one
 * backend each and spread over all. Returns true when the configured key was found, false when
 * *out is the fallback.
 */
bool wsb_hash_key_get(enum wsb_hash_key kind, const char *name,
                      const struct wsb_hash_key_source *src, struct wsb_slice *out);

#endif
