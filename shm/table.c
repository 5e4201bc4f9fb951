/* Turns a configuration into the segment's table and settings (slots kept by name); backend TLS. */
#include "shm.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "errors.h"
#include "tls_context.h"

/* Joins a list with commas into out; a list too long for out is an error, never cut silently. */
static int join_list(char *out, size_t cap, const struct wsb_strlist *list, const char *what,
                     char *err, size_t errlen) {
  size_t used = 0;
  out[0] = '\0';
  for (size_t i = 0; i < list->n; i++) {
    int n = snprintf(out + used, cap - used, "%s%s", i ? "," : "", list->items[i]);
    if (n < 0 || (size_t)n >= cap - used) {
      snprintf(err, errlen, "%s: list longer than %zu bytes", what, cap - 1);
      return -ENAMETOOLONG;
    }
    used += (size_t)n;
  }
  return 0;
}

static int copy_string(char *out, size_t cap, const char *s, const char *what, char *err,
                       size_t errlen) {
  if (s == NULL) {
    out[0] = '\0';
    return 0;
  }
  if (strlen(s) >= cap) {
    snprintf(err, errlen, "%s: longer than %zu bytes", what, cap - 1);
    return -ENAMETOOLONG;
  }
  strcpy(out, s);
  return 0;
}

/* Copies of each kind of setting of WSB_WORKER_SETTINGS (shm.h); a failed one keeps rc. TLS
   files are copied as paths only: they were checked when the configuration was loaded. */
#define FILL_VAL(what, from, to) s->to = from;
#define FILL_STR(what, from, to) \
  if (rc == 0)                   \
    rc = copy_string(s->to, sizeof(s->to), from, what, err, errlen);
#define FILL_LIST(what, from, to) \
  if (rc == 0)                    \
    rc = join_list(s->to, sizeof(s->to), &from, what, err, errlen);
/* Where a section's values come from: [upstream]'s are the pool's (u). */
#define FILL_FROM_wsbal    cfg->wsbal
#define FILL_FROM_listen   cfg->listen
#define FILL_FROM_upstream (*u)
#define FILL(copy, type, section, prefix, key, suffix) \
  FILL_##copy("[" #section "] " #key, FILL_FROM_##section.key##suffix, prefix##key##suffix)

/* The settings of a pool whose upstream keys are u (cfg's own for the table's). */
static int fill_settings(struct wsb_shm_settings *s, const struct wsb_config *cfg,
                         const struct wsb_upstream_config *u, char *err, size_t errlen) {
  int rc = 0;
  memset(s, 0, sizeof(*s));
  WSB_WORKER_SETTINGS(FILL)
  return rc;
}

int wsb_shm_pool_find(const struct wsb_shm_table *t, const char *name) {
  for (uint32_t i = 0; i < t->npools; i++)
    if (t->pools[i].in_use && strcmp(t->pools[i].name, name) == 0)
      return (int)i;
  return -1;
}

/* Whether a pool slot is better left alone for a new pool: prev used it (a worker reading prev
   may be placing a session in it now), or sessions placed in it are still live. */
static bool pool_slot_busy(const struct wsb_shm_table *prev, const struct wsb_shm *shm,
                           uint32_t i) {
  return (prev != NULL && i < prev->npools && prev->pools[i].in_use) ||
         (shm != NULL && WSB_SHM_SUM(shm, pool_sessions[i]) > 0);
}

/* Adds pool name with upstream keys u to t, in the slot prev gave it or else in a free one
   (one not busy, if any: a session of a removed pool still names its slot). */
static int add_pool(struct wsb_shm_table *t, const struct wsb_shm_table *prev,
                    const struct wsb_shm *shm, const char *name, const struct wsb_config *cfg,
                    const struct wsb_upstream_config *u, char *err, size_t errlen) {
  int slot = strcmp(name, WSB_DEFAULT_POOL) == 0 ? WSB_SHM_DEFAULT_POOL
             : prev != NULL                      ? wsb_shm_pool_find(prev, name)
                                                 : -1;
  for (int pass = 0; slot < 0 && pass < 2; pass++)
    for (int i = WSB_SHM_DEFAULT_POOL + 1; slot < 0 && i < WSB_SHM_MAX_POOLS; i++)
      if (!t->pools[i].in_use && (pass == 1 || !pool_slot_busy(prev, shm, (uint32_t)i)))
        slot = i;
  if (slot < 0 || t->pools[slot].in_use) {
    snprintf(err, errlen, "pool %s: more than %d pools", name, WSB_SHM_MAX_POOLS);
    return -E2BIG;
  }
  struct wsb_shm_pool *p = &t->pools[slot];
  int rc = fill_settings(&p->settings, cfg, u, err, errlen);
  if (rc != 0)
    return rc;
  p->in_use = true;
  snprintf(p->name, sizeof(p->name), "%s", name);
  if ((uint32_t)slot + 1 > t->npools)
    t->npools = (uint32_t)slot + 1;
  return 0;
}

