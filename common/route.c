/* Routes: checking their items, compiling them into a flat table, matching a request. */
#include "route.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "errors.h"

enum key_kind { KEY_HOST, KEY_WILDCARD, KEY_PATH };

#define FNV_BASIS 14695981039346656037ULL
#define FNV_PRIME 1099511628211ULL

static uint64_t fnv(uint64_t h, char c) {
  return (h ^ (uint8_t)c) * FNV_PRIME;
}

/* Hosts hash from their last byte to their first, so a scan from the right has the hash of
   every parent domain on its way; paths hash forward for their prefixes. */
static uint64_t hash_host(const char *s, size_t n) {
  uint64_t h = FNV_BASIS;
  while (n > 0)
    h = fnv(h, s[--n]);
  return h;
}

static uint64_t hash_path(const char *s, size_t n) {
  uint64_t h = FNV_BASIS;
  for (size_t i = 0; i < n; i++)
    h = fnv(h, s[i]);
  return h;
}

/* Items. */

static bool label_char(char c) {
  return isalnum((unsigned char)c) || c == '-' || c == '_';
}

/* A host name: dot-separated non-empty labels of letters, digits, '-' and '_'. */
static bool host_name_valid(const char *s, size_t n) {
  if (n == 0)
    return false;
  bool empty_label = true;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '.') {
      if (empty_label)
        return false;
      empty_label = true;
    } else if (label_char(s[i])) {
      empty_label = false;
    } else {
      return false;
    }
  }
  return !empty_label;
}

/* "[" IPv6 address "]", as a Host header writes it. */
static bool ip_literal_valid(const char *s, size_t n) {
  if (n < 4 || s[0] != '[' || s[n - 1] != ']')
    return false;
  for (size_t i = 1; i + 1 < n; i++)
    if (!isxdigit((unsigned char)s[i]) && s[i] != ':' && s[i] != '.')
      return false;
  return true;
}

int wsb_route_host_item(const char *item, char *out, size_t cap) {
  size_t n = strlen(item);
  if (n > 0 && item[n - 1] == '.')
    n--; /* the root's dot: "example.com." is "example.com" */
  if (n == 0 || n >= cap || n >= WSB_ROUTE_ITEM_MAX)
    return WSB_EVALUE;
  for (size_t i = 0; i < n; i++)
    out[i] = (char)tolower((unsigned char)item[i]);
  out[n] = '\0';
  if (strncmp(out, "*.", 2) == 0)
    return host_name_valid(out + 2, n - 2) ? 0 : WSB_EVALUE;
  return host_name_valid(out, n) || ip_literal_valid(out, n) ? 0 : WSB_EVALUE;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c = (char)tolower((unsigned char)c);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool unreserved(int c) {
  return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/*
 * The path of target (up to its query) in the canonical form routes compare: an encoded
 * unreserved character decoded, other encodings with upper-case hex (RFC 3986 6.2.2), into out,
 * at most cap bytes; orig[i] is where out[i] came from in target, orig[length] where the path
 * ends. *cut says the path went on past cap.
 */
static size_t canonical_path(struct wsb_slice target, char *out, uint16_t *orig, size_t cap,
                             bool *cut) {
  size_t i = 0, n = 0;
  *cut = false;
  while (i < target.len && target.p[i] != '?' && target.p[i] != '#') {
    char c = target.p[i];
    int hi, lo;
    size_t take = 1, put = 1;
    char enc[3] = {c};
    if (c == '%' && i + 2 < target.len && (hi = hex_value(target.p[i + 1])) >= 0 &&
        (lo = hex_value(target.p[i + 2])) >= 0) {
      take = 3;
      if (unreserved(hi * 16 + lo)) {
        enc[0] = (char)(hi * 16 + lo);
      } else {
        enc[1] = (char)toupper((unsigned char)target.p[i + 1]);
        enc[2] = (char)toupper((unsigned char)target.p[i + 2]);
        put = 3;
      }
    }
    if (n + put > cap) {
      *cut = true;
      break;
    }
    for (size_t k = 0; k < put; k++) {
      orig[n] = (uint16_t)i;
      out[n++] = enc[k];
    }
    i += take;
  }
  orig[n] = (uint16_t)i;
  return n;
}

/* A dot segment, spelled out or encoded: the item is refused rather than never matching. */
static bool has_dot_segment(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '/')
      continue;
    size_t end = i + 1;
    while (end < n && s[end] != '/')
      end++;
    size_t len = end - i - 1;
    if ((len == 1 && s[i + 1] == '.') || (len == 2 && s[i + 1] == '.' && s[i + 2] == '.'))
      return true;
  }
  return false;
}

