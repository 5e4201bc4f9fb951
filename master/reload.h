/* Reading the configuration again (SIGHUP): load, validate and build the next table, or refuse. */
#ifndef WSB_RELOAD_H
#define WSB_RELOAD_H

#include "config.h"
#include "discovery.h"
#include "shm.h"

/*
 * Loads path (with the environment and the -w override, workers_override
 * < 0 for none) into next and builds next_table from it, keeping the backend
 * slots of the running table. Sections whose host and port d knows keep their
 * addresses; new hosts are looked up now (blocking), and *next_addrs gets
 * every section's addresses (malloc'd). Logs every problem, and adds it to
 * errs when errs is not NULL. Returns 0, or WSB_ECONFIG with next freed.
 */
int wsb_reload_prepare(const char *path, int workers_override, const struct wsb_shm_table *table,
                       const struct wsb_shm *shm, const struct wsb_discovery *d,
                       struct wsb_config *next, struct wsb_shm_table *next_table,
                       struct wsb_addrs **next_addrs, struct wsb_config_errors *errs);

/*
 * The runtime changes (admin API) a reload is about to discard, one line each
 * ("backend e1: enabled (disabled through the API)"), appended to out: every
 * difference between the running backends (run) and the file's new ones
 * (next) in what was changed at run time, that is what differs between run
 * and the backends the file gave when it was last read (base). Changes to
 * single addresses (d's overrides) are compared with next_table.
 */
void wsb_reload_discarded(const struct wsb_backend_config *base, size_t nbase,
                          const struct wsb_backend_config *run, size_t nrun,
                          const struct wsb_config *next, const struct wsb_shm_table *next_table,
                          const struct wsb_discovery *d, struct wsb_config_errors *out);

#endif