/* A backend's pool; one built without the key (a test's, an old caller's) is in "default". */
static const char *pool_of(const struct wsb_backend_config *b) {
  return b->pool[0] != '\0' ? b->pool : WSB_DEFAULT_POOL;
}

/* cfg's pools, then those only its backends name (the admin API adds backends to any pool). */
static int build_pools(struct wsb_shm_table *t, const struct wsb_config *cfg,
                       const struct wsb_shm_table *prev, const struct wsb_shm *shm, char *err,
                       size_t errlen) {
  int rc = 0;
  if (wsb_config_pool(cfg, WSB_DEFAULT_POOL) == NULL)
    rc = add_pool(t, prev, shm, WSB_DEFAULT_POOL, cfg, &cfg->upstream, err, errlen);
  for (size_t i = 0; rc == 0 && i < cfg->npools; i++)
    rc = add_pool(t, prev, shm, cfg->pools[i].name, cfg, &cfg->pools[i].upstream, err, errlen);
  for (size_t i = 0; rc == 0 && i < cfg->nbackends; i++)
    if (wsb_shm_pool_find(t, pool_of(&cfg->backends[i])) < 0)
      rc = add_pool(t, prev, shm, pool_of(&cfg->backends[i]), cfg, &cfg->upstream, err, errlen);
  return rc;
}

/* The slot name has in t: a backend's, or a removed one's still holding its last sessions. */
static int find_slot(const struct wsb_shm_table *t, const char *name) {
  for (uint32_t i = 0; i < t->nslots; i++)
    if ((t->backends[i].in_use || t->backends[i].retired) && strcmp(t->backends[i].name, name) == 0)
      return (int)i;
  return -1;
}

/*
 * Marks the slots no backend of t takes but that must not be given to a new
 * one: every slot with live sessions in shm, whatever generation removed its
 * backend (the counts in the segment are the truth, not prev). Those prev
 * named stay named, retired. A slot prev had in use is marked recent: a worker
 * that read prev may be placing a session on it right now, so it is given away
 * only when nothing else is free.
 */
static void hold_slots(struct wsb_shm_table *t, const struct wsb_shm_table *prev,
                       const struct wsb_shm *shm, bool *taken, bool *recent) {
  for (uint32_t slot = 0; slot < WSB_SHM_MAX_BACKENDS; slot++) {
    if (taken[slot])
      continue;
    const struct wsb_shm_backend *old =
        prev != NULL && slot < prev->nslots ? &prev->backends[slot] : NULL;
    recent[slot] = old != NULL && old->in_use;
    if (shm == NULL || wsb_shm_backend_live(shm, slot) == 0)
      continue;
    taken[slot] = true;
    if (old != NULL && (old->in_use || old->retired)) {
      t->backends[slot] = *old;
      t->backends[slot].in_use = false;
      t->backends[slot].enabled = false;
      t->backends[slot].retired = true;
      if (slot + 1 > t->nslots)
        t->nslots = slot + 1;
    }
  }
}

/* The lowest slot neither taken nor recent, else the lowest not taken; -1 when all are. */
static int free_slot(const bool *taken, const bool *recent) {
  for (int pass = 0; pass < 2; pass++)
    for (int slot = 0; slot < WSB_SHM_MAX_BACKENDS; slot++)
      if (!taken[slot] && (pass == 1 || !recent[slot]))
        return slot;
  return -1;
}

/* One backend of the table to be: an address of a section, under its final name. */
struct entry {
  char name[WSB_NAME_MAX];
  size_t section;
  size_t addr;
  int slot;
};

/* Every section's addresses become backends: one named NAME, or NAME#ADDR for each address. */
static int expand(struct entry *out, size_t *n, const struct wsb_config *cfg,
                  const struct wsb_addrs *addrs, char *err, size_t errlen) {
  *n = 0;
  for (size_t i = 0; i < cfg->nbackends; i++) {
    if (addrs[i].n == 0) {
      snprintf(err, errlen, "backend %s: no address for %s", cfg->backends[i].name,
               cfg->backends[i].url.host);
      return -EHOSTUNREACH;
    }
    for (size_t a = 0; a < addrs[i].n; a++) {
      if (*n == WSB_SHM_MAX_BACKENDS) {
        snprintf(err, errlen, "backend %s: more than %d backends with every address counted",
                 cfg->backends[i].name, WSB_SHM_MAX_BACKENDS);
        return -E2BIG;
      }
      struct entry *e = &out[(*n)++];
      e->section = i;
      e->addr = a;
      if (wsb_addrs_backend_name(cfg->backends[i].name, &addrs[i], a, e->name, sizeof(e->name)) !=
          0) {
        snprintf(err, errlen, "backend %s: a name for one of its addresses is too long",
                 cfg->backends[i].name);
        return -ENAMETOOLONG;
      }
    }
  }
  return 0;
}

