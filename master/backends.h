/* The desired state of the backends, by name: what reload, the admin API and discovery change. */
#ifndef WSB_BACKENDS_H
#define WSB_BACKENDS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "shm.h"

/* An admin change to one address of a section (NAME#ADDR): its host's lookups make the address,
   so no section holds it; kept while the address exists, until the next reload. */
struct wsb_backend_override {
  char name[WSB_NAME_MAX];
  unsigned weight; /* 0 = the section's */
  int enabled;     /* -1 = the section's */
  bool draining;   /* enabled is 0 through a drain */
};

/*
 * Every table the master publishes is built from one of these: the sections
 * wanted now (the file's, as changed through the API since) and the changes
 * to single addresses. Only the verbs below change it; a change is made on a
 * copy (wsb_backends_copy) and becomes the running state when its table is
 * published (wsb_master_publish), so a change that cannot be published
 * leaves nothing behind.
 */
struct wsb_backends {
  struct wsb_backend_config *sections; /* in the file's order, added ones last */
  size_t n;
  struct wsb_backend_config *file; /* the file's sections when it was last read */
  size_t nfile;
  struct wsb_backend_override *overrides;
  size_t noverrides;
};

/* The state a file gives, without runtime changes: takes cfg's backends (cfg keeps none, so no
   one reads a list the API has changed since). Returns 0 or -ENOMEM (cfg untouched). */
int wsb_backends_from_config(struct wsb_backends *bs, struct wsb_config *cfg);
/* A deep copy of from into bs. Returns 0 or -ENOMEM (bs empty). */
int wsb_backends_copy(struct wsb_backends *bs, const struct wsb_backends *from);
void wsb_backends_free(struct wsb_backends *bs);
void wsb_backends_swap(struct wsb_backends *a, struct wsb_backends *b);

/* The section named name, or NULL (an address NAME#ADDR is not a section). */
const struct wsb_backend_config *wsb_backends_find(const struct wsb_backends *bs, const char *name);

/* The verbs. name is a section, or for set_weight, enable, disable and drain also one address
   NAME#ADDR of a section. A section's change reaches all its addresses and forgets the changes
   made to them one by one. Each returns 0, -ENOENT (no such section), or the error it names. */

/* b, a section new by name; -EEXIST, -EINVAL for a name a section cannot have, -ENOMEM. */
int wsb_backends_add(struct wsb_backends *bs, const struct wsb_backend_config *b);
/* A section; -EPERM for one address (its host's next lookup would bring it back). */
int wsb_backends_remove(struct wsb_backends *bs, const char *name);
/* weight 1..1000 (-ERANGE otherwise); -ENOMEM for an address's change. */
int wsb_backends_set_weight(struct wsb_backends *bs, const char *name, unsigned weight);
int wsb_backends_enable(struct wsb_backends *bs, const char *name);
int wsb_backends_disable(struct wsb_backends *bs, const char *name);
/* As far as the desired state goes, a drain is a disable: moving its live sessions is the
   workers' part, asked once the table without it is published. */
int wsb_backends_drain(struct wsb_backends *bs, const char *name);
/* Moves a section (all its addresses) to pool: its live sessions stay in the pool they started
   in, new ones follow it. -ENOENT for an address NAME#ADDR: a pool is a section's. */
int wsb_backends_set_pool(struct wsb_backends *bs, const char *name, const char *pool);
/* Whether the backend (a section, or an address NAME#ADDR) was last disabled by a drain:
   enabling or disabling it ends that, and so does a reload (the file's state has no drain). */
bool wsb_backends_draining(const struct wsb_backends *bs, const char *name);

/* Applies the changes to single addresses to a table built from bs's sections, and forgets
   those whose address t no longer has (a new address of that name starts from its section). */
void wsb_backends_apply(struct wsb_backends *bs, struct wsb_shm_table *t);

/*
 * The runtime changes a reload from run to next discards, one line each
 * ("backend e1: enabled (disabled through the API)"), appended to out: what
 * differs between run's sections and next's in a field the API changed
 * (run's differs from run's file), sections the API added or deleted, and
 * run's changes to addresses that next_table (next's) still has.
 */
void wsb_backends_discarded(const struct wsb_backends *run, const struct wsb_backends *next,
                            const struct wsb_shm_table *next_table, struct wsb_config_errors *out);

#endif
