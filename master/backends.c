/* The desired state of the backends by name, and the verbs every change goes through. */
#include "backends.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addrs.h"
#include "reload.h"

static struct wsb_backend_config *section(const struct wsb_backends *bs, const char *name) {
  for (size_t i = 0; i < bs->n; i++)
    if (strcmp(bs->sections[i].name, name) == 0)
      return &bs->sections[i];
  return NULL;
}

const struct wsb_backend_config *wsb_backends_find(const struct wsb_backends *bs,
                                                   const char *name) {
  return section(bs, name);
}

/* A copy of n entries of size each (NULL only when out of memory; n = 0 gives a valid block). */
static void *dup_array(const void *from, size_t n, size_t size) {
  void *p = malloc(n > 0 ? n * size : 1);
  if (p != NULL && n > 0)
    memcpy(p, from, n * size);
  return p;
}

int wsb_backends_from_config(struct wsb_backends *bs, struct wsb_config *cfg) {
  *bs = (struct wsb_backends){0};
  bs->sections = dup_array(cfg->backends, cfg->nbackends, sizeof(*cfg->backends));
  if (bs->sections == NULL)
    return -ENOMEM;
  bs->n = cfg->nbackends;
  bs->file = cfg->backends;
  bs->nfile = cfg->nbackends;
  if (bs->file == NULL)
    bs->file = malloc(1); /* never NULL while bs lives, like the others */
  if (bs->file == NULL) {
    free(bs->sections);
    return -ENOMEM;
  }
  cfg->backends = NULL;
  cfg->nbackends = 0;
  return 0;
}

int wsb_backends_copy(struct wsb_backends *bs, const struct wsb_backends *from) {
  *bs = (struct wsb_backends){.n = from->n, .nfile = from->nfile, .noverrides = from->noverrides};
  bs->sections = dup_array(from->sections, from->n, sizeof(*from->sections));
  bs->file = dup_array(from->file, from->nfile, sizeof(*from->file));
  bs->overrides = dup_array(from->overrides, from->noverrides, sizeof(*from->overrides));
  if (bs->sections == NULL || bs->file == NULL || bs->overrides == NULL) {
    wsb_backends_free(bs);
    return -ENOMEM;
  }
  return 0;
}

void wsb_backends_free(struct wsb_backends *bs) {
  free(bs->sections);
  free(bs->file);
  free(bs->overrides);
  *bs = (struct wsb_backends){0};
}

void wsb_backends_swap(struct wsb_backends *a, struct wsb_backends *b) {
  struct wsb_backends t = *a;
  *a = *b;
  *b = t;
}

int wsb_backends_add(struct wsb_backends *bs, const struct wsb_backend_config *b) {
  if (!wsb_config_backend_name_valid(b->name))
    return -EINVAL;
  if (section(bs, b->name) != NULL)
    return -EEXIST;
  struct wsb_backend_config *grown = realloc(bs->sections, (bs->n + 1) * sizeof(*grown));
  if (grown == NULL)
    return -ENOMEM;
  bs->sections = grown;
  bs->sections[bs->n++] = *b;
  return 0;
}

int wsb_backends_remove(struct wsb_backends *bs, const char *name) {
  if (strchr(name, '#') != NULL)
    return -EPERM;
  struct wsb_backend_config *s = section(bs, name);
  if (s == NULL)
    return -ENOENT;
  size_t i = (size_t)(s - bs->sections);
  memmove(s, s + 1, (bs->n - i - 1) * sizeof(*s));
  bs->n--;
  wsb_backends_apply(bs, NULL); /* its addresses' changes go with it */
  return 0;
}

/* Forgets the changes made to single addresses of section name. */
static void forget(struct wsb_backends *bs, const char *name) {
  size_t kept = 0;
  for (size_t i = 0; i < bs->noverrides; i++) {
    char sec[WSB_NAME_MAX];
    wsb_addrs_section(bs->overrides[i].name, sec, sizeof(sec));
    if (strcmp(sec, name) != 0)
      bs->overrides[kept++] = bs->overrides[i];
  }
  bs->noverrides = kept;
}