int wsb_shm_table_build(struct wsb_shm_table *t, const struct wsb_config *cfg,
                        const struct wsb_addrs *addrs, const struct wsb_shm_table *prev,
                        const struct wsb_shm *shm, char *err, size_t errlen) {
  memset(t, 0, sizeof(*t));
  int rc = fill_settings(&t->settings, cfg, &cfg->upstream, err, errlen);
  if (rc == 0)
    rc = build_pools(t, cfg, prev, shm, err, errlen);
  if (rc != 0)
    return rc;
  if (prev != NULL) {
    /* A reload bumps serial itself (master.c). */
    t->settings.tls_serial = prev->settings.tls_serial;
  }
  struct entry entries[WSB_SHM_MAX_BACKENDS]; /* about 37 KiB: the master's stack has room */
  size_t n;
  rc = expand(entries, &n, cfg, addrs, err, errlen);
  if (rc != 0)
    return rc;
  bool taken[WSB_SHM_MAX_BACKENDS] = {false}, recent[WSB_SHM_MAX_BACKENDS] = {false};
  /* First the backends that keep their slot (a name back while its old sessions live gets
     them back), then the slots held for removed backends' sessions, then new backends. */
  for (size_t i = 0; i < n; i++) {
    entries[i].slot = prev != NULL ? find_slot(prev, entries[i].name) : -1;
    if (entries[i].slot >= 0)
      taken[entries[i].slot] = true;
  }
  /* A removed backend's slot waits for its last session: its count must not land on another. */
  hold_slots(t, prev, shm, taken, recent);
  for (size_t i = 0; i < n; i++) {
    struct entry *e = &entries[i];
    if (e->slot < 0) {
      e->slot = free_slot(taken, recent);
      if (e->slot < 0) {
        snprintf(err, errlen, "backend %s: all %d slots hold backends or their last sessions",
                 e->name, WSB_SHM_MAX_BACKENDS);
        return -E2BIG;
      }
      taken[e->slot] = true;
    }
    const struct wsb_backend_config *bc = &cfg->backends[e->section];
    const union wsb_addr *addr = &addrs[e->section].a[e->addr];
    struct wsb_shm_backend *b = &t->backends[e->slot];
    memcpy(b->name, e->name, sizeof(b->name)); /* both WSB_NAME_MAX, NUL-terminated */
    b->url = bc->url;
    memset(&b->addr, 0, sizeof(b->addr));
    memcpy(&b->addr, addr, wsb_addr_len(addr));
    b->addr_len = wsb_addr_len(addr);
    b->weight = bc->weight;
    b->max_sessions = bc->max_sessions;
    b->enabled = bc->enabled;
    b->backup = bc->backup;
    b->pool = (uint32_t)wsb_shm_pool_find(t, pool_of(bc)); /* build_pools made every one */
    b->in_use = true;
    if ((uint32_t)e->slot + 1 > t->nslots)
      t->nslots = (uint32_t)e->slot + 1;
  }
  size_t bad; /* the loader has checked the routes fit: this is for a caller that did not */
  rc = wsb_route_table_build(&t->routes, cfg->routes, cfg->nroutes,
                             prev != NULL ? &prev->routes : NULL, &bad, err, errlen);
  /* A worker finds a route's pool by slot, not by name, at every request. */
  for (uint32_t i = 0; rc == 0 && i < t->routes.nroutes; i++) {
    int pool = wsb_shm_pool_find(t, t->routes.routes[i].pool);
    t->routes.routes[i].pool_slot = pool >= 0 ? (uint16_t)pool : UINT16_MAX;
  }
  return rc;
}

SSL_CTX *wsb_shm_tls_client_ctx(const struct wsb_shm_settings *s, char *err, size_t errlen) {
  return wsb_tls_client_ctx(s->tls_verify, s->tls_ca_file[0] ? s->tls_ca_file : NULL,
                            s->tls_client_cert[0] ? s->tls_client_cert : NULL,
                            s->tls_client_key[0] ? s->tls_client_key : NULL, err, errlen);
}