ssize_t wsb_route_path_item(const char *item, char *out, size_t cap) {
  size_t len = strlen(item);
  if (len == 0 || item[0] != '/' || len >= WSB_ROUTE_ITEM_MAX || cap < WSB_ROUTE_ITEM_MAX)
    return WSB_EVALUE;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)item[i];
    if (c < 0x21 || c > 0x7e || c == '?' || c == '#' || c == '\\')
      return WSB_EVALUE;
    if (c == '%' && (i + 2 >= len || hex_value(item[i + 1]) < 0 || hex_value(item[i + 2]) < 0))
      return WSB_EVALUE;
  }
  uint16_t orig[WSB_ROUTE_ITEM_MAX + 1];
  bool cut;
  size_t n = canonical_path((struct wsb_slice){item, len}, out, orig, cap - 1, &cut);
  /* An encoded separator would never match a request: wsbal refuses those requests. */
  if (cut || has_dot_segment(out, n) || strstr(out, "%2F") != NULL || strstr(out, "%5C") != NULL ||
      strstr(out, "%00") != NULL)
    return WSB_EVALUE;
  out[n] = '\0';
  /* Segment-wise, "/chat/" is "/chat": the boundary is implied. */
  while (n > 0 && out[n - 1] == '/')
    out[--n] = '\0';
  return (ssize_t)n;
}