/* The change to one address NAME#ADDR, made if absent; NULL when out of memory. */
static struct wsb_backend_override * override(struct wsb_backends *bs, const char *name) {
  for (size_t i = 0; i < bs->noverrides; i++)
    if (strcmp(bs->overrides[i].name, name) == 0)
      return &bs->overrides[i];
  struct wsb_backend_override *grown =
      realloc(bs->overrides, (bs->noverrides + 1) * sizeof(*grown));
  if (grown == NULL)
    return NULL;
  bs->overrides = grown;
  struct wsb_backend_override *o = &grown[bs->noverrides++];
  *o = (struct wsb_backend_override){.weight = 0, .enabled = -1};
  snprintf(o->name, sizeof(o->name), "%s", name);
  return o;
}

/* One verb's change to weight (0: none) or enabled (-1: none) of a section or an address;
   drain says that a disable is a drain's. */
static int change(struct wsb_backends *bs, const char *name, unsigned weight, int enabled,
                  bool drain) {
  char sec[WSB_NAME_MAX];
  wsb_addrs_section(name, sec, sizeof(sec));
  struct wsb_backend_config *s = section(bs, sec);
  if (s == NULL)
    return -ENOENT;
  if (strcmp(sec, name) != 0) {
    struct wsb_backend_override *o = override(bs, name);
    if (o == NULL)
      return -ENOMEM;
    if (weight > 0)
      o->weight = weight;
    if (enabled >= 0) {
      o->enabled = enabled;
      o->draining = drain;
    }
    return 0;
  }
  if (weight > 0)
    s->weight = weight;
  if (enabled >= 0) {
    s->enabled = enabled != 0;
    s->draining = drain;
  }
  forget(bs, name); /* the section's word is the last */
  return 0;
}

int wsb_backends_set_weight(struct wsb_backends *bs, const char *name, unsigned weight) {
  if (weight < 1 || weight > 1000)
    return -ERANGE;
  return change(bs, name, weight, -1, false);
}

int wsb_backends_enable(struct wsb_backends *bs, const char *name) {
  return change(bs, name, 0, 1, false);
}

int wsb_backends_disable(struct wsb_backends *bs, const char *name) {
  return change(bs, name, 0, 0, false);
}

int wsb_backends_drain(struct wsb_backends *bs, const char *name) {
  return change(bs, name, 0, 0, true);
}

int wsb_backends_set_pool(struct wsb_backends *bs, const char *name, const char *pool) {
  struct wsb_backend_config *s = section(bs, name);
  if (s == NULL)
    return -ENOENT;
  snprintf(s->pool, sizeof(s->pool), "%s", pool);
  return 0;
}

bool wsb_backends_draining(const struct wsb_backends *bs, const char *name) {
  char sec[WSB_NAME_MAX];
  wsb_addrs_section(name, sec, sizeof(sec));
  for (size_t i = 0; strcmp(sec, name) != 0 && i < bs->noverrides; i++)
    if (strcmp(bs->overrides[i].name, name) == 0 && bs->overrides[i].enabled >= 0)
      return bs->overrides[i].draining;
  const struct wsb_backend_config *s = section(bs, sec);
  return s != NULL && s->draining;
}

/* The slot t gives name, or -1 (t may be NULL). */
static int slot_of(const struct wsb_shm_table *t, const char *name) {
  for (uint32_t s = 0; t != NULL && s < t->nslots; s++)
    if (t->backends[s].in_use && strcmp(t->backends[s].name, name) == 0)
      return (int)s;
  return -1;
}