static bool tchar(char c) {
  return isalnum((unsigned char)c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Splits "Name: value" or "Name"; the value is trimmed. false when malformed. */
static bool split_header(const char *item, struct wsb_slice *name, struct wsb_slice *value) {
  size_t n = 0;
  while (tchar(item[n]))
    n++;
  *name = (struct wsb_slice){item, n};
  *value = (struct wsb_slice){NULL, 0};
  if (n == 0)
    return false;
  if (item[n] == '\0')
    return true;
  if (item[n] != ':')
    return false;
  *value = wsb_slice_trim((struct wsb_slice){item + n + 1, strlen(item + n + 1)});
  if (value->len == 0)
    return false;
  for (size_t i = 0; i < value->len; i++) {
    unsigned char c = (unsigned char)value->p[i];
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      return false;
  }
  return true;
}

int wsb_route_header_item(const char *item) {
  struct wsb_slice name, value;
  return split_header(item, &name, &value) ? 0 : WSB_EVALUE;
}

/* Building. */

static bool key_equal(const struct wsb_route_table *t, const struct wsb_route_key *k,
                      enum key_kind kind, uint64_t hash, const char *s, size_t n) {
  return k->hash == hash && k->kind == kind && k->len == n && memcmp(t->chars + k->off, s, n) == 0;
}

/* The index of key (kind, s) in t->keys, or -1. */
static int key_find(const struct wsb_route_table *t, enum key_kind kind, uint64_t hash,
                    const char *s, size_t n) {
  for (size_t b = hash & (WSB_ROUTE_BUCKETS - 1);; b = (b + 1) & (WSB_ROUTE_BUCKETS - 1)) {
    uint16_t i = t->buckets[b];
    if (i == 0)
      return -1;
    if (key_equal(t, &t->keys[i - 1], kind, hash, s, n))
      return i - 1;
  }
}

static int put_chars(struct wsb_route_table *t, const char *s, size_t n, uint32_t *off) {
  if (t->nchars + n > WSB_ROUTE_CHARS_MAX)
    return WSB_ERANGE_VALUE;
  memcpy(t->chars + t->nchars, s, n);
  *off = t->nchars;
  t->nchars += (uint32_t)n;
  return 0;
}

/* Counts one more reference to the key (kind, s), adding it when new. */
static int key_count(struct wsb_route_table *t, enum key_kind kind, const char *s, size_t n) {
  uint64_t hash = kind == KEY_PATH ? hash_path(s, n) : hash_host(s, n);
  int found = key_find(t, kind, hash, s, n);
  if (t->nrefs >= WSB_ROUTE_REFS_MAX)
    return WSB_ERANGE_VALUE;
  t->nrefs++;
  if (found >= 0) {
    t->keys[found].nrefs++;
    return 0;
  }
  if (t->nkeys >= WSB_ROUTE_KEYS_MAX)
    return WSB_ERANGE_VALUE;
  struct wsb_route_key *k = &t->keys[t->nkeys];
  *k = (struct wsb_route_key){.hash = hash, .len = (uint16_t)n, .kind = (uint8_t)kind, .nrefs = 1};
  int rc = put_chars(t, s, n, &k->off);
  if (rc != 0)
    return rc;
  size_t b = hash & (WSB_ROUTE_BUCKETS - 1);
  while (t->buckets[b] != 0)
    b = (b + 1) & (WSB_ROUTE_BUCKETS - 1);
  t->buckets[b] = (uint16_t)++t->nkeys;
  return 0;
}

/* Second pass: the route's index into the key's list (refs_off was set, nrefs counts again). */
static void key_ref(struct wsb_route_table *t, enum key_kind kind, const char *s, size_t n,
                    uint16_t route) {
  uint64_t hash = kind == KEY_PATH ? hash_path(s, n) : hash_host(s, n);
  struct wsb_route_key *k = &t->keys[key_find(t, kind, hash, s, n)];
  t->refs[k->refs_off + k->nrefs++] = route;
}

static void bit_set(uint64_t *set, size_t i) {
  set[i / 64] |= 1ULL << (i % 64);
}

static bool bit_has(const uint64_t *set, size_t i) {
  return (set[i / 64] >> (i % 64)) & 1;
}

/* Each host and path item of route r: counted (pass 0) or referenced (pass 1). */
static int route_keys(struct wsb_route_table *t, const struct wsb_route_config *r, uint16_t idx,
                      int pass) {
  char item[WSB_ROUTE_ITEM_MAX];
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < r->hosts.n; i++) {
    if (wsb_route_host_item(r->hosts.items[i], item, sizeof(item)) != 0)
      return WSB_EVALUE;
    bool wild = item[0] == '*';
    const char *s = wild ? item + 2 : item;
    enum key_kind kind = wild ? KEY_WILDCARD : KEY_HOST;
    if (pass == 0)
      rc = key_count(t, kind, s, strlen(s));
    else
      key_ref(t, kind, s, strlen(s), idx);
  }
  for (size_t i = 0; rc == 0 && i < r->paths.n; i++) {
    ssize_t n = wsb_route_path_item(r->paths.items[i], item, sizeof(item));
    if (n < 0)
      return WSB_EVALUE;
    if (n == 0) {
      bit_set(t->any_path, idx); /* "/": every path */
      continue;
    }
    if ((uint32_t)n > t->max_path)
      t->max_path = (uint32_t)n;
    if (pass == 0)
      rc = key_count(t, KEY_PATH, item, (size_t)n);
    else
      key_ref(t, KEY_PATH, item, (size_t)n, idx);
  }
  return rc;
}

static int route_header(struct wsb_route_table *t, struct wsb_route *out, const char *header) {
  struct wsb_slice name, value;
  if (header == NULL)
    return 0;
  if (!split_header(header, &name, &value))
    return WSB_EVALUE;
  uint32_t off;
  int rc = put_chars(t, name.p, name.len, &out->header_off);
  if (rc == 0 && value.p != NULL)
    rc = put_chars(t, value.p, value.len, &off);
  out->has_header = true;
  out->header_has_value = value.p != NULL;
  out->header_name_len = (uint16_t)name.len;
  out->header_value_len = (uint16_t)value.len;
  return rc;
}

/* The slot prev gave name, or -1. */
static int prev_slot(const struct wsb_route_table *prev, const char *name) {
  for (uint32_t i = 0; prev != NULL && i < prev->nroutes; i++)
    if (strcmp(prev->routes[i].name, name) == 0)
      return prev->routes[i].slot;
  return -1;
}

/* Slots: a name keeps its own; a new one takes the lowest that neither table uses, or when
   both together hold more names than there are slots, the lowest this one does not use. */
static void assign_slots(struct wsb_route_table *t, const struct wsb_route_table *prev) {
  uint64_t old[WSB_ROUTE_WORDS] = {0}, mine[WSB_ROUTE_WORDS] = {0};
  int kept[WSB_ROUTE_MAX];
  for (uint32_t i = 0; prev != NULL && i < prev->nroutes; i++)
    bit_set(old, prev->routes[i].slot);
  for (uint32_t i = 0; i < t->nroutes; i++) {
    kept[i] = prev_slot(prev, t->routes[i].name);
    if (kept[i] >= 0)
      bit_set(mine, (size_t)kept[i]);
  }
  for (uint32_t i = 0; i < t->nroutes; i++) {
    size_t slot = (size_t)kept[i];
    if (kept[i] < 0) {
      slot = 0;
      while (slot < WSB_ROUTE_MAX && (bit_has(old, slot) || bit_has(mine, slot)))
        slot++;
      for (slot = slot < WSB_ROUTE_MAX ? slot : 0; bit_has(mine, slot);)
        slot++;
      bit_set(mine, slot);
    }
    t->routes[i].slot = (uint16_t)slot;
  }
}

int wsb_route_table_build(struct wsb_route_table *t, const struct wsb_route_config *routes,
                          size_t n, const struct wsb_route_table *prev, size_t *bad, char *err,
                          size_t errlen) {
  memset(t, 0, sizeof(*t));
  *bad = 0;
  if (n > WSB_ROUTE_MAX) {
    *bad = WSB_ROUTE_MAX;
    snprintf(err, errlen, "more than %d routes", WSB_ROUTE_MAX);
    return WSB_ERANGE_VALUE;
  }
  t->nroutes = (uint32_t)n;
  for (size_t i = 0; i < n; i++) {
    const struct wsb_route_config *r = &routes[i];
    struct wsb_route *out = &t->routes[i];
    snprintf(out->name, sizeof(out->name), "%s", r->name);
    snprintf(out->pool, sizeof(out->pool), "%s", r->pool != NULL ? r->pool : "default");
    out->strip_path = r->strip_path;
    out->pool_slot = UINT16_MAX;
    out->websocket = (uint8_t)r->websocket;
    if (r->hosts.n == 0)
      bit_set(t->any_host, i);
    if (r->paths.n == 0)
      bit_set(t->any_path, i);
    if (r->websocket != WSB_ROUTE_WS_ONLY)
      bit_set(t->kind_ok[0], i);
    if (r->websocket != WSB_ROUTE_WS_NEVER)
      bit_set(t->kind_ok[1], i);
    int rc = route_header(t, out, r->header);
    if (rc == 0)
      rc = route_keys(t, r, (uint16_t)i, 0);
    if (rc != 0) {
      *bad = i;
      snprintf(err, errlen,
               rc == WSB_EVALUE ? "[route:%s] has a bad item"
                                : "[route:%s] does not fit: all routes together may list %d "
                                  "items (%d different ones) of %d characters in all",
               r->name, WSB_ROUTE_REFS_MAX, WSB_ROUTE_KEYS_MAX, WSB_ROUTE_CHARS_MAX);
      return rc == WSB_EVALUE ? rc : WSB_ERANGE_VALUE;
    }
  }
  uint32_t off = 0;
  for (uint32_t k = 0; k < t->nkeys; k++) {
    t->keys[k].refs_off = off;
    off += t->keys[k].nrefs;
    t->keys[k].nrefs = 0;
  }
  for (size_t i = 0; i < n; i++)
    route_keys(t, &routes[i], (uint16_t)i, 1);
  assign_slots(t, prev);
  return 0;
}

/* Matching. */

struct hit {
  const struct wsb_route_key *key;
  uint16_t end; /* where the prefix ends in the request's target */
};

static void set_refs(const struct wsb_route_table *t, const struct wsb_route_key *k,
                     uint64_t *set) {
  for (uint32_t i = 0; i < k->nrefs; i++)
    bit_set(set, t->refs[k->refs_off + i]);
}

/* Routes whose host list takes the request's Host: its exact name, or a wildcard of any of its
   parent domains ("*.example.com" takes "a.example.com" and "a.b.example.com"). */
static void match_host(const struct wsb_route_table *t, struct wsb_slice host, uint64_t *set) {
  char h[WSB_ROUTE_ITEM_MAX];
  size_t n = 0;
  if (host.p == NULL)
    return;
  host = wsb_slice_trim(host);
  /* Without the port: "[::1]:8080" is "[::1]", "example.com:80" is "example.com". */
  size_t end = host.len;
  if (host.len > 0 && host.p[0] == '[') {
    const char *close = memchr(host.p, ']', host.len);
    end = close != NULL ? (size_t)(close - host.p) + 1 : host.len;
  } else {
    const char *colon = memchr(host.p, ':', host.len);
    if (colon != NULL)
      end = (size_t)(colon - host.p);
  }
  if (end > 0 && host.p[end - 1] == '.')
    end--;
  if (end == 0 || end >= sizeof(h))
    return; /* longer than any name a route can list */
  for (n = 0; n < end; n++)
    h[n] = (char)tolower((unsigned char)host.p[n]);
  uint64_t hash = FNV_BASIS;
  for (size_t i = n; i-- > 0;) {
    if (h[i] == '.' && i > 0 && i + 1 < n) {
      int k = key_find(t, KEY_WILDCARD, hash, h + i + 1, n - i - 1);
      if (k >= 0)
        set_refs(t, &t->keys[k], set);
    }
    hash = fnv(hash, h[i]);
  }
  int k = key_find(t, KEY_HOST, hash, h, n);
  if (k >= 0)
    set_refs(t, &t->keys[k], set);
}

/* Routes with a prefix of the path, segment-wise: "/chat" takes "/chat", "/chat/x", "/chat?q",
   not "/chatty". Each prefix found is noted in hits, shortest first. */
static size_t match_path(const struct wsb_route_table *t, struct wsb_slice path, uint64_t *set,
                         struct hit *hits) {
  char p[WSB_ROUTE_ITEM_MAX + 4];
  uint16_t orig[sizeof(p) + 1];
  size_t nhits = 0;
  bool cut;
  if (t->max_path == 0 || path.p == NULL)
    return 0;
  /* A byte past the longest prefix tells whether it ends at a boundary. */
  size_t n = canonical_path(path, p, orig, t->max_path + 1, &cut);
  uint64_t hash = FNV_BASIS;
  for (size_t i = 0; i <= n; i++) {
    if (i > 0 && (i == n ? !cut : p[i] == '/')) {
      int k = key_find(t, KEY_PATH, hash, p, i);
      if (k >= 0) {
        set_refs(t, &t->keys[k], set);
        hits[nhits++] = (struct hit){&t->keys[k], orig[i]};
      }
    }
    if (i < n)
      hash = fnv(hash, p[i]);
  }
  return nhits;
}

static bool header_matches(const struct wsb_route_table *t, const struct wsb_route *r,
                           const struct wsb_http_head *head) {
  if (!r->has_header)
    return true;
  if (head == NULL)
    return false;
  struct wsb_slice name = {t->chars + r->header_off, r->header_name_len};
  struct wsb_slice want = {name.p + name.len, r->header_value_len};
  for (size_t i = 0; i < head->nheaders; i++) {
    const struct wsb_header *h = &head->headers[i];
    if (h->name.len != name.len || strncasecmp(h->name.p, name.p, name.len) != 0)
      continue;
    if (!r->header_has_value)
      return true;
    struct wsb_slice v = wsb_slice_trim(h->value);
    if (v.len == want.len && memcmp(v.p, want.p, want.len) == 0)
      return true;
  }
  return false;
}

static bool refs_has(const struct wsb_route_table *t, const struct wsb_route_key *k, int route) {
  for (uint32_t i = 0; i < k->nrefs; i++)
    if (t->refs[k->refs_off + i] == route)
      return true;
  return false;
}

int wsb_route_match(const struct wsb_route_table *t, const struct wsb_route_request *r,
                    size_t *strip) {
  uint64_t host[WSB_ROUTE_WORDS], path[WSB_ROUTE_WORDS];
  struct hit hits[WSB_ROUTE_ITEM_MAX + 8]; /* a prefix ends at most at every byte */
  size_t words = (t->nroutes + 63) / 64;
  *strip = 0;
  if (words == 0)
    return -1;
  memcpy(host, t->any_host, words * sizeof(host[0]));
  memcpy(path, t->any_path, words * sizeof(path[0]));
  match_host(t, r->host, host);
  size_t nhits = match_path(t, r->path, path, hits);
  const uint64_t *kind = t->kind_ok[r->websocket ? 1 : 0];
  for (size_t w = 0; w < words; w++) {
    uint64_t m = host[w] & path[w] & kind[w];
    while (m != 0) {
      int i = (int)(w * 64) + __builtin_ctzll(m);
      m &= m - 1;
      const struct wsb_route *route = &t->routes[i];
      if (!header_matches(t, route, r->head))
        continue;
      for (size_t h = nhits; route->strip_path && h-- > 0;) {
        if (refs_has(t, hits[h].key, i)) {
          *strip = hits[h].end;
          break;
        }
      }
      return i;
    }
  }
  return -1;
}