/* With t NULL: forgets the changes to addresses whose section is gone. */
void wsb_backends_apply(struct wsb_backends *bs, struct wsb_shm_table *t) {
  size_t kept = 0;
  for (size_t i = 0; i < bs->noverrides; i++) {
    const struct wsb_backend_override *o = &bs->overrides[i];
    char sec[WSB_NAME_MAX];
    wsb_addrs_section(o->name, sec, sizeof(sec));
    int slot = slot_of(t, o->name);
    struct wsb_shm_backend *b = slot >= 0 ? &t->backends[slot] : NULL;
    if (section(bs, sec) == NULL || (t != NULL && b == NULL))
      continue; /* the address went: a new one with its name starts from its section */
    if (b != NULL && o->weight > 0)
      b->weight = o->weight;
    if (b != NULL && o->enabled >= 0)
      b->enabled = o->enabled != 0;
    bs->overrides[kept++] = *o;
  }
  bs->noverrides = kept;
}

static const struct wsb_backend_config *find(const struct wsb_backend_config *list, size_t n,
                                             const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(list[i].name, name) == 0)
      return &list[i];
  return NULL;
}

static const char *on_off(bool v) {
  return v ? "on" : "off";
}

static const char *enabled_word(bool v) {
  return v ? "enabled" : "disabled";
}

void wsb_backends_discarded(const struct wsb_backends *run, const struct wsb_backends *next,
                            const struct wsb_shm_table *next_table, struct wsb_config_errors *out) {
  for (size_t i = 0; i < run->n; i++) {
    const struct wsb_backend_config *r = &run->sections[i];
    const struct wsb_backend_config *b = find(run->file, run->nfile, r->name);
    const struct wsb_backend_config *n = find(next->sections, next->n, r->name);
    if (n == NULL) {
      if (b == NULL)
        wsb_reload_note(out, "backend %s: removed (added through the API)", r->name);
      continue; /* the file removed it: not a runtime change */
    }
    /* A field counts when the API changed it: it differs from what the file said, or the
       backend came from the API altogether. */
    if (r->enabled != n->enabled && (b == NULL || b->enabled != r->enabled))
      wsb_reload_note(out, "backend %s: %s (%s through the API)", r->name, enabled_word(n->enabled),
                      enabled_word(r->enabled));
    if (r->weight != n->weight && (b == NULL || b->weight != r->weight))
      wsb_reload_note(out, "backend %s: weight %u (%u through the API)", r->name, n->weight,
                      r->weight);
    if (strcmp(r->url_text, n->url_text) != 0 && (b == NULL || strcmp(b->url_text, r->url_text)))
      wsb_reload_note(out, "backend %s: url %s (%s through the API)", r->name, n->url_text,
                      r->url_text);
    if (r->max_sessions != n->max_sessions && (b == NULL || b->max_sessions != r->max_sessions))
      wsb_reload_note(out, "backend %s: max_sessions %u (%u through the API)", r->name,
                      n->max_sessions, r->max_sessions);
    if (strcmp(r->pool, n->pool) != 0 && (b == NULL || strcmp(b->pool, r->pool) != 0))
      wsb_reload_note(out, "backend %s: pool %s (%s through the API)", r->name, n->pool, r->pool);
    if (r->backup != n->backup && (b == NULL || b->backup != r->backup))
      wsb_reload_note(out, "backend %s: backup %s (%s through the API)", r->name, on_off(n->backup),
                      on_off(r->backup));
  }
  for (size_t i = 0; i < run->nfile; i++)
    if (section(run, run->file[i].name) == NULL && section(next, run->file[i].name) != NULL)
      wsb_reload_note(out, "backend %s: back (deleted through the API)", run->file[i].name);
  for (size_t i = 0; i < run->noverrides; i++) {
    const struct wsb_backend_override *o = &run->overrides[i];
    int slot = slot_of(next_table, o->name);
    if (slot < 0)
      continue; /* the address is gone with the file's change */
    const struct wsb_shm_backend *n = &next_table->backends[slot];
    if (o->enabled >= 0 && (o->enabled != 0) != n->enabled)
      wsb_reload_note(out, "backend %s: %s (%s through the API)", o->name, enabled_word(n->enabled),
                      enabled_word(o->enabled));
    if (o->weight > 0 && o->weight != n->weight)
      wsb_reload_note(out, "backend %s: weight %u (%u through the API)", o->name, n->weight,
                      o->weight);
  }
}
